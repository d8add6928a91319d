import Config
import Foundation
import Rollout
import Routing

/// The payload of a journal record or snapshot: one JSON object, written with sorted keys
/// (readable with `strings` in an emergency, and stable byte for byte):
///
/// - `{"op":"put","seq":N,"cluster":{…the API form without state…}}`
/// - `{"op":"delete","seq":N,"uuid":…}`
/// - `{"op":"failed","seq":N,"uuid":…,"reason":…,"time":unix seconds}`
/// - `{"op":"readmitted","seq":N,"uuid":…}`
/// - `{"op":"threshold","seq":N,"uuid":…,"percent":…}`
/// - `{"op":"rollout","seq":N,"uuid":…,"state":"progressing","step":1,"percent":25,"reason":…}`
///   (`step` 0-based; `percent` and `reason` only when known)
/// - snapshot: `{"op":"snapshot","seq":N,"clusters":[{"cluster":{…},"threshold":…,"failure":{"reason":…,"time":…},
///   "rollout":{"state":…,"step":…,"percent":…,"reason":…}}]}`
///
/// Records written before rollouts existed read unchanged: a cluster without a plan writes no
/// plan fields, and a snapshot entry without `rollout` has no rollout progress.
/// - `{"op":"ready","seq":N,"uuid":…}`
/// - `{"op":"drained"|"enabled","seq":N,"server":{"hostname":…,"port":…},"uuid":…}`
/// - snapshot: `{"op":"snapshot","seq":N,"clusters":[{"cluster":{…},"threshold":…,"failure":{"reason":…,"time":…},
///   "ready":false,"drained":[{"hostname":…,"port":…}]}]}` (`ready` only when false, `drained` only when not empty)
///
/// Journals and snapshots written before `ready` and `drained` existed read as "ready, nothing drained".
public enum Records {
    /// Why a payload could not be read (its checksum was right, so this is a bug or a file
    /// from a newer version, never a torn write).
    public struct DecodeError: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// The payload of one change with its sequence number.
    public static func encode(_ change: StateChange, sequence: UInt64) -> [UInt8] {
        // Written directly rather than through `JSONText.encode`, whose dynamic casts of
        // `Any` cost ~80 µs per record in a release build; this takes ~1 µs. Keys are in
        // sorted order, as `JSONText.encode` would write them.
        var w = JSONOut()
        switch change {
        case .put(let spec):
            w.key("cluster", first: true); w.cluster(spec)
            w.key("op"); w.string("put")
            w.key("seq"); w.raw(String(sequence))
        case .putIn(let service, let spec):
            w.key("cluster", first: true); w.cluster(spec)
            w.key("op"); w.string("put")
            w.key("seq"); w.raw(String(sequence))
            w.key("service"); w.string(service)
        case .putService(let spec):
            w.key("op", first: true); w.string("putService")
            w.key("seq"); w.raw(String(sequence))
            w.key("service"); w.bytes.append(contentsOf: JSONText.encode(ServiceJSON.render(spec)))
        case .deleteService(let name):
            w.key("name", first: true); w.string(name)
            w.key("op"); w.string("deleteService")
            w.key("seq"); w.raw(String(sequence))
        case .changeSet(let changes):
            w.key("changes", first: true)
            w.bytes.append(UInt8(ascii: "["))
            for (i, change) in changes.enumerated() {
                if i > 0 { w.bytes.append(UInt8(ascii: ",")) }
                w.bytes.append(contentsOf: encode(change, sequence: 0))
            }
            w.bytes.append(UInt8(ascii: "]"))
            w.key("op"); w.string("changes")
            w.key("seq"); w.raw(String(sequence))
        case .delete(let uuid):
            w.key("op", first: true); w.string("delete")
            w.key("seq"); w.raw(String(sequence))
            w.key("uuid"); w.string(uuid)
        case .failed(let uuid, let reason, let time):
            w.key("op", first: true); w.string("failed")
            w.key("reason"); w.string(reason)
            w.key("seq"); w.raw(String(sequence))
            w.key("time"); w.raw(String(time))
            w.key("uuid"); w.string(uuid)
        case .readmitted(let uuid):
            w.key("op", first: true); w.string("readmitted")
            w.key("seq"); w.raw(String(sequence))
            w.key("uuid"); w.string(uuid)
        case .threshold(let uuid, let percent):
            w.key("op", first: true); w.string("threshold")
            w.key("percent"); w.number(percent)
            w.key("seq"); w.raw(String(sequence))
            w.key("uuid"); w.string(uuid)
        case .rollout(let uuid, let progress):
            w.key("op", first: true); w.string("rollout")
            if let p = progress.percent { w.key("percent"); w.number(p) }
            if let r = progress.reason { w.key("reason"); w.string(r) }
            w.key("seq"); w.raw(String(sequence))
            w.key("state"); w.string(progress.phase.rawValue)
            w.key("step"); w.raw(String(progress.step))
            w.key("uuid"); w.string(uuid)
        case .ready(let uuid):
            w.key("op", first: true); w.string("ready")
            w.key("seq"); w.raw(String(sequence))
            w.key("uuid"); w.string(uuid)
        case .drain(let uuid, let server, let drained):
            w.key("op", first: true); w.string(drained ? "drained" : "enabled")
            w.key("seq"); w.raw(String(sequence))
            w.key("server"); w.server(server)
            w.key("uuid"); w.string(uuid)
        }
        w.bytes.append(UInt8(ascii: "}"))
        return w.bytes
    }

