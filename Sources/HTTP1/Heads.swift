/// The header fields the proxy acts on; every other field is `.other`.
/// Names are matched case-insensitively when the field's colon is parsed.
public enum HeaderKind: UInt8, Sendable {
    case other, host, contentLength, transferEncoding, connection, keepAlive, proxyConnection, te, trailer,
        upgrade, cookie, expect, xForwardedFor, xForwardedProto, setCookie, xRequestId

    /// Whether fields of this kind are hop-by-hop by definition (RFC 9110 7.6.1): Connection,
    /// Keep-Alive, Proxy-Connection, TE, Trailer and Upgrade.
    public var isHopByHop: Bool {
        switch self {
        case .connection, .keepAlive, .proxyConnection, .te, .trailer, .upgrade: return true
        default: return false
        }
    }

    /// Classifies the field name `p[0..<count]` (token characters) with a length-first switch.
    @inline(__always)
    static func classify(_ p: UnsafePointer<UInt8>, count: Int) -> HeaderKind {
        switch count {
        case 2:
            if bytesEqualFolded(p, "te") { return .te }
        case 4:
            if bytesEqualFolded(p, "host") { return .host }
        case 6:
            if bytesEqualFolded(p, "cookie") { return .cookie }
            if bytesEqualFolded(p, "expect") { return .expect }
        case 7:
            if bytesEqualFolded(p, "upgrade") { return .upgrade }
            if bytesEqualFolded(p, "trailer") { return .trailer }
        case 10:
            if bytesEqualFolded(p, "connection") { return .connection }
            if bytesEqualFolded(p, "keep-alive") { return .keepAlive }
            if bytesEqualFolded(p, "set-cookie") { return .setCookie }
        case 12:
            if bytesEqualFolded(p, "x-request-id") { return .xRequestId }
        case 14:
            if bytesEqualFolded(p, "content-length") { return .contentLength }
        case 15:
            if bytesEqualFolded(p, "x-forwarded-for") { return .xForwardedFor }
        case 16:
            if bytesEqualFolded(p, "proxy-connection") { return .proxyConnection }
        case 17:
            if bytesEqualFolded(p, "transfer-encoding") { return .transferEncoding }
            if bytesEqualFolded(p, "x-forwarded-proto") { return .xForwardedProto }
        default:
            break
        }
        return .other
    }
}

/// One header field line, as offsets into the buffer the head was parsed from.
public struct HeaderField: Sendable {
    /// Offset of the name's first byte.
    public var nameStart: Int32
    /// Length of the name (never 0).
    public var nameLength: Int32
    /// Offset of the value's first byte, leading OWS excluded.
    public var valueStart: Int32
    /// Length of the value, trailing OWS excluded (0 for an empty value).
    public var valueLength: Int32
    /// What the name is, for the fields the proxy acts on.
    public var kind: HeaderKind
    /// Whether the field must be dropped when forwarding: a hop-by-hop kind, or named by a
    /// Connection token (except Host, Content-Length and Transfer-Encoding, which a client must
    /// not be able to strip from the message the backend sees).
    public var hopByHop: Bool

    /// Creates a field from its offsets.
    public init(nameStart: Int32, nameLength: Int32, valueStart: Int32, valueLength: Int32, kind: HeaderKind, hopByHop: Bool) {
        self.nameStart = nameStart
        self.nameLength = nameLength
        self.valueStart = valueStart
        self.valueLength = valueLength
        self.kind = kind
        self.hopByHop = hopByHop
    }

    /// The name's byte range in the source buffer.
    @inlinable public var nameRange: Range<Int> { Int(nameStart)..<Int(nameStart) + Int(nameLength) }
    /// The value's byte range in the source buffer (OWS trimmed).
    @inlinable public var valueRange: Range<Int> { Int(valueStart)..<Int(valueStart) + Int(valueLength) }
}

/// How the length of a message body is determined (RFC 9112 6.3).
public enum BodyFraming: Equatable, Sendable {
    /// No body at all (no framing fields, or a response that never has one).
    case none
    /// Exactly this many bytes (possibly 0).
    case contentLength(UInt64)
    /// Chunked transfer coding; read it with `ChunkedDecoder`.
    case chunked
    /// Responses only: the body ends when the backend closes the connection.
    case untilClose
}

