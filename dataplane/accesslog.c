/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The access log and request metrics (accesslog.h). A value is written bare when it is made of
 * printable ASCII other than space, '"', '\\' and '='; otherwise it is quoted, with '"' and '\\'
 * escaped by a backslash and any other byte outside printable ASCII (controls, DEL, UTF-8) as
 * \xHH - so a line is always one line of ASCII, whatever a client sends.
 */
#include "accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "aegis/alloc.h"
#include "conn.h"
#include "gen.h"
#include "log.h"
#include "metrics.h"

/* Lines are gathered per worker context in a buffer of DP_ACCESSLOG_LINE_MAX bytes and written
 * when the next line would not fit, or at the latest this long after the first line in it. */
#define FLUSH_MS 1000

/* Values longer than these are cut (and end with "..."); the line stays under the maximum. */
#define PATH_MAX_LOGGED 1024
#define AUTHORITY_MAX_LOGGED 256
#define UPSTREAM_MAX_LOGGED 512
#define METHOD_MAX_LOGGED 32

struct logger {
    h2o_logger_t super;
    struct dp_gen *gen;
};

/* One worker context's pending lines (the logger's per-context data). */
struct pending {
    h2o_loop_t *loop;
    h2o_timeout_t timeout;
    h2o_timeout_entry_t flush_entry;
    size_t len;
    char buf[DP_ACCESSLOG_LINE_MAX];
};

/* Written once before the workers start and after they stop: read-only while they run. */
static int log_fd = -1;
static bool log_owned; /* a file we opened, not standard output */
static atomic_bool write_failed;

int dp_accesslog_open(const char *path, struct aegis_err *err)
{
    int fd;

    if (strcmp(path, "-") == 0) {
        log_fd = STDOUT_FILENO;
        log_owned = false;
        return 0;
    }
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return aegis_err_set(err, -errno, "--access-log", "cannot open %s: %s", path,
                             strerror(errno));
    log_fd = fd;
    log_owned = true;
    return 0;
}

void dp_accesslog_close(void)
{
    if (log_owned && log_fd >= 0)
        close(log_fd);
    log_fd = -1;
    log_owned = false;
}

/* ---- the line --------------------------------------------------------------------------------- */

struct line {
    char buf[DP_ACCESSLOG_LINE_MAX];
    size_t len;
};

static void add(struct line *l, const char *s, size_t n)
{
    /* Keeps one byte for the final newline. */
    if (n > sizeof(l->buf) - 1 - l->len)
        n = sizeof(l->buf) - 1 - l->len;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void adds(struct line *l, const char *s)
{
    add(l, s, strlen(s));
}

static bool bare(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '=';
}

/* " key=value", value escaped (see the top of the file) and cut after max bytes of input. */
static void field(struct line *l, const char *key, const char *v, size_t n, size_t max)
{
    static const char hex[] = "0123456789abcdef";
    bool quote = n == 0, cut = n > max;

    if (cut)
        n = max;
    for (size_t i = 0; i < n && !quote; i++)
        quote = !bare((unsigned char)v[i]);
    add(l, " ", 1);
    adds(l, key);
    add(l, "=", 1);
    if (!quote) {
        add(l, v, n);
        if (cut)
            add(l, "...", 3);
        return;
    }
    add(l, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        char esc[4] = {'\\', (char)c, 0, 0};

        if (c == '"' || c == '\\') {
            add(l, esc, 2);
        } else if (c < 0x20 || c >= 0x7f) {
            esc[1] = 'x';
            esc[2] = hex[c >> 4];
            esc[3] = hex[c & 15];
            add(l, esc, 4);
        } else {
            add(l, (const char *)&c, 1);
        }
    }
    if (cut)
        add(l, "...", 3);
    add(l, "\"", 1);
}

static void fieldz(struct line *l, const char *key, const char *v)
{
    field(l, key, v, strlen(v), SIZE_MAX);
}

/* RFC 3339 UTC with milliseconds; the part down to the second is cached per thread. */
static void timestamp(struct line *l, const struct timeval *tv)
{
    static _Thread_local time_t cached_sec = -1;
    static _Thread_local char cached[24];
    char ms[8];

    if (tv->tv_sec != cached_sec) {
        struct tm tm;

        gmtime_r(&tv->tv_sec, &tm);
        strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
        cached_sec = tv->tv_sec;
    }
    adds(l, "ts=");
    adds(l, cached);
    snprintf(ms, sizeof(ms), ".%03dZ", (int)(tv->tv_usec / 1000));
    adds(l, ms);
}

static const char *proto_name(int version)
{
    if (version >= 0x200)
        return "HTTP/2";
    return version == 0x100 ? "HTTP/1.0" : "HTTP/1.1";
}

static void flush(struct pending *p)
{
    ssize_t w;

    if (p->len == 0)
        return;
    do {
        w = write(log_fd, p->buf, p->len);
    } while (w < 0 && errno == EINTR);
    /* A full disk or a closed pipe must not stop the serving; said once, not per request. */
    if (w != (ssize_t)p->len && !atomic_exchange(&write_failed, true))
        dp_log(DP_LOG_ERROR, "access log: write failed (%s); further failures are not reported",
               w < 0 ? strerror(errno) : "short write");
    p->len = 0;
}

static void on_flush_timer(h2o_timeout_entry_t *entry)
{
    flush(H2O_STRUCT_FROM_MEMBER(struct pending, flush_entry, entry));
}

static void write_line(struct pending *p, h2o_req_t *req, const struct rconf_host *host,
                       uint64_t dur_us)
{
    struct line l = {.len = 0};
    struct sockaddr_storage sa;
    char num[64], client[NI_MAXHOST] = "-";
    struct dp_conn *conn = dp_conn_of_req(req);
    const h2o_iovec_t *up = h2o_req_getenv(req, H2O_STRLIT(DP_ACCESSLOG_UPSTREAM_ENV), 0);
    const char *path = req->input.path.base, *q;
    size_t path_len = req->input.path.len;
    socklen_t sa_len;

    timestamp(&l, &req->timestamps.request_begin_at);
    fieldz(&l, "host", host != NULL ? host->name : "-");
    field(&l, "authority", req->input.authority.base, req->input.authority.len,
          AUTHORITY_MAX_LOGGED);
    sa_len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&sa);
    if (sa_len == 0 ||
        h2o_socket_getnumerichost((struct sockaddr *)&sa, sa_len, client) == SIZE_MAX)
        snprintf(client, sizeof(client), "-");
    fieldz(&l, "client", client);
    field(&l, "method", req->input.method.base, req->input.method.len, METHOD_MAX_LOGGED);
    /* The path without its query string. */
    q = path_len ? memchr(path, '?', path_len) : NULL;
    if (q != NULL)
        path_len = (size_t)(q - path);
    field(&l, "path", path, path_len, PATH_MAX_LOGGED);
    fieldz(&l, "proto", proto_name(req->version));
    snprintf(num, sizeof(num), " status=%d bytes=%zu dur_ms=%llu.%03llu", req->res.status,
             req->bytes_sent, (unsigned long long)(dur_us / 1000),
             (unsigned long long)(dur_us % 1000));
    adds(&l, num);
    fieldz(&l, "tls", conn != NULL && conn->ssl != NULL ? SSL_get_version(conn->ssl) : "-");
    fieldz(&l, "sni", conn != NULL && conn->sni[0] ? conn->sni : "-");
    if (up != NULL && up->len > 0)
        field(&l, "upstream", up->base, up->len, UPSTREAM_MAX_LOGGED);
    else
        fieldz(&l, "upstream", "-");
    l.buf[l.len++] = '\n';

    /* Whole lines only: every write(2) is a run of complete lines of at most PIPE_BUF bytes. */
    if (p->len + l.len > sizeof(p->buf))
        flush(p);
    memcpy(p->buf + p->len, l.buf, l.len);
    p->len += l.len;
    if (!h2o_timeout_is_linked(&p->flush_entry))
        h2o_timeout_link(p->loop, &p->timeout, &p->flush_entry);
}

