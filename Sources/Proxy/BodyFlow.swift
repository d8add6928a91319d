import Comparator
import HTTP1
import Syscalls
import TLS

/// Readiness of one descriptor as last reported by edge-triggered epoll. A flag is set by
/// an event and cleared when a call returns `EAGAIN` (or a read comes back short), so no
/// call is made that is known to block.
struct Readiness {
    var readable = false
    var writable = true
    /// The peer closed its sending side (EPOLLRDHUP/EPOLLHUP seen).
    var hungUp = false

    /// After a read of `n` bytes into `space`: a short read means the socket is drained
    /// (a later arrival raises a new edge), so the next read would only return EAGAIN —
    /// unless the peer hung up, whose end-of-stream raises no further edge and must be read.
    @inline(__always)
    mutating func noteRead(_ n: Int, of space: Int) {
        if n < space && !hungUp { readable = false }
    }
}

/// Why a flow stopped making progress.
enum FlowStatus: Equatable {
    /// Everything was moved (for `untilClose`: the source reached end of stream).
    case finished
    /// Waiting for the source to become readable.
    case needsSource
    /// Waiting for a destination to become writable.
    case needsDestination
    /// The flow cannot continue.
    case failed(FlowFailure)
}

/// What went wrong in a flow, and on which side.
enum FlowFailure: Equatable {
    /// The source closed before the framing said the body ended.
    case sourceClosedEarly
    /// The source's socket failed (reset, …).
    case sourceError
    /// The destination's socket failed (client or backend gone).
    case destinationError
    /// The chunked framing was invalid.
    case badFraming(HTTPParseError)
    /// No pipe could be made (descriptor exhaustion).
    case noPipe
}

/// The drained side of a comparison: it pauses when it has caught up with the served
/// response, and is asked to catch up whenever the served response moves.
protocol TapWaiter: AnyObject {
    func catchUp()
}

/// Receives body bytes as flows move them (the CONCURRENT comparator). Side 0 is the
/// previous version, side 1 the latest.
///
/// The served response is never slowed, and it is spliced like any other: its flow duplicates
/// each spliced stretch with `tee(2)` into the tap's *backlog* pipe (`absorb`) before splicing
/// it to the client, so the served body is copied into user space once, by the comparison,
/// instead of twice (read and write). The drained response is read (into the worker's scratch
/// buffer, up to 256 KiB at a time) only as far as the served one has come; each piece is
/// compared directly (`memcmp`) against as many served bytes read from the backlog, so the
/// drained response may lag behind by up to a pipe's capacity and the two are still compared
/// in lock-step, with no copy into the comparator's ring. When it lags further (the backlog
/// is full), the backlog is fed to the comparator at once: the exact offset is given up and
/// digests decide (see `StreamComparator`).
///
/// Served bytes that are read through a buffer instead (those that arrived with the head)
/// are fed in pieces, and after each piece the drained response is given the chance to catch
/// up (it reads what its backend already sent, up to the comparator's room).
final class BodyTap {
    /// Lock-step window: the most either side may run ahead of the other in the comparator.
    static let window = 32768
    var comparator = StreamComparator(window: BodyTap.window)
    private let pools: ResourcePools
    private var finished = [false, false]
    /// `comparator.end` was called for the side.
    private var ended = [false, false]
    private weak var drainer: TapWaiter?
    private var drainSide = -1
    /// The side whose spliced bytes are duplicated into the backlog (the served one); -1 until
    /// it first splices.
    private var teeSide = -1
    /// Served bytes duplicated with `tee` and not yet fed to the comparator, in order.
    private var backlog: Pipe?

    /// `pools` lends the backlog pipe and the buffers its bytes are read into.
    init(pools: ResourcePools) {
        self.pools = pools
    }

    /// Registers the drained side.
    func drained(side: Int, by waiter: TapWaiter) {
        drainer = waiter
        drainSide = side
    }

