import Synchronization

/// Upper bounds (seconds) of the latency histogram buckets, Prometheus style.
public let latencyBucketBounds: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
/// The same bounds in nanoseconds, compared as integers on the hot path.
let latencyBucketBoundsNanos: InlineArray<14, UInt64> = [500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000, 25_000_000,
                                                          50_000_000, 100_000_000, 250_000_000, 500_000_000, 1_000_000_000,
                                                          2_500_000_000, 5_000_000_000, 10_000_000_000]

/// A fixed block of 32 relaxed atomic counters owned by one reactor. One block per
/// reactor keeps the hot path to uncontended adds; readers sum the blocks.
public final class CounterBlock: Sendable {
    public static let size = 32
    private let slots: InlineArray<32, Atomic<Int>> = InlineArray { _ in Atomic<Int>(0) }
    public init() {}

    /// Adds `amount` to counter `index`.
    @inline(__always)
    public func add(_ index: Int, _ amount: Int = 1) { slots[index].wrappingAdd(amount, ordering: .relaxed) }

    /// Current value of counter `index`.
    @inline(__always)
    public func value(_ index: Int) -> Int { slots[index].load(ordering: .relaxed) }
}

/// Counters of one cluster. Index layout of each block.
public enum ClusterCounter {
    public static let requests = 0
    /// Responses by class: `responses + 0` = 1xx … `responses + 4` = 5xx.
    public static let responses = 1
    public static let connectFailures = 6
    public static let backendErrors = 7
    public static let latencySumMicros = 8
    /// Histogram: `latencyBuckets + i` for bucket i, the last one is +Inf.
    public static let latencyBuckets = 9   // 9 ... 9 + 14 = 23
}

/// All counters of one cluster: one block per reactor.
public final class ClusterMetrics: Sendable {
    public let blocks: [CounterBlock]
    /// Fine latency histograms, one per reactor (rollout gates read percentiles from them).
    public let latencies: [LatencyHistogram]
    public init(reactors: Int) {
        blocks = (0..<max(1, reactors)).map { _ in CounterBlock() }
        latencies = (0..<max(1, reactors)).map { _ in LatencyHistogram() }
    }

    /// Records one finished exchange on reactor `reactor`: its status, its latency (the
    /// Prometheus duration histogram) and its time to the response head (the fine
    /// histogram that rollout gates compare; the whole latency when not given).
    @inline(__always)
    public func record(reactor: Int, status: Int, latencyNanos: UInt64, headNanos: UInt64? = nil) {
        let block = blocks[reactor]
        block.add(ClusterCounter.responses + min(4, max(0, status / 100 - 1)))
        let micros = latencyNanos / 1000
        var bucket = 0
        while bucket < latencyBucketBoundsNanos.count && latencyNanos > latencyBucketBoundsNanos[bucket] { bucket += 1 }
        block.add(ClusterCounter.latencyBuckets + bucket)
        block.add(ClusterCounter.latencySumMicros, Int(micros))
        latencies[reactor].record(micros: (headNanos ?? latencyNanos) / 1000)
    }

    /// The fine latency histogram summed over all reactors (`LatencyHistogram.bucketCount` counts).
    public func latencyCounts() -> [Int] {
        var counts = [Int](repeating: 0, count: LatencyHistogram.bucketCount)
        for histogram in latencies { histogram.add(into: &counts) }
        return counts
    }

    /// Sum of counter `index` over all reactors.
    public func sum(_ index: Int) -> Int { blocks.reduce(0) { $0 + $1.value(index) } }
}

/// Process-wide counters. Index layout of each block.
public enum ProxyCounter {
    public static let clientConnections = 0
    public static let activeSessions = 1
    public static let backendConnectionsOpened = 2
    public static let pooledReuses = 3
    public static let pipesInUse = 4
    public static let acceptPauses = 5
    public static let backendConnectFailures = 6
    /// Refused or failed exchanges by the status sent: `rejected + i` for `rejectedStatuses[i]`.
    public static let rejected = 8
    public static let rejectedStatuses = [400, 408, 413, 414, 431, 501, 502, 503, 504, 505, 411, 404]
}

/// The process's metrics registry: one block per reactor.
public final class ProxyMetrics: Sendable {
    public let blocks: [CounterBlock]
    public let rollbacks = Atomic<Int>(0)
    /// Access log lines written, and dropped because the writer fell behind.
    public let accessLogLines = Atomic<Int>(0)
    public let accessLogDropped = Atomic<Int>(0)
    public init(reactors: Int) { blocks = (0..<max(1, reactors)).map { _ in CounterBlock() } }

    /// Sum of counter `index` over all reactors.
    public func sum(_ index: Int) -> Int { blocks.reduce(0) { $0 + $1.value(index) } }

    /// Counts one refused exchange by the status sent.
    public func reject(reactor: Int, status: Int) {
        if let i = ProxyCounter.rejectedStatuses.firstIndex(of: status) {
            blocks[reactor].add(ProxyCounter.rejected + i)
        }
    }
}
