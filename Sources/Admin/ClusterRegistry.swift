import Locks
import Config
import Observability
import Proxy
import Rollout
import Routing
import Store
import Synchronization
import Syscalls

/// Why a change was not made. Nothing of a refused change remains, in memory or on disk.
public enum RegistryError: Error, CustomStringConvertible {
    /// The change itself is wrong (the API answers 400).
    case invalid(ConfigError)
    /// The change could not be made durable (the API answers 500).
    case store(StoreError)

    public var description: String {
        switch self {
        case .invalid(let e): e.description
        case .store(let e): "the change could not be made durable: \(e.description)"
        }
    }
}

/// What `delete` did.
public enum DeleteOutcome: Equatable, Sendable {
    case deleted
    case notFound
    /// Refused: it is the last cluster not marked failed (the API answers 409 unless forced).
    case lastActive
}

/// What `setDrained` did.
public enum DrainOutcome: Equatable, Sendable {
    /// Recorded (or already so).
    case done
    case noCluster
    case noServer
}

/// Where the registry's start-up state came from.
public struct StartReport: Sendable {
    /// "state" (the state directory held state) or "config" (the file seeded it, or no store).
    public var source: String
    /// Warnings to log (e.g. a torn journal record dropped).
    public var warnings: [String]
    /// The published snapshot.
    public var snapshot: Snapshot
}

/// The authoritative cluster set. Every change goes: validate completely → append to the
/// state store (durable when it returns) → apply → publish a new immutable snapshot to every
/// worker. A refused change leaves nothing behind. All changes and the periodic `tick` run on
/// the control-plane thread (or at start-up, before it exists); never on a reactor.
public final class ClusterRegistry: @unchecked Sendable {
    private struct Contents {
        var clusters: [ClusterRuntime] = []
        var generation: UInt64 = 0
        var sequence: UInt64 = 0
        /// What the store holds (failed marks and thresholds as last recorded).
        var model = StoredState()
    }

    private let contents = Lock(Contents())
    private let reactors: Int
    private let policy: RollbackPolicy
    /// The durable store; nil without `--state-dir` (changes then live in memory only).
    /// Used only under `contents`' lock.
    private let store: StateStore?
    /// Where snapshots go (the proxy's publish), set once the data plane exists.
    private let publisher = Lock<(@Sendable (Snapshot) -> Void)?>(nil)

    public init(reactors: Int, policy: RollbackPolicy, store: StateStore? = nil) {
        self.reactors = reactors
        self.policy = policy
        self.store = store
    }

    /// Whether changes survive a restart.
    public var isDurable: Bool { store != nil }

    /// Connects the registry to the data plane.
    public func setPublisher(_ publish: @escaping @Sendable (Snapshot) -> Void) {
        publisher.withLock { $0 = publish }
    }

    /// Resolves a cluster's servers; throws a ConfigError naming the first that fails.
    static func resolve(_ spec: ClusterSpec, path: String) throws(ConfigError) -> [SocketAddress] {
        var out: [SocketAddress] = []
        for (i, server) in spec.servers.enumerated() {
            guard let address = SocketAddress(host: server.hostname, port: server.port) else {
                throw ConfigError(field: "\(path).servers[\(i)].hostname", message: "cannot resolve \"\(server.hostname)\"")
            }
            out.append(address)
        }
        return out
    }

