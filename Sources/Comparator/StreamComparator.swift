/// Compares two response bodies as they stream past, without keeping either.
///
/// Each side's bytes are fed as they arrive, in any interleaving. Both sides feed a
/// streaming digest (FNV-1a, 64 bit: a divergence detector, not a cryptographic hash) and a
/// byte count. Where both streams are available at the same offsets, they are compared
/// byte by byte in lock-step: the side that is ahead leaves at most `window` bytes for the
/// other to be compared against. When one side runs further ahead than that, the exact
/// offset of a later difference can no longer be known without buffering, so it is given
/// up (`firstDifferenceOffset` stays nil unless a difference was already found); digests
/// and lengths still tell whether the bodies differ.
public struct StreamComparator: Sendable {
    /// Bytes the leading side may hold for the lagging one.
    public let window: Int
    private var digests: (UInt64, UInt64) = (Self.fnvOffset, Self.fnvOffset)
    private var counts: (UInt64, UInt64) = (0, 0)
    /// Bytes of the leading side not yet compared (at most `window`).
    private var pending: [UInt8] = []
    private var leader = 0
    private var ended = [false, false]
    /// Offset of the first byte that differs, once known.
    public private(set) var firstDifference: UInt64?
    /// False once the lead exceeded the window (later offsets cannot be known).
    public private(set) var lockStep = true

    static let fnvOffset: UInt64 = 0xcbf2_9ce4_8422_2325
    static let fnvPrime: UInt64 = 0x0000_0100_0000_01b3

    public init(window: Int = 4096) {
        self.window = window
        pending.reserveCapacity(window)
    }

    /// Body bytes received on `side` (0 or 1).
    public mutating func feed(side: Int, _ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        var hash = side == 0 ? digests.0 : digests.1
        for byte in bytes {
            hash = (hash ^ UInt64(byte)) &* Self.fnvPrime
        }
        let start = side == 0 ? counts.0 : counts.1
        if side == 0 { digests.0 = hash; counts.0 += UInt64(bytes.count) } else { digests.1 = hash; counts.1 += UInt64(bytes.count) }
        guard firstDifference == nil, lockStep else { return }

        var rest = bytes[...]
        var offset = start
        // Compare against what the other side left pending.
        if leader != side && !pending.isEmpty {
            let n = min(pending.count, rest.count)
            for i in 0..<n where pending[i] != rest[rest.startIndex + i] {
                firstDifference = offset + UInt64(i)
                pending.removeAll(keepingCapacity: true)
                return
            }
            pending.removeFirst(n)
            rest = rest.dropFirst(n)
            offset += UInt64(n)
        }
        guard !rest.isEmpty else { return }
        // This side is now ahead: keep its bytes for the other side, within the window.
        let other = side == 0 ? counts.1 : counts.0
        guard offset >= other else { return }
        if ended[1 - side] {
            // The other body ended here and everything before matched: it is a prefix.
            firstDifference = other
            pending.removeAll(keepingCapacity: true)
            return
        }
        if pending.isEmpty { leader = side }
        if pending.count + rest.count > window {
            lockStep = false
            pending.removeAll(keepingCapacity: true)
            return
        }
        pending.append(contentsOf: rest)
    }

    /// How many more bytes `side` may feed before lock-step would be lost. A side that does
    /// not have to keep pace (the response nobody waits for) can pause when this reaches 0.
    public func room(forSide side: Int) -> Int {
        guard firstDifference == nil, lockStep else { return .max }
        let mine = side == 0 ? counts.0 : counts.1
        let other = side == 0 ? counts.1 : counts.0
        if mine >= other { return max(0, window - Int(mine - other)) }
        return window + Int(min(other - mine, UInt64(Int.max / 2)))
    }

    /// `side` will feed no more bytes. If the other side already ran past its end with all
    /// earlier bytes equal, the difference is at that end.
    public mutating func end(side: Int) {
        ended[side] = true
        guard firstDifference == nil, lockStep, !pending.isEmpty, leader != side else { return }
        firstDifference = side == 0 ? counts.0 : counts.1
        pending.removeAll(keepingCapacity: true)
    }

    /// Byte counts of both sides.
    public var lengths: (UInt64, UInt64) { counts }
    /// Digests of both sides (FNV-1a 64).
    public var digestValues: (UInt64, UInt64) { digests }
    /// True when both bodies had the same length and digest.
    public var bodiesEqual: Bool { counts.0 == counts.1 && digests.0 == digests.1 }

    /// The first differing offset when it is known: a byte that differed, or the end of the
    /// shorter body when one is a prefix of the other (and lock-step held throughout).
    public var firstDifferenceOffset: UInt64? {
        if let firstDifference { return firstDifference }
        guard lockStep, !bodiesEqual else { return nil }
        if counts.0 != counts.1 { return min(counts.0, counts.1) }
        return nil
    }
}
