// Budgets and rate limits (docs/budgets.md): every one in force with its spend, from
// `GET /admin/v1/budgets`, one row per subject; named budgets (the catalog's `budgets:` list)
// created, changed and deleted here; and the budget and rate limit of a key or a provider,
// set through the key's and the provider's own objects (`PATCH /keys/{id}`,
// `PUT /providers/{slug}`), so there is one place to set every limit.

import { all, del, get, patch, post, put } from './api.js';
import { errorBox, h, replace, table, toast } from './dom.js';
import * as fmt from './format.js';
import { providerBody } from './providers.js';

const PERIODS = ['day', 'week', 'month'];
const POLL_MS = 5000;
// From this share of a limit on, the subject is "near" it.
const NEAR = 0.8;

/** `key:backend-service` → {kind: 'key', name: 'backend-service'} (a user may contain ':'). */
function splitSubject(subject) {
  const at = subject.indexOf(':');
  return at < 0 ? { kind: '', name: subject } : { kind: subject.slice(0, at), name: subject.slice(at + 1) };
}

/** The entries of the list grouped by subject, in the API's order: {subject, budget, rate}. */
function bySubject(entries) {
  const groups = new Map();
  for (const e of entries) {
    if (!groups.has(e.subject)) groups.set(e.subject, { subject: e.subject, budget: null, rate: null });
    groups.get(e.subject)[e.kind === 'rate_limit' ? 'rate' : 'budget'] = e;
  }
  return [...groups.values()];
}

function share(spent, limit) {
  return limit ? (spent ?? 0) / limit : 0;
}

/** One limit against its use: the figures, the share, a meter. */
function usage(entry, measure, spent, limit, label) {
  const part = share(spent, limit);
  const figures = measure === 'usd'
    ? `${fmt.usd(spent ?? 0)} of ${fmt.usd(limit)}`
    : `${fmt.int(spent ?? 0)} of ${fmt.int(limit)} ${measure}`;
  return h('div', { class: 'usage', dataset: { entry: entry.kind, measure } },
    h('div', { class: 'usage-head' },
      h('span', { class: 'figures' }, figures),
      h('span', { class: 'pct' }, `${Math.round(part * 100)}%`)),
    // The meter's regions colour it: green below NEAR, amber up to the limit, red at it.
    h('meter', { min: 0, max: 100, low: NEAR * 100, high: 99.99, optimum: 0, value: Math.min(100, part * 100), 'aria-label': label }));
}

function budgetCell(e, subject) {
  if (!e) return h('span', { class: 'muted' }, 'none');
  const held = [];
  if (e.cost_usd_reserved) held.push(fmt.usd(e.cost_usd_reserved));
  if (e.tokens_reserved) held.push(`${fmt.int(e.tokens_reserved)} tokens`);
  return [
    e.cost_usd_limit != null ? usage(e, 'usd', e.cost_usd_spent, e.cost_usd_limit, `USD spent by ${subject} this ${e.period}`) : null,
    e.tokens_limit != null ? usage(e, 'tokens', e.tokens_spent, e.tokens_limit, `Tokens used by ${subject} this ${e.period}`) : null,
    h('div', { class: 'period' }, `per ${e.period} · resets `,
      h('time', { datetime: e.resets_at, title: fmt.time(e.resets_at) }, fmt.utc(e.resets_at)),
      ` (${fmt.fromNow(e.resets_at)})`),
    held.length ? h('div', { class: 'period' }, `${held.join(' and ')} held by requests in flight`) : null,
  ];
}

function rateCell(e, subject) {
  if (!e) return h('span', { class: 'muted' }, 'none');
  return [
    e.requests_limit != null ? usage(e, 'requests', e.requests_spent, e.requests_limit, `Requests of ${subject} in the last minute`) : null,
    e.tokens_limit != null ? usage(e, 'tokens', e.tokens_spent, e.tokens_limit, `Tokens of ${subject} in the last minute`) : null,
    h('div', { class: 'period' }, 'per sliding minute · ', e.resets_at
      ? ['window empties ', h('time', { datetime: e.resets_at, title: fmt.time(e.resets_at) }, fmt.fromNow(e.resets_at))]
      : 'nothing in the last minute'),
  ];
}

