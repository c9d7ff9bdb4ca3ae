/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The generic decoder of the API: walks a YAML node against a generated struct api_type (see
 * api.h and schemas/api.yaml) and fills the typed C struct. It reports every problem it finds -
 * unknown fields with a suggestion, missing required fields, wrong YAML types, enums, formats,
 * bounds, and the type's rules - and goes on past each one, so a single run shows them all.
 * Defaults from the definition are applied here and nowhere else: a default is YAML text parsed
 * and decoded exactly like user input, so it cannot bypass a check.
 */
#include "aegis/api.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/alloc.h"
#include "aegis/err.h"
#include "aegis/format.h"
#include "aegis/limits.h"
#include "aegis/yaml.h"

/* Longest string value quoted in a message; longer values are left out of the message. */
#define QUOTE_MAX 64

/* The header every generated struct starts with. */
struct api_head {
    struct aegis_mark mark;
    uint64_t present;
};

struct walk {
    const struct api_ctx *ctx;
    unsigned nerrors;
};

static void report(struct walk *w, struct aegis_mark mark, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report(struct walk *w, struct aegis_mark mark, const char *path, const char *fmt, ...)
{
    struct aegis_diag_loc loc = {
        .file = w->ctx->file,
        .mark = mark,
        .kind = w->ctx->kind,
        .ns = w->ctx->ns,
        .name = w->ctx->name,
        .path = (path != NULL && path[0] != '\0') ? path : NULL,
    };
    va_list ap;

    va_start(ap, fmt);
    aegis_diags_vadd(w->ctx->diags, AEGIS_SEV_ERROR, &loc, fmt, ap);
    va_end(ap);
    w->nerrors++;
}

static char *join_path(const char *path, const char *field)
{
    if (path == NULL || path[0] == '\0')
        return aegis_strdup(field);
    return aegis_asprintf("%s.%s", path, field);
}

/*
 * Writes s as a double-quoted, escaped string into buf. Returns false (and writes nothing useful)
 * when s is too long to be worth repeating in a message.
 */
static bool quote(const char *s, size_t len, char *buf, size_t size)
{
    size_t o = 0;

    if (len > QUOTE_MAX || size < QUOTE_MAX * 4 + 3)
        return false;
    buf[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else if (c == '\t') {
            buf[o++] = '\\';
            buf[o++] = 't';
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return true;
}

/* Characters (code points) of UTF-8 text, for maxLength as JSON Schema counts it. */
static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            n++;
    return n;
}

static const char *want_text(enum api_kind kind)
{
    switch (kind) {
    case API_STRING:
    case API_ENUM:
        return "a string";
    case API_INT:
        return "an integer";
    case API_BOOL:
        return "true or false";
    case API_DURATION:
        return "a duration such as \"2160h\", \"90d\" or \"1h30m\"";
    case API_OBJECT:
        return "a mapping";
    case API_LIST_STRING:
    case API_LIST_OBJECT:
        return "a list";
    case API_MAP:
        return "a mapping of strings";
    case API_ANY:
        break;
    }
    return "a value";
}

static void report_type(struct walk *w, const struct aegis_ynode *n, const char *path,
                        enum api_kind want)
{
    bool hint = (want == API_STRING || want == API_ENUM) && n->type == AEGIS_Y_SCALAR &&
                n->scalar != AEGIS_YS_STRING;

    report(w, n->mark, path, "expected %s, got %s%s", want_text(want), aegis_ynode_describe(n),
           hint ? "; put the value in quotes" : "");
}

static bool is_string(const struct aegis_ynode *n)
{
    return n->type == AEGIS_Y_SCALAR && n->scalar == AEGIS_YS_STRING;
}

/* "a, b and c" or "a, b, c" (sep_last = ", ") of names picked by idx from the type's fields. */
static void list_names(char *buf, size_t size, const char *const *names, size_t n,
                       const char *last_sep)
{
    size_t o = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < n && o < size; i++) {
        const char *sep = i == 0 ? "" : (i + 1 == n ? last_sep : ", ");
        int r = snprintf(buf + o, size - o, "%s%s", sep, names[i]);

        if (r < 0)
            break;
        o += (size_t)r;
    }
}

static void list_ints(char *buf, size_t size, const int64_t *v, size_t n)
{
    size_t o = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < n && o < size; i++) {
        int r = snprintf(buf + o, size - o, "%s%" PRId64, i == 0 ? "" : ", ", v[i]);

        if (r < 0)
            break;
        o += (size_t)r;
    }
}

