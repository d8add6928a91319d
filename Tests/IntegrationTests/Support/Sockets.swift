import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP connection for tests (client side or an accepted backend side).
final class BlockingSocket: @unchecked Sendable {
    let fd: Int32
    private var pending: [UInt8] = []
    private(set) var closed = false
    /// Every byte received from the peer, in order (a backend's record of the exact wire bytes).
    private(set) var received: [UInt8] = []

    init(fd: Int32) { self.fd = fd }

    /// Connects to 127.0.0.1:port with a receive timeout.
    convenience init(port: Int, timeout: Double = 10) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket failed") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else {
            let err = errno
            Glibc.close(fd)
            throw HarnessError("connect to \(port) failed: errno \(err)")
        }
        self.init(fd: fd)
        setTimeout(timeout)
    }

    func setTimeout(_ seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { throw HarnessError("send failed: errno \(errno)") }
            offset += n
        }
    }

    /// Reads some bytes; empty at end of stream. Throws on timeout or error.
    func receiveSome(max: Int = 65536) throws -> [UInt8] {
        if !pending.isEmpty {
            let n = min(max, pending.count)
            let out = Array(pending[0..<n])
            pending.removeFirst(n)
            return out
        }
        var buffer = [UInt8](repeating: 0, count: max)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 {
            let err = errno
            if err == ECONNRESET { return [] }
            throw HarnessError(err == EAGAIN ? "receive timed out" : "recv failed: errno \(err)")
        }
        received += buffer[0..<n]
        return Array(buffer[0..<n])
    }

    /// Puts bytes back to be read first.
    func unread(_ bytes: [UInt8]) { pending = bytes + pending }

    /// Reads until `count` bytes or end of stream.
    func receive(exactly count: Int) throws -> [UInt8] {
        var out: [UInt8] = []
        while out.count < count {
            let chunk = try receiveSome(max: min(1 << 20, count - out.count))
            if chunk.isEmpty { break }
            out += chunk
        }
        return out
    }

    /// Reads one CRLF-terminated line (without the CRLF).
    func readLine() throws -> String? {
        var line: [UInt8] = []
        while true {
            let chunk = try receiveSome(max: 4096)
            if chunk.isEmpty { return line.isEmpty ? nil : String(decoding: line, as: UTF8.self) }
            if let i = chunk.firstIndex(of: 10) {
                line += chunk[..<i]
                unread(Array(chunk[(i + 1)...]))
                if line.last == 13 { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            line += chunk
        }
    }

    /// Reads everything until the peer closes.
    func receiveAll() throws -> [UInt8] {
        var out: [UInt8] = []
        while true {
            let chunk = try receiveSome()
            if chunk.isEmpty { return out }
            out += chunk
        }
    }

    /// True when the peer has closed (reads end of stream within the timeout).
    func peerClosed() -> Bool {
        (try? receiveSome()) == []
    }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
    }

    deinit { close() }
}

/// A parsed HTTP response as the tests see it.
struct TestResponse {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]
    var bodyText: String { String(decoding: body, as: UTF8.self) }
    /// First value of a header (case-insensitive).
    func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    /// All values of a header.
    func headers(_ name: String) -> [String] { headers.filter { $0.0.lowercased() == name.lowercased() }.map(\.1) }
}

/// A client connection to the proxy.
final class ClientConnection: @unchecked Sendable {
    let socket: BlockingSocket
    init(port: Int, timeout: Double = 10) throws { socket = try BlockingSocket(port: port, timeout: timeout) }
    func send(_ text: String) throws { try socket.send(text) }
    func send(_ bytes: [UInt8]) throws { try socket.send(bytes) }
    func close() { socket.close() }

    /// Sends a GET and reads the response.
    func get(_ path: String, headers: [String: String] = [:]) throws -> TestResponse {
        var request = "GET \(path) HTTP/1.1\r\nHost: test\r\n"
        for (k, v) in headers { request += "\(k): \(v)\r\n" }
        try send(request + "\r\n")
        return try readResponse()
    }

    /// Reads one response (final, after any 1xx if `skipInterim`), honouring its framing.
    func readResponse(method: String = "GET", skipInterim: Bool = true) throws -> TestResponse {
        while true {
            guard let statusLine = try socket.readLine() else { throw HarnessError("connection closed before a response") }
            let parts = statusLine.split(separator: " ", maxSplits: 2)
            guard parts.count >= 2, let status = Int(parts[1]) else { throw HarnessError("bad status line: \(statusLine)") }
            var headers: [(String, String)] = []
            while let line = try socket.readLine(), !line.isEmpty {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            }
            var response = TestResponse(status: status, headers: headers, body: [])
            if status >= 100 && status < 200 {
                if skipInterim && status != 101 { continue }
                return response
            }
            if method == "HEAD" || status == 204 || status == 304 { return response }
            if let te = response.header("Transfer-Encoding"), te.lowercased().contains("chunked") {
                response.body = try readChunked()
            } else if let cl = response.header("Content-Length"), let n = Int(cl) {
                response.body = try socket.receive(exactly: n)
                if response.body.count != n { throw HarnessError("short body: \(response.body.count) of \(n)") }
            } else {
                response.body = try socket.receiveAll()
            }
            return response
        }
    }

    private func readChunked() throws -> [UInt8] {
        var body: [UInt8] = []
        while true {
            guard let sizeLine = try socket.readLine() else { throw HarnessError("chunked body cut short") }
            let hex = sizeLine.split(separator: ";").first.map(String.init) ?? ""
            guard let size = Int(hex.trimmingCharacters(in: .whitespaces), radix: 16) else { throw HarnessError("bad chunk size \(sizeLine)") }
            if size == 0 {
                while let line = try socket.readLine(), !line.isEmpty {}
                return body
            }
            let data = try socket.receive(exactly: size)
            guard data.count == size else { throw HarnessError("chunk cut short") }
            body += data
            _ = try socket.readLine()
        }
    }

    /// True when the proxy closed the connection.
    func isClosedByPeer() -> Bool { socket.peerClosed() }
}
