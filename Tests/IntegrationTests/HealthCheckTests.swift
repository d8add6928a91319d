import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A backend whose `/healthz` answers 200 or 503 as a test says, and whose other paths
/// answer with its name. `/slow` waits until the test opens `gate` (an exchange in flight).
final class ProbedBackend: @unchecked Sendable {
    let name: String
    let healthy = Atomic<Bool>(true)
    let gate = DispatchSemaphore(value: 0)
    private(set) var backend: TestBackend!

    init(_ name: String, healthy: Bool = true) throws {
        self.name = name
        self.healthy.store(healthy, ordering: .relaxed)
        backend = try TestBackend { [self] request, socket in
            switch request.target {
            case "/healthz":
                let ok = self.healthy.load(ordering: .relaxed)
                try TestBackend.respond(socket, status: ok ? 200 : 503, body: ok ? "ok\n" : "not yet\n")
                return false
            case "/slow":
                _ = self.gate.wait(timeout: .now() + 20)
                try TestBackend.respond(socket, headers: ["X-Backend: \(self.name)"], body: "\(self.name) slow\n")
                return true
            default:
                try TestBackend.respond(socket, headers: ["X-Backend: \(self.name)"], body: "\(self.name)\n")
                return true
            }
        }
    }

    var port: Int { backend.port }
    /// Requests other than health probes.
    var exchanges: [TestBackend.Request] { backend.requests.filter { $0.target != "/healthz" } }
    var probes: Int { backend.requests.filter { $0.target == "/healthz" }.count }
    func stop() { backend.stop() }
}

/// A short health check for tests: probes every 0.2 s.
func quickCheck(_ extra: [String: Any] = [:]) -> [String: Any] {
    var check: [String: Any] = ["path": "/healthz", "intervalSeconds": 0.2, "timeoutSeconds": 0.5,
                                "healthyThreshold": 2, "unhealthyThreshold": 2]
    for (k, v) in extra { check[k] = v }
    return check
}

extension ProxyProcess {
    /// `GET /configuration/cluster/{uuid}` as an object (the `cluster` member).
    func cluster(_ uuid: String) throws -> [String: Any] {
        let (status, text) = try api("GET", "/configuration/cluster/\(uuid)")
        guard status == 200, let o = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
              let c = o["cluster"] as? [String: Any] else { throw HarnessError("GET \(uuid): \(status) \(text)") }
        return c
    }

    /// The `state` GET shows for a cluster.
    func state(_ uuid: String) throws -> String { try cluster(uuid)["state"] as? String ?? "?" }

    /// The status GET shows for one backend (`host:port`) of a cluster.
    func backendStatus(_ uuid: String, _ backend: String) throws -> String {
        try (cluster(uuid)["backends"] as? [String: Any])?[backend] as? String ?? "?"
    }

    /// The body of a GET through the proxy on a new connection.
    func fetch(_ path: String = "/") throws -> String {
        let conn = try ClientConnection(port: port)
        defer { conn.close() }
        return try conn.get(path).bodyText
    }

    /// One metric line's value, or nil.
    func metric(_ prefix: String) throws -> String? {
        let (_, text) = try api("GET", "/metrics")
        return text.split(separator: "\n").first { $0.hasPrefix(prefix) }.map { String($0.split(separator: " ").last ?? "") }
    }
}

