import Admin
import Config
import Observability
import Proxy
import Syscalls
import TLS

/// Listeners from `proxy.listeners`: which one is the main (plain) listener, which are extra,
/// and the TLS endpoints with their certificates loaded.
extension Launcher {
    /// What `proxy.listeners` (or `proxy.port` alone) asks for.
    struct ListenerPlan {
        /// The plain listener the workers own directly; nil when every listener has TLS.
        var main: SocketAddress?
        /// The other listeners, in configuration order.
        var extra: [ListenerSpec]
    }

    /// The TLS settings of a listener's `tls` object.
    static func tlsSettings(_ config: TLSListenerConfig) -> TLSSettings {
        var settings = TLSSettings(certificates: config.certificates.map { TLSSettings.Certificate(cert: $0.cert, key: $0.key) })
        settings.minVersion = TLSSettings.Version(rawValue: config.minVersion) ?? .tls12
        settings.ciphers = config.ciphers
        settings.alpn = config.alpn
        settings.sessionTickets = config.sessionTickets
        return settings
    }

    /// Resolves the listeners and loads every TLS listener's certificates. Without
    /// `proxy.listeners`, `proxy.port` is the one plain listener; with it, the first plain
    /// listener is the main one. Throws `UsageError` naming the field at fault.
    static func listenerPlan(_ config: ProxyConfig) throws(UsageError) -> ListenerPlan {
        func address(_ port: Int, _ field: String) throws(UsageError) -> SocketAddress {
            guard let address = SocketAddress(host: config.proxyHost, port: port) else {
                throw UsageError(description: "\(field): cannot resolve \"\(config.proxyHost)\"")
            }
            return address
        }
        guard let listeners = config.listeners else {
            return ListenerPlan(main: try address(config.proxyPort, "proxy.hostname"), extra: [])
        }
        var plan = ListenerPlan(main: nil, extra: [])
        let kernelOffers = KernelTLS.offeredByKernel()
        for (i, listener) in listeners.enumerated() {
            let field = "proxy.listeners[\(i)]"
            let bound = try address(listener.port, field)
            guard let tls = listener.tls else {
                if plan.main == nil { plan.main = bound } else { plan.extra.append(ListenerSpec(address: bound, tls: nil)) }
                continue
            }
            do {
                let endpoint = try TLSEndpoint(settings: tlsSettings(tls), field: field + ".tls", kernelOffers: kernelOffers)
                plan.extra.append(ListenerSpec(address: bound, tls: endpoint))
            } catch {
                throw UsageError(description: "\(field).tls.\(error.field): \(error.message)")
            }
        }
        return plan
    }

    /// Rotates each TLS listener's session ticket keys on the control-plane thread, every
    /// `tls.ticketKeyRotationSeconds`.
    static func scheduleTicketRotation(_ config: ProxyConfig, _ proxy: ProxyServer, _ control: ControlPlane) {
        let periods = (config.listeners ?? []).compactMap(\.tls).map(\.ticketKeyRotationSeconds)
        let endpoints = proxy.listeners.compactMap(\.tls)
        for (endpoint, seconds) in zip(endpoints, periods) {
            guard let keys = endpoint.ticketKeys else { continue }
            control.every(UInt64(seconds * 1e9)) {
                if !keys.rotate() { Log.error("tls_ticket_rotation_failed", ["listener": endpoint.field]) }
            }
        }
    }

    /// The admin API's certificates (`configService.tls`) loaded, or nil for a plain API.
    /// Throws `UsageError` naming the field at fault (`configService.tls.certificates[0].cert: …`).
    static func adminEndpoint(_ config: ProxyConfig) throws(UsageError) -> TLSEndpoint? {
        guard let tls = config.adminTLS else { return nil }
        do {
            // The API's few connections always go through OpenSSL: kTLS is not asked for.
            return try TLSEndpoint(settings: tlsSettings(tls), field: "configService.tls", kernelOffers: false)
        } catch {
            throw UsageError(description: "configService.tls.\(error.field): \(error.message)")
        }
    }

    /// The TLS listeners as bound, for the API; the admin API's own (on `adminFD`) comes last.
    static func tlsListenerSet(_ proxy: ProxyServer, admin: TLSEndpoint? = nil, adminFD: Int32 = -1) -> TLSListenerSet? {
        var listeners = proxy.listeners.compactMap { bound in bound.tls.map { TLSListenerSet.Listener(port: bound.port, endpoint: $0) } }
        if let admin {
            let port = (try? Socket.localAddress(adminFD).port) ?? 0
            listeners.append(TLSListenerSet.Listener(port: port, endpoint: admin, admin: true))
        }
        return listeners.isEmpty ? nil : TLSListenerSet(listeners)
    }

    /// Rotates the admin API's session ticket keys every `configService.tls.ticketKeyRotationSeconds`.
    static func scheduleAdminTicketRotation(_ config: ProxyConfig, _ endpoint: TLSEndpoint?, _ control: ControlPlane) {
        guard let endpoint, let keys = endpoint.ticketKeys, let seconds = config.adminTLS?.ticketKeyRotationSeconds else { return }
        control.every(UInt64(seconds * 1e9)) {
            if !keys.rotate() { Log.error("tls_ticket_rotation_failed", ["listener": endpoint.field]) }
        }
    }

    /// One start-up line per extra listener: its port and, for TLS, which data path it uses.
    static func logListeners(_ proxy: ProxyServer) {
        for bound in proxy.listeners {
            if let tls = bound.tls {
                Log.notice("listening", ["port": String(bound.port), "tls": "yes", "path": tls.path, "reason": tls.pathReason,
                                         "certificates": tls.certificates.map(\.subject).joined(separator: "; ")])
            } else {
                Log.notice("listening", ["port": String(bound.port), "tls": "no"])
            }
        }
    }

    /// SIGHUP: TLS listeners, and the admin API's, load the certificate files the re-read
    /// configuration names (in order; a changed set of listeners needs a restart). Bad files
    /// keep the old certificates.
    static func reloadTLS(_ next: ProxyConfig, _ tls: TLSListenerSet?) {
        guard let tls else { return }
        var configured = (next.listeners ?? []).compactMap(\.tls).map(tlsSettings)
        if tls.listeners.last?.admin == true, let admin = next.adminTLS { configured.append(tlsSettings(admin)) }
        tls.reload(configured.count == tls.listeners.count ? configured : nil)
    }
}
