/* SPDX-License-Identifier: Apache-2.0 */
/*
 * YAML loading (yaml.h): libyaml's event parser turned into a tree of nodes that keep their
 * source position. libyaml implements YAML 1.1 syntax; scalars are resolved here with the YAML
 * 1.2 core schema, which is what Kubernetes and most editors use ("yes" is a string, "0o17" an
 * integer).
 *
 * The input is untrusted, so besides the AEGIS_LIMIT_YAML_* ceilings this refuses anchors and
 * aliases (billion-laughs documents), tags other than the standard ones, and duplicate keys
 * (YAML forbids them, libyaml does not check). A problem inside one document drops that document
 * and the rest of the file is still read; a syntax error ends the file, because libyaml cannot
 * resume, and keeps the documents before it.
 */
#include "aegis/yaml.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "aegis/alloc.h"
#include "aegis/err.h"
#include "aegis/limits.h"

/* The byte limits as size_t, for comparisons with lengths (limits.h writes unsigned products). */
#define FILE_BYTES ((size_t)AEGIS_LIMIT_YAML_FILE_BYTES)
#define DOC_BYTES ((size_t)AEGIS_LIMIT_YAML_DOC_BYTES)
#define SCALAR_BYTES ((size_t)AEGIS_LIMIT_YAML_SCALAR_BYTES)

#define CORE_TAG_PREFIX "tag:yaml.org,2002:"
/* Longest piece of input quoted in a message (keys, tags). */
#define QUOTE_MAX 64

enum tag {
    TAG_NONE,
    TAG_STR,
    TAG_INT,
    TAG_BOOL,
    TAG_NULL,
    TAG_FLOAT,
    TAG_MAP,
    TAG_SEQ,
    TAG_OTHER,
};

/* An open mapping or sequence; cap is the allocated size of its pairs or items. */
struct frame {
    struct aegis_ynode *node;
    size_t cap;
};

struct loader {
    const char *name;
    const unsigned char *buf;
    size_t text_len; /* the prefix of buf that is valid text; only it is given to libyaml */
    size_t bom;      /* bytes of a UTF-8 byte order mark, which libyaml's marks do not count */
    bool truncated;  /* text_len < the input's length: an encoding error was reported */
    struct aegis_diags *diags;
    struct aegis_yfile *f;
    size_t docs_cap;
    int rc;
    bool stop;

    /* A cursor from libyaml's character index to a byte offset; marks mostly move forward. */
    size_t cur_char, cur_byte;

    /* The document being read. */
    unsigned ndocs_seen;
    struct aegis_mark doc_mark;
    size_t doc_start_byte;
    bool doc_bad;  /* a problem was reported: the document is dropped at its end */
    bool doc_skip; /* ... and the rest of it is not even built */
    bool anchor_reported;
    bool root_empty; /* the root is the empty plain scalar libyaml gives an empty document */
    struct aegis_ynode *root;
    struct frame stack[AEGIS_LIMIT_YAML_DEPTH];
    size_t depth;     /* open collections on stack */
    size_t raw_depth; /* open collections in the event stream, counted even while skipping */
    size_t nodes;

    /* The last document end, for dropping a document cut short by an encoding error. */
    bool last_end_implicit, last_kept;
};

