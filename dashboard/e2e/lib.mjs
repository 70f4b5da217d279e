// Helpers shared by the end-to-end run and the performance script: a real `llmtrack serve` on a
// free port with its own data dir, the outbox of emails, an API client with a session, Chromium.
import { spawn, execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const DASHBOARD = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const BIN = resolve(DASHBOARD, process.env.LLMTRACK_BIN ?? '../target/debug/llmtrack');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts `llmtrack serve` on a free port with a fresh data dir; resolves when /healthz is 200. */
export async function startServer({ env = {}, quiet = true, dataDir: given } = {}) {
  if (!existsSync(BIN)) throw new Error(`llmtrack binary not found at ${BIN} (set LLMTRACK_BIN, or build it: cargo build --bin llmtrack)`);
  const port = await freePort();
  const dataDir = given ?? mkdtempSync(join(tmpdir(), 'llmtrack-e2e-'));
  const keep = !!given || !!process.env.KEEP_DATA;
  const url = `http://127.0.0.1:${port}`;
  const proc = spawn(BIN, ['serve', '--addr', `127.0.0.1:${port}`, '--data-dir', dataDir], {
    env: { ...process.env, LLMTRACK_PUBLIC_URL: url, RUST_LOG: process.env.RUST_LOG ?? 'warn', ...env },
    stdio: ['ignore', quiet ? 'ignore' : 'inherit', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (d) => {
    stderr += d;
    if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
    if (!quiet) process.stderr.write(d);
  });
  let exited = null;
  proc.on('exit', (code) => (exited = code));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited !== null) throw new Error(`llmtrack serve exited with ${exited}:\n${stderr}`);
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) break;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error(`llmtrack serve did not become ready:\n${stderr}`);
    await sleep(100);
  }
  return {
    url,
    port,
    dataDir,
    proc,
    logs: () => stderr,
    async stop() {
      if (exited === null) {
        proc.kill('SIGTERM');
        for (let i = 0; i < 50 && exited === null; i++) await sleep(100);
        if (exited === null) proc.kill('SIGKILL');
      }
      if (!keep) rmSync(dataDir, { recursive: true, force: true });
      else console.log(`(data kept in ${dataDir})`);
    },
  };
}

/** Runs an `llmtrack admin …` command on the server's data dir; returns its JSON output. */
export async function admin(server, args) {
  const { stdout } = await promisify(execFile)(BIN, ['admin', ...args, '--json'], {
    env: { ...process.env, LLMTRACK_DATA_DIR: server.dataDir, LLMTRACK_PUBLIC_URL: server.url, RUST_LOG: 'warn' },
  });
  try {
    return JSON.parse(stdout);
  } catch {
    return stdout;
  }
}

export async function jobs(server, args) {
  const { stdout, stderr } = await promisify(execFile)(BIN, ['jobs', 'run', ...args], {
    env: { ...process.env, LLMTRACK_DATA_DIR: server.dataDir, LLMTRACK_PUBLIC_URL: server.url, RUST_LOG: 'warn' },
  });
  return stdout + stderr;
}

// ---------- the outbox ----------

