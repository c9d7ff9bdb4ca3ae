/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller daemon (daemon.h).
 */
#include "daemon.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "aegis/alloc.h"
#include "aegis/clock.h"
#include "aegis/limits.h"
#include "aegis/log.h"
#include "aegis/masterkey.h"
#include "aegis/pki.h"
#include "aegis/store.h"
#include "challenges.h"
#include "cmetrics.h"
#include "httpapi.h"
#include "issuer/ca.h"
#include "issuer/selfsigned.h"
#include "push.h"
#include "reconcile.h"
#include "secret.h"
#include "served.h"
#include "supervise.h"
#include "watch.h"

/* Names the fallback certificate covers when no Host has any. */
#define FALLBACK_NAME_NONE "aegis-fallback.invalid"
/* The loop wakes at least this often, to beat for /healthz (cmetrics.h) well within its
 * CMETRICS_HEARTBEAT_STALE_S even when nothing is due for minutes. */
#define DAEMON_HEARTBEAT_MS 5000

struct daemon {
    const struct daemon_opts *o;
    struct store *store;
    struct watch_source *watch;
    struct reconciler *rec;
    struct supervisor *sv;
    struct httpapi *http;
    struct push_target target;
    char *socket_path, *secrets_dir, *status_dir, *dp_state_dir;
    char *fallback_chain, *fallback_key;
    int sigfd;
    /* Written when an issuer changes the HTTP-01 challenge set from another thread: the loop
     * wakes and renders at once (the token must be served before the CA is told to look). */
    int wakefd;
    struct challenges *challenges;
    int64_t served_next_ms; /* the next GET /status (monotonic ms); 0: before the first push */
};

/* The name status.served gives the dataplane this daemon pushes to. */
#define DAEMON_DATAPLANE_NAME "local"

/* Monotonic seconds with sub-millisecond precision, for the metrics' durations. */
static double mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int push(void *ctx, const char *json, size_t len, int64_t generation, struct aegis_err *err)
{
    struct daemon *d = ctx;
    double started = mono_s();
    int rc = push_config(&d->target, json, len, err);

    cmetrics_push(rc == 0, err != NULL ? err->msg : NULL, mono_s() - started, generation);
    if (rc == 0)
        aegis_log(AEGIS_LOG_INFO, "push", "configuration %lld served by the dataplane at %s",
                  (long long)generation, push_target_name(&d->target));
    return rc;
}

/*
 * The fallback certificate, made in memory at start for the TLS hostnames of the first snapshot
 * (never stored: it is made again at every start, so its key is never on disk).
 */
static int make_fallback(struct daemon *d, struct watch_snapshot *snap, struct aegis_err *err)
{
    const struct aegis_resource_set *set = watch_snapshot_resources(snap);
    char **names = aegis_calloc(AEGIS_LIMIT_SANS + 1, sizeof(*names));
    STACK_OF(X509) *chain = NULL;
    EVP_PKEY *key = NULL;
    size_t n = 0, len;
    int rc;

    for (size_t i = 0; i < set->n && n < AEGIS_LIMIT_SANS; i++) {
        const struct aegis_resource *r = set->v[i];

        if (r->kind != AEGIS_KIND_HOST || r->spec.host.tls.mode == AEGIS_TLS_MODE_NONE)
            continue;
        for (size_t k = 0; k < r->spec.host.hostnames.n && n < AEGIS_LIMIT_SANS; k++)
            names[n++] = r->spec.host.hostnames.v[k];
    }
    if (n == 0)
        names[n++] = FALLBACK_NAME_NONE;
    rc = selfsigned_fallback(names, n, (int64_t)time(NULL), &chain, &key, err);
    if (rc == 0)
        rc = pki_chain_to_pem(chain, &d->fallback_chain, &len, err);
    if (rc == 0)
        rc = pki_key_to_pem(key, &d->fallback_key, &len, err);
    pki_chain_free(chain);
    EVP_PKEY_free(key);
    free(names);
    return rc;
}

