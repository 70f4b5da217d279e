import { describe, expect, it } from 'vitest';
import { apiParams, parseView, rangeDays, rangeLabel, rangeParams, serializeView, sharedQuery, withExtra, withFilter } from '../src/lib/urlstate';
import { offsetLabel, startOfLocalDay, tzOffsetMs, zonedToUtc, nextDay, parseDate } from '../src/lib/time';

describe('view state in the URL', () => {
  it('defaults to the last 7 days and no filters', () => {
    const v = parseView('');
    expect(v.range).toBe('last_7d');
    expect(v.filters).toEqual({});
    expect(serializeView(v)).toBe('');
  });
  it('round-trips presets, filters (empty value kept) and page settings', () => {
    const q = 'range=last_30d&model=gpt-4o&feature=&status=error&by=feature&by2=model&metric=requests&view=pivot&sort=requests&order=asc';
    const v = parseView('?' + q);
    expect(v.range).toBe('last_30d');
    expect(v.filters).toEqual({ model: 'gpt-4o', feature: '', status: 'error' });
    expect(v.extra).toEqual({ by: 'feature', by2: 'model', metric: 'requests', view: 'pivot', sort: 'requests', order: 'asc' });
    expect(parseView(serializeView(v))).toEqual(v);
  });
  it('keeps custom dates and repairs a reversed range', () => {
    const v = parseView('from=2026-11-01&to=2026-11-07&range=last_24h');
    expect(v.range).toBe('custom');
    expect(serializeView(v)).toBe('from=2026-11-01&to=2026-11-07');
    expect(parseView('from=2026-11-07&to=2026-11-01').to).toBe('2026-11-07');
    expect(parseView('from=nonsense').range).toBe('last_7d');
    expect(rangeLabel(v)).toBe('2026-11-01 – 2026-11-07');
    expect(rangeDays(v)).toBe(7);
  });
  it('ignores unknown presets and bad statuses', () => {
    const v = parseView('range=forever&status=maybe');
    expect(v.range).toBe('last_7d');
    expect(v.filters.status).toBeUndefined();
  });
  it('turns custom local dates into UTC instants in the workspace timezone', () => {
    const v = parseView('from=2026-11-01&to=2026-11-07');
    expect(rangeParams(v, 'UTC')).toEqual({ from: '2026-11-01T00:00:00.000Z', to: '2026-11-08T00:00:00.000Z' });
    expect(rangeParams(v, 'Europe/Paris')).toEqual({ from: '2026-10-31T23:00:00.000Z', to: '2026-11-07T23:00:00.000Z' });
    expect(rangeParams(parseView('range=this_month'), 'UTC')).toEqual({ from: 'this_month' });
  });
  it('builds API parameters with workspace, range, filters and extras', () => {
    const v = parseView('range=last_24h&feature=&model=gpt-4o');
    const q = apiParams('ws_1', v, 'UTC', { by: 'model', limit: 10, cursor: undefined });
    expect(q.toString()).toBe('workspace=ws_1&from=last_24h&model=gpt-4o&feature=&by=model&limit=10');
  });
  it('changes one part at a time and shares range and filters only', () => {
    let v = parseView('range=last_30d&by=model');
    v = withFilter(v, 'source', 'production');
    v = withExtra(v, 'metric', 'requests');
    expect(serializeView(v)).toBe('range=last_30d&source=production&by=model&metric=requests');
    expect(sharedQuery(v)).toBe('range=last_30d&source=production');
    v = withFilter(v, 'source', undefined);
    v = withExtra(v, 'by', undefined);
    expect(serializeView(v)).toBe('range=last_30d&metric=requests');
  });
});

describe('timezones', () => {
  it('knows offsets, DST included', () => {
    expect(tzOffsetMs(Date.parse('2026-07-01T12:00:00Z'), 'Europe/Paris')).toBe(2 * 3600_000);
    expect(tzOffsetMs(Date.parse('2026-12-01T12:00:00Z'), 'Europe/Paris')).toBe(3600_000);
    expect(tzOffsetMs(Date.parse('2026-12-01T12:00:00Z'), 'Asia/Kathmandu')).toBe(5.75 * 3600_000);
    expect(offsetLabel('Asia/Kolkata')).toBe('UTC+5:30');
    expect(offsetLabel('UTC')).toBe('UTC');
  });
  it('maps local midnight to UTC across a DST change', () => {
    // New York: DST ends on 2026-11-01.
    expect(new Date(zonedToUtc(2026, 11, 1, 0, 0, 'America/New_York')).toISOString()).toBe('2026-11-01T04:00:00.000Z');
    expect(new Date(zonedToUtc(2026, 11, 2, 0, 0, 'America/New_York')).toISOString()).toBe('2026-11-02T05:00:00.000Z');
    expect(startOfLocalDay('2026-03-29', 'Europe/London')).toBe('2026-03-29T00:00:00.000Z');
    expect(startOfLocalDay('2026-03-30', 'Europe/London')).toBe('2026-03-29T23:00:00.000Z');
  });
  it('parses and steps dates', () => {
    expect(parseDate('2026-02-30')).toBeNull();
    expect(parseDate('2026-13-01')).toBeNull();
    expect(nextDay('2026-12-31')).toBe('2027-01-01');
    expect(nextDay('2028-02-28')).toBe('2028-02-29');
  });
});
