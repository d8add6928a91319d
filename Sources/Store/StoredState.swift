import Rollout
import Routing

/// Why and when a cluster was marked failed.
public struct StoredFailure: Equatable, Sendable {
    /// The log line's reason (e.g. "failure ratio 12/20 over 10s").
    public var reason: String
    /// Unix time in seconds.
    public var time: Int64

    public init(reason: String, time: Int64) {
        self.reason = reason
        self.time = time
    }
}

/// One cluster as the store keeps it: its definition and the state that must survive a restart.
public struct StoredCluster: Equatable, Sendable {
    /// The definition as accepted by the API or the configuration file.
    public var spec: ClusterSpec
    /// Set while the cluster is marked failed.
    public var failure: StoredFailure?
    /// GRADUAL threshold in percent (0...100), as last recorded.
    public var threshold: Double
    /// The rollout's progress as last recorded (clusters with a plan or gates); nil before
    /// the first record.
    public var rollout: RolloutProgress?
    /// Passed its readiness gate (always true without a health check). State written before
    /// health checks existed has no such field and reads as true.
    public var ready: Bool
    /// Servers drained by the operator, in the order of the definition.
    public var drained: [ServerAddress]
    /// The service the cluster belongs to (`default` for the 2014 API's clusters).
    public var service: String

    public init(spec: ClusterSpec, failure: StoredFailure? = nil, threshold: Double = 0, rollout: RolloutProgress? = nil,
                ready: Bool? = nil, drained: [ServerAddress] = [], service: String = defaultServiceName) {
        self.spec = spec
        self.service = service
        self.failure = failure
        self.threshold = threshold
        self.rollout = rollout
        self.ready = ready ?? (spec.healthCheck == nil)
        self.drained = drained
    }
}

/// One accepted change of the control plane's state: one journal record.
public enum StateChange: Equatable, Sendable {
    /// A cluster added, or replaced by uuid (which re-admits it if it was failed).
    case put(ClusterSpec)
    /// A cluster removed.
    case delete(uuid: String)
    /// A cluster marked failed (rollback), with its reason and unix time.
    case failed(uuid: String, reason: String, time: Int64)
    /// A failed cluster trusted again without a new definition.
    case readmitted(uuid: String)
    /// GRADUAL progress: the cluster's threshold in percent.
    case threshold(uuid: String, percent: Double)
    /// Rollout progress: the cluster's rollout state, step, percentage and reason.
    case rollout(uuid: String, progress: RolloutProgress)
    /// The cluster passed its readiness gate (enough backends up).
    case ready(uuid: String)
    /// A server of the cluster drained (`drained`) or enabled again.
    case drain(uuid: String, server: ServerAddress, drained: Bool)
    /// A cluster of a service other than `default` added or replaced (as `put`).
    case putIn(service: String, ClusterSpec)
    /// A service created, or its hosts, path and cookies replaced (its clusters stay).
    case putService(ServiceSpec)
    /// A service and all its clusters removed.
    case deleteService(name: String)
    /// Several changes that take effect together (`POST /changes`): one record.
    case changeSet([StateChange])
}

/// The whole durable state: clusters in order of addition (a replaced cluster counts as
/// added last, as in the registry, where the most recently added wins a version tie) and the
/// sequence number of the last change applied.
public struct StoredState: Equatable, Sendable {
    /// Sequence number of the last change applied (0: none).
    public var sequence: UInt64
    /// Clusters, oldest addition first.
    public var clusters: [StoredCluster]
    /// Services other than the implicit catch-all, in order of creation (`default` is listed
    /// only when it has settings of its own).
    public var services: [ServiceSpec]

    public init(sequence: UInt64 = 0, clusters: [StoredCluster] = [], services: [ServiceSpec] = []) {
        self.sequence = sequence
        self.clusters = clusters
        self.services = services
    }

    /// The state the configuration file seeds: its clusters, healthy, thresholds at 0.
    public init(seed specs: [ClusterSpec], services: [ServiceSpec] = [], serviceClusters: [(service: String, spec: ClusterSpec)] = []) {
        self.init(sequence: 0, clusters: specs.map { StoredCluster(spec: $0) } + serviceClusters.map { StoredCluster(spec: $0.spec, service: $0.service) },
                  services: services)
    }

