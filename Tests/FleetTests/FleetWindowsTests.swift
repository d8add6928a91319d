import Testing
@testable import Fleet

/// The compact windows record each instance publishes, and the leader's sums.
@Suite struct FleetWindowsTests {
    @Test func recordsRoundTripWithOnlyNonEmptyBuckets() {
        var latency = Array(repeating: 0, count: 8)
        latency[2] = 5; latency[7] = 1
        let totals = ["new": ExchangeTotals(requests: 6, errors: 1, latency: latency, compared: 3, divergent: 1),
                      "old": ExchangeTotals(requests: 0, errors: 0, latency: Array(repeating: 0, count: 8))]
        let bytes = FleetWindows.encode(totals)
        #expect(String(decoding: bytes, as: UTF8.self).contains("\"l\":{\"2\":5,\"7\":1}"))
        #expect(FleetWindows.decode(bytes, buckets: 8) == totals)
    }

    @Test func malformedRecordsReadAsEmptyAndBadBucketsAreDropped() {
        #expect(FleetWindows.decode(Array("nope".utf8), buckets: 4).isEmpty)
        let odd = FleetWindows.decode(Array(#"{"clusters":{"x":{"n":2,"e":-1,"l":{"1":1,"9":4,"z":1}}}}"#.utf8), buckets: 4)
        #expect(odd["x"] == ExchangeTotals(requests: 2, errors: 0, latency: [0, 1, 0, 0]))
    }

    @Test func theFleetsTotalsAreTheSumOfEveryInstance() {
        let a = ["v2": ExchangeTotals(requests: 10, errors: 0, latency: [1, 2])]
        let b = ["v2": ExchangeTotals(requests: 5, errors: 5, latency: [0, 1, 3]), "v1": ExchangeTotals(requests: 1)]
        let sum = FleetWindows.sum([a, b])
        #expect(sum["v2"] == ExchangeTotals(requests: 15, errors: 5, latency: [1, 3, 3]))
        #expect(sum["v1"]?.requests == 1)
    }
}
