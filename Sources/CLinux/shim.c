#define _GNU_SOURCE
#include "CLinux.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

const int CL_EPOLL_CTL_ADD = EPOLL_CTL_ADD;
const int CL_EPOLL_CTL_MOD = EPOLL_CTL_MOD;
const int CL_EPOLL_CTL_DEL = EPOLL_CTL_DEL;
const uint32_t CL_EPOLLIN = EPOLLIN;
const uint32_t CL_EPOLLOUT = EPOLLOUT;
const uint32_t CL_EPOLLERR = EPOLLERR;
const uint32_t CL_EPOLLHUP = EPOLLHUP;
const uint32_t CL_EPOLLRDHUP = EPOLLRDHUP;
const uint32_t CL_EPOLLET = EPOLLET;

int cl_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int cl_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &ev);
}

int cl_epoll_wait(int epfd, uint64_t *data, uint32_t *events, int max, int timeout_ms) {
    struct epoll_event evs[256];
    if (max > 256) max = 256;
    int n = epoll_wait(epfd, evs, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        data[i] = evs[i].data.u64;
        events[i] = evs[i].events;
    }
    return n;
}

int cl_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int cl_accept(int fd, struct sockaddr *addr, socklen_t *len) {
    return accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int cl_socket(int domain, int type) { return socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); }

int cl_pipe(int fds[2]) { return pipe2(fds, O_NONBLOCK | O_CLOEXEC); }

int cl_set_pipe_size(int fd, int size) { return fcntl(fd, F_SETPIPE_SZ, size); }
int cl_get_pipe_size(int fd) { return fcntl(fd, F_GETPIPE_SZ); }

ssize_t cl_splice(int fd_in, int fd_out, size_t len, int more) {
    unsigned flags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
    if (more) flags |= SPLICE_F_MORE;
    return splice(fd_in, NULL, fd_out, NULL, len, flags);
}

ssize_t cl_tee(int fd_in, int fd_out, size_t len) {
    return tee(fd_in, fd_out, len, SPLICE_F_NONBLOCK);
}

static int set_int_opt(int fd, int level, int name, int value) {
    return setsockopt(fd, level, name, &value, sizeof value);
}
int cl_set_reuseport(int fd) { return set_int_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1); }
int cl_set_reuseaddr(int fd) { return set_int_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1); }
int cl_set_nodelay(int fd) { return set_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1); }

int cl_get_socket_error(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
    return err;
}

int cl_ioctl_fionread(int fd) {
    int n = 0;
    if (ioctl(fd, FIONREAD, &n) < 0) return -1;
    return n;
}

socklen_t cl_make_sockaddr(const char *host, uint16_t port, struct sockaddr_storage *out) {
    memset(out, 0, sizeof *out);
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        return sizeof *v4;
    }
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        return sizeof *v6;
    }
    return 0;
}

int cl_format_address(const struct sockaddr_storage *addr, char *out, int cap, uint16_t *port) {
    if (addr->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)addr;
        if (!inet_ntop(AF_INET, &v4->sin_addr, out, cap)) return 0;
        *port = ntohs(v4->sin_port);
        return (int)strlen(out);
    }
    if (addr->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)addr;
        if (!inet_ntop(AF_INET6, &v6->sin6_addr, out, cap)) return 0;
        *port = ntohs(v6->sin6_port);
        return (int)strlen(out);
    }
    return 0;
}

int cl_resolve(const char *host, uint16_t port, struct sockaddr_storage *out, socklen_t *len) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || res == NULL) return rc != 0 ? rc : -1;
    memset(out, 0, sizeof *out);
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    if (out->ss_family == AF_INET) ((struct sockaddr_in *)out)->sin_port = htons(port);
    else if (out->ss_family == AF_INET6) ((struct sockaddr_in6 *)out)->sin6_port = htons(port);
    freeaddrinfo(res);
    return 0;
}

int cl_resolve_all(const char *host, uint16_t port, struct sockaddr_storage *out, socklen_t *lens, int cap) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || res == NULL) return -1;
    int n = 0;
    for (struct addrinfo *ai = res; ai != NULL && n < cap; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
        memset(&out[n], 0, sizeof out[n]);
        memcpy(&out[n], ai->ai_addr, ai->ai_addrlen);
        lens[n] = ai->ai_addrlen;
        if (ai->ai_family == AF_INET) ((struct sockaddr_in *)&out[n])->sin_port = htons(port);
        else ((struct sockaddr_in6 *)&out[n])->sin6_port = htons(port);
        n++;
    }
    freeaddrinfo(res);
    return n;
}

