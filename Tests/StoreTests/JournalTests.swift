import Config
import Foundation
import Rollout
import Routing
import Store
import Testing

/// A fresh state directory under the temp directory.
func tempStateDir() -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-store-\(UUID().uuidString)").path
    return dir
}

let specA = ClusterSpec(uuid: "a", version: "1.0", servers: [ServerAddress(hostname: "127.0.0.1", port: 1001)])
let specB = ClusterSpec(uuid: "b", version: "1.10", servers: [ServerAddress(hostname: "127.0.0.1", port: 1002)],
                        mode: .gradual, percentageTransitionPerRequest: 0.25)
let specC = ClusterSpec(uuid: "c", version: "2.0", servers: [ServerAddress(hostname: "::1", port: 1003), ServerAddress(hostname: "localhost", port: 1004)],
                        mode: .session, sessionTimeout: 60)
let specD = ClusterSpec(uuid: "d", version: "3", servers: [ServerAddress(hostname: "127.0.0.1", port: 1005)],
                        mode: .concurrent, mirrorUnsafeMethods: true)

/// A staged plan with gates, and a 2014 mode with gates only.
let specE = ClusterSpec(uuid: "e", version: "4", servers: [ServerAddress(hostname: "127.0.0.1", port: 1006)], mode: .concurrent,
                        mirrorUnsafeMethods: true,
                        rollout: RolloutPlan(steps: [RolloutStep(mode: .concurrent(serve: .old), holdSeconds: 300, minRequests: 100),
                                                     RolloutStep(mode: .gradual(percent: 12.5), holdSeconds: 60, minRequests: 50),
                                                     RolloutStep(mode: .concurrent(serve: .new)), RolloutStep(mode: .instant)],
                                             analysis: Analysis(maxErrorRatio: 0.01, maxLatencyRatio: 1.5, latencyPercentile: 99.9,
                                                                maxDivergenceRatio: 0.02, windowSeconds: 20, minRequests: 40),
                                             retireOld: true),
                        ignoreBodyFor: ["/time", "/random*"])
let specF = ClusterSpec(uuid: "f", version: "5", servers: [ServerAddress(hostname: "127.0.0.1", port: 1007)], mode: .session,
                        sessionTimeout: 30, rollout: RolloutPlan(analysis: Analysis(maxErrorRatio: 0.05)))
/// Health checks: a gate on two servers, and the defaults.
let specG = ClusterSpec(uuid: "g", version: "4", servers: [ServerAddress(hostname: "127.0.0.1", port: 1010), ServerAddress(hostname: "::1", port: 1011)],
                        healthCheck: HealthCheckSpec(path: "/ready", intervalSeconds: 0.25, expectStatus: StatusExpectation(low: 200, high: 399),
                                                     minHealthy: 2, readyTimeoutSeconds: 30))
let specH = ClusterSpec(uuid: "h", version: "5", servers: [ServerAddress(hostname: "127.0.0.1", port: 1012)], healthCheck: HealthCheckSpec())

/// A sequence of changes touching every record type.
let sampleChanges: [StateChange] = [
    .put(specA), .put(specB), .threshold(uuid: "b", percent: 12.5), .put(specC),
    .failed(uuid: "c", reason: "failure ratio 12/20 over 10s \"quoted\"", time: 1_764_000_000),
    .put(specD), .put(specE), .rollout(uuid: "e", progress: RolloutProgress(phase: .progressing, step: 1, percent: 12.5)),
    .put(specF), .rollout(uuid: "f", progress: RolloutProgress(phase: .progressing, step: 0, percent: nil)),
    .delete(uuid: "a"), .readmitted(uuid: "c"),
    .rollout(uuid: "e", progress: RolloutProgress(phase: .rolledBack, step: 2, percent: 0,
                                                  reason: "errorRatio 0.05 above limit 0.01 (requests new 200, old 1800)")),
    .threshold(uuid: "b", percent: 37.000001),
    .put(specG), .drain(uuid: "g", server: ServerAddress(hostname: "::1", port: 1011), drained: true), .ready(uuid: "g"),
    .drain(uuid: "c", server: ServerAddress(hostname: "localhost", port: 1004), drained: true),
    .drain(uuid: "c", server: ServerAddress(hostname: "::1", port: 1003), drained: true),
    .drain(uuid: "c", server: ServerAddress(hostname: "localhost", port: 1004), drained: false),
    .put(specH),
]

