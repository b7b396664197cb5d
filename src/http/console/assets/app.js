// Console shell: session check, sign-in, hash routing between pages.
import { loadSession, signIn, signOut, session, whenSignedOut } from './api.js';
import { h, toast } from './ui.js';
import { segmentsPage } from './segments.js';
import { editorPage } from './editor.js';
import { profilesPage } from './profile.js';
import { livePage, webhooksPage } from './live.js';

const pages = { segments: segmentsPage, editor: editorPage, profiles: profilesPage, live: livePage, webhooks: webhooksPage };
let cleanup = null;

function showSignIn(message) {
  if (cleanup) { cleanup(); cleanup = null; }
  document.getElementById('shell').hidden = true;
  document.getElementById('signin').hidden = false;
  document.getElementById('signin-error').textContent = message || '';
  const key = document.getElementById('signin-key');
  key.value = '';
  key.focus();
}

function route() {
  if (!session.role) return;
  const [name, ...rest] = (location.hash.replace(/^#\/?/, '') || 'segments').split('/');
  const page = pages[name] ? name : 'segments';
  for (const link of document.querySelectorAll('[data-nav]')) {
    link.classList.toggle('active', link.dataset.nav === page);
    if (link.dataset.nav === page) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
  }
  if (cleanup) { cleanup(); cleanup = null; }
  const main = document.getElementById('main');
  main.replaceChildren();
  main.dataset.page = page;
  cleanup = pages[page](main, rest.map(decodeURIComponent)) || null;
}

function showShell() {
  document.getElementById('signin').hidden = true;
  document.getElementById('shell').hidden = false;
  const badge = document.getElementById('role-badge');
  badge.textContent = session.open ? 'open' : session.role === 'admin' ? 'admin' : 'read-only';
  badge.className = 'badge' + (session.role === 'read' ? ' read' : '');
  document.getElementById('signout').hidden = session.open;
  route();
}

async function start() {
  whenSignedOut(() => showSignIn('Your session ended. Sign in again.'));
  document.getElementById('signin-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const key = document.getElementById('signin-key');
    const button = document.getElementById('signin-submit');
    button.disabled = true;
    try {
      await signIn(key.value);
      key.value = '';
      showShell();
    } catch (error) {
      document.getElementById('signin-error').textContent = error.status === 401 ? 'That key is not valid.' : error.message;
      key.select();
    } finally { button.disabled = false; }
  });
  document.getElementById('signout').addEventListener('click', async () => {
    try { await signOut(); } catch { /* the session is gone either way */ }
    showSignIn('Signed out.');
  });
  window.addEventListener('hashchange', route);
  try {
    if (await loadSession()) showShell(); else showSignIn();
  } catch (error) {
    showSignIn('segd is not reachable: ' + error.message);
  }
}

window.addEventListener('unhandledrejection', (event) => {
  if (event.reason && event.reason.name === 'AbortError') return;
  toast(event.reason && event.reason.message ? event.reason.message : 'Something went wrong', true);
});
start();
export { h };
