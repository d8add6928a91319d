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

/// Why a change set was refused. Nothing of it remains.
public enum ChangeSetError: Error, CustomStringConvertible {
    /// A change is wrong (400), naming the change by index when there are several.
    case invalid(index: Int?, ConfigError)
    /// A change names a service or cluster that does not exist (404).
    case notFound(String)
    /// `ifGeneration` no longer holds (409).
    case conflict(String)
    /// A delete would remove the last active cluster of its service (409 unless forced).
    case lastActive
    /// The store failed (500).
    case store(StoreError)

    public var description: String {
        switch self {
        case .invalid(_, let e): e.description
        case .notFound(let m): m
        case .conflict(let m): m
        case .lastActive: "it is the last active cluster of its service"
        case .store(let e): "the change could not be made durable: \(e.description)"
        }
    }

    var registryError: RegistryError {
        switch self {
        case .store(let e): .store(e)
        case .invalid(_, let e): .invalid(e)
        default: .invalid(ConfigError(field: "cluster", message: description))
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
    /// With TLS listeners: why a service host is not covered by any certificate (nil when it is).
    private let hostCoverage = Lock<(@Sendable (String) -> String?)?>(nil)
    /// Where snapshots go (the proxy's publish), set once the data plane exists.
    private let publisher = Lock<(@Sendable (Snapshot) -> Void)?>(nil)

    /// Release groups' settings from the configuration.
    private let releaseGroups: [String: ReleaseGroupSpec]
    /// Their cookie domains, as snapshots carry them.
    private let cookieDomains: [String: String]

    /// Turns backend names into addresses (hosts file first, then the system resolver).
    public let resolver: NameResolver

    public init(reactors: Int, policy: RollbackPolicy, store: StateStore? = nil, releaseGroups: [String: ReleaseGroupSpec] = [:],
                resolver: NameResolver = NameResolver()) {
        self.resolver = resolver
        self.reactors = reactors
        self.policy = policy
        self.store = store
        self.releaseGroups = releaseGroups
        self.cookieDomains = releaseGroups.compactMapValues(\.cookieDomain)
    }

    /// Whether changes survive a restart.
    public var isDurable: Bool { store != nil }

    /// Makes every service host created or changed from now on need a TLS certificate that
    /// covers it (`check` answers why not, or nil).
    public func setHostCoverage(_ check: @escaping @Sendable (String) -> String?) {
        hostCoverage.withLock { $0 = check }
    }

    /// Connects the registry to the data plane.
    public func setPublisher(_ publish: @escaping @Sendable (Snapshot) -> Void) {
        publisher.withLock { $0 = publish }
    }

    /// Resolves a cluster's servers (every address of each name); throws a ConfigError naming
    /// the first that fails and is not lazy.
    func resolve(_ spec: ClusterSpec, path: String) throws(ConfigError) -> ResolvedBackends {
        try resolver.resolve(spec, path: path)
    }

    /// Loads the start-up state: the store's when it holds any, else the configuration's
    /// clusters (which then seed the store). Failed marks and GRADUAL thresholds are restored.
    /// With `adopting`, the state a predecessor process handed over at a self-upgrade is
    /// used as it is (the store is only opened for the changes to come).
    public func start(seed specs: [ClusterSpec], services: [ServiceConfig] = [], defaultService: ServiceSpec? = nil,
                      adopting handedOver: StoredState? = nil) throws(RegistryError) -> StartReport {
        var state = StoredState(seed: specs, services: (defaultService.map { [$0] } ?? []) + services.map(\.spec),
                                serviceClusters: services.flatMap { s in s.clusters.map { (s.spec.name, $0) } })
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
        var resolved: [(StoredCluster, ResolvedBackends)] = []
        for (i, cluster) in state.clusters.enumerated() {
            do {
                let path = source == "state" ? "state.clusters[\(i)] (\(cluster.spec.uuid))"
                    : cluster.service == defaultServiceName ? "clusters[\(i)]" : "services.\(cluster.service).clusters (\(cluster.spec.uuid))"
                resolved.append((cluster, try resolve(cluster.spec, path: path)))
            } catch {
                throw .invalid(error)
            }
        }
        let groups = Dictionary(state.services.compactMap { s in s.releaseGroup.map { (s.name, $0) } }, uniquingKeysWith: { a, _ in a })
        let snapshot = contents.withLock { c -> Snapshot in
            c.model = state
            // A release group's clusters of one release share their state.
            var shared: [String: ClusterState] = [:]
            c.clusters = resolved.map { stored, backends in
                c.sequence += 1
                let addresses = backends.addresses
                let key = groups[stored.service].map { $0 + " " + stored.spec.releaseName }
                if let key, let existing = shared[key] {
                    return ClusterRuntime(spec: stored.spec, addresses: addresses, state: existing, metrics: ClusterMetrics(reactors: reactors),
                                          sequence: c.sequence,
                                          health: ClusterHealth(servers: stored.spec.servers, check: stored.spec.healthCheck,
                                                                pending: !stored.ready || backends.unresolved, pendingSince: Clock.nanoseconds()),
                                          service: stored.service, addressServers: backends.servers, unresolved: backends.unresolved)
                }
                let runtimeState = ClusterState(policy: policy)
                if let key { shared[key] = runtimeState }
                if let f = stored.failure { _ = runtimeState.markFailed(reason: f.reason, at: f.time) }
                runtimeState.setGradualThreshold(stored.threshold)
                // A cluster that had not passed its readiness gate waits for it again (its
                // timeout counts from now); drained backends stay drained.
                let health = ClusterHealth(servers: stored.spec.servers, check: stored.spec.healthCheck,
                                           pending: !stored.ready || backends.unresolved, pendingSince: Clock.nanoseconds())
                for server in stored.drained {
                    if let i = health.index(of: server) { health.setDrained(true, server: i) }
                }
                return ClusterRuntime(spec: stored.spec, addresses: addresses, state: runtimeState,
                                      metrics: ClusterMetrics(reactors: reactors), sequence: c.sequence, health: health,
                                      service: stored.service, addressServers: backends.servers, unresolved: backends.unresolved)
            }
            c.generation += 1
            return makeSnapshot(c)
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

    /// Adds a cluster to the default service, or replaces the one with the same uuid (which
    /// also re-admits it if it had been marked failed; its GRADUAL progress is kept unless the
    /// servers, version or mode change). Returns the published snapshot.
    @discardableResult
    public func put(_ spec: ClusterSpec) throws(RegistryError) -> Snapshot {
        do {
            return try apply([.put(service: defaultServiceName, spec)], paths: ["cluster"]).snapshot
        } catch {
            throw error.registryError
        }
    }

    /// Removes a cluster, of whichever service. Refuses (`.lastActive`) to remove the last
    /// cluster of its service not marked failed unless `force`: that would leave clients with 503s.
    public func delete(uuid: String, force: Bool = false) throws(RegistryError) -> DeleteOutcome {
        do {
            _ = try apply([.delete(service: nil, uuid: uuid)], force: force)
            return .deleted
        } catch {
            switch error {
            case .notFound: return .notFound
            case .lastActive: return .lastActive
            default: throw error.registryError
            }
        }
    }

    /// Applies changes as one: every change is validated first (against the state the ones
    /// before it leave), then all are made durable as one record and published as one
    /// snapshot, so no exchange sees some of them without the others. With `ifGeneration`,
    /// a snapshot that moved on since refuses the whole set. `paths` name each change's
    /// cluster in errors (default `changes[i].put`).
    @discardableResult
    public func apply(_ changes: [ServiceChange], ifGeneration: UInt64? = nil, force: Bool = false,
                      paths: [String]? = nil) throws(ChangeSetError) -> (snapshot: Snapshot, uuids: [String]) {
        guard !changes.isEmpty else { throw .invalid(index: nil, ConfigError(field: "changes", message: "must list at least one change")) }
        func path(_ i: Int) -> String {
            if let given = paths.flatMap({ i < $0.count ? $0[i] : nil }) { return given }
            switch changes[i] {
            case .put: return "changes[\(i)].put"
            case .putService: return "changes[\(i)].putService"
            case .delete: return "changes[\(i)].delete"
            case .deleteService: return "changes[\(i)].deleteService"
            }
        }
        // Names are resolved before the lock: a slow resolver must not hold up other changes.
        var addresses: [Int: ResolvedBackends] = [:]
        for (i, change) in changes.enumerated() {
            guard case .put(_, let spec) = change else { continue }
            do { addresses[i] = try resolve(spec, path: path(i)) } catch { throw .invalid(index: i, error) }
        }
        let result = contents.withLock { c -> Result<(Snapshot, [String]), ChangeSetError> in
            if let ifGeneration, ifGeneration != c.generation {
                return .failure(.conflict("the configuration changed: generation is \(c.generation), not \(ifGeneration)"))
            }
            var recorded: [StateChange] = []
            var sim = c.model
            for (i, change) in changes.enumerated() {
                let stateChange: StateChange
                switch validate(change, index: i, path: path(i), in: sim, c, force: force, batch: changes) {
                case .success(let s): stateChange = s
                case .failure(let e): return .failure(e)
                }
                sim.apply(stateChange)
                recorded.append(stateChange)
            }
            do throws(StoreError) {
                try record(recorded.count == 1 ? recorded[0] : .changeSet(recorded), in: &c)
            } catch {
                return .failure(.store(error))
            }
            for (i, change) in recorded.enumerated() { applyInMemory(change, addresses: addresses[i], in: &c) }
            compactIfWanted(&c)
            c.generation += 1
            let uuids = changes.compactMap { change -> String? in
                if case .put(_, let spec) = change { return spec.uuid }
                return nil
            }
            return .success((makeSnapshot(c), uuids))
        }
        switch result {
        case .success(let (snapshot, uuids)):
            publish(snapshot)
            return (snapshot, uuids)
        case .failure(let error):
            if case .store(let e) = error {
                // In a fleet, another instance writing first is a conflict, not a failure.
                if case .conflict = e {
                    Log.notice("state_write_conflict", ["change": "changes", "error": e.description])
                } else {
                    Log.error("state_write_failed", ["change": "changes", "error": e.description])
                }
            }
            throw error
        }
    }

    /// Checks one change against the state the earlier changes of its set leave (`sim`);
    /// returns the record it makes.
    private func validate(_ change: ServiceChange, index i: Int, path: String, in sim: StoredState, _ c: Contents, force: Bool,
                          batch: [ServiceChange]) -> Result<StateChange, ChangeSetError> {
        switch change {
        case .put(let service, let spec):
            if service != defaultServiceName, sim.serviceIndex(of: service) == nil {
                return .failure(.notFound("no service called \(service)"))
            }
            if let existing = sim.index(of: spec.uuid), sim.clusters[existing].service != service {
                return .failure(.invalid(index: i, ConfigError(field: path + ".uuid",
                    message: "\"\(spec.uuid)\" is a cluster of service \(sim.clusters[existing].service)")))
            }
            // A release group's clusters of one release must move alike.
            if let group = sim.services.first(where: { $0.name == service })?.releaseGroup {
                let members = Set(sim.services.filter { $0.releaseGroup == group }.map(\.name))
                for other in sim.clusters where members.contains(other.service) && other.service != service
                    && other.spec.releaseName == spec.releaseName && !Self.transitionsAgree(other.spec, spec) {
                    return .failure(.invalid(index: i, ConfigError(field: path + ".upgradeTransition",
                        message: "must equal that of cluster \(other.spec.uuid) of service \(other.service): release \(spec.releaseName) of release group \(group) moves as one")))
                }
            }
            return .success(service == defaultServiceName ? .put(spec) : .putIn(service: service, spec))
        case .delete(let service, let uuid):
            guard let at = sim.index(of: uuid), service == nil || sim.clusters[at].service == service else {
                return .failure(.notFound("no cluster with uuid \(uuid)" + (service.map { " in service \($0)" } ?? "")))
            }
            let owner = sim.clusters[at].service
            let failed = { (u: String) in c.clusters.first { $0.spec.uuid == u }?.state.isFailed ?? false }
            if !force && !failed(uuid) && !sim.clusters.contains(where: { $0.service == owner && $0.spec.uuid != uuid && !failed($0.spec.uuid) }) {
                return .failure(.lastActive)
            }
            return .success(.delete(uuid: uuid))
        case .putService(let spec):
            var services = sim.services
            if let k = services.firstIndex(where: { $0.name == spec.name }) { services[k] = spec } else { services.append(spec) }
            let at = path.isEmpty ? "" : path + "."
            if let check = hostCoverage.withLock({ $0 }) {
                for (k, host) in spec.hosts.enumerated() {
                    if let why = check(host) { return .failure(.invalid(index: i, ConfigError(field: at + "hosts[\(k)]", message: why))) }
                }
            }
            if let conflict = serviceConflict(services) {
                let host = services[conflict.service].name == spec.name ? conflict.host : spec.hosts.firstIndex(of: services[conflict.service].hosts[conflict.host]) ?? 0
                return .failure(.invalid(index: i, ConfigError(field: at + "hosts[\(host)]", message: conflict.message)))
            }
            do {
                try ServiceJSON.validateGroups(services, groups: releaseGroups) { k in services[k].name == spec.name ? (path.isEmpty ? "service" : path) : "services.\(services[k].name)" }
            } catch {
                return .failure(.invalid(index: i, error))
            }
            return .success(.putService(spec))
        case .deleteService(let name):
            guard name != defaultServiceName else {
                return .failure(.invalid(index: i, ConfigError(field: path.isEmpty ? "name" : path, message: "the default service cannot be deleted (delete its clusters instead)")))
            }
            guard sim.serviceIndex(of: name) != nil else { return .failure(.notFound("no service called \(name)")) }
            return .success(.deleteService(name: name))
        }
    }

    /// Whether two clusters of one release move alike: same mode, options and plan.
    static func transitionsAgree(_ a: ClusterSpec, _ b: ClusterSpec) -> Bool {
        a.mode == b.mode && a.sessionTimeout == b.sessionTimeout && a.percentageTransitionPerRequest == b.percentageTransitionPerRequest
            && a.rollout == b.rollout
    }

    /// Makes an accepted (and recorded) change in the runtime cluster set.
    private func applyInMemory(_ change: StateChange, addresses: ResolvedBackends?, in c: inout Contents) {
        switch change {
        case .put(let spec):
            putRuntime(spec, service: defaultServiceName, addresses: addresses ?? ResolvedBackends(), in: &c)
        case .putIn(let service, let spec):
            putRuntime(spec, service: service, addresses: addresses ?? ResolvedBackends(), in: &c)
        case .delete(let uuid):
            guard let index = c.clusters.firstIndex(where: { $0.spec.uuid == uuid }) else { return }
            let removed = c.clusters.remove(at: index)
            Log.notice("cluster_removed", ["uuid": uuid, "version": removed.spec.version, "service": removed.service])
        case .putService(let spec):
            Log.notice("service_put", ["service": spec.name, "hosts": spec.hosts.joined(separator: ","), "pathPrefix": spec.pathPrefix])
        case .deleteService(let name):
            c.clusters.removeAll { $0.service == name }
            Log.notice("service_removed", ["service": name])
        default:
            break
        }
    }

    private func putRuntime(_ spec: ClusterSpec, service: String, addresses backends: ResolvedBackends, in c: inout Contents) {
        c.sequence += 1
        let addresses = backends.addresses
        // The store decided whether the definition starts behind its readiness gate; a lazy
        // name that does not resolve yet holds it there too.
        let ready = (c.model.index(of: spec.uuid).map { c.model.clusters[$0].ready } ?? (spec.healthCheck == nil)) && !backends.unresolved
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
                                             health: health, service: service, addressServers: backends.servers,
                                             unresolved: backends.unresolved))
            Log.notice("cluster_replaced", ["uuid": spec.uuid, "version": spec.version, "mode": spec.mode.rawValue, "service": service,
                                            "gradualProgress": keep ? "kept" : "reset", "state": ready ? "active" : "pending"])
        } else {
            let health = ClusterHealth(servers: spec.servers, check: spec.healthCheck, pending: !ready, pendingSince: Clock.nanoseconds())
            c.clusters.append(ClusterRuntime(spec: spec, addresses: addresses, state: sharedState(spec, service: service, c),
                                             metrics: ClusterMetrics(reactors: reactors), sequence: c.sequence, health: health, service: service,
                                             addressServers: backends.servers, unresolved: backends.unresolved))
            Log.notice("cluster_added", ["uuid": spec.uuid, "version": spec.version, "mode": spec.mode.rawValue, "service": service,
                                         "servers": spec.servers.map(\.description).joined(separator: ","),
                                         "state": ready ? "active" : "pending"])
        }
    }

    /// The shared state of a new cluster: in a release group, the state of the same release's
    /// cluster in another service of the group (so failure, GRADUAL threshold and plan step
    /// are one for the release); otherwise a new one.
    private func sharedState(_ spec: ClusterSpec, service: String, _ c: Contents) -> ClusterState {
        if let group = c.model.services.first(where: { $0.name == service })?.releaseGroup {
            let members = Set(c.model.services.filter { $0.releaseGroup == group }.map(\.name))
            if let sibling = c.clusters.first(where: { members.contains($0.service) && $0.service != service
                && $0.spec.releaseName == spec.releaseName }) {
                return sibling.state
            }
        }
        return ClusterState(policy: policy)
    }

    /// The published view: every service that exists (the default one when it has clusters,
    /// has settings of its own, or is the only one) with its clusters.
    private func makeSnapshot(_ c: Contents) -> Snapshot {
        Snapshot(generation: c.generation, services: Self.activeServices(c.model), clusters: c.clusters, cookieDomains: cookieDomains)
    }

    static func activeServices(_ model: StoredState) -> [ServiceSpec] {
        var services = model.services.filter { $0.name != defaultServiceName }
        let own = model.services.first { $0.name == defaultServiceName }
        if own != nil || services.isEmpty || model.clusters.contains(where: { $0.service == defaultServiceName }) {
            services.append(own ?? .catchAll)
        }
        return services
    }

    /// Creates or replaces a service (its hosts, path, cookies and group; its clusters stay).
    @discardableResult
    public func putService(_ spec: ServiceSpec) throws(ChangeSetError) -> Snapshot {
        try apply([.putService(spec)]).snapshot
    }

    /// Removes a service and all its clusters.
    @discardableResult
    public func deleteService(_ name: String) throws(ChangeSetError) -> Snapshot {
        try apply([.deleteService(name)], force: true).snapshot
    }

    /// The services that exist, in order, with their specs.
    public var services: [ServiceSpec] {
        contents.withLock { Self.activeServices($0.model) }
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
                    // In a fleet another instance often records the same fact first.
                    if case .conflict = error {
                        Log.info("state_write_conflict", ["change": "tick", "error": error.description])
                    } else {
                        Log.error("state_write_failed", ["change": "tick", "error": error.description])
                    }
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

    /// Takes the whole state another instance of the fleet wrote (from the shared store's
    /// watch) and publishes it: services and clusters added, replaced or removed as it says
    /// (a change set arrives as one state); failed marks,
    /// GRADUAL thresholds (never lowered: each instance raises its own), readiness and
    /// drained servers as it records them. Runtimes of unchanged definitions are kept (their
    /// counters and connections go on). Call on the control-plane thread. Returns the
    /// published snapshot, or nil when a server no longer resolves (nothing changes then).
    @discardableResult
    public func adopt(_ state: StoredState) -> Snapshot? {
        var resolved: [String: ResolvedBackends] = [:]
        for cluster in state.clusters {
            guard let addresses = try? resolve(cluster.spec, path: "state") else {
                Log.error("fleet_state_rejected", ["uuid": cluster.spec.uuid, "reason": "a server does not resolve"])
                return nil
            }
            resolved[cluster.spec.uuid] = addresses
        }
        let snapshot = contents.withLock { c -> Snapshot in
            let before = c.model
            var runtimes: [ClusterRuntime] = []
            for stored in state.clusters {
                let uuid = stored.spec.uuid
                let previous = c.clusters.first { $0.spec.uuid == uuid }
                let runtime: ClusterRuntime
                if let previous, previous.spec == stored.spec, previous.service == stored.service {
                    runtime = previous
                } else {
                    c.sequence += 1
                    let backends = resolved[uuid] ?? ResolvedBackends()
                    let health = ClusterHealth(servers: stored.spec.servers, check: stored.spec.healthCheck,
                                               pending: !stored.ready || backends.unresolved,
                                               pendingSince: Clock.nanoseconds(), previous: previous?.health)
                    let runtimeState = previous?.state ?? sharedState(stored.spec, service: stored.service, c)
                    if previous != nil {
                        runtimeState.readmit()
                        if stored.rollout == nil { runtimeState.setPlannedRoute(nil) }
                        runtimeState.setGradualThreshold(0)
                    }
                    runtime = ClusterRuntime(spec: stored.spec, addresses: backends.addresses, state: runtimeState,
                                             metrics: previous?.metrics ?? ClusterMetrics(reactors: reactors), sequence: c.sequence, health: health,
                                             service: stored.service, addressServers: backends.servers, unresolved: backends.unresolved)
                    Log.notice(previous == nil ? "cluster_added" : "cluster_replaced",
                               ["uuid": uuid, "version": stored.spec.version, "mode": stored.spec.mode.rawValue, "service": stored.service, "by": "fleet"])
                }
                let old = before.index(of: uuid).map { before.clusters[$0] }
                if let f = stored.failure {
                    if runtime.state.markFailed(reason: f.reason, at: f.time) {
                        Log.warning("cluster_failed", ["uuid": uuid, "version": stored.spec.version, "reason": f.reason, "by": "fleet"])
                    }
                } else if old?.failure != nil, runtime.state.isFailed {
                    runtime.state.readmit()
                }
                if stored.threshold > runtime.state.gradualThreshold { runtime.state.setGradualThreshold(stored.threshold) }
                if stored.ready, !runtime.unresolved, runtime.health.isPending { _ = runtime.health.markReady() }
                for (i, server) in stored.spec.servers.enumerated() {
                    _ = runtime.health.setDrained(stored.drained.contains(server), server: i)
                }
                runtimes.append(runtime)
            }
            for gone in c.clusters where state.index(of: gone.spec.uuid) == nil {
                Log.notice("cluster_removed", ["uuid": gone.spec.uuid, "version": gone.spec.version, "by": "fleet"])
            }
            c.clusters = runtimes
            c.model = state
            c.generation += 1
            return makeSnapshot(c)
        }
        publish(snapshot)
        return snapshot
    }

    /// Resolves every cluster's server names again and publishes a new snapshot when the
    /// addresses of any cluster changed (new runtimes sharing state, metrics and health with
    /// the ones they replace; exchanges in flight keep their snapshot and finish). A name
    /// that stops resolving keeps its last addresses (logged); a lazy name that resolves for
    /// the first time opens its cluster's gate unless a health check still has to. Names are
    /// resolved without the lock held. Returns the published snapshot, or nil when nothing
    /// changed. Blocking: call on the control plane's resolver thread, never on a reactor.
    @discardableResult
    public func refreshAddresses() -> Snapshot? {
        applyResolution(resolveNames())
    }

    /// The first half of `refreshAddresses`: resolves every cluster's names (blocking, no lock
    /// held) and returns the clusters whose addresses changed. Safe on any thread.
    public func resolveNames() -> AddressRefresh {
        let current = contents.withLock { $0.clusters }
        let hosts = resolver.readHosts()
        var fresh: [ObjectIdentifier: ResolvedBackends] = [:]
        for cluster in current {
            var next = ResolvedBackends()
            for (i, server) in cluster.spec.servers.enumerated() {
                var found = resolver.addresses(of: server.hostname, port: server.port, hosts: hosts)
                if found.isEmpty {
                    // Keep what the server had; a lazy name that never resolved has nothing.
                    found = zip(cluster.addresses, cluster.addressServers).filter { $0.1 == i }.map(\.0)
                    if found.isEmpty {
                        if !server.lazy || !cluster.unresolved {
                            Log.warning("backend_unresolved", ["uuid": cluster.spec.uuid, "backend": server.description])
                        }
                        next.unresolved = next.unresolved || server.lazy
                    } else {
                        Log.warning("backend_unresolved", ["uuid": cluster.spec.uuid, "backend": server.description,
                                                           "action": "keeping its last addresses"])
                    }
                }
                for a in found where !next.addresses.contains(a) {
                    next.addresses.append(a)
                    next.servers.append(i)
                }
            }
            let same = next.unresolved == cluster.unresolved && next.servers == cluster.addressServers
                && AddressDiff(old: cluster.addresses, new: next.addresses).isEmpty
            if !same { fresh[ObjectIdentifier(cluster)] = next }
        }
        return AddressRefresh(changed: fresh)
    }

    /// The second half of `refreshAddresses`: swaps in the new addresses and publishes (call
    /// on the control-plane thread, which orders it with every other change).
    @discardableResult
    public func applyResolution(_ refresh: AddressRefresh) -> Snapshot? {
        let fresh = refresh.changed
        guard !fresh.isEmpty else { return nil }
        var opened: [ClusterRuntime] = []
        let snapshot = contents.withLock { c -> Snapshot? in
            var changed = false
            c.clusters = c.clusters.map { cluster in
                // A definition replaced meanwhile was resolved by its own change.
                guard let next = fresh[ObjectIdentifier(cluster)] else { return cluster }
                changed = true
                let diff = AddressDiff(old: cluster.addresses, new: next.addresses)
                Log.notice("backends_resolved", ["uuid": cluster.spec.uuid, "version": cluster.spec.version, "service": cluster.service,
                                                 "added": diff.added.map(\.description).joined(separator: ","),
                                                 "removed": diff.removed.map(\.description).joined(separator: ","),
                                                 "backends": next.addresses.map(\.description).joined(separator: ",")])
                let ready = c.model.index(of: cluster.spec.uuid).map { c.model.clusters[$0].ready } ?? true
                let runtime = cluster.withAddresses(next.addresses, servers: next.servers, unresolved: next.unresolved)
                if cluster.unresolved, !next.unresolved, ready { opened.append(runtime) }
                return runtime
            }
            guard changed else { return nil }
            c.generation += 1
            return makeSnapshot(c)
        }
        if let snapshot { publish(snapshot) }
        // The gate opens once the workers have the addresses (the health object is shared).
        for cluster in opened where cluster.health.markReady() {
            Log.notice("cluster_ready", ["uuid": cluster.spec.uuid, "version": cluster.spec.version, "reason": "names resolved"])
        }
        return snapshot
    }

    /// The generation of the current snapshot (cheap: no snapshot is built).
    public var generation: UInt64 {
        contents.withLock { $0.generation }
    }

    /// The current snapshot (clusters latest first).
    public var snapshot: Snapshot {
        contents.withLock { makeSnapshot($0) }
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

/// Clusters whose addresses changed at one resolution (see `ClusterRegistry.resolveNames`).
public struct AddressRefresh: Sendable {
    /// By runtime identity: a runtime replaced in between is left alone.
    let changed: [ObjectIdentifier: ResolvedBackends]

    /// Whether nothing changed.
    public var isEmpty: Bool { changed.isEmpty }
}
