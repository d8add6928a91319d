/// One exchange as reactors hand it to the access log writer: fixed-size numbers followed by
/// the bytes of its text fields, so that a reactor only copies (the writer thread formats).
///
/// Layout: `u32` record length, then `i64` start (unix ns), `i64` status, `u64` bytes in,
/// `u64` bytes out, `u64` duration (µs), `u8` served (0 none, 1 new, 2 old), `u8` diverged
/// (0 not compared, 1 no, 2 yes), `u8` flags (`AccessRecord.Plain`: fields known to need
/// no escaping), seven `u32` field lengths, then the fields: client,
/// request line, request id, backend, cluster, version, mode. The last three come from one
/// `AccessClusterText`, made once per cluster, and are copied as one block. Native byte
/// order: records never leave the process.
public enum AccessRecord {
    static let fieldCount = 8
    static let headerBytes = 4 + 5 * 8 + 3 + fieldCount * 4
    /// Offset of the `diverged` byte, set after the fact for compared exchanges.
    public static let divergedOffset = 4 + 5 * 8 + 1
    /// Offset of the first field length.
    static let lengthsOffset = 4 + 5 * 8 + 3

    /// Fields the reactor knows to be plain (printable ASCII without space, `"`, `=` or `\`,
    /// not empty), so the writer copies them without looking at each byte.
    public struct Plain: OptionSet, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// The client address (an IP address made by the proxy).
        public static let client = Plain(rawValue: 1)
        /// The request id (one the proxy made).
        public static let requestID = Plain(rawValue: 2)
        /// The backend (`host:port` of a resolved address).
        public static let backend = Plain(rawValue: 4)
        /// The cluster's uuid, version and mode (`AccessClusterText.isPlain`).
        public static let cluster = Plain(rawValue: 8)
    }

    /// Appends one record; `cluster` is the serving cluster's text (`AccessClusterText.none`
    /// when no cluster was chosen).
    public static func append(startNanos: Int64, status: Int, bytesIn: UInt64, bytesOut: UInt64, durationMicros: UInt64,
                              served: UInt8, client: UnsafeRawBufferPointer, requestLine: UnsafeRawBufferPointer,
                              requestID: UnsafeRawBufferPointer, backend: UnsafeRawBufferPointer,
                              cluster: AccessClusterText, plain: Plain = [], to out: inout [UInt8]) {
        cluster.bytes.withUnsafeBytes { block in
            let total = headerBytes + client.count + requestLine.count + requestID.count + backend.count + block.count
            out.append(addingCapacity: total) { span in
                span.withUnsafeMutableBufferPointer { buffer, initialized in
                    precondition(total <= buffer.count - initialized, "AccessRecord: no room for \(total) bytes")
                    let base = UnsafeMutableRawPointer(buffer.baseAddress!) + initialized
                    var at = 0
                    @inline(__always) func put<T>(_ v: T) {
                        base.storeBytes(of: v, toByteOffset: at, as: T.self)
                        at += MemoryLayout<T>.size
                    }
                    @inline(__always) func bytes(_ f: UnsafeRawBufferPointer) {
                        if let source = f.baseAddress { (base + at).copyMemory(from: source, byteCount: f.count) }
                        at += f.count
                    }
                    put(UInt32(truncatingIfNeeded: total))
                    put(startNanos); put(Int64(status)); put(bytesIn); put(bytesOut); put(durationMicros)
                    put(served); put(UInt8(0))
                    put(plain.union(cluster.isPlain ? .cluster : []).rawValue)
                    put(UInt32(truncatingIfNeeded: client.count)); put(UInt32(truncatingIfNeeded: requestLine.count))
                    put(UInt32(truncatingIfNeeded: requestID.count)); put(UInt32(truncatingIfNeeded: backend.count))
                    put(cluster.lengths.0); put(cluster.lengths.1); put(cluster.lengths.2); put(cluster.lengths.3)
                    bytes(client); bytes(requestLine); bytes(requestID); bytes(backend); bytes(block)
                    precondition(at == total, "AccessRecord: wrote \(at) of \(total) bytes")
                    initialized += total
                }
            }
        }
    }

    /// Calls `body` with each record in `bytes` (a sequence written by `append`).
    public static func forEach(in bytes: UnsafeRawBufferPointer, _ body: (AccessRecordView) -> Void) {
        var offset = 0
        while offset + headerBytes <= bytes.count {
            let length = Int(bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            guard length >= headerBytes, offset + length <= bytes.count else { return }
            body(AccessRecordView(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + length])))
            offset += length
        }
    }
}

