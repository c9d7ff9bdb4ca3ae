#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Source rules the compiler does not enforce (STYLE.md, "Enforced by machines"). Prints every
# violation as file:line: message and exits 1 when there is any:
#   - banned functions, called anywhere in C code: sprintf vsprintf strcpy strcat strncpy strtok
#     atoi gets (use snprintf, aegis_strdup/memcpy with a length, strtol/strtoul, ...);
#   - printing from common/ (the library never prints; it returns errors and diagnostics),
#     except common/alloc.c, whose out-of-memory abort must say why;
#   - a missing SPDX-License-Identifier line in the first 3 lines of every .c .h .sh .py .cmake
#     .yaml .yml and CMakeLists.txt (build trees, .git and fuzz corpora are skipped).
# Comments, string literals and member calls (ops->gets()) are ignored when looking for calls.
#
# Usage: hack/checksrc.sh [FILE...]   (default: every file of the repository)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if (($# == 0)); then
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        # Tracked and untracked files, without what .gitignore excludes (build trees).
        mapfile -t files < <(git ls-files --cached --others --exclude-standard)
    else
        mapfile -t files < <(find . \( -path ./.git -o -path './build*' \) -prune -o -type f \
            -print | sed 's|^\./||')
    fi
else
    files=("$@")
fi

printf '%s\n' "${files[@]}" | exec /usr/bin/python3 -c '
import re, sys, os

BANNED = r"sprintf|vsprintf|strcpy|strcat|strncpy|strtok|atoi|gets"
PRINTS = r"printf|fprintf|vprintf|vfprintf|dprintf|puts|fputs|perror|putchar"
banned_re = re.compile(r"(?<![A-Za-z0-9_.>])(" + BANNED + r")\s*\(")
prints_re = re.compile(r"(?<![A-Za-z0-9_.>])(" + PRINTS + r")\s*\(")
SPDX_EXT = (".c", ".h", ".sh", ".py", ".cmake", ".yaml", ".yml")
PRINT_OK = {"common/alloc.c"}

def blank_comments_and_strings(text):
    """Replaces comments, string and character literals by spaces, keeping the newlines."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
        elif c in "\"\x27":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
        else:
            out.append(c)
            i += 1
            continue
        out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
        i = j
    return "".join(out)

def skipped(path):
    parts = path.split("/")
    return (parts[0].startswith("build") or ".git" in parts
            or path.startswith("tests/fuzz/corpus/"))

problems = []
for path in sys.stdin.read().split("\n"):
    path = path.strip()
    if path.startswith("./"):
        path = path[2:]
    if not path or skipped(path) or not os.path.isfile(path):
        continue
    name = os.path.basename(path)
    if not (name.endswith(SPDX_EXT) or name == "CMakeLists.txt"):
        continue
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    if not any("SPDX-License-Identifier:" in l for l in text.split("\n")[:3]):
        problems.append(f"{path}:1: no SPDX-License-Identifier line in the first 3 lines")
    if not name.endswith((".c", ".h")):
        continue
    code = blank_comments_and_strings(text)
    in_common = path.startswith("common/") and path not in PRINT_OK
    for lineno, line in enumerate(code.split("\n"), 1):
        if line.lstrip().startswith("#") and "define" not in line:
            continue  # #include <...> and other directives name no calls
        for m in banned_re.finditer(line):
            problems.append(f"{path}:{lineno}: banned function {m.group(1)}()")
        if in_common:
            for m in prints_re.finditer(line):
                problems.append(f"{path}:{lineno}: common/ must not print ({m.group(1)})")

for p in problems:
    print(p)
if problems:
    print(f"checksrc: {len(problems)} problem(s)", file=sys.stderr)
    sys.exit(1)
'
