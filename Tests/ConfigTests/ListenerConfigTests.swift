import Foundation
import Testing
@testable import Config

/// `proxy.listeners` and their `tls` objects: what is accepted, and errors that name the field.
@Suite("Listener configuration")
struct ListenerConfigTests {
    let resolveAll: (String) -> Bool = { _ in true }

    /// A config file around `proxy` (a JSON object text).
    func parse(_ proxy: String) throws(ConfigError) -> ProxyConfig {
        try ConfigFile.parse(Array(#"{"cluster": {"servers": [{"port": 1034}]}, "proxy": \#(proxy)}"#.utf8), resolve: resolveAll)
    }

    func error(_ proxy: String) -> ConfigError? {
        do { _ = try parse(proxy); return nil } catch { return error }
    }

    @Test("listeners with and without TLS; defaults; the handshake timeout")
    func accepted() throws {
        // Any readable file passes here; PEM contents are checked when the TLS module loads them.
        let file = "/proc/self/status"
        let config = try parse(#"{"listeners": [{"port": 443, "tls": {"certificates": [{"cert": "\#(file)", "key": "\#(file)"}], "minVersion": "1.3", "ciphers": "ECDHE+AESGCM", "ticketKeyRotationSeconds": 60}}, {"port": 80}], "timeouts": {"clientHandshakeSeconds": 2.5}}"#)
        #expect(config.listeners?.map(\.port) == [443, 80])
        let tls = try #require(config.listeners?[0].tls)
        #expect(tls.certificates == [TLSListenerConfig.Certificate(cert: file, key: file)])
        #expect(tls.minVersion == "1.3")
        #expect(tls.ciphers == "ECDHE+AESGCM")
        #expect(tls.alpn == ["http/1.1"])
        #expect(tls.ticketKeyRotationSeconds == 60)
        #expect(config.listeners?[1].tls == nil)
        #expect(config.timeouts.clientHandshakeSeconds == 2.5)
        #expect(try parse(#"{"port": 8080}"#).listeners == nil, "proxy.port alone keeps working")
        #expect(try parse(#"{"port": 8080}"#).timeouts.clientHandshakeSeconds == 10)
    }

    @Test("errors name the field", arguments: [
        (#"{"listeners": []}"#, "proxy.listeners"),
        (#"{"listeners": [{"tls": {}}]}"#, "proxy.listeners[0].port"),
        (#"{"listeners": [{"port": 80}, {"port": 80}]}"#, "proxy.listeners[1].port"),
        (#"{"listeners": [{"port": 443, "tls": {}}]}"#, "proxy.listeners[0].tls.certificates"),
        (#"{"listeners": [{"port": 443, "tls": {"certificates": [{"cert": "/nonexistent.pem", "key": "/proc/self/status"}]}}]}"#,
         "proxy.listeners[0].tls.certificates[0].cert"),
        (#"{"listeners": [{"port": 443, "tls": {"certificates": [{"cert": "/proc/self/status"}]}}]}"#,
         "proxy.listeners[0].tls.certificates[0].key"),
        (#"{"listeners": [{"port": 443, "tls": {"certificates": [{"cert": "/proc/self/status", "key": "/proc/self/status"}], "alpn": ["h2"]}}]}"#,
         "proxy.listeners[0].tls.alpn"),
        (#"{"listeners": [{"port": 443, "tls": {"certificates": [{"cert": "/proc/self/status", "key": "/proc/self/status"}], "minVersion": "1.1"}}]}"#,
         "proxy.listeners[0].tls.minVersion"),
        (#"{"listeners": [{"port": 443, "tls": {"certificates": [{"cert": "/proc/self/status", "key": "/proc/self/status"}], "sni": true}}]}"#,
         "proxy.listeners[0].tls.sni"),
        (#"{"timeouts": {"clientHandshakeSeconds": 0}}"#, "proxy.timeouts.clientHandshakeSeconds"),
    ])
    func refused(_ proxy: String, field: String) {
        #expect(error(proxy)?.field == field, "\(error(proxy)?.description ?? "accepted")")
    }
}
