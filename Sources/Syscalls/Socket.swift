import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// A socket address (IPv4 or IPv6) held by value.
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    var storage: sockaddr_storage
    var length: socklen_t

    /// A numeric address, or a host name resolved with getaddrinfo.
    /// Returns nil when the name does not resolve.
    public init?(host: String, port: Int) {
        guard (0...65535).contains(port) else { return nil }
        var storage = sockaddr_storage()
        var length = cl_make_sockaddr(host, UInt16(port), &storage)
        if length == 0 {
            if cl_resolve(host, UInt16(port), &storage, &length) != 0 { return nil }
        }
        self.storage = storage
        self.length = length
    }

    /// Every address `host` stands for (a numeric address is its own single address), in
    /// the resolver's order without repeats, at most 64. Empty when the name does not resolve.
    /// Blocks while the system resolver works: never call it on a reactor.
    public static func resolveAll(host: String, port: Int) -> [SocketAddress] {
        guard (0...65535).contains(port) else { return [] }
        var storage = sockaddr_storage()
        let numeric = cl_make_sockaddr(host, UInt16(port), &storage)
        if numeric != 0 { return [SocketAddress(storage: storage, length: numeric)] }
        let cap = 64
        var storages = [sockaddr_storage](repeating: sockaddr_storage(), count: cap)
        var lengths = [socklen_t](repeating: 0, count: cap)
        let n = cl_resolve_all(host, UInt16(port), &storages, &lengths, Int32(cap))
        guard n > 0 else { return [] }
        var out: [SocketAddress] = []
        for i in 0..<Int(n) {
            let address = SocketAddress(storage: storages[i], length: lengths[i])
            if !out.contains(address) { out.append(address) }
        }
        return out
    }

    init(storage: sockaddr_storage, length: socklen_t) {
        self.storage = storage
        self.length = length
    }

    /// The address without the port, e.g. `127.0.0.1` or `::1`.
    public var host: String { formatted().host }

    /// The port number.
    public var port: Int { formatted().port }

    /// `127.0.0.1:8080` or `[::1]:8080`.
    public var description: String {
        let (host, port) = formatted()
        return storage.ss_family == sa_family_t(AF_INET6) ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    private func formatted() -> (host: String, port: Int) {
        var text = [CChar](repeating: 0, count: 64)
        var port: UInt16 = 0
        var copy = storage
        let n = cl_format_address(&copy, &text, Int32(text.count), &port)
        if n <= 0 { return ("?", 0) }
        return (String(decoding: text[0..<Int(n)].map { UInt8(bitPattern: $0) }, as: UTF8.self), Int(port))
    }

    public static func == (a: SocketAddress, b: SocketAddress) -> Bool {
        a.description == b.description
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(description) }

    var family: Int32 { Int32(storage.ss_family) }
}

/// Socket calls on raw descriptors. Every descriptor is non-blocking and close-on-exec.
public enum Socket {
    /// Opens a listening TCP socket; `reusePort` lets one listener per reactor share the port.
    /// The corresponding C functions are `socket`, `bind` and `listen`.
    public static func listen(_ address: SocketAddress, reusePort: Bool, backlog: Int32 = 4096) throws(SyscallError) -> Int32 {
        let fd = try syscallNonBlocking("socket") { cl_socket(address.family, Int32(SOCK_STREAM.rawValue)) }
        do {
            _ = try syscallNonBlocking("setsockopt(SO_REUSEADDR)") { cl_set_reuseaddr(fd) }
            if reusePort { _ = try syscallNonBlocking("setsockopt(SO_REUSEPORT)") { cl_set_reuseport(fd) } }
            var storage = address.storage
            let length = address.length
            _ = try syscallNonBlocking("bind") {
                withUnsafePointer(to: &storage) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) }
                }
            }
            _ = try syscallNonBlocking("listen") { Glibc.listen(fd, backlog) }
        } catch {
            Glibc.close(fd)
            throw error
        }
        return fd
    }

    /// The address a socket is bound to (to learn the port after binding port 0).
    public static func localAddress(_ fd: Int32) throws(SyscallError) -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try syscallNonBlocking("getsockname") {
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
        }
        return SocketAddress(storage: storage, length: length)
    }

    /// Accepts one connection: the new descriptor and the client's address, or `.wouldBlock`.
    /// The corresponding C function is `accept4`.
    public static func accept(_ fd: Int32) throws(SyscallError) -> IOResult<(Int32, SocketAddress)> {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = try syscall("accept4") {
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { cl_accept(fd, $0, &length) }
            }
        }
        switch result {
        case .done(let client): return .done((client, SocketAddress(storage: storage, length: length)))
        case .wouldBlock: return .wouldBlock
        }
    }

    /// Starts a non-blocking connect. Returns the descriptor and whether it is already connected
    /// (`false`: wait for writability, then call `connectResult`).
    public static func connect(_ address: SocketAddress) throws(SyscallError) -> (fd: Int32, connected: Bool) {
        let fd = try syscallNonBlocking("socket") { cl_socket(address.family, Int32(SOCK_STREAM.rawValue)) }
        _ = cl_set_nodelay(fd)
        var storage = address.storage
        let length = address.length
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
        }
        if rc == 0 { return (fd, true) }
        let err = Glibc.errno
        if err == EINPROGRESS || err == EINTR { return (fd, false) }
        Glibc.close(fd)
        throw SyscallError(call: "connect", errno: err)
    }

    /// The pending error of a socket (`SO_ERROR`): 0 once a connect succeeded.
    public static func pendingError(_ fd: Int32) -> Int32 { cl_get_socket_error(fd) }

    /// Disables Nagle's algorithm.
    public static func setNoDelay(_ fd: Int32) { _ = cl_set_nodelay(fd) }

    /// Reads into `buffer`: bytes read (0 = end of stream) or `.wouldBlock`.
    /// The corresponding C function is `read`.
    @inline(__always)
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SyscallError) -> IOResult<Int> {
        try syscall("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// Writes from `buffer`: bytes written or `.wouldBlock`. The corresponding C function is `send` (MSG_NOSIGNAL).
    @inline(__always)
    public static func write(_ fd: Int32, from buffer: UnsafeRawBufferPointer) throws(SyscallError) -> IOResult<Int> {
        try syscall("send") { Glibc.send(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Writes an array's bytes (see `write(_:from:)`).
    @inline(__always)
    public static func write(_ fd: Int32, bytes: ArraySlice<UInt8>) throws(SyscallError) -> IOResult<Int> {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(SyscallError) -> IOResult<Int> in try write(fd, from: raw) }
        }
        return try result.get()
    }

    /// Half-closes the sending side (`shutdown(SHUT_WR)`); errors are ignored.
    public static func shutdownWrite(_ fd: Int32) { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }

    /// Closes a descriptor. `close` is not retried on EINTR on Linux (the fd is gone either way).
    public static func close(_ fd: Int32) { _ = Glibc.close(fd) }

    /// A connected pair of non-blocking, close-on-exec Unix stream sockets (a TLS session's
    /// decrypted bytes cross it to the code that serves plain connections).
    /// The corresponding C function is `socketpair`.
    public static func pair() throws(SyscallError) -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        _ = try syscallNonBlocking("socketpair") { Glibc.socketpair(AF_UNIX, type, 0, &fds) }
        return (fds[0], fds[1])
    }

    /// Bytes waiting in the socket's receive queue (`FIONREAD`), -1 on error.
    public static func bytesAvailable(_ fd: Int32) -> Int { Int(cl_ioctl_fionread(fd)) }
}