    /// The payload of a snapshot of the whole state.
    public static func encodeSnapshot(_ state: StoredState) -> [UInt8] {
        var w = JSONOut()
        w.key("clusters", first: true)
        w.bytes.append(UInt8(ascii: "["))
        for (i, c) in state.clusters.enumerated() {
            if i > 0 { w.bytes.append(UInt8(ascii: ",")) }
            w.key("cluster", first: true); w.cluster(c.spec)
            if !c.drained.isEmpty {
                w.key("drained")
                w.bytes.append(UInt8(ascii: "["))
                for (k, server) in c.drained.enumerated() {
                    if k > 0 { w.bytes.append(UInt8(ascii: ",")) }
                    w.server(server)
                }
                w.bytes.append(UInt8(ascii: "]"))
            }
            if let f = c.failure {
                w.key("failure")
                w.key("reason", first: true); w.string(f.reason)
                w.key("time"); w.raw(String(f.time))
                w.bytes.append(UInt8(ascii: "}"))
            }
            if !c.ready { w.key("ready"); w.raw("false") }
            if let r = c.rollout {
                w.key("rollout"); w.progress(r)
            }
            if c.service != defaultServiceName { w.key("service"); w.string(c.service) }
            w.key("threshold"); w.number(c.threshold)
            w.bytes.append(UInt8(ascii: "}"))
        }
        w.bytes.append(UInt8(ascii: "]"))
        w.key("op"); w.string("snapshot")
        w.key("seq"); w.raw(String(state.sequence))
        if !state.services.isEmpty {
            w.key("services")
            w.bytes.append(contentsOf: JSONText.encode(state.services.map { ServiceJSON.render($0) as Any }))
        }
        w.bytes.append(UInt8(ascii: "}"))
        return w.bytes
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
            if let service = o["service"] {
                guard let name = service as? String, ServiceSpec.isValidName(name) else { throw DecodeError(description: "put: bad service") }
                if name != defaultServiceName { return (seq, .putIn(service: name, try spec(c))) }
            }
            return (seq, .put(try spec(c)))
        case "putService":
            guard let so = o["service"] as? [String: Any] else { throw DecodeError(description: "putService: no service") }
            return (seq, .putService(try service(so)))
        case "deleteService":
            guard let name = o["name"] as? String, ServiceSpec.isValidName(name) else { throw DecodeError(description: "deleteService: bad name") }
            return (seq, .deleteService(name: name))
        case "changes":
            guard let list = o["changes"] as? [Any] else { throw DecodeError(description: "changes: no list") }
            var changes: [StateChange] = []
            for element in list {
                guard let inner = element as? [String: Any] else { throw DecodeError(description: "changes: bad entry") }
                let data = JSONText.encode(inner)
                let (_, change) = try decode(data)
                if case .changeSet = change { throw DecodeError(description: "changes: nested change set") }
                changes.append(change)
            }
            return (seq, .changeSet(changes))
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
        case "rollout":
            return (seq, .rollout(uuid: try uuid(), progress: try progress(o, "rollout")))
        case "ready":
            return (seq, .ready(uuid: try uuid()))
        case "drained", "enabled":
            guard let s = o["server"] as? [String: Any], let server = server(s) else {
                throw DecodeError(description: "\(op!): needs server {hostname, port}")
            }
            return (seq, .drain(uuid: try uuid(), server: server, drained: op == "drained"))
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
            if let r = e["rollout"] {
                guard let r = r as? [String: Any] else { throw DecodeError(description: "snapshot: bad rollout entry") }
                stored.rollout = try progress(r, "snapshot rollout")
            }
            if let ready = e["ready"] {
                guard let r = ready as? Bool else { throw DecodeError(description: "snapshot: bad ready entry") }
                stored.ready = r
            } else {
                stored.ready = true
            }
            if let list = e["drained"] {
                guard let servers = list as? [Any] else { throw DecodeError(description: "snapshot: bad drained entry") }
                for s in servers {
                    guard let o = s as? [String: Any], let server = server(o) else { throw DecodeError(description: "snapshot: bad drained entry") }
                    stored.drained.append(server)
                }
            }
            if let name = e["service"] {
                guard let name = name as? String, ServiceSpec.isValidName(name) else { throw DecodeError(description: "snapshot: bad service entry") }
                stored.service = name
            }
            guard state.index(of: stored.spec.uuid) == nil else { throw DecodeError(description: "snapshot: duplicate uuid \(stored.spec.uuid)") }
            state.clusters.append(stored)
        }
        if let list = o["services"] {
            guard let list = list as? [Any] else { throw DecodeError(description: "snapshot: bad services") }
            for element in list {
                guard let so = element as? [String: Any] else { throw DecodeError(description: "snapshot: bad service") }
                state.services.append(try service(so))
            }
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

    /// Reads `state`, `step` and the optional `percent` (0...100) and `reason`.
    private static func progress(_ o: [String: Any], _ what: String) throws(DecodeError) -> RolloutProgress {
        guard let state = (o["state"] as? String).flatMap(Phase.init(rawValue:)) else {
            throw DecodeError(description: "\(what): bad state")
        }
        guard let step = o["step"] as? Int, step >= 0 else { throw DecodeError(description: "\(what): bad step") }
        var percent: Double?
        if let p = o["percent"] {
            guard let n = number(p), (0...100).contains(n) else { throw DecodeError(description: "\(what): bad percent") }
            percent = n
        }
        var reason: String?
        if let r = o["reason"] {
            guard let text = r as? String else { throw DecodeError(description: "\(what): bad reason") }
            reason = text
        }
        return RolloutProgress(phase: state, step: step, percent: percent, reason: reason)
    }

    /// `{"hostname":…,"port":…}`, or nil.
    private static func server(_ o: [String: Any]) -> ServerAddress? {
        guard let host = o["hostname"] as? String, let port = o["port"] as? Int, (1...65535).contains(port) else { return nil }
        return ServerAddress(hostname: host, port: port)
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
            return try ClusterJSON.parseCluster(o, path: "cluster", resolve: { _ in true }, newUUID: { "" }, checkFiles: false)
        } catch {
            throw DecodeError(description: "cluster: \(error.description)")
        }
    }

