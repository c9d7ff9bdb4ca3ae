/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for common/yaml.c: documents, marks and scalar resolution of good input, and a clean
 * file:line:col diagnostic (never a crash or a leak) for each kind of bad input: syntax errors,
 * tabs, anchors, tags, duplicate keys, every AEGIS_LIMIT_YAML_* ceiling, bytes that are not
 * UTF-8 text, and truncated input.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aegis/alloc.h"
#include "aegis/err.h"
#include "aegis/limits.h"
#include "aegis/yaml.h"
#include "check.h"

/* Loads src as "t.yaml"; the first diagnostic, formatted, goes to diag ("" when none). */
static int load(const char *src, size_t len, struct aegis_yfile **f, char *diag, size_t size,
                size_t *ndiags)
{
    struct aegis_diags d;
    int rc;

    aegis_diags_init(&d);
    rc = aegis_yaml_load_buffer("t.yaml", src, len, f, &d);
    diag[0] = '\0';
    if (d.n > 0)
        aegis_diag_format(&d.v[0], diag, size);
    if (ndiags != NULL)
        *ndiags = d.n;
    aegis_diags_dispose(&d);
    return rc;
}

static void test_documents(void)
{
    const char *src = "# leading comment\n"
                      "kind: Host\n"
                      "metadata:\n"
                      "  name: web\n"
                      "spec:\n"
                      "  hostnames: [a.example.com, \"b.example.com\"]\n"
                      "---\n"
                      "- x\n"
                      "-   y\n"
                      "---\n"
                      "plain\n"
                      "...\n"
                      "---\n";
    struct aegis_yfile *f;
    const struct aegis_ynode *root, *meta, *hn, *spec;
    char diag[512];
    int rc = load(src, strlen(src), &f, diag, sizeof(diag), NULL);

    CHECK_INT(rc, 0, "a good multi-document file loads");
    CHECK_STR(diag, "", "without diagnostics");
    CHECK_STR(f->name, "t.yaml", "the file keeps its name");
    CHECK_INT(f->ndocs, 4, "four documents (the last one empty)");
    if (f->ndocs != 4) {
        aegis_yfile_free(f);
        return;
    }
    root = f->docs[0].root;
    CHECK(root != NULL && root->type == AEGIS_Y_MAP && root->n == 3, "document 0 is a mapping");
    CHECK_INT(f->docs[0].index, 0, "document index 0");
    CHECK_INT(f->docs[0].mark.line, 2, "document 0 starts at its first node");
    CHECK_INT(root->mark.line, 2, "root mark line");
    CHECK_INT(root->mark.col, 1, "root mark column");
    CHECK_STR(aegis_ymap_get(root, "kind")->str, "Host", "ymap_get kind");
    meta = aegis_ymap_get(root, "metadata");
    CHECK(meta != NULL && meta->type == AEGIS_Y_MAP, "metadata is a mapping");
    CHECK_STR(aegis_ymap_get(meta, "name")->str, "web", "metadata.name");
    CHECK_INT(aegis_ymap_get(meta, "name")->mark.line, 4, "metadata.name line");
    CHECK_INT(aegis_ymap_get(meta, "name")->mark.col, 9, "metadata.name column");
    CHECK_INT(meta->pairs[0].key->mark.col, 3, "key marks too");
    CHECK(aegis_ymap_get(root, "nope") == NULL, "ymap_get of a missing key");
    CHECK(aegis_ymap_get(aegis_ymap_get(root, "kind"), "x") == NULL, "ymap_get of a scalar");
    CHECK(aegis_ymap_get(NULL, "x") == NULL, "ymap_get of NULL");
    spec = aegis_ymap_get(root, "spec");
    hn = aegis_ymap_get(spec, "hostnames");
    CHECK(hn != NULL && hn->type == AEGIS_Y_SEQ && hn->n == 2, "a flow list");
    if (hn != NULL && hn->n == 2) {
        CHECK_STR(hn->items[1]->str, "b.example.com", "a quoted item");
        CHECK_INT(hn->items[1]->mark.line, 6, "item line");
        CHECK_INT(hn->items[1]->mark.col, 30, "item column");
        CHECK_INT(hn->mark.col, 14, "flow list column");
    }
    root = f->docs[1].root;
    CHECK(root != NULL && root->type == AEGIS_Y_SEQ && root->n == 2, "document 1 is a list");
    CHECK_INT(f->docs[1].mark.line, 7, "document 1 starts at its ---");
    CHECK_INT(f->docs[1].index, 1, "document index 1");
    if (root != NULL && root->n == 2) {
        CHECK_STR(root->items[1]->str, "y", "second item");
        CHECK_INT(root->items[1]->mark.line, 9, "second item line");
        CHECK_INT(root->items[1]->mark.col, 5, "second item column");
    }
    root = f->docs[2].root;
    CHECK(root != NULL && root->type == AEGIS_Y_SCALAR, "document 2 is a scalar");
    CHECK_STR(root ? root->str : NULL, "plain", "document 2 value");
    CHECK(f->docs[3].root == NULL, "an empty document has a NULL root");
    CHECK_INT(f->docs[3].index, 3, "document index 3");
    aegis_yfile_free(f);
}

