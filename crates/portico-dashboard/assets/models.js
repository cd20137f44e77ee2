// Models: every @provider/model of the catalog with its price per million tokens (the
// catalog's override, or the built-in table; "unknown" when neither has one).

import { all } from './api.js';
import { errorBox, h, replace, table } from './dom.js';

function price(p, field) {
  if (!p || p[field] === null || p[field] === undefined) return '—';
  const v = Number(p[field]);
  // $8.00 and $0.075, not $8.000 or $0.08: prices below a dollar keep their digits.
  return v >= 1 ? `$${v.toFixed(2)}` : `$${+v.toFixed(4)}`;
}

export function modelsPage(main) {
  const error = errorBox();
  const tbody = h('tbody', {});
  const filter = h('input', { type: 'search', placeholder: 'Filter models', 'aria-label': 'Filter models', oninput: show });
  let models = [];
  replace(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Models'), h('span', { class: 'spacer' }), filter),
    h('p', { class: 'muted' }, 'Prices are in USD per million tokens. Set them per model in a provider\'s models list.'),
    error,
    table('Models', [{ label: 'Model id' }, { label: 'Provider' }, { label: 'Upstream model' }, { label: 'Name' },
      { label: 'Input', num: true }, { label: 'Output', num: true }, { label: 'Cache read', num: true }, { label: 'Cache write', num: true }], tbody));

  function show() {
    const q = filter.value.trim().toLowerCase();
    const list = q ? models.filter((m) => `${m.id} ${m.name || ''}`.toLowerCase().includes(q)) : models;
    replace(tbody, list.length ? list.map((m) => h('tr', {},
      h('td', { class: 'mono' }, m.id),
      h('td', {}, m.provider),
      h('td', {}, m.model),
      h('td', {}, m.name || '—'),
      m.pricing
        ? [h('td', { class: 'num' }, price(m.pricing, 'input_per_mtok')), h('td', { class: 'num' }, price(m.pricing, 'output_per_mtok')),
          h('td', { class: 'num' }, price(m.pricing, 'cache_read_per_mtok')), h('td', { class: 'num' }, price(m.pricing, 'cache_write_per_mtok'))]
        : h('td', { colspan: 4, class: 'num muted' }, 'price unknown')))
      : h('tr', {}, h('td', { class: 'empty', colspan: 8 }, q ? 'No model matches.' : 'No models: providers without an allow-list accept any model name.')));
  }

  all('/models').then((list) => {
    models = list;
    show();
  }).catch((err) => { error.textContent = err.message; });
  return null;
}
