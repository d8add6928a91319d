import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The access log (one line per exchange, written off the reactors) and X-Request-Id.
@Suite("Access log and request ids", .serialized)
struct AccessLogTests {
    static func tempPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-\(UUID().uuidString)-\(name)").path
    }

    /// The lines of `path` once it holds at least `count` (the writer flushes in batches).
    func lines(_ path: String, atLeast count: Int) throws -> [String] {
        var found: [String] = []
        try waitUntil("\(count) access log lines in \(path)") {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            found = text.split(separator: "\n").map(String.init)
            return found.count >= count
        }
        return found
    }

    /// The logfmt fields of one line (values unquoted).
    func fields(_ line: String) -> [String: String] {
        var out: [String: String] = [:]
        var rest = Substring(line)
        while let eq = rest.firstIndex(of: "=") {
            let key = rest[..<eq].trimmingCharacters(in: .whitespaces)
            rest = rest[rest.index(after: eq)...]
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                while let c = rest.first, c != "\"" {
                    if c == "\\" { rest = rest.dropFirst() }
                    value.append(rest.first!)
                    rest = rest.dropFirst()
                }
                rest = rest.dropFirst()
            } else {
                let end = rest.firstIndex(of: " ") ?? rest.endIndex
                value = String(rest[..<end])
                rest = rest[end...]
            }
            out[key] = value
        }
        return out
    }

    @Test("logfmt: one line per exchange with its version, backend and request id; ids kept, made and forwarded")
    func logfmtLines() throws {
        let backend = try TestBackend { request, socket in
            try TestBackend.respond(socket, body: "id=\(request.header("X-Request-Id") ?? "-")")
            return true
        }
        let path = Self.tempPath("access.log")
        let proxy = try ProxyProcess.start(ports: [backend.port], extra: ["accessLog": ["path": path]])
        defer { proxy.stop(); backend.stop() }
        let client = try ClientConnection(port: proxy.port)
        let kept = try client.get("/kept?q=1", headers: ["X-Request-Id": "abc-123"])
        #expect(kept.bodyText == "id=abc-123")
        let made = try client.get("/made")
        let madeID = String(made.bodyText.dropFirst(3))
        #expect(madeID.count == 32 && madeID.allSatisfy(\.isHexDigit), "made id \(madeID)")
        let replaced = try client.get("/replaced", headers: ["X-Request-Id": "has space"])
        #expect(replaced.bodyText.count == 35 && !replaced.bodyText.contains("space"), "an invalid id is replaced: \(replaced.bodyText)")
        let refused = try ClientConnection(port: proxy.port, timeout: 5)
        try refused.send("GET /bad HTTP/1.1\r\nHost: t\r\nX_Bad: 1\r\n\r\n")
        #expect(readOutcome(refused.socket).status == 400)

        let all = try lines(path, atLeast: 4).map(fields)
        let byTarget = Dictionary(all.map { ($0["target"] ?? "?", $0) }, uniquingKeysWith: { a, _ in a })
        let first = try #require(byTarget["/kept?q=1"], "\(all)")
        #expect(first["method"] == "GET" && first["status"] == "200" && first["request_id"] == "abc-123")
        #expect(first["cluster"] == "v1" && first["version"] == "1.0" && first["mode"] == "INSTANT")
        #expect(first["backend"] == "127.0.0.1:\(backend.port)" && first["client"] == "127.0.0.1")
        #expect(Int(first["bytes_out"] ?? "") ?? 0 > 14 && Int(first["bytes_in"] ?? "") ?? 0 > 20)
        #expect(first["duration_us"].flatMap { Int($0) } != nil)
        #expect(first["time"]?.hasSuffix("Z") == true && first["time"]?.count == 24, "\(first["time"] ?? "")")
        #expect(byTarget["/made"]?["request_id"] == madeID)
        let bad = try #require(all.first { $0["status"] == "400" }, "the refused request is logged: \(all)")
        #expect(bad["cluster"] == "" && bad["method"] == "")   // refused before its head was accepted
        let metrics = try proxy.metricsText()
        #expect((ProxyProcess.value(of: "switchyard_access_log_lines_total", in: metrics) ?? 0) >= 4)
        #expect(ProxyProcess.value(of: "switchyard_access_log_dropped_lines_total", in: metrics) == 0)
    }

    @Test("json lines parse as JSON; SIGUSR1 reopens the file after logrotate moved it")
    func jsonAndReopen() throws {
        let backend = try TestBackend.named("b1")
        let path = Self.tempPath("access.json")
        let proxy = try ProxyProcess.start(ports: [backend.port], extra: ["accessLog": ["path": path, "format": "json"]])
        defer { proxy.stop(); backend.stop() }
        _ = try ClientConnection(port: proxy.port).get("/a\"quote\\back")
        let line = try #require(try lines(path, atLeast: 1).first)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["target"] as? String == "/a\"quote\\back")
        #expect(object["status"] as? Int == 200 && object["version"] as? String == "1.0")

        let rotated = path + ".1"
        try FileManager.default.moveItem(atPath: path, toPath: rotated)
        kill(proxy.pid, SIGUSR1)
        try waitUntil("the reopen") { proxy.log.contains("event=access_log_reopened") }
        _ = try ClientConnection(port: proxy.port).get("/after-rotation")
        let fresh = try lines(path, atLeast: 1)
        #expect(fresh.count == 1 && fresh[0].contains("/after-rotation"))
        #expect(try lines(rotated, atLeast: 1).count == 1)
    }

    @Test("sample: about the given fraction of exchanges is logged")
    func sampling() throws {
        let backend = try TestBackend.named("b1")
        let path = Self.tempPath("sampled.log")
        let proxy = try ProxyProcess.start(ports: [backend.port], extra: ["accessLog": ["path": path, "sample": 0.5]])
        defer { proxy.stop(); backend.stop() }
        let client = try ClientConnection(port: proxy.port)
        for i in 0..<200 { _ = try client.get("/\(i)") }
        client.close()
        // A graceful stop writes every line collected: then the file is complete.
        #expect(proxy.stop() == 0)
        let n = try lines(path, atLeast: 0).count
        #expect(n >= 50 && n <= 150, "\(n) of 200 logged with sample 0.5")
    }

    @Test("CONCURRENT: the line says which version served and whether the answers diverged; /comparisons has the id")
    func concurrentLines() throws {
        let old = try TestBackend.named("old")
        let new = try TestBackend.named("new")
        let path = Self.tempPath("concurrent.log")
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [
            ProxyProcess.cluster(ports: [old.port], version: "1.0", uuid: "old"),
            ProxyProcess.cluster(ports: [new.port], version: "2.0", uuid: "new", mode: ["mode": "CONCURRENT"]),
        ], extra: ["accessLog": ["path": path]]))
        defer { proxy.stop(); old.stop(); new.stop() }
        let r = try ClientConnection(port: proxy.port).get("/both", headers: ["X-Request-Id": "cmp-1"])
        #expect(r.bodyText == "new\n")
        let line = fields(try #require(try lines(path, atLeast: 1).first))
        #expect(line["served"] == "new" && line["diverged"] == "true" && line["mode"] == "CONCURRENT" && line["request_id"] == "cmp-1")
        #expect(old.requests.first?.header("X-Request-Id") == "cmp-1" && new.requests.first?.header("X-Request-Id") == "cmp-1")
        let (_, body) = try proxy.api("GET", "/comparisons")
        #expect(body.contains("\"requestId\":\"cmp-1\""), "\(body)")
    }

    @Test("an access log path that cannot be opened stops the start with one line")
    func unopenablePath() throws {
        let config = Self.tempPath("config.json")
        defer { try? FileManager.default.removeItem(atPath: config) }
        try #"{"proxy":{"port":0},"configService":{"port":0},"cluster":{"servers":[{"hostname":"127.0.0.1","port":1}]},"accessLog":{"path":"/nonexistent-dir/x.log"}}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        let (status, text) = try runSwitchyard(["--config", config])
        #expect(status == 2)
        #expect(text.contains("accessLog.path: cannot open /nonexistent-dir/x.log") && text.split(separator: "\n").count == 1, "\(text)")
    }
}
