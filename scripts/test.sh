#!/usr/bin/env bash
# Runs Portico's whole test suite: unit, integration and end-to-end tests (the real binary
# against mock upstreams, driven by reqwest, the OpenAI and Anthropic Python SDKs and Portkey's
# Python and Node SDKs).
#
# Usage: scripts/test.sh [extra arguments for cargo nextest / cargo test]
set -euo pipefail
cd "$(dirname "$0")/.."

# The Python SDKs the end-to-end tests use, in a virtualenv under target/ (re-installed only
# when tests/python/requirements.txt changes).
venv="$PWD/target/py-venv"
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! cmp -s tests/python/requirements.txt "$stamp"; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt
  cp tests/python/requirements.txt "$stamp"
fi
export PORTICO_TEST_PYTHON="$venv/bin/python"

# Portkey's Node SDK for its end-to-end test, into tests/node/node_modules from the lock file
# (npm ci again only when tests/node/package-lock.json changes).
node_stamp=tests/node/node_modules/.portico-lock
if ! cmp -s tests/node/package-lock.json "$node_stamp"; then
  (cd tests/node && npm ci --silent --no-audit --no-fund)
  cp tests/node/package-lock.json "$node_stamp"
fi

# The dashboard's browser tests need Debian's chromium and chromium-driver; without them they
# pass after printing SKIPPED, which nextest hides, so say it here (.ci/run installs them and
# sets PORTICO_REQUIRE_BROWSER=1, which makes a missing browser a failure instead).
if [ ! -x "${PORTICO_CHROMIUM:-/usr/bin/chromium}" ] || [ ! -x "${PORTICO_CHROMEDRIVER:-/usr/bin/chromedriver}" ]; then
  echo "!!! chromium or chromedriver is missing: the dashboard browser tests will be SKIPPED" >&2
  echo "!!! (install them with: apt-get install -y chromium chromium-driver)" >&2
fi

# PostgreSQL for the scale-out tests, one server for the whole run (scripts/services.sh);
# each Redis test starts its own redis-server. Both from Debian's packages.
if [ -z "${PORTICO_TEST_POSTGRES_URL:-}" ]; then
  eval "$(scripts/services.sh start)"
  trap 'scripts/services.sh stop' EXIT
fi
if ! command -v redis-server >/dev/null 2>&1; then
  echo "!!! redis-server is missing: the Redis tests will FAIL (apt-get install -y redis-server)" >&2
fi

# Every gateway the tests spawn copies its stdout and stderr here (crates/portico-testkit's
# process runner); scripts/grep-secrets.sh checks them for provider test secrets at the end.
export PORTICO_TEST_OUTPUT_DIR="$PWD/target/test-output"
rm -rf "$PORTICO_TEST_OUTPUT_DIR"
mkdir -p "$PORTICO_TEST_OUTPUT_DIR"

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
cargo test --workspace --doc

# No provider secret in anything the suite's gateways printed (docs/security.md).
scripts/grep-secrets.sh "$PORTICO_TEST_OUTPUT_DIR"
