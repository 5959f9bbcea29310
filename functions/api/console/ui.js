// Small DOM helpers. Everything from the API goes in as text nodes, never
// as HTML.

// h('button', {type: 'button', onclick: f, class: 'x'}, 'text', child...)
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let ids = 0;
export const uid = (p) => `${p}-${++ids}`;

// A labelled form field; `input` is the control (its id is set here).
export function field(label, input, hint) {
  input.id = input.id || uid('f');
  const hintEl = hint ? h('span', { class: 'hint', id: input.id + '-hint' }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: input.id }, label), input, hintEl);
}

// The polite live region: what a screen reader announces after an action.
export function announce(text) {
  const el = document.getElementById('status');
  el.textContent = '';
  // A new text node each time, so the same words are announced again.
  setTimeout(() => (el.textContent = text), 30);
}

// An API error as the API words it: code, message, details, request id,
// and for 429 the wait it asks for.
export function errorBox(err) {
  const lines = [h('strong', {}, err.code ? `${err.code}: ` : ''), err.message];
  const extra = [];
  if (err.status === 429 || err.retryAfter !== null) {
    if (err.retryAfter !== null && !Number.isNaN(err.retryAfter)) {
      extra.push(h('p', { class: 'retry' }, `Retry after ${err.retryAfter} s.`));
    }
  }
  if (err.details && Object.keys(err.details).length) {
    extra.push(h('p', { class: 'details' }, Object.entries(err.details).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(', ')));
  }
  if (err.requestId) extra.push(h('p', { class: 'muted' }, 'Request id: ', h('code', {}, err.requestId)));
  return h('div', { class: 'error', role: 'alert' }, h('p', {}, lines), extra);
}

export function loading(text = 'Loading…') {
  return h('p', { class: 'loading', role: 'status' }, text);
}

export function empty(text) {
  return h('p', { class: 'empty' }, text);
}

// Runs an action, shows its error in `where` (or announces success).
export async function run(where, action, done) {
  if (where) clear(where);
  try {
    const out = await action();
    if (done) announce(done);
    return out;
  } catch (err) {
    if (where) clear(where, errorBox(err));
    else announce(`${err.code}: ${err.message}`);
    throw err;
  }
}

export function fmtTime(s) {
  if (!s) return '—';
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? s : d.toLocaleString();
}

export function fmtNumber(n, digits = 0) {
  if (n === null || n === undefined) return '—';
  return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits });
}

export function fmtMs(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  return `${fmtNumber(seconds * 1000, 1)} ms`;
}

// A table with a caption; rows are arrays of cells (strings or nodes).
export function table(caption, headers, rows, cls) {
  return h('div', { class: 'table-wrap' },
    h('table', { class: cls || null },
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c)))))));
}

// A secret shown once: read-only field, a copy button and the warning.
export function secretOnce(label, value, warning) {
  const input = h('input', { type: 'text', readonly: true, value, class: 'secret', spellcheck: 'false', autocomplete: 'off' });
  input.value = value;
  const copy = h('button', { type: 'button', class: 'copy', onclick: () => copyText(input) }, 'Copy');
  const box = h('div', { class: 'once', role: 'region', 'aria-label': label },
    h('p', { class: 'warning' }, h('strong', {}, 'Copy it now. '), warning),
    field(label, input),
    copy);
  setTimeout(() => input.focus(), 0);
  return box;
}

async function copyText(input) {
  input.select();
  let ok = false;
  try {
    await navigator.clipboard.writeText(input.value);
    ok = true;
  } catch {
    ok = document.execCommand && document.execCommand('copy');
  }
  announce(ok ? 'Copied to the clipboard.' : 'Could not copy: select the text and copy it yourself.');
  input.closest('.once')?.classList.toggle('copied', ok);
}

// A modal question; resolves true on the confirming button.
export function confirmDialog(question, yes) {
  return new Promise((resolve) => {
    const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': uid('q') });
    const q = h('p', { id: dialog.getAttribute('aria-labelledby') }, question);
    const close = (v) => {
      dialog.close();
      dialog.remove();
      resolve(v);
    };
    dialog.append(q, h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'secondary', onclick: () => close(false) }, 'Cancel'),
      h('button', { type: 'button', class: 'danger', onclick: () => close(true) }, yes)));
    dialog.addEventListener('cancel', (e) => {
      e.preventDefault();
      close(false);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

export function badge(text, kind) {
  return h('span', { class: `badge ${kind || ''}` }, text);
}
