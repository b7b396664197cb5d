// Segments: sizes, kind, version and last-hour entries/exits (refreshed live);
// create, edit (in the rule editor), delete, and static segments with an id upload.
import { api, isAdmin, enc } from './api.js';
import { h, fmt, empty, failure, toast, confirmDialog, pageHead } from './ui.js';

const REFRESH_MS = 5000;

export function segmentsPage(main) {
  const body = h('div', { class: 'panel', 'data-test': 'segments-panel' }, h('div', { class: 'empty' }, 'Loading segments…'));
  const admin = isAdmin();
  main.append(
    pageHead('Segments', 'Audiences and their sizes, updated live',
      admin ? h('button', { type: 'button', onclick: () => staticDialog(load) }, 'New static segment') : null,
      admin ? h('a', { class: 'button primary', href: '#/editor', 'data-test': 'new-segment' }, 'New segment') : null),
    body);
  if (!admin) {
    body.replaceChildren(empty('Segments need an admin key', 'This session was opened with a read key: profile cards, live changes and webhooks are available.'));
    return null;
  }
  let rows = new Map();
  let table = null;
  async function load() {
    let segments, activity;
    try {
      [segments, activity] = await Promise.all([
        api('GET', '/v1/segments'),
        api('GET', '/console/api/activity').catch(() => ({ segments: [] })),
      ]);
    } catch (error) {
      if (error.status !== 401) body.replaceChildren(failure(error, load));
      table = null;
      return;
    }
    const moves = new Map(activity.segments.map((entry) => [entry.segment_id, entry]));
    const list = segments.segments.slice().sort((a, b) => a.name.localeCompare(b.name));
    if (!list.length) {
      table = null;
      body.replaceChildren(empty('No segments yet', 'Build an audience with a rule, or upload a list of ids as a static segment.',
        h('a', { class: 'button primary', href: '#/editor' }, 'New segment')));
      return;
    }
    if (!table) {
      rows = new Map();
      table = h('table', { 'data-test': 'segments-table' },
        h('thead', {}, h('tr', {},
          h('th', {}, 'Segment'), h('th', {}, 'Kind'), h('th', { class: 'num' }, 'Version'),
          h('th', { class: 'num' }, 'Members'), h('th', { class: 'num', title: 'Entries in the last hour' }, 'Entered 1h'),
          h('th', { class: 'num', title: 'Exits in the last hour' }, 'Exited 1h'), h('th', {}, ''))),
        h('tbody'));
      body.replaceChildren(table);
    }
    const tbody = table.tBodies[0];
    const seen = new Set();
    for (const segment of list) {
      seen.add(segment.id);
      let row = rows.get(segment.id);
      if (!row) {
        row = makeRow(segment);
        rows.set(segment.id, row);
      }
      updateRow(row, segment, moves.get(segment.id));
      tbody.append(row.element);
    }
    for (const [id, row] of rows) if (!seen.has(id)) { row.element.remove(); rows.delete(id); }
  }

  function makeRow(segment) {
    const cells = {
      name: h('td'), kind: h('td'), version: h('td', { class: 'num' }), count: h('td', { class: 'num', 'data-test': 'segment-count' }),
      entered: h('td', { class: 'num delta-in' }), exited: h('td', { class: 'num delta-out' }),
    };
    const actions = h('td', { class: 'num' },
      segment.is_static ? null : h('a', { class: 'button small', href: `#/editor/${enc(segment.name)}` }, 'Edit'), ' ',
      h('button', { type: 'button', class: 'small danger', onclick: () => remove(segment) }, 'Delete'));
    const element = h('tr', { 'data-segment': segment.name }, cells.name, cells.kind, cells.version, cells.count, cells.entered, cells.exited, actions);
    return { element, cells };
  }

  function updateRow(row, segment, moves) {
    const { cells } = row;
    cells.name.replaceChildren(
      segment.is_static ? h('b', {}, segment.name) : h('a', { href: `#/editor/${enc(segment.name)}` }, h('b', {}, segment.name)),
      h('span', { class: 'rule-snippet', title: segment.rule || segment.description }, segment.description || segment.rule || ''));
    cells.kind.replaceChildren(h('span', { class: 'kind' + (segment.is_static ? ' static' : '') }, segment.is_static ? 'static' : 'rule'));
    cells.version.textContent = 'v' + segment.version;
    cells.count.textContent = fmt(segment.count);
    cells.entered.textContent = '+' + fmt(moves ? moves.entered : 0);
    cells.exited.textContent = '−' + fmt(moves ? moves.exited : 0);
  }

  async function remove(segment) {
    const ok = await confirmDialog({
      title: `Delete “${segment.name}”?`,
      body: h('p', {}, `The segment and its ${fmt(segment.count)} memberships are deleted. Webhooks and readers stop receiving its changes. This cannot be undone.`),
      confirm: 'Delete segment', danger: true,
    });
    if (!ok) return;
    try {
      await api('DELETE', `/v1/segments/${segment.id}`);
      toast(`Deleted ${segment.name}`);
      load();
    } catch (error) { toast(error.message, true); }
  }

  load();
  const timer = setInterval(load, REFRESH_MS);
  return () => clearInterval(timer);
}

