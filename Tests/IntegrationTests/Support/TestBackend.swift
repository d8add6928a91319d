import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A scripted backend on 127.0.0.1 (free port), one thread per connection. It records every
/// request it receives (so tests can check what reached a backend, and what did not) and
/// lets each test script the answer, including misbehaviour.
final class TestBackend: @unchecked Sendable {
    struct Request: Sendable {
        var method: String
        var target: String
        var version: String
        var headers: [(String, String)]
        var body: [UInt8]
        var connection: Int
        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
        func headers(_ name: String) -> [String] { headers.filter { $0.0.lowercased() == name.lowercased() }.map(\.1) }
    }

    /// Answers one request on `socket`; returns false to close the connection afterwards.
    typealias Handler = @Sendable (Request, BlockingSocket) throws -> Bool

    let port: Int
    private let listenFD: Int32
    private let handler: Handler
    private let recorded = Locked<[Request]>([])
    private let wire = Locked<[Int: [UInt8]]>([:])
    private let accepted = Atomic<Int>(0)
    private let open = Locked<[Int32: BlockingSocket]>([:])
    private let stopped = Atomic<Bool>(false)
    /// Reads request bodies itself (false: the handler reads them from the socket).
    let readsBodies: Bool

    /// Listens on `host:port` (default: a free port on 127.0.0.1; any 127.x address is loopback).
    init(readsBodies: Bool = true, host: String = "127.0.0.1", port wanted: Int = 0, handler: @escaping Handler) throws {
        self.handler = handler
        self.readsBodies = readsBodies
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(wanted).bigEndian
        addr.sin_addr.s_addr = inet_addr(host)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        if bound != 0 {
            Glibc.close(fd)
            throw HarnessError("cannot bind \(host):\(wanted)")
        }
        listen(fd, 512)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        listenFD = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// Requests received so far.
    var requests: [Request] { recorded.withLock { $0 } }
    /// Connections accepted so far.
    var connections: Int { accepted.load(ordering: .relaxed) }
    /// Connections open now (accepted and not yet closed by either side).
    var openConnections: Int { open.withLock { $0.count } }

    /// The exact bytes received on connection `id` up to the end of its latest complete request.
    func wireBytes(connection id: Int) -> [UInt8] { wire.withLock { $0[id] ?? [] } }

    private func acceptLoop() {
        while !stopped.load(ordering: .relaxed) {
            let client = accept(listenFD, nil, nil)
            if client < 0 {
                if stopped.load(ordering: .relaxed) { return }
                continue
            }
            let id = accepted.add(1, ordering: .relaxed).newValue
            let socket = BlockingSocket(fd: client)
            socket.setTimeout(30)
            open.withLock { $0[client] = socket }
            Thread.detachNewThread { [self] in serve(socket, id: id) }
        }
    }

    private func serve(_ socket: BlockingSocket, id: Int) {
        defer {
            open.withLock { _ = $0.removeValue(forKey: socket.fd) }
            socket.close()
        }
        while !stopped.load(ordering: .relaxed) {
            do {
                guard let request = try readRequest(socket, id: id) else { return }
                wire.withLock { $0[id] = socket.received }
                recorded.withLock { $0.append(request) }
                if try !handler(request, socket) { return }
            } catch {
                return
            }
        }
    }

    private func readRequest(_ socket: BlockingSocket, id: Int) throws -> Request? {
        guard let line = try socket.readLine() else { return nil }
        let parts = line.split(separator: " ")
        guard parts.count == 3 else { return nil }
        var headers: [(String, String)] = []
        while let h = try socket.readLine(), !h.isEmpty {
            guard let colon = h.firstIndex(of: ":") else { continue }
            headers.append((String(h[..<colon]), h[h.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var request = Request(method: String(parts[0]), target: String(parts[1]), version: String(parts[2]),
                              headers: headers, body: [], connection: id)
        guard readsBodies else { return request }
        if request.header("Expect")?.lowercased() == "100-continue" {
            try socket.send("HTTP/1.1 100 Continue\r\n\r\n")
        }
        if request.header("Transfer-Encoding")?.lowercased().contains("chunked") == true {
            while true {
                guard let sizeLine = try socket.readLine(),
                      let size = Int(sizeLine.split(separator: ";").first.map(String.init) ?? "", radix: 16) else { return nil }
                if size == 0 {
                    while let t = try socket.readLine(), !t.isEmpty {}
                    break
                }
                request.body += try socket.receive(exactly: size)
                _ = try socket.readLine()
            }
        } else if let cl = request.header("Content-Length"), let n = Int(cl), n > 0 {
            request.body = try socket.receive(exactly: n)
        }
        return request
    }

    /// Stops accepting and closes every connection.
    func stop() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        shutdown(listenFD, Int32(SHUT_RDWR))
        Glibc.close(listenFD)
        let sockets = open.withLock { Array($0.values) }
        for s in sockets { shutdown(s.fd, Int32(SHUT_RDWR)) }
    }

    deinit { stop() }

    // MARK: Canned answers

    /// Writes a complete response with Content-Length.
    static func respond(_ socket: BlockingSocket, status: Int = 200, headers: [String] = [], body: String) throws {
        try respond(socket, status: status, headers: headers, body: Array(body.utf8))
    }

    static func respond(_ socket: BlockingSocket, status: Int = 200, headers: [String] = [], body: [UInt8]) throws {
        var head = "HTTP/1.1 \(status) \(status == 200 ? "OK" : "Status")\r\nContent-Length: \(body.count)\r\n"
        for h in headers { head += h + "\r\n" }
        try socket.send(Array((head + "\r\n").utf8) + body)
    }

    /// A backend that answers every request with `body` (and `X-Backend: name`).
    static func named(_ name: String, status: Int = 200) throws -> TestBackend {
        try TestBackend { _, socket in
            try respond(socket, status: status, headers: ["X-Backend: \(name)"], body: "\(name)\n")
            return true
        }
    }

    /// A port on which nothing listens (connects are refused).
    static func closedPort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        Glibc.close(fd)
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
