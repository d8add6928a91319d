import Foundation
import Synchronization
import Testing

/// CONCURRENT mode: both versions get the request, the client gets the best answer, and
/// the two answers are compared without buffering a body.
@Suite("CONCURRENT mode", .serialized)
struct ConcurrentModeTests {
    /// A proxy with `old` as v1.0 and `new` as v2.0 in CONCURRENT mode.
    func start(old: Int, new: Int, mirrorUnsafe: Bool = false, extra: [String: Any] = [:]) throws -> ProxyProcess {
        var mode: [String: Any] = ["mode": "CONCURRENT"]
        if mirrorUnsafe { mode["mirrorUnsafeMethods"] = true }
        return try ProxyProcess(config: ProxyProcess.config(clusters: [
            ProxyProcess.cluster(ports: [old], version: "1.0", uuid: "old"),
            ProxyProcess.cluster(ports: [new], version: "2.0", uuid: "new", mode: mode),
        ], extra: extra))
    }

    /// GET /comparisons as JSON.
    func comparisons(_ proxy: ProxyProcess) throws -> [String: Any] {
        let (status, body) = try proxy.api("GET", "/comparisons")
        #expect(status == 200)
        return try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
    }

    func waitForComparisons(_ proxy: ProxyProcess, _ count: Int) throws -> [String: Any] {
        var last: [String: Any] = [:]
        try waitUntil("\(count) comparisons") {
            last = try comparisons(proxy)
            return (last["total"] as? Int ?? 0) >= count
        }
        return last
    }

    /// A backend that echoes the body and names itself.
    static func echo(_ name: String) throws -> TestBackend {
        try TestBackend { request, socket in
            try TestBackend.respond(socket, headers: ["X-Backend: \(name)", "Content-Type: text/plain"], body: request.body.isEmpty ? Array("same\n".utf8) : request.body)
            return true
        }
    }

