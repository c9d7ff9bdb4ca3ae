/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for controller/certsync.c with a real store in a temporary directory, the real
 * local CA issuer and specs decoded from YAML, time moved by hand: first issuance, no re-issuance
 * on the next pass or a "restart" (a fresh state), a spec change re-issues and says which field,
 * renewal at renewalTime, rotationPolicy Never keeps the key, a missing Issuer waits without
 * spending an attempt, a failing Issuer backs off with the reason in the status, and a supplied
 * (custom) certificate is imported once and not again; an issuer answering PENDING has its
 * message in the Issuing condition.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/alloc.h"
#include "aegis/pki.h"
#include "aegis/resource.h"
#include "aegis/store.h"
#include "certsync.h"
#include "check.h"
#include "status.h"
#include "testutil.h"

#define T0 1750000000LL
#define DAY 86400LL

static char tmpdir[] = "/tmp/aegis-test-certsync-XXXXXX";
static struct store *st;

static int open_store(void)
{
    char *dir = aegis_asprintf("%s/state", tmpdir);
    struct aegis_err err = {0};
    int rc = testutil_store_open(dir, 0x24, &st, &err);

    free(dir);
    if (rc < 0)
        printf("# %s\n", err.msg);
    return rc;
}

/* Resources decoded from YAML; the first of each kind is used. */
struct res {
    struct aegis_resource_set set;
    const struct aegis_resource *cert, *issuer;
};

static void res_load(struct res *r, const char *yaml)
{
    struct aegis_diags d;

    memset(r, 0, sizeof(*r));
    resource_set_init(&r->set);
    aegis_diags_init(&d);
    resource_load_buffer(&r->set, "test.yaml", yaml, strlen(yaml), &d);
    for (size_t i = 0; i < d.n; i++) {
        char line[512];

        aegis_diag_format(&d.v[i], line, sizeof(line));
        printf("# %s\n", line);
    }
    aegis_diags_dispose(&d);
    for (size_t i = 0; i < r->set.n; i++) {
        if (r->set.v[i]->kind == AEGIS_KIND_CERTIFICATE && r->cert == NULL)
            r->cert = r->set.v[i];
        if (r->set.v[i]->kind == AEGIS_KIND_ISSUER && r->issuer == NULL)
            r->issuer = r->set.v[i];
    }
}

#define ISSUER_CA                                                                                  \
    "---\napiVersion: aegis.dev/v1alpha1\nkind: Issuer\nmetadata: {name: local}\n"                 \
    "spec: {ca: {}}\n"
#define CERT(spec)                                                                                 \
    "---\napiVersion: aegis.dev/v1alpha1\nkind: Certificate\nmetadata: {name: app}\nspec: " spec   \
    "\n"

static int run(struct res *r, struct certsync_state *state, int64_t now,
               struct certsync_result *out)
{
    struct certsync_env env = {.store = st, .secrets_dir = tmpdir};
    struct certsync_request req = {
        .ns = "default",
        .name = "app",
        .spec = &r->cert->spec.certificate,
        .generation = 1,
        .issuer = r->issuer != NULL ? &r->issuer->spec.issuer : NULL,
        .issuer_ready = r->issuer != NULL,
        .issuer_message = r->issuer != NULL ? NULL : "Issuer default/local does not exist",
    };
    struct aegis_err err = {0};
    int rc = certsync_run(&env, &req, state, now, out, &err);

    if (rc < 0)
        printf("# certsync_run: %s\n", err.msg);
    return rc;
}

static struct store_meta stored_meta(void)
{
    struct store_meta m;
    struct store_id id;

    store_id_set(&id, STORE_KIND_CERTIFICATE, "default", "app", NULL);
    store_meta_init(&m);
    store_get_meta(st, &id, &m, NULL);
    return m;
}

static char *stored_pubkey(void)
{
    struct store_record rec;
    struct store_id id;
    EVP_PKEY *key = NULL;
    char *pem = NULL;
    size_t len;

    store_id_set(&id, STORE_KIND_CERTIFICATE, "default", "app", NULL);
    if (store_get(st, &id, &rec, NULL) == 0 && rec.key_pem != NULL &&
        pki_key_from_pem(rec.key_pem, strlen(rec.key_pem), &key, NULL) == 0)
        pki_pubkey_to_pem(key, &pem, &len, NULL);
    EVP_PKEY_free(key);
    store_record_dispose(&rec);
    return pem;
}

static bool ready(const struct certsync_state *s)
{
    const struct aegis_condition *c = status_condition_find(
        s->status.conditions.v, s->status.conditions.n, STATUS_CONDITION_READY);

    return c != NULL && c->status == AEGIS_CONDITION_STATUS_TRUE;
}

