import Foundation
import Testing

/// Runs `switchyard ctl` (the real binary) to its end: exit status, stdout and stderr.
func runCtl(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, out: String, err: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: switchyardBinary())
    process.arguments = ["ctl"] + arguments
    var env = ProcessInfo.processInfo.environment
    env["SWITCHYARD_ADMIN"] = nil
    env["SWITCHYARD_TOKEN"] = nil
    env["SWITCHYARD_CACERT"] = nil
    for (k, v) in environment { env[k] = v }
    process.environment = env
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read both pipes to the end (stderr on a helper thread), so neither can fill up.
    let errText = Locked("")
    let errDone = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
        let data = err.fileHandleForReading.readDataToEndOfFile()
        errText.withLock { $0 = String(decoding: data, as: UTF8.self) }
        errDone.signal()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    errDone.wait()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: outData, as: UTF8.self), errText.withLock { $0 })
}

/// `switchyard ctl` against a real proxy with real backends.
@Suite("switchyard ctl", .serialized)
struct CtlCommandTests {
    @Test("status, put with a plan, pause, drain, clusters, comparisons and delete through ctl")
    func operatorSession() throws {
        let v1 = try ProbedBackend("v1")
        let v2 = try ProbedBackend("v2")
        defer { v1.stop(); v2.stop() }
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [v1.port], version: "1.0", uuid: "v1")]))
        defer { proxy.stop() }
        let admin = ["SWITCHYARD_ADMIN": "http://127.0.0.1:\(proxy.adminPort)"]

        var r = try runCtl(["status"], environment: admin)
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("UUID  VERSION  MODE"))
        #expect(r.out.contains("v1    1.0      INSTANT  active"), "\(r.out)")

        r = try runCtl(["put", "--uuid", "v2", "--version", "2.0", "--server", "127.0.0.1:\(v2.port)", "--mode", "GRADUAL",
                        "--steps", "5,25,100", "--hold", "60s"], environment: admin)
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out == "put: v2\n")
        let rollout = try #require(try proxy.cluster("v2")["rollout"] as? [String: Any])
        #expect(rollout["steps"] as? Int == 3)
        #expect(rollout["percent"] as? Double == 5 || rollout["percent"] as? Int == 5)

        r = try runCtl(["pause", "v2"], environment: admin)
        #expect(r.status == 0, "\(r.err)")
        #expect((try proxy.cluster("v2")["rollout"] as? [String: Any])?["state"] as? String == "paused")

        r = try runCtl(["drain", "v2", "127.0.0.1:\(v2.port)"], environment: admin)
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out == "127.0.0.1:\(v2.port) drained\n")

        r = try runCtl(["clusters"], environment: admin)
        #expect(r.status == 0)
        let lines = r.out.split(separator: "\n")
        #expect(lines.count == 3, "\(r.out)")
        #expect(lines.contains { $0.hasPrefix("v2") && $0.contains("plan of 3 steps") && $0.contains("1 drained") && $0.contains("paused 1/3 5 %") },
                "\(r.out)")

        r = try runCtl(["--json", "status"], environment: admin)
        let json = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
        #expect((json?["clusters"] as? [Any])?.count == 2)

        r = try runCtl(["comparisons", "--divergent"], environment: admin)
        #expect(r.status == 0)
        #expect(r.out.hasPrefix("0 compared, 0 divergent"))

        r = try runCtl(["delete", "v2"], environment: admin)
        #expect(r.status == 0, "\(r.err)")
        #expect(try proxy.api("GET", "/configuration/cluster/v2").0 == 404)
    }

    @Test("errors: the API's message on one line and exit 1; usage errors exit 2; a proxy that is not there is named")
    func errors() throws {
        let v1 = try ProbedBackend("v1")
        defer { v1.stop() }
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [v1.port], version: "1.0", uuid: "v1")]))
        defer { proxy.stop() }
        let admin = ["--admin", "http://127.0.0.1:\(proxy.adminPort)"]

        var r = try runCtl(admin + ["pause", "nosuch"])
        #expect(r.status == 1)
        #expect(r.err == "switchyard ctl: POST /configuration/cluster/nosuch/pause: 404: no cluster with uuid nosuch\n")
        #expect(r.out.isEmpty)

        r = try runCtl(admin + ["delete", "v1"])
        #expect(r.status == 1)
        #expect(r.err.hasPrefix("switchyard ctl: DELETE /configuration/cluster/v1: 409: cluster v1 is the last active cluster"))
        #expect(r.err.split(separator: "\n").count == 1)

        let file = FileManager.default.temporaryDirectory.appendingPathComponent("ctl-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data(#"{"cluster": {"version": "2.0", "servers": [{"hostname": "127.0.0.1", "port": 0}]}}"#.utf8).write(to: file)
        r = try runCtl(admin + ["put", file.path])
        #expect(r.status == 1)
        #expect(r.err == "switchyard ctl: PUT /configuration/cluster: 400: cluster.servers[0].port: must be an integer between 1 and 65535\n")

        r = try runCtl(admin + ["pause"])
        #expect(r.status == 2)
        #expect(r.err == "switchyard ctl: usage: switchyard ctl pause ID\n")

        // A port nothing listens on: the one the proxy had, after it stopped.
        let gone = proxy.adminPort
        proxy.stop()
        r = try runCtl(["--admin", "http://127.0.0.1:\(gone)", "status"])
        #expect(r.status == 1)
        #expect(r.err == "switchyard ctl: cannot reach the admin API at http://127.0.0.1:\(gone): Connection refused (is switchyard running? see --admin or SWITCHYARD_ADMIN)\n")
    }

    @Test("the token comes from --token or SWITCHYARD_TOKEN; health endpoints need none")
    func token() throws {
        let v1 = try ProbedBackend("v1")
        defer { v1.stop() }
        var config = ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [v1.port], version: "1.0", uuid: "v1")])
        config["configService"] = ["hostname": "127.0.0.1", "port": 0, "token": "s3cret"]
        let proxy = try ProxyProcess(config: config)
        defer { proxy.stop() }
        let url = "http://127.0.0.1:\(proxy.adminPort)"
        var r = try runCtl(["--admin", url, "status"])
        #expect(r.status == 1)
        #expect(r.err == "switchyard ctl: GET /status: 401: missing or wrong bearer token\n")
        r = try runCtl(["--admin", url, "--token", "s3cret", "status"])
        #expect(r.status == 0, "\(r.err)")
        r = try runCtl(["status"], environment: ["SWITCHYARD_ADMIN": url, "SWITCHYARD_TOKEN": "s3cret"])
        #expect(r.status == 0, "\(r.err)")
        #expect(try proxy.api("GET", "/healthz").0 == 200)
        #expect(try proxy.api("GET", "/readyz").0 == 200)
    }

    @Test("watch redraws the status every second with requests per second")
    func watch() throws {
        let v1 = try ProbedBackend("v1")
        defer { v1.stop() }
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [v1.port], version: "1.0", uuid: "v1")]))
        defer { proxy.stop() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: switchyardBinary())
        process.arguments = ["ctl", "--admin", "http://127.0.0.1:\(proxy.adminPort)", "watch"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        // SIGKILL: the child inherits the test thread's blocked signals, so SIGTERM would wait.
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) }; process.waitUntilExit() }
        let text = Locked("")
        Thread.detachNewThread {
            while true {
                let chunk = out.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                text.withLock { $0 += String(decoding: chunk, as: UTF8.self) }
            }
        }
        // Two frames: the second has a rate for v1.
        try waitUntil("two watch frames", timeout: 10) { text.withLock { $0.components(separatedBy: "\u{1B}[2J").count >= 3 } }
        let frames = text.withLock { $0 }.components(separatedBy: "\u{1B}[2J")
        #expect(frames[1].contains("REQ/S"))
        #expect(frames[2].contains("v1    1.0      INSTANT"), "\(frames[2])")
        #expect(frames[2].contains("  0.0  "), "\(frames[2])")
    }
}

