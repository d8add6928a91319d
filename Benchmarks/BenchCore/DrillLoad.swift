import Reactor
import Synchronization
import Syscalls
#if canImport(Glibc)
import Glibc
#endif

/// How one exchange of the drill's load looked to its client.
public enum DrillCheck: Equatable, Sendable {
    /// 200 with v1's body for the item.
    case good
    /// Status 500 or above.
    case serverError
    /// Any other status, or a body different from v1's.
    case wrongBody
    /// No valid response: connect failure, reset, close, timeout or a malformed response.
    case connectionError

    /// Whether a client would call this exchange bad.
    public var isBad: Bool { self != .good }

    /// Judges the response to `GET /item/n` against v1's answer.
    public static func check(item n: Int, status: Int, body: [UInt8]) -> DrillCheck {
        if status >= 500 { return .serverError }
        return status == 200 && body == DrillAnswers.body(n) ? .good : .wrongBody
    }
}

/// The client-side figures of a drill scenario.
public struct DrillTally: Equatable, Sendable {
    /// Exchanges attempted (every one ends in one of the four checks).
    public var requests = 0
    /// Responses with status 500 or above.
    public var serverErrors = 0
    /// Responses with another status than 200, or a body other than v1's.
    public var wrongBodies = 0
    /// Exchanges that got no valid response (connect failure, reset, close, timeout, malformed).
    public var connectionErrors = 0
    /// When the first bad exchange ended (monotonic nanoseconds), nil when there was none.
    public var firstBadNanos: UInt64?

    public init() {}

    /// Client-visible bad responses.
    public var bad: Int { serverErrors + wrongBodies + connectionErrors }
}

/// The drill's load: `connections` keep-alive connections to 127.0.0.1:`port`, each on its own
/// thread, sending `GET /item/N` (N cycling over 0..999, shared by all connections) at
/// `rate` / `connections` requests per second each, one exchange at a time, and checking every
/// response against v1's answer.
///
/// The rate is a schedule, not a cap on concurrency: a connection that falls behind (a slow
/// answer) catches up by at most one interval, so a slow version lowers the rate a little
/// rather than producing bursts.
public final class DrillLoad: @unchecked Sendable {
    /// Limit for one exchange; a response slower than this counts as a connection error.
    public static let exchangeTimeoutNanos: UInt64 = 5_000_000_000

    private let port: Int
    private let connections: Int
    private let intervalNanos: UInt64
    private let shared = DrillLoadState()
    private var threads: [pthread_t] = []

    /// Prepares the load; `start()` begins it.
    public init(port: Int, connections: Int, rate: Int) {
        self.port = port
        self.connections = max(1, connections)
        intervalNanos = UInt64(1e9 * Double(max(1, connections)) / Double(max(1, rate)))
    }

    /// Starts the connection threads.
    public func start() {
        Process.ignoreSIGPIPE()
        let (port, interval, shared) = (port, intervalNanos, shared)
        let start = Clock.nanoseconds()
        for c in 0..<connections {
            // Spread the connections' first sends over one interval.
            let first = start + interval * UInt64(c) / UInt64(connections)
            threads.append(ReactorThread.start { DrillLoad.run(port: port, interval: interval, first: first, shared: shared) })
        }
    }

    /// The figures so far (safe while running).
    public var tally: DrillTally { shared.snapshot() }

    /// Stops after each connection's exchange in flight; returns the final figures.
    @discardableResult
    public func stop() -> DrillTally {
        shared.stopped.store(true, ordering: .releasing)
        for thread in threads { ReactorThread.join(thread) }
        threads.removeAll()
        return tally
    }

    deinit { _ = stop() }

    /// One connection's loop.
    private static func run(port: Int, interval: UInt64, first: UInt64, shared: DrillLoadState) {
        var fd: Int32?
        var buffer: [UInt8] = []
        var next = first
        defer { if let fd { Socket.close(fd) } }
        while true {
            // Wait for the next send in short slices, so stop is seen quickly.
            while !shared.stopped.load(ordering: .acquiring) {
                let now = Clock.nanoseconds()
                guard now < next else { break }
                usleep(UInt32(min((next - now) / 1000, 50_000)))
            }
            if shared.stopped.load(ordering: .acquiring) { return }
            let now = Clock.nanoseconds()
            next = max(next + interval, now > interval ? now - interval : 0)
            let n = Int(shared.counter.wrappingAdd(1, ordering: .relaxed).oldValue % 1000)
            let check = exchange(port: port, item: n, fd: &fd, buffer: &buffer)
            shared.record(check)
        }
    }

    /// One `GET /item/n` on the connection (opened first when needed); closes it on any failure
    /// or when the response ends the connection.
    private static func exchange(port: Int, item n: Int, fd: inout Int32?, buffer: inout [UInt8]) -> DrillCheck {
        let deadline = Clock.nanoseconds() + exchangeTimeoutNanos
        func fail() -> DrillCheck {
            if let open = fd { Socket.close(open) }
            fd = nil
            buffer.removeAll()
            return .connectionError
        }
        if fd == nil {
            guard let opened = LoopbackIO.connect(port: port, until: deadline) else { return .connectionError }
            fd = opened
            buffer.removeAll()
        }
        let request = Array("GET /item/\(n) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n\r\n".utf8)
        guard LoopbackIO.writeAll(fd!, request, until: deadline) else { return fail() }
        while true {
            let r = LoopbackIO.read(fd!, into: &buffer, until: deadline)
            guard r == .closed || r.isData else { return fail() }
            switch ResponseFrame.parse(buffer, atEOF: r == .closed) {
            case .incomplete:
                if r == .closed { return fail() }
            case .malformed:
                return fail()
            case .complete(let status, let body, let keepAlive, let length):
                buffer.removeFirst(length)
                if !keepAlive || r == .closed {
                    Socket.close(fd!)
                    fd = nil
                    buffer.removeAll()
                }
                return DrillCheck.check(item: n, status: status, body: body)
            }
        }
    }
}

/// What the load's connection threads share.
final class DrillLoadState: Sendable {
    let stopped = Atomic<Bool>(false)
    /// The next item number (taken modulo 1000).
    let counter = Atomic<UInt64>(0)
    let requests = Atomic<Int>(0)
    let serverErrors = Atomic<Int>(0)
    let wrongBodies = Atomic<Int>(0)
    let connectionErrors = Atomic<Int>(0)
    /// Monotonic nanoseconds of the first bad exchange; 0 = none yet.
    let firstBad = Atomic<UInt64>(0)

    func record(_ check: DrillCheck) {
        requests.wrappingAdd(1, ordering: .relaxed)
        switch check {
        case .good: return
        case .serverError: serverErrors.wrappingAdd(1, ordering: .relaxed)
        case .wrongBody: wrongBodies.wrappingAdd(1, ordering: .relaxed)
        case .connectionError: connectionErrors.wrappingAdd(1, ordering: .relaxed)
        }
        _ = firstBad.compareExchange(expected: 0, desired: Clock.nanoseconds(), ordering: .acquiringAndReleasing)
    }

    func snapshot() -> DrillTally {
        var t = DrillTally()
        t.requests = requests.load(ordering: .relaxed)
        t.serverErrors = serverErrors.load(ordering: .relaxed)
        t.wrongBodies = wrongBodies.load(ordering: .relaxed)
        t.connectionErrors = connectionErrors.load(ordering: .relaxed)
        let first = firstBad.load(ordering: .acquiring)
        t.firstBadNanos = first == 0 ? nil : first
        return t
    }
}
