import Foundation
import Syscalls
import Testing
import TLS
#if canImport(Glibc)
import Glibc
#endif

/// `TLSClient` against the server side (`TLSConnection`) over a non-blocking socketpair,
/// driven one step at a time: verification by CA and by name, and bytes both ways.
@Suite("TLS client")
struct TLSClientTests {
    /// A connected pair of non-blocking stream sockets: (client end, server end).
    static func socketPair() -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        return (fds[0], fds[1])
    }

    /// Runs both handshakes until each is done or one fails (nothing ever blocks: each side
    /// only waits for bytes the other has not written yet). Returns the client's outcome.
    static func handshake(_ client: TLSClient, _ server: TLSConnection) -> TLSConnection.Handshake {
        var clientState = TLSConnection.Handshake.wantWrite
        var serverState = TLSConnection.Handshake.wantRead
        for _ in 0..<50 {
            if clientState != .done { clientState = client.handshake() }
            if case .failed = clientState { return clientState }
            if serverState != .done { serverState = server.handshake() }
            if case .failed(let why) = serverState { return .failed("server: \(why)") }
            if clientState == .done && serverState == .done { return .done }
        }
        return .failed("no progress")
    }

    /// A client and a server connection on a fresh socketpair; the sockets close with `body`'s end.
    static func withPair(certificate: TLSSettings.Certificate, serverName: String, caFile: String?,
                         _ body: (TLSClient, TLSConnection) throws -> Void) throws {
        let (c, s) = socketPair()
        defer { Glibc.close(c); Glibc.close(s) }
        let context = try TLSContext(TLSSettings(certificates: [certificate]), kernelTLS: false)
        let server = try #require(TLSConnection(context: context, fd: s))
        let client = try TLSClient(fd: c, serverName: serverName, caFile: caFile)
        try body(client, server)
    }

    @Test("a certificate from the given CA that names the host: handshake done, bytes both ways")
    func verified() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cert = try makeCertificate(in: dir, name: "admin", names: ["admin.test", "localhost"])
        try Self.withPair(certificate: cert, serverName: "admin.test", caFile: cert.cert) { client, server in
            #expect(Self.handshake(client, server) == .done)
            #expect(server.serverName == "admin.test", "the client sends SNI for a name")
            let ping = Array("GET /status HTTP/1.1\r\n\r\n".utf8)
            #expect(client.write(ping[...]) == .done(ping.count))
            let buffer = ByteBuffer(capacity: 4096)
            #expect(server.read(into: buffer) == .done(ping.count))
            #expect(buffer.readableBytes() == ping)
            let pong = Array("HTTP/1.1 200 OK\r\n\r\n".utf8)
            #expect(pong.withUnsafeBytes { server.write($0) } == .done(pong.count))
            let (received, outcome) = client.read(max: 4096)
            #expect(outcome == .done(pong.count))
            #expect(received == pong)
            server.shutdown()
            #expect(client.read(max: 4096).outcome == .closed)
        }
    }

    @Test("refused: another name, an IP the certificate does not list, no trusted CA; an unreadable CA file names --cacert")
    func refused() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cert = try makeCertificate(in: dir, name: "admin", names: ["admin.test"])
        let other = try makeCertificate(in: dir, name: "other", names: ["admin.test"])
        func outcome(_ name: String, _ ca: String?) throws -> String {
            var reason = ""
            try Self.withPair(certificate: cert, serverName: name, caFile: ca) { client, server in
                if case .failed(let why) = Self.handshake(client, server) { reason = why }
            }
            return reason
        }
        #expect(try outcome("shop.test", cert.cert).contains("was not accepted: hostname mismatch"))
        #expect(try outcome("127.0.0.1", cert.cert).contains("was not accepted: IP address mismatch"))
        #expect(try outcome("admin.test", nil).contains("was not accepted: self-signed certificate"))
        #expect(try outcome("admin.test", other.cert).contains("was not accepted"))
        let (c, s) = Self.socketPair()
        defer { Glibc.close(c); Glibc.close(s) }
        #expect(throws: TLSError(field: "cacert", message: "cannot read \(dir)/none.pem: No such file or directory")) {
            try TLSClient(fd: c, serverName: "admin.test", caFile: dir + "/none.pem")
        }
    }
}
