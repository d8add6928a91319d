/// The state of a rollout as the API, the metrics and the store name it.
public enum Phase: String, Sendable, CaseIterable {
    /// Waiting for the new cluster to be ready; it gets no traffic from the plan.
    case pending
    /// A step is running (or, for a plan of gates only, the gates are judging).
    case progressing
    /// Stopped advancing by the operator; the gates still judge and can roll back.
    case paused
    /// Every step done, or promoted: all traffic goes to the new version.
    case completed
    /// Traffic went back to the old version, because a gate failed or the operator said so.
    case rolledBack
}

/// Why a rollout rolled back.
public enum RollbackReason: Equatable, Sendable, CustomStringConvertible {
    /// A gate failed, with its figures.
    case gate(GateFailure)
    /// The operator rolled back (`POST …/rollback`).
    case byOperator
    /// Read back from the store after a restart: the reason as it was recorded.
    case recorded(String)

    /// The reason in words: the gate's figures, `operator`, or the recorded text.
    public var description: String {
        switch self {
        case .gate(let failure): failure.description
        case .byOperator: "operator"
        case .recorded(let text): text
        }
    }
}

/// The progress that must survive a restart: what the store records for a cluster. A
/// restored rollout starts its step again from its beginning (the hold timer and the
/// step's request count restart); the step and its percentage stay.
public struct RolloutProgress: Equatable, Sendable {
    /// The phase.
    public var phase: Phase
    /// The current step's index, 0-based (the last step once completed; the step rolled
    /// back from when rolled back; 0 when pending or for a plan of gates only).
    public var step: Int
    /// The share of clients the new version serves, in percent; nil for a plan of gates
    /// only while its 2014 mode decides.
    public var percent: Double?
    /// Why it rolled back (rolledBack only).
    public var reason: String?

    /// Creates a progress record.
    public init(phase: Phase, step: Int = 0, percent: Double? = nil, reason: String? = nil) {
        self.phase = phase
        self.step = step
        self.percent = percent
        self.reason = reason
    }
}

/// Where the driver must send exchanges.
public enum Traffic: Equatable, Sendable {
    /// As the step's mode says (between the old and the new version).
    case step(StepMode)
    /// Every exchange to the new version (completed or promoted).
    case allNew
    /// Every exchange to the old version, at once (rolled back).
    case allOld
}

/// One log line: `event=<event>` and its fields, in order.
public struct RolloutLog: Equatable, Sendable {
    /// The event name (`rollout_step`, `rollout_paused`, `rollout_resumed`,
    /// `rollout_completed`, `rollout_rolled_back`, `rollout_restored`).
    public var event: String
    /// Key-value pairs in the order they are written.
    public var fields: [Field]

    /// One key-value pair.
    public struct Field: Equatable, Sendable {
        /// The key, `snake_case`.
        public var key: String
        /// The value as text.
        public var value: String
        /// Creates a pair.
        public init(_ key: String, _ value: String) {
            self.key = key
            self.value = value
        }
    }

    /// Creates a log line.
    public init(_ event: String, _ fields: [Field]) {
        self.event = event
        self.fields = fields
    }

    /// The value of `key`, if the line has it.
    public subscript(key: String) -> String? { fields.first { $0.key == key }?.value }
}

/// How an operator command was taken.
public enum CommandOutcome: Equatable, Sendable {
    /// Done; perform the actions in order.
    case accepted([Rollout.Action])
    /// Not possible in the current state (the API answers 409 with the text); nothing changed.
    case refused(String)

    /// The actions to perform (none when refused).
    public var actions: [Rollout.Action] {
        if case .accepted(let actions) = self { return actions }
        return []
    }
}

