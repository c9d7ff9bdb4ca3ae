/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aegis-dataplane: flags and wiring only. The dataplane is an h2o-based TLS proxy serving a
 * rendered configuration (docs/rendered-config.md): read from --config at start (validated
 * completely: a bad one is refused with every error and exit status 1), else the sealed last good
 * one, else none until the first PUT /config on the admin API. SIGHUP re-reads --config and swaps
 * it in like a PUT; SIGTERM or SIGINT stop it gracefully (exit status 0). See docs/dataplane.md.
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
#include "admin.h"
#include "admin_api.h"
#include "admin_control.h"
#include "admin_tls.h"
#include "aegis/alloc.h"
#include "aegis/diag.h"
#include "aegis/limits.h"
#include "aegis/masterkey.h"
#include "aegis/rconf.h"
#include "aegis/store.h"
#include "lastgood.h"
#include "log.h"
#include "metrics_server.h"
#include "server.h"

#define PROG "aegis-dataplane"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: " PROG " [--config FILE] [--admin-socket PATH] [--admin-listen ADDR:PORT]\n"
            "                       [--metrics-listen ADDR:PORT] [--access-log FILE|-]\n"
            "       " PROG " --check --config FILE\n"
            "       " PROG " --admin-dev --admin-dev-export DIR [--state-dir DIR]\n"
            "       " PROG " --help | --version\n"
            "\n"
            "The Aegis dataplane: an h2o-based TLS proxy serving a rendered configuration\n"
            "(JSON, see docs/rendered-config.md). A configuration is validated completely\n"
            "before it is served; PUT /config on the admin API or SIGHUP (re-reads --config)\n"
            "swaps in a new one without dropping a connection. SIGTERM or SIGINT stops it\n"
            "gracefully.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE         the rendered configuration to serve at start\n"
            "  -w, --workers N           worker threads (default: the configuration's\n"
            "                            \"workers\", else the number of cores)\n"
            "  -l, --log-level LEVEL     error, warning, info (default) or debug\n"
            "      --check               validate the configuration, print its problems and\n"
            "                            exit (status 0 when it would be served, 1 when refused)\n"
            "Observability (docs/metrics.md):\n"
            "      --metrics-listen A:P  serve Prometheus metrics on http://A:P/metrics\n"
            "                            (127.0.0.1:9145, [::1]:9145; plain HTTP, no secrets)\n"
            "      --access-log FILE     one logfmt line per request to FILE (appended), or - for\n"
            "                            standard output (default: off)\n"
            "Admin API (docs/dataplane.md):\n"
            "      --admin-socket PATH   serve it on a unix socket (mode 0600)\n"
            "      --admin-listen A:P    and/or on TCP with mutual TLS\n"
            "      --admin-cert FILE     its certificate chain (or $AEGIS_ADMIN_CERT_PEM)\n"
            "      --admin-key FILE      its private key (or $AEGIS_ADMIN_KEY_PEM)\n"
            "      --admin-ca FILE       CA client certificates must chain to\n"
            "                            (or $AEGIS_ADMIN_CA_PEM)\n"
            "      --admin-allowed-san N a DNS SAN a client certificate must carry (repeatable;\n"
            "                            default: aegis-controller)\n"
            "      --admin-dev           development PKI: a CA, node and controller certificates\n"
            "                            made on first run in STATE/admin-dev (keys sealed)\n"
            "      --admin-dev-export D  write the controller's client bundle (ca.pem,\n"
            "                            controller.pem, controller.key) to D and exit\n"
            "Last good configuration (kept sealed when the admin API or --state-dir is on):\n"
            "      --state-dir DIR       default: $AEGIS_STATE_DIR, else ./.aegis (as aegisctl)\n"
            "      --master-key-file F   the master key (default: $AEGIS_MASTER_KEY, else\n"
            "                            STATE/master.key, made on first use)\n"
            "  -h, --help                show this help and exit\n"
            "  -V, --version             show the version and exit\n");
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

/* Loads and validates the configuration, printing every diagnostic; NULL when refused. The
 * document's text goes to *doc (free it) when doc is not NULL. */
static struct rconf *load_config(const char *path, char **doc, size_t *doc_len)
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
    if (doc != NULL && rc != NULL) {
        *doc = text;
        *doc_len = len;
        text = NULL;
    }
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

/* Every option: a table, so that adding one is one line here and one case below. */
enum opt {
    OPT_CONFIG,
    OPT_WORKERS,
    OPT_LOG_LEVEL,
    OPT_CHECK,
    OPT_HELP,
    OPT_VERSION,
    OPT_ADMIN_SOCKET,
    OPT_ADMIN_LISTEN,
    OPT_ADMIN_CERT,
    OPT_ADMIN_KEY,
    OPT_ADMIN_CA,
    OPT_ADMIN_SAN,
    OPT_ADMIN_DEV,
    OPT_ADMIN_DEV_EXPORT,
    OPT_STATE_DIR,
    OPT_MASTER_KEY_FILE,
    OPT_METRICS_LISTEN,
    OPT_ACCESS_LOG,
};

