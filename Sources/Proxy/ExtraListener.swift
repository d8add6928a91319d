import HTTP1
import Observability
import Reactor
import Syscalls
import TLS

/// One worker's socket of a listener besides its main one (`proxy.listeners`): accepts
/// connections and hands them to the worker, through a TLS handshake when the listener has TLS.
final class ExtraListener: EventHandler {
    unowned(unsafe) let worker: Worker
    let fd: Int32
    let tls: TLSEndpoint?
    private var paused = false

    init(worker: Worker, fd: Int32, tls: TLSEndpoint?) {
        self.worker = worker
        self.fd = fd
        self.tls = tls
    }

    func handleEvent(fd: Int32, events: EpollEvents) {
        for _ in 0..<64 {
            do {
                switch try Socket.accept(self.fd) {
                case .wouldBlock:
                    return
                case .done(let (client, address)):
                    guard worker.admitsConnection else {
                        if tls == nil {
                            let refusal = HeadWriter.errorResponse(status: 503, message: "too many connections")
                            _ = try? Socket.write(client, bytes: refusal[...])
                        }
                        Socket.close(client)
                        worker.metrics.reject(reactor: worker.id, status: 503)
                        continue
                    }
                    Socket.setNoDelay(client)
                    if let tls {
                        worker.startHandshake(fd: client, clientAddress: address.host, endpoint: tls)
                    } else {
                        worker.addClientConnection(fd: client, clientAddress: address.host, secure: false, registered: false)
                    }
                }
            } catch {
                Log.warning("accept_paused", ["error": error.description])
                worker.counters.add(ProxyCounter.acceptPauses)
                pause(for: 100_000_000)
                return
            }
        }
    }

    /// Stops accepting for a moment (out of descriptors), as the main listener does.
    private func pause(for nanos: UInt64) {
        guard !paused else { return }
        paused = true
        worker.loop.pauseListener(fd)
        worker.loop.schedule(after: nanos) { [self] in
            guard !worker.draining else { return }
            paused = false
            try? worker.loop.registerListener(fd, handler: self)
        }
    }

    /// Stops accepting for good (drain).
    func stop() {
        if !paused { worker.loop.pauseListener(fd) }
        paused = true
        Socket.close(fd)
    }
}

extension Worker {
    /// Whether another client connection may be accepted now.
    var admitsConnection: Bool { connections.count + handshakes < maxSessions && !draining }

    /// Registers the extra listeners with the loop; call on the loop's thread.
    func startExtraListeners() throws(SyscallError) {
        for listener in extraListeners { try loop.registerListener(listener.fd, handler: listener) }
    }

    /// Makes a client connection of an accepted descriptor. `registered`: the descriptor is
    /// already in the loop (a TLS connection after its handshake) and changes handler.
    @discardableResult
    func addClientConnection(fd: Int32, clientAddress: String, secure: Bool, registered: Bool) -> ClientConnection? {
        let connection = ClientConnection(worker: self, fd: fd, clientAddress: clientAddress)
        connection.secure = secure
        if registered {
            loop.reassign(fd, to: connection)
        } else {
            do {
                try loop.register(fd, handler: connection)
            } catch {
                Socket.close(fd)
                return nil
            }
        }
        connections[ObjectIdentifier(connection)] = connection
        loop.addToSweep(connection)
        counters.add(ProxyCounter.clientConnections)
        counters.add(ProxyCounter.activeSessions)
        return connection
    }

    /// Starts the TLS handshake of an accepted connection.
    func startHandshake(fd: Int32, clientAddress: String, endpoint: TLSEndpoint) {
        guard let tls = TLSConnection(context: endpoint.context, fd: fd) else {
            Socket.close(fd)
            endpoint.failures.add(1, ordering: .relaxed)
            return
        }
        let handshake = TLSHandshake(worker: self, fd: fd, clientAddress: clientAddress, tls: tls, endpoint: endpoint)
        do {
            try loop.register(fd, handler: handshake)
        } catch {
            Socket.close(fd)
            return
        }
        tlsHandshakes[ObjectIdentifier(handshake)] = handshake
        handshakes += 1
        loop.addToSweep(handshake)
        handshake.drive()
    }

    /// Called by a handshake once it ended (its socket closed or handed to a `ClientConnection`).
    func handshakeEnded(_ handshake: TLSHandshake) {
        loop.removeFromSweep(handshake)
        tlsHandshakes[ObjectIdentifier(handshake)] = nil
    }

    /// On drain: stops the extra listeners and drops handshakes not yet complete.
    func stopExtraListeners() {
        for listener in extraListeners { listener.stop() }
        for handshake in Array(tlsHandshakes.values) { handshake.close() }
    }
}
