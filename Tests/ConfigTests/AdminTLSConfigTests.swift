import Testing
@testable import Config

/// `configService.tls`: the same object as a listener's `tls`, with errors that name the field.
@Suite("Admin API TLS configuration")
struct AdminTLSConfigTests {
    /// A config file around `configService` (a JSON object text).
    func parse(_ admin: String) throws(ConfigError) -> ProxyConfig {
        try ConfigFile.parse(Array(#"{"cluster": {"servers": [{"port": 1034}]}, "configService": \#(admin)}"#.utf8), resolve: { _ in true })
    }

    func error(_ admin: String) -> ConfigError? {
        do { _ = try parse(admin); return nil } catch { return error }
    }

    @Test("configService.tls takes a listener's tls object; without it the API is plain")
    func accepted() throws {
        // Any readable file passes here; PEM contents are checked when the TLS module loads them.
        let file = "/proc/self/status"
        let config = try parse(#"{"port": 9443, "token": "t", "tls": {"certificates": [{"cert": "\#(file)", "key": "\#(file)"}], "minVersion": "1.3", "ciphers": "ECDHE+AESGCM"}}"#)
        let tls = try #require(config.adminTLS)
        #expect(tls.certificates == [TLSListenerConfig.Certificate(cert: file, key: file)])
        #expect(tls.minVersion == "1.3")
        #expect(tls.ciphers == "ECDHE+AESGCM")
        #expect(config.adminPort == 9443)
        #expect(config.listeners == nil, "the admin API's TLS adds no client listener")
        #expect(try parse(#"{"port": 9090}"#).adminTLS == nil)
    }

    @Test("errors name the field under configService.tls", arguments: [
        (#"{"tls": {}}"#, "configService.tls.certificates"),
        (#"{"tls": true}"#, "configService.tls"),
        (#"{"tls": {"certificates": [{"cert": "/nonexistent.pem", "key": "/proc/self/status"}]}}"#, "configService.tls.certificates[0].cert"),
        (#"{"tls": {"certificates": [{"cert": "/proc/self/status"}]}}"#, "configService.tls.certificates[0].key"),
        (#"{"tls": {"certificates": [{"cert": "/proc/self/status", "key": "/proc/self/status"}], "minVersion": "1.1"}}"#,
         "configService.tls.minVersion"),
        (#"{"tls": {"certificates": [{"cert": "/proc/self/status", "key": "/proc/self/status"}], "alpn": ["h2"]}}"#,
         "configService.tls.alpn"),
        (#"{"tls": {"certificates": [{"cert": "/proc/self/status", "key": "/proc/self/status"}], "verify": true}}"#,
         "configService.tls.verify"),
    ])
    func refused(_ admin: String, field: String) {
        #expect(error(admin)?.field == field, "\(error(admin)?.description ?? "accepted")")
    }
}
