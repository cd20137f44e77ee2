#!/usr/bin/env bash
# Portico benchmark harness: Portico's overhead side by side with the floor (nginx proxy_pass)
# and with no hop at all (straight to the mock). Method and results: docs/performance.md.
#
#   bench/run.sh            full run: 3 repeats, about 20 minutes
#   bench/run.sh --quick    smoke test (what CI runs): short runs, one repeat, about 2 minutes
#   bench/run.sh --soak     10 minutes at 2,000 rps through Portico; exit 1 if its RSS grows
#
# The system under test (nginx or Portico) runs on core 0; the mock upstream and the load
# generators share core 1. Every load loop is bounded in time or count and targets 127.0.0.1
# only. Results: bench/results/latest.md (+ latest.json and raw/), ignored by git.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
TOOLS=$BENCH/.tools
RESULTS=$BENCH/results

usage() {
  cat <<'EOF'
usage: bench/run.sh [--quick] [--repeat N] [--duration S] [--soak] [--with-portkey] [--with-litellm]
                    [--with-fallback] [--with-limits] [--with-cache] [--with-full]
                    [--with-scale-out] [--concurrency N] [--no-extras]
                    [--rates "R1 R2"]
                    [--latencies "L1 L2"] [--baseline BIN] [--no-wait]

  --quick          short runs (2 s), one repeat, no wait for an idle machine: the CI smoke test
  --repeat N       repeats of the whole matrix (default 3); cells show median (min-max)
  --duration S     seconds per saturation and per fixed-rate run (default 10; quick 2);
                   with --soak: the soak's length (default 600)
  --soak           only the soak: Portico, non-streaming, fixed rate, RSS sampled every 5 s;
                   exits 1 when RSS grows by more than 10 MB or 20% (first vs last minute)
  --with-portkey   also measure the Portkey gateway (npm @portkey-ai/gateway), best effort
  --with-litellm   also measure the LiteLLM proxy (pip litellm[proxy], 1 worker), best effort
  --with-fallback  also measure Portico through a fallback config whose first target answers
                   404 at once: the added latency of one fallback hop
  --with-limits    also measure Portico with a budget (cost and tokens) and a rate limit
                   (requests and tokens per minute) on the key, all far above what the run
                   sends: the cost of enforcing them (docs/budgets.md)
  --with-cache     also measure Portico with a simple response cache on the key's config:
                   every measured request after the first is a hit, answered from memory
                   (the latency a hit adds against a direct answer from the mock; docs/cache.md)
  --with-full      also measure Portico with everything a production key carries at once
                   ("portico-full"): a routing config (fallback over two targets, retries on
                   429 and 5xx, a request timeout), a budget (cost and tokens) and a rate
                   limit (requests and tokens) on the key; the first target answers, so no
                   fallback or retry happens: the cost of carrying the policies
  --with-scale-out also measure Portico on PostgreSQL + Redis (docs/deployment.md): plain
                   ("portico-pg": the catalog and request log in PostgreSQL) and with the
                   key's budget and rate limit checked in Redis ("portico-pg-limits": one
                   Redis round trip per request); both servers from Debian's packages, pinned
                   to the load generator's core like the mock
  --baseline BIN   also measure another Portico binary (an older build: before/after in the
                   same run, where only ratios hold), plain config, as "portico-baseline"
  --concurrency N  connections of the saturation runs (default 64)
  --rates "R ..."  open-loop rates in requests/s (default "1000 5000")
  --latencies "L ..."  mock latencies in ms (default "0 20")
  --no-wait        do not wait for other engineers' rustc processes to finish first
  --no-extras      skip the scenarios after the matrix: overload (nginx and Portico offered
                   twice Portico's measured saturation on 1,024 connections, Portico with an
                   admission limit of 256 in flight) and cold start (10 new processes on
                   empty data dirs, to their first answered chat completion)
EOF
}

