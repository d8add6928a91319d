import Foundation

/// Committed throughput ratios for the CI guard (`Benchmarks/baseline.json`): per payload, INSTANT
/// to direct and every other mode to INSTANT, with the machine and date they were measured on.
///
/// Ratios, not absolute figures, because the guard runs on shared machines of unknown speed: a
/// ratio measured within one interleaved run cancels most of the machine's speed and its drift.
/// The guard fails when a ratio falls below `maxDrop` (default half) of its baseline: a 2x
/// regression of one mode on either payload trips it, the few-percent noise of a shared machine
/// does not.
public struct Baseline: Equatable, Sendable {
    /// Payload key (`/`, `/big`, `/ close`) → ratio name (`instant/direct`, `concurrent/instant`, …) → value.
    public var ratios: [String: [String: Double]] = [:]
    /// Where and when: `machine`, `date`, `command`.
    public var measured: [String: String] = [:]

    public init() {}

    /// Reads a baseline file.
    public static func load(_ path: String) throws(BenchUsageError) -> Baseline {
        guard let data = FileManager.default.contents(atPath: path) else { throw BenchUsageError("cannot read baseline \(path)") }
        return try parse(data, name: path)
    }

    static func parse(_ data: Data, name: String) throws(BenchUsageError) -> Baseline {
        guard let object = try? JSONSerialization.jsonObject(with: data), let root = object as? [String: Any],
              let ratios = root["ratios"] as? [String: Any] else {
            throw BenchUsageError("baseline \(name): not a JSON object with \"ratios\"")
        }
        var b = Baseline()
        for (payload, value) in ratios {
            guard let entries = value as? [String: Any] else { throw BenchUsageError("baseline \(name): ratios[\"\(payload)\"] is not an object") }
            var parsed: [String: Double] = [:]
            for (ratio, x) in entries {
                guard let number = x as? NSNumber, number.doubleValue > 0, number.doubleValue.isFinite else {
                    throw BenchUsageError("baseline \(name): ratios[\"\(payload)\"][\"\(ratio)\"] is not a positive number")
                }
                parsed[ratio] = number.doubleValue
            }
            b.ratios[payload] = parsed
        }
        if let measured = root["measured"] as? [String: Any] {
            for (k, v) in measured { b.measured[k] = "\(v)" }
        }
        return b
    }

    /// The file's text: sorted keys, ratios rounded to 3 decimals.
    public func text() -> String {
        func rounded(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }
        let object: [String: Any] = [
            "format": 1,
            "measured": measured,
            "ratios": ratios.mapValues { $0.mapValues(rounded) },
            "guard": "switchyard-bench compare --baseline FILE fails when a ratio measured in one run falls below --max-drop (default 0.5) times the value here",
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// This machine, for the `measured` record: CPU model, CPU count, kernel.
    public static func machineDescription() -> String {
        var model = "unknown CPU"
        if let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
           let colon = line.firstIndex(of: ":") {
            model = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var kernel = ""
        if let release = try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8) {
            kernel = ", Linux " + release.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return "\(model), \(ProcessInfo.processInfo.activeProcessorCount) CPUs\(kernel)"
    }

    /// One guarded ratio: what was measured against what is committed.
    public struct Check: Equatable, Sendable {
        public var name: String
        public var measured: Double?
        public var baseline: Double
        public var bound: Double
        public var passed: Bool { (measured ?? 0) >= bound }
    }

    /// Checks `measured` ratios against this baseline's entries for `payload`; every committed
    /// ratio must have been measured (a mode missing from the run fails).
    public func check(payload: String, measured: [String: Double], maxDrop: Double) -> [Check] {
        (ratios[payload] ?? [:]).keys.sorted(by: Self.order).map { name in
            let base = ratios[payload]![name]!
            return Check(name: name, measured: measured[name], baseline: base, bound: base * maxDrop)
        }
    }

    /// INSTANT to direct first, then the modes in the tables' order.
    static func order(_ a: String, _ b: String) -> Bool {
        let rank = ["instant/direct", "session/instant", "gradual/instant", "concurrent/instant"]
        return (rank.firstIndex(of: a) ?? rank.count, a) < (rank.firstIndex(of: b) ?? rank.count, b)
    }
}
