import { describe, expect, it } from 'vitest';
import { bucketTimes, stack } from '../src/chart';
import { conditionOf, describeRule, formFieldOf } from '../src/pages/alertform';
import { snippets } from '../src/pages/quickstart';
import { attributeList } from '../src/pages/settings';
import { ApiError } from '../src/lib/api';

describe('alert rule form', () => {
  const base = { period: 'day', over_usd: '', budget_usd: '', thresholds: '', over_pct: '', window_minutes: '', min_requests: '', over_ms: '' };
  it('builds each kind of condition, numbers as numbers', () => {
    expect(conditionOf({ ...base, metric: 'cost', period: 'month', over_usd: '25' })).toEqual({ metric: 'cost', period: 'month', over_usd: 25 });
    expect(conditionOf({ ...base, metric: 'budget', budget_usd: '500', thresholds: '50, 80 100' })).toEqual({ metric: 'budget', budget_usd: 500, thresholds_pct: [50, 80, 100] });
    expect(conditionOf({ ...base, metric: 'forecast', budget_usd: '1e3' })).toEqual({ metric: 'forecast', budget_usd: 1000 });
    // A rule following a budget keeps following it when edited: no amount of its own.
    expect(conditionOf({ ...base, metric: 'budget', budget_id: 'bdg_1', budget_usd: '0', thresholds: '' })).toEqual({ metric: 'budget', budget_id: 'bdg_1' });
    expect(conditionOf({ ...base, metric: 'budget', budget_id: 'bdg_1', budget_usd: '0', thresholds: '90, 100' })).toEqual({ metric: 'budget', budget_id: 'bdg_1', thresholds_pct: [90, 100] });
    expect(conditionOf({ ...base, metric: 'error_rate', over_pct: '5', window_minutes: '15', min_requests: '20' })).toEqual({ metric: 'error_rate', over_pct: 5, window_minutes: 15, min_requests: 20 });
    expect(conditionOf({ ...base, metric: 'latency_p95', over_ms: '2000', window_minutes: '10' })).toEqual({ metric: 'latency_p95', over_ms: 2000, window_minutes: 10 });
  });
  it('builds per-value and anomaly rules', () => {
    expect(conditionOf({ ...base, metric: 'any_value', each: 'user', each_unit: 'usd', each_over: '5', window_hours: '24' })).toEqual({
      metric: 'any_value',
      dimension: 'user',
      over_usd: 5,
      window_hours: 24,
    });
    expect(conditionOf({ ...base, metric: 'any_value', each: 'feature', each_unit: 'requests', each_over: '100', window_hours: '1' })).toEqual({
      metric: 'any_value',
      dimension: 'feature',
      over_requests: 100,
      window_hours: 1,
    });
    expect(conditionOf({ ...base, metric: 'anomaly', anomaly_on: 'requests', anomaly_by: 'model' })).toEqual({ metric: 'anomaly', on: 'requests', dimension: 'model' });
    expect(conditionOf({ ...base, metric: 'anomaly', anomaly_on: 'cost', anomaly_by: 'model', anomaly_each: 'feature' })).toEqual({ metric: 'anomaly', on: 'cost', dimension: 'model', each: 'feature' });
    expect(conditionOf({ ...base, metric: 'anomaly', anomaly_on: 'cost', anomaly_by: 'feature', anomaly_each: '' })).toEqual({ metric: 'anomaly', on: 'cost', dimension: 'feature' });
    expect(formFieldOf(new ApiError(400, 'invalid_rule', '`each` (feature) cannot be watched within a `model` filter'), 'anomaly')).toBe('anomaly_each');
    expect(describeRule({ condition: { metric: 'anomaly', on: 'cost', each: 'feature' }, filter: null })).toBe('cost of any feature unusual for the hour of the week');
    expect(describeRule({ condition: { metric: 'anomaly', on: 'requests' }, filter: { dimension: 'feature', value: 'search' } })).toBe(
      'requests unusual for the hour of the week (contributors by feature), for feature search',
    );
    expect(formFieldOf(new ApiError(400, 'invalid_rule', '`over_requests` must be from 1 to 1000000000'), 'any_value')).toBe('each_over');
    expect(describeRule({ condition: { metric: 'any_value', dimension: 'user', over_usd: 5, window_hours: 168 }, filter: null })).toBe('any end-user over $5.00 in the last 7 days');
    expect(describeRule({ condition: { metric: 'any_value', dimension: 'feature', over_requests: 100, window_hours: 24 }, filter: null })).toBe('any feature over 100 requests in the last 24 h');
  });
  it('sends what was typed when it is not a number, so the API names the field', () => {
    expect(conditionOf({ ...base, metric: 'cost', over_usd: 'ten' })).toEqual({ metric: 'cost', period: 'day', over_usd: 'ten' });
  });
  it('puts API errors beside their field', () => {
    expect(formFieldOf(new ApiError(400, 'invalid_rule', '`budget_usd` must be more than 0'))).toBe('budget_usd');
    expect(formFieldOf(new ApiError(400, 'invalid_rule', '`thresholds_pct` must increase'))).toBe('thresholds');
    expect(formFieldOf(new ApiError(400, 'invalid_rule', '`webhook_url` must be https'))).toBe('webhook_url');
    expect(formFieldOf(new ApiError(400, 'invalid_rule', 'a rule needs a channel: email or a webhook'))).toBe('email');
    expect(formFieldOf(new ApiError(409, 'conflict', 'the free plan allows 2 alert rules'))).toBe('');
  });
  it('describes rules in words', () => {
    expect(describeRule({ condition: { metric: 'budget', budget_usd: 500, thresholds_pct: [50, 80, 100] }, filter: null })).toBe('50%, 80%, 100% of a $500.00 monthly budget');
    expect(describeRule({ condition: { metric: 'cost', period: 'day', over_usd: 0.005 }, filter: { dimension: 'feature', value: 'search' } })).toBe('cost of the day (UTC) over $0.005, for feature search');
  });
});

