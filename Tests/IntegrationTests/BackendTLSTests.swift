import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// TLS from the proxy to backends (a cluster's `tls` object), against a real TLS server
/// (Python's `ssl` module) with certificates made by the `openssl` command: a CA, and a
/// backend certificate for `backend.test` and 127.0.0.1 that it signed.
@Suite("TLS to backends", .serialized)
struct BackendTLSTests {
    /// A CA, a backend certificate it signed, a second CA that signed nothing here, and a
    /// self-signed certificate: made once per test in a temporary directory.
    final class Authority {
        let dir: String
        init() throws {
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-btls-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
            let script = """
                set -e; cd '\(dir)'
                openssl req -x509 \(ec) -keyout ca.key -out ca.pem -days 30 -subj '/CN=Switchyard Test CA'
                openssl req -x509 \(ec) -keyout other-ca.key -out other-ca.pem -days 30 -subj '/CN=Another CA'
                openssl req \(ec) -keyout backend.key -out backend.csr -subj '/CN=backend.test'
                printf 'subjectAltName=DNS:backend.test,IP:127.0.0.1\\n' > san.ext
                openssl x509 -req -in backend.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out backend.pem -days 30 -extfile san.ext
                openssl req -x509 \(ec) -keyout self.key -out self.pem -days 30 -subj '/CN=self.test' -addext subjectAltName=DNS:self.test
                """
            let (rc, out) = try run("/usr/bin/env", ["sh", "-c", script + " 2>&1"])
            guard rc == 0 else { throw HarnessError("openssl failed: \(out)") }
        }
        func path(_ file: String) -> String { "\(dir)/\(file)" }
        deinit { try? FileManager.default.removeItem(atPath: dir) }
    }

