// Reconciliation with the provider's bill: the pure derivations and wording the page uses.
// Unit-tested in test/reconcile.test.ts.
import { count, usd } from './format';
import type { BillingProvider, Connection, Figures, PriceDifference, PriceRule, Reconciliation, TokenKind, UsdRates } from './types';

// ---------- days (UTC) ----------

export const RANGES = [7, 30, 90] as const;
export type RangeDays = (typeof RANGES)[number];
export const DEFAULT_RANGE: RangeDays = 30;

/** An instant's UTC day, YYYY-MM-DD. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** A UTC day moved by n days. */
export function addDays(day: string, n: number): string {
  return utcDay(Date.parse(`${day}T00:00:00Z`) + n * 86_400_000);
}

/**
 * The last `days` whole UTC days, `to` exclusive: today is left out, since the providers' figures
 * for a day are complete only once it has ended.
 */
export function rangeFor(days: number, now = Date.now()): { from: string; to: string } {
  const to = utcDay(now);
  return { from: addDays(to, -days), to };
}

/** The range in the page's query string (?days=7|30|90), 30 when absent or unknown. */
export function parseRange(search: string): RangeDays {
  const d = Number(new URLSearchParams(search).get('days'));
  return (RANGES as readonly number[]).includes(d) ? (d as RangeDays) : DEFAULT_RANGE;
}

/** The last day imported by any connection (null when none has imported a day). */
export function importedThrough(conns: Pick<Connection, 'imported_through'>[]): string | null {
  let best: string | null = null;
  for (const c of conns) if (c.imported_through && (!best || c.imported_through > best)) best = c.imported_through;
  return best;
}

// ---------- wording ----------

export const PROVIDERS: Record<BillingProvider, string> = { openai: 'OpenAI', anthropic: 'Anthropic' };

export function providerName(p: string): string {
  return PROVIDERS[p as BillingProvider] ?? p;
}

/** A model as the provider names it; "" holds costs not tied to a model. */
export function modelName(model: string): string {
  return model === '' ? 'Not tied to a model' : model;
}

export const KIND_LABELS: Record<TokenKind, string> = {
  input: 'Input',
  cached_input: 'Cached input',
  cache_write: 'Cache write',
  output: 'Output',
};

export const CAUSE_LABELS: Record<string, string> = {
  unpriced_model: 'Unpriced model',
  missing_events: 'Missing events',
  price_difference: 'Price difference',
  untracked_model: 'Not tracked',
  not_tied_to_model: 'Not tied to a model',
};

export function causeLabel(kind: string): string {
  return CAUSE_LABELS[kind] ?? kind.replace(/_/g, ' ');
}

/** A percentage given in percent (92.5 -> "92.5%"); small non-zero values keep a digit. */
export function percent(p: number | null | undefined, digits = 1): string {
  if (p === null || p === undefined || Number.isNaN(p)) return '—';
  if (p !== 0 && Math.abs(p) < 0.1) return p > 0 ? '<0.1%' : '>-0.1%';
  return `${p.toFixed(digits).replace(/\.0+$/, '')}%`;
}

/** The same with its sign: "+4.5%", "−2%", "0%". */
export function signedPercent(p: number | null | undefined): string {
  if (p === null || p === undefined || Number.isNaN(p)) return '—';
  const s = percent(Math.abs(p));
  if (s === '0%') return '0%';
  return `${p > 0 ? '+' : '−'}${s}`;
}

export type Tone = 'good' | 'warn' | 'bad' | 'none';

/** How complete LLMtrack's view of the bill is: 95% and more is fine, under 80% is bad. */
export function coverageTone(p: number | null | undefined): Tone {
  if (p === null || p === undefined || Number.isNaN(p)) return 'none';
  if (p >= 95) return 'good';
  if (p >= 80) return 'warn';
  return 'bad';
}

/** Coverage in a word: complete, partial, low (or more than billed). */
export function coverageWord(p: number | null | undefined): string {
  const t = coverageTone(p);
  if (t === 'none') return 'nothing billed';
  // More than 100% happens: events LLMtrack saw that the bill does not hold (yet).
  return p! > 105 ? 'more than billed' : t === 'good' ? 'complete' : t === 'warn' ? 'partial' : 'low';
}

