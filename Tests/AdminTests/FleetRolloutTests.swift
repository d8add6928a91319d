@testable import Admin
import Comparator
import Fleet
import Observability
import Proxy
import Rollout
import Routing
import Store
import Synchronization
import Testing

/// The rollout driver's part in a fleet: a follower routes as the store says and records
/// nothing; a leader judges the fleet's summed totals.
@Suite("Rollout driver in a fleet")
struct FleetRolloutTests {
    final class TestClock: Sendable {
        let millis = Atomic<Int64>(1_000_000)
        func advance(seconds: Int64) { millis.wrappingAdd(seconds * 1000, ordering: .relaxed) }
        var now: Int64 { millis.load(ordering: .relaxed) }
    }

    /// Two GRADUAL steps of a second, then INSTANT; with an error gate when `judged`.
    func planned(judged: Bool) -> ClusterSpec {
        var s = spec("v2", "2.0", port: 1002)
        s.rollout = RolloutPlan(steps: [RolloutStep(mode: .gradual(percent: 10), holdSeconds: 1),
                                        RolloutStep(mode: .gradual(percent: 50), holdSeconds: 1), RolloutStep(mode: .instant)],
                                analysis: judged ? Analysis(maxErrorRatio: 0.05, windowSeconds: 5, minRequests: 10) : nil)
        return s
    }

    func setUp(role: RolloutDriver.FleetRole, judged: Bool = true, totals: (@Sendable () -> [String: ExchangeTotals])? = nil)
        throws -> (ClusterRegistry, RolloutDriver, TestClock, MemoryStore) {
        let store = MemoryStore()
        let registry = ClusterRegistry(reactors: 1, policy: RollbackPolicy(), store: store)
        _ = try registry.start(seed: [spec("v1", "1.0")])
        let clock = TestClock()
        let driver = RolloutDriver(registry: registry, comparisons: ComparisonLog(), clock: { clock.now })
        driver.setFleet(role: role, totals: totals)
        try registry.put(planned(judged: judged))
        driver.clustersChanged()
        return (registry, driver, clock, store)
    }

    func v2(_ r: ClusterRegistry) -> ClusterRuntime { r.snapshot.clusters.first { $0.spec.uuid == "v2" }! }

    @Test("a follower starts no plan and records nothing; it routes each step the store holds")
    func followerFollowsTheStore() throws {
        let (registry, driver, clock, store) = try setUp(role: .follower)
        for _ in 0..<3 { clock.advance(seconds: 2); driver.tick() }
        #expect(driver.status("v2")?.state == .pending)
        #expect(!store.appended.contains { if case .rollout = $0.1 { true } else { false } })
        #expect(v2(registry).state.plannedRoute == nil)
        // The leader wrote step 2 (as the watch brings it).
        var state = registry.storedState
        state.apply(.rollout(uuid: "v2", progress: RolloutProgress(phase: .progressing, step: 1, percent: 50)))
        store.stored = state
        registry.adopt(state)
        driver.storedChanged()
        #expect(driver.status("v2")?.step == 2, "the API counts steps from 1")
        #expect(v2(registry).state.plannedRoute == .gradual && v2(registry).state.gradualThreshold == 50)
        // Its time passes; it still does not advance the plan itself.
        for _ in 0..<3 { clock.advance(seconds: 2); driver.tick() }
        #expect(driver.status("v2")?.step == 2)
        // Then the leader rolls back: every exchange goes to the old version here too.
        state.apply(.rollout(uuid: "v2", progress: RolloutProgress(phase: .rolledBack, step: 1, reason: "error ratio")))
        store.stored = state
        registry.adopt(state)
        driver.storedChanged()
        #expect(v2(registry).state.isFailed)
    }

    @Test("a follower that becomes leader continues from the stored step")
    func takeOver() throws {
        let (registry, driver, clock, store) = try setUp(role: .follower, judged: false)
        var state = registry.storedState
        state.apply(.rollout(uuid: "v2", progress: RolloutProgress(phase: .progressing, step: 1, percent: 50)))
        store.stored = state
        registry.adopt(state)
        driver.storedChanged()
        driver.setFleet(role: .leader)
        #expect(driver.status("v2")?.step == 2)
        // Its step's hold starts again, then the leader moves the plan on and records it.
        clock.advance(seconds: 2); driver.tick()
        #expect(driver.status("v2")?.step == 3)
        #expect(registry.storedRollout(uuid: "v2")?.step == 2)
    }

    @Test("a leader judges the fleet's totals: errors counted by another instance roll the plan back")
    func leaderJudgesTheFleet() throws {
        // Another instance's counters, cumulative, as published.
        let remote = Atomic<Int>(0)
        let (registry, driver, clock, _) = try setUp(role: .leader, totals: {
            let n = remote.load(ordering: .relaxed)
            return ["v2": ExchangeTotals(requests: n, errors: n / 2, latency: Array(repeating: 0, count: LatencyHistogram.bucketCount)),
                    "v1": ExchangeTotals(requests: n, latency: Array(repeating: 0, count: LatencyHistogram.bucketCount))]
        })
        #expect(driver.status("v2")?.state == .progressing)
        for _ in 0..<3 {
            remote.wrappingAdd(20, ordering: .relaxed)
            clock.advance(seconds: 1)
            driver.tick()
        }
        // This instance counted nothing itself.
        #expect(v2(registry).metrics.sum(ClusterCounter.requests) == 0)
        #expect(driver.status("v2")?.state == .rolledBack)
        #expect(v2(registry).state.isFailed)
    }

    @Test("cut off from the store: the plan pauses, but a gate failing on this instance's exchanges rolls back here")
    func isolated() throws {
        let (registry, driver, clock, _) = try setUp(role: .leader)
        #expect(driver.status("v2")?.step == 1)
        driver.setFleet(role: .isolated)
        let new = v2(registry), old = registry.snapshot.clusters.first { $0.spec.uuid == "v1" }!
        func second(errors: Int) {
            for i in 0..<20 { new.metrics.record(reactor: 0, status: i < errors ? 503 : 200, latencyNanos: 1_000_000) }
            for _ in 0..<20 { old.metrics.record(reactor: 0, status: 200, latencyNanos: 1_000_000) }
            clock.advance(seconds: 1)
            driver.tick()
        }
        for _ in 0..<4 { second(errors: 0) }
        #expect(driver.status("v2")?.step == 1, "no step is taken while the fleet cannot agree")
        #expect(!new.state.isFailed)
        second(errors: 10)
        #expect(new.state.isFailed, "the rollback is not held back")
        #expect(driver.status("v2")?.state == .rolledBack)
    }
}