static void test_empty_inputs(void)
{
    static const char *const srcs[] = {"", "# just a comment\n", "\n\n\n", "\xEF\xBB\xBF"};
    size_t i;

    for (i = 0; i < sizeof(srcs) / sizeof(srcs[0]); i++) {
        struct aegis_yfile *f;
        char diag[256];
        int rc = load(srcs[i], strlen(srcs[i]), &f, diag, sizeof(diag), NULL);

        CHECK(rc == 0 && f != NULL && f->ndocs == 0 && diag[0] == '\0', "no documents, no error");
        aegis_yfile_free(f);
    }
    {
        struct aegis_yfile *f;
        char diag[256];
        int rc = load("---\n", 4, &f, diag, sizeof(diag), NULL);

        CHECK(rc == 0 && f->ndocs == 1 && f->docs[0].root == NULL, "--- alone is an empty doc");
        aegis_yfile_free(f);
        rc = load("--- null\n", 9, &f, diag, sizeof(diag), NULL);
        CHECK(rc == 0 && f->ndocs == 1 && f->docs[0].root != NULL &&
                  f->docs[0].root->scalar == AEGIS_YS_NULL,
              "an explicit null is a node");
        aegis_yfile_free(f);
    }
    aegis_yfile_free(NULL);
}

static const struct {
    const char *src; /* the value of "v: " */
    enum aegis_yscalar want;
    const char *str;
} scalars[] = {
    {"hello", AEGIS_YS_STRING, "hello"},
    {"", AEGIS_YS_NULL, ""},
    {"~", AEGIS_YS_NULL, "~"},
    {"null", AEGIS_YS_NULL, "null"},
    {"Null", AEGIS_YS_NULL, "Null"},
    {"NULL", AEGIS_YS_NULL, "NULL"},
    {"nULL", AEGIS_YS_STRING, "nULL"},
    {"true", AEGIS_YS_BOOL, "true"},
    {"True", AEGIS_YS_BOOL, "True"},
    {"FALSE", AEGIS_YS_BOOL, "FALSE"},
    {"yes", AEGIS_YS_STRING, "yes"},
    {"on", AEGIS_YS_STRING, "on"},
    {"tRUE", AEGIS_YS_STRING, "tRUE"},
    {"0", AEGIS_YS_INT, "0"},
    {"42", AEGIS_YS_INT, "42"},
    {"-17", AEGIS_YS_INT, "-17"},
    {"+5", AEGIS_YS_INT, "+5"},
    {"0042", AEGIS_YS_INT, "0042"},
    {"0o17", AEGIS_YS_INT, "0o17"},
    {"0o18", AEGIS_YS_STRING, "0o18"},
    {"0x1F", AEGIS_YS_INT, "0x1F"},
    {"0xg", AEGIS_YS_STRING, "0xg"},
    {"0X1F", AEGIS_YS_STRING, "0X1F"},
    {"1_000", AEGIS_YS_STRING, "1_000"},
    {"1.5", AEGIS_YS_FLOAT, "1.5"},
    {"-.5", AEGIS_YS_FLOAT, "-.5"},
    {"1.", AEGIS_YS_FLOAT, "1."},
    {"1e3", AEGIS_YS_FLOAT, "1e3"},
    {"1.2E-3", AEGIS_YS_FLOAT, "1.2E-3"},
    {".inf", AEGIS_YS_FLOAT, ".inf"},
    {"-.Inf", AEGIS_YS_FLOAT, "-.Inf"},
    {".NaN", AEGIS_YS_FLOAT, ".NaN"},
    {".", AEGIS_YS_STRING, "."},
    {"1e", AEGIS_YS_STRING, "1e"},
    {"1.2.3", AEGIS_YS_STRING, "1.2.3"},
    {"2160h", AEGIS_YS_STRING, "2160h"},
    {"\"42\"", AEGIS_YS_STRING, "42"},
    {"'true'", AEGIS_YS_STRING, "true"},
    {"\"\"", AEGIS_YS_STRING, ""},
    {"''", AEGIS_YS_STRING, ""},
    {"\"null\"", AEGIS_YS_STRING, "null"},
    {"|\n  12\n", AEGIS_YS_STRING, "12\n"},
    {">-\n  true\n", AEGIS_YS_STRING, "true"},
    {"!!str 42", AEGIS_YS_STRING, "42"},
    {"!!str", AEGIS_YS_STRING, ""},
    {"!!int \"42\"", AEGIS_YS_INT, "42"},
    {"!!float 3", AEGIS_YS_FLOAT, "3"},
    {"!!bool 'true'", AEGIS_YS_BOOL, "true"},
    {"!!null ''", AEGIS_YS_NULL, ""},
    {"!<tag:yaml.org,2002:str> 7", AEGIS_YS_STRING, "7"},
    {"a b  c", AEGIS_YS_STRING, "a b  c"},
    {"\"tab\\tand \\u00e9\"", AEGIS_YS_STRING, "tab\tand \xc3\xa9"},
};