static void report(struct loader *ld, int code, struct aegis_mark mark, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report(struct loader *ld, int code, struct aegis_mark mark, const char *fmt, ...)
{
    struct aegis_diag_loc loc = {.file = ld->name, .mark = mark};
    va_list ap;

    va_start(ap, fmt);
    aegis_diags_vadd(ld->diags, AEGIS_SEV_ERROR, &loc, fmt, ap);
    va_end(ap);
    if (ld->rc == 0)
        ld->rc = code;
}

static unsigned clamp_u(size_t v)
{
    return v >= UINT_MAX ? UINT_MAX : (unsigned)v;
}

static struct aegis_mark to_mark(yaml_mark_t m)
{
    struct aegis_mark r = {clamp_u(m.line + 1), clamp_u(m.column + 1)};

    return r;
}

/* Bytes in the UTF-8 sequence led by c (the text before text_len is known to be valid). */
static size_t utf8_width(unsigned char c)
{
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

/* libyaml's marks count characters (after the BOM); the limits and the buffer count bytes. */
static size_t char_to_byte(struct loader *ld, size_t idx)
{
    if (idx < ld->cur_char) {
        ld->cur_char = 0;
        ld->cur_byte = ld->bom;
    }
    while (ld->cur_char < idx && ld->cur_byte < ld->text_len) {
        ld->cur_byte += utf8_width(ld->buf[ld->cur_byte]);
        ld->cur_char++;
    }
    return ld->cur_byte < ld->text_len ? ld->cur_byte : ld->text_len;
}

/* Decodes the (valid) UTF-8 character at b[*i] and advances past it. */
static unsigned long decode(const unsigned char *b, size_t *i)
{
    size_t w = utf8_width(b[*i]), k;
    unsigned long v = w == 1   ? b[*i]
                      : w == 2 ? b[*i] & 0x1Fu
                      : w == 3 ? b[*i] & 0x0Fu
                               : b[*i] & 0x07u;

    for (k = 1; k < w; k++)
        v = v << 6 | (b[*i + k] & 0x3Fu);
    *i += w;
    return v;
}

/* The 1-based line and column of byte offset off, counting characters as libyaml does. */
static struct aegis_mark offset_mark(const struct loader *ld, size_t off)
{
    struct aegis_mark m = {1, 1};
    size_t i = ld->bom;

    if (off > ld->text_len)
        off = ld->text_len;
    while (i < off) {
        unsigned long c = decode(ld->buf, &i);

        if (c == '\r' && i < off && ld->buf[i] == '\n')
            i++;
        /* libyaml also breaks lines at NEL, LINE SEPARATOR and PARAGRAPH SEPARATOR. */
        if (c == '\n' || c == '\r' || c == 0x85 || c == 0x2028 || c == 0x2029) {
            m.line++;
            m.col = 1;
        } else if (m.col < UINT_MAX) {
            m.col++;
        }
    }
    return m;
}

/*
 * Finds the first byte that is not YAML text: a NUL, invalid UTF-8, or a character the YAML
 * character set excludes (libyaml's reader rules). Returns its offset (len when all is text)
 * and describes it in what.
 */
static size_t text_end(const unsigned char *b, size_t len, size_t from, char *what, size_t size)
{
    size_t i = from;

    while (i < len) {
        unsigned char c = b[i];
        unsigned long v, min;
        size_t w, k;

        if (c < 0x80) {
            if (c == 0) {
                snprintf(what, size, "found a NUL byte");
                return i;
            }
            if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F) {
                snprintf(what, size, "found the control character U+%04X", c);
                return i;
            }
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) {
            w = 2;
            v = c & 0x1Fu;
            min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            w = 3;
            v = c & 0x0Fu;
            min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            w = 4;
            v = c & 0x07u;
            min = 0x10000;
        } else {
            snprintf(what, size, "found the byte 0x%02X, which is not valid UTF-8", c);
            return i;
        }
        for (k = 1; k < w; k++) {
            if (i + k >= len) {
                snprintf(what, size, "found an incomplete UTF-8 sequence at the end");
                return i;
            }
            if ((b[i + k] & 0xC0) != 0x80) {
                /* Most often a Latin-1 file: name the byte the user can find. */
                snprintf(what, size, "found the byte 0x%02X, which is not valid UTF-8", c);
                return i;
            }
            v = v << 6 | (b[i + k] & 0x3Fu);
        }
        if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
            snprintf(what, size, "found an invalid UTF-8 sequence");
            return i;
        }
        if (!(v == 0x85 || (v >= 0xA0 && v <= 0xD7FF) || (v >= 0xE000 && v <= 0xFFFD) ||
              v >= 0x10000)) {
            snprintf(what, size, "found the control character U+%04lX", v);
            return i;
        }
        i += w;
    }
    return len;
}

/*
 * A piece of input quoted in a message: quotes and controls escaped, cut after QUOTE_MAX bytes
 * at a character boundary. Each input byte adds at most 4 bytes, so the cut output fits.
 */
struct qbuf {
    char s[QUOTE_MAX + 16];
};

static const char *quote(const char *s, size_t len, struct qbuf *q)
{
    size_t i, o = 0;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (o >= QUOTE_MAX && (c & 0xC0) != 0x80) {
            memcpy(q->s + o, "...", 4);
            return q->s;
        }
        if (c == '"' || c == '\\') {
            q->s[o++] = '\\';
            q->s[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7F) {
            o += (size_t)snprintf(q->s + o, sizeof(q->s) - o, "\\x%02X", c);
        } else {
            q->s[o++] = (char)c;
        }
    }
    q->s[o] = '\0';
    return q->s;
}

static enum tag tag_of(const yaml_char_t *t)
{
    static const struct {
        const char *name;
        enum tag tag;
    } core[] = {
        {"str", TAG_STR},     {"int", TAG_INT}, {"bool", TAG_BOOL}, {"null", TAG_NULL},
        {"float", TAG_FLOAT}, {"map", TAG_MAP}, {"seq", TAG_SEQ},
    };
    const char *s = (const char *)t;
    size_t i, plen = strlen(CORE_TAG_PREFIX);

