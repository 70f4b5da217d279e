import { describe, expect, it } from 'vitest';
import { barGeometry, barLabel, budgetBody, decisionText, decisionTone, forecastText, formOf, periodText, placeError, scopeText, usedText } from '../src/lib/budgets';
import type { Budget, BudgetStatus } from '../src/lib/types';

const budget = (over: Partial<Budget> = {}): Budget => ({
  id: 'bdg_1',
  name: 'LLM spend',
  amount_usd: 1000,
  period: { kind: 'month' },
  scope: null,
  warn_pct: 80,
  deny: true,
  created_at: '2026-12-01T00:00:00.000Z',
  updated_at: '2026-12-01T00:00:00.000Z',
  ...over,
});

const status = (over: Partial<BudgetStatus> = {}): BudgetStatus => ({
  spent_usd: 250,
  remaining_usd: 750,
  used_pct: 25,
  decision: 'allow',
  period_start: '2026-11-30T23:00:00.000Z',
  period_end: '2026-12-31T23:00:00.000Z',
  forecast_usd: null,
  ...over,
});

describe('budgets in words', () => {
  it('names the scope and the period', () => {
    expect(scopeText(null)).toBe('Whole workspace');
    expect(scopeText({ dimension: 'feature', value: 'search' })).toBe('feature = search');
    expect(scopeText({ dimension: 'user', value: 'u-42' })).toBe('end-user = u-42');
    expect(periodText({ kind: 'month' }, 'Europe/Paris')).toBe('This month (Europe/Paris)');
    expect(periodText({ kind: 'rolling', days: 7 }, 'Europe/Paris')).toBe('Rolling 7 days');
    expect(periodText({ kind: 'rolling', days: 1 }, 'UTC')).toBe('Rolling 1 day');
  });

  it('says the forecast against the amount, over or under', () => {
    expect(forecastText(1240, 1000)).toEqual({ text: 'forecast $1,240.00 — over by $240.00', over: true });
    expect(forecastText(800, 1000)).toEqual({ text: 'forecast $800.00 — under by $200.00', over: false });
    expect(forecastText(1000.001, 1000)).toEqual({ text: 'forecast $1,000.00 — right at the budget', over: false });
    // Small amounts: what is over still shows (never "$0.00" for a cost that is not zero).
    expect(forecastText(0.0123, 0.01)!.text).toBe('forecast $0.01 — over by $0.0023');
    expect(forecastText(0.004, 0.005)).toEqual({ text: 'forecast $0.004 — under by $0.001', over: false });
    expect(forecastText(null, 1000)).toBeNull();
    expect(forecastText(undefined, 1000)).toBeNull();
  });

  it('colours and words each answer, colour never alone', () => {
    expect(decisionTone('allow')).toBe('good');
    expect(decisionTone('warn')).toBe('warn');
    expect(decisionTone('deny')).toBe('bad');
    const b = budget();
    expect(decisionText(b, { decision: 'allow', used_pct: 25 })).toBe('✓ Within budget');
    expect(decisionText(b, { decision: 'warn', used_pct: 85 })).toBe('⚠ Past 80%: checks answer warn');
    expect(decisionText(budget({ deny: false }), { decision: 'warn', used_pct: 130 })).toBe('⚠ Spent: checks answer warn');
    expect(decisionText(b, { decision: 'deny', used_pct: 100 })).toBe('✕ Spent: checks answer deny');
  });

  it('gives the share spent and a label for screen readers', () => {
    expect(usedText(61.66)).toBe('61.7%');
    expect(usedText(0)).toBe('0%');
    expect(usedText(140)).toBe('140%');
    expect(barLabel(budget(), status({ forecast_usd: 1240 }))).toBe('$250.00 of $1,000.00 spent (25%), warns at 80%, forecast $1,240.00 — over by $240.00');
    expect(barLabel(budget({ period: { kind: 'rolling', days: 7 } }), status())).toBe('$250.00 of $1,000.00 spent (25%), warns at 80%');
  });
});

