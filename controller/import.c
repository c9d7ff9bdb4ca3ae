/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Custom certificates (import.h): a user's PEM chain and key, or a PKCS#12 bundle (RFC 7292),
 * checked (key match, one chain put in order, name coverage per RFC 6125, expiry, key strength)
 * and turned into a store record, deduplicated by the leaf's SHA-256 fingerprint and the chain.
 * OpenSSL 3 public APIs only; PKCS#12 bundles encrypted with RC2 or 3DES need OpenSSL's legacy
 * provider, loaded here on demand.
 */
#include "import.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>
#include <openssl/x509v3.h>

#include "aegis/alloc.h"
#include "aegis/limits.h"
#include "secret.h"

const char *const import_source_names[IMPORT_SOURCE_COUNT_] = {
#define IMPORT_SOURCE_NAME(name, text) text,
    IMPORT_SOURCES(IMPORT_SOURCE_NAME)
#undef IMPORT_SOURCE_NAME
};

/* ---- messages --------------------------------------------------------------------------------- */

/* Sets where to the resource and prefixes the callee's message with the field it concerns. */
static int blame(struct aegis_err *err, int rc, const struct import_check *chk, const char *field)
{
    char msg[AEGIS_ERR_MSG_MAX];

    if (err == NULL)
        return rc;
    if (err->msg[0] != '\0')
        snprintf(msg, sizeof(msg), "%s", err->msg);
    else
        snprintf(msg, sizeof(msg), "%s", aegis_strerror(rc));
    if (field != NULL && strncmp(msg, field, strlen(field)) != 0)
        return aegis_err_set(err, rc, chk->resource, "%s: %s", field, msg);
    return aegis_err_set(err, rc, chk->resource, "%s", msg);
}

static const char *field_or(const char *field, const char *dflt)
{
    return field != NULL ? field : dflt;
}

static void warn(struct import_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void warn(struct import_result *res, const char *fmt, ...)
{
    char *slot;
    va_list ap;

    if (res->n_warnings >= IMPORT_WARNINGS_MAX)
        return;
    slot = res->warnings[res->n_warnings];
    res->n_warnings++;
    va_start(ap, fmt);
    vsnprintf(slot, IMPORT_WARNING_LEN, fmt, ap);
    va_end(ap);
}

static void fmt_time(int64_t t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, size, "%lld", (long long)t);
}

/* The subject as one line for messages ("CN=app.example.com,O=Example"). */
static void subject_text(X509 *cert, char *buf, size_t size)
{
    BIO *bio = BIO_new(BIO_s_mem());
    int n = 0;

    buf[0] = '\0';
    if (bio != NULL &&
        X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0)
        n = BIO_read(bio, buf, (int)size - 1);
    buf[n > 0 ? n : 0] = '\0';
    if (buf[0] == '\0')
        snprintf(buf, size, "(empty subject)");
    BIO_free(bio);
}

/* ---- keys ------------------------------------------------------------------------------------- */

/*
 * Describes key ("RSA 2048", "ECDSA prime256v1", "Ed25519") and says whether it is strong enough:
 * RSA of at least 2048 bits, ECDSA on P-256, P-384 or P-521, or Ed25519.
 */
static bool key_strong(EVP_PKEY *key, char *desc, size_t size)
{
    char group[64] = "";
    size_t glen = 0;

    switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA:
    case EVP_PKEY_RSA_PSS:
        snprintf(desc, size, "RSA %d", EVP_PKEY_get_bits(key));
        return EVP_PKEY_get_bits(key) >= 2048;
    case EVP_PKEY_EC:
        if (EVP_PKEY_get_group_name(key, group, sizeof(group), &glen) != 1)
            snprintf(group, sizeof(group), "unknown curve");
        snprintf(desc, size, "ECDSA %s", group);
        return strcmp(group, "prime256v1") == 0 || strcmp(group, "secp384r1") == 0 ||
               strcmp(group, "secp521r1") == 0;
    case EVP_PKEY_ED25519:
        snprintf(desc, size, "Ed25519");
        return true;
    default:
        snprintf(desc, size, "%s",
                 EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key) : "unknown type");
        return false;
    }
}

/* ---- names ------------------------------------------------------------------------------------ */

/* Length of s without one trailing dot. */
static size_t name_len(const char *s)
{
    size_t n = strlen(s);

    return n > 0 && s[n - 1] == '.' ? n - 1 : n;
}

