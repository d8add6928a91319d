import Foundation

/// A small strict JSON reader and a deterministic writer (RFC 8259).
///
/// Own code rather than `JSONSerialization` because configuration errors must
/// say *where* (line and column), duplicate keys must be rejected (a key given
/// twice is a typo or a merge accident, and silently keeping one is worse),
/// numbers must keep the integer/fraction distinction without `NSNumber`'s
/// Bool ambiguity, and output must be byte-for-byte stable (sorted keys, no
/// `\/` escapes).
///
/// Values are `[String: Any]`, `[Any]`, `String`, `Int` (integer literals that
/// fit), `Double` (other numbers), `Bool` and `NSNull`.
public enum JSONText {
    /// Deepest nesting accepted; API bodies come from the network.
    static let maxDepth = 64

    /// Parses one JSON value that fills `bytes` (surrounding whitespace allowed).
    /// Throws a `ConfigError` on field `json` whose message gives line, column
    /// and byte offset of the first error.
    ///
    /// With `keepingNumberText`, numbers with a fraction or an exponent come back as
    /// `JSONNumber` (value and source text) instead of `Double`, so that a 2014 numeric
    /// `"version": 1.10` keeps its text "1.10" (as a Double it would read back as "1.1").
    public static func parse(_ bytes: [UInt8], keepingNumberText: Bool = false) throws(ConfigError) -> Any {
        var reader = Reader(bytes: bytes)
        reader.keepNumberText = keepingNumberText
        reader.skipWhitespace()
        let value = try reader.value(depth: 0)
        reader.skipWhitespace()
        if reader.position < bytes.count {
            throw reader.error("unexpected \(reader.describeCurrent()) after the JSON value")
        }
        return value
    }

    /// Writes a value compactly with object keys sorted by their UTF-8 bytes.
    /// Accepts the types `parse` produces plus other integer types, `Float`,
    /// optionals (nil as `null`); anything else is written as its description
    /// in a string. Non-finite doubles are written as `null`.
    public static func encode(_ value: Any) -> [UInt8] {
        var out: [UInt8] = []
        write(value, into: &out)
        return out
    }

    // MARK: Reader

    struct Reader {
        let bytes: [UInt8]
        var position = 0
        var keepNumberText = false

        func error(_ message: String, at offset: Int? = nil) -> ConfigError {
            let offset = offset ?? position
            var line = 1
            var column = 1
            for b in bytes[..<min(offset, bytes.count)] {
                if b == UInt8(ascii: "\n") { line += 1; column = 1 } else if b & 0xC0 != 0x80 { column += 1 }
            }
            return ConfigError(field: "json", message: "\(message) at line \(line), column \(column) (byte \(offset))")
        }

        func describeCurrent() -> String {
            guard position < bytes.count else { return "end of input" }
            let b = bytes[position]
            if b >= 0x21 && b < 0x7F { return "'\(Character(Unicode.Scalar(b)))'" }
            return "byte 0x" + String(b, radix: 16)
        }

        mutating func skipWhitespace() {
            while position < bytes.count {
                switch bytes[position] {
                case 0x20, 0x09, 0x0A, 0x0D: position += 1
                default: return
                }
            }
        }

        mutating func value(depth: Int) throws(ConfigError) -> Any {
            guard depth < JSONText.maxDepth else { throw error("nesting deeper than \(JSONText.maxDepth)") }
            guard position < bytes.count else { throw error("unexpected end of input") }
            switch bytes[position] {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""): return try string()
            case UInt8(ascii: "t"): try literal("true"); return true
            case UInt8(ascii: "f"): try literal("false"); return false
            case UInt8(ascii: "n"): try literal("null"); return NSNull()
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
            default: throw error("unexpected \(describeCurrent())")
            }
        }

        mutating func literal(_ word: String) throws(ConfigError) {
            let start = position
            for b in word.utf8 {
                guard position < bytes.count, bytes[position] == b else {
                    throw error("invalid literal (expected \(word))", at: start)
                }
                position += 1
            }
        }

