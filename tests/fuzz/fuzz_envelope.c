/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the envelope decoder (common/envelope.c): any bytes given to
 * envelope_open with a fixed key and record identity must be refused with an error and no
 * plaintext, or (for a real envelope of that key, as the seeds are) open; an opened value must
 * seal and open again to the same bytes. No crash, leak, undefined behaviour or over-read.
 * The seeds under corpus/envelope/ were sealed with the key 00 01 02 ... 1f and the identity
 * below.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/envelope.h"
#include "aegis/masterkey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char AAD[] = "certificate/default/app/tls.key";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct aegis_keyring ring;
    static int ready;
    unsigned char *pt = NULL, *again = NULL, *env = NULL, id[MASTERKEY_ID_BYTES];
    size_t ptlen = 0, againlen = 0, envlen = 0;
    struct aegis_err err;
    int rc;

    if (!ready) {
        unsigned char key[MASTERKEY_BYTES];
        struct aegis_masterkey mk;

        for (size_t i = 0; i < sizeof(key); i++)
            key[i] = (unsigned char)i;
        masterkey_set(&mk, key);
        masterkey_ring_init(&ring);
        masterkey_ring_add(&ring, &mk, NULL);
        ready = 1;
    }
    (void)envelope_key_id(data, size, id);
    rc = envelope_open(&ring, AAD, data, size, &pt, &ptlen, &err);
    if (rc < 0) {
        if (pt != NULL || ptlen != 0 || err.msg[0] == '\0')
            abort();
        return 0;
    }
    if (pt == NULL || ptlen + 44 != size || pt[ptlen] != '\0')
        abort();
    if (envelope_seal(masterkey_ring_current(&ring), AAD, pt, ptlen, &env, &envlen, &err) != 0 ||
        envelope_open(&ring, AAD, env, envlen, &again, &againlen, &err) != 0 || againlen != ptlen ||
        memcmp(again, pt, ptlen) != 0)
        abort();
    envelope_free_plaintext(pt, ptlen);
    envelope_free_plaintext(again, againlen);
    free(env);
    return 0;
}