    if (s == NULL)
        return TAG_NONE;
    if (strncmp(s, CORE_TAG_PREFIX, plen) != 0)
        return TAG_OTHER;
    for (i = 0; i < sizeof(core) / sizeof(core[0]); i++) {
        if (strcmp(s + plen, core[i].name) == 0)
            return core[i].tag;
    }
    return TAG_OTHER;
}

/* The tag as written: "!!foo" for the core namespace, else as libyaml resolved it. */
static const char *tag_text(const yaml_char_t *t, char *buf, size_t size)
{
    const char *s = (const char *)t;
    size_t plen = strlen(CORE_TAG_PREFIX);
    struct qbuf q;

    if (strncmp(s, CORE_TAG_PREFIX, plen) == 0)
        snprintf(buf, size, "!!%s", quote(s + plen, strlen(s + plen), &q));
    else
        snprintf(buf, size, "%s", quote(s, strlen(s), &q));
    return buf;
}

static bool all_digits(const char *s, size_t len, size_t from, int base)
{
    size_t i;

    if (from >= len)
        return false;
    for (i = from; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = base == 8    ? (c >= '0' && c <= '7')
                  : base == 10 ? (c >= '0' && c <= '9')
                               : ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                                  (c >= 'A' && c <= 'F'));

        if (!ok)
            return false;
    }
    return true;
}

static bool is_one_of(const char *s, size_t len, const char *const *words)
{
    for (; *words != NULL; words++) {
        if (strlen(*words) == len && memcmp(s, *words, len) == 0)
            return true;
    }
    return false;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool is_core_float(const char *s, size_t len)
{
    size_t i = 0, n;

    if (i < len && (s[i] == '-' || s[i] == '+'))
        i++;
    for (n = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++)
        n++;
    if (i < len && s[i] == '.') {
        size_t f = 0;

        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++)
            f++;
        if (n == 0 && f == 0)
            return false;
    } else if (n == 0) {
        return false;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '-' || s[i] == '+'))
            i++;
        if (!all_digits(s, len, i, 10))
            return false;
        return true;
    }
    return i == len;
}

/* The YAML 1.2 core schema's resolution of a plain scalar. */
static enum aegis_yscalar resolve_plain(const char *s, size_t len)
{
    static const char *const nulls[] = {"~", "null", "Null", "NULL", NULL};
    static const char *const bools[] = {"true", "True", "TRUE", "false", "False", "FALSE", NULL};
    static const char *const specials[] = {".inf",  ".Inf",  ".INF",  "+.inf", "+.Inf",
                                           "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
                                           ".NaN",  ".NAN",  NULL};
    size_t sign;

    if (len == 0 || is_one_of(s, len, nulls))
        return AEGIS_YS_NULL;
    if (is_one_of(s, len, bools))
        return AEGIS_YS_BOOL;
    sign = s[0] == '-' || s[0] == '+';
    if (all_digits(s, len, sign, 10))
        return AEGIS_YS_INT;
    if (len > 2 && s[0] == '0' && s[1] == 'o' && all_digits(s, len, 2, 8))
        return AEGIS_YS_INT;
    if (len > 2 && s[0] == '0' && s[1] == 'x' && all_digits(s, len, 2, 16))
        return AEGIS_YS_INT;
    if (is_core_float(s, len) || is_one_of(s, len, specials))
        return AEGIS_YS_FLOAT;
    return AEGIS_YS_STRING;
}

static void node_free(struct aegis_ynode *n)
{
    size_t i;

    if (n == NULL)
        return;
    free(n->str);
    for (i = 0; n->pairs != NULL && i < n->n; i++) {
        node_free(n->pairs[i].key);
        node_free(n->pairs[i].value);
    }
    for (i = 0; n->items != NULL && i < n->n; i++)
        node_free(n->items[i]);
    free(n->pairs);
    free(n->items);
    free(n);
}

static void drop_tree(struct loader *ld)
{
    node_free(ld->root);
    ld->root = NULL;
    ld->depth = 0;
}

/* Reports a problem that makes the rest of the document pointless to build. */
static void skip_doc(struct loader *ld)
{
    ld->doc_bad = true;
    ld->doc_skip = true;
    drop_tree(ld);
}

