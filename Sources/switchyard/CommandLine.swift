#if canImport(Glibc)
import Glibc
#endif
import Observability

/// What the command line asked for.
struct Options: Equatable {
    enum Command: Equatable { case run, demo, help, checkConfig }
    var command = Command.run
    var configPath: String?
    var workers: Int?
    var logLevel: LogLevel?
    var port: Int?
    var adminPort: Int?
    /// Directory of the durable state (`--state-dir`); overrides the file's `state.dir`.
    var stateDir: String?
    /// Move the state files aside and start from the configuration (`--reset-state`).
    var resetState = false
    /// True when no config flag was given and `./config.json` is used (the 2014 default).
    var configFromDefault = false
    /// `--check-config FILE`: validate the file and exit (0 valid, 2 with the message).
    var checkConfigPath: String?
    /// `--no-resolve`: with `--check-config`, accept host names without looking them up.
    var noResolve = false
}

/// A command-line mistake: one line for stderr.
struct UsageError: Error, CustomStringConvertible {
    var description: String
}

let usage = """
Usage:
  switchyard [--config FILE] [--state-dir DIR] [--reset-state] [--workers N] [--log-level LEVEL]
  switchyard demo [--port 8080] [--admin-port 9090] [--state-dir DIR] [--workers N] [--log-level LEVEL]
  switchyard --check-config FILE [--no-resolve]
  switchyard ctl COMMAND [...]          operate a running proxy (switchyard ctl --help)
  switchyard upgrade [--config FILE | --admin URL] [--binary PATH] [--timeout SECONDS]
  switchyard --help

Options:
  --config FILE, -configFile=FILE   JSON configuration (the 2014 format, see README);
                                    default ./config.json when it exists
  --state-dir DIR                   keep API changes, failed marks and GRADUAL progress
                                    across restarts (also "state": {"dir": …} in the file)
  --reset-state                     move the state files aside and start from the configuration
  --workers N                       reactor threads (default: online CPUs)
  --log-level LEVEL, -logLevel=L    CRITICAL, ERROR, WARNING (default), NOTICE, INFO, DEBUG
  --check-config FILE               validate FILE and exit: 0 when valid, 2 with the message
  --no-resolve                      with --check-config: do not look host names up (DNS)
  --port N                          demo: proxy port (default 8080)
  --admin-port N                    demo: API port (default 9090)

`switchyard demo` starts built-in backends for two versions of a small web app
(v1.0 on 127.0.0.1:8081-8082, v2.0 on 8083-8084), the proxy with v1.0, and the API.
"""

/// Parses arguments (without the program name). Accepts `--flag value`, `--flag=value`
/// and the 2014 spellings `-configFile=FILE` / `-logLevel=LEVEL`. Without a config flag,
/// `defaultConfig` (the path of `./config.json` when it exists) is used, as in 2014.
func parseOptions(_ arguments: [String], defaultConfig: String? = nil) throws(UsageError) -> Options {
    var options = Options()
    var i = 0
    func value(_ name: String, _ inline: String?) throws(UsageError) -> String {
        if let inline { return inline }
        i += 1
        guard i < arguments.count else { throw UsageError(description: "\(name) needs a value") }
        return arguments[i]
    }
    func integer(_ name: String, _ text: String, _ range: ClosedRange<Int>) throws(UsageError) -> Int {
        guard let n = Int(text), range.contains(n) else {
            throw UsageError(description: "\(name) must be an integer between \(range.lowerBound) and \(range.upperBound), got \"\(text)\"")
        }
        return n
    }
    while i < arguments.count {
        let argument = arguments[i]
        var name = argument
        var inline: String?
        if let eq = argument.firstIndex(of: "="), argument.hasPrefix("-") {
            name = String(argument[..<eq])
            inline = String(argument[argument.index(after: eq)...])
        }
        switch name {
        case "demo" where i == 0:
            options.command = .demo
        case "-h", "--help", "-help", "help":
            options.command = .help
        case "--config", "-configFile", "--configFile", "-config":
            options.configPath = try value(name, inline)
        case "--workers", "-workers":
            options.workers = try integer(name, try value(name, inline), 1...256)
        case "--log-level", "-logLevel", "--logLevel":
            let text = try value(name, inline)
            guard let level = LogLevel(name: text) else {
                throw UsageError(description: "unknown log level \"\(text)\" (use CRITICAL, ERROR, WARNING, NOTICE, INFO or DEBUG)")
            }
            options.logLevel = level
        case "--port":
            options.port = try integer(name, try value(name, inline), 0...65535)
        case "--admin-port":
            options.adminPort = try integer(name, try value(name, inline), 0...65535)
        case "--state-dir", "-stateDir":
            let dir = try value(name, inline)
            guard !dir.isEmpty else { throw UsageError(description: "\(name) needs a directory") }
            options.stateDir = dir
        case "--reset-state":
            options.resetState = true
        case "--check-config":
            options.command = .checkConfig
            options.checkConfigPath = try value(name, inline)
        case "--no-resolve":
            options.noResolve = true
        default:
            throw UsageError(description: "unknown argument \"\(argument)\" (see --help)")
        }
        i += 1
    }
    if options.noResolve && options.command != .checkConfig {
        throw UsageError(description: "--no-resolve applies to --check-config")
    }
    if options.command == .run && options.configPath == nil, let defaultConfig {
        options.configPath = defaultConfig
        options.configFromDefault = true
    }
    if options.command == .run && options.configPath == nil {
        throw UsageError(description: "no configuration (no --config and no ./config.json); usage: switchyard --config FILE [--state-dir DIR] | switchyard demo (see --help)")
    }
    if options.command == .run && (options.port != nil || options.adminPort != nil) {
        throw UsageError(description: "--port and --admin-port apply to `switchyard demo`; set ports in the configuration file")
    }
    return options
}

/// Writes one line to standard error with a single write(2).
func printError(_ line: String) {
    Successor.refuse(line)
    var bytes = Array((line + "\n").utf8)
    bytes.withUnsafeMutableBytes { _ = write(2, $0.baseAddress, $0.count) }
}

/// Writes text to standard output unbuffered (shows at once even when piped).
func printOut(_ text: String) {
    var bytes = Array((text + "\n").utf8)
    bytes.withUnsafeMutableBytes { _ = write(1, $0.baseAddress, $0.count) }
}