@Suite("Health checks, readiness and drain", .serialized)
struct HealthCheckTests {
    @Test("readiness gate: a new version stays pending (no traffic) while /healthz fails, then takes traffic once it passes")
    func readinessGate() throws {
        let old = try ProbedBackend("old")
        let new = try ProbedBackend("new", healthy: false)
        defer { old.stop(); new.stop() }
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [old.port], version: "1.0", uuid: "v1")]))
        defer { proxy.stop() }
        var v2 = ProxyProcess.cluster(ports: [new.port], version: "2.0", uuid: "v2")
        v2["healthCheck"] = quickCheck()
        _ = try proxy.putCluster(v2)
        #expect(try proxy.state("v2") == "pending")
        // Several probes have failed: still pending, and the previous version serves.
        try waitUntil("three probes of the new version") { new.probes >= 3 }
        #expect(try proxy.state("v2") == "pending")
        #expect(try proxy.statusClusters()["v2"]?["state"] as? String == "pending")
        #expect(try proxy.metric(#"switchyard_cluster_pending{service="default",cluster="v2""#) == "1")
        #expect(try proxy.backendStatus("v2", "127.0.0.1:\(new.port)") == "down")
        for _ in 0..<5 { #expect(try proxy.fetch() == "old\n") }
        #expect(new.exchanges.isEmpty)
        #expect(try proxy.api("GET", "/status").1.contains(#""latest":"v1""#))

        new.healthy.store(true, ordering: .relaxed)
        try waitUntil("the new version to pass its gate") { try proxy.state("v2") == "active" }
        #expect(try proxy.metric(#"switchyard_cluster_pending{service="default",cluster="v2""#) == "0")
        #expect(try proxy.metric(#"switchyard_backend_up{service="default",cluster="v2",version="2.0",backend="127.0.0.1:\#(new.port)"}"#) == "1")
        #expect(try proxy.backendStatus("v2", "127.0.0.1:\(new.port)") == "up")
        #expect(try proxy.fetch() == "new\n")
        try waitUntil("the log lines") { proxy.log.contains("event=cluster_ready uuid=v2") && proxy.log.contains("event=backend_healthy uuid=v2") }
        // The probe is the proxy's own HTTP/1.1 request.
        let probe = try #require(new.backend.requests.first { $0.target == "/healthz" })
        #expect(probe.method == "GET" && probe.version == "HTTP/1.1")
        #expect(probe.header("Host") == "127.0.0.1:\(new.port)" && probe.header("Connection") == "close")
    }

    @Test("not ready within readyTimeoutSeconds → failed with reason \"not ready\"; the previous version keeps serving")
    func readyTimeout() throws {
        let old = try ProbedBackend("old")
        let new = try ProbedBackend("new", healthy: false)
        defer { old.stop(); new.stop() }
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [old.port], version: "1.0", uuid: "v1")]))
        defer { proxy.stop() }
        var v2 = ProxyProcess.cluster(ports: [new.port, TestBackend.closedPort()], version: "2.0", uuid: "v2")
        v2["healthCheck"] = quickCheck(["readyTimeoutSeconds": 1, "expectStatus": "200-299"])
        _ = try proxy.putCluster(v2)
        #expect(try proxy.state("v2") == "pending")
        try waitUntil("the gate to time out") { try proxy.state("v2") == "failed" }
        let failure = try #require(try proxy.cluster("v2")["failure"] as? [String: Any])
        #expect(failure["reason"] as? String == "not ready")
        #expect(try proxy.fetch() == "old\n")
        #expect(new.exchanges.isEmpty)
        #expect(try proxy.metric(#"switchyard_cluster_failed{service="default",cluster="v2""#) == "1")
        try waitUntil("the log line") { proxy.log.contains("event=cluster_failed uuid=v2 version=2.0 reason=\"not ready\"") }
        // A backend that refuses connections fails its probes too.
        #expect(try proxy.backendStatus("v2", "127.0.0.1:\(new.port)") == "down")
    }

    @Test("failover: a backend that fails its health check gets no new exchanges, and gets them again once it passes")
    func failover() throws {
        let a = try ProbedBackend("a")
        let b = try ProbedBackend("b")
        defer { a.stop(); b.stop() }
        var v1 = ProxyProcess.cluster(ports: [a.port, b.port], version: "1.0", uuid: "v1")
        v1["healthCheck"] = quickCheck()
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [v1]))
        defer { proxy.stop() }
        try waitUntil("both backends up") {
            try proxy.backendStatus("v1", "127.0.0.1:\(a.port)") == "up" && proxy.backendStatus("v1", "127.0.0.1:\(b.port)") == "up"
        }
        try waitUntil("v1 ready") { try proxy.state("v1") == "active" }
        let both = Set(try (0..<6).map { _ in try proxy.fetch() })
        #expect(both == ["a\n", "b\n"])

        a.healthy.store(false, ordering: .relaxed)
        try waitUntil("a to be found down") { try proxy.backendStatus("v1", "127.0.0.1:\(a.port)") == "down" }
        let before = a.exchanges.count
        // a still answers ordinary requests: only its health check keeps it out.
        for _ in 0..<10 { #expect(try proxy.fetch() == "b\n") }
        #expect(a.exchanges.count == before)
        #expect(try proxy.metric(#"switchyard_backend_up{service="default",cluster="v1",version="1.0",backend="127.0.0.1:\#(a.port)"}"#) == "0")
        #expect(try proxy.state("v1") == "active")  // the only cluster, and b is up

        a.healthy.store(true, ordering: .relaxed)
        try waitUntil("a to be up again") { try proxy.backendStatus("v1", "127.0.0.1:\(a.port)") == "up" }
        #expect(Set(try (0..<6).map { _ in try proxy.fetch() }) == ["a\n", "b\n"])
        let log = proxy.log
        #expect(log.components(separatedBy: "event=backend_unhealthy uuid=v1 version=1.0 backend=127.0.0.1:\(a.port)").count == 2)
        #expect(log.components(separatedBy: "event=backend_healthy uuid=v1 version=1.0 backend=127.0.0.1:\(a.port)").count == 3)
        #expect(log.contains(#"probe="status 503""#))
    }

    @Test("a ready version whose every backend fails its health check is rolled back (no healthy backend)")
    func allBackendsDown() throws {
        let old = try ProbedBackend("old")
        let new = try ProbedBackend("new")
        defer { old.stop(); new.stop() }
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [old.port], version: "1.0", uuid: "v1")]))
        defer { proxy.stop() }
        var v2 = ProxyProcess.cluster(ports: [new.port], version: "2.0", uuid: "v2")
        v2["healthCheck"] = quickCheck()
        _ = try proxy.putCluster(v2)
        try waitUntil("v2 ready") { try proxy.state("v2") == "active" }
        #expect(try proxy.fetch() == "new\n")
        new.healthy.store(false, ordering: .relaxed)
        try waitUntil("v2 rolled back") { try proxy.state("v2") == "failed" }
        #expect((try proxy.cluster("v2")["failure"] as? [String: Any])?["reason"] as? String == "no healthy backend")
        #expect(try proxy.fetch() == "old\n")
    }

    @Test("drain: the exchange in flight finishes, no new exchanges, pooled connections close; enable restores; 404/405/400")
    func drainAndEnable() throws {
        let a = try ProbedBackend("a")
        let b = try ProbedBackend("b")
        defer { a.stop(); b.stop() }
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [a.port, b.port], version: "1.0", uuid: "v1")]))
        defer { proxy.stop() }
        // Keep-alive traffic leaves a pooled connection to each backend.
        let warm = try ClientConnection(port: proxy.port)
        #expect(Set(try (0..<4).map { _ in try warm.get("/").bodyText }) == ["a\n", "b\n"])
        warm.close()

        // An exchange in flight on a, however round-robin picks: send /slow until a has one.
        let slow = try ClientConnection(port: proxy.port, timeout: 20)
        try slow.send("GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
        try waitUntil("the slow exchange to reach a backend") { a.exchanges.contains { $0.target == "/slow" } || b.exchanges.contains { $0.target == "/slow" } }
        let (busy, other) = a.exchanges.contains { $0.target == "/slow" } ? (a, b) : (b, a)

        let path = "/configuration/cluster/v1/servers/127.0.0.1:\(busy.port)"
        #expect(try proxy.api("POST", path + "/drain").0 == 202)
        #expect(try proxy.backendStatus("v1", "127.0.0.1:\(busy.port)") == "drained")
        #expect(try proxy.metric(#"switchyard_backend_drained{service="default",cluster="v1",version="1.0",backend="127.0.0.1:\#(busy.port)"}"#) == "1")
        let before = busy.exchanges.count
        for _ in 0..<8 { #expect(try proxy.fetch() == "\(other.name)\n") }
        #expect(busy.exchanges.count == before)
        // The exchange in flight finishes normally.
        busy.gate.signal()
        let response = try slow.readResponse()
        #expect(response.status == 200 && response.bodyText == "\(busy.name) slow\n")
        slow.close()
        // Its connection, and the one pooled earlier, are closed by the worker.
        try waitUntil("the drained backend's connections to close") { busy.backend.openConnections == 0 }
        try waitUntil("the log line") { proxy.log.contains("event=backend_drained uuid=v1 version=1.0 backend=127.0.0.1:\(busy.port)") }

        #expect(try proxy.api("POST", path + "/enable").0 == 202)
        #expect(try proxy.backendStatus("v1", "127.0.0.1:\(busy.port)") == "unknown")
        #expect(Set(try (0..<6).map { _ in try proxy.fetch() }) == ["a\n", "b\n"])

        #expect(try proxy.api("POST", "/configuration/cluster/nope/servers/127.0.0.1:\(busy.port)/drain").0 == 404)
        #expect(try proxy.api("POST", "/configuration/cluster/v1/servers/127.0.0.1:1/drain").0 == 404)
        #expect(try proxy.api("POST", "/configuration/cluster/v1/servers/[::1]:\(busy.port)/drain").0 == 404)
        #expect(try proxy.api("POST", "/configuration/cluster/v1/servers/%5B::1%5D:\(busy.port)/enable").0 == 404)
        #expect(try proxy.api("POST", "/configuration/cluster/v1/servers/::1:80/drain").0 == 400)
        #expect(try proxy.api("POST", "/configuration/cluster/v1/servers/127.0.0.1/drain").0 == 400)
        let wrong = try proxy.api("GET", path + "/drain")
        #expect(wrong.0 == 405)
        #expect(try proxy.api("POST", path + "/pause").0 == 404)
    }

    @Test("drained backends and passed readiness gates survive a restart with --state-dir")
    func drainSurvivesRestart() throws {
        let a = try ProbedBackend("a")
        let b = try ProbedBackend("b")
        defer { a.stop(); b.stop() }
        let stateDir = makeStateDirPath()
        defer { try? FileManager.default.removeItem(atPath: stateDir) }
        var v1 = ProxyProcess.cluster(ports: [a.port, b.port], version: "1.0", uuid: "v1")
        v1["healthCheck"] = quickCheck(["intervalSeconds": 0.5])
        let config = ProxyProcess.config(clusters: [v1])
        let arguments = ["--workers", "1", "--log-level", "INFO", "--state-dir", stateDir]
        let proxy = try ProxyProcess(config: config, arguments: arguments)
        // The file's cluster has a health check: it passes its gate first.
        #expect(proxy.log.contains("event=serving_cluster version=1.0 uuid=v1") && proxy.log.contains("state=pending"))
        try waitUntil("v1 ready") { try proxy.state("v1") == "active" }
        #expect(try proxy.api("POST", "/configuration/cluster/v1/servers/127.0.0.1:\(a.port)/drain").0 == 202)
        // The readiness is journaled by the control plane's tick, the drain before the 202.
        try waitUntil("the journal to hold both") {
            let journal = String(decoding: FileManager.default.contents(atPath: stateDir + "/journal") ?? Data(), as: UTF8.self)
            return journal.contains(#""op":"ready""#) && journal.contains(#""op":"drained""#)
        }
        proxy.kill9()
        proxy.stop()

        let again = try ProxyProcess(config: config, arguments: arguments)
        defer { again.stop() }
        // Ready at once (no gate again), with a still drained.
        #expect(again.log.contains("state=active"))
        #expect(try again.backendStatus("v1", "127.0.0.1:\(a.port)") == "drained")
        let before = a.exchanges.count
        for _ in 0..<6 { #expect(try again.fetch() == "b\n") }
        #expect(a.exchanges.count == before)
        #expect(try again.api("POST", "/configuration/cluster/v1/servers/127.0.0.1:\(a.port)/enable").0 == 202)
        again.kill9()
        again.stop()

        let third = try ProxyProcess(config: config, arguments: arguments)
        defer { third.stop() }
        #expect(try third.backendStatus("v1", "127.0.0.1:\(a.port)") != "drained")
        #expect(Set(try (0..<6).map { _ in try third.fetch() }) == ["a\n", "b\n"])
    }
}
