import Testing
@testable import HTTP1

/// Where an error is expected: an absolute offset, or the first byte of the nth occurrence of a needle.
enum At: Sendable {
    case offset(Int)
    case needle(String, nth: Int = 0, plus: Int = 0)

    func resolve(_ input: [UInt8]) -> Int {
        switch self {
        case .offset(let o): return o
        case .needle(let n, let nth, let plus): return HTTP1Tests.offset(of: n, in: input, nth: nth) + plus
        }
    }
}

/// What a valid request must parse to; nil fields are not checked.
struct WantRequest: Sendable {
    var method: HTTPMethod? = nil
    var target: String? = nil
    var minor: Int? = nil
    var framing: BodyFraming? = nil
    var keepAlive: Bool? = nil
    var upgrade: Bool? = nil
    var expectContinue: Bool? = nil
    /// The head ends right before this needle (e.g. the body or the next request); default: at the end.
    var headEndsAt: String? = nil
    /// Names of the fields that must be hop-by-hop (all others must not be).
    var hop: [String]? = nil
    /// Every field, as "Name: value".
    var fields: [String]? = nil
}

enum Outcome: Sendable {
    case ok(WantRequest)
    case error(HTTPParseError.Code, At)
    case incomplete
}

struct RequestCase: Sendable, CustomTestStringConvertible {
    var name: String
    var input: [UInt8]
    var limits = HeadLimits()
    var outcome: Outcome
    var testDescription: String { name }

    init(_ name: String, _ input: String, limits: HeadLimits = HeadLimits(), _ outcome: Outcome) {
        self.name = name
        self.input = Array(input.utf8)
        self.limits = limits
        self.outcome = outcome
    }

    init(_ name: String, bytes: [UInt8], limits: HeadLimits = HeadLimits(), _ outcome: Outcome) {
        self.name = name
        self.input = bytes
        self.limits = limits
        self.outcome = outcome
    }
}

let H = "Host: example.com\r\n"