/// The state machine of one cluster's rollout, as data: one `mutating func` per event, each
/// returning the actions the driver performs, in order. It does no I/O and reads no clock.
///
/// Times (`now`, `stepStarted`) are milliseconds on the driver's clock; unix time (wall
/// clock) lets the API show `stepStarted` as a date.
///
/// Events: `ready` (the new cluster may take traffic), `tick` (periodically, with the
/// window's figures), the operator's `pause`, `resume`, `promote`, `rollback`, and
/// `restore` (after a restart, from the stored progress).
public struct Rollout: Equatable, Sendable {
    /// Where the rollout is; each payload carries what the state needs.
    public enum State: Equatable, Sendable {
        /// Waiting for `ready`; no step has started.
        case pending
        /// Step `step` (0-based) runs since `stepStarted`; `counted` is the window's
        /// `newTotal` when the step began counting its requests (nil until the first tick).
        case progressing(step: Int, stepStarted: Int64, counted: Int?)
        /// Step `step`, started at `stepStarted`, paused at `pausedAt`.
        case paused(step: Int, stepStarted: Int64, pausedAt: Int64)
        /// Done at `at`; the last step (or a promotion) sent all traffic to the new version.
        case completed(at: Int64)
        /// Rolled back at `at` during step `step`, for `reason`.
        case rolledBack(reason: RollbackReason, step: Int, at: Int64)
    }

    /// What the driver must do, in the order given.
    public enum Action: Equatable, Sendable {
        /// Route exchanges this way from now on.
        case route(Traffic)
        /// The cluster's rollout state is now this (API, metrics).
        case markState(Phase)
        /// Remove the old cluster once its last exchange has finished (`retireOld`).
        case retireOld
        /// Write this log line.
        case log(RolloutLog)
        /// Record this progress durably.
        case persist(RolloutProgress)
    }

    /// The plan being carried out.
    public let plan: RolloutPlan
    /// Where the rollout is.
    public private(set) var state: State = .pending
    /// The gates' values on the last window ticked (limits only before the first tick).
    public private(set) var readings: [GateReading]
    /// The last window's request counts (new, old); nil before the first tick.
    public private(set) var requests: RequestCounts?

    /// A rollout of `plan`, pending until `ready`.
    public init(plan: RolloutPlan) {
        self.plan = plan
        self.readings = plan.analysis?.limits.map { GateReading(gate: $0.gate, value: nil, limit: $0.limit) } ?? []
    }

    /// The phase of `state`.
    public var phase: Phase {
        switch state {
        case .pending: .pending
        case .progressing: .progressing
        case .paused: .paused
        case .completed: .completed
        case .rolledBack: .rolledBack
        }
    }

    // MARK: Events

    /// The new cluster is ready for traffic: the first step starts (for a plan of gates
    /// only, the gates start judging and the 2014 mode keeps routing). Ignored unless pending.
    public mutating func ready(now: Int64) -> [Action] {
        guard case .pending = state else { return [] }
        return enter(step: 0, now: now, counted: nil, event: "rollout_step")
    }

    /// A periodic look at the window. Any gate failing rolls back (while progressing or
    /// paused). Otherwise a progressing step advances — or the plan completes after its
    /// last step — once it has held `holdSeconds`, counted `minRequests` exchanges of the
    /// new version, and (with an analysis) the window was judged and passed. A plan of
    /// gates only never advances. Ignored when pending, completed or rolled back.
    public mutating func tick(now: Int64, window: WindowStats) -> [Action] {
        switch state {
        case .pending, .completed, .rolledBack:
            return []
        case .paused, .progressing:
            break
        }
        readings = plan.analysis?.readings(window) ?? []
        requests = RequestCounts(new: window.new.requests, old: window.old.requests)
        let judgement = plan.analysis?.judge(window)
        if case .failed(let failure)? = judgement {
            return rollBack(.gate(failure), now: now)
        }
        guard case .progressing(let step, let started, let counted) = state, !plan.isGatesOnly else { return [] }
        // A total below the mark means the driver's counters started again: count from there.
        let mark = counted.map { $0 <= window.newTotal ? $0 : window.newTotal } ?? window.newTotal
        if mark != counted { state = .progressing(step: step, stepStarted: started, counted: mark) }
        let current = plan.steps[step]
        guard judgement == nil || judgement == .passed,
              now - started >= Int64(current.holdSeconds) * 1000,
              window.newTotal - mark >= current.minRequests else { return [] }
        if step + 1 < plan.steps.count {
            return enter(step: step + 1, now: now, counted: window.newTotal, event: "rollout_step")
        }
        return complete(now: now, by: "plan")
    }

    /// The operator stops the plan advancing (`POST …/pause`); gates still judge. Only
    /// while progressing, and not for a plan of gates only (it never advances).
    public mutating func pause(now: Int64) -> CommandOutcome {
        guard case .progressing(let step, let started, _) = state else { return .refused(notPossible("pause")) }
        guard !plan.isGatesOnly else { return .refused("the plan has no steps to pause") }
        state = .paused(step: step, stepStarted: started, pausedAt: now)
        return .accepted([.markState(.paused), .persist(progress), .log(RolloutLog("rollout_paused", stepFields(step)))])
    }

