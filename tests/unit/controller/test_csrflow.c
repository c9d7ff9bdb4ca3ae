/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for controller/csrflow.c against a filesystem store in a temporary
 * directory: the CSR is made once and then handed out unchanged; a change of
 * names or key type makes a new one (a new key, or the same key with
 * rotationPolicy Never on renewal); the CSR asks for the Certificate's names
 * and subject; the key is sealed (no PEM key on disk); a certificate signed for
 * the CSR by a throwaway CA is imported and stored with the CSR's key, again is
 * "unchanged", while one signed for another key, one missing a name, or one
 * without a CSR is refused with a message naming the Certificate; a new CSR
 * never takes away the stored certificate; and the reconcile step goes WAITING
 * -> READY through spec.csr.certificate.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aegis/alloc.h"
#include "aegis/masterkey.h"
#include "aegis/pki.h"
#include "aegis/store.h"
#include "check.h"
#include "csrflow.h"

#define NOW 1750000000LL
#define DAY 86400LL

static char tmpdir[] = "/tmp/aegis-test-csrflow.XXXXXX";
static EVP_PKEY *ca_key;
static X509 *ca_cert;
static struct store *st;
static struct aegis_keyring ring;

static char *names2[] = {"app.test", "www.app.test"};
static char *names3[] = {"app.test", "www.app.test", "api.app.test"};
static char *ips[] = {"10.0.0.7"};
static char *orgs[] = {"Example Org"};

static bool has(const char *hay, const char *needle)
{
    return hay != NULL && strstr(hay, needle) != NULL;
}

static void spec_init(struct aegis_certificate_spec *c, char **dns, size_t ndns)
{
    memset(c, 0, sizeof(*c));
    c->present = 1u << API_F_CERTIFICATE_SPEC_CSR;
    c->dns_names.v = dns;
    c->dns_names.n = ndns;
    c->ip_addresses.v = ips;
    c->ip_addresses.n = 1;
    c->csr.subject.organizations.v = orgs;
    c->csr.subject.organizations.n = 1;
    c->csr.subject.present = 1u << API_F_X509_SUBJECT_ORGANIZATIONS;
    c->private_key.algorithm = AEGIS_KEY_ALGORITHM_ECDSA;
    c->private_key.size = 256;
}

static struct csrflow_request request(const struct aegis_certificate_spec *c)
{
    struct csrflow_request r;

    memset(&r, 0, sizeof(r));
    r.ns = "default";
    r.name = "app";
    r.cert = c;
    r.store = st;
    r.now = NOW;
    return r;
}

/*
 * Signs the CSR as an outside CA would (`openssl x509 -req`): its subject and
 * requested SANs, or only the first n_dns of them when n_dns >= 0. Returns the
 * chain PEM (leaf, CA); free().
 */
static char *sign_csr(const char *csr_pem, int n_dns, EVP_PKEY *other_key)
{
    struct pki_csr_info info;
    struct pki_cert_req r;
    STACK_OF(X509) *sk = sk_X509_new_null();
    X509 *x = NULL;
    char *pem = NULL;

    if (pki_csr_read(csr_pem, strlen(csr_pem), &info, NULL) != 0)
        abort();
    memset(&r, 0, sizeof(r));
    r.subject_name = info.subject;
    r.dns = (struct pki_strs){info.dns.v, n_dns >= 0 ? (size_t)n_dns : info.dns.n};
    r.ip = (struct pki_strs){info.ip.v, info.ip.n};
    r.path_len = -1;
    r.not_before = NOW - 60;
    r.not_after = NOW + 90 * DAY;
    if (pki_sign(&r, other_key != NULL ? other_key : info.public_key, ca_cert, ca_key, &x, NULL) !=
        0)
        abort();
    sk_X509_push(sk, ca_cert);
    sk_X509_push(sk, x);
    if (pki_chain_to_pem(sk, &pem, NULL, NULL) != 0)
        abort();
    sk_X509_free(sk);
    X509_free(x);
    pki_csr_info_dispose(&info);
    return pem;
}

/* The public key PEM of a CSR, to compare keys. */
static char *csr_pubkey(const char *csr_pem)
{
    struct pki_csr_info info;
    char *pub = NULL;

    if (pki_csr_read(csr_pem, strlen(csr_pem), &info, NULL) != 0 ||
        pki_pubkey_to_pem(info.public_key, &pub, NULL, NULL) != 0)
        abort();
    pki_csr_info_dispose(&info);
    return pub;
}