/// A parsed request head. Ranges and field offsets point into the buffer it was parsed from.
public struct RequestHead: Sendable {
    /// The method, classified.
    public var method: HTTPMethod
    /// The method's bytes.
    public var methodRange: Range<Int>
    /// The request-target's bytes (never empty).
    public var targetRange: Range<Int>
    /// 0 or 1: the request was HTTP/1.0 or HTTP/1.1.
    public var versionMinor: Int
    /// The field lines in order. The array keeps its capacity across parses.
    public var headers: [HeaderField]
    /// `.none`, `.contentLength(n)` (also for n = 0) or `.chunked`; never `.untilClose`.
    public var framing: BodyFraming
    /// Whether the client allows the session to continue: HTTP/1.1 unless `Connection: close`;
    /// HTTP/1.0 only with `Connection: keep-alive` (and no `close`).
    public var keepAlive: Bool
    /// Whether the client asks for a protocol upgrade: a Connection token `upgrade` and an Upgrade field.
    public var upgrade: Bool
    /// Whether the client sent `Expect: 100-continue` (case-insensitive).
    public var expectContinue: Bool
    /// Bytes from the buffer start to the end of the head's final CRLF (leading empty lines included):
    /// the body or the next pipelined request starts here.
    public var headLength: Int

    /// Creates an empty head to be filled by `HeadParser.parseRequest`.
    public init() {
        method = .other
        methodRange = 0..<0
        targetRange = 0..<0
        versionMinor = 1
        headers = []
        framing = .none
        keepAlive = true
        upgrade = false
        expectContinue = false
        headLength = 0
    }
}

/// A parsed response head. Ranges and field offsets point into the buffer it was parsed from.
public struct ResponseHead: Sendable {
    /// 0 or 1: the response was HTTP/1.0 or HTTP/1.1.
    public var versionMinor: Int
    /// The status code, 100...999.
    public var status: Int
    /// The reason phrase's bytes (possibly empty).
    public var reasonRange: Range<Int>
    /// The field lines in order. The array keeps its capacity across parses.
    public var headers: [HeaderField]
    /// `.none` for 1xx, 204, 304, a 2xx answer to CONNECT, and any answer to HEAD; otherwise
    /// `.chunked` when the final transfer coding is chunked, `.untilClose` when another coding is
    /// final (RFC 9112 6.3) or nothing frames the body, else `.contentLength(n)`.
    public var framing: BodyFraming
    /// Whether the backend connection may be reused after this response: HTTP/1.1 unless
    /// `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`, never for `.untilClose`.
    public var keepAlive: Bool
    /// Bytes from the buffer start to the end of the head's final CRLF.
    public var headLength: Int

    /// Creates an empty head to be filled by `HeadParser.parseResponse`.
    public init() {
        versionMinor = 1
        status = 0
        reasonRange = 0..<0
        headers = []
        framing = .none
        keepAlive = true
        headLength = 0
    }
}

extension RequestHead {
    /// Returns the value of the cookie called `named` in the Cookie field(s), surrounding DQUOTEs
    /// removed, or nil when there is none. The name matches exactly (case-sensitive, RFC 6265).
    public func cookie(named: String, source: UnsafeRawBufferPointer) -> String? {
        guard let p = source.bytePointer else { return nil }
        var name = named
        return name.withUTF8 { n -> String? in
            for field in headers where field.kind == .cookie {
                var i = Int(field.valueStart)
                let end = i + Int(field.valueLength)
                guard end <= source.count else { continue }
                while i < end {
                    // One cookie-pair per ';'-separated element.
                    while i < end && (p[i] == SP || p[i] == HT) { i += 1 }
                    let pairStart = i
                    while i < end && p[i] != 0x3B { i += 1 }
                    var pairEnd = i
                    i += 1
                    while pairEnd > pairStart && (p[pairEnd - 1] == SP || p[pairEnd - 1] == HT) { pairEnd -= 1 }
                    var eq = pairStart
                    while eq < pairEnd && p[eq] != 0x3D { eq += 1 }
                    guard eq < pairEnd, eq - pairStart == n.count else { continue }
                    var same = true
                    for k in 0..<n.count where p[pairStart + k] != n[k] { same = false; break }
                    guard same else { continue }
                    var vs = eq + 1, ve = pairEnd
                    if ve - vs >= 2 && p[vs] == 0x22 && p[ve - 1] == 0x22 { vs += 1; ve -= 1 }
                    return String(decoding: UnsafeBufferPointer(start: p + vs, count: ve - vs), as: UTF8.self)
                }
            }
            return nil
        }
    }