    /// The operator lets a paused plan advance again (`POST …/resume`). The step's hold
    /// time and request count start again from now. Only while paused.
    public mutating func resume(now: Int64) -> CommandOutcome {
        guard case .paused(let step, _, _) = state else { return .refused(notPossible("resume")) }
        state = .progressing(step: step, stepStarted: now, counted: nil)
        return .accepted([.markState(.progressing), .persist(progress), .log(RolloutLog("rollout_resumed", stepFields(step)))])
    }

    /// The operator completes the plan now (`POST …/promote`): all traffic to the new
    /// version. Only while progressing or paused.
    public mutating func promote(now: Int64) -> CommandOutcome {
        switch state {
        case .progressing, .paused: return .accepted(complete(now: now, by: "operator"))
        default: return .refused(notPossible("promote"))
        }
    }

    /// The operator aborts (`POST …/rollback`): all traffic back to the old version, reason
    /// "operator". Possible while pending, progressing or paused.
    public mutating func rollback(now: Int64) -> CommandOutcome {
        switch state {
        case .pending, .progressing, .paused: return .accepted(rollBack(.byOperator, now: now))
        default: return .refused(notPossible("roll back"))
        }
    }

    /// Takes up the stored progress after a restart (call on a new, pending rollout). A
    /// running or paused step starts again from its beginning (hold time and request count
    /// restart) at the same step; a step index the plan does not have is taken as its last
    /// step. Returns the actions that re-establish the routing and state (a completed plan
    /// with `retireOld` asks again to retire the old cluster; the driver ignores it when
    /// that cluster is gone). Nothing is persisted: the store already holds this progress.
    public mutating func restore(_ progress: RolloutProgress, now: Int64) -> [Action] {
        let step = min(max(progress.step, 0), max(plan.steps.count - 1, 0))
        var actions: [Action]
        switch progress.phase {
        case .pending:
            state = .pending
            return []
        case .progressing:
            state = .progressing(step: step, stepStarted: now, counted: nil)
            actions = stepRoute(step)
        case .paused:
            state = .paused(step: step, stepStarted: now, pausedAt: now)
            actions = stepRoute(step)
        case .completed:
            state = .completed(at: now)
            actions = [.route(.allNew)]
        case .rolledBack:
            state = .rolledBack(reason: .recorded(progress.reason ?? "unknown"), step: step, at: now)
            actions = [.route(.allOld)]
        }
        actions.append(.markState(progress.phase))
        if progress.phase == .completed && plan.retireOld { actions.append(.retireOld) }
        var fields = [RolloutLog.Field("state", progress.phase.rawValue)]
        if !plan.isGatesOnly { fields += stepFields(step) }
        actions.append(.log(RolloutLog("rollout_restored", fields)))
        return actions
    }

    // MARK: Transitions

    /// Starts step `step` at `now`.
    private mutating func enter(step: Int, now: Int64, counted: Int?, event: String) -> [Action] {
        state = .progressing(step: step, stepStarted: now, counted: counted)
        if plan.isGatesOnly { return [.markState(.progressing), .persist(progress)] }
        let mode = plan.steps[step].mode
        var fields = stepFields(step)
        fields.append(RolloutLog.Field("mode", mode.name))
        if case .concurrent(let serve) = mode { fields.append(RolloutLog.Field("serve", serve.rawValue)) }
        fields.append(RolloutLog.Field("percent", formatFigure(mode.percent)))
        return [.route(.step(mode)), .markState(.progressing), .persist(progress), .log(RolloutLog(event, fields))]
    }

    /// All traffic to the new version; `by` is "plan" or "operator".
    private mutating func complete(now: Int64, by: String) -> [Action] {
        state = .completed(at: now)
        var actions: [Action] = [
            .route(.allNew), .markState(.completed), .persist(progress),
            .log(RolloutLog("rollout_completed", [.init("steps", String(plan.steps.count)), .init("by", by)])),
        ]
        if plan.retireOld { actions.append(.retireOld) }
        return actions
    }

