import Config
import Foundation
import Locks
import Observability
import Proxy
import Rollout
import Routing
import Syscalls

/// One second of one cluster's exchanges, as the dashboard charts it.
public struct SeriesPoint: Equatable, Sendable {
    /// The unix second the point ends.
    public var second: Int64
    public var requests: Int
    /// Answers with a 5xx status (failed connects and timeouts included).
    public var errors: Int
    /// Latency percentiles of the second's exchanges in µs; nil without exchanges.
    public var p50: UInt64?
    public var p99: UInt64?

    public init(second: Int64, requests: Int, errors: Int, p50: UInt64?, p99: UInt64?) {
        self.second = second
        self.requests = requests
        self.errors = errors
        self.p50 = p50
        self.p99 = p99
    }
}

/// The data behind the live dashboard (`GET /`): the last 200 events and each cluster's
/// per-second series over 5 minutes, kept on the server so that a page opened late shows
/// history. Fed on the control-plane thread: `tick` once a second (after the registry's and
/// the rollout driver's ticks, so it sees what they did), `noticeChanges` right after an
/// API change so its events show without waiting for the tick.
///
/// Events come from comparing each look at the cluster set with the one before
/// (`ClusterChange.between`): one place sees every change whoever made it — the API, the
/// rollout driver, a reactor marking a cluster failed, the health checker — without a hook
/// in the data plane or the registry.
public final class Dashboard: Sendable {
    /// How many seconds of series are kept (and the most `GET /series` returns).
    public static let seriesSeconds = 300
    /// How many events are kept.
    public static let eventCapacity = 200

    private struct State {
        var events = EventRing(capacity: Dashboard.eventCapacity)
        /// The last look at the cluster set; nil before the first.
        var views: [ClusterView]?
        /// Per-second differences of the reactors' counters (two samples suffice).
        let windows = ExchangeWindows(keepSeconds: 2)
        /// Each cluster's points, oldest first, with its version; kept after the cluster
        /// is removed until its newest point is older than `seriesSeconds`.
        var series: [String: (version: String, points: [SeriesPoint])] = [:]
    }

    private let state = Lock(State())
    private let registry: ClusterRegistry
    private let rollouts: RolloutDriver?
    /// Unix milliseconds.
    private let clock: @Sendable () -> Int64

    public init(registry: ClusterRegistry, rollouts: RolloutDriver?,
                clock: @escaping @Sendable () -> Int64 = { Syscalls.Clock.unixMillis() }) {
        self.registry = registry
        self.rollouts = rollouts
        self.clock = clock
    }

    // MARK: Feeding

    /// The once-a-second look: one series point per cluster, then the events since the last look.
    public func tick() {
        let now = clock()
        let clusters = registry.snapshot.clusters
        let second = now / 1000
        state.withLock { s in
            s.windows.sample(clusters, now: second)
            for cluster in clusters {
                guard let w = s.windows.window(cluster.spec.uuid, seconds: 1) else { continue }
                let p50 = LatencyHistogram.percentile(50, of: w.latency), p99 = LatencyHistogram.percentile(99, of: w.latency)
                var entry = s.series[cluster.spec.uuid] ?? (cluster.spec.version, [])
                entry.version = cluster.spec.version
                if entry.points.last?.second == second { entry.points.removeLast() }
                // The timer is coarse: a late tick covers two seconds (or more), whose counts
                // are spread over them rather than shown as one spike.
                let gap = Int(min(5, max(1, second - (entry.points.last?.second ?? second - 1))))
                for k in 0..<gap {
                    let share = { (n: Int) in n / gap + (k == gap - 1 ? n % gap : 0) }
                    entry.points.append(SeriesPoint(second: second - Int64(gap - 1 - k), requests: share(w.requests),
                                                    errors: share(w.errors), p50: p50, p99: p99))
                }
                if entry.points.count > Self.seriesSeconds { entry.points.removeFirst(entry.points.count - Self.seriesSeconds) }
                s.series[cluster.spec.uuid] = entry
            }
            s.series = s.series.filter { ($0.value.points.last?.second ?? 0) > second - Int64(Self.seriesSeconds) }
        }
        noticeChanges()
    }

    /// Records the events since the last look; `cause` (e.g. "by operator") goes into their
    /// details. Call after an API change.
    public func noticeChanges(cause: String? = nil) {
        let now = clock()
        let views = currentViews()
        state.withLock { s in
            let changes = ClusterChange.between(s.views ?? [], views, cause: s.views == nil ? "at start" : cause)
            for change in changes { s.events.add(time: now, change) }
            s.views = views
        }
    }

