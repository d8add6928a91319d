/// A command-line mistake: one line for stderr (the usage text follows it).
public struct BenchUsageError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// An `http://` or `https://` URL on loopback, split the way the request needs it.
public struct TargetURL: Equatable, Sendable {
    /// As given on the command line (printed in "Running … @ URL").
    public var text: String
    /// Host without brackets, e.g. `127.0.0.1` or `::1`.
    public var host: String
    public var port: Int
    /// Path and query, never empty (`/` when the URL has none).
    public var pathAndQuery: String
    /// The Host field value wrk sends: `host:port` (brackets for IPv6), always with the port.
    public var hostField: String
    /// `https://`: the connection speaks TLS.
    public var isTLS = false

    /// Parses `http[s]://host[:port][/path][?query]` (port 80, or 443 for https, when none is
    /// given). Only loopback hosts are accepted: every run of this tool stays on the machine.
    public init(_ text: String) throws(BenchUsageError) {
        self.text = text
        let scheme: String
        if text.hasPrefix("http://") {
            scheme = "http://"
        } else if text.hasPrefix("https://") {
            scheme = "https://"
            isTLS = true
        } else {
            throw BenchUsageError("invalid URL (expected http[s]://host[:port]/path): \(text)")
        }
        let rest = text.dropFirst(scheme.count)
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var path = String(rest[authorityEnd...])
        if path.isEmpty { path = "/" } else if path.hasPrefix("?") { path = "/" + path }
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw BenchUsageError("invalid URL: \(text)") }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty { throw BenchUsageError("invalid URL: \(text)") }
        } else if let colon = authority.firstIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        guard !host.isEmpty else { throw BenchUsageError("invalid URL (no host): \(text)") }
        var port = isTLS ? 443 : 80
        if let portText {
            guard let p = Int(portText), (1...65535).contains(p) else { throw BenchUsageError("invalid port in URL: \(text)") }
            port = p
        }
        guard TargetURL.isLoopback(String(host)) else {
            throw BenchUsageError("only loopback targets are allowed (127.0.0.0/8, ::1, localhost): \(text)")
        }
        self.host = String(host)
        self.port = port
        self.pathAndQuery = path
        self.hostField = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Whether `host` names this machine's loopback interface.
    public static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" || host == "::1" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts.allSatisfy({ UInt8($0) != nil }) else { return false }
        return parts[0] == "127"
    }

    /// The URL, refused when it is https: for commands that speak plain HTTP only (`option`
    /// names where it came from in the message).
    public static func plain(_ text: String, option: String) throws(BenchUsageError) -> TargetURL {
        let url = try TargetURL(text)
        guard !url.isTLS else { throw BenchUsageError("\(option) needs an http:// URL (https is for the load run and compare --tls): \(text)") }
        return url
    }

    /// The address to connect to (`localhost` → 127.0.0.1).
    public var connectHost: String { host == "localhost" ? "127.0.0.1" : host }
}

/// What `switchyard-bench [options] URL` was asked to do (wrk's flags, plus `-R` and `--json`).
public struct LoadOptions: Equatable, Sendable {
    /// `-t`, `--threads`: reactor threads (default 2, as wrk).
    public var threads = 2
    /// `-c`, `--connections`: connections kept open in total (default 10, as wrk).
    public var connections = 10
    /// `-d`, `--duration`: test length in seconds (default 10).
    public var durationSeconds: UInt64 = 10
    /// `--timeout`: a request outstanding this long counts as a timeout (default 2 s, as wrk).
    public var timeoutMillis: UInt64 = 2000
    /// `--latency`, `-L`: print the latency distribution.
    public var latency = false
    /// `-H`, `--header`: extra header lines, `Name: value`.
    public var headers: [String] = []
    /// `-R`, `--rate`: total requests per second (constant-throughput mode); nil = as fast as possible.
    public var rate: UInt64?
    /// `--json FILE`: also write the figures as JSON.
    public var jsonPath: String?
    /// `--close`: a new connection per request (`Connection: close` sent, the connection closed
    /// after each response).
    public var closeEachRequest = false
    /// `--cacert FILE` (https): verify the server's certificate against these PEM certificates
    /// and the server name; nil = no verification (benchmarks against self-signed certificates).
    public var caFile: String?
    /// `--sni NAME` (https): the server name sent (and verified); nil = the URL's host.
    public var serverName: String?
    /// `--resume` (https): a new connection resumes the session of its previous one; off by
    /// default, so `--close` measures full handshakes.
    public var resume = false
    /// The target.
    public var url: TargetURL

    public init(url: TargetURL) { self.url = url }
}

