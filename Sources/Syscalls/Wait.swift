#if canImport(Glibc)
import Glibc
#endif

extension Socket {
    /// Waits until `fd` is readable (or writable when `writable`), at most `timeoutMillis`
    /// milliseconds. Returns false on time-out. For threads that talk to one peer at a time
    /// outside the reactors (the etcd client); `EINTR` restarts the wait with the full time-out.
    /// The corresponding C function is `poll`.
    public static func wait(_ fd: Int32, writable: Bool, timeoutMillis: Int32) -> Bool {
        var entry = pollfd(fd: fd, events: Int16(writable ? POLLOUT : POLLIN), revents: 0)
        while true {
            let rc = Glibc.poll(&entry, 1, timeoutMillis)
            if rc > 0 { return true }
            if rc == 0 { return false }
            if Glibc.errno != EINTR { return true }   // the next read or write reports the error
        }
    }
}
