import Testing
@testable import HTTP1

struct ResponseCase: Sendable, CustomTestStringConvertible {
    enum Want: Sendable {
        case ok(status: Int, reason: String, framing: BodyFraming, keepAlive: Bool)
        case error(HTTPParseError.Code, At)
    }
    var name: String
    var input: [UInt8]
    var method: HTTPMethod
    var want: Want
    var testDescription: String { name }

    init(_ name: String, _ input: String, method: HTTPMethod = .get, _ want: Want) {
        self.name = name
        self.input = Array(input.utf8)
        self.method = method
        self.want = want
    }
}

let responseCases: [ResponseCase] = [
    .init("200 with Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n",
          .ok(status: 200, reason: "OK", framing: .contentLength(12), keepAlive: true)),
    .init("200 chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
          .ok(status: 200, reason: "OK", framing: .chunked, keepAlive: true)),
    .init("gzip then chunked is forwarded as chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
          .ok(status: 200, reason: "OK", framing: .chunked, keepAlive: true)),
    .init("final coding not chunked reads until close", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
          .ok(status: 200, reason: "OK", framing: .untilClose, keepAlive: false)),
    .init("no framing reads until close", "HTTP/1.1 200 OK\r\nServer: x\r\n\r\n",
          .ok(status: 200, reason: "OK", framing: .untilClose, keepAlive: false)),
    .init("204 has no body", "HTTP/1.1 204 No Content\r\n\r\n",
          .ok(status: 204, reason: "No Content", framing: .none, keepAlive: true)),
    .init("304 has no body despite Content-Length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n",
          .ok(status: 304, reason: "Not Modified", framing: .none, keepAlive: true)),
    .init("100 Continue", "HTTP/1.1 100 Continue\r\n\r\n",
          .ok(status: 100, reason: "Continue", framing: .none, keepAlive: true)),
    .init("101 Switching Protocols", "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
          .ok(status: 101, reason: "Switching Protocols", framing: .none, keepAlive: true)),
    .init("answer to HEAD has no body", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", method: .head,
          .ok(status: 200, reason: "OK", framing: .none, keepAlive: true)),
    .init("chunked answer to HEAD has no body", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", method: .head,
          .ok(status: 200, reason: "OK", framing: .none, keepAlive: true)),
    .init("2xx answer to CONNECT has no body", "HTTP/1.1 200 Connection Established\r\n\r\n", method: .connect,
          .ok(status: 200, reason: "Connection Established", framing: .none, keepAlive: true)),
    .init("no reason, no space", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
          .ok(status: 200, reason: "", framing: .contentLength(0), keepAlive: true)),
    .init("empty reason", "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n",
          .ok(status: 404, reason: "", framing: .contentLength(0), keepAlive: true)),
    .init("reason with spaces and tab", "HTTP/1.1 500 Oh\tno it broke\r\nContent-Length: 0\r\n\r\n",
          .ok(status: 500, reason: "Oh\tno it broke", framing: .contentLength(0), keepAlive: true)),
    .init("HTTP/1.0 closes by default", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n",
          .ok(status: 200, reason: "OK", framing: .contentLength(2), keepAlive: false)),
    .init("HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n",
          .ok(status: 200, reason: "OK", framing: .contentLength(2), keepAlive: true)),
    .init("HTTP/1.0 chunked is faulty framing", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
          .ok(status: 200, reason: "OK", framing: .untilClose, keepAlive: false)),
    .init("Connection: close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n",
          .ok(status: 200, reason: "OK", framing: .contentLength(2), keepAlive: false)),
    .init("several Host fields are not checked in responses", "HTTP/1.1 200 OK\r\nHost: a\r\nHost: b\r\nContent-Length: 0\r\n\r\n",
          .ok(status: 200, reason: "OK", framing: .contentLength(0), keepAlive: true)),
    .init("leading empty line", "\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
          .ok(status: 200, reason: "OK", framing: .contentLength(0), keepAlive: true)),

    .init("Content-Length and Transfer-Encoding", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
          .error(.contentLengthAndTransferEncoding, .needle("Transfer-Encoding"))),
    .init("conflicting Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
          .error(.duplicateContentLength, .needle("4"))),
    .init("chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
          .error(.badTransferEncoding, .needle("chunked", nth: 1))),
    .init("two-digit status", "HTTP/1.1 20 OK\r\n\r\n", .error(.badStatusLine, .offset(11))),
    .init("four-digit status", "HTTP/1.1 2000 OK\r\n\r\n", .error(.badStatusLine, .offset(12))),
    .init("status below 100", "HTTP/1.1 099 OK\r\n\r\n", .error(.badStatusLine, .offset(9))),
    .init("two spaces before status", "HTTP/1.1  200 OK\r\n\r\n", .error(.badStatusLine, .offset(9))),
    .init("HTTP/2 status line", "HTTP/2 200 OK\r\n\r\n", .error(.badVersion, .offset(5))),
    .init("not HTTP", "ICY 200 OK\r\n\r\n", .error(.badStatusLine, .offset(0))),
    .init("control char in reason", "HTTP/1.1 200 O\u{01}K\r\n\r\n", .error(.badStatusLine, .offset(14))),
    .init("bare LF in status line", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", .error(.bareLF, .offset(15))),
    .init("obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", .error(.obsFold, .needle(" b"))),
    .init("space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", .error(.spaceBeforeColon, .needle(" :"))),
]

@Test(arguments: responseCases)
func responseCase(_ c: ResponseCase) {
    let got = parseResponseEveryWay(c.input, method: c.method)
    switch c.want {
    case .error(let code, let at):
        #expect(got.status == .error(HTTPParseError(code, at: at.resolve(c.input))))
    case .ok(let status, let reason, let framing, let keepAlive):
        #expect(got.status == .complete(headLength: c.input.count))
        #expect(got.code == status)
        #expect(got.reason == reason)
        #expect(got.framing == framing)
        #expect(got.keepAlive == keepAlive)
    }
}

@Test func interimResponseThenFinal() {
    let input = Array("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n".utf8)
    var parser = HeadParser()
    var head = ResponseHead()
    input.withUnsafeBytes { all in
        guard case .complete(let n) = parser.parseResponse(all, requestMethod: .put, into: &head) else {
            Issue.record("interim head not complete")
            return
        }
        #expect(head.status == 100 && head.framing == .none)
        parser.reset()
        let rest = UnsafeRawBufferPointer(rebasing: all[n...])
        #expect(parser.parseResponse(rest, requestMethod: .put, into: &head) == .complete(headLength: rest.count))
        #expect(head.status == 201 && head.framing == .contentLength(0) && head.keepAlive)
        #expect(head.headers.count == 2 && head.headers[1].hopByHop)
        #expect(head.headerValue(.contentLength, source: rest) == "0")
    }
}