/** Coverage in words as well as a number, so colour is never the only signal. */
export function coverageText(p: number | null | undefined): string {
  if (coverageTone(p) === 'none') return '—';
  return `${percent(p)} (${coverageWord(p)})`;
}

/**
 * Drift (LLMtrack's cost minus the billed cost), with an arrow and words: "▲ +$1.20 (+4.5%) above
 * the bill". Under half a cent, or under 0.5% of the bill, is "matches the bill".
 */
export function driftText(driftUsd: number, driftPct: number | null): { text: string; short: string; dir: 'above' | 'below' | 'even'; tone: Tone } {
  if (Math.abs(driftUsd) < 0.005 || (driftPct !== null && Math.abs(driftPct) < 0.5 && Math.abs(driftUsd) < 1)) {
    const text = `matches the bill${driftUsd !== 0 ? ` (${signedUsd(driftUsd)})` : ''}`;
    return { text, short: `✓ ${text}`, dir: 'even', tone: 'good' };
  }
  const dir = driftUsd > 0 ? 'above' : 'below';
  const pctPart = driftPct === null ? '' : ` (${signedPercent(driftPct)})`;
  const abs = driftPct === null ? Infinity : Math.abs(driftPct);
  // The short form (tables, under a "Drift" heading) keeps the arrow and the sign.
  const short = `${driftUsd > 0 ? '▲' : '▼'} ${signedUsd(driftUsd)}${pctPart}`;
  return { text: `${short} ${dir} the bill`, short, dir, tone: abs >= 10 ? 'bad' : abs >= 2 ? 'warn' : 'good' };
}

/** A cost with its sign in front: "+$1.20", "−$0.0042". */
export function signedUsd(v: number): string {
  if (v === 0) return usd(0);
  return `${v > 0 ? '+' : '−'}${usd(Math.abs(v))}`;
}

/** A connection's last import in words. */
export function importStatus(c: Pick<Connection, 'last_import' | 'imported_through'>): { text: string; tone: Tone } {
  const l = c.last_import;
  if (!l) return { text: 'not imported yet', tone: 'none' };
  if (!l.ok) return { text: `✕ failed${l.message ? `: ${l.message}` : ''}`, tone: 'bad' };
  const days = `${count(l.days)} day${l.days === 1 ? '' : 's'} imported`;
  return { text: `✓ ${days}${c.imported_through ? `, through ${c.imported_through}` : ''}`, tone: 'good' };
}

/** True when the range holds anything: a billed or tracked cost or token. */
export function hasFigures(r: Pick<Reconciliation, 'total'>): boolean {
  const t = r.total;
  return t.billed.cost_usd !== 0 || t.tracked.cost_usd !== 0 || t.billed.total_tokens > 0 || t.tracked.total_tokens > 0;
}

/**
 * The chart's two daily series. A day after the last imported one has no billed figure yet
 * (null, a gap in the line), not a cost of zero.
 */
export function dailySeries(r: Pick<Reconciliation, 'days' | 'connections'>): { buckets: string[]; billed: (number | null)[]; tracked: number[] } {
  const through = importedThrough(r.connections);
  return {
    buckets: r.days.map((d) => d.day),
    billed: r.days.map((d) => (through !== null && d.day <= through ? d.billed.cost_usd : null)),
    tracked: r.days.map((d) => d.tracked.cost_usd),
  };
}

/** Short labels of a figure's causes, de-duplicated, in order. */
export function causeKinds(f: Pick<Figures, 'causes'>): string[] {
  return [...new Set(f.causes.map((c) => causeLabel(c.kind)))];
}

// ---------- the connection form ----------

