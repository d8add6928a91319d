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

    public init(spec: ClusterSpec, failure: StoredFailure? = nil, threshold: Double = 0, rollout: RolloutProgress? = nil) {
        self.spec = spec
        self.failure = failure
        self.threshold = threshold
        self.rollout = rollout
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
}

/// The whole durable state: clusters in order of addition (a replaced cluster counts as
/// added last, as in the registry, where the most recently added wins a version tie) and the
/// sequence number of the last change applied.
public struct StoredState: Equatable, Sendable {
    /// Sequence number of the last change applied (0: none).
    public var sequence: UInt64
    /// Clusters, oldest addition first.
    public var clusters: [StoredCluster]

    public init(sequence: UInt64 = 0, clusters: [StoredCluster] = []) {
        self.sequence = sequence
        self.clusters = clusters
    }

    /// The state the configuration file seeds: its clusters, healthy, thresholds at 0.
    public init(seed specs: [ClusterSpec]) {
        self.init(sequence: 0, clusters: specs.map { StoredCluster(spec: $0) })
    }

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

    /// Applies one change and advances the sequence number. Changes naming a cluster that
    /// is not there change nothing but the sequence (they cannot arise from the registry,
    /// which validates first, and replaying them must not fail).
    public mutating func apply(_ change: StateChange) {
        sequence += 1
        switch change {
        case .put(let spec):
            if let i = index(of: spec.uuid) {
                let old = clusters.remove(at: i)
                let threshold = Self.keepsProgress(old.spec, spec) ? old.threshold : 0
                // A PUT after a rollback is a new attempt: the plan starts again.
                let rollout = Self.keepsRollout(old.spec, spec) && old.rollout?.phase != .rolledBack ? old.rollout : nil
                clusters.append(StoredCluster(spec: spec, failure: nil, threshold: threshold, rollout: rollout))
            } else {
                clusters.append(StoredCluster(spec: spec))
            }
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
        }
    }
}
