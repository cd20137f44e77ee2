// The admin API client: every request carries the admin key from sessionStorage as a bearer
// token. The key never leaves this tab's session and is never written into the page.

const STORAGE = 'portico.adminKey';

/** An error answered by the admin API, in OpenAI's shape. */
export class ApiError extends Error {
  constructor(status, message, param, code) {
    super(message);
    this.status = status;
    this.param = param;
    this.code = code;
  }
}

/** The admin key of this session, or null. */
export function adminKey() {
  return sessionStorage.getItem(STORAGE);
}

export function setAdminKey(key) {
  sessionStorage.setItem(STORAGE, key);
}

export function clearAdminKey() {
  sessionStorage.removeItem(STORAGE);
}

let onUnauthorized = () => {};

/** Called when the API rejects the stored key (401), e.g. after it was rotated. */
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

/**
 * Calls `/admin/v1{path}`. Answers the parsed JSON (null for 204); throws ApiError with the
 * API's message otherwise.
 */
export async function api(method, path, body, key = adminKey()) {
  const headers = { Accept: 'application/json' };
  if (key) headers.Authorization = `Bearer ${key}`;
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(`/admin/v1${path}`, init);
  } catch (err) {
    throw new ApiError(0, `The gateway did not answer (${err.message}). Is it running?`);
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const e = json && json.error ? json.error : {};
    const message = e.message || `${method} ${path} answered ${res.status} ${res.statusText}`;
    const error = new ApiError(res.status, message, e.param ?? null, e.code ?? null);
    if (res.status === 401 && key === adminKey()) onUnauthorized(error);
    throw error;
  }
  return json;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body);
export const put = (path, body) => api('PUT', path, body);
export const patch = (path, body) => api('PATCH', path, body);
export const del = (path) => api('DELETE', path);

/** `?a=1&b=2` from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** Every item of a list endpoint, following `next_cursor` (for small catalog lists only). */
export async function all(path, max = 2000) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes('?') ? '&' : '?';
    const page = await get(`${path}${sep}limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    items.push(...(page.data || []));
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}
