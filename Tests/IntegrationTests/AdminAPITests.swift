import Foundation
import Testing

/// The REST API's status codes, bodies and validation, against the running binary.
@Suite("REST API", .serialized)
struct AdminAPITests {
    @Test("PUT → 202 + uuid; GET list (with and without trailing slash), GET one, DELETE, 404s and 405s")
    func statusCodes() throws {
        let backend = try TestBackend.named("b")
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [backend.port], version: "1.0", uuid: "first")]))
        defer { proxy.stop(); backend.stop() }
        let body = #"{"cluster":{"servers":[{"hostname":"127.0.0.1","port":\#(backend.port)}],"version":"1.1","upgradeTransition":{"mode":"SESSION","sessionTimeout":60}}}"#
        let (put, uuid) = try proxy.api("PUT", "/configuration/cluster", body: body)
        #expect(put == 202)
        #expect(uuid.count == 36)
        for path in ["/configuration/cluster", "/configuration/cluster/"] {
            let (status, list) = try proxy.api("GET", path)
            #expect(status == 200)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(list.utf8)) as? [[String: Any]])
            #expect(json.count == 2)
            let latest = try #require(json.first?["cluster"] as? [String: Any])
            #expect(latest["uuid"] as? String == uuid)
            #expect(latest["state"] as? String == "active")
            #expect((latest["upgradeTransition"] as? [String: Any])?["sessionTimeout"] as? Int == 60)
        }
        #expect(try proxy.api("GET", "/configuration/cluster/\(uuid)").0 == 200)
        #expect(try proxy.api("GET", "/configuration/cluster/nope").0 == 404)
        #expect(try proxy.api("DELETE", "/configuration/cluster/nope").0 == 404)
        #expect(try proxy.api("DELETE", "/configuration/cluster/\(uuid)").0 == 202)
        #expect(try proxy.api("GET", "/configuration/cluster/\(uuid)").0 == 404)
        #expect(try proxy.api("GET", "/nowhere").0 == 404)
        #expect(try proxy.api("PATCH", "/configuration/cluster").0 == 405)
        #expect(try proxy.api("POST", "/metrics").0 == 405)
    }

    @Test("bad bodies → 400 naming the field, and nothing changes")
    func validation() throws {
        let backend = try TestBackend.named("b")
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [backend.port], version: "1.0", uuid: "first")]))
        defer { proxy.stop(); backend.stop() }
        let p = backend.port
        let cases: [(String, String)] = [
            ("{not json", "json"),
            (#"{"servers":[]}"#, "cluster"),
            (#"{"cluster":{"servers":[],"version":"2"}}"#, "servers"),
            (#"{"cluster":{"servers":[{"hostname":"127.0.0.1","port":70000}]}}"#, "port"),
            (#"{"cluster":{"servers":[{"hostname":"127.0.0.1","port":0}]}}"#, "port"),
            (#"{"cluster":{"servers":[{"hostname":"127.0.0.1","port":\#(p)}],"upgradeTransition":{"mode":"SIDEWAYS"}}}"#, "mode"),
            (#"{"cluster":{"servers":[{"hostname":"127.0.0.1","port":\#(p)}],"upgradeTransition":{"mode":"SESSION"}}}"#, "sessionTimeout"),
            (#"{"cluster":{"servers":[{"hostname":"127.0.0.1","port":\#(p)}],"upgradeTransition":{"mode":"GRADUAL"}}}"#, "percentageTransitionPerRequest"),
            (#"{"cluster":{"servers":[{"hostname":"127.0.0.1","port":\#(p)}],"upgradeTransition":{"mode":"INSTANT","sessionTimeout":5}}}"#, "sessionTimeout"),
            (#"{"cluster":{"servers":[{"hostname":"no-such-host.invalid","port":\#(p)}]}}"#, "hostname"),
        ]
        for (body, field) in cases {
            let (status, message) = try proxy.api("PUT", "/configuration/cluster", body: body)
            #expect(status == 400, "\(body)")
            #expect(message.contains(field), "\(message) should name \(field)")
            #expect(message.trimmingCharacters(in: .newlines).split(separator: "\n").count == 1)
        }
        let list = try proxy.api("GET", "/configuration/cluster").1
        let json = try JSONSerialization.jsonObject(with: Data(list.utf8)) as? [Any]
        #expect(json?.count == 1)
    }

    @Test("upgradeTransition without mode means SESSION (the 2014 rule); none means INSTANT")
    func defaultsOf2014() throws {
        let backend = try TestBackend.named("b")
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [backend.port], version: "1.0", uuid: "first")]))
        defer { proxy.stop(); backend.stop() }
        let a = try proxy.putCluster(["servers": [["hostname": "127.0.0.1", "port": backend.port]], "version": "1.1", "upgradeTransition": ["sessionTimeout": 30]])
        #expect(try proxy.api("GET", "/configuration/cluster/\(a)").1.contains("\"mode\":\"SESSION\""))
        let b = try proxy.putCluster(["servers": [["hostname": "127.0.0.1", "port": backend.port]], "version": "1.2"])
        #expect(try proxy.api("GET", "/configuration/cluster/\(b)").1.contains("\"mode\":\"INSTANT\""))
    }

    @Test("/metrics is Prometheus text; /status is a JSON summary")
    func metricsAndStatus() throws {
        let backend = try TestBackend.named("b")
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [backend.port], version: "1.0", uuid: "v1")]))
        defer { proxy.stop(); backend.stop() }
        let client = try ClientConnection(port: proxy.port)
        for _ in 0..<3 { _ = try client.get("/") }
        try client.send("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n")
        _ = try client.readResponse()
        let metrics = try proxy.api("GET", "/metrics").1
        #expect(metrics.contains("# TYPE switchyard_requests_total counter"))
        #expect(metrics.contains("switchyard_requests_total{service=\"default\",cluster=\"v1\",version=\"1.0\"} 3"))
        #expect(metrics.contains("switchyard_responses_total{service=\"default\",cluster=\"v1\",version=\"1.0\",class=\"2xx\"} 3"))
        #expect(metrics.contains("switchyard_request_duration_seconds_count{service=\"default\",cluster=\"v1\",version=\"1.0\"} 3"))
        #expect(metrics.contains("switchyard_rejected_requests_total{status=\"400\"} 1"))
        let status = try #require(try JSONSerialization.jsonObject(with: Data(try proxy.api("GET", "/status").1.utf8)) as? [String: Any])
        #expect(status["generation"] as? Int == 1)
        #expect(status["latest"] as? String == "v1")
        #expect((status["clusters"] as? [Any])?.count == 1)
    }

    @Test("configService.token: every API call needs the bearer token")
    func token() throws {
        let backend = try TestBackend.named("b")
        let proxy = try ProxyProcess(config: ProxyProcess.config(
            clusters: [ProxyProcess.cluster(ports: [backend.port], version: "1.0")],
            extra: ["configService": ["hostname": "127.0.0.1", "port": 0, "token": "s3cret"]]))
        defer { proxy.stop(); backend.stop() }
        #expect(try proxy.api("GET", "/configuration/cluster").0 == 401)
        #expect(try proxy.api("GET", "/configuration/cluster", headers: ["Authorization": "Bearer wrong"]).0 == 401)
        #expect(try proxy.api("GET", "/configuration/cluster", headers: ["Authorization": "Bearer s3cret"]).0 == 200)
    }

    @Test("an API body over the limit gets 413")
    func bodyLimit() throws {
        let backend = try TestBackend.named("b")
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [backend.port], version: "1.0")]))
        defer { proxy.stop(); backend.stop() }
        let conn = try ClientConnection(port: proxy.adminPort)
        try conn.send("PUT /configuration/cluster HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n")
        #expect(try conn.readResponse().status == 413)
    }
}

