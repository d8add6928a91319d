import Comparator
import Locks
import Observability
import Proxy
import Rollout
import Routing
import Syscalls

/// An operator's command on a rollout (`POST /configuration/cluster/{id}/<command>`).
public enum RolloutCommand: String, Sendable, CaseIterable {
    case pause, resume, promote, rollback
}

/// What became of an operator's command.
public enum RolloutCommandResult: Equatable, Sendable {
    /// Done (202).
    case accepted
    /// No cluster with that uuid, or it has no rollout (404), with the message.
    case notFound(String)
    /// Not possible in the rollout's state (409), with the message.
    case refused(String)
}

/// Carries out the rollout plans of the clusters that have one: the `Rollout` state machines
/// (pure) are fed from here, on the control-plane thread — once a second with the window of
/// each version's exchanges, at once on API changes and operator commands — and their
/// actions are performed: routing the data plane (through `ClusterState`'s planned route
/// and failed flag, which reactors read with one atomic load), recording progress in the
/// state store, logging, and retiring the old cluster.
///
/// Only the latest cluster's plan runs (with the next usable cluster as its old version);
/// the plan of a cluster that is no longer the latest waits.
public final class RolloutDriver: Sendable {
    /// One cluster's rollout and what it was made for.
    private struct Entry {
        var rollout: Rollout
        /// The runtime object it drives (a PUT that replaces the cluster makes a new one).
        var runtime: ObjectIdentifier
    }

    private struct State {
        var entries: [String: Entry] = [:]
        let windows = ExchangeWindows()
    }

    private let state = Lock(State())
    private let registry: ClusterRegistry
    private let comparisons: ComparisonLog
    /// Milliseconds on the driver's clock (unix time: the API shows step start times as dates).
    private let clock: @Sendable () -> Int64

    public init(registry: ClusterRegistry, comparisons: ComparisonLog,
                clock: @escaping @Sendable () -> Int64 = { Syscalls.Clock.unixMillis() }) {
        self.registry = registry
        self.comparisons = comparisons
        self.clock = clock
    }

    /// The periodic look (once a second): samples every cluster's exchanges, then brings
    /// each rollout up to date and ticks the running one with its window.
    public func tick() {
        let now = clock()
        let snapshot = registry.snapshot
        state.withLock { s in
            // Without a plan nothing reads the windows: no sampling (a plan takes its own
            // baseline sample when it appears).
            guard snapshot.clusters.contains(where: { $0.spec.rollout != nil }) || !s.entries.isEmpty else { return }
            s.windows.sample(snapshot.clusters, now: now / 1000, comparisons: comparisons)
            sync(&s, snapshot.clusters, now: now)
            // Each service runs its own plan.
            for range in snapshot.serviceRanges {
                let clusters = Array(snapshot.clusters[range])
                guard let (new, old) = running(clusters), var entry = s.entries[new.spec.uuid] else { continue }
                let window = stats(s.windows, plan: entry.rollout.plan, new: new.spec.uuid, old: old?.spec.uuid)
                let actions = entry.rollout.tick(now: now, window: window)
                s.entries[new.spec.uuid] = entry
                perform(actions, new: new, old: old, snapshot: snapshot.clusters)
            }
        }
    }

    /// Takes up clusters added, replaced or removed (call after an API change): a new plan
    /// starts at once, so its first step routes before the API answers.
    public func clustersChanged() {
        let now = clock()
        let snapshot = registry.snapshot
        state.withLock { sync(&$0, snapshot.clusters, now: now) }
    }

