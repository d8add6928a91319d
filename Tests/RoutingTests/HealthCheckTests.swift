import Testing
@testable import Routing

// MARK: expectStatus

struct ExpectationCase: CustomTestStringConvertible, Sendable {
    var text: String
    /// nil: refused.
    var range: ClosedRange<Int>?
    /// How `description` writes it back.
    var canonical: String?
    var testDescription: String { "\"\(text)\" → \(range.map { "\($0)" } ?? "refused")" }
}

let expectationCases: [ExpectationCase] = [
    ExpectationCase(text: "2xx", range: 200...299, canonical: "2xx"),
    ExpectationCase(text: "3XX", range: 300...399, canonical: "3xx"),
    ExpectationCase(text: "1xx", range: 100...199, canonical: "1xx"),
    ExpectationCase(text: "5xx", range: 500...599, canonical: "5xx"),
    ExpectationCase(text: "204", range: 204...204, canonical: "204"),
    ExpectationCase(text: "200-399", range: 200...399, canonical: "200-399"),
    ExpectationCase(text: "200-299", range: 200...299, canonical: "2xx"),
    ExpectationCase(text: "418-418", range: 418...418, canonical: "418"),
    ExpectationCase(text: "0xx", range: nil, canonical: nil),
    ExpectationCase(text: "6xx", range: nil, canonical: nil),
    ExpectationCase(text: "2x", range: nil, canonical: nil),
    ExpectationCase(text: "2xxx", range: nil, canonical: nil),
    ExpectationCase(text: "99", range: nil, canonical: nil),
    ExpectationCase(text: "600", range: nil, canonical: nil),
    ExpectationCase(text: "399-200", range: nil, canonical: nil),
    ExpectationCase(text: "200-", range: nil, canonical: nil),
    ExpectationCase(text: "-200", range: nil, canonical: nil),
    ExpectationCase(text: "200 - 399", range: nil, canonical: nil),
    ExpectationCase(text: "", range: nil, canonical: nil),
    ExpectationCase(text: "ok", range: nil, canonical: nil),
]

@Test(arguments: expectationCases)
func statusExpectationParsing(_ c: ExpectationCase) {
    let parsed = StatusExpectation(parsing: c.text)
    #expect(parsed.map { $0.low...$0.high } == c.range)
    #expect(parsed?.description == c.canonical)
    if let parsed {
        // The canonical spelling parses back to the same range.
        #expect(StatusExpectation(parsing: parsed.description) == parsed)
        #expect(parsed.matches(parsed.low) && parsed.matches(parsed.high))
        #expect(!parsed.matches(parsed.low - 1) && !parsed.matches(parsed.high + 1))
    }
}

struct OutcomeCase: CustomTestStringConvertible, Sendable {
    var outcome: ProbeOutcome
    var expect: String
    var passes: Bool
    var testDescription: String { "\(outcome.summary) vs \(expect)" }
}

let outcomeCases: [OutcomeCase] = [
    OutcomeCase(outcome: .status(200), expect: "2xx", passes: true),
    OutcomeCase(outcome: .status(299), expect: "2xx", passes: true),
    OutcomeCase(outcome: .status(301), expect: "2xx", passes: false),
    OutcomeCase(outcome: .status(503), expect: "2xx", passes: false),
    OutcomeCase(outcome: .status(301), expect: "200-399", passes: true),
    OutcomeCase(outcome: .status(204), expect: "204", passes: true),
    OutcomeCase(outcome: .status(200), expect: "204", passes: false),
    OutcomeCase(outcome: .status(503), expect: "5xx", passes: true),
    OutcomeCase(outcome: .failed("timeout after 1s"), expect: "2xx", passes: false),
    OutcomeCase(outcome: .failed("connect: Connection refused (errno 111)"), expect: "1xx", passes: false),
]

@Test(arguments: outcomeCases)
func probeOutcomePasses(_ c: OutcomeCase) throws {
    let expectation = try #require(StatusExpectation(parsing: c.expect))
    #expect(c.outcome.passes(expectation) == c.passes)
}