/** Whether the subject would be refused now: its badge. */
function state(b, r) {
  const full = (spent, limit) => limit != null && (spent ?? 0) >= limit;
  if (b && (full(b.cost_usd_spent, b.cost_usd_limit) || full(b.tokens_spent, b.tokens_limit))) {
    return { cls: 's5', text: 'exhausted', title: `Requests are refused (412) until ${fmt.utc(b.resets_at)}.` };
  }
  if (r && (full(r.requests_spent, r.requests_limit) || full(r.tokens_spent, r.tokens_limit))) {
    return { cls: 's5', text: 'rate limited', title: 'Requests are refused (429) until the minute slides on.' };
  }
  const most = Math.max(
    b ? share(b.cost_usd_spent, b.cost_usd_limit) : 0, b ? share(b.tokens_spent, b.tokens_limit) : 0,
    r ? share(r.requests_spent, r.requests_limit) : 0, r ? share(r.tokens_spent, r.tokens_limit) : 0);
  if (most >= NEAR) return { cls: 's4', text: 'near limit', title: `${Math.round(most * 100)}% of a limit used.` };
  return { cls: 's2', text: 'ok', title: null };
}

/** `{"metadata.team": "backend"}` → `team=backend`. */
function matchText(match) {
  return Object.entries(match || {}).map(([k, v]) => `${k.replace(/^metadata\./, '')}=${v}`).join(', ');
}

/** `team=backend, env=prod` → `{"metadata.team": "backend", "metadata.env": "prod"}`; the API checks it. */
function parseMatch(text) {
  const out = {};
  for (const part of text.split(/[,\n]/).map((p) => p.trim()).filter(Boolean)) {
    const at = part.indexOf('=');
    const key = (at < 0 ? part : part.slice(0, at)).trim();
    out[key.startsWith('metadata.') ? key : `metadata.${key}`] = at < 0 ? '' : part.slice(at + 1).trim();
  }
  return out;
}

/** The budget and rate-limit fields, named by their paths in the API's body (`budget.period`). */
function limitFields(initial) {
  const b = initial?.budget || {};
  const r = initial?.rate_limit || {};
  // No min or integer step: the API checks the values and its message names the field.
  const number = (name, label, value) => h('label', {}, label,
    h('input', { name, type: 'number', step: 'any', value: value ?? '', placeholder: 'no limit', autocomplete: 'off' }));
  return [
    h('fieldset', {},
      h('legend', {}, 'Budget per UTC calendar period (412 once spent)'),
      h('div', { class: 'form-grid' },
        number('budget.cost_usd', 'USD', b.cost_usd),
        number('budget.tokens', 'Tokens', b.tokens),
        h('label', {}, 'Period', h('select', { name: 'budget.period' },
          PERIODS.map((p) => h('option', { value: p, selected: (b.period || 'month') === p }, p)))))),
    h('fieldset', {},
      h('legend', {}, 'Rate limit per sliding minute (429 when reached)'),
      h('div', { class: 'form-grid' },
        number('rate_limit.requests_per_minute', 'Requests per minute', r.requests_per_minute),
        number('rate_limit.tokens_per_minute', 'Tokens per minute', r.tokens_per_minute))),
  ];
}

/** The budget and rate limit the fields describe; null for one left empty. */
function readLimits(form) {
  const number = (name) => {
    const v = String(form.elements.namedItem(name).value).trim();
    return v === '' ? null : Number(v);
  };
  const [cost, tokens] = [number('budget.cost_usd'), number('budget.tokens')];
  const [rpm, tpm] = [number('rate_limit.requests_per_minute'), number('rate_limit.tokens_per_minute')];
  let budget = null;
  if (cost !== null || tokens !== null) {
    budget = {};
    if (cost !== null) budget.cost_usd = cost;
    if (tokens !== null) budget.tokens = tokens;
    budget.period = form.elements.namedItem('budget.period').value;
  }
  let rateLimit = null;
  if (rpm !== null || tpm !== null) {
    rateLimit = {};
    if (rpm !== null) rateLimit.requests_per_minute = rpm;
    if (tpm !== null) rateLimit.tokens_per_minute = tpm;
  }
  return { budget, rate_limit: rateLimit };
}

/** The control a 400's `param` names: `budget.tokens`; `match.team` → match; `budget` → its first field. */
function fieldFor(form, param) {
  if (!param) return null;
  const controls = [...form.querySelectorAll('input[name], select[name], textarea[name]')];
  return controls.find((c) => c.name === param)
    || controls.find((c) => param.startsWith(`${c.name}.`))
    || controls.find((c) => c.name.startsWith(`${param}.`) && !c.readOnly)
    || null;
}

/** The API's message under the form, and the field it names marked and focused. */
function showError(form, box, err) {
  box.textContent = err.param ? `${err.message}\nField: ${err.param}` : err.message;
  const field = fieldFor(form, err.param);
  if (field) {
    field.setAttribute('aria-invalid', 'true');
    field.focus();
  }
}

