import Foundation
import Syscalls
import TLS
import Testing
@testable import BenchCore

/// A Switchyard with one TLS listener (a certificate for `bench.test` made with the `openssl`
/// command) in front of the built-in backend, for the https load generator to load.
final class TLSProxyFixture {
    let directory: String
    let cert: String
    let backend: BenchBackend
    let proxy: BenchCore.ChildProcess
    let port: Int

    init() throws {
        var template = Array("/tmp/bench-tls-test.XXXXXX".utf8CString)
        directory = String(cString: try #require(mkdtemp(&template)))
        cert = "\(directory)/cert.pem"
        let key = "\(directory)/key.pem"
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        openssl.arguments = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                             "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=bench.test", "-addext", "subjectAltName=DNS:bench.test"]
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        try #require(openssl.terminationStatus == 0, "openssl could not make the test certificate")
        backend = try BenchBackend()
        let config = "\(directory)/switchyard.json"
        try Comparison.switchyardTLSConfig(backendPort: backend.port, cert: cert, key: key).write(toFile: config, atomically: true, encoding: .utf8)
        proxy = try BenchCore.ChildProcess.spawn(name: "switchyard", executable: try DrillAgainstTheProxy.binary(),
                                       arguments: ["--config", config, "--workers", "1", "--log-level", "NOTICE"],
                                       logPath: "\(directory)/switchyard.log")
        var found: Int?
        for _ in 0..<400 where found == nil {
            if let text = try? String(contentsOfFile: proxy.logPath, encoding: .utf8) { found = Comparison.listeningTLSPort(text) }
            if found == nil {
                guard proxy.isRunning else { break }
                usleep(25_000)
            }
        }
        port = try #require(found, "switchyard did not log its TLS listener: \(proxy.logTail())")
    }

    deinit {
        Cleanup.shared.stop(proxy)
        backend.stop()
        Cleanup.shared.remove(directory: directory)
    }

    /// A plan against the listener: verified against the certificate, SNI `bench.test`.
    func plan(connections: Int, close: Bool, resume: Bool = false, serverName: String = "bench.test") throws -> LoadPlan {
        let context = try TLSClientContext(caFile: cert, verify: true, minVersion: .tls13)
        let request = "GET / HTTP/1.1\r\nHost: bench.test\r\n" + (close ? "Connection: close\r\n" : "") + "\r\n"
        return LoadPlan(address: SocketAddress(host: "127.0.0.1", port: port)!, url: "https://127.0.0.1:\(port)/",
                        request: Array(request.utf8), threads: 1, connections: connections,
                        durationNanos: 1_000_000_000, timeoutNanos: 2_000_000_000, closeAfterEachResponse: close,
                        tls: LoadTLS(context: context, serverName: serverName, resume: resume))
    }
}

@Suite(.serialized) struct HTTPSLoad {
    /// The command line's https path: `--cacert` and `--sni` verify the certificate, every
    /// connection makes one handshake and then keeps it for all its requests.
    @Test func keepAliveRequestsOverOneHandshakePerConnection() throws {
        let f = try TLSProxyFixture()
        guard case .run(let options) = try LoadOptions.parse(["-t1", "-c3", "-d1s", "--cacert", f.cert, "--sni", "bench.test",
                                                              "https://127.0.0.1:\(f.port)/"]) else {
            Issue.record("not a run")
            return
        }
        let result = try LoadGenerator.run(try LoadPlan(options))
        #expect(result.tls && result.tlsFailure == nil)
        #expect(result.requests > 50, "\(result.requests) requests")
        #expect(result.errors.total == 0 && result.non2xx == 0, "\(result.errors)")
        #expect(result.handshakes == 3 && result.resumedHandshakes == 0)
        #expect(eventually { f.backend.served == Int(result.requests) }, "generator \(result.requests), backend \(f.backend.served)")
        #expect(WrkReport.body(result, latencyDistribution: false).contains("TLS handshakes: 3 (0 resumed)"))
    }

    /// `--close` over TLS: a full handshake for every request, none resumed.
    @Test func closeMakesAFullHandshakePerRequest() throws {
        let f = try TLSProxyFixture()
        let result = try LoadGenerator.run(try f.plan(connections: 2, close: true))
        #expect(result.requests > 20, "\(result.requests) requests")
        #expect(result.errors.total == 0 && result.non2xx == 0, "\(result.errors)")
        // Each request on its own connection; the last reconnect of each connection may not send.
        #expect(result.handshakes >= result.requests && result.handshakes <= result.requests + 2, "\(result.handshakes) handshakes")
        #expect(result.resumedHandshakes == 0)
        #expect(eventually { f.backend.served == Int(result.requests) })
    }

