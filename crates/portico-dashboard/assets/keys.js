// Gateway keys: list, create and rotate (the secret is shown once, right here, then dropped
// from the page), revoke, attach or detach a routing config, payload logging on or off, and
// each key's expiry (an expired key is marked; the gateway refuses it from that time on).
// A key's budget and rate limit are shown here and set on the Budgets page.

import { all, del, patch, post } from './api.js';
import { copyButton, errorBox, h, replace, table, toast } from './dom.js';
import * as fmt from './format.js';

function configSelect(configs, selected, attrs) {
  return h('select', attrs,
    h('option', { value: '' }, 'no config'),
    configs.map((c) => h('option', { value: c.id, selected: c.id === selected }, c.id)));
}

function createForm(configs, onCreated, onCancel) {
  const error = errorBox();
  const form = h('form', { class: 'panel', 'aria-label': 'Create a key', onsubmit: create },
    h('h2', {}, 'Create a key'),
    h('div', { class: 'form-grid' },
      h('label', {}, 'Name', h('input', { name: 'name', required: true, autocomplete: 'off' })),
      h('label', {}, 'Type', h('select', { name: 'type' }, ['service', 'user', 'gateway'].map((t) => h('option', { value: t }, t)))),
      h('label', {}, 'User (for user keys)', h('input', { name: 'user', autocomplete: 'off' })),
      h('label', {}, 'Allowed models (comma-separated; empty: all)', h('input', { name: 'allowed_models', placeholder: '@openai/gpt-4o-mini', autocomplete: 'off' })),
      h('label', {}, 'Config', configSelect(configs, null, { name: 'config' })),
      h('label', {}, 'Expires (empty: never)', h('input', { name: 'expires_at', type: 'datetime-local' })),
      h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'log_payloads', checked: true }), 'Log payloads')),
    error,
    h('div', { class: 'actions' },
      h('button', { class: 'primary', type: 'submit' }, 'Create key'),
      h('button', { type: 'button', onclick: onCancel }, 'Cancel')));

  async function create(event) {
    event.preventDefault();
    const data = new FormData(form);
    const body = { name: String(data.get('name')).trim(), type: data.get('type'), log_payloads: data.get('log_payloads') === 'on' };
    const user = String(data.get('user') || '').trim();
    if (user) body.user = user;
    const models = String(data.get('allowed_models') || '').split(',').map((m) => m.trim()).filter(Boolean);
    if (models.length) body.allowed_models = models;
    if (data.get('config')) body.config = data.get('config');
    // The field holds a local time; the API takes RFC 3339, which toISOString writes in UTC.
    const expires = String(data.get('expires_at') || '');
    if (expires) body.expires_at = new Date(expires).toISOString();
    try {
      const key = await post('/keys', body);
      onCreated(key);
    } catch (err) {
      error.textContent = err.param ? `${err.message} (field: ${err.param})` : err.message;
    }
  }
  return form;
}

/**
 * The one time a secret is on screen (a new key's, or a rotated key's new one); "Done"
 * removes it from the DOM.
 */
function secretPanel(key, onDone, rotated = false) {
  const code = h('code', { id: 'new-key-secret' }, key.secret);
  return h('section', { class: 'secret-once', role: 'alert', 'aria-labelledby': 'secret-title' },
    h('h2', { id: 'secret-title' }, rotated ? `Key "${key.name}" rotated` : `Key "${key.name}" created`),
    rotated ? h('div', {}, 'Its old secret no longer works.') : null,
    h('div', {}, 'Copy the secret now. It is not stored in readable form and will not be shown again.'),
    code,
    h('div', { class: 'actions' },
      copyButton('Copy the new key secret', key.secret),
      h('button', { type: 'button', onclick: onDone }, 'Done')));
}

/**
 * The budget and rate limit of a key (a user key's are its user's), linking to the Budgets
 * page where they are set.
 */
function limitsCell(k, fixed) {
  const summary = fmt.limitsSummary(k.budget, k.rate_limit);
  if (!summary) return h('span', { class: 'muted' }, 'none');
  const title = k.type === 'user' ? `The limits of user ${k.user}, shared by their keys.` : null;
  // Only service and user keys send data-plane requests; the Budgets page sets theirs.
  if (fixed || (k.type !== 'service' && k.type !== 'user')) return h('span', { title }, summary);
  return h('a', { href: `#/budgets?key=${encodeURIComponent(k.name)}`, title: title || 'Change on the Budgets page' }, summary);
}