static int parse_int(const struct aegis_ynode *n, int64_t *out)
{
    const char *s = n->str;
    int base = 10;
    bool neg = false;
    char *end = NULL;
    unsigned long long v;

    if (*s == '+' || *s == '-') {
        neg = *s == '-';
        s++;
    }
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
        base = s[1] == 'x' ? 16 : 8;
        s += 2;
    }
    errno = 0;
    v = strtoull(s, &end, base);
    if (errno != 0 || end == s || *end != '\0' || v > (unsigned long long)INT64_MAX)
        return -AEGIS_E_LIMIT;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

/* Checks a string value (a STRING field or a LIST_STRING item) against the field's limits. */
static bool check_string(struct walk *w, const struct api_field *f, const struct aegis_ynode *n,
                         const char *path)
{
    char q[QUOTE_MAX * 4 + 3];
    bool quoted = quote(n->str, n->len, q, sizeof(q));
    size_t chars = utf8_chars(n->str, n->len);
    size_t max = f->max_length != 0 ? f->max_length : (size_t)AEGIS_LIMIT_STRING_BYTES;
    const char *why = NULL;

    if (chars < f->min_length) {
        if (f->min_length == 1)
            report(w, n->mark, path, "must not be empty");
        else
            report(w, n->mark, path, "is %zu characters long, less than the minimum of %zu", chars,
                   f->min_length);
        return false;
    }
    if (chars > max) {
        report(w, n->mark, path, "is %zu characters long, more than the limit of %zu", chars, max);
        return false;
    }
    if (f->enum_values != NULL) {
        char names[1024];
        const char *hint;

        for (size_t i = 0; i < f->n_enum; i++)
            if (strcmp(n->str, f->enum_values[i]) == 0 && strlen(n->str) == n->len)
                return true;
        list_names(names, sizeof(names), f->enum_values, f->n_enum, ", ");
        hint = aegis_suggest(n->str, f->enum_values, f->n_enum);
        if (hint != NULL)
            report(w, n->mark, path, "%s%sis not one of %s; did you mean \"%s\"?", quoted ? q : "",
                   quoted ? " " : "", names, hint);
        else
            report(w, n->mark, path, "%s%sis not one of %s", quoted ? q : "", quoted ? " " : "",
                   names);
        return false;
    }
    if (f->format != AEGIS_FMT_NONE && !aegis_format_check(f->format, n->str, n->len, &why)) {
        report(w, n->mark, path, "%s%sis not %s%s%s", quoted ? q : "", quoted ? " " : "",
               aegis_format_what(f->format), why != NULL ? ": " : "", why != NULL ? why : "");
        return false;
    }
    return true;
}

static bool check_items(struct walk *w, const struct api_field *f, const struct aegis_ynode *n,
                        const char *path)
{
    if (n->n < f->min_items) {
        report(w, n->mark, path, "needs at least %zu item%s", f->min_items,
               f->min_items == 1 ? "" : "s");
        return false;
    }
    if (f->max_items != 0 && n->n > f->max_items) {
        report(w, n->mark, path, "has %zu items, more than the limit of %zu", n->n, f->max_items);
        return false;
    }
    return true;
}

static bool decode_object(struct walk *w, const struct api_type *type,
                          const struct aegis_ynode *node, void *out, const char *path,
                          struct aegis_mark mark);

