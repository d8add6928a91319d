import Foundation
import Reactor
import Synchronization
import Syscalls
#if canImport(Glibc)
import Glibc
#endif

/// `switchyard-bench compare`: the backend direct, Switchyard in each upgrade mode and optional
/// peers, interleaved round by round, reported as ratios to direct.
///
/// Every run is bounded: loopback only, a hard time limit for the whole command (a watchdog
/// thread), children in their own process groups stopped with SIGTERM then SIGKILL on every way
/// out (normal end, error, SIGINT/SIGTERM, time limit), the temporary directory removed.
public enum CompareCommand {
    /// Runs the command; returns the exit status (0 ok, 1 guard failed, 2 could not measure).
    public static func main(_ arguments: [String]) -> Int32 {
        let options: CompareOptions
        do {
            options = try CompareOptions.parse(arguments)
        } catch {
            printError("switchyard-bench compare: \(error)")
            printError(compareUsage)
            return 2
        }
        if options.help {
            printOut(compareUsage + "\n")
            return 0
        }
        Cleanup.onSignals("switchyard-bench compare")
        let finished = DoneFlag()
        let limit = options.effectiveTimeLimit
        let watchdog = ReactorThread.start { [finished] in
            let deadline = Clock.nanoseconds() + limit * 1_000_000_000
            while Clock.nanoseconds() < deadline {
                if finished.value.load(ordering: .acquiring) { return }
                usleep(100_000)
            }
            printError("switchyard-bench compare: hard time limit of \(limit) s reached, stopping (raise it with --time-limit)")
            Cleanup.shared.run()
            _exit(124)
        }
        let status: Int32
        do {
            status = try Comparison(options).run()
        } catch {
            printError("switchyard-bench compare: \(error)")
            status = 2
        }
        finished.value.store(true, ordering: .releasing)
        ReactorThread.join(watchdog)
        Cleanup.shared.run()
        return status
    }
}

/// Tells the watchdog the command has finished.
final class DoneFlag: Sendable {
    let value = Atomic<Bool>(false)
}

/// One target: where to send load, and the process behind it (nil for direct).
struct CompareTarget {
    var name: String
    var port: Int
    var process: ChildProcess?
}

/// One measured run.
struct CompareRun {
    var target: String
    var round: Int
    var result: LoadResult
    /// Socket errors plus non-2xx/3xx responses.
    var errors: UInt64 { result.errors.total + result.non2xx }
}

/// The whole comparison, from start-up to reports.
final class Comparison {
    let options: CompareOptions
    var directory = ""
    var backend: BenchBackend?
    var backendPort = 0
    var targets: [CompareTarget] = []

    init(_ options: CompareOptions) { self.options = options }

