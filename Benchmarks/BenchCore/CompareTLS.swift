import Foundation
import HTTP1
import Reactor
import Syscalls
import TLS
#if canImport(Glibc)
import Glibc
#endif

/// One load of `compare --tls`: what is asked and how.
public struct TLSLoad: Equatable, Sendable {
    /// `close` (a new connection and full handshake per request), `small` (keep-alive, the
    /// 6-byte `/`), `big` (keep-alive, the 1 MiB `/big`), or the path itself for another path.
    public var name: String
    public var path: String
    public var close: Bool

    public static let close = TLSLoad(name: "close", path: "/", close: true)
    public static let small = TLSLoad(name: "small", path: "/", close: false)
    public static let big = TLSLoad(name: "big", path: "/big", close: false)
}

/// One measured TLS run: the load, the target, and the target's CPU time over the run.
struct TLSRun {
    var load: String
    var target: String
    var round: Int
    var result: LoadResult
    /// utime + stime of the target's processes over the run, seconds.
    var cpuSeconds: Double
    /// Socket errors (failed handshakes among them) plus non-2xx/3xx responses.
    var errors: UInt64 { result.errors.total + result.non2xx }
}

/// The TLS 1.3 suite every target is held to: the client offers this one only.
let benchCipherSuite = "TLS_AES_256_GCM_SHA384"
/// The name the benchmark certificate is made for (sent as SNI).
let benchServerName = "bench.test"

extension Comparison {
    /// `compare --tls`: Switchyard, HAProxy and nginx terminate TLS 1.3 with one ECDSA P-256
    /// certificate (made here with the `openssl` command) in front of the same plain backend;
    /// every load runs its rounds with the targets' order rotated, and the report gives ratios
    /// to HAProxy and each proxy's CPU per request (per handshake for `close`).
    func runTLS() throws(BenchUsageError) -> Int32 {
        let o = options
        guard let openssl = findExecutable("openssl") else {
            throw BenchUsageError("--tls needs the openssl command to make the certificate (apt-get install openssl)")
        }
        guard findExecutable("haproxy") != nil || !o.peers.contains("haproxy") else {
            throw BenchUsageError("--tls needs haproxy on PATH: the ratios are to HAProxy (apt-get install haproxy)")
        }
        directory = try makeTemporaryDirectory()
        let (cert, key) = try makeCertificate(openssl: openssl)
        try startBackend()
        defer { backend?.stop() }
        let client: TLSClientContext
        do {
            client = try TLSClientContext(caFile: cert, verify: true, minVersion: .tls13, ciphersuites: benchCipherSuite)
        } catch {
            throw BenchUsageError("cannot make the TLS client: \(error)")
        }
        let names = o.targetNames
        if names.contains("switchyard-instant") {
            targets.append(try startSwitchyardTLS(binary: try switchyardBinary(), cert: cert, key: key))
        }
        for peer in o.peers where names.contains(peer) {
            guard let executable = findExecutable(peer) else {
                printError("compare: \(peer) is not installed (not on PATH): skipped")
                continue
            }
            targets.append(try startPeerTLS(peer, executable: executable, cert: cert, key: key))
        }
        guard !targets.isEmpty else { throw BenchUsageError("--tls: no target to measure") }
        for t in targets {
            for load in o.tlsLoads {
                guard let answer = TLSProbe.get(port: t.port, path: load.path, context: client), answer.status == 200 else {
                    throw BenchUsageError("\(t.name) does not answer GET \(load.path) over TLS with 200 on 127.0.0.1:\(t.port)"
                                          + (t.process.map { "; its log:\n" + $0.logTail() } ?? ""))
                }
            }
        }
        let loadNames = o.tlsLoads.map(\.name).joined(separator: ", ")
        printOut("compare --tls: TLS 1.3, \(benchCipherSuite), ECDSA P-256, \(o.resume ? "sessions resumed" : "full handshakes"), loads \(loadNames); -t\(o.threads) -c\(o.connections) -d\(o.durationSeconds)s per run, "
                 + "\(o.rounds) round(s), switchyard --workers \(o.workers), backend \(o.backendURL?.text ?? "built-in") (plain)\n")
        printOut("targets: " + targets.map { "\($0.name) (:\($0.port))" }.joined(separator: ", ") + "\n")
        if o.warmupSeconds > 0 {
            for t in targets { _ = try loadTLS(t, .small, client: client, seconds: o.warmupSeconds) }
        }
        var runs: [TLSRun] = []
        for load in o.tlsLoads {
            for round in 1...o.rounds {
                let n = targets.count
                for i in 0..<n {
                    let t = targets[(i + round - 1) % n]
                    let pids = t.process.map { ProcessCPU.group($0.pid) } ?? []
                    let before = ProcessCPU.seconds(pids)
                    let result = try loadTLS(t, load, client: client, seconds: o.durationSeconds)
                    let cpu = ProcessCPU.seconds(pids) - before
                    let run = TLSRun(load: load.name, target: t.name, round: round, result: result, cpuSeconds: cpu)
                    runs.append(run)
                    let perRequest = result.requests > 0 ? cpu * 1e6 / Double(result.requests) : 0
                    printError("[\(load.name) \(round)/\(o.rounds)] " + t.name.padding(toLength: 12, withPad: " ", startingAt: 0)
                               + String(format: "%10.0f req/s  CPU %7.1f µs/req", result.requestsPerSecond, perRequest)
                               + "  p99 " + WrkUnits.timeMicros(result.latencyMicros(99))
                               + "  handshakes \(result.handshakes)  errors \(run.errors)"
                               + (result.tlsFailure.map { "  (\($0))" } ?? ""))
                    if let p = t.process, !p.isRunning {
                        throw BenchUsageError("\(t.name) exited during the run; its log:\n" + p.logTail())
                    }
                    usleep(300_000)
                }
            }
        }
        for t in targets { if let p = t.process { Cleanup.shared.stop(p) } }
        let report = TLSCompareReport(options: o, targetNames: targets.map(\.name), runs: runs)
        printOut(report.table())
        if let path = o.jsonPath {
            do { try writeText(report.json().text(), to: path) } catch { throw BenchUsageError("cannot write \(path): \(error)") }
        }
        return 0
    }

