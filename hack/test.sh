#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The README's second command, and exactly what CI runs (.ci/run): installs the dependencies,
# builds everything with clang under ASan + UBSan together with the libFuzzer targets in
# build/test, and runs the whole suite through ctest - unit, Python, integration, API drift,
# 30-second fuzz smoke runs and lint.
#
# First it compiles the whole tree with gcc as well (build/gcc, no tests run): the code must be
# warning-free under both compilers, and hack/quickstart.sh builds with gcc.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

jobs=$(nproc)

hack/deps.sh

echo "== gcc build (warnings are errors)"
cmake -S . -B build/gcc -DCMAKE_C_COMPILER=gcc
cmake --build build/gcc -j"$jobs"

echo "== clang + ASan + UBSan + libFuzzer build"
CC=clang cmake -S . -B build/test -DAEGIS_SANITIZE=ON -DAEGIS_FUZZ=ON -DAEGIS_LINT=ON
cmake --build build/test -j"$jobs"

echo "== ctest"
ctest --test-dir build/test --output-on-failure -j2 --timeout 300
