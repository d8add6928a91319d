@testable import Admin
import Config
import Observability
import Proxy
import Routing
import Store
import Testing

/// A fleet's instance adopting the whole state another instance wrote.
@Suite("Registry adopting a fleet's state")
struct FleetAdoptTests {
    /// The shared store, as the fleet's store holds it once it accepted an adopted state.
    let store = MemoryStore()

    func registry(_ specs: [ClusterSpec]) throws -> ClusterRegistry {
        let r = ClusterRegistry(reactors: 1, policy: RollbackPolicy(), store: store)
        _ = try r.start(seed: specs)
        return r
    }

    /// What the fleet's link does with a state from the watch: the store takes it, then the registry.
    @discardableResult
    func adopt(_ r: ClusterRegistry, _ state: StoredState) -> Snapshot? {
        store.stored = state
        return r.adopt(state)
    }

    @Test("clusters added, replaced and removed as the state says; unchanged definitions keep their runtime")
    func definitions() throws {
        let r = try registry([spec("v1", "1.0"), spec("v2", "2.0")])
        let v1 = try #require(r.snapshot.clusters.first { $0.spec.uuid == "v1" })
        let before = r.generation
        var state = r.storedState
        state.apply(.delete(uuid: "v2"))
        state.apply(.put(spec("v3", "3.0")))
        let snapshot = try #require(adopt(r, state))
        #expect(snapshot.generation == before + 1)
        #expect(Set(snapshot.clusters.map(\.spec.uuid)) == ["v1", "v3"])
        #expect(snapshot.clusters.first { $0.spec.uuid == "v1" } === v1)
        #expect(r.storedState == state)
        #expect(r.snapshot.clusters.first?.spec.uuid == "v3", "the latest addition is the latest")
    }

    @Test("failed marks, readmission, thresholds (never lowered) and drained servers follow the state")
    func runtimeState() throws {
        let r = try registry([spec("v1", "1.0"), spec("g", "2.0", mode: .gradual)])
        let g = try #require(r.snapshot.clusters.first { $0.spec.uuid == "g" })
        var state = r.storedState
        state.apply(.failed(uuid: "g", reason: "rolled back: errors", time: 77))
        state.apply(.threshold(uuid: "g", percent: 30))
        state.apply(.drain(uuid: "v1", server: ServerAddress(hostname: "127.0.0.1", port: 1001), drained: true))
        adopt(r, state)
        #expect(g.state.failure?.reason == "rolled back: errors")
        #expect(g.state.gradualThreshold == 30)
        let v1 = try #require(r.snapshot.clusters.first { $0.spec.uuid == "v1" })
        #expect(v1.health.backends[0].drained)
        // Readmitted by another instance: trusted again, at the threshold the state records.
        state.apply(.readmitted(uuid: "g"))
        adopt(r, state)
        #expect(!g.state.isFailed)
        #expect(g.state.gradualThreshold == 30)
        // This instance got further on its own: the fleet's lower figure does not pull it back.
        g.state.setGradualThreshold(45)
        state.apply(.threshold(uuid: "g", percent: 35))
        adopt(r, state)
        #expect(g.state.gradualThreshold == 45)
        // Nothing left for this instance's tick to record but its own threshold.
        #expect(r.tick() == [.threshold(uuid: "g", percent: 45)])
    }

    @Test("a failed mark this instance made and has not written yet survives a state without it")
    func localFailureKept() throws {
        let r = try registry([spec("v1", "1.0"), spec("v2", "2.0")])
        let v2 = try #require(r.snapshot.clusters.first { $0.spec.uuid == "v2" })
        #expect(v2.state.markFailed(reason: "failure ratio 12/20", at: 5))
        var state = r.storedState
        state.apply(.put(spec("v3", "3.0")))
        adopt(r, state)
        #expect(v2.state.isFailed)
        #expect(r.tick().contains(.failed(uuid: "v2", reason: "failure ratio 12/20", time: 5)))
    }
}