/// The parsed command line of the load generator.
public enum LoadCommand: Equatable {
    case run(LoadOptions)
    case help
    case version
}

/// Command-line parsing with getopt_long's rules: `-t2` and `-t 2`, `--threads 2` and
/// `--threads=2`, options and the URL in any order, `--` ends options.
enum ArgumentReader {
    /// Splits `arguments` into (flag, inline value) pairs and positionals, asking `takesValue`
    /// which flags consume a value. Short flags are `-x`; anything longer after one dash is
    /// `-x` with an attached value.
    static func read(
        _ arguments: [String], takesValue: (String) -> Bool?
    ) throws(BenchUsageError) -> (flags: [(name: String, value: String?)], positionals: [String]) {
        var flags: [(String, String?)] = []
        var positionals: [String] = []
        var i = 0
        var optionsEnded = false
        while i < arguments.count {
            let argument = arguments[i]
            i += 1
            if optionsEnded || !argument.hasPrefix("-") || argument == "-" {
                positionals.append(argument)
                continue
            }
            if argument == "--" { optionsEnded = true; continue }
            var name: String
            var inline: String?
            if argument.hasPrefix("--") {
                if let eq = argument.firstIndex(of: "=") {
                    name = String(argument[..<eq])
                    inline = String(argument[argument.index(after: eq)...])
                } else {
                    name = argument
                }
            } else {
                name = String(argument.prefix(2))
                let attached = argument.dropFirst(2)
                if !attached.isEmpty { inline = String(attached) }
            }
            guard let needsValue = takesValue(name) else { throw BenchUsageError("unknown option \(name)") }
            if needsValue {
                if inline == nil {
                    guard i < arguments.count else { throw BenchUsageError("option \(name) needs a value") }
                    inline = arguments[i]
                    i += 1
                }
            } else if let inline {
                if name.hasPrefix("--") { throw BenchUsageError("option \(name) takes no value (got \"\(inline)\")") }
                throw BenchUsageError("unknown option \(argument)")
            }
            flags.append((name, inline))
        }
        return (flags, positionals)
    }
}

extension LoadOptions {
    /// Which flags exist and whether they take a value.
    static func takesValue(_ name: String) -> Bool? {
        switch name {
        case "-t", "--threads", "-c", "--connections", "-d", "--duration", "-H", "--header",
             "--timeout", "-T", "-R", "--rate", "--json", "-s", "--script", "--cacert", "--sni":
            return true
        case "--latency", "-L", "-h", "--help", "-v", "--version", "--close", "--resume":
            return false
        default:
            return nil
        }
    }

    /// Parses the load generator's arguments (without the program name).
    public static func parse(_ arguments: [String]) throws(BenchUsageError) -> LoadCommand {
        let (flags, positionals) = try ArgumentReader.read(arguments, takesValue: takesValue)
        var threads: UInt64 = 2, connections: UInt64 = 10, duration: UInt64 = 10, timeout: UInt64 = 2000
        var latency = false, headers: [String] = [], rate: UInt64?, json: String?, close = false
        var caFile: String?, serverName: String?, resume = false
        for (name, value) in flags {
            let v = value ?? ""
            switch name {
            case "-h", "--help": return .help
            case "-v", "--version": return .version
            case "-t", "--threads":
                guard let n = WrkUnits.scanMetric(v), n >= 1, n <= 256 else { throw BenchUsageError("invalid threads \"\(v)\" (1...256, e.g. -t2)") }
                threads = n
            case "-c", "--connections":
                guard let n = WrkUnits.scanMetric(v), n >= 1, n <= 100_000 else { throw BenchUsageError("invalid connections \"\(v)\" (1...100k, e.g. -c50)") }
                connections = n
            case "-d", "--duration":
                guard let n = WrkUnits.scanSeconds(v), n >= 1, n <= 24 * 3600 else { throw BenchUsageError("invalid duration \"\(v)\" (e.g. 10, 10s, 2m, 1h)") }
                duration = n
            case "--timeout", "-T":
                guard let ms = parseTimeoutMillis(v) else { throw BenchUsageError("invalid timeout \"\(v)\" (e.g. 2s, 500ms)") }
                timeout = ms
            case "-L", "--latency": latency = true
            case "-H", "--header":
                guard let colon = v.firstIndex(of: ":"), colon != v.startIndex else {
                    throw BenchUsageError("invalid header \"\(v)\" (expected 'Name: value')")
                }
                headers.append(v)
            case "-R", "--rate":
                guard let n = WrkUnits.scanMetric(v), n >= 1 else { throw BenchUsageError("invalid rate \"\(v)\" (requests/s, e.g. -R 2000 or -R 2k)") }
                rate = n
            case "--json": json = v
            case "--close": close = true
            case "--cacert":
                guard !v.isEmpty else { throw BenchUsageError("--cacert needs a PEM file") }
                caFile = v
            case "--sni":
                guard !v.isEmpty, !v.contains(where: { $0 == " " || $0 == "/" }) else { throw BenchUsageError("--sni needs a host name, got \"\(v)\"") }
                serverName = v
            case "--resume": resume = true
            case "-s", "--script": throw BenchUsageError("Lua scripts are not supported (-s \(v))")
            default: throw BenchUsageError("unknown option \(name)")
            }
        }
        guard positionals.count == 1 else {
            throw BenchUsageError(positionals.isEmpty ? "missing URL" : "expected one URL, got \(positionals.count): \(positionals.joined(separator: " "))")
        }
        guard connections >= threads else { throw BenchUsageError("number of connections must be >= threads") }
        var options = LoadOptions(url: try TargetURL(positionals[0]))
        if !options.url.isTLS {
            if caFile != nil { throw BenchUsageError("--cacert needs an https:// URL") }
            if serverName != nil { throw BenchUsageError("--sni needs an https:// URL") }
            if resume { throw BenchUsageError("--resume needs an https:// URL") }
        }
        options.caFile = caFile
        options.serverName = serverName
        options.resume = resume
        options.threads = Int(threads)
        options.connections = Int(connections)
        options.durationSeconds = duration
        options.timeoutMillis = timeout
        options.latency = latency
        options.headers = headers
        options.rate = rate
        options.jsonPath = json
        options.closeEachRequest = close
        return .run(options)
    }