QUICK=0 REPEAT="" DURATION="" SOAK=0 WITH_PORTKEY=0 WITH_LITELLM=0 WITH_FALLBACK=0 WITH_LIMITS=0
WITH_CACHE=0 WITH_FULL=0 WITH_SCALE_OUT=0 EXTRAS=1
NO_WAIT=0 BASELINE=""
CONC=64 RATES="1000 5000" LATENCIES="0 20"
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) QUICK=1 ;;
    --repeat) REPEAT=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --soak) SOAK=1 ;;
    --with-portkey) WITH_PORTKEY=1 ;;
    --with-litellm) WITH_LITELLM=1 ;;
    --with-fallback) WITH_FALLBACK=1 ;;
    --with-limits) WITH_LIMITS=1 ;;
    --with-cache) WITH_CACHE=1 ;;
    --with-full) WITH_FULL=1 ;;
    --with-scale-out) WITH_SCALE_OUT=1 ;;
    --baseline) BASELINE=$2; shift ;;
    --concurrency) CONC=$2; shift ;;
    --rates) RATES=$2; shift ;;
    --latencies) LATENCIES=$2; shift ;;
    --no-wait) NO_WAIT=1 ;;
    --no-extras) EXTRAS=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench/run.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

if [[ -n $BASELINE && ! -x $BASELINE ]]; then
  echo "bench/run.sh: --baseline $BASELINE is not an executable file" >&2; exit 2
fi
if [[ $QUICK == 1 ]]; then
  REPEAT=${REPEAT:-1} RUN_SECS=${DURATION:-2} WARM_SECS=0 TTFB_REQUESTS=300 NO_WAIT=1
else
  REPEAT=${REPEAT:-3} RUN_SECS=${DURATION:-10} WARM_SECS=2 TTFB_REQUESTS=2000
fi
SOAK_SECS=${DURATION:-600} SOAK_RATE=2000 SOAK_MAX_GROWTH_MB=10 SOAK_MAX_GROWTH_PCT=20
TTFB_CONC=8        # streams in flight while measuring TTFB (low: we want the hop, not a queue)
RATE_CONC=256      # connections available to the open-loop runs (5,000 rps x 20 ms needs 100)
CHUNKS=16          # content chunks per streamed answer (plus a usage chunk and [DONE])
SERVICE_KEY=prt-bench-service-key-0123456789
ADMIN_KEY=prt-bench-admin-key-0123456789
MODEL="@bench/gpt-4o-mini"
OVERLOAD_CONC=1024   # connections offering the overload: more than Portico admits at once
OVERLOAD_LIMIT=256   # Portico's --max-in-flight in the overload scenario
COLDSTART_RUNS=10
PORTICO_EXTRA_ENV=() # more environment for the Portico under test (the overload's limit)

log() { printf '== %s %s\n' "$(date +%T)" "$*" >&2; }
warn() { printf 'bench: warning: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------- processes

PIDS=()
WORK=$(mktemp -d "${TMPDIR:-/tmp}/portico-bench.XXXXXX")
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Stops one process we started (by pid) and forgets it.
stop() {
  local pid=$1 keep=() p
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
  PIDS=("${keep[@]+"${keep[@]}"}")
}

# CPU pinning: the system under test on core 0, mock and load generators on core 1.
if [[ $(nproc) -ge 2 ]] && command -v taskset >/dev/null; then
  SUT_CPU=(taskset -c 0) LOAD_CPU=(taskset -c 1)
else
  warn "fewer than 2 cores or no taskset: running unpinned, numbers are not comparable"
  SUT_CPU=() LOAD_CPU=()
fi

# A port nobody listens on, below the kernel's ephemeral range so that no client connection
# of a previous scenario (256 per open-loop run) still holds it.
EPHEMERAL_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
  local port
  for _ in $(seq 200); do
    port=$((10000 + RANDOM % (EPHEMERAL_LOW - 10000)))
    if ! ss -Htln 2>/dev/null | awk '{print $4}' | grep -q ":$port\$"; then
      echo "$port"; return
    fi
  done
  die "no free port found"
}

# Waits (at most SECS, default 20) until URL answers 2xx, or the process PID has died.
wait_http() {
  local url=$1 pid=$2 name=$3 log=${4:-} secs=${5:-20}
  for _ in $(seq $((secs * 20))); do
    if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      [[ -n $log && -f $log ]] && tail -20 "$log" >&2
      warn "$name exited during start-up"
      return 1
    fi
    sleep 0.05
  done
  [[ -n $log && -f $log ]] && tail -20 "$log" >&2
  warn "$name did not answer $url within $secs s"
  return 1
}

