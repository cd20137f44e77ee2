// One request: every field of its log record, each upstream attempt, and the request and
// response payloads (JSON pretty-printed, a streamed answer as its event-stream text).

import { get } from './api.js';
import { copyButton, errorBox, h, replace, table } from './dom.js';
import * as fmt from './format.js';
import { logsHref } from './logs.js';

// Shown in this order; anything else the record has is listed after them.
const FIELDS = [
  ['id', 'Id', fmt.plain], ['created_at', 'Time', fmt.time], ['trace_id', 'Trace id', fmt.plain],
  ['status', 'Status', fmt.plain], ['outcome', 'Outcome', fmt.plain], ['endpoint', 'Endpoint', fmt.plain],
  ['provider', 'Provider', fmt.plain], ['model', 'Model', fmt.plain], ['key_name', 'Key', fmt.plain],
  ['user', 'User', fmt.plain], ['stream', 'Stream', fmt.yesNo], ['latency_ms', 'Latency', fmt.ms],
  ['upstream_latency_ms', 'Upstream latency', fmt.ms], ['ttft_ms', 'Time to first token', fmt.ms],
  ['prompt_tokens', 'Prompt tokens', fmt.int], ['completion_tokens', 'Completion tokens', fmt.int],
  ['cached_tokens', 'Cached tokens', fmt.int], ['cache_write_tokens', 'Cache-write tokens', fmt.int],
  ['cost_usd', 'Cost', fmt.usd], ['cache_status', 'Cache', fmt.plain],
  ['cache_saved_usd', 'Cache saved', fmt.usd], ['cache_similarity', 'Similarity', fmt.plain],
  ['retry_count', 'Retries', fmt.int],
  ['target', 'Target', fmt.plain], ['config_id', 'Config', fmt.plain], ['error_code', 'Error code', fmt.plain],
  ['error', 'Error', fmt.plain],
];
const SPECIAL = new Set(['metadata', 'attempts', 'guardrails', 'request', 'response', 'request_truncated', 'response_truncated']);

/** A field this page does not know yet: `some_flag` → "Some flag", booleans as yes/no. */
function extraField(k, v) {
  const label = k.charAt(0).toUpperCase() + k.slice(1).replace(/_/g, ' ');
  return [k, label, typeof v === 'boolean' ? fmt.yesNo(v) : fmt.plain(v)];
}

function payloadText(value) {
  if (value === null || value === undefined) return null;
  return typeof value === 'string' ? value : JSON.stringify(value, null, 2);
}

function payload(title, id, value, truncated) {
  const text = payloadText(value);
  return h('section', { class: 'panel payload', 'aria-labelledby': `${id}-title` },
    h('div', { class: 'payload-head' },
      h('h2', { id: `${id}-title` }, title),
      text !== null && typeof value === 'string' ? h('span', { class: 'muted' }, 'text') : null,
      truncated ? h('span', { class: 'badge s4', title: 'Longer than the log keeps; the rest was cut.' }, 'truncated') : null,
      h('span', { class: 'spacer' }),
      text !== null ? copyButton(`Copy ${title.toLowerCase()}`, text) : null),
    text === null
      ? h('p', { class: 'muted' }, 'Not logged: payload logging is off for this key, or there was no payload.')
      : h('pre', { id, tabindex: '0' }, text));
}

/** Every guardrail check of the request (`hook_results`): one row per check. */
function guardrails(results) {
  const rows = [];
  for (const [field, hook] of [['before_request_hooks', 'input'], ['after_request_hooks', 'output']]) {
    for (const g of (results && results[field]) || []) {
      for (const c of g.checks || []) rows.push({ hook, g, c });
    }
  }
  if (!rows.length) return h('p', { class: 'muted' }, 'No guardrail ran.');
  const cols = [{ label: 'Hook' }, { label: 'Guardrail' }, { label: 'Check' }, { label: 'Verdict' },
    { label: 'Duration', num: true }, { label: 'Explanation' }];
  return table('Guardrail checks', cols, h('tbody', {}, rows.map(({ hook, g, c }) => h('tr', {},
    h('td', {}, hook),
    h('td', { class: 'mono' }, `${g.id}${g.deny ? ' (deny)' : ''}`),
    h('td', { class: 'mono' }, c.id),
    h('td', {}, h('span', { class: `badge ${c.verdict ? 's2' : 's4'}` }, c.verdict ? 'pass' : 'fail')),
    h('td', { class: 'num' }, c.duration_us == null ? '—' : `${fmt.int(c.duration_us)} µs`),
    h('td', { class: 'wrap' }, c.error ? `error: ${c.error.message}` : fmt.plain(c.explanation))))));
}

