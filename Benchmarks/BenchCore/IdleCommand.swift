import Foundation
import HTTP1
import Syscalls
#if canImport(Glibc)
import Glibc
#endif

/// `switchyard-bench idle -n N URL [--pid PID]`: what idle keep-alive connections cost a server.
///
/// Opens N keep-alive connections, sends one request on each and reads its response, then leaves
/// them all open and idle. Reports how many stayed open, the target process's resident memory
/// growth per connection (`VmRSS` and `RssAnon` from /proc/PID/status, before the first connect
/// and after the connections settled), and what the N+1st request costs: on a new connection
/// (connect included), then 100 more on that connection, and one on the oldest idle connection.
enum IdleCommand {
    struct Options: Equatable {
        var count = 10_000
        var url: TargetURL
        var pid: Int32?
        /// Connections set up at the same time.
        var batch = 256
        /// Wait after the last connection before memory is read, seconds.
        var settleSeconds: UInt64 = 2
        var jsonPath: String?
    }

    static let usage = """
    Usage: switchyard-bench idle -n N URL [--pid PID] [--batch N] [--settle T] [--json FILE]
      Opens N keep-alive connections to URL, one request each, keeps them open and idle, then
      reports how many stayed open, the resident memory growth of process PID per connection
      (VmRSS and RssAnon, /proc/PID/status) and the latency of the N+1st request (on a new
      connection, connect included; 100 more on it; one on the oldest idle connection).
        -n, --connections <N>  idle connections (default 10000; the soft descriptor limit is
                               raised to the hard one, which must leave room for N)
            --pid <PID>        the server process to measure (e.g. switchyard's)
            --batch <N>        connections set up at a time (default 256)
            --settle <T>       wait before measuring memory (default 2s)
            --json <FILE>      also write the figures as JSON
    """

    static func parse(_ arguments: [String]) throws(BenchUsageError) -> Options? {
        let (flags, positionals) = try ArgumentReader.read(arguments) { name in
            switch name {
            case "-n", "--connections", "-c", "--pid", "--batch", "--settle", "--json": return true
            case "-h", "--help": return false
            default: return nil
            }
        }
        if flags.contains(where: { $0.name == "-h" || $0.name == "--help" }) { return nil }
        guard positionals.count == 1 else { throw BenchUsageError(positionals.isEmpty ? "missing URL" : "expected one URL") }
        var o = Options(url: try TargetURL.plain(positionals[0], option: "idle"))
        for (name, value) in flags {
            let v = value ?? ""
            switch name {
            case "-n", "--connections", "-c":
                guard let n = WrkUnits.scanMetric(v), n >= 1, n <= 1_000_000 else { throw BenchUsageError("invalid connection count \"\(v)\"") }
                o.count = Int(n)
            case "--pid":
                guard let p = Int32(v), p > 0 else { throw BenchUsageError("invalid pid \"\(v)\"") }
                o.pid = p
            case "--batch":
                guard let n = Int(v), (1...10_000).contains(n) else { throw BenchUsageError("--batch must be 1...10000, got \"\(v)\"") }
                o.batch = n
            case "--settle":
                guard let s = WrkUnits.scanSeconds(v), s <= 600 else { throw BenchUsageError("invalid settle time \"\(v)\"") }
                o.settleSeconds = s
            default:
                o.jsonPath = v
            }
        }
        return o
    }

    static func main(_ arguments: [String]) -> Int32 {
        runSubcommand("idle", usage: usage, failure: 1, arguments, parse: parse, run: run)
    }

