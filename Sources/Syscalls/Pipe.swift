import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// Kernel pipes and the zero-copy calls that move bytes through them.
public enum Splice {
    /// Creates a non-blocking pipe and sizes it (`F_SETPIPE_SZ`; the kernel may round up,
    /// and an unprivileged process is capped by /proc/sys/fs/pipe-max-size).
    /// Returns (read end, write end, capacity in bytes).
    public static func makePipe(size: Int) throws(SyscallError) -> (read: Int32, write: Int32, capacity: Int) {
        var fds: [Int32] = [0, 0]
        _ = try syscallNonBlocking("pipe2") { cl_pipe(&fds) }
        var capacity = Int(cl_set_pipe_size(fds[1], Int32(size)))
        if capacity < 0 { capacity = Int(cl_get_pipe_size(fds[1])) }
        return (fds[0], fds[1], capacity)
    }

    /// Moves up to `count` bytes from `source` to `destination` without copying them
    /// through user space; one side must be a pipe. Returns bytes moved (0 = end of stream)
    /// or `.wouldBlock`, which for a socket→pipe move means the socket is empty *or* the pipe
    /// is full — the caller tells them apart by what it knows of the pipe.
    /// The corresponding C function is `splice`.
    @inline(__always)
    public static func move(from source: Int32, to destination: Int32, count: Int, more: Bool = false) throws(SyscallError) -> IOResult<Int> {
        try syscall("splice") { cl_splice(source, destination, count, more ? 1 : 0) }
    }

    /// Duplicates up to `count` bytes from one pipe into another without consuming them.
    /// The corresponding C function is `tee`.
    @inline(__always)
    public static func duplicate(from source: Int32, to destination: Int32, count: Int) throws(SyscallError) -> IOResult<Int> {
        try syscall("tee") { cl_tee(source, destination, count) }
    }
}

/// Process-wide settings made once at start.
public enum Process {
    /// Raises the open-file soft limit to the hard limit; returns the new limit.
    public static func raiseFileLimit() -> Int { Int(cl_raise_nofile_limit()) }
    /// Makes writes to closed sockets return EPIPE instead of killing the process.
    public static func ignoreSIGPIPE() { cl_ignore_sigpipe() }
    /// Resident set size in bytes.
    public static func residentBytes() -> Int { Int(cl_rss_bytes()) }
    /// Number of open file descriptors (entries in /proc/self/fd).
    public static func openDescriptorCount() -> Int {
        guard let dir = opendir("/proc/self/fd") else { return -1 }
        defer { closedir(dir) }
        var count = 0
        while readdir(dir) != nil { count += 1 }
        return count - 3 // ".", ".." and the directory's own descriptor
    }
    /// Online CPUs.
    public static func onlineCPUs() -> Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
}

/// Monotonic time.
public enum Clock {
    /// Nanoseconds since an arbitrary fixed point (CLOCK_MONOTONIC).
    @inline(__always)
    public static func nanoseconds() -> UInt64 { cl_monotonic_ns() }
    /// Seconds since the Unix epoch (wall clock).
    public static func unixSeconds() -> Int64 { Int64(time(nil)) }
    /// Milliseconds since the Unix epoch (wall clock).
    public static func unixMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}
