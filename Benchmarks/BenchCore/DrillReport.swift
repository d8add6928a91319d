import Foundation

/// One drill scenario: which new version is rolled out over v1.
public enum DrillScenario: String, CaseIterable, Sendable {
    /// v2 answers exactly like v1: the plan must complete.
    case good
    /// v2 answers 503 to 5 % of requests: the error gate must roll it back.
    case errors
    /// v2 answers 50 ms later: the latency gate must roll it back.
    case slow
    /// v2 answers a different 200 body for one path in ten: the divergence gate must roll it back.
    case divergent

    /// The backend kind of its new version.
    var kind: DrillBackendKind {
        switch self {
        case .good: .good
        case .errors: .errors
        case .slow: .slow
        case .divergent: .divergent
        }
    }

    /// What the plan must do with it: complete for the good version, roll back every other.
    public var expectsCompletion: Bool { self == .good }

    /// The expected outcome's name, as printed.
    public var expected: String { expectsCompletion ? "completed" : "rolledBack" }
}

/// A plan: an `upgradeTransition` object as sent, and what the drill reads from it.
public struct DrillPlan: Equatable, Sendable {
    /// The JSON object, as given (sent verbatim inside the cluster).
    public var text: String
    /// Sum of the steps' `holdSeconds`.
    public var totalHoldSeconds: Double
    /// Number of steps (0 for a plan without `steps`).
    public var stepCount: Int
    /// Whether the first step is CONCURRENT (then no client should see a bad response).
    public var startsWithConcurrent: Bool

    /// CONCURRENT serving the old version for 20 s, GRADUAL 10 % and 50 % for 20 s each, then
    /// INSTANT; gates on errors, p99 latency and divergence over 10 s windows.
    public static let defaultText = """
    {"steps":[{"mode":"CONCURRENT","serve":"old","holdSeconds":20},{"mode":"GRADUAL","percent":10,"holdSeconds":20},\
    {"mode":"GRADUAL","percent":50,"holdSeconds":20},{"mode":"INSTANT"}],\
    "analysis":{"maxErrorRatio":0.01,"maxLatencyRatio":1.5,"latencyPercentile":99,"maxDivergenceRatio":0.01,\
    "windowSeconds":10,"minRequests":50}}
    """

    /// The default plan.
    public static var standard: DrillPlan { try! DrillPlan(text: defaultText) }

    /// Reads a plan; throws when the text is not a JSON object or its `steps` are not a list of objects.
    public init(text: String) throws(BenchUsageError) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let object = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)), let root = object as? [String: Any] else {
            throw BenchUsageError("the plan is not a JSON object")
        }
        self.text = trimmed
        var hold = 0.0
        var steps: [[String: Any]] = []
        if let raw = root["steps"] {
            guard let list = raw as? [Any], let objects = list as? [[String: Any]] else {
                throw BenchUsageError("the plan's steps must be a list of objects")
            }
            steps = objects
        }
        for step in steps {
            if let h = step["holdSeconds"] as? NSNumber { hold += max(0, h.doubleValue) }
        }
        totalHoldSeconds = hold
        stepCount = steps.count
        startsWithConcurrent = (steps.first?["mode"] as? String)?.uppercased() == "CONCURRENT"
    }
}

/// A cluster's rollout as the API reports it (`GET /configuration/cluster/{id}`).
public struct RolloutStatus: Equatable, Sendable {
    /// pending, progressing, paused, completed or rolledBack.
    public var state: String
    /// The current step (as the API counts it) and the number of steps.
    public var step: Int?
    public var steps: Int?
    /// The new version's share of traffic, per cent.
    public var percent: Double?
    /// Why the plan rolled back (it names the gate).
    public var reason: String?
    /// The gate that rolled the plan back: the `gate` field when the API gives one, else the
    /// gate named in `reason`.
    public var gate: String?
    /// The whole `rollout` object, for the JSON report.
    public var raw: JSONOut

    /// Gates known by name, for reasons that name them.
    static let gateNames = ["errorRatio", "latencyRatio", "divergenceRatio"]

    /// Whether the plan has reached its end.
    public var isFinal: Bool { state == "completed" || state == "rolledBack" }