static void test_scalars(void)
{
    size_t i;

    for (i = 0; i < sizeof(scalars) / sizeof(scalars[0]); i++) {
        char *src = aegis_asprintf("v: %s\n", scalars[i].src);
        struct aegis_yfile *f;
        char diag[256], what[128];
        const struct aegis_ynode *v = NULL;
        int rc = load(src, strlen(src), &f, diag, sizeof(diag), NULL);

        if (rc == 0 && f->ndocs == 1)
            v = aegis_ymap_get(f->docs[0].root, "v");
        snprintf(what, sizeof(what), "v: %s resolves to %d", scalars[i].src, (int)scalars[i].want);
        CHECK(v != NULL && v->type == AEGIS_Y_SCALAR && v->scalar == scalars[i].want, what);
        if (v == NULL)
            printf("#   rc %d: %s\n", rc, diag);
        else if (v->scalar != scalars[i].want)
            printf("#   got %s\n", aegis_ynode_describe(v));
        CHECK_STR(v ? v->str : NULL, scalars[i].str, "its text");
        aegis_yfile_free(f);
        free(src);
    }
}

static void test_describe(void)
{
    const char *src = "m: {}\nl: []\ns: x\ni: 1\nf: 1.5\nb: true\nn: ~\n";
    static const struct {
        const char *key, *want;
    } d[] = {
        {"m", "a mapping"}, {"l", "a list"},    {"s", "a string"}, {"i", "an integer"},
        {"f", "a number"},  {"b", "a boolean"}, {"n", "null"},
    };
    struct aegis_yfile *f;
    char diag[256];
    size_t i;

    CHECK_INT(load(src, strlen(src), &f, diag, sizeof(diag), NULL), 0, "describe input loads");
    for (i = 0; i < sizeof(d) / sizeof(d[0]); i++)
        CHECK_STR(aegis_ynode_describe(aegis_ymap_get(f->docs[0].root, d[i].key)), d[i].want,
                  d[i].want);
    CHECK_STR(aegis_ynode_describe(NULL), "null", "describe(NULL)");
    aegis_yfile_free(f);
}

