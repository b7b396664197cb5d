// The console's only door to segd: same-origin fetches authenticated by the session
// cookie (HttpOnly, so not readable here). The CSRF token is held in memory only.
let csrf = '';
let onSignedOut = () => {};

export const session = { role: null, open: false };

export function whenSignedOut(callback) { onSignedOut = callback; }

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `request failed (${status})`);
    this.status = status;
    this.code = error.code || 'http_' + status;
    this.details = error;
  }
}

export async function api(method, path, body, options = {}) {
  const headers = { 'Accept': 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrf) headers['X-CSRF-Token'] = csrf;
  const response = await fetch(path, {
    method, headers, credentials: 'same-origin', signal: options.signal,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  const text = await response.text();
  if (text) { try { data = JSON.parse(text); } catch { data = null; } }
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401 && !path.startsWith('/console/api/login')) onSignedOut(error);
    throw error;
  }
  return data;
}

export async function loadSession() {
  try {
    const current = await api('GET', '/console/api/session');
    csrf = current.csrf || '';
    session.role = current.role;
    session.open = !!current.open;
    return true;
  } catch (error) {
    if (error.status === 401) { session.role = null; return false; }
    throw error;
  }
}

export async function signIn(key) {
  const result = await api('POST', '/console/api/login', { key });
  csrf = result.csrf;
  session.role = result.role;
  session.open = false;
}

export async function signOut() {
  try { await api('POST', '/console/api/logout'); } finally {
    csrf = '';
    session.role = null;
  }
}

export const isAdmin = () => session.role === 'admin';
export const enc = encodeURIComponent;
