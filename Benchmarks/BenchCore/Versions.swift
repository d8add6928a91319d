import Foundation
import Syscalls

/// `switchyard-bench versions --old URL --new URL`: is the new version of a service slower than
/// the old one, by more than an allowed margin, with confidence?
///
/// Both versions get the same load in interleaved rounds (old then new, then new then old, …),
/// so drift on a shared machine hits both alike. The latencies of all rounds are pooled per
/// version (the measured ones, without the closed-loop correction's added samples) and a
/// one-sided Mann-Whitney U test asks whether the new version's latencies tend to exceed the
/// old's *scaled by 1 + margin*.
///
/// Latencies of one run are not independent draws (a noisy neighbour slows a whole run), so
/// the pooled test alone would be over-confident: one disturbed round of the new version could
/// decide. The rounds are the independent replicates, so the same test is also made within
/// each round, and a one-sided sign test asks whether the rounds in which the new version is
/// slower beyond the margin are too many to be chance. The new version is judged slower (exit
/// status 1) only when both are significant at the stated confidence. With the default 8
/// rounds that takes at least 7 rounds of 8 (p = 0.035); 5 rounds need all 5 (p = 0.031).
public enum VersionsCommand {
    public struct Options: Equatable, Sendable {
        public var old: TargetURL
        public var new: TargetURL
        public var connections = 16
        public var threads = 1
        public var durationSeconds: UInt64 = 3
        public var rounds = 8
        public var warmupSeconds: UInt64 = 1
        /// Overrides the URLs' paths.
        public var path: String?
        /// Allowed slowdown as a fraction (0.05 = 5 %).
        public var maxSlowdown = 0.05
        /// Confidence of the judgement (0.95: p < 0.05).
        public var confidence = 0.95
        public var jsonPath: String?

        public init(old: TargetURL, new: TargetURL) {
            self.old = old
            self.new = new
        }
    }

    public static let usage = """
    Usage: switchyard-bench versions --old URL --new URL [options]
      Is the new version slower? Interleaved rounds of the same load against both versions
      (old,new then new,old …) and a one-sided Mann-Whitney U test of "new tends to be slower
      than old × (1 + margin)", on the latencies pooled over the rounds and within each round
      (a sign test over the rounds). Exit status 1 when both say so at the stated confidence;
      0 when not; 2 when it could not measure.
      Options:
        --old <URL>, --new <URL>  the two versions (http:// on loopback)
        -c, --connections <N>     connections per run          (default 16)
        -t, --threads     <N>     load threads per run         (default 1)
        -d, --duration    <T>     length of each run           (default 3s)
            --rounds      <N>     rounds (each runs both)      (default 8)
            --warmup      <T>     unrecorded run of each first (default 1s; 0 = none)
            --path        <P>     request this path on both (default: each URL's own)
            --max-slowdown <X>    allowed slowdown: 5% or 0.05 (default 5%)
            --confidence  <X>     95% or 0.95                  (default 95%)
            --json     <FILE>     also write the figures and the verdict as JSON
    """

    /// "5%" or "0.05" → 0.05.
    static func fraction(_ text: String, name: String, range: ClosedRange<Double>) throws(BenchUsageError) -> Double {
        var t = text.trimmingCharacters(in: .whitespaces)
        var scale = 1.0
        if t.hasSuffix("%") { t.removeLast(); scale = 100 }
        guard let x = Double(t), x.isFinite, range.contains(x / scale) else {
            throw BenchUsageError("\(name) must be a fraction or percentage in \(range.lowerBound)...\(range.upperBound), got \"\(text)\"")
        }
        return x / scale
    }