    /// The rollout and the cluster's state from a cluster document (`{"cluster":{…,"rollout":{…}}}`
    /// or the cluster object itself). `rollout` is nil when the document has none.
    public static func parse(_ body: String) -> (rollout: RolloutStatus?, clusterState: String?)? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)), let root = object as? [String: Any] else { return nil }
        let cluster = root["cluster"] as? [String: Any] ?? root
        let clusterState = cluster["state"] as? String
        guard let rollout = (cluster["rollout"] ?? root["rollout"]) as? [String: Any], let state = rollout["state"] as? String else {
            return (nil, clusterState)
        }
        var status = RolloutStatus(state: state, raw: JSONOut(any: rollout))
        status.step = (rollout["step"] as? NSNumber)?.intValue
        status.steps = (rollout["steps"] as? NSNumber)?.intValue
        status.percent = (rollout["percent"] as? NSNumber)?.doubleValue
        status.reason = rollout["reason"] as? String
        let gates = (rollout["gates"] as? [String: Any]).map { Array($0.keys).sorted() } ?? []
        status.gate = rollout["gate"] as? String ?? status.reason.flatMap { gate(in: $0, known: gates) }
        return (status, clusterState)
    }

    /// The first known gate named in a reason (case-insensitive), "operator" for an operator
    /// abort, nil when none is named.
    static func gate(in reason: String, known: [String]) -> String? {
        let lower = reason.lowercased()
        for name in known + gateNames where lower.contains(name.lowercased()) { return name }
        return lower.contains("operator") ? "operator" : nil
    }

    /// One line for progress output: `progressing, step 2/4, 10 %`.
    public var summary: String {
        var s = state
        if let step { s += ", step \(step)" + (steps.map { "/\($0)" } ?? "") }
        if let percent { s += ", " + String(format: "%g", percent) + " %" }
        if let reason { s += ": " + reason }
        return s
    }
}

/// How a scenario ended.
public enum DrillOutcome: Equatable, Sendable {
    /// The plan completed.
    case completed
    /// The plan rolled back; the gate (when one is named) and the reason as reported.
    case rolledBack(gate: String?, reason: String?)
    /// No outcome within the time limit; why.
    case timeout(String)
    /// The scenario could not run (the proxy refused the plan, did not start, exited); why.
    case failed(String)

    /// The outcome's name: completed, rolledBack, timeout or error.
    public var name: String {
        switch self {
        case .completed: "completed"
        case .rolledBack: "rolledBack"
        case .timeout: "timeout"
        case .failed: "error"
        }
    }

    /// The explanation of a timeout or an error.
    public var message: String? {
        switch self {
        case .timeout(let m), .failed(let m): m
        default: nil
        }
    }
}

/// One scenario's figures and verdict.
public struct DrillScenarioResult: Equatable, Sendable {
    /// Which new version was rolled out.
    public var scenario: DrillScenario
    /// How the plan ended.
    public var outcome: DrillOutcome
    /// Seconds from the PUT of the plan to the outcome (nil without one).
    public var secondsToDecision: Double?
    /// Seconds from the first bad exchange (seen by a client or written by the new version) to a
    /// rollback; nil when there was no rollback or no bad exchange before it.
    public var secondsFromFirstBad: Double?
    /// The client's view of the whole scenario (v1 alone, then the plan).
    public var tally: DrillTally
    /// Bad answers the new version wrote (the proxy may have kept them from clients).
    public var newVersionBadAnswers: Int
    /// The last rollout the API reported, if any.
    public var lastRollout: RolloutStatus?

    public init(scenario: DrillScenario, outcome: DrillOutcome, tally: DrillTally = DrillTally()) {
        self.scenario = scenario
        self.outcome = outcome
        self.tally = tally
        newVersionBadAnswers = 0
    }

    /// Whether the outcome is the expected one: completed for good, rolledBack for the others.
    public var passed: Bool {
        switch outcome {
        case .completed: scenario.expectsCompletion
        case .rolledBack: !scenario.expectsCompletion
        case .timeout, .failed: false
        }
    }

    /// The times of a decision: from the PUT (`putNanos`) to `decidedNanos`, and from the first
    /// bad exchange to a rollback (the earlier of the client's and the new version's first).
    mutating func setTimes(putNanos: UInt64, decidedNanos: UInt64, backendFirstBad: UInt64?) {
        secondsToDecision = Double(decidedNanos &- putNanos) / 1e9
        guard case .rolledBack = outcome else { return }
        let firsts = [tally.firstBadNanos, backendFirstBad].compactMap { $0 }
        if let first = firsts.min(), first <= decidedNanos {
            secondsFromFirstBad = Double(decidedNanos - first) / 1e9
        }
    }
}

/// The whole drill's report: the table, the JSON, the exit status.
public struct DrillReport: Equatable, Sendable {
    /// The plan every scenario ran.
    public var plan: DrillPlan
    /// One result per scenario, in the order run.
    public var results: [DrillScenarioResult]

    public init(plan: DrillPlan, results: [DrillScenarioResult]) {
        self.plan = plan
        self.results = results
    }

    /// Whether every scenario met its expectation.
    public var passed: Bool { !results.isEmpty && results.allSatisfy(\.passed) }

    /// 0 when every scenario met its expectation, 1 otherwise.
    public var exitStatus: Int32 { passed ? 0 : 1 }

    /// The outcome column: `rolledBack (errorRatio)` names the gate.
    static func outcomeText(_ o: DrillOutcome) -> String {
        if case .rolledBack(let gate, _) = o, let gate { return "rolledBack (\(gate))" }
        return o.name
    }

