import HTTP1
import Observability
import Proxy
import Reactor
import Syscalls
import TLS

/// A request to the control plane, fully read (head and body).
public struct AdminRequest: Sendable {
    public var method: String
    /// The path without the query string.
    public var path: String
    public var query: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    /// The first header with this name (case-insensitive).
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }

    /// True when the query string has `name=true` (or `name=1`, or a bare `name`).
    public func queryFlag(_ name: String) -> Bool {
        query.split(separator: "&").contains { part in
            let kv = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard kv.first.map(String.init) == name else { return false }
            return kv.count == 1 || ["true", "1", "yes"].contains(kv[1].lowercased())
        }
    }
}

/// A response from the control plane.
public struct AdminResponse: Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]
    public var extraHeaders: [String] = []

    public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: [UInt8], extraHeaders: [String] = []) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.extraHeaders = extraHeaders
    }

    /// A plain-text response: the message and a newline.
    public static func text(_ status: Int, _ message: String) -> AdminResponse {
        AdminResponse(status: status, body: Array((message + "\n").utf8))
    }

    /// A JSON response.
    public static func json(_ status: Int, _ bytes: [UInt8]) -> AdminResponse {
        AdminResponse(status: status, contentType: "application/json", body: bytes)
    }

    /// The response's bytes on the wire.
    func serialized(close: Bool) -> [UInt8] {
        var head = "HTTP/1.1 \(status) \(HeadWriter.reasonPhrase(status))\r\n"
        head += "Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n"
        for line in extraHeaders { head += line + "\r\n" }
        if close { head += "Connection: close\r\n" }
        head += "\r\n"
        return Array(head.utf8) + body
    }
}

/// A small HTTP/1.1 server for the control plane, on its own event loop. Requests are read
/// whole (bodies up to `maxBodyBytes`, else 413) and answered by `handler` on the loop's thread.
/// With `tls`, every connection first completes a TLS handshake (within `handshakeNanos`) and
/// requests and responses then go through its `TLSConnection`.
public final class AdminHTTPServer: EventHandler, @unchecked Sendable {
    let loop: EventLoop
    let listenerFD: Int32
    let maxBodyBytes: Int
    let headLimits: HeadLimits
    let handler: (AdminRequest) -> AdminResponse
    /// The API's certificates (`configService.tls`); nil: plain HTTP.
    let tls: TLSEndpoint?
    /// How long a client may take to finish its TLS handshake.
    let handshakeNanos: UInt64
    fileprivate var connections: [Int32: AdminConnection] = [:]

    public init(loop: EventLoop, listenerFD: Int32, maxBodyBytes: Int, tls: TLSEndpoint? = nil,
                handshakeNanos: UInt64 = 10_000_000_000, handler: @escaping (AdminRequest) -> AdminResponse) {
        self.loop = loop
        self.listenerFD = listenerFD
        self.maxBodyBytes = maxBodyBytes
        self.headLimits = HeadLimits(requireHost: false, underscores: .allow)
        self.tls = tls
        self.handshakeNanos = handshakeNanos
        self.handler = handler
    }

    /// Registers the listener; call on the loop's thread.
    public func start() throws(SyscallError) {
        try loop.registerListener(listenerFD, handler: self)
    }

    private var paused = false
    /// Set once `stopAccepting` closed this process's copy of the listener.
    private var stopped = false

    /// Stops accepting and closes this process's copy of the listener; call on the loop's thread.
    func stopAccepting() {
        guard !stopped else { return }
        stopped = true
        if !paused { loop.pauseListener(listenerFD) }
        Socket.close(listenerFD)
    }

    public func handleEvent(fd: Int32, events: EpollEvents) {
        guard fd == listenerFD else { return }
        while true {
            let accepted: IOResult<(Int32, SocketAddress)>
            do {
                accepted = try Socket.accept(listenerFD)
            } catch {
                // Out of descriptors (EMFILE/ENFILE): stop listening for a moment rather
                // than spin on a level-triggered listener we cannot drain.
                pause()
                return
            }
            guard case .done(let (client, address)) = accepted else { return }
            var secure: TLSConnection?
            if let tls {
                // The certificates in force now; a reload later does not disturb this connection.
                guard let made = TLSConnection(context: tls.context, fd: client) else {
                    Log.error("admin_tls_handshake_failed", ["client": "\(address)", "reason": "OpenSSL could not make a connection"])
                    Socket.close(client)
                    continue
                }
                secure = made
            }
            let connection = AdminConnection(server: self, fd: client, clientAddress: secure == nil ? "" : "\(address)", tls: secure)
            connections[client] = connection
            do {
                try loop.register(client, handler: connection)
                loop.addToSweep(connection)
            } catch {
                connections[client] = nil
                Socket.close(client)
            }
        }
    }