    /// Body bytes of `side` read through a buffer.
    func feed(side: Int, _ bytes: UnsafeRawBufferPointer) {
        if side == drainSide {
            feedDrained(bytes)
            return
        }
        // The served side's buffered bytes come after anything it spliced before them.
        flushBacklog()
        guard drainer != nil else {
            comparator.feed(side: side, bytes)
            return
        }
        let piece = Self.window / 2
        var offset = 0
        while offset < bytes.count {
            let n = min(piece, bytes.count - offset)
            comparator.feed(side: side, UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + n]))
            offset += n
            drainer?.catchUp()
        }
    }

    /// The served flow spliced `pipe.count` body bytes into `pipe`: duplicates them into the
    /// backlog (without consuming them) and lets the drained side catch up. Returns how many
    /// bytes at the front of `pipe` were accounted for (at least one): the flow sends exactly
    /// those on, then calls again for the rest. Never waits: a full backlog is fed to the
    /// comparator there and then.
    func absorb(side: Int, from pipe: Pipe) -> Int {
        teeSide = side
        let count = pipe.count
        guard comparator.needsBytes else {
            comparator.feedLength(side: side, count: count)
            return count
        }
        if backlog == nil {
            do {
                backlog = try pools.takePipe()
            } catch {
                return giveUp("no pipe for the comparison", side: side, count: count)
            }
        }
        for attempt in 0..<3 {
            guard let backlog else { break }
            let result: IOResult<Int>
            do {
                result = try Splice.duplicate(from: pipe.readFD, to: backlog.writeFD, count: count)
            } catch {
                return giveUp("tee failed: \(error)", side: side, count: count)
            }
            if case .done(let n) = result, n > 0 {
                backlog.count += n
                if finished[1 - side] || !comparator.lockStep {
                    // Nothing left to pace against: digest (or count) right away.
                    flushBacklog()
                } else {
                    drainer?.catchUp()
                }
                return n
            }
            // The backlog is full: the drained response is a whole pipe behind. It may
            // catch up with what already arrived; if not, the comparator takes the backlog.
            if attempt == 0 { drainer?.catchUp() } else { flushBacklog() }
            if !comparator.needsBytes {
                comparator.feedLength(side: side, count: count)
                return count
            }
        }
        return giveUp("the comparison's pipe stayed full", side: side, count: count)
    }

    /// Bytes `side` may still feed without breaking lock-step. The drained side may take as
    /// many as the served side has given (in the backlog, or ahead in the comparator) and no
    /// more, so its bytes are compared as they are read, never kept; it is asked to catch up
    /// whenever the served side moves, and runs free once the served body is compared to its end.
    func room(side: Int) -> Int {
        guard side == drainSide else { return finished[1 - side] ? .max : comparator.room(forSide: side) }
        let queued = backlog?.count ?? 0
        if finished[1 - side] && queued == 0 { return .max }
        guard comparator.needsBytes, comparator.lockStep else { return .max }
        let (old, new) = comparator.lengths
        let (mine, served) = side == 0 ? (old, new) : (new, old)
        return queued + Int(served > mine ? min(served - mine, UInt64(comparator.window)) : 0)
    }

    /// A side will feed no more (its response ended or failed). The served side's end waits
    /// until the drained side has been compared against its backlog.
    func finish(side: Int) {
        guard !finished[side] else { return }
        finished[side] = true
        if side == teeSide {
            if finished[1 - side] || drainer == nil { flushBacklog() }
        } else {
            ended[side] = true
            comparator.end(side: side)
            flushBacklog()
        }
        endServedIfDue()
        if side != drainSide { drainer?.catchUp() }
        if finished[0] && finished[1] { dropBacklog() }
    }

    // MARK: The backlog

    /// Compares drained bytes against the served bytes waiting in the backlog, directly; what
    /// the backlog does not cover is fed on its own (the drained side then leads).
    private func feedDrained(_ bytes: UnsafeRawBufferPointer) {
        var rest = bytes
        let served = 1 - drainSide
        // Served bytes already in the comparator (those read through a buffer) come first.
        let (old, new) = comparator.lengths
        let (mine, theirs) = drainSide == 0 ? (old, new) : (new, old)
        if theirs > mine && comparator.needsBytes {
            let n = Int(min(theirs - mine, UInt64(rest.count)))
            comparator.feed(side: drainSide, UnsafeRawBufferPointer(rebasing: rest[0..<n]))
            rest = UnsafeRawBufferPointer(rebasing: rest[n...])
        }
        while !rest.isEmpty, let backlog, backlog.count > 0, comparator.needsBytes {
            let scratch = pools.backlogScratch
            let n = min(rest.count, backlog.count, scratch.capacity)
            if readBacklog(n, into: scratch) {
                comparator.feedPair(side: served, scratch.readable, other: UnsafeRawBufferPointer(rebasing: rest[0..<n]))
                rest = UnsafeRawBufferPointer(rebasing: rest[n...])
            } else {
                comparator.giveUp("the comparison's pipe could not be read")
                comparator.feedLength(side: served, count: scratch.readableCount)
            }
            scratch.clear()
        }
        if !comparator.needsBytes, let backlog, backlog.count > 0 {
            comparator.feedLength(side: served, count: backlog.count)
            dropBacklog()
        }
        endServedIfDue()
        comparator.feed(side: drainSide, rest)
    }

    /// Feeds everything in the backlog to the comparator as the served side's bytes.
    private func flushBacklog() {
        guard let backlog, backlog.count > 0 else { return }
        while backlog.count > 0 {
            guard comparator.needsBytes else {
                comparator.feedLength(side: teeSide, count: backlog.count)
                dropBacklog()
                return
            }
            let scratch = pools.backlogScratch
            if readBacklog(min(backlog.count, scratch.capacity), into: scratch) {
                comparator.feed(side: teeSide, scratch.readable)
            } else {
                comparator.giveUp("the comparison's pipe could not be read")
                comparator.feedLength(side: teeSide, count: scratch.readableCount)
            }
            scratch.clear()
        }
    }

    /// Reads exactly `count` bytes (which the backlog holds) into the empty `buffer`.
    private func readBacklog(_ count: Int, into buffer: ByteBuffer) -> Bool {
        guard let backlog else { return false }
        while buffer.readableCount < count {
            do {
                guard case .done(let n) = try buffer.read(from: backlog.readFD, limit: count - buffer.readableCount), n > 0 else {
                    return false
                }
                backlog.count -= n
            } catch {
                return false
            }
        }
        return true
    }

    /// The served side finished and its backlog is compared: the comparator may end it.
    private func endServedIfDue() {
        guard teeSide >= 0, finished[teeSide], !ended[teeSide], (backlog?.count ?? 0) == 0 else { return }
        ended[teeSide] = true
        comparator.end(side: teeSide)
    }

    /// Stops comparing the bodies; the served response goes on unchanged.
    private func giveUp(_ reason: String, side: Int, count: Int) -> Int {
        comparator.giveUp(reason)
        if let backlog, backlog.count > 0 { comparator.feedLength(side: teeSide, count: backlog.count) }
        dropBacklog()
        comparator.feedLength(side: side, count: count)
        return count
    }

    /// Returns the backlog pipe (closed by the pool if it still holds bytes).
    private func dropBacklog() {
        if let backlog {
            pools.giveBack(backlog)
            self.backlog = nil
        }
    }
}