    @Test("ignoreBodyFor: bodies of matching paths are not compared; other paths still diverge")
    func ignoreBodyFor() throws {
        let old = try TestBackend { _, socket in try TestBackend.respond(socket, body: "old \(UInt64.random(in: 0...UInt64.max))\n"); return true }
        let new = try TestBackend { _, socket in try TestBackend.respond(socket, body: "new \(UInt64.random(in: 0...UInt64.max))\n"); return true }
        defer { old.stop(); new.stop() }
        var newCluster = ProxyProcess.cluster(ports: [new.port], version: "2.0", uuid: "new", mode: ["mode": "CONCURRENT"])
        newCluster["ignoreBodyFor"] = ["/time", "/random*"]
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [
            ProxyProcess.cluster(ports: [old.port], version: "1.0", uuid: "old"), newCluster,
        ]))
        defer { proxy.stop() }
        let client = try ClientConnection(port: proxy.port)
        for path in ["/time", "/time?x=1", "/random/a", "/other"] { _ = try client.get(path) }
        let c = try waitForComparisons(proxy, 4)
        let recent = try #require(c["recent"] as? [[String: Any]])
        let divergent = Dictionary(uniqueKeysWithValues: recent.map { ($0["target"] as! String, $0["divergent"] as! Bool) })
        #expect(divergent == ["/time": false, "/time?x=1": false, "/random/a": false, "/other": true])
        #expect(recent.first { $0["target"] as? String == "/time" }?["bodyIgnored"] as? Bool == true)
    }

    @Test("both versions receive GET and PUT (the same body bytes); equal answers compare equal")
    func duplication() throws {
        let old = try Self.echo("old")
        let new = try Self.echo("new")
        let proxy = try start(old: old.port, new: new.port,
                              extra: ["comparisons": ["ignoreHeaders": ["Date", "Server", "X-Backend"]]])
        defer { proxy.stop(); old.stop(); new.stop() }
        let client = try ClientConnection(port: proxy.port)
        let r = try client.get("/thing")
        #expect(r.header("X-Backend") == "new")
        #expect(r.header("Set-Cookie")?.hasPrefix("dynsoftup=new") == true)
        let body = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 * 31) }
        try client.send(Array("PUT /upload HTTP/1.1\r\nHost: t\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
        let put = try client.readResponse()
        #expect(put.body == body)
        let c = try waitForComparisons(proxy, 2)
        #expect(old.requests.map(\.target) == ["/thing", "/upload"])
        #expect(new.requests.map(\.target) == ["/thing", "/upload"])
        #expect(old.requests.last?.body == body)
        #expect(new.requests.last?.body == body)
        #expect(c["divergent"] as? Int == 0)
        let recent = try #require(c["recent"] as? [[String: Any]])
        #expect(recent.first?["method"] as? String == "PUT")
        #expect(recent.first?["bodyDigestEqual"] as? Bool == true)
        #expect(recent.first?["servedBy"] as? String == "new")
        #expect(recent.first?["status"] as? [Int] == [200, 200])
        #expect(recent.first?["headerDifferences"] as? [String] == [])
        #expect(recent.first?["firstDifferenceOffset"] is NSNull)
    }

    @Test("POST goes to the latest only, unless mirrorUnsafeMethods is set")
    func unsafeMethods() throws {
        for mirror in [false, true] {
            let old = try Self.echo("old")
            let new = try Self.echo("new")
            let proxy = try start(old: old.port, new: new.port, mirrorUnsafe: mirror)
            defer { proxy.stop(); old.stop(); new.stop() }
            let client = try ClientConnection(port: proxy.port)
            try client.send("POST /order HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
            #expect(try client.readResponse().bodyText == "abc")
            #expect(new.requests.count == 1)
            if mirror {
                try waitUntil("the mirrored POST") { old.requests.count == 1 }
                #expect(old.requests.first?.body == Array("abc".utf8))
            } else {
                _ = try client.get("/after")  // ordering barrier: the GET is mirrored, the POST was not
                try waitUntil("the mirrored GET") { old.requests.count == 1 }
                #expect(old.requests.map(\.target) == ["/after"])
            }
        }
    }

    @Test("5xx from the latest: the client gets the previous version's answer; it counts toward rollback")
    func fallbackOn5xx() throws {
        let old = try Self.echo("old")
        let new = try TestBackend.named("new", status: 503)
        let proxy = try start(old: old.port, new: new.port)
        defer { proxy.stop(); old.stop(); new.stop() }
        let r = try ClientConnection(port: proxy.port).get("/x")
        #expect(r.status == 200)
        #expect(r.header("X-Backend") == "old")
        #expect(r.header("Set-Cookie")?.hasPrefix("dynsoftup=old") == true)
        let c = try waitForComparisons(proxy, 1)
        let first = try #require((c["recent"] as? [[String: Any]])?.first)
        #expect(first["servedBy"] as? String == "old")
        #expect(first["status"] as? [Int] == [200, 503])
        #expect(c["fallbacks"] as? Int == 1)
        #expect(try proxy.api("GET", "/metrics").1.contains("switchyard_responses_total{service=\"default\",cluster=\"new\",version=\"2.0\",class=\"5xx\"} 1"))
    }

    @Test("refused, reset and silent latest versions fall back to the previous version")
    func fallbackOnFailures() throws {
        let old = try Self.echo("old")
        let resetting = try TestBackend { _, socket in
            var linger = linger(l_onoff: 1, l_linger: 0)
            setsockopt(socket.fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<linger>.size))
            return false   // close with RST, no response
        }
        let silent = try TestBackend { _, socket in
            _ = try? socket.receiveSome()
            return false
        }
        defer { old.stop(); resetting.stop(); silent.stop() }
        for newPort in [TestBackend.closedPort(), resetting.port, silent.port] {
            let proxy = try start(old: old.port, new: newPort,
                                  extra: ["proxy": ["hostname": "127.0.0.1", "port": 0, "timeouts": ["backendResponseSeconds": 0.5]]])
            defer { proxy.stop() }
            let r = try ClientConnection(port: proxy.port).get("/y")
            #expect(r.status == 200, "new on port \(newPort)")
            #expect(r.header("X-Backend") == "old")
        }
    }

    @Test("a slow previous version costs the client nothing")
    func slowOldVersion() throws {
        let release = Atomic<Bool>(false)
        let old = try TestBackend { _, socket in
            while !release.load(ordering: .relaxed) { usleep(2000) }
            try TestBackend.respond(socket, body: "old\n")
            return true
        }
        let new = try Self.echo("new")
        let proxy = try start(old: old.port, new: new.port)
        defer { release.store(true, ordering: .relaxed); proxy.stop(); old.stop(); new.stop() }
        let client = try ClientConnection(port: proxy.port)
        for i in 0..<5 {
            let r = try client.get("/fast\(i)")   // would time out (10 s) if it waited for the old version
            #expect(r.header("X-Backend") == "new")
        }
        #expect(try comparisons(proxy)["total"] as? Int == 0, "nothing is compared before the old version answers")
        release.store(true, ordering: .relaxed)
        let c = try waitForComparisons(proxy, 5)
        #expect(c["divergent"] as? Int == 5)   // bodies differ: "old\n" vs "same\n"
    }

    @Test("bodies differing in one byte are divergent, with the offset of that byte")
    func oneByteDifference() throws {
        let size = 3 << 20
        let base = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ ($0 >> 9)) }
        var changedBytes = base
        changedBytes[2_000_123] ^= 0x20
        let changed = changedBytes
        // The previous version starts answering first, so the drained response begins ahead
        // of the served one and paces itself to it (the lock-step case this test is about).
        let oldStarted = Atomic<Bool>(false)
        let old = try TestBackend { _, socket in
            try socket.send(Array("HTTP/1.1 200 OK\r\nContent-Length: \(size)\r\n\r\n".utf8) + base[0..<65536])
            oldStarted.store(true, ordering: .relaxed)
            try socket.send(Array(base[65536...]))
            return true
        }
        let new = try TestBackend { _, socket in
            try waitUntil("the previous version to start answering") { oldStarted.load(ordering: .relaxed) }
            try TestBackend.respond(socket, body: changed)
            return true
        }
        let backends = [old, new]
        let proxy = try start(old: backends[0].port, new: backends[1].port)
        defer { proxy.stop(); backends.forEach { $0.stop() } }
        // A client that reads at a bounded rate, as real clients do: the previous version
        // keeps pace with the served response, so the comparison stays in lock-step.
        let (rc, out) = try run("/usr/bin/env", ["sh", "-c", "curl -sf --limit-rate 30M http://127.0.0.1:\(proxy.port)/big | cksum"])
        #expect(rc == 0)
        let expected = try run("/usr/bin/env", ["cksum"], input: Data(changed)).1
        #expect(out == expected)
        let c = try waitForComparisons(proxy, 1)
        let first = try #require((c["recent"] as? [[String: Any]])?.first)
        #expect(first["bodyDigestEqual"] as? Bool == false)
        #expect(first["divergent"] as? Bool == true)
        #expect(first["bodyLength"] as? [Int] == [size, size])
        // Exact: the drained response paces itself to the served one (lock-step).
        #expect(first["firstDifferenceOffset"] as? Int == 2_000_123)
    }

    /// SHA-256 of `bytes`, as sha256sum prints it.
    static func sha256(_ bytes: [UInt8]) throws -> String {
        try run("/usr/bin/env", ["sha256sum"], input: Data(bytes)).1.split(separator: " ").first.map(String.init) ?? ""
    }

    @Test("a large served body is spliced to the client and teed to the comparator: intact, compared equal, or with the offset of one changed byte")
    func largeBodySplicedAndTeed() throws {
        let size = 8 << 20
        let base = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ ($0 >> 11)) }
        var changedBytes = base
        changedBytes[5_000_017] ^= 0x04
        let changed = changedBytes
        let old = try TestBackend { _, socket in
            try TestBackend.respond(socket, body: base)
            return true
        }
        // The latest version answers /same with the same body, /changed with one byte changed.
        let new = try TestBackend { request, socket in
            try TestBackend.respond(socket, body: request.target == "/changed" ? changed : base)
            return true
        }
        let proxy = try start(old: old.port, new: new.port)
        defer { proxy.stop(); old.stop(); new.stop() }
        let dir = FileManager.default.temporaryDirectory.path
        // A client that reads at a bounded rate, as real ones do, so the previous version
        // keeps within a pipe of the served response and the comparison stays in lock-step.
        let download = "curl -sf --limit-rate 60M http://127.0.0.1:\(proxy.port)"
        guard let trace = try SyscallTrace(pid: proxy.pid, calls: ["splice", "tee", "write", "sendto"], directory: dir) else { return }
        let (rc, out) = try run("/usr/bin/env", ["sh", "-c", "\(download)/same | sha256sum"])
        let bytes = trace.stop()
        #expect(rc == 0)
        #expect(out.split(separator: " ").first.map(String.init) == (try Self.sha256(base)))
        // The served body went socket → pipe → client with splice and was duplicated with tee
        // for the comparator; nothing of it was written to a socket from user space.
        #expect(bytes["tee", default: 0] >= size - 65536, "teed \(bytes["tee", default: 0]) bytes")
        #expect(bytes["splice", default: 0] >= 2 * (size - 65536), "spliced \(bytes["splice", default: 0]) bytes")
        #expect(bytes["write", default: 0] + bytes["sendto", default: 0] < 1 << 20, "written from user space: \(bytes)")
        var c = try waitForComparisons(proxy, 1)
        var first = try #require((c["recent"] as? [[String: Any]])?.first)
        #expect(first["bodyDigestEqual"] as? Bool == true)
        #expect(first["divergent"] as? Bool == false)
        #expect(first["bodyLength"] as? [Int] == [size, size])

        let (rc2, out2) = try run("/usr/bin/env", ["sh", "-c", "\(download)/changed | sha256sum"])
        #expect(rc2 == 0)
        #expect(out2.split(separator: " ").first.map(String.init) == (try Self.sha256(changed)), "the client gets the latest version's bytes")
        c = try waitForComparisons(proxy, 2)
        first = try #require((c["recent"] as? [[String: Any]])?.first)
        #expect(first["target"] as? String == "/changed")
        #expect(first["bodyDigestEqual"] as? Bool == false)
        #expect(first["divergent"] as? Bool == true)
        #expect(first["bodyLength"] as? [Int] == [size, size])
        #expect(first["firstDifferenceOffset"] as? Int == 5_000_017)
        #expect(first["bodyNotCompared"] == nil)
    }

    @Test("a previous version that stalls mid-body: the client still gets the whole large body at once; digests decide later")
    func stalledPreviousVersionLargeBody() throws {
        let size = 8 << 20
        let base = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 29 &+ ($0 >> 13)) }
        let release = Atomic<Bool>(false)
        // The previous version sends its head and 100 000 bytes, then nothing until released;
        // for /changed its tail differs in one byte.
        let old = try TestBackend { request, socket in
            var body = base
            if request.target == "/changed" { body[6_000_000] ^= 1 }
            try socket.send(Array("HTTP/1.1 200 OK\r\nContent-Length: \(size)\r\n\r\n".utf8) + body[0..<100_000])
            while !release.load(ordering: .relaxed) { usleep(2000) }
            try socket.send(Array(body[100_000...]))
            return true
        }
        let new = try TestBackend { _, socket in
            try TestBackend.respond(socket, body: base)
            return true
        }
        let proxy = try start(old: old.port, new: new.port)
        defer { release.store(true, ordering: .relaxed); proxy.stop(); old.stop(); new.stop() }
        let expected = try Self.sha256(base)
        for (i, target) in ["/same", "/changed"].enumerated() {
            release.store(false, ordering: .relaxed)
            let started = Date()
            // Fails after 5 s if the served response waited for the stalled one.
            let (rc, out) = try run("/usr/bin/env", ["sh", "-c", "curl -sf --max-time 5 http://127.0.0.1:\(proxy.port)\(target) | sha256sum"])
            let elapsed = Date().timeIntervalSince(started)
            #expect(rc == 0)
            #expect(out.split(separator: " ").first.map(String.init) == expected, "\(target) took \(elapsed) s")
            #expect(try comparisons(proxy)["total"] as? Int == i, "nothing recorded while the previous version is stalled")
            release.store(true, ordering: .relaxed)
            let c = try waitForComparisons(proxy, i + 1)
            let first = try #require((c["recent"] as? [[String: Any]])?.first)
            #expect(first["target"] as? String == target)
            #expect(first["bodyLength"] as? [Int] == [size, size])
            #expect(first["bodyDigestEqual"] as? Bool == (target == "/same"))
            #expect(first["divergent"] as? Bool == (target == "/changed"))
            // More than a pipe behind: the exact offset was given up, digests decided.
            #expect(first["firstDifferenceOffset"] is NSNull)
            #expect((first["old"] as? [String: Any])?["complete"] as? Bool == true)
        }
    }

    @Test("identical 256 MiB bodies compare equal with flat proxy memory")
    func hugeEqualBodies() throws {
        let (dir, sha) = try LargeBodyTests.makeFile(size: 256 << 20, name: "same.bin")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try LargeBodyTests.PythonServer(directory: dir)
        let b = try LargeBodyTests.PythonServer(directory: dir)
        defer { a.stop(); b.stop() }
        let proxy = try start(old: a.port, new: b.port)
        defer { proxy.stop() }
        try LargeBodyTests.expectDownload(through: proxy, path: "/same.bin", sha: sha)
        let c = try waitForComparisons(proxy, 1)
        let first = try #require((c["recent"] as? [[String: Any]])?.first)
        #expect(first["bodyDigestEqual"] as? Bool == true)
        #expect(first["bodyLength"] as? [Int] == [256 << 20, 256 << 20])
        #expect(c["divergent"] as? Int == 0)
    }
}
