// The console's pages. Each takes the signed-in context ({me, can}) and the
// element to draw into; what the key's scopes forbid is not offered.

import * as api from './api.js';
import { h, clear, field, announce, errorBox, loading, empty, run, fmtTime, fmtNumber, fmtMs, table, secretOnce, confirmDialog, badge } from './ui.js';
import { stackedBars, points, byClass, CLASSES } from './charts.js';

const EVENTS = ['api_key.created', 'api_key.updated', 'api_key.rotated', 'api_key.revoked', 'api_key.deleted', 'api_key.expired', 'api_key.rotation_due', 'rate_limit.exceeded', 'webhook.test', 'webhook.endpoint_disabled', 'account.plan_changed'];
const KNOWN_SCOPES = ['keys:read', 'keys:write', 'keys:verify', 'usage:read', 'webhooks:read', 'webhooks:write', 'accounts:write'];

function heading(text, ...extra) {
  const h1 = h('h1', { tabindex: '-1' }, text);
  return h('div', { class: 'page-head' }, h1, extra);
}

function needs(scope) {
  return h('p', { class: 'muted' }, `This key cannot see this (it needs the ${scope} scope).`);
}

function stat(label, value) {
  return h('div', { class: 'stat' }, h('span', { class: 'stat-label' }, label), h('span', { class: 'stat-value' }, value));
}

async function guarded(where, action) {
  try {
    return await action();
  } catch (err) {
    clear(where, errorBox(err));
    return null;
  }
}

// ---------------------------------------------------------------- overview

export async function overview(ctx, main) {
  clear(main, heading('Overview'));
  if (!ctx.can('usage:read')) {
    main.append(needs('usage:read'));
    return;
  }
  const body = h('div', {}, loading());
  main.append(body);
  const stats = await guarded(body, () => api.get('/dashboard/stats'));
  if (!stats) return;
  const u = stats.api_usage || {};
  clear(body,
    h('section', { class: 'stats', 'aria-label': 'Statistics' },
      stat('Active keys', fmtNumber(stats.active_api_keys)),
      stat('API calls', fmtNumber(stats.total_api_calls)),
      stat('Success rate', u.success_rate === undefined || u.success_rate === null ? '—' : `${fmtNumber(u.success_rate, 1)} %`),
      stat('Average latency', fmtMs(u.avg_response_time))));
  const charts = h('section', { class: 'charts', 'aria-label': 'Calls over time' }, loading('Loading charts…'));
  body.append(charts);
  if (!stats.total_api_calls) {
    clear(charts, empty('No calls yet. Calls made with the account’s keys show up here (usage trails live traffic by a few seconds).'));
  } else {
    // The account's own series: every key's calls, added up by the API.
    const series = async (granularity) => points((await api.get('/dashboard/usage', { granularity })).series, granularity);
    const ok = await guarded(charts, async () => {
      const [hours, days] = await Promise.all([series('hour'), series('day')]);
      clear(charts,
        stackedBars('Calls per hour, last 24 hours', hours, { tick: (i) => i % 4 === 0 }),
        stackedBars('Calls per day, last 30 days', days, { tick: (i) => i % 5 === 0 }));
      return true;
    });
    if (!ok) return;
  }
  const rows = (stats.api_keys || []).slice(0, 10).map((k) => [
    keyLink(k, ctx), k.is_active ? badge('active', 'ok') : badge('inactive', 'off'), fmtNumber(k.usage_count), fmtTime(k.last_used)]);
  body.append(h('section', {}, h('h2', {}, 'Most used keys'),
    rows.length ? table('Most used keys', ['Key', 'Status', 'Calls', 'Last used'], rows) : empty('No keys yet.')));
}

function keyLink(k, ctx) {
  return ctx.can('keys:read') ? h('a', { href: `#/keys/${encodeURIComponent(k.id)}` }, k.name || k.id) : k.name || k.id;
}

// -------------------------------------------------------------------- keys

