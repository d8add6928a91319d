import Foundation
import Reactor
import Syscalls
#if canImport(Glibc)
import Glibc
#endif

/// `switchyard-bench drill`: runs a staged rollout plan against built-in backends, once per kind
/// of new version, under load, and says whether the proxy judged each one right.
///
/// For each scenario: fresh backends (v1 and the scenario's v2), a fresh `switchyard` with v1
/// only, load on v1 alone for a few seconds, then the plan is `PUT` with the v2 cluster and the
/// load goes on while the API is polled ten times a second until the rollout completes, rolls
/// back, or the time limit passes. Only the proxy's REST API is used.
public enum DrillCommand {
    /// The command's options.
    public struct Options: Equatable, Sendable {
        public var plan = DrillPlan.standard
        public var scenarios = DrillScenario.allCases
        public var connections = 8
        /// Requests per second, all connections together.
        public var rate = 400
        /// The switchyard binary (default: next to this executable).
        public var switchyardPath: String?
        /// Write the report as JSON on stdout instead of the table.
        public var json = false
        /// Seconds from the PUT to give up (default: the plan's holds + 60).
        public var timeoutSeconds: Double?
        /// Seconds of load on v1 alone before the PUT.
        public var warmupSeconds = 3.0

        public init() {}

        /// The time limit of one scenario, from the PUT.
        public var effectiveTimeout: Double { timeoutSeconds ?? plan.totalHoldSeconds + 60 }
    }

    public static let usage = """
    Usage: switchyard-bench drill [options]
      A rollout drill: for each scenario, starts a fresh switchyard (next to this executable)
      with built-in backends for v1 and a new version v2, loads it, PUTs v2 with the plan and
      polls the API until the rollout completes or rolls back. New versions: good (answers like
      v1), errors (503 on 5 % of requests), slow (+50 ms), divergent (a different 200 body on
      10 % of paths). Reports per scenario the outcome (and the gate of a rollback), the time
      to decision (from the PUT, and from the first bad exchange), and the bad responses
      clients saw. Exit 0 when good completed and every other scenario rolled back, 1 when
      not, 2 for usage errors.
      Options:
        --plan <FILE>         an upgradeTransition object (default: CONCURRENT serving old
                              20 s, GRADUAL 10 % 20 s, GRADUAL 50 % 20 s, INSTANT)
        --scenarios <LIST>    comma-separated: good,errors,slow,divergent (default: all)
        --connections <N>     keep-alive client connections      (default 8)
        --rate <N>            requests per second in total       (default 400)
        --timeout <SECONDS>   give up this long after the PUT     (default: holds + 60)
        --warmup <SECONDS>    load on v1 alone before the PUT     (default 3)
        --switchyard <PATH>   the proxy binary to drive
        --json                the report as JSON on stdout (progress stays on stderr)
    """

    /// "5", "5s" or "2.5" → seconds.
    static func seconds(_ text: String, name: String, range: ClosedRange<Double>) throws(BenchUsageError) -> Double {
        let t = text.hasSuffix("s") ? String(text.dropLast()) : text
        guard let s = Double(t), s.isFinite, range.contains(s) else {
            throw BenchUsageError("\(name) must be a number of seconds in \(String(format: "%g", range.lowerBound))...\(String(format: "%g", range.upperBound)), got \"\(text)\"")
        }
        return s
    }

