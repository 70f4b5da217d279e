// The batching sender: `record()` queues an event and returns at once; batches go to
// `POST /v1/events` on a timer or when full, and are resent with the same ids after a failure,
// so a retry is never counted twice. Only `fetch` and timers: it runs on Node, Deno, Bun,
// Cloudflare Workers and Vercel's edge runtime. Nothing here throws into the caller's code.

import { BudgetChecker, BudgetExceededError, type BudgetCheck, type BudgetQuery } from "./budget.js";
import type { UsageEvent } from "./events.js";

export interface TrackerOptions {
  /** An ingest key. Default: the `LLMTRACK_API_KEY` environment variable (where there is one). */
  apiKey?: string;
  /** The LLMtrack API. Default: `LLMTRACK_BASE_URL`, else a local `llmtrack serve`. */
  baseUrl?: string;
  /** Events per request (at most 1000, the API's limit). */
  batchSize?: number;
  /** How long an event may wait before its batch is sent. */
  flushIntervalMs?: number;
  /** Events kept while the API cannot be reached; beyond this new ones are dropped and counted. */
  maxQueue?: number;
  /** The longest wait between two attempts after failures. */
  maxBackoffMs?: number;
  /** Another `fetch` (tests, proxies, runtimes without a global one). */
  fetch?: typeof fetch;
  /** Where problems are reported (default: `console.warn`). */
  onWarning?: (message: string) => void;
  /** How long a budget check's answer is reused for the same model, feature and user (0: ask every time). */
  budgetCacheTtlMs?: number;
  /** How long a budget check waits for LLMtrack. */
  budgetTimeoutMs?: number;
  /**
   * When LLMtrack cannot answer a budget check (network error, timeout, 5xx, 429): `true` answers
   * allow with `error` set; `false` throws `BudgetCheckError`.
   */
  failOpen?: boolean;
}

export const DEFAULT_BASE_URL = "http://127.0.0.1:8080";
const MAX_BATCH = 1000;

type Settled = { retryAfterMs: number } | null;

function env(name: string): string | undefined {
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return p?.env?.[name];
}

/**
 * A random event id of letters only (26 letters, 122 bits): a hex id now and then holds a run of
 * digits that passes the card-number check LLMtrack applies to ids, and is refused.
 */
export function randomId(): string {
  const bytes = new Uint8Array(26);
  const c = (globalThis as { crypto?: { getRandomValues?: (a: Uint8Array) => Uint8Array } }).crypto;
  if (c?.getRandomValues) c.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  // 256 is not a multiple of 26: the first letters are a little likelier, which costs under a bit.
  return "ts_" + Array.from(bytes, (b) => String.fromCharCode(97 + (b % 26))).join("");
}

export class Tracker {
  readonly apiKey: string;
  readonly baseUrl: string;
  readonly batchSize: number;
  readonly flushIntervalMs: number;
  readonly maxQueue: number;
  readonly maxBackoffMs: number;
  /** Events dropped because the queue was full. */
  dropped = 0;
  /** Events the API refused (a bad field, a used-up quota, a wrong key): not resent. */
  rejected = 0;
  /** Events stored (or recognised as already stored). */
  delivered = 0;

  private queue: UsageEvent[] = [];
  private inFlight = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private sending: Promise<void> | undefined;
  private failures = 0;
  private retryAt = 0;
  private closed = false;
  private readonly fetcher: typeof fetch;
  private readonly warn: (message: string) => void;
  private readonly budgets: BudgetChecker;

  constructor(options: TrackerOptions = {}) {
    this.apiKey = options.apiKey ?? env("LLMTRACK_API_KEY") ?? "";
    this.baseUrl = (options.baseUrl ?? env("LLMTRACK_BASE_URL") ?? DEFAULT_BASE_URL).replace(/\/+$/, "");
    this.batchSize = Math.max(1, Math.min(options.batchSize ?? 500, MAX_BATCH));
    this.flushIntervalMs = options.flushIntervalMs ?? 1000;
    this.maxQueue = options.maxQueue ?? 10_000;
    this.maxBackoffMs = options.maxBackoffMs ?? 30_000;
    this.fetcher = options.fetch ?? ((...args) => fetch(...args));
    this.warn = options.onWarning ?? ((m) => console.warn(m));
    this.budgets = new BudgetChecker({
      baseUrl: () => this.baseUrl,
      apiKey: () => this.apiKey,
      fetch: this.fetcher,
      warn: this.warn,
      ttlMs: options.budgetCacheTtlMs ?? 5_000,
      timeoutMs: options.budgetTimeoutMs ?? 1_000,
      failOpen: options.failOpen ?? true,
    });
    if (!this.apiKey) this.warn("llmtrack: no API key (set LLMTRACK_API_KEY); events will not be sent");
    // Node: what is queued is sent before the process exits on its own.
    const p = (globalThis as { process?: { once?: (e: string, f: () => void) => void } }).process;
    p?.once?.("beforeExit", () => void this.flush(5_000));
  }

  /**
   * Asks LLMtrack whether a call may go ahead (`GET /v1/budgets/check`): the budgets that apply
   * to this model, feature and end-user (and to this key's source), and the strictest answer
   * among them. Answers are reused for `budgetCacheTtlMs` per (model, feature, user). When
   * LLMtrack cannot answer, resolves to allow with `error` set (or, with `failOpen: false`,
   * rejects with `BudgetCheckError`). A refusal asking again cannot fix (401 wrong key, 403 key
   * of another scope, 400) always rejects with `BudgetCheckError`.
   */
  checkBudget(query: BudgetQuery = {}): Promise<BudgetCheck> {
    return this.budgets.check(query);
  }

