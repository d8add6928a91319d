/// A text table for the terminal: a header row and rows of cells, columns padded to their
/// widest cell, numbers right-aligned (a column is numeric when every cell starts with a digit,
/// a sign or a dash standing for nothing).
struct CtlTable: Equatable {
    var headers: [String]
    var rows: [[String]] = []
    /// Headers of columns kept left-aligned even when their cells look like numbers (versions).
    var textColumns: Set<String> = ["SERVICE", "UUID", "VERSION", "TIME", "BACKENDS", "STATUS"]

    /// The table as lines joined by newlines, without a trailing newline. Columns are separated
    /// by two spaces; trailing spaces are trimmed.
    func render() -> String {
        let columns = headers.count
        var widths = headers.map(\.count)
        for row in rows {
            for (i, cell) in row.prefix(columns).enumerated() { widths[i] = max(widths[i], cell.count) }
        }
        let numeric = (0..<columns).map { i in
            !textColumns.contains(headers[i]) && !rows.isEmpty && rows.allSatisfy { row in
                let cell = i < row.count ? row[i] : ""
                return cell == "-" || cell.first.map { $0.isNumber || $0 == "+" || ($0 == "-" && cell.count > 1) } ?? true
            }
        }
        func line(_ cells: [String]) -> String {
            var parts: [String] = []
            for i in 0..<columns {
                let cell = i < cells.count ? cells[i] : ""
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                parts.append(numeric[i] ? pad + cell : cell + pad)
            }
            var text = parts.joined(separator: "  ")
            while text.hasSuffix(" ") { text.removeLast() }
            return text
        }
        return ([line(headers)] + rows.map(line)).joined(separator: "\n")
    }
}

/// Numbers and durations as the tables show them.
enum CtlFormat {
    /// `0`, `12`, `1.5k`, `2.3M`: counts compact but exact below 10 000.
    static func count(_ n: Int) -> String {
        switch n {
        case ..<10_000: return String(n)
        case ..<1_000_000: return fixed(Double(n) / 1000, 1) + "k"
        default: return fixed(Double(n) / 1_000_000, 1) + "M"
        }
    }

    /// `x` with `digits` decimals, without a locale.
    static func fixed(_ x: Double, _ digits: Int) -> String {
        guard x.isFinite else { return "-" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (abs(x) * scale).rounded()
        let whole = Int(scaled / scale)
        let fraction = Int(scaled - Double(whole) * scale)
        let sign = x < 0 && scaled != 0 ? "-" : ""
        guard digits > 0 else { return sign + String(whole) }
        let text = String(fraction)
        return sign + String(whole) + "." + String(repeating: "0", count: digits - text.count) + text
    }

    /// A ratio as a percentage: `0.0123` → `1.23 %`.
    static func percent(_ ratio: Double) -> String { fixed(ratio * 100, ratio * 100 >= 10 ? 1 : 2) + " %" }

    /// Seconds as `45s`, `12m05s`, `3h07m`, `2d04h`.
    static func duration(_ seconds: Int) -> String {
        let s = max(0, seconds)
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : String(n) }
        switch s {
        case ..<60: return "\(s)s"
        case ..<3600: return "\(s / 60)m\(two(s % 60))s"
        case ..<86400: return "\(s / 3600)h\(two(s % 3600 / 60))m"
        default: return "\(s / 86400)d\(two(s % 86400 / 3600))h"
        }
    }
}
