import Foundation

/// The names of a hosts(5) file: each line is an IP address followed by one or more names;
/// `#` starts a comment. A name listed on several lines stands for all their addresses, in
/// file order. Names compare without case.
public struct HostsFile: Sendable, Equatable {
    /// Lower-cased name → its addresses (IP literals as written), in file order, no repeats.
    public private(set) var names: [String: [String]] = [:]

    /// Parses the text of a hosts file. Lines whose first word is not an IP address are
    /// skipped (as the C library does).
    public init(text: String) {
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let content = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words = content.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count >= 2, Self.isIPLiteral(words[0]) else { continue }
            let address = String(words[0])
            for name in words.dropFirst() {
                let key = name.lowercased()
                if !(names[key]?.contains(address) ?? false) { names[key, default: []].append(address) }
            }
        }
    }

    /// The addresses listed for `name` (empty when the file does not name it).
    public func addresses(of name: String) -> [String] { names[name.lowercased()] ?? [] }

    /// Whether `word` is an IPv4 or IPv6 address literal.
    static func isIPLiteral(_ word: Substring) -> Bool {
        if word.contains(":") { return word.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." || $0 == "%" } }
        let parts = word.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { p in !p.isEmpty && p.count <= 3 && p.allSatisfy(\.isASCII) && Int(p).map { $0 <= 255 } == true }
    }
}

/// Resolver settings from the configuration's top-level `"resolver"` object.
public struct ResolverSettings: Sendable, Equatable {
    /// Seconds between re-resolutions of backend names (0: never re-resolved).
    public var resolveSeconds: Double
    /// A hosts(5) file looked up before the system resolver (read again on each resolution).
    public var hostsFile: String?

    /// The defaults: every 30 seconds, no hosts file.
    public init(resolveSeconds: Double = 30, hostsFile: String? = nil) {
        self.resolveSeconds = resolveSeconds
        self.hostsFile = hostsFile
    }
}

extension HostsFile {
    /// The file at `path` parsed; empty when it cannot be read.
    public init(path: String) {
        guard let data = FileManager.default.contents(atPath: path) else {
            self.init(text: "")
            return
        }
        self.init(text: String(decoding: data, as: UTF8.self))
    }
}
