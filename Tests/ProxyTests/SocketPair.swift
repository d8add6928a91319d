import Glibc
import Syscalls

/// A connected pair of non-blocking stream sockets (the two ends of one connection).
struct SocketPair {
    let a: Int32
    let b: Int32

    init() {
        var fds: [Int32] = [0, 0]
        let rc = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds)
        precondition(rc == 0)
        a = fds[0]
        b = fds[1]
    }

    func close() {
        Glibc.close(a)
        Glibc.close(b)
    }
}

/// Writes all of `bytes` to a non-blocking socket that has room.
func put(_ fd: Int32, _ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        precondition(n > 0, "socket buffer full in a test")
        offset += n
    }
}

func put(_ fd: Int32, _ text: String) { put(fd, Array(text.utf8)) }

/// Reads whatever is waiting on a non-blocking socket.
func take(_ fd: Int32) -> [UInt8] {
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { return out }
        out += buffer[0..<n]
    }
}
