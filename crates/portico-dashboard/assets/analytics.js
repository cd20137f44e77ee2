// Analytics: totals and charts over time of cost, tokens, requests, errors and latency
// percentiles, per hour or day, optionally grouped by model, provider, key, user or a
// metadata key. One API call per view; the charts are drawn by chart.js.

import { get, query } from './api.js';
import { errorBox, h, replace, table } from './dom.js';
import * as fmt from './format.js';
import { lineChart } from './chart.js';
import { filtersFrom, logsHref } from './logs.js';

const HOUR = 3600e3;
const DAY = 86400e3;
const TOP = 7;
// The time ranges offered; the URL keeps the name, so a shared link means "the last day".
const RANGES = { '1h': HOUR, '24h': DAY, '7d': 7 * DAY, '30d': 30 * DAY };

function sum(rows, f) {
  return rows.reduce((a, r) => a + (f(r) || 0), 0);
}

/** Every bucket from `from` to `to` (the API leaves out empty ones), plus any it answered. */
function bucketsOf(answer, step) {
  const set = new Set();
  const from = Date.parse(answer.from);
  const to = Date.parse(answer.to);
  if (Number.isFinite(from) && Number.isFinite(to) && (to - from) / step <= 2000) {
    for (let t = Math.floor(from / step) * step; t < to; t += step) set.add(t);
  }
  for (const row of answer.series || []) set.add(Date.parse(row.bucket));
  return [...set].filter(Number.isFinite).sort((a, b) => a - b);
}

function controls(params) {
  const groupBy = params.get('group_by') || '';
  const isMeta = groupBy.startsWith('metadata.');
  const metaKey = h('input', { name: 'meta_key', value: isMeta ? groupBy.slice(9) : '', placeholder: 'e.g. team', disabled: !isMeta, autocomplete: 'off' });
  const group = h('select', { name: 'group_by', onchange: () => { metaKey.disabled = group.value !== 'metadata'; } },
    [['', 'nothing'], ['model', 'model'], ['provider', 'provider'], ['key', 'key'], ['user', 'user'], ['metadata', 'a metadata key']]
      .map(([v, label]) => h('option', { value: v, selected: (isMeta ? 'metadata' : groupBy) === v }, label)));
  const interval = h('select', { name: 'interval' },
    ['hour', 'day'].map((v) => h('option', { value: v, selected: (params.get('interval') || 'hour') === v }, `per ${v}`)));
  const range = h('select', { name: 'range' },
    [['', 'default'], ['1h', 'last hour'], ['24h', 'last 24 hours'], ['7d', 'last 7 days'], ['30d', 'last 30 days']]
      .map(([v, label]) => h('option', { value: v, selected: (params.get('range') || '') === v }, label)));
  const text = (name, label) => h('label', {}, label, h('input', { name, value: params.get(name) || '', autocomplete: 'off' }));
  const form = h('form', { class: 'form-grid', 'aria-label': 'Analytics options', onsubmit: apply },
    h('label', {}, 'Interval', interval),
    h('label', {}, 'Range', range),
    h('label', {}, 'Group by', group),
    h('label', {}, 'Metadata key', metaKey),
    text('provider', 'Provider'), text('model', 'Model'), text('key', 'Key name'),
    h('div', { class: 'actions' }, h('button', { class: 'primary', type: 'submit' }, 'Show')));

  function apply(event) {
    event.preventDefault();
    const data = new FormData(form);
    const next = { interval: data.get('interval') };
    let g = String(data.get('group_by') || '');
    if (g === 'metadata') {
      const k = String(data.get('meta_key') || '').trim();
      g = k ? `metadata.${k}` : '';
    }
    if (g) next.group_by = g;
    if (data.get('range')) next.range = data.get('range');
    for (const name of ['provider', 'model', 'key']) {
      const v = String(data.get(name) || '').trim();
      if (v) next[name] = v;
    }
    location.hash = `#/analytics${query(next)}`;
  }
  return form;
}

/** A group's name, linked to its requests in the log (same filters, plus the group). */
function groupLink(groupBy, group, params) {
  const filter = groupBy.startsWith('metadata.') ? groupBy : { model: 'model', provider: 'provider', key: 'key', user: 'user' }[groupBy];
  if (!filter || group === null || group === undefined || group === '(none)') return String(group);
  return h('a', { href: logsHref({ ...filtersFrom(params), [filter]: String(group) }), title: 'Show these requests' }, String(group));
}

function totalCard(label, value, sub) {
  return h('div', { class: 'total' }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value),
    sub ? h('div', { class: 'sub' }, sub) : null);
}

function chartPanel(title, chart) {
  return h('section', { class: 'panel chart', 'aria-label': title }, h('h2', {}, title), chart);
}

export function analyticsPage(main, route) {
  const params = route.params;
  const interval = params.get('interval') === 'day' ? 'day' : 'hour';
  const groupBy = params.get('group_by') || '';
  const error = errorBox();
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  replace(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Analytics')),
    h('section', { class: 'panel' }, controls(params)),
    error, body);

  const apiParams = { ...filtersFrom(params), interval };
  if (groupBy) apiParams.group_by = groupBy;
  const span = RANGES[params.get('range')];
  if (span) apiParams.from = new Date(Date.now() - span).toISOString();
  let stopped = false;
  get(`/analytics${query(apiParams)}`).then((a) => {
    if (stopped) return;
    draw(body, a, interval, groupBy, params);
  }).catch((err) => {
    if (stopped) return;
    error.textContent = err.message;
    replace(body);
  });
  return { stop() { stopped = true; } };
}

