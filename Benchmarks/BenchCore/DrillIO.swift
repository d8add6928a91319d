import HTTP1
import Syscalls
#if canImport(Glibc)
import Glibc
#endif

/// Blocking-style I/O on the project's non-blocking loopback sockets, for the drill's threads:
/// every wait is a `poll` bounded by a deadline (monotonic nanoseconds), so no thread can hang.
enum LoopbackIO {
    /// How a read ended.
    enum ReadResult: Equatable {
        /// This many bytes were appended.
        case data(Int)
        /// The peer closed its side.
        case closed
        /// Nothing arrived before the deadline.
        case timedOut
        /// The socket failed (reset, …).
        case failed
    }

    /// Waits until `fd` is ready for `events` or `deadline` passes; true when ready (or in error,
    /// which the following call reports).
    static func wait(_ fd: Int32, _ events: Int16, until deadline: UInt64) -> Bool {
        while true {
            let now = Clock.nanoseconds()
            guard now < deadline else { return false }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let rc = poll(&p, 1, Int32(min((deadline - now) / 1_000_000 + 1, 1000)))
            if rc > 0 { return true }
            if rc < 0 && errno != EINTR { return false }
        }
    }

    /// A connected socket to 127.0.0.1:`port`, or nil when the connection failed or timed out.
    static func connect(port: Int, until deadline: UInt64) -> Int32? {
        guard let address = SocketAddress(host: "127.0.0.1", port: port),
              let (fd, connected) = try? Socket.connect(address) else { return nil }
        if !connected {
            guard wait(fd, Int16(POLLOUT), until: deadline), Socket.pendingError(fd) == 0 else {
                Socket.close(fd)
                return nil
            }
        }
        Socket.setNoDelay(fd)
        return fd
    }

    /// Writes all of `bytes`; false when the socket failed or the deadline passed.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], until deadline: UInt64) -> Bool {
        var sent = 0
        while sent < bytes.count {
            guard let r = try? Socket.write(fd, bytes: bytes[sent...]) else { return false }
            switch r {
            case .done(let n): sent += n
            case .wouldBlock: guard wait(fd, Int16(POLLOUT), until: deadline) else { return false }
            }
        }
        return true
    }

    /// Reads what is available (waiting for at least one byte until `deadline`) and appends it to `buffer`.
    static func read(_ fd: Int32, into buffer: inout [UInt8], until deadline: UInt64) -> ReadResult {
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let r = chunk.withUnsafeMutableBytes { try? Socket.read(fd, into: $0) }
            guard let r else { return .failed }
            switch r {
            case .done(0): return .closed
            case .done(let n):
                buffer += chunk[0..<n]
                return .data(n)
            case .wouldBlock:
                guard wait(fd, Int16(POLLIN), until: deadline) else { return .timedOut }
            }
        }
    }
}

/// One complete HTTP/1 response cut from the front of a byte buffer. Pure, so the checks of the
/// load client and of the API calls are tested without sockets.
enum ResponseFrame: Equatable {
    /// More bytes are needed (or, for a body delimited by close, the close).
    case incomplete
    /// A whole response: its status, its decoded body, whether the connection may carry another
    /// exchange, and how many bytes of the buffer it took.
    case complete(status: Int, body: [UInt8], keepAlive: Bool, length: Int)
    /// Not a valid response.
    case malformed(String)

    /// Parses the response at the start of `bytes` to a GET; `atEOF` says the peer has closed, which
    /// completes a body delimited by the close.
    static func parse(_ bytes: [UInt8], atEOF: Bool = false) -> ResponseFrame {
        var parser = HeadParser()
        var head = ResponseHead()
        let status = bytes.withUnsafeBytes { parser.parseResponse($0, requestMethod: .get, into: &head) }
        let headLength: Int
        switch status {
        case .incomplete: return atEOF ? .malformed("connection closed inside the response head") : .incomplete
        case .error(let e): return .malformed("invalid response head: \(e)")
        case .complete(let n): headLength = n
        }
        switch head.framing {
        case .none:
            return .complete(status: head.status, body: [], keepAlive: head.keepAlive, length: headLength)
        case .contentLength(let n):
            guard n <= UInt64(Int.max - headLength) else { return .malformed("Content-Length too large") }
            let end = headLength + Int(n)
            guard bytes.count >= end else {
                return atEOF ? .malformed("connection closed after \(bytes.count - headLength) of \(n) body bytes") : .incomplete
            }
            return .complete(status: head.status, body: Array(bytes[headLength..<end]), keepAlive: head.keepAlive, length: end)
        case .untilClose:
            guard atEOF else { return .incomplete }
            return .complete(status: head.status, body: Array(bytes[headLength...]), keepAlive: false, length: bytes.count)
        case .chunked:
            var decoder = ChunkedDecoder()
            var body: [UInt8] = []
            var at = headLength
            while true {
                let (consumed, event) = bytes[at...].withUnsafeBytes { decoder.decode($0) }
                at += consumed
                switch event {
                case .needMore:
                    return atEOF ? .malformed("connection closed inside a chunked body") : .incomplete
                case .chunkData(let n):
                    guard UInt64(bytes.count - at) >= n else {
                        return atEOF ? .malformed("connection closed inside a chunk") : .incomplete
                    }
                    body += bytes[at..<at + Int(n)]
                    at += Int(n)
                case .end:
                    return .complete(status: head.status, body: body, keepAlive: head.keepAlive, length: at)
                case .error(let e):
                    return .malformed("invalid chunked body: \(e)")
                }
            }
        }
    }
}

/// Requests to the proxy's REST API: one connection per call, `Connection: close`.
enum APIClient {
    /// Sends `method path` with an optional JSON body to 127.0.0.1:`port`; returns the status
    /// and body, or nil when no valid response came within `timeoutMillis`.
    static func request(port: Int, method: String, path: String, body: String? = nil,
                        timeoutMillis: Int = 2000) -> (status: Int, body: String)? {
        let deadline = Clock.nanoseconds() + UInt64(timeoutMillis) * 1_000_000
        guard let fd = LoopbackIO.connect(port: port, until: deadline) else { return nil }
        defer { Socket.close(fd) }
        var request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        if let body {
            request += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
        } else {
            request += "\r\n"
        }
        guard LoopbackIO.writeAll(fd, Array(request.utf8), until: deadline) else { return nil }
        var received: [UInt8] = []
        while true {
            let r = LoopbackIO.read(fd, into: &received, until: deadline)
            guard r == .closed || r.isData else { return nil }
            switch ResponseFrame.parse(received, atEOF: r == .closed) {
            case .incomplete: if r == .closed { return nil }
            case .malformed: return nil
            case .complete(let status, let body, _, _): return (status, String(decoding: body, as: UTF8.self))
            }
        }
    }
}

extension LoopbackIO.ReadResult {
    /// True for `.data`.
    var isData: Bool { if case .data = self { return true } else { return false } }
}
