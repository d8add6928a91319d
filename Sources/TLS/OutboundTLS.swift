import COpenSSL
import Syscalls

/// The client side of TLS, for connections this process opens (the benchmark's load
/// generator): one `SSL_CTX` with the protocol floor, the TLS 1.3 suites offered, ALPN
/// `http/1.1`, and either verification against a CA file or none at all.
///
/// Immutable once made, so every load thread may start connections from it.
public final class OutboundTLSContext: @unchecked Sendable {
    let ctx: OpaquePointer
    /// Whether the server's certificate is checked (against `caFile`, and the server name).
    public let verifies: Bool

    /// Makes the context. `caFile`: PEM file of the certificates to trust (nil: no
    /// verification, for benchmarks against self-signed certificates). `minVersion`: the oldest
    /// protocol offered. `ciphersuites`: OpenSSL's TLS 1.3 suite list (nil: its default).
    /// Throws `TLSError` naming the field at fault (`cacert`, `ciphersuites`).
    public init(caFile: String? = nil, minVersion: TLSSettings.Version = .tls12, ciphersuites: String? = nil) throws(TLSError) {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_client_method()) else {
            throw TLSError(field: "context", message: "OpenSSL could not make a client context: \(lastError())")
        }
        func fail(_ field: String, _ message: String) -> TLSError {
            SSL_CTX_free(ctx)
            return TLSError(field: field, message: message)
        }
        _ = sy_ctx_set_min_proto_version(ctx, minVersion == .tls13 ? TLS1_3_VERSION : TLS1_2_VERSION)
        _ = sy_ctx_set_mode(ctx, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER))
        // One read per socket fill rather than a record header and then its body.
        _ = SSL_CTX_ctrl(ctx, SSL_CTRL_SET_READ_AHEAD, 1, nil)
        // Sessions are kept by the caller (`OutboundTLSConnection.session`), not in a cache.
        _ = sy_ctx_set_session_cache_mode(ctx, Int(SSL_SESS_CACHE_OFF))
        if let ciphersuites, SSL_CTX_set_ciphersuites(ctx, ciphersuites) != 1 {
            throw fail("ciphersuites", "no usable TLS 1.3 suite in \"\(ciphersuites)\": \(lastError())")
        }
        let alpn: [UInt8] = [8] + Array("http/1.1".utf8)
        _ = SSL_CTX_set_alpn_protos(ctx, alpn, UInt32(alpn.count))
        if let caFile {
            guard SSL_CTX_load_verify_locations(ctx, caFile, nil) == 1 else {
                throw fail("cacert", "cannot load \(caFile) as PEM certificates: \(lastError())")
            }
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
        }
        self.ctx = ctx
        verifies = caFile != nil
    }

    deinit { SSL_CTX_free(ctx) }
}

/// A TLS session kept from an earlier connection, offered to resume the next one (TLS 1.3:
/// the server's ticket).
public final class OutboundTLSSession: @unchecked Sendable {
    let session: OpaquePointer

    init(_ session: OpaquePointer) { self.session = session }

    deinit { SSL_SESSION_free(session) }
}

/// One TLS connection this process opened on a non-blocking socket. The caller owns the
/// socket and the readiness; each call says whether it needs the socket readable or writable
/// to go on (the same outcomes as the server side's `TLSConnection`).
///
/// Not thread-safe: used by the one reactor that owns the socket.
public final class OutboundTLSConnection {
    private let ssl: OpaquePointer
    /// Held so the `SSL_CTX` outlives the connection.
    public let context: OutboundTLSContext

