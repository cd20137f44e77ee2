// Sign-in: the user pastes the admin key; it is checked against the admin API before it is
// kept (in sessionStorage, for this tab only).

import { api, setAdminKey } from './api.js';
import { errorBox, h, replace } from './dom.js';

export function loginPage(main, message, done) {
  const input = h('input', {
    id: 'admin-key', type: 'password', name: 'admin-key', autocomplete: 'off', spellcheck: 'false',
    required: true, placeholder: 'prt-admin-…', 'aria-describedby': 'login-error',
  });
  const error = errorBox();
  error.id = 'login-error';
  if (message) error.textContent = message;
  const button = h('button', { class: 'primary', type: 'submit' }, 'Sign in');
  const form = h('form', { onsubmit: submit },
    h('label', { for: 'admin-key' }, 'Admin key', input),
    error,
    button);

  async function submit(event) {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    button.disabled = true;
    error.textContent = '';
    try {
      await api('GET', '/keys?limit=1', undefined, key);
      setAdminKey(key);
      input.value = '';
      done();
    } catch (err) {
      error.textContent = err.status === 401
        ? 'That key is not valid. Paste the admin key: PORTICO_ADMIN_KEY, or the one printed when the gateway first started.'
        : err.status === 403
          ? 'That is a gateway key, not an admin key. The dashboard needs the admin key.'
          : err.message;
      input.select();
    } finally {
      button.disabled = false;
    }
  }

  replace(main, h('section', { class: 'panel login', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Sign in to Portico'),
    h('p', {}, 'Paste the admin key. It is kept in this browser tab only and sent to this gateway\'s admin API.'),
    form));
  input.focus();
  return null;
}
