// Budgets in words and proportions: scope and period text, the progress bar's geometry, the
// forecast against the amount, the colour of a check's answer, the form's body and where an API
// error belongs in it. Pure functions, unit-tested (test/budgets.test.ts).
import { pct, usd } from './format';
import type { Budget, BudgetDimension, BudgetInput, BudgetPeriod, BudgetStatus, Decision } from './types';

export const BUDGET_DIMENSIONS: { id: BudgetDimension; label: string }[] = [
  { id: 'feature', label: 'Feature' },
  { id: 'model', label: 'Model' },
  { id: 'source', label: 'Source' },
  { id: 'user', label: 'End-user' },
];

/** "Whole workspace", or "feature = search". */
export function scopeText(scope: Budget['scope']): string {
  if (!scope) return 'Whole workspace';
  const label = BUDGET_DIMENSIONS.find((d) => d.id === scope.dimension)?.label ?? scope.dimension;
  return `${label.toLowerCase()} = ${scope.value}`;
}

/** "This month (Europe/Paris)", or "Rolling 7 days". */
export function periodText(period: BudgetPeriod, tz: string): string {
  if (period.kind === 'month') return `This month (${tz})`;
  return `Rolling ${period.days} ${period.days === 1 ? 'day' : 'days'}`;
}

/** Where the parts of a budget's bar go, in percent of the bar's width. */
export interface BarGeometry {
  /** Spent. */
  fill: number;
  /** The warning threshold. */
  warn: number;
  /** The amount: 100 unless spend or the forecast go past it, when the bar's scale grows. */
  amount: number;
  /** The month-end forecast, when there is one. */
  forecast: number | null;
}

const clamp = (n: number) => Math.min(100, Math.max(0, n));
const round2 = (n: number) => Math.round(n * 100) / 100;

/**
 * The bar's scale is the amount, or the spend or forecast when larger, so that overspending
 * (or a forecast past the amount) shows as a bar past the amount's mark, never off the end.
 */
export function barGeometry(amount: number, warnPct: number, status: Pick<BudgetStatus, 'spent_usd' | 'forecast_usd'>): BarGeometry {
  const spent = Math.max(0, status.spent_usd);
  const forecast = status.forecast_usd === null || status.forecast_usd === undefined ? null : Math.max(0, status.forecast_usd);
  const scale = Math.max(amount, spent, forecast ?? 0) || 1;
  const at = (v: number) => round2(clamp((v / scale) * 100));
  return {
    fill: at(spent),
    warn: at((amount * warnPct) / 100),
    amount: at(amount),
    forecast: forecast === null ? null : at(forecast),
  };
}

/** "forecast $1,240.00 — over by $240.00"; null without a forecast (rolling budgets). */
export function forecastText(forecast: number | null | undefined, amount: number): { text: string; over: boolean } | null {
  if (forecast === null || forecast === undefined || Number.isNaN(forecast)) return null;
  const diff = forecast - amount;
  // Within a ten-thousandth of the amount (or a millionth of a dollar): the same figure.
  if (Math.abs(diff) <= Math.max(amount * 1e-4, 1e-6)) return { text: `forecast ${usd(forecast)} — right at the budget`, over: false };
  return diff > 0 ? { text: `forecast ${usd(forecast)} — over by ${usd(diff)}`, over: true } : { text: `forecast ${usd(forecast)} — under by ${usd(-diff)}`, over: false };
}

/** The colour of a check's answer (a badge and bar class). */
export function decisionTone(d: Decision): 'good' | 'warn' | 'bad' {
  return d === 'deny' ? 'bad' : d === 'warn' ? 'warn' : 'good';
}

/** What a check answers now, in words (colour is never the only signal). */
export function decisionText(b: Pick<Budget, 'warn_pct' | 'deny'>, s: Pick<BudgetStatus, 'decision' | 'used_pct'>): string {
  if (s.decision === 'deny') return '✕ Spent: checks answer deny';
  if (s.decision === 'warn') return s.used_pct >= 100 ? '⚠ Spent: checks answer warn' : `⚠ Past ${b.warn_pct}%: checks answer warn`;
  return '✓ Within budget';
}

/** Spent as a share of the amount: "61.7%". */
export function usedText(usedPct: number): string {
  return pct(usedPct / 100);
}

/** The text and the label of one budget's bar, for screen readers. */
export function barLabel(b: Budget, s: BudgetStatus): string {
  const f = forecastText(s.forecast_usd, b.amount_usd);
  return `${usd(s.spent_usd)} of ${usd(b.amount_usd)} spent (${usedText(s.used_pct)}), warns at ${b.warn_pct}%${f ? `, ${f.text}` : ''}`;
}

/** What the form holds, as typed. */
export interface BudgetForm {
  name: string;
  amount: string;
  period: 'month' | 'rolling';
  days: string;
  /** '' for the whole workspace. */
  dimension: BudgetDimension | '';
  value: string;
  warn: string;
  deny: boolean;
}

export function formOf(b: Budget | null): BudgetForm {
  return {
    name: b?.name ?? '',
    amount: b ? String(b.amount_usd) : '',
    period: b?.period.kind ?? 'month',
    days: b?.period.kind === 'rolling' ? String(b.period.days) : '7',
    dimension: b?.scope?.dimension ?? '',
    value: b?.scope?.value ?? '',
    warn: b ? String(b.warn_pct) : '80',
    deny: b?.deny ?? true,
  };
}

/** A number as typed, or what was typed when it is none (so that the API names the field). */
function num(s: string): number | string {
  const t = s.trim();
  const n = Number(t);
  return t !== '' && Number.isFinite(n) ? n : t;
}

/** The body of POST and PUT /v1/workspaces/{id}/budgets[/{budget}]. */
export function budgetBody(f: BudgetForm): BudgetInput {
  return {
    name: f.name.trim(),
    amount_usd: num(f.amount) as number,
    period: f.period === 'month' ? { kind: 'month' } : { kind: 'rolling', days: num(f.days) as number },
    scope: f.dimension === '' ? null : { dimension: f.dimension, value: f.value.trim() },
    warn_pct: num(f.warn) as number,
    deny: f.deny,
  };
}

export const BUDGET_FIELDS = ['name', 'amount_usd', 'period', 'warn_pct', 'scope'] as const;
export type BudgetField = (typeof BUDGET_FIELDS)[number];

const SERDE = 'Failed to deserialize the JSON body into the target type: ';

/**
 * Where an API refusal belongs in the form and what to show there. The API names the field
 * first (`amount_usd: \`amount_usd\` must be more than 0`, `period: \`period.days\` must be from
 * 1 to 90`), or in the error's `field`; a body it could not read names the field after serde's
 * preamble. Anything else (the workspace has 20 budgets) is shown under the form.
 */
export function placeError(message: string, field?: string | null): { field: BudgetField | ''; text: string } {
  let text = message.startsWith(SERDE) ? message.slice(SERDE.length) : message;
  const named = /^([a-z_][a-z0-9_.]*):\s*/i.exec(text);
  if (named) text = text.slice(named[0].length);
  const top = (field || named?.[1] || '').split('.')[0];
  return (BUDGET_FIELDS as readonly string[]).includes(top) ? { field: top as BudgetField, text } : { field: '', text: message };
}
