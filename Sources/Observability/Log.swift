import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Log levels, the 2014 names, most severe first.
public enum LogLevel: Int, Sendable, Comparable, CaseIterable {
    case critical = 0, error, warning, notice, info, debug

    /// Parses a level name in any case (`warning`, `WARNING`, `Warning`); nil when unknown.
    public init?(name: String) {
        switch name.uppercased() {
        case "CRITICAL": self = .critical
        case "ERROR": self = .error
        case "WARNING", "WARN": self = .warning
        case "NOTICE": self = .notice
        case "INFO": self = .info
        case "DEBUG": self = .debug
        default: return nil
        }
    }

    /// The upper-case name.
    public var name: String {
        switch self {
        case .critical: "CRITICAL"
        case .error: "ERROR"
        case .warning: "WARNING"
        case .notice: "NOTICE"
        case .info: "INFO"
        case .debug: "DEBUG"
        }
    }

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
}

/// Structured logs: one `key=value` line per event on stderr, written with a single
/// `write(2)` so lines from different threads never interleave.
public enum Log {
    private static let threshold = Atomic<Int>(LogLevel.warning.rawValue)

    /// Sets the most verbose level that is written.
    public static func setLevel(_ level: LogLevel) { threshold.store(level.rawValue, ordering: .relaxed) }

    /// True when a message at `level` would be written (check before building costly fields).
    @inline(__always)
    public static func enabled(_ level: LogLevel) -> Bool { level.rawValue <= threshold.load(ordering: .relaxed) }

    /// Writes `ts=… level=… event=<event> k=v …`. Values with spaces, quotes or `=` are quoted.
    public static func write(_ level: LogLevel, _ event: String, _ fields: KeyValuePairs<String, String> = [:]) {
        write(level, event, fields: fields.map { ($0.key, $0.value) })
    }

    /// Writes a line whose fields were assembled at run time, in order.
    public static func write(_ level: LogLevel, _ event: String, fields: [(String, String)]) {
        guard enabled(level) else { return }
        var line = "ts=\(timestamp()) level=\(level.name) event=\(event)"
        for (key, value) in fields {
            line += " \(key)=\(quote(value))"
        }
        line += "\n"
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBytes { _ = Glibc.write(2, $0.baseAddress, $0.count) }
    }

    public static func critical(_ event: String, _ fields: KeyValuePairs<String, String> = [:]) { write(.critical, event, fields) }
    public static func error(_ event: String, _ fields: KeyValuePairs<String, String> = [:]) { write(.error, event, fields) }
    public static func warning(_ event: String, _ fields: KeyValuePairs<String, String> = [:]) { write(.warning, event, fields) }
    public static func notice(_ event: String, _ fields: KeyValuePairs<String, String> = [:]) { write(.notice, event, fields) }
    public static func info(_ event: String, _ fields: KeyValuePairs<String, String> = [:]) { write(.info, event, fields) }
    public static func debug(_ event: String, _ fields: KeyValuePairs<String, String> = [:]) { write(.debug, event, fields) }

    static func quote(_ value: String) -> String {
        if !value.isEmpty && !value.utf8.contains(where: { $0 <= 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "=") || $0 >= 0x7f }) {
            return value
        }
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 { out += "\\x" + String(scalar.value, radix: 16) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }

    /// RFC 3339 UTC time with milliseconds.
    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var parts = tm()
        gmtime_r(&t, &parts)
        func pad(_ v: Int32, _ width: Int = 2) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1))-\(pad(parts.tm_mday))T\(pad(parts.tm_hour)):\(pad(parts.tm_min)):\(pad(parts.tm_sec)).\(pad(Int32(ts.tv_nsec / 1_000_000), 3))Z"
    }
}
