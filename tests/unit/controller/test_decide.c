/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for controller/decide.c, with time moved by hand (the injected clock) and specs
 * decoded from YAML as the controller decodes them: the spec hash (pinned, order- and
 * default-insensitive, each hashed field named when it changes, the fields left out on purpose),
 * its meta.extra form; a lifecycle of one Certificate (missing -> issue -> up to date across
 * many restarts -> renewing -> expired); the backoff of 1, 2, 4 ... minutes capped at 32 h,
 * never a tight loop, skipped once for a changed spec; a missing Issuer; records without a
 * digest or with an older one (adopted, never re-issued); supplied certificates; the implicit
 * Certificate of a Host, its name and its collisions; and what a Host serves.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/alloc.h"
#include "aegis/resource.h"
#include "check.h"
#include "decide.h"
#include "renewal.h"

#define T0 1750000000LL /* 2025-06-15 */
#define MIN 60LL
#define HOUR 3600LL
#define DAY 86400LL

#define BASE "{issuerRef: {name: local}, dnsNames: [a.test, b.test]}"

/* ---- specs from YAML ---- */

struct spec {
    struct aegis_resource_set set;
    const struct aegis_certificate_spec *c;
};

static bool spec_load(struct spec *s, const char *body)
{
    char *yaml = aegis_asprintf("apiVersion: aegis.dev/v1alpha1\nkind: Certificate\n"
                                "metadata: {name: app}\nspec: %s\n",
                                body);
    struct aegis_diags d;
    bool ok;

    resource_set_init(&s->set);
    aegis_diags_init(&d);
    ok = resource_load_buffer(&s->set, "test.yaml", yaml, strlen(yaml), &d) == 0 && s->set.n == 1;
    if (!ok)
        for (size_t i = 0; i < d.n; i++)
            printf("# %s: %s\n", d.v[i].path ? d.v[i].path : "", d.v[i].msg);
    s->c = ok ? &s->set.v[0]->spec.certificate : NULL;
    aegis_diags_dispose(&d);
    free(yaml);
    return ok;
}

static void spec_dispose(struct spec *s)
{
    resource_set_dispose(&s->set);
}

static void digest_of(const char *body, struct decide_spec_digest *d)
{
    struct spec s;

    memset(d, 0, sizeof(*d));
    if (CHECK(spec_load(&s, body), body))
        decide_spec_hash(s.c, d);
    spec_dispose(&s);
}

/* ---- the spec hash ---- */

static void test_hash_pinned(void)
{
    struct decide_spec_digest d;

    /*
     * The canonical encoding is part of the stored state: a change re-issues (or, with the
     * field digests, adopts) every certificate on upgrade. Change SPEC_HASH_TAG with it. The
     * values were computed independently, in Python, from the encoding decide.h describes:
     *   ns = lambda s: b"%d:%s," % (len(s), s)
     *   field = lambda name, items: ns(name) + ns(b"%d" % len(items)) + b"".join(map(ns, items))
     *   sha256(b"aegis-certificate-spec/1\n" + field(b"dnsNames", [b"a.test", b"b.test"]) +
     *          field(b"ipAddresses", []) + ... + field(b"isCA", [b"false"]) +
     *          field(b"usages", [b"digital signature", b"key encipherment", b"server auth"]) +
     *          field(b"privateKey.algorithm", [b"ECDSA"]) + field(b"privateKey.size", [b"256"]) +
     *          field(b"issuerRef", [b"Issuer/local"]) + field(b"duration", [b"7776000000"]))
     */
    digest_of(BASE, &d);
    CHECK_STR(d.hex, "de53f692f290fbe2ab7131cee60376bf540c6e706b6d811e7c5700bf7f47f957",
              "spec hash of the base spec is pinned");
    CHECK_STR(d.field[DECIDE_SPEC_FIELD_DNS_NAMES], "c305c93fbedbc69a",
              "the dnsNames digest is the first 16 hex digits of its encoding's SHA-256");
}

static const struct {
    const char *name, *body;
} same_cases[] = {
    {"dnsNames reordered", "{issuerRef: {name: local}, dnsNames: [b.test, a.test]}"},
    {"dnsNames in another case", "{issuerRef: {name: local}, dnsNames: [A.Test, b.TEST]}"},
    {"renewBefore changed (only moves renewalTime)",
     "{issuerRef: {name: local}, dnsNames: [a.test, b.test], renewBefore: 24h}"},
    {"rotationPolicy changed (applies at the next issuance)",
     "{issuerRef: {name: local}, dnsNames: [a.test, b.test], privateKey: {rotationPolicy: Never}}"},
    {"secretName given (where, not what)",
     "{issuerRef: {name: local}, dnsNames: [a.test, b.test], secretName: elsewhere}"},
    {"defaults spelled out",
     "{issuerRef: {name: local, kind: Issuer}, dnsNames: [a.test, b.test], duration: 2160h, "
     "isCA: false, privateKey: {algorithm: ECDSA, size: 256}, "
     "usages: [server auth, key encipherment, digital signature]}"},
    {"duration in days", "{issuerRef: {name: local}, dnsNames: [a.test, b.test], duration: 90d}"},
};