/// Moves one message's head and body from a source descriptor to a destination: first
/// `prefix` (the rewritten head), then the body bytes already read into the source's
/// buffer, then the rest with `splice(2)` through a pooled pipe. Chunked framing is read
/// through the buffer and never forwarded as received: it is written anew in normal form
/// (`ChunkedFraming`: minimal hex sizes, no extensions, no trailer fields), or left out when
/// the flow *de-chunks* for an HTTP/1.0 client. Chunk data is spliced like any body.
/// Nothing is buffered beyond one buffer.
///
/// Variants used by CONCURRENT mode:
/// - a *mirror*: the same bytes also go to a second destination; spliced stretches are
///   duplicated with `tee(2)` into a second pipe, so both backends get them byte for byte;
/// - a *tap*: body bytes are also fed to a comparator. The served response is spliced as
///   usual, each stretch duplicated with `tee(2)` into the comparator's pipe first
///   (`BodyTap.absorb`); the drained response (a tap that pauses) is read through the buffer;
/// - *discard*: a negative destination drops the bytes (draining the response not served).
///
/// A client on a TLS connection (without kTLS) is the flow's source (`tlsSource`: a request
/// body, a tunnel's upstream) or destination (`tlsDestination`: a response, a tunnel's
/// downstream). Its bytes pass through `SSL_read`/`SSL_write`, so nothing is spliced: body
/// bytes are read into the buffer (decrypted, or from the backend's socket on their way to be
/// encrypted) and leave from it, one userspace copy instead of a splice.
struct BodyFlow {
    enum Phase {
        /// `remaining` bytes of a Content-Length body (or of one chunk's data) still to read.
        case counted
        /// Reading chunk framing through the buffer.
        case chunkFraming
        /// Forwarding until the source closes.
        case untilClose
        /// Nothing more to read from the source; finished once pending bytes are written.
        case ending
    }

    private(set) var phase: Phase
    private var chunked: Bool
    /// Chunk framing is dropped instead of written in normal form (the data alone is sent).
    private var dechunk = false
    /// Bytes still to read for the current counted stretch.
    private(set) var remaining: UInt64 = 0
    private var decoder = ChunkedDecoder()
    /// Bytes at the start of the source buffer cleared for forwarding.
    private var forwardable = 0
    /// Bytes written before the body (head, interim responses).
    var prefix: [UInt8] = []
    private var prefixOffset = 0
    private var pipe: Pipe?
    /// Body bytes delivered to the destination so far (through buffer and pipe).
    private(set) var bodyBytesMoved: UInt64 = 0
    /// Whether any body byte (framing included) has been taken from the source or its buffer.
    private(set) var bodyStarted = false
    /// Set whenever a call moved bytes; the session uses it to push idle deadlines.
    var progressed = false
    /// The client's TLS connection when the client is the source, or the destination; the
    /// descriptor passed to `pump` for that side is then only the socket under it. Not counted
    /// references (flows are copied often on the plain path): the `ClientConnection` owns the
    /// TLS connection and outlives every flow of the sessions that serve it.
    unowned(unsafe) var tlsSource: TLSConnection? { didSet { throughTLS = tlsSource != nil || tlsDestination != nil } }
    unowned(unsafe) var tlsDestination: TLSConnection? { didSet { throughTLS = tlsSource != nil || tlsDestination != nil } }
    /// Either is set. The plain path tests this flag only: loading an `unowned(unsafe)`
    /// reference costs a (null) retain, and the plain path is kept to the instruction.
    private var throughTLS = false

