import Testing
import Foundation
@testable import BenchCore

/// A small deterministic generator (SplitMix64), so failures reproduce.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// wrk's percentile rule on exact samples: the smallest value with at least
/// round(p/100 · n + 0.5) samples at or below it.
func exactPercentile(_ sorted: [UInt64], _ p: Double) -> UInt64 {
    let rank = max(1, min(sorted.count, Int((p / 100 * Double(sorted.count) + 0.5).rounded())))
    return sorted[rank - 1]
}

@Test(arguments: [1 as UInt64, 7, 42])
func percentilesStayWithinRelativeErrorBound(seed: UInt64) {
    var rng = SplitMix(state: seed)
    var h = LatencyHistogram()
    var samples: [UInt64] = []
    // Log-uniform from 1 µs to 10 s, plus a few exact small values.
    for _ in 0..<50_000 {
        let exponent = Double.random(in: 3...10, using: &rng)
        let v = UInt64(pow(10, exponent))
        samples.append(v)
        h.record(v)
    }
    for v in [0, 1, 255, 256, 257] as [UInt64] { samples.append(v); h.record(v) }
    samples.sort()
    #expect(h.count == UInt64(samples.count))
    #expect(h.min == samples.first!)
    #expect(h.max == samples.last!)
    for p in [0.0, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100] {
        let exact = Double(exactPercentile(samples, p))
        let got = h.value(atPercentile: p)
        let error = abs(got - exact) / max(exact, 1)
        #expect(error <= 1.0 / 256 + 1e-12, "p\(p): histogram \(got) vs exact \(exact), error \(error)")
    }
    let exactMean = Double(samples.reduce(0, +)) / Double(samples.count)
    #expect(abs(h.mean - exactMean) / exactMean < 1e-9)
}

@Test func valuesUpToAnHourKeepTheBound() {
    let hour: UInt64 = 3_600_000_000_000
    for v in [1_000 as UInt64, 999_999, 1_000_001, 123_456_789, hour - 1, hour] {
        var h = LatencyHistogram()
        h.record(v)
        h.record(v + 1)  // two samples so clamping to min/max does not hide the bucket error
        let got = h.value(atPercentile: 50)
        #expect(abs(got - Double(v)) / Double(v) <= 1.0 / 256 + 1e-12, "\(v) -> \(got)")
    }
    var h = LatencyHistogram()
    h.record(LatencyHistogram.highestTrackable * 4)
    #expect(h.count == 1)
    #expect(h.max == LatencyHistogram.highestTrackable * 4)
}

@Test func mergeEqualsRecordingEverythingInOne() {
    var rng = SplitMix(state: 99)
    var a = LatencyHistogram(), b = LatencyHistogram(), all = LatencyHistogram()
    for i in 0..<20_000 {
        let v = UInt64.random(in: 1...5_000_000_000, using: &rng) >> UInt64.random(in: 0...20, using: &rng)
        if i % 3 == 0 { a.record(v) } else { b.record(v) }
        all.record(v)
    }
    var merged = a
    merged.merge(b)
    #expect(merged.counts == all.counts)
    #expect(merged.count == all.count)
    #expect(merged.min == all.min)
    #expect(merged.max == all.max)
    #expect(abs(merged.sum - all.sum) / all.sum < 1e-12)
    for p in [50.0, 90, 99, 99.9] { #expect(merged.value(atPercentile: p) == all.value(atPercentile: p)) }
    var empty = LatencyHistogram()
    empty.merge(LatencyHistogram())
    #expect(empty.count == 0)
    #expect(empty.value(atPercentile: 50) == 0)
}

@Test func meanStdevAndWithinMatchTheTextbook() {
    var h = LatencyHistogram()
    for _ in 0..<500 { h.record(100_000) }
    for _ in 0..<500 { h.record(300_000) }
    #expect(h.mean == 200_000)
    // From bucket midpoints: within the histogram's 1/256 relative error of the exact value.
    #expect(abs(h.standardDeviation - 100_000 * (1000.0 / 999).squareRoot()) < 100_000.0 / 256)
    #expect(h.percentWithin(standardDeviations: 1) == 100)
    #expect(h.value(atPercentile: 50) == 300_000)  // rank round(500.5) = 501
    #expect(abs(h.value(atPercentile: 49.9) - 100_000) <= 100_000.0 / 256)
}

/// wrk's `stats_correct`, on a plain array of counts indexed by value.
func wrkCorrect(_ data: inout [UInt64], expected: Int) {
    guard expected * 2 < data.count else { return }
    for n in (expected * 2)..<data.count {
        let count = data[n]
        var m = n - expected
        while count > 0 && m > expected {
            data[m] += count
            m -= expected
        }
    }
}

@Test(arguments: [3, 10, 17])
func coordinatedOmissionCorrectionMatchesWrk(expected: Int) {
    // Values below 256 have exact buckets, so the result must equal wrk's exactly.
    var rng = SplitMix(state: UInt64(expected))
    var data = [UInt64](repeating: 0, count: 256)
    var h = LatencyHistogram()
    for _ in 0..<2_000 {
        let v = Int.random(in: 1...255, using: &rng)
        data[v] += 1
        h.record(UInt64(v))
    }
    wrkCorrect(&data, expected: expected)
    h.correctForExpectedInterval(UInt64(expected))
    #expect(Array(h.counts[0..<256]) == data)
    #expect(h.count == data.reduce(0, +))
}

@Test func correctionOfLargeValuesCountsPerBucketLikeStepping() {
    // 1 s samples with a 10 µs interval: 99,998 synthetic samples each, counted per bucket.
    var h = LatencyHistogram()
    h.record(1_000_000_000, count: 3)
    h.record(10_000, count: 1000)
    h.correctForExpectedInterval(10_000)
    #expect(h.count == 1003 + 3 * 99_998)
    // The synthetic samples spread evenly from just above 10 µs to 1 s: the median is near 0.5 s.
    let median = h.value(atPercentile: 50)
    #expect(abs(median - 500_000_000) / 500_000_000 < 0.02)
}
