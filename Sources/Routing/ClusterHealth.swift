import Locks
import Synchronization

/// One backend of a cluster as the API shows it.
public struct BackendHealthView: Sendable, Equatable {
    /// The server as configured.
    public var server: ServerAddress
    /// The probe verdict (always `.unknown` without a health check).
    public var probe: ProbeStatus
    /// Drained by the operator: no new exchanges.
    public var drained: Bool
    /// Probes that passed and failed since the backend was added.
    public var passed: Int
    public var failed: Int

    /// Creates a view (tests and renderers).
    public init(server: ServerAddress, probe: ProbeStatus, drained: Bool, passed: Int, failed: Int) {
        self.server = server
        self.probe = probe
        self.drained = drained
        self.passed = passed
        self.failed = failed
    }

    /// `drained`, else the probe verdict's name: `up`, `down` or `unknown`.
    public var status: String { drained ? "drained" : probe.name }
}

/// Which backends of one cluster may take new exchanges, and whether the cluster is still
/// waiting for its readiness gate. Shared by every reactor and the control plane.
///
/// Reactors read one word per cluster and exchange (`word`): bit 63 says "pending", bit i
/// (i < 63) says server i is excluded (its probes say down, or it is drained). Servers past
/// the 63rd have words of their own, read only for them. Only the control plane writes,
/// under `details`' lock, so every word is recomputed whole and stored.
public final class ClusterHealth: Sendable {
    /// The cluster's servers, in the order of its definition.
    public let servers: [ServerAddress]
    /// The cluster's health check; nil when it has none (then nothing is probed).
    public let check: HealthCheckSpec?
    /// Monotonic nanoseconds at which the readiness gate started.
    public let pendingSince: UInt64

    @usableFromInline static let pendingBit: UInt64 = 1 << 63
    @usableFromInline static let firstWordServers = 63

    // Read by the reactors' inlined accessors, written only under `details`' lock.
    @usableFromInline let first = Atomic<UInt64>(0)
    @usableFromInline let more: [Word]
    private let details: Lock<[Detail]>

    /// A separately allocated atomic word (for servers past the 63rd).
    @usableFromInline final class Word: Sendable {
        @usableFromInline let value = Atomic<UInt64>(0)
        init() {}
    }

    /// What the control plane keeps per backend.
    struct Detail: Sendable {
        var tracker = ProbeTracker()
        var drained = false
        var passed = 0
        var failed = 0
    }

    /// Creates the health of a cluster definition. `pending` starts it behind the readiness
    /// gate. From `previous` (the definition it replaces), drained marks are kept for servers
    /// still listed, and probe verdicts too when the health check is unchanged.
    public init(servers: [ServerAddress], check: HealthCheckSpec?, pending: Bool, pendingSince: UInt64,
                previous: ClusterHealth? = nil) {
        self.servers = servers
        self.check = check
        self.pendingSince = pendingSince
        let extra = max(0, servers.count - Self.firstWordServers)
        more = (0..<((extra + 63) / 64)).map { _ in Word() }
        var initial = [Detail](repeating: Detail(), count: servers.count)
        if let previous {
            let old = previous.details.withLock { $0 }
            for (i, server) in servers.enumerated() {
                guard let j = previous.servers.firstIndex(of: server) else { continue }
                initial[i].drained = old[j].drained
                if previous.check == check {
                    initial[i].tracker = ProbeTracker(status: old[j].tracker.status)
                    initial[i].passed = old[j].passed
                    initial[i].failed = old[j].failed
                }
            }
        }
        details = Lock(initial)
        if pending { first.store(Self.pendingBit, ordering: .relaxed) }
        details.withLock { publish($0) }
    }

    // MARK: Reactors (hot path)

    /// The routing word: one relaxed atomic load. See `isPending(_:)` and `isExcluded(_:word:)`.
    /// Inlined into the reactors (another module), like the two functions below.
    @inlinable @inline(__always)
    public var word: UInt64 { first.load(ordering: .relaxed) }

    /// Whether a routing word says the cluster is waiting for its readiness gate.
    @inlinable @inline(__always)
    public static func isPending(_ word: UInt64) -> Bool { word & pendingBit != 0 }

