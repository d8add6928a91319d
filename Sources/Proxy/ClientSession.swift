import Comparator
import HTTP1
import Observability
import Reactor
import Routing
import Syscalls
import TLS

/// One client connection and the exchanges on it, driven by readiness events on the
/// client's descriptor and on the backend connection it currently uses.
///
/// A session serves its connection only while a request is read or served: between
/// exchanges, with nothing buffered, it detaches and goes back to the worker's pool, and the
/// `ClientConnection` alone (a few dozen bytes) waits for the next request. So memory follows
/// active exchanges, not open connections, while the exchange code keeps its state inline.
///
/// The session is a loop over non-blocking calls (`drive`): each event sets a readiness
/// flag, and `drive` makes all the progress the flags allow. Requests on one connection
/// are handled one at a time, in order (pipelined requests wait in the buffer).
final class ClientSession: EventHandler {
    /// What the session is doing.
    enum State {
        /// Waiting for (the rest of) a request head; idle between exchanges.
        case readingHead
        /// A request is being forwarded and its response relayed.
        case exchange
        /// After `101 Switching Protocols`: bytes flow both ways until a side closes.
        case tunnel
        /// Writing a final error response, then closing.
        case closingAfterWrite
        /// Closed; every resource has been returned.
        case closed
        /// Back in the worker's pool: the connection went idle (see `detachIfIdle`).
        case detached
    }

    /// Which deadline the sweep is checking.
    enum DeadlineKind { case idle, head, connect, response, body, drain }

    /// The worker owns its sessions and outlives them, so no reference counting is needed
    /// here (`unowned(unsafe)`: the hot path touches it several times per exchange).
    unowned(unsafe) let worker: Worker
    /// The connection served, set by `attach` (its owner while attached).
    unowned(unsafe) var connection: ClientConnection?
    var fd: Int32 = -1
    var clientAddress = ""
    /// The connection's TLS when it came through a TLS listener without kTLS: the client's
    /// bytes are read and written through it (see `BodyFlow`'s `tlsSource`/`tlsDestination`).
    /// The connection owns it (no reference counting here, as for `connection`).
    unowned(unsafe) var tls: TLSConnection?
    /// `tls` is set; the plain path tests only this flag (see `BodyFlow.throughTLS`).
    var throughTLS = false

    var state = State.readingHead
    var client = Readiness()
    var buffer: ByteBuffer?
    var parser: HeadParser
    var request = RequestHead()

    var deadline: UInt64 = 0
    var deadlineKind = DeadlineKind.idle

    // The exchange in flight.
    var cluster: ClusterRuntime?
    /// The exchange's `RouteChoice.gradualLatest` (whose threshold its success raises).
    var gradualLatest: ClusterRuntime?
    var backend: BackendLink?
    var backendBuffer: ByteBuffer?
    var responseParser: HeadParser
    var response = ResponseHead()
    var requestFlow: BodyFlow?
    var responseFlow: BodyFlow?
    var requestDone = false
    var responseDone = false
    var responseStarted = false
    var interimResponse = false
    var upgradeAccepted = false
    var closeAfterExchange = false
    /// A `100 Continue` reached the client during this exchange.
    var continueRelayed = false
    /// The final response came before the client sent any of the body it announced with
    /// `Expect: 100-continue`: the client will not send it, so the session goes on without it
    /// (the backend connection, which still expects it, is not reused).
    var requestBodyWithdrawn = false
    /// Head bytes left in the buffer until the response begins (bodiless requests), so a
    /// request that met a dead pooled connection can be sent again.
    var headHeldInBuffer = 0
    /// An absolute-form target (`http://host/path`) is forwarded in origin form with the
    /// authority as Host (RFC 9112 3.2.2).
    var absoluteTarget: (authority: String, path: String)?
    var setCookies: [UInt8] = []
    /// Storage for the forwarded heads, kept (empty, with its capacity) across exchanges so a
    /// keep-alive session writes its heads without allocating.
    var spareRequestHead: [UInt8] = []
    var spareResponseHead: [UInt8] = []
    var exchangeStart: UInt64 = 0
    /// The exchange's request id: the client's valid X-Request-Id, or one made here.
    var requestID: [UInt8] = []
    /// The id was made here, so the forwarded head carries it.
    var requestIDMade = false
    /// The access record of the exchange being logged (kept across exchanges; nil while the
    /// access log is off or nothing was sampled yet).
    var access: AccessEntry?
    var attempts = 0
    var status = 0

    // CONCURRENT: the previous version's connection and the comparison of both answers.
    var shadow: BackendLink?
    var shadowCluster: ClusterRuntime?
    var comparison: PendingComparison?
    /// Which version's response is served: 1 = the latest, 0 = the previous (after a fallback).
    var servedSide = 1
    /// CONCURRENT serving old (a rollout's dark launch): the old version answers the client
    /// whatever happens; the new one is never served, only compared.
    var darkLaunch = false
    /// When the served version's final response head arrived (0: not yet): its latency as
    /// rollout gates judge it, apart from how fast the client takes the body.
    var responseHeadAt: UInt64 = 0
    /// The served response was chosen (its head arrived).
    var decided = false

