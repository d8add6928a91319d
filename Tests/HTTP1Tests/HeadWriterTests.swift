import Testing
@testable import HTTP1

func writtenRequest(_ text: String, clientAddress: String = "10.0.0.7", tunnel: Bool = false) -> String {
    let input = Array(text.utf8)
    var parser = HeadParser()
    var head = RequestHead()
    var out: [UInt8] = Array("prefix|".utf8)
    input.withUnsafeBytes { s in
        guard case .complete = parser.parseRequest(s, into: &head) else {
            Issue.record("request did not parse")
            return
        }
        HeadWriter.appendRequest(head, source: s, clientAddress: clientAddress, tunnel: tunnel, to: &out)
    }
    return String(decoding: out, as: UTF8.self)
}

func writtenResponse(_ text: String, method: HTTPMethod = .get, extra: [String] = [], close: Bool = false, clientMinor: Int = 1) -> String {
    let input = Array(text.utf8)
    var parser = HeadParser()
    var head = ResponseHead()
    var out: [UInt8] = []
    input.withUnsafeBytes { s in
        guard case .complete = parser.parseResponse(s, requestMethod: method, into: &head) else {
            Issue.record("response did not parse")
            return
        }
        HeadWriter.appendResponse(head, source: s, extraHeaders: extra, close: close, clientVersionMinor: clientMinor, to: &out)
    }
    return String(decoding: out, as: UTF8.self)
}

@Test func requestDropsHopByHopAndAddsForwardingFields() {
    let got = writtenRequest(
        "GET /a?b HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: 5\r\nX-Secret: s\r\n"
            + "X-Forwarded-Proto: https\r\nAccept:  */* \r\nTE: trailers\r\nUpgrade: h2c\r\n\r\nBODY")
    #expect(got == "prefix|GET /a?b HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n"
        + "X-Forwarded-For: 10.0.0.7\r\nX-Forwarded-Proto: http\r\n\r\n")
}

@Test func requestAppendsToExistingForwardedFor() {
    let got = writtenRequest(
        "POST /p HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nHost: h\r\nx-forwarded-for: 2.2.2.2, 3.3.3.3\r\nContent-Length: 2\r\n\r\nhi",
        clientAddress: "::1")
    #expect(got == "prefix|POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n"
        + "X-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, ::1\r\nX-Forwarded-Proto: http\r\n\r\n")
}

@Test func requestFromHTTP10IsForwardedAsHTTP11() {
    let got = writtenRequest("GET / HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n")
    #expect(got == "prefix|GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.7\r\nX-Forwarded-Proto: http\r\n\r\n")
}

@Test func requestForTunnelKeepsUpgrade() {
    let got = writtenRequest(
        "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n", tunnel: true)
    #expect(got == "prefix|GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\nConnection: upgrade\r\n"
        + "X-Forwarded-For: 10.0.0.7\r\nX-Forwarded-Proto: http\r\n\r\n")
}

@Test func responseDropsHopByHopAndAddsCookies() {
    let got = writtenResponse(
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nSet-Cookie: a=1\r\n\r\nhello",
        extra: ["Set-Cookie: dynsoftup=u1", "Set-Cookie: transition=42"])
    #expect(got == "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSet-Cookie: a=1\r\nSet-Cookie: dynsoftup=u1\r\n"
        + "Set-Cookie: transition=42\r\n\r\n")
}

@Test func responseWithClose() {
    let got = writtenResponse("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", close: true)
    #expect(got == "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

@Test func responseToHTTP10ClientKeepingItsSession() {
    let got = writtenResponse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", clientMinor: 0)
    #expect(got == "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n")
    let closing = writtenResponse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", close: true, clientMinor: 0)
    #expect(closing == "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

@Test func responseFromHTTP10BackendIsWrittenAsHTTP11WithStandardReason() {
    let got = writtenResponse("HTTP/1.0 201\r\nContent-Length: 0\r\n\r\n")
    #expect(got == "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
}

@Test func switchingProtocolsKeepsUpgrade() {
    let got = writtenResponse(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n")
    #expect(got == "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: x\r\nConnection: upgrade\r\n\r\n")
}

@Test func errorResponses() {
    let got = String(decoding: HeadWriter.errorResponse(status: 431, message: "Request header fields too large"), as: UTF8.self)
    #expect(got == "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\nContent-Length: 32\r\n"
        + "Connection: close\r\n\r\nRequest header fields too large\n")
    let open = String(decoding: HeadWriter.errorResponse(status: 503, message: "no cluster", close: false), as: UTF8.self)
    #expect(open == "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nno cluster\n")
    for status in [400, 408, 413, 414, 431, 501, 502, 503, 504, 505] {
        #expect(!HeadWriter.reasonPhrase(status).isEmpty, "\(status)")
    }
    #expect(HeadWriter.reasonPhrase(799) == "")
}

@Test func decimalDigits() {
    for n in [0, 7, 10, 99, 100, 12345, Int.max] {
        var out: [UInt8] = []
        HeadWriter.appendDecimal(n, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == String(n))
    }
}

@Test func contentLengthRepeatsAreForwardedOnce() {
    // Requests accept a single run of digits only; leading zeros leave as the plain number.
    let got = writtenRequest("PUT /x HTTP/1.1\r\nHost: h\r\ncontent-length: 005\r\nX: y\r\n\r\nhello")
    #expect(got == "prefix|PUT /x HTTP/1.1\r\nHost: h\r\ncontent-length: 5\r\nX: y\r\n"
        + "X-Forwarded-For: 10.0.0.7\r\nX-Forwarded-Proto: http\r\n\r\n")
    let merged = writtenResponse("HTTP/1.1 200 OK\r\ncontent-length: 005, 5\r\nX: y\r\nContent-Length: 5\r\n\r\nhello")
    #expect(merged == "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nX: y\r\n\r\n")
    let big = writtenResponse("HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\nContent-Length: 18446744073709551615\r\n\r\n")
    #expect(big == "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n")
    // A 304 carries the length of the representation, not of a body: copied as received.
    let notModified = writtenResponse("HTTP/1.1 304 Not Modified\r\nContent-Length: 0012\r\n\r\n")
    #expect(notModified == "HTTP/1.1 304 Not Modified\r\nContent-Length: 0012\r\n\r\n")
}

@Test func probeRequestIsAValidRequestThatClosesTheConnection() {
    var out: [UInt8] = Array("x".utf8)
    HeadWriter.appendProbeRequest(target: "/healthz?deep=1", host: "[::1]:8080", to: &out)
    let text = String(decoding: out.dropFirst(), as: UTF8.self)
    #expect(text == "GET /healthz?deep=1 HTTP/1.1\r\nHost: [::1]:8080\r\nUser-Agent: switchyard-health\r\nConnection: close\r\n\r\n")
    // Our own parser reads it as a bodiless GET that asks to close.
    var parser = HeadParser()
    var head = RequestHead()
    let status = Array(text.utf8).withUnsafeBytes { parser.parseRequest($0, into: &head) }
    #expect(status == .complete(headLength: text.utf8.count))
    #expect(head.method == .get && !head.keepAlive && head.framing == .none)
}
