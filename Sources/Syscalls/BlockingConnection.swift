#if canImport(Glibc)
import Glibc
#endif

/// A TCP connection for short command-line clients (`switchyard ctl`): every call waits, with
/// a deadline, instead of returning `.wouldBlock`. The descriptor stays non-blocking underneath
/// and the waits are `poll(2)` calls, so a proxy that stops answering ends in a timeout, never
/// in a hang. Not for the reactors.
public struct BlockingConnection: ~Copyable {
    /// Why a call gave up.
    public enum Failure: Error, Sendable, CustomStringConvertible {
        /// The connect failed (refused, unreachable…): the errno's text.
        case connect(String)
        /// Nothing happened before the deadline (`what`: connecting, sending or receiving).
        case timedOut(String)
        /// A read or write failed after the connect.
        case io(String)

        public var description: String {
            switch self {
            case .connect(let why): return why
            case .timedOut(let what): return "timed out \(what)"
            case .io(let why): return why
            }
        }
    }

    let fd: Int32

    /// Connects to `address`, waiting at most `timeoutMillis`.
    public init(connectingTo address: SocketAddress, timeoutMillis: Int32) throws(Failure) {
        let started: (fd: Int32, connected: Bool)
        do {
            started = try Socket.connect(address)
        } catch {
            throw .connect(String(cString: strerror(error.errno)))
        }
        if !started.connected {
            guard Self.wait(started.fd, for: Int16(POLLOUT), millis: timeoutMillis) else {
                Socket.close(started.fd)
                throw .timedOut("connecting to \(address)")
            }
            let err = Socket.pendingError(started.fd)
            if err != 0 {
                Socket.close(started.fd)
                throw .connect(String(cString: strerror(err)))
            }
        }
        fd = started.fd
    }

    deinit { Socket.close(fd) }

    /// The socket, for a layer that moves the bytes itself (TLS); it stays owned (and closed)
    /// by this connection.
    public var descriptor: Int32 { fd }

    /// Waits until the socket is readable (`writable`: writable), or has an error or hang-up
    /// to report; false on timeout. For layers that drive the socket through `descriptor`.
    public func waitUntilReady(writable: Bool, timeoutMillis: Int32) -> Bool {
        Self.wait(fd, for: Int16(writable ? POLLOUT : POLLIN), millis: timeoutMillis)
    }

    /// Sends every byte, waiting at most `timeoutMillis` each time the socket is full.
    public func send(_ bytes: [UInt8], timeoutMillis: Int32) throws(Failure) {
        var offset = 0
        while offset < bytes.count {
            let result: IOResult<Int>
            do {
                result = try Socket.write(fd, bytes: bytes[offset...])
            } catch {
                throw .io(String(cString: strerror(error.errno)))
            }
            switch result {
            case .done(let n): offset += n
            case .wouldBlock:
                guard Self.wait(fd, for: Int16(POLLOUT), millis: timeoutMillis) else { throw .timedOut("sending") }
            }
        }
    }

    /// Receives what arrives next (at most `max` bytes); an empty array means end of stream.
    /// Waits at most `timeoutMillis` for the first byte.
    public func receive(max: Int, timeoutMillis: Int32) throws(Failure) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: max)
        while true {
            let result = buffer.withUnsafeMutableBytes { raw in
                Result { () throws(SyscallError) -> IOResult<Int> in try Socket.read(fd, into: raw) }
            }
            switch result {
            case .failure(let error): throw .io(String(cString: strerror(error.errno)))
            case .success(.done(let n)): return Array(buffer[0..<n])
            case .success(.wouldBlock):
                guard Self.wait(fd, for: Int16(POLLIN), millis: timeoutMillis) else { throw .timedOut("waiting for the answer") }
            }
        }
    }

    /// Waits until `fd` is ready for `events` (or has an error or hang-up to report); false on
    /// timeout. The corresponding C function is `poll`.
    static func wait(_ fd: Int32, for events: Int16, millis: Int32) -> Bool {
        var entry = pollfd(fd: fd, events: events, revents: 0)
        while true {
            let rc = poll(&entry, 1, millis)
            if rc < 0 && errno == EINTR { continue }
            return rc > 0
        }
    }
}