static const struct {
    const char *short_name; /* NULL: none */
    const char *long_name;
    bool has_value;
    enum opt id;
} options[] = {
    {"-c", "--config", true, OPT_CONFIG},
    {"-w", "--workers", true, OPT_WORKERS},
    {"-l", "--log-level", true, OPT_LOG_LEVEL},
    {NULL, "--check", false, OPT_CHECK},
    {"-h", "--help", false, OPT_HELP},
    {"-V", "--version", false, OPT_VERSION},
    {NULL, "--admin-socket", true, OPT_ADMIN_SOCKET},
    {NULL, "--admin-listen", true, OPT_ADMIN_LISTEN},
    {NULL, "--admin-cert", true, OPT_ADMIN_CERT},
    {NULL, "--admin-key", true, OPT_ADMIN_KEY},
    {NULL, "--admin-ca", true, OPT_ADMIN_CA},
    {NULL, "--admin-allowed-san", true, OPT_ADMIN_SAN},
    {NULL, "--admin-dev", false, OPT_ADMIN_DEV},
    {NULL, "--admin-dev-export", true, OPT_ADMIN_DEV_EXPORT},
    {NULL, "--state-dir", true, OPT_STATE_DIR},
    {NULL, "--master-key-file", true, OPT_MASTER_KEY_FILE},
    {NULL, "--metrics-listen", true, OPT_METRICS_LISTEN},
    {NULL, "--access-log", true, OPT_ACCESS_LOG},
};

struct flags {
    const char *config;
    unsigned workers;
    enum dp_log_level level;
    bool check;
    const char *admin_socket, *admin_listen, *dev_export;
    struct dp_admin_tls_opts tls; /* files, dev, allowed SANs */
    const char *state_dir;        /* given explicitly; NULL: the default */
    const char *master_key_file;
    const char *metrics_listen; /* NULL: no metrics listener */
    const char *access_log;     /* NULL: no access log */
};

/* Parses argv into f; returns -1 to go on, else the exit status (help, version, usage error). */
static int parse_flags(int argc, char **argv, struct flags *f)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val;
        size_t k = 0, n = sizeof(options) / sizeof(options[0]);

        while (k < n && !((options[k].short_name && strcmp(arg, options[k].short_name) == 0) ||
                          strcmp(arg, options[k].long_name) == 0))
            k++;
        if (k == n || (options[k].has_value && i + 1 >= argc)) {
            fprintf(stderr, PROG ": %s '%s'\n\n",
                    k == n ? (arg[0] == '-' ? "unknown option" : "unknown argument")
                           : "missing value for",
                    arg);
            usage(stderr);
            return 2;
        }
        val = options[k].has_value ? argv[++i] : "";
        switch (options[k].id) {
        case OPT_HELP:
            usage(stdout);
            return 0;
        case OPT_VERSION:
            printf(PROG " %s\n", AEGIS_VERSION);
            return 0;
        case OPT_CHECK:
            f->check = true;
            break;
        case OPT_CONFIG:
            f->config = val;
            break;
        case OPT_WORKERS:
            if (parse_workers(val, &f->workers) < 0) {
                fprintf(stderr, PROG ": --workers: \"%s\" is not a number from 1 to %d\n", val,
                        AEGIS_LIMIT_RCONF_WORKERS);
                return 2;
            }
            break;
        case OPT_LOG_LEVEL:
            if (parse_level(val, &f->level) < 0) {
                fprintf(stderr, PROG ": --log-level: \"%s\" is not error, warning, info or debug\n",
                        val);
                return 2;
            }
            break;
        case OPT_ADMIN_SOCKET:
            f->admin_socket = val;
            break;
        case OPT_ADMIN_LISTEN:
            f->admin_listen = val;
            break;
        case OPT_ADMIN_CERT:
            f->tls.cert_file = val;
            break;
        case OPT_ADMIN_KEY:
            f->tls.key_file = val;
            break;
        case OPT_ADMIN_CA:
            f->tls.ca_file = val;
            break;
        case OPT_ADMIN_SAN:
            if (f->tls.n_allowed_sans == DP_ADMIN_MAX_SANS) {
                fprintf(stderr, PROG ": --admin-allowed-san: at most %d\n", DP_ADMIN_MAX_SANS);
                return 2;
            }
            f->tls.allowed_sans[f->tls.n_allowed_sans++] = val;
            break;
        case OPT_ADMIN_DEV:
            f->tls.dev = true;
            break;
        case OPT_ADMIN_DEV_EXPORT:
            f->dev_export = val;
            break;
        case OPT_STATE_DIR:
            f->state_dir = val;
            break;
        case OPT_MASTER_KEY_FILE:
            f->master_key_file = val;
            break;
        case OPT_METRICS_LISTEN:
            f->metrics_listen = val;
            break;
        case OPT_ACCESS_LOG:
            f->access_log = val;
            break;
        }
    }
    return -1;
}

