# Optional peers for bench/run.sh (--with-portkey, --with-litellm). Sourced, not run.
#
# Best effort: each peer is installed into bench/.tools on first use, started on core 0 like
# the other systems under test, and pointed at the same mock. When an install or start fails,
# the reason goes into PEER_NOTES (printed above the results) and the run goes on without it.

PEER_NOTES=${PEER_NOTES:-}
PEER_SERVICE_KEY=sk-bench-peer-0123456789   # the mock accepts anything
# LiteLLM refuses to start without a master key (and rejects weak ones); the client sends it.
LITELLM_MASTER_KEY_VALUE=sk-5f0c2a9e7b4d41c8a6e3f19d2b7c8e04a1d6f3b9c2e5a8d7f0b4c1e9a3d6f2b8

peer_note() {
  warn "$1"
  PEER_NOTES+="- ${1}"$'\n'
}

# Portkey gateway (node): npm @portkey-ai/gateway 1.15, routed with x-portkey-provider and
# x-portkey-custom-host to the mock (127.0.0.1 is on its trusted custom-host list).
PORTKEY_DIR=$TOOLS/portkey
prepare_portkey() {
  local entry=$PORTKEY_DIR/node_modules/@portkey-ai/gateway/build/start-server.js
  if [[ ! -f $entry ]]; then
    if ! command -v npm >/dev/null; then
      peer_note "Portkey skipped: npm is not installed (apt-get install -y nodejs npm)"
      return 1
    fi
    log "installing @portkey-ai/gateway into bench/.tools/portkey"
    mkdir -p "$PORTKEY_DIR"
    if ! (cd "$PORTKEY_DIR" && timeout 600 npm install --no-audit --no-fund --silent \
      '@portkey-ai/gateway@1.15' >/dev/null 2>"$PORTKEY_DIR/install.log"); then
      peer_note "Portkey skipped: npm install failed (see bench/.tools/portkey/install.log)"
      return 1
    fi
  fi
  PORTKEY_ENTRY=$entry
  PORTKEY_VERSION=$(node -p "require('$PORTKEY_DIR/node_modules/@portkey-ai/gateway/package.json').version" 2>/dev/null || echo '?')
  PEER_NOTES+="- Portkey gateway $PORTKEY_VERSION, node $(node --version), one process, NODE_ENV=production --headless."$'\n'
  write_bodies gpt-4o-mini "$WORK/bodies/peer"
}

start_portkey() {
  local port=$1 dir=$WORK/portkey
  mkdir -p "$dir"
  NODE_ENV=production "${SUT_CPU[@]}" node "$PORTKEY_ENTRY" "--port=$port" --headless \
    >"$dir/stdout.log" 2>"$dir/stderr.log" &
  SUT_PID=$!
  PIDS+=("$SUT_PID")
  wait_http "http://127.0.0.1:$port/" "$SUT_PID" portkey "$dir/stderr.log" 60 || return 1
  URL="http://127.0.0.1:$port/v1/chat/completions"
  BODY_DIR=$WORK/bodies/peer
  HEADERS+=(-H "Authorization: Bearer $PEER_SERVICE_KEY" -H "x-portkey-provider: openai"
    -H "x-portkey-custom-host: http://127.0.0.1:$MOCK_PORT/v1")
}

# LiteLLM proxy (python): pip litellm[proxy] in a venv, one worker, a model_list entry that
# points openai/gpt-4o-mini at the mock. A master key (it refuses to start without), no database.
LITELLM_VENV=$TOOLS/litellm-venv
prepare_litellm() {
  if [[ ! -x $LITELLM_VENV/bin/litellm ]]; then
    log "installing litellm[proxy] into bench/.tools/litellm-venv"
    if ! python3 -m venv "$LITELLM_VENV" 2>"$TOOLS/litellm-install.log"; then
      peer_note "LiteLLM skipped: python3 -m venv failed (apt-get install -y python3-venv?)"
      return 1
    fi
    if ! timeout 900 "$LITELLM_VENV/bin/pip" install --quiet 'litellm[proxy]' \
      >>"$TOOLS/litellm-install.log" 2>&1; then
      peer_note "LiteLLM skipped: pip install 'litellm[proxy]' failed (see bench/.tools/litellm-install.log)"
      return 1
    fi
  fi
  LITELLM_VERSION=$("$LITELLM_VENV/bin/pip" show litellm 2>/dev/null | awk '/^Version:/{print $2}')
  PEER_NOTES+="- LiteLLM proxy ${LITELLM_VERSION:-?}, $("$LITELLM_VENV/bin/python" --version), --num_workers 1."$'\n'
  write_bodies gpt-4o-mini "$WORK/bodies/peer"
}

start_litellm() {
  local port=$1 dir=$WORK/litellm
  mkdir -p "$dir"
  cat >"$dir/config.yaml" <<EOF
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:$MOCK_PORT/v1
      api_key: $PEER_SERVICE_KEY
EOF
  # The cost map is read from the package, not fetched: the network is closed here.
  LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_MASTER_KEY=$LITELLM_MASTER_KEY_VALUE "${SUT_CPU[@]}" "$LITELLM_VENV/bin/litellm" \
    --config "$dir/config.yaml" --host 127.0.0.1 --port "$port" --num_workers 1 \
    >"$dir/stdout.log" 2>"$dir/stderr.log" &
  SUT_PID=$!
  PIDS+=("$SUT_PID")
  wait_http "http://127.0.0.1:$port/health/liveliness" "$SUT_PID" litellm "$dir/stderr.log" 180 || return 1
  URL="http://127.0.0.1:$port/v1/chat/completions"
  BODY_DIR=$WORK/bodies/peer
  HEADERS+=(-H "Authorization: Bearer $LITELLM_MASTER_KEY_VALUE")
}
