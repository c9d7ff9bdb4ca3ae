/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store interface (store.h): the checks every backend shares (record ids, which become
 * paths or object names), the dispatch through the backend's ops table, record and metadata
 * memory (keys cleansed on dispose), metadata from an X.509 certificate, and the metadata's JSON
 * form used by the backends' on-disk or Secret encodings.
 */
#include "aegis/store.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "aegis/alloc.h"
#include "aegis/limits.h"

/* The PEM limit as a size_t, so comparisons with lengths need no conversion. */
#define PEM_MAX ((size_t)AEGIS_LIMIT_PEM_BYTES)

/* ---- ids ---------------------------------------------------------------------------------- */

static int check_kind(const char *s, struct aegis_err *err)
{
    size_t n = strnlen(s, STORE_KIND_MAX + 1);

    if (n == 0 || n > STORE_KIND_MAX)
        return aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                             "a store record kind is 1 to %d characters", STORE_KIND_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                                 "store record kind \"%s\": only a-z, 0-9 and '-' are allowed", s);
    }
    return 0;
}

/*
 * Namespaces and names become path components (and Secret names later): letters, digits, '.',
 * '_' and '-', never starting with '.', so "..", hidden names and temp files cannot be named.
 */
static int check_part(const char *what, const char *s, size_t max, struct aegis_err *err)
{
    size_t n = strnlen(s, max + 1);

    if (n == 0 || n > max)
        return aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                             "a store record %s is 1 to %zu characters", what, max);
    if (s[0] == '.')
        return aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                             "store record %s \"%s\" must not start with '.'", what, s);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                                 "store record %s \"%.*s\": only letters, digits, '.', '_' and "
                                 "'-' are allowed",
                                 what, (int)(n > 64 ? 64 : n), s);
    }
    return 0;
}

int store__id_check(const struct store_id *id, struct aegis_err *err)
{
    int rc;

    /* The arrays are fixed-size: a missing NUL must not run past them. */
    if (memchr(id->kind, '\0', sizeof(id->kind)) == NULL ||
        memchr(id->ns, '\0', sizeof(id->ns)) == NULL ||
        memchr(id->name, '\0', sizeof(id->name)) == NULL)
        return aegis_err_set(err, -AEGIS_E_INVALID, NULL, "store record id is not terminated");
    rc = check_kind(id->kind, err);
    if (rc == 0)
        rc = check_part("namespace", id->ns, STORE_NS_MAX, err);
    if (rc == 0)
        rc = check_part("name", id->name, STORE_NAME_MAX, err);
    return rc;
}

int store_id_set(struct store_id *id, const char *kind, const char *ns, const char *name,
                 struct aegis_err *err)
{
    int rc;

    memset(id, 0, sizeof(*id));
    rc = check_kind(kind, err);
    if (rc == 0)
        rc = check_part("namespace", ns, STORE_NS_MAX, err);
    if (rc == 0)
        rc = check_part("name", name, STORE_NAME_MAX, err);
    if (rc < 0)
        return rc;
    memcpy(id->kind, kind, strlen(kind) + 1);
    memcpy(id->ns, ns, strlen(ns) + 1);
    memcpy(id->name, name, strlen(name) + 1);
    return 0;
}

int store_id_parse(struct store_id *id, const char *s, struct aegis_err *err)
{
    const char *a = strchr(s, '/'), *b = a ? strchr(a + 1, '/') : NULL;
    char kind[STORE_KIND_MAX + 1], ns[STORE_NS_MAX + 1];
    size_t klen, nlen;

    memset(id, 0, sizeof(*id));
    if (a == NULL || b == NULL)
        return aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                             "a store record is named KIND/NAMESPACE/NAME, e.g. "
                             "certificate/default/app");
    klen = (size_t)(a - s);
    nlen = (size_t)(b - a - 1);
    if (klen == 0 || klen > STORE_KIND_MAX || nlen == 0 || nlen > STORE_NS_MAX)
        return aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                             "store record \"%.80s\": the kind is 1 to %d characters and the "
                             "namespace 1 to %d",
                             s, STORE_KIND_MAX, STORE_NS_MAX);
    memcpy(kind, s, klen);
    kind[klen] = '\0';
    memcpy(ns, a + 1, nlen);
    ns[nlen] = '\0';
    return store_id_set(id, kind, ns, b + 1, err);
}

void store_id_format(const struct store_id *id, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s/%s", id->kind, id->ns, id->name);
}

