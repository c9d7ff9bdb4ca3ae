/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rendered configuration (rconf.h): jansson reads the document, then one pass walks it field
 * by field, checking each against the schema's rules and more (certificates parse and match their
 * keys, addresses parse, names are unique), collecting every problem with its path rather than
 * stopping at the first one. The result is an immutable snapshot with hash tables for the lookups
 * the dataplane does per handshake and per request (server name, Host, ACME token).
 */
#include "aegis/rconf.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "aegis/alloc.h"
#include "aegis/err.h"
#include "aegis/format.h"
#include "aegis/limits.h"
#include "aegis/net.h"
#include "aegis/pki.h"
#include "rconf_internal.h"

/* ---- the walk: paths and diagnostics ---------------------------------------------------------- */

#define PATH_MAX_BYTES 256

struct walk {
    struct aegis_diags *diags;
    char path[PATH_MAX_BYTES]; /* "hosts[2].tls.certificatePEM" */
    size_t len;
    struct rconf *rc;
    const struct rconf *prev;
    /* Reused for every key of the document; see key_from_pem. */
    OSSL_DECODER_CTX *keys;
    EVP_PKEY *decoded;
};

static size_t push_key(struct walk *w, const char *key)
{
    size_t old = w->len;
    int n = snprintf(w->path + w->len, sizeof(w->path) - w->len, "%s%s", w->len ? "." : "", key);

    if (n > 0)
        w->len += (size_t)n < sizeof(w->path) - w->len ? (size_t)n : sizeof(w->path) - w->len - 1;
    return old;
}

static size_t push_index(struct walk *w, size_t i)
{
    size_t old = w->len;
    int n = snprintf(w->path + w->len, sizeof(w->path) - w->len, "[%zu]", i);

    if (n > 0)
        w->len += (size_t)n < sizeof(w->path) - w->len ? (size_t)n : sizeof(w->path) - w->len - 1;
    return old;
}

static void pop(struct walk *w, size_t old)
{
    w->len = old;
    w->path[old] = '\0';
}

