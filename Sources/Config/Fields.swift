import Foundation

/// Typed access to the fields of one JSON object, with errors that name the
/// field by its full path. Every read marks the key as known; `rejectUnknown`
/// then reports the first key nobody asked for, so typos do not pass silently.
struct Fields {
    let object: [String: Any]
    let path: String
    private(set) var known: [String] = []

    init(_ object: [String: Any], path: String) {
        self.object = object
        self.path = path
    }

    /// Full path of a key under this object.
    func pathOf(_ key: String) -> String { path.isEmpty ? key : path + "." + key }

    func fail(_ key: String, _ message: String) -> ConfigError {
        ConfigError(field: pathOf(key), message: message)
    }

    /// The raw value, or nil when absent or JSON `null`.
    mutating func raw(_ key: String) -> Any? {
        known.append(key)
        guard let v = object[key], !(v is NSNull) else { return nil }
        return v
    }

    mutating func string(_ key: String) throws(ConfigError) -> String? {
        guard let v = raw(key) else { return nil }
        guard let s = v as? String else { throw fail(key, "must be a string") }
        return s
    }

    mutating func bool(_ key: String) throws(ConfigError) -> Bool? {
        guard let v = raw(key) else { return nil }
        guard let b = boolValue(v) else { throw fail(key, "must be true or false") }
        return b
    }

    /// An integer in `range`; `what` completes "must be an integer …".
    mutating func int(_ key: String, in range: ClosedRange<Int>) throws(ConfigError) -> Int? {
        guard let v = raw(key) else { return nil }
        guard let i = intValue(v), range.contains(i) else {
            throw fail(key, "must be an integer between \(range.lowerBound) and \(range.upperBound)")
        }
        return i
    }

    /// A number in `(lower, upper]`.
    mutating func number(_ key: String, above lower: Double, atMost upper: Double) throws(ConfigError) -> Double? {
        guard let v = raw(key) else { return nil }
        guard let d = doubleValue(v), d > lower, d <= upper else {
            throw fail(key, "must be a number greater than \(format(lower)) and at most \(format(upper))")
        }
        return d
    }

    /// A number in `range` (both ends included).
    mutating func number(_ key: String, in range: ClosedRange<Double>) throws(ConfigError) -> Double? {
        guard let v = raw(key) else { return nil }
        guard let d = doubleValue(v), range.contains(d) else {
            throw fail(key, "must be a number between \(format(range.lowerBound)) and \(format(range.upperBound))")
        }
        return d
    }

    /// One of the raw values of `E`, spelled exactly.
    mutating func choice<E: RawRepresentable & CaseIterable>(_ key: String, of type: E.Type) throws(ConfigError) -> E?
    where E.RawValue == String {
        guard let v = raw(key) else { return nil }
        guard let s = v as? String, let value = E(rawValue: s) else {
            throw fail(key, "must be one of: " + E.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "))
        }
        return value
    }

    mutating func object(_ key: String) throws(ConfigError) -> Fields? {
        guard let v = raw(key) else { return nil }
        guard let o = v as? [String: Any] else { throw fail(key, "must be an object") }
        return Fields(o, path: pathOf(key))
    }

    /// Throws for the first key (in sorted order, so the error is stable)
    /// that no read asked for.
    func rejectUnknown() throws(ConfigError) {
        for key in object.keys.sorted() where !known.contains(key) {
            let expected = Set(known).sorted().joined(separator: ", ")
            throw fail(key, "unknown field (expected one of: \(expected))")
        }
    }
}

func format(_ d: Double) -> String {
    d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
}

/// A Bool, not a number that happens to be 0 or 1.
func boolValue(_ v: Any) -> Bool? {
    if let n = v as? NSNumber, !(v is Bool) {
        // JSONSerialization output: only CFBoolean-backed numbers are booleans.
        return String(cString: n.objCType) == "c" ? n.boolValue : nil
    }
    return v as? Bool
}

/// An exact integer: Int, or an integral Double in Int range; never a Bool.
func intValue(_ v: Any) -> Int? {
    if v is Bool { return nil }
    if let i = v as? Int { return i }
    if let d = (v as? Double) ?? (v as? JSONNumber)?.value, d == d.rounded(), abs(d) < 9.0e15 { return Int(d) }
    return nil
}

/// Any finite number; never a Bool.
func doubleValue(_ v: Any) -> Double? {
    if v is Bool { return nil }
    if let i = v as? Int { return Double(i) }
    if let d = (v as? Double) ?? (v as? JSONNumber)?.value, d.isFinite { return d }
    return nil
}