// MARK: Thresholds

struct TrackerCase: CustomTestStringConvertible, Sendable {
    var healthy: Int
    var unhealthy: Int
    /// Probe results in order: "+" passed, "-" failed.
    var probes: String
    /// Status after each probe: "?" unknown, "U" up, "D" down.
    var statuses: String
    /// Transitions reported, in order.
    var transitions: [ProbeStatus]
    var testDescription: String { "healthy \(healthy), unhealthy \(unhealthy): \(probes)" }
}

let trackerCases: [TrackerCase] = [
    // Defaults: two passes make it up, three failures down.
    TrackerCase(healthy: 2, unhealthy: 3, probes: "++", statuses: "?U", transitions: [.up]),
    TrackerCase(healthy: 2, unhealthy: 3, probes: "+-+", statuses: "???", transitions: []),
    TrackerCase(healthy: 2, unhealthy: 3, probes: "---", statuses: "??D", transitions: [.down]),
    TrackerCase(healthy: 2, unhealthy: 3, probes: "++--+--", statuses: "?UUUUUU", transitions: [.up]),
    TrackerCase(healthy: 2, unhealthy: 3, probes: "++---", statuses: "?UUUD", transitions: [.up, .down]),
    TrackerCase(healthy: 2, unhealthy: 3, probes: "++---+-++", statuses: "?UUUDDDDU", transitions: [.up, .down, .up]),
    // A pass in between restarts the failure count, and the other way round.
    TrackerCase(healthy: 2, unhealthy: 3, probes: "++--+---", statuses: "?UUUUUUD", transitions: [.up, .down]),
    TrackerCase(healthy: 3, unhealthy: 1, probes: "-++-+++", statuses: "DDDDDDU", transitions: [.down, .up]),
    // Thresholds of 1: every probe decides.
    TrackerCase(healthy: 1, unhealthy: 1, probes: "+-+-", statuses: "UDUD", transitions: [.up, .down, .up, .down]),
    // Repeated passes while up report nothing more.
    TrackerCase(healthy: 1, unhealthy: 2, probes: "++++", statuses: "UUUU", transitions: [.up]),
]

@Test(arguments: trackerCases)
func probeTrackerThresholds(_ c: TrackerCase) {
    var tracker = ProbeTracker()
    var statuses = ""
    var transitions: [ProbeStatus] = []
    for probe in c.probes {
        if let change = tracker.record(passed: probe == "+", healthyThreshold: c.healthy, unhealthyThreshold: c.unhealthy) {
            transitions.append(change)
        }
        statuses += tracker.status == .up ? "U" : tracker.status == .down ? "D" : "?"
    }
    #expect(statuses == c.statuses)
    #expect(transitions == c.transitions)
}

// MARK: Readiness gate

struct GateCase: CustomTestStringConvertible, Sendable {
    var up: Int
    var minHealthy: Int
    var elapsed: Double
    var timeout: Double
    var verdict: ReadinessVerdict
    var testDescription: String { "\(up)/\(minHealthy) up after \(elapsed)s of \(timeout)s → \(verdict)" }
}

let gateCases: [GateCase] = [
    GateCase(up: 0, minHealthy: 1, elapsed: 0, timeout: 120, verdict: .pending),
    GateCase(up: 1, minHealthy: 1, elapsed: 0, timeout: 120, verdict: .ready),
    GateCase(up: 1, minHealthy: 2, elapsed: 5, timeout: 120, verdict: .pending),
    GateCase(up: 3, minHealthy: 2, elapsed: 5, timeout: 120, verdict: .ready),
    GateCase(up: 0, minHealthy: 1, elapsed: 119.9, timeout: 120, verdict: .pending),
    GateCase(up: 0, minHealthy: 1, elapsed: 120, timeout: 120, verdict: .notReady),
    GateCase(up: 1, minHealthy: 2, elapsed: 300, timeout: 120, verdict: .notReady),
    // Ready wins a tie with the timeout.
    GateCase(up: 2, minHealthy: 2, elapsed: 500, timeout: 120, verdict: .ready),
    GateCase(up: 0, minHealthy: 1, elapsed: 0.5, timeout: 0.5, verdict: .notReady),
]

