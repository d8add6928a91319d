/// A configuration or API body that cannot be used, with the field at fault.
///
/// `description` is one line: `"<field>: <message>"`, e.g.
/// `cluster.servers[1].port: must be an integer between 1 and 65535`.
public struct ConfigError: Error, CustomStringConvertible, Equatable, Sendable {
    /// Path of the offending field (`cluster.servers[1].port`), or `"json"`
    /// for syntax errors.
    public var field: String
    /// What is wrong, lower case, no trailing period.
    public var message: String

    /// Creates an error for `field`.
    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    /// `"<field>: <message>"`.
    public var description: String { "\(field): \(message)" }
}