/// `/healthz`, `/readyz` and `--check-config` on the real binary.
@Suite("Health endpoints and --check-config")
struct HealthAndCheckConfigTests {
    @Test("healthz names every worker; readyz waits for a ready cluster")
    func probes() throws {
        let v1 = try ProbedBackend("v1", healthy: false)
        defer { v1.stop() }
        var cluster = ProxyProcess.cluster(ports: [v1.port], version: "1.0", uuid: "v1")
        cluster["healthCheck"] = quickCheck()
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [cluster]), arguments: ["--workers", "3", "--log-level", "INFO"])
        defer { proxy.stop() }
        let (status, body) = try proxy.api("GET", "/healthz")
        #expect(status == 200)
        let workers = (try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["workers"] as? [[String: Any]]
        #expect(workers?.count == 3)
        #expect(workers?.allSatisfy { $0["answered"] as? Bool == true } == true)
        let notReady = try proxy.api("GET", "/readyz")
        #expect(notReady.0 == 503)
        #expect(notReady.1.contains("no ready cluster"))
        v1.healthy.store(true, ordering: .relaxed)
        try waitUntil("readyz to answer 200") { try proxy.api("GET", "/readyz").0 == 200 }
    }

    @Test("--check-config exits 0 for a valid file and 2 with the message otherwise; --no-resolve skips DNS")
    func checkConfig() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("check-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func write(_ name: String, _ text: String) throws -> String {
            let path = dir.appendingPathComponent(name).path
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            return path
        }
        let good = try write("good.json", #"{"clusters": [{"cluster": {"version": "1", "servers": [{"hostname": "127.0.0.1", "port": 80}]}}]}"#)
        let bad = try write("bad.json", #"{"clusters": [{"cluster": {"version": "1", "servers": [{"hostname": "127.0.0.1", "port": 0}]}}]}"#)
        let named = try write("named.json", #"{"clusters": [{"cluster": {"version": "1", "servers": [{"hostname": "app.nowhere.invalid", "port": 80}]}}]}"#)
        #expect(try runSwitchyard(["--check-config", good]).status == 0)
        let refused = try runSwitchyard(["--check-config", bad])
        #expect(refused.status == 2)
        #expect(refused.stderr == "switchyard: \(bad): clusters[0].cluster.servers[0].port: must be an integer between 1 and 65535\n")
        let unresolved = try runSwitchyard(["--check-config", named])
        #expect(unresolved.status == 2)
        #expect(unresolved.stderr.contains("cannot resolve \"app.nowhere.invalid\""))
        #expect(try runSwitchyard(["--check-config", named, "--no-resolve"]).status == 0)
        #expect(try runSwitchyard(["--check-config", dir.appendingPathComponent("missing.json").path]).status == 2)
    }
}

/// `switchyard ctl` with services: `--service`, change sets, and the SERVICE column.
@Suite("switchyard ctl with services")
struct CtlServicesTests {
    @Test("clusters --service, put --service and changes FILE.json reach the services API")
    func services() throws {
        let v1 = try ProbedBackend("v1"), shop = try ProbedBackend("shop")
        defer { v1.stop(); shop.stop() }
        let config = ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [v1.port], version: "1.0", uuid: "v1")],
                                         extra: ["services": [["name": "shop", "hosts": ["shop.example"],
                                                               "clusters": [["cluster": ProxyProcess.cluster(ports: [shop.port], version: "1.0", uuid: "shop-v1")]]]]])
        let proxy = try ProxyProcess(config: config)
        defer { proxy.stop() }
        let admin = ["--admin", "http://127.0.0.1:\(proxy.adminPort)"]

        var r = try runCtl(admin + ["clusters", "--service", "shop"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("shop-v1") && !r.out.contains("v1    1.0"), "\(r.out)")

        r = try runCtl(admin + ["put", "--service", "shop", "--uuid", "shop-v2", "--version", "2.0", "--server", "127.0.0.1:\(shop.port)"])
        #expect(r.status == 0, "\(r.err)")
        #expect(try proxy.api("GET", "/services/shop/clusters/shop-v2").0 == 200)

        let file = FileManager.default.temporaryDirectory.appendingPathComponent("changes-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        let set = #"{"changes": [{"service": "shop", "delete": "shop-v2"}, {"service": "default", "put": {"uuid": "v2", "version": "2.0", "servers": [{"hostname": "127.0.0.1", "port": \#(v1.port)}]}}]}"#
        try Data(set.utf8).write(to: file)
        r = try runCtl(admin + ["changes", file.path])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("\"generation\""), "\(r.out)")
        #expect(try proxy.api("GET", "/services/shop/clusters/shop-v2").0 == 404)
        #expect(try proxy.api("GET", "/configuration/cluster/v2").0 == 200)

        r = try runCtl(admin + ["status"])
        #expect(r.out.contains("SERVICE  UUID"), "\(r.out)")
        #expect(r.out.contains("shop     shop-v1"), "\(r.out)")

        // A refused change set: the API's message, exit 1.
        try Data(#"{"changes": [{"service": "nope", "delete": "x1"}]}"#.utf8).write(to: file)
        r = try runCtl(admin + ["changes", file.path])
        #expect(r.status == 1)
        #expect(r.err.hasPrefix("switchyard ctl: POST /changes: 4"), "\(r.err)")
    }
}
