// Live changes over Server-Sent Events (the session cookie authenticates the stream),
// with a segment filter and pause; and the webhooks page.
import { api, isAdmin, enc } from './api.js';
import { h, fmt, when, ago, empty, failure, toast, confirmDialog, pageHead } from './ui.js';

const MAX_ROWS = 200;

export function livePage(main) {
  const list = h('ul', { class: 'live-list', 'data-test': 'live-list' });
  const placeholder = empty('Waiting for changes', 'Entries and exits appear here the moment they happen.');
  const status = h('span', { 'data-test': 'live-status' }, 'connecting…');
  const dot = h('span', { class: 'dot off' });
  const pending = h('span', { class: 'muted', 'data-test': 'live-pending' });
  const filter = h('select', { id: 'live-segment', 'aria-label': 'Segment', 'data-test': 'live-filter' }, h('option', { value: '' }, 'All segments'));
  const pause = h('button', { type: 'button', 'aria-pressed': 'false', 'data-test': 'live-pause' }, 'Pause');
  const names = new Map();
  let source = null;
  let paused = false;
  let buffered = [];
  let received = 0;

  main.append(pageHead('Live changes', 'Profiles entering and leaving segments, as it happens'),
    h('div', { class: 'panel' },
      h('div', { class: 'status-line' }, dot, status, h('span', { style: 'flex:1' }), pending, filter, pause),
      h('div', { style: 'margin-top:12px' }, placeholder, list)));

  function row(change) {
    return h('li', { 'data-test': 'live-row', 'data-profile': change.profile },
      h('span', { class: 'muted num', title: when(change.time_ms) }, new Date(change.time_ms).toLocaleTimeString('en-GB')),
      h('span', { class: 'pill ' + change.kind }, change.kind),
      h('a', { href: `#/profiles/${enc(change.profile)}` }, change.profile),
      h('span', {}, names.get(change.segment_id) || `segment ${change.segment_id}`),
      h('span', { class: 'muted' }, change.cause.replace('_', ' ')));
  }

  function show(changes) {
    if (!changes.length) return;
    placeholder.hidden = true;
    const fragment = document.createDocumentFragment();
    for (const change of changes.slice(-MAX_ROWS).reverse()) fragment.append(row(change));
    list.prepend(fragment);
    while (list.children.length > MAX_ROWS) list.lastChild.remove();
  }

  function connect() {
    if (source) source.close();
    const segment = filter.value;
    source = new EventSource('/v1/changes/stream' + (segment ? `?segment=${enc(segment)}` : ''));
    source.onopen = () => { dot.className = 'dot'; status.textContent = segment ? `live · ${names.get(Number(segment)) || segment}` : 'live · all segments'; };
    source.onerror = () => { dot.className = 'dot off'; status.textContent = 'reconnecting…'; };
    source.addEventListener('change', (event) => {
      const change = JSON.parse(event.data);
      received += 1;
      if (paused) { buffered.push(change); if (buffered.length > MAX_ROWS) buffered.shift(); pending.textContent = `${fmt(buffered.length)} new while paused`; } else show([change]);
    });
    source.addEventListener('fell_behind', () => { status.textContent = 'fell behind: some changes were skipped'; });
  }

  pause.addEventListener('click', () => {
    paused = !paused;
    pause.textContent = paused ? 'Resume' : 'Pause';
    pause.setAttribute('aria-pressed', String(paused));
    if (!paused) { show(buffered); buffered = []; pending.textContent = ''; }
  });
  filter.addEventListener('change', () => { list.replaceChildren(); placeholder.hidden = false; buffered = []; pending.textContent = ''; connect(); });

  (async () => {
    if (isAdmin()) {
      try {
        const segments = (await api('GET', '/v1/segments')).segments.sort((a, b) => a.name.localeCompare(b.name));
        for (const segment of segments) { names.set(segment.id, segment.name); filter.append(h('option', { value: String(segment.id) }, segment.name)); }
      } catch { /* names are a nicety; ids still show */ }
    }
    connect();
  })();
  return () => { if (source) source.close(); void received; };
}

