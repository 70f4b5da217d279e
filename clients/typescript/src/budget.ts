// Budget checks before an LLM call: `GET /v1/budgets/check` answers allow, warn or deny for the
// budgets that apply to a call (its model, feature, end-user, and the key's source).
//
// LLMtrack is not a proxy: the application asks, then decides. `tracker.checkBudget()` resolves
// to a `BudgetCheck`; `tracker.guard()` rejects with `BudgetExceededError` when the answer is
// deny. Answers are cached for a few seconds per (model, feature, user), so a hot loop does not
// ask per call. When LLMtrack cannot answer (network error, timeout, 5xx, 429) the check fails
// open by default: it answers allow with `error` set, and warns once until LLMtrack answers
// again. A refusal that asking again cannot fix (a wrong key, a bad parameter) throws
// `BudgetCheckError`.

/** What a budget check is about; each is optional. */
export interface BudgetQuery {
  model?: string;
  feature?: string;
  /** The end-user (the `user_id` of your events). */
  userId?: string;
}

export type BudgetDecision = "allow" | "warn" | "deny";

/** One budget that applies to the call, as spent in its current period. */
export interface BudgetStatus {
  id: string;
  name: string;
  /** What a scoped budget counts; `null` for one over the whole workspace. */
  scope: { dimension: "model" | "feature" | "source" | "user"; value: string } | null;
  amountUsd: number;
  spentUsd: number;
  remainingUsd: number;
  usedPct: number;
  /** This budget's own answer. */
  decision: BudgetDecision;
  /** RFC 3339: when the current period ends (the budget is fresh again). */
  periodEnd: string | null;
}

/** The answer to a budget check. */
export interface BudgetCheck {
  /** The strictest answer among the budgets that apply ("allow" when none does). */
  decision: BudgetDecision;
  /** `decision !== "deny"`. */
  allowed: boolean;
  /** The least left among the budgets that apply; `null` when none applies. */
  remainingUsd: number | null;
  budgets: BudgetStatus[];
  /** Set when LLMtrack could not answer and the check failed open (the decision is then allow). */
  error?: string;
}

/** Thrown by `tracker.guard()` when a budget that applies is used up; `check` is the answer. */
export class BudgetExceededError extends Error {
  readonly check: BudgetCheck;

  constructor(check: BudgetCheck) {
    const b = check.budgets.find((x) => x.decision === "deny") ?? check.budgets[0];
    super(
      b
        ? `budget "${b.name}" is used up: $${b.spentUsd.toFixed(2)} of $${b.amountUsd.toFixed(2)} spent${b.periodEnd ? ` (until ${b.periodEnd})` : ""}`
        : "a budget is used up",
    );
    this.name = "BudgetExceededError";
    this.check = check;
  }
}

/**
 * The check could not be made. Thrown for refusals that asking again cannot fix (a wrong or
 * missing key, a key of another scope, a bad parameter: `status` 4xx, with the server's `code`
 * and message) and, with `failOpen: false`, when LLMtrack cannot answer (`status` the 5xx or
 * 429, or `undefined` for a network error or timeout).
 */
export class BudgetCheckError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly code?: string,
  ) {
    super(message);
    this.name = "BudgetCheckError";
  }
}

/** LLMtrack did not answer: what failing open covers. */
class Unavailable extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** Distinct (model, feature, user) answers kept in the cache; the oldest go first. */
const MAX_CACHED = 1024;

export interface BudgetCheckerOptions {
  baseUrl: () => string;
  apiKey: () => string;
  fetch: typeof fetch;
  warn: (message: string) => void;
  ttlMs: number;
  timeoutMs: number;
  failOpen: boolean;
  now?: () => number;
}

/** The check and its cache; a `Tracker` holds one. */
export class BudgetChecker {
  private readonly cache = new Map<string, { at: number; answer: Promise<BudgetCheck> }>();
  private down = false;
  private readonly now: () => number;

  constructor(private readonly o: BudgetCheckerOptions) {
    this.now = o.now ?? (() => Date.now());
  }

  check(query: BudgetQuery): Promise<BudgetCheck> {
    const key = JSON.stringify([query.model ?? null, query.feature ?? null, query.userId ?? null]);
    if (this.o.ttlMs > 0) {
      const hit = this.cache.get(key);
      if (hit && this.now() - hit.at < this.o.ttlMs) return hit.answer;
      this.cache.delete(key);
    }
    const answer = this.ask(query);
    if (this.o.ttlMs > 0) {
      // The promise itself is cached: checks made while one is on its way share it.
      this.cache.set(key, { at: this.now(), answer });
      if (this.cache.size > MAX_CACHED) this.cache.delete(this.cache.keys().next().value as string);
      answer.catch(() => {
        if (this.cache.get(key)?.answer === answer) this.cache.delete(key);
      });
    }
    return answer;
  }

