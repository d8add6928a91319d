import Foundation
import Testing

/// A TLS client served by the session itself (reads and writes through the TLS connection, no
/// relay): the exchanges whose bytes take the paths plain TCP would splice or shut down —
/// chunked and until-close responses, refused requests, a tunnel after `101` — and the
/// descriptors a kept TLS connection costs.
@Suite("TLS sessions", .serialized)
struct TLSSessionTests {
    typealias Listener = TLSListenerTests

    /// One TLS exchange with `openssl s_client`: `input` is written (printf escapes allowed) and
    /// the output read until the proxy closes the connection.
    static func sClient(port: Int, _ input: String) throws -> String {
        try Listener.shell("printf '\(input)' | openssl s_client -quiet -connect 127.0.0.1:\(port) -servername site.test -ign_eof").1
    }

    @Test("chunked and until-close responses cross TLS whole; a 3 MiB chunked body arrives byte-exact")
    func responseFramings() throws {
        let certs = try Listener.Certificates()
        let cert = try certs.make("site", names: ["site.test"])
        let big = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 11) }
        let backend = try TestBackend { request, socket in
            switch request.target {
            case "/chunked":
                try socket.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n")
                return true
            case "/big":
                try socket.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                var offset = 0
                while offset < big.count {
                    let n = min(100_000, big.count - offset)
                    try socket.send(Array(String(n, radix: 16).utf8) + Array("\r\n".utf8) + Array(big[offset..<offset + n]) + Array("\r\n".utf8))
                    offset += n
                }
                try socket.send("0\r\n\r\n")
                return true
            default:
                try socket.send("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nread until close")
                return false
            }
        }
        let (proxy, port) = try Listener.start(backend: backend.port, certificates: [cert])
        defer { proxy.stop(); backend.stop() }
        let curl = "curl -sS --cacert \(cert["cert"]!) --resolve site.test:\(port):127.0.0.1"
        #expect(try Listener.shell("\(curl) https://site.test:\(port)/chunked").1 == "hello, world")
        let (rc, close) = try Listener.shell("\(curl) -i https://site.test:\(port)/close")
        #expect(rc == 0)
        #expect(close.hasSuffix("read until close"))
        #expect(close.lowercased().contains("connection: close"))
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tls-big-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        let (rc2, _) = try Listener.shell("\(curl) -o \(file) https://site.test:\(port)/big")
        #expect(rc2 == 0)
        let received = FileManager.default.contents(atPath: file).map { [UInt8]($0) } ?? []
        #expect(received.count == big.count)
        #expect(received == big)
    }

    @Test("a request refused before any backend gets its error and the connection ends cleanly")
    func refusedRequest() throws {
        let certs = try Listener.Certificates()
        let cert = try certs.make("site", names: ["site.test"])
        let backend = try TestBackend.named("unused")
        let (proxy, port) = try Listener.start(backend: backend.port, certificates: [cert])
        defer { proxy.stop(); backend.stop() }
        let out = try Self.sClient(port: port, "GET /a HTTP/1.1\\r\\nHost: site.test\\r\\nContent-Length: x\\r\\n\\r\\n")
        #expect(out.contains("HTTP/1.1 400"), "\(out)")
        #expect(out.contains("Content-Length"))
        // The proxy is still serving TLS clients afterwards.
        let (rc, body) = try Listener.shell("curl -sS --cacert \(cert["cert"]!) --resolve site.test:\(port):127.0.0.1 https://site.test:\(port)/")
        #expect(rc == 0)
        #expect(body.contains("unused"))
    }

    @Test("101 Switching Protocols over TLS: the tunnel carries bytes both ways")
    func tunnel() throws {
        let certs = try Listener.Certificates()
        let cert = try certs.make("site", names: ["site.test"])
        let backend = try TestBackend(readsBodies: false) { request, socket in
            guard request.header("Upgrade") == "echo" else { return false }
            try socket.send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
            var seen: [UInt8] = []
            while seen.count < 6 {
                let data = try socket.receiveSome()
                if data.isEmpty { break }
                seen += data
                try socket.send(data.map { $0 == UInt8(ascii: "a") ? UInt8(ascii: "A") : $0 })
            }
            return false
        }
        let (proxy, port) = try Listener.start(backend: backend.port, certificates: [cert])
        defer { proxy.stop(); backend.stop() }
        let out = try Self.sClient(port: port, "GET /ws HTTP/1.1\\r\\nHost: site.test\\r\\nConnection: Upgrade\\r\\nUpgrade: echo\\r\\n\\r\\nbanana")
        #expect(out.contains("HTTP/1.1 101"), "\(out)")
        #expect(out.hasSuffix("bAnAnA"), "\(out)")
    }

    @Test("a kept TLS connection costs one descriptor, as a plain one does")
    func descriptorsPerConnection() throws {
        let certs = try Listener.Certificates()
        let cert = try certs.make("site", names: ["site.test"])
        let backend = try TestBackend.named("one")
        let (proxy, port) = try Listener.start(backend: backend.port, certificates: [cert])
        defer { proxy.stop(); backend.stop() }
        // The first kept connection leaves a pooled backend connection that the second reuses,
        // so the second adds only its own socket (a relay would add a socket pair as well).
        let first = try OpenSSLClient(port: port, serverName: "site.test")
        defer { first.stop() }
        #expect(try first.exchange("GET / HTTP/1.1\r\nHost: site.test\r\n\r\n").contains("one"))
        let before = proxy.descriptorCount()
        let second = try OpenSSLClient(port: port, serverName: "site.test")
        defer { second.stop() }
        #expect(try second.exchange("GET / HTTP/1.1\r\nHost: site.test\r\n\r\n").contains("one"))
        #expect(proxy.descriptorCount() - before == 1)
    }
}
