import HTTP1
import Reactor
import Synchronization
import Syscalls
#if canImport(Glibc)
import Glibc
#endif

/// What a drill backend is: the old version, or one of the four kinds of new version.
public enum DrillBackendKind: String, CaseIterable, Sendable {
    /// The old version: `GET /item/N` → 200 with `DrillAnswers.body(N)`.
    case v1
    /// A new version that answers exactly like v1.
    case good
    /// A new version that answers 503 to 5 % of requests, chosen at random.
    case errors
    /// A new version that answers like v1, 50 ms later.
    case slow
    /// A new version that answers a different 200 body for every path with N % 10 == 0.
    case divergent
}

/// The answers of the drill backends. Pure: the load client checks against the same functions.
public enum DrillAnswers {
    /// Length of every item body.
    public static let bodyLength = 200
    /// Share of the `errors` kind's answers that are 503.
    public static let errorRatio = 0.05
    /// Added delay of the `slow` kind, milliseconds.
    public static let slowMillis = 50

    /// The item number of a `/item/N` target (query ignored), or nil for any other target.
    public static func item(_ target: String) -> Int? {
        var path = Substring(target)
        if let q = path.firstIndex(of: "?") { path = path[..<q] }
        guard path.hasPrefix("/item/") else { return nil }
        let digits = path.dropFirst("/item/".count)
        guard !digits.isEmpty, digits.count <= 9, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(digits)
    }

    /// v1's body for item `n`: `item N` and letters that depend on N, `bodyLength` bytes ending in
    /// a newline. `shift` ≠ 0 gives a body of the same length with different letters (the divergent
    /// kind: a comparator must look at the bytes, not only the length).
    public static func body(_ n: Int, shift: Int = 0) -> [UInt8] {
        var bytes = Array("item \(n) ".utf8)
        var i = 0
        while bytes.count < bodyLength - 1 {
            bytes.append(UInt8(ascii: "a") + UInt8((n &* 7 &+ i &+ shift) % 26))
            i += 1
        }
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    /// Whether the divergent kind answers item `n` with a different body.
    public static func diverges(_ n: Int) -> Bool { n % 10 == 0 }

    /// The answer of a backend of `kind` to `GET target`: status, body, and whether it is a bad
    /// answer (a 503, a divergent body, or any answer of the slow kind). `draw` is a uniform
    /// random number in 0..<1 (the errors kind fails when it is below `errorRatio`).
    public static func answer(_ kind: DrillBackendKind, target: String, draw: Double) -> (status: Int, body: [UInt8], bad: Bool) {
        guard let n = item(target) else { return (404, Array("not found\n".utf8), false) }
        switch kind {
        case .v1, .good: return (200, body(n), false)
        case .slow: return (200, body(n), true)
        case .errors: return draw < errorRatio ? (503, Array("unavailable\n".utf8), true) : (200, body(n), false)
        case .divergent: return diverges(n) ? (200, body(n, shift: 1), true) : (200, body(n), false)
        }
    }

    /// The serialised response: status line, `Content-Type: text/plain`, `Content-Length` (no
    /// header names the version), `Connection: close` when the exchange ends the connection.
    static func response(status: Int, body: [UInt8], close: Bool) -> [UInt8] {
        let reason = [200: "OK", 404: "Not Found", 400: "Bad Request", 503: "Service Unavailable"][status] ?? "Status"
        var head = "HTTP/1.1 \(status) \(reason)\r\nContent-Type: text/plain\r\nContent-Length: \(body.count)\r\n"
        if close { head += "Connection: close\r\n" }
        return Array((head + "\r\n").utf8) + body
    }
}

/// A drill backend on 127.0.0.1: one acceptor thread and one thread per connection, each
/// waiting in `poll` with short timeouts so `stop()` ends them all promptly. Threads keep the
/// slow kind simple and exact: its 50 ms wait holds only the connection it answers.
///
/// It counts the answers it wrote and the bad ones among them, and remembers when it wrote the
/// first bad one (the start of "time to decision" for a rollback).
public final class DrillBackend: @unchecked Sendable {
    /// Which answers it gives.
    public let kind: DrillBackendKind
    /// The port it listens on (127.0.0.1).
    public let port: Int
    private let listener: Int32
    private let state = DrillBackendState()
    private var acceptor: pthread_t?

    /// Starts listening on a free loopback port.
    public init(kind: DrillBackendKind) throws(SyscallError) {
        Process.ignoreSIGPIPE()
        self.kind = kind
        listener = try Socket.listen(SocketAddress(host: "127.0.0.1", port: 0)!, reusePort: false)
        port = try Socket.localAddress(listener).port
        let (listener, state) = (listener, state)
        acceptor = ReactorThread.start { DrillBackend.accept(listener: listener, kind: kind, state: state) }
    }