static const struct {
    const char *name, *body;
    enum decide_spec_field field;
} change_cases[] = {
    {"a name added", "{issuerRef: {name: local}, dnsNames: [a.test, b.test, c.test]}",
     DECIDE_SPEC_FIELD_DNS_NAMES},
    {"a name replaced", "{issuerRef: {name: local}, dnsNames: [a.test, c.test]}",
     DECIDE_SPEC_FIELD_DNS_NAMES},
    {"an IP added",
     "{issuerRef: {name: local}, dnsNames: [a.test, b.test], ipAddresses: [\"::1\"]}",
     DECIDE_SPEC_FIELD_IP_ADDRESSES},
    {"a URI added",
     "{issuerRef: {name: local}, dnsNames: [a.test, b.test], uris: [\"spiffe://a.test/x\"]}",
     DECIDE_SPEC_FIELD_URIS},
    {"an email added",
     "{issuerRef: {name: local}, dnsNames: [a.test, b.test], emailAddresses: [ops@a.test]}",
     DECIDE_SPEC_FIELD_EMAIL_ADDRESSES},
    {"commonName set", "{issuerRef: {name: local}, dnsNames: [a.test, b.test], commonName: a.test}",
     DECIDE_SPEC_FIELD_COMMON_NAME},
    {"subject set",
     "{issuerRef: {name: local}, dnsNames: [a.test, b.test], subject: {organizations: [Ex]}}",
     DECIDE_SPEC_FIELD_SUBJECT},
    {"isCA set", "{issuerRef: {name: local}, dnsNames: [a.test, b.test], isCA: true}",
     DECIDE_SPEC_FIELD_IS_CA},
    {"usages changed",
     "{issuerRef: {name: local}, dnsNames: [a.test, b.test], usages: [client auth]}",
     DECIDE_SPEC_FIELD_USAGES},
    {"key algorithm changed",
     "{issuerRef: {name: local}, dnsNames: [a.test, b.test], privateKey: {algorithm: RSA}}",
     DECIDE_SPEC_FIELD_KEY_ALGORITHM},
    {"key size changed",
     "{issuerRef: {name: local}, dnsNames: [a.test, b.test], privateKey: {size: 384}}",
     DECIDE_SPEC_FIELD_KEY_SIZE},
    {"issuer changed", "{issuerRef: {name: other}, dnsNames: [a.test, b.test]}",
     DECIDE_SPEC_FIELD_ISSUER_REF},
    {"duration changed", "{issuerRef: {name: local}, dnsNames: [a.test, b.test], duration: 720h}",
     DECIDE_SPEC_FIELD_DURATION},
};

static void test_hash_table(void)
{
    struct decide_spec_digest base, d;
    char name[160];

    digest_of(BASE, &base);
    for (size_t i = 0; i < sizeof(same_cases) / sizeof(same_cases[0]); i++) {
        digest_of(same_cases[i].body, &d);
        snprintf(name, sizeof(name), "same hash: %s", same_cases[i].name);
        CHECK_STR(d.hex, base.hex, name);
    }
    for (size_t i = 0; i < sizeof(change_cases) / sizeof(change_cases[0]); i++) {
        int first = -1, ndiff = 0;

        digest_of(change_cases[i].body, &d);
        snprintf(name, sizeof(name), "new hash: %s", change_cases[i].name);
        CHECK(strcmp(d.hex, base.hex) != 0, name);
        for (int f = 0; f < DECIDE_SPEC_FIELD_COUNT_; f++)
            if (strcmp(d.field[f], base.field[f]) != 0) {
                ndiff++;
                if (first < 0)
                    first = f;
            }
        snprintf(name, sizeof(name), "%s: the first differing field digest is %s",
                 change_cases[i].name, decide_spec_field_names[change_cases[i].field]);
        CHECK_INT(first, change_cases[i].field, name);
        /* isCA and the key algorithm carry their defaults along (usages, size). */
        snprintf(name, sizeof(name), "%s: one or two field digests differ", change_cases[i].name);
        CHECK(ndiff >= 1 && ndiff <= 2, name);
    }
}

static void test_hash_canonical(void)
{
    struct decide_spec_digest a, b;

    digest_of("{issuerRef: {name: local}, ipAddresses: [\"::1\", 10.0.0.1]}", &a);
    digest_of("{issuerRef: {name: local}, ipAddresses: [10.0.0.1, \"0:0:0::1\"]}", &b);
    CHECK_STR(a.hex, b.hex, "IPv6 addresses compare in canonical form, as a set");
    digest_of("{issuerRef: {name: local}, ipAddresses: [\"::2\"]}", &b);
    CHECK(strcmp(a.hex, b.hex) != 0, "another address is another hash");
    digest_of("{issuerRef: {name: local}, dnsNames: [a.test], isCA: true}", &a);
    digest_of("{issuerRef: {name: local}, dnsNames: [a.test], isCA: true, "
              "usages: [cert sign, crl sign, digital signature]}",
              &b);
    CHECK_STR(a.hex, b.hex, "a CA's default usages spelled out: same hash");
    digest_of("{issuerRef: {name: local}, dnsNames: [a.test], privateKey: {algorithm: RSA}}", &a);
    digest_of("{issuerRef: {name: local}, dnsNames: [a.test], "
              "privateKey: {algorithm: RSA, size: 2048}}",
              &b);
    CHECK_STR(a.hex, b.hex, "RSA's default size spelled out: same hash");
    digest_of("{issuerRef: {name: local}, dnsNames: [a.test], subject: {organizations: [A, B]}}",
              &a);
    digest_of("{issuerRef: {name: local}, dnsNames: [a.test], subject: {organizations: [B, A]}}",
              &b);
    CHECK(strcmp(a.hex, b.hex) != 0, "subject attributes keep their order (it is the DN's)");
}

static void test_hash_hand_built(void)
{
    struct aegis_certificate_spec c;
    struct decide_spec_digest a, b;
    char *names[] = {"b.test", "a.test"};

    /* A spec built in C without defaults (as a caller might) hashes like the decoded one. */
    memset(&c, 0, sizeof(c));
    c.present = (UINT64_C(1) << API_F_CERTIFICATE_SPEC_DNS_NAMES) |
                (UINT64_C(1) << API_F_CERTIFICATE_SPEC_ISSUER_REF);
    c.dns_names.v = names;
    c.dns_names.n = 2;
    c.issuer_ref.name = "local";
    decide_spec_hash(&c, &a);
    digest_of(BASE, &b);
    CHECK_STR(a.hex, b.hex, "a hand-built spec without defaults hashes like the decoded one");
}

