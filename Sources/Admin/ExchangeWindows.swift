import Comparator
import Fleet
import Observability
import Proxy

/// What one version did over a window, as the rollout gates read it: the same counts an
/// instance of a fleet publishes (`ExchangeTotals`), taken as the difference of two samples.
public typealias ExchangeWindow = ExchangeTotals

extension ExchangeTotals {
    /// The latency `percentile` (0–100) in µs; nil without samples. The ten slowest
    /// exchanges of the window are never the answer, so that a few cold connections (a new
    /// version's first exchanges) do not decide a p99 of a small window; with 1 000 samples
    /// or more a p99 is unaffected.
    public func latencyMicros(percentile: Double) -> UInt64? {
        LatencyHistogram.percentile(percentile, of: latency, sparingSlowest: 10)
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
        var compared: Int
        var divergent: Int
    }

    /// How many seconds of samples are kept (the longest window plus one).
    public private(set) var keepSeconds: Int
    private var samples: [String: [Sample]] = [:]

    public init(keepSeconds: Int = 61) { self.keepSeconds = max(2, keepSeconds) }

    /// Keeps at least `seconds` + 1 samples from now on (a plan with a longer window).
    public func keep(atLeast seconds: Int) { keepSeconds = max(keepSeconds, seconds + 1) }

    /// Takes the totals of `clusters` (latest first) at unix second `now`, with the
    /// comparisons of each and the next cluster not marked failed after it; clusters no
    /// longer listed are forgotten.
    public func sample(_ clusters: [ClusterRuntime], now: Int64, comparisons: ComparisonLog? = nil) {
        record(Self.totals(clusters, comparisons: comparisons), now: now)
    }

    /// The cumulative totals of `clusters` (grouped by service, latest first) by uuid, as this instance counted
    /// them (what a fleet's instance publishes).
    public static func totals(_ clusters: [ClusterRuntime], comparisons: ComparisonLog? = nil) -> [String: ExchangeTotals] {
        var out: [String: ExchangeTotals] = [:]
        for (i, cluster) in clusters.enumerated() {
            let m = cluster.metrics
            var requests = 0
            for k in 0..<5 { requests += m.sum(ClusterCounter.responses + k) }
            var compared = (compared: 0, divergent: 0)
            if let comparisons, let older = clusters[(i + 1)...].first(where: { !$0.state.isFailed && $0.service == cluster.service }) {
                compared = comparisons.totals(old: older.spec.uuid, new: cluster.spec.uuid)
            }
            out[cluster.spec.uuid] = ExchangeTotals(requests: requests, errors: m.sum(ClusterCounter.responses + 4), latency: m.latencyCounts(),
                                                    compared: compared.compared, divergent: compared.divergent)
        }
        return out
    }

    /// Takes cumulative totals by cluster uuid at unix second `now` (this instance's, or a
    /// fleet's summed); clusters not listed are forgotten.
    public func record(_ totals: [String: ExchangeTotals], now: Int64) {
        var next: [String: [Sample]] = [:]
        for (uuid, t) in totals {
            let sample = Sample(second: now, requests: t.requests, errors: t.errors, latency: t.latency, compared: t.compared, divergent: t.divergent)
            var ring = samples[uuid] ?? []
            if let last = ring.last, last.second == now { ring.removeLast() }
            ring.append(sample)
            if ring.count > keepSeconds { ring.removeFirst(ring.count - keepSeconds) }
            next[uuid] = ring
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
            return ExchangeWindow(requests: last.requests, errors: last.errors, latency: last.latency,
                                  compared: last.compared, divergent: last.divergent)
        }
        var latency = last.latency
        for i in latency.indices { latency[i] = max(0, latency[i] - (i < first.latency.count ? first.latency[i] : 0)) }
        // Comparison totals restart when the older cluster changes: never below zero.
        return ExchangeWindow(requests: max(0, last.requests - first.requests), errors: max(0, last.errors - first.errors), latency: latency,
                              compared: max(0, last.compared - first.compared), divergent: max(0, last.divergent - first.divergent))
    }

    /// Exchanges of cluster `uuid` counted so far (never decreases while it lives).
    public func total(_ uuid: String) -> Int { samples[uuid]?.last?.requests ?? 0 }
}
