import Foundation

/// A real etcd started for a test: loopback ports, data in a temporary directory. It can be
/// stopped and started again on the same ports and data (an outage).
final class EtcdProcess: @unchecked Sendable {
    let clientPort: Int
    let peerPort: Int
    let dataDir: String
    private var process: Process?

    /// The etcd binary, or nil when it is not installed (the fleet tests are then skipped).
    static var binary: String? { which("etcd") }

    var endpoint: String { "http://127.0.0.1:\(clientPort)" }

    init() throws {
        clientPort = TestBackend.closedPort()
        peerPort = TestBackend.closedPort()
        dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-etcd-\(UUID().uuidString)").path
        try start()
    }

    /// Starts etcd and waits until it answers a read.
    func start() throws {
        guard let binary = Self.binary else { throw HarnessError("etcd is not installed") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["--name", "test", "--data-dir", dataDir,
                       "--listen-client-urls", endpoint, "--advertise-client-urls", endpoint,
                       "--listen-peer-urls", "http://127.0.0.1:\(peerPort)", "--initial-advertise-peer-urls", "http://127.0.0.1:\(peerPort)",
                       "--initial-cluster", "test=http://127.0.0.1:\(peerPort)", "--log-level", "error"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        try waitUntil("etcd to answer", timeout: 20) {
            if !p.isRunning { throw HarnessError("etcd exited at start") }
            return (try? post("/v3/kv/range", #"{"key":"AA=="}"#).0) == 200
        }
    }

    /// Stops etcd (SIGKILL: as if its machine went away).
    func stop() {
        guard let p = process else { return }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        process = nil
    }

    /// Stops etcd and removes its data.
    func destroy() {
        stop()
        try? FileManager.default.removeItem(atPath: dataDir)
    }

    /// One POST to the gateway: (status, body).
    func post(_ path: String, _ body: String) throws -> (Int, String) {
        let conn = try ClientConnection(port: clientPort, timeout: 2)
        defer { conn.close() }
        try conn.send("POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        let r = try conn.readResponse()
        return (r.status, r.bodyText)
    }

    deinit { destroy() }
}

/// Three (or more) switchyard instances sharing one etcd.
final class Fleet: @unchecked Sendable {
    let etcd: EtcdProcess
    var members: [ProxyProcess?]
    let prefix = "/fleet-test/"
    let clusters: [[String: Any]]
    let leaseSeconds: Int
    let extra: [String: Any]

    init(size: Int = 3, clusters: [[String: Any]], leaseSeconds: Int = 2, extra: [String: Any] = [:]) throws {
        etcd = try EtcdProcess()
        self.clusters = clusters
        self.leaseSeconds = leaseSeconds
        self.extra = extra
        members = []
        for i in 1...size { members.append(try start(i)) }
    }

    /// Starts instance `i` (named `i<i>`).
    func start(_ i: Int) throws -> ProxyProcess {
        var settings: [String: Any] = [
            "state": ["store": "etcd", "endpoints": [etcd.endpoint], "prefix": prefix, "instance": "i\(i)", "leaseSeconds": leaseSeconds],
            "comparisons": ["ignoreHeaders": ["Date", "Server", "X-Backend"]],
        ]
        for (k, v) in extra { settings[k] = v }
        let config = ProxyProcess.config(clusters: clusters, extra: settings)
        return try ProxyProcess(config: config, arguments: ["--workers", "1", "--log-level", "INFO"])
    }

    func member(_ i: Int) -> ProxyProcess { members[i - 1]! }
    var live: [ProxyProcess] { members.compactMap { $0 } }

    /// `/status` of a member.
    static func status(_ p: ProxyProcess) throws -> [String: Any] {
        let (code, text) = try p.api("GET", "/status")
        guard code == 200, let o = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw HarnessError("status: \(code) \(text)")
        }
        return o
    }

    static func store(_ p: ProxyProcess) throws -> [String: Any] { try status(p)["store"] as? [String: Any] ?? [:] }

    /// The live members' `/status` clusters by uuid.
    static func clusters(_ p: ProxyProcess) throws -> [String: [String: Any]] {
        var out: [String: [String: Any]] = [:]
        for case let c as [String: Any] in try status(p)["clusters"] as? [Any] ?? [] { out[c["uuid"] as? String ?? ""] = c }
        return out
    }

    /// Waits until one member leads; returns its index (1-based).
    func leader(timeout: Double = 10) throws -> Int {
        var found = 0
        try waitUntil("a leader", timeout: timeout) {
            for (i, m) in members.enumerated() {
                if let m, (try? Self.store(m)["leading"] as? Bool) == true { found = i + 1; return true }
            }
            return false
        }
        return found
    }

    func stop() {
        for m in live { m.stop() }
        etcd.destroy()
    }
}

/// Median and maximum of durations in milliseconds, for the figures the tests print.
func medianAndMax(_ values: [Double]) -> (median: Double, max: Double) {
    let sorted = values.sorted()
    return (sorted.isEmpty ? 0 : sorted[sorted.count / 2], sorted.last ?? 0)
}