static void report(struct walk *w, enum aegis_severity sev, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void report(struct walk *w, enum aegis_severity sev, const char *fmt, va_list ap)
{
    struct aegis_diag_loc loc;

    memset(&loc, 0, sizeof(loc));
    loc.path = w->len ? w->path : NULL;
    aegis_diags_vadd(w->diags, sev, &loc, fmt, ap);
}

static void error(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void error(struct walk *w, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    report(w, AEGIS_SEV_ERROR, fmt, ap);
    va_end(ap);
}

static void warn(struct walk *w, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    report(w, AEGIS_SEV_WARNING, fmt, ap);
    va_end(ap);
}

/* An error about member key of the current object. */
static void error_at(struct walk *w, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void error_at(struct walk *w, const char *key, const char *fmt, ...)
{
    size_t old = push_key(w, key);
    va_list ap;

    va_start(ap, fmt);
    report(w, AEGIS_SEV_ERROR, fmt, ap);
    va_end(ap);
    pop(w, old);
}

/* ---- typed members ---------------------------------------------------------------------------- */

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number with a fraction";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "a value";
}

/* Reports every member of obj not in keys (NULL-terminated), with a suggestion for typos. */
static void check_keys(struct walk *w, json_t *obj, const char *const *keys)
{
    const char *key;
    json_t *v;
    size_t n = 0;

    while (keys[n] != NULL)
        n++;
    json_object_foreach(obj, key, v)
    {
        const char *near;
        size_t i;

        for (i = 0; i < n; i++) {
            if (strcmp(key, keys[i]) == 0)
                break;
        }
        if (i < n)
            continue;
        near = aegis_suggest(key, keys, n);
        if (near != NULL)
            error_at(w, key, "unknown field; did you mean \"%s\"?", near);
        else
            error_at(w, key, "unknown field");
    }
}

/* The member key of obj when it has type type; NULL when absent (reported when required). */
static json_t *member(struct walk *w, json_t *obj, const char *key, json_type type, bool required)
{
    json_t *v = json_object_get(obj, key);
    static const char *const want[] = {
        [JSON_OBJECT] = "an object",   [JSON_ARRAY] = "an array", [JSON_STRING] = "a string",
        [JSON_INTEGER] = "an integer", [JSON_REAL] = "a number",  [JSON_TRUE] = "a boolean",
        [JSON_FALSE] = "a boolean",    [JSON_NULL] = "null",
    };

    if (v == NULL) {
        if (required)
            error_at(w, key, "required field is missing");
        return NULL;
    }
    if (json_typeof(v) == type || (type == JSON_TRUE && json_is_boolean(v)))
        return v;
    error_at(w, key, "must be %s, not %s", want[type], type_name(v));
    return NULL;
}

/* A string member of at most max bytes without NUL bytes; *s stays unchanged when absent. */
static bool str_member(struct walk *w, json_t *obj, const char *key, bool required, size_t max,
                       const char **s, size_t *len)
{
    json_t *v = member(w, obj, key, JSON_STRING, required);
    size_t n;

    if (v == NULL)
        return false;
    n = json_string_length(v);
    if (n > max) {
        error_at(w, key, "is %zu bytes long; the limit is %zu", n, max);
        return false;
    }
    if (strlen(json_string_value(v)) != n) {
        error_at(w, key, "contains a NUL character");
        return false;
    }
    *s = json_string_value(v);
    if (len != NULL)
        *len = n;
    return true;
}

/* A string member checked against a named format. */
static bool fmt_member(struct walk *w, json_t *obj, const char *key, bool required,
                       enum aegis_format f, size_t max, const char **s, size_t *len)
{
    const char *v = NULL, *why = NULL;
    size_t n = 0;

    if (!str_member(w, obj, key, required, max, &v, &n))
        return false;
    if (!aegis_format_check(f, v, n, &why)) {
        error_at(w, key, "\"%.*s\" is not %s%s%s", n > 100 ? 100 : (int)n, v, aegis_format_what(f),
                 why ? ": " : "", why ? why : "");
        return false;
    }
    *s = v;
    if (len != NULL)
        *len = n;
    return true;
}

static bool int_member(struct walk *w, json_t *obj, const char *key, bool required, int64_t lo,
                       int64_t hi, int64_t *out)
{
    json_t *v = member(w, obj, key, JSON_INTEGER, required);
    int64_t x;

    if (v == NULL)
        return false;
    x = (int64_t)json_integer_value(v);
    if (x < lo || x > hi) {
        error_at(w, key, "%lld is out of range [%lld, %lld]", (long long)x, (long long)lo,
                 (long long)hi);
        return false;
    }
    *out = x;
    return true;
}

static bool bool_member(struct walk *w, json_t *obj, const char *key, bool *out)
{
    json_t *v = member(w, obj, key, JSON_TRUE, false);

    if (v == NULL)
        return false;
    *out = json_is_true(v);
    return true;
}

/* An enum member: the index of its value in names (NULL-terminated); *out unchanged if absent. */
static bool enum_member(struct walk *w, json_t *obj, const char *key, const char *const *names,
                        int *out)
{
    const char *s = NULL;
    char list[128] = "";
    size_t used = 0;

    if (!str_member(w, obj, key, false, 64, &s, NULL))
        return false;
    for (int i = 0; names[i] != NULL; i++) {
        int n;

        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return true;
        }
        n = snprintf(list + used, sizeof(list) - used, "%s\"%s\"", i ? ", " : "", names[i]);
        if (n > 0 && (size_t)n < sizeof(list) - used)
            used += (size_t)n;
    }
    error_at(w, key, "\"%.64s\" is not one of %s", s, list);
    return false;
}

static char *lower_dup(const char *s, size_t len)
{
    char *d = aegis_strndup(s, len);

    for (size_t i = 0; i < len; i++) {
        if (d[i] >= 'A' && d[i] <= 'Z')
            d[i] = (char)(d[i] - 'A' + 'a');
    }
    return d;
}

/* ---- certificates ----------------------------------------------------------------------------- */

static void cert_free(struct rconf_cert *c)
{
    if (c == NULL)
        return;
    X509_free(c->leaf);
    pki_chain_free(c->chain);
    EVP_PKEY_free(c->key);
    for (size_t i = 0; i < c->n_dns_names; i++)
        free(c->dns_names[i]);
    free(c->dns_names);
    free(c);
}

static struct rconf_cert *cert_ref(struct rconf_cert *c)
{
    atomic_fetch_add_explicit(&c->refs_, 1, memory_order_relaxed);
    return c;
}

static void cert_unref(struct rconf_cert *c)
{
    if (c != NULL && atomic_fetch_sub_explicit(&c->refs_, 1, memory_order_acq_rel) == 1)
        cert_free(c);
}

static void pair_digest(const char *cert, size_t cert_len, const char *key, size_t key_len,
                        unsigned char out[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint64_t n = cert_len;
    unsigned int outlen = 0;

    /* The length prefix keeps ("ab", "c") and ("a", "bc") apart. */
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(md, &n, sizeof(n)) != 1 || EVP_DigestUpdate(md, cert, cert_len) != 1 ||
        EVP_DigestUpdate(md, key, key_len) != 1 || EVP_DigestFinal_ex(md, out, &outlen) != 1)
        abort(); /* SHA-256 in memory cannot fail short of memory exhaustion */
    EVP_MD_CTX_free(md);
}

static void collect_dns_names(struct rconf_cert *c)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(c->leaf, NID_subject_alt_name, NULL, NULL);
    size_t cap = 0;
    int n = gens ? sk_GENERAL_NAME_num(gens) : 0;

    for (int i = 0; i < n && c->n_dns_names < AEGIS_LIMIT_SANS; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        const unsigned char *d;
        int len;

        if (g->type != GEN_DNS)
            continue;
        d = ASN1_STRING_get0_data(g->d.dNSName);
        len = ASN1_STRING_length(g->d.dNSName);
        if (len <= 0 || len > 253 || memchr(d, '\0', (size_t)len) != NULL)
            continue;
        aegis_grow((void **)&c->dns_names, &cap, c->n_dns_names + 1, sizeof(*c->dns_names));
        c->dns_names[c->n_dns_names++] = lower_dup((const char *)d, (size_t)len);
    }
    GENERAL_NAMES_free(gens);
    ERR_clear_error();
}

static int refuse_passphrase(char *pass, size_t size, size_t *len, const OSSL_PARAM *params,
                             void *arg)
{
    (void)pass;
    (void)size;
    (void)params;
    (void)arg;
    *len = 0;
    return 0;
}

/*
 * Reads a private key. OpenSSL 3.0 builds a decoder context for every PEM_read_bio_PrivateKey,
 * which costs about 0.4 ms - four seconds for 10,000 hosts - while decoding with one context kept
 * for the whole document costs a tenth of that. The shared context takes plain keys of any type;
 * whatever it does not decode (an encrypted key, a key after other blocks, garbage) goes through
 * pki_key_from_pem, which gives the exact answer and message.
 */
static int key_from_pem(struct walk *w, const char *pem, size_t len, EVP_PKEY **key,
                        struct aegis_err *err)
{
    const unsigned char *p = (const unsigned char *)pem;
    size_t left = len;

    *key = NULL;
    if (w->keys == NULL) {
        w->keys = OSSL_DECODER_CTX_new_for_pkey(&w->decoded, "PEM", NULL, NULL,
                                                OSSL_KEYMGMT_SELECT_KEYPAIR, NULL, NULL);
        if (w->keys != NULL)
            OSSL_DECODER_CTX_set_passphrase_cb(w->keys, refuse_passphrase, NULL);
    }
    w->decoded = NULL;
    if (w->keys != NULL && len <= AEGIS_LIMIT_PEM_BYTES &&
        memmem(pem, len, "ENCRYPTED", 9) == NULL &&
        OSSL_DECODER_from_data(w->keys, &p, &left) == 1 && w->decoded != NULL) {
        *key = w->decoded;
        w->decoded = NULL;
        return 0;
    }
    EVP_PKEY_free(w->decoded);
    w->decoded = NULL;
    ERR_clear_error();
    return pki_key_from_pem(pem, len, key, err);
}

