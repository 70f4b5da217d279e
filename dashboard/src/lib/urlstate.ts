// The view state of the analytics pages lives in the URL's query string, so a view can be
// bookmarked and shared. Pure functions: parse, serialize, and turn into API parameters.

import { nextDay, parseDate, startOfLocalDay } from './time';

export const FILTER_KEYS = ['provider', 'model', 'model_sent', 'feature', 'source', 'user', 'status'] as const;
export type FilterKey = (typeof FILTER_KEYS)[number];

export const PRESETS = [
  { id: 'last_24h', label: 'Last 24 hours' },
  { id: 'last_7d', label: 'Last 7 days' },
  { id: 'last_30d', label: 'Last 30 days' },
  { id: 'this_month', label: 'This month' },
  { id: 'last_month', label: 'Last month' },
] as const;
export type Preset = (typeof PRESETS)[number]['id'];

export const DEFAULT_RANGE: Preset = 'last_7d';

export interface ViewState {
  /** A preset, or 'custom' with `from` and `to` (local dates, inclusive, in the workspace timezone). */
  range: Preset | 'custom';
  from?: string;
  to?: string;
  /** Filters; a key present with '' selects events sent without that dimension. */
  filters: Partial<Record<FilterKey, string>>;
  /** Page-specific settings (by, by2, metric, view, sort, order, ...), as strings. */
  extra: Record<string, string>;
}

const EXTRA_KEYS = ['by', 'by2', 'metric', 'view', 'sort', 'order', 'stack', 'gran', 'meta', 'tab'];

export function isPreset(s: string | null): s is Preset {
  return PRESETS.some((p) => p.id === s);
}

export function parseView(search: string): ViewState {
  const q = new URLSearchParams(search.startsWith('?') ? search.slice(1) : search);
  const state: ViewState = { range: DEFAULT_RANGE, filters: {}, extra: {} };
  const range = q.get('range');
  const from = q.get('from');
  const to = q.get('to');
  if (from && parseDate(from)) {
    state.range = 'custom';
    state.from = from;
    state.to = to && parseDate(to) && to >= from ? to : from;
  } else if (isPreset(range)) {
    state.range = range;
  }
  for (const k of FILTER_KEYS) {
    const v = q.get(k);
    if (v !== null) {
      if (k === 'status' && v !== 'success' && v !== 'error' && v !== '') continue;
      state.filters[k] = v;
    }
  }
  for (const k of EXTRA_KEYS) {
    const v = q.get(k);
    if (v !== null && v !== '') state.extra[k] = v;
  }
  return state;
}

/** A query string (without '?') in a stable order; defaults are left out. */
export function serializeView(state: ViewState): string {
  const q = new URLSearchParams();
  if (state.range === 'custom' && state.from) {
    q.set('from', state.from);
    q.set('to', state.to ?? state.from);
  } else if (state.range !== DEFAULT_RANGE) {
    q.set('range', state.range);
  }
  for (const k of FILTER_KEYS) {
    const v = state.filters[k];
    if (v !== undefined) q.set(k, v);
  }
  for (const k of EXTRA_KEYS) {
    const v = state.extra[k];
    if (v !== undefined && v !== '') q.set(k, v);
  }
  return q.toString();
}

/** The API's `from`/`to` for the state, custom dates resolved in the workspace timezone. */
export function rangeParams(state: ViewState, tz: string): { from: string; to?: string } {
  if (state.range === 'custom' && state.from) {
    const from = startOfLocalDay(state.from, tz);
    const to = startOfLocalDay(nextDay(state.to ?? state.from), tz);
    if (from && to) return { from, to };
  }
  return { from: state.range === 'custom' ? DEFAULT_RANGE : state.range };
}

/** Filters as API parameters (the empty value kept: it means "sent without one"). */
export function filterParams(state: ViewState): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of FILTER_KEYS) {
    const v = state.filters[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/** Query parameters for an analytics call: workspace, range, filters and `extra`. */
export function apiParams(ws: string, state: ViewState, tz: string, extra: Record<string, string | number | undefined> = {}): URLSearchParams {
  const q = new URLSearchParams();
  q.set('workspace', ws);
  const r = rangeParams(state, tz);
  q.set('from', r.from);
  if (r.to) q.set('to', r.to);
  for (const [k, v] of Object.entries(filterParams(state))) q.set(k, v);
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) q.set(k, String(v));
  return q;
}

/** A human label for the range: "Last 7 days" or "2026-11-01 – 2026-11-07". */
export function rangeLabel(state: ViewState): string {
  if (state.range === 'custom') return `${state.from} – ${state.to ?? state.from}`;
  return PRESETS.find((p) => p.id === state.range)?.label ?? state.range;
}

/** How many days a range spans (approximately for presets), to pick a granularity. */
export function rangeDays(state: ViewState): number {
  if (state.range === 'custom' && state.from) {
    const a = parseDate(state.from)!;
    const b = parseDate(state.to ?? state.from)!;
    return Math.round((Date.UTC(b.y, b.m - 1, b.d) - Date.UTC(a.y, a.m - 1, a.d)) / 86400000) + 1;
  }
  switch (state.range) {
    case 'last_24h':
      return 1;
    case 'last_7d':
      return 7;
    default:
      return 31;
  }
}

/** Changes one part of the state, returning a new state. */
export function withFilter(state: ViewState, k: FilterKey, v: string | undefined): ViewState {
  const filters = { ...state.filters };
  if (v === undefined) delete filters[k];
  else filters[k] = v;
  return { ...state, filters };
}

export function withExtra(state: ViewState, k: string, v: string | undefined): ViewState {
  const extra = { ...state.extra };
  if (v === undefined || v === '') delete extra[k];
  else extra[k] = v;
  return { ...state, extra };
}

/** The part of the state every analytics page shares (range and filters), as a query string. */
export function sharedQuery(state: ViewState): string {
  return serializeView({ ...state, extra: {} });
}
