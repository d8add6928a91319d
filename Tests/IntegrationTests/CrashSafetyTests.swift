import Foundation
import Synchronization
import Testing

/// SIGKILL at many points while changes are made through the API; after each restart the
/// state must equal the state after some prefix of the acknowledged changes that includes
/// every acknowledged change (only the change in flight at the kill may or may not be there).
/// Every few rounds the journal's last record is also torn, as a power cut would leave it.
@Suite("Crash safety", .serialized)
struct CrashSafetyTests {
    /// One API change in the test's model: clusters by uuid → version.
    enum Change: CustomStringConvertible {
        case put(uuid: String, version: String)
        case delete(uuid: String)

        var description: String {
            switch self {
            case .put(let u, let v): "put \(u) \(v)"
            case .delete(let u): "delete \(u)"
            }
        }

        func apply(_ state: inout [String: String]) {
            switch self {
            case .put(let u, let v): state[u] = v
            case .delete(let u): state[u] = nil
            }
        }
    }

    static func applied(_ changes: some Sequence<Change>, to start: [String: String]) -> [String: String] {
        var s = start
        for c in changes { c.apply(&s) }
        return s
    }

    @Test("SIGKILL during API changes (and torn last records): every acknowledged change survives, nothing else but the one in flight")
    func killDuringChanges() throws {
        let rounds = Int(ProcessInfo.processInfo.environment["SWITCHYARD_CRASH_ROUNDS"] ?? "") ?? 30
        let backend = try TestBackend.named("b")
        defer { backend.stop() }
        let stateDir = makeStateDirPath()
        defer { try? FileManager.default.removeItem(atPath: stateDir) }
        // Compaction every 40 records, so that kills also land around snapshot writes.
        let config = ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [backend.port], version: "0.1", uuid: "base")],
                                         extra: ["state": ["compactAfterRecords": 40]])
        let arguments = ["--workers", "1", "--log-level", "INFO", "--state-dir", stateDir]

        var model: [String: String] = ["base": "0.1"]
        var expected: [[String: String]] = [model]
        // What each allowed state means, for the counts: "acked", "inFlight", "tornLast".
        var meaning = ["acked"]
        var outcomes: [String: Int] = [:]
        var rng = SystemRandomNumberGenerator()
        var next = 0
        var counts = (kills: 0, restarts: 0, statesChecked: 0, acknowledged: 0, inFlight: 0, tornTails: 0, compactions: 0)

        for round in 0...rounds {
            let proxy = try ProxyProcess(config: config, arguments: arguments)
            counts.restarts += round > 0 ? 1 : 0
            let observed = try proxy.clusterList().mapValues { $0["version"] as? String ?? "?" }
            func difference(_ a: [String: String], _ b: [String: String]) -> String {
                Set(a.keys).union(b.keys).sorted().filter { a[$0] != b[$0] }.map { "\($0): \(a[$0] ?? "-") vs \(b[$0] ?? "-")" }.joined(separator: ", ")
            }
            #expect(expected.contains(observed), "round \(round): the state differs from each allowed state (\(meaning.joined(separator: ", "))): \(expected.map { difference(observed, $0) }.joined(separator: " | "))")
            counts.statesChecked += 1
            if let i = expected.firstIndex(of: observed), round > 0 { outcomes[meaning[i], default: 0] += 1 }
            if !expected.contains(observed) { proxy.kill9(); proxy.stop(); break }
            model = observed
            guard round < rounds else { proxy.stop(); break }

            // Kill after a random delay while this thread keeps changing clusters.
            let pid = proxy.pid
            let delay = UInt32.random(in: 5_000...250_000, using: &rng)
            let killer = Thread { usleep(delay); kill(pid, SIGKILL) }
            killer.start()
            var acked: [Change] = []
            var inFlight: Change?
            var current = model
            while acked.count < 400 {
                let others = current.keys.filter { $0 != "base" }.sorted()
                let change: Change
                switch (Int.random(in: 0..<10, using: &rng), others.randomElement(using: &rng)) {
                case (0..<3, let uuid?): change = .delete(uuid: uuid)
                case (3..<5, let uuid?): change = .put(uuid: uuid, version: "2.\(next)")
                default: change = .put(uuid: "c\(next)", version: "1.\(next)")
                }
                next += 1
                do {
                    let status: Int
                    switch change {
                    case .put(let uuid, let version):
                        let body = #"{"cluster":{"uuid":"\#(uuid)","version":"\#(version)","servers":[{"hostname":"127.0.0.1","port":\#(backend.port)}]}}"#
                        status = try proxy.api("PUT", "/configuration/cluster", body: body).0
                    case .delete(let uuid):
                        status = try proxy.api("DELETE", "/configuration/cluster/\(uuid)").0
                    }
                    guard status == 202 else {
                        Issue.record("\(change): status \(status)")
                        break
                    }
                    acked.append(change)
                    change.apply(&current)
                } catch {
                    inFlight = change
                    break
                }
            }
            proxy.kill9()
            while !killer.isFinished { usleep(1_000) }
            proxy.stop()
            counts.kills += 1
            counts.acknowledged += acked.count
            if inFlight != nil { counts.inFlight += 1 }
            counts.compactions += proxy.log.components(separatedBy: "event=state_compacted").count - 1

            let withAcked = Self.applied(acked, to: model)
            expected = [withAcked]
            meaning = ["acked"]
            if let inFlight {
                expected.append(Self.applied([inFlight], to: withAcked))
                meaning.append("inFlight")
            }

            // Every fourth round: tear the journal's last record at a random byte, as a power
            // cut in the middle of its write would. That record is either the change in flight
            // or the last acknowledged one (never acknowledged, had the cut been real).
            // Allowed then: every acknowledged change, with or without the one in flight, or
            // all but the last acknowledged one.
            // Only when this round acknowledged a change: otherwise the last record may be one
            // acknowledged (and fsynced) in an earlier round, which no power cut can tear.
            if round % 4 == 3 && !acked.isEmpty {
                let path = stateDir + "/journal"
                let bytes = [UInt8](FileManager.default.contents(atPath: path) ?? Data())
                if let last = journalRecordOffsets(bytes).last {
                    let cut = Int.random(in: last..<bytes.count, using: &rng)
                    try Data(bytes[0..<cut]).write(to: URL(fileURLWithPath: path))
                    counts.tornTails += 1
                    // (If the kill came between a compaction's snapshot and its new journal,
                    // the torn record is already in the snapshot, and the change in flight
                    // may be too: that state stays allowed.)
                    expected.append(Self.applied(acked.dropLast(), to: model))
                    meaning.append("tornLast")
                }
            }
        }
        print("crash-safety: kills=\(counts.kills) restarts=\(counts.restarts) statesChecked=\(counts.statesChecked) acknowledgedChanges=\(counts.acknowledged) killedWithChangeInFlight=\(counts.inFlight) tornTails=\(counts.tornTails) compactions=\(counts.compactions) restoredStates=\(outcomes.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ","))")
        #expect(counts.kills == rounds)
        #expect(counts.acknowledged > rounds)
        #expect(counts.compactions > 0)
    }

    @Test("a torn last record at every byte offset: the proxy starts, warns once, and serves the state without it")
    func tornLastRecordEveryOffset() throws {
        let backend = try TestBackend.named("b")
        defer { backend.stop() }
        let stateDir = makeStateDirPath()
        defer { try? FileManager.default.removeItem(atPath: stateDir) }
        let config = ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [backend.port], version: "1.0", uuid: "base")])
        let arguments = ["--workers", "1", "--log-level", "NOTICE", "--state-dir", stateDir]
        do {
            let proxy = try ProxyProcess(config: config, arguments: arguments)
            _ = try proxy.putCluster(ProxyProcess.cluster(ports: [backend.port], version: "2.0", uuid: "kept"))
            _ = try proxy.putCluster(ProxyProcess.cluster(ports: [backend.port], version: "3.0", uuid: "torn"))
            proxy.kill9()
            proxy.stop()
        }
        let path = stateDir + "/journal"
        let full = [UInt8](FileManager.default.contents(atPath: path) ?? Data())
        let last = try #require(journalRecordOffsets(full).last)
        // Every offset would be ~200 process starts; every 7th plus both ends covers the
        // header, the length check, the checksum and the payload (the unit test does all).
        var cuts = Array(stride(from: last, to: full.count, by: 7))
        cuts += [last + 1, last + 11, last + 12, full.count - 1]
        for cut in Set(cuts).sorted() {
            try Data(full[0..<cut]).write(to: URL(fileURLWithPath: path))
            let proxy = try ProxyProcess(config: config, arguments: arguments)
            let uuids = Set(try proxy.clusterList().keys)
            proxy.stop()
            #expect(uuids == ["base", "kept"], "cut at \(cut)")
            #expect(proxy.log.contains("event=state_torn_record") == (cut > last), "cut at \(cut)")
        }
    }
}
