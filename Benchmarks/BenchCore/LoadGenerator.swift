import HTTP1
import Reactor
import Syscalls
import TLS
#if canImport(Glibc)
import Glibc
#endif

/// What one load run does, resolved from the options.
public struct LoadPlan: Sendable {
    public var address: SocketAddress
    public var url: String
    /// The request, sent as is on every exchange.
    public var request: [UInt8]
    public var threads: Int
    public var connections: Int
    public var durationNanos: UInt64
    public var timeoutNanos: UInt64
    /// Total requests per second for constant-throughput mode; nil = closed loop.
    public var rate: UInt64?
    /// A new connection per request: each connection is closed after its response, whatever the
    /// server said (the request should say `Connection: close` too). Latency, as wrk's, runs from
    /// the request's send, so it excludes the connect.
    public var closeAfterEachResponse = false
    /// TLS on every connection (an https target); nil = plain TCP.
    public var tls: LoadTLS?

    public init(address: SocketAddress, url: String, request: [UInt8], threads: Int, connections: Int,
                durationNanos: UInt64, timeoutNanos: UInt64, rate: UInt64? = nil, closeAfterEachResponse: Bool = false,
                tls: LoadTLS? = nil) {
        self.address = address
        self.url = url
        self.request = request
        self.threads = threads
        self.connections = connections
        self.durationNanos = durationNanos
        self.timeoutNanos = timeoutNanos
        self.rate = rate
        self.closeAfterEachResponse = closeAfterEachResponse
        self.tls = tls
    }

    /// A plan from command-line options.
    public init(_ options: LoadOptions) throws(BenchUsageError) {
        guard let address = SocketAddress(host: options.url.connectHost, port: options.url.port) else {
            throw BenchUsageError("cannot resolve \(options.url.host)")
        }
        self.init(address: address, url: options.url.text, request: options.requestBytes, threads: options.threads,
                  connections: options.connections, durationNanos: options.durationSeconds * 1_000_000_000,
                  timeoutNanos: options.timeoutMillis * 1_000_000, rate: options.rate,
                  closeAfterEachResponse: options.closeEachRequest, tls: try LoadTLS(options))
    }
}

/// How a load run speaks TLS: the client context every connection starts from, the server
/// name it sends, and whether a new connection offers the previous connection's session.
public struct LoadTLS: Sendable {
    public var context: TLSClientContext
    /// Sent as SNI (unless an IP address) and checked against the certificate when verifying.
    public var serverName: String?
    /// Offer the session of a connection's previous TLS connection (off: every new connection
    /// makes a full handshake, which is what `--close` is meant to measure).
    public var resume: Bool

    public init(context: TLSClientContext, serverName: String?, resume: Bool = false) {
        self.context = context
        self.serverName = serverName
        self.resume = resume
    }

    /// TLS for an https URL (nil for http): `--cacert`, `--sni`, `--resume`.
    init?(_ options: LoadOptions) throws(BenchUsageError) {
        guard options.url.isTLS else { return nil }
        let context: TLSClientContext
        do {
            context = try TLSClientContext(caFile: options.caFile, verify: options.caFile != nil)
        } catch {
            throw BenchUsageError("--cacert: \(error.message)")
        }
        self.init(context: context, serverName: options.serverName ?? options.url.host, resume: options.resume)
    }
}