    // After `101 Switching Protocols`: one flow each way.
    var upstream: BodyFlow?
    var downstream: BodyFlow?
    var upstreamDone = false
    var downstreamDone = false

    init(worker: Worker) {
        self.worker = worker
        parser = HeadParser(limits: worker.settings.headLimits)
        responseParser = HeadParser(limits: HeadLimits(maxHeadBytes: worker.settings.headLimits.maxHeadBytes,
                                                       maxTargetBytes: worker.settings.headLimits.maxTargetBytes,
                                                       maxHeaders: worker.settings.headLimits.maxHeaders,
                                                       requireHost: false))
    }

    /// Takes over `connection`: its descriptor, its readiness and its deadline. The parsers
    /// take the worker's current limits (a reload may have changed them since the last use).
    func attach(_ connection: ClientConnection) {
        self.connection = connection
        parser.limits = worker.settings.headLimits
        responseParser.limits.maxHeadBytes = worker.settings.headLimits.maxHeadBytes
        responseParser.limits.maxTargetBytes = worker.settings.headLimits.maxTargetBytes
        responseParser.limits.maxHeaders = worker.settings.headLimits.maxHeaders
        fd = connection.fd
        clientAddress = connection.clientAddress
        tls = connection.tls
        throughTLS = tls != nil
        client = connection.ready
        deadline = connection.deadline
        deadlineKind = .idle
        state = .readingHead
        servedSide = 1
        darkLaunch = false
        decided = false
        headHeldInBuffer = 0
    }

    /// With nothing buffered and nothing more to read, the session hands the connection back
    /// (readiness and idle deadline) and returns to the worker's pool.
    func detachIfIdle() {
        guard state == .readingHead, buffer == nil, !client.readable, !client.hungUp, let connection else { return }
        state = .detached
        connection.ready = client
        connection.deadline = deadline
        connection.session = nil
        self.connection = nil
        tls = nil
        throughTLS = false
        worker.giveBack(self)
        if worker.handover != nil { worker.handOver(connection) }
    }

    // MARK: Events

    func handleEvent(fd eventFD: Int32, events: EpollEvents) {
        if eventFD == fd {
            if events.contains(.readable) || events.contains(.readHangup) || events.contains(.hangup) || events.contains(.error) {
                client.readable = true
            }
            if events.contains(.writable) || events.contains(.error) { client.writable = true }
            if events.contains(.readHangup) || events.contains(.hangup) { client.hungUp = true }
            // OpenSSL may need either readiness for a read or a write: any event retries both.
            if throughTLS { client.readable = true; client.writable = true }
        } else if backend?.fd == eventFD {
            if events.contains(.readable) || events.contains(.readHangup) || events.contains(.hangup) || events.contains(.error) {
                backend!.ready.readable = true
            }
            if events.contains(.writable) || events.contains(.error) || events.contains(.hangup) { backend!.ready.writable = true }
            if events.contains(.readHangup) || events.contains(.hangup) { backend!.ready.hungUp = true }
            // As for a TLS client: OpenSSL may need either readiness, so any event retries both.
            if backend!.secure { backend!.ready.readable = true; backend!.ready.writable = true }
        } else if shadow?.fd == eventFD {
            if events.contains(.readable) || events.contains(.readHangup) || events.contains(.hangup) || events.contains(.error) {
                shadow!.ready.readable = true
                // Its answer started arriving now, even if it waits in the socket until the
                // served side is decided: that is its own latency, not the comparator's pace.
                if let comparison, comparison.mirroredAnswerAt == 0 { comparison.mirroredAnswerAt = worker.loop.now }
            }
            if events.contains(.writable) || events.contains(.error) || events.contains(.hangup) { shadow!.ready.writable = true }
            if events.contains(.readHangup) || events.contains(.hangup) { shadow!.ready.hungUp = true }
        } else {
            return
        }
        drive()
    }

    /// Acts on an expired deadline; called by the connection's sweep while attached.
    func checkDeadline(now: UInt64) {
        guard state != .closed, now >= deadline else { return }
        switch deadlineKind {
        case .idle:
            close()
        case .head:
            openAccessRecord(parsed: false)
            reject(status: 408, message: "request head not received in time", offset: nil)
            drive()
        case .connect:
            Log.warning("backend_connect_timeout", ["backend": backend.map { worker.backends[$0.backendID].address.description } ?? "?"])
            connectFailed()
            drive()
        case .response:
            if responseStarted { close() } else {
                failExchange(status: 504, message: "backend did not answer in time", backendFault: true)
                drive()
            }
        case .body:
            close()
        case .drain:
            close()
        }
    }

    @inline(__always)
    func setDeadline(_ kind: DeadlineKind, after nanos: UInt64) {
        deadlineKind = kind
        deadline = worker.loop.now &+ nanos
    }

    // MARK: Driving

