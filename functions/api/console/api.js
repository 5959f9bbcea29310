// The JSON API as the console calls it: same origin, the key in an
// Authorization header, errors in the API's own words.

const STORE = 'keyhub.console.key';

// The API's base: the console is at <base>/console (a stage prefix such as
// /v1 in AWS, nothing under `make dev`).
export const base = location.pathname.replace(/\/console\/?$/, '');

// An answer other than 2xx: the API's code and message, its request id, and
// for 429 and 503 the seconds it asks to wait.
export class ApiError extends Error {
  constructor(status, body, headers) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || (status === 0 ? 'network_error' : 'http_' + status);
    this.details = err.details || null;
    this.requestId = (body && body.request_id) || (headers && headers.get('x-request-id')) || null;
    const retry = headers && headers.get('retry-after');
    this.retryAfter = retry !== null && retry !== undefined && retry !== '' ? Number(retry) : null;
  }
}

// The key lives in this tab's sessionStorage only (never localStorage or a
// cookie): closing the tab or signing out forgets it.
export const session = {
  get key() {
    return sessionStorage.getItem(STORE);
  },
  set key(value) {
    if (value) sessionStorage.setItem(STORE, value);
    else sessionStorage.removeItem(STORE);
  },
};

// One call. `query` values that are '', null or undefined are left out.
export async function call(method, path, { query, body, key } = {}) {
  const url = new URL(base + '/api/v1' + path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== '' && v !== null && v !== undefined) url.searchParams.set(k, String(v));
  }
  const headers = { Authorization: 'Bearer ' + (key || session.key || '') };
  const init = { method, headers, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(url, init);
  } catch (e) {
    throw new ApiError(0, { error: { code: 'network_error', message: 'The API could not be reached: ' + e.message } }, null);
  }
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!resp.ok) throw new ApiError(resp.status, data, resp.headers);
  return data;
}

export const get = (path, query) => call('GET', path, { query });
export const post = (path, body) => call('POST', path, { body: body === undefined ? {} : body });
export const patch = (path, body) => call('PATCH', path, { body });
export const put = (path, body) => call('PUT', path, { body });
export const del = (path) => call('DELETE', path);

// Whether scopes (a key's, from whoami) grant `needed`: `*` and `area:*`
// wildcards as the API reads them.
export function grants(scopes, needed) {
  const [area] = needed.split(':');
  return scopes.some((s) => s === '*' || s === needed || s === area + ':*');
}
