#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The README's second command, and exactly what CI runs (.ci/run): installs the dependencies,
# builds everything with clang under ASan + UBSan together with the libFuzzer targets in
# build/test, and runs the whole suite through ctest - unit, Python, integration, API drift,
# 30-second fuzz smoke runs and lint.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

hack/deps.sh
CC=clang cmake -S . -B build/test -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DAEGIS_SANITIZE=ON -DAEGIS_FUZZ=ON -DAEGIS_LINT=ON
cmake --build build/test -j"$(nproc)"
ctest --test-dir build/test --output-on-failure -j2 --timeout 300