    /// Parses the arguments after `drill`; nil for --help.
    public static func parse(_ arguments: [String]) throws(BenchUsageError) -> Options? {
        let (flags, positionals) = try ArgumentReader.read(arguments) { name in
            switch name {
            case "--plan", "--scenarios", "--connections", "--rate", "--switchyard", "--timeout", "--warmup": return true
            case "--json", "-h", "--help": return false
            default: return nil
            }
        }
        if flags.contains(where: { $0.name == "-h" || $0.name == "--help" }) { return nil }
        guard positionals.isEmpty else { throw BenchUsageError("unexpected argument \"\(positionals[0])\"") }
        var o = Options()
        for (name, value) in flags {
            let v = value ?? ""
            switch name {
            case "--plan":
                guard let text = try? String(contentsOfFile: v, encoding: .utf8) else { throw BenchUsageError("cannot read the plan file \(v)") }
                do {
                    o.plan = try DrillPlan(text: text)
                } catch {
                    throw BenchUsageError("\(v): \(error)")
                }
            case "--scenarios":
                var chosen: [DrillScenario] = []
                for part in v.split(separator: ",", omittingEmptySubsequences: false) {
                    let word = part.trimmingCharacters(in: .whitespaces)
                    guard let s = DrillScenario(rawValue: word) else {
                        throw BenchUsageError("unknown scenario \"\(word)\" (valid: \(DrillScenario.allCases.map(\.rawValue).joined(separator: ", ")))")
                    }
                    if !chosen.contains(s) { chosen.append(s) }
                }
                o.scenarios = chosen
            case "--connections":
                guard let n = Int(v), (1...256).contains(n) else { throw BenchUsageError("--connections must be 1...256, got \"\(v)\"") }
                o.connections = n
            case "--rate":
                guard let n = Int(v), (1...100_000).contains(n) else { throw BenchUsageError("--rate must be 1...100000 requests per second, got \"\(v)\"") }
                o.rate = n
            case "--switchyard":
                guard !v.isEmpty else { throw BenchUsageError("--switchyard needs a path") }
                o.switchyardPath = v
            case "--timeout": o.timeoutSeconds = try seconds(v, name: name, range: 1...86_400)
            case "--warmup": o.warmupSeconds = try seconds(v, name: name, range: 0...600)
            default: o.json = true
            }
        }
        return o
    }

    /// The switchyard binary: `--switchyard PATH`, else `switchyard` in this executable's directory.
    static func switchyardBinary(_ o: Options) throws(BenchUsageError) -> String {
        let path = o.switchyardPath ?? URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("switchyard").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw BenchUsageError("no switchyard binary at \(path) (build it, or pass --switchyard PATH)")
        }
        return path
    }

    /// Runs the command; returns the exit status (0 all as expected, 1 not, 2 usage error).
    public static func main(_ arguments: [String]) -> Int32 {
        let options: Options
        let binary: String
        do {
            guard let parsed = try parse(arguments) else {
                printOut(usage + "\n")
                return 0
            }
            options = parsed
            binary = try switchyardBinary(options)
        } catch {
            printError("switchyard-bench drill: \(error) (see --help)")
            return 2
        }
        Cleanup.onSignals("switchyard-bench drill")
        let report = Drill(options, binary: binary).run { printError($0) }
        printOut(options.json ? report.json().text() : report.table())
        Cleanup.shared.run()
        return report.exitStatus
    }
}

/// One drill run: the scenarios one after the other, each with its own backends and proxy.
public struct Drill: Sendable {
    public let options: DrillCommand.Options
    public let binary: String

    public init(_ options: DrillCommand.Options, binary: String) {
        self.options = options
        self.binary = binary
    }

    /// Runs every scenario; `progress` receives one line per step (the command writes them to stderr).
    public func run(progress: (String) -> Void) -> DrillReport {
        var results: [DrillScenarioResult] = []
        for scenario in options.scenarios {
            results.append(run(scenario) { progress("[\(scenario.rawValue)] " + $0) })
        }
        return DrillReport(plan: options.plan, results: results)
    }

    /// The cluster document the plan is sent in.
    static func clusterBody(plan: DrillPlan, backendPort: Int) -> String {
        "{\"cluster\":{\"uuid\":\"v2\",\"version\":\"2.0\",\"servers\":[{\"hostname\":\"127.0.0.1\",\"port\":\(backendPort)}],"
            + "\"upgradeTransition\":\(plan.text)}}"
    }

