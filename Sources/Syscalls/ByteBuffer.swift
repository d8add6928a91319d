/// A fixed-capacity byte buffer with a read index and a write index, the one owner of
/// its memory. Reads from a socket land between `writerIndex` and `capacity`; parsed bytes
/// are consumed from `readerIndex`. Used for heads and small body remainders; bodies
/// otherwise move through pipes.
public final class ByteBuffer {
    private let storage: UnsafeMutableRawBufferPointer
    /// First unconsumed byte.
    public private(set) var readerIndex = 0
    /// One past the last byte written.
    public private(set) var writerIndex = 0

    /// Allocates `capacity` bytes.
    public init(capacity: Int) {
        storage = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit { storage.deallocate() }

    /// Total size.
    public var capacity: Int { storage.count }
    /// Unconsumed bytes.
    public var readableCount: Int { writerIndex - readerIndex }
    /// Room left after `writerIndex`.
    public var writableCount: Int { storage.count - writerIndex }

    /// The unconsumed bytes (valid until the buffer is next changed).
    @inline(__always)
    public var readable: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: storage[readerIndex..<writerIndex])
    }

    /// Marks `count` bytes as consumed; resets both indices when the buffer empties.
    @inline(__always)
    public func consume(_ count: Int) {
        precondition(count <= readableCount)
        readerIndex += count
        if readerIndex == writerIndex { readerIndex = 0; writerIndex = 0 }
    }

    /// Moves unconsumed bytes to the front so reads have the most room.
    public func compact() {
        guard readerIndex > 0 else { return }
        let n = readableCount
        if n > 0 {
            storage.baseAddress!.copyMemory(from: storage.baseAddress! + readerIndex, byteCount: n)
        }
        readerIndex = 0
        writerIndex = n
    }

    /// Empties the buffer.
    public func clear() { readerIndex = 0; writerIndex = 0 }

    /// Reads from `fd` into the free space: bytes read (0 = end of stream) or `.wouldBlock`.
    @inline(__always)
    public func read(from fd: Int32, limit: Int = .max) throws(SyscallError) -> IOResult<Int> {
        let space = UnsafeMutableRawBufferPointer(rebasing: storage[writerIndex..<min(storage.count, writerIndex + min(limit, storage.count))])
        let result = try Socket.read(fd, into: space)
        if case .done(let n) = result { writerIndex += n }
        return result
    }

    /// Writes up to `limit` unconsumed bytes to `fd`, consuming what was written.
    @inline(__always)
    public func write(to fd: Int32, limit: Int = .max) throws(SyscallError) -> IOResult<Int> {
        let n = min(limit, readableCount)
        let result = try Socket.write(fd, from: UnsafeRawBufferPointer(rebasing: storage[readerIndex..<readerIndex + n]))
        if case .done(let written) = result { consume(written) }
        return result
    }

    /// Lets `body` write into the free space after `writerIndex` (for producers that are not a
    /// descriptor, such as a TLS connection's decrypted bytes); `body` returns how many bytes
    /// it wrote, which become readable, and a result that is passed on.
    @inline(__always)
    public func fill<Result>(_ body: (UnsafeMutableRawBufferPointer) -> (written: Int, result: Result)) -> Result {
        let (written, result) = body(UnsafeMutableRawBufferPointer(rebasing: storage[writerIndex..<storage.count]))
        precondition(written >= 0 && written <= writableCount)
        writerIndex += written
        return result
    }

    /// Appends bytes (fails with false when they do not fit).
    public func append(_ bytes: [UInt8]) -> Bool {
        guard bytes.count <= writableCount else { return false }
        bytes.withUnsafeBytes { src in
            UnsafeMutableRawBufferPointer(rebasing: storage[writerIndex..<writerIndex + src.count]).copyMemory(from: src)
        }
        writerIndex += bytes.count
        return true
    }

    /// The unconsumed bytes as an array (tests and slow paths only).
    public func readableBytes() -> [UInt8] { Array(readable) }
}
