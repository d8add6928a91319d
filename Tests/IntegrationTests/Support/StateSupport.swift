import Foundation

/// A fresh, not yet existing state directory path under the temp directory.
func makeStateDirPath() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-state-\(UUID().uuidString)").path
}

/// Runs the switchyard binary to completion (for runs that must refuse to start) and
/// returns its exit status and standard error. Killed after `timeout` seconds.
func runSwitchyard(_ arguments: [String], cwd: String? = nil, timeout: Double = 20) throws -> (status: Int32, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: switchyardBinary())
    process.arguments = arguments
    if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    let err = Pipe()
    process.standardError = err
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(5_000) }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
    let data = err.fileHandleForReading.readDataToEndOfFile()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Writes a configuration object as JSON to `path`.
func writeConfig(_ config: [String: Any], to path: String) throws {
    try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]).write(to: URL(fileURLWithPath: path))
}

extension ProxyProcess {
    /// Kills the process with SIGKILL (no chance to flush or clean up) and waits for it.
    func kill9() {
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
    }

    /// Sends SIGHUP (re-read the configuration file).
    func hangup() { kill(pid, SIGHUP) }

    /// The clusters the API lists, by uuid.
    func clusterList() throws -> [String: [String: Any]] {
        let (status, text) = try api("GET", "/configuration/cluster")
        guard status == 200, let list = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]] else {
            throw HarnessError("GET /configuration/cluster: \(status) \(text)")
        }
        var out: [String: [String: Any]] = [:]
        for entry in list {
            guard let c = entry["cluster"] as? [String: Any], let uuid = c["uuid"] as? String else { continue }
            out[uuid] = c
        }
        return out
    }

    /// `/status` clusters by uuid.
    func statusClusters() throws -> [String: [String: Any]] {
        let (_, text) = try api("GET", "/status")
        let status = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        var out: [String: [String: Any]] = [:]
        for c in status?["clusters"] as? [[String: Any]] ?? [] {
            if let uuid = c["uuid"] as? String { out[uuid] = c }
        }
        return out
    }
}

/// Reads the framing of a journal file (see Sources/Store/Frames.swift): the offsets of
/// its records. Used to tear the last record as a power cut would.
func journalRecordOffsets(_ bytes: [UInt8]) -> [Int] {
    var offsets: [Int] = []
    var offset = 8
    while offset + 12 <= bytes.count {
        let length = Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]) << 16 | Int(bytes[offset + 3]) << 24
        guard length > 0, offset + 12 + length <= bytes.count else { break }
        offsets.append(offset)
        offset += 12 + length
    }
    return offsets
}
