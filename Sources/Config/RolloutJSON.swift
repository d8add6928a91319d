import Rollout
import Routing

/// The JSON form of a rollout plan inside `upgradeTransition` (`steps`, `analysis`,
/// `retireOld`) and of a cluster's `ignoreBodyFor`, read and written by `ClusterJSON`.
enum RolloutJSON {
    /// Most steps in a plan.
    static let maxSteps = 100
    /// Longest hold of one step: one week.
    static let maxHoldSeconds = 604_800
    /// Largest `minRequests` (a step's or the analysis's).
    static let maxMinRequests = 1_000_000_000
    /// Longest analysis window: one hour.
    static let maxWindowSeconds = 3_600
    /// Largest latency ratio limit.
    static let maxLatencyRatio = 1_000.0
    /// Most `ignoreBodyFor` patterns, and the longest one.
    static let maxPatterns = 100
    static let maxPatternLength = 1_024

    /// Reads `steps`: nil when absent; otherwise 1 to 100 steps, each
    /// `{"mode":"CONCURRENT"|"GRADUAL"|"INSTANT","percent":0-100 (GRADUAL, required),
    /// "serve":"old"|"new" (CONCURRENT, default old),"holdSeconds":N,"minRequests":N}`
    /// (mode names case-insensitive, hold and count default 0). A step may not send fewer
    /// clients to the new version than the step before it: a client moved to the new
    /// version never moves back during a plan.
    static func steps(_ fields: inout Fields) throws(ConfigError) -> [RolloutStep]? {
        guard let raw = fields.raw("steps") else { return nil }
        let path = fields.pathOf("steps")
        guard let list = raw as? [Any] else {
            throw fields.fail("steps", #"must be an array of steps like {"mode":"GRADUAL","percent":10,"holdSeconds":60}"#)
        }
        guard !list.isEmpty else {
            throw fields.fail("steps", "must list at least one step (for gates without steps, give analysis alone)")
        }
        guard list.count <= maxSteps else { throw fields.fail("steps", "must list at most \(maxSteps) steps") }
        var steps: [RolloutStep] = []
        for (i, element) in list.enumerated() {
            let stepPath = "\(path)[\(i)]"
            guard let o = element as? [String: Any] else {
                throw ConfigError(field: stepPath, message: "must be an object with mode, holdSeconds and minRequests")
            }
            var f = Fields(o, path: stepPath)
            let name = try f.string("mode")
            let percent = try f.number("percent", in: 0...100)
            let serve = try f.choice("serve", of: Served.self)
            let hold = try f.int("holdSeconds", in: 0...maxHoldSeconds) ?? 0
            let minRequests = try f.int("minRequests", in: 0...maxMinRequests) ?? 0
            try f.rejectUnknown()

            guard let name else { throw f.fail("mode", "missing (CONCURRENT, GRADUAL or INSTANT)") }
            let mode: StepMode
            switch name.uppercased() {
            case "CONCURRENT": mode = .concurrent(serve: serve ?? .old)
            case "GRADUAL":
                guard let percent else { throw f.fail("percent", "required with mode GRADUAL (a number between 0 and 100)") }
                mode = .gradual(percent: percent)
            case "INSTANT": mode = .instant
            default: throw f.fail("mode", "unknown step mode \"\(name)\" (valid: CONCURRENT, GRADUAL, INSTANT)")
            }
            if percent != nil, mode.upgradeMode != .gradual {
                throw f.fail("percent", "only allowed with mode GRADUAL, not \(mode.name)")
            }
            if serve != nil, mode.upgradeMode != .concurrent {
                throw f.fail("serve", "only allowed with mode CONCURRENT, not \(mode.name)")
            }
            if let previous = steps.last, mode.percent < previous.mode.percent {
                throw f.fail(mode.upgradeMode == .gradual ? "percent" : "mode",
                             "must not send fewer clients to the new version than \(path)[\(i - 1)] (\(format(previous.mode.percent)) %): "
                                 + "a client moved to the new version never moves back during a plan")
            }
            steps.append(RolloutStep(mode: mode, holdSeconds: hold, minRequests: minRequests))
        }
        return steps
    }

    /// Reads `analysis`: nil when absent; otherwise at least one gate (`maxErrorRatio` 0-1,
    /// `maxLatencyRatio` above 0, `maxDivergenceRatio` 0-1), `latencyPercentile` (above 0,
    /// at most 100, default 99) and `latencyFloorMillis` (0-60000, default 5), both only with
    /// `maxLatencyRatio`, `windowSeconds` (1-3600,
    /// default 30) and `minRequests` (default 50).
    static func analysis(_ fields: inout Fields) throws(ConfigError) -> Analysis? {
        guard var f = try fields.object("analysis") else { return nil }
        let maxError = try f.number("maxErrorRatio", in: 0...1)
        let maxLatency = try f.number("maxLatencyRatio", above: 0, atMost: maxLatencyRatio)
        let percentile = try f.number("latencyPercentile", above: 0, atMost: 100)
        let floor = try f.number("latencyFloorMillis", in: 0...60_000)
        let maxDivergence = try f.number("maxDivergenceRatio", in: 0...1)
        let window = try f.int("windowSeconds", in: 1...maxWindowSeconds)
        let minRequests = try f.int("minRequests", in: 0...maxMinRequests)
        try f.rejectUnknown()
        guard maxError != nil || maxLatency != nil || maxDivergence != nil else {
            throw fields.fail("analysis", "must set at least one gate: maxErrorRatio, maxLatencyRatio or maxDivergenceRatio")
        }
        if percentile != nil, maxLatency == nil { throw f.fail("latencyPercentile", "only allowed with maxLatencyRatio") }
        if floor != nil, maxLatency == nil { throw f.fail("latencyFloorMillis", "only allowed with maxLatencyRatio") }
        return Analysis(maxErrorRatio: maxError, maxLatencyRatio: maxLatency,
                        latencyPercentile: percentile ?? Analysis.defaultLatencyPercentile,
                        maxDivergenceRatio: maxDivergence, windowSeconds: window ?? Analysis.defaultWindowSeconds,
                        minRequests: minRequests ?? Analysis.defaultMinRequests,
                        latencyFloorMillis: floor ?? Analysis.defaultLatencyFloorMillis)
    }

    /// Reads a cluster's `ignoreBodyFor`: an array of at most 100 path patterns, each
    /// starting with `/`, printable without spaces or `?`, at most 1024 characters, with a
    /// `*` allowed only as the last character. Absent → empty.
    static func ignoreBodyFor(_ fields: inout Fields) throws(ConfigError) -> [String] {
        guard let raw = fields.raw("ignoreBodyFor") else { return [] }
        guard let list = raw as? [Any] else {
            throw fields.fail("ignoreBodyFor", #"must be an array of path patterns like ["/time", "/random*"]"#)
        }
        guard list.count <= maxPatterns else { throw fields.fail("ignoreBodyFor", "must list at most \(maxPatterns) patterns") }
        var patterns: [String] = []
        for (i, element) in list.enumerated() {
            let field = fields.pathOf("ignoreBodyFor") + "[\(i)]"
            guard let pattern = element as? String else { throw ConfigError(field: field, message: "must be a string") }
            guard pattern.utf8.first == UInt8(ascii: "/") else {
                throw ConfigError(field: field, message: "must be a path starting with / (\"\(pattern)\")")
            }
            guard pattern.utf8.count <= maxPatternLength, pattern.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw ConfigError(field: field, message: "must be at most \(maxPatternLength) printable characters without spaces")
            }
            guard !pattern.contains("?") else {
                throw ConfigError(field: field, message: "must be a path without a query (patterns match the path only)")
            }
            if let star = pattern.firstIndex(of: "*"), star != pattern.index(before: pattern.endIndex) {
                throw ConfigError(field: field, message: "may hold * only as its last character (\"\(pattern)\")")
            }
            patterns.append(pattern)
        }
        return patterns
    }

    /// The JSON form of one step: `mode`, `holdSeconds`, `minRequests`, and `percent`
    /// (GRADUAL) or `serve` (CONCURRENT).
    static func render(_ step: RolloutStep) -> [String: Any] {
        var o: [String: Any] = ["mode": step.mode.name, "holdSeconds": step.holdSeconds, "minRequests": step.minRequests]
        switch step.mode {
        case .concurrent(let serve): o["serve"] = serve.rawValue
        case .gradual(let percent): o["percent"] = percent
        case .instant: break
        }
        return o
    }

    /// The JSON form of an analysis: its gates, `latencyPercentile` with the latency gate,
    /// `windowSeconds` and `minRequests`.
    static func render(_ a: Analysis) -> [String: Any] {
        var o: [String: Any] = ["windowSeconds": a.windowSeconds, "minRequests": a.minRequests]
        if let l = a.maxErrorRatio { o["maxErrorRatio"] = l }
        if let l = a.maxLatencyRatio {
            o["maxLatencyRatio"] = l
            o["latencyPercentile"] = a.latencyPercentile
            o["latencyFloorMillis"] = a.latencyFloorMillis
        }
        if let l = a.maxDivergenceRatio { o["maxDivergenceRatio"] = l }
        return o
    }
}

extension RolloutPlan {
    /// Whether a step mirrors exchanges to both versions (so `mirrorUnsafeMethods` applies).
    var hasConcurrentStep: Bool { steps.contains { $0.mode.upgradeMode == .concurrent } }
}
