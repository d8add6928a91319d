import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// One request over a fresh blocking TCP connection, for command-line tools (not the data
/// plane): connect, send, read until the peer closes, each step bounded by a timeout.
public enum BlockingExchange {
    /// Sends `request` to `address` and returns every byte the peer sent before closing.
    /// The corresponding C functions are `connect`, `send` and `recv` (with `SO_RCVTIMEO`).
    public static func run(_ address: SocketAddress, request: [UInt8], timeoutSeconds: Int = 10) throws(SyscallError) -> [UInt8] {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SyscallError(call: "socket", errno: errno) }
        defer { Glibc.close(fd) }
        var limit = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var storage = address.storage
        let length = address.length
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
        }
        guard rc == 0 else { throw SyscallError(call: "connect", errno: errno) }
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SyscallError(call: "send", errno: errno)
            }
            sent += n
        }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return response }
            if n < 0 {
                if errno == EINTR { continue }
                throw SyscallError(call: "recv", errno: errno)
            }
            response += chunk[0..<n]
        }
    }
}
