import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Peers that misbehave at each point of an exchange. The client is never shown a short body as
/// complete, a broken backend connection is never reused, and every descriptor, pipe and session
/// goes back to its baseline.
@Suite("Fault injection", .serialized)
struct FaultInjectionTests {
    /// One scripted misbehaviour of a backend, chosen by request target.
    enum Fault: String, CaseIterable {
        case closeBeforeHead = "close-before-head"
        case halfHeadThenClose = "half-head"
        case resetBeforeHead = "reset-before-head"
        case clMidBodyClose = "cl-mid-body-close"
        case chunkedMidBodyClose = "chunked-mid-body-close"
        case chunkedMidChunkClose = "chunked-mid-chunk-close"
        case clMidBodyReset = "cl-mid-body-reset"
        case chunkedMidBodyReset = "chunked-mid-body-reset"

        /// True when the fault happens after the response head was complete.
        var afterHead: Bool {
            switch self {
            case .closeBeforeHead, .halfHeadThenClose, .resetBeforeHead: return false
            default: return true
            }
        }
    }

    static let bodySize = 256 << 10

    /// The normal answer: a PUT gets `got <body length>`, anything else a `bodySize` body.
    /// With a backend that does not read bodies itself, the body is read here first.
    static func standardAnswer(_ request: TestBackend.Request, _ socket: BlockingSocket) throws -> Bool {
        var length = request.body.count
        if length == 0, let cl = request.header("Content-Length"), let n = Int(cl), n > 0 {
            length = try socket.receive(exactly: n).count
        }
        if request.method == "PUT" {
            try TestBackend.respond(socket, body: "got \(length)")
        } else {
            try TestBackend.respond(socket, body: patternBytes(bodySize))
        }
        return true
    }