export function webhooksPage(main) {
  const body = h('div', { class: 'panel', 'data-test': 'webhooks' }, h('div', { class: 'empty' }, 'Loading…'));
  const canEdit = isAdmin();
  const url = h('input', { id: 'hook-url', placeholder: 'http://crm.internal/segd-hook', autocomplete: 'off' });
  const segments = h('input', { id: 'hook-segments', placeholder: 'all segments, or names separated by commas', autocomplete: 'off' });
  const form = canEdit ? h('form', { class: 'panel', onsubmit: register },
    h('h2', {}, 'Register a webhook'),
    h('div', { class: 'form-row' }, h('div', {}, h('label', { for: 'hook-url' }, 'URL'), url), h('div', {}, h('label', { for: 'hook-segments' }, 'Segments'), segments),
      h('button', { type: 'submit', class: 'primary' }, 'Register'))) : null;
  main.append(pageHead('Webhooks', 'Where membership changes are delivered, and how that is going'), form, body);

  async function register(event) {
    event.preventDefault();
    const names = segments.value.split(',').map((name) => name.trim()).filter(Boolean);
    try {
      const created = await api('POST', '/v1/webhooks', { url: url.value.trim(), segments: names.length ? names : undefined });
      toast(`Registered webhook ${created.id}` + (created.secret ? ' — copy its signing secret from the API response now' : ''));
      url.value = ''; segments.value = '';
      load();
    } catch (error) { toast(error.message, true); }
  }

  const names = new Map();
  async function load() {
    let hooks, head = 0;
    try {
      if (canEdit && !names.size) {
        for (const segment of (await api('GET', '/v1/segments')).segments) names.set(segment.id, segment.name);
      }
      hooks = (await api('GET', '/v1/webhooks')).webhooks;
      head = (await api('GET', '/v1/changes?limit=1&after=9007199254740991').catch(() => ({ head: 0 }))).head || 0;
    } catch (error) { if (error.status !== 401) body.replaceChildren(failure(error, load)); return; }
    if (!hooks.length) { body.replaceChildren(empty('No webhooks', 'Register a URL to receive entries and exits as signed JSON batches.')); return; }
    body.replaceChildren(h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Id'), h('th', {}, 'URL'), h('th', {}, 'Segments'), h('th', {}, 'Status'),
        h('th', { class: 'num' }, 'Delivered'), h('th', { class: 'num' }, 'Lag'), h('th', {}, 'Last success'), h('th', {}, 'Last error'), h('th', {}, ''))),
      h('tbody', {}, hooks.map((hook) => {
        const status = hook.status;
        const failing = status.consecutive_failures > 0;
        return h('tr', {},
          h('td', { class: 'num' }, String(hook.id)),
          h('td', { class: 'mono' }, hook.url),
          h('td', {}, hook.segments ? hook.segments.map((id) => names.get(id) || String(id)).join(', ') : 'all'),
          h('td', {}, h('span', { class: 'pill ' + (failing ? 'failing' : 'ok') }, failing ? `failing ×${status.consecutive_failures}` : 'ok')),
          h('td', { class: 'num' }, fmt(status.deliveries)),
          h('td', { class: 'num', title: 'changes not yet delivered' }, fmt(Math.max(head - status.delivered_through, 0))),
          h('td', {}, status.last_success_ms ? ago(status.last_success_ms) : '—'),
          h('td', { class: 'muted' }, status.last_error || '—'),
          h('td', {}, canEdit ? h('button', { type: 'button', class: 'small danger', onclick: () => remove(hook) }, 'Delete') : null));
      }))));
  }

  async function remove(hook) {
    if (!await confirmDialog({ title: `Delete webhook ${hook.id}?`, body: h('p', {}, `Deliveries to ${hook.url} stop.`), confirm: 'Delete', danger: true })) return;
    try { await api('DELETE', `/v1/webhooks/${hook.id}`); load(); } catch (error) { toast(error.message, true); }
  }

  load();
  const timer = setInterval(load, 5000);
  return () => clearInterval(timer);
}