function keyState(k) {
  if (k.rotated_to) return badge('rotated', 'warn');
  if (k.expires_at && new Date(k.expires_at) <= new Date()) return badge('expired', 'off');
  return k.is_active ? badge('active', 'ok') : badge('inactive', 'off');
}

// The scopes a new key may be given: the caller's own (wildcards expanded
// to the known scopes they cover).
function grantable(ctx) {
  const own = ctx.me.scopes || [];
  const out = new Set(own);
  for (const s of KNOWN_SCOPES) if (api.grants(own, s)) out.add(s);
  return [...out].sort((a, b) => (a === '*' ? -1 : b === '*' ? 1 : a.localeCompare(b)));
}

const listState = { page: 1, size: 10, is_active: '', environment: '', sort: 'created_at', order: 'desc', q: '' };

export async function keys(ctx, main) {
  clear(main, heading('API keys'));
  if (!ctx.can('keys:read')) {
    main.append(needs('keys:read'));
    return;
  }
  const notice = h('div', { class: 'notice', tabindex: '-1' });
  const listBox = h('div', { class: 'list' });
  const reload = () => drawList(ctx, listBox, notice, reload);
  if (ctx.can('keys:write')) main.append(createKeyForm(ctx, notice, reload));
  main.append(notice, filters(reload), listBox);
  await reload();
}

function select(name, label, options, value, onchange) {
  const s = h('select', { name, onchange }, options.map(([v, t]) => h('option', { value: v, selected: v === value }, t)));
  return field(label, s);
}

function filters(reload) {
  const st = listState;
  const change = (k) => (e) => {
    st[k] = e.target.value;
    st.page = 1;
    reload();
  };
  const search = h('input', { type: 'search', name: 'q', value: st.q, placeholder: 'Name, id or prefix' });
  let timer = null;
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      st.q = search.value.trim();
      st.page = 1;
      reload();
    }, 300);
  });
  return h('form', { class: 'filters', role: 'search', 'aria-label': 'Find keys', onsubmit: (e) => e.preventDefault() },
    field('Search', search),
    select('is_active', 'Status', [['', 'All'], ['true', 'Active'], ['false', 'Inactive']], st.is_active, change('is_active')),
    select('environment', 'Environment', [['', 'All'], ['live', 'Live'], ['test', 'Test']], st.environment, change('environment')),
    select('sort', 'Sort by', [['created_at', 'Created'], ['name', 'Name'], ['last_used', 'Last used']], st.sort, change('sort')),
    select('order', 'Order', [['desc', 'Descending'], ['asc', 'Ascending']], st.order, change('order')),
    select('size', 'Per page', [['10', '10'], ['25', '25'], ['50', '50'], ['100', '100']], String(st.size), change('size')));
}

async function drawList(ctx, box, notice, reload) {
  clear(box, loading('Loading keys…'));
  const st = listState;
  const q = { is_active: st.is_active, environment: st.environment, sort: st.sort, order: st.order };
  // The search is the API's (`q`: name, id or prefix), over all the keys.
  const data = await guarded(box, () => api.get('/api-keys', { ...q, q: st.q, page: st.page, size: st.size }));
  if (!data) return;
  if (!data.api_keys.length) {
    clear(box, empty(st.q ? `No key matches “${st.q}”.` : 'No keys match these filters.'));
    return;
  }
  const write = ctx.can('keys:write');
  const rows = data.api_keys.map((k) => [
    keyLink(k, ctx),
    h('code', {}, `${k.prefix}…${k.last4}`),
    k.environment,
    keyState(k),
    fmtTime(k.created_at),
    fmtTime(k.last_used),
    fmtNumber(k.usage_count),
    write ? keyActions(ctx, k, notice, reload) : '',
  ]);
  const headers = ['Name', 'Key', 'Environment', 'Status', 'Created', 'Last used', 'Calls', write ? 'Actions' : ''];
  const prev = h('button', { type: 'button', class: 'secondary', disabled: st.page <= 1, onclick: () => { st.page -= 1; reload(); } }, '← Previous');
  const next = h('button', { type: 'button', class: 'secondary', disabled: !data.has_next, onclick: () => { st.page += 1; reload(); } }, 'Next →');
  clear(box,
    table(`Keys, page ${data.page} of ${data.total_pages}`, headers, rows, 'keys'),
    h('nav', { class: 'pager', 'aria-label': 'Pages' }, prev,
      h('span', { 'aria-live': 'polite' }, `Page ${data.page} of ${data.total_pages} · ${fmtNumber(data.total)} keys`), next));
}

