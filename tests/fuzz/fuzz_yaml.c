/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for common/yaml.c: any bytes must load into documents or diagnostics without
 * a crash, a leak, undefined behaviour or a hang, and the tree must be consistent (every mapping
 * key a scalar, every value present, scalars NUL-terminated).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "aegis/diag.h"
#include "aegis/yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const struct aegis_ynode *n, unsigned depth)
{
    size_t i;

    if (depth > 64)
        abort();
    switch (n->type) {
    case AEGIS_Y_SCALAR:
        if (n->str == NULL || n->str[n->len] != '\0')
            abort();
        break;
    case AEGIS_Y_MAP:
        for (i = 0; i < n->n; i++) {
            if (n->pairs[i].key == NULL || n->pairs[i].key->type != AEGIS_Y_SCALAR ||
                n->pairs[i].value == NULL)
                abort();
            walk(n->pairs[i].key, depth + 1);
            walk(n->pairs[i].value, depth + 1);
        }
        /* Exercise the lookup the decoder uses. */
        if (n->n > 0 && aegis_ymap_get(n, n->pairs[0].key->str) == NULL)
            abort();
        break;
    case AEGIS_Y_SEQ:
        for (i = 0; i < n->n; i++)
            walk(n->items[i], depth + 1);
        break;
    }
    if (n->mark.line == 0 || n->mark.col == 0)
        abort();
    (void)aegis_ynode_describe(n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct aegis_diags diags;
    struct aegis_yfile *f = NULL;
    char buf[256];
    size_t i;
    int rc;

    aegis_diags_init(&diags);
    rc = aegis_yaml_load_buffer("fuzz.yaml", (const char *)data, size, &f, &diags);
    if (f == NULL || (rc != 0) != (diags.nerrors != 0))
        abort();
    for (i = 0; i < f->ndocs; i++) {
        if (f->docs[i].root != NULL)
            walk(f->docs[i].root, 0);
    }
    for (i = 0; i < diags.n; i++)
        (void)aegis_diag_format(&diags.v[i], buf, sizeof(buf));
    aegis_yfile_free(f);
    aegis_diags_dispose(&diags);
    return 0;
}