/// Runs load: one epoll reactor per thread, each driving its share of keep-alive connections.
///
/// Closed loop (wrk): each connection sends its next request as soon as the previous response is
/// complete; latency runs from the send to the end of the response. Constant throughput (-R, as
/// wrk2): every request has an intended send time on a fixed schedule per connection, and latency
/// runs from that intended time, so a stall shows up in every request it delayed.
///
/// At the end of the duration no new request is sent; responses still outstanding are awaited (up
/// to the timeout, at most 2 s) and counted, so the request count equals what the server answered.
public enum LoadGenerator {
    /// Runs the plan on the calling thread's behalf (it blocks until the run is over).
    public static func run(_ plan: LoadPlan) throws(SyscallError) -> LoadResult {
        _ = Process.raiseFileLimit()
        Process.ignoreSIGPIPE()
        let request = SharedBytes(plan.request)
        let perConnectionInterval: UInt64? = plan.rate.map { max(1, UInt64(plan.connections) * 1_000_000_000 / $0) }
        var workers: [LoadWorker] = []
        var first = 0
        for t in 0..<plan.threads {
            let n = plan.connections / plan.threads + (t < plan.connections % plan.threads ? 1 : 0)
            workers.append(try LoadWorker(id: t, plan: plan, request: request, firstConnection: first, count: n,
                                          interval: perConnectionInterval))
            first += n
        }
        let start = Clock.nanoseconds()
        let threads = workers.map { worker in ReactorThread.start { worker.run(start: start) } }
        for thread in threads { ReactorThread.join(thread) }
        let end = Clock.nanoseconds()

        var result = LoadResult(url: plan.url, threads: plan.threads, connections: plan.connections,
                                durationSeconds: plan.durationNanos / 1_000_000_000, rate: plan.rate)
        result.runtimeNanos = end - start
        for w in workers {
            result.requests += w.completed
            result.bytes += w.bytes
            result.errors.add(w.errors)
            result.non2xx += w.non2xx
            result.latency.merge(w.histogram)
            result.uncorrectedLatency.merge(w.histogram)
            result.rateSamples += w.samples
            result.handshakes += w.handshakes
            result.resumedHandshakes += w.resumedHandshakes
            if result.tlsFailure == nil { result.tlsFailure = w.firstTLSFailure }
        }
        result.tls = plan.tls != nil
        if plan.rate != nil {
            result.correction = .intendedSendTime
        } else {
            result.correction = .wrkExpectedInterval
            let perConnection = result.requests / UInt64(plan.connections)
            if perConnection > 0 { result.latency.correctForExpectedInterval(result.runtimeNanos / perConnection) }
        }
        return result
    }
}

/// Bytes shared read-only by all threads (the request).
final class SharedBytes: @unchecked Sendable {
    let pointer: UnsafeMutableRawBufferPointer
    init(_ bytes: [UInt8]) {
        let p = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        bytes.withUnsafeBytes { p.copyMemory(from: $0) }
        pointer = p
        count = bytes.count
    }
    let count: Int
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: pointer[0..<count]) }
    deinit { pointer.deallocate() }
}

/// One thread of the load generator: a reactor, its connections and its counters. Touched only by
/// its own thread between `run` starting and returning; read by the starter after `join`.
final class LoadWorker: @unchecked Sendable {
    let id: Int
    let loop: EventLoop
    let address: SocketAddress
    let request: SharedBytes
    let durationNanos: UInt64
    let timeoutNanos: UInt64
    /// Per-connection interval between intended send times (constant-throughput mode).
    let interval: UInt64?
    /// Close every connection after its response (a new connection per request).
    let closeAfterEachResponse: Bool
    /// TLS on every connection; nil = plain TCP.
    let tls: LoadTLS?
    var connections: [ClientConnection] = []

    // Counters, merged into the result after the run.
    var completed: UInt64 = 0
    var bytes: UInt64 = 0
    var errors = SocketErrors()
    var non2xx: UInt64 = 0
    var histogram = LatencyHistogram()
    var samples: [UInt64] = []
    /// TLS handshakes completed, and how many of them resumed a session.
    var handshakes: UInt64 = 0
    var resumedHandshakes: UInt64 = 0
    /// Why the first failed handshake failed (for the report).
    var firstTLSFailure: String?

    /// Requests completed since the last rate sample, and when that sample was taken.
    var intervalRequests: UInt64 = 0
    var intervalStart: UInt64 = 0
    /// Connections with a request on the wire.
    var outstanding = 0
    /// Set at the end of the duration: no new requests.
    var stopping = false
    /// Connections waiting for their intended send time (constant-throughput mode).
    var timers = TimerHeap()
    /// Connections waiting to reconnect after a failed connect: (time, connection index).
    var reconnects: [(at: UInt64, index: Int)] = []
    /// Connections ready to send, in the order they became ready.
    var pendingSends: [Int] = []
    /// Wakes the loop at intended send times (constant-throughput mode).
    var precise: PreciseTimer?