describe('quickstart snippets', () => {
  it('carry the key and the server origin in each language', () => {
    const s = snippets('http://127.0.0.1:8080', 'llmt_abc');
    expect(s.map((x) => x.id)).toEqual(['curl', 'python', 'typescript', 'opentelemetry']);
    for (const x of s.slice(0, 3)) {
      expect(x.code).toContain('http://127.0.0.1:8080/v1/events');
      expect(x.code).toContain('Bearer llmt_abc');
    }
    // The exporter's header list is URL-encoded (the OTLP exporter specification).
    expect(s[3].code).toContain('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://127.0.0.1:8080/otlp/v1/traces"');
    expect(s[3].code).toContain('Authorization=Bearer%20llmt_abc');
    // The curl body is valid JSON with the event contract's field names.
    const body = /-d '(.*)'/.exec(s[0].code)![1];
    expect(JSON.parse(body)).toMatchObject({ provider: 'openai', model: 'gpt-4o-mini', input_tokens: 1200 });
  });
});

describe('OpenTelemetry attributes', () => {
  it('are typed as a list split by commas or spaces', () => {
    expect(attributeList(' app.feature, service.name  enduser.id,,')).toEqual(['app.feature', 'service.name', 'enduser.id']);
    expect(attributeList('')).toEqual([]);
  });
});

describe('charts', () => {
  it('stacks series cumulatively, holes as zero', () => {
    expect(stack([[1, null, 3], [2, 2, null]])).toEqual([[1, 0, 3], [3, 2, 3]]);
  });
  it('places hours at their instant and local days at UTC midnight', () => {
    expect(bucketTimes(['2026-11-27T10:00:00Z'])).toEqual({ xs: [Date.parse('2026-11-27T10:00:00Z') / 1000], daily: false });
    expect(bucketTimes(['2026-11-27', '2026-11-28'])).toEqual({ xs: [Date.parse('2026-11-27T00:00:00Z') / 1000, Date.parse('2026-11-28T00:00:00Z') / 1000], daily: true });
  });
});
