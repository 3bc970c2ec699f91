// Drives Kasane's browser client in Debian's Chromium (playwright-core, no browser download)
// for tests/tests/web.rs and the browser login bench. One scenario per run, chosen by
// KASANE_SCENARIO; it prints one JSON line starting with "RESULT " and exits 0, or prints why
// and exits 1. Inputs (environment):
//   KASANE_URL        the page, e.g. https://127.0.0.1:4433/web/
//   KASANE_USER, KASANE_PASSWORD, KASANE_CARD (JSON: prompt -> response)
//   KASANE_SCENARIO   exchange | refused | loop | timeout | bench | skew
//   KASANE_EXPECT     refused: words the error must contain
//   KASANE_CLOCK_OFFSET_DAYS  refused: run the page's clock this many days ahead
//   KASANE_PEER, KASANE_SEND, KASANE_REPLY  exchange: the CLI user, what to send, the reply awaited
//   KASANE_SHOTS      exchange: folder for the screenshots
//   KASANE_BENCH_N    bench: logins to time (the first is cold)
import { chromium } from 'playwright-core';

const env = (name, fallback) => {
  const v = process.env[name];
  if (v === undefined && fallback === undefined) throw new Error(`${name} is not set`);
  return v ?? fallback;
};
const T = 60_000;
const id = (page, testid) => page.locator(`[data-testid="${testid}"]`);

