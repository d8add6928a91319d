import Routing
import Store
import Testing

/// `"resolve": "lazy"` survives the journal and the snapshot (it is not part of a server's
/// identity, so equality alone would not notice it missing).
@Suite("Lazy servers in the store")
struct LazyServerRecordTests {
    @Test("a lazy server round-trips through a journal record and a snapshot")
    func roundTrip() throws {
        let spec = ClusterSpec(uuid: "5f0e8f3a-2b1c-4d5e-9f60-7a8b9c0d1e2f", version: "1.0",
                               servers: [ServerAddress(hostname: "later.test", port: 80, lazy: true),
                                         ServerAddress(hostname: "127.0.0.1", port: 81)])
        guard case .put(let decoded) = try Records.decode(Records.encode(.put(spec), sequence: 1)).change else {
            Issue.record("not a put")
            return
        }
        #expect(decoded.servers.map(\.lazy) == [true, false])
        var state = StoredState()
        state.apply(.put(spec))
        let restored = try Records.decodeSnapshot(Records.encodeSnapshot(state))
        #expect(restored.clusters[0].spec.servers.map(\.lazy) == [true, false])
    }
}