bool import_dns_covers(const char *san, const char *name)
{
    size_t sl, nl, bl;
    const char *base, *label_end;

    if (san == NULL || name == NULL)
        return false;
    sl = name_len(san);
    nl = name_len(name);
    if (sl == 0 || nl == 0)
        return false;
    if (sl == nl && strncasecmp(san, name, sl) == 0)
        return true;
    /* Only "*" as the whole leftmost label is a wildcard; "f*o.x.y" matches only itself. */
    if (sl < 3 || san[0] != '*' || san[1] != '.' || memchr(san + 1, '*', sl - 1) != NULL)
        return false;
    base = san + 2;
    bl = sl - 2;
    /* At least two labels under the wildcard: "*.com" would cover a whole top-level domain. */
    if (memchr(base, '.', bl) == NULL)
        return false;
    /* name = one non-empty label (not itself a wildcard), a dot, then base. */
    if (nl < bl + 2 || name[nl - bl - 1] != '.' || strncasecmp(name + nl - bl, base, bl) != 0)
        return false;
    label_end = memchr(name, '.', nl);
    return label_end == name + nl - bl - 1 && memchr(name, '*', nl - bl - 1) == NULL;
}

static bool leaf_covers_dns(const GENERAL_NAMES *sans, const char *name)
{
    for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
        char buf[256];
        int len;

        if (gn->type != GEN_DNS)
            continue;
        len = ASN1_STRING_length(gn->d.dNSName);
        /* A name with a NUL or longer than a DNS name can be matches nothing (and is suspect). */
        if (len <= 0 || (size_t)len >= sizeof(buf) ||
            memchr(ASN1_STRING_get0_data(gn->d.dNSName), '\0', (size_t)len) != NULL)
            continue;
        memcpy(buf, ASN1_STRING_get0_data(gn->d.dNSName), (size_t)len);
        buf[len] = '\0';
        if (import_dns_covers(buf, name))
            return true;
    }
    return false;
}

static bool leaf_covers_ip(const GENERAL_NAMES *sans, const char *ip)
{
    unsigned char want[16];
    int wlen;

    if (inet_pton(AF_INET, ip, want) == 1)
        wlen = 4;
    else if (inet_pton(AF_INET6, ip, want) == 1)
        wlen = 16;
    else
        return false;
    for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);

        if (gn->type == GEN_IPADD && ASN1_STRING_length(gn->d.iPAddress) == wlen &&
            memcmp(ASN1_STRING_get0_data(gn->d.iPAddress), want, (size_t)wlen) == 0)
            return true;
    }
    return false;
}

/* "app.example.com, 10.0.0.1" - what the leaf covers, for a message. */
static void sans_text(const GENERAL_NAMES *sans, char *buf, size_t size)
{
    size_t o = 0;

    buf[0] = '\0';
    for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans) && o + 1 < size; i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
        char ip[INET6_ADDRSTRLEN] = "";
        const char *s = NULL;
        int len = 0, r;

        if (gn->type == GEN_DNS) {
            s = (const char *)ASN1_STRING_get0_data(gn->d.dNSName);
            len = ASN1_STRING_length(gn->d.dNSName);
        } else if (gn->type == GEN_IPADD) {
            int alen = ASN1_STRING_length(gn->d.iPAddress);

            if (alen == 4 || alen == 16)
                inet_ntop(alen == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(gn->d.iPAddress),
                          ip, sizeof(ip));
            s = ip;
            len = (int)strlen(ip);
        }
        if (s == NULL || len <= 0 || len > 253)
            continue;
        r = snprintf(buf + o, size - o, "%s%.*s", o ? ", " : "", len, s);
        if (r < 0)
            break;
        o += (size_t)r;
        if (o >= size)
            o = size - 1;
    }
    if (buf[0] == '\0')
        snprintf(buf, size, "no DNS or IP subjectAltName");
}