    /// Parses the arguments after `versions`; nil for --help.
    public static func parse(_ arguments: [String]) throws(BenchUsageError) -> Options? {
        let (flags, positionals) = try ArgumentReader.read(arguments) { name in
            switch name {
            case "--old", "--new", "-c", "--connections", "-t", "--threads", "-d", "--duration", "--rounds", "--warmup", "--path",
                 "--max-slowdown", "--confidence", "--json":
                return true
            case "-h", "--help": return false
            default: return nil
            }
        }
        if flags.contains(where: { $0.name == "-h" || $0.name == "--help" }) { return nil }
        guard positionals.isEmpty else { throw BenchUsageError("unexpected argument \"\(positionals[0])\"") }
        var old: TargetURL?, new: TargetURL?
        for (name, value) in flags where name == "--old" || name == "--new" {
            if name == "--old" { old = try TargetURL.plain(value!, option: name) } else { new = try TargetURL.plain(value!, option: name) }
        }
        guard let old, let new else { throw BenchUsageError("both --old URL and --new URL are needed") }
        var o = Options(old: old, new: new)
        for (name, value) in flags {
            let v = value ?? ""
            switch name {
            case "-c", "--connections":
                guard let n = WrkUnits.scanMetric(v), n >= 1, n <= 10_000 else { throw BenchUsageError("invalid connections \"\(v)\"") }
                o.connections = Int(n)
            case "-t", "--threads":
                guard let n = WrkUnits.scanMetric(v), n >= 1, n <= 64 else { throw BenchUsageError("invalid threads \"\(v)\"") }
                o.threads = Int(n)
            case "-d", "--duration":
                guard let n = WrkUnits.scanSeconds(v), n >= 1, n <= 3600 else { throw BenchUsageError("invalid duration \"\(v)\" (e.g. 3s)") }
                o.durationSeconds = n
            case "--rounds":
                guard let n = Int(v), (1...100).contains(n) else { throw BenchUsageError("--rounds must be 1...100, got \"\(v)\"") }
                o.rounds = n
            case "--warmup":
                guard let n = WrkUnits.scanSeconds(v), n <= 60 else { throw BenchUsageError("invalid warm-up \"\(v)\"") }
                o.warmupSeconds = n
            case "--path":
                guard v.hasPrefix("/"), !v.contains(where: { $0 == " " || $0 == "\r" || $0 == "\n" }) else {
                    throw BenchUsageError("--path must start with / and contain no spaces, got \"\(v)\"")
                }
                o.path = v
            case "--max-slowdown": o.maxSlowdown = try fraction(v, name: name, range: 0...10)
            case "--confidence": o.confidence = try fraction(v, name: name, range: 0.5...0.999999)
            case "--json": o.jsonPath = v
            default: break
            }
        }
        guard o.connections >= o.threads else { throw BenchUsageError("number of connections must be >= threads") }
        return o
    }

    public static func main(_ arguments: [String]) -> Int32 {
        // Exit 1 is the verdict "slower", so errors exit 2.
        runSubcommand("versions", usage: usage, failure: 2, arguments, parse: parse) { options in
            let report = try measure(options)
            printOut(report.table())
            if let path = options.jsonPath {
                do { try writeText(report.json().text(), to: path) } catch { throw BenchUsageError("cannot write \(path): \(error)") }
            }
            return report.verdict.slower ? 1 : 0
        }
    }

    static func plan(_ url: TargetURL, _ o: Options, seconds: UInt64) throws(BenchUsageError) -> LoadPlan {
        guard let address = SocketAddress(host: url.connectHost, port: url.port) else { throw BenchUsageError("cannot resolve \(url.host)") }
        let path = o.path ?? url.pathAndQuery
        let request = Array("GET \(path) HTTP/1.1\r\nHost: \(url.hostField)\r\n\r\n".utf8)
        return LoadPlan(address: address, url: url.text, request: request, threads: o.threads, connections: o.connections,
                        durationNanos: seconds * 1_000_000_000, timeoutNanos: 2_000_000_000)
    }

