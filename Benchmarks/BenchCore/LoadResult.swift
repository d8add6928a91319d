import Foundation

/// Socket errors by kind, as wrk counts them.
public struct SocketErrors: Equatable, Sendable {
    /// Connections that could not be established.
    public var connect: UInt64 = 0
    /// Reads that failed, hit end of stream mid-response, or read an unparsable response.
    public var read: UInt64 = 0
    /// Writes that failed.
    public var write: UInt64 = 0
    /// Requests outstanding longer than the timeout.
    public var timeout: UInt64 = 0

    public init() {}

    /// All four added up.
    public var total: UInt64 { connect + read + write + timeout }

    mutating func add(_ other: SocketErrors) {
        connect += other.connect
        read += other.read
        write += other.write
        timeout += other.timeout
    }
}

/// How the latency figures were corrected for coordinated omission.
public enum LatencyCorrection: String, Sendable {
    /// Closed loop: wrk's after-the-fact correction with the mean per-connection interval.
    case wrkExpectedInterval = "wrk-expected-interval"
    /// Constant throughput (-R): latency measured from each request's intended send time.
    case intendedSendTime = "intended-send-time"
}

/// Everything one load run measured.
public struct LoadResult: Sendable {
    public var url: String
    public var threads: Int
    public var connections: Int
    /// The requested duration, seconds.
    public var durationSeconds: UInt64
    /// Constant-throughput rate (requests/s in total), nil for a closed-loop run.
    public var rate: UInt64?
    /// Responses completely received.
    public var requests: UInt64 = 0
    /// Bytes read from the sockets (heads and bodies).
    public var bytes: UInt64 = 0
    /// From the first connect to the end of the run, nanoseconds.
    public var runtimeNanos: UInt64 = 0
    public var errors = SocketErrors()
    /// Responses with status > 399 (what wrk reports as "Non-2xx or 3xx responses").
    public var non2xx: UInt64 = 0
    /// Latency in nanoseconds, corrected as `correction` says.
    public var latency = LatencyHistogram()
    public var correction: LatencyCorrection = .wrkExpectedInterval
    /// The measured latencies alone, without the closed-loop correction's added samples (for
    /// statistical tests, which need real observations).
    public var uncorrectedLatency = LatencyHistogram()
    /// Requests per second of one thread, sampled every 100 ms (wrk's "Req/Sec" row).
    public var rateSamples: [UInt64] = []
    /// The run spoke TLS (an https target).
    public var tls = false
    /// TLS handshakes completed, and how many of them resumed a session (no full handshake).
    public var handshakes: UInt64 = 0
    public var resumedHandshakes: UInt64 = 0
    /// Why the first failed TLS handshake failed, if one did.
    public var tlsFailure: String?

    public init(url: String, threads: Int, connections: Int, durationSeconds: UInt64, rate: UInt64? = nil) {
        self.url = url
        self.threads = threads
        self.connections = connections
        self.durationSeconds = durationSeconds
        self.rate = rate
    }

    public var runtimeSeconds: Double { Double(runtimeNanos) / 1e9 }
    public var requestsPerSecond: Double { runtimeNanos == 0 ? 0 : Double(requests) / runtimeSeconds }
    public var bytesPerSecond: Double { runtimeNanos == 0 ? 0 : Double(bytes) / runtimeSeconds }

    /// Latency at percentile `p` in microseconds.
    public func latencyMicros(_ p: Double) -> Double { latency.value(atPercentile: p) / 1000 }

    /// Mean, sample stdev, max and % within one stdev of the per-thread rate samples.
    public var rateStats: (mean: Double, stdev: Double, max: Double, within: Double) {
        guard !rateSamples.isEmpty else { return (0, 0, 0, 0) }
        let n = Double(rateSamples.count)
        let mean = rateSamples.reduce(0.0) { $0 + Double($1) } / n
        var stdev = 0.0
        if rateSamples.count > 1 {
            stdev = (rateSamples.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / (n - 1)).squareRoot()
        }
        let inside = rateSamples.filter { Double($0) >= mean - stdev && Double($0) <= mean + stdev }.count
        return (mean, stdev, Double(rateSamples.max()!), Double(inside) / n * 100)
    }
}

/// wrk's report, line for line.
public enum WrkReport {
    /// The two lines wrk prints before the run starts.
    public static func header(url: String, durationSeconds: UInt64, threads: Int, connections: Int) -> String {
        "Running \(WrkUnits.timeSeconds(Double(durationSeconds))) test @ \(url)\n"
            + "  \(threads) threads and \(connections) connections\n"
    }

