/* Fault injection for the e2e tests: makes accept()/accept4() on one listening port fail with a chosen errno.
 *
 * Loaded into the gateway with LD_PRELOAD (tests/tests/e2e/reliability_accept.rs builds it with `cc`).
 * While the file named by $ACCEPT_FAULT_FILE exists and holds "<errno> <port>", every accept on a socket
 * bound to <port> returns -1 with that errno without taking the waiting connection from the kernel's backlog;
 * other sockets, or no file, go to the real call. The file is read on every call, so a test turns the fault
 * on and off while the gateway runs. Each injected failure adds one byte to "$ACCEPT_FAULT_FILE.count" (the
 * test reads how many calls failed, independently of what the gateway logs or counts). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int port_of(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return -1;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

/* The errno to fail `fd`'s accept with, or 0 for the real call. */
static int injected(int fd) {
    const char *path = getenv("ACCEPT_FAULT_FILE");
    if (path == NULL) return 0;
    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0) return 0;
    char buf[64];
    ssize_t n = read(f, buf, sizeof buf - 1);
    close(f);
    if (n <= 0) return 0;
    buf[n] = 0;
    int err = 0, port = 0;
    if (sscanf(buf, "%d %d", &err, &port) != 2 || err <= 0 || port_of(fd) != port) return 0;
    char count[4096];
    snprintf(count, sizeof count, "%s.count", path);
    int c = open(count, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (c >= 0) {
        (void)!write(c, "x", 1);
        close(c);
    }
    return err;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    int err = injected(fd);
    if (err) {
        errno = err;
        return -1;
    }
    if (real == NULL) real = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
    return real(fd, addr, len, flags);
}

int accept(int fd, struct sockaddr *addr, socklen_t *len) {
    static int (*real)(int, struct sockaddr *, socklen_t *);
    int err = injected(fd);
    if (err) {
        errno = err;
        return -1;
    }
    if (real == NULL) real = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
    return real(fd, addr, len);
}
