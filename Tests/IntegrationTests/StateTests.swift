import Foundation
import Testing

/// `--state-dir`: what survives a restart, what refuses to start, and the operations made safer.
@Suite("State and restarts", .serialized)
struct StateTests {
    static func args(_ stateDir: String) -> [String] { ["--workers", "1", "--log-level", "INFO", "--state-dir", stateDir] }

    @Test("API changes, a failed mark with its reason and GRADUAL progress survive SIGKILL; the state wins over the file")
    func restartKeepsState() throws {
        let old = try TestBackend.named("old")
        let new = try TestBackend.named("new")
        defer { old.stop(); new.stop() }
        let stateDir = makeStateDirPath()
        defer { try? FileManager.default.removeItem(atPath: stateDir) }
        let config = ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [old.port], version: "1.0", uuid: "v1")])
        let proxy = try ProxyProcess(config: config, arguments: Self.args(stateDir))
        #expect(proxy.log.contains(#"event=state_loaded source="configuration file (state directory was empty)""#))
        // A version whose backend refuses connections is marked failed by the data plane.
        _ = try proxy.putCluster(ProxyProcess.cluster(ports: [TestBackend.closedPort()], version: "3.0", uuid: "broken"))
        try waitUntil("the broken version to be marked failed") {
            _ = try? ClientConnection(port: proxy.port).get("/")
            return try proxy.api("GET", "/configuration/cluster/broken").1.contains("\"state\":\"failed\"")
        }
        // GRADUAL progress: each success raises the threshold by 2.
        _ = try proxy.putCluster(ProxyProcess.cluster(ports: [new.port], version: "2.0", uuid: "g",
                                                      mode: ["mode": "GRADUAL", "percentageTransitionPerRequest": 2]))
        try waitUntil("GRADUAL to govern") { try proxy.statusClusters()["g"] != nil }
        for _ in 0..<7 { _ = try ClientConnection(port: proxy.port).get("/") }
        let threshold = try #require(try proxy.statusClusters()["g"]?["gradualThreshold"] as? Double)
        #expect(threshold > 0)
        // The control plane journals both within a second (its tick); wait for it on disk.
        try waitUntil("the tick to journal the failure and the threshold") {
            let journal = String(decoding: FileManager.default.contents(atPath: stateDir + "/journal") ?? Data(), as: UTF8.self)
            return journal.contains(#""op":"failed""#) && journal.contains(#""percent":\#(Int(threshold))"#)
        }
        let before = try proxy.clusterList()
        proxy.kill9()
        proxy.stop()

        let again = try ProxyProcess(config: config, arguments: Self.args(stateDir))
        defer { again.stop() }
        #expect(again.log.contains(#"event=state_loaded source="state directory""#))
        #expect(again.log.contains("clusters=3"))
        #expect(try again.api("GET", "/status").1.contains("\"durableState\":true"))
        #expect(again.log.contains("event=serving_cluster version=3.0 uuid=broken"))
        let after = try again.clusterList()
        #expect(Set(after.keys) == Set(before.keys))
        #expect(NSDictionary(dictionary: after) == NSDictionary(dictionary: before))
        let broken = try #require(after["broken"])
        #expect(broken["state"] as? String == "failed")
        #expect((broken["failure"] as? [String: Any])?["reason"] as? String == "no healthy backend")
        #expect(try again.statusClusters()["g"]?["gradualThreshold"] as? Double == threshold)
        // Failed stays failed: traffic keeps going to the previous version.
        #expect(try ClientConnection(port: again.port).get("/").status == 200)
    }

    @Test("SIGTERM right after traffic: the last GRADUAL progress is recorded on the way out")
    func gracefulStopRecordsProgress() throws {
        let old = try TestBackend.named("old")
        let new = try TestBackend.named("new")
        defer { old.stop(); new.stop() }
        let stateDir = makeStateDirPath()
        defer { try? FileManager.default.removeItem(atPath: stateDir) }
        let config = ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [old.port], version: "1.0", uuid: "v1")])
        let proxy = try ProxyProcess(config: config, arguments: Self.args(stateDir))
        _ = try proxy.putCluster(ProxyProcess.cluster(ports: [new.port], version: "2.0", uuid: "g",
                                                      mode: ["mode": "GRADUAL", "percentageTransitionPerRequest": 3]))
        try waitUntil("GRADUAL to govern") { try proxy.statusClusters()["g"] != nil }
        for _ in 0..<5 { _ = try ClientConnection(port: proxy.port).get("/") }
        try waitUntil("the threshold to reach 15") { try proxy.statusClusters()["g"]?["gradualThreshold"] as? Double == 15 }
        #expect(proxy.stop() == 0)
        let again = try ProxyProcess(config: config, arguments: Self.args(stateDir))
        defer { again.stop() }
        #expect(try again.statusClusters()["g"]?["gradualThreshold"] as? Double == 15)
    }

    @Test("without --state-dir: the start-up log says changes will not survive; they do not")
    func withoutStateDir() throws {
        let backend = try TestBackend.named("b")
        defer { backend.stop() }
        let config = ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [backend.port], version: "1.0", uuid: "v1")])
        let proxy = try ProxyProcess(config: config)
        #expect(proxy.log.contains("event=state_not_durable"))
        #expect(proxy.log.contains("will not survive a restart"))
        #expect(try proxy.api("GET", "/status").1.contains("\"durableState\":false"))
        _ = try proxy.putCluster(ProxyProcess.cluster(ports: [backend.port], version: "2.0", uuid: "v2"))
        proxy.stop()
        let again = try ProxyProcess(config: config)
        defer { again.stop() }
        #expect(Set(try again.clusterList().keys) == ["v1"])
    }

    @Test("a second process on the same state directory is refused: exit 2, one line")
    func lockedDirectory() throws {
        let backend = try TestBackend.named("b")
        defer { backend.stop() }
        let stateDir = makeStateDirPath()
        defer { try? FileManager.default.removeItem(atPath: stateDir) }
        let config = ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [backend.port], version: "1.0", uuid: "v1")])
        let first = try ProxyProcess(config: config, arguments: Self.args(stateDir))
        defer { first.stop() }
        let (status, stderr) = try runSwitchyard(["--config", first.configPath, "--state-dir", stateDir])
        #expect(status == 2)
        #expect(stderr.split(separator: "\n").count == 1)
        #expect(stderr.contains("in use by another switchyard process"))
        #expect(stderr.contains(stateDir))
    }

    @Test("damage before the journal's end refuses to start naming file, offset and --reset-state; --reset-state starts from the file")
    func corruptJournal() throws {
        let backend = try TestBackend.named("b")
        defer { backend.stop() }
        let stateDir = makeStateDirPath()
        defer { try? FileManager.default.removeItem(atPath: stateDir) }
        let config = ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [backend.port], version: "1.0", uuid: "v1")])
        let proxy = try ProxyProcess(config: config, arguments: Self.args(stateDir))
        _ = try proxy.putCluster(ProxyProcess.cluster(ports: [backend.port], version: "2.0", uuid: "v2"))
        _ = try proxy.putCluster(ProxyProcess.cluster(ports: [backend.port], version: "3.0", uuid: "v3"))
        proxy.kill9()
        let configDir = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-cfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: configDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: configDir) }
        let configPath = configDir.appendingPathComponent("config.json").path
        try writeConfig(config, to: configPath)
        proxy.stop()

        let journal = stateDir + "/journal"
        var bytes = [UInt8](FileManager.default.contents(atPath: journal) ?? Data())
        let offsets = journalRecordOffsets(bytes)
        try #require(offsets.count == 2)
        bytes[offsets[0] + 20] ^= 0x01   // a payload byte of the first of two records
        try Data(bytes).write(to: URL(fileURLWithPath: journal))

        let (status, stderr) = try runSwitchyard(["--config", configPath, "--state-dir", stateDir, "--workers", "1"])
        #expect(status == 2)
        let lines = stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(stderr)")
        #expect(stderr.contains(journal))
        #expect(stderr.contains("byte \(offsets[0])"))
        #expect(stderr.contains("--reset-state"))

        let reset = try ProxyProcess(config: config, arguments: Self.args(stateDir) + ["--reset-state"])
        defer { reset.stop() }
        #expect(reset.log.contains("event=state_reset"))
        #expect(Set(try reset.clusterList().keys) == ["v1"])
        let aside = try FileManager.default.contentsOfDirectory(atPath: stateDir).filter { $0.hasPrefix("journal.bad-") }
        #expect(aside.count == 1)
    }

    @Test("DELETE of the last active cluster → 409 with a message, unless ?force=true")
    func deleteLastActive() throws {
        let backend = try TestBackend.named("b")
        defer { backend.stop() }
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [backend.port], version: "1.0", uuid: "v1")]))
        defer { proxy.stop() }
        // A failed cluster does not count as active.
        _ = try proxy.putCluster(ProxyProcess.cluster(ports: [TestBackend.closedPort()], version: "2.0", uuid: "broken"))
        try waitUntil("the broken version to be marked failed") {
            _ = try? ClientConnection(port: proxy.port).get("/")
            return try proxy.api("GET", "/configuration/cluster/broken").1.contains("\"state\":\"failed\"")
        }
        let (status, message) = try proxy.api("DELETE", "/configuration/cluster/v1")
        #expect(status == 409)
        #expect(message.contains("last active cluster") && message.contains("force=true"))
        #expect(Set(try proxy.clusterList().keys) == ["v1", "broken"])
        #expect(try proxy.api("DELETE", "/configuration/cluster/broken").0 == 202)
        #expect(try proxy.api("DELETE", "/configuration/cluster/v1?force=false").0 == 409)
        #expect(try proxy.api("DELETE", "/configuration/cluster/v1?force=true").0 == 202)
        #expect(try proxy.clusterList().isEmpty)
        #expect(try ClientConnection(port: proxy.port).get("/").status == 503)
    }

    @Test("PUT of an existing uuid keeps GRADUAL progress unless servers, version or mode change")
    func putKeepsProgress() throws {
        let old = try TestBackend.named("old")
        let new = try TestBackend.named("new")
        let other = try TestBackend.named("other")
        defer { old.stop(); new.stop(); other.stop() }
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [old.port], version: "1.0", uuid: "v1")]))
        defer { proxy.stop() }
        let gradual: [String: Any] = ["mode": "GRADUAL", "percentageTransitionPerRequest": 5]
        _ = try proxy.putCluster(ProxyProcess.cluster(ports: [new.port], version: "2.0", uuid: "g", mode: gradual))
        try waitUntil("GRADUAL to govern") { try proxy.statusClusters()["g"] != nil }
        for _ in 0..<4 { _ = try ClientConnection(port: proxy.port).get("/") }
        try waitUntil("the threshold to reach 20") { try proxy.statusClusters()["g"]?["gradualThreshold"] as? Double == 20 }
        // A different step only: progress kept.
        _ = try proxy.putCluster(ProxyProcess.cluster(ports: [new.port], version: "2.0", uuid: "g",
                                                      mode: ["mode": "GRADUAL", "percentageTransitionPerRequest": 1]))
        #expect(try proxy.statusClusters()["g"]?["gradualThreshold"] as? Double == 20)
        try waitUntil("the log line") { proxy.log.contains("gradualProgress=kept") }
        // Other servers: a new transition from 0.
        _ = try proxy.putCluster(ProxyProcess.cluster(ports: [other.port], version: "2.0", uuid: "g", mode: gradual))
        #expect(try proxy.statusClusters()["g"]?["gradualThreshold"] as? Double == 0)
        try waitUntil("the log line") { proxy.log.contains("gradualProgress=reset") }
    }

    @Test("2014 formats: servers[i].ip, a numeric version kept as written, ./config.json by default")
    func formats2014() throws {
        let backend = try TestBackend.named("b")
        defer { backend.stop() }
        var config = ProxyProcess.config(clusters: [])
        config["clusters"] = nil
        config["cluster"] = ["servers": [["ip": "127.0.0.1", "port": backend.port]], "version": "1.0", "uuid": "v1"]
        let proxy = try ProxyProcess(config: config, defaultConfigFile: true)
        defer { proxy.stop() }
        #expect(proxy.log.contains("event=config_default file=./config.json"))
        #expect(proxy.log.contains("event=serving_cluster version=1.0 uuid=v1 mode=INSTANT servers=127.0.0.1:\(backend.port)"))
        #expect(try ClientConnection(port: proxy.port).get("/").bodyText == "b\n")
        let body = #"{"cluster":{"uuid":"v110","version":1.10,"servers":[{"ip":"127.0.0.1","port":\#(backend.port)}]}}"#
        #expect(try proxy.api("PUT", "/configuration/cluster", body: body).0 == 202)
        #expect(try proxy.clusterList()["v110"]?["version"] as? String == "1.10")

        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-empty-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: empty) }
        let (status, stderr) = try runSwitchyard([], cwd: empty)
        #expect(status == 2)
        #expect(stderr.split(separator: "\n").count == 1)
        #expect(stderr.contains("usage: switchyard --config FILE"))
    }
}
