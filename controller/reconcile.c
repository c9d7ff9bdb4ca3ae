/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The reconcile loop's core (reconcile.h). Objects live in one table keyed by "Kind/ns/name" and
 * in one min-heap by due time. A snapshot change marks every object of the new snapshot due, adds
 * the implicit Certificates of Hosts, and drops objects that are gone (their status files too;
 * stored certificates stay in the store, where history and `aegisctl store` manage them).
 */
#include "reconcile.h"

#include <errno.h>
#include <limits.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aegis/alloc.h"
#include "aegis/log.h"
#include "aegis/pki.h"
#include "aegis/resource.h"
#include "aegis/store.h"
#include "certsync.h"
#include "challenges.h"
#include "cmetrics.h"
#include "decide.h"
#include "issuer/ca.h"
#include "issuer/issuer.h"
#include "revoker.h"
#include "secret.h"
#include "served.h"
#include "status.h"
#include "watch.h"
#include "workpool.h"

#define HAS(obj, field) (((obj)->present >> (field)) & 1u)
/* "Certificate/" + namespace + "/" + name + NUL */
#define KEY_MAX (16 + STORE_NS_MAX + STORE_NAME_MAX + 2)
#define NOT_QUEUED ((size_t)-1)
/* A refused or failed push is tried again this soon (with whatever changed meanwhile). */
#define RECONCILE_PUSH_RETRY_S 2
/* While a burst of issuances is left over for the next steps, the configuration is rendered and
 * pushed at most this often: each render reads every stored certificate and each push makes the
 * dataplane parse the whole document, so rendering after every step of 10,000 issuances would
 * cost more than the issuances. */
#define RECONCILE_BURST_RENDER_S 5

enum obj_kind { OBJ_ISSUER, OBJ_CERTIFICATE, OBJ_HOST };
static const char *const obj_kind_names[] = {"Issuer", "Certificate", "Host"};
/* The report's kinds are the objects' kinds. */
const char *const reconcile_kind_names[RECONCILE_KIND_COUNT] = {"Issuer", "Certificate", "Host"};

struct obj {
    enum obj_kind kind;
    /* The flags first, together: scattered between pointers each would cost 7 bytes of padding. */
    bool live;            /* in the current snapshot */
    bool implicit;        /* Certificate: made for a Host (implicit_spec is owned) */
    bool synced;          /* Certificate: decision holds a result */
    bool issuer_ready;    /* Issuer */
    bool status_dirty;    /* on r->dirty: the status changed since it was written */
    bool served_mismatch; /* Host: the last comparison said MISMATCH */
    /* Certificate: made due again while its step is in flight, or removed from the table
     * meanwhile (freed when the job comes back). */
    bool resync;
    bool gone;
    char key[KEY_MAX];
    char ns[STORE_NS_MAX + 1];
    char name[STORE_NAME_MAX + 1];
    struct obj *next_in_bucket;
    int64_t due;
    size_t heap_index;
    const struct aegis_resource *res;      /* in the current snapshot; NULL for an implicit one */
    const struct aegis_resource *prev_res; /* res in the snapshot before (while adopting) */
    /* Certificate */
    struct aegis_certificate_spec implicit_spec; /* owned when implicit */
    struct certsync_state cs;
    struct decide_cert_result decision;
    /* Issuer */
    char issuer_message[AEGIS_ERR_MSG_MAX];
    struct aegis_issuer_status issuer_status;
    /* Host */
    struct aegis_host_status host_status;
    struct served_state served;              /* issued against served (served.h) */
    char served_issued[PKI_SERIAL_HEX_SIZE]; /* the serial rendered for the Host; "": none */
    char served_cert[256];                   /* the Certificate rendered for the Host; "": none */
    /* Certificate: its step in flight on the pool (the object outlives it). */
    struct cert_job *job;
    /* Certificate: what the renderer read from the store last (render_cache_*): plain PEM in
     * memory only, wiped when dropped. */
    char *cache_chain, *cache_key;
    char cache_serial[PKI_SERIAL_HEX_SIZE];
    int64_t cache_not_after;
};

struct reconciler {
    struct reconcile_opts opts;
    struct watch_snapshot *snap, *pending;
    struct obj **buckets;
    size_t n_buckets, n_objs;
    struct obj **heap;
    size_t heap_n, heap_cap;
    unsigned char pushed_digest[SHA256_DIGEST_LENGTH]; /* of the last accepted content */
    bool pushed_once;
    int64_t generation;
    char push_error[AEGIS_ERR_MSG_MAX];
    int push_rc;                  /* of the last push; -EIO: the dataplane was not reached */
    int64_t last_render;          /* Unix seconds of the last render */
    bool render_pending;          /* a render was put off during a burst */
    size_t served_mismatch;       /* Hosts whose served certificate lastingly differs (served.h) */
    uint64_t challenges_rendered; /* the challenge set's version in the last render */
    struct workpool *pool;        /* NULL: Certificates are synced on the step's thread */
    struct revoker *revoker;      /* revokeOnDelete of deleted Certificates (revoker.h) */
    /* Objects whose status changed since it was last written (each once: o->status_dirty), so
     * that a step writes them without a walk over 10,000 objects. */
    struct obj **dirty;
    size_t n_dirty, dirty_cap;
    bool stored; /* a job stored a certificate since the last render */
};

/* ---- the table ---------------------------------------------------------------------------- */

