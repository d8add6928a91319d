import Observability
import Routing
import Syscalls

/// One cluster as the data plane sees it: its definition, its resolved backends, and the
/// state shared by all workers (failure, GRADUAL threshold, metrics). Immutable apart from
/// that shared state, which lives in thread-safe objects.
public final class ClusterRuntime: Sendable {
    /// The cluster's definition as accepted by the control plane.
    public let spec: ClusterSpec
    /// Backend addresses: every address each server's name resolves to, server by server
    /// (re-resolved periodically; a change makes a new runtime and snapshot).
    public let addresses: [SocketAddress]
    /// `addressServers[k]` is the index in `spec.servers` of the server `addresses[k]` belongs
    /// to: health and drain are per configured server, so its verdict covers all its addresses.
    public let addressServers: [Int]
    /// True while a lazy server's name has not resolved: the cluster is held pending.
    public let unresolved: Bool
    /// Failure, GRADUAL threshold and the rollback window, shared by all workers.
    public let state: ClusterState
    /// Counters, one block per worker.
    public let metrics: ClusterMetrics
    /// Order of addition (ties between equal versions go to the later one).
    public let sequence: UInt64
    /// uuid, version and mode as access log records copy them.
    public let accessText: AccessClusterText
    /// Readiness gate, probe verdicts and drained backends, shared by all workers; belongs
    /// to this definition (a replacement gets its own, carrying over what still applies).
    public let health: ClusterHealth
    /// The service this cluster is a version of.
    public let service: String
    /// TLS to the backends (`spec.tls`), its context made once here; nil: plain TCP.
    public let tls: ClusterTLS?

    /// Creates a cluster; without `health`, one that is ready and has no backend excluded.
    /// `addressServers` defaults to one address per server, in order.
    public init(spec: ClusterSpec, addresses: [SocketAddress], state: ClusterState, metrics: ClusterMetrics, sequence: UInt64,
                health: ClusterHealth? = nil, service: String = defaultServiceName, addressServers: [Int]? = nil,
                unresolved: Bool = false, tls: ClusterTLS? = nil) {
        self.spec = spec
        self.addresses = addresses
        self.addressServers = addressServers ?? Array(addresses.indices)
        self.unresolved = unresolved
        self.state = state
        self.metrics = metrics
        self.sequence = sequence
        self.service = service
        accessText = AccessClusterText(uuid: spec.uuid, version: spec.version, mode: spec.mode.rawValue, service: service)
        self.health = health ?? ClusterHealth(servers: spec.servers, check: spec.healthCheck, pending: false, pendingSince: 0)
        self.tls = tls ?? spec.tls.map { ClusterTLS($0, cluster: spec.uuid) }
    }

    /// The first address of server `index` (what its health probes connect to), or nil
    /// while its name does not resolve.
    public func firstAddress(ofServer index: Int) -> SocketAddress? {
        addressServers.firstIndex(of: index).map { addresses[$0] }
    }

    /// The same cluster with other addresses: same definition, shared state, metrics and
    /// health (per configured server, so probe verdicts and drains carry over).
    public func withAddresses(_ addresses: [SocketAddress], servers: [Int], unresolved: Bool) -> ClusterRuntime {
        ClusterRuntime(spec: spec, addresses: addresses, state: state, metrics: metrics, sequence: sequence, health: health,
                       service: service, addressServers: servers, unresolved: unresolved, tls: tls)
    }
}

/// The cluster set at one moment: immutable, published to every worker; an exchange keeps
/// the snapshot it started with.
public final class Snapshot: Sendable {
    /// Increases by one with each accepted change.
    public let generation: UInt64
    /// Clusters of every service, grouped by service in the order of `services`, each group
    /// latest first.
    public let clusters: [ClusterRuntime]
    /// The services requests can reach (the default one only when it exists).
    public let services: [ServiceSpec]
    /// `clusters[serviceRanges[i]]` are the clusters of `services[i]`.
    public let serviceRanges: [Range<Int>]
    /// Host and path → index into `services`.
    public let table: ServiceTable
    /// The routing cookies' `Domain` of each release group that sets one.
    public let cookieDomains: [String: String]

    /// A snapshot of one service, the default one.
    public convenience init(generation: UInt64, clusters: [ClusterRuntime]) {
        self.init(generation: generation, services: [.catchAll], clusters: clusters)
    }

    /// A snapshot of `services`; clusters of a service not listed are left out.
    public init(generation: UInt64, services: [ServiceSpec], clusters: [ClusterRuntime], cookieDomains: [String: String] = [:]) {
        self.generation = generation
        self.services = services
        var grouped: [ClusterRuntime] = []
        var ranges: [Range<Int>] = []
        var byService: [String: [ClusterRuntime]] = [:]
        for c in clusters { byService[c.service, default: []].append(c) }
        for service in services {
            let start = grouped.count
            grouped += orderLatestFirst(byService[service.name] ?? [], version: { $0.spec.version }, sequence: { $0.sequence })
            ranges.append(start..<grouped.count)
        }
        self.clusters = grouped
        self.serviceRanges = ranges
        self.table = ServiceTable(services: services)
        self.cookieDomains = cookieDomains
    }

    /// Index of the service called `name`.
    public func serviceIndex(of name: String) -> Int? { services.firstIndex { $0.name == name } }

    /// The clusters of the service called `name`, latest first (none when it does not exist).
    public func clusters(of name: String) -> ArraySlice<ClusterRuntime> {
        guard let i = serviceIndex(of: name) else { return [] }
        return clusters[serviceRanges[i]]
    }
}
