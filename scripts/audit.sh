#!/usr/bin/env bash
# Supply-chain checks, offline: `cargo deny check` (licences, advisories, bans, sources; the
# policy is deny.toml) and `cargo audit` (advisories; its ignores are in .cargo/audit.toml),
# both against the RustSec advisory database snapshot in .ci/advisory-db/ (see its README:
# what it is, its date, how to refresh it). Installs both tools from crates.io when missing.
#
# Usage: scripts/audit.sh        (from anywhere; exits non-zero on any finding)
set -euo pipefail
cd "$(dirname "$0")/.."

# One target dir for both installs: the two tools share most of their dependencies (rustsec,
# gix, tame-index, reqwest...), which are then compiled once instead of twice.
for tool in cargo-deny cargo-audit; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "== installing $tool (cargo install --locked)"
    start=$(date +%s)
    cargo install --locked --target-dir target/cargo-tools "$tool"
    echo "== $tool installed in $(( $(date +%s) - start )) s"
  fi
done

# Both tools read the database as a git repository (its HEAD gives the database's date), so
# the snapshot is unpacked into one, with a single commit dated like the snapshot. It is
# rebuilt whenever the snapshot changes.
snapshot=.ci/advisory-db/crates.tar.gz
read -r commit date < .ci/advisory-db/SNAPSHOT
db_root=target/advisory-db
# cargo-deny looks in db-path (deny.toml) for a directory named after the database's URL
# (cargo-deny 0.20's name for db-urls' one entry); cargo-audit is given the same one.
deny_db="$db_root/advisory-db-3157b0e258782691"
stamp="$db_root/.snapshot"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$commit" ]; then
  echo "== unpacking the advisory database snapshot ($commit, $date)"
  rm -rf "$db_root"
  mkdir -p "$deny_db"
  tar -xzf "$snapshot" -C "$deny_db"
  (
    cd "$deny_db"
    git init -q -b main
    git add -A
    GIT_AUTHOR_DATE="$date" GIT_COMMITTER_DATE="$date" \
      git -c user.name=portico -c user.email=portico@localhost \
      commit -q -m "RustSec advisory-db snapshot $commit"
  )
  echo "$commit" > "$stamp"
fi

# `--offline` keeps cargo-deny from fetching the database; the `cargo metadata` it runs then
# needs every crate of the lock file on disk, for every platform: `cargo fetch` gets them from
# crates.io.
echo "== cargo fetch (the crates of Cargo.lock, all platforms)"
cargo fetch --locked --quiet

echo "== cargo deny check (advisories, bans, licenses, sources)"
cargo deny --offline --locked check

echo "== cargo audit"
cargo audit --db "$deny_db" --no-fetch --stale --deny warnings