export const KEY_HELP: Record<BillingProvider, { placeholder: string; prefix: string; scopeLabel: string; scopePlaceholder: string; scopeHint: string }> = {
  openai: {
    placeholder: 'sk-admin-…',
    prefix: 'sk-admin-',
    scopeLabel: 'Only these projects (optional)',
    scopePlaceholder: 'proj_…, proj_…',
    scopeHint: 'OpenAI project ids, separated by commas or spaces. Empty: the whole organization.',
  },
  anthropic: {
    placeholder: 'sk-ant-admin01-…',
    prefix: 'sk-ant-admin',
    scopeLabel: 'Only these workspaces (optional)',
    scopePlaceholder: 'wrkspc_…, wrkspc_…',
    scopeHint: 'Anthropic workspace ids, separated by commas or spaces. Empty: the whole organisation, default workspace included.',
  },
};

/** Why a typed key cannot be an admin key of that provider (said before sending it), or null. */
export function keyProblem(provider: BillingProvider, key: string): string | null {
  const k = key.trim();
  if (k === '') return 'Paste the admin key.';
  const want = KEY_HELP[provider].prefix;
  if (k.startsWith(want)) return null;
  if (provider === 'openai' && /^sk-(proj-|svcacct-|[A-Za-z0-9]{20})/.test(k)) return `This looks like a project or user key. The usage and costs of the organization need an Admin key (it starts with ${want}).`;
  if (provider === 'anthropic' && k.startsWith('sk-ant-api')) return `This looks like an API key. The usage and cost reports need an Admin key (it starts with ${want}).`;
  if (provider === 'openai' && k.startsWith('sk-ant-')) return 'This is an Anthropic key: choose Anthropic as the provider.';
  if (provider === 'anthropic' && k.startsWith('sk-admin-')) return 'This is an OpenAI key: choose OpenAI as the provider.';
  return `An ${providerName(provider)} Admin key starts with ${want}.`;
}

/** The optional scope, typed as ids separated by commas or spaces. */
export function parseScope(text: string): string[] {
  return [...new Set(text.split(/[\s,;]+/).filter(Boolean))];
}

// ---------- price feedback ----------

const RATE_KINDS: TokenKind[] = ['input', 'cached_input', 'cache_write', 'output'];

/** A price difference worth offering as a custom price: known to the table and not the same. */
export function offersPrice(p: PriceDifference): boolean {
  return p.difference_pct !== null && p.table_usd_per_mtok !== null && Math.abs(p.difference_pct) >= 0.05;
}

export interface PricePlan {
  /** POST a new rule, or PUT over an existing one for the same provider and model. */
  method: 'post' | 'put';
  ruleId?: string;
  /** The replaced rule (a discount it turns into rates, or rates it changes). */
  replaces?: PriceRule;
  provider: string;
  model: string;
  note: string;
  /** Each rate of the rule, where it comes from, whether it is the change; null: not known. */
  lines: { kind: TokenKind; rate: number | null; source: string; changed: boolean }[];
  /** Rates of the replaced rule the bill does not itemise (reasoning, audio), kept as they are. */
  kept: Partial<UsdRates>;
  batch_percent?: number;
}

const sameName = (a: string, b: string) => a.trim().toLowerCase() === b.trim().toLowerCase();

/**
 * The workspace price that makes LLMtrack charge what the provider billed for one token kind of
 * one model, the other kinds kept as LLMtrack charges them now. Their rates come from, in order:
 * the workspace's own undated rule for that model (then changed rather than doubled; a discount
 * is turned into rates), the table's rates in the reconciliation's price list, the rates LLMtrack
 * applied to its latest event of the model (`applied`). A rule needs input and output rates: one
 * still unknown is null, for the admin to type.
 */