    /// One TLS load run against a target.
    func loadTLS(_ t: CompareTarget, _ load: TLSLoad, client: TLSClientContext, seconds: UInt64) throws(BenchUsageError) -> LoadResult {
        let close = load.close ? "Connection: close\r\n" : ""
        let request = Array("GET \(load.path) HTTP/1.1\r\nHost: \(benchServerName):\(t.port)\r\n\(close)\r\n".utf8)
        let plan = LoadPlan(address: SocketAddress(host: "127.0.0.1", port: t.port)!, url: "https://127.0.0.1:\(t.port)\(load.path)",
                            request: request, threads: options.threads, connections: options.connections,
                            durationNanos: seconds * 1_000_000_000, timeoutNanos: 2_000_000_000,
                            closeAfterEachResponse: load.close, tls: LoadTLS(context: client, serverName: benchServerName, resume: options.resume))
        do {
            return try LoadGenerator.run(plan)
        } catch {
            throw BenchUsageError("load run against \(t.name) failed: \(error)")
        }
    }

    /// Makes a self-signed ECDSA P-256 certificate for `bench.test` in the run's directory,
    /// plus `combined.pem` (certificate then key, as HAProxy takes it). Returns the two paths.
    func makeCertificate(openssl: String) throws(BenchUsageError) -> (cert: String, key: String) {
        let cert = "\(directory)/cert.pem", key = "\(directory)/key.pem"
        let child = try ChildProcess.spawn(
            name: "openssl", executable: openssl,
            arguments: ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=\(benchServerName)", "-addext", "subjectAltName=DNS:\(benchServerName)"],
            logPath: "\(directory)/openssl.log")
        let deadline = Clock.nanoseconds() + 20_000_000_000
        while child.isRunning && Clock.nanoseconds() < deadline { usleep(20_000) }
        Cleanup.shared.stop(child)
        guard let c = FileManager.default.contents(atPath: cert), let k = FileManager.default.contents(atPath: key), !c.isEmpty, !k.isEmpty else {
            throw BenchUsageError("openssl could not make the benchmark certificate; its output:\n" + child.logTail())
        }
        do {
            try (c + k).write(to: URL(fileURLWithPath: "\(directory)/combined.pem"))
        } catch {
            throw BenchUsageError("cannot write \(directory)/combined.pem: \(error)")
        }
        return (cert, key)
    }