# ---------------------------------------------------------------------------- install & build

install_tools() {
  if ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
    log "installing nginx-light"
    local sudo=()
    [[ $(id -u) -ne 0 ]] && sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get install -y nginx-light >/dev/null ||
      { "${sudo[@]}" apt-get update >/dev/null && "${sudo[@]}" apt-get install -y nginx-light >/dev/null; } ||
      die "cannot install nginx-light"
  fi
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
  OHA=$TOOLS/bin/oha
  if [[ ! -x $OHA ]]; then
    log "installing oha into bench/.tools (one time, a few minutes)"
    cargo install --locked oha --root "$TOOLS" --quiet || die "cannot install oha"
  fi
}

build() {
  log "cargo build --release -p portico -p portico-bench"
  (cd "$ROOT" && cargo build --release -p portico -p portico-bench --quiet)
  local target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
  PORTICO=$target_dir/release/portico
  PB=$target_dir/release/portico-bench
}

# Other engineers compile on this machine; numbers taken meanwhile are noise. Wait until no
# rustc has run for 60 s (at most 20 minutes, then go on and say so in the results).
NOISE_NOTES=()
wait_quiet() {
  [[ $NO_WAIT == 1 ]] && return 0
  local quiet=0 waited=0
  while (( quiet < 60 )); do
    if (( waited >= 1200 )); then
      NOISE_NOTES+=("rustc was still running after 20 minutes of waiting; the run started anyway")
      warn "${NOISE_NOTES[-1]}"
      return 0
    fi
    if pgrep -x rustc >/dev/null; then quiet=0; else quiet=$((quiet + 5)); fi
    (( waited % 60 == 0 && quiet == 0 )) && log "waiting for rustc processes to finish (${waited}s)"
    sleep 5; waited=$((waited + 5))
  done
}

# Called between scenarios: notes when someone else's compiler ran during the measurement.
note_noise() {
  if pgrep -x rustc >/dev/null; then
    NOISE_NOTES+=("rustc was running at the end of: $1")
    warn "rustc running during $1: its numbers are noisy"
  fi
}

# ---------------------------------------------------------------------------- targets

# Request bodies (the same for every target; peers get their own model name).
write_bodies() {
  local model=$1 dir=$2
  mkdir -p "$dir"
  printf '{"model":"%s","messages":[{"role":"user","content":"Say hello."}],"max_tokens":32}' \
    "$model" >"$dir/nonstream.json"
  printf '{"model":"%s","messages":[{"role":"user","content":"Say hello."}],"max_tokens":32,"stream":true,"stream_options":{"include_usage":true}}' \
    "$model" >"$dir/stream.json"
}

start_mock() {
  local lat=$1
  MOCK_PORT=$(free_port)
  "${LOAD_CPU[@]}" "$PB" mock --listen "127.0.0.1:$MOCK_PORT" --latency-ms "$lat" \
    --chunks "$CHUNKS" 2>"$WORK/mock.log" &
  MOCK_PID=$!
  PIDS+=("$MOCK_PID")
  wait_http "http://127.0.0.1:$MOCK_PORT/healthz" "$MOCK_PID" mock "$WORK/mock.log" ||
    die "the mock upstream did not start"
}