static void test_digest_json(void)
{
    struct decide_spec_digest d, back;
    struct aegis_err err;
    json_t *extra = json_object();

    digest_of(BASE, &d);
    json_object_set_new(extra, "acmeOrder", json_string("keep me"));
    decide_spec_digest_to_json(&d, extra);
    CHECK_INT(decide_spec_digest_from_json(extra, &back, &err), 0, "digest reads back");
    CHECK(memcmp(&d, &back, sizeof(d)) == 0, "digest round-trips through meta.extra");
    CHECK_STR(json_string_value(json_object_get(extra, "acmeOrder")), "keep me",
              "other extra keys are kept");

    json_object_set_new(json_object_get(extra, DECIDE_EXTRA_SPEC_FIELDS), "futureField",
                        json_string("0123456789abcdef"));
    CHECK_INT(decide_spec_digest_from_json(extra, &back, &err), 0, "unknown field names ignored");
    json_object_del(json_object_get(extra, DECIDE_EXTRA_SPEC_FIELDS), "duration");
    CHECK_INT(decide_spec_digest_from_json(extra, &back, &err), 0, "missing fields accepted");
    CHECK_STR(back.field[DECIDE_SPEC_FIELD_DURATION], "", "a missing field reads as unknown");

    json_object_set_new(json_object_get(extra, DECIDE_EXTRA_SPEC_FIELDS), "dnsNames",
                        json_string("XYZ"));
    CHECK_INT(decide_spec_digest_from_json(extra, &back, &err), -AEGIS_E_INVALID,
              "a malformed field digest is refused");
    json_object_set_new(extra, DECIDE_EXTRA_SPEC_HASH, json_string("abc"));
    CHECK_INT(decide_spec_digest_from_json(extra, &back, &err), -AEGIS_E_INVALID,
              "a malformed spec hash is refused");
    CHECK_STR(err.where, DECIDE_EXTRA_SPEC_HASH, "the error names the key");
    json_object_del(extra, DECIDE_EXTRA_SPEC_HASH);
    CHECK_INT(decide_spec_digest_from_json(extra, &back, &err), -AEGIS_E_NOTFOUND,
              "no spec hash: not found");
    CHECK_INT(decide_spec_digest_from_json(NULL, &back, NULL), -AEGIS_E_NOTFOUND,
              "no extra at all: not found");
    json_decref(extra);
}

/* ---- a world: one Certificate, its stored record, its failures, an Issuer ---- */

struct world {
    struct spec spec;
    bool have;
    struct store_meta meta;
    bool have_digest;
    struct decide_spec_digest digest;
    struct decide_failures fail;
    bool issuer_ready;
    unsigned serial;
};

static void world_init(struct world *w, const char *body)
{
    memset(w, 0, sizeof(*w));
    store_meta_init(&w->meta);
    w->issuer_ready = true;
    CHECK(spec_load(&w->spec, body), "world spec loads");
}

static void world_set_spec(struct world *w, const char *body)
{
    spec_dispose(&w->spec);
    CHECK(spec_load(&w->spec, body), "new spec loads");
}

static void world_dispose(struct world *w)
{
    spec_dispose(&w->spec);
    store_meta_dispose(&w->meta);
}

static void world_decide(const struct world *w, int64_t now, struct decide_cert_result *r)
{
    struct decide_cert_input in = {
        .spec = w->spec.c,
        .generation = 1,
        .stored = w->have ? &w->meta : NULL,
        .stored_digest = w->have_digest ? &w->digest : NULL,
        .failures = &w->fail,
        .issuer_ready = w->issuer_ready,
    };

    decide_certificate(&in, now, r);
}

/* A successful issuance at now: what the reconciler stores. */
static void world_issue(struct world *w, int64_t now, const struct decide_cert_result *r)
{
    const struct aegis_certificate_spec *c = w->spec.c;

    store_meta_dispose(&w->meta);
    store_meta_init(&w->meta);
    w->meta.n_dns_names = c->dns_names.n;
    w->meta.dns_names = aegis_calloc(c->dns_names.n + 1, sizeof(char *));
    for (size_t i = 0; i < c->dns_names.n; i++)
        w->meta.dns_names[i] = aegis_strdup(c->dns_names.v[i]);
    w->meta.not_before = now - 60;
    w->meta.not_after = now + c->duration_ms / 1000;
    w->meta.serial = aegis_asprintf("%04X", ++w->serial);
    w->meta.issuer = aegis_strdup("CN=Aegis Local Intermediate");
    w->meta.source = aegis_strdup("ca");
    w->meta.revision = w->serial;
    snprintf(w->meta.fingerprint, sizeof(w->meta.fingerprint), "%08x%056x", w->serial * 2654435761u,
             0u);
    w->have = true;
    w->digest = r->digest;
    w->have_digest = true;
    decide_failure_clear(&w->fail);
}

/* A controller restart: the record's digest comes back through its JSON form. */
static void world_restart(struct world *w)
{
    json_t *extra = json_object();

    decide_spec_digest_to_json(&w->digest, extra);
    memset(&w->digest, 0, sizeof(w->digest));
    CHECK_INT(decide_spec_digest_from_json(extra, &w->digest, NULL), 0, "digest read back");
    json_decref(extra);
}

static int64_t expected_renewal(const struct world *w)
{
    return renewal_time(w->meta.not_before, w->meta.not_after, w->spec.c->renew_before_ms / 1000,
                        renewal_jitter_from_seed(renewal_seed_from_hex(w->meta.fingerprint)));
}

