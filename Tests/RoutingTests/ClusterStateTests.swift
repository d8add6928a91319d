import Testing
@testable import Routing

@Test func markFailedChangesStateOnce() {
    let s = ClusterState()
    #expect(!s.isFailed)
    #expect(s.failure == nil)
    #expect(s.markFailed(reason: "no healthy backend", at: 100))
    #expect(!s.markFailed(reason: "again", at: 200))
    #expect(s.isFailed)
    #expect(s.failure?.reason == "no healthy backend")
    #expect(s.failure?.time == 100)
    s.readmit()
    #expect(!s.isFailed)
    #expect(s.failure == nil)
    #expect(s.markFailed(reason: "third", at: 300))
}

@Test func markFailedRaceHasOneWinner() async {
    let s = ClusterState()
    let wins = await withTaskGroup(of: Bool.self) { group in
        for i in 0..<8 { group.addTask { s.markFailed(reason: "r\(i)", at: Int64(i)) } }
        var n = 0
        for await won in group where won { n += 1 }
        return n
    }
    #expect(wins == 1)
}

struct GradualCase: CustomTestStringConvertible, Sendable {
    var steps: [Double]
    var expected: Double
    var testDescription: String { "\(steps) → \(expected)" }
}

let gradualCases: [GradualCase] = [
    GradualCase(steps: [], expected: 0),
    GradualCase(steps: [30, 30, 30], expected: 90),
    GradualCase(steps: [30, 30, 30, 30], expected: 100),
    GradualCase(steps: [150], expected: 100),
    GradualCase(steps: [0, -5, .nan, .infinity], expected: 0),
    GradualCase(steps: Array(repeating: 0.1, count: 10), expected: 1),
    GradualCase(steps: Array(repeating: 0.5, count: 300), expected: 100),
    GradualCase(steps: [99.9999995, 1e-9], expected: 100),
]

@Test(arguments: gradualCases)
func gradualThresholdRisesAndCaps(_ c: GradualCase) {
    let s = ClusterState()
    for step in c.steps { s.advanceGradual(by: step) }
    #expect(abs(s.gradualThreshold - c.expected) < 1e-9)
}

@Test func gradualAdvanceFromManyTasksLosesNothing() async {
    let s = ClusterState()
    await withTaskGroup(of: Void.self) { group in
        for _ in 0..<4 {
            group.addTask { for _ in 0..<10_000 { s.advanceGradual(by: 0.001) } }
        }
    }
    #expect(abs(s.gradualThreshold - 40) < 1e-9)
}

@Test func readmitRestartsGradualAndWindow() {
    let s = ClusterState()
    s.advanceGradual(by: 50)
    s.record(success: false, nowMillis: 1_000)
    _ = s.markFailed(reason: "x", at: 1)
    s.readmit()
    #expect(s.gradualThreshold == 0)
    #expect(s.failureRatio(nowMillis: 1_000) == (0, 0))
    s.setGradualThreshold(250)
    #expect(s.gradualThreshold == 100)
}

struct WindowCase: CustomTestStringConvertible, Sendable {
    var name: String
    /// (time in ms, success) outcomes, in order.
    var outcomes: [(Int64, Bool)]
    var at: Int64
    var failures: Int
    var total: Int
    var testDescription: String { name }
}

let t0: Int64 = 1_700_000_000_000

