#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: the call's name and the `errno` it left.
public struct SyscallError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The name of the C function that failed, e.g. `"connect"`.
    public var call: String
    /// The raw `errno` value.
    public var errno: Int32

    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    /// `"connect: Connection refused (errno 111)"`.
    public var description: String {
        "\(call): \(String(cString: strerror(errno))) (errno \(errno))"
    }

    /// True for the errors a peer causes by going away (reset, broken pipe, timeout).
    public var isPeerGone: Bool {
        errno == ECONNRESET || errno == EPIPE || errno == ETIMEDOUT || errno == ENOTCONN
    }
}

/// The outcome of a non-blocking call: a value, or "would block" (`EAGAIN`).
public enum IOResult<T: Sendable>: Sendable {
    case done(T)
    case wouldBlock
}

/// The single funnel every system call goes through: retries `EINTR`, turns
/// `EAGAIN`/`EWOULDBLOCK` into `.wouldBlock`, treats `EBADF`/`EFAULT` as a
/// programming error and throws everything else with the call's name.
@inline(__always)
func syscall<T: FixedWidthInteger & Sendable>(
    _ name: StaticString, _ body: () -> T
) throws(SyscallError) -> IOResult<T> {
    while true {
        let rc = body()
        if rc >= 0 { return .done(rc) }
        let err = Glibc.errno
        switch err {
        case EINTR:
            continue
        case EAGAIN, EWOULDBLOCK:
            return .wouldBlock
        case EBADF, EFAULT:
            preconditionFailure("\(name): \(String(cString: strerror(err))) — a descriptor or buffer bug")
        default:
            throw SyscallError(call: "\(name)", errno: err)
        }
    }
}

/// Like `syscall` for calls that never block: returns the value or throws.
@inline(__always)
func syscallNonBlocking<T: FixedWidthInteger & Sendable>(
    _ name: StaticString, _ body: () -> T
) throws(SyscallError) -> T {
    switch try syscall(name, body) {
    case .done(let value): return value
    case .wouldBlock: throw SyscallError(call: "\(name)", errno: EAGAIN)
    }
}
