import Foundation

/// The figures of one comparison: per run, per target (medians over rounds), ratios to direct,
/// and the CI guard's verdict. Pure: no I/O, so tests can feed it made-up runs.
struct CompareReport {
    let options: CompareOptions
    /// Targets in table order (direct first).
    let targetNames: [String]
    let runs: [CompareRun]

    /// One target's figures: medians over its rounds.
    struct Summary {
        var target: String
        var rounds: Int
        var requestsPerSec: Double
        var p50Us: Double
        var p90Us: Double
        var p99Us: Double
        var p999Us: Double
        var errors: UInt64
        /// All rounds' latency samples together (for the percentile curves).
        var latency: LatencyHistogram
    }

    /// Ratios of a target to direct; nil when direct has no figure to divide by.
    struct Ratios {
        var requestsPerSec: Double?
        var p50: Double?
        var p99: Double?
        var p999: Double?
    }

    static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let s = values.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    var summaries: [Summary] {
        targetNames.map { name in
            let mine = runs.filter { $0.target == name }
            var merged = LatencyHistogram()
            for r in mine { merged.merge(r.result.latency) }
            return Summary(
                target: name, rounds: mine.count,
                requestsPerSec: Self.median(mine.map { $0.result.requestsPerSecond }),
                p50Us: Self.median(mine.map { $0.result.latencyMicros(50) }),
                p90Us: Self.median(mine.map { $0.result.latencyMicros(90) }),
                p99Us: Self.median(mine.map { $0.result.latencyMicros(99) }),
                p999Us: Self.median(mine.map { $0.result.latencyMicros(99.9) }),
                errors: mine.reduce(0) { $0 + $1.errors },
                latency: merged)
        }
    }

    func ratios(_ s: Summary, direct: Summary?) -> Ratios {
        func ratio(_ a: Double, _ b: Double?) -> Double? {
            guard let b, b > 0 else { return nil }
            return a / b
        }
        return Ratios(requestsPerSec: ratio(s.requestsPerSec, direct?.requestsPerSec), p50: ratio(s.p50Us, direct?.p50Us),
                      p99: ratio(s.p99Us, direct?.p99Us), p999: ratio(s.p999Us, direct?.p999Us))
    }

    // MARK: Table

    /// The console table: req/s, p50, p99, p99.9 and errors, each figure also as a ratio to direct.
    func table() -> String {
        let all = summaries
        let direct = all.first { $0.target == "direct" }
        func r(_ x: Double?) -> String { x.map { String(format: "%.2f", $0) } ?? "-" }
        func col(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }
        var out = "\n" + "target".padding(toLength: 22, withPad: " ", startingAt: 0)
        out += col("req/s", 11) + col("x", 6) + col("p50", 10) + col("x", 6) + col("p99", 10) + col("x", 6)
        out += col("p99.9", 10) + col("x", 6) + col("errors", 8) + "\n"
        for s in all {
            let q = ratios(s, direct: direct)
            out += s.target.padding(toLength: 22, withPad: " ", startingAt: 0)
            out += col(String(format: "%.0f", s.requestsPerSec), 11) + col(r(q.requestsPerSec), 6)
            out += col(WrkUnits.timeMicros(s.p50Us), 10) + col(r(q.p50), 6)
            out += col(WrkUnits.timeMicros(s.p99Us), 10) + col(r(q.p99), 6)
            out += col(WrkUnits.timeMicros(s.p999Us), 10) + col(r(q.p999), 6)
            out += col(String(s.errors), 8) + "\n"
        }
        let rounds = options.rounds
        out += "(x = ratio to direct; \(rounds == 1 ? "one round" : "medians over \(rounds) rounds"); errors = socket errors + non-2xx/3xx)\n"
        return out
    }

    // MARK: JSON