static int check_coverage(X509 *leaf, const struct import_check *chk, struct aegis_err *err)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
    char covers[512];
    int rc = 0;

    for (size_t i = 0; i < chk->dns.n && rc == 0; i++) {
        if (leaf_covers_dns(sans, chk->dns.v[i]))
            continue;
        sans_text(sans, covers, sizeof(covers));
        rc = aegis_err_set(err, -AEGIS_E_INVALID, chk->resource,
                           "%s: the certificate does not cover spec.dnsNames[%zu] \"%s\" (it "
                           "covers: %s); get a certificate for that name, or remove the name",
                           field_or(chk->cert_field, "the certificate"), i, chk->dns.v[i], covers);
    }
    for (size_t i = 0; i < chk->ip.n && rc == 0; i++) {
        if (leaf_covers_ip(sans, chk->ip.v[i]))
            continue;
        sans_text(sans, covers, sizeof(covers));
        rc = aegis_err_set(err, -AEGIS_E_INVALID, chk->resource,
                           "%s: the certificate does not cover spec.ipAddresses[%zu] %s (it "
                           "covers: %s); get a certificate with that IP address SAN, or remove "
                           "the address",
                           field_or(chk->cert_field, "the certificate"), i, chk->ip.v[i], covers);
    }
    GENERAL_NAMES_free(sans);
    return rc;
}

/* ---- the chain -------------------------------------------------------------------------------- */

/* Whether issuer issued (and signed) cert. */
static bool issued_by(X509 *cert, X509 *issuer)
{
    EVP_PKEY *pub = X509_get0_pubkey(issuer);
    bool ok =
        pub != NULL && X509_check_issued(issuer, cert) == X509_V_OK && X509_verify(cert, pub) == 1;

    ERR_clear_error();
    return ok;
}

/*
 * Builds *out: leaf, then each issuer found among certs, up to a self-issued certificate or the
 * last one given. Duplicates are dropped; a certificate left over is not part of the chain.
 */
static int order_chain(STACK_OF(X509) * certs, X509 *leaf, const struct import_check *chk,
                       STACK_OF(X509) * *out, struct aegis_err *err)
{
    const char *field = field_or(chk->cert_field, "the certificate");
    STACK_OF(X509) *rest = sk_X509_new_null(), *chain = sk_X509_new_null();
    X509 *cur = leaf;
    int rc = 0;

    *out = NULL;
    if (rest == NULL || chain == NULL) {
        rc = aegis_err_set(err, -AEGIS_E_CRYPTO, chk->resource, "out of memory");
        goto out;
    }
    /* sk_X509_push does not take a reference: both stacks borrow the caller's certificates. */
    for (int i = 0; i < sk_X509_num(certs); i++) {
        X509 *c = sk_X509_value(certs, i);
        bool dup = X509_cmp(c, leaf) == 0;

        for (int j = 0; j < sk_X509_num(rest) && !dup; j++)
            dup = X509_cmp(c, sk_X509_value(rest, j)) == 0;
        if (!dup && sk_X509_push(rest, c) <= 0) {
            rc = aegis_err_set(err, -AEGIS_E_CRYPTO, chk->resource, "out of memory");
            goto out;
        }
    }
    if (sk_X509_push(chain, leaf) <= 0) {
        rc = aegis_err_set(err, -AEGIS_E_CRYPTO, chk->resource, "out of memory");
        goto out;
    }
    while (sk_X509_num(rest) > 0 && X509_check_issued(cur, cur) != X509_V_OK) {
        int found = -1;

        for (int j = 0; j < sk_X509_num(rest) && found < 0; j++)
            if (issued_by(cur, sk_X509_value(rest, j)))
                found = j;
        if (found < 0)
            break;
        cur = sk_X509_delete(rest, found);
        if (sk_X509_push(chain, cur) <= 0) {
            rc = aegis_err_set(err, -AEGIS_E_CRYPTO, chk->resource, "out of memory");
            goto out;
        }
    }
    ERR_clear_error();
    if (sk_X509_num(rest) > 0) {
        char odd[256], top[256];

        subject_text(sk_X509_value(rest, 0), odd, sizeof(odd));
        subject_text(cur, top, sizeof(top));
        rc = aegis_err_set(err, -AEGIS_E_INVALID, chk->resource,
                           "%s: the certificates are not one chain: \"%s\" did not issue \"%s\" "
                           "(the top of the leaf's chain)%s; remove certificates that do not "
                           "belong to this chain, or add the intermediates that connect them",
                           field, odd, top,
                           sk_X509_num(rest) > 1 ? " nor do the others left over" : "");
        goto out;
    }
    *out = chain;
    chain = NULL;
out:
    sk_X509_free(rest);
    sk_X509_free(chain);
    return rc;
}

/* ---- validation ------------------------------------------------------------------------------- */

void import_result_init(struct import_result *res)
{
    memset(res, 0, sizeof(*res));
    store_record_init(&res->rec);
}