func applied(_ changes: [StateChange], to start: StoredState = StoredState()) -> StoredState {
    var s = start
    for c in changes { s.apply(c) }
    return s
}

func readBytes(_ path: String) -> [UInt8] { [UInt8](FileManager.default.contents(atPath: path) ?? Data()) }
func writeBytes(_ path: String, _ bytes: [UInt8]) { _ = FileManager.default.createFile(atPath: path, contents: Data(bytes)) }

@Suite("CRC-32C and framing")
struct FrameTests {
    @Test("CRC-32C check value")
    func checkValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
    }

    @Test("records round-trip through frames")
    func roundTrip() throws {
        var file = Array("SWYJRNL1".utf8)
        for (i, c) in sampleChanges.enumerated() { file += Frames.frame(Records.encode(c, sequence: UInt64(i + 1))) }
        let scan = try Frames.scan(file, header: Array("SWYJRNL1".utf8))
        #expect(scan.tornTail == nil)
        #expect(scan.validLength == file.count)
        let decoded = try scan.records.map { try Records.decode($0.payload) }
        #expect(decoded.map(\.change) == sampleChanges)
        #expect(decoded.map(\.sequence) == Array(1...UInt64(sampleChanges.count)))
    }

    @Test("the direct payload writer writes exactly what JSONText.encode writes for the same object")
    func writerMatchesJSONText() {
        func generic(_ spec: ClusterSpec) -> [String: Any] {
            var o = ClusterJSON.render(spec, failed: nil)["cluster"] as! [String: Any]
            o["state"] = nil
            return o
        }
        var tricky = specC
        tricky.version = "v\"1\\2/é"
        var planOnly = specE
        planOnly.rollout?.analysis = nil
        planOnly.ignoreBodyFor = ["/only"]
        var noConcurrent = specE
        noConcurrent.mode = .gradual
        noConcurrent.mirrorUnsafeMethods = false
        noConcurrent.rollout?.steps = [RolloutStep(mode: .gradual(percent: 1)), RolloutStep(mode: .instant)]
        noConcurrent.rollout?.analysis = Analysis(maxDivergenceRatio: 0.5)
        var secure = specC
        secure.uuid = "tls"
        secure.tls = BackendTLSSpec(serverName: "backend.test", caFile: "/nonexistent/ca \"bundle\".pem", verify: true)
        var unverified = specC
        unverified.uuid = "tls2"
        unverified.tls = BackendTLSSpec(verify: false)
        let changes = sampleChanges + [.put(secure), .put(unverified), .put(tricky), .threshold(uuid: "b", percent: 1e-6), .threshold(uuid: "b", percent: 100),
                                       .failed(uuid: "c", reason: "tab\tnewline\n\u{1}\u{7F}", time: -1),
                                       .put(planOnly), .put(noConcurrent),
                                       .rollout(uuid: "e", progress: RolloutProgress(phase: .completed, step: 3, percent: 100)),
                                       .rollout(uuid: "f", progress: RolloutProgress(phase: .pending, step: 0))]
            + serviceChanges
        for (i, change) in changes.enumerated() {
            var o: [String: Any] = ["seq": i]
            switch change {
            case .put(let spec): o["op"] = "put"; o["cluster"] = generic(spec)
            case .delete(let uuid): o["op"] = "delete"; o["uuid"] = uuid
            case .failed(let uuid, let reason, let time): o["op"] = "failed"; o["uuid"] = uuid; o["reason"] = reason; o["time"] = Int(time)
            case .readmitted(let uuid): o["op"] = "readmitted"; o["uuid"] = uuid
            case .threshold(let uuid, let percent): o["op"] = "threshold"; o["uuid"] = uuid; o["percent"] = percent
            case .rollout(let uuid, let p):
                o["op"] = "rollout"; o["uuid"] = uuid; o["state"] = p.phase.rawValue; o["step"] = p.step
                o["percent"] = p.percent; o["reason"] = p.reason
            case .ready(let uuid): o["op"] = "ready"; o["uuid"] = uuid
            case .drain(let uuid, let server, let drained):
                o["op"] = drained ? "drained" : "enabled"; o["uuid"] = uuid
                o["server"] = ["hostname": server.hostname, "port": server.port] as [String: Any]
            case .putIn(let service, let spec): o["op"] = "put"; o["cluster"] = generic(spec); o["service"] = service
            case .putService(let spec): o["op"] = "putService"; o["service"] = ServiceJSON.render(spec)
            case .deleteService(let name): o["op"] = "deleteService"; o["name"] = name
            case .changeSet(let inner):
                o["op"] = "changes"
                o["changes"] = inner.map { try! JSONText.parse(Records.encode($0, sequence: 0)) }
            }
            #expect(String(decoding: Records.encode(change, sequence: UInt64(i)), as: UTF8.self) == String(decoding: JSONText.encode(o), as: UTF8.self))
            #expect((try? Records.decode(Records.encode(change, sequence: UInt64(i))).change) == change)
        }
        let state = applied(changes + [.failed(uuid: "d", reason: "no healthy backend", time: 5), .put(specE),
                                       .rollout(uuid: "e", progress: RolloutProgress(phase: .paused, step: 1, percent: 12.5, reason: "x"))])
        let entries: [Any] = state.clusters.map { c -> Any in
            var e: [String: Any] = ["cluster": generic(c.spec), "threshold": c.threshold]
            if let f = c.failure { e["failure"] = ["reason": f.reason, "time": Int(f.time)] as [String: Any] }
            if let r = c.rollout {
                var o: [String: Any] = ["state": r.phase.rawValue, "step": r.step]
                o["percent"] = r.percent
                o["reason"] = r.reason
                e["rollout"] = o
            }
            if !c.ready { e["ready"] = false }
            if !c.drained.isEmpty { e["drained"] = c.drained.map { ["hostname": $0.hostname, "port": $0.port] as [String: Any] } }
            if c.service != "default" { e["service"] = c.service }
            return e
        }
        var snapshot: [String: Any] = ["op": "snapshot", "seq": Int(state.sequence), "clusters": entries]
        if !state.services.isEmpty { snapshot["services"] = state.services.map { ServiceJSON.render($0) } }
        #expect(state.services.count == 2 && state.clusters.contains { $0.service == "api" })
        #expect(String(decoding: Records.encodeSnapshot(state), as: UTF8.self) == String(decoding: JSONText.encode(snapshot), as: UTF8.self))
    }

    @Test("snapshot payload round-trips the whole state, version text kept")
    func snapshotRoundTrip() throws {
        let state = applied(sampleChanges + [.failed(uuid: "d", reason: "no healthy backend", time: 5)])
        let back = try Records.decodeSnapshot(Records.encodeSnapshot(state))
        #expect(back == state)
        #expect(back.clusters.first { $0.spec.uuid == "b" }?.spec.version == "1.10")
    }
}

