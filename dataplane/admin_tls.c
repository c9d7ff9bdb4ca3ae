/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Mutual TLS for the admin API (admin_tls.h) and the development PKI.
 */
#include "admin_tls.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "aegis/alloc.h"
#include "aegis/envelope.h"
#include "aegis/limits.h"
#include "aegis/pki.h"
#include "aegis/store.h"

#define DEV_DIR "admin-dev"
/* Validity of the development certificates. They are for development: nothing renews them;
 * removing <state>/admin-dev makes new ones at the next start. */
#define DEV_CA_DAYS 3650
#define DEV_LEAF_DAYS 825
#define DAY_S 86400
/* Backdating, for clocks slightly behind. */
#define DEV_BACKDATE_S 300

#define ENV_CERT "AEGIS_ADMIN_CERT_PEM"
#define ENV_KEY "AEGIS_ADMIN_KEY_PEM"
#define ENV_CA "AEGIS_ADMIN_CA_PEM"

/* Mozilla "intermediate" TLS 1.2 suites (forward secret, AEAD). */
#define ADMIN_CIPHERS_TLS12                                                                        \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* The PEM texts of one identity (owned; key cleansed on dispose). */
struct material {
    char *cert, *key, *ca;
    size_t cert_len, key_len, ca_len;
};

static void material_dispose(struct material *m)
{
    free(m->cert);
    pki_secret_free(m->key, m->key_len);
    free(m->ca);
    memset(m, 0, sizeof(*m));
}

static int read_pem_file(const char *path, char **out, size_t *len, struct aegis_err *err)
{
    struct stat st;
    char *buf = NULL;
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;

    *out = NULL;
    if (fd < 0)
        return aegis_err_set(err, -errno, path, "cannot open: %s", strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size > AEGIS_LIMIT_PEM_BYTES) {
        r = aegis_err_set(err, -AEGIS_E_INVALID, path, "not a regular file of at most %u bytes",
                          AEGIS_LIMIT_PEM_BYTES);
        goto out;
    }
    buf = aegis_malloc((size_t)st.st_size + 1);
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    buf = NULL;
out:
    pki_secret_free(buf, buf != NULL ? (size_t)st.st_size + 1 : 0);
    close(fd);
    return r;
}

/* From a file, else the environment variable; *out stays NULL when neither is set. */
static int load_one(const char *file, const char *env, char **out, size_t *len,
                    struct aegis_err *err)
{
    const char *v;

    *out = NULL;
    *len = 0;
    if (file != NULL)
        return read_pem_file(file, out, len, err);
    v = getenv(env);
    if (v == NULL || v[0] == '\0')
        return 0;
    if (strlen(v) > AEGIS_LIMIT_PEM_BYTES)
        return aegis_err_set(err, -AEGIS_E_LIMIT, env, "longer than %u bytes",
                             AEGIS_LIMIT_PEM_BYTES);
    *out = aegis_strdup(v);
    *len = strlen(v);
    return 0;
}

/* ---- the development PKI ----------------------------------------------------------------------- */

static char *dev_path(const struct dp_admin_tls_opts *o, const char *file)
{
    return aegis_asprintf("%s/%s/%s", o->state_dir, DEV_DIR, file);
}

static void dev_aad(const char *file, char *buf, size_t size)
{
    snprintf(buf, size, "aegis-dataplane/%s/%s", DEV_DIR, file);
}

static int write_sealed_key(const struct dp_admin_tls_opts *o, const char *file, EVP_PKEY *key,
                            struct aegis_err *err)
{
    const struct aegis_masterkey *mk = masterkey_ring_current(o->ring);
    char *pem = NULL, *path = dev_path(o, file), aad[128];
    unsigned char *env = NULL;
    size_t len = 0, elen = 0;
    int r;

    dev_aad(file, aad, sizeof(aad));
    r = pki_key_to_pem(key, &pem, &len, err);
    if (r == 0)
        r = envelope_seal(mk, aad, pem, len, &env, &elen, err);
    if (r == 0)
        r = store__write_file(path, env, elen, false, err);
    pki_secret_free(pem, len);
    free(env);
    free(path);
    return r;
}

