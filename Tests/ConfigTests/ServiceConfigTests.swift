import Testing
@testable import Config
import Routing

/// `services` and `releaseGroups` in the configuration file.
@Suite("Services in the configuration file")
struct ServiceConfigTests {
    func parse(_ json: String) throws(ConfigError) -> ProxyConfig {
        try ConfigFile.parse(Array(json.utf8), resolve: { _ in true }, newUUID: { "gen" })
    }

    func error(_ json: String) -> String? {
        do { _ = try parse(json); return nil } catch { return error.description }
    }

    static let cluster = #"{"servers":[{"hostname":"127.0.0.1","port":1}],"version":"1.0","uuid":"UUID"}"#

    func service(_ name: String, hosts: String, prefix: String = "/", extra: String = "") -> String {
        #"{"name":"\#(name)","hosts":\#(hosts),"pathPrefix":"\#(prefix)"\#(extra),"clusters":[\#(Self.cluster.replacingOccurrences(of: "UUID", with: name))]}"#
    }

    @Test func servicesAloneNeedNoDefaultCluster() throws {
        let config = try parse(#"{"services":[\#(service("shop", hosts: #"["shop.test","*.shop.test"]"#))]}"#)
        #expect(config.clusters.isEmpty)
        #expect(config.services.map(\.spec.name) == ["shop"])
        #expect(config.services[0].spec.hosts == ["shop.test", "*.shop.test"])
        #expect(config.services[0].clusters.map(\.uuid) == ["shop"])
    }

    @Test func errorsNameTheField() {
        #expect(error(#"{"services":[\#(service("shop", hosts: #"["shop.test:80"]"#))]}"#)?.hasPrefix("services[0].hosts[0]:") == true)
        #expect(error(#"{"services":[\#(service("Shop", hosts: #"["shop.test"]"#))]}"#)?.hasPrefix("services[0].name:") == true)
        #expect(error(#"{"services":[\#(service("shop", hosts: #"["a.test"]"#)),\#(service("shop2", hosts: #"["A.test"]"#))]}"#)?
            .hasPrefix("services[1].hosts[0]:") == true)
        #expect(error(#"{"services":[\#(service("shop", hosts: #"["a.test"]"#, prefix: "x"))]}"#)?.hasPrefix("services[0].pathPrefix:") == true)
        // A uuid is unique across services and the default clusters.
        let clash = #"{"cluster":\#(Self.cluster.replacingOccurrences(of: "UUID", with: "shop")),"services":[\#(service("shop", hosts: #"["a.test"]"#))]}"#
        #expect(error(clash) == "clusters[0].uuid: \"shop\" is already used by services[0].clusters[0]")
    }

    @Test func aReleaseGroupNeedsASharedHostOrACookieDomain() throws {
        let group = #","releaseGroup":"web""#
        let apart = #"{"services":[\#(service("front", hosts: #"["www.test"]"#, extra: group)),\#(service("api", hosts: #"["api.test"]"#, extra: group))]}"#
        #expect(error(apart)?.hasPrefix("services[1].releaseGroup:") == true)
        let withDomain = apart.dropLast() + #","releaseGroups":{"web":{"cookieDomain":"Example.com"}}}"#
        let config = try parse(String(withDomain))
        #expect(config.releaseGroups["web"]?.cookieDomain == "example.com")
        let shared = #"{"services":[\#(service("front", hosts: #"["shop.test"]"#, extra: group)),\#(service("api", hosts: #"["shop.test"]"#, prefix: "/api", extra: group))]}"#
        #expect(try parse(shared).services.allSatisfy { $0.spec.releaseGroup == "web" })
    }
}