    func run() throws(BenchUsageError) -> Int32 {
        if options.tls { return try runTLS() }
        // A baseline without figures for this payload is a mistake to report before measuring.
        var baseline: Baseline?
        if let path = options.baselinePath {
            let b = try Baseline.load(path)
            guard let entries = b.ratios[options.payloadKey], !entries.isEmpty else {
                throw BenchUsageError("baseline \(path) has no ratios for \"\(options.payloadKey)\" (it has: \(b.ratios.keys.sorted().joined(separator: ", ")))")
            }
            baseline = b
        }
        directory = try makeTemporaryDirectory()
        try startBackend()
        defer { backend?.stop() }
        targets.append(CompareTarget(name: "direct", port: backendPort, process: nil))
        let names = options.targetNames
        let modes = CompareOptions.switchyardModes.filter { names.contains("switchyard-\($0)") }
        if !modes.isEmpty {
            let binary = try switchyardBinary()
            for mode in modes { targets.append(try startSwitchyard(binary: binary, mode: mode)) }
        }
        for peer in options.peers where names.contains(peer) {
            guard let executable = findExecutable(peer) else {
                printError("compare: \(peer) is not installed (not on PATH): skipped")
                continue
            }
            targets.append(try startPeer(peer, executable: executable))
        }
        for t in targets {
            guard let answer = HTTPProbe.get(port: t.port, path: options.path, timeoutMillis: 5000), answer.status == 200 else {
                throw BenchUsageError("\(t.name) does not answer GET \(options.path) with 200 on 127.0.0.1:\(t.port)" + (t.process.map { "; its log:\n" + $0.logTail() } ?? ""))
            }
        }

        let o = options
        printOut("compare: GET \(o.path)\(o.close ? " (Connection: close, a new connection per request)" : ""), -t\(o.threads) -c\(o.connections) -d\(o.durationSeconds)s per run, \(o.rounds) round(s), "
                 + "switchyard --workers \(o.workers), backend \(o.backendURL?.text ?? "built-in (\(o.backendThreads) thread\(o.backendThreads == 1 ? "" : "s"))")\n")
        printOut("targets: " + targets.map { "\($0.name) (:\($0.port))" }.joined(separator: ", ") + "\n")

        if o.warmupSeconds > 0 {
            for t in targets { _ = try load(t, seconds: o.warmupSeconds) }
        }
        var runs: [CompareRun] = []
        for round in 1...o.rounds {
            let n = targets.count
            for i in 0..<n {
                let t = targets[(i + round - 1) % n]
                let result = try load(t, seconds: o.durationSeconds)
                let run = CompareRun(target: t.name, round: round, result: result)
                runs.append(run)
                printError("[round \(round)/\(o.rounds)] " + t.name.padding(toLength: 22, withPad: " ", startingAt: 0)
                           + String(format: "%10.0f req/s", result.requestsPerSecond)
                           + "  p50 " + WrkUnits.timeMicros(result.latencyMicros(50))
                           + "  p99 " + WrkUnits.timeMicros(result.latencyMicros(99)) + "  errors \(run.errors)")
                if let p = t.process, !p.isRunning {
                    throw BenchUsageError("\(t.name) exited during the run; its log:\n" + p.logTail())
                }
                usleep(300_000)  // let TIME_WAIT and softirq backlog settle between runs
            }
        }
        for t in targets { if let p = t.process { Cleanup.shared.stop(p) } }

        let report = CompareReport(options: o, targetNames: targets.map(\.name), runs: runs)
        printOut(report.table())
        if let path = o.jsonPath {
            do { try writeText(report.json().text(), to: path) } catch { throw BenchUsageError("cannot write \(path): \(error)") }
        }
        if let path = o.htmlPath {
            do { try writeText(report.html(), to: path) } catch { throw BenchUsageError("cannot write \(path): \(error)") }
        }
        if let path = o.writeBaselinePath {
            var b = (try? Baseline.load(path)) ?? Baseline()
            b.ratios[o.payloadKey] = report.guardRatios()
            var measured = b.measured
            measured["machine"] = Baseline.machineDescription()
            measured["date"] = ISO8601DateFormatter().string(from: Date())
            measured["command"] = "switchyard-bench compare " + CommandLine.arguments.dropFirst(2).joined(separator: " ")
            b.measured = measured
            do { try writeText(b.text(), to: path) } catch { throw BenchUsageError("cannot write \(path): \(error)") }
            printOut("baseline: wrote \(o.payloadKey) ratios to \(path)\n")
        }
        if o.guardEnabled {
            var failures = report.guardFailures()
            if let baseline {
                let (checks, table) = report.baselineChecks(baseline)
                printOut(table)
                for c in checks where !c.passed {
                    failures.append(String(format: "%@ is %@, below %.2f x its baseline %.3f (bound %.3f)", c.name,
                                           c.measured.map { String(format: "%.3f", $0) } ?? "not measured", o.maxDrop, c.baseline, c.bound))
                }
            }
            if failures.isEmpty {
                printOut("guard: OK (\(report.guardDescription))\n")
                return 0
            }
            for f in failures { printError("guard: FAILED: \(f)") }
            return 1
        }
        return 0
    }

    /// One load run against a target.
    func load(_ t: CompareTarget, seconds: UInt64) throws(BenchUsageError) -> LoadResult {
        let close = options.close ? "Connection: close\r\n" : ""
        let request = Array("GET \(options.path) HTTP/1.1\r\nHost: 127.0.0.1:\(t.port)\r\n\(close)\r\n".utf8)
        let plan = LoadPlan(address: SocketAddress(host: "127.0.0.1", port: t.port)!, url: "http://127.0.0.1:\(t.port)\(options.path)",
                            request: request, threads: options.threads, connections: options.connections,
                            durationNanos: seconds * 1_000_000_000, timeoutNanos: 2_000_000_000,
                            closeAfterEachResponse: options.close)
        do {
            return try LoadGenerator.run(plan)
        } catch {
            throw BenchUsageError("load run against \(t.name) failed: \(error)")
        }
    }