    /// Loads the start-up state: the store's when it holds any, else the configuration's
    /// clusters (which then seed the store). Failed marks and GRADUAL thresholds are restored.
    /// With `adopting`, the state a predecessor process handed over at a self-upgrade is
    /// used as it is (the store is only opened for the changes to come).
    public func start(seed specs: [ClusterSpec], adopting handedOver: StoredState? = nil) throws(RegistryError) -> StartReport {
        var state = StoredState(seed: specs)
        var source = "config"
        var warnings: [String] = []
        if let handedOver {
            state = handedOver
            source = "predecessor"
            do { _ = try store?.load() } catch { throw .store(error) }
        } else if let store {
            do {
                let loaded = try store.load()
                warnings = loaded.warnings
                if let stored = loaded.state {
                    state = stored
                    source = "state"
                } else {
                    try store.compact(state)
                }
            } catch {
                throw .store(error)
            }
        }
        var resolved: [(StoredCluster, [SocketAddress])] = []
        for (i, cluster) in state.clusters.enumerated() {
            do {
                resolved.append((cluster, try Self.resolve(cluster.spec, path: source == "state" ? "state.clusters[\(i)] (\(cluster.spec.uuid))" : "clusters[\(i)]")))
            } catch {
                throw .invalid(error)
            }
        }
        let snapshot = contents.withLock { c -> Snapshot in
            c.model = state
            c.clusters = resolved.map { stored, addresses in
                c.sequence += 1
                let runtimeState = ClusterState(policy: policy)
                if let f = stored.failure { _ = runtimeState.markFailed(reason: f.reason, at: f.time) }
                runtimeState.setGradualThreshold(stored.threshold)
                // A cluster that had not passed its readiness gate waits for it again (its
                // timeout counts from now); drained backends stay drained.
                let health = ClusterHealth(servers: stored.spec.servers, check: stored.spec.healthCheck,
                                           pending: !stored.ready, pendingSince: Clock.nanoseconds())
                for server in stored.drained {
                    if let i = health.index(of: server) { health.setDrained(true, server: i) }
                }
                return ClusterRuntime(spec: stored.spec, addresses: addresses, state: runtimeState,
                                      metrics: ClusterMetrics(reactors: reactors), sequence: c.sequence, health: health)
            }
            c.generation += 1
            return Snapshot(generation: c.generation, clusters: c.clusters)
        }
        publish(snapshot)
        return StartReport(source: source, warnings: warnings, snapshot: snapshot)
    }

    /// Replaces the whole set from the configuration (no store involved; for tests and tools).
    @discardableResult
    public func load(_ specs: [ClusterSpec]) throws(ConfigError) -> Snapshot {
        do {
            return try start(seed: specs).snapshot
        } catch {
            if case .invalid(let e) = error { throw e }
            throw ConfigError(field: "state", message: error.description)
        }
    }

    /// Appends a change to the store (if any) and to the model; call under the lock.
    private func record(_ change: StateChange, in c: inout Contents) throws(StoreError) {
        if let store { try store.append(change, sequence: c.model.sequence + 1) }
        c.model.apply(change)
    }

    /// Compacts the store when it asks for it; a failure is logged, the journal stays valid.
    private func compactIfWanted(_ c: inout Contents) {
        guard let store, store.wantsCompaction else { return }
        do {
            try store.compact(c.model)
            Log.info("state_compacted", ["clusters": String(c.model.clusters.count), "sequence": String(c.model.sequence)])
        } catch {
            Log.error("state_compaction_failed", ["error": error.description])
        }
    }

