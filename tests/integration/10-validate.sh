#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# `aegisctl validate` end to end, as a user runs it:
#  - every tests/data/invalid fixture fails with exit status 1 and prints exactly the diagnostics
#    its `# expect:` lines list (compared as a multiset, the `file:line:col: ` prefix removed, and
#    `{file}` in an expectation standing for the path given on the command line);
#  - every tests/data/malformed file, and huge or deeply nested input generated here, fails with
#    exit status 1, a diagnostic naming the file, each `# expect-substring:` (case-insensitive;
#    `a || b` means either) and no crash or sanitizer report;
#  - examples/ and tests/data/valid validate clean; --output json has the documented fields;
#    a missing path and bad usage are reported.
# Environment: AEGISCTL (default build/aegisctl), AEGIS_SOURCE_DIR (default: the repository
# holding this script). Ends with "N passed, N failed"; exit status 1 on any failure.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
AEGISCTL=${AEGISCTL:-$SRC/build/aegisctl}
PY=/usr/bin/python3
cd "$SRC"
if [[ ! -x $AEGISCTL ]]; then
    bail_out "aegisctl not found at '$AEGISCTL'; set AEGISCTL"
fi
AEGISCTL=$(cd "$(dirname "$AEGISCTL")" && pwd)/$(basename "$AEGISCTL")

# run ARGS...: runs aegisctl with a time limit; sets rc, and leaves stdout/stderr in $TMP/out, err.
run() {
    rc=0
    timeout 60 "$AEGISCTL" "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
}

# A crash, a hang or a sanitizer report; prints the reason, or nothing.
crash_reason() {
    if ((rc == 124)); then
        echo "timed out"
    elif ((rc > 2)); then
        echo "exit status $rc (crash?)"
    fi
    if grep -qE 'Sanitizer|runtime error:' "$TMP/err"; then
        echo "sanitizer report:"
        head -20 "$TMP/err"
    fi
}

