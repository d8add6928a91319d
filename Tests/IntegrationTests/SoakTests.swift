import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A bounded soak: steady keep-alive traffic (GETs and PUTs with bodies) through the proxy while
/// the cluster set changes through the API in a loop. No error, flat memory, no descriptor growth.
/// Duration: `SWITCHYARD_SOAK_SECONDS` (default 60).
@Suite("Soak", .serialized)
struct SoakTests {
    static var duration: Double {
        Double(ProcessInfo.processInfo.environment["SWITCHYARD_SOAK_SECONDS"] ?? "") ?? 60
    }

    /// Counters shared by the load threads.
    final class Tally: Sendable {
        let requests = Atomic<Int>(0)
        let errors = Atomic<Int>(0)
        let apiChanges = Atomic<Int>(0)
        let firstErrors = Locked<[String]>([])
        let stop = Atomic<Bool>(false)
        let running = Atomic<Int>(0)
        func fail(_ message: String) {
            errors.add(1, ordering: .relaxed)
            firstErrors.withLock { if $0.count < 10 { $0.append(message) } }
        }
    }

    /// Response body sizes, and their bodies (built once: the debug build is slow at it).
    static let sizes = [10, 1000, 16 << 10, 200 << 10]
    static let bodies: [Int: [UInt8]] = Dictionary(uniqueKeysWithValues: sizes.map { ($0, patternBytes($0)) })

    /// An echoing backend: GET → a body of the size asked for in the path; PUT → the body's length.
    static func backend(_ name: String) throws -> TestBackend {
        try TestBackend { request, socket in
            if request.method == "PUT" {
                try TestBackend.respond(socket, headers: ["X-Backend: \(name)"], body: "\(name) \(request.body.count)")
            } else {
                let size = Int(request.target.split(separator: "/").last ?? "") ?? 10
                try TestBackend.respond(socket, headers: ["X-Backend: \(name)"], body: bodies[size] ?? patternBytes(size))
            }
            return true
        }
    }

    /// One client thread: keep-alive GETs with a PUT every few requests; reconnects when the
    /// proxy closes the connection (never counted as an error unless a request fails).
    static func clientLoop(port: Int, id: Int, tally: Tally) {
        var connection: ClientConnection?
        var n = 0
        let putBody = patternBytes(64 << 10, seed: UInt8(id))
        while !tally.stop.load(ordering: .relaxed) {
            n += 1
            do {
                if connection == nil { connection = try ClientConnection(port: port, timeout: 10) }
                let c = connection!
                if n % 5 == 0 {
                    try c.send(Array("PUT /put/\(n) HTTP/1.1\r\nHost: soak\r\nContent-Length: \(putBody.count)\r\n\r\n".utf8) + putBody)
                    let r = try c.readResponse()
                    let text = r.bodyText
                    if r.status != 200 || !text.hasSuffix(" \(putBody.count)") { tally.fail("PUT \(n): \(r.status) \(text.prefix(60))") }
                } else {
                    let size = sizes[n % sizes.count]
                    let r = try c.get("/get/\(size)")
                    if r.status != 200 || r.body != bodies[size] { tally.fail("GET \(size): \(r.status) \(r.body.count) bytes") }
                }
                tally.requests.add(1, ordering: .relaxed)
                if n % 97 == 0 { c.close(); connection = nil }   // some connection churn
            } catch {
                tally.fail("client \(id) request \(n): \(error)")
                connection?.close()
                connection = nil
            }
        }
        connection?.close()
    }