/* Parses a chain and key that were not seen before; NULL after reporting at cert_key/key_key. */
static struct rconf_cert *cert_parse(struct walk *w, const char *cert_key, const char *cert_pem,
                                     size_t cert_len, const char *key_key, const char *key_pem,
                                     size_t key_len)
{
    struct rconf_cert *c = aegis_calloc(1, sizeof(*c));
    struct aegis_err err;
    bool ok = true;

    atomic_init(&c->refs_, 1);
    memset(&err, 0, sizeof(err));
    if (pki_chain_from_pem(cert_pem, cert_len, &c->chain, &err) < 0) {
        error_at(w, cert_key, "%s", err.msg);
        ok = false;
    } else {
        c->leaf = sk_X509_shift(c->chain);
    }
    if (key_from_pem(w, key_pem, key_len, &c->key, &err) < 0) {
        error_at(w, key_key, "%s", err.msg);
        ok = false;
    }
    if (ok && pki_key_matches_cert(c->leaf, c->key, &err) < 0) {
        error_at(w, key_key, "%s", err.msg);
        ok = false;
    }
    if (ok && (pki_fingerprint_sha256(c->leaf, c->fingerprint) < 0 ||
               pki_serial_hex(c->leaf, c->serial) < 0 ||
               pki_cert_validity(c->leaf, &c->not_before, &c->not_after) < 0)) {
        error_at(w, cert_key, "the certificate's fingerprint, serial or validity cannot be read");
        ok = false;
    }
    if (!ok) {
        cert_free(c);
        return NULL;
    }
    collect_dns_names(c);
    return c;
}

/*
 * Reads the members cert_key and key_key of obj as a certificate chain and its key. Both absent:
 * NULL without an error (unless required); one without the other is an error. An identical pair
 * seen earlier in this document or in the previous snapshot is shared, not parsed again. Returns a
 * new reference.
 */
static struct rconf_cert *pair_member(struct walk *w, json_t *obj, const char *cert_key,
                                      const char *key_key, bool required)
{
    const char *cert = NULL, *key = NULL;
    size_t cert_len = 0, key_len = 0;
    bool has_cert = json_object_get(obj, cert_key) != NULL;
    bool has_key = json_object_get(obj, key_key) != NULL;
    unsigned char digest[32];
    struct rconf_cert *c;

    if (!has_cert && !has_key && !required)
        return NULL;
    /* Both are read before giving up, so that both get reported. */
    has_cert = str_member(w, obj, cert_key, true, AEGIS_LIMIT_PEM_BYTES, &cert, &cert_len);
    has_key = str_member(w, obj, key_key, true, AEGIS_LIMIT_PEM_BYTES, &key, &key_len);
    if (!has_cert || !has_key)
        return NULL;
    pair_digest(cert, cert_len, key, key_len, digest);
    c = rconf__table_get(&w->rc->index_->certs, digest, sizeof(digest));
    if (c == NULL && w->prev != NULL)
        c = rconf__table_get(&w->prev->index_->certs, digest, sizeof(digest));
    if (c != NULL) {
        cert_ref(c);
    } else {
        c = cert_parse(w, cert_key, cert, cert_len, key_key, key, key_len);
        if (c == NULL)
            return NULL;
        memcpy(c->digest, digest, sizeof(digest));
    }
    rconf__table_put(&w->rc->index_->certs, c->digest, sizeof(c->digest), c);
    return c;
}

/* Whether hostname (possibly "*.x") is covered by a SAN of c. */
static bool cert_covers(const struct rconf_cert *c, const char *hostname)
{
    const char *dot = strchr(hostname, '.');

    for (size_t i = 0; i < c->n_dns_names; i++) {
        const char *san = c->dns_names[i];

        if (strcmp(san, hostname) == 0)
            return true;
        if (san[0] == '*' && san[1] == '.' && dot != NULL && hostname[0] != '*' &&
            strcmp(san + 1, dot) == 0)
            return true;
    }
    return false;
}

/* ---- listeners -------------------------------------------------------------------------------- */

static bool parse_address(const char *s, size_t len, struct rconf_listener *l)
{
    return aegis_net_parse_addr(s, len, &l->addr, &l->addr_len) == 0;
}

static uint16_t listener_port(const struct rconf_listener *l)
{
    if (l->addr.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&l->addr)->sin6_port);
    return ntohs(((const struct sockaddr_in *)&l->addr)->sin_port);
}

static void parse_listener_list(struct walk *w, json_t *obj, const char *key,
                                struct rconf_listener **out, size_t *n, struct rconf_table *seen)
{
    json_t *arr = member(w, obj, key, JSON_ARRAY, false);
    size_t old, i;
    json_t *v;

    if (arr == NULL)
        return;
    old = push_key(w, key);
    if (json_array_size(arr) > AEGIS_LIMIT_RCONF_LISTENERS) {
        error(w, "%zu addresses; the limit is %d", json_array_size(arr),
              AEGIS_LIMIT_RCONF_LISTENERS);
        pop(w, old);
        return;
    }
    *out = aegis_calloc(json_array_size(arr) + 1, sizeof(**out));
    json_array_foreach(arr, i, v)
    {
        size_t at = push_index(w, i);
        struct rconf_listener *l = &(*out)[*n];
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        const char *first;

        if (!json_is_string(v)) {
            error(w, "must be a string, not %s", type_name(v));
        } else if (!parse_address(s, len, l)) {
            error(w,
                  "\"%.64s\" is not an address and port such as \"0.0.0.0:443\" or "
                  "\"[::]:443\"",
                  s);
        } else {
            l->text = aegis_strndup(s, len);
            first = rconf__table_put(seen, &l->addr, sizeof(l->addr), l->text);
            if (first != NULL)
                error(w, "\"%s\" is listed twice", l->text);
            (*n)++;
        }
        pop(w, at);
    }
    pop(w, old);
}

