#if canImport(Glibc)
import Glibc
#endif

/// The embedded state store: a directory holding
/// - `snapshot`: the whole state at one sequence number, replaced atomically (write
///   `snapshot.tmp`, fsync, rename, fsync the directory);
/// - `journal`: the changes after it, appended and fsynced one record at a time;
/// - a `flock` on the directory itself, so two processes never share it.
///
/// Load reads the snapshot, then replays the journal records with a higher sequence number
/// (a crash between writing a snapshot and emptying the journal leaves records the snapshot
/// already holds; they are skipped, not applied twice).
public final class JournalStore: StateStore {
    public static let journalHeader = Array("SWYJRNL1".utf8)
    public static let snapshotHeader = Array("SWYSNAP1".utf8)

    /// The state directory.
    public let directory: String
    public var journalPath: String { directory + "/journal" }
    public var snapshotPath: String { directory + "/snapshot" }

    private var lockFD: Int32 = -1
    private var journalFD: Int32 = -1
    /// Journal records written since the last compaction (or found at load).
    public private(set) var recordsSinceCompaction = 0
    /// Journal bytes beyond the header.
    public private(set) var journalBytes = 0
    /// fsync calls made so far (for measurements and tests).
    public private(set) var fsyncCount = 0
    /// Compaction once the journal holds this many records or bytes.
    public var compactAfterRecords = 1000
    public var compactAfterBytes = 1 << 20

