import Rollout

/// One thing that happened to a cluster, as the dashboard lists it (`GET /events`).
public struct DashboardEvent: Equatable, Sendable {
    /// Increasing from 1 over the process's life; the page asks for the events after the
    /// last id it has (`GET /events?after=N`).
    public var id: Int
    /// Unix milliseconds.
    public var time: Int64
    /// What happened: one of `ClusterChange.Kind`'s raw values.
    public var kind: String
    /// The cluster's uuid and version.
    public var cluster: String
    public var version: String
    /// Words for the operator: a reason, a backend, a step; may be empty.
    public var detail: String

    public init(id: Int, time: Int64, kind: String, cluster: String, version: String, detail: String) {
        self.id = id
        self.time = time
        self.kind = kind
        self.cluster = cluster
        self.version = version
        self.detail = detail
    }
}

/// The newest events, oldest first, at most `capacity` of them; older ones are dropped.
public struct EventRing: Sendable {
    public let capacity: Int
    public private(set) var events: [DashboardEvent] = []
    /// The id the next event gets.
    public private(set) var nextID = 1

    public init(capacity: Int = 200) { self.capacity = max(1, capacity) }

    /// Appends an event (its id is assigned here) and drops the oldest beyond `capacity`.
    public mutating func add(time: Int64, _ change: ClusterChange) {
        events.append(DashboardEvent(id: nextID, time: time, kind: change.kind.rawValue, cluster: change.cluster,
                                     version: change.version, detail: change.detail))
        nextID += 1
        if events.count > capacity { events.removeFirst(events.count - capacity) }
    }

    /// The events with an id above `id`, oldest first (all of them for 0).
    public func after(_ id: Int) -> [DashboardEvent] {
        // Ids are consecutive, so the first one wanted is at a known offset.
        guard let first = events.first else { return [] }
        let start = max(0, id + 1 - first.id)
        return start >= events.count ? [] : Array(events[start...])
    }
}

/// What the dashboard needs to know of one cluster to tell what changed since the last look.
public struct ClusterView: Equatable, Sendable {
    public var uuid: String
    public var version: String
    /// Tells a replaced cluster (same uuid, new definition) from the one before: the
    /// registry's sequence number of the definition (a new one with every PUT).
    public var definition: UInt64
    /// `active`, `pending` or `failed`.
    public var state: String
    public var failureReason: String?
    /// Each backend's status (`up`, `down`, `unknown`, `drained`), by `host:port`.
    public var backends: [String: String]
    /// The rollout's phase and step, when the cluster has a plan.
    public var phase: Phase?
    public var step: Int?
    public var steps: Int
    public var percent: Double?
    public var rollbackReason: String?

    public init(uuid: String, version: String, definition: UInt64, state: String, failureReason: String? = nil,
                backends: [String: String] = [:], phase: Phase? = nil, step: Int? = nil, steps: Int = 0,
                percent: Double? = nil, rollbackReason: String? = nil) {
        self.uuid = uuid
        self.version = version
        self.definition = definition
        self.state = state
        self.failureReason = failureReason
        self.backends = backends
        self.phase = phase
        self.step = step
        self.steps = steps
        self.percent = percent
        self.rollbackReason = rollbackReason
    }
}

/// A change between two looks at the cluster set, before it becomes an event.
public struct ClusterChange: Equatable, Sendable {
    /// The kinds of events, as `GET /events` names them.
    public enum Kind: String, Sendable, CaseIterable {
        /// A cluster appeared (PUT, or loaded at start).
        case clusterAdded = "cluster_added"
        /// A PUT replaced a cluster's definition (same uuid).
        case clusterReplaced = "cluster_replaced"
        /// A cluster was deleted or retired by its successor's rollout.
        case clusterRemoved = "cluster_removed"
        /// A cluster passed its readiness gate.
        case clusterReady = "cluster_ready"
        /// A cluster was marked failed (traffic back to the previous version).
        case clusterFailed = "cluster_failed"
        /// A failed cluster was admitted again (a PUT of the same uuid).
        case clusterReadmitted = "cluster_readmitted"
        /// A rollout started a step (its first one included).
        case rolloutStep = "rollout_step"
        case rolloutPaused = "rollout_paused"
        case rolloutResumed = "rollout_resumed"
        /// Every step done, or promoted: all traffic on the new version.
        case rolloutCompleted = "rollout_completed"
        case rolloutRolledBack = "rollout_rolled_back"
        case backendUp = "backend_up"
        case backendDown = "backend_down"
        case backendDrained = "backend_drained"
        case backendEnabled = "backend_enabled"
    }