    /// Makes all the progress the readiness flags allow.
    func drive() {
        while true {
            switch state {
            case .readingHead:
                if !stepReadHead() { return }
            case .exchange:
                if !stepExchange() { return }
            case .tunnel:
                if !stepTunnel() { return }
            case .closingAfterWrite:
                stepClosing()
                return
            case .closed, .detached:
                return
            }
        }
    }

    /// Reads and parses a request head. Returns true when the state changed.
    func stepReadHead() -> Bool {
        if let buffer, buffer.readableCount > 0 {
            switch parser.parseRequest(buffer.readable, into: &request) {
            case .complete:
                startExchange()
                return true
            case .error(let error):
                openAccessRecord(parsed: false)
                reject(status: error.status, message: error.message, offset: error.offset)
                return true
            case .incomplete:
                break
            }
        }
        guard client.readable else {
            if worker.draining && (buffer?.readableCount ?? 0) == 0 { close(); return false }
            return false
        }
        let buffer = self.buffer ?? takeBuffer()
        if buffer.writableCount == 0 {
            buffer.compact()
            if buffer.writableCount == 0 {
                reject(status: 431, message: "request head larger than \(buffer.capacity) bytes", offset: buffer.capacity)
                return true
            }
        }
        let wasEmpty = buffer.readableCount == 0
        let space = buffer.writableCount
        if throughTLS, let tls { return readHead(through: tls, into: buffer, wasEmpty: wasEmpty) }
        do {
            switch try buffer.read(from: fd) {
            case .done(0):
                close()
                return false
            case .done(let n):
                client.noteRead(n, of: space)
                if wasEmpty { setDeadline(.head, after: worker.settings.clientHeadNanos) }
                return true
            case .wouldBlock:
                client.readable = false
                if buffer.readableCount == 0 {
                    releaseClientBuffer()
                    detachIfIdle()
                }
                return false
            }
        } catch {
            close()
            return false
        }
    }

    /// `stepReadHead`'s read on a TLS connection: `SSL_read` returns one record at a time, so
    /// only `.wantRead` says the socket is drained.
    func readHead(through tls: TLSConnection, into buffer: ByteBuffer, wasEmpty: Bool) -> Bool {
        switch tls.read(into: buffer) {
        case .done(let n):
            if wasEmpty && n > 0 { setDeadline(.head, after: worker.settings.clientHeadNanos) }
            return true
        case .wantRead:
            client.readable = false
            if buffer.readableCount == 0 {
                releaseClientBuffer()
                detachIfIdle()
            }
            return false
        case .wantWrite:
            client.writable = false
            return false
        case .closed, .failed:
            close()
            return false
        }
    }

    func takeBuffer() -> ByteBuffer {
        let b = worker.pools.takeBuffer()
        buffer = b
        return b
    }

    func releaseClientBuffer() {
        if let b = buffer, b.readableCount == 0 {
            worker.pools.giveBack(b)
            buffer = nil
        }
    }

    // MARK: Exchange

    func startExchange() {
        exchangeStart = worker.loop.now
        attempts = 0
        requestDone = false
        responseDone = false
        responseStarted = false
        interimResponse = false
        upgradeAccepted = false
        continueRelayed = false
        requestBodyWithdrawn = false
        status = 0
        closeAfterExchange = !request.keepAlive || worker.draining
        state = .exchange
        guard let buffer else { return }
        assignRequestID(buffer.readable)
        openAccessRecord(parsed: true)
        if let refusal = checkTarget(buffer.readable) {
            reject(status: refusal.status, message: refusal.message, offset: request.targetRange.lowerBound)
            return
        }
        if let refusal = checkBody(buffer.readable) {
            reject(status: refusal.status, message: refusal.message, offset: refusal.offset)
            return
        }
        setCookies.removeAll(keepingCapacity: true)
        guard let choice = worker.route(request: request, source: buffer.readable, cookies: &setCookies) else {
            if worker.lastRouteUnmatched {
                failExchange(status: 404, message: "not found", backendFault: false)
            } else {
                failExchange(status: 503, message: "no cluster available", backendFault: false)
            }
            return
        }
        cluster = choice.cluster
        gradualLatest = choice.gradualLatest
        choice.cluster.metrics.blocks[worker.id].add(ClusterCounter.requests)
        headHeldInBuffer = request.headLength
        servedSide = choice.servesOld ? 0 : 1
        darkLaunch = choice.servesOld
        responseHeadAt = 0
        decided = false
        // A TLS backend cannot take a mirrored (spliced, teed) request: the exchange is served
        // by its cluster alone (see README, "TLS to backends").
        if let mirror = choice.shadow, !request.upgrade, mirror.cluster.tls == nil, choice.cluster.tls == nil,
           let link = worker.acquireConnection(backendID: mirror.backendID, for: self) {
            shadow = link
            shadowCluster = mirror.cluster
            let (old, new) = darkLaunch ? (choice.cluster, mirror.cluster) : (mirror.cluster, choice.cluster)
            let pending = PendingComparison(method: String(decoding: buffer.readable[request.methodRange], as: UTF8.self),
                                            target: String(decoding: buffer.readable[request.targetRange], as: UTF8.self),
                                            clusters: (old.spec.uuid, new.spec.uuid), start: exchangeStart,
                                            requestID: String(decoding: requestID, as: UTF8.self), pools: worker.pools)
            pending.mirrored = mirror.cluster
            if darkLaunch { pending.servedBy = "old" }
            if !new.spec.ignoreBodyFor.isEmpty {
                pending.bodyIgnored = new.spec.ignoresBody(path: pending.target.prefix { $0 != "?" })
            }
            comparison = pending
        }
        connect(backendID: choice.backendID)
    }

