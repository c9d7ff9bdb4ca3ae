/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for common/masterkey.c: hex keys and their errors (which never quote the key), key
 * files (permissions, newline, length), ids, atomic key files, the key ring, and where
 * masterkey_ring_load finds the key: --master-key-file, AEGIS_MASTER_KEY, <state>/master.key
 * (generated 0600 on first use), master.key.next, and the refusal to make a new key when
 * sealed records exist.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aegis/err.h"
#include "aegis/masterkey.h"
#include "aegis/store.h"
#include "check.h"

#define HEX_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define HEX_B "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

static char tmpdir[] = "/tmp/aegis-test-masterkey.XXXXXX";

static void write_text(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    if (fd >= 0) {
        if (write(fd, text, strlen(text)) < 0)
            perror("write");
        fchmod(fd, mode);
        close(fd);
    }
}

static void test_hex(void)
{
    struct aegis_masterkey mk, mk2;
    struct aegis_err err = {0};
    char hex[MASTERKEY_HEX_LEN + 1], id[MASTERKEY_ID_HEX_LEN + 1];
    unsigned char md[32];
    unsigned int mdlen = 0;
    int rc;

    rc = masterkey_from_hex(&mk, HEX_A, strlen(HEX_A), &err);
    CHECK_INT(rc, 0, "64 hex characters parse");
    CHECK(mk.key[0] == 0 && mk.key[31] == 0x1f, "the bytes");
    masterkey_to_hex(&mk, hex, sizeof(hex));
    CHECK_STR(hex, HEX_A, "back to hex");
    rc = masterkey_from_hex(
        &mk2, "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", 64, &err);
    CHECK(rc == 0 && memcmp(mk.key, mk2.key, 32) == 0 && memcmp(mk.id, mk2.id, 8) == 0,
          "upper case too, same id");
    /* The id is domain-separated: not simply the start of SHA-256(key). */
    EVP_Digest(mk.key, 32, md, &mdlen, EVP_sha256(), NULL);
    CHECK(memcmp(md, mk.id, 8) != 0, "the id is not a bare hash of the key");
    masterkey_id_hex(mk.id, id, sizeof(id));
    CHECK(strlen(id) == 16, "the id prints as 16 hex characters");

    rc = masterkey_from_hex(&mk, HEX_A, 62, &err);
    CHECK(rc == -AEGIS_E_INVALID && strstr(err.msg, "64 hex") != NULL, "too short");
    rc = masterkey_from_hex(&mk, HEX_A "00", 66, &err);
    CHECK(rc == -AEGIS_E_INVALID && strstr(err.msg, "66") != NULL, "too long, length named");
    rc = masterkey_from_hex(&mk, "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                            64, &err);
    CHECK(rc == -AEGIS_E_INVALID && strstr(err.msg, "character 1 ") != NULL,
          "a non-hex character, by position");
    rc = masterkey_from_hex(&mk, "0001020304050607g8090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                            64, &err);
    CHECK(rc == -AEGIS_E_INVALID && strstr(err.msg, "0001") == NULL &&
              strstr(err.msg, "g8") == NULL,
          "the message quotes no part of the key");
}

static void test_files(void)
{
    struct aegis_masterkey mk, back;
    struct aegis_err err = {0};
    char path[512], hex[MASTERKEY_HEX_LEN + 1];
    struct stat sb;
    int rc;

    snprintf(path, sizeof(path), "%s/key", tmpdir);
    write_text(path, HEX_A "\n", 0600);
    rc = masterkey_load_file(&mk, path, &err);
    CHECK_INT(rc, 0, "key file with a newline");
    write_text(path, HEX_A, 0400);
    rc = masterkey_load_file(&mk, path, &err);
    CHECK_INT(rc, 0, "key file without a newline, mode 0400");
    write_text(path, HEX_A "\n", 0640);
    rc = masterkey_load_file(&mk, path, &err);
    CHECK(rc == -AEGIS_E_INVALID && strstr(err.msg, "chmod 600") != NULL,
          "a group-readable key file is refused with the fix");
    write_text(path, HEX_A "\n", 0604);
    rc = masterkey_load_file(&mk, path, &err);
    CHECK(rc == -AEGIS_E_INVALID, "a world-readable key file is refused");
    write_text(path, HEX_A "\n\n", 0600);
    rc = masterkey_load_file(&mk, path, &err);
    CHECK(rc == -AEGIS_E_INVALID, "two newlines are refused");
    write_text(path, HEX_A HEX_A HEX_A, 0600);
    rc = masterkey_load_file(&mk, path, &err);
    CHECK(rc == -AEGIS_E_INVALID, "a long file is refused");
    rc = masterkey_load_file(&mk, tmpdir, &err);
    CHECK(rc < 0, "a directory is refused");
    snprintf(path, sizeof(path), "%s/missing", tmpdir);
    rc = masterkey_load_file(&mk, path, &err);
    CHECK(rc == -ENOENT && strstr(err.where, "missing") != NULL, "a missing file names it");

    snprintf(path, sizeof(path), "%s/written", tmpdir);
    masterkey_generate(&mk, NULL);
    umask(0);
    rc = masterkey_write_file(&mk, path, false, &err);
    umask(022);
    CHECK_INT(rc, 0, "write a key file");
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 07777) == 0600, "mode 0600 under umask 0");
    rc = masterkey_load_file(&back, path, &err);
    CHECK(rc == 0 && memcmp(back.key, mk.key, 32) == 0, "reads back");
    masterkey_generate(&back, NULL);
    rc = masterkey_write_file(&back, path, false, &err);
    CHECK_INT(rc, -EEXIST, "never replaces without replace");
    rc = masterkey_write_file(&back, path, true, &err);
    CHECK_INT(rc, 0, "replaces with replace");
    rc = masterkey_load_file(&mk, path, &err);
    masterkey_to_hex(&mk, hex, sizeof(hex));
    CHECK(rc == 0 && memcmp(back.key, mk.key, 32) == 0, "the replacement is read");
}

