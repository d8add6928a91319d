@testable import Admin
import Comparator
import Foundation
import Observability
import Proxy
import Rollout
import Routing
import Store
import Synchronization
import Testing

/// The dashboard's data: the event ring, the changes between two looks at the cluster set,
/// the per-second series, and the routes that serve them. No sockets; the clock is a number.
@Suite("Dashboard data")
struct DashboardTests {
    final class TestClock: Sendable {
        let millis = Atomic<Int64>(1_000_000)
        func advance(seconds: Int64) { millis.wrappingAdd(seconds * 1000, ordering: .relaxed) }
        var now: Int64 { millis.load(ordering: .relaxed) }
    }

    func view(_ uuid: String, state: String = "active", definition: UInt64 = 1, backends: [String: String] = [:],
              phase: Phase? = nil, step: Int? = nil, percent: Double? = nil, reason: String? = nil) -> ClusterView {
        ClusterView(uuid: uuid, version: uuid == "v1" ? "1.0" : "2.0", definition: definition, state: state,
                    failureReason: state == "failed" ? "rolled back: errors" : nil, backends: backends, phase: phase,
                    step: step, steps: step == nil ? 0 : 3, percent: percent, rollbackReason: reason)
    }

    @Test("the ring keeps the newest events and answers what came after an id")
    func ring() {
        var ring = EventRing(capacity: 3)
        let change = ClusterChange(.clusterAdded, view("v1"))
        for i in 0..<5 { ring.add(time: Int64(i), change) }
        #expect(ring.events.map(\.id) == [3, 4, 5])
        #expect(ring.after(0).map(\.id) == [3, 4, 5], "a page that missed dropped events gets what is left")
        #expect(ring.after(3).map(\.id) == [4, 5])
        #expect(ring.after(5).isEmpty)
        #expect(ring.after(99).isEmpty)
        #expect(EventRing().after(0).isEmpty)
    }

    @Test("changes between two looks", arguments: [
        ([], ["v1"], ["cluster_added"]),
        (["v1"], [], ["cluster_removed"]),
        (["v1"], ["v1:replaced"], ["cluster_replaced"]),
        (["v1:pending"], ["v1"], ["cluster_ready"]),
        (["v1"], ["v1:failed"], ["cluster_failed"]),
        (["v1:failed"], ["v1"], ["cluster_readmitted"]),
        (["v1"], ["v1"], []),
    ] as [([String], [String], [String])])
    func clusterChanges(before: [String], after: [String], kinds: [String]) {
        func views(_ names: [String]) -> [ClusterView] {
            names.map { name in
                let parts = name.split(separator: ":").map(String.init)
                let tag = parts.count > 1 ? parts[1] : ""
                return view(parts[0], state: ["pending", "failed"].contains(tag) ? tag : "active",
                            definition: tag == "replaced" ? 2 : 1)
            }
        }
        #expect(ClusterChange.between(views(before), views(after)).map(\.kind.rawValue) == kinds)
    }

    @Test("a rollout's steps, pause, resume, completion and rollback; a rollback is one event, not also a failure")
    func rolloutChanges() {
        let start = ClusterChange.between([], [view("v2", phase: .progressing, step: 1, percent: 10)])
        #expect(start.map(\.kind) == [.clusterAdded, .rolloutStep])
        #expect(start[1].detail == "step 1 of 3 (10 %)")
        let steps: [(Phase, Int?, Phase, Int?, [ClusterChange.Kind])] = [
            (.pending, nil, .progressing, 1, [.rolloutStep]),
            (.progressing, 1, .progressing, 2, [.rolloutStep]),
            (.progressing, 2, .paused, 2, [.rolloutPaused]),
            (.paused, 2, .progressing, 2, [.rolloutResumed]),
            (.progressing, 2, .completed, nil, [.rolloutCompleted]),
            (.progressing, 2, .progressing, 2, []),
        ]
        for (p0, s0, p1, s1, kinds) in steps {
            let changes = ClusterChange.between([view("v2", phase: p0, step: s0)], [view("v2", phase: p1, step: s1)])
            #expect(changes.map(\.kind) == kinds, "\(p0) step \(s0 ?? 0) → \(p1) step \(s1 ?? 0)")
        }
        let rolledBack = ClusterChange.between([view("v2", phase: .progressing, step: 1)],
                                               [view("v2", state: "failed", phase: .rolledBack, step: 1, reason: "errorRatio 0.1 > 0.01")])
        #expect(rolledBack.map(\.kind) == [.rolloutRolledBack])
        #expect(rolledBack[0].detail == "errorRatio 0.1 > 0.01")
        let byOperator = ClusterChange.between([view("v2", phase: .progressing, step: 1)], [view("v2", phase: .paused, step: 1)],
                                               cause: "by operator")
        #expect(byOperator.map(\.detail) == ["step 1 of 3 (by operator)"])
    }

