/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pusher (push.h). One easy handle per call: pushes are rare (a configuration changes when
 * resources or certificates do), and a fresh handle keeps no state between dataplane restarts.
 */
#include "push.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/alloc.h"

/* How many of a refused configuration's errors are named in the message. */
#define PUSH_ERRORS_NAMED 3

struct answer {
    char *buf;
    size_t len;
    bool too_big;
};

static size_t on_data(char *data, size_t size, size_t n, void *arg)
{
    struct answer *a = arg;
    size_t add = size * n;

    if (a->len + add > PUSH_ANSWER_MAX) {
        a->too_big = true;
        return 0; /* stops the transfer */
    }
    a->buf = aegis_realloc(a->buf, a->len + add + 1);
    memcpy(a->buf + a->len, data, add);
    a->len += add;
    a->buf[a->len] = '\0';
    return add;
}

const char *push_target_name(const struct push_target *t)
{
    return t->unix_socket != NULL ? t->unix_socket : t->url != NULL ? t->url : "(no dataplane)";
}

/* Performs method path with an optional body; *code and the answer on success. */
static int request(const struct push_target *t, const char *method, const char *path,
                   const char *body, size_t len, long *code, struct answer *a,
                   struct aegis_err *err)
{
    CURL *c = curl_easy_init();
    struct curl_slist *headers = NULL;
    char url[1024], curl_err[CURL_ERROR_SIZE] = "";
    CURLcode rc;

    if (c == NULL)
        return aegis_err_set(err, -ENOMEM, push_target_name(t), "cannot make an HTTP client");
    if (t->unix_socket != NULL) {
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, t->unix_socket);
        snprintf(url, sizeof(url), "http://localhost%s", path);
    } else {
        snprintf(url, sizeof(url), "%s%s", t->url != NULL ? t->url : "", path);
        /* Private keys travel in the body: never over anything but verified mutual TLS. */
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
        curl_easy_setopt(c, CURLOPT_SSLCERT, t->cert_file);
        curl_easy_setopt(c, CURLOPT_SSLKEY, t->key_file);
        curl_easy_setopt(c, CURLOPT_CAINFO, t->ca_file);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                     t->timeout_ms > 0 ? t->timeout_ms : PUSH_TIMEOUT_MS_DEFAULT);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    if (body != NULL) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        /* No "Expect: 100-continue" round trip for a local dataplane. */
        headers = curl_slist_append(headers, "Expect:");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, code);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    if (a->too_big)
        return aegis_err_set(err, -AEGIS_E_LIMIT, push_target_name(t),
                             "the dataplane's answer is larger than %d bytes", PUSH_ANSWER_MAX);
    if (rc != CURLE_OK)
        return aegis_err_set(err, -EIO, push_target_name(t),
                             "cannot reach the dataplane: %s; is it running?",
                             curl_err[0] != '\0' ? curl_err : curl_easy_strerror(rc));
    return 0;
}

/* "hosts[0].tls.privateKeyPEM: ...; hosts[2]...: ... (and 4 more)" from a refusal's errors. */
static void refusal_message(const char *body, char *buf, size_t size)
{
    json_t *doc = json_loads(body != NULL ? body : "", 0, NULL);
    json_t *errors = json_object_get(doc, "errors"), *e;
    size_t i, used = 0;

    buf[0] = '\0';
    json_array_foreach(errors, i, e)
    {
        int n;

        if (i == PUSH_ERRORS_NAMED) {
            snprintf(buf + used, size - used, " (and %zu more)", json_array_size(errors) - i);
            break;
        }
        n = snprintf(buf + used, size - used, "%s%s: %s", i ? "; " : "",
                     json_string_value(json_object_get(e, "path")) != NULL
                         ? json_string_value(json_object_get(e, "path"))
                         : "(document)",
                     json_string_value(json_object_get(e, "message")) != NULL
                         ? json_string_value(json_object_get(e, "message"))
                         : "(no message)");
        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
    }
    if (buf[0] == '\0')
        snprintf(buf, size, "%.200s", body != NULL && body[0] != '\0' ? body : "no reason given");
    json_decref(doc);
}

int push_config(const struct push_target *t, const char *json, size_t len, struct aegis_err *err)
{
    struct answer a = {0};
    char why[AEGIS_ERR_MSG_MAX];
    long code = 0;
    int rc = request(t, "PUT", "/config", json, len, &code, &a, err);

    if (rc < 0)
        goto out;
    if (code == 200 || code == 201 || code == 204) {
        rc = 0;
    } else if (code == 409) {
        refusal_message(a.buf, why, sizeof(why));
        rc = aegis_err_set(err, -AEGIS_E_STATE, push_target_name(t),
                           "the dataplane holds a newer configuration: %s", why);
    } else if (code == 400 || code == 422) {
        refusal_message(a.buf, why, sizeof(why));
        rc = aegis_err_set(err, -AEGIS_E_INVALID, push_target_name(t),
                           "the dataplane refused the configuration: %s", why);
    } else {
        rc = aegis_err_set(err, -AEGIS_E_UNSUPPORTED, push_target_name(t),
                           "unexpected answer %ld to PUT /config: %.200s", code,
                           a.buf != NULL ? a.buf : "");
    }
out:
    free(a.buf);
    return rc;
}

int push_status(const struct push_target *t, json_t **status, struct aegis_err *err)
{
    struct answer a = {0};
    long code = 0;
    int rc = request(t, "GET", "/status", NULL, 0, &code, &a, err);

    *status = NULL;
    if (rc == 0 && code != 200)
        rc = aegis_err_set(err, -AEGIS_E_UNSUPPORTED, push_target_name(t),
                           "unexpected answer %ld to GET /status", code);
    if (rc == 0) {
        *status = json_loads(a.buf != NULL ? a.buf : "", 0, NULL);
        if (*status == NULL)
            rc = aegis_err_set(err, -AEGIS_E_SYNTAX, push_target_name(t),
                               "GET /status did not answer JSON");
    }
    free(a.buf);
    return rc;
}