    /// Applies an operator's command to the rollout of cluster `uuid`.
    public func command(_ command: RolloutCommand, uuid: String) -> RolloutCommandResult {
        let now = clock()
        let snapshot = registry.snapshot
        return state.withLock { s -> RolloutCommandResult in
            sync(&s, snapshot.clusters, now: now)
            guard let cluster = snapshot.clusters.first(where: { $0.spec.uuid == uuid }) else {
                return .notFound("no cluster with uuid \(uuid)")
            }
            guard var entry = s.entries[uuid] else {
                return .notFound("cluster \(uuid) has no rollout plan (give its upgradeTransition steps or an analysis)")
            }
            let outcome: CommandOutcome
            switch command {
            case .pause: outcome = entry.rollout.pause(now: now)
            case .resume: outcome = entry.rollout.resume(now: now)
            case .promote: outcome = entry.rollout.promote(now: now)
            case .rollback: outcome = entry.rollout.rollback(now: now)
            }
            s.entries[uuid] = entry
            switch outcome {
            case .refused(let why):
                return .refused(why)
            case .accepted(let actions):
                let old = olderUsable(than: cluster, in: snapshot.clusters)
                perform(actions, new: cluster, old: old, snapshot: snapshot.clusters)
                return .accepted
            }
        }
    }

    /// The rollout of cluster `uuid` as the API shows it; nil when it has none.
    public func status(_ uuid: String) -> RolloutStatus? {
        state.withLock { $0.entries[uuid]?.rollout.status }
    }

    /// Every rollout's status, by cluster uuid (metrics, `/status`).
    public func statuses() -> [String: RolloutStatus] {
        state.withLock { $0.entries.mapValues(\.rollout.status) }
    }

    // MARK: Keeping up with the cluster set

    /// Makes a machine for each cluster with a plan that has none (restoring the stored
    /// progress after a restart, or when a PUT kept it), forgets clusters gone.
    private func sync(_ s: inout State, _ clusters: [ClusterRuntime], now: Int64) {
        var live = Set<String>()
        for cluster in clusters {
            guard let plan = cluster.spec.rollout else { continue }
            let uuid = cluster.spec.uuid
            live.insert(uuid)
            if let entry = s.entries[uuid], entry.runtime == ObjectIdentifier(cluster), entry.rollout.plan == plan { continue }
            if let analysis = plan.analysis { s.windows.keep(atLeast: analysis.windowSeconds) }
            // A baseline sample: the new version's windows and counts start from here.
            s.windows.sample(clusters, now: now / 1000, comparisons: comparisons)
            var rollout = Rollout(plan: plan)
            var actions: [Rollout.Action] = []
            if let stored = registry.storedRollout(uuid: uuid) {
                actions = rollout.restore(stored, now: now)
                actions += firstLook(&rollout, s.windows, cluster, clusters, now: now)
            }
            s.entries[uuid] = Entry(rollout: rollout, runtime: ObjectIdentifier(cluster))
            perform(actions, new: cluster, old: olderUsable(than: cluster, in: clusters), snapshot: clusters)
        }
        for uuid in s.entries.keys where !live.contains(uuid) { s.entries[uuid] = nil }
        // A plan that has not started starts once its cluster is ready: at once without a
        // health check, after its readiness gate with one.
        for cluster in clusters where !cluster.health.isPending {
            guard var entry = s.entries[cluster.spec.uuid], entry.rollout.phase == .pending else { continue }
            var actions = entry.rollout.ready(now: now)
            actions += firstLook(&entry.rollout, s.windows, cluster, clusters, now: now)
            s.entries[cluster.spec.uuid] = entry
            perform(actions, new: cluster, old: olderUsable(than: cluster, in: clusters), snapshot: clusters)
        }
    }

    /// A tick right as a plan starts (or is taken up), so that its step counts the new
    /// version's exchanges from now rather than from the next periodic tick.
    private func firstLook(_ rollout: inout Rollout, _ windows: ExchangeWindows, _ cluster: ClusterRuntime,
                           _ clusters: [ClusterRuntime], now: Int64) -> [Rollout.Action] {
        let old = olderUsable(than: cluster, in: clusters)
        return rollout.tick(now: now, window: stats(windows, plan: rollout.plan, new: cluster.spec.uuid, old: old?.spec.uuid))
    }

