/* SPDX-License-Identifier: Apache-2.0 */
/*
 * X.509 and key helpers (see aegis/pki.h): key generation, PEM in and out, X.509v3 certificates
 * profiled after RFC 5280, PKCS#10 requests (RFC 2986) and v2 CRLs, all through OpenSSL 3's
 * public EVP/X509 APIs. Nothing here reads the clock or prints; private key bytes only pass
 * through secure-memory BIOs and buffers that are cleansed before they are freed.
 */
#include "aegis/pki.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "aegis/alloc.h"
#include "aegis/limits.h"

const char *const pki_key_type_names[PKI_KEY_COUNT_] = {
#define PKI_KEY_TYPE_NAME(name, text) text,
    PKI_KEY_TYPES(PKI_KEY_TYPE_NAME)
#undef PKI_KEY_TYPE_NAME
};

const char *const pki_usage_names[PKI_USAGE_COUNT_] = {
#define PKI_USAGE_NAME(name, text, ku, eku) text,
    PKI_USAGES(PKI_USAGE_NAME)
#undef PKI_USAGE_NAME
};

/* What each usage sets: a keyUsage bit (KU_*) or an extendedKeyUsage OID (NID_*). */
static const struct {
    unsigned ku;
    int eku_nid;
} usage_x509[PKI_USAGE_COUNT_] = {
#define PKI_USAGE_X509(name, text, ku, eku) {ku, eku},
    PKI_USAGES(PKI_USAGE_X509)
#undef PKI_USAGE_X509
};

const char *const pki_crl_reason_names[PKI_CRL_REASON_COUNT_] = {
#define PKI_CRL_REASON_NAME(name, text, code) text,
    PKI_CRL_REASONS(PKI_CRL_REASON_NAME)
#undef PKI_CRL_REASON_NAME
};

static const int crl_reason_codes[PKI_CRL_REASON_COUNT_] = {
#define PKI_CRL_REASON_CODE(name, text, code) code,
    PKI_CRL_REASONS(PKI_CRL_REASON_CODE)
#undef PKI_CRL_REASON_CODE
};

/*
 * Records an error whose cause OpenSSL knows, appending OpenSSL's reason (a fixed string such as
 * "bad decrypt", never data) and clearing its error queue so that a later call starts clean.
 */
static int ossl_err(struct aegis_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int ossl_err(struct aegis_err *err, int code, const char *fmt, ...)
{
    char msg[AEGIS_ERR_MSG_MAX];
    va_list ap;
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ERR_clear_error();
    if (reason != NULL)
        return aegis_err_set(err, code, NULL, "%s (OpenSSL: %s)", msg, reason);
    return aegis_err_set(err, code, NULL, "%s", msg);
}

static int check_pem_len(size_t len, const char *what, struct aegis_err *err)
{
    if (len > AEGIS_LIMIT_PEM_BYTES)
        return aegis_err_set(err, -AEGIS_E_LIMIT, NULL, "%s is %zu bytes, over the limit of %u",
                             what, len, AEGIS_LIMIT_PEM_BYTES);
    return 0;
}

/* Copies the contents of a memory BIO into a new NUL-terminated buffer. */
static int bio_copy_out(BIO *bio, char **out, size_t *len)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);

    if (n < 0)
        return -AEGIS_E_CRYPTO;
    *out = aegis_malloc((size_t)n + 1);
    if (n > 0)
        memcpy(*out, data, (size_t)n);
    (*out)[n] = '\0';
    if (len != NULL)
        *len = (size_t)n;
    return 0;
}

/* ---- keys ------------------------------------------------------------------------------------ */

int pki_key_type_from_spec(enum aegis_key_algorithm alg, int64_t size, enum pki_key_type *type,
                           struct aegis_err *err)
{
    switch (alg) {
    case AEGIS_KEY_ALGORITHM_RSA:
        if (size == 0 || size == 2048)
            *type = PKI_KEY_RSA_2048;
        else if (size == 3072)
            *type = PKI_KEY_RSA_3072;
        else if (size == 4096)
            *type = PKI_KEY_RSA_4096;
        else
            return aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                                 "RSA key size %lld is not supported; use 2048, 3072 or 4096",
                                 (long long)size);
        return 0;
    case AEGIS_KEY_ALGORITHM_ECDSA:
        if (size == 0 || size == 256)
            *type = PKI_KEY_EC_P256;
        else if (size == 384)
            *type = PKI_KEY_EC_P384;
        else
            return aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                                 "ECDSA key size %lld is not supported; use 256 or 384",
                                 (long long)size);
        return 0;
    case AEGIS_KEY_ALGORITHM_ED25519:
        *type = PKI_KEY_ED25519;
        return 0;
    case AEGIS_KEY_ALGORITHM_COUNT_:
        break;
    }
    return aegis_err_set(err, -AEGIS_E_INVALID, NULL, "unknown key algorithm %d", (int)alg);
}

int pki_key_type_of(const EVP_PKEY *key, enum pki_key_type *type)
{
    char group[64];

    if (EVP_PKEY_is_a(key, "RSA")) {
        switch (EVP_PKEY_get_bits(key)) {
        case 2048:
            *type = PKI_KEY_RSA_2048;
            return 0;
        case 3072:
            *type = PKI_KEY_RSA_3072;
            return 0;
        case 4096:
            *type = PKI_KEY_RSA_4096;
            return 0;
        default:
            return -AEGIS_E_UNSUPPORTED;
        }
    }
    if (EVP_PKEY_is_a(key, "ED25519")) {
        *type = PKI_KEY_ED25519;
        return 0;
    }
    if (EVP_PKEY_is_a(key, "EC") && EVP_PKEY_get_group_name(key, group, sizeof(group), NULL) == 1) {
        if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0) {
            *type = PKI_KEY_EC_P256;
            return 0;
        }
        if (strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0) {
            *type = PKI_KEY_EC_P384;
            return 0;
        }
    }
    ERR_clear_error();
    return -AEGIS_E_UNSUPPORTED;
}

