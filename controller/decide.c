/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's decisions (decide.h): whether a Certificate is due, the spec hash that says
 * whether its spec changed, the backoff after failures, the implicit Certificate of a Host and
 * what a Host serves. Pure functions: no clock, no I/O, no logging; time comes in as a number.
 */
#include "decide.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "aegis/alloc.h"
#include "aegis/pki.h"
#include "renewal.h"

const char *const decide_reason_names[DECIDE_REASON_COUNT_] = {
#define DECIDE_REASON_NAME(e, name) name,
    DECIDE_REASONS(DECIDE_REASON_NAME)
#undef DECIDE_REASON_NAME
};

const char *const decide_spec_field_names[DECIDE_SPEC_FIELD_COUNT_] = {
#define DECIDE_SPEC_FIELD_NAME(e, name) name,
    DECIDE_SPEC_FIELDS(DECIDE_SPEC_FIELD_NAME)
#undef DECIDE_SPEC_FIELD_NAME
};

const char *const decide_host_reason_names[DECIDE_HOST_REASON_COUNT_] = {
#define DECIDE_HOST_REASON_NAME(e, name) name,
    DECIDE_HOST_REASONS(DECIDE_HOST_REASON_NAME)
#undef DECIDE_HOST_REASON_NAME
};

/* Versions the canonical encoding: a change to it must change this tag. */
#define SPEC_HASH_TAG "aegis-certificate-spec/1\n"

/* ---- canonical encoding ---------------------------------------------------------------------- */

/* A growing byte buffer. */
struct buf {
    char *p;
    size_t n, cap;
};