static bool decode_duration(struct walk *w, const struct aegis_ynode *n, int64_t *out,
                            const char *path)
{
    char q[QUOTE_MAX * 4 + 3];
    bool quoted;
    int r;

    if (!is_string(n)) {
        report_type(w, n, path, API_DURATION);
        return false;
    }
    quoted = quote(n->str, n->len, q, sizeof(q));
    r = n->len > 64 ? -AEGIS_E_INVALID : aegis_duration_parse(n->str, n->len, out);
    if (r == -AEGIS_E_LIMIT) {
        report(w, n->mark, path, "%s%sis longer than the limit of 100 years", quoted ? q : "",
               quoted ? " " : "");
        return false;
    }
    if (r < 0) {
        report(w, n->mark, path,
               "%s%sis not a valid duration; use a number and a unit (ms, s, m, h, d) such as "
               "\"2160h\", \"90d\" or \"1h30m\"",
               quoted ? q : "", quoted ? " " : "");
        return false;
    }
    return true;
}

static bool decode_field(struct walk *w, const struct api_field *f, const struct aegis_ynode *n,
                         char *base, const char *path)
{
    void *at = base + f->offset;

    switch (f->kind) {
    case API_STRING: {
        char *s;

        if (!is_string(n)) {
            report_type(w, n, path, API_STRING);
            return false;
        }
        if (!check_string(w, f, n, path))
            return false;
        s = aegis_strndup(n->str, n->len);
        memcpy(at, &s, sizeof(s));
        return true;
    }
    case API_ENUM: {
        int idx = -1;

        if (!is_string(n)) {
            report_type(w, n, path, API_ENUM);
            return false;
        }
        if (!check_string(w, f, n, path))
            return false;
        for (size_t i = 0; i < f->n_enum; i++)
            if (strcmp(n->str, f->enum_values[i]) == 0)
                idx = (int)i;
        assert(idx >= 0);
        /* Generated enums have no negative values, so the compiler gives them an int-sized
         * type; storing the index through memcpy keeps that detail out of the aliasing rules. */
        memcpy(at, &idx, sizeof(idx));
        return true;
    }
    case API_INT: {
        int64_t v = 0;

        if (n->type != AEGIS_Y_SCALAR || n->scalar != AEGIS_YS_INT) {
            report_type(w, n, path, API_INT);
            return false;
        }
        if (parse_int(n, &v) < 0) {
            report(w, n->mark, path, "%s is too large", n->str);
            return false;
        }
        if (f->int_enum != NULL) {
            bool ok = false;
            char vals[512];

            for (size_t i = 0; i < f->n_int_enum; i++)
                ok = ok || f->int_enum[i] == v;
            if (!ok) {
                list_ints(vals, sizeof(vals), f->int_enum, f->n_int_enum);
                report(w, n->mark, path, "%" PRId64 " is not one of %s", v, vals);
                return false;
            }
        }
        if ((f->flags & API_F_HAS_MIN) && v < f->minimum) {
            report(w, n->mark, path, "%" PRId64 " is less than the minimum of %" PRId64, v,
                   f->minimum);
            return false;
        }
        if ((f->flags & API_F_HAS_MAX) && v > f->maximum) {
            report(w, n->mark, path, "%" PRId64 " is more than the maximum of %" PRId64, v,
                   f->maximum);
            return false;
        }
        memcpy(at, &v, sizeof(v));
        return true;
    }
    case API_BOOL: {
        bool v;

        if (n->type != AEGIS_Y_SCALAR || n->scalar != AEGIS_YS_BOOL) {
            report_type(w, n, path, API_BOOL);
            return false;
        }
        v = n->str[0] == 't' || n->str[0] == 'T';
        memcpy(at, &v, sizeof(v));
        return true;
    }
    case API_DURATION: {
        int64_t ms = 0;

        if (!decode_duration(w, n, &ms, path))
            return false;
        memcpy(at, &ms, sizeof(ms));
        return true;
    }
    case API_OBJECT:
        if (n->type != AEGIS_Y_MAP) {
            report_type(w, n, path, API_OBJECT);
            return false;
        }
        return decode_object(w, f->ref, n, at, path, n->mark);
    case API_LIST_STRING: {
        struct aegis_strv sv = {0};
        bool ok = true;

        if (n->type != AEGIS_Y_SEQ) {
            report_type(w, n, path, API_LIST_STRING);
            return false;
        }
        if (!check_items(w, f, n, path))
            return false;
        sv.v = aegis_calloc(n->n + 1, sizeof(*sv.v));
        sv.marks = aegis_calloc(n->n + 1, sizeof(*sv.marks));
        for (size_t i = 0; i < n->n; i++) {
            const struct aegis_ynode *it = n->items[i];
            char *ipath = aegis_asprintf("%s[%zu]", path, i);

            if (!is_string(it)) {
                report_type(w, it, ipath, API_STRING);
                ok = false;
            } else if (!check_string(w, f, it, ipath)) {
                ok = false;
            } else {
                sv.v[sv.n] = aegis_strndup(it->str, it->len);
                sv.marks[sv.n] = it->mark;
                sv.n++;
            }
            free(ipath);
        }
        memcpy(at, &sv, sizeof(sv));
        return ok;
    }
    case API_LIST_OBJECT: {
        struct api_list l = {0};
        bool ok = true;

        if (n->type != AEGIS_Y_SEQ) {
            report_type(w, n, path, API_LIST_OBJECT);
            return false;
        }
        if (!check_items(w, f, n, path))
            return false;
        l.v = aegis_calloc(n->n + 1, f->ref->size);
        l.n = n->n;
        memcpy(at, &l, sizeof(l));
        for (size_t i = 0; i < n->n; i++) {
            const struct aegis_ynode *it = n->items[i];
            char *ipath = aegis_asprintf("%s[%zu]", path, i);
            char *elem = (char *)l.v + i * f->ref->size;

            if (it->type != AEGIS_Y_MAP) {
                report_type(w, it, ipath, API_OBJECT);
                ok = false;
            } else if (!decode_object(w, f->ref, it, elem, ipath, it->mark)) {
                ok = false;
            }
            free(ipath);
        }
        return ok;
    }
    case API_MAP: {
        struct aegis_kvv kv = {0};
        bool ok = true;

        if (n->type != AEGIS_Y_MAP) {
            report_type(w, n, path, API_MAP);
            return false;
        }
        kv.v = aegis_calloc(n->n + 1, sizeof(*kv.v));
        for (size_t i = 0; i < n->n; i++) {
            const struct aegis_ypair *p = &n->pairs[i];
            char *kpath = join_path(path, p->key->str);

            if (!is_string(p->value)) {
                report_type(w, p->value, kpath, API_STRING);
                ok = false;
            } else {
                kv.v[kv.n].key = aegis_strndup(p->key->str, p->key->len);
                kv.v[kv.n].value = aegis_strndup(p->value->str, p->value->len);
                kv.n++;
            }
            free(kpath);
        }
        memcpy(at, &kv, sizeof(kv));
        return ok;
    }
    case API_ANY:
        return true;
    }
    return false;
}