function attempts(list) {
  if (!Array.isArray(list) || !list.length) return h('p', { class: 'muted' }, 'No upstream attempt (answered by the gateway).');
  const cols = [{ label: '#' }, { label: 'Provider' }, { label: 'Model' }, { label: 'Target' }, { label: 'Retry', num: true },
    { label: 'Started' }, { label: 'Status' }, { label: 'Latency', num: true }, { label: 'Error' }];
  return table('Upstream attempts', cols, h('tbody', {}, list.map((a, i) => h('tr', {},
    h('td', {}, i + 1),
    h('td', {}, a.provider || '—'),
    h('td', {}, a.model || '—'),
    h('td', {}, fmt.plain(a.target)),
    h('td', { class: 'num' }, fmt.int(a.retry)),
    h('td', {}, fmt.shortDate(a.started_at)),
    h('td', {}, a.status == null ? h('span', { class: 'badge s5' }, 'no answer') : h('span', { class: `badge ${fmt.statusClass(a.status)}` }, a.status)),
    h('td', { class: 'num' }, fmt.ms(a.latency_ms)),
    h('td', { class: 'wrap' }, a.error ? fmt.plain(a.error) : '—')))));
}

export function detailPage(main, route) {
  const id = route.rest[0];
  const error = errorBox();
  replace(main,
    h('div', { class: 'page-head' },
      h('a', { href: '#/logs', class: 'button' }, '← Logs'),
      h('h1', {}, 'Request'), h('span', { class: 'mono muted' }, id)),
    error, h('p', { class: 'muted' }, 'Loading…'));

  let stopped = false;
  get(`/logs/${encodeURIComponent(id)}`).then((r) => {
    if (stopped) return;
    const fields = FIELDS.filter(([k]) => k in r).map(([k, label, f]) => [k, label, f(r[k])]);
    for (const k of Object.keys(r)) {
      if (!SPECIAL.has(k) && !FIELDS.some(([f]) => f === k)) fields.push(extraField(k, r[k]));
    }
    const meta = r.metadata && typeof r.metadata === 'object' ? Object.entries(r.metadata) : [];
    replace(main,
      h('div', { class: 'page-head' },
        h('a', { href: '#/logs', class: 'button' }, '← Logs'),
        h('h1', {}, 'Request'),
        h('span', { class: `badge ${fmt.statusClass(r.status)}` }, r.status ?? '—'),
        h('span', { class: 'mono muted' }, r.id),
        copyButton('Copy request id', r.id),
        h('span', { class: 'spacer' }),
        r.trace_id ? h('a', { class: 'button', href: logsHref({ trace_id: r.trace_id }) }, 'Same trace') : null),
      h('section', { class: 'panel', 'aria-label': 'Fields' },
        h('dl', { class: 'fields' }, fields.map(([k, label, value]) => h('div', { dataset: { field: k } },
          h('dt', {}, label), h('dd', { class: k.endsWith('id') ? 'mono' : null }, value)))),
        h('h2', { class: 'spaced' }, 'Metadata'),
        meta.length
          ? h('div', {}, meta.map(([k, v]) => h('a', {
            class: 'chip', href: logsHref({ [`metadata.${k}`]: typeof v === 'string' ? v : JSON.stringify(v) }),
            title: 'Show requests with this metadata',
          }, `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)))
          : h('p', { class: 'muted' }, 'None.'),
        null),
      h('section', { class: 'panel', 'aria-labelledby': 'attempts-title' },
        h('h2', { id: 'attempts-title' }, 'Attempts'), attempts(r.attempts)),
      r.guardrails
        ? h('section', { class: 'panel', 'aria-labelledby': 'guardrails-title' },
          h('h2', { id: 'guardrails-title' }, 'Guardrails'), guardrails(r.guardrails))
        : null,
      h('div', { class: 'two' },
        payload('Request', 'request-payload', r.request, r.request_truncated),
        payload('Response', 'response-payload', r.response, r.response_truncated)));
  }).catch((err) => {
    if (stopped) return;
    error.textContent = err.status === 404 ? `No logged request has the id ${id}.` : err.message;
    const loading = main.querySelector('p.muted');
    if (loading) loading.remove();
  });
  return { stop() { stopped = true; } };
}