    /// Accepts origin-form targets, `*` with OPTIONS, and absolute-form `http(s)://authority/path`
    /// (remembered for rewriting); refuses CONNECT and anything else. Nil when acceptable.
    func checkTarget(_ source: UnsafeRawBufferPointer) -> (status: Int, message: String)? {
        absoluteTarget = nil
        if request.method == .connect { return (501, "CONNECT is not supported by this reverse proxy") }
        let target = source[request.targetRange]
        guard let first = target.first else { return (400, "empty request target") }
        if first == UInt8(ascii: "/") { return nil }
        if target.count == 1 && first == UInt8(ascii: "*") {
            return request.method == .options ? nil : (400, "the asterisk target is only valid with OPTIONS")
        }
        let text = String(decoding: target, as: UTF8.self)
        let lower = text.lowercased()
        for scheme in ["http://", "https://"] where lower.hasPrefix(scheme) {
            let rest = text.dropFirst(scheme.count)
            let end = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
            let authority = String(rest[..<end])
            guard !authority.isEmpty, !authority.contains("@") else { return (400, "invalid authority in the request target") }
            var path = String(rest[end...])
            if path.isEmpty || path.first == "?" { path = "/" + path }
            absoluteTarget = (authority, path)
            return nil
        }
        return (400, "request target must be an absolute path, an absolute URI or *")
    }

    /// Refuses, before any backend is involved, a body a backend could misread: a body on GET or
    /// HEAD (unless configured to forward it), and chunked framing that is already invalid in the
    /// bytes that came with the head. Nil when acceptable.
    func checkBody(_ source: UnsafeRawBufferPointer) -> (status: Int, message: String, offset: Int)? {
        switch request.framing {
        case .none, .contentLength(0):
            return nil
        case .contentLength, .chunked, .untilClose:
            break
        }
        if worker.settings.refuseBodiesOnGetAndHead && (request.method == .get || request.method == .head) {
            return (400, "a \(request.method == .get ? "GET" : "HEAD") request must not have a body", request.headLength)
        }
        guard case .chunked = request.framing else { return nil }
        if case .invalid(let error) = ChunkedDecoder.scan(UnsafeRawBufferPointer(rebasing: source[request.headLength...])) {
            return (error.status, error.message, request.headLength + error.offset)
        }
        return nil
    }

    /// Takes a pooled connection or starts a connect, then prepares the request flow.
    func connect(backendID: Int) {
        attempts += 1
        guard let link = worker.acquireConnection(backendID: backendID, for: self) else {
            // Immediate failure (refused synchronously, no descriptor): try elsewhere.
            backend = nil
            retryElsewhere(failedBackend: backendID)
            return
        }
        use(link)
    }

    /// Makes `link` the exchange's backend connection and prepares the request for it.
    func use(_ link: BackendLink) {
        backend = link
        prepareRequestFlow()
        if link.connecting {
            setDeadline(.connect, after: worker.settings.backendConnectNanos)
        } else {
            connectionEstablished()
        }
    }

    /// The backend connection is usable: a request with a body releases its head from the
    /// buffer so the body that follows it can flow.
    func connectionEstablished() {
        if case .none = request.framing {} else if headHeldInBuffer > 0, let buffer {
            buffer.consume(headHeldInBuffer)
            headHeldInBuffer = 0
        }
        setDeadline(.response, after: worker.settings.backendResponseNanos)
    }

    func prepareRequestFlow() {
        guard let buffer else { return }
        var flow = BodyFlow(framing: request.framing)
        swap(&flow.prefix, &spareRequestHead)
        requestID.withUnsafeBytes { id in
            HeadWriter.appendRequest(request, source: buffer.readable, clientAddress: clientAddress,
                                     tunnel: request.upgrade, requestID: requestIDMade ? id : nil,
                                     https: connection?.secure ?? false, to: &flow.prefix)
        }
        if let absolute = absoluteTarget {
            rewriteAbsoluteTarget(absolute, in: &flow.prefix)
        } else if !request.headers.contains(where: { $0.kind == .host }), let link = backend, flow.prefix.count >= 2 {
            // An HTTP/1.0 request may come without Host; it leaves as HTTP/1.1, which needs one.
            flow.prefix.insert(contentsOf: Array("Host: \(worker.backends[link.backendID].address)\r\n".utf8), at: flow.prefix.count - 2)
        }
        if let shadow { flow.mirror(to: shadow.fd) }
        if throughTLS { flow.tlsSource = tls }
        if let link = backend, link.secure { flow.tlsDestination = worker.backendTLS[link.fd] }
        // The head stays in the buffer until the connection is up (a failed connect sent
        // nothing, so the request can go elsewhere) and, for bodiless requests, until the
        // response begins (a dead pooled connection can then be retried).
        headHeldInBuffer = request.headLength
        requestFlow = flow
        requestDone = false
    }

