import Config
import Foundation
import Observability
import Proxy
import Routing
import TLS

/// The TLS listeners as the control plane sees them: their certificates for `/status` and the
/// metrics, and the reload of their certificate files (`POST /tls/reload`, SIGHUP). The admin
/// API's own listener (`configService.tls`) is one of them, last, marked `admin`.
public final class TLSListenerSet: Sendable {
    /// One TLS listener: the port it is bound to and its endpoint.
    public struct Listener: Sendable {
        public var port: Int
        public var endpoint: TLSEndpoint
        /// True for the admin API's listener, false for a client listener.
        public var admin: Bool

        public init(port: Int, endpoint: TLSEndpoint, admin: Bool = false) {
            self.port = port
            self.endpoint = endpoint
            self.admin = admin
        }
    }

    public let listeners: [Listener]

    public init(_ listeners: [Listener]) {
        self.listeners = listeners
    }

    /// Re-reads every listener's certificate files (`settings[i]`: new paths for listener `i`,
    /// nil to keep its paths). A listener whose files are bad keeps its certificates. Returns
    /// the errors, as `field: message`.
    @discardableResult
    public func reload(_ settings: [TLSSettings?]? = nil) -> [String] {
        var errors: [String] = []
        for (i, listener) in listeners.enumerated() {
            let wanted = settings.flatMap { i < $0.count ? $0[i] : nil }
            if let error = listener.endpoint.reload(wanted) {
                errors.append("\(listener.endpoint.field).\(error.field): \(error.message)")
            }
        }
        return errors
    }

    /// `POST /tls/reload`: 200 with the certificates now in force, or 422 naming what could not
    /// be loaded (those listeners keep their previous certificates).
    func handleReload(_ request: AdminRequest) -> AdminResponse {
        guard request.method == "POST" else {
            return AdminResponse(status: 405, body: Array("method not allowed; use POST\n".utf8), extraHeaders: ["Allow: POST"])
        }
        let errors = reload()
        var body: [String: Any] = ["listeners": status()]
        if !errors.isEmpty { body["errors"] = errors }
        return .json(errors.isEmpty ? 200 : 422, JSONText.encode(body))
    }

    /// The `tls` entry of `/status`: per listener, its port, data path and certificates.
    func status() -> [Any] {
        let now = Int64(Date().timeIntervalSince1970)
        return listeners.map { listener -> Any in
            let endpoint = listener.endpoint
            var entry: [String: Any] = [
                "port": listener.port,
                "path": endpoint.path,
                "pathReason": endpoint.pathReason,
                "handshakes": endpoint.handshakes.load(ordering: .relaxed),
                "resumed": endpoint.resumed.load(ordering: .relaxed),
                "handshakeFailures": endpoint.failures.load(ordering: .relaxed),
                "kernelTLSConnections": endpoint.kernelConnections.load(ordering: .relaxed),
                "ticketKeyRotations": endpoint.ticketKeys?.rotations ?? 0,
                "certificates": endpoint.certificates.map { info -> Any in
                    [
                        "file": info.file,
                        "subject": info.subject,
                        "names": info.names,
                        "notAfter": iso8601(unixSeconds: info.notAfter),
                        "expiresInSeconds": Int(info.notAfter - now),
                    ] as [String: Any]
                },
            ]
            if listener.admin {
                // The API's few connections always read through OpenSSL; kTLS is not asked for.
                entry["role"] = "admin"
                entry["pathReason"] = "the admin API reads and writes through OpenSSL"
            }
            if let error = endpoint.lastReloadError { entry["lastReloadError"] = error }
            return entry
        }
    }

    /// The TLS metric families.
    func metrics() -> String {
        func escape(_ s: String) -> String {
            s.replacingAll("\\", "\\\\").replacingAll("\"", "\\\"").replacingAll("\n", "\\n")
        }
        let now = Int64(Date().timeIntervalSince1970)
        var out = "# HELP switchyard_tls_certificate_expiry_seconds Seconds until the certificate expires (negative once expired).\n"
        out += "# TYPE switchyard_tls_certificate_expiry_seconds gauge\n"
        for listener in listeners {
            for info in listener.endpoint.certificates {
                out += "switchyard_tls_certificate_expiry_seconds{port=\"\(listener.port)\",subject=\"\(escape(info.subject))\",file=\"\(escape(info.file))\"} \(info.notAfter - now)\n"
            }
        }
        out += "# HELP switchyard_tls_handshakes_total TLS handshakes completed (resumed ones also count in switchyard_tls_resumed_total).\n"
        out += "# TYPE switchyard_tls_handshakes_total counter\n"
        for l in listeners { out += "switchyard_tls_handshakes_total{port=\"\(l.port)\"} \(l.endpoint.handshakes.load(ordering: .relaxed))\n" }
        out += "# HELP switchyard_tls_resumed_total TLS handshakes that resumed a session.\n# TYPE switchyard_tls_resumed_total counter\n"
        for l in listeners { out += "switchyard_tls_resumed_total{port=\"\(l.port)\"} \(l.endpoint.resumed.load(ordering: .relaxed))\n" }
        out += "# HELP switchyard_tls_handshake_failures_total TLS handshakes that failed or timed out.\n"
        out += "# TYPE switchyard_tls_handshake_failures_total counter\n"
        for l in listeners { out += "switchyard_tls_handshake_failures_total{port=\"\(l.port)\"} \(l.endpoint.failures.load(ordering: .relaxed))\n" }
        return out
    }
}
