import COpenSSL

/// The TLS side of one cluster's backend connections: an `SSL_CTX` made with
/// `TLS_client_method`, TLS 1.2 or later, ALPN `http/1.1`, and either the backend's
/// certificate checked (chain against `caFile` or the system's store; the name is set per
/// connection, see `TLSConnection.init(client:…)`) or no check at all.
///
/// Made once when the cluster is configured and shared by every worker's connections to its
/// backends (an `SSL_CTX` is safe to use from several threads once set up).
public final class TLSClientContext: @unchecked Sendable {
    let ctx: OpaquePointer
    /// Whether connections check the backend's certificate.
    public let verify: Bool

    /// Makes the context. `caFile`: PEM bundle of trusted authorities (nil: the system's
    /// store). Throws `TLSError` (field `caFile`) when the bundle cannot be loaded.
    public init(caFile: String?, verify: Bool) throws(TLSError) {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_client_method()) else {
            throw TLSError(field: "tls", message: "OpenSSL could not make a context: \(lastError())")
        }
        _ = sy_ctx_set_min_proto_version(ctx, TLS1_2_VERSION)
        _ = SSL_CTX_set_options(ctx, sy_op_no_renegotiation())
        // As on the listener side: the caller's buffer is consumed as records go out, and a
        // pooled idle connection gives its buffers back.
        _ = sy_ctx_set_mode(ctx, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS))
        _ = SSL_CTX_ctrl(ctx, SSL_CTRL_SET_READ_AHEAD, 1, nil)
        // Sessions are kept per backend by the caller (`TLSConnection.resumableSession`).
        _ = sy_ctx_set_session_cache_mode(ctx, Int(SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE))
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