    static let sampleInterval: UInt64 = 100_000_000
    static let reconnectBackoff: UInt64 = 10_000_000

    init(id: Int, plan: LoadPlan, request: SharedBytes, firstConnection: Int, count: Int, interval: UInt64?) throws(SyscallError) {
        self.id = id
        loop = try EventLoop(id: id)
        address = plan.address
        self.request = request
        durationNanos = plan.durationNanos
        timeoutNanos = plan.timeoutNanos
        self.interval = interval
        closeAfterEachResponse = plan.closeAfterEachResponse
        tls = plan.tls
        samples.reserveCapacity(Int(plan.durationNanos / Self.sampleInterval) + 16)
        timers.reserve(count)
        reconnects.reserveCapacity(count)
        pendingSends.reserveCapacity(count * 2)
        if interval != nil { precise = PreciseTimer(loop: loop) }
        for i in 0..<count {
            let c = ClientConnection(worker: self, index: i)
            if let interval, let rate = plan.rate {
                // Spread the connections' schedules evenly over one interval.
                c.phaseOffset = UInt64(firstConnection + i) * 1_000_000_000 / rate % interval
            }
            connections.append(c)
        }
    }

    /// The thread body: connect, run until the deadline, drain, close.
    func run(start: UInt64) {
        let begin = Clock.nanoseconds()
        intervalStart = begin
        for c in connections {
            c.nextIntended = begin + c.phaseOffset
            c.connect()
        }
        let deadline = start + durationNanos
        var drainDeadline: UInt64 = .max
        var nextSample = begin + Self.sampleInterval
        var nextHousekeeping = begin + Self.sampleInterval
        while true {
            var now = Clock.nanoseconds()
            if !stopping && now >= deadline {
                stopping = true
                drainDeadline = now + min(timeoutNanos, 2_000_000_000)
            }
            if stopping && (outstanding == 0 || now >= drainDeadline) { break }
            var wake = min(nextSample, nextHousekeeping, stopping ? drainDeadline : deadline)
            if !stopping, let top = timers.top { wake = min(wake, top.at) }
            if !reconnects.isEmpty { wake = min(wake, now + Self.reconnectBackoff) }
            var waitMillis = wake > now ? Int32(min((wake - now + 999_999) / 1_000_000, 100)) : 0
            if !stopping, let top = timers.top, let precise, top.at > now {
                // The timerfd wakes the loop at the send time; the epoll timeout is only a backstop.
                precise.arm(at: top.at)
                if top.at == wake { waitMillis = 100 }
            }
            if pendingSends.isEmpty {
                loop.runOnce(timeoutMillis: waitMillis)
            }
            now = Clock.nanoseconds()
            if !stopping { fireTimers(now) }
            flushSends()
            if now >= nextSample {
                recordRate(now)
                nextSample = now + Self.sampleInterval
            }
            if now >= nextHousekeeping || !reconnects.isEmpty {
                housekeeping(now)
                nextHousekeeping = now + Self.sampleInterval
            }
        }
        for c in connections { c.close() }
    }

    /// Sends the requests whose intended time has come.
    @inline(__always)
    func fireTimers(_ now: UInt64) {
        while let top = timers.top, top.at <= now {
            timers.pop()
            let c = connections[top.index]
            // Entries left behind by a reconnect may be early: the schedule is the connection's own.
            if c.isIdle && c.nextIntended <= now { c.send() }
        }
    }

    /// wrk's `record_rate`: this thread's requests per second since the last sample.
    func recordRate(_ now: UInt64) {
        if intervalRequests > 0 {
            let elapsedMillis = (now - intervalStart) / 1_000_000
            if elapsedMillis > 0 {
                samples.append(UInt64(Double(intervalRequests) / Double(elapsedMillis) * 1000))
            }
            intervalRequests = 0
            intervalStart = now
        }
    }