    /// The plan that runs: the latest cluster not marked failed, when it has a plan, and
    /// the next usable cluster after it (its old version).
    private func running(_ clusters: [ClusterRuntime]) -> (ClusterRuntime, ClusterRuntime?)? {
        guard let latest = clusters.first(where: { !$0.state.isFailed }), latest.spec.rollout != nil else { return nil }
        return (latest, olderUsable(than: latest, in: clusters))
    }

    private func olderUsable(than cluster: ClusterRuntime, in clusters: [ClusterRuntime]) -> ClusterRuntime? {
        guard let i = clusters.firstIndex(where: { $0 === cluster }) else { return nil }
        return clusters[(i + 1)...].first { !$0.state.isFailed && $0.service == cluster.service }
    }

    /// The window the gates judge: each version's exchanges over `analysis.windowSeconds`.
    private func stats(_ windows: ExchangeWindows, plan: RolloutPlan, new: String, old: String?) -> WindowStats {
        let seconds = plan.analysis?.windowSeconds ?? Analysis.defaultWindowSeconds
        let percentile = plan.analysis?.latencyPercentile ?? Analysis.defaultLatencyPercentile
        func version(_ w: ExchangeWindow?) -> VersionWindow {
            guard let w else { return VersionWindow() }
            return VersionWindow(requests: w.requests, errors: w.errors,
                                 latencyMicros: w.latencyMicros(percentile: percentile).map { Int($0) })
        }
        let newWindow = windows.window(new, seconds: seconds)
        return WindowStats(new: version(newWindow), old: version(old.flatMap { windows.window($0, seconds: seconds) }),
                           compared: newWindow?.compared ?? 0, divergent: newWindow?.divergent ?? 0,
                           newTotal: windows.total(new))
    }

    // MARK: Actions

    private func perform(_ actions: [Rollout.Action], new: ClusterRuntime, old: ClusterRuntime?, snapshot: [ClusterRuntime]) {
        // A rollback's reason travels in the progress it records (after its route action).
        let recordedReason = actions.lazy.compactMap { action -> String? in
            if case .persist(let progress) = action { return progress.reason }
            return nil
        }.first
        for action in actions {
            switch action {
            case .route(.step(let mode)):
                switch mode {
                case .concurrent(serve: .old): new.state.setPlannedRoute(.concurrentServeOld)
                case .concurrent(serve: .new): new.state.setPlannedRoute(.concurrentServeNew)
                case .gradual(let percent): new.state.setPlannedRoute(.gradual, percent: percent)
                case .instant: new.state.setPlannedRoute(.instant)
                }
            case .route(.allNew):
                new.state.setPlannedRoute(.completed)
            case .route(.allOld):
                // The failed flag sends every exchange back to the old version at once; the
                // registry's tick makes it durable, and a restart restores it from the plan too.
                let reason = "rolled back: " + (recordedReason ?? "rollout")
                if new.state.markFailed(reason: reason, at: Syscalls.Clock.unixSeconds()) {
                    Log.warning("cluster_failed", ["uuid": new.spec.uuid, "version": new.spec.version, "reason": reason])
                }
            case .markState:
                break   // the machine's state is what the API shows
            case .persist(let progress):
                registry.recordRollout(uuid: new.spec.uuid, progress: progress)
            case .log(let line):
                let level: LogLevel = line.event == "rollout_rolled_back" ? .warning : .notice
                Log.write(level, line.event, fields: [("cluster", new.spec.uuid), ("version", new.spec.version)]
                          + line.fields.map { ($0.key, $0.value) })
            case .retireOld:
                // Exchanges in flight hold the old cluster's runtime: they finish as they are.
                guard let old, old !== new else { continue }
                do {
                    _ = try registry.delete(uuid: old.spec.uuid, force: true)
                    Log.notice("cluster_retired", ["uuid": old.spec.uuid, "version": old.spec.version, "by": new.spec.uuid])
                } catch {
                    Log.error("cluster_retire_failed", ["uuid": old.spec.uuid, "error": error.description])
                }
            }
        }
    }
}
