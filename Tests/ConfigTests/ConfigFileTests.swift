import Testing
import Routing
@testable import Config

func parseFile(_ json: String) throws(ConfigError) -> ProxyConfig {
    var n = 0
    return try ConfigFile.parse(Array(json.utf8), resolve: resolve, newUUID: { n += 1; return "gen-\(n)" })
}

let sample2014 = """
    {
      "proxy": {"hostname": "0.0.0.0", "port": 1235},
      "configService": {"hostname": "127.0.0.1", "port": 9090},
      "cluster": {"servers": [{"hostname": "127.0.0.1", "port": 1034}], "version": "1.0"}
    }
    """

@Test func the2014SampleFile() throws {
    let config = try parseFile(sample2014)
    var expected = ProxyConfig(clusters: [ClusterSpec(uuid: "gen-1", version: "1.0", servers: local1034)])
    expected.proxyHost = "0.0.0.0"
    expected.proxyPort = 1235
    expected.adminHost = "127.0.0.1"
    expected.adminPort = 9090
    #expect(config == expected)
}

@Test func defaultsWithOnlyACluster() throws {
    let config = try parseFile(#"{"cluster":{"servers":[{"port":1034}]}}"#)
    #expect(config.proxyHost == "0.0.0.0")
    #expect(config.proxyPort == 1235)
    #expect(config.adminHost == "127.0.0.1")
    #expect(config.adminPort == 9090)
    #expect(config.adminToken == nil)
    #expect(config.workers == nil)
    #expect(config.timeouts == Timeouts(clientHeadSeconds: 10, clientIdleSeconds: 60, backendConnectSeconds: 5,
                                        backendResponseSeconds: 60, bodyIdleSeconds: 60))
    #expect(config.limits == Limits(maxHeadBytes: 16384, maxTargetBytes: 8192, maxConnections: 10000, maxApiBodyBytes: 1 << 20))
    #expect(config.cookieNames == CookieNames(session: "dynsoftup", transition: "transition", lastSeen: "dynsoftup_seen"))
    #expect(config.moveAfterIdleSeconds == 2)
    #expect(config.rollback == RollbackPolicy(windowSeconds: 10, minRequests: 20, maxFailureRatio: 0.5))
    #expect(config.comparisonsKept == 100)
    #expect(config.clusters == [ClusterSpec(uuid: "gen-1", version: "0.0", servers: local1034)])
}

@Test func clustersFormAcceptsBothElementShapes() throws {
    let config = try parseFile("""
        {"clusters": [
          {"servers": [{"port": 1034}], "version": "1.0", "uuid": "old"},
          {"cluster": {"servers": [{"port": 1036}], "version": "1.1",
                       "upgradeTransition": {"mode": "SESSION", "sessionTimeout": 60}}}
        ]}
        """)
    #expect(config.clusters == [
        ClusterSpec(uuid: "old", version: "1.0", servers: local1034),
        ClusterSpec(uuid: "gen-1", version: "1.1", servers: [ServerAddress(hostname: "127.0.0.1", port: 1036)],
                    mode: .session, sessionTimeout: 60),
    ])
}

