/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JSON encoding of decoded API structs (jansson), driven by the same generated tables as the
 * decoder: what `aegisctl get -o json` prints, and later the shape of status documents. Only
 * present fields are written, so the output is the effective resource with defaults applied.
 */
#include <jansson.h>
#include <string.h>

#include "aegis/api.h"
#include "aegis/format.h"

static json_t *string_value(const struct api_field *f, const char *s)
{
    /* A private key must never reach output, even when the user wrote it inline. */
    if (f->format == AEGIS_FMT_PEM && strstr(s, "PRIVATE KEY") != NULL)
        return json_string("<redacted>");
    return json_string(s);
}

void *api_to_json(const struct api_type *type, const void *obj)
{
    const char *base = obj;
    uint64_t present;
    json_t *o = json_object();

    memcpy(&present, base + sizeof(struct aegis_mark), sizeof(present));
    for (size_t i = 0; i < type->n_fields; i++) {
        const struct api_field *f = &type->fields[i];
        const void *at = base + f->offset;
        json_t *v = NULL;

        if (!((present >> i) & 1u))
            continue;
        switch (f->kind) {
        case API_STRING: {
            const char *s;

            memcpy(&s, at, sizeof(s));
            v = string_value(f, s);
            break;
        }
        case API_INT: {
            int64_t x;

            memcpy(&x, at, sizeof(x));
            v = json_integer((json_int_t)x);
            break;
        }
        case API_BOOL: {
            bool b;

            memcpy(&b, at, sizeof(b));
            v = json_boolean(b);
            break;
        }
        case API_DURATION: {
            int64_t ms;
            char buf[64];

            memcpy(&ms, at, sizeof(ms));
            aegis_duration_format(ms, buf, sizeof(buf));
            v = json_string(buf);
            break;
        }
        case API_ENUM: {
            int idx;

            memcpy(&idx, at, sizeof(idx));
            v = json_string(f->enum_values[idx]);
            break;
        }
        case API_OBJECT:
            v = api_to_json(f->ref, at);
            break;
        case API_LIST_STRING: {
            struct aegis_strv sv;

            memcpy(&sv, at, sizeof(sv));
            v = json_array();
            for (size_t j = 0; j < sv.n; j++)
                json_array_append_new(v, string_value(f, sv.v[j]));
            break;
        }
        case API_LIST_OBJECT: {
            struct api_list l;

            memcpy(&l, at, sizeof(l));
            v = json_array();
            for (size_t j = 0; j < l.n; j++)
                json_array_append_new(v, api_to_json(f->ref, (const char *)l.v + j * f->ref->size));
            break;
        }
        case API_MAP: {
            struct aegis_kvv kv;

            memcpy(&kv, at, sizeof(kv));
            v = json_object();
            for (size_t j = 0; j < kv.n; j++)
                json_object_set_new(v, kv.v[j].key, json_string(kv.v[j].value));
            break;
        }
        case API_ANY:
            break;
        }
        if (v != NULL)
            json_object_set_new(o, f->name, v);
    }
    return o;
}
