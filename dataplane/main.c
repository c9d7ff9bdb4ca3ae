/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aegis-dataplane: flags and wiring only. The dataplane is an h2o-based TLS proxy serving a
 * rendered configuration (docs/rendered-config.md): here it is read from --config at start,
 * validated completely (a bad one is refused with every error and exit status 1), and served by
 * --workers threads until SIGTERM or SIGINT, which stop it gracefully (exit status 0).
 * See docs/dataplane.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "accesslog.h"
#include "aegis/alloc.h"
#include "aegis/diag.h"
#include "aegis/limits.h"
#include "aegis/rconf.h"
#include "log.h"
#include "metrics.h"
#include "metrics_server.h"
#include "server.h"

#define PROG "aegis-dataplane"

/* Observability flags (docs/metrics.md); NULL: off. */
static const char *metrics_listen, *access_log;

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: " PROG " --config FILE [--workers N] [--log-level LEVEL]\n"
            "                       [--metrics-listen ADDR:PORT] [--access-log FILE|-]\n"
            "       " PROG " --check --config FILE\n"
            "       " PROG " --help | --version\n"
            "\n"
            "The Aegis dataplane: an h2o-based TLS proxy serving a rendered configuration\n"
            "(JSON, see docs/rendered-config.md). The configuration is validated completely\n"
            "before anything is served; SIGTERM or SIGINT stops it gracefully.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE      the rendered configuration to serve\n"
            "  -w, --workers N        worker threads (default: the configuration's \"workers\",\n"
            "                         else the number of cores)\n"
            "  -l, --log-level LEVEL  error, warning, info (default) or debug\n"
            "      --metrics-listen ADDR:PORT\n"
            "                         serve Prometheus metrics on http://ADDR:PORT/metrics\n"
            "                         (127.0.0.1:9145, [::1]:9145; plain HTTP, no secrets)\n"
            "      --access-log FILE  one logfmt line per request to FILE (appended), or - for\n"
            "                         standard output (default: off)\n"
            "      --check            validate the configuration, print its problems and exit\n"
            "                         (status 0 when it would be served, 1 when refused)\n"
            "  -h, --help             show this help and exit\n"
            "  -V, --version          show the version and exit\n");
}

/* Reads path into a new NUL-terminated buffer of at most AEGIS_LIMIT_RCONF_BYTES. */
static int read_file(const char *path, char **out, size_t *len)
{
    struct stat st;
    char *buf = NULL;
    size_t got = 0;
    int fd, r = 0;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) != 0) {
        r = -errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        r = -EINVAL;
        goto out;
    }
    if ((uint64_t)st.st_size > AEGIS_LIMIT_RCONF_BYTES) {
        r = -EFBIG;
        goto out;
    }
    buf = aegis_malloc((size_t)st.st_size + 1);
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            goto out;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return r;
}

/* Loads and validates the configuration, printing every diagnostic; NULL when refused. */
static struct rconf *load_config(const char *path)
{
    struct aegis_diags diags;
    struct rconf *rc = NULL;
    char *text = NULL, line[1024];
    size_t len = 0;
    int r;

    r = read_file(path, &text, &len);
    if (r < 0) {
        fprintf(stderr, PROG ": %s: %s\n", path,
                r == -EFBIG ? "larger than the configuration size limit" : strerror(-r));
        return NULL;
    }
    aegis_diags_init(&diags);
    r = rconf_parse(text, len, NULL, &rc, &diags);
    for (size_t i = 0; i < diags.n; i++) {
        aegis_diag_format(&diags.v[i], line, sizeof(line));
        fprintf(stderr, PROG ": %s: %s\n", path, line);
    }
    if (r < 0)
        fprintf(stderr, PROG ": %s: %zu error(s)%s; configuration refused\n", path, diags.nerrors,
                diags.dropped ? " (some not shown)" : "");
    aegis_diags_dispose(&diags);
    free(text);
    return rc;
}

static int parse_workers(const char *s, unsigned *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > AEGIS_LIMIT_RCONF_WORKERS)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static int parse_level(const char *s, enum dp_log_level *out)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};

    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum dp_log_level)i;
            return 0;
        }
    }
    return -1;
}

