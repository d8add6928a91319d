/// A latency histogram with bounded relative error and no per-sample storage (HDR-style).
///
/// Values are nanoseconds. Buckets are log-linear: values below 256 have one bucket each
/// (exact); above, every power of two is split into 128 equal buckets, so a bucket is at most
/// 1/128 of its lower bound wide and a reported value (the bucket's midpoint, clamped to the
/// exact min and max) is within 1/256 (0.4 %) of any sample in the bucket. The top bucket ends
/// at 2^42 ns (73 minutes); larger samples are counted there. 4608 buckets, 36 KiB.
///
/// Recording is one index computation and one increment: no allocation, no branch on the data
/// beyond the small/large split.
public struct LatencyHistogram: Sendable, Equatable {
    /// log2 of the buckets per power of two.
    static let subBits = 7
    static let subCount = 1 << subBits                  // 128
    /// Values below this have a bucket each.
    static let exactLimit: UInt64 = 1 << (subBits + 1)  // 256
    /// The largest value a bucket can tell apart; larger samples land in the top bucket.
    public static let highestTrackable: UInt64 = (1 << 42) - 1
    static let bucketCount = Int(exactLimit) + (42 - (subBits + 1)) * subCount

    /// Samples per bucket.
    public private(set) var counts: [UInt64]
    /// Number of samples.
    public private(set) var count: UInt64 = 0
    /// Smallest sample (exact); `UInt64.max` when empty.
    public private(set) var min: UInt64 = .max
    /// Largest sample (exact); 0 when empty.
    public private(set) var max: UInt64 = 0
    /// Sum of the samples (exact for recorded samples, bucket midpoints for corrected ones).
    public private(set) var sum: Double = 0

    /// Creates an empty histogram.
    public init() {
        counts = [UInt64](repeating: 0, count: Self.bucketCount)
    }

    /// The bucket a value falls in.
    @inline(__always)
    static func index(of value: UInt64) -> Int {
        if value < exactLimit { return Int(value) }
        let v = Swift.min(value, highestTrackable)
        let exponent = 63 - v.leadingZeroBitCount           // >= 8
        let shift = exponent - subBits
        let mantissa = Int(truncatingIfNeeded: v >> UInt64(shift)) - subCount  // 0..<128
        return Int(exactLimit) + (exponent - (subBits + 1)) * subCount + mantissa
    }

    /// The values a bucket covers: lower bound and width.
    static func range(of index: Int) -> (lower: UInt64, width: UInt64) {
        if index < Int(exactLimit) { return (UInt64(index), 1) }
        let i = index - Int(exactLimit)
        let exponent = i / subCount + subBits + 1
        let shift = exponent - subBits
        let mantissa = UInt64(i % subCount + subCount)
        return (mantissa << UInt64(shift), 1 << UInt64(shift))
    }

    /// The value reported for a bucket: its midpoint.
    static func representative(of index: Int) -> Double {
        let (lower, width) = range(of: index)
        return width == 1 ? Double(lower) : Double(lower) + Double(width - 1) / 2
    }

    /// Records one sample.
    @inline(__always)
    public mutating func record(_ value: UInt64) {
        counts[Self.index(of: value)] &+= 1
        count &+= 1
        sum += Double(value)
        if value < min { min = value }
        if value > max { max = value }
    }

    /// Records `n` samples of one value.
    public mutating func record(_ value: UInt64, count n: UInt64) {
        guard n > 0 else { return }
        counts[Self.index(of: value)] &+= n
        count &+= n
        sum += Double(value) * Double(n)
        if value < min { min = value }
        if value > max { max = value }
    }

    /// Adds every sample of `other`.
    public mutating func merge(_ other: LatencyHistogram) {
        guard other.count > 0 else { return }
        for i in 0..<counts.count where other.counts[i] != 0 { counts[i] &+= other.counts[i] }
        count &+= other.count
        sum += other.sum
        min = Swift.min(min, other.min)
        max = Swift.max(max, other.max)
    }