    /// The proxy's configuration: v1 only, comparisons ignoring Date and Server.
    static func config(backendPort: Int) -> String {
        "{\"proxy\":{\"hostname\":\"127.0.0.1\",\"port\":0},\"configService\":{\"hostname\":\"127.0.0.1\",\"port\":0},"
            + "\"clusters\":[{\"uuid\":\"v1\",\"version\":\"1.0\",\"servers\":[{\"hostname\":\"127.0.0.1\",\"port\":\(backendPort)}]}],"
            + "\"comparisons\":{\"ignoreHeaders\":[\"Date\",\"Server\"]}}\n"
    }

    /// The proxy and API ports from switchyard's `event=started … proxy=HOST:PORT api=HOST:PORT` line.
    static func startedPorts(_ log: String) -> (proxy: Int, api: Int)? {
        for line in log.split(separator: "\n") where line.contains("event=started") {
            var proxy: Int?, api: Int?
            for field in line.split(separator: " ") {
                guard let colon = field.lastIndex(of: ":"), let port = Int(field[field.index(after: colon)...]) else { continue }
                if field.hasPrefix("proxy=") { proxy = port }
                if field.hasPrefix("api=") { api = port }
            }
            if let proxy, let api { return (proxy, api) }
        }
        return nil
    }

    /// Starts switchyard with v1 and waits until the proxy answers `GET /item/0`.
    func startProxy(directory: String, name: String, v1Port: Int) throws(BenchUsageError) -> (ChildProcess, proxy: Int, api: Int) {
        let config = "\(directory)/\(name).json"
        do {
            try Self.config(backendPort: v1Port).write(toFile: config, atomically: true, encoding: .utf8)
        } catch {
            throw BenchUsageError("cannot write \(config): \(error)")
        }
        let child = try ChildProcess.spawn(name: "switchyard", executable: binary,
                                           arguments: ["--config", config, "--workers", "1", "--log-level", "NOTICE"],
                                           logPath: "\(directory)/\(name).log")
        let deadline = Clock.nanoseconds() + 20_000_000_000
        while Clock.nanoseconds() < deadline {
            if let text = try? String(contentsOfFile: child.logPath, encoding: .utf8), let ports = Self.startedPorts(text) {
                guard HTTPProbe.waitReady(port: ports.proxy, path: "/item/0", seconds: 10, alive: { child.isRunning }) else {
                    Cleanup.shared.stop(child)
                    throw BenchUsageError("switchyard did not answer GET /item/0 on 127.0.0.1:\(ports.proxy); its log:\n" + child.logTail())
                }
                return (child, ports.proxy, ports.api)
            }
            guard child.isRunning else { throw BenchUsageError("switchyard exited at start; its log:\n" + child.logTail()) }
            usleep(20_000)
        }
        Cleanup.shared.stop(child)
        throw BenchUsageError("switchyard did not log event=started within 20 s; its log:\n" + child.logTail())
    }