static void buf_add(struct buf *b, const char *s, size_t len)
{
    aegis_grow((void **)&b->p, &b->cap, b->n + len + 1, 1);
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

/* A netstring, "<len>:<bytes>,": no item can be confused with another or with a boundary. */
static void buf_netstring(struct buf *b, const char *s, size_t len)
{
    char head[32];
    int k = snprintf(head, sizeof(head), "%zu:", len);

    buf_add(b, head, (size_t)k);
    buf_add(b, s, len);
    buf_add(b, ",", 1);
}

/* A list of owned strings: one field's canonical items. */
struct items {
    char **v;
    size_t n, cap;
};

static void items_add(struct items *it, char *owned)
{
    aegis_grow((void **)&it->v, &it->cap, it->n + 1, sizeof(*it->v));
    it->v[it->n++] = owned;
}

static void items_dispose(struct items *it)
{
    for (size_t i = 0; i < it->n; i++)
        free(it->v[i]);
    free(it->v);
    memset(it, 0, sizeof(*it));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts and drops duplicates: the list becomes a set. */
static void items_make_set(struct items *it)
{
    size_t w = 0;

    if (it->n > 1)
        qsort(it->v, it->n, sizeof(*it->v), cmp_str);
    for (size_t i = 0; i < it->n; i++) {
        if (w > 0 && strcmp(it->v[w - 1], it->v[i]) == 0) {
            free(it->v[i]);
            continue;
        }
        it->v[w++] = it->v[i];
    }
    it->n = w;
}

static void encode_items(struct buf *b, const char *name, const struct items *it)
{
    char count[32];
    int k = snprintf(count, sizeof(count), "%zu", it->n);

    buf_netstring(b, name, strlen(name));
    buf_netstring(b, count, (size_t)k);
    for (size_t i = 0; i < it->n; i++)
        buf_netstring(b, it->v[i], strlen(it->v[i]));
}

/* DNS names compare without regard to ASCII case (RFC 4343). */
static char *canonical_dns(const char *s)
{
    char *c = aegis_strdup(s);

    for (char *p = c; *p != '\0'; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return c;
}

/* "::1" and "0:0::1" are one address: compare the inet_ntop form. */
static char *canonical_ip(const char *s)
{
    unsigned char addr[16];
    char text[INET6_ADDRSTRLEN];

    if (inet_pton(AF_INET, s, addr) == 1 && inet_ntop(AF_INET, addr, text, sizeof(text)) != NULL)
        return aegis_strdup(text);
    if (inet_pton(AF_INET6, s, addr) == 1 && inet_ntop(AF_INET6, addr, text, sizeof(text)) != NULL)
        return aegis_strdup(text);
    return aegis_strdup(s); /* not an address: validation reports it; compare it as written */
}

static void set_of(struct items *it, char *const *v, size_t n, char *(*canon)(const char *))
{
    for (size_t i = 0; i < n; i++)
        items_add(it, canon != NULL ? canon(v[i]) : aegis_strdup(v[i]));
    items_make_set(it);
}

static void subject_items(struct items *it, const struct aegis_x509_subject *s)
{
    const struct {
        const char *key;
        const struct aegis_strv *v;
    } attrs[] = {
        {"O", &s->organizations},
        {"OU", &s->organizational_units},
        {"C", &s->countries},
        {"ST", &s->provinces},
        {"L", &s->localities},
        {"street", &s->street_addresses},
        {"postalCode", &s->postal_codes},
    };

    for (size_t a = 0; a < sizeof(attrs) / sizeof(attrs[0]); a++)
        for (size_t i = 0; i < attrs[a].v->n; i++)
            items_add(it, aegis_asprintf("%s=%s", attrs[a].key, attrs[a].v->v[i]));
    if (s->serial_number != NULL)
        items_add(it, aegis_asprintf("serialNumber=%s", s->serial_number));
}

/* The usages the issuers put in the certificate (issuer.c): the defaults when none are given. */
static void usage_items(struct items *it, const struct aegis_certificate_spec *spec)
{
    unsigned mask = 0;

    if (pki_usages_parse(spec->usages.v, spec->usages.n, &mask, NULL) < 0) {
        /* An unknown usage fails validation first; should one get here, hash it as written. */
        set_of(it, spec->usages.v, spec->usages.n, NULL);
        return;
    }
    if (mask == 0)
        mask = spec->is_ca
                   ? PKI_USAGE(DIGITAL_SIGNATURE) | PKI_USAGE(CERT_SIGN) | PKI_USAGE(CRL_SIGN)
                   : PKI_USAGES_DEFAULT;
    for (unsigned u = 0; u < PKI_USAGE_COUNT_; u++)
        if (mask & (1u << u))
            items_add(it, aegis_strdup(pki_usage_names[u]));
    /* By name, so that the order of the table in pki.h never changes a hash. */
    items_make_set(it);
}

static enum aegis_key_algorithm key_algorithm(const struct aegis_certificate_spec *spec)
{
    const struct aegis_certificate_private_key *pk = &spec->private_key;

    /* The API's default; a hand-built spec's zeroed enum would otherwise read as RSA. */
    if (!API_HAS(spec, API_F_CERTIFICATE_SPEC_PRIVATE_KEY) ||
        !API_HAS(pk, API_F_CERTIFICATE_PRIVATE_KEY_ALGORITHM))
        return AEGIS_KEY_ALGORITHM_ECDSA;
    return pk->algorithm;
}

static int64_t key_size(const struct aegis_certificate_spec *spec)
{
    enum aegis_key_algorithm alg = key_algorithm(spec);
    const struct aegis_certificate_private_key *pk = &spec->private_key;

    if (alg == AEGIS_KEY_ALGORITHM_ED25519)
        return 0;
    if (pk->size > 0)
        return pk->size;
    return alg == AEGIS_KEY_ALGORITHM_RSA ? 2048 : 256; /* resource.c's derived defaults */
}

static void field_items(struct items *it, const struct aegis_certificate_spec *spec,
                        enum decide_spec_field f)
{
    switch (f) {
    case DECIDE_SPEC_FIELD_DNS_NAMES:
        set_of(it, spec->dns_names.v, spec->dns_names.n, canonical_dns);
        break;
    case DECIDE_SPEC_FIELD_IP_ADDRESSES:
        set_of(it, spec->ip_addresses.v, spec->ip_addresses.n, canonical_ip);
        break;
    case DECIDE_SPEC_FIELD_URIS:
        set_of(it, spec->uris.v, spec->uris.n, NULL);
        break;
    case DECIDE_SPEC_FIELD_EMAIL_ADDRESSES:
        set_of(it, spec->email_addresses.v, spec->email_addresses.n, NULL);
        break;
    case DECIDE_SPEC_FIELD_COMMON_NAME:
        if (spec->common_name != NULL)
            items_add(it, aegis_strdup(spec->common_name));
        break;
    case DECIDE_SPEC_FIELD_SUBJECT:
        subject_items(it, &spec->subject);
        break;
    case DECIDE_SPEC_FIELD_IS_CA:
        items_add(it, aegis_strdup(spec->is_ca ? "true" : "false"));
        break;
    case DECIDE_SPEC_FIELD_USAGES:
        usage_items(it, spec);
        break;
    case DECIDE_SPEC_FIELD_KEY_ALGORITHM:
        items_add(it, aegis_strdup(api_key_algorithm_names[key_algorithm(spec)]));
        break;
    case DECIDE_SPEC_FIELD_KEY_SIZE:
        if (key_size(spec) > 0)
            items_add(it, aegis_asprintf("%" PRId64, key_size(spec)));
        break;
    case DECIDE_SPEC_FIELD_ISSUER_REF:
        if (API_HAS(spec, API_F_CERTIFICATE_SPEC_ISSUER_REF) && spec->issuer_ref.name != NULL)
            items_add(it, aegis_asprintf("%s/%s", api_issuer_ref_kind_names[spec->issuer_ref.kind],
                                         spec->issuer_ref.name));
        break;
    case DECIDE_SPEC_FIELD_DURATION:
        items_add(it,
                  aegis_asprintf("%" PRId64, spec->duration_ms > 0 ? spec->duration_ms
                                                                   : DECIDE_DEFAULT_DURATION_MS));
        break;
    case DECIDE_SPEC_FIELD_COUNT_:
        break;
    }
}

static void hex_of(const unsigned char *md, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 0xf];
    }
    out[2 * n] = '\0';
}

static void sha256(const char *p, size_t n, unsigned char md[32])
{
    unsigned int len = 0;

    /* SHA-256 of memory cannot fail short of a broken OpenSSL. */
    if (EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) != 1 || len != 32)
        abort();
}

