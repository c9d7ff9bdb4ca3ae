/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the resource parser: arbitrary bytes as a YAML file of resources, through
 * the YAML loader, the decoder, the semantic checks and the set checks. Any crash, leak, hang or
 * undefined behaviour is a bug; diagnostics are expected and formatted to exercise that path.
 */
#include <stddef.h>
#include <stdint.h>

#include "aegis/diag.h"
#include "aegis/resource.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct aegis_resource_set set;
    struct aegis_diags diags;
    char line[512];

    resource_set_init(&set);
    aegis_diags_init(&diags);
    resource_load_buffer(&set, "fuzz.yaml", (const char *)data, size, &diags);
    resource_set_check(&set, &diags);
    aegis_diags_sort(&diags);
    for (size_t i = 0; i < diags.n; i++)
        aegis_diag_format(&diags.v[i], line, sizeof(line));
    aegis_diags_dispose(&diags);
    resource_set_dispose(&set);
    return 0;
}