static void parse_listeners(struct walk *w, json_t *root)
{
    static const char *const keys[] = {"http", "https", NULL};
    json_t *obj = member(w, root, "listeners", JSON_OBJECT, true);
    struct rconf_table seen = {NULL, 0, 0};
    size_t old;

    if (obj == NULL)
        return;
    old = push_key(w, "listeners");
    check_keys(w, obj, keys);
    parse_listener_list(w, obj, "http", &w->rc->http, &w->rc->n_http, &seen);
    parse_listener_list(w, obj, "https", &w->rc->https, &w->rc->n_https, &seen);
    /* json_array_size is 0 for a missing or mistyped member, which is reported above. */
    if (json_array_size(json_object_get(obj, "http")) == 0 &&
        json_array_size(json_object_get(obj, "https")) == 0)
        error(w, "no address to listen on: give at least one http or https address");
    rconf__table_dispose(&seen);
    pop(w, old);
}

/* ---- hosts ------------------------------------------------------------------------------------ */

static void policy_digest(enum rconf_tls_version min, enum rconf_client_auth_mode mode,
                          STACK_OF(X509) * cas, unsigned char out[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char head[] = {
        'a', 'e', 'g', 'i', 's', 'p', '1', (unsigned char)min, (unsigned char)mode};
    unsigned int outlen = 0;

    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(md, head, sizeof(head)) != 1)
        abort();
    for (int i = 0; cas != NULL && i < sk_X509_num(cas); i++) {
        unsigned char fp[EVP_MAX_MD_SIZE];
        unsigned int n = 0;

        if (X509_digest(sk_X509_value(cas, i), EVP_sha256(), fp, &n) != 1 ||
            EVP_DigestUpdate(md, fp, n) != 1)
            abort();
    }
    if (EVP_DigestFinal_ex(md, out, &outlen) != 1)
        abort();
    EVP_MD_CTX_free(md);
}

static void parse_client_auth(struct walk *w, json_t *tls, struct rconf_host *h,
                              STACK_OF(X509) * *cas)
{
    static const char *const keys[] = {"mode", "caPEM", NULL};
    static const char *const modes[] = {"none", "optional", "require", NULL};
    json_t *obj = member(w, tls, "clientAuth", JSON_OBJECT, false);
    const char *pem = NULL;
    size_t len = 0, old;
    int mode = RCONF_CLIENT_AUTH_NONE;
    struct aegis_err err;

    if (obj == NULL)
        return;
    old = push_key(w, "clientAuth");
    check_keys(w, obj, keys);
    enum_member(w, obj, "mode", modes, &mode);
    h->client_auth.mode = (enum rconf_client_auth_mode)mode;
    if (str_member(w, obj, "caPEM", false, AEGIS_LIMIT_PEM_BYTES, &pem, &len)) {
        memset(&err, 0, sizeof(err));
        if (mode == RCONF_CLIENT_AUTH_NONE) {
            size_t at = push_key(w, "caPEM");

            warn(w, "ignored: mode is \"none\"");
            pop(w, at);
        } else if (pki_chain_from_pem(pem, len, cas, &err) < 0) {
            error_at(w, "caPEM", "%s", err.msg);
        } else {
            h->client_auth.store = X509_STORE_new();
            h->client_auth.ca_names = sk_X509_NAME_new_null();
            if (h->client_auth.store == NULL || h->client_auth.ca_names == NULL)
                abort();
            for (int i = 0; i < sk_X509_num(*cas); i++) {
                X509 *ca = sk_X509_value(*cas, i);
                X509_NAME *name = X509_NAME_dup(X509_get_subject_name(ca));

                if (X509_STORE_add_cert(h->client_auth.store, ca) != 1 || name == NULL ||
                    sk_X509_NAME_push(h->client_auth.ca_names, name) <= 0)
                    abort();
            }
        }
    } else if (mode != RCONF_CLIENT_AUTH_NONE && json_object_get(obj, "caPEM") == NULL) {
        error_at(w, "caPEM", "required when mode is \"%s\"", modes[mode]);
    }
    pop(w, old);
}

static void parse_tls(struct walk *w, json_t *hobj, struct rconf_host *h)
{
    static const char *const keys[] = {"certificatePEM", "privateKeyPEM", "minVersion",
                                       "clientAuth", NULL};
    static const char *const versions[] = {"1.2", "1.3", NULL};
    json_t *obj = member(w, hobj, "tls", JSON_OBJECT, false);
    STACK_OF(X509) *cas = NULL;
    int version = RCONF_TLS_1_2;
    size_t old;

    if (obj == NULL)
        return;
    h->tls = true;
    old = push_key(w, "tls");
    check_keys(w, obj, keys);
    h->cert = pair_member(w, obj, "certificatePEM", "privateKeyPEM", false);
    enum_member(w, obj, "minVersion", versions, &version);
    h->min_version = (enum rconf_tls_version)version;
    parse_client_auth(w, obj, h, &cas);
    policy_digest(h->min_version, h->client_auth.mode, cas, h->policy);
    pki_chain_free(cas);
    if (h->cert != NULL) {
        for (size_t i = 0; i < h->n_hostnames; i++) {
            if (!cert_covers(h->cert, h->hostnames[i])) {
                size_t at = push_key(w, "certificatePEM");

                warn(w,
                     "the certificate does not cover the hostname \"%s\"; clients will "
                     "refuse it",
                     h->hostnames[i]);
                pop(w, at);
            }
        }
    }
    pop(w, old);
}

static void parse_hsts(struct walk *w, json_t *hobj, struct rconf_host *h)
{
    static const char *const keys[] = {"enabled", "maxAge", "includeSubdomains", "preload", NULL};
    json_t *obj = member(w, hobj, "hsts", JSON_OBJECT, false);
    size_t old;

    if (obj == NULL)
        return;
    old = push_key(w, "hsts");
    check_keys(w, obj, keys);
    h->hsts.enabled = true;
    h->hsts.max_age = 31536000;
    bool_member(w, obj, "enabled", &h->hsts.enabled);
    int_member(w, obj, "maxAge", false, 0, 315360000, &h->hsts.max_age);
    bool_member(w, obj, "includeSubdomains", &h->hsts.include_subdomains);
    bool_member(w, obj, "preload", &h->hsts.preload);
    if (h->hsts.enabled && h->hsts.preload &&
        (!h->hsts.include_subdomains || h->hsts.max_age < 31536000))
        warn(w, "preload lists require includeSubdomains and a maxAge of at least 31536000");
    if (h->hsts.enabled && !h->tls)
        warn(w, "never sent: the host has no tls");
    pop(w, old);
}

