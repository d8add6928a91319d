import Foundation

/// What `switchyard-bench compare` was asked to do.
public struct CompareOptions: Equatable, Sendable {
    public var connections = 50
    public var threads = 1
    public var durationSeconds: UInt64 = 5
    public var rounds = 3
    /// Unrecorded run per target before the rounds, seconds (0 = none).
    public var warmupSeconds: UInt64 = 1
    /// Proxy reactor threads (`switchyard --workers`).
    public var workers = 1
    public var path = "/"
    /// A new connection per request (`Connection: close`) instead of keep-alive.
    public var close = false
    /// The switchyard binary; nil = .build/release/switchyard, then .build/debug/switchyard.
    public var switchyardPath: String?
    /// An external backend to use instead of the built-in one.
    public var backendURL: TargetURL?
    /// Reactor threads of the built-in backend.
    public var backendThreads = 1
    /// Peer proxies to add: "haproxy", "nginx".
    public var peers: [String] = []
    /// Restricts the targets (direct is always measured); nil = all.
    public var targets: [String]?
    public var jsonPath: String?
    public var htmlPath: String?
    public var quick = false
    /// CI guard: fail when a switchyard target's p99 exceeds this multiple of direct's.
    public var maxP99Ratio: Double?
    /// CI guard: fail when a switchyard target's throughput is below this fraction of direct's.
    public var minThroughputRatio: Double?
    /// CI guard: most errors a switchyard target may have (default 0 when a guard bound is set).
    public var maxErrors: UInt64?
    /// CI guard: committed baseline ratios (`Benchmarks/baseline.json`) to compare against.
    public var baselinePath: String?
    /// CI guard: a ratio fails when it falls below this fraction of its baseline.
    public var maxDrop = 0.5
    /// Writes this run's ratios into the file (merged with what it holds for other payloads).
    public var writeBaselinePath: String?
    /// Hard limit for the whole command, seconds; nil = computed from the plan.
    public var timeLimitSeconds: UInt64?
    /// `--tls`: Switchyard, HAProxy and nginx terminating TLS 1.3 instead of the plain modes.
    public var tls = false
    /// `--resume` (with `--tls`): new connections resume the previous session (abbreviated
    /// handshakes) instead of making full ones.
    public var resume = false
    /// Whether `--path` was given (with `--tls` it picks one load instead of all three).
    public var pathGiven = false
    public var help = false

    public init() {}

    /// Every target `compare` knows, in table order.
    public static let switchyardModes = ["instant", "session", "gradual", "concurrent"]
    public static let knownPeers = ["haproxy", "nginx"]

    /// The targets of this run, in table order: direct, the switchyard modes, the peers.
    public var targetNames: [String] {
        var names = ["direct"] + Self.switchyardModes.map { "switchyard-\($0)" } + peers
        if let targets { names = names.filter { $0 == "direct" || targets.contains($0) } }
        return names
    }

    /// The loads of a `--tls` run: `--close` or `--path` pick one; otherwise all three
    /// (new connections, keep-alive small requests, keep-alive 1 MiB bodies).
    public var tlsLoads: [TLSLoad] {
        guard close || pathGiven else { return [.close, .small, .big] }
        let name = close ? "close" : (path == "/" ? "small" : (path == "/big" ? "big" : path))
        return [TLSLoad(name: name, path: path, close: close)]
    }

    /// Whether the CI guard is on.
    public var guardEnabled: Bool { maxP99Ratio != nil || minThroughputRatio != nil || baselinePath != nil }

    /// The key of this run's ratios in a baseline file: the path, and `close` for --close.
    public var payloadKey: String { close ? "\(path) close" : path }

    /// Seconds the plan should take, plus start-up and slack: the hard limit unless one is given.
    public var effectiveTimeLimit: UInt64 {
        if let timeLimitSeconds { return timeLimitSeconds }
        let perRun = durationSeconds + 3
        let n = UInt64(targetNames.count)
        let loads = UInt64(tls ? tlsLoads.count : 1)
        return n * loads * UInt64(rounds) * perRun + n * (warmupSeconds + 1) + 90
    }

    static func takesValue(_ name: String) -> Bool? {
        switch name {
        case "-c", "--connections", "-t", "--threads", "-d", "--duration", "--rounds", "--warmup", "--workers",
             "--path", "--switchyard", "--backend", "--backend-threads", "--peers", "--targets", "--json", "--html",
             "--max-p99-ratio", "--min-throughput-ratio", "--max-errors", "--time-limit", "--baseline", "--max-drop",
             "--write-baseline":
            return true
        case "--quick", "-h", "--help", "--close", "--tls", "--resume":
            return false
        default:
            return nil
        }
    }

