import { describe, expect, it } from 'vitest';
import {
  addDays,
  causeKinds,
  coverageText,
  coverageTone,
  dailySeries,
  driftText,
  hasFigures,
  importStatus,
  importedThrough,
  keyProblem,
  modelName,
  offersPrice,
  parseRange,
  parseScope,
  percent,
  appliedRates,
  missingRates,
  planBody,
  pricePlan,
  rangeFor,
  rate,
  signedPercent,
  signedUsd,
} from '../src/lib/reconcile';
import { conditionOf, describeRule, formFieldOf } from '../src/pages/alertform';
import { ApiError } from '../src/lib/api';
import type { Figures, PriceDifference, PriceRule } from '../src/lib/types';

const zero = { input: 0, cached_input: 0, cache_write: 0, output: 0 };
function fig(billed: number, tracked: number, extra: Partial<Figures> = {}): Figures {
  return {
    billed: { tokens: zero, total_tokens: billed > 0 ? 1000 : 0, requests: null, cost_usd: billed },
    tracked: { tokens: zero, total_tokens: tracked > 0 ? 900 : 0, requests: 3, cost_usd: tracked, unpriced_requests: 0 },
    coverage_pct: billed > 0 ? 90 : null,
    drift_usd: tracked - billed,
    drift_pct: billed > 0 ? ((tracked - billed) / billed) * 100 : null,
    causes: [],
    ...extra,
  };
}

describe('reconciliation days', () => {
  it('takes the last N whole UTC days, today left out', () => {
    const now = Date.parse('2026-12-03T23:30:00-05:00'); // already Dec 4 in UTC
    expect(rangeFor(7, now)).toEqual({ from: '2026-11-27', to: '2026-12-04' });
    expect(rangeFor(30, Date.parse('2026-03-01T00:00:00Z'))).toEqual({ from: '2026-01-30', to: '2026-03-01' });
    expect(addDays('2024-02-28', 1)).toBe('2024-02-29');
    expect(addDays('2026-01-01', -1)).toBe('2025-12-31');
  });
  it('reads the range from the query string, 30 days unless 7, 30 or 90', () => {
    expect(parseRange('?days=7')).toBe(7);
    expect(parseRange('?days=90')).toBe(90);
    expect(parseRange('?days=12')).toBe(30);
    expect(parseRange('')).toBe(30);
  });
  it('knows the last day imported by any connection', () => {
    expect(importedThrough([{ imported_through: null }, { imported_through: '2026-11-20' }, { imported_through: '2026-11-28' }])).toBe('2026-11-28');
    expect(importedThrough([{ imported_through: null }])).toBeNull();
  });
  it('draws no billed cost for days not imported yet (a gap, not zero)', () => {
    const days = ['2026-11-27', '2026-11-28', '2026-11-29'].map((day, i) => ({ day, ...fig(i + 1, i + 0.5) }));
    const s = dailySeries({ days, connections: [{ id: 'pc_1', provider: 'openai', imported_through: '2026-11-28' }] });
    expect(s.buckets).toEqual(['2026-11-27', '2026-11-28', '2026-11-29']);
    expect(s.billed).toEqual([1, 2, null]);
    expect(s.tracked).toEqual([0.5, 1.5, 2.5]);
    expect(dailySeries({ days, connections: [] }).billed).toEqual([null, null, null]);
  });
  it('tells an empty range from one with figures', () => {
    expect(hasFigures({ total: fig(0, 0) })).toBe(false);
    expect(hasFigures({ total: fig(0, 0.01) })).toBe(true);
    expect(hasFigures({ total: fig(2, 0) })).toBe(true);
  });
});