    // CONCURRENT variants.
    private var tap: BodyTap?
    private var tapSide = 0
    /// The drained response: reads pause while the comparator has no room for them.
    private var pausesForTap = false
    /// Bytes at the front of `pipe` already given to the tap (duplicated into its backlog).
    private var tapped = 0
    private var mirrorFD: Int32 = -1
    /// False once the mirror destination failed (the flow goes on to the primary alone).
    private(set) var mirrorAlive = false
    private var mirrorPrefixOffset = 0
    private var primaryForwarded = 0
    private var mirrorForwarded = 0
    private var mirrorPipe: Pipe?
    /// Bytes at the front of `pipe` already duplicated into `mirrorPipe`.
    private var teed = 0

    /// A flow for a body with the given framing; `dechunk` sends a chunked body's data without
    /// its framing.
    init(framing: BodyFraming, dechunk: Bool = false) {
        self.dechunk = dechunk
        switch framing {
        case .none:
            phase = .ending; chunked = false
        case .contentLength(let n):
            phase = n == 0 ? .ending : .counted; chunked = false; remaining = n
        case .chunked:
            phase = .chunkFraming; chunked = true
        case .untilClose:
            phase = .untilClose; chunked = false
        }
    }

    /// Sends everything to `fd` as well (request fan-out in CONCURRENT mode).
    mutating func mirror(to fd: Int32) {
        mirrorFD = fd
        mirrorAlive = true
    }

    /// Feeds the body's bytes to `tap` as `side`. With a `waiter` (the drained response) the
    /// body is read through the buffer and reads pause while the comparator has no room;
    /// without one (the served response) the body is spliced and duplicated into the tap.
    mutating func tap(_ tap: BodyTap, side: Int, pausing waiter: TapWaiter? = nil) {
        self.tap = tap
        tapSide = side
        if let waiter {
            tap.drained(side: side, by: waiter)
            pausesForTap = true
        }
    }

    /// True when the flow has read everything it will read from the source.
    var sourceDone: Bool { if case .ending = phase { return true }; return false }

    /// Returns the pipes to the pool (closed if they still hold bytes).
    mutating func release(to pools: ResourcePools) {
        if let pipe {
            pools.giveBack(pipe)
            self.pipe = nil
        }
        if let mirrorPipe {
            pools.giveBack(mirrorPipe)
            self.mirrorPipe = nil
        }
    }

    /// Moves as much as readiness allows. Pure loop over non-blocking calls: it returns as
    /// soon as a call would block, the body ends, or something fails.
    mutating func pump(source: Int32, sourceReady: inout Readiness, buffer: ByteBuffer?,
                       destination: Int32, destinationReady: inout Readiness,
                       pools: ResourcePools) -> FlowStatus {
        var none = Readiness()
        return pump(source: source, sourceReady: &sourceReady, buffer: buffer, destination: destination,
                    destinationReady: &destinationReady, mirrorReady: &none, pools: pools)
    }

    /// `pump` with the mirror destination's readiness.
    mutating func pump(source: Int32, sourceReady: inout Readiness, buffer: ByteBuffer?,
                       destination: Int32, destinationReady: inout Readiness,
                       mirrorReady: inout Readiness, pools: ResourcePools) -> FlowStatus {
        while true {
            let flushed = mirrorAlive
                ? flushMirrored(buffer: buffer, destination: destination, ready: &destinationReady, mirrorReady: &mirrorReady)
                : flush(buffer: buffer, destination: destination, ready: &destinationReady)
            if let flushed { return flushed }
            if let produced = produce(source: source, sourceReady: &sourceReady, buffer: buffer, pools: pools) {
                if produced == .finished { release(to: pools) }
                return produced
            }
        }
    }

    // MARK: Output

    /// Static, with the TLS connection as an argument: the write closures then capture no copy
    /// of the flow.
    @inline(__always)
    private static func write(_ fd: Int32, _ tls: TLSConnection?, _ bytes: ArraySlice<UInt8>) throws(SyscallError) -> IOResult<Int> {
        if fd < 0 { return .done(bytes.count) }
        if let tls {
            return try Self.sent(bytes.withUnsafeBytes { tls.write($0) })
        }
        return try Socket.write(fd, bytes: bytes)
    }

