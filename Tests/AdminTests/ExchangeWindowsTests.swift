import Admin
import Observability
import Proxy
import Routing
import Testing

/// Windows of exchanges read as differences of per-second samples.
@Suite("Exchange windows")
struct ExchangeWindowsTests {
    func cluster(_ uuid: String) -> ClusterRuntime {
        ClusterRuntime(spec: ClusterSpec(uuid: uuid, version: "1", servers: []), addresses: [], state: ClusterState(),
                       metrics: ClusterMetrics(reactors: 2), sequence: 0)
    }

    @Test("a window is what happened between two samples, per cluster; old samples are dropped")
    func windows() {
        let new = cluster("new"), old = cluster("old")
        let windows = ExchangeWindows(keepSeconds: 11)
        windows.sample([new, old], now: 100)
        #expect(windows.window("new", seconds: 10) == ExchangeWindow(requests: 0, errors: 0,
                                                                     latency: [Int](repeating: 0, count: LatencyHistogram.bucketCount)))
        for second in Int64(101)...120 {
            // Each second: the new version answers 10 (one a 503; two slow), the old one 5.
            for i in 0..<10 {
                new.metrics.record(reactor: i % 2, status: i == 0 ? 503 : 200, latencyNanos: i < 2 ? 50_000_000 : 1_000_000)
            }
            for _ in 0..<5 { old.metrics.record(reactor: 0, status: 200, latencyNanos: 1_000_000) }
            windows.sample([new, old], now: second)
        }
        let w = windows.window("new", seconds: 10)!
        #expect(w.requests == 100 && w.errors == 10)
        #expect(w.latencyMicros(percentile: 50)! >= 1000 && w.latencyMicros(percentile: 50)! < 1125)
        #expect(w.latencyMicros(percentile: 95)! >= 50_000, "20 slow of 100: more than the ten spared")
        #expect(windows.window("old", seconds: 10)!.requests == 50)
        #expect(windows.window("old", seconds: 60)!.requests == 50, "only 11 s are kept: the longest window is 10 s")
        #expect(windows.total("new") == 200)
        windows.sample([new], now: 121)
        #expect(windows.window("old", seconds: 10) == nil, "a cluster gone is forgotten")
    }
}