void import_result_dispose(struct import_result *res)
{
    store_record_dispose(&res->rec);
    import_result_init(res);
}

static int check_validity(STACK_OF(X509) * chain, const struct import_check *chk,
                          struct import_result *res, struct aegis_err *err)
{
    const char *field = field_or(chk->cert_field, "the certificate");
    char when[40], subj[256];
    int64_t nb, na;

    for (int i = 0; i < sk_X509_num(chain); i++) {
        X509 *c = sk_X509_value(chain, i);

        if (pki_cert_validity(c, &nb, &na) < 0)
            return aegis_err_set(err, -AEGIS_E_INVALID, chk->resource,
                                 "%s: a certificate's validity dates cannot be read", field);
        fmt_time(na, when, sizeof(when));
        subject_text(c, subj, sizeof(subj));
        if (chk->now >= na)
            return aegis_err_set(err, -AEGIS_E_INVALID, chk->resource,
                                 "%s: the %s \"%s\" expired on %s; renew it at its CA and import "
                                 "the new one",
                                 field, i == 0 ? "certificate" : "intermediate certificate", subj,
                                 when);
        if (i > 0)
            continue;
        if (na - chk->now < IMPORT_EXPIRY_WARN_S)
            warn(res, "%s: the certificate expires on %s, in %lld days; renew it soon", field, when,
                 (long long)((na - chk->now) / 86400));
        if (chk->now < nb) {
            fmt_time(nb, when, sizeof(when));
            warn(res, "%s: the certificate is not valid before %s; clients reject it until then",
                 field, when);
        }
    }
    return 0;
}

int import_validate(STACK_OF(X509) * certs, EVP_PKEY *key, const struct import_check *chk,
                    struct import_result *res, struct aegis_err *err)
{
    const char *cfield = field_or(chk->cert_field, "the certificate");
    const char *kfield = field_or(chk->key_field, "the private key");
    STACK_OF(X509) *chain = NULL;
    X509 *leaf = NULL;
    char desc[96], subj[256];
    int n = certs != NULL ? sk_X509_num(certs) : 0, rc;

    if (n <= 0)
        return aegis_err_set(err, -AEGIS_E_NOTFOUND, chk->resource,
                             "%s: no certificate found (expected \"BEGIN CERTIFICATE\" blocks, "
                             "the leaf first)",
                             cfield);
    if (n > AEGIS_LIMIT_CHAIN_CERTS)
        return aegis_err_set(err, -AEGIS_E_LIMIT, chk->resource,
                             "%s: %d certificates, over the limit of %d", cfield, n,
                             AEGIS_LIMIT_CHAIN_CERTS);
    /* The leaf is the certificate of the key, wherever it is in the list. */
    for (int i = 0; i < n && leaf == NULL; i++) {
        EVP_PKEY *pub = X509_get0_pubkey(sk_X509_value(certs, i));

        if (pub != NULL && EVP_PKEY_eq(pub, key) == 1)
            leaf = sk_X509_value(certs, i);
    }
    ERR_clear_error();
    if (leaf == NULL) {
        subject_text(sk_X509_value(certs, 0), subj, sizeof(subj));
        if (chk->source == IMPORT_SOURCE_CSR)
            return aegis_err_set(err, -AEGIS_E_INVALID, chk->resource,
                                 "%s: the certificate's public key does not match the key of the "
                                 "CSR made for %s; was it signed from another CSR? Sign the CSR "
                                 "printed by `aegisctl csr get`",
                                 cfield, chk->resource ? chk->resource : "this Certificate");
        return aegis_err_set(err, -AEGIS_E_INVALID, chk->resource,
                             "%s does not match %s%s (\"%s\"%s): give the key the certificate "
                             "was issued for, or the certificate of this key",
                             kfield, n > 1 ? "any certificate of " : "the certificate in ", cfield,
                             subj, n > 1 ? " and the others" : "");
    }
    if (!key_strong(key, desc, sizeof(desc)))
        return aegis_err_set(err, -AEGIS_E_INVALID, chk->resource,
                             "%s: the key is %s; the minimum is RSA 2048, ECDSA P-256 or "
                             "Ed25519: make a new key (e.g. openssl genpkey -algorithm EC "
                             "-pkeyopt ec_paramgen_curve:P-256) and get a certificate for it",
                             kfield, desc);
    rc = order_chain(certs, leaf, chk, &chain, err);
    if (rc < 0)
        goto out;
    rc = check_validity(chain, chk, res, err);
    if (rc < 0)
        goto out;
    rc = check_coverage(leaf, chk, err);
    if (rc < 0)
        goto out;