int store_id_cmp(const struct store_id *a, const struct store_id *b)
{
    int c = strcmp(a->kind, b->kind);

    if (c == 0)
        c = strcmp(a->ns, b->ns);
    if (c == 0)
        c = strcmp(a->name, b->name);
    return c;
}

void store__aad(const struct store_id *id, const char *field, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s/%s/%s", id->kind, id->ns, id->name, field);
}

/* ---- records and metadata ------------------------------------------------------------------ */

void store_meta_init(struct store_meta *meta)
{
    memset(meta, 0, sizeof(*meta));
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* The certificate facts only; see store_meta_from_x509. */
static void meta_clear_cert(struct store_meta *meta)
{
    strv_free(meta->dns_names, meta->n_dns_names);
    strv_free(meta->ip_addresses, meta->n_ip_addresses);
    free(meta->subject);
    free(meta->issuer);
    free(meta->serial);
    meta->dns_names = meta->ip_addresses = NULL;
    meta->n_dns_names = meta->n_ip_addresses = 0;
    meta->subject = meta->issuer = meta->serial = NULL;
    meta->not_before = meta->not_after = 0;
    meta->fingerprint[0] = '\0';
}

void store_meta_dispose(struct store_meta *meta)
{
    meta_clear_cert(meta);
    free(meta->source);
    json_decref(meta->extra);
    store_meta_init(meta);
}

static char **strv_copy(char *const *v, size_t n)
{
    char **out;

    if (n == 0)
        return NULL;
    out = aegis_calloc(n, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = aegis_strdup(v[i]);
    return out;
}

static char *strdup_or_null(const char *s)
{
    return s ? aegis_strdup(s) : NULL;
}

void store_meta_copy(struct store_meta *dst, const struct store_meta *src)
{
    store_meta_init(dst);
    dst->dns_names = strv_copy(src->dns_names, src->n_dns_names);
    dst->n_dns_names = src->n_dns_names;
    dst->ip_addresses = strv_copy(src->ip_addresses, src->n_ip_addresses);
    dst->n_ip_addresses = src->n_ip_addresses;
    dst->subject = strdup_or_null(src->subject);
    dst->issuer = strdup_or_null(src->issuer);
    dst->serial = strdup_or_null(src->serial);
    dst->not_before = src->not_before;
    dst->not_after = src->not_after;
    memcpy(dst->fingerprint, src->fingerprint, sizeof(dst->fingerprint));
    dst->fingerprint[sizeof(dst->fingerprint) - 1] = '\0';
    dst->source = strdup_or_null(src->source);
    dst->revision = src->revision;
    dst->updated_at = src->updated_at;
    dst->extra = src->extra ? json_deep_copy(src->extra) : NULL;
}

void store_meta_array_free(struct store_meta *metas, size_t n)
{
    if (metas == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        store_meta_dispose(&metas[i]);
    free(metas);
}

void store_record_init(struct store_record *rec)
{
    memset(rec, 0, sizeof(*rec));
    store_meta_init(&rec->meta);
}

void store_record_dispose(struct store_record *rec)
{
    if (rec->key_pem != NULL) {
        OPENSSL_cleanse(rec->key_pem, strlen(rec->key_pem));
        free(rec->key_pem);
    }
    free(rec->chain_pem);
    free(rec->csr_pem);
    store_meta_dispose(&rec->meta);
    store_record_init(rec);
}

/* ---- metadata from X.509 ------------------------------------------------------------------- */

static char *name_oneline(const X509_NAME *name)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL, *out = NULL;
    long len;

    if (bio == NULL)
        return NULL;
    if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0) {
        len = BIO_get_mem_data(bio, &data);
        if (len >= 0)
            out = aegis_strndup(len > 0 ? data : "", (size_t)len);
    }
    BIO_free(bio);
    return out;
}

static void push(char ***v, size_t *n, size_t *cap, char *s)
{
    aegis_grow((void **)v, cap, *n + 1, sizeof(**v));
    (*v)[(*n)++] = s;
}

/* An iPAddress SAN as text (4 bytes IPv4, 16 bytes IPv6); other lengths are skipped. */
static char *ip_text(const ASN1_OCTET_STRING *ip)
{
    const unsigned char *p = ASN1_STRING_get0_data(ip);
    int len = ASN1_STRING_length(ip);
    char buf[INET6_ADDRSTRLEN];

    if (len == 4 && inet_ntop(AF_INET, p, buf, sizeof(buf)) != NULL)
        return aegis_strdup(buf);
    if (len == 16 && inet_ntop(AF_INET6, p, buf, sizeof(buf)) != NULL)
        return aegis_strdup(buf);
    return NULL;
}

static int asn1_time_unix(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return -AEGIS_E_INVALID;
    *out = (int64_t)timegm(&tm);
    return 0;
}

int store_meta_from_x509(struct store_meta *meta, X509 *cert, struct aegis_err *err)
{
    GENERAL_NAMES *sans = NULL;
    const ASN1_INTEGER *serial;
    BIGNUM *bn = NULL;
    char *hex = NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t cap_dns = 0, cap_ip = 0;
    int rc = 0;

    meta_clear_cert(meta);
    sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);

        if (meta->n_dns_names + meta->n_ip_addresses >= AEGIS_LIMIT_SANS) {
            rc = aegis_err_set(err, -AEGIS_E_LIMIT, NULL,
                               "the certificate has more than %d subject alternative names",
                               AEGIS_LIMIT_SANS);
            goto out;
        }
        if (gn->type == GEN_DNS) {
            const ASN1_IA5STRING *s = gn->d.dNSName;

            push(&meta->dns_names, &meta->n_dns_names, &cap_dns,
                 aegis_strndup((const char *)ASN1_STRING_get0_data(s),
                               (size_t)ASN1_STRING_length(s)));
        } else if (gn->type == GEN_IPADD) {
            char *ip = ip_text(gn->d.iPAddress);

            if (ip != NULL)
                push(&meta->ip_addresses, &meta->n_ip_addresses, &cap_ip, ip);
        }
    }
    meta->subject = name_oneline(X509_get_subject_name(cert));
    meta->issuer = name_oneline(X509_get_issuer_name(cert));
    serial = X509_get0_serialNumber(cert);
    bn = ASN1_INTEGER_to_BN(serial, NULL);
    hex = bn ? BN_bn2hex(bn) : NULL;
    if (meta->subject == NULL || meta->issuer == NULL || hex == NULL) {
        rc = aegis_err_set(err, -AEGIS_E_CRYPTO, NULL,
                           "cannot read the certificate's names or serial number");
        goto out;
    }
    meta->serial = aegis_strdup(hex);
    if (asn1_time_unix(X509_get0_notBefore(cert), &meta->not_before) < 0 ||
        asn1_time_unix(X509_get0_notAfter(cert), &meta->not_after) < 0) {
        rc = aegis_err_set(err, -AEGIS_E_INVALID, NULL, "the certificate's validity is unreadable");
        goto out;
    }
    if (X509_digest(cert, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32) {
        rc = aegis_err_set(err, -AEGIS_E_CRYPTO, NULL, "cannot hash the certificate");
        goto out;
    }
    for (size_t i = 0; i < mdlen; i++)
        snprintf(meta->fingerprint + 2 * i, 3, "%02x", md[i]);
out:
    GENERAL_NAMES_free(sans);
    BN_free(bn);
    OPENSSL_free(hex);
    if (rc < 0)
        meta_clear_cert(meta);
    return rc;
}