    /// Parses `compare`'s arguments (after the word `compare`).
    public static func parse(_ arguments: [String]) throws(BenchUsageError) -> CompareOptions {
        let (flags, positionals) = try ArgumentReader.read(arguments, takesValue: takesValue)
        guard positionals.isEmpty else { throw BenchUsageError("unexpected argument \"\(positionals[0])\"") }
        var o = CompareOptions()
        var set = Set<String>()
        func ratio(_ name: String, _ v: String) throws(BenchUsageError) -> Double {
            guard let x = Double(v), x > 0, x.isFinite else { throw BenchUsageError("\(name) must be a positive number, got \"\(v)\"") }
            return x
        }
        for (name, value) in flags {
            let v = value ?? ""
            switch name {
            case "-h", "--help": o.help = true
            case "--quick": o.quick = true
            case "--close": o.close = true
            case "--tls": o.tls = true
            case "--resume": o.resume = true
            case "--baseline": o.baselinePath = v
            case "--write-baseline": o.writeBaselinePath = v
            case "--max-drop":
                guard let x = Double(v), x > 0, x < 1 else { throw BenchUsageError("--max-drop must be between 0 and 1, got \"\(v)\"") }
                o.maxDrop = x
            case "-c", "--connections":
                guard let n = WrkUnits.scanMetric(v), n >= 1, n <= 20_000 else { throw BenchUsageError("invalid connections \"\(v)\"") }
                o.connections = Int(n); set.insert("c")
            case "-t", "--threads":
                guard let n = WrkUnits.scanMetric(v), n >= 1, n <= 64 else { throw BenchUsageError("invalid threads \"\(v)\"") }
                o.threads = Int(n); set.insert("t")
            case "-d", "--duration":
                guard let n = WrkUnits.scanSeconds(v), n >= 1, n <= 3600 else { throw BenchUsageError("invalid duration \"\(v)\" (e.g. 5s, 1m)") }
                o.durationSeconds = n; set.insert("d")
            case "--rounds":
                guard let n = Int(v), (1...50).contains(n) else { throw BenchUsageError("--rounds must be 1...50, got \"\(v)\"") }
                o.rounds = n; set.insert("rounds")
            case "--warmup":
                guard let n = WrkUnits.scanSeconds(v), n <= 60 else { throw BenchUsageError("invalid warm-up \"\(v)\" (e.g. 0, 1s)") }
                o.warmupSeconds = n; set.insert("warmup")
            case "--workers":
                guard let n = Int(v), (1...256).contains(n) else { throw BenchUsageError("--workers must be 1...256, got \"\(v)\"") }
                o.workers = n
            case "--path":
                guard v.hasPrefix("/"), !v.contains(where: { $0 == " " || $0 == "\r" || $0 == "\n" }) else {
                    throw BenchUsageError("--path must start with / and contain no spaces, got \"\(v)\"")
                }
                o.path = v
                o.pathGiven = true
            case "--switchyard": o.switchyardPath = v
            case "--backend": o.backendURL = try TargetURL.plain(v, option: "--backend")
            case "--backend-threads":
                guard let n = Int(v), (1...64).contains(n) else { throw BenchUsageError("--backend-threads must be 1...64, got \"\(v)\"") }
                o.backendThreads = n
            case "--peers":
                let peers = v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
                for p in peers where !knownPeers.contains(p) {
                    throw BenchUsageError("unknown peer \"\(p)\" (known: \(knownPeers.joined(separator: ", ")))")
                }
                o.peers = peers.reduce(into: []) { if !$0.contains($1) { $0.append($1) } }
                set.insert("peers")
            case "--targets":
                let all = ["direct"] + switchyardModes.flatMap { [$0, "switchyard-\($0)"] } + knownPeers
                var chosen: [String] = []
                for t in v.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) where !t.isEmpty {
                    guard all.contains(t) else { throw BenchUsageError("unknown target \"\(t)\" (known: direct, instant, session, gradual, concurrent, haproxy, nginx)") }
                    chosen.append(switchyardModes.contains(t) ? "switchyard-\(t)" : t)
                }
                o.targets = chosen
            case "--json": o.jsonPath = v
            case "--html": o.htmlPath = v
            case "--max-p99-ratio": o.maxP99Ratio = try ratio(name, v)
            case "--min-throughput-ratio": o.minThroughputRatio = try ratio(name, v)
            case "--max-errors":
                guard let n = UInt64(v) else { throw BenchUsageError("--max-errors must be a count, got \"\(v)\"") }
                o.maxErrors = n
            case "--time-limit":
                guard let n = WrkUnits.scanSeconds(v), n >= 5 else { throw BenchUsageError("invalid time limit \"\(v)\" (at least 5s)") }
                o.timeLimitSeconds = n
            default: throw BenchUsageError("unknown option \(name)")
            }
        }
        if o.quick {
            if !set.contains("rounds") { o.rounds = 1 }
            if !set.contains("d") { o.durationSeconds = 2 }
            if !set.contains("c") { o.connections = 16 }
            if !set.contains("warmup") { o.warmupSeconds = 1 }
        }
        guard o.connections >= o.threads else { throw BenchUsageError("number of connections must be >= threads") }
        if o.resume && !o.tls { throw BenchUsageError("--resume needs --tls") }
        if o.tls {
            // Without --peers, --tls measures both peers: its ratios are to HAProxy.
            if !set.contains("peers") && o.targets == nil { o.peers = knownPeers }
            try o.checkTLS()
        }
        // Peers named in --targets are measured even without --peers.
        if let targets = o.targets {
            for p in knownPeers where targets.contains(p) && !o.peers.contains(p) { o.peers.append(p) }
        }
        if o.tls && !o.targetNames.contains("haproxy") {
            throw BenchUsageError("--tls needs haproxy among the targets (the ratios are to HAProxy): add it to --peers or --targets")
        }
        return o
    }
}

