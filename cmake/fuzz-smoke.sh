#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The ctest "fuzz-smoke/<target>" step: runs one libFuzzer target for a few seconds on a scratch
# copy of its seed corpus, so that new inputs libFuzzer finds never land in the repository.
# Crash, leak and timeout reproducers are kept in ARTIFACT_DIR (in the build tree) for triage.
#
# Usage: cmake/fuzz-smoke.sh FUZZER SEED_CORPUS_DIR ARTIFACT_DIR SECONDS
set -euo pipefail

fuzzer=$1 seeds=$2 artifacts=$3 seconds=$4

work=$(mktemp -d "${TMPDIR:-/tmp}/aegis-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
if [[ -d $seeds ]]; then
    cp -R "$seeds/." "$work/"
else
    echo "fuzz-smoke: no seed corpus at $seeds; starting from an empty corpus" >&2
fi
mkdir -p "$artifacts"

# -timeout bounds one input, so a hang fails the run instead of outliving the time budget.
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$work"