static int read_sealed_key(const struct dp_admin_tls_opts *o, const char *file, char **pem,
                           size_t *len, struct aegis_err *err)
{
    char *path = dev_path(o, file), *raw = NULL, aad[128];
    unsigned char *pt = NULL;
    size_t rlen = 0, ptlen = 0;
    int r = read_pem_file(path, &raw, &rlen, err);

    *pem = NULL;
    dev_aad(file, aad, sizeof(aad));
    if (r == 0)
        r = envelope_open(o->ring, aad, (unsigned char *)raw, rlen, &pt, &ptlen, err);
    if (r == 0) {
        *pem = aegis_strndup((const char *)pt, ptlen);
        *len = ptlen;
    } else if (err != NULL && r != -ENOENT) {
        char msg[AEGIS_ERR_MSG_MAX + 64]; /* the message and a hint; aegis_err_set truncates */

        snprintf(msg, sizeof(msg), "%s (sealed with another master key?)", err->msg);
        aegis_err_set(err, r, path, "%s", msg);
    }
    envelope_free_plaintext(pt, ptlen);
    free(raw);
    free(path);
    return r;
}

static int write_cert(const struct dp_admin_tls_opts *o, const char *file, X509 *cert,
                      struct aegis_err *err)
{
    char *pem = NULL, *path = dev_path(o, file);
    size_t len = 0;
    int r = pki_cert_to_pem(cert, &pem, &len, err);

    if (r == 0)
        r = store__write_file(path, pem, len, false, err);
    free(pem);
    free(path);
    return r;
}

static int dev_issue(const struct dp_admin_tls_opts *o, const struct pki_cert_req *req, X509 *ca,
                     EVP_PKEY *ca_key, const char *name, X509 **cert_out, EVP_PKEY **key_out,
                     struct aegis_err *err)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    char file[64];
    int r = pki_key_generate(PKI_KEY_EC_P256, &key, err);

    if (r == 0)
        r = pki_sign(req, key, ca, ca != NULL ? ca_key : key, &cert, err);
    snprintf(file, sizeof(file), "%s.key", name);
    if (r == 0)
        r = write_sealed_key(o, file, key, err);
    snprintf(file, sizeof(file), "%s.pem", name);
    if (r == 0)
        r = write_cert(o, file, cert, err);
    if (r == 0 && cert_out != NULL) {
        *cert_out = cert;
        cert = NULL;
    }
    if (r == 0 && key_out != NULL) {
        *key_out = key;
        key = NULL;
    }
    X509_free(cert);
    EVP_PKEY_free(key);
    return r;
}

/* Makes the CA, node and controller certificates (first run). */
static int dev_create(const struct dp_admin_tls_opts *o, struct aegis_err *err)
{
    char host[256] = "localhost";
    char *dns[] = {"localhost", host};
    char *ips[] = {"127.0.0.1", "::1"};
    char *ctl[] = {DP_ADMIN_DEFAULT_SAN};
    int64_t now = (int64_t)time(NULL);
    struct pki_cert_req ca_req = {0}, node = {0}, client = {0};
    X509 *ca = NULL;
    EVP_PKEY *ca_key = NULL;
    char *dir = aegis_asprintf("%s/%s", o->state_dir, DEV_DIR);
    int r = store__mkdir_private(dir, err);

    free(dir);
    if (r < 0)
        return r;
    if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0' || strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "%s", "localhost.localdomain");
    host[sizeof(host) - 1] = '\0';

    ca_req.common_name = "Aegis dataplane admin development CA";
    ca_req.is_ca = true;
    ca_req.path_len = 0;
    ca_req.usages = PKI_USAGE(CERT_SIGN) | PKI_USAGE(CRL_SIGN) | PKI_USAGE(DIGITAL_SIGNATURE);
    ca_req.not_before = now - DEV_BACKDATE_S;
    ca_req.not_after = now + (int64_t)DEV_CA_DAYS * DAY_S;
    r = dev_issue(o, &ca_req, NULL, NULL, "ca", &ca, &ca_key, err);
    if (r < 0)
        goto out;

    node.common_name = "aegis-dataplane";
    node.dns = (struct pki_strs){dns, 2};
    node.ip = (struct pki_strs){ips, 2};
    node.usages = PKI_USAGE(DIGITAL_SIGNATURE) | PKI_USAGE(SERVER_AUTH);
    node.not_before = now - DEV_BACKDATE_S;
    node.not_after = now + (int64_t)DEV_LEAF_DAYS * DAY_S;
    r = dev_issue(o, &node, ca, ca_key, "node", NULL, NULL, err);
    if (r < 0)
        goto out;

    client.common_name = DP_ADMIN_DEFAULT_SAN;
    client.dns = (struct pki_strs){ctl, 1};
    client.usages = PKI_USAGE(DIGITAL_SIGNATURE) | PKI_USAGE(CLIENT_AUTH);
    client.not_before = now - DEV_BACKDATE_S;
    client.not_after = now + (int64_t)DEV_LEAF_DAYS * DAY_S;
    r = dev_issue(o, &client, ca, ca_key, "controller", NULL, NULL, err);
out:
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return r;
}

