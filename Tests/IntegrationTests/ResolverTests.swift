import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Backend names re-resolved at run time, moved between addresses through the proxy's
/// hosts file (`"resolver": {"hostsFile": …, "resolveSeconds": …}`).
@Suite("Resolver", .serialized)
struct ResolverTests {
    /// Two backends on one port at two loopback addresses: a name moved between them keeps
    /// the server's port. `/slow` waits for `gate` (an exchange in flight).
    final class Pair: @unchecked Sendable {
        let gate = DispatchSemaphore(value: 0)
        private(set) var first: TestBackend!
        private(set) var second: TestBackend!
        var port: Int { first.port }

        init() throws {
            // The port is free on 127.0.0.1; try a few in case 127.0.0.2 has it taken.
            for _ in 0..<5 {
                let a = try Self.backend("one", host: "127.0.0.1", port: 0, gate: gate)
                if let b = try? Self.backend("two", host: "127.0.0.2", port: a.port, gate: gate) {
                    first = a
                    second = b
                    return
                }
                a.stop()
            }
            throw HarnessError("no port free on both 127.0.0.1 and 127.0.0.2")
        }

        static func backend(_ name: String, host: String, port: Int, gate: DispatchSemaphore) throws -> TestBackend {
            try TestBackend(host: host, port: port) { request, socket in
                if request.target == "/slow" { _ = gate.wait(timeout: .now() + 20) }
                try TestBackend.respond(socket, headers: ["X-Backend: \(name)"], body: "\(name)\n")
                return true
            }
        }

        func stop() {
            gate.signal()
            first.stop()
            second.stop()
        }
    }

    /// A hosts file in a fresh directory, rewritten whole (rename) so a reader never sees half.
    final class Hosts {
        let path: String
        init(_ text: String) throws {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-hosts-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            path = dir.appendingPathComponent("hosts").path
            try write(text)
        }
        func write(_ text: String) throws {
            let temp = path + ".new"
            try Data(text.utf8).write(to: URL(fileURLWithPath: temp))
            _ = rename(temp, path)
        }
    }

    static func start(cluster: [String: Any], hosts: Hosts) throws -> ProxyProcess {
        try ProxyProcess(config: ProxyProcess.config(clusters: [cluster], extra: [
            "resolver": ["resolveSeconds": 0.2, "hostsFile": hosts.path],
        ]))
    }

    static func backendName(_ proxy: ProxyProcess, path: String = "/") -> String? {
        guard let c = try? ClientConnection(port: proxy.port), let r = try? c.get(path) else { return nil }
        c.close()
        return r.status == 200 ? r.header("X-Backend") : "status \(r.status)"
    }