int store_meta_from_pem(struct store_meta *meta, const char *chain_pem, struct aegis_err *err)
{
    BIO *bio = NULL;
    X509 *cert = NULL;
    size_t len = strnlen(chain_pem, PEM_MAX + 1);
    int rc;

    if (len > PEM_MAX)
        return aegis_err_set(err, -AEGIS_E_LIMIT, NULL,
                             "the certificate chain is longer than %u bytes",
                             (unsigned)AEGIS_LIMIT_PEM_BYTES);
    bio = BIO_new_mem_buf(chain_pem, (int)len);
    if (bio == NULL)
        return aegis_err_set(err, -AEGIS_E_CRYPTO, NULL, "out of memory reading a certificate");
    cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (cert == NULL) {
        rc = aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                           "the certificate chain has no readable PEM certificate");
        goto out;
    }
    rc = store_meta_from_x509(meta, cert, err);
out:
    X509_free(cert);
    BIO_free(bio);
    return rc;
}

/* ---- metadata as JSON ---------------------------------------------------------------------- */

static json_t *strv_json(char *const *v, size_t n)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(v[i]));
    return arr;
}

static void set_str(json_t *obj, const char *key, const char *s)
{
    if (s != NULL)
        json_object_set_new(obj, key, json_string(s));
}