    /// One scenario from fresh backends to the outcome.
    func run(_ scenario: DrillScenario, progress: (String) -> Void) -> DrillScenarioResult {
        let v1: DrillBackend, v2: DrillBackend
        do {
            v1 = try DrillBackend(kind: .v1)
            v2 = try DrillBackend(kind: scenario.kind)
        } catch {
            return DrillScenarioResult(scenario: scenario, outcome: .failed("cannot start the backends: \(error)"))
        }
        defer {
            v1.stop()
            v2.stop()
        }
        let directory: String
        let proxy: ChildProcess, proxyPort: Int, apiPort: Int
        do {
            directory = try makeTemporaryDirectory()
            (proxy, proxyPort, apiPort) = try startProxy(directory: directory, name: "switchyard-\(scenario.rawValue)", v1Port: v1.port)
        } catch {
            return DrillScenarioResult(scenario: scenario, outcome: .failed(error.description))
        }
        defer {
            Cleanup.shared.stop(proxy)
            Cleanup.shared.remove(directory: directory)
        }
        progress("switchyard pid \(proxy.pid) on 127.0.0.1:\(proxyPort) (API \(apiPort)); v1 on \(v1.port), v2 (\(scenario.rawValue)) on \(v2.port)")

        let load = DrillLoad(port: proxyPort, connections: options.connections, rate: options.rate)
        load.start()
        usleep(UInt32(options.warmupSeconds * 1e6))
        let before = load.tally
        progress("v1 alone: \(before.requests) requests, \(before.bad) bad; starting the plan")

        let putNanos = Clock.nanoseconds()
        let put = APIClient.request(port: apiPort, method: "PUT", path: "/configuration/cluster",
                                    body: Self.clusterBody(plan: options.plan, backendPort: v2.port), timeoutMillis: 5000)
        guard let put, put.status == 202 else {
            var result = DrillScenarioResult(scenario: scenario, outcome: .failed(
                put.map { "the proxy refused the plan: \($0.status) \($0.body.trimmingCharacters(in: .whitespacesAndNewlines))" }
                    ?? "the proxy did not answer the PUT of the plan"), tally: load.stop())
            result.newVersionBadAnswers = v2.badAnswers
            return result
        }

        let (outcome, decided, last) = awaitOutcome(apiPort: apiPort, proxy: proxy, putNanos: putNanos, progress: progress)
        var result = DrillScenarioResult(scenario: scenario, outcome: outcome, tally: load.stop())
        result.newVersionBadAnswers = v2.badAnswers
        result.lastRollout = last
        if let decided { result.setTimes(putNanos: putNanos, decidedNanos: decided, backendFirstBad: v2.firstBadNanos) }
        progress("\(outcome.name): \(result.tally.bad) bad of \(result.tally.requests) responses; v2 wrote \(v2.badAnswers) bad of \(v2.served) answers")
        return result
    }

    /// Polls `GET /configuration/cluster/v2` ten times a second until the rollout is final, the
    /// proxy exits, or the time limit passes. Returns the outcome, when it was seen (nil for a
    /// timeout or an error), and the last rollout reported.
    func awaitOutcome(apiPort: Int, proxy: ChildProcess, putNanos: UInt64,
                      progress: (String) -> Void) -> (DrillOutcome, UInt64?, RolloutStatus?) {
        let limit = options.effectiveTimeout
        let deadline = putNanos + UInt64(limit * 1e9)
        var last: RolloutStatus?
        var clusterState: String?
        var answered = false
        var next = Clock.nanoseconds()
        while Clock.nanoseconds() < deadline {
            guard proxy.isRunning else { return (.failed("switchyard exited during the plan; its log:\n" + proxy.logTail()), nil, last) }
            if let reply = APIClient.request(port: apiPort, method: "GET", path: "/configuration/cluster/v2"), reply.status == 200,
               let parsed = RolloutStatus.parse(reply.body) {
                let seen = Clock.nanoseconds()
                answered = true
                clusterState = parsed.clusterState
                if let rollout = parsed.rollout {
                    if rollout.summary != last?.summary { progress(rollout.summary) }
                    last = rollout
                    if rollout.state == "completed" { return (.completed, seen, rollout) }
                    if rollout.state == "rolledBack" { return (.rolledBack(gate: rollout.gate, reason: rollout.reason), seen, rollout) }
                }
            }
            next += 100_000_000
            let now = Clock.nanoseconds()
            if next > now { usleep(UInt32((next - now) / 1000)) } else { next = now }
        }
        let limitText = String(format: "%g", limit)
        let message: String
        if let last {
            message = "no outcome within \(limitText) s of the PUT; the rollout is \(last.summary)"
        } else if answered {
            message = "the proxy reported no rollout for v2 within \(limitText) s of the PUT (cluster state: \(clusterState ?? "none"));"
                + " this switchyard does not run staged plans"
        } else {
            message = "GET /configuration/cluster/v2 did not answer 200 within \(limitText) s of the PUT"
        }
        return (.timeout(message), nil, last)
    }
}