static void test_ring(void)
{
    struct aegis_masterkey a, b;
    struct aegis_keyring ring;
    struct aegis_err err = {0};
    int rc = 0;

    masterkey_from_hex(&a, HEX_A, 64, NULL);
    masterkey_from_hex(&b, HEX_B, 64, NULL);
    masterkey_ring_init(&ring);
    CHECK(masterkey_ring_current(&ring) == NULL, "an empty ring has no current key");
    masterkey_ring_add(&ring, &a, NULL);
    masterkey_ring_add(&ring, &b, NULL);
    masterkey_ring_add(&ring, &a, NULL);
    CHECK(ring.n == 2, "a key is added once");
    CHECK(masterkey_ring_current(&ring) == &ring.keys[0], "the first key is current");
    CHECK(masterkey_ring_find(&ring, b.id) == &ring.keys[1], "find by id");
    for (int i = 0; i < MASTERKEY_RING_MAX; i++) {
        masterkey_generate(&a, NULL);
        rc = masterkey_ring_add(&ring, &a, &err);
    }
    CHECK_INT(rc, -AEGIS_E_LIMIT, "a ring is bounded");
    masterkey_ring_dispose(&ring);
    CHECK(ring.n == 0 && ring.keys[0].key[0] == 0 && ring.keys[1].key[5] == 0, "dispose cleanses");
}

