import Locks
import Synchronization

/// Mutable state of one cluster shared by every reactor thread: failed flag,
/// GRADUAL threshold and the rollback window. Reads and writes on the hot
/// path are single atomic operations; only marking failed takes a lock.
public final class ClusterState: Sendable {
    /// Fixed-point scale of the GRADUAL threshold: 1 unit = 1e-6 percentage point.
    static let thresholdScale = 1_000_000
    static let thresholdCap = 100 * thresholdScale

    /// Ring capacity; a power of two so the slot is a mask.
    static let slotCount = 64
    /// Bits of a packed window slot: | tag 24 | failures 20 | successes 20 |.
    static let countBits: UInt64 = 20
    static let countMask: UInt64 = (1 << 20) - 1
    static let tagMask: UInt64 = (1 << 24) - 1

    private let failed = Atomic<Bool>(false)
    /// How a rollout plan routes this cluster now (`PlanRoute.rawValue`); 0 when no plan step governs.
    private let planRoute = Atomic<Int>(0)
    private let reason = Lock<(reason: String, time: Int64)?>(nil)
    private let threshold = Atomic<Int>(0)

    /// Window slots. Each packs the bucket number it counts for (its tag)
    /// with both counts, so moving a slot to a new bucket and counting the
    /// first outcome in it is one compare-and-exchange: no outcome is lost
    /// or counted in the wrong second, without a lock.
    private let slots: [64 of Atomic<UInt64>]
    /// Width of one bucket in milliseconds.
    public let bucketMillis: Int64
    /// Number of buckets the window spans (the current one included).
    public let bucketCount: Int

    /// Creates the state of a healthy cluster with threshold 0 and an empty
    /// rollback window of `windowSeconds` (clamped to 1...3600). Buckets are
    /// one second wide for windows up to 60 s, wider beyond.
    public init(windowSeconds: Int = 10) {
        let window = Int64(min(max(windowSeconds, 1), 3600))
        let width = (window + 59) / 60
        bucketMillis = width * 1000
        bucketCount = Int((window + width - 1) / width)
        slots = InlineArray { _ in Atomic<UInt64>(0) }
    }

    /// Creates the state with the window of `policy`.
    public convenience init(policy: RollbackPolicy) {
        self.init(windowSeconds: policy.windowSeconds)
    }

    // MARK: Failed flag

    /// True while the cluster is marked failed; one atomic load.
    public var isFailed: Bool { failed.load(ordering: .acquiring) }

    /// Marks the cluster failed with a reason. Returns true only for the call
    /// that changed the state, so exactly one log line and one counter
    /// increment follow a rollback even when several reactors race.
    public func markFailed(reason text: String, at unixTime: Int64) -> Bool {
        reason.withLock { stored in
            guard !failed.load(ordering: .relaxed) else { return false }
            stored = (text, unixTime)
            failed.store(true, ordering: .releasing)
            return true
        }
    }

    /// Re-admits a failed cluster: clears the flag and the reason, empties the
    /// rollback window (old failures must not fail it again at once) and
    /// restarts a GRADUAL transition from 0.
    public func readmit() {
        reason.withLock { stored in
            stored = nil
            for i in 0..<Self.slotCount { slots[i].store(0, ordering: .relaxed) }
            threshold.store(0, ordering: .relaxed)
            failed.store(false, ordering: .releasing)
        }
    }

    /// Reason and unix time of the failure, nil while healthy.
    public var failure: (reason: String, time: Int64)? {
        reason.withLock { $0 }
    }

    // MARK: GRADUAL threshold

    /// Share of client buckets (0...100) that go to this cluster in GRADUAL mode.
    public var gradualThreshold: Double {
        Double(threshold.load(ordering: .relaxed)) / Double(Self.thresholdScale)
    }

    /// Raises the threshold by `pct` percentage points, capped at 100; lock-free.
    /// Non-positive or non-finite amounts are ignored.
    public func advanceGradual(by pct: Double) {
        guard pct > 0, pct.isFinite else { return }
        let step = pct >= 100 ? Self.thresholdCap : max(1, Int((pct * Double(Self.thresholdScale)).rounded()))
        var current = threshold.load(ordering: .relaxed)
        while current < Self.thresholdCap {
            let next = current > Self.thresholdCap - step ? Self.thresholdCap : current + step
            let (exchanged, original) = threshold.compareExchange(
                expected: current, desired: next, ordering: .relaxed)
            if exchanged { return }
            current = original
        }
    }

    /// Sets the threshold directly (0...100, clamped); for tests and restores.
    public func setGradualThreshold(_ pct: Double) {
        let clamped = pct.isNaN ? 0 : min(max(pct, 0), 100)
        threshold.store(Int((clamped * Double(Self.thresholdScale)).rounded()), ordering: .relaxed)
    }

    // MARK: Rollout plan

    /// How the cluster's rollout plan routes it now; nil when no plan step governs (the
    /// 2014 mode of its definition does). One atomic load.
    public var plannedRoute: PlanRoute? { PlanRoute(rawValue: planRoute.load(ordering: .acquiring)) }