/// A record written by `AccessRecord.append`, read in place.
public struct AccessRecordView {
    let bytes: UnsafeRawBufferPointer
    public let client, requestLine, requestID, cluster, version, backend, mode, service: UnsafeRawBufferPointer

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        var at = AccessRecord.headerBytes
        /// Field `index`: its length from the header, its bytes from `at` (clamped to the record).
        @inline(__always) func field(_ index: Int) -> UnsafeRawBufferPointer {
            let n = Int(bytes.loadUnaligned(fromByteOffset: AccessRecord.lengthsOffset + 4 * index, as: UInt32.self))
            let start = min(at, bytes.count), end = min(at + n, bytes.count)
            at = end
            return UnsafeRawBufferPointer(rebasing: bytes[start..<end])
        }
        client = field(0); requestLine = field(1); requestID = field(2); backend = field(3)
        cluster = field(4); version = field(5); mode = field(6); service = field(7)
    }

    public var startNanos: Int64 { bytes.loadUnaligned(fromByteOffset: 4, as: Int64.self) }
    public var status: Int { Int(bytes.loadUnaligned(fromByteOffset: 12, as: Int64.self)) }
    public var bytesIn: UInt64 { bytes.loadUnaligned(fromByteOffset: 20, as: UInt64.self) }
    public var bytesOut: UInt64 { bytes.loadUnaligned(fromByteOffset: 28, as: UInt64.self) }
    public var durationMicros: UInt64 { bytes.loadUnaligned(fromByteOffset: 36, as: UInt64.self) }
    /// 0: not compared, 1: the new version served, 2: the old one.
    public var served: UInt8 { bytes[44] }
    /// nil: not compared; else whether the two answers differed.
    public var diverged: Bool? { bytes[45] == 0 ? nil : bytes[45] == 2 }
    /// The fields known to be plain.
    public var plain: AccessRecord.Plain { AccessRecord.Plain(rawValue: bytes[46]) }
}

/// The access log fields of one cluster — uuid, version and mode — as one block of bytes,
/// made once when the cluster is published so that each exchange copies it in one go.
public struct AccessClusterText: Sendable {
    /// uuid, version, mode and service, back to back.
    public let bytes: [UInt8]
    /// Their lengths.
    public let lengths: (UInt32, UInt32, UInt32, UInt32)
    /// All are plain (no escaping needed): checked once here, not per line.
    public let isPlain: Bool

    /// The block of a cluster; `service` empty leaves the field out of the line.
    public init(uuid: String, version: String, mode: String, service: String = "") {
        bytes = Array(uuid.utf8) + Array(version.utf8) + Array(mode.utf8) + Array(service.utf8)
        lengths = (UInt32(uuid.utf8.count), UInt32(version.utf8.count), UInt32(mode.utf8.count), UInt32(service.utf8.count))
        isPlain = [uuid, version, mode].allSatisfy { text in
            let bytes = Array(text.utf8)
            return !bytes.isEmpty && bytes.withUnsafeBytes { AccessLogLine.firstSpecial($0, alsoBare: true) == bytes.count }
        } && service.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x3D && $0 != 0x5C }
    }

    /// No cluster (an exchange refused before routing).
    public static let none = AccessClusterText(uuid: "", version: "", mode: "")
}