    private static func service(_ o: [String: Any]) throws(DecodeError) -> ServiceSpec {
        do {
            return try ServiceJSON.parseService(o, path: "service", allowClusters: false, resolve: { _ in true }, newUUID: { "" }).spec
        } catch {
            throw DecodeError(description: "service: \(error.description)")
        }
    }
}

/// A minimal JSON writer for the record payloads: objects are opened by their first `key`
/// and closed by the caller; strings are escaped as `JSONText` escapes them.
struct JSONOut {
    var bytes: [UInt8] = []

    init() { bytes.reserveCapacity(256) }

    /// Writes `"name":`, opening an object (`{`) when `first`, else after a comma.
    mutating func key(_ name: String, first: Bool = false) {
        bytes.append(first ? UInt8(ascii: "{") : UInt8(ascii: ","))
        string(name)
        bytes.append(UInt8(ascii: ":"))
    }

    mutating func raw(_ text: String) { bytes += text.utf8 }

    /// Integral values as integers, others in Swift's shortest round-trip form.
    mutating func number(_ d: Double) { JSONText.writeDouble(d, into: &bytes) }

    mutating func string(_ s: String) { JSONText.writeString(s, into: &bytes) }

    /// `{"hostname":…,"port":…}`, and `"resolve":"lazy"` for a lazy server of a cluster body.
    mutating func server(_ server: ServerAddress, inCluster: Bool = false) {
        key("hostname", first: true); string(server.hostname)
        key("port"); raw(String(server.port))
        if inCluster && server.lazy { key("resolve"); string("lazy") }
        bytes.append(UInt8(ascii: "}"))
    }