function decodeQP(s) {
  const bytes = [];
  const t = s.replace(/=\r?\n/g, '');
  for (let i = 0; i < t.length; i++) {
    if (t[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(t.slice(i + 1, i + 3))) {
      bytes.push(parseInt(t.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(t[i], 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

function decodeWords(s) {
  return s.replace(/=\?([^?]+)\?([bBqQ])\?([^?]*)\?=/g, (_m, _cs, enc, text) =>
    enc.toUpperCase() === 'B' ? Buffer.from(text, 'base64').toString('utf8') : decodeQP(text.replace(/_/g, ' ')),
  );
}

function parseHeaders(block) {
  const h = {};
  for (const line of block.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) h[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return h;
}

/** The decoded text of a MIME entity (all text parts, joined). */
function mimeText(raw) {
  const sep = raw.search(/\r?\n\r?\n/);
  const head = parseHeaders(sep < 0 ? raw : raw.slice(0, sep));
  let body = sep < 0 ? '' : raw.slice(sep).replace(/^\r?\n\r?\n/, '');
  const ct = head['content-type'] ?? 'text/plain';
  const b = /boundary="?([^";]+)"?/i.exec(ct);
  if (/^multipart\//i.test(ct) && b) {
    const parts = body.split(`--${b[1]}`).slice(1);
    return parts
      .filter((p) => !p.startsWith('--'))
      .map((p) => mimeText(p.replace(/^\r?\n/, '')))
      .join('\n');
  }
  const cte = (head['content-transfer-encoding'] ?? '').toLowerCase();
  if (cte === 'base64') body = Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  else if (cte === 'quoted-printable') body = decodeQP(body);
  return body;
}

export function readMail(path) {
  const raw = readFileSync(path, 'utf8');
  const sep = raw.search(/\r?\n\r?\n/);
  const head = parseHeaders(raw.slice(0, sep));
  return { file: path, to: head.to ?? '', subject: decodeWords(head.subject ?? ''), text: mimeText(raw), raw };
}

export function outbox(server) {
  const dir = join(server.dataDir, 'outbox');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.eml'))
    .sort()
    .map((f) => readMail(join(dir, f)));
}

/** The names of the emails in the outbox now (files can also disappear: a deleted workspace's mail). */
export function seen(server) {
  return new Set(outbox(server).map((m) => m.file));
}

/** Waits for an email to `to` whose subject matches, not among `after` (a set from seen()). */
export async function waitForMail(server, { to, subject, after = new Set(), timeout = 15_000 }) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const mails = outbox(server).filter((m) => !after.has(m.file));
    const m = mails.reverse().find((x) => (!to || x.to.toLowerCase().includes(to.toLowerCase())) && (!subject || subject.test(x.subject)));
    if (m) return m;
    if (Date.now() > deadline) throw new Error(`no email to ${to} matching ${subject} within ${timeout} ms; outbox subjects: ${outbox(server).map((x) => `${x.to}: ${x.subject}`).join(' | ')}`);
    await sleep(200);
  }
}

/** Every link to the server in an email. */
export function linksIn(mail, base) {
  const esc = base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return [...new Set([...mail.text.matchAll(new RegExp(`${esc}/[^\\s"'<>)]+`, 'g'))].map((m) => m[0].replace(/&amp;/g, '&').replace(/[.,]$/, '')))];
}

// ---------- the API with a session ----------

export class Api {
  constructor(base, cookie = '') {
    this.base = base;
    this.cookie = cookie;
  }
  async req(method, path, body, { expect } = {}) {
    const headers = { Accept: 'application/json' };
    if (this.cookie) headers.Cookie = this.cookie;
    if (method !== 'GET') headers.Origin = this.base;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(this.base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const sc = res.headers.get('set-cookie');
    if (sc && /llmtrack_session=([^;]*)/.test(sc)) this.cookie = `llmtrack_session=${/llmtrack_session=([^;]*)/.exec(sc)[1]}`;
    const text = await res.text();
    let json;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = text;
    }
    if (expect !== undefined ? res.status !== expect : !res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 400)}`);
    return json;
  }
  get(p) {
    return this.req('GET', p);
  }
  post(p, b = {}) {
    return this.req('POST', p, b);
  }
  /** Signs in by code from the outbox; keeps the session cookie. */
  async signIn(server, email) {
    const before = seen(server);
    await this.post('/v1/auth/email', { email });
    const mail = await waitForMail(server, { to: email, subject: /sign-in code/, after: before });
    const code = /\b(\d{6})\b/.exec(mail.subject)[1];
    await this.post('/v1/auth/verify', { email, code });
    return this;
  }
}

/** Sends events with an ingest key, in batches of up to 1000. */
export async function ingest(base, key, events) {
  let accepted = 0;
  for (let i = 0; i < events.length; i += 1000) {
    const res = await fetch(`${base}/v1/events`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ events: events.slice(i, i + 1000) }),
    });
    const body = await res.json();
    if (res.status !== 200) throw new Error(`ingest answered ${res.status}: ${JSON.stringify(body).slice(0, 500)}`);
    accepted += body.accepted;
  }
  return accepted;
}

export async function launchChromium() {
  const { chromium } = await import('playwright-core');
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM)`);
  // playwright-core gives every launch a fresh, temporary --user-data-dir of its own (it refuses
  // one in args) and removes it on close.
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return {
    browser,
    async close() {
      await browser.close().catch(() => {});
    },
  };
}

export function ensureDir(p) {
  mkdirSync(p, { recursive: true });
  return p;
}