static void test_lifecycle(void)
{
    struct world w;
    struct decide_cert_result r;
    int64_t t = T0, renewal, issued_at;
    bool never = true;

    world_init(&w, BASE);

    /* missing -> issue */
    world_decide(&w, t, &r);
    CHECK(r.issue, "missing: issue");
    CHECK_STR(decide_reason_names[r.reason], "DoesNotExist", "missing: DoesNotExist");
    CHECK_INT(r.next_check, t, "issuing: next check is now");
    CHECK(!r.ready && !r.valid, "missing: not ready");
    world_issue(&w, t, &r);
    issued_at = t;

    /* fresh -> up to date, and stays so across restarts and re-reads until renewalTime */
    world_decide(&w, t, &r);
    renewal = expected_renewal(&w);
    CHECK(!r.issue, "fresh: no issuance");
    CHECK_INT(r.reason, DECIDE_REASON_UP_TO_DATE, "fresh: UpToDate");
    CHECK(r.ready && r.valid && !r.adopt, "fresh: ready");
    CHECK_INT(r.renewal_time, renewal, "renewalTime from renewal.h with the fingerprint's jitter");
    CHECK(renewal > issued_at + 59 * DAY && renewal <= issued_at + 60 * DAY,
          "renewalTime at about two thirds of 90 days");
    CHECK_INT(r.next_check, renewal, "up to date: next check at renewalTime");
    for (int i = 0; i < 200; i++) {
        int64_t at = issued_at + (renewal - 1 - issued_at) * i / 199;

        world_restart(&w);
        world_set_spec(&w, i % 2 ? BASE : "{issuerRef: {name: local}, dnsNames: [b.test, a.test]}");
        world_decide(&w, at, &r);
        if (r.issue || r.reason != DECIDE_REASON_UP_TO_DATE || r.renewal_time != renewal)
            never = false;
    }
    CHECK(never, "200 restarts and re-reads (dnsNames reordered half the time) before "
                 "renewalTime: never re-issued");

    /* renewalTime -> Renewing; the certificate stays ready while renewing */
    world_decide(&w, renewal - 1, &r);
    CHECK(!r.issue && r.reason == DECIDE_REASON_UP_TO_DATE, "one second before renewalTime: wait");
    world_decide(&w, renewal, &r);
    CHECK(r.issue, "renewalTime reached: issue");
    CHECK_STR(decide_reason_names[r.reason], "Renewing", "renewalTime reached: Renewing");
    CHECK(r.ready && r.valid, "renewing: still ready");

    /* marked revoked (aegisctl certificate revoke) -> Revoked: re-issued, served meanwhile */
    w.meta.extra = json_pack("{s:{s:I, s:s}}", DECIDE_REVOKED_KEY, "at", (json_int_t)issued_at,
                             "reason", "keyCompromise");
    world_decide(&w, issued_at + DAY, &r);
    CHECK(r.issue && r.reason == DECIDE_REASON_REVOKED && !r.ready && r.valid,
          "revoked: issue now, not ready, still valid (served until replaced)");
    CHECK_STR(decide_reason_names[r.reason], "Revoked", "revoked: Revoked");
    json_decref(w.meta.extra);
    w.meta.extra = NULL;

    /* not renewed (say the controller was down) until notAfter -> Expired */
    world_decide(&w, w.meta.not_after - 1, &r);
    CHECK_INT(r.reason, DECIDE_REASON_RENEWING, "a second before notAfter: Renewing");
    world_decide(&w, w.meta.not_after, &r);
    CHECK(r.issue, "expired: issue");
    CHECK_STR(decide_reason_names[r.reason], "Expired", "expired: Expired");
    CHECK(!r.ready && !r.valid, "expired: not ready, not valid");

    /* a renewal resets the clock */
    t = w.meta.not_after + 5;
    world_issue(&w, t, &r);
    world_decide(&w, t + HOUR, &r);
    CHECK(!r.issue && r.reason == DECIDE_REASON_UP_TO_DATE, "renewed: up to date again");
    CHECK(r.renewal_time > t + 59 * DAY, "renewed: a new renewalTime");
    world_dispose(&w);
}

static void test_spec_changes(void)
{
    char name[160];

    for (size_t i = 0; i < sizeof(change_cases) / sizeof(change_cases[0]); i++) {
        struct world w;
        struct decide_cert_result r;

        world_init(&w, BASE);
        world_decide(&w, T0, &r);
        world_issue(&w, T0, &r);
        world_set_spec(&w, change_cases[i].body);
        world_decide(&w, T0 + DAY, &r);
        snprintf(name, sizeof(name), "%s: SpecChanged, issue now", change_cases[i].name);
        CHECK(r.issue && r.reason == DECIDE_REASON_SPEC_CHANGED, name);
        snprintf(name, sizeof(name), "%s: names %s", change_cases[i].name,
                 decide_spec_field_names[change_cases[i].field]);
        CHECK_INT(r.changed_field, change_cases[i].field, name);
        snprintf(name, sizeof(name), "%s: not ready, but the old one is still valid",
                 change_cases[i].name);
        CHECK(!r.ready && r.valid, name);
        world_dispose(&w);
    }
    for (size_t i = 0; i < sizeof(same_cases) / sizeof(same_cases[0]); i++) {
        struct world w;
        struct decide_cert_result r;

        world_init(&w, BASE);
        world_decide(&w, T0, &r);
        world_issue(&w, T0, &r);
        world_set_spec(&w, same_cases[i].body);
        world_decide(&w, T0 + DAY, &r);
        snprintf(name, sizeof(name), "%s: UpToDate, nothing issued", same_cases[i].name);
        CHECK(!r.issue && r.reason == DECIDE_REASON_UP_TO_DATE, name);
        world_dispose(&w);
    }
}