    static func measure(_ o: Options) throws(BenchUsageError) -> VersionsReport {
        let plans = (old: try plan(o.old, o, seconds: o.durationSeconds), new: try plan(o.new, o, seconds: o.durationSeconds))
        func run(_ plan: LoadPlan, _ name: String) throws(BenchUsageError) -> LoadResult {
            do {
                let r = try LoadGenerator.run(plan)
                guard r.requests > 0 else { throw BenchUsageError("\(name) (\(plan.url)) answered no request (\(r.errors.total) socket errors)") }
                return r
            } catch let error as BenchUsageError {
                throw error
            } catch {
                throw BenchUsageError("load run against \(name) failed: \(error)")
            }
        }
        let path = o.path.map { " \($0)" } ?? ""
        printOut("versions: old \(o.old.text), new \(o.new.text)\(path.isEmpty ? "" : ", path" + path); -t\(o.threads) -c\(o.connections), "
                 + "\(o.rounds) round(s) of \(o.durationSeconds) s each, interleaved\n")
        if o.warmupSeconds > 0 {
            var warm = plans
            warm.old.durationNanos = o.warmupSeconds * 1_000_000_000
            warm.new.durationNanos = o.warmupSeconds * 1_000_000_000
            _ = try run(warm.old, "old")
            _ = try run(warm.new, "new")
        }
        var rounds: [VersionsReport.Round] = []
        for round in 1...o.rounds {
            let oldFirst = round % 2 == 1
            var results: [String: LoadResult] = [:]
            for name in oldFirst ? ["old", "new"] : ["new", "old"] {
                let r = try run(name == "old" ? plans.old : plans.new, name)
                results[name] = r
                printError("[round \(round)/\(o.rounds)] \(name)  " + String(format: "%9.0f req/s", r.requestsPerSecond)
                           + "  p50 " + WrkUnits.timeMicros(r.latencyMicros(50)) + "  p99 " + WrkUnits.timeMicros(r.latencyMicros(99))
                           + "  errors \(r.errors.total + r.non2xx)")
                usleep(200_000)
            }
            rounds.append(VersionsReport.Round(number: round, oldFirst: oldFirst, old: results["old"]!, new: results["new"]!))
        }
        return VersionsReport(options: o, rounds: rounds)
    }
}

/// The figures and the verdict of a `versions` run. Pure, so tests can feed it made-up rounds.
struct VersionsReport {
    struct Round {
        var number: Int
        var oldFirst: Bool
        var old: LoadResult
        var new: LoadResult
    }

    struct Verdict {
        var slower: Bool
        /// new vs old × (1 + margin).
        var test: MannWhitney.Result
        /// new vs old (no margin), for information.
        var plain: MannWhitney.Result
        /// Rounds in which new tends to exceed old × (1 + margin), of all rounds.
        var roundsSlower: Int
        var roundCount: Int
        /// One-sided sign test: P(at least `roundsSlower` of `roundCount` by chance).
        var signP: Double
        var alpha: Double
        var text: String
    }

    let options: VersionsCommand.Options
    let rounds: [Round]

    /// Pooled measured latencies (ns) of one version.
    func pooled(_ old: Bool) -> LatencyHistogram {
        var h = LatencyHistogram()
        for r in rounds { h.merge(old ? r.old.uncorrectedLatency : r.new.uncorrectedLatency) }
        return h
    }

    func requestsPerSecond(_ old: Bool) -> Double {
        let runs = rounds.map { old ? $0.old : $0.new }
        let requests = runs.reduce(0.0) { $0 + Double($1.requests) }
        let seconds = runs.reduce(0.0) { $0 + $1.runtimeSeconds }
        return seconds > 0 ? requests / seconds : 0
    }

    func errors(_ old: Bool) -> UInt64 { rounds.reduce(0) { $0 + (old ? $1.old : $1.new).errors.total + (old ? $1.old : $1.new).non2xx } }

