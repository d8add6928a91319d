/// Writes the heads the proxy sends: rewritten requests to backends, responses and error
/// responses to clients. Always CRLF line endings.
public enum HeadWriter {
    /// Appends the request head to forward to a backend to `out`.
    ///
    /// Writes `method SP target SP HTTP/1.1`, then every field of `head` in order except hop-by-hop
    /// ones (with `tunnel`, Upgrade fields are kept and `Connection: upgrade` follows them), then one
    /// `X-Forwarded-For` line — the received values joined by ", " followed by `clientAddress` —
    /// then `X-Forwarded-Proto: http` (`https` with `https`; received ones are dropped), then the empty line.
    /// Repeated Content-Length fields are written once, as a plain number. With `requestID`,
    /// an `X-Request-Id` line with it comes before `X-Forwarded-For`.
    /// `source` is the buffer `head` was parsed from.
    public static func appendRequest(_ head: RequestHead, source: UnsafeRawBufferPointer, clientAddress: String, tunnel: Bool,
                                     requestID: UnsafeRawBufferPointer? = nil, https: Bool = false, to out: inout [UInt8]) {
        var address = clientAddress
        address.withUTF8 { addr in
            emit(to: &out) { (w: inout ByteSink) in
                w.put(head.methodRange, source)
                w.put(SP)
                w.put(head.targetRange, source)
                w.put(" HTTP/1.1\r\n")
                var forwardedFor = false
                var lengthWritten = false
                for field in head.headers {
                    if field.kind == .xForwardedFor && !field.hopByHop {
                        forwardedFor = true
                        continue
                    }
                    if field.kind == .xForwardedProto { continue }
                    if field.hopByHop && !(tunnel && field.kind == .upgrade) { continue }
                    if field.kind == .contentLength {
                        w.putContentLength(field, head.framing, source, &lengthWritten)
                        continue
                    }
                    w.put(field, source)
                }
                if tunnel { w.put("Connection: upgrade\r\n") }
                if let requestID {
                    w.put("X-Request-Id: ")
                    w.put(requestID)
                    w.put("\r\n")
                }
                w.put("X-Forwarded-For: ")
                if forwardedFor {
                    for field in head.headers where field.kind == .xForwardedFor && !field.hopByHop && field.valueLength > 0 {
                        w.put(field.valueRange, source)
                        w.put(", ")
                    }
                }
                w.put(UnsafeRawBufferPointer(addr))
                if https {
                    w.put("\r\nX-Forwarded-Proto: https\r\n\r\n")
                } else {
                    w.put("\r\nX-Forwarded-Proto: http\r\n\r\n")
                }
            }
        }
    }

    /// Appends a health check request to `out`: `GET target HTTP/1.1`, `Host: host`,
    /// `User-Agent: switchyard-health`, `Connection: close`, and the empty line. The caller
    /// checks that `target` and `host` hold no spaces or control characters.
    public static func appendProbeRequest(target: String, host: String, to out: inout [UInt8]) {
        emit(to: &out) { (w: inout ByteSink) in
            w.put("GET ")
            w.put(target)
            w.put(" HTTP/1.1\r\nHost: ")
            w.put(host)
            w.put("\r\nUser-Agent: switchyard-health\r\nConnection: close\r\n\r\n")
        }
    }

    /// Appends the response head to send to the client to `out`.
    ///
    /// Writes `HTTP/1.1 <status> <reason>` (the received reason, or the standard phrase when it was
    /// empty), every field that is not hop-by-hop (a framing Content-Length once, as a plain number),
    /// then each of `extraHeaders` ("Name: value", no
    /// CRLF) on its own line, then the connection line: for 101, the Upgrade fields are kept and
    /// `Connection: upgrade` is written; otherwise `Connection: close` when `close`, or
    /// `Connection: keep-alive` for an HTTP/1.0 client that keeps its session. Ends with the empty line.
    ///
    /// With `dechunked`, the body is sent without its chunked framing (to an HTTP/1.0 client, which
    /// cannot read it): Transfer-Encoding fields are left out and, when the body's length is known,
    /// `Content-Length` is written; otherwise the body ends when the connection closes, so `close`
    /// must be true.
    public static func appendResponse(_ head: ResponseHead, source: UnsafeRawBufferPointer, extraHeaders: [String], close: Bool,
                                      clientVersionMinor: Int, dechunked: Dechunked? = nil, to out: inout [UInt8]) {
        let switching = head.status == 101
        emit(to: &out) { (w: inout ByteSink) in
            w.put("HTTP/1.1 ")
            w.putDecimal(head.status)
            w.put(SP)
            if head.reasonRange.isEmpty {
                w.put(reasonPhrase(head.status))
            } else {
                w.put(head.reasonRange, source)
            }
            w.put("\r\n")
            var lengthWritten = false
            for field in head.headers {
                if field.hopByHop && !(switching && field.kind == .upgrade) { continue }
                if dechunked != nil && field.kind == .transferEncoding { continue }
                if field.kind == .contentLength {
                    w.putContentLength(field, head.framing, source, &lengthWritten)
                    continue
                }
                w.put(field, source)
            }
            if let length = dechunked?.length {
                w.put("Content-Length: ")
                w.putDecimal(length)
                w.put("\r\n")
            }
            for line in extraHeaders {
                w.put(line)
                w.put("\r\n")
            }
            if switching {
                w.put("Connection: upgrade\r\n")
            } else if close {
                w.put("Connection: close\r\n")
            } else if clientVersionMinor == 0 {
                w.put("Connection: keep-alive\r\n")
            }
            w.put("\r\n")
        }
    }

