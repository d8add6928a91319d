import Glibc
import HTTP1
import Observability
@testable import Proxy
import Syscalls
import Testing

/// Body flows driven step by step over real socketpairs: source → (buffer, pipe) → destination.
@Suite("Body flows")
struct BodyFlowTests {
    let pools = ResourcePools(bufferSize: 16384, pipeSize: 1 << 16, counters: CounterBlock())

    /// Pumps until the flow finishes or stops making progress; returns the last status.
    func pumpAll(_ flow: inout BodyFlow, source: Int32, buffer: ByteBuffer, destination: Int32) -> FlowStatus {
        var sourceReady = Readiness(readable: true, writable: true)
        var destinationReady = Readiness(readable: false, writable: true)
        var last = FlowStatus.needsSource
        for _ in 0..<1000 {
            sourceReady.readable = true       // as if epoll reported readiness each turn
            destinationReady.writable = true
            last = flow.pump(source: source, sourceReady: &sourceReady, buffer: buffer, destination: destination,
                             destinationReady: &destinationReady, pools: pools)
            if last == .finished { return last }
            if case .failed = last { return last }
            if !flow.progressed { return last }
            flow.progressed = false
        }
        return last
    }

    @Test("Content-Length: head and buffered bytes leave in one write, the rest is spliced, the next message stays")
    func contentLength() {
        let upstream = SocketPair(), downstream = SocketPair()
        defer { upstream.close(); downstream.close() }
        let buffer = ByteBuffer(capacity: 16384)
        let body = (0..<40_000).map { UInt8(truncatingIfNeeded: $0) }
        // 100 body bytes arrived with the head (in the buffer), the rest comes from the socket,
        // followed by the start of the next message which must not be consumed.
        _ = buffer.append(Array(body[0..<100]))
        put(upstream.b, Array(body[100...]))
        var flow = BodyFlow(framing: .contentLength(UInt64(body.count)))
        flow.prefix = Array("HEAD\r\n\r\n".utf8)
        let status = pumpAll(&flow, source: upstream.a, buffer: buffer, destination: downstream.a)
        put(upstream.b, "NEXT")
        #expect(status == .finished)
        #expect(take(downstream.b) == Array("HEAD\r\n\r\n".utf8) + body)
        #expect(flow.bodyBytesMoved == UInt64(body.count))
        #expect(take(upstream.a) == Array("NEXT".utf8))
        #expect(pools.pipesOut == 0, "the pipe went back to the pool")
    }

    @Test("chunked: data forwarded, framing written in normal form, the flow ends after the trailers")
    func chunked() {
        let upstream = SocketPair(), downstream = SocketPair()
        defer { upstream.close(); downstream.close() }
        let buffer = ByteBuffer(capacity: 16384)
        let big = String(repeating: "z", count: 30_000)
        // Leading zeros, upper-case hex, extensions and a trailer field: none of it is forwarded as sent.
        let wire = "0005;ext=1\r\nhello\r\n\(String(30_000, radix: 16).uppercased());a;b=\"q\"\r\n\(big)\r\n00\r\nX-T: 1\r\n\r\n"
        put(upstream.b, wire + "GET /next")
        var flow = BodyFlow(framing: .chunked)
        let status = pumpAll(&flow, source: upstream.a, buffer: buffer, destination: downstream.a)
        #expect(status == .finished)
        #expect(String(decoding: take(downstream.b), as: UTF8.self) == "5\r\nhello\r\n7530\r\n\(big)\r\n0\r\n\r\n")
        #expect(String(decoding: buffer.readableBytes(), as: UTF8.self) == "GET /next")
    }

    @Test("chunked, de-chunked: only the data is forwarded, whether it was buffered or spliced")
    func dechunked() {
        let upstream = SocketPair(), downstream = SocketPair()
        defer { upstream.close(); downstream.close() }
        let buffer = ByteBuffer(capacity: 16384)
        let big = String(repeating: "y", count: 40_000)
        _ = buffer.append(Array("3\r\nabc\r\n".utf8))
        put(upstream.b, "\(String(40_000, radix: 16))\r\n\(big)\r\n1\r\nz\r\n0\r\n\r\nGET /next")
        var flow = BodyFlow(framing: .chunked, dechunk: true)
        flow.prefix = Array("HEAD\r\n\r\n".utf8)
        let status = pumpAll(&flow, source: upstream.a, buffer: buffer, destination: downstream.a)
        #expect(status == .finished)
        #expect(String(decoding: take(downstream.b), as: UTF8.self) == "HEAD\r\n\r\nabc\(big)z")
        #expect(String(decoding: buffer.readableBytes(), as: UTF8.self) == "GET /next")
    }

