/// The request method, as far as the proxy needs to tell methods apart.
///
/// Methods are case-sensitive (RFC 9110 9.1): `get` is not `GET` and parses as `.other`.
/// The exact bytes are always available through `RequestHead.methodRange`.
public enum HTTPMethod: UInt8, Sendable {
    case get, head, post, put, delete, options, patch, connect, trace, other

    /// Whether repeating the request has the same effect as sending it once
    /// (RFC 9110 9.2.2): GET, HEAD, OPTIONS, PUT, DELETE and TRACE. `.other` is not.
    public var isIdempotent: Bool {
        switch self {
        case .get, .head, .options, .put, .delete, .trace: return true
        case .post, .patch, .connect, .other: return false
        }
    }

    /// Classifies the method token `p[0..<count]`; returns `.other` for any method not listed.
    @inline(__always)
    static func classify(_ p: UnsafePointer<UInt8>, count: Int) -> HTTPMethod {
        switch count {
        case 3:
            if bytesEqual(p, "GET") { return .get }
            if bytesEqual(p, "PUT") { return .put }
        case 4:
            if bytesEqual(p, "HEAD") { return .head }
            if bytesEqual(p, "POST") { return .post }
        case 5:
            if bytesEqual(p, "PATCH") { return .patch }
            if bytesEqual(p, "TRACE") { return .trace }
        case 6:
            if bytesEqual(p, "DELETE") { return .delete }
        case 7:
            if bytesEqual(p, "OPTIONS") { return .options }
            if bytesEqual(p, "CONNECT") { return .connect }
        default:
            break
        }
        return .other
    }
}

/// Size limits applied while parsing a head. Exceeding them yields 431 or 414.
public struct HeadLimits: Sendable {
    /// Largest head accepted, start line and final CRLF included (and any leading empty lines);
    /// a longer head fails with `.headTooLarge` (431). Clamped to 1...Int32.max.
    public var maxHeadBytes: Int
    /// Longest request-target accepted; a longer one fails with `.targetTooLong` (414)
    /// as soon as its first excess byte arrives.
    public var maxTargetBytes: Int
    /// Most header fields accepted; one more fails with `.tooManyHeaders` (431).
    public var maxHeaders: Int
    /// Whether an HTTP/1.1 request without a Host field is rejected (`.missingHost`, 400),
    /// as RFC 9112 3.2 requires. More than one Host field is always rejected.
    public var requireHost: Bool
    /// What a request field whose name contains `_` gets (responses are not affected).
    public var underscores: UnderscorePolicy

    /// Creates limits; the defaults match the proxy's defaults (16 KiB head, 8 KiB target, 100 fields).
    public init(maxHeadBytes: Int = 16384, maxTargetBytes: Int = 8192, maxHeaders: Int = 100, requireHost: Bool = true,
                underscores: UnderscorePolicy = .refuse) {
        self.maxHeadBytes = min(max(maxHeadBytes, 1), Int(Int32.max))
        self.maxTargetBytes = max(maxTargetBytes, 1)
        self.maxHeaders = max(maxHeaders, 0)
        self.requireHost = requireHost
        self.underscores = underscores
    }
}

/// How a request field name containing `_` is treated. Many backends (CGI-style gateways and
/// several frameworks) map `_` and `-` alike, so `Transfer_Encoding` or `X_Forwarded_For` can
/// mean to them what the proxy never checked (nginx's `underscores_in_headers` is the same knob).
public enum UnderscorePolicy: String, Sendable, CaseIterable {
    /// The request is refused with 400 (`.underscoreInHeaderName`).
    case refuse
    /// The field is removed from the forwarded request.
    case drop
    /// The field is forwarded like any other.
    case allow
}