/* Whether any file below dir holds text. */
static bool tree_contains(const char *dir, const char *text)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    bool found = false;

    while (d != NULL && !found && (e = readdir(d)) != NULL) {
        char path[1024];
        struct stat sb;

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (lstat(path, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode)) {
            found = tree_contains(path, text);
        } else if (S_ISREG(sb.st_mode) && sb.st_size < 10 * 1024 * 1024) {
            FILE *f = fopen(path, "rb");
            char *buf = aegis_calloc(1, (size_t)sb.st_size + 1);

            if (f != NULL && fread(buf, 1, (size_t)sb.st_size, f) == (size_t)sb.st_size)
                found = memmem(buf, (size_t)sb.st_size, text, strlen(text)) != NULL;
            if (f != NULL)
                fclose(f);
            free(buf);
        }
    }
    if (d != NULL)
        closedir(d);
    return found;
}

static void setup(void)
{
    struct pki_cert_req r;
    struct aegis_masterkey mk;
    unsigned char kb[MASTERKEY_BYTES];
    char dir[256];

    if (pki_key_generate(PKI_KEY_EC_P256, &ca_key, NULL) != 0)
        abort();
    memset(&r, 0, sizeof(r));
    r.common_name = "Outside Test CA";
    r.is_ca = true;
    r.path_len = 0;
    r.not_before = NOW - DAY;
    r.not_after = NOW + 3650 * DAY;
    if (pki_sign(&r, ca_key, NULL, ca_key, &ca_cert, NULL) != 0)
        abort();
    memset(kb, 9, sizeof(kb));
    masterkey_set(&mk, kb);
    masterkey_ring_init(&ring);
    masterkey_ring_add(&ring, &mk, NULL);
    snprintf(dir, sizeof(dir), "%s/state", tmpdir);
    if (store_open_fs(dir, &ring, &st, NULL) != 0)
        abort();
}

static void test_csr(void)
{
    struct aegis_certificate_spec c;
    struct csrflow_request req;
    struct pki_csr_info info;
    struct aegis_err err;
    char *csr1 = NULL, *csr2 = NULL, *csr3 = NULL, *pub1, *pub3, dir[256], cn[128] = "",
         o[128] = "";
    bool made = false;
    int rc;

    spec_init(&c, names2, 2);
    req = request(&c);
    rc = csrflow_csr(&req, &csr1, &made, &err);
    CHECK(rc == 0 && made && has(csr1, "BEGIN CERTIFICATE REQUEST"), "first call makes a CSR");
    rc = pki_csr_read(csr1, strlen(csr1), &info, NULL);
    X509_NAME_get_text_by_NID(info.subject, NID_commonName, cn, sizeof(cn));
    X509_NAME_get_text_by_NID(info.subject, NID_organizationName, o, sizeof(o));
    CHECK(rc == 0 && info.dns.n == 2 && strcmp(info.dns.v[1], "www.app.test") == 0 &&
              info.ip.n == 1 && strcmp(info.ip.v[0], "10.0.0.7") == 0,
          "the CSR asks for the dnsNames and ipAddresses");
    CHECK_STR(cn, "app.test", "CN is the first dnsName");
    CHECK_STR(o, "Example Org", "O from spec.csr.subject");
    CHECK(EVP_PKEY_get_base_id(info.public_key) == EVP_PKEY_EC, "key per privateKey (ECDSA)");
    pki_csr_info_dispose(&info);

    rc = csrflow_csr(&req, &csr2, &made, &err);
    CHECK(rc == 0 && !made && strcmp(csr1, csr2) == 0, "second call hands out the same CSR");
    free(csr2);

    snprintf(dir, sizeof(dir), "%s/state", tmpdir);
    CHECK(!tree_contains(dir, "PRIVATE KEY"), "the key is sealed: no PEM key on disk");

    spec_init(&c, names3, 3);
    rc = csrflow_csr(&req, &csr3, &made, &err);
    pub1 = csr_pubkey(csr1);
    pub3 = csr_pubkey(csr3);
    CHECK(rc == 0 && made && strcmp(csr1, csr3) != 0, "a new name makes a new CSR");
    CHECK(strcmp(pub1, pub3) != 0, "with a new key (rotationPolicy Always)");
    free(pub3);
    free(csr3);

    c.private_key.rotation_policy = AEGIS_ROTATION_POLICY_NEVER;
    req.renew = true;
    rc = csrflow_csr(&req, &csr3, &made, &err);
    pub3 = csr_pubkey(csr3);
    free(pub1);
    pub1 = csr_pubkey(csr3);
    CHECK(rc == 0 && made, "renew makes a new CSR");
    free(csr3);
    rc = csrflow_csr(&req, &csr3, &made, &err);
    free(pub3);
    pub3 = csr_pubkey(csr3);
    CHECK(rc == 0 && made && strcmp(pub1, pub3) == 0,
          "renew with rotationPolicy Never keeps the key");
    free(csr3);
    free(pub3);

    c.private_key.algorithm = AEGIS_KEY_ALGORITHM_RSA;
    c.private_key.size = 2048;
    req.renew = false;
    rc = csrflow_csr(&req, &csr3, &made, &err);
    pub3 = csr_pubkey(csr3);
    CHECK(rc == 0 && made && strcmp(pub1, pub3) != 0,
          "a new key type makes a new key even with rotationPolicy Never");
    free(csr3);
    free(pub3);
    free(pub1);

    c.private_key.size = 1024;
    rc = csrflow_csr(&req, &csr3, &made, &err);
    CHECK(rc < 0 && strcmp(err.where, "Certificate default/app") == 0 && csr3 == NULL,
          "an unsupported key size is an error naming the Certificate");
    free(csr1);
}