@Suite("Journal store", .serialized)
struct JournalStoreTests {
    /// Writes the sample changes through a store and returns the directory.
    func writeSample(compactAt: Int? = nil) throws -> String {
        let dir = tempStateDir()
        let store = try JournalStore(directory: dir)
        #expect(try store.load().state == nil)
        var state = StoredState()
        for (i, change) in sampleChanges.enumerated() {
            state.apply(change)
            try store.append(change, sequence: state.sequence)
            if i == compactAt { try store.compact(state) }
        }
        return dir
    }

    @Test("append then load gives the same state; fsync once per change")
    func appendLoad() throws {
        let dir = tempStateDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var state = StoredState()
        do {
            let store = try JournalStore(directory: dir)
            _ = try store.load()
            let before = store.fsyncCount
            for change in sampleChanges {
                state.apply(change)
                try store.append(change, sequence: state.sequence)
            }
            #expect(store.fsyncCount - before == sampleChanges.count)
        }
        let store = try JournalStore(directory: dir)
        let (loaded, warnings) = try store.load()
        #expect(loaded == state)
        #expect(warnings.isEmpty)
    }

    @Test("a second store on the same directory is refused while the first holds it")
    func lock() throws {
        let dir = tempStateDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var first: JournalStore? = try JournalStore(directory: dir)
        #expect(throws: StoreError.locked(path: dir)) { _ = try JournalStore(directory: dir) }
        _ = first
        first = nil
        _ = try JournalStore(directory: dir)
    }

