@testable import Admin
import Config
import Observability
import Proxy
import Routing
import Store
import Testing

/// A store in memory that can be told to fail, recording what it was given.
final class MemoryStore: StateStore {
    var stored: StoredState?
    var appended: [(UInt64, StateChange)] = []
    var failAppends = false
    var wantsCompaction = false
    var compactions = 0

    func load() throws(StoreError) -> (state: StoredState?, warnings: [String]) { (stored, []) }

    func append(_ change: StateChange, sequence: UInt64) throws(StoreError) {
        if failAppends { throw .io(path: "/state/journal", call: "write", errno: 28) }
        appended.append((sequence, change))
        var s = stored ?? StoredState()
        s.apply(change)
        precondition(s.sequence == sequence)
        stored = s
    }

    func compact(_ state: StoredState) throws(StoreError) {
        stored = state
        compactions += 1
        wantsCompaction = false
    }
}

func spec(_ uuid: String, _ version: String, port: Int = 1001, mode: UpgradeMode = .instant, step: Double? = nil) -> ClusterSpec {
    ClusterSpec(uuid: uuid, version: version, servers: [ServerAddress(hostname: "127.0.0.1", port: port)], mode: mode,
                percentageTransitionPerRequest: mode == .gradual ? (step ?? 5) : nil)
}

@Suite("Registry and store")
struct RegistryStoreTests {
    @Test("an empty store is seeded from the file; a store with state wins and restores failed marks and thresholds")
    func startSources() throws {
        let store = MemoryStore()
        let first = ClusterRegistry(reactors: 1, policy: RollbackPolicy(), store: store)
        let report = try first.start(seed: [spec("v1", "1.0")])
        #expect(report.source == "config")
        #expect(store.compactions == 1 && store.stored?.clusters.map(\.spec.uuid) == ["v1"])

        try first.put(spec("g", "2.0", mode: .gradual))
        try first.put(spec("bad", "3.0"))
        let bad = try #require(first.snapshot.clusters.first { $0.spec.uuid == "bad" })
        #expect(bad.state.markFailed(reason: "no healthy backend", at: 1234))
        first.snapshot.clusters.first { $0.spec.uuid == "g" }?.state.setGradualThreshold(42.5)
        let recorded = first.tick()
        #expect(recorded.count == 2)
        #expect(recorded.contains(.failed(uuid: "bad", reason: "no healthy backend", time: 1234)))
        #expect(recorded.contains(.threshold(uuid: "g", percent: 42.5)))
        #expect(first.tick().isEmpty, "nothing moved since the last tick")

        let second = ClusterRegistry(reactors: 1, policy: RollbackPolicy(), store: store)
        let restored = try second.start(seed: [spec("other", "9.0")])
        #expect(restored.source == "state")
        let clusters = Dictionary(uniqueKeysWithValues: restored.snapshot.clusters.map { ($0.spec.uuid, $0) })
        #expect(Set(clusters.keys) == ["v1", "g", "bad"])
        #expect(clusters["bad"]?.state.failure?.reason == "no healthy backend")
        #expect(clusters["bad"]?.state.failure?.time == 1234)
        #expect(clusters["g"]?.state.gradualThreshold == 42.5)
    }

    @Test("a change the store cannot write is refused and leaves nothing behind")
    func storeFailure() throws {
        let store = MemoryStore()
        let registry = ClusterRegistry(reactors: 1, policy: RollbackPolicy(), store: store)
        _ = try registry.start(seed: [spec("v1", "1.0"), spec("v2", "2.0")])
        let before = registry.snapshot
        store.failAppends = true
        #expect(throws: RegistryError.self) { try registry.put(spec("v3", "3.0")) }
        #expect(throws: RegistryError.self) { _ = try registry.delete(uuid: "v2") }
        #expect(registry.snapshot.generation == before.generation)
        #expect(registry.snapshot.clusters.map(\.spec.uuid) == before.clusters.map(\.spec.uuid))
        #expect(registry.storedState.clusters.map(\.spec.uuid) == ["v1", "v2"])
        // A failure the tick cannot record is tried again at the next tick.
        _ = registry.snapshot.clusters.first { $0.spec.uuid == "v2" }?.state.markFailed(reason: "r", at: 1)
        #expect(registry.tick().isEmpty)
        store.failAppends = false
        #expect(registry.tick() == [.failed(uuid: "v2", reason: "r", time: 1)])
    }

