/// What `switchyard ctl` was asked to do: the proxy to talk to, how, and the command.
struct CtlOptions: Equatable {
    /// Base URL of the admin API (`--admin`, `SWITCHYARD_ADMIN`, or `http://127.0.0.1:9090`).
    var admin = "http://127.0.0.1:9090"
    /// Bearer token (`--token` or `SWITCHYARD_TOKEN`).
    var token: String?
    /// CA certificates (PEM) an `https://` admin URL's certificate must chain to (`--cacert`
    /// or `SWITCHYARD_CACERT`); nil: the system's.
    var caFile: String?
    /// Print the API's JSON instead of tables (`--json`).
    var json = false
    /// The service whose clusters are meant (`--service`); nil: the 2014 `/configuration/cluster`.
    var service: String?
    var command = CtlCommand.help
}

/// One `switchyard ctl` command.
enum CtlCommand: Equatable {
    case help
    /// `status`: the proxy's summary and a table of its clusters.
    case status
    /// `clusters`: the clusters' definitions and states.
    case clusters
    /// `put FILE.json` or `put --version … --server …`.
    case put(CtlPut)
    /// `delete ID [--force]`.
    case delete(id: String, force: Bool)
    /// `pause|resume|promote|rollback ID`.
    case rollout(verb: String, id: String)
    /// `drain|enable ID HOST:PORT`.
    case server(verb: String, id: String, server: String)
    /// `comparisons [--divergent]`.
    case comparisons(divergentOnly: Bool)
    /// `watch`: `status` redrawn every second.
    case watch
    /// `changes FILE.json`: one change set (`POST /changes`).
    case changes(file: String)
    /// `health` or `ready`: `GET /healthz` or `/readyz`; exit 0 only on 200 (container health checks).
    case probe(path: String)
}

/// What `ctl put` sends: a file's body as it is, or a cluster built from flags.
enum CtlPut: Equatable {
    case file(String)
    case flags(CtlPutFlags)
}

/// `ctl put` flags.
struct CtlPutFlags: Equatable {
    var uuid: String?
    var version: String?
    /// `host:port` each (IPv6 in brackets).
    var servers: [String] = []
    var mode: String?
    /// GRADUAL percentages of a staged plan, e.g. 5,25,50,100 (100 becomes an INSTANT step).
    var steps: [Double] = []
    /// Hold time of each step, in seconds.
    var holdSeconds: Double?

    /// The `{"cluster": {…}}` body, or a usage error naming the flag.
    func body(service: String?) throws(UsageError) -> [String: Any] {
        guard let version, !version.isEmpty else { throw UsageError(description: "put: --version is required (or give a FILE.json)") }
        guard !servers.isEmpty else { throw UsageError(description: "put: at least one --server HOST:PORT is required") }
        var cluster: [String: Any] = ["version": version]
        var list: [Any] = []
        for server in servers {
            guard let (host, port) = Self.split(server) else {
                throw UsageError(description: "put: --server must be HOST:PORT (IPv6 in brackets: [::1]:8080), not \"\(server)\"")
            }
            list.append(["hostname": host, "port": port] as [String: Any])
        }
        cluster["servers"] = list
        if let uuid { cluster["uuid"] = uuid }
        let mode = self.mode?.uppercased()
        if !steps.isEmpty {
            guard mode == nil || mode == "GRADUAL" else { throw UsageError(description: "put: --steps makes a GRADUAL plan; --mode must be GRADUAL or left out") }
            let hold = holdSeconds ?? 0
            cluster["upgradeTransition"] = ["steps": steps.map { percent -> Any in
                percent >= 100 ? ["mode": "INSTANT"] as [String: Any]
                               : ["mode": "GRADUAL", "percent": percent, "holdSeconds": hold] as [String: Any]
            }] as [String: Any]
        } else if let mode, mode != "INSTANT" {
            if holdSeconds != nil { throw UsageError(description: "put: --hold applies to --steps") }
            cluster["upgradeTransition"] = ["mode": mode]
        } else if holdSeconds != nil {
            throw UsageError(description: "put: --hold applies to --steps")
        }
        _ = service   // the service is in the path (`/services/{name}/clusters`), not the body
        return ["cluster": cluster]
    }