    func json() -> JSONOut {
        let all = summaries
        let direct = all.first { $0.target == "direct" }
        func opt(_ x: Double?) -> JSONOut { x.map { .number($0) } ?? .null }
        let runItems: [JSONOut] = runs.map { run in
            .object([
                ("target", .string(run.target)),
                ("round", .integer(Int64(run.round))),
                ("requestsPerSec", .number(run.result.requestsPerSecond)),
                ("latencyUs", .object([
                    ("p50", .number(run.result.latencyMicros(50))),
                    ("p90", .number(run.result.latencyMicros(90))),
                    ("p99", .number(run.result.latencyMicros(99))),
                    ("p999", .number(run.result.latencyMicros(99.9))),
                ])),
                ("errors", .count(run.errors)),
                ("requests", .count(run.result.requests)),
            ])
        }
        let summaryItems: [JSONOut] = all.map { s in
            let q = ratios(s, direct: direct)
            return .object([
                ("target", .string(s.target)),
                ("requestsPerSec", .number(s.requestsPerSec)),
                ("p50Us", .number(s.p50Us)),
                ("p90Us", .number(s.p90Us)),
                ("p99Us", .number(s.p99Us)),
                ("p999Us", .number(s.p999Us)),
                ("errors", .count(s.errors)),
                ("ratioToDirect", .object([
                    ("requestsPerSec", opt(q.requestsPerSec)), ("p50", opt(q.p50)), ("p99", opt(q.p99)), ("p999", opt(q.p999)),
                ])),
            ])
        }
        let o = options
        return .object([
            ("params", .object([
                ("path", .string(o.path)), ("close", .bool(o.close)), ("connections", .integer(Int64(o.connections))),
                ("threads", .integer(Int64(o.threads))), ("durationSeconds", .count(o.durationSeconds)),
                ("rounds", .integer(Int64(o.rounds))), ("workers", .integer(Int64(o.workers))),
                ("backend", .string(o.backendURL?.text ?? "built-in")),
                ("latencyCorrection", .string(LatencyCorrection.wrkExpectedInterval.rawValue)),
            ])),
            ("runs", .array(runItems)),
            ("summary", .array(summaryItems)),
            ("guardRatios", .object(guardRatios().sorted { Baseline.order($0.key, $1.key) }.map { ($0.key, .number($0.value)) })),
        ])
    }

    // MARK: Guard

    var guardDescription: String {
        var parts: [String] = []
        if options.baselinePath != nil { parts.append("req/s ratios >= \(options.maxDrop) x baseline") }
        if let x = options.maxP99Ratio { parts.append("p99 <= \(x) x direct") }
        if let y = options.minThroughputRatio { parts.append("req/s >= \(y) x direct") }
        parts.append("errors <= \(options.maxErrors ?? 0)")
        return parts.joined(separator: ", ")
    }

    /// One message per bound a switchyard target crosses (empty = pass).
    func guardFailures() -> [String] {
        let all = summaries
        guard let direct = all.first(where: { $0.target == "direct" }), direct.requestsPerSec > 0, direct.p99Us > 0 else {
            return ["direct: no figures to compare with (did the backend answer?)"]
        }
        var failures: [String] = []
        for s in all where s.target.hasPrefix("switchyard") {
            let q = ratios(s, direct: direct)
            if let max = options.maxP99Ratio, let p99 = q.p99, p99 > max {
                failures.append(String(format: "%@: p99 ratio %.2f exceeds --max-p99-ratio %.2f (p99 %@ vs direct %@)",
                                       s.target, p99, max, WrkUnits.timeMicros(s.p99Us), WrkUnits.timeMicros(direct.p99Us)))
            }
            if let min = options.minThroughputRatio, let rps = q.requestsPerSec, rps < min {
                failures.append(String(format: "%@: throughput ratio %.2f is below --min-throughput-ratio %.2f (%.0f vs direct %.0f req/s)",
                                       s.target, rps, min, s.requestsPerSec, direct.requestsPerSec))
            }
            let maxErrors = options.maxErrors ?? 0
            if s.errors > maxErrors {
                failures.append("\(s.target): \(s.errors) errors (socket errors + non-2xx/3xx), more than --max-errors \(maxErrors)")
            }
            if s.requestsPerSec == 0 { failures.append("\(s.target): no request completed") }
        }
        return failures
    }

    // MARK: Baseline guard

    /// Throughput ratios measured in this run, as a baseline keeps them: `instant/direct` and
    /// `<mode>/instant` for every other mode measured.
    func guardRatios() -> [String: Double] {
        let all = summaries
        func rps(_ target: String) -> Double? {
            guard let s = all.first(where: { $0.target == target }), s.requestsPerSec > 0 else { return nil }
            return s.requestsPerSec
        }
        var out: [String: Double] = [:]
        guard let instant = rps("switchyard-instant") else { return out }
        if let direct = rps("direct") { out["instant/direct"] = instant / direct }
        for mode in CompareOptions.switchyardModes where mode != "instant" {
            if let x = rps("switchyard-\(mode)") { out["\(mode)/instant"] = x / instant }
        }
        return out
    }