void decide_spec_hash(const struct aegis_certificate_spec *spec, struct decide_spec_digest *out)
{
    struct buf all = {0};
    unsigned char md[32];

    memset(out, 0, sizeof(*out));
    buf_add(&all, SPEC_HASH_TAG, strlen(SPEC_HASH_TAG));
    for (int f = 0; f < DECIDE_SPEC_FIELD_COUNT_; f++) {
        struct items it = {0};
        struct buf one = {0};

        field_items(&it, spec, (enum decide_spec_field)f);
        encode_items(&one, decide_spec_field_names[f], &it);
        sha256(one.p, one.n, md);
        hex_of(md, DECIDE_FIELD_HEX / 2, out->field[f]);
        buf_add(&all, one.p, one.n);
        free(one.p);
        items_dispose(&it);
    }
    sha256(all.p, all.n, md);
    hex_of(md, sizeof(md), out->hex);
    free(all.p);
}

/* ---- the digest in meta.extra ---------------------------------------------------------------- */

void decide_spec_digest_to_json(const struct decide_spec_digest *d, json_t *extra)
{
    json_t *fields = json_object();

    for (int f = 0; f < DECIDE_SPEC_FIELD_COUNT_; f++)
        if (d->field[f][0] != '\0')
            json_object_set_new(fields, decide_spec_field_names[f], json_string(d->field[f]));
    json_object_set_new(extra, DECIDE_EXTRA_SPEC_HASH, json_string(d->hex));
    json_object_set_new(extra, DECIDE_EXTRA_SPEC_FIELDS, fields);
}

