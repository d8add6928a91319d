import COpenSSL
import Synchronization

/// Session ticket keys, in memory only: the current key encrypts new tickets; it and the one
/// before it decrypt, so a ticket stays good for between one and two rotation periods (one
/// under the previous key resumes and gets a fresh ticket). Shared by the contexts a listener
/// makes, so a certificate reload does not end resumption.
public final class TicketKeys: @unchecked Sendable {
    let keys: UnsafeMutablePointer<sy_ticket_keys>
    private let count = Atomic<Int>(0)

    /// Draws the first key; nil when OpenSSL's random generator fails.
    public init?() {
        guard let keys = sy_ticket_keys_new() else { return nil }
        self.keys = keys
    }

    deinit { sy_ticket_keys_free(keys) }

    /// Replaces the current key with a new random one (the current one becomes the previous).
    /// Safe from any thread. Returns false when no random key could be drawn.
    @discardableResult
    public func rotate() -> Bool {
        guard sy_ticket_keys_rotate(keys) == 1 else { return false }
        count.add(1, ordering: .relaxed)
        return true
    }

    /// How many times the keys were rotated.
    public var rotations: Int { count.load(ordering: .relaxed) }
}