    store_record_dispose(&res->rec);
    rc = pki_chain_to_pem(chain, &res->rec.chain_pem, NULL, err);
    if (rc == 0)
        rc = pki_key_to_pem(key, &res->rec.key_pem, NULL, err);
    if (rc == 0)
        rc = store_meta_from_x509(&res->rec.meta, leaf, err);
    if (rc < 0) {
        blame(err, rc, chk, cfield);
        store_record_dispose(&res->rec);
        goto out;
    }
    res->rec.meta.source = aegis_strdup(import_source_names[chk->source]);
    res->rec.meta.updated_at = chk->now;
out:
    sk_X509_free(chain); /* borrowed certificates: only the stack is freed */
    return rc;
}

int import_pem(const char *chain_pem, size_t chain_len, const char *key_pem, size_t key_len,
               const struct import_check *chk, struct import_result *res, struct aegis_err *err)
{
    STACK_OF(X509) *certs = NULL;
    EVP_PKEY *key = NULL;
    int rc;

    rc = pki_chain_from_pem(chain_pem, chain_len, &certs, err);
    if (rc < 0) {
        blame(err, rc, chk, field_or(chk->cert_field, "the certificate"));
        goto out;
    }
    rc = pki_key_from_pem(key_pem, key_len, &key, err);
    if (rc < 0) {
        blame(err, rc, chk, field_or(chk->key_field, "the private key"));
        goto out;
    }
    rc = import_validate(certs, key, chk, res, err);
out:
    EVP_PKEY_free(key);
    pki_chain_free(certs);
    return rc;
}

/* ---- PKCS#12 ---------------------------------------------------------------------------------- */

/* Whether an iteration count is acceptable (a huge one would stall the controller). */
static bool iter_ok(const ASN1_INTEGER *iter)
{
    int64_t v = 0;

    if (iter == NULL)
        return true;
    return ASN1_INTEGER_get_int64(&v, iter) == 1 && v >= 0 && v <= AEGIS_LIMIT_PKCS12_ITERATIONS;
}

/* Whether the key derivation of a PBE algorithm (PKCS#12 PBE, PKCS#5 v1 or PBES2) is bounded. */
static bool pbe_ok(const X509_ALGOR *alg)
{
    const ASN1_OBJECT *oid = NULL;
    const void *pval = NULL;
    int ptype = 0;
    bool ok = true;

    if (alg == NULL)
        return true;
    X509_ALGOR_get0(&oid, &ptype, &pval, alg);
    if (ptype != V_ASN1_SEQUENCE)
        return true; /* no parameters to decode: the parse fails later */
    if (OBJ_obj2nid(oid) == NID_pbes2) {
        PBE2PARAM *p2 = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBE2PARAM), alg->parameter);
        const X509_ALGOR *kdf = p2 != NULL ? p2->keyfunc : NULL;

        if (kdf != NULL && OBJ_obj2nid(kdf->algorithm) == NID_id_pbkdf2 && kdf->parameter != NULL &&
            kdf->parameter->type == V_ASN1_SEQUENCE) {
            PBKDF2PARAM *kp =
                ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBKDF2PARAM), kdf->parameter);

            ok = kp == NULL || iter_ok(kp->iter);
            PBKDF2PARAM_free(kp);
        }
        PBE2PARAM_free(p2);
    } else {
        PBEPARAM *p = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBEPARAM), alg->parameter);

        ok = p == NULL || iter_ok(p->iter);
        PBEPARAM_free(p);
    }
    ERR_clear_error();
    return ok;
}

/*
 * Checks the iteration counts a bundle asks for before anything is derived from the password:
 * the MAC's, the encrypted contents', and those of shrouded key bags in plain contents.
 */