    /// Adds a cluster, or replaces the one with the same uuid (which also re-admits it if it
    /// had been marked failed; its GRADUAL progress is kept unless the servers, version or
    /// mode change). Returns the published snapshot.
    @discardableResult
    public func put(_ spec: ClusterSpec) throws(RegistryError) -> Snapshot {
        let addresses: [SocketAddress]
        do { addresses = try Self.resolve(spec, path: "cluster") } catch { throw .invalid(error) }
        let result = contents.withLock { c -> Result<Snapshot, StoreError> in
            do throws(StoreError) {
                try record(.put(spec), in: &c)
            } catch {
                return .failure(error)
            }
            c.sequence += 1
            // The store decided whether the definition starts behind its readiness gate.
            let ready = c.model.index(of: spec.uuid).map { c.model.clusters[$0].ready } ?? (spec.healthCheck == nil)
            if let index = c.clusters.firstIndex(where: { $0.spec.uuid == spec.uuid }) {
                let old = c.clusters.remove(at: index)
                let progress = old.state.gradualThreshold
                let keep = StoredState.keepsProgress(old.spec, spec)
                old.state.readmit()
                if keep { old.state.setGradualThreshold(progress) }
                // A plan that starts again takes no exchange until the driver starts it.
                if let i = c.model.index(of: spec.uuid), c.model.clusters[i].rollout == nil { old.state.setPlannedRoute(nil) }
                // Replacing counts as the most recent addition (it wins a version tie).
                let health = ClusterHealth(servers: spec.servers, check: spec.healthCheck, pending: !ready,
                                           pendingSince: Clock.nanoseconds(), previous: old.health)
                c.clusters.append(ClusterRuntime(spec: spec, addresses: addresses, state: old.state, metrics: old.metrics, sequence: c.sequence,
                                                 health: health))
                Log.notice("cluster_replaced", ["uuid": spec.uuid, "version": spec.version, "mode": spec.mode.rawValue,
                                                "gradualProgress": keep ? "kept" : "reset", "state": ready ? "active" : "pending"])
            } else {
                let health = ClusterHealth(servers: spec.servers, check: spec.healthCheck, pending: !ready, pendingSince: Clock.nanoseconds())
                c.clusters.append(ClusterRuntime(spec: spec, addresses: addresses, state: ClusterState(policy: policy),
                                                 metrics: ClusterMetrics(reactors: reactors), sequence: c.sequence, health: health))
                Log.notice("cluster_added", ["uuid": spec.uuid, "version": spec.version, "mode": spec.mode.rawValue,
                                             "servers": spec.servers.map(\.description).joined(separator: ","),
                                             "state": ready ? "active" : "pending"])
            }
            compactIfWanted(&c)
            c.generation += 1
            return .success(Snapshot(generation: c.generation, clusters: c.clusters))
        }
        switch result {
        case .success(let snapshot):
            publish(snapshot)
            return snapshot
        case .failure(let error):
            Log.error("state_write_failed", ["change": "put", "uuid": spec.uuid, "error": error.description])
            throw .store(error)
        }
    }

    /// Removes a cluster. Refuses (`.lastActive`) to remove the last cluster not marked
    /// failed unless `force`: that would leave clients with 503s.
    public func delete(uuid: String, force: Bool = false) throws(RegistryError) -> DeleteOutcome {
        let result = contents.withLock { c -> Result<(DeleteOutcome, Snapshot?), StoreError> in
            guard let index = c.clusters.firstIndex(where: { $0.spec.uuid == uuid }) else { return .success((.notFound, nil)) }
            let target = c.clusters[index]
            if !force && !target.state.isFailed && !c.clusters.contains(where: { $0 !== target && !$0.state.isFailed }) {
                return .success((.lastActive, nil))
            }
            do throws(StoreError) {
                try record(.delete(uuid: uuid), in: &c)
            } catch {
                return .failure(error)
            }
            let removed = c.clusters.remove(at: index)
            Log.notice("cluster_removed", ["uuid": uuid, "version": removed.spec.version, "forced": force ? "yes" : "no"])
            compactIfWanted(&c)
            c.generation += 1
            return .success((.deleted, Snapshot(generation: c.generation, clusters: c.clusters)))
        }
        switch result {
        case .success(let (outcome, snapshot)):
            if let snapshot { publish(snapshot) }
            return outcome
        case .failure(let error):
            Log.error("state_write_failed", ["change": "delete", "uuid": uuid, "error": error.description])
            throw .store(error)
        }
    }