/* Parses a default's YAML text; defaults come from the generated tables, so they must parse. */
/*
 * Parsed defaults, one per field that has one, made on first use and kept for the process: a
 * default is the same YAML text every time, and parsing it again for each of 10,000 resources cost
 * more than decoding them. More fields than the cache holds are parsed each time (still correct).
 */
#define DEFAULT_CACHE_SLOTS 128 /* the API has 37 defaults today */

static struct {
    pthread_mutex_t lock;
    const struct api_field *field[DEFAULT_CACHE_SLOTS];
    struct aegis_yfile *yf[DEFAULT_CACHE_SLOTS];
    size_t n;
} default_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static struct aegis_yfile *parse_default(const struct api_field *f)
{
    struct aegis_diags d;
    struct aegis_yfile *yf = NULL;

    aegis_diags_init(&d);
    aegis_yaml_load_buffer("<default>", f->default_yaml, strlen(f->default_yaml), &yf, &d);
    assert(d.nerrors == 0 && yf != NULL && yf->ndocs == 1 && yf->docs[0].root != NULL);
    aegis_diags_dispose(&d);
    return yf;
}

/* The parsed default of f; *owned tells whether the caller must free it (cache full). */
static struct aegis_yfile *default_of(const struct api_field *f, bool *owned)
{
    struct aegis_yfile *yf = NULL;

