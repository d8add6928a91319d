// Rollout: the pure core of a staged rollout of a new cluster (version).
//
// Glossary (see DESIGN.md): the *new* version is the cluster being rolled out, the *old*
// version the cluster it replaces (the previous one by version order). A *plan* is an
// ordered list of *steps*, each routing exchanges in one mode for at least a hold time; the
// *analysis* holds the *gates* (error ratio, latency ratio, divergence ratio) that judge the
// new version on a sliding *window* of exchanges. This module has no sockets, threads,
// clocks or Foundation: the driver passes the time and the window's figures in and performs
// the actions that come out.

/// Whose answer a client gets in a CONCURRENT step (both versions answer every exchange).
public enum Served: String, Sendable, CaseIterable {
    /// The old version's answer: a dark launch; the new version is compared and judged only.
    case old
    /// The new version's answer unless it fails (the 2014 CONCURRENT behaviour).
    case new
}

/// How exchanges are routed during one step of a plan.
public enum StepMode: Equatable, Sendable {
    /// Both versions answer every exchange and the answers are compared; `serve` says whose
    /// answer the client gets.
    case concurrent(serve: Served)
    /// `percent` (0...100) of clients move to the new version; the others stay on the old.
    case gradual(percent: Double)
    /// Every exchange goes to the new version.
    case instant

    /// The mode's name as written in the configuration: CONCURRENT, GRADUAL or INSTANT.
    public var name: String {
        switch self {
        case .concurrent: "CONCURRENT"
        case .gradual: "GRADUAL"
        case .instant: "INSTANT"
        }
    }

    /// The share of clients the new version serves, in percent: 0 for a dark launch
    /// (CONCURRENT serving old), the step's percent for GRADUAL, 100 otherwise.
    public var percent: Double {
        switch self {
        case .concurrent(serve: .old): 0
        case .concurrent(serve: .new): 100
        case .gradual(let percent): percent
        case .instant: 100
        }
    }
}

/// One step of a plan: a routing mode held for at least `holdSeconds` and `minRequests`
/// exchanges of the new version, with every gate passing, before the next step starts.
public struct RolloutStep: Equatable, Sendable {
    /// How exchanges are routed during the step.
    public var mode: StepMode
    /// Shortest time the step lasts, in seconds.
    public var holdSeconds: Int
    /// Fewest exchanges the new version must have had during the step before it advances.
    public var minRequests: Int

    /// Creates a step; no validation happens here (see the Config module).
    public init(mode: StepMode, holdSeconds: Int = 0, minRequests: Int = 0) {
        self.mode = mode
        self.holdSeconds = holdSeconds
        self.minRequests = minRequests
    }
}

/// The gates that judge the new version, and the window they are judged on. A gate whose
/// limit is nil is not applied.
public struct Analysis: Equatable, Sendable {
    /// Default `latencyPercentile`.
    public static let defaultLatencyPercentile = 99.0
    /// Default `windowSeconds`.
    public static let defaultWindowSeconds = 30
    /// Default `minRequests`.
    public static let defaultMinRequests = 50
    /// Default `latencyFloorMillis`.
    public static let defaultLatencyFloorMillis = 5.0

    /// Highest acceptable share of the new version's exchanges that failed (5xx, connect
    /// failures, resets, timeouts), 0...1.
    public var maxErrorRatio: Double?
    /// Highest acceptable ratio of the new version's latency percentile to the old one's.
    public var maxLatencyRatio: Double?
    /// The latency percentile compared by the latency gate (e.g. 99).
    public var latencyPercentile: Double
    /// Latencies below this many milliseconds count as this much in the latency ratio, so
    /// that the jitter of fast answers (0.3 ms against 0.6 ms) does not fail the gate.
    public var latencyFloorMillis: Double
    /// Highest acceptable share of compared exchanges whose answers diverged (CONCURRENT), 0...1.
    public var maxDivergenceRatio: Double?
    /// Length of the sliding window the driver measures, in seconds.
    public var windowSeconds: Int
    /// Fewest exchanges of the new version a window must hold before gates are judged on it.
    public var minRequests: Int

    /// Creates an analysis; no validation happens here (see the Config module).
    public init(
        maxErrorRatio: Double? = nil,
        maxLatencyRatio: Double? = nil,
        latencyPercentile: Double = Analysis.defaultLatencyPercentile,
        maxDivergenceRatio: Double? = nil,
        windowSeconds: Int = Analysis.defaultWindowSeconds,
        minRequests: Int = Analysis.defaultMinRequests,
        latencyFloorMillis: Double = Analysis.defaultLatencyFloorMillis
    ) {
        self.latencyFloorMillis = latencyFloorMillis
        self.maxErrorRatio = maxErrorRatio
        self.maxLatencyRatio = maxLatencyRatio
        self.latencyPercentile = latencyPercentile
        self.maxDivergenceRatio = maxDivergenceRatio
        self.windowSeconds = windowSeconds
        self.minRequests = minRequests
    }

    /// The gates applied, in the order they are judged, with their limits.
    public var limits: [(gate: Gate, limit: Double)] {
        var out: [(gate: Gate, limit: Double)] = []
        if let l = maxErrorRatio { out.append((.errorRatio, l)) }
        if let l = maxLatencyRatio { out.append((.latencyRatio, l)) }
        if let l = maxDivergenceRatio { out.append((.divergenceRatio, l)) }
        return out
    }
}

/// A rollout plan: the `upgradeTransition` of a cluster with `steps` and/or `analysis`.
///
/// Without steps (a 2014 mode that gained gates) the plan never advances and never
/// completes on its own: its gates only judge, and roll back.
public struct RolloutPlan: Equatable, Sendable {
    /// The steps in order; empty for a plan of gates only.
    public var steps: [RolloutStep]
    /// The gates; nil when none are applied (steps then advance on time and count alone).
    public var analysis: Analysis?
    /// Whether the old cluster is removed once the plan completes.
    public var retireOld: Bool

    /// Creates a plan; no validation happens here (see the Config module).
    public init(steps: [RolloutStep] = [], analysis: Analysis? = nil, retireOld: Bool = false) {
        self.steps = steps
        self.analysis = analysis
        self.retireOld = retireOld
    }

    /// A plan of gates only: a 2014 mode judged by `analysis`, never advancing.
    public var isGatesOnly: Bool { steps.isEmpty }
}