int pki_key_generate(enum pki_key_type type, EVP_PKEY **key, struct aegis_err *err)
{
    EVP_PKEY *k = NULL;

    *key = NULL;
    switch (type) {
    case PKI_KEY_RSA_2048:
        k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
        break;
    case PKI_KEY_RSA_3072:
        k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
        break;
    case PKI_KEY_RSA_4096:
        k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096);
        break;
    case PKI_KEY_EC_P256:
        k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        break;
    case PKI_KEY_EC_P384:
        k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
        break;
    case PKI_KEY_ED25519:
        k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        break;
    case PKI_KEY_COUNT_:
        break;
    }
    if (k == NULL)
        return ossl_err(err, -AEGIS_E_CRYPTO, "cannot generate a %s key",
                        (unsigned)type < PKI_KEY_COUNT_ ? pki_key_type_names[type] : "?");
    *key = k;
    return 0;
}

int pki_key_to_pem(EVP_PKEY *key, char **pem, size_t *len, struct aegis_err *err)
{
    /* A secure-memory BIO: the encoded key never sits in ordinary heap pages we do not clean. */
    BIO *bio = BIO_new(BIO_s_secmem());
    int rc = 0;

    *pem = NULL;
    if (bio == NULL || PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot encode the private key");
        goto out;
    }
    rc = bio_copy_out(bio, pem, len);
out:
    BIO_free(bio);
    return rc;
}

/* Refuses to prompt: an encrypted key fails to load instead of blocking on a terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

int pki_key_from_pem(const char *pem, size_t len, EVP_PKEY **key, struct aegis_err *err)
{
    BIO *bio = NULL;
    int rc;

    *key = NULL;
    rc = check_pem_len(len, "the private key PEM", err);
    if (rc < 0)
        goto out;
    if (memmem(pem, len, "ENCRYPTED PRIVATE KEY", 21) != NULL ||
        memmem(pem, len, "Proc-Type: 4,ENCRYPTED", 22) != NULL) {
        rc = aegis_err_set(err, -AEGIS_E_UNSUPPORTED, NULL,
                           "the private key is encrypted; give it unencrypted "
                           "(openssl pkey -in key.pem -out plain.pem)");
        goto out;
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot read the private key");
        goto out;
    }
    /* OpenSSL's decoder reports "no key" and "bad key" alike, so look for a key block first. */
    if (memmem(pem, len, "PRIVATE KEY-----", 16) == NULL) {
        rc = aegis_err_set(err, -AEGIS_E_NOTFOUND, NULL,
                           "no private key found (expected a \"BEGIN PRIVATE KEY\" block)");
        goto out;
    }
    *key = PEM_read_bio_PrivateKey_ex(bio, NULL, no_passphrase, NULL, NULL, NULL);
    if (*key == NULL) {
        rc = ossl_err(err, -AEGIS_E_INVALID, "the private key cannot be decoded");
        goto out;
    }
    rc = 0;
out:
    BIO_free(bio);
    return rc;
}

int pki_pubkey_to_pem(EVP_PKEY *key, char **pem, size_t *len, struct aegis_err *err)
{
    BIO *bio = BIO_new(BIO_s_mem());
    int rc;

    *pem = NULL;
    if (bio == NULL || PEM_write_bio_PUBKEY(bio, key) != 1) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot encode the public key");
        goto out;
    }
    rc = bio_copy_out(bio, pem, len);
out:
    BIO_free(bio);
    return rc;
}

void pki_secret_free(char *buf, size_t len)
{
    if (buf == NULL)
        return;
    OPENSSL_cleanse(buf, len);
    free(buf);
}

void pki_secret_free_str(char *s)
{
    if (s != NULL)
        pki_secret_free(s, strlen(s));
}

/* ---- certificates ---------------------------------------------------------------------------- */

int pki_chain_from_pem(const char *pem, size_t len, STACK_OF(X509) * *chain, struct aegis_err *err)
{
    STACK_OF(X509) *sk = NULL;
    BIO *bio = NULL;
    int rc, block = 0;

    *chain = NULL;
    rc = check_pem_len(len, "the certificate PEM", err);
    if (rc < 0)
        goto out;
    bio = BIO_new_mem_buf(pem, (int)len);
    sk = sk_X509_new_null();
    if (bio == NULL || sk == NULL) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot read certificates");
        goto out;
    }
    for (;;) {
        char *name = NULL, *header = NULL;
        unsigned char *data = NULL;
        long dlen = 0;
        int is_cert;
        X509 *x = NULL;

        if (PEM_read_bio(bio, &name, &header, &data, &dlen) != 1) {
            unsigned long e = ERR_peek_last_error();
            if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
                ERR_clear_error();
                break; /* the end of the text (trailing non-PEM text is ignored) */
            }
            rc = ossl_err(err, -AEGIS_E_SYNTAX, "PEM block %d is malformed", block + 1);
            goto out;
        }
        block++;
        is_cert = strcmp(name, "CERTIFICATE") == 0;
        if (is_cert) {
            const unsigned char *p = data;
            x = d2i_X509(NULL, &p, dlen);
            if (x != NULL && p != data + dlen) {
                X509_free(x);
                x = NULL;
            }
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        /* Another block may be a private key given in the same file: cleanse it. */
        OPENSSL_clear_free(data, dlen > 0 ? (size_t)dlen : 0);
        if (!is_cert)
            continue;
        if (x == NULL) {
            rc = ossl_err(err, -AEGIS_E_INVALID, "certificate %d (PEM block %d) is not valid DER",
                          sk_X509_num(sk) + 1, block);
            goto out;
        }
        if (sk_X509_num(sk) >= AEGIS_LIMIT_CHAIN_CERTS) {
            X509_free(x);
            rc = aegis_err_set(err, -AEGIS_E_LIMIT, NULL, "more than %d certificates in one chain",
                               AEGIS_LIMIT_CHAIN_CERTS);
            goto out;
        }
        if (sk_X509_push(sk, x) <= 0) {
            X509_free(x);
            rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot read certificates");
            goto out;
        }
    }
    if (sk_X509_num(sk) == 0) {
        rc = aegis_err_set(err, -AEGIS_E_NOTFOUND, NULL,
                           "no certificate found (expected a \"BEGIN CERTIFICATE\" block)");
        goto out;
    }
    *chain = sk;
    sk = NULL;
    rc = 0;
out:
    pki_chain_free(sk);
    BIO_free(bio);
    return rc;
}