    /// `host:port` or `[v6]:port` → (host, port), nil when malformed.
    static func split(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
            guard host.contains(":") else { return nil }
        } else if host.contains(":") {
            return nil
        }
        return host.isEmpty ? nil : (host, port)
    }
}

let ctlUsage = """
Usage: switchyard ctl [--admin URL] [--token T] [--cacert FILE] [--json] COMMAND

Commands:
  status                              the proxy and its clusters (state, rollout, traffic)
  clusters [--service S]              every cluster: version, mode, state, backends
  put FILE.json                       PUT a {"cluster": {…}} body from a file
  put --version V --server HOST:PORT [--server …] [--uuid ID] [--mode MODE]
      [--steps 5,25,50,100] [--hold 60s] [--service S]
                                      PUT a cluster; --steps makes a GRADUAL plan
                                      (100 = the final INSTANT step), --hold each step's time
  delete ID [--force]                 remove a cluster
  pause|resume|promote|rollback ID    act on a cluster's rollout
  drain|enable ID HOST:PORT           stop or restart new exchanges to one backend
  comparisons [--divergent]           the newest CONCURRENT comparisons
  watch                               status, redrawn every second (Ctrl-C ends it)
  changes FILE.json                   POST a change set to /changes
  health | ready                      GET /healthz or /readyz: exit 0 when 200, else 1

Global options:
  --admin URL     the admin API (default: $SWITCHYARD_ADMIN or http://127.0.0.1:9090)
  --token T       bearer token (default: $SWITCHYARD_TOKEN)
  --cacert FILE   CA certificates (PEM) to verify an https:// admin API with
                  (default: $SWITCHYARD_CACERT, else the system's)
  --json          print the API's JSON answer instead of a table

Exit status: 0 done, 1 the proxy refused or did not answer (one line on stderr), 2 usage.
"""