    /// Switchyard with one TLS listener (port 0, TLS 1.3 only) and one cluster: the backend.
    static func switchyardTLSConfig(backendPort: Int, cert: String, key: String) -> String {
        "{\"proxy\":{\"hostname\":\"127.0.0.1\",\"listeners\":[{\"port\":0,\"tls\":{\"certificates\":[{\"cert\":\"\(cert)\",\"key\":\"\(key)\"}],"
            + "\"minVersion\":\"1.3\"}}]},\"configService\":{\"hostname\":\"127.0.0.1\",\"port\":0},"
            + "\"clusters\":[{\"cluster\":{\"servers\":[{\"hostname\":\"127.0.0.1\",\"port\":\(backendPort)}],\"version\":\"1.0\",\"uuid\":\"v1\"}}]}\n"
    }

    func startSwitchyardTLS(binary: String, cert: String, key: String) throws(BenchUsageError) -> CompareTarget {
        try launchSwitchyard(name: "switchyard", binary: binary,
                             config: Self.switchyardTLSConfig(backendPort: backendPort, cert: cert, key: key),
                             awaiting: "its TLS listener (event=listening … tls=yes)", port: Self.listeningTLSPort)
    }

    /// The port of the first TLS listener from switchyard's `event=listening port=N tls=yes …` line.
    static func listeningTLSPort(_ log: String) -> Int? {
        for line in log.split(separator: "\n") where line.contains("event=listening") && line.contains(" tls=yes") {
            for field in line.split(separator: " ") where field.hasPrefix("port=") {
                if let port = Int(field.dropFirst("port=".count)) { return port }
            }
        }
        return nil
    }

    /// HAProxy or nginx terminating TLS 1.3 with the certificate, in the foreground.
    func startPeerTLS(_ peer: String, executable: String, cert: String, key: String) throws(BenchUsageError) -> CompareTarget {
        let port = try freeLoopbackPort()
        let config: String
        let arguments: [String]
        if peer == "haproxy" {
            config = "\(directory)/haproxy-tls.cfg"
            arguments = ["-db", "-f", config]
            try writeTLSConfig(PeerConfigs.haproxy(port: port, backendPort: backendPort, certificate: "\(directory)/combined.pem"), to: config)
        } else {
            config = "\(directory)/nginx-tls.conf"
            try? FileManager.default.createDirectory(atPath: "\(directory)/nginx_tmp", withIntermediateDirectories: true)
            arguments = ["-p", directory, "-c", config, "-e", "\(directory)/nginx.error.log", "-g", "daemon off;"]
            try writeTLSConfig(PeerConfigs.nginxTLS(port: port, backendPort: backendPort, directory: directory, cert: cert, key: key), to: config)
        }
        let child = try ChildProcess.spawn(name: peer, executable: executable, arguments: arguments, logPath: "\(directory)/\(peer).log")
        // Ready once it accepts TCP; the TLS probe that follows checks the rest.
        let deadline = Clock.nanoseconds() + 10_000_000_000
        while Clock.nanoseconds() < deadline {
            if TLSProbe.accepts(port: port) { return CompareTarget(name: peer, port: port, process: child) }
            guard child.isRunning else { break }
            usleep(50_000)
        }
        throw BenchUsageError("\(peer) did not listen on 127.0.0.1:\(port); its log:\n" + child.logTail())
    }

    private func writeTLSConfig(_ text: String, to path: String) throws(BenchUsageError) {
        do { try text.write(toFile: path, atomically: true, encoding: .utf8) } catch { throw BenchUsageError("cannot write \(path): \(error)") }
    }
}