@Test func everySetting() throws {
    let config = try parseFile("""
        {
          "proxy": {"hostname": "::", "port": 0,
                    "timeouts": {"clientHeadSeconds": 2.5, "clientIdleSeconds": 30, "backendConnectSeconds": 1,
                                 "backendResponseSeconds": 20, "bodyIdleSeconds": 15},
                    "limits": {"maxHeadBytes": 65536, "maxTargetBytes": 4096, "maxConnections": 500, "maxApiBodyBytes": 4096}},
          "configService": {"port": 0, "token": "s3cret"},
          "clusters": [{"servers": [{"port": 1034}], "uuid": "a"}],
          "workers": 3,
          "cookies": {"session": "sid", "transition": "tid", "lastSeen": "seen", "moveAfterIdleSeconds": 0.5},
          "rollback": {"windowSeconds": 30, "minRequests": 5, "maxFailureRatio": 0.25},
          "comparisons": {"kept": 0}
        }
        """)
    #expect(config.proxyHost == "::")
    #expect(config.proxyPort == 0)
    #expect(config.adminHost == "127.0.0.1")
    #expect(config.adminPort == 0)
    #expect(config.adminToken == "s3cret")
    #expect(config.workers == 3)
    #expect(config.timeouts == Timeouts(clientHeadSeconds: 2.5, clientIdleSeconds: 30, backendConnectSeconds: 1,
                                        backendResponseSeconds: 20, bodyIdleSeconds: 15))
    #expect(config.limits == Limits(maxHeadBytes: 65536, maxTargetBytes: 4096, maxConnections: 500, maxApiBodyBytes: 4096))
    #expect(config.cookieNames == CookieNames(session: "sid", transition: "tid", lastSeen: "seen"))
    #expect(config.moveAfterIdleSeconds == 0.5)
    #expect(config.rollback == RollbackPolicy(windowSeconds: 30, minRequests: 5, maxFailureRatio: 0.25))
    #expect(config.comparisonsKept == 0)
}

struct FileErrorCase: CustomTestStringConvertible, Sendable {
    var json: String
    var error: String
    var testDescription: String { error }
}

/// A valid cluster to put next to the setting under test.
let okCluster = #""cluster":{"servers":[{"port":1034}]}"#