    static func seconds(_ s: Double?) -> String { s.map { String(format: "%.1f s", $0) } ?? "-" }

    /// The human table: one line per scenario, then the reasons of rollbacks, timeouts and errors.
    public func table() -> String {
        let header = ["scenario", "outcome", "decision", "after 1st bad", "bad responses", "expected", "verdict"]
        var rows = [header]
        for r in results {
            rows.append([r.scenario.rawValue, Self.outcomeText(r.outcome), Self.seconds(r.secondsToDecision),
                         Self.seconds(r.secondsFromFirstBad), "\(r.tally.bad) / \(r.tally.requests)", r.scenario.expected,
                         r.passed ? "PASS" : "FAIL"])
        }
        let widths = header.indices.map { c in rows.map { $0[c].count }.max()! }
        var out = "\n"
        for row in rows {
            // Names left-aligned, figures right-aligned.
            let cells = row.enumerated().map { c, cell in
                let pad = String(repeating: " ", count: widths[c] - cell.count)
                return [2, 3, 4].contains(c) ? pad + cell : cell + pad
            }
            out += cells.joined(separator: "  ").trimmingCharacters(in: .whitespaces) + "\n"
        }
        for r in results {
            var notes: [String] = []
            if case .rolledBack(_, let reason) = r.outcome, let reason { notes.append("reason: \(reason)") }
            if let m = r.outcome.message { notes.append(m) }
            if r.tally.bad > 0 {
                notes.append("bad responses: \(r.tally.serverErrors) status >= 500, \(r.tally.wrongBodies) wrong bodies, "
                             + "\(r.tally.connectionErrors) connection errors")
            }
            for note in notes { out += "\(r.scenario.rawValue): \(note)\n" }
        }
        out += "plan: \(plan.stepCount) step(s), \(String(format: "%g", plan.totalHoldSeconds)) s of holds"
            + (plan.startsWithConcurrent ? ", starts with CONCURRENT (no client should see a bad response)" : "") + "\n"
        out += passed ? "drill: PASS\n" : "drill: FAIL\n"
        return out
    }

    /// The JSON report: `{"pass":…, "plan":{…}, "scenarios":[{…}, …]}`.
    public func json() -> JSONOut {
        func opt(_ x: Double?) -> JSONOut { x.map { .number($0) } ?? .null }
        return .object([
            ("pass", .bool(passed)),
            ("plan", .object([
                ("steps", .integer(Int64(plan.stepCount))), ("totalHoldSeconds", .number(plan.totalHoldSeconds)),
                ("startsWithConcurrent", .bool(plan.startsWithConcurrent)),
            ])),
            ("scenarios", .array(results.map { r in
                var gate: JSONOut = .null, reason: JSONOut = .null
                if case .rolledBack(let g, let why) = r.outcome {
                    gate = g.map { .string($0) } ?? .null
                    reason = why.map { .string($0) } ?? .null
                }
                return .object([
                    ("scenario", .string(r.scenario.rawValue)),
                    ("outcome", .string(r.outcome.name)),
                    ("gate", gate),
                    ("reason", reason),
                    ("message", r.outcome.message.map { .string($0) } ?? .null),
                    ("secondsToDecision", opt(r.secondsToDecision)),
                    ("secondsFromFirstBad", opt(r.secondsFromFirstBad)),
                    ("requests", .integer(Int64(r.tally.requests))),
                    ("badResponses", .integer(Int64(r.tally.bad))),
                    ("bad", .object([
                        ("serverErrors", .integer(Int64(r.tally.serverErrors))), ("wrongBodies", .integer(Int64(r.tally.wrongBodies))),
                        ("connectionErrors", .integer(Int64(r.tally.connectionErrors))),
                    ])),
                    ("newVersionBadAnswers", .integer(Int64(r.newVersionBadAnswers))),
                    ("expected", .string(r.scenario.expected)),
                    ("pass", .bool(r.passed)),
                    ("rollout", r.lastRollout?.raw ?? .null),
                ])
            })),
        ])
    }
}

extension JSONOut {
    /// A value decoded by `JSONSerialization`, with object keys sorted.
    init(any value: Any) {
        switch value {
        case let object as [String: Any]:
            self = .object(object.keys.sorted().map { ($0, JSONOut(any: object[$0]!)) })
        case let array as [Any]:
            self = .array(array.map { JSONOut(any: $0) })
        case let string as String:
            self = .string(string)
        case let number as NSNumber:
            // JSONSerialization gives booleans as NSNumber too; their encoding ("c") tells them apart.
            switch String(cString: number.objCType) {
            case "c", "B": self = .bool(number.boolValue)
            case "d", "f": self = .number(number.doubleValue)
            default: self = .integer(number.int64Value)
            }
        default:
            self = .null
        }
    }
}
