import Foundation
import Testing
@testable import BenchCore

func points(_ values: [Double]) -> [(value: Double, count: Double)] { values.map { ($0, 1) } }

/// U by counting every pair, the definition.
func bruteForceU(_ x: [Double], _ y: [Double]) -> Double {
    var u = 0.0
    for a in x { for b in y { u += a > b ? 1 : (a == b ? 0.5 : 0) } }
    return u
}

@Test("Mann-Whitney U and its one-sided p agree with SciPy's asymptotic test", arguments: [
    // (x, y, U, p) from scipy.stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic"), SciPy 1.17.
    ([19.0, 22, 16, 29, 24], [20.0, 11, 17, 12], 17.0, 0.055673443266570206),
    ([1.0, 2, 2, 3, 3, 3, 4], [2.0, 3, 3, 4, 4, 5, 5, 5], 11.0, 0.9814970702168354),
    (Array(stride(from: 11.0, through: 20, by: 1)), Array(stride(from: 1.0, through: 10, by: 1)), 100.0, 9.133589555477501e-05),
    ([1.1, 2.5, 3.3, 4.7, 5.2, 6.8, 7.1], [0.9, 1.5, 2.2, 3.9, 4.1, 4.4], 31.0, 0.08736791160762358),
])
func mannWhitneyKnownValues(x: [Double], y: [Double], u: Double, p: Double) {
    let r = MannWhitney.test(points(x), points(y))
    #expect(r.u == u)
    #expect(r.u == bruteForceU(x, y))
    #expect(abs(r.pGreater - p) < 1e-9 * max(1, p) + 1e-12, "p \(r.pGreater) vs \(p)")
}

@Test func mannWhitneyCountsAreRepeatedValues() {
    // Weighted points equal the same values listed out.
    let x: [Double] = [1, 1, 1, 2, 5, 5]
    let y: [Double] = [1, 3, 3, 3, 3, 4]
    let listed = MannWhitney.test(points(x), points(y))
    let counted = MannWhitney.test([(1, 3), (2, 1), (5, 2)], [(1, 1), (3, 4), (4, 1)])
    #expect(listed == counted)
    #expect(listed.u == bruteForceU(x, y))
    // Symmetry: U(x, y) + U(y, x) = n1 n2.
    #expect(MannWhitney.test(points(y), points(x)).u + listed.u == 36)
    // Degenerate inputs do not divide by zero.
    #expect(MannWhitney.test([], points(y)).pGreater == 1)
    #expect(MannWhitney.test([(2, 5)], [(2, 5)]).pGreater == 1)
    #expect(abs(MannWhitney.upperTail(0) - 0.5) < 1e-15)
    #expect(abs(MannWhitney.upperTail(1.6448536269514722) - 0.05) < 1e-12)
}

@Test func mannWhitneyOnHistogramsSeesAShiftAndNotNoise() {
    var a = LatencyHistogram(), b = LatencyHistogram(), c = LatencyHistogram()
    var seed: UInt64 = 42
    func jitter() -> UInt64 { seed = seed &* 6364136223846793005 &+ 1442695040888963407; return seed >> 44 }   // 0..<1M ns
    for _ in 0..<20_000 {
        a.record(2_000_000 + jitter())
        b.record(2_000_000 + jitter())
        c.record(UInt64(Double(2_000_000 + jitter()) * 1.10))
    }
    // 10 % slower is flagged against a 5 % margin; a same-distribution sample is not.
    #expect(MannWhitney.test(MannWhitney.sample(c), MannWhitney.sample(a, scale: 1.05)).pGreater < 1e-6)
    #expect(MannWhitney.test(MannWhitney.sample(b), MannWhitney.sample(a, scale: 1.05)).pGreater > 0.5)
}

func madeUpRound(_ number: Int, oldMicros: Double, newMicros: Double) -> VersionsReport.Round {
    func result(_ micros: Double, _ offset: Int) -> LoadResult {
        var r = LoadResult(url: "", threads: 1, connections: 4, durationSeconds: 1)
        r.runtimeNanos = 1_000_000_000
        for i in 0..<2000 {
            let v = UInt64(micros * 1000 * (1 + Double((i * 7919 + offset) % 200) / 1000))
            r.uncorrectedLatency.record(v)
            r.latency.record(v)
        }
        r.requests = 2000
        return r
    }
    return VersionsReport.Round(number: number, oldFirst: number % 2 == 1, old: result(oldMicros, number), new: result(newMicros, number + 17))
}