    @Test("backends going up, down, drained and enabled")
    func backendChanges() {
        let a = "127.0.0.1:1", b = "127.0.0.1:2"
        let changes = ClusterChange.between([view("v1", backends: [a: "unknown", b: "up"])], [view("v1", backends: [a: "up", b: "down"])])
        #expect(changes.map(\.kind) == [.backendUp, .backendDown])
        #expect(changes.map(\.detail) == [a, b])
        let drained = ClusterChange.between([view("v1", backends: [a: "up"])], [view("v1", backends: [a: "drained"])])
        #expect(drained.map(\.kind) == [.backendDrained])
        let enabled = ClusterChange.between([view("v1", backends: [a: "drained"])], [view("v1", backends: [a: "up"])])
        #expect(enabled.map(\.kind) == [.backendEnabled, .backendUp])
    }

    func setUp() throws -> (ClusterRegistry, RolloutDriver, Dashboard, TestClock) {
        let registry = ClusterRegistry(reactors: 1, policy: RollbackPolicy(), store: MemoryStore())
        _ = try registry.start(seed: [spec("v1", "1.0")])
        let clock = TestClock()
        let driver = RolloutDriver(registry: registry, comparisons: ComparisonLog(), clock: { clock.now })
        let dashboard = Dashboard(registry: registry, rollouts: driver, clock: { clock.now })
        dashboard.noticeChanges()
        return (registry, driver, dashboard, clock)
    }

    @Test("one series point per second and cluster: requests, errors, p50 and p99; a late tick's counts are spread")
    func series() throws {
        let (registry, _, dashboard, clock) = try setUp()
        let v1 = registry.snapshot.clusters[0]
        dashboard.tick()
        for i in 0..<100 { v1.metrics.record(reactor: 0, status: i < 5 ? 503 : 200, latencyNanos: UInt64(i < 99 ? 1_000_000 : 50_000_000)) }
        clock.advance(seconds: 1)
        dashboard.tick()
        var points = dashboard.series(seconds: 300)["v1"]!.points
        #expect(points.count == 2)
        let last = points.last!
        #expect(last.requests == 100 && last.errors == 5)
        #expect(last.p50.map { (900...1100).contains($0) } == true, "p50 \(last.p50 ?? 0) µs")
        #expect(last.p99.map { $0 < 2000 } == true, "99 of 100 took 1 ms: \(last.p99 ?? 0) µs")
        for _ in 0..<10 { v1.metrics.record(reactor: 0, status: 200, latencyNanos: 1_000_000) }
        clock.advance(seconds: 2)
        dashboard.tick()
        points = dashboard.series(seconds: 300)["v1"]!.points
        #expect(points.suffix(2).map(\.requests) == [5, 5], "two seconds in one tick: half each")
        #expect(points.suffix(2).map(\.second) == [clock.now / 1000 - 1, clock.now / 1000])
        #expect(dashboard.series(seconds: 1)["v1"]!.points.count == 1)
        // Five minutes later only the newest 300 points are kept.
        for _ in 0..<400 { clock.advance(seconds: 1); dashboard.tick() }
        #expect(dashboard.series(seconds: 300)["v1"]!.points.count == 300)
    }

