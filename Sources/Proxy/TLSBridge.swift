import Observability
import Reactor
import Syscalls
import TLS

/// A client connection on a TLS listener: drives the handshake on the reactor, then either
/// hands the socket itself to a `ClientConnection` (kTLS: the kernel encrypts, so bodies splice
/// as on plain TCP), or — the userspace path — relays between the TLS socket and one end of a
/// Unix socket pair whose other end a `ClientConnection` serves exactly like a plain client.
///
/// The pair keeps the plain data path untouched (its reads, writes and splices run as they do
/// for plain clients); the price is one more copy through the kernel per direction and two
/// descriptors per TLS connection. Decrypted bytes move through two pooled session buffers,
/// held only while bytes are in flight (an idle keep-alive connection holds none).
final class TLSBridge: EventHandler, DeadlineHandler {
    /// What the bridge is doing.
    enum State {
        /// `SSL_do_handshake` has not completed; the handshake deadline applies.
        case handshaking
        /// Relaying between the TLS socket and the pair.
        case relaying
        /// Everything is closed.
        case closed
    }

    unowned(unsafe) let worker: Worker
    let endpoint: TLSEndpoint
    var sweepIndex = -1
    private(set) var state = State.handshaking
    /// The client's TCP socket.
    private let fd: Int32
    private let clientAddress: String
    private var tls: TLSConnection?
    /// Our end of the pair (the `ClientConnection` has the other); -1 until relaying.
    private var pairFD: Int32 = -1
    private var deadline: UInt64
    /// Readiness of the TLS socket and of our end of the pair (edge-triggered).
    private var socketReadable = true
    private var socketWritable = true
    private var pairReadable = false
    private var pairWritable = true
    /// Decrypted bytes on their way to the pair, and plaintext on its way to the client.
    private var inbound: ByteBuffer?
    private var outbound: ByteBuffer?
    /// The client ended its side (close_notify or end of stream).
    private var clientEnded = false
    /// The pair's write side was shut after `clientEnded`.
    private var pairShut = false
    /// The session closed its end: flush what is left, send close_notify, close.
    private var sessionEnded = false

    init(worker: Worker, fd: Int32, clientAddress: String, tls: TLSConnection, endpoint: TLSEndpoint) {
        self.worker = worker
        self.fd = fd
        self.clientAddress = clientAddress
        self.tls = tls
        self.endpoint = endpoint
        deadline = worker.loop.now &+ worker.settings.clientHandshakeNanos
    }

    var isHandshaking: Bool { state == .handshaking }

    func handleEvent(fd eventFD: Int32, events: EpollEvents) {
        let any = events.contains(.hangup) || events.contains(.error)
        if eventFD == fd {
            if any || events.contains(.readable) || events.contains(.readHangup) { socketReadable = true }
            if any || events.contains(.writable) { socketWritable = true }
        } else if eventFD == pairFD {
            if any || events.contains(.readable) || events.contains(.readHangup) { pairReadable = true }
            if any || events.contains(.writable) { pairWritable = true }
        } else {
            return
        }
        drive()
    }

    func checkDeadline(now: UInt64) {
        guard state != .closed, now >= deadline else { return }
        if state == .handshaking {
            endpoint.failures.add(1, ordering: .relaxed)
            Log.info("tls_handshake_failed", ["client": clientAddress, "listener": endpoint.field,
                                              "reason": "not completed in time"])
        }
        close()
    }

    /// Makes all the progress readiness allows.
    func drive() {
        switch state {
        case .handshaking: stepHandshake()
        case .relaying: relay()
        case .closed: return
        }
    }

    // MARK: Handshake

    private func stepHandshake() {
        guard let tls else { return }
        switch tls.handshake() {
        case .wantRead, .wantWrite:
            return
        case .failed(let reason):
            endpoint.failures.add(1, ordering: .relaxed)
            Log.info("tls_handshake_failed", ["client": clientAddress, "listener": endpoint.field, "reason": reason])
            close()
        case .done:
            endpoint.handshakes.add(1, ordering: .relaxed)
            if tls.resumed { endpoint.resumed.add(1, ordering: .relaxed) }
            if Log.enabled(.debug) {
                Log.debug("tls_established", ["client": clientAddress, "version": tls.version, "cipher": tls.cipher,
                                              "sni": tls.serverName ?? "-", "resumed": tls.resumed ? "yes" : "no"])
            }
            established(tls)
        }
    }

