// A local fake of the providers' billing APIs for the end-to-end run: OpenAI's organization
// Costs and Completions Usage (`/v1/organization/...`) and Anthropic's Admin usage and cost reports
// (`/v1/organizations/...`), on one port. It answers like the real APIs (fixtures and their README
// in tests/fixtures/provider-billing/): the admin-key headers are checked, every day bucket of the range
// is answered (empty ones too), at most `limit` buckets a page with `has_more` / `next_page`.
//
// The fixtures' two days (2026-08-01 and 02) are served as the two UTC days before today, so an
// import of "the last 30 days" finds them. One change on purpose: OpenAI bills gpt-4o's output at
// 90% of the fixture's price ($9 instead of $10 per million tokens): a price difference the
// page offers as a workspace price.
//
//   const fake = await startFakeProviders();  // fake.url, fake.requests, fake.days, fake.stop()
//   OPENAI_API_BASE=${fake.url}/v1  ANTHROPIC_API_BASE=${fake.url}
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const DAY = 86_400;

/** The fixtures the Rust tests' fake serves too (tests/fixtures/provider-billing). */
export function fixturesDir() {
  return resolve(HERE, '../../tests/fixtures/provider-billing');
}

const isoDay = (s) => new Date(s * 1000).toISOString().slice(0, 10);
const rfc3339 = (s) => new Date(s * 1000).toISOString().replace('.000Z', 'Z');
const midnight = (s) => Math.floor(s / DAY) * DAY;

