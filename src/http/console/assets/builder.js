// The rule builder: edits the rule's JSON AST in place (the same AST the text view
// parses to and prints from). Traits, values and events come from GET /v1/schema.
import { h } from './ui.js';

const TRAIT_OPS = {
  string: ['=', '!=', 'in', 'not in', 'contains', 'starts_with', 'ends_with', 'exists'],
  integer: ['=', '!=', '<', '<=', '>', '>=', 'between', 'exists'],
  float: ['=', '!=', '<', '<=', '>', '>=', 'between', 'exists'],
  boolean: ['is true', 'is false', 'exists'],
  timestamp: ['within last', 'more than ago', 'less than ago', 'within next', 'exists'],
  list: ['contains', 'exists'],
};
const RECENCY = { 'within last': 'within_last', 'more than ago': 'more_than_ago', 'less than ago': 'less_than_ago', 'within next': 'within_next' };
const UNITS = ['minutes', 'hours', 'days'];
const COMPARE = ['=', '!=', '<', '<=', '>', '>='];

function opOf(node) {
  switch (node.kind) {
    case 'compare': return typeof node.value === 'boolean' && node.op === '=' ? (node.value ? 'is true' : 'is false') : node.op;
    case 'between': return 'between';
    case 'in': return node.negated ? 'not in' : 'in';
    case 'text': return node.op;
    case 'has': return 'exists';
    case 'recent': return Object.keys(RECENCY).find((key) => RECENCY[key] === node.recency);
    default: return null;
  }
}

function typed(type, raw) {
  if (type === 'integer') return /^-?\d+$/.test(String(raw).trim()) ? parseInt(raw, 10) : null;
  if (type === 'float') { const value = Number(String(raw).trim()); return String(raw).trim() !== '' && Number.isFinite(value) ? value : null; }
  return String(raw);
}

// A trait condition for (trait, op), keeping the previous value where it fits.
function traitNode(traitName, type, op, previous) {
  const keep = previous && previous.value !== undefined && typeof previous.value !== 'boolean' ? previous.value : '';
  switch (op) {
    case 'is true': return { kind: 'compare', trait: traitName, op: '=', value: true };
    case 'is false': return { kind: 'compare', trait: traitName, op: '=', value: false };
    case 'exists': return { kind: 'has', trait: traitName };
    case 'between': return { kind: 'between', trait: traitName, low: typed(type, keep) ?? 0, high: typed(type, keep) ?? 0 };
    case 'in': case 'not in': return { kind: 'in', trait: traitName, values: keep === '' ? [] : [keep], negated: op === 'not in' };
    case 'contains': case 'starts_with': case 'ends_with': return { kind: 'text', trait: traitName, op, value: String(keep) };
    default:
      if (RECENCY[op]) return { kind: 'recent', trait: traitName, recency: RECENCY[op], span: { amount: 30, unit: 'days' } };
      return { kind: 'compare', trait: traitName, op, value: type === 'integer' || type === 'float' ? (typed(type, keep) ?? '') : String(keep) };
  }
}

function select(options, value, onchange, attributes = {}) {
  const element = h('select', attributes, options.map(([optionValue, label]) => h('option', { value: optionValue, selected: optionValue === value }, label)));
  element.value = value;
  element.addEventListener('change', () => onchange(element.value));
  return element;
}

let listCounter = 0;

