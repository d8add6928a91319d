import Foundation
import Testing

/// Many services behind one proxy: host and path routing, cookies per service, the services
/// API, change sets applied as one snapshot, and release groups, against the running binary.
@Suite("Services, change sets and release groups", .serialized)
struct ServicesTests {
    /// A request with its own Host (and cookies, fetch metadata) on a kept-alive connection.
    func get(_ client: ClientConnection, host: String, _ path: String, headers: [String: String] = [:]) throws -> TestResponse {
        var request = "GET \(path) HTTP/1.1\r\nHost: \(host)\r\n"
        for (k, v) in headers { request += "\(k): \(v)\r\n" }
        try client.send(request + "\r\n")
        return try client.readResponse()
    }

    func json(_ text: String) -> Any? { try? JSONSerialization.jsonObject(with: Data(text.utf8)) }

    func body(_ object: Any) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    func service(_ name: String, hosts: [String], prefix: String = "/", clusters: [[String: Any]], extra: [String: Any] = [:]) -> [String: Any] {
        var s: [String: Any] = ["name": name, "hosts": hosts, "pathPrefix": prefix, "clusters": clusters]
        for (k, v) in extra { s[k] = v }
        return s
    }

    @Test("host and path routing: exact host, wildcard, longest prefix on a segment boundary, default, absolute form")
    func routing() throws {
        let fallback = try TestBackend.named("default")
        let shop = try TestBackend.named("shop")
        let statics = try TestBackend.named("static")
        let api = try TestBackend.named("api")
        defer { fallback.stop(); shop.stop(); statics.stop(); api.stop() }
        let config = ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [fallback.port], version: "1.0", uuid: "d1")], extra: [
            "services": [
                service("shop", hosts: ["shop.example.com", "*.shop.example.com"], clusters: [ProxyProcess.cluster(ports: [shop.port], version: "1.0", uuid: "s1")]),
                service("static", hosts: ["shop.example.com"], prefix: "/static/", clusters: [ProxyProcess.cluster(ports: [statics.port], version: "1.0", uuid: "st1")]),
                service("api", hosts: ["api.example.com"], clusters: [ProxyProcess.cluster(ports: [api.port], version: "1.0", uuid: "a1")]),
            ],
        ])
        let proxy = try ProxyProcess(config: config)
        defer { proxy.stop() }
        let client = try ClientConnection(port: proxy.port)
        let cases: [(host: String, path: String, expected: String)] = [
            ("shop.example.com", "/", "shop"), ("SHOP.example.com:8080", "/cart", "shop"), ("shop.example.com", "/static/app.css", "static"),
            ("shop.example.com", "/static", "static"), ("shop.example.com", "/statics", "shop"), ("www.shop.example.com", "/static/x", "shop"),
            ("api.example.com", "/v1", "api"), ("other.example.com", "/", "default"), ("127.0.0.1", "/", "default"),
        ]
        for c in cases {
            let r = try get(client, host: c.host, c.path)
            #expect(r.status == 200 && r.bodyText == c.expected + "\n", "\(c.host)\(c.path) → \(r.bodyText)")
        }
        // The absolute form's authority decides, not Host (RFC 9112 §3.2.2).
        try client.send("GET http://shop.example.com/static/a HTTP/1.1\r\nHost: shop.example.com\r\n\r\n")
        #expect(try client.readResponse().bodyText == "static\n")
        // Each service has its own cookie: the default keeps the 2014 name.
        #expect(try get(client, host: "api.example.com", "/").header("Set-Cookie")?.hasPrefix("dynsoftup_api=a1; Path=/;") == true)
        #expect(try get(client, host: "x", "/").header("Set-Cookie")?.hasPrefix("dynsoftup=d1; Path=/;") == true)
        // The access log and metrics name the service.
        let metrics = try proxy.api("GET", "/metrics").1
        #expect(metrics.contains(#"switchyard_requests_total{service="static",cluster="st1",version="1.0"} 3"#))
        let status = json(try proxy.api("GET", "/status").1) as? [String: Any]
        let names = (status?["services"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
        #expect(names == ["shop", "static", "api", "default"])
    }

    @Test("without a default service an unmatched host gets 404 naming no internals; a service's own cookie names and path")
    func noDefault() throws {
        let shop = try TestBackend.named("shop")
        defer { shop.stop() }
        let config: [String: Any] = [
            "proxy": ["hostname": "127.0.0.1", "port": 0], "configService": ["hostname": "127.0.0.1", "port": 0],
            "services": [service("shop", hosts: ["shop.test"], prefix: "/shop",
                                 clusters: [ProxyProcess.cluster(ports: [shop.port], version: "1.0", uuid: "s1")],
                                 extra: ["cookies": ["session": "shopv", "path": "/shop"]])],
        ]
        let proxy = try ProxyProcess(config: config)
        defer { proxy.stop() }
        let client = try ClientConnection(port: proxy.port)
        let ok = try get(client, host: "shop.test", "/shop/cart")
        #expect(ok.bodyText == "shop\n")
        #expect(ok.header("Set-Cookie")?.hasPrefix("shopv=s1; Path=/shop; HttpOnly") == true)
        let missing = try get(client, host: "shop.test", "/other")
        #expect(missing.status == 404)
        #expect(!missing.bodyText.contains("shop") && !missing.bodyText.contains("127.0.0.1"))
        let other = try ClientConnection(port: proxy.port)
        #expect(try get(other, host: "elsewhere.test", "/shop").status == 404)
        #expect(try proxy.metric(#"switchyard_rejected_requests_total{status="404"}"#) == 2)
    }

    @Test("the services API: create, validate, clusters per service, the default service's API unchanged, delete")
    func api() throws {
        let fallback = try TestBackend.named("default")
        let a1 = try TestBackend.named("api1")
        let a2 = try TestBackend.named("api2")
        defer { fallback.stop(); a1.stop(); a2.stop() }
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [fallback.port], version: "1.0", uuid: "d1")]))
        defer { proxy.stop() }
        let before = try proxy.api("GET", "/configuration/cluster").1

        #expect(try proxy.api("PUT", "/services/api", body: #"{"hosts":["api.test:80"]}"#) == (400, "hosts[0]: must be a host name (shop.example.com), a wildcard (*.example.com) or an IP literal, without port\n"))
        #expect(try proxy.api("PUT", "/services/api", body: #"{"hosts":[]}"#).0 == 400)
        #expect(try proxy.api("PUT", "/services/api", body: #"{"hosts":["api.test"],"pathPrefix":"nope"}"#).1.hasPrefix("pathPrefix:"))
        #expect(try proxy.api("PUT", "/services/api", body: #"{"hosts":["api.test"],"colour":1}"#).1.hasPrefix("colour: unknown field"))
        #expect(try proxy.api("PUT", "/services/api", body: #"{"hosts":["api.test", "*.api.test"]}"#) == (202, "api"))
        let clash = try proxy.api("PUT", "/services/api2", body: #"{"hosts":["API.test"]}"#)
        #expect(clash.0 == 400 && clash.1.contains("already served by service \"api\""))
        #expect(try proxy.api("GET", "/services/nothing").0 == 404)
        #expect(try proxy.api("PUT", "/services/nothing/clusters", body: body(["cluster": ProxyProcess.cluster(ports: [a1.port], version: "1")])).0 == 404)

        // A service without clusters answers 503 (it exists, nothing serves it yet).
        let client = try ClientConnection(port: proxy.port)
        #expect(try get(client, host: "api.test", "/").status == 503)
        let putBody = body(["cluster": ProxyProcess.cluster(ports: [a1.port], version: "1.0", uuid: "a1")])
        #expect(try proxy.api("PUT", "/services/api/clusters", body: putBody) == (202, "a1"))
        let client2 = try ClientConnection(port: proxy.port)
        try waitUntil("the api service to serve") { try get(client2, host: "x.api.test", "/").bodyText == "api1\n" }
        // uuids are unique across services.
        let stolen = try proxy.api("PUT", "/configuration/cluster", body: putBody)
        #expect(stolen.0 == 400 && stolen.1.contains("is a cluster of service api"))
        // The default service's API shows only its own clusters, byte for byte as before.
        #expect(try proxy.api("GET", "/configuration/cluster").1 == before)
        #expect(try proxy.api("GET", "/configuration/cluster/a1").0 == 404)
        let listed = json(try proxy.api("GET", "/services/api/clusters").1) as? [[String: Any]]
        #expect((listed?.first?["cluster"] as? [String: Any])?["uuid"] as? String == "a1")
        #expect(try proxy.api("GET", "/services/api/clusters/a1").0 == 200)
        // The last active cluster of a service is kept unless forced.
        #expect(try proxy.api("DELETE", "/services/api/clusters/a1").0 == 409)
        #expect(try proxy.api("PUT", "/services/api/clusters", body: body(["cluster": ProxyProcess.cluster(ports: [a2.port], version: "2.0", uuid: "a2")])).0 == 202)
        try waitUntil("version 2 of the api service") { try get(client2, host: "api.test", "/").bodyText == "api2\n" }
        #expect(try proxy.api("DELETE", "/services/api/clusters/a1").0 == 202)
        #expect(try proxy.api("DELETE", "/services/api/clusters/a1").0 == 404)
        let services = json(try proxy.api("GET", "/services").1) as? [[String: Any]]
        #expect(services?.map { $0["name"] as? String } == ["api", "default"])
        #expect(try proxy.api("DELETE", "/services/default").0 == 400)
        #expect(try proxy.api("DELETE", "/services/api") == (202, "api\n"))
        try waitUntil("api.test to fall back to the default service") { try get(client2, host: "api.test", "/").bodyText == "default\n" }
    }

    @Test("change sets: all or nothing, ifGeneration, and no request sees one service's change without the other's (under load)")
    func changeSets() throws {
        // Backends answer with their version; each release adds one to both services.
        let releases = 12
        var fronts: [TestBackend] = []
        var apis: [TestBackend] = []
        for v in 0...releases {
            fronts.append(try TestBackend.named("\(v)"))
            apis.append(try TestBackend.named("\(v)"))
        }
        defer { for b in fronts + apis { b.stop() } }
        let config: [String: Any] = [
            "proxy": ["hostname": "127.0.0.1", "port": 0], "configService": ["hostname": "127.0.0.1", "port": 0],
            "services": [
                service("front", hosts: ["front.test"], clusters: [ProxyProcess.cluster(ports: [fronts[0].port], version: "0", uuid: "f0")]),
                service("api", hosts: ["api.test"], clusters: [ProxyProcess.cluster(ports: [apis[0].port], version: "0", uuid: "a0")]),
            ],
        ]
        let proxy = try ProxyProcess(config: config, arguments: ["--workers", "2", "--log-level", "NOTICE"])
        defer { proxy.stop() }

        // Refused as a whole: the second change is wrong, so the first is not applied either.
        let generation = (json(try proxy.api("GET", "/status").1) as? [String: Any])?["generation"] as? Int ?? -1
        let bad = body(["changes": [["service": "front", "put": ProxyProcess.cluster(ports: [fronts[1].port], version: "1", uuid: "f1")],
                                     ["service": "api", "put": ["servers": [["hostname": "127.0.0.1", "port": 0]], "version": "1"]]]])
        let refused = try proxy.api("POST", "/changes", body: bad)
        #expect(refused.0 == 400 && refused.1.hasPrefix("changes[1].put.servers[0].port:"))
        #expect(try proxy.api("GET", "/services/front/clusters/f1").0 == 404)
        let unknown = body(["changes": [["service": "front", "put": ProxyProcess.cluster(ports: [fronts[1].port], version: "1", uuid: "f1")],
                                         ["service": "nope", "delete": "x"]]])
        #expect(try proxy.api("POST", "/changes", body: unknown).0 == 404)
        #expect(try proxy.api("GET", "/services/front/clusters/f1").0 == 404)
        let stale = body(["ifGeneration": generation - 1,
                          "changes": [["service": "front", "put": ProxyProcess.cluster(ports: [fronts[1].port], version: "1", uuid: "f1")]]])
        #expect(try proxy.api("POST", "/changes", body: stale).0 == 409)

        // Under load: each client asks front, then api, on one connection; a pair where front
        // already has a release api has not would be a half-applied change set.
        let stop = Locked(false)
        let mixed = Locked<[String]>([])
        let pairs = Locked(0)
        let errors = Locked<[String]>([])
        let group = DispatchGroup()
        for _ in 0..<4 {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                do {
                    let client = try ClientConnection(port: proxy.port)
                    while !stop.withLock({ $0 }) {
                        let f = Int(try get(client, host: "front.test", "/").bodyText.dropLast()) ?? -1
                        let a = Int(try get(client, host: "api.test", "/").bodyText.dropLast()) ?? -1
                        if f < 0 || a < 0 || a < f { mixed.withLock { $0.append("front \(f), api \(a)") } }
                        pairs.withLock { $0 += 1 }
                    }
                } catch {
                    errors.withLock { $0.append("\(error)") }
                }
            }
        }
        for v in 1...releases {
            var changes: [[String: Any]] = [
                ["service": "front", "put": ProxyProcess.cluster(ports: [fronts[v].port], version: "\(v)", uuid: "f\(v)")],
                ["service": "api", "put": ProxyProcess.cluster(ports: [apis[v].port], version: "\(v)", uuid: "a\(v)")],
            ]
            if v > 1 {
                changes.append(["service": "front", "delete": "f\(v - 2)"])
                changes.append(["service": "api", "delete": "a\(v - 2)"])
            }
            let before = (json(try proxy.api("GET", "/status").1) as? [String: Any])?["generation"] as? Int ?? -1
            let (status, text) = try proxy.api("POST", "/changes", body: body(["changes": changes]))
            #expect(status == 202, "\(text)")
            let answer = json(text) as? [String: Any]
            #expect(answer?["uuids"] as? [String] == ["f\(v)", "a\(v)"])
            // Two to four changes, one snapshot: the generation moves by one.
            #expect(answer?["generation"] as? Int == before + 1)
            let seen = pairs.withLock { $0 }
            try waitUntil("requests under release \(v)") { pairs.withLock { $0 } >= seen + 20 }
        }
        stop.withLock { $0 = true }
        group.wait()
        #expect(errors.withLock { $0 }.isEmpty)
        #expect(mixed.withLock { $0 }.isEmpty, "half-applied change sets seen: \(mixed.withLock { $0.prefix(5) })")
        #expect(pairs.withLock { $0 } > releases * 20)
    }

    @Test("release group: during a GRADUAL rollout of two services a client never gets a mix of releases, and only moves forward")
    func releaseGroup() throws {
        let front1 = try TestBackend.named("2026.11"), front2 = try TestBackend.named("2026.12")
        let api1 = try TestBackend.named("2026.11"), api2 = try TestBackend.named("2026.12")
        defer { for b in [front1, front2, api1, api2] { b.stop() } }
        func cluster(_ port: Int, _ uuid: String, _ release: String, gradual: Bool = false) -> [String: Any] {
            var c = ProxyProcess.cluster(ports: [port], version: release == "2026.11" ? "1.0" : "2.0", uuid: uuid)
            c["release"] = release
            if gradual { c["upgradeTransition"] = ["mode": "GRADUAL", "percentageTransitionPerRequest": 0.5] }
            return c
        }
        let config: [String: Any] = [
            "proxy": ["hostname": "127.0.0.1", "port": 0], "configService": ["hostname": "127.0.0.1", "port": 0],
            "cookies": ["moveAfterIdleSeconds": 0],
            "services": [
                service("front", hosts: ["shop.test"], clusters: [cluster(front1.port, "f1", "2026.11")], extra: ["releaseGroup": "web"]),
                service("api", hosts: ["shop.test"], prefix: "/api", clusters: [cluster(api1.port, "a1", "2026.11")], extra: ["releaseGroup": "web"]),
            ],
        ]
        let proxy = try ProxyProcess(config: config, arguments: ["--workers", "2", "--log-level", "NOTICE"])
        defer { proxy.stop() }
        // Upgrade transitions of one release must agree.
        let disagree = body(["changes": [["service": "front", "put": cluster(front2.port, "f2", "2026.12", gradual: true)],
                                          ["service": "api", "put": cluster(api2.port, "a2", "2026.12")]]])
        let refused = try proxy.api("POST", "/changes", body: disagree)
        #expect(refused.0 == 400 && refused.1.hasPrefix("changes[1].put.upgradeTransition:"))

        let start = body(["changes": [["service": "front", "put": cluster(front2.port, "f2", "2026.12", gradual: true)],
                                       ["service": "api", "put": cluster(api2.port, "a2", "2026.12", gradual: true)]]])
        #expect(try proxy.api("POST", "/changes", body: start).0 == 202)

        // Clients: a page load of the front, then three API calls from the page, with cookies.
        let batches = Locked(0)
        let problems = Locked<[String]>([])
        let moved = Locked(0)
        let group = DispatchGroup()
        for _ in 0..<6 {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                do {
                    var jar: [String: String] = [:]
                    var last = "2026.11"
                    var client = try ClientConnection(port: proxy.port)
                    for round in 0..<60 {
                        if round % 10 == 0 { client.close(); client = try ClientConnection(port: proxy.port) }
                        func cookieHeader() -> [String: String] {
                            jar.isEmpty ? [:] : ["Cookie": jar.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: "; ")]
                        }
                        func remember(_ r: TestResponse) {
                            for line in r.headers("Set-Cookie") {
                                let pair = line.split(separator: ";")[0].split(separator: "=", maxSplits: 1)
                                if pair.count == 2 { jar[String(pair[0])] = String(pair[1]) }
                            }
                        }
                        let page = try get(client, host: "shop.test", "/", headers: cookieHeader().merging(
                            ["Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"]) { a, _ in a })
                        remember(page)
                        var versions = [String(page.bodyText.dropLast())]
                        for _ in 0..<3 {
                            let call = try get(client, host: "shop.test", "/api/items", headers: cookieHeader().merging(
                                ["Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"]) { a, _ in a })
                            remember(call)
                            versions.append(String(call.bodyText.dropLast()))
                        }
                        if Set(versions).count != 1 { problems.withLock { $0.append("mixed batch \(versions)") } }
                        if versions[0] < last { problems.withLock { $0.append("moved back from \(last) to \(versions[0])") } }
                        if versions[0] != last { moved.withLock { $0 += 1 } }
                        last = versions[0]
                        batches.withLock { $0 += 1 }
                    }
                    if jar["dynsoftup_web"] == nil || jar["transition_web"] == nil { problems.withLock { $0.append("cookies \(jar)") } }
                } catch {
                    problems.withLock { $0.append("\(error)") }
                }
            }
        }
        group.wait()
        #expect(problems.withLock { $0 }.isEmpty, "\(problems.withLock { $0.prefix(5) })")
        #expect(batches.withLock { $0 } == 360)
        #expect(moved.withLock { $0 } > 0, "no client moved to the new release")
        // One threshold for the release: both services' clusters show the same.
        let status = json(try proxy.api("GET", "/status").1) as? [String: Any]
        let thresholds = (status?["clusters"] as? [[String: Any]])?.filter { ["f2", "a2"].contains($0["uuid"] as? String) }
            .compactMap { $0["gradualThreshold"] as? Double }
        #expect(thresholds?.count == 2 && thresholds?[0] == thresholds?[1])
    }

    @Test("services, their clusters and a change set survive SIGKILL with --state-dir; the access log names the service")
    func durable() throws {
        let fallback = try TestBackend.named("default")
        let shop = try TestBackend.named("shop")
        let api = try TestBackend.named("api")
        defer { fallback.stop(); shop.stop(); api.stop() }
        let stateDir = makeStateDirPath()
        defer { try? FileManager.default.removeItem(atPath: stateDir) }
        let config = ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [fallback.port], version: "1.0", uuid: "d1")],
                                         extra: ["accessLog": ["path": "stderr"]])
        let args = ["--workers", "1", "--log-level", "INFO", "--state-dir", stateDir]
        let proxy = try ProxyProcess(config: config, arguments: args)
        let changes = body(["changes": [
            ["putService": ["name": "shop", "hosts": ["shop.test"]]],
            ["putService": ["name": "api", "hosts": ["shop.test"], "pathPrefix": "/api"]],
            ["service": "shop", "put": ProxyProcess.cluster(ports: [shop.port], version: "1.0", uuid: "s1")],
            ["service": "api", "put": ProxyProcess.cluster(ports: [api.port], version: "1.0", uuid: "a1")],
        ]])
        #expect(try proxy.api("POST", "/changes", body: changes).0 == 202)
        let client = try ClientConnection(port: proxy.port)
        #expect(try get(client, host: "shop.test", "/api/x").bodyText == "api\n")
        try waitUntil("the access log line") { proxy.log.contains("service=api") }
        let journal = String(decoding: FileManager.default.contents(atPath: stateDir + "/journal") ?? Data(), as: UTF8.self)
        #expect(journal.contains(#""op":"changes""#))
        let before = try proxy.api("GET", "/services").1
        proxy.kill9()
        proxy.stop()

        let again = try ProxyProcess(config: config, arguments: args)
        defer { again.stop() }
        #expect(try again.api("GET", "/services").1 == before)
        let client2 = try ClientConnection(port: again.port)
        #expect(try get(client2, host: "shop.test", "/").bodyText == "shop\n")
        #expect(try get(client2, host: "shop.test", "/api/x").bodyText == "api\n")
        #expect(try get(client2, host: "other.test", "/").bodyText == "default\n")
    }

    @Test("release group: a new release failing in one service is rolled back in every service of the group")
    func releaseGroupRollback() throws {
        let front1 = try TestBackend.named("front 2026.11"), front2 = try TestBackend.named("front 2026.12")
        let api1 = try TestBackend.named("api 2026.11")
        defer { for b in [front1, front2, api1] { b.stop() } }
        func cluster(_ port: Int, _ uuid: String, _ release: String) -> [String: Any] {
            var c = ProxyProcess.cluster(ports: [port], version: release == "2026.11" ? "1.0" : "2.0", uuid: uuid)
            c["release"] = release
            return c
        }
        let config: [String: Any] = [
            "proxy": ["hostname": "127.0.0.1", "port": 0], "configService": ["hostname": "127.0.0.1", "port": 0],
            "services": [
                service("front", hosts: ["shop.test"], clusters: [cluster(front1.port, "f1", "2026.11")], extra: ["releaseGroup": "web"]),
                service("api", hosts: ["shop.test"], prefix: "/api", clusters: [cluster(api1.port, "a1", "2026.11")], extra: ["releaseGroup": "web"]),
            ],
        ]
        let proxy = try ProxyProcess(config: config)
        defer { proxy.stop() }
        // Release 2026.12: the front works, the API's backend refuses connections.
        let start = body(["changes": [["service": "front", "put": cluster(front2.port, "f2", "2026.12")],
                                       ["service": "api", "put": cluster(TestBackend.closedPort(), "a2", "2026.12")]]])
        #expect(try proxy.api("POST", "/changes", body: start).0 == 202)
        let client = try ClientConnection(port: proxy.port)
        try waitUntil("the front to serve 2026.12") { try get(client, host: "shop.test", "/").bodyText == "front 2026.12\n" }
        // The API's failure (no healthy backend) marks the release failed, in the front too.
        _ = try? get(ClientConnection(port: proxy.port), host: "shop.test", "/api/x")
        try waitUntil("2026.12 rolled back everywhere") {
            try get(ClientConnection(port: proxy.port), host: "shop.test", "/").bodyText == "front 2026.11\n"
        }
        #expect(try get(ClientConnection(port: proxy.port), host: "shop.test", "/api/x").bodyText == "api 2026.11\n")
        #expect(try proxy.api("GET", "/services/front/clusters/f2").1.contains("\"state\":\"failed\""))
    }
}