extension PeerConfigs {
    /// nginx terminating TLS 1.3 (one worker, backend connections kept alive, no logging).
    static func nginxTLS(port: Int, backendPort: Int, directory: String, cert: String, key: String) -> String {
        nginx(port: port, backendPort: backendPort, directory: directory)
            .replacingOccurrences(of: "listen 127.0.0.1:\(port) backlog=4096;",
                                  with: "listen 127.0.0.1:\(port) ssl backlog=4096;\n                ssl_certificate \(cert);\n"
                                      + "                ssl_certificate_key \(key);\n                ssl_protocols TLSv1.3;")
    }
}

/// CPU time of processes, from /proc/PID/stat (utime + stime).
enum ProcessCPU {
    /// The process `leader` and every process of its process group (nginx's workers).
    static func group(_ leader: pid_t) -> [pid_t] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [leader] }
        var pids: [pid_t] = [leader]
        for entry in entries {
            guard let pid = pid_t(entry), pid != leader, let fields = statFields(pid), fields.count > 2 else { continue }
            if pid_t(fields[2]) == leader { pids.append(pid) }  // field 5 of stat: the process group
        }
        return pids
    }

    /// The fields of /proc/PID/stat after the command name (field 3 onwards), nil when gone.
    static func statFields(_ pid: pid_t) -> [Substring]? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        // The command name is in parentheses and may hold spaces: split after its last ')'.
        guard let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(after: close)...].split(separator: " ")
    }

    /// Total user + system CPU time of `pids`, seconds (processes that are gone count 0).
    static func seconds(_ pids: [pid_t]) -> Double {
        let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
        var ticks = 0.0
        for pid in pids {
            guard let f = statFields(pid), f.count > 12, let user = Double(f[11]), let system = Double(f[12]) else { continue }
            ticks += user + system  // fields 14 and 15 of stat
        }
        return ticks / hz
    }
}

/// One blocking-with-timeout `GET` over TLS, for readiness checks.
enum TLSProbe {
    /// Whether something accepts a TCP connection on 127.0.0.1:`port`.
    static func accepts(port: Int) -> Bool {
        guard let address = SocketAddress(host: "127.0.0.1", port: port), let (fd, connected) = try? Socket.connect(address) else { return false }
        defer { Socket.close(fd) }
        if connected { return true }
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        return poll(&p, 1, 1000) > 0 && Socket.pendingError(fd) == 0
    }

    /// Status and body size of `GET path` (with `Connection: close`), nil when nothing valid
    /// came back in time.
    static func get(port: Int, path: String, context: TLSClientContext, timeoutMillis: Int32 = 5000) -> (status: Int, bodyBytes: Int)? {
        guard let (fd, wait) = HTTPProbe.connect(port: port, timeoutMillis: timeoutMillis) else { return nil }
        defer { Socket.close(fd) }
        guard let tls = clientTLS(context, fd: fd, name: benchServerName) else { return nil }
        handshake: while true {
            switch tls.handshake() {
            case .done: break handshake
            case .wantRead: guard wait(Int16(POLLIN)) else { return nil }
            case .wantWrite: guard wait(Int16(POLLOUT)) else { return nil }
            case .failed: return nil
            }
        }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: \(benchServerName):\(port)\r\nConnection: close\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            let r = request[sent...].withUnsafeBytes { tls.write($0) }
            switch r {
            case .done(let n): sent += n
            case .wantRead: guard wait(Int16(POLLIN)) else { return nil }
            case .wantWrite: guard wait(Int16(POLLOUT)) else { return nil }
            case .closed, .failed: return nil
            }
        }
        var response: [UInt8] = []
        let buffer = ByteBuffer(capacity: 65536)
        while true {
            switch tls.read(into: buffer) {
            case .done:
                response += buffer.readable
                buffer.clear()
            case .wantRead: guard wait(Int16(POLLIN)) else { return nil }
            case .wantWrite: guard wait(Int16(POLLOUT)) else { return nil }
            case .failed: return nil
            case .closed:
                return HTTPProbe.parsed(response)
            }
        }
    }
}
