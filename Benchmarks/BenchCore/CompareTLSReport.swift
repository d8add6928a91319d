import Foundation

/// The figures of `compare --tls`: per load and target, medians over the rounds, throughput as
/// a ratio to HAProxy's in the same load, and the proxy's CPU per request. Pure: tests feed it
/// made-up runs.
struct TLSCompareReport {
    let options: CompareOptions
    /// Targets in table order (switchyard, then the peers).
    let targetNames: [String]
    let runs: [TLSRun]

    /// The target every ratio is to.
    static let reference = "haproxy"

    /// One target under one load: medians over its rounds.
    struct Summary: Equatable {
        var load: String
        var target: String
        var rounds: Int
        var requestsPerSec: Double
        /// Bytes read per second (heads and bodies, decrypted), in MiB/s.
        var mibPerSec: Double
        var p50Us: Double
        var p99Us: Double
        /// The target's CPU time per request (per handshake under `close`), µs.
        var cpuUsPerRequest: Double
        /// Its CPU time per full handshake (`close` only: nil on keep-alive loads, where the
        /// handshakes are a few per run).
        var cpuUsPerHandshake: Double?
        var handshakes: UInt64
        var resumedHandshakes: UInt64
        var errors: UInt64
    }

    var loads: [String] { runs.reduce(into: [String]()) { if !$0.contains($1.load) { $0.append($1.load) } } }

    var summaries: [Summary] {
        var out: [Summary] = []
        for load in loads {
            for target in targetNames {
                let mine = runs.filter { $0.load == load && $0.target == target }
                guard !mine.isEmpty else { continue }
                let close = options.tlsLoads.first { $0.name == load }?.close ?? false
                let perRequest = mine.map { $0.result.requests > 0 ? $0.cpuSeconds * 1e6 / Double($0.result.requests) : 0 }
                let perHandshake = mine.map { $0.result.handshakes > 0 ? $0.cpuSeconds * 1e6 / Double($0.result.handshakes) : 0 }
                out.append(Summary(
                    load: load, target: target, rounds: mine.count,
                    requestsPerSec: CompareReport.median(mine.map { $0.result.requestsPerSecond }),
                    mibPerSec: CompareReport.median(mine.map { $0.result.bytesPerSecond / 1_048_576 }),
                    p50Us: CompareReport.median(mine.map { $0.result.latencyMicros(50) }),
                    p99Us: CompareReport.median(mine.map { $0.result.latencyMicros(99) }),
                    cpuUsPerRequest: CompareReport.median(perRequest),
                    cpuUsPerHandshake: close ? CompareReport.median(perHandshake) : nil,
                    handshakes: mine.reduce(0) { $0 + $1.result.handshakes },
                    resumedHandshakes: mine.reduce(0) { $0 + $1.result.resumedHandshakes },
                    errors: mine.reduce(0) { $0 + $1.errors }))
            }
        }
        return out
    }

    /// `s`'s requests per second over HAProxy's in the same load; nil without a HAProxy figure.
    func ratio(_ s: Summary, in all: [Summary]) -> Double? {
        guard let h = all.first(where: { $0.load == s.load && $0.target == Self.reference }), h.requestsPerSec > 0 else { return nil }
        return s.requestsPerSec / h.requestsPerSec
    }

    /// The console table, one block per load.
    func table() -> String {
        let all = summaries
        func col(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }
        var out = "\n" + "load".padding(toLength: 7, withPad: " ", startingAt: 0) + "target".padding(toLength: 12, withPad: " ", startingAt: 0)
        out += col("req/s", 10) + col("MiB/s", 9) + col("p50", 10) + col("p99", 10) + col("CPU µs/req", 12) + col("x HAProxy", 11)
        out += col("handshakes", 12) + col("errors", 8) + "\n"
        for s in all {
            out += s.load.padding(toLength: 7, withPad: " ", startingAt: 0) + s.target.padding(toLength: 12, withPad: " ", startingAt: 0)
            out += col(String(format: "%.0f", s.requestsPerSec), 10)
            out += col(s.load == "close" || s.load == "small" ? "-" : String(format: "%.1f", s.mibPerSec), 9)
            out += col(WrkUnits.timeMicros(s.p50Us), 10) + col(WrkUnits.timeMicros(s.p99Us), 10)
            out += col(String(format: "%.1f", s.cpuUsPerRequest), 12)
            out += col(ratio(s, in: all).map { String(format: "%.2fx", $0) } ?? "-", 11)
            out += col(String(s.handshakes), 12) + col(String(s.errors), 8) + "\n"
        }
        let rounds = options.rounds
        out += "(TLS 1.3 \(benchCipherSuite), ECDSA P-256\(options.resume ? ", sessions resumed" : ""); \(rounds == 1 ? "one round" : "medians over \(rounds) rounds"); "
            + "CPU = the proxy's utime+stime over the run / requests (close: one full handshake per request); "
            + "errors = socket errors, failed handshakes among them, + non-2xx/3xx)\n"
        return out
    }

    func json() -> JSONOut {
        let all = summaries
        func opt(_ x: Double?) -> JSONOut { x.map { .number($0) } ?? .null }
        let o = options
        return .object([
            ("params", .object([
                ("tls", .bool(true)), ("version", .string("TLSv1.3")), ("cipherSuite", .string(benchCipherSuite)),
                ("certificate", .string("ECDSA P-256")), ("resume", .bool(o.resume)),
                ("loads", .array(o.tlsLoads.map { .object([("name", .string($0.name)), ("path", .string($0.path)), ("close", .bool($0.close))]) })),
                ("connections", .integer(Int64(o.connections))), ("threads", .integer(Int64(o.threads))),
                ("durationSeconds", .count(o.durationSeconds)), ("rounds", .integer(Int64(o.rounds))),
                ("workers", .integer(Int64(o.workers))), ("backend", .string(o.backendURL?.text ?? "built-in")),
                ("reference", .string(Self.reference)),
            ])),
            ("runs", .array(runs.map { run in
                .object([
                    ("load", .string(run.load)), ("target", .string(run.target)), ("round", .integer(Int64(run.round))),
                    ("requestsPerSec", .number(run.result.requestsPerSecond)), ("requests", .count(run.result.requests)),
                    ("bytesPerSec", .number(run.result.bytesPerSecond)),
                    ("latencyUs", .object([("p50", .number(run.result.latencyMicros(50))), ("p99", .number(run.result.latencyMicros(99)))])),
                    ("cpuSeconds", .number(run.cpuSeconds)),
                    ("handshakes", .count(run.result.handshakes)), ("resumedHandshakes", .count(run.result.resumedHandshakes)),
                    ("errors", .count(run.errors)),
                ])
            })),
            ("summary", .array(all.map { s in
                .object([
                    ("load", .string(s.load)), ("target", .string(s.target)), ("requestsPerSec", .number(s.requestsPerSec)),
                    ("mibPerSec", .number(s.mibPerSec)), ("p50Us", .number(s.p50Us)), ("p99Us", .number(s.p99Us)),
                    ("cpuUsPerRequest", .number(s.cpuUsPerRequest)), ("cpuUsPerHandshake", opt(s.cpuUsPerHandshake)),
                    ("ratioToHAProxy", opt(ratio(s, in: all))),
                    ("handshakes", .count(s.handshakes)), ("resumedHandshakes", .count(s.resumedHandshakes)),
                    ("errors", .count(s.errors)),
                ])
            })),
        ])
    }
}