static void test_renew_before_moves_renewal(void)
{
    struct world w;
    struct decide_cert_result r;
    int64_t before;

    world_init(&w, BASE);
    world_decide(&w, T0, &r);
    world_issue(&w, T0, &r);
    world_decide(&w, T0, &r);
    before = r.renewal_time;
    world_set_spec(&w, "{issuerRef: {name: local}, dnsNames: [a.test, b.test], renewBefore: 85d}");
    world_decide(&w, T0 + 6 * DAY, &r);
    CHECK(r.renewal_time < before, "a longer renewBefore moves renewalTime earlier");
    CHECK(r.issue && r.reason == DECIDE_REASON_RENEWING,
          "... which is then due: Renewing, not SpecChanged");
    world_dispose(&w);
}

static void test_short_lived_issue(void)
{
    struct world w;
    struct decide_cert_result r;

    /* The CA gave 6 days where 90 were asked; renewBefore 30d is longer than that. */
    world_init(&w, "{issuerRef: {name: local}, dnsNames: [a.test], renewBefore: 30d}");
    world_decide(&w, T0, &r);
    world_issue(&w, T0, &r);
    w.meta.not_after = w.meta.not_before + 6 * DAY;
    world_decide(&w, T0 + 1, &r);
    CHECK(!r.issue && r.reason == DECIDE_REASON_UP_TO_DATE,
          "renewBefore past a short real lifetime: not re-issued at once");
    CHECK(r.renewal_time > w.meta.not_before + 3 * DAY &&
              r.renewal_time <= w.meta.not_before + 4 * DAY,
          "... but two thirds into it");
    world_dispose(&w);
}

static void test_backoff(void)
{
    static const int64_t want[] = {
        0,        1 * MIN,   2 * MIN,   4 * MIN,   8 * MIN,    16 * MIN,  32 * MIN,
        64 * MIN, 128 * MIN, 256 * MIN, 512 * MIN, 1024 * MIN, 32 * HOUR, 32 * HOUR,
    };
    struct world w;
    struct decide_cert_result r;
    int64_t t = T0;
    char name[128];
    bool ok = true;

    for (uint32_t n = 0; n < sizeof(want) / sizeof(want[0]); n++) {
        snprintf(name, sizeof(name), "backoff after %" PRIu32 " failures: %" PRId64 " s", n,
                 want[n]);
        CHECK_INT(decide_backoff_delay(n), want[n], name);
    }
    CHECK_INT(decide_backoff_delay(UINT32_MAX), DECIDE_BACKOFF_MAX_S, "capped for any count");

    /* Fail again and again: each wait is the table's, and the attempt comes right at its end. */
    world_init(&w, BASE);
    for (uint32_t n = 1; n <= 13; n++) {
        world_decide(&w, t, &r);
        if (!r.issue)
            ok = false;
        decide_failure_record(&w.fail, t, r.digest.hex, "Rejected", "the CA said no");
        world_decide(&w, t + want[n] - 1, &r);
        if (r.issue || r.reason != DECIDE_REASON_BACKOFF_ACTIVE || r.backoff_until != t + want[n] ||
            r.next_check != t + want[n])
            ok = false;
        world_decide(&w, t, &r);
        if (r.issue) /* a pass right after a failure: never a tight loop */
            ok = false;
        t += want[n];
    }
    CHECK(ok, "13 failures in a row: waits of 1m, 2m, 4m ... 32h, then an attempt");
    CHECK_INT(w.fail.attempts, 13, "attempts counted");

    /* A spec changed during the backoff: try it now (cert-manager does the same). */
    world_decide(&w, t - 10, &r);
    CHECK_INT(r.reason, DECIDE_REASON_BACKOFF_ACTIVE, "still backing off");
    world_set_spec(&w, "{issuerRef: {name: other}, dnsNames: [a.test, b.test]}");
    world_decide(&w, t - 10, &r);
    CHECK(r.issue && r.reason == DECIDE_REASON_DOES_NOT_EXIST,
          "spec changed during the backoff: issue right away");
    CHECK_INT(r.backoff_until, 0, "no backoff for the new spec");
    decide_failure_record(&w.fail, t - 10, r.digest.hex, "Rejected", "no again");
    world_decide(&w, t - 9, &r);
    CHECK(!r.issue && r.reason == DECIDE_REASON_BACKOFF_ACTIVE,
          "the new spec failing too: backoff again (count kept)");
    CHECK_INT(r.backoff_until, t - 10 + DECIDE_BACKOFF_MAX_S, "14 failures: capped");

    /* Failures read back from a status carry no spec hash: a change then waits it out. */
    w.fail.spec_hash[0] = '\0';
    world_set_spec(&w, BASE);
    world_decide(&w, t - 9, &r);
    CHECK(!r.issue && r.reason == DECIDE_REASON_BACKOFF_ACTIVE,
          "unknown failed spec: the backoff holds");

    /* A success clears the count. */
    world_decide(&w, t - 10 + DECIDE_BACKOFF_MAX_S, &r);
    CHECK(r.issue, "backoff over: issue");
    world_issue(&w, t - 10 + DECIDE_BACKOFF_MAX_S, &r);
    CHECK_INT(w.fail.attempts, 0, "success: no failures");
    world_dispose(&w);
}

static void test_backoff_renewal_and_clock(void)
{
    struct world w;
    struct decide_cert_result r;
    int64_t renewal;

    world_init(&w, BASE);
    world_decide(&w, T0, &r);
    world_issue(&w, T0, &r);
    world_decide(&w, T0, &r);
    renewal = r.renewal_time;

    /* A failed renewal keeps the old certificate: still ready, valid, retried with backoff. */
    world_decide(&w, renewal, &r);
    decide_failure_record(&w.fail, renewal, r.digest.hex, "Rejected", "rate limited");
    world_decide(&w, renewal + 30, &r);
    CHECK(!r.issue && r.reason == DECIDE_REASON_BACKOFF_ACTIVE, "failed renewal: backoff");
    CHECK_INT(r.trigger, DECIDE_REASON_RENEWING, "... of a renewal");
    CHECK(r.ready && r.valid, "... while the old certificate stays ready");

    /* Near expiry the next look is at notAfter (Ready turns False then), not the backoff end. */
    for (int i = 0; i < 12; i++)
        decide_failure_record(&w.fail, w.meta.not_after - 100, r.digest.hex, "Rejected", "no");
    world_decide(&w, w.meta.not_after - 50, &r);
    CHECK_INT(r.next_check, w.meta.not_after, "backoff past notAfter: look again at notAfter");

    /* The clock went back an hour: the wait is one delay from now, not from the future. */
    decide_failure_clear(&w.fail);
    decide_failure_record(&w.fail, renewal + HOUR, r.digest.hex, "Rejected", "no");
    world_decide(&w, renewal, &r);
    CHECK_INT(r.backoff_until, renewal + DECIDE_BACKOFF_INITIAL_S,
              "a failure in the future counts from now");
    world_dispose(&w);
}

