// Routing configs: list, create and edit as JSON (the API validates and answers a 400 naming
// the field path, shown under the editor), delete (409 while a key uses it).

import { all, del, post, put } from './api.js';
import { errorBox, h, replace, table, toast } from './dom.js';
import * as fmt from './format.js';

const EXAMPLE = {
  strategy: { mode: 'fallback' },
  targets: [{ provider: '@primary' }, { provider: '@backup' }],
  retry: { attempts: 3, on_status_codes: [429, 500, 502, 503] },
};

function summary(config) {
  if (!config || typeof config !== 'object') return '—';
  const mode = config.strategy?.mode;
  const targets = Array.isArray(config.targets) ? config.targets.length : 0;
  if (mode) return `${mode}, ${targets} target${targets === 1 ? '' : 's'}`;
  return config.provider ? `single: ${config.provider}` : 'custom';
}

function editor(existing, onDone) {
  const error = errorBox();
  error.id = 'config-error';
  const id = h('input', { name: 'id', required: true, value: existing?.id || '', readonly: Boolean(existing), autocomplete: 'off' });
  const text = h('textarea', { name: 'config', rows: 14, spellcheck: 'false', 'aria-describedby': 'config-error' },
    JSON.stringify(existing ? existing.config : EXAMPLE, null, 2));
  const form = h('form', { class: 'panel', 'aria-label': existing ? `Edit config ${existing.id}` : 'New config', onsubmit: save },
    h('h2', {}, existing ? `Edit config ${existing.id}` : 'New config'),
    h('div', { class: 'form-grid' },
      h('label', {}, 'Id', id),
      h('label', { class: 'wide' }, 'Config (JSON, Portkey\'s routing config shape)', text)),
    error,
    h('div', { class: 'actions' },
      h('button', { class: 'primary', type: 'submit' }, existing ? 'Save' : 'Create config'),
      h('button', { type: 'button', onclick: () => onDone(false) }, 'Cancel')));

  async function save(event) {
    event.preventDefault();
    let config;
    try {
      config = JSON.parse(text.value);
    } catch (err) {
      error.textContent = `Not valid JSON: ${err.message}`;
      text.focus();
      return;
    }
    try {
      if (existing) await put(`/configs/${encodeURIComponent(existing.id)}`, { config });
      else await post('/configs', { id: id.value.trim(), config });
      toast(existing ? 'Config saved' : 'Config created');
      onDone(true);
    } catch (err) {
      error.textContent = err.param ? `${err.message}\nField: ${err.param}` : err.message;
      text.focus();
    }
  }
  return form;
}

export function configsPage(main) {
  const error = errorBox();
  const slot = h('div', {});
  const tbody = h('tbody', {});
  replace(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Configs'), h('span', { class: 'spacer' }),
      h('button', { class: 'primary', type: 'button', onclick: () => edit(null) }, 'New config')),
    slot, error,
    table('Routing configs', [{ label: 'Id' }, { label: 'Routing' }, { label: 'Source' }, { label: 'Created' },
      { label: 'Updated' }, { label: '' }], tbody));

  function edit(existing) {
    replace(slot, editor(existing, (changed) => {
      replace(slot);
      if (changed) load();
    }));
    slot.querySelector(existing ? 'textarea' : 'input')?.focus();
  }

  async function remove(c) {
    if (!confirm(`Delete config ${c.id}?`)) return;
    try {
      await del(`/configs/${encodeURIComponent(c.id)}`);
      toast('Config deleted');
      load();
    } catch (err) {
      error.textContent = err.message;
    }
  }

  async function load() {
    try {
      const list = await all('/configs');
      replace(tbody, list.length ? list.map((c) => h('tr', {},
        h('td', {}, h('strong', {}, c.id)),
        h('td', {}, summary(c.config)),
        h('td', {}, c.source || '—'),
        h('td', {}, fmt.shortDate(c.created_at)),
        h('td', {}, fmt.shortDate(c.updated_at)),
        h('td', { class: 'actions-cell' }, fmt.lockedBecause(c.source)
          ? h('span', { class: 'muted', title: fmt.lockedBecause(c.source) }, 'read-only')
          : [h('button', { type: 'button', class: 'small', onclick: () => edit(c), 'aria-label': `Edit ${c.id}` }, 'Edit'), ' ',
            h('button', { type: 'button', class: 'small danger', onclick: () => remove(c), 'aria-label': `Delete ${c.id}` }, 'Delete')])))
        : h('tr', {}, h('td', { class: 'empty', colspan: 6 }, 'No configs. A config sets fallback, load balancing, retries and timeouts.')));
    } catch (err) {
      error.textContent = err.message;
    }
  }
  load();
  return null;
}