@Test func versionsVerdictFlagsTenPercentAndPassesTwoPercent() throws {
    let options = try #require(try VersionsCommand.parse(["--old", "http://127.0.0.1:1/", "--new", "http://127.0.0.1:2/", "--max-slowdown", "5%"]))
    let slower = VersionsReport(options: options, rounds: (1...6).map { madeUpRound($0, oldMicros: 1000, newMicros: 1100) })
    #expect(slower.verdict.slower)
    #expect(slower.table().contains("verdict: SLOWER"))
    let close = VersionsReport(options: options, rounds: (1...6).map { madeUpRound($0, oldMicros: 1000, newMicros: 1020) })
    #expect(!close.verdict.slower)
    #expect(close.table().contains("verdict: OK"))
    let json = try #require(try JSONSerialization.jsonObject(with: Data(slower.json().text().utf8)) as? [String: Any])
    #expect(json["slower"] as? Bool == true)
    #expect((json["rounds"] as? [Any])?.count == 6)
    #expect(slower.verdict.roundsSlower == 6 && abs(slower.verdict.signP - 1.0 / 64) < 1e-12)
    // One disturbed round cannot decide: the pooled test may see it, the rounds do not.
    let disturbed = VersionsReport(options: options, rounds: (1...6).map { madeUpRound($0, oldMicros: 1000, newMicros: $0 == 3 ? 2000 : 1040) })
    #expect(disturbed.verdict.test.pGreater < 0.05)
    #expect(disturbed.verdict.roundsSlower == 1 && !disturbed.verdict.slower)
    // Too few rounds cannot reach 95 % however clear each one is.
    let few = VersionsReport(options: options, rounds: (1...4).map { madeUpRound($0, oldMicros: 1000, newMicros: 1100) })
    #expect(!few.verdict.slower && abs(few.verdict.signP - 1.0 / 16) < 1e-12)
    let test = try #require(json["test"] as? [String: Any])
    #expect(test["withMargin"] != nil && test["alpha"] != nil)
}

@Test func versionsOptions() throws {
    let o = try #require(try VersionsCommand.parse(["--old", "http://127.0.0.1:8001/a", "--new=http://localhost:8002/b", "-c", "8",
                                                    "-d", "2s", "--rounds", "7", "--max-slowdown", "0.1", "--confidence", "99%", "--path", "/big"]))
    #expect(o.old.port == 8001 && o.new.port == 8002 && o.connections == 8 && o.durationSeconds == 2 && o.rounds == 7)
    #expect(abs(o.maxSlowdown - 0.1) < 1e-12 && abs(o.confidence - 0.99) < 1e-12 && o.path == "/big")
    let d = try #require(try VersionsCommand.parse(["--old", "http://127.0.0.1:1/", "--new", "http://127.0.0.1:2/"]))
    #expect(abs(d.maxSlowdown - 0.05) < 1e-12 && d.confidence == 0.95 && d.rounds == 8)
    #expect(VersionsReport.signTestP(successes: 7, of: 8) == 9.0 / 256)
    #expect(VersionsReport.signTestP(successes: 0, of: 8) == 1)
    #expect(VersionsReport.signTestP(successes: 5, of: 5) == 1.0 / 32)
    #expect(try VersionsCommand.parse(["--help"]) == nil)
    #expect(throws: BenchUsageError.self) { try VersionsCommand.parse(["--old", "http://127.0.0.1:1/"]) }
    #expect(throws: BenchUsageError.self) { try VersionsCommand.parse(["--old", "http://127.0.0.1:1/", "--new", "http://10.0.0.1/"]) }
    #expect(throws: BenchUsageError.self) { try VersionsCommand.parse(["--old", "http://127.0.0.1:1/", "--new", "http://127.0.0.1:2/", "--max-slowdown", "5x"]) }
    #expect(throws: BenchUsageError.self) { try VersionsCommand.parse(["--old", "http://127.0.0.1:1/", "--new", "http://127.0.0.1:2/", "--confidence", "20%"]) }
}