/* Bad input: the return code, the documents kept, and the first diagnostic, formatted. */
static const struct {
    const char *name;
    const char *src;
    size_t len; /* 0: strlen(src) */
    int rc;
    size_t ndocs;
    const char *diag;
} bad[] = {
    {"tab indentation", "a:\n\tb: 1\n", 0, -AEGIS_E_SYNTAX, 0,
     "t.yaml:2:1: found character that cannot start any token (while scanning for the next "
     "token); tabs are not allowed for indentation; use spaces"},
    {"tab in a list", "key:\n  - a\n\t- b\n", 0, -AEGIS_E_SYNTAX, 0,
     "t.yaml:3:1: found a tab character that violates indentation (while scanning a plain scalar "
     "at line 2, column 5); tabs are not allowed for indentation; use spaces"},
    {"mapping value in a value", "a: b: c\n", 0, -AEGIS_E_SYNTAX, 0,
     "t.yaml:1:5: mapping values are not allowed in this context; check the indentation, or "
     "quote a value that contains ': '"},
    {"bad indentation", "a:\n  b: 1\n c: 2\n", 0, -AEGIS_E_SYNTAX, 0,
     "t.yaml:3:2: did not find expected key (while parsing a block mapping at line 1, column 1); "
     "check the indentation"},
    {"list then mapping", "a:\n  - b\n  c: d\n", 0, -AEGIS_E_SYNTAX, 0,
     "t.yaml:3:3: did not find expected '-' indicator (while parsing a block collection at line "
     "2, column 3); check the indentation"},
    {"unclosed quote", "key: \"value\nnext: 1\n", 0, -AEGIS_E_SYNTAX, 0,
     "t.yaml:3:1: found unexpected end of stream (while scanning a quoted scalar at line 1, "
     "column 6); a quoted value is not closed"},
    {"unclosed flow list", "a: [1, 2", 0, -AEGIS_E_SYNTAX, 0,
     "t.yaml:2:1: did not find expected ',' or ']' (while parsing a flow sequence at line 1, "
     "column 4); a '[' list is not closed or misses a ','"},
    {"reserved character", "a: @x\n", 0, -AEGIS_E_SYNTAX, 0,
     "t.yaml:1:4: found character that cannot start any token (while scanning for the next "
     "token); quote a value that starts with '@', '`' or '%'"},
    {"syntax error keeps the documents before it", "a: 1\n---\nb: 2\n---\nc: [\n", 0,
     -AEGIS_E_SYNTAX, 2, NULL},
    {"anchor and alias", "a: &x 1\nb: *x\n", 0, -AEGIS_E_UNSUPPORTED, 0,
     "t.yaml:1:4: anchors and aliases are not supported; write the value out"},
    {"alias alone", "a: 1\nb: *x\n", 0, -AEGIS_E_UNSUPPORTED, 0,
     "t.yaml:2:4: anchors and aliases are not supported; write the value out"},
    {"anchor on a mapping", "a: &m {x: 1}\n", 0, -AEGIS_E_UNSUPPORTED, 0,
     "t.yaml:1:4: anchors and aliases are not supported; write the value out"},
    {"merge key", "base: &b {x: 1}\nother:\n  <<: *b\n", 0, -AEGIS_E_UNSUPPORTED, 0,
     "t.yaml:1:7: anchors and aliases are not supported; write the value out"},
    {"billion laughs",
     "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
     0, -AEGIS_E_UNSUPPORTED, 0, NULL},
    {"a bad document is dropped, the others kept", "a: 1\n---\nb: &x 2\n---\nc: 3\n", 0,
     -AEGIS_E_UNSUPPORTED, 2,
     "t.yaml:3:4: anchors and aliases are not supported; write the "
     "value out"},
    {"custom tag", "a: !foo 1\n", 0, -AEGIS_E_UNSUPPORTED, 0,
     "t.yaml:1:4: the tag !foo is not supported; remove it (only !!str, !!int, !!float, !!bool, "
     "!!null, !!map and !!seq are allowed)"},
    {"binary tag", "a: !!binary aGk=\n", 0, -AEGIS_E_UNSUPPORTED, 0,
     "t.yaml:1:4: the tag !!binary is not supported; remove it (only !!str, !!int, !!float, "
     "!!bool, !!null, !!map and !!seq are allowed)"},
    {"non-specific tag", "a: ! 1\n", 0, -AEGIS_E_UNSUPPORTED, 0, NULL},
    {"tag on a mapping", "!Host\nkind: x\n", 0, -AEGIS_E_UNSUPPORTED, 0, NULL},
    {"!!seq on a mapping", "a: !!seq {x: 1}\n", 0, -AEGIS_E_INVALID, 0,
     "t.yaml:1:4: the tag !!seq does not fit a mapping; remove it"},
    {"!!map on a scalar", "a: !!map x\n", 0, -AEGIS_E_INVALID, 0,
     "t.yaml:1:4: the tag !!map does not fit a single value; remove it"},
    {"!!str on a list", "a: !!str [x]\n", 0, -AEGIS_E_INVALID, 0,
     "t.yaml:1:4: the tag !!str does not fit a list; remove it"},
    {"!!map on a mapping is fine", "a: !!map {x: !!seq [1]}\n", 0, 0, 1, NULL},
    {"%TAG directive", "%TAG !e! tag:example.com,2000:\n---\na: !e!x 1\n", 0, -AEGIS_E_UNSUPPORTED,
     0,
     "t.yaml:3:4: the tag tag:example.com,2000:x is not supported; remove it (only !!str, "
     "!!int, !!float, !!bool, !!null, !!map and !!seq are allowed)"},
    {"!!int on text", "a: !!int abc\n", 0, -AEGIS_E_INVALID, 0,
     "t.yaml:1:4: \"abc\" is not an integer, as its tag says"},
    {"!!bool on text", "a: !!bool yes\n", 0, -AEGIS_E_INVALID, 0,
     "t.yaml:1:4: \"yes\" is not a boolean, as its tag says"},
    {"duplicate key", "a: 1\nb: 2\na: 3\n", 0, -AEGIS_E_INVALID, 0,
     "t.yaml:3:1: duplicate key \"a\"; the first is at line 1"},
    {"duplicate quoted key", "spec:\n  x: 1\n  \"x\": 2\n", 0, -AEGIS_E_INVALID, 0,
     "t.yaml:3:3: duplicate key \"x\"; the first is at line 2"},
    {"duplicate key in a flow mapping", "{a: 1, a: 2}", 0, -AEGIS_E_INVALID, 0,
     "t.yaml:1:8: duplicate key \"a\"; the first is at line 1"},
    {"duplicate key with a control character", "\"a\\x01\": 1\n\"a\\u0001\": 2\n", 0,
     -AEGIS_E_INVALID, 0, "t.yaml:2:1: duplicate key \"a\\x01\"; the first is at line 1"},
    {"a list as a key", "[a]: 1\n", 0, -AEGIS_E_INVALID, 0,
     "t.yaml:1:1: mapping keys must be plain strings"},
    {"a mapping as a key", "? {a: 1}\n: x\n", 0, -AEGIS_E_INVALID, 0,
     "t.yaml:1:3: mapping keys must be plain strings"},
    {"NUL byte", "a: 1\n---\nb: x\0y\n", 15, -AEGIS_E_SYNTAX, 1,
     "t.yaml:3:5: found a NUL byte; the file is not valid UTF-8 text"},
    {"NUL byte first", "\0", 1, -AEGIS_E_SYNTAX, 0,
     "t.yaml:1:1: found a NUL byte; the file is not valid UTF-8 text"},
    {"invalid UTF-8", "a: caf\xe9\n", 0, -AEGIS_E_SYNTAX, 0,
     "t.yaml:1:7: found the byte 0xE9, which is not valid UTF-8; the file is not valid UTF-8 "
     "text"},
    {"overlong UTF-8", "a: \xc0\xaf\n", 0, -AEGIS_E_SYNTAX, 0,
     "t.yaml:1:4: found an invalid UTF-8 sequence; the file is not valid UTF-8 text"},
    {"UTF-8 surrogate", "a: \xed\xa0\x80\n", 0, -AEGIS_E_SYNTAX, 0, NULL},
    {"truncated UTF-8", "a: \xc3", 0, -AEGIS_E_SYNTAX, 0,
     "t.yaml:1:4: found an incomplete UTF-8 sequence at the end; the file is not valid UTF-8 text"},
    {"control character", "a: 1\nb: \x07\n", 0, -AEGIS_E_SYNTAX, 0,
     "t.yaml:2:4: found the control character U+0007; the file is not valid UTF-8 text"},
    {"C1 control character", "a: \xc2\x80\n", 0, -AEGIS_E_SYNTAX, 0,
     "t.yaml:1:4: found the control character U+0080; the file is not valid UTF-8 text"},
    {"UTF-16 byte order mark",
     "\xff\xfe"
     "a\0:\0 \0"
     "1\0",
     10, -AEGIS_E_SYNTAX, 0,
     "t.yaml:1:1: found the byte 0xFF, which is not valid UTF-8; the file is not valid UTF-8 "
     "text"},
    {"binary junk",
     "\x7f"
     "ELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0>\0",
     20, -AEGIS_E_SYNTAX, 0,
     "t.yaml:1:1: found the control character U+007F; the file is not valid UTF-8 text"},
    {"bad byte after complete documents", "a: 1\n---\nb: 2\n...\n\xff", 0, -AEGIS_E_SYNTAX, 2,
     NULL},
    {"bad byte inside a quoted string", "a: 1\n---\nb: \"x\xff\"\n---\nc: 3\n", 0, -AEGIS_E_SYNTAX,
     1, NULL},
    {"truncated mapping", "a:\n  b: [1,\n", 0, -AEGIS_E_SYNTAX, 0, NULL},
    {"truncated document start", "---\n- a\n- [b", 0, -AEGIS_E_SYNTAX, 0, NULL},
    {"truncated block scalar", "a: |\n", 0, 0, 1, NULL},
    {"directive without a document", "%YAML 1.1\n", 0, -AEGIS_E_SYNTAX, 0, NULL},
    {"unknown directive version", "%YAML 2.0\n---\na\n", 0, -AEGIS_E_SYNTAX, 0, NULL},
};

