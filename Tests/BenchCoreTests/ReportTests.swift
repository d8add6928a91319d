import Foundation
import Testing
@testable import BenchCore

/// Fixed figures whose every number is easy to check by hand. (The stdev is 100.00 µs, not the
/// exact 100.05: it comes from bucket midpoints, and 100 µs sits in a 512 ns bucket whose midpoint
/// is 100.0955 µs — the 0.4 % bound at work.)
func fixedResult() -> LoadResult {
    var r = LoadResult(url: "http://127.0.0.1:8080/", threads: 2, connections: 50, durationSeconds: 10)
    for _ in 0..<500 { r.latency.record(100_000) }   // 100 µs
    for _ in 0..<500 { r.latency.record(300_000) }   // 300 µs
    r.rateSamples = [50_000, 52_000, 48_000, 50_000]
    r.requests = 1000
    r.bytes = 153_600
    r.runtimeNanos = 10_010_000_000
    r.errors.timeout = 2
    r.non2xx = 3
    return r
}

@Test func wrkReportGoldenText() {
    let r = fixedResult()
    let text = WrkReport.header(url: r.url, durationSeconds: 10, threads: 2, connections: 50)
        + WrkReport.body(r, latencyDistribution: true)
    let golden = """
    Running 10s test @ http://127.0.0.1:8080/
      2 threads and 50 connections
      Thread Stats   Avg      Stdev     Max   +/- Stdev
        Latency   200.00us  100.00us 300.00us  100.00%
        Req/Sec    50.00k     1.63k   52.00k    50.00%
      Latency Distribution
         50%  300.00us
         75%  300.00us
         90%  300.00us
         99%  300.00us
      1000 requests in 10.01s, 150.00KB read
      Socket errors: connect 0, read 0, write 0, timeout 2
      Non-2xx or 3xx responses: 3
    Requests/sec:     99.90
    Transfer/sec:     14.99KB

    """
    #expect(text == golden)
}

@Test func wrkReportLeavesOutWhatWrkLeavesOut() {
    var r = fixedResult()
    r.errors = SocketErrors()
    r.non2xx = 0
    let text = WrkReport.body(r, latencyDistribution: false)
    #expect(!text.contains("Latency Distribution"))
    #expect(!text.contains("Socket errors"))
    #expect(!text.contains("Non-2xx"))
}

@Test func wrkUnitFormats() {
    #expect(WrkUnits.timeMicros(635.91) == "635.91us")
    #expect(WrkUnits.timeMicros(890) == "0.89ms")        // >= 0.85 × 1000 switches unit
    #expect(WrkUnits.timeMicros(1_200_000) == "1.20s")
    #expect(WrkUnits.timeMicros(999_999) == "1000.00ms")  // wrk never reaches "s" from the µs list
    #expect(WrkUnits.timeMicros(90_000_000) == "1.50m")
    #expect(WrkUnits.timeSeconds(10) == "10s")
    #expect(WrkUnits.timeSeconds(120) == "2m")
    #expect(WrkUnits.metric(56_200) == "56.20k")
    #expect(WrkUnits.metric(800) == "800.00")
    #expect(WrkUnits.binary(161_103_872) == "153.64M")
    #expect(WrkUnits.cell("0.89ms", width: 10) == "    0.89ms")
    #expect(WrkUnits.cell("56.20k", width: 8) == " 56.20k ")
    #expect(WrkUnits.cell("800.00", width: 9) == " 800.00  ")
}

func parseJSON(_ out: JSONOut) throws -> [String: Any] {
    let data = Data(out.text().utf8)
    return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
}

