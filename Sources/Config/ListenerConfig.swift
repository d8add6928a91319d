import Foundation

/// One client listener (`proxy.listeners[]`): a port, plain or with TLS.
public struct ListenerConfig: Sendable, Equatable {
    /// Port to listen on; 0 picks a free port.
    public var port: Int
    /// TLS termination on this listener; nil for plain HTTP.
    public var tls: TLSListenerConfig?

    public init(port: Int, tls: TLSListenerConfig? = nil) {
        self.port = port
        self.tls = tls
    }
}

/// A listener's `tls` object. Files are checked here for existence; whether they hold a
/// matching PEM certificate and key is checked when they are loaded (at start and on reload).
public struct TLSListenerConfig: Sendable, Equatable {
    /// A certificate chain file and its key file.
    public struct Certificate: Sendable, Equatable {
        public var cert: String
        public var key: String

        public init(cert: String, key: String) {
            self.cert = cert
            self.key = key
        }
    }

    /// Certificates; the first is the default when SNI matches no other.
    public var certificates: [Certificate]
    /// `"1.2"` or `"1.3"`.
    public var minVersion = "1.2"
    /// OpenSSL cipher list for TLS 1.2; nil keeps OpenSSL's default.
    public var ciphers: String?
    /// ALPN protocols; only `http/1.1` is served.
    public var alpn = ["http/1.1"]
    /// How often the in-memory session ticket key is replaced (a ticket resumes for one to two periods).
    public var ticketKeyRotationSeconds: Double = 43200
    /// Session tickets sent after each handshake (0: none, no resumption by ticket).
    public var sessionTickets = 1

    public init(certificates: [Certificate]) {
        self.certificates = certificates
    }
}

extension ConfigFile {
    /// Parses `proxy.listeners` (nil when absent).
    static func parseListeners(_ proxy: inout Fields) throws(ConfigError) -> [ListenerConfig]? {
        guard let raw = proxy.raw("listeners") else { return nil }
        guard let list = raw as? [Any], !list.isEmpty else {
            throw proxy.fail("listeners", "must be a non-empty array of listeners")
        }
        var listeners: [ListenerConfig] = []
        var ports = Set<Int>()
        for (i, element) in list.enumerated() {
            let path = "proxy.listeners[\(i)]"
            guard let object = element as? [String: Any] else { throw ConfigError(field: path, message: "must be an object") }
            var fields = Fields(object, path: path)
            guard let port = try fields.int("port", in: 0...65535) else { throw fields.fail("port", "missing") }
            if port != 0 && !ports.insert(port).inserted { throw fields.fail("port", "\(port) is listed twice") }
            var listener = ListenerConfig(port: port)
            if var tls = try fields.object("tls") {
                listener.tls = try parseTLS(&tls)
            }
            try fields.rejectUnknown()
            listeners.append(listener)
        }
        return listeners
    }

    /// Parses one listener's `tls` object.
    static func parseTLS(_ tls: inout Fields) throws(ConfigError) -> TLSListenerConfig {
        guard let raw = tls.raw("certificates") else { throw tls.fail("certificates", "missing (give at least one {\"cert\", \"key\"})") }
        guard let list = raw as? [Any], !list.isEmpty else { throw tls.fail("certificates", "must be a non-empty array") }
        var certificates: [TLSListenerConfig.Certificate] = []
        for (i, element) in list.enumerated() {
            guard let object = element as? [String: Any] else {
                throw tls.fail("certificates[\(i)]", "must be an object with \"cert\" and \"key\"")
            }
            var fields = Fields(object, path: tls.pathOf("certificates[\(i)]"))
            var paths: [String] = []
            for name in ["cert", "key"] {
                guard let path = try fields.string(name), !path.isEmpty, !path.utf8.contains(0) else {
                    throw fields.fail(name, "missing (a PEM file path)")
                }
                guard FileManager.default.isReadableFile(atPath: path) else { throw fields.fail(name, "cannot read \(path)") }
                paths.append(path)
            }
            try fields.rejectUnknown()
            certificates.append(TLSListenerConfig.Certificate(cert: paths[0], key: paths[1]))
        }
        var config = TLSListenerConfig(certificates: certificates)
        if let version = try tls.string("minVersion") {
            guard version == "1.2" || version == "1.3" else { throw tls.fail("minVersion", "must be \"1.2\" or \"1.3\"") }
            config.minVersion = version
        }
        if let ciphers = try tls.string("ciphers") {
            guard !ciphers.isEmpty, !ciphers.utf8.contains(0) else { throw tls.fail("ciphers", "must be an OpenSSL cipher list") }
            config.ciphers = ciphers
        }
        if let raw = tls.raw("alpn") {
            guard let names = raw as? [Any], let strings = names as? [String], !strings.isEmpty else {
                throw tls.fail("alpn", "must be a non-empty array of protocol names")
            }
            for name in strings where name != "http/1.1" {
                throw tls.fail("alpn", "\"\(name)\" is not served (only \"http/1.1\")")
            }
            config.alpn = strings
        }
        config.ticketKeyRotationSeconds = try tls.number("ticketKeyRotationSeconds", above: 0, atMost: 7 * 86400)
            ?? config.ticketKeyRotationSeconds
        config.sessionTickets = try tls.int("sessionTickets", in: 0...8) ?? config.sessionTickets
        try tls.rejectUnknown()
        return config
    }
}