/* Loads the node identity (and the CA) of the development PKI, making it on first run. */
static int dev_load(const struct dp_admin_tls_opts *o, const char *leaf, struct material *m,
                    struct aegis_err *err)
{
    static const char *const files[] = {"ca.pem",   "ca.key",         "node.pem",
                                        "node.key", "controller.pem", "controller.key"};
    char *path, file[64];
    size_t present = 0;
    int r;

    if (o->ring == NULL || masterkey_ring_current(o->ring) == NULL)
        return aegis_err_set(err, -AEGIS_E_STATE, "--admin-dev", "no master key to seal with");
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        path = dev_path(o, files[i]);
        present += access(path, F_OK) == 0;
        free(path);
    }
    if (present == 0) {
        r = dev_create(o, err);
        if (r < 0)
            return r;
    } else if (present != sizeof(files) / sizeof(files[0])) {
        return aegis_err_set(err, -AEGIS_E_STATE, o->state_dir,
                             "the development PKI in %s/%s is incomplete; remove that directory "
                             "to make a new one",
                             o->state_dir, DEV_DIR);
    }
    path = dev_path(o, "ca.pem");
    r = read_pem_file(path, &m->ca, &m->ca_len, err);
    free(path);
    snprintf(file, sizeof(file), "%s.pem", leaf);
    path = dev_path(o, file);
    if (r == 0)
        r = read_pem_file(path, &m->cert, &m->cert_len, err);
    free(path);
    snprintf(file, sizeof(file), "%s.key", leaf);
    if (r == 0)
        r = read_sealed_key(o, file, &m->key, &m->key_len, err);
    return r;
}

static int write_plain(const char *dir, const char *file, const char *data, size_t len,
                       struct aegis_err *err)
{
    char *path = aegis_asprintf("%s/%s", dir, file);
    int r = store__write_file(path, data, len, true, err);

    free(path);
    return r;
}

int dp_admin_dev_export(const struct dp_admin_tls_opts *o, const char *dir, struct aegis_err *err)
{
    struct material m = {0};
    int r = dev_load(o, "controller", &m, err);

    if (r == 0)
        r = store__mkdir_private(dir, err);
    if (r == 0)
        r = write_plain(dir, "ca.pem", m.ca, m.ca_len, err);
    if (r == 0)
        r = write_plain(dir, "controller.pem", m.cert, m.cert_len, err);
    if (r == 0)
        r = write_plain(dir, "controller.key", m.key, m.key_len, err);
    material_dispose(&m);
    return r;
}

/* ---- the context ------------------------------------------------------------------------------- */

struct allowed {
    char names[DP_ADMIN_MAX_SANS][256];
    size_t n;
};

static int allowed_index = -1;
static pthread_once_t allowed_once = PTHREAD_ONCE_INIT;

static void free_allowed(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                         void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    free(ptr);
}

static void make_allowed_index(void)
{
    allowed_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_allowed);
}

/*
 * OpenSSL has verified the chain up to this certificate (ok); the leaf must also carry an allowed
 * DNS SAN. Wildcard SANs do not count and the subject CN is never looked at: the name is an
 * identity here, not a host to connect to.
 */
static int verify_cb(int ok, X509_STORE_CTX *x)
{
    SSL *ssl;
    const struct allowed *a;
    X509 *cert;

    if (!ok || X509_STORE_CTX_get_error_depth(x) != 0)
        return ok;
    ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    a = ssl != NULL ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), allowed_index) : NULL;
    cert = X509_STORE_CTX_get_current_cert(x);
    for (size_t i = 0; a != NULL && cert != NULL && i < a->n; i++) {
        if (X509_check_host(cert, a->names[i], 0,
                            X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_WILDCARDS,
                            NULL) == 1)
            return 1;
    }
    X509_STORE_CTX_set_error(x, X509_V_ERR_HOSTNAME_MISMATCH);
    return 0;
}

static int ssl_fail(struct aegis_err *err, const char *what)
{
    char buf[256];

    ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
    ERR_clear_error();
    return aegis_err_set(err, -AEGIS_E_CRYPTO, "admin TLS", "%s: %s", what, buf);
}

