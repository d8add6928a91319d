import Comparator
import Testing

/// Feeds `a` (side 0) and `b` (side 1) to a comparator in the given chunk sizes, alternating.
func compare(_ a: [UInt8], _ b: [UInt8], chunkA: Int, chunkB: Int, window: Int = 4096, aFirst: Bool = true) -> StreamComparator {
    var c = StreamComparator(window: window)
    var i = 0, j = 0
    var turnA = aFirst
    var endedA = false, endedB = false
    while i < a.count || j < b.count {
        if i == a.count && !endedA { c.end(side: 0); endedA = true }
        if j == b.count && !endedB { c.end(side: 1); endedB = true }
        if turnA && i < a.count {
            let n = min(chunkA, a.count - i)
            a[i..<i + n].withUnsafeBytes { c.feed(side: 0, $0) }
            i += n
        } else if !turnA && j < b.count {
            let n = min(chunkB, b.count - j)
            b[j..<j + n].withUnsafeBytes { c.feed(side: 1, $0) }
            j += n
        }
        turnA.toggle()
    }
    return c
}

@Suite("Stream comparator")
struct StreamComparatorTests {
    let body: [UInt8] = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 8) }

    @Test("equal bodies are equal whatever the chunking", arguments: [(1, 1), (7, 13), (4096, 100), (65536, 1), (1000, 1000)])
    func equalBodies(chunks: (Int, Int)) {
        let c = compare(body, body, chunkA: chunks.0, chunkB: chunks.1, window: 1 << 20)
        #expect(c.bodiesEqual)
        #expect(c.firstDifferenceOffset == nil)
        #expect(c.lengths == (100_000, 100_000))
    }

    @Test("one differing byte is found at its offset in lock-step", arguments: [0, 1, 4095, 4096, 50_000, 99_999])
    func oneByteDiffers(at offset: Int) {
        var other = body
        other[offset] ^= 0xFF
        for (ca, cb) in [(1, 1), (37, 37), (1500, 1500), (4096, 4096)] {
            let c = compare(body, other, chunkA: ca, chunkB: cb)
            #expect(!c.bodiesEqual)
            #expect(c.firstDifferenceOffset == UInt64(offset), "chunks \(ca)/\(cb)")
        }
    }

    @Test("a prefix body differs at the end of the shorter one")
    func prefix() {
        let c = compare(body, Array(body[0..<70_000]), chunkA: 512, chunkB: 512)
        #expect(c.lengths == (100_000, 70_000))
        #expect(!c.bodiesEqual)
        #expect(c.firstDifferenceOffset == 70_000)
    }

    @Test("when one side runs ahead past the window the offset is given up, digests still decide")
    func leadBeyondWindow() {
        var other = body
        other[90_000] ^= 1
        var c = StreamComparator(window: 1024)
        body.withUnsafeBytes { c.feed(side: 0, $0) }   // all of side 0 first: far past the window
        other.withUnsafeBytes { c.feed(side: 1, $0) }
        #expect(!c.lockStep)
        #expect(!c.bodiesEqual)
        #expect(c.firstDifferenceOffset == nil)
        var same = StreamComparator(window: 1024)
        body.withUnsafeBytes { same.feed(side: 0, $0) }
        body.withUnsafeBytes { same.feed(side: 1, $0) }
        #expect(same.bodiesEqual)
    }

    @Test("room tells the leading side how far it may run ahead")
    func room() {
        var c = StreamComparator(window: 100)
        #expect(c.room(forSide: 0) == 100)
        body[0..<60].withUnsafeBytes { c.feed(side: 0, $0) }
        #expect(c.room(forSide: 0) == 40)
        #expect(c.room(forSide: 1) == 160)
        body[0..<60].withUnsafeBytes { c.feed(side: 1, $0) }
        #expect(c.room(forSide: 0) == 100)
    }

    @Test("the ring keeps the newest N, newest first, and counts per cluster pair")
    func ring() {
        let log = ComparisonLog(capacity: 3)
        for i in 0..<5 {
            var old = ResponseSummary(); old.status = 200; old.complete = true
            var new = ResponseSummary(); new.status = i == 4 ? 500 : 200; new.complete = true
            log.add(ComparisonRecord(method: "GET", target: "/\(i)", old: old, new: new, servedBy: i == 4 ? "old" : "new",
                                     comparator: StreamComparator(), unixTime: 0, clusters: ("a", "b")))
        }
        let s = log.snapshot()
        #expect(s.total == 5)
        #expect(s.divergent == 1)
        #expect(s.fallbacks == 1)
        #expect(s.recent.map(\.target) == ["/4", "/3", "/2"])
        #expect(s.pairs["a->b"]?.compared == 5)
    }

    @Test("header differences ignore order of other names and report one-sided headers")
    func headerDiffs() {
        var old = ResponseSummary(); old.headers = [("content-type", "text/plain"), ("x-a", "1")]
        var new = ResponseSummary(); new.headers = [("x-a", "1"), ("content-type", "text/html"), ("x-b", "2")]
        let r = ComparisonRecord(method: "GET", target: "/", old: old, new: new, servedBy: "new", comparator: StreamComparator(),
                                 unixTime: 0, clusters: ("a", "b"))
        #expect(r.headerDifferences == ["content-type", "x-b"])
    }
}