    @Test("compaction: snapshot + shorter journal load to the same state; a stale journal is skipped by sequence")
    func compaction() throws {
        let expected = applied(sampleChanges)
        for point in 0..<sampleChanges.count {
            let dir = try writeSample(compactAt: point)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            #expect(try JournalStore(directory: dir).load().state == expected, "compacted after change \(point)")
        }
        // Crash after the snapshot was renamed but before the journal was emptied: the old
        // journal's records are all in the snapshot and must not be applied twice.
        let dir = try writeSample()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let oldJournal = readBytes(dir + "/journal")
        do {
            let store = try JournalStore(directory: dir)
            let state = try #require(try store.load().state)
            try store.compact(state)
        }
        writeBytes(dir + "/journal", oldJournal)
        #expect(try JournalStore(directory: dir).load().state == expected)
    }

    @Test("truncating the journal at every byte of its last record drops that record with a warning, and appending continues")
    func tornTail() throws {
        let dir = try writeSample()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let full = readBytes(dir + "/journal")
        let scan = try Frames.scan(full, header: JournalStore.journalHeader)
        let lastOffset = try #require(scan.records.last?.offset)
        let withoutLast = applied(Array(sampleChanges.dropLast()))
        var checked = 0
        for cut in lastOffset..<full.count {
            writeBytes(dir + "/journal", Array(full[0..<cut]))
            let extra = StateChange.threshold(uuid: "b", percent: 99)
            do {
                let store = try JournalStore(directory: dir)
                let (state, warnings) = try store.load()
                #expect(state == withoutLast, "cut at \(cut)")
                #expect(warnings.count == (cut == lastOffset ? 0 : 1), "cut at \(cut)")
                if cut > lastOffset { #expect(warnings.first?.contains("byte \(lastOffset)") == true) }
                // The torn bytes were cut off: a new change lands after the intact records.
                try store.append(extra, sequence: withoutLast.sequence + 1)
            }
            #expect(try JournalStore(directory: dir).load().state == applied([extra], to: withoutLast))
            checked += 1
        }
        #expect(checked == full.count - lastOffset)
        // A zero-filled tail (file extended, data never written) is a torn tail too.
        writeBytes(dir + "/journal", full + [UInt8](repeating: 0, count: 37))
        let (state, warnings) = try JournalStore(directory: dir).load()
        #expect(state == applied(sampleChanges))
        #expect(warnings.count == 1)
    }

    @Test("damage before the end refuses with the file and the offset")
    func corruptionBeforeEnd() throws {
        let dir = try writeSample()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let full = readBytes(dir + "/journal")
        let scan = try Frames.scan(full, header: JournalStore.journalHeader)
        for record in scan.records.dropLast() {
            for delta in [0, 5, 9, 14] {   // length, its check, payload checksum, payload
                var bad = full
                bad[record.offset + delta] ^= 0x40
                writeBytes(dir + "/journal", bad)
                #expect(throws: StoreError.self) { _ = try JournalStore(directory: dir).load() }
                do {
                    _ = try JournalStore(directory: dir).load()
                } catch {
                    guard case .corrupt(let path, let offset, _) = error else { Issue.record("\(error)"); continue }
                    #expect(path == dir + "/journal")
                    #expect(offset == record.offset, "flipped byte \(record.offset + delta)")
                }
            }
        }
        var badHeader = full
        badHeader[0] = UInt8(ascii: "X")
        writeBytes(dir + "/journal", badHeader)
        #expect(throws: StoreError.corrupt(path: dir + "/journal", offset: 0, reason: "not a Switchyard state file (bad header)")) {
            _ = try JournalStore(directory: dir).load()
        }
        // Moving the files aside lets the store start empty.
        let store = try JournalStore(directory: dir)
        let moved = try store.moveAside(now: 42)
        #expect(moved == [dir + "/journal.bad-42"])
        #expect(try store.load().state == nil)
    }

