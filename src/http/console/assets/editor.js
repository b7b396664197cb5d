// Rule editor: the text rule with a live count and sample as you type (debounced, stale
// requests aborted), errors underlined at the span the server reports, a builder over
// the same AST, save/update, and "explain" for one profile.
import { api, isAdmin, enc } from './api.js';
import { h, fmt, ms, toast, pageHead, empty } from './ui.js';
import { renderBuilder } from './builder.js';

const DEBOUNCE_MS = 40;

export function editorPage(main, [segmentName]) {
  if (!isAdmin()) {
    main.append(pageHead('Rule editor'), h('div', { class: 'panel' }, empty('The rule editor needs an admin key', 'Sign in with an admin key to build segments.')));
    return null;
  }
  const state = { segment: null, mode: 'text', ast: null, schema: null, controller: null, seq: 0, timer: null, lastInputAt: 0, builderSeq: 0 };

  const name = h('input', { id: 'segment-name', placeholder: 'e.g. de_high_value', autocomplete: 'off', 'data-test': 'segment-name' });
  const description = h('input', { id: 'segment-description', placeholder: 'What this audience is for', autocomplete: 'off' });
  const textarea = h('textarea', { id: 'rule-text', class: 'code', spellcheck: 'false', autocomplete: 'off', 'aria-label': 'Rule',
    'aria-describedby': 'rule-message', placeholder: 'country = "DE" and did "order_completed" at least 2 times in last 30 days', 'data-test': 'rule-text' });
  const highlight = h('div', { class: 'highlight code-view', 'aria-hidden': 'true', 'data-test': 'rule-highlight' });
  const message = h('div', { id: 'rule-message', class: 'rule-message ok', 'aria-live': 'polite', 'data-test': 'rule-message' }, 'Type a rule; the count follows every keystroke.');
  const textView = h('div', {}, h('div', { class: 'editor' }, highlight, textarea), message);
  const builderView = h('div', { hidden: true, 'data-test': 'builder' });
  const textTab = h('button', { type: 'button', role: 'tab', 'aria-selected': 'true', 'data-test': 'tab-text', onclick: () => switchMode('text') }, 'Text');
  const builderTab = h('button', { type: 'button', role: 'tab', 'aria-selected': 'false', 'data-test': 'tab-builder', onclick: () => switchMode('builder') }, 'Builder');

  const countValue = h('div', { class: 'count-value', 'data-test': 'count' }, '—');
  const countMeta = h('div', { class: 'count-meta', 'data-test': 'count-meta' }, 'profiles match');
  const sample = h('ul', { class: 'sample', 'data-test': 'sample' });
  const saveButton = h('button', { type: 'button', class: 'primary', 'data-test': 'save', onclick: save }, 'Create segment');

  const explainInput = h('input', { id: 'explain-profile', placeholder: 'profile id', autocomplete: 'off', 'data-test': 'explain-profile' });
  const explainOut = h('div', { class: 'explain', 'data-test': 'explain' });
  const explainPanel = h('div', { class: 'panel' },
    h('h2', {}, 'Explain for a profile'),
    h('form', { class: 'form-row', onsubmit: (event) => { event.preventDefault(); explain(); } },
      h('div', {}, explainInput), h('button', { type: 'submit', 'data-test': 'explain-run' }, 'Explain')),
    h('div', { style: 'margin-top:12px' }, explainOut));

  main.append(
    pageHead(segmentName ? `Edit ${segmentName}` : 'New segment', 'Text and builder edit the same rule', saveButton),
    h('div', { class: 'grid2' },
      h('div', {},
        h('div', { class: 'panel' },
          h('div', { class: 'form-row' },
            h('div', {}, h('label', { for: 'segment-name' }, 'Name'), name),
            h('div', {}, h('label', { for: 'segment-description' }, 'Description'), description)),
          h('label', {}, 'Rule'),
          h('div', { class: 'tabs', role: 'tablist' }, textTab, builderTab),
          textView, builderView),
        explainPanel),
      h('div', { class: 'panel count-card' },
        h('h3', {}, 'Audience'), countValue, countMeta,
        h('h3', { style: 'margin-top:16px' }, 'Sample members'), sample)));

  textarea.addEventListener('input', () => {
    state.lastInputAt = performance.now();
    paint(textarea.value, null);
    schedule(textarea.value);
  });
  textarea.addEventListener('scroll', () => { highlight.scrollTop = textarea.scrollTop; });
  textarea.addEventListener('keydown', (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === 'Enter') { event.preventDefault(); save(); }
  });

  function paint(text, span) {
    const characters = Array.from(text);
    if (!span) { highlight.replaceChildren(text + '\n'); highlight.dataset.error = ''; return; }
    const start = Math.min(span.start, characters.length);
    const end = Math.max(Math.min(span.end, characters.length), start);
    highlight.replaceChildren(
      characters.slice(0, start).join(''),
      h('mark', { 'data-test': 'error-mark' }, characters.slice(start, end).join('')),
      characters.slice(end).join('') + '\n');
    highlight.dataset.error = characters.slice(start, end).join('');
  }

  function schedule(rule) {
    clearTimeout(state.timer);
    countValue.classList.add('stale');
    state.timer = setTimeout(() => preview(rule), DEBOUNCE_MS);
  }

  async function preview(rule) {
    if (state.controller) state.controller.abort();
    const seq = ++state.seq;
    const isText = typeof rule === 'string';
    if (isText && !rule.trim()) {
      state.controller = null;
      countValue.textContent = '—';
      countValue.classList.remove('stale');
      countValue.dataset.count = '';
      countMeta.textContent = 'profiles match';
      sample.replaceChildren();
      message.className = 'rule-message ok';
      message.textContent = 'Type a rule; the count follows every keystroke.';
      return;
    }
    const controller = new AbortController();
    state.controller = controller;
    try {
      const result = await api('POST', '/v1/segments/preview', { rule, sample_size: 10 }, { signal: controller.signal });
      if (seq !== state.seq) return;
      countValue.textContent = fmt(result.count);
      countValue.dataset.count = String(result.count);
      countValue.dataset.rule = isText ? rule : JSON.stringify(rule);
      countValue.classList.remove('stale');
      const latency = performance.now() - state.lastInputAt;
      countValue.dataset.latencyMs = latency.toFixed(1);
      countMeta.textContent = `profiles match · evaluated in ${ms(result.took_ms)}`;
      sample.replaceChildren(...(result.sample.length ? result.sample.map((id) => h('li', {},
        h('a', { href: `#/profiles/${enc(id)}`, title: 'Open profile card' }, id), ' ',
        h('button', { type: 'button', class: 'small ghost', onclick: () => { explainInput.value = id; explain(); } }, 'explain'))) : [h('li', { class: 'muted' }, 'No profile matches.')]));
      if (isText) paint(rule, null);
      message.className = 'rule-message ok';
      message.textContent = 'Rule is valid.';
    } catch (error) {
      if (error.name === 'AbortError' || seq !== state.seq) return;
      countValue.classList.add('stale');
      if (isText) paint(rule, error.details && error.details.span);
      message.className = 'rule-message bad';
      message.textContent = error.message;
    }
  }

  async function switchMode(mode) {
    if (mode === state.mode) return;
    if (mode === 'builder') {
      const text = textarea.value.trim();
      let ast = { kind: 'and', rules: [] };
      if (text) {
        try { ast = (await api('POST', '/console/api/rule', { rule: text })).ast; } catch (error) {
          message.className = 'rule-message bad';
          message.textContent = 'Fix the rule before opening the builder: ' + error.message;
          return;
        }
      }
      if (!state.schema) {
        try { state.schema = await api('GET', '/v1/schema'); } catch (error) { toast(error.message, true); return; }
      }
      state.ast = ast.kind === 'and' || ast.kind === 'or' ? ast : { kind: 'and', rules: [ast] };
      renderBuilder(builderView, state.ast, state.schema, state.segments || [], builderChanged);
    }
    state.mode = mode;
    textTab.setAttribute('aria-selected', String(mode === 'text'));
    builderTab.setAttribute('aria-selected', String(mode === 'builder'));
    textView.hidden = mode !== 'text';
    builderView.hidden = mode !== 'builder';
    if (mode === 'text') textarea.focus();
  }

  // The builder changed the AST: print it as text (the server's printer) and count it.
  async function builderChanged(ast, complete) {
    state.lastInputAt = performance.now();
    if (!complete) { countValue.classList.add('stale'); message.className = 'rule-message ok'; message.textContent = 'Complete the condition to count it.'; return; }
    if (!ast.rules.length) { textarea.value = ''; paint('', null); schedule(''); return; }
    const seq = ++state.builderSeq;
    try {
      const checked = await api('POST', '/console/api/rule', { rule: ast });
      if (seq !== state.builderSeq) return;
      textarea.value = checked.text;
      paint(checked.text, null);
      schedule(checked.text);
    } catch (error) {
      if (seq !== state.builderSeq) return;
      countValue.classList.add('stale');
      message.className = 'rule-message bad';
      message.textContent = error.message;
    }
  }

  async function save() {
    const rule = textarea.value.trim();
    if (!name.value.trim()) { name.focus(); toast('Give the segment a name', true); return; }
    if (!rule) { textarea.focus(); toast('Write a rule first', true); return; }
    saveButton.disabled = true;
    try {
      if (state.segment) {
        const result = await api('PUT', `/v1/segments/${state.segment.id}`, { rule, description: description.value });
        state.segment = result.segment;
        toast(`Saved v${result.segment.version}: +${fmt(result.diff.entered)} entered, −${fmt(result.diff.exited)} exited`);
      } else {
        const created = await api('POST', '/v1/segments', { name: name.value.trim(), rule, description: description.value });
        toast(`Created ${created.name} with ${fmt(created.count)} members`);
        location.hash = `#/editor/${enc(created.name)}`;
      }
    } catch (error) {
      toast(error.message, true);
    } finally { saveButton.disabled = false; }
  }

  async function explain() {
    const profile = explainInput.value.trim();
    if (!profile) { explainInput.focus(); return; }
    if (!state.segment) { explainOut.replaceChildren(h('p', { class: 'muted' }, 'Save the segment first: explain shows how its stored rule evaluates for this profile.')); return; }
    explainOut.replaceChildren(h('p', { class: 'muted' }, 'Explaining…'));
    try {
      const result = await api('GET', `/v1/segments/${state.segment.id}/explain/${enc(profile)}`);
      explainOut.replaceChildren(explanationView(result));
    } catch (error) {
      explainOut.replaceChildren(h('p', { class: 'rule-message bad' }, error.message));
    }
  }

  async function loadSegment() {
    try { state.segments = (await api('GET', '/v1/segments')).segments; } catch { state.segments = []; }
    if (!segmentName) { textarea.focus(); return; }
    try {
      const segment = await api('GET', `/v1/segments/${enc(segmentName)}`);
      state.segment = segment;
      name.value = segment.name;
      name.disabled = true;
      description.value = segment.description || '';
      textarea.value = segment.rule || '';
      saveButton.textContent = 'Save new version';
      paint(textarea.value, null);
      state.lastInputAt = performance.now();
      preview(textarea.value);
    } catch (error) {
      message.className = 'rule-message bad';
      message.textContent = error.message;
    }
  }
  loadSegment();
  return () => { if (state.controller) state.controller.abort(); clearTimeout(state.timer); };
}

// The explain tree: each condition with its result and what the profile holds.
export function explanationView(result) {
  const node = (condition) => h('li', {},
    h('span', { class: condition.result ? 'mark-yes' : 'mark-no', 'aria-label': condition.result ? 'true' : 'false' }, condition.result ? '✓ ' : '✗ '),
    h('code', {}, condition.rule),
    condition.trait_name !== undefined ? h('span', { class: 'have' }, `has ${condition.trait_name} = ${JSON.stringify(condition.value)}`) : null,
    condition.event !== undefined ? h('span', { class: 'have' }, condition.event_summary ? `${condition.event}: ${fmt(condition.event_summary.count)} times, last ${condition.event_summary.last}` : `never did ${condition.event}`) : null,
    condition.conditions && condition.conditions.length ? h('ul', {}, condition.conditions.map(node)) : null);
  return h('div', { 'data-test': 'explanation' },
    h('p', {}, h('b', {}, result.profile), result.member ? ' is a member of ' : ' is not a member of ', h('b', {}, result.segment), ` (v${result.version})`),
    result.evaluated ? h('ul', {}, node(result.evaluated)) : h('p', { class: 'muted' }, 'A static segment: membership is the uploaded list.'));
}
