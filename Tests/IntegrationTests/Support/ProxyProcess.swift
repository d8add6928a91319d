import Foundation
import Synchronization

/// Errors raised by the test harness itself.
struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Waits until `condition` holds, checking every few milliseconds; throws after `timeout`.
/// A readiness check, not a sleep: it returns as soon as the condition is true.
func waitUntil(_ what: String, timeout: Double = 10, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return }
        usleep(5_000)
    }
    throw HarnessError("timed out after \(timeout)s waiting for \(what)")
}

/// Where the test build put the executables (`.build/<triple>/debug`).
func buildProductsDirectory() -> URL {
    let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    var dir = exe.deletingLastPathComponent()
    // The test binary may sit inside a bundle directory.
    while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("switchyard").path) && dir.path != "/" {
        dir = dir.deletingLastPathComponent()
    }
    return dir
}

/// Runs the switchyard binary to its end (for arguments that make it stop at once); returns
/// its exit status and what it wrote to stderr.
func runSwitchyard(_ arguments: [String]) throws -> (status: Int32, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: switchyardBinary())
    process.arguments = arguments
    let err = Pipe()
    process.standardError = err
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, text)
}

/// The switchyard binary built with the tests.
func switchyardBinary() -> String {
    if let explicit = ProcessInfo.processInfo.environment["SWITCHYARD_BIN"] { return explicit }
    return buildProductsDirectory().appendingPathComponent("switchyard").path
}

/// A running `switchyard` process started with a configuration written to a temp file.
/// Ready once it logged `event=started`; its ports are read from that line.
final class ProxyProcess: @unchecked Sendable {
    let process = Process()
    let configPath: String
    private let stderrText = Locked("")
    private let readerDone = Locked(false)
    private(set) var port = 0
    private(set) var adminPort = 0

    /// The proxy's process id (with a wrapper such as prlimit, which execs it, the same).
    var pid: Int32 { process.processIdentifier }

    /// CPU time (user + system) the process has used, in seconds.
    func cpuSeconds() -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command: state is field 3; utime and stime are fields 14 and 15.
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
    /// Everything the process wrote to stderr so far.
    var log: String { stderrText.withLock { $0 } }

    /// Starts the proxy with `config` (a JSON object; ports 0 = pick free ones).
    /// With `defaultConfigFile`, the file is written as `config.json` in the process's working
    /// directory and no `--config` is given (the 2014 default).
    init(config: [String: Any], arguments: [String] = ["--workers", "1", "--log-level", "INFO"], wrapper: [String] = [],
         defaultConfigFile: Bool = false) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        configPath = dir.appendingPathComponent("config.json").path
        let data = try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])
        try data.write(to: URL(fileURLWithPath: configPath))
        let command = wrapper + [switchyardBinary()] + (defaultConfigFile ? [] : ["--config", configPath]) + arguments
        if defaultConfigFile { process.currentDirectoryURL = dir }
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let handle = pipe.fileHandleForReading
        Thread.detachNewThread { [self] in
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                let s = String(decoding: chunk, as: UTF8.self)
                stderrText.withLock { $0 += s }
            }
            readerDone.withLock { $0 = true }
        }
        do {
            try waitUntil("switchyard to start", timeout: 20) {
                if !process.isRunning { throw HarnessError("switchyard exited early:\n\(log)") }
                return log.contains("event=started")
            }
        } catch {
            stop()
            throw error
        }
        let line = log.split(separator: "\n").first { $0.contains("event=started") } ?? ""
        port = Self.port(after: "proxy=", in: String(line))
        adminPort = Self.port(after: "api=", in: String(line))
    }

    private static func port(after key: String, in line: String) -> Int {
        guard let range = line.range(of: key) else { return 0 }
        let value = line[range.upperBound...].prefix { $0 != " " }
        return Int(value.split(separator: ":").last ?? "") ?? 0
    }

    /// A config with the given clusters (each a cluster object) on free ports.
    static func config(clusters: [[String: Any]], extra: [String: Any] = [:]) -> [String: Any] {
        var config: [String: Any] = [
            "proxy": ["hostname": "127.0.0.1", "port": 0],
            "configService": ["hostname": "127.0.0.1", "port": 0],
            "clusters": clusters.map { ["cluster": $0] },
        ]
        for (k, v) in extra { config[k] = v }
        return config
    }

    /// A cluster object for the config file or the API.
    static func cluster(ports: [Int], version: String, uuid: String? = nil, mode: [String: Any]? = nil) -> [String: Any] {
        var c: [String: Any] = [
            "servers": ports.map { ["hostname": "127.0.0.1", "port": $0] },
            "version": version,
        ]
        if let uuid { c["uuid"] = uuid }
        if let mode { c["upgradeTransition"] = mode }
        return c
    }

    /// Sends SIGTERM and waits for the exit status.
    @discardableResult
    func stop() -> Int32 {
        if process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(15)
            while process.isRunning && Date() < deadline { usleep(5_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: (configPath as NSString).deletingLastPathComponent)
        return process.terminationStatus
    }

    /// Resident set size of the process in bytes.
    func residentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
        let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
        return kb * 1024
    }

    /// Open file descriptors of the process.
    func descriptorCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    /// GET/PUT/DELETE on the admin API: (status, body).
    func api(_ method: String, _ path: String, body: String? = nil, headers: [String: String] = [:]) throws -> (Int, String) {
        let conn = try ClientConnection(port: adminPort)
        defer { conn.close() }
        var request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        for (k, v) in headers { request += "\(k): \(v)\r\n" }
        if let body { request += "Content-Length: \(body.utf8.count)\r\n\r\n\(body)" } else { request += "\r\n" }
        try conn.send(request)
        let response = try conn.readResponse()
        return (response.status, response.bodyText)
    }

    /// PUTs a cluster through the API and returns its uuid.
    func putCluster(_ cluster: [String: Any]) throws -> String {
        let body = String(decoding: try JSONSerialization.data(withJSONObject: ["cluster": cluster]), as: UTF8.self)
        let (status, text) = try api("PUT", "/configuration/cluster", body: body)
        guard status == 202 else { throw HarnessError("PUT failed: \(status) \(text)") }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    deinit {
        if process.isRunning { stop() }
    }
}

/// Runs a command and returns (exit status, stdout).
@discardableResult
func run(_ executable: String, _ arguments: [String], input: Data? = nil) throws -> (Int32, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    let inPipe = Pipe()
    if input != nil { process.standardInput = inPipe }
    try process.run()
    if let input {
        inPipe.fileHandleForWriting.write(input)
        try inPipe.fileHandleForWriting.close()
    }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// The path of a command on PATH, or nil.
func which(_ command: String) -> String? {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let path = "\(dir)/\(command)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}

/// Arguments that run `command` with an empty signal mask. Test threads (Swift's cooperative
/// pool) block every signal, and a child inherits the mask across exec, so a plain child would
/// ignore SIGTERM and SIGINT; this re-opens them before exec.
func withSignalsUnblocked(_ command: [String]) -> (executable: String, arguments: [String]) {
    let script = "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, set()); os.execvp(sys.argv[1], sys.argv[1:])"
    return ("/usr/bin/env", ["python3", "-c", script] + command)
}

/// True when the tests (and so the proxy built with them) run under AddressSanitizer or
/// ThreadSanitizer, whose shadow memory makes RSS checks meaningless.
let underSanitizer: Bool = {
    guard let handle = dlopen(nil, RTLD_NOW) else { return false }
    defer { dlclose(handle) }
    return dlsym(handle, "__asan_init") != nil || dlsym(handle, "__tsan_init") != nil
}()