    @Test("random bytes and mutations never crash the decoder")
    func fuzz() throws {
        var rng = SystemRandomNumberGenerator()
        var seedFile = JournalStore.journalHeader
        for (i, c) in sampleChanges.enumerated() { seedFile += Frames.frame(Records.encode(c, sequence: UInt64(i + 1))) }
        var outcomes = [0, 0, 0]
        for round in 0..<3000 {
            var bytes: [UInt8]
            if round % 3 == 0 {
                bytes = (0..<Int.random(in: 0..<200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if round % 2 == 0 { bytes = JournalStore.journalHeader + bytes }
            } else {
                bytes = seedFile
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    let i = Int.random(in: 0..<bytes.count, using: &rng)
                    switch Int.random(in: 0..<3, using: &rng) {
                    case 0: bytes[i] = UInt8.random(in: 0...255, using: &rng)
                    case 1: bytes.removeSubrange(i..<min(bytes.count, i + Int.random(in: 1...16, using: &rng)))
                    default: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: i)
                    }
                    if bytes.isEmpty { break }
                }
            }
            do {
                let scan = try Frames.scan(bytes, header: JournalStore.journalHeader)
                for r in scan.records { _ = try? Records.decode(r.payload); _ = try? Records.decodeSnapshot(r.payload) }
                outcomes[scan.tornTail == nil ? 0 : 1] += 1
            } catch {
                outcomes[2] += 1
            }
        }
        #expect(outcomes.reduce(0, +) == 3000)
        // Payloads with a valid frame but arbitrary content: decode errors, never a crash.
        for _ in 0..<2000 {
            var payload = Records.encode(sampleChanges.randomElement(using: &rng)!, sequence: 7)
            let i = Int.random(in: 0..<payload.count, using: &rng)
            payload[i] = UInt8.random(in: 0...255, using: &rng)
            _ = try? Records.decode(payload)
            _ = try? Records.decodeSnapshot(payload)
        }
    }