@Test(arguments: gateCases)
func readinessGate(_ c: GateCase) {
    #expect(readiness(up: c.up, minHealthy: c.minHealthy, elapsedSeconds: c.elapsed, readyTimeoutSeconds: c.timeout) == c.verdict)
}

// MARK: The shared word

let three = [ServerAddress(hostname: "127.0.0.1", port: 1), ServerAddress(hostname: "127.0.0.1", port: 2),
             ServerAddress(hostname: "::1", port: 3)]

@Test func clusterHealthWordFollowsProbesAndDrains() {
    let check = HealthCheckSpec(healthyThreshold: 1, unhealthyThreshold: 2)
    let health = ClusterHealth(servers: three, check: check, pending: true, pendingSince: 0)
    var word = health.word
    #expect(ClusterHealth.isPending(word))
    #expect((0..<3).allSatisfy { !health.isExcluded($0, word: word) })
    #expect(health.backends.map(\.status) == ["unknown", "unknown", "unknown"])

    #expect(health.record(.status(200), server: 0) == .up)
    #expect(health.record(.status(500), server: 1) == nil)
    #expect(health.record(.failed("timeout"), server: 1) == .down)
    #expect(health.upCount == 1)
    #expect(health.markReady())
    #expect(!health.markReady())
    word = health.word
    #expect(!ClusterHealth.isPending(word))
    #expect(!health.isExcluded(0, word: word) && health.isExcluded(1, word: word) && !health.isExcluded(2, word: word))

    #expect(health.setDrained(true, server: 2))
    #expect(!health.setDrained(true, server: 2))
    word = health.word
    #expect(health.isExcluded(2, word: word))
    #expect(health.backends.map(\.status) == ["up", "down", "drained"])
    #expect(!health.allDown)
    _ = health.record(.status(503), server: 0)
    #expect(health.record(.status(503), server: 0) == .down)
    // Every backend that is not drained is down.
    #expect(health.allDown)
    #expect(health.upCount == 0)
    #expect(health.index(of: ServerAddress(hostname: "::1", port: 3)) == 2)
    #expect(health.index(of: ServerAddress(hostname: "127.0.0.1", port: 9)) == nil)
}

@Test func clusterHealthCarriesOverDrainsAndVerdicts() {
    let check = HealthCheckSpec(healthyThreshold: 1)
    let old = ClusterHealth(servers: three, check: check, pending: false, pendingSince: 0)
    _ = old.record(.status(200), server: 0)
    old.setDrained(true, server: 1)
    // Same check: verdicts and drains of the servers still listed are kept.
    let same = ClusterHealth(servers: [three[1], three[0]], check: check, pending: false, pendingSince: 0, previous: old)
    #expect(same.backends.map(\.status) == ["drained", "up"])
    // Another check: drains kept, verdicts start over.
    let other = ClusterHealth(servers: three, check: HealthCheckSpec(path: "/ready"), pending: true, pendingSince: 0, previous: old)
    #expect(other.backends.map(\.status) == ["unknown", "drained", "unknown"])
    #expect(ClusterHealth.isPending(other.word))
}

@Test func clusterHealthBeyondTheFirstWord() {
    let servers = (1...200).map { ServerAddress(hostname: "127.0.0.1", port: $0) }
    let health = ClusterHealth(servers: servers, check: nil, pending: false, pendingSince: 0)
    for i in [0, 62, 63, 64, 126, 127, 199] { health.setDrained(true, server: i) }
    let word = health.word
    let excluded = (0..<200).filter { health.isExcluded($0, word: word) }
    #expect(excluded == [0, 62, 63, 64, 126, 127, 199])
    #expect(!ClusterHealth.isPending(word))
    // Without a health check, probes are ignored.
    #expect(health.record(.status(500), server: 5) == nil)
}
