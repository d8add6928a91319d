/// The hand-over protocol between a running Switchyard process (the *predecessor*) and the
/// binary it starts to replace itself (the *successor*), over one `SOCK_SEQPACKET` socket.
/// Every message is one packet: this codec turns a message into bytes and back, and says how
/// many descriptors travel with it (`SCM_RIGHTS`, attached by the caller in the order the
/// message lists them). It does no I/O, so it is tested without sockets.
///
/// Conversation:
/// ```
/// predecessor → successor   offer        listeners (+ admin listener, + state lock), state
/// successor → predecessor   ready        its reactors run on the inherited listeners
///                           | refused    with the reason (then it exits)
/// predecessor → successor   committed    the predecessor no longer accepts
/// predecessor → successor   connections  idle client connections, any number of times
/// predecessor → successor   finished     counts; the predecessor then exits
/// ```
public enum HandoverMessage: Equatable, Sendable {
    /// What the successor needs to take over: descriptors in this order — `proxyListeners`
    /// data listeners, then the admin listener when `adminListener`, then the state
    /// directory's locked descriptor when `stateLock`.
    case offer(Offer)
    /// The successor serves on the inherited listeners; `pid` is its process id.
    case ready(pid: Int32)
    /// The successor refuses what it was given (its configuration, the state, the version).
    case refused(reason: String)
    /// The predecessor has stopped accepting; the successor owns the state from now on.
    case committed
    /// Idle client connections, one descriptor each, with the client's address.
    case connections(clientAddresses: [String])
    /// The predecessor is done: what it handed over and what it finished itself.
    case finished(Totals)

    /// The first message's contents.
    public struct Offer: Equatable, Sendable {
        /// Numbers the upgrade (1 for the first of a process line), so `switchyard upgrade`
        /// can tell its outcome from an earlier one.
        public var serial: UInt64
        /// The predecessor's process id.
        public var predecessorPID: Int32
        /// Data-plane listeners (one per worker, `SO_REUSEPORT`).
        public var proxyListeners: Int
        /// The admin API's listener follows the data listeners.
        public var adminListener: Bool
        /// The state directory's `flock`ed descriptor follows (the lock goes with it).
        public var stateLock: Bool
        /// The control-plane state, encoded as a store snapshot record.
        public var state: [UInt8]
        /// Comparison totals (CONCURRENT), encoded by the comparator's log.
        public var comparisons: [UInt8]

        public init(serial: UInt64, predecessorPID: Int32, proxyListeners: Int, adminListener: Bool, stateLock: Bool,
                    state: [UInt8], comparisons: [UInt8] = []) {
            self.serial = serial
            self.predecessorPID = predecessorPID
            self.proxyListeners = proxyListeners
            self.adminListener = adminListener
            self.stateLock = stateLock
            self.state = state
            self.comparisons = comparisons
        }

        /// Descriptors attached to the offer.
        public var descriptorCount: Int { proxyListeners + (adminListener ? 1 : 0) + (stateLock ? 1 : 0) }
    }

    /// Counts reported at the end of a hand-over.
    public struct Totals: Equatable, Sendable {
        /// Idle client connections handed to the successor.
        public var handedOver: Int
        /// Connections whose exchanges (or tunnels) ended in the predecessor.
        public var finishedHere: Int
        /// Connections still busy when the drain time ran out, closed.
        public var closedAtDeadline: Int

        public init(handedOver: Int = 0, finishedHere: Int = 0, closedAtDeadline: Int = 0) {
            self.handedOver = handedOver
            self.finishedHere = finishedHere
            self.closedAtDeadline = closedAtDeadline
        }
    }

    /// The protocol version this build speaks. A successor refuses an offer of another version.
    public static let protocolVersion: UInt16 = 1
    /// Most connections in one `connections` message (one descriptor each; the kernel's limit is 253).
    public static let maxConnectionsPerMessage = 200
    /// Longest client address text.
    static let maxAddressBytes = 64
    /// Largest state or comparisons blob.
    /// (A packet must fit in the socket's send buffer, about 200 KiB by default.)
    static let maxBlobBytes = 160 * 1024
    /// Longest refusal reason.
    static let maxReasonBytes = 2048