static void test_import(void)
{
    struct aegis_certificate_spec c;
    struct csrflow_request req;
    struct import_result res;
    struct store_record rec;
    struct store_meta meta;
    struct store_id id;
    struct aegis_err err;
    EVP_PKEY *stray = NULL;
    char *csr = NULL, *chain, *pub, *csr_pub, *newcsr = NULL, fp[PKI_FINGERPRINT_HEX_SIZE];
    bool unchanged = true;
    int rc;

    spec_init(&c, names2, 2);
    req = request(&c);
    import_result_init(&res);
    store_record_init(&rec);
    store_id_set(&id, STORE_KIND_CERTIFICATE, "default", "app", NULL);
    if (csrflow_csr(&req, &csr, NULL, &err) != 0)
        abort();

    /* An outside CA that dropped a name. */
    chain = sign_csr(csr, 1, NULL);
    rc = csrflow_import(&req, chain, strlen(chain), "--cert signed.pem", &res, &unchanged, &err);
    CHECK(rc == -AEGIS_E_INVALID &&
              has(err.msg, "does not cover spec.dnsNames[1] \"www.app.test\""),
          "a certificate missing a requested name is refused");
    free(chain);
    import_result_dispose(&res);

    /* A certificate for another key. */
    pki_key_generate(PKI_KEY_EC_P256, &stray, NULL);
    chain = sign_csr(csr, -1, stray);
    rc = csrflow_import(&req, chain, strlen(chain), "--cert signed.pem", &res, &unchanged, &err);
    CHECK_STR(err.where, "Certificate default/app", "mismatch: where is the Certificate");
    CHECK(rc == -AEGIS_E_INVALID &&
              has(err.msg, "--cert signed.pem: the certificate's public key does not match "
                           "the key "
                           "of the CSR made for Certificate default/app; was it signed from "
                           "another CSR?"),
          "a certificate for another key: the CSR mismatch message");
    CHECK(store_get_meta(st, &id, &meta, NULL) == -AEGIS_E_NOTFOUND, "nothing stored on error");
    free(chain);
    EVP_PKEY_free(stray);
    import_result_dispose(&res);

    /* The right one (chain given CA first: it is put in order). */
    chain = sign_csr(csr, -1, NULL);
    rc = csrflow_import(&req, chain, strlen(chain), "--cert signed.pem", &res, &unchanged, &err);
    CHECK(rc == 0 && !unchanged, "the certificate signed for the CSR is imported");
    rc = store_get(st, &id, &rec, &err);
    CHECK(rc == 0 && has(rec.meta.source, "csr") && rec.key_pem != NULL && rec.csr_pem != NULL &&
              strcmp(rec.csr_pem, csr) == 0,
          "stored with source csr, the key and the CSR");
    CHECK_INT(rec.meta.revision, 1, "revision 1");
    pub = NULL;
    {
        EVP_PKEY *k = NULL;

        pki_key_from_pem(rec.key_pem, strlen(rec.key_pem), &k, NULL);
        pki_pubkey_to_pem(k, &pub, NULL, NULL);
        EVP_PKEY_free(k);
    }
    csr_pub = csr_pubkey(csr);
    CHECK(pub != NULL && strcmp(pub, csr_pub) == 0, "the stored key is the CSR's key");
    free(pub);
    free(csr_pub);
    snprintf(fp, sizeof(fp), "%s", rec.meta.fingerprint);
    store_record_dispose(&rec);
    import_result_dispose(&res);

    rc = csrflow_import(&req, chain, strlen(chain), "--cert signed.pem", &res, &unchanged, &err);
    store_get_meta(st, &id, &meta, NULL);
    CHECK(rc == 0 && unchanged && meta.revision == 1, "importing it again: unchanged");
    store_meta_dispose(&meta);
    import_result_dispose(&res);
    free(chain);

    /* A new name: a new CSR, while the certificate being served stays. */
    spec_init(&c, names3, 3);
    rc = csrflow_csr(&req, &newcsr, NULL, &err);
    store_get_meta(st, &id, &meta, NULL);
    CHECK(rc == 0 && strcmp(newcsr, csr) != 0 && strcmp(meta.fingerprint, fp) == 0,
          "a new CSR leaves the stored certificate in place");
    store_meta_dispose(&meta);
    chain = sign_csr(csr, -1, NULL); /* signed from the old CSR, after a new one was made */
    rc = csrflow_import(&req, chain, strlen(chain), NULL, &res, &unchanged, &err);
    CHECK(rc == -AEGIS_E_INVALID && has(err.msg, "spec.csr.certificate: the certificate's public "
                                                 "key does not match"),
          "a certificate for the superseded CSR is refused");
    free(chain);
    import_result_dispose(&res);
    free(newcsr);
    free(csr);

    req.name = "never-requested";
    rc = csrflow_import(&req, "x", 1, NULL, &res, &unchanged, &err);
    CHECK(rc == -AEGIS_E_NOTFOUND && has(err.msg, "no CSR has been made") &&
              has(err.msg, "aegisctl csr get never-requested -n default") &&
              strcmp(err.where, "Certificate default/never-requested") == 0,
          "import without a CSR says to run csr get");
    import_result_dispose(&res);
}

