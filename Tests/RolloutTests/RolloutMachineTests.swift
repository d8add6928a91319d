import Rollout
import Testing

/// Milliseconds: the start of every scenario, and one second.
let t0: Int64 = 1_764_000_000_000
let s: Int64 = 1_000

/// Dark launch 60 s, then 25 % for 60 s, then INSTANT; gates on; the old cluster retired.
let threeSteps = RolloutPlan(
    steps: [RolloutStep(mode: .concurrent(serve: .old), holdSeconds: 60, minRequests: 10),
            RolloutStep(mode: .gradual(percent: 25), holdSeconds: 60, minRequests: 10),
            RolloutStep(mode: .instant)],
    analysis: allGates, retireOld: true)
let noGates = RolloutPlan(steps: [RolloutStep(mode: .gradual(percent: 50), holdSeconds: 10, minRequests: 5), RolloutStep(mode: .instant)])
let gatesOnly = RolloutPlan(analysis: allGates)

/// A window that passes every gate, with `total` exchanges of the new version so far.
func good(_ total: Int) -> WindowStats { window(errors: 1, compared: 100, divergent: 1, total: total) }
/// A window whose error gate fails (10 of 100).
func erroring(_ total: Int) -> WindowStats { window(errors: 10, total: total) }
/// A window with too few new-version exchanges to be judged, however bad.
func thin(_ total: Int) -> WindowStats { window(new: 3, errors: 3, total: total) }

/// One event fed to the machine.
enum Event: Sendable, CustomStringConvertible {
    case ready(Int64), tick(Int64, WindowStats), pause(Int64), resume(Int64), promote(Int64), rollback(Int64)
    case restore(RolloutProgress, Int64)

    var description: String {
        switch self {
        case .ready: "ready"
        case .tick: "tick"
        case .pause: "pause"
        case .resume: "resume"
        case .promote: "promote"
        case .rollback: "rollback"
        case .restore(let p, _): "restore \(p.phase.rawValue)"
        }
    }
}

/// What an event gave back: actions, or a refusal.
enum Outcome: Equatable {
    case actions([Rollout.Action])
    case refused(String)
}

@discardableResult
func feed(_ r: inout Rollout, _ event: Event) -> Outcome {
    func wrap(_ o: CommandOutcome) -> Outcome {
        switch o {
        case .accepted(let a): .actions(a)
        case .refused(let why): .refused(why)
        }
    }
    switch event {
    case .ready(let t): return .actions(r.ready(now: t))
    case .tick(let t, let w): return .actions(r.tick(now: t, window: w))
    case .pause(let t): return wrap(r.pause(now: t))
    case .resume(let t): return wrap(r.resume(now: t))
    case .promote(let t): return wrap(r.promote(now: t))
    case .rollback(let t): return wrap(r.rollback(now: t))
    case .restore(let p, let t): return .actions(r.restore(p, now: t))
    }
}

// Expected actions, spelled once.
func stepLog(_ step: Int, _ steps: Int, _ mode: String, serve: String? = nil, percent: String) -> Rollout.Action {
    var f: [RolloutLog.Field] = [.init("step", String(step)), .init("steps", String(steps)), .init("mode", mode)]
    if let serve { f.append(.init("serve", serve)) }
    f.append(.init("percent", percent))
    return .log(RolloutLog("rollout_step", f))
}
let enterDark: [Rollout.Action] = [.route(.step(.concurrent(serve: .old))), .markState(.progressing),
                                   .persist(RolloutProgress(phase: .progressing, step: 0, percent: 0)),
                                   stepLog(1, 3, "CONCURRENT", serve: "old", percent: "0")]
let enterGradual: [Rollout.Action] = [.route(.step(.gradual(percent: 25))), .markState(.progressing),
                                      .persist(RolloutProgress(phase: .progressing, step: 1, percent: 25)),
                                      stepLog(2, 3, "GRADUAL", percent: "25")]
