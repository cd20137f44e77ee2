// The dashboard's entry point: a hash router (`#/logs?status=5xx`, `#/logs/<id>`, ...), so a
// filtered view is a shareable URL and the server only ever serves `/`.

import { adminKey, clearAdminKey, whenUnauthorized } from './api.js';
import { replace } from './dom.js';
import { loginPage } from './login.js';
import { logsPage } from './logs.js';
import { detailPage } from './detail.js';
import { analyticsPage } from './analytics.js';
import { providersPage } from './providers.js';
import { modelsPage } from './models.js';
import { keysPage } from './keys.js';
import { configsPage } from './configs.js';
import { budgetsPage } from './budgets.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const logout = document.getElementById('logout');

const pages = {
  logs: logsPage,
  analytics: analyticsPage,
  providers: providersPage,
  models: modelsPage,
  keys: keysPage,
  configs: configsPage,
  budgets: budgetsPage,
};

const titles = {
  logs: 'Logs', analytics: 'Analytics', providers: 'Providers', models: 'Models', keys: 'Keys', configs: 'Configs',
  budgets: 'Budgets',
};

// The page being shown; its `stop()` (timers, listeners) runs before the next one renders.
let current = null;
let loginMessage = '';

/** `#/logs/abc?x=1` → {section: 'logs', rest: ['abc'], params: URLSearchParams}. */
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, search = ''] = raw.split('?', 2);
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { section: parts[0] || 'logs', rest: parts.slice(1), params: new URLSearchParams(search) };
}

function render() {
  if (current && current.stop) current.stop();
  current = null;
  const route = parseHash();
  const signedIn = Boolean(adminKey());
  nav.hidden = !signedIn;
  logout.hidden = !signedIn;
  if (!signedIn) {
    document.title = 'Sign in · Portico';
    current = loginPage(main, loginMessage, () => {
      loginMessage = '';
      render();
    });
    return;
  }
  let page = pages[route.section];
  let section = route.section;
  if (route.section === 'logs' && route.rest.length) {
    page = detailPage;
  } else if (!page) {
    section = 'logs';
    page = logsPage;
  }
  for (const a of nav.querySelectorAll('a')) {
    if (a.dataset.section === section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${titles[section]} · Portico`;
  replace(main);
  current = page(main, route) || null;
  main.focus({ preventScroll: true });
}

function signOut(message) {
  clearAdminKey();
  loginMessage = message || '';
  render();
}

logout.addEventListener('click', () => signOut('Signed out.'));
whenUnauthorized(() => signOut('The gateway no longer accepts this admin key. Sign in again.'));
window.addEventListener('hashchange', render);
render();

