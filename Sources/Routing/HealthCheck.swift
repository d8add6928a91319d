// Active health checks: what a probe expects, how probe results turn into a backend's
// status, and when a new cluster is ready. Pure: no sockets, no clocks; the control plane's
// health checker feeds probe outcomes and times in (see `ClusterHealth` for the shared side).

/// Which response statuses count as a passing probe: an inclusive range of codes, written
/// as a class (`"2xx"`), an exact code (`"204"`) or a range (`"200-399"`).
public struct StatusExpectation: Sendable, Equatable, CustomStringConvertible {
    /// Lowest accepted status code.
    public var low: Int
    /// Highest accepted status code.
    public var high: Int

    /// Creates an expectation for `low...high` (callers keep both within 100...599).
    public init(low: Int, high: Int) {
        self.low = low
        self.high = high
    }

    /// Any 2xx status: the default.
    public static let success = StatusExpectation(low: 200, high: 299)

    /// Parses `"2xx"` (any case, classes 1 to 5), `"200"`, or `"200-399"` (codes 100...599,
    /// low ≤ high). Nil when the text is none of these.
    public init?(parsing text: String) {
        let t = Array(text.utf8)
        func code(_ s: ArraySlice<UInt8>) -> Int? {
            guard s.count == 3, s.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
            let n = s.reduce(0) { $0 * 10 + Int($1 - 0x30) }
            return (100...599).contains(n) ? n : nil
        }
        if t.count == 3, (0x31...0x35).contains(t[0]), t[1] | 0x20 == UInt8(ascii: "x"), t[2] | 0x20 == UInt8(ascii: "x") {
            let hundreds = Int(t[0] - 0x30) * 100
            self.init(low: hundreds, high: hundreds + 99)
        } else if let exact = code(t[...]) {
            self.init(low: exact, high: exact)
        } else if let dash = t.firstIndex(of: UInt8(ascii: "-")), let a = code(t[..<dash]), let b = code(t[(dash + 1)...]), a <= b {
            self.init(low: a, high: b)
        } else {
            return nil
        }
    }

    /// Whether a probe that got `status` passes.
    public func matches(_ status: Int) -> Bool { status >= low && status <= high }

    /// The shortest spelling that parses back to the same range: `"2xx"`, `"204"` or `"200-399"`.
    public var description: String {
        if low == high { return String(low) }
        if low % 100 == 0, high == low + 99 { return "\(low / 100)xx" }
        return "\(low)-\(high)"
    }
}

/// The `healthCheck` object of a cluster: how its backends are probed and when it is ready.
public struct HealthCheckSpec: Sendable, Equatable {
    /// Path (with an optional query) requested with `GET`.
    public var path: String
    /// Seconds between the starts of two probes of one backend (fractions allowed).
    public var intervalSeconds: Double
    /// Seconds a probe may take, connect to response head, before it fails.
    public var timeoutSeconds: Double
    /// Consecutive passes that make a backend up.
    public var healthyThreshold: Int
    /// Consecutive failures that make a backend down.
    public var unhealthyThreshold: Int
    /// Statuses that pass.
    public var expectStatus: StatusExpectation
    /// Backends that must be up before a new cluster gets traffic.
    public var minHealthy: Int
    /// Seconds a new cluster may stay pending before it is marked failed ("not ready").
    public var readyTimeoutSeconds: Double

    /// Creates a health check; the defaults are those of the configuration.
    public init(path: String = "/healthz", intervalSeconds: Double = 2, timeoutSeconds: Double = 1,
                healthyThreshold: Int = 2, unhealthyThreshold: Int = 3, expectStatus: StatusExpectation = .success,
                minHealthy: Int = 1, readyTimeoutSeconds: Double = 120) {
        self.path = path
        self.intervalSeconds = intervalSeconds
        self.timeoutSeconds = timeoutSeconds
        self.healthyThreshold = healthyThreshold
        self.unhealthyThreshold = unhealthyThreshold
        self.expectStatus = expectStatus
        self.minHealthy = minHealthy
        self.readyTimeoutSeconds = readyTimeoutSeconds
    }
}

/// What an active probe found out about one backend.
public enum ProbeOutcome: Sendable, Equatable {
    /// A response head arrived with this status.
    case status(Int)
    /// No usable response: connect refused, reset, malformed head, closed early, timed out.
    case failed(String)

    /// Whether the outcome passes under `expectation`.
    public func passes(_ expectation: StatusExpectation) -> Bool {
        if case .status(let code) = self { return expectation.matches(code) }
        return false
    }

    /// A few words for the log line (`status 503`, `connect: Connection refused`).
    public var summary: String {
        switch self {
        case .status(let code): "status \(code)"
        case .failed(let reason): reason
        }
    }
}

/// The health of one backend as its probes tell it.
public enum ProbeStatus: UInt8, Sendable, Equatable {
    /// No verdict yet: fewer probes than either threshold since the backend was added.
    case unknown
    /// `healthyThreshold` consecutive probes passed (and none failed since).
    case up
    /// `unhealthyThreshold` consecutive probes failed (and too few passed since).
    case down

    /// The word used by the API and metrics.
    public var name: String {
        switch self {
        case .unknown: "unknown"
        case .up: "up"
        case .down: "down"
        }
    }
}

/// Turns one backend's probe results into its status. A state machine as data: one event
/// (`record`), the transition it caused (if any) as the result.
public struct ProbeTracker: Sendable, Equatable {
    /// The current verdict.
    public private(set) var status: ProbeStatus = .unknown
    /// Passes in a row since the last failure.
    public private(set) var passes = 0
    /// Failures in a row since the last pass.
    public private(set) var failures = 0

    /// A backend with no probe yet.
    public init() {}

    /// A tracker already at `status` (the counters start from zero).
    public init(status: ProbeStatus) { self.status = status }

    /// Counts one probe. Returns the new status when this probe changed it: `.up` after
    /// `healthyThreshold` passes in a row (from unknown or down), `.down` after
    /// `unhealthyThreshold` failures in a row (from unknown or up); nil otherwise.
    public mutating func record(passed: Bool, healthyThreshold: Int, unhealthyThreshold: Int) -> ProbeStatus? {
        if passed {
            passes += 1
            failures = 0
            if status != .up && passes >= healthyThreshold {
                status = .up
                return .up
            }
        } else {
            failures += 1
            passes = 0
            if status != .down && failures >= unhealthyThreshold {
                status = .down
                return .down
            }
        }
        return nil
    }
}

/// What the readiness gate decides for a pending cluster.
public enum ReadinessVerdict: Sendable, Equatable {
    /// Keep waiting (no traffic yet).
    case pending
    /// Enough backends are up: the cluster takes traffic from now on.
    case ready
    /// `readyTimeoutSeconds` passed first: the cluster is marked failed ("not ready").
    case notReady
}

/// The readiness gate of a pending cluster: `ready` once `up` (backends up and not drained)
/// reaches `minHealthy`, else `notReady` once `elapsedSeconds` reaches the timeout, else
/// `pending`. Readiness wins a tie with the timeout.
public func readiness(up: Int, minHealthy: Int, elapsedSeconds: Double, readyTimeoutSeconds: Double) -> ReadinessVerdict {
    if up >= max(1, minHealthy) { return .ready }
    if elapsedSeconds >= readyTimeoutSeconds { return .notReady }
    return .pending
}
