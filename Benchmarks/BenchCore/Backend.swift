import HTTP1
import Reactor
import Synchronization
import Syscalls
#if canImport(Glibc)
import Glibc
#endif

/// A small, fast HTTP/1.1 backend for benchmarks: `GET /` answers `hello\n`, `GET /big` answers
/// 1 MiB, anything else 404; keep-alive, pipelining, one epoll reactor per thread. Responses are
/// serialised once at start and written straight from that memory.
///
/// It counts the responses it has written completely (`served`), which lets a test check the load
/// generator's request count exactly.
///
/// `workMicros` makes it a slower service: each request first busy-waits that long on its reactor
/// thread (CPU work, as a real handler does; a sleep would let other connections through), so
/// two backends with work 200 and 220 µs are a version and one 10 % slower.
public final class BenchBackend: @unchecked Sendable {
    /// The port it listens on (127.0.0.1).
    public let port: Int
    private let loops: [EventLoop]
    private var servers: [BackendServer] = []
    private var threads: [pthread_t] = []
    private let counter: ServedCounter
    private let stopped = Atomic<Bool>(false)

    /// Size of the `/big` body.
    public static let bigBodySize = 1 << 20
    /// The `/` body.
    public static let smallBody = "hello\n"

    /// Starts listening on 127.0.0.1:`port` (0 = a free port) with `threads` reactors, each
    /// request costing `workMicros` of busy CPU first.
    public init(port: Int = 0, threads: Int = 1, workMicros: Int = 0) throws(SyscallError) {
        _ = Process.raiseFileLimit()
        Process.ignoreSIGPIPE()
        let responses = BackendResponses()
        let counter = ServedCounter()
        var loops: [EventLoop] = []
        var servers: [BackendServer] = []
        var boundPort = port
        for t in 0..<max(1, threads) {
            let address = SocketAddress(host: "127.0.0.1", port: boundPort)!
            let listener = try Socket.listen(address, reusePort: threads > 1)
            if boundPort == 0 { boundPort = try Socket.localAddress(listener).port }
            let loop = try EventLoop(id: t)
            loops.append(loop)
            servers.append(BackendServer(loop: loop, listener: listener, responses: responses, counter: counter,
                                         workNanos: UInt64(max(0, workMicros)) * 1000))
        }
        self.port = boundPort
        self.counter = counter
        self.loops = loops
        self.servers = servers
        for server in servers {
            try server.loop.registerListener(server.listener, handler: server)
        }
        self.threads = loops.map { loop in ReactorThread.start { loop.run() } }
    }

    /// Responses written completely since start.
    public var served: Int { counter.value.load(ordering: .relaxed) }
    /// Connections accepted since start.
    public var accepted: Int { counter.accepted.load(ordering: .relaxed) }

    /// Stops the reactors, then closes the listeners and every connection. Idempotent.
    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        for loop in loops { loop.stop() }
        for thread in threads { ReactorThread.join(thread) }
        for server in servers { server.closeAll() }
    }

    deinit { stop() }
}

/// Responses written completely, shared by the backend's reactors.
final class ServedCounter: Sendable {
    let value = Atomic<Int>(0)
    let accepted = Atomic<Int>(0)
}

/// The responses, serialised once.
final class BackendResponses: @unchecked Sendable {
    let small: SharedBytes
    let big: SharedBytes
    let notFound: SharedBytes
    let badRequest: SharedBytes

