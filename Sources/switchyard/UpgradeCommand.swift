import Config
import Observability
import Syscalls
#if canImport(Glibc)
import Glibc
#endif

/// `switchyard upgrade`: asks the running process (through its admin API) to replace itself
/// with a new binary, waits for the outcome and says it in one line. Exit status 0 when the
/// new process serves, 1 when the upgrade failed or was refused, 2 for a usage mistake.
enum UpgradeCommand {
    static let usageLine = "usage: switchyard upgrade [--config FILE | --admin URL] [--cacert FILE] [--binary PATH] [--timeout SECONDS]"

    static func main(_ arguments: [String]) -> Int32 {
        var admin: String?
        var configPath: String?
        var binary: String?
        var caFile: String?
        var timeout = 30.0
        var i = 0
        while i < arguments.count {
            var name = arguments[i]
            var inline: String?
            if let eq = name.firstIndex(of: "="), name.hasPrefix("--") {
                inline = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            func value() -> String? {
                if let inline { return inline }
                i += 1
                return i < arguments.count ? arguments[i] : nil
            }
            switch name {
            case "--admin": admin = value()
            case "--config": configPath = value()
            case "--binary": binary = value()
            case "--cacert": caFile = value()
            case "--timeout":
                guard let text = value(), let seconds = Double(text), seconds > 0 else {
                    printError("switchyard upgrade: --timeout needs a number of seconds")
                    return 2
                }
                timeout = seconds
            case "-h", "--help":
                printOut(usageLine)
                return 0
            default:
                printError("switchyard upgrade: unknown argument \"\(arguments[i])\"; \(usageLine)")
                return 2
            }
            i += 1
        }
        // Where the API is: --admin, else the configuration's configService, else ./config.json's.
        var token = getenv("SWITCHYARD_ADMIN_TOKEN").map { String(cString: $0) }
        var host = "127.0.0.1"
        var port = 9090
        // An API with TLS (`https://`, or `configService.tls` in the configuration) is called
        // through ctl's client, which verifies its certificate.
        var secure = false
        if let admin, admin.hasPrefix("https://") {
            guard AdminURL(admin) != nil else {
                printError("switchyard upgrade: --admin: expected https://HOST:PORT, got \"\(admin)\"")
                return 2
            }
            secure = true
        } else if let admin {
            guard let parsed = parseAdminURL(admin) else {
                printError("switchyard upgrade: --admin: expected http://HOST:PORT, got \"\(admin)\"")
                return 2
            }
            (host, port) = parsed
        } else if let path = configPath ?? (access("config.json", R_OK) == 0 ? "config.json" : nil) {
            do {
                let config = try Launcher.loadConfig(path)
                host = config.adminHost == "0.0.0.0" ? "127.0.0.1" : config.adminHost
                port = config.adminPort
                token = token ?? config.adminToken
                if let tls = config.adminTLS {
                    // A self-signed API certificate is its own CA; others need --cacert.
                    secure = true
                    caFile = caFile ?? tls.certificates.first?.cert
                }
            } catch {
                printError("switchyard upgrade: \(path): \(error)")
                return 2
            }
        }
        if var path = binary, !path.hasPrefix("/") {
            if let cwd = getcwd(nil, 0) {
                path = String(cString: cwd) + "/" + path
                free(cwd)
            }
            binary = path
        }
        if secure {
            let text = admin ?? "https://" + (host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
            guard let url = AdminURL(text) else {
                printError("switchyard upgrade: cannot use \(text) as the admin API's address")
                return 2
            }
            let client = CtlClient(url: url, token: token, caFile: caFile)
            return run(where: url.origin, token: token, binary: binary, timeout: timeout) { method, body throws in
                let answer = try client.call(method, "/upgrade", body: body.isEmpty ? nil : body)
                return (answer.status, (try? JSONText.parse(answer.body)) as? [String: Any] ?? [:])
            }
        }
        guard let address = SocketAddress(host: host, port: port) else {
            printError("switchyard upgrade: cannot resolve \(host)")
            return 2
        }
        return run(where: "\(address)", token: token, binary: binary, timeout: timeout) { method, body throws in
            try exchange(address, method: method, token: token, body: body)
        }
    }

    /// `http://host:port[/]` or `host:port`.
    static func parseAdminURL(_ text: String) -> (String, Int)? {
        var rest = Substring(text)
        if rest.hasPrefix("http://") { rest = rest.dropFirst(7) }
        while rest.hasSuffix("/") { rest = rest.dropLast() }
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        var host = String(rest[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    /// Starts the upgrade and polls `GET /upgrade` until the new process answers with the
    /// attempt's serial, or the old one reports the attempt failed.
    /// `call(method, body)` makes one call to `/upgrade`; `where_` names the API in messages.
    static func run(where address: String, token: String?, binary: String?, timeout: Double,
                    call: (String, [UInt8]) throws -> (status: Int, json: [String: Any])) -> Int32 {
        let started = Clock.nanoseconds()
        let body = binary.map { JSONText.encode(["binary": $0]) } ?? []
        let answer: (status: Int, json: [String: Any])
        do {
            answer = try call("POST", body)
        } catch {
            if let error = error as? CtlUnreachable {
                printError("switchyard upgrade: \(error.description)")
            } else {
                printError("switchyard upgrade: cannot reach the admin API at \(address): \(error)")
            }
            return 1
        }
        guard answer.status == 202, let serial = answer.json["serial"] as? Int, let oldPID = answer.json["pid"] as? Int else {
            let reason = answer.json["error"] as? String ?? "status \(answer.status)"
            printError("switchyard upgrade: refused (\(answer.status)): \(reason)")
            return 1
        }
        let deadline = started &+ UInt64(timeout * 1e9)
        while Clock.nanoseconds() < deadline {
            usleep(20_000)
            guard let status = try? call("GET", []), status.status == 200 else { continue }
            let pid = status.json["pid"] as? Int ?? 0
            if pid != oldPID, (status.json["serial"] as? Int ?? 0) >= serial, status.json["state"] as? String == "serving" {
                let millis = Double(Clock.nanoseconds() &- started) / 1e6
                printOut("switchyard upgrade: pid \(oldPID) handed over to pid \(pid) (upgrade \(serial)); the new process served the API \(Int(millis.rounded())) ms after the request")
                return 0
            }
            if pid == oldPID, let last = status.json["last"] as? [String: Any], last["serial"] as? Int == serial,
               last["outcome"] as? String == "failed" {
                printError("switchyard upgrade: failed: \(last["reason"] as? String ?? "unknown reason"); pid \(oldPID) still serves")
                return 1
            }
        }
        printError("switchyard upgrade: no outcome within \(Int(timeout)) s (see the proxy's log)")
        return 1
    }

    /// One API call: the status and the JSON object of the body (empty when not JSON).
    static func exchange(_ address: SocketAddress, method: String, token: String?, body: [UInt8]) throws -> (status: Int, json: [String: Any]) {
        var head = "\(method) /upgrade HTTP/1.1\r\nHost: \(address)\r\nConnection: close\r\nContent-Length: \(body.count)\r\n"
        if !body.isEmpty { head += "Content-Type: application/json\r\n" }
        if let token { head += "Authorization: Bearer \(token)\r\n" }
        head += "\r\n"
        let connection = try BlockingConnection(connectingTo: address, timeoutMillis: 5000)
        try connection.send(Array(head.utf8) + body, timeoutMillis: 5000)
        var response: [UInt8] = []
        while true {
            let chunk = try connection.receive(max: 16384, timeoutMillis: 5000)
            if chunk.isEmpty { break }
            response += chunk
        }
        guard let split = findHeadEnd(response) else { throw UsageError(description: "incomplete answer") }
        let statusLine = String(decoding: response[..<(response.firstIndex(of: 13) ?? split)], as: UTF8.self)
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { throw UsageError(description: "not an HTTP answer") }
        let json = (try? JSONText.parse(Array(response[(split + 4)...]))) as? [String: Any] ?? [:]
        return (status, json)
    }

    private static func findHeadEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 { return i }
        return nil
    }
}