function keyActions(ctx, k, notice, reload) {
  const wrap = h('div', { class: 'row-actions' });
  const retired = !!k.rotated_to || (k.expires_at && new Date(k.expires_at) <= new Date());
  if (!retired) {
    wrap.append(h('button', { type: 'button', class: 'small', 'aria-label': `Rotate ${k.name}`, onclick: () => rotateKey(k, notice, reload) }, 'Rotate'));
    wrap.append(h('button', {
      type: 'button', class: 'small secondary', 'aria-label': `${k.is_active ? 'Deactivate' : 'Reactivate'} ${k.name}`,
      onclick: () => run(notice, () => api.patch(`/api-keys/${k.id}`, { is_active: !k.is_active }), `${k.name} ${k.is_active ? 'deactivated' : 'reactivated'}.`).then(reload, () => notice.focus()),
    }, k.is_active ? 'Deactivate' : 'Reactivate'));
  }
  wrap.append(h('button', { type: 'button', class: 'small danger', 'aria-label': `Delete ${k.name}`, onclick: () => deleteKey(k, notice, reload) }, 'Delete'));
  return wrap;
}

async function deleteKey(k, notice, reload) {
  if (!(await confirmDialog(`Delete the key “${k.name}” (${k.prefix}…${k.last4})? It stops working at once and cannot be brought back.`, 'Delete key'))) return;
  try {
    await run(notice, () => api.del(`/api-keys/${k.id}`), `${k.name} deleted.`);
    if (reload) await reload();
    else location.hash = '#/keys';
  } catch {
    notice.focus();
  }
}

async function rotateKey(k, notice, reload) {
  const grace = h('input', { type: 'number', min: '0', max: '2592000', value: '86400', name: 'grace_period_seconds', required: true });
  const dialog = h('dialog', { class: 'confirm', 'aria-label': `Rotate ${k.name}` });
  const errors = h('div');
  const done = (v) => {
    dialog.close();
    dialog.remove();
    return v;
  };
  const form = h('form', {
    method: 'dialog',
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        const r = await run(errors, () => api.post(`/api-keys/${k.id}/rotate`, { grace_period_seconds: Number(grace.value) }));
        done();
        const until = r.previous_key && r.previous_key.expires_at;
        clear(notice, secretOnce('New key', r.key, `This is the only time the new key of “${r.name}” is shown. The old key works until ${fmtTime(until)}.`));
        announce(`${k.name} rotated. The new key is shown once.`);
        if (reload) await reload();
      } catch {
        grace.focus();
      }
    },
  },
  h('h2', {}, `Rotate “${k.name}”`),
  h('p', {}, 'A new key with the same settings is made; the old one keeps working for the grace period, then expires.'),
  field('Grace period (seconds)', grace, '0 retires the old key now; at most 30 days (2592000).'),
  errors,
  h('div', { class: 'actions' },
    h('button', { type: 'button', class: 'secondary', onclick: () => done() }, 'Cancel'),
    h('button', { type: 'submit' }, 'Rotate key')));
  dialog.append(form);
  document.body.append(dialog);
  dialog.showModal();
}