describe('reconciliation wording', () => {
  it('formats percentages given in percent', () => {
    expect(percent(92.456)).toBe('92.5%');
    expect(percent(100)).toBe('100%');
    expect(percent(0.04)).toBe('<0.1%');
    expect(percent(null)).toBe('—');
    expect(signedPercent(4.5)).toBe('+4.5%');
    expect(signedPercent(-12)).toBe('−12%');
    expect(signedPercent(0)).toBe('0%');
  });
  it('says coverage in words, never by colour alone', () => {
    expect(coverageTone(99)).toBe('good');
    expect(coverageTone(85)).toBe('warn');
    expect(coverageTone(40)).toBe('bad');
    expect(coverageTone(null)).toBe('none');
    expect(coverageText(99.2)).toBe('99.2% (complete)');
    expect(coverageText(85)).toBe('85% (partial)');
    expect(coverageText(12.5)).toBe('12.5% (low)');
    expect(coverageText(130)).toBe('130% (more than billed)');
    expect(coverageText(null)).toBe('—');
  });
  it('says drift with its direction, an arrow and words', () => {
    expect(driftText(1.2, 4.5)).toEqual({ text: '▲ +$1.20 (+4.5%) above the bill', short: '▲ +$1.20 (+4.5%)', dir: 'above', tone: 'warn' });
    expect(driftText(-30, -25)).toEqual({ text: '▼ −$30.00 (−25%) below the bill', short: '▼ −$30.00 (−25%)', dir: 'below', tone: 'bad' });
    expect(driftText(0, 0)).toEqual({ text: 'matches the bill', short: '✓ matches the bill', dir: 'even', tone: 'good' });
    expect(driftText(0.001, 0.01).text).toBe('matches the bill (+$0.001)');
    // Under half a percent of a large bill still says how much.
    expect(driftText(3, 0.2).short).toBe('▲ +$3.00 (+0.2%)');
    // No bill: no percentage, and it cannot be called small.
    expect(driftText(0.5, null)).toEqual({ text: '▲ +$0.50 above the bill', short: '▲ +$0.50', dir: 'above', tone: 'bad' });
    expect(signedUsd(-0.0042)).toBe('−$0.0042');
  });
  it('names the model-less costs and de-duplicates causes', () => {
    expect(modelName('')).toBe('Not tied to a model');
    expect(modelName('gpt-4o')).toBe('gpt-4o');
    const f = { causes: [{ kind: 'missing_events', message: 'a' }, { kind: 'missing_events', message: 'b' }, { kind: 'unpriced_model', message: 'c' }, { kind: 'something_new', message: 'd' }] };
    expect(causeKinds(f)).toEqual(['Missing events', 'Unpriced model', 'something new']);
  });
  it("describes a connection's last import", () => {
    expect(importStatus({ last_import: null, imported_through: null })).toEqual({ text: 'not imported yet', tone: 'none' });
    expect(importStatus({ last_import: { at: '2026-12-01T00:00:00Z', ok: true, message: null, days: 30 }, imported_through: '2026-11-30' })).toEqual({ text: '✓ 30 days imported, through 2026-11-30', tone: 'good' });
    expect(importStatus({ last_import: { at: '2026-12-01T00:00:00Z', ok: true, message: null, days: 1 }, imported_through: null }).text).toBe('✓ 1 day imported');
    expect(importStatus({ last_import: { at: '2026-12-01T00:00:00Z', ok: false, message: 'OpenAI refused the admin key (401)', days: 0 }, imported_through: '2026-11-30' })).toEqual({ text: '✕ failed: OpenAI refused the admin key (401)', tone: 'bad' });
  });
  it('formats rates per million tokens', () => {
    expect(rate(2.5)).toBe('$2.50');
    expect(rate(0.075)).toBe('$0.075');
    expect(rate(null)).toBe('—');
  });
});