    @Test("API changes and the rollout driver's steps become events; a removed cluster's series stays")
    func events() throws {
        let (registry, driver, dashboard, clock) = try setUp()
        #expect(dashboard.events(after: 0).map(\.kind) == ["cluster_added"])
        var v2 = spec("v2", "2.0", port: 1002)
        v2.rollout = RolloutPlan(steps: [RolloutStep(mode: .gradual(percent: 10), holdSeconds: 1), RolloutStep(mode: .instant)])
        try registry.put(v2)
        driver.clustersChanged()
        dashboard.noticeChanges(cause: "API")
        let added = dashboard.events(after: 1)
        #expect(added.map(\.kind) == ["cluster_added", "rollout_step"])
        #expect(added.map(\.detail) == ["API", "step 1 of 2 (10 %) (API)"])
        dashboard.tick()
        for _ in 0..<3 { clock.advance(seconds: 1); driver.tick(); dashboard.tick() }
        let later = dashboard.events(after: 3).map(\.kind)
        #expect(later.contains("rollout_step") && later.contains("rollout_completed"), "\(later)")
        _ = try registry.delete(uuid: "v1", force: true)
        dashboard.noticeChanges()
        #expect(dashboard.events(after: 0).last?.kind == "cluster_removed")
        #expect(dashboard.series(seconds: 300)["v1"] != nil, "its history stays on the charts")
    }

    @Test("the routes: JSON shapes, and a 400 naming the field for bad query values")
    func routes() throws {
        let (_, _, dashboard, clock) = try setUp()
        dashboard.tick()
        clock.advance(seconds: 1)
        dashboard.tick()
        func get(_ path: String, _ query: String) -> AdminResponse {
            AdminAPI(registry: ClusterRegistry(reactors: 1, policy: RollbackPolicy()), metrics: ProxyMetrics(reactors: 1),
                     token: nil, workers: 1, dashboard: dashboard)
                .handle(AdminRequest(method: "GET", path: path, query: query, headers: [], body: []))
        }
        let series = get("/series", "seconds=60")
        #expect(series.status == 200)
        let body = try #require(try JSONSerialization.jsonObject(with: Data(series.body)) as? [String: Any])
        #expect(body["seconds"] as? Int == 60)
        let v1 = try #require((body["clusters"] as? [String: Any])?["v1"] as? [String: Any])
        #expect(v1["version"] as? String == "1.0")
        #expect((v1["points"] as? [[Any]])?.first?.count == 5)
        for bad in ["seconds=0", "seconds=301", "seconds=x"] {
            let r = get("/series", bad)
            #expect(r.status == 400 && String(decoding: r.body, as: UTF8.self).hasPrefix("seconds:"), "\(bad)")
        }
        let events = get("/events", "after=0")
        let list = try #require(try JSONSerialization.jsonObject(with: Data(events.body)) as? [String: Any])
        #expect(list["next"] as? Int == 1)
        #expect((list["events"] as? [[String: Any]])?.first?["kind"] as? String == "cluster_added")
        #expect(get("/events", "after=-1").status == 400)
        #expect(get("/events", "after=1").body == Array(#"{"events":[],"next":1}"#.utf8))
    }

    @Test("the page loads without the token; its data needs it")
    func tokenRules() throws {
        let (registry, driver, dashboard, _) = try setUp()
        let api = AdminAPI(registry: registry, metrics: ProxyMetrics(reactors: 1), token: "s3cret", workers: 1,
                           rollouts: driver, dashboard: dashboard)
        func get(_ path: String, token: String? = nil) -> AdminResponse {
            api.handle(AdminRequest(method: "GET", path: path, query: "",
                                    headers: token.map { [("Authorization", "Bearer " + $0)] } ?? [], body: []))
        }
        let page = get("/")
        #expect(page.status == 200 && page.contentType.hasPrefix("text/html"))
        let html = String(decoding: page.body, as: UTF8.self)
        #expect(!html.contains("http://") && !html.contains("https://"), "no external resource")
        for path in ["/series", "/events", "/status"] {
            #expect(get(path).status == 401, "\(path) without the token")
            #expect(get(path, token: "s3cret").status == 200, "\(path) with it")
        }
    }
}
