import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// Readiness bits reported by epoll.
public struct EpollEvents: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let readable = EpollEvents(rawValue: CL_EPOLLIN)
    public static let writable = EpollEvents(rawValue: CL_EPOLLOUT)
    public static let error = EpollEvents(rawValue: CL_EPOLLERR)
    public static let hangup = EpollEvents(rawValue: CL_EPOLLHUP)
    public static let readHangup = EpollEvents(rawValue: CL_EPOLLRDHUP)
    public static let edgeTriggered = EpollEvents(rawValue: CL_EPOLLET)
}

/// One epoll instance. Registration data is an opaque 64-bit token chosen by the caller.
public struct Epoll: ~Copyable {
    public let fd: Int32
    private var data: [UInt64]
    private var events: [UInt32]

    /// Creates the instance (close-on-exec). The corresponding C function is `epoll_create1`.
    public init(maxEvents: Int = 256) throws(SyscallError) {
        fd = try syscallNonBlocking("epoll_create1") { cl_epoll_create() }
        data = [UInt64](repeating: 0, count: maxEvents)
        events = [UInt32](repeating: 0, count: maxEvents)
    }

    deinit { Glibc.close(fd) }

    /// Registers `descriptor` for `interest` with `token`.
    public func add(_ descriptor: Int32, interest: EpollEvents, token: UInt64) throws(SyscallError) {
        _ = try syscallNonBlocking("epoll_ctl(ADD)") { cl_epoll_ctl(fd, CL_EPOLL_CTL_ADD, descriptor, interest.rawValue, token) }
    }

    /// Changes the interest set of a registered descriptor.
    public func modify(_ descriptor: Int32, interest: EpollEvents, token: UInt64) throws(SyscallError) {
        _ = try syscallNonBlocking("epoll_ctl(MOD)") { cl_epoll_ctl(fd, CL_EPOLL_CTL_MOD, descriptor, interest.rawValue, token) }
    }

    /// Removes a descriptor (closing it also removes it).
    public func remove(_ descriptor: Int32) {
        _ = cl_epoll_ctl(fd, CL_EPOLL_CTL_DEL, descriptor, 0, 0)
    }

    /// Waits up to `timeoutMillis` (-1: forever); returns how many descriptors are ready
    /// (read them with `event(at:)` before the next wait). Dispatching happens outside this
    /// call so handlers may register and remove descriptors while events are handled.
    public mutating func wait(timeoutMillis: Int32) throws(SyscallError) -> Int {
        let max = Int32(data.count)
        let epfd = fd
        let n: Int32 = data.withUnsafeMutableBufferPointer { d in
            events.withUnsafeMutableBufferPointer { e in
                cl_epoll_wait(epfd, d.baseAddress, e.baseAddress, max, timeoutMillis)
            }
        }
        if n < 0 {
            let err = Glibc.errno
            if err == EINTR { return 0 }
            throw SyscallError(call: "epoll_wait", errno: err)
        }
        return Int(n)
    }

    /// The token and readiness of the i-th event of the last `wait`.
    @inline(__always)
    public func event(at index: Int) -> (token: UInt64, events: EpollEvents) {
        (data[index], EpollEvents(rawValue: events[index]))
    }
}

/// A non-blocking eventfd used to wake a reactor from another thread.
public enum EventFD {
    /// Creates one. The corresponding C function is `eventfd`.
    public static func make() throws(SyscallError) -> Int32 {
        try syscallNonBlocking("eventfd") { cl_eventfd() }
    }
    /// Adds one to the counter (wakes the epoll waiting on it).
    public static func signal(_ fd: Int32) {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { Glibc.write(fd, $0.baseAddress, 8) }
    }
    /// Resets the counter.
    public static func drain(_ fd: Int32) {
        var value: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &value) { Glibc.read(fd, $0.baseAddress, 8) }
    }
}
