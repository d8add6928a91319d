import Config
import Routing
import Syscalls

/// How a set of backend addresses changed between two resolutions.
public struct AddressDiff: Sendable, Equatable {
    /// Addresses in the new set only, in its order.
    public var added: [SocketAddress]
    /// Addresses in the old set only, in its order.
    public var removed: [SocketAddress]

    /// Compares `old` with `new` as sets (order is not a change: the resolver may rotate).
    public init(old: [SocketAddress], new: [SocketAddress]) {
        let before = Set(old), after = Set(new)
        added = new.filter { !before.contains($0) }
        removed = old.filter { !after.contains($0) }
    }

    /// Whether the two sets are the same.
    public var isEmpty: Bool { added.isEmpty && removed.isEmpty }
}

/// Turns backend names into addresses: the hosts file first (when configured), then the
/// system resolver (getaddrinfo). Blocking: used on the control plane and its helper thread,
/// never on a reactor.
public struct NameResolver: Sendable {
    /// The hosts file to look in first, if any.
    public var hostsFile: String?

    /// A resolver that looks in `hostsFile` first (none: the system resolver only).
    public init(hostsFile: String? = nil) {
        self.hostsFile = hostsFile
    }

    /// The hosts file's current names (empty when none is configured or it cannot be read).
    public func readHosts() -> HostsFile {
        hostsFile.map { HostsFile(path: $0) } ?? HostsFile(text: "")
    }

    /// Every address `host` stands for at `port`: the hosts file's when it names it, else
    /// the system resolver's. Empty when the name does not resolve.
    public func addresses(of host: String, port: Int, hosts: HostsFile) -> [SocketAddress] {
        let pinned = hosts.addresses(of: host)
        if !pinned.isEmpty {
            var out: [SocketAddress] = []
            for literal in pinned {
                if let a = SocketAddress(host: literal, port: port), !out.contains(a) { out.append(a) }
            }
            return out
        }
        return SocketAddress.resolveAll(host: host, port: port)
    }

    /// Whether `host` resolves now (for validating a definition).
    public func resolves(_ host: String) -> Bool {
        !addresses(of: host, port: 1, hosts: readHosts()).isEmpty
    }

    /// A cluster's servers resolved: every address of each server in order, and whether a
    /// lazy server has none yet. Throws a ConfigError naming the first server (not lazy)
    /// that does not resolve.
    public func resolve(_ spec: ClusterSpec, path: String, hosts: HostsFile? = nil) throws(ConfigError) -> ResolvedBackends {
        let hosts = hosts ?? readHosts()
        var out = ResolvedBackends()
        for (i, server) in spec.servers.enumerated() {
            let found = addresses(of: server.hostname, port: server.port, hosts: hosts)
            if found.isEmpty {
                if server.lazy {
                    out.unresolved = true
                    continue
                }
                throw ConfigError(field: "\(path).servers[\(i)].hostname", message: "cannot resolve \"\(server.hostname)\"")
            }
            for a in found where !out.addresses.contains(a) {
                out.addresses.append(a)
                out.servers.append(i)
            }
        }
        return out
    }
}

/// The addresses of one cluster's servers at one resolution.
public struct ResolvedBackends: Sendable, Equatable {
    /// Every address, server by server (an address listed for two servers counts once, for
    /// the first).
    public var addresses: [SocketAddress] = []
    /// `servers[k]`: the index of the server `addresses[k]` belongs to.
    public var servers: [Int] = []
    /// A lazy server's name does not resolve yet.
    public var unresolved = false

    /// Creates a resolution (tests; the resolver builds its own).
    public init(addresses: [SocketAddress] = [], servers: [Int] = [], unresolved: Bool = false) {
        self.addresses = addresses
        self.servers = servers
        self.unresolved = unresolved
    }
}