    /// Drains (no new exchanges; exchanges in flight finish; workers close pooled idle
    /// connections to it) or re-enables one server of a cluster. Durable before it takes
    /// effect, like every change; no new snapshot is needed (workers read the shared word).
    public func setDrained(uuid: String, server: ServerAddress, drained: Bool) throws(RegistryError) -> DrainOutcome {
        let result = contents.withLock { c -> Result<DrainOutcome, StoreError> in
            guard let cluster = c.clusters.first(where: { $0.spec.uuid == uuid }) else { return .success(.noCluster) }
            guard let index = cluster.health.index(of: server) else { return .success(.noServer) }
            let listed = cluster.spec.servers[index]
            let current = cluster.health.backends[index].drained
            if current == drained { return .success(.done) }
            do throws(StoreError) {
                try record(.drain(uuid: uuid, server: listed, drained: drained), in: &c)
            } catch {
                return .failure(error)
            }
            cluster.health.setDrained(drained, server: index)
            Log.notice(drained ? "backend_drained" : "backend_enabled",
                       ["uuid": uuid, "version": cluster.spec.version, "backend": listed.description])
            compactIfWanted(&c)
            return .success(.done)
        }
        switch result {
        case .success(let outcome): return outcome
        case .failure(let error):
            Log.error("state_write_failed", ["change": drained ? "drain" : "enable", "uuid": uuid, "error": error.description])
            throw .store(error)
        }
    }

    /// Records what the data plane and the health checker changed since the last tick:
    /// clusters marked failed (through the shared `ClusterState`), GRADUAL thresholds that
    /// moved, and clusters that passed their readiness gate. Called
    /// once a second on the control-plane thread, so a threshold is journaled at most once a
    /// second per cluster and reactors never write to the store. Returns the changes recorded.
    @discardableResult
    public func tick() -> [StateChange] {
        contents.withLock { c -> [StateChange] in
            var changes: [StateChange] = []
            for cluster in c.clusters {
                guard let stored = c.model.index(of: cluster.spec.uuid).map({ c.model.clusters[$0] }) else { continue }
                if let failure = cluster.state.failure, stored.failure == nil {
                    changes.append(.failed(uuid: cluster.spec.uuid, reason: failure.reason, time: failure.time))
                } else if cluster.state.failure == nil, stored.failure != nil {
                    changes.append(.readmitted(uuid: cluster.spec.uuid))
                }
                let threshold = cluster.state.gradualThreshold
                if cluster.spec.mode == .gradual, threshold != stored.threshold {
                    changes.append(.threshold(uuid: cluster.spec.uuid, percent: threshold))
                }
                if !stored.ready, !cluster.health.isPending {
                    changes.append(.ready(uuid: cluster.spec.uuid))
                }
            }
            var recorded: [StateChange] = []
            for change in changes {
                do throws(StoreError) {
                    try record(change, in: &c)
                    recorded.append(change)
                } catch {
                    // The model keeps the old value, so the next tick tries again.
                    Log.error("state_write_failed", ["change": "tick", "error": error.description])
                    break
                }
            }
            compactIfWanted(&c)
            return recorded
        }
    }

    /// Records a cluster's rollout progress durably (returns once the store has it). False
    /// when the cluster is gone or the store failed (logged; the driver records it again on
    /// its next change).
    @discardableResult
    public func recordRollout(uuid: String, progress: RolloutProgress) -> Bool {
        contents.withLock { c -> Bool in
            guard c.model.index(of: uuid) != nil else { return false }
            do throws(StoreError) {
                try record(.rollout(uuid: uuid, progress: progress), in: &c)
            } catch {
                Log.error("state_write_failed", ["change": "rollout", "uuid": uuid, "error": error.description])
                return false
            }
            compactIfWanted(&c)
            return true
        }
    }

    /// The rollout progress the store holds for a cluster, if any.
    public func storedRollout(uuid: String) -> RolloutProgress? {
        contents.withLock { c in c.model.index(of: uuid).flatMap { c.model.clusters[$0].rollout } }
    }

    /// The generation of the current snapshot (cheap: no snapshot is built).
    public var generation: UInt64 {
        contents.withLock { $0.generation }
    }

    /// The current snapshot (clusters latest first).
    public var snapshot: Snapshot {
        contents.withLock { Snapshot(generation: $0.generation, clusters: $0.clusters) }
    }

    /// The state as the store holds it (for tests and the status page).
    public var storedState: StoredState {
        contents.withLock { $0.model }
    }

    private func publish(_ snapshot: Snapshot) {
        let publish = publisher.withLock { $0 }
        publish?(snapshot)
    }
}