static int open_store(struct daemon *d, struct aegis_err *err)
{
    struct aegis_keyring ring;
    struct masterkey_source src = {
        .state_dir = d->o->state_dir, .key_file = d->o->key_file, .create = true};
    int rc;

    masterkey_ring_init(&ring);
    rc = masterkey_ring_load(&ring, &src, err);
    if (rc == 0)
        rc = store_open_fs(d->o->state_dir, &ring, &d->store, err);
    masterkey_ring_dispose(&ring);
    return rc;
}

/* aegis-dataplane next to this program, else on PATH. */
static char *dataplane_path(const char *given)
{
    char self[PATH_MAX];
    ssize_t n;

    if (given != NULL)
        return aegis_strdup(given);
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        char *slash, *p;

        self[n] = '\0';
        slash = strrchr(self, '/');
        if (slash != NULL) {
            *slash = '\0';
            p = aegis_asprintf("%s/aegis-dataplane", self);
            if (access(p, X_OK) == 0)
                return p;
            free(p);
        }
    }
    return aegis_strdup("/usr/bin/aegis-dataplane");
}

static int start_dataplane(struct daemon *d, struct aegis_err *err)
{
    char *bin = dataplane_path(d->o->dataplane_bin);
    char *argv[16];
    size_t n = 0;
    int rc;

    argv[n++] = bin;
    argv[n++] = "--admin-socket";
    argv[n++] = d->socket_path;
    argv[n++] = "--state-dir";
    argv[n++] = d->dp_state_dir;
    argv[n] = NULL;
    rc = supervise_new(argv, &d->sv, err);
    free(bin);
    return rc;
}