start_nginx() {
  local port=$1 dir=$WORK/nginx
  rm -rf "$dir"; mkdir -p "$dir"
  # One process (master_process off) so that pinning and VmHWM cover all of nginx; access
  # log on (Portico logs every request too); keep-alive upstream connections; no buffering so
  # streams pass through event by event.
  cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log $dir/access.log;
  client_body_temp_path $dir/client_body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  keepalive_requests 1000000;
  upstream mock {
    server 127.0.0.1:$MOCK_PORT;
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$port backlog=4096;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
EOF
  "${SUT_CPU[@]}" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" 2>"$dir/stderr.log" &
  SUT_PID=$!
  PIDS+=("$SUT_PID")
  wait_http "http://127.0.0.1:$port/healthz" "$SUT_PID" nginx "$dir/stderr.log" ||
    die "nginx did not start"
}

# PostgreSQL (scripts/services.sh, a Unix socket) and a redis-server of the run's own, both on
# the load generator's core; a fresh database for each start. Sets SCALE_ENV.
start_scale_out_stores() {
  local db="bench_$RANDOM$RANDOM" pgurl
  if [[ -z ${PG_ADMIN_URL:-} ]]; then
    # 9>&-: the server outlives this run, and must not inherit (and keep) the bench's lock.
    pgurl=$("$ROOT/scripts/services.sh" start 9>&-) || die "cannot start PostgreSQL (apt-get install postgresql)"
    PG_ADMIN_URL=$(sed -E "s/^export PORTICO_TEST_POSTGRES_URL='(.*)'$/\1/" <<<"$pgurl")
    # The server was started by services.sh: move it to the load generator's core.
    if [[ ${#LOAD_CPU[@]} -gt 0 ]]; then
      for pid in $(pgrep -u postgres || true); do taskset -acp 1 "$pid" >/dev/null 2>&1 || true; done
    fi
  fi
  psql -q "$PG_ADMIN_URL" -c "CREATE DATABASE $db" >/dev/null || die "cannot create database $db"
  SCALE_DB_URL=${PG_ADMIN_URL/\/postgres\?/\/$db?}
  if [[ -z ${REDIS_PID:-} ]] || ! kill -0 "$REDIS_PID" 2>/dev/null; then
    command -v redis-server >/dev/null || die "redis-server is missing (apt-get install redis-server)"
    "${LOAD_CPU[@]}" redis-server --port 0 --unixsocket "$WORK/redis.sock" --unixsocketperm 700 \
      --save "" --appendonly no --dir "$WORK" --loglevel warning >"$WORK/redis.log" 2>&1 9>&- &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    for _ in $(seq 100); do [[ -S $WORK/redis.sock ]] && break; sleep 0.05; done
  fi
  redis-cli -s "$WORK/redis.sock" flushall >/dev/null
  SCALE_ENV=(PORTICO_DATABASE_URL="$SCALE_DB_URL" PORTICO_REDIS_URL="redis+unix://$WORK/redis.sock"
    PORTICO_MASTER_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=)
}

# Portico with the bench key; VARIANT: plain, fallback (a one-hop fallback config), limits
# (a budget and a rate limit on the key that the run never reaches), cache (a simple
# response cache on the key's config: every request after the first of its body is a hit),
# full (a fallback + retry + timeout config, a budget and a rate limit, none of them acting),
# pg or pg-limits (plain or limits on PostgreSQL + Redis).
start_portico() {
  local port=$1 variant=${2:-plain} dir=$WORK/portico models="" bin=$PORTICO
  local -a scale_env=()
  # The baseline: another build, the plain config.
  [[ $variant == baseline ]] && { bin=$BASELINE; variant=plain; }
  # On PostgreSQL + Redis: the plain config, or the limits one.
  if [[ $variant == pg || $variant == pg-limits ]]; then
    start_scale_out_stores
    scale_env=("${SCALE_ENV[@]}")
    if [[ $variant == pg ]]; then variant=plain; else variant=limits; fi
  fi
  # With limits, a price for the model: the budget's cost is estimated and charged too.
  [[ $variant == limits || $variant == full ]] && models=$'
    models:
      - id: gpt-4o-mini
        pricing: { input_per_mtok: 0.15, output_per_mtok: 0.6 }'
  # The key's budget and rate limit of the limits and full variants, far above what a run sends.
  local key_limits='    budget: { cost_usd: 1000000000, tokens: 1000000000000000, period: month }
    rate_limit: { requests_per_minute: 1000000000, tokens_per_minute: 1000000000000 }'
  rm -rf "$dir"; mkdir -p "$dir/data"
  cat >"$dir/portico.yaml" <<EOF
auto_providers: false
providers:
  - slug: bench
    kind: openai-compatible
    base_url: http://127.0.0.1:$MOCK_PORT/v1$models
  # The same mock under a path it does not serve: every request to it is a quick 404, which
  # a fallback moves past and the circuit breaker does not count (a 4xx proves it alive).
  - slug: missing
    kind: openai-compatible
    base_url: http://127.0.0.1:$MOCK_PORT/missing/v1
EOF
  if [[ $variant == limits ]]; then
    cat >>"$dir/portico.yaml" <<EOF
keys:
  - name: bench
    key: $SERVICE_KEY
$key_limits
EOF
  elif [[ $variant == full ]]; then
    cat >>"$dir/portico.yaml" <<EOF
configs:
  - id: production
    config:
      strategy: { mode: fallback }
      retry: { attempts: 2, on_status_codes: [429, 500, 502, 503, 504] }
      request_timeout: 30000
      targets: [ { provider: "@bench" }, { provider: "@missing" } ]
keys:
  - name: bench
    key: $SERVICE_KEY
    config: production
$key_limits
EOF
  elif [[ $variant == cache ]]; then
    cat >>"$dir/portico.yaml" <<EOF
configs:
  - id: cached
    config: { cache: { mode: simple, max_age: 3600 } }
keys:
  - name: bench
    key: $SERVICE_KEY
    config: cached
EOF
  elif [[ $variant == fallback ]]; then
    cat >>"$dir/portico.yaml" <<EOF
configs:
  - id: one-hop
    config:
      strategy: { mode: fallback }
      targets: [ { provider: "@missing" }, { provider: "@bench" } ]
keys:
  - name: bench
    key: $SERVICE_KEY
    config: one-hop
EOF
  else
    cat >>"$dir/portico.yaml" <<EOF
keys:
  - name: bench
    key: $SERVICE_KEY
EOF
  fi
  # Default log level (info): request logging stays on, as in production. stderr to a file.
  env -u RUST_LOG PORTICO_ADMIN_KEY=$ADMIN_KEY "${scale_env[@]}" "${PORTICO_EXTRA_ENV[@]}" \
    "${SUT_CPU[@]}" "$bin" serve --config "$dir/portico.yaml" \
    --listen "127.0.0.1:$port" --data-dir "$dir/data" >"$dir/stdout.log" 2>"$dir/stderr.log" &
  SUT_PID=$!
  PIDS+=("$SUT_PID")
  wait_http "http://127.0.0.1:$port/healthz" "$SUT_PID" portico "$dir/stderr.log" ||
    die "Portico did not start"
}

# Sets URL, HEADERS (array) and BODY_DIR for a target, starting its process (SUT_PID) when it
# has one. The mock must be running.
start_target() {
  local target=$1 port
  SUT_PID=""
  HEADERS=(-H "Content-Type: application/json")
  BODY_DIR=$WORK/bodies/portico
  case $target in
    direct)
      URL="http://127.0.0.1:$MOCK_PORT/v1/chat/completions"
      HEADERS+=(-H "Authorization: Bearer $SERVICE_KEY") ;;
    nginx)
      port=$(free_port); start_nginx "$port"
      URL="http://127.0.0.1:$port/v1/chat/completions"
      HEADERS+=(-H "Authorization: Bearer $SERVICE_KEY") ;;
    portico|portico-fallback|portico-limits|portico-cache|portico-full|portico-baseline|portico-pg|portico-pg-limits)
      port=$(free_port)
      start_portico "$port" "$(case $target in portico-fallback) echo fallback ;; portico-limits) echo limits ;; portico-cache) echo cache ;; portico-full) echo full ;; portico-baseline) echo baseline ;; portico-pg) echo pg ;; portico-pg-limits) echo pg-limits ;; *) echo plain ;; esac)"
      URL="http://127.0.0.1:$port/v1/chat/completions"
      HEADERS+=(-H "Authorization: Bearer $SERVICE_KEY") ;;
    portkey|litellm)
      port=$(free_port); "start_$target" "$port" || return 1 ;;
    *) die "unknown target $target" ;;
  esac
}