/* True when the next node of the document is a mapping key. */
static bool at_key(const struct loader *ld)
{
    const struct aegis_ynode *top;

    if (ld->depth == 0)
        return false;
    top = ld->stack[ld->depth - 1].node;
    return top->type == AEGIS_Y_MAP && (top->n == 0 || top->pairs[top->n - 1].value != NULL);
}

/* A new node, counted against AEGIS_LIMIT_YAML_NODES; NULL (document skipped) past it. */
static struct aegis_ynode *node_new(struct loader *ld, enum aegis_ynode_type type,
                                    struct aegis_mark mark)
{
    struct aegis_ynode *n;

    if (ld->nodes >= AEGIS_LIMIT_YAML_NODES) {
        report(ld, -AEGIS_E_LIMIT, ld->doc_mark,
               "the document has more than the limit of %d values; split it",
               AEGIS_LIMIT_YAML_NODES);
        skip_doc(ld);
        return NULL;
    }
    ld->nodes++;
    n = aegis_calloc(1, sizeof(*n));
    n->type = type;
    n->mark = mark;
    return n;
}

/* Hangs n under the open collection (or makes it the root); the tree owns it from here. */
static void attach(struct loader *ld, struct aegis_ynode *n)
{
    struct frame *fr;
    struct aegis_ynode *p;

    if (ld->depth == 0) {
        ld->root = n;
        return;
    }
    fr = &ld->stack[ld->depth - 1];
    p = fr->node;
    if (p->type == AEGIS_Y_SEQ) {
        aegis_grow((void **)&p->items, &fr->cap, p->n + 1, sizeof(*p->items));
        p->items[p->n++] = n;
    } else if (at_key(ld)) {
        aegis_grow((void **)&p->pairs, &fr->cap, p->n + 1, sizeof(*p->pairs));
        p->pairs[p->n].key = n;
        p->pairs[p->n].value = NULL;
        p->n++;
    } else {
        p->pairs[p->n - 1].value = n;
    }
}

static void check_anchor(struct loader *ld, const yaml_char_t *anchor, struct aegis_mark mark)
{
    if (anchor == NULL)
        return;
    ld->doc_bad = true;
    if (ld->anchor_reported)
        return;
    ld->anchor_reported = true;
    report(ld, -AEGIS_E_UNSUPPORTED, mark,
           "anchors and aliases are not supported; write the value out");
}

static void bad_tag(struct loader *ld, const yaml_char_t *tag, struct aegis_mark mark)
{
    char t[QUOTE_MAX + 32];

    ld->doc_bad = true;
    report(ld, -AEGIS_E_UNSUPPORTED, mark,
           "the tag %s is not supported; remove it (only !!str, !!int, !!float, !!bool, !!null, "
           "!!map and !!seq are allowed)",
           tag_text(tag, t, sizeof(t)));
}

/* A core tag on the wrong kind of node: !!map on a list, !!seq on a string, ... */
static void misplaced_tag(struct loader *ld, const yaml_char_t *tag, struct aegis_mark mark,
                          const char *node)
{
    char t[QUOTE_MAX + 32];

    ld->doc_bad = true;
    report(ld, -AEGIS_E_INVALID, mark, "the tag %s does not fit %s; remove it",
           tag_text(tag, t, sizeof(t)), node);
}