function clearError(form, box) {
  box.textContent = '';
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
}

/** Create (`existing` null) or change a named budget. */
function budgetEditor(existing, onDone) {
  const error = errorBox();
  error.id = 'budget-error';
  const title = existing ? `Edit budget ${existing.name}` : 'New budget';
  const form = h('form', { class: 'panel', 'aria-label': title, onsubmit: save },
    h('h2', {}, title),
    h('div', { class: 'form-grid' },
      h('label', {}, 'Name', h('input', {
        name: 'name', required: true, value: existing?.name || '', readonly: Boolean(existing),
        placeholder: 'team-backend', autocomplete: 'off',
      })),
      h('label', { class: 'span2' }, 'Metadata to match (key=value, comma-separated)',
        h('input', { name: 'match', value: matchText(existing?.match), placeholder: 'team=backend, env=prod', autocomplete: 'off' }))),
    limitFields(existing),
    error,
    h('div', { class: 'actions' },
      h('button', { class: 'primary', type: 'submit' }, existing ? 'Save' : 'Create budget'),
      h('button', { type: 'button', onclick: () => onDone(false) }, 'Cancel'),
      h('span', { class: 'muted' }, 'A limit left empty is not set. Changing a budget keeps its spend.')));

  async function save(event) {
    event.preventDefault();
    clearError(form, error);
    const { budget, rate_limit: rateLimit } = readLimits(form);
    const body = { match: parseMatch(String(form.elements.namedItem('match').value)) };
    if (budget) body.budget = budget;
    if (rateLimit) body.rate_limit = rateLimit;
    try {
      if (existing) await put(`/budgets/${encodeURIComponent(existing.name)}`, body);
      else await post('/budgets', { name: String(form.elements.namedItem('name').value).trim(), ...body });
      toast(existing ? 'Budget saved' : 'Budget created');
      onDone(true);
    } catch (err) {
      showError(form, error, err);
    }
  }
  return form;
}

/** The keys and providers whose limits can be changed here (created through the API). */
function targetsOf(keys, providers) {
  const targets = [];
  for (const k of [...keys].sort((a, b) => a.name.localeCompare(b.name))) {
    if (k.revoked_at || fmt.lockedBecause(k.source) || (k.type !== 'service' && k.type !== 'user')) continue;
    targets.push({ id: `key:${k.name}`, type: 'key', record: k, label: k.type === 'user' ? `${k.name} (user ${k.user})` : k.name });
  }
  for (const p of [...providers].sort((a, b) => a.slug.localeCompare(b.slug))) {
    if (fmt.lockedBecause(p.source)) continue;
    targets.push({ id: `provider:${p.slug}`, type: 'provider', record: p, label: `@${p.slug}` });
  }
  return targets;
}

/** Set or change the budget and rate limit of a key or a provider. */
function limitsEditor(targets, selected, onDone) {
  const error = errorBox();
  error.id = 'limits-error';
  const group = (type, label) => {
    const list = targets.filter((t) => t.type === type);
    return list.length ? h('optgroup', { label }, list.map((t) => h('option', { value: t.id, selected: t.id === selected }, t.label))) : null;
  };
  const select = h('select', { name: 'target', onchange: fill }, group('key', 'Keys'), group('provider', 'Providers'));
  const note = h('p', { class: 'muted' });
  const fields = h('div', {});
  const form = h('form', { class: 'panel', 'aria-label': 'Limits of a key or provider', onsubmit: save },
    h('h2', {}, 'Limits of a key or provider'),
    h('div', { class: 'form-grid' }, h('label', {}, 'Key or provider', select)),
    note, fields, error,
    h('div', { class: 'actions' },
      h('button', { class: 'primary', type: 'submit' }, 'Save limits'),
      h('button', { type: 'button', onclick: () => onDone(false) }, 'Cancel'),
      h('span', { class: 'muted' }, 'Leave both limits empty to remove them; the spend is kept.')));

  const current = () => targets.find((t) => t.id === select.value) || targets[0];
  function fill() {
    const t = current();
    clearError(form, error);
    replace(fields, limitFields(t.record));
    note.textContent = t.type === 'provider'
      ? `Every attempt sent to @${t.record.slug} counts, from any key (subject provider:${t.record.slug}).`
      : t.record.type === 'user'
        ? `A user key's limits are its user's: every key of ${t.record.user} counts against them (subject user:${t.record.user}).`
        : `Every request made with the key counts (subject key:${t.record.name}).`;
  }
  fill();

  async function save(event) {
    event.preventDefault();
    clearError(form, error);
    const t = current();
    const limits = readLimits(form);
    try {
      if (t.type === 'key') {
        // null removes a limit; PATCH leaves the key's other fields as they are.
        await patch(`/keys/${encodeURIComponent(t.record.id)}`, limits);
      } else {
        // PUT replaces the provider: send it back as it is now, with the new limits.
        const slug = encodeURIComponent(t.record.slug);
        const body = providerBody(await get(`/providers/${slug}`));
        delete body.budget;
        delete body.rate_limit;
        if (limits.budget) body.budget = limits.budget;
        if (limits.rate_limit) body.rate_limit = limits.rate_limit;
        await put(`/providers/${slug}`, body);
      }
      toast('Limits saved');
      onDone(true);
    } catch (err) {
      showError(form, error, err);
    }
  }
  return form;
}