# shellcheck source=bench/peers.sh
source "$BENCH/peers.sh"

# ---------------------------------------------------------------------------- measurements

oha_run() { # out_file, then oha arguments
  local out=$1; shift
  "${LOAD_CPU[@]}" "$OHA" --no-tui --worker-threads 1 --output-format json -o "$out" \
    -m POST "${HEADERS[@]}" "$@" "$URL" >/dev/null 2>"$out.stderr" ||
    warn "oha failed ($(tail -1 "$out.stderr"))"
  [[ -s $out.stderr ]] || rm -f "$out.stderr"
}

# One target in one (latency, mode) scenario: saturation, fixed rates, streams, peak RSS.
# Waits (at most 120 s) until a Portico under test has no request-log spill file left to
# replay, so that the backlog a saturation run leaves (records logged faster than SQLite
# takes them) is not replayed during the next measurement; the wait is written to
# $1/log-drain.txt. A no-op for targets other than Portico.
wait_log_drained() {
  local out=$1 waited=0
  compgen -G "$WORK/portico/data/logs-spill*" >/dev/null || return 0
  while compgen -G "$WORK/portico/data/logs-spill*" >/dev/null && (( waited < 120 )); do
    sleep 1; waited=$((waited + 1))
  done
  echo "$waited" >"$out/log-drain.txt"
  log "  waited ${waited}s for the request log's spill to be replayed"
}