    /// Opens (creating it if needed) and locks the directory. Throws `.locked` when another
    /// process holds it, `.io` when it cannot be created or opened.
    public init(directory: String) throws(StoreError) {
        var dir = directory
        while dir.count > 1 && dir.hasSuffix("/") { dir.removeLast() }
        self.directory = dir
        if mkdir(dir, 0o700) != 0 && errno != EEXIST { throw .io(path: dir, call: "mkdir", errno: errno) }
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(path: dir, call: "open", errno: errno) }
        // A lock held for an instant is let go: a process exiting as its successor starts, or
        // a forked child between fork and exec (it holds a copy of the descriptor until exec
        // closes it). Half a second of retries covers both; a live owner is refused after it.
        var attempts = 0
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let e = errno
            if e == EINTR { continue }
            if e == EWOULDBLOCK && attempts < 50 {
                attempts += 1
                usleep(10_000)
                continue
            }
            close(fd)
            if e == EWOULDBLOCK { throw .locked(path: dir) }
            throw .io(path: dir, call: "flock", errno: e)
        }
        lockFD = fd
    }

    /// Takes over a directory whose locked descriptor a predecessor process passed on at a
    /// self-upgrade: a `flock` belongs to the open file, so the lock came with it.
    public init(directory: String, lockedDescriptor fd: Int32) {
        var dir = directory
        while dir.count > 1 && dir.hasSuffix("/") { dir.removeLast() }
        self.directory = dir
        lockFD = fd
    }

    /// The directory's locked descriptor (handed to a successor process; the lock goes with it).
    public var lockDescriptor: Int32 { lockFD }

    deinit {
        if journalFD >= 0 { close(journalFD) }
        if lockFD >= 0 { close(lockFD) }
    }

    public var wantsCompaction: Bool {
        recordsSinceCompaction >= compactAfterRecords || journalBytes >= compactAfterBytes
    }

    public func load() throws(StoreError) -> (state: StoredState?, warnings: [String]) {
        var warnings: [String] = []
        var state: StoredState?
        if let bytes = try readFile(snapshotPath) {
            let scan: Frames.Scan
            do {
                scan = try Frames.scan(bytes, header: Self.snapshotHeader)
            } catch {
                throw .corrupt(path: snapshotPath, offset: error.offset, reason: error.reason)
            }
            // The snapshot is renamed into place only once complete: any tear is damage.
            if let torn = scan.tornTail { throw .corrupt(path: snapshotPath, offset: torn.offset, reason: torn.reason) }
            guard scan.records.count == 1, let record = scan.records.first else {
                throw .corrupt(path: snapshotPath, offset: Frames.headerLength, reason: "expected one snapshot record, found \(scan.records.count)")
            }
            do {
                state = try Records.decodeSnapshot(record.payload)
            } catch {
                throw .corrupt(path: snapshotPath, offset: record.offset, reason: error.description)
            }
        }
        var validLength = 0
        if let bytes = try readFile(journalPath) {
            let scan: Frames.Scan
            do {
                scan = try Frames.scan(bytes, header: Self.journalHeader)
            } catch {
                throw .corrupt(path: journalPath, offset: error.offset, reason: error.reason)
            }
            if let torn = scan.tornTail {
                warnings.append("\(journalPath): dropped an incomplete record at byte \(torn.offset) (\(torn.reason)); it was never acknowledged")
            }
            for record in scan.records {
                let decoded: (sequence: UInt64, change: StateChange)
                do {
                    decoded = try Records.decode(record.payload)
                } catch {
                    throw .corrupt(path: journalPath, offset: record.offset, reason: error.description)
                }
                var s = state ?? StoredState()
                guard decoded.sequence > s.sequence else { continue }
                s.apply(decoded.change)
                s.sequence = decoded.sequence
                state = s
            }
            validLength = scan.validLength
            recordsSinceCompaction = scan.records.count
            journalBytes = max(0, validLength - Frames.headerLength)
        }
        try openJournal(truncatingTo: validLength)
        return (state, warnings)
    }

    public func append(_ change: StateChange, sequence: UInt64) throws(StoreError) {
        if journalFD < 0 { try openJournal(truncatingTo: 0) }
        let record = Frames.frame(Records.encode(change, sequence: sequence))
        try writeAll(journalFD, record, path: journalPath)
        try sync(journalFD, path: journalPath)
        recordsSinceCompaction += 1
        journalBytes += record.count
    }

    public func compact(_ state: StoredState) throws(StoreError) {
        let tmp = snapshotPath + ".tmp"
        try writeFileAtomically(tmp, to: snapshotPath, Self.snapshotHeader + Frames.frame(Records.encodeSnapshot(state)))
        // The snapshot now holds everything; start an empty journal the same way, so that a
        // crash at any point leaves either the old journal (skipped by sequence) or the new.
        let jtmp = journalPath + ".tmp"
        try writeFileAtomically(jtmp, to: journalPath, Self.journalHeader)
        if journalFD >= 0 { close(journalFD) }
        journalFD = -1
        try openJournal(truncatingTo: Frames.headerLength)
        recordsSinceCompaction = 0
        journalBytes = 0
    }

    /// Moves the state files aside (`--reset-state`): renames them to `<name>.bad-<unix time>`
    /// and returns the new names.
    public func moveAside(now: Int64) throws(StoreError) -> [String] {
        if journalFD >= 0 { close(journalFD); journalFD = -1 }
        var moved: [String] = []
        for path in [snapshotPath, journalPath] where access(path, F_OK) == 0 {
            let target = "\(path).bad-\(now)"
            guard rename(path, target) == 0 else { throw .io(path: path, call: "rename", errno: errno) }
            moved.append(target)
        }
        try syncDirectory()
        return moved
    }

    // MARK: Files

    /// Opens the journal for appending, creating it with its header, and cuts it to
    /// `length` bytes (dropping a torn record so that new records follow intact ones).
    private func openJournal(truncatingTo length: Int) throws(StoreError) {
        let fd = open(journalPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io(path: journalPath, call: "open", errno: errno) }
        journalFD = fd
        if length < Frames.headerLength {
            guard ftruncate(fd, 0) == 0 else { throw .io(path: journalPath, call: "ftruncate", errno: errno) }
            guard lseek(fd, 0, SEEK_SET) >= 0 else { throw .io(path: journalPath, call: "lseek", errno: errno) }
            try writeAll(fd, Self.journalHeader, path: journalPath)
            try sync(fd, path: journalPath)
            try syncDirectory()
        } else {
            let size = lseek(fd, 0, SEEK_END)
            if size != off_t(length) {
                guard ftruncate(fd, off_t(length)) == 0 else { throw .io(path: journalPath, call: "ftruncate", errno: errno) }
                try sync(fd, path: journalPath)
            }
            guard lseek(fd, 0, SEEK_END) >= 0 else { throw .io(path: journalPath, call: "lseek", errno: errno) }
        }
    }

    private func writeFileAtomically(_ tmp: String, to path: String, _ bytes: [UInt8]) throws(StoreError) {
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io(path: tmp, call: "open", errno: errno) }
        do {
            try writeAll(fd, bytes, path: tmp)
            try sync(fd, path: tmp)
        } catch {
            close(fd)
            throw error
        }
        close(fd)
        guard rename(tmp, path) == 0 else { throw .io(path: path, call: "rename", errno: errno) }
        try syncDirectory()
    }

    private func syncDirectory() throws(StoreError) {
        try sync(lockFD, path: directory)
    }

    private func sync(_ fd: Int32, path: String) throws(StoreError) {
        fsyncCount += 1
        guard fsync(fd) == 0 else { throw .io(path: path, call: "fsync", errno: errno) }
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(StoreError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(path: path, call: "write", errno: errno)
            }
            offset += n
        }
    }

    /// The whole file, or nil when it does not exist.
    private func readFile(_ path: String) throws(StoreError) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw .io(path: path, call: "open", errno: errno)
        }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(path: path, call: "read", errno: errno)
            }
            if n == 0 { return out }
            out += chunk[0..<n]
        }
    }
}

func errorText(_ code: Int32) -> String {
    String(cString: strerror(code))
}