    /// Index of the service called `name` in `services`.
    public func serviceIndex(of name: String) -> Int? { services.firstIndex { $0.name == name } }

    /// Index of the cluster with `uuid`.
    public func index(of uuid: String) -> Int? { clusters.firstIndex { $0.spec.uuid == uuid } }

    /// Whether replacing `old` by `new` keeps GRADUAL progress: only when the servers, the
    /// version and the mode are unchanged (other options, e.g. the step, may change).
    public static func keepsProgress(_ old: ClusterSpec, _ new: ClusterSpec) -> Bool {
        old.servers == new.servers && old.version == new.version && old.mode == new.mode
    }

    /// Whether replacing `old` by `new` keeps the rollout's progress: as `keepsProgress`, and
    /// only when the plan (steps, gates, `retireOld`) is unchanged.
    public static func keepsRollout(_ old: ClusterSpec, _ new: ClusterSpec) -> Bool {
        keepsProgress(old, new) && old.rollout == new.rollout
    }

    /// Whether replacing `old` by `new` keeps the readiness `old` reached: a definition
    /// without a health check is ready at once; one with a health check stays ready only when
    /// the old one was ready, not failed, and had the same servers.
    public static func keepsReadiness(_ old: StoredCluster, _ new: ClusterSpec) -> Bool {
        new.healthCheck == nil || (old.ready && old.failure == nil && old.spec.servers == new.servers)
    }

    /// Applies one change and advances the sequence number. Changes naming a cluster that
    /// is not there change nothing but the sequence (they cannot arise from the registry,
    /// which validates first, and replaying them must not fail).
    public mutating func apply(_ change: StateChange) {
        sequence += 1
        applyWithoutSequence(change)
    }

    private mutating func applyWithoutSequence(_ change: StateChange) {
        switch change {
        case .changeSet(let changes):
            for c in changes { applyWithoutSequence(c) }
        case .putService(let spec):
            if let i = serviceIndex(of: spec.name) { services[i] = spec } else { services.append(spec) }
        case .deleteService(let name):
            services.removeAll { $0.name == name }
            clusters.removeAll { $0.service == name }
        case .putIn(let service, let spec):
            put(spec, service: service)
        case .put(let spec):
            put(spec, service: defaultServiceName)
        case .delete(let uuid):
            if let i = index(of: uuid) { clusters.remove(at: i) }
        case .failed(let uuid, let reason, let time):
            if let i = index(of: uuid) { clusters[i].failure = StoredFailure(reason: reason, time: time) }
        case .readmitted(let uuid):
            if let i = index(of: uuid) { clusters[i].failure = nil }
        case .threshold(let uuid, let percent):
            if let i = index(of: uuid) { clusters[i].threshold = min(max(percent, 0), 100) }
        case .rollout(let uuid, let progress):
            if let i = index(of: uuid) { clusters[i].rollout = progress }
        case .ready(let uuid):
            if let i = index(of: uuid) { clusters[i].ready = true }
        case .drain(let uuid, let server, let drained):
            guard let i = index(of: uuid), clusters[i].spec.servers.contains(server) else { break }
            clusters[i].drained.removeAll { $0 == server }
            if drained {
                // Kept in the order of the definition.
                let listed = Set(clusters[i].drained + [server])
                clusters[i].drained = clusters[i].spec.servers.filter { listed.contains($0) }
            }
        }
    }

    private mutating func put(_ spec: ClusterSpec, service: String) {
        if let i = index(of: spec.uuid) {
            let old = clusters.remove(at: i)
            let threshold = Self.keepsProgress(old.spec, spec) ? old.threshold : 0
            // A PUT after a rollback is a new attempt: the plan starts again.
            let rollout = Self.keepsRollout(old.spec, spec) && old.rollout?.phase != .rolledBack ? old.rollout : nil
            clusters.append(StoredCluster(spec: spec, failure: nil, threshold: threshold, rollout: rollout,
                                          ready: Self.keepsReadiness(old, spec),
                                          drained: old.drained.filter { spec.servers.contains($0) }, service: service))
        } else {
            clusters.append(StoredCluster(spec: spec, service: service))
        }
    }
}
