import Foundation
import HTTP1
import Reactor
import Synchronization
import Syscalls
#if canImport(Glibc)
import Glibc
#endif

/// A process started by `compare` (the proxy, a peer). Each runs in its own process group, so
/// stopping it reaches the workers it forked (nginx) as well.
final class ChildProcess: @unchecked Sendable {
    let name: String
    let pid: pid_t
    /// Where its stdout and stderr go.
    let logPath: String
    private let exited = Atomic<Bool>(false)

    private init(name: String, pid: pid_t, logPath: String) {
        self.name = name
        self.pid = pid
        self.logPath = logPath
    }

    /// Starts `executable` with `arguments`, stdin from /dev/null, stdout and stderr to `logPath`,
    /// default signal dispositions and an empty signal mask (whatever this process blocks or ignores).
    static func spawn(name: String, executable: String, arguments: [String], logPath: String) throws(BenchUsageError) -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGPIPE, SIGHUP, SIGQUIT] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, executable, &actions, &attributes, argv, environ)
        guard rc == 0 else {
            throw BenchUsageError("cannot start \(name) (\(executable)): \(String(cString: strerror(rc)))")
        }
        let child = ChildProcess(name: name, pid: pid, logPath: logPath)
        Cleanup.shared.add(child)
        return child
    }

    /// Whether the process is still running (reaps it when it has exited).
    var isRunning: Bool {
        if exited.load(ordering: .acquiring) { return false }
        var status: Int32 = 0
        let rc = waitpid(pid, &status, WNOHANG)
        if rc == pid || (rc < 0 && errno == ECHILD) {
            exited.store(true, ordering: .releasing)
            return false
        }
        return true
    }

    /// SIGTERM to the process group, then SIGKILL after `grace` seconds if anything is left.
    func stop(grace: Double = 5) {
        guard isRunning else { _ = kill(-pid, SIGKILL); return }
        _ = kill(-pid, SIGTERM)
        let deadline = Clock.nanoseconds() + UInt64(grace * 1e9)
        while Clock.nanoseconds() < deadline {
            if !isRunning { break }
            usleep(20_000)
        }
        // The group may outlive its leader (forked workers): make sure none is left.
        _ = kill(-pid, SIGKILL)
        if isRunning {
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            exited.store(true, ordering: .releasing)
        }
    }

    /// The last `lines` lines of its log (for error messages).
    func logTail(_ lines: Int = 15) -> String {
        guard let text = try? String(contentsOfFile: logPath, encoding: .utf8) else { return "" }
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}

/// Everything that must be undone however the run ends: child processes and temporary directories.
/// Safe to call from the watchdog and signal threads; `run` is idempotent.
final class Cleanup: Sendable {
    static let shared = Cleanup()
    private let state = Mutex<(children: [ChildProcess], directories: [String])>(([], []))

    func add(_ child: ChildProcess) { state.withLock { $0.children.append(child) } }
    func add(directory: String) { state.withLock { $0.directories.append(directory) } }