int pki_chain_to_pem(const STACK_OF(X509) * chain, char **pem, size_t *len, struct aegis_err *err)
{
    BIO *bio = BIO_new(BIO_s_mem());
    int rc;

    *pem = NULL;
    if (bio == NULL) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot encode certificates");
        goto out;
    }
    for (int i = 0; i < sk_X509_num(chain); i++) {
        if (PEM_write_bio_X509(bio, sk_X509_value(chain, i)) != 1) {
            rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot encode certificate %d", i + 1);
            goto out;
        }
    }
    rc = bio_copy_out(bio, pem, len);
out:
    BIO_free(bio);
    return rc;
}

int pki_cert_to_pem(X509 *cert, char **pem, size_t *len, struct aegis_err *err)
{
    BIO *bio = BIO_new(BIO_s_mem());
    int rc;

    *pem = NULL;
    if (bio == NULL || PEM_write_bio_X509(bio, cert) != 1) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot encode the certificate");
        goto out;
    }
    rc = bio_copy_out(bio, pem, len);
out:
    BIO_free(bio);
    return rc;
}

void pki_chain_free(STACK_OF(X509) * chain)
{
    sk_X509_pop_free(chain, X509_free);
}

int pki_key_matches_cert(X509 *cert, EVP_PKEY *key, struct aegis_err *err)
{
    EVP_PKEY *pub = X509_get0_pubkey(cert);

    if (pub != NULL && EVP_PKEY_eq(pub, key) == 1)
        return 0;
    ERR_clear_error();
    return aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                         "the private key does not belong to the certificate (their public keys "
                         "differ)");
}

static void hex_lower(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int pki_fingerprint_sha256(X509 *cert, char out[PKI_FINGERPRINT_HEX_SIZE])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    out[0] = '\0';
    if (X509_digest(cert, EVP_sha256(), md, &n) != 1 || n != 32) {
        ERR_clear_error();
        return -AEGIS_E_CRYPTO;
    }
    hex_lower(md, n, out);
    return 0;
}

/* Writes a BIGNUM as pki_serial_hex's form. */
static int bn_to_serial_hex(const BIGNUM *bn, char out[PKI_SERIAL_HEX_SIZE])
{
    char *hex = BN_bn2hex(bn);
    size_t n;

    out[0] = '\0';
    if (hex == NULL) {
        ERR_clear_error();
        return -AEGIS_E_CRYPTO;
    }
    n = strlen(hex);
    if (n >= PKI_SERIAL_HEX_SIZE) {
        OPENSSL_free(hex);
        return -AEGIS_E_LIMIT;
    }
    memcpy(out, hex, n + 1); /* uppercase, as store metadata and `openssl x509 -serial` have it */
    OPENSSL_free(hex);
    return 0;
}

int pki_serial_hex(const X509 *cert, char out[PKI_SERIAL_HEX_SIZE])
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    int rc;

    if (bn == NULL) {
        out[0] = '\0';
        ERR_clear_error();
        return -AEGIS_E_CRYPTO;
    }
    rc = bn_to_serial_hex(bn, out);
    BN_free(bn);
    return rc;
}

int pki_serial_normalize(const char *in, char out[PKI_SERIAL_HEX_SIZE], struct aegis_err *err)
{
    char digits[PKI_SERIAL_HEX_SIZE];
    size_t n = 0;
    BIGNUM *bn = NULL;
    int rc;

    out[0] = '\0';
    if (strncmp(in, "0x", 2) == 0 || strncmp(in, "0X", 2) == 0)
        in += 2;
    for (const char *p = in; *p != '\0'; p++) {
        if (*p == ':')
            continue;
        if (!isxdigit((unsigned char)*p) || n + 1 >= 41) {
            rc = aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                               "\"%.80s\" is not a certificate serial number (up to 40 hex "
                               "digits, ':' separators allowed)",
                               in);
            goto out;
        }
        digits[n++] = *p;
    }
    digits[n] = '\0';
    if (n == 0) {
        rc = aegis_err_set(err, -AEGIS_E_INVALID, NULL, "the serial number is empty");
        goto out;
    }
    if (BN_hex2bn(&bn, digits) == 0) {
        rc = ossl_err(err, -AEGIS_E_INVALID, "the serial number cannot be read");
        goto out;
    }
    rc = bn_to_serial_hex(bn, out);
out:
    BN_free(bn);
    return rc;
}

static int asn1_time_to_unix(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
        ERR_clear_error();
        return -AEGIS_E_INVALID;
    }
    *out = (int64_t)timegm(&tm);
    return 0;
}

int pki_cert_validity(const X509 *cert, int64_t *not_before, int64_t *not_after)
{
    int64_t nb = 0, na = 0;
    int rc = asn1_time_to_unix(X509_get0_notBefore(cert), &nb);

    if (rc == 0)
        rc = asn1_time_to_unix(X509_get0_notAfter(cert), &na);
    if (rc < 0)
        return rc;
    if (not_before != NULL)
        *not_before = nb;
    if (not_after != NULL)
        *not_after = na;
    return 0;
}

/* ---- usages ---------------------------------------------------------------------------------- */

int pki_usages_parse(char *const *v, size_t n, unsigned *mask, struct aegis_err *err)
{
    *mask = 0;
    for (size_t i = 0; i < n; i++) {
        size_t u;
        for (u = 0; u < PKI_USAGE_COUNT_; u++)
            if (strcmp(v[i], pki_usage_names[u]) == 0)
                break;
        if (u == PKI_USAGE_COUNT_) {
            char valid[512];
            pki_usages_format((1u << PKI_USAGE_COUNT_) - 1, valid, sizeof(valid));
            return aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                                 "unknown usage \"%.64s\"; valid usages: %s", v[i], valid);
        }
        *mask |= 1u << u;
    }
    return 0;
}

void pki_usages_format(unsigned mask, char *buf, size_t size)
{
    size_t used = 0;

    if (size == 0)
        return;
    buf[0] = '\0';
    for (size_t u = 0; u < PKI_USAGE_COUNT_; u++) {
        int w;
        if (!(mask & (1u << u)))
            continue;
        w = snprintf(buf + used, size - used, "%s%s", used ? ", " : "", pki_usage_names[u]);
        if (w < 0 || (size_t)w >= size - used)
            return;
        used += (size_t)w;
    }
}