    /// Writes up to `limit` of the buffer's bytes to the destination, consuming what was written.
    @inline(__always)
    private static func write(_ buffer: ByteBuffer, to fd: Int32, _ tls: TLSConnection?, limit: Int) throws(SyscallError) -> IOResult<Int> {
        guard let tls else { return try buffer.write(to: fd, limit: limit) }
        let result = try Self.sent(tls.write(UnsafeRawBufferPointer(rebasing: buffer.readable.prefix(limit))))
        if case .done(let n) = result { buffer.consume(n) }
        return result
    }

    /// An `SSL_write` outcome as a socket write's: waiting for either readiness is `.wouldBlock`
    /// (the session marks a TLS client both readable and writable on any event).
    private static func sent(_ transfer: TLSConnection.Transfer) throws(SyscallError) -> IOResult<Int> {
        switch transfer {
        case .done(let n): return .done(n)
        case .wantRead, .wantWrite: return .wouldBlock
        case .closed, .failed: throw SyscallError(call: "SSL_write", errno: 32)  // EPIPE: the client is gone
        }
    }

    private enum WriteOutcome { case moved(Int), blocked, failed }

    /// One non-blocking write-side call, with readiness bookkeeping: `EAGAIN` clears
    /// `ready.writable`; nothing is attempted while it is clear.
    @inline(__always)
    private static func attempt(_ ready: inout Readiness, _ call: () throws(SyscallError) -> IOResult<Int>) -> WriteOutcome {
        guard ready.writable else { return .blocked }
        do {
            switch try call() {
            case .done(let n): return .moved(n)
            case .wouldBlock: ready.writable = false; return .blocked
            }
        } catch {
            return .failed
        }
    }

    /// Writes everything pending to the one destination. Nil when all was written.
    private mutating func flush(buffer: ByteBuffer?, destination: Int32, ready: inout Readiness) -> FlowStatus? {
        let tls = throughTLS ? tlsDestination : nil
        while true {
            if prefixOffset < prefix.count {
                // Buffered body bytes (and their framing) go out behind the head in the same write.
                if let buffer { stageBuffered(buffer) }
                if destination < 0 { ready.writable = true }
                switch Self.attempt(&ready, { () throws(SyscallError) in try Self.write(destination, tls, prefix[prefixOffset...]) }) {
                case .moved(let n):
                    prefixOffset += n
                    progressed = true
                    if prefixOffset == prefix.count {
                        prefix.removeAll(keepingCapacity: true)
                        prefixOffset = 0
                    }
                case .blocked: return .needsDestination
                case .failed: return .failed(.destinationError)
                }
                continue
            }
            if forwardable > 0, let buffer {
                if destination < 0 {
                    buffer.consume(forwardable)
                    bodyBytesMoved &+= UInt64(forwardable)
                    forwardable = 0
                    progressed = true
                    continue
                }
                switch Self.attempt(&ready, { () throws(SyscallError) in try Self.write(buffer, to: destination, tls, limit: forwardable) }) {
                case .moved(let n):
                    forwardable -= n
                    bodyBytesMoved &+= UInt64(n)
                    progressed = true
                case .blocked: return .needsDestination
                case .failed: return .failed(.destinationError)
                }
                continue
            }
            if let pipe, pipe.count > 0 {
                // A tapped flow sends on only what the tap has seen (tee does not consume, so
                // the next stretch is duplicated once these bytes have left the pipe).
                var count = pipe.count
                if let tap {
                    if tapped == 0 { tapped = tap.absorb(side: tapSide, from: pipe) }
                    count = tapped
                }
                switch Self.attempt(&ready, { () throws(SyscallError) in try Splice.move(from: pipe.readFD, to: destination, count: count) }) {
                case .moved(let n):
                    pipe.count -= n
                    if tap != nil { tapped -= n }
                    bodyBytesMoved &+= UInt64(n)
                    progressed = true
                case .blocked: return .needsDestination
                case .failed: return .failed(.destinationError)
                }
                continue
            }
            return nil
        }
    }