static void test_bad(void)
{
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t len = bad[i].len ? bad[i].len : strlen(bad[i].src), nd;
        struct aegis_yfile *f = NULL;
        char diag[512], what[160];
        int rc = load(bad[i].src, len, &f, diag, sizeof(diag), &nd);

        snprintf(what, sizeof(what), "%s: return code", bad[i].name);
        CHECK_INT(rc, bad[i].rc, what);
        snprintf(what, sizeof(what), "%s: documents kept", bad[i].name);
        CHECK_INT(f ? f->ndocs : 999, bad[i].ndocs, what);
        snprintf(what, sizeof(what), "%s: %s", bad[i].name,
                 bad[i].rc ? "a diagnostic at a place" : "no diagnostic");
        CHECK(bad[i].rc ? (nd > 0 && strncmp(diag, "t.yaml:", 7) == 0) : nd == 0, what);
        if (bad[i].diag != NULL) {
            snprintf(what, sizeof(what), "%s: the diagnostic", bad[i].name);
            CHECK_STR(diag, bad[i].diag, what);
        } else if (diag[0] != '\0') {
            printf("#   %s\n", diag);
        }
        aegis_yfile_free(f);
    }
}

static void test_duplicates_all_reported(void)
{
    const char *src = "a: 1\nb: 2\na: 3\nc: 4\nb: 5\na: 6\n";
    struct aegis_diags d;
    struct aegis_yfile *f;
    char buf[256];
    int rc;

    aegis_diags_init(&d);
    rc = aegis_yaml_load_buffer("t.yaml", src, strlen(src), &f, &d);
    CHECK_INT(rc, -AEGIS_E_INVALID, "duplicates: rc");
    CHECK_INT(d.n, 3, "every repeated key is reported");
    if (d.n == 3) {
        aegis_diag_format(&d.v[0], buf, sizeof(buf));
        CHECK_STR(buf, "t.yaml:3:1: duplicate key \"a\"; the first is at line 1", "first repeat");
        aegis_diag_format(&d.v[1], buf, sizeof(buf));
        CHECK_STR(buf, "t.yaml:5:1: duplicate key \"b\"; the first is at line 2", "second");
        aegis_diag_format(&d.v[2], buf, sizeof(buf));
        CHECK_STR(buf, "t.yaml:6:1: duplicate key \"a\"; the first is at line 1", "third");
    }
    CHECK(d.v[0].kind == NULL && d.v[0].path == NULL, "YAML diagnostics have no kind or path");
    aegis_yfile_free(f);
    aegis_diags_dispose(&d);

    /* Many keys: the sort-based check must still find the one repeat. */
    {
        size_t n = 5000, i, len = 0;
        char *big = aegis_malloc(n * 16 + 32);
        char diag[256];

        for (i = 0; i < n; i++)
            len += (size_t)snprintf(big + len, 32, "k%zu: %zu\n", i, i);
        len += (size_t)snprintf(big + len, 32, "k4321: again\n");
        rc = load(big, len, &f, diag, sizeof(diag), NULL);
        CHECK_INT(rc, -AEGIS_E_INVALID, "a repeat among 5000 keys");
        CHECK_STR(diag, "t.yaml:5001:1: duplicate key \"k4321\"; the first is at line 4322",
                  "the repeat among 5000 keys");
        aegis_yfile_free(f);
        free(big);
    }
}

/* Builds a string of n copies of unit between head and tail. */
static char *repeat(const char *head, const char *unit, size_t n, const char *tail, size_t *len)
{
    size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail), i;
    char *s = aegis_malloc(hl + ul * n + tl + 1);

    /* Each copy includes the NUL, which the next copy overwrites. */
    memcpy(s, head, hl + 1);
    for (i = 0; i < n; i++)
        memcpy(s + hl + i * ul, unit, ul + 1);
    memcpy(s + hl + n * ul, tail, tl + 1);
    *len = hl + ul * n + tl;
    return s;
}

