import Dispatch
import Glibc
import Observability
import Proxy
import Synchronization
import Syscalls
import Testing

/// Collects what a worker hands over.
final class CollectingSink: ConnectionSink, @unchecked Sendable {
    let received = Mutex<[(fd: Int32, address: String)]>([])
    func handOver(fd: Int32, clientAddress: String) { received.withLock { $0.append((fd, clientAddress)) } }
}

/// A worker's side of a self-upgrade, with real sockets in one process: two proxy servers
/// stand for the old and the new process.
@Suite struct HandoverTests {
    static func server() throws -> ProxyServer {
        let server = try ProxyServer(listen: SocketAddress(host: "127.0.0.1", port: 0)!, workers: 1, settings: ProxySettings(),
                                     snapshot: Snapshot(generation: 1, clusters: []), metrics: ProxyMetrics(reactors: 1))
        server.start()
        return server
    }

    /// A blocking client connected to `port`, with a receive timeout.
    static func connect(_ port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { throw SyscallError(call: "connect", errno: errno) }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    static func send(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
    }

    static func receiveStatusLine(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return "" }
        return String(decoding: buffer[0..<n], as: UTF8.self).components(separatedBy: "\r\n").first ?? ""
    }

    /// Waits until the worker has `count` connections (read on its own thread).
    static func waitForConnections(_ server: ProxyServer, _ count: Int) throws {
        for _ in 0..<500 {
            let seen = Mutex(-1)
            let done = DispatchSemaphore(value: 0)
            server.workers[0].loop.execute { seen.withLock { $0 = server.workers[0].sessionCount }; done.signal() }
            done.wait()
            if seen.withLock({ $0 }) == count { return }
            usleep(2000)
        }
        throw SyscallError(call: "wait for \(count) connections", errno: ETIMEDOUT)
    }

    @Test func idleConnectionMovesAndIsServedByTheAdopter() throws {
        let old = try Self.server()
        let client = try Self.connect(old.port)
        defer { close(client) }
        try Self.waitForConnections(old, 1)
        let sink = CollectingSink()
        let counts = Mutex<HandoverCounts?>(nil)
        old.beginHandover(to: sink) { c in counts.withLock { $0 = c } }
        old.join()   // the worker's loop ends once it has no connection left
        #expect(counts.withLock { $0?.handedOver } == 1)
        let handed = sink.received.withLock { $0 }
        #expect(handed.count == 1)
        #expect(handed.first?.address == "127.0.0.1")

        let new = try Self.server()
        defer { new.stopAndWait() }
        new.adoptConnection(fd: handed[0].fd, clientAddress: handed[0].address)
        try Self.waitForConnections(new, 1)
        // No cluster in this snapshot: the adopter's own 503 proves it serves the connection.
        Self.send(client, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(Self.receiveStatusLine(client) == "HTTP/1.1 503 Service Unavailable")
    }

    @Test func connectionWithBytesReadStaysAndIsFinishedHere() throws {
        let old = try Self.server()
        let client = try Self.connect(old.port)
        defer { close(client) }
        Self.send(client, "GET / HTTP/1.1\r\n")
        try Self.waitForConnections(old, 1)
        usleep(50_000)  // let the worker read the partial head into its buffer
        let sink = CollectingSink()
        let counts = Mutex<HandoverCounts?>(nil)
        old.beginHandover(to: sink) { c in counts.withLock { $0 = c } }
        #expect(sink.received.withLock { $0.count } == 0)
        Self.send(client, "Host: t\r\n\r\n")
        #expect(Self.receiveStatusLine(client) == "HTTP/1.1 503 Service Unavailable")
        old.join()
        #expect(counts.withLock { $0?.handedOver } == 0)
        #expect(counts.withLock { $0?.finishedHere } == 1)
    }
}