    /// Sets how the plan routes the cluster: a GRADUAL step's percentage becomes the
    /// threshold (which then stays put: exchanges do not raise it while a plan governs).
    public func setPlannedRoute(_ route: PlanRoute?, percent: Double = 0) {
        if route == .gradual { setGradualThreshold(percent) }
        planRoute.store(route?.rawValue ?? 0, ordering: .releasing)
    }

    // MARK: Rollback window

    /// Bucket number of a time: floor division, correct for negative times too.
    private func bucket(_ nowMillis: Int64) -> Int64 {
        let q = nowMillis / bucketMillis
        return (nowMillis % bucketMillis < 0) ? q - 1 : q
    }

    /// Records the outcome of one exchange at `nowMillis` (unix milliseconds).
    /// Counts saturate at 2^20 - 1 per bucket, far above what one cluster
    /// receives in one bucket on a single host.
    public func record(success: Bool, nowMillis: Int64) {
        let b = bucket(nowMillis)
        let tag = UInt64(truncatingIfNeeded: b) & Self.tagMask
        let slot = Int(truncatingIfNeeded: b) & (Self.slotCount - 1)
        let shift: UInt64 = success ? 0 : Self.countBits
        var current = slots[slot].load(ordering: .relaxed)
        while true {
            let next: UInt64
            if current >> (2 * Self.countBits) == tag {
                if (current >> shift) & Self.countMask == Self.countMask { return }
                next = current + (1 << shift)
            } else {
                // The slot still counts a bucket that left the window (slots
                // are reused every 64 buckets, the window spans at most 60):
                // restart it. A thread stalled for 64 buckets could restart a
                // newer bucket here; that costs one bucket of counts, once.
                next = (tag << (2 * Self.countBits)) | (1 << shift)
            }
            let (exchanged, original) = slots[slot].compareExchange(
                expected: current, desired: next, ordering: .relaxed)
            if exchanged { return }
            current = original
        }
    }

    /// Failures and total outcomes recorded in the window that ends at `nowMillis`
    /// (the current bucket and the `bucketCount - 1` before it).
    public func failureRatio(nowMillis: Int64) -> (failures: Int, total: Int) {
        let b = bucket(nowMillis)
        var failures = 0
        var successes = 0
        for k in 0..<Int64(bucketCount) {
            let bb = b - k
            let tag = UInt64(truncatingIfNeeded: bb) & Self.tagMask
            let slot = Int(truncatingIfNeeded: bb) & (Self.slotCount - 1)
            let v = slots[slot].load(ordering: .relaxed)
            guard v >> (2 * Self.countBits) == tag else { continue }
            successes += Int(v & Self.countMask)
            failures += Int((v >> Self.countBits) & Self.countMask)
        }
        return (failures, failures + successes)
    }
}

/// How a rollout plan's current step routes its cluster (the *new* version), set by the
/// control plane and read by every reactor.
public enum PlanRoute: Int, Sendable {
    /// CONCURRENT serving the old version: every client gets the old answer; the new version
    /// answers the same requests only to be compared and judged (a dark launch).
    case concurrentServeOld = 1
    /// CONCURRENT serving the new version unless it fails (the 2014 behaviour).
    case concurrentServeNew = 2
    /// GRADUAL at a fixed percentage (the cluster's threshold).
    case gradual = 3
    /// Every exchange to the new version (the plan's last step).
    case instant = 4
    /// The plan is completed: every exchange to the new version, nothing mirrored any more.
    case completed = 5

    /// The upgrade mode routing follows for this step.
    public var mode: UpgradeMode {
        switch self {
        case .concurrentServeOld, .concurrentServeNew: .concurrent
        case .gradual: .gradual
        case .instant, .completed: .instant
        }
    }
}

/// When the rollback window marks a cluster failed.
public struct RollbackPolicy: Sendable, Equatable {
    /// Length of the sliding window in seconds.
    public var windowSeconds: Int = 10
    /// Fewest outcomes in the window before a verdict is given.
    public var minRequests: Int = 20
    /// Failure ratio above which the cluster is failed (0...1).
    public var maxFailureRatio: Double = 0.5

    /// Creates a policy; defaults: 10 s window, 20 requests, ratio 0.5.
    public init(windowSeconds: Int = 10, minRequests: Int = 20, maxFailureRatio: Double = 0.5) {
        self.windowSeconds = windowSeconds
        self.minRequests = minRequests
        self.maxFailureRatio = maxFailureRatio
    }

    /// True when the window holds at least `minRequests` outcomes and the
    /// share of failures is strictly greater than `maxFailureRatio`.
    /// Does not look at (or change) the failed flag.
    public func shouldFail(_ state: ClusterState, nowMillis: Int64) -> Bool {
        let (failures, total) = state.failureRatio(nowMillis: nowMillis)
        guard total > 0, total >= minRequests else { return false }
        return Double(failures) > maxFailureRatio * Double(total)
    }
}
