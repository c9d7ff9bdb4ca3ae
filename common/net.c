/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Listening addresses (net.h).
 */
#include "aegis/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int aegis_net_parse_addr(const char *s, size_t len, struct sockaddr_storage *sa, socklen_t *sa_len)
{
    char host[AEGIS_NET_ADDR_MAX];
    const char *port;
    char *end;
    unsigned long p;

    memset(sa, 0, sizeof(*sa));
    if (len == 0 || len >= sizeof(host))
        return -AEGIS_E_INVALID;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);

        if (close == NULL || close + 1 >= s + len || close[1] != ':')
            return -AEGIS_E_INVALID;
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        port = close + 2;
    } else {
        const char *colon = memchr(s, ':', len);

        if (colon == NULL)
            return -AEGIS_E_INVALID;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        port = colon + 1;
    }
    if (port >= s + len || *port < '1' || *port > '9')
        return -AEGIS_E_INVALID;
    {
        char digits[8];
        size_t n = (size_t)(s + len - port);

        if (n >= sizeof(digits))
            return -AEGIS_E_INVALID;
        memcpy(digits, port, n);
        digits[n] = '\0';
        p = strtoul(digits, &end, 10);
        if (*end != '\0' || p > 65535)
            return -AEGIS_E_INVALID;
    }
    if (s[0] == '[') {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)sa;

        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            return -AEGIS_E_INVALID;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)p);
        *sa_len = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)sa;

        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return -AEGIS_E_INVALID;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)p);
        *sa_len = sizeof(*a);
    }
    return 0;
}

int aegis_net_listen(const char *text, int backlog, const char *flag, const char *holder, int *out,
                     struct aegis_err *err)
{
    struct sockaddr_storage sa;
    socklen_t sa_len = 0;
    int fd, on = 1, r = 0;

    *out = -1;
    if (aegis_net_parse_addr(text, strlen(text), &sa, &sa_len) < 0)
        return aegis_err_set(err, -AEGIS_E_INVALID, flag,
                             "\"%s\" is not a numeric ADDRESS:PORT (for example 127.0.0.1:9145 "
                             "or [::1]:9145)",
                             text);
    fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return aegis_err_set(err, -errno, flag, "socket: %s", strerror(errno));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        (sa.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0)) {
        r = aegis_err_set(err, -errno, flag, "setsockopt: %s", strerror(errno));
        goto out;
    }
    if (bind(fd, (const struct sockaddr *)&sa, sa_len) != 0 || listen(fd, backlog) != 0) {
        int e = errno;

        r = aegis_err_set(err, -e, flag, "cannot listen on %s: %s%s%s%s", text, strerror(e),
                          e == EADDRINUSE && holder != NULL ? " (" : "",
                          e == EADDRINUSE && holder != NULL ? holder : "",
                          e == EADDRINUSE && holder != NULL ? ")" : "");
        goto out;
    }
    *out = fd;
    fd = -1;
out:
    if (fd >= 0)
        close(fd);
    return r;
}
