import Observability
import Routing
import Syscalls

/// One cluster as the data plane sees it: its definition, its resolved backends, and the
/// state shared by all workers (failure, GRADUAL threshold, metrics). Immutable apart from
/// that shared state, which lives in thread-safe objects.
public final class ClusterRuntime: Sendable {
    /// The cluster's definition as accepted by the control plane.
    public let spec: ClusterSpec
    /// Backend addresses, resolved once when the cluster was added.
    public let addresses: [SocketAddress]
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

    /// Creates a cluster; without `health`, one that is ready and has no backend excluded.
    public init(spec: ClusterSpec, addresses: [SocketAddress], state: ClusterState, metrics: ClusterMetrics, sequence: UInt64,
                health: ClusterHealth? = nil) {
        self.spec = spec
        self.addresses = addresses
        self.state = state
        self.metrics = metrics
        self.sequence = sequence
        accessText = AccessClusterText(uuid: spec.uuid, version: spec.version, mode: spec.mode.rawValue)
        self.health = health ?? ClusterHealth(servers: spec.servers, check: spec.healthCheck, pending: false, pendingSince: 0)
    }
}

/// The cluster set at one moment: immutable, published to every worker; an exchange keeps
/// the snapshot it started with.
public final class Snapshot: Sendable {
    /// Increases by one with each accepted change.
    public let generation: UInt64
    /// Clusters, latest first.
    public let clusters: [ClusterRuntime]

    public init(generation: UInt64, clusters: [ClusterRuntime]) {
        self.generation = generation
        self.clusters = orderLatestFirst(clusters, version: { $0.spec.version }, sequence: { $0.sequence })
    }
}