let fileErrorCases: [FileErrorCase] = [
    FileErrorCase(json: "[1]", error: "json: the configuration must be a JSON object"),
    FileErrorCase(json: "{\n  \"proxy\": {\"port\": 1235,}\n}", error: "json: expected a string key, found '}' at line 2, column 26 (byte 27)"),
    FileErrorCase(json: #"{"proxy":{"port":1235}}"#, error: "cluster: missing (give \"cluster\", \"clusters\" or \"services\")"),
    FileErrorCase(json: #"{\#(okCluster),"clusters":[]}"#, error: "clusters: give either \"cluster\" or \"clusters\", not both"),
    FileErrorCase(json: #"{"cluster":[]}"#, error: "cluster: must be an object"),
    FileErrorCase(json: #"{"clusters":[]}"#, error: "clusters: must list at least one cluster"),
    FileErrorCase(json: #"{"clusters":{"servers":[]}}"#, error: "clusters: must be an array of clusters"),
    FileErrorCase(json: #"{"clusters":["a"]}"#, error: "clusters[0]: must be a cluster object"),
    FileErrorCase(json: #"{"clusters":[{"servers":[{"port":1}]},{"servers":[{"port":0}]}]}"#,
                  error: "clusters[1].servers[0].port: must be an integer between 1 and 65535"),
    FileErrorCase(json: #"{"clusters":[{"cluster":{"version":"1"}}]}"#, error: "clusters[0].cluster.servers: missing"),
    FileErrorCase(json: #"{"clusters":[{"cluster":5}]}"#, error: "clusters[0].cluster: must be an object"),
    FileErrorCase(json: #"{"clusters":[{"servers":[{"port":1}],"uuid":"a"},{"servers":[{"port":2}]},{"servers":[{"port":3}],"uuid":"a"}]}"#,
                  error: "clusters[2].uuid: \"a\" is already used by clusters[0]"),
    FileErrorCase(json: #"{\#(okCluster),"upgrade":{"drainSeconds":-1}}"#,
                  error: "upgrade.drainSeconds: must be a number between 0 and 86400"),
    FileErrorCase(json: #"{\#(okCluster),"upgrade":{"drain":1}}"#,
                  error: "upgrade.drain: unknown field (expected one of: drainSeconds)"),
    FileErrorCase(json: #"{\#(okCluster),"proxi":{}}"#,
                  error: "proxi: unknown field (expected one of: accessLog, cluster, clusters, comparisons, configService, cookies, logLevel, proxy, releaseGroups, resolver, rollback, services, state, upgrade, workers)"),
    FileErrorCase(json: #"{\#(okCluster),"accessLog":{}}"#, error: "accessLog.path: missing (\"stderr\" or a file path)"),
    FileErrorCase(json: #"{\#(okCluster),"accessLog":{"path":""}}"#, error: "accessLog.path: must be \"stderr\" or a file path"),
    FileErrorCase(json: #"{\#(okCluster),"accessLog":{"path":"stderr","format":"xml"}}"#,
                  error: "accessLog.format: must be one of: \"logfmt\", \"json\""),
    FileErrorCase(json: #"{\#(okCluster),"accessLog":{"path":"stderr","sample":0}}"#,
                  error: "accessLog.sample: must be a number greater than 0 and at most 1"),
    FileErrorCase(json: #"{\#(okCluster),"accessLog":{"path":"stderr","rate":1}}"#,
                  error: "accessLog.rate: unknown field (expected one of: format, path, sample)"),
    FileErrorCase(json: #"{\#(okCluster),"logLevel":"LOUD"}"#,
                  error: "logLevel: unknown level \"LOUD\" (use CRITICAL, ERROR, WARNING, NOTICE, INFO or DEBUG)"),
    FileErrorCase(json: #"{\#(okCluster),"state":{"dir":""}}"#, error: "state.dir: must be a directory path"),
    FileErrorCase(json: #"{\#(okCluster),"state":{"path":"/x"}}"#, error: "state.path: unknown field (expected one of: compactAfterRecords, dir, endpoints, instance, leaseSeconds, prefix, store)"),
    FileErrorCase(json: #"{\#(okCluster),"proxy":5}"#, error: "proxy: must be an object"),
    FileErrorCase(json: #"{\#(okCluster),"proxy":{"port":70000}}"#, error: "proxy.port: must be an integer between 0 and 65535"),
    FileErrorCase(json: #"{\#(okCluster),"proxy":{"hostname":""}}"#, error: "proxy.hostname: must be a host name or IP address"),
    FileErrorCase(json: #"{\#(okCluster),"proxy":{"prot":1}}"#,
                  error: "proxy.prot: unknown field (expected one of: hostname, limits, listeners, port, requestBodies, requestHeaders, timeouts)"),
    FileErrorCase(json: #"{\#(okCluster),"proxy":{"requestBodies":{"bodylessMethods":"drop"}}}"#,
                  error: "proxy.requestBodies.bodylessMethods: must be one of: \"refuse\", \"forward\""),
    FileErrorCase(json: #"{\#(okCluster),"proxy":{"requestBodies":{"bodyless":"refuse"}}}"#,
                  error: "proxy.requestBodies.bodyless: unknown field (expected one of: bodylessMethods)"),
    FileErrorCase(json: #"{\#(okCluster),"proxy":{"requestHeaders":{"underscores":true}}}"#,
                  error: "proxy.requestHeaders.underscores: must be one of: \"refuse\", \"drop\", \"allow\""),
    FileErrorCase(json: #"{\#(okCluster),"proxy":{"timeouts":{"clientHeadSeconds":0}}}"#,
                  error: "proxy.timeouts.clientHeadSeconds: must be a number greater than 0 and at most 86400"),
    FileErrorCase(json: #"{\#(okCluster),"proxy":{"timeouts":{"bodyIdleSeconds":"60"}}}"#,
                  error: "proxy.timeouts.bodyIdleSeconds: must be a number greater than 0 and at most 86400"),
    FileErrorCase(json: #"{\#(okCluster),"proxy":{"timeouts":{"headSeconds":1}}}"#,
                  error: "proxy.timeouts.headSeconds: unknown field (expected one of: backendConnectSeconds, backendResponseSeconds, bodyIdleSeconds, clientHandshakeSeconds, clientHeadSeconds, clientIdleSeconds)"),
    FileErrorCase(json: #"{\#(okCluster),"proxy":{"limits":{"maxHeadBytes":65537}}}"#,
                  error: "proxy.limits.maxHeadBytes: must be an integer between 1024 and 65536"),
    FileErrorCase(json: #"{\#(okCluster),"proxy":{"limits":{"maxHeadBytes":2048,"maxTargetBytes":4096}}}"#,
                  error: "proxy.limits.maxTargetBytes: must not exceed maxHeadBytes (2048)"),
    FileErrorCase(json: #"{\#(okCluster),"proxy":{"limits":{"maxConnections":0}}}"#,
                  error: "proxy.limits.maxConnections: must be an integer between 1 and 1000000"),
    FileErrorCase(json: #"{\#(okCluster),"configService":{"port":-1}}"#, error: "configService.port: must be an integer between 0 and 65535"),
    FileErrorCase(json: #"{\#(okCluster),"configService":{"token":""}}"#,
                  error: "configService.token: must be a non-empty string of printable characters without spaces"),
    FileErrorCase(json: #"{\#(okCluster),"configService":{"tokn":"x"}}"#,
                  error: "configService.tokn: unknown field (expected one of: hostname, port, tls, token)"),
    FileErrorCase(json: #"{\#(okCluster),"workers":0}"#, error: "workers: must be an integer between 1 and 1024"),
    FileErrorCase(json: #"{\#(okCluster),"workers":"4"}"#, error: "workers: must be an integer between 1 and 1024"),
    FileErrorCase(json: #"{\#(okCluster),"cookies":{"session":"a b"}}"#,
                  error: "cookies.session: must be a cookie name: 1 to 64 characters, letters, digits and !#$%&'*+-.^_`|~"),
    FileErrorCase(json: #"{\#(okCluster),"cookies":{"session":"x","transition":"x"}}"#,
                  error: "cookies.transition: must differ from cookies.session"),
    FileErrorCase(json: #"{\#(okCluster),"cookies":{"transition":"dynsoftup"}}"#,
                  error: "cookies.transition: must differ from cookies.session"),
    FileErrorCase(json: #"{\#(okCluster),"cookies":{"lastSeen":"transition"}}"#,
                  error: "cookies.lastSeen: must differ from cookies.session and cookies.transition"),
    FileErrorCase(json: #"{\#(okCluster),"cookies":{"moveAfterIdleSeconds":-1}}"#,
                  error: "cookies.moveAfterIdleSeconds: must be a number between 0 and 3600"),
    FileErrorCase(json: #"{\#(okCluster),"rollback":{"maxFailureRatio":1.5}}"#,
                  error: "rollback.maxFailureRatio: must be a number greater than 0 and at most 1"),
    FileErrorCase(json: #"{\#(okCluster),"rollback":{"windowSeconds":0}}"#,
                  error: "rollback.windowSeconds: must be an integer between 1 and 3600"),
    FileErrorCase(json: #"{\#(okCluster),"comparisons":{"kept":-1}}"#, error: "comparisons.kept: must be an integer between 0 and 100000"),
    FileErrorCase(json: #"{\#(okCluster),"comparisons":{"keep":1}}"#, error: "comparisons.keep: unknown field (expected one of: ignoreHeaders, kept)"),
    FileErrorCase(json: #"{\#(okCluster),"comparisons":{"ignoreHeaders":"Date"}}"#, error: "comparisons.ignoreHeaders: must be an array of header names"),
    FileErrorCase(json: #"{\#(okCluster),"comparisons":{"ignoreHeaders":["Date", 3]}}"#, error: "comparisons.ignoreHeaders: must be an array of header names"),
]

@Test(arguments: fileErrorCases)
func configFileErrors(_ c: FileErrorCase) {
    #expect(throws: ConfigError.self) { try parseFile(c.json) }
    do {
        _ = try parseFile(c.json)
    } catch {
        #expect(error.description == c.error)
    }
}

@Test func requestRules() throws {
    #expect(try parseFile(sample2014).requestRules == RequestRules(bodylessMethods: .refuse, underscores: .refuse))
    let set = try parseFile(#"{\#(okCluster),"proxy":{"requestBodies":{"bodylessMethods":"forward"},"requestHeaders":{"underscores":"drop"}}}"#)
    #expect(set.requestRules == RequestRules(bodylessMethods: .forward, underscores: .drop))
}

@Test func accessLogSettings() throws {
    #expect(try parseFile(sample2014).accessLog == nil)
    let set = try parseFile(#"{\#(okCluster),"accessLog":{"path":"/var/log/a.log","format":"json","sample":0.25}}"#)
    #expect(set.accessLog == AccessLogSettings(path: "/var/log/a.log", format: .json, sample: 0.25))
}

@Test func validateAllRejectsSharedUUIDs() {
    let a = ClusterSpec(uuid: "x", version: "1", servers: local1034)
    #expect(throws: Never.self) { try ConfigFile.validateAll([a, ClusterSpec(uuid: "y", version: "1", servers: local1034)]) }
    #expect(throws: ConfigError(field: "clusters[1].uuid", message: "\"x\" is already used by clusters[0]")) {
        try ConfigFile.validateAll([a, a])
    }
}

/// `"state": {"store": "etcd", …}`: a fleet's shared store.
@Suite struct EtcdStateConfigTests {
    let base = #"{"cluster": {"version": "1", "servers": [{"hostname": "127.0.0.1", "port": 80}]}, "state": "#

    func parse(_ state: String) throws(ConfigError) -> ProxyConfig {
        try ConfigFile.parse(Array((base + state + "}").utf8), resolve: { _ in true })
    }

    @Test func etcdStoreWithDefaults() throws {
        let config = try parse(#"{"store": "etcd", "endpoints": ["http://127.0.0.1:2379"], "instance": "edge-1"}"#)
        #expect(config.etcd == EtcdStateConfig(endpoints: ["http://127.0.0.1:2379"], prefix: "/switchyard/", instance: "edge-1", leaseSeconds: 5))
        #expect(try parse(#"{"dir": "/tmp/x"}"#).etcd == nil)
        #expect(try parse(#"{"store": "file"}"#).etcd == nil)
    }

    @Test(arguments: [
        (#"{"store": "consul"}"#, "state.store"),
        (#"{"store": "etcd", "instance": "a"}"#, "state.endpoints"),
        (#"{"store": "etcd", "endpoints": ["https://127.0.0.1:2379"], "instance": "a"}"#, "state.endpoints[0]"),
        (#"{"store": "etcd", "endpoints": ["http://127.0.0.1"], "instance": "a"}"#, "state.endpoints[0]"),
        (#"{"store": "etcd", "endpoints": ["http://127.0.0.1:2379"]}"#, "state.instance"),
        (#"{"store": "etcd", "endpoints": ["http://127.0.0.1:2379"], "instance": "a b"}"#, "state.instance"),
        (#"{"store": "etcd", "endpoints": ["http://127.0.0.1:2379"], "instance": "a", "prefix": "/x"}"#, "state.prefix"),
        (#"{"store": "etcd", "endpoints": ["http://127.0.0.1:2379"], "instance": "a", "leaseSeconds": 1}"#, "state.leaseSeconds"),
        (#"{"store": "etcd", "endpoints": ["http://127.0.0.1:2379"], "instance": "a", "dir": "/tmp"}"#, "state.dir"),
        (#"{"dir": "/tmp", "instance": "a"}"#, "state.instance"),
    ])
    func badEtcdSettingsNameTheirField(_ state: String, _ field: String) {
        do throws(ConfigError) {
            _ = try parse(state)
            Issue.record("accepted \(state)")
        } catch {
            #expect(error.field == field, "\(error)")
        }
    }
}