    /// All traffic back to the old version, at once.
    private mutating func rollBack(_ reason: RollbackReason, now: Int64) -> [Action] {
        let step: Int
        switch state {
        case .progressing(let s, _, _), .paused(let s, _, _): step = s
        default: step = 0
        }
        state = .rolledBack(reason: reason, step: step, at: now)
        var fields: [RolloutLog.Field] = []
        switch reason {
        case .gate(let f):
            fields = [.init("reason", "gate"), .init("gate", f.gate.rawValue), .init("value", formatFigure(f.value)),
                      .init("limit", formatFigure(f.limit)), .init("requests_new", String(f.newRequests)),
                      .init("requests_old", String(f.oldRequests))]
        case .byOperator, .recorded:
            fields = [.init("reason", reason.description)]
        }
        if !plan.isGatesOnly { fields += stepFields(step) }
        return [.route(.allOld), .markState(.rolledBack), .persist(progress), .log(RolloutLog("rollout_rolled_back", fields))]
    }

    private func stepRoute(_ step: Int) -> [Action] {
        plan.isGatesOnly ? [] : [.route(.step(plan.steps[step].mode))]
    }

    /// `step=<1-based> steps=<count>`.
    private func stepFields(_ step: Int) -> [RolloutLog.Field] {
        [.init("step", String(step + 1)), .init("steps", String(plan.steps.count))]
    }

    private func notPossible(_ command: String) -> String {
        "cannot \(command) a rollout that is \(phase.rawValue)"
    }

    // MARK: Views

    /// The progress to record for the current state.
    public var progress: RolloutProgress {
        switch state {
        case .pending:
            return RolloutProgress(phase: .pending, step: 0, percent: plan.isGatesOnly ? nil : 0)
        case .progressing(let step, _, _), .paused(let step, _, _):
            return RolloutProgress(phase: phase, step: step, percent: plan.isGatesOnly ? nil : plan.steps[step].mode.percent)
        case .completed:
            return RolloutProgress(phase: .completed, step: max(plan.steps.count - 1, 0), percent: 100)
        case .rolledBack(let reason, let step, _):
            return RolloutProgress(phase: .rolledBack, step: step, percent: 0, reason: reason.description)
        }
    }

    /// The rollout as the API and `/status` show it.
    public var status: RolloutStatus {
        let p = progress
        var s = RolloutStatus(state: p.phase, steps: plan.steps.count, percent: p.percent, gates: readings,
                              requests: requests, reason: p.reason)
        switch state {
        case .pending: break
        case .progressing(_, let started, _), .paused(_, let started, _): s.stepStarted = started
        case .completed, .rolledBack: break
        }
        if !plan.isGatesOnly, p.phase != .pending { s.step = p.step + 1 }
        return s
    }
}

/// A rollout as the API shows it (`"rollout": {…}` in `GET /configuration/cluster/{id}`
/// and `/status`).
public struct RolloutStatus: Equatable, Sendable {
    /// pending, progressing, paused, completed or rolledBack.
    public var state: Phase
    /// The current step, 1-based; nil while pending and for a plan of gates only.
    public var step: Int?
    /// How many steps the plan has (0 for gates only).
    public var steps: Int
    /// The share of clients the new version serves, in percent; nil for gates only while
    /// its 2014 mode decides.
    public var percent: Double?
    /// When the current step started (progressing or paused), on the driver's clock.
    public var stepStarted: Int64?
    /// Each gate's limit and the value on the last window.
    public var gates: [GateReading]
    /// The last window's request counts; nil before the first tick.
    public var requests: RequestCounts?
    /// Why it rolled back (rolledBack only).
    public var reason: String?

    /// Creates a status.
    public init(state: Phase, step: Int? = nil, steps: Int, percent: Double?, stepStarted: Int64? = nil,
                gates: [GateReading], requests: RequestCounts?, reason: String?) {
        self.state = state
        self.step = step
        self.steps = steps
        self.percent = percent
        self.stepStarted = stepStarted
        self.gates = gates
        self.requests = requests
        self.reason = reason
    }
}

/// How many exchanges each version had in a window.
public struct RequestCounts: Equatable, Sendable {
    /// The new version's exchanges.
    public var new: Int
    /// The old version's exchanges.
    public var old: Int

    /// Creates the counts.
    public init(new: Int, old: Int) {
        self.new = new
        self.old = old
    }
}
