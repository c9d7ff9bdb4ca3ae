/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aegis-controller: flags and wiring only. The controller watches Issuer, Certificate and Host
 * resources in YAML directories, obtains and renews certificates, and pushes the rendered
 * configuration to a dataplane (by default a local one it starts). See docs/controller.md.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/limits.h"
#include "aegis/log.h"
#include "aegis/store.h"
#include "daemon.h"
#include "reconcile.h"
#include "workpool.h"

/* A number macro as a string literal, for the usage text. */
#define STR_(x) #x
#define STR(x) STR_(x)

#define PROG "aegis-controller"
/* Listener addresses per kind on the command line. */
#define LISTEN_MAX 16

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: " PROG " --watch DIR [--watch DIR ...] [options]\n"
        "\n"
        "The Aegis controller: reconciles Issuer, Certificate and Host resources read from\n"
        "YAML directories into certificates (kept encrypted in the state directory) and a\n"
        "configuration pushed to aegis-dataplane. SIGTERM or SIGINT stop it; SIGHUP\n"
        "makes every object due at once (after aegisctl certificate revoke).\n"
        "\n"
        "Options:\n"
        "  -w, --watch PATH           a directory (or file) of resources; repeatable\n"
        "  -d, --state-dir DIR        store, status files, local dataplane state\n"
        "                             (default $" STORE_STATE_DIR_ENV
        ", else " STORE_STATE_DIR_DEFAULT ")\n"
        "  -k, --master-key-file F    the master key (default $AEGIS_MASTER_KEY, else\n"
        "                             <state>/master.key, made on first run)\n"
        "      --secrets-dir DIR      where secretRefs resolve (default <state>/secrets)\n"
        "      --http ADDR:PORT       a plain HTTP listener of the dataplane; repeatable\n"
        "                             (default 127.0.0.1:8080)\n"
        "      --https ADDR:PORT      an HTTPS listener of the dataplane; repeatable\n"
        "                             (default 127.0.0.1:8443)\n"
        "      --redirect-port N      port written in https:// redirects\n"
        "      --workers N            dataplane worker threads (default: its own)\n"
        "      --issue-workers N      Certificates issued at once, each on its own thread\n"
        "                             (default " STR(
            RECONCILE_WORKERS_DEFAULT) ")\n"
                                       "      --dataplane-socket P   the dataplane's admin socket\n"
                                       "                             (default "
                                       "<state>/dataplane/admin.sock)\n"
                                       "      --no-dataplane         do not start a local "
                                       "dataplane; push to the socket\n"
                                       "      --dataplane-bin PATH   the dataplane program "
                                       "(default: next to this one)\n"
                                       "      --http-listen ADDR:PORT  serve the read-only status "
                                       "API, /healthz, /readyz\n"
                                       "                             and /metrics there (plain "
                                       "HTTP; default: off)\n"
                                       "      --once                 exit once everything due is "
                                       "done and pushed\n"
                                       "  -l, --log-level LEVEL      error, warn, info (default) "
                                       "or debug\n"
                                       "  -h, --help                 show this help and exit\n"
                                       "  -V, --version              show the version and exit\n");
}

static void log_to_stderr(enum aegis_log_level level, const char *line, void *arg)
{
    (void)level;
    (void)arg;
    fprintf(stderr, "%s\n", line);
}

enum {
    OPT_SECRETS = 256,
    OPT_HTTP,
    OPT_HTTPS,
    OPT_REDIRECT,
    OPT_WORKERS,
    OPT_ISSUE_WORKERS,
    OPT_SOCKET,
    OPT_NO_DP,
    OPT_DP_BIN,
    OPT_ONCE,
    OPT_HTTP_LISTEN,
};

