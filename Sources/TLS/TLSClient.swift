import COpenSSL
#if canImport(Glibc)
import Glibc
#endif

/// The client side of one TLS connection on a non-blocking socket, verifying the server's
/// certificate: its chain must lead to a CA of `caFile` (or of the system's store), and it
/// must name the host the caller connected to (a DNS name, or an IP address in its
/// subjectAltName). Used by command-line clients of the admin API (`switchyard ctl`); the
/// caller owns the socket and waits for readiness as each call asks.
///
/// Not thread-safe: one caller at a time.
public final class TLSClient {
    private let ctx: OpaquePointer
    private let ssl: OpaquePointer
    /// The host the certificate must name.
    public let serverName: String

    /// Prepares a connection on `fd` to `serverName`. `caFile`: PEM file of the CAs to trust
    /// (nil: the system's). Throws `TLSError` (field `cacert`) when the CA file cannot be
    /// loaded, or when OpenSSL cannot make a connection.
    public init(fd: Int32, serverName: String, caFile: String?) throws(TLSError) {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_client_method()) else {
            throw TLSError(field: "cacert", message: "OpenSSL could not make a context: \(lastError())")
        }
        _ = sy_ctx_set_min_proto_version(ctx, TLS1_2_VERSION)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        if let caFile {
            guard access(caFile, R_OK) == 0 else {
                SSL_CTX_free(ctx)
                throw TLSError(field: "cacert", message: "cannot read \(caFile): \(String(cString: strerror(errno)))")
            }
            guard SSL_CTX_load_verify_locations(ctx, caFile, nil) == 1 else {
                SSL_CTX_free(ctx)
                throw TLSError(field: "cacert", message: "\(caFile) holds no PEM certificate: \(lastError())")
            }
        } else {
            _ = SSL_CTX_set_default_verify_paths(ctx)
        }
        guard let ssl = SSL_new(ctx) else {
            SSL_CTX_free(ctx)
            throw TLSError(field: "cacert", message: "OpenSSL could not make a connection: \(lastError())")
        }
        self.ctx = ctx
        self.ssl = ssl
        self.serverName = serverName
        _ = SSL_set_fd(ssl, fd)
        SSL_set_connect_state(ssl)
        // An IP address is checked against the certificate's IP entries; a name against its
        // DNS entries, and sent as SNI (RFC 6066 forbids an address there).
        if X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), serverName) != 1 {
            ERR_clear_error()
            _ = SSL_set1_host(ssl, serverName)
            _ = serverName.withCString { name in
                SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, Int(TLSEXT_NAMETYPE_host_name), UnsafeMutableRawPointer(mutating: name))
            }
        }
        let alpn: [UInt8] = [8] + Array("http/1.1".utf8)
        _ = SSL_set_alpn_protos(ssl, alpn, UInt32(alpn.count))
    }

    deinit {
        SSL_free(ssl)
        SSL_CTX_free(ctx)
    }

    /// Advances the handshake. A certificate that fails verification ends it with a reason
    /// that says why (untrusted issuer, wrong name, expired…). The corresponding C function
    /// is `SSL_do_handshake`.
    public func handshake() -> TLSConnection.Handshake {
        ERR_clear_error()
        let rc = SSL_do_handshake(ssl)
        if rc == 1 { return .done }
        switch SSL_get_error(ssl, rc) {
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        default:
            let verified = SSL_get_verify_result(ssl)
            if verified != X509_V_OK {
                ERR_clear_error()
                let why = String(cString: X509_verify_cert_error_string(verified))
                return .failed("the certificate of \(serverName) was not accepted: \(why)")
            }
            if ERR_peek_error() == 0 { return .failed("the server closed the connection during the handshake") }
            return .failed(lastError())
        }
    }

    /// Decrypts into `buffer` (up to its size). `.closed` at the end of the stream.
    /// The corresponding C function is `SSL_read_ex`.
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> TLSConnection.Transfer {
        guard buffer.count > 0 else { return .done(0) }
        ERR_clear_error()
        var n = 0
        let rc = SSL_read_ex(ssl, buffer.baseAddress, buffer.count, &n)
        if rc == 1 { return .done(n) }
        return outcome(rc)
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

    /// Encrypts and sends `bytes` (partial writes allowed), for callers that keep no pointers.
    public func write(_ bytes: ArraySlice<UInt8>) -> TLSConnection.Transfer {
        bytes.withUnsafeBytes { write($0) }
    }

    /// Decrypts up to `max` bytes, for callers that keep no pointers: the bytes (empty unless
    /// the outcome is `.done`) and the outcome.
    public func read(max: Int) -> (bytes: [UInt8], outcome: TLSConnection.Transfer) {
        var buffer = [UInt8](repeating: 0, count: max)
        let outcome = buffer.withUnsafeMutableBytes { read(into: $0) }
        guard case .done(let n) = outcome else { return ([], outcome) }
        return (Array(buffer[0..<n]), outcome)
    }

    /// Sends close_notify (best effort). The corresponding C function is `SSL_shutdown`.
    public func shutdown() {
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    /// Maps a failed read or write to a `Transfer`.
    private func outcome(_ rc: Int32) -> TLSConnection.Transfer {
        switch SSL_get_error(ssl, rc) {
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        case SSL_ERROR_ZERO_RETURN: return .closed
        case SSL_ERROR_SYSCALL:
            if ERR_peek_error() == 0 { return .closed }
            return .failed(lastError())
        default:
            return .failed(lastError())
        }
    }
}
