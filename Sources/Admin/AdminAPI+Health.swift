import Config
import Locks
import Proxy
import Routing

/// What the health endpoints know of the process beyond the registry: how to ping the workers
/// and whether the process has finished starting (listeners bound, state loaded).
public struct HealthState: Sendable {
    /// Pings every worker through its mailbox; per worker, whether it answered within a second.
    /// Nil in tools and tests that run no data plane (then only the process is checked).
    var pingWorkers: (@Sendable () -> [Bool])?
    /// True once the proxy's listeners are bound and the durable state is loaded.
    var serving = false
}

extension AdminAPI {
    /// The two paths answered before the token check: load balancers and Kubernetes probes
    /// carry no credentials, and the answers reveal nothing beyond up or down.
    static let healthPaths: Set<String> = ["/healthz", "/readyz"]

    /// Hands the API the way to ping the workers (`ProxyServer.ping`).
    public func setWorkerPing(_ ping: @escaping @Sendable () -> [Bool]) {
        healthState.withLock { $0.pingWorkers = ping }
    }

    /// Marks the process as started: listeners bound and state loaded (`/readyz` needs it).
    public func markServing() {
        healthState.withLock { $0.serving = true }
    }

    /// `GET /healthz` and `GET /readyz`, or nil for any other path.
    func healthAnswer(_ request: AdminRequest) -> AdminResponse? {
        guard Self.healthPaths.contains(request.path) else { return nil }
        // GET only: the admin server writes every body, so a HEAD answer would carry one.
        guard request.method == "GET" else {
            return AdminResponse(status: 405, body: Array("method not allowed; use GET\n".utf8), extraHeaders: ["Allow: GET"])
        }
        let state = healthState.withLock { $0 }
        let answer = request.path == "/healthz" ? Self.liveness(ping: state.pingWorkers)
                                                : Self.readiness(serving: state.serving, clusters: registry.snapshot.clusters)
        var response = AdminResponse.json(answer.ok ? 200 : 503, JSONText.encode(answer.body))
        response.extraHeaders.append("Cache-Control: no-store")
        return response
    }

    /// Liveness: every worker answered a ping through its mailbox in time.
    /// `{"status": "ok" | "unhealthy", "workers": [{"worker": 0, "answered": true}], "reason"?}`.
    static func liveness(ping: (@Sendable () -> [Bool])?) -> (ok: Bool, body: [String: Any]) {
        let answers = ping?() ?? []
        let silent = answers.indices.filter { !answers[$0] }
        var body: [String: Any] = [
            "status": silent.isEmpty ? "ok" : "unhealthy",
            "workers": answers.enumerated().map { ["worker": $0.offset, "answered": $0.element] as [String: Any] },
        ]
        if !silent.isEmpty {
            body["reason"] = "worker \(silent.map(String.init).joined(separator: ", ")) did not answer a ping within 1 s"
        }
        return (silent.isEmpty, body)
    }

    /// Readiness: started (listeners bound, state loaded) and at least one cluster that takes
    /// traffic (neither failed nor pending its readiness gate).
    /// `{"status": "ready" | "not ready", "listeners", "state", "readyClusters": [uuid], "reason"?}`.
    static func readiness(serving: Bool, clusters: [ClusterRuntime]) -> (ok: Bool, body: [String: Any]) {
        let ready = clusters.filter { !$0.state.isFailed && !$0.health.isPending }.map(\.spec.uuid)
        var reason: String?
        if !serving {
            reason = "starting: listeners or state not ready yet"
        } else if ready.isEmpty {
            reason = clusters.isEmpty ? "no cluster configured" : "no ready cluster (every cluster is failed or pending)"
        }
        var body: [String: Any] = ["status": reason == nil ? "ready" : "not ready", "listeners": serving, "state": serving,
                                   "readyClusters": ready]
        if let reason { body["reason"] = reason }
        return (reason == nil, body)
    }

    /// `switchyard_workers` and `switchyard_workers_answering` (from a ping, as `/healthz`), and
    /// `switchyard_ready` (1 when `/readyz` would answer 200), for alerts on stuck reactors.
    func renderHealthMetrics() -> String {
        let state = healthState.withLock { $0 }
        var out = ""
        if let ping = state.pingWorkers {
            let answers = ping()
            out += "# HELP switchyard_workers Worker (reactor) threads.\n# TYPE switchyard_workers gauge\n"
            out += "switchyard_workers \(answers.count)\n"
            out += "# HELP switchyard_workers_answering Workers that answered a ping through their mailbox within 1 s.\n"
            out += "# TYPE switchyard_workers_answering gauge\nswitchyard_workers_answering \(answers.filter { $0 }.count)\n"
        }
        let ready = Self.readiness(serving: state.serving, clusters: registry.snapshot.clusters).ok
        out += "# HELP switchyard_ready 1 when the proxy is ready for traffic (/readyz answers 200).\n"
        out += "# TYPE switchyard_ready gauge\nswitchyard_ready \(ready ? 1 : 0)\n"
        return out
    }
}
