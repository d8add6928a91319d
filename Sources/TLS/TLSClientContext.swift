import COpenSSL

/// The client side of TLS, for connections this process opens: an `SSL_CTX` made with
/// `TLS_client_method`, TLS 1.2 (or `minVersion`) or later, ALPN `http/1.1`, and either the
/// server's certificate checked (chain against `caFile` or the system's store; the name is set
/// per connection, see `TLSConnection.init(client:…)`) or no check at all. Used for a cluster's
/// backends, by `switchyard ctl` and by the benchmark's load generator.
///
/// Made once (per cluster, per command, per benchmark run) and shared by every connection
/// started from it (an `SSL_CTX` is safe to use from several threads once set up).
public final class TLSClientContext: @unchecked Sendable {
    let ctx: OpaquePointer
    /// Whether connections check the backend's certificate.
    public let verify: Bool

    /// Makes the context. `caFile`: PEM bundle of trusted authorities (nil: the system's
    /// store). `minVersion`: the oldest protocol offered. `ciphersuites`: OpenSSL's TLS 1.3
    /// suite list (nil: its default). Throws `TLSError` (field `caFile` or `ciphersuites`) when
    /// the bundle or the suites cannot be used.
    public init(caFile: String?, verify: Bool, minVersion: TLSSettings.Version = .tls12, ciphersuites: String? = nil) throws(TLSError) {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_client_method()) else {
            throw TLSError(field: "tls", message: "OpenSSL could not make a context: \(lastError())")
        }
        _ = sy_ctx_set_min_proto_version(ctx, minVersion == .tls13 ? TLS1_3_VERSION : TLS1_2_VERSION)
        if let ciphersuites, SSL_CTX_set_ciphersuites(ctx, ciphersuites) != 1 {
            let detail = lastError()
            SSL_CTX_free(ctx)
            throw TLSError(field: "ciphersuites", message: "no usable TLS 1.3 suite in \"\(ciphersuites)\": \(detail)")
        }
        _ = SSL_CTX_set_options(ctx, sy_op_no_renegotiation())
        // As on the listener side: the caller's buffer is consumed as records go out, and a
        // pooled idle connection gives its buffers back.
        _ = sy_ctx_set_mode(ctx, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS))
        _ = SSL_CTX_ctrl(ctx, SSL_CTRL_SET_READ_AHEAD, 1, nil)
        // Sessions are kept by the caller (`TLSConnection.resumableSession`), not in a cache. With
        // the client cache on, TLS 1.3 marks a session used to resume not resumable and the
        // ticket that follows inherits the mark, so every other connection would be a full one.
        _ = sy_ctx_set_session_cache_mode(ctx, Int(SSL_SESS_CACHE_OFF))
        let alpn: [UInt8] = [8] + Array("http/1.1".utf8)
        // Unlike most of OpenSSL, 0 is success here.
        if SSL_CTX_set_alpn_protos(ctx, alpn, UInt32(alpn.count)) != 0 {
            SSL_CTX_free(ctx)
            throw TLSError(field: "tls", message: "OpenSSL refused the ALPN list: \(lastError())")
        }
        if verify {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
            if let caFile {
                if SSL_CTX_load_verify_locations(ctx, caFile, nil) != 1 {
                    let detail = lastError()
                    SSL_CTX_free(ctx)
                    throw TLSError(field: "caFile", message: "cannot load \(caFile): \(detail)")
                }
            } else if SSL_CTX_set_default_verify_paths(ctx) != 1 {
                let detail = lastError()
                SSL_CTX_free(ctx)
                throw TLSError(field: "caFile", message: "the system's certificate store cannot be loaded: \(detail)")
            }
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
        }
        self.ctx = ctx
        self.verify = verify
    }

    deinit { SSL_CTX_free(ctx) }
}

/// A TLS session kept to resume the next connection to the same backend (an abbreviated
/// handshake: no certificate sent or checked again, no key exchange signature).
public final class TLSSession: @unchecked Sendable {
    let session: OpaquePointer

    /// Takes over one reference to `session`.
    init(_ session: OpaquePointer) { self.session = session }

    deinit { SSL_SESSION_free(session) }
}
