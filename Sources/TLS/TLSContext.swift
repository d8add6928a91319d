import COpenSSL
#if canImport(Glibc)
import Glibc
#endif

/// A listener's TLS configuration loaded into OpenSSL: one `SSL_CTX` per certificate (the SNI
/// callback moves a connection to the right one), ALPN restricted to `http/1.1`, the minimum
/// version, the TLS 1.2 cipher list, and session tickets under rotating in-memory keys
/// (`TicketKeys`; without them, OpenSSL's own random per-context keys).
///
/// Immutable once made, so any reactor may start connections from it; connections keep the
/// context they started with (a reload does not disturb them).
public final class TLSContext: @unchecked Sendable {
    /// One loaded certificate.
    struct Entry {
        let ctx: OpaquePointer
        let info: CertificateInfo
    }

    let entries: [Entry]
    let selector: CertificateSelector
    /// The protocols ALPN accepts, in order of preference.
    let protocols: [String]
    /// The ticket keys the contexts use (held so they outlive them).
    let ticketKeys: TicketKeys?
    /// Connections are asked to hand their records to the kernel (kTLS) after the handshake.
    public let kernelTLSRequested: Bool

    /// Whether the linked OpenSSL knows `SSL_OP_ENABLE_KTLS`.
    static var libraryKnowsKernelTLS: Bool { sy_op_enable_ktls() != 0 }

