import Observability
import Reactor
import Syscalls
import TLS

/// A client connection on a TLS listener while its handshake runs on the reactor. Once it is
/// done, the connection becomes a `ClientConnection` like a plain one: with kTLS (the kernel
/// took the records over both ways) the socket is served exactly as plain TCP; otherwise the
/// connection keeps its `TLSConnection` and sessions read and write the client through it
/// (`SSL_read` into the session's buffer, `SSL_write` from it). No case needs a relay.
final class TLSHandshake: EventHandler, DeadlineHandler {
    unowned(unsafe) let worker: Worker
    let endpoint: TLSEndpoint
    var sweepIndex = -1
    /// False once the handshake ended, either way.
    private(set) var isHandshaking = true
    /// The client's TCP socket.
    private let fd: Int32
    private let clientAddress: String
    private var tls: TLSConnection?
    private let deadline: UInt64

    init(worker: Worker, fd: Int32, clientAddress: String, tls: TLSConnection, endpoint: TLSEndpoint) {
        self.worker = worker
        self.fd = fd
        self.clientAddress = clientAddress
        self.tls = tls
        self.endpoint = endpoint
        deadline = worker.loop.now &+ worker.settings.clientHandshakeNanos
    }

    func handleEvent(fd eventFD: Int32, events: EpollEvents) {
        guard eventFD == fd else { return }
        drive()
    }

    func checkDeadline(now: UInt64) {
        guard isHandshaking, now >= deadline else { return }
        endpoint.failures.add(1, ordering: .relaxed)
        Log.info("tls_handshake_failed", ["client": clientAddress, "listener": endpoint.field,
                                          "reason": "not completed in time"])
        close()
    }

    /// Advances the handshake as far as the socket allows.
    func drive() {
        guard isHandshaking else { return }
        stepHandshake()
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

    /// The handshake is done: the connection is served by sessions from now on, through the
    /// socket alone when OpenSSL handed both directions to the kernel and holds no bytes of its
    /// own, otherwise through `tls`. The client may have sent its first request with its last
    /// handshake flight (no new edge will announce it), so the connection is driven at once.
    private func established(_ tls: TLSConnection) {
        let offload = tls.kernelOffload
        let kernel = offload.send && offload.receive && !tls.hasBufferedBytes
        if kernel { endpoint.kernelConnections.add(1, ordering: .relaxed) }
        // Locals: handing the descriptor over may release this object.
        let (worker, fd, clientAddress) = (self.worker, self.fd, self.clientAddress)
        worker.handshakes -= 1
        isHandshaking = false
        self.tls = nil
        worker.handshakeEnded(self)
        guard let connection = worker.addClientConnection(fd: fd, clientAddress: clientAddress, secure: true,
                                                          registered: true) else { return }
        if !kernel { connection.tls = tls }
        connection.handleEvent(fd: fd, events: .readable)
    }

    /// Closes the socket of a handshake that failed or is abandoned (deadline, drain).
    func close() {
        guard isHandshaking else { return }
        worker.handshakes -= 1
        isHandshaking = false
        tls = nil
        worker.loop.close(fd)
        worker.handshakeEnded(self)
    }
}
