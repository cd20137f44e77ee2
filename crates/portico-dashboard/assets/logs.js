// The log table: filters (mirrored in the URL), cursor paging ("Load more"), and live
// updates that poll for newer entries every two seconds while the list is scrolled to the top.
// Only one page of rows is fetched at a time, so 100,000 logged requests cost the same as ten.

import { get, query } from './api.js';
import { errorBox, h, replace, table } from './dom.js';
import * as fmt from './format.js';

const PAGE = 50;
const POLL_MS = 2000;
const FIELDS = ['trace_id', 'key', 'user', 'provider', 'model', 'status', 'from', 'to', 'q'];

const COLUMNS = [
  { label: 'Time' }, { label: 'Status' }, { label: 'Provider' }, { label: 'Model' }, { label: 'Key' },
  { label: 'User' }, { label: 'Latency', num: true }, { label: 'Tokens', num: true }, { label: 'Cost', num: true },
  { label: 'Trace id' },
];

/** The API filters in the page's URL: the named fields and every `metadata.<key>`. */
export function filtersFrom(params) {
  const filters = {};
  for (const [k, v] of params) {
    if (v && (FIELDS.includes(k) || (k.startsWith('metadata.') && k.length > 9))) filters[k] = v;
  }
  return filters;
}

/** `#/logs?…` for these filters. */
export function logsHref(filters) {
  return `#/logs${query(filters)}`;
}

// datetime-local inputs speak local time without a zone; the URL and the API speak UTC.
function toLocalInput(iso) {
  const d = new Date(/^\d+$/.test(iso) ? Number(iso) : iso);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function fromLocalInput(value) {
  if (!value) return '';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

function metadataText(filters) {
  return Object.entries(filters)
    .filter(([k]) => k.startsWith('metadata.'))
    .map(([k, v]) => `${k.slice(9)}=${v}`)
    .join(', ');
}

/** `team=search, env=prod` → {'metadata.team': 'search', ...}; null naming the bad part. */
function parseMetadata(text) {
  const out = {};
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) return { error: `"${part}" is not key=value` };
    out[`metadata.${part.slice(0, eq).trim()}`] = part.slice(eq + 1).trim();
  }
  return { out };
}

function filterForm(filters, error) {
  const input = (name, label, attrs = {}) => h('label', {},
    label, h('input', { name, value: filters[name] || '', autocomplete: 'off', spellcheck: 'false', ...attrs }));
  const status = h('input', { name: 'status', list: 'status-options', value: filters.status || '', placeholder: 'any', autocomplete: 'off' });
  const form = h('form', { class: 'form-grid', 'aria-label': 'Log filters', onsubmit: apply },
    input('trace_id', 'Trace id', { placeholder: 'exact' }),
    input('metadata', 'Metadata', { value: metadataText(filters), placeholder: 'team=search, env=prod' }),
    input('q', 'Search', { type: 'search', placeholder: 'id, model, error, metadata…' }),
    input('key', 'Key name'),
    input('user', 'User'),
    input('provider', 'Provider', { placeholder: 'slug' }),
    input('model', 'Model'),
    h('label', {}, 'Status', status,
      h('datalist', { id: 'status-options' }, ['2xx', '4xx', '5xx', '200', '400', '401', '429', '500', '502'].map((v) => h('option', { value: v })))),
    h('label', {}, 'From', h('input', { type: 'datetime-local', name: 'from', value: filters.from ? toLocalInput(filters.from) : '' })),
    h('label', {}, 'To', h('input', { type: 'datetime-local', name: 'to', value: filters.to ? toLocalInput(filters.to) : '' })),
    h('div', { class: 'actions' },
      h('button', { class: 'primary', type: 'submit' }, 'Apply'),
      h('a', { class: 'button', href: '#/logs' }, 'Clear')));

  function apply(event) {
    event.preventDefault();
    const data = new FormData(form);
    const next = {};
    for (const name of ['trace_id', 'q', 'key', 'user', 'provider', 'model', 'status']) {
      const v = String(data.get(name) || '').trim();
      if (v) next[name] = v;
    }
    for (const name of ['from', 'to']) {
      const v = fromLocalInput(String(data.get(name) || ''));
      if (v) next[name] = v;
    }
    const meta = parseMetadata(String(data.get('metadata') || ''));
    if (meta.error) {
      error.textContent = `Metadata: ${meta.error}; write key=value pairs separated by commas.`;
      return;
    }
    Object.assign(next, meta.out);
    location.hash = logsHref(next);
  }
  return form;
}

function tokens(e) {
  if (e.prompt_tokens == null && e.completion_tokens == null) return '—';
  return fmt.int((e.prompt_tokens || 0) + (e.completion_tokens || 0));
}

/** One table row; the time is the link to the detail, the trace id filters by it. */
export function logRow(e, fresh) {
  const href = `#/logs/${encodeURIComponent(e.id)}`;
  const tr = h('tr', { class: fresh ? 'clickable fresh' : 'clickable', dataset: { id: e.id } },
    h('td', {}, h('a', { href, title: e.created_at }, fmt.shortDate(e.created_at))),
    h('td', {}, h('span', { class: `badge ${fmt.statusClass(e.status)}` }, e.status ?? '—')),
    h('td', {}, e.provider || '—'),
    h('td', {}, e.model || '—'),
    h('td', {}, e.key_name || '—'),
    h('td', {}, e.user || '—'),
    h('td', { class: 'num' }, fmt.ms(e.latency_ms)),
    h('td', { class: 'num', title: `prompt ${e.prompt_tokens ?? '—'}, completion ${e.completion_tokens ?? '—'}` }, tokens(e)),
    h('td', { class: 'num' }, fmt.usd(e.cost_usd)),
    h('td', { class: 'mono' }, e.trace_id
      ? h('a', { href: logsHref({ trace_id: e.trace_id }), title: 'Show this trace' }, e.trace_id)
      : '—'));
  return tr;
}

