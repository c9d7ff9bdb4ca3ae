/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Revocation of deleted Certificates (revoker.h): the decision and the store record on the
 * reconciler's thread, the API calls on one thread of its own with a bounded queue.
 */
#include "revoker.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aegis/alloc.h"
#include "aegis/log.h"
#include "aegis/store.h"
#include "issuer/cloudflare_origin.h"

#define HAS(obj, field) (((obj)->present >> (field)) & 1u)
#define WHERE "revoke"

/* One queued revocation: copies of everything it needs, as the snapshot will be gone. */
struct job {
    struct job *next;
    char *ns, *name, *serial;
    char *api_url, *ref_name, *ref_key;
    bool token; /* apiTokenSecretRef, else originCAKeySecretRef */
};

struct revoker {
    struct store *store;
    const char *secrets_dir;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    bool started, stopping;
    struct job *head, *tail;
    unsigned queued, in_flight;
};

static void job_free(struct job *j)
{
    if (j == NULL)
        return;
    free(j->ns);
    free(j->name);
    free(j->serial);
    free(j->api_url);
    free(j->ref_name);
    free(j->ref_key);
    free(j);
}

struct revoker *revoker_new(struct store *st, const char *secrets_dir)
{
    struct revoker *rv = aegis_calloc(1, sizeof(*rv));

    rv->store = st;
    rv->secrets_dir = secrets_dir;
    pthread_mutex_init(&rv->lock, NULL);
    pthread_cond_init(&rv->cond, NULL);
    return rv;
}

/* Waits s seconds unless the revoker stops meanwhile; returns false when it stops. */
static bool wait_s(struct revoker *rv, int64_t s)
{
    struct timespec until;
    bool go_on;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)s;
    pthread_mutex_lock(&rv->lock);
    while (!rv->stopping && pthread_cond_timedwait(&rv->cond, &rv->lock, &until) != ETIMEDOUT)
        ;
    go_on = !rv->stopping;
    pthread_mutex_unlock(&rv->lock);
    return go_on;
}

static void run_one(struct revoker *rv, const struct job *j)
{
    struct aegis_cloudflare_origin_ca_issuer spec;
    struct aegis_err e = {0};
    int64_t delay = REVOKER_RETRY_S;
    int rc = 0;

    memset(&spec, 0, sizeof(spec));
    spec.api_url = j->api_url;
    if (j->token) {
        spec.present = 1u << API_F_CLOUDFLARE_ORIGIN_CA_ISSUER_API_TOKEN_SECRET_REF;
        spec.api_token_secret_ref.name = j->ref_name;
        spec.api_token_secret_ref.key = j->ref_key;
    } else {
        spec.present = 1u << API_F_CLOUDFLARE_ORIGIN_CA_ISSUER_ORIGIN_CA_KEY_SECRET_REF;
        spec.origin_ca_key_secret_ref.name = j->ref_name;
        spec.origin_ca_key_secret_ref.key = j->ref_key;
    }
    for (int attempt = 1; attempt <= REVOKER_ATTEMPTS; attempt++) {
        /* The wall clock only serves Retry-After dates here; nothing is decided on it. */
        rc = cloudflare_origin_revoke(&spec, j->ns, rv->secrets_dir, j->serial, (int64_t)time(NULL),
                                      &e);
        if (rc == 0) {
            aegis_log(AEGIS_LOG_INFO, WHERE,
                      "Certificate %s/%s was deleted: its certificate %s is revoked", j->ns,
                      j->name, j->serial);
            return;
        }
        /* Only a failure that may pass is worth another try. */
        if ((rc != -EIO && rc != -EAGAIN) || attempt == REVOKER_ATTEMPTS || !wait_s(rv, delay))
            break;
        delay *= 2;
    }
    aegis_log(AEGIS_LOG_ERROR, WHERE,
              "Certificate %s/%s was deleted but its certificate %s could not be revoked: %s; "
              "revoke it in the Cloudflare dashboard (SSL/TLS > Origin Server)",
              j->ns, j->name, j->serial, e.msg);
}

static void *thread_main(void *arg)
{
    struct revoker *rv = arg;

    for (;;) {
        struct job *j;

        pthread_mutex_lock(&rv->lock);
        while (!rv->stopping && rv->head == NULL)
            pthread_cond_wait(&rv->cond, &rv->lock);
        if (rv->stopping) {
            pthread_mutex_unlock(&rv->lock);
            return NULL;
        }
        j = rv->head;
        rv->head = j->next;
        if (rv->head == NULL)
            rv->tail = NULL;
        rv->queued--;
        rv->in_flight++;
        pthread_mutex_unlock(&rv->lock);
        run_one(rv, j);
        job_free(j);
        pthread_mutex_lock(&rv->lock);
        rv->in_flight--;
        pthread_mutex_unlock(&rv->lock);
    }
}

void revoker_free(struct revoker *rv)
{
    if (rv == NULL)
        return;
    pthread_mutex_lock(&rv->lock);
    rv->stopping = true;
    pthread_cond_broadcast(&rv->cond);
    pthread_mutex_unlock(&rv->lock);
    if (rv->started)
        pthread_join(rv->thread, NULL);
    while (rv->head != NULL) {
        struct job *j = rv->head;

        rv->head = j->next;
        aegis_log(AEGIS_LOG_ERROR, WHERE,
                  "stopping: certificate %s of the deleted Certificate %s/%s was not revoked; "
                  "revoke it in the Cloudflare dashboard",
                  j->serial, j->ns, j->name);
        job_free(j);
    }
    pthread_cond_destroy(&rv->cond);
    pthread_mutex_destroy(&rv->lock);
    free(rv);
}