    /// Writes everything pending to both destinations. The primary's failure fails the
    /// flow; the mirror's only ends the mirror. Nil when all was written.
    private mutating func flushMirrored(buffer: ByteBuffer?, destination: Int32, ready: inout Readiness,
                                        mirrorReady: inout Readiness) -> FlowStatus? {
        while true {
            guard mirrorAlive else { return flush(buffer: buffer, destination: destination, ready: &ready) }
            var moved = false
            var blocked = false
            // Head to both.
            if prefixOffset < prefix.count || mirrorPrefixOffset < prefix.count {
                if prefixOffset < prefix.count {
                    switch writeSome(destination, prefix[prefixOffset...], &ready) {
                    case .some(let n): prefixOffset += n; moved = moved || n > 0
                    case .none: return .failed(.destinationError)
                    }
                    if prefixOffset < prefix.count { blocked = true }
                }
                if mirrorPrefixOffset < prefix.count {
                    switch writeSome(mirrorFD, prefix[mirrorPrefixOffset...], &mirrorReady) {
                    case .some(let n): mirrorPrefixOffset += n; moved = moved || n > 0
                    case .none: dropMirror()
                    }
                    if mirrorAlive && mirrorPrefixOffset < prefix.count { blocked = true }
                }
                if prefixOffset == prefix.count && (!mirrorAlive || mirrorPrefixOffset == prefix.count) {
                    prefix.removeAll(keepingCapacity: true)
                    prefixOffset = 0
                    mirrorPrefixOffset = 0
                }
                if moved { progressed = true; continue }
                if blocked { return .needsDestination }
                continue
            }
            // Buffered bytes to both; consumed once both have them.
            if forwardable > 0, let buffer {
                if primaryForwarded < forwardable {
                    let slice = Array(buffer.readable[primaryForwarded..<forwardable])[...]
                    switch writeSome(destination, slice, &ready) {
                    case .some(let n): primaryForwarded += n; moved = moved || n > 0
                    case .none: return .failed(.destinationError)
                    }
                    if primaryForwarded < forwardable { blocked = true }
                }
                if mirrorAlive && mirrorForwarded < forwardable {
                    let slice = Array(buffer.readable[mirrorForwarded..<forwardable])[...]
                    switch writeSome(mirrorFD, slice, &mirrorReady) {
                    case .some(let n): mirrorForwarded += n; moved = moved || n > 0
                    case .none: dropMirror()
                    }
                    if mirrorAlive && mirrorForwarded < forwardable { blocked = true }
                }
                if primaryForwarded == forwardable && (!mirrorAlive || mirrorForwarded == forwardable) {
                    buffer.consume(forwardable)
                    bodyBytesMoved &+= UInt64(forwardable)
                    forwardable = 0
                    primaryForwarded = 0
                    mirrorForwarded = 0
                    moved = true
                }
                if moved { progressed = true; continue }
                if blocked { return .needsDestination }
                continue
            }
            // Spliced bytes: duplicate into the mirror pipe first (tee does not consume, so
            // only when nothing teed is still waiting), then drain both pipes.
            if let pipe, pipe.count > 0 {
                if teed == 0, mirrorAlive, let mirrorPipe, mirrorPipe.count < mirrorPipe.capacity {
                    if case .done(let n)? = try? Splice.duplicate(from: pipe.readFD, to: mirrorPipe.writeFD, count: pipe.count) {
                        teed = n
                        mirrorPipe.count += n
                        moved = moved || n > 0
                    }
                }
                if teed > 0 && ready.writable {
                    do {
                        switch try Splice.move(from: pipe.readFD, to: destination, count: teed) {
                        case .done(let n): pipe.count -= n; teed -= n; bodyBytesMoved &+= UInt64(n); moved = moved || n > 0
                        case .wouldBlock: ready.writable = false
                        }
                    } catch {
                        return .failed(.destinationError)
                    }
                }
            }
            if mirrorAlive, let mirrorPipe, mirrorPipe.count > 0, mirrorReady.writable {
                do {
                    switch try Splice.move(from: mirrorPipe.readFD, to: mirrorFD, count: mirrorPipe.count) {
                    case .done(let n): mirrorPipe.count -= n; moved = moved || n > 0
                    case .wouldBlock: mirrorReady.writable = false
                    }
                } catch {
                    dropMirror()
                }
            }
            let pending = (pipe?.count ?? 0) > 0 || (mirrorAlive && (mirrorPipe?.count ?? 0) > 0)
            if !pending { return nil }
            if moved { progressed = true; continue }
            return .needsDestination
        }
    }

    /// One write: bytes written (0 when it would block, which clears readiness), nil on error.
    private func writeSome(_ fd: Int32, _ bytes: ArraySlice<UInt8>, _ ready: inout Readiness) -> Int? {
        switch Self.attempt(&ready, { () throws(SyscallError) in try Socket.write(fd, bytes: bytes) }) {
        case .moved(let n): return n
        case .blocked: return 0
        case .failed: return nil
        }
    }

    private mutating func dropMirror() {
        mirrorAlive = false
        teed = 0
    }

    // MARK: Input

