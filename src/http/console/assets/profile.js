// Profile card: identifiers, grouped traits, segments with "why", event timeline,
// lifetime per-event summary, JSON export and erase (with a confirmation).
import { api, isAdmin, enc } from './api.js';
import { h, fmt, when, empty, failure, toast, confirmDialog, pageHead, download } from './ui.js';
import { explanationView } from './editor.js';

const PERSONAL = /^(first_name|last_name|name|full_name|age|gender|birth_?date|birthday|city|country|region|timezone|language|locale)$/;
const CONTACT = /^(email|phone|mobile|address|street|zip|postal_code)(\.|$)/;
const IDENTITY = /^(email|phone)$/;
const STATUS = /(^|_|\.)(status|plan|tier|risk|stage|state)$|^(test_subscriber|churn_risk|vip)$/;
const CHANNEL = /(email|sms|push|whatsapp|telegram|web_?push|mail)/;

// Groups traits the way marketers read a card.
export function groupTraits(traits) {
  const groups = { Personal: [], Contact: [], Statuses: [], Subscriptions: {}, Custom: [] };
  for (const [name, value] of Object.entries(traits).sort(([a], [b]) => a.localeCompare(b))) {
    if (name.startsWith('subscriptions.') || /_enabled$|opt_?in/.test(name)) {
      const channel = (name.match(CHANNEL) || [null, 'other'])[1];
      (groups.Subscriptions[channel] ||= []).push([name, value]);
    } else if (PERSONAL.test(name)) groups.Personal.push([name, value]);
    else if (CONTACT.test(name)) groups.Contact.push([name, value]);
    else if (STATUS.test(name)) groups.Statuses.push([name, value]);
    else groups.Custom.push([name, value]);
  }
  return groups;
}

const show = (value) => (value === null ? '—' : typeof value === 'number' ? fmt(value) : Array.isArray(value) ? value.join(', ') : typeof value === 'object' ? JSON.stringify(value) : String(value));
const kv = (pairs) => pairs.length ? h('dl', { class: 'kv' }, pairs.map(([name, value]) => [h('dt', { title: name }, name), h('dd', {}, show(value))])) : h('div', { class: 'muted' }, 'None');

