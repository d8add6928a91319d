import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What real clients and desync suites found: each case sends the exact bytes of the finding to
/// the running binary, with a backend that records the exact bytes it received.
@Suite("HTTP correctness", .serialized)
struct HTTPCorrectnessTests {
    /// The backend's view of one connection, as text.
    func wire(_ backend: TestBackend, _ connection: Int) -> String {
        String(decoding: backend.wireBytes(connection: connection), as: UTF8.self)
    }

    /// Sends `raw` on a new connection and expects a refusal with `status` that never reached a backend.
    func expectRefused(_ raw: String, status: Int, proxy: ProxyProcess, backend: TestBackend,
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        let client = try ClientConnection(port: proxy.port, timeout: 5)
        defer { client.close() }
        _ = client.socket.trySend(Array(raw.utf8))
        let outcome = readOutcome(client.socket)
        #expect(outcome.status == status, "\(raw.debugDescription): \(outcome)", sourceLocation: sourceLocation)
        #expect(outcome.response?.header("Connection")?.lowercased() == "close", "\(raw.debugDescription)", sourceLocation: sourceLocation)
        #expect(client.isClosedByPeer(), "\(raw.debugDescription): left open", sourceLocation: sourceLocation)
        #expect(backend.connections == 0, "\(raw.debugDescription): a backend was contacted", sourceLocation: sourceLocation)
    }

    // MARK: 1. HTTP/1.0 clients and chunked responses

