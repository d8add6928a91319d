import Foundation
import Synchronization
import Testing

/// Three real switchyard instances sharing one real etcd: changes reach every instance,
/// conflicting changes never lose one, the fleet's leader judges and rolls back for all,
/// a dead leader is replaced within its lease, and an etcd outage costs clients nothing.
@Suite("Fleet through etcd", .serialized, .enabled(if: EtcdProcess.binary != nil, "etcd is not installed (apt-get install etcd-server)"))
struct FleetTests {
    static func cluster(_ port: Int, _ version: String, _ uuid: String, plan: [String: Any]? = nil) -> [String: Any] {
        ProxyProcess.cluster(ports: [port], version: version, uuid: uuid, mode: plan)
    }

    static func body(_ cluster: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: ["cluster": cluster]), as: UTF8.self)
    }

    static func served(_ p: ProxyProcess, headers: [String: String] = [:]) -> String? {
        guard let c = try? ClientConnection(port: p.port, timeout: 2) else { return nil }
        defer { c.close() }
        return (try? c.get("/", headers: headers))?.header("X-Backend")
    }

    static func revision(_ p: ProxyProcess) throws -> Int { try Fleet.store(p)["revision"] as? Int ?? -1 }

    @Test("a PUT through instance 1 is served by instances 2 and 3 within a second; 100 changes measured")
    func changePropagates() throws {
        let v1 = try TestBackend.named("v1"), v2 = try TestBackend.named("v2")
        let fleet = try Fleet(clusters: [Self.cluster(v1.port, "1.0", "v1")])
        defer { fleet.stop(); v1.stop(); v2.stop() }
        for p in fleet.live { #expect(Self.served(p) == "v1") }
        _ = try fleet.member(1).putCluster(Self.cluster(v2.port, "2.0", "v2"))
        // The writer answers once it serves the change itself.
        #expect(Self.served(fleet.member(1)) == "v2")
        let started = Date()
        for i in 2...3 {
            try waitUntil("instance \(i) to serve v2", timeout: 1) { Self.served(fleet.member(i)) == "v2" }
        }
        print("fleet: first change served by all three after \(Int(Date().timeIntervalSince(started) * 1000)) ms")
        // Every instance serves the same state at the same revision.
        let revisions = try fleet.live.map(Self.revision)
        #expect(Set(revisions).count == 1, "revisions: \(revisions)")

        var times: [Double] = []
        for n in 0..<100 {
            let writer = fleet.member(n % 3 + 1)
            let t0 = Date()
            let (code, text) = try writer.api("PUT", "/configuration/cluster", body: try Self.body(Self.cluster(v2.port, "2.\(n + 1)", "v2")))
            #expect(code == 202, "\(text)")
            let target = try Self.revision(writer)
            try waitUntil("change \(n) everywhere", timeout: 2) { try fleet.live.allSatisfy { try Self.revision($0) >= target } }
            times.append(Date().timeIntervalSince(t0) * 1000)
        }
        let (median, max) = medianAndMax(times)
        print("fleet: change propagation over 100 changes (API answer to all three at the same revision): median \(String(format: "%.1f", median)) ms, max \(String(format: "%.1f", max)) ms")
        #expect(max < 1000)
        for p in fleet.live {
            let c = try Fleet.clusters(p)["v2"]
            #expect(c?["version"] as? String == "2.100")
        }
    }

    @Test("concurrent PUTs on two instances: one 202, one 409, never a lost update")
    func conflictingWrites() throws {
        let v1 = try TestBackend.named("v1")
        let fleet = try Fleet(clusters: [Self.cluster(v1.port, "1.0", "v1")])
        defer { fleet.stop(); v1.stop() }
        var conflicts = 0
        for round in 0..<15 {
            let codes = Locked([Int](repeating: 0, count: 2))
            let go = DispatchSemaphore(value: 0)
            let done = DispatchGroup()
            for side in 0..<2 {
                let member = fleet.member(side + 1)
                let body = try Self.body(Self.cluster(v1.port, "\(round).\(side)", "c\(round)-\(side)"))
                done.enter()
                Thread.detachNewThread {
                    go.wait()
                    let code = (try? member.api("PUT", "/configuration/cluster", body: body).0) ?? -1
                    codes.withLock { $0[side] = code }
                    done.leave()
                }
            }
            go.signal(); go.signal()
            done.wait()
            let result = codes.withLock { $0 }
            #expect(result.allSatisfy { $0 == 202 || $0 == 409 }, "round \(round): \(result)")
            #expect(result.contains(202), "round \(round): \(result)")
            if result.contains(409) { conflicts += 1 }
            // Whatever was accepted is everywhere, whatever was refused is nowhere.
            let target = try fleet.live.map(Self.revision).max()!
            try waitUntil("round \(round) everywhere", timeout: 2) { try fleet.live.allSatisfy { try Self.revision($0) >= target } }
            for p in fleet.live {
                let clusters = try Fleet.clusters(p)
                for side in 0..<2 {
                    #expect((clusters["c\(round)-\(side)"] != nil) == (result[side] == 202), "round \(round) side \(side): \(result)")
                }
            }
        }
        print("fleet: \(conflicts) of 15 simultaneous pairs of PUTs conflicted (one 202, one 409)")
        #expect(conflicts > 0)
    }
}
