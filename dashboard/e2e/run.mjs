// End-to-end: real headless Chromium (the distribution's, through playwright-core) against a real
// `llmtrack serve` with its own data dir. Every page is screenshotted (light and dark) and scanned
// with axe-core; any CSP violation or uncaught page error fails the run.
//
//   npm run e2e            (LLMTRACK_BIN, CHROMIUM and KEEP_DATA=1 are optional)
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Api, DASHBOARD, admin, ensureDir, ingest, jobs, launchChromium, linksIn, outbox, seen, sleep, startServer, waitForMail } from './lib.mjs';
import { startFakeProviders } from './fakeproviders.mjs';
import { createServer } from 'node:http';

const SHOTS = ensureDir(resolve(DASHBOARD, '../target/screenshots'));
const started = Date.now();
const OWNER = 'owner@example.com';
const MEMBER = 'viewer@example.com';

// ---------- the formatting the pages use, compiled from src/lib/format.ts ----------
async function loadTs(rel) {
  const ts = (await import('typescript')).default;
  const out = ts.transpileModule(readFileSync(join(DASHBOARD, rel), 'utf8'), { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
  const dir = mkdtempSync(join(tmpdir(), 'llmtrack-e2e-ts-'));
  const file = join(dir, 'm.mjs');
  writeFileSync(file, out.outputText);
  return import(pathToFileURL(file).href);
}

// ---------- a tiny runner ----------
const results = [];
let failedOnce = false;
async function step(name, fn) {
  if (failedOnce) {
    results.push({ name, status: 'skipped', why: 'an earlier step failed' });
    console.log(`- ${name} (skipped: an earlier step failed)`);
    return;
  }
  const t = Date.now();
  try {
    const r = await fn();
    if (r && r.skip) {
      results.push({ name, status: 'skipped', why: r.skip });
      console.log(`- ${name} (skipped: ${r.skip})`);
    } else {
      results.push({ name, status: 'passed' });
      console.log(`✓ ${name} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
    }
  } catch (e) {
    failedOnce = true;
    results.push({ name, status: 'failed', why: e });
    console.log(`✕ ${name}\n    ${String(e?.stack ?? e).split('\n').join('\n    ')}`);
    // What the page showed, for whoever reads the log.
    for (const p of openPages) {
      try {
        if (p.isClosed()) continue;
        const file = join(SHOTS, `FAILED-${results.length}-${openPages.indexOf(p)}.png`);
        await p.screenshot({ path: file, fullPage: true });
        const main = (await p.textContent('main').catch(() => '')) ?? '';
        console.log(`    page ${p.url()} (screenshot ${file}):\n      ${main.replace(/\s+/g, ' ').slice(0, 600)}`);
      } catch {
        /* the page is gone */
      }
    }
    if (problems.length) console.log(`    page problems:\n      ${problems.join('\n      ')}`);
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}
function eq(a, b, msg) {
  if (a !== b) throw new Error(`${msg}: expected ${JSON.stringify(b)}, got ${JSON.stringify(a)}`);
}

// ---------- pages: errors, CSP, screenshots, axe ----------
const axeSource = readFileSync(join(DASHBOARD, 'node_modules/axe-core/axe.min.js'), 'utf8');
const problems = [];
const a11y = [];
const shots = new Set();

async function watch(context, who) {
  // Recorded in the page itself (init scripts run outside the page's CSP).
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
  });
  context.on('page', (p) => attach(p, who));
}
const openPages = [];
function attach(page, who) {
  openPages.push(page);
  page.on('pageerror', (e) => problems.push(`${who}: uncaught error on ${page.url()}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to (execute|apply|load|connect|frame)/i.test(m.text())) problems.push(`${who}: CSP: ${m.text()} on ${page.url()}`);
  });
}
function noProblems() {
  if (problems.length) throw new Error(`page problems:\n  ${problems.join('\n  ')}`);
}

/** Waits until the page has no loading state and its charts are drawn. */
async function settle(page) {
  await page.waitForFunction(() => !document.querySelector('.state.loading, .boot') && document.querySelector('main'), null, { timeout: 15_000 });
  await page.waitForFunction(() => [...document.querySelectorAll('.chart-box')].every((b) => b.querySelector('canvas')), null, { timeout: 15_000 });
}

async function scan(page, name) {
  const csp = await page.evaluate(() => window.__csp ?? []);
  if (csp.length) problems.push(`CSP violations on ${name}: ${csp.join('; ')}`);
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    await page.waitForTimeout(60);
    await page.screenshot({ path: join(SHOTS, `${name}-${scheme}.png`), fullPage: true });
    if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) await page.evaluate(axeSource);
    const v = await page.evaluate(async () => {
      const r = await window.axe.run(document, { resultTypes: ['violations'] });
      return r.violations.filter((x) => x.impact === 'serious' || x.impact === 'critical').map((x) => `${x.impact} ${x.id}: ${x.help} — ${x.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
    });
    for (const x of v) a11y.push(`${name} (${scheme}): ${x}`);
  }
  await page.emulateMedia({ colorScheme: 'light' });
  shots.add(name);
  noProblems();
  if (a11y.length) throw new Error(`accessibility (axe-core) serious or critical violations:\n  ${a11y.join('\n  ')}`);
}

async function visit(page, base, path, name) {
  await page.goto(base + path);
  await settle(page);
  await scan(page, name);
}

async function signInUi(page, server, email) {
  await page.waitForSelector('input[name=email]');
  const before = seen(server);
  await page.fill('input[name=email]', email);
  await page.click('button[type=submit]');
  await page.waitForSelector('input[name=code]');
  const mail = await waitForMail(server, { to: email, subject: /sign-in code/, after: before });
  const code = /\b(\d{6})\b/.exec(mail.subject)[1];
  await page.fill('input[name=code]', code);
  await page.click('button[type=submit]');
  return mail;
}

async function sessionApi(context, base) {
  const c = (await context.cookies(base)).find((x) => x.name === 'llmtrack_session');
  assert(c, 'the session cookie is set');
  assert(c.httpOnly, 'the session cookie is HttpOnly');
  return new Api(base, `llmtrack_session=${c.value}`);
}

/** Slack's incoming webhooks, as they answer: `ok` for a JSON message with text, `invalid_payload` otherwise. */
async function startFakeSlack() {
  const messages = [];
  const srv = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      let m = null;
      try {
        m = JSON.parse(body);
      } catch {
        /* answered below */
      }
      const ok = req.method === 'POST' && req.url.startsWith('/services/') && m && typeof m.text === 'string';
      if (ok) messages.push(m);
      res.writeHead(ok ? 200 : 400, { 'content-type': 'text/html' }).end(ok ? 'ok' : 'invalid_payload');
    });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  srv.unref();
  return { url: `http://127.0.0.1:${srv.address().port}`, messages };
}

// ---------- the run ----------
async function main() {
  if (!existsSync(join(DASHBOARD, 'dist/index.html'))) {
    console.log('building the dashboard first (npm run build)…');
    execFileSync('npm', ['run', 'build'], { cwd: DASHBOARD, stdio: 'inherit' });
  }
  const fmt = await loadTs('src/lib/format.ts');
  // The providers' billing APIs, faked locally: the server imports from them (reconciliation).
  const fake = await startFakeProviders();
  const slack = await startFakeSlack();
  // Local webhooks allowed: the rule's Slack channel posts to the fake on 127.0.0.1.
  const server = await startServer({ env: { OPENAI_API_BASE: `${fake.url}/v1`, ANTHROPIC_API_BASE: fake.url, LLMTRACK_ALLOW_LOCAL_WEBHOOKS: 'true' } });
  const base = server.url;
  const chrome = await launchChromium();
  const ctx = await chrome.browser.newContext({ viewport: { width: 1280, height: 860 }, acceptDownloads: true, locale: 'en-US' });
  await watch(ctx, 'owner');
  const page = await ctx.newPage();
  const s = { base };
  try {
    await step('the privacy page shows the policy and no contact line when no support email is configured', async () => {
      const about = await new Api(base).get('/v1/about');
      await visit(page, base, '/privacy', 'privacy');
      const text = await page.textContent('main');
      assert(text.includes('We do not sell user data'), 'policy text shown');
      if (about.support_email === null) {
        assert(!text.includes('12. Contact') && !/support@/.test(text), 'no contact line without a configured support email');
      } else assert(text.includes(about.support_email), 'the configured support email is shown');
    });

    await step('sign up with the code from the outbox', async () => {
      await page.goto(base + '/');
      await page.waitForURL(/\/signin/);
      await settle(page);
      await scan(page, 'signin');
      await signInUi(page, server, OWNER);
      await page.waitForURL(/\/workspaces\/new/);
      await settle(page);
      await scan(page, 'workspace-new');
      s.owner = await sessionApi(ctx, base);
      const me = await s.owner.get('/v1/me');
      eq(me.user.email, OWNER, 'signed in as the owner');
      // No credential in web storage.
      const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
      assert(!/llmt_|session|token/i.test(stored.replace(/llmtrack\.(next|workspace)/g, '')), `no credential in web storage: ${stored}`);
    });

    await step('create a workspace and an ingest key in the quickstart', async () => {
      await page.fill('input[name=name]', 'Acme');
      await page.selectOption('select[name=timezone]', 'Europe/Paris');
      await page.click('button[type=submit]');
      await page.waitForURL(/\/workspaces\/ws_[^/]+\/quickstart/);
      s.ws = /\/workspaces\/([^/]+)\//.exec(page.url())[1];
      await settle(page);
      await page.waitForSelector('text=Waiting for your first event');
      await page.click('text=Create ingest key');
      await page.waitForSelector('.secret-box input');
      s.key = await page.inputValue('.secret-box input');
      assert(/^llmt_[A-Za-z0-9_-]{32}$/.test(s.key), `an ingest key is shown once: ${s.key}`);
      const snippet = await page.inputValue('#panel-curl textarea').catch(() => page.textContent('#panel-curl'));
      assert(snippet.includes(s.key) && snippet.includes(`${base}/v1/events`), 'the curl snippet carries the key');
      await scan(page, 'quickstart');
      // The key list never shows the raw key again.
      const keys = await s.owner.get(`/v1/workspaces/${s.ws}/keys`);
      assert(!JSON.stringify(keys).includes(s.key), 'the raw key is not listed again');
    });

    await step('send events over HTTP; the quickstart turns green', async () => {
      await admin(server, ['set-plan', '--workspace', s.ws, '--plan', 'pro']);
      const now = Date.now();
      const models = [
        ['openai', 'gpt-4o'],
        ['openai', 'gpt-4o-mini'],
        ['anthropic', 'claude-3-5-sonnet-20241022'],
        ['google', 'gemini-1.5-pro'],
        ['acme', 'acme-llm-7b'],
      ];
      const features = ['chat', 'search', 'summarize', undefined];
      const events = [];
      for (let i = 0; i < 160; i++) {
        const [provider, sent] = models[i % models.length];
        // Every other gpt-4o call spelled as some clients send it: one row by model, two as sent.
        const model = sent === 'gpt-4o' && i % 10 === 0 ? 'GPT-4o' : sent;
        const e = {
          id: `e2e-${i}`,
          timestamp: new Date(now - 60_000 - ((i * 7) % 20) * 3_600_000 - i * 1000).toISOString(),
          provider,
          model,
          input_tokens: 500 + ((i * 37) % 2000),
          cached_input_tokens: i % 3 === 0 ? 200 : 0,
          output_tokens: 50 + ((i * 13) % 400),
          latency_ms: 200 + ((i * 53) % 3000),
          user_id: `user-${i % 7}`,
          status: i % 11 === 0 ? 'error' : 'success',
          metadata: { region: i % 2 ? 'eu' : 'us', attempt: i % 3 },
        };
        if (features[i % 4]) e.feature = features[i % 4];
        // Some calls carry the provider's own cost (as OpenRouter reports it).
        if (provider === 'google' && i % 15 === 3) e.provider_cost_usd = 0.0042;
        // A secret pasted into metadata by mistake: dropped at ingest, listed as redacted.
        if (i === 0) e.metadata.note = 'sk-proj-abcdefghijklmnopqrstuvwxyz012345';
        if (e.status === 'error') e.error_type = 'rate_limit';
        events.push(e);
      }
      eq(await ingest(base, s.key, events), 160, 'events accepted');
      await page.waitForSelector('[data-arrived=yes]', { timeout: 15_000 });
      await scan(page, 'quickstart-arrived');
    });

    await step('a second, free workspace fills to 80% of its monthly events (its usage email is followed later)', async () => {
      // Early, so the minute evaluator of serve has run by the time the email is needed.
      const ws2 = await s.owner.post('/v1/workspaces', { name: 'Quota Co', timezone: 'UTC' });
      s.ws2 = ws2.id;
      eq(ws2.plan, 'free', 'a new workspace is on the free plan');
      const key = await s.owner.post(`/v1/workspaces/${ws2.id}/keys`, { name: 'load', source: 'load', scope: 'ingest' });
      const now = Date.now();
      const ev = Array.from({ length: 8000 }, (_, i) => ({ provider: 'openai', model: 'gpt-4o-mini', input_tokens: 10, output_tokens: 5, timestamp: new Date(now - 120_000 - i * 100).toISOString() }));
      s.beforeQuota = seen(server);
      eq(await ingest(base, key.secret, ev), 8000, 'events accepted');
    });

    await step('overview: every KPI equals the API summary for the same range', async () => {
      await page.goto(`${base}/workspaces/${s.ws}?range=last_24h`);
      await settle(page);
      const api = await s.owner.get(`/v1/stats/summary?workspace=${s.ws}&from=last_24h`);
      const m = api.metrics;
      const want = { cost_usd: m.cost_usd, requests: m.requests, total_tokens: m.tokens.total, error_rate: m.error_rate, latency_p50: m.latency_ms.p50, latency_p95: m.latency_ms.p95, unpriced: m.unpriced };
      for (const [k, v] of Object.entries(want)) {
        const got = await page.getAttribute(`[data-kpi=${k}]`, 'data-value');
        eq(got === '' ? null : Number(got), v, `KPI ${k}`);
      }
      eq(await page.textContent('[data-kpi=cost_usd] .kpi-value'), fmt.usd(m.cost_usd), 'cost as shown');
      eq(await page.textContent('[data-kpi=requests] .kpi-value'), fmt.count(m.requests), 'requests as shown');
      eq(m.requests, 160, 'all events counted');
      assert(m.unpriced === 32, `the unknown model is unpriced, not $0 (${m.unpriced})`);
      assert((await page.textContent('.tz-note')).includes('Europe/Paris'), 'the timezone in use is shown');
      // The chart's table alternative sums to the cost.
      const cells = await page.$$eval('.chart-table tbody tr td:last-child', (tds) => tds.map((t) => t.textContent));
      assert(cells.length > 0, 'the cost chart has a table');
      await page.waitForSelector('.forecast');
      await scan(page, 'overview');
    });

    await step('explore: the breakdown equals the API, and the CSV download matches it', async () => {
      await page.goto(`${base}/workspaces/${s.ws}/explore?range=last_24h&by=model`);
      await settle(page);
      const api = await s.owner.get(`/v1/stats/breakdown?workspace=${s.ws}&from=last_24h&by=model&sort=cost_usd&order=desc&limit=1000`);
      const rows = await page.$$eval('section[aria-labelledby=tbl-h] tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent.trim())));
      const heads = await page.$$eval('section[aria-labelledby=tbl-h] thead th', (ths) => ths.map((th) => th.textContent.replace(/[↕▲▼]/g, '').trim()));
      const col = (name) => heads.indexOf(name);
      eq(rows.length, api.rows.length, 'rows');
      api.rows.forEach((r, i) => {
        eq(rows[i][0], r.value, `row ${i} value`);
        eq(rows[i][col('Cost')], fmt.usd(r.metrics.cost_usd), `row ${i} cost`);
        eq(rows[i][col('Requests')], fmt.count(r.metrics.requests), `row ${i} requests`);
      });
      // The provider's reported cost beside LLMtrack's, for the model whose calls carried one.
      const gemini = api.rows.findIndex((r) => r.value === 'gemini-1.5-pro');
      const reported = api.rows[gemini].metrics.provider_reported;
      assert(reported.events > 0 && col('Provider vs computed') > 0, 'the provider column is shown');
      const shown = rows[gemini][col('Provider vs computed')];
      assert(shown.startsWith(reported.difference_usd > 0 ? '+' : '-') && shown.includes(fmt.usd(Math.abs(reported.difference_usd))), `provider vs computed: ${shown}`);
      eq(rows[api.rows.findIndex((r) => r.value === 'gpt-4o-mini')][col('Provider vs computed')], '—', 'no reported cost: a dash');
      const [dl] = await Promise.all([page.waitForEvent('download'), page.click('text=Export CSV')]);
      const file = await dl.path();
      const csv = readFileSync(file, 'utf8').trim().split(/\r?\n/);
      assert(dl.suggestedFilename().endsWith('.csv'), 'a .csv file');
      eq(csv.length, api.rows.length + 1, 'CSV lines');
      const head = csv[0].split(',');
      api.rows.forEach((r, i) => {
        const cells = csv[i + 1].split(',');
        eq(cells[0], r.value, `CSV row ${i} value`);
        eq(Number(cells[head.indexOf('Cost')]), r.metrics.cost_usd, `CSV row ${i} cost`);
        eq(Number(cells[head.indexOf('Requests')]), r.metrics.requests, `CSV row ${i} requests`);
      });
      await scan(page, 'explore');
      // One click on a model shows the names it was sent as.
      await page.click('section[aria-labelledby=tbl-h] [aria-label="Filter by Model gpt-4o"]');
      await page.waitForURL(/by=model_sent/);
      await settle(page);
      const sentApi = await s.owner.get(`/v1/stats/breakdown?workspace=${s.ws}&from=last_24h&by=model_sent&model=gpt-4o&sort=cost_usd&order=desc&limit=1000`);
      eq(sentApi.rows.map((r) => r.value).sort().join(','), 'GPT-4o,gpt-4o', 'gpt-4o as sent');
      // The page keeps the last breakdown on screen until the new one arrives (no loading state
      // to wait out): wait for the rows to change, then compare.
      const wantSent = sentApi.rows.map((r) => `${r.value} ${fmt.usd(r.metrics.cost_usd)}`).join('; ');
      await page
        .waitForFunction(
          (want) =>
            [...document.querySelectorAll('section[aria-labelledby=tbl-h] tbody tr')]
              .map((tr) => [...tr.querySelectorAll('td')].slice(0, 2).map((td) => td.textContent.trim()).join(' '))
              .join('; ') === want,
          wantSent,
          { timeout: 10_000 },
        )
        .catch(() => {});
      const sentRows = await page.$$eval('section[aria-labelledby=tbl-h] tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent.trim())));
      eq(sentRows.map((r) => `${r[0]} ${r[1]}`).join('; '), sentApi.rows.map((r) => `${r.value} ${fmt.usd(r.metrics.cost_usd)}`).join('; '), 'the names as sent equal the API');
      await scan(page, 'explore-model-sent');
      await page.goto(`${base}/workspaces/${s.ws}/explore?range=last_24h&by=model`);
      await settle(page);
      // Sorting by a column keeps the state in the URL.
      await page.click('th >> text=Requests');
      await page.waitForURL(/sort=requests/);
      // A second dimension as a pivot table, from a bookmarked URL.
      await page.goto(`${base}/workspaces/${s.ws}/explore?range=last_24h&by=feature&by2=model&view=pivot&metric=requests`);
      await settle(page);
      await page.waitForSelector('table.pivot');
      await scan(page, 'explore-pivot');
      await page.goto(`${base}/workspaces/${s.ws}/explore?range=last_24h&by=feature&by2=model`);
      await settle(page);
      await page.waitForSelector('.stacked .bar-row');
      await scan(page, 'explore-stacked');
    });

    await step('requests: the log equals the API page by page, and the drawer shows an event', async () => {
      await page.goto(`${base}/workspaces/${s.ws}/requests?range=last_24h`);
      await settle(page);
      const p1 = await s.owner.get(`/v1/events?workspace=${s.ws}&from=last_24h&limit=50`);
      const ids = await page.$$eval('table.log tbody tr', (trs) => trs.map((tr) => tr.getAttribute('data-event')));
      eq(JSON.stringify(ids), JSON.stringify(p1.events.map((e) => e.id)), 'first page ids');
      const costs = await page.$$eval('table.log tbody tr td[data-cost]', (tds) => tds.map((t) => t.getAttribute('data-cost')));
      eq(JSON.stringify(costs.map((c) => (c === '' ? null : Number(c)))), JSON.stringify(p1.events.map((e) => e.cost_usd)), 'first page costs');
      eq(ids[0], 'e2e-0', 'the newest event first');
      await page.click('table.log tbody tr:first-child button');
      await page.waitForSelector('dialog.modal >> text=Tokens by kind');
      const drawer = await page.textContent('dialog.modal');
      assert(!drawer.includes('sk-proj-'), 'the secret was not stored');
      if (p1.events[0].redacted !== undefined) {
        assert(/metadata\.note.*was not stored/.test(drawer.replace(/\s+/g, ' ')), `the redaction is shown: ${drawer}`);
        eq(p1.events[0].cost_source, 'table', 'priced from the table');
        assert(drawer.includes('Priced from the model price table'), 'the price applied is shown');
      }
      await scan(page, 'requests-drawer');
      await page.keyboard.press('Escape');
      await page.waitForSelector('dialog.modal', { state: 'detached' });
      await page.click('text=Older →');
      const p2 = await s.owner.get(`/v1/events?workspace=${s.ws}&from=last_24h&limit=50&cursor=${encodeURIComponent(p1.next_cursor)}`);
      await page.waitForFunction((first) => document.querySelector('table.log tbody tr')?.getAttribute('data-event') === first, p2.events[0].id);
      const ids2 = await page.$$eval('table.log tbody tr', (trs) => trs.map((tr) => tr.getAttribute('data-event')));
      eq(JSON.stringify(ids2), JSON.stringify(p2.events.map((e) => e.id)), 'second page ids');
      await page.goto(`${base}/workspaces/${s.ws}/requests?range=last_24h&status=error`);
      await settle(page);
      const errs = await page.$$eval('table.log tbody tr', (trs) => trs.length);
      const apiErr = await s.owner.get(`/v1/events?workspace=${s.ws}&from=last_24h&limit=50&status=error`);
      eq(errs, apiErr.events.length, 'filtered by status');
      await scan(page, 'requests');
    });

    await step('end-users: the list and one user equal the API', async () => {
      await page.goto(`${base}/workspaces/${s.ws}/users?range=last_24h`);
      await settle(page);
      const api = await s.owner.get(`/v1/stats/users?workspace=${s.ws}&from=last_24h&limit=100`);
      const rows = await page.$$eval('tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent.trim())));
      eq(rows.length, api.rows.length, 'user rows');
      eq(rows[0][1], fmt.usd(api.rows[0].metrics.cost_usd), 'top user cost');
      await scan(page, 'users');
      await page.click('tbody tr:first-child button');
      await page.waitForURL(/\/users\/user-/);
      await settle(page);
      const u = decodeURIComponent(/\/users\/([^?]+)/.exec(page.url())[1]);
      const one = await s.owner.get(`/v1/stats/users/${encodeURIComponent(u)}?workspace=${s.ws}&from=last_24h`);
      eq(Number(await page.getAttribute('[data-kpi=requests]', 'data-value')), one.metrics.requests, 'the user\'s requests');
      eq(Number(await page.getAttribute('[data-kpi=cost_usd]', 'data-value')), one.metrics.cost_usd, 'the user\'s cost');
      await scan(page, 'user');
    });

    await step('keys: create a read key (shown once), then deactivate it with confirmation', async () => {
      await page.goto(`${base}/workspaces/${s.ws}/keys`);
      await settle(page);
      await page.click('button:has-text("Create key")');
      await page.fill('dialog input[name=name]', 'scripts');
      await page.fill('dialog input[name=source]', 'scripts');
      await page.check('dialog input[name=scope] >> nth=1');
      await scan(page, 'keys-create');
      await page.click('dialog button[type=submit]');
      await page.waitForSelector('dialog >> text=This is the only time the key is shown');
      const secret = await page.inputValue('dialog .copy-field input');
      assert(/^llmt_/.test(secret), 'the read key is shown');
      const r = await fetch(`${base}/v1/stats/summary?from=last_24h`, { headers: { Authorization: `Bearer ${secret}` } });
      eq(r.status, 200, 'the read key works');
      await page.click('text=I have copied it');
      await page.waitForSelector('tr:has-text("scripts")');
      await page.click('button[aria-label="Deactivate key scripts"]');
      await page.click('dialog button[type=submit]');
      await page.waitForSelector('tr:has-text("scripts") >> text=deactivated');
      const r2 = await fetch(`${base}/v1/stats/summary?from=last_24h`, { headers: { Authorization: `Bearer ${secret}` } });
      eq(r2.status, 401, 'the deactivated key is refused at once');
      await scan(page, 'keys');
    });

    await step('prices: inline validation, a negotiated discount, an event priced with it, and stored events repriced', async () => {
      await page.goto(`${base}/workspaces/${s.ws}/prices`);
      await settle(page);
      await page.waitForSelector('text=Every event is priced by the bundled table');
      await scan(page, 'prices-empty');
      await page.click('button:has-text("Add a price")');
      await page.fill('dialog input[name=provider]', 'openai');
      await page.fill('dialog input[name=model]', 'gpt-4o');
      await page.fill('dialog input[name=percent]', '150');
      await page.evaluate(() => document.querySelector('dialog input[name=percent]').removeAttribute('max'));
      await page.click('dialog button[type=submit]');
      const err = await page.waitForSelector('dialog .field.invalid .field-error');
      assert(/percent/.test(await err.textContent()), 'the API message is shown beside the discount field');
      await scan(page, 'prices-validation');
      await page.fill('dialog input[name=percent]', '20');
      await page.fill('dialog input[name=note]', 'Enterprise agreement');
      await page.click('dialog button[type=submit]');
      await page.waitForSelector('tr:has-text("gpt-4o") >> text=20% off the table');
      await scan(page, 'prices');
      const rules = (await s.owner.get(`/v1/workspaces/${s.ws}/prices`)).rules;
      eq(rules.length, 1, 'one rule stored');
      eq(await ingest(base, s.key, [{ id: 'e2e-priced', provider: 'openai', model: 'gpt-4o', input_tokens: 1000, output_tokens: 200 }]), 1, 'event accepted');
      const log = await s.owner.get(`/v1/events?workspace=${s.ws}&from=last_24h&limit=200`);
      const e = log.events.find((x) => x.id === 'e2e-priced');
      eq(e.cost_source, 'workspace_price', 'priced by the workspace rule');
      eq(e.price.rule, rules[0].id, 'the rule is named on the event');
      // gpt-4o: 1,000 x $2.50/M + 200 x $10/M = $0.0045; 20% off: $0.0036.
      assert(Math.abs(e.cost_usd - 0.0036) < 1e-12, `cost ${e.cost_usd}`);
      // The stored gpt-4o events: previewed, then repriced with the discount, with one confirmation.
      await page.click('button:has-text("Preview the change")');
      const preview = await page.waitForSelector('[data-repricing=preview]');
      const dry = await s.owner.get(`/v1/workspaces/${s.ws}/repricing/${await preview.getAttribute('data-job')}`);
      const g = dry.models.find((m) => m.model === 'gpt-4o');
      assert(g && g.changed > 0 && g.changed === dry.total.changed, `only gpt-4o changes: ${JSON.stringify(dry.total)}`);
      assert(Math.abs(g.cost_after_usd - 0.8 * g.cost_before_usd) < 1e-9, `20% off: ${JSON.stringify(g)}`);
      const row = await page.$eval('[data-repricing=preview] tr:has(code:text-is("gpt-4o"))', (tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent.trim()));
      eq(row.slice(1, 5).join(' | '), [fmt.count(g.events), fmt.count(g.changed), fmt.usd(g.cost_before_usd), fmt.usd(g.cost_after_usd)].join(' | '), 'the preview row equals the API');
      await scan(page, 'prices-reprice-preview');
      await page.click(`button:has-text("Apply to ${fmt.count(g.changed)} events")`);
      await page.click('dialog button[type=submit]');
      const applied = await page.waitForSelector('[data-repricing=applied]');
      const job = await s.owner.get(`/v1/workspaces/${s.ws}/repricing/${await applied.getAttribute('data-job')}`);
      eq(job.rewritten, g.changed, 'every previewed event rewritten');
      const q = `workspace=${s.ws}&from=${encodeURIComponent(dry.from)}&to=${encodeURIComponent(dry.to)}`;
      const by = await s.owner.get(`/v1/stats/breakdown?${q}&by=model&limit=1000`);
      const now4o = by.rows.find((r) => r.value === 'gpt-4o');
      assert(Math.abs(now4o.metrics.cost_usd - g.cost_after_usd) < 1e-9, `the breakdown holds the new cost: ${now4o.metrics.cost_usd}`);
      const audit = await s.owner.get(`/v1/workspaces/${s.ws}/audit`);
      assert(JSON.stringify(audit).includes('data.reprice'), 'the repricing is in the audit log');
      await scan(page, 'prices-reprice-applied');
      // Removed with confirmation: the table prices events again.
      await page.click('button[aria-label="Remove the price for openai/gpt-4o"]');
      await page.click('dialog button[type=submit]');
      await page.waitForSelector('text=Every event is priced by the bundled table');
    });

    await step('alerts: inline validation, create, test, follow the emailed link, delete', async () => {
      await page.goto(`${base}/workspaces/${s.ws}/alerts`);
      await settle(page);
      await scan(page, 'alerts-empty');
      await page.click('text=New alert');
      await page.fill('input[name=name]', 'Monthly budget');
      await page.selectOption('select[name=metric]', 'budget');
      await page.fill('input[name=budget_usd]', '0');
      await page.click('button:has-text("Create alert")');
      const err = await page.waitForSelector('.field.invalid .field-error');
      assert(/budget_usd/.test(await err.textContent()), 'the API message is shown beside the budget field');
      await scan(page, 'alerts-validation');
      await page.fill('input[name=budget_usd]', '0.5');
      const before = seen(server);
      await page.click('button:has-text("Create alert")');
      await page.waitForURL(/\/alerts\/alr_/);
      s.rule = /\/alerts\/([^/?]+)/.exec(page.url())[1];
      await settle(page);
      await page.click('text=Send a test notification');
      await page.waitForSelector('section[aria-labelledby=hist-h] tbody tr');
      await scan(page, 'alert');
      const mail = await waitForMail(server, { to: OWNER, subject: /test|alert/i, after: before });
      const link = linksIn(mail, base).find((l) => l.startsWith(`${base}/workspaces/${s.ws}/alerts/${s.rule}`));
      assert(link, `the alert email links to the rule: ${linksIn(mail, base)}`);
      s.alertLink = link;
      // The budget line shows on the overview's forecast.
      await page.goto(`${base}/workspaces/${s.ws}`);
      await settle(page);
      await page.waitForSelector('.fc-budget');
      await scan(page, 'overview-budget');
    });

    await step('a signed-out visitor following the alert link signs in and lands on the rule', async () => {
      const c2 = await chrome.browser.newContext({ viewport: { width: 1280, height: 860 } });
      await watch(c2, 'owner-2');
      const p = await c2.newPage();
      await p.goto(s.alertLink);
      await p.waitForURL(/\/signin\?next=/);
      await signInUi(p, server, OWNER);
      await p.waitForURL((u) => u.pathname === `/workspaces/${s.ws}/alerts/${s.rule}`);
      await settle(p);
      assert((await p.textContent('h1')).includes('Monthly budget'), 'the rule page');
      await c2.close();
      noProblems();
    });

    await step('delete an alert rule', async () => {
      await page.goto(`${base}/workspaces/${s.ws}/alerts`);
      await settle(page);
      await page.click('text=New alert');
      await page.fill('input[name=name]', 'Errors');
      await page.selectOption('select[name=metric]', 'error_rate');
      await page.click('button:has-text("Create alert")');
      await page.waitForURL(/\/alerts\/alr_/);
      await settle(page);
      await page.click('button:has-text("Delete")');
      await page.click('dialog button[type=submit]');
      await page.waitForURL((u) => u.pathname === `/workspaces/${s.ws}/alerts`);
      await settle(page);
      const list = await s.owner.get(`/v1/workspaces/${s.ws}/alerts`);
      eq(list.length, 1, 'one rule left');
      assert(!(await page.textContent('main')).includes('Errors'), 'the deleted rule is gone');
      await scan(page, 'alerts');
    });

    await step('alerts to Slack: the form takes an incoming webhook, shows only its hint, and a test message links to the rule', async () => {
      await page.goto(`${base}/workspaces/${s.ws}/alerts/${s.rule}`);
      await settle(page);
      await page.click('button:has-text("Edit")');
      await page.fill('input[name=slack_url]', 'https://example.com/not-slack');
      await page.click('button:has-text("Save changes")');
      const err = await page.waitForSelector('.field.invalid .field-error');
      assert(/Slack incoming webhook/.test(await err.textContent()), 'the API message is shown beside the Slack field');
      const url = `${slack.url}/services/T0E2E0001/B0E2E0001/e2eSecretToken9xZ`;
      await page.fill('input[name=slack_url]', url);
      await page.click('button:has-text("Save changes")');
      await page.waitForSelector('dd code:has-text("…n9xZ")');
      assert(!(await page.textContent('main')).includes('e2eSecretToken'), 'only the hint is shown');
      await page.click('text=Send a test notification');
      await page.waitForSelector('section[aria-labelledby=hist-h] li:has-text("slack: delivered")');
      await scan(page, 'alert-slack');
      eq(slack.messages.length, 1, 'one Slack message');
      const m = slack.messages[0];
      assert(m.text.includes('Monthly budget'), `the message names the rule: ${m.text}`);
      eq(m.blocks[1].elements[0].url, `${base}/workspaces/${s.ws}/alerts/${s.rule}`, 'the button opens the rule');
      const rule = await s.owner.get(`/v1/workspaces/${s.ws}/alerts/${s.rule}`);
      assert(!JSON.stringify(rule).includes('e2eSecretToken'), 'the API shows only the hint');
    });

    await step('budgets: inline validation, a monthly budget on a feature past its warning, the figures equal the API, the overview panel', async () => {
      const probe = await s.owner.req('GET', `/v1/stats/budgets?workspace=${s.ws}`, undefined, { expect: undefined }).catch((e) => e);
      if (probe instanceof Error && / 404 /.test(probe.message)) return { skip: `the server has no budgets yet (${probe.message.slice(0, 120)})` };
      if (probe instanceof Error) throw probe;
      // A few calls of the feature now, so that this month (Europe/Paris) has spend even on its first day.
      eq(await ingest(base, s.key, Array.from({ length: 3 }, (_, i) => ({ id: `budget-${i}`, timestamp: new Date(Date.now() - 30_000 - i * 1000).toISOString(), provider: 'openai', model: 'gpt-4o', feature: 'search', input_tokens: 4000, output_tokens: 800 }))), 3, 'events accepted');
      const by = await s.owner.get(`/v1/stats/breakdown?workspace=${s.ws}&from=this_month&by=feature&limit=100`);
      const spent = by.rows.find((r) => r.value === 'search').metrics.cost_usd;
      assert(spent > 0, `the feature has spend this month: ${spent}`);
      // Small enough that the spend is 90% of it: past the 80% warning, not yet refused.
      const amount = Number((spent / 0.9).toPrecision(3));
      await page.goto(`${base}/workspaces/${s.ws}/budgets`);
      await settle(page);
      await page.waitForSelector('text=No budgets yet');
      await scan(page, 'budgets-empty');
      // The overview's call to action (admins, no budget yet) opens the form.
      await page.goto(`${base}/workspaces/${s.ws}`);
      await settle(page);
      await page.click('[data-panel=budgets] a:has-text("Set a monthly budget")');
      await page.waitForURL(/\/budgets\?new=1$/);
      await page.waitForSelector('dialog form[data-form=budget]');
      await page.fill('dialog input[name=name]', 'Search');
      await page.fill('dialog input[name=amount_usd]', '0');
      await page.selectOption('dialog select[name=dimension]', 'feature');
      await page.fill('dialog input[name=scope_value]', 'search');
      assert(await page.isChecked('dialog input[name=period][value=month]'), 'a month budget by default');
      assert(await page.isChecked('dialog input[name=deny]'), 'refusing at 100% by default');
      await page.click('dialog button[type=submit]');
      const err = await page.waitForSelector('dialog .field.invalid .field-error');
      assert(/amount_usd/.test(await err.textContent()), `the API message is shown beside the amount: ${await err.textContent()}`);
      assert((await page.$eval('dialog .field.invalid', (f) => f.querySelector('input').name)) === 'amount_usd', 'beside the amount field');
      await scan(page, 'budgets-validation');
      await page.fill('dialog input[name=amount_usd]', String(amount));
      await page.click('dialog button[type=submit]');
      await page.waitForSelector('dialog', { state: 'detached' });
      await page.waitForSelector('li[data-budget]');
      await page.waitForURL((u) => u.pathname.endsWith('/budgets') && u.search === '');
      const mine = (await s.owner.get(`/v1/workspaces/${s.ws}/budgets`)).items;
      eq(mine.length, 1, 'one budget stored');
      eq(JSON.stringify({ ...mine[0], id: 0, created_at: 0, updated_at: 0 }), JSON.stringify({ id: 0, name: 'Search', amount_usd: amount, period: { kind: 'month' }, scope: { dimension: 'feature', value: 'search' }, warn_pct: 80, deny: true, created_at: 0, updated_at: 0 }), 'the budget as made');
      // A second one, for the whole workspace over a rolling week, that only warns.
      await s.owner.post(`/v1/workspaces/${s.ws}/budgets`, { name: 'Weekly ceiling', amount_usd: 50, period: { kind: 'rolling', days: 7 }, scope: null, warn_pct: 90, deny: false });
      await page.reload();
      await settle(page);
      await page.waitForFunction(() => document.querySelectorAll('li[data-budget]').length === 2);
      // The page's figures are the API's.
      const checkRows = async (p, where) => {
        const api = (await s.owner.get(`/v1/stats/budgets?workspace=${s.ws}`)).budgets;
        eq(await p.$$eval('li[data-budget]', (l) => l.length), api.length, `${where}: one row per budget`);
        for (const { budget: b, status: st } of api) {
          const row = `li[data-budget="${b.id}"]`;
          const attr = async (k) => p.getAttribute(row, `data-${k}`);
          const text = async (k) => (await p.textContent(`${row} [data-figure=${k}]`)).trim();
          eq(Number(await attr('spent')), st.spent_usd, `${where}: ${b.name} spent`);
          eq(Number(await attr('remaining')), st.remaining_usd, `${where}: ${b.name} remaining`);
          eq(await attr('decision'), st.decision, `${where}: ${b.name} decision`);
          eq(await text('spent'), fmt.usd(st.spent_usd), `${where}: ${b.name} spent as shown`);
          eq(await text('amount'), fmt.usd(b.amount_usd), `${where}: ${b.name} amount as shown`);
          eq(await text('remaining'), fmt.usd(st.remaining_usd), `${where}: ${b.name} remaining as shown`);
          eq(await text('used'), fmt.pct(st.used_pct / 100), `${where}: ${b.name} share as shown`);
          if (st.forecast_usd === null) assert(!(await p.$(`${row} [data-figure=forecast]`)), `${where}: no forecast for ${b.name}`);
          else {
            const d = st.forecast_usd - b.amount_usd;
            const words = Math.abs(d) <= Math.max(b.amount_usd * 1e-4, 1e-6) ? 'right at the budget' : d > 0 ? `over by ${fmt.usd(d)}` : `under by ${fmt.usd(-d)}`;
            eq(await text('forecast'), `forecast ${fmt.usd(st.forecast_usd)} — ${words}`, `${where}: ${b.name} forecast`);
          }
        }
        return api;
      };
      const api = await checkRows(page, 'budgets page');
      const search = api.find((x) => x.budget.scope?.value === 'search');
      assert(search.status.used_pct >= 80 && search.status.used_pct < 100, `the feature's spend is past the warning: ${search.status.used_pct}%`);
      eq(search.status.decision, 'warn', 'a check would warn');
      assert(search.status.forecast_usd !== null, 'a month budget has a forecast');
      eq(api.find((x) => x.budget.period.kind === 'rolling').status.forecast_usd, null, 'a rolling one has none');
      eq(await page.textContent(`li[data-budget="${search.budget.id}"] [data-figure=scope]`), 'feature = search', 'the scope in words');
      eq(await page.textContent(`li[data-budget="${search.budget.id}"] [data-figure=period]`), 'This month (Europe/Paris)', 'the period in words');
      assert((await page.textContent('main')).includes('/v1/budgets/check'), 'how an app checks a budget');
      await scan(page, 'budgets');
      // Edit: the form holds the budget; the change is saved.
      await page.click(`button[aria-label="Edit the budget Weekly ceiling"]`);
      eq(await page.inputValue('dialog input[name=days]'), '7', 'the form holds the days');
      assert(!(await page.isChecked('dialog input[name=deny]')), 'and that it only warns');
      await page.fill('dialog input[name=days]', '14');
      await page.click('dialog button[type=submit]');
      await page.waitForSelector('li[data-budget] >> text=Rolling 14 days');
      // The overview's panel: the same rows.
      await page.goto(`${base}/workspaces/${s.ws}`);
      await settle(page);
      await page.waitForSelector('[data-panel=budgets] li[data-budget]');
      await checkRows(page, 'overview');
      assert(await page.isVisible('[data-panel=budgets] a:has-text("Manage budgets")'), 'the panel links to the page');
      await scan(page, 'overview-budgets');
      // Delete, confirmed.
      await page.goto(`${base}/workspaces/${s.ws}/budgets`);
      await settle(page);
      await page.click('button[aria-label="Delete the budget Weekly ceiling"]');
      await page.click('dialog button[type=submit]');
      await page.waitForFunction(() => document.querySelectorAll('li[data-budget]').length === 1);
      eq((await s.owner.get(`/v1/workspaces/${s.ws}/budgets`)).items.length, 1, 'one budget left');
    });

    await step('reconciliation: connect OpenAI and Anthropic (a fake of their billing APIs), the chart and tables equal the API, a billed rate becomes a custom price, alerts on coverage and drift', async () => {
      // Asked as the page asks: a same-origin GET, which browsers send without an Origin header.
      const probe = await s.owner.req('GET', `/v1/workspaces/${s.ws}/connections`, undefined, { expect: undefined }).catch((e) => e);
      if (probe instanceof Error && / 404 /.test(probe.message)) return { skip: `the server has no connections route yet (${probe.message.slice(0, 120)})` };
      if (probe instanceof Error) throw new Error(`the owner cannot list connections the way the page does (a GET without Origin): ${probe.message}`);
      const [day1, day2] = fake.days;
      // Some of the billed calls also reached LLMtrack (coverage below 100%).
      eq(await ingest(base, s.key, [
        { id: 'rec-1', timestamp: `${day1}T10:00:00Z`, provider: 'openai', model: 'gpt-4o-2024-08-06', input_tokens: 600000, cached_input_tokens: 150000, output_tokens: 125000 },
        { id: 'rec-2', timestamp: `${day2}T10:00:00Z`, provider: 'openai', model: 'gpt-4o-mini-2024-07-18', input_tokens: 2000000, output_tokens: 300000 },
        { id: 'rec-3', timestamp: `${day1}T11:00:00Z`, provider: 'anthropic', model: 'claude-sonnet-4-20250514', input_tokens: 800000, output_tokens: 100000 },
      ]), 3, 'events accepted');
      await page.goto(`${base}/workspaces/${s.ws}/reconciliation`);
      await settle(page);
      await page.waitForSelector('[data-state=no-connection]');
      await scan(page, 'reconciliation-empty');
      // An admin key without the usage scope: the provider's own words, beside the key.
      await page.selectOption('select[name=provider]', 'openai');
      assert((await page.getAttribute('input[name=admin_key]', 'placeholder')).startsWith('sk-admin-'), 'the OpenAI placeholder');
      assert((await page.getAttribute('input[name=admin_key]', 'type')) === 'password', 'the key is a password field');
      await page.fill('input[name=admin_key]', 'sk-admin-e2e-noscope-0000');
      await page.click('form[data-form=connection] button[type=submit]');
      const refused = await page.waitForSelector('.field.invalid .field-error', { timeout: 60_000 });
      assert(/Missing scopes|api\.usage\.read|refused/i.test(await refused.textContent()), `the refusal is shown beside the key: ${await refused.textContent()}`);
      await scan(page, 'reconciliation-refused');
      // The real one: checked, then 30 days imported before the answer.
      await page.fill('input[name=admin_key]', 'sk-admin-e2e-key-wxyz');
      await page.click('form[data-form=connection] button[type=submit]');
      await page.waitForSelector('tr[data-connection]', { timeout: 120_000 });
      await page.click('button:has-text("Add connection")');
      await page.selectOption('select[name=provider]', 'anthropic');
      assert((await page.getAttribute('input[name=admin_key]', 'placeholder')).startsWith('sk-ant-admin'), 'the Anthropic placeholder');
      await page.fill('input[name=admin_key]', 'sk-ant-admin01-e2e-key-1234');
      await page.fill('input[name=scope]', '');
      await page.click('form[data-form=connection] button[type=submit]');
      await page.waitForFunction(() => document.querySelectorAll('tr[data-connection]').length === 2, null, { timeout: 120_000 });
      const conns = (await s.owner.get(`/v1/workspaces/${s.ws}/connections`)).connections;
      eq(conns.map((c) => c.provider).sort().join(','), 'anthropic,openai', 'two connections');
      assert(!JSON.stringify(conns).includes('e2e-key'), 'the API never returns the admin key');
      assert(!(await page.content()).includes('e2e-key'), 'the page never shows the admin key');
      for (const c of conns) {
        assert((await page.textContent(`tr[data-connection="${c.id}"]`)).includes(c.key_hint.replace(/^…/, '')), 'the key hint is listed');
        eq(await page.getAttribute(`tr[data-connection="${c.id}"] [data-import]`, 'data-import'), 'ok', `${c.provider} imported`);
      }
      assert(fake.requests.some((r) => r.path === '/v1/organization/costs' && r.authorization?.startsWith('Bearer sk-admin-')), 'OpenAI was asked with the admin key as a bearer token');
      assert(fake.requests.some((r) => r.path === '/v1/organizations/cost_report' && r.apiKey?.startsWith('sk-ant-admin') && r.anthropicVersion), 'Anthropic was asked with x-api-key and anthropic-version');
      // The figures: tiles, chart, tables, as the API answers them for the page's range.
      await settle(page);
      const to = new Date().toISOString().slice(0, 10);
      const from = new Date(Date.parse(`${to}T00:00:00Z`) - 30 * 86400_000).toISOString().slice(0, 10);
      const api = await s.owner.get(`/v1/stats/reconciliation?workspace=${s.ws}&from=${from}&to=${to}`);
      // The fixtures' two days: OpenAI $7.03 + $4.9475 less 10% of gpt-4o's output ($0.43),
      // Anthropic $17.056685 + $12.03085 (README §3).
      assert(Math.abs(api.total.billed.cost_usd - 40.635035) < 1e-6, `billed total ${api.total.billed.cost_usd}, want 40.635035`);
      for (const k of ['billed', 'tracked']) {
        eq(Number(await page.getAttribute(`[data-kpi=${k}]`, 'data-value')), api.total[k].cost_usd, `${k} tile`);
        eq(await page.textContent(`[data-kpi=${k}] .kpi-value`), fmt.usd(api.total[k].cost_usd), `${k} as shown`);
      }
      eq(Number(await page.getAttribute('[data-kpi=drift]', 'data-value')), api.total.drift_usd, 'drift tile');
      assert(await page.isVisible('section[aria-labelledby=chart-h] .chart-box canvas'), 'the daily chart is drawn');
      const legend = await page.textContent('section[aria-labelledby=chart-h] .u-legend');
      assert(legend.includes('Billed by the provider') && legend.includes("LLMtrack's cost"), `both series on one chart: ${legend}`);
      const models = await page.$$eval('[data-table=models] tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td, i) => (i === 0 ? td.querySelector('code, em').textContent : td.textContent).trim())));
      const heads = await page.$$eval('[data-table=models] thead th', (ths) => ths.map((th) => th.textContent.replace(/[↕▲▼]/g, '').trim()));
      eq(models.length, api.models.length, 'model rows');
      api.models.forEach((m, i) => {
        eq(models[i][0], m.model === '' ? 'Not tied to a model' : m.model, `model row ${i}`);
        eq(models[i][heads.indexOf('Billed')], fmt.usd(m.billed.cost_usd), `model row ${i} billed`);
        eq(models[i][heads.indexOf('Billed tokens')], fmt.count(m.billed.total_tokens), `model row ${i} billed tokens`);
        eq(models[i][heads.indexOf('LLMtrack')].replace(/\d[\d,]* unpriced$/, ''), fmt.usd(m.tracked.cost_usd), `model row ${i} LLMtrack's cost`);
      });
      for (const m of ['gpt-4o-2024-08-06', 'claude-opus-4-6']) assert(api.models.some((x) => x.model === m), `${m} is in the model table`);
      await page.click('[data-table=days] summary');
      eq(await page.$$eval('[data-table=days] tbody tr', (t) => t.length), api.days.length, 'one row per day');
      await scan(page, 'reconciliation');
      // A billed rate unlike the table's, taken as a workspace price with one confirmation: the
      // fake bills gpt-4o's output at $9 per million, the table says $10. (Sonnet 4's hour-long
      // cache writes, billed at their own rate, are no difference.)
      const offered = api.prices.filter((p) => p.difference_pct !== null && p.table_usd_per_mtok !== null && Math.abs(p.difference_pct) >= 0.05);
      eq(await page.$$eval('button:has-text("Use as custom price")', (b) => b.length), offered.length, 'one offer per differing rate');
      assert(!api.prices.some((p) => p.kind === 'cache_write'), `hour-long cache writes are billed at their own rate: ${JSON.stringify(api.prices)}`);
      const gap = offered.find((p) => p.model === 'gpt-4o-2024-08-06' && p.kind === 'output');
      assert(gap && Math.abs(gap.billed_usd_per_mtok - 9) < 1e-9, `gpt-4o's output billed at $9 per million: ${JSON.stringify(api.prices)}`);
      const kindWords = { input: 'input', cached_input: 'cached input', cache_write: 'cache write', output: 'output' };
      await page.click(`button[aria-label="Use as custom price: the billed ${kindWords[gap.kind]} rate of ${gap.model}"]`);
      await page.waitForSelector('dialog form[data-plan=post]');
      eq(Number(await page.inputValue(`dialog input[name=rate-${gap.kind}]`)), gap.billed_usd_per_mtok, 'the dialog shows the billed rate');
      // Input matches the bill, so the answer does not list it: the rate LLMtrack charged its
      // latest event of the model (rec-1) fills it.
      const tracked = api.models.find((m) => m.provider === gap.provider && m.model === gap.model).tracked_model || gap.model;
      const latest = (await s.owner.get(`/v1/events?workspace=${s.ws}&from=${from}T00:00:00Z&to=${to}T00:00:00Z&provider=${gap.provider}&model=${encodeURIComponent(tracked)}&limit=1`)).events[0];
      const now = latest?.price?.rates ?? {};
      assert(typeof now.input === 'number' && typeof now.output === 'number', `the latest ${tracked} event carries the rates it was priced with: ${JSON.stringify(latest?.price)}`);
      eq(Number(await page.inputValue('dialog input[name=rate-input]')), now.input, 'the input rate as LLMtrack charges it');
      await scan(page, 'reconciliation-price');
      await page.click('dialog button[type=submit]');
      await page.waitForSelector('dialog', { state: 'detached' });
      const rule = (await s.owner.get(`/v1/workspaces/${s.ws}/prices`)).rules.find((r) => r.model === gap.model);
      assert(rule && rule.kind === 'rates' && rule.rates[gap.kind] === gap.billed_usd_per_mtok && rule.rates.input === now.input, `the price rule: ${JSON.stringify(rule)}`);
      await s.owner.req('DELETE', `/v1/workspaces/${s.ws}/prices/${rule.id}`, undefined, { expect: 204 });
      // Test, Import now, another range, Remove (confirmed).
      const openai = conns.find((c) => c.provider === 'openai');
      const anthropic = conns.find((c) => c.provider === 'anthropic');
      await page.click(`tr[data-connection="${openai.id}"] button:has-text("Test")`);
      await page.waitForSelector('.toast >> text=OpenAI accepted the admin key');
      await page.click(`tr[data-connection="${anthropic.id}"] button:has-text("Import now")`);
      await page.waitForSelector('.toast >> text=/Imported/');
      await page.selectOption('select[name=range]', '7');
      await page.waitForURL(/days=7/);
      await settle(page);
      await page.click(`tr[data-connection="${anthropic.id}"] button:has-text("Remove")`);
      await page.click('dialog button[type=submit]');
      await page.waitForFunction(() => document.querySelectorAll('tr[data-connection]').length === 1);
      eq((await s.owner.get(`/v1/workspaces/${s.ws}/connections`)).connections.length, 1, 'one connection left');
      // Alert rules on the bill, from the alert form.
      for (const [name, metric, fields, words] of [
        ['Bill coverage', 'coverage', { under_pct: '80', days: '3' }, 'under 80% of the provider'],
        ['Bill drift', 'drift', { drift_pct: '10', days: '3' }, '10% or more away from the provider'],
      ]) {
        await page.goto(`${base}/workspaces/${s.ws}/alerts`);
        await settle(page);
        await page.click('text=New alert');
        await page.fill('input[name=name]', name);
        await page.selectOption('select[name=metric]', metric);
        assert(!(await page.isVisible('select[name=dimension]')), 'no "only for" filter on a rule about the bill');
        for (const [k, v] of Object.entries(fields)) await page.fill(`input[name=${k}]`, v);
        if (metric === 'coverage') await scan(page, 'alerts-coverage-form');
        await page.click('button:has-text("Create alert")');
        await page.waitForURL(/\/alerts\/alr_/);
        await settle(page);
        assert((await page.textContent('.page-head')).includes(words), `the rule in words: ${await page.textContent('.page-head')}`);
        const id = /\/alerts\/([^/?]+)/.exec(page.url())[1];
        const r = await s.owner.get(`/v1/workspaces/${s.ws}/alerts/${id}`);
        eq(JSON.stringify(r.condition), JSON.stringify(metric === 'coverage' ? { metric, under_pct: 80, days: 3 } : { metric, over_pct: 10, days: 3 }), `${metric} condition stored`);
      }
      await scan(page, 'alert-drift');
    });

    await step('billing and usage pages, with the Stripe return URL', async () => {
      await visit(page, base, `/workspaces/${s.ws}/billing?checkout=cancelled`, 'billing');
      assert(await page.isVisible('text=Checkout was cancelled'), 'the return notice');
      const about = await s.owner.get('/v1/about');
      if (!about.billing_configured) assert(await page.isVisible('[data-billing=not-configured]'), 'billing is not configured, said plainly');
      await visit(page, base, `/workspaces/${s.ws}/usage`, 'usage');
      const usage = await s.owner.get(`/v1/workspaces/${s.ws}/usage`);
      assert((await page.textContent('main')).includes(`${fmt.count(usage.events.used)} of ${fmt.count(usage.events.limit)}`), 'events used of the limit');
    });

    await step('reports: the list, and the emailed monthly report link', async () => {
      await visit(page, base, `/workspaces/${s.ws}/reports`, 'reports');
      const d = new Date();
      const last = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - 1, 10, 12));
      const month = last.toISOString().slice(0, 7);
      const events = Array.from({ length: 12 }, (_, i) => ({ id: `last-month-${i}`, timestamp: new Date(last.getTime() + i * 3600_000).toISOString(), provider: 'openai', model: 'gpt-4o', input_tokens: 1000, output_tokens: 100 }));
      await ingest(base, s.key, events);
      const before = seen(server);
      await jobs(server, ['reports', '--month', month, '--workspace', s.ws]);
      await sleep(300);
      const mail = outbox(server).filter((m) => !before.has(m.file)).find((m) => m.to.includes(OWNER) && /report/i.test(m.subject));
      if (!mail) {
        const list = await s.owner.get(`/v1/workspaces/${s.ws}/reports`);
        return { skip: `the server made no report of ${month} (${list.length} listed): it skips months that ended before the workspace was created, even with backdated events` };
      }
      const link = linksIn(mail, base).find((l) => l.startsWith(`${base}/workspaces/${s.ws}/reports/${month}`));
      assert(link, 'the report email links to the report page');
      await page.goto(link);
      await settle(page);
      await page.waitForSelector('.report');
      const sum = await s.owner.get(`/v1/stats/summary?workspace=${s.ws}&from=${month}-01T00:00:00Z&to=${nextMonth(month)}`);
      const shown = Number(await page.getAttribute('.report', 'data-report-cost'));
      assert(Math.abs(shown - sum.metrics.cost_usd) < 1e-9, `the report's cost ${shown} equals the API's ${sum.metrics.cost_usd} for ${month}`);
      eq(sum.metrics.requests, 12, "last month's events");
      assert((await page.textContent('.report .kpi-value')) === fmt.usd(sum.metrics.cost_usd), 'the cost as shown');
      await scan(page, 'report');
    });

    await step('delete usage data by date range (in the workspace timezone) and read the receipt', async () => {
      const d = new Date();
      const day = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - 1, 10)).toISOString().slice(0, 10);
      const next = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - 1, 11)).toISOString().slice(0, 10);
      const month = day.slice(0, 7);
      const before = (await s.owner.get(`/v1/stats/summary?workspace=${s.ws}&from=${month}-01T00:00:00Z&to=${nextMonth(month)}`)).metrics.requests;
      await page.goto(`${base}/workspaces/${s.ws}/settings`);
      await settle(page);
      await page.fill('input[name=del-from]', day);
      await page.fill('input[name=del-to]', next);
      await page.click('text=Delete usage data…');
      await page.fill('dialog input', 'Acme');
      await page.click('dialog button[type=submit]');
      await page.waitForURL(/\/deletions\/del_/);
      await page.waitForSelector('[data-state=done]', { timeout: 60_000 });
      await settle(page);
      eq(await page.textContent('[data-kind=events] td'), fmt.count(before), 'the receipt counts the deleted events');
      const after = await s.owner.get(`/v1/stats/summary?workspace=${s.ws}&from=${month}-01T00:00:00Z&to=${nextMonth(month)}`);
      eq(after.metrics.requests, 0, 'the range is empty afterwards');
      await scan(page, 'deletion-range-receipt');
    });

    await step('members: invite a viewer, who signs in by the emailed links and sees no write buttons', async () => {
      await page.goto(`${base}/workspaces/${s.ws}/members`);
      await settle(page);
      const before = seen(server);
      await page.fill('input[name=invite-email]', MEMBER);
      await page.selectOption('select[name=invite-role]', 'viewer');
      await page.click('button:has-text("Send invitation")');
      await page.waitForSelector(`td:has-text("${MEMBER}")`);
      await scan(page, 'members');
      const invite = await waitForMail(server, { to: MEMBER, after: before });
      const link = linksIn(invite, base).find((l) => l.startsWith(`${base}/invitations/${s.ws}/`));
      assert(link, `the invitation email links to /invitations/…: ${invite.text}`);

      const mctx = await chrome.browser.newContext({ viewport: { width: 1280, height: 860 } });
      await watch(mctx, 'viewer');
      const mp = await mctx.newPage();
      s.mctx = mctx;
      s.mp = mp;
      await mp.goto(link);
      await mp.waitForURL(/\/signin\?next=/);
      await mp.fill('input[name=email]', MEMBER);
      const b2 = seen(server);
      await mp.click('button[type=submit]');
      await mp.waitForSelector('input[name=code]');
      const signin = await waitForMail(server, { to: MEMBER, subject: /sign-in code/, after: b2 });
      const signinLink = linksIn(signin, base).find((l) => l.startsWith(`${base}/signin?`));
      assert(signinLink && /email=/.test(signinLink) && /code=\d{6}/.test(signinLink), 'the sign-in email carries a link');
      // The emailed link signs in directly, then goes back to the invitation.
      await mp.goto(signinLink);
      await mp.waitForURL((u) => u.pathname.startsWith('/invitations/'));
      await settle(mp);
      await scan(mp, 'invitation');
      await mp.click('text=Accept the invitation');
      await mp.waitForURL((u) => u.pathname === `/workspaces/${s.ws}`);
      await settle(mp);
      s.viewer = await sessionApi(mctx, base);
      const ws = (await s.viewer.get('/v1/me')).workspaces.find((w) => w.id === s.ws);
      eq(ws.role, 'viewer', 'joined as a viewer');
    });

    await step('a viewer sees every page but no button it may not use', async () => {
      const mp = s.mp;
      const forbidden = ['Create key', 'Add a price', 'New budget', 'Set a monthly budget', 'Deactivate', 'Rotate', 'New alert', 'Send a test notification', 'Send invitation', 'Delete', 'Upgrade to Pro', 'Manage billing', 'Edit', 'Remove', 'Revoke', 'Add connection', 'Connect', 'Test', 'Import', 'Use as custom price'];
      const pages = [
        ['', 'viewer-overview'],
        ['/keys', 'viewer-keys'],
        ['/alerts', 'viewer-alerts'],
        [`/alerts/${s.rule}`, 'viewer-alert'],
        ['/members', 'viewer-members'],
        ['/settings', 'viewer-settings'],
        ['/billing', 'viewer-billing'],
        ['/reports', 'viewer-reports'],
        ['/prices', 'viewer-prices'],
        ['/budgets', 'viewer-budgets'],
        ['/reconciliation', 'viewer-reconciliation'],
      ];
      for (const [p, name] of pages) {
        await mp.goto(`${base}/workspaces/${s.ws}${p}`);
        await settle(mp);
        const buttons = await mp.$$eval('main button, main a.btn', (bs) => bs.map((b) => b.textContent.trim()));
        for (const f of forbidden) assert(!buttons.some((b) => b.startsWith(f)), `${name}: no "${f}" button for a viewer (found ${buttons.join(' | ')})`);
        await scan(mp, name);
      }
      const nav = await mp.$$eval('nav#nav a', (as) => as.map((a) => a.textContent.trim()));
      assert(!nav.includes('Audit log'), 'no audit log for a viewer');
    });

    await step('audit log, settings and account pages', async () => {
      await visit(page, base, `/workspaces/${s.ws}/audit`, 'audit');
      const audit = await s.owner.get(`/v1/workspaces/${s.ws}/audit?limit=50`);
      eq(await page.$$eval('tbody tr', (t) => t.length), audit.entries.length, 'audit rows');
      await visit(page, base, `/workspaces/${s.ws}/settings`, 'settings');
      await page.fill('input[name=ws-name]', 'Acme Inc');
      await page.click('button:has-text("Save")');
      await page.waitForSelector('text=Settings saved.');
      eq((await s.owner.get(`/v1/workspaces/${s.ws}`)).name, 'Acme Inc', 'renamed');
      // The attributes that name feature and user for OpenTelemetry spans, then a span sent as
      // an exporter sends it (OTLP/JSON) lands with those labels.
      await page.fill('input[name=span-feature]', 'app.feature, service.name');
      await page.fill('input[name=span-user]', 'customer.id');
      await page.click('button:has-text("Save attributes")');
      await page.waitForSelector('text=OpenTelemetry attributes saved.');
      eq(JSON.stringify((await s.owner.get(`/v1/workspaces/${s.ws}`)).span_labels), JSON.stringify({ feature: ['app.feature', 'service.name'], user: ['customer.id'] }), 'span labels saved');
      const nano = (ms) => String(BigInt(ms) * 1_000_000n);
      const t = Date.now() - 120_000;
      const attr = (key, v) => ({ key, value: typeof v === 'number' ? { intValue: String(v) } : { stringValue: v } });
      const otlp = await fetch(`${base}/otlp/v1/traces`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${s.key}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({
          resourceSpans: [{
            resource: { attributes: [attr('service.name', 'billing-api'), attr('customer.id', 'c-9')] },
            scopeSpans: [{ spans: [{
              traceId: '5b8efff798038103d269b633813fc60c', spanId: 'eee19b7ec3c1b174', name: 'chat gpt-4o', kind: 3,
              startTimeUnixNano: nano(t), endTimeUnixNano: nano(t + 900),
              attributes: [attr('gen_ai.operation.name', 'chat'), attr('gen_ai.provider.name', 'openai'), attr('gen_ai.request.model', 'gpt-4o'),
                attr('gen_ai.usage.input_tokens', 1000), attr('gen_ai.usage.output_tokens', 100), attr('app.feature', 'otel-invoices')],
            }] }],
          }],
        }),
      });
      eq(otlp.status, 200, 'the OTLP export is accepted');
      const logged = await s.owner.get(`/v1/events?workspace=${s.ws}&from=last_24h&feature=otel-invoices`);
      eq(logged.events.length, 1, 'the span is one event');
      eq(`${logged.events[0].user_id} ${logged.events[0].id}`, 'c-9 otel:5b8efff798038103d269b633813fc60c:eee19b7ec3c1b174', 'labelled from the resource, identified by the span');
      await scan(page, 'settings-otel');
      await visit(page, base, '/account', 'account');
    });

    await step('cost allocation tags: declare a key in settings, events carry it, explore groups by it, FOCUS export', async () => {
      await page.goto(`${base}/workspaces/${s.ws}/settings`);
      await settle(page);
      const tagsCard = 'section[aria-labelledby=tags-h]';
      await page.waitForSelector(`${tagsCard} [data-no-tags]`);
      // A key the API refuses: its message inline, naming the key.
      await page.fill('input[name=tag-key]', 'bad key');
      await page.click(`${tagsCard} button:has-text("Add key")`);
      await page.click(`${tagsCard} button:has-text("Save tag keys")`);
      await page.waitForSelector(`${tagsCard} .field-error:has-text("“bad key”")`);
      await page.click(`${tagsCard} button:has-text("Undo changes")`);
      await page.fill('input[name=tag-key]', 'team');
      await page.click(`${tagsCard} button:has-text("Add key")`);
      await page.click(`${tagsCard} button:has-text("Save tag keys")`);
      await page.waitForSelector('text=Tag keys saved.');
      await page.waitForSelector(`${tagsCard} [data-tag-values=team]`);
      eq((await s.owner.get(`/v1/workspaces/${s.ws}/tags`)).keys.map((k) => k.key).join(','), 'team', 'the key is declared');
      await scan(page, 'settings-tags');
      // Events carry it in their metadata (from the hour it was declared).
      const at = new Date().toISOString();
      const tagged = [['growth', 'gpt-4o-mini'], ['growth', 'gpt-4o'], ['search', 'gpt-4o-mini'], [undefined, 'gpt-4o-mini']].map(([team, model], i) => ({
        id: `tag-${i}`, timestamp: at, provider: 'openai', model, input_tokens: 1000, output_tokens: 200, metadata: team ? { team, region: 'eu' } : { region: 'eu' },
      }));
      eq(await ingest(base, s.key, tagged), 4, 'tagged events accepted');
      // Explore offers the key as a grouping; the URL keeps it.
      await page.goto(`${base}/workspaces/${s.ws}/explore?range=last_24h`);
      await settle(page);
      await page.waitForSelector('select[name=by] option[value="tag:team"]', { state: 'attached' });
      eq((await page.textContent('select[name=by] option[value="tag:team"]')).trim(), 'team', 'the option is labelled by the key');
      await page.selectOption('select[name=by]', 'tag:team');
      await page.waitForURL(/by=tag%3Ateam/);
      await settle(page);
      const api = await s.owner.get(`/v1/stats/breakdown?workspace=${s.ws}&from=last_24h&by=tag:team&sort=cost_usd&order=desc&limit=1000`);
      eq(api.tag.key, 'team', 'the API names the key');
      const want = api.rows.map((r) => `${fmt.dimValue(r.value)} ${fmt.usd(r.metrics.cost_usd)}`).join('; ');
      await page.waitForFunction(
        (w) => [...document.querySelectorAll('section[aria-labelledby=tbl-h] tbody tr')].map((tr) => [...tr.querySelectorAll('td')].slice(0, 2).map((td) => td.textContent.trim()).join(' ')).join('; ') === w,
        want,
        { timeout: 10_000 },
      );
      const byValue = Object.fromEntries(api.rows.map((r) => [r.value, r.metrics.requests]));
      eq(`${byValue.growth} ${byValue.search}`, '2 1', 'requests by team');
      eq((await page.textContent('#tbl-h')).trim(), 'By team', 'the table is headed by the key');
      const head = await page.$$eval('section[aria-labelledby=tbl-h] thead th', (ths) => ths.map((th) => th.textContent.replace(/[↕▲▼]/g, '').trim()));
      eq(head[0], 'team', 'the first column is the key');
      assert((await page.textContent('#ts-h')).includes('by team'), 'the chart is headed by the key');
      assert(!(await page.textContent('main')).includes('tag1'), 'the internal slot is never shown');
      assert(await page.isVisible('[data-tag-since]'), 'since when events carry the key is said');
      await scan(page, 'explore-tag');
      // FOCUS: cost rows for finance tools, the key among the tags.
      const focus = page.locator('section[aria-labelledby=tbl-h] button:has-text("FOCUS (CSV)")');
      assert(/FOCUS 1\.2/.test((await focus.getAttribute('title')) ?? ''), 'the FOCUS button says what it is');
      const [dl] = await Promise.all([page.waitForEvent('download'), focus.click()]);
      assert(dl.suggestedFilename().endsWith('.csv') && /focus/.test(dl.suggestedFilename()), `a FOCUS .csv file: ${dl.suggestedFilename()}`);
      const text = readFileSync(await dl.path(), 'utf8');
      const header = text.split(/\r?\n/)[0].split(',');
      assert(header.includes('BilledCost') && header.includes('Tags'), `FOCUS columns: ${header.join(',')}`);
      assert(/team"*:\s*"*growth/.test(text), 'a row tagged team=growth');
    });

    await step('the plan usage link of a usage alert opens the usage page', async () => {
      // The evaluator runs every minute inside serve; run it once now rather than wait
      // (servers without that command still evaluate within a minute).
      await jobs(server, ['alerts']).catch(() => {});
      const ws2 = { id: s.ws2 };
      const mail = await waitForMail(server, { to: OWNER, subject: /used 80%/, after: s.beforeQuota, timeout: 90_000 }).catch(() => null);
      const link = mail && linksIn(mail, base).find((l) => l.startsWith(`${base}/workspaces/${ws2.id}/usage`));
      assert(link, `the usage email links to the workspace: ${mail ? mail.subject + ' ' + linksIn(mail, base) : 'no email'}`);
      await page.goto(link);
      await settle(page);
      assert((await page.textContent('main')).includes('8,000 of 10,000'), 'usage shown against the limit');
      await scan(page, 'usage-alert-link');
    });

    await step('delete a workspace with typed confirmation and see the receipt (and its emailed link)', async () => {
      await page.goto(`${base}/workspaces/${s.ws2}/settings`);
      await settle(page);
      await page.click('text=Delete workspace…');
      const confirm = page.locator('dialog button[type=submit]');
      assert(await confirm.isDisabled(), 'disabled until the name is typed');
      await page.fill('dialog input', 'Quota Co');
      await scan(page, 'settings-delete');
      const before = seen(server);
      await confirm.click();
      await page.waitForURL(/\/deletions\//);
      await page.waitForSelector('[data-state=done]', { timeout: 60_000 });
      const job = /\/deletions\/([^/?]+)/.exec(page.url())[1];
      eq(await page.textContent('[data-kind=events] td'), fmt.count(8000), 'the receipt counts the events');
      await settle(page);
      await scan(page, 'deletion-receipt');
      const ws = (await s.owner.get('/v1/me')).workspaces.map((w) => w.id);
      assert(!ws.includes(s.ws2), 'the workspace is gone from the list');
      const mail = await waitForMail(server, { to: OWNER, subject: /delet|receipt/i, after: before, timeout: 30_000 });
      const link = linksIn(mail, base).find((l) => l.startsWith(`${base}/workspaces/${s.ws2}/deletions/${job}`));
      if (!link) return { skip: `the receipt email does not link to /workspaces/…/deletions/${job} yet (links: ${linksIn(mail, base).join(', ') || 'none'})` };
      await page.goto(link);
      await settle(page);
      await page.waitForSelector('[data-state=done]');
    });

    await step('the viewer signs out everywhere; the owner signs out', async () => {
      await s.mp.goto(`${base}/account`);
      await settle(s.mp);
      await s.mp.click('text=Sign out everywhere');
      await s.mp.click('dialog button[type=submit]');
      await s.mp.waitForURL(/\/signin/);
      await s.viewer.req('GET', '/v1/me', undefined, { expect: 401 });
      await s.mctx.close();
      await page.goto(`${base}/workspaces/${s.ws}`);
      await settle(page);
      await page.click('header button:has-text("Sign out")');
      await page.waitForURL(/\/signin/);
      await s.owner.req('GET', '/v1/me', undefined, { expect: 401 });
      await page.goto(`${base}/workspaces/${s.ws}/keys`);
      await page.waitForURL(/\/signin\?next=/);
      noProblems();
    });
  } finally {
    await chrome.close();
    await server.stop();
    await fake.stop();
  }
}

function nextMonth(m) {
  const [y, mo] = m.split('-').map(Number);
  return new Date(Date.UTC(y, mo, 1)).toISOString().replace('.000', '');
}

try {
  await main();
} catch (e) {
  results.push({ name: 'setup', status: 'failed', why: e });
  console.log(`✕ setup\n    ${e?.stack ?? e}`);
}
const passed = results.filter((r) => r.status === 'passed').length;
const failed = results.filter((r) => r.status === 'failed').length;
const skipped = results.filter((r) => r.status === 'skipped').length;
console.log(`\nscreenshots: ${shots.size} pages × light and dark in ${SHOTS}`);
console.log(`e2e took ${((Date.now() - started) / 1000).toFixed(0)} s`);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