  clear(): void {
    this.cache.clear();
  }

  private async ask(query: BudgetQuery): Promise<BudgetCheck> {
    try {
      const check = await this.request(query);
      this.down = false;
      return check;
    } catch (e) {
      if (!(e instanceof Unavailable)) throw e;
      if (!this.o.failOpen) throw new BudgetCheckError(e.message, e.status, e.code);
      if (!this.down) {
        this.down = true;
        this.o.warn(`llmtrack: budget check failed (${e.message}); allowing calls until LLMtrack answers`);
      }
      // Kept for the TTL as well: a down LLMtrack costs one timeout per TTL, not per call.
      return { decision: "allow", allowed: true, remainingUsd: null, budgets: [], error: e.message };
    }
  }

  private async request(query: BudgetQuery): Promise<BudgetCheck> {
    const apiKey = this.o.apiKey();
    if (!apiKey) throw new Unavailable("no API key (set LLMTRACK_API_KEY)");
    const params = new URLSearchParams();
    if (query.model !== undefined) params.set("model", query.model);
    if (query.feature !== undefined) params.set("feature", query.feature);
    if (query.userId !== undefined) params.set("user", query.userId);
    const qs = params.toString();
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.o.timeoutMs);
    let status: number;
    let text: string;
    try {
      const r = await this.o.fetch(`${this.o.baseUrl()}/v1/budgets/check${qs ? `?${qs}` : ""}`, {
        headers: { authorization: `Bearer ${apiKey}`, accept: "application/json" },
        signal: controller.signal,
      });
      status = r.status;
      text = await r.text();
    } catch (e) {
      if (timedOut) throw new Unavailable(`no answer within ${this.o.timeoutMs} ms`);
      throw new Unavailable(describe(e));
    } finally {
      clearTimeout(timer);
    }
    let body: Record<string, unknown> = {};
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed === "object" && parsed !== null) body = parsed as Record<string, unknown>;
    } catch {
      // not JSON: handled below
    }
    const err = (typeof body.error === "object" && body.error !== null ? body.error : {}) as { code?: string; message?: string };
    const message = err.message ?? text.slice(0, 200);
    if (status === 429 || status >= 500) {
      throw new Unavailable(`${status}${err.code ? ` ${err.code}` : ""} ${message}`.trim(), status, err.code);
    }
    if (status !== 200) {
      throw new BudgetCheckError(`budget check refused (${status}${err.code ? ` ${err.code}` : ""}): ${message}`, status, err.code);
    }
    try {
      return parse(body);
    } catch (e) {
      // Not LLMtrack's answer (a proxy's page?): as if it had not answered.
      throw new Unavailable(`unexpected answer (${describe(e)})`, status);
    }
  }
}

function describe(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as { cause?: unknown }).cause;
    return cause instanceof Error ? `${e.message}: ${cause.message}` : e.message;
  }
  return String(e);
}

function num(v: unknown, name: string): number {
  if (typeof v !== "number" || !Number.isFinite(v)) throw new Error(`${name} is not a number`);
  return v;
}

function decision(v: unknown): BudgetDecision {
  if (v !== "allow" && v !== "warn" && v !== "deny") throw new Error(`decision ${JSON.stringify(v)}`);
  return v;
}

function parse(body: Record<string, unknown>): BudgetCheck {
  const d = decision(body.decision);
  const budgets = (Array.isArray(body.budgets) ? body.budgets : []).map((raw): BudgetStatus => {
    const b = raw as Record<string, unknown>;
    const scope = b.scope as BudgetStatus["scope"] | undefined;
    return {
      id: String(b.id),
      name: String(b.name ?? ""),
      scope: scope ? { dimension: scope.dimension, value: String(scope.value) } : null,
      amountUsd: num(b.amount_usd, "amount_usd"),
      spentUsd: num(b.spent_usd, "spent_usd"),
      remainingUsd: num(b.remaining_usd, "remaining_usd"),
      usedPct: num(b.used_pct, "used_pct"),
      decision: decision(b.decision),
      periodEnd: typeof b.period_end === "string" ? b.period_end : null,
    };
  });
  const remaining = body.remaining_usd;
  return {
    decision: d,
    allowed: d !== "deny",
    remainingUsd: remaining === null || remaining === undefined ? null : num(remaining, "remaining_usd"),
    budgets,
  };
}