static void on_scalar(struct loader *ld, const yaml_event_t *ev)
{
    static const char *const kinds[] = {
        [AEGIS_YS_STRING] = "a string", [AEGIS_YS_NULL] = "null",
        [AEGIS_YS_BOOL] = "a boolean",  [AEGIS_YS_INT] = "an integer",
        [AEGIS_YS_FLOAT] = "a number",
    };
    const char *value = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    struct aegis_mark mark = to_mark(ev->start_mark);
    bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    enum tag tag = tag_of(ev->data.scalar.tag);
    enum aegis_yscalar kind = AEGIS_YS_STRING;
    struct aegis_ynode *n;

    check_anchor(ld, ev->data.scalar.anchor, mark);
    if (len > SCALAR_BYTES) {
        report(ld, -AEGIS_E_LIMIT, mark,
               "the value is longer than the limit of %u bytes; store it in a file or a Secret",
               AEGIS_LIMIT_YAML_SCALAR_BYTES);
        skip_doc(ld);
        return;
    }
    if (at_key(ld) && len > AEGIS_LIMIT_YAML_KEY_BYTES) {
        report(ld, -AEGIS_E_LIMIT, mark, "the key is longer than the limit of %d bytes",
               AEGIS_LIMIT_YAML_KEY_BYTES);
        skip_doc(ld);
        return;
    }
    switch (tag) {
    case TAG_NONE:
        /* Quoted, literal and folded scalars are strings; only plain ones are resolved. */
        kind = plain ? resolve_plain(value, len) : AEGIS_YS_STRING;
        break;
    case TAG_STR:
        kind = AEGIS_YS_STRING;
        break;
    case TAG_INT:
    case TAG_BOOL:
    case TAG_NULL:
    case TAG_FLOAT: {
        enum aegis_yscalar want = tag == TAG_INT    ? AEGIS_YS_INT
                                  : tag == TAG_BOOL ? AEGIS_YS_BOOL
                                  : tag == TAG_NULL ? AEGIS_YS_NULL
                                                    : AEGIS_YS_FLOAT;
        struct qbuf q;

        kind = resolve_plain(value, len);
        if (want == AEGIS_YS_FLOAT && kind == AEGIS_YS_INT)
            kind = AEGIS_YS_FLOAT;
        if (kind != want) {
            ld->doc_bad = true;
            report(ld, -AEGIS_E_INVALID, mark, "\"%s\" is not %s, as its tag says",
                   quote(value, len, &q), kinds[want]);
        }
        break;
    }
    case TAG_MAP:
    case TAG_SEQ:
        misplaced_tag(ld, ev->data.scalar.tag, mark, "a single value");
        break;
    case TAG_OTHER:
        bad_tag(ld, ev->data.scalar.tag, mark);
        break;
    }
    n = node_new(ld, AEGIS_Y_SCALAR, mark);
    if (n == NULL)
        return;
    n->str = aegis_malloc(len + 1);
    memcpy(n->str, value, len);
    n->str[len] = '\0';
    n->len = len;
    n->scalar = kind;
    if (ld->depth == 0)
        ld->root_empty = plain && tag == TAG_NONE && len == 0 && ev->data.scalar.anchor == NULL;
    attach(ld, n);
}

static void on_collection_start(struct loader *ld, const yaml_event_t *ev)
{
    bool map = ev->type == YAML_MAPPING_START_EVENT;
    const yaml_char_t *anchor =
        map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
    const yaml_char_t *tag = map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag;
    struct aegis_mark mark = to_mark(ev->start_mark);
    enum tag t = tag_of(tag);
    struct aegis_ynode *n;

    check_anchor(ld, anchor, mark);
    if (t == TAG_OTHER)
        bad_tag(ld, tag, mark);
    else if (t != TAG_NONE && t != (map ? TAG_MAP : TAG_SEQ))
        misplaced_tag(ld, tag, mark, map ? "a mapping" : "a list");
    if (at_key(ld)) {
        report(ld, -AEGIS_E_INVALID, mark, "mapping keys must be plain strings");
        skip_doc(ld);
        return;
    }
    n = node_new(ld, map ? AEGIS_Y_MAP : AEGIS_Y_SEQ, mark);
    if (n == NULL)
        return;
    attach(ld, n);
    ld->stack[ld->depth].node = n;
    ld->stack[ld->depth].cap = 0;
    ld->depth++;
}

struct keyref {
    const char *s;
    size_t len;
    size_t i;
};