static void test_issuer_not_ready(void)
{
    struct world w;
    struct decide_cert_result r;

    world_init(&w, BASE);
    w.issuer_ready = false;
    world_decide(&w, T0, &r);
    CHECK(!r.issue && r.reason == DECIDE_REASON_ISSUER_NOT_READY, "missing + no Issuer: wait");
    CHECK_INT(r.trigger, DECIDE_REASON_DOES_NOT_EXIST, "... for a missing certificate");
    CHECK_INT(r.next_check, 0, "... until the Issuer changes (no timer)");
    w.issuer_ready = true;
    world_decide(&w, T0 + 5, &r);
    CHECK(r.issue, "Issuer ready: issue");
    world_issue(&w, T0 + 5, &r);

    w.issuer_ready = false;
    world_decide(&w, T0 + DAY, &r);
    CHECK(!r.issue && r.reason == DECIDE_REASON_UP_TO_DATE,
          "up to date: the Issuer's readiness does not matter");
    world_decide(&w, w.meta.not_after - DAY, &r);
    CHECK(!r.issue && r.reason == DECIDE_REASON_ISSUER_NOT_READY && r.ready,
          "renewal due, Issuer not ready: wait, still ready");
    CHECK_INT(r.next_check, w.meta.not_after, "... look again at notAfter");

    /* Not ready and failing: the Issuer is named, the backoff still computed for the status. */
    decide_failure_record(&w.fail, w.meta.not_after - DAY, r.digest.hex, "Rejected", "no");
    world_decide(&w, w.meta.not_after - DAY + 1, &r);
    CHECK_INT(r.reason, DECIDE_REASON_ISSUER_NOT_READY, "Issuer first");
    CHECK_INT(r.backoff_until, w.meta.not_after - DAY + 60, "backoff end still known");
    world_dispose(&w);
}

static void test_expired_and_changed(void)
{
    struct world w;
    struct decide_cert_result r;

    world_init(&w, BASE);
    world_decide(&w, T0, &r);
    world_issue(&w, T0, &r);
    world_set_spec(&w, "{issuerRef: {name: local}, dnsNames: [a.test]}");
    world_decide(&w, T0 + 100 * DAY, &r);
    CHECK(r.issue && r.reason == DECIDE_REASON_EXPIRED, "expired and changed: Expired wins");
    CHECK(r.spec_changed && r.changed_field == DECIDE_SPEC_FIELD_DNS_NAMES,
          "... the change is noted too");
    world_dispose(&w);
}

static void test_records_without_digest(void)
{
    struct world w;
    struct decide_cert_result r;

    /* A record written by aegisctl or an older version: compared by its names, adopted. */
    world_init(&w, BASE);
    world_decide(&w, T0, &r);
    world_issue(&w, T0, &r);
    w.have_digest = false;
    world_set_spec(&w, "{issuerRef: {name: local}, dnsNames: [B.test, a.test]}");
    world_decide(&w, T0 + DAY, &r);
    CHECK(!r.issue && r.reason == DECIDE_REASON_UP_TO_DATE && r.adopt,
          "no digest, same names: adopted, not re-issued");
    world_set_spec(&w, "{issuerRef: {name: local}, dnsNames: [a.test, b.test], "
                       "privateKey: {algorithm: RSA}}");
    world_decide(&w, T0 + DAY, &r);
    CHECK(!r.issue && r.adopt, "no digest: only names can be compared (the key is assumed)");
    world_set_spec(&w, "{issuerRef: {name: local}, dnsNames: [a.test, c.test]}");
    world_decide(&w, T0 + DAY, &r);
    CHECK(r.issue && r.reason == DECIDE_REASON_SPEC_CHANGED &&
              r.changed_field == DECIDE_SPEC_FIELD_DNS_NAMES,
          "no digest, other names: SpecChanged dnsNames");
    world_set_spec(&w, BASE);
    free(w.meta.source);
    w.meta.source = aegis_strdup("custom");
    world_decide(&w, T0 + DAY, &r);
    CHECK(r.issue && r.changed_field == DECIDE_SPEC_FIELD_ISSUER_REF,
          "a supplied certificate, now to be issued: SpecChanged issuerRef");
    world_dispose(&w);

    /* A digest from a version that hashed fewer fields: unknown fields never re-issue. */
    world_init(&w, BASE);
    world_decide(&w, T0, &r);
    world_issue(&w, T0, &r);
    w.digest.field[DECIDE_SPEC_FIELD_DURATION][0] = '\0';
    memcpy(w.digest.hex, "00000000", 8);
    world_decide(&w, T0 + DAY, &r);
    CHECK(!r.issue && r.reason == DECIDE_REASON_UP_TO_DATE && r.adopt,
          "a field the record does not know: adopted");
    world_set_spec(&w, "{issuerRef: {name: local}, dnsNames: [a.test]}");
    world_decide(&w, T0 + DAY, &r);
    CHECK(r.issue && r.changed_field == DECIDE_SPEC_FIELD_DNS_NAMES,
          "... while a known field still counts");
    memset(w.digest.field, 0, sizeof(w.digest.field));
    world_set_spec(&w, BASE);
    world_decide(&w, T0 + DAY, &r);
    CHECK(r.issue && r.reason == DECIDE_REASON_SPEC_CHANGED &&
              r.changed_field == DECIDE_SPEC_FIELD_UNKNOWN,
          "only a different hash: SpecChanged, field unknown");
    world_dispose(&w);
}