  /**
   * `checkBudget`, rejecting with `BudgetExceededError` (which carries the check) when the
   * answer is deny; resolves to the check otherwise (its `decision` may be "warn").
   */
  async guard(query: BudgetQuery = {}): Promise<BudgetCheck> {
    const check = await this.budgets.check(query);
    if (!check.allowed) throw new BudgetExceededError(check);
    return check;
  }

  /** Forgets cached budget answers: the next check asks LLMtrack. */
  clearBudgetCache(): void {
    this.budgets.clear();
  }

  /** Events queued or being sent. */
  get pending(): number {
    return this.queue.length + this.inFlight;
  }

  /**
   * Queues one event (the `POST /v1/events` contract) and returns its id, or undefined when it
   * could not be queued. An id and a timestamp are added when missing, so the event keeps its
   * identity across retries.
   */
  record(event: UsageEvent): string | undefined {
    try {
      if (this.closed || typeof event !== "object" || event === null) return undefined;
      if (this.queue.length + this.inFlight >= this.maxQueue) {
        this.dropped += 1;
        if (this.dropped === 1 || this.dropped % 1000 === 0) {
          this.warn(`llmtrack: queue full (${this.maxQueue} events); ${this.dropped} dropped`);
        }
        return undefined;
      }
      const e: UsageEvent = { ...event };
      for (const key of Object.keys(e) as (keyof UsageEvent)[]) if (e[key] === undefined) delete e[key];
      e.id ??= randomId();
      e.timestamp ??= Date.now();
      this.queue.push(e);
      this.schedule(this.queue.length >= this.batchSize ? 0 : this.flushIntervalMs);
      return e.id;
    } catch {
      return undefined;
    }
  }

  /**
   * Sends everything recorded so far; true once it is delivered (or refused), false if
   * `timeoutMs` passed first. On edge runtimes, hand it to `waitUntil`.
   */
  async flush(timeoutMs = 30_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.pending > 0) {
      if (Date.now() >= deadline) return false;
      const wait = Math.max(0, this.retryAt - Date.now());
      if (wait > 0) await sleep(Math.min(wait, deadline - Date.now()));
      if (Date.now() >= deadline) return false;
      await this.sendOnce();
    }
    return true;
  }

  /** Sends what is left (for up to `timeoutMs`) and stops taking events. */
  async close(timeoutMs = 5_000): Promise<void> {
    await this.flush(timeoutMs);
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(ms: number): void {
    if (this.timer || this.closed) return;
    const delay = Math.max(ms, this.retryAt - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.sendOnce().then(() => {
        if (this.queue.length > 0) this.schedule(this.queue.length >= this.batchSize ? 0 : this.flushIntervalMs);
      });
    }, delay);
    // A pending send must not keep a Node process alive: `beforeExit` flushes instead.
    (this.timer as { unref?: () => void }).unref?.();
  }

  /** One batch, sent by one caller at a time (the timer and `flush` share it). */
  private sendOnce(): Promise<void> {
    if (!this.sending) {
      this.sending = this.sendBatch().finally(() => {
        this.sending = undefined;
      });
    }
    return this.sending;
  }

  private async sendBatch(): Promise<void> {
    if (this.queue.length === 0 || Date.now() < this.retryAt) return;
    const batch = this.queue.splice(0, this.batchSize);
    this.inFlight = batch.length;
    let settled: Settled;
    try {
      settled = await this.send(batch);
    } catch {
      settled = { retryAfterMs: 0 };
    }
    this.inFlight = 0;
    if (settled === null) {
      this.failures = 0;
      this.retryAt = 0;
      return;
    }
    // Back to the front, in order: the same ids are sent again.
    this.queue.unshift(...batch);
    this.failures += 1;
    const backoff = Math.min(this.maxBackoffMs, 500 * 2 ** Math.min(this.failures, 8)) * (0.5 + Math.random() / 2);
    this.retryAt = Date.now() + Math.max(backoff, settled.retryAfterMs);
  }

  private async send(batch: UsageEvent[]): Promise<Settled> {
    if (!this.apiKey) {
      this.rejected += batch.length;
      return null;
    }
    let r: Response;
    try {
      r = await this.fetcher(`${this.baseUrl}/v1/events`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${this.apiKey}` },
        body: JSON.stringify({ events: batch }),
      });
    } catch {
      return { retryAfterMs: 0 };
    }
    const body = (await r.json().catch(() => ({}))) as {
      results?: { index: number; status: string; error?: { field?: string; message?: string } }[];
      error?: { code?: string; message?: string };
    };
    if (r.status === 200 || r.status === 207) {
      const refused = (body.results ?? []).filter((x) => x.status === "rejected");
      this.delivered += batch.length - refused.length;
      this.rejected += refused.length;
      for (const x of refused.slice(0, 5)) {
        this.warn(`llmtrack: event ${x.index} rejected: ${x.error?.field ?? ""} ${x.error?.message ?? ""}`);
      }
      return null;
    }
    if (r.status === 413 && batch.length > 1) {
      const half = Math.floor(batch.length / 2);
      const first = await this.send(batch.slice(0, half));
      if (first) return first;
      const rest = await this.send(batch.slice(half));
      if (rest) batch.splice(0, half); // only the unsent half goes back to the queue
      return rest;
    }
    if ((r.status === 429 && body.error?.code !== "quota_exceeded") || r.status >= 500) {
      const seconds = Number(r.headers.get("retry-after") ?? "0");
      return { retryAfterMs: Number.isFinite(seconds) ? seconds * 1000 : 0 };
    }
    // 400 (nothing valid), 401/403 (the key), a used-up quota: sending again cannot help.
    this.rejected += batch.length;
    this.warn(`llmtrack: ${batch.length} events refused (${r.status} ${body.error?.code ?? ""}): ${body.error?.message ?? ""}`);
    return null;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
