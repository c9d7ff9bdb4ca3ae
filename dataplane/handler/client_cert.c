/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The verified edge client certificate, passed upstream in request headers:
 *   X-Client-Cert-Verified: SUCCESS | NONE
 *   X-Client-Cert-Subject:  the subject as an RFC 2253 string ("CN=client.test,O=Example")
 *   X-Client-Cert-SAN:      the subject alternative names, "DNS:a.example, IP:10.0.0.1,
 *                           email:x@example, URI:spiffe://..." (the notation of openssl x509)
 * They are sent for HTTPS hosts with clientAuth optional or require: SUCCESS with subject and SAN
 * when the handshake verified a certificate against the host's CA bundle, NONE otherwise. Any
 * header of these names sent by the client is removed first, on every host and every listener,
 * so that an upstream can trust them.
 */
#include <arpa/inet.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/x509v3.h>

#include "conn.h"
#include "handler.h"

#define HDR_VERIFIED "x-client-cert-verified"
#define HDR_SUBJECT "x-client-cert-subject"
#define HDR_SAN "x-client-cert-san"
/* Longest header value built here; a longer subject or SAN list is cut (a CA-issued certificate
 * has no reason to come near it). */
#define VALUE_MAX 4096

static void strip(h2o_req_t *req, const char *name, size_t len)
{
    ssize_t i;

    while ((i = h2o_find_header_by_str(&req->headers, name, len, -1)) != -1)
        h2o_delete_header(&req->headers, i);
}

/* Copies len bytes of s into the request's pool as a header value: control characters (which
 * could end the header line) become '?'. */
static h2o_iovec_t header_value(h2o_req_t *req, const char *s, size_t len)
{
    char *v;

    if (len > VALUE_MAX)
        len = VALUE_MAX;
    v = h2o_mem_alloc_pool(&req->pool, len + 1);
    memcpy(v, s, len);
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
            v[i] = '?';
    }
    v[len] = '\0';
    return h2o_iovec_init(v, len);
}

static void add(h2o_req_t *req, const char *name, size_t len, h2o_iovec_t value)
{
    h2o_add_header_by_str(&req->pool, &req->headers, name, len, 0, NULL, value.base, value.len);
}

static void add_subject(h2o_req_t *req, X509 *cert)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;
    long len;

    if (bio == NULL)
        return;
    if (X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
        len = BIO_get_mem_data(bio, &data);
        if (len > 0)
            add(req, H2O_STRLIT(HDR_SUBJECT), header_value(req, data, (size_t)len));
    }
    BIO_free(bio);
}

static void add_san(h2o_req_t *req, X509 *cert)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    char buf[VALUE_MAX + 1];
    size_t off = 0;

    if (names == NULL)
        return;
    for (int i = 0; i < sk_GENERAL_NAME_num(names) && off < VALUE_MAX; i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        const char *prefix = NULL;
        char ip[INET6_ADDRSTRLEN];
        const unsigned char *v = NULL;
        int vlen = 0;
        int n;

        switch (gn->type) {
        case GEN_DNS:
            prefix = "DNS";
            v = ASN1_STRING_get0_data(gn->d.dNSName);
            vlen = ASN1_STRING_length(gn->d.dNSName);
            break;
        case GEN_EMAIL:
            prefix = "email";
            v = ASN1_STRING_get0_data(gn->d.rfc822Name);
            vlen = ASN1_STRING_length(gn->d.rfc822Name);
            break;
        case GEN_URI:
            prefix = "URI";
            v = ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier);
            vlen = ASN1_STRING_length(gn->d.uniformResourceIdentifier);
            break;
        case GEN_IPADD: {
            int alen = ASN1_STRING_length(gn->d.iPAddress);
            int af = alen == 4 ? AF_INET : alen == 16 ? AF_INET6 : -1;

            if (af < 0 ||
                inet_ntop(af, ASN1_STRING_get0_data(gn->d.iPAddress), ip, sizeof(ip)) == NULL)
                continue;
            prefix = "IP";
            v = (const unsigned char *)ip;
            vlen = (int)strlen(ip);
            break;
        }
        default:
            continue; /* otherName, directoryName, ...: no agreed text form */
        }
        n = snprintf(buf + off, sizeof(buf) - off, "%s%s:%.*s", off > 0 ? ", " : "", prefix, vlen,
                     (const char *)v);
        if (n < 0)
            break;
        off += (size_t)n;
    }
    GENERAL_NAMES_free(names);
    if (off > VALUE_MAX)
        off = VALUE_MAX;
    if (off > 0)
        add(req, H2O_STRLIT(HDR_SAN), header_value(req, buf, off));
}

void dp_client_cert_headers(h2o_req_t *req, const struct rconf_host *h)
{
    const struct dp_conn *conn;
    X509 *cert = NULL;

    strip(req, H2O_STRLIT(HDR_VERIFIED));
    strip(req, H2O_STRLIT(HDR_SUBJECT));
    strip(req, H2O_STRLIT(HDR_SAN));
    if (!h->tls || h->client_auth.mode == RCONF_CLIENT_AUTH_NONE ||
        req->input.scheme != &H2O_URL_SCHEME_HTTPS)
        return;
    conn = dp_conn_of_req(req);
    if (conn != NULL && conn->ssl != NULL && SSL_get_verify_result(conn->ssl) == X509_V_OK)
        cert = SSL_get0_peer_certificate(conn->ssl);
    if (cert == NULL) {
        add(req, H2O_STRLIT(HDR_VERIFIED), h2o_iovec_init(H2O_STRLIT("NONE")));
        return;
    }
    add(req, H2O_STRLIT(HDR_VERIFIED), h2o_iovec_init(H2O_STRLIT("SUCCESS")));
    add_subject(req, cert);
    add_san(req, cert);
}