    /// Resident memory of a process from /proc/PID/status, in KiB: (VmRSS, RssAnon).
    static func memory(pid: Int32) -> (rss: Int, anon: Int)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        return parseStatus(text)
    }

    static func parseStatus(_ text: String) -> (rss: Int, anon: Int)? {
        var rss: Int?, anon = 0
        for line in text.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2 else { continue }
            if fields[0] == "VmRSS:" { rss = Int(fields[1]) }
            if fields[0] == "RssAnon:" { anon = Int(fields[1]) ?? 0 }
        }
        return rss.map { ($0, anon) }
    }

    static func run(_ o: Options) throws(BenchUsageError) -> Int32 {
        Process.ignoreSIGPIPE()
        let limit = Process.raiseFileLimit()
        guard limit < 0 || limit >= o.count + 64 else {
            throw BenchUsageError("the descriptor limit is \(limit); \(o.count) connections need \(o.count + 64) (raise the hard limit: ulimit -Hn)")
        }
        guard let address = SocketAddress(host: o.url.connectHost, port: o.url.port) else { throw BenchUsageError("cannot resolve \(o.url.host)") }
        let request = Array("GET \(o.url.pathAndQuery) HTTP/1.1\r\nHost: \(o.url.hostField)\r\n\r\n".utf8)
        let before = o.pid.flatMap(memory(pid:))
        if let pid = o.pid, before == nil { throw BenchUsageError("cannot read /proc/\(pid)/status") }

        printOut("idle: \(o.count) keep-alive connections to \(o.url.text), one request each, then idle\n")
        var open: [Int32] = []
        open.reserveCapacity(o.count)
        var failed = 0
        let start = Clock.nanoseconds()
        while open.count + failed < o.count {
            let n = min(o.batch, o.count - open.count - failed)
            let (ok, bad) = exchangeBatch(n, address: address, request: request)
            open += ok
            failed += bad
        }
        let setupSeconds = Double(Clock.nanoseconds() - start) / 1e9
        defer { for fd in open { Socket.close(fd) } }
        sleep(UInt32(o.settleSeconds))
        let after = o.pid.flatMap(memory(pid:))
        let stillOpen = countStillOpen(open)

        // The N+1st request: a new connection (connect included), then more on it.
        var fresh: (first: Double, p50: Double, p99: Double)?
        if let (fd, micros) = timedExchangeOnNewConnection(address: address, request: request) {
            var samples: [Double] = []
            for _ in 0..<100 {
                guard let t = timedExchange(fd: fd, request: request) else { break }
                samples.append(t)
            }
            Socket.close(fd)
            samples.sort()
            if !samples.isEmpty {
                fresh = (micros, samples[samples.count / 2], samples[min(samples.count - 1, samples.count * 99 / 100)])
            }
        }
        let oldest = open.first.flatMap { timedExchange(fd: $0, request: request) }

        printOut(String(format: "opened: %d in %.2f s (%d failed); still open after %llu s: %d\n",
                        open.count, setupSeconds, failed, o.settleSeconds, stillOpen))
        var perConnection: (rss: Double, anon: Double)?
        if let pid = o.pid, let before, let after {
            let n = Double(max(1, open.count))
            perConnection = (Double(after.rss - before.rss) / n, Double(after.anon - before.anon) / n)
            printOut(String(format: "process %d VmRSS: %.1f MiB before, %.1f MiB after: %+.1f MiB, %.2f KiB per connection\n",
                            pid, Double(before.rss) / 1024, Double(after.rss) / 1024, Double(after.rss - before.rss) / 1024, perConnection!.rss))
            printOut(String(format: "process %d RssAnon: %.1f MiB before, %.1f MiB after: %+.1f MiB, %.2f KiB per connection\n",
                            pid, Double(before.anon) / 1024, Double(after.anon) / 1024, Double(after.anon - before.anon) / 1024, perConnection!.anon))
        }
        if let fresh {
            printOut(String(format: "request %d on a new connection (connect included): %@; 100 more on it: p50 %@, p99 %@\n",
                            o.count + 1, WrkUnits.timeMicros(fresh.first), WrkUnits.timeMicros(fresh.p50), WrkUnits.timeMicros(fresh.p99)))
        } else {
            printOut("request \(o.count + 1) on a new connection: FAILED\n")
        }
        printOut("a request on the oldest idle connection: " + (oldest.map { WrkUnits.timeMicros($0) } ?? "FAILED (closed by the server?)") + "\n")

        if let path = o.jsonPath {
            func opt(_ x: Double?) -> JSONOut { x.map { .number($0) } ?? .null }
            let json = JSONOut.object([
                ("url", .string(o.url.text)), ("connections", .integer(Int64(o.count))), ("opened", .integer(Int64(open.count))),
                ("failed", .integer(Int64(failed))), ("stillOpen", .integer(Int64(stillOpen))), ("setupSeconds", .number(setupSeconds)),
                ("pid", o.pid.map { .integer(Int64($0)) } ?? .null),
                ("vmRSSKiB", .object([("before", opt(before.map { Double($0.rss) })), ("after", opt(after.map { Double($0.rss) })),
                                      ("perConnection", opt(perConnection?.rss))])),
                ("rssAnonKiB", .object([("before", opt(before.map { Double($0.anon) })), ("after", opt(after.map { Double($0.anon) })),
                                        ("perConnection", opt(perConnection?.anon))])),
                ("nextRequestUs", .object([("newConnection", opt(fresh?.first)), ("p50", opt(fresh?.p50)), ("p99", opt(fresh?.p99)),
                                           ("oldestIdleConnection", opt(oldest))])),
            ])
            do { try writeText(json.text(), to: path) } catch { throw BenchUsageError("cannot write \(path): \(error)") }
        }
        return failed == 0 && stillOpen == open.count ? 0 : 1
    }

    /// One connection of a batch being set up.
    struct Pending {
        var fd: Int32
        var connecting: Bool
        var written = 0
        var received: [UInt8] = []
        var bodyLeft: Int?
        var done = false
    }

    /// Connects `n` sockets, sends the request on each and reads each response; returns the
    /// connections that completed and how many failed (closed).
    static func exchangeBatch(_ n: Int, address: SocketAddress, request: [UInt8]) -> (open: [Int32], failed: Int) {
        var batch: [Pending] = []
        var failed = 0
        for _ in 0..<n {
            guard let (fd, connected) = try? Socket.connect(address) else { failed += 1; continue }
            batch.append(Pending(fd: fd, connecting: !connected))
        }
        let deadline = Clock.nanoseconds() + 10_000_000_000
        var scratch = [UInt8](repeating: 0, count: 65536)
        while batch.contains(where: { !$0.done }) && Clock.nanoseconds() < deadline {
            var fds = batch.map { p -> pollfd in
                let events = p.done ? 0 : (p.connecting || p.written < request.count ? Int16(POLLOUT) : Int16(POLLIN))
                return pollfd(fd: p.done ? -1 : p.fd, events: events, revents: 0)
            }
            guard poll(&fds, nfds_t(fds.count), 100) >= 0 || errno == EINTR else { break }
            for i in batch.indices where !batch[i].done && fds[i].revents != 0 {
                if !advance(&batch[i], request: request, scratch: &scratch) {
                    Socket.close(batch[i].fd)
                    batch[i].fd = -1
                    batch[i].done = true
                }
            }
        }
        var open: [Int32] = []
        for p in batch {
            if p.fd >= 0 && p.done { open.append(p.fd) } else {
                if p.fd >= 0 { Socket.close(p.fd) }
                failed += 1
            }
        }
        return (open, failed)
    }

    /// One step of a connection's exchange; false when it failed.
    static func advance(_ p: inout Pending, request: [UInt8], scratch: inout [UInt8]) -> Bool {
        if p.connecting {
            guard Socket.pendingError(p.fd) == 0 else { return false }
            p.connecting = false
        }
        while p.written < request.count {
            guard let r = try? Socket.write(p.fd, bytes: request[p.written...]) else { return false }
            guard case .done(let n) = r else { return true }
            p.written += n
        }
        while true {
            let r = scratch.withUnsafeMutableBytes { try? Socket.read(p.fd, into: $0) }
            guard let r else { return false }
            switch r {
            case .wouldBlock: return true
            case .done(0): return false
            case .done(let n):
                if var left = p.bodyLeft {
                    left -= n
                    p.bodyLeft = left
                } else {
                    p.received += scratch[0..<n]
                    var parser = HeadParser()
                    var head = ResponseHead()
                    let status = p.received.withUnsafeBytes { parser.parseResponse($0, requestMethod: .get, into: &head) }
                    switch status {
                    case .incomplete: continue
                    case .error: return false
                    case .complete(let length):
                        // Only a framed keep-alive response leaves a connection to keep idle.
                        guard head.keepAlive else { return false }
                        switch head.framing {
                        case .contentLength(let size): p.bodyLeft = Int(size) - (p.received.count - length)
                        case .none: p.bodyLeft = p.received.count - length == 0 ? 0 : -1
                        default: return false
                        }
                        p.received = []
                    }
                }
                if p.bodyLeft! <= 0 {
                    p.done = p.bodyLeft! == 0
                    return p.done
                }
            }
        }
    }

    /// How many of `fds` have nothing to read and no hang-up (the server kept them open).
    static func countStillOpen(_ fds: [Int32]) -> Int {
        var polls = fds.map { pollfd(fd: $0, events: Int16(POLLIN) | 0x2000 /* POLLRDHUP, which Glibc does not export */, revents: 0) }
        guard poll(&polls, nfds_t(polls.count), 0) >= 0 else { return 0 }
        return polls.filter { $0.revents == 0 }.count
    }

    /// One exchange on a new connection, connect included: (fd, µs).
    static func timedExchangeOnNewConnection(address: SocketAddress, request: [UInt8]) -> (Int32, Double)? {
        let start = Clock.nanoseconds()
        guard let (fd, connected) = try? Socket.connect(address) else { return nil }
        var p = Pending(fd: fd, connecting: !connected)
        guard runToCompletion(&p, request: request) else { Socket.close(fd); return nil }
        return (fd, Double(Clock.nanoseconds() - start) / 1000)
    }

    /// One exchange on an open connection, µs.
    static func timedExchange(fd: Int32, request: [UInt8]) -> Double? {
        let start = Clock.nanoseconds()
        var p = Pending(fd: fd, connecting: false)
        guard runToCompletion(&p, request: request) else { return nil }
        return Double(Clock.nanoseconds() - start) / 1000
    }

    static func runToCompletion(_ p: inout Pending, request: [UInt8]) -> Bool {
        var scratch = [UInt8](repeating: 0, count: 65536)
        let deadline = Clock.nanoseconds() + 5_000_000_000
        while !p.done && Clock.nanoseconds() < deadline {
            var fd = pollfd(fd: p.fd, events: p.connecting || p.written < request.count ? Int16(POLLOUT) : Int16(POLLIN), revents: 0)
            guard poll(&fd, 1, 100) >= 0 else { return false }
            if fd.revents != 0 && !advance(&p, request: request, scratch: &scratch) { return false }
        }
        return p.done
    }
}