extension CompareOptions {
    /// What `--tls` cannot be combined with, each refused with the option named.
    func checkTLS() throws(BenchUsageError) {
        let refused: [(Bool, String)] = [
            (baselinePath != nil, "--baseline"), (writeBaselinePath != nil, "--write-baseline"),
            (maxP99Ratio != nil, "--max-p99-ratio"), (minThroughputRatio != nil, "--min-throughput-ratio"),
            (maxErrors != nil, "--max-errors"), (htmlPath != nil, "--html"),
        ]
        for (given, option) in refused where given {
            throw BenchUsageError("--tls does not take \(option) (the guard and the charts are for the plain modes; --tls writes --json)")
        }
        for t in targets ?? [] where t != "direct" && t != "switchyard-instant" && !Self.knownPeers.contains(t) {
            throw BenchUsageError("--tls measures switchyard (INSTANT) and the peers: --targets \(t.replacingOccurrences(of: "switchyard-", with: "")) is not one of them")
        }
    }
}

public let compareUsage = """
Usage: switchyard-bench compare [options]
  Measures, interleaved in one run (rounds rotate the order, so drift hits all alike):
  the backend direct, Switchyard in INSTANT, SESSION, GRADUAL and CONCURRENT mode,
  and optionally peers (HAProxy, nginx), all on 127.0.0.1.
  Options:
    -c, --connections <N>   connections per run            (default 50; --quick 16)
    -t, --threads     <N>   load threads per run           (default 1)
    -d, --duration    <T>   length of each run             (default 5s; --quick 2s)
        --rounds      <N>   rounds over all targets        (default 3; --quick 1)
        --warmup      <T>   unrecorded run per target      (default 1s; 0 = none)
        --workers     <N>   switchyard --workers           (default 1)
        --path        <P>   request path: / (6 bytes) or /big (1 MiB) (default /)
        --close             a new connection per request (Connection: close)
        --switchyard  <F>   proxy binary (default .build/release/switchyard,
                            then .build/debug/switchyard)
        --backend   <URL>   use this backend instead of the built-in one
        --backend-threads <N>  built-in backend reactors   (default 1)
        --peers     <LIST>  also measure peers: haproxy,nginx (when installed)
        --targets   <LIST>  only these (direct always): instant,session,gradual,
                            concurrent,haproxy,nginx
        --json     <FILE>   write runs and summary as JSON
        --html     <FILE>   write a self-contained page with SVG charts
        --time-limit  <T>   hard limit for the whole command (default: from the plan)
        --tls               TLS termination instead: switchyard (one TLS listener),
                            haproxy and nginx (default peers) terminate TLS 1.3 with one
                            ECDSA P-256 certificate (made with openssl) before the same
                            plain backend; loads close (full handshakes), small and big
                            (--close or --path pick one); ratios to HAProxy and each
                            proxy's CPU µs per request (per handshake for close)
        --resume            with --tls: resume sessions (abbreviated handshakes)
  CI guard (exit status 1 when a switchyard target crosses a bound):
        --quick                      1 round of 2 s, 16 connections
        --baseline <FILE>            compare req/s ratios measured in this run (INSTANT to
                                     direct, every other mode to INSTANT) with the committed
                                     ones for this payload (e.g. Benchmarks/baseline.json)
        --max-drop <X>               fail when a ratio falls below X times its baseline
                                     (default 0.5: half)
        --write-baseline <FILE>      write this run's ratios into FILE (other payloads kept)
        --max-p99-ratio <X>          p99 / direct p99 must be <= X
        --min-throughput-ratio <Y>   req/s / direct req/s must be >= Y
        --max-errors <N>             errors per switchyard target (default 0 with a bound)
"""
