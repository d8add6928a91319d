import Config
import Foundation

/// One key and its value as etcd holds them.
public struct EtcdKeyValue: Equatable, Sendable {
    public var key: String
    public var value: [UInt8]
    /// Revision that created the key (0: the key does not exist).
    public var createRevision: Int64
    /// Revision of the key's last change.
    public var modRevision: Int64
    /// Lease the key is tied to (0: none).
    public var lease: Int64

    public init(key: String, value: [UInt8], createRevision: Int64 = 0, modRevision: Int64 = 0, lease: Int64 = 0) {
        self.key = key
        self.value = value
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.lease = lease
    }
}

/// A condition of a transaction: the key's revision (or create revision) equals a number.
public struct EtcdCompare: Equatable, Sendable {
    /// Which revision of the key is compared.
    public enum Target: String, Sendable {
        /// The revision of the key's last change (0: absent).
        case mod = "MOD"
        /// The revision that created the key (0: absent).
        case create = "CREATE"
    }

    public var key: String
    public var target: Target
    public var revision: Int64

    public init(key: String, target: Target, equals revision: Int64) {
        self.key = key
        self.target = target
        self.revision = revision
    }
}

/// One operation in a transaction's branch.
public enum EtcdOperation: Equatable, Sendable {
    /// Writes `value` under `key`, tied to `lease` when not 0.
    case put(key: String, value: [UInt8], lease: Int64)
    /// Removes `key`.
    case delete(key: String)
}

/// A transaction: when every compare holds, `success` runs, else `failure`; atomically. A
/// change of the control plane is always one transaction, whatever number of records it
/// writes (a change set across services is a list of puts in one transaction).
public struct EtcdTxn: Equatable, Sendable {
    public var compares: [EtcdCompare]
    public var success: [EtcdOperation]
    public var failure: [EtcdOperation]

    public init(compares: [EtcdCompare], success: [EtcdOperation], failure: [EtcdOperation] = []) {
        self.compares = compares
        self.success = success
        self.failure = failure
    }
}

/// What the etcd gateway said, or why it could not be read.
public struct EtcdError: Error, CustomStringConvertible, Equatable, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A watch message: the events after a revision, or the watch's creation or cancellation.
public struct EtcdWatchMessage: Equatable, Sendable {
    /// One change of a key (`value` empty for a delete).
    public struct Event: Equatable, Sendable {
        public var deleted: Bool
        public var kv: EtcdKeyValue
    }

    /// The store's revision when the message was sent.
    public var revision: Int64 = 0
    public var created = false
    public var canceled = false
    /// Set when the start revision was compacted away (the watcher must read the state anew).
    public var compactRevision: Int64 = 0
    public var events: [Event] = []
}

/// The etcd v3 HTTP/JSON gateway's wire format: request bodies to send, response bodies to
/// read. Keys and values travel in base64; 64-bit numbers travel as JSON strings, and fields
/// at their zero value are left out of answers. Pure: no sockets.
public enum EtcdWire {
    // MARK: Requests

    /// The head of a POST to the gateway (`Content-Length` framed; kept alive).
    public static func requestHead(path: String, host: String, bodyLength: Int) -> [UInt8] {
        Array("POST \(path) HTTP/1.1\r\nHost: \(host)\r\nContent-Type: application/json\r\nContent-Length: \(bodyLength)\r\n\r\n".utf8)
    }

    /// The first key after every key that starts with `prefix` (a range's end).
    public static func prefixEnd(_ prefix: String) -> [UInt8] {
        var bytes = Array(prefix.utf8)
        while let last = bytes.last {
            if last < 0xFF {
                bytes[bytes.count - 1] = last + 1
                return bytes
            }
            bytes.removeLast()
        }
        return [0]   // every key
    }

    static func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
    static func base64(_ s: String) -> String { base64(Array(s.utf8)) }

    /// `/v3/kv/range`: one key, or every key under `prefix` when `prefix`.
    public static func range(key: String, prefix: Bool = false) -> [UInt8] {
        var body: [String: Any] = ["key": base64(key)]
        if prefix { body["range_end"] = base64(prefixEnd(key)) }
        return JSONText.encode(body)
    }

    /// `/v3/kv/put`.
    public static func put(key: String, value: [UInt8], lease: Int64 = 0) -> [UInt8] {
        JSONText.encode(operationBody(.put(key: key, value: value, lease: lease)))
    }

    private static func operationBody(_ op: EtcdOperation) -> [String: Any] {
        switch op {
        case .put(let key, let value, let lease):
            var body: [String: Any] = ["key": base64(key), "value": base64(value)]
            if lease != 0 { body["lease"] = String(lease) }
            return body
        case .delete(let key):
            return ["key": base64(key)]
        }
    }

    /// `/v3/kv/txn`.
    public static func txn(_ txn: EtcdTxn) -> [UInt8] {
        func ops(_ list: [EtcdOperation]) -> [Any] {
            list.map { op -> Any in
                switch op {
                case .put: ["request_put": operationBody(op)]
                case .delete: ["request_delete_range": operationBody(op)]
                }
            }
        }
        let compares: [Any] = txn.compares.map { c -> Any in
            ["key": base64(c.key), "result": "EQUAL", "target": c.target.rawValue,
             c.target == .mod ? "mod_revision" : "create_revision": String(c.revision)]
        }
        return JSONText.encode(["compare": compares, "success": ops(txn.success), "failure": ops(txn.failure)] as [String: Any])
    }

