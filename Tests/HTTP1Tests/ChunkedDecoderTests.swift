import Testing
@testable import HTTP1

/// What decoding a whole body produced.
struct ChunkedResult: Equatable {
    enum End: Equatable { case end, error(HTTPParseError), needMore }
    var end: End
    /// The chunk data, reassembled.
    var data: [UInt8]
    /// Bytes of the body read through the decoder or as data, up to the end or the error.
    var bodyBytes: Int
}

/// Decodes `input` delivered in the given pieces, handling chunk data the way the proxy does.
func decodeChunked(_ input: [UInt8], cuts: [Int], maxTrailerBytes: Int = 16384) -> ChunkedResult {
    var decoder = ChunkedDecoder(maxTrailerBytes: maxTrailerBytes)
    var pending: [UInt8] = []
    var data: [UInt8] = []
    var body = 0
    var dataLeft: UInt64 = 0
    var delivered = 0
    for cut in cuts + [input.count] where cut >= delivered {
        pending += input[delivered..<cut]
        delivered = cut
        while true {
            if dataLeft > 0 {
                let take = Int(min(dataLeft, UInt64(pending.count)))
                data += pending[0..<take]
                pending.removeFirst(take)
                body += take
                dataLeft -= UInt64(take)
                if dataLeft > 0 { break }
            }
            if pending.isEmpty { break }
            let (consumed, event) = withExactCopy(pending[...]) { decoder.decode($0) }
            #expect(consumed <= pending.count)
            pending.removeFirst(consumed)
            body += consumed
            switch event {
            case .needMore:
                #expect(pending.isEmpty, "needMore must consume everything")
            case .chunkData(let n):
                #expect(n > 0)
                dataLeft = n
            case .end:
                #expect(decoder.isComplete)
                #expect(decoder.decode(UnsafeRawBufferPointer(start: nil, count: 0)) == (0, .end))
                return ChunkedResult(end: .end, data: data, bodyBytes: body)
            case .error(let e):
                let again = withExactCopy(pending[...]) { decoder.decode($0) }
                #expect(again.consumed == 0 && again.event == .error(e))
                return ChunkedResult(end: .error(e), data: data, bodyBytes: body)
            }
        }
    }
    return ChunkedResult(end: .needMore, data: data, bodyBytes: body)
}

func decodeChunkedEveryWay(_ input: [UInt8], maxTrailerBytes: Int = 16384) -> ChunkedResult {
    let whole = decodeChunked(input, cuts: [], maxTrailerBytes: maxTrailerBytes)
    var ways: [(String, [Int])] = [("byte by byte", Array(0..<input.count))]
    for k in 0..<input.count { ways.append(("split at \(k)", [k])) }
    for (name, cuts) in ways {
        let other = decodeChunked(input, cuts: cuts, maxTrailerBytes: maxTrailerBytes)
        #expect(other == whole, "fed \(name)")
        if other != whole { break }
    }
    return whole
}

struct ChunkedCase: Sendable, CustomTestStringConvertible {
    enum Want: Sendable {
        /// Complete with this data; the body is everything before `rest` (or the whole input).
        case end(data: String, rest: String = "")
        case error(HTTPParseError.Code, At)
        case needMore(data: String)
    }
    var name: String
    var input: [UInt8]
    var maxTrailerBytes = 16384
    var want: Want
    var testDescription: String { name }

    init(_ name: String, _ input: String, maxTrailerBytes: Int = 16384, _ want: Want) {
        self.name = name
        self.input = Array(input.utf8)
        self.maxTrailerBytes = maxTrailerBytes
        self.want = want
    }
}