static bool split_url(const char *url, size_t len, struct rconf_upstream *u)
{
    const char *p = url, *end = url + len, *auth, *slash;
    const char *host, *host_end, *port = NULL;
    unsigned long portno;

    if (len >= 8 && memcmp(p, "https://", 8) == 0) {
        u->tls = true;
        auth = p + 8;
    } else if (len >= 7 && memcmp(p, "http://", 7) == 0) {
        auth = p + 7;
    } else {
        return false;
    }
    slash = memchr(auth, '/', (size_t)(end - auth));
    if (slash == NULL)
        slash = end;
    if (*auth == '[') {
        char buf[64];
        struct in6_addr a6;

        host = auth + 1;
        host_end = memchr(host, ']', (size_t)(slash - host));
        if (host_end == NULL || (size_t)(host_end - host) >= sizeof(buf))
            return false;
        memcpy(buf, host, (size_t)(host_end - host));
        buf[host_end - host] = '\0';
        if (inet_pton(AF_INET6, buf, &a6) != 1)
            return false;
        if (host_end + 1 < slash)
            port = host_end + 2;
    } else {
        host = auth;
        host_end = memchr(auth, ':', (size_t)(slash - auth));
        if (host_end != NULL)
            port = host_end + 1;
        else
            host_end = slash;
    }
    if (host_end == host)
        return false;
    portno = u->tls ? 443 : 80;
    if (port != NULL) {
        char buf[8];

        if (slash - port <= 0 || slash - port >= (long)sizeof(buf))
            return false;
        memcpy(buf, port, (size_t)(slash - port));
        buf[slash - port] = '\0';
        portno = strtoul(buf, NULL, 10);
        if (portno == 0 || portno > 65535)
            return false;
    }
    u->host = aegis_strndup(host, (size_t)(host_end - host));
    u->port = (uint16_t)portno;
    u->path = slash < end ? aegis_strndup(slash, (size_t)(end - slash)) : aegis_strdup("/");
    return true;
}

static void parse_upstreams(struct walk *w, json_t *hobj, struct rconf_host *h)
{
    static const char *const keys[] = {"url", "weight", NULL};
    json_t *arr = member(w, hobj, "upstreams", JSON_ARRAY, true);
    size_t old, i;
    json_t *v;

    if (arr == NULL)
        return;
    old = push_key(w, "upstreams");
    if (json_array_size(arr) == 0 || json_array_size(arr) > AEGIS_LIMIT_RCONF_UPSTREAMS) {
        error(w, "%zu upstreams; give 1 to %d", json_array_size(arr), AEGIS_LIMIT_RCONF_UPSTREAMS);
        pop(w, old);
        return;
    }
    h->upstreams = aegis_calloc(json_array_size(arr), sizeof(*h->upstreams));
    json_array_foreach(arr, i, v)
    {
        size_t at = push_index(w, i);
        struct rconf_upstream *u = &h->upstreams[h->n_upstreams];
        const char *url = NULL;
        size_t len = 0;
        int64_t weight = 1;

        if (!json_is_object(v)) {
            error(w, "must be an object, not %s", type_name(v));
            pop(w, at);
            continue;
        }
        check_keys(w, v, keys);
        int_member(w, v, "weight", false, 1, 1000, &weight);
        if (fmt_member(w, v, "url", true, AEGIS_FMT_URL, 2048, &url, &len)) {
            if (split_url(url, len, u)) {
                u->url = aegis_strndup(url, len);
                u->weight = (unsigned)weight;
                h->n_upstreams++;
            } else {
                free(u->host);
                free(u->path);
                memset(u, 0, sizeof(*u));
                error_at(w, "url", "\"%.100s\" does not parse as http://host[:port][/path]", url);
            }
        }
        pop(w, at);
    }
    pop(w, old);
}

static void parse_health_check(struct walk *w, json_t *hobj, struct rconf_host *h)
{
    static const char *const keys[] = {
        "path", "intervalMs", "timeoutMs", "healthyThreshold", "unhealthyThreshold", NULL};
    json_t *obj = member(w, hobj, "healthCheck", JSON_OBJECT, false);
    struct rconf_health_check *hc = &h->health_check;
    const char *path = "/healthz";
    int64_t healthy = 2, unhealthy = 3;
    size_t old;

    if (obj == NULL)
        return;
    old = push_key(w, "healthCheck");
    check_keys(w, obj, keys);
    hc->enabled = true;
    hc->interval_ms = 10000;
    hc->timeout_ms = 2000;
    fmt_member(w, obj, "path", false, AEGIS_FMT_URL_PATH, 2048, &path, NULL);
    hc->path = aegis_strdup(path);
    int_member(w, obj, "intervalMs", false, 100, 86400000, &hc->interval_ms);
    int_member(w, obj, "timeoutMs", false, 10, 3600000, &hc->timeout_ms);
    int_member(w, obj, "healthyThreshold", false, 1, 100, &healthy);
    int_member(w, obj, "unhealthyThreshold", false, 1, 100, &unhealthy);
    hc->healthy_threshold = (unsigned)healthy;
    hc->unhealthy_threshold = (unsigned)unhealthy;
    pop(w, old);
}