    /// The lines wrk prints after the run.
    public static func body(_ r: LoadResult, latencyDistribution: Bool) -> String {
        var out = "  Thread Stats" + pad("Avg", 6) + pad("Stdev", 11) + pad("Max", 8) + pad("+/- Stdev", 12) + "\n"
        let h = r.latency
        out += "    " + "Latency".padding(toLength: 10, withPad: " ", startingAt: 0)
        out += WrkUnits.cell(WrkUnits.timeMicros(h.mean / 1000), width: 8)
        out += WrkUnits.cell(WrkUnits.timeMicros(h.standardDeviation / 1000), width: 10)
        out += WrkUnits.cell(WrkUnits.timeMicros(Double(h.count == 0 ? 0 : h.max) / 1000), width: 9)
        out += String(format: "%8.2f%%", h.percentWithin(standardDeviations: 1)) + "\n"
        let s = r.rateStats
        out += "    " + "Req/Sec".padding(toLength: 10, withPad: " ", startingAt: 0)
        out += WrkUnits.cell(WrkUnits.metric(s.mean), width: 8)
        out += WrkUnits.cell(WrkUnits.metric(s.stdev), width: 10)
        out += WrkUnits.cell(WrkUnits.metric(s.max), width: 9)
        out += String(format: "%8.2f%%", s.within) + "\n"
        if latencyDistribution {
            out += "  Latency Distribution\n"
            for p in [50.0, 75.0, 90.0, 99.0] {
                out += String(format: "%7.0f%%", p) + WrkUnits.cell(WrkUnits.timeMicros(r.latencyMicros(p)), width: 10) + "\n"
            }
        }
        out += "  \(r.requests) requests in \(WrkUnits.timeMicros(Double(r.runtimeNanos) / 1000)), \(WrkUnits.binary(Double(r.bytes)))B read\n"
        let e = r.errors
        if e.total > 0 {
            out += "  Socket errors: connect \(e.connect), read \(e.read), write \(e.write), timeout \(e.timeout)\n"
        }
        if r.non2xx > 0 { out += "  Non-2xx or 3xx responses: \(r.non2xx)\n" }
        if r.tls {
            out += "  TLS handshakes: \(r.handshakes) (\(r.resumedHandshakes) resumed)\n"
            if let reason = r.tlsFailure { out += "  TLS handshake failed: \(reason)\n" }
        }
        out += String(format: "Requests/sec: %9.2f\n", r.requestsPerSecond)
        out += "Transfer/sec: " + pad(WrkUnits.binary(r.bytesPerSecond), 10) + "B\n"
        return out
    }

    private static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
    }

    /// The figures as JSON: counts, rates, errors by kind and latency percentiles in µs.
    public static func json(_ r: LoadResult) -> JSONOut {
        let s = r.rateStats
        return .object([
            ("url", .string(r.url)),
            ("threads", .integer(Int64(r.threads))),
            ("connections", .integer(Int64(r.connections))),
            ("durationSeconds", .count(r.durationSeconds)),
            ("rate", r.rate.map { .count($0) } ?? .null),
            ("requests", .count(r.requests)),
            ("runtimeSeconds", .number(r.runtimeSeconds)),
            ("requestsPerSec", .number(r.requestsPerSecond)),
            ("bytes", .count(r.bytes)),
            ("bytesPerSec", .number(r.bytesPerSecond)),
            ("errors", .object([
                ("connect", .count(r.errors.connect)),
                ("read", .count(r.errors.read)),
                ("write", .count(r.errors.write)),
                ("timeout", .count(r.errors.timeout)),
            ])),
            ("non2xx", .count(r.non2xx)),
            ("tls", r.tls ? .object([
                ("handshakes", .count(r.handshakes)), ("resumed", .count(r.resumedHandshakes)),
                ("failure", r.tlsFailure.map { .string($0) } ?? .null),
            ]) : .null),
            ("latencyCorrection", .string(r.correction.rawValue)),
            ("latencyUs", .object([
                ("mean", .number(r.latency.mean / 1000)),
                ("stdev", .number(r.latency.standardDeviation / 1000)),
                ("p50", .number(r.latencyMicros(50))),
                ("p75", .number(r.latencyMicros(75))),
                ("p90", .number(r.latencyMicros(90))),
                ("p99", .number(r.latencyMicros(99))),
                ("p999", .number(r.latencyMicros(99.9))),
                ("max", .number(Double(r.latency.count == 0 ? 0 : r.latency.max) / 1000)),
            ])),
            ("requestsPerSecPerThread", .object([
                ("mean", .number(s.mean)), ("stdev", .number(s.stdev)), ("max", .number(s.max)),
            ])),
        ])
    }
}
