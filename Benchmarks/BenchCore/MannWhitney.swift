import Foundation

/// The Mann-Whitney U test (Wilcoxon rank-sum) with the normal approximation: does one sample
/// tend to hold larger values than another? It compares ranks, not means, so a few outliers
/// (a GC pause, a scheduler hiccup) move it little, and it assumes no distribution.
///
/// Samples are given as (value, count) pairs, so a latency histogram is a sample: values in one
/// bucket are ties. U counts the pairs (x, y) with x > y, ties as one half. Under the null
/// hypothesis (neither tends to be larger) U has mean n1·n2/2 and variance
/// n1·n2/12 · ((N+1) − Σ(t³−t)/(N(N−1))), t the size of each group of tied values, N = n1 + n2;
/// z uses a continuity correction of ½. These are the textbook formulas (and SciPy's
/// `mannwhitneyu(method="asymptotic")`).
public enum MannWhitney {
    public struct Result: Equatable, Sendable {
        /// Pairs with x > y, plus half the tied pairs.
        public var u: Double
        public var n1: Double
        public var n2: Double
        /// Standardised U (continuity-corrected toward the mean for the one-sided test).
        public var z: Double
        /// One-sided p-value for "x tends to be larger than y".
        public var pGreater: Double
        /// U / (n1·n2): the probability that a random x exceeds a random y (ties half).
        public var probabilityGreater: Double { n1 * n2 > 0 ? u / (n1 * n2) : 0.5 }
    }

    /// Tests whether `x` tends to be larger than `y`. Counts may be fractional weights; empty
    /// samples give z = 0, p = 1.
    public static func test(_ x: [(value: Double, count: Double)], _ y: [(value: Double, count: Double)]) -> Result {
        var points: [(value: Double, cx: Double, cy: Double)] = []
        points.reserveCapacity(x.count + y.count)
        for p in x where p.count > 0 { points.append((p.value, p.count, 0)) }
        for p in y where p.count > 0 { points.append((p.value, 0, p.count)) }
        points.sort { $0.value < $1.value }
        let n1 = x.reduce(0) { $0 + max(0, $1.count) }, n2 = y.reduce(0) { $0 + max(0, $1.count) }
        var u = 0.0, ties = 0.0, belowY = 0.0
        var i = 0
        while i < points.count {
            var cx = 0.0, cy = 0.0
            let value = points[i].value
            while i < points.count && points[i].value == value {
                cx += points[i].cx
                cy += points[i].cy
                i += 1
            }
            u += cx * (belowY + cy / 2)
            belowY += cy
            let t = cx + cy
            ties += t * t * t - t
        }
        let n = n1 + n2
        guard n1 > 0, n2 > 0, n > 1 else { return Result(u: u, n1: n1, n2: n2, z: 0, pGreater: 1) }
        let mean = n1 * n2 / 2
        let variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
        guard variance > 0 else { return Result(u: u, n1: n1, n2: n2, z: 0, pGreater: u > mean ? 0 : 1) }
        let z = (u - mean - 0.5) / variance.squareRoot()
        return Result(u: u, n1: n1, n2: n2, z: z, pGreater: upperTail(z))
    }

    /// P(Z > z) for a standard normal Z.
    public static func upperTail(_ z: Double) -> Double { 0.5 * erfc(z / 2.0.squareRoot()) }

    /// A histogram as a sample: each bucket's representative value (times `scale`) and count.
    public static func sample(_ h: LatencyHistogram, scale: Double = 1) -> [(value: Double, count: Double)] {
        var out: [(value: Double, count: Double)] = []
        for i in h.counts.indices where h.counts[i] != 0 {
            let v = min(max(LatencyHistogram.representative(of: i), Double(h.min)), Double(h.max))
            out.append((v * scale, Double(h.counts[i])))
        }
        return out
    }
}
