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

/// Writes one access log line (from an `AccessRecordView`) into a byte array: `record`, then
/// `end`, which adds whether a CONCURRENT comparison diverged. Values are written as bytes, never through Strings; anything outside printable ASCII
/// is escaped, so a line is always one valid line of logfmt or JSON whatever a client sent.
public struct AccessLogLine {
    public let format: AccessLogFormat
    /// `YYYY-MM-DDTHH:MM:SS` of the second last written, so most lines copy it.
    private var second: Int64 = -1
    private var secondText: [UInt8] = []

    public init(format: AccessLogFormat) { self.format = format }

    /// The line up to what only a comparison can add: time, client, method and target
    /// (`requestLine` is `method SP target`, empty when the head could not be parsed), the
    /// status (0 when nothing was sent), bytes each way, duration, request id, the cluster,
    /// version, backend and mode that served it, and in CONCURRENT which version was `served`.
    public mutating func record(_ r: AccessRecordView, to out: inout [UInt8]) {
        var space = 0
        let requestLine = r.requestLine
        while space < requestLine.count && requestLine[space] != 0x20 { space += 1 }
        let method = UnsafeRawBufferPointer(rebasing: requestLine[0..<space])
        let target = UnsafeRawBufferPointer(rebasing: requestLine[min(space + 1, requestLine.count)...])
        let nanos = max(0, r.startNanos)
        if nanos / 1_000_000_000 != second {
            second = nanos / 1_000_000_000
            secondText.removeAll(keepingCapacity: true)
            LineSink.emit(to: &secondText, atMost: 32) { $0.putTime(second * 1_000_000_000) }
            secondText.removeLast(5)   // ".mmmZ"
        }
        let values = r.client.count + requestLine.count + r.requestID.count + r.cluster.count + r.version.count
            + r.backend.count + r.mode.count + r.service.count
        LineSink.emit(to: &out, atMost: 320 + 6 * values) { w in
            w.put(format == .json ? #"{"time":""# : "time=")
            secondText.withUnsafeBytes { w.put($0) }
            w.put(0x2E)
            w.putDecimal(UInt64(nanos % 1_000_000_000 / 1_000_000), width: 3)
            w.put(0x5A)
            if format == .json { w.put(0x22) }
            let plain = r.plain
            value(&w, Key(" client=", #","client":"#), r.client, plain: plain.contains(.client))
            value(&w, Key(" method=", #","method":"#), method)
            value(&w, Key(" target=", #","target":"#), target)
            number(&w, Key(" status=", #","status":"#), UInt64(max(0, r.status)))
            number(&w, Key(" bytes_in=", #","bytes_in":"#), r.bytesIn)
            number(&w, Key(" bytes_out=", #","bytes_out":"#), r.bytesOut)
            number(&w, Key(" duration_us=", #","duration_us":"#), r.durationMicros)
            value(&w, Key(" request_id=", #","request_id":"#), r.requestID, plain: plain.contains(.requestID))
            value(&w, Key(" cluster=", #","cluster":"#), r.cluster, plain: plain.contains(.cluster))
            value(&w, Key(" version=", #","version":"#), r.version, plain: plain.contains(.cluster))
            value(&w, Key(" backend=", #","backend":"#), r.backend, plain: plain.contains(.backend))
            value(&w, Key(" mode=", #","mode":"#), r.mode, plain: plain.contains(.cluster))
            if !r.service.isEmpty { value(&w, Key(" service=", #","service":"#), r.service, plain: plain.contains(.cluster)) }
            if r.served != 0 {
                let side: StaticString = r.served == 1 ? "new" : "old"
                value(&w, Key(" served=", #","served":"#), UnsafeRawBufferPointer(start: side.utf8Start, count: side.utf8CodeUnitCount))
            }
        }
    }

    /// Closes the line; `diverged` is written for compared (CONCURRENT) exchanges.
    public func end(diverged: Bool?, to out: inout [UInt8]) {
        LineSink.emit(to: &out, atMost: 24) { w in
            if let diverged {
                key(&w, Key(" diverged=", #","diverged":"#))
                w.put(diverged ? "true" : "false")
            }
            if format == .json { w.put(0x7D) }
            w.put(0x0A)
        }
    }

    // MARK: Fields

    /// A field's name as each format writes it before the value, separator included.
    private struct Key {
        let logfmt: StaticString
        let json: StaticString
        @inline(__always) init(_ logfmt: StaticString, _ json: StaticString) {
            self.logfmt = logfmt
            self.json = json
        }
    }

    @inline(__always)
    private func key(_ w: inout LineSink, _ key: Key) {
        w.put(format == .json ? key.json : key.logfmt)
    }

    private func number(_ w: inout LineSink, _ name: Key, _ n: UInt64) {
        key(&w, name)
        w.putDecimal(n)
    }

    /// A string value. logfmt: bare when it is non-empty printable ASCII without `"`, `=` or
    /// `\`, else quoted with `"` and `\` escaped and other bytes as `\xHH`. JSON: always
    /// quoted, bytes outside printable ASCII as `\u00HH`.
    private func value(_ w: inout LineSink, _ name: Key, _ bytes: UnsafeRawBufferPointer, plain: Bool = false) {
        key(&w, name)
        if plain && !bytes.isEmpty {
            // Known plain: copied as it is (quoted in JSON).
            if format == .json { w.put(0x22) }
            w.put(bytes)
            if format == .json { w.put(0x22) }
            return
        }
        if format == .logfmt && !bytes.isEmpty && Self.firstSpecial(bytes, alsoBare: true) == bytes.count {
            w.put(bytes)
            return
        }
        w.put(0x22)
        var run = 0   // start of the bytes not yet copied
        var i = Self.firstSpecial(bytes, alsoBare: false)
        while i < bytes.count {
            let b = bytes[i]
            if b < 0x20 || b >= 0x7F || b == 0x22 || b == 0x5C {
                w.put(UnsafeRawBufferPointer(rebasing: bytes[run..<i]))
                run = i + 1
                if b == 0x22 || b == 0x5C {
                    w.put(0x5C)
                    w.put(b)
                } else {
                    w.put(format == .json ? "\\u00" : "\\x")
                    w.put(Self.hexDigit(b >> 4))
                    w.put(Self.hexDigit(b & 15))
                }
            }
            i += 1
        }
        w.put(UnsafeRawBufferPointer(rebasing: bytes[run...]))
        w.put(0x22)
    }

    /// Index of the first byte that must be escaped (outside printable ASCII, `"` or `\`) —
    /// with `alsoBare`, also space and `=`, which stop a logfmt value from being bare — or
    /// `bytes.count`. Eight bytes a step: each test sets a byte's high bit where it holds.
    static func firstSpecial(_ bytes: UnsafeRawBufferPointer, alsoBare: Bool) -> Int {
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        @inline(__always) func hasZero(_ v: UInt64) -> UInt64 { (v &- ones) & ~v & highs }
        let below: UInt64 = alsoBare ? 0x21 : 0x20
        var i = 0
        while i + 8 <= bytes.count {
            let x = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            var hit = ((x &- ones &* below) & ~x & highs)   // a byte below `below` (exact for < 0x80)
            hit |= x & highs                                // a byte ≥ 0x80
            hit |= hasZero(x ^ (ones &* 0x7F)) | hasZero(x ^ (ones &* 0x22)) | hasZero(x ^ (ones &* 0x5C))
            if alsoBare { hit |= hasZero(x ^ (ones &* 0x3D)) }
            if hit != 0 { break }
            i += 8
        }
        while i < bytes.count {
            let b = bytes[i]
            if b < below || b >= 0x7F || b == 0x22 || b == 0x5C || (alsoBare && b == 0x3D) { return i }
            i += 1
        }
        return i
    }

    /// The lowercase hex digit of `v` (0...15).
    public static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 &+ v : 0x57 &+ v }

    /// RFC 3339 UTC with milliseconds: `2026-11-30T20:31:01.123Z` (times from 1970 on).
    public static func appendTime(_ unixNanos: Int64, to out: inout [UInt8]) {
        LineSink.emit(to: &out, atMost: 32) { $0.putTime(unixNanos) }
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

/// Writes bytes straight into the spare capacity of an array: `emit` makes room for at most
/// `atMost` bytes (a bound the caller computes from its inputs: escaping makes at most six
/// bytes of one), runs the writer once, and keeps what it wrote. Every write is checked
/// against the room made, so a wrong bound stops the process instead of writing past it.
struct LineSink {
    let base: UnsafeMutableRawPointer
    var count = 0
    let limit: Int

    static func emit(to out: inout [UInt8], atMost bound: Int, _ body: (inout LineSink) -> Void) {
        out.append(addingCapacity: bound) { span in
            span.withUnsafeMutableBufferPointer { buffer, initialized in
                var sink = LineSink(base: UnsafeMutableRawPointer(buffer.baseAddress!) + initialized, limit: buffer.count - initialized)
                body(&sink)
                initialized += sink.count
            }
        }
    }

    @inline(__always)
    mutating func put(_ byte: UInt8) {
        precondition(count < limit, "LineSink: the bound was too small")
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    @inline(__always)
    mutating func put(_ bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count <= limit - count, "LineSink: the bound was too small")
        if let source = bytes.baseAddress { (base + count).copyMemory(from: source, byteCount: bytes.count) }
        count += bytes.count
    }

    @inline(__always)
    mutating func put(_ s: StaticString) {
        put(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// `n` in decimal, zero-padded to `width` digits (more when it needs them; at most 20).
    mutating func putDecimal(_ n: UInt64, width: Int = 1) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var i = 20
            var v = n
            repeat {
                i -= 1
                digits[i] = UInt8(truncatingIfNeeded: v % 10) &+ 0x30
                v /= 10
            } while v > 0
            while 20 - i < min(width, 20) {
                i -= 1
                digits[i] = 0x30
            }
            put(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(digits)[i...]))
        }
    }

    /// RFC 3339 UTC with milliseconds.
    mutating func putTime(_ unixNanos: Int64) {
        let nanos = max(0, unixNanos)
        let seconds = nanos / 1_000_000_000
        let (y, m, d) = AccessLogLine.civilDate(daysSinceEpoch: seconds / 86_400)
        let sod = seconds % 86_400
        putDecimal(UInt64(y), width: 4); put(0x2D)
        putDecimal(UInt64(m), width: 2); put(0x2D)
        putDecimal(UInt64(d), width: 2); put(0x54)
        putDecimal(UInt64(sod / 3600), width: 2); put(0x3A)
        putDecimal(UInt64(sod / 60 % 60), width: 2); put(0x3A)
        putDecimal(UInt64(sod % 60), width: 2); put(0x2E)
        putDecimal(UInt64(nanos % 1_000_000_000 / 1_000_000), width: 3); put(0x5A)
    }
}