    @Test("steady load with cluster changes through the API: no error, flat RSS, no fd growth")
    func soak() throws {
        let v1 = try Self.backend("v1")
        let v2 = try Self.backend("v2")
        let proxy = try ProxyProcess(config: ProxyProcess.config(clusters: [ProxyProcess.cluster(ports: [v1.port], version: "1.0", uuid: "v1")],
                                                                 extra: ["proxy": ProxyProcess.proxySection()]),
                                     arguments: ["--workers", "2", "--log-level", "NOTICE"])
        defer { proxy.stop(); v1.stop(); v2.stop() }
        let tally = Tally()
        let duration = Self.duration
        let clients = 4

        // Load threads.
        for id in 0..<clients {
            tally.running.add(1, ordering: .relaxed)
            Thread.detachNewThread {
                Self.clientLoop(port: proxy.port, id: id, tally: tally)
                tally.running.subtract(1, ordering: .relaxed)
            }
        }
        // Cluster changes: PUT a new version, DELETE it, in a loop.
        tally.running.add(1, ordering: .relaxed)
        Thread.detachNewThread {
            var round = 0
            while !tally.stop.load(ordering: .relaxed) {
                round += 1
                do {
                    let uuid = try proxy.putCluster(ProxyProcess.cluster(ports: [v2.port], version: "2.\(round)"))
                    let (listed, _) = try proxy.api("GET", "/configuration/cluster/\(uuid)")
                    if listed != 200 { tally.fail("GET cluster \(uuid): \(listed)") }
                    let (deleted, text) = try proxy.api("DELETE", "/configuration/cluster/\(uuid)")
                    if deleted != 202 { tally.fail("DELETE \(uuid): \(deleted) \(text)") }
                    tally.apiChanges.add(1, ordering: .relaxed)
                } catch {
                    tally.fail("API round \(round): \(error)")
                }
                usleep(100_000)   // pacing: ~5 changes a second
            }
            tally.running.subtract(1, ordering: .relaxed)
        }

        // Warm-up, then the start figures.
        let warmUp = min(10, duration / 6)
        let started = Date()
        while Date().timeIntervalSince(started) < warmUp { usleep(200_000) }
        let rssStart = proxy.residentBytes()
        let fdStart = proxy.descriptorCount()
        let requestsStart = tally.requests.load(ordering: .relaxed)
        var rssMax = rssStart
        var fdMax = fdStart
        while Date().timeIntervalSince(started) < duration {
            usleep(500_000)
            rssMax = max(rssMax, proxy.residentBytes())
            fdMax = max(fdMax, proxy.descriptorCount())
            if tally.errors.load(ordering: .relaxed) > 50 { break }
        }
        let rssEnd = proxy.residentBytes()
        let fdEnd = proxy.descriptorCount()
        tally.stop.store(true, ordering: .relaxed)
        try waitUntil("the load threads to finish", timeout: 30) { tally.running.load(ordering: .relaxed) == 0 }
        let elapsed = Date().timeIntervalSince(started)

        // Idle again: every session, pipe and descriptor released.
        let metrics = try proxy.metricsText()
        var idle = try proxy.resources()
        try? waitUntil("the proxy to be idle", timeout: 10) {
            idle = try proxy.resources()
            return idle.sessions == 0 && idle.pipes == 0
        }
        let requests = tally.requests.load(ordering: .relaxed)
        let errors = tally.errors.load(ordering: .relaxed)
        print("""
            soak: duration=\(String(format: "%.1f", elapsed))s (warm-up \(String(format: "%.1f", warmUp))s) clients=\(clients) \
            requests=\(requests) (\(requests - requestsStart) after warm-up, \(String(format: "%.0f", Double(requests) / elapsed))/s) \
            errors=\(errors) api_changes=\(tally.apiChanges.load(ordering: .relaxed))
            soak: rss start=\(rssStart >> 10) KiB end=\(rssEnd >> 10) KiB max=\(rssMax >> 10) KiB growth=\((rssEnd - rssStart) >> 10) KiB
            soak: fds start=\(fdStart) end=\(fdEnd) max=\(fdMax) idle=\(idle.descriptors) sessions=\(idle.sessions) pipes=\(idle.pipes)
            soak: rejected=\(metrics.split(separator: "\n").filter { $0.hasPrefix("switchyard_rejected_requests_total") && !$0.hasSuffix(" 0") }.joined(separator: ", "))
            """)
        #expect(errors == 0, "first errors: \(tally.firstErrors.withLock { $0 })")
        #expect(requests - requestsStart > 0)
        #expect(tally.apiChanges.load(ordering: .relaxed) > 0)
        #expect(rssEnd - rssStart < 20 << 20, "RSS grew by \((rssEnd - rssStart) >> 10) KiB")
        #expect(rssMax - rssStart < 32 << 20, "RSS peaked \((rssMax - rssStart) >> 10) KiB above the start")
        // Under load the fd count moves with connections in flight and with what the pools
        // keep (idle backend connections, spare pipes, both bounded); a leak would make it
        // grow over the run, so idle it must not exceed what was seen under load, and the
        // count at the end of the load must be close to the one after warm-up.
        #expect(idle.sessions == 0 && idle.pipes == 0, "not idle after the soak: \(idle)")
        #expect(idle.descriptors <= fdMax, "fds: max \(fdMax) under load, \(idle.descriptors) when idle\n\(proxy.fdListing())")
        #expect(fdEnd - fdStart <= 8, "fds grew from \(fdStart) to \(fdEnd) under the same load\n\(proxy.fdListing())")
        #expect(!proxy.log.contains("level=ERROR"), "errors logged:\n\(proxy.log.split(separator: "\n").filter { $0.contains("level=ERROR") }.prefix(10).joined(separator: "\n"))")
    }
}