@Test func baselineRoundTripAndCheck() throws {
    let text = """
    {"format": 1, "measured": {"machine": "test", "date": "2026-11-30"},
     "ratios": {"/": {"instant/direct": 0.4, "concurrent/instant": 0.6}, "/big": {"instant/direct": 0.5}}}
    """
    let b = try Baseline.parse(Data(text.utf8), name: "t")
    #expect(b.ratios["/"]?["concurrent/instant"] == 0.6 && b.measured["machine"] == "test")
    let again = try Baseline.parse(Data(b.text().utf8), name: "again")
    #expect(again == b)
    let checks = b.check(payload: "/", measured: ["instant/direct": 0.21, "concurrent/instant": 0.29], maxDrop: 0.5)
    #expect(checks.map(\.name) == ["instant/direct", "concurrent/instant"])
    #expect(checks[0].passed && !checks[1].passed)
    #expect(abs(checks[1].bound - 0.3) < 1e-12)
    // A committed ratio the run did not measure fails.
    #expect(!b.check(payload: "/", measured: ["instant/direct": 0.4], maxDrop: 0.5)[1].passed)
    #expect(throws: BenchUsageError.self) { try Baseline.parse(Data("{\"ratios\": {\"/\": {\"x\": -1}}}".utf8), name: "bad") }
    #expect(throws: BenchUsageError.self) { try Baseline.parse(Data("[]".utf8), name: "bad") }
}

@Test func committedBaselineCoversBothPayloadsAndEveryMode() throws {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Benchmarks/baseline.json")
    let b = try Baseline.load(url.standardizedFileURL.path)
    for payload in ["/", "/big"] {
        #expect(Set(b.ratios[payload]?.keys.map { $0 } ?? []) == ["instant/direct", "session/instant", "gradual/instant", "concurrent/instant"], "\(payload)")
    }
    #expect(b.measured["machine"] != nil && b.measured["date"] != nil)
}

@Test func baselineGuardInTheCompareReport() throws {
    let report = try madeUpReport(p99: ["direct": 1000, "switchyard-instant": 1500, "switchyard-concurrent": 3000],
                                  rps: ["direct": 40000, "switchyard-instant": 20000, "switchyard-concurrent": 4000],
                                  guardOptions: ["--baseline", "unused.json"])
    let ratios = report.guardRatios()
    #expect(ratios["instant/direct"] == 0.5 && ratios["concurrent/instant"] == 0.2)
    var b = Baseline()
    b.ratios["/"] = ["instant/direct": 0.5, "concurrent/instant": 0.5]
    let (checks, table) = report.baselineChecks(b)
    #expect(checks.map(\.passed) == [true, false])
    #expect(table.contains("concurrent/instant") && table.contains("FAILED"))
}

@Test func idleOptionsAndProcStatus() throws {
    let o = try #require(try IdleCommand.parse(["-n", "10k", "http://127.0.0.1:9000/", "--pid", "123", "--settle", "1s"]))
    #expect(o.count == 10_000 && o.pid == 123 && o.settleSeconds == 1 && o.url.port == 9000)
    #expect(try IdleCommand.parse(["--help"]) == nil)
    #expect(throws: BenchUsageError.self) { try IdleCommand.parse(["-n", "0", "http://127.0.0.1/"]) }
    let status = "Name:\tswitchyard\nVmPeak:\t  100 kB\nVmRSS:\t   5120 kB\nRssAnon:\t    2048 kB\nRssFile:\t 3072 kB\n"
    #expect(IdleCommand.parseStatus(status)! == (5120, 2048))
    #expect(IdleCommand.memory(pid: getpid()) != nil)
}

@Test func closeOptions() throws {
    let o = try options("-t1 -c2 --close http://127.0.0.1:8080/")
    #expect(o.closeEachRequest)
    #expect(String(decoding: o.requestBytes, as: UTF8.self) == "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\n\r\n")
    let c = try CompareOptions.parse(["--close", "--path", "/big", "--baseline", "b.json", "--max-drop", "0.4"])
    #expect(c.close && c.payloadKey == "/big close" && c.guardEnabled && c.maxDrop == 0.4)
    #expect(try CompareOptions.parse([]).targetNames.contains("switchyard-concurrent"))
    #expect(throws: BenchUsageError.self) { try CompareOptions.parse(["--max-drop", "2"]) }
}
