import Testing
import Routing
@testable import Config

/// Everything resolves except names under `.invalid` (RFC 6761).
func resolve(_ host: String) -> Bool { !host.hasSuffix(".invalid") }

func parseBody(_ json: String) throws(ConfigError) -> ClusterSpec {
    try ClusterJSON.parseClusterBody(Array(json.utf8), resolve: resolve, newUUID: { "generated" })
}

/// `{"cluster":{…}}` around one server on port 1034 plus `rest`.
func body(_ rest: String = "", servers: String = #"[{"hostname":"127.0.0.1","port":1034}]"#) -> String {
    #"{"cluster":{"servers":\#(servers)\#(rest.isEmpty ? "" : ",")\#(rest)}}"#
}

struct BodyErrorCase: CustomTestStringConvertible, Sendable {
    var json: String
    var error: String
    var testDescription: String { error }
}

let modes = "INSTANT, SESSION, GRADUAL, CONCURRENT"
let T = "cluster.upgradeTransition"

let bodyErrorCases: [BodyErrorCase] = [
    BodyErrorCase(json: "[]", error: "body: must be a JSON object like {\"cluster\":{…}}"),
    BodyErrorCase(json: "{}", error: "cluster: missing"),
    BodyErrorCase(json: #"{"cluster":null}"#, error: "cluster: missing"),
    BodyErrorCase(json: #"{"cluster":5}"#, error: "cluster: must be an object"),
    BodyErrorCase(json: body("", servers: "[]").replacingOccurrences(of: #""servers":[]"#, with: #""version":"1""#),
                  error: "cluster.servers: missing"),
    BodyErrorCase(json: body(servers: "[]"), error: "cluster.servers: must list at least one server"),
    BodyErrorCase(json: body(servers: #""127.0.0.1:1034""#),
                  error: #"cluster.servers: must be an array of {"hostname","port"} objects"#),
    BodyErrorCase(json: body(servers: "[5]"), error: "cluster.servers[0]: must be an object with hostname and port"),
    BodyErrorCase(json: body(servers: #"[{"hostname":5,"port":1}]"#), error: "cluster.servers[0].hostname: must be a string"),
    BodyErrorCase(json: body(servers: #"[{"hostname":"backend.invalid","port":1}]"#),
                  error: #"cluster.servers[0].hostname: cannot resolve "backend.invalid""#),
    BodyErrorCase(json: body(servers: #"[{"hostname":"","port":1}]"#),
                  error: "cluster.servers[0].hostname: must be a host name or IP address (1 to 253 printable characters)"),
    BodyErrorCase(json: body(servers: #"[{"hostname":"a b","port":1}]"#),
                  error: "cluster.servers[0].hostname: must be a host name or IP address (1 to 253 printable characters)"),
    BodyErrorCase(json: body(servers: #"[{"hostname":"h"}]"#), error: "cluster.servers[0].port: missing"),
    BodyErrorCase(json: body(servers: #"[{"hostname":"h","port":"80"}]"#),
                  error: "cluster.servers[0].port: must be an integer between 1 and 65535"),
    BodyErrorCase(json: body(servers: #"[{"hostname":"h","port":0}]"#),
                  error: "cluster.servers[0].port: must be an integer between 1 and 65535"),
    BodyErrorCase(json: body(servers: #"[{"hostname":"h","port":65536}]"#),
                  error: "cluster.servers[0].port: must be an integer between 1 and 65535"),
    BodyErrorCase(json: body(servers: #"[{"hostname":"h","port":80.5}]"#),
                  error: "cluster.servers[0].port: must be an integer between 1 and 65535"),
    BodyErrorCase(json: body(servers: #"[{"hostname":"h","port":true}]"#),
                  error: "cluster.servers[0].port: must be an integer between 1 and 65535"),
    BodyErrorCase(json: body(servers: #"[{"hostname":"h","port":1},{"hostname":"h","port":-1}]"#),
                  error: "cluster.servers[1].port: must be an integer between 1 and 65535"),
    BodyErrorCase(json: body(servers: #"[{"hostname":"127.0.0.1","port":1034},{"port":1035},{"hostname":"127.0.0.1","port":1034}]"#),
                  error: "cluster.servers[2]: duplicates cluster.servers[0] (127.0.0.1:1034)"),
    BodyErrorCase(json: body(servers: #"[{"hostname":"LocalHost","port":80},{"hostname":"localhost","port":80}]"#),
                  error: "cluster.servers[1]: duplicates cluster.servers[0] (localhost:80)"),
    BodyErrorCase(json: body(servers: #"[{"hostname":"h","port":1,"hots":"x"}]"#),
                  error: "cluster.servers[0].hots: unknown field (expected one of: hostname, ip, port, resolve)"),
    BodyErrorCase(json: body(#""version":true"#), error: "cluster.version: must be a string (or a number, kept as written)"),
    BodyErrorCase(json: body(#""version":[1]"#), error: "cluster.version: must be a string (or a number, kept as written)"),
    BodyErrorCase(json: body(servers: #"[{"hostname":"h","ip":"h","port":1}]"#), error: "cluster.servers[0].ip: give either hostname or ip, not both"),
    BodyErrorCase(json: body(servers: #"[{"ip":"","port":1}]"#), error: "cluster.servers[0].ip: must be a host name or IP address (1 to 253 printable characters)"),
    BodyErrorCase(json: body(#""version":"1.0\u0000""#),
                  error: "cluster.version: must be at most 64 characters without control characters"),
    BodyErrorCase(json: body(#""upgradeTransition":"SESSION""#), error: "\(T): must be an object"),
    BodyErrorCase(json: body(#""upgradeTransition":{"mode":"FAST"}"#), error: "\(T).mode: unknown mode \"FAST\" (valid: \(modes))"),
    BodyErrorCase(json: body(#""upgradeTransition":{"mode":5}"#), error: "\(T).mode: must be a string"),
    BodyErrorCase(json: body(#""upgradeTransition":{"mode":"SESSION"}"#),
                  error: "\(T).sessionTimeout: required with mode SESSION (seconds, a positive integer)"),
    BodyErrorCase(json: body(#""upgradeTransition":{}"#),
                  error: "\(T).sessionTimeout: required with mode SESSION (seconds, a positive integer)"),
    BodyErrorCase(json: body(#""upgradeTransition":{"mode":"SESSION","sessionTimeout":0}"#),
                  error: "\(T).sessionTimeout: must be an integer between 1 and 31536000"),
    BodyErrorCase(json: body(#""upgradeTransition":{"mode":"SESSION","sessionTimeout":-5}"#),
                  error: "\(T).sessionTimeout: must be an integer between 1 and 31536000"),
    BodyErrorCase(json: body(#""upgradeTransition":{"mode":"SESSION","sessionTimeout":"60"}"#),
                  error: "\(T).sessionTimeout: must be an integer between 1 and 31536000"),
    BodyErrorCase(json: body(#""upgradeTransition":{"mode":"SESSION","sessionTimeout":60,"percentageTransitionPerRequest":5}"#),
                  error: "\(T).percentageTransitionPerRequest: only allowed with mode GRADUAL, not SESSION"),
    BodyErrorCase(json: body(#""upgradeTransition":{"mode":"GRADUAL"}"#),
                  error: "\(T).percentageTransitionPerRequest: required with mode GRADUAL (a number greater than 0 and at most 100)"),
    BodyErrorCase(json: body(#""upgradeTransition":{"mode":"GRADUAL","percentageTransitionPerRequest":0}"#),
                  error: "\(T).percentageTransitionPerRequest: must be a number greater than 0 and at most 100"),
    BodyErrorCase(json: body(#""upgradeTransition":{"mode":"GRADUAL","percentageTransitionPerRequest":100.5}"#),
                  error: "\(T).percentageTransitionPerRequest: must be a number greater than 0 and at most 100"),
    BodyErrorCase(json: body(#""upgradeTransition":{"mode":"GRADUAL","percentageTransitionPerRequest":"5"}"#),
                  error: "\(T).percentageTransitionPerRequest: must be a number greater than 0 and at most 100"),
    BodyErrorCase(json: body(#""upgradeTransition":{"mode":"GRADUAL","percentageTransitionPerRequest":5,"sessionTimeout":60}"#),
                  error: "\(T).sessionTimeout: only allowed with mode SESSION, not GRADUAL"),
    BodyErrorCase(json: body(#""upgradeTransition":{"mode":"INSTANT","sessionTimeout":60}"#),
                  error: "\(T).sessionTimeout: only allowed with mode SESSION, not INSTANT"),
    BodyErrorCase(json: body(#""upgradeTransition":{"mode":"INSTANT","percentageTransitionPerRequest":1}"#),
                  error: "\(T).percentageTransitionPerRequest: only allowed with mode GRADUAL, not INSTANT"),
    BodyErrorCase(json: body(#""upgradeTransition":{"mode":"CONCURRENT","percentageTransitionPerRequest":1}"#),
                  error: "\(T).percentageTransitionPerRequest: only allowed with mode GRADUAL, not CONCURRENT"),
    BodyErrorCase(json: body(#""upgradeTransition":{"mode":"CONCURRENT","sessionTimeout":1}"#),
                  error: "\(T).sessionTimeout: only allowed with mode SESSION, not CONCURRENT"),
    BodyErrorCase(json: body(#""upgradeTransition":{"mode":"SESSION","sessionTimeout":1,"mirrorUnsafeMethods":true}"#),
                  error: "\(T).mirrorUnsafeMethods: only allowed with mode CONCURRENT, not SESSION"),
    BodyErrorCase(json: body(#""upgradeTransition":{"mode":"CONCURRENT","mirrorUnsafeMethods":"yes"}"#),
                  error: "\(T).mirrorUnsafeMethods: must be true or false"),
    BodyErrorCase(json: body(#""upgradeTransition":{"mode":"CONCURRENT","mirrorUnsafeMethods":1}"#),
                  error: "\(T).mirrorUnsafeMethods: must be true or false"),
    BodyErrorCase(json: body(#""upgradeTransition":{"mode":"INSTANT","timeout":1}"#),
                  error: "\(T).timeout: unknown field (expected one of: analysis, mirrorUnsafeMethods, mode, percentageTransitionPerRequest, retireOld, sessionTimeout, steps)"),
    BodyErrorCase(json: body(#""uuid":"""#), error: "cluster.uuid: must be 1 to 64 characters from A-Z a-z 0-9 . _ -"),
    BodyErrorCase(json: body(#""uuid":"\#(String(repeating: "a", count: 65))""#),
                  error: "cluster.uuid: must be 1 to 64 characters from A-Z a-z 0-9 . _ -"),
    BodyErrorCase(json: body(#""uuid":"a b""#), error: "cluster.uuid: must be 1 to 64 characters from A-Z a-z 0-9 . _ -"),
    BodyErrorCase(json: body(#""uuid":"a/b""#), error: "cluster.uuid: must be 1 to 64 characters from A-Z a-z 0-9 . _ -"),
    BodyErrorCase(json: body(#""uuid":5"#), error: "cluster.uuid: must be a string"),
    BodyErrorCase(json: body(#""verison":"1.0""#),
                  error: "cluster.verison: unknown field (expected one of: backends, failure, healthCheck, ignoreBodyFor, release, rollout, servers, state, tls, upgradeTransition, uuid, version)"),
    BodyErrorCase(json: #"{"cluster":{"servers":[{"port":1}]},"extra":1}"#, error: "extra: unknown field (expected one of: cluster)"),
    BodyErrorCase(json: #"{"cluster":{"servers":[{"port":1,"port":2}]}}"#,
                  error: "json: duplicate key \"port\" at line 1, column 34 (byte 33)"),
    BodyErrorCase(json: "{\"cluster\":\n  {\"servers\": [}\n}", error: "json: unexpected '}' at line 2, column 16 (byte 27)"),
    BodyErrorCase(json: #"{"cluster": {"#, error: "json: expected a string key, found end of input at line 1, column 14 (byte 13)"),
    BodyErrorCase(json: "", error: "json: unexpected end of input at line 1, column 1 (byte 0)"),
]

@Test(arguments: bodyErrorCases)
func clusterBodyErrors(_ c: BodyErrorCase) {
    #expect(throws: ConfigError.self) { try parseBody(c.json) }
    do {
        _ = try parseBody(c.json)
    } catch {
        #expect(error.description == c.error)
    }
}

struct BodyCase: CustomTestStringConvertible, Sendable {
    var name: String
    var json: String
    var expected: ClusterSpec
    var testDescription: String { name }
}

let local1034 = [ServerAddress(hostname: "127.0.0.1", port: 1034)]

let bodyCases: [BodyCase] = [
    BodyCase(name: "minimal: INSTANT, version 0.0, generated uuid", json: body(),
             expected: ClusterSpec(uuid: "generated", version: "0.0", servers: local1034, mode: .instant)),
    BodyCase(name: "2014 API body", json: #"{"cluster":{"servers":[{"hostname":"127.0.0.1","port":1036}],"version":"1.1","upgradeTransition":{"mode":"SESSION","sessionTimeout":60}}}"#,
             expected: ClusterSpec(uuid: "generated", version: "1.1", servers: [ServerAddress(hostname: "127.0.0.1", port: 1036)],
                                   mode: .session, sessionTimeout: 60)),
    BodyCase(name: "empty version reads as 0.0", json: body(#""version":"""#),
             expected: ClusterSpec(uuid: "generated", version: "0.0", servers: local1034)),
    BodyCase(name: "mode without options in transition → SESSION", json: body(#""upgradeTransition":{"sessionTimeout":30}"#),
             expected: ClusterSpec(uuid: "generated", version: "0.0", servers: local1034, mode: .session, sessionTimeout: 30)),
    BodyCase(name: "mode names are case-insensitive", json: body(#""upgradeTransition":{"mode":"Gradual","percentageTransitionPerRequest":2.5}"#),
             expected: ClusterSpec(uuid: "generated", version: "0.0", servers: local1034, mode: .gradual, percentageTransitionPerRequest: 2.5)),
    BodyCase(name: "GRADUAL at 100", json: body(#""upgradeTransition":{"mode":"gradual","percentageTransitionPerRequest":100}"#),
             expected: ClusterSpec(uuid: "generated", version: "0.0", servers: local1034, mode: .gradual, percentageTransitionPerRequest: 100)),
    BodyCase(name: "CONCURRENT mirrors unsafe methods on request", json: body(#""upgradeTransition":{"mode":"concurrent","mirrorUnsafeMethods":true}"#),
             expected: ClusterSpec(uuid: "generated", version: "0.0", servers: local1034, mode: .concurrent, mirrorUnsafeMethods: true)),
    BodyCase(name: "CONCURRENT default does not mirror", json: body(#""upgradeTransition":{"mode":"CONCURRENT"}"#),
             expected: ClusterSpec(uuid: "generated", version: "0.0", servers: local1034, mode: .concurrent)),
    BodyCase(name: "explicit INSTANT", json: body(#""upgradeTransition":{"mode":"instant"}"#),
             expected: ClusterSpec(uuid: "generated", version: "0.0", servers: local1034, mode: .instant)),
    BodyCase(name: "null transition is absent", json: body(#""upgradeTransition":null"#),
             expected: ClusterSpec(uuid: "generated", version: "0.0", servers: local1034)),
    BodyCase(name: "uuid kept", json: body(#""uuid":"abc-1.2_X","version":"2.0-beta""#),
             expected: ClusterSpec(uuid: "abc-1.2_X", version: "2.0-beta", servers: local1034)),
    BodyCase(name: "hostname defaults to loopback; integral number port", json: body(servers: #"[{"port":1034.0}]"#),
             expected: ClusterSpec(uuid: "generated", version: "0.0", servers: local1034)),
    BodyCase(name: "state and failure from a GET are ignored", json: body(#""state":"failed","failure":{"reason":"x","time":"2024-01-01T00:00:00Z"}"#),
             expected: ClusterSpec(uuid: "generated", version: "0.0", servers: local1034)),
    BodyCase(name: "several servers keep their order",
             json: body(servers: #"[{"hostname":"b.example","port":2},{"hostname":"a.example","port":1},{"hostname":"b.example","port":3}]"#),
             expected: ClusterSpec(uuid: "generated", version: "0.0", servers: [
                 ServerAddress(hostname: "b.example", port: 2), ServerAddress(hostname: "a.example", port: 1),
                 ServerAddress(hostname: "b.example", port: 3)])),
]

@Test(arguments: bodyCases)
func clusterBodies(_ c: BodyCase) throws {
    #expect(try parseBody(c.json) == c.expected)
}

@Test func newUUIDOnlyWhenMissing() throws {
    var calls = 0
    _ = try ClusterJSON.parseClusterBody(Array(body(#""uuid":"given""#).utf8), resolve: resolve, newUUID: { calls += 1; return "x" })
    #expect(calls == 0)
    _ = try ClusterJSON.parseClusterBody(Array(body().utf8), resolve: resolve, newUUID: { calls += 1; return "x" })
    #expect(calls == 1)
}

@Test func renderInstant() {
    let spec = ClusterSpec(uuid: "u1", version: "1.0", servers: local1034)
    let text = String(decoding: ClusterJSON.renderOne(spec, failed: nil), as: UTF8.self)
    #expect(text == #"{"cluster":{"servers":[{"hostname":"127.0.0.1","port":1034}],"state":"active","upgradeTransition":{"mode":"INSTANT"},"uuid":"u1","version":"1.0"}}"#)
}

@Test func renderFailedSession() {
    let spec = ClusterSpec(uuid: "u2", version: "1.1", servers: local1034, mode: .session, sessionTimeout: 60)
    let text = String(decoding: ClusterJSON.renderOne(spec, failed: ("no healthy backend", 784_111_777)), as: UTF8.self)
    #expect(text == #"{"cluster":{"failure":{"reason":"no healthy backend","time":"1994-11-06T08:49:37Z"},"servers":[{"hostname":"127.0.0.1","port":1034}],"state":"failed","upgradeTransition":{"mode":"SESSION","sessionTimeout":60},"uuid":"u2","version":"1.1"}}"#)
}

@Test func renderList() {
    let a = ClusterSpec(uuid: "a", version: "2", servers: local1034, mode: .gradual, percentageTransitionPerRequest: 0.5)
    let b = ClusterSpec(uuid: "b", version: "1", servers: local1034, mode: .concurrent)
    let text = String(decoding: ClusterJSON.renderList([(a, nil), (b, nil)]), as: UTF8.self)
    #expect(text == #"[{"cluster":{"servers":[{"hostname":"127.0.0.1","port":1034}],"state":"active","upgradeTransition":{"mode":"GRADUAL","percentageTransitionPerRequest":0.5},"uuid":"a","version":"2"}},{"cluster":{"servers":[{"hostname":"127.0.0.1","port":1034}],"state":"active","upgradeTransition":{"mirrorUnsafeMethods":false,"mode":"CONCURRENT"},"uuid":"b","version":"1"}}]"#)
    #expect(String(decoding: ClusterJSON.renderList([]), as: UTF8.self) == "[]")
}

let roundTripSpecs: [ClusterSpec] = [
    ClusterSpec(uuid: "i", version: "1.0", servers: local1034),
    ClusterSpec(uuid: "s", version: "1.1", servers: local1034 + [ServerAddress(hostname: "::1", port: 9)], mode: .session, sessionTimeout: 3600),
    ClusterSpec(uuid: "g", version: "2.0-rc.1", servers: local1034, mode: .gradual, percentageTransitionPerRequest: 12.75),
    ClusterSpec(uuid: "g2", version: "3", servers: local1034, mode: .gradual, percentageTransitionPerRequest: 5),
    ClusterSpec(uuid: "c", version: "9.9.9", servers: local1034, mode: .concurrent, mirrorUnsafeMethods: true),
    ClusterSpec(uuid: "q", version: "quote\"back\\slash", servers: local1034, mode: .concurrent),
    ClusterSpec(uuid: "h", version: "4", servers: local1034, healthCheck: HealthCheckSpec()),
    ClusterSpec(uuid: "h2", version: "4.1", servers: local1034 + [ServerAddress(hostname: "::1", port: 9)], mode: .gradual,
                percentageTransitionPerRequest: 1,
                healthCheck: HealthCheckSpec(path: "/ready?deep=1", intervalSeconds: 0.2, timeoutSeconds: 0.15, healthyThreshold: 1,
                                             unhealthyThreshold: 5, expectStatus: StatusExpectation(low: 200, high: 399),
                                             minHealthy: 2, readyTimeoutSeconds: 7.5)),
]

@Test(arguments: roundTripSpecs)
func renderRoundTrips(_ spec: ClusterSpec) throws {
    let active = try ClusterJSON.parseClusterBody(ClusterJSON.renderOne(spec, failed: nil), resolve: resolve, newUUID: { "new" })
    #expect(active == spec)
    let failed = try ClusterJSON.parseClusterBody(ClusterJSON.renderOne(spec, failed: ("r", 1)), resolve: resolve, newUUID: { "new" })
    #expect(failed == spec)
}

struct ZeroRNG: RandomNumberGenerator {
    var value: UInt64
    mutating func next() -> UInt64 { value }
}

@Test func uuidsAreVersion4() {
    var zero = ZeroRNG(value: 0)
    #expect(makeUUID(using: &zero) == "00000000-0000-4000-8000-000000000000")
    var ones = ZeroRNG(value: .max)
    #expect(makeUUID(using: &ones) == "ffffffff-ffff-4fff-bfff-ffffffffffff")
    let u = makeUUID()
    #expect(u.count == 36)
    #expect(Array(u)[14] == "4")
    #expect("89ab".contains(Array(u)[19]))
    #expect(u == u.lowercased())
    #expect(ClusterJSON.isValidUUID(u))
    #expect(makeUUID() != u)
}

// MARK: healthCheck

let H = "cluster.healthCheck"

let healthErrorCases: [BodyErrorCase] = [
    BodyErrorCase(json: body(#""healthCheck":true"#), error: "\(H): must be an object"),
    BodyErrorCase(json: body(#""healthCheck":{"path":"healthz"}"#),
                  error: "\(H).path: must start with / and be at most 1024 printable characters without spaces"),
    BodyErrorCase(json: body(#""healthCheck":{"path":"/a b"}"#),
                  error: "\(H).path: must start with / and be at most 1024 printable characters without spaces"),
    BodyErrorCase(json: body(#""healthCheck":{"path":5}"#), error: "\(H).path: must be a string"),
    BodyErrorCase(json: body(#""healthCheck":{"intervalSeconds":0}"#), error: "\(H).intervalSeconds: must be a number of seconds from 0.1 to 86400"),
    BodyErrorCase(json: body(#""healthCheck":{"intervalSeconds":0.05}"#), error: "\(H).intervalSeconds: must be a number of seconds from 0.1 to 86400"),
    BodyErrorCase(json: body(#""healthCheck":{"intervalSeconds":"2"}"#), error: "\(H).intervalSeconds: must be a number of seconds from 0.1 to 86400"),
    BodyErrorCase(json: body(#""healthCheck":{"timeoutSeconds":-1}"#), error: "\(H).timeoutSeconds: must be a number of seconds from 0.1 to 86400"),
    BodyErrorCase(json: body(#""healthCheck":{"readyTimeoutSeconds":100000}"#),
                  error: "\(H).readyTimeoutSeconds: must be a number of seconds from 0.1 to 86400"),
    BodyErrorCase(json: body(#""healthCheck":{"healthyThreshold":0}"#), error: "\(H).healthyThreshold: must be an integer between 1 and 100"),
    BodyErrorCase(json: body(#""healthCheck":{"unhealthyThreshold":1.5}"#), error: "\(H).unhealthyThreshold: must be an integer between 1 and 100"),
    BodyErrorCase(json: body(#""healthCheck":{"expectStatus":"2yy"}"#),
                  error: #"\#(H).expectStatus: must be a status class like "2xx", a code like "204" or a range like "200-399" (codes 100-599)"#),
    BodyErrorCase(json: body(#""healthCheck":{"expectStatus":700}"#),
                  error: #"\#(H).expectStatus: must be a status class like "2xx", a code like "204" or a range like "200-399" (codes 100-599)"#),
    BodyErrorCase(json: body(#""healthCheck":{"minHealthy":2}"#), error: "\(H).minHealthy: must be an integer between 1 and 1"),
    BodyErrorCase(json: body(#""healthCheck":{"minHealthy":0}"#, servers: #"[{"port":1},{"port":2}]"#),
                  error: "\(H).minHealthy: must be an integer between 1 and 2"),
    BodyErrorCase(json: body(#""healthCheck":{"interval":2}"#),
                  error: "\(H).interval: unknown field (expected one of: expectStatus, healthyThreshold, intervalSeconds, minHealthy, path, readyTimeoutSeconds, timeoutSeconds, unhealthyThreshold)"),
]

@Test(arguments: healthErrorCases)
func healthCheckErrors(_ c: BodyErrorCase) {
    do {
        _ = try parseBody(c.json)
        Issue.record("accepted: \(c.json)")
    } catch {
        #expect(error.description == c.error)
    }
}

@Test func healthCheckDefaultsAndValues() throws {
    #expect(try parseBody(body()).healthCheck == nil)
    #expect(try parseBody(body(#""healthCheck":{}"#)).healthCheck == HealthCheckSpec())
    #expect(HealthCheckSpec() == HealthCheckSpec(path: "/healthz", intervalSeconds: 2, timeoutSeconds: 1, healthyThreshold: 2,
                                                 unhealthyThreshold: 3, expectStatus: StatusExpectation(low: 200, high: 299),
                                                 minHealthy: 1, readyTimeoutSeconds: 120))
    let check = try #require(try parseBody(body(#""healthCheck":{"path":"/up","intervalSeconds":0.2,"expectStatus":204,"minHealthy":2}"#,
                                                servers: #"[{"port":1},{"port":2}]"#)).healthCheck)
    #expect(check.path == "/up" && check.intervalSeconds == 0.2 && check.minHealthy == 2)
    #expect(check.expectStatus == StatusExpectation(low: 204, high: 204))
    #expect(try parseBody(body(#""healthCheck":{"expectStatus":"200-399"}"#)).healthCheck?.expectStatus == StatusExpectation(low: 200, high: 399))
}

@Test func renderHealthCheckAndLiveState() throws {
    let spec = ClusterSpec(uuid: "h", version: "1", servers: local1034 + [ServerAddress(hostname: "::1", port: 9)],
                           healthCheck: HealthCheckSpec(intervalSeconds: 0.5))
    let backends = [BackendHealthView(server: spec.servers[0], probe: .up, drained: false, passed: 2, failed: 0),
                    BackendHealthView(server: spec.servers[1], probe: .down, drained: true, passed: 0, failed: 3)]
    let text = String(decoding: ClusterJSON.renderOne(spec, live: ClusterJSON.Live(pending: true, backends: backends)), as: UTF8.self)
    #expect(text == #"{"cluster":{"backends":{"127.0.0.1:1034":"up","[::1]:9":"drained"},"healthCheck":{"expectStatus":"2xx","healthyThreshold":2,"intervalSeconds":0.5,"minHealthy":1,"path":"/healthz","readyTimeoutSeconds":120,"timeoutSeconds":1,"unhealthyThreshold":3},"servers":[{"hostname":"127.0.0.1","port":1034},{"hostname":"::1","port":9}],"state":"pending","upgradeTransition":{"mode":"INSTANT"},"uuid":"h","version":"1"}}"#)
    // What GET answers can be PUT back.
    #expect(try ClusterJSON.parseClusterBody(Array(text.utf8), resolve: resolve, newUUID: { "x" }) == spec)
    // Failed wins over pending.
    #expect(ClusterJSON.Live(failure: ("not ready", 1), pending: true).state == "failed")
}