static void test_reconcile(void)
{
    struct aegis_certificate_spec c;
    struct csrflow_request req;
    struct import_result res;
    enum csrflow_state state = CSRFLOW_READY;
    struct aegis_err err;
    char *csr = NULL, *chain;
    int rc;

    spec_init(&c, names2, 2);
    req = request(&c);
    req.name = "web";
    import_result_init(&res);
    rc = csrflow_reconcile(&req, tmpdir, &state, &res, &err);
    CHECK(rc == 0 && state == CSRFLOW_WAITING, "no certificate yet: WAITING (CSR made)");
    if (csrflow_csr(&req, &csr, NULL, &err) != 0)
        abort();
    chain = sign_csr(csr, -1, NULL);
    c.csr.present |= 1u << API_F_CSR_CERTIFICATE_CERTIFICATE;
    c.csr.certificate.pem = chain;
    rc = csrflow_reconcile(&req, tmpdir, &state, &res, &err);
    CHECK(rc == 0 && state == CSRFLOW_READY && has(res.rec.meta.source, "csr"),
          "spec.csr.certificate given: READY");
    import_result_dispose(&res);
    c.csr.certificate.pem = NULL;
    c.csr.certificate.file = "/nonexistent/signed.pem";
    rc = csrflow_reconcile(&req, tmpdir, &state, &res, &err);
    CHECK(rc == -AEGIS_E_NOTFOUND && state == CSRFLOW_WAITING &&
              strcmp(err.where, "Certificate default/web") == 0 &&
              has(err.msg, "spec.csr.certificate") && has(err.msg, "/nonexistent/signed.pem"),
          "a missing certificate file names the resource, field and path");
    import_result_dispose(&res);
    free(chain);
    free(csr);
}

int main(void)
{
    char cmd[600];

    if (mkdtemp(tmpdir) == NULL)
        return 1;
    setup();
    test_csr();
    test_import();
    test_reconcile();
    store_close(st);
    masterkey_ring_dispose(&ring);
    EVP_PKEY_free(ca_key);
    X509_free(ca_cert);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        printf("# cannot remove %s\n", tmpdir);
    return check_done();
}