    /// An HTTP/1.1 server behind TLS (Python `ssl` + `http.server`, keep-alive). Each
    /// response says which accepted connection carried it (`X-Connection`, from 1), the SNI
    /// the client sent (`X-SNI`), the negotiated ALPN protocol (`X-ALPN`) and whether the TLS
    /// session was resumed (`X-Resumed`); a GET answers `tls backend path=…` (`/close` then
    /// closes the connection; `/big/N` sends N bytes, chunked), a POST the SHA-256 of its body.
    final class TLSBackend {
        let process = Process()
        private(set) var port = 0
        static let script = #"""
            import hashlib, http.server, signal, socketserver, ssl, sys, threading
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(sys.argv[1], sys.argv[2])
            ctx.set_alpn_protocols(["http/1.1"])
            names = {}
            ctx.sni_callback = lambda sock, name, c: names.__setitem__(id(sock), name)
            lock = threading.Lock()
            count = [0]
            class Handler(http.server.BaseHTTPRequestHandler):
                protocol_version = "HTTP/1.1"
                def log_message(self, *a): pass
                def setup(self):
                    super().setup()
                    with lock:
                        count[0] += 1
                        self.number = count[0]
                def reply(self, body):
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("X-Connection", str(self.number))
                    self.send_header("X-SNI", names.get(id(self.connection)) or "-")
                    self.send_header("X-ALPN", self.connection.selected_alpn_protocol() or "-")
                    self.send_header("X-Resumed", "yes" if self.connection.session_reused else "no")
                    if self.close_connection:
                        self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body)
                def do_GET(self):
                    if self.path == "/close":
                        self.close_connection = True
                    if self.path.startswith("/big/"):
                        n = int(self.path[5:])
                        self.send_response(200)
                        self.send_header("Transfer-Encoding", "chunked")
                        self.end_headers()
                        block = bytes(range(256)) * 256
                        sent = 0
                        while sent < n:
                            piece = block[:min(len(block), n - sent)]
                            self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
                            sent += len(piece)
                        self.wfile.write(b"0\r\n\r\n")
                        return
                    self.reply(("tls backend path=" + self.path).encode())
                def do_POST(self):
                    data = self.rfile.read(int(self.headers["Content-Length"]))
                    self.reply(hashlib.sha256(data).hexdigest().encode())
            class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
                daemon_threads = True
                def get_request(self):
                    sock, addr = self.socket.accept()
                    try:
                        return ctx.wrap_socket(sock, server_side=True), addr
                    except (ssl.SSLError, OSError):
                        sock.close()
                        raise
            server = Server(("127.0.0.1", 0), Handler)
            print(server.server_address[1], flush=True)
            server.serve_forever()
            """#

        init(cert: String, key: String) throws {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", "-c", Self.script, cert, key]
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            var line = Data()
            let handle = out.fileHandleForReading
            while !line.contains(10) {
                let chunk = handle.availableData
                if chunk.isEmpty { throw HarnessError("the TLS backend exited before listening") }
                line.append(chunk)
            }
            guard let port = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw HarnessError("the TLS backend did not say its port")
            }
            self.port = port
        }

        func stop() {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        deinit { stop() }
    }

    /// A cluster on the backend's port with `tls`.
    static func cluster(port: Int, tls: [String: Any], version: String = "1.0") -> [String: Any] {
        var c = ProxyProcess.cluster(ports: [port], version: version)
        c["tls"] = tls
        return c
    }

    static func sha256(_ bytes: [UInt8]) throws -> String {
        let (rc, out) = try run("/usr/bin/env", ["sha256sum"], input: Data(bytes))
        guard rc == 0 else { throw HarnessError("sha256sum failed") }
        return String(out.prefix(64))
    }

    @Test("plain client to a TLS backend: GET, POST by hash, keep-alive on one backend connection, SNI and ALPN")
    func getPostKeepAlive() throws {
        let ca = try Authority()
        let backend = try TLSBackend(cert: ca.path("backend.pem"), key: ca.path("backend.key"))
        defer { backend.stop() }
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [
            Self.cluster(port: backend.port, tls: ["caFile": ca.path("ca.pem"), "serverName": "backend.test"]),
        ]))
        defer { proxy.stop() }
        let client = try ClientConnection(port: proxy.port)
        defer { client.close() }
        let first = try client.get("/one")
        #expect(first.status == 200)
        #expect(first.bodyText == "tls backend path=/one")
        #expect(first.header("X-SNI") == "backend.test")
        #expect(first.header("X-ALPN") == "http/1.1")
        var body = [UInt8](repeating: 0, count: 1 << 20)
        for i in body.indices { body[i] = UInt8(truncatingIfNeeded: i &* 7 &+ i >> 9) }
        try client.send("POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: \(body.count)\r\n\r\n")
        try client.send(body)
        let posted = try client.readResponse(method: "POST")
        #expect(posted.status == 200)
        #expect(posted.bodyText == (try Self.sha256(body)))
        let third = try client.get("/three")
        #expect(third.bodyText == "tls backend path=/three")
        // One backend connection carried all three exchanges.
        #expect(Set([first, posted, third].map { $0.header("X-Connection") }) == ["1"])
        // A second client connection reuses the pooled backend connection too.
        let other = try ClientConnection(port: proxy.port)
        defer { other.close() }
        #expect(try other.get("/again").header("X-Connection") == "1")
    }

    @Test("a chunked 16 MiB download through TLS from the backend arrives whole")
    func chunkedDownload() throws {
        let ca = try Authority()
        let backend = try TLSBackend(cert: ca.path("backend.pem"), key: ca.path("backend.key"))
        defer { backend.stop() }
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [
            Self.cluster(port: backend.port, tls: ["caFile": ca.path("ca.pem"), "serverName": "backend.test"]),
        ]))
        defer { proxy.stop() }
        let size = 16 << 20
        let (rc, out) = try TLSListenerTests.shell("curl -sS http://127.0.0.1:\(proxy.port)/big/\(size) | sha256sum")
        #expect(rc == 0)
        var expected = [UInt8]()
        let block = (0..<65536).map { UInt8(truncatingIfNeeded: $0) }
        while expected.count < size { expected += block.prefix(size - expected.count) }
        #expect(out.hasPrefix(try Self.sha256(expected)))
        // The connection is pooled after the body, and used again.
        let client = try ClientConnection(port: proxy.port)
        defer { client.close() }
        #expect(try client.get("/after").header("X-Connection") == "1")
    }

    @Test("a new connection to a backend resumes the TLS session of the previous one")
    func resumption() throws {
        let ca = try Authority()
        let backend = try TLSBackend(cert: ca.path("backend.pem"), key: ca.path("backend.key"))
        defer { backend.stop() }
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [
            Self.cluster(port: backend.port, tls: ["caFile": ca.path("ca.pem"), "serverName": "backend.test"]),
        ]))
        defer { proxy.stop() }
        let client = try ClientConnection(port: proxy.port)
        defer { client.close() }
        let first = try client.get("/one")
        #expect(first.header("X-Resumed") == "no")
        // The backend closes the pooled connection after this answer.
        let closing = try client.get("/close")
        #expect(closing.header("X-Connection") == "1")
        let third = try client.get("/three")
        #expect(third.status == 200)
        #expect(third.header("X-Connection") == "2")
        #expect(third.header("X-Resumed") == "yes")
    }

    @Test("CONCURRENT over a TLS previous version: served by the latest alone, not mirrored")
    func concurrentNotMirrored() throws {
        let ca = try Authority()
        let backend = try TLSBackend(cert: ca.path("backend.pem"), key: ca.path("backend.key"))
        defer { backend.stop() }
        let plain = try TestBackend { _, socket in
            try TestBackend.respond(socket, body: "plain latest")
            return true
        }
        defer { plain.stop() }
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [
            Self.cluster(port: backend.port, tls: ["caFile": ca.path("ca.pem"), "serverName": "backend.test"]),
            ProxyProcess.cluster(ports: [plain.port], version: "2.0", mode: ["mode": "CONCURRENT"]),
        ]))
        defer { proxy.stop() }
        for _ in 0..<3 {
            #expect(try ClientConnection(port: proxy.port).get("/c").bodyText == "plain latest")
        }
        let (_, metrics) = try proxy.api("GET", "/metrics")
        let tlsLine = metrics.split(separator: "\n").first { $0.hasPrefix("switchyard_requests_total{") && $0.contains("version=\"1.0\"") }
        #expect(tlsLine?.hasSuffix(" 0") == true)
        #expect(proxy.log.contains("event=backend_tls") == false)
    }

    @Test("a backend that accepts but never answers the handshake is given up after backendConnectSeconds; a plain HTTP backend is a failed connect too")
    func stalledAndPlain() throws {
        // Connects complete in the kernel's accept queue; nobody ever reads the ClientHello.
        let silent = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { Glibc.close(silent) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(silent, $0, len) } }
        listen(silent, 16)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(silent, $0, &len) } }
        let silentPort = Int(UInt16(bigEndian: addr.sin_port))
        let plain = try TestBackend.named("plain")
        defer { plain.stop() }
        // One proxy per backend, so each request can only meet the failure under test. The
        // plain HTTP backend either answers the ClientHello at once (a handshake failure) or
        // waits for a request head that never comes (given up at the deadline): both are a 502.
        for (port, events) in [(silentPort, ["event=backend_connect_timeout"]),
                               (plain.port, ["event=backend_tls_failed", "event=backend_connect_timeout"])] {
            let proxy = try ProxyProcess(config: ProxyProcess.config(
                clusters: [Self.cluster(port: port, tls: ["verify": false], version: "1.0")],
                extra: ["proxy": ["hostname": "127.0.0.1", "port": 0, "timeouts": ["backendConnectSeconds": 0.3]]]))
            defer { proxy.stop() }
            let started = Date()
            let response = try ClientConnection(port: proxy.port).get("/")
            #expect(response.status == 502, "\(events)")
            #expect(Date().timeIntervalSince(started) < 5, "\(events)")
            try waitUntil("\(events) logged") { events.contains { proxy.log.contains($0) } }
        }
    }

    @Test("health checks probe a TLS cluster over TLS, with the same certificate check")
    func healthChecks() throws {
        let ca = try Authority()
        let backend = try TLSBackend(cert: ca.path("backend.pem"), key: ca.path("backend.key"))
        defer { backend.stop() }
        var good = Self.cluster(port: backend.port, tls: ["caFile": ca.path("ca.pem"), "serverName": "backend.test"], version: "1.0")
        good["healthCheck"] = ["path": "/health", "intervalSeconds": 0.2]
        good["uuid"] = "good"
        var bad = Self.cluster(port: backend.port, tls: ["caFile": ca.path("other-ca.pem"), "serverName": "backend.test"], version: "0.9")
        bad["healthCheck"] = ["path": "/health", "intervalSeconds": 0.2]
        bad["uuid"] = "bad"
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [good, bad]))
        defer { proxy.stop() }
        let key = "\"127.0.0.1:\(backend.port)\":"
        try waitUntil("the good cluster's backend probed up") {
            try proxy.api("GET", "/configuration/cluster/good").1.contains(key + "\"up\"")
        }
        try waitUntil("the bad cluster's backend probed down") {
            try proxy.api("GET", "/configuration/cluster/bad").1.contains(key + "\"down\"")
        }
        #expect(try ClientConnection(port: proxy.port).get("/h").bodyText == "tls backend path=/h")
    }

    @Test("without serverName a server given by IP address is checked against the certificate's IP SAN")
    func addressChecked() throws {
        let ca = try Authority()
        let backend = try TLSBackend(cert: ca.path("backend.pem"), key: ca.path("backend.key"))
        defer { backend.stop() }
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [Self.cluster(port: backend.port, tls: ["caFile": ca.path("ca.pem")])]))
        defer { proxy.stop() }
        let response = try ClientConnection(port: proxy.port).get("/ip")
        #expect(response.status == 200)
        #expect(response.header("X-SNI") == "-")
    }

    @Test("a certificate from an unknown CA: 502, a counted connect failure, the OpenSSL reason in the log")
    func wrongAuthority() throws {
        let ca = try Authority()
        let backend = try TLSBackend(cert: ca.path("backend.pem"), key: ca.path("backend.key"))
        defer { backend.stop() }
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [
            Self.cluster(port: backend.port, tls: ["caFile": ca.path("other-ca.pem"), "serverName": "backend.test"]),
        ]))
        defer { proxy.stop() }
        let response = try ClientConnection(port: proxy.port).get("/x")
        #expect(response.status == 502)
        try waitUntil("the handshake failure line") { proxy.log.contains("event=backend_tls_failed") }
        let line = proxy.log.split(separator: "\n").first { $0.contains("event=backend_tls_failed") } ?? ""
        #expect(line.contains("certificate verify failed"))
        let (_, metrics) = try proxy.api("GET", "/metrics")
        let failures = metrics.split(separator: "\n").first { $0.hasPrefix("switchyard_backend_connect_failures_total{") } ?? ""
        #expect(failures.hasSuffix(" 1"))
    }

    @Test("serverName that the certificate does not carry: 502")
    func nameMismatch() throws {
        let ca = try Authority()
        let backend = try TLSBackend(cert: ca.path("backend.pem"), key: ca.path("backend.key"))
        defer { backend.stop() }
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [
            Self.cluster(port: backend.port, tls: ["caFile": ca.path("ca.pem"), "serverName": "elsewhere.test"]),
        ]))
        defer { proxy.stop() }
        #expect(try ClientConnection(port: proxy.port).get("/x").status == 502)
        try waitUntil("the handshake failure line") { proxy.log.contains("event=backend_tls_failed") }
        #expect(proxy.log.contains("hostname mismatch"))
    }

    @Test("verify false accepts a self-signed certificate, and says so at start")
    func unverified() throws {
        let ca = try Authority()
        let backend = try TLSBackend(cert: ca.path("self.pem"), key: ca.path("self.key"))
        defer { backend.stop() }
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [Self.cluster(port: backend.port, tls: ["verify": false])]))
        defer { proxy.stop() }
        #expect(proxy.log.contains("event=backend_tls_unverified"))
        let response = try ClientConnection(port: proxy.port).get("/self")
        #expect(response.status == 200)
        #expect(response.bodyText == "tls backend path=/self")
        // With verification on, the same backend is refused.
        let proxy2 = try ProxyProcess(config: ProxyProcess.config(clusters: [Self.cluster(port: backend.port, tls: [:])]))
        defer { proxy2.stop() }
        #expect(try ClientConnection(port: proxy2.port).get("/self").status == 502)
    }

    @Test("a TLS client listener in front of a TLS backend (curl over TLS both ways, upload by hash)")
    func tlsBothWays() throws {
        let ca = try Authority()
        let backend = try TLSBackend(cert: ca.path("backend.pem"), key: ca.path("backend.key"))
        defer { backend.stop() }
        let certs = try TLSListenerTests.Certificates()
        let site = try certs.make("site", names: ["site.test"])
        var config = ProxyProcess.config(clusters: [
            Self.cluster(port: backend.port, tls: ["caFile": ca.path("ca.pem"), "serverName": "backend.test"]),
        ])
        config["proxy"] = ["hostname": "127.0.0.1", "listeners": [["port": 0, "tls": ["certificates": [site]]], ["port": 0]]]
        let proxy = try ProxyProcess(config: config)
        defer { proxy.stop() }
        try waitUntil("the TLS listener line") { proxy.log.contains("tls=yes") }
        let line = proxy.log.split(separator: "\n").first { $0.contains("event=listening") && $0.contains("tls=yes") } ?? ""
        let port = line.split(separator: " ").first { $0.hasPrefix("port=") }.flatMap { Int($0.dropFirst(5)) } ?? 0
        let upload = certs.path("upload.bin")
        var body = [UInt8](repeating: 0, count: 3 << 20)
        for i in body.indices { body[i] = UInt8(truncatingIfNeeded: i &* 13 &+ i >> 11) }
        try Data(body).write(to: URL(fileURLWithPath: upload))
        let base = "curl -sS --cacert \(site["cert"]!) --resolve site.test:\(port):127.0.0.1 https://site.test:\(port)"
        let (rc, out) = try TLSListenerTests.shell("\(base)/upload --data-binary @\(upload)")
        #expect(rc == 0)
        #expect(out.contains(try Self.sha256(body)))
        let (rc2, get) = try TLSListenerTests.shell("\(base)/hello")
        #expect(rc2 == 0)
        #expect(get == "tls backend path=/hello")
    }

    @Test("bad tls fields are refused naming the field, in the file and through the API")
    func configErrors() throws {
        let ca = try Authority()
        let dir = ca.dir
        let missing = "\(dir)/missing.pem"
        var config = ProxyProcess.config(clusters: [Self.cluster(port: 1, tls: ["caFile": missing])])
        try writeConfig(config, to: "\(dir)/bad.json")
        let (status, stderr) = try runSwitchyard(["--config", "\(dir)/bad.json"])
        #expect(status != 0)
        #expect(stderr.contains("clusters[0].cluster.tls.caFile: cannot read \(missing)"))

        config = ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [1], version: "1.0")])
        let proxy = try ProxyProcess(config: config)
        defer { proxy.stop() }
        func put(_ tls: Any, mode: [String: Any]? = nil) throws -> (Int, String) {
            var c = ProxyProcess.cluster(ports: [1], version: "2.0", mode: mode)
            c["tls"] = tls
            let body = String(decoding: try JSONSerialization.data(withJSONObject: ["cluster": c]), as: UTF8.self)
            return try proxy.api("PUT", "/configuration/cluster", body: body)
        }
        let cases: [(Any, [String: Any]?, String)] = [
            (["caFile": missing], nil, "cluster.tls.caFile: cannot read"),
            (["caFile": ca.path("backend.key")], nil, "cluster.tls.caFile: \(ca.path("backend.key")) holds no PEM certificate"),
            (["verify": "yes"], nil, "cluster.tls.verify: must be true or false"),
            (["serverName": "bad name"], nil, "cluster.tls.serverName: must be a DNS name"),
            (["verfy": true], nil, "cluster.tls.verfy"),
            ("on", nil, "cluster.tls"),
            ([:] as [String: Any], ["mode": "CONCURRENT"], "cluster.tls: not allowed on a cluster that mirrors exchanges"),
        ]
        for (tls, mode, message) in cases {
            let (code, text) = try put(tls, mode: mode)
            #expect(code == 400, "\(tls)")
            #expect(text.contains(message), "\(text)")
        }
        // A good one is accepted and shown by GET and /status.
        let (ok, uuid) = try put(["caFile": ca.path("ca.pem"), "serverName": "backend.test"])
        #expect(ok == 202)
        let (_, shown) = try proxy.api("GET", "/configuration/cluster/\(uuid.trimmingCharacters(in: .whitespacesAndNewlines))")
        #expect(shown.contains("\"tls\":{\"caFile\":\"\(ca.path("ca.pem").replacingOccurrences(of: "/", with: "\\/"))\"")
                || shown.contains("\"tls\":{\"caFile\":\"\(ca.path("ca.pem"))\""))
        #expect(shown.contains("\"serverName\":\"backend.test\",\"verify\":true}"))
        let (_, status2) = try proxy.api("GET", "/status")
        #expect(status2.contains("\"serverName\":\"backend.test\""))
    }

    @Test("the state store keeps a cluster's tls across a restart")
    func keptAcrossRestart() throws {
        let ca = try Authority()
        let backend = try TLSBackend(cert: ca.path("backend.pem"), key: ca.path("backend.key"))
        defer { backend.stop() }
        let stateDir = makeStateDirPath()
        defer { try? FileManager.default.removeItem(atPath: stateDir) }
        let args = ["--workers", "1", "--log-level", "INFO", "--state-dir", stateDir]
        let config = ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [1], version: "1.0")])
        let proxy = try ProxyProcess(config: config, arguments: args)
        _ = try proxy.putCluster(Self.cluster(port: backend.port, tls: ["caFile": ca.path("ca.pem"), "serverName": "backend.test"],
                                              version: "2.0"))
        #expect(try ClientConnection(port: proxy.port).get("/before").bodyText == "tls backend path=/before")
        proxy.stop()
        let again = try ProxyProcess(config: config, arguments: args)
        defer { again.stop() }
        let (_, list) = try again.api("GET", "/configuration/cluster")
        #expect(list.contains("\"serverName\":\"backend.test\""))
        #expect(try ClientConnection(port: again.port).get("/after").bodyText == "tls backend path=/after")
    }
}
