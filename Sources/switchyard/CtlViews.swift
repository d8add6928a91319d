/// The human views of `switchyard ctl`: pure functions from the API's parsed JSON to text,
/// so they are tested without a proxy.
enum CtlView {
    // MARK: JSON access

    static func object(_ value: Any?) -> [String: Any] { value as? [String: Any] ?? [:] }
    static func array(_ value: Any?) -> [Any] { value as? [Any] ?? [] }
    static func int(_ value: Any?) -> Int? {
        if let i = value as? Int { return i }
        if let d = value as? Double, d.isFinite { return Int(d) }
        return nil
    }
    static func double(_ value: Any?) -> Double? {
        if let d = value as? Double { return d }
        if let i = value as? Int { return Double(i) }
        return nil
    }
    static func string(_ value: Any?) -> String? {
        if let s = value as? String { return s }
        if let i = value as? Int { return String(i) }
        return nil
    }

    // MARK: status and watch

    /// `GET /status` as a summary line and a table of clusters. With `rates` (requests per
    /// second per cluster uuid, from two readings), a REQ/S column is added (`ctl watch`).
    /// A SERVICE column comes first when the clusters belong to more than one service.
    static func status(_ json: Any, rates: [String: Double]? = nil) -> String {
        let s = object(json)
        var summary = ["generation \(int(s["generation"]) ?? 0)",
                       "\(int(s["workers"]) ?? 0) workers",
                       "up \(CtlFormat.duration(int(s["uptimeSeconds"]) ?? 0))",
                       "\(CtlFormat.count(int(s["activeSessions"]) ?? 0)) open sessions",
                       "\(int(s["rollbacks"]) ?? 0) rollbacks",
                       (s["durableState"] as? Bool) == true ? "state durable" : "state in memory only"]
        if let latest = string(s["latest"]) { summary.append("latest \(latest)") }
        let services = Set(array(s["clusters"]).compactMap { string(object($0)["service"]) })
        let byService = services.count > 1
        var table = CtlTable(headers: (byService ? ["SERVICE"] : []) + ["UUID", "VERSION", "MODE", "STATE", "ROLLOUT", "REQUESTS"]
                                      + (rates == nil ? [] : ["REQ/S"]) + ["5XX", "ERRORS", "BACKENDS"])
        for entry in array(s["clusters"]) {
            let c = object(entry)
            let uuid = string(c["uuid"]) ?? "?"
            let responses = object(c["responses"])
            let total = ["1xx", "2xx", "3xx", "4xx", "5xx"].reduce(0) { $0 + (int(responses[$1]) ?? 0) }
            let errors = int(responses["5xx"]) ?? 0
            var mode = string(c["mode"]) ?? "-"
            if let threshold = int(c["gradualThreshold"]) { mode += " \(threshold) %" }
            var row = (byService ? [string(c["service"]) ?? "-"] : []) + [uuid, string(c["version"]) ?? "-", mode, string(c["state"]) ?? "-", rollout(c["rollout"]),
                       CtlFormat.count(int(c["requests"]) ?? 0)]
            if let rates { row.append(rates[uuid].map { CtlFormat.fixed($0, 1) } ?? "-") }
            row += [CtlFormat.count(errors), total == 0 ? "-" : CtlFormat.percent(Double(errors) / Double(total)),
                    backends(object(c["backends"]).mapValues { string(object($0)["status"]) ?? "unknown" })]
            table.rows.append(row)
        }
        let clusters = table.rows.isEmpty ? "no clusters" : table.render()
        return summary.joined(separator: "  ·  ") + "\n\n" + clusters
    }

    /// A rollout cell: `progressing 2/4 25 %`, `paused 1/3 5 %`, `completed`, or `-`.
    static func rollout(_ value: Any?) -> String {
        guard let r = value as? [String: Any] else { return "-" }
        var text = string(r["state"]) ?? "?"
        if let step = int(r["step"]), let steps = int(r["steps"]) { text += " \(step)/\(steps)" }
        if let percent = double(r["percent"]), text != "completed" { text += " \(CtlFormat.fixed(percent, percent.rounded() == percent ? 0 : 1)) %" }
        return text
    }

    /// A backends cell from each backend's status: `2 up`, `1 up, 1 drained`, `2 unchecked`.
    static func backends(_ statuses: [String: String]) -> String {
        guard !statuses.isEmpty else { return "-" }
        let order = ["up", "down", "drained", "unknown"]
        var counts: [String: Int] = [:]
        for status in statuses.values { counts[status, default: 0] += 1 }
        let names = counts.keys.sorted { (order.firstIndex(of: $0) ?? 9, $0) < (order.firstIndex(of: $1) ?? 9, $1) }
        return names.map { "\(counts[$0]!) \($0 == "unknown" ? "unchecked" : $0)" }.joined(separator: ", ")
    }