let enterInstant: [Rollout.Action] = [.route(.step(.instant)), .markState(.progressing),
                                      .persist(RolloutProgress(phase: .progressing, step: 2, percent: 100)),
                                      stepLog(3, 3, "INSTANT", percent: "100")]
func completed(by: String, steps: Int = 3, retire: Bool = true) -> [Rollout.Action] {
    [.route(.allNew), .markState(.completed), .persist(RolloutProgress(phase: .completed, step: max(steps - 1, 0), percent: 100)),
     .log(RolloutLog("rollout_completed", [.init("steps", String(steps)), .init("by", by)]))] + (retire ? [.retireOld] : [])
}
func rolledBackByOperator(step: Int, steps: Int = 3) -> [Rollout.Action] {
    var fields: [RolloutLog.Field] = [.init("reason", "operator")]
    if steps > 0 { fields += [.init("step", String(step + 1)), .init("steps", String(steps))] }
    return [.route(.allOld), .markState(.rolledBack),
            .persist(RolloutProgress(phase: .rolledBack, step: step, percent: 0, reason: "operator")),
            .log(RolloutLog("rollout_rolled_back", fields))]
}
let errorFailure = GateFailure(gate: .errorRatio, value: 0.1, limit: 0.05, newRequests: 100, oldRequests: 100)
func rolledBackByErrors(step: Int, steps: Int = 3) -> [Rollout.Action] {
    var fields: [RolloutLog.Field] = [.init("reason", "gate"), .init("gate", "errorRatio"), .init("value", "0.1"),
                                      .init("limit", "0.05"), .init("requests_new", "100"), .init("requests_old", "100")]
    if steps > 0 { fields += [.init("step", String(step + 1)), .init("steps", String(steps))] }
    return [.route(.allOld), .markState(.rolledBack),
            .persist(RolloutProgress(phase: .rolledBack, step: step, percent: 0, reason: errorFailure.description)),
            .log(RolloutLog("rollout_rolled_back", fields))]
}

/// Events that bring the three-step plan to a state.
let toProgressing: [Event] = [.ready(t0)]
let toSecondStep: [Event] = [.ready(t0), .tick(t0 + 1 * s, good(0)), .tick(t0 + 60 * s, good(10))]
let toPaused: [Event] = toSecondStep + [.pause(t0 + 70 * s)]
let toCompleted: [Event] = [.ready(t0), .promote(t0 + s)]
let toRolledBack: [Event] = [.ready(t0), .rollback(t0 + s)]

struct TransitionCase: CustomTestStringConvertible, Sendable {
    var name: String
    var plan: RolloutPlan = threeSteps
    var before: [Event]
    var event: Event
    var outcome: Outcome
    var state: Rollout.State
    var testDescription: String { name }
}

let later = t0 + 100 * s