/* ---- names ----------------------------------------------------------------------------------- */

/* Adds every value of v as an attribute of type field (e.g. "O") to name. */
static int name_add_all(X509_NAME *name, const char *field, char *const *v, size_t n,
                        struct aegis_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, (const unsigned char *)v[i], -1,
                                       -1, 0) != 1)
            return ossl_err(err, -AEGIS_E_INVALID, "subject %s \"%.64s\" is not valid", field,
                            v[i]);
    return 0;
}

static const char *first_san(const struct pki_cert_req *req)
{
    if (req->dns.n > 0)
        return req->dns.v[0];
    if (req->ip.n > 0)
        return req->ip.v[0];
    if (req->uri.n > 0)
        return req->uri.v[0];
    if (req->email.n > 0)
        return req->email.v[0];
    return NULL;
}

/*
 * Builds the subject name of req: C, ST, L, street, postalCode, O, OU, serialNumber, CN (the
 * usual order, most general first). With need_nonempty (a self-signed certificate, whose issuer
 * is its subject and must not be empty) and no subject given, the first SAN becomes the CN.
 */
static int build_name(const struct pki_cert_req *req, bool need_nonempty, X509_NAME **out,
                      struct aegis_err *err)
{
    X509_NAME *name = X509_NAME_new();
    const struct aegis_x509_subject *s = req->subject;
    const char *cn = req->common_name;
    int rc = 0;

    *out = NULL;
    if (req->subject_name != NULL) {
        X509_NAME_free(name);
        name = X509_NAME_dup(req->subject_name);
        s = NULL;
        cn = NULL;
    }
    if (name == NULL) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot make a name");
        goto out;
    }
    if (s != NULL) {
        const struct {
            const char *field;
            const struct aegis_strv *values;
        } parts[] = {
            {"C", &s->countries},
            {"ST", &s->provinces},
            {"L", &s->localities},
            {"street", &s->street_addresses},
            {"postalCode", &s->postal_codes},
            {"O", &s->organizations},
            {"OU", &s->organizational_units},
        };
        for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
            rc = name_add_all(name, parts[i].field, parts[i].values->v, parts[i].values->n, err);
            if (rc < 0)
                goto out;
        }
        if (s->serial_number != NULL) {
            char *const one[] = {s->serial_number};
            rc = name_add_all(name, "serialNumber", one, 1, err);
            if (rc < 0)
                goto out;
        }
    }
    if (cn == NULL && need_nonempty && X509_NAME_entry_count(name) == 0) {
        cn = first_san(req);
        /* RFC 5280's upper bound for a CN is 64 characters; a longer name stays in the SAN only. */
        if (cn != NULL && strlen(cn) > 64)
            cn = NULL;
        if (cn == NULL) {
            rc = aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                               "a self-signed certificate needs a subject: give a common name "
                               "or a name of at most 64 characters");
            goto out;
        }
    }
    if (cn != NULL) {
        if (strlen(cn) > 64) {
            rc = aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                               "the common name is %zu characters, over X.509's 64; leave it out "
                               "and put the name in dnsNames",
                               strlen(cn));
            goto out;
        }
        char *const one[] = {(char *)cn};
        rc = name_add_all(name, "CN", one, 1, err);
        if (rc < 0)
            goto out;
    }
    *out = name;
    name = NULL;
out:
    X509_NAME_free(name);
    return rc;
}

/* ---- subject alternative names --------------------------------------------------------------- */

static int ascii_printable(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return 0;
    return 1;
}

static int push_ia5(GENERAL_NAMES *gens, int type, const char *value, const char *what,
                    struct aegis_err *err)
{
    GENERAL_NAME *gn = NULL;
    ASN1_IA5STRING *s = NULL;

    /* IA5String is ASCII; DNS, URI and email SANs are ASCII (IDNs go in as A-labels). */
    if (*value == '\0' || !ascii_printable(value))
        return aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                             "%s \"%.80s\" must be non-empty printable ASCII (IDNs as xn-- labels)",
                             what, value);
    gn = GENERAL_NAME_new();
    s = ASN1_IA5STRING_new();
    if (gn == NULL || s == NULL || ASN1_STRING_set(s, value, (int)strlen(value)) != 1)
        goto fail;
    GENERAL_NAME_set0_value(gn, type, s);
    s = NULL;
    if (sk_GENERAL_NAME_push(gens, gn) <= 0)
        goto fail;
    return 0;
fail:
    ASN1_IA5STRING_free(s);
    GENERAL_NAME_free(gn);
    return ossl_err(err, -AEGIS_E_CRYPTO, "cannot add %s", what);
}

static int push_ip(GENERAL_NAMES *gens, const char *value, struct aegis_err *err)
{
    unsigned char buf[16];
    int n;
    GENERAL_NAME *gn = NULL;
    ASN1_OCTET_STRING *s = NULL;

    if (inet_pton(AF_INET, value, buf) == 1)
        n = 4;
    else if (inet_pton(AF_INET6, value, buf) == 1)
        n = 16;
    else
        return aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                             "IP address SAN \"%.80s\" is not an IPv4 or IPv6 address", value);
    gn = GENERAL_NAME_new();
    s = ASN1_OCTET_STRING_new();
    if (gn == NULL || s == NULL || ASN1_OCTET_STRING_set(s, buf, n) != 1)
        goto fail;
    GENERAL_NAME_set0_value(gn, GEN_IPADD, s);
    s = NULL;
    if (sk_GENERAL_NAME_push(gens, gn) <= 0)
        goto fail;
    return 0;
fail:
    ASN1_OCTET_STRING_free(s);
    GENERAL_NAME_free(gn);
    return ossl_err(err, -AEGIS_E_CRYPTO, "cannot add an IP address SAN");
}

