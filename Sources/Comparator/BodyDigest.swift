/// A streaming 64-bit digest of a body: a divergence detector, not a cryptographic hash.
///
/// Word at a time: the input is read as little-endian 64-bit words into four independent
/// lanes (32 bytes per stripe, so the multiplies of one stripe overlap in the CPU instead of
/// waiting on each other); each word is mixed into its lane by multiply, rotate, multiply.
/// At the end the lanes are rotated and folded together, the bytes short of a stripe are
/// mixed a word at a time, the last partial word zero-padded, the length folded in (so
/// padding cannot be confused with zero bytes, nor a body with its prefix), and the result
/// avalanched (xor-shift-multiply), so every input bit reaches every output bit.
///
/// The value depends only on the bytes, never on how they were split across `update` calls:
/// bytes short of a stripe wait in a 32-byte stash.
public struct BodyDigest: Sendable, Equatable {
    static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    static let stripe = 32

    private var lanes: (UInt64, UInt64, UInt64, UInt64) = (p1 &+ p2, p2, 0, 0 &- p1)
    /// Bytes short of a stripe, waiting for the next call (or `value`).
    private var stash: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    private var stashed = 0
    /// Bytes digested so far.
    public private(set) var length: UInt64 = 0

    public init() {}

    /// Mixes one word into a lane.
    @inline(__always)
    static func round(_ lane: UInt64, _ word: UInt64) -> UInt64 {
        rotl(lane &+ word &* p2, 31) &* p1
    }

    @inline(__always)
    static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }

    @inline(__always)
    static func word(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt64 {
        UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// Digests `bytes` after everything given before.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        length &+= UInt64(bytes.count)
        var offset = 0
        if stashed > 0 {
            // Complete the stash first; a stripe is processed only once it is whole.
            let take = min(Self.stripe - stashed, bytes.count)
            let already = stashed
            withUnsafeMutableBytes(of: &stash) { s in
                s.baseAddress!.advanced(by: already).copyMemory(from: bytes.baseAddress!, byteCount: take)
            }
            stashed += take
            offset = take
            guard stashed == Self.stripe else { return }
            let s = stash
            lanes = (Self.round(lanes.0, UInt64(littleEndian: s.0)), Self.round(lanes.1, UInt64(littleEndian: s.1)),
                     Self.round(lanes.2, UInt64(littleEndian: s.2)), Self.round(lanes.3, UInt64(littleEndian: s.3)))
            stashed = 0
        }
        var (a, b, c, d) = lanes
        let end = bytes.count - Self.stripe
        while offset <= end {
            a = Self.round(a, Self.word(bytes, offset))
            b = Self.round(b, Self.word(bytes, offset + 8))
            c = Self.round(c, Self.word(bytes, offset + 16))
            d = Self.round(d, Self.word(bytes, offset + 24))
            offset += Self.stripe
        }
        lanes = (a, b, c, d)
        let rest = bytes.count - offset
        if rest > 0 {
            withUnsafeMutableBytes(of: &stash) { s in
                s.baseAddress!.copyMemory(from: bytes.baseAddress!.advanced(by: offset), byteCount: rest)
            }
            stashed = rest
        }
    }

    /// The digest of everything given so far (the state is unchanged; more may follow).
    public var value: UInt64 {
        var h: UInt64
        if length >= UInt64(Self.stripe) {
            let (a, b, c, d) = lanes
            h = Self.rotl(a, 1) &+ Self.rotl(b, 7) &+ Self.rotl(c, 12) &+ Self.rotl(d, 18)
            for lane in [a, b, c, d] {
                h = (h ^ Self.round(0, lane)) &* Self.p1 &+ Self.p4
            }
        } else {
            h = Self.p3
        }
        h &+= length
        var s = stash
        let count = stashed
        withUnsafeBytes(of: &s) { tail in
            var i = 0
            while i + 8 <= count {
                h = Self.rotl(h ^ Self.round(0, Self.word(tail, i)), 27) &* Self.p1 &+ Self.p4
                i += 8
            }
            if i < count {
                // The last 1...7 bytes, zero-padded: the length above tells them from zeros.
                var w: UInt64 = 0
                for j in 0..<(count - i) { w |= UInt64(tail[i + j]) << (8 * UInt64(j)) }
                h = Self.rotl(h ^ (w &* Self.p1), 23) &* Self.p2 &+ Self.p3
            }
        }
        h ^= h >> 33
        h &*= Self.p2
        h ^= h >> 29
        h &*= Self.p3
        h ^= h >> 32
        return h
    }

    public static func == (a: BodyDigest, b: BodyDigest) -> Bool { a.length == b.length && a.value == b.value }
}
