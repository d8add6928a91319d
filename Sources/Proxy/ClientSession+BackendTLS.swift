import Observability
import Syscalls
import TLS

/// The exchange's backend connection when its cluster speaks TLS: the handshake after the
/// TCP connect, and the response head read through `SSL_read`. Bodies go through the flows'
/// TLS seam (`BodyFlow.tlsSource`/`tlsDestination`, as for a TLS client), so the plain path
/// only tests `BackendLink.secure`.
extension ClientSession {
    /// Advances the handshake of a new connection to a TLS backend (its TCP connect is done).
    /// A failed handshake, a refused certificate included, is a failed connect: the backend
    /// is marked down and the request goes elsewhere, as after a refused connect. Returns true
    /// when the state changed.
    func stepBackendHandshake() -> Bool {
        guard let link = backend, let tls = worker.backendTLS[link.fd] else {
            connectFailed()
            return true
        }
        switch tls.handshake() {
        case .wantRead, .wantWrite:
            // Any event on the socket sets both again (see `handleEvent`).
            backend!.ready.readable = false
            backend!.ready.writable = false
            return false
        case .failed(let reason):
            Log.warning("backend_tls_failed", ["backend": worker.backends[link.backendID].address.description,
                                               "cluster": cluster?.spec.uuid ?? "-", "reason": reason])
            connectFailed()
            return true
        case .done:
            if Log.enabled(.debug) {
                Log.debug("backend_tls_established", ["backend": worker.backends[link.backendID].address.description,
                                                      "version": tls.version, "cipher": tls.cipher,
                                                      "resumed": tls.resumed ? "yes" : "no"])
            }
            backend!.connecting = false
            backend!.ready.writable = true
            backend!.ready.readable = true
            worker.backendConnected(link.backendID)
            connectionEstablished()
            return true
        }
    }

    /// One `SSL_read` of response head bytes into `rbuf`. Nil after bytes arrived (parse
    /// them and go on); otherwise what `readResponseHead` returns.
    func readResponseBytes(through link: BackendLink, into rbuf: ByteBuffer) -> HeadProgress? {
        guard let tls = worker.backendTLS[link.fd] else {
            failExchange(status: 502, message: "backend connection lost its TLS", backendFault: true)
            return .changed
        }
        let failure: String
        switch tls.read(into: rbuf) {
        case .done:
            return nil
        case .wantRead:
            backend!.ready.readable = false
            return .waiting
        case .wantWrite:
            backend!.ready.readable = false
            backend!.ready.writable = false
            return .waiting
        case .closed:
            failure = "backend closed the connection"
        case .failed(let reason):
            Log.info("backend_tls_error", ["backend": worker.backends[link.backendID].address.description, "reason": reason])
            failure = "backend reset the connection"
        }
        if rbuf.readableCount == 0 && !responseStarted && mayRetryOnFreshConnection {
            return retryOnFreshConnection() ? .changed : .waiting
        }
        failExchange(status: 502, message: failure, backendFault: true)
        return .changed
    }
}
