/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Listening sockets (listener.h).
 */
#include "listener.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Connections the kernel queues per socket before the worker accepts them. */
#define LISTEN_BACKLOG 4096

static int open_socket(const struct rconf_listener *l, bool reuseport, int *out,
                       struct aegis_err *err)
{
    int fd, on = 1, r = 0;

    *out = -1;
    fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return aegis_err_set(err, -errno, l->text, "socket: %s", strerror(errno));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) ||
        (l->addr.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0) ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) != 0) {
        r = aegis_err_set(err, -errno, l->text, "setsockopt: %s", strerror(errno));
        goto out;
    }
    if (bind(fd, (const struct sockaddr *)&l->addr, l->addr_len) != 0) {
        r = aegis_err_set(err, -errno, l->text, "cannot listen on %s: %s%s", l->text,
                          strerror(errno),
                          errno == EADDRINUSE ? " (is another dataplane running?)" : "");
        goto out;
    }
    if (reuseport && listen(fd, LISTEN_BACKLOG) != 0) {
        r = aegis_err_set(err, -errno, l->text, "listen on %s: %s", l->text, strerror(errno));
        goto out;
    }
    *out = fd;
    fd = -1;
out:
    if (fd >= 0)
        close(fd);
    return r;
}

int dp_listener_probe(const struct rconf_listener *l, struct aegis_err *err)
{
    int fd, r = open_socket(l, false, &fd, err);

    if (r == 0)
        close(fd);
    return r;
}

int dp_listener_open(const struct rconf_listener *l, int *fd, struct aegis_err *err)
{
    return open_socket(l, true, fd, err);
}