json_t *store__meta_to_json(const struct store_meta *meta)
{
    json_t *obj = json_object();

    json_object_set_new(obj, "dnsNames", strv_json(meta->dns_names, meta->n_dns_names));
    json_object_set_new(obj, "ipAddresses", strv_json(meta->ip_addresses, meta->n_ip_addresses));
    set_str(obj, "subject", meta->subject);
    set_str(obj, "issuer", meta->issuer);
    set_str(obj, "serial", meta->serial);
    json_object_set_new(obj, "notBefore", json_integer((json_int_t)meta->not_before));
    json_object_set_new(obj, "notAfter", json_integer((json_int_t)meta->not_after));
    if (meta->fingerprint[0] != '\0')
        set_str(obj, "fingerprintSHA256", meta->fingerprint);
    set_str(obj, "source", meta->source);
    json_object_set_new(obj, "revision", json_integer((json_int_t)meta->revision));
    json_object_set_new(obj, "updatedAt", json_integer((json_int_t)meta->updated_at));
    if (meta->extra != NULL)
        json_object_set(obj, "extra", meta->extra);
    return obj;
}

static int get_strv(const json_t *obj, const char *key, char ***v, size_t *n, struct aegis_err *err)
{
    const json_t *arr = json_object_get(obj, key);
    size_t cap = 0;

    if (arr == NULL)
        return 0;
    if (!json_is_array(arr) || json_array_size(arr) > AEGIS_LIMIT_SANS)
        return aegis_err_set(err, -AEGIS_E_INVALID, key,
                             "metadata: %s is not a list of at most "
                             "%d strings",
                             key, AEGIS_LIMIT_SANS);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *s = json_array_get(arr, i);

        if (!json_is_string(s))
            return aegis_err_set(err, -AEGIS_E_INVALID, key, "metadata: %s[%zu] is not a string",
                                 key, i);
        push(v, n, &cap, aegis_strdup(json_string_value(s)));
    }
    return 0;
}

static int get_str(const json_t *obj, const char *key, char **out, struct aegis_err *err)
{
    const json_t *s = json_object_get(obj, key);

    if (s == NULL || json_is_null(s))
        return 0;
    if (!json_is_string(s))
        return aegis_err_set(err, -AEGIS_E_INVALID, key, "metadata: %s is not a string", key);
    *out = aegis_strdup(json_string_value(s));
    return 0;
}

static int get_int(const json_t *obj, const char *key, int64_t *out, struct aegis_err *err)
{
    const json_t *i = json_object_get(obj, key);

    if (i == NULL)
        return 0;
    if (!json_is_integer(i))
        return aegis_err_set(err, -AEGIS_E_INVALID, key, "metadata: %s is not an integer", key);
    *out = (int64_t)json_integer_value(i);
    return 0;
}

int store__meta_from_json(struct store_meta *meta, const json_t *obj, struct aegis_err *err)
{
    const json_t *extra;
    char *fp = NULL;
    int64_t rev = 0;
    int rc;

    store_meta_init(meta);
    if (!json_is_object(obj))
        return aegis_err_set(err, -AEGIS_E_INVALID, NULL, "metadata is not a JSON object");
    rc = get_strv(obj, "dnsNames", &meta->dns_names, &meta->n_dns_names, err);
    if (rc == 0)
        rc = get_strv(obj, "ipAddresses", &meta->ip_addresses, &meta->n_ip_addresses, err);
    if (rc == 0)
        rc = get_str(obj, "subject", &meta->subject, err);
    if (rc == 0)
        rc = get_str(obj, "issuer", &meta->issuer, err);
    if (rc == 0)
        rc = get_str(obj, "serial", &meta->serial, err);
    if (rc == 0)
        rc = get_int(obj, "notBefore", &meta->not_before, err);
    if (rc == 0)
        rc = get_int(obj, "notAfter", &meta->not_after, err);
    if (rc == 0)
        rc = get_str(obj, "fingerprintSHA256", &fp, err);
    if (rc == 0 && fp != NULL) {
        if (strlen(fp) >= sizeof(meta->fingerprint))
            rc = aegis_err_set(err, -AEGIS_E_INVALID, "fingerprintSHA256",
                               "metadata: fingerprintSHA256 is too long");
        else
            memcpy(meta->fingerprint, fp, strlen(fp) + 1);
    }
    if (rc == 0)
        rc = get_str(obj, "source", &meta->source, err);
    if (rc == 0)
        rc = get_int(obj, "revision", &rev, err);
    if (rc == 0 && rev < 0)
        rc = aegis_err_set(err, -AEGIS_E_INVALID, "revision", "metadata: revision is negative");
    meta->revision = rev > 0 ? (uint64_t)rev : 0;
    if (rc == 0)
        rc = get_int(obj, "updatedAt", &meta->updated_at, err);
    extra = json_object_get(obj, "extra");
    if (rc == 0 && extra != NULL) {
        if (json_is_object(extra))
            meta->extra = json_deep_copy(extra);
        else
            rc = aegis_err_set(err, -AEGIS_E_INVALID, "extra", "metadata: extra is not an object");
    }
    free(fp);
    if (rc < 0)
        store_meta_dispose(meta);
    return rc;
}