export function renderBuilder(container, root, schema, segments, onChange) {
  const traits = new Map(schema.traits.map((info) => [info.name, info]));
  const events = new Map(schema.events.map((info) => [info.name, info]));
  const complete = () => {
    let ok = true;
    const visit = (node) => {
      if (!node) return;
      if (node.kind === 'and' || node.kind === 'or') node.rules.forEach(visit);
      else if (node.kind === 'not') visit(node.rule);
      else if (node.kind === 'compare' && (node.value === '' || node.value === null)) ok = false;
      else if (node.kind === 'between' && (node.low === null || node.high === null)) ok = false;
      else if (node.kind === 'in' && !node.values.length) ok = false;
      else if ((node.kind === 'event_count' || node.kind === 'performed' || node.kind === 'aggregate') && !node.event) ok = false;
      else if (node.kind === 'aggregate' && (!node.property || node.value === null)) ok = false;
      else if (node.kind === 'in_segment' && !node.segment) ok = false;
    };
    visit(root);
    return ok;
  };
  const changed = (rerender) => { if (rerender) draw(); onChange(root, complete()); };
  // Group ops drop empty groups from the AST the server sees? No: an empty group is an
  // error there too, so the builder only ever sends groups with conditions.
  function draw() { container.replaceChildren(groupView(root, null)); }

  function valueInput(node, type) {
    const onValue = (raw, field = 'value') => { node[field] = typed(type, raw); changed(false); };
    const info = traits.get(node.trait);
    const listId = 'values-' + (++listCounter);
    const suggestions = info && info.top_values ? h('datalist', { id: listId }, info.top_values.map((top) => h('option', { value: top.value }))) : null;
    switch (node.kind) {
      case 'compare':
        if (typeof node.value === 'boolean') return null;
        return [h('input', { class: 'value', 'data-test': 'builder-value', list: suggestions ? listId : null, type: type === 'integer' || type === 'float' ? 'number' : 'text',
          step: type === 'float' ? 'any' : null, value: node.value === null ? '' : String(node.value), oninput: (event) => onValue(event.target.value) }), suggestions];
      case 'between':
        return [h('input', { type: 'number', value: String(node.low ?? ''), 'aria-label': 'from', oninput: (event) => onValue(event.target.value, 'low') }), 'and',
          h('input', { type: 'number', value: String(node.high ?? ''), 'aria-label': 'to', oninput: (event) => onValue(event.target.value, 'high') })];
      case 'in':
        return [h('input', { class: 'value', 'data-test': 'builder-value', list: suggestions ? listId : null, placeholder: 'values, comma separated', value: node.values.join(', '),
          oninput: (event) => { node.values = event.target.value.split(',').map((part) => part.trim()).filter(Boolean).map((part) => typed(type, part)).filter((part) => part !== null); changed(false); } }), suggestions];
      case 'text':
        return [h('input', { class: 'value', 'data-test': 'builder-value', list: suggestions ? listId : null, value: node.value, oninput: (event) => { node.value = event.target.value; changed(false); } }), suggestions];
      case 'recent':
        return spanInputs(node.span);
      default: return null;
    }
  }

  function spanInputs(span) {
    return [h('input', { type: 'number', min: '1', value: String(span.amount), 'aria-label': 'amount', oninput: (event) => { const value = parseInt(event.target.value, 10); if (value > 0) { span.amount = value; changed(false); } } }),
      select(UNITS.map((unit) => [unit, unit]), span.unit, (unit) => { span.unit = unit; changed(false); }, { 'aria-label': 'unit' })];
  }

  function windowInputs(node) {
    const kind = node.window.type;
    return [select([['lifetime', 'ever'], ['last', 'in the last']], kind === 'between' ? 'lifetime' : kind, (value) => {
      node.window = value === 'last' ? { type: 'last', span: { amount: 30, unit: 'days' } } : { type: 'lifetime' };
      changed(true);
    }, { 'aria-label': 'window' }), kind === 'last' ? spanInputs(node.window.span) : null];
  }

  function eventSelect(node) {
    const names = [...events.keys()];
    if (node.event && !events.has(node.event)) names.unshift(node.event);
    return select([['', 'choose an event…'], ...names.map((name) => [name, name])], node.event || '', (value) => { node.event = value; changed(true); }, { 'aria-label': 'event', 'data-test': 'builder-event' });
  }

  function conditionView(node, replace) {
    if (['compare', 'between', 'in', 'text', 'has', 'recent'].includes(node.kind)) {
      const info = traits.get(node.trait);
      const type = info ? info.type : 'string';
      const names = [...traits.keys()];
      if (!traits.has(node.trait)) names.unshift(node.trait);
      const ops = TRAIT_OPS[type] || TRAIT_OPS.string;
      const op = opOf(node);
      return [
        select(names.map((name) => [name, name]), node.trait, (name) => {
          const nextType = (traits.get(name) || {}).type || 'string';
          const nextOps = TRAIT_OPS[nextType];
          replace(traitNode(name, nextType, nextOps.includes(op) ? op : nextOps[0], null));
        }, { 'aria-label': 'trait', 'data-test': 'builder-trait' }),
        select(ops.map((value) => [value, value.replace('_', ' ')]), ops.includes(op) ? op : ops[0], (value) => replace(traitNode(node.trait, type, value, node)), { 'aria-label': 'operator', 'data-test': 'builder-op' }),
        valueInput(node, type),
      ];
    }
    if (node.kind === 'event_count') {
      const mode = node.count_op === 'at_least' && node.count === 1 ? 'did' : node.count_op === 'exactly' && node.count === 0 ? 'did not' : 'count';
      return [
        select([['did', 'did'], ['did not', 'did not'], ['count', 'did, counting']], mode, (value) => {
          if (value === 'did') Object.assign(node, { count_op: 'at_least', count: 1 });
          else if (value === 'did not') Object.assign(node, { count_op: 'exactly', count: 0 });
          else Object.assign(node, { count_op: 'at_least', count: 2 });
          changed(true);
        }, { 'aria-label': 'behavior' }),
        eventSelect(node),
        mode === 'count' ? [select([['at_least', 'at least'], ['at_most', 'at most'], ['exactly', 'exactly']], node.count_op, (value) => { node.count_op = value; changed(false); }, { 'aria-label': 'count operator' }),
          h('input', { type: 'number', min: '0', value: String(node.count), 'aria-label': 'times', oninput: (event) => { const value = parseInt(event.target.value, 10); if (value >= 0) { node.count = value; changed(false); } } }), 'times'] : null,
        windowInputs(node),
        node.where ? h('span', { class: 'chip', title: 'Edit property filters in the text view' }, 'where …') : null,
      ];
    }
    if (node.kind === 'performed') {
      return [
        select([['first', 'first'], ['last', 'last']], node.which, (value) => { node.which = value; changed(false); }, { 'aria-label': 'first or last' }),
        eventSelect(node),
        select(Object.entries(RECENCY).map(([label, value]) => [value, label]), node.recency, (value) => { node.recency = value; changed(false); }, { 'aria-label': 'recency' }),
        spanInputs(node.span),
      ];
    }
    if (node.kind === 'aggregate') {
      const properties = (events.get(node.event) || { properties: [] }).properties;
      return [
        select([['sum', 'sum'], ['avg', 'average'], ['min', 'min'], ['max', 'max'], ['count_distinct', 'count distinct']], node.function, (value) => { node.function = value; changed(false); }, { 'aria-label': 'aggregate' }),
        'of', eventSelect(node), '.',
        select([['', 'property…'], ...properties.map((name) => [name, name])], node.property || '', (value) => { node.property = value; changed(false); }, { 'aria-label': 'property' }),
        windowInputs(node),
        select(COMPARE.map((value) => [value, value]), node.op, (value) => { node.op = value; changed(false); }, { 'aria-label': 'operator' }),
        h('input', { type: 'number', step: 'any', value: node.value === null ? '' : String(node.value), 'aria-label': 'value', oninput: (event) => { const value = Number(event.target.value); node.value = event.target.value !== '' && Number.isFinite(value) ? value : null; changed(false); } }),
        node.where ? h('span', { class: 'chip' }, 'where …') : null,
      ];
    }
    if (node.kind === 'in_segment') {
      return ['in segment', select([['', 'choose…'], ...segments.map((segment) => [segment.name, segment.name])], node.segment, (value) => { node.segment = value; changed(false); }, { 'aria-label': 'segment' })];
    }
    return [h('span', { class: 'chip', title: 'Edit this condition in the text view' }, node.kind.replace('_', ' '))];
  }

  function groupView(group, replaceSelf, negated = false) {
    const rows = group.rules.map((child, index) => {
      const replace = (next) => { group.rules[index] = next; changed(true); };
      const remove = () => { group.rules.splice(index, 1); changed(true); };
      const isNot = child.kind === 'not';
      const inner = isNot ? child.rule : child;
      const replaceInner = isNot ? (next) => { child.rule = next; changed(true); } : replace;
      const notToggle = h('button', { type: 'button', class: 'small' + (isNot ? ' danger' : ''), 'aria-pressed': String(isNot), title: 'Negate',
        onclick: () => replace(isNot ? child.rule : { kind: 'not', rule: child }) }, 'not');
      const removeButton = h('button', { type: 'button', class: 'small ghost', 'aria-label': 'Remove condition', onclick: remove }, '✕');
      if (inner.kind === 'and' || inner.kind === 'or') {
        return h('div', {}, groupView(inner, replaceInner, isNot), h('div', { class: 'builder-row' }, notToggle, removeButton));
      }
      return h('div', { class: 'builder-row', 'data-test': 'builder-row' }, notToggle, conditionView(inner, replaceInner), removeButton);
    });
    const firstTrait = schema.traits[0];
    const add = (node) => { group.rules.push(node); changed(true); };
    return h('div', { class: 'builder-group' + (negated ? ' not' : '') },
      h('div', { class: 'builder-head' }, negated ? h('b', {}, 'not: ') : null, 'Match',
        select([['and', 'all of'], ['or', 'any of']], group.kind, (value) => { group.kind = value; changed(true); }, { 'aria-label': 'combine with', 'data-test': 'builder-combine' }),
        'these conditions'),
      rows.length ? rows : h('div', { class: 'muted' }, 'No conditions yet.'),
      h('div', { class: 'builder-add' },
        firstTrait ? h('button', { type: 'button', class: 'small', 'data-test': 'add-trait', onclick: () => add(traitNode(firstTrait.name, firstTrait.type, TRAIT_OPS[firstTrait.type][0], null)) }, '+ Trait') : null,
        h('button', { type: 'button', class: 'small', 'data-test': 'add-behavior', onclick: () => add({ kind: 'event_count', event: schema.events[0] ? schema.events[0].name : '', count_op: 'at_least', count: 1, window: { type: 'lifetime' } }) }, '+ Did event'),
        h('button', { type: 'button', class: 'small', onclick: () => add({ kind: 'performed', event: schema.events[0] ? schema.events[0].name : '', which: 'last', recency: 'within_last', span: { amount: 7, unit: 'days' } }) }, '+ First/last'),
        h('button', { type: 'button', class: 'small', onclick: () => add({ kind: 'aggregate', function: 'sum', event: '', property: '', window: { type: 'lifetime' }, op: '>', value: null }) }, '+ Aggregate'),
        segments.length ? h('button', { type: 'button', class: 'small', onclick: () => add({ kind: 'in_segment', segment: segments[0].name }) }, '+ In segment') : null,
        h('button', { type: 'button', class: 'small', onclick: () => add({ kind: group.kind === 'and' ? 'or' : 'and', rules: [] }) }, '+ Group'),
        replaceSelf ? null : null));
  }
  draw();
}