export function keysPage(main) {
  const error = errorBox();
  const slot = h('div', {});
  const tbody = h('tbody', {});
  let configs = [];
  const createButton = h('button', { class: 'primary', type: 'button', onclick: showCreate }, 'Create key');
  replace(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Keys'), h('span', { class: 'spacer' }), createButton),
    slot, error,
    table('Gateway keys', [{ label: 'Name' }, { label: 'Type' }, { label: 'User' }, { label: 'Key' }, { label: 'Allowed models' },
      { label: 'Config' }, { label: 'Payloads' }, { label: 'Limits' }, { label: 'Source' }, { label: 'Created' }, { label: 'Expires' }, { label: '' }], tbody));

  function showCreate() {
    replace(slot, createForm(configs, (key) => {
      replace(slot, secretPanel(key, () => replace(slot)));
      toast('Key created');
      load();
    }, () => replace(slot)));
    slot.querySelector('input')?.focus();
  }

  async function change(k, body, what) {
    try {
      await patch(`/keys/${encodeURIComponent(k.id)}`, body);
      toast(what);
      load();
    } catch (err) {
      error.textContent = err.message;
      load();
    }
  }

  async function rotate(k) {
    if (!confirm(`Rotate key "${k.name}"? It gets a new secret, and its old secret stops working at once.`)) return;
    try {
      const key = await post(`/keys/${encodeURIComponent(k.id)}/rotate`);
      replace(slot, secretPanel(key, () => replace(slot), true));
      toast('Key rotated');
      load();
    } catch (err) {
      error.textContent = err.message;
    }
  }

  async function revoke(k) {
    if (!confirm(`Revoke key "${k.name}"? Requests with it are refused from now on.`)) return;
    try {
      await del(`/keys/${encodeURIComponent(k.id)}`);
      toast('Key revoked');
      load();
    } catch (err) {
      error.textContent = err.message;
    }
  }

  function row(k) {
    const revoked = Boolean(k.revoked_at);
    const expired = Boolean(k.expires_at) && Date.parse(k.expires_at) <= Date.now();
    const locked = fmt.lockedBecause(k.source);
    const fixed = revoked || locked;
    return h('tr', { class: revoked ? 'revoked' : expired ? 'expired' : null, dataset: { key: k.name } },
      h('td', {}, h('strong', {}, k.name)),
      h('td', {}, k.type),
      h('td', {}, k.user || '—'),
      h('td', { class: 'mono' }, k.hint || '—'),
      h('td', { class: 'wrap' }, Array.isArray(k.allowed_models) && k.allowed_models.length
        ? k.allowed_models.map((m) => h('span', { class: 'chip' }, m)) : h('span', { class: 'muted' }, 'all')),
      h('td', {}, fixed ? (k.config || '—') : configSelect(configs, k.config, {
        'aria-label': `Config of ${k.name}`,
        onchange: (e) => change(k, { config: e.target.value || null }, e.target.value ? `Config ${e.target.value} attached` : 'Config detached'),
      })),
      h('td', {}, fixed ? (k.log_payloads ? 'logged' : 'off') : h('label', { class: 'check' },
        h('input', {
          type: 'checkbox', checked: Boolean(k.log_payloads), 'aria-label': `Log payloads of ${k.name}`,
          onchange: (e) => change(k, { log_payloads: e.target.checked }, e.target.checked ? 'Payload logging on' : 'Payload logging off'),
        }), k.log_payloads ? 'logged' : 'off')),
      h('td', { class: 'limits' }, limitsCell(k, fixed)),
      h('td', { title: locked || null }, k.source || '—'),
      h('td', {}, fmt.shortDate(k.created_at)),
      h('td', { class: 'expires', title: k.expires_at || null }, !k.expires_at ? h('span', { class: 'muted' }, 'never')
        : expired ? h('span', { class: 'bad' }, `expired ${fmt.shortDate(k.expires_at)}`) : fmt.shortDate(k.expires_at)),
      h('td', { class: 'actions-cell' }, revoked
        ? h('span', { class: 'muted' }, `revoked ${fmt.shortDate(k.revoked_at)}`)
        : locked ? h('span', { class: 'muted', title: locked }, 'read-only')
        : [h('button', { type: 'button', class: 'small', onclick: () => rotate(k), 'aria-label': `Rotate ${k.name}` }, 'Rotate'),
          ' ',
          h('button', { type: 'button', class: 'small danger', onclick: () => revoke(k), 'aria-label': `Revoke ${k.name}` }, 'Revoke')]));
  }

  async function load() {
    try {
      const [keys, cfgs] = await Promise.all([all('/keys'), all('/configs').catch(() => [])]);
      configs = cfgs;
      replace(tbody, keys.length ? keys.map(row) : h('tr', {}, h('td', { class: 'empty', colspan: 12 }, 'No keys.')));
    } catch (err) {
      error.textContent = err.message;
    }
  }
  load();
  return null;
}