    /// Forwarded head for an absolute-form target: origin-form request line, and the
    /// authority as the only Host (any Host the client sent is replaced).
    func rewriteAbsoluteTarget(_ absolute: (authority: String, path: String), in prefix: inout [UInt8]) {
        guard let lineEnd = prefix.firstIndex(of: 10) else { return }
        let method = String(decoding: prefix[..<(prefix.firstIndex(of: 32) ?? 0)], as: UTF8.self)
        var rebuilt = Array("\(method) \(absolute.path) HTTP/1.1\r\nHost: \(absolute.authority)\r\n".utf8)
        // Copy the header lines except Host.
        var i = lineEnd + 1
        while i < prefix.count {
            let end = prefix[i...].firstIndex(of: 10) ?? (prefix.count - 1)
            let line = prefix[i...end]
            if !(line.count >= 5 && String(decoding: line.prefix(5), as: UTF8.self).lowercased() == "host:") {
                rebuilt.append(contentsOf: line)
            }
            i = end + 1
        }
        prefix = rebuilt
    }

    /// The connect to the current backend failed: mark it down and try another backend
    /// of the cluster, then an older cluster.
    func connectFailed() {
        guard let link = backend else { return }
        dropBackend(reusable: false)
        retryElsewhere(failedBackend: link.backendID)
    }

    func retryElsewhere(failedBackend: Int) {
        if let cluster { worker.backendFailed(failedBackend, cluster: cluster) }
        if shadow != nil && !darkLaunch {
            promoteShadow(reason: "connect failed")
            return
        }
        // A dark launch never serves the new version: the old one is retried alone.
        abandonShadow(reason: "the served version could not be connected", mirroredFailed: false)
        requestFlow?.release(to: worker.pools)
        requestFlow = nil
        guard attempts < worker.maxAttempts, headHeldInBuffer > 0, let buffer else {
            failExchange(status: 502, message: "no backend reachable", backendFault: true)
            return
        }
        setCookies.removeAll(keepingCapacity: true)
        guard let choice = worker.route(request: request, source: buffer.readable, cookies: &setCookies) else {
            failExchange(status: 502, message: "no backend reachable", backendFault: true)
            return
        }
        cluster = choice.cluster
        gradualLatest = choice.gradualLatest
        connect(backendID: choice.backendID)
    }

    /// One pass over the exchange: connect completion, request body, response head,
    /// response body. Returns true when the state changed.
    func stepExchange() -> Bool {
        guard state == .exchange else { return true }
        guard var link = backend else { return false }
        if link.connecting {
            guard link.ready.writable else { return false }
            let error = Socket.pendingError(link.fd)
            if error != 0 {
                connectFailed()
                return true
            }
            if link.secure { return stepBackendHandshake() }
            link.connecting = false
            backend = link
            worker.backendConnected(link.backendID)
            connectionEstablished()
        }

        // Request: head and body to the backend.
        // Flows are pumped in place (no copy of the struct, so no retain/release per call).
        if !requestDone, requestFlow != nil {
            requestFlow!.progressed = false
            let result: FlowStatus
            if shadow != nil {
                result = requestFlow!.pump(source: fd, sourceReady: &client, buffer: buffer, destination: link.fd,
                                           destinationReady: &backend!.ready, mirrorReady: &shadow!.ready, pools: worker.pools)
                if !requestFlow!.mirrorAlive { abandonShadow(reason: "the previous version failed while receiving the request") }
            } else {
                result = requestFlow!.pump(source: fd, sourceReady: &client, buffer: buffer,
                                           destination: link.fd, destinationReady: &backend!.ready, pools: worker.pools)
            }
            let progressed = requestFlow!.progressed
            switch result {
            case .finished:
                requestDone = true
                if !responseStarted { setDeadline(.response, after: worker.settings.backendResponseNanos) }
                startShadowDrainIfDecided()
            case .needsSource, .needsDestination:
                if progressed && !responseStarted { setDeadline(.response, after: worker.settings.bodyIdleNanos) }
            case .failed(.destinationError):
                if mayRetryOnFreshConnection { return retryOnFreshConnection() }
                failExchange(status: 502, message: "backend closed the connection", backendFault: true)
                return true
            case .failed(.badFraming(let error)):
                requestFlow?.release(to: worker.pools)
                dropBackend(reusable: false)
                reject(status: error.status, message: error.message, offset: nil)
                return true
            case .failed:
                // The client vanished or broke off its upload: release both sides at once.
                close()
                return false
            }
        }

        // Response head.
        if !responseDone && responseFlow == nil {
            switch readResponseHead() {
            case .waiting: break
            case .changed: return true
            case .ready: break
            }
        }

        // Response body to the client.
        if !responseDone, responseFlow != nil, let backendFD = backend?.fd {
            responseFlow!.progressed = false
            let result = responseFlow!.pump(source: backendFD, sourceReady: &backend!.ready, buffer: backendBuffer,
                                            destination: fd, destinationReady: &client, pools: worker.pools)
            let progressed = responseFlow!.progressed
            switch result {
            case .finished:
                if interimResponse {
                    interimResponse = false
                    responseFlow = nil
                    responseParser.reset()
                    return true
                }
                if upgradeAccepted {
                    startTunnel()
                    return true
                }
                responseDone = true
            case .needsSource, .needsDestination:
                if progressed { setDeadline(.body, after: worker.settings.bodyIdleNanos) }
                return false
            case .failed(.destinationError):
                close()
                return false
            case .failed:
                // The backend died or sent bad framing mid-body: the client must not take a
                // short body for a complete one, so its connection is closed.
                if let backend { Log.info("backend_body_aborted", ["backend": worker.backends[backend.backendID].address.description]) }
                cluster?.metrics.blocks[worker.id].add(ClusterCounter.backendErrors)
                close()
                return false
            }
        }

        if responseDone {
            if !requestDone {
                // The backend answered before reading the whole request: the rest of the
                // upload cannot be resynchronised, so neither connection is reused.
                closeAfterExchange = true
                requestFlow?.release(to: worker.pools)
                requestFlow = nil
                dropBackend(reusable: false)
            }
            finishExchange()
            return true
        }
        return false
    }

