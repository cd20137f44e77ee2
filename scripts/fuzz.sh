#!/usr/bin/env bash
# Builds every cargo-fuzz target of fuzz/ once and runs each for a while; fails when any
# target crashes (a panic, an overflow, a timeout or an allocation over the limits below).
# See docs/fuzzing.md.
#
# Usage: scripts/fuzz.sh [--seconds N] [--quick] [--grow] [--cmin] [TARGET...]
#
#   --seconds N  how long each target runs (default 15)
#   --quick      the short pass CI runs: an unoptimised build without AddressSanitizer
#                (cargo fuzz --dev --sanitizer none), which compiles in a fraction of the
#                time of the optimised ASan build; the code is safe Rust, so ASan adds little
#                but speed to a run this short. Long runs keep the default build
#   --grow       add the new inputs the run finds to the checked-in corpus, fuzz/corpus/<target>/
#                (a long run; minimise afterwards with --cmin)
#   --cmin       only minimise each target's checked-in corpus (cargo fuzz cmin), no fuzzing
#   TARGET...    only these targets (default: all, as `cargo fuzz list` prints them)
#
# The long run (docs/fuzzing.md): scripts/fuzz.sh --seconds 300 --grow && scripts/fuzz.sh --cmin
#
# Needs the nightly toolchain and cargo-fuzz (installed from crates.io when missing).
# Each target's libFuzzer log is kept in fuzz/target/logs/<target>.log, a crashing input in
# fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=15
grow=0
cmin=0
build=()
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --quick) build=(--dev --sanitizer none); shift ;;
    --grow) grow=1; shift ;;
    --cmin) cmin=1; shift ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz.sh: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

# The one build of every target (the dependencies are compiled once for all of them).
start=$(date +%s)
cargo +nightly fuzz build "${build[@]}"
echo "fuzz.sh: built ${#targets[@]} targets in $(( $(date +%s) - start )) s"

# The libFuzzer dictionary each target uses (fuzz/dict/).
dict_of() {
  case "$1" in
    sse|anthropic_response|gemini_response|messages_response|responses_response) echo sse ;;
    catalog) echo yaml ;;
    headers) echo headers ;;
    jwt) echo jwt ;;
    bedrock_eventstream) echo eventstream ;;
    *) echo json ;;
  esac
}

if [ "$cmin" = 1 ]; then
  for t in "${targets[@]}"; do
    cargo +nightly fuzz cmin "${build[@]}" "$t" "fuzz/corpus/$t" -- -rss_limit_mb=2048 -timeout=10
  done
  exit 0
fi

# Limits of every run: a single allocation over 512 MiB, a process over 2 GiB or an input
# that takes more than 10 s is a failure. Inputs up to 64 KiB (the OpenClaw fixtures are
# about 40 KiB).
limits=(-rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 -max_len=65536 -print_final_stats=1)

mkdir -p fuzz/target/logs
failed=()
printf '%-22s %12s %9s %7s %7s %7s %s\n' target executions exec/s cov ft corpus result
for t in "${targets[@]}"; do
  log="fuzz/target/logs/$t.log"
  if [ "$grow" = 1 ]; then
    dirs=("fuzz/corpus/$t")
  else
    # New inputs go to a scratch directory; the checked-in corpus is only read.
    scratch="fuzz/target/corpus-scratch/$t"
    rm -rf "$scratch" && mkdir -p "$scratch"
    dirs=("$scratch" "fuzz/corpus/$t")
  fi
  result=ok
  if ! cargo +nightly fuzz run "${build[@]}" "$t" "${dirs[@]}" -- \
      "${limits[@]}" -max_total_time="$seconds" -dict="fuzz/dict/$(dict_of "$t").dict" \
      >"$log" 2>&1; then
    result=CRASH
    failed+=("$t")
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  last=$(grep -E '#[0-9]+.*cov: [0-9]+' "$log" | tail -1 || true)
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)
  corp=$(grep -o 'corp: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)
  printf '%-22s %12s %9s %7s %7s %7s %s\n' "$t" "${execs:--}" "${rate:--}" "${cov:--}" "${ft:--}" "${corp:--}" "$result"
done
echo "fuzz.sh: done in $(( $(date +%s) - start )) s"

if [ ${#failed[@]} -gt 0 ]; then
  for t in "${failed[@]}"; do
    echo "--- $t crashed; the end of fuzz/target/logs/$t.log:" >&2
    tail -40 "fuzz/target/logs/$t.log" >&2
  done
  echo "fuzz.sh: FAILED: ${failed[*]} (crashing inputs in fuzz/artifacts/)" >&2
  exit 1
fi