function createKeyForm(ctx, notice, reload) {
  const errors = h('div');
  const name = h('input', { name: 'name', required: true, maxlength: '100', autocomplete: 'off' });
  const description = h('textarea', { name: 'description', maxlength: '500', rows: '2' });
  const env = h('select', { name: 'environment' }, h('option', { value: 'live' }, 'live'), h('option', { value: 'test' }, 'test'));
  const expires = h('input', { type: 'datetime-local', name: 'expires_at' });
  const limits = ['per_minute', 'per_hour', 'per_day'].map((w) => h('input', { type: 'number', min: '1', name: w, placeholder: 'default', inputmode: 'numeric' }));
  const metadata = h('textarea', { name: 'metadata', rows: '2', placeholder: '{"team": "billing"}', spellcheck: 'false' });
  const scopes = grantable(ctx).map((s) => h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'scopes', value: s }), ' ', h('code', {}, s)));
  const form = h('form', {
    class: 'card create',
    'aria-labelledby': 'create-key-h',
    onsubmit: async (e) => {
      e.preventDefault();
      const body = { name: name.value, environment: env.value };
      if (description.value) body.description = description.value;
      const picked = scopes.map((l) => l.querySelector('input')).filter((i) => i.checked).map((i) => i.value);
      if (picked.length) body.scopes = picked;
      if (expires.value) body.expires_at = new Date(expires.value).toISOString();
      const rl = {};
      limits.forEach((i) => i.value && (rl[i.name] = Number(i.value)));
      if (Object.keys(rl).length) body.rate_limits = rl;
      if (metadata.value.trim()) {
        try {
          body.metadata = JSON.parse(metadata.value);
        } catch (err) {
          clear(errors, h('div', { class: 'error', role: 'alert' }, `Metadata is not JSON: ${err.message}`));
          metadata.focus();
          return;
        }
      }
      try {
        const k = await run(errors, () => api.post('/api-keys', body));
        form.reset();
        clear(notice, secretOnce('New key', k.key, `This is the only time the key “${k.name}” is shown: keyhub keeps only a hash of it.`));
        announce(`Key ${k.name} created. It is shown once.`);
        await reload();
      } catch {
        errors.querySelector('.error')?.setAttribute('tabindex', '-1');
        errors.querySelector('.error')?.focus();
      }
    },
  },
  h('h2', { id: 'create-key-h' }, 'Create a key'),
  h('div', { class: 'grid' },
    field('Name', name),
    field('Environment', env),
    field('Expires (optional)', expires, 'Your local time; empty: never.'),
    field('Description (optional)', description)),
  h('fieldset', {}, h('legend', {}, 'Scopes (none: the API’s default)'), h('div', { class: 'checks' }, scopes)),
  h('fieldset', {}, h('legend', {}, 'Rate limits (empty: the deployment’s default)'),
    h('div', { class: 'grid' }, field('Per minute', limits[0]), field('Per hour', limits[1]), field('Per day', limits[2]))),
  field('Metadata (optional JSON object)', metadata),
  errors,
  h('button', { type: 'submit' }, 'Create key'));
  return h('details', { class: 'create-wrap' }, h('summary', {}, 'Create a key'), form);
}

// ---------------------------------------------------------------- one key

export async function key(ctx, main, id) {
  clear(main, heading('API key'), h('p', {}, h('a', { href: '#/keys' }, '← All keys')));
  if (!ctx.can('keys:read')) {
    main.append(needs('keys:read'));
    return;
  }
  const notice = h('div', { class: 'notice', tabindex: '-1' });
  const body = h('div', {}, loading());
  main.append(notice, body);
  const draw = async () => {
    const k = await guarded(body, () => api.get(`/api-keys/${encodeURIComponent(id)}`));
    if (!k) return;
    main.querySelector('h1').textContent = `API key “${k.name}”`;
    const limits = k.rate_limits || {};
    const details = h('dl', { class: 'details' },
      ...[
        ['Id', h('code', {}, k.id)], ['Key', h('code', {}, `${k.prefix}…${k.last4}`)], ['Status', keyState(k)],
        ['Environment', k.environment], ['Description', k.description || '—'],
        ['Scopes', (k.scopes || []).length ? k.scopes.map((s) => h('code', { class: 'scope' }, s)) : '—'],
        ['Created', fmtTime(k.created_at)], ['Updated', fmtTime(k.updated_at)], ['Expires', k.expires_at ? fmtTime(k.expires_at) : 'never'],
        ['Last used', fmtTime(k.last_used)], ['Calls', fmtNumber(k.usage_count)],
        ['Rotated to', k.rotated_to ? h('a', { href: `#/keys/${k.rotated_to}` }, k.rotated_to) : null],
        ['Metadata', Object.keys(k.metadata || {}).length ? h('code', {}, JSON.stringify(k.metadata)) : '—'],
      ].filter(([, v]) => v !== null).map(([t, d]) => [h('dt', {}, t), h('dd', {}, d)]).flat());
    const actions = ctx.can('keys:write') ? keyActions(ctx, k, notice, draw) : null;
    const windows = h('section', {}, h('h2', {}, 'Rate limits'), loading());
    const usage = h('section', {}, h('h2', {}, 'Usage'), loading());
    const recent = (k.usage || []).map((r) => [fmtTime(r.created_at), `${r.method} ${r.endpoint}`, String(r.status_code), fmtMs(r.response_time), h('code', {}, r.id)]);
    clear(body, h('section', { class: 'card' }, details, actions), windows, usage,
      h('section', {}, h('h2', {}, 'Recent requests'),
        recent.length ? table('The key’s most recent requests, newest first', ['Time', 'Request', 'Status', 'Latency', 'Request id'], recent) : empty('No requests yet.')));
    await drawUsage(ctx, k, limits, windows, usage);
  };
  await draw();
}