    /// The cluster set as `ClusterChange` compares it.
    private func currentViews() -> [ClusterView] {
        let statuses = rollouts?.statuses() ?? [:]
        return registry.snapshot.clusters.map { cluster in
            let failure = cluster.state.failure
            let rollout = statuses[cluster.spec.uuid]
            var backends: [String: String] = [:]
            for b in cluster.health.backends { backends[b.server.description] = b.status }
            return ClusterView(uuid: cluster.spec.uuid, version: cluster.spec.version, definition: cluster.sequence,
                               state: failure != nil ? "failed" : cluster.health.isPending ? "pending" : "active",
                               failureReason: failure?.reason, backends: backends, phase: rollout?.state,
                               step: rollout?.step, steps: rollout?.steps ?? 0, percent: rollout?.percent,
                               rollbackReason: rollout?.reason)
        }
    }

    // MARK: Reading

    /// The events after id `after`, oldest first.
    public func events(after: Int) -> [DashboardEvent] {
        state.withLock { $0.events.after(after) }
    }

    /// Each cluster's points of the last `seconds` seconds, by uuid, with its version.
    public func series(seconds: Int) -> [String: (version: String, points: [SeriesPoint])] {
        let second = clock() / 1000
        let from = second - Int64(seconds)
        return state.withLock { s in
            s.series.mapValues { entry in (entry.version, entry.points.filter { $0.second > from }) }
        }
    }

    // MARK: Routes

    /// `GET /series` and `GET /events`, for `AdminAPI`'s extra routes (behind the token).
    public var routes: [String: @Sendable (AdminRequest) -> AdminResponse] {
        ["/series": { [self] in seriesRoute($0) }, "/events": { [self] in eventsRoute($0) }]
    }

    /// `GET /series?seconds=N` (1–300, default 300): `{"now": unixSecond, "seconds": N,
    /// "clusters": {uuid: {"version", "points": [[second, requests, errors, p50Ms, p99Ms], …]}}}`,
    /// points oldest first, one per second (a missing second had no sample), latencies
    /// null in a second without exchanges. Arrays rather than objects: 300 points per
    /// cluster, fetched whole by every page that opens.
    func seriesRoute(_ request: AdminRequest) -> AdminResponse {
        guard request.method == "GET" else { return .text(405, "method not allowed; use GET") }
        var seconds = Self.seriesSeconds
        if let text = request.queryValue("seconds") {
            guard let n = Int(text), (1...Self.seriesSeconds).contains(n) else {
                return .text(400, "seconds: must be a whole number from 1 to \(Self.seriesSeconds), not \"\(text)\"")
            }
            seconds = n
        }
        func millis(_ micros: UInt64?) -> Any {
            guard let micros else { return NSNull() }
            return (Double(micros) / 10).rounded() / 100
        }
        var clusters: [String: Any] = [:]
        for (uuid, entry) in series(seconds: seconds) {
            let points: [Any] = entry.points.map { p -> Any in
                [Int(p.second), p.requests, p.errors, millis(p.p50), millis(p.p99)] as [Any]
            }
            clusters[uuid] = ["version": entry.version, "points": points] as [String: Any]
        }
        return .json(200, JSONText.encode(["now": Int(clock() / 1000), "seconds": seconds, "clusters": clusters] as [String: Any]))
    }

    /// `GET /events?after=N` (default 0): `{"next": id of the newest event (or N), "events":
    /// [{"id", "time" (ISO 8601), "kind", "cluster", "version", "detail"}, …]}`, oldest first.
    func eventsRoute(_ request: AdminRequest) -> AdminResponse {
        guard request.method == "GET" else { return .text(405, "method not allowed; use GET") }
        var after = 0
        if let text = request.queryValue("after") {
            guard let n = Int(text), n >= 0 else {
                return .text(400, "after: must be a whole number of 0 or more, not \"\(text)\"")
            }
            after = n
        }
        let list = events(after: after)
        let rendered: [Any] = list.map { e -> Any in
            ["id": e.id, "time": Self.iso8601Millis(e.time), "kind": e.kind, "cluster": e.cluster,
             "version": e.version, "detail": e.detail] as [String: Any]
        }
        return .json(200, JSONText.encode(["next": list.last?.id ?? after, "events": rendered] as [String: Any]))
    }

    /// `2026-12-01T01:02:03.456Z`.
    static func iso8601Millis(_ millis: Int64) -> String {
        let base = iso8601(unixSeconds: millis / 1000)
        let fraction = String(Int(millis % 1000) + 1000).dropFirst()
        return base.hasSuffix("Z") ? String(base.dropLast()) + "." + fraction + "Z" : base
    }
}

extension AdminRequest {
    /// The value of `name` in the query string, percent-decoded; nil when absent.
    func queryValue(_ name: String) -> String? {
        for part in query.split(separator: "&") {
            let kv = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard kv.first.map(String.init) == name else { continue }
            let raw = kv.count > 1 ? String(kv[1]) : ""
            return raw.removingPercentEncoding ?? raw
        }
        return nil
    }
}