static int number(const char *s, long max, unsigned *out)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (end == s || *end != '\0' || v < 1 || v > max)
        return -1;
    *out = (unsigned)v;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"watch", required_argument, NULL, 'w'},
        {"state-dir", required_argument, NULL, 'd'},
        {"master-key-file", required_argument, NULL, 'k'},
        {"secrets-dir", required_argument, NULL, OPT_SECRETS},
        {"http", required_argument, NULL, OPT_HTTP},
        {"https", required_argument, NULL, OPT_HTTPS},
        {"redirect-port", required_argument, NULL, OPT_REDIRECT},
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"issue-workers", required_argument, NULL, OPT_ISSUE_WORKERS},
        {"dataplane-socket", required_argument, NULL, OPT_SOCKET},
        {"no-dataplane", no_argument, NULL, OPT_NO_DP},
        {"dataplane-bin", required_argument, NULL, OPT_DP_BIN},
        {"once", no_argument, NULL, OPT_ONCE},
        {"http-listen", required_argument, NULL, OPT_HTTP_LISTEN},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    static const char *default_http[] = {"127.0.0.1:8080"};
    static const char *default_https[] = {"127.0.0.1:8443"};
    const char *watch[AEGIS_LIMIT_WATCH_PATHS], *http[LISTEN_MAX], *https[LISTEN_MAX];
    struct daemon_opts o = {.state_dir = store_state_dir_default()};
    enum aegis_log_level level = AEGIS_LOG_INFO;
    int c;

    while ((c = getopt_long(argc, argv, "w:d:k:l:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'w':
            if (o.n_watch == AEGIS_LIMIT_WATCH_PATHS) {
                fprintf(stderr, PROG ": at most %d --watch paths\n", AEGIS_LIMIT_WATCH_PATHS);
                return 2;
            }
            watch[o.n_watch++] = optarg;
            break;
        case 'd':
            o.state_dir = optarg;
            break;
        case 'k':
            o.key_file = optarg;
            break;
        case OPT_SECRETS:
            o.secrets_dir = optarg;
            break;
        case OPT_HTTP:
        case OPT_HTTPS: {
            const char **v = c == OPT_HTTP ? http : https;
            size_t *n = c == OPT_HTTP ? &o.n_http : &o.n_https;

            if (*n == LISTEN_MAX) {
                fprintf(stderr, PROG ": at most %d addresses per --http/--https\n", LISTEN_MAX);
                return 2;
            }
            v[(*n)++] = optarg;
            break;
        }
        case OPT_REDIRECT:
            if (number(optarg, 65535, &o.redirect_port) < 0) {
                fprintf(stderr, PROG ": --redirect-port: \"%s\" is not a port\n", optarg);
                return 2;
            }
            break;
        case OPT_WORKERS:
            if (number(optarg, AEGIS_LIMIT_RCONF_WORKERS, &o.workers) < 0) {
                fprintf(stderr, PROG ": --workers: \"%s\" is not a number from 1 to %d\n", optarg,
                        AEGIS_LIMIT_RCONF_WORKERS);
                return 2;
            }
            break;
        case OPT_ISSUE_WORKERS:
            if (number(optarg, WORKPOOL_THREADS_MAX, &o.issue_workers) < 0 ||
                o.issue_workers == 0) {
                fprintf(stderr, PROG ": --issue-workers: \"%s\" is not a number from 1 to %d\n",
                        optarg, WORKPOOL_THREADS_MAX);
                return 2;
            }
            break;
        case OPT_SOCKET:
            o.dataplane_socket = optarg;
            break;
        case OPT_NO_DP:
            o.no_dataplane = true;
            break;
        case OPT_DP_BIN:
            o.dataplane_bin = optarg;
            break;
        case OPT_ONCE:
            o.once = true;
            break;
        case OPT_HTTP_LISTEN:
            o.http_listen = optarg;
            break;
        case 'l':
            if (aegis_log_level_parse(optarg, &level) < 0) {
                fprintf(stderr, PROG ": --log-level: \"%s\" is not error, warn, info or debug\n",
                        optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf(PROG " %s\n", AEGIS_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc || o.n_watch == 0) {
        fprintf(stderr, PROG ": %s\n\n",
                optind < argc ? "unexpected argument" : "--watch DIR is required");
        usage(stderr);
        return 2;
    }
    o.watch = watch;
    o.http = o.n_http > 0 ? http : default_http;
    o.n_http = o.n_http > 0 ? o.n_http : 1;
    o.https = o.n_https > 0 ? https : default_https;
    o.n_https = o.n_https > 0 ? o.n_https : 1;
    aegis_log_set_sink(log_to_stderr, NULL);
    aegis_log_set_level(level);
    return daemon_run(&o);
}
