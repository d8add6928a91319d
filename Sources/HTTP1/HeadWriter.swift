/// Writes the heads the proxy sends: rewritten requests to backends, responses and error
/// responses to clients. Always CRLF line endings.
public enum HeadWriter {
    /// Appends the request head to forward to a backend to `out`.
    ///
    /// Writes `method SP target SP HTTP/1.1`, then every field of `head` in order except hop-by-hop
    /// ones (with `tunnel`, Upgrade fields are kept and `Connection: upgrade` follows them), then one
    /// `X-Forwarded-For` line — the received values joined by ", " followed by `clientAddress` —
    /// then `X-Forwarded-Proto: http` (received ones are dropped), then the empty line.
    /// `source` is the buffer `head` was parsed from.
    public static func appendRequest(_ head: RequestHead, source: UnsafeRawBufferPointer, clientAddress: String, tunnel: Bool, to out: inout [UInt8]) {
        out.reserveCapacity(out.count + head.headLength + 64 + clientAddress.utf8.count)
        append(head.methodRange, source, to: &out)
        out.append(SP)
        append(head.targetRange, source, to: &out)
        appendStatic(" HTTP/1.1\r\n", to: &out)
        var forwardedFor = 0
        for field in head.headers {
            if field.kind == .xForwardedFor && !field.hopByHop {
                forwardedFor += 1
                continue
            }
            if field.kind == .xForwardedProto { continue }
            if field.hopByHop && !(tunnel && field.kind == .upgrade) { continue }
            appendField(field, source, to: &out)
        }
        if tunnel { appendStatic("Connection: upgrade\r\n", to: &out) }
        appendStatic("X-Forwarded-For: ", to: &out)
        if forwardedFor > 0 {
            for field in head.headers where field.kind == .xForwardedFor && !field.hopByHop && field.valueLength > 0 {
                append(field.valueRange, source, to: &out)
                appendStatic(", ", to: &out)
            }
        }
        out.append(contentsOf: clientAddress.utf8)
        appendStatic("\r\nX-Forwarded-Proto: http\r\n\r\n", to: &out)
    }

    /// Appends the response head to send to the client to `out`.
    ///
    /// Writes `HTTP/1.1 <status> <reason>` (the received reason, or the standard phrase when it was
    /// empty), every field that is not hop-by-hop, then each of `extraHeaders` ("Name: value", no
    /// CRLF) on its own line, then the connection line: for 101, the Upgrade fields are kept and
    /// `Connection: upgrade` is written; otherwise `Connection: close` when `close`, or
    /// `Connection: keep-alive` for an HTTP/1.0 client that keeps its session. Ends with the empty line.
    public static func appendResponse(_ head: ResponseHead, source: UnsafeRawBufferPointer, extraHeaders: [String], close: Bool, clientVersionMinor: Int, to out: inout [UInt8]) {
        out.reserveCapacity(out.count + head.headLength + 64)
        appendStatic("HTTP/1.1 ", to: &out)
        appendDecimal(head.status, to: &out)
        out.append(SP)
        if head.reasonRange.isEmpty {
            out.append(contentsOf: reasonPhrase(head.status).utf8)
        } else {
            append(head.reasonRange, source, to: &out)
        }
        appendStatic("\r\n", to: &out)
        let switching = head.status == 101
        for field in head.headers {
            if field.hopByHop && !(switching && field.kind == .upgrade) { continue }
            appendField(field, source, to: &out)
        }
        for line in extraHeaders {
            out.append(contentsOf: line.utf8)
            appendStatic("\r\n", to: &out)
        }
        if switching {
            appendStatic("Connection: upgrade\r\n", to: &out)
        } else if close {
            appendStatic("Connection: close\r\n", to: &out)
        } else if clientVersionMinor == 0 {
            appendStatic("Connection: keep-alive\r\n", to: &out)
        }
        appendStatic("\r\n", to: &out)
    }

    /// Returns a complete short plain-text response: status line, Content-Type: text/plain,
    /// Content-Length, `Connection: close` (when `close`), and the body `message + "\n"`.
    public static func errorResponse(status: Int, message: String, close: Bool = true) -> [UInt8] {
        var out: [UInt8] = []
        let bodyLength = message.utf8.count + 1
        out.reserveCapacity(128 + bodyLength)
        appendStatic("HTTP/1.1 ", to: &out)
        appendDecimal(status, to: &out)
        out.append(SP)
        out.append(contentsOf: reasonPhrase(status).utf8)
        appendStatic("\r\nContent-Type: text/plain\r\nContent-Length: ", to: &out)
        appendDecimal(bodyLength, to: &out)
        appendStatic("\r\n", to: &out)
        if close { appendStatic("Connection: close\r\n", to: &out) }
        appendStatic("\r\n", to: &out)
        out.append(contentsOf: message.utf8)
        out.append(LF)
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

    @inline(__always)
    static func append(_ range: Range<Int>, _ source: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: source[range]))
    }

    @inline(__always)
    static func appendField(_ field: HeaderField, _ source: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        append(field.nameRange, source, to: &out)
        out.append(COLON)
        out.append(SP)
        append(field.valueRange, source, to: &out)
        out.append(CR)
        out.append(LF)
    }

    @inline(__always)
    static func appendStatic(_ s: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// Appends `n` (≥ 0) in decimal without creating a String.
    static func appendDecimal(_ n: Int, to out: inout [UInt8]) {
        guard n > 0 else {
            out.append(0x30)
            return
        }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var v = UInt(n), k = 20
        withUnsafeMutableBytes(of: &digits) { d in
            while v > 0 {
                k -= 1
                d[k] = UInt8(truncatingIfNeeded: v % 10) &+ 0x30
                v /= 10
            }
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: d[k..<20]))
        }
    }
}
