/// Where the control plane's state survives restarts. The registry applies changes in this
/// order: validate → `append` (durable when it returns) → apply → publish a snapshot; so
/// an implementation shared by a fleet (etcd) can be added without touching the API or the
/// reactors. All calls come from the control-plane thread.
public protocol StateStore: AnyObject {
    /// Reads what the store holds. `state` is nil when it holds nothing yet (then the
    /// configuration file seeds it with `compact`). Throws `StoreError.corrupt` for damage
    /// that must not be skipped; a torn last record is dropped and reported in `warnings`.
    func load() throws(StoreError) -> (state: StoredState?, warnings: [String])
    /// Makes one change durable; `sequence` is the state's sequence number after it.
    /// Returns only once the change would survive a crash.
    func append(_ change: StateChange, sequence: UInt64) throws(StoreError)
    /// Replaces everything stored by `state` (which includes every appended change).
    func compact(_ state: StoredState) throws(StoreError)
    /// True when enough has been appended since the last compaction that one is worthwhile.
    var wantsCompaction: Bool { get }
}

/// A state store that cannot be used.
public enum StoreError: Error, CustomStringConvertible, Equatable {
    /// A file is damaged before its end: refuse to start (`--reset-state` moves it aside).
    case corrupt(path: String, offset: Int, reason: String)
    /// Another process holds the state directory.
    case locked(path: String)
    /// A system call failed.
    case io(path: String, call: String, errno: Int32)
    /// A shared store (etcd) changed since the state the change was checked against: another
    /// instance wrote first (the API answers 409; nothing was written).
    case conflict(String)
    /// A shared store (etcd) cannot be reached (the API answers 503; nothing was written).
    case unavailable(String)

    public var description: String {
        switch self {
        case .corrupt(let path, let offset, let reason): "\(path): \(reason) at byte \(offset)"
        case .locked(let path): "\(path) is in use by another switchyard process"
        case .io(let path, let call, let errno): "\(path): \(call): \(errorText(errno))"
        case .conflict(let message), .unavailable(let message): message
        }
    }
}
