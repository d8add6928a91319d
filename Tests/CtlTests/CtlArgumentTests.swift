import Config
import Testing
@testable import switchyard

/// `switchyard ctl` argument parsing and the `put` body built from flags: pure, no proxy.
@Suite("ctl arguments")
struct CtlArgumentTests {
    func parse(_ line: String, env: [String: String] = [:]) throws(UsageError) -> CtlOptions {
        try parseCtl(line.split(separator: " ").map(String.init), environment: env)
    }

    func usageError(_ line: String) -> String? {
        do { _ = try parse(line); return nil } catch { return error.description }
    }

    @Test("commands and their arguments", arguments: [
        ("status", CtlCommand.status),
        ("clusters", .clusters),
        ("watch", .watch),
        ("comparisons", .comparisons(divergentOnly: false)),
        ("comparisons --divergent", .comparisons(divergentOnly: true)),
        ("put cluster.json", .put(.file("cluster.json"))),
        ("delete v2", .delete(id: "v2", force: false)),
        ("delete --force v2", .delete(id: "v2", force: true)),
        ("pause v2", .rollout(verb: "pause", id: "v2")),
        ("rollback v2", .rollout(verb: "rollback", id: "v2")),
        ("drain v2 10.0.0.5:8080", .server(verb: "drain", id: "v2", server: "10.0.0.5:8080")),
        ("enable v2 [::1]:8080", .server(verb: "enable", id: "v2", server: "[::1]:8080")),
        ("changes set.json", .changes(file: "set.json")),
        ("health", .probe(path: "/healthz")),
        ("ready", .probe(path: "/readyz")),
        ("--help", .help),
    ])
    func commands(line: String, expected: CtlCommand) throws {
        #expect(try parse(line).command == expected)
    }

    @Test("global options: flags win over the environment, which wins over the default")
    func globals() throws {
        var o = try parse("status")
        #expect(o.admin == "http://127.0.0.1:9090")
        #expect(o.token == nil)
        #expect(o.json == false)
        o = try parse("status", env: ["SWITCHYARD_ADMIN": "http://10.0.0.1:9999", "SWITCHYARD_TOKEN": "t1"])
        #expect(o.admin == "http://10.0.0.1:9999")
        #expect(o.token == "t1")
        o = try parse("--admin http://h:1 --token=t2 --json status --service shop", env: ["SWITCHYARD_ADMIN": "http://x:2", "SWITCHYARD_TOKEN": "t1"])
        #expect(o.admin == "http://h:1")
        #expect(o.token == "t2")
        #expect(o.json)
        #expect(o.service == "shop")
        #expect(o.caFile == nil)
        o = try parse("status", env: ["SWITCHYARD_ADMIN": "https://admin.test:9443", "SWITCHYARD_CACERT": "/etc/ca.pem"])
        #expect(o.admin == "https://admin.test:9443" && o.caFile == "/etc/ca.pem")
        o = try parse("--admin https://h:1 --cacert=/tmp/ca.pem status", env: ["SWITCHYARD_CACERT": "/etc/ca.pem"])
        #expect(o.admin == "https://h:1" && o.caFile == "/tmp/ca.pem")
    }

    @Test("usage errors are one line naming what is wrong", arguments: [
        ("", "no command (see switchyard ctl --help)"),
        ("frobnicate", "unknown command \"frobnicate\" (see switchyard ctl --help)"),
        ("status --bogus", "unknown option \"--bogus\" (see switchyard ctl --help)"),
        ("pause", "usage: switchyard ctl pause ID"),
        ("drain v2", "usage: switchyard ctl drain ID HOST:PORT"),
        ("drain v2 nohost", "drain: the server must be HOST:PORT (IPv6 in brackets: [::1]:8080), not \"nohost\""),
        ("status --force", "--force applies to delete"),
        ("put --server 127.0.0.1:1", "put: --version is required (or give a FILE.json)"),
        ("put --version 2", "put: at least one --server HOST:PORT is required"),
        ("put --version 2 --server 127.0.0.1", "put: --server must be HOST:PORT (IPv6 in brackets: [::1]:8080), not \"127.0.0.1\""),
        ("put --version 2 --server h:1 --steps 5,x", "--steps must be percentages between 0 and 100 separated by commas, e.g. 5,25,50,100; not \"5,x\""),
        ("put --version 2 --server h:1 --hold soon", "--hold must be a duration such as 60s, 2m or 500ms, not \"soon\""),
        ("put --version 2 --server h:1 --hold 60s", "put: --hold applies to --steps"),
        ("put --version 2 --server h:1 --mode SESSION --steps 5", "put: --steps makes a GRADUAL plan; --mode must be GRADUAL or left out"),
        ("put f.json --version 2", "put: give a FILE.json or flags, not both"),
        ("pause v2 --version 2", "--uuid, --version, --server, --mode, --steps and --hold apply to put"),
        ("--admin ftp://h:1 status", "--admin must be an http:// or https:// URL, not \"ftp://h:1\""),
        ("--cacert", "--cacert needs a value"),
        ("--token", "--token needs a value"),
    ])
    func usage(line: String, message: String) {
        #expect(usageError(line) == message)
    }

    @Test("put flags make the cluster body the API takes: a GRADUAL plan ending in INSTANT")
    func putBody() throws {
        let o = try parse("put --version 2.0 --uuid v2 --server 127.0.0.1:8083 --server [::1]:8084 --mode GRADUAL --steps 5,25,50,100 --hold 60s")
        guard case .put(.flags(let flags)) = o.command else { Issue.record("not a put: \(o.command)"); return }
        let body = String(decoding: JSONText.encode(try flags.body(service: nil)), as: UTF8.self)
        #expect(body == #"{"cluster":{"servers":[{"hostname":"127.0.0.1","port":8083},{"hostname":"::1","port":8084}],"# +
                        #""upgradeTransition":{"steps":[{"holdSeconds":60,"mode":"GRADUAL","percent":5},"# +
                        #"{"holdSeconds":60,"mode":"GRADUAL","percent":25},{"holdSeconds":60,"mode":"GRADUAL","percent":50},"# +
                        #"{"mode":"INSTANT"}]},"uuid":"v2","version":"2.0"}}"#)
        let session = try parse("put --version 3 --server h:1 --mode session")
        guard case .put(.flags(let f)) = session.command else { Issue.record("not a put"); return }
        #expect(String(decoding: JSONText.encode(try f.body(service: nil)), as: UTF8.self)
                == #"{"cluster":{"servers":[{"hostname":"h","port":1}],"upgradeTransition":{"mode":"SESSION"},"version":"3"}}"#)
    }

    @Test("durations", arguments: [("60s", 60.0), ("2m", 120), ("1h", 3600), ("500ms", 0.5), ("1.5s", 1.5), ("45", 45)])
    func durations(text: String, seconds: Double) throws {
        #expect(try parseDuration(text, flag: "--hold") == seconds)
    }

    @Test("--check-config and --no-resolve on the main command line")
    func checkConfigOptions() throws {
        let o = try parseOptions(["--check-config", "deploy/switchyard.json", "--no-resolve"])
        #expect(o.command == .checkConfig)
        #expect(o.checkConfigPath == "deploy/switchyard.json")
        #expect(o.noResolve)
        #expect(throws: UsageError.self) { try parseOptions(["--config", "x.json", "--no-resolve"]) }
    }
}
