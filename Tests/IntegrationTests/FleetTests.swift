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

    static func served(_ p: ProxyProcess, target: String = "/", headers: [String: String] = [:]) -> String? {
        guard let c = try? ClientConnection(port: p.port, timeout: 2) else { return nil }
        defer { c.close() }
        return (try? c.get(target, headers: headers))?.header("X-Backend")
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

    @Test("a change set (a new service with its cluster, a cluster replaced) is one etcd revision, served by every instance")
    func changeSetIsOneTransaction() throws {
        let v1 = try TestBackend.named("v1"), v2 = try TestBackend.named("v2"), shop = try TestBackend.named("shop")
        let fleet = try Fleet(clusters: [Self.cluster(v1.port, "1.0", "v1")])
        defer { fleet.stop(); v1.stop(); v2.stop(); shop.stop() }
        let before = try Self.revision(fleet.member(1))
        let changes: [String: Any] = ["changes": [
            ["putService": ["name": "shop", "hosts": ["shop.test"]]],
            ["service": "shop", "put": Self.cluster(shop.port, "1.0", "s1")],
            ["put": Self.cluster(v2.port, "2.0", "v2")],
            ["delete": "v1"],
        ]]
        let body = String(decoding: try JSONSerialization.data(withJSONObject: changes), as: UTF8.self)
        let (code, text) = try fleet.member(1).api("POST", "/changes", body: body)
        #expect(code == 202, "\(text)")
        let after = try Self.revision(fleet.member(1))
        #expect(after > before)
        try waitUntil("the change set everywhere", timeout: 1) { try fleet.live.allSatisfy { try Self.revision($0) == after } }
        for p in fleet.live {
            #expect(Self.served(p) == "v2")
            // The absolute form's authority picks the service.
            #expect(Self.served(p, target: "http://shop.test/") == "shop")
        }
        // One record in etcd: the state key changed once for the whole set.
        let (_, range) = try fleet.etcd.post("/v3/kv/range", #"{"key":"\#(Data("\(fleet.prefix)state".utf8).base64EncodedString())"}"#)
        #expect(range.contains("\"mod_revision\":\"\(after)\""), "\(range)")
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

    /// A backend answering `name`, with a 500 to requests that carry `X-Fault`.
    static func faulty(_ name: String) throws -> TestBackend {
        try TestBackend { request, socket in
            if request.header("X-Fault") != nil {
                try TestBackend.respond(socket, status: 500, headers: ["X-Backend: \(name)"], body: "broken\n")
            } else {
                try TestBackend.respond(socket, headers: ["X-Backend: \(name)"], body: "\(name)\n")
            }
            return true
        }
    }

    /// Clients sending through every live member until stopped; counts answers that are not 200.
    final class Load: @unchecked Sendable {
        let stopped = Atomic<Bool>(false)
        let requests = Atomic<Int>(0)
        let errors = Locked<[String]>([])
        let done = DispatchGroup()

        init(_ members: [ProxyProcess], headers: @escaping @Sendable (Int) -> [String: String] = { _ in [:] }, expectOK: Bool = true) {
            for (i, member) in members.enumerated() {
                let port = member.port
                done.enter()
                Thread.detachNewThread { [self] in
                    defer { done.leave() }
                    while !stopped.load(ordering: .relaxed) {
                        do {
                            let c = try ClientConnection(port: port, timeout: 5)
                            let r = try c.get("/", headers: headers(i))
                            c.close()
                            requests.add(1, ordering: .relaxed)
                            if expectOK && r.status != 200 { errors.withLock { $0.append("instance \(i + 1): \(r.status)") } }
                        } catch {
                            errors.withLock { $0.append("instance \(i + 1): \(error)") }
                        }
                        usleep(2_000)
                    }
                }
            }
        }

        func stop() {
            stopped.store(true, ordering: .relaxed)
            done.wait()
        }
    }

    @Test("a new version failing only through instance 2 is rolled back by the leader on all three")
    func rollbackFromOneInstance() throws {
        let v1 = try TestBackend.named("v1"), v2 = try Self.faulty("v2")
        // The per-instance rollback policy is kept out of the way: the fleet's gate decides.
        let fleet = try Fleet(clusters: [Self.cluster(v1.port, "1.0", "v1")],
                              extra: ["rollback": ["minRequests": 1_000_000]])
        defer { fleet.stop(); v1.stop(); v2.stop() }
        let leader = try fleet.leader()
        _ = try fleet.member(1).putCluster(Self.cluster(v2.port, "2.0", "v2", plan: [
            "steps": [["mode": "GRADUAL", "percent": 50, "holdSeconds": 600], ["mode": "INSTANT"]],
            "analysis": ["maxErrorRatio": 0.05, "windowSeconds": 3, "minRequests": 10]]))
        // Only requests through instance 2 meet the fault.
        let load = Load(fleet.live, headers: { $0 == 1 ? ["X-Fault": "1"] : [:] }, expectOK: false)
        var failedAt: [Int: Date] = [:]
        try waitUntil("v2 rolled back on all three", timeout: 20) {
            for i in 1...3 where failedAt[i] == nil {
                if try Fleet.clusters(fleet.member(i))["v2"]?["state"] as? String == "failed" { failedAt[i] = Date() }
            }
            return failedAt.count == 3
        }
        load.stop()
        let spread = failedAt.values.max()!.timeIntervalSince(failedAt.values.min()!) * 1000
        // From the leader's decision (its log line's time) to the last instance seen failed.
        let decided = fleet.member(leader).log.split(separator: "\n").first { $0.contains("event=rollout_rolled_back") }
            .flatMap { line in line.split(separator: " ").first { $0.hasPrefix("ts=") } }
            .flatMap { ISO8601DateFormatter.withFractions.date(from: String($0.dropFirst(3))) }
        let total = decided.map { Int(failedAt.values.max()!.timeIntervalSince($0) * 1000) }
        print("fleet: rollback decided by the leader (instance \(leader)) on errors seen through instance 2: on all three \(total.map { "\($0) ms" } ?? "?") after the decision (polling included), within \(Int(spread)) ms of each other")
        for p in fleet.live {
            #expect(Self.served(p) == "v1")
            let (_, text) = try p.api("GET", "/configuration/cluster/v2")
            #expect(text.contains("\"rolledBack\""), "\(text)")
        }
        #expect(fleet.member(leader).log.contains("rollout_rolled_back"))
    }

    @Test("the leader killed mid-plan: another instance continues the plan from the same step within the lease TTL")
    func leaderFailOver() throws {
        let v1 = try TestBackend.named("v1"), v2 = try TestBackend.named("v2")
        let fleet = try Fleet(clusters: [Self.cluster(v1.port, "1.0", "v1")])
        defer { fleet.stop(); v1.stop(); v2.stop() }
        let leader = try fleet.leader()
        let writer = fleet.member(leader % 3 + 1)
        _ = try writer.putCluster(Self.cluster(v2.port, "2.0", "v2", plan: [
            "steps": [["mode": "GRADUAL", "percent": 10, "holdSeconds": 1], ["mode": "GRADUAL", "percent": 30, "holdSeconds": 4],
                      ["mode": "GRADUAL", "percent": 60, "holdSeconds": 600]]]))
        func step(_ p: ProxyProcess) -> Int? {
            guard let (code, text) = try? p.api("GET", "/configuration/cluster/v2"), code == 200,
                  let o = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                  let rollout = (o["cluster"] as? [String: Any])?["rollout"] as? [String: Any] else { return nil }
            return rollout["step"] as? Int
        }
        // `step` counts from 1.
        try waitUntil("the plan at its second step everywhere", timeout: 10) { fleet.live.allSatisfy { step($0) == 2 } }
        // The leader dies without a word: its lease must expire.
        let victim = fleet.members[leader - 1]!
        kill(victim.pid, SIGKILL)
        let killed = Date()
        fleet.members[leader - 1] = nil
        let next = try fleet.leader(timeout: Double(fleet.leaseSeconds) + 3)
        let failOver = Date().timeIntervalSince(killed)
        print("fleet: leader fail-over after SIGKILL took \(Int(failOver * 1000)) ms (lease TTL \(fleet.leaseSeconds) s)")
        #expect(next != leader)
        #expect(failOver <= Double(fleet.leaseSeconds) + 1.5)
        #expect(step(fleet.member(next)) == 2, "the new leader takes the plan up at the stored step")
        try waitUntil("the new leader to carry the plan on to its third step", timeout: 10) { fleet.live.allSatisfy { step($0) == 3 } }
        _ = victim.stop()
    }

    @Test("etcd stopped for 10 s under load: no client error, API writes answer 503, everything resumes")
    func etcdOutage() throws {
        let v1 = try TestBackend.named("v1"), v2 = try TestBackend.named("v2")
        let fleet = try Fleet(clusters: [Self.cluster(v1.port, "1.0", "v1")])
        defer { fleet.stop(); v1.stop(); v2.stop() }
        let load = Load(fleet.live)
        try waitUntil("load running", timeout: 5) { load.requests.load(ordering: .relaxed) > 30 }
        fleet.etcd.stop()
        let stopped = Date()
        try waitUntil("every instance to see etcd gone", timeout: 5) {
            try fleet.live.allSatisfy { try Fleet.store($0)["link"] as? String == "unreachable" }
        }
        let (code, text) = try fleet.member(2).api("PUT", "/configuration/cluster", body: try Self.body(Self.cluster(v2.port, "2.0", "v2")))
        #expect(code == 503, "\(text)")
        #expect(try fleet.member(1).metric("switchyard_store_connected") == 0)
        #expect(text.contains("cannot be reached"))
        // The outage itself: ten seconds of traffic without etcd.
        Thread.sleep(forTimeInterval: max(0, 10 - Date().timeIntervalSince(stopped)))
        let during = load.requests.load(ordering: .relaxed)
        try fleet.etcd.start()
        let back = Date()
        try waitUntil("every instance to reconnect", timeout: 10) {
            try fleet.live.allSatisfy { try Fleet.store($0)["link"] as? String == "connected" }
        }
        print("fleet: instances reconnected \(Int(Date().timeIntervalSince(back) * 1000)) ms after etcd returned")
        try waitUntil("the store metric back to connected", timeout: 5) { try fleet.member(1).metric("switchyard_store_connected") == 1 }
        _ = try fleet.member(2).putCluster(Self.cluster(v2.port, "2.0", "v2"))
        for i in [1, 3] { try waitUntil("instance \(i) to serve v2", timeout: 1) { Self.served(fleet.member(i)) == "v2" } }
        load.stop()
        let errors = load.errors.withLock { $0 }
        #expect(errors.isEmpty, "\(errors.prefix(5))")
        #expect(during > 100)
        for p in fleet.live { #expect(try Fleet.store(p)["reconnects"] as? Int ?? 0 >= 1) }
    }

    @Test("etcd unreachable: a gate failing through instance 2 rolls back there alone, and on all three once etcd is back")
    func isolatedRollbackWrittenLater() throws {
        let v1 = try TestBackend.named("v1"), v2 = try Self.faulty("v2")
        let fleet = try Fleet(clusters: [Self.cluster(v1.port, "1.0", "v1")], extra: ["rollback": ["minRequests": 1_000_000]])
        defer { fleet.stop(); v1.stop(); v2.stop() }
        _ = try fleet.leader()
        _ = try fleet.member(1).putCluster(Self.cluster(v2.port, "2.0", "v2", plan: [
            "steps": [["mode": "GRADUAL", "percent": 50, "holdSeconds": 600], ["mode": "INSTANT"]],
            "analysis": ["maxErrorRatio": 0.05, "windowSeconds": 3, "minRequests": 10]]))
        try waitUntil("the plan running everywhere", timeout: 5) {
            try fleet.live.allSatisfy { p in let state = try Fleet.clusters(p)["v2"]?["state"] as? String; return state == "active" }
        }
        fleet.etcd.stop()
        try waitUntil("every instance to see etcd gone", timeout: 5) {
            try fleet.live.allSatisfy { try Fleet.store($0)["link"] as? String == "unreachable" }
        }
        let load = Load([fleet.member(2)], headers: { _ in ["X-Fault": "1"] }, expectOK: false)
        try waitUntil("instance 2 to roll v2 back on its own", timeout: 15) {
            try Fleet.clusters(fleet.member(2))["v2"]?["state"] as? String == "failed"
        }
        load.stop()
        for i in [1, 3] { #expect(try Fleet.clusters(fleet.member(i))["v2"]?["state"] as? String == "active", "instance \(i)") }
        try fleet.etcd.start()
        try waitUntil("v2 failed on all three once etcd is back", timeout: 10) {
            try fleet.live.allSatisfy { try Fleet.clusters($0)["v2"]?["state"] as? String == "failed" }
        }
        for p in fleet.live { #expect(Self.served(p) == "v1") }
        // The rollout's own record follows: every instance shows it rolled back.
        try waitUntil("the rollback recorded for the fleet", timeout: 5) {
            try fleet.live.allSatisfy { try $0.api("GET", "/configuration/cluster/v2").1.contains("\"rolledBack\"") }
        }
    }

    @Test("GRADUAL across the fleet: clients whose requests alternate between the three instances only ever move forward")
    func gradualCookiesAcrossInstances() throws {
        let v1 = try TestBackend.named("v1"), v2 = try TestBackend.named("v2")
        let fleet = try Fleet(clusters: [Self.cluster(v1.port, "1.0", "v1")])
        defer { fleet.stop(); v1.stop(); v2.stop() }
        _ = try fleet.member(2).putCluster(Self.cluster(v2.port, "2.0", "v2", plan: [
            "steps": [["mode": "GRADUAL", "percent": 20, "holdSeconds": 1], ["mode": "GRADUAL", "percent": 50, "holdSeconds": 1],
                      ["mode": "GRADUAL", "percent": 80, "holdSeconds": 1], ["mode": "INSTANT"]]]))
        let clients = 40
        var jars = [[String: String]](repeating: [:], count: clients)
        var seen = [[String]](repeating: [], count: clients)
        var mixed = false
        var turn = 0
        try waitUntil("every client on v2", timeout: 30) {
            var onNew = 0
            for k in 0..<clients {
                // Each request of a client goes to the next instance.
                let member = fleet.member((k + turn) % 3 + 1)
                let c = try ClientConnection(port: member.port, timeout: 5)
                var headers = ["Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"]
                if !jars[k].isEmpty { headers["Cookie"] = jars[k].map { "\($0.key)=\($0.value)" }.sorted().joined(separator: "; ") }
                let r = try c.get("/", headers: headers)
                c.close()
                for line in r.headers("Set-Cookie") {
                    let pair = line.split(separator: ";", maxSplits: 1)[0].split(separator: "=", maxSplits: 1)
                    if pair.count == 2 { jars[k][String(pair[0])] = String(pair[1]) }
                }
                let version = r.header("X-Backend") ?? "?"
                seen[k].append(version)
                if version == "v2" { onNew += 1 }
            }
            turn += 1
            if onNew > 0 && onNew < clients { mixed = true }
            return onNew == clients
        }
        #expect(mixed, "some clients were on v1 while others were on v2")
        for (k, versions) in seen.enumerated() {
            // v1… then v2…: once on the new version, never back.
            let firstNew = versions.firstIndex(of: "v2") ?? versions.count
            #expect(versions[firstNew...].allSatisfy { $0 == "v2" }, "client \(k): \(versions)")
            #expect(versions[..<firstNew].allSatisfy { $0 == "v1" }, "client \(k): \(versions)")
        }
    }
}

extension ISO8601DateFormatter {
    /// Reads the log's `ts=2026-12-01T01:44:29.399Z`.
    static var withFractions: ISO8601DateFormatter {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }
}