    /// `--resume`: a new connection offers the previous one's ticket and the proxy takes it.
    @Test func resumeOffersThePreviousSession() throws {
        let f = try TLSProxyFixture()
        let result = try LoadGenerator.run(try f.plan(connections: 2, close: true, resume: true))
        #expect(result.requests > 20 && result.errors.total == 0)
        // Only each connection's first handshake is full.
        #expect(result.resumedHandshakes + 2 >= result.handshakes, "\(result.resumedHandshakes) of \(result.handshakes) resumed")
    }

    /// A certificate that does not name the server: no request, the handshakes count as connect
    /// errors and the report says why.
    @Test func aNameTheCertificateDoesNotCoverFailsTheHandshake() throws {
        let f = try TLSProxyFixture()
        let result = try LoadGenerator.run(try f.plan(connections: 1, close: false, serverName: "other.test"))
        #expect(result.requests == 0 && result.handshakes == 0)
        #expect(result.errors.connect > 0)
        #expect(result.tlsFailure?.contains("certificate verification failed") == true, "\(result.tlsFailure ?? "no reason")")
    }
}

@Test func httpsCommandLines() throws {
    guard case .run(let o) = try LoadOptions.parse(["--resume", "https://localhost/"]) else { Issue.record("not a run"); return }
    #expect(o.url.isTLS && o.url.port == 443 && o.resume && o.caFile == nil && o.serverName == nil)
    guard case .run(let plain) = try LoadOptions.parse(["http://127.0.0.1/"]) else { Issue.record("not a run"); return }
    let plainPlan = try LoadPlan(plain)
    #expect(!plain.url.isTLS && plainPlan.tls == nil)
    guard case .run(let bad) = try LoadOptions.parse(["--cacert", "/nonexistent.pem", "https://127.0.0.1:8443/"]) else { Issue.record("not a run"); return }
    let missing = #expect(throws: BenchUsageError.self) { _ = try LoadPlan(bad) }
    #expect(missing?.description.hasPrefix("--cacert: cannot load /nonexistent.pem") == true, "\(String(describing: missing))")
    let idle = #expect(throws: (any Error).self) { _ = try IdleCommand.parse(["-n", "10", "https://127.0.0.1/"]) }
    #expect("\(String(describing: idle))".contains("idle needs an http:// URL"))
}

@Test func compareTLSOptions() throws {
    let d = try CompareOptions.parse(["--tls"])
    #expect(d.tls && d.peers == ["haproxy", "nginx"] && d.tlsLoads == [.close, .small, .big])
    #expect(d.targetNames == ["direct", "switchyard-instant", "switchyard-session", "switchyard-gradual", "switchyard-concurrent", "haproxy", "nginx"])
    #expect(try CompareOptions.parse(["--tls", "--close"]).tlsLoads == [.close])
    #expect(try CompareOptions.parse(["--tls", "--resume"]).resume)
    #expect(try CompareOptions.parse(["--tls", "--path", "/big"]).tlsLoads == [.big])
    #expect(try CompareOptions.parse(["--tls", "--targets", "instant,haproxy"]).peers == ["haproxy"])
    for (line, message) in [
        ("--tls --baseline b.json", "--tls does not take --baseline"),
        ("--tls --max-p99-ratio 3", "--tls does not take --max-p99-ratio"),
        ("--tls --html x.html", "--tls does not take --html"),
        ("--tls --targets session,haproxy", "--tls measures switchyard (INSTANT) and the peers: --targets session"),
        ("--tls --peers nginx", "--tls needs haproxy among the targets"),
        ("--tls --targets instant", "--tls needs haproxy among the targets"),
        ("--tls --backend https://127.0.0.1:9/", "--backend needs an http:// URL"),
        ("--resume", "--resume needs --tls"),
    ] {
        let error = #expect(throws: BenchUsageError.self, "\(line)") { try CompareOptions.parse(line.split(separator: " ").map(String.init)) }
        #expect(error?.description.contains(message) == true, "\(line): \(String(describing: error))")
    }
}

