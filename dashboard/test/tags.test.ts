import { describe, expect, it } from 'vitest';
import { exportColumns } from '../src/pages/explore';
import { FOCUS_DESCRIPTION, exportBody } from '../src/lib/exports';
import { DIMENSIONS, dimensionLabel, dimensionNoun } from '../src/lib/format';
import { type TagKeyInfo, addTagKey, groupByOptions, isTagDimension, overflowNote, tagErrorIndex, tagErrorMessage, tagKeyOf, tagKeysChanged } from '../src/lib/tags';
import { apiParams, parseView, serializeView, withExtra } from '../src/lib/urlstate';

const team: TagKeyInfo = { key: 'team', dimension: 'tag:team', since: '2026-12-01T05:00:00.000Z', values: ['growth', 'search'], max_values: 100, overflowed: false };
const customer: TagKeyInfo = { key: 'customer', dimension: 'tag:customer', since: '2026-12-02T00:00:00.000Z', values: [], max_values: 100, overflowed: true };

describe('cost-allocation tag dimensions', () => {
  it('tells a tag dimension from a built-in one', () => {
    expect(isTagDimension('tag:team')).toBe(true);
    expect(isTagDimension('tag:')).toBe(false);
    expect(isTagDimension('model')).toBe(false);
    expect(isTagDimension(undefined)).toBe(false);
    expect(tagKeyOf('tag:costCenter')).toBe('costCenter');
    expect(tagKeyOf('feature')).toBeUndefined();
  });
  it('labels a tag dimension by its key, never by its slot', () => {
    expect(dimensionLabel('tag:team')).toBe('team');
    expect(dimensionLabel('feature')).toBe('Feature');
    expect(dimensionNoun('user')).toBe('end-user');
    // A key keeps its spelling inside a sentence.
    expect(dimensionNoun('tag:costCenter')).toBe('costCenter');
    expect(exportColumns('tag:team')[0]).toMatchObject({ key: 'tag:team', label: 'team' });
  });
  it('offers the built-in dimensions, then each declared key', () => {
    const o = groupByOptions([team, customer]);
    expect(o.slice(0, DIMENSIONS.length).map((d) => d.id)).toEqual(DIMENSIONS.map((d) => d.id));
    expect(o.slice(DIMENSIONS.length)).toEqual([
      { id: 'tag:team', label: 'team', tag: true },
      { id: 'tag:customer', label: 'customer', tag: true },
    ]);
    expect(groupByOptions(undefined).length).toBe(DIMENSIONS.length);
    // A key from the URL no longer declared stays selectable (the API says why it is empty).
    expect(groupByOptions([team], 'tag:project').map((d) => d.id).slice(-2)).toEqual(['tag:team', 'tag:project']);
    expect(groupByOptions([team], 'tag:team').filter((d) => d.id === 'tag:team').length).toBe(1);
    expect(groupByOptions([team], 'model').length).toBe(DIMENSIONS.length + 1);
  });
  it('keeps by=tag:<key> in the URL and sends it to the API', () => {
    const v = withExtra(parseView('range=last_24h'), 'by', 'tag:team');
    expect(serializeView(v)).toBe('range=last_24h&by=tag%3Ateam');
    expect(parseView(serializeView(v)).extra.by).toBe('tag:team');
    expect(apiParams('ws_1', v, 'UTC', { by: v.extra.by }).get('by')).toBe('tag:team');
  });
  it('says when values past the bound are counted under (other)', () => {
    expect(overflowNote(team)).toBeNull();
    expect(overflowNote(null)).toBeNull();
    expect(overflowNote(customer)).toBe('“customer” has more than 100 values: values past the first 100 are counted under “(other)”.');
  });
});

describe('the tag key editor', () => {
  it('adds a key, or says why not', () => {
    expect(addTagKey(['team'], '  project ', 3)).toEqual({ keys: ['team', 'project'] });
    expect(addTagKey(['team'], ' ', 3)).toEqual({ error: 'Type a metadata key, e.g. team.' });
    expect(addTagKey(['team'], 'team', 3)).toEqual({ error: '“team” is already declared.' });
    expect(addTagKey(['a', 'b', 'c'], 'd', 3)).toEqual({ error: 'At most 3 tag keys; remove one first.' });
  });
  it('names the key an API error is about', () => {
    expect(tagErrorIndex('keys[1]: must be 1 to 64 letters')).toBe(1);
    expect(tagErrorIndex('at most 3 keys')).toBeUndefined();
    expect(tagErrorMessage('keys[1]: must be letters, digits, _ . -', ['team', 'bad key'])).toBe('“bad key”: must be letters, digits, _ . -');
    expect(tagErrorMessage('keys[5]: nope', ['team'])).toBe('keys[5]: nope');
    expect(tagErrorMessage('at most 3 keys', ['team'])).toBe('at most 3 keys');
  });
  it('knows when the draft differs from what is saved (order is the slot order)', () => {
    expect(tagKeysChanged(['team'], ['team'])).toBe(false);
    expect(tagKeysChanged(['team'], ['team', 'customer'])).toBe(true);
    expect(tagKeysChanged(['team', 'customer'], ['customer', 'team'])).toBe(true);
    expect(tagKeysChanged([], [])).toBe(false);
  });
});

describe('the FOCUS export', () => {
  it('asks for the range and filters on screen', () => {
    const v = parseView('range=last_30d&model=gpt-4o&feature=&by=tag:team');
    const body = exportBody('focus', 'csv', apiParams('ws_1', v, 'UTC'));
    expect(body).toEqual({ kind: 'focus', format: 'csv', workspace: 'ws_1', from: 'last_30d', model: 'gpt-4o', feature: '' });
    expect(FOCUS_DESCRIPTION).toMatch(/FOCUS 1\.2/);
  });
  it('keeps the events export as it was (meta only when set)', () => {
    const p = apiParams('ws_1', parseView(''), 'UTC');
    expect(exportBody('events', 'csv', p, { meta: 'region:eu' })).toEqual({ kind: 'events', format: 'csv', workspace: 'ws_1', from: 'last_7d', meta: 'region:eu' });
    expect(exportBody('events', 'jsonl', p, { meta: undefined })).toEqual({ kind: 'events', format: 'jsonl', workspace: 'ws_1', from: 'last_7d' });
  });
});