static int keyref_cmp(const void *a, const void *b)
{
    const struct keyref *x = a, *y = b;
    int c;

    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    c = memcmp(x->s, y->s, x->len);
    if (c != 0)
        return c;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Reports every repeated key of a finished mapping, in document order, at the repeat. */
static void check_duplicates(struct loader *ld, const struct aegis_ynode *map)
{
    struct keyref *keys;
    size_t *first, i;

    if (map->n < 2)
        return;
    /* Sorting finds repeats in O(n log n); a mapping may hold AEGIS_LIMIT_YAML_NODES keys. */
    keys = aegis_calloc(map->n, sizeof(*keys));
    first = aegis_calloc(map->n, sizeof(*first));
    for (i = 0; i < map->n; i++) {
        keys[i].s = map->pairs[i].key->str;
        keys[i].len = map->pairs[i].key->len;
        keys[i].i = i;
        first[i] = i;
    }
    qsort(keys, map->n, sizeof(*keys), keyref_cmp);
    for (i = 1; i < map->n; i++) {
        if (keys[i].len == keys[i - 1].len && memcmp(keys[i].s, keys[i - 1].s, keys[i].len) == 0)
            first[keys[i].i] = first[keys[i - 1].i];
    }
    for (i = 0; i < map->n; i++) {
        const struct aegis_ynode *k = map->pairs[i].key;
        struct qbuf q;

        if (first[i] == i)
            continue;
        ld->doc_bad = true;
        report(ld, -AEGIS_E_INVALID, k->mark, "duplicate key \"%s\"; the first is at line %u",
               quote(k->str, k->len, &q), map->pairs[first[i]].key->mark.line);
    }
    free(keys);
    free(first);
}

static void on_collection_end(struct loader *ld)
{
    struct aegis_ynode *n;

    if (ld->depth == 0)
        return;
    n = ld->stack[--ld->depth].node;
    if (n->type == AEGIS_Y_MAP)
        check_duplicates(ld, n);
}

static void on_document_start(struct loader *ld, const yaml_event_t *ev)
{
    struct aegis_mark mark = to_mark(ev->start_mark);

    if (ld->ndocs_seen >= AEGIS_LIMIT_YAML_DOCS) {
        report(ld, -AEGIS_E_LIMIT, mark,
               "the file has more than the limit of %d documents; split it", AEGIS_LIMIT_YAML_DOCS);
        ld->stop = true;
        return;
    }
    ld->ndocs_seen++;
    ld->doc_mark = mark;
    ld->doc_start_byte = char_to_byte(ld, ev->start_mark.index);
    ld->doc_bad = ld->doc_skip = ld->anchor_reported = ld->root_empty = false;
    ld->root = NULL;
    ld->depth = ld->raw_depth = 0;
    ld->nodes = 0;
}

static void on_document_end(struct loader *ld, const yaml_event_t *ev)
{
    struct aegis_ydoc *d;

    ld->last_end_implicit = ev->data.document_end.implicit != 0;
    ld->last_kept = false;
    if (ld->doc_bad) {
        drop_tree(ld);
        return;
    }
    if (ld->root_empty) {
        node_free(ld->root);
        ld->root = NULL;
    }
    aegis_grow((void **)&ld->f->docs, &ld->docs_cap, ld->f->ndocs + 1, sizeof(*ld->f->docs));
    d = &ld->f->docs[ld->f->ndocs++];
    d->root = ld->root;
    d->mark = ld->doc_mark;
    d->index = ld->ndocs_seen - 1;
    ld->root = NULL;
    ld->last_kept = true;
}

/*
 * Checks the document size and nesting against their limits. Both stop the whole file: libyaml
 * keeps per-level state and rescans it for every token, so reading on through a hostile
 * document would cost memory and quadratic time.
 */
static bool within_limits(struct loader *ld, const yaml_event_t *ev)
{
    if (ev->type == YAML_MAPPING_START_EVENT || ev->type == YAML_SEQUENCE_START_EVENT) {
        if (ld->raw_depth >= AEGIS_LIMIT_YAML_DEPTH) {
            report(ld, -AEGIS_E_LIMIT, to_mark(ev->start_mark),
                   "mappings and lists are nested deeper than the limit of %d levels",
                   AEGIS_LIMIT_YAML_DEPTH);
            return false;
        }
        ld->raw_depth++;
    } else if (ev->type == YAML_MAPPING_END_EVENT || ev->type == YAML_SEQUENCE_END_EVENT) {
        if (ld->raw_depth > 0)
            ld->raw_depth--;
    }
    if (char_to_byte(ld, ev->end_mark.index) - ld->doc_start_byte > DOC_BYTES) {
        report(ld, -AEGIS_E_LIMIT, ld->doc_mark,
               "the document is larger than the limit of %u bytes; split it",
               AEGIS_LIMIT_YAML_DOC_BYTES);
        return false;
    }
    return true;
}

/* Handles one event; returns false to stop reading the file. */
static bool on_event(struct loader *ld, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        on_document_start(ld, ev);
        return !ld->stop;
    case YAML_STREAM_START_EVENT:
    case YAML_STREAM_END_EVENT:
    case YAML_NO_EVENT:
        return true;
    default:
        break;
    }
    if (!within_limits(ld, ev)) {
        drop_tree(ld);
        return false;
    }
    if (ev->type == YAML_DOCUMENT_END_EVENT) {
        on_document_end(ld, ev);
        return true;
    }
    if (ld->doc_skip)
        return true;
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        if (!ld->anchor_reported)
            report(ld, -AEGIS_E_UNSUPPORTED, to_mark(ev->start_mark),
                   "anchors and aliases are not supported; write the value out");
        skip_doc(ld);
        break;
    case YAML_SCALAR_EVENT:
        on_scalar(ld, ev);
        break;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        on_collection_start(ld, ev);
        break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        on_collection_end(ld);
        break;
    default:
        break;
    }
    return true;
}