    /// Prepares a client-side connection on `fd`. `serverName` is sent as SNI (unless it is an
    /// IP address) and, when the context verifies, must match the certificate. `resuming`
    /// offers an earlier session. Nil when OpenSSL cannot allocate the connection.
    public init?(context: OutboundTLSContext, fd: Int32, serverName: String?, resuming: OutboundTLSSession? = nil) {
        ERR_clear_error()
        guard let ssl = SSL_new(context.ctx) else { return nil }
        guard SSL_set_fd(ssl, fd) == 1 else {
            SSL_free(ssl)
            return nil
        }
        SSL_set_connect_state(ssl)
        if let serverName, !serverName.isEmpty {
            let isAddress = serverName.contains(":") || serverName.allSatisfy { $0 == "." || $0.isNumber }
            if !isAddress {
                _ = serverName.withCString { SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, Int(TLSEXT_NAMETYPE_host_name), UnsafeMutableRawPointer(mutating: $0)) }
            }
            if context.verifies {
                if isAddress {
                    _ = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), serverName)
                } else {
                    _ = SSL_set1_host(ssl, serverName)
                }
            }
        }
        if let resuming { _ = SSL_set_session(ssl, resuming.session) }
        self.ssl = ssl
        self.context = context
    }

    deinit {
        // Counted as shut down without sending close_notify: freeing a connection that was not
        // shut down marks its session not resumable, and the caller may hold that session.
        SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN)
        SSL_free(ssl)
    }

    /// Advances the handshake. The corresponding C function is `SSL_do_handshake`.
    public func handshake() -> TLSConnection.Handshake {
        ERR_clear_error()
        let rc = SSL_do_handshake(ssl)
        if rc == 1 { return .done }
        switch SSL_get_error(ssl, rc) {
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        case SSL_ERROR_ZERO_RETURN: return .failed("the server closed the connection during the handshake")
        case SSL_ERROR_SYSCALL:
            if ERR_peek_error() != 0 { return .failed(lastError()) }
            return .failed(rc == 0 ? "the server closed the connection during the handshake" : "socket error during the handshake")
        default:
            let verify = SSL_get_verify_result(ssl)
            if verify != X509_V_OK {
                return .failed("certificate verification failed: \(String(cString: X509_verify_cert_error_string(verify)))")
            }
            return .failed(lastError())
        }
    }

    /// Decrypts into the free space of `buffer`. The corresponding C function is `SSL_read_ex`
    /// (a short read does not mean the socket is drained; only `.wantRead` does).
    public func read(into buffer: ByteBuffer) -> TLSConnection.Transfer {
        guard buffer.writableCount > 0 else { return .done(0) }
        return buffer.fill { space in
            ERR_clear_error()
            var n = 0
            let rc = SSL_read_ex(ssl, space.baseAddress, space.count, &n)
            if rc == 1 { return (n, .done(n)) }
            return (0, outcome(rc))
        }
    }

    /// Encrypts and sends `bytes` (partial writes allowed: `.done` says how many were taken).
    /// The corresponding C function is `SSL_write_ex`.
    public func write(_ bytes: UnsafeRawBufferPointer) -> TLSConnection.Transfer {
        guard bytes.count > 0 else { return .done(0) }
        ERR_clear_error()
        var n = 0
        let rc = SSL_write_ex(ssl, bytes.baseAddress, bytes.count, &n)
        if rc == 1 { return .done(n) }
        return outcome(rc)
    }

    /// Whether this connection resumed an earlier session (no full handshake).
    public var resumed: Bool { SSL_session_reused(ssl) == 1 }

    /// The negotiated protocol version, e.g. `TLSv1.3`.
    public var version: String { String(cString: SSL_get_version(ssl)) }

    /// The negotiated cipher suite.
    public var cipher: String { SSL_get_current_cipher(ssl).flatMap { SSL_CIPHER_get_name($0) }.map { String(cString: $0) } ?? "-" }

    /// The session to offer on a later connection, when the server gave one that can resume.
    /// The corresponding C function is `SSL_get1_session`.
    public var session: OutboundTLSSession? {
        guard let s = SSL_get1_session(ssl) else { return nil }
        guard SSL_SESSION_is_resumable(s) == 1 else {
            SSL_SESSION_free(s)
            return nil
        }
        return OutboundTLSSession(s)
    }

    /// Maps a failed read or write to a `Transfer`.
    private func outcome(_ rc: Int32) -> TLSConnection.Transfer {
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