    @Test("health: a new cluster with a health check starts not ready; drains follow the servers; ready is kept only while servers stay")
    func readinessAndDrains() throws {
        var s = applied([.put(specA), .put(specG)])
        #expect(s.clusters.map(\.ready) == [true, false])
        let v6 = ServerAddress(hostname: "::1", port: 1011)
        s.apply(.drain(uuid: "g", server: v6, drained: true))
        s.apply(.drain(uuid: "g", server: ServerAddress(hostname: "127.0.0.1", port: 9), drained: true))  // not listed: ignored
        s.apply(.drain(uuid: "g", server: ServerAddress(hostname: "127.0.0.1", port: 1010), drained: true))
        #expect(s.clusters[1].drained == specG.servers)  // in the order of the definition
        s.apply(.drain(uuid: "g", server: ServerAddress(hostname: "127.0.0.1", port: 1010), drained: false))
        s.apply(.ready(uuid: "g"))
        #expect(s.clusters[1].ready && s.clusters[1].drained == [v6])
        // Same servers, another option: still ready, drains kept.
        var e2 = specG
        e2.version = "4.0.1"
        s.apply(.put(e2))
        #expect(s.clusters[1].ready && s.clusters[1].drained == [v6])
        // Other servers: the gate again; drains of servers no longer listed go.
        var e3 = specG
        e3.servers = [ServerAddress(hostname: "127.0.0.1", port: 1010)]
        s.apply(.put(e3))
        #expect(!s.clusters[1].ready && s.clusters[1].drained.isEmpty)
        // A failed cluster re-admitted by PUT passes the gate again.
        s.apply(.ready(uuid: "g"))
        s.apply(.failed(uuid: "g", reason: "no healthy backend", time: 1))
        s.apply(.put(e3))
        #expect(!s.clusters[1].ready)
        // Without a health check a cluster is ready at once.
        var plain = e3
        plain.healthCheck = nil
        s.apply(.put(plain))
        #expect(s.clusters[1].ready)
        // Snapshots from before health checks (no ready, no drained) read as ready, nothing drained.
        let old = #"{"clusters":[{"cluster":{"servers":[{"hostname":"127.0.0.1","port":1001}],"upgradeTransition":{"mode":"INSTANT"},"uuid":"a","version":"1.0"},"threshold":0}],"op":"snapshot","seq":3}"#
        let back = try Records.decodeSnapshot(Array(old.utf8))
        #expect(back.clusters == [StoredCluster(spec: specA, ready: true)])
        #expect(throws: Records.DecodeError.self) {
            try Records.decode(Array(#"{"op":"drained","seq":1,"uuid":"e","server":{"hostname":"h"}}"#.utf8))
        }
    }

    @Test("PUT of the same uuid keeps GRADUAL progress unless servers, version or mode change")
    func keepProgress() {
        var s = applied([.put(specB), .threshold(uuid: "b", percent: 40)])
        var step = specB
        step.percentageTransitionPerRequest = 1
        s.apply(.put(step))
        #expect(s.clusters[0].threshold == 40)
        var moved = specB
        moved.servers = [ServerAddress(hostname: "127.0.0.1", port: 2000)]
        s.apply(.put(moved))
        #expect(s.clusters[0].threshold == 0)
    }
}

/// The description of the decode error `body` throws; nil when it throws none.
func decodeError(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch {
        return (error as? Records.DecodeError)?.description ?? "not a decode error: \(error)"
    }
}

@Suite("Rollout progress records")
struct RolloutRecordTests {
    @Test("a rollout record round-trips, with and without percent and reason", arguments: [
        RolloutProgress(phase: .pending, step: 0, percent: 0),
        RolloutProgress(phase: .progressing, step: 3, percent: 25),
        RolloutProgress(phase: .paused, step: 1, percent: 0.5),
        RolloutProgress(phase: .completed, step: 4, percent: 100),
        RolloutProgress(phase: .rolledBack, step: 2, percent: 0, reason: "latencyRatio 1.6 above limit 1.5 (requests new 60, old 540)"),
        RolloutProgress(phase: .rolledBack, step: 0, percent: 0, reason: "operator"),
        RolloutProgress(phase: .progressing, step: 0, percent: nil),
    ])
    func roundTrip(_ progress: RolloutProgress) throws {
        let payload = Records.encode(.rollout(uuid: "e", progress: progress), sequence: 9)
        let (seq, change) = try Records.decode(payload)
        #expect(seq == 9)
        #expect(change == .rollout(uuid: "e", progress: progress))
    }

    @Test("the record's bytes are readable JSON with the state by name")
    func recordText() {
        let text = String(decoding: Records.encode(.rollout(uuid: "e", progress: RolloutProgress(phase: .rolledBack, step: 2, percent: 0, reason: "operator")), sequence: 3), as: UTF8.self)
        #expect(text == #"{"op":"rollout","percent":0,"reason":"operator","seq":3,"state":"rolledBack","step":2,"uuid":"e"}"#)
    }