static void parse_upstream_tls(struct walk *w, json_t *hobj, struct rconf_host *h)
{
    static const char *const keys[] = {"clientCertPEM",      "clientKeyPEM", "caPEM",
                                       "insecureSkipVerify", "serverName",   NULL};
    json_t *obj = member(w, hobj, "upstreamTLS", JSON_OBJECT, false);
    struct rconf_upstream_tls *t = &h->upstream_tls;
    const char *pem = NULL, *name = NULL;
    size_t len = 0, old;
    struct aegis_err err;
    bool any_tls = false;

    if (obj == NULL)
        return;
    old = push_key(w, "upstreamTLS");
    check_keys(w, obj, keys);
    t->enabled = true;
    t->client = pair_member(w, obj, "clientCertPEM", "clientKeyPEM", false);
    bool_member(w, obj, "insecureSkipVerify", &t->insecure_skip_verify);
    if (str_member(w, obj, "caPEM", false, AEGIS_LIMIT_PEM_BYTES, &pem, &len)) {
        memset(&err, 0, sizeof(err));
        if (t->insecure_skip_verify)
            error_at(w, "caPEM", "cannot be combined with insecureSkipVerify");
        else if (pki_chain_from_pem(pem, len, &t->ca, &err) < 0)
            error_at(w, "caPEM", "%s", err.msg);
    }
    if (fmt_member(w, obj, "serverName", false, AEGIS_FMT_HOSTNAME, 253, &name, &len))
        t->server_name = lower_dup(name, len);
    if (t->insecure_skip_verify) {
        size_t at = push_key(w, "insecureSkipVerify");

        warn(w, "the upstreams' certificates are not verified: anyone on the path can "
                "impersonate them (development only)");
        pop(w, at);
    }
    for (size_t i = 0; i < h->n_upstreams; i++)
        any_tls |= h->upstreams[i].tls;
    if (!any_tls && h->n_upstreams > 0)
        warn(w, "unused: no upstream URL is https://");
    pop(w, old);
}

static void parse_timeouts(struct walk *w, json_t *hobj, struct rconf_host *h)
{
    static const char *const keys[] = {"connectMs", "readMs", NULL};
    json_t *obj = member(w, hobj, "timeouts", JSON_OBJECT, false);
    size_t old;

    if (obj == NULL)
        return;
    old = push_key(w, "timeouts");
    check_keys(w, obj, keys);
    int_member(w, obj, "connectMs", false, 1, 3600000, &h->connect_timeout_ms);
    int_member(w, obj, "readMs", false, 1, 86400000, &h->read_timeout_ms);
    pop(w, old);
}

static void parse_hostnames(struct walk *w, json_t *hobj, struct rconf_host *h)
{
    json_t *arr = member(w, hobj, "hostnames", JSON_ARRAY, true);
    struct rconf_table *names = &w->rc->index_->host_names;
    size_t old, i;
    json_t *v;

    if (arr == NULL)
        return;
    old = push_key(w, "hostnames");
    if (json_array_size(arr) == 0 || json_array_size(arr) > AEGIS_LIMIT_RCONF_HOSTNAMES) {
        error(w, "%zu hostnames; give 1 to %d", json_array_size(arr), AEGIS_LIMIT_RCONF_HOSTNAMES);
        pop(w, old);
        return;
    }
    h->hostnames = aegis_calloc(json_array_size(arr), sizeof(*h->hostnames));
    json_array_foreach(arr, i, v)
    {
        size_t at = push_index(w, i), len = json_string_length(v);
        const char *s = json_string_value(v), *why = NULL;
        const struct rconf_host *other;
        char *name;

        if (!json_is_string(v)) {
            error(w, "must be a string, not %s", type_name(v));
        } else if (!aegis_format_check(AEGIS_FMT_DNS_NAME, s, len, &why)) {
            error(w, "\"%.100s\" is not a valid DNS name%s%s", s, why ? ": " : "", why ? why : "");
        } else {
            name = lower_dup(s, len);
            other = rconf__table_put(names, name, len, h);
            if (other != NULL) {
                error(w, "\"%s\" is already served by host \"%s\"", name, other->name);
                free(name);
            } else {
                h->hostnames[h->n_hostnames++] = name;
            }
        }
        pop(w, at);
    }
    pop(w, old);
}

static void parse_host(struct walk *w, json_t *obj, struct rconf_host *h)
{
    static const char *const keys[] = {"name",     "hostnames", "tls",          "forceHTTPS",
                                       "hsts",     "upstreams", "healthCheck",  "upstreamTLS",
                                       "timeouts", "websocket", "preserveHost", NULL};
    const char *name = NULL;
    size_t len = 0;
    const struct rconf_host *other;

    check_keys(w, obj, keys);
    h->connect_timeout_ms = 5000;
    h->read_timeout_ms = 60000;
    h->websocket = true;
    h->min_version = RCONF_TLS_1_2;
    if (str_member(w, obj, "name", true, AEGIS_LIMIT_RCONF_NAME_BYTES, &name, &len)) {
        if (len == 0) {
            error_at(w, "name", "must not be empty");
        } else {
            h->name = aegis_strndup(name, len);
            other = rconf__table_put(&w->rc->index_->host_ids, h->name, len, h);
            if (other != NULL)
                error_at(w, "name", "\"%s\" names two hosts", h->name);
        }
    }
    if (h->name == NULL)
        h->name = aegis_strdup("");
    parse_hostnames(w, obj, h);
    parse_tls(w, obj, h);
    if (!h->tls)
        policy_digest(RCONF_TLS_1_2, RCONF_CLIENT_AUTH_NONE, NULL, h->policy);
    h->force_https = h->tls;
    if (bool_member(w, obj, "forceHTTPS", &h->force_https) && h->force_https && !h->tls)
        error_at(w, "forceHTTPS", "cannot redirect to HTTPS: the host has no tls");
    parse_hsts(w, obj, h);
    parse_upstreams(w, obj, h);
    parse_health_check(w, obj, h);
    parse_upstream_tls(w, obj, h);
    parse_timeouts(w, obj, h);
    bool_member(w, obj, "websocket", &h->websocket);
    bool_member(w, obj, "preserveHost", &h->preserve_host);
}

static void parse_hosts(struct walk *w, json_t *root)
{
    json_t *arr = member(w, root, "hosts", JSON_ARRAY, true);
    size_t old, i;
    json_t *v;

    if (arr == NULL)
        return;
    old = push_key(w, "hosts");
    if (json_array_size(arr) > AEGIS_LIMIT_RCONF_HOSTS) {
        error(w, "%zu hosts; the limit is %d", json_array_size(arr), AEGIS_LIMIT_RCONF_HOSTS);
        pop(w, old);
        return;
    }
    /* Sized once: the name tables point into this array. */
    w->rc->hosts = aegis_calloc(json_array_size(arr) + 1, sizeof(*w->rc->hosts));
    json_array_foreach(arr, i, v)
    {
        size_t at = push_index(w, i);

        if (json_is_object(v))
            parse_host(w, v, &w->rc->hosts[w->rc->n_hosts++]);
        else
            error(w, "must be an object, not %s", type_name(v));
        pop(w, at);
    }
    pop(w, old);
}