    /// Takes more from the source: marks buffered bytes forwardable, reads framing, or
    /// splices into the pipe. Nil when there is something to flush.
    private mutating func produce(source: Int32, sourceReady: inout Readiness, buffer: ByteBuffer?, pools: ResourcePools) -> FlowStatus? {
        let buffered = buffer?.readableCount ?? 0
        switch phase {
        case .ending:
            return .finished

        case .counted:
            if remaining == 0 {
                endCountedStretch()
                return nil
            }
            if buffered > 0, let buffer {
                return claimBuffered(buffer) ? nil : .needsSource
            }
            if pausesForTap {
                return readForTap(source: source, ready: &sourceReady, pools: pools)
            }
            if throughTLS {
                return readThrough(source: source, ready: &sourceReady, buffer: buffer, limit: remaining)
            }
            switch spliceIn(source: source, ready: &sourceReady, limit: remaining, pools: pools) {
            case .moved(let n): remaining -= UInt64(n); return nil
            case .endOfStream: return .failed(.sourceClosedEarly)
            case .blocked: return .needsSource
            case .failed(let failure): return .failed(failure)
            }

        case .chunkFraming:
            if buffered > 0, let buffer {
                return decodeFraming(buffer)
            }
            return readIntoBuffer(source: source, ready: &sourceReady, buffer: buffer)

        case .untilClose:
            if buffered > 0, let buffer {
                return claimBuffered(buffer) ? nil : .needsSource
            }
            if pausesForTap {
                return readForTap(source: source, ready: &sourceReady, pools: pools)
            }
            if throughTLS {
                return readThrough(source: source, ready: &sourceReady, buffer: buffer, limit: .max)
            }
            switch spliceIn(source: source, ready: &sourceReady, limit: .max, pools: pools) {
            case .moved: return nil
            case .endOfStream: phase = .ending; return nil
            case .blocked: return .needsSource
            case .failed(let failure): return .failed(failure)
            }
        }
    }

    /// The counted stretch (a Content-Length body, or one chunk's data) is complete.
    private mutating func endCountedStretch() {
        guard chunked else { phase = .ending; return }
        // The CRLF after the data goes out now, so a streamed chunk is complete at the client
        // without waiting for the next size line; a sender that breaks the framing afterwards
        // gets the flow failed, and the client a body without its last chunk.
        if !dechunk { ChunkedFraming.appendDataEnd(to: &prefix) }
        phase = .chunkFraming
    }

    /// Reads chunk framing from the buffer: what it consumes is taken from the buffer and the
    /// framing written anew into `prefix` (nothing, when de-chunking). Nil unless it failed.
    private mutating func decodeFraming(_ buffer: ByteBuffer) -> FlowStatus? {
        let (consumed, event) = decoder.decode(buffer.readable)
        buffer.consume(consumed)
        bodyStarted = true
        switch event {
        case .needMore:
            break
        case .chunkData(let n):
            remaining = n
            phase = .counted
            if !dechunk { ChunkedFraming.appendSizeLine(n, to: &prefix) }
        case .end:
            phase = .ending
            if !dechunk { ChunkedFraming.appendLastChunk(to: &prefix) }
        case .error(let error):
            return .failed(.badFraming(error))
        }
        return nil
    }