static void test_lifecycle(void)
{
    struct certsync_state state = {0}, fresh = {0};
    struct certsync_result out;
    struct store_meta m;
    struct res r;
    char *key1, *key2;
    uint64_t rev;
    int64_t renew;

    res_load(&r, ISSUER_CA CERT("{issuerRef: {name: local}, dnsNames: [app.test], "
                                "duration: 720h, privateKey: {rotationPolicy: Never}}"));
    CHECK(r.cert != NULL && r.issuer != NULL, "resources decoded");
    if (r.cert == NULL || r.issuer == NULL)
        return;
    CHECK_INT(run(&r, &state, T0, &out), 0, "first pass runs");
    CHECK(out.stored && out.status_changed && ready(&state),
          "first pass: issued, stored, status Ready");
    CHECK(out.next_check > T0 && out.next_check == out.decision.renewal_time,
          "next check at the renewal time");
    m = stored_meta();
    rev = m.revision;
    renew = out.decision.renewal_time;
    CHECK(m.n_dns_names == 1 && strcmp(m.dns_names[0], "app.test") == 0 &&
              m.not_after - m.not_before >= 29 * DAY && strcmp(m.source, "ca") == 0,
          "the stored certificate: names, duration, source");
    CHECK(m.extra != NULL && json_object_get(m.extra, "specHash") != NULL,
          "the spec digest is stored with it");
    store_meta_dispose(&m);
    key1 = stored_pubkey();

    CHECK_INT(run(&r, &state, T0 + 60, &out), 0, "second pass runs");
    CHECK(!out.stored && !out.decision.issue, "second pass: nothing issued");
    CHECK_INT(run(&r, &fresh, T0 + 120, &out), 0, "pass after a restart runs");
    m = stored_meta();
    CHECK(!out.stored && m.revision == rev && ready(&fresh),
          "a restart (fresh state) does not re-issue, and is Ready");
    store_meta_dispose(&m);
    certsync_state_dispose(&fresh);

    CHECK_INT(run(&r, &state, renew, &out), 0, "pass at renewalTime runs");
    CHECK(out.stored && out.next_check > renew, "renewed at renewalTime");
    key2 = stored_pubkey();
    CHECK(key1 != NULL && key2 != NULL && strcmp(key1, key2) == 0,
          "rotationPolicy Never: the renewal keeps the key");
    free(key1);
    free(key2);
    resource_set_dispose(&r.set);

    res_load(&r, ISSUER_CA CERT("{issuerRef: {name: local}, dnsNames: [app.test, www.app.test], "
                                "duration: 720h}"));
    CHECK_INT(run(&r, &state, renew + 60, &out), 0, "pass after a spec change runs");
    m = stored_meta();
    CHECK(out.stored && m.n_dns_names == 2, "a changed dnsNames re-issues with the new names");
    store_meta_dispose(&m);
    resource_set_dispose(&r.set);
    certsync_state_dispose(&state);
}

static void test_issuer_problems(void)
{
    struct certsync_state state = {0};
    struct certsync_result out;
    struct store_meta m;
    struct res r;
    int64_t t = T0 + 400 * DAY;

    /* Start from nothing stored: the first test left a certificate. */
    res_load(&r, CERT("{issuerRef: {name: local}, dnsNames: [app.test]}"));
    {
        struct store_id id;

        store_id_set(&id, STORE_KIND_CERTIFICATE, "default", "app", NULL);
        store_delete(st, &id, NULL);
    }
    CHECK_INT(run(&r, &state, t, &out), 0, "pass with a missing Issuer runs");
    m = stored_meta();
    CHECK(!out.stored && m.not_after == 0 && !ready(&state) &&
              out.decision.reason == DECIDE_REASON_ISSUER_NOT_READY && state.failures.attempts == 0,
          "missing Issuer: nothing issued, not Ready, no attempt spent");
    store_meta_dispose(&m);
    resource_set_dispose(&r.set);

    /* An Issuer that cannot issue (its secret is missing) fails like a refusing CA would. */
    res_load(&r, "---\napiVersion: aegis.dev/v1alpha1\nkind: Issuer\nmetadata: {name: local}\n"
                 "spec: {cloudflareOriginCA: {apiTokenSecretRef: {name: cf, key: token}}}\n" CERT(
                     "{issuerRef: {name: local}, dnsNames: [app.test]}"));
    CHECK_INT(run(&r, &state, t, &out), 0, "pass with a failing Issuer runs");
    CHECK(!out.stored && state.failures.attempts == 1 && out.next_check == t + 60,
          "failing Issuer: one attempt recorded, next try after the 1-minute backoff");
    CHECK_INT(run(&r, &state, t + 30, &out), 0, "pass inside the backoff runs");
    CHECK(state.failures.attempts == 1 && out.decision.reason == DECIDE_REASON_BACKOFF_ACTIVE,
          "inside the backoff: no new attempt");
    CHECK(state.status.failed_issuance_attempts == 1 && state.status.last_failure_time != NULL,
          "the status carries the failure bookkeeping");
    resource_set_dispose(&r.set);
    certsync_state_dispose(&state);
}

