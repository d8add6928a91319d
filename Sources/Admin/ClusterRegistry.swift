import Locks
import Config
import Observability
import Proxy
import Routing
import Synchronization
import Syscalls

/// The authoritative cluster set. Every change is validated completely first, then a new
/// immutable snapshot is built and published to every worker; a refused change leaves
/// nothing behind.
public final class ClusterRegistry: Sendable {
    private struct Contents {
        var clusters: [ClusterRuntime] = []
        var generation: UInt64 = 0
        var sequence: UInt64 = 0
    }

    private let contents = Lock(Contents())
    private let reactors: Int
    private let policy: RollbackPolicy
    /// Where snapshots go (the proxy's publish), set once the data plane exists.
    private let publisher = Lock<(@Sendable (Snapshot) -> Void)?>(nil)

    public init(reactors: Int, policy: RollbackPolicy) {
        self.reactors = reactors
        self.policy = policy
    }

    /// Connects the registry to the data plane.
    public func setPublisher(_ publish: @escaping @Sendable (Snapshot) -> Void) {
        publisher.withLock { $0 = publish }
    }

    /// Resolves a cluster's servers; throws a ConfigError naming the first that fails.
    static func resolve(_ spec: ClusterSpec, path: String) throws(ConfigError) -> [SocketAddress] {
        var out: [SocketAddress] = []
        for (i, server) in spec.servers.enumerated() {
            guard let address = SocketAddress(host: server.hostname, port: server.port) else {
                throw ConfigError(field: "\(path).servers[\(i)].hostname", message: "cannot resolve \"\(server.hostname)\"")
            }
            out.append(address)
        }
        return out
    }

    /// Adds a cluster, or replaces the one with the same uuid (which also re-admits it if it
    /// had been marked failed). Returns the published snapshot.
    @discardableResult
    public func put(_ spec: ClusterSpec) throws(ConfigError) -> Snapshot {
        let addresses = try Self.resolve(spec, path: "cluster")
        let snapshot = contents.withLock { c -> Snapshot in
            c.sequence += 1
            if let index = c.clusters.firstIndex(where: { $0.spec.uuid == spec.uuid }) {
                let old = c.clusters[index]
                old.state.readmit()
                c.clusters[index] = ClusterRuntime(spec: spec, addresses: addresses, state: old.state, metrics: old.metrics, sequence: c.sequence)
                Log.notice("cluster_readmitted", ["uuid": spec.uuid, "version": spec.version, "mode": spec.mode.rawValue])
            } else {
                c.clusters.append(ClusterRuntime(spec: spec, addresses: addresses, state: ClusterState(policy: policy),
                                                 metrics: ClusterMetrics(reactors: reactors), sequence: c.sequence))
                Log.notice("cluster_added", ["uuid": spec.uuid, "version": spec.version, "mode": spec.mode.rawValue,
                                             "servers": spec.servers.map(\.description).joined(separator: ",")])
            }
            c.generation += 1
            return Snapshot(generation: c.generation, clusters: c.clusters)
        }
        publish(snapshot)
        return snapshot
    }

    /// Replaces the whole set (start-up from the config file).
    @discardableResult
    public func load(_ specs: [ClusterSpec]) throws(ConfigError) -> Snapshot {
        var resolved: [(ClusterSpec, [SocketAddress])] = []
        for (i, spec) in specs.enumerated() {
            resolved.append((spec, try Self.resolve(spec, path: "clusters[\(i)]")))
        }
        let snapshot = contents.withLock { c -> Snapshot in
            c.clusters = resolved.map { spec, addresses in
                c.sequence += 1
                return ClusterRuntime(spec: spec, addresses: addresses, state: ClusterState(policy: policy),
                                      metrics: ClusterMetrics(reactors: reactors), sequence: c.sequence)
            }
            c.generation += 1
            return Snapshot(generation: c.generation, clusters: c.clusters)
        }
        publish(snapshot)
        return snapshot
    }

    /// Removes a cluster; false when no cluster has that uuid.
    public func delete(uuid: String) -> Bool {
        let snapshot = contents.withLock { c -> Snapshot? in
            guard let index = c.clusters.firstIndex(where: { $0.spec.uuid == uuid }) else { return nil }
            let removed = c.clusters.remove(at: index)
            Log.notice("cluster_removed", ["uuid": uuid, "version": removed.spec.version])
            c.generation += 1
            return Snapshot(generation: c.generation, clusters: c.clusters)
        }
        guard let snapshot else { return false }
        publish(snapshot)
        return true
    }

    /// The current snapshot (clusters latest first).
    public var snapshot: Snapshot {
        contents.withLock { Snapshot(generation: $0.generation, clusters: $0.clusters) }
    }

    private func publish(_ snapshot: Snapshot) {
        let publish = publisher.withLock { $0 }
        publish?(snapshot)
    }
}
