// How numbers, times and statuses read on screen.

const dateTime = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
});
const shortTime = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
});
const integer = new Intl.NumberFormat();

export function time(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : dateTime.format(d);
}

export function shortDate(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : shortTime.format(d);
}

export function int(n) {
  return n === null || n === undefined ? '—' : integer.format(n);
}

export function ms(n) {
  if (n === null || n === undefined) return '—';
  return n >= 10000 ? `${(n / 1000).toFixed(1)} s` : `${integer.format(Math.round(n))} ms`;
}

/** Dollars: cents precision for large sums, more digits for the tiny cost of one request. */
export function usd(n) {
  if (n === null || n === undefined) return '—';
  if (n === 0) return '$0';
  if (Math.abs(n) >= 1) return `$${n.toFixed(2)}`;
  if (Math.abs(n) >= 0.01) return `$${n.toFixed(4)}`;
  return `$${n.toPrecision(3)}`;
}

/** A compact number for chart axes: 1.2k, 3.4M. */
export function compact(n) {
  const a = Math.abs(n);
  if (a >= 1e9) return `${+(n / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${+(n / 1e3).toFixed(1)}k`;
  if (a > 0 && a < 1) return `${+n.toPrecision(2)}`;
  return `${+n.toFixed(1)}`;
}

/** The CSS class of a status badge. */
export function statusClass(status) {
  if (status >= 500) return 's5';
  if (status >= 400) return 's4';
  return 's2';
}

export function yesNo(b) {
  return b ? 'yes' : 'no';
}

/** A value of any type as one line of text. */
export function plain(v) {
  if (v === null || v === undefined || v === '') return '—';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/**
 * Why a catalog record cannot be changed here, or null when it can: the admin API changes
 * only records it created (`source: api`); the next apply would undo any other change.
 */
export function lockedBecause(source) {
  if (!source || source === 'api') return null;
  if (source === 'file') return 'declared in the catalog file: change it there';
  if (source === 'env') return 'detected from the environment: declare it in the catalog file to change it';
  return 'built in';
}

/** How far `iso` is from now: "in 3 h", "in 12 d", "40 s ago". */
export function fromNow(iso, now = Date.now()) {
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return '—';
  const secs = Math.round((at - now) / 1000);
  const a = Math.abs(secs);
  let text;
  if (a < 60) text = `${a} s`;
  else if (a < 3600) text = `${Math.round(a / 60)} min`;
  else if (a < 2 * 86400) text = `${Math.round(a / 3600)} h`;
  else text = `${Math.round(a / 86400)} d`;
  return secs < 0 ? `${text} ago` : `in ${text}`;
}

const utcTime = new Intl.DateTimeFormat(undefined, {
  timeZone: 'UTC', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
});

/** A time in UTC, as budgets' calendar periods are: "Dec 01, 00:00 UTC". */
export function utc(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : `${utcTime.format(d)} UTC`;
}

/**
 * A budget and a rate limit in a few words, as the catalog file declares them:
 * "$5/month, 1,000 tokens/month, 60 req/min"; '' when there are none.
 */
export function limitsSummary(budget, rateLimit) {
  const parts = [];
  if (budget) {
    if (budget.cost_usd != null) parts.push(`$${+budget.cost_usd}/${budget.period}`);
    if (budget.tokens != null) parts.push(`${int(budget.tokens)} tokens/${budget.period}`);
  }
  if (rateLimit) {
    if (rateLimit.requests_per_minute != null) parts.push(`${int(rateLimit.requests_per_minute)} req/min`);
    if (rateLimit.tokens_per_minute != null) parts.push(`${int(rateLimit.tokens_per_minute)} tokens/min`);
  }
  return parts.join(', ');
}