    /// The value at percentile `p` (0...100), wrk's rank rule: the smallest value with at least
    /// round(p/100 · count + 0.5) samples at or below it. Returns 0 when empty.
    public func value(atPercentile p: Double) -> Double {
        guard count > 0 else { return 0 }
        let rank = Swift.max(1, Swift.min(count, UInt64((Swift.max(0, Swift.min(p, 100)) / 100 * Double(count) + 0.5).rounded())))
        var seen: UInt64 = 0
        for i in 0..<counts.count where counts[i] != 0 {
            seen &+= counts[i]
            if seen >= rank { return clamp(Self.representative(of: i)) }
        }
        return Double(max)
    }

    /// Values at several percentiles in one pass; `ps` must be ascending.
    public func values(atPercentiles ps: [Double]) -> [Double] {
        ps.map { value(atPercentile: $0) }
    }

    @inline(__always)
    private func clamp(_ v: Double) -> Double { Swift.min(Swift.max(v, Double(min)), Double(max)) }

    /// Mean of the samples (0 when empty).
    public var mean: Double { count == 0 ? 0 : sum / Double(count) }

    /// Sample standard deviation (n − 1), from bucket representatives as wrk does from its µs buckets.
    public var standardDeviation: Double {
        guard count > 1 else { return 0 }
        let m = mean
        var acc = 0.0
        for i in 0..<counts.count where counts[i] != 0 {
            let d = clamp(Self.representative(of: i)) - m
            acc += d * d * Double(counts[i])
        }
        return (acc / Double(count - 1)).squareRoot()
    }

    /// Percentage (0...100) of samples within mean ± k·stdev ("+/- Stdev" in wrk's table).
    public func percentWithin(standardDeviations k: Double) -> Double {
        guard count > 0 else { return 0 }
        let m = mean, s = standardDeviation
        let lower = m - k * s, upper = m + k * s
        var inside: UInt64 = 0
        for i in 0..<counts.count where counts[i] != 0 {
            let v = clamp(Self.representative(of: i))
            if v >= lower && v <= upper { inside &+= counts[i] }
        }
        return Double(inside) / Double(count) * 100
    }

    /// wrk's coordinated-omission correction (`stats_correct`): every sample of value v at least
    /// twice `expectedInterval` also stands for the requests that could not be sent while it was
    /// outstanding, so samples of v − e, v − 2e, … (while above e) are added. wrk applies it with
    /// e = runtime / (requests per connection); applying it here keeps our figures comparable.
    public mutating func correctForExpectedInterval(_ expectedInterval: UInt64) {
        guard expectedInterval > 0, count > 0, max >= 2 * expectedInterval else { return }
        let original = counts
        let e = Double(expectedInterval)
        for i in 0..<original.count where original[i] != 0 {
            let v = clamp(Self.representative(of: i))
            guard v >= 2 * e else { continue }
            let n = original[i]
            // Synthetic values m_k = v − k·e for k = 1...K, all above e.
            let steps = Int((v / e).rounded(.up)) - 2
            guard steps >= 1 else { continue }
            if steps <= 64 {
                for k in 1...steps { addSynthetic(v - Double(k) * e, n) }
                continue
            }
            // Many steps: count per target bucket instead of per step, so the work is bounded
            // by the number of buckets, not by v / e.
            let first = Self.index(of: UInt64(v - Double(steps) * e))
            let last = Self.index(of: UInt64(v - e))
            for j in first...last {
                let (lo, w) = Self.range(of: j)
                let kMin = Swift.max(1, Int(((v - Double(lo) - Double(w)) / e).rounded(.down)) + 1)
                let kMax = Swift.min(steps, Int(((v - Double(lo)) / e).rounded(.down)))
                guard kMax >= kMin else { continue }
                let k = UInt64(kMax - kMin + 1)
                let added = k &* n
                counts[j] &+= added
                count &+= added
                // Σ (v − k·e) over the k in range, times n.
                let kSum = Double(kMin + kMax) * Double(k) / 2
                sum += (Double(k) * v - kSum * e) * Double(n)
            }
            min = Swift.min(min, UInt64(v - Double(steps) * e))
        }
    }

    private mutating func addSynthetic(_ m: Double, _ n: UInt64) {
        counts[Self.index(of: UInt64(m))] &+= n
        count &+= n
        sum += m * Double(n)
        if UInt64(m) < min { min = UInt64(m) }
    }

    /// The cumulative distribution as (percentile, value) points at `percentiles`.
    public func curve(at percentiles: [Double]) -> [(percentile: Double, value: Double)] {
        percentiles.map { ($0, value(atPercentile: $0)) }
    }
}