    /// `/v3/lease/grant`.
    public static func leaseGrant(ttlSeconds: Int) -> [UInt8] { JSONText.encode(["TTL": String(ttlSeconds)]) }
    /// `/v3/lease/keepalive` and `/v3/lease/revoke`.
    public static func lease(id: Int64) -> [UInt8] { JSONText.encode(["ID": String(id)]) }

    /// `/v3/watch`: the keys under `prefix` from `startRevision` on.
    public static func watch(prefix: String, startRevision: Int64) -> [UInt8] {
        JSONText.encode(["create_request": ["key": base64(prefix), "range_end": base64(prefixEnd(prefix)),
                                            "start_revision": String(startRevision)] as [String: Any]])
    }

    // MARK: Answers

    static func object(_ body: [UInt8]) throws(EtcdError) -> [String: Any] {
        let parsed: Any
        do { parsed = try JSONText.parse(body) } catch { throw EtcdError("etcd answered with malformed JSON: \(error.message)") }
        guard let o = parsed as? [String: Any] else { throw EtcdError("etcd answered with JSON that is not an object") }
        if let message = o["error"] as? String ?? o["message"] as? String, o["header"] == nil, o["result"] == nil {
            throw EtcdError("etcd: \(message)")
        }
        return o
    }

    /// A 64-bit number the gateway writes as a string (or, rarely, a number); 0 when absent.
    static func int64(_ v: Any?) -> Int64 {
        if let s = v as? String { return Int64(s) ?? 0 }
        if let i = v as? Int { return Int64(i) }
        return 0
    }

    static func bytes(_ v: Any?) -> [UInt8] {
        guard let s = v as? String, let data = Data(base64Encoded: s) else { return [] }
        return Array(data)
    }

    static func keyValue(_ o: [String: Any]) -> EtcdKeyValue {
        EtcdKeyValue(key: String(decoding: bytes(o["key"]), as: UTF8.self), value: bytes(o["value"]),
                     createRevision: int64(o["create_revision"]), modRevision: int64(o["mod_revision"]), lease: int64(o["lease"]))
    }

    static func revision(_ o: [String: Any]) -> Int64 { int64((o["header"] as? [String: Any])?["revision"]) }

    /// A `/v3/kv/range` answer: the keys found and the store's revision.
    public static func decodeRange(_ body: [UInt8]) throws(EtcdError) -> (revision: Int64, kvs: [EtcdKeyValue]) {
        let o = try object(body)
        let kvs = (o["kvs"] as? [Any] ?? []).compactMap { ($0 as? [String: Any]).map(keyValue) }
        return (revision(o), kvs)
    }

    /// A `/v3/kv/txn` or `/v3/kv/put` answer: whether the compares held, and the revision
    /// after it.
    public static func decodeTxn(_ body: [UInt8]) throws(EtcdError) -> (succeeded: Bool, revision: Int64) {
        let o = try object(body)
        return (o["succeeded"] as? Bool ?? false, revision(o))
    }

    /// A `/v3/lease/grant` answer: the lease's id and TTL.
    public static func decodeGrant(_ body: [UInt8]) throws(EtcdError) -> (id: Int64, ttl: Int64) {
        let o = try object(body)
        let id = int64(o["ID"])
        guard id != 0 else { throw EtcdError("etcd granted no lease: \(String(decoding: body, as: UTF8.self))") }
        return (id, int64(o["TTL"]))
    }

    /// A `/v3/lease/keepalive` answer (one stream message): the TTL left, 0 when the lease
    /// has expired.
    public static func decodeKeepAlive(_ message: [UInt8]) throws(EtcdError) -> Int64 {
        let o = try object(message)
        return int64((o["result"] as? [String: Any])?["TTL"])
    }

    /// One message of a `/v3/watch` stream.
    public static func decodeWatch(_ message: [UInt8]) throws(EtcdError) -> EtcdWatchMessage {
        let o = try object(message)
        guard let result = o["result"] as? [String: Any] else {
            throw EtcdError("etcd watch: unexpected message \(String(decoding: message.prefix(200), as: UTF8.self))")
        }
        var m = EtcdWatchMessage()
        m.revision = revision(result)
        m.created = result["created"] as? Bool ?? false
        m.canceled = result["canceled"] as? Bool ?? false
        m.compactRevision = int64(result["compact_revision"])
        for case let e as [String: Any] in result["events"] as? [Any] ?? [] {
            m.events.append(.init(deleted: e["type"] as? String == "DELETE", kv: keyValue(e["kv"] as? [String: Any] ?? [:])))
        }
        return m
    }
}

/// Splits a streamed answer's body (its chunk framing already removed) into messages: the
/// gateway writes one JSON object per message, each followed by a newline, while chunk
/// boundaries fall anywhere.
public struct StreamMessages: Sendable {
    private var pending: [UInt8] = []
    /// Longest message kept while waiting for its newline.
    public let maxMessageBytes: Int

    public init(maxMessageBytes: Int = 64 << 20) { self.maxMessageBytes = maxMessageBytes }

    /// Adds body bytes; returns the messages they complete (blank lines skipped). Throws when
    /// a message grows beyond `maxMessageBytes`.
    public mutating func append<C: Collection>(_ bytes: C) throws(EtcdError) -> [[UInt8]] where C.Element == UInt8 {
        pending.append(contentsOf: bytes)
        var out: [[UInt8]] = []
        var start = 0
        while let nl = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
            let line = pending[start..<nl]
            if line.contains(where: { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\r") }) { out.append(Array(line)) }
            start = nl + 1
        }
        pending.removeFirst(start)
        if pending.count > maxMessageBytes { throw EtcdError("etcd stream message longer than \(maxMessageBytes) bytes") }
        return out
    }
}
