/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The control state (admin_control.h) and the GET /status document. Status reports only public
 * facts: names, serials, validity dates, SHA-256 fingerprints of certificates and upstream health;
 * never a key or anything derived from one.
 */
#include "admin_control.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "aegis/alloc.h"
#include "aegis/limits.h"
#include "gen.h"
#include "handler/handler.h"
#include "health.h"
#include "lastgood.h"
#include "log.h"
#include "server.h"

struct dp_control {
    pthread_mutex_t lock; /* one change at a time; guards everything below */
    struct dp_control_opts opts;
    struct dp_server *server; /* NULL until the first configuration */
    struct rconf *rc;         /* the configuration served */
    char *warnings;           /* its validation warnings, a JSON array */
    int64_t since;            /* when it became current (Unix seconds) */
    json_t *served;           /* host name -> {"fingerprint", "since"}: the certificate served */
    struct dp_lastgood_saver *saver; /* NULL without a state directory (or when it failed) */
};

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

static void iso8601(int64_t t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *json_time(int64_t t)
{
    char buf[32];

    iso8601(t, buf, sizeof(buf));
    return json_string(buf);
}

struct dp_control *dp_control_new(const struct dp_control_opts *o)
{
    struct dp_control *c = aegis_calloc(1, sizeof(*c));

    pthread_mutex_init(&c->lock, NULL);
    c->opts = *o;
    c->served = json_object();
    if (o->state_dir != NULL) {
        struct aegis_err err;

        memset(&err, 0, sizeof(err));
        if (dp_lastgood_saver_new(o->state_dir, o->ring, &c->saver, &err) < 0)
            dp_log(DP_LOG_ERROR, "%s: %s; configurations will not be kept", err.where, err.msg);
    }
    return c;
}

static unsigned workers_for(const struct dp_control *c, const struct rconf *rc)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    if (c->opts.workers > 0)
        return c->opts.workers;
    if (rc->workers > 0)
        return rc->workers;
    if (cores < 1)
        return 1;
    return cores > AEGIS_LIMIT_RCONF_WORKERS ? AEGIS_LIMIT_RCONF_WORKERS : (unsigned)cores;
}

/* The certificate host h serves (for its first name), or NULL; *source says where it is from. */
static const struct rconf_cert *served_cert(const struct rconf *rc, const struct rconf_host *h,
                                            const char **source)
{
    struct rconf_sel sel;

    *source = NULL;
    if (!h->tls || h->n_hostnames == 0 ||
        rconf_select(rc, h->hostnames[0], strlen(h->hostnames[0]), &sel) != 0)
        return NULL;
    *source = sel.cert == h->cert ? "bound" : sel.cert == rc->fallback ? "fallback" : "stored";
    return sel.cert;
}

/* Carries each host's "serving since" over from the previous configuration when it still serves
 * the same certificate (by fingerprint). */
static json_t *track_served(const json_t *prev, const struct rconf *rc, int64_t now)
{
    json_t *next = json_object();

    for (size_t i = 0; i < rc->n_hosts; i++) {
        const struct rconf_host *h = &rc->hosts[i];
        const char *source;
        const struct rconf_cert *cert = served_cert(rc, h, &source);
        const json_t *old = json_object_get(prev, h->name);
        const char *old_fp = json_string_value(json_object_get(old, "fingerprint"));
        json_int_t since = now;

        if (cert == NULL)
            continue;
        if (old_fp != NULL && strcmp(old_fp, cert->fingerprint) == 0)
            since = json_integer_value(json_object_get(old, "since"));
        json_object_set_new(
            next, h->name,
            json_pack("{s:s,s:I}", "fingerprint", cert->fingerprint, "since", since));
    }
    return next;
}