static unsigned default_workers(const struct rconf *rc)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    if (rc->workers > 0)
        return rc->workers;
    if (cores < 1)
        return 1;
    return cores > AEGIS_LIMIT_RCONF_WORKERS ? AEGIS_LIMIT_RCONF_WORKERS : (unsigned)cores;
}

static int serve(struct rconf *rc, unsigned workers)
{
    struct dp_server *server = NULL;
    struct dp_metrics_server *metrics = NULL;
    struct aegis_err err;
    sigset_t set;
    int sig = 0, status = 1;

    memset(&err, 0, sizeof(err));
    /* Blocked before any thread starts, so every thread inherits the mask and sigwait below is
     * the only place these signals are taken. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if ((access_log != NULL && dp_accesslog_open(access_log, &err) < 0) ||
        dp_server_new(rc, workers, &server, &err) < 0 || dp_server_start(server, &err) < 0) {
        dp_log(DP_LOG_ERROR, "%s", err.msg);
        goto out;
    }
    dp_metrics_config_applied(rc);
    if (metrics_listen != NULL && dp_metrics_server_start(metrics_listen, &metrics, &err) < 0) {
        dp_log(DP_LOG_ERROR, "%s", err.msg);
        goto out;
    }
    dp_log(DP_LOG_INFO,
           "serving generation %lld: %zu host(s), %zu HTTP and %zu HTTPS address(es), %u "
           "worker(s)",
           (long long)rc->generation, rc->n_hosts, rc->n_http, rc->n_https, workers);
    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            break;
        dp_log(DP_LOG_WARNING, "SIGHUP ignored: this version does not reload its configuration");
    }
    dp_log(DP_LOG_INFO, "%s: finishing open connections", sig == SIGINT ? "SIGINT" : "SIGTERM");
    status = 0;
out:
    if (server != NULL && dp_server_stop(server))
        dp_log(DP_LOG_INFO, "stopped");
    dp_metrics_server_stop(metrics);
    dp_server_free(server);
    dp_accesslog_close();
    return status;
}

int main(int argc, char **argv)
{
    const char *config = NULL;
    unsigned workers = 0;
    enum dp_log_level level = DP_LOG_INFO;
    bool check = false;
    struct rconf *rc;
    int status;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(arg, "-V") == 0 || strcmp(arg, "--version") == 0) {
            printf(PROG " %s\n", AEGIS_VERSION);
            return 0;
        }
        if (strcmp(arg, "--check") == 0) {
            check = true;
        } else if ((strcmp(arg, "-c") == 0 || strcmp(arg, "--config") == 0) && val != NULL) {
            config = val;
            i++;
        } else if ((strcmp(arg, "-w") == 0 || strcmp(arg, "--workers") == 0) && val != NULL) {
            if (parse_workers(val, &workers) < 0) {
                fprintf(stderr, PROG ": --workers: \"%s\" is not a number from 1 to %d\n", val,
                        AEGIS_LIMIT_RCONF_WORKERS);
                return 2;
            }
            i++;
        } else if (strcmp(arg, "--metrics-listen") == 0 && val != NULL) {
            metrics_listen = val;
            i++;
        } else if (strcmp(arg, "--access-log") == 0 && val != NULL) {
            access_log = val;
            i++;
        } else if ((strcmp(arg, "-l") == 0 || strcmp(arg, "--log-level") == 0) && val != NULL) {
            if (parse_level(val, &level) < 0) {
                fprintf(stderr, PROG ": --log-level: \"%s\" is not error, warning, info or debug\n",
                        val);
                return 2;
            }
            i++;
        } else {
            fprintf(stderr, PROG ": %s '%s'\n\n",
                    arg[0] == '-' && val == NULL ? "missing value or unknown option"
                                                 : "unknown argument",
                    arg);
            usage(stderr);
            return 2;
        }
    }
    if (config == NULL) {
        fprintf(stderr, PROG ": --config FILE is required\n\n");
        usage(stderr);
        return 2;
    }
    dp_log_set_level(level);
    rc = load_config(config);
    if (rc == NULL)
        return 1;
    if (check) {
        rconf_unref(rc);
        return 0;
    }
    status = serve(rc, workers ? workers : default_workers(rc));
    rconf_unref(rc);
    return status;
}
