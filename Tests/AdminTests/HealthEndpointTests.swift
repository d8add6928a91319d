@testable import Admin
import Config
import Observability
import Proxy
import Routing
import Testing

/// `/healthz` and `/readyz` answered by the API alone, with the worker ping stubbed.
@Suite("Health endpoints")
struct HealthEndpointTests {
    func get(_ api: AdminAPI, _ path: String, token: String? = nil) -> (status: Int, body: [String: Any]) {
        let headers = token.map { [(name: "Authorization", value: "Bearer \($0)")] } ?? []
        let response = api.handle(AdminRequest(method: "GET", path: path, query: "", headers: headers, body: []))
        return (response.status, (try? JSONText.parse(response.body)) as? [String: Any] ?? [:])
    }

    @Test("healthz is 200 when every worker answers, 503 naming the silent one otherwise; no token needed")
    func liveness() throws {
        let registry = ClusterRegistry(reactors: 2, policy: RollbackPolicy(), store: nil)
        _ = try registry.start(seed: [spec("v1", "1.0")])
        let api = AdminAPI(registry: registry, metrics: ProxyMetrics(reactors: 2), token: "secret", workers: 2)
        api.setWorkerPing { [true, true] }
        var answer = get(api, "/healthz")
        #expect(answer.status == 200)
        #expect(answer.body["status"] as? String == "ok")
        #expect((answer.body["workers"] as? [Any])?.count == 2)
        api.setWorkerPing { [true, false] }
        answer = get(api, "/healthz")
        #expect(answer.status == 503)
        #expect(answer.body["reason"] as? String == "worker 1 did not answer a ping within 1 s")
        // Other paths still need the token.
        #expect(get(api, "/status").status == 401)
        #expect(get(api, "/status", token: "secret").status == 200)
        let post = api.handle(AdminRequest(method: "POST", path: "/healthz", query: "", headers: [], body: []))
        #expect(post.status == 405)
    }

    @Test("readyz waits for the start, then for a cluster that is neither failed nor pending")
    func readiness() throws {
        let registry = ClusterRegistry(reactors: 1, policy: RollbackPolicy(), store: nil)
        var pending = spec("v1", "1.0")
        pending.healthCheck = HealthCheckSpec(healthyThreshold: 1)
        _ = try registry.start(seed: [pending])
        let api = AdminAPI(registry: registry, metrics: ProxyMetrics(reactors: 1), token: nil, workers: 1)
        var answer = get(api, "/readyz")
        #expect(answer.status == 503)
        #expect(answer.body["reason"] as? String == "starting: listeners or state not ready yet")
        api.markServing()
        answer = get(api, "/readyz")
        #expect(answer.status == 503)
        #expect(answer.body["reason"] as? String == "no ready cluster (every cluster is failed or pending)")
        let live = try #require(registry.snapshot.clusters.first)
        _ = live.health.record(.status(200), server: 0)
        live.health.markReady()
        answer = get(api, "/readyz")
        #expect(answer.status == 200)
        #expect(answer.body["readyClusters"] as? [String] == ["v1"])
    }
}