    func startBackend() throws(BenchUsageError) {
        if let url = options.backendURL {
            guard HTTPProbe.waitReady(port: url.port, path: options.path, seconds: 5) else {
                throw BenchUsageError("backend \(url.text) does not answer GET \(options.path) with 200")
            }
            guard url.connectHost == "127.0.0.1" else {
                throw BenchUsageError("--backend must be on 127.0.0.1 (the proxies are configured with that address)")
            }
            backendPort = url.port
            return
        }
        do {
            let b = try BenchBackend(port: 0, threads: options.backendThreads)
            backend = b
            backendPort = b.port
        } catch {
            throw BenchUsageError("cannot start the built-in backend: \(error)")
        }
    }

    func switchyardBinary() throws(BenchUsageError) -> String {
        let candidates = options.switchyardPath.map { [$0] } ?? [".build/release/switchyard", ".build/debug/switchyard"]
        for c in candidates where FileManager.default.isExecutableFile(atPath: c) { return c }
        throw BenchUsageError("no switchyard binary at \(candidates.joined(separator: " or ")) (run `swift build -c release` or pass --switchyard PATH)")
    }

    /// The configuration for one mode: INSTANT with one cluster; the others with an older cluster
    /// v1.0 and the new v2.0 in that mode, both pointing at the backend.
    static func switchyardConfig(mode: String, backendPort: Int) -> String {
        let servers = "\"servers\":[{\"hostname\":\"127.0.0.1\",\"port\":\(backendPort)}]"
        let v1 = "{\"cluster\":{\(servers),\"version\":\"1.0\",\"uuid\":\"v1\"}}"
        let transition: String
        switch mode {
        case "session": transition = "{\"mode\":\"SESSION\",\"sessionTimeout\":60}"
        case "gradual": transition = "{\"mode\":\"GRADUAL\",\"percentageTransitionPerRequest\":1}"
        case "concurrent": transition = "{\"mode\":\"CONCURRENT\"}"
        default: transition = ""
        }
        let clusters = transition.isEmpty
            ? v1
            : v1 + ",{\"cluster\":{\(servers),\"upgradeTransition\":\(transition),\"version\":\"2.0\",\"uuid\":\"v2\"}}"
        return "{\"proxy\":{\"hostname\":\"127.0.0.1\",\"port\":0},\"configService\":{\"hostname\":\"127.0.0.1\",\"port\":0},"
            + "\"clusters\":[\(clusters)]}\n"
    }

    func startSwitchyard(binary: String, mode: String) throws(BenchUsageError) -> CompareTarget {
        try launchSwitchyard(name: "switchyard-\(mode)", binary: binary,
                             config: Self.switchyardConfig(mode: mode, backendPort: backendPort),
                             awaiting: "event=started", port: Self.startedPort)
    }

    /// Writes `config` to the run's directory, starts switchyard on it, and waits up to 20 s
    /// for its log to show the port to load (`port` reads it from the log; `awaiting` names
    /// the line in the error when it never comes).
    func launchSwitchyard(name: String, binary: String, config: String, awaiting: String,
                          port: (String) -> Int?) throws(BenchUsageError) -> CompareTarget {
        let path = "\(directory)/\(name).json"
        do {
            try config.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw BenchUsageError("cannot write \(path): \(error)")
        }
        let child = try ChildProcess.spawn(name: name, executable: binary,
                                           arguments: ["--config", path, "--workers", String(options.workers), "--log-level", "NOTICE"],
                                           logPath: "\(directory)/\(name).log")
        let deadline = Clock.nanoseconds() + 20_000_000_000
        while Clock.nanoseconds() < deadline {
            if let text = try? String(contentsOfFile: child.logPath, encoding: .utf8), let port = port(text) {
                return CompareTarget(name: name, port: port, process: child)
            }
            guard child.isRunning else { throw BenchUsageError("\(name) exited at start; its log:\n" + child.logTail()) }
            usleep(50_000)
        }
        throw BenchUsageError("\(name) did not log \(awaiting) within 20 s; its log:\n" + child.logTail())
    }

    /// The proxy port from switchyard's `event=started … proxy=127.0.0.1:PORT …` line.
    static func startedPort(_ log: String) -> Int? {
        for line in log.split(separator: "\n") where line.contains("event=started") {
            for field in line.split(separator: " ") where field.hasPrefix("proxy=") {
                if let colon = field.lastIndex(of: ":"), let port = Int(field[field.index(after: colon)...]) { return port }
            }
        }
        return nil
    }

