/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for the store (common/store.c, common/store_fs.c): record ids, put/get/meta/list/
 * delete, history and its pruning against an injected clock, metadata from X.509, permissions
 * (0700/0600 under umask 0), no key material in any file on disk, no temp files left, wrong and
 * missing master keys, tampered and moved record files, and key rotation - whole, interrupted
 * after every step and resumed, and with a key from outside the state directory.
 */
#include <dirent.h>
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aegis/err.h"
#include "aegis/limits.h"
#include "aegis/masterkey.h"
#include "aegis/store.h"
#include "check.h"

static char tmpdir[] = "/tmp/aegis-test-store.XXXXXX";

/* ---- fixtures ---- */

struct pair {
    char *cert;
    char *key;
    unsigned char *der; /* the private key's DER, to look for on disk */
    int derlen;
    unsigned char priv[32]; /* the private scalar */
};

static char *bio_text(BIO *bio)
{
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);
    char *out = malloc((size_t)len + 1);

    memcpy(out, data, (size_t)len);
    out[len] = '\0';
    return out;
}

/* A self-signed P-256 certificate for cn with the given SANs, valid [nb, na]. */
static void make_pair(struct pair *p, const char *cn, const char *sans, time_t nb, time_t na)
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    BIO *bio;
    unsigned char serial[8];

    memset(p, 0, sizeof(*p));
    X509_set_version(x, 2);
    for (size_t i = 0; i < sizeof(serial); i++)
        serial[i] = (unsigned char)(rand() & 0x7f);
    {
        BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);

        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
        BN_free(bn);
    }
    ASN1_TIME_set(X509_getm_notBefore(x), nb);
    ASN1_TIME_set(X509_getm_notAfter(x), na);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, pkey);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, sans);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    X509_sign(x, pkey, EVP_sha256());
    bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, x);
    p->cert = bio_text(bio);
    BIO_free(bio);
    bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL);
    p->key = bio_text(bio);
    BIO_free(bio);
    p->derlen = i2d_PrivateKey(pkey, &p->der);
    {
        BIGNUM *priv = NULL;

        EVP_PKEY_get_bn_param(pkey, "priv", &priv);
        BN_bn2binpad(priv, p->priv, sizeof(p->priv));
        BN_clear_free(priv);
    }
    X509_NAME_free(name);
    X509_free(x);
    EVP_PKEY_free(pkey);
}

static void pair_free(struct pair *p)
{
    free(p->cert);
    free(p->key);
    OPENSSL_free(p->der);
}