    @Test("HTTP/1.0 client, streamed chunked response: data only, no Transfer-Encoding, delimited by close")
    func http10StreamedChunked() throws {
        let rest = DispatchSemaphore(value: 0)
        let backend = try TestBackend { _, socket in
            let piece = String(repeating: "a", count: 150)
            try socket.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n96\r\n\(piece)\r\n")
            rest.wait()   // the client has the head: the proxy chose the framing without the rest
            try socket.send("96;note=x\r\n\(piece)\r\n96\r\n\(piece)\r\n0\r\nX-Trailer: t\r\n\r\n")
            return true
        }
        let proxy = try ProxyProcess.start(ports: [backend.port])
        defer { proxy.stop(); backend.stop() }
        let client = try ClientConnection(port: proxy.port, timeout: 5)
        try client.send("GET /chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        var head: [String] = []
        while let line = try client.socket.readLine(), !line.isEmpty { head.append(line) }
        rest.signal()
        let body = try client.socket.receiveAll()   // ends only when the proxy closes
        #expect(head.first?.hasPrefix("HTTP/1.1 200") == true)
        #expect(!head.contains { $0.lowercased().hasPrefix("transfer-encoding") }, "\(head)")
        #expect(!head.contains { $0.lowercased().hasPrefix("content-length") }, "\(head)")
        #expect(head.contains { $0.lowercased() == "connection: close" }, "\(head)")
        #expect(body == Array(String(repeating: "a", count: 450).utf8), "got \(body.count) bytes: \(String(decoding: body.prefix(80), as: UTF8.self).debugDescription)")
        // The backend connection was read to its end (last chunk, trailers) and is reused.
        rest.signal()   // lets the next response through at once
        let again = try ClientConnection(port: proxy.port).get("/next")
        #expect(again.status == 200)
        #expect(backend.connections == 1, "backend connections: \(backend.connections)")
    }

    @Test("HTTP/1.0 keep-alive client, chunked response read whole: Content-Length, and the session goes on")
    func http10WholeChunked() throws {
        let backend = try TestBackend { request, socket in
            try socket.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n")
            return true
        }
        let proxy = try ProxyProcess.start(ports: [backend.port])
        defer { proxy.stop(); backend.stop() }
        let client = try ClientConnection(port: proxy.port, timeout: 5)
        for i in 0..<3 {
            try client.send("GET /small/\(i) HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            let r = try client.readResponse()
            #expect(r.header("Transfer-Encoding") == nil)
            #expect(r.header("Content-Length") == "12")
            #expect(r.header("Connection")?.lowercased() == "keep-alive")
            #expect(r.bodyText == "hello, world")
        }
        // Without keep-alive, an HTTP/1.0 client gets the same body and a close.
        try client.send("GET /small/last HTTP/1.0\r\n\r\n")
        let last = try client.readResponse()
        #expect(last.bodyText == "hello, world" && last.header("Connection")?.lowercased() == "close")
        #expect(client.isClosedByPeer())
    }

    // MARK: 2 and 3. Chunked request bodies

    @Test("malformed chunk-size lines that arrive with the head are refused before the backend sees a byte")
    func chunkErrorsWithTheHead() throws {
        let backend = try TestBackend.named("b1")
        let proxy = try ProxyProcess.start(ports: [backend.port])
        defer { proxy.stop(); backend.stop() }
        let head = "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        for body in ["fffffffffffffffffffff\r\n", "5x\r\nhello\r\n0\r\n\r\n", "10000000000000000\r\nhello\r\n0\r\n\r\n",
                     "3\r\nabc\r\nzz\r\n"] {
            try expectRefused(head + body, status: 400, proxy: proxy, backend: backend)
        }
        #expect(backend.requests.isEmpty)
    }

    @Test("chunk-size lines reach the backend normalised: minimal hex, no extensions, no trailers")
    func chunkLinesNormalised() throws {
        let backend = try TestBackend { request, socket in
            try TestBackend.respond(socket, body: "got \(request.body.count)")
            return true
        }
        let proxy = try ProxyProcess.start(ports: [backend.port])
        defer { proxy.stop(); backend.stop() }
        let data = String(repeating: "d", count: 0xe3)
        let client = try ClientConnection(port: proxy.port, timeout: 5)
        try client.send("POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                        + "000000000000000000000000000000000e3\r\n\(data)\r\n"
                        + "2;name=value;flag\r\nzz\r\n"
                        + "0000;last=1\r\nX-Trailer: 1\r\nContent-Length: 99\r\n\r\n")
        let r = try client.readResponse()
        #expect(r.bodyText == "got 229")
        let seen = wire(backend, 1)
        let body = seen[seen.range(of: "\r\n\r\n")!.upperBound...]
        #expect(body == "e3\r\n\(data)\r\n2\r\nzz\r\n0\r\n\r\n", "backend received \(String(body.prefix(200)).debugDescription)")
    }

    @Test("chunked responses reach the client normalised too")
    func chunkedResponseNormalised() throws {
        let backend = try TestBackend { _, socket in
            try socket.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0005;a=b\r\nhello\r\n00\r\nX-T: 1\r\n\r\n")
            return true
        }
        let proxy = try ProxyProcess.start(ports: [backend.port])
        defer { proxy.stop(); backend.stop() }
        let client = try BlockingSocket(port: proxy.port, timeout: 5)
        try client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        var got: [UInt8] = []
        while !String(decoding: got, as: UTF8.self).hasSuffix("0\r\n\r\n") {
            let chunk = try client.receiveSome()
            if chunk.isEmpty { break }
            got += chunk
        }
        let text = String(decoding: got, as: UTF8.self)
        #expect(text.hasSuffix("\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), "\(text.debugDescription)")
    }

    // MARK: 4. Header names that imitate framing headers

    @Test("header names with _ or that imitate framing fields are refused by default")
    func lookalikeNames() throws {
        let backend = try TestBackend.named("b1")
        let proxy = try ProxyProcess.start(ports: [backend.port])
        defer { proxy.stop(); backend.stop() }
        for raw in ["POST / HTTP/1.1\r\nHost: t\r\nTransfer_Encoding: chunked\r\n\r\n0\r\n\r\n",
                    "POST / HTTP/1.1\r\nHost: t\r\nContent_Length: 5\r\n\r\nhello",
                    "POST / HTTP/1.1\r\nHost: t\r\nTransfer---Encoding: chunked\r\n\r\n0\r\n\r\n",
                    "GET / HTTP/1.1\r\nHost: t\r\nX_Api_Key: k\r\n\r\n"] {
            try expectRefused(raw, status: 400, proxy: proxy, backend: backend)
        }
    }

    @Test("requestHeaders.underscores: drop removes such fields, allow forwards them; look-alikes stay refused")
    func underscorePolicies() throws {
        let backend = try TestBackend { request, socket in
            try TestBackend.respond(socket, body: "ok")
            return true
        }
        defer { backend.stop() }
        for policy in ["drop", "allow"] {
            let proxy = try ProxyProcess.start(ports: [backend.port], extra: ["proxy": ["requestHeaders": ["underscores": policy]]])
            defer { proxy.stop() }
            let r = try ClientConnection(port: proxy.port).get("/\(policy)", headers: ["X_Api_Key": "k", "X-Other": "o"])
            #expect(r.status == 200)
            let seen = try #require(backend.requests.last { $0.target == "/\(policy)" })
            #expect(seen.header("X-Other") == "o")
            #expect(seen.header("X_Api_Key") == (policy == "allow" ? "k" : nil), "\(policy): \(seen.headers)")
            let client = try ClientConnection(port: proxy.port, timeout: 5)
            try client.send("POST / HTTP/1.1\r\nHost: t\r\nTransfer_Encoding: chunked\r\n\r\n0\r\n\r\n")
            #expect(readOutcome(client.socket).status == 400, "\(policy): a look-alike passed")
        }
    }

    // MARK: 5. List-form Content-Length

    @Test("Content-Length must be one field with one run of digits")
    func contentLengthLists() throws {
        let backend = try TestBackend.named("b1")
        let proxy = try ProxyProcess.start(ports: [backend.port])
        defer { proxy.stop(); backend.stop() }
        let post = "POST / HTTP/1.1\r\nHost: t\r\n"
        for field in ["Content-Length: 1000,1000", "Content-Length: 5, 5", "Content-Length: ,5", "Content-Length: 5,",
                      "Content-Length: 5\r\nContent-Length: 5"] {
            try expectRefused(post + field + "\r\n\r\nhello", status: 400, proxy: proxy, backend: backend)
        }
        let ok = try ClientConnection(port: proxy.port, timeout: 5)
        try ok.send(post + "Content-Length: 005\r\n\r\nhello")
        #expect(try ok.readResponse().status == 200)
        #expect(backend.requests.last?.header("Content-Length") == "5")
    }

    // MARK: 6. Bodies on GET and HEAD

    @Test("GET and HEAD with a body get 400 by default; other methods, and an empty body, pass")
    func bodylessMethods() throws {
        let backend = try TestBackend { request, socket in
            try TestBackend.respond(socket, body: "\(request.method) \(request.body.count)")
            return true
        }
        let proxy = try ProxyProcess.start(ports: [backend.port])
        defer { proxy.stop(); backend.stop() }
        try expectRefused("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello", status: 400, proxy: proxy, backend: backend)
        try expectRefused("GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", status: 400,
                          proxy: proxy, backend: backend)
        try expectRefused("HEAD / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello", status: 400, proxy: proxy, backend: backend)
        let client = try ClientConnection(port: proxy.port, timeout: 5)
        try client.send("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        #expect(try client.readResponse().bodyText == "GET 0")
        try client.send("DELETE /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
        #expect(try client.readResponse().bodyText == "DELETE 5")
        try client.send("OPTIONS /x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
        #expect(try client.readResponse().bodyText == "OPTIONS 2")
    }

    @Test("requestBodies.bodylessMethods: forward lets a GET body through")
    func bodylessMethodsForwarded() throws {
        let backend = try TestBackend { request, socket in
            try TestBackend.respond(socket, body: "\(request.method) \(String(decoding: request.body, as: UTF8.self))")
            return true
        }
        let proxy = try ProxyProcess.start(ports: [backend.port], extra: ["proxy": ["requestBodies": ["bodylessMethods": "forward"]]])
        defer { proxy.stop(); backend.stop() }
        let client = try ClientConnection(port: proxy.port, timeout: 5)
        try client.send("GET /search HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nquery")
        #expect(try client.readResponse().bodyText == "GET query")
    }

    // MARK: 7. HTTP/0.9

    @Test("an HTTP/0.9 request line with header fields is malformed: 400")
    func http09() throws {
        let backend = try TestBackend.named("b1")
        let proxy = try ProxyProcess.start(ports: [backend.port])
        defer { proxy.stop(); backend.stop() }
        try expectRefused("GET / HTTP/0.9\r\nHost: t\r\n\r\n", status: 400, proxy: proxy, backend: backend)
        try expectRefused("GET /\r\nHost: t\r\n\r\n", status: 400, proxy: proxy, backend: backend)
    }

    // MARK: 8. A final response before the request body

    @Test("413 before a 100-continue body: the client never sent it, so the session stays in sync")
    func earlyFinalResponseWithExpect() throws {
        let backend = try TestBackend(readsBodies: false) { request, socket in
            if request.method == "POST" {
                try TestBackend.respond(socket, status: 413, body: "too large")
                return false   // it will not read the body that never comes
            }
            try TestBackend.respond(socket, body: "fine")
            return true
        }
        let proxy = try ProxyProcess.start(ports: [backend.port])
        defer { proxy.stop(); backend.stop() }
        let client = try ClientConnection(port: proxy.port, timeout: 5)
        for i in 0..<3 {
            try client.send("POST /upload/\(i) HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n")
            let r = try client.readResponse()
            #expect(r.status == 413 && r.bodyText == "too large")
            #expect(r.header("Connection") == nil, "the session goes on: \(r.headers)")
            let next = try client.get("/after/\(i)")
            #expect(next.status == 200 && next.bodyText == "fine", "request after the 413 on the same connection")
        }
    }

    @Test("413 while the body is being sent: the response says Connection: close, and the connection closes")
    func earlyFinalResponseMidBody() throws {
        let backend = try TestBackend(readsBodies: false) { request, socket in
            _ = try socket.receive(exactly: 1000)   // part of the body, then the refusal
            try TestBackend.respond(socket, status: 413, body: "too large")
            return false
        }
        let proxy = try ProxyProcess.start(ports: [backend.port])
        defer { proxy.stop(); backend.stop() }
        let client = try ClientConnection(port: proxy.port, timeout: 5)
        try client.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n" + String(repeating: "x", count: 1000))
        let r = try client.readResponse()
        #expect(r.status == 413)
        #expect(r.header("Connection")?.lowercased() == "close", "\(r.headers)")
        #expect(client.isClosedByPeer())
    }
}