    /// Returns the value of the first field of `kind` (OWS trimmed), or nil when there is none.
    public func headerValue(_ kind: HeaderKind, source: UnsafeRawBufferPointer) -> String? {
        firstValue(headers, kind, source)
    }

    /// What the request's fetch metadata (`Sec-Fetch-*`, sent by browsers) says about it:
    /// `.navigation` for `Sec-Fetch-Mode: navigate` or `Sec-Fetch-Dest: document` (a page
    /// load), `.subresource` for any other fetch metadata (an image, a script, an XHR…),
    /// `.absent` when the request has none (curl, API clients, older browsers).
    public func fetchMetadata(source: UnsafeRawBufferPointer) -> FetchMetadata {
        var seen = false
        for field in headers where field.kind == .other && field.nameLength == 14 && field.nameRange.upperBound <= source.count {
            let name = UnsafeRawBufferPointer(rebasing: source[field.nameRange])
            guard asciiLowercaseEquals(name.prefix(10), "sec-fetch-") else { continue }
            seen = true
            let suffix = name.suffix(4)
            let value = field.valueRange.upperBound <= source.count ? UnsafeRawBufferPointer(rebasing: source[field.valueRange]) : UnsafeRawBufferPointer(start: nil, count: 0)
            if (asciiLowercaseEquals(suffix, "mode") && asciiLowercaseEquals(value[...], "navigate"))
                || (asciiLowercaseEquals(suffix, "dest") && asciiLowercaseEquals(value[...], "document")) {
                return .navigation
            }
        }
        return seen ? .subresource : .absent
    }

    /// Returns the request-target as a String (e.g. "/configuration/cluster?x=1").
    public func target(source: UnsafeRawBufferPointer) -> String {
        string(targetRange, source)
    }

    /// Returns the method as a String, exactly as received.
    public func methodName(source: UnsafeRawBufferPointer) -> String {
        string(methodRange, source)
    }
}

extension ResponseHead {
    /// Returns the value of the first field of `kind` (OWS trimmed), or nil when there is none.
    public func headerValue(_ kind: HeaderKind, source: UnsafeRawBufferPointer) -> String? {
        firstValue(headers, kind, source)
    }
}

/// The kind of request that a browser's fetch metadata (`Sec-Fetch-Mode`, `Sec-Fetch-Dest`…) declares.
public enum FetchMetadata: Sendable, Equatable {
    /// No `Sec-Fetch-*` field: the client does not send fetch metadata.
    case absent
    /// A page load: `Sec-Fetch-Mode: navigate` or `Sec-Fetch-Dest: document`.
    case navigation
    /// Any other fetch (a sub-resource of a page, or a script's request).
    case subresource
}

/// Whether `bytes` equal the lowercase ASCII `lower`, ignoring the case of `bytes`.
func asciiLowercaseEquals(_ bytes: Slice<UnsafeRawBufferPointer>, _ lower: StaticString) -> Bool {
    guard bytes.count == lower.utf8CodeUnitCount else { return false }
    let l = lower.utf8Start
    var k = 0
    for b in bytes {
        let folded = b >= 0x41 && b <= 0x5A ? b | 0x20 : b
        if folded != l[k] { return false }
        k += 1
    }
    return true
}

@inline(__always)
func string(_ range: Range<Int>, _ source: UnsafeRawBufferPointer) -> String {
    guard range.upperBound <= source.count, !range.isEmpty else { return "" }
    return String(decoding: UnsafeRawBufferPointer(rebasing: source[range]), as: UTF8.self)
}

func firstValue(_ headers: [HeaderField], _ kind: HeaderKind, _ source: UnsafeRawBufferPointer) -> String? {
    for field in headers where field.kind == kind {
        return string(field.valueRange, source)
    }
    return nil
}