static bool p12_bounded(const PKCS12 *p12)
{
    const ASN1_INTEGER *mac_iter = NULL;
    STACK_OF(PKCS7) *safes = NULL;
    bool ok;

    PKCS12_get0_mac(NULL, NULL, NULL, &mac_iter, p12);
    ok = iter_ok(mac_iter);
    safes = ok ? PKCS12_unpack_authsafes(p12) : NULL;
    for (int i = 0; safes != NULL && ok && i < sk_PKCS7_num(safes); i++) {
        PKCS7 *p7 = sk_PKCS7_value(safes, i);
        int nid = OBJ_obj2nid(p7->type);

        if (nid == NID_pkcs7_encrypted && p7->d.encrypted != NULL &&
            p7->d.encrypted->enc_data != NULL) {
            ok = pbe_ok(p7->d.encrypted->enc_data->algorithm);
        } else if (nid == NID_pkcs7_data) {
            STACK_OF(PKCS12_SAFEBAG) *bags = PKCS12_unpack_p7data(p7);

            for (int j = 0; bags != NULL && ok && j < sk_PKCS12_SAFEBAG_num(bags); j++) {
                const PKCS12_SAFEBAG *bag = sk_PKCS12_SAFEBAG_value(bags, j);
                const X509_ALGOR *alg = NULL;

                if (PKCS12_SAFEBAG_get_nid(bag) != NID_pkcs8ShroudedKeyBag)
                    continue;
                X509_SIG_get0(PKCS12_SAFEBAG_get0_pkcs8(bag), &alg, NULL);
                ok = pbe_ok(alg);
            }
            sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
        }
    }
    sk_PKCS7_pop_free(safes, PKCS7_free);
    ERR_clear_error();
    return ok;
}

/*
 * OpenSSL 3 moved RC2 and single/triple DES, which older tools (and `openssl pkcs12 -export
 * -legacy`, Windows before 2019, Java keytool before 12) use to encrypt PKCS#12 bundles, into the
 * "legacy" provider, which is not loaded by default. It is loaded here only when a bundle needs
 * it, once per process, and stays loaded (with the default provider, which an explicit load would
 * otherwise stop OpenSSL from loading implicitly). Not thread-safe: the controller and aegisctl
 * import from one thread.
 */
static int load_legacy_provider(void)
{
    static OSSL_PROVIDER *legacy, *dflt;

    if (legacy != NULL)
        return 0;
    if (dflt == NULL)
        dflt = OSSL_PROVIDER_load(NULL, "default");
    legacy = OSSL_PROVIDER_load(NULL, "legacy");
    ERR_clear_error();
    return legacy != NULL ? 0 : -AEGIS_E_UNSUPPORTED;
}

/* Whether the last OpenSSL error says an algorithm is not available (no provider offers it). */
static bool unsupported_algorithm(void)
{
    unsigned long e;
    bool unsupported = false;

    while ((e = ERR_get_error()) != 0) {
        int lib = ERR_GET_LIB(e), reason = ERR_GET_REASON(e);

        if (reason == ERR_R_UNSUPPORTED || reason == ERR_R_FETCH_FAILED ||
            (lib == ERR_LIB_EVP &&
             (reason == EVP_R_UNSUPPORTED_ALGORITHM || reason == EVP_R_UNSUPPORTED_CIPHER)))
            unsupported = true;
    }
    return unsupported;
}

/* Verifies the MAC with password; *use becomes the form of "no password" that worked. */
static bool p12_mac_ok(PKCS12 *p12, const char *password, const char **use)
{
    bool ok;

    *use = password;
    if (password == NULL || password[0] == '\0') {
        /* "No password" is an empty BMPString in some bundles and absent in others. */
        ok = PKCS12_verify_mac(p12, NULL, 0) == 1;
        if (ok)
            *use = NULL;
        if (!ok && PKCS12_verify_mac(p12, "", 0) == 1) {
            ok = true;
            *use = "";
        }
    } else {
        ok = PKCS12_verify_mac(p12, password, -1) == 1;
    }
    ERR_clear_error();
    return ok;
}

