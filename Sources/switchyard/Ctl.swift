import Config
#if canImport(Glibc)
import Glibc
#endif

/// `switchyard ctl`: a command-line client of the admin API for operators and scripts.
/// Exit status: 0 done, 1 refused by the API or no answer (one line on stderr), 2 usage.
enum Ctl {
    static func main(_ arguments: [String]) -> Int32 {
        let options: CtlOptions
        do {
            options = try parseCtl(arguments, environment: environment())
        } catch {
            printError("switchyard ctl: \(error.description)")
            return 2
        }
        if options.command == .help {
            printOut(ctlUsage)
            return 0
        }
        guard let url = AdminURL(options.admin) else {
            printError("switchyard ctl: --admin must look like http://HOST:PORT or https://HOST:PORT, not \"\(options.admin)\"")
            return 2
        }
        let client = CtlClient(url: url, token: options.token, caFile: options.caFile)
        do {
            return try run(options, client: client)
        } catch {
            printError("switchyard ctl: \(error.description)")
            return 1
        }
    }

    /// The environment variables `ctl` reads (`SWITCHYARD_ADMIN`, `SWITCHYARD_TOKEN`, `SWITCHYARD_CACERT`).
    static func environment() -> [String: String] {
        var out: [String: String] = [:]
        for name in ["SWITCHYARD_ADMIN", "SWITCHYARD_TOKEN", "SWITCHYARD_CACERT"] {
            if let value = getenv(name) { out[name] = String(cString: value) }
        }
        return out
    }

    /// The path of the clusters collection: the 2014 one, or a service's.
    static func clustersPath(_ service: String?) -> String {
        guard let service else { return "/configuration/cluster" }
        return "/services/\(percentEncoded(service))/clusters"
    }