export function pricePlan(
  p: PriceDifference,
  all: PriceDifference[],
  rules: PriceRule[],
  range: { from: string; to: string },
  applied?: { rates: Partial<Record<TokenKind, number | null>>; label: string },
): PricePlan {
  const existing = rules.find((r) => sameName(r.provider, p.provider) && sameName(r.model, p.model) && !r.effective_from && !r.effective_to);
  const discount = existing?.kind === 'discount' ? existing.percent : 0;
  const less = (v: number) => round6(v * (1 - discount / 100));
  const lessText = discount ? ` less your ${discount}% discount` : '';
  const table = (k: TokenKind) => all.find((x) => x.provider === p.provider && x.model === p.model && x.kind === k)?.table_usd_per_mtok ?? null;
  const lines: PricePlan['lines'] = RATE_KINDS.map((k) => {
    if (k === p.kind) return { kind: k, rate: p.billed_usd_per_mtok, source: `billed by ${providerName(p.provider)}`, changed: true };
    if (existing?.kind === 'rates' && existing.rates[k] !== undefined) return { kind: k, rate: existing.rates[k]!, source: 'your current price', changed: false };
    const t = table(k);
    if (t !== null) return { kind: k, rate: less(t), source: `the table's rate${lessText}`, changed: false };
    const a = applied?.rates[k];
    // An applied rate already has any discount in it.
    if (a !== null && a !== undefined) return { kind: k, rate: a, source: applied!.label, changed: false };
    return { kind: k, rate: null, source: k === 'input' || k === 'output' ? 'not known: type the rate you pay' : 'not set: charged at the input rate', changed: false };
  });
  const kept: Partial<UsdRates> = {};
  if (existing?.kind === 'rates') {
    for (const [k, v] of Object.entries(existing.rates)) if (!(RATE_KINDS as string[]).includes(k)) (kept as Record<string, number>)[k] = v as number;
  }
  return {
    method: existing ? 'put' : 'post',
    ...(existing ? { ruleId: existing.id, replaces: existing } : {}),
    provider: existing?.provider ?? p.provider,
    model: existing?.model ?? p.model,
    note: `${KIND_LABELS[p.kind]} rate from the ${providerName(p.provider)} bill, ${range.from} to ${range.to} (exclusive)`,
    lines,
    kept,
    ...(existing?.kind === 'rates' && existing.batch_percent !== undefined ? { batch_percent: existing.batch_percent } : {}),
  };
}

/** Which rates a plan still needs (input and output are required by a rule). */
export function missingRates(plan: Pick<PricePlan, 'lines'>, typed: Partial<Record<TokenKind, string>> = {}): TokenKind[] {
  return plan.lines.filter((l) => (l.kind === 'input' || l.kind === 'output') && l.rate === null && !(typed[l.kind] ?? '').trim()).map((l) => l.kind);
}

/**
 * The request body of a plan (POST/PUT /v1/workspaces/{id}/prices), with the rates the admin
 * typed where the plan had none (or changed); a rate typed that is not a number is sent as typed
 * so the API names it.
 */
export function planBody(plan: PricePlan, typed: Partial<Record<TokenKind, string>> = {}): { provider: string; model: string; kind: 'rates'; rates: UsdRates; note: string; batch_percent?: number } {
  const rates: Record<string, number | string> = { ...(plan.kept as Record<string, number>) };
  for (const l of plan.lines) {
    const t = (typed[l.kind] ?? '').trim();
    if (t !== '') rates[l.kind] = Number.isNaN(Number(t)) ? t : Number(t);
    else if (l.rate !== null) rates[l.kind] = l.rate;
  }
  return {
    provider: plan.provider,
    model: plan.model,
    kind: 'rates',
    rates: rates as unknown as UsdRates,
    note: plan.note,
    ...(plan.batch_percent !== undefined ? { batch_percent: plan.batch_percent } : {}),
  };
}

/** The rates an event was priced with (its `price.rates`, USD per million tokens), if it has them. */
export function appliedRates(price: unknown): Partial<Record<TokenKind, number>> | null {
  const r = (price as { rates?: Record<string, unknown> } | null | undefined)?.rates;
  if (!r || typeof r !== 'object') return null;
  const out: Partial<Record<TokenKind, number>> = {};
  for (const k of RATE_KINDS) if (typeof r[k] === 'number' && Number.isFinite(r[k])) out[k] = r[k] as number;
  return Object.keys(out).length ? out : null;
}

function round6(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}

/** A rate in USD per million tokens: "$2.50", "$0.075". */
export function rate(v: number | null | undefined): string {
  if (v === null || v === undefined) return '—';
  return `$${v.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 6 })}`;
}
