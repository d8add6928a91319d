import Testing
@testable import BenchCore

func options(_ line: String) throws -> LoadOptions {
    let args = line.split(separator: " ").map(String.init)
    guard case .run(let o) = try LoadOptions.parse(args) else { throw BenchUsageError("not a run") }
    return o
}

@Test func wrkDurationForms() {
    #expect(WrkUnits.scanSeconds("10") == 10)
    #expect(WrkUnits.scanSeconds("10s") == 10)
    #expect(WrkUnits.scanSeconds("10S") == 10)
    #expect(WrkUnits.scanSeconds("2m") == 120)
    #expect(WrkUnits.scanSeconds("1h") == 3600)
    #expect(WrkUnits.scanSeconds("1H") == 3600)
    #expect(WrkUnits.scanSeconds("10ms") == nil)   // wrk rejects it too
    #expect(WrkUnits.scanSeconds("1.5s") == nil)
    #expect(WrkUnits.scanSeconds("s") == nil)
    #expect(WrkUnits.scanSeconds("") == nil)
    #expect(WrkUnits.scanSeconds("-5") == nil)
    #expect(WrkUnits.scanSeconds("5d") == nil)
    #expect(WrkUnits.scanMetric("50") == 50)
    #expect(WrkUnits.scanMetric("1k") == 1000)
    #expect(WrkUnits.scanMetric("2K") == 2000)
    #expect(WrkUnits.scanMetric("1M") == 1_000_000)
    #expect(WrkUnits.scanMetric("3x") == nil)
    #expect(LoadOptions.parseTimeoutMillis("2s") == 2000)
    #expect(LoadOptions.parseTimeoutMillis("2") == 2000)
    #expect(LoadOptions.parseTimeoutMillis("500ms") == 500)
    #expect(LoadOptions.parseTimeoutMillis("0") == nil)
}

@Test func wrkCommandLines() throws {
    let a = try options("-t2 -c50 -d10s --latency http://127.0.0.1:8080/")
    #expect(a.threads == 2 && a.connections == 50 && a.durationSeconds == 10 && a.latency)
    #expect(a.url.port == 8080 && a.url.pathAndQuery == "/" && a.url.hostField == "127.0.0.1:8080")

    guard case .run(let b) = try LoadOptions.parse(["--threads", "4", "--connections=100", "--duration", "2m", "--timeout", "5s",
                                                    "-H", "X-A: 1", "http://localhost:9000/x?y=1"]) else { Issue.record("not a run"); return }
    #expect(String(decoding: b.requestBytes, as: UTF8.self) == "GET /x?y=1 HTTP/1.1\r\nHost: localhost:9000\r\nX-A: 1\r\n\r\n")
    #expect(b.threads == 4 && b.connections == 100 && b.durationSeconds == 120 && b.timeoutMillis == 5000)
    #expect(b.url.pathAndQuery == "/x?y=1" && b.url.connectHost == "127.0.0.1")

    // getopt rules: value in the next argument, URL anywhere, -- ends options.
    let c = try LoadOptions.parse(["http://127.0.0.1:1/", "-t", "1", "-c", "1", "-d", "1", "-H", "Host: example", "--", ])
    guard case .run(let co) = c else { Issue.record("not a run"); return }
    #expect(co.threads == 1 && co.durationSeconds == 1 && co.headers == ["Host: example"])
    #expect(String(decoding: co.requestBytes, as: UTF8.self) == "GET / HTTP/1.1\r\nHost: example\r\n\r\n")

    let d = try options("-t1 -c1 -R 2k --json out.json http://[::1]:81")
    #expect(d.rate == 2000 && d.jsonPath == "out.json" && d.url.hostField == "[::1]:81" && d.url.pathAndQuery == "/")

    // Defaults are wrk's.
    let e = try options("http://127.0.0.1/")
    #expect(e.threads == 2 && e.connections == 10 && e.durationSeconds == 10 && e.timeoutMillis == 2000 && !e.latency)
    #expect(e.url.port == 80)
    #expect(String(decoding: e.requestBytes, as: UTF8.self) == "GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n")

    #expect(try LoadOptions.parse(["--help"]) == .help)
    #expect(try LoadOptions.parse(["-v"]) == .version)
}

@Test(arguments: [
    ("-t2 -c1 http://127.0.0.1/", "number of connections must be >= threads"),
    ("-d 10ms http://127.0.0.1/", "invalid duration"),
    ("-d 0 http://127.0.0.1/", "invalid duration"),
    ("-c abc http://127.0.0.1/", "invalid connections"),
    ("-t2 -c10", "missing URL"),
    ("--bogus http://127.0.0.1/", "unknown option --bogus"),
    ("-x http://127.0.0.1/", "unknown option -x"),
    ("-d", "needs a value"),
    ("--cacert ca.pem http://127.0.0.1/", "--cacert needs an https:// URL"),
    ("--resume http://127.0.0.1/", "--resume needs an https:// URL"),
    ("--sni bench.test http://127.0.0.1/", "--sni needs an https:// URL"),
    ("--cacert https://127.0.0.1/", "missing URL"),
    ("http://example.com/", "only loopback"),
    ("http://10.0.0.1:80/", "only loopback"),
    ("ftp://127.0.0.1/", "invalid URL"),
    ("http://127.0.0.1:99999/", "invalid port"),
    ("-H NoColon http://127.0.0.1/", "invalid header"),
    ("--latency=yes http://127.0.0.1/", "takes no value"),
    ("-s x.lua http://127.0.0.1/", "Lua scripts are not supported"),
    ("http://127.0.0.1/ http://127.0.0.1/", "expected one URL"),
])
func rejectedCommandLines(line: String, message: String) {
    do {
        _ = try LoadOptions.parse(line.split(separator: " ").map(String.init))
        Issue.record("accepted: \(line)")
    } catch {
        #expect(error.description.contains(message), "\(line): \(error)")
    }
}

@Test func compareOptions() throws {
    let q = try CompareOptions.parse(["--quick", "--max-p99-ratio", "3", "--min-throughput-ratio=0.5"])
    #expect(q.rounds == 1 && q.durationSeconds == 2 && q.connections == 16 && q.guardEnabled)
    #expect(q.maxP99Ratio == 3 && q.minThroughputRatio == 0.5)
    let a = try CompareOptions.parse(["-c", "20", "-d", "3s", "--rounds", "2", "--peers", "haproxy,nginx", "--path", "/big"])
    #expect(a.connections == 20 && a.durationSeconds == 3 && a.rounds == 2 && a.path == "/big")
    #expect(a.targetNames == ["direct", "switchyard-instant", "switchyard-session", "switchyard-gradual", "switchyard-concurrent", "haproxy", "nginx"])
    let t = try CompareOptions.parse(["--targets", "session,nginx"])
    #expect(t.targetNames == ["direct", "switchyard-session", "nginx"])
    #expect(throws: BenchUsageError.self) { try CompareOptions.parse(["--peers", "envoy"]) }
    #expect(throws: BenchUsageError.self) { try CompareOptions.parse(["--max-p99-ratio", "-1"]) }
    #expect(throws: BenchUsageError.self) { try CompareOptions.parse(["--backend", "http://192.168.1.1/"]) }
    #expect(throws: BenchUsageError.self) { try CompareOptions.parse(["--rounds", "0"]) }
    #expect(throws: BenchUsageError.self) { try CompareOptions.parse(["extra"]) }
}