// Reads ids from text: one per line, or the first column of a CSV (a header named
// id/userId/user_id is skipped).
export function parseIds(text) {
  const ids = [];
  for (const line of text.split(/\r?\n/)) {
    let id = line.split(',')[0].trim().replace(/^"(.*)"$/, '$1');
    if (!id) continue;
    if (ids.length === 0 && /^(id|userid|user_id|profile|profile_id)$/i.test(id)) continue;
    ids.push(id);
  }
  return ids;
}

function staticDialog(done) {
  const name = h('input', { id: 'static-name', required: true, placeholder: 'e.g. conference_leads' });
  const ids = h('textarea', { id: 'static-ids', class: 'code', rows: 8, placeholder: 'one profile id per line, or a CSV whose first column is the id' });
  const file = h('input', { type: 'file', accept: '.csv,.txt,text/plain,text/csv', onchange: async () => { if (file.files[0]) ids.value = await file.files[0].text(); } });
  const error = h('div', { class: 'form-error', role: 'alert' });
  const previous = document.activeElement;
  const close = () => { back.remove(); if (previous) previous.focus(); };
  const submit = async (event) => {
    event.preventDefault();
    const profiles = parseIds(ids.value);
    try {
      await api('POST', '/v1/segments', { name: name.value.trim(), static: true });
      let result = { count: 0, unknown_profiles_count: 0 };
      for (let at = 0; at < profiles.length; at += 10000) {
        result = await api('POST', `/v1/segments/${enc(name.value.trim())}/members`, { profiles: profiles.slice(at, at + 10000) });
      }
      toast(`Created ${name.value.trim()}: ${fmt(result.count)} members` + (result.unknown_profiles_count ? `, ${fmt(result.unknown_profiles_count)} unknown ids skipped` : ''));
      close();
      done();
    } catch (failure) { error.textContent = failure.message; }
  };
  const back = h('div', { class: 'modal-back' },
    h('form', { class: 'modal', role: 'dialog', 'aria-modal': 'true', 'aria-label': 'New static segment', onsubmit: submit,
      onkeydown: (event) => { if (event.key === 'Escape') close(); } },
      h('h2', {}, 'New static segment'),
      h('p', { class: 'muted' }, 'A hand-maintained list of profiles. Paste ids or upload a file.'),
      h('label', { for: 'static-name' }, 'Name'), name,
      h('label', { for: 'static-ids' }, 'Profile ids'), ids,
      h('div', { style: 'margin-top:8px' }, file),
      error,
      h('div', { class: 'actions' }, h('button', { type: 'button', onclick: close }, 'Cancel'), h('button', { type: 'submit', class: 'primary' }, 'Create'))));
  document.body.append(back);
  name.focus();
}
