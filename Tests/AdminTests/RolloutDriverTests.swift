import Admin
import Comparator
import Observability
import Proxy
import Rollout
import Routing
import Store
import Synchronization
import Testing

/// The driver between the pure rollout machines and the data plane: windows in, routing,
/// failed marks, stored progress and retirement out. No sockets: exchanges are counted into
/// the clusters' metrics as reactors would, and the clock is a number the test moves.
@Suite("Rollout driver")
struct RolloutDriverTests {
    final class TestClock: Sendable {
        let millis = Atomic<Int64>(1_000_000)
        func advance(seconds: Int64) { millis.wrappingAdd(seconds * 1000, ordering: .relaxed) }
        var now: Int64 { millis.load(ordering: .relaxed) }
    }

    func plan(_ steps: [RolloutStep], analysis: Analysis? = nil, retireOld: Bool = false) -> RolloutPlan {
        RolloutPlan(steps: steps, analysis: analysis, retireOld: retireOld)
    }

    func planned(_ uuid: String, _ version: String, _ plan: RolloutPlan) -> ClusterSpec {
        var s = spec(uuid, version, port: 1002)
        s.rollout = plan
        return s
    }

    func cluster(_ registry: ClusterRegistry, _ uuid: String) -> ClusterRuntime {
        registry.snapshot.clusters.first { $0.spec.uuid == uuid }!
    }

    /// One second of traffic: `new` and `old` answers counted the way reactors count them.
    func traffic(_ registry: ClusterRegistry, new: Int, newErrors: Int = 0, newMillis: UInt64 = 1, old: Int, clock: TestClock,
                 driver: RolloutDriver) {
        let n = cluster(registry, "v2"), o = cluster(registry, "v1")
        for i in 0..<new {
            n.metrics.record(reactor: 0, status: i < newErrors ? 503 : 200, latencyNanos: newMillis * 1_000_000)
        }
        for _ in 0..<old { o.metrics.record(reactor: 0, status: 200, latencyNanos: 1_000_000) }
        clock.advance(seconds: 1)
        driver.tick()
    }

    func setUp(_ plan: RolloutPlan, store: MemoryStore = MemoryStore()) throws -> (ClusterRegistry, RolloutDriver, TestClock) {
        let registry = ClusterRegistry(reactors: 1, policy: RollbackPolicy(), store: store)
        _ = try registry.start(seed: [spec("v1", "1.0")])
        let clock = TestClock()
        let driver = RolloutDriver(registry: registry, comparisons: ComparisonLog(), clock: { clock.now })
        driver.tick()
        try registry.put(planned("v2", "2.0", plan))
        driver.clustersChanged()
        return (registry, driver, clock)
    }

    @Test("a plan routes each step through the cluster's state, advances on time and count, and completes")
    func wholePlan() throws {
        let steps = [RolloutStep(mode: .concurrent(serve: .old), holdSeconds: 2, minRequests: 10),
                     RolloutStep(mode: .gradual(percent: 25), holdSeconds: 2),
                     RolloutStep(mode: .instant)]
        let store = MemoryStore()
        let (registry, driver, clock) = try setUp(plan(steps, analysis: Analysis(maxErrorRatio: 0.05, windowSeconds: 5, minRequests: 5),
                                                       retireOld: true), store: store)
        let v2 = cluster(registry, "v2")
        #expect(v2.state.plannedRoute == .concurrentServeOld, "the first step routes before the API answers")
        #expect(driver.status("v2")?.state == .progressing && driver.status("v2")?.step == 1)
        traffic(registry, new: 8, old: 8, clock: clock, driver: driver)
        traffic(registry, new: 8, old: 8, clock: clock, driver: driver)
        #expect(v2.state.plannedRoute == .gradual && v2.state.gradualThreshold == 25, "held 2 s with 16 exchanges")
        #expect(registry.storedRollout(uuid: "v2") == RolloutProgress(phase: .progressing, step: 1, percent: 25))
        traffic(registry, new: 8, old: 8, clock: clock, driver: driver)
        traffic(registry, new: 8, old: 8, clock: clock, driver: driver)
        #expect(v2.state.plannedRoute == .instant && driver.status("v2")?.step == 3)
        traffic(registry, new: 8, old: 0, clock: clock, driver: driver)
        #expect(driver.status("v2")?.state == .completed)
        #expect(registry.snapshot.clusters.map(\.spec.uuid) == ["v2"], "retireOld removed v1")
        #expect(store.stored?.clusters.first { $0.spec.uuid == "v2" }?.rollout?.phase == .completed)
    }

    @Test("a failing gate rolls back at once: the new cluster is marked failed with the gate's figures")
    func gateRollsBack() throws {
        let steps = [RolloutStep(mode: .gradual(percent: 10), holdSeconds: 60), RolloutStep(mode: .instant)]
        let (registry, driver, clock) = try setUp(plan(steps, analysis: Analysis(maxErrorRatio: 0.01, windowSeconds: 5, minRequests: 20)))
        traffic(registry, new: 10, newErrors: 1, old: 90, clock: clock, driver: driver)
        #expect(driver.status("v2")?.state == .progressing, "10 exchanges are too few to judge")
        traffic(registry, new: 10, newErrors: 0, old: 90, clock: clock, driver: driver)
        let status = try #require(driver.status("v2"))
        #expect(status.state == .rolledBack)
        #expect(status.reason?.contains("errorRatio") == true)
        let failure = try #require(cluster(registry, "v2").state.failure)
        #expect(failure.reason.hasPrefix("rolled back: errorRatio"))
        #expect(registry.storedRollout(uuid: "v2")?.phase == .rolledBack)
    }

