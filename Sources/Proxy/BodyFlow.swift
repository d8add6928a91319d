import HTTP1
import Syscalls

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
    /// Waiting for the destination to become writable.
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

/// Moves one message's head and body from a source descriptor to a destination: first
/// `prefix` (the rewritten head, and any framing the proxy emits), then the body bytes
/// already read into the source's buffer, then the rest with `splice(2)` through a pooled
/// pipe. Chunked bodies are forwarded verbatim: the decoder only tells framing (read
/// through the buffer) from chunk data (spliced). Nothing is buffered beyond one buffer.
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
    /// Set whenever a call moved bytes; the session uses it to push idle deadlines.
    var progressed = false

    /// A flow for a body with the given framing.
    init(framing: BodyFraming) {
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

    /// True when the flow has read everything it will read from the source.
    var sourceDone: Bool { if case .ending = phase { return true }; return false }

    /// True when the flow holds a pipe with bytes in it or has pending prefix bytes.
    var hasPending: Bool { prefixOffset < prefix.count || forwardable > 0 || (pipe?.count ?? 0) > 0 }

    /// Returns the pipe to the pool (closed if it still holds bytes).
    mutating func release(to pools: ResourcePools) {
        if let pipe {
            pools.giveBack(pipe)
            self.pipe = nil
        }
    }

    /// Moves as much as readiness allows. Pure loop over non-blocking calls: it returns as
    /// soon as a call would block, the body ends, or something fails.
    mutating func pump(source: Int32, sourceReady: inout Readiness, buffer: ByteBuffer?,
                       destination: Int32, destinationReady: inout Readiness,
                       pools: ResourcePools) -> FlowStatus {
        while true {
            // 1. Pending output, in order: prefix (+ buffered body copied behind it, so a
            //    small response leaves in one write), buffered body, pipe.
            if prefixOffset < prefix.count {
                if forwardable == 0, let buffer, buffer.readableCount > 0 { claimBuffered(buffer) }
                if forwardable > 0, let buffer {
                    prefix.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer.readable[0..<forwardable]))
                    buffer.consume(forwardable)
                    bodyBytesMoved &+= UInt64(forwardable)
                    forwardable = 0
                }
                guard destinationReady.writable else { return .needsDestination }
                do {
                    switch try Socket.write(destination, bytes: prefix[prefixOffset...]) {
                    case .done(let n):
                        prefixOffset += n
                        progressed = true
                        if prefixOffset == prefix.count {
                            prefix.removeAll(keepingCapacity: true)
                            prefixOffset = 0
                        }
                    case .wouldBlock:
                        destinationReady.writable = false
                        return .needsDestination
                    }
                } catch {
                    return .failed(.destinationError)
                }
                continue
            }
            if forwardable > 0, let buffer {
                guard destinationReady.writable else { return .needsDestination }
                do {
                    switch try buffer.write(to: destination, limit: forwardable) {
                    case .done(let n):
                        forwardable -= n
                        bodyBytesMoved &+= UInt64(n)
                        progressed = true
                    case .wouldBlock:
                        destinationReady.writable = false
                        return .needsDestination
                    }
                } catch {
                    return .failed(.destinationError)
                }
                continue
            }
            if let pipe, pipe.count > 0 {
                guard destinationReady.writable else { return .needsDestination }
                do {
                    switch try Splice.move(from: pipe.readFD, to: destination, count: pipe.count) {
                    case .done(let n):
                        pipe.count -= n
                        bodyBytesMoved &+= UInt64(n)
                        progressed = true
                    case .wouldBlock:
                        destinationReady.writable = false
                        return .needsDestination
                    }
                } catch {
                    return .failed(.destinationError)
                }
                continue
            }

            // 2. Nothing pending: take more from the source.
            let buffered = buffer?.readableCount ?? 0
            switch phase {
            case .ending:
                release(to: pools)
                return .finished

            case .counted:
                if remaining == 0 {
                    phase = chunked ? .chunkFraming : .ending
                    continue
                }
                if buffered > 0 {
                    let take = Int(min(remaining, UInt64(buffered)))
                    forwardable = take
                    remaining -= UInt64(take)
                    continue
                }
                switch spliceIn(source: source, ready: &sourceReady, limit: remaining, pools: pools) {
                case .moved(let n): remaining -= UInt64(n)
                case .endOfStream: return .failed(.sourceClosedEarly)
                case .blocked: return .needsSource
                case .failed(let failure): return .failed(failure)
                }

            case .chunkFraming:
                if buffered > 0, let buffer {
                    let (consumed, event) = decoder.decode(buffer.readable)
                    forwardable = consumed
                    switch event {
                    case .needMore: break
                    case .chunkData(let n): remaining = n; phase = .counted
                    case .end: phase = .ending
                    case .error(let error): return .failed(.badFraming(error))
                    }
                    continue
                }
                guard let buffer else { return .failed(.sourceError) }
                guard sourceReady.readable else { return .needsSource }
                let space = buffer.writableCount
                do {
                    switch try buffer.read(from: source) {
                    case .done(0): return .failed(.sourceClosedEarly)
                    case .done(let n):
                        sourceReady.noteRead(n, of: space)
                        progressed = true
                    case .wouldBlock:
                        sourceReady.readable = false
                        return .needsSource
                    }
                } catch {
                    return .failed(.sourceError)
                }

            case .untilClose:
                if buffered > 0 {
                    forwardable = buffered
                    continue
                }
                switch spliceIn(source: source, ready: &sourceReady, limit: .max, pools: pools) {
                case .moved: break
                case .endOfStream: phase = .ending
                case .blocked: return .needsSource
                case .failed(let failure): return .failed(failure)
                }
            }
        }
    }

    /// Marks body bytes already in the buffer as forwardable without any I/O, so they can
    /// leave in the same write as the head. Chunk framing is left to the main loop.
    private mutating func claimBuffered(_ buffer: ByteBuffer) {
        switch phase {
        case .counted where remaining > 0:
            let take = Int(min(remaining, UInt64(buffer.readableCount)))
            forwardable = take
            remaining -= UInt64(take)
        case .untilClose:
            forwardable = buffer.readableCount
        default:
            break
        }
    }

    private enum SpliceIn { case moved(Int), endOfStream, blocked, failed(FlowFailure) }

    /// Splices from the source socket into the (empty) pipe. The pipe was drained before
    /// this is called, so `EAGAIN` here means the socket is empty, not that the pipe is full.
    private mutating func spliceIn(source: Int32, ready: inout Readiness, limit: UInt64, pools: ResourcePools) -> SpliceIn {
        guard ready.readable else { return .blocked }
        if pipe == nil {
            do { pipe = try pools.takePipe() } catch { return .failed(.noPipe) }
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