static bool is_lower_hex(const char *s, size_t len)
{
    if (strlen(s) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

int decide_spec_digest_from_json(const json_t *extra, struct decide_spec_digest *out,
                                 struct aegis_err *err)
{
    const json_t *hash, *fields;
    const char *key;
    json_t *value;

    memset(out, 0, sizeof(*out));
    hash = json_is_object(extra) ? json_object_get(extra, DECIDE_EXTRA_SPEC_HASH) : NULL;
    if (hash == NULL)
        return aegis_err_set(err, -AEGIS_E_NOTFOUND, DECIDE_EXTRA_SPEC_HASH,
                             "the record holds no spec hash");
    if (!json_is_string(hash) || !is_lower_hex(json_string_value(hash), 64))
        return aegis_err_set(err, -AEGIS_E_INVALID, DECIDE_EXTRA_SPEC_HASH,
                             "the spec hash is not 64 lowercase hex digits");
    memcpy(out->hex, json_string_value(hash), 65);
    fields = json_object_get(extra, DECIDE_EXTRA_SPEC_FIELDS);
    if (fields == NULL)
        return 0;
    if (!json_is_object(fields))
        return aegis_err_set(err, -AEGIS_E_INVALID, DECIDE_EXTRA_SPEC_FIELDS,
                             "the field digests are not a JSON object");
    json_object_foreach((json_t *)fields, key, value)
    {
        for (int f = 0; f < DECIDE_SPEC_FIELD_COUNT_; f++) {
            if (strcmp(key, decide_spec_field_names[f]) != 0)
                continue;
            if (!json_is_string(value) || !is_lower_hex(json_string_value(value), DECIDE_FIELD_HEX))
                return aegis_err_set(err, -AEGIS_E_INVALID, DECIDE_EXTRA_SPEC_FIELDS,
                                     "the digest of %s is not %d lowercase hex digits", key,
                                     DECIDE_FIELD_HEX);
            memcpy(out->field[f], json_string_value(value), DECIDE_FIELD_HEX + 1);
        }
    }
    return 0;
}

/* ---- failures and backoff -------------------------------------------------------------------- */

int64_t decide_backoff_delay(uint32_t attempts)
{
    int64_t d = DECIDE_BACKOFF_INITIAL_S;

    if (attempts == 0)
        return 0;
    /* Doubling stops at the cap, so no shift or product can overflow. */
    for (uint32_t i = 1; i < attempts && d < DECIDE_BACKOFF_MAX_S; i++)
        d *= 2;
    return d < DECIDE_BACKOFF_MAX_S ? d : DECIDE_BACKOFF_MAX_S;
}

static void copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src != NULL ? src : "");
}

void decide_failure_record(struct decide_failures *f, int64_t now, const char *spec_hash,
                           const char *reason, const char *message)
{
    if (f->attempts < UINT32_MAX)
        f->attempts++;
    f->last_failure_time = now;
    copy_str(f->spec_hash, sizeof(f->spec_hash), spec_hash);
    copy_str(f->reason, sizeof(f->reason), reason);
    copy_str(f->message, sizeof(f->message), message);
}

void decide_failure_clear(struct decide_failures *f)
{
    memset(f, 0, sizeof(*f));
}

/*
 * The end of the backoff, or 0 when none applies. A last failure in the future (the clock went
 * back) counts from now, so that a clock step cannot stretch the wait beyond one delay.
 */
static int64_t backoff_until(const struct decide_failures *f, const char *spec_hash, int64_t now)
{
    int64_t from, delay;

    if (f == NULL || f->attempts == 0)
        return 0;
    if (f->spec_hash[0] != '\0' && strcmp(f->spec_hash, spec_hash) != 0)
        return 0; /* the spec changed since the failures: try the new one now */
    delay = decide_backoff_delay(f->attempts);
    from = f->last_failure_time < now ? f->last_failure_time : now;
    return from > INT64_MAX - delay ? INT64_MAX : from + delay;
}

/* ---- the certificate decision ---------------------------------------------------------------- */

/*
 * Compares the spec's digest with the stored one. Returns true with *field when a field known to
 * both differs (or, when the record knows no fields, with UNKNOWN); false when they agree, with
 * *adopt when they agree only on the fields the record knows.
 */
