import Testing
@testable import Routing

struct CookieCase: CustomTestStringConvertible, Sendable {
    var header: String
    var expected: String?
    var testDescription: String { "Cookie: \(header)" }
}

let cookieCases: [CookieCase] = [
    CookieCase(header: "dynsoftup=abc", expected: "abc"),
    CookieCase(header: "a=1; dynsoftup=abc; b=2", expected: "abc"),
    CookieCase(header: "a=1;dynsoftup=abc", expected: "abc"),
    CookieCase(header: "  dynsoftup = abc  ", expected: "abc"),
    CookieCase(header: "\tdynsoftup=abc\t", expected: "abc"),
    CookieCase(header: "dynsoftup=\"abc\"", expected: "abc"),
    CookieCase(header: "dynsoftup=\"", expected: "\""),
    CookieCase(header: "xdynsoftup=abc", expected: nil),
    CookieCase(header: "DYNSOFTUP=abc", expected: nil),
    CookieCase(header: "dynsoftup", expected: nil),
    CookieCase(header: "dynsoftup=", expected: ""),
    CookieCase(header: "dynsoftup=a=b", expected: "a=b"),
    CookieCase(header: "dynsoftup=first; dynsoftup=second", expected: "first"),
    CookieCase(header: ";;; dynsoftup=x;", expected: "x"),
    CookieCase(header: "", expected: nil),
    CookieCase(header: "a=\"x;y\"; dynsoftup=z", expected: "z"),
    CookieCase(header: "garbage; ==; dynsoftup=ok", expected: "ok"),
]

@Test(arguments: cookieCases)
func cookieParsing(_ c: CookieCase) {
    #expect(cookieValue(named: "dynsoftup", inCookieHeader: c.header) == c.expected)
    #expect(cookieValue(named: "dynsoftup", inCookieBytes: Array(c.header.utf8)) == c.expected)
}

struct DateCase: CustomTestStringConvertible, Sendable {
    var unix: Int64
    var http: String
    var iso: String
    var testDescription: String { String(unix) }
}

let dateCases: [DateCase] = [
    DateCase(unix: 0, http: "Thu, 01 Jan 1970 00:00:00 GMT", iso: "1970-01-01T00:00:00Z"),
    DateCase(unix: 784_111_777, http: "Sun, 06 Nov 1994 08:49:37 GMT", iso: "1994-11-06T08:49:37Z"),
    DateCase(unix: 951_782_400, http: "Tue, 29 Feb 2000 00:00:00 GMT", iso: "2000-02-29T00:00:00Z"),
    DateCase(unix: 951_868_799, http: "Tue, 29 Feb 2000 23:59:59 GMT", iso: "2000-02-29T23:59:59Z"),
    DateCase(unix: 1_078_012_800, http: "Sun, 29 Feb 2004 00:00:00 GMT", iso: "2004-02-29T00:00:00Z"),
    DateCase(unix: 1_709_164_800, http: "Thu, 29 Feb 2024 00:00:00 GMT", iso: "2024-02-29T00:00:00Z"),
    DateCase(unix: 1_700_000_000, http: "Tue, 14 Nov 2023 22:13:20 GMT", iso: "2023-11-14T22:13:20Z"),
    DateCase(unix: 2_147_483_647, http: "Tue, 19 Jan 2038 03:14:07 GMT", iso: "2038-01-19T03:14:07Z"),
    DateCase(unix: 4_107_542_400, http: "Mon, 01 Mar 2100 00:00:00 GMT", iso: "2100-03-01T00:00:00Z"),
    DateCase(unix: -1, http: "Wed, 31 Dec 1969 23:59:59 GMT", iso: "1969-12-31T23:59:59Z"),
    DateCase(unix: 253_402_300_799, http: "Fri, 31 Dec 9999 23:59:59 GMT", iso: "9999-12-31T23:59:59Z"),
]

@Test(arguments: dateCases)
func dates(_ c: DateCase) {
    #expect(httpDate(unixSeconds: c.unix) == c.http)
    #expect(iso8601(unixSeconds: c.unix) == c.iso)
}

/// Expected values computed independently (FNV-1a 64, mod 100).
let bucketCases: [(String, Int)] = [
    ("", 37), ("a", 96), ("client-1", 4), ("0123456789abcdef", 77), ("deadbeefcafebabe", 52),
    ("transition", 50), ("ffffffffffffffff", 1), ("00000000000000ff", 93),
    ("c0", 46), ("c2", 24), ("c4", 90), ("c5", 1),
]

@Test(arguments: bucketCases)
func bucketsAreStable(_ id: String, _ bucket: Int) {
    #expect(gradualBucket(id) == bucket)
}

@Test func bucketsSpreadEvenly() {
    var rng = FixedRNG(0)
    var counts = [Int](repeating: 0, count: 100)
    var state: UInt64 = 42
    for _ in 0..<10_000 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        rng.values = [state]
        rng.index = 0
        counts[gradualBucket(newTransitionID(using: &rng))] += 1
    }
    // 100 expected per bucket; a fair hash stays well inside 50...150.
    #expect(counts.allSatisfy { (50...150).contains($0) })
}