    enum HeadProgress { case waiting, changed, ready }

    /// Reads the backend's response head and prepares the response flow.
    func readResponseHead() -> HeadProgress {
        guard let link = backend, !link.connecting else { return .waiting }
        let rbuf = backendBuffer ?? { let b = worker.pools.takeBuffer(); backendBuffer = b; return b }()
        while true {
            if rbuf.readableCount > 0 {
                switch responseParser.parseResponse(rbuf.readable, requestMethod: request.method, into: &response) {
                case .complete:
                    beginResponse(rbuf)
                    return responseFlow == nil ? .changed : .ready
                case .error(let error):
                    Log.warning("backend_bad_response", ["backend": worker.backends[link.backendID].address.description,
                                                         "error": error.message, "offset": String(error.offset)])
                    failExchange(status: 502, message: "invalid response from backend", backendFault: true)
                    return .changed
                case .incomplete:
                    break
                }
            }
            guard backend!.ready.readable else { return .waiting }
            if rbuf.writableCount == 0 {
                rbuf.compact()
                if rbuf.writableCount == 0 {
                    failExchange(status: 502, message: "response head from backend too large", backendFault: true)
                    return .changed
                }
            }
            if link.secure {
                if let progress = readResponseBytes(through: link, into: rbuf) { return progress }
                continue
            }
            let space = rbuf.writableCount
            do {
                switch try rbuf.read(from: link.fd) {
                case .done(0):
                    if rbuf.readableCount == 0 && !responseStarted && mayRetryOnFreshConnection {
                        return retryOnFreshConnection() ? .changed : .waiting
                    }
                    failExchange(status: 502, message: "backend closed the connection", backendFault: true)
                    return .changed
                case .done(let n):
                    backend!.ready.noteRead(n, of: space)
                case .wouldBlock:
                    backend!.ready.readable = false
                    return .waiting
                }
            } catch {
                if rbuf.readableCount == 0 && !responseStarted && mayRetryOnFreshConnection {
                    return retryOnFreshConnection() ? .changed : .waiting
                }
                failExchange(status: 502, message: "backend reset the connection", backendFault: true)
                return .changed
            }
        }
    }