    /// A cluster in the API form without its state (the body `PUT` accepts), keys in the
    /// order `JSONText.encode` writes `ClusterJSON.render`'s.
    mutating func cluster(_ spec: ClusterSpec) {
        var first = true
        if let check = spec.healthCheck {
            key("healthCheck", first: true)
            key("expectStatus", first: true); string(check.expectStatus.description)
            key("healthyThreshold"); raw(String(check.healthyThreshold))
            key("intervalSeconds"); number(check.intervalSeconds)
            key("minHealthy"); raw(String(check.minHealthy))
            key("path"); string(check.path)
            key("readyTimeoutSeconds"); number(check.readyTimeoutSeconds)
            key("timeoutSeconds"); number(check.timeoutSeconds)
            key("unhealthyThreshold"); raw(String(check.unhealthyThreshold))
            bytes.append(UInt8(ascii: "}"))
            first = false
        }
        if !spec.ignoreBodyFor.isEmpty {
            key("ignoreBodyFor", first: first)
            first = false
            bytes.append(UInt8(ascii: "["))
            for (i, pattern) in spec.ignoreBodyFor.enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                string(pattern)
            }
            bytes.append(UInt8(ascii: "]"))
        }
        if let release = spec.release {
            key("release", first: first)
            first = false
            string(release)
        }
        key("servers", first: first)
        bytes.append(UInt8(ascii: "["))
        for (i, s) in spec.servers.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            server(s, inCluster: true)
        }
        bytes.append(UInt8(ascii: "]"))
        if let tls = spec.tls {
            key("tls")
            var opened = false
            if let file = tls.caFile { field("caFile", &opened); string(file) }
            if let name = tls.serverName { field("serverName", &opened); string(name) }
            field("verify", &opened); raw(tls.verify ? "true" : "false")
            bytes.append(UInt8(ascii: "}"))
        }
        key("upgradeTransition")
        transition(spec)
        key("uuid"); string(spec.uuid)
        key("version"); string(spec.version)
        bytes.append(UInt8(ascii: "}"))
    }

    /// Writes `"name":`, opening the object when `opened` is false (and setting it).
    private mutating func field(_ name: String, _ opened: inout Bool) {
        key(name, first: !opened)
        opened = true
    }

    /// The `upgradeTransition` object: the 2014 mode and its option, or a plan's steps.
    private mutating func transition(_ spec: ClusterSpec) {
        var opened = false
        let steps = spec.rollout?.steps ?? []
        if let a = spec.rollout?.analysis {
            field("analysis", &opened)
            var inner = false
            if a.maxLatencyRatio != nil {
                field("latencyFloorMillis", &inner); number(a.latencyFloorMillis)
                field("latencyPercentile", &inner); number(a.latencyPercentile)
            }
            if let l = a.maxDivergenceRatio { field("maxDivergenceRatio", &inner); number(l) }
            if let l = a.maxErrorRatio { field("maxErrorRatio", &inner); number(l) }
            if let l = a.maxLatencyRatio { field("maxLatencyRatio", &inner); number(l) }
            field("minRequests", &inner); raw(String(a.minRequests))
            field("windowSeconds", &inner); raw(String(a.windowSeconds))
            bytes.append(UInt8(ascii: "}"))
        }
        if steps.isEmpty {
            if spec.mode == .concurrent { field("mirrorUnsafeMethods", &opened); raw(spec.mirrorUnsafeMethods ? "true" : "false") }
            field("mode", &opened); string(spec.mode.rawValue)
            if spec.mode == .gradual, let p = spec.percentageTransitionPerRequest { field("percentageTransitionPerRequest", &opened); number(p) }
            if spec.mode == .session, let t = spec.sessionTimeout { field("sessionTimeout", &opened); raw(String(t)) }
        } else {
            if steps.contains(where: { $0.mode.upgradeMode == .concurrent }) {
                field("mirrorUnsafeMethods", &opened); raw(spec.mirrorUnsafeMethods ? "true" : "false")
            }
            field("retireOld", &opened); raw(spec.rollout?.retireOld == true ? "true" : "false")
            field("steps", &opened)
            bytes.append(UInt8(ascii: "["))
            for (i, step) in steps.enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                key("holdSeconds", first: true); raw(String(step.holdSeconds))
                key("minRequests"); raw(String(step.minRequests))
                key("mode"); string(step.mode.name)
                switch step.mode {
                case .gradual(let percent): key("percent"); number(percent)
                case .concurrent(let serve): key("serve"); string(serve.rawValue)
                case .instant: break
                }
                bytes.append(UInt8(ascii: "}"))
            }
            bytes.append(UInt8(ascii: "]"))
        }
        bytes.append(UInt8(ascii: "}"))
    }

    /// A rollout progress object (snapshot entries).
    mutating func progress(_ p: RolloutProgress) {
        var opened = false
        if let percent = p.percent { field("percent", &opened); number(percent) }
        if let reason = p.reason { field("reason", &opened); string(reason) }
        field("state", &opened); string(p.phase.rawValue)
        field("step", &opened); raw(String(p.step))
        bytes.append(UInt8(ascii: "}"))
    }
}