    /// A backend that answers `/ok` (and anything unknown) normally and `/fault/<name>` with that fault.
    static func faultyBackend() throws -> TestBackend {
        try TestBackend { request, socket in
            let body = patternBytes(bodySize)
            guard request.target.hasPrefix("/fault/"), let fault = Fault(rawValue: String(request.target.dropFirst("/fault/".count))) else {
                return try standardAnswer(request, socket)
            }
            switch fault {
            case .closeBeforeHead:
                return false
            case .resetBeforeHead:
                socket.resetOnClose()
                return false
            case .halfHeadThenClose:
                try socket.send("HTTP/1.1 200 OK\r\nContent-Le")
                return false
            case .clMidBodyClose, .clMidBodyReset:
                try socket.send(Array("HTTP/1.1 200 OK\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body[0..<(body.count / 2)])
                if fault == .clMidBodyReset { socket.resetOnClose() }
                return false
            case .chunkedMidBodyClose, .chunkedMidBodyReset:
                var out = Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
                for _ in 0..<4 { out += Array("4000\r\n".utf8) + body[0..<0x4000] + Array("\r\n".utf8) }
                try socket.send(out)
                if fault == .chunkedMidBodyReset { socket.resetOnClose() }
                return false
            case .chunkedMidChunkClose:
                try socket.send(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000\r\n".utf8) + body[0..<0x8000])
                return false
            }
        }
    }

    /// Warms the proxy's pools with a download and an upload, then returns its idle descriptor count.
    func warmBaseline(_ proxy: ProxyProcess) throws -> Int {
        let client = try ClientConnection(port: proxy.port)
        #expect(try client.get("/ok").body.count == Self.bodySize)
        let upload = patternBytes(Self.bodySize)
        try client.send(Array("PUT /ok HTTP/1.1\r\nHost: t\r\nContent-Length: \(upload.count)\r\n\r\n".utf8) + upload)
        #expect(try client.readResponse().bodyText == "got \(upload.count)")
        client.close()
        return try proxy.idleBaseline()
    }

    @Test("a refused backend: 502 with a body, and nothing held")
    func refusedBackend() throws {
        let proxy = try ProxyProcess.start(ports: [TestBackend.closedPort()])
        defer { proxy.stop() }
        _ = try ClientConnection(port: proxy.port).get("/")
        let baseline = try proxy.idleBaseline()
        for _ in 0..<5 {
            let client = try ClientConnection(port: proxy.port, timeout: 10)
            try client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            let outcome = readOutcome(client.socket)
            // 502, or 503 once the only cluster has been marked failed (no healthy backend).
            #expect(outcome.status == 502 || outcome.status == 503, "\(outcome)")
            #expect(outcome.response.map { !$0.body.isEmpty } == true)
            client.close()
        }
        try proxy.waitUntilReleased(descriptors: baseline, "after refused connects")
    }

    @Test("backends that close or reset before or during the response", arguments: Fault.allCases)
    func backendFault(_ fault: Fault) throws {
        let backend = try Self.faultyBackend()
        let proxy = try ProxyProcess.start(ports: [backend.port])
        defer { proxy.stop(); backend.stop() }
        let baseline = try warmBaseline(proxy)
        let started = Date()
        let client = try ClientConnection(port: proxy.port, timeout: 10)
        // A POST: not idempotent, so never retried once sent, even on a reused connection.
        try client.send("POST /fault/\(fault.rawValue) HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\ndata")
        let outcome = readOutcome(client.socket)
        if fault.afterHead {
            // The head was relayed: the only honest signal left is closing the connection.
            guard case .truncated(200, let n) = outcome else {
                Issue.record("\(fault): expected a cut-short 200, got \(outcome)")
                return
            }
            #expect(n < Self.bodySize)
        } else {
            #expect(outcome.status == 502, "\(fault): \(outcome)")
            #expect(outcome.response.map { !$0.body.isEmpty } == true, "\(fault): \(outcome)")
        }
        #expect(Date().timeIntervalSince(started) < 5, "\(fault): took \(Date().timeIntervalSince(started))s")
        // The request was sent: it is not retried.
        #expect(backend.requests.filter { $0.target == "/fault/\(fault.rawValue)" }.count == 1)
        client.close()
        try proxy.waitUntilReleased(descriptors: baseline, "after \(fault)")

        // The proxy still serves, over a fresh backend connection.
        let faultConnection = backend.requests.last { $0.target == "/fault/\(fault.rawValue)" }?.connection ?? 0
        let again = try ClientConnection(port: proxy.port).get("/ok")
        #expect(again.status == 200 && again.body.count == Self.bodySize)
        #expect((backend.requests.last?.connection ?? 0) > faultConnection, "the broken backend connection was reused")
    }

    @Test("a backend that stalls mid-body: the client connection is closed after bodyIdleSeconds")
    func backendStallsMidBody() throws {
        let released = Atomic<Bool>(false)
        let backendSawClose = Atomic<Bool>(false)
        let backend = try TestBackend { request, socket in
            guard request.target == "/stall" else { return try FaultInjectionTests.standardAnswer(request, socket) }
            try socket.send(Array("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".utf8) + patternBytes(1000))
            // Stalls: waits for the proxy to drop this connection (end of stream or reset).
            socket.setTimeout(20)
            let rest = try? socket.receiveSome()
            if rest == nil || rest == [] { backendSawClose.store(true, ordering: .relaxed) }
            released.store(true, ordering: .relaxed)
            return false
        }
        let proxy = try ProxyProcess.start(ports: [backend.port], timeouts: ["bodyIdleSeconds": 1])
        defer { proxy.stop(); backend.stop() }
        let baseline = try warmBaseline(proxy)
        let client = try ClientConnection(port: proxy.port, timeout: 10)
        let started = Date()
        try client.send("GET /stall HTTP/1.1\r\nHost: t\r\n\r\n")
        let outcome = readOutcome(client.socket)
        let elapsed = Date().timeIntervalSince(started)
        guard case .truncated(200, 1000) = outcome else {
            Issue.record("expected a 200 cut short after 1000 bytes, got \(outcome)")
            return
        }
        #expect(elapsed >= 0.9 && elapsed < 5, "closed after \(elapsed)s")
        try waitUntil("the stalled backend connection to be dropped", timeout: 5) { released.load(ordering: .relaxed) }
        let sawClose = backendSawClose.load(ordering: .relaxed)
        #expect(sawClose)
        client.close()
        try proxy.waitUntilReleased(descriptors: baseline, "after a stalled backend")
    }

    @Test("a client that stalls mid-upload: both sides are closed after bodyIdleSeconds")
    func clientStallsMidUpload() throws {
        let backendDone = Locked(-1)
        let backend = try uploadCountingBackend(done: backendDone)
        let proxy = try ProxyProcess.start(ports: [backend.port], timeouts: ["bodyIdleSeconds": 1])
        defer { proxy.stop(); backend.stop() }
        _ = try ClientConnection(port: proxy.port).get("/warm")
        let baseline = try proxy.idleBaseline()
        let client = try ClientConnection(port: proxy.port, timeout: 10)
        let started = Date()
        try client.send(Array("PUT /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n".utf8) + patternBytes(5000))
        try waitUntil("the backend connection to be closed", timeout: 6) { backendDone.withLock { $0 } >= 0 }
        let elapsed = Date().timeIntervalSince(started)
        #expect(elapsed >= 0.9 && elapsed < 5, "backend connection closed after \(elapsed)s")
        #expect(backendDone.withLock { $0 } == 5000)
        // The client gets 408 (or just a close): either way its connection ends.
        let outcome = readOutcome(client.socket)
        switch outcome {
        case .complete(let r): #expect([408, 400, 502, 504].contains(r.status), "\(outcome)")
        case .closedBeforeResponse: break
        default: Issue.record("stalled upload: \(outcome)")
        }
        #expect(client.isClosedByPeer())
        client.close()
        try proxy.waitUntilReleased(descriptors: baseline, "after a stalled upload")
    }

    @Test("a client that vanishes mid-upload: the backend connection is dropped at once, resources released",
          arguments: [false, true])
    func clientVanishesMidUpload(reset: Bool) throws {
        let backendDone = Locked(-1)
        let backend = try uploadCountingBackend(done: backendDone)
        let proxy = try ProxyProcess.start(ports: [backend.port])
        defer { proxy.stop(); backend.stop() }
        let warm = try ClientConnection(port: proxy.port)
        try warm.send(Array("PUT /warm HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n".utf8) + patternBytes(200000))
        _ = try warm.readResponse()
        warm.close()
        let baseline = try proxy.idleBaseline()

        let client = try ClientConnection(port: proxy.port, timeout: 10)
        let sent = 4 << 20
        try client.send(Array("PUT /upload HTTP/1.1\r\nHost: t\r\nContent-Length: \(64 << 20)\r\n\r\n".utf8))
        let chunk = patternBytes(1 << 20)
        for _ in 0..<(sent >> 20) { try client.send(chunk) }
        try waitUntil("the upload to be in flight", timeout: 10) { (try proxy.metric("switchyard_pipes_in_use") ?? 0) >= 1 || backendDone.withLock { $0 } >= 0 }
        if reset { client.socket.resetOnClose() }
        let vanished = Date()
        client.close()
        // "At once": the proxy needs no timer to notice, so well under any configured timeout.
        try waitUntil("the backend connection to be dropped", timeout: 5) { backendDone.withLock { $0 } >= 0 }
        #expect(Date().timeIntervalSince(vanished) < 3)
        #expect(backendDone.withLock { $0 } <= sent)
        try proxy.waitUntilReleased(descriptors: baseline, timeout: 5, "after a vanished uploader")
        #expect(try ClientConnection(port: proxy.port).get("/ok").status == 200)
    }

    @Test("a client that vanishes mid-download: the backend connection is dropped at once, resources released",
          arguments: [false, true])
    func clientVanishesMidDownload(reset: Bool) throws {
        let writerEnded = Atomic<Bool>(false)
        let total = 512 << 20
        let backend = try TestBackend { request, socket in
            guard request.target == "/download" else { return try FaultInjectionTests.standardAnswer(request, socket) }
            let chunk = patternBytes(1 << 20)
            var ok = socket.trySend(Array("HTTP/1.1 200 OK\r\nContent-Length: \(total)\r\n\r\n".utf8))
            var sent = 0
            while ok && sent < total {
                ok = socket.trySend(chunk)
                sent += chunk.count
            }
            writerEnded.store(true, ordering: .relaxed)
            return false
        }
        let proxy = try ProxyProcess.start(ports: [backend.port])
        defer { proxy.stop(); backend.stop() }
        #expect(try ClientConnection(port: proxy.port).get("/warm").body.count == Self.bodySize)
        let baseline = try proxy.idleBaseline()

        let client = try ClientConnection(port: proxy.port, timeout: 10)
        try client.send("GET /download HTTP/1.1\r\nHost: t\r\n\r\n")
        let got = try client.socket.receive(exactly: 4 << 20)
        #expect(got.count == 4 << 20)
        if reset { client.socket.resetOnClose() }
        let vanished = Date()
        client.close()
        try waitUntil("the backend to see its connection dropped", timeout: 5) { writerEnded.load(ordering: .relaxed) }
        #expect(Date().timeIntervalSince(vanished) < 3)
        try proxy.waitUntilReleased(descriptors: baseline, timeout: 5, "after a vanished downloader")
        #expect(try ClientConnection(port: proxy.port).get("/ok").status == 200)
    }

    @Test("maxConnections: the connection beyond the limit is refused cleanly, existing ones keep working")
    func maxConnections() throws {
        let backend = try TestBackend.named("b1")
        let proxy = try ProxyProcess.start(ports: [backend.port], limits: ["maxConnections": 4])
        defer { proxy.stop(); backend.stop() }
        let baseline = try proxy.idleBaseline()
        var clients: [ClientConnection] = []
        for i in 0..<4 {
            let c = try ClientConnection(port: proxy.port, timeout: 5)
            #expect(try c.get("/first/\(i)").status == 200)
            clients.append(c)
        }
        try waitUntil("4 sessions") { try proxy.metric("switchyard_active_sessions") == 4 }

        // The fifth: 503 with a body, or a plain close; never a hang, never forwarded.
        for attempt in 0..<3 {
            let extra = try ClientConnection(port: proxy.port, timeout: 5)
            _ = extra.socket.trySend(Array("GET /fifth/\(attempt) HTTP/1.1\r\nHost: t\r\n\r\n".utf8))
            let outcome = readOutcome(extra.socket)
            switch outcome {
            case .complete(let r):
                #expect(r.status == 503 && !r.body.isEmpty, "connection over the limit: \(outcome)")
                #expect(extra.isClosedByPeer())
            case .closedBeforeResponse: break
            default: Issue.record("connection over the limit: \(outcome)")
            }
            extra.close()
        }
        #expect(!backend.requests.contains { $0.target.hasPrefix("/fifth") })

        // The four still work, keep-alive intact.
        for (i, c) in clients.enumerated() {
            #expect(try c.get("/again/\(i)").status == 200)
        }
        #expect(try proxy.metric("switchyard_active_sessions") == 4)

        // Room again once one leaves.
        clients.removeLast().close()
        try waitUntil("a free slot") { try proxy.metric("switchyard_active_sessions") == 3 }
        let newcomer = try ClientConnection(port: proxy.port, timeout: 5)
        #expect(try newcomer.get("/newcomer").status == 200)
        newcomer.close()
        for c in clients { c.close() }
        try proxy.waitUntilReleased(descriptors: baseline + 1, "after the connection limit")   // + the pooled backend connection
    }

    @Test("a client idle past clientIdleSeconds is closed, and its session released")
    func idleKeepAliveClosed() throws {
        let backend = try TestBackend.named("b1")
        let proxy = try ProxyProcess.start(ports: [backend.port], timeouts: ["clientIdleSeconds": 1])
        defer { proxy.stop(); backend.stop() }
        let baseline = try proxy.idleBaseline()
        let client = try ClientConnection(port: proxy.port, timeout: 6)
        #expect(try client.get("/").status == 200)
        let started = Date()
        #expect(client.isClosedByPeer())
        let elapsed = Date().timeIntervalSince(started)
        #expect(elapsed >= 0.9 && elapsed < 4, "idle connection closed after \(elapsed)s")
        client.close()
        try proxy.waitUntilReleased(descriptors: baseline + 1, "after an idle client")   // + the pooled backend connection
    }
}

/// A backend that, for `PUT /upload`, reads until the proxy closes the connection and then
/// stores how many body bytes arrived in `done` (other requests get the standard answer).
func uploadCountingBackend(done: Locked<Int>) throws -> TestBackend {
    try TestBackend(readsBodies: false) { request, socket in
        guard request.target == "/upload" else { return try FaultInjectionTests.standardAnswer(request, socket) }
        var received = 0
        while true {
            guard let data = try? socket.receiveSome(), !data.isEmpty else { break }
            received += data.count
        }
        done.withLock { $0 = received }
        return false
    }
}