let requestCases: [RequestCase] = [
    // Valid requests
    .init("simple GET", "GET / HTTP/1.1\r\n\(H)\r\n",
          .ok(.init(method: .get, target: "/", minor: 1, framing: BodyFraming.none, keepAlive: true, upgrade: false,
                    expectContinue: false, hop: [], fields: ["Host: example.com"]))),
    .init("POST with Content-Length, body not part of head", "POST /submit?x=1 HTTP/1.1\r\n\(H)Content-Length: 5\r\n\r\nhello",
          .ok(.init(method: .post, target: "/submit?x=1", framing: .contentLength(5), headEndsAt: "hello"))),
    .init("Content-Length 0", "PUT /a HTTP/1.1\r\n\(H)Content-Length: 0\r\n\r\n",
          .ok(.init(method: .put, framing: .contentLength(0)))),
    .init("Content-Length with leading zeros", "POST / HTTP/1.1\r\n\(H)Content-Length: 007\r\n\r\n",
          .ok(.init(framing: .contentLength(7)))),
    .init("largest Content-Length", "POST / HTTP/1.1\r\n\(H)Content-Length: 18446744073709551615\r\n\r\n",
          .ok(.init(framing: .contentLength(UInt64.max)))),
    .init("identical Content-Length repeats are refused", "POST / HTTP/1.1\r\n\(H)Content-Length: 5\r\nContent-Length: 5\r\n\r\n",
          .error(.duplicateContentLength, .needle("Content-Length", nth: 1))),
    .init("identical Content-Length list is refused", "POST / HTTP/1.1\r\n\(H)Content-Length: 5 ,5,  5\r\n\r\n",
          .error(.badContentLength, .needle("5 ,", plus: 1))),
    .init("Content-Length list 1000,1000", "POST / HTTP/1.1\r\n\(H)Content-Length: 1000,1000\r\n\r\n",
          .error(.badContentLength, .needle(","))),
    .init("Content-Length list 5, 5", "POST / HTTP/1.1\r\n\(H)Content-Length: 5, 5\r\n\r\n",
          .error(.badContentLength, .needle(","))),
    .init("Content-Length leading comma", "POST / HTTP/1.1\r\n\(H)Content-Length: ,5\r\n\r\n",
          .error(.badContentLength, .needle(","))),
    .init("Content-Length trailing comma", "POST / HTTP/1.1\r\n\(H)Content-Length: 5,\r\n\r\n",
          .error(.badContentLength, .needle(","))),
    .init("Transfer_Encoding imitates a framing field", "POST / HTTP/1.1\r\n\(H)Transfer_Encoding: chunked\r\n\r\n",
          .error(.framingHeaderLookalike, .needle("Transfer_Encoding"))),
    .init("Content_Length imitates a framing field", "POST / HTTP/1.1\r\n\(H)Content_Length: 5\r\n\r\nhello",
          .error(.framingHeaderLookalike, .needle("Content_Length"))),
    .init("Transfer---Encoding imitates a framing field", "POST / HTTP/1.1\r\n\(H)Transfer---Encoding: chunked\r\n\r\n",
          .error(.framingHeaderLookalike, .needle("Transfer---Encoding"))),
    .init("contentlength imitates a framing field", "POST / HTTP/1.1\r\n\(H)CONTENTLENGTH: 5\r\n\r\n",
          .error(.framingHeaderLookalike, .needle("CONTENTLENGTH"))),
    .init("look-alikes are refused even when underscores are allowed", "POST / HTTP/1.1\r\n\(H)transfer_encoding: chunked\r\n\r\n",
          limits: HeadLimits(underscores: .allow), .error(.framingHeaderLookalike, .needle("transfer_encoding"))),
    .init("a name with an underscore is refused by default", "GET / HTTP/1.1\r\n\(H)X_Custom: 1\r\n\r\n",
          .error(.underscoreInHeaderName, .needle("X_Custom"))),
    .init("an underscore after the first word", "GET / HTTP/1.1\r\n\(H)X-Very-Long-Name_Here: 1\r\n\r\n",
          .error(.underscoreInHeaderName, .needle("X-Very"))),
    .init("a name with an underscore is dropped when configured", "GET / HTTP/1.1\r\n\(H)X_Custom: 1\r\nX-Ok: 2\r\n\r\n",
          limits: HeadLimits(underscores: .drop), .ok(.init(hop: ["X_Custom"], fields: ["Host: example.com", "X_Custom: 1", "X-Ok: 2"]))),
    .init("a name with an underscore is allowed when configured", "GET / HTTP/1.1\r\n\(H)X_Custom: 1\r\n\r\n",
          limits: HeadLimits(underscores: .allow), .ok(.init(hop: [], fields: ["Host: example.com", "X_Custom: 1"]))),
    .init("a name like Content-Lengths is not a look-alike", "GET / HTTP/1.1\r\n\(H)Content-Lengths: 1\r\n\r\n",
          .ok(.init(framing: BodyFraming.none))),
    .init("chunked request", "POST / HTTP/1.1\r\n\(H)Transfer-Encoding: chunked\r\n\r\n",
          .ok(.init(framing: .chunked))),
    .init("transfer coding is case-insensitive", "POST / HTTP/1.1\r\n\(H)transfer-encoding: ChUnKeD \r\n\r\n",
          .ok(.init(framing: .chunked, fields: ["Host: example.com", "transfer-encoding: ChUnKeD"]))),
    .init("HTTP/1.0 closes by default", "GET / HTTP/1.0\r\n\r\n",
          .ok(.init(minor: 0, keepAlive: false))),
    .init("HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
          .ok(.init(minor: 0, keepAlive: true, hop: ["Connection"]))),
    .init("HTTP/1.0 keep-alive with Keep-Alive field", "GET / HTTP/1.0\r\n\(H)Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n",
          .ok(.init(minor: 0, keepAlive: true, hop: ["Connection", "Keep-Alive"]))),
    .init("Connection: close", "GET / HTTP/1.1\r\n\(H)Connection: close\r\n\r\n",
          .ok(.init(keepAlive: false, hop: ["Connection"]))),
    .init("close wins over keep-alive", "GET / HTTP/1.1\r\n\(H)Connection: keep-alive, CLOSE\r\n\r\n",
          .ok(.init(keepAlive: false))),
    .init("Expect: 100-continue", "PUT /f HTTP/1.1\r\n\(H)Content-Length: 3\r\nExpect: 100-Continue\r\n\r\n",
          .ok(.init(framing: .contentLength(3), expectContinue: true, hop: []))),
    .init("other Expect value", "PUT /f HTTP/1.1\r\n\(H)Expect: something\r\n\r\n",
          .ok(.init(expectContinue: false))),
    .init("Upgrade requested", "GET /ws HTTP/1.1\r\n\(H)Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
          .ok(.init(upgrade: true, hop: ["Connection", "Upgrade"]))),
    .init("Upgrade field without Connection token", "GET /ws HTTP/1.1\r\n\(H)Upgrade: websocket\r\n\r\n",
          .ok(.init(upgrade: false, hop: ["Upgrade"]))),
    .init("Connection token without Upgrade field", "GET /ws HTTP/1.1\r\n\(H)Connection: upgrade\r\n\r\n",
          .ok(.init(upgrade: false))),
    .init("Connection names another field", "GET / HTTP/1.1\r\n\(H)X-Foo: 1\r\nConnection: x-foo, keep-alive\r\nX-Bar: 2\r\n\r\n",
          .ok(.init(keepAlive: true, hop: ["X-Foo", "Connection"]))),
    .init("Connection cannot strip framing or Host", "POST / HTTP/1.1\r\n\(H)Content-Length: 1\r\nConnection: Content-Length, Host\r\n\r\n",
          .ok(.init(framing: .contentLength(1), hop: ["Connection"]))),
    .init("hop-by-hop fields", "GET / HTTP/1.1\r\n\(H)TE: trailers\r\nTrailer: X\r\nProxy-Connection: keep-alive\r\nKeep-Alive: 1\r\n\r\n",
          .ok(.init(hop: ["TE", "Trailer", "Proxy-Connection", "Keep-Alive"]))),
    .init("pipelined: the head ends at the first request", "GET /1 HTTP/1.1\r\n\(H)\r\nGET /2 HTTP/1.1\r\n\(H)\r\n",
          .ok(.init(target: "/1", headEndsAt: "GET /2"))),
    .init("leading empty lines are skipped", "\r\n\r\nGET / HTTP/1.1\r\n\(H)\r\n",
          .ok(.init(method: .get, target: "/"))),
    .init("OWS around values is trimmed", "GET / HTTP/1.1\r\nHost:\t example.com \t \r\nX-A:b c\r\nX-Empty:\r\nX-Blank:   \r\n\r\n",
          .ok(.init(fields: ["Host: example.com", "X-A: b c", "X-Empty: ", "X-Blank: "]))),
    .init("unknown method token", "PURGE /cache HTTP/1.1\r\n\(H)\r\n", .ok(.init(method: .other, target: "/cache"))),
    .init("methods are case-sensitive", "get / HTTP/1.1\r\n\(H)\r\n", .ok(.init(method: .other))),
    .init("OPTIONS asterisk", "OPTIONS * HTTP/1.1\r\n\(H)\r\n", .ok(.init(method: .options, target: "*"))),
    .init("CONNECT authority", "CONNECT example.com:443 HTTP/1.1\r\n\(H)\r\n", .ok(.init(method: .connect, target: "example.com:443"))),
    .init("DELETE absolute-form", "DELETE http://example.com/a?b#c HTTP/1.1\r\n\(H)\r\n",
          .ok(.init(method: .delete, target: "http://example.com/a?b#c"))),
    .init("HEAD PATCH TRACE", "TRACE / HTTP/1.1\r\n\(H)\r\n", .ok(.init(method: .trace))),
    .init("field names are classified case-insensitively", "GET / HTTP/1.1\r\nHOST: a\r\nx-forwarded-FOR: 1.2.3.4\r\nCookie: a=b\r\n\r\n",
          .ok(.init(fields: ["HOST: a", "x-forwarded-FOR: 1.2.3.4", "Cookie: a=b"]))),
    .init("exactly maxHeaders fields", "GET / HTTP/1.1\r\n\(H)A: 1\r\nB: 2\r\n\r\n", limits: HeadLimits(maxHeaders: 3),
          .ok(.init(method: .get))),
    .init("target of exactly maxTargetBytes", "GET /23456789 HTTP/1.1\r\n\(H)\r\n", limits: HeadLimits(maxTargetBytes: 10),
          .ok(.init(target: "/23456789"))),
    .init("head of exactly maxHeadBytes", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", limits: HeadLimits(maxHeadBytes: 27),
          .ok(.init(method: .get))),
    .init("missing Host allowed when not required", "GET / HTTP/1.1\r\n\r\n", limits: HeadLimits(requireHost: false),
          .ok(.init(method: .get))),
    .init("incomplete head", "GET / HTTP/1.1\r\nHost: a\r\n", .incomplete),
    .init("incomplete request line", "GET /abc", .incomplete),
    .init("empty input", "", .incomplete),

    // Framing errors
    .init("Content-Length and Transfer-Encoding", "POST / HTTP/1.1\r\n\(H)Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
          .error(.contentLengthAndTransferEncoding, .needle("Transfer-Encoding"))),
    .init("Transfer-Encoding then Content-Length", "POST / HTTP/1.1\r\n\(H)Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
          .error(.contentLengthAndTransferEncoding, .needle("Content-Length"))),
    .init("Content-Length not digits", "POST / HTTP/1.1\r\n\(H)Content-Length: 5a\r\n\r\n",
          .error(.badContentLength, .needle("a\r\n\r\n"))),
    .init("Content-Length with sign", "POST / HTTP/1.1\r\n\(H)Content-Length: +5\r\n\r\n",
          .error(.badContentLength, .needle("+"))),
    .init("Content-Length negative", "POST / HTTP/1.1\r\n\(H)Content-Length: -1\r\n\r\n",
          .error(.badContentLength, .needle("-1"))),
    .init("Content-Length with inner space", "POST / HTTP/1.1\r\n\(H)Content-Length: 1 2\r\n\r\n",
          .error(.badContentLength, .needle("1 2", plus: 1))),
    .init("Content-Length overflow", "POST / HTTP/1.1\r\n\(H)Content-Length: 18446744073709551616\r\n\r\n",
          .error(.badContentLength, .needle("6\r\n\r\n"))),
    .init("Content-Length empty", "POST / HTTP/1.1\r\n\(H)Content-Length: \r\n\r\n",
          .error(.badContentLength, .needle("\r\n\r\n"))),
    .init("Content-Length only commas", "POST / HTTP/1.1\r\n\(H)Content-Length: ,\r\n\r\n",
          .error(.badContentLength, .needle(","))),
    .init("Content-Length repeated with another value", "POST / HTTP/1.1\r\n\(H)Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
          .error(.duplicateContentLength, .needle("Content-Length", nth: 1))),
    .init("Content-Length list with different values", "POST / HTTP/1.1\r\n\(H)Content-Length: 5, 6\r\n\r\n",
          .error(.badContentLength, .needle(","))),
    .init("Transfer-Encoding gzip only", "POST / HTTP/1.1\r\n\(H)Transfer-Encoding: gzip\r\n\r\n",
          .error(.transferEncodingNotChunkedLast, .needle("gzip"))),
    .init("Transfer-Encoding chunked not last", "POST / HTTP/1.1\r\n\(H)Transfer-Encoding: chunked, gzip\r\n\r\n",
          .error(.transferEncodingNotChunkedLast, .needle("gzip"))),
    .init("Transfer-Encoding not last across fields", "POST / HTTP/1.1\r\n\(H)Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
          .error(.transferEncodingNotChunkedLast, .needle("identity"))),
    .init("Transfer-Encoding gzip, chunked is unsupported", "POST / HTTP/1.1\r\n\(H)Transfer-Encoding: gzip, chunked\r\n\r\n",
          .error(.unsupportedTransferCoding, .needle("gzip"))),
    .init("Transfer-Encoding chunked twice", "POST / HTTP/1.1\r\n\(H)Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
          .error(.badTransferEncoding, .needle("chunked", nth: 1))),
    .init("Transfer-Encoding empty", "POST / HTTP/1.1\r\n\(H)Transfer-Encoding: \r\n\r\n",
          .error(.badTransferEncoding, .needle("Transfer-Encoding"))),
    .init("Transfer-Encoding near miss", "POST / HTTP/1.1\r\n\(H)Transfer-Encoding: chunked-x\r\n\r\n",
          .error(.transferEncodingNotChunkedLast, .needle("chunked-x"))),
    .init("Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
          .error(.transferEncodingInHTTP10, .needle("Transfer-Encoding"))),

    // Field syntax errors
    .init("obs-fold", "GET / HTTP/1.1\r\n\(H)X-A: 1\r\n  continued\r\n\r\n", .error(.obsFold, .needle("  continued"))),
    .init("obs-fold with tab", "GET / HTTP/1.1\r\n\(H)X-A: 1\r\n\tcontinued\r\n\r\n", .error(.obsFold, .needle("\tcontinued"))),
    .init("whitespace before first field", "GET / HTTP/1.1\r\n \(H)\r\n", .error(.obsFold, .offset(16))),
    .init("space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", .error(.spaceBeforeColon, .needle(" :"))),
    .init("tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", .error(.spaceBeforeColon, .needle("\t:"))),
    .init("empty field name", "GET / HTTP/1.1\r\n\(H): a\r\n\r\n", .error(.emptyHeaderName, .needle(": a"))),
    .init("non-token in name", "GET / HTTP/1.1\r\n\(H)X(a): 1\r\n\r\n", .error(.badHeaderName, .needle("("))),
    .init("non-token first byte of name", "GET / HTTP/1.1\r\n\(H)@x: 1\r\n\r\n", .error(.badHeaderName, .needle("@"))),
    .init("field line without colon", "GET / HTTP/1.1\r\n\(H)NoColon\r\n\r\n", .error(.missingColon, .needle("\r\n\r\n"))),
    .init("control char in value", "GET / HTTP/1.1\r\n\(H)X-A: a\u{01}b\r\n\r\n", .error(.controlCharInValue, .needle("\u{01}"))),
    .init("NUL in value", "GET / HTTP/1.1\r\n\(H)X-A: a\u{00}b\r\n\r\n", .error(.controlCharInValue, .needle("\u{00}"))),
    .init("DEL in value", "GET / HTTP/1.1\r\n\(H)X-A: a\u{7F}\r\n\r\n", .error(.controlCharInValue, .needle("\u{7F}"))),
    .init("obs-text in value is allowed", bytes: Array("GET / HTTP/1.1\r\n\(H)X-A: caf".utf8) + [0xC3, 0xA9, 0xFF] + Array("\r\n\r\n".utf8),
          .ok(.init(method: .get))),
    .init("bare LF ends request line", "GET / HTTP/1.1\n\(H)\r\n", .error(.bareLF, .offset(14))),
    .init("bare LF ends field line", "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", .error(.bareLF, .needle("\nX"))),
    .init("bare LF ends head", "GET / HTTP/1.1\r\n\(H)\n", .error(.bareLF, .needle("\n", nth: 2))),
    .init("bare LF before request line", "\nGET / HTTP/1.1\r\n\(H)\r\n", .error(.bareLF, .offset(0))),
    .init("CR without LF in field", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", .error(.badLineEnding, .needle("X"))),
    .init("CR without LF at end", "GET / HTTP/1.1\r\n\(H)\rX", .error(.badLineEnding, .needle("X"))),
    .init("duplicate Host", "GET / HTTP/1.1\r\n\(H)host: other\r\n\r\n", .error(.duplicateHost, .needle("host"))),
    .init("missing Host in HTTP/1.1", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", .error(.missingHost, .needle("\r\n\r\n", plus: 2))),

    // Request line errors
    .init("two spaces after method", "GET  / HTTP/1.1\r\n\(H)\r\n", .error(.badRequestLine, .offset(4))),
    .init("two spaces before version", "GET /  HTTP/1.1\r\n\(H)\r\n", .error(.badRequestLine, .offset(6))),
    .init("trailing space after version", "GET / HTTP/1.1 \r\n\(H)\r\n", .error(.badRequestLine, .offset(14))),
    .init("leading space", " GET / HTTP/1.1\r\n\(H)\r\n", .error(.badRequestLine, .offset(0))),
    .init("tab separator", "GET\t/ HTTP/1.1\r\n\(H)\r\n", .error(.badRequestLine, .offset(3))),
    .init("missing version", "GET /\r\n\(H)\r\n", .error(.badRequestLine, .offset(5))),
    .init("missing target", "GET HTTP/1.1\r\n\(H)\r\n", .error(.badRequestLine, .offset(12))),
    .init("HTTP/2.0", "GET / HTTP/2.0\r\n\(H)\r\n", .error(.badVersion, .offset(11))),
    .init("HTTP/3.0", "GET / HTTP/3.0\r\n\(H)\r\n", .error(.badVersion, .offset(11))),
    .init("HTTP/1.2", "GET / HTTP/1.2\r\n\(H)\r\n", .error(.badVersion, .offset(13))),
    .init("HTTP/0.9 with header fields is malformed, not a version", "GET / HTTP/0.9\r\n\(H)\r\n", .error(.http09Request, .offset(11))),
    .init("HTTP/1.10", "GET / HTTP/1.10\r\n\(H)\r\n", .error(.badRequestLine, .offset(14))),
    .init("HTTP/11.1", "GET / HTTP/11.1\r\n\(H)\r\n", .error(.badRequestLine, .offset(12))),
    .init("lowercase protocol", "GET / http/1.1\r\n\(H)\r\n", .error(.badRequestLine, .offset(6))),
    .init("HTTP/2 connection preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", .error(.http2Preface, .offset(0))),
    .init("non-token method", "G@T / HTTP/1.1\r\n\(H)\r\n", .error(.badMethod, .offset(1))),
    .init("non-token method start", "\"GET / HTTP/1.1\r\n\(H)\r\n", .error(.badMethod, .offset(0))),
    .init("control char in target", "GET /a\u{01}b HTTP/1.1\r\n\(H)\r\n", .error(.badTarget, .offset(6))),
    .init("DEL in target", "GET /a\u{7F} HTTP/1.1\r\n\(H)\r\n", .error(.badTarget, .offset(6))),
    .init("five leading empty lines", "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\(H)\r\n", .error(.badRequestLine, .offset(9))),

    // Limits
    .init("target too long, detected before the head is complete", "GET /2345678901", limits: HeadLimits(maxTargetBytes: 10),
          .error(.targetTooLong, .offset(14))),
    .init("target too long", "GET /23456789012 HTTP/1.1\r\n\(H)\r\n", limits: HeadLimits(maxTargetBytes: 10),
          .error(.targetTooLong, .offset(14))),
    .init("head too large, detected before the head is complete", "GET / HTTP/1.1\r\nHost: a\r\nX-Long: aaaaaaaaaaaaaaa",
          limits: HeadLimits(maxHeadBytes: 32), .error(.headTooLarge, .offset(32))),
    .init("head one byte too large", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", limits: HeadLimits(maxHeadBytes: 26),
          .error(.headTooLarge, .offset(26))),
    .init("too many fields", "GET / HTTP/1.1\r\n\(H)A: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits: HeadLimits(maxHeaders: 3),
          .error(.tooManyHeaders, .needle("C: 3"))),
    .init("an earlier error wins over the size limit", "GET / HTTP/1.1\r\nBad Name: 1\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
          limits: HeadLimits(maxHeadBytes: 40), .error(.spaceBeforeColon, .offset(19))),
]

@Test(arguments: requestCases)
func requestCase(_ c: RequestCase) {
    let got = parseRequestEveryWay(c.input, limits: c.limits)
    switch c.outcome {
    case .incomplete:
        #expect(got.status == .incomplete)
    case .error(let code, let at):
        let want = HTTPParseError(code, at: at.resolve(c.input))
        #expect(got.status == .error(want))
    case .ok(let w):
        let headLength = w.headEndsAt.map { HTTP1Tests.offset(of: $0, in: c.input) } ?? c.input.count
        #expect(got.status == .complete(headLength: headLength))
        guard case .complete = got.status else { return }
        if let v = w.method { #expect(got.method == v) }
        if let v = w.target { #expect(got.target == v) }
        if let v = w.minor { #expect(got.versionMinor == v) }
        if let v = w.framing { #expect(got.framing == v) }
        if let v = w.keepAlive { #expect(got.keepAlive == v) }
        if let v = w.upgrade { #expect(got.upgrade == v) }
        if let v = w.expectContinue { #expect(got.expectContinue == v) }
        if let v = w.hop { #expect(got.headers.filter(\.hopByHop).map(\.name) == v) }
        if let v = w.fields { #expect(got.headers.map { "\($0.name): \($0.value)" } == v) }
    }
}

@Test func errorStatusesAndMessages() {
    #expect(HTTPParseError(.badVersion, at: 0).status == 505)
    #expect(HTTPParseError(.http2Preface, at: 0).status == 505)
    #expect(HTTPParseError(.targetTooLong, at: 0).status == 414)
    #expect(HTTPParseError(.headTooLarge, at: 0).status == 431)
    #expect(HTTPParseError(.tooManyHeaders, at: 0).status == 431)
    #expect(HTTPParseError(.unsupportedTransferCoding, at: 0).status == 501)
    #expect(HTTPParseError(.contentLengthAndTransferEncoding, at: 0).status == 400)
    #expect(HTTPParseError(.contentLengthAndTransferEncoding, at: 0).message == "Content-Length and Transfer-Encoding both present")
    #expect(HTTPParseError(.obsFold, at: 7).description == "obsFold at byte 7: Obsolete line folding")
}

@Test func fieldKindsAreClassified() {
    let input = Array(("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nconnection: x\r\nKeep-Alive: 1\r\nProxy-Connection: 1\r\n"
        + "TE: t\r\nTrailer: t\r\nUpgrade: u\r\nCookie: c=1\r\nExpect: e\r\nX-Forwarded-For: f\r\nX-Forwarded-Proto: p\r\n"
        + "Set-Cookie: s\r\nHosts: no\r\nX-Forwarded-Fox: no\r\n\r\n").utf8)
    let got = parseRequestEveryWay(input)
    #expect(got.headers.map(\.kind) == [
        .host, .contentLength, .connection, .keepAlive, .proxyConnection, .te, .trailer, .upgrade, .cookie, .expect,
        .xForwardedFor, .xForwardedProto, .setCookie, .other, .other,
    ])
}

@Test func methodsAreClassified() {
    for (name, method) in [("GET", HTTPMethod.get), ("HEAD", .head), ("POST", .post), ("PUT", .put), ("DELETE", .delete),
                           ("OPTIONS", .options), ("PATCH", .patch), ("CONNECT", .connect), ("TRACE", .trace), ("GETS", .other),
                           ("POT", .other)] {
        let got = parseRequestEveryWay(Array("\(name) / HTTP/1.1\r\nHost: a\r\n\r\n".utf8))
        #expect(got.method == method, "\(name)")
        #expect(got.methodName == name)
    }
    #expect(HTTPMethod.get.isIdempotent && HTTPMethod.put.isIdempotent && HTTPMethod.delete.isIdempotent)
    #expect(HTTPMethod.head.isIdempotent && HTTPMethod.options.isIdempotent && HTTPMethod.trace.isIdempotent)
    #expect(!HTTPMethod.post.isIdempotent && !HTTPMethod.patch.isIdempotent && !HTTPMethod.connect.isIdempotent && !HTTPMethod.other.isIdempotent)
}

@Test func parserIsReusedAcrossPipelinedRequests() {
    let input = Array("GET /1 HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r\nPOST /2 HTTP/1.1\r\nHost: b\r\nContent-Length: 2\r\n\r\nhiGET /3 HTTP/1.0\r\n\r\n".utf8)
    var parser = HeadParser()
    var head = RequestHead()
    var start = 0
    var targets: [String] = []
    input.withUnsafeBytes { all in
        while start < all.count {
            let buf = UnsafeRawBufferPointer(rebasing: all[start...])
            guard case .complete(let n) = parser.parseRequest(buf, into: &head) else {
                Issue.record("not complete at \(start)")
                return
            }
            targets.append(head.target(source: buf))
            if case .contentLength(let body) = head.framing { start += Int(body) }
            start += n
            parser.reset()
        }
    }
    #expect(targets == ["/1", "/2", "/3"])
    #expect(head.headers.count == 0 && head.versionMinor == 0 && !head.keepAlive)
    #expect(head.headers.capacity >= 2)
}

@Test(arguments: [
    ("", FetchMetadata.absent),
    ("Sec-Fetch-Mode: navigate\r\n", .navigation),
    ("sec-fetch-site: same-origin\r\nSEC-FETCH-DEST: Document\r\n", .navigation),
    ("Sec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: no-cors\r\nSec-Fetch-Dest: image\r\n", .subresource),
    ("Sec-Fetch-Mode: cors\r\n", .subresource),
    ("Sec-Fetch-Mode: navigated\r\n", .subresource),
    ("Sec-Fetch-Moda: navigate\r\n", .subresource),
    ("Sec-Fetch: navigate\r\nX-Sec-Fetch-Mode: navigate\r\n", .absent),
])
func fetchMetadata(_ fields: String, _ expected: FetchMetadata) {
    let input = Array("GET / HTTP/1.1\r\nHost: a\r\n\(fields)\r\n".utf8)
    var parser = HeadParser()
    var head = RequestHead()
    input.withUnsafeBytes { s in
        #expect(parser.parseRequest(s, into: &head) == .complete(headLength: input.count))
        #expect(head.fetchMetadata(source: s) == expected)
    }
}

@Test func cookies() {
    let input = Array("GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1; dynsoftup=abc-123 ;b=\"quoted\"\r\nCookie: transition=77;empty=\r\n\r\n".utf8)
    var parser = HeadParser()
    var head = RequestHead()
    input.withUnsafeBytes { s in
        #expect(parser.parseRequest(s, into: &head) == .complete(headLength: input.count))
        #expect(head.cookie(named: "dynsoftup", source: s) == "abc-123")
        #expect(head.cookie(named: "a", source: s) == "1")
        #expect(head.cookie(named: "b", source: s) == "quoted")
        #expect(head.cookie(named: "transition", source: s) == "77")
        #expect(head.cookie(named: "empty", source: s) == "")
        #expect(head.cookie(named: "Dynsoftup", source: s) == nil)
        #expect(head.cookie(named: "dynsoft", source: s) == nil)
        #expect(head.cookie(named: "missing", source: s) == nil)
        #expect(head.headerValue(.host, source: s) == "a")
        #expect(head.headerValue(.cookie, source: s) == "a=1; dynsoftup=abc-123 ;b=\"quoted\"")
        #expect(head.headerValue(.expect, source: s) == nil)
    }
}

@Test func largeHeadAtDefaultLimits() {
    // 99 fields plus Host: exactly the default maximum of 100 fields.
    var text = "GET /" + String(repeating: "a", count: 8191) + " HTTP/1.1\r\nHost: a\r\n"
    for i in 0..<99 { text += "X-\(i): value\r\n" }
    text += "\r\n"
    var parser = HeadParser()
    var head = RequestHead()
    let bytes = Array(text.utf8)
    #expect(bytes.withUnsafeBytes { parser.parseRequest($0, into: &head) } == .complete(headLength: bytes.count))
    #expect(head.headers.count == 100)

    // One more field is one too many.
    let more = Array(text.utf8.dropLast(2)) + Array("X-100: v\r\n\r\n".utf8)
    parser.reset()
    let status = more.withUnsafeBytes { parser.parseRequest($0, into: &head) }
    #expect(status == .error(HTTPParseError(.tooManyHeaders, at: bytes.count - 2)))
}

@Test func extremeLimitsDoNotOverflow() {
    // Found by the fuzzer: a target limit of Int.max overflowed the limit arithmetic.
    var limits = HeadLimits(maxTargetBytes: Int.max, maxHeaders: Int.max)
    let input = Array("GET /abc HTTP/1.1\r\nHost: a\r\n\r\n".utf8)
    #expect(parseRequestEveryWay(input, limits: limits).status == .complete(headLength: input.count))
    limits.maxTargetBytes = 0  // public var: bypasses the initializer's clamping
    #expect(parseRequestEveryWay(input, limits: limits).status == .error(HTTPParseError(.targetTooLong, at: 4)))
    limits.maxHeadBytes = -1
    #expect(parseRequestEveryWay(input, limits: limits).status == .error(HTTPParseError(.headTooLarge, at: 0)))
}