static void test_supplied(void)
{
    char *names[1] = {"app.test"};
    struct pki_cert_req creq = {.common_name = "app.test",
                                .dns = {names, 1},
                                .path_len = -1,
                                .not_before = T0,
                                .not_after = T0 + 90 * DAY};
    struct certsync_state state = {0};
    struct certsync_result out;
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    char *cert_pem = NULL, *key_pem = NULL, *yaml, *cpath, *kpath;
    size_t len;
    struct store_meta m;
    uint64_t rev;
    struct res r;
    FILE *f;

    pki_key_generate(PKI_KEY_EC_P256, &key, NULL);
    pki_sign(&creq, key, NULL, key, &x, NULL);
    pki_cert_to_pem(x, &cert_pem, &len, NULL);
    pki_key_to_pem(key, &key_pem, &len, NULL);
    cpath = aegis_asprintf("%s/app.pem", tmpdir);
    kpath = aegis_asprintf("%s/app.key", tmpdir);
    f = fopen(cpath, "w");
    fputs(cert_pem, f);
    fclose(f);
    f = fopen(kpath, "w");
    fputs(key_pem, f);
    fclose(f);
    yaml = aegis_asprintf(CERT("{dnsNames: [app.test], custom: {certificate: {file: %s}, "
                               "privateKey: {file: %s}}}"),
                          cpath, kpath);
    res_load(&r, yaml);
    CHECK(r.cert != NULL, "custom Certificate decoded");
    if (r.cert != NULL) {
        CHECK_INT(run(&r, &state, T0 + DAY, &out), 0, "custom: first pass runs");
        m = stored_meta();
        CHECK(out.stored && strcmp(m.source, "custom") == 0 && ready(&state),
              "custom: imported and Ready");
        rev = m.revision;
        store_meta_dispose(&m);
        CHECK_INT(run(&r, &state, T0 + DAY + 60, &out), 0, "custom: second pass runs");
        m = stored_meta();
        CHECK(!out.stored && m.revision == rev, "custom: the same source is not imported again");
        store_meta_dispose(&m);
    }
    resource_set_dispose(&r.set);
    certsync_state_dispose(&state);
    X509_free(x);
    EVP_PKEY_free(key);
    free(cert_pem);
    pki_secret_free_str(key_pem);
    free(yaml);
    free(cpath);
    free(kpath);
}

/* An issuer still working (PENDING) says what it waits for in the Issuing condition. */
static void test_pending_message(void)
{
    struct certsync_state state = {0};
    struct certsync_result out;
    const struct aegis_condition *c;
    struct res r;
    struct store_id id;
    int64_t t = T0 + 500 * DAY;

    store_id_set(&id, STORE_KIND_CERTIFICATE, "default", "app", NULL);
    store_delete(st, &id, NULL);
    res_load(&r, ISSUER_CA CERT("{issuerRef: {name: local}, dnsNames: [app.test]}"));
    memset(&issuer_fake, 0, sizeof(issuer_fake));
    issuer_fake.pending_calls = 1;
    issuer_fake.pending_delay_s = 7;
    issuer_override = &issuer_fake_ops;
    CHECK_INT(run(&r, &state, t, &out), 0, "pass with a pending issuer runs");
    c = status_condition_find(state.status.conditions.v, state.status.conditions.n,
                              STATUS_CONDITION_ISSUING);
    CHECK(!out.stored && out.next_check == t + 7 && c != NULL &&
              c->status == AEGIS_CONDITION_STATUS_TRUE && c->message != NULL &&
              strstr(c->message, "no certificate has been issued yet; the fake issuer is "
                                 "pending (0 more)") != NULL,
          "PENDING: Issuing True with the issuer's message, next check at its retry time");
    if (c != NULL && c->message != NULL)
        printf("# Issuing: %s\n", c->message);
    CHECK_INT(run(&r, &state, t + 7, &out), 0, "pass after the wait runs");
    c = status_condition_find(state.status.conditions.v, state.status.conditions.n,
                              STATUS_CONDITION_ISSUING);
    CHECK(out.stored && ready(&state) && c != NULL && c->status == AEGIS_CONDITION_STATUS_FALSE &&
              c->message != NULL && strstr(c->message, "pending") == NULL,
          "DONE: the pending message is gone");
    issuer_override = NULL;
    resource_set_dispose(&r.set);
    certsync_state_dispose(&state);
}

int main(void)
{
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    if (open_store() == 0) {
        test_lifecycle();
        test_issuer_problems();
        test_supplied();
        test_pending_message();
    }
    store_close(st);
    testutil_rm_rf(tmpdir);
    return check_done();
}
