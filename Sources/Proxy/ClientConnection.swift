import Reactor
import Syscalls
import TLS

/// A client connection: its descriptor, its peer and, while no request is being read or
/// served, its readiness and idle deadline. A `ClientSession` from the worker's pool takes it
/// over when bytes arrive (`attach`) and gives it back between exchanges (`detachIfIdle`), so
/// an idle keep-alive connection costs this object, not a session with its parsers, heads and
/// flows. Events on the client descriptor and the sweep reach the session through here.
final class ClientConnection: EventHandler, DeadlineHandler {
    unowned(unsafe) let worker: Worker
    let fd: Int32
    let clientAddress: String
    var sweepIndex = -1
    /// The client reached us through a TLS listener (requests carry `X-Forwarded-Proto: https`).
    var secure = false
    /// The connection's TLS after its handshake, unless the kernel took the records over (kTLS):
    /// sessions read and write the client through it.
    var tls: TLSConnection?
    /// The session serving the connection; nil while it is idle.
    var session: ClientSession?
    /// Readiness while idle (a session takes it over).
    var ready = Readiness()
    /// When an idle connection is closed: the head deadline for a new one, the idle deadline
    /// after an exchange.
    var deadline: UInt64

    init(worker: Worker, fd: Int32, clientAddress: String) {
        self.worker = worker
        self.fd = fd
        self.clientAddress = clientAddress
        ready.writable = true
        deadline = worker.loop.now &+ worker.settings.clientHeadNanos
    }

    func handleEvent(fd eventFD: Int32, events: EpollEvents) {
        if session == nil && !events.contains(.readable) && !events.contains(.readHangup)
            && !events.contains(.hangup) && !events.contains(.error) {
            // Room to write (the last response's bytes were acknowledged): nothing to serve.
            ready.writable = true
            return
        }
        let session = self.session ?? attachSession()
        session.handleEvent(fd: eventFD, events: events)
    }

    func checkDeadline(now: UInt64) {
        if let session {
            session.checkDeadline(now: now)
        } else if now >= deadline {
            close()
        }
    }

    /// Something arrived on an idle connection: a session takes it over.
    private func attachSession() -> ClientSession {
        let session = worker.takeSession()
        self.session = session
        session.attach(self)
        return session
    }

    /// True when no request is being read or served (safe to close on drain).
    var isIdle: Bool { session?.isIdle ?? true }

    /// Closes the connection, through its session when one is attached.
    func close() {
        if let session {
            session.close()
        } else {
            sessionClosed()
        }
    }

    /// The session released everything (or there was none): the descriptor goes.
    func sessionClosed() {
        session = nil
        // close_notify, best effort (a second call after the session's own is harmless).
        tls?.shutdown()
        worker.connectionClosed(self)
    }
}