        mutating func object(depth: Int) throws(ConfigError) -> [String: Any] {
            position += 1
            var result: [String: Any] = [:]
            skipWhitespace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "}") { position += 1; return result }
            while true {
                skipWhitespace()
                guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else {
                    throw error("expected a string key, found \(describeCurrent())")
                }
                let keyStart = position
                let key = try string()
                if result[key] != nil { throw error("duplicate key \"\(key)\"", at: keyStart) }
                skipWhitespace()
                guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else {
                    throw error("expected ':' after key \"\(key)\", found \(describeCurrent())")
                }
                position += 1
                skipWhitespace()
                result[key] = try value(depth: depth + 1)
                skipWhitespace()
                guard position < bytes.count else { throw error("unterminated object (expected ',' or '}')") }
                if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
                if bytes[position] == UInt8(ascii: "}") { position += 1; return result }
                throw error("expected ',' or '}', found \(describeCurrent())")
            }
        }

        mutating func array(depth: Int) throws(ConfigError) -> [Any] {
            position += 1
            var result: [Any] = []
            skipWhitespace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "]") { position += 1; return result }
            while true {
                skipWhitespace()
                result.append(try value(depth: depth + 1))
                skipWhitespace()
                guard position < bytes.count else { throw error("unterminated array (expected ',' or ']')") }
                if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
                if bytes[position] == UInt8(ascii: "]") { position += 1; return result }
                throw error("expected ',' or ']', found \(describeCurrent())")
            }
        }

        mutating func hex4() throws(ConfigError) -> UInt32 {
            guard position + 4 <= bytes.count else { throw error("truncated \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let b = bytes[position]
                let d: UInt32
                switch b {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(b - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(b - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(b - UInt8(ascii: "A") + 10)
                default: throw error("invalid hex digit in \\u escape")
                }
                v = v << 4 | d
                position += 1
            }
            return v
        }

        mutating func string() throws(ConfigError) -> String {
            let start = position
            position += 1
            var buffer: [UInt8] = []
            while true {
                guard position < bytes.count else { throw error("unterminated string", at: start) }
                let b = bytes[position]
                switch b {
                case UInt8(ascii: "\""):
                    position += 1
                    guard let s = String(validating: buffer, as: UTF8.self) else {
                        throw error("string is not valid UTF-8", at: start)
                    }
                    return s
                case UInt8(ascii: "\\"):
                    position += 1
                    guard position < bytes.count else { throw error("unterminated string", at: start) }
                    let e = bytes[position]
                    position += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): buffer.append(e)
                    case UInt8(ascii: "b"): buffer.append(0x08)
                    case UInt8(ascii: "f"): buffer.append(0x0C)
                    case UInt8(ascii: "n"): buffer.append(0x0A)
                    case UInt8(ascii: "r"): buffer.append(0x0D)
                    case UInt8(ascii: "t"): buffer.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xD800..<0xDC00).contains(scalar) {
                            guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"),
                                  bytes[position + 1] == UInt8(ascii: "u") else {
                                throw error("unpaired surrogate in \\u escape")
                            }
                            position += 2
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate in \\u escape") }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00..<0xE000).contains(scalar) {
                            throw error("unpaired surrogate in \\u escape")
                        }
                        buffer.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8)
                    default:
                        throw error("invalid escape '\\\(Character(Unicode.Scalar(e)))'", at: position - 2)
                    }
                case 0x00..<0x20:
                    throw error("control character in string (escape it)")
                default:
                    buffer.append(b)
                    position += 1
                }
            }
        }

        mutating func number() throws(ConfigError) -> Any {
            let start = position
            func digits(_ r: inout Reader) -> Int {
                let s = r.position
                while r.position < r.bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(r.bytes[r.position]) {
                    r.position += 1
                }
                return r.position - s
            }
            if bytes[position] == UInt8(ascii: "-") { position += 1 }
            let intStart = position
            let n = digits(&self)
            guard n > 0 else { throw error("invalid number", at: start) }
            if n > 1 && bytes[intStart] == UInt8(ascii: "0") { throw error("leading zero in number", at: start) }
            var integral = true
            if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
                integral = false
                position += 1
                guard digits(&self) > 0 else { throw error("expected digits after '.'", at: start) }
            }
            if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
                integral = false
                position += 1
                if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
                    position += 1
                }
                guard digits(&self) > 0 else { throw error("expected digits in exponent", at: start) }
            }
            let text = String(decoding: bytes[start..<position], as: UTF8.self)
            if integral, let i = Int(text) { return i }
            guard let d = Double(text), d.isFinite else { throw error("number out of range", at: start) }
            return keepNumberText ? JSONNumber(value: d, text: text) : d
        }
    }

    // MARK: Writer

    static func write(_ value: Any, into out: inout [UInt8]) {
        switch value {
        case is NSNull:
            out += "null".utf8
        case let b as Bool:
            out += (b ? "true" : "false").utf8
        case let s as String:
            writeString(s, into: &out)
        case let i as Int:
            out += String(i).utf8
        case let i as any BinaryInteger:
            out += String(describing: i).utf8
        case let d as Double:
            writeDouble(d, into: &out)
        case let n as JSONNumber:
            out += n.text.utf8
        case let f as Float:
            writeDouble(Double(f), into: &out)
        case let dict as [String: Any]:
            out.append(UInt8(ascii: "{"))
            let keys = dict.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            for (n, key) in keys.enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                writeString(key, into: &out)
                out.append(UInt8(ascii: ":"))
                write(dict[key]!, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        case let array as [Any]:
            out.append(UInt8(ascii: "["))
            for (n, element) in array.enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                write(element, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        default:
            // Optionals arrive wrapped in Any; unwrap one level via reflection.
            let mirror = Mirror(reflecting: value)
            if mirror.displayStyle == .optional {
                if let inner = mirror.children.first?.value { write(inner, into: &out) } else { out += "null".utf8 }
            } else {
                writeString(String(describing: value), into: &out)
            }
        }
    }

    /// Appends a number: integral values as integers, others in Swift's shortest round-trip form.
    public static func writeDouble(_ d: Double, into out: inout [UInt8]) {
        guard d.isFinite else { out += "null".utf8; return }
        if d == d.rounded(), abs(d) < 1e15 {
            out += String(Int(d)).utf8
        } else {
            out += "\(d)".utf8
        }
    }

    /// Appends `s` as a JSON string (quotes, backslashes and control characters escaped).
    public static func writeString(_ s: String, into out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out += "\\\"".utf8
            case UInt8(ascii: "\\"): out += "\\\\".utf8
            case 0x0A: out += "\\n".utf8
            case 0x0D: out += "\\r".utf8
            case 0x09: out += "\\t".utf8
            case 0x00..<0x20, 0x7F:
                out += "\\u00".utf8
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0xF)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// A JSON number with a fraction or exponent, with the exact text it was written as
/// (see `JSONText.parse(_:keepingNumberText:)`).
public struct JSONNumber: Sendable, Equatable {
    /// The number's value.
    public var value: Double
    /// The number as written in the source, e.g. `1.10`.
    public var text: String
}