static int put_pair(struct store *st, const struct store_id *id, const struct pair *p,
                    const char *source, struct aegis_err *err)
{
    struct store_record rec;
    int rc;

    store_record_init(&rec);
    rec.chain_pem = p->cert ? strdup(p->cert) : NULL;
    rec.key_pem = p->key ? strdup(p->key) : NULL;
    rec.meta.source = strdup(source);
    rc = store_put(st, id, &rec, err);
    store_record_dispose(&rec);
    return rc;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    *len = 0;
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    *len = fread(buf, 1, (size_t)n, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

struct walk {
    int bad_dirs, bad_files, temps, files, leaks;
    const struct pair *secret; /* NULL: do not look */
};

/*
 * The first two base64 lines of a PEM body: for a P-256 PKCS#8 key they hold the private scalar
 * (later lines hold the public key, which the certificate holds too).
 */
static bool holds_pem_body(const char *data, size_t len, const char *pem)
{
    const char *line = strchr(pem, '\n');

    for (int i = 0; i < 2 && line != NULL && strncmp(line + 1, "-----", 5) != 0; i++) {
        const char *end = strchr(line + 1, '\n');
        size_t n = end ? (size_t)(end - line - 1) : strlen(line + 1);

        if (n >= 16 && memmem(data, len, line + 1, n) != NULL)
            return true;
        line = end;
    }
    return false;
}

static void walk_dir(const char *dir, struct walk *w)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    while (d != NULL && (de = readdir(d)) != NULL) {
        char path[1024];
        struct stat sb;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (lstat(path, &sb) != 0)
            continue;
        if (strstr(de->d_name, ".tmp.") != NULL)
            w->temps++;
        if (S_ISDIR(sb.st_mode)) {
            if ((sb.st_mode & 07777) != 0700)
                w->bad_dirs++;
            walk_dir(path, w);
        } else {
            size_t len = 0;
            char *data;

            w->files++;
            if ((sb.st_mode & 07777) != 0600)
                w->bad_files++;
            data = read_all(path, &len);
            if (w->secret != NULL && data != NULL &&
                (memmem(data, len, "PRIVATE KEY", 11) != NULL ||
                 memmem(data, len, w->secret->der, (size_t)w->secret->derlen) != NULL ||
                 memmem(data, len, w->secret->priv, sizeof(w->secret->priv)) != NULL ||
                 holds_pem_body(data, len, w->secret->key))) {
                printf("# key material in %s\n", path);
                w->leaks++;
            }
            free(data);
        }
    }
    if (d != NULL)
        closedir(d);
}

static struct store *open_store(const char *state, const struct aegis_keyring *ring)
{
    struct aegis_err err = {0};
    struct store *st = NULL;

    if (store_open_fs(state, ring, &st, &err) < 0)
        printf("# store_open_fs: %s: %s\n", err.where, err.msg);
    return st;
}

static int load_ring(const char *state, struct aegis_keyring *ring, bool create)
{
    struct masterkey_source src = {0};
    struct aegis_err err = {0};
    int rc;

    src.state_dir = state;
    src.create = create;
    rc = masterkey_ring_load(ring, &src, &err);
    if (rc < 0)
        printf("# masterkey_ring_load: %s\n", err.msg);
    return rc;
}

/* ---- tests ---- */

static void test_ids(void)
{
    struct store_id id;
    struct aegis_err err = {0};
    char buf[STORE_ID_STR_MAX], longname[300];

    CHECK_INT(store_id_set(&id, "certificate", "default", "app", &err), 0, "a plain id");
    store_id_format(&id, buf, sizeof(buf));
    CHECK_STR(buf, "certificate/default/app", "formatted");
    CHECK_INT(store_id_parse(&id, "ca/aegis-system/root.v1_x", &err), 0, "parse");
    CHECK(strcmp(id.kind, "ca") == 0 && strcmp(id.ns, "aegis-system") == 0 &&
              strcmp(id.name, "root.v1_x") == 0,
          "parsed parts");
    CHECK_INT(store_id_parse(&id, "certificate/default", &err), -AEGIS_E_INVALID, "two parts");
    CHECK_INT(store_id_parse(&id, "certificate/default/a/b", &err), -AEGIS_E_INVALID,
              "a slash in the name");
    CHECK_INT(store_id_set(&id, "certificate", "..", "app", &err), -AEGIS_E_INVALID, "..");
    CHECK_INT(store_id_set(&id, "certificate", "default", ".hidden", &err), -AEGIS_E_INVALID,
              "a leading dot");
    CHECK_INT(store_id_set(&id, "Certificate", "default", "app", &err), -AEGIS_E_INVALID,
              "an upper-case kind");
    CHECK_INT(store_id_set(&id, "certificate", "", "app", &err), -AEGIS_E_INVALID,
              "an empty namespace");
    CHECK_INT(store_id_set(&id, "certificate", "default", "a b", &err), -AEGIS_E_INVALID,
              "a space");
    memset(longname, 'a', 254);
    longname[254] = '\0';
    CHECK_INT(store_id_set(&id, "certificate", "default", longname, &err), -AEGIS_E_INVALID,
              "a name over 253");
    longname[253] = '\0';
    CHECK_INT(store_id_set(&id, "certificate", "default", longname, &err), 0, "a name of 253");
}

static void test_meta_x509(void)
{
    struct pair p;
    struct store_meta meta;
    struct aegis_err err = {0};
    int rc;

    make_pair(&p, "meta.example", "DNS:a.example,DNS:*.b.example,IP:192.0.2.1,IP:2001:db8::1",
              1700000000, 1800000000);
    store_meta_init(&meta);
    rc = store_meta_from_pem(&meta, p.cert, &err);
    CHECK_INT(rc, 0, "metadata from a certificate");
    CHECK(meta.n_dns_names == 2 && strcmp(meta.dns_names[1], "*.b.example") == 0, "dnsNames");
    CHECK(meta.n_ip_addresses == 2 && strcmp(meta.ip_addresses[0], "192.0.2.1") == 0 &&
              strcmp(meta.ip_addresses[1], "2001:db8::1") == 0,
          "ipAddresses, IPv6 in RFC 5952 form");
    CHECK_STR(meta.subject, "CN=meta.example", "subject");
    CHECK_STR(meta.issuer, "CN=meta.example", "issuer");
    CHECK(meta.serial != NULL && strlen(meta.serial) >= 2, "serial");
    CHECK(meta.not_before == 1700000000 && meta.not_after == 1800000000, "validity");
    CHECK(strlen(meta.fingerprint) == 64, "fingerprint");
    store_meta_dispose(&meta);
    rc = store_meta_from_pem(
        &meta, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", &err);
    CHECK(rc < 0 && meta.serial == NULL, "garbage is refused");
    store_meta_dispose(&meta);
    pair_free(&p);
}

static void test_basic(void)
{
    struct aegis_keyring ring;
    struct aegis_err err = {0};
    struct store_record rec;
    struct store_meta meta;
    struct store_id id, id2, id3, *ids = NULL;
    struct store *st = NULL, *ro = NULL;
    struct pair p, q;
    struct walk w;
    char state[256], path[512], *data;
    size_t n = 0, len = 0;
    time_t now = time(NULL);
    int rc;

    snprintf(state, sizeof(state), "%s/basic", tmpdir);
    umask(0);
    load_ring(state, &ring, true);
    st = open_store(state, &ring);
    CHECK(st != NULL, "open a new store under umask 0");
    if (st == NULL)
        return;
    make_pair(&p, "app", "DNS:app.example.com,IP:10.0.0.1", now - 60, now + 86400);
    make_pair(&q, "other", "DNS:other.example.com", now - 60, now + 86400);
    store_id_set(&id, "certificate", "default", "app", NULL);
    store_id_set(&id2, "certificate", "prod", "other", NULL);
    store_id_set(&id3, "ca", "aegis-system", "root", NULL);
    rc = put_pair(st, &id, &p, "custom", &err);
    CHECK_INT(rc, 0, "put");
    rc = put_pair(st, &id2, &q, "ca", &err);
    rc |= put_pair(st, &id3, &q, "ca", &err);
    CHECK_INT(rc, 0, "put two more");
    umask(022);

    rc = store_get(st, &id, &rec, &err);
    CHECK_INT(rc, 0, "get");
    CHECK(rec.chain_pem && strcmp(rec.chain_pem, p.cert) == 0, "the chain comes back");
    CHECK(rec.key_pem && strcmp(rec.key_pem, p.key) == 0, "the key comes back");
    CHECK(rec.csr_pem == NULL, "no CSR");
    CHECK(rec.meta.revision == 1 && rec.meta.updated_at >= now &&
              strcmp(rec.meta.source, "custom") == 0,
          "revision, updatedAt, source");
    store_record_dispose(&rec);
    CHECK(rec.key_pem == NULL, "dispose clears");

    rc = store_get_meta(st, &id, &meta, &err);
    CHECK(rc == 0 && meta.n_dns_names == 1 && strcmp(meta.dns_names[0], "app.example.com") == 0 &&
              meta.n_ip_addresses == 1 && strlen(meta.fingerprint) == 64 &&
              meta.not_after == (int64_t)now + 86400,
          "get_meta, filled from the chain");
    store_meta_dispose(&meta);

    rc = store_list(st, NULL, &ids, &n, &err);
    CHECK(rc == 0 && n == 3 && store_id_cmp(&ids[0], &id3) == 0 &&
              store_id_cmp(&ids[1], &id) == 0 && store_id_cmp(&ids[2], &id2) == 0,
          "list everything, sorted");
    free(ids);
    rc = store_list(st, "certificate", &ids, &n, &err);
    CHECK(rc == 0 && n == 2, "list one kind");
    free(ids);
    rc = store_list(st, "acme-account", &ids, &n, &err);
    CHECK(rc == 0 && n == 0 && ids == NULL, "list an empty kind");
    rc = store_list(st, "../x", &ids, &n, &err);
    CHECK_INT(rc, -AEGIS_E_INVALID, "a bad kind");

    /* Permissions, leaks and temp files, over every file of the state directory. */
    memset(&w, 0, sizeof(w));
    w.secret = &p;
    walk_dir(state, &w);
    CHECK(w.files >= 4, "files were written");
    CHECK_INT(w.bad_dirs, 0, "every directory is 0700");
    CHECK_INT(w.bad_files, 0, "every file is 0600");
    CHECK_INT(w.temps, 0, "no temp file is left");
    CHECK_INT(w.leaks, 0, "no file holds the key PEM, its base64 or its bytes");
    w.secret = &q;
    w.leaks = 0;
    walk_dir(state, &w);
    CHECK_INT(w.leaks, 0, "nor the other key");
    {
        /* The check itself catches a key written in the clear, PEM or raw. */
        struct walk c;
        char dir[300], file[320];
        FILE *f;

        snprintf(dir, sizeof(dir), "%s/control", tmpdir);
        mkdir(dir, 0700);
        snprintf(file, sizeof(file), "%s/pem", dir);
        f = fopen(file, "wb");
        fputs(strchr(p.key, '\n') + 1, f); /* the body without the BEGIN line */
        fclose(f);
        snprintf(file, sizeof(file), "%s/raw", dir);
        f = fopen(file, "wb");
        fputs("xx", f);
        fwrite(p.priv, 1, sizeof(p.priv), f);
        fclose(f);
        memset(&c, 0, sizeof(c));
        c.secret = &p;
        walk_dir(dir, &c);
        CHECK_INT(c.leaks, 2, "control: the leak check finds a clear key");
    }
    snprintf(path, sizeof(path), "%s/store/certificate/default/app/current.json", state);
    data = read_all(path, &len);
    CHECK(data != NULL && strstr(data, "BEGIN CERTIFICATE") != NULL &&
              strstr(data, "\"sealed\"") != NULL,
          "the record file holds the chain in clear and the key sealed");
    free(data);

    /* A store opened without a key still reads metadata and chains, never keys. */
    ro = open_store(state, NULL);
    CHECK(ro != NULL, "a second, key-less handle (shared lock)");
    if (ro != NULL) {
        rc = store_get_meta(ro, &id, &meta, &err);
        CHECK(rc == 0 && meta.revision == 1, "metadata without a key");
        store_meta_dispose(&meta);
        rc = store_get_public(ro, &id, &rec, &err);
        CHECK(rc == 0 && rec.key_pem == NULL && rec.chain_pem != NULL,
              "the public part without a key");
        store_record_dispose(&rec);
        rc = store_get(ro, &id, &rec, &err);
        CHECK(rc == -AEGIS_E_NOTFOUND && strstr(err.msg, "master key id") != NULL,
              "opening the key without a key: a clear error");
        rc = put_pair(ro, &id, &p, "x", &err);
        CHECK_INT(rc, -AEGIS_E_STATE, "and no sealing");
        store_close(ro);
    }

    /* Delete. */
    rc = store_delete(st, &id2, &err);
    CHECK_INT(rc, 0, "delete");
    rc = store_get(st, &id2, &rec, &err);
    CHECK(rc == -AEGIS_E_NOTFOUND && strstr(err.where, "certificate/prod/other") != NULL,
          "a deleted record is not found, by name");
    snprintf(path, sizeof(path), "%s/store/certificate/prod", state);
    CHECK(access(path, F_OK) != 0, "its empty directories are gone");
    rc = store_delete(st, &id2, &err);
    CHECK_INT(rc, -AEGIS_E_NOTFOUND, "delete twice");
    rc = store_get_meta(st, &id2, &meta, &err);
    CHECK_INT(rc, -AEGIS_E_NOTFOUND, "meta of a missing record");

    /* A record with only a key (the CSR flow before signing), then its certificate. */
    {
        struct store_record r2;
        struct store_id cid;

        store_id_set(&cid, "certificate", "default", "csr-app", NULL);
        store_record_init(&r2);
        r2.key_pem = strdup(p.key);
        r2.csr_pem = strdup("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                            "-----END CERTIFICATE REQUEST-----\n");
        r2.meta.source = strdup("csr");
        rc = store_put(st, &cid, &r2, &err);
        store_record_dispose(&r2);
        rc |= store_get(st, &cid, &r2, &err);
        CHECK(rc == 0 && r2.chain_pem == NULL && r2.csr_pem != NULL && r2.key_pem != NULL &&
                  r2.meta.fingerprint[0] == '\0',
              "a key-and-CSR record");
        free(r2.chain_pem);
        r2.chain_pem = strdup(p.cert);
        r2.meta.updated_at = 12345;
        rc = store_put(st, &cid, &r2, &err);
        store_record_dispose(&r2);
        rc |= store_get(st, &cid, &r2, &err);
        CHECK(rc == 0 && r2.chain_pem != NULL && r2.meta.revision == 2 &&
                  r2.meta.updated_at == 12345 && strlen(r2.meta.fingerprint) == 64,
              "then its certificate; the caller's updatedAt is kept");
        store_record_dispose(&r2);
        {
            struct store_meta *h = NULL;
            size_t nh = 0;

            rc = store_history_list(st, &cid, &h, &nh, &err);
            CHECK(rc == 0 && nh == 0, "a record without a certificate leaves no history");
            store_meta_array_free(h, nh);
        }
    }

    /* Limits. */
    {
        struct store_record big;

        store_record_init(&big);
        big.key_pem = malloc(AEGIS_LIMIT_ENVELOPE_PLAINTEXT_BYTES + 2);
        memset(big.key_pem, 'k', AEGIS_LIMIT_ENVELOPE_PLAINTEXT_BYTES + 1);
        big.key_pem[AEGIS_LIMIT_ENVELOPE_PLAINTEXT_BYTES + 1] = '\0';
        rc = store_put(st, &id, &big, &err);
        CHECK_INT(rc, -AEGIS_E_LIMIT, "a key over the limit is refused");
        store_record_dispose(&big);
        /* Public extra state too large for a record file is refused, not written unreadable. */
        store_record_init(&big);
        big.meta.extra = json_object();
        {
            char *blob = malloc(AEGIS_LIMIT_STORE_RECORD_BYTES);

            memset(blob, 'x', AEGIS_LIMIT_STORE_RECORD_BYTES - 1);
            blob[AEGIS_LIMIT_STORE_RECORD_BYTES - 1] = '\0';
            json_object_set_new(big.meta.extra, "blob", json_string(blob));
            free(blob);
        }
        rc = store_put(st, &id, &big, &err);
        CHECK_INT(rc, -AEGIS_E_LIMIT, "a record over the file limit is refused");
        store_record_dispose(&big);
        rc = store_get(st, &id, &big, &err);
        CHECK(rc == 0 && big.key_pem != NULL, "and the stored record is untouched");
        store_record_dispose(&big);
    }

    store_close(st);
    masterkey_ring_dispose(&ring);
    pair_free(&p);
    pair_free(&q);
}

static void test_history(void)
{
    struct aegis_keyring ring;
    struct aegis_err err = {0};
    struct store_record rec;
    struct store_meta *h = NULL;
    struct store *st;
    struct store_id id, id2;
    struct pair p1, p2, p3;
    struct walk w;
    char state[256];
    size_t nh = 0, removed = 0;
    time_t t0 = 1900000000;
    int rc;

    snprintf(state, sizeof(state), "%s/history", tmpdir);
    load_ring(state, &ring, true);
    st = open_store(state, &ring);
    if (st == NULL)
        return;
    store_id_set(&id, "certificate", "default", "web", NULL);
    store_id_set(&id2, "certificate", "default", "web2", NULL);
    make_pair(&p1, "web", "DNS:web.example", t0, t0 + 1000);
    make_pair(&p2, "web", "DNS:web.example", t0 + 500, t0 + 2000);
    make_pair(&p3, "web", "DNS:web.example", t0 + 1500, t0 + 3000);

    rc = put_pair(st, &id, &p1, "ca", &err);
    rc |= put_pair(st, &id, &p1, "ca", &err);
    CHECK_INT(rc, 0, "put the same certificate twice");
    rc = store_history_list(st, &id, &h, &nh, &err);
    CHECK(rc == 0 && nh == 0 && h == NULL, "the same certificate again makes no history");
    rc = put_pair(st, &id, &p2, "ca", &err);
    CHECK_INT(rc, 0, "renew");
    rc = store_history_list(st, &id, &h, &nh, &err);
    CHECK(rc == 0 && nh == 1 && h[0].revision == 2 && h[0].not_after == t0 + 1000,
          "the previous certificate is in the history");
    store_meta_array_free(h, nh);
    rc = put_pair(st, &id, &p3, "ca", &err);
    rc |= store_history_list(st, &id, &h, &nh, &err);
    CHECK(rc == 0 && nh == 2 && h[0].revision == 2 && h[1].revision == 3,
          "two renewals, oldest first");
    store_meta_array_free(h, nh);
    rc = store_history_get(st, &id, 2, &rec, &err);
    CHECK(rc == 0 && strcmp(rec.chain_pem, p1.cert) == 0 && strcmp(rec.key_pem, p1.key) == 0,
          "an old version opens, key and all");
    store_record_dispose(&rec);
    rc = store_history_get(st, &id, 7, &rec, &err);
    CHECK_INT(rc, -AEGIS_E_NOTFOUND, "a missing revision");
    rc = store_get(st, &id, &rec, &err);
    CHECK(rc == 0 && rec.meta.revision == 4 && strcmp(rec.key_pem, p3.key) == 0,
          "the current version is the newest");
    store_record_dispose(&rec);

    rc = store_history_prune(st, &id, t0 + 999, &removed, &err);
    CHECK(rc == 0 && removed == 0, "nothing has expired yet");
    rc = store_history_prune(st, &id, t0 + 1000, &removed, &err);
    CHECK(rc == 0 && removed == 1, "at notAfter the first is dropped");
    rc = store_history_list(st, &id, &h, &nh, &err);
    CHECK(rc == 0 && nh == 1 && h[0].revision == 3, "the unexpired one stays");
    store_meta_array_free(h, nh);
    rc = put_pair(st, &id2, &p1, "ca", &err);
    rc |= put_pair(st, &id2, &p2, "ca", &err);
    rc |= store_history_prune(st, NULL, t0 + 5000, &removed, &err);
    CHECK(rc == 0 && removed == 2, "prune every record");
    rc = store_history_prune(st, &id, t0, &removed, &err);
    CHECK(rc == 0 && removed == 0, "prune an empty history");

    /* The history is bounded. */
    for (int i = 0; i < AEGIS_LIMIT_STORE_HISTORY + 3; i++) {
        struct pair pi;

        make_pair(&pi, "web", "DNS:web.example", t0, t0 + 10000 + i);
        rc |= put_pair(st, &id2, &pi, "ca", &err);
        pair_free(&pi);
    }
    rc |= store_history_list(st, &id2, &h, &nh, &err);
    CHECK(rc == 0 && nh == AEGIS_LIMIT_STORE_HISTORY, "at most AEGIS_LIMIT_STORE_HISTORY kept");
    store_meta_array_free(h, nh);

    rc = store_delete(st, &id, &err);
    CHECK_INT(rc, 0, "delete a record with history");
    rc = store_history_list(st, &id, &h, &nh, &err);
    CHECK(rc == 0 && nh == 0, "its history is gone too");
    rc = store_history_prune(st, &id, t0, &removed, &err);
    CHECK_INT(rc, -AEGIS_E_NOTFOUND, "prune a missing record");

    memset(&w, 0, sizeof(w));
    w.secret = &p1;
    walk_dir(state, &w);
    CHECK(w.bad_dirs == 0 && w.bad_files == 0 && w.temps == 0 && w.leaks == 0,
          "history files: 0600, no temp files, no key material");
    store_close(st);
    masterkey_ring_dispose(&ring);
    pair_free(&p1);
    pair_free(&p2);
    pair_free(&p3);
}

static void test_wrong_keys_and_tampering(void)
{
    struct aegis_keyring ring, wrong;
    struct aegis_masterkey other;
    struct aegis_err err = {0};
    struct store_record rec;
    struct store *st, *bad = NULL;
    struct store_id id, id2;
    struct pair p;
    char state[256], path[512], path2[512], idhex[MASTERKEY_ID_HEX_LEN + 1], *data, *data2;
    size_t len, len2;
    FILE *f;
    int rc;

    snprintf(state, sizeof(state), "%s/tamper", tmpdir);
    load_ring(state, &ring, true);
    masterkey_id_hex(ring.keys[0].id, idhex, sizeof(idhex));
    st = open_store(state, &ring);
    if (st == NULL)
        return;
    make_pair(&p, "t", "DNS:t.example", time(NULL) - 10, time(NULL) + 1000);
    store_id_set(&id, "certificate", "default", "t1", NULL);
    store_id_set(&id2, "certificate", "default", "t2", NULL);
    rc = put_pair(st, &id, &p, "custom", &err);
    rc |= put_pair(st, &id2, &p, "custom", &err);
    CHECK_INT(rc, 0, "two records");
    store_close(st);

    masterkey_generate(&other, NULL);
    masterkey_ring_init(&wrong);
    masterkey_ring_add(&wrong, &other, NULL);
    rc = store_open_fs(state, &wrong, &bad, &err);
    CHECK(rc == -AEGIS_E_NOTFOUND && bad == NULL && strstr(err.msg, idhex) != NULL &&
              strstr(err.msg, "AEGIS_MASTER_KEY") != NULL,
          "the wrong master key: refused at open, naming the needed key id");
    store_close(bad);

    st = open_store(state, &ring);
    if (st == NULL)
        return;
    snprintf(path, sizeof(path), "%s/store/certificate/default/t1/current.json", state);
    snprintf(path2, sizeof(path2), "%s/store/certificate/default/t2/current.json", state);
    data = read_all(path, &len);
    data2 = read_all(path2, &len2);

    /* Swap the sealed keys of two records: the associated data catches it. */
    {
        char *s1 = strstr(data, "\"tls.key\": \""), *s2 = strstr(data2, "\"tls.key\": \"");

        if (s1 != NULL && s2 != NULL) {
            size_t n1 = strcspn(s1 + 12, "\""), n2 = strcspn(s2 + 12, "\"");

            if (n1 == n2) {
                memcpy(s1 + 12, s2 + 12, n1);
                f = fopen(path, "wb");
                fwrite(data, 1, len, f);
                fclose(f);
            }
        }
        rc = store_get(st, &id, &rec, &err);
        CHECK(rc == -AEGIS_E_CRYPTO && rec.key_pem == NULL,
              "another record's sealed key is refused");
        CHECK(strstr(err.msg, "BEGIN") == NULL, "and the message holds no key");
    }
    /* A record file copied under another name is refused. */
    f = fopen(path, "wb");
    fwrite(data2, 1, len2, f);
    fclose(f);
    rc = store_get(st, &id, &rec, &err);
    CHECK(rc == -AEGIS_E_INVALID && strstr(err.msg, "another record") != NULL,
          "a record file under another name is refused");
    rc = store_get_meta(st, &id, &rec.meta, &err);
    CHECK_INT(rc, -AEGIS_E_INVALID, "also for metadata");
    /* A flipped base64 character of the envelope. */
    {
        char *s = strstr(data2, "\"tls.key\": \"");

        if (s != NULL)
            s[12 + 60] = s[12 + 60] == 'A' ? 'B' : 'A';
        f = fopen(path2, "wb");
        fwrite(data2, 1, len2, f);
        fclose(f);
        rc = store_get(st, &id2, &rec, &err);
        CHECK(rc == -AEGIS_E_CRYPTO && rec.key_pem == NULL, "a tampered ciphertext is refused");
    }
    /* Not JSON. */
    f = fopen(path2, "wb");
    fputs("{\"format\": 1, ", f);
    fclose(f);
    rc = store_get(st, &id2, &rec, &err);
    CHECK_INT(rc, -AEGIS_E_SYNTAX, "a truncated record file is refused");
    rc = put_pair(st, &id2, &p, "custom", &err);
    CHECK(rc < 0, "and is not overwritten by a put");
    f = fopen(path2, "wb");
    fputs("{\"format\": 99}", f);
    fclose(f);
    rc = store_get(st, &id2, &rec, &err);
    CHECK_INT(rc, -AEGIS_E_UNSUPPORTED, "an unknown format is refused");

    free(data);
    free(data2);
    store_close(st);
    masterkey_ring_dispose(&ring);
    masterkey_ring_dispose(&wrong);
    masterkey_cleanse(&other);
    pair_free(&p);
}

/* Stops the rotation after `after` rewrites with error code 77, as a crash would. */
static int stop_after(void *arg, const struct store_id *id, size_t done)
{
    (void)id;
    return done == *(const size_t *)arg ? 77 : 0;
}

/* Every record (and history entry) of the state opens with a freshly loaded ring. */
static bool all_open(const char *state, const struct store_id *ids, size_t n,
                     const struct pair *keys)
{
    struct aegis_keyring ring;
    struct store *st;
    bool ok = true;

    if (load_ring(state, &ring, false) < 0)
        return false;
    st = open_store(state, &ring);
    if (st == NULL) {
        masterkey_ring_dispose(&ring);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        struct store_record rec;
        struct aegis_err err = {0};

        if (store_get(st, &ids[i], &rec, &err) != 0 || strcmp(rec.key_pem, keys[i].key) != 0) {
            printf("# %s: %s\n", ids[i].name, err.msg);
            ok = false;
        }
        store_record_dispose(&rec);
        if (i == 0) {
            if (store_history_get(st, &ids[0], 1, &rec, &err) != 0 ||
                strcmp(rec.key_pem, keys[n].key) != 0) {
                printf("# history: %s\n", err.msg);
                ok = false;
            }
            store_record_dispose(&rec);
        }
    }
    store_close(st);
    masterkey_ring_dispose(&ring);
    return ok;
}

static void test_rotation(void)
{
    enum { N = 4 };
    struct aegis_keyring ring, ring2;
    struct aegis_masterkey old, cur;
    struct aegis_err err = {0};
    struct store *st, *other;
    struct store_id ids[N];
    struct pair keys[N + 1]; /* keys[N] is the history entry of ids[0] */
    struct walk w;
    char state[256], path[512], name[16];
    time_t now = time(NULL);
    int rc;

    snprintf(state, sizeof(state), "%s/rotate", tmpdir);
    load_ring(state, &ring, true);
    old = ring.keys[0];
    st = open_store(state, &ring);
    if (st == NULL)
        return;
    make_pair(&keys[N], "r0", "DNS:r0.example", now - 10, now + 100);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "r%d", i);
        store_id_set(&ids[i], "certificate", "default", name, NULL);
        make_pair(&keys[i], name, "DNS:r.example", now - 10, now + 1000);
        if (i == 0)
            put_pair(st, &ids[0], &keys[N], "ca", NULL);
        rc = put_pair(st, &ids[i], &keys[i], "ca", &err);
        CHECK_INT(rc, 0, "put a record to rotate");
    }
    CHECK(all_open(state, ids, N, keys), "records and a history entry are readable");
    /*
     * N records + 1 history entry = N + 1 rewrites. The first run stops once the new key is
     * saved, each later one after one more rewrite, so every intermediate state is visited,
     * including "all rewritten, master.key not yet replaced".
     */
    for (size_t k = 0; k <= N + 1; k++) {
        size_t after = k == 0 ? 0 : 1;
        char what[96];

        rc = store_rotate_key(st, NULL, stop_after, &after, &err);
        snprintf(what, sizeof(what), "a rotation stopped after %zu rewrites", k);
        CHECK_INT(rc, -77, what);
        snprintf(path, sizeof(path), "%s/master.key.next", state);
        snprintf(what, sizeof(what), "stopped after %zu: master.key.next is kept", k);
        CHECK(access(path, F_OK) == 0, what);
        snprintf(what, sizeof(what), "stopped after %zu: every record opens after a restart", k);
        CHECK(all_open(state, ids, N, keys), what);
        /* Restart, as a new process would. */
        store_close(st);
        masterkey_ring_dispose(&ring);
        load_ring(state, &ring, false);
        st = open_store(state, &ring);
        if (st == NULL)
            return;
        CHECK(ring.has_next && ring.n == 2, "the restarted ring holds current and next");
    }
    other = open_store(state, NULL);
    rc = store_rotate_key(st, NULL, NULL, NULL, &err);
    CHECK(rc == -AEGIS_E_STATE && strstr(err.msg, "stop the controller") != NULL,
          "no rotation while another process has the store open");
    store_close(other);
    rc = store_rotate_key(st, NULL, NULL, NULL, &err);
    CHECK_INT(rc, 0, "re-running the rotation finishes it");
    snprintf(path, sizeof(path), "%s/master.key.next", state);
    CHECK(access(path, F_OK) != 0, "master.key.next is gone");
    CHECK(all_open(state, ids, N, keys), "every record opens with the new master.key");
    load_ring(state, &ring2, false);
    CHECK(ring2.n == 1 && !ring2.has_next && memcmp(ring2.keys[0].id, old.id, 8) != 0,
          "master.key is the new key");
    cur = ring2.keys[0];
    masterkey_ring_dispose(&ring2);
    masterkey_ring_init(&ring2);
    masterkey_ring_add(&ring2, &old, NULL);
    other = NULL;
    rc = store_open_fs(state, &ring2, &other, &err);
    CHECK(rc == -AEGIS_E_NOTFOUND && other == NULL, "the old key opens nothing any more");
    masterkey_ring_dispose(&ring2);

    /* The handle that rotated seals with the new key from now on. */
    rc = put_pair(st, &ids[1], &keys[1], "ca", &err);
    CHECK(rc == 0 && all_open(state, ids, N, keys), "puts after the rotation use the new key");

    /* A key from outside the state directory: the new key must be given. */
    store_close(st);
    masterkey_ring_init(&ring2);
    masterkey_ring_add(&ring2, &cur, NULL);
    ring2.origin = MASTERKEY_ORIGIN_ENV;
    st = open_store(state, &ring2);
    if (st == NULL)
        return;
    rc = store_rotate_key(st, NULL, NULL, NULL, &err);
    CHECK(rc == -AEGIS_E_INVALID && strstr(err.msg, "--new-key-file") != NULL,
          "external key: a new key is required");
    {
        struct aegis_masterkey ext;
        size_t after = 2;
        struct store *st2;

        masterkey_generate(&ext, NULL);
        rc = store_rotate_key(st, &ext, stop_after, &after, &err);
        CHECK_INT(rc, -77, "external key: stopped half-way");
        snprintf(path, sizeof(path), "%s/master.key.rotating", state);
        CHECK(access(path, F_OK) == 0, "the marker names the rotation");
        store_close(st);
        st = NULL;
        rc = store_open_fs(state, &ring2, &st2, &err);
        if (rc == 0) {
            struct store_record rec;

            /* Some records are under the new key: their errors say how to finish. */
            rc = store_get(st2, &ids[0], &rec, &err);
            store_record_dispose(&rec);
            store_close(st2);
        }
        CHECK(rc < 0 && strstr(err.msg, "rotate-key --new-key-file") != NULL,
              "a restart with the old key alone says how to finish");
        masterkey_ring_add(&ring2, &ext, NULL);
        st = open_store(state, &ring2);
        if (st == NULL)
            return;
        rc = store_rotate_key(st, &ext, NULL, NULL, &err);
        CHECK_INT(rc, 0, "re-run with the same new key");
        CHECK(access(path, F_OK) != 0, "the marker is removed");
        snprintf(path, sizeof(path), "%s/master.key", state);
        CHECK(access(path, F_OK) == 0, "the state master.key is left alone");
        store_close(st);
        st = NULL;
        masterkey_ring_dispose(&ring2);
        masterkey_ring_add(&ring2, &ext, NULL);
        st = open_store(state, &ring2);
        CHECK(st != NULL, "the new external key opens the store");
        if (st != NULL) {
            struct store_record rec;

            rc = store_get(st, &ids[3], &rec, &err);
            CHECK(rc == 0 && strcmp(rec.key_pem, keys[3].key) == 0, "and its records");
            store_record_dispose(&rec);
        }
        masterkey_cleanse(&ext);
    }

    memset(&w, 0, sizeof(w));
    walk_dir(state, &w);
    CHECK(w.temps == 0 && w.bad_files == 0 && w.bad_dirs == 0,
          "after rotations: no temp files, modes kept");
    store_close(st);
    masterkey_ring_dispose(&ring);
    masterkey_ring_dispose(&ring2);
    masterkey_cleanse(&old);
    masterkey_cleanse(&cur);
    for (int i = 0; i <= N; i++)
        pair_free(&keys[i]);
}

int main(void)
{
    srand((unsigned)time(NULL));
    unsetenv(MASTERKEY_ENV);
    if (mkdtemp(tmpdir) == NULL)
        return 1;
    test_ids();
    test_meta_x509();
    test_basic();
    test_history();
    test_wrong_keys_and_tampering();
    test_rotation();
    {
        char cmd[600];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            return 1;
    }
    return check_done();
}