/* A hint for the libyaml errors people meet most, or "". */
static const char *syntax_hint(struct loader *ld, const yaml_parser_t *p)
{
    static const struct {
        const char *problem;
        const char *context; /* NULL: any */
        const char *hint;
    } hints[] = {
        {"mapping values are not allowed", NULL,
         "check the indentation, or quote a value that contains ': '"},
        {"did not find expected key", NULL, "check the indentation"},
        {"did not find expected '-' indicator", NULL, "check the indentation"},
        {"could not find expected ':'", NULL, "check the indentation, or add ': ' after the key"},
        {"found unexpected end of stream", "quoted scalar", "a quoted value is not closed"},
        {"did not find expected ',' or ']'", NULL, "a '[' list is not closed or misses a ','"},
        {"did not find expected ',' or '}'", NULL, "a '{' mapping is not closed or misses a ','"},
        {"found character that cannot start any token", NULL,
         "quote a value that starts with '@', '`' or '%'"},
    };
    const char *problem = p->problem ? p->problem : "";
    const char *context = p->context ? p->context : "";
    size_t off = char_to_byte(ld, p->problem_mark.index), i;

    if (strstr(problem, "tab") != NULL || (off < ld->text_len && ld->buf[off] == '\t'))
        return "tabs are not allowed for indentation; use spaces";
    for (i = 0; i < sizeof(hints) / sizeof(hints[0]); i++) {
        if (strstr(problem, hints[i].problem) != NULL &&
            (hints[i].context == NULL || strstr(context, hints[i].context) != NULL))
            return hints[i].hint;
    }
    return "";
}

static void report_syntax(struct loader *ld, const yaml_parser_t *p)
{
    const char *problem = p->problem ? p->problem : "syntax error";
    const char *hint;
    char ctx[256] = "";

    switch (p->error) {
    case YAML_MEMORY_ERROR:
        report(ld, -ENOMEM, (struct aegis_mark){0, 0}, "out of memory while parsing");
        return;
    case YAML_READER_ERROR:
        report(ld, -AEGIS_E_SYNTAX, offset_mark(ld, p->problem_offset),
               "%s; the file is not valid UTF-8 text", problem);
        return;
    default:
        break;
    }
    if (p->context != NULL) {
        if (p->context_mark.line == p->problem_mark.line &&
            p->context_mark.column == p->problem_mark.column)
            snprintf(ctx, sizeof(ctx), " (%s)", p->context);
        else
            snprintf(ctx, sizeof(ctx), " (%s at line %u, column %u)", p->context,
                     clamp_u(p->context_mark.line + 1), clamp_u(p->context_mark.column + 1));
    }
    hint = syntax_hint(ld, p);
    report(ld, -AEGIS_E_SYNTAX, to_mark(p->problem_mark), "%s%s%s%s", problem, ctx,
           hint[0] ? "; " : "", hint);
}

static struct aegis_yfile *yfile_new(const char *name)
{
    struct aegis_yfile *f = aegis_calloc(1, sizeof(*f));

    f->name = aegis_strdup(name ? name : "<input>");
    return f;
}

static void parse(struct loader *ld)
{
    yaml_parser_t parser;
    yaml_event_t ev;

    if (!yaml_parser_initialize(&parser)) {
        report(ld, -ENOMEM, (struct aegis_mark){0, 0}, "out of memory while parsing");
        return;
    }
    /* The encoding is left to libyaml so that it skips a BOM as text_end() and the marks do. */
    yaml_parser_set_input_string(&parser, ld->buf, ld->text_len);
    for (;;) {
        yaml_event_type_t type;
        bool go_on;

        if (!yaml_parser_parse(&parser, &ev)) {
            /*
             * After an encoding error the text is cut short, so libyaml's complaint about
             * the cut (an unclosed quote, a missing value) is not the user's problem.
             */
            if (!ld->truncated)
                report_syntax(ld, &parser);
            drop_tree(ld);
            break;
        }
        go_on = on_event(ld, &ev);
        type = ev.type;
        yaml_event_delete(&ev);
        if (!go_on)
            break;
        if (type == YAML_STREAM_END_EVENT) {
            /* The last document ran into the cut: it is incomplete, so it is not kept. */
            if (ld->truncated && ld->last_kept && ld->last_end_implicit) {
                struct aegis_ydoc *d = &ld->f->docs[--ld->f->ndocs];

                node_free(d->root);
            }
            break;
        }
    }
    yaml_parser_delete(&parser);
}

int aegis_yaml_load_buffer(const char *name, const char *buf, size_t len, struct aegis_yfile **out,
                           struct aegis_diags *diags)
{
    struct loader ld;
    char what[96];

