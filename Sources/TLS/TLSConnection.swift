import COpenSSL
import Syscalls
#if canImport(Glibc)
import Glibc
#endif

/// One TLS connection on a non-blocking socket: a client's on a TLS listener (server side), or
/// ours to a backend of a TLS cluster (client side). The caller owns the socket and the
/// readiness: each call says whether it needs the socket readable or writable to go on.
///
/// Not thread-safe: used by the one reactor that owns the socket.
public final class TLSConnection {
    /// How a handshake step ended.
    public enum Handshake: Equatable {
        /// The connection is established.
        case done
        /// Call again once the socket is readable.
        case wantRead
        /// Call again once the socket is writable.
        case wantWrite
        /// The handshake cannot complete; the reason is for the log.
        case failed(String)
    }

    /// How a read or write ended.
    public enum Transfer: Equatable {
        /// This many bytes of plaintext were moved (never 0).
        case done(Int)
        /// Call again once the socket is readable.
        case wantRead
        /// Call again once the socket is writable.
        case wantWrite
        /// The client ended the connection (close_notify, or the socket's end of stream).
        case closed
        /// The connection is broken; the reason is for the log.
        case failed(String)
    }

    private let ssl: OpaquePointer
    /// Held so the `SSL_CTX`s (and the callbacks' argument) outlive the connection: a
    /// `TLSContext` (server side) or a `TLSClientContext` (to a backend).
    private let owner: AnyObject
    /// The listener's context of a server-side connection (nil for a connection to a backend).
    public var context: TLSContext? { owner as? TLSContext }
    /// Who is at the other end, for messages: "client" (a listener's connection) or "backend".
    private let peer: String
    /// Set by the ALPN callback when the client offered no protocol we serve.
    var refusedProtocols: [String]?

    /// Prepares a server-side connection on `fd` (nil when OpenSSL cannot allocate one).
    public init?(context: TLSContext, fd: Int32) {
        ERR_clear_error()
        guard let ssl = SSL_new(context.entries[0].ctx) else { return nil }
        guard SSL_set_fd(ssl, fd) == 1 else {
            SSL_free(ssl)
            return nil
        }
        SSL_set_accept_state(ssl)
        self.ssl = ssl
        owner = context
        peer = "client"
        _ = sy_set_app_data(ssl, Unmanaged.passUnretained(self).toOpaque())
    }

