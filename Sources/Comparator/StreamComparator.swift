#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Compares two response bodies as they stream past, without keeping either.
///
/// Each side's bytes are fed as they arrive, in any interleaving. Where both streams are
/// available at the same offsets they are compared directly (`memcmp`) in lock-step: the
/// side that is ahead leaves at most `window` bytes, in a ring, for the other to be compared
/// against. Bytes compared this way need no digest: equal is equal.
///
/// When one side runs further ahead than the window, the exact offset of a later difference
/// can no longer be known without buffering, so it is given up (`firstDifferenceOffset`
/// stays nil) and both sides feed a streaming digest (`BodyDigest`) from the first byte not
/// compared (`digestStart`) on — the leader's pending bytes included — so digests and
/// lengths still tell whether the bodies differ. Everything before `digestStart` was equal
/// on both sides, so equal digests of the rest mean equal bodies (up to a 64-bit collision).
/// Once a difference is found, only lengths are counted.
public struct StreamComparator: Sendable {
    /// Bytes the leading side may hold for the lagging one.
    public let window: Int
    private var digests = (BodyDigest(), BodyDigest())
    private var counts: (UInt64, UInt64) = (0, 0)
    /// The leading side's bytes not yet compared: `pendingCount` bytes from `ringStart`,
    /// wrapping at `window`. Allocated on first use (a bodiless exchange never needs it).
    private var ring: [UInt8] = []
    private var ringStart = 0
    private var pendingCount = 0
    private var leader = 0
    private var ended = (false, false)
    /// Offset of the first byte that differs, once known.
    public private(set) var firstDifference: UInt64?
    /// False once the lead exceeded the window (later offsets cannot be known).
    public private(set) var lockStep = true
    /// Offset from which both digests run (set when lock-step is lost): every byte before it
    /// was compared equal.
    public private(set) var digestStart: UInt64?
    /// Why the bodies were not compared, when the comparison was given up (`giveUp`).
    public private(set) var notCompared: String?

    public init(window: Int = 4096) {
        self.window = max(0, window)
    }

    /// Body bytes received on `side` (0 or 1).
    public mutating func feed(side: Int, _ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        let start = side == 0 ? counts.0 : counts.1
        if side == 0 { counts.0 += UInt64(bytes.count) } else { counts.1 += UInt64(bytes.count) }
        guard firstDifference == nil, notCompared == nil else { return }
        guard lockStep else {
            if side == 0 { digests.0.update(bytes) } else { digests.1.update(bytes) }
            return
        }

        var rest = bytes
        var offset = start
        // Compare against what the other side left pending.
        if leader != side && pendingCount > 0 {
            let n = min(pendingCount, rest.count)
            if let i = pendingMismatch(UnsafeRawBufferPointer(rebasing: rest[0..<n])) {
                firstDifference = offset + UInt64(i)
                clearPending()
                return
            }
            consumePending(n)
            rest = UnsafeRawBufferPointer(rebasing: rest[n...])
            offset += UInt64(n)
        }
        guard !rest.isEmpty else { return }
        // This side is now ahead (lock-step keeps pendingCount equal to the lead, so it
        // starts exactly where the other side stands): keep its bytes, within the window.
        let other = side == 0 ? counts.1 : counts.0
        if side == 0 ? ended.1 : ended.0 {
            // The other body ended here and everything before matched: it is a prefix.
            firstDifference = other
            clearPending()
            return
        }
        if pendingCount == 0 { leader = side }
        if pendingCount + rest.count > window {
            // Too far ahead: from the other side's position on, digests decide.
            lockStep = false
            digestStart = other
            var digest = BodyDigest()
            forEachPendingSegment { digest.update($0) }
            digest.update(rest)
            if side == 0 { digests.0 = digest } else { digests.1 = digest }
            clearPending()
            return
        }
        appendPending(rest)
    }

    /// Feeds `bytes` on `side` and the same number of `other` bytes on the other side. When
    /// both sides stand at the same offset (nothing pending) the two are compared directly,
    /// without keeping either in the ring. Otherwise both are fed in alternating pieces, the
    /// lagging side first, so the lead between them never grows (lock-step is kept whenever
    /// it held before).
    public mutating func feedPair(side: Int, _ bytes: UnsafeRawBufferPointer, other: UnsafeRawBufferPointer) {
        precondition(bytes.count == other.count, "feedPair needs the same number of bytes on both sides")
        guard !bytes.isEmpty else { return }
        guard lockStep, firstDifference == nil, notCompared == nil, pendingCount == 0, counts.0 == counts.1,
              !ended.0, !ended.1 else {
            let mine = side == 0 ? counts.0 : counts.1
            let theirs = side == 0 ? counts.1 : counts.0
            let (first, second) = mine <= theirs ? (bytes, other) : (other, bytes)
            let firstSide = mine <= theirs ? side : 1 - side
            let piece = max(1, window / 2)
            var offset = 0
            while offset < bytes.count {
                let end = min(offset + piece, bytes.count)
                feed(side: firstSide, UnsafeRawBufferPointer(rebasing: first[offset..<end]))
                feed(side: 1 - firstSide, UnsafeRawBufferPointer(rebasing: second[offset..<end]))
                offset = end
            }
            return
        }
        if let i = Self.firstMismatch(bytes, other) { firstDifference = counts.0 + UInt64(i) }
        counts.0 += UInt64(bytes.count)
        counts.1 += UInt64(bytes.count)
    }

    /// False once the outcome no longer depends on the bytes (a difference was found, or the
    /// comparison was given up): from then on only lengths are counted, with `feedLength`.
    public var needsBytes: Bool { firstDifference == nil && notCompared == nil }