    /// Whether a routing word excludes no server at all (the usual case): then no server
    /// needs to be looked at one by one, for clusters of up to 63 servers.
    @inlinable @inline(__always)
    public func excludesNone(_ word: UInt64) -> Bool { word & ~Self.pendingBit == 0 && more.isEmpty }

    /// Whether server `index` gets no new exchanges, given the routing word just read.
    @inlinable @inline(__always)
    public func isExcluded(_ index: Int, word: UInt64) -> Bool {
        if index < Self.firstWordServers { return word & (1 << UInt64(index)) != 0 }
        let k = index - Self.firstWordServers
        return more[k / 64].value.load(ordering: .relaxed) & (1 << UInt64(k % 64)) != 0
    }

    // MARK: Control plane

    /// Counts every change of any cluster's exclusions (process-wide): a reader that saw the
    /// same count before has nothing new to act on.
    public static let exclusionChanges = Atomic<Int>(0)

    /// Recomputes and stores every word from `details` (call under the lock).
    private func publish(_ d: [Detail]) {
        defer { Self.exclusionChanges.wrappingAdd(1, ordering: .releasing) }
        var head = first.load(ordering: .relaxed) & Self.pendingBit
        var rest = [UInt64](repeating: 0, count: more.count)
        for (i, detail) in d.enumerated() where detail.drained || detail.tracker.status == .down {
            if i < Self.firstWordServers {
                head |= 1 << UInt64(i)
            } else {
                let k = i - Self.firstWordServers
                rest[k / 64] |= 1 << UInt64(k % 64)
            }
        }
        for (k, w) in rest.enumerated() { more[k].value.store(w, ordering: .relaxed) }
        first.store(head, ordering: .releasing)
    }

    /// True while the cluster waits for its readiness gate.
    public var isPending: Bool { Self.isPending(first.load(ordering: .acquiring)) }

    /// Opens the readiness gate. Returns true only for the call that opened it.
    @discardableResult
    public func markReady() -> Bool {
        details.withLock { _ in
            let w = first.load(ordering: .relaxed)
            guard Self.isPending(w) else { return false }
            first.store(w & ~Self.pendingBit, ordering: .releasing)
            return true
        }
    }

    /// Counts one probe of server `index`; returns the new status when it changed.
    public func record(_ outcome: ProbeOutcome, server index: Int) -> ProbeStatus? {
        guard let check, index >= 0, index < servers.count else { return nil }
        return details.withLock { d -> ProbeStatus? in
            let passed = outcome.passes(check.expectStatus)
            if passed { d[index].passed += 1 } else { d[index].failed += 1 }
            let change = d[index].tracker.record(passed: passed, healthyThreshold: check.healthyThreshold,
                                                 unhealthyThreshold: check.unhealthyThreshold)
            if change != nil { publish(d) }
            return change
        }
    }

    /// Drains (`true`) or re-enables server `index`. Returns true when that changed something.
    @discardableResult
    public func setDrained(_ drained: Bool, server index: Int) -> Bool {
        guard index >= 0, index < servers.count else { return false }
        return details.withLock { d in
            guard d[index].drained != drained else { return false }
            d[index].drained = drained
            publish(d)
            return true
        }
    }

    /// Index of `server` (host name compared without case), or nil.
    public func index(of server: ServerAddress) -> Int? {
        servers.firstIndex { $0.port == server.port && $0.hostname.lowercased() == server.hostname.lowercased() }
    }

    /// Every backend's status, in the order of the definition.
    public var backends: [BackendHealthView] {
        details.withLock { d in
            zip(servers, d).map { BackendHealthView(server: $0, probe: $1.tracker.status, drained: $1.drained,
                                                    passed: $1.passed, failed: $1.failed) }
        }
    }

    /// The servers that are drained.
    public var drainedServers: [ServerAddress] {
        details.withLock { d in zip(servers, d).filter { $1.drained }.map(\.0) }
    }

    /// Backends whose probes say up and that are not drained (what the readiness gate counts).
    public var upCount: Int {
        details.withLock { d in d.filter { $0.tracker.status == .up && !$0.drained }.count }
    }

    /// True when every backend that is not drained has been found down by its probes (and
    /// at least one is): a ready cluster in that state is rolled back.
    public var allDown: Bool {
        details.withLock { d in
            let serving = d.filter { !$0.drained }
            return !serving.isEmpty && serving.allSatisfy { $0.tracker.status == .down }
        }
    }
}