    /// Prepares a connection to a backend on `fd` (a connected or connecting socket), nil when
    /// OpenSSL cannot allocate one. `serverName` is sent as SNI and, when the context verifies,
    /// is the name the certificate must carry; without one, `address` (an IP literal) must be
    /// in the certificate instead. `session`: a session of an earlier connection to the same
    /// backend, offered for resumption.
    /// `peer` names the other end in messages ("backend", "server").
    public init?(client context: TLSClientContext, fd: Int32, serverName: String?, address: String?, session: TLSSession? = nil,
                 peer: String = "backend") {
        ERR_clear_error()
        guard let ssl = SSL_new(context.ctx) else { return nil }
        guard SSL_set_fd(ssl, fd) == 1 else {
            SSL_free(ssl)
            return nil
        }
        SSL_set_connect_state(ssl)
        if let serverName {
            guard sy_set_tlsext_host_name(ssl, serverName) == 1 else {
                SSL_free(ssl)
                return nil
            }
            if context.verify && SSL_set1_host(ssl, serverName) != 1 {
                SSL_free(ssl)
                return nil
            }
        } else if context.verify, let address {
            guard X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), address) == 1 else {
                SSL_free(ssl)
                return nil
            }
        }
        if let session { _ = SSL_set_session(ssl, session.session) }
        self.ssl = ssl
        owner = context
        self.peer = peer
    }

    /// Whether `text` is an IPv4 or IPv6 address literal (which is checked against a
    /// certificate's IP entries and never sent as SNI), rather than a host name.
    public static func isAddressLiteral(_ text: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }

    deinit { SSL_free(ssl) }

    /// Advances the handshake. The corresponding C function is `SSL_do_handshake`.
    public func handshake() -> Handshake {
        ERR_clear_error()
        let rc = SSL_do_handshake(ssl)
        if rc == 1 { return .done }
        switch SSL_get_error(ssl, rc) {
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        case SSL_ERROR_ZERO_RETURN: return .failed("the \(peer) closed the connection during the handshake")
        case SSL_ERROR_SYSCALL:
            let detail = ERR_peek_error() != 0 ? lastError() : (rc == 0 ? "the \(peer) closed the connection during the handshake" : "socket error during the handshake")
            return .failed(detail)
        default:
            if let offered = refusedProtocols {
                ERR_clear_error()
                return .failed("ALPN: the client offered only [\(offered.joined(separator: ", "))]; only http/1.1 is served")
            }
            let detail = lastError()
            // A certificate the client side's check refused: say why (expired, unknown issuer, name).
            if let why = verifyFailure { return .failed("\(detail) (\(why))") }
            return .failed(detail)
        }
    }

    /// The session to offer for resumption on the next connection to the same backend: nil
    /// while the server has sent nothing resumable (TLS 1.3 tickets come after the handshake,
    /// with the first response). The corresponding C function is `SSL_get1_session`.
    public func resumableSession() -> TLSSession? {
        guard let session = SSL_get1_session(ssl) else { return nil }
        defer { SSL_SESSION_free(session) }
        // A copy: OpenSSL marks a connection's own session unresumable when the connection
        // later ends in an error (a backend closing without close_notify), which would spoil
        // the one kept for the next connection.
        guard SSL_SESSION_is_resumable(session) == 1, let copy = SSL_SESSION_dup(session) else { return nil }
        return TLSSession(copy)
    }

    /// Decrypts into the free space of `buffer`, at most `limit` bytes. The corresponding C
    /// function is `SSL_read_ex` (one record at a time: a short read does not mean the socket
    /// is drained, only `.wantRead` does).
    public func read(into buffer: ByteBuffer, limit: Int = .max) -> Transfer {
        guard buffer.writableCount > 0, limit > 0 else { return .done(0) }
        return buffer.fill { space in
            ERR_clear_error()
            var n = 0
            let rc = SSL_read_ex(ssl, space.baseAddress, min(space.count, limit), &n)
            if rc == 1 { return (n, .done(n)) }
            return (0, outcome(rc))
        }
    }

    /// Encrypts and sends `buffer`'s unconsumed bytes, consuming what was sent.
    /// The corresponding C function is `SSL_write_ex`.
    public func write(from buffer: ByteBuffer) -> Transfer {
        let pending = buffer.readable
        guard pending.count > 0 else { return .done(0) }
        ERR_clear_error()
        var n = 0
        let rc = SSL_write_ex(ssl, pending.baseAddress, pending.count, &n)
        if rc == 1 {
            buffer.consume(n)
            return .done(n)
        }
        return outcome(rc)
    }

    /// Encrypts and sends `bytes` (partial writes allowed: `.done` says how many were taken).
    /// The corresponding C function is `SSL_write_ex`.
    public func write(_ bytes: UnsafeRawBufferPointer) -> Transfer {
        guard bytes.count > 0 else { return .done(0) }
        ERR_clear_error()
        var n = 0
        let rc = SSL_write_ex(ssl, bytes.baseAddress, bytes.count, &n)
        if rc == 1 { return .done(n) }
        return outcome(rc)
    }

    /// Sends close_notify (best effort, without waiting for the client's).
    /// The corresponding C function is `SSL_shutdown`.
    public func shutdown() {
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    /// On the client side of a context that verifies, why the peer's certificate was refused
    /// (untrusted issuer, wrong name, expired…); nil when it was accepted or not checked.
    public var verifyFailure: String? {
        guard let client = owner as? TLSClientContext, client.verify else { return nil }
        let verdict = SSL_get_verify_result(ssl)
        return verdict == X509_V_OK ? nil : String(cString: X509_verify_cert_error_string(verdict))
    }

    /// Decrypted bytes (or a record) OpenSSL holds that a socket read would not announce.
    public var hasBufferedBytes: Bool { SSL_pending(ssl) > 0 || SSL_has_pending(ssl) == 1 }

    /// Whether the kernel took over records in each direction (kTLS) after the handshake.
    public var kernelOffload: (send: Bool, receive: Bool) { (sy_ktls_send(ssl) == 1, sy_ktls_recv(ssl) == 1) }

    /// The negotiated protocol version, e.g. `TLSv1.3`.
    public var version: String { String(cString: SSL_get_version(ssl)) }

    /// The negotiated cipher suite.
    public var cipher: String { SSL_get_current_cipher(ssl).flatMap { SSL_CIPHER_get_name($0) }.map { String(cString: $0) } ?? "-" }

    /// Whether the session was resumed from a ticket or the session cache.
    public var resumed: Bool { SSL_session_reused(ssl) == 1 }

    /// The server name the client sent (SNI), if any.
    public var serverName: String? { SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name).map { String(cString: $0) } }

    /// Maps a failed read or write to a `Transfer`.
    private func outcome(_ rc: Int32) -> Transfer {
        switch SSL_get_error(ssl, rc) {
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        case SSL_ERROR_ZERO_RETURN: return .closed
        case SSL_ERROR_SYSCALL:
            // No error queued: the socket reached end of stream without close_notify.
            if ERR_peek_error() == 0 { return .closed }
            return .failed(lastError())
        default:
            return .failed(lastError())
        }
    }
}