measure() {
  local out=$1 mode=$2 body
  body=$BODY_DIR/$mode.json
  mkdir -p "$out"
  if [[ $WARM_SECS != 0 ]]; then
    oha_run "$WORK/warmup.json" -z "${WARM_SECS}s" -c "$CONC" -D "$body"
  fi
  oha_run "$out/saturation.json" -z "${RUN_SECS}s" -w -c "$CONC" -D "$body"
  wait_log_drained "$out"
  local rate
  for rate in $RATES; do
    oha_run "$out/rate-$rate.json" -z "${RUN_SECS}s" -w -c "$RATE_CONC" -q "$rate" \
      --latency-correction -D "$body"
    wait_log_drained "$out"
  done
  if [[ $mode == stream ]]; then
    "${LOAD_CPU[@]}" "$PB" ttfb --url "$URL" "${HEADERS[@]}" --body "$body" \
      --requests "$TTFB_REQUESTS" --concurrency "$TTFB_CONC" --warmup "$TTFB_CONC" \
      --timeout-s 30 >"$out/ttfb.json" || warn "ttfb failed for $out"
  fi
  local pid=${SUT_PID:-$MOCK_PID}
  "$PB" rss --pid "$pid" >"$out/mem.json" || warn "cannot read the memory of pid $pid"
}

matrix() {
  local targets="direct nginx portico" rep lat mode target
  [[ $WITH_PORTKEY == 1 ]] && prepare_portkey && targets+=" portkey"
  [[ $WITH_LITELLM == 1 ]] && prepare_litellm && targets+=" litellm"
  [[ $WITH_FALLBACK == 1 ]] && targets+=" portico-fallback"
  [[ $WITH_LIMITS == 1 ]] && targets+=" portico-limits"
  [[ $WITH_CACHE == 1 ]] && targets+=" portico-cache"
  [[ $WITH_FULL == 1 ]] && targets+=" portico-full"
  [[ $WITH_SCALE_OUT == 1 ]] && targets+=" portico-pg portico-pg-limits"
  [[ -n $BASELINE ]] && targets+=" portico-baseline"
  write_bodies "$MODEL" "$WORK/bodies/portico"
  RAW=$RESULTS/raw
  rm -rf "$RAW"; mkdir -p "$RAW"
  wait_quiet
  local started=$SECONDS
  for rep in $(seq "$REPEAT"); do
    for lat in $LATENCIES; do
      for mode in nonstream stream; do
        for target in $targets; do
          log "repeat $rep/$REPEAT: mock ${lat} ms, $mode, $target"
          start_mock "$lat"
          if ! start_target "$target"; then
            # Only peers get here (the others die): note it, drop the peer, go on.
            peer_note "$target failed to start (repeat $rep, mock $lat ms, $mode); dropped from the run"
            [[ -n $SUT_PID ]] && stop "$SUT_PID"
            stop "$MOCK_PID"
            targets=${targets/ $target/}
            continue
          fi
          measure "$RAW/r$rep/lat$lat/$mode/$target" "$mode"
          [[ -n $SUT_PID ]] && stop "$SUT_PID"
          stop "$MOCK_PID"
          note_noise "repeat $rep, mock $lat ms, $mode, $target"
        done
      done
    done
  done
  ELAPSED=$((SECONDS - started))
}