    /// The response head is complete: rewrite it and start relaying.
    func beginResponse(_ rbuf: ByteBuffer) {
        if headHeldInBuffer > 0, let buffer {
            buffer.consume(headHeldInBuffer)
            headHeldInBuffer = 0
        }
        let isInterim = response.status >= 100 && response.status < 200 && response.status != 101
        if !isInterim { responseHeadAt = worker.loop.now }
        var flow: BodyFlow
        if isInterim {
            if response.status == 100 { continueRelayed = true }
            flow = BodyFlow(framing: .none)
            HeadWriter.appendResponse(response, source: rbuf.readable, extraHeaders: [], close: false,
                                      clientVersionMinor: request.versionMinor, to: &flow.prefix)
            interimResponse = true
        } else if response.status == 101 {
            guard request.upgrade else {
                failExchange(status: 502, message: "backend switched protocols without an upgrade request", backendFault: true)
                return
            }
            flow = BodyFlow(framing: .none)
            HeadWriter.appendResponse(response, source: rbuf.readable, extraHeaders: [], close: false,
                                      clientVersionMinor: request.versionMinor, to: &flow.prefix)
            upgradeAccepted = true
            status = 101
        } else {
            if let comparison {
                if servedSide == 1 && response.status >= 500 && canFallBack {
                    fallBack(newHeadParsed: true, reason: "status \(response.status)")
                    return
                }
                comparison.noteHead(side: servedSide, response, source: rbuf.readable, policy: worker.settings.headerPolicy)
            }
            decided = true
            status = response.status
            if case .untilClose = response.framing { closeAfterExchange = true }
            if worker.draining { closeAfterExchange = true }
            if !requestDone { settleUnsentRequestBody() }
            let dechunked = dechunkedForHTTP10Client(rbuf)
            if let dechunked, dechunked.length == nil { closeAfterExchange = true }
            flow = BodyFlow(framing: response.framing, dechunk: dechunked != nil)
            swap(&flow.prefix, &spareResponseHead)
            if let comparison { flow.tap(comparison.tap, side: servedSide) }
            worker.appendResponseHead(response, source: rbuf.readable, setCookies: setCookies,
                                      close: closeAfterExchange, clientVersionMinor: request.versionMinor,
                                      dechunked: dechunked, to: &flow.prefix)
            access?.responseHeadBytes = flow.prefix.count
        }
        rbuf.consume(response.headLength)
        responseStarted = true
        if throughTLS { flow.tlsDestination = tls }
        if let link = backend, link.secure { flow.tlsSource = worker.backendTLS[link.fd] }
        responseFlow = flow
        setDeadline(.body, after: worker.settings.bodyIdleNanos)
        startShadowDrainIfDecided()
    }

    /// An HTTP/1.0 client cannot read chunked framing (RFC 9112 6.1): its body goes out without
    /// it, with a Content-Length when the whole body is already here, else delimited by close.
    /// Nil when the response is sent as it is framed.
    func dechunkedForHTTP10Client(_ rbuf: ByteBuffer) -> HeadWriter.Dechunked? {
        guard request.versionMinor == 0, case .chunked = response.framing else { return nil }
        let body = UnsafeRawBufferPointer(rebasing: rbuf.readable[response.headLength...])
        if case .complete(let length, _) = ChunkedDecoder.scan(body) { return HeadWriter.Dechunked(length: length) }
        return HeadWriter.Dechunked(length: nil)
    }

    /// The final response arrived before the whole request was sent. A client that asked
    /// `Expect: 100-continue`, got no `100 Continue` and has sent nothing of its body will not
    /// send it (RFC 9110 10.1.1): the exchange ends with the response and the session goes on.
    /// Otherwise the rest of the upload cannot be told from the next request, so the session
    /// closes after this response, and the response says so (`Connection: close`).
    func settleUnsentRequestBody() {
        let untouched = request.expectContinue && !continueRelayed && shadow == nil
            && !(requestFlow?.bodyStarted ?? false) && (buffer?.readableCount ?? 0) == 0 && !client.readable
        guard untouched else {
            closeAfterExchange = true
            return
        }
        requestBodyWithdrawn = true
        requestFlow?.release(to: worker.pools)
        if requestFlow != nil { swap(&spareRequestHead, &requestFlow!.prefix); spareRequestHead.removeAll(keepingCapacity: true) }
        requestFlow = nil
        requestDone = true
    }

    // MARK: Ending an exchange

    /// A pooled connection may have been closed by the backend just before we used it;
    /// a bodiless request that got no response byte is sent again on a new connection.
    var mayRetryOnFreshConnection: Bool {
        guard let link = backend, link.reused, !responseStarted, attempts < worker.maxAttempts, shadow == nil,
              request.method.isIdempotent else { return false }
        if case .none = request.framing { return headHeldInBuffer > 0 }
        return false
    }

    func retryOnFreshConnection() -> Bool {
        guard let link = backend else { return false }
        dropBackend(reusable: false)
        requestFlow?.release(to: worker.pools)
        requestFlow = nil
        responseParser.reset()
        attempts += 1
        guard let fresh = worker.connectNew(backendID: link.backendID, for: self) else {
            retryElsewhere(failedBackend: link.backendID)
            return true
        }
        use(fresh)
        return true
    }

    /// Ends the exchange: accounting, connection reuse, next request or close.
    func finishExchange() {
        closeAccessRecord(status: status)
        endComparison(servedComplete: true, reason: requestDone ? nil : "request not fully sent")
        let latency = worker.loop.now &- exchangeStart
        if let cluster {
            worker.recordOutcome(cluster: cluster, status: status, latencyNanos: latency,
                                 headNanos: responseHeadAt != 0 ? responseHeadAt &- exchangeStart : nil, gradualLatest: gradualLatest)
        }
        let reusable = response.keepAlive && requestDone && !requestBodyWithdrawn && (backendBuffer?.readableCount ?? 0) == 0
            && { if case .untilClose = response.framing { return false }; return true }()
        dropBackend(reusable: reusable)
        requestFlow?.release(to: worker.pools)
        responseFlow?.release(to: worker.pools)
        // Written heads leave their arrays empty with capacity: keep them for the next exchange.
        if requestFlow != nil { swap(&spareRequestHead, &requestFlow!.prefix); spareRequestHead.removeAll(keepingCapacity: true) }
        if responseFlow != nil { swap(&spareResponseHead, &responseFlow!.prefix); spareResponseHead.removeAll(keepingCapacity: true) }
        requestFlow = nil
        responseFlow = nil
        cluster = nil
        if closeAfterExchange || worker.draining {
            close()
            return
        }
        state = .readingHead
        parser.reset()
        responseParser.reset()
        setDeadline(.idle, after: worker.settings.clientIdleNanos)
        if (buffer?.readableCount ?? 0) == 0 {
            releaseClientBuffer()
            detachIfIdle()
        }
    }