    private func pause() {
        guard !paused else { return }
        paused = true
        loop.pauseListener(listenerFD)
        loop.schedule(after: 100_000_000) { [self] in
            paused = false
            guard !stopped else { return }
            try? loop.registerListener(listenerFD, handler: self)
        }
    }

    fileprivate func closed(_ connection: AdminConnection) {
        loop.removeFromSweep(connection)
        loop.unregister(connection.fd)
        Socket.close(connection.fd)
        connections[connection.fd] = nil
    }
}

/// One control-plane client connection, plain or over TLS.
final class AdminConnection: EventHandler, DeadlineHandler {
    unowned let server: AdminHTTPServer
    let fd: Int32
    var sweepIndex = -1
    /// The client's address for TLS log lines (empty on a plain listener, which logs none).
    private let clientAddress: String
    /// The connection's TLS layer; nil on a plain API listener.
    private let tls: TLSConnection?
    /// True until the TLS handshake is done (always false on a plain listener).
    private var handshaking: Bool
    /// Where decrypted bytes land before they join `input`.
    private var plaintext: ByteBuffer?
    private var input: [UInt8] = []
    private var output: [UInt8] = []
    private var outputOffset = 0
    private var closeAfterWrite = false
    private var parser: HeadParser
    private var head = RequestHead()
    private var deadline: UInt64
    private var closed = false
    private static let timeoutNanos: UInt64 = 30_000_000_000

    init(server: AdminHTTPServer, fd: Int32, clientAddress: String, tls: TLSConnection?) {
        self.server = server
        self.fd = fd
        self.clientAddress = clientAddress
        self.tls = tls
        handshaking = tls != nil
        parser = HeadParser(limits: server.headLimits)
        deadline = server.loop.now &+ (tls != nil ? server.handshakeNanos : Self.timeoutNanos)
    }

    func checkDeadline(now: UInt64) {
        guard now >= deadline else { return }
        if handshaking { handshakeFailed("not completed in time") }
        close()
    }

    func handleEvent(fd: Int32, events: EpollEvents) {
        if tls != nil {
            // OpenSSL may need either direction at any step (and holds bytes read ahead that
            // no edge will announce), so every event drives the whole connection.
            if handshaking { stepHandshake() }
            if !handshaking && !closed { readAllTLS() }
            if !closed { flush() }
            return
        }
        if events.contains(.readable) || events.contains(.readHangup) || events.contains(.hangup) { readAll() }
        if !closed { flush() }
    }

    // MARK: TLS

    /// Advances the handshake; once it is done the connection reads requests like a plain one.
    private func stepHandshake() {
        guard let tls else { return }
        switch tls.handshake() {
        case .wantRead, .wantWrite:
            return
        case .failed(let reason):
            handshakeFailed(reason)
            close()
        case .done:
            handshaking = false
            server.tls?.handshakes.add(1, ordering: .relaxed)
            if tls.resumed { server.tls?.resumed.add(1, ordering: .relaxed) }
            deadline = server.loop.now &+ Self.timeoutNanos
        }
    }

    /// Counts and logs a handshake that failed or ran out of time (a plain HTTP request sent
    /// to the TLS port ends here: OpenSSL reports it as "http request").
    private func handshakeFailed(_ reason: String) {
        server.tls?.failures.add(1, ordering: .relaxed)
        let why = reason.hasSuffix("http request") ? "a plain HTTP request on the API's TLS port (use https://)" : reason
        Log.info("admin_tls_handshake_failed", ["client": clientAddress, "reason": why])
    }