int import_pkcs12(const unsigned char *der, size_t len, const char *password,
                  const struct import_check *chk, struct import_result *res, struct aegis_err *err)
{
    const char *field = field_or(chk->cert_field, "the PKCS#12 bundle");
    const char *use = password;
    const unsigned char *p = der;
    PKCS12 *p12 = NULL;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    STACK_OF(X509) *ca = NULL;
    int rc = 0, ok;

    if (len > AEGIS_LIMIT_SECRET_BYTES) {
        rc =
            aegis_err_set(err, -AEGIS_E_LIMIT, chk->resource, "%s: %zu bytes, over the limit of %u",
                          field, len, AEGIS_LIMIT_SECRET_BYTES);
        goto out;
    }
    if (password != NULL && strlen(password) > AEGIS_LIMIT_PKCS12_PASSWORD_BYTES) {
        rc = aegis_err_set(err, -AEGIS_E_LIMIT, chk->resource,
                           "%s: the password is longer than %d bytes", field,
                           AEGIS_LIMIT_PKCS12_PASSWORD_BYTES);
        goto out;
    }
    if (len > 0)
        p12 = d2i_PKCS12(NULL, &p, (long)len);
    if (p12 == NULL || p != der + len) {
        ERR_clear_error();
        rc = aegis_err_set(err, -AEGIS_E_INVALID, chk->resource,
                           "%s: not a PKCS#12 bundle (expected DER, as `openssl pkcs12 -export` "
                           "writes it; a PEM certificate and key go in spec.custom instead)",
                           field);
        goto out;
    }
    if (!p12_bounded(p12)) {
        rc = aegis_err_set(err, -AEGIS_E_LIMIT, chk->resource,
                           "%s: the bundle asks for more than %d key derivation iterations; "
                           "re-export it with fewer (openssl pkcs12 -export -iter 100000)",
                           field, AEGIS_LIMIT_PKCS12_ITERATIONS);
        goto out;
    }
    if (PKCS12_mac_present(p12) && !p12_mac_ok(p12, password, &use)) {
        if (password == NULL || password[0] == '\0')
            rc = aegis_err_set(err, -AEGIS_E_INVALID, chk->resource,
                               "%s: the bundle is protected by a password, and none was given: "
                               "set the password (spec.pkcs12.password, --password-file)",
                               field);
        else
            rc = aegis_err_set(err, -AEGIS_E_INVALID, chk->resource,
                               "%s: wrong password: the bundle's integrity check (MAC) fails "
                               "with the password given; check the password file or Secret key "
                               "(a trailing newline is ignored)",
                               field);
        goto out;
    }
    ok = PKCS12_parse(p12, use, &key, &cert, &ca);
    if (!ok && unsupported_algorithm()) {
        if (load_legacy_provider() < 0) {
            rc = aegis_err_set(err, -AEGIS_E_UNSUPPORTED, chk->resource,
                               "%s: the bundle is encrypted with a legacy algorithm (RC2 or "
                               "3DES) and OpenSSL's legacy provider cannot be loaded; install it "
                               "(ossl-modules/legacy.so) or re-export the bundle with AES "
                               "(docs/custom-certificates.md)",
                               field);
            goto out;
        }
        ok = PKCS12_parse(p12, use, &key, &cert, &ca);
    }
    ERR_clear_error();
    if (!ok) {
        rc = aegis_err_set(err, -AEGIS_E_INVALID, chk->resource,
                           "%s: the bundle cannot be decrypted or read (a wrong password when "
                           "the bundle has no MAC, or a damaged file); export it again",
                           field);
        goto out;
    }
    if (key == NULL) {
        rc = aegis_err_set(err, -AEGIS_E_INVALID, chk->resource,
                           "%s: the bundle holds no private key; export it with the key "
                           "(openssl pkcs12 -export -inkey key.pem -in chain.pem)",
                           field);
        goto out;
    }
    if (ca == NULL)
        ca = sk_X509_new_null();
    /* The leaf is found by its key in import_validate; its place in the stack does not matter. */
    if (ca == NULL || (cert != NULL && sk_X509_insert(ca, cert, 0) <= 0)) {
        rc = aegis_err_set(err, -AEGIS_E_CRYPTO, chk->resource, "out of memory");
        goto out;
    }
    cert = NULL;
    rc = import_validate(ca, key, chk, res, err);
out:
    EVP_PKEY_free(key);
    X509_free(cert);
    pki_chain_free(ca);
    PKCS12_free(p12);
    return rc;
}

void import_password_trim(char *password, size_t *len)
{
    size_t n = *len;

    if (password == NULL)
        return;
    if (n > 0 && password[n - 1] == '\n')
        n--;
    if (n > 0 && password[n - 1] == '\r')
        n--;
    password[n] = '\0';
    *len = n;
}

/* ---- from a Certificate spec ------------------------------------------------------------------ */

/* Reads a FileOrSecret into a new buffer (free with pki_secret_free). */
static int read_file_or_secret(const struct aegis_file_or_secret *src, const char *ns,
                               const char *secrets_dir, const char *what, char **buf, size_t *len,
                               struct aegis_err *err)
{
    if (src->file != NULL)
        return secret_read_file(src->file, what, buf, len, err);
    if (src->secret_ref.name != NULL)
        return secret_read(secrets_dir, ns, src->secret_ref.name, src->secret_ref.key, buf, len,
                           err);
    *buf = NULL;
    *len = 0;
    aegis_err_set(err, -AEGIS_E_INVALID, what, "%s: give file or secretRef", what);
    return -AEGIS_E_INVALID;
}

