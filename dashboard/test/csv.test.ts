import { describe, expect, it } from 'vitest';
import { csvCell, fileName, toCsv, toJsonl, type Column } from '../src/lib/csv';
import { exportColumns, metricOf, providerDifference, sortRows } from '../src/pages/explore';
import type { BreakdownRow } from '../src/lib/types';

const row = (value: string, cost: number, requests: number): BreakdownRow => ({
  value,
  metrics: {
    requests,
    errors: 1,
    error_rate: 1 / requests,
    tokens: { input: 10, output: 5, cached_input: 2, cache_write: 0, reasoning: 1, total: 15 },
    cost_usd: cost,
    unpriced: 0,
    latency_ms: { p50: 100, p90: 200, p95: 250, p99: 300, count: requests },
    provider_reported: { events: 0, cost_usd: 0, computed_usd: 0, difference_usd: 0, difference_rate: null },
  },
});

describe('CSV export', () => {
  it('quotes what needs quoting', () => {
    expect(csvCell('plain')).toBe('plain');
    expect(csvCell('a,b')).toBe('"a,b"');
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
    expect(csvCell('two\nlines')).toBe('"two\nlines"');
    expect(csvCell(' padded ')).toBe('" padded "');
    expect(csvCell(null)).toBe('');
    expect(csvCell(1.5)).toBe('1.5');
    expect(csvCell(true)).toBe('true');
    expect(csvCell(Number.NaN)).toBe('');
  });
  it('defuses cells a spreadsheet would run as formulas', () => {
    expect(csvCell('=HYPERLINK("x")')).toBe('"\'=HYPERLINK(""x"")"');
    expect(csvCell('+1')).toBe("'+1");
    expect(csvCell('-cmd')).toBe("'-cmd");
    expect(csvCell('@SUM(A1)')).toBe("'@SUM(A1)");
    expect(csvCell(-3)).toBe('-3');
  });
  it('writes a header and one line per row, numbers unformatted', () => {
    const cols: Column<{ a: string; b: number }>[] = [
      { key: 'a', label: 'A', value: (r) => r.a },
      { key: 'b', label: 'B', value: (r) => r.b },
    ];
    expect(toCsv(cols, [{ a: 'x', b: 0.00042 }, { a: 'y,z', b: 2 }])).toBe('A,B\r\nx,0.00042\r\n"y,z",2\r\n');
    expect(toJsonl(cols, [{ a: 'x', b: 1 }])).toBe('{"a":"x","b":1}\n');
  });
  it('exports a breakdown with every metric', () => {
    const rows = [row('gpt-4o', 1.25, 10), row('', 0.003, 4)];
    const csv = toCsv(exportColumns('model'), rows).split('\r\n');
    expect(csv[0]).toBe('Model,Cost,Requests,Errors,Error rate,Input tokens,Output tokens,Cached input tokens,Reasoning tokens,Total tokens,Unpriced events,Latency p50,Latency p95,Latency p99');
    expect(csv[1]).toBe('gpt-4o,1.25,10,1,0.1,10,5,2,1,15,0,100,250,300');
    expect(csv[2].startsWith(',0.003,4,')).toBe(true);
  });
  it('sorts rows as the table does', () => {
    const rows = [row('b', 1, 30), row('a', 3, 10), row('c', 2, 20)];
    expect(sortRows(rows, 'cost_usd', true).map((r) => r.value)).toEqual(['a', 'c', 'b']);
    expect(sortRows(rows, 'requests', false).map((r) => r.value)).toEqual(['a', 'c', 'b']);
    expect(sortRows(rows, 'value', false).map((r) => r.value)).toEqual(['a', 'b', 'c']);
    expect(metricOf(rows[0], 'latency_p95')).toBe(250);
    expect(metricOf(rows[0], 'total_tokens')).toBe(15);
  });
  it('makes safe file names', () => {
    expect(fileName(['llmtrack', 'Acme Inc.', 'by', 'model', 'Last 7 days'], 'csv')).toBe('llmtrack-Acme_Inc.-by-model-Last_7_days.csv');
    expect(fileName(['a/b', '../c'], 'jsonl')).toBe('a_b-.._c.jsonl');
  });
});

describe('provider vs computed', () => {
  const p = (events: number, difference_usd: number, computed_usd: number) => ({
    events,
    cost_usd: computed_usd + difference_usd,
    computed_usd,
    difference_usd,
    difference_rate: computed_usd === 0 ? null : difference_usd / computed_usd,
  });
  it('says how far the provider is from the computed cost, signed', () => {
    expect(providerDifference(p(3, 0.12, 4))).toBe('+$0.12 (+3%)');
    expect(providerDifference(p(3, -0.5, 10))).toBe('-$0.50 (-5%)');
    expect(providerDifference(p(1, 0.002, 0))).toBe('+$0.002');
  });
  it('shows a dash where no event carried a reported cost', () => {
    expect(providerDifference(p(0, 0, 0))).toBe('—');
  });
});
