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
        let tap = BodyTap()
        let data = Array("compare me".utf8)
        put(upstream.b, data)
        var flow = BodyFlow(framing: .contentLength(UInt64(data.count)))
        flow.tap(tap, side: 0)
        let status = pumpAll(&flow, source: upstream.a, buffer: ByteBuffer(capacity: 1024), destination: -1)
        #expect(status == .finished)
        #expect(tap.comparator.lengths.0 == UInt64(data.count))
    }
}