function draw(body, a, interval, groupBy, params) {
  const step = interval === 'day' ? DAY : HOUR;
  const buckets = bucketsOf(a, step);
  const rows = a.series || [];
  const t = a.totals || {};
  const lat = t.latency_ms || {};
  const xLabel = (ms) => {
    const d = new Date(ms);
    return interval === 'day'
      ? d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' })
      : d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  };
  const range = `${fmt.time(a.from)} – ${fmt.time(a.to)}`;

  // Groups ranked by requests; the rest are folded into "other" for the additive charts.
  const byGroup = new Map();
  for (const r of rows) {
    const g = r.group ?? '(none)';
    if (!byGroup.has(g)) byGroup.set(g, []);
    byGroup.get(g).push(r);
  }
  const ranked = [...byGroup.entries()].sort((x, y) => sum(y[1], (r) => r.requests) - sum(x[1], (r) => r.requests));
  const grouped = Boolean(groupBy);

  const additive = (name, f) => {
    if (!grouped) return [{ name, values: new Map(rows.map((r) => [Date.parse(r.bucket), f(r)])) }];
    const out = ranked.slice(0, TOP).map(([g, rs]) => ({ name: String(g), values: new Map(rs.map((r) => [Date.parse(r.bucket), f(r)])) }));
    const rest = ranked.slice(TOP).flatMap(([, rs]) => rs);
    if (rest.length) {
      const values = new Map();
      for (const r of rest) values.set(Date.parse(r.bucket), (values.get(Date.parse(r.bucket)) || 0) + f(r));
      out.push({ name: 'other', values });
    }
    return out;
  };
  const latency = grouped
    ? ranked.slice(0, TOP).map(([g, rs]) => ({ name: `${g} p95`, values: new Map(rs.map((r) => [Date.parse(r.bucket), r.latency_ms?.p95 ?? null])) }))
    : ['p50', 'p95', 'p99'].map((p) => ({ name: p, values: new Map(rows.map((r) => [Date.parse(r.bucket), r.latency_ms?.[p] ?? null])) }));
  const tokenSeries = grouped
    ? additive('tokens', (r) => (r.prompt_tokens || 0) + (r.completion_tokens || 0))
    : [
      { name: 'prompt', values: new Map(rows.map((r) => [Date.parse(r.bucket), r.prompt_tokens || 0])) },
      { name: 'completion', values: new Map(rows.map((r) => [Date.parse(r.bucket), r.completion_tokens || 0])) },
    ];
  const chart = (title, series, zero, yLabel, integer) => chartPanel(title, lineChart({
    buckets, series, zero, integer, xLabel, yLabel, describe: `${title}, ${interval === 'day' ? 'per day' : 'per hour'}, ${range}`,
  }));
  const requests = t.requests || 0;
  const errorRate = requests ? `${((100 * (t.errors || 0)) / requests).toFixed(1)}% of requests` : null;

  replace(body,
    h('p', { class: 'muted' }, `${range} · per ${interval}${grouped ? ` · by ${groupBy}` : ''}`),
    h('div', { class: 'totals', 'aria-label': 'Totals' },
      totalCard('Requests', fmt.int(requests)),
      totalCard('Errors', fmt.int(t.errors), errorRate),
      totalCard('Cost', fmt.usd(t.cost_usd ?? 0), t.unpriced_requests ? `${fmt.int(t.unpriced_requests)} unpriced` : null),
      totalCard('Tokens', fmt.int((t.prompt_tokens || 0) + (t.completion_tokens || 0)), `${fmt.int(t.prompt_tokens)} in · ${fmt.int(t.completion_tokens)} out`),
      totalCard('Latency p50', fmt.ms(lat.p50)),
      totalCard('Latency p95', fmt.ms(lat.p95)),
      totalCard('Latency p99', fmt.ms(lat.p99))),
    rows.length
      ? h('div', { class: 'charts' },
        chart('Cost (USD)', additive('cost', (r) => r.cost_usd || 0), true, (v) => (v === 0 ? '$0' : `$${fmt.compact(v)}`)),
        chart('Tokens', tokenSeries, true, undefined, true),
        chart('Requests', additive('requests', (r) => r.requests || 0), true, undefined, true),
        chart('Errors', additive('errors', (r) => r.errors || 0), true, undefined, true),
        chart(grouped ? 'Latency p95 (ms)' : 'Latency (ms)', latency, false))
      : h('p', { class: 'panel empty' }, 'No requests in this range.'),
    grouped && ranked.length ? h('section', { class: 'panel', 'aria-label': `Totals by ${groupBy}` },
      h('h2', {}, `By ${groupBy}`),
      table(`Totals by ${groupBy}`, [{ label: groupBy }, { label: 'Requests', num: true }, { label: 'Errors', num: true },
        { label: 'Tokens', num: true }, { label: 'Cost', num: true }],
      h('tbody', {}, ranked.map(([g, rs]) => h('tr', {},
        h('td', {}, groupLink(groupBy, g, params)),
        h('td', { class: 'num' }, fmt.int(sum(rs, (r) => r.requests))),
        h('td', { class: 'num' }, fmt.int(sum(rs, (r) => r.errors))),
        h('td', { class: 'num' }, fmt.int(sum(rs, (r) => (r.prompt_tokens || 0) + (r.completion_tokens || 0)))),
        h('td', { class: 'num' }, fmt.usd(sum(rs, (r) => r.cost_usd)))))))) : null);
}