describe('the connection form', () => {
  it("checks the key's kind before sending it", () => {
    expect(keyProblem('openai', 'sk-admin-abc')).toBeNull();
    expect(keyProblem('anthropic', ' sk-ant-admin01-abc ')).toBeNull();
    expect(keyProblem('openai', '')).toBe('Paste the admin key.');
    expect(keyProblem('openai', 'sk-proj-abcdef')).toMatch(/project or user key.*sk-admin-/);
    expect(keyProblem('anthropic', 'sk-ant-api03-xyz')).toMatch(/API key.*sk-ant-admin/);
    expect(keyProblem('openai', 'sk-ant-admin01-x')).toMatch(/Anthropic/);
    expect(keyProblem('anthropic', 'sk-admin-x')).toMatch(/OpenAI/);
    expect(keyProblem('anthropic', 'hello')).toBe('An Anthropic Admin key starts with sk-ant-admin.');
  });
  it('reads the scope as ids separated by commas or spaces', () => {
    expect(parseScope(' proj_a, proj_b  proj_a;proj_c ')).toEqual(['proj_a', 'proj_b', 'proj_c']);
    expect(parseScope('')).toEqual([]);
  });
});

describe('price feedback', () => {
  const range = { from: '2026-11-01', to: '2026-12-01' };
  const pd = (kind: PriceDifference['kind'], billed: number, table: number | null, model = 'gpt-4o-2024-08-06'): PriceDifference => ({
    provider: 'openai',
    model,
    kind,
    billed_usd_per_mtok: billed,
    table_usd_per_mtok: table,
    difference_pct: table === null ? null : ((billed - table) / table) * 100,
    tokens: 1000,
  });
  const all = [pd('input', 2.5, 2.5), pd('cached_input', 1.25, 1.25), pd('output', 9, 10)];
  it('offers only rates that differ from a known table rate', () => {
    expect(offersPrice(all[2])).toBe(true);
    expect(offersPrice(all[0])).toBe(false);
    expect(offersPrice(pd('input', 3, null))).toBe(false);
  });
  it('creates a rule with the billed rate, the other kinds at the table rates', () => {
    const plan = pricePlan(all[2], all, [], range);
    expect(plan.method).toBe('post');
    expect(planBody(plan)).toEqual({
      provider: 'openai',
      model: 'gpt-4o-2024-08-06',
      kind: 'rates',
      rates: { input: 2.5, cached_input: 1.25, output: 9 },
      note: 'Output rate from the OpenAI bill, 2026-11-01 to 2026-12-01 (exclusive)',
    });
    expect(plan.lines.find((l) => l.changed)).toEqual({ kind: 'output', rate: 9, source: 'billed by OpenAI', changed: true });
    expect(plan.lines.find((l) => l.kind === 'cache_write')).toEqual({ kind: 'cache_write', rate: null, source: 'not set: charged at the input rate', changed: false });
    expect(missingRates(plan)).toEqual([]);
  });
  it("changes the workspace's own undated rule for the model rather than adding a second", () => {
    const rules: PriceRule[] = [
      { id: 'pr_dated', provider: 'openai', model: 'gpt-4o-2024-08-06', effective_from: '2026-01-01', updated_at: '', kind: 'discount', percent: 50 },
      { id: 'pr_1', provider: 'OpenAI', model: 'gpt-4o-2024-08-06', updated_at: '', kind: 'rates', rates: { input: 2.4, output: 9.6, reasoning: 12 }, batch_percent: 50 },
    ];
    const plan = pricePlan(all[2], all, rules, range);
    expect(plan.method).toBe('put');
    expect(plan.ruleId).toBe('pr_1');
    const body = planBody(plan);
    expect(body.provider).toBe('OpenAI');
    // Kept: its own input rate and the kinds the bill does not itemise; the table's cached rate
    // where the rule had none.
    expect(body.rates).toEqual({ input: 2.4, cached_input: 1.25, output: 9, reasoning: 12 });
    expect(body.batch_percent).toBe(50);
  });
  it('turns a discount into rates, the other kinds discounted as before', () => {
    const rules: PriceRule[] = [{ id: 'pr_2', provider: 'openai', model: 'gpt-4o-2024-08-06', updated_at: '', kind: 'discount', percent: 20 }];
    const plan = pricePlan(all[2], all, rules, range);
    expect(plan.method).toBe('put');
    expect(planBody(plan).rates).toEqual({ input: 2, cached_input: 1, output: 9 });
    expect(plan.lines[0].source).toBe("the table's rate less your 20% discount");
  });
  it('takes the rates LLMtrack applied to its latest event for kinds the answer leaves out (they match the bill)', () => {
    // Only the differing kind is listed, as the API lists gaps of 2% and more.
    const only = [pd('output', 9, 10)];
    const applied = { rates: appliedRates({ model: 'gpt-4o', rates: { input: 2.5, cached_input: 1.25, cache_write: null, output: 10, source: 'https://…' } })!, label: 'as LLMtrack priced your latest gpt-4o event' };
    expect(applied.rates).toEqual({ input: 2.5, cached_input: 1.25, output: 10 });
    const plan = pricePlan(only[0], only, [], range, applied);
    expect(planBody(plan).rates).toEqual({ input: 2.5, cached_input: 1.25, output: 9 });
    expect(plan.lines[0].source).toBe('as LLMtrack priced your latest gpt-4o event');
    expect(appliedRates(null)).toBeNull();
    expect(appliedRates({ rates: {} })).toBeNull();
  });
  it('leaves a required rate it cannot know for the admin to type', () => {
    const only = [pd('cached_input', 1, 1.25, 'o-model')];
    const plan = pricePlan(only[0], only, [], range);
    expect(missingRates(plan)).toEqual(['input', 'output']);
    expect(missingRates(plan, { input: '3', output: ' ' })).toEqual(['output']);
    expect(missingRates(plan, { input: '3', output: '12' })).toEqual([]);
    expect(planBody(plan, { input: '3', output: '12', cached_input: '1' }).rates).toEqual({ input: 3, cached_input: 1, output: 12 });
    // What is not a number goes as typed, for the API to name.
    expect(planBody(plan, { input: 'three', output: '12' }).rates).toEqual({ input: 'three', cached_input: 1, output: 12 });
  });
});