/* ---- the store ----------------------------------------------------------------------------- */

const char *store_state_dir_default(void)
{
    const char *env = getenv(STORE_STATE_DIR_ENV);

    return env != NULL && env[0] != '\0' ? env : STORE_STATE_DIR_DEFAULT;
}

void store_close(struct store *st)
{
    if (st != NULL)
        st->ops->close(st);
}

int store_put(struct store *st, const struct store_id *id, const struct store_record *rec,
              struct aegis_err *err)
{
    int rc = store__id_check(id, err);

    if (rc < 0)
        return rc;
    if (rec->key_pem != NULL && strnlen(rec->key_pem, AEGIS_LIMIT_ENVELOPE_PLAINTEXT_BYTES + 1) >
                                    AEGIS_LIMIT_ENVELOPE_PLAINTEXT_BYTES)
        return aegis_err_set(err, -AEGIS_E_LIMIT, NULL, "the private key is longer than %u bytes",
                             (unsigned)AEGIS_LIMIT_ENVELOPE_PLAINTEXT_BYTES);
    if ((rec->chain_pem != NULL && strnlen(rec->chain_pem, PEM_MAX + 1) > PEM_MAX) ||
        (rec->csr_pem != NULL && strnlen(rec->csr_pem, PEM_MAX + 1) > PEM_MAX))
        return aegis_err_set(err, -AEGIS_E_LIMIT, NULL,
                             "a certificate chain or CSR is longer than %u bytes",
                             (unsigned)AEGIS_LIMIT_PEM_BYTES);
    return st->ops->put(st, id, rec, err);
}

int store_get(struct store *st, const struct store_id *id, struct store_record *rec,
              struct aegis_err *err)
{
    int rc;

    store_record_init(rec);
    rc = store__id_check(id, err);
    return rc < 0 ? rc : st->ops->get(st, id, true, rec, err);
}

int store_get_public(struct store *st, const struct store_id *id, struct store_record *rec,
                     struct aegis_err *err)
{
    int rc;

    store_record_init(rec);
    rc = store__id_check(id, err);
    return rc < 0 ? rc : st->ops->get(st, id, false, rec, err);
}

int store_get_meta(struct store *st, const struct store_id *id, struct store_meta *meta,
                   struct aegis_err *err)
{
    int rc;

    store_meta_init(meta);
    rc = store__id_check(id, err);
    return rc < 0 ? rc : st->ops->get_meta(st, id, meta, err);
}

int store_list(struct store *st, const char *kind, struct store_id **ids, size_t *n,
               struct aegis_err *err)
{
    int rc = 0;

    *ids = NULL;
    *n = 0;
    if (kind != NULL)
        rc = check_kind(kind, err);
    return rc < 0 ? rc : st->ops->list(st, kind, ids, n, err);
}

int store_delete(struct store *st, const struct store_id *id, struct aegis_err *err)
{
    int rc = store__id_check(id, err);

    return rc < 0 ? rc : st->ops->del(st, id, err);
}

int store_history_list(struct store *st, const struct store_id *id, struct store_meta **metas,
                       size_t *n, struct aegis_err *err)
{
    int rc;

    *metas = NULL;
    *n = 0;
    rc = store__id_check(id, err);
    return rc < 0 ? rc : st->ops->history_list(st, id, metas, n, err);
}

int store_history_get(struct store *st, const struct store_id *id, uint64_t revision,
                      struct store_record *rec, struct aegis_err *err)
{
    int rc;

    store_record_init(rec);
    rc = store__id_check(id, err);
    return rc < 0 ? rc : st->ops->history_get(st, id, revision, rec, err);
}

int store_history_prune(struct store *st, const struct store_id *id, int64_t now, size_t *removed,
                        struct aegis_err *err)
{
    int rc = 0;

    if (removed != NULL)
        *removed = 0;
    if (id != NULL)
        rc = store__id_check(id, err);
    return rc < 0 ? rc : st->ops->history_prune(st, id, now, removed, err);
}

int store_rotate_key(struct store *st, const struct aegis_masterkey *new_key,
                     int (*progress)(void *arg, const struct store_id *id, size_t done), void *arg,
                     struct aegis_err *err)
{
    return st->ops->rotate_key(st, new_key, progress, arg, err);
}
