/// A JSON value written with keys in the order given (reports read better that way).
/// Output only: the tool never reads JSON.
public indirect enum JSONOut: Equatable, Sendable {
    case object([(String, JSONOut)])
    case array([JSONOut])
    case string(String)
    case integer(Int64)
    /// Written with at most 3 decimals; NaN and infinities become null.
    case number(Double)
    case bool(Bool)
    case null

    public static func == (a: JSONOut, b: JSONOut) -> Bool { a.text() == b.text() }

    /// An unsigned count (saturating at Int64.max).
    public static func count(_ n: UInt64) -> JSONOut { .integer(Int64(clamping: n)) }

    /// The JSON text, indented by two spaces per level when `pretty`.
    public func text(pretty: Bool = true) -> String {
        var out = ""
        write(into: &out, pretty: pretty, indent: 0)
        if pretty { out += "\n" }
        return out
    }

    private func write(into out: inout String, pretty: Bool, indent: Int) {
        let newline = pretty ? "\n" : ""
        let pad = pretty ? String(repeating: "  ", count: indent + 1) : ""
        let closePad = pretty ? String(repeating: "  ", count: indent) : ""
        switch self {
        case .object(let members):
            if members.isEmpty { out += "{}"; return }
            out += "{" + newline
            for (i, (key, value)) in members.enumerated() {
                out += pad
                JSONOut.writeString(key, into: &out)
                out += pretty ? ": " : ":"
                value.write(into: &out, pretty: pretty, indent: indent + 1)
                out += (i + 1 < members.count ? "," : "") + newline
            }
            out += closePad + "}"
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            // Arrays of scalars stay on one line.
            let flat = items.allSatisfy { if case .object = $0 { return false }; if case .array = $0 { return false }; return true }
            if flat || !pretty {
                out += "["
                for (i, item) in items.enumerated() {
                    item.write(into: &out, pretty: false, indent: 0)
                    if i + 1 < items.count { out += pretty ? ", " : "," }
                }
                out += "]"
                return
            }
            out += "[" + newline
            for (i, item) in items.enumerated() {
                out += pad
                item.write(into: &out, pretty: pretty, indent: indent + 1)
                out += (i + 1 < items.count ? "," : "") + newline
            }
            out += closePad + "]"
        case .string(let s): JSONOut.writeString(s, into: &out)
        case .integer(let n): out += String(n)
        case .number(let d):
            guard d.isFinite else { out += "null"; return }
            let rounded = (d * 1000).rounded() / 1000
            if rounded == rounded.rounded(), abs(rounded) < 1e15 {
                out += String(Int64(rounded))
            } else {
                out += "\(rounded)"
            }
        case .bool(let b): out += b ? "true" : "false"
        case .null: out += "null"
        }
    }

    private static func writeString(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
