import Glibc
import Foundation
import Synchronization
import Testing

/// The data plane against real sockets: a real switchyard process, scripted backends,
/// raw-socket clients and curl.
@Suite("Data plane", .serialized)
struct DataPlaneTests {
    /// Starts a proxy in front of `backends` (one cluster, version 1.0).
    func proxy(_ backends: [TestBackend], extra: [String: Any] = [:], workers: Int = 1) throws -> ProxyProcess {
        try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: backends.map(\.port), version: "1.0", uuid: "v1")],
                                                     extra: extra),
                         arguments: ["--workers", String(workers), "--log-level", "INFO"])
    }

    @Test("GET is forwarded with X-Forwarded-*, hop-by-hop headers removed, Host kept")
    func forwardsAndRewritesHeaders() throws {
        let backend = try TestBackend.named("b1")
        let proxy = try proxy([backend])
        defer { proxy.stop(); backend.stop() }
        let client = try ClientConnection(port: proxy.port)
        try client.send("GET /path?q=1 HTTP/1.1\r\nHost: example.test\r\nConnection: keep-alive, X-Secret\r\nX-Secret: drop me\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nX-Forwarded-For: 10.9.8.7\r\nX-Forwarded-Proto: https\r\nX-Other: kept\r\n\r\n")
        let response = try client.readResponse()
        #expect(response.status == 200)
        #expect(response.bodyText == "b1\n")
        #expect(response.header("Set-Cookie") == "dynsoftup=v1; Path=/; HttpOnly; SameSite=Lax")
        let seen = try #require(backend.requests.first)
        #expect(seen.target == "/path?q=1")
        #expect(seen.header("Host") == "example.test")
        #expect(seen.header("X-Other") == "kept")
        #expect(seen.header("X-Secret") == nil)
        #expect(seen.header("Keep-Alive") == nil)
        #expect(seen.header("TE") == nil)
        #expect(seen.header("Connection") == nil)
        #expect(seen.headers("X-Forwarded-For") == ["10.9.8.7, 127.0.0.1"])
        #expect(seen.headers("X-Forwarded-Proto") == ["http"])
    }

    @Test("keep-alive on both sides: many client requests, few backend connections")
    func keepAlivePooling() throws {
        let backend = try TestBackend.named("b1")
        let proxy = try proxy([backend])
        defer { proxy.stop(); backend.stop() }
        var clients: [ClientConnection] = []
        for _ in 0..<5 { clients.append(try ClientConnection(port: proxy.port)) }
        for round in 0..<40 {
            for client in clients {
                let r = try client.get("/r\(round)")
                #expect(r.status == 200)
            }
        }
        #expect(backend.requests.count == 200)
        #expect(backend.connections <= 5, "backend connections: \(backend.connections)")
    }

    @Test("pipelined requests are answered in order")
    func pipelining() throws {
        let backend = try TestBackend { request, socket in
            try TestBackend.respond(socket, body: "echo \(request.target)")
            return true
        }
        let proxy = try proxy([backend])
        defer { proxy.stop(); backend.stop() }
        let client = try ClientConnection(port: proxy.port)
        var batch = ""
        for i in 0..<5 { batch += "GET /\(i) HTTP/1.1\r\nHost: t\r\n\r\n" }
        batch += "POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhelloGET /last HTTP/1.1\r\nHost: t\r\n\r\n"
        try client.send(batch)
        for i in 0..<5 { #expect(try client.readResponse().bodyText == "echo /\(i)") }
        #expect(try client.readResponse().bodyText == "echo /post")
        #expect(try client.readResponse().bodyText == "echo /last")
        #expect(backend.requests.first { $0.target == "/post" }?.body == Array("hello".utf8))
    }

    @Test("Content-Length and chunked bodies in both directions")
    func bodiesBothWays() throws {
        let backend = try TestBackend { request, socket in
            if request.target == "/chunked" {
                try socket.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
            } else {
                try TestBackend.respond(socket, body: request.body)
            }
            return true
        }
        let proxy = try proxy([backend])
        defer { proxy.stop(); backend.stop() }
        let client = try ClientConnection(port: proxy.port)
        try client.send("PUT /cl HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world")
        #expect(try client.readResponse().bodyText == "hello world")
        try client.send("POST /ch HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
        #expect(try client.readResponse().bodyText == "abcdefg")
        let chunked = try client.get("/chunked")
        #expect(chunked.header("Transfer-Encoding") == "chunked")
        #expect(chunked.bodyText == "hello world")
        // The connection is still usable after all three.
        #expect(try client.get("/again").status == 200)
    }

    @Test("HEAD, 204 and 304 have no body; the connection stays in sync")
    func bodilessResponses() throws {
        let backend = try TestBackend { request, socket in
            switch request.target {
            case "/204": try socket.send("HTTP/1.1 204 No Content\r\n\r\n")
            case "/304": try socket.send("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n")
            default: try socket.send("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + (request.method == "HEAD" ? "" : String(repeating: "x", count: 1000)))
            }
            return true
        }
        let proxy = try proxy([backend])
        defer { proxy.stop(); backend.stop() }
        let client = try ClientConnection(port: proxy.port)
        try client.send("HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n")
        let head = try client.readResponse(method: "HEAD")
        #expect(head.status == 200 && head.header("Content-Length") == "1000")
        #expect(try client.get("/204").status == 204)
        #expect(try client.get("/304").status == 304)
        let full = try client.get("/full")
        #expect(full.body.count == 1000)
    }

    @Test("Expect: 100-continue is relayed before the body is sent")
    func expectContinue() throws {
        let backend = try TestBackend { request, socket in
            try TestBackend.respond(socket, body: "got \(request.body.count)")
            return true
        }
        let proxy = try proxy([backend])
        defer { proxy.stop(); backend.stop() }
        let client = try ClientConnection(port: proxy.port)
        try client.send("PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        let interim = try client.readResponse(skipInterim: false)
        #expect(interim.status == 100)
        try client.send("data")
        #expect(try client.readResponse().bodyText == "got 4")
    }

    @Test("101 Switching Protocols turns the session into a tunnel")
    func upgradeTunnel() throws {
        let backend = try TestBackend(readsBodies: false) { request, socket in
            guard request.header("Upgrade") == "echo" else { return false }
            try socket.send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
            while true {
                let data = try socket.receiveSome()
                if data.isEmpty { return false }
                try socket.send(data.map { $0 == UInt8(ascii: "a") ? UInt8(ascii: "A") : $0 })
            }
        }
        let proxy = try proxy([backend])
        defer { proxy.stop(); backend.stop() }
        let client = try ClientConnection(port: proxy.port)
        try client.send("GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        let switched = try client.readResponse()
        #expect(switched.status == 101)
        #expect(switched.header("Upgrade") == "echo")
        try client.send("banana")
        #expect(try client.socket.receive(exactly: 6) == Array("bAnAnA".utf8))
        try client.send("abc")
        #expect(try client.socket.receive(exactly: 3) == Array("Abc".utf8))
    }

    @Test("a response without framing is forwarded whole and the client connection closed")
    func responseUntilClose() throws {
        let backend = try TestBackend { _, socket in
            try socket.send("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nread until close")
            return false
        }
        let proxy = try proxy([backend])
        defer { proxy.stop(); backend.stop() }
        let client = try ClientConnection(port: proxy.port)
        let response = try client.get("/")
        #expect(response.bodyText == "read until close")
        #expect(response.header("Connection") == "close")
    }

    @Test("an HTTP/1.0 client gets close semantics unless it asks for keep-alive")
    func http10() throws {
        let backend = try TestBackend.named("b1")
        let proxy = try proxy([backend])
        defer { proxy.stop(); backend.stop() }
        let plain = try ClientConnection(port: proxy.port)
        try plain.send("GET / HTTP/1.0\r\n\r\n")
        let r1 = try plain.readResponse()
        #expect(r1.status == 200 && r1.header("Connection") == "close")
        #expect(backend.requests.first?.header("Host") == "127.0.0.1:\(backend.port)", "a Host is supplied for HTTP/1.1")
        #expect(plain.isClosedByPeer())
        let keep = try ClientConnection(port: proxy.port)
        try keep.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        let r2 = try keep.readResponse()
        #expect(r2.header("Connection") == "keep-alive")
        try keep.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        #expect(try keep.readResponse().status == 200)
    }

    @Test("round-robin over a cluster; a refused backend is marked down and the request retried")
    func roundRobinAndRetry() throws {
        let a = try TestBackend.named("a")
        let b = try TestBackend.named("b")
        let dead = TestBackend.closedPort()
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [a.port, dead, b.port], version: "1.0", uuid: "v1")]))
        defer { proxy.stop(); a.stop(); b.stop() }
        let client = try ClientConnection(port: proxy.port)
        var names: [String: Int] = [:]
        for _ in 0..<20 {
            let r = try client.get("/")
            #expect(r.status == 200)
            names[r.bodyText, default: 0] += 1
        }
        #expect(names["a\n", default: 0] >= 8 && names["b\n", default: 0] >= 8, "\(names)")
        #expect(proxy.log.contains("event=backend_down"))
    }

    @Test("a backend whose connect hangs is given up after backendConnectSeconds; the next one answers")
    func connectTimeout() throws {
        // A listener whose accept queue is full: further SYNs are dropped, so connects hang.
        let hanging = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { Glibc.close(hanging) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(hanging, $0, len) } }
        listen(hanging, 0)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(hanging, $0, &len) } }
        let hangingPort = Int(UInt16(bigEndian: addr.sin_port))
        var fillers: [Int32] = []
        defer { fillers.forEach { Glibc.close($0) } }
        for _ in 0..<4 {   // fill the queue (non-blocking connects; the later ones stay pending)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, len) } }
            fillers.append(fd)
        }
        let good = try TestBackend.named("good")
        let proxy = try ProxyProcess(config: ProxyProcess.config(
            clusters: [ProxyProcess.cluster(ports: [hangingPort, good.port], version: "1.0")],
            extra: ["proxy": ["hostname": "127.0.0.1", "port": 0, "timeouts": ["backendConnectSeconds": 0.3]]]))
        defer { proxy.stop(); good.stop() }
        let client = try ClientConnection(port: proxy.port)
        for _ in 0..<4 {
            let r = try client.get("/")
            #expect(r.status == 200 && r.bodyText == "good\n")
        }
        #expect(proxy.log.contains("event=backend_connect_timeout"))
    }

    @Test("no reachable backend: 502 with a body, never an empty reply")
    func badGateway() throws {
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [TestBackend.closedPort()], version: "1.0")]))
        defer { proxy.stop() }
        let r = try ClientConnection(port: proxy.port).get("/")
        #expect(r.status == 502)
        #expect(!r.body.isEmpty)
    }

    @Test("a silent backend gets 504 after backendResponseSeconds")
    func gatewayTimeout() throws {
        let backend = try TestBackend { _, socket in
            _ = try? socket.receiveSome()   // never answers
            return false
        }
        let proxy = try proxy([backend], extra: ["proxy": ["hostname": "127.0.0.1", "port": 0, "timeouts": ["backendResponseSeconds": 0.5]]])
        defer { proxy.stop(); backend.stop() }
        let started = Date()
        let r = try ClientConnection(port: proxy.port).get("/")
        #expect(r.status == 504)
        #expect(Date().timeIntervalSince(started) < 5)
    }

    @Test("a slow client head gets 408 and is closed (slowloris)")
    func slowHead() throws {
        let backend = try TestBackend.named("b1")
        let proxy = try proxy([backend], extra: ["proxy": ["hostname": "127.0.0.1", "port": 0, "timeouts": ["clientHeadSeconds": 0.5]]])
        defer { proxy.stop(); backend.stop() }
        let client = try ClientConnection(port: proxy.port)
        try client.send("GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        let r = try client.readResponse()
        #expect(r.status == 408)
        #expect(client.isClosedByPeer())
        #expect(backend.requests.isEmpty)
    }

    @Test("malformed heads are refused with 400/431/414 and never reach the backend")
    func malformedHeads() throws {
        let backend = try TestBackend.named("b1")
        let proxy = try proxy([backend])
        defer { proxy.stop(); backend.stop() }
        let cases: [(String, Int)] = [
            ("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400),
            ("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n folded\r\n\r\n", 400),
            ("GET  / HTTP/1.1\r\nHost: t\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: t\r\nX: \u{1}\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: t\r\nX-Big: \(String(repeating: "a", count: 20000))\r\n\r\n", 431),
            ("GET /\(String(repeating: "a", count: 9000)) HTTP/1.1\r\nHost: t\r\n\r\n", 414),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        ]
        for (raw, expected) in cases {
            let client = try ClientConnection(port: proxy.port)
            try client.send(raw)
            let r = try client.readResponse()
            #expect(r.status == expected, "\(raw.prefix(60).debugDescription)")
            #expect(!r.body.isEmpty)
            #expect(client.isClosedByPeer())
        }
        #expect(backend.requests.isEmpty)
        #expect(proxy.log.contains("event=request_rejected"))
    }

    @Test("SIGTERM: stops accepting, finishes the exchange in flight, exits 0")
    func gracefulStop() throws {
        let release = Atomic<Bool>(false)
        let backend = try TestBackend { _, socket in
            while !release.load(ordering: .relaxed) { usleep(2000) }
            try TestBackend.respond(socket, body: "late")
            return true
        }
        let proxy = try proxy([backend])
        defer { backend.stop() }
        let client = try ClientConnection(port: proxy.port)
        try client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        try waitUntil("the request to reach the backend") { backend.requests.count == 1 }
        kill(proxy.pid, SIGTERM)
        try waitUntil("the proxy to stop accepting") {
            (try? BlockingSocket(port: proxy.port)) == nil
        }
        release.store(true, ordering: .relaxed)
        let r = try client.readResponse()
        #expect(r.bodyText == "late")
        #expect(r.header("Connection") == "close")
        #expect(proxy.stop() == 0)
    }
}

/// Running out of file descriptors: accepting pauses instead of spinning, existing sessions
/// keep working, and the proxy recovers when descriptors free up.
@Suite("Descriptor exhaustion", .serialized)
struct DescriptorExhaustionTests {
    @Test("EMFILE on accept: no busy loop, existing clients served, recovery afterwards")
    func emfile() throws {
        guard let prlimit = which("prlimit") else {
            Issue.record("prlimit (util-linux) is not installed")
            return
        }
        let backend = try TestBackend.named("b")
        defer { backend.stop() }
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [backend.port], version: "1.0")]),
                                     wrapper: [prlimit, "--nofile=64:64", "--"])
        defer { proxy.stop() }
        let existing = try ClientConnection(port: proxy.port)
        #expect(try existing.get("/").status == 200)
        // Far more connections than descriptors: the kernel completes them (backlog), the
        // proxy cannot accept them all.
        var flood: [BlockingSocket] = []
        for _ in 0..<120 { if let s = try? BlockingSocket(port: proxy.port) { flood.append(s) } }
        try waitUntil("the proxy to run out of descriptors") { proxy.descriptorCount() >= 60 }
        let cpuBefore = proxy.cpuSeconds()
        let wallBefore = Date()
        // The kept-alive client is still served while accept fails.
        for _ in 0..<5 { #expect(try existing.get("/").status == 200) }
        usleep(1_000_000)   // measuring CPU use over an interval, not synchronising
        let busy = (proxy.cpuSeconds() - cpuBefore) / Date().timeIntervalSince(wallBefore)
        #expect(busy < 0.3, "the proxy used \(busy) of a core while out of descriptors")
        #expect(proxy.log.contains("event=accept_paused"))
        for s in flood { s.close() }
        try waitUntil("new clients to be served again") {
            guard let c = try? ClientConnection(port: proxy.port, timeout: 2) else { return false }
            return (try? c.get("/").status) == 200
        }
    }
}