int import_from_spec(const struct aegis_certificate_spec *spec, const char *ns, const char *name,
                     const char *secrets_dir, int64_t now, struct import_result *res,
                     struct aegis_err *err)
{
    bool p12 = API_HAS(spec, API_F_CERTIFICATE_SPEC_PKCS12);
    char resource[STORE_ID_STR_MAX + 16];
    char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    struct import_check chk;
    int rc;

    snprintf(resource, sizeof(resource), "Certificate %s/%s", ns, name);
    memset(&chk, 0, sizeof(chk));
    chk.resource = resource;
    chk.dns = (struct pki_strs){spec->dns_names.v, spec->dns_names.n};
    chk.ip = (struct pki_strs){spec->ip_addresses.v, spec->ip_addresses.n};
    chk.now = now;
    if (p12) {
        chk.source = IMPORT_SOURCE_PKCS12;
        chk.cert_field = "spec.pkcs12.bundle";
        chk.key_field = "spec.pkcs12.bundle";
        rc = read_file_or_secret(&spec->pkcs12.bundle, ns, secrets_dir, chk.cert_field, &a, &alen,
                                 err);
        if (rc < 0) {
            blame(err, rc, &chk, chk.cert_field);
            goto out;
        }
        if (API_HAS(&spec->pkcs12, API_F_PKCS12_CERTIFICATE_PASSWORD)) {
            rc = read_file_or_secret(&spec->pkcs12.password, ns, secrets_dir,
                                     "spec.pkcs12.password", &b, &blen, err);
            if (rc < 0) {
                blame(err, rc, &chk, "spec.pkcs12.password");
                goto out;
            }
            import_password_trim(b, &blen);
        }
        rc = import_pkcs12((const unsigned char *)a, alen, b, &chk, res, err);
    } else if (API_HAS(spec, API_F_CERTIFICATE_SPEC_CUSTOM)) {
        chk.source = IMPORT_SOURCE_CUSTOM;
        chk.cert_field = "spec.custom.certificate";
        chk.key_field = "spec.custom.privateKey";
        rc = secret_read_pem_source(&spec->custom.certificate, ns, secrets_dir, chk.cert_field, &a,
                                    &alen, err);
        if (rc < 0) {
            blame(err, rc, &chk, chk.cert_field);
            goto out;
        }
        rc = secret_read_pem_source(&spec->custom.private_key, ns, secrets_dir, chk.key_field, &b,
                                    &blen, err);
        if (rc < 0) {
            blame(err, rc, &chk, chk.key_field);
            goto out;
        }
        rc = import_pem(a, alen, b, blen, &chk, res, err);
    } else {
        rc = aegis_err_set(err, -AEGIS_E_INVALID, resource,
                           "spec: neither custom nor pkcs12 is set; nothing to import");
    }
out:
    pki_secret_free(a, alen);
    pki_secret_free(b, blen);
    return rc;
}

/* ---- storing ---------------------------------------------------------------------------------- */

int import_store(struct store *st, const char *ns, const char *name,
                 const struct import_result *res, bool *unchanged, struct aegis_err *err)
{
    struct store_record old;
    struct store_id id;
    int rc;

    store_record_init(&old);
    if (unchanged != NULL)
        *unchanged = false;
    rc = store_id_set(&id, STORE_KIND_CERTIFICATE, ns, name, err);
    if (rc < 0)
        goto out;
    rc = store_get_public(st, &id, &old, err);
    if (rc == 0 && old.chain_pem != NULL && res->rec.chain_pem != NULL &&
        strcmp(old.meta.fingerprint, res->rec.meta.fingerprint) == 0 &&
        strcmp(old.chain_pem, res->rec.chain_pem) == 0) {
        /* The same certificate and chain: a no-op, so the revision and history stay as they are. */
        if (unchanged != NULL)
            *unchanged = true;
        goto out;
    }
    if (rc < 0 && rc != -AEGIS_E_NOTFOUND)
        goto out;
    rc = store_put(st, &id, &res->rec, err);
out:
    store_record_dispose(&old);
    return rc;
}