    /// Times out requests outstanding too long and reconnects connections whose backoff is over.
    func housekeeping(_ now: UInt64) {
        for c in connections where c.awaiting && now > c.writeStartedAt && now - c.writeStartedAt > timeoutNanos {
            errors.timeout += 1
            c.reconnect(backoff: false)
        }
        if tls != nil {
            // A handshake that stalls longer than a request may counts as a failed connect.
            for c in connections where c.handshaking && now > c.writeStartedAt && now - c.writeStartedAt > timeoutNanos {
                errors.connect += 1
                c.reconnect(backoff: true)
            }
        }
        if !reconnects.isEmpty {
            var i = 0
            while i < reconnects.count {
                if reconnects[i].at <= now {
                    let index = reconnects[i].index
                    reconnects.swapAt(i, reconnects.count - 1)
                    reconnects.removeLast()
                    if !stopping { connections[index].connect() }
                } else {
                    i += 1
                }
            }
        }
    }

    /// A connection is ready for its next request: send it after this loop turn's events, or at
    /// its intended time. Sending after the turn (as wrk does, through EPOLLOUT) batches the
    /// writes and keeps the handling of other responses out of the measured latency.
    @inline(__always)
    func ready(_ c: ClientConnection) {
        guard !stopping else { return }
        if interval != nil {
            let now = Clock.nanoseconds()
            if c.nextIntended > now {
                timers.push(at: c.nextIntended, index: c.index)
                return
            }
        }
        pendingSends.append(c.index)
    }

    /// Counts a failed TLS handshake as a connect error, keeping the first reason for the report.
    func tlsFailed(_ reason: String) {
        errors.connect += 1
        if firstTLSFailure == nil { firstTLSFailure = reason }
    }

    /// Sends the requests of the connections that became ready during the turn.
    @inline(__always)
    func flushSends() {
        var i = 0
        while i < pendingSends.count {
            let c = connections[pendingSends[i]]
            if c.isIdle { c.send() }
            i += 1
        }
        pendingSends.removeAll(keepingCapacity: true)
    }
}

/// A binary min-heap of (time, connection index), storage reserved up front.
struct TimerHeap {
    private var items: [(at: UInt64, index: Int)] = []

    mutating func reserve(_ n: Int) { items.reserveCapacity(n + 1) }

    var top: (at: UInt64, index: Int)? { items.first }

    mutating func push(at: UInt64, index: Int) {
        items.append((at, index))
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i].at < items[parent].at else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() {
        guard !items.isEmpty else { return }
        items.swapAt(0, items.count - 1)
        items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var smallest = i
            if l < items.count && items[l].at < items[smallest].at { smallest = l }
            if r < items.count && items[r].at < items[smallest].at { smallest = r }
            guard smallest != i else { break }
            items.swapAt(i, smallest)
            i = smallest
        }
    }
}

/// One keep-alive client connection: sends the request, parses the response head, skips the body.
final class ClientConnection: EventHandler {
    /// Which part of the response the next bytes belong to.
    enum Reading {
        /// The head (or no response expected yet).
        case head
        /// A body of known length; `skip` bytes remain.
        case length
        /// A chunked body; `skip` bytes of chunk data remain before the next framing bytes.
        case chunked
        /// A body that ends when the server closes.
        case untilClose
    }

    unowned let worker: LoadWorker
    let index: Int
    var fd: Int32 = -1
    var connecting = false
    /// A request is on the wire (sent or being sent) and its response not complete.
    var awaiting = false
    /// Bytes of the request written so far (a request left half-written waits for EPOLLOUT).
    var written = 0
    /// Latency origin: the send time (closed loop) or the intended send time (constant throughput).
    var latencyOrigin: UInt64 = 0
    /// When the current request's first byte was written (for the timeout).
    var writeStartedAt: UInt64 = 0
    /// Constant-throughput schedule: the next request's intended send time, and this connection's phase.
    var nextIntended: UInt64 = 0
    var phaseOffset: UInt64 = 0
    /// TLS over the socket (https targets), and whether its handshake is still under way (the
    /// handshake's start is kept in `writeStartedAt`, for the timeout).
    var tls: TLSConnection?
    var handshaking = false
    /// The session of this connection's previous TLS connection (kept only with `resume`).
    var savedSession: TLSSession?