    /// Answers written completely.
    public var served: Int { state.served.load(ordering: .relaxed) }
    /// Bad answers written (see `DrillAnswers.answer`).
    public var badAnswers: Int { state.bad.load(ordering: .relaxed) }
    /// Connections accepted.
    public var accepted: Int { state.accepted.load(ordering: .relaxed) }
    /// When the first bad answer was written (monotonic nanoseconds), nil before.
    public var firstBadNanos: UInt64? {
        let t = state.firstBad.load(ordering: .acquiring)
        return t == 0 ? nil : t
    }

    /// Stops accepting, ends every connection and waits for the threads. Idempotent.
    public func stop() {
        guard !state.stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        if let acceptor { ReactorThread.join(acceptor) }
        // Connection threads see the flag within 100 ms (or after the answer they are writing).
        let deadline = Clock.nanoseconds() + 10_000_000_000
        while state.live.load(ordering: .acquiring) > 0 && Clock.nanoseconds() < deadline { usleep(5_000) }
        Socket.close(listener)
    }

    deinit { stop() }

    /// The acceptor thread: a connection thread per accepted socket until stopped.
    private static func accept(listener: Int32, kind: DrillBackendKind, state: DrillBackendState) {
        while !state.stopped.load(ordering: .acquiring) {
            guard LoopbackIO.wait(listener, Int16(POLLIN), until: Clock.nanoseconds() + 100_000_000) else { continue }
            while let result = try? Socket.accept(listener), case .done(let (fd, _)) = result {
                state.accepted.wrappingAdd(1, ordering: .relaxed)
                state.live.wrappingAdd(1, ordering: .relaxed)
                // Detached: a backend may see many short connections, and each thread ends on its own.
                pthread_detach(ReactorThread.start { serve(fd: fd, kind: kind, state: state) })
            }
        }
    }

    /// One connection: answers its requests in order until the client closes or the backend stops.
    private static func serve(fd: Int32, kind: DrillBackendKind, state: DrillBackendState) {
        defer {
            Socket.close(fd)
            state.live.wrappingSubtract(1, ordering: .releasing)
        }
        var buffer: [UInt8] = []
        var parser = HeadParser(limits: HeadLimits(requireHost: false))
        var head = RequestHead()
        var generator = SystemRandomNumberGenerator()
        while !state.stopped.load(ordering: .acquiring) {
            let status = buffer.withUnsafeBytes { parser.parseRequest($0, into: &head) }
            switch status {
            case .error:
                _ = LoopbackIO.writeAll(fd, DrillAnswers.response(status: 400, body: [], close: true), until: Clock.nanoseconds() + 1_000_000_000)
                return
            case .incomplete:
                switch LoopbackIO.read(fd, into: &buffer, until: Clock.nanoseconds() + 100_000_000) {
                case .data, .timedOut: continue
                case .closed, .failed: return
                }
            case .complete(let length):
                let target = buffer.withUnsafeBytes { head.target(source: $0) }
                var skip = length
                if case .contentLength(let n) = head.framing { skip += Int(clamping: n) }
                guard head.framing != .chunked else {
                    _ = LoopbackIO.writeAll(fd, DrillAnswers.response(status: 400, body: [], close: true), until: Clock.nanoseconds() + 1_000_000_000)
                    return
                }
                // A request body (none is expected) is read and dropped before answering.
                while buffer.count < skip {
                    guard case .data = LoopbackIO.read(fd, into: &buffer, until: Clock.nanoseconds() + 1_000_000_000) else { return }
                }
                buffer.removeFirst(skip)
                parser.reset()
                let keepAlive = head.keepAlive
                let draw = Double.random(in: 0..<1, using: &generator)
                let answer = DrillAnswers.answer(kind, target: target, draw: draw)
                if kind == .slow && DrillAnswers.item(target) != nil {
                    usleep(UInt32(DrillAnswers.slowMillis * 1000))
                }
                let response = DrillAnswers.response(status: answer.status, body: answer.body, close: !keepAlive)
                guard LoopbackIO.writeAll(fd, response, until: Clock.nanoseconds() + 5_000_000_000) else { return }
                state.served.wrappingAdd(1, ordering: .relaxed)
                if answer.bad {
                    state.bad.wrappingAdd(1, ordering: .relaxed)
                    _ = state.firstBad.compareExchange(expected: 0, desired: Clock.nanoseconds(), ordering: .acquiringAndReleasing)
                }
                if !keepAlive { return }
            }
        }
    }
}

/// What a drill backend's threads share.
final class DrillBackendState: Sendable {
    let stopped = Atomic<Bool>(false)
    let served = Atomic<Int>(0)
    let bad = Atomic<Int>(0)
    let accepted = Atomic<Int>(0)
    /// Monotonic nanoseconds of the first bad answer; 0 = none yet.
    let firstBad = Atomic<UInt64>(0)
    /// Connection threads still running.
    let live = Atomic<Int>(0)
}
