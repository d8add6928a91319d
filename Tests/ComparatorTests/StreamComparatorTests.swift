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

    @Test("a differing byte is found at word boundaries and at every split point of a short body")
    func wordBoundariesAndSplits() {
        let short = Array(body[0..<200])
        for offset in [0, 1, 7, 8, 9, 15, 16, 31, 32, 63, 64, 65, 127, 128, 199] {
            var other = short
            other[offset] ^= 0x80
            for cut in stride(from: 0, through: 200, by: 1) {
                var c = StreamComparator(window: 256)
                short.withUnsafeBytes { a in
                    other.withUnsafeBytes { b in
                        c.feed(side: 0, UnsafeRawBufferPointer(rebasing: a[0..<cut]))
                        c.feed(side: 1, UnsafeRawBufferPointer(rebasing: b[0..<200 - cut]))
                        c.feed(side: 0, UnsafeRawBufferPointer(rebasing: a[cut...]))
                        c.feed(side: 1, UnsafeRawBufferPointer(rebasing: b[(200 - cut)...]))
                    }
                }
                c.end(side: 0)
                c.end(side: 1)
                #expect(c.firstDifferenceOffset == UInt64(offset), "offset \(offset) cut \(cut)")
                #expect(!c.bodiesEqual)
            }
        }
    }

    /// Feeds both bodies in pieces cycling through `chunks`, choosing the side pseudo-randomly
    /// but never letting the lead pass `window`: the leader often feeds again while still
    /// ahead, so its pending bytes wrap around the ring's end.
    func feedWithinWindow(_ a: [UInt8], _ b: [UInt8], chunks: [Int], window: Int, seed: UInt64) -> StreamComparator {
        var c = StreamComparator(window: window)
        var i = 0, j = 0, k = 0
        var random = seed
        a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in
                while i < a.count || j < b.count {
                    random = random &* 6364136223846793005 &+ 1442695040888963407
                    let n = chunks[k % chunks.count]
                    k += 1
                    var sideA = random >> 63 == 1
                    if sideA && (i == a.count || i + n - j > window) { sideA = false }
                    if !sideA && (j == b.count || j + n - i > window) { sideA = true }
                    if sideA {
                        let m = min(n, a.count - i)
                        c.feed(side: 0, UnsafeRawBufferPointer(rebasing: pa[i..<i + m]))
                        i += m
                        if i == a.count { c.end(side: 0) }
                    } else {
                        let m = min(n, b.count - j)
                        c.feed(side: 1, UnsafeRawBufferPointer(rebasing: pb[j..<j + m]))
                        j += m
                        if j == b.count { c.end(side: 1) }
                    }
                }
            }
        }
        return c
    }

    @Test("the ring wraps: the leader feeds again while ahead, across the window's end", arguments: [[5, 3], [13, 11, 40], [61, 17], [1, 96]])
    func ringWrapAround(chunks: [Int]) {
        // Windows that are not multiples of the chunk sizes, so pending bytes wrap.
        for window in [97, 128, 4096] {
            for seed: UInt64 in [1, 2, 3] {
                let equal = feedWithinWindow(body, body, chunks: chunks, window: window, seed: seed)
                #expect(equal.lockStep && equal.bodiesEqual, "window \(window)")
                for offset in [0, 96, 97, 12_345, 99_999] {
                    var other = body
                    other[offset] ^= 1
                    let c = feedWithinWindow(body, other, chunks: chunks, window: window, seed: seed)
                    #expect(c.firstDifferenceOffset == UInt64(offset), "window \(window) offset \(offset) seed \(seed)")
                    let d = feedWithinWindow(other, body, chunks: chunks, window: window, seed: seed &+ 7)
                    #expect(d.firstDifferenceOffset == UInt64(offset), "reversed: window \(window) offset \(offset)")
                }
                let prefix = feedWithinWindow(body, Array(body[0..<77_777]), chunks: chunks, window: window, seed: seed)
                #expect(prefix.firstDifferenceOffset == 77_777)
            }
        }
    }

    @Test("after lock-step is lost, digests cover the rest from the first byte not compared")
    func digestsAfterLockStepLost() {
        var c = StreamComparator(window: 1000)
        body.withUnsafeBytes { a in
            c.feed(side: 0, UnsafeRawBufferPointer(rebasing: a[0..<600]))
            c.feed(side: 1, UnsafeRawBufferPointer(rebasing: a[0..<300]))   // 300 compared
            c.feed(side: 0, UnsafeRawBufferPointer(rebasing: a[600..<2000]))  // lead 1700 > window
        }
        #expect(!c.lockStep && c.digestStart == 300)
        var changed = body
        changed[50_000] ^= 4
        var d = c
        body.withUnsafeBytes { c.feed(side: 0, UnsafeRawBufferPointer(rebasing: $0[2000...])); c.feed(side: 1, UnsafeRawBufferPointer(rebasing: $0[300...])) }
        changed.withUnsafeBytes { d.feed(side: 0, UnsafeRawBufferPointer(rebasing: $0[2000...])) }
        body.withUnsafeBytes { d.feed(side: 1, UnsafeRawBufferPointer(rebasing: $0[300...])) }
        #expect(c.bodiesEqual && c.firstDifferenceOffset == nil)
        #expect(!d.bodiesEqual && d.firstDifferenceOffset == nil)
        #expect(d.lengths == (100_000, 100_000))
    }

    @Test("the lagging side that ends inside the leader's pending bytes is a prefix")
    func laggerEndsInsidePending() {
        var c = StreamComparator(window: 4096)
        body.withUnsafeBytes { a in
            c.feed(side: 1, UnsafeRawBufferPointer(rebasing: a[0..<3000]))
            c.feed(side: 0, UnsafeRawBufferPointer(rebasing: a[0..<1234]))
        }
        c.end(side: 0)
        #expect(c.firstDifferenceOffset == 1234)
        c.end(side: 1)
        #expect(c.firstDifferenceOffset == 1234 && !c.bodiesEqual)
    }

    @Test("the mismatch locator agrees with a byte loop")
    func mismatchLocator() {
        let a = Array(body[0..<300])
        for length in [0, 1, 7, 8, 9, 64, 300] {
            for position in 0..<length {
                var b = a
                b[position] &+= 1
                let found = a.withUnsafeBytes { pa in b.withUnsafeBytes { pb in
                    StreamComparator.firstMismatch(UnsafeRawBufferPointer(rebasing: pa[0..<length]), UnsafeRawBufferPointer(rebasing: pb[0..<length]))
                } }
                #expect(found == position)
            }
            let none = a.withUnsafeBytes { pa in StreamComparator.firstMismatch(UnsafeRawBufferPointer(rebasing: pa[0..<length]), UnsafeRawBufferPointer(rebasing: pa[0..<length])) }
            #expect(none == nil)
        }
    }

    @Test("pairs of equal length compare directly when level, and keep the lead when not", arguments: [0, 5, 4095, 4096, 60_000, 99_999])
    func pairs(at offset: Int) {
        var other = body
        other[offset] ^= 0x11
        for (lead, piece) in [(0, 65_536), (0, 1000), (300, 4096), (1000, 777)] {
            var c = StreamComparator(window: 1024)
            body.withUnsafeBytes { a in
                other.withUnsafeBytes { b in
                    // Side 1 first runs `lead` bytes ahead, then both advance in pairs.
                    c.feed(side: 1, UnsafeRawBufferPointer(rebasing: b[0..<lead]))
                    var i = 0
                    while i < body.count - lead {
                        let n = min(piece, body.count - lead - i)
                        c.feedPair(side: 1, UnsafeRawBufferPointer(rebasing: b[lead + i..<lead + i + n]),
                                   other: UnsafeRawBufferPointer(rebasing: a[i..<i + n]))
                        i += n
                    }
                    c.feed(side: 0, UnsafeRawBufferPointer(rebasing: a[(body.count - lead)...]))
                }
            }
            c.end(side: 0)
            c.end(side: 1)
            #expect(c.lockStep, "lead \(lead) piece \(piece)")
            #expect(c.firstDifferenceOffset == UInt64(offset), "lead \(lead) piece \(piece)")
            #expect(c.lengths == (100_000, 100_000))
        }
        var same = StreamComparator(window: 16)
        body.withUnsafeBytes { same.feedPair(side: 0, $0, other: $0) }
        #expect(same.bodiesEqual && same.lockStep)
    }

    @Test("once a difference is known only lengths count; a comparison given up is neither equal nor divergent by body")
    func lengthsOnlyAndGivenUp() {
        var c = StreamComparator(window: 64)
        #expect(c.needsBytes)
        var other = body
        other[10] ^= 1
        body.withUnsafeBytes { c.feed(side: 0, UnsafeRawBufferPointer(rebasing: $0[0..<32])) }
        other.withUnsafeBytes { c.feed(side: 1, UnsafeRawBufferPointer(rebasing: $0[0..<32])) }
        #expect(!c.needsBytes && c.firstDifferenceOffset == 10)
        c.feedLength(side: 0, count: 1000)
        c.feedLength(side: 1, count: 968)
        #expect(c.lengths == (1032, 1000))

        var g = StreamComparator(window: 64)
        body.withUnsafeBytes { g.feed(side: 0, UnsafeRawBufferPointer(rebasing: $0[0..<40])) }
        g.giveUp("the comparator fell behind")
        #expect(!g.needsBytes)
        g.feedLength(side: 0, count: 60)
        body.withUnsafeBytes { g.feed(side: 1, UnsafeRawBufferPointer(rebasing: $0[0..<100])) }
        g.end(side: 0)
        g.end(side: 1)
        #expect(g.lengths == (100, 100))
        #expect(!g.bodiesEqual && g.firstDifferenceOffset == nil)
        var ok = ResponseSummary(); ok.status = 200; ok.complete = true
        let record = ComparisonRecord(method: "GET", target: "/", old: ok, new: ok, servedBy: "new", comparator: g,
                                      unixTime: 0, clusters: ("a", "b"))
        #expect(record.bodyNotCompared == "the comparator fell behind")
        #expect(!record.divergent, "equal lengths, bodies not compared")
        g.feedLength(side: 1, count: 1)
        let longer = ComparisonRecord(method: "GET", target: "/", old: ok, new: ok, servedBy: "new", comparator: g,
                                      unixTime: 0, clusters: ("a", "b"))
        #expect(longer.divergent, "different lengths are a difference even uncompared")
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
        let same = ComparisonRecord(method: "GET", target: "/", old: new, new: new, servedBy: "new", comparator: StreamComparator(),
                                    unixTime: 0, clusters: ("a", "b"))
        #expect(same.headerDifferences.isEmpty)
        var reordered = new; reordered.headers.reverse()
        let order = ComparisonRecord(method: "GET", target: "/", old: new, new: reordered, servedBy: "new", comparator: StreamComparator(),
                                     unixTime: 0, clusters: ("a", "b"))
        #expect(order.headerDifferences.isEmpty)
    }
}