// Where the key and its account stand in each window, from the key's
// `rate_limit_status` (read by the API without spending anything).
function standingTable(k, limits) {
  const st = k.rate_limit_status;
  const limitOf = (w) => (limits[w] ? fmtNumber(limits[w]) : 'deployment default');
  if (!st) {
    return [table('Limits', ['Window', 'Limit'], [['Minute', limitOf('per_minute')], ['Hour', limitOf('per_hour')], ['Day', limitOf('per_day')]]),
      h('p', { class: 'muted' }, 'Where the key stands in its windows could not be read just now.')];
  }
  const left = (w) => (w ? `${fmtNumber(w.remaining)} of ${fmtNumber(w.limit)}` : 'unlimited');
  const resets = (w) => (w ? new Date(w.reset * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' }) : '—');
  const rows = [['minute', 'Minute'], ['hour', 'Hour (UTC)'], ['day', 'Day (UTC)']].map(([w, label]) => {
    const mine = st.key && st.key[w];
    const acct = st.account && st.account[w];
    return [label, left(mine), resets(mine), left(acct)];
  });
  return [table('Rate limits: what is left in the current windows', ['Window', 'Key: left', 'Key: resets at', 'Account: left'], rows, 'standing'),
    h('p', { class: 'muted' }, 'Reading this spends nothing of the key’s limits. The account’s limits are shared by all its keys.')];
}

async function drawUsage(ctx, k, limits, windows, usage) {
  clear(windows, h('h2', {}, 'Rate limits'), ...standingTable(k, limits));
  if (!ctx.can('usage:read')) {
    clear(usage, h('h2', {}, 'Usage'), needs('usage:read'));
    return;
  }
  const got = await guarded(usage, async () => {
    const hours = await api.get(`/api-keys/${k.id}/usage`, { granularity: 'hour' });
    const days = await api.get(`/api-keys/${k.id}/usage`, { granularity: 'day' });
    return { hours, days };
  });
  if (!got) return;
  const { hours, days } = got;
  const endpoints = new Map();
  for (const s of days.series) {
    for (const e of s.endpoints || []) {
      const t = endpoints.get(e.endpoint) || { requests: 0, counts: { '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 } };
      t.requests += e.requests || 0;
      const c = byClass(e);
      for (const cl of CLASSES) t.counts[cl] += c[cl];
      endpoints.set(e.endpoint, t);
    }
  }
  const rows = [...endpoints.entries()].sort((a, b) => b[1].requests - a[1].requests).map(([e, t]) => [h('code', {}, e), fmtNumber(t.requests), ...CLASSES.map((c) => fmtNumber(t.counts[c]))]);
  const tot = days.totals || {};
  clear(usage, h('h2', {}, 'Usage'),
    h('section', { class: 'stats', 'aria-label': 'Last 30 days' },
      stat('Calls, 30 days', fmtNumber(tot.requests || 0)),
      stat('Average latency', fmtMs(tot.avg_response_time)),
      stat('Slowest', fmtMs(tot.max_response_time))),
    stackedBars('Calls per hour, last 24 hours', points(hours.series, 'hour'), { tick: (i) => i % 4 === 0 }),
    stackedBars('Calls per day, last 30 days', points(days.series, 'day'), { tick: (i) => i % 5 === 0 }),
    h('h3', {}, 'By endpoint, last 30 days'),
    rows.length ? table('Calls by endpoint and status class, last 30 days', ['Endpoint', 'Calls', ...CLASSES], rows) : empty('No calls in the last 30 days.'));
}

// ---------------------------------------------------------------- webhooks

function eventChecks(selected) {
  return h('div', { class: 'checks' }, ['*', ...EVENTS].map((e) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', name: 'events', value: e, checked: selected.includes(e) }), ' ', h('code', {}, e === '*' ? '* (every event)' : e))));
}

const checked = (box) => [...box.querySelectorAll('input:checked')].map((i) => i.value);

export async function webhooks(ctx, main) {
  clear(main, heading('Webhooks'));
  if (!ctx.can('webhooks:read')) {
    main.append(needs('webhooks:read'));
    return;
  }
  const notice = h('div', { class: 'notice', tabindex: '-1' });
  const list = h('div', {}, loading());
  const reload = async () => {
    const data = await guarded(list, () => api.get('/webhooks'));
    if (!data) return;
    const rows = data.webhooks.map((w) => [
      h('a', { href: `#/webhooks/${encodeURIComponent(w.id)}` }, w.url),
      (w.events || []).join(', '),
      w.is_active ? (w.failing_since ? badge('failing', 'warn') : badge('active', 'ok')) : badge(w.disabled_reason ? `disabled: ${w.disabled_reason}` : 'disabled', 'off'),
      fmtTime(w.created_at),
    ]);
    clear(list, rows.length ? table('Webhook endpoints', ['URL', 'Events', 'Status', 'Created'], rows) : empty('No webhook endpoints yet.'));
  };
  if (ctx.can('webhooks:write')) {
    const errors = h('div');
    const url = h('input', { type: 'url', name: 'url', required: true, placeholder: 'https://example.com/hooks/keyhub' });
    const description = h('input', { name: 'description', maxlength: '500' });
    const events = eventChecks(['*']);
    const form = h('form', {
      class: 'card create',
      'aria-labelledby': 'create-wh-h',
      onsubmit: async (e) => {
        e.preventDefault();
        const body = { url: url.value, events: checked(events) };
        if (description.value) body.description = description.value;
        try {
          const w = await run(errors, () => api.post('/webhooks', body));
          form.reset();
          clear(notice, secretOnce('Signing secret', w.secret, 'This is the only time the signing secret is shown. Your receiver checks webhook-signature with it.'),
            h('p', {}, h('a', { href: `#/webhooks/${w.id}` }, `Open ${w.url}`)));
          announce('Webhook endpoint created. Its signing secret is shown once.');
          await reload();
        } catch {
          url.focus();
        }
      },
    },
    h('h2', { id: 'create-wh-h' }, 'Add an endpoint'),
    field('URL', url, 'https only (plain http only where the deployment allows it, for local development).'),
    field('Description (optional)', description),
    h('fieldset', {}, h('legend', {}, 'Events'), events),
    errors,
    h('button', { type: 'submit' }, 'Add endpoint'));
    main.append(h('details', { class: 'create-wrap' }, h('summary', {}, 'Add an endpoint'), form));
  }
  main.append(notice, list);
  await reload();
}

export async function webhook(ctx, main, id) {
  clear(main, heading('Webhook endpoint'), h('p', {}, h('a', { href: '#/webhooks' }, '← All endpoints')));
  if (!ctx.can('webhooks:read')) {
    main.append(needs('webhooks:read'));
    return;
  }
  const notice = h('div', { class: 'notice', tabindex: '-1' });
  const body = h('div', {}, loading());
  const log = h('section', { 'aria-labelledby': 'log-h' });
  main.append(notice, body, log);
  const path = `/webhooks/${encodeURIComponent(id)}`;
  const write = ctx.can('webhooks:write');
  const draw = async () => {
    const w = await guarded(body, () => api.get(path));
    if (!w) return;
    main.querySelector('h1').textContent = `Webhook ${w.url}`;
    const details = h('dl', { class: 'details' },
      ...[['Id', h('code', {}, w.id)], ['URL', w.url], ['Status', w.is_active ? badge('active', 'ok') : badge(w.disabled_reason ? `disabled: ${w.disabled_reason}` : 'disabled', 'off')],
        ['Failing since', w.failing_since ? fmtTime(w.failing_since) : '—'], ['Description', w.description || '—'], ['Created', fmtTime(w.created_at)]]
        .map(([t, d]) => [h('dt', {}, t), h('dd', {}, d)]).flat());
    const parts = [h('section', { class: 'card' }, details)];
    if (write) {
      const errors = h('div');
      const events = eventChecks(w.events || []);
      const act = (label, fn, cls) => h('button', { type: 'button', class: cls || 'secondary', onclick: fn }, label);
      parts.push(h('section', { class: 'card' },
        h('h2', {}, 'Manage'),
        h('form', {
          'aria-label': 'Events',
          onsubmit: async (e) => {
            e.preventDefault();
            await run(errors, () => api.put(path, { events: checked(events) }), 'Events saved.').then(draw, () => {});
          },
        }, h('fieldset', {}, h('legend', {}, 'Events'), events), h('button', { type: 'submit' }, 'Save events')),
        errors,
        h('div', { class: 'actions' },
          act('Send a test event', () => run(errors, () => api.post(`${path}/test`), 'Test event queued; it shows in the delivery log in a moment.').then(() => setTimeout(drawLog, 1500), () => {}), ''),
          act(w.is_active ? 'Disable' : 'Enable', () => run(errors, () => api.put(path, { is_active: !w.is_active }), w.is_active ? 'Endpoint disabled.' : 'Endpoint enabled.').then(draw, () => {})),
          act('Rotate secret', async () => {
            if (!(await confirmDialog('Make a new signing secret? The old one keeps signing for 24 hours.', 'Rotate secret'))) return;
            const r = await run(errors, () => api.post(`${path}/rotate-secret`)).catch(() => null);
            if (r) {
              clear(notice, secretOnce('New signing secret', r.secret, `This is the only time the new secret is shown. The old one signs too until ${fmtTime(r.previous_secret_expires_at)}.`));
              announce('Secret rotated. The new one is shown once.');
            }
          }),
          act('Delete', async () => {
            if (!(await confirmDialog(`Delete the endpoint ${w.url}? Nothing more is delivered to it.`, 'Delete endpoint'))) return;
            await run(errors, () => api.del(path), 'Endpoint deleted.').then(() => (location.hash = '#/webhooks'), () => {});
          }, 'danger'))));
    }
    clear(body, parts);
  };
  let cursor = null;
  const rowsBox = h('div');
  const more = h('button', { type: 'button', class: 'secondary', hidden: true, onclick: () => drawLog(true) }, 'Older deliveries');
  const drawLog = async (append) => {
    if (!append) {
      cursor = null;
      clear(log, h('div', { class: 'page-head' }, h('h2', { id: 'log-h' }, 'Delivery log'),
        h('button', { type: 'button', class: 'secondary', onclick: () => drawLog() }, 'Refresh')), rowsBox, more);
      clear(rowsBox, loading('Loading deliveries…'));
    }
    const data = await guarded(rowsBox, () => api.get(`${path}/deliveries`, { limit: 20, cursor: cursor || '' }));
    if (!data) return;
    if (!append) rowsBox.replaceChildren();
    if (!append && !data.deliveries.length) rowsBox.append(empty('No deliveries yet. Send a test event to see one.'));
    for (const d of data.deliveries) rowsBox.append(delivery(d, path, write, () => drawLog()));
    cursor = data.next_cursor;
    more.hidden = !cursor;
  };
  await draw();
  await drawLog();
}

function delivery(d, path, write, reload) {
  const statusKind = { delivered: 'ok', failed: 'off', pending: 'warn', canceled: 'off' }[d.status] || '';
  const errors = h('div');
  const attempts = (d.attempts || []).map((a) => [
    String(a.attempt), fmtTime(a.attempted_at), a.status_code === null || a.status_code === undefined ? '—' : String(a.status_code),
    a.latency_ms === undefined ? '—' : `${fmtNumber(a.latency_ms, 0)} ms`, a.error || '—',
    a.response ? h('code', { class: 'excerpt' }, a.response.slice(0, 200)) : '—']);
  // A delivery waiting for its next automatic attempt may be retried now.
  const retry = write && (d.status !== 'pending' || (d.attempts || []).length > 0)
    ? h('button', {
      type: 'button', class: 'small', 'aria-label': `Retry delivery ${d.id} now`,
      onclick: () => run(errors, () => api.post(`${path}/deliveries/${d.id}/retry`), 'Delivery queued again.').then(() => setTimeout(reload, 1500), () => {}),
    }, d.status === 'pending' ? 'Retry now' : 'Retry')
    : null;
  return h('details', { class: 'delivery', dataset: { status: d.status, id: d.id } },
    h('summary', {}, h('code', {}, d.event), ' ', badge(d.status, statusKind), ' ', fmtTime(d.created_at), ` · ${(d.attempts || []).length} attempt(s)`,
      d.next_attempt_at ? ` · next ${fmtTime(d.next_attempt_at)}` : ''),
    h('div', { class: 'delivery-body' },
      attempts.length ? table(`Attempts of ${d.id}`, ['#', 'Time', 'Status', 'Latency', 'Error', 'Response'], attempts) : empty('Not attempted yet.'),
      retry, errors));
}

// ----------------------------------------------------------------- account

export async function account(ctx, main) {
  const me = ctx.me;
  clear(main, heading('Account'));
  const lim = (l) => [fmtNumber(l && l.per_minute), fmtNumber(l && l.per_hour), fmtNumber(l && l.per_day)];
  const acct = me.account || {};
  main.append(
    h('section', { class: 'card' }, h('h2', {}, 'Account'),
      h('dl', { class: 'details' }, h('dt', {}, 'Id'), h('dd', {}, h('code', {}, acct.id)), h('dt', {}, 'Name'), h('dd', {}, acct.name || '—'),
        h('dt', {}, 'Plan'), h('dd', {}, me.plan || acct.plan))),
    h('section', {}, h('h2', {}, 'Limits'),
      table('Requests per window (— is none)', ['Applies to', 'Per minute', 'Per hour', 'Per day'], [
        ['The whole account (its plan)', ...lim(me.limits && me.limits.account)],
        ['This key', ...lim(me.limits && me.limits.key)]])),
    h('section', { class: 'card' }, h('h2', {}, 'Signed in with'),
      h('dl', { class: 'details' },
        h('dt', {}, 'Key'), h('dd', {}, me.key.name, ' ', h('code', {}, `${me.key.prefix}…${me.key.last4}`)),
        h('dt', {}, 'Id'), h('dd', {}, h('code', {}, me.key.id)),
        h('dt', {}, 'Environment'), h('dd', {}, me.key.environment),
        h('dt', {}, 'Expires'), h('dd', {}, me.key.expires_at ? fmtTime(me.key.expires_at) : 'never'),
        h('dt', {}, 'Scopes'), h('dd', {}, (me.scopes || []).map((s) => h('code', { class: 'scope' }, s))))));
  if (ctx.can('accounts:write') && acct.id) {
    const more = h('div', {}, loading());
    main.append(more);
    const a = await guarded(more, () => api.get(`/accounts/${encodeURIComponent(acct.id)}`));
    if (a) clear(more, h('p', { class: 'muted' }, `Created ${fmtTime(a.created_at)} · ${fmtNumber(a.key_count)} keys held.`));
  }
}

