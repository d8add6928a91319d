import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The admin API over TLS (`configService.tls`) with real clients: curl and `openssl s_client`,
/// `switchyard ctl --cacert` and `switchyard upgrade`; certificates made by the `openssl` command.
@Suite("Admin API over TLS", .serialized)
struct AdminTLSTests {
    typealias Certificates = TLSListenerTests.Certificates

    /// A proxy whose API needs `token` and speaks TLS with `certificates`.
    static func start(backend: Int, certificates: [[String: String]], timeouts: [String: Any] = [:],
                      arguments: [String] = ["--workers", "1", "--log-level", "INFO"]) throws -> ProxyProcess {
        var config = ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [backend], version: "1.0", uuid: "v1")])
        config["configService"] = ["hostname": "127.0.0.1", "port": 0, "token": "s3cret", "tls": ["certificates": certificates]]
        if !timeouts.isEmpty { config["proxy"] = ["hostname": "127.0.0.1", "port": 0, "timeouts": timeouts] }
        return try ProxyProcess(config: config, arguments: arguments)
    }

    static func shell(_ command: String) throws -> (Int32, String) { try TLSListenerTests.shell(command) }

    /// `curl` against the API at `https://localhost:port`, verifying with `ca`: exit status and
    /// output (the body, then the status code on the last line).
    static func curl(_ port: Int, _ path: String, ca: String, method: String = "GET", token: String? = "s3cret") throws -> (Int32, String) {
        let auth = token.map { "-H 'Authorization: Bearer \($0)'" } ?? ""
        return try shell("curl -sS -m 5 --cacert \(ca) \(auth) -X \(method) -w '\\n%{http_code}' https://localhost:\(port)\(path)")
    }

    /// The subject and serial of the certificate served on `port` (`openssl s_client`).
    static func served(_ port: Int) throws -> String {
        try shell("echo | openssl s_client -connect 127.0.0.1:\(port) 2>/dev/null | openssl x509 -noout -subject -serial").1
    }

    @Test("curl --cacert and ctl --cacert get /status with the token; no token: 401; an unknown CA or another name is refused; the dashboard is served")
    func clients() throws {
        let certs = try Certificates()
        let cert = try certs.make("admin", names: ["admin.test", "localhost"])
        let backend = try TestBackend.named("b")
        let proxy = try Self.start(backend: backend.port, certificates: [cert])
        defer { proxy.stop(); backend.stop() }
        #expect(proxy.log.contains("apiTLS=yes"))
        let port = proxy.adminPort

        let (rc, status) = try Self.curl(port, "/status", ca: cert["cert"]!)
        #expect(rc == 0 && status.hasSuffix("\n200"), "\(status)")
        #expect(status.contains("\"role\":\"admin\"") && status.contains("\"subject\":\"CN=admin.test\""))
        #expect(try Self.curl(port, "/status", ca: cert["cert"]!, token: nil).1.hasSuffix("\n401"))
        let page = try Self.curl(port, "/", ca: cert["cert"]!, token: nil).1
        #expect(page.contains("<html") && page.hasSuffix("\n200"))

        // ctl: the same API, verified; the environment works as the flags do.
        let https = "https://localhost:\(port)"
        var r = try runCtl(["--admin", https, "--token", "s3cret", "--cacert", cert["cert"]!, "status"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("v1    1.0      INSTANT  active"), "\(r.out)")
        r = try runCtl(["clusters", "--json"], environment: ["SWITCHYARD_ADMIN": https, "SWITCHYARD_TOKEN": "s3cret",
                                                             "SWITCHYARD_CACERT": cert["cert"]!])
        #expect(r.status == 0 && r.out.contains("\"uuid\":\"v1\""), "\(r.err)")
        // No CA given: the self-signed certificate is not trusted, and ctl says what to do.
        r = try runCtl(["--admin", https, "--token", "s3cret", "status"])
        #expect(r.status == 1)
        #expect(r.err.contains("was not accepted: self-signed certificate") && r.err.contains("--cacert"), "\(r.err)")
        // The certificate does not name 127.0.0.1.
        r = try runCtl(["--admin", "https://127.0.0.1:\(port)", "--token", "s3cret", "--cacert", cert["cert"]!, "health"])
        #expect(r.status == 1 && r.err.contains("mismatch"), "\(r.err)")
        // Another CA: refused as well.
        let other = try certs.make("other", names: ["localhost"])
        #expect(try Self.curl(port, "/status", ca: other["cert"]!).0 != 0)
        r = try runCtl(["--admin", https, "--cacert", other["cert"]!, "health"])
        #expect(r.status == 1 && r.err.contains("was not accepted"), "\(r.err)")
        #expect(try Self.curl(port, "/healthz", ca: cert["cert"]!, token: nil).1.hasSuffix("\n200"))
    }

    @Test("plain HTTP to the TLS port is closed at once, and a silent client at the handshake deadline; the API keeps serving")
    func plainAndSilentClients() throws {
        let certs = try Certificates()
        let cert = try certs.make("admin", names: ["localhost"])
        let backend = try TestBackend.named("b")
        let proxy = try Self.start(backend: backend.port, certificates: [cert], timeouts: ["clientHandshakeSeconds": 1])
        defer { proxy.stop(); backend.stop() }
        let port = proxy.adminPort

        // A plain request: no answer in clear, the connection ends (well before the 5 s timeout).
        let started = Date()
        let plain = try BlockingSocket(port: port, timeout: 5)
        try plain.send("GET /status HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer s3cret\r\n\r\n")
        let answer = try plain.receiveAll()
        #expect(!String(decoding: answer, as: UTF8.self).contains("HTTP/1.1"))
        #expect(Date().timeIntervalSince(started) < 3)
        let (rc, _) = try Self.shell("curl -sS -m 5 http://127.0.0.1:\(port)/status")
        #expect(rc == 52 || rc == 56, "curl: empty reply or connection reset, not a timeout (\(rc))")
        try waitUntil("the log line") { proxy.log.contains("a plain HTTP request on the API's TLS port") }

        // A client that connects and says nothing is closed at the handshake deadline.
        let silent = try BlockingSocket(port: port, timeout: 5)
        let opened = Date()
        #expect(try silent.receiveAll().isEmpty)
        let waited = Date().timeIntervalSince(opened)
        #expect(waited >= 0.8 && waited < 4, "closed after \(waited) s")
        try waitUntil("the deadline's log line") { proxy.log.contains("reason=\"not completed in time\"") }

        #expect(try Self.curl(port, "/status", ca: cert["cert"]!).1.hasSuffix("\n200"))
        let status = try Self.curl(port, "/status", ca: cert["cert"]!).1
        #expect(status.contains("\"handshakeFailures\":3"), "the plain socket, plain curl and the silent client: \(status)")
    }

    @Test("POST /tls/reload and SIGHUP change the API's certificate (s_client sees the new subject and serial); a bad file keeps the old one")
    func reload() throws {
        let certs = try Certificates()
        let cert = try certs.make("admin", names: ["old.test", "localhost"])
        let oldCA = certs.path("old-ca.pem")
        try FileManager.default.copyItem(atPath: cert["cert"]!, toPath: oldCA)
        let backend = try TestBackend.named("b")
        let proxy = try Self.start(backend: backend.port, certificates: [cert])
        defer { proxy.stop(); backend.stop() }
        let port = proxy.adminPort
        let before = try Self.served(port)
        #expect(before.contains("CN = old.test") && before.contains("serial="), "\(before)")

        // A new certificate in the same files.
        try FileManager.default.removeItem(atPath: cert["cert"]!)
        try FileManager.default.removeItem(atPath: cert["key"]!)
        try certs.make("admin", names: ["new.test", "localhost"])
        let (rc, body) = try Self.curl(port, "/tls/reload", ca: oldCA, method: "POST")
        #expect(rc == 0 && body.hasSuffix("\n200") && body.contains("CN=new.test"), "\(body)")
        let after = try Self.served(port)
        #expect(after.contains("CN = new.test"), "\(after)")
        let serial = { (text: String) in text.split(separator: "\n").first { $0.hasPrefix("serial=") } }
        #expect(serial(after) != nil && serial(after) != serial(before))
        #expect(try Self.curl(port, "/status", ca: cert["cert"]!).1.contains("\"subject\":\"CN=new.test\""))

        // A bad file: 422 naming the field; the certificate in force stays.
        let newCA = certs.path("new-ca.pem")
        try FileManager.default.copyItem(atPath: cert["cert"]!, toPath: newCA)
        try Data("not a certificate".utf8).write(to: URL(fileURLWithPath: cert["cert"]!))
        let (_, bad) = try Self.curl(port, "/tls/reload", ca: newCA, method: "POST")
        #expect(bad.hasSuffix("\n422") && bad.contains("configService.tls.certificates[0].cert"), "\(bad)")
        #expect(try Self.served(port).contains("CN = new.test"))

        // SIGHUP: the files the re-read configuration names.
        let third = try certs.make("third", names: ["third.test", "localhost"])
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: proxy.configPath))) as! [String: Any]
        var admin = config["configService"] as! [String: Any]
        admin["tls"] = ["certificates": [third]]
        config["configService"] = admin
        try writeConfig(config, to: proxy.configPath)
        proxy.hangup()
        try waitUntil("the SIGHUP reload") { try Self.served(port).contains("CN = third.test") }
        #expect(try Self.curl(port, "/status", ca: third["cert"]!).1.contains("\"file\":\"\(third["cert"]!)\""))
    }

    @Test("configuration errors name the field under configService.tls")
    func configErrors() throws {
        let certs = try Certificates()
        let a = try certs.make("a", names: ["a.test"])
        let b = try certs.make("b", names: ["b.test"])
        try Data("junk".utf8).write(to: URL(fileURLWithPath: certs.path("junk.pem")))
        func failure(_ tls: [String: Any]) throws -> String {
            var config = ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [1], version: "1.0")])
            config["configService"] = ["hostname": "127.0.0.1", "port": 0, "tls": tls]
            let path = certs.path("config-\(UUID().uuidString).json")
            try writeConfig(config, to: path)
            let (status, stderr) = try runSwitchyard(["--config", path])
            #expect(status == 2)
            return stderr
        }
        var err = try failure(["certificates": [["cert": certs.path("none.pem"), "key": a["key"]!]]])
        #expect(err.contains("configService.tls.certificates[0].cert: cannot read"), "\(err)")
        err = try failure(["certificates": [["cert": certs.path("junk.pem"), "key": a["key"]!]]])
        #expect(err.contains("configService.tls.certificates[0].cert: \(certs.path("junk.pem")) is not a PEM certificate chain"), "\(err)")
        err = try failure(["certificates": [["cert": a["cert"]!, "key": b["key"]!]]])
        #expect(err.contains("configService.tls.certificates[0].key: \(b["key"]!) does not match"), "\(err)")
        err = try failure(["certificates": [a], "minVersion": "1.0"])
        #expect(err.contains("configService.tls.minVersion"), "\(err)")
    }

    @Test("self-upgrade keeps the API on TLS (the new process loads the certificates), and refuses with the reason when it cannot")
    func upgrade() throws {
        let certs = try Certificates()
        let cert = try certs.make("admin", names: ["localhost"])
        let backend = try TestBackend.named("b")
        let proxy = try Self.start(backend: backend.port, certificates: [cert])
        defer { proxy.stop(); backend.stop() }
        let port = proxy.adminPort
        func upgrade(_ extra: [String] = []) throws -> (Int32, String) {
            try run("/usr/bin/env", ["sh", "-c", "SWITCHYARD_ADMIN_TOKEN=s3cret '\(switchyardBinary())' upgrade --admin https://localhost:\(port) "
                                     + extra.joined(separator: " ") + " 2>&1"])
        }
        func servingPID() throws -> Int {
            let body = try Self.curl(port, "/upgrade", ca: cert["cert"]!).1
            let json = try JSONSerialization.jsonObject(with: Data(body.split(separator: "\n").first.map { Array($0.utf8) } ?? [])) as? [String: Any]
            return json?["pid"] as? Int ?? 0
        }
        let first = try servingPID()
        #expect(first == Int(proxy.pid))

        // Without the CA the upgrade command cannot verify the API, and says so.
        let unverified = try upgrade()
        #expect(unverified.0 == 1 && unverified.1.contains("was not accepted"), "\(unverified.1)")

        let (rc, out) = try upgrade(["--cacert", cert["cert"]!])
        #expect(rc == 0, "\(out)")
        let second = try servingPID()
        #expect(second != first && second != 0)
        defer { SelfUpgradeTests.terminate(second) }
        let status = try Self.curl(port, "/status", ca: cert["cert"]!).1
        #expect(status.hasSuffix("\n200") && status.contains("\"role\":\"admin\""), "\(status)")
        let r = try runCtl(["--admin", "https://localhost:\(port)", "--token", "s3cret", "--cacert", cert["cert"]!, "status"])
        #expect(r.status == 0, "\(r.err)")

        // A certificate the next process cannot load: it refuses with the field, the running one stays.
        let saved = try Data(contentsOf: URL(fileURLWithPath: cert["key"]!))
        try Data("junk".utf8).write(to: URL(fileURLWithPath: cert["key"]!))
        let (refusedRC, refused) = try upgrade(["--cacert", cert["cert"]!])
        #expect(refusedRC == 1 && refused.contains("configService.tls.certificates[0].key"), "\(refused)")
        try saved.write(to: URL(fileURLWithPath: cert["key"]!))
        #expect(try servingPID() == second)
    }
}
