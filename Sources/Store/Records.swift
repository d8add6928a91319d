import Config
import Foundation
import Routing

/// The payload of a journal record or snapshot: one JSON object, written with sorted keys
/// (readable with `strings` in an emergency, and stable byte for byte):
///
/// - `{"op":"put","seq":N,"cluster":{…the API form without state…}}`
/// - `{"op":"delete","seq":N,"uuid":…}`
/// - `{"op":"failed","seq":N,"uuid":…,"reason":…,"time":unix seconds}`
/// - `{"op":"readmitted","seq":N,"uuid":…}`
/// - `{"op":"threshold","seq":N,"uuid":…,"percent":…}`
/// - snapshot: `{"op":"snapshot","seq":N,"clusters":[{"cluster":{…},"threshold":…,"failure":{"reason":…,"time":…}}]}`
public enum Records {
    /// Why a payload could not be read (its checksum was right, so this is a bug or a file
    /// from a newer version, never a torn write).
    public struct DecodeError: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// The payload of one change with its sequence number.
    public static func encode(_ change: StateChange, sequence: UInt64) -> [UInt8] {
        var o: [String: Any] = ["seq": Int(sequence)]
        switch change {
        case .put(let spec):
            o["op"] = "put"
            o["cluster"] = clusterObject(spec)
        case .delete(let uuid):
            o["op"] = "delete"
            o["uuid"] = uuid
        case .failed(let uuid, let reason, let time):
            o["op"] = "failed"
            o["uuid"] = uuid
            o["reason"] = reason
            o["time"] = Int(time)
        case .readmitted(let uuid):
            o["op"] = "readmitted"
            o["uuid"] = uuid
        case .threshold(let uuid, let percent):
            o["op"] = "threshold"
            o["uuid"] = uuid
            o["percent"] = percent
        }
        return JSONText.encode(o)
    }

    /// The payload of a snapshot of the whole state.
    public static func encodeSnapshot(_ state: StoredState) -> [UInt8] {
        let clusters: [Any] = state.clusters.map { c -> Any in
            var o: [String: Any] = ["cluster": clusterObject(c.spec), "threshold": c.threshold]
            if let f = c.failure { o["failure"] = ["reason": f.reason, "time": Int(f.time)] as [String: Any] }
            return o
        }
        return JSONText.encode(["op": "snapshot", "seq": Int(state.sequence), "clusters": clusters] as [String: Any])
    }

    static func clusterObject(_ spec: ClusterSpec) -> [String: Any] {
        var o = ClusterJSON.render(spec, failed: nil)["cluster"] as? [String: Any] ?? [:]
        o["state"] = nil
        return o
    }

    /// Reads a change payload: its sequence number and the change.
    public static func decode<C: Collection>(_ payload: C) throws(DecodeError) -> (sequence: UInt64, change: StateChange) where C.Element == UInt8 {
        let o = try object(payload)
        let seq = try sequence(o)
        let op = o["op"] as? String
        func uuid() throws(DecodeError) -> String {
            guard let u = o["uuid"] as? String, ClusterJSON.isValidUUID(u) else { throw DecodeError(description: "\(op ?? "?"): bad uuid") }
            return u
        }
        switch op {
        case "put":
            guard let c = o["cluster"] as? [String: Any] else { throw DecodeError(description: "put: no cluster") }
            return (seq, .put(try spec(c)))
        case "delete":
            return (seq, .delete(uuid: try uuid()))
        case "failed":
            guard let reason = o["reason"] as? String, let time = o["time"] as? Int else {
                throw DecodeError(description: "failed: needs reason and time")
            }
            return (seq, .failed(uuid: try uuid(), reason: reason, time: Int64(time)))
        case "readmitted":
            return (seq, .readmitted(uuid: try uuid()))
        case "threshold":
            guard let p = number(o["percent"]) else { throw DecodeError(description: "threshold: needs percent") }
            return (seq, .threshold(uuid: try uuid(), percent: p))
        default:
            throw DecodeError(description: "unknown record type \(op.map { "\"\($0)\"" } ?? "(none)")")
        }
    }

    /// Reads a snapshot payload.
    public static func decodeSnapshot<C: Collection>(_ payload: C) throws(DecodeError) -> StoredState where C.Element == UInt8 {
        let o = try object(payload)
        guard o["op"] as? String == "snapshot", let list = o["clusters"] as? [Any] else {
            throw DecodeError(description: "not a snapshot record")
        }
        var state = StoredState(sequence: try sequence(o))
        for element in list {
            guard let e = element as? [String: Any], let c = e["cluster"] as? [String: Any] else {
                throw DecodeError(description: "snapshot: bad cluster entry")
            }
            var stored = StoredCluster(spec: try spec(c), threshold: min(max(number(e["threshold"]) ?? 0, 0), 100))
            if let f = e["failure"] as? [String: Any] {
                guard let reason = f["reason"] as? String, let time = f["time"] as? Int else {
                    throw DecodeError(description: "snapshot: bad failure entry")
                }
                stored.failure = StoredFailure(reason: reason, time: Int64(time))
            }
            guard state.index(of: stored.spec.uuid) == nil else { throw DecodeError(description: "snapshot: duplicate uuid \(stored.spec.uuid)") }
            state.clusters.append(stored)
        }
        return state
    }

    private static func object<C: Collection>(_ payload: C) throws(DecodeError) -> [String: Any] where C.Element == UInt8 {
        let parsed: Any
        do {
            parsed = try JSONText.parse(Array(payload))
        } catch {
            throw DecodeError(description: "payload is not JSON (\(error.message))")
        }
        guard let o = parsed as? [String: Any] else { throw DecodeError(description: "payload is not a JSON object") }
        return o
    }

    private static func sequence(_ o: [String: Any]) throws(DecodeError) -> UInt64 {
        guard let s = o["seq"] as? Int, s >= 0 else { throw DecodeError(description: "missing or bad seq") }
        return UInt64(s)
    }

    private static func number(_ v: Any?) -> Double? {
        if let i = v as? Int { return Double(i) }
        if let d = v as? Double, d.isFinite { return d }
        return nil
    }

    private static func spec(_ o: [String: Any]) throws(DecodeError) -> ClusterSpec {
        guard o["uuid"] is String else { throw DecodeError(description: "cluster without uuid") }
        do {
            // Host names were checked when the change was accepted; whether they still
            // resolve is the registry's question at start-up, not the decoder's.
            return try ClusterJSON.parseCluster(o, path: "cluster", resolve: { _ in true }, newUUID: { "" })
        } catch {
            throw DecodeError(description: "cluster: \(error.description)")
        }
    }
}
