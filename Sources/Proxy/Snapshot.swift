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
    /// The service this cluster is a version of.
    public let service: String

    /// Creates a cluster; without `health`, one that is ready and has no backend excluded.
    public init(spec: ClusterSpec, addresses: [SocketAddress], state: ClusterState, metrics: ClusterMetrics, sequence: UInt64,
                health: ClusterHealth? = nil, service: String = defaultServiceName) {
        self.spec = spec
        self.addresses = addresses
        self.state = state
        self.metrics = metrics
        self.sequence = sequence
        self.service = service
        accessText = AccessClusterText(uuid: spec.uuid, version: spec.version, mode: spec.mode.rawValue, service: service)
        self.health = health ?? ClusterHealth(servers: spec.servers, check: spec.healthCheck, pending: false, pendingSince: 0)
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