    @Test("the latency gate compares the new version's percentile with the old one's over the same window")
    func latencyGate() throws {
        let steps = [RolloutStep(mode: .concurrent(serve: .old), holdSeconds: 60), RolloutStep(mode: .instant)]
        let (registry, driver, clock) = try setUp(plan(steps, analysis: Analysis(maxLatencyRatio: 1.5, latencyPercentile: 99,
                                                                                 windowSeconds: 5, minRequests: 20)))
        traffic(registry, new: 30, newMillis: 1, old: 30, clock: clock, driver: driver)
        #expect(driver.status("v2")?.state == .progressing)
        traffic(registry, new: 30, newMillis: 51, old: 30, clock: clock, driver: driver)
        #expect(driver.status("v2")?.state == .rolledBack)
        #expect(driver.status("v2")?.reason?.contains("latencyRatio") == true)
    }

    @Test("operator commands: pause holds the step, resume and promote move on, rollback aborts; refusals say why")
    func operatorCommands() throws {
        let steps = [RolloutStep(mode: .gradual(percent: 5), holdSeconds: 1), RolloutStep(mode: .gradual(percent: 50), holdSeconds: 1),
                     RolloutStep(mode: .instant)]
        let (registry, driver, clock) = try setUp(plan(steps))
        #expect(driver.command(.resume, uuid: "v2") == .refused("cannot resume a rollout that is progressing"))
        #expect(driver.command(.pause, uuid: "v2") == .accepted)
        traffic(registry, new: 5, old: 5, clock: clock, driver: driver)
        traffic(registry, new: 5, old: 5, clock: clock, driver: driver)
        #expect(driver.status("v2")?.state == .paused && driver.status("v2")?.step == 1)
        #expect(driver.command(.resume, uuid: "v2") == .accepted)
        traffic(registry, new: 5, old: 5, clock: clock, driver: driver)
        #expect(driver.status("v2")?.step == 2)
        #expect(driver.command(.promote, uuid: "v2") == .accepted)
        #expect(cluster(registry, "v2").state.plannedRoute == .completed && driver.status("v2")?.state == .completed)
        #expect(driver.command(.rollback, uuid: "v2") == .refused("cannot roll back a rollout that is completed"))
        #expect(driver.command(.pause, uuid: "nope") == .notFound("no cluster with uuid nope"))
        if case .notFound = driver.command(.pause, uuid: "v1") {} else { Issue.record("v1 has no plan") }
    }

    @Test("the operator's rollback sends traffic back at once; a PUT afterwards starts the plan again")
    func operatorRollbackThenRetry() throws {
        let steps = [RolloutStep(mode: .gradual(percent: 20), holdSeconds: 10), RolloutStep(mode: .instant)]
        let (registry, driver, _) = try setUp(plan(steps))
        #expect(driver.command(.rollback, uuid: "v2") == .accepted)
        #expect(cluster(registry, "v2").state.failure?.reason == "rolled back: operator")
        #expect(driver.status("v2")?.state == .rolledBack)
        try registry.put(planned("v2", "2.0", plan(steps)))
        driver.clustersChanged()
        #expect(!cluster(registry, "v2").state.isFailed)
        #expect(driver.status("v2")?.state == .progressing && driver.status("v2")?.step == 1)
    }

    @Test("a plan waits for its cluster's readiness gate, then starts")
    func readinessHoldsThePlan() throws {
        let registry = ClusterRegistry(reactors: 1, policy: RollbackPolicy(), store: MemoryStore())
        _ = try registry.start(seed: [spec("v1", "1.0")])
        let clock = TestClock()
        let driver = RolloutDriver(registry: registry, comparisons: ComparisonLog(), clock: { clock.now })
        var gated = planned("v2", "2.0", plan([RolloutStep(mode: .gradual(percent: 10), holdSeconds: 60), RolloutStep(mode: .instant)]))
        gated.healthCheck = HealthCheckSpec()
        try registry.put(gated)
        driver.clustersChanged()
        let v2 = cluster(registry, "v2")
        #expect(v2.health.isPending)
        #expect(driver.status("v2")?.state == .pending && v2.state.plannedRoute == nil, "no step while the gate holds")
        clock.advance(seconds: 1)
        driver.tick()
        #expect(driver.status("v2")?.state == .pending)
        #expect(v2.health.markReady())
        clock.advance(seconds: 1)
        driver.tick()
        #expect(driver.status("v2")?.state == .progressing && v2.state.plannedRoute == .gradual)
        #expect(v2.state.gradualThreshold == 10)
    }

    @Test("a restarted proxy resumes the plan at the same step and percentage")
    func restartMidPlan() throws {
        let steps = [RolloutStep(mode: .gradual(percent: 10), holdSeconds: 1), RolloutStep(mode: .gradual(percent: 40), holdSeconds: 600),
                     RolloutStep(mode: .instant)]
        let store = MemoryStore()
        let (registry, driver, clock) = try setUp(plan(steps), store: store)
        traffic(registry, new: 5, old: 5, clock: clock, driver: driver)
        #expect(driver.status("v2")?.step == 2)
        // A new process on the same store.
        let again = ClusterRegistry(reactors: 1, policy: RollbackPolicy(), store: store)
        _ = try again.start(seed: [])
        let driver2 = RolloutDriver(registry: again, comparisons: ComparisonLog(), clock: { clock.now })
        #expect(cluster(again, "v2").state.plannedRoute == nil, "no exchange before the plan is taken up")
        driver2.clustersChanged()
        #expect(driver2.status("v2")?.state == .progressing && driver2.status("v2")?.step == 2)
        #expect(cluster(again, "v2").state.plannedRoute == .gradual && cluster(again, "v2").state.gradualThreshold == 40)
    }
}
