import { describe, expect, it } from 'vitest';
import { change, compact, count, dateTime, metricValue, monthName, ms, pct, usd, usdCompact, dimValue, ago } from '../src/lib/format';

describe('usd', () => {
  it('shows two decimals from a cent up, with grouping', () => {
    expect(usd(0)).toBe('$0.00');
    expect(usd(0.01)).toBe('$0.01');
    expect(usd(1.5)).toBe('$1.50');
    expect(usd(1234567.891)).toBe('$1,234,567.89');
  });
  it('never shows a non-zero cost below a cent as $0.00', () => {
    for (const v of [0.009, 0.0042, 0.00055, 0.000123, 0.0000011, 0.00999999, 1e-9, 0.004999]) {
      const s = usd(v);
      expect(s, String(v)).not.toBe('$0.00');
      expect(s).not.toMatch(/^\$0\.0+$/);
    }
    expect(usd(0.0042)).toBe('$0.0042');
    expect(usd(0.005)).toBe('$0.005');
    expect(usd(0.00055)).toBe('$0.00055');
    expect(usd(1e-9)).toBe('<$0.000001');
  });
  it('handles missing and negative values', () => {
    expect(usd(null)).toBe('—');
    expect(usd(undefined)).toBe('—');
    expect(usd(-2)).toBe('-$2.00');
  });
  it('compacts axis labels', () => {
    expect(usdCompact(1500)).toBe('$1.5k');
    expect(usdCompact(2_000_000)).toBe('$2M');
    expect(usdCompact(0.5)).toBe('$0.50');
  });
});

describe('numbers', () => {
  it('counts with separators and compacts', () => {
    expect(count(1234567)).toBe('1,234,567');
    expect(count(null)).toBe('—');
    expect(compact(999)).toBe('999');
    expect(compact(1200)).toBe('1.2k');
    expect(compact(3_400_000)).toBe('3.4M');
    expect(compact(12_000_000_000)).toBe('12B');
  });
  it('formats percentages from fractions', () => {
    expect(pct(0.125)).toBe('12.5%');
    expect(pct(0)).toBe('0%');
    expect(pct(1)).toBe('100%');
    expect(pct(0.0002)).toBe('<0.1%');
    expect(pct(null)).toBe('—');
  });
  it('formats latencies', () => {
    expect(ms(850)).toBe('850 ms');
    expect(ms(4.25)).toBe('4.3 ms');
    expect(ms(1250)).toBe('1.25 s');
    expect(ms(90_000)).toBe('1.5 min');
    expect(ms(null)).toBe('—');
  });
  it('formats each metric its own way', () => {
    expect(metricValue('cost_usd', 0.003)).toBe('$0.003');
    expect(metricValue('error_rate', 0.05)).toBe('5%');
    expect(metricValue('latency_p95', 1200)).toBe('1.2 s');
    expect(metricValue('requests', 12000)).toBe('12,000');
  });
});

describe('change', () => {
  it('gives direction in words and signs, not only colour', () => {
    expect(change(0.25)).toEqual({ text: '▲ +25%', dir: 'up' });
    expect(change(-0.105)).toEqual({ text: '▼ −10.5%', dir: 'down' });
    expect(change(0)).toEqual({ text: 'no change', dir: 'flat' });
    expect(change(null)).toEqual({ text: 'no previous data', dir: 'none' });
    expect(change(3.5)).toEqual({ text: '▲ +350%', dir: 'up' });
  });
});

describe('dates', () => {
  it('formats in the workspace timezone', () => {
    expect(dateTime('2026-11-27T10:05:00Z', 'UTC')).toBe('Nov 27, 2026, 10:05');
    expect(dateTime('2026-11-27T10:05:00Z', 'Asia/Kolkata')).toBe('Nov 27, 2026, 15:35');
    expect(dateTime('2026-11-27T23:30:00Z', 'America/New_York')).toBe('Nov 27, 2026, 18:30');
    expect(dateTime(null, 'UTC')).toBe('—');
  });
  it('names months and relative times', () => {
    expect(monthName('2026-11')).toBe('November 2026');
    const now = Date.parse('2026-11-27T12:00:00Z');
    expect(ago('2026-11-27T11:58:00Z', now)).toBe('2 min ago');
    expect(ago('2026-11-25T12:00:00Z', now)).toBe('2 d ago');
    expect(ago(null, now)).toBe('never');
  });
  it('shows the empty dimension value as (none)', () => {
    expect(dimValue('')).toBe('(none)');
    expect(dimValue(null)).toBe('(none)');
    expect(dimValue('gpt-4o')).toBe('gpt-4o');
  });
});
