// Small DOM helpers shared by the pages.
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (name === 'class') element.className = value;
    else if (name === 'dataset') Object.assign(element.dataset, value);
    else if (name === 'value') element.value = value;
    else element.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

const numbers = new Intl.NumberFormat('en-US');
export const fmt = (value) => (typeof value === 'number' ? numbers.format(value) : '—');
export const ms = (value) => (value < 10 ? value.toFixed(2) : value.toFixed(1)) + ' ms';

export function when(value) {
  const date = typeof value === 'number' ? new Date(value) : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString('en-GB', { year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function ago(valueMs) {
  const seconds = Math.round((Date.now() - valueMs) / 1000);
  if (seconds < 60) return `${Math.max(seconds, 0)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

export function empty(title, text, ...actions) {
  return h('div', { class: 'empty' }, h('b', {}, title), h('div', {}, text), actions.length ? h('div', { style: 'margin-top:12px' }, actions) : null);
}

export function failure(error, retry) {
  return h('div', { class: 'error-state', role: 'alert' },
    h('b', {}, 'Could not load this'),
    h('div', {}, error && error.message ? error.message : String(error)),
    retry ? h('div', { style: 'margin-top:12px' }, h('button', { type: 'button', onclick: retry }, 'Try again')) : null);
}

let toastTimer = null;
export function toast(text, bad = false) {
  const element = document.getElementById('toast');
  element.textContent = text;
  element.className = 'toast show' + (bad ? ' bad' : '');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { element.className = 'toast'; }, 3500);
}

// A modal dialog; resolves true on confirm. Escape or Cancel resolve false.
export function confirmDialog({ title, body, confirm = 'Confirm', danger = false }) {
  return new Promise((resolve) => {
    const previous = document.activeElement;
    const close = (answer) => { back.remove(); document.removeEventListener('keydown', onKey); if (previous) previous.focus(); resolve(answer); };
    const onKey = (event) => { if (event.key === 'Escape') close(false); };
    const ok = h('button', { type: 'button', class: danger ? 'danger solid' : 'primary', 'data-test': 'confirm', onclick: () => close(true) }, confirm);
    const back = h('div', { class: 'modal-back', onclick: (event) => { if (event.target === back) close(false); } },
      h('div', { class: 'modal', role: 'dialog', 'aria-modal': 'true', 'aria-label': title },
        h('h2', {}, title), body,
        h('div', { class: 'actions' }, h('button', { type: 'button', onclick: () => close(false) }, 'Cancel'), ok)));
    document.body.append(back);
    document.addEventListener('keydown', onKey);
    ok.focus();
  });
}

export function pageHead(title, subtitle, ...actions) {
  return h('div', { class: 'page-head' },
    h('div', {}, h('h1', {}, title), subtitle ? h('div', { class: 'muted' }, subtitle) : null),
    h('div', { class: 'actions' }, actions));
}

export function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
  const link = h('a', { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
