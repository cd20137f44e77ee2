// Providers: the catalog's upstream integrations. List, add, edit (an empty API key keeps the
// stored one) and delete. API keys are write-only: the list shows whether one is set. A
// provider's budget and rate limit are shown here and set on the Budgets page; an edit here
// keeps them.

import { all, del, post, put } from './api.js';
import { errorBox, h, replace, table, toast } from './dom.js';
import * as fmt from './format.js';

const KINDS = ['openai', 'openai-compatible', 'anthropic', 'gemini', 'bedrock', 'azure-openai', 'mistral',
  'groq', 'deepseek', 'together', 'ollama', 'mock'];
// Fields of the answer that are not kind fields; `settings` holds the kind fields' values.
const KNOWN = new Set(['slug', 'kind', 'base_url', 'api_key', 'api_key_set', 'credentials_set', 'settings', 'models',
  'budget', 'rate_limit', 'source', 'created_at', 'updated_at']);
// A mock's settings, stored with the kind fields but written under `mock:` in the file.
const MOCK_FIELDS = ['latency_ms', 'chunk_delay_ms', 'failure_rate'];

/** `v` without its null fields, at every depth (the file has no nulls). */
function withoutNulls(v) {
  if (Array.isArray(v)) return v.map(withoutNulls);
  if (typeof v !== 'object' || v === null) return v;
  return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null && x !== undefined)
    .map(([k, x]) => [k, withoutNulls(x)]));
}

/** An allow-list entry as the catalog file would write it: a bare id unless it has more. */
function compactModel(m) {
  if (typeof m !== 'object' || m === null) return m;
  const out = withoutNulls(m);
  return Object.keys(out).length === 1 && 'id' in out ? out.id : out;
}

/** A provider's kind fields as the catalog file writes them: its settings, a mock's under `mock`. */
function kindFields(p) {
  const fields = p && p.settings && typeof p.settings === 'object' ? { ...p.settings } : {};
  if (p && p.kind === 'mock') {
    const mock = {};
    for (const name of MOCK_FIELDS) {
      if (name in fields) {
        mock[name] = fields[name];
        delete fields[name];
      }
    }
    if (Object.keys(mock).length) fields.mock = mock;
  }
  return fields;
}

/**
 * The body of `PUT /providers/{slug}` that leaves the provider `p` (an answer of the API) as
 * it is: the API keeps the stored API key and credentials when they are left out.
 */
export function providerBody(p) {
  const body = { slug: p.slug, kind: p.kind, ...kindFields(p) };
  if (p.base_url) body.base_url = p.base_url;
  if (Array.isArray(p.models)) body.models = p.models.map(compactModel);
  if (p.budget) body.budget = p.budget;
  if (p.rate_limit) body.rate_limit = p.rate_limit;
  return body;
}

function modelsText(models) {
  if (!Array.isArray(models)) return '';
  const list = models.map(compactModel);
  if (list.every((m) => typeof m === 'string')) return list.join('\n');
  return JSON.stringify(list, null, 2);
}

/** The allow-list textarea: one model per line, or a JSON array for names and prices. */
function parseModels(text) {
  const t = text.trim();
  if (!t) return { value: null };
  if (t.startsWith('[')) {
    try {
      return { value: JSON.parse(t) };
    } catch (err) {
      return { error: `Models: not a JSON array (${err.message}).` };
    }
  }
  return { value: t.split(/[\n,]/).map((m) => m.trim()).filter(Boolean) };
}

