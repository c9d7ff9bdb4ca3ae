#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The README's first command: on a fresh Debian 12 machine, installs the dependencies, builds
# Aegis in build/ (gcc, no sanitizers) and runs the main job. For now the main job validates the
# example resources and prints them; later versions start the controller and the dataplane here.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

hack/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc
# Only the binaries: the tests are built and run by hack/test.sh.
cmake --build build -j"$(nproc)" --target aegisctl aegis-controller aegis-dataplane

echo
echo "== aegisctl validate examples/"
build/aegisctl validate examples/
echo
echo "== aegisctl get examples/"
build/aegisctl get examples/
