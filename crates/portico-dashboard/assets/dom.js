// Building DOM nodes without HTML strings: every text goes through textContent, so nothing the
// API answers (model names, payloads, error messages) can become markup.

/** Creates an element: `h('a', {href: '#/x', class: 'y', onclick: fn}, 'text', child)`. */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Creates an SVG element, the same way as `h`. */
export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

function fill(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(name, '');
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces the content of `el` with `children`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Shows a short message in the corner (announced to screen readers). */
export function toast(message) {
  const el = document.getElementById('toast');
  if (!el) return;
  el.textContent = message;
  el.classList.add('show');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => el.classList.remove('show'), 1800);
}

/** Copies `text` to the clipboard, with a fallback for browsers that refuse the async API. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = h('textarea', { readonly: true, 'aria-hidden': 'true' });
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
  toast('Copied');
}

/** A button that copies what `text()` returns. */
export function copyButton(label, text) {
  return h('button', {
    type: 'button', class: 'small', 'aria-label': label,
    onclick: () => copyText(typeof text === 'function' ? text() : text),
  }, 'Copy');
}

/** A table inside a scrolling wrapper: `columns` is `[{label, num}]`. */
export function table(caption, columns, tbody) {
  return h('div', { class: 'table-wrap' },
    h('table', { 'aria-label': caption },
      h('thead', {}, h('tr', {}, columns.map((c) =>
        h('th', { scope: 'col', class: c.num ? 'num' : null }, c.label)))),
      tbody));
}

/** The message box under a form. */
export function errorBox() {
  return h('div', { class: 'error', role: 'alert' });
}