static void test_load(void)
{
    struct masterkey_source src = {0};
    struct aegis_keyring ring, again;
    struct aegis_masterkey a, next;
    struct aegis_err err = {0};
    char state[256], path[512], keyfile[512];
    struct stat sb;
    int rc;

    snprintf(state, sizeof(state), "%s/state", tmpdir);
    snprintf(keyfile, sizeof(keyfile), "%s/flag.key", tmpdir);
    write_text(keyfile, HEX_A "\n", 0600);
    masterkey_from_hex(&a, HEX_A, 64, NULL);
    src.state_dir = state;
    unsetenv(MASTERKEY_ENV);

    src.create = false;
    rc = masterkey_ring_load(&ring, &src, &err);
    CHECK(rc == -AEGIS_E_NOTFOUND && strstr(err.msg, "AEGIS_MASTER_KEY") != NULL,
          "no key and no create: a clear error");
    CHECK(stat(state, &sb) != 0, "and nothing is created");

    src.create = true;
    umask(0);
    rc = masterkey_ring_load(&ring, &src, &err);
    umask(022);
    CHECK(rc == 0 && ring.n == 1 && ring.origin == MASTERKEY_ORIGIN_STATE,
          "first run generates the state key");
    snprintf(path, sizeof(path), "%s/master.key", state);
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 07777) == 0600, "master.key is 0600");
    CHECK(stat(state, &sb) == 0 && (sb.st_mode & 07777) == 0700, "the state dir is 0700");
    rc = masterkey_ring_load(&again, &src, &err);
    CHECK(rc == 0 && memcmp(again.keys[0].key, ring.keys[0].key, 32) == 0,
          "the next run reads the same key");
    masterkey_ring_dispose(&again);

    snprintf(path, sizeof(path), "%s/master.key.next", state);
    masterkey_generate(&next, NULL);
    masterkey_write_file(&next, path, false, NULL);
    rc = masterkey_ring_load(&again, &src, &err);
    CHECK(rc == 0 && again.n == 2 && again.has_next &&
              memcmp(again.keys[0].key, ring.keys[0].key, 32) == 0 &&
              memcmp(again.keys[1].key, next.key, 32) == 0,
          "an unfinished rotation: current first, next added");
    masterkey_ring_dispose(&again);
    unlink(path);

    src.key_file = keyfile;
    rc = masterkey_ring_load(&again, &src, &err);
    CHECK(rc == 0 && again.origin == MASTERKEY_ORIGIN_FILE && again.n == 1 &&
              memcmp(again.keys[0].id, a.id, 8) == 0,
          "--master-key-file wins over the state key");
    masterkey_ring_dispose(&again);
    setenv(MASTERKEY_ENV, HEX_B, 1);
    rc = masterkey_ring_load(&again, &src, &err);
    CHECK(rc == -AEGIS_E_INVALID && strstr(err.msg, "both") != NULL,
          "both the flag and the environment: refused");
    src.key_file = NULL;
    rc = masterkey_ring_load(&again, &src, &err);
    CHECK(rc == 0 && again.origin == MASTERKEY_ORIGIN_ENV && again.keys[0].key[0] == 0xff,
          "AEGIS_MASTER_KEY");
    masterkey_ring_dispose(&again);
    setenv(MASTERKEY_ENV, "abc", 1);
    rc = masterkey_ring_load(&again, &src, &err);
    CHECK(rc == -AEGIS_E_INVALID && strcmp(err.where, MASTERKEY_ENV) == 0,
          "a malformed AEGIS_MASTER_KEY is named");
    unsetenv(MASTERKEY_ENV);
    masterkey_ring_dispose(&ring);
}

/* With a sealed record in the store and no key, no new key may be made. */
static void test_refuse_new_key(void)
{
    struct masterkey_source src = {0};
    struct aegis_keyring ring;
    struct aegis_err err = {0};
    struct store_record rec;
    struct store *st = NULL;
    struct store_id id;
    char state[256], path[512], idhex[MASTERKEY_ID_HEX_LEN + 1];
    int rc;

    snprintf(state, sizeof(state), "%s/sealed", tmpdir);
    src.state_dir = state;
    src.create = true;
    rc = masterkey_ring_load(&ring, &src, &err);
    CHECK_INT(rc, 0, "a fresh state");
    masterkey_id_hex(ring.keys[0].id, idhex, sizeof(idhex));
    store_open_fs(state, &ring, &st, &err);
    store_record_init(&rec);
    rec.key_pem = strdup("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    store_id_set(&id, "acme-account", "default", "letsencrypt", NULL);
    rc = st ? store_put(st, &id, &rec, &err) : -1;
    CHECK_INT(rc, 0, "a sealed record");
    store_record_dispose(&rec);
    store_close(st);
    masterkey_ring_dispose(&ring);

    snprintf(path, sizeof(path), "%s/master.key", state);
    unlink(path);
    rc = masterkey_ring_load(&ring, &src, &err);
    CHECK(rc == -AEGIS_E_NOTFOUND && strstr(err.msg, idhex) != NULL &&
              strstr(err.msg, "AEGIS_MASTER_KEY or --master-key-file") != NULL &&
              strstr(err.msg, "acme-account/default/letsencrypt") != NULL,
          "missing key with sealed records: names the key id, a record and the fix");
    CHECK(access(path, F_OK) != 0, "and no new key is made");
}

int main(void)
{
    if (mkdtemp(tmpdir) == NULL)
        return 1;
    test_hex();
    test_files();
    test_ring();
    test_load();
    test_refuse_new_key();
    {
        char cmd[600];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            return 1;
    }
    return check_done();
}
