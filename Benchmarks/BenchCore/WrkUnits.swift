import Foundation

/// wrk's number formats and number parsing (its `units.c`), reproduced exactly so that tools
/// reading wrk's report read ours.
///
/// Formatting divides by the unit's scale while the amount is at least 0.85 × scale, but never
/// reaches the last unit of a list (a quirk of wrk's loop kept on purpose: wrk prints "1200.00ms",
/// never seconds, from the µs list, and never "P" from the binary list).
public enum WrkUnits {
    struct Units {
        var scale: Double
        var base: String
        var units: [String]
    }

    static let timeMicros = Units(scale: 1000, base: "us", units: ["ms", "s"])
    static let timeSeconds = Units(scale: 60, base: "s", units: ["m", "h"])
    static let binary = Units(scale: 1024, base: "", units: ["K", "M", "G", "T", "P"])
    static let metric = Units(scale: 1000, base: "", units: ["k", "M", "G", "T", "P"])

    static func format(_ n: Double, _ m: Units, precision: Int) -> String {
        var amount = n
        var unit = m.base
        let threshold = m.scale * 0.85
        var i = 0
        while i + 1 < m.units.count && amount >= threshold {
            amount /= m.scale
            unit = m.units[i]
            i += 1
        }
        return String(format: "%.\(precision)f", amount) + unit
    }

    /// Bytes: `153.64M`, `1.00K`, `512.00` (wrk's `format_binary`).
    public static func binary(_ n: Double) -> String { format(n, binary, precision: 2) }
    /// Counts: `56.20k` (wrk's `format_metric`).
    public static func metric(_ n: Double) -> String { format(n, metric, precision: 2) }
    /// Microseconds: `635.91us`, `12.92ms`, `2.00s`, `1.50m` (wrk's `format_time_us`).
    public static func timeMicros(_ us: Double) -> String {
        us >= 1_000_000 ? format(us / 1_000_000, timeSeconds, precision: 2) : format(us, timeMicros, precision: 2)
    }
    /// Seconds without decimals: `10s`, `2m` (wrk's `format_time_s`).
    public static func timeSeconds(_ s: Double) -> String { format(s, timeSeconds, precision: 0) }

    /// One table cell as wrk's `print_units` prints it: right-aligned in `width` minus the
    /// padding, then up to two spaces, one fewer for each trailing unit letter.
    public static func cell(_ text: String, width: Int) -> String {
        let chars = Array(text)
        var pad = 2
        if let last = chars.last, last.isLetter { pad -= 1 }
        if chars.count >= 2, chars[chars.count - 2].isLetter { pad -= 1 }
        let w = width - pad
        let shown = chars.count > w ? String(chars[0..<w]) : String(repeating: " ", count: w - chars.count) + text
        return shown + String(repeating: " ", count: pad)
    }

    /// Parses wrk's `scan_units`: an unsigned integer, then optionally a unit of at most two
    /// letters, compared case-insensitively. Returns nil for anything else.
    static func scan(_ text: String, _ m: Units) -> UInt64? {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, let base = UInt64(digits) else { return nil }
        let unit = text.dropFirst(digits.count).lowercased()
        if unit.isEmpty || unit == m.base.lowercased() { return base }
        guard unit.count <= 2 else { return nil }
        var scale: UInt64 = 1
        for u in m.units {
            scale = scale.multipliedReportingOverflow(by: UInt64(m.scale)).partialValue
            if u.lowercased() == unit {
                let (v, overflow) = base.multipliedReportingOverflow(by: scale)
                return overflow ? nil : v
            }
        }
        return nil
    }

    /// A count as wrk reads `-t`/`-c`: `50`, `1k` (1000), `2M`.
    public static func scanMetric(_ text: String) -> UInt64? { scan(text, metric) }

    /// A duration as wrk reads `-d`/`--timeout`, in seconds: `10` and `10s` (seconds), `2m`, `1h`.
    public static func scanSeconds(_ text: String) -> UInt64? { scan(text, timeSeconds) }
}