static void print_err(const struct aegis_err *err, int r)
{
    dp_log(DP_LOG_ERROR, "%s%s%s", err->where, err->where[0] ? ": " : "",
           err->msg[0] ? err->msg : aegis_strerror(r));
}

/* SIGHUP: re-reads --config and swaps it in through the same rules as PUT /config. */
static void reload(const struct dp_admin_backend *b, const char *config)
{
    struct dp_admin_response resp;
    char *text = NULL;
    size_t len = 0;
    int r;

    if (config == NULL) {
        dp_log(DP_LOG_WARNING, "SIGHUP: no --config to re-read (configurations come from the "
                               "admin API)");
        return;
    }
    r = read_file(config, &text, &len);
    if (r < 0) {
        dp_log(DP_LOG_ERROR, "SIGHUP: %s: %s; the current configuration keeps serving", config,
               r == -EFBIG ? "larger than the configuration size limit" : strerror(-r));
        return;
    }
    dp_admin_dispatch(b, "PUT", 3, "/config", 7, text, len, &resp);
    dp_log(resp.status == 200 ? DP_LOG_INFO : DP_LOG_ERROR, "SIGHUP: %s: %d %s: %.2000s", config,
           resp.status, resp.reason, resp.body);
    free(resp.body);
    free(text);
}

/* The sealed last good configuration, when there is one: 0 (served or none), else -1. */
static int serve_last_good(struct dp_control *ctl, const char *state_dir,
                           const struct aegis_keyring *ring)
{
    struct aegis_diags diags;
    struct aegis_err err;
    struct rconf *rc = NULL;
    char *doc = NULL, line[1024];
    size_t len = 0;
    int r;

    memset(&err, 0, sizeof(err));
    r = dp_lastgood_load(state_dir, ring, &doc, &len, &err);
    if (r == -ENOENT) {
        dp_log(DP_LOG_INFO, "no last good configuration in %s: waiting for PUT /config", state_dir);
        return 0;
    }
    if (r < 0) {
        print_err(&err, r);
        return -1;
    }
    aegis_diags_init(&diags);
    r = rconf_parse(doc, len, NULL, &rc, &diags);
    if (r < 0) {
        for (size_t i = 0; i < diags.n && i < 20; i++) {
            aegis_diag_format(&diags.v[i], line, sizeof(line));
            dp_log(DP_LOG_ERROR, "last good configuration: %s", line);
        }
        dp_log(DP_LOG_ERROR, "the last good configuration is no longer valid: waiting for PUT "
                             "/config");
        r = 0;
    } else {
        dp_log(DP_LOG_INFO, "serving the last good configuration (generation %lld) from %s",
               (long long)rc->generation, state_dir);
        r = dp_control_apply(ctl, rc, doc, len, &err);
        if (r < 0) {
            print_err(&err, r);
            r = -1;
        }
    }
    aegis_diags_dispose(&diags);
    rconf_unref(rc);
    dp_lastgood_free(doc, len);
    return r;
}