    /// Loads and checks every certificate and key. Throws `TLSError` naming the certificate
    /// field at fault: a missing file, a file that is not PEM, a key that does not match.
    /// `kernelTLS`: ask OpenSSL to enable kTLS on connections (when the kernel offers it).
    /// `ticketKeys`: session ticket keys shared with other contexts (nil: OpenSSL's own).
    public init(_ settings: TLSSettings, kernelTLS: Bool, ticketKeys: TicketKeys? = nil) throws(TLSError) {
        guard !settings.certificates.isEmpty else {
            throw TLSError(field: "certificates", message: "must list at least one certificate")
        }
        for proto in settings.alpn where proto != "http/1.1" {
            throw TLSError(field: "alpn", message: "\"\(proto)\" is not served (only \"http/1.1\")")
        }
        var made: [Entry] = []
        do throws(TLSError) {
            for (index, certificate) in settings.certificates.enumerated() {
                made.append(try Self.load(certificate, index: index, settings: settings, kernelTLS: kernelTLS))
            }
        } catch {
            for entry in made { SSL_CTX_free(entry.ctx) }
            throw error
        }
        if let ticketKeys {
            for entry in made where sy_ctx_use_ticket_keys(entry.ctx, ticketKeys.keys) != 1 {
                for entry in made { SSL_CTX_free(entry.ctx) }
                throw TLSError(field: "certificates", message: "OpenSSL refused the session ticket keys: \(lastError())")
            }
        }
        self.ticketKeys = ticketKeys
        entries = made
        selector = CertificateSelector(names: made.map(\.info.names))
        protocols = settings.alpn.isEmpty ? ["http/1.1"] : settings.alpn
        kernelTLSRequested = kernelTLS && Self.libraryKnowsKernelTLS
        let me = Unmanaged.passUnretained(self).toOpaque()
        for entry in entries {
            _ = sy_ctx_set_servername_callback(entry.ctx, { ssl, _, arg in
                guard let ssl, let arg else { return SSL_TLSEXT_ERR_OK }
                let context = Unmanaged<TLSContext>.fromOpaque(arg).takeUnretainedValue()
                let name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name).map { String(cString: $0) }
                let index = context.selector.select(name)
                if index != 0 { _ = SSL_set_SSL_CTX(ssl, context.entries[index].ctx) }
                return SSL_TLSEXT_ERR_OK
            }, me)
            SSL_CTX_set_alpn_select_cb(entry.ctx, { ssl, out, outLength, offered, offeredLength, arg in
                guard let ssl, let out, let outLength, let offered, let arg else { return SSL_TLSEXT_ERR_ALERT_FATAL }
                let context = Unmanaged<TLSContext>.fromOpaque(arg).takeUnretainedValue()
                let list = UnsafeBufferPointer(start: offered, count: Int(offeredLength))
                var names: [String] = []
                for wanted in context.protocols {
                    var i = 0
                    while i < list.count {
                        let length = Int(list[i])
                        guard i + 1 + length <= list.count else { break }
                        let name = String(decoding: list[(i + 1)..<(i + 1 + length)], as: UTF8.self)
                        if name == wanted {
                            out.pointee = offered + i + 1
                            outLength.pointee = UInt8(length)
                            return SSL_TLSEXT_ERR_OK
                        }
                        if names.count < 8 { names.append(name) }
                        i += 1 + length
                    }
                }
                if let data = sy_get_app_data(ssl) {
                    Unmanaged<TLSConnection>.fromOpaque(data).takeUnretainedValue().refusedProtocols = names
                }
                return SSL_TLSEXT_ERR_ALERT_FATAL
            }, me)
        }
    }

    deinit {
        for entry in entries { SSL_CTX_free(entry.ctx) }
    }

    /// The certificates, in configuration order.
    public var certificates: [CertificateInfo] { entries.map(\.info) }

    /// Which certificate a client naming `serverName` gets (its index in `certificates`).
    public func certificateIndex(for serverName: String?) -> Int { selector.select(serverName) }

    /// Makes one `SSL_CTX` for `certificate`.
    private static func load(_ certificate: TLSSettings.Certificate, index: Int, settings: TLSSettings,
                             kernelTLS: Bool) throws(TLSError) -> Entry {
        let field = "certificates[\(index)]"
        for (name, path) in [("cert", certificate.cert), ("key", certificate.key)] {
            guard access(path, R_OK) == 0 else {
                throw TLSError(field: "\(field).\(name)", message: "cannot read \(path): \(String(cString: strerror(errno)))")
            }
        }
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_server_method()) else {
            throw TLSError(field: field, message: "OpenSSL could not make a context: \(lastError())")
        }
        func fail(_ name: String, _ message: String) -> TLSError {
            SSL_CTX_free(ctx)
            return TLSError(field: name, message: message)
        }
        let minimum = settings.minVersion == .tls13 ? TLS1_3_VERSION : TLS1_2_VERSION
        _ = sy_ctx_set_min_proto_version(ctx, minimum)
        var options = sy_op_no_renegotiation() | sy_op_cipher_server_preference()
        if kernelTLS { options |= sy_op_enable_ktls() }
        _ = SSL_CTX_set_options(ctx, options)
        // Partial writes and a moving buffer: the caller's buffer is consumed as records go out,
        // so a retried write may start elsewhere. Idle connections give their buffers back.
        _ = sy_ctx_set_mode(ctx, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS))
        // Userspace path: read what the socket holds in one call instead of a record header
        // then its body (two reads per record). Not with kTLS, which takes the socket only
        // when OpenSSL holds no bytes read ahead.
        if !kernelTLS { _ = SSL_CTX_ctrl(ctx, SSL_CTRL_SET_READ_AHEAD, 1, nil) }
        _ = sy_ctx_set_session_cache_mode(ctx, Int(SSL_SESS_CACHE_SERVER))
        let contextID = Array("switchyard".utf8)
        _ = SSL_CTX_set_session_id_context(ctx, contextID, UInt32(contextID.count))
        // Each ticket costs the server a session encoding, an encryption and a write, and the
        // client a decoding: one per handshake instead of OpenSSL's two saves ~6 % of a handshake.
        _ = SSL_CTX_set_num_tickets(ctx, settings.sessionTickets)
        if let ciphers = settings.ciphers, SSL_CTX_set_cipher_list(ctx, ciphers) != 1 {
            throw fail("ciphers", "no usable cipher in \"\(ciphers)\": \(lastError())")
        }
        if SSL_CTX_use_certificate_chain_file(ctx, certificate.cert) != 1 {
            throw fail("\(field).cert", "\(certificate.cert) is not a PEM certificate chain: \(lastError())")
        }
        if SSL_CTX_use_PrivateKey_file(ctx, certificate.key, SSL_FILETYPE_PEM) != 1 {
            // OpenSSL checks the pair as it loads the key: tell a mismatch from an unreadable key.
            let detail = lastError()
            if detail.contains("key values mismatch") {
                throw fail("\(field).key", "\(certificate.key) does not match the certificate in \(certificate.cert)")
            }
            throw fail("\(field).key", "\(certificate.key) is not a PEM private key: \(detail)")
        }
        if SSL_CTX_check_private_key(ctx) != 1 {
            throw fail("\(field).key", "\(certificate.key) does not match the certificate in \(certificate.cert)")
        }
        guard let x509 = SSL_CTX_get0_certificate(ctx) else {
            throw fail("\(field).cert", "\(certificate.cert) holds no certificate")
        }
        return Entry(ctx: ctx, info: describe(x509, file: certificate.cert))
    }

    /// Subject, DNS names and expiry of a certificate.
    private static func describe(_ x509: OpaquePointer, file: String) -> CertificateInfo {
        var text = [CChar](repeating: 0, count: 4096)
        let subjectLength = sy_x509_name_print(X509_get_subject_name(x509), &text, Int32(text.count))
        let subject = String(decoding: text[0..<Int(subjectLength)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let namesLength = Int(sy_x509_dns_names(x509, &text, Int32(text.count)))
        var names = text[0..<namesLength].split(separator: 0).map { String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        if names.isEmpty {
            let n = Int(sy_x509_common_name(x509, &text, Int32(text.count)))
            if n > 0 { names = [String(decoding: text[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)] }
        }
        let notAfter = Int64(time(nil)) + Int64(sy_x509_seconds_to_expiry(x509))
        return CertificateInfo(file: file, subject: subject, names: names, notAfter: notAfter)
    }
}

/// The oldest error on this thread's OpenSSL error queue, as text (the queue is emptied).
func lastError() -> String {
    let code = ERR_get_error()
    ERR_clear_error()
    guard code != 0 else { return "no detail from OpenSSL" }
    var text = [CChar](repeating: 0, count: 256)
    ERR_error_string_n(code, &text, text.count)
    return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