/* ---- stored certificates, fallback, challenges ------------------------------------------------ */

/* Indexes the SANs of a stored certificate; a name covered twice goes to the later notAfter. */
static void index_cert_names(struct rconf *rc, struct rconf_cert *c)
{
    struct rconf_table *t = &rc->index_->cert_names;

    for (size_t i = 0; i < c->n_dns_names; i++) {
        const char *n = c->dns_names[i];
        const struct rconf_cert *other = rconf__table_put(t, n, strlen(n), c);

        if (other != NULL && other->not_after < c->not_after)
            rconf__table_set(t, n, strlen(n), c);
    }
}

static void parse_certificates(struct walk *w, json_t *root)
{
    static const char *const keys[] = {"name", "certificatePEM", "privateKeyPEM", NULL};
    json_t *arr = member(w, root, "certificates", JSON_ARRAY, false);
    size_t old, i;
    json_t *v;

    if (arr == NULL)
        return;
    old = push_key(w, "certificates");
    if (json_array_size(arr) > AEGIS_LIMIT_RCONF_CERTIFICATES) {
        error(w, "%zu certificates; the limit is %d", json_array_size(arr),
              AEGIS_LIMIT_RCONF_CERTIFICATES);
        pop(w, old);
        return;
    }
    w->rc->certs = aegis_calloc(json_array_size(arr) + 1, sizeof(*w->rc->certs));
    json_array_foreach(arr, i, v)
    {
        size_t at = push_index(w, i);
        struct rconf_stored_cert *sc = &w->rc->certs[w->rc->n_certs];
        const char *name = NULL;
        size_t len = 0;

        if (!json_is_object(v)) {
            error(w, "must be an object, not %s", type_name(v));
            pop(w, at);
            continue;
        }
        check_keys(w, v, keys);
        if (str_member(w, v, "name", true, AEGIS_LIMIT_RCONF_NAME_BYTES, &name, &len)) {
            sc->name = aegis_strndup(name, len);
            if (rconf__table_put(&w->rc->index_->cert_ids, sc->name, len, sc) != NULL)
                error_at(w, "name", "\"%s\" names two certificates", sc->name);
        }
        sc->cert = pair_member(w, v, "certificatePEM", "privateKeyPEM", true);
        if (sc->cert != NULL && sc->cert->n_dns_names == 0) {
            size_t k = push_key(w, "certificatePEM");

            warn(w, "the certificate has no DNS name in its subjectAltName: it is never "
                    "selected");
            pop(w, k);
        }
        if (sc->name == NULL)
            sc->name = aegis_strdup("");
        w->rc->n_certs++;
        pop(w, at);
    }
    pop(w, old);
}

static void parse_fallback(struct walk *w, json_t *root)
{
    static const char *const keys[] = {"certificatePEM", "privateKeyPEM", NULL};
    json_t *obj = member(w, root, "fallback", JSON_OBJECT, false);
    size_t old;

    if (obj == NULL)
        return;
    old = push_key(w, "fallback");
    check_keys(w, obj, keys);
    w->rc->fallback = pair_member(w, obj, "certificatePEM", "privateKeyPEM", true);
    pop(w, old);
}

static bool base64url(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return len > 0;
}

static void parse_challenges(struct walk *w, json_t *root)
{
    static const char *const keys[] = {"token", "keyAuthorization", NULL};
    json_t *arr = member(w, root, "acmeChallenges", JSON_ARRAY, false);
    size_t old, i;
    json_t *v;

    if (arr == NULL)
        return;
    old = push_key(w, "acmeChallenges");
    if (json_array_size(arr) > AEGIS_LIMIT_RCONF_CHALLENGES) {
        error(w, "%zu challenges; the limit is %d", json_array_size(arr),
              AEGIS_LIMIT_RCONF_CHALLENGES);
        pop(w, old);
        return;
    }
    w->rc->challenges = aegis_calloc(json_array_size(arr) + 1, sizeof(*w->rc->challenges));
    json_array_foreach(arr, i, v)
    {
        size_t at = push_index(w, i), tlen = 0, klen = 0;
        const char *token = NULL, *ka = NULL;
        bool ok;

        if (!json_is_object(v)) {
            error(w, "must be an object, not %s", type_name(v));
            pop(w, at);
            continue;
        }
        check_keys(w, v, keys);
        ok = str_member(w, v, "token", true, AEGIS_LIMIT_RCONF_TOKEN_BYTES, &token, &tlen);
        if (ok && !base64url(token, tlen)) {
            error_at(w, "token", "must be base64url (letters, digits, '-' and '_')");
            ok = false;
        }
        if (str_member(w, v, "keyAuthorization", true, AEGIS_LIMIT_RCONF_KEYAUTH_BYTES, &ka,
                       &klen) &&
            ok) {
            if (klen <= tlen + 1 || memcmp(ka, token, tlen) != 0 || ka[tlen] != '.' ||
                !base64url(ka + tlen + 1, klen - tlen - 1)) {
                error_at(w, "keyAuthorization",
                         "must be the token, '.', then the base64url "
                         "account key thumbprint (RFC 8555 8.1)");
            } else {
                struct rconf_challenge *c = &w->rc->challenges[w->rc->n_challenges++];

                c->token = aegis_strndup(token, tlen);
                c->key_authorization = aegis_strndup(ka, klen);
                if (rconf__table_put(&w->rc->index_->tokens, c->token, tlen, c) != NULL)
                    error_at(w, "token", "\"%s\" is listed twice", c->token);
            }
        }
        pop(w, at);
    }
    pop(w, old);
}

/* ---- the document ----------------------------------------------------------------------------- */