static void test_limits(void)
{
    struct aegis_yfile *f;
    char diag[512];
    size_t len;
    char *s;
    int rc;

    /* One document over AEGIS_LIMIT_YAML_DOC_BYTES, after a good one that is kept. */
    s = repeat("ok: 1\n---\nk: \"", "x", (size_t)AEGIS_LIMIT_YAML_DOC_BYTES, "\"\n", &len);
    rc = load(s, len, &f, diag, sizeof(diag), NULL);
    CHECK_INT(rc, -AEGIS_E_LIMIT, "a huge document: rc");
    CHECK_STR(diag, "t.yaml:2:1: the document is larger than the limit of 1048576 bytes; split it",
              "a huge document: the diagnostic");
    CHECK_INT(f->ndocs, 1, "the document before the huge one is kept");
    aegis_yfile_free(f);
    free(s);

    /* The same size in many small values: the size is measured in bytes, not characters. */
    s = repeat("- ", "\xc3\xa9", (size_t)AEGIS_LIMIT_YAML_DOC_BYTES / 2, "\n", &len);
    rc = load(s, len, &f, diag, sizeof(diag), NULL);
    CHECK_INT(rc, -AEGIS_E_LIMIT, "a document of 2-byte characters over the limit");
    aegis_yfile_free(f);
    free(s);
    s = repeat("- ", "\xc3\xa9", (size_t)AEGIS_LIMIT_YAML_DOC_BYTES / 2 - 8, "\n", &len);
    rc = load(s, len, &f, diag, sizeof(diag), NULL);
    CHECK_INT(rc, -AEGIS_E_LIMIT, "... which is the scalar limit, not the document limit");
    CHECK(strstr(diag, "value is longer than the limit of 262144 bytes") != NULL,
          "the scalar limit names itself");
    aegis_yfile_free(f);
    free(s);

    /* A scalar just over and just at AEGIS_LIMIT_YAML_SCALAR_BYTES. */
    s = repeat("pem: ", "A", (size_t)AEGIS_LIMIT_YAML_SCALAR_BYTES, "\n", &len);
    rc = load(s, len, &f, diag, sizeof(diag), NULL);
    CHECK(rc == 0 && f->ndocs == 1, "a value at the scalar limit is accepted");
    aegis_yfile_free(f);
    free(s);
    s = repeat("pem: ", "A", (size_t)AEGIS_LIMIT_YAML_SCALAR_BYTES + 1, "\n", &len);
    rc = load(s, len, &f, diag, sizeof(diag), NULL);
    CHECK_INT(rc, -AEGIS_E_LIMIT, "a value over the scalar limit");
    CHECK_STR(diag,
              "t.yaml:1:6: the value is longer than the limit of 262144 bytes; store it in a file "
              "or a Secret",
              "the scalar diagnostic");
    aegis_yfile_free(f);
    free(s);

    /* Keys. */
    s = repeat("", "k", AEGIS_LIMIT_YAML_KEY_BYTES, ": 1\n", &len);
    rc = load(s, len, &f, diag, sizeof(diag), NULL);
    CHECK(rc == 0 && f->ndocs == 1, "a key at the key limit is accepted");
    aegis_yfile_free(f);
    free(s);
    s = repeat("a: 1\n", "k", AEGIS_LIMIT_YAML_KEY_BYTES + 1, ": 1\n", &len);
    rc = load(s, len, &f, diag, sizeof(diag), NULL);
    CHECK_INT(rc, -AEGIS_E_LIMIT, "a key over the key limit");
    CHECK_STR(diag, "t.yaml:2:1: the key is longer than the limit of 256 bytes", "key diagnostic");
    aegis_yfile_free(f);
    free(s);

    /* Nesting: 32 levels are fine, 33 are not, and a very deep input ends quickly. */
    s = repeat("", "[", AEGIS_LIMIT_YAML_DEPTH, "", &len);
    {
        char *closed = repeat(s, "]", AEGIS_LIMIT_YAML_DEPTH, "", &len);

        rc = load(closed, len, &f, diag, sizeof(diag), NULL);
        CHECK(rc == 0 && f->ndocs == 1, "32 levels of nesting are accepted");
        aegis_yfile_free(f);
        free(closed);
    }
    free(s);
    s = repeat("", "[", AEGIS_LIMIT_YAML_DEPTH + 1, "", &len);
    rc = load(s, len, &f, diag, sizeof(diag), NULL);
    CHECK_INT(rc, -AEGIS_E_LIMIT, "33 levels of nesting");
    CHECK_STR(diag, "t.yaml:1:33: mappings and lists are nested deeper than the limit of 32 levels",
              "the nesting diagnostic");
    aegis_yfile_free(f);
    free(s);
    s = repeat("a: 1\n---\n", "- ", 100000, "x\n", &len);
    rc = load(s, len, &f, diag, sizeof(diag), NULL);
    CHECK_INT(rc, -AEGIS_E_LIMIT, "100000 levels of block lists");
    CHECK(f->ndocs == 1 && strstr(diag, "t.yaml:3:65: mappings and lists are nested") != NULL,
          "deep block nesting: the place, and the document before kept");
    aegis_yfile_free(f);
    free(s);
    s = repeat("", "{a: ", 500000, "", &len);
    rc = load(s, len, &f, diag, sizeof(diag), NULL);
    CHECK_INT(rc, -AEGIS_E_LIMIT, "500000 levels of flow mappings end quickly");
    aegis_yfile_free(f);
    free(s);

    /* Nodes: a document of small values, under the byte limit but over the node limit. */
    s = repeat("[", "1,", AEGIS_LIMIT_YAML_NODES, "1]", &len);
    rc = load(s, len, &f, diag, sizeof(diag), NULL);
    CHECK_INT(rc, -AEGIS_E_LIMIT, "too many nodes");
    CHECK_STR(diag, "t.yaml:1:1: the document has more than the limit of 100000 values; split it",
              "the node diagnostic");
    aegis_yfile_free(f);
    free(s);
    s = repeat("[", "1,", AEGIS_LIMIT_YAML_NODES - 2, "1]", &len);
    rc = load(s, len, &f, diag, sizeof(diag), NULL);
    CHECK(rc == 0 && f->ndocs == 1 && f->docs[0].root->n == AEGIS_LIMIT_YAML_NODES - 1,
          "exactly the node limit is accepted");
    aegis_yfile_free(f);
    free(s);

    /* Documents per file. */
    s = repeat("", "---\na: 1\n", AEGIS_LIMIT_YAML_DOCS, "", &len);
    rc = load(s, len, &f, diag, sizeof(diag), NULL);
    CHECK(rc == 0 && f->ndocs == AEGIS_LIMIT_YAML_DOCS, "the document limit is accepted");
    aegis_yfile_free(f);
    free(s);
    s = repeat("", "---\na: 1\n", AEGIS_LIMIT_YAML_DOCS + 1, "", &len);
    rc = load(s, len, &f, diag, sizeof(diag), NULL);
    CHECK_INT(rc, -AEGIS_E_LIMIT, "one document too many");
    CHECK_INT(f->ndocs, AEGIS_LIMIT_YAML_DOCS, "the documents up to the limit are kept");
    CHECK_STR(diag, "t.yaml:2001:1: the file has more than the limit of 1000 documents; split it",
              "the document-count diagnostic");
    aegis_yfile_free(f);
    free(s);

    /* A buffer over the file limit is refused before parsing. */
    s = repeat("# ", "x", (size_t)AEGIS_LIMIT_YAML_FILE_BYTES, "\n", &len);
    rc = load(s, len, &f, diag, sizeof(diag), NULL);
    CHECK_INT(rc, -AEGIS_E_LIMIT, "a buffer over the file limit");
    CHECK_STR(diag, "t.yaml: the file is larger than the limit of 8388608 bytes; split it",
              "the file-size diagnostic");
    CHECK(f != NULL && f->ndocs == 0, "an empty file object is returned");
    aegis_yfile_free(f);
    free(s);
}