static size_t hash_key(const char *s)
{
    size_t h = 14695981039346656037u; /* FNV-1a */

    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static struct obj *find(const struct reconciler *r, const char *key)
{
    struct obj *o;

    if (r->n_buckets == 0)
        return NULL;
    for (o = r->buckets[hash_key(key) & (r->n_buckets - 1)]; o != NULL; o = o->next_in_bucket) {
        if (strcmp(o->key, key) == 0)
            return o;
    }
    return NULL;
}

static void grow(struct reconciler *r)
{
    size_t n = r->n_buckets ? r->n_buckets * 2 : 64;
    struct obj **b = aegis_calloc(n, sizeof(*b));

    for (size_t i = 0; i < r->n_buckets; i++) {
        struct obj *o = r->buckets[i], *next;

        for (; o != NULL; o = next) {
            size_t at = hash_key(o->key) & (n - 1);

            next = o->next_in_bucket;
            o->next_in_bucket = b[at];
            b[at] = o;
        }
    }
    free(r->buckets);
    r->buckets = b;
    r->n_buckets = n;
}

static struct obj *add(struct reconciler *r, enum obj_kind kind, const char *ns, const char *name)
{
    struct obj *o;
    size_t at;

    if (r->n_objs >= r->n_buckets)
        grow(r);
    o = aegis_calloc(1, sizeof(*o));
    o->kind = kind;
    snprintf(o->ns, sizeof(o->ns), "%s", ns);
    snprintf(o->name, sizeof(o->name), "%s", name);
    snprintf(o->key, sizeof(o->key), "%s/%s/%s", obj_kind_names[kind], o->ns, o->name);
    o->heap_index = NOT_QUEUED;
    at = hash_key(o->key) & (r->n_buckets - 1);
    o->next_in_bucket = r->buckets[at];
    r->buckets[at] = o;
    r->n_objs++;
    return o;
}

/* ---- the heap ----------------------------------------------------------------------------- */

/* Earlier first; among equal due times Issuers, then Certificates, then Hosts. */
static bool before(const struct obj *a, const struct obj *b)
{
    return a->due < b->due || (a->due == b->due && a->kind < b->kind);
}

static void heap_swap(struct reconciler *r, size_t a, size_t b)
{
    struct obj *t = r->heap[a];

    r->heap[a] = r->heap[b];
    r->heap[b] = t;
    r->heap[a]->heap_index = a;
    r->heap[b]->heap_index = b;
}

static void heap_up(struct reconciler *r, size_t i)
{
    while (i > 0 && before(r->heap[i], r->heap[(i - 1) / 2])) {
        heap_swap(r, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(struct reconciler *r, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;

        if (l < r->heap_n && before(r->heap[l], r->heap[m]))
            m = l;
        if (l + 1 < r->heap_n && before(r->heap[l + 1], r->heap[m]))
            m = l + 1;
        if (m == i)
            return;
        heap_swap(r, i, m);
        i = m;
    }
}

static void heap_remove(struct reconciler *r, struct obj *o)
{
    size_t i = o->heap_index;

    if (i == NOT_QUEUED)
        return;
    heap_swap(r, i, --r->heap_n);
    o->heap_index = NOT_QUEUED;
    if (i < r->heap_n) {
        heap_up(r, i);
        heap_down(r, i);
    }
}

/* Makes o due at when (earlier than a due time it has; 0 leaves it unqueued). */
static void schedule(struct reconciler *r, struct obj *o, int64_t when)
{
    if (when <= 0)
        return;
    if (o->heap_index != NOT_QUEUED) {
        if (o->due <= when)
            return;
        o->due = when;
        heap_up(r, o->heap_index);
        return;
    }
    if (r->heap_n == r->heap_cap) {
        r->heap_cap = r->heap_cap ? r->heap_cap * 2 : 64;
        r->heap = aegis_realloc(r->heap, r->heap_cap * sizeof(*r->heap));
    }
    o->due = when;
    o->heap_index = r->heap_n;
    r->heap[r->heap_n++] = o;
    heap_up(r, o->heap_index);
}

/* ---- status files ------------------------------------------------------------------------- */

static json_t *status_of(const struct obj *o)
{
    switch (o->kind) {
    case OBJ_ISSUER:
        return status_to_json(&api_t_issuer_status, &o->issuer_status);
    case OBJ_CERTIFICATE:
        return status_to_json(&api_t_certificate_status, &o->cs.status);
    case OBJ_HOST:
        return status_to_json(&api_t_host_status, &o->host_status);
    }
    return NULL;
}

static char *status_path(const struct reconciler *r, const struct obj *o)
{
    return aegis_asprintf("%s/%s/%s/%s.json", r->opts.status_dir, obj_kind_names[o->kind], o->ns,
                          o->name);
}

static int write_status(const struct reconciler *r, const struct obj *o, struct aegis_err *err)
{
    json_t *doc = json_pack("{s:s, s:s, s:s, s:o}", "kind", obj_kind_names[o->kind], "namespace",
                            o->ns, "name", o->name, "status", status_of(o));
    char *path = status_path(r, o), *dir = aegis_strdup(path), *text;
    int rc;

    *strrchr(dir, '/') = '\0';
    text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
    rc = store__mkdir_private(dir, err);
    if (rc == 0)
        /* Not fsync'd: a status is derived and rebuilt from the store after a crash, and
         * 10,000 of them at two fsyncs each would hold the loop for seconds. */
        rc = store__write_file_flags(path, text, strlen(text),
                                     STORE_WRITE_REPLACE | STORE_WRITE_NO_SYNC, err);
    free(text);
    free(dir);
    free(path);
    json_decref(doc);
    return rc;
}

/* ---- objects from the snapshot ------------------------------------------------------------ */

static void render_cache_drop(struct obj *o)
{
    pki_secret_free_str(o->cache_key);
    free(o->cache_chain);
    o->cache_key = NULL;
    o->cache_chain = NULL;
    o->cache_serial[0] = '\0';
}

static void obj_free(struct obj *o)
{
    render_cache_drop(o);
    if (o->implicit)
        api_dispose(&api_t_certificate_spec, &o->implicit_spec);
    certsync_state_dispose(&o->cs);
    api_dispose(&api_t_issuer_status, &o->issuer_status);
    api_dispose(&api_t_host_status, &o->host_status);
    free(o);
}

static void mark_dirty(struct reconciler *r, struct obj *o)
{
    if (o->status_dirty)
        return;
    o->status_dirty = true;
    if (r->n_dirty == r->dirty_cap) {
        r->dirty_cap = r->dirty_cap ? r->dirty_cap * 2 : 64;
        r->dirty = aegis_realloc(r->dirty, r->dirty_cap * sizeof(*r->dirty));
    }
    r->dirty[r->n_dirty++] = o;
}

/* o leaves the table: it must not stay on the dirty list (removals are rare, the list short). */
static void unmark_dirty(struct reconciler *r, struct obj *o)
{
    for (size_t i = 0; o->status_dirty && i < r->n_dirty; i++) {
        if (r->dirty[i] == o) {
            r->dirty[i] = r->dirty[--r->n_dirty];
            o->status_dirty = false;
        }
    }
}

static struct obj *ensure(struct reconciler *r, enum obj_kind kind, const char *ns,
                          const char *name)
{
    char key[KEY_MAX];
    struct obj *o;

    snprintf(key, sizeof(key), "%s/%s/%s", obj_kind_names[kind], ns, name);
    o = find(r, key);
    return o != NULL ? o : add(r, kind, ns, name);
}

/* ---- metrics ------------------------------------------------------------------------------ */

/* ---- HTTP-01 challenges (challenges.h) ------------------------------------------------------ */

static const struct issuer_http01 *http01_of(const struct reconciler *r)
{
    return r->opts.challenges != NULL ? challenges_http01(r->opts.challenges) : NULL;
}

/* Whether the challenge set changed since the last render. */
static bool challenges_changed(const struct reconciler *r)
{
    return r->opts.challenges != NULL &&
           challenges_version(r->opts.challenges) != r->challenges_rendered;
}

/* Puts the current challenge set into the render settings (snap keeps the copy). */
static void challenges_fill(struct reconciler *r, struct render_settings *s,
                            struct challenges_snapshot *snap)
{
    memset(snap, 0, sizeof(*snap));
    if (r->opts.challenges == NULL)
        return;
    challenges_snapshot(r->opts.challenges, snap);
    s->challenges = snap->v;
    s->n_challenges = snap->n;
    r->challenges_rendered = snap->version;
}

/* The dataplane serves a configuration rendered from the set of snap's version. */
static void challenges_served(struct reconciler *r, const struct challenges_snapshot *snap)
{
    if (r->opts.challenges != NULL)
        challenges_acknowledged(r->opts.challenges, snap->version);
}

static const struct aegis_certificate_spec *spec_of(const struct obj *o);

/* Hands o's state (or its removal) to the observer. */
static void observe(const struct reconciler *r, const struct obj *o, bool removed)
{
    struct cmetrics_object m = {
        .kind = obj_kind_names[o->kind], .ns = o->ns, .name = o->name, .removed = removed};
    const struct aegis_condition *ready = NULL;

    if (r->opts.observe == NULL)
        return;
    if (o->kind == OBJ_ISSUER)
        ready = status_condition_find(o->issuer_status.conditions.v, o->issuer_status.conditions.n,
                                      STATUS_CONDITION_READY);
    else if (o->kind == OBJ_HOST)
        ready = status_condition_find(o->host_status.conditions.v, o->host_status.conditions.n,
                                      STATUS_CONDITION_READY);
    else
        ready = status_condition_find(o->cs.status.conditions.v, o->cs.status.conditions.n,
                                      STATUS_CONDITION_READY);
    m.has_ready = ready != NULL;
    m.ready = ready != NULL ? ready->status : AEGIS_CONDITION_STATUS_UNKNOWN;
    if (o->kind == OBJ_HOST && !removed) {
        m.served_certificate = o->served_cert;
        m.served_mismatch = o->served_mismatch;
    }
    if (o->kind == OBJ_CERTIFICATE && !removed) {
        const char *issuer = o->res != NULL ? spec_of(o)->issuer_ref.name : NULL;

        m.issuer_name = issuer != NULL ? issuer : "";
        if (o->cs.status.not_after == NULL ||
            status_time_parse(o->cs.status.not_after, &m.not_after) < 0)
            m.not_after = 0;
        if (o->cs.status.renewal_time == NULL ||
            status_time_parse(o->cs.status.renewal_time, &m.renewal_time) < 0)
            m.renewal_time = 0;
    }
    r->opts.observe(r->opts.observe_ctx, &m);
}

/* Counts one object reconciled (error: it ended in a failure it reports). */
static void count(struct reconcile_report *rep, enum reconcile_kind kind, bool error)
{
    rep->reconciled[kind][error ? 1 : 0]++;
}

/* Counts one completed issuance of a Certificate step. */
static void count_issuance(struct reconcile_report *rep, const struct certsync_result *res)
{
    const char *type = res->issuer_type != NULL ? res->issuer_type : "unknown";
    struct reconcile_issuances *c = NULL;

    for (size_t i = 0; i < rep->n_issuances && c == NULL; i++) {
        if (strcmp(rep->issuances[i].issuer_type, type) == 0)
            c = &rep->issuances[i];
    }
    if (c == NULL && rep->n_issuances < RECONCILE_ISSUER_TYPES_MAX) {
        c = &rep->issuances[rep->n_issuances++];
        snprintf(c->issuer_type, sizeof(c->issuer_type), "%s", type);
    }
    if (c == NULL)
        c = &rep->issuances[RECONCILE_ISSUER_TYPES_MAX - 1];
    if (!res->attempt_failed)
        c->succeeded++;
    else if ((unsigned)res->failure_reason < ISSUER_REASON_COUNT_)
        c->failed[res->failure_reason]++;
}

/*
 * Whether a resource read again says the same as before (its spec and generation; where it
 * was read from does not matter): an edit of one document in a file of 1,000 then syncs one.
 */
static bool same_resource(const struct aegis_resource *a, const struct aegis_resource *b)
{
    static const struct api_type *const types[] = {
        [AEGIS_KIND_ISSUER] = &api_t_issuer_spec,
        [AEGIS_KIND_CERTIFICATE] = &api_t_certificate_spec,
        [AEGIS_KIND_HOST] = &api_t_host_spec,
    };
    json_t *ja, *jb;
    bool same;

    if (a == NULL || b == NULL || a->kind != b->kind || a->meta.generation != b->meta.generation)
        return false;
    ja = api_to_json(types[a->kind], &a->spec);
    jb = api_to_json(types[b->kind], &b->spec);
    same = ja != NULL && jb != NULL && json_equal(ja, jb);
    json_decref(ja);
    json_decref(jb);
    return same;
}

/*
 * Only what changed is made due: the watcher shares the resources of files that did not change
 * between snapshots, so a resource at the same address is the same resource (the previous
 * snapshot is released only after the comparison, so no address is reused meanwhile). An Issuer
 * that changed makes every Certificate due (its readiness may have changed). Editing one
 * document of a file of 1,000 Certificates then re-syncs that one (same_resource), not the
 * file's 1,000 nor all of them.
 */
static void adopt_snapshot(struct reconciler *r, int64_t now)
{
    const struct aegis_resource_set *set;
    struct watch_snapshot *old = r->snap;
    bool issuer_changed = false;

    r->snap = r->pending;
    r->pending = NULL;
    for (size_t b = 0; b < r->n_buckets; b++) {
        for (struct obj *o = r->buckets[b]; o != NULL; o = o->next_in_bucket) {
            o->live = false;
            o->prev_res = o->res;
            o->res = NULL;
        }
    }
    set = watch_snapshot_resources(r->snap);
    for (size_t i = 0; i < set->n; i++) {
        const struct aegis_resource *res = set->v[i];
        static const enum obj_kind kinds[] = {
            [AEGIS_KIND_ISSUER] = OBJ_ISSUER,
            [AEGIS_KIND_CERTIFICATE] = OBJ_CERTIFICATE,
            [AEGIS_KIND_HOST] = OBJ_HOST,
        };
        struct obj *o = ensure(r, kinds[res->kind], res->meta.namespace, res->meta.name);

        if (o->implicit) { /* an explicit Certificate took the implicit one's name */
            api_dispose(&api_t_certificate_spec, &o->implicit_spec);
            o->implicit = false;
        }
        o->live = true;
        o->res = res;
        if (o->prev_res != res && !same_resource(o->prev_res, res)) {
            schedule(r, o, now);
            issuer_changed |= o->kind == OBJ_ISSUER;
        }
        if (res->kind == AEGIS_KIND_HOST && res->spec.host.tls.mode == AEGIS_TLS_MODE_ACME &&
            decide_implicit_conflict(set, res) == NULL) {
            char name[STORE_NAME_MAX + 1];
            struct aegis_certificate_spec spec;
            struct obj *c;

            if (decide_implicit_name(res->meta.name, name, sizeof(name), NULL) < 0 ||
                decide_implicit_certificate(res, &spec, NULL) < 0)
                continue;
            c = ensure(r, OBJ_CERTIFICATE, res->meta.namespace, name);
            if (c->implicit)
                api_dispose(&api_t_certificate_spec, &c->implicit_spec);
            c->implicit_spec = spec;
            if (!c->implicit || (c->prev_res != res && !same_resource(c->prev_res, res)))
                schedule(r, c, now);
            c->implicit = true;
            c->live = true;
            c->res = res;
        }
    }
    for (size_t b = 0; issuer_changed && b < r->n_buckets; b++) {
        for (struct obj *o = r->buckets[b]; o != NULL; o = o->next_in_bucket) {
            if (o->kind == OBJ_CERTIFICATE && o->live)
                schedule(r, o, now);
        }
    }
    /* Objects that are gone: their status files go too. */
    for (size_t b = 0; b < r->n_buckets; b++) {
        struct obj **link = &r->buckets[b];

        while (*link != NULL) {
            struct obj *o = *link;

            if (o->live) {
                link = &o->next_in_bucket;
                continue;
            }
            *link = o->next_in_bucket;
            heap_remove(r, o);
            if (o->kind == OBJ_CERTIFICATE && (o->implicit || o->prev_res != NULL))
                revoker_certificate_removed(
                    r->revoker, o->ns, o->name,
                    o->implicit ? &o->implicit_spec : &o->prev_res->spec.certificate, set,
                    old != NULL ? watch_snapshot_resources(old) : NULL);
            observe(r, o, true);
            if (r->opts.status_dir != NULL) {
                char *path = status_path(r, o);

                if (unlink(path) != 0 && errno != ENOENT)
                    aegis_log(AEGIS_LOG_WARN, "reconcile", "cannot remove %s: %s", path,
                              strerror(errno));
                free(path);
            }
            r->n_objs--;
            unmark_dirty(r, o);
            if (o->job != NULL)
                o->gone = true; /* freed when its job comes back */
            else
                obj_free(o);
        }
    }
    watch_snapshot_unref(old);
}

/* ---- per kind ----------------------------------------------------------------------------- */

static int64_t generation_of(const struct obj *o)
{
    return o->res != NULL && !o->implicit ? o->res->meta.generation : 0;
}

static void sync_issuer(struct reconciler *r, struct obj *o, int64_t now,
                        struct reconcile_report *rep)
{
    const struct issuer_ops *ops = NULL;
    struct aegis_err e = {0};
    int rc = issuer_for_spec(&o->res->spec.issuer, &ops, &e);

    if (rc == 0 && ops->check != NULL)
        rc = ops->check(&o->res->spec.issuer, o->ns, r->opts.secrets_dir, &e);
    o->issuer_ready = rc == 0;
    count(rep, RECONCILE_KIND_ISSUER, rc != 0);
    snprintf(o->issuer_message, sizeof(o->issuer_message), "%s",
             rc == 0 ? "the issuer is ready" : e.msg);
    if (status_issuer_update(&o->issuer_status, generation_of(o), o->issuer_ready,
                             rc == 0                      ? "Ready"
                             : rc == -AEGIS_E_UNSUPPORTED ? "UnsupportedIssuer"
                                                          : "InvalidIssuer",
                             o->issuer_message, now))
        mark_dirty(r, o);
}

static const struct aegis_certificate_spec *spec_of(const struct obj *o)
{
    return o->implicit ? &o->implicit_spec : &o->res->spec.certificate;
}

/*
 * A Certificate's step runs as a job, on the pool's workers when there is a pool (certsync is
 * safe for different Certificates at once) and inline otherwise. The job holds everything it
 * reads: a reference to the snapshot the spec and the Issuer's spec live in, its own copies of
 * the implicit spec and the certsync state (the object's copy keeps answering the status API and
 * the renderer meanwhile, and is replaced when the job comes back).
 */
struct cert_job {
    struct workpool_job base;
    struct obj *o; /* not touched by the worker */
    struct watch_snapshot *snap;
    struct certsync_env env;
    struct certsync_request req;
    struct aegis_certificate_spec implicit_spec; /* when implicit */
    bool implicit;
    char issuer_message[AEGIS_ERR_MSG_MAX];
    struct certsync_state cs;
    int64_t now;
    /* the outcome */
    int rc;
    struct certsync_result res;
    struct aegis_err err;
};

static void cert_job_run(struct workpool_job *base)
{
    struct cert_job *j = (struct cert_job *)base;

    j->rc = certsync_run(&j->env, &j->req, &j->cs, j->now, &j->res, &j->err);
}

static void cert_job_free(struct cert_job *j)
{
    if (j->implicit)
        api_dispose(&api_t_certificate_spec, &j->implicit_spec);
    certsync_state_dispose(&j->cs);
    watch_snapshot_unref(j->snap);
    free(j);
}

/* The certsync state for a job: a deep copy through the status's JSON form. */
static void copy_certsync_state(const struct certsync_state *from, struct certsync_state *to)
{
    json_t *j = status_to_json(&api_t_certificate_status, &from->status);
    struct aegis_err e = {0};

    memset(to, 0, sizeof(*to));
    to->failures = from->failures;
    if (status_from_json(&api_t_certificate_status, j, &to->status, &e) < 0) {
        /* Cannot happen for a status this code made; start from an empty one if it does. */
        aegis_log(AEGIS_LOG_ERROR, "reconcile", "cannot copy a Certificate status: %s", e.msg);
        api_dispose(&api_t_certificate_status, &to->status);
        memset(&to->status, 0, sizeof(to->status));
    }
    json_decref(j);
}

static struct cert_job *cert_job_new(struct reconciler *r, struct obj *o, int64_t now)
{
    struct cert_job *j = aegis_calloc(1, sizeof(*j));
    const struct aegis_certificate_spec *spec = spec_of(o);
    const struct obj *issuer = NULL;
    char key[KEY_MAX];

    j->base.run = cert_job_run;
    j->o = o;
    j->snap = watch_snapshot_ref(r->snap);
    j->now = now;
    j->env = (struct certsync_env){
        .store = r->opts.store, .secrets_dir = r->opts.secrets_dir, .http01 = http01_of(r)};
    j->req = (struct certsync_request){
        .ns = o->ns, .name = o->name, .spec = spec, .generation = generation_of(o)};
    if (spec->issuer_ref.name != NULL) {
        snprintf(key, sizeof(key), "Issuer/%s/%s", o->ns, spec->issuer_ref.name);
        issuer = find(r, key);
    }
    j->req.issuer = issuer != NULL ? &issuer->res->spec.issuer : NULL;
    j->req.issuer_ready = issuer != NULL && issuer->issuer_ready;
    if (issuer == NULL && spec->issuer_ref.name != NULL) {
        snprintf(j->issuer_message, sizeof(j->issuer_message), "Issuer %s/%s does not exist", o->ns,
                 spec->issuer_ref.name);
        j->req.issuer_message = j->issuer_message;
    } else if (issuer != NULL && !issuer->issuer_ready) {
        snprintf(j->issuer_message, sizeof(j->issuer_message), "%s", issuer->issuer_message);
        j->req.issuer_message = j->issuer_message;
    }
    return j;
}

/* The outcome of o's step (certsync_run's rc, result and error, run at `when`) becomes the
 * object's; the state it worked on is already in o->cs. */
static void apply_result(struct reconciler *r, struct obj *o, int rc,
                         const struct certsync_result *res, const struct aegis_err *err,
                         int64_t when, int64_t now, struct reconcile_report *rep)
{
    if (rc < 0) {
        /* The store cannot be read: try again after the first backoff step. */
        aegis_log(AEGIS_LOG_ERROR, "reconcile", "Certificate %s/%s: %s", o->ns, o->name, err->msg);
        count(rep, RECONCILE_KIND_CERTIFICATE, true);
        schedule(r, o, now + DECIDE_BACKOFF_INITIAL_S);
        return;
    }
    rep->certificates_synced++;
    count(rep, RECONCILE_KIND_CERTIFICATE, res->attempted && res->attempt_failed);
    if (res->attempted)
        count_issuance(rep, res);
    rep->issued += res->stored;
    rep->failed += o->cs.failures.attempts > 0 && o->cs.failures.last_failure_time == when;
    o->decision = res->decision;
    o->synced = true;
    if (res->status_changed)
        mark_dirty(r, o);
    r->stored |= res->stored;
    if (res->stored)
        render_cache_drop(o);
    schedule(r, o, res->next_check > 0 ? res->next_check : when + r->opts.resync_s);
}

/* A job came back (on the step's thread): its outcome becomes the object's. */
static void cert_job_finish(struct reconciler *r, struct cert_job *j, int64_t now,
                            struct reconcile_report *rep)
{
    struct obj *o = j->o;

    o->job = NULL;
    if (o->gone) { /* removed from the table while the job ran */
        obj_free(o);
        cert_job_free(j);
        return;
    }
    if (j->rc == 0) {
        certsync_state_dispose(&o->cs);
        o->cs = j->cs;
        memset(&j->cs, 0, sizeof(j->cs));
    }
    apply_result(r, o, j->rc, &j->res, &j->err, j->now, now, rep);
    if (o->resync) { /* its resources changed while the job ran */
        o->resync = false;
        schedule(r, o, now);
    }
    cert_job_free(j);
}

static unsigned in_flight(const struct reconciler *r)
{
    return r->pool != NULL ? workpool_pending(r->pool) : 0;
}

/*
 * o's step. With a pool it first runs here with the issuance deferred - reading the store and
 * deciding takes a fraction of a millisecond, so a restart with 10,000 valid certificates does
 * not go through the workers one by one - and only an issuance goes out as a job. Returns true
 * when a job was started.
 */
static bool sync_certificate(struct reconciler *r, struct obj *o, int64_t now,
                             struct reconcile_report *rep)
{
    struct cert_job *j = cert_job_new(r, o, now);

    j->env.defer_issue = r->pool != NULL;
    j->rc = certsync_run(&j->env, &j->req, &o->cs, now, &j->res, &j->err);
    if (j->rc < 0 || !j->res.deferred) {
        apply_result(r, o, j->rc, &j->res, &j->err, now, now, rep);
        cert_job_free(j);
        return false;
    }
    /* Out to a worker: it must not read what the loop may replace meanwhile - the object's
     * implicit spec (remade when its Host changes) and its state - so the job has copies. */
    if (o->implicit && decide_implicit_certificate(o->res, &j->implicit_spec, NULL) == 0) {
        j->implicit = true;
        j->req.spec = &j->implicit_spec;
    }
    j->env.defer_issue = false;
    copy_certsync_state(&o->cs, &j->cs);
    o->job = j;
    workpool_submit(r->pool, &j->base);
    return true;
}

/* Takes back every finished job. */
static void collect_jobs(struct reconciler *r, int64_t now, struct reconcile_report *rep)
{
    struct workpool_job *j;

    while (r->pool != NULL && (j = workpool_take_done(r->pool)) != NULL)
        cert_job_finish(r, (struct cert_job *)j, now, rep);
}

static void drop_job(struct workpool_job *base, void *ctx)
{
    struct cert_job *j = (struct cert_job *)base;

    (void)ctx;
    j->o->job = NULL;
    if (j->o->gone)
        obj_free(j->o);
    cert_job_free(j);
}

/* ---- rendering ---------------------------------------------------------------------------- */

struct source_ctx {
    struct reconciler *r;
    int64_t now;
};

/*
 * The stored chain and key of a Certificate, for the renderer. Every render needs all of them and
 * reading one means a file read, a JSON parse and an unseal, so the last read is kept on the
 * object until a job stores a new one or the status names another serial (the store was changed
 * from outside, e.g. by aegisctl).
 */
static int src_certificate(void *ctx, const char *ns, const char *name, char **chain, char **key,
                           struct aegis_err *err)
{
    struct source_ctx *c = ctx;
    struct store_record rec;
    struct store_id id;
    char okey[KEY_MAX];
    struct obj *o;
    int rc;

    snprintf(okey, sizeof(okey), "Certificate/%s/%s", ns, name);
    o = find(c->r, okey);
    if (o != NULL && o->cache_chain != NULL && o->cs.status.serial_number != NULL &&
        strcmp(o->cs.status.serial_number, o->cache_serial) == 0) {
        if (c->now >= o->cache_not_after)
            return -AEGIS_E_NOTFOUND;
        *chain = aegis_strdup(o->cache_chain);
        *key = aegis_strdup(o->cache_key);
        return 0;
    }
    rc = store_id_set(&id, STORE_KIND_CERTIFICATE, ns, name, err);
    if (rc < 0)
        return rc;
    rc = store_get(c->r->opts.store, &id, &rec, err);
    if (rc == 0 && (rec.chain_pem == NULL || rec.key_pem == NULL))
        rc = -AEGIS_E_NOTFOUND;
    if (rc == 0 && o != NULL && rec.meta.serial != NULL) {
        render_cache_drop(o);
        o->cache_chain = aegis_strdup(rec.chain_pem);
        o->cache_key = aegis_strdup(rec.key_pem);
        o->cache_not_after = rec.meta.not_after;
        snprintf(o->cache_serial, sizeof(o->cache_serial), "%s", rec.meta.serial);
    }
    if (rc == 0 && c->now >= rec.meta.not_after)
        rc = -AEGIS_E_NOTFOUND;
    if (rc == 0) {
        *chain = rec.chain_pem;
        *key = rec.key_pem;
        rec.chain_pem = NULL;
        rec.key_pem = NULL;
    } else if (rc == -AEGIS_E_NOTFOUND && err != NULL) {
        memset(err, 0, sizeof(*err));
    }
    store_record_dispose(&rec);
    return rc;
}

static int src_pem(void *ctx, const char *ns, const struct aegis_pem_source *s, char **pem,
                   struct aegis_err *err)
{
    struct source_ctx *c = ctx;
    size_t len;

    return secret_read_pem_source(s, ns, c->r->opts.secrets_dir, "the PEM source", pem, &len, err);
}

static int src_issuer_ca(void *ctx, const char *ns, const char *name, char **pem,
                         struct aegis_err *err)
{
    struct source_ctx *c = ctx;
    char key[KEY_MAX];
    const struct obj *o;
    const struct aegis_ca_issuer *spec;
    struct ca *ca = NULL;
    size_t len;
    int rc;

    snprintf(key, sizeof(key), "Issuer/%s/%s", ns, name);
    o = find(c->r, key);
    if (o == NULL || o->res == NULL || !HAS(&o->res->spec.issuer, API_F_ISSUER_SPEC_CA))
        return aegis_err_set(err, -AEGIS_E_NOTFOUND, NULL, "Issuer %s/%s is not a CA Issuer", ns,
                             name);
    spec = &o->res->spec.issuer.ca;
    if (spec->certificate.pem != NULL || spec->certificate.file != NULL ||
        spec->certificate.secret_ref.name != NULL)
        return secret_read_pem_source(&spec->certificate, ns, c->r->opts.secrets_dir,
                                      "spec.ca.certificate", pem, &len, err);
    if (spec->secret_ref.name != NULL)
        return secret_read(c->r->opts.secrets_dir, ns, spec->secret_ref.name, "tls.crt", pem, &len,
                           err);
    rc = ca_local_open(c->r->opts.store, c->now, &ca, err);
    if (rc == 0)
        rc = ca_bundle_pem(ca, pem, &len, err);
    ca_free(ca);
    return rc;
}

/* Host statuses from the render result and the Certificates' decisions. */
static void host_statuses(struct reconciler *r, const struct render_result *rr, int64_t now,
                          struct reconcile_report *rep)
{
    for (size_t i = 0; i < rr->n_hosts; i++) {
        const struct render_host_result *h = &rr->hosts[i];
        const struct aegis_resource *res = h->host;
        char key[KEY_MAX];
        struct obj *o, *c = NULL;
        struct decide_host_input in = {0};
        struct decide_host_result d;
        struct status_host_input si = {0};

        snprintf(key, sizeof(key), "Host/%s/%s", res->meta.namespace, res->meta.name);
        o = find(r, key);
        if (o == NULL)
            continue;
        if (h->certificate[0] != '\0') {
            snprintf(key, sizeof(key), "Certificate/%s/%s", res->meta.namespace, h->certificate);
            c = find(r, key);
        }
        in.tls = res->spec.host.tls.mode != AEGIS_TLS_MODE_NONE;
        in.cert_found = c != NULL;
        in.cert_ready = c != NULL && c->synced && c->decision.ready;
        in.cert_valid = h->serve == RENDER_SERVE_CERTIFICATE;
        decide_host(&in, &d);
        si.decision = &d;
        si.generation = res->meta.generation;
        si.cert_ns = res->meta.namespace;
        si.cert_name = h->certificate[0] != '\0' ? h->certificate : NULL;
        if (h->serve == RENDER_SERVE_NONE) {
            d.ready = false;
            d.reason = DECIDE_HOST_REASON_NOT_SERVED;
            si.cert_message = h->message;
        } else if (r->push_error[0] != '\0') {
            d.ready = false;
            d.reason = r->push_rc == -EIO ? DECIDE_HOST_REASON_DATAPLANE_UNREACHABLE
                                          : DECIDE_HOST_REASON_CONFIGURATION_REFUSED;
            si.cert_message = r->push_error;
        } else if (h->message[0] != '\0') {
            si.cert_message = h->message;
        }
        count(rep, RECONCILE_KIND_HOST, h->serve == RENDER_SERVE_NONE || r->push_error[0] != '\0');
        if (status_host_update(&o->host_status, &si, now))
            mark_dirty(r, o);
        snprintf(o->served_cert, sizeof(o->served_cert), "%s",
                 h->serve == RENDER_SERVE_CERTIFICATE ? h->certificate : "");
        snprintf(o->served_issued, sizeof(o->served_issued), "%s",
                 h->serve == RENDER_SERVE_CERTIFICATE && c != NULL &&
                         c->cs.status.serial_number != NULL
                     ? c->cs.status.serial_number
                     : "");
    }
}

static void render_and_push(struct reconciler *r, int64_t now, struct reconcile_report *rep)
{
    struct source_ctx ctx = {r, now};
    struct render_source src = {&ctx, src_certificate, src_pem, src_issuer_ca};
    struct render_settings s = r->opts.render;
    struct challenges_snapshot chs;
    struct render_result rr;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    struct aegis_err e = {0};
    json_t *doc = NULL;
    char *text;
    size_t len;

    s.generation = 0; /* the content is compared without it */
    challenges_fill(r, &s, &chs);
    if (render_config(watch_snapshot_resources(r->snap), &s, &src, &doc, &rr, &e) < 0) {
        snprintf(r->push_error, sizeof(r->push_error), "%s", e.msg);
        challenges_snapshot_free(&chs);
        return;
    }
    /* Dumped once (10,000 Hosts make megabytes): the generation is put in front of the
     * content's text rather than into the document and dumped again. */
    json_object_del(doc, "generation");
    text = json_dumps(doc, JSON_COMPACT);
    len = strlen(text);
    SHA256((const unsigned char *)text, len, digest);
    if (!r->pushed_once || memcmp(digest, r->pushed_digest, sizeof(digest)) != 0) {
        /* Generations increase across controller restarts without being stored: the time in
         * milliseconds, or one more than the last when renders come faster than that. */
        int64_t g = now * 1000;
        char head[64];
        char *full;
        int n;

        r->generation = g > r->generation ? g : r->generation + 1;
        n = snprintf(head, sizeof(head), "{\"generation\":%lld%s", (long long)r->generation,
                     len > 2 ? "," : "");
        full = aegis_malloc((size_t)n + len);
        memcpy(full, head, (size_t)n);
        memcpy(full + n, text + 1, len); /* without its "{", with its NUL */
        rep->rendered = true;
        rep->generation = r->generation;
        r->push_error[0] = '\0';
        r->push_rc = r->opts.push != NULL ? r->opts.push(r->opts.push_ctx, full,
                                                         (size_t)n + len - 1, r->generation, &e)
                                          : 0;
        if (r->push_rc == 0) {
            memcpy(r->pushed_digest, digest, sizeof(digest));
            r->pushed_once = true;
            rep->pushed = r->opts.push != NULL;
        } else {
            snprintf(r->push_error, sizeof(r->push_error), "%s", e.msg);
            snprintf(rep->push_error, sizeof(rep->push_error), "%s", e.msg);
        }
        /* The document holds private keys: wipe the text before it is freed. */
        OPENSSL_cleanse(full, (size_t)n + len);
        free(full);
    }
    OPENSSL_cleanse(text, len);
    free(text);
    /* Served: just pushed, or the same content was pushed before. */
    if (r->push_error[0] == '\0')
        challenges_served(r, &chs);
    challenges_snapshot_free(&chs);
    host_statuses(r, &rr, now, rep);
    render_result_dispose(&rr);
    json_decref(doc);
}

/* ---- the step ----------------------------------------------------------------------------- */

int reconcile_new(const struct reconcile_opts *opts, struct reconciler **out, struct aegis_err *err)
{
    struct reconciler *r;

    if (opts->store == NULL)
        return aegis_err_set(err, -AEGIS_E_INVALID, "reconcile", "a store is required");
    r = aegis_calloc(1, sizeof(*r));
    r->opts = *opts;
    if (r->opts.max_issuances == 0)
        r->opts.max_issuances = RECONCILE_MAX_ISSUANCES_DEFAULT;
    if (r->opts.resync_s <= 0)
        r->opts.resync_s = RECONCILE_RESYNC_DEFAULT_S;
    if (r->opts.workers > 0 && workpool_new(r->opts.workers, &r->pool, err) < 0) {
        free(r);
        return -AEGIS_E_INVALID;
    }
    r->revoker = revoker_new(r->opts.store, r->opts.secrets_dir);
    *out = r;
    return 0;
}

void reconcile_free(struct reconciler *r)
{
    if (r == NULL)
        return;
    /* First the jobs: they point at objects, and objects removed meanwhile are theirs to free. */
    workpool_free(r->pool, drop_job, NULL);
    revoker_free(r->revoker);
    for (size_t b = 0; b < r->n_buckets; b++) {
        struct obj *o = r->buckets[b], *next;

        for (; o != NULL; o = next) {
            next = o->next_in_bucket;
            obj_free(o);
        }
    }
    free(r->buckets);
    free(r->heap);
    free(r->dirty);
    watch_snapshot_unref(r->snap);
    watch_snapshot_unref(r->pending);
    free(r);
}

void reconcile_set_snapshot(struct reconciler *r, struct watch_snapshot *snap)
{
    watch_snapshot_unref(r->pending);
    r->pending = watch_snapshot_ref(snap);
}

void reconcile_repush(struct reconciler *r)
{
    r->pushed_once = false;
}

/* Writes the statuses that changed; one that cannot be written stays on the list. */
static void write_statuses(struct reconciler *r, struct reconcile_report *rep)
{
    size_t kept = 0;

    for (size_t i = 0; i < r->n_dirty; i++) {
        struct obj *o = r->dirty[i];
        struct aegis_err e = {0};

        observe(r, o, false);
        if (write_status(r, o, &e) == 0) {
            o->status_dirty = false;
            rep->statuses_written++;
        } else {
            aegis_log(AEGIS_LOG_ERROR, "reconcile", "%s: cannot write its status: %s", o->key,
                      e.msg);
            r->dirty[kept++] = o;
        }
    }
    r->n_dirty = kept;
}

void reconcile_resync_all(struct reconciler *r, int64_t now)
{
    /* schedule() only moves a due time earlier; a Certificate whose step is out on a worker is
     * synced again when it comes back (o->resync, set when it is taken off the heap). */
    for (size_t b = 0; b < r->n_buckets; b++)
        for (struct obj *o = r->buckets[b]; o != NULL; o = o->next_in_bucket)
            schedule(r, o, now);
}

unsigned reconcile_in_flight(const struct reconciler *r)
{
    return in_flight(r);
}

int reconcile_fd(const struct reconciler *r)
{
    return r->pool != NULL ? workpool_fd(r->pool) : -1;
}

int64_t reconcile_step(struct reconciler *r, int64_t now, struct reconcile_report *rep)
{
    bool changed = r->pending != NULL, busy, urgent;
    unsigned cap = UINT_MAX;

    memset(rep, 0, sizeof(*rep));
    rep->served_mismatch = r->served_mismatch;
    collect_jobs(r, now, rep);
    if (r->pending != NULL)
        adopt_snapshot(r, now);
    if (r->snap == NULL)
        return 0;
    /*
     * What is due, in heap order: Issuers before the Certificates that use them (the heap puts
     * them first among equal due times). With a pool, a Certificate is taken only while the
     * pool has room (it may need a job); the rest stay queued for when jobs come back, so that
     * a burst of 10,000 is not taken off and put back at every step.
     */
    if (r->pool != NULL)
        cap = in_flight(r) < r->opts.max_issuances ? r->opts.max_issuances - in_flight(r) : 0;
    while (r->heap_n > 0 && r->heap[0]->due <= now) {
        struct obj *o = r->heap[0];

        if (o->kind == OBJ_CERTIFICATE && o->job == NULL && cap == 0)
            break;
        heap_remove(r, o);
        switch (o->kind) {
        case OBJ_ISSUER:
            sync_issuer(r, o, now, rep);
            schedule(r, o, now + r->opts.resync_s);
            break;
        case OBJ_HOST:
            changed = true; /* Hosts are rendered, not synced */
            schedule(r, o, now + r->opts.resync_s);
            break;
        case OBJ_CERTIFICATE:
            if (o->job != NULL)
                o->resync = true; /* again when the running step comes back */
            else if (r->pool == NULL && rep->issued >= r->opts.max_issuances)
                schedule(r, o, now); /* left for the next step */
            else if (sync_certificate(r, o, now, rep))
                cap--;
            break;
        }
        if (r->pool == NULL && rep->issued >= r->opts.max_issuances && r->heap_n > 0 &&
            r->heap[0]->due <= now)
            break;
    }
    urgent = challenges_changed(r);
    changed |= r->render_pending || r->stored || urgent;
    /* A burst (jobs out, or work left due now) is rendered only now and then until it is
     * done; a single change is rendered at once, and so is a new HTTP-01 token (the CA is
     * told to look only once the dataplanes serve it). */
    busy = in_flight(r) > 0 || (r->heap_n > 0 && r->heap[0]->due <= now);
    if ((changed || r->push_error[0] != '\0' || !r->pushed_once) &&
        (!busy || urgent || now - r->last_render >= RECONCILE_BURST_RENDER_S)) {
        render_and_push(r, now, rep);
        r->last_render = now;
        r->render_pending = false;
        r->stored = false;
    } else if (changed) {
        r->render_pending = true;
    }
    if (r->opts.status_dir != NULL)
        write_statuses(r, rep);
    if (r->push_error[0] != '\0')
        return now + RECONCILE_PUSH_RETRY_S;
    if (r->render_pending && (r->heap_n == 0 || r->heap[0]->due > now + 1))
        return now + 1; /* the put-off render, once the burst is over */
    if (r->pool != NULL && in_flight(r) >= r->opts.max_issuances && r->heap_n > 0 &&
        r->heap[0]->due <= now)
        return now + 1; /* the pool is full: its fd wakes the loop when a job comes back */
    return r->heap_n > 0 ? r->heap[0]->due : now + r->opts.resync_s;
}

json_t *reconcile_status_json(const struct reconciler *r, const char *kind, const char *ns,
                              const char *name)
{
    char key[KEY_MAX];
    const struct obj *o;

    snprintf(key, sizeof(key), "%s/%s/%s", kind, ns, name);
    o = find(r, key);
    return o != NULL ? status_of(o) : NULL;
}

/* ---- issued against served ---------------------------------------------------------------- */

size_t reconcile_served(struct reconciler *r, const json_t *dp_status, const char *dataplane,
                        int64_t now)
{
    json_t *index = served_index_new(dp_status);
    size_t mismatch = 0;

    for (size_t b = 0; b < r->n_buckets; b++) {
        for (struct obj *o = r->buckets[b]; o != NULL; o = o->next_in_bucket) {
            struct served_report rep;
            struct served_result res;

            if (o->kind != OBJ_HOST || !o->live)
                continue;
            served_report_of(index, o->ns, o->name, &rep);
            served_compare(o->served_issued, &rep, SERVED_GRACE_S_DEFAULT, now, &o->served, &res);
            mismatch += res.verdict == SERVED_VERDICT_MISMATCH;
            if (o->served_mismatch != (res.verdict == SERVED_VERDICT_MISMATCH)) {
                o->served_mismatch = res.verdict == SERVED_VERDICT_MISMATCH;
                mark_dirty(r, o); /* the observer (metrics) hears of it at the write */
            }
            if (served_status_update(&o->host_status, &rep, dataplane, &res, generation_of(o), now))
                mark_dirty(r, o);
        }
    }
    json_decref(index);
    r->served_mismatch = mismatch;
    return mismatch;
}