    static let magic: [UInt8] = Array("SYHO".utf8)

    enum Kind: UInt8 {
        case offer = 1, ready, refused, committed, connections, finished
    }

    /// How many descriptors travel with this message.
    public var descriptorCount: Int {
        switch self {
        case .offer(let offer): offer.descriptorCount
        case .connections(let addresses): addresses.count
        case .ready, .refused, .committed, .finished: 0
        }
    }

    /// The message as one packet: magic, protocol version, kind, descriptor count, fields
    /// (integers big-endian; strings and blobs with a length before them).
    public func encoded() -> [UInt8] {
        var w = Writer()
        w.bytes += Self.magic
        w.u16(Self.protocolVersion)
        switch self {
        case .offer(let o):
            w.u8(Kind.offer.rawValue)
            w.u16(UInt16(descriptorCount))
            w.u64(o.serial)
            w.u32(UInt32(bitPattern: o.predecessorPID))
            w.u16(UInt16(o.proxyListeners))
            w.u8(o.adminListener ? 1 : 0)
            w.u8(o.stateLock ? 1 : 0)
            w.blob(o.state)
            w.blob(o.comparisons)
        case .ready(let pid):
            w.u8(Kind.ready.rawValue)
            w.u16(0)
            w.u32(UInt32(bitPattern: pid))
        case .refused(let reason):
            w.u8(Kind.refused.rawValue)
            w.u16(0)
            let text = Array(reason.utf8.prefix(Self.maxReasonBytes))
            w.u16(UInt16(text.count))
            w.bytes += text
        case .committed:
            w.u8(Kind.committed.rawValue)
            w.u16(0)
        case .connections(let addresses):
            w.u8(Kind.connections.rawValue)
            w.u16(UInt16(addresses.count))
            for address in addresses {
                let text = Array(address.utf8.prefix(Self.maxAddressBytes))
                w.u8(UInt8(text.count))
                w.bytes += text
            }
        case .finished(let t):
            w.u8(Kind.finished.rawValue)
            w.u16(0)
            w.u32(UInt32(clamping: t.handedOver))
            w.u32(UInt32(clamping: t.finishedHere))
            w.u32(UInt32(clamping: t.closedAtDeadline))
        }
        return w.bytes
    }

    /// Reads one packet that arrived with `descriptors` descriptors. Throws when the bytes are
    /// not a message of this protocol version, are cut short or run on, or when the number of
    /// descriptors is not the one the message announces.
    public static func decode(_ bytes: [UInt8], descriptors: Int) throws(HandoverDecodeError) -> HandoverMessage {
        var r = Reader(bytes: bytes)
        guard bytes.count >= 4, Array(bytes[0..<4]) == magic else { throw HandoverDecodeError(offset: 0, reason: "not a hand-over message") }
        r.offset = 4
        let version = try r.u16("version")
        guard version == protocolVersion else {
            throw HandoverDecodeError(offset: 4, reason: "protocol version \(version), this build speaks \(protocolVersion)")
        }
        let kindByte = try r.u8("kind")
        guard let kind = Kind(rawValue: kindByte) else { throw HandoverDecodeError(offset: 6, reason: "unknown message kind \(kindByte)") }
        let announced = Int(try r.u16("descriptor count"))
        let message: HandoverMessage
        switch kind {
        case .offer:
            let serial = try r.u64("serial")
            let pid = Int32(bitPattern: try r.u32("pid"))
            let listeners = Int(try r.u16("listener count"))
            guard listeners >= 1 else { throw HandoverDecodeError(offset: r.offset - 2, reason: "an offer needs at least one listener") }
            let admin = try r.flag("admin listener")
            let lock = try r.flag("state lock")
            let state = try r.blob("state")
            let comparisons = try r.blob("comparisons")
            message = .offer(Offer(serial: serial, predecessorPID: pid, proxyListeners: listeners, adminListener: admin,
                                   stateLock: lock, state: state, comparisons: comparisons))
        case .ready:
            message = .ready(pid: Int32(bitPattern: try r.u32("pid")))
        case .refused:
            let count = Int(try r.u16("reason length"))
            guard count <= maxReasonBytes else { throw HandoverDecodeError(offset: r.offset - 2, reason: "reason too long") }
            message = .refused(reason: String(decoding: try r.take(count, "reason"), as: UTF8.self))
        case .committed:
            message = .committed
        case .connections:
            guard announced >= 1, announced <= maxConnectionsPerMessage else {
                throw HandoverDecodeError(offset: 7, reason: "\(announced) connections in one message (1...\(maxConnectionsPerMessage))")
            }
            var addresses: [String] = []
            for _ in 0..<announced {
                let length = Int(try r.u8("address length"))
                guard length <= maxAddressBytes else { throw HandoverDecodeError(offset: r.offset - 1, reason: "address too long") }
                addresses.append(String(decoding: try r.take(length, "address"), as: UTF8.self))
            }
            message = .connections(clientAddresses: addresses)
        case .finished:
            let handed = Int(try r.u32("handed over"))
            let finished = Int(try r.u32("finished here"))
            let closed = Int(try r.u32("closed at deadline"))
            message = .finished(Totals(handedOver: handed, finishedHere: finished, closedAtDeadline: closed))
        }
        guard r.offset == bytes.count else { throw HandoverDecodeError(offset: r.offset, reason: "\(bytes.count - r.offset) bytes after the message") }
        guard announced == message.descriptorCount else {
            throw HandoverDecodeError(offset: 7, reason: "announces \(announced) descriptors, its fields need \(message.descriptorCount)")
        }
        guard descriptors == announced else {
            throw HandoverDecodeError(offset: 7, reason: "\(descriptors) descriptors arrived, \(announced) announced")
        }
        return message
    }

