/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the custom certificate import (controller/import.c): any
 * bytes are given to import_pem as both the PEM chain and the PEM key (so one
 * input can carry certificates and a key, as the seeds do), and to
 * import_pkcs12 as a DER bundle with a fixed password. Each call must either
 * succeed with a complete record (leaf-first chain, key, fingerprint, source)
 * or fail with a message that holds no key material; no crash, leak, undefined
 * behaviour or over-read.
 *
 * The seeds under corpus/import/ are TEST-ONLY throwaway keys and certificates
 * made once with the openssl CLI (valid until 2126, for the names app.test and
 * *.app.test); PKCS#12 seeds use the password below, one uses none and one the
 * legacy RC2/3DES encryption.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/err.h"
#include "import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NOW 4102444800LL /* 2100-01-01: inside the seeds' validity */
static const char PASSWORD[] = "aegis-fuzz-test-only";

static void check_outcome(int rc, const struct import_result *res, const struct aegis_err *err)
{
    if (rc == 0) {
        if (res->rec.chain_pem == NULL || res->rec.key_pem == NULL ||
            strlen(res->rec.meta.fingerprint) != 64 || res->rec.meta.source == NULL ||
            strncmp(res->rec.chain_pem, "-----BEGIN CERTIFICATE-----", 27) != 0)
            abort();
        return;
    }
    /* A message may name a PEM label ("BEGIN PRIVATE KEY"), never quote a PEM
   * block. */
    if (rc >= 0 || err->msg[0] == '\0' || strstr(err->msg, "-----") != NULL ||
        res->rec.chain_pem != NULL || res->rec.key_pem != NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *dns[] = {"app.test"};
    struct import_check chk;
    struct import_result res;
    struct aegis_err err;
    char *text = malloc(size + 1);
    int rc;

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    memset(&chk, 0, sizeof(chk));
    chk.resource = "Certificate fuzz/import";
    chk.cert_field = "spec.custom.certificate";
    chk.key_field = "spec.custom.privateKey";
    chk.dns = (struct pki_strs){dns, 1};
    chk.now = FUZZ_NOW;
    chk.source = IMPORT_SOURCE_CUSTOM;

    import_result_init(&res);
    memset(&err, 0, sizeof(err));
    rc = import_pem(text, size, text, size, &chk, &res, &err);
    check_outcome(rc, &res, &err);
    import_result_dispose(&res);

    chk.source = IMPORT_SOURCE_PKCS12;
    chk.cert_field = chk.key_field = "spec.pkcs12.bundle";
    memset(&err, 0, sizeof(err));
    rc = import_pkcs12(data, size, PASSWORD, &chk, &res, &err);
    check_outcome(rc, &res, &err);
    import_result_dispose(&res);

    free(text);
    return 0;
}
