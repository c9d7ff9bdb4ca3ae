/* SPDX-License-Identifier: Apache-2.0 */
/*
 * POST /hosts/{name}/test-upstream-tls: one TLS handshake with a host's first upstream through the
 * very client context its proxy uses (CA bundle or system store, client certificate, expected
 * name, insecureSkipVerify), with the SNI the proxy sends, under one 5-second deadline for the
 * name lookup, the connection and the handshake. It runs on the admin thread, blocking (poll)
 * until the deadline at most.
 *
 * The answer classifies a failure for the operator: unknown_authority, bad_certificate,
 * certificate_required, key_mismatch, expired, hostname_mismatch, connect_failed, timeout,
 * handshake_failed (with OpenSSL's words in "detail"), and lists the chain the upstream sent.
 *
 * Under TLS 1.3 a server rejects the client's certificate after the client has finished its side
 * of the handshake, so a successful SSL_connect is followed by a short read that would receive
 * that alert (certificate_required or bad_certificate).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "admin_control.h"
#include "aegis/clock.h"
#include "aegis/pki.h"
#include "gen.h"
#include "handler/handler.h"

/* The whole test: name lookup, connect and handshake. */
#define TEST_TIMEOUT_MS 5000
/* After a TLS 1.3 handshake: how long to wait for the server's verdict on our certificate. */
#define POST_HANDSHAKE_MS 300

struct outcome {
    const char *error; /* NULL: success */
    char detail[512];
};

static int remaining(int64_t deadline)
{
    int64_t left = deadline - aegis_monotonic_ms();

    return left > 0 ? (int)left : 0;
}

static void fail(struct outcome *o, const char *error, const char *what, const char *arg)
{
    o->error = error;
    snprintf(o->detail, sizeof(o->detail), "%s%s", what, arg);
}

/* A connected, non-blocking socket to host:port before the deadline, or -1 (o filled). */
static int connect_upstream(const char *host, uint16_t port, int64_t deadline, struct outcome *o)
{
    struct addrinfo hints, *res = NULL;
    char portstr[8];
    int fd = -1, r;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portstr, sizeof(portstr), "%u", port);
    r = getaddrinfo(host, portstr, &hints, &res);
    if (r != 0) {
        fail(o, "connect_failed", "cannot resolve the upstream: ", gai_strerror(r));
        return -1;
    }
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        struct pollfd pfd;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);

        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
            fail(o, "connect_failed", "", strerror(errno));
            close(fd);
            fd = -1;
            continue;
        }
        pfd.fd = fd;
        pfd.events = POLLOUT;
        r = poll(&pfd, 1, remaining(deadline));
        if (r == 0) {
            fail(o, "timeout", "", "no TCP connection before the deadline");
            close(fd);
            fd = -1;
            break;
        }
        if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
            fail(o, "connect_failed", "", strerror(soerr ? soerr : errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

/* Waits for what SSL wants (r is the SSL_* return); false on timeout or a hard error. */
static bool wait_ssl(SSL *ssl, int fd, int r, int timeout_ms)
{
    int e = SSL_get_error(ssl, r);
    struct pollfd pfd = {.fd = fd};

    if (e == SSL_ERROR_WANT_READ)
        pfd.events = POLLIN;
    else if (e == SSL_ERROR_WANT_WRITE)
        pfd.events = POLLOUT;
    else
        return false;
    return poll(&pfd, 1, timeout_ms) > 0;
}

static const char *classify_verify(long v)
{
    switch (v) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        return "unknown_authority";
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return "expired";
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return "hostname_mismatch";
    default:
        return "bad_certificate";
    }
}

/* Classifies a failed handshake from the verify result and OpenSSL's error queue. */
static void classify(SSL *ssl, struct outcome *o)
{
    long v = SSL_get_verify_result(ssl);
    unsigned long e = ERR_peek_last_error();
    char buf[256] = "";

    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    if (v != X509_V_OK) {
        o->error = classify_verify(v);
        snprintf(o->detail, sizeof(o->detail), "certificate verification: %s",
                 X509_verify_cert_error_string(v));
        return;
    }
    switch (ERR_GET_REASON(e)) {
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
        o->error = "certificate_required";
        break;
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
        o->error = "bad_certificate";
        break;
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
        o->error = "expired";
        break;
    case SSL_R_BAD_SIGNATURE:
        /* The server's CertificateVerify does not verify with its certificate's key. */
        o->error = "key_mismatch";
        break;
    case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
        /* What a TLS 1.2 server that requires a client certificate answers when none comes. */
        o->error = SSL_get_certificate(ssl) == NULL ? "certificate_required" : "handshake_failed";
        break;
    default:
        o->error = "handshake_failed";
    }
    snprintf(o->detail, sizeof(o->detail), "%s", buf[0] ? buf : "the handshake failed");
}

static void handshake(SSL *ssl, int fd, int64_t deadline, struct outcome *o)
{
    char byte;
    int r;

    for (;;) {
        ERR_clear_error();
        r = SSL_connect(ssl);
        if (r == 1)
            break;
        if (!wait_ssl(ssl, fd, r, remaining(deadline))) {
            if (SSL_get_error(ssl, r) == SSL_ERROR_WANT_READ ||
                SSL_get_error(ssl, r) == SSL_ERROR_WANT_WRITE)
                fail(o, "timeout", "", "no complete handshake before the deadline");
            else
                classify(ssl, o);
            return;
        }
    }
    if (SSL_version(ssl) < TLS1_3_VERSION)
        return;
    /* Waits briefly for a rejection of our certificate; tickets or silence mean acceptance. */
    for (int64_t until = aegis_monotonic_ms() + POST_HANDSHAKE_MS; aegis_monotonic_ms() < until;) {
        ERR_clear_error();
        r = SSL_read(ssl, &byte, 1);
        if (r > 0)
            return;
        if (SSL_get_error(ssl, r) == SSL_ERROR_ZERO_RETURN)
            return;
        if (!wait_ssl(ssl, fd, r, remaining(until))) {
            if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ &&
                SSL_get_error(ssl, r) != SSL_ERROR_WANT_WRITE)
                classify(ssl, o);
            return;
        }
    }
}

