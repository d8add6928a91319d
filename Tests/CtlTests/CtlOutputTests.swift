import Config
import Testing
@testable import switchyard

/// The tables, numbers, URLs and HTTP answers of `switchyard ctl`: pure, no proxy.
@Suite("ctl output")
struct CtlOutputTests {
    @Test("tables pad columns, right-align numbers and keep versions left")
    func table() {
        var t = CtlTable(headers: ["UUID", "VERSION", "REQUESTS", "STATE"])
        t.rows = [["v1", "1.0", "12", "active"], ["version-two", "2.10", "1.5k", "failed"]]
        #expect(t.render() == """
            UUID         VERSION  REQUESTS  STATE
            v1           1.0            12  active
            version-two  2.10         1.5k  failed
            """)
    }

    @Test("numbers with units", arguments: [
        (CtlFormat.count(9999), "9999"), (CtlFormat.count(12_345), "12.3k"), (CtlFormat.count(2_500_000), "2.5M"),
        (CtlFormat.percent(0.0123), "1.23 %"), (CtlFormat.percent(0.5), "50.0 %"), (CtlFormat.percent(0), "0.00 %"),
        (CtlFormat.duration(42), "42s"), (CtlFormat.duration(725), "12m05s"), (CtlFormat.duration(11_220), "3h07m"),
        (CtlFormat.duration(187_200), "2d04h"), (CtlFormat.fixed(-0.04, 1), "0.0"), (CtlFormat.fixed(2.25, 2), "2.25"),
    ])
    func formats(got: String, expected: String) {
        #expect(got == expected)
    }

    @Test("admin URLs")
    func urls() {
        let plain = AdminURL("http://127.0.0.1:9090")
        #expect(plain?.host == "127.0.0.1" && plain?.port == 9090 && plain?.pathPrefix == "")
        let v6 = AdminURL("http://[::1]:9091/admin/")
        #expect(v6?.host == "::1" && v6?.port == 9091 && v6?.pathPrefix == "/admin" && v6?.authority == "[::1]:9091")
        #expect(AdminURL("http://proxy.internal")?.port == 80)
        let secure = AdminURL("https://admin.test:9443/")
        #expect(secure?.secure == true && secure?.host == "admin.test" && secure?.port == 9443 && secure?.origin == "https://admin.test:9443")
        #expect(AdminURL("https://admin.test")?.port == 443)
        #expect(plain?.secure == false && plain?.origin == "http://127.0.0.1:9090")
        #expect(AdminURL("ftp://h:1") == nil)
        #expect(AdminURL("http://h:99999") == nil)
        #expect(AdminURL("http://:80") == nil)
    }

    @Test("requests carry the token; answers are read by length or chunks")
    func wire() {
        let request = String(decoding: CtlClient.request(method: "PUT", path: "/configuration/cluster", authority: "h:1",
                                                         token: "t", body: Array("{}".utf8)), as: UTF8.self)
        #expect(request == "PUT /configuration/cluster HTTP/1.1\r\nHost: h:1\r\nUser-Agent: switchyard-ctl\r\nConnection: close\r\n"
                         + "Authorization: Bearer t\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        let plain = CtlClient.parseResponse(Array("HTTP/1.1 404 Not Found\r\nContent-Length: 6\r\n\r\nno wayEXTRA".utf8))
        #expect(plain == CtlAnswer(status: 404, body: Array("no way".utf8)))
        let chunked = CtlClient.parseResponse(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\n\r\n".utf8))
        #expect(chunked?.text == "abcde")
        #expect(CtlClient.parseResponse(Array("SSH-2.0-OpenSSH\r\n\r\n".utf8)) == nil)
        #expect(CtlClient.parseResponse(Array("HTTP/1.1 200 OK\r\n".utf8)) == nil)
    }

    @Test("status view: summary line, one row per cluster, rollout and backends summed up")
    func status() throws {
        let json = try JSONText.parse(Array("""
            {"generation": 7, "workers": 2, "uptimeSeconds": 3725, "activeSessions": 3, "rollbacks": 1, "durableState": true,
             "latest": "v2", "clusters": [
              {"uuid": "v2", "version": "2.0", "mode": "GRADUAL", "state": "active", "gradualThreshold": 25, "requests": 200,
               "responses": {"1xx": 0, "2xx": 190, "3xx": 0, "4xx": 0, "5xx": 10},
               "rollout": {"state": "progressing", "step": 2, "steps": 4, "percent": 25},
               "backends": {"127.0.0.1:8083": {"status": "up"}, "127.0.0.1:8084": {"status": "drained"}}},
              {"uuid": "v1", "version": "1.0", "mode": "INSTANT", "state": "active", "requests": 12000,
               "responses": {"1xx": 0, "2xx": 12000, "3xx": 0, "4xx": 0, "5xx": 0},
               "backends": {"127.0.0.1:8081": {"status": "unknown"}}}]}
            """.utf8))
        #expect(CtlView.status(json) == """
            generation 7  ·  2 workers  ·  up 1h02m  ·  3 open sessions  ·  1 rollbacks  ·  state durable  ·  latest v2

            UUID  VERSION  MODE          STATE   ROLLOUT               REQUESTS  5XX  ERRORS  BACKENDS
            v2    2.0      GRADUAL 25 %  active  progressing 2/4 25 %       200   10  5.00 %  1 up, 1 drained
            v1    1.0      INSTANT       active  -                        12.0k    0  0.00 %  1 unchecked
            """)
        let later = try JSONText.parse(Array(#"{"clusters": [{"uuid": "v2", "requests": 260}, {"uuid": "v1", "requests": 12000}]}"#.utf8))
        #expect(CtlView.rates(previous: json, current: later, seconds: 2) == ["v2": 30, "v1": 0])
        #expect(CtlView.status(later, rates: ["v2": 30]).contains("REQ/S"))
    }

    @Test("clusters and comparisons views")
    func clustersAndComparisons() throws {
        let clusters = try JSONText.parse(Array("""
            [{"cluster": {"uuid": "v2", "version": "2.0", "state": "failed", "failure": {"reason": "operator"},
              "servers": [{"hostname": "::1", "port": 8083}], "backends": {"[::1]:8083": "down"},
              "upgradeTransition": {"steps": [{"mode": "GRADUAL", "percent": 5}, {"mode": "INSTANT"}]},
              "rollout": {"state": "rolledBack", "steps": 2}}},
             {"cluster": {"uuid": "v1", "version": "1.0", "state": "active", "servers": [{"hostname": "127.0.0.1", "port": 8081}]}}]
            """.utf8))
        #expect(CtlView.clusters(clusters) == """
            UUID  VERSION  MODE             STATE              SERVERS         BACKENDS  ROLLOUT
            v2    2.0      plan of 2 steps  failed (operator)  [::1]:8083      1 down    rolledBack
            v1    1.0      INSTANT          active             127.0.0.1:8081  -         -
            """)
        let comparisons = try JSONText.parse(Array("""
            {"total": 40, "divergent": 1, "fallbacks": 0, "recent": [
              {"time": "2026-12-01T01:02:03Z", "method": "GET", "target": "/a", "status": [200, 500], "latencyMs": [1.25, 3.5],
               "divergent": true, "bodyDigestEqual": false, "firstDifferenceOffset": 12, "headerDifferences": ["x-v"],
               "old": {"complete": true}, "new": {"complete": true}},
              {"time": "2026-12-01T01:02:02Z", "method": "GET", "target": "/b", "status": [200, 200], "latencyMs": [1, 1],
               "divergent": false, "bodyDigestEqual": true, "headerDifferences": [], "old": {"complete": true}, "new": {"complete": true}}]}
            """.utf8))
        #expect(CtlView.comparisons(comparisons, divergentOnly: true) == """
            40 compared, 1 divergent (2.50 %), 0 served by the previous version

            TIME      METHOD  TARGET  STATUS   LATENCY OLD/NEW  DIFFERENCES
            01:02:03  GET     /a      200→500  1.3/3.5 ms       status, body at byte 12, headers x-v
            """)
        #expect(CtlView.comparisons(comparisons, divergentOnly: false).contains("/b"))
        #expect(CtlView.clusters([Any]()) == "no clusters")
    }
}