async function launch() {
  const browser = await chromium.launch({
    executablePath: env('KASANE_CHROMIUM', '/usr/bin/chromium'),
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  // The test host's certificate is self-made for the run.
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  const log = [];
  // Every dedicated Worker the page creates: a transform runs only in one.
  page.workersCreated = 0;
  page.on('worker', () => { page.workersCreated += 1; });
  page.on('console', (m) => log.push(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
  return { browser, page, log };
}

async function open(page) {
  await page.goto(env('KASANE_URL'));
  await page.waitForFunction(() => {
    const s = document.querySelector('[data-testid="status"]');
    return s && s.textContent !== 'loading…';
  }, null, { timeout: T });
  const err = await id(page, 'error').textContent();
  if (!(await id(page, 'login-user').isVisible())) throw new Error(`page not ready: ${err}`);
}

// Logs in with the keyboard only: type, Tab, Enter; each challenge answered and Enter.
async function login(page, { shots } = {}) {
  const card = JSON.parse(env('KASANE_CARD'));
  await id(page, 'login-user').focus();
  await page.keyboard.press('Control+A');
  await page.keyboard.type(env('KASANE_USER'));
  await page.keyboard.press('Tab');
  await page.keyboard.type(env('KASANE_PASSWORD'));
  if (shots) await page.screenshot({ path: `${shots}/web-login.png`, fullPage: true });
  await page.keyboard.press('Enter');
  const prompts = [];
  for (;;) {
    // One look at the page decides: a refusal, the session, or a fresh prompt (the field is
    // cleared for each one).
    const which = await (await page.waitForFunction(() => {
      const q = (t) => document.querySelector(`[data-testid="${t}"]`);
      if (!q('error').hidden) return 'error';
      if (/logged in as /.test(q('status').textContent)) return 'done';
      const form = document.getElementById('challenge-form');
      if (!form.hidden && q('challenge-response').value === ''
        && document.activeElement === q('challenge-response')) return 'challenge';
      return false;
    }, null, { timeout: T })).jsonValue();
    if (which !== 'challenge') return { outcome: which, prompts };
    const prompt = await id(page, 'challenge-prompt').textContent();
    prompts.push(prompt);
    const answer = card[prompt];
    if (answer === undefined) throw new Error(`no card answer for ${prompt}`);
    // The response field has the focus (keyboard only).
    await page.keyboard.type(answer);
    await page.keyboard.press('Enter');
  }
}

async function exchange(page) {
  const shots = env('KASANE_SHOTS', '');
  await open(page);
  const { outcome, prompts } = await login(page, { shots });
  if (outcome !== 'done') throw new Error(`login failed: ${await id(page, 'error').textContent()}`);
  const status = await id(page, 'status').textContent();
  const transform = await id(page, 'transform-name').textContent();
  const sha256 = await id(page, 'transform-sha256').textContent();
  // The last card answer is not left in the page.
  const answerLeft = await id(page, 'challenge-response').inputValue();
  if (shots) await page.screenshot({ path: `${shots}/web-status.png`, fullPage: true });
  // The first acknowledgement fails (the host would deliver the reply again); every
  // acknowledgement is counted.
  let acks = 0;
  page.on('request', (r) => { if (r.url().endsWith('/v1/inbox/ack')) acks += 1; });
  await page.route('**/v1/inbox/ack', (r) => r.fulfill({ status: 503, body: '' }), { times: 1 });
  await id(page, 'message-to').fill(env('KASANE_PEER'));
  await id(page, 'message-body').fill(env('KASANE_SEND'));
  // Sent twice at once (a double click): one message goes, none is lost.
  await page.evaluate(() => {
    const f = document.getElementById('message-form');
    f.requestSubmit();
    f.requestSubmit();
  });
  await page.waitForFunction(() => document.querySelector('[data-testid="message-body"]').value === '',
    null, { timeout: T });
  const sendError = await id(page, 'error').isVisible() ? await id(page, 'error').textContent() : '';
  const reply = env('KASANE_REPLY');
  await page.locator('[data-testid="inbox-item"]', { hasText: reply }).waitFor({ timeout: T });
  // The failed acknowledgement's messages came again and were acknowledged: shown once.
  const deadline = Date.now() + T;
  while (acks < 2 && Date.now() < deadline) await page.waitForTimeout(100);
  await page.waitForTimeout(500);
  const inbox = await page.locator('[data-testid="inbox-item"]').allTextContents();
  if (shots) await page.screenshot({ path: `${shots}/web-inbox.png`, fullPage: true });
  await id(page, 'logout').click();
  await id(page, 'login-user').waitFor({ state: 'visible', timeout: T });
  // Nothing of the session is left for the next user of the tab.
  const left = await page.evaluate(() => ({
    items: document.querySelectorAll('[data-testid="inbox-item"]').length,
    to: document.querySelector('[data-testid="message-to"]').value,
    body: document.querySelector('[data-testid="message-body"]').value,
  }));
  return { status, transform, sha256, prompts, inbox, acks, answerLeft, sendError, left,
    afterLogout: await id(page, 'status').textContent(), workers: page.workersCreated };
}

async function refused(page) {
  const days = Number(env('KASANE_CLOCK_OFFSET_DAYS', '0'));
  if (days) await page.clock.setFixedTime(new Date(Date.now() + days * 86_400_000));
  await open(page);
  const { outcome, prompts } = await login(page);
  const error = await id(page, 'error').textContent();
  if (outcome !== 'error') throw new Error(`expected a refusal, got ${outcome}`);
  for (const word of env('KASANE_EXPECT').split('|')) {
    if (!error.toLowerCase().includes(word.toLowerCase())) throw new Error(`error "${error}" lacks "${word}"`);
  }
  return { error, prompts, transform: await id(page, 'transform-name').textContent(),
    loginVisible: await id(page, 'login-user').isVisible(), workers: page.workersCreated };
}

// A transform that never returns: the Worker is stopped, the login fails, and the page
// takes a new login (whose transform is stopped again, which shows the page still runs).
async function loop(page) {
  await open(page);
  const first = await login(page);
  const error = await id(page, 'error').textContent();
  if (first.outcome !== 'error') throw new Error(`expected the time limit, got ${first.outcome}`);
  const usable = await id(page, 'login-user').isVisible() && await id(page, 'login-submit').isEnabled();
  const second = await login(page);
  return { error, prompts: first.prompts, usable, second: second.outcome,
    secondError: await id(page, 'error').textContent() };
}

// The host ends the idle session: the page's next inbox poll gets 401 and the page returns
// to the login form with the reason.
async function timeout(page) {
  await open(page);
  const { outcome } = await login(page);
  if (outcome !== 'done') throw new Error(`login failed: ${await id(page, 'error').textContent()}`);
  await id(page, 'login-user').waitFor({ state: 'visible', timeout: 2 * T });
  return { status: await id(page, 'status').textContent(), error: await id(page, 'error').textContent() };
}

async function bench(page) {
  const n = Number(env('KASANE_BENCH_N', '10'));
  const t0 = Date.now();
  await open(page);
  const load = Date.now() - t0;
  const times = [];
  const steps = [];
  for (let i = 0; i < n; i++) {
    const start = Date.now();
    const { outcome } = await login(page);
    if (outcome !== 'done') throw new Error(`login ${i} failed: ${await id(page, 'error').textContent()}`);
    times.push(Date.now() - start);
    // The page's step marks: each step's duration, ms.
    steps.push(await page.evaluate(() => {
      const m = performance.getEntriesByType('mark').filter((e) => e.name.startsWith('kasane:'));
      const out = {};
      for (let i = 1; i < m.length; i++) out[m[i].name.slice(7)] = Math.round(m[i].startTime - m[i - 1].startTime);
      return out;
    }));
    await id(page, 'logout').click();
    await id(page, 'login-user').waitFor({ state: 'visible', timeout: T });
  }
  return { load_ms: load, login_ms: times, steps };
}

// A rolling upgrade as one page sees it: each of the page's files in turn comes from another
// build (its bytes with a line added), as a replica of another version would serve it. The
// page must name the file and ask for a reload, not stay at "loading…"; then a load with
// every file intact is ready.
async function skew(page) {
  const out = {};
  const loaded = async () => {
    await page.goto(env('KASANE_URL'));
    await page.waitForFunction(() => document.querySelector('[data-testid="status"]').textContent
      !== 'loading…', null, { timeout: T });
    return { status: await id(page, 'status').textContent(), error: await id(page, 'error').textContent(),
      login: await id(page, 'login-user').isVisible() };
  };
  for (const file of ['kasane_web.js', 'app.js', 'style.css', 'kasane_web_bg.wasm', 'worker.js']) {
    const other = async (route) => {
      const r = await route.fetch();
      await route.fulfill({ response: r, body: Buffer.concat([await r.body(), Buffer.from('\n;\n')]) });
    };
    await page.route(`**/web/${file}`, other);
    const seen = await loaded();
    await page.unroute(`**/web/${file}`, other);
    out[`${file} status`] = seen.status;
    out[`${file} error`] = seen.error;
    out[`${file} login`] = seen.login;
  }
  const intact = await loaded();
  out.after = intact.status;
  out.afterLogin = intact.login;
  return out;
}

const scenarios = { exchange, refused, loop, timeout, bench, skew };
const { browser, page, log } = await launch();
try {
  const run = scenarios[env('KASANE_SCENARIO')];
  if (!run) throw new Error(`unknown scenario ${env('KASANE_SCENARIO')}`);
  console.log(`RESULT ${JSON.stringify(await run(page))}`);
  await browser.close();
} catch (e) {
  console.log(log.join('\n'));
  const state = await page.evaluate(() => ({
    active: document.activeElement?.outerHTML?.slice(0, 200),
    status: document.querySelector('[data-testid="status"]')?.textContent,
    error: document.querySelector('[data-testid="error"]')?.textContent,
  })).catch((x) => String(x));
  console.log(`PAGE ${JSON.stringify(state)}`);
  console.log(`FAILED ${e.stack || e}`);
  await browser.close();
  process.exit(1);
}
