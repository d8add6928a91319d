import Locks
import Observability
import Synchronization
import Syscalls
import TLS

/// A TLS listener's certificates and counters, shared by every worker's copy of the listener.
/// The context is replaced whole on reload; a connection keeps the context its handshake began
/// with, so a reload never disturbs one. A reload whose files are bad keeps the old context.
public final class TLSEndpoint: Sendable {
    /// Where the listener's `tls` object is in the configuration (for messages).
    public let field: String
    private let state: Lock<(context: TLSContext, settings: TLSSettings, lastError: String?)>
    /// `"ktls"` or `"userspace"`: the data path this listener's connections take (each
    /// connection still falls back to userspace when OpenSSL did not hand it to the kernel).
    public let path: String
    /// Why `path` is what it is.
    public let pathReason: String
    /// Handshakes completed, of which resumed, and handshakes that failed or timed out.
    public let handshakes = Atomic<Int>(0)
    public let resumed = Atomic<Int>(0)
    public let failures = Atomic<Int>(0)
    /// Connections whose records the kernel took over (kTLS both ways).
    public let kernelConnections = Atomic<Int>(0)
    /// Session ticket keys, kept across reloads; rotated by the control plane.
    public let ticketKeys: TicketKeys?

    /// Loads the certificates. `kernelOffers`: whether the kernel offers the `tls` ULP (see
    /// `KernelTLS.offeredByKernel`). Throws when a certificate cannot be used.
    public init(settings: TLSSettings, field: String, kernelOffers: Bool) throws(TLSError) {
        let choice = KernelTLS.path(kernelOffers: kernelOffers, libraryCapable: KernelTLS.libraryCapable)
        path = choice.path
        pathReason = choice.reason
        self.field = field
        ticketKeys = TicketKeys()
        let context = try TLSContext(settings, kernelTLS: choice.path == "ktls", ticketKeys: ticketKeys)
        state = Lock((context, settings, nil))
    }

    /// The context new connections start with.
    public var context: TLSContext { state.withLock { $0.context } }

    /// The certificates in force.
    public var certificates: [CertificateInfo] { context.certificates }

    /// Why the last reload failed (nil after a successful one).
    public var lastReloadError: String? { state.withLock { $0.lastError } }

    /// Loads the certificate files again (`settings`: new ones from a re-read configuration,
    /// or nil for the same paths). On failure the old certificates stay and the error is kept.
    @discardableResult
    public func reload(_ settings: TLSSettings? = nil) -> TLSError? {
        let wanted = settings ?? state.withLock { $0.settings }
        do {
            let context = try TLSContext(wanted, kernelTLS: path == "ktls", ticketKeys: ticketKeys)
            state.withLock { $0 = (context, wanted, nil) }
            Log.notice("tls_reloaded", ["listener": field, "certificates": String(context.certificates.count)])
            return nil
        } catch {
            state.withLock { $0.lastError = error.description }
            Log.error("tls_reload_failed", ["listener": field, "error": error.description, "action": "the previous certificates stay"])
            return error
        }
    }
}

/// A client listener besides the worker's main one: plain, or terminating TLS.
public struct ListenerSpec: Sendable {
    /// Where to listen.
    public var address: SocketAddress
    /// TLS termination; nil for plain HTTP.
    public var tls: TLSEndpoint?

    public init(address: SocketAddress, tls: TLSEndpoint?) {
        self.address = address
        self.tls = tls
    }
}
