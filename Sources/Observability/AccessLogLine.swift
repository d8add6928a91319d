#if canImport(Glibc)
import Glibc
#endif

/// How access log lines are written.
public enum AccessLogFormat: String, Sendable, CaseIterable {
    /// `key=value` pairs, values quoted when they hold spaces, quotes or `=`.
    case logfmt
    /// One JSON object per line.
    case json
}

/// One exchange, as the access log writes it. Byte fields are copies taken when the request
/// head was parsed (its buffer moves on during the exchange).
public struct AccessRecord: Sendable {
    /// Wall-clock time the request head was complete, in nanoseconds since 1970.
    public var startUnixNanos: Int64 = 0
    public var client: String = ""
    /// `method SP target`, as received.
    public var requestLine: [UInt8] = []
    /// The status sent to the client; 0 when nothing was (the client or backend went away first).
    public var status = 0
    /// Request bytes taken from the client (head and body) and response bytes sent to it.
    public var bytesIn: UInt64 = 0
    public var bytesOut: UInt64 = 0
    public var durationMicros: UInt64 = 0
    public var requestID: [UInt8] = []
    /// Cluster, version, backend and mode that served it; empty when none was chosen.
    public var cluster = ""
    public var version = ""
    public var backend = ""
    public var mode = ""
    /// CONCURRENT only: which version's response was served ("new" or "old").
    public var served = ""
    /// CONCURRENT only: whether the two responses differed (nil when not compared).
    public var diverged: Bool?

    public init() {}
}

/// Writes access log lines into a byte array, without building Strings.
public enum AccessLogLine {
    /// Appends one line (ending in LF) for `record` to `out`.
    public static func append(_ r: AccessRecord, format: AccessLogFormat, to out: inout [UInt8]) {
        let space = r.requestLine.firstIndex(of: 0x20) ?? r.requestLine.count
        let method = r.requestLine[..<space]
        let target = r.requestLine[min(space + 1, r.requestLine.count)...]
        switch format {
        case .logfmt:
            out.append(contentsOf: "time=".utf8)
            appendTime(r.startUnixNanos, to: &out)
            field(" client=", r.client.utf8, &out)
            field(" method=", method, &out)
            field(" target=", target, &out)
            out.append(contentsOf: " status=".utf8)
            appendDecimal(UInt64(max(0, r.status)), to: &out)
            out.append(contentsOf: " bytes_in=".utf8)
            appendDecimal(r.bytesIn, to: &out)
            out.append(contentsOf: " bytes_out=".utf8)
            appendDecimal(r.bytesOut, to: &out)
            out.append(contentsOf: " duration_us=".utf8)
            appendDecimal(r.durationMicros, to: &out)
            field(" request_id=", r.requestID, &out)
            field(" cluster=", r.cluster.utf8, &out)
            field(" version=", r.version.utf8, &out)
            field(" backend=", r.backend.utf8, &out)
            field(" mode=", r.mode.utf8, &out)
            if !r.served.isEmpty { field(" served=", r.served.utf8, &out) }
            if let d = r.diverged { out.append(contentsOf: (d ? " diverged=true" : " diverged=false").utf8) }
        case .json:
            out.append(contentsOf: "{\"time\":\"".utf8)
            appendTime(r.startUnixNanos, to: &out)
            out.append(0x22)
            jsonField(",\"client\":", r.client.utf8, &out)
            jsonField(",\"method\":", method, &out)
            jsonField(",\"target\":", target, &out)
            out.append(contentsOf: ",\"status\":".utf8)
            appendDecimal(UInt64(max(0, r.status)), to: &out)
            out.append(contentsOf: ",\"bytes_in\":".utf8)
            appendDecimal(r.bytesIn, to: &out)
            out.append(contentsOf: ",\"bytes_out\":".utf8)
            appendDecimal(r.bytesOut, to: &out)
            out.append(contentsOf: ",\"duration_us\":".utf8)
            appendDecimal(r.durationMicros, to: &out)
            jsonField(",\"request_id\":", r.requestID, &out)
            jsonField(",\"cluster\":", r.cluster.utf8, &out)
            jsonField(",\"version\":", r.version.utf8, &out)
            jsonField(",\"backend\":", r.backend.utf8, &out)
            jsonField(",\"mode\":", r.mode.utf8, &out)
            if !r.served.isEmpty { jsonField(",\"served\":", r.served.utf8, &out) }
            if let d = r.diverged { out.append(contentsOf: (d ? ",\"diverged\":true" : ",\"diverged\":false").utf8) }
            out.append(0x7D)
        }
        out.append(0x0A)
    }