    let buffer = ByteBuffer(capacity: 16384)
    var parser = HeadParser(limits: HeadLimits(maxHeadBytes: 16384, requireHost: false))
    var head = ResponseHead()
    var decoder = ChunkedDecoder()
    var reading = Reading.head
    var skip: UInt64 = 0

    /// Body remainders at least this large, with nothing buffered, are discarded in the kernel
    /// (`recv` with MSG_TRUNC) instead of being copied into the buffer.
    static let discardThreshold: UInt64 = 8192

    init(worker: LoadWorker, index: Int) {
        self.worker = worker
        self.index = index
        head.headers.reserveCapacity(16)
    }

    /// Connected with no request on the wire.
    var isIdle: Bool { fd >= 0 && !connecting && !awaiting && !handshaking }

    func connect() {
        do {
            let (fd, connected) = try Socket.connect(worker.address)
            self.fd = fd
            do {
                try worker.loop.register(fd, handler: self)
            } catch {
                Socket.close(fd)
                self.fd = -1
                throw error
            }
            connecting = !connected
            if connected { established() }
        } catch {
            worker.errors.connect += 1
            worker.reconnects.append((Clock.nanoseconds() + LoadWorker.reconnectBackoff, index))
        }
    }

    /// The TCP connection is up: the TLS handshake starts, or the first request may go.
    @inline(__always)
    func established() {
        if let settings = worker.tls {
            startTLS(settings)
        } else {
            worker.ready(self)
        }
    }

    /// Starts the client side of the TLS handshake on the new socket.
    func startTLS(_ settings: LoadTLS) {
        guard let connection = clientTLS(settings.context, fd: fd, name: settings.serverName,
                                         session: settings.resume ? savedSession : nil) else {
            worker.tlsFailed("OpenSSL could not make a connection")
            reconnect(backoff: true)
            return
        }
        tls = connection
        handshaking = true
        writeStartedAt = Clock.nanoseconds()
        advanceHandshake(connection)
    }

    /// One step of the handshake; when it is done the first request may go.
    func advanceHandshake(_ connection: TLSConnection) {
        switch connection.handshake() {
        case .done:
            handshaking = false
            worker.handshakes &+= 1
            if connection.resumed { worker.resumedHandshakes &+= 1 }
            worker.ready(self)
        case .wantRead, .wantWrite:
            return  // edge-triggered for both directions: the next event continues it
        case .failed(let reason):
            worker.tlsFailed(connection.verifyFailure.map { "certificate verification failed: \($0)" } ?? reason)
            reconnect(backoff: true)
        }
    }

    func close() {
        if let connection = tls {
            if !handshaking && worker.tls?.resume == true, let session = connection.resumableSession() { savedSession = session }
            tls = nil
            handshaking = false
        }
        if fd >= 0 {
            worker.loop.unregister(fd)
            Socket.close(fd)
            fd = -1
        }
        if awaiting {
            awaiting = false
            worker.outstanding -= 1
        }
        connecting = false
        buffer.clear()
        parser.reset()
        reading = .head
        skip = 0
    }

    /// Closes and opens a new connection, now or after the backoff. A request lost on the way is
    /// not retried; its slot in the constant-throughput schedule is skipped.
    func reconnect(backoff: Bool) {
        close()
        guard !worker.stopping else { return }
        if backoff {
            worker.reconnects.append((Clock.nanoseconds() + LoadWorker.reconnectBackoff, index))
        } else {
            connect()
        }
    }

    func handleEvent(fd: Int32, events: EpollEvents) {
        if connecting {
            let error = Socket.pendingError(fd)
            if error != 0 {
                worker.errors.connect += 1
                reconnect(backoff: true)
                return
            }
            guard events.contains(.writable) || events.contains(.readable) else { return }
            connecting = false
            established()
            return
        }
        if handshaking, let tls {
            advanceHandshake(tls)
            return
        }
        if awaiting && written < worker.request.count && events.contains(.writable) {
            guard continueWrite() else { return }
        }
        if !events.isDisjoint(with: [.readable, .readHangup, .hangup, .error]) {
            readAvailable()
        }
    }

