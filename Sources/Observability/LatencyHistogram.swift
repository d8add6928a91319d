import Synchronization

/// A fine latency histogram owned by one reactor: log-linear buckets of microseconds, eight
/// per power of two (each at most 12.5 % wide), from 0 µs to beyond a minute. The hot path
/// adds one relaxed atomic; the control plane sums the reactors' buckets and differences
/// them over a window to read a percentile (rollout gates compare versions with it).
public final class LatencyHistogram: Sendable {
    /// Number of buckets: values of 2^26 µs (67 s) and more share the last one.
    public static let bucketCount = 192
    private let slots: InlineArray<192, Atomic<Int>> = InlineArray { _ in Atomic<Int>(0) }

    public init() {}

    /// The bucket of `micros`: the value itself below 8, else 8 sub-buckets per power of two.
    @inline(__always)
    public static func bucket(micros: UInt64) -> Int {
        guard micros >= 8 else { return Int(micros) }
        let exponent = 63 - micros.leadingZeroBitCount        // ≥ 3
        let index = 8 * (exponent - 2) + Int((micros >> UInt64(exponent - 3)) & 7)
        return min(index, bucketCount - 1)
    }

    /// The largest value (µs) that falls in bucket `index`.
    public static func upperBound(_ index: Int) -> UInt64 {
        guard index >= 8 else { return UInt64(max(0, index)) }
        let exponent = index / 8 + 2, sub = UInt64(index % 8)
        let width: UInt64 = 1 << UInt64(exponent - 3)
        return (8 + sub) * width + width - 1
    }

    /// Counts one exchange of `micros`.
    @inline(__always)
    public func record(micros: UInt64) {
        slots[Self.bucket(micros: micros)].wrappingAdd(1, ordering: .relaxed)
    }

    /// Adds this reactor's counts into `into` (`bucketCount` long).
    public func add(into counts: inout [Int]) {
        for i in 0..<Self.bucketCount { counts[i] += slots[i].load(ordering: .relaxed) }
    }

    /// The `percentile` (0–100) of the values counted in `counts` (a histogram or the
    /// difference of two): the upper bound of the bucket that holds it, in µs; nil when the
    /// counts are empty. With `sparingSlowest` n, the n slowest values are never the answer
    /// (a p99 of 150 samples would otherwise be the second slowest: one cold connection).
    public static func percentile(_ percentile: Double, of counts: [Int], sparingSlowest spared: Int = 0) -> UInt64? {
        let total = counts.reduce(0, +)
        guard total > 0 else { return nil }
        // The rank of the value: the smallest k with k ≥ p% of the total (at least 1).
        var rank = max(1, Int((Double(total) * min(max(percentile, 0), 100) / 100).rounded(.up)))
        if spared > 0 { rank = max(1, min(rank, total - spared)) }
        var seen = 0
        for (i, n) in counts.enumerated() {
            seen += n
            if seen >= rank { return upperBound(i) }
        }
        return upperBound(counts.count - 1)
    }
}