    var verdict: Verdict {
        let o = options
        let oldH = pooled(true), newH = pooled(false)
        let test = MannWhitney.test(MannWhitney.sample(newH), MannWhitney.sample(oldH, scale: 1 + o.maxSlowdown))
        let plain = MannWhitney.test(MannWhitney.sample(newH), MannWhitney.sample(oldH))
        let roundsSlower = rounds.filter { r in
            MannWhitney.test(MannWhitney.sample(r.new.uncorrectedLatency),
                             MannWhitney.sample(r.old.uncorrectedLatency, scale: 1 + o.maxSlowdown)).probabilityGreater > 0.5
        }.count
        let signP = Self.signTestP(successes: roundsSlower, of: rounds.count)
        let alpha = 1 - o.confidence
        let slower = test.pGreater < alpha && signP < alpha
        let margin = Self.percent(o.maxSlowdown)
        let evidence = "pooled p = \(Self.p(test.pGreater)), \(roundsSlower) of \(rounds.count) rounds slower beyond the margin, sign test p = \(Self.p(signP))"
        let text = slower
            ? "SLOWER: the new version's latencies exceed the old's by more than \(margin) at \(Self.percent(o.confidence)) confidence (\(evidence))"
            : "OK: the new version is not shown slower than the old by more than \(margin) at \(Self.percent(o.confidence)) confidence (\(evidence))"
        return Verdict(slower: slower, test: test, plain: plain, roundsSlower: roundsSlower, roundCount: rounds.count, signP: signP,
                       alpha: alpha, text: text)
    }

    /// P(X >= k) for X ~ Binomial(n, 1/2): the one-sided sign test.
    static func signTestP(successes k: Int, of n: Int) -> Double {
        guard n > 0 else { return 1 }
        var total = 0.0
        var c = 1.0   // C(n, i), built up from C(n, 0)
        for i in 0...n {
            if i >= k { total += c }
            c = c * Double(n - i) / Double(i + 1)
        }
        return total / pow(2, Double(n))
    }

    static func percent(_ x: Double) -> String {
        let v = x * 100
        return v == v.rounded() ? String(format: "%.0f%%", v) : String(format: "%g%%", v)
    }

    static func p(_ x: Double) -> String { x >= 0.001 ? String(format: "%.3f", x) : String(format: "%.1e", x) }

    func table() -> String {
        func col(_ s: String, _ w: Int) -> String { s.count >= w ? " " + s : String(repeating: " ", count: w - s.count) + s }
        var out = "\nround  version" + col("req/s", 11) + col("p50", 10) + col("p90", 10) + col("p99", 10) + col("errors", 8) + "\n"
        for r in rounds {
            for (name, result) in r.oldFirst ? [("old", r.old), ("new", r.new)] : [("new", r.new), ("old", r.old)] {
                out += String(r.number).padding(toLength: 7, withPad: " ", startingAt: 0) + name.padding(toLength: 7, withPad: " ", startingAt: 0)
                out += col(String(format: "%.0f", result.requestsPerSecond), 11)
                for p in [50.0, 90, 99] { out += col(WrkUnits.timeMicros(result.uncorrectedLatency.value(atPercentile: p) / 1000), 10) }
                out += col(String(result.errors.total + result.non2xx), 8) + "\n"
            }
        }
        let oldH = pooled(true), newH = pooled(false)
        out += "\nall rounds" + col("old", 12) + col("new", 12) + col("new/old", 10) + "\n"
        let oldRps = requestsPerSecond(true), newRps = requestsPerSecond(false)
        out += "req/s     " + col(String(format: "%.0f", oldRps), 12) + col(String(format: "%.0f", newRps), 12)
            + col(oldRps > 0 ? String(format: "%.3f", newRps / oldRps) : "-", 10) + "\n"
        for p in [50.0, 90, 99, 99.9] {
            let a = oldH.value(atPercentile: p), b = newH.value(atPercentile: p)
            out += ("p" + String(format: "%g", p)).padding(toLength: 10, withPad: " ", startingAt: 0)
                + col(WrkUnits.timeMicros(a / 1000), 12) + col(WrkUnits.timeMicros(b / 1000), 12) + col(a > 0 ? String(format: "%.3f", b / a) : "-", 10) + "\n"
        }
        out += "requests  " + col(String(oldH.count), 12) + col(String(newH.count), 12) + "\n"
        out += "errors    " + col(String(errors(true)), 12) + col(String(errors(false)), 12) + "\n"
        let v = verdict
        out += String(format: "\nMann-Whitney U, one-sided, new vs old × %.3f: P(new > old × %.3f) = %.3f, z = %.2f, p = %@\n",
                      1 + options.maxSlowdown, 1 + options.maxSlowdown, v.test.probabilityGreater, v.test.z, Self.p(v.test.pGreater))
        out += String(format: "(without the margin: P(new > old) = %.3f, z = %.2f)\n", v.plain.probabilityGreater, v.plain.z)
        out += "rounds in which new > old × \(String(format: "%.3f", 1 + options.maxSlowdown)): \(v.roundsSlower) of \(v.roundCount), "
            + "one-sided sign test p = \(Self.p(v.signP))\n"
        out += "verdict: " + v.text + "\n"
        return out
    }

