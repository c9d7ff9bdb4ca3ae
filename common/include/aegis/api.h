/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The API's C tables and the generic decoder that walks them.
 *
 * schemas/api.yaml is the one definition of the aegis.dev/v1alpha1 API. hack/gen-api.py turns
 * it into the JSON Schemas, the CRDs, and (api_types.gen.h, api_tables.gen.c) a C struct per
 * type plus a struct api_type describing it. api_decode() then checks a YAML node against a type
 * and fills the struct: types, enums, formats, bounds, unknown fields (with a suggestion),
 * required fields, defaults (applied here and only here), and the type's rules. Every problem is
 * reported; decoding goes on past errors so that one run shows them all.
 *
 * Storage of a field in its struct, by api_kind:
 *   STRING       char *                      NULL when absent
 *   INT          int64_t
 *   BOOL         bool
 *   DURATION     int64_t                     milliseconds; the member is named <field>_ms
 *   ENUM         enum aegis_<cenum>          index into the field's enum_values
 *   OBJECT       struct aegis_<ref>          embedded
 *   LIST_STRING  struct aegis_strv
 *   LIST_OBJECT  struct { struct aegis_<ref> *v; size_t n; }
 *   MAP          struct aegis_kvv
 *   ANY          no member (accepted, not checked)
 * Every struct starts with `struct aegis_mark mark; uint64_t present;` - where its mapping was,
 * and bit i set when field i was given or defaulted (see API_HAS).
 */
#ifndef AEGIS_API_H
#define AEGIS_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aegis/diag.h"
#include "aegis/format.h"

struct aegis_ynode;

struct aegis_strv {
    char **v;
    struct aegis_mark *marks; /* where each item was */
    size_t n;
};

struct aegis_kv {
    char *key;
    char *value;
};

struct aegis_kvv {
    struct aegis_kv *v;
    size_t n;
};

/* The layout every generated list-of-objects struct shares. */
struct api_list {
    void *v;
    size_t n;
};

enum api_kind {
    API_STRING,
    API_INT,
    API_BOOL,
    API_DURATION,
    API_ENUM,
    API_OBJECT,
    API_LIST_STRING,
    API_LIST_OBJECT,
    API_MAP,
    API_ANY,
};

#define API_F_REQUIRED 0x1u
#define API_F_HAS_MIN 0x2u /* minimum is set */
#define API_F_HAS_MAX 0x4u /* maximum is set */

struct api_type;

struct api_field {
    const char *name; /* as written in YAML */
    enum api_kind kind;
    unsigned flags;                 /* API_F_* */
    size_t offset;                  /* of the member; unused for API_ANY */
    enum aegis_format format;       /* STRING and LIST_STRING items */
    const struct api_type *ref;     /* OBJECT, LIST_OBJECT */
    const char *const *enum_values; /* ENUM, and allowed items of a LIST_STRING; NULL = any */
    size_t n_enum;
    const int64_t *int_enum; /* INT: allowed values; NULL = any */
    size_t n_int_enum;
    int64_t minimum;          /* INT, with API_F_HAS_MIN */
    int64_t maximum;          /* INT, with API_F_HAS_MAX */
    size_t min_length;        /* STRING (and LIST_STRING items), bytes */
    size_t max_length;        /* 0: AEGIS_LIMIT_STRING_BYTES */
    size_t min_items;         /* LIST_* */
    size_t max_items;         /* 0: no limit beyond the YAML limits */
    const char *default_yaml; /* the default as YAML text ("2160h", "true", "{}"); NULL: none */
    const char *description;
};

enum api_cond {
    API_COND_ALWAYS,
    API_COND_PRESENT, /* cond_field is present */
    API_COND_EQUALS,  /* cond_field's value (enum name, "true"/"false", int) is cond_values[0] */
    API_COND_IN,      /* ... is one of cond_values */
};

enum api_rule_kind {
    API_RULE_EXACTLY_ONE, /* exactly one of fields is present */
    API_RULE_AT_MOST_ONE, /* at most one of fields is present */
    API_RULE_REQUIRE,     /* every one of fields is present */
    API_RULE_REQUIRE_ANY, /* at least one of fields is present */
    API_RULE_FORBID,      /* none of fields is present */
    API_RULE_ENUM_OF,     /* fields[0] (INT) is absent or one of int_values */
};

struct api_rule {
    enum api_rule_kind kind;
    enum api_cond cond;
    int cond_field; /* field index, for PRESENT, EQUALS, IN */
    const char *const *cond_values;
    size_t n_cond_values;
    const int *fields; /* field indices */
    size_t n_fields;
    const int64_t *int_values; /* ENUM_OF */
    size_t n_int_values;
};

struct api_type {
    const char *name; /* "CertificateSpec" */
    size_t size;      /* sizeof the C struct */
    const struct api_field *fields;
    size_t n_fields; /* at most 64 */
    const struct api_rule *rules;
    size_t n_rules;
};

/* Whether field index i of a decoded struct was given or defaulted. */
#define API_HAS(obj, i) ((((obj)->present) >> (i)) & 1u)

/* Where decoding reports: the file and the resource the node belongs to (all borrowed). */
struct api_ctx {
    struct aegis_diags *diags;
    const char *file;
    const char *kind;
    const char *ns;
    const char *name;
};

/*
 * Decodes node (a mapping, or NULL for an absent object which then only gets its defaults) as
 * type into out, caller's storage of type->size bytes, zeroed by the caller. path is the field
 * path of node for messages ("spec"). Returns 0, or -AEGIS_E_INVALID when any error was reported
 * (out is then still fully disposable with api_dispose).
 */
int api_decode(const struct api_type *type, const struct aegis_ynode *node, void *out,
               const struct api_ctx *ctx, const char *path);
/* Frees what api_decode allocated in obj (not obj itself). NULL obj is fine. */
void api_dispose(const struct api_type *type, void *obj);

/*
 * Encodes a decoded struct as JSON (a jansson json_t *, returned as void * so that this header
 * does not need jansson's): the present fields only, durations in their shortest text form.
 * Inline PEM text holding a private key is replaced by "<redacted>", so output can be shown
 * and logged. The caller owns the result (json_decref).
 */
void *api_to_json(const struct api_type *type, const void *obj);

#endif