    /// Starts the next request.
    @inline(__always)
    func send() {
        let now = Clock.nanoseconds()
        if worker.interval != nil {
            latencyOrigin = nextIntended
            nextIntended += worker.interval!
        } else {
            latencyOrigin = now
        }
        writeStartedAt = now
        written = 0
        awaiting = true
        worker.outstanding += 1
        _ = continueWrite()
    }

    /// Writes what is left of the request; false when the connection failed and was replaced.
    @inline(__always)
    func continueWrite() -> Bool {
        let bytes = worker.request.bytes
        if let tls { return continueTLSWrite(tls, bytes) }
        do {
            let result = try Socket.write(fd, from: UnsafeRawBufferPointer(rebasing: bytes[written...]))
            if case .done(let n) = result { written += n }
            return true
        } catch {
            worker.errors.write += 1
            reconnect(backoff: false)
            return false
        }
    }

    /// `continueWrite` over TLS: encrypts what is left of the request.
    func continueTLSWrite(_ connection: TLSConnection, _ bytes: UnsafeRawBufferPointer) -> Bool {
        switch connection.write(UnsafeRawBufferPointer(rebasing: bytes[written...])) {
        case .done(let n):
            written += n
            return true
        case .wantRead, .wantWrite:
            return true
        case .closed, .failed:
            worker.errors.write += 1
            reconnect(backoff: false)
            return false
        }
    }

    /// `readAvailable` over TLS: decrypts until OpenSSL needs the socket again (a short read
    /// says nothing about the socket here, as OpenSSL reads ahead).
    func readTLS(_ connection: TLSConnection) {
        while fd >= 0 {
            if buffer.writableCount < 4096 { buffer.compact() }
            if buffer.writableCount == 0 {
                worker.errors.read += 1
                reconnect(backoff: false)
                return
            }
            switch connection.read(into: buffer) {
            case .done(let n):
                worker.bytes &+= UInt64(n)
                guard process() else { return }
            case .wantRead, .wantWrite:
                return
            case .closed:
                endOfStream()
                return
            case .failed:
                worker.errors.read += 1
                reconnect(backoff: false)
                return
            }
        }
    }

    /// Runs one read-side call; a failure counts as a read error and reconnects (nil).
    private func readStep(_ call: () throws(SyscallError) -> IOResult<Int>) -> IOResult<Int>? {
        do {
            return try call()
        } catch {
            worker.errors.read += 1
            reconnect(backoff: false)
            return nil
        }
    }

    /// Reads until the socket is empty, parsing as bytes arrive.
    func readAvailable() {
        if let tls {
            readTLS(tls)
            return
        }
        while fd >= 0 {
            if skip >= Self.discardThreshold && buffer.readableCount == 0 && (reading == .length || reading == .chunked) {
                guard let result = readStep({ () throws(SyscallError) in try discard(min(skip, 1 << 22)) }) else { return }
                switch result {
                case .wouldBlock: return
                case .done(0): endOfStream(); return
                case .done(let n):
                    worker.bytes &+= UInt64(n)
                    skip -= UInt64(n)
                    guard process() else { return }
                }
                continue
            }
            if buffer.writableCount < 4096 { buffer.compact() }
            if buffer.writableCount == 0 {
                // A head larger than the buffer: the parser would have failed first; be safe.
                worker.errors.read += 1
                reconnect(backoff: false)
                return
            }
            let room = buffer.writableCount
            guard let result = readStep({ () throws(SyscallError) in try buffer.read(from: fd) }) else { return }
            switch result {
            case .wouldBlock: return
            case .done(0): endOfStream(); return
            case .done(let n):
                worker.bytes &+= UInt64(n)
                guard process() else { return }
                // A short read emptied the socket: bytes arriving later raise a new edge, so the
                // read that would only say EAGAIN is skipped (one syscall less per response).
                if n < room { return }
            }
        }
    }