static void rconf_free(struct rconf *rc)
{
    if (rc == NULL)
        return;
    for (size_t i = 0; i < rc->n_hosts; i++) {
        struct rconf_host *h = &rc->hosts[i];

        free(h->name);
        for (size_t j = 0; j < h->n_hostnames; j++)
            free(h->hostnames[j]);
        free(h->hostnames);
        cert_unref(h->cert);
        X509_STORE_free(h->client_auth.store);
        sk_X509_NAME_pop_free(h->client_auth.ca_names, X509_NAME_free);
        for (size_t j = 0; j < h->n_upstreams; j++) {
            free(h->upstreams[j].url);
            free(h->upstreams[j].host);
            free(h->upstreams[j].path);
        }
        free(h->upstreams);
        free(h->health_check.path);
        cert_unref(h->upstream_tls.client);
        pki_chain_free(h->upstream_tls.ca);
        free(h->upstream_tls.server_name);
    }
    free(rc->hosts);
    for (size_t i = 0; i < rc->n_http; i++)
        free(rc->http[i].text);
    free(rc->http);
    for (size_t i = 0; i < rc->n_https; i++)
        free(rc->https[i].text);
    free(rc->https);
    for (size_t i = 0; i < rc->n_certs; i++) {
        free(rc->certs[i].name);
        cert_unref(rc->certs[i].cert);
    }
    free(rc->certs);
    cert_unref(rc->fallback);
    for (size_t i = 0; i < rc->n_challenges; i++) {
        free(rc->challenges[i].token);
        free(rc->challenges[i].key_authorization);
    }
    free(rc->challenges);
    if (rc->index_ != NULL) {
        rconf__table_dispose(&rc->index_->host_names);
        rconf__table_dispose(&rc->index_->host_ids);
        rconf__table_dispose(&rc->index_->cert_names);
        rconf__table_dispose(&rc->index_->cert_ids);
        rconf__table_dispose(&rc->index_->certs);
        rconf__table_dispose(&rc->index_->tokens);
        free(rc->index_);
    }
    free(rc);
}

struct rconf *rconf_ref(struct rconf *rc)
{
    atomic_fetch_add_explicit(&rc->refs_, 1, memory_order_relaxed);
    return rc;
}

void rconf_unref(struct rconf *rc)
{
    if (rc != NULL && atomic_fetch_sub_explicit(&rc->refs_, 1, memory_order_acq_rel) == 1)
        rconf_free(rc);
}

static void parse_root(struct walk *w, json_t *root)
{
    static const char *const keys[] = {"version",        "generation", "listeners",    "workers",
                                       "redirectPort",   "hosts",      "certificates", "fallback",
                                       "acmeChallenges", NULL};
    struct rconf *rc = w->rc;
    int64_t workers = 0, port = 0;

    check_keys(w, root, keys);
    if (int_member(w, root, "version", true, INT64_MIN, INT64_MAX, &rc->version) &&
        rc->version != RCONF_VERSION)
        error_at(w, "version", "version %lld is not supported; this dataplane reads version %d",
                 (long long)rc->version, RCONF_VERSION);
    int_member(w, root, "generation", true, 0, INT64_MAX, &rc->generation);
    parse_listeners(w, root);
    int_member(w, root, "workers", false, 0, AEGIS_LIMIT_RCONF_WORKERS, &workers);
    rc->workers = (unsigned)workers;
    if (int_member(w, root, "redirectPort", false, 1, 65535, &port))
        rc->redirect_port = (uint16_t)port;
    else
        rc->redirect_port = rc->n_https > 0 ? listener_port(&rc->https[0]) : 443;
    parse_hosts(w, root);
    parse_certificates(w, root);
    parse_fallback(w, root);
    parse_challenges(w, root);
    for (size_t i = 0; i < rc->n_certs; i++) {
        if (rc->certs[i].cert != NULL)
            index_cert_names(rc, rc->certs[i].cert);
    }
    policy_digest(RCONF_TLS_1_2, RCONF_CLIENT_AUTH_NONE, NULL, rc->index_->default_policy);
}

int rconf_parse(const char *json, size_t len, const struct rconf *prev, struct rconf **out,
                struct aegis_diags *diags)
{
    struct walk w;
    json_error_t jerr;
    json_t *root = NULL;
    size_t errors = diags->nerrors;
    unsigned int dlen = 0;
    int rc = 0;

    *out = NULL;
    memset(&w, 0, sizeof(w));
    w.diags = diags;
    w.prev = prev;
    if (len > AEGIS_LIMIT_RCONF_BYTES) {
        error(&w, "the document is %zu bytes; the limit is %zu", len,
              (size_t)AEGIS_LIMIT_RCONF_BYTES);
        return -AEGIS_E_LIMIT;
    }
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        error(&w, "not valid JSON: line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
        return -AEGIS_E_SYNTAX;
    }
    if (!json_is_object(root)) {
        error(&w, "the document must be a JSON object, not %s", type_name(root));
        rc = -AEGIS_E_INVALID;
        goto out;
    }
    w.rc = aegis_calloc(1, sizeof(*w.rc));
    atomic_init(&w.rc->refs_, 1);
    w.rc->index_ = aegis_calloc(1, sizeof(*w.rc->index_));
    if (EVP_Digest(json, len, w.rc->sha256, &dlen, EVP_sha256(), NULL) != 1)
        abort();
    parse_root(&w, root);
    if (diags->nerrors != errors) {
        rc = -AEGIS_E_INVALID;
        goto out;
    }
    *out = w.rc;
    w.rc = NULL;
out:
    OSSL_DECODER_CTX_free(w.keys);
    rconf_unref(w.rc);
    json_decref(root);
    return rc;
}

char *rconf_diags_to_json(const struct aegis_diags *diags)
{
    json_t *doc = json_object(), *errors = json_array(), *warnings = json_array();
    char *text;

    for (size_t i = 0; i < diags->n; i++) {
        const struct aegis_diag *d = &diags->v[i];
        json_t *o = json_object();

        json_object_set_new(o, "path", json_string(d->path ? d->path : ""));
        json_object_set_new(o, "message", json_string(d->msg ? d->msg : ""));
        json_array_append_new(d->sev == AEGIS_SEV_ERROR ? errors : warnings, o);
    }
    json_object_set_new(doc, "errors", errors);
    json_object_set_new(doc, "warnings", warnings);
    json_object_set_new(doc, "dropped", json_integer((json_int_t)diags->dropped));
    text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (text == NULL)
        abort();
    return text;
}
