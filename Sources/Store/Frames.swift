/// The framing shared by the journal and the snapshot file: an 8-byte file header, then
/// records, each `| payload length: u32 LE | CRC-32C of those 4 bytes: u32 LE | CRC-32C of the
/// payload: u32 LE | payload |`. The length has its own checksum so that a damaged length in
/// the middle of the file is reported as damage, never mistaken for a record cut short at the
/// end (which would silently drop every later record).
///
/// A record is written with one `write(2)`, so a crash leaves at most one torn record, at the
/// end. The scanner tells a torn tail (dropped with a warning) from damage before the end
/// (refused, with its byte offset).
public enum Frames {
    /// Bytes before the first record.
    public static let headerLength = 8
    /// Bytes before each record's payload.
    public static let recordHeaderLength = 12
    /// Largest payload accepted; a larger length field is damage, not a record.
    public static let maxPayload = 16 << 20

    /// One framed record.
    public static func frame(_ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(payload.count + recordHeaderLength)
        var length: [UInt8] = []
        appendLE(UInt32(payload.count), to: &length)
        out += length
        appendLE(CRC32C.checksum(length), to: &out)
        appendLE(CRC32C.checksum(payload), to: &out)
        out += payload
        return out
    }

    static func appendLE(_ v: UInt32, to out: inout [UInt8]) {
        for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) }
    }

    static func readLE(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(bytes[offset + i]) << (8 * UInt32(i)) }
        return v
    }

    /// What scanning a file found.
    public struct Scan: Equatable {
        /// Payloads of the intact records, with the offset of each record.
        public var records: [(offset: Int, payload: ArraySlice<UInt8>)]
        /// Where the intact records end: the length to truncate the file to before appending.
        public var validLength: Int
        /// Set when an incomplete record at the end was dropped: its offset and why.
        public var tornTail: (offset: Int, reason: String)?

        public static func == (a: Scan, b: Scan) -> Bool {
            a.validLength == b.validLength && a.records.map(\.offset) == b.records.map(\.offset)
                && a.records.map { Array($0.payload) } == b.records.map { Array($0.payload) }
                && a.tornTail?.offset == b.tornTail?.offset
        }
    }

    /// Damage before the end of a file: the byte offset of the bad record and what is wrong.
    public struct Damage: Error, Equatable, CustomStringConvertible {
        public var offset: Int
        public var reason: String
        public var description: String { "\(reason) at byte \(offset)" }
    }

    /// Splits a file into records. `header` is the file's expected first 8 bytes. An empty
    /// file is an empty scan. Throws `Damage` for a wrong header or a bad record that is not
    /// the file's last (bytes that follow it are not all zero and not part of it).
    ///
    /// Torn tail (dropped): fewer bytes than a record header; a length that runs past the end;
    /// a checksum mismatch on the last record; or a tail of zero bytes (a file extended by
    /// the file system but not yet written).
    public static func scan(_ bytes: [UInt8], header: [UInt8]) throws(Damage) -> Scan {
        var scan = Scan(records: [], validLength: 0, tornTail: nil)
        if bytes.isEmpty { return scan }
        if bytes.count < headerLength {
            if Array(header.prefix(bytes.count)) == bytes {
                scan.tornTail = (0, "file header cut short")
                return scan
            }
            throw Damage(offset: 0, reason: "not a Switchyard state file (bad header)")
        }
        guard Array(bytes[0..<headerLength]) == header else {
            throw Damage(offset: 0, reason: "not a Switchyard state file (bad header)")
        }
        var offset = headerLength
        scan.validLength = offset
        func restIsZero(_ from: Int) -> Bool { bytes[from...].allSatisfy { $0 == 0 } }
        while offset < bytes.count {
            let remaining = bytes.count - offset
            if remaining < recordHeaderLength {
                scan.tornTail = (offset, "record header cut short (\(remaining) of \(recordHeaderLength) bytes)")
                return scan
            }
            let length = Int(readLE(bytes, at: offset))
            let lengthCheck = readLE(bytes, at: offset + 4)
            let expected = readLE(bytes, at: offset + 8)
            if restIsZero(offset) {
                scan.tornTail = (offset, "zero-filled tail")
                return scan
            }
            // A torn write is a prefix of a correct record: a complete record header is intact.
            guard CRC32C.checksum(bytes[offset..<(offset + 4)]) == lengthCheck else {
                throw Damage(offset: offset, reason: "record length checksum mismatch")
            }
            guard length > 0 && length <= maxPayload else {
                throw Damage(offset: offset, reason: "invalid record length \(length)")
            }
            let end = offset + recordHeaderLength + length
            if end > bytes.count {
                scan.tornTail = (offset, "record cut short (\(remaining - recordHeaderLength) of \(length) payload bytes)")
                return scan
            }
            let payload = bytes[(offset + recordHeaderLength)..<end]
            if CRC32C.checksum(payload) != expected {
                if end == bytes.count || restIsZero(end) {
                    scan.tornTail = (offset, "checksum mismatch in the last record")
                    return scan
                }
                throw Damage(offset: offset, reason: "checksum mismatch")
            }
            scan.records.append((offset, payload))
            offset = end
            scan.validLength = offset
        }
        return scan
    }
}
