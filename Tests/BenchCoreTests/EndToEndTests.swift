import Foundation
import Syscalls
import Testing
@testable import BenchCore

/// Polls until `condition` holds or a second passes (the backend counts a response right after
/// its write returns, which may be a moment after the client has read it).
func eventually(_ condition: () -> Bool) -> Bool {
    for _ in 0..<100 {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

@Suite(.serialized) struct EndToEnd {
    @Test func requestCountEqualsWhatTheBackendServed() throws {
        let backend = try BenchBackend()
        defer { backend.stop() }
        let options = try #require({ () throws -> LoadOptions? in
            guard case .run(let o) = try LoadOptions.parse(["-t1", "-c2", "-d1s", "http://127.0.0.1:\(backend.port)/"]) else { return nil }
            return o
        }())
        let result = try LoadGenerator.run(try LoadPlan(options))
        #expect(result.requests > 100)
        #expect(result.errors.total == 0)
        #expect(result.non2xx == 0)
        #expect(eventually { backend.served == Int(result.requests) }, "generator \(result.requests), backend \(backend.served)")
        #expect(result.latency.count == result.requests || result.latency.count >= result.requests)  // wrk correction only adds
        #expect(result.runtimeSeconds >= 1 && result.runtimeSeconds < 2)
        // Every response is the same 70 bytes (head + "hello\n").
        #expect(result.bytes == result.requests * 70)
    }

    @Test func bigBodiesAreSkippedByLength() throws {
        let backend = try BenchBackend()
        defer { backend.stop() }
        let plan = LoadPlan(address: SocketAddress(host: "127.0.0.1", port: backend.port)!, url: "",
                            request: Array("GET /big HTTP/1.1\r\nHost: x\r\n\r\n".utf8), threads: 2, connections: 2,
                            durationNanos: 1_000_000_000, timeoutNanos: 2_000_000_000)
        let result = try LoadGenerator.run(plan)
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n".utf8.count
        #expect(result.requests > 10)
        #expect(result.errors.total == 0)
        #expect(result.bytes == result.requests * UInt64(head + BenchBackend.bigBodySize))
        #expect(eventually { backend.served == Int(result.requests) })
    }

    @Test func constantThroughputKeepsTheRate() throws {
        let backend = try BenchBackend()
        defer { backend.stop() }
        let plan = LoadPlan(address: SocketAddress(host: "127.0.0.1", port: backend.port)!, url: "",
                            request: Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8), threads: 1, connections: 4,
                            durationNanos: 1_000_000_000, timeoutNanos: 2_000_000_000, rate: 400)
        let result = try LoadGenerator.run(plan)
        #expect(result.correction == .intendedSendTime)
        #expect(result.requests >= 360 && result.requests <= 404, "\(result.requests) requests at -R 400 for 1 s")
        #expect(eventually { backend.served == Int(result.requests) })
    }

    @Test func closeModeOpensAConnectionPerRequest() throws {
        let backend = try BenchBackend()
        defer { backend.stop() }
        let plan = LoadPlan(address: SocketAddress(host: "127.0.0.1", port: backend.port)!, url: "",
                            request: Array("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8), threads: 1, connections: 2,
                            durationNanos: 1_000_000_000, timeoutNanos: 2_000_000_000, closeAfterEachResponse: true)
        let result = try LoadGenerator.run(plan)
        #expect(result.requests > 50)
        #expect(result.errors.total == 0)
        #expect(eventually { backend.served == Int(result.requests) })
        // Each request on its own connection (the last reconnect of each connection may not send).
        #expect(backend.accepted >= Int(result.requests) && backend.accepted <= Int(result.requests) + 2)
    }

    @Test func idleConnectionsStayOpenAndTheNextRequestIsTimed() throws {
        let backend = try BenchBackend()
        defer { backend.stop() }
        let options = try #require(try IdleCommand.parse(["-n", "300", "--settle", "0", "--batch", "64", "--pid", String(getpid()),
                                                          "http://127.0.0.1:\(backend.port)/"]))
        #expect(try IdleCommand.run(options) == 0)
        #expect(backend.accepted >= 301)
        #expect(eventually { backend.served >= 300 + 101 + 1 })
    }

    @Test func aSlowerBackendIsSlower() throws {
        let fast = try BenchBackend(workMicros: 0)
        let slow = try BenchBackend(workMicros: 2000)
        defer { fast.stop(); slow.stop() }
        func run(_ port: Int) throws -> LoadResult {
            try LoadGenerator.run(LoadPlan(address: SocketAddress(host: "127.0.0.1", port: port)!, url: "",
                                           request: Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8), threads: 1, connections: 1,
                                           durationNanos: 500_000_000, timeoutNanos: 2_000_000_000))
        }
        let f = try run(fast.port), s = try run(slow.port)
        #expect(s.latency.value(atPercentile: 50) >= 2_000_000)
        #expect(s.requests < f.requests)
    }

    @Test func non2xxAndConnectErrorsAreCounted() throws {
        let backend = try BenchBackend()
        let port = backend.port
        let plan404 = LoadPlan(address: SocketAddress(host: "127.0.0.1", port: port)!, url: "",
                               request: Array("GET /missing HTTP/1.1\r\nHost: x\r\n\r\n".utf8), threads: 1, connections: 1,
                               durationNanos: 1_000_000_000, timeoutNanos: 2_000_000_000)
        let r404 = try LoadGenerator.run(plan404)
        #expect(r404.requests > 0 && r404.non2xx == r404.requests)
        backend.stop()
        let refused = try LoadGenerator.run(plan404)
        #expect(refused.requests == 0)
        #expect(refused.errors.connect > 0)
    }
}