    /// Requests per second per cluster between two `/status` readings `seconds` apart.
    static func rates(previous: Any, current: Any, seconds: Double) -> [String: Double] {
        func requests(_ json: Any) -> [String: Int] {
            var out: [String: Int] = [:]
            for entry in array(object(json)["clusters"]) {
                let c = object(entry)
                if let uuid = string(c["uuid"]) { out[uuid] = int(c["requests"]) ?? 0 }
            }
            return out
        }
        let before = requests(previous)
        var out: [String: Double] = [:]
        guard seconds > 0 else { return out }
        for (uuid, now) in requests(current) {
            guard let then = before[uuid] else { continue }
            out[uuid] = Double(max(0, now - then)) / seconds
        }
        return out
    }

    // MARK: clusters

    /// `GET /configuration/cluster` (a list of `{"cluster": {…}}`) as a table.
    static func clusters(_ json: Any) -> String {
        var table = CtlTable(headers: ["UUID", "VERSION", "MODE", "STATE", "SERVERS", "BACKENDS", "ROLLOUT"])
        for entry in array(json) {
            let c = object(object(entry)["cluster"])
            let transition = object(c["upgradeTransition"])
            let steps = array(transition["steps"])
            let mode = steps.isEmpty ? (string(transition["mode"]) ?? (c["upgradeTransition"] == nil ? "INSTANT" : "-"))
                                     : "plan of \(steps.count) steps"
            let servers = array(c["servers"]).map { server -> String in
                let s = object(server)
                let host = string(s["hostname"]) ?? "?"
                return (host.contains(":") ? "[\(host)]" : host) + ":" + (string(s["port"]) ?? "?")
            }
            var state = string(c["state"]) ?? "-"
            if let reason = string(object(c["failure"])["reason"]) { state += " (\(reason))" }
            table.rows.append([string(c["uuid"]) ?? "?", string(c["version"]) ?? "-", mode, state,
                               servers.joined(separator: " "), backends(object(c["backends"]).compactMapValues { string($0) }),
                               rollout(c["rollout"])])
        }
        return table.rows.isEmpty ? "no clusters" : table.render()
    }

    // MARK: comparisons

    /// `GET /comparisons` as a summary line and a table of the newest comparisons (newest
    /// first); `divergentOnly` keeps the divergent ones.
    static func comparisons(_ json: Any, divergentOnly: Bool) -> String {
        let s = object(json)
        let total = int(s["total"]) ?? 0
        let divergent = int(s["divergent"]) ?? 0
        var summary = "\(CtlFormat.count(total)) compared, \(CtlFormat.count(divergent)) divergent"
        if total > 0 { summary += " (\(CtlFormat.percent(Double(divergent) / Double(total))))" }
        summary += ", \(CtlFormat.count(int(s["fallbacks"]) ?? 0)) served by the previous version"
        var table = CtlTable(headers: ["TIME", "METHOD", "TARGET", "STATUS", "LATENCY OLD/NEW", "DIFFERENCES"])
        table.textColumns.insert("LATENCY OLD/NEW")
        for entry in array(s["recent"]) {
            let r = object(entry)
            let divergentEntry = (r["divergent"] as? Bool) == true
            if divergentOnly && !divergentEntry { continue }
            let statuses = array(r["status"]).compactMap { int($0) }
            let latency = array(r["latencyMs"]).compactMap { double($0) }
            var time = string(r["time"]) ?? "-"
            if let t = time.firstIndex(of: "T") { time = String(time[time.index(after: t)...].prefix(8)) }
            table.rows.append([time, string(r["method"]) ?? "-", string(r["target"]) ?? "-",
                               statuses.count == 2 ? (statuses[0] == statuses[1] ? "\(statuses[0])" : "\(statuses[0])→\(statuses[1])") : "-",
                               latency.count == 2 ? "\(CtlFormat.fixed(latency[0], 1))/\(CtlFormat.fixed(latency[1], 1)) ms" : "-",
                               divergentEntry ? differences(r) : "none"])
        }
        return summary + "\n\n" + (table.rows.isEmpty ? (divergentOnly ? "no divergent comparisons kept" : "no comparisons kept") : table.render())
    }

    /// What differed in one comparison: `status, body at byte 120, headers x-a`.
    static func differences(_ r: [String: Any]) -> String {
        var parts: [String] = []
        let statuses = array(r["status"]).compactMap { int($0) }
        if statuses.count == 2 && statuses[0] != statuses[1] { parts.append("status") }
        if (r["bodyDigestEqual"] as? Bool) == false && (r["bodyIgnored"] as? Bool) != true {
            parts.append(int(r["firstDifferenceOffset"]).map { "body at byte \($0)" } ?? "body")
        }
        let headers = array(r["headerDifferences"]).compactMap { string($0) }
        if !headers.isEmpty { parts.append("headers " + headers.joined(separator: " ")) }
        if (object(r["old"])["complete"] as? Bool) != (object(r["new"])["complete"] as? Bool) { parts.append("completeness") }
        return parts.isEmpty ? "yes" : parts.joined(separator: ", ")
    }
}
