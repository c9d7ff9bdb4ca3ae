/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for common/envelope.c: AES-256-GCM known-answer vectors (the GCM specification's
 * 256-bit test cases 13-16, McGrew & Viega, and NIST CAVP gcmEncryptExtIV256), first through the
 * raw GCM step and then through the envelope with the nonce injected; then every way an envelope
 * can be wrong - each byte of header, nonce, ciphertext and tag flipped, wrong associated data,
 * wrong key, truncation, extension, limits - is refused without plaintext.
 */
#define AEGIS_ENVELOPE_TESTING
#include "aegis/envelope.h"

#include <stdlib.h>
#include <string.h>

#include "aegis/err.h"
#include "aegis/limits.h"
#include "aegis/masterkey.h"
#include "check.h"

struct kat {
    const char *name;
    const char *key, *iv, *aad, *pt, *ct, *tag;
};

static const struct kat kats[] = {
    {"GCM spec test case 13 (empty)",
     "0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
     "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
    {"GCM spec test case 14 (one block)",
     "0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
     "", "00000000000000000000000000000000", "cea7403d4d606b6e074ec5d3baf39d18",
     "d0d1c8a799996bf0265b98b5d48ab919"},
    {"GCM spec test case 15 (four blocks, no AAD)",
     "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"},
    {"GCM spec test case 16 (AAD, partial block)",
     "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
    {"CAVP gcmEncryptExtIV256 PTlen=0 AADlen=0 count 0",
     "b52c505a37d78eda5dd34f20c22540ea1b58963cf8e5bf8ffa85f9f2492505b4", "516c33929df5a3284ff463d7",
     "", "", "", "bdc1ac884d332457a1d2664f168c76f0"},
    {"CAVP gcmEncryptExtIV256 PTlen=128 AADlen=0",
     "31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822666b8f22", "0d18e06c7c725ac9e362e1ce",
     "", "2db5168e932556f8089a0622981d017d", "fa4362189661d163fcd6a56d8bf0405a",
     "d636ac1bbedd5cc3ee727dc2ab4a9489"},
};

static const char AAD[] = "certificate/default/app/tls.key";

/* Decodes hex into a new buffer (never NULL, so zero-length data still has a pointer). */
static unsigned char *unhex(const char *hex, size_t *n)
{
    size_t len = strlen(hex) / 2;
    unsigned char *out = malloc(len + 1);

    for (size_t i = 0; i < len; i++) {
        unsigned v = 0;

        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (unsigned char)v;
    }
    *n = len;
    return out;
}

static void test_kat_raw(const struct kat *k)
{
    size_t klen, ivlen, alen, ptlen, ctlen, taglen;
    unsigned char *key = unhex(k->key, &klen), *iv = unhex(k->iv, &ivlen);
    unsigned char *aad = unhex(k->aad, &alen), *pt = unhex(k->pt, &ptlen);
    unsigned char *ct = unhex(k->ct, &ctlen), *tag = unhex(k->tag, &taglen);
    unsigned char *out = malloc(ptlen + 1), *back = malloc(ptlen + 1), gtag[16];
    char what[160];
    int rc;

    rc = envelope__gcm_raw(true, key, iv, ivlen, aad, alen, pt, ptlen, out, gtag);
    snprintf(what, sizeof(what), "raw encrypt: %s", k->name);
    CHECK(rc == 0 && memcmp(out, ct, ctlen) == 0 && memcmp(gtag, tag, 16) == 0, what);
    rc = envelope__gcm_raw(false, key, iv, ivlen, aad, alen, ct, ctlen, back, tag);
    snprintf(what, sizeof(what), "raw decrypt: %s", k->name);
    CHECK(rc == 0 && memcmp(back, pt, ptlen) == 0, what);
    tag[15] ^= 1;
    rc = envelope__gcm_raw(false, key, iv, ivlen, aad, alen, ct, ctlen, back, tag);
    snprintf(what, sizeof(what), "raw decrypt refuses a wrong tag: %s", k->name);
    CHECK_INT(rc, -AEGIS_E_CRYPTO, what);
    free(key), free(iv), free(aad), free(pt), free(ct), free(tag), free(out), free(back);
}

/*
 * The vector through the envelope, nonce injected: the ciphertext bytes are the NIST ones (GCM's
 * ciphertext does not depend on the associated data), and the tag is GCM's over the envelope's
 * associated data, header || record identity.
 */
static void test_kat_envelope(const struct kat *k)
{
    size_t klen, ivlen, ptlen, ctlen, taglen, outlen = 0, backlen = 0;
    unsigned char *key = unhex(k->key, &klen), *iv = unhex(k->iv, &ivlen);
    unsigned char *pt = unhex(k->pt, &ptlen), *ct = unhex(k->ct, &ctlen);
    unsigned char *tag = unhex(k->tag, &taglen), *out = NULL, *back = NULL;
    unsigned char ad[ENVELOPE_HEADER_BYTES + sizeof(AAD)], wtag[16], scratch[128];
    struct aegis_masterkey mk;
    struct aegis_keyring ring;
    struct aegis_err err = {0};
    char what[160];
    int rc;

    masterkey_set(&mk, key);
    masterkey_ring_init(&ring);
    masterkey_ring_add(&ring, &mk, NULL);
    rc = envelope__seal_nonce(&mk, AAD, pt, ptlen, iv, &out, &outlen, &err);
    snprintf(what, sizeof(what), "envelope seal: %s", k->name);
    CHECK(rc == 0 && outlen == ptlen + ENVELOPE_OVERHEAD, what);
    if (rc != 0)
        goto out;
    snprintf(what, sizeof(what), "envelope header: %s", k->name);
    CHECK(memcmp(out, "AEGE", 4) == 0 && out[4] == 1 && out[5] == 1 && out[6] == 0 && out[7] == 0 &&
              memcmp(out + 8, mk.id, 8) == 0 && memcmp(out + 16, iv, 12) == 0,
          what);
    snprintf(what, sizeof(what), "envelope ciphertext is the NIST ciphertext: %s", k->name);
    CHECK(memcmp(out + ENVELOPE_HEADER_BYTES, ct, ctlen) == 0, what);
    memcpy(ad, out, ENVELOPE_HEADER_BYTES);
    memcpy(ad + ENVELOPE_HEADER_BYTES, AAD, sizeof(AAD));
    envelope__gcm_raw(true, key, iv, 12, ad, ENVELOPE_HEADER_BYTES + strlen(AAD), pt, ptlen,
                      scratch, wtag);
    snprintf(what, sizeof(what), "envelope tag covers header and identity: %s", k->name);
    CHECK(memcmp(out + outlen - 16, wtag, 16) == 0, what);
    rc = envelope_open(&ring, AAD, out, outlen, &back, &backlen, &err);
    snprintf(what, sizeof(what), "envelope open: %s", k->name);
    CHECK(rc == 0 && backlen == ptlen && memcmp(back, pt, ptlen) == 0 && back[ptlen] == '\0', what);
out:
    envelope_free_plaintext(back, backlen);
    free(key), free(iv), free(pt), free(ct), free(tag), free(out);
    masterkey_ring_dispose(&ring);
}

/* Opens in with ring and aad; true when it is refused with rc and no plaintext. */
static bool refused(const struct aegis_keyring *ring, const char *aad, const unsigned char *in,
                    size_t len, int *rcp)
{
    unsigned char *pt = (unsigned char *)"x";
    size_t ptlen = 99;
    struct aegis_err err = {0};
    int rc = envelope_open(ring, aad, in, len, &pt, &ptlen, &err);

    if (rcp != NULL)
        *rcp = rc;
    if (rc == 0)
        envelope_free_plaintext(pt, ptlen);
    return rc < 0 && pt == NULL && ptlen == 0 && err.msg[0] != '\0';
}

static void test_tamper(void)
{
    static const char secret[] = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n"
                                 "-----END PRIVATE KEY-----\n";
    struct aegis_masterkey mk, other, same_id;
    struct aegis_keyring ring, wrong, collide, empty;
    struct aegis_err err = {0};
    unsigned char *env = NULL, *env2 = NULL, *pt = NULL, *big = NULL, id[8];
    size_t len = 0, len2 = 0, ptlen = 0;
    bool all = true, all_id = true;
    int rc;

    masterkey_generate(&mk, NULL);
    masterkey_generate(&other, NULL);
    masterkey_ring_init(&ring);
    masterkey_ring_init(&wrong);
    masterkey_ring_init(&collide);
    masterkey_ring_init(&empty);
    masterkey_ring_add(&ring, &mk, NULL);
    masterkey_ring_add(&wrong, &other, NULL);
    /* Another key under the same id, as if ids collided: the tag must still catch it. */
    same_id = other;
    memcpy(same_id.id, mk.id, sizeof(mk.id));
    masterkey_ring_add(&collide, &same_id, NULL);

    rc = envelope_seal(&mk, AAD, secret, strlen(secret), &env, &len, &err);
    CHECK(rc == 0 && len == strlen(secret) + ENVELOPE_OVERHEAD, "seal a key PEM");
    CHECK(memmem(env, len, "PRIVATE KEY", 11) == NULL, "the envelope does not hold the text");
    rc = envelope_open(&ring, AAD, env, len, &pt, &ptlen, &err);
    CHECK(rc == 0 && ptlen == strlen(secret) && strcmp((char *)pt, secret) == 0,
          "open gives the key back");
    envelope_free_plaintext(pt, ptlen);
    rc = envelope_seal(&mk, AAD, secret, strlen(secret), &env2, &len2, &err);
    CHECK(rc == 0 && memcmp(env + 16, env2 + 16, 12) != 0, "a fresh nonce per seal");
    CHECK(memcmp(env + ENVELOPE_HEADER_BYTES, env2 + ENVELOPE_HEADER_BYTES,
                 len - ENVELOPE_HEADER_BYTES) != 0,
          "so the same key seals differently");
    CHECK(envelope_key_id(env, len, id) == 0 && memcmp(id, mk.id, 8) == 0,
          "envelope_key_id reads the id");

    /* Every byte of header, nonce, ciphertext and tag, each bit pattern 0x01 and 0x80. */
    for (size_t i = 0; i < len; i++) {
        for (int b = 0; b < 2; b++) {
            unsigned char mask = b ? 0x80 : 0x01;
            int r = 0;

            env[i] ^= mask;
            if (!refused(&ring, AAD, env, len, &r))
                all = false;
            /* A flipped key id names a key the ring does not hold. */
            if (i >= 8 && i < 16 && r != -AEGIS_E_NOTFOUND)
                all_id = false;
            env[i] ^= mask;
        }
    }
    CHECK(all, "every flipped bit of the envelope is refused");
    CHECK(all_id, "a flipped key id is refused as an unknown key");
    CHECK(refused(&ring, AAD, env, len, &rc) == false && rc == 0, "the original still opens");

    CHECK(refused(&ring, "certificate/default/other/tls.key", env, len, &rc) &&
              rc == -AEGIS_E_CRYPTO,
          "another record's identity is refused");
    CHECK(refused(&ring, "certificate/default/app/tls.crt", env, len, &rc) && rc == -AEGIS_E_CRYPTO,
          "another field's identity is refused");
    CHECK(refused(&ring, "certificate/default/app/tls.ke", env, len, &rc) && rc == -AEGIS_E_CRYPTO,
          "a truncated identity is refused");
    CHECK(refused(&ring, "", env, len, &rc) && rc == -AEGIS_E_INVALID, "an empty identity");
    CHECK(refused(&wrong, AAD, env, len, &rc) && rc == -AEGIS_E_NOTFOUND,
          "the wrong master key is refused by id");
    CHECK(refused(&collide, AAD, env, len, &rc) && rc == -AEGIS_E_CRYPTO,
          "a wrong key under the same id fails authentication");
    CHECK(refused(&empty, AAD, env, len, &rc) && rc == -AEGIS_E_NOTFOUND, "an empty ring");

    all = true;
    for (size_t n = 0; n < len; n++)
        if (!refused(&ring, AAD, env, n, NULL))
            all = false;
    CHECK(all, "every truncation is refused");
    big = malloc(len + 1);
    memcpy(big, env, len);
    big[len] = 0;
    CHECK(refused(&ring, AAD, big, len + 1, NULL), "an extra byte is refused");
    /* The tag moved: the last 16 bytes of the first len+1 bytes are no longer the tag. */
    free(big);

    /* A different version or algorithm is refused before any key is used. */
    env[4] = 2;
    CHECK(refused(&ring, AAD, env, len, &rc) && rc == -AEGIS_E_INVALID, "unknown version");
    env[4] = 1;
    env[5] = 7;
    CHECK(refused(&ring, AAD, env, len, &rc) && rc == -AEGIS_E_INVALID, "unknown algorithm");
    env[5] = 1;

    /* Limits. */
    big = calloc(1, AEGIS_LIMIT_ENVELOPE_PLAINTEXT_BYTES + 1);
    free(env2);
    env2 = NULL;
    rc = envelope_seal(&mk, AAD, big, AEGIS_LIMIT_ENVELOPE_PLAINTEXT_BYTES + 1, &env2, &len2, &err);
    CHECK(rc == -AEGIS_E_LIMIT && env2 == NULL, "plaintext over the limit is refused");
    rc = envelope_seal(&mk, AAD, big, AEGIS_LIMIT_ENVELOPE_PLAINTEXT_BYTES, &env2, &len2, &err);
    CHECK(rc == 0, "plaintext at the limit seals");
    free(env2);
    env2 = NULL;
    memset(big, 'a', AEGIS_LIMIT_ENVELOPE_AAD_BYTES + 1);
    big[AEGIS_LIMIT_ENVELOPE_AAD_BYTES + 1] = '\0';
    rc = envelope_seal(&mk, (char *)big, "x", 1, &env2, &len2, &err);
    CHECK(rc == -AEGIS_E_LIMIT, "associated data over the limit is refused");
    rc = envelope_seal(&mk, "", "x", 1, &env2, &len2, &err);
    CHECK(rc == -AEGIS_E_INVALID, "empty associated data is refused");
    free(big);
    free(env2);
    env2 = NULL;
    rc = envelope_seal(&mk, AAD, "", 0, &env2, &len2, &err);
    CHECK(rc == 0 && len2 == ENVELOPE_OVERHEAD, "an empty value seals");
    rc = envelope_open(&ring, AAD, env2, len2, &pt, &ptlen, &err);
    CHECK(rc == 0 && ptlen == 0 && pt != NULL && pt[0] == '\0', "and opens");
    envelope_free_plaintext(pt, ptlen);

    free(env);
    free(env2);
    masterkey_ring_dispose(&ring);
    masterkey_ring_dispose(&wrong);
    masterkey_ring_dispose(&collide);
    masterkey_cleanse(&mk);
    masterkey_cleanse(&other);
    masterkey_cleanse(&same_id);
}

int main(void)
{
    for (size_t i = 0; i < sizeof(kats) / sizeof(kats[0]); i++) {
        test_kat_raw(&kats[i]);
        test_kat_envelope(&kats[i]);
    }
    test_tamper();
    return check_done();
}
