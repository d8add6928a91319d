import HTTP1
import Observability
import Routing

/// The access record of a session's current exchange, kept (and reused) across exchanges.
final class AccessEntry {
    var record = AccessRecord()
    /// An exchange is being recorded and its line not yet written.
    var open = false
    /// Bytes of the response head sent to the client (with cookies and connection line).
    var responseHeadBytes = 0
}

/// `X-Request-Id: `, the start of the line a forwarded head gets when the id was made here.
let requestIDLine: [UInt8] = Array("X-Request-Id: ".utf8)

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
        for word in [worker.nextRandom(), worker.nextRandom()] {
            for shift in stride(from: 60, through: 0, by: -4) {
                let nibble = UInt8(truncatingIfNeeded: word >> UInt64(shift)) & 15
                requestID.append(nibble < 10 ? 0x30 &+ nibble : 0x57 &+ nibble)
            }
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

    /// Starts recording the exchange whose head was just read (or refused, `parsed` false),
    /// when the access log is on and samples it.
    func openAccessRecord(parsed: Bool) {
        guard let log = worker.accessLog, log.sampled() else { return }
        let entry = access ?? AccessEntry()
        access = entry
        entry.open = true
        entry.responseHeadBytes = 0
        entry.record.startUnixNanos = AccessLogLine.nowUnixNanos()
        entry.record.client = clientAddress
        entry.record.requestLine.removeAll(keepingCapacity: true)
        entry.record.requestID.removeAll(keepingCapacity: true)
        if parsed, let buffer {
            let source = buffer.readable
            entry.record.requestLine.append(contentsOf: source[request.methodRange])
            entry.record.requestLine.append(0x20)
            entry.record.requestLine.append(contentsOf: source[request.targetRange])
            entry.record.requestID.append(contentsOf: requestID)
        }
    }

    /// Writes the exchange's line (once): `status` is what the client got, 0 for nothing.
    /// A CONCURRENT exchange whose comparison is still running leaves its line with the
    /// comparison, which writes it with `diverged` once both answers are in.
    func closeAccessRecord(status: Int) {
        guard let entry = access, entry.open, let log = worker.accessLog else { return }
        entry.open = false
        var r = entry.record
        r.status = status
        r.durationMicros = (worker.loop.now &- exchangeStart) / 1000
        r.bytesIn = UInt64(state == .readingHead ? 0 : request.headLength) &+ (requestFlow?.bodyBytesMoved ?? 0)
        r.bytesOut = UInt64(entry.responseHeadBytes) &+ (responseStarted ? (responseFlow?.bodyBytesMoved ?? 0) : 0)
        if let cluster {
            r.cluster = cluster.spec.uuid
            r.version = cluster.spec.version
            r.mode = cluster.spec.mode.rawValue
        } else {
            r.cluster = ""; r.version = ""; r.mode = ""
        }
        r.backend = backend.map { worker.backends[$0.backendID].label } ?? ""
        r.served = ""
        r.diverged = nil
        if let comparison {
            r.served = servedSide == 1 ? "new" : "old"
            comparison.deferredAccess = (r, log)
            return
        }
        log.append(r)
    }
}
