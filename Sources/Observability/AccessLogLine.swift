#if canImport(Glibc)
import Glibc
#endif

/// How access log lines are written.
public enum AccessLogFormat: String, Sendable, CaseIterable {
    /// `key=value` pairs, values quoted when they hold spaces, quotes, `=` or `\`.
    case logfmt
    /// One JSON object per line.
    case json
}

/// Writes one access log line into a byte array, in three parts so that the part known last
/// (whether a CONCURRENT comparison diverged) can be added after the exchange has ended:
/// `begin` when the request head is read, `middle` when the exchange ends, `end` to close the
/// line. Values are written as bytes, never through Strings; anything outside printable ASCII
/// is escaped, so a line is always one valid line of logfmt or JSON whatever a client sent.
public struct AccessLogLine {
    public let format: AccessLogFormat

    public init(format: AccessLogFormat) { self.format = format }

    /// Time, client, method and target. `requestLine` is `method SP target` (empty when the
    /// head could not be parsed).
    public func begin(unixNanos: Int64, client: String, requestLine: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        var space = 0
        while space < requestLine.count && requestLine[space] != 0x20 { space += 1 }
        let method = UnsafeRawBufferPointer(rebasing: requestLine[0..<space])
        let target = UnsafeRawBufferPointer(rebasing: requestLine[min(space + 1, requestLine.count)...])
        out.append(contentsOf: format == .json ? #"{"time":""#.utf8 : "time=".utf8)
        Self.appendTime(unixNanos, to: &out)
        if format == .json { out.append(0x22) }
        string(",client", client, &out)
        value(",method", method, &out)
        value(",target", target, &out)
    }

    /// What happened: status (0 when nothing was sent), bytes each way, duration, request id,
    /// the cluster, version, backend and mode that served it, and in CONCURRENT which version
    /// was `served`.
    public func middle(status: Int, bytesIn: UInt64, bytesOut: UInt64, durationMicros: UInt64, requestID: UnsafeRawBufferPointer,
                       cluster: String, version: String, backend: String, mode: String, served: String?, to out: inout [UInt8]) {
        number(",status", UInt64(max(0, status)), &out)
        number(",bytes_in", bytesIn, &out)
        number(",bytes_out", bytesOut, &out)
        number(",duration_us", durationMicros, &out)
        value(",request_id", requestID, &out)
        string(",cluster", cluster, &out)
        string(",version", version, &out)
        string(",backend", backend, &out)
        string(",mode", mode, &out)
        if let served { string(",served", served, &out) }
    }

    /// Closes the line; `diverged` is written for compared (CONCURRENT) exchanges.
    public func end(diverged: Bool?, to out: inout [UInt8]) {
        if let diverged {
            key(",diverged", &out)
            out.append(contentsOf: (diverged ? "true" : "false").utf8)
        }
        if format == .json { out.append(0x7D) }
        out.append(0x0A)
    }

    // MARK: Fields

    /// `key` is written with a leading comma: kept for JSON, a space for logfmt.
    private func key(_ key: StaticString, _ out: inout [UInt8]) {
        let k = UnsafeRawBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount)
        if format == .json {
            out.append(0x2C)
            out.append(0x22)
            out.append(contentsOf: k[1...])
            out.append(contentsOf: [0x22, 0x3A])
        } else {
            out.append(0x20)
            out.append(contentsOf: k[1...])
            out.append(0x3D)
        }
    }

    private func number(_ name: StaticString, _ n: UInt64, _ out: inout [UInt8]) {
        key(name, &out)
        Self.appendDecimal(n, to: &out)
    }

    private func string(_ name: StaticString, _ s: String, _ out: inout [UInt8]) {
        var s = s
        s.withUTF8 { value(name, UnsafeRawBufferPointer($0), &out) }
    }

    /// A string value. logfmt: bare when it is non-empty printable ASCII without `"`, `=` or
    /// `\`, else quoted with `"` and `\` escaped and other bytes as `\xHH`. JSON: always
    /// quoted, bytes outside printable ASCII as `\u00HH`.
    private func value(_ name: StaticString, _ bytes: UnsafeRawBufferPointer, _ out: inout [UInt8]) {
        key(name, &out)
        if format == .logfmt {
            var bare = !bytes.isEmpty
            for b in bytes where b <= 0x20 || b >= 0x7F || b == 0x22 || b == 0x3D || b == 0x5C { bare = false; break }
            if bare {
                out.append(contentsOf: bytes)
                return
            }
        }
        out.append(0x22)
        var run = 0   // start of the bytes not yet copied
        for (i, b) in bytes.enumerated() where b < 0x20 || b >= 0x7F || b == 0x22 || b == 0x5C {
            out.append(contentsOf: bytes[run..<i])
            run = i + 1
            if b == 0x22 || b == 0x5C {
                out.append(0x5C)
                out.append(b)
            } else {
                out.append(contentsOf: (format == .json ? "\\u00" : "\\x").utf8)
                out.append(Self.hexDigit(b >> 4))
                out.append(Self.hexDigit(b & 15))
            }
        }
        out.append(contentsOf: bytes[run...])
        out.append(0x22)
    }

    /// The lowercase hex digit of `v` (0...15).
    public static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 &+ v : 0x57 &+ v }

    static func appendDecimal(_ n: UInt64, to out: inout [UInt8]) {
        var digits = 1
        var v = n
        while v >= 10 { v /= 10; digits += 1 }
        appendPadded(Int64(truncatingIfNeeded: n), width: digits, to: &out)
    }

    static func appendPadded(_ n: Int64, width: Int, to out: inout [UInt8]) {
        let start = out.count
        out.append(contentsOf: repeatElement(0x30, count: width))
        var v = UInt64(truncatingIfNeeded: n)
        var i = start + width - 1
        while i >= start && v > 0 {
            out[i] = UInt8(truncatingIfNeeded: v % 10) &+ 0x30
            v /= 10
            i -= 1
        }
    }

    /// RFC 3339 UTC with milliseconds: `2026-11-30T20:31:01.123Z` (times from 1970 on).
    public static func appendTime(_ unixNanos: Int64, to out: inout [UInt8]) {
        let nanos = max(0, unixNanos)
        let seconds = nanos / 1_000_000_000
        let (y, m, d) = civilDate(daysSinceEpoch: seconds / 86_400)
        let sod = seconds % 86_400
        appendPadded(y, width: 4, to: &out); out.append(0x2D)
        appendPadded(m, width: 2, to: &out); out.append(0x2D)
        appendPadded(d, width: 2, to: &out); out.append(0x54)
        appendPadded(sod / 3600, width: 2, to: &out); out.append(0x3A)
        appendPadded(sod / 60 % 60, width: 2, to: &out); out.append(0x3A)
        appendPadded(sod % 60, width: 2, to: &out); out.append(0x2E)
        appendPadded(nanos % 1_000_000_000 / 1_000_000, width: 3, to: &out); out.append(0x5A)
    }

    /// Gregorian year, month and day of a day count since 1970-01-01 (days ≥ 0): eras of 400
    /// years (146 097 days) starting on March 1st, so that leap days fall last.
    static func civilDate(daysSinceEpoch: Int64) -> (Int64, Int64, Int64) {
        let z = daysSinceEpoch + 719_468
        let era = z / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// The wall clock in nanoseconds since 1970.
    public static func nowUnixNanos() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}