static bool digest_changed(const struct decide_spec_digest *cur,
                           const struct decide_spec_digest *stored, enum decide_spec_field *field,
                           bool *adopt)
{
    bool known = false;

    if (strcmp(cur->hex, stored->hex) == 0)
        return false;
    for (int f = 0; f < DECIDE_SPEC_FIELD_COUNT_; f++) {
        if (stored->field[f][0] == '\0')
            continue;
        known = true;
        if (strcmp(stored->field[f], cur->field[f]) != 0) {
            *field = (enum decide_spec_field)f;
            return true;
        }
    }
    if (!known) {
        *field = DECIDE_SPEC_FIELD_UNKNOWN;
        return true;
    }
    /* Only fields added after the record was written differ: never a reason to re-issue. */
    *adopt = true;
    return false;
}

static bool same_set(char *const *a, size_t na, char *const *b, size_t nb,
                     char *(*canon)(const char *))
{
    struct items x = {0}, y = {0};
    bool same;

    set_of(&x, a, na, canon);
    set_of(&y, b, nb, canon);
    same = x.n == y.n;
    for (size_t i = 0; same && i < x.n; i++)
        same = strcmp(x.v[i], y.v[i]) == 0;
    items_dispose(&x);
    items_dispose(&y);
    return same;
}

static bool supplied_source(const char *source)
{
    return source != NULL && (strcmp(source, "custom") == 0 || strcmp(source, "pkcs12") == 0 ||
                              strcmp(source, "csr") == 0);
}

/*
 * A record without a digest (written by aegisctl, or before digests existed): the certificate
 * itself is all there is to compare. Its names are checked; the rest cannot be read back
 * reliably and counts as unchanged, which errs on the side of not spending the CA's rate limits.
 */
static bool meta_changed(const struct aegis_certificate_spec *spec, const struct store_meta *m,
                         enum decide_spec_field *field)
{
    if (supplied_source(m->source)) {
        *field = DECIDE_SPEC_FIELD_ISSUER_REF; /* was supplied, is now to be issued */
        return true;
    }
    if (!same_set(spec->dns_names.v, spec->dns_names.n, m->dns_names, m->n_dns_names,
                  canonical_dns)) {
        *field = DECIDE_SPEC_FIELD_DNS_NAMES;
        return true;
    }
    if (!same_set(spec->ip_addresses.v, spec->ip_addresses.n, m->ip_addresses, m->n_ip_addresses,
                  canonical_ip)) {
        *field = DECIDE_SPEC_FIELD_IP_ADDRESSES;
        return true;
    }
    return false;
}

static bool is_supplied(const struct aegis_certificate_spec *spec)
{
    return !API_HAS(spec, API_F_CERTIFICATE_SPEC_ISSUER_REF) &&
           (API_HAS(spec, API_F_CERTIFICATE_SPEC_CUSTOM) ||
            API_HAS(spec, API_F_CERTIFICATE_SPEC_PKCS12) ||
            API_HAS(spec, API_F_CERTIFICATE_SPEC_CSR));
}

static int64_t min_future(int64_t a, int64_t b, int64_t now)
{
    if (a <= now)
        return b > now ? b : 0;
    if (b <= now)
        return a;
    return a < b ? a : b;
}

static void decide_supplied(const struct decide_cert_input *in, int64_t now, bool have,
                            struct decide_cert_result *out)
{
    const char *fp = in->supplied_fingerprint;

    if (fp == NULL || fp[0] == '\0') {
        /* The source holds nothing (yet): keep what is stored, if anything. */
        out->trigger = !have ? DECIDE_REASON_WAITING_FOR_CERTIFICATE
                             : (out->valid ? DECIDE_REASON_UP_TO_DATE : DECIDE_REASON_EXPIRED);
    } else if (!have) {
        out->trigger = DECIDE_REASON_DOES_NOT_EXIST;
    } else if (strcasecmp(fp, in->stored->fingerprint) != 0) {
        out->trigger = DECIDE_REASON_SOURCE_CHANGED;
    } else {
        /* The same certificate: an expired one can only be replaced by its owner. */
        out->trigger = out->valid ? DECIDE_REASON_UP_TO_DATE : DECIDE_REASON_EXPIRED;
    }
    out->reason = out->trigger;
    out->issue = out->trigger == DECIDE_REASON_DOES_NOT_EXIST ||
                 out->trigger == DECIDE_REASON_SOURCE_CHANGED;
    out->ready = out->valid && out->trigger == DECIDE_REASON_UP_TO_DATE;
    if (out->issue)
        out->next_check = now;
    else if (out->trigger == DECIDE_REASON_UP_TO_DATE)
        out->next_check = in->stored->not_after; /* when it turns Expired */
    else
        out->next_check = 0; /* only a change of the source helps */
}

