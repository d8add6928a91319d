import Rollout
import Testing

/// A window: `n` new requests with `e` errors and latency `nl` µs, `o` old requests with
/// latency `ol` µs, `c` compared with `d` divergent.
func window(new n: Int = 100, errors e: Int = 0, newLatency nl: Int? = 1_000,
            old o: Int = 100, oldLatency ol: Int? = 1_000, compared c: Int = 0, divergent d: Int = 0,
            total: Int = 0) -> WindowStats {
    WindowStats(new: VersionWindow(requests: n, errors: e, latencyMicros: nl),
                old: VersionWindow(requests: o, errors: 0, latencyMicros: ol),
                compared: c, divergent: d, newTotal: total)
}

let allGates = Analysis(maxErrorRatio: 0.05, maxLatencyRatio: 1.5, maxDivergenceRatio: 0.1, windowSeconds: 30, minRequests: 20,
                        latencyFloorMillis: 0)

struct GateCase: CustomTestStringConvertible, Sendable {
    var name: String
    var analysis: Analysis = allGates
    var window: WindowStats
    var judgement: Judgement
    /// Expected values of the applied gates, in the order error, latency, divergence.
    var values: [Double?]
    var testDescription: String { name }
}

func failure(_ gate: Gate, _ value: Double, _ limit: Double, new: Int = 100, old: Int = 100) -> Judgement {
    .failed(GateFailure(gate: gate, value: value, limit: limit, newRequests: new, oldRequests: old))
}

let gateCases: [GateCase] = [
    GateCase(name: "every gate within its limit", window: window(errors: 1, newLatency: 1_200, compared: 50, divergent: 2),
             judgement: .passed, values: [0.01, 1.2, 0.04]),
    GateCase(name: "values at their limits pass", window: window(errors: 5, newLatency: 1_500, compared: 50, divergent: 5),
             judgement: .passed, values: [0.05, 1.5, 0.1]),
    GateCase(name: "error ratio above its limit fails", window: window(errors: 6),
             judgement: failure(.errorRatio, 0.06, 0.05), values: [0.06, 1, nil]),
    GateCase(name: "latency ratio above its limit fails", window: window(newLatency: 1_600),
             judgement: failure(.latencyRatio, 1.6, 1.5), values: [0, 1.6, nil]),
    GateCase(name: "divergence ratio above its limit fails", window: window(compared: 10, divergent: 2),
             judgement: failure(.divergenceRatio, 0.2, 0.1), values: [0, 1, 0.2]),
    GateCase(name: "several failing: the error gate is reported first", window: window(errors: 50, newLatency: 9_000, compared: 10, divergent: 9),
             judgement: failure(.errorRatio, 0.5, 0.05), values: [0.5, 9, 0.9]),
    GateCase(name: "latency and divergence failing: latency reported", window: window(newLatency: 9_000, compared: 10, divergent: 9),
             judgement: failure(.latencyRatio, 9, 1.5), values: [0, 9, 0.9]),
    GateCase(name: "too few new requests: not judged, however bad", window: window(new: 19, errors: 19, newLatency: 99_000, compared: 19, divergent: 19),
             judgement: .tooFewRequests, values: [1, 99, 1]),
    GateCase(name: "exactly minRequests new requests are judged", window: window(new: 20, errors: 2, old: 0),
             judgement: failure(.errorRatio, 0.1, 0.05, new: 20, old: 0), values: [0.1, 1, nil]),
    GateCase(name: "old requests do not count towards minRequests", window: window(new: 5, errors: 5, old: 1_000),
             judgement: .tooFewRequests, values: [1, 1, nil]),
    GateCase(name: "latency skipped without an old sample", window: window(newLatency: 50_000, oldLatency: nil),
             judgement: .passed, values: [0, nil, nil]),
    GateCase(name: "latency skipped without a new sample", window: window(newLatency: nil),
             judgement: .passed, values: [0, nil, nil]),
    GateCase(name: "latency skipped when the old percentile is 0", window: window(newLatency: 50, oldLatency: 0),
             judgement: .passed, values: [0, nil, nil]),
    GateCase(name: "divergence skipped when nothing was compared", window: window(compared: 0, divergent: 0),
             judgement: .passed, values: [0, 1, nil]),
    GateCase(name: "a gate without a limit is not applied", analysis: Analysis(maxDivergenceRatio: 0.1, minRequests: 20),
             window: window(errors: 100, newLatency: 90_000), judgement: .passed, values: [nil]),
    GateCase(name: "minRequests 0 with no requests: judged, nothing measurable, passes",
             analysis: Analysis(maxErrorRatio: 0, maxLatencyRatio: 1, minRequests: 0, latencyFloorMillis: 0),
             window: window(new: 0, newLatency: nil, old: 0, oldLatency: nil), judgement: .passed, values: [nil, nil]),
    GateCase(name: "latency floor: fast answers count as 5 ms, so their jitter passes",
             analysis: Analysis(maxLatencyRatio: 1.5, minRequests: 20),
             window: window(newLatency: 2_400, oldLatency: 800), judgement: .passed, values: [1]),
    GateCase(name: "latency floor: a new version 50 ms slower still fails",
             analysis: Analysis(maxLatencyRatio: 1.5, minRequests: 20),
             window: window(newLatency: 51_000, oldLatency: 1_000), judgement: failure(.latencyRatio, 10.2, 1.5), values: [10.2]),
    GateCase(name: "a limit of 0 fails on one error", analysis: Analysis(maxErrorRatio: 0, minRequests: 1),
             window: window(errors: 1), judgement: failure(.errorRatio, 0.01, 0), values: [0.01]),
]

@Test(arguments: gateCases)
func gates(_ c: GateCase) {
    #expect(c.analysis.judge(c.window) == c.judgement)
    #expect(c.analysis.readings(c.window).map(\.value) == c.values)
    #expect(c.analysis.readings(c.window).map(\.limit) == c.analysis.limits.map(\.limit))
}

@Test func gateFailureDescribesItsFigures() {
    let f = GateFailure(gate: .latencyRatio, value: 1.6666666, limit: 1.5, newRequests: 200, oldRequests: 1_800)
    #expect(f.description == "latencyRatio 1.6667 above limit 1.5 (requests new 200, old 1800)")
    #expect(GateFailure(gate: .errorRatio, value: 0.25, limit: 0, newRequests: 4, oldRequests: 0).description
        == "errorRatio 0.25 above limit 0 (requests new 4, old 0)")
}

@Test func stepModePercentAndName() {
    #expect(StepMode.concurrent(serve: .old).percent == 0)
    #expect(StepMode.concurrent(serve: .new).percent == 100)
    #expect(StepMode.gradual(percent: 12.5).percent == 12.5)
    #expect(StepMode.instant.percent == 100)
    #expect([StepMode.concurrent(serve: .old), .gradual(percent: 1), .instant].map(\.name) == ["CONCURRENT", "GRADUAL", "INSTANT"])
}