static void wake(void *ctx)
{
    struct daemon *d = ctx;
    uint64_t one = 1;

    /* A full counter (EAGAIN) already means "wake up". */
    if (write(d->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        aegis_log(AEGIS_LOG_DEBUG, "controller", "eventfd write: %s", strerror(errno));
}

static void observe(void *ctx, const struct cmetrics_object *o)
{
    (void)ctx;
    cmetrics_object(o);
}

static int setup(struct daemon *d, struct aegis_err *err)
{
    const struct daemon_opts *o = d->o;
    struct reconcile_opts ro = {0};
    struct watch_snapshot *snap;
    sigset_t set;
    int rc;

    rc = open_store(d, err);
    if (rc < 0)
        return rc;
    d->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (d->wakefd < 0)
        return aegis_err_set(err, -errno, "controller", "eventfd: %s", strerror(errno));
    d->challenges = challenges_new(wake, d);
    d->secrets_dir = o->secrets_dir != NULL
                         ? aegis_strdup(o->secrets_dir)
                         : aegis_asprintf("%s/" SECRET_DIR_DEFAULT_SUBDIR, o->state_dir);
    d->status_dir = aegis_asprintf("%s/status", o->state_dir);
    d->dp_state_dir = aegis_asprintf("%s/dataplane", o->state_dir);
    d->socket_path = o->dataplane_socket != NULL
                         ? aegis_strdup(o->dataplane_socket)
                         : aegis_asprintf("%s/dataplane/admin.sock", o->state_dir);
    d->target.unix_socket = d->socket_path;
    rc = store__mkdir_private(d->dp_state_dir, err);
    if (rc < 0)
        return rc;
    /* The watcher first: libinotifytools needs its descriptor below 1024 (watch.h). */
    rc = watch_new(o->watch, o->n_watch, NULL, aegis_monotonic_ms(), &d->watch, err);
    if (rc < 0)
        return rc;
    snap = watch_ref_snapshot(d->watch);
    rc = make_fallback(d, snap, err);
    if (rc == 0) {
        ro.store = d->store;
        ro.workers = o->issue_workers > 0 ? o->issue_workers : RECONCILE_WORKERS_DEFAULT;
        ro.secrets_dir = d->secrets_dir;
        ro.status_dir = d->status_dir;
        ro.render.http = o->http;
        ro.render.n_http = o->n_http;
        ro.render.https = o->https;
        ro.render.n_https = o->n_https;
        ro.render.workers = o->workers;
        ro.render.redirect_port = (uint16_t)o->redirect_port;
        ro.render.fallback_chain_pem = d->fallback_chain;
        ro.render.fallback_key_pem = d->fallback_key;
        ro.push = push;
        ro.push_ctx = d;
        ro.observe = observe;
        ro.challenges = d->challenges;
        rc = reconcile_new(&ro, &d->rec, err);
    }
    if (rc == 0)
        reconcile_set_snapshot(d->rec, snap);
    watch_snapshot_unref(snap);
    if (rc < 0)
        return rc;
    if (!o->no_dataplane) {
        rc = start_dataplane(d, err);
        if (rc < 0)
            return rc;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    d->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (d->sigfd < 0)
        return aegis_err_set(err, -errno, "controller", "signalfd: %s", strerror(errno));
    /* After the signals are blocked: the HTTP thread inherits the mask, so SIGTERM reaches the
     * signalfd and never that thread. */
    if (o->http_listen != NULL)
        return httpapi_start(o->http_listen, d->status_dir, &d->http, err);
    return 0;
}

static void log_snapshot(struct watch_snapshot *snap)
{
    const struct aegis_diags *diags = watch_snapshot_diags(snap);
    char line[1024];

    for (size_t i = 0; i < diags->n; i++) {
        aegis_diag_format(&diags->v[i], line, sizeof(line));
        aegis_log(diags->v[i].sev == AEGIS_SEV_ERROR ? AEGIS_LOG_ERROR : AEGIS_LOG_WARN, "watch",
                  "%s", line);
    }
    aegis_log(AEGIS_LOG_INFO, "watch", "%zu resource(s) read", watch_snapshot_resources(snap)->n);
}

static void log_report(const struct reconcile_report *rep)
{
    if (rep->issued > 0 || rep->failed > 0)
        aegis_log(AEGIS_LOG_INFO, "reconcile", "%zu certificate(s) issued, %zu failed", rep->issued,
                  rep->failed);
    if (rep->push_error[0] != '\0')
        aegis_log(AEGIS_LOG_WARN, "push", "%s", rep->push_error);
}

/*
 * Reads what the dataplane serves (GET /status) into the Hosts' status.served, after each push
 * and every SERVED_POLL_S. A dataplane that cannot be read leaves the statuses as they were.
 */
static void read_served(struct daemon *d, int64_t now_ms, int64_t now)
{
    struct aegis_err e = {0};
    json_t *st = NULL;
    size_t mismatch;

    d->served_next_ms = now_ms + (int64_t)SERVED_POLL_S * 1000;
    if (push_status(&d->target, &st, &e) < 0) {
        aegis_log(AEGIS_LOG_DEBUG, "served", "cannot read the dataplane's status: %s", e.msg);
        return;
    }
    mismatch = reconcile_served(d->rec, st, DAEMON_DATAPLANE_NAME, now);
    if (mismatch > 0)
        aegis_log(AEGIS_LOG_WARN, "served",
                  "%zu Host(s) served another certificate than the one issued for over %d s",
                  mismatch, SERVED_GRACE_S_DEFAULT);
    json_decref(st);
}

static int loop(struct daemon *d)
{
    int64_t due = 0; /* reconcile: Unix seconds */

    for (;;) {
        int64_t now_ms = aegis_monotonic_ms(), watch_next = WATCH_NO_DEADLINE, sv_next = INT64_MAX,
                wait_ms;
        int64_t now = (int64_t)time(NULL);
        struct pollfd pfd[4] = {{.fd = watch_fd(d->watch), .events = POLLIN},
                                {.fd = d->sigfd, .events = POLLIN},
                                {.fd = d->wakefd, .events = POLLIN},
                                {.fd = reconcile_fd(d->rec), .events = POLLIN}};
        struct reconcile_report rep;
        int rc = watch_process(d->watch, now_ms, &watch_next);

        cmetrics_heartbeat(now);
        if (rc == 1) {
            struct watch_snapshot *snap = watch_ref_snapshot(d->watch);

            log_snapshot(snap);
            reconcile_set_snapshot(d->rec, snap);
            watch_snapshot_unref(snap);
            due = 0;
        }
        if (d->sv != NULL && supervise_poll(d->sv, now_ms, &sv_next) == 1) {
            reconcile_repush(d->rec);
            due = 0;
        }
        if (due <= now) {
            double started = mono_s();

            due = reconcile_step(d->rec, now, &rep);
            cmetrics_step(&rep, mono_s() - started);
            log_report(&rep);
            if (rep.pushed) {
                read_served(d, now_ms, now);
                due = now; /* the next step writes the statuses that changed */
                continue;
            }
            if (d->o->once && rep.push_error[0] == '\0' && due > now &&
                reconcile_in_flight(d->rec) == 0)
                return 0;
        }
        if (d->served_next_ms != 0 && d->served_next_ms <= now_ms) {
            read_served(d, now_ms, now);
            due = now;
            continue;
        }
        wait_ms = (due - now) * 1000;
        if (watch_next != WATCH_NO_DEADLINE && watch_next - now_ms < wait_ms)
            wait_ms = watch_next - now_ms;
        if (sv_next != INT64_MAX && sv_next - now_ms < wait_ms)
            wait_ms = sv_next - now_ms;
        if (d->served_next_ms != 0 && d->served_next_ms - now_ms < wait_ms)
            wait_ms = d->served_next_ms - now_ms;
        if (wait_ms < 0)
            wait_ms = 0;
        if (wait_ms > DAEMON_HEARTBEAT_MS)
            wait_ms = DAEMON_HEARTBEAT_MS;
        if (poll(pfd, 4, (int)wait_ms) > 0 && (pfd[2].revents & POLLIN)) {
            uint64_t n;

            if (read(d->wakefd, &n, sizeof(n)) < 0 && errno != EAGAIN)
                aegis_log(AEGIS_LOG_DEBUG, "controller", "eventfd read: %s", strerror(errno));
            due = 0;
        }
        if (pfd[3].revents & POLLIN)
            due = 0; /* issuances came back; the step takes them */
        if (pfd[1].revents & POLLIN) {
            struct signalfd_siginfo si;

            if (read(d->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si) && si.ssi_signo == SIGHUP) {
                /* Something outside changed the store (aegisctl certificate revoke): look at
                 * every object again now rather than at the periodic resync. */
                aegis_log(AEGIS_LOG_INFO, "controller", "SIGHUP: resyncing every object");
                reconcile_resync_all(d->rec, (int64_t)time(NULL));
                due = 0;
            } else if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM) {
                aegis_log(AEGIS_LOG_INFO, "controller", "%s: stopping",
                          si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
                return 0;
            }
        }
    }
}

int daemon_run(const struct daemon_opts *o)
{
    struct daemon d = {.o = o, .sigfd = -1, .wakefd = -1};
    struct aegis_err err = {0};
    int status = 1;

    if (setup(&d, &err) < 0)
        aegis_log(AEGIS_LOG_ERROR, "controller", "%s%s%s", err.where, err.where[0] ? ": " : "",
                  err.msg);
    else
        status = loop(&d);
    httpapi_stop(d.http);
    supervise_free(d.sv);
    reconcile_free(d.rec);
    ca_local_forget();
    challenges_free(d.challenges);
    if (d.wakefd >= 0)
        close(d.wakefd);
    watch_free(d.watch);
    store_close(d.store);
    if (d.sigfd >= 0)
        close(d.sigfd);
    free(d.socket_path);
    free(d.secrets_dir);
    free(d.status_dir);
    free(d.dp_state_dir);
    free(d.fallback_chain);
    pki_secret_free_str(d.fallback_key);
    return status;
}