function editor(existing, onDone) {
  const error = errorBox();
  const extra = kindFields(existing);
  if (existing) for (const [k, v] of Object.entries(existing)) if (!KNOWN.has(k) && v !== null) extra[k] = v;
  const secrets = Array.isArray(existing?.credentials_set) ? existing.credentials_set : [];
  const form = h('form', { class: 'panel', 'aria-label': existing ? `Edit provider ${existing.slug}` : 'Add a provider', onsubmit: save },
    h('h2', {}, existing ? `Edit @${existing.slug}` : 'Add a provider'),
    h('div', { class: 'form-grid' },
      h('label', {}, 'Slug', h('input', { name: 'slug', required: true, value: existing?.slug || '', readonly: Boolean(existing), pattern: '[a-z0-9][a-z0-9_-]*', autocomplete: 'off' })),
      h('label', {}, 'Kind', h('select', { name: 'kind' }, KINDS.map((k) => h('option', { value: k, selected: existing?.kind === k }, k)))),
      h('label', {}, 'Base URL', h('input', { name: 'base_url', type: 'url', value: existing?.base_url || '', placeholder: 'the kind\'s default' })),
      h('label', {}, existing?.api_key_set ? 'API key (empty keeps the stored one)' : 'API key',
        h('input', { name: 'api_key', type: 'password', autocomplete: 'new-password' })),
      h('label', { class: 'wide' }, 'Models (one per line; empty allows any; or a JSON array with names and pricing)',
        h('textarea', { name: 'models', rows: 3 }, modelsText(existing?.models))),
      h('label', { class: 'wide' }, 'Kind fields (JSON object, e.g. {"aws_region": "us-east-1"})',
        h('textarea', { name: 'extra', rows: 2 }, Object.keys(extra).length ? JSON.stringify(extra, null, 2) : '')),
      secrets.length ? h('p', { class: 'wide muted' }, `Stored secret fields: ${secrets.join(', ')} (kept unless given again).`) : null),
    error,
    h('div', { class: 'actions' },
      h('button', { class: 'primary', type: 'submit' }, existing ? 'Save' : 'Add provider'),
      h('button', { type: 'button', onclick: () => onDone(false) }, 'Cancel')));

  async function save(event) {
    event.preventDefault();
    const data = new FormData(form);
    const body = { slug: String(data.get('slug')).trim(), kind: data.get('kind') };
    // Not on this form: an edit keeps them (PUT replaces the whole provider).
    if (existing?.budget) body.budget = existing.budget;
    if (existing?.rate_limit) body.rate_limit = existing.rate_limit;
    const baseUrl = String(data.get('base_url') || '').trim();
    if (baseUrl) body.base_url = baseUrl;
    const apiKey = String(data.get('api_key') || '');
    if (apiKey) body.api_key = apiKey;
    const models = parseModels(String(data.get('models') || ''));
    if (models.error) { error.textContent = models.error; return; }
    if (models.value) body.models = models.value;
    const extraText = String(data.get('extra') || '').trim();
    if (extraText) {
      try {
        Object.assign(body, JSON.parse(extraText));
      } catch (err) {
        error.textContent = `Kind fields: not a JSON object (${err.message}).`;
        return;
      }
    }
    try {
      if (existing) await put(`/providers/${encodeURIComponent(existing.slug)}`, body);
      else await post('/providers', body);
      toast(existing ? 'Provider saved' : 'Provider added');
      onDone(true);
    } catch (err) {
      error.textContent = err.param ? `${err.message} (field: ${err.param})` : err.message;
    }
  }
  return form;
}

/** The budget and rate limit of a provider, linking to where they are set. */
function limitsCell(p) {
  const summary = fmt.limitsSummary(p.budget, p.rate_limit);
  if (!summary) return h('span', { class: 'muted' }, 'none');
  if (fmt.lockedBecause(p.source)) return summary;
  return h('a', { href: `#/budgets?provider=${encodeURIComponent(p.slug)}`, title: 'Change on the Budgets page' }, summary);
}

export function providersPage(main) {
  const error = errorBox();
  const slot = h('div', {});
  const tbody = h('tbody', {});
  const addButton = h('button', { class: 'primary', type: 'button', onclick: () => edit(null) }, 'Add provider');
  replace(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Providers'), h('span', { class: 'spacer' }), addButton),
    slot, error,
    table('Providers', [{ label: 'Slug' }, { label: 'Kind' }, { label: 'Base URL' }, { label: 'API key' },
      { label: 'Models' }, { label: 'Limits' }, { label: 'Source' }, { label: 'Updated' }, { label: '' }], tbody));

  function edit(existing) {
    replace(slot, editor(existing, (changed) => {
      replace(slot);
      if (changed) load();
    }));
    slot.querySelector('input:not([readonly]), select')?.focus();
  }

  async function remove(p) {
    if (!confirm(`Delete provider @${p.slug}? Requests to it fail from now on.`)) return;
    try {
      await del(`/providers/${encodeURIComponent(p.slug)}`);
      toast('Provider deleted');
      load();
    } catch (err) {
      error.textContent = err.message;
    }
  }

  async function load() {
    try {
      const list = await all('/providers');
      error.textContent = '';
      replace(tbody, list.length ? list.map((p) => h('tr', {},
        h('td', {}, h('strong', {}, `@${p.slug}`)),
        h('td', {}, p.kind),
        h('td', { class: 'mono' }, p.base_url || 'default'),
        h('td', {}, p.api_key_set ? 'set' : h('span', { class: 'muted' }, 'not set')),
        h('td', { class: 'wrap' }, Array.isArray(p.models) ? p.models.map((m) => h('span', { class: 'chip' }, typeof m === 'string' ? m : m.id)) : h('span', { class: 'muted' }, 'any')),
        h('td', { class: 'limits' }, limitsCell(p)),
        h('td', {}, p.source || '—'),
        h('td', {}, fmt.shortDate(p.updated_at)),
        h('td', { class: 'actions-cell' }, fmt.lockedBecause(p.source)
          ? h('span', { class: 'muted', title: fmt.lockedBecause(p.source) }, 'read-only')
          : [h('button', { type: 'button', class: 'small', onclick: () => edit(p), 'aria-label': `Edit @${p.slug}` }, 'Edit'), ' ',
            h('button', { type: 'button', class: 'small danger', onclick: () => remove(p), 'aria-label': `Delete @${p.slug}` }, 'Delete')])))
        : h('tr', {}, h('td', { class: 'empty', colspan: 9 }, 'No providers yet.')));
    } catch (err) {
      error.textContent = err.message;
    }
  }
  load();
  return null;
}
