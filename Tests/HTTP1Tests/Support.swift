import Testing
@testable import HTTP1

/// Everything a parse produced, as plain values, so results of different feeds can be compared.
struct HeaderSummary: Equatable, CustomStringConvertible {
    var name: String
    var value: String
    var kind: HeaderKind
    var hopByHop: Bool
    var description: String { "\(name): \(value) [\(kind)\(hopByHop ? ", hop" : "")]" }
}

struct RequestSummary: Equatable {
    var status: ParseStatus
    var method: HTTPMethod = .other
    var methodName = ""
    var target = ""
    var versionMinor = 0
    var headers: [HeaderSummary] = []
    var framing: BodyFraming = .none
    var keepAlive = false
    var upgrade = false
    var expectContinue = false
}

struct ResponseSummary: Equatable {
    var status: ParseStatus
    var code = 0
    var reason = ""
    var versionMinor = 0
    var headers: [HeaderSummary] = []
    var framing: BodyFraming = .none
    var keepAlive = false
}

/// Calls `body` with a private, exactly sized copy of `bytes`, so any read past the end is a real overread.
func withExactCopy<R>(_ bytes: ArraySlice<UInt8>, _ body: (UnsafeRawBufferPointer) -> R) -> R {
    let p = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
    defer { p.deallocate() }
    if !bytes.isEmpty { bytes.withUnsafeBytes { p.copyMemory(from: $0) } }
    return body(UnsafeRawBufferPointer(p))
}

func summarize(_ head: RequestHead, _ status: ParseStatus, _ src: [UInt8]) -> RequestSummary {
    guard case .complete = status else { return RequestSummary(status: status) }
    return src.withUnsafeBytes { s in
        RequestSummary(
            status: status, method: head.method, methodName: head.methodName(source: s), target: head.target(source: s),
            versionMinor: head.versionMinor, headers: summarize(head.headers, s), framing: head.framing,
            keepAlive: head.keepAlive, upgrade: head.upgrade, expectContinue: head.expectContinue)
    }
}

func summarize(_ headers: [HeaderField], _ s: UnsafeRawBufferPointer) -> [HeaderSummary] {
    headers.map {
        HeaderSummary(
            name: String(decoding: UnsafeRawBufferPointer(rebasing: s[$0.nameRange]), as: UTF8.self),
            value: String(decoding: UnsafeRawBufferPointer(rebasing: s[$0.valueRange]), as: UTF8.self),
            kind: $0.kind, hopByHop: $0.hopByHop)
    }
}

/// Feeds `input` to a fresh parser as the given growing prefixes (the last one is the whole input).
func parseRequest(_ input: [UInt8], prefixes: [Int], limits: HeadLimits) -> RequestSummary {
    var parser = HeadParser(limits: limits)
    var status = ParseStatus.incomplete
    var head = RequestHead()
    for n in prefixes {
        status = withExactCopy(input[0..<n]) { parser.parseRequest($0, into: &head) }
        if status != .incomplete { break }
    }
    // The parser repeats a final answer.
    if status != .incomplete {
        let again = withExactCopy(input[...]) { parser.parseRequest($0, into: &head) }
        #expect(again == status)
    }
    return summarize(head, status, input)
}

func parseResponse(_ input: [UInt8], prefixes: [Int], method: HTTPMethod, limits: HeadLimits) -> ResponseSummary {
    var parser = HeadParser(limits: limits)
    var status = ParseStatus.incomplete
    var head = ResponseHead()
    for n in prefixes {
        status = withExactCopy(input[0..<n]) { parser.parseResponse($0, requestMethod: method, into: &head) }
        if status != .incomplete { break }
    }
    guard case .complete = status else { return ResponseSummary(status: status) }
    return input.withUnsafeBytes { s in
        ResponseSummary(
            status: status, code: head.status,
            reason: String(decoding: UnsafeRawBufferPointer(rebasing: s[head.reasonRange]), as: UTF8.self),
            versionMinor: head.versionMinor, headers: summarize(head.headers, s), framing: head.framing,
            keepAlive: head.keepAlive)
    }
}

/// The ways every input is fed: whole, byte by byte, and split once at every point.
func feeds(_ count: Int) -> [(String, [Int])] {
    var all: [(String, [Int])] = [("whole", [count])]
    if count > 0 { all.append(("byte by byte", Array(1...count))) }
    for k in 0..<count { all.append(("split at \(k)", [k, count])) }
    return all
}

/// Parses `input` every way and checks that all ways agree; returns the whole-buffer result.
func parseRequestEveryWay(_ input: [UInt8], limits: HeadLimits = HeadLimits()) -> RequestSummary {
    let whole = parseRequest(input, prefixes: [input.count], limits: limits)
    for (name, prefixes) in feeds(input.count).dropFirst() {
        let other = parseRequest(input, prefixes: prefixes, limits: limits)
        #expect(other == whole, "fed \(name)")
        if other != whole { break }
    }
    return whole
}

func parseResponseEveryWay(_ input: [UInt8], method: HTTPMethod = .get, limits: HeadLimits = HeadLimits()) -> ResponseSummary {
    let whole = parseResponse(input, prefixes: [input.count], method: method, limits: limits)
    for (name, prefixes) in feeds(input.count).dropFirst() {
        let other = parseResponse(input, prefixes: prefixes, method: method, limits: limits)
        #expect(other == whole, "fed \(name)")
        if other != whole { break }
    }
    return whole
}

/// Offset of the `nth` (0-based) occurrence of `needle` in `input`.
func offset(of needle: String, in input: [UInt8], nth: Int = 0) -> Int {
    let n = Array(needle.utf8)
    var seen = 0
    var i = 0
    while i + n.count <= input.count {
        if Array(input[i..<i + n.count]) == n {
            if seen == nth { return i }
            seen += 1
        }
        i += 1
    }
    Issue.record("needle \(needle) not found")
    return -1
}

extension Array where Element == UInt8 {
    init(_ s: String) { self = Array(s.utf8) }
}