    @Test("a name moved to another address takes new traffic there; an exchange in flight to the old one finishes")
    func moveName() throws {
        let pair = try Pair()
        defer { pair.stop() }
        let hosts = try Hosts("127.0.0.1 api.test\n")
        let proxy = try Self.start(cluster: ["servers": [["hostname": "api.test", "port": pair.port]], "version": "1.0"], hosts: hosts)
        defer { proxy.stop() }
        #expect(Self.backendName(proxy) == "one")

        // An exchange in flight on a keep-alive connection to the old address.
        let client = try ClientConnection(port: proxy.port)
        defer { client.close() }
        #expect(try client.get("/").header("X-Backend") == "one")
        try client.send("GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
        try waitUntil("the slow exchange to reach the old backend") { pair.first.requests.contains { $0.target == "/slow" } }

        try hosts.write("127.0.0.2 api.test\n")
        try waitUntil("new traffic to reach the new address") { Self.backendName(proxy) == "two" }
        #expect(proxy.log.contains("event=backends_resolved"))

        pair.gate.signal()
        let slow = try client.readResponse()
        #expect(slow.status == 200)
        #expect(slow.header("X-Backend") == "one")
        // The client's connection is not cut: its next exchange goes to the new address.
        #expect(try client.get("/").header("X-Backend") == "two")
        for _ in 0..<5 { #expect(Self.backendName(proxy) == "two") }
    }

    @Test("two addresses for one name are both backends of the cluster")
    func twoAddresses() throws {
        let pair = try Pair()
        defer { pair.stop() }
        let hosts = try Hosts("# both\n127.0.0.1 both.test\n127.0.0.2 both.test other.test\n")
        let proxy = try Self.start(cluster: ["servers": [["hostname": "both.test", "port": pair.port]], "version": "1.0"], hosts: hosts)
        defer { proxy.stop() }
        var seen: [String: Int] = [:]
        for _ in 0..<10 { seen[Self.backendName(proxy) ?? "none", default: 0] += 1 }
        #expect(seen["one", default: 0] > 0)
        #expect(seen["two", default: 0] > 0)
        #expect(seen["one", default: 0] + seen["two", default: 0] == 10)
        // The API still lists the one configured server.
        let (code, text) = try proxy.api("GET", "/status")
        #expect(code == 200)
        #expect(text.contains("both.test"))
        #expect(text.contains("127.0.0.1:\(pair.port)") && text.contains("127.0.0.2:\(pair.port)"))
    }

    @Test("draining a server that stands for two addresses takes both out; enabling brings both back")
    func drainCoversEveryAddress() throws {
        let pair = try Pair()
        defer { pair.stop() }
        let third = try TestBackend.named("three")
        defer { third.stop() }
        let hosts = try Hosts("127.0.0.1 both.test\n127.0.0.2 both.test\n")
        let uuid = "0c6c27c0-4c61-4b8a-9a3e-2b9a1f1a7002"
        let proxy = try Self.start(cluster: ["servers": [["hostname": "both.test", "port": pair.port], ["hostname": "127.0.0.1", "port": third.port]],
                                             "version": "1.0", "uuid": uuid], hosts: hosts)
        defer { proxy.stop() }
        func names(_ n: Int) -> Set<String> { Set((0..<n).compactMap { _ in Self.backendName(proxy) }) }
        #expect(names(12) == ["one", "two", "three"])
        let server = "/configuration/cluster/\(uuid)/servers/both.test:\(pair.port)"
        #expect(try proxy.api("POST", server + "/drain").0 == 202)
        #expect(names(8) == ["three"])
        #expect(try proxy.api("POST", server + "/enable").0 == 202)
        #expect(names(12) == ["one", "two", "three"])
    }

    @Test("a lazy name that does not resolve holds its cluster pending until it does")
    func lazyName() throws {
        let pair = try Pair()
        defer { pair.stop() }
        let hosts = try Hosts("")
        let uuid = "0c6c27c0-4c61-4b8a-9a3e-2b9a1f1a7001"
        let cluster: [String: Any] = ["servers": [["hostname": "later.test", "port": pair.port, "resolve": "lazy"]],
                                      "version": "1.0", "uuid": uuid]
        let proxy = try Self.start(cluster: cluster, hosts: hosts)
        defer { proxy.stop() }
        #expect(try Fleet.clusters(proxy)[uuid]?["state"] as? String == "pending")
        let name = Self.backendName(proxy)
        #expect(name != nil && name != "one" && name != "two")
        // The setting round-trips through the API.
        let (code, text) = try proxy.api("GET", "/configuration/cluster/\(uuid)")
        #expect(code == 200)
        #expect(text.contains("\"resolve\":\"lazy\"") || text.contains("\"resolve\" : \"lazy\""))

        try hosts.write("127.0.0.2 later.test\n")
        try waitUntil("the lazy name to resolve") { Self.backendName(proxy) == "two" }
        #expect(try Fleet.clusters(proxy)[uuid]?["state"] as? String == "active")

        // A name that does not resolve and is not lazy is still refused by PUT.
        let bad = ["cluster": ["servers": [["hostname": "never.test", "port": pair.port]], "version": "2.0"]]
        let body = String(decoding: try JSONSerialization.data(withJSONObject: bad), as: UTF8.self)
        let (status, answer) = try proxy.api("PUT", "/configuration/cluster", body: body)
        #expect(status == 400)
        #expect(answer.contains("cannot resolve"))
    }
}