static void test_supplied(void)
{
    static const char *fp1 = "1111111111111111111111111111111111111111111111111111111111111111";
    static const char *fp2 = "2222222222222222222222222222222222222222222222222222222222222222";
    struct world w;
    struct decide_cert_result r;
    struct decide_cert_input in;

    world_init(&w, "{dnsNames: [a.test], custom: {certificate: {file: /c.pem}, "
                   "privateKey: {file: /k.pem}}}");
    in = (struct decide_cert_input){
        .spec = w.spec.c, .supplied_fingerprint = fp1, .failures = &w.fail};
    decide_certificate(&in, T0, &r);
    CHECK(r.supplied && r.issue && r.reason == DECIDE_REASON_DOES_NOT_EXIST,
          "custom, nothing stored: import (no Issuer needed)");
    world_issue(&w, T0, &r);
    snprintf(w.meta.fingerprint, sizeof(w.meta.fingerprint), "%s", fp1);
    in.stored = &w.meta;
    decide_certificate(&in, T0 + DAY, &r);
    CHECK(!r.issue && r.reason == DECIDE_REASON_UP_TO_DATE && r.ready, "same certificate: ready");
    CHECK_INT(r.next_check, w.meta.not_after, "next look at notAfter");
    decide_certificate(&in, w.meta.not_after - 1, &r);
    CHECK(!r.issue && r.reason == DECIDE_REASON_UP_TO_DATE,
          "past renewalTime: nothing to renew a supplied certificate with");
    in.supplied_fingerprint = fp2;
    decide_failure_record(&w.fail, T0 + DAY, "", "InvalidRequest", "bad");
    decide_certificate(&in, T0 + DAY, &r);
    CHECK(r.issue && r.reason == DECIDE_REASON_SOURCE_CHANGED,
          "another certificate in the file: SourceChanged, import (no backoff)");
    in.supplied_fingerprint = fp1;
    decide_certificate(&in, w.meta.not_after, &r);
    CHECK(!r.issue && r.reason == DECIDE_REASON_EXPIRED && !r.ready,
          "expired supplied certificate: Expired, nothing to do");
    CHECK_INT(r.next_check, 0, "... until the source changes");
    world_dispose(&w);

    world_init(&w, "{dnsNames: [a.test], csr: {}}");
    in = (struct decide_cert_input){.spec = w.spec.c};
    decide_certificate(&in, T0, &r);
    CHECK(!r.issue && r.reason == DECIDE_REASON_WAITING_FOR_CERTIFICATE,
          "csr not signed yet: WaitingForCertificate");
    world_dispose(&w);
}

/* ---- Hosts ---- */

static const char hosts_yaml[] =
    "apiVersion: aegis.dev/v1alpha1\nkind: Issuer\nmetadata: {name: local}\nspec: {ca: {}}\n"
    "---\napiVersion: aegis.dev/v1alpha1\nkind: Host\nmetadata: {name: app}\n"
    "spec: {hostnames: [www.app.test, app.test], upstreams: [{url: \"http://127.0.0.1:8080\"}],\n"
    "       tls: {mode: acme, issuerRef: {name: local}}}\n"
    "---\napiVersion: aegis.dev/v1alpha1\nkind: Host\nmetadata: {name: shop}\n"
    "spec: {hostnames: [shop.test], upstreams: [{url: \"http://127.0.0.1:8081\"}],\n"
    "       tls: {issuerRef: {name: local}}}\n"
    "---\napiVersion: aegis.dev/v1alpha1\nkind: Certificate\nmetadata: {name: shop-tls}\n"
    "spec: {issuerRef: {name: local}, dnsNames: [shop.test]}\n"
    "---\napiVersion: aegis.dev/v1alpha1\nkind: Host\nmetadata: {name: bound}\n"
    "spec: {hostnames: [bound.test], upstreams: [{url: \"http://127.0.0.1:8082\"}],\n"
    "       tls: {mode: custom, certificateRef: {name: shop-tls}}}\n"
    "---\napiVersion: aegis.dev/v1alpha1\nkind: Host\nmetadata: {name: plain}\n"
    "spec: {hostnames: [plain.test], upstreams: [{url: \"http://127.0.0.1:8083\"}],\n"
    "       tls: {mode: none}}\n";

