import Foundation
import Routing
import Testing
@testable import Config

/// hosts(5) parsing, the `resolver` settings and lazy servers.
@Suite("Hosts file and resolver settings")
struct HostsFileTests {
    @Test("a hosts file maps names to every address listed for them, in file order")
    func parse() {
        let hosts = HostsFile(text: """
            # comment line
            127.0.0.1   localhost api.test   # trailing comment
            10.0.0.7\tAPI.test
            10.0.0.7 api.test
            ::1 ip6.test

            not-an-address name.test
            300.1.1.1 bad.test
            192.168.1.1
            """)
        #expect(hosts.addresses(of: "api.test") == ["127.0.0.1", "10.0.0.7"])
        #expect(hosts.addresses(of: "Api.Test") == ["127.0.0.1", "10.0.0.7"])
        #expect(hosts.addresses(of: "localhost") == ["127.0.0.1"])
        #expect(hosts.addresses(of: "ip6.test") == ["::1"])
        #expect(hosts.addresses(of: "name.test").isEmpty)
        #expect(hosts.addresses(of: "bad.test").isEmpty)
        #expect(hosts.addresses(of: "missing.test").isEmpty)
        #expect(HostsFile(text: "").names.isEmpty)
        #expect(HostsFile(path: "/nonexistent/hosts").names.isEmpty)
    }

    static func config(_ extra: String, server: String = #"{"hostname": "127.0.0.1", "port": 8080}"#) -> [UInt8] {
        Array(#"{"cluster": {"servers": [\#(server)], "version": "1.0", "uuid": "9b2f1c3e-0d4a-4e7b-8c5f-1a2b3c4d5e6f"}\#(extra)}"#.utf8)
    }

    @Test("resolver settings: defaults, values and clear errors")
    func settings() throws {
        #expect(try ConfigFile.parse(Self.config(""), resolve: { _ in true }).resolver == ResolverSettings(resolveSeconds: 30, hostsFile: nil))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hosts-\(UUID().uuidString)")
        try Data("127.0.0.1 pinned.test\n".utf8).write(to: dir)
        let c = try ConfigFile.parse(Self.config(#", "resolver": {"resolveSeconds": 0, "hostsFile": "\#(dir.path)"}"#), resolve: { _ in true })
        #expect(c.resolver == ResolverSettings(resolveSeconds: 0, hostsFile: dir.path))
        #expect(throws: ConfigError(field: "resolver.resolveSeconds", message: "must be a number between 0 and 86400")) {
            try ConfigFile.parse(Self.config(#", "resolver": {"resolveSeconds": -1}"#), resolve: { _ in true })
        }
        #expect(throws: ConfigError(field: "resolver.hostsFile", message: "cannot read \"/nonexistent/hosts\"")) {
            try ConfigFile.parse(Self.config(#", "resolver": {"hostsFile": "/nonexistent/hosts"}"#), resolve: { _ in true })
        }
        // A name the hosts file pins resolves even when the system resolver does not know it.
        let pinned = try ConfigFile.parse(Self.config(#", "resolver": {"hostsFile": "\#(dir.path)"}"#,
                                                      server: #"{"hostname": "pinned.test", "port": 80}"#), resolve: { _ in false })
        #expect(pinned.clusters[0].servers == [ServerAddress(hostname: "pinned.test", port: 80)])
    }

    @Test("a name that does not resolve is an error unless the server is lazy")
    func lazy() throws {
        #expect(throws: ConfigError(field: "cluster.servers[0].hostname", message: "cannot resolve \"later.test\"")) {
            try ConfigFile.parse(Self.config("", server: #"{"hostname": "later.test", "port": 80}"#), resolve: { _ in false })
        }
        let c = try ConfigFile.parse(Self.config("", server: #"{"hostname": "later.test", "port": 80, "resolve": "lazy"}"#), resolve: { _ in false })
        #expect(c.clusters[0].servers[0].lazy)
        let rendered = ClusterJSON.render(c.clusters[0], failed: nil)["cluster"] as! [String: Any]
        let server = (rendered["servers"] as! [[String: Any]])[0]
        #expect(server["resolve"] as? String == "lazy")
        #expect(throws: ConfigError(field: "cluster.servers[0].resolve", message: "must be \"load\" (the default) or \"lazy\"")) {
            try ConfigFile.parse(Self.config("", server: #"{"hostname": "a.test", "port": 80, "resolve": "later"}"#), resolve: { _ in true })
        }
    }
}