    @Test("the last active cluster is not deleted unless forced; failed clusters do not count")
    func lastActive() throws {
        let registry = ClusterRegistry(reactors: 1, policy: RollbackPolicy())
        _ = try registry.start(seed: [spec("v1", "1.0"), spec("v2", "2.0")])
        #expect(try registry.delete(uuid: "nope") == .notFound)
        _ = registry.snapshot.clusters.first { $0.spec.uuid == "v2" }?.state.markFailed(reason: "r", at: 1)
        #expect(try registry.delete(uuid: "v1") == .lastActive)
        #expect(try registry.delete(uuid: "v2") == .deleted, "a failed cluster may always go")
        #expect(try registry.delete(uuid: "v1") == .lastActive)
        #expect(try registry.delete(uuid: "v1", force: true) == .deleted)
        #expect(registry.snapshot.clusters.isEmpty)
    }

    @Test("PUT keeps live GRADUAL progress unless servers, version or mode change; it re-admits a failed cluster")
    func putProgress() throws {
        let store = MemoryStore()
        let registry = ClusterRegistry(reactors: 1, policy: RollbackPolicy(), store: store)
        _ = try registry.start(seed: [spec("v1", "1.0"), spec("g", "2.0", mode: .gradual)])
        let state = try #require(registry.snapshot.clusters.first { $0.spec.uuid == "g" }?.state)
        state.setGradualThreshold(30)
        _ = state.markFailed(reason: "r", at: 1)
        try registry.put(spec("g", "2.0", mode: .gradual, step: 1))
        #expect(!state.isFailed)
        #expect(state.gradualThreshold == 30)
        try registry.put(spec("g", "2.1", mode: .gradual, step: 1))
        #expect(state.gradualThreshold == 0)
        #expect(store.appended.count == 2)
    }
}

@Suite("Readiness and drain in the registry")
struct RegistryHealthTests {
    @Test("a PUT with a health check starts pending; the tick journals readiness; drain is journaled before it applies, IPv6 in brackets")
    func readinessAndDrain() throws {
        let store = MemoryStore()
        let registry = ClusterRegistry(reactors: 1, policy: RollbackPolicy(), store: store)
        _ = try registry.start(seed: [spec("v1", "1.0")])
        var v2 = ClusterSpec(uuid: "v2", version: "2.0", servers: [ServerAddress(hostname: "127.0.0.1", port: 1002),
                                                                    ServerAddress(hostname: "::1", port: 1003)])
        v2.healthCheck = HealthCheckSpec(healthyThreshold: 1)
        try registry.put(v2)
        let live = try #require(registry.snapshot.clusters.first { $0.spec.uuid == "v2" })
        #expect(live.health.isPending)
        #expect(registry.storedState.clusters.last?.ready == false)
        #expect(registry.tick().isEmpty)
        _ = live.health.record(.status(200), server: 0)
        live.health.markReady()
        #expect(registry.tick() == [.ready(uuid: "v2")])

        let api = AdminAPI(registry: registry, metrics: ProxyMetrics(reactors: 1), token: nil, workers: 1)
        func post(_ path: String) -> Int {
            api.handle(AdminRequest(method: "POST", path: path, query: "", headers: [], body: [])).status
        }
        #expect(post("/configuration/cluster/v2/servers/[::1]:1003/drain") == 202)
        #expect(store.appended.last?.1 == .drain(uuid: "v2", server: ServerAddress(hostname: "::1", port: 1003), drained: true))
        #expect(live.health.backends.map(\.status) == ["up", "drained"])
        #expect(ClusterHealthCheck.excluded(live.health, 1))
        // Already drained: nothing more is journaled.
        let count = store.appended.count
        #expect(post("/configuration/cluster/v2/servers/%5B::1%5D:1003/drain") == 202)
        #expect(store.appended.count == count)
        #expect(post("/configuration/cluster/v2/servers/[::1]:1003/enable") == 202)
        #expect(live.health.backends.map(\.status) == ["up", "unknown"])
        #expect(post("/configuration/cluster/v2/servers/[::2]:1003/enable") == 404)
        #expect(post("/configuration/cluster/v3/servers/[::1]:1003/enable") == 404)
        // A store that fails: 500, nothing changes.
        store.failAppends = true
        #expect(post("/configuration/cluster/v2/servers/127.0.0.1:1002/drain") == 500)
        #expect(live.health.backends[0].drained == false)
    }
}

/// Reads the routing word as a worker does.
enum ClusterHealthCheck {
    static func excluded(_ health: ClusterHealth, _ index: Int) -> Bool { health.isExcluded(index, word: health.word) }
}
