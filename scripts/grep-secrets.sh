#!/usr/bin/env bash
# Fails when a provider test secret appears in what the test suite's gateways printed.
#
# Every provider secret the end-to-end tests give a gateway contains the marker `ptsecret`
# (any case; crates/portico-testkit's TEST_SECRET_MARKER), and with PORTICO_TEST_OUTPUT_DIR set
# (scripts/test.sh sets it) the testkit copies each spawned gateway's stdout and stderr into
# that directory. A secret in there leaked: into a log line, an error, a panic message.
#
# Usage: scripts/grep-secrets.sh DIR...   (exit 1 listing file:line of each hit, 0 if none)
set -euo pipefail

marker=ptsecret
# Outputs that print a provider secret on purpose, as `grep --exclude` globs: none today
# (gateway keys printed once on creation carry no marker: they are not provider secrets).
excludes=()

if [ "$#" -eq 0 ]; then
  echo "usage: $0 DIR..." >&2
  exit 2
fi
for dir in "$@"; do
  if [ ! -d "$dir" ]; then
    echo "grep-secrets: $dir is not a directory (was PORTICO_TEST_OUTPUT_DIR set for the run?)" >&2
    exit 2
  fi
done
files=$(find "$@" -type f | wc -l)
if hits=$(grep -rniF --binary-files=text "${excludes[@]/#/--exclude=}" "$marker" "$@"); then
  echo "grep-secrets: a provider test secret (marker \`$marker\`) appears in the suite's output:" >&2
  echo "$hits" | cut -c1-300 >&2
  exit 1
fi
echo "grep-secrets: no provider test secret in $files output files"
