//! The Lua scripts of the shared ledger. Each runs atomically in Redis (no other command runs
//! between its reads and writes), which is what makes a check and its reservation one step
//! across every subject of a request, and across every process.
//!
//! Layout (docs in `limits/mod.rs`):
//!
//! - a subject's budget is a hash `<prefix>budget:<subject>` with `pk` (period kind), `ps`
//!   (period start, Unix ms), `usd` and `tok` (spent this period), and, per process and
//!   epoch, what its requests in flight hold: `u:<pid>:<epoch>` (USD), `t:<pid>:<epoch>`
//!   (tokens). A process is alive while `<prefix>proc:<pid>` exists; holds of dead processes
//!   are dropped by the next script that reads them.
//! - a subject's rate window is a hash `<prefix>window:<subject>` with `r<second>` and
//!   `t<second>` (requests and tokens counted in that second), and running totals `R`, `T`
//!   over the seconds `h - 59 ..= h`, `h` being the newest second counted. Moving the window
//!   on reads and drops only the seconds that left it (usually none or one), so a check costs
//!   the same whatever the traffic; the in-memory ring does the same.
//!
//! Numbers come in as decimal strings (Rust's shortest round-trip form) and go out as
//! strings too: Redis would truncate a Lua number returned as is to an integer.

/// Shared by the scripts that touch windows: `advance(key, now_s)` moves a window on to
/// `now_s` (never back: a clock behind counts in the newest second), dropping the seconds
/// that left it, and returns its newest second and totals; `store(key, head, req, tok)`
/// writes them back.
const WINDOW: &str = r"
local function int(x) return string.format('%d', x) end

local function store(key, head, req, tok)
  redis.call('HSET', key, 'h', int(head), 'R', int(req), 'T', int(tok))
  redis.call('PEXPIRE', key, 61000)
end