    @Test("a small chunked message already buffered leaves with its head in one write")
    func bufferedChunkedInOneWrite() {
        let upstream = SocketPair(), downstream = SocketPair()
        defer { upstream.close(); downstream.close() }
        let buffer = ByteBuffer(capacity: 16384)
        _ = buffer.append(Array("2\r\nhi\r\n0\r\n\r\n".utf8))
        var flow = BodyFlow(framing: .chunked)
        flow.prefix = Array("HEAD\r\n\r\n".utf8)
        var sourceReady = Readiness(readable: false, writable: true)
        var destinationReady = Readiness(readable: false, writable: true)
        let status = flow.pump(source: upstream.a, sourceReady: &sourceReady, buffer: buffer, destination: downstream.a,
                               destinationReady: &destinationReady, pools: pools)
        #expect(status == .finished, "one pump, no read from the source")
        #expect(String(decoding: take(downstream.b), as: UTF8.self) == "HEAD\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
    }

    @Test("chunked framing errors fail the flow with the parser's error")
    func badChunk() {
        let upstream = SocketPair(), downstream = SocketPair()
        defer { upstream.close(); downstream.close() }
        put(upstream.b, "zz\r\n")
        var flow = BodyFlow(framing: .chunked)
        let status = pumpAll(&flow, source: upstream.a, buffer: ByteBuffer(capacity: 1024), destination: downstream.a)
        guard case .failed(.badFraming(let error)) = status else {
            Issue.record("expected a framing error, got \(status)")
            return
        }
        #expect(error.status == 400)
    }

    @Test("a source that closes before Content-Length is reached fails the flow")
    func shortBody() {
        let upstream = SocketPair(), downstream = SocketPair()
        defer { downstream.close() }
        put(upstream.b, "abc")
        Glibc.close(upstream.b)
        var flow = BodyFlow(framing: .contentLength(10))
        let status = pumpAll(&flow, source: upstream.a, buffer: ByteBuffer(capacity: 1024), destination: downstream.a)
        #expect(status == .failed(.sourceClosedEarly))
        Glibc.close(upstream.a)
    }

    @Test("until close: everything up to end of stream, then finished")
    func untilClose() {
        let upstream = SocketPair(), downstream = SocketPair()
        defer { downstream.close() }
        let data = (0..<50_000).map { UInt8(truncatingIfNeeded: $0 * 3) }
        put(upstream.b, data)
        Glibc.close(upstream.b)
        var flow = BodyFlow(framing: .untilClose)
        let status = pumpAll(&flow, source: upstream.a, buffer: ByteBuffer(capacity: 1024), destination: downstream.a)
        #expect(status == .finished)
        #expect(take(downstream.b) == data)
        Glibc.close(upstream.a)
    }