    *owned = false;
    pthread_mutex_lock(&default_cache.lock);
    for (size_t i = 0; i < default_cache.n && yf == NULL; i++) {
        if (default_cache.field[i] == f)
            yf = default_cache.yf[i];
    }
    if (yf == NULL) {
        yf = parse_default(f);
        if (default_cache.n < DEFAULT_CACHE_SLOTS) {
            default_cache.field[default_cache.n] = f;
            default_cache.yf[default_cache.n++] = yf;
        } else {
            *owned = true;
        }
    }
    pthread_mutex_unlock(&default_cache.lock);
    return yf;
}

static bool decode_default(struct walk *w, const struct api_field *f, char *base, const char *path,
                           struct aegis_mark mark)
{
    bool owned, ok;
    struct aegis_yfile *yf = default_of(f, &owned);

    /* The decoders only read the node tree, so a cached one may be shared between threads. */
    if (f->kind == API_OBJECT)
        ok = decode_object(w, f->ref, yf->docs[0].root, base + f->offset, path, mark);
    else
        ok = decode_field(w, f, yf->docs[0].root, base, path);
    if (owned)
        aegis_yfile_free(yf);
    return ok;
}

static const char *field_name(const struct api_type *t, int i)
{
    assert(i >= 0 && (size_t)i < t->n_fields);
    return t->fields[i].name;
}

/* The value of a scalar field as rule conditions compare it: enum name, true/false, decimal. */
static const char *field_value(const struct api_type *t, int i, const char *base, char *buf,
                               size_t size)
{
    const struct api_field *f = &t->fields[i];
    const void *at = base + f->offset;

    switch (f->kind) {
    case API_ENUM: {
        int idx;

        memcpy(&idx, at, sizeof(idx));
        return f->enum_values[idx];
    }
    case API_BOOL: {
        bool v;

        memcpy(&v, at, sizeof(v));
        return v ? "true" : "false";
    }
    case API_INT: {
        int64_t v;

        memcpy(&v, at, sizeof(v));
        snprintf(buf, size, "%" PRId64, v);
        return buf;
    }
    case API_STRING: {
        const char *s;

        memcpy(&s, at, sizeof(s));
        return s;
    }
    default:
        return NULL;
    }
}

/* Evaluates a rule's condition; writes the "when ..." text for messages into cond_text. */
static bool rule_applies(const struct api_type *t, const struct api_rule *r, const char *base,
                         uint64_t present, char *cond_text, size_t size)
{
    char vbuf[32];
    const char *v;
    bool quoted;

    cond_text[0] = '\0';
    if (r->cond == API_COND_ALWAYS)
        return true;
    if (!((present >> r->cond_field) & 1u))
        return false;
    if (r->cond == API_COND_PRESENT) {
        snprintf(cond_text, size, " when %s is set", field_name(t, r->cond_field));
        return true;
    }
    v = field_value(t, r->cond_field, base, vbuf, sizeof(vbuf));
    if (v == NULL)
        return false;
    for (size_t i = 0; i < r->n_cond_values; i++) {
        if (strcmp(v, r->cond_values[i]) == 0) {
            enum api_kind k = t->fields[r->cond_field].kind;

            quoted = k == API_ENUM || k == API_STRING;
            snprintf(cond_text, size, " when %s is %s%s%s", field_name(t, r->cond_field),
                     quoted ? "\"" : "", v, quoted ? "\"" : "");
            return true;
        }
    }
    return false;
}