    memset(&ld, 0, sizeof(ld));
    ld.f = yfile_new(name);
    ld.name = ld.f->name;
    ld.buf = (const unsigned char *)buf;
    ld.diags = diags;
    *out = ld.f;
    if (len > FILE_BYTES) {
        report(&ld, -AEGIS_E_LIMIT, (struct aegis_mark){0, 0},
               "the file is larger than the limit of %u bytes; split it",
               AEGIS_LIMIT_YAML_FILE_BYTES);
        return ld.rc;
    }
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
        ld.bom = 3;
    ld.cur_byte = ld.bom;
    ld.text_len = text_end(ld.buf, len, ld.bom, what, sizeof(what));
    if (ld.text_len < len) {
        ld.truncated = true;
        report(&ld, -AEGIS_E_SYNTAX, offset_mark(&ld, ld.text_len),
               "%s; the file is not valid UTF-8 text", what);
    }
    parse(&ld);
    return ld.rc;
}

int aegis_yaml_load_file(const char *path, struct aegis_yfile **out, struct aegis_diags *diags)
{
    struct aegis_diag_loc loc = {.file = path};
    struct stat st;
    char *buf = NULL;
    size_t len = 0, cap;
    int fd, rc;

    *out = NULL;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        rc = -errno;
        aegis_diags_add(diags, AEGIS_SEV_ERROR, &loc, "cannot open: %s", aegis_strerror(rc));
        return rc;
    }
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        aegis_diags_add(diags, AEGIS_SEV_ERROR, &loc, "cannot stat: %s", aegis_strerror(rc));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = -AEGIS_E_INVALID;
        aegis_diags_add(diags, AEGIS_SEV_ERROR, &loc, "not a regular file");
        goto out;
    }
    if ((uintmax_t)st.st_size > FILE_BYTES) {
        rc = -AEGIS_E_LIMIT;
        aegis_diags_add(diags, AEGIS_SEV_ERROR, &loc,
                        "the file is larger than the limit of %u bytes; split it",
                        AEGIS_LIMIT_YAML_FILE_BYTES);
        goto out;
    }
    /* The size may change while reading; read to the end, but never past the limit. */
    cap = (size_t)st.st_size + 1;
    buf = aegis_malloc(cap);
    for (;;) {
        ssize_t n;

        if (len == cap) {
            if (cap > FILE_BYTES) {
                rc = -AEGIS_E_LIMIT;
                aegis_diags_add(diags, AEGIS_SEV_ERROR, &loc,
                                "the file is larger than the limit of %u bytes; split it",
                                AEGIS_LIMIT_YAML_FILE_BYTES);
                goto out;
            }
            cap = cap * 2 > FILE_BYTES + 1 ? FILE_BYTES + 1 : cap * 2;
            buf = aegis_realloc(buf, cap);
        }
        n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            aegis_diags_add(diags, AEGIS_SEV_ERROR, &loc, "cannot read: %s", aegis_strerror(rc));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    fd = -1;
    rc = aegis_yaml_load_buffer(path, buf, len, out, diags);
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    /* Opened but unreadable: an empty file object, as the header promises. */
    if (*out == NULL)
        *out = yfile_new(path);
    return rc;
}

void aegis_yfile_free(struct aegis_yfile *f)
{
    size_t i;

    if (f == NULL)
        return;
    for (i = 0; i < f->ndocs; i++)
        node_free(f->docs[i].root);
    free(f->docs);
    free(f->name);
    free(f);
}

const struct aegis_ynode *aegis_ymap_get(const struct aegis_ynode *map, const char *key)
{
    size_t i, len;

    if (map == NULL || map->type != AEGIS_Y_MAP || key == NULL)
        return NULL;
    len = strlen(key);
    for (i = 0; i < map->n; i++) {
        const struct aegis_ynode *k = map->pairs[i].key;

        if (k->len == len && memcmp(k->str, key, len) == 0)
            return map->pairs[i].value;
    }
    return NULL;
}

const char *aegis_ynode_describe(const struct aegis_ynode *n)
{
    if (n == NULL)
        return "null";
    switch (n->type) {
    case AEGIS_Y_MAP:
        return "a mapping";
    case AEGIS_Y_SEQ:
        return "a list";
    case AEGIS_Y_SCALAR:
        break;
    }
    switch (n->scalar) {
    case AEGIS_YS_STRING:
        return "a string";
    case AEGIS_YS_INT:
        return "an integer";
    case AEGIS_YS_FLOAT:
        return "a number";
    case AEGIS_YS_BOOL:
        return "a boolean";
    case AEGIS_YS_NULL:
        return "null";
    }
    return "a value";
}
