import Locks
import Observability
import Reactor
import Synchronization
import Syscalls
#if canImport(Glibc)
import Glibc
#endif

/// The access log's destination: a file (or stderr) written by one background thread.
///
/// Reactors never write it, nor even format lines: each copies its exchanges' fields into
/// binary records (`AccessRecord`) in an `AccessLogBatch` and hands over whole batches
/// (`submit`); the writer thread makes the lines and writes each batch with one `write(2)`.
/// When more than `maxPendingBytes` wait, a batch is dropped and its lines are counted, so
/// a slow disk costs log lines, never a stalled reactor. `reopen` (SIGUSR1)
/// makes the writer open the path anew, for logrotate.
public final class AccessLogSink: @unchecked Sendable {
    /// `"stderr"` or a file path.
    public let path: String
    public let format: AccessLogFormat
    /// Fraction of exchanges logged, in (0, 1].
    public let sample: Double
    public let maxPendingBytes: Int
    /// Counts lines written (`accessLogLines`) and dropped (`accessLogDropped`).
    private let metrics: ProxyMetrics

    private struct Pending {
        var batches: [(bytes: [UInt8], lines: Int)] = []
        var bytes = 0
        var reopen = false
        var stopping = false
        /// Written batches' arrays, emptied with their capacity kept: reactors take them back
        /// instead of allocating (no 64 KiB malloc and cross-thread free per batch).
        var spare: [[UInt8]] = []
    }
    private let pending = Lock(Pending())
    private var fd: Int32
    private var thread: pthread_t?

    /// Opens the destination; throws a message naming the path when it cannot be opened.
    public init(path: String, format: AccessLogFormat, sample: Double, metrics: ProxyMetrics,
                maxPendingBytes: Int = 8 << 20) throws(AccessLogError) {
        self.path = path
        self.metrics = metrics
        self.format = format
        self.sample = sample
        self.maxPendingBytes = maxPendingBytes
        fd = -1
        fd = try Self.open(path)
    }

    static func open(_ path: String) throws(AccessLogError) -> Int32 {
        if path == "stderr" { return 2 }
        let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw AccessLogError(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
        return fd
    }

    /// Starts the writer thread.
    public func start() {
        thread = ReactorThread.start { [self] in run() }
    }

    /// Takes a batch of lines (its array is left empty, with its capacity). Drops it, and
    /// counts its lines, when the writer is too far behind.
    func submit(_ bytes: inout [UInt8], lines: Int) {
        guard lines > 0 else { return }
        let capacity = bytes.capacity
        let (taken, spare) = pending.withLock { p -> (Bool, [UInt8]?) in
            let spare = p.spare.popLast()
            guard !p.stopping, p.bytes + bytes.count <= maxPendingBytes else { return (false, spare) }
            p.bytes += bytes.count
            p.batches.append((bytes, lines))
            return (true, spare)
        }
        if taken {
            bytes = spare ?? []
            if bytes.capacity < capacity { bytes.reserveCapacity(capacity) }
        } else {
            bytes.removeAll(keepingCapacity: true)
            metrics.accessLogDropped.wrappingAdd(lines, ordering: .relaxed)
        }
    }

    /// Asks the writer to open the file again (after logrotate moved it).
    public func reopen() {
        pending.withLock { $0.reopen = true }
    }

    /// Writes what is pending and stops the writer thread.
    public func stop() {
        pending.withLock { $0.stopping = true }
        if let thread { ReactorThread.join(thread) }
        thread = nil
        if fd > 2 { Glibc.close(fd) }
    }

    private func run() {
        var writer = AccessLogLine(format: format)
        var text: [UInt8] = []
        var written: [[UInt8]] = []
        while true {
            let (taken, reopen, stopping) = pending.withLock { p in
                defer { p.batches.removeAll(keepingCapacity: true); p.bytes = 0; p.reopen = false }
                // The arrays of the batches written last time go back to the reactors.
                for array in written where p.spare.count < 16 { p.spare.append(array) }
                written.removeAll(keepingCapacity: true)
                return (p.batches, p.reopen, p.stopping)
            }
            var batches = taken
            if reopen && path != "stderr" {
                do {
                    let fresh = try Self.open(path)
                    Glibc.close(fd)
                    fd = fresh
                } catch {
                    Log.error("access_log_reopen_failed", ["error": error.description])
                }
            }
            for i in batches.indices {
                // Taken out of the list so that emptying it keeps its buffer (no copy on write).
                var bytes: [UInt8] = []
                swap(&bytes, &batches[i].bytes)
                // Reactors hand over records; the lines are made here, off the reactors.
                text.removeAll(keepingCapacity: true)
                bytes.withUnsafeBytes { records in
                    AccessRecord.forEach(in: records) { record in
                        writer.record(record, to: &text)
                        writer.end(diverged: record.diverged, to: &text)
                    }
                }
                text.withUnsafeBytes { raw in
                    var offset = 0
                    while offset < raw.count {
                        let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                        if n > 0 { offset += n; continue }
                        if n < 0 && errno == EINTR { continue }
                        break   // a full disk or a closed stderr: the lines are lost, not retried forever
                    }
                }
                metrics.accessLogLines.wrappingAdd(batches[i].lines, ordering: .relaxed)
                bytes.removeAll(keepingCapacity: true)
                written.append(bytes)
            }
            if stopping && batches.isEmpty { return }
            if batches.isEmpty { usleep(20_000) }   // a quiet log is polled at 50 Hz: no wake-up per batch
        }
    }
}

/// Why the access log could not be opened.
public struct AccessLogError: Error, CustomStringConvertible {
    public var description: String
}

/// One reactor's access log records, collected without locks and handed to the sink in
/// batches: when 64 KiB are collected, and at every deadline sweep (about every 100 ms).
final class AccessLogBatch {
    let sink: AccessLogSink
    private var bytes: [UInt8] = []
    private var lines = 0
    private var rng = FastRandom()
    /// `sample` as a threshold on 64-bit random numbers.
    private let threshold: UInt64
    /// Wall clock minus the monotonic clock, taken at each flush (about every 100 ms), so a
    /// record's time is the loop's `now` plus this, without a clock call per exchange.
    private var wallOffset: Int64 = 0

    init(sink: AccessLogSink) {
        self.sink = sink
        threshold = sink.sample >= 1 ? .max : UInt64(sink.sample * Double(UInt64.max))
        bytes.reserveCapacity(64 << 10)
        takeWallOffset()
    }

    private func takeWallOffset() {
        wallOffset = AccessLogLine.nowUnixNanos() &- Int64(bitPattern: Syscalls.Clock.nanoseconds())
    }

    /// Unix nanoseconds of the monotonic time `now` (the event loop's clock).
    func wallNanos(_ now: UInt64) -> Int64 { Int64(bitPattern: now) &+ wallOffset }

    /// Whether the next exchange is logged (the sample rate).
    func sampled() -> Bool { threshold == .max || rng.next() <= threshold }

    /// Adds one complete record (`AccessRecord`).
    func append(_ record: [UInt8]) {
        bytes.append(contentsOf: record)
        lines += 1
        if bytes.count >= 64 << 10 { flush() }
    }

    /// Adds the record that `write` appends to the batch's bytes (no copy in between).
    @inline(__always)
    func append(_ write: (inout [UInt8]) -> Void) {
        write(&bytes)
        lines += 1
        if bytes.count >= 64 << 10 { flush() }
    }

    func flush() {
        takeWallOffset()
        guard lines > 0 else { return }
        sink.submit(&bytes, lines: lines)
        lines = 0
    }
}