    /// Counts `count` bytes on `side` without looking at them (only when `needsBytes` is false).
    public mutating func feedLength(side: Int, count: Int) {
        precondition(!needsBytes, "bytes are still compared")
        if side == 0 { counts.0 += UInt64(count) } else { counts.1 += UInt64(count) }
    }

    /// Stops comparing the bodies (`reason` says why); lengths are still counted.
    public mutating func giveUp(_ reason: String) {
        guard notCompared == nil else { return }
        notCompared = reason
        clearPending()
    }

    /// How many more bytes `side` may feed before lock-step would be lost. A side that does
    /// not have to keep pace (the response nobody waits for) can pause when this reaches 0.
    public func room(forSide side: Int) -> Int {
        guard firstDifference == nil, notCompared == nil, lockStep else { return .max }
        let mine = side == 0 ? counts.0 : counts.1
        let other = side == 0 ? counts.1 : counts.0
        if mine >= other { return max(0, window - Int(mine - other)) }
        return window + Int(min(other - mine, UInt64(Int.max / 2)))
    }

    /// `side` will feed no more bytes. If the other side already ran past its end with all
    /// earlier bytes equal, the difference is at that end.
    public mutating func end(side: Int) {
        if side == 0 { ended.0 = true } else { ended.1 = true }
        guard firstDifference == nil, notCompared == nil, lockStep, pendingCount > 0, leader != side else { return }
        firstDifference = side == 0 ? counts.0 : counts.1
        clearPending()
    }

    /// Byte counts of both sides.
    public var lengths: (UInt64, UInt64) { counts }
    /// Digests of both sides' bytes from `digestStart` on (values of empty digests while
    /// lock-step holds: compared bytes need none).
    public var digestValues: (UInt64, UInt64) { (digests.0.value, digests.1.value) }
    /// True when both bodies had the same length and no difference was seen: compared equal
    /// throughout in lock-step, or equal digests of what could not be compared.
    public var bodiesEqual: Bool {
        guard counts.0 == counts.1, firstDifference == nil, notCompared == nil else { return false }
        if lockStep { return pendingCount == 0 }
        return digests.0 == digests.1
    }

    /// The first differing offset when it is known: a byte that differed, or the end of the
    /// shorter body when one is a prefix of the other (and lock-step held throughout).
    public var firstDifferenceOffset: UInt64? {
        if let firstDifference { return firstDifference }
        guard lockStep, notCompared == nil, !bodiesEqual else { return nil }
        if counts.0 != counts.1 { return min(counts.0, counts.1) }
        return nil
    }

    // MARK: The ring of pending bytes

    /// Calls `body` with the pending bytes in order (one or two segments).
    private func forEachPendingSegment(_ body: (UnsafeRawBufferPointer) -> Void) {
        guard pendingCount > 0 else { return }
        ring.withUnsafeBytes { r in
            let first = min(pendingCount, window - ringStart)
            body(UnsafeRawBufferPointer(rebasing: r[ringStart..<ringStart + first]))
            if first < pendingCount { body(UnsafeRawBufferPointer(rebasing: r[0..<pendingCount - first])) }
        }
    }

    /// Index of the first byte of `incoming` that differs from the front of the pending
    /// bytes (`incoming.count <= pendingCount`), nil when all are equal.
    private func pendingMismatch(_ incoming: UnsafeRawBufferPointer) -> Int? {
        ring.withUnsafeBytes { r in
            let n = incoming.count
            let first = min(n, window - ringStart)
            if let i = Self.firstMismatch(UnsafeRawBufferPointer(rebasing: r[ringStart..<ringStart + first]),
                                          UnsafeRawBufferPointer(rebasing: incoming[0..<first])) {
                return i
            }
            guard first < n else { return nil }
            return Self.firstMismatch(UnsafeRawBufferPointer(rebasing: r[0..<n - first]),
                                      UnsafeRawBufferPointer(rebasing: incoming[first..<n])).map { first + $0 }
        }
    }

    private mutating func consumePending(_ n: Int) {
        pendingCount -= n
        // An empty ring starts over at 0, so the next append is one contiguous copy.
        ringStart = pendingCount == 0 ? 0 : (ringStart + n) % window
    }

    private mutating func clearPending() {
        pendingCount = 0
        ringStart = 0
    }

    /// Appends to the pending bytes (the caller checked they fit in the window).
    private mutating func appendPending(_ bytes: UnsafeRawBufferPointer) {
        if ring.isEmpty {
            let capacity = window
            ring = [UInt8](unsafeUninitializedCapacity: capacity) { _, initialized in initialized = capacity }
        }
        let window = self.window
        let end = (ringStart + pendingCount) % window
        ring.withUnsafeMutableBytes { r in
            let first = min(bytes.count, window - end)
            r.baseAddress!.advanced(by: end).copyMemory(from: bytes.baseAddress!, byteCount: first)
            if first < bytes.count {
                r.baseAddress!.copyMemory(from: bytes.baseAddress!.advanced(by: first), byteCount: bytes.count - first)
            }
        }
        pendingCount += bytes.count
    }

    /// Index of the first byte where `a` and `b` (same length) differ, nil when equal:
    /// `memcmp` says whether; only on a difference is it located, a word at a time.
    public static func firstMismatch(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int? {
        let n = a.count
        guard n > 0, memcmp(a.baseAddress!, b.baseAddress!, n) != 0 else { return nil }
        var i = 0
        while i + 8 <= n {
            let x = UInt64(littleEndian: a.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                ^ UInt64(littleEndian: b.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            // Little-endian: the lowest set bit belongs to the first differing byte.
            if x != 0 { return i + x.trailingZeroBitCount / 8 }
            i += 8
        }
        while i < n {
            if a[i] != b[i] { return i }
            i += 1
        }
        return nil
    }
}