# Overload: nginx and Portico offered twice Portico's saturation rate of this run (mock at
# once, non-streaming), open loop on OVERLOAD_CONC connections, Portico with an admission
# limit below that. What counts: no failure but the limit's fast 503s, a bounded p99 for the
# requests admitted, bounded memory. Raw files: RAW/overload/<target>/.
overload() {
  local sat target out
  sat=$(cat "$RAW"/r*/lat0/nonstream/portico/saturation.json 2>/dev/null |
    grep -o '"requestsPerSec": *[0-9.]*' | tr -dc '0-9.\n' | sort -n | tail -1)
  if [[ -z $sat ]]; then
    warn "no saturation figure for Portico with the mock at 0 ms: overload skipped"
    return 0
  fi
  local rate
  rate=$(awk -v s="$sat" 'BEGIN { printf "%d", 2 * s }')
  for target in nginx portico; do
    log "overload: $target, $rate rps offered on $OVERLOAD_CONC connections"
    out=$RAW/overload/$target
    mkdir -p "$out"
    echo "$rate" >"$out/offered-rps.txt"
    start_mock 0
    PORTICO_EXTRA_ENV=(PORTICO_MAX_IN_FLIGHT=$OVERLOAD_LIMIT)
    start_target "$target"
    PORTICO_EXTRA_ENV=()
    # No latency correction here: offered more than it serves, the load generator's own
    # backlog would grow for the whole run and every corrected latency with it. Uncorrected,
    # a latency is from the request's send to its answer: the wait inside the gateway.
    oha_run "$out/oha.json" -z "${RUN_SECS}s" -w -c "$OVERLOAD_CONC" -q "$rate" \
      --stats-success-breakdown -D "$BODY_DIR/nonstream.json"
    "$PB" rss --pid "$SUT_PID" >"$out/mem.json" || warn "cannot read the memory of $target"
    stop "$SUT_PID"
    stop "$MOCK_PID"
    note_noise "overload, $target"
  done
}

# Cold start: a new Portico on an empty data dir, timed from its start to its first answered
# chat completion (the catalog file of the plain scenario, the mock at once), COLDSTART_RUNS
# times; also the baseline build's when there is one. Raw files: RAW/coldstart/<target>.json.
coldstart() {
  local target bin
  mkdir -p "$RAW/coldstart"
  start_mock 0
  # Writes the plain catalog to $WORK/portico/portico.yaml; the process itself is not used.
  start_target portico
  stop "$SUT_PID"
  cp "$WORK/portico/portico.yaml" "$WORK/coldstart.yaml"
  for target in portico $([[ -n $BASELINE ]] && echo portico-baseline); do
    bin=$PORTICO; [[ $target == portico-baseline ]] && bin=$BASELINE
    log "cold start: $target, $COLDSTART_RUNS runs"
    # Written under its final name only when complete: the report reads every file there.
    if "$PB" coldstart --runs "$COLDSTART_RUNS" --work-dir "$WORK" --path /v1/chat/completions \
      --header "Authorization: Bearer $SERVICE_KEY" --header "Content-Type: application/json" \
      --body "$(cat "$BODY_DIR/nonstream.json")" -- \
      env -u RUST_LOG PORTICO_ADMIN_KEY=$ADMIN_KEY "${SUT_CPU[@]}" "$bin" serve \
      --config "$WORK/coldstart.yaml" --listen '127.0.0.1:{port}' --data-dir '{dir}/data' \
      >"$WORK/coldstart.json"; then
      mv "$WORK/coldstart.json" "$RAW/coldstart/$target.json"
    else
      warn "cold start of $target failed"
    fi
  done
  stop "$MOCK_PID"
}