/// Parses `switchyard ctl` arguments (after `ctl`). `environment` supplies `SWITCHYARD_ADMIN`,
/// `SWITCHYARD_TOKEN` and `SWITCHYARD_CACERT`; flags win over it. Throws a one-line usage error.
func parseCtl(_ arguments: [String], environment: [String: String]) throws(UsageError) -> CtlOptions {
    var options = CtlOptions()
    if let admin = environment["SWITCHYARD_ADMIN"], !admin.isEmpty { options.admin = admin }
    if let token = environment["SWITCHYARD_TOKEN"], !token.isEmpty { options.token = token }
    if let file = environment["SWITCHYARD_CACERT"], !file.isEmpty { options.caFile = file }
    var positional: [String] = []
    var flags = CtlPutFlags()
    var force = false
    var divergent = false
    var i = 0
    func value(_ name: String, _ inline: String?) throws(UsageError) -> String {
        if let inline { return inline }
        i += 1
        guard i < arguments.count else { throw UsageError(description: "\(name) needs a value") }
        return arguments[i]
    }
    while i < arguments.count {
        let argument = arguments[i]
        guard argument.hasPrefix("--") else {
            positional.append(argument)
            i += 1
            continue
        }
        var name = argument
        var inline: String?
        if let eq = argument.firstIndex(of: "=") {
            name = String(argument[..<eq])
            inline = String(argument[argument.index(after: eq)...])
        }
        switch name {
        case "--help": options.command = .help; return options
        case "--admin":
            let url = try value(name, inline)
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
                throw UsageError(description: "--admin must be an http:// or https:// URL, not \"\(url)\"")
            }
            options.admin = url
        case "--token": options.token = try value(name, inline)
        case "--cacert": options.caFile = try value(name, inline)
        case "--json": options.json = true
        case "--service": options.service = try value(name, inline)
        case "--force": force = true
        case "--divergent": divergent = true
        case "--uuid": flags.uuid = try value(name, inline)
        case "--version": flags.version = try value(name, inline)
        case "--server": flags.servers.append(try value(name, inline))
        case "--mode": flags.mode = try value(name, inline)
        case "--steps":
            let text = try value(name, inline)
            flags.steps = try text.split(separator: ",", omittingEmptySubsequences: false).map { part throws(UsageError) -> Double in
                guard let p = Double(part.trimmingSpaces), p > 0, p <= 100 else {
                    throw UsageError(description: "--steps must be percentages between 0 and 100 separated by commas, e.g. 5,25,50,100; not \"\(text)\"")
                }
                return p
            }
        case "--hold": flags.holdSeconds = try parseDuration(try value(name, inline), flag: name)
        default: throw UsageError(description: "unknown option \"\(argument)\" (see switchyard ctl --help)")
        }
        i += 1
    }
    guard let verb = positional.first else { throw UsageError(description: "no command (see switchyard ctl --help)") }
    let rest = Array(positional.dropFirst())
    func expect(_ count: Int, _ shape: String) throws(UsageError) {
        guard rest.count == count else { throw UsageError(description: "usage: switchyard ctl \(verb) \(shape)".trimmingSpaces) }
    }
    let usesPutFlags = flags != CtlPutFlags()
    if usesPutFlags && verb != "put" { throw UsageError(description: "--uuid, --version, --server, --mode, --steps and --hold apply to put") }
    if force && verb != "delete" { throw UsageError(description: "--force applies to delete") }
    if divergent && verb != "comparisons" { throw UsageError(description: "--divergent applies to comparisons") }
    switch verb {
    case "help": options.command = .help
    case "status": try expect(0, ""); options.command = .status
    case "clusters": try expect(0, "[--service S]"); options.command = .clusters
    case "watch": try expect(0, ""); options.command = .watch
    case "health": try expect(0, ""); options.command = .probe(path: "/healthz")
    case "ready": try expect(0, ""); options.command = .probe(path: "/readyz")
    case "comparisons": try expect(0, "[--divergent]"); options.command = .comparisons(divergentOnly: divergent)
    case "put":
        if let file = rest.first {
            try expect(1, "FILE.json | put --version V --server HOST:PORT …")
            if usesPutFlags { throw UsageError(description: "put: give a FILE.json or flags, not both") }
            options.command = .put(.file(file))
        } else {
            _ = try flags.body(service: options.service)   // report missing or malformed flags now
            options.command = .put(.flags(flags))
        }
    case "delete": try expect(1, "ID [--force]"); options.command = .delete(id: rest[0], force: force)
    case "pause", "resume", "promote", "rollback":
        try expect(1, "ID"); options.command = .rollout(verb: verb, id: rest[0])
    case "drain", "enable":
        try expect(2, "ID HOST:PORT")
        guard CtlPutFlags.split(rest[1]) != nil else {
            throw UsageError(description: "\(verb): the server must be HOST:PORT (IPv6 in brackets: [::1]:8080), not \"\(rest[1])\"")
        }
        options.command = .server(verb: verb, id: rest[0], server: rest[1])
    case "changes": try expect(1, "FILE.json"); options.command = .changes(file: rest[0])
    default: throw UsageError(description: "unknown command \"\(verb)\" (see switchyard ctl --help)")
    }
    return options
}

/// `60s`, `2m`, `1h`, `1.5s`, `500ms` or a bare number of seconds → seconds.
func parseDuration(_ text: String, flag: String) throws(UsageError) -> Double {
    let units: [(suffix: String, seconds: Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
    var number = Substring(text)
    var scale = 1.0
    for unit in units where text.hasSuffix(unit.suffix) {
        number = text.dropLast(unit.suffix.count)
        scale = unit.seconds
        break
    }
    guard let value = Double(number), value >= 0, value.isFinite else {
        throw UsageError(description: "\(flag) must be a duration such as 60s, 2m or 500ms, not \"\(text)\"")
    }
    return value * scale
}

extension StringProtocol {
    /// The text without leading and trailing spaces.
    var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
