import Config
import Foundation
import Testing

/// The example configuration shipped in deploy/ must stay valid.
@Test("deploy/switchyard.json parses and says what it claims")
func deployConfigParses() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let data = try Data(contentsOf: root.appendingPathComponent("deploy/switchyard.json"))
    let config = try ConfigFile.parse([UInt8](data), resolve: { _ in true })
    #expect(config.proxyPort == 80)
    #expect(config.adminHost == "127.0.0.1")
    #expect(config.adminToken == "change-me")
    #expect(config.clusters.map(\.uuid) == ["app-v1"])
    #expect(config.clusters.first?.servers.count == 2)
    #expect(config.stateDir == "/var/lib/switchyard")
    #expect(config.logLevel == "NOTICE")
    let unit = try String(contentsOf: root.appendingPathComponent("deploy/switchyard.service"), encoding: .utf8)
    #expect(unit.contains("StateDirectory=switchyard"))
    #expect(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"))
}