/* Builds req's SANs into *out (NULL when there are none). */
static int build_sans(const struct pki_cert_req *req, GENERAL_NAMES **out, struct aegis_err *err)
{
    GENERAL_NAMES *gens = NULL;
    size_t total = req->dns.n + req->ip.n + req->uri.n + req->email.n;
    int rc = 0;

    *out = NULL;
    if (total == 0)
        return 0;
    if (total > AEGIS_LIMIT_SANS)
        return aegis_err_set(err, -AEGIS_E_LIMIT, NULL,
                             "%zu subject alternative names, over the limit of %d", total,
                             AEGIS_LIMIT_SANS);
    gens = sk_GENERAL_NAME_new_null();
    if (gens == NULL) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot make the SAN list");
        goto out;
    }
    for (size_t i = 0; i < req->dns.n && rc == 0; i++)
        rc = push_ia5(gens, GEN_DNS, req->dns.v[i], "DNS name", err);
    for (size_t i = 0; i < req->ip.n && rc == 0; i++)
        rc = push_ip(gens, req->ip.v[i], err);
    for (size_t i = 0; i < req->uri.n && rc == 0; i++)
        rc = push_ia5(gens, GEN_URI, req->uri.v[i], "URI SAN", err);
    for (size_t i = 0; i < req->email.n && rc == 0; i++)
        rc = push_ia5(gens, GEN_EMAIL, req->email.v[i], "email SAN", err);
    if (rc < 0)
        goto out;
    *out = gens;
    gens = NULL;
out:
    GENERAL_NAMES_free(gens);
    return rc;
}

/* ---- signing --------------------------------------------------------------------------------- */

/* SHA-256 for RSA and ECDSA; Ed25519 (RFC 8410) hashes internally and takes no digest. */
static const EVP_MD *sign_digest(EVP_PKEY *key)
{
    if (EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448"))
        return NULL;
    return EVP_sha256();
}

static int set_time(ASN1_TIME *t, int64_t when)
{
    return ASN1_TIME_set(t, (time_t)when) != NULL ? 0 : -AEGIS_E_CRYPTO;
}

/* 128 random bits with the top bit cleared: positive, at most 16 bytes of DER (RFC 5280 4.1.2.2). */
static int random_serial(ASN1_INTEGER **out)
{
    unsigned char buf[16];
    BIGNUM *bn = NULL;
    int rc = -AEGIS_E_CRYPTO;

    *out = NULL;
    if (RAND_bytes(buf, sizeof(buf)) != 1)
        goto out;
    buf[0] &= 0x7f;
    bn = BN_bin2bn(buf, sizeof(buf), NULL);
    if (bn == NULL)
        goto out;
    if (BN_is_zero(bn) && BN_set_word(bn, 1) != 1) /* zero is not a valid serial */
        goto out;
    *out = BN_to_ASN1_INTEGER(bn, NULL);
    if (*out != NULL)
        rc = 0;
out:
    BN_free(bn);
    return rc;
}

static int add_key_usage(X509 *x, unsigned ku, struct aegis_err *err)
{
    ASN1_BIT_STRING *bs = ASN1_BIT_STRING_new();
    int rc = 0;

    if (bs == NULL) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot make keyUsage");
        goto out;
    }
    /* KU_* values put bit 0 (digitalSignature) at 0x80, bit 7 at 0x01 and bit 8 at 0x8000. */
    for (int bit = 0; bit < 8; bit++)
        if ((ku & (0x80u >> bit)) && ASN1_BIT_STRING_set_bit(bs, bit, 1) != 1) {
            rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot make keyUsage");
            goto out;
        }
    if ((ku & 0x8000u) && ASN1_BIT_STRING_set_bit(bs, 8, 1) != 1) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot make keyUsage");
        goto out;
    }
    if (X509_add1_ext_i2d(x, NID_key_usage, bs, 1, X509V3_ADD_REPLACE) != 1)
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot add keyUsage");
out:
    ASN1_BIT_STRING_free(bs);
    return rc;
}

static int add_ext_key_usage(X509 *x, unsigned usages, struct aegis_err *err)
{
    EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
    int rc = 0;

    if (eku == NULL) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot make extendedKeyUsage");
        goto out;
    }
    for (size_t u = 0; u < PKI_USAGE_COUNT_; u++) {
        if (!(usages & (1u << u)) || usage_x509[u].eku_nid == 0)
            continue;
        /* OBJ_nid2obj returns a static object; ASN1_OBJECT_free leaves it alone. */
        if (sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(usage_x509[u].eku_nid)) <= 0) {
            rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot make extendedKeyUsage");
            goto out;
        }
    }
    if (sk_ASN1_OBJECT_num(eku) > 0 &&
        X509_add1_ext_i2d(x, NID_ext_key_usage, eku, 0, X509V3_ADD_REPLACE) != 1)
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot add extendedKeyUsage");
out:
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    return rc;
}

static int add_basic_constraints(X509 *x, bool is_ca, int path_len, struct aegis_err *err)
{
    BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
    int rc = 0;

    if (bc == NULL) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot make basicConstraints");
        goto out;
    }
    bc->ca = is_ca ? 0xff : 0;
    if (is_ca && path_len >= 0) {
        bc->pathlen = ASN1_INTEGER_new();
        if (bc->pathlen == NULL || ASN1_INTEGER_set(bc->pathlen, path_len) != 1) {
            rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot make basicConstraints");
            goto out;
        }
    }
    if (X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1, X509V3_ADD_REPLACE) != 1)
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot add basicConstraints");
out:
    BASIC_CONSTRAINTS_free(bc);
    return rc;
}

static int add_crl_dp(X509 *x, const char *url, struct aegis_err *err)
{
    CRL_DIST_POINTS *dps = sk_DIST_POINT_new_null();
    DIST_POINT *dp = DIST_POINT_new();
    GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
    int rc = 0;

    if (dps == NULL || dp == NULL || names == NULL) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot make cRLDistributionPoints");
        goto out;
    }
    rc = push_ia5(names, GEN_URI, url, "CRL distribution point", err);
    if (rc < 0)
        goto out;
    dp->distpoint = DIST_POINT_NAME_new();
    if (dp->distpoint == NULL) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot make cRLDistributionPoints");
        goto out;
    }
    dp->distpoint->type = 0; /* fullName */
    dp->distpoint->name.fullname = names;
    names = NULL;
    if (sk_DIST_POINT_push(dps, dp) <= 0) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot make cRLDistributionPoints");
        goto out;
    }
    dp = NULL;
    if (X509_add1_ext_i2d(x, NID_crl_distribution_points, dps, 0, X509V3_ADD_REPLACE) != 1)
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot add cRLDistributionPoints");
out:
    GENERAL_NAMES_free(names);
    DIST_POINT_free(dp);
    CRL_DIST_POINTS_free(dps);
    return rc;
}