    /// Appends the body bytes already in the buffer behind the pending head, with their framing
    /// written anew, so a small message leaves in one write. No I/O. Stops at the end of the
    /// buffer or the body, where a paused drain has no room, or at a framing error (which the
    /// next `produce` reports: the decoder repeats it).
    private mutating func stageBuffered(_ buffer: ByteBuffer) {
        while true {
            if forwardable > 0 {
                prefix.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer.readable[0..<forwardable]))
                buffer.consume(forwardable)
                bodyBytesMoved &+= UInt64(forwardable)
                forwardable = 0
            }
            guard buffer.readableCount > 0 else { return }
            switch phase {
            case .chunkFraming:
                if decodeFraming(buffer) != nil { return }
            case .counted where remaining == 0:
                endCountedStretch()
            case .counted, .untilClose:
                guard claimBuffered(buffer), forwardable > 0 else { return }
            case .ending:
                return
            }
        }
    }

    /// Reads chunk framing from the source into the (empty) buffer; end of stream there is a failure.
    private mutating func readIntoBuffer(source: Int32, ready: inout Readiness, buffer: ByteBuffer?) -> FlowStatus? {
        guard let buffer else { return .failed(.sourceError) }
        guard ready.readable else { return .needsSource }
        if throughTLS && tlsSource != nil { return readThrough(source: source, ready: &ready, buffer: buffer, limit: .max) }
        let space = buffer.writableCount
        let limit = space
        do {
            switch try buffer.read(from: source, limit: limit) {
            case .done(0): return .failed(.sourceClosedEarly)
            case .done(let n):
                ready.noteRead(n, of: space)
                progressed = true
                bodyStarted = true
                return nil
            case .wouldBlock:
                ready.readable = false
                return .needsSource
            }
        } catch {
            return .failed(.sourceError)
        }
    }

    /// The drained response's body (a flow that pauses for its tap, with nowhere to send it):
    /// reads as much as the tap has room for, at most the rest of the counted stretch, into
    /// the worker's scratch buffer, shows it to the tap and drops it. Nothing stays behind, so
    /// the flow's own buffer is needed only for heads and chunk framing. Nil after progress.
    private mutating func readForTap(source: Int32, ready: inout Readiness, pools: ResourcePools) -> FlowStatus? {
        guard let tap else { return .failed(.sourceError) }
        guard ready.readable else { return .needsSource }
        let room = tap.room(side: tapSide)
        // Paused: the served side asks for a catch-up whenever it moves.
        guard room > 0 else { return .needsSource }
        let scratch = pools.drainScratch
        scratch.clear()
        var space = min(room, scratch.capacity)
        if case .counted = phase { space = Int(min(UInt64(space), remaining)) }
        do {
            switch try scratch.read(from: source, limit: space) {
            case .done(0):
                if case .untilClose = phase { phase = .ending; return nil }
                return .failed(.sourceClosedEarly)
            case .done(let n):
                ready.noteRead(n, of: space)
                progressed = true
                bodyStarted = true
                if case .counted = phase { remaining -= UInt64(n) }
                bodyBytesMoved &+= UInt64(n)
                tap.feed(side: tapSide, scratch.readable)
                scratch.clear()
                return nil
            case .wouldBlock:
                ready.readable = false
                return .needsSource
            }
        } catch {
            return .failed(.sourceError)
        }
    }

    /// Marks body bytes already in the buffer as forwardable without any I/O (and shows
    /// them to the tap), so they can leave in the same write as the head. Chunk framing is
    /// left to `produce`.
    /// Returns false when a paused drain has no room to take more yet.
    @discardableResult
    private mutating func claimBuffered(_ buffer: ByteBuffer) -> Bool {
        var take: Int
        switch phase {
        case .counted where remaining > 0:
            take = Int(min(remaining, UInt64(buffer.readableCount)))
        case .untilClose:
            take = buffer.readableCount
        default:
            return true
        }
        if pausesForTap, let tap {
            take = min(take, tap.room(side: tapSide))
            if take == 0 { return false }
        }
        if case .counted = phase { remaining -= UInt64(take) }
        forwardable = take
        bodyStarted = true
        tap?.feed(side: tapSide, UnsafeRawBufferPointer(rebasing: buffer.readable[0..<take]))
        return true
    }

    /// With a TLS client on either side: reads body bytes (or chunk framing) into the empty
    /// buffer instead of splicing them, at most `limit`, through `SSL_read` from a TLS source
    /// (whose short reads do not mean the socket is drained) or from the source socket. The
    /// next `produce` claims them. End of stream finishes an `untilClose` body and fails any
    /// other. Nil after progress.
    private mutating func readThrough(source: Int32, ready: inout Readiness, buffer: ByteBuffer?, limit: UInt64) -> FlowStatus? {
        guard let buffer else { return .failed(.sourceError) }
        guard ready.readable else { return .needsSource }
        let want = Int(min(limit, UInt64(buffer.writableCount)))
        var ended = false
        if let tls = tlsSource {
            switch tls.read(into: buffer, limit: want) {
            case .done(let n):
                progressed = progressed || n > 0
            case .wantRead:
                ready.readable = false
                return .needsSource
            case .wantWrite:
                ready.writable = false
                return .needsSource
            case .closed:
                ended = true
            case .failed:
                return .failed(.sourceError)
            }
        } else {
            do {
                switch try buffer.read(from: source, limit: want) {
                case .done(0):
                    ended = true
                case .done(let n):
                    ready.noteRead(n, of: want)
                    progressed = true
                case .wouldBlock:
                    ready.readable = false
                    return .needsSource
                }
            } catch {
                return .failed(.sourceError)
            }
        }
        if ended {
            if case .untilClose = phase { phase = .ending; return nil }
            return .failed(.sourceClosedEarly)
        }
        bodyStarted = true
        return nil
    }

    private enum SpliceIn { case moved(Int), endOfStream, blocked, failed(FlowFailure) }

    /// Splices from the source socket into the (empty) pipe. The pipe was drained before
    /// this is called, so `EAGAIN` here means the socket is empty, not that the pipe is full.
    private mutating func spliceIn(source: Int32, ready: inout Readiness, limit: UInt64, pools: ResourcePools) -> SpliceIn {
        guard ready.readable else { return .blocked }
        if pipe == nil {
            do { pipe = try pools.takePipe() } catch { return .failed(.noPipe) }
        }
        if mirrorAlive && mirrorPipe == nil {
            do { mirrorPipe = try pools.takePipe() } catch { dropMirror() }
        }
        let pipe = pipe!
        let want = Int(min(limit, UInt64(pipe.capacity - pipe.count)))
        do {
            switch try Splice.move(from: source, to: pipe.writeFD, count: want) {
            case .done(0):
                return .endOfStream
            case .done(let n):
                pipe.count += n
                progressed = true
                bodyStarted = true
                return .moved(n)
            case .wouldBlock:
                ready.readable = false
                return .blocked
            }
        } catch {
            return .failed(.sourceError)
        }
    }
}
