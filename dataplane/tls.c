/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS termination (tls.h): the front context, the ClientHello callback that selects the
 * certificate and policy, session tickets bound to the server name, and rotating ticket keys.
 *
 * Why the ClientHello callback and not the servername callback: it runs before OpenSSL picks the
 * protocol version and before it looks at a session to resume, so the host's minimum version, its
 * client-certificate policy and the session binding all apply to this very handshake.
 *
 * Why sessions are bound: tickets are encrypted with keys of the front context, which every host
 * shares, so by default a session made for host A resumes under SNI B - skipping B's
 * client-certificate check (h2o fixed the same class of bug upstream in 2023, GHSA-5v5r-rghf-rm6q;
 * 2.2.5 lacks it). Each connection gets a binding, SHA-256 of its normalized server name and its
 * host's policy digest. It is the SSL's session id context, which OpenSSL compares before resuming
 * under TLS 1.2 and 1.3, and it is stored in the ticket as application data and compared when the
 * ticket is decrypted, which refuses (and logs at debug level) a foreign ticket early.
 */
#include "tls.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <h2o.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/tls1.h>

#include "aegis/alloc.h"
#include "aegis/rconf.h"
#include "conn.h"
#include "gen.h"
#include "log.h"
#include "metrics.h"

/* Mozilla's "intermediate" configuration (ssl-config.mozilla.org, guidelines v5.7). */
#define CIPHERS_TLS12                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"       \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
#define CIPHERS_TLS13 "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define GROUPS "X25519:prime256v1:secp384r1"

/* Ticket keys: a new one every hour; tickets under the two before it are still accepted (and
 * renewed), so a ticket lives at most as long as the lifetime hint below. */
#define TICKET_ROTATE_S 3600
#define TICKET_KEYS 3
#define TICKET_LIFETIME_S (TICKET_ROTATE_S * (TICKET_KEYS - 1))

/* Unknown server names logged one by one; past this, only counted. */
#define UNKNOWN_LOGGED_MAX 1024
#define UNKNOWN_SLOTS 2048 /* a power of two, twice the maximum */

struct ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
};

struct dp_tls {
    pthread_mutex_t lock;
    struct ticket_key keys[TICKET_KEYS]; /* [0] encrypts; all decrypt */
    time_t current_since;
    char *unknown[UNKNOWN_SLOTS]; /* open addressing set of the names logged */
    size_t n_unknown;
    bool unknown_overflow;
    atomic_ulong unknown_count;
};

static int ctx_index = -1;
static pthread_once_t ctx_index_once = PTHREAD_ONCE_INIT;
/* Fetched once: OpenSSL 3 looks an algorithm up by name (locks, hash walks, strcmp) every time
 * EVP_sha256() or EVP_aes_256_cbc() is used to initialize a context, on every handshake. Kept for
 * the life of the process. */
static EVP_MD *sha256_md;
static EVP_CIPHER *ticket_cipher;

static void make_ctx_index(void)
{
    ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    ticket_cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
    if (sha256_md == NULL || ticket_cipher == NULL)
        abort(); /* the default provider lacks what TLS itself needs */
}

static void new_key(struct ticket_key *k)
{
    /* Without randomness there is no safe ticket key; nothing sensible can continue. */
    if (RAND_bytes((unsigned char *)k, (int)sizeof(*k)) != 1)
        abort();
}

struct dp_tls *dp_tls_new(void)
{
    struct dp_tls *t = aegis_calloc(1, sizeof(*t));

    pthread_once(&ctx_index_once, make_ctx_index);
    pthread_mutex_init(&t->lock, NULL);
    for (size_t i = 0; i < TICKET_KEYS; i++)
        new_key(&t->keys[i]);
    t->current_since = time(NULL);
    atomic_init(&t->unknown_count, 0);
    return t;
}

void dp_tls_free(struct dp_tls *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < UNKNOWN_SLOTS; i++)
        free(t->unknown[i]);
    OPENSSL_cleanse(t->keys, sizeof(t->keys));
    pthread_mutex_destroy(&t->lock);
    free(t);
}

unsigned long dp_tls_unknown_name_count(struct dp_tls *t)
{
    return atomic_load(&t->unknown_count);
}

/* ---- unknown names ---------------------------------------------------------------------------- */

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