    func json() -> JSONOut {
        let o = options
        let v = verdict
        func figures(_ r: LoadResult) -> JSONOut {
            .object([
                ("requestsPerSec", .number(r.requestsPerSecond)), ("requests", .count(r.requests)),
                ("p50Us", .number(r.uncorrectedLatency.value(atPercentile: 50) / 1000)),
                ("p90Us", .number(r.uncorrectedLatency.value(atPercentile: 90) / 1000)),
                ("p99Us", .number(r.uncorrectedLatency.value(atPercentile: 99) / 1000)),
                ("errors", .count(r.errors.total + r.non2xx)),
            ])
        }
        func pooledFigures(_ old: Bool) -> JSONOut {
            let h = pooled(old)
            return .object([
                ("requestsPerSec", .number(requestsPerSecond(old))), ("requests", .count(h.count)),
                ("p50Us", .number(h.value(atPercentile: 50) / 1000)), ("p90Us", .number(h.value(atPercentile: 90) / 1000)),
                ("p99Us", .number(h.value(atPercentile: 99) / 1000)), ("p999Us", .number(h.value(atPercentile: 99.9) / 1000)),
                ("errors", .count(errors(old))),
            ])
        }
        func test(_ t: MannWhitney.Result) -> JSONOut {
            .object([("u", .number(t.u)), ("z", .number(t.z)), ("p", .number(t.pGreater)), ("probabilityGreater", .number(t.probabilityGreater))])
        }
        return .object([
            ("params", .object([
                ("old", .string(o.old.text)), ("new", .string(o.new.text)), ("path", o.path.map { .string($0) } ?? .null),
                ("connections", .integer(Int64(o.connections))), ("threads", .integer(Int64(o.threads))),
                ("durationSeconds", .count(o.durationSeconds)), ("rounds", .integer(Int64(o.rounds))),
                ("maxSlowdown", .number(o.maxSlowdown)), ("confidence", .number(o.confidence)),
            ])),
            ("rounds", .array(rounds.map { r in
                .object([("round", .integer(Int64(r.number))), ("oldFirst", .bool(r.oldFirst)), ("old", figures(r.old)), ("new", figures(r.new))])
            })),
            ("old", pooledFigures(true)),
            ("new", pooledFigures(false)),
            ("test", .object([
                ("method", .string("Mann-Whitney U, one-sided, normal approximation with tie and continuity corrections")),
                ("hypothesis", .string("new latencies tend to exceed old latencies × (1 + maxSlowdown)")),
                ("withMargin", test(v.test)), ("withoutMargin", test(v.plain)), ("alpha", .number(v.alpha)),
                ("roundsSlower", .integer(Int64(v.roundsSlower))), ("rounds", .integer(Int64(v.roundCount))), ("signTestP", .number(v.signP)),
            ])),
            ("slower", .bool(v.slower)),
            ("verdict", .string(v.text)),
        ])
    }
}
