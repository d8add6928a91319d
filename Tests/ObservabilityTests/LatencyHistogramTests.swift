import Observability
import Testing

/// The fine latency histogram: buckets that tile the line, narrow enough, and percentiles.
@Suite("Latency histogram")
struct LatencyHistogramTests {
    @Test("buckets tile 0 µs to 2^26 µs (67 s) without gaps, each at most 12.5 % wide")
    func bucketsTile() {
        var previousUpper: UInt64 = 0
        for index in 0..<LatencyHistogram.bucketCount {
            let upper = LatencyHistogram.upperBound(index)
            let lower = index == 0 ? 0 : previousUpper + 1
            #expect(LatencyHistogram.bucket(micros: lower) == index, "lower bound of \(index)")
            #expect(LatencyHistogram.bucket(micros: upper) == index, "upper bound of \(index)")
            if lower >= 8 { #expect(Double(upper - lower + 1) <= 0.125 * Double(lower) + 0.5, "width of \(index)") }
            previousUpper = upper
        }
        #expect(LatencyHistogram.bucket(micros: .max) == LatencyHistogram.bucketCount - 1)
        #expect(LatencyHistogram.upperBound(LatencyHistogram.bucketCount - 1) + 1 == 1 << 26, "values from 2^26 µs share the last bucket")
    }

    @Test("percentiles of recorded values, within a bucket's width")
    func percentiles() {
        let h = LatencyHistogram()
        for v in 1...1000 { h.record(micros: UInt64(v) * 100) }   // 100 µs … 100 ms, uniform
        var counts = [Int](repeating: 0, count: LatencyHistogram.bucketCount)
        h.add(into: &counts)
        let p50 = LatencyHistogram.percentile(50, of: counts)!
        let p99 = LatencyHistogram.percentile(99, of: counts)!
        #expect(p50 >= 50_000 && Double(p50) <= 50_000 * 1.125)
        #expect(p99 >= 99_000 && Double(p99) <= 99_000 * 1.125)
        #expect(LatencyHistogram.percentile(100, of: counts)! >= 100_000)
        #expect(LatencyHistogram.percentile(99, of: [Int](repeating: 0, count: LatencyHistogram.bucketCount)) == nil)
    }

    @Test("sparing the slowest: a few outliers in a small sample do not make its p99")
    func sparingSlowest() {
        var counts = [Int](repeating: 0, count: LatencyHistogram.bucketCount)
        counts[LatencyHistogram.bucket(micros: 1_000)] = 140
        counts[LatencyHistogram.bucket(micros: 60_000)] = 10   // ten cold connections
        #expect(LatencyHistogram.percentile(99, of: counts)! >= 60_000)
        #expect(LatencyHistogram.percentile(99, of: counts, sparingSlowest: 10)! < 1_200)
        counts[LatencyHistogram.bucket(micros: 60_000)] = 11
        #expect(LatencyHistogram.percentile(99, of: counts, sparingSlowest: 10)! >= 60_000, "an eleventh is no longer spared")
    }
}
