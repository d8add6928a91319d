import Foundation
import Testing

/// Large bodies: byte-exact through the proxy, spliced (not copied through user space),
/// with flat memory. Uses Python's http.server as an independent backend and curl as client.
@Suite("Large bodies", .serialized)
struct LargeBodyTests {
    /// A directory with a file of `size` pseudo-random bytes, and its SHA-256.
    static func makeFile(size: Int, name: String) throws -> (dir: String, sha: String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-big-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = "\(dir)/\(name)"
        let (rc, _) = try run("/usr/bin/env", ["sh", "-c", "head -c \(size) /dev/urandom > '\(path)'"])
        guard rc == 0 else { throw HarnessError("cannot write \(path)") }
        let sha = try run("/usr/bin/env", ["sha256sum", path]).1.split(separator: " ").first.map(String.init) ?? ""
        return (dir, sha)
    }

    /// Python's http.server on a free port, serving `dir`.
    final class PythonServer {
        let process = Process()
        let port: Int
        init(directory: String) throws {
            let port = TestBackend.closedPort()
            let command = withSignalsUnblocked(["python3", "-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", directory])
            process.executableURL = URL(fileURLWithPath: command.executable)
            process.arguments = command.arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            self.port = port
            try waitUntil("python http.server") { (try? BlockingSocket(port: port)) != nil }
        }
        func stop() { process.terminate(); process.waitUntilExit() }
    }

    @Test("a 256 MiB download arrives byte-exact, with flat proxy memory")
    func bigDownload() throws {
        let size = 256 << 20
        let (dir, sha) = try Self.makeFile(size: size, name: "big.bin")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try PythonServer(directory: dir)
        defer { server.stop() }
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [server.port], version: "1.0")]))
        defer { proxy.stop() }
        _ = try run("/usr/bin/env", ["curl", "-s", "-o", "/dev/null", "http://127.0.0.1:\(proxy.port)/big.bin"])
        try Self.expectDownload(through: proxy, path: "/big.bin", sha: sha)
    }

    /// Downloads `path` through the proxy with curl and checks its SHA-256, and that the
    /// proxy's RSS stayed flat meanwhile (skipped under sanitizers, whose own bookkeeping grows it).
    static func expectDownload(through proxy: ProxyProcess, path: String, sha: String) throws {
        let before = proxy.residentBytes()
        let (rc, out) = try run("/usr/bin/env", ["sh", "-c", "curl -sf http://127.0.0.1:\(proxy.port)\(path) | sha256sum"])
        let after = proxy.residentBytes()
        #expect(rc == 0)
        #expect(out.split(separator: " ").first.map(String.init) == sha)
        if !underSanitizer {
            #expect(after - before < 16 << 20, "RSS grew from \(before) to \(after)")
        }
    }

    @Test("an 8 MiB chunked upload arrives byte-exact")
    func chunkedUpload() throws {
        let (dir, sha) = try Self.makeFile(size: 8 << 20, name: "up.bin")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let backend = try TestBackend { request, socket in
            let chunked = request.header("Transfer-Encoding") ?? "none"
            try TestBackend.respond(socket, headers: ["X-Request-Framing: \(chunked)"], body: request.body)
            return true
        }
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [backend.port], version: "1.0")]))
        defer { proxy.stop(); backend.stop() }
        let (rc, out) = try run("/usr/bin/env", ["sh", "-c",
            "curl -sf -H 'Transfer-Encoding: chunked' -H 'Expect:' --data-binary @\(dir)/up.bin http://127.0.0.1:\(proxy.port)/upload | sha256sum"])
        #expect(rc == 0)
        #expect(out.split(separator: " ").first.map(String.init) == sha)
        #expect(backend.requests.first?.header("Transfer-Encoding") == "chunked")
    }

    @Test("a large body moves with splice(2), not through read/write in user space")
    func bodyIsSpliced() throws {
        let size = 64 << 20
        let (dir, sha) = try Self.makeFile(size: size, name: "s.bin")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try PythonServer(directory: dir)
        defer { server.stop() }
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [server.port], version: "1.0")]))
        defer { proxy.stop() }
        guard let trace = try SyscallTrace(pid: proxy.pid, calls: ["read", "recvfrom", "sendto", "write", "splice"], directory: dir) else { return }
        let (_, out) = try run("/usr/bin/env", ["sh", "-c", "curl -sf http://127.0.0.1:\(proxy.port)/s.bin | sha256sum"])
        let bytes = trace.stop()
        #expect(out.split(separator: " ").first.map(String.init) == sha)
        let spliced = bytes["splice", default: 0]
        let copied = ["read", "recvfrom", "sendto", "write"].reduce(0) { $0 + bytes[$1, default: 0] }
        // Each body byte is spliced twice (socket→pipe, pipe→socket).
        #expect(spliced >= 2 * (size - 65536), "spliced \(spliced) bytes")
        #expect(copied < 1 << 20, "copied through user space: \(copied) bytes")
    }
}
