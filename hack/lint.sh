#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Every machine-checked rule of the code, as one command (ctest runs it as "lint" when configured
# with -DAEGIS_LINT=ON, so CI runs it):
#   1. hack/checksrc.sh     banned functions, no printing from common/, SPDX lines
#   2. clang-format         every .c and .h matches .clang-format (generated *.gen.* excepted)
#   3. cppcheck             warning, portability and performance checks on the C sources
#   4. clang-tidy           .clang-tidy's checks, with the flags of BUILD_DIR's
#                           compile_commands.json (generated files and tests/fuzz excepted)
# All steps run even when one fails, so one run shows every problem.
#
# Usage: hack/lint.sh BUILD_DIR    (a configured build tree; clang builds give the best tidy)
set -euo pipefail

if (($# != 1)); then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

if [[ ! -f $build/compile_commands.json ]]; then
    echo "lint: $build/compile_commands.json is missing; configure that build first" >&2
    exit 2
fi

# The C sources of the repository, without build trees and generated files.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    mapfile -t all < <(git ls-files --cached --others --exclude-standard -- '*.c' '*.h')
else
    mapfile -t all < <(find . \( -path ./.git -o -path './build*' \) -prune -o -type f \
        \( -name '*.c' -o -name '*.h' \) -print | sed 's|^\./||')
fi
sources=()
for f in "${all[@]}"; do
    [[ -f $f && $f != build* && $f != *.gen.* ]] && sources+=("$f")
done

failed=()
step() {
    echo "== lint: $1"
}

step checksrc
hack/checksrc.sh || failed+=(checksrc)

step clang-format
if ((${#sources[@]})) && ! clang-format --dry-run --Werror "${sources[@]}"; then
    failed+=(clang-format)
fi

step cppcheck
c_dirs=()
for d in common controller dataplane aegisctl; do
    [[ -n $(find "$d" -name '*.c' -print -quit 2>/dev/null) ]] && c_dirs+=("$d")
done
if ((${#c_dirs[@]})) && ! cppcheck --enable=warning,portability,performance --error-exitcode=1 \
    --inline-suppr -q --std=c11 -D_GNU_SOURCE -DAEGIS_VERSION='"0"' \
    -Icommon/include -Icommon --suppress=missingIncludeSystem -j"$(nproc)" "${c_dirs[@]}"; then
    failed+=(cppcheck)
fi

step clang-tidy
# clang-tidy reads a copy of the compile database with one entry per file (the fuzz build compiles
# common/ twice; once is enough). Generated files and fuzz targets are left out; headers are
# checked through the sources that include them (HeaderFilterRegex in .clang-tidy). One file per
# clang-tidy process: clang-tidy 14 given several files reports false va_list errors
# (clang-analyzer-valist.Uninitialized) in every file after the first.
tidy_db=$(mktemp -d "${TMPDIR:-/tmp}/aegis-lint.XXXXXX")
trap 'rm -rf "$tidy_db"' EXIT
mapfile -t tidy < <(/usr/bin/python3 - "$build/compile_commands.json" "$root" "$tidy_db" <<'PY'
import json, os, sys
db, root, out = sys.argv[1:4]
seen, keep = set(), []
for entry in json.load(open(db)):
    path = os.path.normpath(os.path.join(entry["directory"], entry["file"]))
    rel = os.path.relpath(path, root)
    if rel.startswith("..") or ".gen." in rel or rel.startswith("tests/fuzz/") or path in seen:
        continue
    seen.add(path)
    keep.append(entry)
    print(rel)
with open(os.path.join(out, "compile_commands.json"), "w") as f:
    json.dump(keep, f, indent=1)
PY
)
run_tidy() {
    printf '%s\0' "${tidy[@]}" | xargs -0 -n 1 -P "$(nproc)" clang-tidy -p "$tidy_db" --quiet
}
if ((${#tidy[@]})); then
    # The "N warnings generated." lines count suppressed warnings in system headers: noise.
    if ! run_tidy >"$tidy_db/out" 2>&1; then
        failed+=(clang-tidy)
    fi
    grep -Ev '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$' "$tidy_db/out" || true
fi

if ((${#failed[@]})); then
    echo "lint: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "lint: all checks passed"