/* Adds an extension from OpenSSL's configuration syntax; only fixed strings of ours go here. */
static int add_conf_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value, struct aegis_err *err)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int rc = 0;

    if (ext == NULL || X509_add_ext(x, ext, -1) != 1)
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot add %s", OBJ_nid2sn(nid));
    X509_EXTENSION_free(ext);
    return rc;
}

/* The keyUsage bits of a usage mask; a CA always signs certificates and CRLs. */
static unsigned key_usage_bits(unsigned usages, bool is_ca)
{
    unsigned ku = 0;

    for (size_t u = 0; u < PKI_USAGE_COUNT_; u++)
        if (usages & (1u << u))
            ku |= usage_x509[u].ku;
    if (is_ca)
        ku |= KU_KEY_CERT_SIGN | KU_CRL_SIGN;
    return ku;
}

int pki_sign(const struct pki_cert_req *req, EVP_PKEY *subject_key, X509 *issuer_cert,
             EVP_PKEY *issuer_key, X509 **out, struct aegis_err *err)
{
    X509 *x = NULL;
    X509_NAME *name = NULL;
    ASN1_INTEGER *serial = NULL;
    GENERAL_NAMES *sans = NULL;
    X509V3_CTX ctx;
    unsigned usages = req->usages;
    int rc;

    *out = NULL;
    if (req->not_after <= req->not_before) {
        rc = aegis_err_set(err, -AEGIS_E_INVALID, NULL, "notAfter must be after notBefore");
        goto out;
    }
    if (usages == 0) {
        usages = PKI_USAGES_DEFAULT;
        /* RFC 8813: keyEncipherment is meaningless for EC and EdDSA keys; only RSA gets it. */
        if (!EVP_PKEY_is_a(subject_key, "RSA"))
            usages &= ~PKI_USAGE(KEY_ENCIPHERMENT);
    }
    rc = build_name(req, issuer_cert == NULL, &name, err);
    if (rc < 0)
        goto out;
    rc = build_sans(req, &sans, err);
    if (rc < 0)
        goto out;
    rc = random_serial(&serial);
    if (rc < 0) {
        rc = ossl_err(err, rc, "cannot make a serial number");
        goto out;
    }
    x = X509_new();
    if (x == NULL || X509_set_version(x, X509_VERSION_3) != 1 ||
        X509_set_serialNumber(x, serial) != 1 || X509_set_subject_name(x, name) != 1 ||
        X509_set_issuer_name(x, issuer_cert ? X509_get_subject_name(issuer_cert) : name) != 1 ||
        X509_set_pubkey(x, subject_key) != 1 || set_time(X509_getm_notBefore(x), req->not_before) ||
        set_time(X509_getm_notAfter(x), req->not_after)) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot make the certificate");
        goto out;
    }
    X509V3_set_ctx(&ctx, issuer_cert ? issuer_cert : x, x, NULL, NULL, 0);
    rc = add_basic_constraints(x, req->is_ca, req->path_len, err);
    if (rc == 0)
        rc = add_key_usage(x, key_usage_bits(usages, req->is_ca), err);
    if (rc == 0)
        rc = add_ext_key_usage(x, usages, err);
    /* The SKI goes in before the AKI: a self-signed certificate's AKI copies its own SKI. */
    if (rc == 0)
        rc = add_conf_ext(x, &ctx, NID_subject_key_identifier, "hash", err);
    if (rc == 0)
        rc = add_conf_ext(x, &ctx, NID_authority_key_identifier, "keyid:always", err);
    if (rc == 0 && sans != NULL &&
        X509_add1_ext_i2d(x, NID_subject_alt_name, sans, X509_NAME_entry_count(name) == 0,
                          X509V3_ADD_REPLACE) != 1)
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot add subjectAltName");
    if (rc == 0 && req->crl_url != NULL)
        rc = add_crl_dp(x, req->crl_url, err);
    if (rc < 0)
        goto out;
    if (X509_sign(x, issuer_key, sign_digest(issuer_key)) <= 0) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot sign the certificate");
        goto out;
    }
    *out = x;
    x = NULL;
    rc = 0;
out:
    X509_free(x);
    X509_NAME_free(name);
    ASN1_INTEGER_free(serial);
    GENERAL_NAMES_free(sans);
    return rc;
}

/* ---- certificate signing requests ------------------------------------------------------------ */

int pki_csr_make(const struct pki_cert_req *req, EVP_PKEY *key, X509_REQ **out,
                 struct aegis_err *err)
{
    X509_REQ *csr = NULL;
    X509_NAME *name = NULL;
    GENERAL_NAMES *sans = NULL;
    STACK_OF(X509_EXTENSION) *exts = NULL;
    X509_EXTENSION *ext = NULL;
    int rc;

    *out = NULL;
    rc = build_name(req, false, &name, err);
    if (rc < 0)
        goto out;
    rc = build_sans(req, &sans, err);
    if (rc < 0)
        goto out;
    csr = X509_REQ_new();
    if (csr == NULL || X509_REQ_set_version(csr, X509_REQ_VERSION_1) != 1 ||
        X509_REQ_set_subject_name(csr, name) != 1 || X509_REQ_set_pubkey(csr, key) != 1) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot make the CSR");
        goto out;
    }
    if (sans != NULL) {
        exts = sk_X509_EXTENSION_new_null();
        ext = X509V3_EXT_i2d(NID_subject_alt_name, X509_NAME_entry_count(name) == 0, sans);
        if (exts == NULL || ext == NULL || sk_X509_EXTENSION_push(exts, ext) <= 0) {
            rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot make the CSR's SAN extension");
            goto out;
        }
        ext = NULL;
        if (X509_REQ_add_extensions(csr, exts) != 1) {
            rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot add the CSR's SAN extension");
            goto out;
        }
    }
    if (X509_REQ_sign(csr, key, sign_digest(key)) <= 0) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot sign the CSR");
        goto out;
    }
    *out = csr;
    csr = NULL;
    rc = 0;
out:
    X509_REQ_free(csr);
    X509_NAME_free(name);
    GENERAL_NAMES_free(sans);
    X509_EXTENSION_free(ext);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return rc;
}