/* Logs a handshake refused for lack of a certificate, once per name. */
static void note_unknown(struct dp_tls *t, const char *name)
{
    size_t i;
    bool log_it = false, log_overflow = false;

    atomic_fetch_add(&t->unknown_count, 1);
    pthread_mutex_lock(&t->lock);
    for (i = (size_t)name_hash(name) & (UNKNOWN_SLOTS - 1); t->unknown[i] != NULL;
         i = (i + 1) & (UNKNOWN_SLOTS - 1)) {
        if (strcmp(t->unknown[i], name) == 0)
            break;
    }
    if (t->unknown[i] == NULL) {
        if (t->n_unknown < UNKNOWN_LOGGED_MAX) {
            t->unknown[i] = aegis_strdup(name);
            t->n_unknown++;
            log_it = true;
        } else if (!t->unknown_overflow) {
            t->unknown_overflow = true;
            log_overflow = true;
        }
    }
    pthread_mutex_unlock(&t->lock);
    if (log_it)
        dp_log(DP_LOG_WARNING,
               "TLS handshake refused: no certificate for server name \"%s\" and no fallback "
               "(logged once per name)",
               name[0] ? name : "(none sent)");
    if (log_overflow)
        dp_log(DP_LOG_WARNING, "more than %d unknown server names: no longer logged one by one",
               UNKNOWN_LOGGED_MAX);
}

/* ---- the ClientHello ------------------------------------------------------------------------- */

/*
 * The host_name of the server_name extension (RFC 6066 3): 1 and the name, 0 when the extension is
 * absent, -1 when it is malformed.
 */
static int client_hello_sni(SSL *ssl, const unsigned char **name, size_t *len)
{
    const unsigned char *p;
    size_t n, list, nlen;

    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &n) != 1)
        return 0;
    if (n < 2)
        return -1;
    list = (size_t)p[0] << 8 | p[1];
    if (list + 2 != n || list < 3 || p[2] != TLSEXT_NAMETYPE_host_name)
        return -1;
    nlen = (size_t)p[3] << 8 | p[4];
    if (nlen == 0 || nlen + 3 > list)
        return -1;
    *name = p + 5;
    *len = nlen;
    return 1;
}

/* Replaces what should not reach a log line (controls, quotes, non-ASCII) by '?'. */
static void printable(char *s)
{
    for (; *s; s++) {
        if (*s < 0x21 || *s > 0x7e || *s == '"' || *s == '\\')
            *s = '?';
    }
}

