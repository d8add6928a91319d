import HTTP1
import Syscalls

/// One etcd member's client URL (`http://host:port`).
public struct EtcdEndpoint: Equatable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    /// Reads `http://host:port` (a trailing slash allowed); nil for anything else (no TLS).
    public init?(url: String) {
        guard url.hasPrefix("http://") else { return nil }
        var rest = url.dropFirst("http://".count)
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        var host = String(rest[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, !host.contains("/") else { return nil }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "http://[\(host)]:\(port)" : "http://\(host):\(port)" }
}

/// A blocking client of etcd's HTTP/JSON gateway, for one thread outside the reactors (the
/// fleet's writer, its watcher, its lease keeper each have their own). It keeps one
/// connection alive and moves to the next endpoint when a call fails; every call has a
/// deadline. Requests and answers go through the project's HTTP/1 parser.
public final class EtcdClient {
    public let endpoints: [EtcdEndpoint]
    /// Deadline of one call (connect, send, answer), in milliseconds.
    public var timeoutMillis: Int
    private var fd: Int32 = -1
    private var current = 0
    private var buffer: [UInt8] = []

    public init(endpoints: [EtcdEndpoint], timeoutMillis: Int = 2000) {
        precondition(!endpoints.isEmpty)
        self.endpoints = endpoints
        self.timeoutMillis = timeoutMillis
    }

    deinit { close() }

    /// Drops the connection (the next call connects again).
    public func close() {
        if fd >= 0 { Socket.close(fd) }
        fd = -1
        buffer.removeAll(keepingCapacity: true)
    }

    // MARK: Calls

    /// `/v3/kv/range`.
    public func range(_ key: String, prefix: Bool = false) throws(EtcdError) -> (revision: Int64, kvs: [EtcdKeyValue]) {
        try EtcdWire.decodeRange(call("/v3/kv/range", EtcdWire.range(key: key, prefix: prefix)))
    }

    /// `/v3/kv/txn`.
    public func txn(_ txn: EtcdTxn) throws(EtcdError) -> (succeeded: Bool, revision: Int64) {
        try EtcdWire.decodeTxn(call("/v3/kv/txn", EtcdWire.txn(txn)))
    }

    /// `/v3/kv/put`; returns the revision after it.
    @discardableResult
    public func put(_ key: String, _ value: [UInt8], lease: Int64 = 0) throws(EtcdError) -> Int64 {
        try EtcdWire.decodeTxn(call("/v3/kv/put", EtcdWire.put(key: key, value: value, lease: lease))).revision
    }

    /// `/v3/lease/grant`.
    public func grant(ttlSeconds: Int) throws(EtcdError) -> Int64 {
        try EtcdWire.decodeGrant(call("/v3/lease/grant", EtcdWire.leaseGrant(ttlSeconds: ttlSeconds))).id
    }

    /// `/v3/lease/keepalive` (one refresh); returns the TTL left, 0 when the lease expired.
    public func keepAlive(_ id: Int64) throws(EtcdError) -> Int64 {
        var messages = StreamMessages()
        let lines = try messages.append(call("/v3/lease/keepalive", EtcdWire.lease(id: id)) + [UInt8(ascii: "\n")])
        guard let first = lines.first else { throw EtcdError("etcd: empty keepalive answer") }
        return try EtcdWire.decodeKeepAlive(first)
    }

    /// `/v3/lease/revoke` (its keys are deleted at once).
    public func revoke(_ id: Int64) throws(EtcdError) {
        _ = try call("/v3/lease/revoke", EtcdWire.lease(id: id))
    }

    /// Sends one POST and returns the whole answer's body (chunked bodies de-chunked). A
    /// failure closes the connection and moves on to the next endpoint for the next call.
    public func call(_ path: String, _ body: [UInt8]) throws(EtcdError) -> [UInt8] {
        var out: [UInt8] = []
        do {
            try exchange(path, body, deadline: deadline()) { (chunk: ArraySlice<UInt8>) throws(EtcdError) -> Bool in
                out.append(contentsOf: chunk)
                return true
            }
        } catch {
            fail()
            throw error
        }
        return out
    }

    /// Opens a stream (`/v3/watch`) on this client's connection and hands each message to
    /// `onMessage` until it returns false, `keepGoing` returns false (asked about once a
    /// second while the stream is quiet), or the stream fails (thrown). The connection is
    /// closed afterwards.
    public func stream(_ path: String, _ body: [UInt8], keepGoing: () -> Bool,
                       onMessage: ([UInt8]) throws(EtcdError) -> Bool) throws(EtcdError) {
        var messages = StreamMessages()
        defer { fail() }
        try exchange(path, body, deadline: deadline(), stream: true, idle: keepGoing) { (chunk: ArraySlice<UInt8>) throws(EtcdError) -> Bool in
            for message in try messages.append(chunk) {
                if try !onMessage(message) { return false }
            }
            return true
        }
    }

    // MARK: Connection

    private func deadline() -> UInt64 { Clock.nanoseconds() + UInt64(timeoutMillis) * 1_000_000 }

    private func fail() {
        close()
        current = (current + 1) % endpoints.count
    }

    private func remainingMillis(_ deadline: UInt64) throws(EtcdError) -> Int32 {
        let now = Clock.nanoseconds()
        guard now < deadline else { throw EtcdError("etcd at \(endpoints[current]) did not answer within \(timeoutMillis) ms") }
        return Int32(min((deadline - now) / 1_000_000 + 1, 1000))
    }

    private func connect(_ deadline: UInt64) throws(EtcdError) {
        guard fd < 0 else { return }
        let endpoint = endpoints[current]
        guard let address = SocketAddress(host: endpoint.host, port: endpoint.port) else {
            throw EtcdError("cannot resolve etcd endpoint \(endpoint)")
        }
        do {
            let (socket, connected) = try Socket.connect(address)
            fd = socket
            if !connected {
                while !Socket.wait(fd, writable: true, timeoutMillis: try remainingMillis(deadline)) {}
                let err = Socket.pendingError(fd)
                if err != 0 { throw SyscallError(call: "connect", errno: err) }
            }
        } catch let error as SyscallError {
            close()
            throw EtcdError("cannot connect to etcd at \(endpoint): \(error)")
        } catch let error as EtcdError {
            close()
            throw error
        } catch {
            close()
            throw EtcdError("\(error)")
        }
    }

    private func send(_ bytes: [UInt8], deadline: UInt64) throws(EtcdError) {
        var sent = 0
        while sent < bytes.count {
            do {
                switch try Socket.write(fd, bytes: bytes[sent...]) {
                case .done(let n): sent += n
                case .wouldBlock: _ = Socket.wait(fd, writable: true, timeoutMillis: try remainingMillis(deadline))
                }
            } catch let error as SyscallError {
                throw EtcdError("etcd at \(endpoints[current]): \(error)")
            } catch let error as EtcdError {
                throw error
            } catch {
                throw EtcdError("\(error)")
            }
        }
    }

    /// Reads more bytes into `buffer`. Returns false at the peer's end of stream. With
    /// `idle`, waits without a deadline, asking `idle` once a second whether to go on.
    private func receive(deadline: UInt64, waiting: Bool = false, idle: () -> Bool = { true }) throws(EtcdError) -> Bool {
        var scratch = [UInt8](repeating: 0, count: 16384)
        while true {
            let result: IOResult<Int>
            do {
                result = try scratch.withUnsafeMutableBytes { (p: UnsafeMutableRawBufferPointer) throws(SyscallError) -> IOResult<Int> in
                    try Socket.read(fd, into: p)
                }
            } catch {
                throw EtcdError("etcd at \(endpoints[current]): \(error)")
            }
            switch result {
            case .done(let n):
                if n == 0 { return false }
                buffer.append(contentsOf: scratch[0..<n])
                return true
            case .wouldBlock:
                if waiting {
                    if !Socket.wait(fd, writable: false, timeoutMillis: 1000), !idle() {
                        throw EtcdError("stopped")
                    }
                } else {
                    _ = Socket.wait(fd, writable: false, timeoutMillis: try remainingMillis(deadline))
                }
            }
        }
    }

    /// One request and its answer, the body handed over piece by piece (`onBody` returns
    /// false to stop reading). A status other than 200 is thrown with the answer's text.
    private func exchange(_ path: String, _ body: [UInt8], deadline: UInt64, stream: Bool = false, idle: () -> Bool = { true },
                          onBody: (ArraySlice<UInt8>) throws(EtcdError) -> Bool) throws(EtcdError) {
        try connect(deadline)
        let endpoint = endpoints[current]
        try send(EtcdWire.requestHead(path: path, host: "\(endpoint.host):\(endpoint.port)", bodyLength: body.count) + body, deadline: deadline)
        var parser = HeadParser()
        var head = ResponseHead()
        var headLength = 0
        while true {
            let status = buffer.withUnsafeBytes { parser.parseResponse($0, requestMethod: .post, into: &head) }
            if case .complete(let n) = status { headLength = n; break }
            if case .error(let e) = status { throw EtcdError("etcd at \(endpoint) answered a malformed head: \(e)") }
            guard try receive(deadline: deadline) else { throw EtcdError("etcd at \(endpoint) closed the connection") }
        }
        buffer.removeFirst(headLength)
        var error: [UInt8]? = head.status == 200 ? nil : []
        func deliver(_ bytes: ArraySlice<UInt8>) throws(EtcdError) -> Bool {
            if error != nil { error! += bytes; return true }
            return try onBody(bytes)
        }
        // A stream waits for its next message without a deadline; a call's body has one.
        let streaming = stream && head.status == 200
        switch head.framing {
        case .none:
            break
        case .contentLength(let length):
            var left = Int(length)
            while left > 0 {
                if buffer.isEmpty, try !receive(deadline: deadline, waiting: streaming, idle: idle) {
                    throw EtcdError("etcd at \(endpoint) closed the connection mid-answer")
                }
                let n = min(left, buffer.count)
                let go = try deliver(buffer[0..<n])
                buffer.removeFirst(n)
                left -= n
                if !go { return }
            }
        case .chunked:
            var decoder = ChunkedDecoder()
            var data: UInt64 = 0
            while true {
                if buffer.isEmpty, try !receive(deadline: deadline, waiting: streaming, idle: idle) {
                    throw EtcdError("etcd at \(endpoint) closed the connection mid-answer")
                }
                if data > 0 {
                    let n = Int(min(data, UInt64(buffer.count)))
                    let go = try deliver(buffer[0..<n])
                    buffer.removeFirst(n)
                    data -= UInt64(n)
                    if !go { return }
                    continue
                }
                let (consumed, event) = buffer.withUnsafeBytes { decoder.decode($0) }
                buffer.removeFirst(consumed)
                switch event {
                case .needMore: continue
                case .chunkData(let n): data = n
                case .end:
                    if let error { throw EtcdError("etcd at \(endpoint) answered \(head.status): \(String(decoding: error, as: UTF8.self))") }
                    return
                case .error(let e): throw EtcdError("etcd at \(endpoint) sent malformed chunks: \(e)")
                }
            }
        case .untilClose:
            while try receive(deadline: deadline, waiting: streaming, idle: idle) {
                let go = try deliver(buffer[...])
                buffer.removeAll(keepingCapacity: true)
                if !go { return }
            }
            close()
        }
        if let error { throw EtcdError("etcd at \(endpoint) answered \(head.status): \(String(decoding: error, as: UTF8.self))") }
        if !head.keepAlive { close() }
    }
}