    /// The baseline checks of this run and a table of them.
    func baselineChecks(_ baseline: Baseline) -> (checks: [Baseline.Check], table: String) {
        let checks = baseline.check(payload: options.payloadKey, measured: guardRatios(), maxDrop: options.maxDrop)
        var out = "\nguard: req/s ratios measured in this run vs \(options.baselinePath ?? "baseline") (\(options.payloadKey))\n"
        out += "ratio".padding(toLength: 22, withPad: " ", startingAt: 0) + "measured  baseline     bound\n"
        for c in checks {
            out += c.name.padding(toLength: 22, withPad: " ", startingAt: 0)
            let measured = c.measured.map { String(format: "%.3f", $0) } ?? "-"
            out += String(repeating: " ", count: max(0, 8 - measured.count)) + measured
            out += String(format: "  %8.3f  %8.3f  ", c.baseline, c.bound) + (c.passed ? "ok" : "FAILED") + "\n"
        }
        return (checks, out)
    }

    // MARK: HTML

    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

    /// A self-contained page: the latency percentile curves (x on a "nines" scale) and throughput bars.
    func html() -> String {
        let all = summaries
        let direct = all.first { $0.target == "direct" }
        let o = options
        var page = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>switchyard-bench compare</title>
        <style>
        body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em; color: #222; }
        table { border-collapse: collapse; margin: 1em 0; font-variant-numeric: tabular-nums; }
        th, td { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: right; }
        th:first-child, td:first-child { text-align: left; }
        .note { color: #666; font-size: 90%; }
        svg text { font-size: 12px; fill: #333; }
        </style></head><body>
        <h1>switchyard-bench compare</h1>
        <p>GET \(Self.escape(o.path))\(o.close ? " (Connection: close: a new connection per request)" : ""), -t\(o.threads) -c\(o.connections), \(o.durationSeconds) s per run, \(o.rounds) round(s) interleaved,
        switchyard --workers \(o.workers), backend \(Self.escape(o.backendURL?.text ?? "built-in")). All on 127.0.0.1.</p>

        """
        page += "<table><tr><th>target</th><th>req/s</th><th>× direct</th><th>p50</th><th>× direct</th><th>p99</th><th>× direct</th><th>p99.9</th><th>× direct</th><th>errors</th></tr>\n"
        func r(_ x: Double?) -> String { x.map { String(format: "%.2f", $0) } ?? "–" }
        for s in all {
            let q = ratios(s, direct: direct)
            page += "<tr><td>\(Self.escape(s.target))</td><td>\(String(format: "%.0f", s.requestsPerSec))</td><td>\(r(q.requestsPerSec))</td>"
            page += "<td>\(WrkUnits.timeMicros(s.p50Us))</td><td>\(r(q.p50))</td><td>\(WrkUnits.timeMicros(s.p99Us))</td><td>\(r(q.p99))</td>"
            page += "<td>\(WrkUnits.timeMicros(s.p999Us))</td><td>\(r(q.p999))</td><td>\(s.errors)</td></tr>\n"
        }
        page += "</table>\n<h2>Latency by percentile</h2>\n" + latencyChart(all) + "\n"
        page += "<p class=\"note\">x: percentile on a “nines” scale (each step is ten times rarer); y: latency, all rounds of a target together.</p>\n"
        page += "<h2>Throughput</h2>\n" + throughputChart(all, direct: direct) + "\n"
        page += "<p class=\"note\">Latency is corrected for coordinated omission as wrk does (expected interval = run time / requests per connection).</p>\n"
        page += "</body></html>\n"
        return page
    }

    /// Percentiles of the curve: 0 ... 99.99 evenly on the nines scale.
    static let curveNines: [Double] = stride(from: 0.0, through: 4.0, by: 0.05).map { $0 }

    static func percentile(nines x: Double) -> Double { 100 * (1 - pow(10, -x)) }

    func latencyChart(_ all: [Summary]) -> String {
        let width = 780.0, height = 420.0, left = 80.0, right = 170.0, top = 20.0, bottom = 50.0
        let plotW = width - left - right, plotH = height - top - bottom
        let curves = all.map { s in Self.curveNines.map { (x: $0, us: s.latency.value(atPercentile: Self.percentile(nines: $0)) / 1000) } }
        let yMaxRaw = curves.flatMap { $0.map(\.us) }.max() ?? 1
        let step = Self.niceStep(max(yMaxRaw, 1) / 5)
        let yMax = (max(yMaxRaw, 1) / step).rounded(.up) * step
        func px(_ x: Double) -> Double { left + x / 4 * plotW }
        func py(_ us: Double) -> Double { top + plotH - us / yMax * plotH }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\">\n"
        svg += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(plotW)\" height=\"\(plotH)\" fill=\"none\" stroke=\"#999\"/>\n"
        for (x, label) in [(0.0, "0%"), (1.0, "90%"), (2.0, "99%"), (3.0, "99.9%"), (4.0, "99.99%")] {
            svg += "<line x1=\"\(px(x))\" y1=\"\(top)\" x2=\"\(px(x))\" y2=\"\(top + plotH)\" stroke=\"#eee\"/>"
            svg += "<text x=\"\(px(x))\" y=\"\(top + plotH + 18)\" text-anchor=\"middle\">\(label)</text>\n"
        }
        var y = 0.0
        while y <= yMax + step / 2 {
            svg += "<line x1=\"\(left)\" y1=\"\(py(y))\" x2=\"\(left + plotW)\" y2=\"\(py(y))\" stroke=\"#eee\"/>"
            svg += "<text x=\"\(left - 6)\" y=\"\(py(y) + 4)\" text-anchor=\"end\">\(y == 0 ? "0" : WrkUnits.timeMicros(y))</text>\n"
            y += step
        }
        svg += "<text x=\"\(left + plotW / 2)\" y=\"\(height - 8)\" text-anchor=\"middle\">percentile</text>\n"
        svg += "<text x=\"16\" y=\"\(top + plotH / 2)\" text-anchor=\"middle\" transform=\"rotate(-90 16 \(top + plotH / 2))\">latency</text>\n"
        for (i, s) in all.enumerated() {
            let color = Self.colors[i % Self.colors.count]
            let points = curves[i].map { String(format: "%.1f,%.1f", px($0.x), py($0.us)) }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(points)\"><title>\(Self.escape(s.target))</title></polyline>\n"
            let ly = top + 10 + Double(i) * 18
            svg += "<line x1=\"\(left + plotW + 14)\" y1=\"\(ly)\" x2=\"\(left + plotW + 34)\" y2=\"\(ly)\" stroke=\"\(color)\" stroke-width=\"3\"/>"
            svg += "<text x=\"\(left + plotW + 40)\" y=\"\(ly + 4)\">\(Self.escape(s.target))</text>\n"
        }
        return svg + "</svg>"
    }

    func throughputChart(_ all: [Summary], direct: Summary?) -> String {
        let left = 170.0, barH = 22.0, gap = 8.0, plotW = 440.0, width = 780.0
        let height = Double(all.count) * (barH + gap) + 20
        let maxRps = max(all.map(\.requestsPerSec).max() ?? 1, 1)
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\">\n"
        for (i, s) in all.enumerated() {
            let y = 10 + Double(i) * (barH + gap)
            let w = s.requestsPerSec / maxRps * plotW
            let ratio = ratios(s, direct: direct).requestsPerSec.map { String(format: " (%.2f× direct)", $0) } ?? ""
            svg += "<text x=\"\(left - 8)\" y=\"\(y + barH / 2 + 4)\" text-anchor=\"end\">\(Self.escape(s.target))</text>"
            svg += "<rect x=\"\(left)\" y=\"\(y)\" width=\"\(String(format: "%.1f", w))\" height=\"\(barH)\" fill=\"\(Self.colors[i % Self.colors.count])\"/>"
            svg += "<text x=\"\(left + w + 6)\" y=\"\(y + barH / 2 + 4)\">\(String(format: "%.0f", s.requestsPerSec)) req/s\(ratio)</text>\n"
        }
        return svg + "</svg>"
    }

    /// 1, 2 or 5 times a power of ten, at least `raw`.
    static func niceStep(_ raw: Double) -> Double {
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        for m in [1.0, 2.0, 5.0, 10.0] where m * magnitude >= raw { return m * magnitude }
        return 10 * magnitude
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