    /// A path segment with everything outside unreserved characters percent-encoded.
    static func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            let c = Character(Unicode.Scalar(byte))
            if c.isASCII && (c.isLetter || c.isNumber || "-._~".contains(c)) {
                out.append(c)
            } else {
                let hex = String(byte, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" : "") + hex
            }
        }
        return out
    }

    /// A failed call: the API's own message, on one line.
    struct Refused: Error, CustomStringConvertible {
        var description: String
    }

    /// Carries out one command; returns the exit status or throws what to print.
    static func run(_ options: CtlOptions, client: CtlClient) throws(Refused) -> Int32 {
        func call(_ method: String, _ path: String, body: [UInt8]? = nil, expect: Set<Int> = [200, 202]) throws(Refused) -> CtlAnswer {
            let answer: CtlAnswer
            do {
                answer = try client.call(method, path, body: body)
            } catch {
                throw Refused(description: error.description)
            }
            guard expect.contains(answer.status) else {
                let message = answer.text.split(separator: "\n").map { $0.trimmingSpaces }.filter { !$0.isEmpty }.joined(separator: " ")
                throw Refused(description: "\(method) \(path): \(answer.status): \(message.isEmpty ? "(no message)" : message)")
            }
            return answer
        }
        func json(_ answer: CtlAnswer) throws(Refused) -> Any {
            do { return try JSONText.parse(answer.body) } catch {
                throw Refused(description: "the API's answer is not JSON: \(error.description)")
            }
        }
        func readFile(_ path: String) throws(Refused) -> [UInt8] {
            guard let file = fopen(path, "rb") else { throw Refused(description: "\(path): \(String(cString: strerror(errno)))") }
            defer { fclose(file) }
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = fread(&chunk, 1, chunk.count, file)
                if n <= 0 { break }
                bytes += chunk[0..<n]
            }
            do { _ = try JSONText.parse(bytes) } catch { throw Refused(description: "\(path): \(error.description)") }
            return bytes
        }
        /// Prints the answer: JSON as it came with --json, else `human`'s text.
        func show(_ answer: CtlAnswer, _ human: (Any) -> String) throws(Refused) {
            if options.json {
                printOut(answer.text.hasSuffix("\n") ? String(answer.text.dropLast()) : answer.text)
            } else {
                printOut(human(try json(answer)))
            }
        }
        /// Prints a change's one-line answer (`--json`: `{"status", "message"}`).
        func done(_ answer: CtlAnswer, _ what: String) {
            let message = answer.text.trimmingSpaces.split(separator: "\n").joined(separator: " ")
            if options.json {
                printOut(String(decoding: JSONText.encode(["status": answer.status, "message": message] as [String: Any]), as: UTF8.self))
            } else {
                printOut(what.isEmpty ? message : "\(what): \(message)")
            }
        }
        let base = clustersPath(options.service)
        switch options.command {
        case .help:
            printOut(ctlUsage)
        case .status:
            try show(try call("GET", "/status")) { CtlView.status($0) }
        case .clusters:
            try show(try call("GET", base)) { CtlView.clusters($0) }
        case .comparisons(let divergentOnly):
            try show(try call("GET", "/comparisons")) { CtlView.comparisons($0, divergentOnly: divergentOnly) }
        case .put(let put):
            let body: [UInt8]
            switch put {
            case .file(let path): body = try readFile(path)
            case .flags(let flags):
                do { body = JSONText.encode(try flags.body(service: options.service)) } catch { throw Refused(description: error.description) }
            }
            done(try call("PUT", base, body: body), "put")
        case .delete(let id, let force):
            done(try call("DELETE", base + "/" + percentEncoded(id) + (force ? "?force=true" : "")), "deleted")
        case .rollout(let verb, let id):
            done(try call("POST", base + "/" + percentEncoded(id) + "/" + verb), verb)
        case .server(let verb, let id, let server):
            done(try call("POST", base + "/" + percentEncoded(id) + "/servers/" + percentEncoded(server) + "/" + verb), "")
        case .changes(let file):
            let answer = try call("POST", "/changes", body: try readFile(file))
            if options.json || answer.text.hasPrefix("{") { printOut(answer.text.trimmingSpaces) } else { done(answer, "changes") }
        case .probe(let path):
            let answer = try call("GET", path, expect: [200])
            if options.json { printOut(answer.text) } else { printOut(String(CtlView.string(CtlView.object(try? JSONText.parse(answer.body))["status"]) ?? "ok")) }
        case .watch:
            return try watch(options, call: { () throws(Refused) -> Any in try json(try call("GET", "/status")) })
        }
        return 0
    }

    /// `ctl watch`: clears the terminal and draws the status every second, with requests per
    /// second from the last two readings, until interrupted. With --json, prints one JSON line
    /// per second instead. A reading that fails is shown in place and retried.
    static func watch(_ options: CtlOptions, call: () throws(Refused) -> Any) throws(Refused) -> Int32 {
        var previous: (json: Any, time: Double)?
        var first = true
        while true {
            let now = monotonicSeconds()
            do {
                let json = try call()
                if options.json {
                    printOut(String(decoding: JSONText.encode(json), as: UTF8.self))
                } else {
                    let rates = previous.map { CtlView.rates(previous: $0.json, current: json, seconds: now - $0.time) } ?? [:]
                    // Home, clear screen: redraws in place like top.
                    printOut("\u{1B}[H\u{1B}[2J" + "switchyard ctl watch  \(options.admin)  (Ctrl-C to stop)\n\n"
                             + CtlView.status(json, rates: rates))
                }
                previous = (json, now)
            } catch {
                // The first reading failing is an error; later, a proxy restarting is shown and waited for.
                if first { throw error }
                printOut(options.json ? "{\"error\": \(String(decoding: JSONText.encode(error.description), as: UTF8.self))}"
                                      : "\u{1B}[H\u{1B}[2J" + "switchyard ctl watch: \(error.description) (retrying)")
            }
            first = false
            let elapsed = monotonicSeconds() - now
            if elapsed < 1 { usleep(UInt32((1 - elapsed) * 1_000_000)) }
        }
    }

    /// Seconds on the monotonic clock.
    static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
