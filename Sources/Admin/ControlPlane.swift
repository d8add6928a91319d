import Dispatch
import Observability
import Proxy
import Reactor
import Syscalls
#if canImport(Glibc)
import Glibc
#endif

/// The control plane's thread: its own event loop serving the REST API, apart from the
/// workers so that API calls never wait behind proxied traffic (and vice versa).
public final class ControlPlane: Sendable {
    public let loop: EventLoop
    public let server: AdminHTTPServer
    /// The API port (useful after binding port 0).
    public let port: Int

    /// Binds the API listener. Throws when the address cannot be bound.
    public convenience init(listen address: SocketAddress, api: AdminAPI, maxBodyBytes: Int) throws(SyscallError) {
        let fd = try Socket.listen(address, reusePort: false, backlog: 128)
        try self.init(listenerFD: fd, maxBodyBytes: maxBodyBytes) { api.handle($0) }
    }

    /// Serves `handler` (the API, possibly wrapped) on a listener already bound: the
    /// caller's, or one a self-upgrade's successor inherited. With `tls` (`configService.tls`)
    /// clients must complete a TLS handshake within `handshakeNanos` first.
    public init(listenerFD fd: Int32, maxBodyBytes: Int, tls: TLSEndpoint? = nil, handshakeNanos: UInt64 = 10_000_000_000,
                handler: @escaping @Sendable (AdminRequest) -> AdminResponse) throws(SyscallError) {
        port = try Socket.localAddress(fd).port
        loop = try EventLoop(id: -1)
        server = AdminHTTPServer(loop: loop, listenerFD: fd, maxBodyBytes: maxBodyBytes, tls: tls, handshakeNanos: handshakeNanos,
                                 handler: handler)
    }

    /// The API listener's descriptor (handed to a successor process).
    public var listenerDescriptor: Int32 { server.listenerFD }

    /// Stops accepting API connections (the successor accepts from the same socket); the
    /// connections already open are still answered. Safe from any thread; returns once done.
    public func stopAccepting() {
        let server = self.server
        let done = DispatchSemaphore(value: 0)
        loop.execute {
            server.stopAccepting()
            done.signal()
        }
        _ = done.wait(timeout: .now() + 5)
    }

    /// Starts the control-plane thread.
    public func start() -> pthread_t {
        let server = self.server
        let loop = self.loop
        return ReactorThread.start {
            do {
                try server.start()
            } catch {
                Log.critical("admin_start_failed", ["error": "\(error)"])
                return
            }
            loop.run()
        }
    }

    /// Runs `action` on the control-plane thread every `nanoseconds` (coarse: at the loop's
    /// sweep after each deadline), from now until the loop stops. Safe from any thread.
    public func every(_ nanoseconds: UInt64, _ action: @escaping @Sendable () -> Void) {
        let loop = self.loop
        @Sendable func arm() {
            loop.schedule(after: nanoseconds) {
                action()
                arm()
            }
        }
        loop.execute { arm() }
    }

    /// Stops the control-plane loop.
    public func stop() { loop.stop() }
}