long cl_raise_nofile_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
    return (long)rl.rlim_cur;
}

void cl_ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }

long cl_rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    long size = 0, resident = 0;
    int ok = fscanf(f, "%ld %ld", &size, &resident);
    fclose(f);
    if (ok != 2) return 0;
    return resident * sysconf(_SC_PAGESIZE);
}

uint64_t cl_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}


// MARK: descriptor passing and process spawning

#include <poll.h>
#include <spawn.h>
#include <sys/un.h>
#include <sys/wait.h>

int cl_seqpacket_pair(int fds[2]) {
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds);
}

#define CL_MAX_FDS 253

ssize_t cl_send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds) {
    if (nfds < 0 || nfds > CL_MAX_FDS) { errno = EINVAL; return -1; }
    struct iovec iov = { (void *)buf, len };
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    union { char bytes[CMSG_SPACE(sizeof(int) * CL_MAX_FDS)]; struct cmsghdr align; } control;
    if (nfds > 0) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.bytes;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * (size_t)nfds);
    }
    return sendmsg(sock, &msg, MSG_NOSIGNAL);
}

ssize_t cl_recv_with_fds(int sock, void *buf, size_t cap, int *fds, int maxfds, int *nfds, int *truncated) {
    *nfds = 0;
    *truncated = 0;
    if (maxfds < 0 || maxfds > CL_MAX_FDS) { errno = EINVAL; return -1; }
    struct iovec iov = { buf, cap };
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    union { char bytes[CMSG_SPACE(sizeof(int) * CL_MAX_FDS)]; struct cmsghdr align; } control;
    memset(&control, 0, sizeof control);
    msg.msg_control = control.bytes;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)(maxfds > 0 ? maxfds : 1));
    ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) return n;
    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof fd);
            if (*nfds < maxfds) fds[(*nfds)++] = fd; else { close(fd); *truncated = 1; }
        }
    }
    if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) *truncated = 1;
    return n;
}

int cl_wait_readable(int fd, int timeout_ms) {
    struct pollfd p = { fd, POLLIN, 0 };
    int rc;
    do { rc = poll(&p, 1, timeout_ms); } while (rc < 0 && errno == EINTR);
    return rc;
}

int cl_set_cloexec(int fd, int on) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0) return -1;
    return fcntl(fd, F_SETFD, on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC));
}

int cl_spawn(const char *path, char *const argv[], char *const envp[], int keep_fd, int *pid) {
    // The child gets stdin, stdout, stderr and `keep_fd` as descriptor 3, nothing else: a
    // descriptor this process inherited without close-on-exec (a supervisor's) must not
    // outlive it in the child.
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    int source = keep_fd;
    if (keep_fd == 3) {
        source = fcntl(keep_fd, F_DUPFD_CLOEXEC, 10);
        if (source < 0) { posix_spawn_file_actions_destroy(&actions); return errno; }
    }
    if (keep_fd >= 0) posix_spawn_file_actions_adddup2(&actions, source, 3);
    posix_spawn_file_actions_addclosefrom_np(&actions, keep_fd >= 0 ? 4 : 3);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // The child starts with an empty signal mask and default dispositions: the parent
    // blocks the signals it sigwaits for, and the successor sets up its own.
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t child = 0;
    int rc = posix_spawn(&child, path, &actions, &attr, argv, envp);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    if (source != keep_fd) close(source);
    if (rc == 0) *pid = (int)child;
    return rc;
}

int cl_wait_child(int pid, int *status, int nohang) {
    int rc;
    do { rc = waitpid((pid_t)pid, status, nohang ? WNOHANG : 0); } while (rc < 0 && errno == EINTR);
    return rc;
}

int cl_notify_datagram(const char *path, const char *text) {
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof addr.sun_path) { errno = EINVAL; return -1; }
    memcpy(addr.sun_path, path, len);
    if (path[0] == '@') addr.sun_path[0] = 0;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    ssize_t n = sendto(fd, text, strlen(text), MSG_NOSIGNAL, (struct sockaddr *)&addr,
                       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
    close(fd);
    return n < 0 ? -1 : 0;
}