static void test_implicit(void)
{
    struct aegis_resource_set set;
    struct aegis_diags d;
    const struct aegis_resource *app, *shop, *bound, *plain;
    struct aegis_certificate_spec spec;
    struct decide_spec_digest a, b;
    struct aegis_err err;
    char name[STORE_NAME_MAX + 1], *longname;

    resource_set_init(&set);
    aegis_diags_init(&d);
    CHECK_INT(resource_load_buffer(&set, "hosts.yaml", hosts_yaml, strlen(hosts_yaml), &d), 0,
              "hosts load");
    CHECK_INT(resource_set_check(&set, &d), 0, "hosts check as a set");
    app = resource_set_find(&set, AEGIS_KIND_HOST, "default", "app");
    shop = resource_set_find(&set, AEGIS_KIND_HOST, "default", "shop");
    bound = resource_set_find(&set, AEGIS_KIND_HOST, "default", "bound");
    plain = resource_set_find(&set, AEGIS_KIND_HOST, "default", "plain");
    if (!CHECK(app && shop && bound && plain, "all four Hosts found"))
        goto out;

    CHECK_INT(decide_implicit_certificate(app, &spec, &err), 0, "app implies a Certificate");
    CHECK_INT(spec.dns_names.n, 2, "its dnsNames are the hostnames");
    CHECK_STR(spec.dns_names.v[0], "www.app.test", "in the Host's order");
    CHECK_STR(spec.issuer_ref.name, "local", "its issuer is the Host's");
    CHECK(API_HAS(&spec, API_F_CERTIFICATE_SPEC_ISSUER_REF), "issuerRef present");
    decide_spec_hash(&spec, &a);
    digest_of("{issuerRef: {name: local}, dnsNames: [app.test, www.app.test]}", &b);
    CHECK_STR(a.hex, b.hex, "it hashes like the equivalent explicit Certificate");
    api_dispose(&api_t_certificate_spec, &spec);

    CHECK_INT(decide_host_certificate_name(app, name, sizeof(name), &err), 1, "app has one");
    CHECK_STR(name, "app-tls", "the implicit name is <host>-tls");
    CHECK_INT(decide_host_certificate_name(bound, name, sizeof(name), &err), 1, "custom has one");
    CHECK_STR(name, "shop-tls", "mode custom: certificateRef");
    CHECK_INT(decide_host_certificate_name(plain, name, sizeof(name), &err), 0, "none: no name");
    CHECK_INT(decide_implicit_certificate(bound, &spec, &err), -AEGIS_E_INVALID,
              "mode custom implies nothing");
    CHECK_INT(decide_implicit_certificate(plain, &spec, &err), -AEGIS_E_INVALID,
              "mode none implies nothing");

    CHECK(decide_implicit_conflict(&set, app) == NULL, "app-tls is free");
    CHECK(decide_implicit_conflict(&set, shop) ==
              resource_set_find(&set, AEGIS_KIND_CERTIFICATE, "default", "shop-tls"),
          "shop's implicit name is taken by the explicit shop-tls");
    CHECK_INT(decide_implicit_conflicts(&set, &d), 1, "one collision reported");
    CHECK_INT(d.n, 1, "as one diagnostic");
    if (d.n == 1) {
        CHECK(d.v[0].sev == AEGIS_SEV_WARNING, "a warning: the explicit one is served");
        CHECK_STR(d.v[0].name, "shop", "naming the Host");
        CHECK_STR(d.v[0].path, "spec.tls.issuerRef", "at its issuerRef");
        CHECK(strstr(d.v[0].msg, "default/shop-tls") != NULL &&
                  strstr(d.v[0].msg, "hosts.yaml:") != NULL,
              "naming the Certificate and where it is declared");
    }

    longname = aegis_calloc(1, 252);
    memset(longname, 'a', 250);
    CHECK_INT(decide_implicit_name(longname, name, sizeof(name), &err), -AEGIS_E_LIMIT,
              "a 250-character Host name leaves no room for -tls");
    longname[249] = '\0';
    CHECK_INT(decide_implicit_name(longname, name, sizeof(name), &err), 0,
              "249 characters fit (253 with -tls)");
    free(longname);
out:
    aegis_diags_dispose(&d);
    resource_set_dispose(&set);
}

static void test_host(void)
{
    /* Ordered for size (clang-analyzer's padding check): the input last. */
    static const struct {
        const char *name;
        enum decide_host_serve serve;
        enum decide_host_reason reason;
        bool ready;
        struct decide_host_input in;
    } cases[] = {
        {"tls none", DECIDE_SERVE_PLAIN, DECIDE_HOST_REASON_PLAIN_HTTP, true, {.tls = false}},
        {"certificate missing",
         DECIDE_SERVE_FALLBACK,
         DECIDE_HOST_REASON_CERTIFICATE_NOT_FOUND,
         false,
         {.tls = true}},
        {"certificate not issued yet",
         DECIDE_SERVE_FALLBACK,
         DECIDE_HOST_REASON_CERTIFICATE_NOT_READY,
         false,
         {.tls = true, .cert_found = true}},
        {"certificate ready",
         DECIDE_SERVE_CERTIFICATE,
         DECIDE_HOST_REASON_READY,
         true,
         {.tls = true, .cert_found = true, .cert_ready = true, .cert_valid = true}},
        {"spec changed, old one valid",
         DECIDE_SERVE_CERTIFICATE,
         DECIDE_HOST_REASON_CERTIFICATE_NOT_READY,
         false,
         {.tls = true, .cert_found = true, .cert_valid = true}},
        {"expired",
         DECIDE_SERVE_FALLBACK,
         DECIDE_HOST_REASON_CERTIFICATE_NOT_READY,
         false,
         {.tls = true, .cert_found = true, .cert_ready = false, .cert_valid = false}},
        {"conflict, explicit one ready",
         DECIDE_SERVE_CERTIFICATE,
         DECIDE_HOST_REASON_READY,
         true,
         {.tls = true,
          .cert_found = true,
          .cert_ready = true,
          .cert_valid = true,
          .conflict = true}},
    };
    char name[128];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct decide_host_result r;

        decide_host(&cases[i].in, &r);
        snprintf(name, sizeof(name), "host, %s: serves %d, ready %d, %s", cases[i].name,
                 cases[i].serve, cases[i].ready, decide_host_reason_names[cases[i].reason]);
        CHECK(r.serve == cases[i].serve && r.ready == cases[i].ready && r.reason == cases[i].reason,
              name);
    }
}

int main(void)
{
    test_hash_pinned();
    test_hash_table();
    test_hash_canonical();
    test_hash_hand_built();
    test_digest_json();
    test_lifecycle();
    test_spec_changes();
    test_renew_before_moves_renewal();
    test_short_lived_issue();
    test_backoff();
    test_backoff_renewal_and_clock();
    test_issuer_not_ready();
    test_expired_and_changed();
    test_records_without_digest();
    test_supplied();
    test_implicit();
    test_host();
    return check_done();
}