int pki_csr_to_pem(X509_REQ *csr, char **pem, size_t *len, struct aegis_err *err)
{
    BIO *bio = BIO_new(BIO_s_mem());
    int rc;

    *pem = NULL;
    if (bio == NULL || PEM_write_bio_X509_REQ(bio, csr) != 1) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot encode the CSR");
        goto out;
    }
    rc = bio_copy_out(bio, pem, len);
out:
    BIO_free(bio);
    return rc;
}

static void strlist_push(struct pki_strlist *l, char *s)
{
    l->v = aegis_realloc(l->v, (l->n + 1) * sizeof(*l->v));
    l->v[l->n++] = s;
}

static void strlist_dispose(struct pki_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Copies an IA5String SAN, refusing embedded NULs and non-printable bytes. */
static int ia5_copy(const ASN1_STRING *s, const char *what, char **out, struct aegis_err *err)
{
    const unsigned char *d = ASN1_STRING_get0_data(s);
    int n = ASN1_STRING_length(s);

    for (int i = 0; i < n; i++)
        if (d[i] <= 0x20 || d[i] >= 0x7f)
            return aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                                 "the CSR's %s SAN holds a non-printable byte", what);
    if (n == 0)
        return aegis_err_set(err, -AEGIS_E_INVALID, NULL, "the CSR has an empty %s SAN", what);
    *out = aegis_strndup((const char *)d, (size_t)n);
    return 0;
}

static int csr_read_sans(X509_REQ *csr, struct pki_csr_info *info, struct aegis_err *err)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);
    GENERAL_NAMES *gens = NULL;
    int crit = -1, rc = 0;

    if (exts == NULL) {
        ERR_clear_error();
        return 0;
    }
    gens = X509V3_get_d2i(exts, NID_subject_alt_name, &crit, NULL);
    if (gens == NULL) {
        if (crit == -2)
            rc = aegis_err_set(err, -AEGIS_E_INVALID, NULL, "the CSR has two SAN extensions");
        else if (crit != -1)
            rc = ossl_err(err, -AEGIS_E_INVALID, "the CSR's SAN extension cannot be decoded");
        goto out;
    }
    if (sk_GENERAL_NAME_num(gens) > AEGIS_LIMIT_SANS) {
        rc = aegis_err_set(err, -AEGIS_E_LIMIT, NULL,
                           "the CSR asks for %d SANs, over the limit of %d",
                           sk_GENERAL_NAME_num(gens), AEGIS_LIMIT_SANS);
        goto out;
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(gens) && rc == 0; i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
        char *s = NULL;
        char ip[INET6_ADDRSTRLEN];
        int len;

        switch (gn->type) {
        case GEN_DNS:
            rc = ia5_copy(gn->d.dNSName, "DNS", &s, err);
            if (rc == 0)
                strlist_push(&info->dns, s);
            break;
        case GEN_URI:
            rc = ia5_copy(gn->d.uniformResourceIdentifier, "URI", &s, err);
            if (rc == 0)
                strlist_push(&info->uri, s);
            break;
        case GEN_EMAIL:
            rc = ia5_copy(gn->d.rfc822Name, "email", &s, err);
            if (rc == 0)
                strlist_push(&info->email, s);
            break;
        case GEN_IPADD:
            len = ASN1_STRING_length(gn->d.iPAddress);
            if ((len != 4 && len != 16) ||
                inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(gn->d.iPAddress), ip,
                          sizeof(ip)) == NULL) {
                rc = aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                                   "the CSR has an IP address SAN of %d bytes", len);
                break;
            }
            strlist_push(&info->ip, aegis_strdup(ip));
            break;
        default:
            rc = aegis_err_set(err, -AEGIS_E_UNSUPPORTED, NULL,
                               "the CSR asks for a SAN of a kind Aegis does not sign (only DNS, "
                               "IP, URI and email)");
            break;
        }
    }
out:
    GENERAL_NAMES_free(gens);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return rc;
}

int pki_csr_read(const char *pem, size_t len, struct pki_csr_info *info, struct aegis_err *err)
{
    BIO *bio = NULL;
    X509_REQ *csr = NULL;
    EVP_PKEY *pub;
    int rc, idx;

    memset(info, 0, sizeof(*info));
    rc = check_pem_len(len, "the CSR", err);
    if (rc < 0)
        goto out;
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot read the CSR");
        goto out;
    }
    csr = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
    if (csr == NULL) {
        rc = ossl_err(err, -AEGIS_E_INVALID,
                      "no valid CSR found (expected a \"BEGIN CERTIFICATE REQUEST\" block)");
        goto out;
    }
    pub = X509_REQ_get0_pubkey(csr);
    if (pub == NULL || X509_REQ_verify(csr, pub) != 1) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO,
                      "the CSR's signature does not verify with its own public key");
        goto out;
    }
    if (!EVP_PKEY_up_ref(pub)) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot read the CSR's key");
        goto out;
    }
    info->public_key = pub;
    info->subject = X509_NAME_dup(X509_REQ_get_subject_name(csr));
    if (info->subject == NULL) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot read the CSR's subject");
        goto out;
    }
    idx = X509_NAME_get_index_by_NID(info->subject, NID_commonName, -1);
    if (idx >= 0) {
        unsigned char *utf8 = NULL;
        int n = ASN1_STRING_to_UTF8(
            &utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(info->subject, idx)));
        if (n < 0) {
            rc = ossl_err(err, -AEGIS_E_INVALID, "the CSR's common name cannot be decoded");
            goto out;
        }
        info->common_name = aegis_strndup((const char *)utf8, (size_t)n);
        OPENSSL_free(utf8);
        if (strlen(info->common_name) != (size_t)n) {
            rc = aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                               "the CSR's common name holds a NUL byte");
            goto out;
        }
    }
    rc = csr_read_sans(csr, info, err);
out:
    X509_REQ_free(csr);
    BIO_free(bio);
    return rc;
}

void pki_csr_info_dispose(struct pki_csr_info *info)
{
    free(info->common_name);
    strlist_dispose(&info->dns);
    strlist_dispose(&info->ip);
    strlist_dispose(&info->uri);
    strlist_dispose(&info->email);
    EVP_PKEY_free(info->public_key);
    X509_NAME_free(info->subject);
    memset(info, 0, sizeof(*info));
}

