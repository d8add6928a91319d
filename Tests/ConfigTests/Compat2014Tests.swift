import Routing
import Testing
@testable import Config

/// The 2014 spellings: `servers[i].ip`, numeric versions kept as written.
@Suite("2014 formats")
struct Compat2014Tests {
    @Test("servers[i].ip is a synonym of hostname; output uses hostname")
    func ipSynonym() throws {
        let spec = try parseBody(body(servers: #"[{"ip":"10.0.0.7","port":8091}]"#))
        #expect(spec.servers == [ServerAddress(hostname: "10.0.0.7", port: 8091)])
        let rendered = String(decoding: ClusterJSON.renderOne(spec, failed: nil), as: UTF8.self)
        #expect(rendered.contains(#""hostname":"10.0.0.7""#))
        #expect(throws: ConfigError(field: "cluster.servers[0].ip", message: "cannot resolve \"x.invalid\"")) {
            _ = try parseBody(body(servers: #"[{"ip":"x.invalid","port":1}]"#))
        }
    }

    @Test("a numeric version keeps its source text", arguments: [
        ("1.1", "1.1"), ("1.10", "1.10"), ("2", "2"), ("1.0", "1.0"), ("3.14159265358979323846", "3.14159265358979323846"), ("1e2", "1e2"),
    ])
    func numericVersion(_ literal: String, _ expected: String) throws {
        #expect(try parseBody(body(#""version":\#(literal)"#)).version == expected)
        let file = #"{"cluster":{"servers":[{"port":1034}],"version":\#(literal)}}"#
        #expect(try ConfigFile.parse(Array(file.utf8), resolve: resolve).clusters[0].version == expected)
    }

    @Test("numbers elsewhere still read as numbers when their text is kept")
    func numbersStillNumbers() throws {
        let file = #"{"cluster":{"servers":[{"port":1034}],"upgradeTransition":{"mode":"GRADUAL","percentageTransitionPerRequest":2.5}},"proxy":{"timeouts":{"clientHeadSeconds":1.5}},"rollback":{"maxFailureRatio":0.25}}"#
        let config = try ConfigFile.parse(Array(file.utf8), resolve: resolve)
        #expect(config.clusters[0].percentageTransitionPerRequest == 2.5)
        #expect(config.timeouts.clientHeadSeconds == 1.5)
        #expect(config.rollback.maxFailureRatio == 0.25)
        // The plain parser still gives Doubles.
        #expect(try JSONText.parse(Array("1.10".utf8)) as? Double == 1.1)
        #expect(try JSONText.parse(Array("1.10".utf8), keepingNumberText: true) as? JSONNumber == JSONNumber(value: 1.1, text: "1.10"))
    }

    @Test("state.dir and logLevel")
    func stateAndLogLevel() throws {
        let file = #"{"cluster":{"servers":[{"port":1034}]},"state":{"dir":"/var/lib/switchyard"},"logLevel":"notice"}"#
        let config = try ConfigFile.parse(Array(file.utf8), resolve: resolve)
        #expect(config.stateDir == "/var/lib/switchyard")
        #expect(config.logLevel == "NOTICE")
        let plain = try ConfigFile.parse(Array(#"{"cluster":{"servers":[{"port":1034}]}}"#.utf8), resolve: resolve)
        #expect(plain.stateDir == nil && plain.logLevel == nil)
    }
}
