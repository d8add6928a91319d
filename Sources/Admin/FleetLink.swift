import Comparator
import Fleet
import Observability
import Proxy
import Reactor

/// Joins this instance to a fleet: the state another instance writes (through the shared
/// store's watch) is adopted by the registry on the control-plane thread, rollout progress
/// follows, this instance's exchange totals are published for the leader, and the
/// leadership decides whether this instance's rollout driver judges or follows.
public final class FleetLink: Sendable {
    public let store: FleetStore
    private let registry: ClusterRegistry
    private let rollouts: RolloutDriver
    private let loop: EventLoop
    private let comparisons: ComparisonLog
    /// Length of the latency histogram the published totals are read into.
    private let buckets: Int

    public init(store: FleetStore, registry: ClusterRegistry, rollouts: RolloutDriver, loop: EventLoop, comparisons: ComparisonLog) {
        self.store = store
        self.registry = registry
        self.rollouts = rollouts
        self.loop = loop
        self.comparisons = comparisons
        buckets = LatencyHistogram.bucketCount
    }

    /// Connects everything and starts the store's threads. Until the store names this
    /// instance leader, its plans follow the store.
    public func start() {
        let store = self.store, registry = self.registry, rollouts = self.rollouts, loop = self.loop
        let comparisons = self.comparisons, buckets = self.buckets
        rollouts.setFleet(role: .follower, totals: {
            FleetWindows.sum(store.publishedWindows().values.map { FleetWindows.decode($0, buckets: buckets) })
        })
        store.connect(
            onState: { state, revision in
                loop.execute {
                    guard store.accept(state, revision: revision) else { return }
                    registry.adopt(state)
                    rollouts.storedChanged()
                    Log.info("fleet_state_adopted", ["revision": String(revision), "clusters": String(state.clusters.count)])
                }
            },
            onRole: { leading in
                loop.execute {
                    guard store.status.link == "connected" else { return }
                    rollouts.setFleet(role: leading ? .leader : .follower)
                }
            },
            totals: {
                FleetWindows.encode(ExchangeWindows.totals(registry.snapshot.clusters, comparisons: comparisons))
            })
        store.start()
        watchLink()
    }

    /// Once a second on the control-plane thread: while the store cannot be reached the
    /// driver is isolated (plans pause, local rollbacks still happen); when it is back, the
    /// driver follows or leads again.
    private func watchLink() {
        let store = self.store, rollouts = self.rollouts, loop = self.loop
        @Sendable func check() {
            let status = store.status
            if status.link != "connected" {
                if rollouts.role != .isolated { rollouts.setFleet(role: .isolated) }
            } else if rollouts.role == .isolated {
                rollouts.setFleet(role: status.leading ? .leader : .follower)
            }
            loop.schedule(after: 1_000_000_000) { check() }
        }
        loop.execute { check() }
    }

    /// `/status`'s `store` object.
    public func statusJSON() -> [String: Any] {
        let s = store.status
        var out: [String: Any] = ["kind": "etcd", "link": s.link, "revision": Int(s.revision), "instance": s.instance,
                                  "leading": s.leading, "reconnects": s.reconnects, "role": rollouts.role.rawValue]
        if let leader = s.leader { out["leader"] = leader }
        if let e = s.lastError { out["lastError"] = e }
        return out
    }

    /// Prometheus lines for the store's state.
    public func metricsText() -> String {
        let s = store.status
        return """
        # HELP switchyard_store_connected 1 while the fleet's store (etcd) answers.
        # TYPE switchyard_store_connected gauge
        switchyard_store_connected \(s.link == "connected" ? 1 : 0)
        # HELP switchyard_store_revision etcd revision of the state this instance serves.
        # TYPE switchyard_store_revision gauge
        switchyard_store_revision \(s.revision)
        # HELP switchyard_store_reconnects_total Times the link to the fleet's store was lost.
        # TYPE switchyard_store_reconnects_total counter
        switchyard_store_reconnects_total \(s.reconnects)
        # HELP switchyard_fleet_leader 1 while this instance leads the fleet's rollouts.
        # TYPE switchyard_fleet_leader gauge
        switchyard_fleet_leader \(s.leading ? 1 : 0)

        """
    }
}