static int run(const struct flags *f, const struct aegis_keyring *ring, const char *state_dir)
{
    struct dp_control_opts copts = {f->workers, ring != NULL ? state_dir : NULL, ring};
    struct dp_control *ctl = dp_control_new(&copts);
    struct dp_admin_backend backend;
    struct dp_admin_opts aopts = {f->admin_socket, f->admin_listen, NULL};
    struct dp_admin *admin = NULL;
    struct dp_metrics_server *metrics = NULL;
    struct aegis_err err;
    sigset_t set;
    int sig = 0, status = 1, r;

    memset(&err, 0, sizeof(err));
    dp_control_backend(ctl, &backend);
    /* Blocked before any thread starts, so every thread inherits the mask and sigwait below is
     * the only place these signals are taken. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (f->access_log != NULL && (r = dp_accesslog_open(f->access_log, &err)) < 0) {
        print_err(&err, r);
        goto out;
    }
    if (f->metrics_listen != NULL &&
        (r = dp_metrics_server_start(f->metrics_listen, &metrics, &err)) < 0) {
        print_err(&err, r);
        goto out;
    }
    if (f->config != NULL) {
        char *doc = NULL;
        size_t len = 0;
        struct rconf *rc = load_config(f->config, &doc, &len);

        r = rc != NULL ? dp_control_apply(ctl, rc, doc, len, &err) : -AEGIS_E_INVALID;
        if (rc != NULL && r < 0)
            print_err(&err, r);
        rconf_unref(rc);
        free(doc);
        if (r < 0)
            goto out;
    } else if (ring != NULL && serve_last_good(ctl, state_dir, ring) < 0) {
        goto out;
    }
    if (f->admin_listen != NULL) {
        struct dp_admin_tls_opts tls = f->tls;

        tls.state_dir = state_dir;
        tls.ring = ring;
        r = dp_admin_tls_ctx_new(&tls, &aopts.ssl_ctx, &err);
        if (r < 0) {
            print_err(&err, r);
            goto out;
        }
    }
    if (f->admin_socket != NULL || f->admin_listen != NULL) {
        r = dp_admin_start(&aopts, &backend, &admin, &err);
        if (r < 0) {
            print_err(&err, r);
            goto out;
        }
        dp_log(DP_LOG_INFO, "admin API on%s%s%s%s", f->admin_socket ? " unix:" : "",
               f->admin_socket ? f->admin_socket : "", f->admin_listen ? " tls:" : "",
               f->admin_listen ? f->admin_listen : "");
    }
    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            break;
        reload(&backend, f->config);
    }
    dp_log(DP_LOG_INFO, "%s: finishing open connections", sig == SIGINT ? "SIGINT" : "SIGTERM");
    status = 0;
out:
    dp_admin_stop(admin); /* no request from here on; its thread stays until dp_admin_free */
    if (dp_control_stop(ctl) && dp_control_serving(ctl))
        dp_log(DP_LOG_INFO, "stopped");
    dp_control_free(ctl);
    dp_admin_free(admin);
    dp_metrics_server_stop(metrics);
    dp_accesslog_close();
    return status;
}

int main(int argc, char **argv)
{
    struct flags f;
    struct aegis_keyring ring;
    struct masterkey_source src = {0};
    struct aegis_err err;
    const char *state_dir;
    bool admin, last_good;
    int status, r;

    memset(&f, 0, sizeof(f));
    memset(&err, 0, sizeof(err));
    f.level = DP_LOG_INFO;
    dp_server_thread_buffers_unshared(); /* before any socket is made here */
    status = parse_flags(argc, argv, &f);
    if (status >= 0)
        return status;
    dp_log_set_level(f.level);
    if (f.check) {
        struct rconf *rc;

        if (f.config == NULL) {
            fprintf(stderr, PROG ": --check needs --config FILE\n");
            return 2;
        }
        rc = load_config(f.config, NULL, NULL);
        rconf_unref(rc);
        return rc != NULL ? 0 : 1;
    }
    admin = f.admin_socket != NULL || f.admin_listen != NULL;
    /* The last good configuration matters when configurations are pushed (the admin API), or
     * when asked for with --state-dir; a plain --config run leaves no state behind. */
    last_good = admin || f.state_dir != NULL;
    if (f.config == NULL && !admin && f.state_dir == NULL && f.dev_export == NULL) {
        fprintf(stderr, PROG ": nothing to serve: give --config FILE, an admin API "
                             "(--admin-socket/--admin-listen) or --state-dir with a last good "
                             "configuration\n\n");
        usage(stderr);
        return 2;
    }
    if (f.dev_export != NULL && !f.tls.dev) {
        fprintf(stderr, PROG ": --admin-dev-export needs --admin-dev\n");
        return 2;
    }
    state_dir = f.state_dir != NULL ? f.state_dir : store_state_dir_default();
    masterkey_ring_init(&ring);
    if (last_good || f.tls.dev || f.dev_export != NULL) {
        src.state_dir = state_dir;
        src.key_file = f.master_key_file;
        src.create = true;
        r = store__mkdir_private(state_dir, &err);
        if (r == 0)
            r = masterkey_ring_load(&ring, &src, &err);
        if (r < 0) {
            print_err(&err, r);
            masterkey_ring_dispose(&ring);
            return 1;
        }
    }
    if (f.dev_export != NULL) {
        f.tls.state_dir = state_dir;
        f.tls.ring = &ring;
        r = dp_admin_dev_export(&f.tls, f.dev_export, &err);
        if (r < 0)
            print_err(&err, r);
        else
            dp_log(DP_LOG_INFO,
                   "controller client bundle written to %s (the key is plaintext: "
                   "keep it private)",
                   f.dev_export);
        masterkey_ring_dispose(&ring);
        return r < 0 ? 1 : 0;
    }
    status = run(&f, last_good ? &ring : NULL, state_dir);
    masterkey_ring_dispose(&ring);
    return status;
}