    init() {
        small = SharedBytes(Array("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nhello\n".utf8))
        var big = Array("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: \(BenchBackend.bigBodySize)\r\n\r\n".utf8)
        big.reserveCapacity(big.count + BenchBackend.bigBodySize)
        for i in 0..<BenchBackend.bigBodySize { big.append(UInt8(truncatingIfNeeded: i &* 31 &+ i >> 8)) }
        self.big = SharedBytes(big)
        notFound = SharedBytes(Array("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nnot found\n".utf8))
        badRequest = SharedBytes(Array("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8))
    }
}

/// One reactor's listener and connections.
final class BackendServer: EventHandler {
    let loop: EventLoop
    let listener: Int32
    let responses: BackendResponses
    let counter: ServedCounter
    /// Busy CPU per request, nanoseconds.
    let workNanos: UInt64
    var connections: [Int32: BackendConnection] = [:]

    init(loop: EventLoop, listener: Int32, responses: BackendResponses, counter: ServedCounter, workNanos: UInt64 = 0) {
        self.counter = counter
        self.workNanos = workNanos
        self.loop = loop
        self.listener = listener
        self.responses = responses
    }

    func handleEvent(fd: Int32, events: EpollEvents) {
        while true {
            guard case .done(let (client, _)) = (try? Socket.accept(listener)) ?? .wouldBlock else { return }
            counter.accepted.wrappingAdd(1, ordering: .relaxed)
            let connection = BackendConnection(fd: client, server: self)
            do {
                try loop.register(client, handler: connection)
                connections[client] = connection
            } catch {
                Socket.close(client)
            }
        }
    }

    func closed(_ c: BackendConnection) {
        connections[c.fd] = nil
    }

    func closeAll() {
        for (fd, _) in connections { Socket.close(fd) }
        connections.removeAll()
        Socket.close(listener)
    }
}

/// One client connection of the backend.
final class BackendConnection: EventHandler {
    let fd: Int32
    unowned let server: BackendServer
    let buffer = ByteBuffer(capacity: 16384)
    var parser = HeadParser(limits: HeadLimits(requireHost: false))
    var head = RequestHead()
    /// The response being written and how much of it is out.
    var response: SharedBytes?
    var written = 0
    var closeAfterResponse = false
    /// Request body bytes still to be skipped.
    var bodySkip: UInt64 = 0
    var isClosed = false

    init(fd: Int32, server: BackendServer) {
        self.fd = fd
        self.server = server
        head.headers.reserveCapacity(16)
    }

    func handleEvent(fd: Int32, events: EpollEvents) {
        if response != nil && events.contains(.writable) {
            guard flush() else { return }
            guard process() else { return }
        }
        if !events.isDisjoint(with: [.readable, .readHangup, .hangup, .error]) { readAvailable() }
    }

    func readAvailable() {
        while !isClosed {
            if buffer.writableCount < 4096 { buffer.compact() }
            guard buffer.writableCount > 0 else { close(); return }
            let room = buffer.writableCount
            switch (try? buffer.read(from: fd)) ?? .done(0) {
            case .wouldBlock: return
            case .done(0): close(); return
            case .done(let n):
                guard process() else { return }
                if n < room { return }  // the socket is empty; new bytes raise a new edge
            }
        }
    }

    /// Answers every complete request in the buffer while the socket takes the answers.
    /// Returns false when the connection is closed.
    func process() -> Bool {
        while response == nil {
            if bodySkip > 0 {
                let take = min(UInt64(buffer.readableCount), bodySkip)
                buffer.consume(Int(take))
                bodySkip -= take
                if bodySkip > 0 { return true }
            }
            guard buffer.readableCount > 0 else { return true }
            switch parser.parseRequest(buffer.readable, into: &head) {
            case .incomplete:
                return true
            case .error:
                respond(server.responses.badRequest, close: true)
                return flush()
            case .complete(let length):
                let bytes = buffer.readable
                var path = head.targetRange
                if let q = path.firstIndex(where: { bytes[$0] == 0x3F }) { path = path.lowerBound..<q }
                let chosen: SharedBytes
                if equals(bytes, path, "/") {
                    chosen = server.responses.small
                } else if equals(bytes, path, "/big") {
                    chosen = server.responses.big
                } else {
                    chosen = server.responses.notFound
                }
                switch head.framing {
                case .contentLength(let n): bodySkip = n
                case .chunked:
                    respond(server.responses.badRequest, close: true)
                    return flush()
                default: break
                }
                let keepAlive = head.keepAlive
                buffer.consume(length)
                if server.workNanos > 0 {
                    let until = Clock.nanoseconds() &+ server.workNanos
                    while Clock.nanoseconds() < until {}
                }
                parser.reset()
                respond(chosen, close: !keepAlive)
                guard flush() else { return false }
            }
        }
        return true
    }

    private func equals(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ text: StaticString) -> Bool {
        guard range.count == text.utf8CodeUnitCount else { return false }
        let p = text.utf8Start
        for i in 0..<range.count where bytes[range.lowerBound + i] != p[i] { return false }
        return true
    }

    private func respond(_ bytes: SharedBytes, close: Bool) {
        response = bytes
        written = 0
        closeAfterResponse = close
    }

    /// Writes what is left of the response; false when the connection is closed.
    func flush() -> Bool {
        guard let r = response else { return true }
        while written < r.count {
            switch (try? Socket.write(fd, from: UnsafeRawBufferPointer(rebasing: r.bytes[written...]))) ?? .done(-1) {
            case .wouldBlock: return true
            case .done(let n) where n > 0: written += n
            default: close(); return false
            }
        }
        response = nil
        server.counter.value.wrappingAdd(1, ordering: .relaxed)
        if closeAfterResponse { close(); return false }
        return true
    }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        server.loop.unregister(fd)
        Socket.close(fd)
        server.closed(self)
    }
}
