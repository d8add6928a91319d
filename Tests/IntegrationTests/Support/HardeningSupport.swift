import Foundation
#if canImport(Glibc)
import Glibc
#endif

// Helpers for the hostile-input, fault-injection and soak suites: metrics, resource baselines,
// a strict response reader that tells a complete response from a cut-short one, and socket tricks.

extension ProxyProcess {
    /// A proxy config (`proxy` object) on free ports with the given timeouts and limits.
    static func proxySection(timeouts: [String: Any] = [:], limits: [String: Any] = [:]) -> [String: Any] {
        var proxy: [String: Any] = ["hostname": "127.0.0.1", "port": 0]
        if !timeouts.isEmpty { proxy["timeouts"] = timeouts }
        if !limits.isEmpty { proxy["limits"] = limits }
        return proxy
    }

    /// Starts a proxy with one cluster (version 1.0, uuid v1) over `ports`.
    static func start(ports: [Int], timeouts: [String: Any] = [:], limits: [String: Any] = [:], workers: Int = 1,
                      extra: [String: Any] = [:]) throws -> ProxyProcess {
        var more = extra
        // Settings under "proxy" in `extra` join the listener, timeouts and limits.
        more["proxy"] = proxySection(timeouts: timeouts, limits: limits)
            .merging(extra["proxy"] as? [String: Any] ?? [:]) { _, given in given }
        return try ProxyProcess(config: config(clusters: [cluster(ports: ports, version: "1.0", uuid: "v1")], extra: more),
                                arguments: ["--workers", String(workers), "--log-level", "INFO"])
    }

    /// The Prometheus text of GET /metrics.
    func metricsText() throws -> String {
        let (status, text) = try api("GET", "/metrics")
        guard status == 200 else { throw HarnessError("GET /metrics: \(status)") }
        return text
    }

    /// The value of one series, named exactly as exposed (`name` or `name{labels}`); nil when absent.
    func metric(_ series: String) throws -> Double? {
        Self.value(of: series, in: try metricsText())
    }

