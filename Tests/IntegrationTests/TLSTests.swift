import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// TLS termination with real clients (curl, openssl s_client) and certificates made by the
/// `openssl` command: versions, SNI, resumption, ALPN, large bodies, keep-alive and pipelining,
/// hostile handshakes, and certificate reload without dropping connections.
@Suite("TLS listeners", .serialized)
struct TLSListenerTests {
    /// A directory of ECDSA P-256 certificates made for one test.
    final class Certificates {
        let dir: String
        init() throws {
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-tls-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        /// Makes `name.pem` and `name.key` covering `names` (the first is the subject's CN).
        @discardableResult
        func make(_ name: String, names: [String]) throws -> [String: String] {
            let (rc, _) = try run("/usr/bin/env", ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                                                   "-nodes", "-keyout", "\(dir)/\(name).key", "-out", "\(dir)/\(name).pem", "-days", "30",
                                                   "-subj", "/CN=\(names[0])",
                                                   "-addext", "subjectAltName=" + names.map { "DNS:\($0)" }.joined(separator: ",")])
            guard rc == 0 else { throw HarnessError("openssl req failed") }
            return ["cert": "\(dir)/\(name).pem", "key": "\(dir)/\(name).key"]
        }
        func path(_ file: String) -> String { "\(dir)/\(file)" }
        deinit { try? FileManager.default.removeItem(atPath: dir) }
    }