void decide_certificate(const struct decide_cert_input *in, int64_t now,
                        struct decide_cert_result *out)
{
    const struct store_meta *st = in->stored;
    bool have = st != NULL && st->not_after != 0;

    memset(out, 0, sizeof(*out));
    out->changed_field = DECIDE_SPEC_FIELD_UNKNOWN;
    out->generation = in->generation;
    decide_spec_hash(in->spec, &out->digest);
    out->valid = have && now < st->not_after;
    if (have) {
        double jitter = renewal_jitter_from_seed(renewal_seed_from_hex(st->fingerprint));
        int64_t renew_before = in->spec->renew_before_ms / 1000;

        /*
         * A CA may issue for less than the duration asked (ACME CAs pick their own), leaving a
         * renewBefore as long as the real lifetime: renewal_time would then say "now" right
         * after every issuance, a loop of issuances. Like cert-manager, renew such a certificate
         * at the default point, two thirds into its real lifetime.
         */
        if (st->not_after > st->not_before && renew_before >= st->not_after - st->not_before)
            renew_before = 0;
        out->renewal_time = renewal_time(st->not_before, st->not_after, renew_before, jitter);
    }
    if (is_supplied(in->spec)) {
        out->supplied = true;
        decide_supplied(in, now, have, out);
        return;
    }

    if (have) {
        if (in->stored_digest != NULL)
            out->spec_changed =
                digest_changed(&out->digest, in->stored_digest, &out->changed_field, &out->adopt);
        else
            out->spec_changed = meta_changed(in->spec, st, &out->changed_field);
        if (in->stored_digest == NULL && !out->spec_changed)
            out->adopt = true;
    }
    if (!have)
        out->trigger = DECIDE_REASON_DOES_NOT_EXIST;
    else if (!out->valid)
        out->trigger = DECIDE_REASON_EXPIRED;
    else if (json_is_object(json_object_get(st->extra, DECIDE_REVOKED_KEY)))
        out->trigger = DECIDE_REASON_REVOKED;
    else if (out->spec_changed)
        out->trigger = DECIDE_REASON_SPEC_CHANGED;
    else if (renewal_due(now, out->renewal_time))
        out->trigger = DECIDE_REASON_RENEWING;
    else
        out->trigger = DECIDE_REASON_UP_TO_DATE;
    out->ready = out->valid && (out->trigger == DECIDE_REASON_UP_TO_DATE ||
                                out->trigger == DECIDE_REASON_RENEWING);

    if (out->trigger == DECIDE_REASON_UP_TO_DATE) {
        out->reason = DECIDE_REASON_UP_TO_DATE;
        out->next_check = out->renewal_time;
        return;
    }
    out->backoff_until = backoff_until(in->failures, out->digest.hex, now);
    if (out->backoff_until <= now)
        out->backoff_until = 0;
    /*
     * The Issuer first: waiting for it spends no attempt, and it is what the user must fix. The
     * status still shows the failures and their retry time.
     */
    if (!in->issuer_ready) {
        out->reason = DECIDE_REASON_ISSUER_NOT_READY;
        out->next_check = out->valid ? st->not_after : 0; /* Ready turns False at expiry */
    } else if (out->backoff_until != 0) {
        out->reason = DECIDE_REASON_BACKOFF_ACTIVE;
        out->next_check = min_future(out->backoff_until, out->valid ? st->not_after : 0, now);
    } else {
        out->issue = true;
        out->reason = out->trigger;
        out->next_check = now;
    }
}

/* ---- Hosts ----------------------------------------------------------------------------------- */