static void binding_of(const char *sni, const unsigned char *policy, unsigned char out[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int n = 0;

    if (md == NULL || EVP_DigestInit_ex(md, sha256_md, NULL) != 1 ||
        EVP_DigestUpdate(md, sni, strlen(sni) + 1) != 1 || EVP_DigestUpdate(md, policy, 32) != 1 ||
        EVP_DigestFinal_ex(md, out, &n) != 1)
        abort();
    EVP_MD_CTX_free(md);
}

static int apply_client_auth(SSL *ssl, const struct rconf_client_auth *ca)
{
    STACK_OF(X509_NAME) * names;
    int mode = SSL_VERIFY_PEER;

    if (ca->mode == RCONF_CLIENT_AUTH_REQUIRE)
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_set_verify(ssl, mode, NULL);
    if (SSL_set1_verify_cert_store(ssl, ca->store) != 1)
        return -1;
    names = SSL_dup_CA_list(ca->ca_names);
    if (names == NULL)
        return -1;
    SSL_set_client_CA_list(ssl, names);
    return 0;
}

static int on_client_hello(SSL *ssl, int *al, void *arg)
{
    struct dp_tls *t = arg;
    struct dp_conn *c = dp_conn_of_ssl(ssl);
    const unsigned char *raw = NULL;
    struct rconf_sel sel;
    size_t raw_len = 0, n = 0;
    int has;

    if (c == NULL || c->gen == NULL) {
        dp_log(DP_LOG_ERROR, "TLS handshake without connection state: refused");
        *al = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    has = client_hello_sni(ssl, &raw, &raw_len);
    if (has < 0) {
        *al = SSL_AD_DECODE_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    c->sni[0] = '\0';
    if (has > 0) {
        n = rconf_name_normalize((const char *)raw, raw_len, c->sni, sizeof(c->sni));
        /* A name that does not fit is no name anything is configured for. */
        if (n == 0)
            snprintf(c->sni, sizeof(c->sni), "%.*s", raw_len > 64 ? 64 : (int)raw_len, raw);
    }
    if (rconf_select(c->gen->rc, c->sni, n, &sel) != 0) {
        printable(c->sni);
        note_unknown(t, c->sni);
        *al = SSL_AD_UNRECOGNIZED_NAME;
        return SSL_CLIENT_HELLO_ERROR;
    }
    if (SSL_use_cert_and_key(ssl, sel.cert->leaf, sel.cert->key, sel.cert->chain, 1) != 1 ||
        (sel.min_version == RCONF_TLS_1_3 && SSL_set_min_proto_version(ssl, TLS1_3_VERSION) != 1) ||
        (sel.client_auth != NULL && apply_client_auth(ssl, sel.client_auth) < 0)) {
        ERR_clear_error();
        dp_log(DP_LOG_ERROR, "TLS handshake for \"%s\": cannot apply the certificate or policy",
               c->sni);
        *al = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    binding_of(c->sni, sel.policy, c->binding);
    if (SSL_set_session_id_context(ssl, c->binding, sizeof(c->binding)) != 1) {
        *al = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    c->sel = sel;
    c->selected = true;
    c->ssl = ssl;
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* ---- session tickets -------------------------------------------------------------------------- */

/* Called with t->lock held: moves to a new encryption key when the current one is due. */
static void rotate_keys(struct dp_tls *t, time_t now)
{
    for (int step = 0; step < TICKET_KEYS && now - t->current_since >= TICKET_ROTATE_S; step++) {
        memmove(&t->keys[1], &t->keys[0], sizeof(t->keys[0]) * (TICKET_KEYS - 1));
        new_key(&t->keys[0]);
        t->current_since += TICKET_ROTATE_S;
    }
    /* After a long idle period every key was replaced; the clock restarts from now. */
    if (now - t->current_since >= TICKET_ROTATE_S)
        t->current_since = now;
}

static int ticket_key_cb(SSL *ssl, unsigned char key_name[16], unsigned char *iv,
                         EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    struct dp_tls *t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index);
    struct ticket_key k;
    OSSL_PARAM params[3];
    int found = -1, ok;

    pthread_mutex_lock(&t->lock);
    rotate_keys(t, time(NULL));
    if (enc) {
        found = 0;
    } else {
        for (int i = 0; i < TICKET_KEYS; i++) {
            if (memcmp(t->keys[i].name, key_name, sizeof(t->keys[i].name)) == 0)
                found = i;
        }
    }
    if (found >= 0)
        k = t->keys[found];
    pthread_mutex_unlock(&t->lock);
    if (found < 0)
        return 0; /* an unknown or retired key: a full handshake, and a new ticket */

    if (enc) {
        memcpy(key_name, k.name, sizeof(k.name));
        ok = RAND_bytes(iv, 16) == 1 &&
             EVP_EncryptInit_ex(cctx, ticket_cipher, NULL, k.aes, iv) == 1;
    } else {
        ok = EVP_DecryptInit_ex(cctx, ticket_cipher, NULL, k.aes, iv) == 1;
    }
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof(k.hmac));
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    ok = ok && EVP_MAC_CTX_set_params(hctx, params) == 1;
    OPENSSL_cleanse(&k, sizeof(k));
    if (!ok)
        return -1;
    /* 2 asks OpenSSL to issue a fresh ticket under the current key. */
    return enc || found == 0 ? 1 : 2;
}

static int ticket_generate(SSL *ssl, void *arg)
{
    struct dp_conn *c = dp_conn_of_ssl(ssl);
    SSL_SESSION *s = SSL_get0_session(ssl);

    (void)arg;
    /* Without a binding the ticket carries no application data and will never be accepted. */
    if (c != NULL && c->selected && s != NULL)
        return SSL_SESSION_set1_ticket_appdata(s, c->binding, sizeof(c->binding));
    return 1;
}

static SSL_TICKET_RETURN ticket_decrypted(SSL *ssl, SSL_SESSION *ss, const unsigned char *keyname,
                                          size_t keyname_len, SSL_TICKET_STATUS status, void *arg)
{
    struct dp_conn *c = dp_conn_of_ssl(ssl);
    void *data = NULL;
    size_t len = 0;

    (void)keyname;
    (void)keyname_len;
    (void)arg;
    switch (status) {
    case SSL_TICKET_SUCCESS:
    case SSL_TICKET_SUCCESS_RENEW:
        break;
    case SSL_TICKET_EMPTY:
    case SSL_TICKET_NO_DECRYPT:
        return SSL_TICKET_RETURN_IGNORE_RENEW;
    default:
        return SSL_TICKET_RETURN_ABORT;
    }
    if (c == NULL || !c->selected || SSL_SESSION_get0_ticket_appdata(ss, &data, &len) != 1 ||
        len != sizeof(c->binding) || memcmp(data, c->binding, len) != 0) {
        dp_log(DP_LOG_DEBUG, "session ticket for another server name or policy refused (\"%s\")",
               c != NULL ? c->sni : "");
        return SSL_TICKET_RETURN_IGNORE_RENEW;
    }
    return status == SSL_TICKET_SUCCESS ? SSL_TICKET_RETURN_USE : SSL_TICKET_RETURN_USE_RENEW;
}

/* ---- metrics ---------------------------------------------------------------------------------- */

/* The failure reason told by the fatal alert the server sends. */
static enum dp_tls_failure failure_of_alert(const SSL *ssl, int alert)
{
    switch (alert) {
    case SSL_AD_UNRECOGNIZED_NAME:
        return DP_TLS_FAIL_UNKNOWN_NAME;
    case SSL_AD_HANDSHAKE_FAILURE:
        /* TLS 1.2 says handshake_failure both for a missing client certificate and for no shared
         * cipher or group; the state tells them apart. */
        return SSL_get_state(ssl) == TLS_ST_SR_CERT ? DP_TLS_FAIL_CLIENT_CERT
                                                    : DP_TLS_FAIL_PROTOCOL;
    case SSL_AD_PROTOCOL_VERSION:
    case SSL_AD_INSUFFICIENT_SECURITY:
    case SSL_AD_NO_APPLICATION_PROTOCOL:
    case SSL_AD_ILLEGAL_PARAMETER:
    case SSL_AD_DECODE_ERROR:
    case SSL_AD_UNEXPECTED_MESSAGE:
    case SSL_AD_MISSING_EXTENSION:
    case SSL_AD_UNSUPPORTED_EXTENSION:
        return DP_TLS_FAIL_PROTOCOL;
    case SSL_AD_CERTIFICATE_REQUIRED:
    case SSL_AD_BAD_CERTIFICATE:
    case SSL_AD_UNSUPPORTED_CERTIFICATE:
    case SSL_AD_CERTIFICATE_REVOKED:
    case SSL_AD_CERTIFICATE_EXPIRED:
    case SSL_AD_CERTIFICATE_UNKNOWN:
    case SSL_AD_UNKNOWN_CA:
    case SSL_AD_ACCESS_DENIED:
        return DP_TLS_FAIL_CLIENT_CERT;
    default:
        return DP_TLS_FAIL_OTHER;
    }
}

/*
 * Counts completed handshakes and failed ones. A handshake fails on our side with a fatal alert
 * we send (the ClientHello callback's unrecognized_name, OpenSSL's protocol_version,
 * certificate_required, ...), or on the client's side with one it sends; a client that just
 * disconnects sends nothing and is not counted. h2o 2.2.5 reports the handshake's outcome to no
 * public callback, hence OpenSSL's info callback.
 */
static void on_info(const SSL *ssl, int where, int ret)
{
    if (where & SSL_CB_HANDSHAKE_DONE) {
        dp_metrics_tls_handshake();
        return;
    }
    if (!(where & SSL_CB_ALERT) || (ret >> 8) != SSL3_AL_FATAL || SSL_is_init_finished(ssl))
        return;
    if (where & SSL_CB_READ)
        dp_metrics_tls_failure(DP_TLS_FAIL_CLIENT_REFUSED);
    else
        dp_metrics_tls_failure(failure_of_alert(ssl, ret & 0xff));
}

/* ---- the front context ------------------------------------------------------------------------ */

int dp_tls_front_ctx_new(struct dp_tls *t, SSL_CTX **out, struct aegis_err *err)
{
    static const unsigned char default_sid_ctx[] = "aegis";
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    int r = 0;

    *out = NULL;
    if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, CIPHERS_TLS12) != 1 ||
        SSL_CTX_set_ciphersuites(ctx, CIPHERS_TLS13) != 1 ||
        SSL_CTX_set1_groups_list(ctx, GROUPS) != 1 || SSL_CTX_set_dh_auto(ctx, 1) != 1 ||
        SSL_CTX_set_session_id_context(ctx, default_sid_ctx, sizeof(default_sid_ctx) - 1) != 1 ||
        SSL_CTX_set_ex_data(ctx, ctx_index, t) != 1 ||
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb) != 1 ||
        SSL_CTX_set_session_ticket_cb(ctx, ticket_generate, ticket_decrypted, t) != 1) {
        unsigned long e = ERR_get_error();
        char buf[256];

        ERR_error_string_n(e, buf, sizeof(buf));
        ERR_clear_error();
        r = aegis_err_set(err, -AEGIS_E_CRYPTO, NULL, "cannot set up the TLS context: %s", buf);
        goto out;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* Mozilla's intermediate profile lets the client choose among the (all strong) suites. */
    SSL_CTX_clear_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Stateless tickets only: a server-side cache would be another way to resume across hosts. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_timeout(ctx, TICKET_LIFETIME_S);
    /* One ticket per TLS 1.3 handshake, not OpenSSL's two: a client resumes with one, and each
     * ticket costs an encryption, a MAC and a record on every new connection. */
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_client_hello_cb(ctx, on_client_hello, t);
    SSL_CTX_set_info_callback(ctx, on_info);
    h2o_ssl_register_alpn_protocols(ctx, h2o_alpn_protocols);
    *out = ctx;
    ctx = NULL;
out:
    SSL_CTX_free(ctx);
    return r;
}