    func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin"
        for dir in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin"] {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Starts HAProxy or nginx in the foreground with a configuration like ../shared/peerbench's:
    /// one thread/worker, keep-alive on both sides, backend connections reused, no logging.
    func startPeer(_ peer: String, executable: String) throws(BenchUsageError) -> CompareTarget {
        let port = try freeLoopbackPort()
        let config: String
        let arguments: [String]
        switch peer {
        case "haproxy":
            config = "\(directory)/haproxy.cfg"
            arguments = ["-db", "-f", config]
            try write(PeerConfigs.haproxy(port: port, backendPort: backendPort), to: config)
        default:
            config = "\(directory)/nginx.conf"
            try? FileManager.default.createDirectory(atPath: "\(directory)/nginx_tmp", withIntermediateDirectories: true)
            arguments = ["-p", directory, "-c", config, "-e", "\(directory)/nginx.error.log", "-g", "daemon off;"]
            try write(PeerConfigs.nginx(port: port, backendPort: backendPort, directory: directory), to: config)
        }
        let child = try ChildProcess.spawn(name: peer, executable: executable, arguments: arguments, logPath: "\(directory)/\(peer).log")
        guard HTTPProbe.waitReady(port: port, path: options.path, seconds: 10, alive: { child.isRunning }) else {
            throw BenchUsageError("\(peer) did not answer on 127.0.0.1:\(port); its log:\n" + child.logTail())
        }
        return CompareTarget(name: peer, port: port, process: child)
    }

    private func write(_ text: String, to path: String) throws(BenchUsageError) {
        do { try text.write(toFile: path, atomically: true, encoding: .utf8) } catch { throw BenchUsageError("cannot write \(path): \(error)") }
    }
}

/// Peer configurations, after ../shared/peerbench (haproxy.cfg, proxy.nginx.conf), run in the
/// foreground so the process we start is the one we stop.
enum PeerConfigs {
    /// HAProxy, one thread, keep-alive both sides. With `certificate` (a PEM holding the
    /// certificate and its key) it terminates TLS 1.3 on `port` instead of plain HTTP.
    static func haproxy(port: Int, backendPort: Int, certificate: String? = nil) -> String {
        let tlsGlobal = certificate == nil ? "" : "\n    ssl-default-bind-options ssl-min-ver TLSv1.3"
        let tlsBind = certificate.map { " ssl crt \($0) alpn http/1.1" } ?? ""
        return """
        global
            nbthread 1
            maxconn 6000\(tlsGlobal)
        defaults
            mode http
            maxconn 6000
            option http-keep-alive
            http-reuse always
            timeout connect 5s
            timeout client 30s
            timeout server 30s
            timeout http-request 10s
            timeout http-keep-alive 30s
        frontend fe_bench
            bind 127.0.0.1:\(port)\(tlsBind) backlog 4096
            default_backend be_bench
        backend be_bench
            server backend1 127.0.0.1:\(backendPort)

        """
    }

    static func nginx(port: Int, backendPort: Int, directory: String) -> String {
        """
        worker_processes 1;
        worker_rlimit_nofile 16384;
        pid \(directory)/nginx.pid;
        error_log \(directory)/nginx.error.log warn;
        events { worker_connections 8192; }
        http {
            access_log off;
            tcp_nodelay on;
            keepalive_timeout 65s;
            keepalive_requests 1000000;
            server_tokens off;
            client_body_temp_path \(directory)/nginx_tmp/body;
            proxy_temp_path       \(directory)/nginx_tmp/proxy;
            fastcgi_temp_path     \(directory)/nginx_tmp/fastcgi;
            uwsgi_temp_path       \(directory)/nginx_tmp/uwsgi;
            scgi_temp_path        \(directory)/nginx_tmp/scgi;
            upstream bench_backend {
                server 127.0.0.1:\(backendPort);
                keepalive 64;
                keepalive_requests 1000000;
                keepalive_timeout 60s;
            }
            server {
                listen 127.0.0.1:\(port) backlog=4096;
                location / {
                    proxy_pass http://bench_backend;
                    proxy_http_version 1.1;
                    proxy_set_header Connection "";
                    proxy_max_temp_file_size 0;
                }
            }
        }

        """
    }
}