static void check_rules(struct walk *w, const struct api_type *t, const char *base,
                        uint64_t present, uint64_t errored, const char *path,
                        struct aegis_mark mark)
{
    for (size_t ri = 0; ri < t->n_rules; ri++) {
        const struct api_rule *r = &t->rules[ri];
        const char *names[64] = {0};
        const char *given[64] = {0};
        size_t ngiven = 0;
        char cond[256];
        char list[1024];
        bool skip = r->cond != API_COND_ALWAYS && ((errored >> r->cond_field) & 1u);

        for (size_t i = 0; i < r->n_fields; i++) {
            skip = skip || ((errored >> r->fields[i]) & 1u);
            names[i] = field_name(t, r->fields[i]);
            if ((present >> r->fields[i]) & 1u)
                given[ngiven++] = names[i];
        }
        if (skip || !rule_applies(t, r, base, present, cond, sizeof(cond)))
            continue;
        switch (r->kind) {
        case API_RULE_EXACTLY_ONE:
            list_names(list, sizeof(list), names, r->n_fields, ", ");
            if (ngiven == 0) {
                report(w, mark, path, "one of %s is required%s", list, cond);
            } else if (ngiven > 1) {
                char g[1024];

                list_names(g, sizeof(g), given, ngiven, " and ");
                report(w, mark, path, "%s are mutually exclusive; set only one of %s", g, list);
            }
            break;
        case API_RULE_AT_MOST_ONE:
            if (ngiven > 1) {
                list_names(list, sizeof(list), given, ngiven, " and ");
                report(w, mark, path, "%s are mutually exclusive; set at most one of them", list);
            }
            break;
        case API_RULE_REQUIRE:
            for (size_t i = 0; i < r->n_fields; i++) {
                if (!((present >> r->fields[i]) & 1u)) {
                    char *fp = join_path(path, names[i]);

                    report(w, mark, fp, "required%s", cond);
                    free(fp);
                }
            }
            break;
        case API_RULE_REQUIRE_ANY:
            if (ngiven == 0) {
                list_names(list, sizeof(list), names, r->n_fields, ", ");
                report(w, mark, path, "one of %s is required%s", list, cond);
            }
            break;
        case API_RULE_FORBID:
            for (size_t i = 0; i < r->n_fields; i++) {
                if ((present >> r->fields[i]) & 1u) {
                    const struct api_head *sub = NULL;
                    const struct api_field *f = &t->fields[r->fields[i]];
                    char *fp = join_path(path, names[i]);
                    struct aegis_mark m = mark;

                    /* Point at the offending value when it is an object with a place. */
                    if (f->kind == API_OBJECT) {
                        sub = (const struct api_head *)(const void *)(base + f->offset);
                        if (sub->mark.line != 0)
                            m = sub->mark;
                    }
                    report(w, m, fp, "not allowed%s", cond);
                    free(fp);
                }
            }
            break;
        case API_RULE_ENUM_OF: {
            const struct api_field *f = &t->fields[r->fields[0]];
            int64_t v;
            bool ok = false;
            char *fp;

            if (!((present >> r->fields[0]) & 1u))
                break;
            assert(f->kind == API_INT);
            memcpy(&v, base + f->offset, sizeof(v));
            for (size_t i = 0; i < r->n_int_values; i++)
                ok = ok || r->int_values[i] == v;
            if (ok)
                break;
            list_ints(list, sizeof(list), r->int_values, r->n_int_values);
            fp = join_path(path, names[0]);
            report(w, mark, fp, "%" PRId64 " is not allowed%s; use one of %s", v, cond, list);
            free(fp);
            break;
        }
        }
    }
}

static bool decode_object(struct walk *w, const struct api_type *type,
                          const struct aegis_ynode *node, void *out, const char *path,
                          struct aegis_mark mark)
{
    struct api_head head = {.mark = mark, .present = 0};
    uint64_t errored = 0;
    unsigned before = w->nerrors;
    const char *names[64];

    assert(type->n_fields <= 64);
    for (size_t i = 0; i < type->n_fields; i++)
        names[i] = type->fields[i].name;

