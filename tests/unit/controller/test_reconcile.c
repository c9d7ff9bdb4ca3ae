/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for controller/reconcile.c: a real watched directory (watch.h), a real store and
 * the local CA, time moved by hand, and a push callback that hands every document to the
 * dataplane's own parser (rconf_parse). Checked: the first step issues the implicit and explicit
 * Certificates, renders and pushes once, and writes Ready status files; a step with nothing due
 * does nothing; the next due time is the earliest renewal; renewal at that time re-issues and
 * pushes; a refused push is retried and reported on the Hosts; a removed resource loses its
 * status file and the configuration changes; max_issuances bounds a step. With workers, a step
 * only starts issuances, at most max_issuances out at once, and takes them back when the
 * descriptor says so; a Certificate removed while its job runs is dropped when it returns.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aegis/alloc.h"
#include "aegis/rconf.h"
#include "aegis/store.h"
#include "check.h"
#include "reconcile.h"
#include "testutil.h"
#include "watch.h"
#include "watchutil.h"

#define T0 1750000000LL
#define DAY 86400LL

static char tmpdir[] = "/tmp/aegis-test-reconcile-XXXXXX";
static char *secrets, *status; /* <tmpdir>/secrets, <tmpdir>/status */
static struct store *st;
static int64_t clk_ms = 1000;

/* What the push callback saw. */
static struct {
    int calls, refuse;
    struct rconf *last;
} pushes;

static int push(void *ctx, const char *json, size_t len, int64_t generation, struct aegis_err *err)
{
    struct aegis_diags d;
    struct rconf *rc = NULL;

    (void)ctx;
    pushes.calls++;
    if (pushes.refuse)
        return aegis_err_set(err, -AEGIS_E_INVALID, "dataplane", "test refusal");
    aegis_diags_init(&d);
    rconf_parse(json, len, NULL, &rc, &d);
    aegis_diags_dispose(&d);
    CHECK(rc != NULL && rc->generation == generation,
          "the pushed document parses, with its generation");
    rconf_unref(pushes.last);
    pushes.last = rc;
    return 0;
}

static char *P(const char *rel)
{
    static char buf[4][512];
    static int i;

    i = (i + 1) % 4;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", tmpdir, rel);
    return buf[i];
}

static void write_file(const char *rel, const char *text)
{
    FILE *f = fopen(P(rel), "w");

    fputs(text, f);
    fclose(f);
}

static int open_store(void)
{
    return testutil_store_open(P("state"), 0x33, &st, NULL);
}

/* Gives the reconciler the watcher's latest snapshot. */
static void hand_snapshot(struct reconciler *r, struct watch_source *w)
{
    struct watch_snapshot *s = watch_ref_snapshot(w);

    reconcile_set_snapshot(r, s);
    watch_snapshot_unref(s);
}

static const struct rconf_host *host_of(const struct rconf *rc, const char *name)
{
    for (size_t i = 0; rc != NULL && i < rc->n_hosts; i++) {
        if (strcmp(rc->hosts[i].name, name) == 0)
            return &rc->hosts[i];
    }
    return NULL;
}