    static func value(of series: String, in text: String) -> Double? {
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard line.hasPrefix(series) else { continue }
            let rest = line.dropFirst(series.count)
            guard rest.first == " " else { continue }
            return Double(rest.trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    /// The resource figures a test compares with its baseline.
    struct Resources: CustomStringConvertible {
        var descriptors: Int
        var sessions: Double
        var pipes: Double
        var description: String { "fds=\(descriptors) sessions=\(sessions) pipes=\(pipes)" }
    }

    func resources() throws -> Resources {
        let text = try metricsText()
        return Resources(descriptors: descriptorCount(),
                         sessions: Self.value(of: "switchyard_active_sessions", in: text) ?? -1,
                         pipes: Self.value(of: "switchyard_pipes_in_use", in: text) ?? -1)
    }

    /// Waits until no session is open, no pipe is held, and the descriptor count is back to
    /// `descriptors` or below. Throws with the last figures when that does not happen in time.
    func waitUntilReleased(descriptors baseline: Int, timeout: Double = 10, _ what: String = "") throws {
        var last: Resources?
        do {
            try waitUntil("resources released \(what)", timeout: timeout) {
                let now = try resources()
                last = now
                return now.sessions == 0 && now.pipes == 0 && now.descriptors <= baseline
            }
        } catch {
            throw HarnessError("resources not released \(what): \(last.map(\.description) ?? "?") (fd baseline \(baseline))\n\(fdListing())")
        }
    }

    /// Waits for an idle proxy (no session, no pipe) and returns its descriptor count then.
    func idleBaseline() throws -> Int {
        try waitUntil("the proxy to be idle") {
            let now = try resources()
            return now.sessions == 0 && now.pipes == 0
        }
        return descriptorCount()
    }

    /// What the proxy's descriptors point to (for failure messages).
    func fdListing() -> String {
        let dir = "/proc/\(pid)/fd"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        var kinds: [String: Int] = [:]
        for name in names {
            let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(dir)/\(name)")) ?? "?"
            let kind = target.hasPrefix("socket:") ? "socket" : target.hasPrefix("pipe:") ? "pipe" : target.hasPrefix("anon_inode:") ? target : "file"
            kinds[kind, default: 0] += 1
        }
        return "proxy fds: " + kinds.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    }

    /// Lines of the log that contain `text`.
    func logCount(_ text: String) -> Int {
        log.split(separator: "\n").filter { $0.contains(text) }.count
    }
}

/// How one response arrived, judged strictly (a body cut short is never "complete").
enum ResponseOutcome: CustomStringConvertible {
    /// A response framed correctly and received whole.
    case complete(TestResponse)
    /// The head arrived, then the connection closed before the body was complete.
    case truncated(status: Int, bodyBytes: Int)
    /// The connection closed (or was reset) before a full head arrived.
    case closedBeforeResponse(partial: String)
    /// Bytes arrived that are not valid HTTP framing (e.g. junk forwarded verbatim).
    case malformed(String)
    /// Nothing conclusive within the socket's timeout.
    case timedOut(String)

    var description: String {
        switch self {
        case .complete(let r): return "complete \(r.status) (\(r.body.count) body bytes, body \(r.bodyText.prefix(60).debugDescription))"
        case .truncated(let s, let n): return "truncated \(s) after \(n) body bytes"
        case .closedBeforeResponse(let p): return "closed before a response (got \(p.prefix(80).debugDescription))"
        case .malformed(let m): return "malformed: \(m)"
        case .timedOut(let m): return "timed out: \(m)"
        }
    }

    var status: Int? {
        switch self {
        case .complete(let r): return r.status
        case .truncated(let s, _): return s
        default: return nil
        }
    }

    var response: TestResponse? {
        if case .complete(let r) = self { return r }
        return nil
    }
}

private struct EndOfStream: Error {}

/// Reads one response (skipping 1xx) from `socket` and says how it arrived.
func readOutcome(_ socket: BlockingSocket, method: String = "GET") -> ResponseOutcome {
    var seen: [UInt8] = []
    func line() throws -> [UInt8] {
        var out: [UInt8] = []
        while true {
            let b = try socket.receive(exactly: 1)
            if b.isEmpty { throw EndOfStream() }
            seen += b
            if b[0] == 10 {
                guard out.last == 13 else { throw HarnessError("bare LF in \(String(decoding: out, as: UTF8.self).debugDescription)") }
                out.removeLast()
                return out
            }
            out += b
            if out.count > 65536 { throw HarnessError("line too long") }
        }
    }
    var status = 0
    var bodyBytes = 0
    var headReceived = false
    do {
        var response: TestResponse
        while true {
            let statusLine = String(decoding: try line(), as: UTF8.self)
            let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count >= 2, parts[0] == "HTTP/1.1" || parts[0] == "HTTP/1.0", parts[1].count == 3, let code = Int(parts[1]) else {
                return .malformed("status line \(statusLine.debugDescription)")
            }
            var headers: [(String, String)] = []
            while true {
                let l = String(decoding: try line(), as: UTF8.self)
                if l.isEmpty { break }
                guard let colon = l.firstIndex(of: ":") else { return .malformed("header line \(l.debugDescription)") }
                headers.append((String(l[..<colon]), l[l.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            }
            status = code
            response = TestResponse(status: code, headers: headers, body: [])
            if code >= 100 && code < 200 && code != 101 { continue }
            break
        }
        headReceived = true
        if method == "HEAD" || status == 204 || status == 304 || (status >= 100 && status < 200) { return .complete(response) }
        let te = response.header("Transfer-Encoding")?.lowercased()
        if te != nil {
            guard te == "chunked" else { return .malformed("response Transfer-Encoding \(te!)") }
            guard response.header("Content-Length") == nil else { return .malformed("response with Content-Length and Transfer-Encoding") }
            while true {
                let sizeLine = String(decoding: try line(), as: UTF8.self)
                let hex = sizeLine.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
                guard !hex.isEmpty, hex.count <= 15, hex.allSatisfy(\.isHexDigit), let size = Int(hex, radix: 16) else {
                    return .malformed("chunk size line \(sizeLine.debugDescription)")
                }
                if size == 0 {
                    while !(try line()).isEmpty {}
                    return .complete(response)
                }
                let data = try socket.receive(exactly: size)
                bodyBytes += data.count
                response.body += data
                if data.count < size { throw EndOfStream() }
                guard try line().isEmpty else { return .malformed("chunk data not followed by CRLF") }
            }
        } else if let cl = response.headers("Content-Length").first {
            guard response.headers("Content-Length").count == 1, !cl.isEmpty, cl.allSatisfy(\.isASCII), cl.allSatisfy(\.isNumber), let n = Int(cl) else {
                return .malformed("response Content-Length \(response.headers("Content-Length"))")
            }
            var body: [UInt8] = []
            while body.count < n {
                let chunk = try socket.receiveSome(max: min(1 << 20, n - body.count))
                if chunk.isEmpty { break }
                body += chunk
                bodyBytes = body.count
            }
            if body.count < n { return .truncated(status: status, bodyBytes: body.count) }
            response.body = body
            return .complete(response)
        } else {
            response.body = try socket.receiveAll()
            return .complete(response)
        }
    } catch is EndOfStream {
        return headReceived ? .truncated(status: status, bodyBytes: bodyBytes) : .closedBeforeResponse(partial: String(decoding: seen, as: UTF8.self))
    } catch {
        let text = String(describing: error)
        if text.contains("timed out") {
            return .timedOut(headReceived ? "status \(status), \(bodyBytes) body bytes" : "after \(String(decoding: seen, as: UTF8.self).prefix(80).debugDescription)")
        }
        if text.contains("errno") && !headReceived { return .closedBeforeResponse(partial: String(decoding: seen, as: UTF8.self) + " (\(text))") }
        if text.contains("errno") { return .truncated(status: status, bodyBytes: bodyBytes) }
        return .malformed(text)
    }
}

extension BlockingSocket {
    /// Makes the next close send a TCP reset instead of a FIN (SO_LINGER with a zero timeout).
    func resetOnClose() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
    }

    /// Sends what it can; false once the peer is gone (EPIPE/ECONNRESET) instead of throwing.
    func trySend(_ bytes: [UInt8]) -> Bool {
        (try? send(bytes)) != nil
    }

    /// Shrinks the receive buffer (set before the peer sends much, so the window stays small).
    func setReceiveBuffer(_ bytes: Int) {
        var size = Int32(bytes)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }
}

/// `count` bytes of a repeating pattern (cheap to build, easy to check).
func patternBytes(_ count: Int, seed: UInt8 = 0) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
}
