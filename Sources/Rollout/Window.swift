/// What one version did in the window.
public struct VersionWindow: Equatable, Sendable {
    /// Exchanges the version answered (or failed to answer) in the window.
    public var requests: Int
    /// Of those, the ones that failed: 5xx, connect failures, resets, timeouts.
    public var errors: Int
    /// The analysis's latency percentile over the window, in microseconds; nil when the
    /// window holds no latency sample.
    public var latencyMicros: Int?

    /// Creates a version's figures.
    public init(requests: Int = 0, errors: Int = 0, latencyMicros: Int? = nil) {
        self.requests = requests
        self.errors = errors
        self.latencyMicros = latencyMicros
    }
}

/// The figures the driver measures over the sliding window (`analysis.windowSeconds`) and
/// hands to every `tick`.
public struct WindowStats: Equatable, Sendable {
    /// The new version's exchanges in the window.
    public var new: VersionWindow
    /// The old version's exchanges in the window.
    public var old: VersionWindow
    /// CONCURRENT: exchanges whose two answers were compared in the window.
    public var compared: Int
    /// CONCURRENT: of those, the ones whose answers diverged.
    public var divergent: Int
    /// Exchanges of the new version since the driver started counting; never decreases
    /// (a step's `minRequests` is counted from its difference, not from the window).
    public var newTotal: Int

    /// Creates a window's figures.
    public init(new: VersionWindow = VersionWindow(), old: VersionWindow = VersionWindow(),
                compared: Int = 0, divergent: Int = 0, newTotal: Int = 0) {
        self.new = new
        self.old = old
        self.compared = compared
        self.divergent = divergent
        self.newTotal = newTotal
    }
}

/// One gate of the analysis.
public enum Gate: String, Sendable, CaseIterable {
    /// New errors over new requests.
    case errorRatio
    /// New latency percentile over old latency percentile.
    case latencyRatio
    /// Divergent comparisons over compared ones (CONCURRENT).
    case divergenceRatio
}

/// A gate's limit and the value last measured for it.
public struct GateReading: Equatable, Sendable {
    /// Which gate.
    public var gate: Gate
    /// The measured value; nil when the window could not measure it (no requests, no
    /// latency sample for either version, an old latency of 0, nothing compared).
    public var value: Double?
    /// The limit: the gate fails when the value is above it.
    public var limit: Double

    /// Creates a reading.
    public init(gate: Gate, value: Double?, limit: Double) {
        self.gate = gate
        self.value = value
        self.limit = limit
    }
}

/// A gate that failed: what was measured, against what limit, on how many exchanges.
public struct GateFailure: Equatable, Sendable, CustomStringConvertible {
    /// Which gate.
    public var gate: Gate
    /// The measured value (above `limit`).
    public var value: Double
    /// The gate's limit.
    public var limit: Double
    /// The new version's exchanges in the window.
    public var newRequests: Int
    /// The old version's exchanges in the window.
    public var oldRequests: Int

    /// Creates a failure.
    public init(gate: Gate, value: Double, limit: Double, newRequests: Int, oldRequests: Int) {
        self.gate = gate
        self.value = value
        self.limit = limit
        self.newRequests = newRequests
        self.oldRequests = oldRequests
    }

    /// `errorRatio 0.05 above limit 0.01 (requests new 200, old 1800)`.
    public var description: String {
        "\(gate.rawValue) \(formatFigure(value)) above limit \(formatFigure(limit)) (requests new \(newRequests), old \(oldRequests))"
    }
}

/// What the gates say about one window.
public enum Judgement: Equatable, Sendable {
    /// The window holds fewer new-version exchanges than `analysis.minRequests`: not judged.
    case tooFewRequests
    /// Every gate that could be measured is within its limit.
    case passed
    /// The first gate (in the order error, latency, divergence) above its limit.
    case failed(GateFailure)
}

extension Analysis {
    /// Each applied gate's value on `window`. A value is nil when it cannot be measured:
    /// no new requests (error ratio), either latency missing or the old one 0 (latency
    /// ratio), nothing compared (divergence ratio).
    public func readings(_ window: WindowStats) -> [GateReading] {
        limits.map { gate, limit in
            GateReading(gate: gate, value: Self.value(of: gate, in: window, latencyFloorMicros: Int(latencyFloorMillis * 1000)), limit: limit)
        }
    }

    /// Judges `window`: too few requests (fewer than `minRequests` of the new version),
    /// passed, or the first failing gate. A gate that cannot be measured passes.
    public func judge(_ window: WindowStats) -> Judgement {
        guard window.new.requests >= minRequests else { return .tooFewRequests }
        for reading in readings(window) {
            if let value = reading.value, value > reading.limit {
                return .failed(GateFailure(gate: reading.gate, value: value, limit: reading.limit,
                                           newRequests: window.new.requests, oldRequests: window.old.requests))
            }
        }
        return .passed
    }

    static func value(of gate: Gate, in w: WindowStats, latencyFloorMicros floor: Int = 0) -> Double? {
        switch gate {
        case .errorRatio:
            return w.new.requests > 0 ? Double(w.new.errors) / Double(w.new.requests) : nil
        case .latencyRatio:
            guard let new = w.new.latencyMicros, let old = w.old.latencyMicros, max(old, floor) > 0 else { return nil }
            return Double(max(new, floor)) / Double(max(old, floor))
        case .divergenceRatio:
            return w.compared > 0 ? Double(w.divergent) / Double(w.compared) : nil
        }
    }
}

/// A ratio for a log line or a reason: at most four decimals (`0.0523`, `1.5`, `12`).
func formatFigure(_ d: Double) -> String {
    guard d.isFinite else { return String(d) }
    let rounded = (d * 10_000).rounded() / 10_000
    if rounded == rounded.rounded(), abs(rounded) < 1e15 { return String(Int(rounded)) }
    return String(rounded)
}