    @Test("applying: recorded per cluster; a PUT keeps it only when servers, version, mode and plan are unchanged")
    func apply() {
        let progress = RolloutProgress(phase: .progressing, step: 1, percent: 12.5)
        var s = applied([.put(specA), .put(specE), .rollout(uuid: "e", progress: progress), .rollout(uuid: "zz", progress: progress)])
        #expect(s.clusters.map(\.rollout) == [nil, progress])
        #expect(s.sequence == 4)

        var sameDefinition = specE
        sameDefinition.ignoreBodyFor = ["/other"]
        s.apply(.put(sameDefinition))
        #expect(s.clusters.last?.rollout == progress)

        var otherPlan = specE
        otherPlan.rollout?.steps[1].holdSeconds = 61
        s.apply(.put(otherPlan))
        #expect(s.clusters.last?.rollout == nil)

        s.apply(.rollout(uuid: "e", progress: progress))
        var otherGates = otherPlan
        otherGates.rollout?.analysis?.maxErrorRatio = 0.02
        #expect(!StoredState.keepsRollout(otherPlan, otherGates))
        #expect(StoredState.keepsRollout(otherPlan, otherPlan))
        s.apply(.put(otherGates))
        #expect(s.clusters.last?.rollout == nil)

        s.apply(.rollout(uuid: "e", progress: progress))
        s.apply(.delete(uuid: "e"))
        s.apply(.put(otherGates))
        #expect(s.clusters.last?.rollout == nil)
    }

    @Test("journals and snapshots written before rollouts existed read unchanged")
    func oldPayloads() throws {
        // Byte for byte what the previous release wrote.
        let put = #"{"cluster":{"servers":[{"hostname":"127.0.0.1","port":1002}],"upgradeTransition":{"mode":"GRADUAL","percentageTransitionPerRequest":0.25},"uuid":"b","version":"1.10"},"op":"put","seq":2}"#
        #expect(try Records.decode(Array(put.utf8)).change == .put(specB))
        #expect(Records.encode(.put(specB), sequence: 2) == Array(put.utf8))
        let snapshot = #"{"clusters":[{"cluster":{"servers":[{"hostname":"127.0.0.1","port":1005}],"upgradeTransition":{"mirrorUnsafeMethods":true,"mode":"CONCURRENT"},"uuid":"d","version":"3"},"failure":{"reason":"r","time":5},"threshold":0}],"op":"snapshot","seq":7}"#
        let state = try Records.decodeSnapshot(Array(snapshot.utf8))
        #expect(state == StoredState(sequence: 7, clusters: [StoredCluster(spec: specD, failure: StoredFailure(reason: "r", time: 5))]))
        #expect(Records.encodeSnapshot(state) == Array(snapshot.utf8))
    }