export function budgetsPage(main, route) {
  const error = errorBox();
  const slot = h('div', {});
  const summary = h('p', { class: 'muted', id: 'budgets-summary' });
  const tbody = h('tbody', {});
  let keys = [];
  let providers = [];
  let named = new Map();
  let shown = null;
  // The rows on screen by subject: {sig, el}.
  let rows = new Map();
  let stopped = false;
  replace(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Budgets'), h('span', { class: 'spacer' }),
      h('button', { type: 'button', onclick: () => editLimits(null) }, 'Limit a key or provider'),
      h('button', { class: 'primary', type: 'button', onclick: () => editBudget(null) }, 'New budget')),
    h('p', { class: 'muted intro' },
      'A budget caps what a subject spends per UTC calendar period; a rate limit caps its requests and tokens per ',
      'sliding minute. A request counts against its key (or its user), every named budget its metadata matches, ',
      'and the provider of each attempt.'),
    slot, error, summary,
    table('Budgets and rate limits in force', [{ label: 'Subject' }, { label: 'Budget' }, { label: 'Rate limit' },
      { label: 'Status' }, { label: 'Source' }, { label: '' }], tbody));

  /** Where a subject's limits are declared: {type, record, source, via}. */
  function ownerOf(subject) {
    const { kind, name } = splitSubject(subject);
    if (kind === 'key') {
      const k = keys.find((x) => x.name === name && !x.revoked_at);
      return k ? { type: 'key', record: k, source: k.source } : null;
    }
    if (kind === 'user') {
      // The user's limits come from their user key; of two, the one whose name sorts first.
      const k = keys.filter((x) => x.type === 'user' && x.user === name && !x.revoked_at && (x.budget || x.rate_limit))
        .sort((a, b) => a.name.localeCompare(b.name))[0];
      return k ? { type: 'key', record: k, source: k.source, via: k.name } : { type: 'jwt', source: 'file' };
    }
    if (kind === 'provider') {
      const p = providers.find((x) => x.slug === name);
      return p ? { type: 'provider', record: p, source: p.source } : null;
    }
    if (kind === 'budget') {
      const b = named.get(name);
      return b ? { type: 'budget', record: b, source: b.source } : null;
    }
    return null;
  }

  function actions(subject, owner) {
    const locked = owner ? fmt.lockedBecause(owner.source) : 'not in the catalog';
    if (locked) return h('span', { class: 'muted', title: locked }, 'read-only');
    if (owner.type === 'budget') {
      return [
        h('button', { type: 'button', class: 'small', onclick: () => editBudget(owner.record), 'aria-label': `Edit ${subject}` }, 'Edit'), ' ',
        h('button', { type: 'button', class: 'small danger', onclick: () => remove(owner.record.name), 'aria-label': `Delete ${subject}` }, 'Delete'),
      ];
    }
    const target = owner.type === 'key' ? `key:${owner.record.name}` : `provider:${owner.record.slug}`;
    return h('button', { type: 'button', class: 'small', onclick: () => editLimits(target), 'aria-label': `Edit ${subject}` }, 'Edit');
  }

  function row(g) {
    const { kind, name } = splitSubject(g.subject);
    const owner = ownerOf(g.subject);
    const st = state(g.budget, g.rate);
    let detail = null;
    if (owner?.type === 'budget') {
      detail = Object.entries(owner.record.match || {}).map(([k, v]) => h('span', { class: 'chip' }, `${k}=${v}`));
    } else if (owner?.via) {
      detail = `set on user key ${owner.via}`;
    } else if (owner?.type === 'jwt') {
      detail = 'a JWT user (auth.jwt.budget)';
    }
    return h('tr', { class: st.cls === 's5' ? 'refusing' : null, dataset: { subject: g.subject } },
      h('td', { class: 'subject' },
        h('span', { class: 'chip kind' }, kind), h('strong', {}, name),
        detail ? h('div', { class: 'detail' }, detail) : null),
      h('td', { class: 'usage-cell budget' }, budgetCell(g.budget, g.subject)),
      h('td', { class: 'usage-cell rate' }, rateCell(g.rate, g.subject)),
      h('td', { class: 'state' }, h('span', { class: `badge ${st.cls}`, title: st.title }, st.text)),
      h('td', { title: owner ? fmt.lockedBecause(owner.source) : null }, owner?.type === 'jwt' ? 'auth' : owner?.source || '—'),
      h('td', { class: 'actions-cell' }, actions(g.subject, owner)));
  }

  function show(entries) {
    const groups = bySubject(entries);
    const states = groups.map((g) => state(g.budget, g.rate).text);
    const counts = ['exhausted', 'rate limited', 'near limit']
      .map((t) => [t, states.filter((x) => x === t).length])
      .filter(([, n]) => n > 0)
      .map(([t, n]) => `${n} ${t}`);
    summary.textContent = groups.length
      ? [`${groups.length} subject${groups.length === 1 ? '' : 's'} with limits`, ...counts].join(' · ')
      : '';
    if (!groups.length) {
      rows.clear();
      replace(tbody, h('tr', {}, h('td', { class: 'empty', colspan: 6 },
        'No budget or rate limit is in force. Limit a key or a provider, or create a named budget for requests with given metadata.')));
      return;
    }
    // A row whose subject, figures and owner are unchanged stays the same node (its focus too);
    // only the others are built again.
    const next = new Map();
    const els = groups.map((g) => {
      const sig = JSON.stringify([g, ownerOf(g.subject)]);
      const old = rows.get(g.subject);
      const el = old && old.sig === sig ? old.el : row(g);
      next.set(g.subject, { sig, el });
      return el;
    });
    rows = next;
    els.forEach((el, i) => {
      if (tbody.children[i] !== el) tbody.insertBefore(el, tbody.children[i] || null);
    });
    while (tbody.children.length > els.length) tbody.lastElementChild.remove();
  }

  async function load() {
    try {
      const [entries, ks, ps] = await Promise.all([all('/budgets'), all('/keys').catch(() => []), all('/providers').catch(() => [])]);
      const names = [...new Set(entries.map((e) => splitSubject(e.subject)).filter((s) => s.kind === 'budget').map((s) => s.name))];
      const records = await Promise.all(names.map((n) => get(`/budgets/${encodeURIComponent(n)}`).catch(() => null)));
      if (stopped) return;
      error.textContent = '';
      // Re-rendered only when something changed, so a poll does not pull a row from under a click.
      const seen = JSON.stringify([entries, ks, ps, records]);
      if (seen === shown) return;
      shown = seen;
      keys = ks;
      providers = ps;
      named = new Map(records.filter(Boolean).map((r) => [r.name, r]));
      show(entries);
    } catch (err) {
      if (!stopped) error.textContent = err.message;
    }
  }

  function done(changed) {
    replace(slot);
    if (changed) load();
  }

  function editBudget(existing) {
    replace(slot, budgetEditor(existing, done));
    slot.querySelector(existing ? 'input[name=match]' : 'input[name=name]')?.focus();
  }

  async function editLimits(target) {
    await ready;
    const targets = targetsOf(keys, providers);
    if (!targets.length) {
      replace(slot, h('p', { class: 'notice' },
        'No key or provider here can be changed: those of the catalog file are changed in the file. ',
        'Create one on the Keys or Providers page.'));
      return;
    }
    replace(slot, limitsEditor(targets, target, done));
    slot.querySelector('select')?.focus();
  }

  async function remove(name) {
    if (!confirm(`Delete budget ${name}? Its spend is kept, and comes back if a budget of that name is created again.`)) return;
    try {
      await del(`/budgets/${encodeURIComponent(name)}`);
      toast('Budget deleted');
      replace(slot);
      load();
    } catch (err) {
      error.textContent = err.message;
    }
  }

  const ready = load();
  // `#/budgets?key=<name>` and `?provider=<slug>` (the Keys and Providers pages link here).
  const wanted = route.params.get('key') ? `key:${route.params.get('key')}`
    : route.params.get('provider') ? `provider:${route.params.get('provider')}` : null;
  if (wanted) ready.then(() => { if (!stopped) editLimits(wanted); });
  // Spend moves while the page is open; a hidden tab does not ask.
  const timer = setInterval(() => {
    if (!document.hidden) load();
  }, POLL_MS);
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
