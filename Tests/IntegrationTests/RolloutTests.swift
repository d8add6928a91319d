import Foundation
import Synchronization
import Testing

/// Staged rollouts on the running binary with real backends: a dark launch judged and rolled
/// back, a good version carried to the end, operator commands, and a restart mid-plan.
@Suite("Rollouts", .serialized)
struct RolloutTests {
    /// A backend that answers `name` and, when `failEvery` > 0, a 503 on every n-th request.
    static func version(_ name: String, failEvery: Int = 0) throws -> TestBackend {
        let count = Atomic<Int>(0)
        return try TestBackend { _, socket in
            let n = count.add(1, ordering: .relaxed).newValue
            if failEvery > 0 && n % failEvery == 0 {
                try TestBackend.respond(socket, status: 503, headers: ["X-Backend: \(name)"], body: "unavailable\n")
            } else {
                try TestBackend.respond(socket, headers: ["X-Backend: \(name)"], body: "answer\n")
            }
            return true
        }
    }

    func config(_ v1: TestBackend) -> [String: Any] {
        ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [v1.port], version: "1.0", uuid: "v1")],
                            extra: ["comparisons": ["ignoreHeaders": ["Date", "Server", "X-Backend"]]])
    }

    func start(_ v1: TestBackend, arguments: [String] = ["--workers", "1", "--log-level", "INFO"]) throws -> ProxyProcess {
        try ProxyProcess(config: config(v1), arguments: arguments)
    }

    /// The `rollout` object of cluster `uuid`.
    func rollout(_ proxy: ProxyProcess, _ uuid: String) throws -> [String: Any] {
        let (status, text) = try proxy.api("GET", "/configuration/cluster/\(uuid)")
        guard status == 200, let body = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
              let cluster = body["cluster"] as? [String: Any], let rollout = cluster["rollout"] as? [String: Any] else {
            throw HarnessError("GET cluster \(uuid): \(status) \(text)")
        }
        return rollout
    }

    func put(_ proxy: ProxyProcess, _ v2: TestBackend, plan: [String: Any]) throws {
        _ = try proxy.putCluster(ProxyProcess.cluster(ports: [v2.port], version: "2.0", uuid: "v2", mode: plan))
    }

    @Test("dark launch: a new version failing 1 in 10 is rolled back by the error gate, and no client saw it")
    func darkLaunchRollsBack() throws {
        let v1 = try Self.version("v1")
        let v2 = try Self.version("v2", failEvery: 10)
        let proxy = try start(v1)
        defer { proxy.stop(); v1.stop(); v2.stop() }
        try put(proxy, v2, plan: ["steps": [["mode": "CONCURRENT", "serve": "old", "holdSeconds": 60], ["mode": "INSTANT"]],
                                  "analysis": ["maxErrorRatio": 0.01, "windowSeconds": 3, "minRequests": 20]])
        let client = try ClientConnection(port: proxy.port)
        var served: [String: Int] = [:]
        var bad = 0
        try waitUntil("the plan to roll back", timeout: 20) {
            for _ in 0..<20 {
                let r = try client.get("/item")
                served[r.header("X-Backend") ?? "?", default: 0] += 1
                if r.status != 200 { bad += 1 }
            }
            return try rollout(proxy, "v2")["state"] as? String == "rolledBack"
        }
        #expect(bad == 0 && served.keys.sorted() == ["v1"], "every client got the old version's answer: \(served)")
        #expect(!v2.requests.isEmpty, "the new version answered the mirrored requests")
        let r = try rollout(proxy, "v2")
        #expect((r["reason"] as? String)?.contains("errorRatio") == true, "\(r)")
        #expect(try proxy.api("GET", "/configuration/cluster/v2").1.contains("\"state\":\"failed\""))
        #expect(proxy.log.contains("event=rollout_rolled_back"))
        #expect(try client.get("/after").header("X-Backend") == "v1")
    }

    @Test("a good version goes through every step — dark launch, 50 %, all — and completes; the old one is retired")
    func goodVersionCompletes() throws {
        let v1 = try Self.version("v1")
        let v2 = try Self.version("v2")
        let proxy = try start(v1)
        defer { proxy.stop(); v1.stop(); v2.stop() }
        try put(proxy, v2, plan: ["steps": [["mode": "CONCURRENT", "holdSeconds": 1, "minRequests": 10],
                                            ["mode": "GRADUAL", "percent": 50, "holdSeconds": 1],
                                            ["mode": "INSTANT"]],
                                  "analysis": ["maxErrorRatio": 0.01, "maxDivergenceRatio": 0.01, "windowSeconds": 2, "minRequests": 5],
                                  "retireOld": true])
        var stepsSeen = Set<Int>()
        var darkLaunchServedBy = Set<String>()
        try waitUntil("the plan to complete", timeout: 30) {
            let state = try rollout(proxy, "v2")
            let step = state["step"] as? Int ?? 0
            stepsSeen.insert(step)
            for _ in 0..<10 {
                let r = try ClientConnection(port: proxy.port).get("/item")
                #expect(r.status == 200)
                let stillDark = try rollout(proxy, "v2")["step"] as? Int == 1
                if step == 1 && stillDark { darkLaunchServedBy.insert(r.header("X-Backend") ?? "?") }
            }
            return state["state"] as? String == "completed"
        }
        #expect(stepsSeen.isSuperset(of: [1, 2]), "steps seen: \(stepsSeen)")
        #expect(darkLaunchServedBy.isSubset(of: ["v1"]), "the dark launch served only v1: \(darkLaunchServedBy)")
        #expect(try ClientConnection(port: proxy.port).get("/x").header("X-Backend") == "v2")
        try waitUntil("v1 to be retired") { try proxy.api("GET", "/configuration/cluster/v1").0 == 404 }
        let metrics = try proxy.api("GET", "/metrics").1
        #expect(metrics.contains(#"switchyard_rollout_state{cluster="v2",state="completed"} 1"#))
        #expect(metrics.contains(#"switchyard_rollout_percent{cluster="v2"} 100"#))
    }

    @Test("operator commands: pause, resume, promote, rollback; wrong state 409, no plan 404, wrong method 405")
    func operatorCommands() throws {
        let v1 = try Self.version("v1")
        let v2 = try Self.version("v2")
        let proxy = try start(v1)
        defer { proxy.stop(); v1.stop(); v2.stop() }
        try put(proxy, v2, plan: ["steps": [["mode": "GRADUAL", "percent": 10, "holdSeconds": 600], ["mode": "INSTANT"]]])
        #expect(try rollout(proxy, "v2")["percent"] as? Double == 10)
        #expect(try proxy.api("POST", "/configuration/cluster/v2/resume").0 == 409)
        #expect(try proxy.api("POST", "/configuration/cluster/v2/pause").0 == 202)
        #expect(try rollout(proxy, "v2")["state"] as? String == "paused")
        #expect(try proxy.api("POST", "/configuration/cluster/v2/resume").0 == 202)
        #expect(try proxy.api("GET", "/configuration/cluster/v2/pause").0 == 405)
        #expect(try proxy.api("POST", "/configuration/cluster/v1/pause").0 == 404)
        #expect(try proxy.api("POST", "/configuration/cluster/nope/promote").0 == 404)
        #expect(try proxy.api("POST", "/configuration/cluster/v2/promote").0 == 202)
        #expect(try rollout(proxy, "v2")["state"] as? String == "completed")
        #expect(try ClientConnection(port: proxy.port).get("/").header("X-Backend") == "v2")
        #expect(try proxy.api("POST", "/configuration/cluster/v2/rollback").0 == 409)
        // A new attempt, aborted by the operator: traffic goes back to v1 at once.
        try put(proxy, v2, plan: ["steps": [["mode": "GRADUAL", "percent": 90, "holdSeconds": 600], ["mode": "INSTANT"]]])
        #expect(try proxy.api("POST", "/configuration/cluster/v2/rollback").0 == 202)
        let r = try rollout(proxy, "v2")
        #expect(r["state"] as? String == "rolledBack" && r["reason"] as? String == "operator")
        for _ in 0..<5 { #expect(try ClientConnection(port: proxy.port).get("/").header("X-Backend") == "v1") }
    }

    @Test("a 2014 mode with an analysis gains its gates: GRADUAL routes as before and rolls back on errors")
    func gatesOnlyPlan() throws {
        let v1 = try Self.version("v1")
        let v2 = try Self.version("v2", failEvery: 4)
        let proxy = try start(v1)
        defer { proxy.stop(); v1.stop(); v2.stop() }
        try put(proxy, v2, plan: ["mode": "GRADUAL", "percentageTransitionPerRequest": 5,
                                  "analysis": ["maxErrorRatio": 0.05, "windowSeconds": 5, "minRequests": 10]])
        #expect(try rollout(proxy, "v2")["state"] as? String == "progressing")
        try waitUntil("the gate to roll v2 back", timeout: 20) {
            for _ in 0..<10 { _ = try ClientConnection(port: proxy.port).get("/") }
            return try rollout(proxy, "v2")["state"] as? String == "rolledBack"
        }
        #expect(!v2.requests.isEmpty, "GRADUAL sent clients to v2 as in 2014")
        #expect((try rollout(proxy, "v2")["reason"] as? String)?.hasPrefix("errorRatio") == true)
        for _ in 0..<5 { #expect(try ClientConnection(port: proxy.port).get("/").header("X-Backend") == "v1") }
    }

    @Test("a proxy killed mid-plan comes back at the same step and percentage")
    func restartMidPlan() throws {
        let v1 = try Self.version("v1")
        let v2 = try Self.version("v2")
        defer { v1.stop(); v2.stop() }
        let stateDir = makeStateDirPath()
        defer { try? FileManager.default.removeItem(atPath: stateDir) }
        let args = ["--workers", "1", "--log-level", "INFO", "--state-dir", stateDir]
        let first = try start(v1, arguments: args)
        try put(first, v2, plan: ["steps": [["mode": "GRADUAL", "percent": 5, "holdSeconds": 1],
                                            ["mode": "GRADUAL", "percent": 40, "holdSeconds": 600], ["mode": "INSTANT"]]])
        try waitUntil("step 2") { try rollout(first, "v2")["step"] as? Int == 2 }
        first.kill9()
        first.stop()
        let second = try ProxyProcess(config: config(v1), arguments: args)
        defer { second.stop() }
        try waitUntil("the plan to be taken up") { (try? rollout(second, "v2"))?["step"] as? Int == 2 }
        let r = try rollout(second, "v2")
        #expect(r["state"] as? String == "progressing" && r["percent"] as? Double == 40)
        #expect(second.log.contains("event=rollout_restored"))
    }
}