static bool file_has(const char *rel, const char *needle)
{
    FILE *f = fopen(P(rel), "r");
    char buf[8192];
    size_t n;

    if (f == NULL)
        return false;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

#define RES(kind, name, spec)                                                                      \
    "---\napiVersion: aegis.dev/v1alpha1\nkind: " kind "\nmetadata: {name: " name "}\nspec: " spec \
    "\n"

/* A Certificate <name> of the local Issuer for <name>.test. */
#define LOCAL_CERT(name)                                                                           \
    RES("Certificate", name, "{issuerRef: {name: local}, dnsNames: [" name ".test]}")

static const char *const HTTP[] = {"127.0.0.1:8080"};
static const char *const HTTPS[] = {"127.0.0.1:8443"};

/* Watches <tmpdir>/rel (made by the caller); NULL (a failed check) when it cannot. */
static struct watch_source *watch_dir(const char *rel)
{
    const char *paths[1] = {P(rel)};
    struct watch_source *w = NULL;
    struct aegis_err err = {0};

    if (watch_new(paths, 1, NULL, clk_ms, &w, &err) < 0)
        CHECK(0, "watching a test directory");
    return w;
}

/* What every test's reconciler has: the store, the secrets, one HTTP listener. */
static struct reconcile_opts base_opts(void)
{
    return (struct reconcile_opts){
        .store = st, .secrets_dir = secrets, .render = {.http = HTTP, .n_http = 1}};
}

static void test_loop(void)
{
    const char *paths[1];
    struct watch_source *w = NULL;
    struct reconcile_opts o = {0};
    struct reconciler *r = NULL;
    struct reconcile_report rep;
    struct aegis_err err = {0};
    const struct rconf_host *h;
    int64_t next, renew;

    mkdir(P("res"), 0700);
    write_file("res/issuer.yaml", RES("Issuer", "local", "{ca: {}}"));
    write_file("res/app.yaml",
               RES("Host", "app",
                   "{hostnames: [app.test], upstreams: [{url: 'http://127.0.0.1:9000'}], "
                   "tls: {mode: acme, issuerRef: {name: local}}}"));
    write_file("res/spare.yaml", RES("Certificate", "spare",
                                     "{issuerRef: {name: local}, dnsNames: [spare.test], "
                                     "duration: 240h}"));
    paths[0] = P("res");
    CHECK_INT(watch_new(paths, 1, NULL, clk_ms, &w, &err), 0, "watching the directory");
    if (w == NULL) {
        printf("# %s\n", err.msg);
        return;
    }
    o = base_opts();
    o.status_dir = status;
    o.render.https = HTTPS;
    o.render.n_https = 1;
    o.push = push;
    CHECK_INT(reconcile_new(&o, &r, &err), 0, "reconciler made");
    hand_snapshot(r, w);

    next = reconcile_step(r, T0, &rep);
    CHECK(rep.issued == 2 && rep.rendered && rep.pushed && pushes.calls == 1,
          "first step: the implicit and the explicit Certificate issued, one push");
    h = host_of(pushes.last, "default/app");
    CHECK(h != NULL && h->cert != NULL && pushes.last->n_certs == 1,
          "the Host serves its implicit Certificate; the spare one is listed by SAN");
    CHECK(file_has("status/Certificate/default/app-tls.json", "\"Ready\"") &&
              file_has("status/Certificate/default/app-tls.json", "\"True\"") &&
              file_has("status/Host/default/app.json", "\"True\"") &&
              file_has("status/Issuer/default/local.json", "\"True\""),
          "status files say Ready for the Issuer, the Certificate and the Host");
    CHECK(!file_has("status/Certificate/default/app-tls.json", "PRIVATE KEY"),
          "no key in a status file");
    CHECK(next > T0 && next < T0 + 240 * DAY, "next due: the earliest renewal or resync");

    reconcile_step(r, T0 + 5, &rep);
    CHECK(rep.issued == 0 && !rep.rendered && pushes.calls == 1,
          "a step with nothing due issues and pushes nothing");

    /* spare (240 h) renews first: two thirds into its lifetime, give or take the jitter. */
    renew = T0 + 160 * 3600;
    for (int64_t t = T0 + 10; t < renew + 40 * 3600 && rep.issued == 0; t = next) {
        next = reconcile_step(r, t, &rep);
        if (next <= t)
            next = t + 1;
    }
    CHECK(rep.issued == 1 && rep.pushed && pushes.calls == 2,
          "the renewal comes at its time, by the timer, and is pushed");

    pushes.refuse = 1;
    write_file("res/spare.yaml", RES("Certificate", "spare",
                                     "{issuerRef: {name: local}, dnsNames: [spare.test, "
                                     "more.test], duration: 240h}"));
    CHECK(watchutil_settle(w, &clk_ms) >= 1, "the edit makes a snapshot");
    hand_snapshot(r, w);
    next = reconcile_step(r, renew + 41 * 3600, &rep);
    CHECK(rep.issued == 1 && rep.rendered && !rep.pushed && rep.push_error[0] != '\0',
          "a refused push is reported");
    CHECK(file_has("status/Host/default/app.json", "test refusal"), "... on the Host's status");
    CHECK(next <= renew + 41 * 3600 + 5, "... and retried soon");
    pushes.refuse = 0;
    reconcile_step(r, next, &rep);
    CHECK(rep.pushed, "the retry pushes");

    unlink(P("res/spare.yaml"));
    CHECK(watchutil_settle(w, &clk_ms) >= 1, "the removal makes a snapshot");
    hand_snapshot(r, w);
    reconcile_step(r, next + 10, &rep);
    CHECK(rep.pushed && pushes.last != NULL && pushes.last->n_certs == 0,
          "a removed Certificate leaves the configuration");
    CHECK(access(P("status/Certificate/default/spare.json"), F_OK) != 0,
          "... and its status file goes");
    reconcile_free(r);
    watch_free(w);
}

static void test_bounded(void)
{
    struct watch_source *w;
    struct reconcile_opts o = base_opts();
    struct reconciler *r = NULL;
    struct reconcile_report rep;
    struct aegis_err err = {0};
    int64_t next;

    mkdir(P("many"), 0700);
    write_file("many/all.yaml", RES("Issuer", "local", "{ca: {}}") LOCAL_CERT("c1") LOCAL_CERT("c2")
                                    LOCAL_CERT("c3"));
    w = watch_dir("many");
    if (w == NULL)
        return;
    o.max_issuances = 1;
    reconcile_new(&o, &r, &err);
    hand_snapshot(r, w);
    next = reconcile_step(r, T0 + 500 * DAY, &rep);
    CHECK(rep.issued == 1 && next == T0 + 500 * DAY,
          "max_issuances 1: one issuance, and the step says more is due now");
    reconcile_step(r, next, &rep);
    CHECK_INT(rep.issued, 1, "the next step issues the next one");
    reconcile_step(r, next, &rep);
    CHECK_INT(rep.issued, 1, "and the last");
    reconcile_step(r, next, &rep);
    CHECK_INT(rep.issued, 0, "then nothing");
    reconcile_free(r);
    watch_free(w);
}

/* Waits (up to 10 s) until the reconciler's workers have something back. */
static bool wait_fd(struct reconciler *r)
{
    struct pollfd pfd = {.fd = reconcile_fd(r), .events = POLLIN};

    return poll(&pfd, 1, 10000) == 1;
}

static void test_pool(void)
{
    struct watch_source *w;
    struct reconcile_opts o = base_opts();
    struct reconciler *r = NULL;
    struct reconcile_report rep;
    struct aegis_err err = {0};
    unsigned issued = 0, most = 0, steps = 0;
    int64_t t = T0 + 600 * DAY;
    int pushed_before;

    mkdir(P("pool"), 0700);
    write_file("pool/issuer.yaml", RES("Issuer", "local", "{ca: {}}"));
    write_file("pool/a.yaml", LOCAL_CERT("p1") LOCAL_CERT("p2"));
    write_file("pool/b.yaml", LOCAL_CERT("p3") LOCAL_CERT("p4") LOCAL_CERT("p5"));
    w = watch_dir("pool");
    if (w == NULL)
        return;
    o.status_dir = status;
    o.workers = 2;
    o.max_issuances = 2;
    o.push = push;
    CHECK_INT(reconcile_new(&o, &r, &err), 0, "a reconciler with 2 workers");
    CHECK(reconcile_fd(r) >= 0, "... has a descriptor to poll");
    pushed_before = pushes.calls;
    hand_snapshot(r, w);
    reconcile_step(r, t, &rep);
    CHECK(rep.issued == 0 && reconcile_in_flight(r) == 2,
          "a step only starts the work: two Certificates out, none issued yet");
    while (issued < 5 && steps++ < 50 && wait_fd(r)) {
        reconcile_step(r, t, &rep);
        issued += rep.issued;
        if (reconcile_in_flight(r) > most)
            most = reconcile_in_flight(r);
    }
    CHECK_INT(issued, 5, "every Certificate is issued as the jobs come back");
    CHECK(most <= 2, "never more than max_issuances out at once");
    CHECK(pushes.calls > pushed_before && pushes.last != NULL && pushes.last->n_certs == 5,
          "once the burst is over, all five are pushed");
    CHECK(file_has("status/Certificate/default/p5.json", "\"True\""), "statuses are written");

    /* An edit while a job is out, then the Certificate's file removed while it is out. */
    write_file("pool/b.yaml", RES("Certificate", "p3",
                                  "{issuerRef: {name: local}, dnsNames: "
                                  "[p3.test, p3b.test]}"));
    CHECK(watchutil_settle(w, &clk_ms) >= 1, "the edit makes a snapshot");
    hand_snapshot(r, w);
    reconcile_step(r, t + 1, &rep);
    CHECK(reconcile_in_flight(r) >= 1, "the edited Certificate's job is out");
    unlink(P("pool/b.yaml"));
    CHECK(watchutil_settle(w, &clk_ms) >= 1, "the removal makes a snapshot");
    hand_snapshot(r, w);
    reconcile_step(r, t + 2, &rep);
    for (steps = 0; reconcile_in_flight(r) > 0 && steps < 50 && wait_fd(r); steps++)
        reconcile_step(r, t + 2, &rep);
    reconcile_step(r, t + 3, &rep);
    CHECK(reconcile_in_flight(r) == 0 && pushes.last != NULL && pushes.last->n_certs == 2,
          "a Certificate removed while its job ran is dropped when the job comes back");
    CHECK(access(P("status/Certificate/default/p3.json"), F_OK) != 0,
          "... and no status file comes back for it");

    /* Freed with jobs out: they are finished or dropped, nothing leaks (sanitizers). */
    write_file("pool/c.yaml", LOCAL_CERT("p6"));
    CHECK(watchutil_settle(w, &clk_ms) >= 1, "a new file makes a snapshot");
    hand_snapshot(r, w);
    reconcile_step(r, t + 4, &rep);
    reconcile_free(r);
    watch_free(w);
}

int main(void)
{
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    secrets = aegis_asprintf("%s/secrets", tmpdir);
    status = aegis_asprintf("%s/status", tmpdir);
    if (open_store() == 0) {
        test_loop();
        test_bounded();
        test_pool();
    } else {
        CHECK(0, "store opened");
    }
    rconf_unref(pushes.last);
    store_close(st);
    testutil_rm_rf(tmpdir);
    free(secrets);
    free(status);
    return check_done();
}