    /// Stops the children (in reverse start order) and removes the directories.
    func run() {
        let (children, directories) = state.withLock { s -> ([ChildProcess], [String]) in
            let taken = (s.children, s.directories)
            s.children.removeAll()
            s.directories.removeAll()
            return taken
        }
        for child in children.reversed() { child.stop() }
        for directory in directories { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// Removes one directory now and forgets it.
    func remove(directory: String) {
        state.withLock { $0.directories.removeAll { $0 == directory } }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Stops one child now and forgets it.
    func stop(_ child: ChildProcess) {
        state.withLock { $0.children.removeAll { $0 === child } }
        child.stop()
    }

    /// Hands SIGINT and SIGTERM to one thread that cleans up and exits 130 (`command` names the
    /// tool in its line). The mask is inherited by every thread started from here on, and
    /// children get an empty mask (see `ChildProcess.spawn`). Call before starting threads.
    static func onSignals(_ command: String) {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        let blocked = signals
        _ = ReactorThread.start {
            var set = blocked
            var received: Int32 = 0
            sigwait(&set, &received)
            printError("\(command): \(received == SIGINT ? "SIGINT" : "SIGTERM"), stopping")
            shared.run()
            _exit(130)
        }
    }
}

/// A fresh private directory under /tmp, removed by `Cleanup`.
func makeTemporaryDirectory() throws(BenchUsageError) -> String {
    var template = Array("/tmp/switchyard-bench.XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw BenchUsageError("cannot create a temporary directory: \(String(cString: strerror(errno)))") }
    let path = String(cString: made)
    chmod(path, 0o755)  // nginx workers run as nobody when started by root
    Cleanup.shared.add(directory: path)
    return path
}

/// A port that was free a moment ago on 127.0.0.1 (for servers that need a number in a config file).
func freeLoopbackPort() throws(BenchUsageError) -> Int {
    do {
        let fd = try Socket.listen(SocketAddress(host: "127.0.0.1", port: 0)!, reusePort: false)
        defer { Socket.close(fd) }
        return try Socket.localAddress(fd).port
    } catch {
        throw BenchUsageError("cannot find a free port: \(error)")
    }
}

/// One blocking-with-timeout `GET` over a fresh connection, for readiness checks.
enum HTTPProbe {
    /// Returns the status and body size, or nil when nothing valid came back in time.
    static func get(port: Int, path: String, timeoutMillis: Int32 = 2000) -> (status: Int, bodyBytes: Int)? {
        guard let (fd, wait) = connect(port: port, timeoutMillis: timeoutMillis) else { return nil }
        defer { Socket.close(fd) }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            guard let r = try? Socket.write(fd, bytes: request[sent...]) else { return nil }
            if case .done(let n) = r { sent += n } else if !wait(Int16(POLLOUT)) { return nil }
        }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let r = chunk.withUnsafeMutableBytes { try? Socket.read(fd, into: $0) }
            guard let r else { return nil }
            switch r {
            case .wouldBlock:
                if !wait(Int16(POLLIN)) { return nil }
            case .done(0):
                return parsed(response)
            case .done(let n):
                response += chunk[0..<n]
            }
        }
    }

    /// A connection to 127.0.0.1:`port`, connected within `timeoutMillis`, and a wait for
    /// readiness (`POLLIN`/`POLLOUT`) that fails once that time is spent. The caller closes
    /// the descriptor.
    static func connect(port: Int, timeoutMillis: Int32) -> (fd: Int32, wait: (Int16) -> Bool)? {
        guard let address = SocketAddress(host: "127.0.0.1", port: port),
              let (fd, connected) = try? Socket.connect(address) else { return nil }
        let deadline = Clock.nanoseconds() + UInt64(timeoutMillis) * 1_000_000
        let wait = { (events: Int16) -> Bool in
            let now = Clock.nanoseconds()
            guard now < deadline else { return false }
            var p = pollfd(fd: fd, events: events, revents: 0)
            return poll(&p, 1, Int32((deadline - now) / 1_000_000) + 1) > 0
        }
        if !connected {
            guard wait(Int16(POLLOUT)), Socket.pendingError(fd) == 0 else {
                Socket.close(fd)
                return nil
            }
        }
        return (fd, wait)
    }

    /// Status and body size of a whole response (read to the end of the stream).
    static func parsed(_ response: [UInt8]) -> (status: Int, bodyBytes: Int)? {
        var parser = HeadParser()
        var head = ResponseHead()
        let status = response.withUnsafeBytes { parser.parseResponse($0, requestMethod: .get, into: &head) }
        guard case .complete(let length) = status else { return nil }
        return (head.status, response.count - length)
    }

    /// Polls until `GET path` answers 200 or `seconds` pass; true when it did.
    static func waitReady(port: Int, path: String, seconds: Double, alive: () -> Bool = { true }) -> Bool {
        let deadline = Clock.nanoseconds() + UInt64(seconds * 1e9)
        while Clock.nanoseconds() < deadline {
            if let r = get(port: port, path: path, timeoutMillis: 1000), r.status == 200 { return true }
            guard alive() else { return false }
            usleep(50_000)
        }
        return false
    }
}