    /// A logfmt value: bare when it is non-empty printable ASCII without `"`, `=` or `\`;
    /// otherwise quoted, with `"` and `\` escaped and other bytes outside printable ASCII as `\xHH`.
    static func field<C: Collection>(_ key: StaticString, _ value: C, _ out: inout [UInt8]) where C.Element == UInt8 {
        out.append(contentsOf: UnsafeBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount))
        let bare = !value.isEmpty && !value.contains { $0 <= 0x20 || $0 >= 0x7F || $0 == 0x22 || $0 == 0x3D || $0 == 0x5C }
        if bare {
            out.append(contentsOf: value)
            return
        }
        out.append(0x22)
        for b in value {
            switch b {
            case 0x22, 0x5C: out.append(0x5C); out.append(b)
            case 0x20...0x7E: out.append(b)
            default: appendHexEscape(b, prefix: "\\x", to: &out)
            }
        }
        out.append(0x22)
    }

    /// A JSON string; bytes outside printable ASCII become `\u00HH`, so the line stays valid
    /// UTF-8 JSON whatever the client sent.
    static func jsonField<C: Collection>(_ key: StaticString, _ value: C, _ out: inout [UInt8]) where C.Element == UInt8 {
        out.append(contentsOf: UnsafeBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount))
        out.append(0x22)
        for b in value {
            switch b {
            case 0x22, 0x5C: out.append(0x5C); out.append(b)
            case 0x20...0x7E: out.append(b)
            default: appendHexEscape(b, prefix: "\\u00", to: &out)
            }
        }
        out.append(0x22)
    }

    static func appendHexEscape(_ b: UInt8, prefix: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: prefix.utf8Start, count: prefix.utf8CodeUnitCount))
        for nibble in [b >> 4, b & 15] { out.append(nibble < 10 ? 0x30 &+ nibble : 0x57 &+ nibble) }
    }

    static func appendDecimal(_ n: UInt64, to out: inout [UInt8]) {
        if n >= 10 { appendDecimal(n / 10, to: &out) }
        out.append(UInt8(truncatingIfNeeded: n % 10) &+ 0x30)
    }

    static func appendPadded(_ n: Int64, width: Int, to out: inout [UInt8]) {
        let start = out.count
        out.append(contentsOf: repeatElement(0x30, count: width))
        var v = n
        var i = start + width - 1
        while i >= start && v > 0 {
            out[i] = UInt8(truncatingIfNeeded: v % 10) &+ 0x30
            v /= 10
            i -= 1
        }
    }

    /// RFC 3339 UTC with milliseconds: `2026-11-30T20:31:01.123Z`.
    static func appendTime(_ unixNanos: Int64, to out: inout [UInt8]) {
        let seconds = unixNanos / 1_000_000_000
        let millis = (unixNanos % 1_000_000_000) / 1_000_000
        let (y, m, d) = civilDate(daysSinceEpoch: seconds / 86_400)
        let sod = seconds % 86_400
        appendPadded(y, width: 4, to: &out); out.append(0x2D)
        appendPadded(m, width: 2, to: &out); out.append(0x2D)
        appendPadded(d, width: 2, to: &out); out.append(0x54)
        appendPadded(sod / 3600, width: 2, to: &out); out.append(0x3A)
        appendPadded(sod / 60 % 60, width: 2, to: &out); out.append(0x3A)
        appendPadded(sod % 60, width: 2, to: &out); out.append(0x2E)
        appendPadded(millis, width: 3, to: &out); out.append(0x5A)
    }

    /// Gregorian year, month and day of a day count since 1970-01-01 (days ≥ 0).
    static func civilDate(daysSinceEpoch: Int64) -> (Int64, Int64, Int64) {
        // Eras of 400 years (146 097 days) starting on March 1st, so leap days fall last.
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