static int build_ctx(const struct dp_admin_tls_opts *o, const struct material *m, SSL_CTX **out,
                     struct aegis_err *err)
{
    STACK_OF(X509) *chain = NULL, *cas = NULL;
    EVP_PKEY *key = NULL;
    SSL_CTX *ctx = NULL;
    struct allowed *a = aegis_calloc(1, sizeof(*a));
    int r;

    r = pki_chain_from_pem(m->cert, m->cert_len, &chain, err);
    if (r == 0)
        r = pki_key_from_pem(m->key, m->key_len, &key, err);
    if (r == 0)
        r = pki_key_matches_cert(sk_X509_value(chain, 0), key, err);
    if (r == 0)
        r = pki_chain_from_pem(m->ca, m->ca_len, &cas, err);
    if (r < 0)
        goto out;
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        r = ssl_fail(err, "cannot create a context");
        goto out;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_set_cipher_list(ctx, ADMIN_CIPHERS_TLS12) != 1) {
        r = ssl_fail(err, "cipher list");
        goto out;
    }
    {
        X509 *leaf = sk_X509_shift(chain);
        int ok = SSL_CTX_use_cert_and_key(ctx, leaf, key, chain, 1);

        X509_free(leaf);
        if (ok != 1) {
            r = ssl_fail(err, "cannot use the admin certificate");
            goto out;
        }
    }
    for (int i = 0; i < sk_X509_num(cas); i++) {
        X509 *ca = sk_X509_value(cas, i);

        if (X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca) != 1 ||
            SSL_CTX_add_client_CA(ctx, ca) != 1) {
            r = ssl_fail(err, "cannot use the admin client CA");
            goto out;
        }
    }
    for (size_t i = 0; i < o->n_allowed_sans && i < DP_ADMIN_MAX_SANS; i++)
        snprintf(a->names[a->n++], sizeof(a->names[0]), "%s", o->allowed_sans[i]);
    if (a->n == 0)
        snprintf(a->names[a->n++], sizeof(a->names[0]), "%s", DP_ADMIN_DEFAULT_SAN);
    pthread_once(&allowed_once, make_allowed_index);
    if (allowed_index < 0 || SSL_CTX_set_ex_data(ctx, allowed_index, a) != 1) {
        r = ssl_fail(err, "cannot attach the allowed names");
        goto out;
    }
    a = NULL;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
    SSL_CTX_set_verify_depth(ctx, AEGIS_LIMIT_CHAIN_CERTS);
    *out = ctx;
    ctx = NULL;
out:
    free(a);
    SSL_CTX_free(ctx);
    pki_chain_free(chain);
    pki_chain_free(cas);
    EVP_PKEY_free(key);
    return r;
}

int dp_admin_tls_ctx_new(const struct dp_admin_tls_opts *o, SSL_CTX **out, struct aegis_err *err)
{
    struct material m = {0}, dev = {0};
    int r;

    *out = NULL;
    r = load_one(o->cert_file, ENV_CERT, &m.cert, &m.cert_len, err);
    if (r == 0)
        r = load_one(o->key_file, ENV_KEY, &m.key, &m.key_len, err);
    if (r == 0)
        r = load_one(o->ca_file, ENV_CA, &m.ca, &m.ca_len, err);
    if (r == 0 && (m.cert == NULL || m.key == NULL || m.ca == NULL)) {
        if (!o->dev) {
            r = aegis_err_set(err, -AEGIS_E_INVALID, "--admin-listen",
                              "mutual TLS needs a certificate, its key and a client CA: give "
                              "--admin-cert/--admin-key/--admin-ca (or %s/%s/%s), or --admin-dev",
                              ENV_CERT, ENV_KEY, ENV_CA);
            goto out;
        }
        r = dev_load(o, "node", &dev, err);
        if (r < 0)
            goto out;
        /* What was given explicitly wins over the development PKI, item by item. */
        if (m.cert == NULL) {
            m.cert = dev.cert;
            m.cert_len = dev.cert_len;
            dev.cert = NULL;
        }
        if (m.key == NULL) {
            m.key = dev.key;
            m.key_len = dev.key_len;
            dev.key = NULL;
        }
        if (m.ca == NULL) {
            m.ca = dev.ca;
            m.ca_len = dev.ca_len;
            dev.ca = NULL;
        }
    }
    if (r == 0)
        r = build_ctx(o, &m, out, err);
out:
    material_dispose(&m);
    material_dispose(&dev);
    return r;
}