let chunkedCases: [ChunkedCase] = [
    .init("one chunk", "5\r\nhello\r\n0\r\n\r\n", .end(data: "hello")),
    .init("several chunks, hex sizes", "a\r\n0123456789\r\nB\r\nabcdefghijk\r\n1\r\n!\r\n0\r\n\r\n",
          .end(data: "0123456789abcdefghijk!")),
    .init("empty body", "0\r\n\r\n", .end(data: "")),
    .init("leading zeros", "0005\r\nhello\r\n000\r\n\r\n", .end(data: "hello")),
    .init("chunk data may contain CRLF", "4\r\n\r\n\r\n\r\n0\r\n\r\n", .end(data: "\r\n\r\n")),
    .init("extensions", "5;name\r\nhello\r\n3;a=b;c=\"q \\\" ;d\"\r\nabc\r\n0;last\r\n\r\n", .end(data: "helloabc")),
    .init("whitespace around extension parts", "5 \t; a = b ;c\r\nhello\r\n0\r\n\r\n", .end(data: "hello")),
    .init("trailers", "5\r\nhello\r\n0\r\nX-Digest: abc\r\nX-Other:\r\n\r\n", .end(data: "hello")),
    .init("bytes after the body are left alone", "1\r\na\r\n0\r\n\r\nGET / HTTP/1.1\r\n", .end(data: "a", rest: "GET / HTTP/1.1\r\n")),
    .init("incomplete data", "5\r\nhel", .needMore(data: "hel")),
    .init("incomplete size line", "5;a=", .needMore(data: "")),
    .init("incomplete trailers", "0\r\nX: y\r\n", .needMore(data: "")),
    .init("largest size is accepted", "7fffffffffffffff\r\n", .needMore(data: "")),

    .init("not hex", "x\r\n", .error(.badChunkSize, .offset(0))),
    .init("0x prefix", "0x5\r\nhello\r\n", .error(.badChunkSize, .offset(1))),
    .init("junk after size", "5x\r\nhello\r\n", .error(.badChunkSize, .offset(1))),
    .init("leading space", " 5\r\nhello\r\n", .error(.badChunkSize, .offset(0))),
    .init("trailing space without extension", "5 \r\nhello\r\n", .error(.badChunkSize, .offset(2))),
    .init("negative size", "-5\r\n", .error(.badChunkSize, .offset(0))),
    .init("empty size line", "\r\n", .error(.badChunkSize, .offset(0))),
    .init("bare LF after size", "5\nhello\r\n0\r\n\r\n", .error(.badChunkSize, .offset(1))),
    .init("CR without LF after size", "5\rhello", .error(.badChunkSize, .offset(2))),
    .init("size of 2^63", "8000000000000000\r\n", .error(.chunkSizeOverflow, .offset(15))),
    .init("size far too large", "ffffffffffffffffffff\r\n", .error(.chunkSizeOverflow, .offset(15))),
    .init("empty extension name", "5;\r\nhello\r\n", .error(.badChunkExtension, .offset(2))),
    .init("extension name not a token", "5;a@b\r\nhello\r\n", .error(.badChunkExtension, .offset(3))),
    .init("extension without value", "5;a=\r\nhello\r\n", .error(.badChunkExtension, .offset(4))),
    .init("two extension values", "5;a=b c\r\nhello\r\n", .error(.badChunkExtension, .offset(6))),
    .init("control char in quoted extension", "5;a=\"x\u{01}\"\r\nhello\r\n", .error(.badChunkExtension, .offset(6))),
    .init("size line too long", String(repeating: "0", count: 4096) + "5\r\n", .error(.chunkLineTooLong, .offset(4096))),
    .init("data longer than the size", "5\r\nhelloX\r\n0\r\n\r\n", .error(.badChunkTerminator, .offset(8))),
    .init("LF without CR after data", "5\r\nhello\n0\r\n\r\n", .error(.badChunkTerminator, .offset(8))),
    .init("CR without LF after data", "5\r\nhello\r0\r\n\r\n", .error(.badChunkTerminator, .offset(9))),
    .init("bad trailer name", "0\r\nBad Name: x\r\n\r\n", .error(.badTrailer, .offset(6))),
    .init("trailer without colon", "0\r\nNoColon\r\n\r\n", .error(.badTrailer, .offset(10))),
    .init("obs-fold in trailers", "0\r\nX: a\r\n b\r\n\r\n", .error(.badTrailer, .offset(9))),
    .init("control char in trailer value", "0\r\nX: a\u{00}\r\n\r\n", .error(.badTrailer, .offset(7))),
    .init("bare LF ends the body", "0\r\n\n", .error(.badTrailer, .offset(3))),
    .init("CR without LF at the end", "0\r\n\rX", .error(.badTrailer, .offset(4))),
    .init("trailers too large", "0\r\nX-Trailer: 12345\r\n\r\n", maxTrailerBytes: 10, .error(.trailersTooLarge, .offset(13))),
]

@Test(arguments: chunkedCases)
func chunkedCase(_ c: ChunkedCase) {
    let got = decodeChunkedEveryWay(c.input, maxTrailerBytes: c.maxTrailerBytes)
    switch c.want {
    case .end(let data, let rest):
        #expect(got.end == .end)
        #expect(got.data == Array(data.utf8))
        #expect(got.bodyBytes == c.input.count - rest.utf8.count)
    case .needMore(let data):
        #expect(got.end == .needMore)
        #expect(got.data == Array(data.utf8))
    case .error(let code, let at):
        let offset = at.resolve(c.input)
        #expect(got.end == .error(HTTPParseError(code, at: offset)))
        #expect(got.bodyBytes == offset, "everything before the offending byte is consumed")
    }
}

@Test func largeChunkIsHandedOutAsOneDataEvent() {
    var decoder = ChunkedDecoder()
    let line = Array("100000\r\n".utf8)
    let r = line.withUnsafeBytes { decoder.decode($0) }
    #expect(r.consumed == line.count && r.event == .chunkData(0x100000))
    // After the data, an error offset counts the data too.
    let bad = Array("XX".utf8)
    let e = bad.withUnsafeBytes { decoder.decode($0) }
    #expect(e.consumed == 0 && e.event == .error(HTTPParseError(.badChunkTerminator, at: line.count + 0x100000)))
    decoder.reset()
    let again = Array("0\r\n\r\n".utf8)
    #expect(again.withUnsafeBytes { decoder.decode($0) } == (5, .end))
}