    public var kind: Kind
    public var cluster: String
    public var version: String
    public var detail: String

    public init(_ kind: Kind, _ view: ClusterView, _ detail: String = "") {
        self.kind = kind
        self.cluster = view.uuid
        self.version = view.version
        self.detail = detail
    }

    /// What changed from `old` to `new` (both latest first), in a stable order: removals,
    /// then per cluster of `new` its own changes. `cause` (e.g. "by operator") is appended
    /// to every detail. Pure: the dashboard calls it each second and after API changes.
    public static func between(_ old: [ClusterView], _ new: [ClusterView], cause: String? = nil) -> [ClusterChange] {
        var out: [ClusterChange] = []
        let before = Dictionary(old.map { ($0.uuid, $0) }, uniquingKeysWith: { first, _ in first })
        let now = Set(new.map(\.uuid))
        for view in old where !now.contains(view.uuid) {
            out.append(ClusterChange(.clusterRemoved, view))
        }
        for view in new.reversed() {   // oldest first, so a successor's events follow its predecessor's
            guard let prior = before[view.uuid] else {
                out.append(ClusterChange(.clusterAdded, view, view.state == "pending" ? "pending its readiness gate" : ""))
                out += rollout(from: nil, to: view)
                continue
            }
            if prior.definition != view.definition {
                out.append(ClusterChange(.clusterReplaced, view))
            }
            let rolledBack = view.phase == .rolledBack && prior.phase != .rolledBack
            switch (prior.state, view.state) {
            case ("pending", "active"): out.append(ClusterChange(.clusterReady, view))
            case (let a, "failed") where a != "failed" && !rolledBack:
                out.append(ClusterChange(.clusterFailed, view, view.failureReason ?? ""))
            case ("failed", let b) where b != "failed": out.append(ClusterChange(.clusterReadmitted, view))
            default: break
            }
            out += rollout(from: prior, to: view)
            for (server, status) in view.backends.sorted(by: { $0.key < $1.key }) {
                let was = prior.backends[server]
                guard let was, was != status else { continue }
                if was == "drained" { out.append(ClusterChange(.backendEnabled, view, server)) }
                switch status {
                case "up": out.append(ClusterChange(.backendUp, view, server))
                case "down": out.append(ClusterChange(.backendDown, view, server))
                case "drained": out.append(ClusterChange(.backendDrained, view, server))
                default: break
                }
            }
        }
        guard let cause else { return out }
        return out.map { change in
            var c = change
            c.detail = c.detail.isEmpty ? cause : c.detail + " (" + cause + ")"
            return c
        }
    }

    /// The rollout's changes: its phase, and the step it is on.
    private static func rollout(from prior: ClusterView?, to view: ClusterView) -> [ClusterChange] {
        guard let phase = view.phase else { return [] }
        var out: [ClusterChange] = []
        let priorPhase = prior?.phase
        if phase != priorPhase {
            switch phase {
            case .paused: out.append(ClusterChange(.rolloutPaused, view, stepText(view)))
            case .progressing where priorPhase == .paused: out.append(ClusterChange(.rolloutResumed, view, stepText(view)))
            case .completed: out.append(ClusterChange(.rolloutCompleted, view))
            case .rolledBack: out.append(ClusterChange(.rolloutRolledBack, view, view.rollbackReason ?? view.failureReason ?? ""))
            default: break
            }
        }
        if let step = view.step, phase == .progressing || phase == .paused, step != prior?.step {
            out.append(ClusterChange(.rolloutStep, view, stepText(view)))
        }
        return out
    }

    /// "step 2 of 4 (25 %)".
    static func stepText(_ view: ClusterView) -> String {
        guard let step = view.step else { return "" }
        var text = "step \(step) of \(view.steps)"
        if let percent = view.percent { text += " (\(percent.formatted1) %)" }
        return text
    }
}

extension Double {
    /// The value with at most one decimal, without a trailing ".0".
    var formatted1: String {
        let rounded = (self * 10).rounded() / 10
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
    }
}