int decide_implicit_name(const char *host_name, char *buf, size_t size, struct aegis_err *err)
{
    size_t n = strlen(host_name) + strlen(DECIDE_IMPLICIT_SUFFIX);

    if (n > STORE_NAME_MAX || n >= size)
        return aegis_err_set(err, -AEGIS_E_LIMIT, "metadata.name",
                             "the Host name is too long for its implicit Certificate "
                             "\"<name>%s\" (at most %d characters): shorten it, or declare the "
                             "Certificate and use tls.mode custom",
                             DECIDE_IMPLICIT_SUFFIX, STORE_NAME_MAX);
    snprintf(buf, size, "%s%s", host_name, DECIDE_IMPLICIT_SUFFIX);
    return 0;
}

static bool has_implicit(const struct aegis_resource *r)
{
    return r->kind == AEGIS_KIND_HOST && r->spec.host.tls.mode == AEGIS_TLS_MODE_ACME &&
           API_HAS(&r->spec.host.tls, API_F_HOST_TLS_ISSUER_REF) &&
           r->spec.host.tls.issuer_ref.name != NULL;
}

static void strv_copy(struct aegis_strv *dst, const struct aegis_strv *src)
{
    dst->n = src->n;
    dst->v = aegis_calloc(src->n + 1, sizeof(*dst->v));
    dst->marks = aegis_calloc(src->n + 1, sizeof(*dst->marks));
    for (size_t i = 0; i < src->n; i++) {
        dst->v[i] = aegis_strdup(src->v[i]);
        if (src->marks != NULL)
            dst->marks[i] = src->marks[i];
    }
}

#define BIT(i) (UINT64_C(1) << (i))

int decide_implicit_certificate(const struct aegis_resource *host,
                                struct aegis_certificate_spec *out, struct aegis_err *err)
{
    const struct aegis_host_tls *tls;

    memset(out, 0, sizeof(*out));
    if (host == NULL || !has_implicit(host))
        return aegis_err_set(err, -AEGIS_E_INVALID, "spec.tls",
                             "only a Host with tls.mode acme and tls.issuerRef implies a "
                             "Certificate");
    tls = &host->spec.host.tls;
    out->mark = host->mark;
    strv_copy(&out->dns_names, &host->spec.host.hostnames);
    out->issuer_ref.mark = tls->issuer_ref.mark;
    out->issuer_ref.name = aegis_strdup(tls->issuer_ref.name);
    out->issuer_ref.kind = tls->issuer_ref.kind;
    out->issuer_ref.present = BIT(API_F_ISSUER_REFERENCE_NAME) | BIT(API_F_ISSUER_REFERENCE_KIND);
    /* The API's defaults, as api_decode and resource.c would apply them to a written one. */
    out->duration_ms = DECIDE_DEFAULT_DURATION_MS;
    out->renew_before_ms = out->duration_ms / 3;
    out->is_ca = false;
    out->private_key.algorithm = AEGIS_KEY_ALGORITHM_ECDSA;
    out->private_key.size = 256;
    out->private_key.rotation_policy = AEGIS_ROTATION_POLICY_ALWAYS;
    out->private_key.present = BIT(API_F_CERTIFICATE_PRIVATE_KEY_ALGORITHM) |
                               BIT(API_F_CERTIFICATE_PRIVATE_KEY_SIZE) |
                               BIT(API_F_CERTIFICATE_PRIVATE_KEY_ROTATION_POLICY);
    out->present = BIT(API_F_CERTIFICATE_SPEC_DNS_NAMES) | BIT(API_F_CERTIFICATE_SPEC_ISSUER_REF) |
                   BIT(API_F_CERTIFICATE_SPEC_DURATION) | BIT(API_F_CERTIFICATE_SPEC_RENEW_BEFORE) |
                   BIT(API_F_CERTIFICATE_SPEC_IS_CA) | BIT(API_F_CERTIFICATE_SPEC_PRIVATE_KEY);
    return 0;
}

static const char *ns_of(const struct aegis_resource *r)
{
    return r->meta.namespace != NULL ? r->meta.namespace : "default";
}