static json_t *chain_json(SSL *ssl)
{
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    json_t *out = json_array();

    for (int i = 0; chain != NULL && i < sk_X509_num(chain); i++) {
        X509 *x = sk_X509_value(chain, i);
        char subject[512], issuer[512], serial[PKI_SERIAL_HEX_SIZE] = "", not_after[32] = "";
        int64_t na = 0;
        time_t t;
        struct tm tm;

        X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof(subject));
        X509_NAME_oneline(X509_get_issuer_name(x), issuer, sizeof(issuer));
        pki_serial_hex(x, serial);
        if (pki_cert_validity(x, NULL, &na) == 0) {
            t = (time_t)na;
            gmtime_r(&t, &tm);
            strftime(not_after, sizeof(not_after), "%Y-%m-%dT%H:%M:%SZ", &tm);
        }
        json_array_append_new(out, json_pack("{s:s,s:s,s:s,s:s}", "subject", subject, "issuer",
                                             issuer, "notAfter", not_after, "serial", serial));
    }
    return out;
}

char *dp_admin_test_upstream_tls(const struct dp_vhost *v)
{
    const struct rconf_host *h = v->host;
    const struct rconf_upstream *u = &h->upstreams[0];
    const char *name = dp_proxy_upstream_name(h, u);
    int64_t deadline = aegis_monotonic_ms() + TEST_TIMEOUT_MS;
    struct outcome o = {NULL, ""};
    unsigned char ip[16];
    json_t *doc, *chain = NULL;
    SSL *ssl = NULL;
    char *text;
    int fd = -1;

    if (!u->tls || v->upstream_ssl == NULL) {
        fail(&o, "not_tls", "the first upstream is not https://: ", u->url);
        goto out;
    }
    fd = connect_upstream(u->host, u->port, deadline, &o);
    if (fd < 0)
        goto out;
    ssl = SSL_new(v->upstream_ssl);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        fail(&o, "handshake_failed", "", "cannot create the TLS connection");
        goto out;
    }
    /* SNI is a DNS name only (RFC 6066 3); the proxy sends none for an IP address either. */
    if (inet_pton(AF_INET, name, ip) != 1 && inet_pton(AF_INET6, name, ip) != 1)
        SSL_set_tlsext_host_name(ssl, name);
    handshake(ssl, fd, deadline, &o);
    chain = chain_json(ssl);
out:
    doc = json_pack("{s:b,s:s,s:s,s:s}", "ok", o.error == NULL, "upstream", u->url, "serverName",
                    name, "detail", o.error == NULL ? "handshake completed" : o.detail);
    json_object_set_new(doc, "error", o.error != NULL ? json_string(o.error) : json_null());
    json_object_set_new(doc, "chain", chain != NULL ? chain : json_array());
    if (ssl != NULL) {
        json_object_set_new(doc, "protocol", json_string(SSL_get_version(ssl)));
        SSL_free(ssl);
    }
    ERR_clear_error();
    if (fd >= 0)
        close(fd);
    text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}