/* ---- the logger ------------------------------------------------------------------------------- */

static uint64_t duration_us(h2o_req_t *req)
{
    int64_t us = 0;
    struct timeval now;

    /* h2o stamps the end of the response; a request that got none ends now. */
    if (!h2o_time_compute_duration(req, &us) &&
        !h2o_timeval_is_null(&req->timestamps.request_begin_at)) {
        gettimeofday(&now, NULL);
        us = h2o_timeval_subtract(&req->timestamps.request_begin_at, &now);
    }
    return us > 0 ? (uint64_t)us : 0;
}

static void log_access(h2o_logger_t *self, h2o_req_t *req)
{
    struct dp_gen *g = ((struct logger *)self)->gen;
    const struct rconf_host *host = NULL;
    struct dp_host_metrics *hm = NULL;
    h2o_iovec_t name;
    uint16_t port;
    uint64_t us = duration_us(req);

    /* The host as the router found it (router.c): input.* is what the client sent, even after
     * the proxy reprocessed the request towards an upstream. */
    if (req->input.authority.len > 0 &&
        h2o_url_parse_hostport(req->input.authority.base, req->input.authority.len, &name, &port) ==
            req->input.authority.base + req->input.authority.len) {
        host =
            rconf_find_host(g->rc, name.base, name.len, req->input.scheme == &H2O_URL_SCHEME_HTTPS);
        if (host != NULL)
            hm = dp_gen_vhost(g, host)->metrics;
    }
    dp_metrics_request(hm, req->res.status, us);
    if (log_fd >= 0) {
        struct pending *p = h2o_context_get_logger_context(req->conn->ctx, self);

        if (p != NULL)
            write_line(p, req, host, us);
    }
}

static void on_context_init(h2o_logger_t *self, h2o_context_t *ctx)
{
    struct pending *p;

    if (log_fd < 0)
        return;
    p = aegis_calloc(1, sizeof(*p));
    p->loop = ctx->loop;
    h2o_timeout_init(ctx->loop, &p->timeout, FLUSH_MS);
    p->flush_entry.cb = on_flush_timer;
    h2o_context_set_logger_context(ctx, self, p);
}

static void on_context_dispose(h2o_logger_t *self, h2o_context_t *ctx)
{
    struct pending *p = h2o_context_get_logger_context(ctx, self);

    if (p == NULL)
        return;
    flush(p);
    if (h2o_timeout_is_linked(&p->flush_entry))
        h2o_timeout_unlink(&p->flush_entry);
    h2o_timeout_dispose(p->loop, &p->timeout);
    free(p);
    h2o_context_set_logger_context(ctx, self, NULL);
}

void dp_accesslog_register(h2o_pathconf_t *pathconf, struct dp_gen *g)
{
    struct logger *l = (struct logger *)h2o_create_logger(pathconf, sizeof(*l));

    l->super.log_access = log_access;
    l->super.on_context_init = on_context_init;
    l->super.on_context_dispose = on_context_dispose;
    l->gen = g;
}