    /// The handshake is done: the kernel path when OpenSSL handed both directions to the
    /// kernel and holds no bytes of its own, otherwise the relay through a pair.
    private func established(_ tls: TLSConnection) {
        let offload = tls.kernelOffload
        if offload.send && offload.receive && !tls.hasBufferedBytes {
            endpoint.kernelConnections.add(1, ordering: .relaxed)
            worker.handshakes -= 1
            state = .closed
            self.tls = nil
            worker.bridgeClosed(self)
            worker.addClientConnection(fd: fd, clientAddress: clientAddress, secure: true, registered: true)
            return
        }
        let inner: Int32
        do {
            (pairFD, inner) = try Socket.pair()
        } catch {
            Log.warning("tls_pair_failed", ["error": error.description])
            close()
            return
        }
        do {
            try worker.loop.register(pairFD, handler: self)
        } catch {
            Socket.close(inner)
            close()
            return
        }
        guard worker.addClientConnection(fd: inner, clientAddress: clientAddress, secure: true, registered: false) != nil else {
            close()
            return
        }
        state = .relaying
        worker.handshakes -= 1
        deadline = .max
        relay()
    }

    // MARK: Relay

    /// Moves bytes both ways until nothing more can move.
    private func relay() {
        guard let tls else { return }
        let inbound = self.inbound ?? worker.pools.takeBuffer()
        let outbound = self.outbound ?? worker.pools.takeBuffer()
        self.inbound = inbound
        self.outbound = outbound
        defer { releaseIdleBuffers() }
        var progressed = true
        while progressed && state == .relaying {
            progressed = false
            // Client → session.
            if inbound.readableCount > 0 && pairWritable {
                do {
                    switch try inbound.write(to: pairFD) {
                    case .done(let n): progressed = progressed || n > 0
                    case .wouldBlock: pairWritable = false
                    }
                } catch {
                    // The session closed its end: nobody reads what the client sends.
                    inbound.clear()
                    sessionEnded = true
                }
            }
            if !clientEnded && inbound.readableCount == 0 && (socketReadable || tls.hasBufferedBytes) {
                switch tls.read(into: inbound) {
                case .done(let n): progressed = progressed || n > 0
                case .wantRead: socketReadable = false
                case .wantWrite: socketWritable = false
                case .closed: clientEnded = true; progressed = true
                case .failed(let reason):
                    Log.info("tls_read_failed", ["client": clientAddress, "reason": reason])
                    close()
                    return
                }
            }
            if clientEnded && !pairShut && inbound.readableCount == 0 {
                Socket.shutdownWrite(pairFD)
                pairShut = true
            }
            // Session → client.
            if outbound.readableCount > 0 && socketWritable {
                switch tls.write(from: outbound) {
                case .done(let n): progressed = progressed || n > 0
                case .wantWrite: socketWritable = false
                case .wantRead: socketReadable = false
                case .closed, .failed:
                    close()
                    return
                }
            }
            if !sessionEnded && outbound.readableCount == 0 && pairReadable {
                do {
                    switch try outbound.read(from: pairFD) {
                    case .done(0): sessionEnded = true; progressed = true
                    case .done: progressed = true
                    case .wouldBlock: pairReadable = false
                    }
                } catch {
                    sessionEnded = true
                    progressed = true
                }
            }
            if sessionEnded && outbound.readableCount == 0 {
                tls.shutdown()
                close()
                return
            }
        }
        // The session is gone but the client does not take the rest: bounded wait.
        if sessionEnded && deadline == .max { deadline = worker.loop.now &+ 5_000_000_000 }
    }

    /// Gives the buffers back to the pool when neither holds a byte (between exchanges).
    private func releaseIdleBuffers() {
        guard state == .relaying, let inbound, let outbound,
              inbound.readableCount == 0, outbound.readableCount == 0 else { return }
        worker.pools.giveBack(inbound)
        worker.pools.giveBack(outbound)
        self.inbound = nil
        self.outbound = nil
    }

    // MARK: Closing

    /// Closes the TLS socket and our end of the pair (the session sees its end close).
    func close() {
        guard state != .closed else { return }
        if state == .handshaking { worker.handshakes -= 1 }
        state = .closed
        tls = nil
        worker.loop.close(fd)
        if pairFD >= 0 {
            worker.loop.close(pairFD)
            pairFD = -1
        }
        if let inbound { worker.pools.giveBack(inbound) }
        if let outbound { worker.pools.giveBack(outbound) }
        inbound = nil
        outbound = nil
        worker.bridgeClosed(self)
    }
}
