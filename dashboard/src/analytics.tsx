// The shared analytics controls: time range (presets and custom dates in the workspace's
// timezone) and the global filter bar. Their state is the URL's query string.
import { useState } from 'preact/hooks';
import { get, withQuery } from './lib/api';
import { dimValue, dimensionLabel } from './lib/format';
import { search, setSearch } from './lib/router';
import { localDate, offsetLabel } from './lib/time';
import type { Breakdown, Covered, Workspace } from './lib/types';
import { FILTER_KEYS, PRESETS, type FilterKey, type ViewState, apiParams, parseView, serializeView, withFilter } from './lib/urlstate';

export function useView(): [ViewState, (v: ViewState) => void] {
  const view = parseView(search.value);
  return [view, (v: ViewState) => setSearch(serializeView(v))];
}

export function TzNote({ ws }: { ws: Workspace }) {
  return (
    <span class="tz-note">
      Times in <strong>{ws.timezone}</strong> ({offsetLabel(ws.timezone)})
    </span>
  );
}

export function Controls({ ws, view, setView, noFilters }: { ws: Workspace; view: ViewState; setView: (v: ViewState) => void; noFilters?: boolean }) {
  const today = localDate(Date.now(), ws.timezone);
  const [adding, setAdding] = useState<FilterKey>('model');
  const [value, setValue] = useState('');
  const [options, setOptions] = useState<Record<string, string[]>>({});
  const loadOptions = async (dim: FilterKey) => {
    if (dim === 'status' || options[dim]) return;
    try {
      const q = apiParams(ws.id, withFilter(view, dim, undefined), ws.timezone, { by: dim, limit: 200 });
      const b = await get<Breakdown>(withQuery('/v1/stats/breakdown', q));
      setOptions((o) => ({ ...o, [dim]: b.rows.map((r) => r.value) }));
    } catch {
      /* suggestions are optional */
    }
  };
  const apply = (e: Event) => {
    e.preventDefault();
    const v = value === '(none)' ? '' : value.trim();
    if (adding !== 'status' && v === '' && value !== '(none)') return;
    setView(withFilter(view, adding, adding === 'status' ? value || 'error' : v));
    setValue('');
  };
  const active = FILTER_KEYS.filter((k) => view.filters[k] !== undefined);
  return (
    <section class="controls" aria-label="Time range and filters">
      <div class="control-row">
        <label class="inline">
          <span>Range</span>
          <select
            value={view.range}
            onChange={(e) => {
              const v = (e.target as HTMLSelectElement).value;
              if (v === 'custom') {
                const from = localDate(Date.now() - 6 * 86400000, ws.timezone);
                setView({ ...view, range: 'custom', from, to: today });
              } else setView({ ...view, range: v as ViewState['range'], from: undefined, to: undefined });
            }}
          >
            {PRESETS.map((p) => (
              <option key={p.id} value={p.id}>
                {p.label}
              </option>
            ))}
            <option value="custom">Custom dates…</option>
          </select>
        </label>
        {view.range === 'custom' && (
          <>
            <label class="inline">
              <span>From</span>
              <input type="date" value={view.from} max={today} onChange={(e) => {
                const v = (e.target as HTMLInputElement).value;
                if (v) setView({ ...view, from: v, to: view.to && view.to < v ? v : view.to });
              }} />
            </label>
            <label class="inline">
              <span>To (inclusive)</span>
              <input type="date" value={view.to} min={view.from} max={today} onChange={(e) => {
                const v = (e.target as HTMLInputElement).value;
                if (v) setView({ ...view, to: v });
              }} />
            </label>
          </>
        )}
        <TzNote ws={ws} />
      </div>
      {!noFilters && (
        <div class="control-row">
          <form class="add-filter" onSubmit={apply}>
            <label class="inline">
              <span>Filter</span>
              <select value={adding} onChange={(e) => {
                const k = (e.target as HTMLSelectElement).value as FilterKey;
                setAdding(k);
                setValue('');
              }}>
                {FILTER_KEYS.map((k) => (
                  <option key={k} value={k}>
                    {dimensionLabel(k)}
                  </option>
                ))}
              </select>
            </label>
            {adding === 'status' ? (
              <label class="inline">
                <span class="sr-only">Status</span>
                <select value={value || 'error'} onChange={(e) => setValue((e.target as HTMLSelectElement).value)}>
                  <option value="error">error</option>
                  <option value="success">success</option>
                </select>
              </label>
            ) : (
              <label class="inline">
                <span class="sr-only">{dimensionLabel(adding)} value</span>
                <input
                  list={`opts-${adding}`}
                  value={value}
                  placeholder={`${dimensionLabel(adding)}…`}
                  onFocus={() => void loadOptions(adding)}
                  onInput={(e) => setValue((e.target as HTMLInputElement).value)}
                />
                <datalist id={`opts-${adding}`}>
                  {(options[adding] ?? []).map((o) => (
                    <option key={o} value={o === '' ? '(none)' : o} />
                  ))}
                </datalist>
              </label>
            )}
            <button type="submit" class="btn">
              Add filter
            </button>
          </form>
          {active.length > 0 && (
            <ul class="chips" aria-label="Active filters">
              {active.map((k) => (
                <li key={k} class="chip">
                  <span>
                    {dimensionLabel(k)} = <strong>{dimValue(view.filters[k])}</strong>
                  </span>
                  <button type="button" class="chip-x" aria-label={`Remove filter ${dimensionLabel(k)} = ${dimValue(view.filters[k])}`} onClick={() => setView(withFilter(view, k, undefined))}>
                    ✕
                  </button>
                </li>
              ))}
              <li>
                <button type="button" class="btn ghost small" onClick={() => setView({ ...view, filters: {} })}>
                  Clear filters
                </button>
              </li>
            </ul>
          )}
        </div>
      )}
    </section>
  );
}

/** What range the answer covers, and whether the plan's history window cut it. */
export function CoveredNote({ covered, ws }: { covered?: Covered; ws: Workspace }) {
  if (!covered) return null;
  const f = new Intl.DateTimeFormat('en-US', { timeZone: ws.timezone, month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  return (
    <p class="covered">
      Showing {f.format(new Date(covered.from))} – {f.format(new Date(covered.to))} ({ws.timezone}).
      {covered.clamped && (
        <strong class="warn">
          {' '}
          <span aria-hidden="true">⚠ </span>Your plan shows {covered.history_days} days of history; older data is not shown.{' '}
          <a href={`/workspaces/${ws.id}/billing`}>Upgrade</a>
        </strong>
      )}
    </p>
  );
}
