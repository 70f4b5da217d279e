// Cost-allocation tags: a workspace's declared metadata keys (GET/PUT /v1/workspaces/{id}/tags),
// each a breakdown dimension `tag:<key>`. Pure functions, unit-tested.

import { DIMENSIONS } from './format';

/** One declared key and the values it keeps (the API's TagKeyView). */
export interface TagKeyInfo {
  key: string;
  /** `tag:<key>`, what `by` takes. */
  dimension: string;
  /** When events started being tagged with it (the hour it was declared). */
  since: string;
  /** The values kept so far, at most `max_values`. */
  values: string[];
  max_values: number;
  /** Whether later new values are counted under "(other)". */
  overflowed: boolean;
}

/** GET/PUT /v1/workspaces/{id}/tags */
export interface WorkspaceTags {
  keys: TagKeyInfo[];
  max_keys: number;
  max_values: number;
}

/** A breakdown or series grouped by a tag carries the key it was grouped by (its `by` is the internal slot, `tag1`). */
export type Tagged<T> = T & { tag?: TagKeyInfo | null };

export const TAG_PREFIX = 'tag:';
/** The value later new values of a full key are counted under. */
export const OTHER_VALUE = '(other)';

export function isTagDimension(id: string | null | undefined): id is string {
  return typeof id === 'string' && id.startsWith(TAG_PREFIX) && id.length > TAG_PREFIX.length;
}

/** `tag:team` -> `team`; undefined for a built-in dimension. */
export function tagKeyOf(id: string): string | undefined {
  return isTagDimension(id) ? id.slice(TAG_PREFIX.length) : undefined;
}

export function tagDimension(key: string): string {
  return TAG_PREFIX + key;
}

/**
 * The group-by choices: the built-in dimensions, then each declared tag key labelled by the key.
 * A tag dimension in the URL that is no longer declared stays listed (so the select shows what
 * the page asks for, and the API's error says why it is empty).
 */
export function groupByOptions(tags: TagKeyInfo[] | undefined, current?: string): { id: string; label: string; tag?: boolean }[] {
  const out: { id: string; label: string; tag?: boolean }[] = DIMENSIONS.map((d) => ({ ...d }));
  const seen = new Set<string>();
  for (const t of tags ?? []) {
    const id = t.dimension || tagDimension(t.key);
    if (seen.has(id)) continue;
    seen.add(id);
    out.push({ id, label: t.key, tag: true });
  }
  if (current && isTagDimension(current) && !seen.has(current)) out.push({ id: current, label: tagKeyOf(current)!, tag: true });
  return out;
}

/** The note under a table grouped by a tag whose values overflowed; null otherwise. */
export function overflowNote(tag: Pick<TagKeyInfo, 'key' | 'max_values' | 'overflowed'> | null | undefined): string | null {
  if (!tag?.overflowed) return null;
  return `“${tag.key}” has more than ${tag.max_values} values: values past the first ${tag.max_values} are counted under “${OTHER_VALUE}”.`;
}

/**
 * Adds a key typed in the editor to the draft list, or says why not (the server checks the
 * spelling; this only catches what needs no round trip).
 */
export function addTagKey(keys: string[], typed: string, maxKeys: number): { keys: string[] } | { error: string } {
  const k = typed.trim();
  if (!k) return { error: 'Type a metadata key, e.g. team.' };
  if (keys.includes(k)) return { error: `“${k}” is already declared.` };
  if (keys.length >= maxKeys) return { error: `At most ${maxKeys} tag keys; remove one first.` };
  return { keys: [...keys, k] };
}

/** The index of the key a validation message is about: "keys[1]: ..." -> 1. */
export function tagErrorIndex(message: string): number | undefined {
  const m = /\bkeys\[(\d+)\]/.exec(message);
  return m ? Number(m[1]) : undefined;
}

/** Whether the draft differs from what is saved (order counts: it is the slot order). */
export function tagKeysChanged(saved: string[], draft: string[]): boolean {
  return saved.length !== draft.length || saved.some((k, i) => k !== draft[i]);
}

/** An API validation message about one key, with the key named: "keys[1]: ..." -> "“foo bar”: ...". */
export function tagErrorMessage(message: string, keys: string[]): string {
  const i = tagErrorIndex(message);
  if (i === undefined || keys[i] === undefined) return message;
  return message.replace(/\bkeys\[\d+\]/, `“${keys[i]}”`);
}