    /// A timeout as wrk reads it (`2`, `2s`, `1m`), plus `500ms` for sub-second timeouts.
    public static func parseTimeoutMillis(_ text: String) -> UInt64? {
        if text.lowercased().hasSuffix("ms") {
            guard let n = UInt64(text.dropLast(2)), n >= 1 else { return nil }
            return n
        }
        guard let s = WrkUnits.scanSeconds(text), s >= 1 else { return nil }
        return s * 1000
    }

    /// The request every connection sends, byte for byte what wrk sends for the same arguments:
    /// `GET path HTTP/1.1`, `Host: host:port` unless a -H gives one, then the -H lines.
    public var requestBytes: [UInt8] {
        var text = "GET \(url.pathAndQuery) HTTP/1.1\r\n"
        let hasHost = headers.contains { $0.lowercased().hasPrefix("host:") }
        if !hasHost { text += "Host: \(url.hostField)\r\n" }
        for header in headers { text += header + "\r\n" }
        if closeEachRequest && !headers.contains(where: { $0.lowercased().hasPrefix("connection:") }) { text += "Connection: close\r\n" }
        text += "\r\n"
        return Array(text.utf8)
    }
}

public let loadUsage = """
Usage: switchyard-bench <options> <url>
       switchyard-bench compare [compare options]     (see: switchyard-bench compare --help)
       switchyard-bench versions --old URL --new URL   (is the new version slower? see --help)
       switchyard-bench idle -n N URL [--pid PID]      (memory per idle keep-alive connection)
       switchyard-bench backend [--port N]             (the built-in benchmark backend)
       switchyard-bench comparator                     (the CONCURRENT comparator alone)
       switchyard-bench drill [--plan FILE] [--json]   (a staged rollout drill; see --help)
  Options:
    -c, --connections <N>  Connections to keep open   (default 10)
    -d, --duration    <T>  Duration of test           (default 10s)
    -t, --threads     <N>  Number of threads to use   (default 2)
    -H, --header      <H>  Add header to request      (repeatable)
    -L, --latency          Print latency statistics
        --timeout     <T>  Socket/request timeout     (default 2s; also 500ms)
    -R, --rate        <N>  Constant throughput, requests/s in total; latency is measured
                           from each request's intended send time (coordinated omission)
        --json     <FILE>  Also write the figures as JSON
        --close            A new connection per request (Connection: close; latency
                           excludes the connect, as wrk's)
    -v, --version          Print version details
  https:// URLs (TLS; the report adds the handshakes made):
        --cacert   <FILE>  Verify the server against these PEM certificates
                           (default: no verification)
        --sni      <NAME>  Server name to send and verify (default: the URL's host)
        --resume           Resume the previous session on a new connection
                           (default off: every connection makes a full handshake)
  Numeric arguments may include a SI unit (1k, 1M, 1G)
  Time arguments may include a time unit (2s, 2m, 2h)
  Only http:// and https:// URLs on loopback (127.0.0.0/8, ::1, localhost).
"""
