import Testing
@testable import HTTP1

/// `ChunkedDecoder.scan` (refusing a body before its head is forwarded; the length of a body that
/// arrived whole) and `ChunkedFraming` (the normal form the proxy forwards).
@Suite("Chunked bodies: scan and normal form")
struct ChunkedRewriteTests {
    func scan(_ text: String) -> ChunkedDecoder.Scan {
        Array(text.utf8).withUnsafeBytes { ChunkedDecoder.scan($0) }
    }

    @Test("invalid size lines are found in the bytes that came with the head")
    func invalidPrefixes() {
        #expect(scan("fffffffffffffffffffff\r\n") == .invalid(HTTPParseError(.chunkSizeOverflow, at: 15)))
        #expect(scan("5x\r\nhello\r\n0\r\n\r\n") == .invalid(HTTPParseError(.badChunkSize, at: 1)))
        #expect(scan("10000000000000000\r\n") == .invalid(HTTPParseError(.chunkSizeOverflow, at: 16)))
        // An error after a complete first chunk, at its offset in the body.
        #expect(scan("3\r\nabc\r\nzz\r\n") == .invalid(HTTPParseError(.badChunkSize, at: 8)))
        #expect(scan("3\r\nabcX") == .invalid(HTTPParseError(.badChunkTerminator, at: 6)))
    }

    @Test("valid prefixes are incomplete until the last chunk; whole bodies give their length")
    func lengths() {
        #expect(scan("") == .incomplete)
        #expect(scan("5\r\nhel") == .incomplete)
        #expect(scan("5\r\nhello\r\n") == .incomplete)
        #expect(scan("ffffffff\r\nabc") == .incomplete)
        #expect(scan("0\r\n\r\n") == .complete(dataBytes: 0, encodedBytes: 5))
        #expect(scan("5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\nNEXT") == .complete(dataBytes: 8, encodedBytes: 33))
        #expect(scan("000000000000000000000000000000000e3\r\n") == .incomplete)
    }

    func framed(_ build: (inout [UInt8]) -> Void) -> String {
        var out: [UInt8] = []
        build(&out)
        return String(decoding: out, as: UTF8.self)
    }

    @Test("size lines in minimal lowercase hex, no extensions; a last chunk without trailers")
    func normalForm() {
        #expect(framed { ChunkedFraming.appendSizeLine(1, to: &$0) } == "1\r\n")
        #expect(framed { ChunkedFraming.appendSizeLine(0xe3, to: &$0) } == "e3\r\n")
        #expect(framed { ChunkedFraming.appendSizeLine(0x10, to: &$0) } == "10\r\n")
        #expect(framed { ChunkedFraming.appendSizeLine(0x7fff_ffff_ffff_ffff, to: &$0) } == "7fffffffffffffff\r\n")
        #expect(framed { ChunkedFraming.appendSizeLine(UInt64.max, to: &$0) } == "ffffffffffffffff\r\n")
        #expect(framed { ChunkedFraming.appendDataEnd(to: &$0); ChunkedFraming.appendLastChunk(to: &$0) } == "\r\n0\r\n\r\n")
    }

    @Test("de-chunked response heads: no Transfer-Encoding; Content-Length when the length is known")
    func dechunkedHeads() {
        let raw = Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n".utf8)
        var parser = HeadParser(limits: HeadLimits(requireHost: false))
        var head = ResponseHead()
        raw.withUnsafeBytes { #expect(parser.parseResponse($0, requestMethod: .get, into: &head) == .complete(headLength: raw.count)) }
        func write(_ d: HeadWriter.Dechunked, close: Bool) -> String {
            var out: [UInt8] = []
            raw.withUnsafeBytes { HeadWriter.appendResponse(head, source: $0, extraHeaders: [], close: close, clientVersionMinor: 0, dechunked: d, to: &out) }
            return String(decoding: out, as: UTF8.self)
        }
        #expect(write(.init(length: 450), close: false) == "HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 450\r\nConnection: keep-alive\r\n\r\n")
        #expect(write(.init(length: nil), close: true) == "HTTP/1.1 200 OK\r\nX-A: 1\r\nConnection: close\r\n\r\n")
    }

    @Test("responses keep the lenient rules: identical Content-Length repeats merge, underscores pass")
    func responsesStayLenient() {
        let raw = Array("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\nX_Backend: a\r\n\r\n".utf8)
        var parser = HeadParser(limits: HeadLimits(requireHost: false))
        var head = ResponseHead()
        raw.withUnsafeBytes { #expect(parser.parseResponse($0, requestMethod: .get, into: &head) == .complete(headLength: raw.count)) }
        #expect(head.framing == .contentLength(5))
    }
}
