import Testing
@testable import Routing

struct VersionCase: CustomTestStringConvertible, Sendable {
    var a: String
    var b: String
    /// -1: a < b, 0: equal, 1: a > b.
    var order: Int
    var testDescription: String { "\"\(a)\" vs \"\(b)\"" }
}

let versionCases: [VersionCase] = [
    VersionCase(a: "1.10", b: "1.9", order: 1),
    VersionCase(a: "2.0", b: "1.99", order: 1),
    VersionCase(a: "1.0-beta", b: "1.0", order: -1),
    VersionCase(a: "1.0-beta", b: "1.0-alpha", order: 1),
    VersionCase(a: "1.10-beta", b: "1.9", order: 1),
    VersionCase(a: "1.0", b: "1.0.0", order: 0),
    VersionCase(a: "1", b: "1.0.0.0", order: 0),
    VersionCase(a: "1.0.1", b: "1.0", order: 1),
    VersionCase(a: "", b: "0.0", order: 0),
    VersionCase(a: "", b: "0.0.1", order: -1),
    VersionCase(a: "1.01", b: "1.1", order: 0),
    VersionCase(a: "10", b: "9", order: 1),
    VersionCase(a: "1.x", b: "1.0", order: -1),
    VersionCase(a: "1.0.beta", b: "1.0", order: -1),
    VersionCase(a: "rc", b: "beta", order: 1),
    VersionCase(a: "1..2", b: "1.0.2", order: 0),
    VersionCase(a: "99999999999999999999999", b: "99999999999999999999998", order: 1),
    VersionCase(a: "100000000000000000000", b: "99999999999999999999", order: 1),
    VersionCase(a: "1.2.3", b: "1.2.3", order: 0),
]

@Test(arguments: versionCases)
func versionOrder(_ c: VersionCase) {
    let a = Version(c.a)
    let b = Version(c.b)
    #expect((a < b) == (c.order < 0))
    #expect((a > b) == (c.order > 0))
    #expect((a == b) == (c.order == 0))
    // Antisymmetric.
    #expect((b < a) == (c.order > 0))
}

@Test func emptyVersionReadsAsZero() {
    #expect(Version("").description == "0.0")
    #expect(Version("1.2").description == "1.2")
}

struct Item: Sendable {
    var name: String
    var version: String
    var seq: UInt64
}

struct OrderCase: CustomTestStringConvertible, Sendable {
    var name: String
    var items: [Item]
    var expected: [String]
    var testDescription: String { name }
}

let orderCases: [OrderCase] = [
    OrderCase(name: "numeric parts", items: [
        Item(name: "a", version: "1.9", seq: 1), Item(name: "b", version: "1.10", seq: 2),
        Item(name: "c", version: "1.2", seq: 3),
    ], expected: ["b", "a", "c"]),
    OrderCase(name: "tie broken by later addition", items: [
        Item(name: "first", version: "1.0", seq: 1), Item(name: "second", version: "1.0.0", seq: 2),
        Item(name: "old", version: "0.9", seq: 3),
    ], expected: ["second", "first", "old"]),
    OrderCase(name: "missing version is oldest", items: [
        Item(name: "none", version: "", seq: 9), Item(name: "v", version: "0.1", seq: 1),
    ], expected: ["v", "none"]),
    OrderCase(name: "pre-release below release", items: [
        Item(name: "beta", version: "2.0-beta", seq: 2), Item(name: "rel", version: "2.0", seq: 1),
        Item(name: "prev", version: "1.99", seq: 3),
    ], expected: ["rel", "beta", "prev"]),
    OrderCase(name: "empty input", items: [], expected: []),
]

@Test(arguments: orderCases)
func latestFirst(_ c: OrderCase) {
    let ordered = orderLatestFirst(c.items, version: { $0.version }, sequence: { $0.seq })
    #expect(ordered.map(\.name) == c.expected)
}