    /// A proxy with one TLS listener (certificates `certs`) and one plain listener, on free ports.
    static func start(backend: Int, certificates: [[String: String]], tls: [String: Any] = [:],
                      timeouts: [String: Any] = [:], limits: [String: Any] = [:], workers: Int = 1) throws -> (ProxyProcess, tlsPort: Int) {
        var tlsObject = tls
        tlsObject["certificates"] = certificates
        var proxy: [String: Any] = ["hostname": "127.0.0.1", "listeners": [["port": 0, "tls": tlsObject], ["port": 0]]]
        if !timeouts.isEmpty { proxy["timeouts"] = timeouts }
        if !limits.isEmpty { proxy["limits"] = limits }
        var config = ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [backend], version: "1.0")])
        config["proxy"] = proxy
        let process = try ProxyProcess(config: config, arguments: ["--workers", String(workers), "--log-level", "INFO"])
        try waitUntil("the TLS listener line") { process.log.contains("event=listening") }
        let line = process.log.split(separator: "\n").first { $0.contains("event=listening") && $0.contains("tls=yes") } ?? ""
        let port = line.split(separator: " ").first { $0.hasPrefix("port=") }.flatMap { Int($0.dropFirst(5)) } ?? 0
        return (process, port)
    }

    /// Runs a shell command; returns its exit status and stdout + stderr.
    static func shell(_ command: String) throws -> (Int32, String) {
        try run("/usr/bin/env", ["sh", "-c", command + " 2>&1"])
    }

    /// A backend that answers with the request's X-Forwarded-Proto.
    static func protoBackend() throws -> TestBackend {
        try TestBackend { request, socket in
            try TestBackend.respond(socket, body: "proto=\(request.header("X-Forwarded-Proto") ?? "-")")
            return true
        }
    }

    @Test("curl over TLS 1.2 and 1.3; requests carry X-Forwarded-Proto: https; the plain listener says http")
    func versions() throws {
        let certs = try Certificates()
        let cert = try certs.make("site", names: ["site.test"])
        let backend = try Self.protoBackend()
        let (proxy, port) = try Self.start(backend: backend.port, certificates: [cert])
        defer { proxy.stop(); backend.stop() }
        let base = "curl -sS --cacert \(cert["cert"]!) --resolve site.test:\(port):127.0.0.1 https://site.test:\(port)/"
        let (rc13, out13) = try Self.shell("\(base) --tlsv1.3 -v")
        #expect(rc13 == 0)
        #expect(out13.contains("proto=https"))
        #expect(out13.contains("TLSv1.3"))
        let (rc12, out12) = try Self.shell("\(base) --tlsv1.2 --tls-max 1.2 -v")
        #expect(rc12 == 0)
        #expect(out12.contains("proto=https"))
        #expect(out12.contains("TLSv1.2"))
        #expect(try Self.shell("curl -sS http://127.0.0.1:\(proxy.port)/").1 == "proto=http")
    }

    @Test("minVersion 1.3 refuses a TLS 1.2 client")
    func minimumVersion() throws {
        let certs = try Certificates()
        let cert = try certs.make("site", names: ["site.test"])
        let backend = try TestBackend.named("b")
        let (proxy, port) = try Self.start(backend: backend.port, certificates: [cert], tls: ["minVersion": "1.3"])
        defer { proxy.stop(); backend.stop() }
        let base = "curl -sS --cacert \(cert["cert"]!) --resolve site.test:\(port):127.0.0.1 https://site.test:\(port)/"
        #expect(try Self.shell("\(base) --tlsv1.2 --tls-max 1.2").0 != 0)
        #expect(try Self.shell(base).0 == 0)
    }

    @Test("SNI picks the certificate: exact, wildcard, else the first")
    func serverNameIndication() throws {
        let certs = try Certificates()
        let first = try certs.make("first", names: ["first.test"])
        let shop = try certs.make("shop", names: ["shop.test"])
        let wild = try certs.make("wild", names: ["*.apps.test"])
        let backend = try TestBackend.named("b")
        let (proxy, port) = try Self.start(backend: backend.port, certificates: [first, shop, wild])
        defer { proxy.stop(); backend.stop() }
        func subject(_ name: String?) throws -> String {
            let sni = name.map { "-servername \($0)" } ?? "-noservername"
            let out = try Self.shell("echo | openssl s_client -connect 127.0.0.1:\(port) \(sni)").1
            return out.split(separator: "\n").first { $0.hasPrefix("subject=") }.map(String.init) ?? out
        }
        #expect(try subject("shop.test").contains("shop.test"))
        #expect(try subject("x.apps.test").contains("apps.test"))
        #expect(try subject("other.test").contains("first.test"))
        #expect(try subject(nil).contains("first.test"))
        // curl verifies the certificate it got against the name it asked for.
        #expect(try Self.shell("curl -sS --cacert \(shop["cert"]!) --resolve shop.test:\(port):127.0.0.1 https://shop.test:\(port)/").1 == "b\n")
    }

    @Test("a session resumes from its ticket (openssl s_client -sess_out / -sess_in)")
    func resumption() throws {
        let certs = try Certificates()
        let cert = try certs.make("site", names: ["site.test"])
        let backend = try TestBackend.named("b")
        let (proxy, port) = try Self.start(backend: backend.port, certificates: [cert])
        defer { proxy.stop(); backend.stop() }
        let session = certs.path("session.pem")
        let request = "printf 'GET / HTTP/1.1\\r\\nHost: site.test\\r\\nConnection: close\\r\\n\\r\\n'"
        let client = "openssl s_client -connect 127.0.0.1:\(port) -servername site.test -CAfile \(cert["cert"]!) -ign_eof"
        let (_, first) = try Self.shell("\(request) | \(client) -sess_out \(session)")
        #expect(first.contains("New, TLSv1.3"))
        let (_, second) = try Self.shell("\(request) | \(client) -sess_in \(session)")
        #expect(second.contains("Reused, TLSv1.3"))
        #expect(second.contains("HTTP/1.1 200"))
        let status = try proxy.api("GET", "/status").1
        #expect(status.contains("\"resumed\":1"))
    }

    @Test("one session ticket per handshake by default; sessionTickets sets the count, 0 sends none")
    func ticketCount() throws {
        let certs = try Certificates()
        let cert = try certs.make("site", names: ["site.test"])
        let backend = try TestBackend.named("b")
        defer { backend.stop() }
        for (setting, expected) in [(nil, 1), (2, 2), (0, 0)] as [(Int?, Int)] {
            let (proxy, port) = try Self.start(backend: backend.port, certificates: [cert],
                                               tls: setting.map { ["sessionTickets": $0] } ?? [:])
            defer { proxy.stop() }
            let request = "printf 'GET / HTTP/1.1\\r\\nHost: site.test\\r\\nConnection: close\\r\\n\\r\\n'"
            let (_, out) = try Self.shell("\(request) | openssl s_client -connect 127.0.0.1:\(port) -servername site.test -tls1_3 -msg -ign_eof")
            #expect(out.contains("HTTP/1.1 200"), "sessionTickets \(setting.map(String.init) ?? "default")")
            let tickets = out.components(separatedBy: "<<< TLS 1.3, Handshake").filter { $0.hasPrefix(" [length") && $0.contains("NewSessionTicket") }.count
            #expect(tickets == expected, "sessionTickets \(setting.map(String.init) ?? "default"): \(tickets) tickets")
        }
    }

    @Test("ticket keys rotate: a ticket resumes under the previous key, not after two rotations")
    func ticketRotation() throws {
        let certs = try Certificates()
        let cert = try certs.make("site", names: ["site.test"])
        let backend = try TestBackend.named("b")
        let (proxy, port) = try Self.start(backend: backend.port, certificates: [cert], tls: ["ticketKeyRotationSeconds": 1])
        defer { proxy.stop(); backend.stop() }
        func rotations() throws -> Int {
            let text = try proxy.api("GET", "/status").1
            guard let range = text.range(of: "\"ticketKeyRotations\":") else { return -1 }
            return Int(text[range.upperBound...].prefix { $0.isNumber }) ?? -1
        }
        let request = "printf 'GET / HTTP/1.1\\r\\nHost: site.test\\r\\nConnection: close\\r\\n\\r\\n'"
        let client = "openssl s_client -connect 127.0.0.1:\(port) -servername site.test -ign_eof"
        // Take a ticket just after a rotation, so the next one cannot pass before it is used.
        var start = try rotations()
        try waitUntil("a rotation", timeout: 5) { try rotations() > start }
        start = try rotations()
        let session = certs.path("session.pem")
        let first = try Self.shell("\(request) | \(client) -sess_out \(session)").1
        #expect(first.contains("New, TLSv1.3"))
        try waitUntil("one rotation", timeout: 5) { try rotations() == start + 1 }
        #expect(try Self.shell("\(request) | \(client) -sess_in \(session)").1.contains("Reused, TLSv1.3"), "the previous key still decrypts")
        let again = certs.path("again.pem")
        let fresh = try rotations()
        _ = try Self.shell("\(request) | \(client) -sess_out \(again)")
        try waitUntil("two rotations", timeout: 6) { try rotations() >= fresh + 2 }
        #expect(try Self.shell("\(request) | \(client) -sess_in \(again)").1.contains("New, TLSv1.3"), "two rotations later the ticket is refused")
    }

    @Test("a client offering only h2 fails the handshake, with a log line saying why")
    func alpnH2Only() throws {
        let certs = try Certificates()
        let cert = try certs.make("site", names: ["site.test"])
        let backend = try TestBackend.named("b")
        let (proxy, port) = try Self.start(backend: backend.port, certificates: [cert])
        defer { proxy.stop(); backend.stop() }
        let out = try Self.shell("echo | openssl s_client -connect 127.0.0.1:\(port) -alpn h2").1
        #expect(out.contains("no application protocol"))
        try waitUntil("the log line") { proxy.log.contains("the client offered only [h2]; only http/1.1 is served") }
        // Offering both is fine: http/1.1 is chosen.
        let both = try Self.shell("echo | openssl s_client -connect 127.0.0.1:\(port) -alpn h2,http/1.1").1
        #expect(both.contains("ALPN protocol: http/1.1"))
    }

    @Test("a 256 MiB download and an 8 MiB upload arrive byte-exact over TLS")
    func largeBodies() throws {
        let certs = try Certificates()
        let cert = try certs.make("site", names: ["site.test"])
        let (dir, sha) = try LargeBodyTests.makeFile(size: 256 << 20, name: "big.bin")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try LargeBodyTests.PythonServer(directory: dir)
        defer { server.stop() }
        let (proxy, port) = try Self.start(backend: server.port, certificates: [cert])
        defer { proxy.stop() }
        let curl = "curl -sf --cacert \(cert["cert"]!) --resolve site.test:\(port):127.0.0.1"
        let before = proxy.residentBytes()
        let (rc, out) = try run("/usr/bin/env", ["sh", "-c", "\(curl) https://site.test:\(port)/big.bin | sha256sum"])
        #expect(rc == 0)
        #expect(out.split(separator: " ").first.map(String.init) == sha)
        if !underSanitizer { #expect(proxy.residentBytes() - before < 16 << 20) }

        let (upDir, upSha) = try LargeBodyTests.makeFile(size: 8 << 20, name: "up.bin")
        defer { try? FileManager.default.removeItem(atPath: upDir) }
        let echo = try TestBackend { request, socket in
            try TestBackend.respond(socket, body: request.body)
            return true
        }
        defer { echo.stop() }
        let (proxy2, port2) = try Self.start(backend: echo.port, certificates: [cert])
        defer { proxy2.stop() }
        let curl2 = "curl -sf --cacert \(cert["cert"]!) --resolve site.test:\(port2):127.0.0.1"
        for framing in ["-H 'Expect:'", "-H 'Expect:' -H 'Transfer-Encoding: chunked'"] {
            let (rc2, out2) = try run("/usr/bin/env", ["sh", "-c",
                "\(curl2) \(framing) --data-binary @\(upDir)/up.bin https://site.test:\(port2)/upload | sha256sum"])
            #expect(rc2 == 0)
            #expect(out2.split(separator: " ").first.map(String.init) == upSha, "\(framing)")
        }
    }

    @Test("keep-alive and pipelining over TLS")
    func keepAliveAndPipelining() throws {
        let certs = try Certificates()
        let cert = try certs.make("site", names: ["site.test"])
        let backend = try TestBackend { request, socket in
            try TestBackend.respond(socket, body: "path=\(request.target)\n")
            return true
        }
        let (proxy, port) = try Self.start(backend: backend.port, certificates: [cert])
        defer { proxy.stop(); backend.stop() }
        // curl reuses one connection for several URLs.
        let url = "https://site.test:\(port)"
        let (rc, out) = try Self.shell("curl -sS -v --cacert \(cert["cert"]!) --resolve site.test:\(port):127.0.0.1 \(url)/1 \(url)/2 \(url)/3")
        #expect(rc == 0)
        #expect(out.contains("path=/1") && out.contains("path=/2") && out.contains("path=/3"))
        #expect(out.contains("Re-using existing connection") || out.contains("Reusing existing"), "one connection")
        #expect(try proxy.api("GET", "/status").1.contains("\"handshakes\":1"))
        // Three requests in one write; answers come back in order on the one connection.
        let requests = (1...3).map { "GET /p\($0) HTTP/1.1\\r\\nHost: site.test\\r\\n\($0 == 3 ? "Connection: close\\r\\n" : "")\\r\\n" }.joined()
        let (_, piped) = try Self.shell("printf '\(requests)' | openssl s_client -quiet -connect 127.0.0.1:\(port) -servername site.test -ign_eof")
        let order = ["path=/p1", "path=/p2", "path=/p3"].map { piped.range(of: $0)?.lowerBound }
        #expect(order.allSatisfy { $0 != nil })
        if order.allSatisfy({ $0 != nil }) { #expect(order[0]! < order[1]! && order[1]! < order[2]!) }
    }

    @Test("a stalled handshake hits clientHandshakeSeconds; garbage and vanishing clients leave nothing behind")
    func hostileHandshakes() throws {
        let certs = try Certificates()
        let cert = try certs.make("site", names: ["site.test"])
        let backend = try TestBackend.named("b")
        let (proxy, port) = try Self.start(backend: backend.port, certificates: [cert], timeouts: ["clientHandshakeSeconds": 0.5])
        defer { proxy.stop(); backend.stop() }
        let baseline = try proxy.idleBaseline()

        // Connects and says nothing: closed after the deadline, not before.
        let silent = try BlockingSocket(port: port)
        let start = Date()
        try waitUntil("the silent client to be closed", timeout: 5) { silent.peerClosed() }
        #expect(Date().timeIntervalSince(start) >= 0.3)
        silent.close()
        try waitUntil("the timeout to be logged") { proxy.log.contains("reason=\"not completed in time\"") }

        // Plain HTTP instead of a ClientHello: the handshake fails and the connection closes.
        let garbage = try BlockingSocket(port: port)
        try garbage.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try waitUntil("the garbage client to be closed", timeout: 5) { garbage.peerClosed() }
        garbage.close()

        // Clients that send part of a ClientHello and vanish, many at once.
        for _ in 0..<50 {
            let partial = try BlockingSocket(port: port)
            try partial.send([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])
            partial.close()
        }
        // And clients that vanish after a complete handshake, before any request.
        for _ in 0..<10 {
            _ = try Self.shell("echo | openssl s_client -connect 127.0.0.1:\(port) -servername site.test")
        }
        try proxy.waitUntilReleased(descriptors: baseline, "after hostile handshakes")
        // Still serving.
        #expect(try Self.shell("curl -sS --cacert \(cert["cert"]!) --resolve site.test:\(port):127.0.0.1 https://site.test:\(port)/").1 == "b\n")
        let failures = try proxy.metric("switchyard_tls_handshake_failures_total{port=\"\(port)\"}") ?? 0
        #expect(failures >= 52)
    }

    @Test("handshakes in progress count against maxConnections")
    func handshakesCount() throws {
        let certs = try Certificates()
        let cert = try certs.make("site", names: ["site.test"])
        let backend = try TestBackend.named("b")
        let (proxy, port) = try Self.start(backend: backend.port, certificates: [cert], limits: ["maxConnections": 2])
        defer { proxy.stop(); backend.stop() }
        let silent = try (0..<2).map { _ in try BlockingSocket(port: port) }
        try waitUntil("both handshakes to start") { try proxy.metric("switchyard_rejected_requests_total{status=\"503\"}") == 0 }
        let third = try BlockingSocket(port: port)
        try waitUntil("the third connection to be refused", timeout: 5) { third.peerClosed() }
        #expect(try proxy.metric("switchyard_rejected_requests_total{status=\"503\"}") == 1)
        for socket in silent { socket.close() }
        third.close()
        // Once they are gone, a client is served again.
        try waitUntil("a TLS client to be served", timeout: 5) {
            try Self.shell("curl -sS --cacert \(cert["cert"]!) --resolve site.test:\(port):127.0.0.1 https://site.test:\(port)/").1 == "b\n"
        }
    }

    @Test("POST /tls/reload swaps certificates without dropping a connection; a bad file keeps the old one; /status and metrics show them")
    func reload() throws {
        let certs = try Certificates()
        let cert = try certs.make("site", names: ["old.test"])
        let backend = try TestBackend.named("b")
        let (proxy, port) = try Self.start(backend: backend.port, certificates: [cert])
        defer { proxy.stop(); backend.stop() }
        let status = try proxy.api("GET", "/status").1
        #expect(status.contains("\"subject\":\"CN=old.test\""))
        #expect(status.contains("\"path\":\"userspace\""))
        let expiry = try proxy.metric("switchyard_tls_certificate_expiry_seconds{port=\"\(port)\",subject=\"CN=old.test\",file=\"\(cert["cert"]!)\"}") ?? 0
        #expect(expiry > 29 * 86400 && expiry <= 30 * 86400)

        // A connection opened before the reloads.
        let client = try OpenSSLClient(port: port, serverName: "old.test")
        defer { client.stop() }
        #expect(try client.exchange("GET /before HTTP/1.1\r\nHost: old.test\r\n\r\n").contains("200 OK"))

        // A bad certificate file: 422, the old certificate stays.
        try Data("not a certificate".utf8).write(to: URL(fileURLWithPath: cert["cert"]!))
        let (bad, badBody) = try proxy.api("POST", "/tls/reload")
        #expect(bad == 422)
        #expect(badBody.contains("certificates[0].cert"))
        #expect(try Self.shell("echo | openssl s_client -connect 127.0.0.1:\(port)").1.contains("CN = old.test"))

        // A new certificate in the same files: 200, new handshakes get it.
        try? FileManager.default.removeItem(atPath: cert["cert"]!)
        try? FileManager.default.removeItem(atPath: cert["key"]!)
        try certs.make("site", names: ["new.test"])
        let (ok, okBody) = try proxy.api("POST", "/tls/reload")
        #expect(ok == 200)
        #expect(okBody.contains("CN=new.test"))
        #expect(try Self.shell("echo | openssl s_client -connect 127.0.0.1:\(port)").1.contains("CN = new.test"))
        #expect(try proxy.api("GET", "/tls/reload").0 == 405)

        // The connection opened before both reloads still works.
        #expect(try client.exchange("GET /after HTTP/1.1\r\nHost: old.test\r\n\r\n").contains("200 OK"))
    }

    @Test("SIGHUP loads the certificate files the re-read configuration names; reloads under load cost no request")
    func reloadOnHangupUnderLoad() throws {
        let certs = try Certificates()
        let first = try certs.make("first", names: ["site.test"])
        let second = try certs.make("second", names: ["second.test", "site.test"])
        let backend = try TestBackend.named("b")
        let (proxy, port) = try Self.start(backend: backend.port, certificates: [first])
        defer { proxy.stop(); backend.stop() }
        guard which("wrk") != nil else { return }
        // Keep-alive load (and new connections, with Connection: close) while certificates reload.
        let load = Process()
        load.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        load.arguments = ["wrk", "-t1", "-c8", "-d3s", "https://127.0.0.1:\(port)/"]
        let output = Pipe()
        load.standardOutput = output
        try load.run()
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: proxy.configPath))) as! [String: Any]
        var section = config["proxy"] as! [String: Any]
        var listeners = section["listeners"] as! [[String: Any]]
        listeners[0]["tls"] = ["certificates": [second]]
        section["listeners"] = listeners
        config["proxy"] = section
        try writeConfig(config, to: proxy.configPath)
        proxy.hangup()
        try waitUntil("the SIGHUP reload") { proxy.log.contains("event=tls_reloaded") }
        for _ in 0..<5 { #expect(try proxy.api("POST", "/tls/reload").0 == 200) }
        load.waitUntilExit()
        let report = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(!report.contains("Socket errors") && !report.contains("Non-2xx"), "\(report)")
        #expect(report.contains("requests in"))
        #expect(try Self.shell("echo | openssl s_client -connect 127.0.0.1:\(port) -servername site.test").1.contains("subject=CN = second.test"))
        #expect(try proxy.api("GET", "/status").1.contains("\"names\":[\"second.test\",\"site.test\"]"))
    }

    @Test("services behind a TLS listener: a host no certificate covers is refused at start and from the API; SNI picks the service's certificate")
    func servicesNeedCertificates() throws {
        let certs = try Certificates()
        let shop = try certs.make("shop", names: ["shop.test", "*.shop.test"])
        let backend = try TestBackend.named("shop")
        defer { backend.stop() }
        func config(hosts: [String]) -> [String: Any] {
            var c = ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [backend.port], version: "1.0")])
            c["proxy"] = ["hostname": "127.0.0.1", "listeners": [["port": 0, "tls": ["certificates": [shop]]]]]
            c["services"] = [["name": "shop", "hosts": hosts, "clusters": [ProxyProcess.cluster(ports: [backend.port], version: "1.0", uuid: "s1")]]]
            return c
        }
        let path = certs.path("uncovered.json")
        try writeConfig(config(hosts: ["shop.test", "api.test"]), to: path)
        let (status, stderr) = try runSwitchyard(["--config", path])
        #expect(status == 2)
        #expect(stderr.contains("services.shop.hosts[1]: no certificate of the TLS listeners covers \"api.test\""))

        let proxy = try ProxyProcess(config: config(hosts: ["shop.test", "www.shop.test", "*.shop.test"]))
        defer { proxy.stop() }
        try waitUntil("the TLS listener line") { proxy.log.contains("tls=yes") }
        let line = proxy.log.split(separator: "\n").first { $0.contains("event=listening") && $0.contains("tls=yes") } ?? ""
        let port = line.split(separator: " ").first { $0.hasPrefix("port=") }.flatMap { Int($0.dropFirst(5)) } ?? 0
        let (rc, out) = try Self.shell("curl -s --cacert \(shop["cert"]!) --resolve www.shop.test:\(port):127.0.0.1 https://www.shop.test:\(port)/")
        #expect(rc == 0 && out == "shop\n")
        let refused = try proxy.api("PUT", "/services/api", body: #"{"hosts":["api.test"]}"#)
        #expect(refused.0 == 400 && refused.1.hasPrefix("hosts[0]: no certificate of the TLS listeners covers \"api.test\""))
        #expect(try proxy.api("PUT", "/services/deep", body: #"{"hosts":["a.b.shop.test"]}"#).0 == 400)
        #expect(try proxy.api("PUT", "/services/static", body: #"{"hosts":["shop.test"],"pathPrefix":"/static"}"#).0 == 202)
    }

    @Test("configuration errors name the field: missing file, bad PEM, key mismatch, h2 in alpn")
    func configErrors() throws {
        let certs = try Certificates()
        let a = try certs.make("a", names: ["a.test"])
        let b = try certs.make("b", names: ["b.test"])
        try Data("junk".utf8).write(to: URL(fileURLWithPath: certs.path("junk.pem")))
        func failure(_ tls: [String: Any]) throws -> String {
            var config = ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [1], version: "1.0")])
            config["proxy"] = ["hostname": "127.0.0.1", "listeners": [["port": 0], ["port": 0, "tls": tls]]]
            let path = certs.path("config-\(UUID().uuidString).json")
            try writeConfig(config, to: path)
            let (status, stderr) = try runSwitchyard(["--config", path])
            #expect(status != 0)
            return stderr
        }
        #expect(try failure(["certificates": [["cert": certs.path("none.pem"), "key": a["key"]!]]])
            .contains("proxy.listeners[1].tls.certificates[0].cert"))
        #expect(try failure(["certificates": [["cert": certs.path("junk.pem"), "key": a["key"]!]]])
            .contains("proxy.listeners[1].tls.certificates[0].cert: \(certs.path("junk.pem")) is not a PEM certificate chain"))
        #expect(try failure(["certificates": [a, ["cert": a["cert"]!, "key": b["key"]!]]])
            .contains("proxy.listeners[1].tls.certificates[1].key: \(b["key"]!) does not match"))
        #expect(try failure(["certificates": [a], "alpn": ["h2"]]).contains("proxy.listeners[1].tls.alpn"))
        #expect(try failure(["certificates": [a], "minVersion": "1.0"]).contains("proxy.listeners[1].tls.minVersion"))
        #expect(try failure(["certificates": [a], "sessionTickets": 9]).contains("proxy.listeners[1].tls.sessionTickets"))
    }
}

/// `openssl s_client -quiet` kept open: one TLS connection whose exchanges the test drives.
final class OpenSSLClient: @unchecked Sendable {
    let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private let received = Locked("")

    init(port: Int, serverName: String) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl", "s_client", "-quiet", "-connect", "127.0.0.1:\(port)", "-servername", serverName]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let handle = output.fileHandleForReading
        Thread.detachNewThread { [received] in
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                received.withLock { $0 += String(decoding: chunk, as: UTF8.self) }
            }
        }
    }

    /// Sends a request and waits for a whole response (the backends' bodies end with a newline).
    func exchange(_ request: String) throws -> String {
        let start = received.withLock { $0.count }
        input.fileHandleForWriting.write(Data(request.utf8))
        var response = ""
        try waitUntil("a response on the kept connection", timeout: 10) {
            let text = received.withLock { $0 }
            response = String(text.dropFirst(start))
            guard let headEnd = response.range(of: "\r\n\r\n") else { return false }
            let head = response[..<headEnd.lowerBound]
            let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
            return response[headEnd.upperBound...].utf8.count >= length
        }
        return response
    }

    func stop() {
        try? input.fileHandleForWriting.close()
        // Test threads block SIGTERM, and the child inherits the mask: SIGKILL it.
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}