    @Test("mirror: both destinations receive the same bytes, spliced parts duplicated with tee")
    func mirrored() {
        let upstream = SocketPair(), first = SocketPair(), second = SocketPair()
        defer { upstream.close(); first.close(); second.close() }
        let buffer = ByteBuffer(capacity: 16384)
        let body = (0..<60_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        _ = buffer.append(Array(body[0..<500]))
        put(upstream.b, Array(body[500...]))
        var flow = BodyFlow(framing: .contentLength(UInt64(body.count)))
        flow.prefix = Array("H\r\n\r\n".utf8)
        flow.mirror(to: second.a)
        var sourceReady = Readiness(readable: true, writable: true)
        var a = Readiness(), b = Readiness()
        var status = FlowStatus.needsSource
        var gotFirst: [UInt8] = [], gotSecond: [UInt8] = []
        for _ in 0..<1000 where status != .finished {
            sourceReady.readable = true; a.writable = true; b.writable = true
            status = flow.pump(source: upstream.a, sourceReady: &sourceReady, buffer: buffer, destination: first.a,
                               destinationReady: &a, mirrorReady: &b, pools: pools)
            gotFirst += take(first.b)
            gotSecond += take(second.b)
        }
        #expect(status == .finished)
        #expect(flow.mirrorAlive)
        #expect(gotFirst == Array("H\r\n\r\n".utf8) + body)
        #expect(gotSecond == gotFirst)
        #expect(pools.pipesOut == 0)
    }

    @Test("discard with a tap: the bytes reach the comparator, not a socket")
    func tapAndDiscard() {
        let upstream = SocketPair()
        defer { upstream.close() }
        let tap = BodyTap(pools: pools)
        let waiter = Waiter {}
        let data = Array("compare me".utf8)
        put(upstream.b, data)
        var flow = BodyFlow(framing: .contentLength(UInt64(data.count)))
        flow.tap(tap, side: 0, pausing: waiter)
        tap.finish(side: 1)
        let status = pumpAll(&flow, source: upstream.a, buffer: ByteBuffer(capacity: 1024), destination: -1)
        #expect(status == .finished)
        #expect(tap.comparator.lengths.0 == UInt64(data.count))
    }

    /// One CONCURRENT response pair over socketpairs: the served body (side 1) is spliced to
    /// the client and teed into the tap, the drained one (side 0) is read for the comparator
    /// whenever the served one moves. The backends write `served` and `drained` in pieces of
    /// `piece` bytes, the drained backend only up to `drainedHeld` bytes until the served body is
    /// complete (a previous version that falls behind). Returns what the client received.
    func servedAndDrained(served: [UInt8], drained: [UInt8], piece: Int, drainedHeld: Int = .max, servedChunk: Int? = nil,
                          tap: BodyTap, pools: ResourcePools) -> (client: [UInt8], servedStatus: FlowStatus, drainedStatus: FlowStatus) {
        let newBackend = SocketPair(), oldBackend = SocketPair(), client = SocketPair()
        defer { newBackend.close(); oldBackend.close(); client.close() }
        let buffer = ByteBuffer(capacity: 16384), drainBuffer = ByteBuffer(capacity: 16384)
        // With `servedChunk`, the served backend sends its body chunked, in chunks of that size.
        var servedWire = served
        var servedFlow = BodyFlow(framing: .contentLength(UInt64(served.count)))
        if let servedChunk {
            servedWire = []
            var i = 0
            while i < served.count {
                let n = min(servedChunk, served.count - i)
                servedWire += Array("\(String(n, radix: 16))\r\n".utf8) + served[i..<i + n] + Array("\r\n".utf8)
                i += n
            }
            servedWire += Array("0\r\n\r\n".utf8)
            servedFlow = BodyFlow(framing: .chunked)
        }
        var drainedFlow = BodyFlow(framing: .contentLength(UInt64(drained.count)))
        var drainedReady = Readiness(readable: true, writable: true)
        var drainedStatus = FlowStatus.needsSource
        func pumpDrained() {
            guard drainedStatus != .finished else { return }
            drainedReady.readable = true
            var none = Readiness()
            drainedStatus = drainedFlow.pump(source: oldBackend.a, sourceReady: &drainedReady, buffer: drainBuffer,
                                             destination: -1, destinationReady: &none, pools: pools)
            if drainedStatus == .finished { tap.finish(side: 0) }
        }
        // The waiter pumps the drained flow in place, as ShadowDrain.catchUp does.
        var catchingUp = false
        let waiter = Waiter {
            guard !catchingUp else { return }
            catchingUp = true
            pumpDrained()
            catchingUp = false
        }
        servedFlow.tap(tap, side: 1)
        drainedFlow.tap(tap, side: 0, pausing: waiter)
        var servedReady = Readiness(readable: true, writable: true)
        var clientReady = Readiness(readable: false, writable: true)
        var servedStatus = FlowStatus.needsSource
        var got: [UInt8] = []
        var sentNew = 0, sentOld = 0
        for _ in 0..<100_000 {
            if sentNew < servedWire.count {
                let n = min(piece, servedWire.count - sentNew)
                put(newBackend.b, Array(servedWire[sentNew..<sentNew + n]))
                sentNew += n
            }
            let limit = sentNew == servedWire.count && servedStatus == .finished ? drained.count : min(drained.count, drainedHeld)
            if sentOld < limit {
                let n = min(piece, limit - sentOld)
                put(oldBackend.b, Array(drained[sentOld..<sentOld + n]))
                sentOld += n
            }
            if servedStatus != .finished {
                servedReady.readable = true
                clientReady.writable = true
                servedStatus = servedFlow.pump(source: newBackend.a, sourceReady: &servedReady, buffer: buffer,
                                               destination: client.a, destinationReady: &clientReady, pools: pools)
                got += take(client.b)
                if servedStatus == .finished { tap.finish(side: 1) }
            }
            pumpDrained()
            if servedStatus == .finished && drainedStatus == .finished { break }
            if case .failed = servedStatus { break }
        }
        got += take(client.b)
        servedFlow.release(to: pools)
        drainedFlow.release(to: pools)
        return (got, servedStatus, drainedStatus)
    }

    @Test("served body spliced and teed: the client gets it intact, the comparator sees it in lock-step with the drained one")
    func splicedAndTeed() {
        let pools = ResourcePools(bufferSize: 16384, pipeSize: 1 << 16, counters: CounterBlock())
        let body = (0..<400_000).map { UInt8(truncatingIfNeeded: $0 &* 11 &+ $0 >> 10) }
        let equal = BodyTap(pools: pools)
        let same = servedAndDrained(served: body, drained: body, piece: 20_000, tap: equal, pools: pools)
        #expect(same.servedStatus == .finished && same.drainedStatus == .finished)
        #expect(same.client == body)
        #expect(equal.comparator.lengths == (400_000, 400_000))
        #expect(equal.comparator.bodiesEqual && equal.comparator.lockStep)
        for offset in [0, 16_383, 65_536, 250_001, 399_999] {
            var changed = body
            changed[offset] ^= 0x40
            let tap = BodyTap(pools: pools)
            let r = servedAndDrained(served: body, drained: changed, piece: 30_000, tap: tap, pools: pools)
            #expect(r.client == body)
            #expect(!tap.comparator.bodiesEqual)
            #expect(tap.comparator.firstDifferenceOffset == UInt64(offset), "offset \(offset)")
            #expect(tap.comparator.lengths == (400_000, 400_000))
        }
        // A chunked served body: chunk data is spliced and teed, size lines read through the
        // buffer; the comparator sees the data alone, in order.
        for chunk in [1000, 70_000] {
            var changed = body
            changed[123_456] ^= 2
            let chunked = BodyTap(pools: pools)
            let r = servedAndDrained(served: body, drained: changed, piece: 20_000, servedChunk: chunk, tap: chunked, pools: pools)
            #expect(String(decoding: r.client.suffix(5), as: UTF8.self) == "0\r\n\r\n")
            #expect(chunked.comparator.lengths == (400_000, 400_000), "chunks of \(chunk)")
            #expect(chunked.comparator.firstDifferenceOffset == 123_456, "chunks of \(chunk)")
        }
        let shorter = BodyTap(pools: pools)
        let r = servedAndDrained(served: body, drained: Array(body[0..<300_000]), piece: 25_000, tap: shorter, pools: pools)
        #expect(r.client == body)
        #expect(shorter.comparator.firstDifferenceOffset == 300_000)
        #expect(pools.pipesOut == 0, "flows and taps returned their pipes")
    }

    @Test("a drained body that falls a whole pipe behind: the served body is not held up, digests decide")
    func drainedFallsBehind() {
        let pools = ResourcePools(bufferSize: 16384, pipeSize: 1 << 16, counters: CounterBlock())
        let body = (0..<600_000).map { UInt8(truncatingIfNeeded: $0 &* 5 &+ $0 >> 12) }
        for changedAt in [nil, 500_000] as [Int?] {
            var drained = body
            if let changedAt { drained[changedAt] ^= 1 }
            let tap = BodyTap(pools: pools)
            // The previous version sends 10 000 bytes, then nothing until the client has it all.
            let r = servedAndDrained(served: body, drained: drained, piece: 40_000, drainedHeld: 10_000, tap: tap, pools: pools)
            #expect(r.servedStatus == .finished && r.drainedStatus == .finished)
            #expect(r.client == body)
            #expect(!tap.comparator.lockStep, "the backlog overflowed")
            #expect(tap.comparator.firstDifferenceOffset == nil)
            #expect(tap.comparator.bodiesEqual == (changedAt == nil))
            #expect(tap.comparator.lengths == (600_000, 600_000))
        }
        #expect(pools.pipesOut == 0)
    }
}

/// A drained side's catch-up hook for flows driven by hand.
final class Waiter: TapWaiter {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
    func catchUp() { body() }
}
