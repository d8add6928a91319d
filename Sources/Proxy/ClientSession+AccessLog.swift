import HTTP1
import Observability
import Routing

/// The access log record of a session's current exchange, kept (and reused) across exchanges.
final class AccessEntry {
    /// `method SP target` of the request (its buffer moves on during the exchange).
    var requestLine: [UInt8] = []
    /// Wall-clock time the request head was complete.
    var startNanos: Int64 = 0
    /// The record (`AccessRecord`), written when the exchange ends.
    var line: [UInt8] = []
    /// An exchange is being recorded and its line not yet written.
    var open = false
    /// Bytes of the response head sent to the client (with cookies and connection line).
    var responseHeadBytes = 0
}

/// Request ids and the access log: one line per exchange, written through the worker's batch.
extension ClientSession {
    /// Keeps the client's X-Request-Id when it is valid (1 to 128 characters from
    /// `A-Z a-z 0-9 - _ . : + / =`), else makes one (32 hex digits); an invalid or repeated
    /// X-Request-Id is left out of the forwarded head.
    func assignRequestID(_ source: UnsafeRawBufferPointer) {
        requestID.removeAll(keepingCapacity: true)
        requestIDMade = false
        var found = false
        for i in request.headers.indices where request.headers[i].kind == .xRequestId {
            let value = source[request.headers[i].valueRange]
            if !found && Self.isValidRequestID(value) {
                requestID.append(contentsOf: value)
                found = true
            } else {
                request.headers[i].hopByHop = true
            }
        }
        guard !found else { return }
        requestIDMade = true
        let high = worker.nextRandom(), low = worker.nextRandom()
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { hex in
            for i in 0..<16 {
                hex[i] = AccessLogLine.hexDigit(UInt8(truncatingIfNeeded: high >> UInt64(60 - 4 * i)) & 15)
                hex[16 + i] = AccessLogLine.hexDigit(UInt8(truncatingIfNeeded: low >> UInt64(60 - 4 * i)) & 15)
            }
            requestID.append(contentsOf: hex)
        }
    }

    static func isValidRequestID(_ value: Slice<UnsafeRawBufferPointer>) -> Bool {
        guard !value.isEmpty && value.count <= 128 else { return false }
        for b in value {
            switch b {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x2D, 0x5F, 0x2E, 0x3A, 0x2B, 0x2F, 0x3D: continue
            default: return false
            }
        }
        return true
    }

    /// Starts the record of the exchange whose head was just read (or refused, `parsed`
    /// false), when the access log is on and samples it.
    func openAccessRecord(parsed: Bool) {
        guard let log = worker.accessLog, log.sampled() else { return }
        let entry = access ?? AccessEntry()
        access = entry
        entry.open = true
        entry.responseHeadBytes = 0
        entry.startNanos = log.wallNanos(worker.loop.now)
        entry.requestLine.removeAll(keepingCapacity: true)
        if parsed, let buffer {
            entry.requestLine.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer.readable[request.methodRange.lowerBound..<request.targetRange.upperBound]))
        }
    }

    /// Writes the exchange's record (once): `status` is what the client got, 0 for nothing.
    /// A CONCURRENT exchange whose comparison is still running leaves its record with the
    /// comparison, which hands it over with `diverged` once both answers are in. The reactor
    /// only copies the fields; the writer thread formats the line.
    func closeAccessRecord(status: Int) {
        guard let entry = access, entry.open, let log = worker.accessLog else { return }
        entry.open = false
        let bytesIn = UInt64(state == .readingHead ? 0 : request.headLength) &+ (requestFlow?.bodyBytesMoved ?? 0)
        let bytesOut = UInt64(entry.responseHeadBytes) &+ (responseStarted ? (responseFlow?.bodyBytesMoved ?? 0) : 0)
        let served: UInt8 = comparison == nil ? 0 : (servedSide == 1 ? 1 : 2)
        let durationMicros = (worker.loop.now &- exchangeStart) / 1000
        let clusterText = cluster?.accessText ?? .none
        let backendLabel = backend.map { worker.backendLabels[$0.backendID] } ?? []
        /// Copies the fields into `out`: the batch itself, or the entry while a comparison runs.
        func write(_ out: inout [UInt8]) {
            entry.requestLine.withUnsafeBytes { line in requestID.withUnsafeBytes { id in backendLabel.withUnsafeBytes { b in
                var client = clientAddress
                client.withUTF8 { a in
                    AccessRecord.append(startNanos: entry.startNanos, status: status, bytesIn: bytesIn, bytesOut: bytesOut,
                                        durationMicros: durationMicros, served: served, client: UnsafeRawBufferPointer(a),
                                        requestLine: line,
                                        requestID: line.isEmpty ? UnsafeRawBufferPointer(start: nil, count: 0) : id,
                                        backend: b, cluster: clusterText,
                                        // Addresses the proxy formatted, and ids it made, need no escaping.
                                        plain: requestIDMade ? [.client, .backend, .requestID] : [.client, .backend],
                                        to: &out)
                }
            } } }
        }
        if let comparison {
            entry.line.removeAll(keepingCapacity: true)
            write(&entry.line)
            comparison.deferredAccess = (entry.line, log)
            return
        }
        log.append(write)
    }
}