@Test func loadJSONHasEveryFigure() throws {
    let json = try parseJSON(WrkReport.json(fixedResult()))
    for key in ["url", "threads", "connections", "durationSeconds", "rate", "requests", "runtimeSeconds", "requestsPerSec",
                "bytes", "bytesPerSec", "errors", "non2xx", "latencyCorrection", "latencyUs", "requestsPerSecPerThread"] {
        #expect(json[key] != nil, "missing \(key)")
    }
    let errors = try #require(json["errors"] as? [String: Any])
    for key in ["connect", "read", "write", "timeout"] { #expect(errors[key] != nil, "missing errors.\(key)") }
    let latency = try #require(json["latencyUs"] as? [String: Any])
    for key in ["p50", "p75", "p90", "p99", "p999", "max"] { #expect(latency[key] != nil, "missing latencyUs.\(key)") }
    #expect(json["requests"] as? Int == 1000)
    #expect(errors["timeout"] as? Int == 2)
    #expect(latency["p50"] as? Double == 300 || latency["p50"] as? Int == 300)
}

func madeUpReport(p99: [String: Double], rps: [String: Double], errors: UInt64 = 0, guardOptions: [String] = []) throws -> CompareReport {
    var options = try CompareOptions.parse(["--rounds", "2"] + guardOptions)
    options.rounds = 2
    var runs: [CompareRun] = []
    for round in 1...2 {
        for name in p99.keys.sorted() {
            var r = LoadResult(url: "", threads: 1, connections: 10, durationSeconds: 1)
            r.runtimeNanos = 1_000_000_000
            r.requests = UInt64(rps[name]!)
            for _ in 0..<98 { r.latency.record(UInt64(p99[name]! * 1000) / 2) }
            for _ in 0..<2 { r.latency.record(UInt64(p99[name]! * 1000)) }
            r.non2xx = name == "direct" ? 0 : errors
            runs.append(CompareRun(target: name, round: round, result: r))
        }
    }
    let names = ["direct"] + p99.keys.sorted().filter { $0 != "direct" }
    return CompareReport(options: options, targetNames: names, runs: runs)
}

@Test func compareJSONHasTheSchema() throws {
    let report = try madeUpReport(p99: ["direct": 1000, "switchyard-instant": 1500], rps: ["direct": 40000, "switchyard-instant": 20000])
    let json = try parseJSON(report.json())
    let runs = try #require(json["runs"] as? [[String: Any]])
    #expect(runs.count == 4)
    for run in runs {
        for key in ["target", "round", "requestsPerSec", "latencyUs", "errors"] { #expect(run[key] != nil, "runs[].\(key)") }
        let latency = try #require(run["latencyUs"] as? [String: Any])
        for key in ["p50", "p90", "p99", "p999"] { #expect(latency[key] != nil, "runs[].latencyUs.\(key)") }
    }
    let summary = try #require(json["summary"] as? [[String: Any]])
    #expect(summary.map { $0["target"] as? String } == ["direct", "switchyard-instant"])
    for s in summary {
        for key in ["target", "requestsPerSec", "p50Us", "p99Us", "ratioToDirect"] { #expect(s[key] != nil, "summary[].\(key)") }
        let ratio = try #require(s["ratioToDirect"] as? [String: Any])
        for key in ["requestsPerSec", "p50", "p99"] { #expect(ratio[key] != nil, "summary[].ratioToDirect.\(key)") }
    }
    let instant = try #require(summary.last?["ratioToDirect"] as? [String: Any])
    #expect((instant["requestsPerSec"] as? Double).map { abs($0 - 0.5) < 1e-9 } == true)
    #expect((instant["p99"] as? Double).map { abs($0 - 1.5) < 0.01 } == true)
}

@Test func guardNamesTheTargetAndRatio() throws {
    let ok = try madeUpReport(p99: ["direct": 1000, "switchyard-session": 1500], rps: ["direct": 40000, "switchyard-session": 30000],
                              guardOptions: ["--max-p99-ratio", "2", "--min-throughput-ratio", "0.5"])
    #expect(ok.guardFailures().isEmpty)
    let slow = try madeUpReport(p99: ["direct": 1000, "switchyard-session": 3000, "haproxy": 9000],
                                rps: ["direct": 40000, "switchyard-session": 10000, "haproxy": 1000],
                                guardOptions: ["--max-p99-ratio", "2", "--min-throughput-ratio", "0.5"])
    let failures = slow.guardFailures()
    #expect(failures.count == 2)  // peers are reported, not guarded
    #expect(failures[0].contains("switchyard-session: p99 ratio 3.00 exceeds --max-p99-ratio 2.00"))
    #expect(failures[1].contains("switchyard-session: throughput ratio 0.25 is below --min-throughput-ratio 0.50"))
    let failing = try madeUpReport(p99: ["direct": 1000, "switchyard-session": 1000], rps: ["direct": 40000, "switchyard-session": 40000],
                                   errors: 5, guardOptions: ["--max-p99-ratio", "2"])
    #expect(failing.guardFailures().first?.contains("switchyard-session: 10 errors") == true)
}

@Test func htmlIsSelfContainedWithCharts() throws {
    let report = try madeUpReport(p99: ["direct": 1000, "switchyard-gradual": 1500], rps: ["direct": 40000, "switchyard-gradual": 20000])
    let html = report.html()
    #expect(html.hasPrefix("<!DOCTYPE html>"))
    #expect(html.components(separatedBy: "<svg").count - 1 == 2)
    #expect(html.components(separatedBy: "<polyline").count - 1 == 2)
    #expect(html.contains("99.99%"))
    #expect(!html.contains("<script src") && !html.contains("<link"))
    #expect(report.table().contains("switchyard-gradual"))
}

@Test func switchyardConfigsAndStartLine() throws {
    for mode in ["instant", "session", "gradual", "concurrent"] {
        let text = Comparison.switchyardConfig(mode: mode, backendPort: 1234)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let clusters = try #require(json["clusters"] as? [[String: Any]])
        #expect(clusters.count == (mode == "instant" ? 1 : 2))
    }
    let log = "ts=2026-01-01T00:00:00Z level=NOTICE event=started proxy=127.0.0.1:41234 api=127.0.0.1:41235 workers=1\n"
    #expect(Comparison.startedPort(log) == 41234)
    #expect(Comparison.startedPort("level=NOTICE event=stopping\n") == nil)
}