    /// `recv(MSG_TRUNC)`: TCP drops up to `count` bytes without copying them to user space.
    @inline(__always)
    func discard(_ count: UInt64) throws(SyscallError) -> IOResult<Int> {
        while true {
            let n = Glibc.recv(fd, nil, Int(count), Int32(MSG_TRUNC) | Int32(MSG_DONTWAIT))
            if n >= 0 { return .done(n) }
            let err = errno
            if err == EINTR { continue }
            if err == EAGAIN || err == EWOULDBLOCK { return .wouldBlock }
            throw SyscallError(call: "recv(MSG_TRUNC)", errno: err)
        }
    }

    func endOfStream() {
        if awaiting && reading == .untilClose {
            _ = complete()  // the body ended with the stream; complete() reconnects (no keep-alive)
        } else if awaiting {
            worker.errors.read += 1
            reconnect(backoff: false)
        } else {
            // The server closed an idle keep-alive connection.
            reconnect(backoff: false)
        }
    }

    /// Consumes buffered bytes; false when the connection was closed.
    @inline(__always)
    func process() -> Bool {
        while true {
            switch reading {
            case .head:
                if buffer.readableCount == 0 { return true }
                guard awaiting else {
                    worker.errors.read += 1  // bytes nobody asked for
                    reconnect(backoff: false)
                    return false
                }
                switch parser.parseResponse(buffer.readable, requestMethod: .get, into: &head) {
                case .incomplete:
                    return true
                case .error:
                    worker.errors.read += 1
                    reconnect(backoff: false)
                    return false
                case .complete(let length):
                    buffer.consume(length)
                    if head.status < 200 && head.status != 101 {
                        parser.reset()  // an interim response; the final one follows
                        continue
                    }
                    switch head.framing {
                    case .none, .contentLength(0):
                        guard complete() else { return false }
                    case .contentLength(let n):
                        skip = n
                        reading = .length
                    case .chunked:
                        decoder.reset()
                        skip = 0
                        reading = .chunked
                    case .untilClose:
                        reading = .untilClose
                    }
                }
            case .length:
                let take = min(UInt64(buffer.readableCount), skip)
                buffer.consume(Int(take))
                skip -= take
                if skip > 0 { return true }
                guard complete() else { return false }
            case .chunked:
                if skip > 0 {
                    let take = min(UInt64(buffer.readableCount), skip)
                    buffer.consume(Int(take))
                    skip -= take
                    if skip > 0 { return true }
                }
                if buffer.readableCount == 0 { return true }
                let (consumed, event) = decoder.decode(buffer.readable)
                buffer.consume(consumed)
                switch event {
                case .needMore:
                    return true
                case .chunkData(let n):
                    skip = n
                case .end:
                    guard complete() else { return false }
                case .error:
                    worker.errors.read += 1
                    reconnect(backoff: false)
                    return false
                }
            case .untilClose:
                buffer.consume(buffer.readableCount)
                return true
            }
        }
    }

    /// Records a complete response and starts the next request; false when the connection closed.
    @inline(__always)
    func complete() -> Bool {
        let now = Clock.nanoseconds()
        let latency = now &- latencyOrigin
        let w = worker
        if w.interval == nil && latency >= w.timeoutNanos {
            w.errors.timeout += 1  // as wrk: too late to be a latency sample
        } else {
            w.histogram.record(latency)
        }
        w.completed &+= 1
        w.intervalRequests &+= 1
        if head.status > 399 { w.non2xx &+= 1 }
        awaiting = false
        w.outstanding -= 1
        parser.reset()
        reading = .head
        if !head.keepAlive || w.closeAfterEachResponse {
            reconnect(backoff: false)
            return false
        }
        w.ready(self)
        return fd >= 0
    }
}

/// A client-side TLS connection of the load generator on `fd`: `name` is sent as SNI unless it
/// is an IP address, and is what the certificate must name when the context verifies.
/// `session` offers an earlier session for resumption. Nil when OpenSSL cannot make one.
func clientTLS(_ context: TLSClientContext, fd: Int32, name: String?, session: TLSSession? = nil) -> TLSConnection? {
    let given = name.flatMap { $0.isEmpty ? nil : $0 }
    let address = given.map(TLSConnection.isAddressLiteral) ?? false
    return TLSConnection(client: context, fd: fd, serverName: address ? nil : given, address: address ? given : nil,
                         session: session, peer: "server")
}