static void test_encodings(void)
{
    struct aegis_yfile *f;
    char diag[256];
    const char *bom = "\xEF\xBB\xBF"
                      "a: 1\nb: \xc3\xa9t\xc3\xa9\nc: x\n";
    const char *crlf = "a: 1\r\nb:\r\n  - x\r\n";
    int rc;

    rc = load(bom, strlen(bom), &f, diag, sizeof(diag), NULL);
    CHECK(rc == 0 && f->ndocs == 1, "a UTF-8 byte order mark is accepted");
    if (rc == 0 && f->ndocs == 1) {
        const struct aegis_ynode *root = f->docs[0].root;

        CHECK_INT(root->mark.col, 1, "the BOM does not count as a column");
        CHECK_STR(aegis_ymap_get(root, "b")->str, "\xc3\xa9t\xc3\xa9", "UTF-8 text");
        CHECK_INT(aegis_ymap_get(root, "c")->mark.line, 3, "line after UTF-8 text");
    }
    aegis_yfile_free(f);
    rc = load(crlf, strlen(crlf), &f, diag, sizeof(diag), NULL);
    CHECK(rc == 0 && f->ndocs == 1, "CRLF line ends");
    if (rc == 0 && f->ndocs == 1) {
        const struct aegis_ynode *b = aegis_ymap_get(f->docs[0].root, "b");

        CHECK(b != NULL && b->type == AEGIS_Y_SEQ && b->items[0]->mark.line == 3 &&
                  b->items[0]->mark.col == 5,
              "CRLF marks");
    }
    aegis_yfile_free(f);
    rc = load("a: \"x\\0y\"\n", 10, &f, diag, sizeof(diag), NULL);
    CHECK(rc == 0 && f->ndocs == 1, "an escaped NUL in a quoted string is text");
    if (rc == 0 && f->ndocs == 1) {
        const struct aegis_ynode *a = aegis_ymap_get(f->docs[0].root, "a");

        CHECK(a != NULL && a->len == 3 && memcmp(a->str, "x\0y", 4) == 0, "len counts the NUL");
    }
    aegis_yfile_free(f);
    /* A bad byte after a long document: the reader must not fail before the earlier ones. */
    {
        size_t len;
        char *s = repeat("a: 1\n---\nb: \"", "x", 100000, "\"\n---\nc: \xff\n", &len);

        rc = load(s, len, &f, diag, sizeof(diag), NULL);
        CHECK_INT(rc, -AEGIS_E_SYNTAX, "bad byte after a long document");
        CHECK_INT(f->ndocs, 2, "the two documents before it are kept");
        CHECK_STR(diag,
                  "t.yaml:5:4: found the byte 0xFF, which is not valid UTF-8; the file is not "
                  "valid UTF-8 text",
                  "its place");
        aegis_yfile_free(f);
        free(s);
    }
}

