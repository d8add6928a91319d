import Foundation
import Observability
@testable import Proxy
import Testing

/// The access log's hand-over: a writer that falls behind costs lines, counted, never a wait.
@Suite("Access log sink")
struct AccessLogSinkTests {
    @Test("batches beyond the pending limit are dropped and their lines counted; the rest are written")
    func dropsWhenBehind() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sink-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let metrics = ProxyMetrics(reactors: 1)
        let sink = try AccessLogSink(path: path, format: .logfmt, sample: 1, metrics: metrics, maxPendingBytes: 1000)
        // The writer thread is not started yet: everything submitted waits.
        var record: [UInt8] = []
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        Array("127.0.0.1".utf8).withUnsafeBytes { client in
            AccessRecord.append(startNanos: 0, status: 200, bytesIn: 1, bytesOut: 2, durationMicros: 3, served: 0, client: client,
                                requestLine: empty, requestID: empty, backend: empty, cluster: .none, to: &record)
        }
        for _ in 0..<20 {
            var batch = record + record   // two lines a batch
            sink.submit(&batch, lines: 2)
            #expect(batch.isEmpty, "the batch's bytes were handed over or dropped")
        }
        let taken = 1000 / (2 * record.count)   // whole batches that fit under the limit
        #expect(metrics.accessLogDropped.load(ordering: .relaxed) == 2 * (20 - taken))
        sink.start()
        sink.stop()   // writes what was pending, then ends the writer
        #expect(metrics.accessLogLines.load(ordering: .relaxed) == 2 * taken)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2 * taken && lines.allSatisfy { $0.contains("status=200") })
    }
}