static int apply_locked(struct dp_control *c, struct rconf *rc, const char *doc, size_t len,
                        const char *warnings, struct aegis_err *err)
{
    int r;

    if (c->server == NULL) {
        struct dp_server *s = NULL;
        unsigned n = workers_for(c, rc);

        r = dp_server_new(rc, n, &s, err);
        if (r == 0)
            r = dp_server_start(s, err);
        if (r < 0) {
            if (s != NULL)
                dp_server_stop(s);
            dp_server_free(s);
            return r;
        }
        c->server = s;
        dp_log(DP_LOG_INFO,
               "serving generation %lld: %zu host(s), %zu HTTP and %zu HTTPS address(es), %u "
               "worker(s)",
               (long long)rc->generation, rc->n_hosts, rc->n_http, rc->n_https, n);
    } else {
        if (c->opts.workers == 0 && rc->workers > 0 && rc->workers != dp_server_workers(c->server))
            return aegis_err_set(err, -AEGIS_E_UNSUPPORTED, "workers",
                                 "the worker count differs from the running one (%u); restart "
                                 "the dataplane to change it",
                                 dp_server_workers(c->server));
        r = dp_server_swap(c->server, rc, err);
        if (r < 0)
            return r;
        dp_log(DP_LOG_INFO, "swapped to generation %lld (from %lld): %zu host(s)",
               (long long)rc->generation, (long long)c->rc->generation, rc->n_hosts);
    }
    {
        json_t *served = track_served(c->served, rc, now_s());

        json_decref(c->served);
        c->served = served;
    }
    rconf_unref(c->rc);
    c->rc = rconf_ref(rc);
    free(c->warnings);
    c->warnings = aegis_strdup(warnings != NULL ? warnings : "[]");
    c->since = now_s();

    /* Written after the answer, on the saver's thread (lastgood.h). */
    if (c->saver != NULL)
        dp_lastgood_saver_submit(c->saver, doc, len);
    return 0;
}

int dp_control_apply(struct dp_control *c, struct rconf *rc, const char *doc, size_t len,
                     struct aegis_err *err)
{
    int r;

    pthread_mutex_lock(&c->lock);
    r = apply_locked(c, rc, doc, len, NULL, err);
    pthread_mutex_unlock(&c->lock);
    return r;
}

bool dp_control_serving(struct dp_control *c)
{
    bool serving;

    pthread_mutex_lock(&c->lock);
    serving = c->server != NULL;
    pthread_mutex_unlock(&c->lock);
    return serving;
}

/* ---- the backend ------------------------------------------------------------------------------- */

static struct rconf *be_current(void *self)
{
    struct dp_control *c = self;
    struct rconf *rc;

    pthread_mutex_lock(&c->lock);
    rc = c->rc != NULL ? rconf_ref(c->rc) : NULL;
    pthread_mutex_unlock(&c->lock);
    return rc;
}

static int be_apply(void *self, struct rconf *prev, struct rconf *rc, const char *doc, size_t len,
                    const char *warnings, struct aegis_err *err)
{
    struct dp_control *c = self;
    int r;

    pthread_mutex_lock(&c->lock);
    if (c->rc != prev)
        r = -AEGIS_E_STATE;
    else
        r = apply_locked(c, rc, doc, len, warnings, err);
    pthread_mutex_unlock(&c->lock);
    return r;
}

static json_t *cert_json(const struct rconf_cert *cert)
{
    return json_pack("{s:s,s:o,s:o,s:s}", "serial", cert->serial, "notBefore",
                     json_time(cert->not_before), "notAfter", json_time(cert->not_after),
                     "fingerprint", cert->fingerprint);
}

static json_t *host_json(const struct dp_control *c, const struct dp_gen *g,
                         const struct rconf_host *h)
{
    const struct dp_vhost *v = dp_gen_vhost(g, h);
    json_t *names = json_array(), *ups = json_array(), *warn = json_array();
    json_t *out, *cert_obj = json_null();
    const char *source;
    const struct rconf_cert *cert = served_cert(c->rc, h, &source);

    for (size_t i = 0; i < h->n_hostnames; i++)
        json_array_append_new(names, json_string(h->hostnames[i]));
    for (size_t i = 0; i < h->n_upstreams; i++) {
        struct dp_upstream_report rep;
        json_t *u;

        dp_proxy_upstream_report(v, i, &rep);
        u = json_pack("{s:s,s:i,s:b,s:b}", "url", h->upstreams[i].url, "weight",
                      (int)h->upstreams[i].weight, "healthy", rep.healthy, "ejected", rep.ejected);
        json_object_set_new(u, "lastChange",
                            rep.last_change_ms > 0 ? json_time(rep.last_change_ms / 1000)
                                                   : json_null());
        rep.last_error[sizeof(rep.last_error) - 1] = '\0';
        json_object_set_new(u, "lastError", json_string(rep.last_error));
        json_array_append_new(ups, u);
    }
    if (h->upstream_tls.insecure_skip_verify)
        json_array_append_new(warn, json_string("upstreamTLS.insecureSkipVerify: upstream "
                                                "certificates are not verified"));
    if (cert != NULL) {
        const json_t *s = json_object_get(json_object_get(c->served, h->name), "since");

        cert_obj = cert_json(cert);
        json_object_set_new(cert_obj, "source", json_string(source));
        json_object_set_new(cert_obj, "since",
                            json_time(s != NULL ? json_integer_value(s) : c->since));
    }
    out = json_pack("{s:s,s:o,s:b,s:o,s:o,s:o}", "name", h->name, "hostnames", names, "tls", h->tls,
                    "certificate", cert_obj, "upstreams", ups, "warnings", warn);
    return out;
}

