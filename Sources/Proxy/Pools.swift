import Observability
import Syscalls

/// A kernel pipe used to splice one body: its two ends, its capacity, and how many bytes
/// sit in it right now (the kernel does not say, so the owner keeps count).
final class Pipe {
    let readFD: Int32
    let writeFD: Int32
    let capacity: Int
    /// Bytes spliced in and not yet spliced out.
    var count = 0

    init(size: Int) throws(SyscallError) {
        let made = try Splice.makePipe(size: size)
        readFD = made.read
        writeFD = made.write
        capacity = made.capacity
    }

    func close() {
        Socket.close(readFD)
        Socket.close(writeFD)
    }
}

/// Per-worker pools of session buffers and pipes. Buffers are held only while a session
/// has unconsumed bytes or an exchange in flight; pipes only while a body is spliced, so
/// their number follows active transfers, not connections.
final class ResourcePools {
    private var buffers: [ByteBuffer] = []
    private var pipes: [Pipe] = []
    private let bufferSize: Int
    private let pipeSize: Int
    private let counters: CounterBlock
    /// Buffers and pipes handed out and not yet returned (tests check these return to 0).
    private(set) var buffersOut = 0
    private(set) var pipesOut = 0
    static let maxPooledBuffers = 1024
    static let maxPooledPipes = 64
    /// Size of the scratch buffers below: a read of a drained body, or of the served bytes it
    /// is compared with, moves up to this much per call.
    static let scratchSize = 262144
    /// Where a drained response's body is read to be compared and dropped, and where the
    /// served bytes it is compared with are read from the comparison's pipe. Shared by the
    /// worker's comparisons: each use fills and empties it within one call.
    private(set) lazy var drainScratch = ByteBuffer(capacity: Self.scratchSize)
    private(set) lazy var backlogScratch = ByteBuffer(capacity: Self.scratchSize)

    init(bufferSize: Int, pipeSize: Int, counters: CounterBlock) {
        self.bufferSize = bufferSize
        self.pipeSize = pipeSize
        self.counters = counters
    }

    func takeBuffer() -> ByteBuffer {
        buffersOut += 1
        if let buffer = buffers.popLast() { return buffer }
        return ByteBuffer(capacity: bufferSize)
    }

    func giveBack(_ buffer: ByteBuffer) {
        buffersOut -= 1
        buffer.clear()
        if buffers.count < Self.maxPooledBuffers { buffers.append(buffer) }
    }

    func takePipe() throws(SyscallError) -> Pipe {
        let pipe: Pipe
        if let pooled = pipes.popLast() { pipe = pooled } else { pipe = try Pipe(size: pipeSize) }
        pipesOut += 1
        counters.add(ProxyCounter.pipesInUse)
        return pipe
    }

    /// Returns a pipe; one still holding bytes (after an error) is closed, never reused.
    func giveBack(_ pipe: Pipe) {
        pipesOut -= 1
        counters.add(ProxyCounter.pipesInUse, -1)
        if pipe.count == 0 && pipes.count < Self.maxPooledPipes {
            pipes.append(pipe)
        } else {
            pipe.close()
        }
    }

    func closeAll() {
        for pipe in pipes { pipe.close() }
        pipes.removeAll()
        buffers.removeAll()
    }
}