/* Every prefix of a valid file must load or fail cleanly. */
static void test_truncations(void)
{
    const char *src = "apiVersion: aegis.dev/v1alpha1\n"
                      "kind: Certificate\n"
                      "metadata: {name: app, namespace: \"default\"}\n"
                      "spec:\n"
                      "  dnsNames: [app.example.com, '*.app.example.com']\n"
                      "  note: |\n"
                      "    line one\n"
                      "  caf\xc3\xa9: >-\n"
                      "    folded\n"
                      "---\n"
                      "- \"esc \\u00e9\\x41\"\n";
    size_t len = strlen(src), i, failed = 0;

    for (i = 0; i <= len; i++) {
        struct aegis_diags d;
        struct aegis_yfile *f = NULL;
        int rc;

        aegis_diags_init(&d);
        rc = aegis_yaml_load_buffer("t.yaml", src, i, &f, &d);
        if (f == NULL || (rc != 0) != (d.nerrors != 0))
            failed++;
        aegis_yfile_free(f);
        aegis_diags_dispose(&d);
    }
    CHECK_INT(failed, 0, "every prefix loads or reports an error");
}

static void test_files(void)
{
    char dir[] = "/tmp/aegis-test-yaml.XXXXXX", path[256], big[256];
    const char *content = "a: 1\n---\nb: [x]\n";
    struct aegis_diags d;
    struct aegis_yfile *f;
    char diag[512];
    int fd, rc;

    if (mkdtemp(dir) == NULL) {
        CHECK(0, "mkdtemp");
        return;
    }
    snprintf(path, sizeof(path), "%s/ok.yaml", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && write(fd, content, strlen(content)) == (ssize_t)strlen(content),
          "write a test file");
    close(fd);

    aegis_diags_init(&d);
    rc = aegis_yaml_load_file(path, &f, &d);
    CHECK(rc == 0 && f != NULL && f->ndocs == 2 && d.n == 0, "load_file reads a file");
    CHECK_STR(f ? f->name : NULL, path, "the file keeps its path");
    aegis_yfile_free(f);

    snprintf(big, sizeof(big), "%s/missing.yaml", dir);
    rc = aegis_yaml_load_file(big, &f, &d);
    CHECK_INT(rc, -ENOENT, "a missing file gives -ENOENT");
    CHECK(f == NULL, "and no file object");
    aegis_diag_format(&d.v[d.n - 1], diag, sizeof(diag));
    CHECK(strstr(diag, "missing.yaml: cannot open: ") != NULL, "the open diagnostic");

    rc = aegis_yaml_load_file(dir, &f, &d);
    CHECK(rc < 0 && f != NULL && f->ndocs == 0, "a directory is refused");
    aegis_diag_format(&d.v[d.n - 1], diag, sizeof(diag));
    CHECK(strstr(diag, ": not a regular file") != NULL, "the directory diagnostic");
    aegis_yfile_free(f);

    rc = aegis_yaml_load_file("/dev/null", &f, &d);
    CHECK(rc < 0 && f != NULL && f->ndocs == 0, "a device is refused");
    aegis_yfile_free(f);

    /* A sparse file just over the limit: refused from its size, without reading it. */
    snprintf(big, sizeof(big), "%s/big.yaml", dir);
    fd = open(big, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && ftruncate(fd, (off_t)AEGIS_LIMIT_YAML_FILE_BYTES + 1) == 0, "a big file");
    close(fd);
    rc = aegis_yaml_load_file(big, &f, &d);
    CHECK_INT(rc, -AEGIS_E_LIMIT, "a file over the limit is refused");
    aegis_diag_format(&d.v[d.n - 1], diag, sizeof(diag));
    CHECK(strstr(diag, "big.yaml: the file is larger than the limit of 8388608 bytes") != NULL,
          "the size diagnostic");
    aegis_yfile_free(f);
    unlink(big);

    /* Diagnostics from a file name the file. */
    fd = open(path, O_WRONLY | O_TRUNC);
    CHECK(fd >= 0 && write(fd, "a: 1\na: 2\n", 10) == 10, "rewrite the test file");
    close(fd);
    rc = aegis_yaml_load_file(path, &f, &d);
    CHECK_INT(rc, -AEGIS_E_INVALID, "a file with a duplicate key");
    aegis_diag_format(&d.v[d.n - 1], diag, sizeof(diag));
    CHECK(strstr(diag, "ok.yaml:2:1: duplicate key \"a\"") != NULL,
          "the diagnostic names the file");
    aegis_yfile_free(f);

    aegis_diags_dispose(&d);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    test_documents();
    test_empty_inputs();
    test_scalars();
    test_describe();
    test_bad();
    test_duplicates_all_reported();
    test_limits();
    test_encodings();
    test_truncations();
    test_files();
    return check_done();
}