let windowCases: [WindowCase] = [
    WindowCase(name: "empty", outcomes: [], at: t0, failures: 0, total: 0),
    WindowCase(name: "same second", outcomes: [(t0, false), (t0 + 1, true), (t0 + 999, false)],
               at: t0 + 999, failures: 2, total: 3),
    WindowCase(name: "spread over the window", outcomes: (0..<10).map { (t0 + Int64($0) * 1000, $0 % 2 == 0) },
               at: t0 + 9_999, failures: 5, total: 10),
    WindowCase(name: "oldest second expires when the window moves",
               outcomes: [(t0, false), (t0, false), (t0 + 5_000, true)],
               at: t0 + 10_000, failures: 0, total: 1),
    WindowCase(name: "just inside the window",
               outcomes: [(t0, false), (t0 + 5_000, true)],
               at: t0 + 9_999, failures: 1, total: 2),
    WindowCase(name: "everything expired", outcomes: [(t0, false), (t0 + 3_000, true)],
               at: t0 + 60_000, failures: 0, total: 0),
    WindowCase(name: "slot reused after 64 seconds", outcomes: [(t0, false), (t0 + 64_000, true)],
               at: t0 + 64_000, failures: 0, total: 1),
    WindowCase(name: "negative times", outcomes: [(-1, false), (-1_500, true)],
               at: 0, failures: 1, total: 2),
]

@Test(arguments: windowCases)
func rollbackWindow(_ c: WindowCase) {
    let s = ClusterState(windowSeconds: 10)
    for (t, ok) in c.outcomes { s.record(success: ok, nowMillis: t) }
    let r = s.failureRatio(nowMillis: c.at)
    #expect(r.failures == c.failures)
    #expect(r.total == c.total)
}

@Test func windowGeometry() {
    #expect(ClusterState(windowSeconds: 10).bucketCount == 10)
    #expect(ClusterState(windowSeconds: 10).bucketMillis == 1_000)
    #expect(ClusterState(windowSeconds: 60).bucketCount == 60)
    let wide = ClusterState(windowSeconds: 300)
    #expect(wide.bucketMillis == 5_000)
    #expect(wide.bucketCount == 60)
    #expect(ClusterState(windowSeconds: 0).bucketCount == 1)
}

@Test func recordFromManyTasksLosesNothing() async {
    let s = ClusterState()
    await withTaskGroup(of: Void.self) { group in
        for task in 0..<4 {
            group.addTask {
                for i in 0..<5_000 { s.record(success: (i + task) % 4 != 0, nowMillis: t0 + Int64(i % 3000)) }
            }
        }
    }
    let r = s.failureRatio(nowMillis: t0 + 3000)
    #expect(r.total == 20_000)
    #expect(r.failures == 5_000)
}

struct PolicyCase: CustomTestStringConvertible, Sendable {
    var failures: Int
    var successes: Int
    var policy: RollbackPolicy
    var fail: Bool
    var testDescription: String { "\(failures)/\(failures + successes) with \(policy)" }
}

let policyCases: [PolicyCase] = [
    PolicyCase(failures: 15, successes: 5, policy: RollbackPolicy(), fail: true),
    PolicyCase(failures: 15, successes: 4, policy: RollbackPolicy(), fail: false),  // below minRequests
    PolicyCase(failures: 10, successes: 10, policy: RollbackPolicy(), fail: false), // ratio 0.5 is not above 0.5
    PolicyCase(failures: 11, successes: 9, policy: RollbackPolicy(), fail: true),
    PolicyCase(failures: 1, successes: 0, policy: RollbackPolicy(minRequests: 1), fail: true),
    PolicyCase(failures: 0, successes: 0, policy: RollbackPolicy(minRequests: 0), fail: false),
    PolicyCase(failures: 3, successes: 7, policy: RollbackPolicy(minRequests: 10, maxFailureRatio: 0.2), fail: true),
]

@Test(arguments: policyCases)
func rollbackPolicy(_ c: PolicyCase) {
    let s = ClusterState(policy: c.policy)
    for _ in 0..<c.failures { s.record(success: false, nowMillis: t0) }
    for _ in 0..<c.successes { s.record(success: true, nowMillis: t0) }
    #expect(c.policy.shouldFail(s, nowMillis: t0 + 500) == c.fail)
    // The same outcomes, once out of the window, never fail the cluster.
    #expect(!c.policy.shouldFail(s, nowMillis: t0 + Int64(c.policy.windowSeconds) * 1000))
}