    /// A chunked response body sent without its framing, and its length when known.
    public struct Dechunked: Equatable, Sendable {
        /// Bytes of chunk data in the whole body, when it was all read before the head was sent.
        public var length: UInt64?
        /// Creates the description; nil `length` means the body ends at close.
        public init(length: UInt64?) { self.length = length }
    }

    /// Returns a complete short plain-text response: status line, Content-Type: text/plain,
    /// Content-Length, `Connection: close` (when `close`), and the body `message + "\n"`.
    public static func errorResponse(status: Int, message: String, close: Bool = true) -> [UInt8] {
        var out: [UInt8] = []
        emit(to: &out) { (w: inout ByteSink) in
            w.put("HTTP/1.1 ")
            w.putDecimal(status)
            w.put(SP)
            w.put(reasonPhrase(status))
            w.put("\r\nContent-Type: text/plain\r\nContent-Length: ")
            w.putDecimal(message.utf8.count + 1)
            w.put("\r\n")
            if close { w.put("Connection: close\r\n") }
            w.put("\r\n")
            w.put(message)
            w.put(LF)
        }
        return out
    }

    /// Returns the standard reason phrase for `status` (RFC 9110 15), or "" for an unknown code.
    public static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 101: return "Switching Protocols"
        case 103: return "Early Hints"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 203: return "Non-Authoritative Information"
        case 204: return "No Content"
        case 205: return "Reset Content"
        case 206: return "Partial Content"
        case 300: return "Multiple Choices"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 303: return "See Other"
        case 304: return "Not Modified"
        case 307: return "Temporary Redirect"
        case 308: return "Permanent Redirect"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 406: return "Not Acceptable"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 410: return "Gone"
        case 411: return "Length Required"
        case 412: return "Precondition Failed"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 416: return "Range Not Satisfiable"
        case 417: return "Expectation Failed"
        case 421: return "Misdirected Request"
        case 422: return "Unprocessable Content"
        case 426: return "Upgrade Required"
        case 428: return "Precondition Required"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default: return ""
        }
    }

    // MARK: - Helpers

    /// Runs `body` twice: once to measure, once to copy into space appended to `out`, so a head
    /// costs one resize and one memcpy per piece.
    @inline(__always)
    static func emit(to out: inout [UInt8], _ body: (inout ByteSink) -> Void) {
        var measure = ByteSink(base: nil)
        body(&measure)
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: measure.count))
        out.withUnsafeMutableBytes { all in
            var write = ByteSink(base: all.baseAddress! + start)
            body(&write)
            precondition(write.count == measure.count, "HeadWriter: measured and written sizes differ")
        }
    }

    /// Appends `n` (≥ 0) in decimal without creating a String.
    static func appendDecimal(_ n: Int, to out: inout [UInt8]) {
        emit(to: &out) { $0.putDecimal(n) }
    }

    static func appendStatic(_ s: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }
}

/// Counts bytes (when `base` is nil) or copies them to `base`; see `HeadWriter.emit`.
struct ByteSink {
    let base: UnsafeMutableRawPointer?
    var count = 0

    init(base: UnsafeMutableRawPointer?) {
        self.base = base
    }

    @inline(__always)
    mutating func put(_ bytes: UnsafeRawBufferPointer) {
        if let base, let src = bytes.baseAddress {
            (base + count).copyMemory(from: src, byteCount: bytes.count)
        }
        count += bytes.count
    }

    @inline(__always)
    mutating func put(_ byte: UInt8) {
        base?.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    @inline(__always)
    mutating func put(_ s: StaticString) {
        put(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    @inline(__always)
    mutating func put(_ s: String) {
        var s = s
        s.withUTF8 { put(UnsafeRawBufferPointer($0)) }
    }

    @inline(__always)
    mutating func put(_ range: Range<Int>, _ source: UnsafeRawBufferPointer) {
        put(UnsafeRawBufferPointer(rebasing: source[range]))
    }

    @inline(__always)
    mutating func put(_ field: HeaderField, _ source: UnsafeRawBufferPointer) {
        put(field.nameRange, source)
        put(COLON)
        put(SP)
        put(field.valueRange, source)
        put(CR)
        put(LF)
    }

    /// Writes a Content-Length field. When the body is framed by Content-Length, repeats (which
    /// the parser accepted only with equal values) collapse into one field holding the plain number,
    /// so a backend or client that rejects "5, 5", duplicates or leading zeros still gets a valid
    /// message; otherwise (e.g. a 304's Content-Length) the field is copied as received.
    @inline(__always)
    mutating func putContentLength(_ field: HeaderField, _ framing: BodyFraming, _ source: UnsafeRawBufferPointer, _ written: inout Bool) {
        guard case .contentLength(let n) = framing else {
            put(field, source)
            return
        }
        if written { return }
        written = true
        put(field.nameRange, source)
        put(COLON)
        put(SP)
        putDecimal(n)
        put(CR)
        put(LF)
    }

    /// Writes `n` (negative values are written as 0) in decimal.
    @inline(__always)
    mutating func putDecimal(_ n: Int) {
        putDecimal(UInt64(max(n, 0)))
    }

    /// Writes `n` in decimal.
    @inline(__always)
    mutating func putDecimal(_ n: UInt64) {
        var digits = 1
        var v = n
        while v >= 10 {
            v /= 10
            digits += 1
        }
        if let base {
            var v = n
            var k = count + digits
            repeat {
                k -= 1
                base.storeBytes(of: UInt8(truncatingIfNeeded: v % 10) &+ 0x30, toByteOffset: k, as: UInt8.self)
                v /= 10
            } while v > 0
        }
        count += digits
    }
}
