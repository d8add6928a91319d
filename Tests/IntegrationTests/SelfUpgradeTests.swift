import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Self-upgrade with real processes: `switchyard upgrade` replaces the running proxy by a new
/// process (the same binary) while clients keep working.
@Suite(.serialized) struct SelfUpgradeTests {
    /// 512 MiB, sent in 1 MiB blocks; each block starts with its index (so a lost, doubled
    /// or reordered block is caught) and goes on with a fixed pattern.
    static let blockSize = 1 << 20
    static let downloadBlocks = 512
    static let basePattern: [UInt8] = (0..<blockSize).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 11) }

    static func block(_ index: Int) -> [UInt8] {
        var block = basePattern
        for i in 0..<8 { block[i] = UInt8(truncatingIfNeeded: UInt64(index) >> (56 - 8 * UInt64(i))) }
        return block
    }

    /// A backend with small answers, the big download and an echo tunnel.
    static func backend() throws -> TestBackend {
        try TestBackend(readsBodies: false) { request, socket in
            switch request.target {
            case "/download":
                try socket.send("HTTP/1.1 200 OK\r\nContent-Length: \(blockSize * downloadBlocks)\r\n\r\n")
                for k in 0..<downloadBlocks { try socket.send(block(k)) }
                return true
            case "/tunnel":
                try socket.send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
                while true {
                    let data = try socket.receiveSome()
                    if data.isEmpty { return false }
                    try socket.send(data.map { $0 == UInt8(ascii: "a") ? UInt8(ascii: "A") : $0 })
                }
            default:
                try TestBackend.respond(socket, body: "ok \(request.target)")
                return true
            }
        }
    }

    /// Starts the proxy in test mode (responses name the serving pid) with a state directory.
    static func start(backend: TestBackend, stateDir: String?, drainSeconds: Double = 60) throws -> ProxyProcess {
        let config = ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [backend.port], version: "1.0")],
                                         extra: ["upgrade": ["drainSeconds": drainSeconds]])
        return try ProxyProcess(config: config, arguments: ["--workers", "2", "--log-level", "INFO"] + (stateDir.map { ["--state-dir", $0] } ?? []),
                                wrapper: ["/usr/bin/env", "SWITCHYARD_TEST_SERVING_PID=1"])
    }

    /// Runs `switchyard upgrade` against the proxy's API: exit status, stdout, stderr, seconds taken.
    static func upgrade(_ proxy: ProxyProcess, _ extra: [String] = []) throws -> (status: Int32, out: String, err: String, seconds: Double) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: switchyardBinary())
        process.arguments = ["upgrade", "--admin", "http://127.0.0.1:\(proxy.adminPort)"] + extra
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let started = Date()
        try process.run()
        let outText = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, outText, errText, Date().timeIntervalSince(started))
    }

    /// The pid that serves the API now, and its upgrade state.
    static func serving(_ proxy: ProxyProcess) throws -> (pid: Int, state: String) {
        let (status, body) = try proxy.api("GET", "/upgrade")
        guard status == 200, let json = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
              let pid = json["pid"] as? Int, let state = json["state"] as? String else { throw HarnessError("GET /upgrade: \(status) \(body)") }
        return (pid, state)
    }

    /// Ends a process that is not our child (a successor): SIGTERM, then wait for it to go.
    static func terminate(_ pid: Int) {
        kill(Int32(pid), SIGTERM)
        try? waitUntil("pid \(pid) to exit", timeout: 20) {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
            return stat.contains(") Z ")
        }
    }

    static func pid(of response: TestResponse) -> Int { Int(response.header("X-Switchyard-Pid") ?? "") ?? 0 }

    @Test("five upgrades under load: no error, no reset, no refused connect; idle connections move; state identical")
    func fiveUpgradesUnderLoad() throws {
        let backend = try Self.backend()
        defer { backend.stop() }
        let stateDir = makeStateDirPath()
        let proxy = try Self.start(backend: backend, stateDir: stateDir)
        defer { proxy.stop() }
        let port = proxy.port
        // State beyond the file: a second cluster through the API, then one of its servers drained.
        let v2 = try proxy.putCluster(ProxyProcess.cluster(ports: [backend.port, 1], version: "0.9",
                                                           mode: ["mode": "SESSION", "sessionTimeout": 60]))
        #expect(try proxy.api("POST", "/configuration/cluster/\(v2)/servers/127.0.0.1:1/drain").0 == 202)
        let stateBefore = try proxy.api("GET", "/configuration/cluster").1

        let stop = Locked<Bool>(false)
        let failures = Locked<[String]>([])
        let served = Locked<Int>(0)
        @Sendable func fail(_ what: String) { failures.withLock { $0.append(what) } }
        var threads: [Thread] = []
        func spawn(_ body: @escaping @Sendable () -> Void) {
            let thread = Thread { body() }
            threads.append(thread)
            thread.start()
        }
        let finished = Locked(0)

        // Keep-alive load: four clients, one connection each, a request after another.
        let lastPids = Locked<[Int: Int]>([:])
        for c in 0..<4 {
            spawn {
                defer { finished.withLock { $0 += 1 } }
                do {
                    let client = try ClientConnection(port: port)
                    defer { client.close() }
                    var n = 0
                    while !stop.withLock({ $0 }) {
                        let response = try client.get("/load/\(c)/\(n)")
                        guard response.status == 200, response.bodyText == "ok /load/\(c)/\(n)" else {
                            fail("load \(c): \(response.status) \(response.bodyText)"); return
                        }
                        lastPids.withLock { $0[c] = Self.pid(of: response) }
                        served.withLock { $0 += 1 }
                        n += 1
                    }
                } catch { fail("load \(c): \(error)") }
            }
        }
        // A client that pipelines two requests at a time.
        spawn {
            defer { finished.withLock { $0 += 1 } }
            do {
                let client = try ClientConnection(port: port)
                defer { client.close() }
                var n = 0
                while !stop.withLock({ $0 }) {
                    try client.send("GET /p/\(n) HTTP/1.1\r\nHost: t\r\n\r\nGET /p/\(n + 1) HTTP/1.1\r\nHost: t\r\n\r\n")
                    for k in 0..<2 {
                        let response = try client.readResponse()
                        guard response.bodyText == "ok /p/\(n + k)" else { fail("pipelined: \(response.status) \(response.bodyText)"); return }
                    }
                    n += 2
                }
            } catch { fail("pipelined: \(error)") }
        }
        // A connect loop: a new connection per request, all the time.
        let connects = Locked<Int>(0)
        spawn {
            defer { finished.withLock { $0 += 1 } }
            while !stop.withLock({ $0 }) {
                do {
                    let client = try ClientConnection(port: port)
                    defer { client.close() }
                    let response = try client.get("/connect", headers: ["Connection": "close"])
                    guard response.status == 200 else { fail("connect loop: \(response.status)"); return }
                    connects.withLock { $0 += 1 }
                } catch { fail("connect loop: \(error)"); return }
            }
        }
        // The download: an eighth of it now, the rest after the upgrades (its exchange stays in
        // the first process, which drains it).
        let downloadStarted = Locked<Bool>(false)
        let downloadOK = Locked<Bool>(false)
        let downloadPid = Locked<Int>(0)
        spawn {
            defer { finished.withLock { $0 += 1 } }
            do {
                let client = try ClientConnection(port: port, timeout: 60)
                defer { client.close() }
                try client.send("GET /download HTTP/1.1\r\nHost: t\r\n\r\n")
                guard let status = try client.socket.readLine(), status.hasPrefix("HTTP/1.1 200") else { fail("download: no 200"); return }
                var pidLine = 0
                while let line = try client.socket.readLine(), !line.isEmpty {
                    if line.lowercased().hasPrefix("x-switchyard-pid:") { pidLine = Int(line.split(separator: " ").last ?? "") ?? 0 }
                }
                downloadPid.withLock { $0 = pidLine }
                let total = Self.blockSize * Self.downloadBlocks
                var offset = 0
                var expected = Self.block(0)
                while offset < total {
                    if offset >= total / 8 && !downloadStarted.withLock({ $0 }) {
                        downloadStarted.withLock { $0 = true }
                        while !stop.withLock({ $0 }) { usleep(10_000) }
                    }
                    let chunk = try client.socket.receiveSome(max: min(1 << 16, Self.blockSize - offset % Self.blockSize))
                    guard !chunk.isEmpty else { fail("download cut at \(offset)"); return }
                    let inBlock = offset % Self.blockSize
                    let same = chunk.withUnsafeBytes { got in
                        expected.withUnsafeBytes { want in memcmp(got.baseAddress!, want.baseAddress! + inBlock, chunk.count) == 0 }
                    }
                    guard same else { fail("download differs in block \(offset / Self.blockSize)"); return }
                    offset += chunk.count
                    if offset % Self.blockSize == 0 && offset < total { expected = Self.block(offset / Self.blockSize) }
                }
                downloadOK.withLock { $0 = true }
            } catch { fail("download: \(error)") }
        }
        // A tunnel that exchanges a message after every upgrade.
        let tunnel = try ClientConnection(port: port)
        try tunnel.send("GET /tunnel HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        #expect(try tunnel.readResponse().status == 101)
        // Idle keep-alive connections: one request each now, one after every upgrade.
        let idle = try (0..<8).map { _ in try ClientConnection(port: port) }
        defer { idle.forEach { $0.close() } }
        let firstPid = try Self.serving(proxy).pid
        for connection in idle { #expect(Self.pid(of: try connection.get("/idle")) == firstPid) }
        try waitUntil("the download to be under way", timeout: 30) { downloadStarted.withLock { $0 } }
        try waitUntil("load to flow") { served.withLock { $0 } > 50 }

        var pids = [firstPid]
        var times: [Double] = []
        var reported: [String] = []
        for round in 1...5 {
            let result = try Self.upgrade(proxy)
            #expect(result.status == 0, "upgrade \(round): \(result.err)")
            times.append(result.seconds)
            if let range = result.out.range(of: #"served the API \d+ ms"#, options: .regularExpression) { reported.append(String(result.out[range].split(separator: " ")[3])) }
            let now = try Self.serving(proxy)
            #expect(now.state == "serving")
            #expect(!pids.contains(now.pid), "upgrade \(round) left pid \(now.pid) serving")
            pids.append(now.pid)
            for (i, connection) in idle.enumerated() {
                let response = try connection.get("/idle/\(round)/\(i)")
                #expect(response.status == 200)
                #expect(Self.pid(of: response) == now.pid, "idle connection \(i) after upgrade \(round) served by \(Self.pid(of: response))")
            }
            try tunnel.send("banana \(round)")
            #expect(try tunnel.socket.receive(exactly: 8) == Array("bAnAnA \(round)".utf8))
            let before = served.withLock { $0 }
            try waitUntil("load to go on after upgrade \(round)") { served.withLock { $0 } > before + 20 }
        }
        // The busy load clients moved too, each on a request after its connection went idle.
        try waitUntil("every load client to be served by the last process") {
            lastPids.withLock { $0.count == 4 && $0.values.allSatisfy { $0 == pids.last! } }
        }
        stop.withLock { $0 = true }
        try waitUntil("clients to finish", timeout: 120) { finished.withLock { $0 } == 7 }
        #expect(failures.withLock { $0 } == [])
        #expect(downloadOK.withLock { $0 })
        #expect(downloadPid.withLock { $0 } == firstPid)
        #expect(connects.withLock { $0 } > 20)
        try tunnel.send("last")
        #expect(try tunnel.socket.receive(exactly: 4) == Array("lAst".utf8))
        tunnel.close()
        // The first process finished the download and the tunnel, then exited 0.
        try waitUntil("the first process to exit", timeout: 60) { !proxy.process.isRunning }
        #expect(proxy.process.terminationStatus == 0)
        #expect(try proxy.api("GET", "/configuration/cluster").1 == stateBefore)
        let metrics = try proxy.metricsText()
        #expect(ProxyProcess.value(of: "switchyard_upgrade_handover_total{what=\"listener\"}", in: metrics) == 2)
        #expect((ProxyProcess.value(of: "switchyard_upgrade_handover_total{what=\"connection\"}", in: metrics) ?? 0) >= 8)
        print("self-upgrade: pids \(pids); switchyard upgrade took \(times.map { String(format: "%.0f ms", $0 * 1000) }), new process serving after \(reported) ms; requests \(served.withLock { $0 }), connects \(connects.withLock { $0 })")
        Self.terminate(pids.last!)
        _ = threads
    }

    @Test("failed upgrades change nothing: a binary that exits at once, a configuration the new process refuses")
    func failedUpgradesChangeNothing() throws {
        let backend = try Self.backend()
        defer { backend.stop() }
        let proxy = try Self.start(backend: backend, stateDir: makeStateDirPath())
        defer { proxy.stop() }
        let pid = try Self.serving(proxy).pid
        let client = try ClientConnection(port: proxy.port)
        defer { client.close() }
        #expect(Self.pid(of: try client.get("/a")) == pid)
        let stateBefore = try proxy.api("GET", "/configuration/cluster").1

        // A binary that exits at once.
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("exit-at-once-\(UUID().uuidString).sh").path
        try "#!/bin/sh\nexit 3\n".write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        defer { unlink(script) }
        let exited = try Self.upgrade(proxy, ["--binary", script])
        #expect(exited.status == 1)
        #expect(exited.err.contains("exited with status 3 before it was ready"), "\(exited.err)")

        // A configuration the new process refuses (the file is read anew by it).
        let good = try String(contentsOfFile: proxy.configPath, encoding: .utf8)
        try "{\"proxy\": {\"port\": \"eighty\"}}".write(toFile: proxy.configPath, atomically: true, encoding: .utf8)
        let refused = try Self.upgrade(proxy)
        try good.write(toFile: proxy.configPath, atomically: true, encoding: .utf8)
        #expect(refused.status == 1)
        #expect(refused.err.contains("the new process refused"), "\(refused.err)")

        // Not an executable at all: refused before anything starts.
        let missing = try Self.upgrade(proxy, ["--binary", "/nonexistent/switchyard"])
        #expect(missing.status == 1)
        #expect(missing.err.contains("not an executable file"))

        // Same process, same connection, same state; the API takes changes again.
        let after = try Self.serving(proxy)
        #expect(after.pid == pid && after.state == "serving")
        #expect(Self.pid(of: try client.get("/b")) == pid)
        #expect(try proxy.api("GET", "/configuration/cluster").1 == stateBefore)
        _ = try proxy.putCluster(ProxyProcess.cluster(ports: [backend.port], version: "2.0"))
        #expect(proxy.log.components(separatedBy: "event=upgrade_failed").count - 1 == 2)
        // And a real upgrade still works afterwards, asked for with SIGUSR2 this time.
        kill(Int32(pid), SIGUSR2)
        var next = pid
        try waitUntil("the new process to serve") {
            let now = try Self.serving(proxy)
            next = now.pid
            return now.pid != pid && now.state == "serving"
        }
        #expect(Self.pid(of: try client.get("/c")) == next)
        Self.terminate(next)
    }

    @Test("GRADUAL progress survives an upgrade without a state directory")
    func gradualProgressInMemory() throws {
        let backend = try Self.backend()
        defer { backend.stop() }
        let proxy = try Self.start(backend: backend, stateDir: nil)
        defer { proxy.stop() }
        let v2 = try proxy.putCluster(ProxyProcess.cluster(ports: [backend.port], version: "2.0",
                                                           mode: ["mode": "GRADUAL", "percentageTransitionPerRequest": 10]))
        let client = try ClientConnection(port: proxy.port)
        defer { client.close() }
        for i in 0..<3 { #expect(try client.get("/g/\(i)").status == 200) }
        let before = try proxy.statusClusters()[v2]?["gradualThreshold"] as? Double
        #expect(before == 30)
        let pid = try Self.serving(proxy).pid
        #expect(try Self.upgrade(proxy).status == 0)
        let after = try Self.serving(proxy).pid
        #expect(after != pid)
        #expect(try proxy.statusClusters()[v2]?["gradualThreshold"] as? Double == 30)
        #expect(try proxy.api("GET", "/configuration/cluster/\(v2)").0 == 200)
        Self.terminate(after)
    }

    @Test("after upgrade.drainSeconds the old process closes what is still busy and exits 0")
    func drainTimeBoundsTheOldProcess() throws {
        let backend = try Self.backend()
        defer { backend.stop() }
        let proxy = try Self.start(backend: backend, stateDir: makeStateDirPath(), drainSeconds: 1)
        defer { proxy.stop() }
        let tunnel = try ClientConnection(port: proxy.port)
        defer { tunnel.close() }
        try tunnel.send("GET /tunnel HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        #expect(try tunnel.readResponse().status == 101)
        let started = Date()
        #expect(try Self.upgrade(proxy).status == 0)
        let next = try Self.serving(proxy).pid
        try waitUntil("the old process to give up on the tunnel and exit", timeout: 20) { !proxy.process.isRunning }
        #expect(proxy.process.terminationStatus == 0)
        #expect(Date().timeIntervalSince(started) >= 1)
        #expect(try tunnel.socket.receiveSome().isEmpty)
        try waitUntil("the new process to count it") {
            try proxy.metric("switchyard_upgrade_handover_total{what=\"closed_at_deadline\"}") == 1
        }
        Self.terminate(next)
    }

    @Test("two upgrades at once: the second is refused with 409")
    func concurrentUpgradeRefused() throws {
        let backend = try Self.backend()
        defer { backend.stop() }
        let proxy = try Self.start(backend: backend, stateDir: makeStateDirPath())
        defer { proxy.stop() }
        // A binary that waits until the test lets it fail: the first attempt is still starting
        // when the second comes and when the PUT is tried.
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("slow-\(UUID().uuidString).sh").path
        let release = script + ".go"
        try "#!/bin/sh\nwhile [ ! -e \(release) ]; do sleep 0.05; done\nexit 1\n".write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        defer { unlink(script); unlink(release) }
        let first = try proxy.api("POST", "/upgrade", body: "{\"binary\": \"\(script)\"}")
        #expect(first.0 == 202)
        let second = try proxy.api("POST", "/upgrade")
        #expect(second.0 == 409)
        #expect(second.1.contains("already in progress"))
        // State changes wait while an attempt runs.
        let put = try proxy.api("PUT", "/configuration/cluster", body: "{\"cluster\": {\"servers\": [{\"hostname\": \"127.0.0.1\", \"port\": \(backend.port)}], \"version\": \"3\"}}")
        #expect(put.0 == 503)
        FileManager.default.createFile(atPath: release, contents: nil)
        try waitUntil("the attempt to fail") { proxy.log.contains("event=upgrade_failed") }
        #expect(try proxy.api("POST", "/upgrade", body: "{\"colour\": 1}").0 == 400)
    }
}
