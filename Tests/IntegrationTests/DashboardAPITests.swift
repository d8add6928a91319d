import Foundation
import Testing

/// The dashboard's data endpoints on the running binary (no browser needed): the events the
/// API, the rollout driver and the health checker cause, and the per-second series.
@Suite("Dashboard endpoints", .serialized)
struct DashboardAPITests {
    /// The events after id `after`, as (kind, cluster, detail).
    static func events(_ proxy: ProxyProcess, after: Int = 0) throws -> [(kind: String, cluster: String, detail: String)] {
        let (status, text) = try proxy.api("GET", "/events?after=\(after)")
        guard status == 200, let body = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
              let list = body["events"] as? [[String: Any]] else { throw HarnessError("GET /events: \(status) \(text)") }
        return list.map { ($0["kind"] as? String ?? "", $0["cluster"] as? String ?? "", $0["detail"] as? String ?? "") }
    }

    @Test("events: clusters loaded and added, a backend up and down, a rollout's step and its rollback by a gate")
    func eventsFromEverySource() throws {
        let a = try ProbedBackend("a")
        let v2 = try RolloutTests.version("v2", failEvery: 4)
        defer { a.stop(); v2.stop() }
        var v1 = ProxyProcess.cluster(ports: [a.port], version: "1.0", uuid: "v1")
        v1["healthCheck"] = quickCheck()
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [v1]))
        defer { proxy.stop() }
        let backend = "127.0.0.1:\(a.port)"
        try waitUntil("the backend up event") { try Self.events(proxy).contains { $0.kind == "backend_up" && $0.detail == backend } }
        let start = try Self.events(proxy)
        #expect(start.first.map { [$0.kind, $0.cluster, $0.detail] } == ["cluster_added", "v1", "pending its readiness gate (at start)"])
        try waitUntil("the ready event") { try Self.events(proxy).contains { $0.kind == "cluster_ready" && $0.cluster == "v1" } }

        _ = try proxy.putCluster(ProxyProcess.cluster(ports: [v2.port], version: "2.0", uuid: "v2", mode: [
            "steps": [["mode": "CONCURRENT", "serve": "old", "holdSeconds": 60], ["mode": "INSTANT"]],
            "analysis": ["maxErrorRatio": 0.01, "windowSeconds": 2, "minRequests": 8],
        ]))
        let added = try Self.events(proxy).filter { $0.cluster == "v2" }
        #expect(added.map(\.kind) == ["cluster_added", "rollout_step"], "recorded as the PUT returns: \(added)")
        #expect(added.first?.detail == "API")

        let client = try ClientConnection(port: proxy.port)
        try waitUntil("the rollback event", timeout: 20) {
            for _ in 0..<10 { _ = try client.get("/item") }
            return try Self.events(proxy).contains { $0.kind == "rollout_rolled_back" }
        }
        let rolledBack = try Self.events(proxy).filter { $0.cluster == "v2" && $0.kind != "rollout_step" && $0.kind != "cluster_added" }
        #expect(rolledBack.map(\.kind) == ["rollout_rolled_back"], "one event for the rollback: \(rolledBack)")
        #expect(rolledBack.first?.detail.contains("errorRatio") == true, "\(rolledBack)")

        a.healthy.store(false, ordering: .relaxed)
        try waitUntil("the backend down event") { try Self.events(proxy).contains { $0.kind == "backend_down" && $0.detail == backend } }
        let all = try Self.events(proxy)
        let last = try #require(try JSONSerialization.jsonObject(with: Data(proxy.api("GET", "/events?after=0").1.utf8)) as? [String: Any])
        #expect(last["next"] as? Int == all.count, "ids run from 1 without a gap")
        #expect(try Self.events(proxy, after: all.count - 1).map(\.kind) == [all.last!.kind])
        #expect(try proxy.api("GET", "/events?after=-3").0 == 400)
    }

    @Test("series: each second's requests and errors per cluster, for a page opened late")
    func series() throws {
        let v1 = try RolloutTests.version("v1", failEvery: 5)
        defer { v1.stop() }
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [v1.port], version: "1.0", uuid: "v1")]))
        defer { proxy.stop() }
        let client = try ClientConnection(port: proxy.port)
        for _ in 0..<50 { _ = try client.get("/") }
        var points: [[Any]] = []
        try waitUntil("the 50 exchanges in the series") {
            let (status, text) = try proxy.api("GET", "/series?seconds=300")
            #expect(status == 200)
            let body = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
            points = ((body?["clusters"] as? [String: Any])?["v1"] as? [String: Any])?["points"] as? [[Any]] ?? []
            return points.reduce(0) { $0 + ($1[1] as? Int ?? 0) } == 50
        }
        #expect(points.reduce(0) { $0 + ($1[2] as? Int ?? 0) } == 10, "every fifth answer was a 503")
        #expect(points.contains { ($0[4] as? Double ?? 0) > 0 }, "a p99 in ms: \(points)")
        let seconds = points.compactMap { $0[0] as? Int }
        #expect(seconds == seconds.sorted() && Set(seconds).count == seconds.count, "one point per second, oldest first")
        #expect(try proxy.api("GET", "/series?seconds=9999").1.hasPrefix("seconds: must be"))
        let (status, page) = try proxy.api("GET", "/")
        #expect(status == 200 && page.contains("<title>Switchyard</title>"))
    }
}
