/// The CONCURRENT comparison counts carried in an offer's `comparisons` blob: totals and
/// per cluster pair. A pure codec (the comparator's log maps to and from it).
public struct ComparisonCounts: Equatable, Sendable {
    /// One cluster pair's counts.
    public struct Pair: Equatable, Sendable {
        public var old: String
        public var new: String
        public var compared: Int
        public var divergent: Int
        public var fallbacks: Int

        public init(old: String, new: String, compared: Int, divergent: Int, fallbacks: Int) {
            self.old = old
            self.new = new
            self.compared = compared
            self.divergent = divergent
            self.fallbacks = fallbacks
        }
    }

    public var total: Int
    public var divergent: Int
    public var fallbacks: Int
    public var pairs: [Pair]

    public init(total: Int = 0, divergent: Int = 0, fallbacks: Int = 0, pairs: [Pair] = []) {
        self.total = total
        self.divergent = divergent
        self.fallbacks = fallbacks
        self.pairs = pairs
    }

    /// Most pairs carried.
    static let maxPairs = 1000

    /// Three counts, the pair count, then per pair: two strings (length-prefixed) and three counts.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        func u64(_ v: Int) { let x = UInt64(max(0, v)); for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8((x >> UInt64(shift)) & 0xff)) } }
        func text(_ s: String) { let b = Array(s.utf8.prefix(255)); out.append(UInt8(b.count)); out += b }
        u64(total); u64(divergent); u64(fallbacks)
        let kept = pairs.prefix(Self.maxPairs)
        u64(kept.count)
        for p in kept {
            text(p.old); text(p.new)
            u64(p.compared); u64(p.divergent); u64(p.fallbacks)
        }
        return out
    }

    /// Reads `encoded()`'s bytes (empty bytes: no counts). Throws on anything else.
    public init(encoded bytes: [UInt8]) throws(HandoverDecodeError) {
        self.init()
        guard !bytes.isEmpty else { return }
        var offset = 0
        func u64(_ what: String) throws(HandoverDecodeError) -> Int {
            guard bytes.count - offset >= 8 else { throw HandoverDecodeError(offset: offset, reason: "comparisons end inside \(what)") }
            let v = bytes[offset..<(offset + 8)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            offset += 8
            guard v <= UInt64(Int.max) else { throw HandoverDecodeError(offset: offset - 8, reason: "comparisons: \(what) out of range") }
            return Int(v)
        }
        func text(_ what: String) throws(HandoverDecodeError) -> String {
            guard offset < bytes.count else { throw HandoverDecodeError(offset: offset, reason: "comparisons end inside \(what)") }
            let n = Int(bytes[offset])
            offset += 1
            guard bytes.count - offset >= n else { throw HandoverDecodeError(offset: offset, reason: "comparisons end inside \(what)") }
            defer { offset += n }
            return String(decoding: bytes[offset..<(offset + n)], as: UTF8.self)
        }
        total = try u64("total")
        divergent = try u64("divergent")
        fallbacks = try u64("fallbacks")
        let count = try u64("pair count")
        guard count <= Self.maxPairs else { throw HandoverDecodeError(offset: offset - 8, reason: "comparisons: \(count) pairs") }
        for _ in 0..<count {
            let old = try text("a cluster uuid")
            let new = try text("a cluster uuid")
            pairs.append(Pair(old: old, new: new, compared: try u64("compared"), divergent: try u64("divergent"), fallbacks: try u64("fallbacks")))
        }
        guard offset == bytes.count else { throw HandoverDecodeError(offset: offset, reason: "comparisons: bytes after the counts") }
    }
}
