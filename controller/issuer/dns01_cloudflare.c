/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Cloudflare DNS-01 provider (dns01.h): spec.acme.solvers[].dns01.cloudflare.
 *
 * present: the zone of the record is found by walking up the name's labels (`GET /zones?name=`,
 * most specific first, cf_zone_candidates), then the TXT record is created
 * (`POST /zones/{zone}/dns_records`, TTL 120, the minimum Cloudflare accepts); an identical
 * record already there (a present repeated after a restart) counts as published.
 * cleanup: every TXT record of that name with that value is deleted (listed with pagination,
 * `DELETE /zones/{zone}/dns_records/{id}`); other values of the same name (another order's) stay.
 * The ACME issuer calls cleanup after validation and after failures alike.
 *
 * Visibility at the zone's authoritative servers is not checked here: the ACME issuer's
 * propagation check (spec.acme.solvers[].dns01.propagationTimeout) applies to every provider.
 * Credentials: apiTokenSecretRef (a token with Zone - DNS - Edit, and Zone - Zone - Read to find
 * the zone), or apiKeySecretRef with email (the legacy global key).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aegis/alloc.h"
#include "aegis/pki.h"
#include "issuer/cloudflare_api.h"
#include "issuer/dns01.h"

#define HAS(obj, field) (((obj)->present >> (field)) & 1u)
#define WHERE "spec.acme.solvers[].dns01.cloudflare"
#define PERMISSION "Zone - DNS - Edit (and Zone - Zone - Read)"
/* The TTL of the challenge record: Cloudflare's minimum, so a stale value goes fast. */
#define TXT_TTL 120
/* Zones returned for one name lookup, and records of one name, that we look through. */
#define ZONES_MAX 50
#define RECORDS_MAX 500
/* Providers are not given the clock; only Retry-After dates would need it, and they are unused. */
#define NOW_UNKNOWN 0

struct session {
    struct cf_api api;
    char *secret;
    char name[CF_API_NAME_MAX + 1]; /* the record name without the trailing dot */
    char zone_id[128];
};

static void session_dispose(struct session *s)
{
    pki_secret_free_str(s->secret);
    s->secret = NULL;
}

static int session_open(const struct dns01_record *rec, struct session *s, struct aegis_err *err)
{
    const struct aegis_acme_dns01_cloudflare *spec = &rec->spec->cloudflare;
    bool token = HAS(spec, API_F_ACME_DNS01_CLOUDFLARE_API_TOKEN_SECRET_REF);
    size_t n = strlen(rec->fqdn);
    int rc;

    memset(s, 0, sizeof(*s));
    if (n > 0 && rec->fqdn[n - 1] == '.')
        n--;
    if (n == 0 || n > CF_API_NAME_MAX)
        return aegis_err_set(err, -AEGIS_E_INVALID, WHERE, "the record name %s is not valid",
                             rec->fqdn);
    memcpy(s->name, rec->fqdn, n);
    s->name[n] = '\0';
    s->api.base_url = spec->api_url != NULL ? spec->api_url : CF_API_DEFAULT_URL;
    s->api.auth = token ? CF_AUTH_TOKEN : CF_AUTH_GLOBAL_KEY;
    s->api.email = spec->email;
    s->api.where = WHERE;
    s->api.permission = PERMISSION;
    rc = cf_api_read_secret(
        rec->secrets_dir, rec->ns, token ? &spec->api_token_secret_ref : &spec->api_key_secret_ref,
        token ? WHERE ".apiTokenSecretRef" : WHERE ".apiKeySecretRef", &s->secret, err);
    s->api.secret = s->secret;
    return rc;
}

/* The id of the zone named zone, or "" when the account has none of that name. */
static int zone_lookup(struct session *s, const char *zone, struct aegis_err *err)
{
    char *q = cf_api_escape(zone), *path = aegis_asprintf("/zones?name=%s", q);
    json_t *zones = NULL, *z;
    size_t i;
    int rc = cf_api_list(&s->api, path, "zones", ZONES_MAX, NOW_UNKNOWN, &zones, err);

    free(q);
    free(path);
    s->zone_id[0] = '\0';
    json_array_foreach(zones, i, z)
    {
        const char *name = json_string_value(json_object_get(z, "name"));
        const char *id = json_string_value(json_object_get(z, "id"));

        /* The API filters by name already; the check keeps a loose server from misleading us. */
        if (name != NULL && id != NULL && strcasecmp(name, zone) == 0 &&
            strlen(id) < sizeof(s->zone_id)) {
            snprintf(s->zone_id, sizeof(s->zone_id), "%s", id);
            break;
        }
    }
    json_decref(zones);
    return rc;
}

/* Walks up the record name's labels to the zone that holds it. */
static int find_zone(struct session *s, struct aegis_err *err)
{
    const char *cands[CF_API_ZONE_LABELS_MAX];
    char buf[CF_API_NAME_MAX + 1];
    size_t n = 0;
    int rc = cf_zone_candidates(s->name, buf, sizeof(buf), cands, &n);

    if (rc < 0)
        return aegis_err_set(err, rc, WHERE, "the record name %s has no zone to look up", s->name);
    for (size_t i = 0; i < n; i++) {
        rc = zone_lookup(s, cands[i], err);
        if (rc < 0)
            return rc;
        if (s->zone_id[0] != '\0')
            return 0;
    }
    return aegis_err_set(err, -AEGIS_E_NOTFOUND, WHERE,
                         "no zone of this Cloudflare account holds %s (tried %s ... %s): add the "
                         "zone to the account, or give the token Zone - Zone - Read on it",
                         s->name, cands[0], cands[n - 1]);
}

/* The TXT records of the name holding value (a new array). */
static int matching_records(struct session *s, const char *value, json_t **out,
                            struct aegis_err *err)
{
    char *qn = cf_api_escape(s->name), *qv = cf_api_escape(value), *path;
    json_t *all = NULL, *r;
    size_t i;
    int rc;

    *out = json_array();
    path = aegis_asprintf("/zones/%s/dns_records?type=TXT&name=%s&content=%s", s->zone_id, qn, qv);
    rc = cf_api_list(&s->api, path, "dns_records", RECORDS_MAX, NOW_UNKNOWN, &all, err);
    json_array_foreach(all, i, r)
    {
        const char *content = json_string_value(json_object_get(r, "content"));
        const char *name = json_string_value(json_object_get(r, "name"));
        size_t cl = content != NULL ? strlen(content) : 0;

        if (name == NULL || strcasecmp(name, s->name) != 0 || content == NULL)
            continue;
        /* Cloudflare may hand TXT content back quoted. */
        if (strcmp(content, value) == 0 ||
            (cl == strlen(value) + 2 && content[0] == '"' && content[cl - 1] == '"' &&
             strncmp(content + 1, value, cl - 2) == 0))
            json_array_append(*out, r);
    }
    json_decref(all);
    free(qn);
    free(qv);
    free(path);
    return rc;
}

static int cf_present(const struct dns01_record *rec, struct aegis_err *err)
{
    struct session s;
    struct cf_response resp;
    json_t *body;
    char *text = NULL, *path = NULL;
    int rc = session_open(rec, &s, err);

    cf_response_init(&resp);
    if (rc == 0)
        rc = find_zone(&s, err);
    if (rc < 0)
        goto out;
    body = json_pack("{s:s, s:s, s:s, s:i}", "type", "TXT", "name", s.name, "content", rec->value,
                     "ttl", TXT_TTL);
    text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    path = aegis_asprintf("/zones/%s/dns_records", s.zone_id);
    rc = cf_api_call(&s.api, "POST", path, text, "dns_records", NOW_UNKNOWN, &resp, err);
    /* Presented again (a restart between publishing and recording it): already there. */
    if (rc == -AEGIS_E_EXISTS)
        rc = 0;
out:
    cf_response_dispose(&resp);
    free(text);
    free(path);
    session_dispose(&s);
    return rc;
}

static int cf_cleanup(const struct dns01_record *rec, struct aegis_err *err)
{
    struct session s;
    json_t *records = NULL, *r;
    size_t i;
    int rc = session_open(rec, &s, err);

    if (rc == 0)
        rc = find_zone(&s, err);
    if (rc == 0)
        rc = matching_records(&s, rec->value, &records, err);
    json_array_foreach(records, i, r)
    {
        const char *id = json_string_value(json_object_get(r, "id"));
        struct cf_response resp;
        char *qid, *path;
        int one;

        if (id == NULL)
            continue;
        qid = cf_api_escape(id);
        path = aegis_asprintf("/zones/%s/dns_records/%s", s.zone_id, qid);
        cf_response_init(&resp);
        one = cf_api_call(&s.api, "DELETE", path, NULL, "dns_records", NOW_UNKNOWN, &resp, err);
        /* Gone already is what cleanup wants. */
        if (one < 0 && one != -AEGIS_E_NOTFOUND && rc == 0)
            rc = one;
        cf_response_dispose(&resp);
        free(qid);
        free(path);
    }
    json_decref(records);
    session_dispose(&s);
    return rc;
}

const struct dns01_provider_ops dns01_cloudflare_ops = {
    .name = "cloudflare",
    .spec_field = API_F_ACME_SOLVER_DNS01_CLOUDFLARE,
    .present = cf_present,
    .cleanup = cf_cleanup,
};