    private struct Writer {
        var bytes: [UInt8] = []
        mutating func u8(_ v: UInt8) { bytes.append(v) }
        mutating func u16(_ v: UInt16) { bytes.append(UInt8(v >> 8)); bytes.append(UInt8(v & 0xff)) }
        mutating func u32(_ v: UInt32) { for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8((v >> UInt32(shift)) & 0xff)) } }
        mutating func u64(_ v: UInt64) { for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8((v >> UInt64(shift)) & 0xff)) } }
        mutating func blob(_ b: [UInt8]) { u32(UInt32(b.count)); bytes += b }
    }

    private struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func take(_ count: Int, _ what: String) throws(HandoverDecodeError) -> ArraySlice<UInt8> {
            guard count >= 0, bytes.count - offset >= count else {
                throw HandoverDecodeError(offset: offset, reason: "message ends inside \(what)")
            }
            defer { offset += count }
            return bytes[offset..<(offset + count)]
        }
        mutating func u8(_ what: String) throws(HandoverDecodeError) -> UInt8 { try take(1, what).first! }
        mutating func u16(_ what: String) throws(HandoverDecodeError) -> UInt16 {
            try take(2, what).reduce(0) { $0 << 8 | UInt16($1) }
        }
        mutating func u32(_ what: String) throws(HandoverDecodeError) -> UInt32 {
            try take(4, what).reduce(0) { $0 << 8 | UInt32($1) }
        }
        mutating func u64(_ what: String) throws(HandoverDecodeError) -> UInt64 {
            try take(8, what).reduce(0) { $0 << 8 | UInt64($1) }
        }
        mutating func flag(_ what: String) throws(HandoverDecodeError) -> Bool {
            let at = offset
            switch try u8(what) {
            case 0: return false
            case 1: return true
            case let v: throw HandoverDecodeError(offset: at, reason: "\(what) must be 0 or 1, got \(v)")
            }
        }
        mutating func blob(_ what: String) throws(HandoverDecodeError) -> [UInt8] {
            let count = Int(try u32("\(what) length"))
            guard count <= HandoverMessage.maxBlobBytes else {
                throw HandoverDecodeError(offset: offset - 4, reason: "\(what) of \(count) bytes is over the limit")
            }
            return Array(try take(count, what))
        }
    }
}

/// A packet that is not a valid hand-over message: where and why.
public struct HandoverDecodeError: Error, Equatable, CustomStringConvertible, Sendable {
    /// Byte offset in the packet where the problem was found.
    public var offset: Int
    public var reason: String

    public var description: String { "hand-over message: \(reason) (byte \(offset))" }
}