describe('alert rules on the bill', () => {
  const base = { period: 'day', over_usd: '', budget_usd: '', thresholds: '', over_pct: '5', window_minutes: '', min_requests: '', over_ms: '' };
  it('builds coverage and drift conditions', () => {
    expect(conditionOf({ ...base, metric: 'coverage', under_pct: '80', days: '3' })).toEqual({ metric: 'coverage', under_pct: 80, days: 3 });
    // Drift has its own percentage field: the error rate's is not sent.
    expect(conditionOf({ ...base, metric: 'drift', drift_pct: '10', days: '7' })).toEqual({ metric: 'drift', over_pct: 10, days: 7 });
    expect(conditionOf({ ...base, metric: 'drift', drift_pct: 'ten', days: '' })).toEqual({ metric: 'drift', over_pct: 'ten', days: '' });
  });
  it('describes them in words', () => {
    expect(describeRule({ condition: { metric: 'coverage', under_pct: 80, days: 3 }, filter: null })).toBe("LLMtrack saw under 80% of the provider's billed tokens over the last 3 imported days");
    expect(describeRule({ condition: { metric: 'drift', over_pct: 10, days: 1 }, filter: null })).toBe("LLMtrack's cost 10% or more away from the provider's bill over the last imported day");
  });
  it('puts their errors beside their fields', () => {
    expect(formFieldOf(new ApiError(400, 'invalid_rule', '`under_pct` must be between 0 and 100'))).toBe('under_pct');
    expect(formFieldOf(new ApiError(400, 'invalid_rule', '`days` must be 1 to 30'))).toBe('days');
    expect(formFieldOf(new ApiError(400, 'invalid_rule', '`over_pct` must be more than 0'), 'drift')).toBe('drift_pct');
    expect(formFieldOf(new ApiError(400, 'invalid_rule', '`over_pct` must be more than 0'), 'error_rate')).toBe('over_pct');
  });
});