    @Test("a damaged rollout record is a decode error naming what is wrong", arguments: [
        (#"{"op":"rollout","seq":1,"uuid":"e","step":0}"#, "rollout: bad state"),
        (#"{"op":"rollout","seq":1,"uuid":"e","state":"running","step":0}"#, "rollout: bad state"),
        (#"{"op":"rollout","seq":1,"uuid":"e","state":"paused"}"#, "rollout: bad step"),
        (#"{"op":"rollout","seq":1,"uuid":"e","state":"paused","step":-1}"#, "rollout: bad step"),
        (#"{"op":"rollout","seq":1,"uuid":"e","state":"paused","step":1,"percent":101}"#, "rollout: bad percent"),
        (#"{"op":"rollout","seq":1,"uuid":"e","state":"paused","step":1,"percent":"5"}"#, "rollout: bad percent"),
        (#"{"op":"rollout","seq":1,"uuid":"e","state":"rolledBack","step":1,"reason":5}"#, "rollout: bad reason"),
        (#"{"op":"rollout","seq":1,"uuid":"a b","state":"paused","step":1}"#, "rollout: bad uuid"),
    ])
    func damaged(_ payload: String, _ message: String) {
        #expect(decodeError { _ = try Records.decode(Array(payload.utf8)) } == message)
    }

    @Test("a damaged rollout entry in a snapshot is a decode error")
    func damagedSnapshot() {
        let snapshot = #"{"clusters":[{"cluster":{"servers":[{"hostname":"127.0.0.1","port":1}],"upgradeTransition":{"mode":"INSTANT"},"uuid":"d","version":"3"},"rollout":"progressing","threshold":0}],"op":"snapshot","seq":7}"#
        #expect(decodeError { _ = try Records.decodeSnapshot(Array(snapshot.utf8)) } == "snapshot: bad rollout entry")
        let noState = snapshot.replacingOccurrences(of: #""rollout":"progressing""#, with: #""rollout":{"step":1}"#)
        #expect(decodeError { _ = try Records.decodeSnapshot(Array(noState.utf8)) } == "snapshot rollout: bad state")
    }
}

@Suite("Journal cost")
struct JournalCostTests {
    /// Prints the cost of one durable change (encode, frame, write, fsync) on the test
    /// machine's file system; asserts only the fsync count, not the time.
    @Test("one fsync per appended change; time per append printed")
    func appendCost() throws {
        let dir = tempStateDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try JournalStore(directory: dir)
        _ = try store.load()
        var state = StoredState()
        let n = 200
        let fsyncsBefore = store.fsyncCount
        let start = ContinuousClock.now
        for i in 0..<n {
            let change = StateChange.put(ClusterSpec(uuid: "c\(i % 20)", version: "2.\(i)", servers: [ServerAddress(hostname: "127.0.0.1", port: 8080)]))
            state.apply(change)
            try store.append(change, sequence: state.sequence)
        }
        let elapsed = ContinuousClock.now - start
        let micros = Double(elapsed.components.seconds) * 1e6 + Double(elapsed.components.attoseconds) / 1e12
        let fsyncs = store.fsyncCount - fsyncsBefore
        print("journal: \(n) appends, \(Int(micros / Double(n))) us and \(Double(fsyncs) / Double(n)) fsyncs per change, \(store.journalBytes / n) bytes per record")
        #expect(fsyncs == n)
        // Encoding alone, without the write and fsync.
        let encodeStart = ContinuousClock.now
        for i in 0..<n {
            _ = Frames.frame(Records.encode(.put(ClusterSpec(uuid: "c\(i)", version: "2.\(i)", servers: [ServerAddress(hostname: "127.0.0.1", port: 8080)])), sequence: UInt64(i)))
        }
        let encoded = ContinuousClock.now - encodeStart
        print("journal: encoding \(Int((Double(encoded.components.seconds) * 1e6 + Double(encoded.components.attoseconds) / 1e12) / Double(n))) us per record (debug build)")
    }
}

/// Service records: a service with every option, its clusters, a change set, a removal.
let serviceChanges: [StateChange] = {
    var release = ClusterSpec(uuid: "svc-1", version: "2.0", servers: [ServerAddress(hostname: "127.0.0.1", port: 9001)])
    release.release = "2026.12"
    let api = ClusterSpec(uuid: "svc-2", version: "1.0", servers: [ServerAddress(hostname: "127.0.0.1", port: 9002)])
    let shop = ServiceSpec(name: "shop", hosts: ["shop.example.com", "*.shop.example.com"], pathPrefix: "/static/",
                           cookies: ServiceCookies(session: "s", lastSeen: "seen", path: "/x"), releaseGroup: "web")
    return [
        .putService(shop),
        .putIn(service: "shop", release),
        .changeSet([.putService(ServiceSpec(name: "api", hosts: ["api.example.com"])), .putIn(service: "api", api),
                    .putService(ServiceSpec(name: "gone", hosts: ["gone.example.com"]))]),
        .deleteService(name: "gone"),
    ]
}()