soak() {
  local dir=$RESULTS/soak
  rm -rf "$dir"; mkdir -p "$dir"
  write_bodies "$MODEL" "$WORK/bodies/portico"
  wait_quiet
  start_mock 0
  start_target portico
  log "soak: ${SOAK_SECS}s at $SOAK_RATE rps through Portico (pid $SUT_PID), RSS every 5 s"
  oha_run "$WORK/warmup.json" -z 10s -c "$RATE_CONC" -q "$SOAK_RATE" -D "$BODY_DIR/nonstream.json"
  oha_run "$dir/oha.json" -z "${SOAK_SECS}s" -w -c "$RATE_CONC" -q "$SOAK_RATE" \
    --latency-correction -D "$BODY_DIR/nonstream.json" &
  local oha_pid=$! verdict=0
  PIDS+=("$oha_pid")
  "$PB" rss --pid "$SUT_PID" --interval-ms 5000 --duration-s "$SOAK_SECS" \
    --max-growth-mb "$SOAK_MAX_GROWTH_MB" --max-growth-pct "$SOAK_MAX_GROWTH_PCT" \
    >"$dir/rss.json" || verdict=$?
  wait "$oha_pid" || true
  note_noise "the soak"
  cat "$dir/rss.json"
  # oha's summary: the soak only counts when the requests succeeded.
  local success rps
  success=$(grep -m1 '"successRate"' "$dir/oha.json" 2>/dev/null | tr -dc '0-9.' || true)
  rps=$(grep -m1 '"requestsPerSec"' "$dir/oha.json" 2>/dev/null | tr -dc '0-9.' || true)
  echo "bench: soak load: ${rps:-?} rps, success rate ${success:-?} (oha JSON: $dir/oha.json)" >&2
  if [[ -z $success ]] || ! awk -v s="$success" 'BEGIN { exit !(s >= 0.99) }'; then
    echo "bench: SOAK FAILED: fewer than 99% of the soak's requests succeeded" >&2
    exit 1
  fi
  if [[ $verdict == 1 ]]; then
    echo "bench: SOAK FAILED: Portico's RSS grew by more than $SOAK_MAX_GROWTH_MB MB or $SOAK_MAX_GROWTH_PCT% (first vs last minute); see $dir/rss.json" >&2
    exit 1
  elif [[ $verdict != 0 ]]; then
    die "the RSS sampler failed"
  fi
  echo "bench: soak passed: RSS flat within $SOAK_MAX_GROWTH_MB MB / $SOAK_MAX_GROWTH_PCT%; see $dir/rss.json" >&2
}

# ---------------------------------------------------------------------------- main

mkdir -p "$RESULTS"
install_tools
build
# One measurement at a time on this machine: two runs would share the cores (and, from the
# same tree, bench/results/). The lock is machine-wide; wait for the other run to end.
if command -v flock >/dev/null; then
  exec 9>"${TMPDIR:-/tmp}/portico-bench.lock"
  if ! flock -n 9; then
    log "another bench/run.sh is measuring on this machine; waiting for it (at most 40 minutes)"
    flock -w 2400 9 || die "another bench/run.sh held the lock for 40 minutes"
  fi
fi
if [[ $SOAK == 1 ]]; then
  soak
  exit 0
fi
matrix
if [[ $EXTRAS == 1 ]]; then
  overload
  coldstart
fi

# BENCH_COMMIT names the commit when the tree is an export without .git (git archive).
commit=${BENCH_COMMIT:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)}
dirty=$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)
{
  echo "### Run of $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit$dirty"
  echo
  echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/{print $2}') GiB;" \
    "system under test on core 0, mock + load generators on core 1." \
    "$REPEAT repeat(s); ${RUN_SECS} s per saturation run (c=$CONC) and per fixed rate ($RATES rps, oha --latency-correction);" \
    "$TTFB_REQUESTS streams per TTFB run at $TTFB_CONC in flight; streams have $CHUNKS chunks. Took $((ELAPSED / 60)) min."
  echo "nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), $("$OHA" --version 2>/dev/null | head -1)."
  echo
  if [[ ${#NOISE_NOTES[@]} -gt 0 ]]; then
    echo "**Noise:** other engineers' compilers ran during this run:"
    printf -- '- %s\n' "${NOISE_NOTES[@]}"
    echo
  fi
  if [[ -n ${PEER_NOTES:-} ]]; then printf 'Peers:\n%s\n' "$PEER_NOTES"; fi
} >"$WORK/preamble.md"
"$PB" report --raw "$RAW" --markdown "$RESULTS/latest.md" --json "$RESULTS/latest.json" \
  --preamble "$WORK/preamble.md" --concurrency "$CONC" --fail-on-errors-of \
  "direct,nginx,portico$([[ $WITH_LIMITS == 1 ]] && echo ,portico-limits)$([[ $WITH_CACHE == 1 ]] && echo ,portico-cache)$([[ $WITH_FULL == 1 ]] && echo ,portico-full)" ||
  die "requests to direct, nginx or Portico failed (listed above); the numbers are written anyway"
echo >&2
log "written: bench/results/latest.md, bench/results/latest.json, raw files in bench/results/raw/"