let transitionCases: [TransitionCase] = [
    // pending
    TransitionCase(name: "pending + ready → first step", before: [], event: .ready(t0),
                   outcome: .actions(enterDark), state: .progressing(step: 0, stepStarted: t0, counted: nil)),
    TransitionCase(name: "pending + tick → nothing (no traffic yet)", before: [], event: .tick(t0, erroring(100)),
                   outcome: .actions([]), state: .pending),
    TransitionCase(name: "pending + pause → refused", before: [], event: .pause(t0),
                   outcome: .refused("cannot pause a rollout that is pending"), state: .pending),
    TransitionCase(name: "pending + resume → refused", before: [], event: .resume(t0),
                   outcome: .refused("cannot resume a rollout that is pending"), state: .pending),
    TransitionCase(name: "pending + promote → refused", before: [], event: .promote(t0),
                   outcome: .refused("cannot promote a rollout that is pending"), state: .pending),
    TransitionCase(name: "pending + rollback → rolled back by the operator", before: [], event: .rollback(t0),
                   outcome: .actions(rolledBackByOperator(step: 0)), state: .rolledBack(reason: .byOperator, step: 0, at: t0)),

    // progressing
    TransitionCase(name: "progressing + ready → ignored", before: toProgressing, event: .ready(t0 + s),
                   outcome: .actions([]), state: .progressing(step: 0, stepStarted: t0, counted: nil)),
    TransitionCase(name: "first tick marks where the step's count starts", before: toProgressing, event: .tick(t0 + s, good(7)),
                   outcome: .actions([]), state: .progressing(step: 0, stepStarted: t0, counted: 7)),
    TransitionCase(name: "held, counted, gates passing → next step", before: [.ready(t0), .tick(t0 + s, good(0))],
                   event: .tick(t0 + 60 * s, good(10)),
                   outcome: .actions(enterGradual), state: .progressing(step: 1, stepStarted: t0 + 60 * s, counted: 10)),
    TransitionCase(name: "not held yet → stays", before: [.ready(t0), .tick(t0 + s, good(0))], event: .tick(t0 + 59 * s, good(1000)),
                   outcome: .actions([]), state: .progressing(step: 0, stepStarted: t0, counted: 0)),
    TransitionCase(name: "held but too few exchanges of the new version in the step → stays",
                   before: [.ready(t0), .tick(t0 + s, good(100))], event: .tick(t0 + 90 * s, good(109)),
                   outcome: .actions([]), state: .progressing(step: 0, stepStarted: t0, counted: 100)),
    TransitionCase(name: "held and counted but the window too thin to judge → stays",
                   before: [.ready(t0), .tick(t0 + s, good(0))], event: .tick(t0 + 90 * s, thin(50)),
                   outcome: .actions([]), state: .progressing(step: 0, stepStarted: t0, counted: 0)),
    TransitionCase(name: "a thin window never rolls back", before: toSecondStep, event: .tick(t0 + 61 * s, thin(12)),
                   outcome: .actions([]), state: .progressing(step: 1, stepStarted: t0 + 60 * s, counted: 10)),
    TransitionCase(name: "a failing gate rolls back at once", before: toProgressing, event: .tick(t0 + s, erroring(100)),
                   outcome: .actions(rolledBackByErrors(step: 0)),
                   state: .rolledBack(reason: .gate(errorFailure), step: 0, at: t0 + s)),
    TransitionCase(name: "a failing gate in a later step rolls back from it", before: toSecondStep, event: .tick(t0 + 61 * s, erroring(100)),
                   outcome: .actions(rolledBackByErrors(step: 1)),
                   state: .rolledBack(reason: .gate(errorFailure), step: 1, at: t0 + 61 * s)),
    TransitionCase(name: "the driver's counter started again: counting restarts from its value",
                   before: [.ready(t0), .tick(t0 + s, good(500))], event: .tick(t0 + 60 * s, good(4)),
                   outcome: .actions([]), state: .progressing(step: 0, stepStarted: t0, counted: 4)),
    TransitionCase(name: "last step held → completed, old cluster retired",
                   before: toSecondStep + [.tick(t0 + 120 * s, good(20))], event: .tick(t0 + 121 * s, good(20)),
                   outcome: .actions(completed(by: "plan")), state: .completed(at: t0 + 121 * s)),
    TransitionCase(name: "progressing + pause → paused", before: toSecondStep, event: .pause(t0 + 70 * s),
                   outcome: .actions([.markState(.paused), .persist(RolloutProgress(phase: .paused, step: 1, percent: 25)),
                                      .log(RolloutLog("rollout_paused", [.init("step", "2"), .init("steps", "3")]))]),
                   state: .paused(step: 1, stepStarted: t0 + 60 * s, pausedAt: t0 + 70 * s)),
    TransitionCase(name: "progressing + resume → refused", before: toProgressing, event: .resume(t0 + s),
                   outcome: .refused("cannot resume a rollout that is progressing"), state: .progressing(step: 0, stepStarted: t0, counted: nil)),
    TransitionCase(name: "progressing + promote → completed now", before: toProgressing, event: .promote(t0 + s),
                   outcome: .actions(completed(by: "operator")), state: .completed(at: t0 + s)),
    TransitionCase(name: "progressing + rollback → rolled back by the operator", before: toSecondStep, event: .rollback(t0 + 61 * s),
                   outcome: .actions(rolledBackByOperator(step: 1)), state: .rolledBack(reason: .byOperator, step: 1, at: t0 + 61 * s)),

    // paused
    TransitionCase(name: "paused: held, counted, passing → does not advance", before: toPaused, event: .tick(later, good(1000)),
                   outcome: .actions([]), state: .paused(step: 1, stepStarted: t0 + 60 * s, pausedAt: t0 + 70 * s)),
    TransitionCase(name: "paused: a failing gate still rolls back", before: toPaused, event: .tick(later, erroring(1000)),
                   outcome: .actions(rolledBackByErrors(step: 1)), state: .rolledBack(reason: .gate(errorFailure), step: 1, at: later)),
    TransitionCase(name: "paused + pause → refused", before: toPaused, event: .pause(later),
                   outcome: .refused("cannot pause a rollout that is paused"), state: .paused(step: 1, stepStarted: t0 + 60 * s, pausedAt: t0 + 70 * s)),
    TransitionCase(name: "paused + resume → progressing, hold and count restart", before: toPaused, event: .resume(later),
                   outcome: .actions([.markState(.progressing), .persist(RolloutProgress(phase: .progressing, step: 1, percent: 25)),
                                      .log(RolloutLog("rollout_resumed", [.init("step", "2"), .init("steps", "3")]))]),
                   state: .progressing(step: 1, stepStarted: later, counted: nil)),
    TransitionCase(name: "paused + promote → completed", before: toPaused, event: .promote(later),
                   outcome: .actions(completed(by: "operator")), state: .completed(at: later)),
    TransitionCase(name: "paused + rollback → rolled back by the operator", before: toPaused, event: .rollback(later),
                   outcome: .actions(rolledBackByOperator(step: 1)), state: .rolledBack(reason: .byOperator, step: 1, at: later)),
    TransitionCase(name: "paused + ready → ignored", before: toPaused, event: .ready(later),
                   outcome: .actions([]), state: .paused(step: 1, stepStarted: t0 + 60 * s, pausedAt: t0 + 70 * s)),

    // completed
    TransitionCase(name: "completed + tick → nothing, however bad", before: toCompleted, event: .tick(later, erroring(1000)),
                   outcome: .actions([]), state: .completed(at: t0 + s)),
    TransitionCase(name: "completed + pause → refused", before: toCompleted, event: .pause(later),
                   outcome: .refused("cannot pause a rollout that is completed"), state: .completed(at: t0 + s)),
    TransitionCase(name: "completed + resume → refused", before: toCompleted, event: .resume(later),
                   outcome: .refused("cannot resume a rollout that is completed"), state: .completed(at: t0 + s)),
    TransitionCase(name: "completed + promote → refused", before: toCompleted, event: .promote(later),
                   outcome: .refused("cannot promote a rollout that is completed"), state: .completed(at: t0 + s)),
    TransitionCase(name: "completed + rollback → refused", before: toCompleted, event: .rollback(later),
                   outcome: .refused("cannot roll back a rollout that is completed"), state: .completed(at: t0 + s)),
    TransitionCase(name: "completed + ready → ignored", before: toCompleted, event: .ready(later),
                   outcome: .actions([]), state: .completed(at: t0 + s)),

    // rolled back
    TransitionCase(name: "rolled back + tick → nothing", before: toRolledBack, event: .tick(later, good(1000)),
                   outcome: .actions([]), state: .rolledBack(reason: .byOperator, step: 0, at: t0 + s)),
    TransitionCase(name: "rolled back + pause → refused", before: toRolledBack, event: .pause(later),
                   outcome: .refused("cannot pause a rollout that is rolledBack"), state: .rolledBack(reason: .byOperator, step: 0, at: t0 + s)),
    TransitionCase(name: "rolled back + resume → refused", before: toRolledBack, event: .resume(later),
                   outcome: .refused("cannot resume a rollout that is rolledBack"), state: .rolledBack(reason: .byOperator, step: 0, at: t0 + s)),
    TransitionCase(name: "rolled back + promote → refused", before: toRolledBack, event: .promote(later),
                   outcome: .refused("cannot promote a rollout that is rolledBack"), state: .rolledBack(reason: .byOperator, step: 0, at: t0 + s)),
    TransitionCase(name: "rolled back + rollback → refused", before: toRolledBack, event: .rollback(later),
                   outcome: .refused("cannot roll back a rollout that is rolledBack"), state: .rolledBack(reason: .byOperator, step: 0, at: t0 + s)),
    TransitionCase(name: "rolled back + ready → ignored", before: toRolledBack, event: .ready(later),
                   outcome: .actions([]), state: .rolledBack(reason: .byOperator, step: 0, at: t0 + s)),

    // a plan without analysis: time and count alone
    TransitionCase(name: "no gates: advances on time and count, whatever the errors", plan: noGates,
                   before: [.ready(t0), .tick(t0 + s, erroring(0))], event: .tick(t0 + 10 * s, erroring(5)),
                   outcome: .actions([.route(.step(.instant)), .markState(.progressing),
                                      .persist(RolloutProgress(phase: .progressing, step: 1, percent: 100)),
                                      stepLog(2, 2, "INSTANT", percent: "100")]),
                   state: .progressing(step: 1, stepStarted: t0 + 10 * s, counted: 5)),
    TransitionCase(name: "no gates: a window too thin for any analysis still advances", plan: noGates,
                   before: [.ready(t0), .tick(t0 + s, thin(0))], event: .tick(t0 + 10 * s, thin(5)),
                   outcome: .actions([.route(.step(.instant)), .markState(.progressing),
                                      .persist(RolloutProgress(phase: .progressing, step: 1, percent: 100)),
                                      stepLog(2, 2, "INSTANT", percent: "100")]),
                   state: .progressing(step: 1, stepStarted: t0 + 10 * s, counted: 5)),
    TransitionCase(name: "no gates, no retireOld: completion keeps the old cluster", plan: noGates,
                   before: [.ready(t0), .tick(t0 + s, good(0)), .tick(t0 + 10 * s, good(5))], event: .tick(t0 + 11 * s, good(5)),
                   outcome: .actions(completed(by: "plan", steps: 2, retire: false)), state: .completed(at: t0 + 11 * s)),

    // gates only (a 2014 mode with analysis)
    TransitionCase(name: "gates only + ready → judging; routing left to the 2014 mode", plan: gatesOnly, before: [], event: .ready(t0),
                   outcome: .actions([.markState(.progressing), .persist(RolloutProgress(phase: .progressing, step: 0, percent: nil))]),
                   state: .progressing(step: 0, stepStarted: t0, counted: nil)),
    TransitionCase(name: "gates only: never advances nor completes", plan: gatesOnly,
                   before: [.ready(t0), .tick(t0 + s, good(0))], event: .tick(t0 + 100_000 * s, good(1_000_000)),
                   outcome: .actions([]), state: .progressing(step: 0, stepStarted: t0, counted: nil)),
    TransitionCase(name: "gates only: a failing gate rolls back", plan: gatesOnly, before: [.ready(t0)], event: .tick(t0 + s, erroring(100)),
                   outcome: .actions(rolledBackByErrors(step: 0, steps: 0)), state: .rolledBack(reason: .gate(errorFailure), step: 0, at: t0 + s)),
    TransitionCase(name: "gates only + pause → refused", plan: gatesOnly, before: [.ready(t0)], event: .pause(t0 + s),
                   outcome: .refused("the plan has no steps to pause"), state: .progressing(step: 0, stepStarted: t0, counted: nil)),
    TransitionCase(name: "gates only + promote → completed (all traffic to the new version)", plan: gatesOnly, before: [.ready(t0)],
                   event: .promote(t0 + s), outcome: .actions(completed(by: "operator", steps: 0, retire: false)), state: .completed(at: t0 + s)),
    TransitionCase(name: "gates only + rollback → rolled back", plan: gatesOnly, before: [.ready(t0)], event: .rollback(t0 + s),
                   outcome: .actions(rolledBackByOperator(step: 0, steps: 0)), state: .rolledBack(reason: .byOperator, step: 0, at: t0 + s)),
]