    /// Decrypts everything OpenSSL and the socket hold into `input`, answering requests as
    /// they complete.
    private func readAllTLS() {
        guard let tls else { return }
        let buffer = plaintext ?? ByteBuffer(capacity: 16384)
        plaintext = buffer
        while !closed {
            buffer.clear()
            switch tls.read(into: buffer) {
            case .done(let n) where n > 0:
                input.append(contentsOf: buffer.readable)
                deadline = server.loop.now &+ Self.timeoutNanos
                processInput()
            case .done, .wantRead, .wantWrite:
                return
            case .closed, .failed:
                close()
                return
            }
        }
    }

    /// Sends what `output` holds from `outputOffset` through the socket or TLS; nil when the
    /// connection broke.
    private func send() -> IOResult<Int>? {
        guard let tls else { return try? Socket.write(fd, bytes: output[outputOffset...]) }
        let transfer = output.withUnsafeBytes { raw in tls.write(UnsafeRawBufferPointer(rebasing: raw[outputOffset...])) }
        switch transfer {
        case .done(let n): return .done(n)
        case .wantRead, .wantWrite: return .wouldBlock
        case .closed, .failed: return nil
        }
    }

    private func readAll() {
        var chunk = [UInt8](repeating: 0, count: 16384)
        while !closed {
            let result = chunk.withUnsafeMutableBytes { raw in Result { () throws(SyscallError) in try Socket.read(fd, into: raw) } }
            switch result {
            case .success(.done(0)), .failure:
                close()
                return
            case .success(.done(let n)):
                input.append(contentsOf: chunk[0..<n])
                deadline = server.loop.now &+ Self.timeoutNanos
                processInput()
            case .success(.wouldBlock):
                return
            }
        }
    }

    private func processInput() {
        while !closed && output.isEmpty && !input.isEmpty {
            let status = input.withUnsafeBytes { parser.parseRequest($0, into: &head) }
            switch status {
            case .incomplete:
                return
            case .error(let error):
                respond(.text(error.status, error.message), close: true)
                return
            case .complete(let headLength):
                var bodyLength = 0
                switch head.framing {
                case .none: bodyLength = 0
                case .contentLength(let n):
                    guard n <= UInt64(server.maxBodyBytes) else {
                        respond(.text(413, "request body larger than \(server.maxBodyBytes) bytes"), close: true)
                        return
                    }
                    bodyLength = Int(n)
                case .chunked, .untilClose:
                    respond(.text(411, "a Content-Length is required"), close: true)
                    return
                }
                guard input.count >= headLength + bodyLength else { return }
                let request = input.withUnsafeBytes { raw in makeRequest(raw, headLength: headLength, bodyLength: bodyLength) }
                input.removeFirst(headLength + bodyLength)
                parser.reset()
                let response = server.handler(request)
                respond(response, close: !head.keepAlive)
            }
        }
    }

    private func makeRequest(_ raw: UnsafeRawBufferPointer, headLength: Int, bodyLength: Int) -> AdminRequest {
        func text(_ range: Range<Int>) -> String { String(decoding: raw[range], as: UTF8.self) }
        let target = text(head.targetRange)
        let path: String
        let query: String
        if let q = target.firstIndex(of: "?") {
            path = String(target[..<q])
            query = String(target[target.index(after: q)...])
        } else {
            path = target
            query = ""
        }
        let headers = head.headers.map { (name: text($0.nameRange), value: text($0.valueRange)) }
        return AdminRequest(method: text(head.methodRange), path: path, query: query, headers: headers,
                            body: Array(raw[headLength..<headLength + bodyLength]))
    }

    private func respond(_ response: AdminResponse, close: Bool) {
        output = response.serialized(close: close)
        outputOffset = 0
        closeAfterWrite = close
        flush()
    }

    private func flush() {
        while outputOffset < output.count {
            guard let result = send() else { close(); return }
            switch result {
            case .done(let n): outputOffset += n
            case .wouldBlock: return
            }
        }
        if !output.isEmpty {
            output.removeAll()
            outputOffset = 0
            if closeAfterWrite {
                tls?.shutdown()
                Socket.shutdownWrite(fd)
                close()
                return
            }
            processInput()
        }
    }

    private func close() {
        guard !closed else { return }
        closed = true
        server.closed(self)
    }
}