export function logsPage(main, route) {
  const filters = filtersFrom(route.params);
  const error = errorBox();
  const tbody = h('tbody', {
    onclick: (event) => {
      if (event.target.closest('a')) return;
      const tr = event.target.closest('tr[data-id]');
      if (tr) location.hash = `#/logs/${encodeURIComponent(tr.dataset.id)}`;
    },
  });
  const count = h('span', { class: 'muted' });
  const more = h('button', { type: 'button', onclick: loadMore, hidden: true }, 'Load more');
  const liveDot = h('span', { class: 'dot', 'aria-hidden': 'true' });
  const liveText = h('span', { class: 'muted', 'aria-live': 'off' });
  const liveButton = h('button', { type: 'button', 'aria-pressed': 'true', onclick: toggleLive }, 'Live');
  const active = Object.keys(filters).length;

  let cursor = null;
  let newest = null;
  let shown = 0;
  const seen = new Set();
  let paused = false;
  let timer = null;
  let stopped = false;
  let inFlight = false;

  replace(main,
    h('div', { class: 'page-head' },
      h('h1', {}, 'Logs'), count, h('span', { class: 'spacer' }),
      h('div', { class: 'live' }, liveDot, liveText, liveButton)),
    // Open on wide screens, or when a filter is set; on a phone the table comes first.
    h('details', { class: 'panel filters', open: active > 0 || window.innerWidth > 640 },
      h('summary', {}, active ? `Filters (${active})` : 'Filters'),
      filterForm(filters, error)),
    error,
    table('Logged requests, newest first', COLUMNS, tbody),
    h('div', { class: 'table-foot' }, more));

  function setCount() {
    count.textContent = shown ? `${fmt.int(shown)} shown${cursor ? ', more below' : ''}` : '';
  }

  function add(entries, where) {
    const frag = document.createDocumentFragment();
    for (const e of entries) {
      if (seen.has(e.id)) continue;
      seen.add(e.id);
      frag.appendChild(logRow(e, where === 'top'));
      shown += 1;
    }
    if (where === 'top') tbody.insertBefore(frag, tbody.firstChild);
    else tbody.appendChild(frag);
    if (entries.length && (!newest || entries[0].created_at > newest)) newest = entries[0].created_at;
  }

  function showEmpty() {
    if (!shown) {
      replace(tbody, h('tr', {}, h('td', { class: 'empty', colspan: COLUMNS.length },
        active ? 'No request matches these filters.' : 'No requests logged yet. Send one to /v1/chat/completions and it shows up here.')));
    }
  }

  async function firstPage() {
    try {
      const page = await get(`/logs${query({ ...filters, limit: PAGE })}`);
      if (stopped) return;
      replace(tbody);
      seen.clear();
      shown = 0;
      newest = null;
      add(page.data || [], 'bottom');
      cursor = page.next_cursor;
      more.hidden = !cursor;
      showEmpty();
      setCount();
      error.textContent = '';
    } catch (err) {
      error.textContent = err.message;
    }
  }

  async function loadMore() {
    if (!cursor) return;
    more.disabled = true;
    try {
      const page = await get(`/logs${query({ ...filters, limit: PAGE, cursor })}`);
      if (stopped) return;
      add(page.data || [], 'bottom');
      cursor = page.next_cursor;
      more.hidden = !cursor;
      setCount();
    } catch (err) {
      error.textContent = err.message;
    } finally {
      more.disabled = false;
    }
  }

  // Newer entries than the top row: `from` is inclusive, so the top row comes back and is
  // skipped by id. A full page means more arrived than one poll takes: start over instead of
  // leaving a gap.
  async function poll() {
    if (stopped || paused || inFlight || document.hidden) return;
    if (window.scrollY > 120) {
      liveText.textContent = 'scroll to the top for new entries';
      return;
    }
    inFlight = true;
    try {
      if (!newest) {
        await firstPage();
      } else {
        let from = newest;
        if (filters.from && new Date(filters.from) > new Date(newest)) from = filters.from;
        const page = await get(`/logs${query({ ...filters, from, limit: PAGE })}`);
        // Paused while this poll was out: the list stays as the user froze it.
        if (stopped || paused) return;
        const data = page.data || [];
        if (data.length >= PAGE && data.every((e) => !seen.has(e.id))) {
          await firstPage();
        } else if (data.length) {
          if (!shown) replace(tbody);
          add(data, 'top');
          setCount();
        }
      }
      liveText.textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      liveText.textContent = `update failed: ${err.message}`;
    } finally {
      inFlight = false;
    }
  }

  function toggleLive() {
    paused = !paused;
    liveButton.setAttribute('aria-pressed', String(!paused));
    liveButton.textContent = paused ? 'Paused' : 'Live';
    liveDot.classList.toggle('on', !paused);
    liveText.textContent = paused ? 'live updates paused' : '';
    if (!paused) poll();
  }

  liveDot.classList.add('on');
  firstPage();
  timer = setInterval(poll, POLL_MS);
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
