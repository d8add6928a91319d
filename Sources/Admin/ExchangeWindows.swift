import Comparator
import Observability
import Proxy

/// What one version did over a window, as the rollout gates read it.
public struct ExchangeWindow: Equatable, Sendable {
    /// Exchanges answered (or failed: a 502 or 504 counts) in the window.
    public var requests = 0
    /// Of those, answers with a 5xx status (failed connects, resets and timeouts included).
    public var errors = 0
    /// The fine latency histogram of the window (`LatencyHistogram.bucketCount` counts).
    public var latency: [Int] = []

    public init(requests: Int = 0, errors: Int = 0, latency: [Int] = []) {
        self.requests = requests
        self.errors = errors
        self.latency = latency
    }

    /// The latency `percentile` (0–100) in µs; nil without samples.
    public func latencyMicros(percentile: Double) -> UInt64? {
        LatencyHistogram.percentile(percentile, of: latency)
    }
}

/// Per-second totals of every cluster's exchanges, kept for the longest window asked for, so
/// that any window is the difference of two samples. Sampled on the control-plane thread
/// from the reactors' counters, which the hot path only adds to: no lock there.
public final class ExchangeWindows {
    /// One sample: cumulative totals at the end of a second.
    private struct Sample {
        var second: Int64
        var requests: Int
        var errors: Int
        var latency: [Int]
    }

    /// How many seconds of samples are kept (the longest window plus one).
    public private(set) var keepSeconds: Int
    private var samples: [String: [Sample]] = [:]

    public init(keepSeconds: Int = 61) { self.keepSeconds = max(2, keepSeconds) }

    /// Keeps at least `seconds` + 1 samples from now on (a plan with a longer window).
    public func keep(atLeast seconds: Int) { keepSeconds = max(keepSeconds, seconds + 1) }

    /// Takes the totals of `clusters` at unix second `now`; clusters no longer listed are forgotten.
    public func sample(_ clusters: [ClusterRuntime], now: Int64) {
        var next: [String: [Sample]] = [:]
        for cluster in clusters {
            let m = cluster.metrics
            var requests = 0
            for k in 0..<5 { requests += m.sum(ClusterCounter.responses + k) }
            let sample = Sample(second: now, requests: requests, errors: m.sum(ClusterCounter.responses + 4),
                                latency: m.latencyCounts())
            var ring = samples[cluster.spec.uuid] ?? []
            if let last = ring.last, last.second == now { ring.removeLast() }
            ring.append(sample)
            if ring.count > keepSeconds { ring.removeFirst(ring.count - keepSeconds) }
            next[cluster.spec.uuid] = ring
        }
        samples = next
    }

    /// What cluster `uuid` did over the last `seconds` seconds (as sampled; less when it is
    /// younger), or nil when it was never sampled.
    public func window(_ uuid: String, seconds: Int) -> ExchangeWindow? {
        guard let ring = samples[uuid], let last = ring.last else { return nil }
        let first = ring.last { $0.second <= last.second - Int64(seconds) } ?? ring.first!
        if first.second == last.second && ring.count == 1 {
            // One sample: everything counted so far is the window.
            return ExchangeWindow(requests: last.requests, errors: last.errors, latency: last.latency)
        }
        var latency = last.latency
        for i in latency.indices { latency[i] -= first.latency[i] }
        return ExchangeWindow(requests: last.requests - first.requests, errors: last.errors - first.errors, latency: latency)
    }

    /// Exchanges of cluster `uuid` counted so far (never decreases while it lives).
    public func total(_ uuid: String) -> Int { samples[uuid]?.last?.requests ?? 0 }
}