describe('the progress bar', () => {
  it('is scaled to the amount while spend and forecast stay within it', () => {
    expect(barGeometry(1000, 80, { spent_usd: 250, forecast_usd: 900 })).toEqual({ fill: 25, warn: 80, amount: 100, forecast: 90 });
    expect(barGeometry(1000, 80, { spent_usd: 0, forecast_usd: null })).toEqual({ fill: 0, warn: 80, amount: 100, forecast: null });
  });
  it('grows past the amount when the forecast or the spend pass it, the amount marked', () => {
    // forecast $1,250 on $1,000: the amount at 80% of the bar, the warning at 64%.
    expect(barGeometry(1000, 80, { spent_usd: 500, forecast_usd: 1250 })).toEqual({ fill: 40, warn: 64, amount: 80, forecast: 100 });
    // overspent: the bar is full, the amount where it was passed.
    expect(barGeometry(10, 50, { spent_usd: 40, forecast_usd: null })).toEqual({ fill: 100, warn: 12.5, amount: 25, forecast: null });
  });
  it('survives odd figures', () => {
    const g = barGeometry(0, 80, { spent_usd: 0, forecast_usd: null });
    expect([g.fill, g.warn, g.amount]).toEqual([0, 0, 0]);
    expect(barGeometry(100, 80, { spent_usd: -1, forecast_usd: -5 })).toEqual({ fill: 0, warn: 80, amount: 100, forecast: 0 });
    expect(barGeometry(3, 33, { spent_usd: 1, forecast_usd: null }).fill).toBe(33.33);
  });
});

describe('the budget form', () => {
  it('starts with a monthly budget for the whole workspace, warning at 80% and refusing at 100%', () => {
    expect(formOf(null)).toEqual({ name: '', amount: '', period: 'month', days: '7', dimension: '', value: '', warn: '80', deny: true });
    expect(formOf(budget({ period: { kind: 'rolling', days: 14 }, scope: { dimension: 'feature', value: 'search' }, warn_pct: 90, deny: false }))).toEqual({
      name: 'LLM spend',
      amount: '1000',
      period: 'rolling',
      days: '14',
      dimension: 'feature',
      value: 'search',
      warn: '90',
      deny: false,
    });
  });
  it('sends numbers as numbers, the scope or null, trimmed text', () => {
    const f = { ...formOf(null), name: '  Search  ', amount: '25.5', dimension: 'feature' as const, value: ' search ' };
    expect(budgetBody(f)).toEqual({ name: 'Search', amount_usd: 25.5, period: { kind: 'month' }, scope: { dimension: 'feature', value: 'search' }, warn_pct: 80, deny: true });
    expect(budgetBody({ ...f, period: 'rolling', days: '7', dimension: '', warn: '50', deny: false })).toEqual({
      name: 'Search',
      amount_usd: 25.5,
      period: { kind: 'rolling', days: 7 },
      scope: null,
      warn_pct: 50,
      deny: false,
    });
    // What is not a number is sent as typed, for the API to name the field.
    expect(budgetBody({ ...f, amount: 'lots' }).amount_usd).toBe('lots');
    // A round trip keeps the budget.
    const b = budget({ scope: { dimension: 'model', value: 'gpt-4o' }, period: { kind: 'rolling', days: 30 } });
    const { id: _i, created_at: _c, updated_at: _u, ...input } = b;
    expect(budgetBody(formOf(b))).toEqual(input);
  });
  it("puts the API's message beside the field it names", () => {
    expect(placeError('amount_usd: `amount_usd` must be more than 0')).toEqual({ field: 'amount_usd', text: '`amount_usd` must be more than 0' });
    expect(placeError('period: `period.days` must be from 1 to 90')).toEqual({ field: 'period', text: '`period.days` must be from 1 to 90' });
    expect(placeError('warn_pct: `warn_pct` must be from 1 to 100', 'warn_pct')).toEqual({ field: 'warn_pct', text: '`warn_pct` must be from 1 to 100' });
    expect(placeError('scope: `scope.value` must not be empty')).toEqual({ field: 'scope', text: '`scope.value` must not be empty' });
    expect(placeError('name: a name must not be empty')).toEqual({ field: 'name', text: 'a name must not be empty' });
    // The error's own `field` wins.
    expect(placeError('must be more than 0', 'amount_usd')).toEqual({ field: 'amount_usd', text: 'must be more than 0' });
    // A body the server could not read names the field after serde's preamble.
    expect(placeError('Failed to deserialize the JSON body into the target type: warn_pct: invalid type: floating point `80.5`, expected u32 at line 1 column 80')).toEqual({
      field: 'warn_pct',
      text: 'invalid type: floating point `80.5`, expected u32 at line 1 column 80',
    });
    // Anything else goes under the form, whole.
    expect(placeError('a workspace may hold at most 20 budgets')).toEqual({ field: '', text: 'a workspace may hold at most 20 budgets' });
    expect(placeError('deny: something')).toEqual({ field: '', text: 'deny: something' });
  });
});
