// Byte classes and comparisons used by the parsers. Everything here works on raw pointers and
// StaticStrings so that parsing never creates a String or allocates.

@usableFromInline let CR: UInt8 = 0x0D
@usableFromInline let LF: UInt8 = 0x0A
@usableFromInline let SP: UInt8 = 0x20
@usableFromInline let HT: UInt8 = 0x09
@usableFromInline let DEL: UInt8 = 0x7F
@usableFromInline let COLON: UInt8 = 0x3A

/// Bit i set when byte i (0..<64) is a tchar (RFC 9110 5.6.2): ! # $ % & ' * + - . 0-9
@usableFromInline let tokenMaskLow: UInt64 =
    (1 << 33) | (1 << 35) | (1 << 36) | (1 << 37) | (1 << 38) | (1 << 39) | (1 << 42) | (1 << 43)
    | (1 << 45) | (1 << 46) | (0x3FF << 48)
/// Bit i set when byte 64+i is a tchar: A-Z ^ _ ` a-z | ~
@usableFromInline let tokenMaskHigh: UInt64 =
    (0x3FFFFFF << 1) | (1 << 30) | (1 << 31) | (1 << 32) | (0x3FFFFFF << 33) | (1 << 60) | (1 << 62)

/// Returns whether `b` is a token character (tchar).
@inline(__always) @usableFromInline
func isToken(_ b: UInt8) -> Bool {
    if b < 64 { return (tokenMaskLow >> UInt64(b)) & 1 != 0 }
    if b < 128 { return (tokenMaskHigh >> UInt64(b &- 64)) & 1 != 0 }
    return false
}

@usableFromInline let ones: UInt64 = 0x0101_0101_0101_0101
@usableFromInline let highs: UInt64 = 0x8080_8080_8080_8080

/// Returns whether any byte of `w` is below `n` (n <= 128); exact, no false positives.
@inline(__always) @usableFromInline
func hasByteBelow(_ w: UInt64, _ n: UInt64) -> Bool {
    (w &- ones &* n) & ~w & highs != 0
}

/// Returns whether any byte of `w` is a control character (HT included) or DEL: the bytes that stop
/// the word-at-a-time scan of field values. Byte order does not matter.
@inline(__always) @usableFromInline
func hasControlOrDEL(_ w: UInt64) -> Bool {
    hasByteBelow(w, 0x20) || hasByteBelow(w ^ (ones &* 0x7F), 1)
}

/// Returns whether any byte of `w` cannot be part of a request-target: CTL, SP or DEL.
@inline(__always) @usableFromInline
func hasNonTargetByte(_ w: UInt64) -> Bool {
    hasByteBelow(w, 0x21) || hasByteBelow(w ^ (ones &* 0x7F), 1)
}

/// Loads 8 bytes from `p + i`, whatever the alignment.
@inline(__always) @usableFromInline
func loadWord(_ p: UnsafePointer<UInt8>, _ i: Int) -> UInt64 {
    UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
}

/// Returns whether `b` is a hexadecimal digit, and its value.
@inline(__always)
func hexValue(_ b: UInt8) -> UInt8? {
    switch b {
    case 0x30...0x39: return b &- 0x30
    case 0x41...0x46: return b &- 0x41 &+ 10
    case 0x61...0x66: return b &- 0x61 &+ 10
    default: return nil
    }
}

/// Returns whether the `s.utf8CodeUnitCount` bytes at `p` equal `s` exactly.
@inline(__always)
func bytesEqual(_ p: UnsafePointer<UInt8>, _ s: StaticString) -> Bool {
    let q = s.utf8Start
    for i in 0..<s.utf8CodeUnitCount where p[i] != q[i] { return false }
    return true
}

/// Returns whether the bytes at `p` equal `lower` ignoring ASCII case. `lower` must consist of
/// lowercase letters, digits and '-' only; `p` must point at token characters (for which
/// `b | 0x20` folds exactly the letters).
@inline(__always)
func bytesEqualFolded(_ p: UnsafePointer<UInt8>, _ lower: StaticString) -> Bool {
    let q = lower.utf8Start
    for i in 0..<lower.utf8CodeUnitCount where p[i] | 0x20 != q[i] { return false }
    return true
}

/// Returns whether `p[0..<count]` equals `lower` ignoring ASCII case, for arbitrary bytes.
@inline(__always)
func equalsFolded(_ p: UnsafePointer<UInt8>, _ count: Int, _ lower: StaticString) -> Bool {
    guard count == lower.utf8CodeUnitCount else { return false }
    let q = lower.utf8Start
    for i in 0..<count {
        var b = p[i]
        if b >= 0x41 && b <= 0x5A { b |= 0x20 }
        if b != q[i] { return false }
    }
    return true
}

/// Returns whether the token `p[0..<count]`, with every `-` and `_` left out and ASCII case
/// ignored, spells `lower` (lowercase letters only).
@inline(__always)
func lettersEqual(_ p: UnsafePointer<UInt8>, _ count: Int, _ lower: StaticString) -> Bool {
    let q = lower.utf8Start
    let n = lower.utf8CodeUnitCount
    var k = 0
    for i in 0..<count {
        let b = p[i]
        if b == 0x2D || b == 0x5F { continue }
        guard k < n, b | 0x20 == q[k] else { return false }
        k += 1
    }
    return k == n
}

/// Returns whether two byte runs are equal ignoring ASCII case.
@inline(__always)
func equalsFolded(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ count: Int) -> Bool {
    for i in 0..<count {
        var x = a[i], y = b[i]
        if x >= 0x41 && x <= 0x5A { x |= 0x20 }
        if y >= 0x41 && y <= 0x5A { y |= 0x20 }
        if x != y { return false }
    }
    return true
}

/// Calls `body` once for each element of the comma-separated list `p[start..<end]`, with the
/// element's bounds after trimming OWS. Empty elements are skipped (RFC 9110 5.6.1).
@inline(__always)
func forEachListElement<E: Error>(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ body: (Int, Int) throws(E) -> Void) throws(E) {
    var i = start
    while i < end {
        while i < end && (p[i] == SP || p[i] == HT) { i += 1 }
        let s = i
        while i < end && p[i] != 0x2C { i += 1 }
        var e = i
        while e > s && (p[e - 1] == SP || p[e - 1] == HT) { e -= 1 }
        if e > s { try body(s, e) }
        i += 1  // skip the comma
    }
}

extension UnsafeRawBufferPointer {
    /// The buffer's bytes as `UInt8`s, or nil when it is empty.
    @inline(__always)
    var bytePointer: UnsafePointer<UInt8>? {
        guard let base = baseAddress, count > 0 else { return nil }
        return base.assumingMemoryBound(to: UInt8.self)
    }
}