@Test(arguments: transitionCases)
func transitions(_ c: TransitionCase) {
    var r = Rollout(plan: c.plan)
    for e in c.before { feed(&r, e) }
    #expect(feed(&r, c.event) == c.outcome)
    #expect(r.state == c.state)
    // Whatever was persisted is what the machine reports as its progress.
    if case .actions(let actions) = c.outcome {
        for case .persist(let p) in actions { #expect(p == r.progress) }
    }
}

@Test("a plan run to its end: one log line per transition, in order")
func wholePlan() {
    var r = Rollout(plan: threeSteps)
    var events: [String] = []
    var traffic: [Traffic] = []
    let script: [Event] = [
        .ready(t0), .tick(t0 + 30 * s, good(5)), .tick(t0 + 60 * s, good(15)),  // step 1 holds until 60 s
        .pause(t0 + 70 * s), .tick(t0 + 200 * s, good(100)), .resume(t0 + 200 * s),
        .tick(t0 + 259 * s, good(200)), .tick(t0 + 260 * s, good(210)),  // step 2 held and counted again from the resume
        .tick(t0 + 261 * s, good(200)),  // INSTANT: no hold, no count
    ]
    for e in script {
        if case .actions(let actions) = feed(&r, e) {
            for a in actions {
                if case .log(let line) = a { events.append(line.event) }
                if case .route(let t) = a { traffic.append(t) }
            }
        }
    }
    #expect(events == ["rollout_step", "rollout_step", "rollout_paused", "rollout_resumed", "rollout_step", "rollout_completed"])
    #expect(traffic == [.step(.concurrent(serve: .old)), .step(.gradual(percent: 25)), .step(.instant), .allNew])
    #expect(r.state == .completed(at: t0 + 261 * s))
}

struct RestoreCase: CustomTestStringConvertible, Sendable {
    var name: String
    var plan: RolloutPlan = threeSteps
    var progress: RolloutProgress
    var actions: [Rollout.Action]
    var state: Rollout.State
    var testDescription: String { name }
}

func restoredLog(_ state: String, step: Int? = nil, steps: Int = 3) -> Rollout.Action {
    var f: [RolloutLog.Field] = [.init("state", state)]
    if let step { f += [.init("step", String(step)), .init("steps", String(steps))] }
    return .log(RolloutLog("rollout_restored", f))
}

let restoreCases: [RestoreCase] = [
    RestoreCase(name: "mid-step: same step and percentage, hold restarts",
                progress: RolloutProgress(phase: .progressing, step: 1, percent: 25),
                actions: [.route(.step(.gradual(percent: 25))), .markState(.progressing), restoredLog("progressing", step: 2)],
                state: .progressing(step: 1, stepStarted: later, counted: nil)),
    RestoreCase(name: "paused stays paused",
                progress: RolloutProgress(phase: .paused, step: 0, percent: 0),
                actions: [.route(.step(.concurrent(serve: .old))), .markState(.paused), restoredLog("paused", step: 1)],
                state: .paused(step: 0, stepStarted: later, pausedAt: later)),
    RestoreCase(name: "completed: all to the new version, retire asked again",
                progress: RolloutProgress(phase: .completed, step: 2, percent: 100),
                actions: [.route(.allNew), .markState(.completed), .retireOld, restoredLog("completed", step: 3)],
                state: .completed(at: later)),
    RestoreCase(name: "rolled back: all to the old version, reason kept",
                progress: RolloutProgress(phase: .rolledBack, step: 1, percent: 0, reason: "errorRatio 0.1 above limit 0.05 (requests new 100, old 100)"),
                actions: [.route(.allOld), .markState(.rolledBack), restoredLog("rolledBack", step: 2)],
                state: .rolledBack(reason: .recorded("errorRatio 0.1 above limit 0.05 (requests new 100, old 100)"), step: 1, at: later)),
    RestoreCase(name: "pending stays pending, waiting for ready",
                progress: RolloutProgress(phase: .pending, step: 0, percent: 0), actions: [], state: .pending),
    RestoreCase(name: "a step the plan does not have is its last",
                progress: RolloutProgress(phase: .progressing, step: 9, percent: 50),
                actions: [.route(.step(.instant)), .markState(.progressing), restoredLog("progressing", step: 3)],
                state: .progressing(step: 2, stepStarted: later, counted: nil)),
    RestoreCase(name: "gates only: judging again, routing left to the 2014 mode", plan: gatesOnly,
                progress: RolloutProgress(phase: .progressing, step: 0, percent: nil),
                actions: [.markState(.progressing), restoredLog("progressing")],
                state: .progressing(step: 0, stepStarted: later, counted: nil)),
]

@Test(arguments: restoreCases)
func restore(_ c: RestoreCase) {
    var r = Rollout(plan: c.plan)
    #expect(r.restore(c.progress, now: later) == c.actions)
    #expect(r.state == c.state)
    #expect(r.progress.phase == c.progress.phase)
    #expect(r.progress.step == min(c.progress.step, max(c.plan.steps.count - 1, 0)))
}

@Test("restarted mid-step: the step's hold and count start again, then it advances as before")
func restartMidStep() {
    var before = Rollout(plan: threeSteps)
    for e in toSecondStep + [.tick(t0 + 100 * s, good(15))] { feed(&before, e) }
    let stored = before.progress
    #expect(stored == RolloutProgress(phase: .progressing, step: 1, percent: 25))

    var after = Rollout(plan: threeSteps)
    let restart = t0 + 110 * s
    _ = after.restore(stored, now: restart)
    #expect(after.tick(now: restart + 1 * s, window: good(0)) == [])  // the new process counts from 0
    #expect(after.tick(now: restart + 59 * s, window: good(50)) == [])  // 60 s not held since the restart
    #expect(after.tick(now: restart + 60 * s, window: good(50)) == enterInstant)
}

@Test("status: state, 1-based step, percent, step start, gates and the window's requests")
func status() {
    var r = Rollout(plan: threeSteps)
    #expect(r.status == RolloutStatus(state: .pending, steps: 3, percent: 0,
                                      gates: [GateReading(gate: .errorRatio, value: nil, limit: 0.05),
                                              GateReading(gate: .latencyRatio, value: nil, limit: 1.5),
                                              GateReading(gate: .divergenceRatio, value: nil, limit: 0.1)],
                                      requests: nil, reason: nil))
    for e in toSecondStep + [.tick(t0 + 61 * s, window(errors: 2, newLatency: 1_100, old: 300, compared: 40, divergent: 1, total: 12))] {
        feed(&r, e)
    }
    #expect(r.status == RolloutStatus(state: .progressing, step: 2, steps: 3, percent: 25, stepStarted: t0 + 60 * s,
                                      gates: [GateReading(gate: .errorRatio, value: 0.02, limit: 0.05),
                                              GateReading(gate: .latencyRatio, value: 1.1, limit: 1.5),
                                              GateReading(gate: .divergenceRatio, value: 0.025, limit: 0.1)],
                                      requests: RequestCounts(new: 100, old: 300), reason: nil))
    feed(&r, .tick(t0 + 62 * s, erroring(20)))
    let back = r.status
    #expect(back.state == .rolledBack)
    #expect(back.step == 2)
    #expect(back.percent == 0)
    #expect(back.stepStarted == nil)
    #expect(back.reason == "errorRatio 0.1 above limit 0.05 (requests new 100, old 100)")
    #expect(back.gates.first?.value == 0.1)

    var gates = Rollout(plan: gatesOnly)
    _ = gates.ready(now: t0)
    #expect(gates.status.step == nil)
    #expect(gates.status.steps == 0)
    #expect(gates.status.percent == nil)
    _ = gates.promote(now: t0 + s)
    #expect(gates.status.percent == 100)
    #expect(gates.status.state == .completed)
}