    /// Gives the backend connection back to the pool (or closes it) and frees the response buffer.
    func dropBackend(reusable: Bool) {
        if let link = backend {
            if reusable && !link.connecting {
                worker.releaseConnection(link)
            } else {
                worker.discardConnection(link)
            }
            backend = nil
        }
        if let b = backendBuffer {
            worker.pools.giveBack(b)
            backendBuffer = nil
        }
    }

    /// The exchange failed before response bytes reached the client: answer with `status`
    /// and close; after response bytes were sent, just close.
    func failExchange(status: Int, message: String, backendFault: Bool) {
        if backendFault && servedSide == 1 && canFallBack {
            fallBack(newHeadParsed: false, reason: message)
            return
        }
        closeAccessRecord(status: responseStarted ? self.status : status)
        endComparison(servedComplete: false, reason: message)
        if backendFault, let cluster {
            cluster.metrics.blocks[worker.id].add(ClusterCounter.backendErrors)
            worker.recordOutcome(cluster: cluster, status: status, latencyNanos: worker.loop.now &- exchangeStart, gradualLatest: gradualLatest)
        }
        requestFlow?.release(to: worker.pools)
        requestFlow = nil
        responseFlow?.release(to: worker.pools)
        responseFlow = nil
        dropBackend(reusable: false)
        cluster = nil
        if responseStarted {
            close()
            return
        }
        worker.metrics.reject(reactor: worker.id, status: status)
        Log.info("exchange_failed", ["status": String(status), "client": clientAddress, "reason": message])
        startClosingWrite(HeadWriter.errorResponse(status: status, message: message))
    }

    /// Refuses a request the parser rejected (or that timed out): error response, then close.
    func reject(status: Int, message: String, offset: Int?) {
        closeAccessRecord(status: status)
        endComparison(servedComplete: false, reason: message)
        worker.metrics.reject(reactor: worker.id, status: status)
        if Log.enabled(.info) {
            Log.info("request_rejected", ["status": String(status), "client": clientAddress, "reason": message,
                                          "offset": offset.map(String.init) ?? "-"])
        }
        requestFlow?.release(to: worker.pools)
        requestFlow = nil
        responseFlow?.release(to: worker.pools)
        responseFlow = nil
        dropBackend(reusable: false)
        startClosingWrite(HeadWriter.errorResponse(status: status, message: message))
    }

    func startClosingWrite(_ bytes: [UInt8]) {
        var flow = BodyFlow(framing: .none)
        flow.prefix = bytes
        if throughTLS { flow.tlsDestination = tls }
        responseFlow = flow
        state = .closingAfterWrite
        setDeadline(.drain, after: 5_000_000_000)
    }

    func stepClosing() {
        guard var flow = responseFlow else { close(); return }
        var dummy = Readiness()
        let result = flow.pump(source: fd, sourceReady: &dummy, buffer: nil, destination: fd,
                               destinationReady: &client, pools: worker.pools)
        responseFlow = flow
        switch result {
        case .needsDestination, .needsSource:
            return
        default:
            // Half-close and let the kernel deliver the response before the FIN; the
            // rest of whatever the client sends is discarded with the socket.
            tls?.shutdown()
            Socket.shutdownWrite(fd)
            close()
        }
    }

    // MARK: Closing

    /// Closes the client connection and releases everything the session holds.
    func close() {
        guard state != .closed else { return }
        if state == .exchange || state == .tunnel { closeAccessRecord(status: responseStarted ? status : 0) }
        state = .closed
        endComparison(servedComplete: false, reason: "connection closed")
        requestFlow?.release(to: worker.pools)
        responseFlow?.release(to: worker.pools)
        upstream?.release(to: worker.pools)
        downstream?.release(to: worker.pools)
        requestFlow = nil
        responseFlow = nil
        upstream = nil
        downstream = nil
        dropBackend(reusable: false)
        if let b = buffer {
            worker.pools.giveBack(b)
            buffer = nil
        }
        cluster = nil
        parser.reset()
        responseParser.reset()
        let connection = self.connection
        self.connection = nil
        tls = nil
        throughTLS = false
        connection?.sessionClosed()
        worker.giveBack(self)
    }

    /// True when the session is between exchanges with nothing buffered (safe to close on drain).
    var isIdle: Bool { state == .readingHead && (buffer?.readableCount ?? 0) == 0 }
}