/// The command line and the configuration file.
@Suite("Command line", .serialized)
struct CommandLineTests {
    @Test("a bad file or flag: one line on stderr naming the problem, exit code 2")
    func badInput() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-cli-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try #"{"proxy":{"port":1235},"cluster":{"servers":[{"hostname":"127.0.0.1","port":99999}]}}"#.write(toFile: "\(dir)/bad.json", atomically: true, encoding: .utf8)
        try #"{"proxy":{"port":1235},"clustr":{}}"#.write(toFile: "\(dir)/typo.json", atomically: true, encoding: .utf8)
        let cases: [([String], String)] = [
            (["--config", "\(dir)/bad.json"], "port"),
            (["--config", "\(dir)/typo.json"], "clust"),
            (["--config", "\(dir)/missing.json"], "missing.json"),
            (["--bogus"], "--bogus"),
            (["--workers", "zero", "--config", "x"], "--workers"),
            (["-logLevel=LOUD", "-configFile=x"], "LOUD"),
            ([], "--config"),
        ]
        for (arguments, needle) in cases {
            let (status, text) = try runSwitchyard(arguments)
            #expect(status == 2, "\(arguments)")
            #expect(text.contains(needle), "\(arguments): \(text)")
            #expect(text.split(separator: "\n").count == 1, "\(text)")
        }
    }

    @Test("the 2014 spellings -configFile= and -logLevel= work; --help prints usage")
    func legacySpellings() throws {
        let backend = try TestBackend.named("b")
        defer { backend.stop() }
        let config = ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [backend.port], version: "1.0")])
        let proxy = try ProxyProcess(config: config, arguments: ["-logLevel=notice", "--workers=1"])
        defer { proxy.stop() }
        #expect(try ClientConnection(port: proxy.port).get("/").status == 200)
        let legacy = Process()
        legacy.executableURL = URL(fileURLWithPath: switchyardBinary())
        legacy.arguments = ["-configFile=\(proxy.configPath)", "-logLevel=DEBUG", "--help"]
        let out = Pipe()
        legacy.standardOutput = out
        try legacy.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        legacy.waitUntilExit()
        #expect(legacy.terminationStatus == 0)
        #expect(text.contains("Usage:"))
    }
}