unsigned revoker_pending(struct revoker *rv)
{
    unsigned n;

    pthread_mutex_lock(&rv->lock);
    n = rv->queued + rv->in_flight;
    pthread_mutex_unlock(&rv->lock);
    return n;
}

static const struct aegis_issuer_spec *find_in(const struct aegis_resource_set *set, const char *ns,
                                               const char *name)
{
    for (size_t i = 0; set != NULL && i < set->n; i++) {
        const struct aegis_resource *r = set->v[i];

        if (r->kind == AEGIS_KIND_ISSUER && strcmp(r->meta.name, name) == 0 &&
            strcmp(r->meta.namespace, ns) == 0)
            return &r->spec.issuer;
    }
    return NULL;
}

const struct aegis_issuer_spec *revoker_find_issuer(const struct aegis_resource_set *set,
                                                    const struct aegis_resource_set *old,
                                                    const char *ns, const char *name)
{
    const struct aegis_issuer_spec *s = find_in(set, ns, name);

    return s != NULL ? s : find_in(old, ns, name);
}

static void enqueue(struct revoker *rv, struct job *j)
{
    pthread_mutex_lock(&rv->lock);
    if (rv->queued >= REVOKER_QUEUE_MAX) {
        pthread_mutex_unlock(&rv->lock);
        aegis_log(AEGIS_LOG_ERROR, WHERE,
                  "%u revocations are waiting already: certificate %s of the deleted "
                  "Certificate %s/%s is not revoked; revoke it in the Cloudflare dashboard",
                  REVOKER_QUEUE_MAX, j->serial, j->ns, j->name);
        job_free(j);
        return;
    }
    if (!rv->started) {
        if (pthread_create(&rv->thread, NULL, thread_main, rv) != 0) {
            pthread_mutex_unlock(&rv->lock);
            aegis_log(AEGIS_LOG_ERROR, WHERE, "cannot start the revocation thread: %s",
                      strerror(errno));
            job_free(j);
            return;
        }
        rv->started = true;
    }
    if (rv->tail != NULL)
        rv->tail->next = j;
    else
        rv->head = j;
    rv->tail = j;
    rv->queued++;
    pthread_cond_signal(&rv->cond);
    pthread_mutex_unlock(&rv->lock);
}

int revoker_certificate_removed(struct revoker *rv, const char *ns, const char *name,
                                const struct aegis_certificate_spec *spec,
                                const struct aegis_resource_set *set,
                                const struct aegis_resource_set *old)
{
    const struct aegis_cloudflare_origin_ca_issuer *cf;
    const struct aegis_issuer_spec *issuer;
    struct aegis_err e = {0};
    struct store_meta meta;
    struct store_id id;
    struct job *j;
    int rc;

    if (!HAS(spec, API_F_CERTIFICATE_SPEC_ISSUER_REF) || spec->issuer_ref.name == NULL)
        return 0;
    issuer = revoker_find_issuer(set, old, ns, spec->issuer_ref.name);
    if (issuer == NULL || !HAS(issuer, API_F_ISSUER_SPEC_CLOUDFLARE_ORIGIN_CA) ||
        !issuer->cloudflare_origin_ca.revoke_on_delete)
        return 0;
    cf = &issuer->cloudflare_origin_ca;
    if ((HAS(cf, API_F_CLOUDFLARE_ORIGIN_CA_ISSUER_API_TOKEN_SECRET_REF)
             ? cf->api_token_secret_ref.name == NULL || cf->api_token_secret_ref.key == NULL
             : cf->origin_ca_key_secret_ref.name == NULL ||
                   cf->origin_ca_key_secret_ref.key == NULL)) {
        return 0; /* an Issuer without credentials could never have issued it */
    }
    store_meta_init(&meta);
    rc = store_id_set(&id, STORE_KIND_CERTIFICATE, ns, name, &e);
    if (rc == 0)
        rc = store_get_meta(rv->store, &id, &meta, &e);
    if (rc == -AEGIS_E_NOTFOUND || (rc == 0 && (meta.serial == NULL || meta.source == NULL ||
                                                strcmp(meta.source, "cloudflareOriginCA") != 0))) {
        store_meta_dispose(&meta);
        return 0; /* nothing issued by the Origin CA is stored */
    }
    if (rc == 0)
        rc = store_delete(rv->store, &id, &e);
    if (rc < 0) {
        aegis_log(AEGIS_LOG_ERROR, WHERE, "Certificate %s/%s was deleted: %s; not revoked", ns,
                  name, e.msg);
        store_meta_dispose(&meta);
        return rc;
    }
    j = aegis_calloc(1, sizeof(*j));
    j->ns = aegis_strdup(ns);
    j->name = aegis_strdup(name);
    j->serial = aegis_strdup(meta.serial);
    j->api_url = cf->api_url != NULL ? aegis_strdup(cf->api_url) : NULL;
    j->token = HAS(cf, API_F_CLOUDFLARE_ORIGIN_CA_ISSUER_API_TOKEN_SECRET_REF);
    j->ref_name =
        aegis_strdup(j->token ? cf->api_token_secret_ref.name : cf->origin_ca_key_secret_ref.name);
    j->ref_key =
        aegis_strdup(j->token ? cf->api_token_secret_ref.key : cf->origin_ca_key_secret_ref.key);
    store_meta_dispose(&meta);
    aegis_log(AEGIS_LOG_INFO, WHERE,
              "Certificate %s/%s was deleted and its Issuer has revokeOnDelete: certificate %s "
              "removed from the store, revocation queued",
              ns, name, j->serial);
    enqueue(rv, j);
    return 1;
}
