import Foundation
import Syscalls
#if canImport(Glibc)
import Glibc
#endif

/// The `switchyard-bench` command line: a wrk-compatible load run, or a subcommand (`compare`,
/// `idle`, `versions`, `comparator`, `backend`, `drill`).
public enum BenchCommand {
    /// Runs the command; returns the process exit status.
    public static func main(_ arguments: [String]) -> Int32 {
        if arguments.first == "compare" {
            return CompareCommand.main(Array(arguments.dropFirst()))
        }
        if arguments.first == "idle" {
            return IdleCommand.main(Array(arguments.dropFirst()))
        }
        if arguments.first == "versions" {
            return VersionsCommand.main(Array(arguments.dropFirst()))
        }
        if arguments.first == "drill" {
            return DrillCommand.main(Array(arguments.dropFirst()))
        }
        if arguments.first == "comparator" {
            return ComparatorBench.main(Array(arguments.dropFirst()))
        }
        if arguments.first == "backend" {
            return runBackend(Array(arguments.dropFirst()))
        }
        let command: LoadCommand
        do {
            command = try LoadOptions.parse(arguments)
        } catch {
            printError("switchyard-bench: \(error)")
            printError(loadUsage)
            return 1
        }
        switch command {
        case .help:
            printOut(loadUsage + "\n")
            return 0
        case .version:
            printOut("switchyard-bench 1.0 [epoll] (wrk-compatible)\n")
            return 0
        case .run(let options):
            return runLoad(options)
        }
    }

    /// `switchyard-bench backend [--port N] [--threads N]`: the built-in backend on its own,
    /// until SIGINT or SIGTERM (for measuring other tools against the same backend).
    static func runBackend(_ arguments: [String]) -> Int32 {
        var port = 0, threads = 1, work = 0
        do {
            let (flags, positionals) = try ArgumentReader.read(arguments) { name in
                ["--port", "--threads", "-t", "--work-us"].contains(name) ? true : (["-h", "--help"].contains(name) ? false : nil)
            }
            guard positionals.isEmpty else { throw BenchUsageError("unexpected argument \(positionals[0])") }
            for (name, value) in flags {
                switch name {
                case "--port":
                    guard let n = Int(value!), (0...65535).contains(n) else { throw BenchUsageError("invalid port \(value!)") }
                    port = n
                case "--threads", "-t":
                    guard let n = Int(value!), (1...64).contains(n) else { throw BenchUsageError("invalid threads \(value!)") }
                    threads = n
                case "--work-us":
                    guard let n = Int(value!), (0...10_000_000).contains(n) else { throw BenchUsageError("invalid --work-us \(value!)") }
                    work = n
                default:
                    printOut(backendUsage + "\n")
                    return 0
                }
            }
        } catch {
            printError("switchyard-bench backend: \(error)")
            printError(backendUsage)
            return 1
        }
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        let backend: BenchBackend
        do {
            backend = try BenchBackend(port: port, threads: threads, workMicros: work)
        } catch {
            printError("switchyard-bench backend: cannot listen on 127.0.0.1:\(port): \(error)")
            return 1
        }
        printOut("backend listening on 127.0.0.1:\(backend.port) (GET / -> hello, GET /big -> 1 MiB\(work > 0 ? ", \(work) µs busy per request" : ""))\n")
        var received: Int32 = 0
        sigwait(&signals, &received)
        backend.stop()
        printOut("backend stopped after \(backend.served) responses\n")
        return 0
    }

    static let backendUsage = """
    Usage: switchyard-bench backend [--port N] [--threads N] [--work-us N]
      The built-in benchmark backend on 127.0.0.1 (GET / -> "hello\\n", GET /big -> 1 MiB),
      keep-alive, until SIGINT/SIGTERM. --port 0 (default) picks a free port.
      --work-us N: every request first busy-waits N µs on its thread (a slower service:
      e.g. 200 and 220 for two versions, the second 10 % slower).
    """

    static func runLoad(_ options: LoadOptions) -> Int32 {
        let plan: LoadPlan
        do {
            plan = try LoadPlan(options)
        } catch {
            printError("switchyard-bench: \(error)")
            return 1
        }
        printOut(WrkReport.header(url: options.url.text, durationSeconds: options.durationSeconds,
                                  threads: options.threads, connections: options.connections))
        let result: LoadResult
        do {
            result = try LoadGenerator.run(plan)
        } catch {
            printError("switchyard-bench: \(error)")
            return 1
        }
        printOut(WrkReport.body(result, latencyDistribution: options.latency))
        if let path = options.jsonPath {
            do {
                try writeText(WrkReport.json(result).text(), to: path)
            } catch {
                printError("switchyard-bench: cannot write \(path): \(error)")
                return 1
            }
        }
        return 0
    }
}

/// Writes a line to stderr.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Writes text to stdout at once (unbuffered, so it interleaves correctly with child output).
func printOut(_ text: String) {
    FileHandle.standardOutput.write(Data(text.utf8))
}

/// Writes `text` to `path` (`-` = stdout).
func writeText(_ text: String, to path: String) throws {
    if path == "-" {
        printOut(text)
        return
    }
    try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
}

/// Runs a subcommand: `parse` returns nil for `--help` (usage, exit 0); a parse error prints
/// one line and the usage, a run error one line, and both exit with `failure`.
func runSubcommand<Options>(_ name: String, usage: String, failure: Int32, _ arguments: [String],
                            parse: ([String]) throws -> Options?, run: (Options) throws -> Int32) -> Int32 {
    let options: Options
    do {
        guard let parsed = try parse(arguments) else {
            printOut(usage + "\n")
            return 0
        }
        options = parsed
    } catch {
        printError("switchyard-bench \(name): \(error)")
        printError(usage)
        return failure
    }
    do {
        return try run(options)
    } catch {
        printError("switchyard-bench \(name): \(error)")
        return failure
    }
}