/* ---- revocation lists ------------------------------------------------------------------------ */

int pki_crl_reason_parse(const char *text, enum pki_crl_reason *reason, struct aegis_err *err)
{
    char valid[256];
    size_t used = 0;

    for (size_t i = 0; i < PKI_CRL_REASON_COUNT_; i++)
        if (strcasecmp(text, pki_crl_reason_names[i]) == 0) {
            *reason = (enum pki_crl_reason)i;
            return 0;
        }
    valid[0] = '\0';
    for (size_t i = 0; i < PKI_CRL_REASON_COUNT_ && used < sizeof(valid); i++) {
        int w = snprintf(valid + used, sizeof(valid) - used, "%s%s", i ? ", " : "",
                         pki_crl_reason_names[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return aegis_err_set(err, -AEGIS_E_INVALID, NULL, "unknown revocation reason \"%.64s\"; use %s",
                         text, valid);
}

static int add_revoked(X509_CRL *crl, const struct pki_revoked *r, struct aegis_err *err)
{
    X509_REVOKED *rev = X509_REVOKED_new();
    BIGNUM *bn = NULL;
    ASN1_INTEGER *serial = NULL;
    ASN1_TIME *when = ASN1_TIME_new();
    ASN1_ENUMERATED *code = NULL;
    int rc = 0;

    if (rev != NULL && when != NULL && BN_hex2bn(&bn, r->serial_hex) != 0)
        serial = BN_to_ASN1_INTEGER(bn, NULL);
    if (serial == NULL || X509_REVOKED_set_serialNumber(rev, serial) != 1 ||
        set_time(when, r->revoked_at) < 0 || X509_REVOKED_set_revocationDate(rev, when) != 1) {
        rc = ossl_err(err, -AEGIS_E_INVALID, "cannot list serial %.66s in the CRL", r->serial_hex);
        goto out;
    }
    /* RFC 5280 5.3.1: the reasonCode "unspecified" SHOULD be left out. */
    if ((unsigned)r->reason < PKI_CRL_REASON_COUNT_ && r->reason != PKI_CRL_REASON_UNSPECIFIED) {
        code = ASN1_ENUMERATED_new();
        if (code == NULL || ASN1_ENUMERATED_set(code, crl_reason_codes[r->reason]) != 1 ||
            X509_REVOKED_add1_ext_i2d(rev, NID_crl_reason, code, 0, 0) != 1) {
            rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot add a CRL reason");
            goto out;
        }
    }
    if (X509_CRL_add0_revoked(crl, rev) != 1) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot add a CRL entry");
        goto out;
    }
    rev = NULL;
out:
    X509_REVOKED_free(rev);
    BN_free(bn);
    ASN1_INTEGER_free(serial);
    ASN1_TIME_free(when);
    ASN1_ENUMERATED_free(code);
    return rc;
}

int pki_crl_make(X509 *issuer_cert, EVP_PKEY *issuer_key, const struct pki_revoked *revoked,
                 size_t n, int64_t this_update, int64_t next_update, uint64_t number,
                 X509_CRL **out, struct aegis_err *err)
{
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *t1 = ASN1_TIME_new(), *t2 = ASN1_TIME_new();
    ASN1_INTEGER *num = ASN1_INTEGER_new();
    X509_EXTENSION *aki = NULL;
    X509V3_CTX ctx;
    int rc = 0;

    *out = NULL;
    if (crl == NULL || t1 == NULL || t2 == NULL || num == NULL ||
        X509_CRL_set_version(crl, X509_CRL_VERSION_2) != 1 ||
        X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer_cert)) != 1 ||
        set_time(t1, this_update) < 0 || set_time(t2, next_update) < 0 ||
        X509_CRL_set1_lastUpdate(crl, t1) != 1 || X509_CRL_set1_nextUpdate(crl, t2) != 1) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot make the CRL");
        goto out;
    }
    if (n > AEGIS_LIMIT_CRL_ENTRIES) {
        rc = aegis_err_set(err, -AEGIS_E_LIMIT, NULL, "%zu revoked serials, over the limit of %d",
                           n, AEGIS_LIMIT_CRL_ENTRIES);
        goto out;
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = add_revoked(crl, &revoked[i], err);
    if (rc < 0)
        goto out;
    X509V3_set_ctx(&ctx, issuer_cert, NULL, NULL, crl, 0);
    aki = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always");
    if (ASN1_INTEGER_set_uint64(num, number) != 1 ||
        X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) != 1 || aki == NULL ||
        X509_CRL_add_ext(crl, aki, -1) != 1 || X509_CRL_sort(crl) != 1) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot make the CRL's extensions");
        goto out;
    }
    if (X509_CRL_sign(crl, issuer_key, sign_digest(issuer_key)) <= 0) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot sign the CRL");
        goto out;
    }
    *out = crl;
    crl = NULL;
out:
    X509_CRL_free(crl);
    ASN1_TIME_free(t1);
    ASN1_TIME_free(t2);
    ASN1_INTEGER_free(num);
    X509_EXTENSION_free(aki);
    return rc;
}

int pki_crl_to_pem(X509_CRL *crl, char **pem, size_t *len, struct aegis_err *err)
{
    BIO *bio = BIO_new(BIO_s_mem());
    int rc;

    *pem = NULL;
    if (bio == NULL || PEM_write_bio_X509_CRL(bio, crl) != 1) {
        rc = ossl_err(err, -AEGIS_E_CRYPTO, "cannot encode the CRL");
        goto out;
    }
    rc = bio_copy_out(bio, pem, len);
out:
    BIO_free(bio);
    return rc;
}

int pki_crl_to_der(X509_CRL *crl, unsigned char **der, size_t *len, struct aegis_err *err)
{
    unsigned char *buf = NULL;
    int n = i2d_X509_CRL(crl, &buf);

    *der = NULL;
    if (n <= 0)
        return ossl_err(err, -AEGIS_E_CRYPTO, "cannot encode the CRL");
    *der = aegis_malloc((size_t)n);
    memcpy(*der, buf, (size_t)n);
    OPENSSL_free(buf);
    *len = (size_t)n;
    return 0;
}