export function profilesPage(main, [profileId]) {
  const input = h('input', { id: 'profile-search', placeholder: 'userId, or anon:<anonymousId>', autocomplete: 'off', value: profileId || '', 'data-test': 'profile-search' });
  const body = h('div', { 'data-test': 'profile-body' });
  main.append(pageHead('Profiles', 'Everything segd holds about one customer'),
    h('form', { class: 'panel form-row', onsubmit: (event) => { event.preventDefault(); if (input.value.trim()) location.hash = `#/profiles/${enc(input.value.trim())}`; } },
      h('div', {}, h('label', { for: 'profile-search' }, 'Find a profile'), input), h('button', { type: 'submit', class: 'primary' }, 'Open card')),
    body);
  if (!profileId) { body.append(h('div', { class: 'panel' }, empty('Open a profile', 'Enter an id, or pick one from a segment sample in the rule editor.'))); input.focus(); return null; }
  load();
  async function load() {
    body.replaceChildren(h('div', { class: 'panel' }, h('div', { class: 'empty' }, 'Loading…')));
    let card;
    try { card = await api('GET', `/v1/profiles/${enc(profileId)}`); } catch (error) {
      body.replaceChildren(h('div', { class: 'panel' }, error.status === 404 ? empty('No such profile', `segd holds no profile “${profileId}”.`) : failure(error, load)));
      return;
    }
    render(card);
  }

  function render(card) {
    const groups = groupTraits(card.traits || {});
    const identity = Object.entries(card.traits || {}).filter(([name]) => IDENTITY.test(name));
    const whyOut = h('div', { class: 'explain', 'data-test': 'profile-explain' });
    const segmentList = card.segments.length ? h('div', { class: 'segment-chips' }, card.segments.map((segment) => h('div', { class: 'segment-chip' },
      h('span', { class: 'kind' }, segment.name),
      isAdmin() ? h('button', { type: 'button', class: 'small', 'data-test': 'why', onclick: () => why(segment, whyOut) }, 'Why?') : null))) : h('div', { class: 'muted' }, 'In no segment.');
    body.replaceChildren(
      h('div', { class: 'panel' }, h('div', { class: 'profile-head' },
        h('div', {}, h('h2', { 'data-test': 'profile-id' }, card.id),
          h('dl', { class: 'kv' },
            h('dt', {}, 'userId'), h('dd', {}, card.user_id || '—'),
            h('dt', {}, 'anonymous ids'), h('dd', {}, card.anonymous_ids.length ? card.anonymous_ids.join(', ') : '—'),
            identity.map(([name, value]) => [h('dt', {}, name), h('dd', {}, show(value))]))),
        h('div', { class: 'actions', style: 'display:flex;gap:8px' },
          h('button', { type: 'button', 'data-test': 'export', onclick: () => exportCard(card) }, 'Export JSON'),
          isAdmin() ? h('button', { type: 'button', class: 'danger', 'data-test': 'erase', onclick: () => erase(card) }, 'Erase…') : null))),
      h('div', { class: 'grid-card' },
        h('div', {},
          h('div', { class: 'panel' }, h('h3', {}, 'Personal'), kv(groups.Personal)),
          h('div', { class: 'panel' }, h('h3', {}, 'Contact'), kv(groups.Contact)),
          h('div', { class: 'panel' }, h('h3', {}, 'Statuses'), kv(groups.Statuses)),
          h('div', { class: 'panel' }, h('h3', {}, 'Subscriptions by channel'),
            Object.keys(groups.Subscriptions).length ? Object.entries(groups.Subscriptions).map(([channel, pairs]) => h('div', { style: 'margin-bottom:8px' }, h('b', {}, channel), kv(pairs))) : h('div', { class: 'muted' }, 'None')),
          h('div', { class: 'panel' }, h('h3', {}, 'Custom'), kv(groups.Custom))),
        h('div', {},
          h('div', { class: 'panel' }, h('h3', {}, `Segments (${fmt(card.segments.length)})`), segmentList, whyOut),
          h('div', { class: 'panel' }, h('h3', {}, 'Lifetime per event'),
            card.events.length ? h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Event'), h('th', { class: 'num' }, 'Count'), h('th', {}, 'First'), h('th', {}, 'Last'))),
              h('tbody', {}, card.events.map((event) => h('tr', {}, h('td', {}, event.event), h('td', { class: 'num' }, fmt(event.count)), h('td', {}, when(event.first)), h('td', {}, when(event.last)))))) : h('div', { class: 'muted' }, 'No events.')),
          h('div', { class: 'panel' }, h('h3', {}, 'Timeline'),
            card.recent_events.length ? h('ul', { class: 'timeline', 'data-test': 'timeline' }, card.recent_events.map((event) => h('li', {},
              h('div', {}, h('b', {}, event.event), ' ', h('span', { class: 'muted' }, when(event.timestamp))),
              Object.keys(event.properties).length ? h('div', { class: 'props' }, Object.entries(event.properties).map(([name, value]) => `${name}: ${show(value)}`).join(' · ')) : null))) : h('div', { class: 'muted' }, 'No recent events.')))));
  }

  async function why(segment, out) {
    out.replaceChildren(h('p', { class: 'muted' }, 'Explaining…'));
    try { out.replaceChildren(explanationView(await api('GET', `/v1/segments/${segment.id}/explain/${enc(profileId)}`))); } catch (error) { out.replaceChildren(h('p', { class: 'rule-message bad' }, error.message)); }
  }

  async function exportCard(card) {
    try { download(`profile-${card.id}.json`, JSON.stringify(await api('GET', `/v1/profiles/${enc(card.id)}/export`), null, 2)); } catch (error) { toast(error.message, true); }
  }

  async function erase(card) {
    const ok = await confirmDialog({
      title: `Erase ${card.id}?`,
      body: h('div', {}, h('p', {}, 'This permanently deletes:'),
        h('ul', {}, h('li', {}, `the profile ${card.id}` + (card.user_id ? ` (userId ${card.user_id})` : '')),
          h('li', {}, `${fmt(card.anonymous_ids.length)} anonymous id(s)` + (card.anonymous_ids.length ? ': ' + card.anonymous_ids.join(', ') : '')),
          h('li', {}, `${fmt(Object.keys(card.traits || {}).length)} traits and ${fmt(card.events.reduce((sum, event) => sum + event.count, 0))} recorded events`),
          h('li', {}, `membership in ${fmt(card.segments.length)} segment(s)` + (card.segments.length ? ': ' + card.segments.map((segment) => segment.name).join(', ') : ''))),
        h('p', {}, 'Its identifiers are suppressed: later messages for them are ignored.')),
      confirm: 'Erase profile', danger: true,
    });
    if (!ok) return;
    try { await api('DELETE', `/v1/profiles/${enc(card.id)}`); toast(`Erased ${card.id}`); location.hash = '#/profiles'; } catch (error) { toast(error.message, true); }
  }
}
