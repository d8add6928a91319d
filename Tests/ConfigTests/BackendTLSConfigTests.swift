import Foundation
import Testing
import Routing
@testable import Config

/// A cluster's `tls` object: defaults, the fields, errors naming the field, and the API form.
@Suite("Cluster tls (TLS to backends)")
struct BackendTLSConfigTests {
    /// A PEM-looking CA file in the temporary directory (the parser only checks that it is
    /// readable and holds a certificate block; OpenSSL loads it later).
    static func caFile() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ca-\(UUID().uuidString).pem").path
        try Data("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test("absent: plain; {}: verify with the system store and the servers' names")
    func defaults() throws {
        #expect(try parseBody(body()).tls == nil)
        #expect(try parseBody(body(#""tls":{}"#)).tls == BackendTLSSpec(serverName: nil, caFile: nil, verify: true))
    }

    @Test("every field parsed, and rendered back the same")
    func fields() throws {
        let ca = try Self.caFile()
        defer { try? FileManager.default.removeItem(atPath: ca) }
        let spec = try parseBody(body(#""tls":{"serverName":"api.internal","caFile":"\#(ca)","verify":false}"#))
        #expect(spec.tls == BackendTLSSpec(serverName: "api.internal", caFile: ca, verify: false))
        let rendered = ClusterJSON.render(spec.tls!)
        #expect(rendered["serverName"] as? String == "api.internal")
        #expect(rendered["caFile"] as? String == ca)
        #expect(rendered["verify"] as? Bool == false)
        let again = try ClusterJSON.parseCluster(ClusterJSON.render(spec, failed: nil)["cluster"] as! [String: Any], path: "cluster",
                                                 resolve: resolve, newUUID: { "x" })
        #expect(again == spec)
    }

    @Test("errors name the field; a listed cluster in the file is named by its index")
    func errors() throws {
        let cases: [(String, String)] = [
            (#""tls":{"caFile":"/nonexistent/ca.pem"}"#, "cluster.tls.caFile: cannot read /nonexistent/ca.pem: no such file"),
            (#""tls":{"caFile":""}"#, "cluster.tls.caFile: must be the path of a PEM file"),
            (#""tls":{"serverName":"a b"}"#, "cluster.tls.serverName: must be a DNS name (1 to 253 characters of A-Z a-z 0-9 . -)"),
            (#""tls":{"verify":1}"#, "cluster.tls.verify: must be true or false"),
            (#""tls":{"sni":"x"}"#, "cluster.tls.sni"),
            (#""tls":true"#, "cluster.tls"),
            (#""tls":{},"upgradeTransition":{"mode":"CONCURRENT"}"#, "cluster.tls: not allowed on a cluster that mirrors exchanges"),
        ]
        for (json, message) in cases {
            do {
                _ = try parseBody(body(json))
                Issue.record("accepted: \(json)")
            } catch {
                #expect(error.description.hasPrefix(message), "\(error.description)")
            }
        }
        let file = #"{"clusters":[{"servers":[{"port":1034}],"tls":{"caFile":"/nonexistent/ca.pem"}}]}"#
        do {
            _ = try ConfigFile.parse(Array(file.utf8), resolve: resolve)
            Issue.record("accepted")
        } catch {
            #expect(error.description.hasPrefix("clusters[0].tls.caFile: cannot read /nonexistent/ca.pem"))
        }
    }

    @Test("replaying the state store does not look at the files again")
    func replayWithoutFiles() throws {
        let o: [String: Any] = ["servers": [["hostname": "127.0.0.1", "port": 1034]], "uuid": "u",
                                "tls": ["caFile": "/gone/ca.pem", "verify": true]]
        let spec = try ClusterJSON.parseCluster(o, path: "cluster", resolve: { _ in true }, newUUID: { "" }, checkFiles: false)
        #expect(spec.tls?.caFile == "/gone/ca.pem")
    }
}