    if (node != NULL) {
        assert(node->type == AEGIS_Y_MAP);
        for (size_t pi = 0; pi < node->n; pi++) {
            const struct aegis_ypair *p = &node->pairs[pi];
            char *fp = join_path(path, p->key->str);
            size_t fi;

            for (fi = 0; fi < type->n_fields; fi++)
                if (strcmp(type->fields[fi].name, p->key->str) == 0)
                    break;
            if (fi == type->n_fields) {
                const char *hint = aegis_suggest(p->key->str, names, type->n_fields);

                if (hint != NULL) {
                    report(w, p->key->mark, fp, "unknown field; did you mean \"%s\"?", hint);
                } else if (type->n_fields == 0) {
                    report(w, p->key->mark, fp, "unknown field; %s takes no fields",
                           path != NULL && path[0] != '\0' ? path : type->name);
                } else {
                    char list[2048];

                    list_names(list, sizeof(list), names, type->n_fields, ", ");
                    report(w, p->key->mark, fp, "unknown field; expected one of: %s", list);
                }
            } else if (decode_field(w, &type->fields[fi], p->value, out, fp)) {
                head.present |= UINT64_C(1) << fi;
            } else {
                errored |= UINT64_C(1) << fi;
            }
            free(fp);
        }
    }

    for (size_t fi = 0; fi < type->n_fields; fi++) {
        const struct api_field *f = &type->fields[fi];
        uint64_t bit = UINT64_C(1) << fi;
        char *fp;

        if ((head.present | errored) & bit)
            continue;
        if (node != NULL && aegis_ymap_get(node, f->name) != NULL)
            continue;
        fp = join_path(path, f->name);
        if (f->default_yaml != NULL) {
            if (decode_default(w, f, out, fp, mark))
                head.present |= bit;
            else
                errored |= bit;
        } else if (f->flags & API_F_REQUIRED) {
            report(w, mark, fp, "required field is missing");
            errored |= bit;
        }
        free(fp);
    }

    check_rules(w, type, out, head.present, errored, path, mark);
    memcpy(out, &head, sizeof(head));
    return w->nerrors == before;
}

int api_decode(const struct api_type *type, const struct aegis_ynode *node, void *out,
               const struct api_ctx *ctx, const char *path)
{
    struct walk w = {.ctx = ctx, .nerrors = 0};
    struct aegis_mark mark = node != NULL ? node->mark : (struct aegis_mark){0, 0};

    if (node != NULL && node->type != AEGIS_Y_MAP) {
        report_type(&w, node, path, API_OBJECT);
        return -AEGIS_E_INVALID;
    }
    decode_object(&w, type, node, out, path, mark);
    return w.nerrors == 0 ? 0 : -AEGIS_E_INVALID;
}

void api_dispose(const struct api_type *type, void *obj)
{
    char *base = obj;

    if (obj == NULL)
        return;
    for (size_t i = 0; i < type->n_fields; i++) {
        const struct api_field *f = &type->fields[i];
        void *at = base + f->offset;

        switch (f->kind) {
        case API_STRING: {
            char *s;

            memcpy(&s, at, sizeof(s));
            free(s);
            break;
        }
        case API_OBJECT:
            api_dispose(f->ref, at);
            break;
        case API_LIST_STRING: {
            struct aegis_strv sv;

            memcpy(&sv, at, sizeof(sv));
            for (size_t j = 0; j < sv.n; j++)
                free(sv.v[j]);
            free(sv.v);
            free(sv.marks);
            break;
        }
        case API_LIST_OBJECT: {
            struct api_list l;

            memcpy(&l, at, sizeof(l));
            for (size_t j = 0; j < l.n; j++)
                api_dispose(f->ref, (char *)l.v + j * f->ref->size);
            free(l.v);
            break;
        }
        case API_MAP: {
            struct aegis_kvv kv;

            memcpy(&kv, at, sizeof(kv));
            for (size_t j = 0; j < kv.n; j++) {
                free(kv.v[j].key);
                free(kv.v[j].value);
            }
            free(kv.v);
            break;
        }
        default:
            break;
        }
    }
}
