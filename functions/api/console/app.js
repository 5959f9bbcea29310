// The console's shell: sign-in with a key, the navigation its scopes allow,
// and a page per location hash (#/overview, #/keys, #/keys/<id>,
// #/webhooks, #/webhooks/<id>, #/account).

import * as api from './api.js';
import { h, clear, field, errorBox, announce } from './ui.js';
import * as pages from './pages.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const signoutButton = document.getElementById('signout');

const SECTIONS = [
  ['overview', 'Overview', 'usage:read'],
  ['keys', 'Keys', 'keys:read'],
  ['webhooks', 'Webhooks', 'webhooks:read'],
  ['account', 'Account', null],
];

let ctx = null;

function signInPage(error) {
  nav.hidden = true;
  signoutButton.hidden = true;
  const input = h('input', { type: 'password', name: 'key', required: true, autocomplete: 'off', spellcheck: 'false' });
  const errors = h('div', {}, error ? errorBox(error) : null);
  const form = h('form', {
    class: 'card signin',
    'aria-labelledby': 'signin-h',
    onsubmit: async (e) => {
      e.preventDefault();
      const key = input.value.trim();
      try {
        const me = await api.call('GET', '/whoami', { key });
        api.session.key = key;
        start(me);
      } catch (err) {
        clear(errors, errorBox(err));
        input.focus();
      }
    },
  },
  h('h1', { id: 'signin-h', tabindex: '-1' }, 'Sign in'),
  h('p', {}, 'Paste an API key of your account. The console keeps it in this tab only, and forgets it when you sign out or close the tab.'),
  field('API key', input, 'make dev prints one (the dev key).'),
  errors,
  h('button', { type: 'submit' }, 'Sign in'));
  clear(main, form);
  input.focus();
}

function start(me) {
  ctx = { me, can: (scope) => !scope || api.grants(me.scopes || [], scope) };
  clear(nav, h('ul', {}, SECTIONS.filter(([, , s]) => ctx.can(s)).map(([id, label]) => h('li', {}, h('a', { href: `#/${id}`, dataset: { section: id } }, label)))),
    h('span', { class: 'who' }, me.key.name, ' · ', me.account.name || me.account.id));
  nav.hidden = false;
  signoutButton.hidden = false;
  announce(`Signed in as ${me.key.name}.`);
  if (!location.hash || location.hash === '#/' || location.hash === '#/signin') {
    location.hash = ctx.can('usage:read') ? '#/overview' : ctx.can('keys:read') ? '#/keys' : '#/account';
  } else route();
}

function signOut() {
  api.session.key = null;
  ctx = null;
  history.replaceState(null, '', location.pathname);
  signInPage();
  announce('Signed out.');
}

async function route() {
  if (!ctx) return;
  const [, section, id] = (location.hash.replace(/^#\//, '') || 'overview').match(/^([a-z]+)(?:\/(.+))?/) || [];
  for (const a of nav.querySelectorAll('a')) {
    if (a.dataset.section === section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const draw = {
    overview: () => pages.overview(ctx, main),
    keys: () => (id ? pages.key(ctx, main, decodeURIComponent(id)) : pages.keys(ctx, main)),
    webhooks: () => (id ? pages.webhook(ctx, main, decodeURIComponent(id)) : pages.webhooks(ctx, main)),
    account: () => pages.account(ctx, main),
  }[section];
  if (!draw) {
    location.hash = '#/account';
    return;
  }
  document.title = `${section[0].toUpperCase()}${section.slice(1)} · keyhub console`;
  const pending = draw();
  // Focus the new page's heading, as a screen reader user expects.
  main.querySelector('h1')?.focus();
  try {
    await pending;
  } catch (err) {
    // A revoked or expired key: back to sign-in with the API's words.
    if (err && refused(err)) {
      api.session.key = null;
      ctx = null;
      signInPage(err);
      return;
    }
    main.append(errorBox(err));
  }
  document.body.dataset.ready = section;
}

signoutButton.addEventListener('click', signOut);
window.addEventListener('hashchange', () => {
  delete document.body.dataset.ready;
  route();
});

// A key the API refuses (401, or 403 for an inactive or leaked key) is
// forgotten; anything else (a 429, a 503) keeps it and offers a retry.
const refused = (err) => err.status === 401 || ['api_key_inactive', 'api_key_leaked'].includes(err.code);

async function boot() {
  const key = api.session.key;
  if (!key) return signInPage();
  clear(main, h('p', { class: 'loading', role: 'status' }, 'Signing in…'));
  try {
    start(await api.get('/whoami'));
  } catch (err) {
    if (refused(err)) {
      api.session.key = null;
      signInPage(err);
      return;
    }
    clear(main, h('h1', { tabindex: '-1' }, 'The console could not load'), errorBox(err),
      h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: boot }, 'Try again'),
        h('button', { type: 'button', class: 'secondary', onclick: signOut }, 'Sign out')));
  }
}

boot();