# Diagnostics of stdout with the "FILE:LINE:COL: " prefix removed, one per line, sorted.
stripped_output() {
    local file=$1 line rest
    while IFS= read -r line || [[ -n $line ]]; do
        rest=${line#"$file:"}
        if [[ $rest != "$line" && $rest =~ ^([0-9]+:){0,2}\ (.*)$ ]]; then
            printf '%s\n' "${BASH_REMATCH[2]}"
        else
            printf '%s\n' "$line"
        fi
    done <"$TMP/out" | LC_ALL=C sort
}

# The fixture's "# expect:" lines with {file} replaced, sorted.
expected_output() {
    local file=$1 line
    while IFS= read -r line; do
        line=${line#"# expect: "}
        printf '%s\n' "${line//\{file\}/$file}"
    done < <(grep -a '^# expect: ' "$file") | LC_ALL=C sort
}

summary_re='^[0-9]+ errors?, [0-9]+ warnings? in [0-9]+ files?( .*)?$'

# ---- invalid fixtures: exact diagnostics --------------------------------------------------------
for f in tests/data/invalid/*.yaml; do
    run validate "$f"
    why=$(crash_reason)
    if [[ -n $why ]]; then
        notok "$f: clean failure" "$why"
        continue
    fi
    stripped_output "$f" >"$TMP/got"
    expected_output "$f" >"$TMP/want"
    if [[ ! -s $TMP/want ]]; then
        notok "$f: has # expect: lines"
    elif ((rc != 1)); then
        notok "$f: exit status 1" "exit status $rc; stdout:" "$(cat "$TMP/out")"
    elif ! cmp -s "$TMP/got" "$TMP/want"; then
        notok "$f: diagnostics as expected" \
            "$(diff "$TMP/want" "$TMP/got" | grep '^[<>]' | sed 's/^</missing:   /; s/^>/unexpected:/')"
    else
        ok "$f: diagnostics as expected"
    fi
done

# ---- malformed input: a clean error, no crash ---------------------------------------------------
check_malformed() {
    local f=$1 label=$2
    shift 2
    run validate "$f"
    local why problems=() sub alt found
    why=$(crash_reason)
    [[ -z $why ]] || problems+=("$why")
    ((rc == 1)) || problems+=("exit status $rc, want 1")
    grep -aq "^$f:" "$TMP/out" || problems+=("no diagnostic naming $f on stdout")
    # Match the messages only: file names such as tabs.yaml must not satisfy "tab".
    stripped_output "$f" >"$TMP/msgs"
    for sub in "$@"; do
        found=0
        while IFS= read -r alt; do
            alt=$(sed 's/^ *//; s/ *$//' <<<"$alt")
            if [[ -n $alt ]] && grep -aqiF -- "$alt" "$TMP/msgs"; then
                found=1
            fi
        done < <(printf '%s\n' "${sub// || /$'\n'}")
        ((found)) || problems+=("no diagnostic contains: $sub")
    done
    if ((${#problems[@]})); then
        notok "$label" "${problems[@]}" "stdout:" "$(head -c 2000 "$TMP/out")"
    else
        ok "$label"
    fi
}

for f in tests/data/malformed/*; do
    subs=()
    while IFS= read -r l; do
        subs+=("${l#"# expect-substring: "}")
    done < <(grep -a '^# expect-substring: ' "$f" || true)
    if ((${#subs[@]} == 0)); then
        notok "$f: has # expect-substring: lines"
        continue
    fi
    check_malformed "$f" "$f: clean error" "${subs[@]}"
done

# Generated here rather than committed: big inputs.
HOST_HEAD='apiVersion: aegis.dev/v1alpha1
kind: Host
metadata:
  name: big
spec:
  hostnames: [big.example.test]
  upstreams:
    - url: http://127.0.0.1:8080
  tls:
    mode: none'
"$PY" - "$TMP" "$HOST_HEAD" <<'PYEOF'
import sys
tmp, head = sys.argv[1], sys.argv[2]
# One document of 2 MiB (the limit is AEGIS_LIMIT_YAML_DOC_BYTES, 1 MiB).
with open(f"{tmp}/gen-huge-document.yaml", "w") as f:
    f.write(head.replace("  name: big\n", "  name: big\n  annotations:\n", 1) + "\n")
    line = "    k{:07d}: " + "v" * 100 + "\n"
    for i in range(2 * 1024 * 1024 // len(line.format(0)) + 1):
        f.write(line.format(i))
# 100 levels of nesting (the limit is AEGIS_LIMIT_YAML_DEPTH, 32), flow and block style.
with open(f"{tmp}/gen-deep-flow.yaml", "w") as f:
    f.write(head.replace("[big.example.test]", "[" * 100 + "x" + "]" * 100) + "\n")
with open(f"{tmp}/gen-deep-block.yaml", "w") as f:
    f.write(head + "\n  healthCheck:\n")
    for i in range(100):
        f.write("  " * (i + 2) + f"l{i}:\n")
    f.write("  " * 102 + "leaf: 1\n")
# A 300 KiB scalar (the limit is AEGIS_LIMIT_YAML_SCALAR_BYTES, 256 KiB).
with open(f"{tmp}/gen-huge-scalar.yaml", "w") as f:
    f.write(head + "\n  upstreamTLS:\n    caCertificate:\n      pem: " + "A" * (300 * 1024) + "\n")
# A 9 MiB file (the limit is AEGIS_LIMIT_YAML_FILE_BYTES, 8 MiB), one small document per line.
with open(f"{tmp}/gen-huge-file.yaml", "w") as f:
    f.write("# " + "x" * 1000 + "\n")
    f.write(("# " + "x" * 1021 + "\n") * (9 * 1024))
    f.write(head + "\n")
PYEOF
(
    cd "$TMP"
    check_malformed gen-huge-document.yaml "generated 2 MiB document: clean error" 'limit || large || long || exceed'
    check_malformed gen-deep-flow.yaml "generated 100-level flow nesting: clean error" 'nest || depth || deep || limit'
    check_malformed gen-deep-block.yaml "generated 100-level block nesting: clean error" 'nest || depth || deep || limit'
    check_malformed gen-huge-scalar.yaml "generated 300 KiB scalar: clean error" 'limit || large || long || exceed'
    check_malformed gen-huge-file.yaml "generated 9 MiB file: clean error" 'limit || large || long || exceed'
    echo "$n $passed $failed" >"$TMP/counts"
)
read -r n passed failed <"$TMP/counts"

# ---- clean input ---------------------------------------------------------------------------
# examples/: exit 0, nothing on stdout but (at most) the summary, "0 errors, 0 warnings in N files".
nex=$(find examples -name '*.yaml' -o -name '*.yml' | wc -l)
run validate examples/
why=$(crash_reason)
summary=$(cat "$TMP/out" "$TMP/err" | grep -E "$summary_re" || true)
others=$(grep -vE "$summary_re" "$TMP/out" || true)
if [[ -n $why ]] || ((rc != 0)) || [[ -n $others ]]; then
    notok "examples/ validates clean" "exit status $rc" "$why" "$(cat "$TMP/out" "$TMP/err")"
elif ! grep -qE "^0 errors, 0 warnings in $nex files( .*)?$" <<<"$summary"; then
    notok "examples/ summary line says 0 errors, 0 warnings in $nex files" "got: $summary"
else
    ok "examples/ validates clean ($summary)"
fi

run validate tests/data/valid
why=$(crash_reason)
if [[ -n $why ]] || ((rc != 0)) || grep -qv '^[^:]*:[0-9]*:[0-9]*: warning: ' <(grep -vE "$summary_re" "$TMP/out"); then
    notok "tests/data/valid validates as one set (warnings only)" "exit status $rc" "$why" "$(cat "$TMP/out")"
else
    ok "tests/data/valid validates as one set (warnings only)"
fi

f=tests/data/valid/insecure-skip-verify.yaml
run validate "$f"
stripped_output "$f" | grep -vE "$summary_re" >"$TMP/got" || true
want='warning: Host default/dev-insecure: spec.upstreamTLS.insecureSkipVerify: upstream certificates are not verified; use this for development only'
if ((rc == 0)) && [[ $(cat "$TMP/got") == "$want" ]]; then
    ok "a warning alone: exit status 0 and the warning printed"
else
    notok "a warning alone: exit status 0 and the warning printed" "exit status $rc" "$(cat "$TMP/out")"
fi

# ---- --output json ---------------------------------------------------------------------------
f=tests/data/invalid/077-dns-name.yaml
run validate --output json "$f"
if ((rc == 1)) && "$PY" -m json.tool <"$TMP/out" >/dev/null 2>&1 &&
    msg=$("$PY" - "$f" "$TMP/out" <<'PYEOF'
import json, sys
path, out = sys.argv[1], sys.argv[2]
r = json.load(open(out))
problems = []
for k in ("diagnostics", "errors", "warnings", "files", "resources"):
    if k not in r:
        problems.append(f"top-level field {k} missing")
keys = ("file", "line", "column", "severity", "kind", "namespace", "name", "path", "message")
for d in r.get("diagnostics", []):
    missing = [k for k in keys if k not in d]
    if missing:
        problems.append(f"diagnostic {d} lacks {missing}")
lines = open(path).read().split("\n")
row = next(i for i, l in enumerate(lines) if l.strip() == "- exa mple.com")
want = {"file": path, "line": row + 1, "column": lines[row].index("exa") + 1, "severity": "error",
        "kind": "Certificate", "namespace": "default", "name": "app", "path": "spec.dnsNames[2]",
        "message": '"exa mple.com" is not a valid DNS name: contains a character other than letters, digits, \'-\' and \'.\''}
if r.get("diagnostics") != [want]:
    problems.append(f"diagnostics: {r.get('diagnostics')}\nwant: [{want}]")
if (r.get("errors"), r.get("warnings"), r.get("files")) != (1, 0, 1) or \
        not isinstance(r.get("resources"), int) or not 0 <= r["resources"] <= 2:
    problems.append("want errors 1, warnings 0, files 1, resources 0-2; got "
                    f"{r.get('errors')}, {r.get('warnings')}, {r.get('files')}, {r.get('resources')}")
print("\n".join(problems))
sys.exit(1 if problems else 0)
PYEOF
    ); then
    ok "--output json: fields, place and counts"
else
    notok "--output json: fields, place and counts" "exit status $rc" "${msg:-}" "$(head -c 2000 "$TMP/out")"
fi

# The text form names the same place.
row=$(grep -n -- '- exa mple.com' "$f" | cut -d: -f1)
col=$(($(sed -n "${row}p" "$f" | sed 's/exa mple.*//' | wc -c)))
run validate "$f"
if grep -qxF "$f:$row:$col: Certificate default/app: spec.dnsNames[2]: \"exa mple.com\" is not a valid DNS name: contains a character other than letters, digits, '-' and '.'" "$TMP/out"; then
    ok "text output: file:line:col: Kind ns/name: path: message"
else
    notok "text output: file:line:col: Kind ns/name: path: message" "$(cat "$TMP/out")"
fi

# ---- a missing path, bad usage -----------------------------------------------------------------
run validate does/not/exist.yaml
if ((rc == 1)) && grep -q 'does/not/exist.yaml' "$TMP/out" "$TMP/err" && [[ -z $(crash_reason) ]]; then
    ok "a missing path: exit status 1 and a message naming it"
else
    notok "a missing path: exit status 1 and a message naming it" "exit status $rc" "$(cat "$TMP/out" "$TMP/err")"
fi

run validate --output xml examples/
if ((rc == 2)); then
    ok "an unknown --output format: exit status 2"
else
    notok "an unknown --output format: exit status 2" "exit status $rc" "$(cat "$TMP/err")"
fi

summary