export async function startFakeProviders({ dir = fixturesDir(), now = Date.now(), outputDiscount = 0.9 } = {}) {
  const load = (f) => JSON.parse(readFileSync(join(dir, f), 'utf8'));
  const errors = load('errors.json');
  const today = midnight(Math.floor(now / 1000));
  // Fixture day -> served day: the fixtures' days in order become the days before today.
  const fixtureDays = ['2026-08-01', '2026-08-02'];
  const served = fixtureDays.map((_, i) => today - (fixtureDays.length - i) * DAY);
  const dayOf = (fixtureDay) => served[fixtureDays.indexOf(fixtureDay)];

  // Results by served day (seconds at UTC midnight).
  const byDay = (buckets, startOf) => {
    const m = new Map();
    for (const b of buckets) {
      const d = dayOf(startOf(b));
      if (d !== undefined) m.set(d, (m.get(d) ?? []).concat(b.results));
    }
    return m;
  };
  const openaiUsage = byDay(load('openai-usage-completions.json').data, (b) => isoDay(b.start_time));
  const openaiCosts = byDay([...load('openai-costs-page1.json').data, ...load('openai-costs-page2.json').data], (b) => isoDay(b.start_time));
  for (const results of openaiCosts.values()) {
    for (const r of results) {
      if (r.line_item === 'gpt-4o-2024-08-06, output') r.amount = { ...r.amount, value: Math.round(r.amount.value * outputDiscount * 1e6) / 1e6 };
    }
  }
  const anthropicUsage = byDay(load('anthropic-usage-report.json').data, (b) => b.starting_at.slice(0, 10));
  const anthropicCosts = byDay(load('anthropic-cost-report.json').data, (b) => b.starting_at.slice(0, 10));
  // For a `project_ids` filter on usage grouped by model only (README §3: one project per model).
  const projectOfModel = { 'gpt-4o-2024-08-06': 'proj_7Hq2LmN4pR8sT1vW3xY5zA6b', 'gpt-4o-mini-2024-07-18': 'proj_C9dE2fG4hJ6kL8mN0pQ2rS4t' };

  const requests = [];
  const send = (res, status, body, headers = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
  const list = (q, name) => [...q.getAll(name), ...q.getAll(`${name}[]`)];

  /** The day buckets of one page: from `start` (or the page token) up to `end`, `limit` at most. */
  function page(q, { start, end, limit, maxLimit }) {
    const token = q.get('page');
    let from = start;
    if (token) {
      const m = /^page_(\d+)$/.exec(token);
      if (!m) return { error: 'page' };
      from = Number(m[1]);
    }
    const n = Math.min(Math.max(1, Number(q.get('limit') ?? limit) || limit), maxLimit);
    const out = [];
    let t = from;
    while (t < end && out.length < n) {
      // The first bucket starts where asked and ends at the next UTC midnight (as observed).
      const next = Math.min(midnight(t) + DAY, end);
      out.push([t, next]);
      t = next;
    }
    return { buckets: out, has_more: t < end, next_page: t < end ? `page_${t}` : null };
  }

  function openai(req, res, url) {
    const auth = req.headers.authorization ?? '';
    const key = /^Bearer (.+)$/.exec(auth)?.[1] ?? '';
    if (!key.startsWith('sk-admin-')) return send(res, 401, errors.openai[0].body);
    // A key made to be refused: an admin key without the usage scope.
    if (key.includes('noscope')) return send(res, 401, errors.openai[1].body);
    const q = url.searchParams;
    const start = Number(q.get('start_time'));
    if (!q.get('start_time') || !Number.isInteger(start)) return send(res, 400, { error: { message: "Missing required parameter: 'start_time'.", type: 'invalid_request_error', param: 'start_time', code: null } });
    const endQ = q.get('end_time');
    const end = endQ ? Number(endQ) : today + DAY;
    const path = url.pathname;
    const costs = path === '/v1/organization/costs';
    const usage = path === '/v1/organization/usage/completions' || path === '/v1/organization/usage/embeddings';
    if (!costs && !usage) return send(res, 404, { error: { message: `Invalid URL (GET ${path})`, type: 'invalid_request_error', param: null, code: null } });
    const p = page(q, { start, end, limit: 7, maxLimit: costs ? 180 : 31 });
    if (p.error) return send(res, 400, { error: { message: 'Invalid page token.', type: 'invalid_request_error', param: 'page', code: null } });
    const projects = list(q, 'project_ids');
    const source = costs ? openaiCosts : path.endsWith('/completions') ? openaiUsage : new Map();
    const data = p.buckets.map(([s, e]) => {
      let results = structuredClone(source.get(midnight(s)) ?? []);
      // Only whole days hold the day's figures (a partial first bucket would double count).
      if (s !== midnight(s)) results = [];
      if (projects.length) results = results.filter((r) => projects.includes(r.project_id ?? projectOfModel[r.model]));
      return { object: 'bucket', start_time: s, end_time: e, results };
    });
    send(res, 200, { object: 'page', data, has_more: p.has_more, next_page: p.next_page });
  }

  function anthropic(req, res, url) {
    const key = req.headers['x-api-key'] ?? /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    const rid = { 'request-id': `req_fake${requests.length}` };
    if (!req.headers['anthropic-version']) return send(res, 400, { type: 'error', error: { type: 'invalid_request_error', message: 'anthropic-version: header is required' }, request_id: rid['request-id'] }, rid);
    if (key.startsWith('sk-ant-api')) return send(res, 403, errors.anthropic[1].body, rid);
    if (!key.startsWith('sk-ant-admin')) return send(res, 401, errors.anthropic[0].body, rid);
    const q = url.searchParams;
    const startQ = q.get('starting_at');
    const start = startQ ? Date.parse(startQ) / 1000 : NaN;
    if (!Number.isFinite(start)) return send(res, 400, errors.anthropic[3].body, rid);
    const endQ = q.get('ending_at');
    const end = endQ ? Date.parse(endQ) / 1000 : today + DAY;
    const path = url.pathname;
    const usage = path === '/v1/organizations/usage_report/messages';
    const costs = path === '/v1/organizations/cost_report';
    if (!usage && !costs) return send(res, 404, { type: 'error', error: { type: 'not_found_error', message: 'Not found' }, request_id: rid['request-id'] }, rid);
    const limit = Number(q.get('limit') ?? 7);
    if (!Number.isInteger(limit) || limit < 1 || limit > 31) return send(res, 400, errors.anthropic[3].body, rid);
    // Buckets are snapped to the start of the UTC day.
    const p = page(q, { start: midnight(start), end, limit: 7, maxLimit: 31 });
    if (p.error) return send(res, 400, errors.anthropic[3].body, rid);
    const workspaces = list(q, 'workspace_ids');
    const source = usage ? anthropicUsage : anthropicCosts;
    const data = p.buckets.map(([s, e]) => {
      let results = structuredClone(source.get(s) ?? []);
      if (workspaces.length) results = results.filter((r) => workspaces.includes(r.workspace_id));
      return { starting_at: rfc3339(s), ending_at: rfc3339(e), results };
    });
    send(res, 200, { data, has_more: p.has_more, next_page: p.next_page }, rid);
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://fake');
    requests.push({
      method: req.method,
      path: url.pathname,
      query: url.search,
      authorization: req.headers.authorization ? `${req.headers.authorization.slice(0, 16)}…` : null,
      apiKey: req.headers['x-api-key'] ? `${String(req.headers['x-api-key']).slice(0, 13)}…` : null,
      anthropicVersion: req.headers['anthropic-version'] ?? null,
    });
    if (req.method !== 'GET') return send(res, 405, { error: { message: 'GET only', type: 'invalid_request_error', param: null, code: null } });
    if (url.pathname.startsWith('/v1/organization/')) return openai(req, res, url);
    if (url.pathname.startsWith('/v1/organizations/')) return anthropic(req, res, url);
    send(res, 404, { error: { message: 'not a provider billing path', type: 'invalid_request_error', param: null, code: null } });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    requests,
    /** The served days (YYYY-MM-DD), oldest first. */
    days: served.map(isoDay),
    stop: () => new Promise((r) => server.close(() => r())),
  };
}
