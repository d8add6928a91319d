import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// One message received on a Unix socket: its bytes and the descriptors that came with it
/// (now owned by the receiver, close-on-exec).
public struct ReceivedMessage: Sendable, Equatable {
    public var bytes: [UInt8]
    public var descriptors: [Int32]

    public init(bytes: [UInt8], descriptors: [Int32]) {
        self.bytes = bytes
        self.descriptors = descriptors
    }
}

/// Messages with descriptors attached (`SCM_RIGHTS`) over a connected `SOCK_SEQPACKET` Unix
/// socket: each send is one message, delivered whole, in order. The calls block; they are
/// made from a thread of their own, never from a reactor.
public enum DescriptorChannel {
    /// The most descriptors one message carries (the kernel's `SCM_MAX_FD`).
    public static let maxDescriptors = 253
    /// The largest message `receive` accepts.
    public static let maxMessageBytes = 256 * 1024

    /// A connected pair of blocking, close-on-exec `SOCK_SEQPACKET` sockets.
    /// The corresponding C function is `socketpair`.
    public static func pair() throws(SyscallError) -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        _ = try syscallNonBlocking("socketpair") { cl_seqpacket_pair(&fds) }
        return (fds[0], fds[1])
    }

    /// Sends `bytes` with `descriptors` attached as one message (the descriptors stay open
    /// here: the receiver gets its own copies). Throws on failure, `EMSGSIZE` included.
    /// The corresponding C function is `sendmsg`.
    public static func send(_ socket: Int32, bytes: [UInt8], descriptors: [Int32] = []) throws(SyscallError) {
        precondition(descriptors.count <= maxDescriptors, "too many descriptors in one message")
        while true {
            let sent = bytes.withUnsafeBytes { raw in
                descriptors.withUnsafeBufferPointer { fds in
                    cl_send_with_fds(socket, raw.baseAddress, raw.count, fds.baseAddress, Int32(fds.count))
                }
            }
            if sent >= 0 { return }
            let e = errno
            if e == EINTR { continue }
            throw SyscallError(call: "sendmsg", errno: e)
        }
    }

    /// Receives one message; nil at the end of the stream (the peer closed). A message whose
    /// bytes or descriptors did not fit is an error (`EMSGSIZE`); descriptors that did arrive
    /// with it are closed. The corresponding C function is `recvmsg`.
    public static func receive(_ socket: Int32, maxBytes: Int = maxMessageBytes) throws(SyscallError) -> ReceivedMessage? {
        var buffer = [UInt8](repeating: 0, count: maxBytes)
        var fds = [Int32](repeating: -1, count: maxDescriptors)
        var count: Int32 = 0
        var truncated: Int32 = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { raw in
                cl_recv_with_fds(socket, raw.baseAddress, raw.count, &fds, Int32(maxDescriptors), &count, &truncated)
            }
            if n < 0 {
                let e = errno
                if e == EINTR { continue }
                throw SyscallError(call: "recvmsg", errno: e)
            }
            let descriptors = Array(fds[0..<Int(count)])
            if truncated != 0 {
                for fd in descriptors { Glibc.close(fd) }
                throw SyscallError(call: "recvmsg", errno: EMSGSIZE)
            }
            if n == 0 && descriptors.isEmpty { return nil }
            return ReceivedMessage(bytes: Array(buffer[0..<n]), descriptors: descriptors)
        }
    }

    /// Waits until `socket` has something to read (or its peer hung up): true, or false when
    /// `timeoutMillis` passed first. The corresponding C function is `poll`.
    public static func waitReadable(_ socket: Int32, timeoutMillis: Int) -> Bool {
        cl_wait_readable(socket, Int32(clamping: timeoutMillis)) > 0
    }

    /// Sets or clears close-on-exec on `fd` (a descriptor a child process must inherit).
    public static func setCloseOnExec(_ fd: Int32, _ on: Bool) throws(SyscallError) {
        _ = try syscallNonBlocking("fcntl(F_SETFD)") { cl_set_cloexec(fd, on ? 1 : 0) }
    }

    /// Whether `fd` is an open descriptor of a listening socket.
    public static func isListeningSocket(_ fd: Int32) -> Bool {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &length) == 0 else { return false }
        return value != 0
    }
}

/// Starting and reaping child processes.
public enum ChildProcess {
    /// How a child ended.
    public enum Exit: Sendable, Equatable, CustomStringConvertible {
        case exited(Int32)
        case signalled(Int32)

        public var description: String {
            switch self {
            case .exited(let code): "exited with status \(code)"
            case .signalled(let signal): "killed by signal \(signal)"
            }
        }
    }

    /// The descriptor number `keep` has in a child started by `spawn`.
    public static let keptDescriptor: Int32 = 3

    /// Starts `path` with `arguments` (the first is the program name) and `environment`
    /// (`NAME=value` strings); returns its pid. The child starts with no signal blocked and
    /// only descriptors 0-2, plus `keep` as `keptDescriptor`, open.
    /// The corresponding C function is `posix_spawn`.
    public static func spawn(_ path: String, arguments: [String], environment: [String], keep: Int32 = -1) throws(SyscallError) -> Int32 {
        func cStrings(_ list: [String]) -> [UnsafeMutablePointer<CChar>?] { list.map { strdup($0) } + [nil] }
        let argv = cStrings(arguments)
        let envp = cStrings(environment)
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: Int32 = 0
        let rc = cl_spawn(path, argv, envp, keep, &pid)
        guard rc == 0 else { throw SyscallError(call: "posix_spawn", errno: rc) }
        return pid
    }

    /// How the child ended, or nil while it runs (`wait: false`). With `wait: true`, blocks
    /// until it ends. The corresponding C function is `waitpid`.
    public static func reap(_ pid: Int32, wait: Bool) -> Exit? {
        var status: Int32 = 0
        let rc = cl_wait_child(pid, &status, wait ? 0 : 1)
        guard rc == pid else { return nil }
        // The raw status word as waitpid(2) lays it out (WIFEXITED / WTERMSIG).
        if status & 0x7f == 0 { return .exited((status >> 8) & 0xff) }
        return .signalled(status & 0x7f)
    }

    /// Sends `signal` to `pid`; errors (already gone) are ignored.
    public static func signal(_ pid: Int32, _ signal: Int32) { _ = kill(pid, signal) }

    /// Sends a service-manager notification (`READY=1`, `MAINPID=…`) to the socket named by
    /// `NOTIFY_SOCKET`, as systemd's `sd_notify` does. False when unset or it failed.
    @discardableResult
    public static func notifyServiceManager(_ text: String) -> Bool {
        guard let path = getenv("NOTIFY_SOCKET") else { return false }
        return cl_notify_datagram(path, text) == 0
    }
}