@Test func tlsReportRatiosAndCPU() throws {
    var o = try CompareOptions.parse(["--tls", "--rounds", "2"])
    o.rounds = 2
    func run(_ load: String, _ target: String, _ round: Int, requests: UInt64, cpu: Double, handshakes: UInt64) -> TLSRun {
        var r = LoadResult(url: "", threads: 1, connections: 4, durationSeconds: 1)
        r.requests = requests
        r.runtimeNanos = 1_000_000_000
        r.handshakes = handshakes
        r.tls = true
        return TLSRun(load: load, target: target, round: round, result: r, cpuSeconds: cpu)
    }
    let runs = [
        run("close", "switchyard", 1, requests: 500, cpu: 0.40, handshakes: 500), run("close", "switchyard", 2, requests: 700, cpu: 0.56, handshakes: 700),
        run("close", "haproxy", 1, requests: 600, cpu: 0.60, handshakes: 600), run("close", "haproxy", 2, requests: 800, cpu: 0.80, handshakes: 800),
        run("small", "switchyard", 1, requests: 10_000, cpu: 0.5, handshakes: 4), run("small", "haproxy", 1, requests: 8_000, cpu: 0.5, handshakes: 4),
    ]
    let report = TLSCompareReport(options: o, targetNames: ["switchyard", "haproxy"], runs: runs)
    let s = report.summaries
    #expect(s.map { "\($0.load)/\($0.target)" } == ["close/switchyard", "close/haproxy", "small/switchyard", "small/haproxy"])
    #expect(s[0].requestsPerSec == 600 && s[1].requestsPerSec == 700)       // medians over the two rounds
    #expect(abs(s[0].cpuUsPerRequest - 800) < 0.01 && abs(s[1].cpuUsPerRequest - 1000) < 0.01)
    #expect(s[0].cpuUsPerHandshake.map { abs($0 - 800) < 0.01 } == true && s[2].cpuUsPerHandshake == nil)
    #expect(report.ratio(s[0], in: s).map { abs($0 - 600.0 / 700) < 1e-9 } == true)
    #expect(report.ratio(s[2], in: s) == 1.25 && report.ratio(s[3], in: s) == 1)
    let table = report.table()
    #expect(table.contains("0.86x") && table.contains("1.25x") && table.contains("800.0"))
    let json = report.json().text()
    #expect(json.contains("\"ratioToHAProxy\"") && json.contains("\"cpuUsPerHandshake\"") && json.contains("TLS_AES_256_GCM_SHA384"))
}

/// `compare --tls` end to end, as short as it goes: Switchyard and HAProxy (when installed),
/// new connections only, one round of one second.
/// The limit only guards against a hang: under the whole suite on 2 cores, its processes and
/// load threads share the machine with every other test, and it once took 83 s.
@Test(.timeLimit(.minutes(5))) func compareTLSMeasuresSwitchyardAndHAProxy() throws {
    let comparison = Comparison(try CompareOptions.parse(["--tls", "--close", "--targets", "instant,haproxy", "-d", "1s", "--rounds", "1",
                                                          "--warmup", "0", "-c", "4", "--switchyard", try DrillAgainstTheProxy.binary()]))
    guard comparison.findExecutable("haproxy") != nil else { return }  // a peer this machine lacks
    var template = Array("/tmp/bench-tls-json.XXXXXX".utf8CString)
    let dir = String(cString: try #require(mkdtemp(&template)))
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var options = comparison.options
    options.jsonPath = "\(dir)/tls.json"
    let run = Comparison(options)
    let status = try run.run()
    Cleanup.shared.remove(directory: run.directory)
    #expect(status == 0)
    let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/tls.json"))) as? [String: Any])
    let summary = try #require(json["summary"] as? [[String: Any]])
    #expect(summary.map { $0["target"] as? String } == ["switchyard", "haproxy"])
    for s in summary {
        #expect((s["requestsPerSec"] as? Double ?? 0) > 10, "\(s)")
        #expect((s["errors"] as? Int) == 0, "\(s)")
        #expect((s["cpuUsPerHandshake"] as? Double ?? 0) > 0, "\(s)")
        #expect((s["handshakes"] as? Int ?? 0) >= 10, "\(s)")
    }
    #expect((summary[1]["ratioToHAProxy"] as? Double) == 1)
}
