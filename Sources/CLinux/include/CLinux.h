// CLinux: the Linux calls and constants that Swift's Glibc module does not
// export (epoll, splice, tee, pipe2, accept4, eventfd, pipe sizing). Every
// function is a thin pass-through: errors come back as -1 with errno set,
// exactly like the call it wraps. Swift code never includes these headers.
#ifndef SWITCHYARD_CLINUX_H
#define SWITCHYARD_CLINUX_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>

// epoll(7). Events are returned unpacked (struct epoll_event is packed on
// x86_64, which Swift does not lay out reliably): data[i] and events[i].
int cl_epoll_create(void);
int cl_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
int cl_epoll_wait(int epfd, uint64_t *data, uint32_t *events, int max, int timeout_ms);

extern const int CL_EPOLL_CTL_ADD;
extern const int CL_EPOLL_CTL_MOD;
extern const int CL_EPOLL_CTL_DEL;
extern const uint32_t CL_EPOLLIN;
extern const uint32_t CL_EPOLLOUT;
extern const uint32_t CL_EPOLLERR;
extern const uint32_t CL_EPOLLHUP;
extern const uint32_t CL_EPOLLRDHUP;
extern const uint32_t CL_EPOLLET;

// eventfd(2), non-blocking and close-on-exec.
int cl_eventfd(void);

// accept4(2) with SOCK_NONBLOCK|SOCK_CLOEXEC.
int cl_accept(int fd, struct sockaddr *addr, socklen_t *len);

// socket(2) with SOCK_NONBLOCK|SOCK_CLOEXEC.
int cl_socket(int domain, int type);

// pipe2(2) with O_NONBLOCK|O_CLOEXEC; fds[0] is the read end.
int cl_pipe(int fds[2]);

// fcntl(F_SETPIPE_SZ) / fcntl(F_GETPIPE_SZ).
int cl_set_pipe_size(int fd, int size);
int cl_get_pipe_size(int fd);

// splice(2) and tee(2) with SPLICE_F_MOVE|SPLICE_F_NONBLOCK.
ssize_t cl_splice(int fd_in, int fd_out, size_t len, int more);
ssize_t cl_tee(int fd_in, int fd_out, size_t len);

// Socket options the proxy sets.
int cl_set_reuseport(int fd);
int cl_set_reuseaddr(int fd);
int cl_set_nodelay(int fd);
int cl_get_socket_error(int fd);
int cl_ioctl_fionread(int fd);

// sockaddr helpers: fill a sockaddr_storage from a numeric IPv4/IPv6 address.
// Returns the address length, or 0 when `host` is not a numeric address.
socklen_t cl_make_sockaddr(const char *host, uint16_t port, struct sockaddr_storage *out);
// Render the peer address as text (IPv4 dotted or IPv6); returns length.
int cl_format_address(const struct sockaddr_storage *addr, char *out, int cap, uint16_t *port);

// Resolve a host name to its first IPv4/IPv6 address (getaddrinfo). 0 on success.
int cl_resolve(const char *host, uint16_t port, struct sockaddr_storage *out, socklen_t *len);

// Resolve a host name to all its IPv4/IPv6 addresses (getaddrinfo, in its order, duplicates
// included), at most `cap`. Returns how many, or -1 when the name does not resolve.
int cl_resolve_all(const char *host, uint16_t port, struct sockaddr_storage *out, socklen_t *lens, int cap);

// Raise RLIMIT_NOFILE to the hard limit; returns the new soft limit.
long cl_raise_nofile_limit(void);

// Block SIGPIPE for the process (writes to a closed socket return EPIPE).
void cl_ignore_sigpipe(void);

// Resident set size in bytes (from /proc/self/statm), 0 if unknown.
long cl_rss_bytes(void);

// Monotonic clock in nanoseconds.
uint64_t cl_monotonic_ns(void);


// Descriptor passing over a Unix socket (SCM_RIGHTS), for handing listeners and client
// connections to a successor process.
// A connected SOCK_SEQPACKET pair, close-on-exec, blocking; 0 on success.
int cl_seqpacket_pair(int fds[2]);
// sendmsg(2) of `len` bytes with `nfds` descriptors attached (MSG_NOSIGNAL). Returns the
// bytes sent, -1 with errno set.
ssize_t cl_send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds);
// recvmsg(2) of one message into `buf` (at most `cap` bytes) with up to `maxfds`
// descriptors (received close-on-exec) stored in `fds` and counted in `*nfds`.
// `*truncated` is set when bytes or descriptors did not fit (those descriptors are
// closed by the kernel). Returns the bytes received (0 = end of stream), -1 with errno set.
ssize_t cl_recv_with_fds(int sock, void *buf, size_t cap, int *fds, int maxfds, int *nfds, int *truncated);
// poll(2) for readability of one descriptor: 1 readable (or hung up), 0 timed out, -1 error.
int cl_wait_readable(int fd, int timeout_ms);
// Sets (1) or clears (0) FD_CLOEXEC; 0 on success.
int cl_set_cloexec(int fd, int on);
// posix_spawn of `path` with `argv` and `envp` (NULL-terminated); the child's pid in *pid.
// The child keeps descriptors 0-2 and `keep_fd` (unless -1) as descriptor 3; all others are
// closed. Returns 0 or an error number.
int cl_spawn(const char *path, char *const argv[], char *const envp[], int keep_fd, int *pid);
// waitpid(2): 0 when still running (with `nohang`), the pid when it ended (its raw status
// in *status), -1 with errno set.
int cl_wait_child(int pid, int *status, int nohang);
// Sends one datagram to the Unix socket at `path` (an '@' prefix names the abstract
// namespace), as sd_notify does; 0 on success, -1 on error.
int cl_notify_datagram(const char *path, const char *text);

#endif
