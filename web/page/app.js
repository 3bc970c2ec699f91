// Kasane browser client: the page's UI and its fetches. Every decision (registry trust,
// OPAQUE, ticket and module admission, sealing) is made by the client's Rust code in
// kasane_web_bg.wasm (the `wasm_bindgen` global from kasane_web.js); the transform runs in a
// dedicated Worker with a wall-clock limit. The session token lives in that module's memory
// only: nothing is written to cookies or the browser's storage.
'use strict';

(() => {
  const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
  const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
  const INBOX_WAIT_SECS = 20;

  let client = null;
  let runner = null;
  let session = 0; // bumps at every login and logout: a stale inbox poll stops
  let sending = false; // one message at a time: the client reserves one number per send
  let shown = new Set(); // the queue ids shown in this session: a redelivery is not shown twice

  // ---- UI ------------------------------------------------------------------------------
  function status(text) {
    $('status').textContent = text;
  }
  function showError(text) {
    const e = $('error');
    e.textContent = text;
    e.hidden = !text;
  }
  function show(which) {
    document.getElementById('login-form').hidden = which !== 'login';
    document.getElementById('challenge-form').hidden = which !== 'challenge';
    document.getElementById('session').hidden = which !== 'session';
    const focus = { login: 'login-user', challenge: 'challenge-response', session: 'message-to' }[which];
    if (focus) $(focus).focus();
  }
  function message(e) {
    return String(e && e.message ? e.message : e);
  }

  // ---- integrity and fetches -------------------------------------------------------------
  async function sha384(bytes) {
    const d = new Uint8Array(await crypto.subtle.digest('SHA-384', bytes));
    return btoa(String.fromCharCode(...d));
  }
  async function fetchChecked(path, want, what) {
    const r = await fetch(path, { cache: 'no-store' });
    if (!r.ok) throw new Error(`${what} could not be loaded (HTTP ${r.status})`);
    const bytes = new Uint8Array(await r.arrayBuffer());
    if ((await sha384(bytes)) !== want) {
      throw new Error(`${what} does not match the page's hash: the host's files changed while `
        + 'the page loaded (an upgrade under way?) or were altered on the way. Reload the page.');
    }
    return bytes;
  }
  async function request(method, path, body, headers = {}) {
    const init = { method, headers: { ...headers }, cache: 'no-store', credentials: 'omit' };
    if (client && client.hasSession()) init.headers.authorization = client.authorization();
    if (body !== undefined) {
      init.body = body;
      init.headers['content-type'] = 'application/octet-stream';
    }
    const r = await fetch(path, init);
    return { status: r.status, bytes: new Uint8Array(await r.arrayBuffer()) };
  }
  async function expectOk(what, r) {
    if (r.status !== 200) throw new Error(`The host refused the ${what} (HTTP ${r.status}).`);
    return r.bytes;
  }

  // Runs a trust-store operation until it needs no more repository files.
  async function withRegistry(op) {
    for (;;) {
      const path = op();
      if (path === undefined || path === null) return;
      const r = await fetch(`/v1/registry/${path}`, { cache: 'no-store' });
      if (r.status === 404) client.provide(path, undefined);
      else if (r.ok) client.provide(path, new Uint8Array(await r.arrayBuffer()));
      else throw new Error(`Registry file ${path} could not be loaded (HTTP ${r.status}).`);
    }
  }

  // ---- the transform Worker ------------------------------------------------------------------
  class Runner {
    constructor(url, module, memoryLimit, limitMs) {
      this.url = url;
      this.module = module;
      this.memoryLimit = memoryLimit;
      this.limitMs = limitMs;
      this.worker = null;
      this.next = 0;
    }
    ensure() {
      if (this.worker === null) {
        this.worker = new Worker(this.url);
        this.loaded = this.call({ kind: 'load', module: this.module, memoryLimit: this.memoryLimit });
      }
      return this.loaded;
    }
    call(msg, transfer = []) {
      const worker = this.worker;
      const id = ++this.next;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          worker.terminate();
          if (this.worker === worker) this.worker = null;
          reject(new Error(`Transform stopped: it ran past its time limit of ${this.limitMs} ms. Nothing was sent.`));
        }, this.limitMs);
        const onMessage = (event) => {
          if (event.data.id !== id) return;
          clearTimeout(timer);
          worker.removeEventListener('message', onMessage);
          if (event.data.ok) resolve(event.data.out);
          else reject(new Error(`Transform failed: ${event.data.error}.`));
        };
        worker.addEventListener('message', onMessage);
        worker.postMessage({ ...msg, id }, transfer);
      });
    }
    async derive(input) {
      await this.ensure();
      return this.call({ kind: 'derive', input }, [input.buffer]);
    }
    stop() {
      if (this.worker) this.worker.terminate();
      this.worker = null;
    }
  }

  // ---- login -------------------------------------------------------------------------------
  let answerChallenge = null;

  function ask(prompt) {
    $('challenge-prompt').textContent = prompt;
    $('challenge-response').value = '';
    show('challenge');
    return new Promise((resolve) => { answerChallenge = resolve; });
  }

  // Step marks (performance.mark) for the browser login bench's breakdown.
  const mark = (name) => performance.mark(`kasane:${name}`);

  async function startLogin(user, password) {
    performance.clearMarks();
    mark('begin');
    await withRegistry(() => client.update());
    mark('registry');
    const start = client.start(user, password);
    const started = await expectOk('login start', await request('POST', '/v1/login/start', start));
    mark('start');
    let fin;
    try {
      fin = client.finish(started);
      mark('opaque');
    } catch (e) {
      const decoy = client.decoy();
      if (decoy) await request('POST', '/v1/login/finish', decoy);
      throw e;
    }
    const r = await request('POST', '/v1/login/finish', fin);
    if (r.status === 401) throw new Error('Login refused: wrong user name or password.');
    const prompts = client.bundle(await expectOk('login finish', r));
    mark('bundle');
    return prompts;
  }

  async function admitModule() {
    await withRegistry(() => client.checkTicket());
    const r = await fetch(client.modulePath(), { cache: 'no-store' });
    if (!r.ok) throw new Error(`The module could not be loaded (HTTP ${r.status}).`);
    const module = new Uint8Array(await r.arrayBuffer());
    client.admit(module);
    mark('admitted');
    if (runner) runner.stop();
    runner = new Runner(workerUrl, module, client.memoryLimit(), client.timeLimitMs());
    // The Worker starts and compiles the admitted module while the user answers; a failure
    // shows at the derive, which awaits the same load.
    runner.ensure().catch(() => {});
  }

  async function login(user, password) {
    const prompts = await startLogin(user, password);
    status('checking the transform against the registry…');
    await admitModule();
    const answers = [];
    for (const p of prompts) answers.push(await ask(p));
    mark('answered');
    status('running the transform…');
    const tAuth = await runner.derive(client.authInput(answers));
    mark('transform');
    const r = await request('POST', '/v1/login/response', client.respond(tAuth));
    if (r.status === 401) throw new Error('Login refused: a challenge answer is wrong.');
    const report = client.confirm(await expectOk('login response', r));
    mark('confirmed');
    return report;
  }

  async function onLogin(event) {
    event.preventDefault();
    const user = $('login-user').value;
    const password = $('login-password').value;
    $('login-password').value = '';
    showError('');
    status('logging in…');
    $('login-submit').disabled = true;
    try {
      const report = await login(user, password);
      $('transform-name').textContent = report.transform;
      $('transform-sha256').textContent = report.sha256;
      $('transform-signer').textContent = report.signedBy;
      $('counter').textContent = String(report.counter);
      $('inbox').replaceChildren();
      shown = new Set();
      status(`logged in as ${report.user}`);
      show('session');
      session += 1;
      poll(session);
    } catch (e) {
      client.forget();
      status('not logged in');
      showError(message(e));
      show('login');
    } finally {
      // The last card answer is not kept in the page.
      $('challenge-response').value = '';
      $('login-submit').disabled = false;
    }
  }

  // ---- session -------------------------------------------------------------------------------
  function ended(text) {
    session += 1;
    client.forget();
    if (runner) runner.stop();
    // Nothing of this session stays for whoever uses the tab next.
    $('inbox').replaceChildren();
    $('message-to').value = '';
    $('message-body').value = '';
    shown = new Set();
    status('not logged in');
    showError(text);
    show('login');
  }

  async function onSend(event) {
    event.preventDefault();
    // A second submit while one is sealed (a double click, Enter twice) would take the
    // number reserved for the first: it waits for the first to finish instead.
    if (sending) return;
    sending = true;
    $('message-send').disabled = true;
    const to = $('message-to').value;
    const body = $('message-body').value;
    showError('');
    try {
      const tMsg = await runner.derive(client.prepareSend());
      const r = await request('POST', '/v1/messages', client.seal(tMsg, to, body));
      if (r.status === 401) return ended('Session ended: log in again.');
      await expectOk('message', r);
      $('message-body').value = '';
      status(`logged in as ${client.user()}; sent to ${to}`);
    } catch (e) {
      showError(message(e));
    } finally {
      sending = false;
      $('message-send').disabled = false;
    }
  }

  function addItem(m) {
    const li = document.createElement('li');
    li.dataset.testid = 'inbox-item';
    const from = document.createElement('strong');
    from.textContent = m.from;
    li.append(from, `: ${m.body}`);
    $('inbox').append(li);
  }

  async function poll(mine) {
    while (mine === session) {
      try {
        const r = await request('GET', `/v1/inbox?wait=${INBOX_WAIT_SECS}`);
        if (mine !== session) return;
        if (r.status === 401) return ended('Session ended (idle time-out or logged out elsewhere): log in again.');
        const n = client.inbox(await expectOk('inbox', r));
        // A message that does not open is reported and left queued; the others are shown
        // (once: one whose acknowledgement was lost comes again) and acknowledged.
        let failed = null;
        for (let i = 0; i < n; i++) {
          try {
            const tMsg = await runner.derive(client.inboxInput(i));
            const m = client.open(i, tMsg);
            if (!shown.has(String(m.id))) addItem(m);
            if (shown.size >= 10000) shown = new Set(); // bounded, as the native client's
            shown.add(String(m.id));
          } catch (e) {
            failed = failed || e;
          }
          if (mine !== session) return;
        }
        let ack;
        while ((ack = client.ack()) !== undefined) {
          const a = await request('POST', '/v1/inbox/ack', ack);
          if (a.status === 401) return ended('Session ended: log in again.');
          if (a.status !== 204) throw new Error(`The host refused the acknowledgement (HTTP ${a.status}); the messages will come again.`);
        }
        if (failed) throw failed;
      } catch (e) {
        if (mine !== session) return;
        showError(message(e));
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
    }
  }

  async function onLogout() {
    try {
      await request('POST', '/v1/logout', new Uint8Array(0));
    } finally {
      ended('');
    }
  }

  // ---- start -------------------------------------------------------------------------------
  let workerUrl = null;

  async function boot() {
    // kasane_web.js did not run (the page's inline script says the same).
    if (typeof wasm_bindgen !== 'function') {
      throw new Error('The page could not load kasane_web.js intact: the host\'s files changed '
        + 'while it loaded (an upgrade under way?) or were altered on the way. Reload the page.');
    }
    const wasm = await fetchChecked('kasane_web_bg.wasm', meta('kasane-wasm-sha384'), 'The client module');
    await wasm_bindgen({ module_or_path: wasm });
    const worker = await fetchChecked('worker.js', meta('kasane-worker-sha384'), 'The transform worker');
    workerUrl = URL.createObjectURL(new Blob([worker], { type: 'text/javascript' }));
    const r = await fetch('/v1/registry/metadata/1.root.json', { cache: 'no-store' });
    if (!r.ok) throw new Error(`The registry root could not be loaded (HTTP ${r.status}).`);
    client = new wasm_bindgen.WebClient(new Uint8Array(await r.arrayBuffer()), meta('kasane-root-sha256'));
    document.getElementById('login-form').addEventListener('submit', onLogin);
    document.getElementById('challenge-form').addEventListener('submit', (event) => {
      event.preventDefault();
      if (answerChallenge) answerChallenge($('challenge-response').value);
    });
    document.getElementById('message-form').addEventListener('submit', onSend);
    $('logout').addEventListener('click', onLogout);
    // A file of the page failed to load (the inline script said which): no login form.
    if (document.documentElement.dataset.unloaded) return;
    status('not logged in');
    show('login');
  }

  boot().catch((e) => {
    status('not available');
    showError(message(e));
  });
})();