static char *be_status(void *self)
{
    struct dp_control *c = self;
    struct dp_gen *g = NULL;
    json_t *doc, *hosts, *certs;
    char sha[65], *text;

    pthread_mutex_lock(&c->lock);
    if (c->rc == NULL) {
        doc = json_pack("{s:b,s:n,s:n,s:n,s:[],s:[],s:[]}", "serving", 0, "generation", "sha256",
                        "since", "hosts", "certificates", "warnings");
        goto out;
    }
    g = dp_server_gen(c->server);
    hosts = json_array();
    for (size_t i = 0; i < c->rc->n_hosts; i++)
        json_array_append_new(hosts, host_json(c, g, &c->rc->hosts[i]));
    certs = json_array();
    for (size_t i = 0; i < c->rc->n_certs; i++) {
        json_t *o = cert_json(c->rc->certs[i].cert);

        json_object_set_new(o, "name", json_string(c->rc->certs[i].name));
        json_array_append_new(certs, o);
    }
    dp_admin_hex(c->rc->sha256, sizeof(c->rc->sha256), sha);
    doc = json_pack("{s:b,s:I,s:s,s:o,s:i,s:o,s:o,s:o}", "serving", 1, "generation",
                    (json_int_t)c->rc->generation, "sha256", sha, "since", json_time(c->since),
                    "workers", (int)dp_server_workers(c->server), "hosts", hosts, "certificates",
                    certs, "fallback",
                    c->rc->fallback != NULL ? cert_json(c->rc->fallback) : json_null());
    json_object_set_new(doc, "warnings", json_loads(c->warnings, JSON_DECODE_ANY, NULL));
    if (c->saver == NULL) {
        json_object_set_new(doc, "lastGood", json_pack("{s:s}", "state", "disabled"));
    } else {
        char lerr[AEGIS_ERR_MSG_MAX + AEGIS_ERR_WHERE_MAX + 8];
        const char *state = dp_lastgood_saver_state(c->saver, lerr, sizeof(lerr));

        json_object_set_new(doc, "lastGood",
                            lerr[0] != '\0' ? json_pack("{s:s,s:s}", "state", state, "error", lerr)
                                            : json_pack("{s:s}", "state", state));
    }
out:
    pthread_mutex_unlock(&c->lock);
    dp_gen_unref(g); /* never the last reference: the server or its graveyard holds one */
    text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (text == NULL)
        abort();
    return text;
}

static int be_test_upstream_tls(void *self, const char *name, char **body)
{
    struct dp_control *c = self;
    struct dp_gen *g = NULL;
    const struct rconf_host *h = NULL;

    pthread_mutex_lock(&c->lock);
    if (c->server != NULL)
        g = dp_server_gen(c->server);
    pthread_mutex_unlock(&c->lock);
    for (size_t i = 0; g != NULL && i < g->rc->n_hosts && h == NULL; i++) {
        if (strcmp(g->rc->hosts[i].name, name) == 0)
            h = &g->rc->hosts[i];
    }
    if (h == NULL) {
        json_t *doc = json_pack("{s:s}", "error", "no such host in the served configuration");

        *body = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        dp_gen_unref(g);
        return 404;
    }
    /* Blocks this (admin) thread for at most the handshake timeout. */
    *body = dp_admin_test_upstream_tls(dp_gen_vhost(g, h));
    dp_gen_unref(g);
    return 200;
}

void dp_control_backend(struct dp_control *c, struct dp_admin_backend *b)
{
    b->self = c;
    b->current = be_current;
    b->apply = be_apply;
    b->status = be_status;
    b->test_upstream_tls = be_test_upstream_tls;
}

bool dp_control_stop(struct dp_control *c)
{
    bool drained = true;

    pthread_mutex_lock(&c->lock);
    if (c->server != NULL)
        drained = dp_server_stop(c->server);
    pthread_mutex_unlock(&c->lock);
    return drained;
}

void dp_control_free(struct dp_control *c)
{
    if (c == NULL)
        return;
    dp_lastgood_saver_free(c->saver); /* writes what is pending */
    dp_server_free(c->server);
    rconf_unref(c->rc);
    free(c->warnings);
    json_decref(c->served);
    pthread_mutex_destroy(&c->lock);
    free(c);
}
