import Foundation
import Testing

/// Upgrade modes and rollback, against the running binary with real backends.
@Suite("Upgrade modes and rollback", .serialized)
struct UpgradeModeTests {
    /// A proxy with v1.0 on `old` (uuid "old").
    func start(old: TestBackend, extra: [String: Any] = [:]) throws -> ProxyProcess {
        try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [old.port], version: "1.0", uuid: "old")], extra: extra))
    }

    /// The value of a Set-Cookie `name=value` in a response.
    func cookie(_ name: String, in response: TestResponse) -> String? {
        for line in response.headers("Set-Cookie") {
            let pair = line.split(separator: ";").first.map(String.init) ?? ""
            if pair.hasPrefix(name + "=") { return String(pair.dropFirst(name.count + 1)) }
        }
        return nil
    }

    @Test("INSTANT: after a PUT every request goes to the new version, even on a kept-alive connection")
    func instant() throws {
        let old = try TestBackend.named("old")
        let new = try TestBackend.named("new")
        let proxy = try start(old: old)
        defer { proxy.stop(); old.stop(); new.stop() }
        let client = try ClientConnection(port: proxy.port)
        #expect(try client.get("/").bodyText == "old\n")
        let uuid = try proxy.putCluster(ProxyProcess.cluster(ports: [new.port], version: "1.1", mode: ["mode": "INSTANT"]))
        #expect(uuid.count == 36)
        try waitUntil("the new snapshot to reach the worker") { try client.get("/").bodyText == "new\n" }
        let r = try client.get("/")
        #expect(r.bodyText == "new\n")
        #expect(cookie("dynsoftup", in: r) == uuid)
        #expect(r.header("Set-Cookie")?.contains("Expires") == false)
    }

    @Test("SESSION: a cookie pins the client to its version; no cookie or a stale one → latest")
    func session() throws {
        let old = try TestBackend.named("old")
        let new = try TestBackend.named("new")
        let proxy = try start(old: old)
        defer { proxy.stop(); old.stop(); new.stop() }
        let uuid = try proxy.putCluster(ProxyProcess.cluster(ports: [new.port], version: "2.0", uuid: "new", mode: ["mode": "SESSION", "sessionTimeout": 60]))
        #expect(uuid == "new")
        let client = try ClientConnection(port: proxy.port)
        try waitUntil("the new snapshot") { try client.get("/").bodyText == "new\n" }
        let pinned = try client.get("/", headers: ["Cookie": "a=b; dynsoftup=old; c=d"])
        #expect(pinned.bodyText == "old\n")
        let setCookie = pinned.header("Set-Cookie") ?? ""
        #expect(setCookie.hasPrefix("dynsoftup=old; Path=/; HttpOnly; SameSite=Lax; Expires="))
        #expect(setCookie.hasSuffix("; Max-Age=60"))
        #expect(try client.get("/", headers: ["Cookie": "dynsoftup=gone"]).bodyText == "new\n")
        let fresh = try client.get("/")
        #expect(fresh.bodyText == "new\n" && cookie("dynsoftup", in: fresh) == "new")
    }

    @Test("GRADUAL: a client id cookie, a threshold that rises with successes, clients that moved stay")
    func gradual() throws {
        let old = try TestBackend.named("old")
        let new = try TestBackend.named("new")
        let proxy = try start(old: old)
        defer { proxy.stop(); old.stop(); new.stop() }
        _ = try proxy.putCluster(ProxyProcess.cluster(ports: [new.port], version: "2.0", uuid: "new", mode: ["mode": "GRADUAL", "percentageTransitionPerRequest": 2]))
        try waitUntil("GRADUAL to govern") { try proxy.api("GET", "/status").1.contains("gradualThreshold") }
        // Fifty clients, one request each: the threshold climbs 2 points per success.
        var firstServed: [String: String] = [:]
        var transitionIDs: Set<String> = []
        for _ in 0..<50 {
            let c = try ClientConnection(port: proxy.port)
            let r = try c.get("/")
            let id = try #require(cookie("transition", in: r))
            transitionIDs.insert(id)
            firstServed[id] = r.bodyText
            #expect(cookie("dynsoftup", in: r) == (r.bodyText == "new\n" ? "new" : "old"))
        }
        #expect(transitionIDs.count == 50)
        // The last exchange's success is counted just after its response left.
        try waitUntil("the threshold to reach 100") { try proxy.api("GET", "/status").1.contains("\"gradualThreshold\":100") }
        // Now every client, old or new, is on the new version, and keeps its id.
        let returning = try ClientConnection(port: proxy.port)
        let id = transitionIDs.first!
        let again = try returning.get("/", headers: ["Cookie": "transition=\(id); dynsoftup=old"])
        #expect(again.bodyText == "new\n")
        #expect(cookie("transition", in: again) == nil, "an existing id is not reissued")
        #expect(firstServed.values.contains("old\n"), "the threshold started at 0")
    }

    @Test("GRADUAL: a client pinned to the old version moves on a page load, or after a quiet spell without fetch metadata")
    func gradualMovesBetweenPages() throws {
        let old = try TestBackend.named("old")
        let new = try TestBackend.named("new")
        let proxy = try start(old: old, extra: ["cookies": ["moveAfterIdleSeconds": 3]])
        defer { proxy.stop(); old.stop(); new.stop() }
        _ = try proxy.putCluster(ProxyProcess.cluster(ports: [new.port], version: "2.0", uuid: "new",
                                                      mode: ["mode": "GRADUAL", "percentageTransitionPerRequest": 100]))
        try waitUntil("GRADUAL to govern") { try proxy.api("GET", "/status").1.contains("gradualThreshold") }
        _ = try ClientConnection(port: proxy.port).get("/")   // one success: the threshold is 100
        try waitUntil("the threshold to reach 100") { try proxy.api("GET", "/status").1.contains("\"gradualThreshold\":100") }

        let c = try ClientConnection(port: proxy.port)
        let pinned = "transition=c0; dynsoftup=old"
        let nowMillis = Int64(Date().timeIntervalSince1970 * 1000)
        // A browser's sub-resource stays with its page's version; the next page load moves.
        let image = try c.get("/a.png", headers: ["Cookie": pinned, "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"])
        #expect(image.bodyText == "old\n" && cookie("dynsoftup", in: image) == "old")
        #expect(cookie("dynsoftup_seen", in: image) == nil, "a browser needs no last-seen cookie")
        let page = try c.get("/", headers: ["Cookie": pinned, "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"])
        #expect(page.bodyText == "new\n" && cookie("dynsoftup", in: page) == "new")
        // Without fetch metadata: seen a moment ago → stays (and the last-seen cookie is renewed);
        // quiet for longer than moveAfterIdleSeconds, or no last-seen cookie → moves.
        let recent = try c.get("/", headers: ["Cookie": pinned + "; dynsoftup_seen=\(nowMillis - 1000)"])
        #expect(recent.bodyText == "old\n")
        let renewed = try #require(cookie("dynsoftup_seen", in: recent).flatMap { Int64($0) })
        #expect(renewed >= nowMillis)
        let quiet = try c.get("/", headers: ["Cookie": pinned + "; dynsoftup_seen=\(nowMillis - 3500)"])
        #expect(quiet.bodyText == "new\n" && cookie("dynsoftup_seen", in: quiet) == nil)
        let noCookie = try c.get("/", headers: ["Cookie": pinned])
        #expect(noCookie.bodyText == "new\n")
        // A client already on the new version stays there on every kind of request.
        let onNew = try c.get("/b.png", headers: ["Cookie": "transition=c0; dynsoftup=new", "Sec-Fetch-Mode": "no-cors"])
        #expect(onNew.bodyText == "new\n")
    }

    @Test("ordering: 1.10 is newer than 1.9; on equal versions the later one wins")
    func ordering() throws {
        let a = try TestBackend.named("v1.9")
        let b = try TestBackend.named("v1.10")
        let c = try TestBackend.named("v1.10-later")
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [
            ProxyProcess.cluster(ports: [b.port], version: "1.10", uuid: "b"),
            ProxyProcess.cluster(ports: [a.port], version: "1.9", uuid: "a"),
        ]))
        defer { proxy.stop(); a.stop(); b.stop(); c.stop() }
        #expect(try ClientConnection(port: proxy.port).get("/").bodyText == "v1.10\n")
        _ = try proxy.putCluster(ProxyProcess.cluster(ports: [c.port], version: "1.10", uuid: "c"))
        try waitUntil("the later 1.10 to win") { try ClientConnection(port: proxy.port).get("/").bodyText == "v1.10-later\n" }
        let list = try proxy.api("GET", "/configuration/cluster").1
        let order = ["\"uuid\":\"c\"", "\"uuid\":\"b\"", "\"uuid\":\"a\""].map { list.range(of: $0)?.lowerBound }
        #expect(order.allSatisfy { $0 != nil })
        #expect(order[0]! < order[1]! && order[1]! < order[2]!)
    }

    @Test("rollback: a new version with no reachable backend is marked failed; clients see no error")
    func rollbackOnRefused() throws {
        let old = try TestBackend.named("old")
        let proxy = try start(old: old)
        defer { proxy.stop(); old.stop() }
        _ = try proxy.putCluster(ProxyProcess.cluster(ports: [TestBackend.closedPort()], version: "2.0", uuid: "broken"))
        try waitUntil("the snapshot with the broken version") { try proxy.api("GET", "/status").1.contains("broken") }
        let client = try ClientConnection(port: proxy.port)
        for _ in 0..<10 {
            let r = try client.get("/")
            #expect(r.status == 200 && r.bodyText == "old\n")
        }
        let (status, body) = try proxy.api("GET", "/configuration/cluster/broken")
        #expect(status == 200)
        #expect(body.contains("\"state\":\"failed\""))
        #expect(body.contains("no healthy backend"))
        #expect(try proxy.api("GET", "/metrics").1.contains("switchyard_rollbacks_total 1"))
        #expect(proxy.log.contains("event=cluster_failed"))
        // DELETE removes it; PUT with the same uuid re-admits it.
        #expect(try proxy.api("DELETE", "/configuration/cluster/broken").0 == 202)
        #expect(try proxy.api("GET", "/configuration/cluster/broken").0 == 404)
    }

    @Test("rollback: a 5xx failure ratio over the window marks the new version failed; PUT re-admits it")
    func rollbackOnErrors() throws {
        let old = try TestBackend.named("old")
        let failing = try TestBackend.named("new", status: 500)
        let proxy = try start(old: old, extra: ["rollback": ["windowSeconds": 30, "minRequests": 5, "maxFailureRatio": 0.5]])
        defer { proxy.stop(); old.stop(); failing.stop() }
        let spec = ProxyProcess.cluster(ports: [failing.port], version: "2.0", uuid: "new")
        _ = try proxy.putCluster(spec)
        let client = try ClientConnection(port: proxy.port)
        try waitUntil("the new version to answer") { try client.get("/").status == 500 }
        var statuses: [Int] = []
        for _ in 0..<10 { statuses.append(try client.get("/").status) }
        #expect(statuses.last == 200, "\(statuses)")
        #expect(try proxy.api("GET", "/configuration/cluster/new").1.contains("\"state\":\"failed\""))
        _ = try proxy.putCluster(spec)
        #expect(try proxy.api("GET", "/configuration/cluster/new").1.contains("\"state\":\"active\""))
        try waitUntil("the re-admitted version to take traffic") { try client.get("/").status == 500 }
    }

    @Test("changes under load: clusters added and deleted while requests flow, no client error")
    func changesUnderLoad() throws {
        let old = try TestBackend.named("old")
        let new = try TestBackend.named("new")
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [old.port], version: "1.0", uuid: "old")]),
                                     arguments: ["--workers", "2", "--log-level", "NOTICE"])
        defer { proxy.stop(); old.stop(); new.stop() }
        let errors = AtomicCounter()
        let served = AtomicCounter()
        let done = AtomicCounter()
        for _ in 0..<4 {
            Thread.detachNewThread {
                defer { done.increment() }
                guard let client = try? ClientConnection(port: proxy.port) else { errors.increment(); return }
                for _ in 0..<300 {
                    guard let r = try? client.get("/"), r.status == 200 else { errors.increment(); return }
                    served.increment()
                }
            }
        }
        var changes = 0
        while done.value < 4 {
            let uuid = try proxy.putCluster(ProxyProcess.cluster(ports: [new.port], version: "2.0"))
            #expect(try proxy.api("DELETE", "/configuration/cluster/\(uuid)").0 == 202)
            changes += 1
        }
        #expect(errors.value == 0)
        #expect(served.value == 1200)
        #expect(changes > 0)
    }
}

/// A thread-safe counter for load loops in tests.
final class AtomicCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