const struct aegis_resource *decide_implicit_conflict(const struct aegis_resource_set *set,
                                                      const struct aegis_resource *host)
{
    char name[STORE_NAME_MAX + 1];

    if (!has_implicit(host) || decide_implicit_name(host->meta.name, name, sizeof(name), NULL) < 0)
        return NULL;
    return resource_set_find(set, AEGIS_KIND_CERTIFICATE, ns_of(host), name);
}

size_t decide_implicit_conflicts(const struct aegis_resource_set *set, struct aegis_diags *diags)
{
    size_t count = 0;

    for (size_t i = 0; i < set->n; i++) {
        const struct aegis_resource *h = set->v[i], *c;
        struct aegis_diag_loc loc;
        struct aegis_err err;
        char name[STORE_NAME_MAX + 1];

        if (!has_implicit(h))
            continue;
        loc = (struct aegis_diag_loc){.file = h->file,
                                      .mark = h->spec.host.tls.issuer_ref.mark,
                                      .kind = resource_kind_name(h->kind),
                                      .ns = ns_of(h),
                                      .name = h->meta.name,
                                      .path = "spec.tls.issuerRef"};
        if (decide_implicit_name(h->meta.name, name, sizeof(name), &err) < 0) {
            loc.mark = h->mark;
            loc.path = "metadata.name";
            aegis_diags_add(diags, AEGIS_SEV_ERROR, &loc, "%s", err.msg);
            count++;
            continue;
        }
        c = resource_set_find(set, AEGIS_KIND_CERTIFICATE, ns_of(h), name);
        if (c == NULL)
            continue;
        aegis_diags_add(diags, AEGIS_SEV_WARNING, &loc,
                        "the implicit Certificate of this Host would be \"%s/%s\", which is "
                        "declared at %s:%u:%u; that Certificate is served instead and no "
                        "implicit one is made. To make this explicit, use tls.mode custom with "
                        "certificateRef \"%s\"; otherwise rename one of them",
                        ns_of(h), name, c->file != NULL ? c->file : "(unknown)", c->mark.line,
                        c->mark.col, name);
        count++;
    }
    return count;
}

int decide_host_certificate_name(const struct aegis_resource *host, char *buf, size_t size,
                                 struct aegis_err *err)
{
    const struct aegis_host_tls *tls = &host->spec.host.tls;
    int rc;

    if (host->kind != AEGIS_KIND_HOST)
        return aegis_err_set(err, -AEGIS_E_INVALID, NULL, "not a Host");
    switch (tls->mode) {
    case AEGIS_TLS_MODE_ACME:
        rc = decide_implicit_name(host->meta.name, buf, size, err);
        return rc < 0 ? rc : 1;
    case AEGIS_TLS_MODE_CUSTOM:
        if (tls->certificate_ref.name == NULL || strlen(tls->certificate_ref.name) >= size)
            return aegis_err_set(err, -AEGIS_E_INVALID, "spec.tls.certificateRef.name",
                                 "no usable certificateRef");
        snprintf(buf, size, "%s", tls->certificate_ref.name);
        return 1;
    case AEGIS_TLS_MODE_NONE:
    case AEGIS_TLS_MODE_COUNT_:
        break;
    }
    return 0;
}

void decide_host(const struct decide_host_input *in, struct decide_host_result *out)
{
    memset(out, 0, sizeof(*out));
    if (!in->tls) {
        out->serve = DECIDE_SERVE_PLAIN;
        out->ready = true;
        out->reason = DECIDE_HOST_REASON_PLAIN_HTTP;
        return;
    }
    if (!in->cert_found) {
        out->serve = DECIDE_SERVE_FALLBACK;
        out->reason = DECIDE_HOST_REASON_CERTIFICATE_NOT_FOUND;
        return;
    }
    out->serve = in->cert_valid ? DECIDE_SERVE_CERTIFICATE : DECIDE_SERVE_FALLBACK;
    out->ready = in->cert_ready && in->cert_valid;
    out->reason = out->ready ? DECIDE_HOST_REASON_READY : DECIDE_HOST_REASON_CERTIFICATE_NOT_READY;
}