local function advance(key, now_s)
  local cur = redis.call('HMGET', key, 'h', 'R', 'T')
  local head = tonumber(cur[1])
  local req, tok = tonumber(cur[2]) or 0, tonumber(cur[3]) or 0
  if head == nil then return now_s, 0, 0 end
  if now_s <= head then return head, req, tok end
  if now_s - head >= 60 then
    redis.call('DEL', key)
    return now_s, 0, 0
  end
  local gone = {}
  for sec = head - 59, now_s - 60 do
    gone[#gone + 1] = 'r' .. int(sec)
    gone[#gone + 1] = 't' .. int(sec)
  end
  local counts = redis.call('HMGET', key, unpack(gone))
  for j = 1, #counts, 2 do
    req = req - (tonumber(counts[j]) or 0)
    tok = tok - (tonumber(counts[j + 1]) or 0)
  end
  redis.call('HDEL', key, unpack(gone))
  if req < 0 then req = 0 end
  if tok < 0 then tok = 0 end
  store(key, now_s, req, tok)
  return now_s, req, tok
end
";

/// Admits a request on every subject or on none.
///
/// KEYS: per subject, its budget hash then its window hash.
/// ARGV: now (Unix s), pid, epoch, proc key prefix, proc TTL (ms), estimated USD, estimated
/// tokens; then per subject 7: period (`''`: no budget), period start (ms), budget TTL (ms),
/// USD limit, tokens limit, requests per minute, tokens per minute (`''`: none).
///
/// Returns `{'1', second, ...}` when admitted, with each subject's window second (`''` for a
/// subject without a rate limit); `{'0', i, 'usd'|'tok', spent, held}` when subject `i`'s
/// budget refuses; `{'0', i, 'rate', second, requests, tokens, ...}` when its rate limit
/// does (the window's seconds, for `Retry-After`).
const ADMIT: &str = r"
local now_s = tonumber(ARGV[1])
local me = ARGV[2]
local suffix = ':' .. me .. ':' .. ARGV[3]
local procs = ARGV[4]
local est_usd = tonumber(ARGV[6])
local est_tok = tonumber(ARGV[7])
local n = #KEYS / 2
redis.call('SET', procs .. me, '1', 'PX', ARGV[5])

local live = {}
live[me] = true
local function alive(pid)
  local known = live[pid]
  if known == nil then
    known = redis.call('EXISTS', procs .. pid) == 1
    live[pid] = known
  end
  return known
end
local function fmt(x) return string.format('%.17g', x) end

local function budget(key, period, start_arg)
  local start = tonumber(start_arg)
  local flat = redis.call('HGETALL', key)
  local b = {usd = 0, tok = 0, held_usd = 0, held_tok = 0, pk = '', ps = 0}
  for j = 1, #flat, 2 do
    local f, v = flat[j], flat[j + 1]
    local kind, pid = string.match(f, '^([ut]):([^:]+):')
    if kind then
      if alive(pid) then
        if kind == 'u' then b.held_usd = b.held_usd + tonumber(v)
        else b.held_tok = b.held_tok + tonumber(v) end
      else
        redis.call('HDEL', key, f)
      end
    elseif f == 'usd' then b.usd = tonumber(v)
    elseif f == 'tok' then b.tok = tonumber(v)
    elseif f == 'pk' then b.pk = v
    elseif f == 'ps' then b.ps = tonumber(v)
    end
  end
  if b.pk ~= period or b.ps < start then
    b.usd = 0
    b.tok = 0
    redis.call('HSET', key, 'pk', period, 'ps', start_arg, 'usd', '0', 'tok', '0')
  end
  return b
end

local windows = {}
for i = 1, n do
  local a = 7 + (i - 1) * 7
  local period = ARGV[a + 1]
  if period ~= '' then
    local b = budget(KEYS[2 * i - 1], period, ARGV[a + 2])
    if ARGV[a + 4] ~= '' then
      local limit = tonumber(ARGV[a + 4])
      local used = b.usd + b.held_usd
      if used >= limit or used + est_usd > limit then
        return {'0', tostring(i), 'usd', fmt(b.usd), fmt(b.held_usd)}
      end
    end
    if ARGV[a + 5] ~= '' then
      local limit = tonumber(ARGV[a + 5])
      local used = b.tok + b.held_tok
      if used >= limit or used + est_tok > limit then
        return {'0', tostring(i), 'tok', fmt(b.tok), fmt(b.held_tok)}
      end
    end
  end
  local rpm, tpm = ARGV[a + 6], ARGV[a + 7]
  if rpm ~= '' or tpm ~= '' then
    local key = KEYS[2 * i]
    local head, req, tok = advance(key, now_s)
    windows[i] = {head, req, tok}
    if (rpm ~= '' and req + 1 > tonumber(rpm)) or (tpm ~= '' and tok + est_tok > tonumber(tpm)) then
      local out = {'0', tostring(i), 'rate'}
      local flat = redis.call('HGETALL', key)
      for j = 1, #flat, 2 do
        local f = flat[j]
        local sec = tonumber(string.sub(f, 2))
        if sec ~= nil and sec > head - 60 then
          local r, t = 0, 0
          if string.sub(f, 1, 1) == 'r' then r = tonumber(flat[j + 1]) else t = tonumber(flat[j + 1]) end
          out[#out + 1] = int(sec)
          out[#out + 1] = int(r)
          out[#out + 1] = int(t)
        end
      end
      return out
    end
  end
end

local out = {'1'}
for i = 1, n do
  local a = 7 + (i - 1) * 7
  if ARGV[a + 1] ~= '' then
    local key = KEYS[2 * i - 1]
    if est_usd > 0 then redis.call('HINCRBYFLOAT', key, 'u' .. suffix, ARGV[6]) end
    if est_tok > 0 then redis.call('HINCRBY', key, 't' .. suffix, ARGV[7]) end
    redis.call('PEXPIRE', key, ARGV[a + 3])
  end
  local w = windows[i]
  if w then
    local key = KEYS[2 * i]
    local second = int(w[1])
    redis.call('HINCRBY', key, 'r' .. second, 1)
    if est_tok > 0 then redis.call('HINCRBY', key, 't' .. second, ARGV[7]) end
    store(key, w[1], w[2] + 1, w[3] + est_tok)
    out[#out + 1] = second
  else
    out[#out + 1] = ''
  end
end
return out
";

/// Applies a batch of queued operations (settlements, releases, raises, dropped epochs),
/// once: a retried batch whose first try did reach Redis finds its marker and does nothing.
///
/// KEYS: the batch's marker, then per operation its budget hash and window hash.
/// ARGV: the marker's TTL (ms), then per operation 12: op (`s` settle, `r` release, `h` raise,
/// `d` drop an epoch's holds), hold suffix (`:<pid>:<epoch>`, `''` when nothing is held),
/// now (Unix s), period (`''`: no budget), period start (ms), budget TTL (ms), held USD, held
/// tokens, window second (`''`: not counted), tokens counted there, charged USD, charged
/// tokens.
const APPLY: &str = r"
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return '0' end

local function take(key, field, amount, whole)
  if amount <= 0 then return end
  local v = redis.call('HGET', key, field)
  if not v then return end
  local left = tonumber(v) - amount
  if left <= 1e-12 then
    redis.call('HDEL', key, field)
  elseif whole then
    redis.call('HSET', key, field, int(left))
  else
    redis.call('HSET', key, field, string.format('%.17g', left))
  end
end

local n = (#KEYS - 1) / 2
for i = 1, n do
  local a = 1 + (i - 1) * 12
  local op, suffix = ARGV[a + 1], ARGV[a + 2]
  local bkey, wkey = KEYS[2 * i], KEYS[2 * i + 1]
  if op == 'h' then
    redis.call('HINCRBYFLOAT', bkey, 'u' .. suffix, ARGV[a + 7])
  elseif op == 'd' then
    redis.call('HDEL', bkey, 'u' .. suffix, 't' .. suffix)
  else
    local now_s = tonumber(ARGV[a + 3])
    if suffix ~= '' then
      take(bkey, 'u' .. suffix, tonumber(ARGV[a + 7]), false)
      take(bkey, 't' .. suffix, tonumber(ARGV[a + 8]), true)
    end
    local charged_tok = 0
    if op == 's' then charged_tok = tonumber(ARGV[a + 12]) end
    local period = ARGV[a + 4]
    if op == 's' and period ~= '' then
      local start = tonumber(ARGV[a + 5])
      local cur = redis.call('HMGET', bkey, 'pk', 'ps')
      if cur[1] ~= period or tonumber(cur[2] or '0') < start then
        redis.call('HSET', bkey, 'pk', period, 'ps', ARGV[a + 5], 'usd', '0', 'tok', '0')
      end
      if tonumber(ARGV[a + 11]) > 0 then redis.call('HINCRBYFLOAT', bkey, 'usd', ARGV[a + 11]) end
      if charged_tok > 0 then redis.call('HINCRBY', bkey, 'tok', ARGV[a + 12]) end
      redis.call('PEXPIRE', bkey, ARGV[a + 6])
    end
    local wsec = ARGV[a + 9]
    if wsec ~= '' then
      local head, req, tok = advance(wkey, now_s)
      local sec = tonumber(wsec)
      local counted = tonumber(ARGV[a + 10])
      if sec > head - 60 and sec <= head and redis.call('HEXISTS', wkey, 'r' .. wsec) == 1 then
        -- Its second still counts: the estimate there is replaced by the real tokens.
        local t = tonumber(redis.call('HGET', wkey, 't' .. wsec) or '0')
        local left = t - math.min(counted, t) + charged_tok
        if left > 0 then
          redis.call('HSET', wkey, 't' .. wsec, int(left))
        else
          redis.call('HDEL', wkey, 't' .. wsec)
        end
        store(wkey, head, req, tok + left - t)
      elseif charged_tok > 0 then
        -- A request longer than the window used its tokens now.
        redis.call('HINCRBY', wkey, 't' .. int(head), ARGV[a + 12])
        store(wkey, head, req, tok + charged_tok)
      end
    end
  end
end
return '1'
";

/// Keeps this process alive, seeds subjects Redis has no state for from the local ledger,
/// and reads every subject's shared state back.
///
/// KEYS: per subject, its budget hash then its window hash.
/// ARGV: now (Unix s), pid, proc key prefix, proc TTL (ms); then per subject 6: seed period
/// (`''`: no seed), seed period start, seed USD, seed tokens, budget TTL (ms), seed window
/// (`second:requests:tokens,...`, `''`: none).
///
/// Returns per subject `{period, period start, usd, tokens, held usd, held tokens, window}`
/// (`period` `''` when Redis has no budget state; `window` in the seed's form).
const SYNC: &str = r"
local now_s = tonumber(ARGV[1])
local me = ARGV[2]
local procs = ARGV[3]
redis.call('SET', procs .. me, '1', 'PX', ARGV[4])

local live = {}
live[me] = true
local function alive(pid)
  local known = live[pid]
  if known == nil then
    known = redis.call('EXISTS', procs .. pid) == 1
    live[pid] = known
  end
  return known
end
local function fmt(x) return string.format('%.17g', x) end

local out = {}
local n = #KEYS / 2
for i = 1, n do
  local a = 4 + (i - 1) * 6
  local bkey, wkey = KEYS[2 * i - 1], KEYS[2 * i]
  if ARGV[a + 1] ~= '' and redis.call('HEXISTS', bkey, 'pk') == 0 then
    redis.call('HSET', bkey, 'pk', ARGV[a + 1], 'ps', ARGV[a + 2], 'usd', ARGV[a + 3], 'tok', ARGV[a + 4])
    redis.call('PEXPIRE', bkey, ARGV[a + 5])
  end
  if ARGV[a + 6] ~= '' and redis.call('EXISTS', wkey) == 0 then
    local head, req, tok = now_s, 0, 0
    for sec, r, t in string.gmatch(ARGV[a + 6], '(%d+):(%d+):(%d+)') do
      local s = tonumber(sec)
      if s > now_s - 60 then
        if r ~= '0' then redis.call('HSET', wkey, 'r' .. sec, r) end
        if t ~= '0' then redis.call('HSET', wkey, 't' .. sec, t) end
        if s > head then head = s end
        req = req + tonumber(r)
        tok = tok + tonumber(t)
      end
    end
    if req > 0 or tok > 0 then store(wkey, head, req, tok) end
  end

  local flat = redis.call('HGETALL', bkey)
  local pk, ps, usd, tok, hu, ht = '', '0', 0, 0, 0, 0
  for j = 1, #flat, 2 do
    local f, v = flat[j], flat[j + 1]
    local kind, pid = string.match(f, '^([ut]):([^:]+):')
    if kind then
      if alive(pid) then
        if kind == 'u' then hu = hu + tonumber(v) else ht = ht + tonumber(v) end
      end
    elseif f == 'pk' then pk = v
    elseif f == 'ps' then ps = v
    elseif f == 'usd' then usd = tonumber(v)
    elseif f == 'tok' then tok = tonumber(v)
    end
  end

  local wflat = redis.call('HGETALL', wkey)
  local seconds = {}
  for j = 1, #wflat, 2 do
    local f, v = wflat[j], wflat[j + 1]
    local sec = tonumber(string.sub(f, 2))
    if sec ~= nil and sec > now_s - 60 then
      local s = seconds[sec] or {0, 0}
      if string.sub(f, 1, 1) == 'r' then s[1] = s[1] + tonumber(v) else s[2] = s[2] + tonumber(v) end
      seconds[sec] = s
    end
  end
  local parts = {}
  for sec, s in pairs(seconds) do
    parts[#parts + 1] = string.format('%d:%d:%d', sec, s[1], s[2])
  end
  out[i] = {pk, ps, fmt(usd), fmt(tok), fmt(hu), fmt(ht), table.concat(parts, ',')}
end
return out
";

/// The admission script.
pub(super) fn admit() -> String {
    [WINDOW, ADMIT].concat()
}

/// The settlement script.
pub(super) fn apply() -> String {
    [WINDOW, APPLY].concat()
}

/// The heartbeat, seed and mirror script.
pub(super) fn sync() -> String {
    [WINDOW, SYNC].concat()
}
