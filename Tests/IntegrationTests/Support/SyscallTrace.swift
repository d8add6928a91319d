import Foundation
import Testing

/// `strace` attached to a running process, counting the bytes each traced system call
/// returned: how a body crossed the proxy (spliced, teed, or copied through user space).
final class SyscallTrace {
    private let tracer = Process()
    private let file: String

    /// Attaches to `pid`, tracing `calls` (e.g. `["splice", "tee", "write"]`), and returns once
    /// attached. Nil (with an issue recorded) when strace is not installed.
    init?(pid: Int32, calls: [String], directory: String) throws {
        guard let strace = which("strace") else {
            Issue.record("strace is not installed (.ci/run installs it)")
            return nil
        }
        file = "\(directory)/trace-\(UUID().uuidString).txt"
        let command = withSignalsUnblocked([strace, "-f", "-qq", "-e", "trace=" + calls.joined(separator: ","), "-o", file, "-p", String(pid)])
        tracer.executableURL = URL(fileURLWithPath: command.executable)
        tracer.arguments = command.arguments
        tracer.standardError = FileHandle.nullDevice
        try tracer.run()
        // strace attaches asynchronously: a traced process shows its tracer in /proc.
        try waitUntil("strace to attach") {
            let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
            return status.split(separator: "\n").contains { $0.hasPrefix("TracerPid:") && !$0.hasSuffix("\t0") }
        }
    }

    /// Detaches and returns the bytes returned per call name (successful calls only).
    func stop() -> [String: Int] {
        tracer.interrupt()
        tracer.waitUntilExit()
        let trace = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: file)
        var bytes: [String: Int] = [:]
        for line in trace.split(separator: "\n") {
            // "1234  splice(12, NULL, 15, NULL, 1048576, SPLICE_F_MOVE|SPLICE_F_NONBLOCK) = 65536"
            guard let open = line.firstIndex(of: "("), let eq = line.range(of: " = ", options: .backwards),
                  let n = Int(line[eq.upperBound...].prefix { $0.isNumber }) else { continue }
            let name = line[..<open].split(separator: " ").last.map(String.init) ?? ""
            bytes[name, default: 0] += n
        }
        return bytes
    }
}
