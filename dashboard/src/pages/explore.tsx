// Explore: a breakdown by any dimension, a second dimension as stacked bars or a pivot table,
// a time chart, sortable tables and exports of what is on screen. All state is in the URL.
import { Controls, CoveredNote, useView } from '../analytics';
import { useEffect, useState } from 'preact/hooks';
import { ChartTable, loadUplot, PALETTE, TimeChart } from '../chart';
import type { PageProps } from '../app';
import { describe, get, withQuery, wsPath } from '../lib/api';
import { type Column, download, fileName, toCsv, toJsonl } from '../lib/csv';
import { FOCUS_DESCRIPTION, exportBody, runExport } from '../lib/exports';
import { DIMENSIONS, METRICS, count, dateTime, dimValue, dimensionLabel, dimensionNoun, metricLabel, metricValue, ms, pct, usd } from '../lib/format';
import { type Tagged, type WorkspaceTags, groupByOptions, isTagDimension, overflowNote } from '../lib/tags';
import type { Breakdown, BreakdownRow, Metrics, Timeseries, Workspace } from '../lib/types';
import { type ViewState, apiParams, rangeDays, rangeLabel, withExtra, withFilter } from '../lib/urlstate';
import { AsyncView, type Col, Empty, ErrorBox, Loading, PageHead, Table, toast, useAsync } from '../ui';
import { seriesOf } from './overview';

/** Every metric of a breakdown row, by metric id. */
export function metricOf(r: BreakdownRow, metric: string): number | null {
  const m = r.metrics;
  switch (metric) {
    case 'requests':
      return m.requests;
    case 'errors':
      return m.errors;
    case 'error_rate':
      return m.error_rate;
    case 'cost_usd':
      return m.cost_usd;
    case 'unpriced':
      return m.unpriced;
    case 'input_tokens':
      return m.tokens.input;
    case 'output_tokens':
      return m.tokens.output;
    case 'cached_input_tokens':
      return m.tokens.cached_input;
    case 'cache_write_tokens':
      return m.tokens.cache_write;
    case 'reasoning_tokens':
      return m.tokens.reasoning;
    case 'total_tokens':
      return m.tokens.total;
    case 'latency_p50':
      return m.latency_ms.p50;
    case 'latency_p90':
      return m.latency_ms.p90;
    case 'latency_p95':
      return m.latency_ms.p95;
    case 'latency_p99':
      return m.latency_ms.p99;
  }
  return null;
}

const TABLE_METRICS = ['cost_usd', 'requests', 'errors', 'error_rate', 'input_tokens', 'output_tokens', 'cached_input_tokens', 'reasoning_tokens', 'total_tokens', 'unpriced', 'latency_p50', 'latency_p95', 'latency_p99'];
const ADDITIVE = new Set(['cost_usd', 'requests', 'errors', 'unpriced', 'input_tokens', 'output_tokens', 'cached_input_tokens', 'cache_write_tokens', 'reasoning_tokens', 'total_tokens']);
const PIVOT_ROWS = 10;

export function exportColumns(by: string): Column<BreakdownRow>[] {
  return [{ key: by, label: dimensionLabel(by), value: (r) => r.value }, ...TABLE_METRICS.map((m) => ({ key: m, label: metricLabel(m), value: (r: BreakdownRow) => metricOf(r, m) }))];
}

export default function Explore({ ws }: PageProps) {
  useEffect(() => void loadUplot().catch(() => {}), []);
  const [view, setView] = useView();
  const by = view.extra.by ?? 'model';
  const byTag = isTagDimension(by);
  // A second dimension splits each value of the first by filtering on it: not for a tag (no tag filter).
  const by2 = !byTag && view.extra.by2 && view.extra.by2 !== by ? view.extra.by2 : undefined;
  // The workspace's tag keys are group-by choices too (any member may read them).
  const tags = useAsync((signal) => get<WorkspaceTags>(wsPath(ws.id, 'tags'), { signal }), [ws.id]);
  const options = groupByOptions(tags.data?.keys, by);
  const options2 = groupByOptions(tags.data?.keys, view.extra.by2).filter((d) => d.id !== by);
  const metric = METRICS.some((m) => m.id === view.extra.metric) ? view.extra.metric! : 'cost_usd';
  const mode = view.extra.view === 'pivot' ? 'pivot' : 'stack';
  const sort = TABLE_METRICS.includes(view.extra.sort ?? '') || view.extra.sort === 'value' ? view.extra.sort! : 'cost_usd';
  const desc = view.extra.order !== 'asc';
  const key = `${ws.id}|${ws.timezone}|${JSON.stringify(view.filters)}|${view.range}|${view.from}|${view.to}`;
  const table = useAsync(
    (signal) => get<Tagged<Breakdown>>(withQuery('/v1/stats/breakdown', apiParams(ws.id, view, ws.timezone, { by, sort: sort === 'value' ? undefined : sort, order: sort === 'value' ? undefined : desc ? 'desc' : 'asc', limit: 1000 })), { signal }),
    [key, by, sort === 'value' ? '' : sort, desc],
  );
  const gran = rangeDays(view) <= 2 ? 'hour' : 'day';
  const series = useAsync(
    (signal) => (by2 ? Promise.resolve(null) : get<Timeseries>(withQuery('/v1/stats/timeseries', apiParams(ws.id, view, ws.timezone, { metric, by, granularity: gran, top: 8 })), { signal })),
    [key, by, by2, metric],
  );
  const set = (k: string, v: string | undefined) => setView(withExtra(view, k, v));

  return (
    <div>
      <PageHead title="Explore" sub="Break usage down by any dimension, filter it, and export what you see." />
      <Controls ws={ws} view={view} setView={setView} />
      <section class="controls" aria-label="Breakdown">
        <div class="control-row">
          <label class="inline">
            <span>Break down by</span>
            <select name="by" value={by} onChange={(e) => set('by', (e.target as HTMLSelectElement).value)}>
              <DimensionOptions options={options} />
            </select>
          </label>
          {!byTag && (
            <label class="inline">
              <span>Then by</span>
              <select name="by2" value={by2 ?? ''} onChange={(e) => set('by2', (e.target as HTMLSelectElement).value || undefined)}>
                <option value="">(nothing)</option>
                <DimensionOptions options={options2} />
              </select>
            </label>
          )}
          {by2 && (
            <fieldset class="inline radios">
              <legend>Show as</legend>
              <label>
                <input type="radio" name="mode" checked={mode === 'stack'} onChange={() => set('view', undefined)} /> Stacked bars
              </label>
              <label>
                <input type="radio" name="mode" checked={mode === 'pivot'} onChange={() => set('view', 'pivot')} /> Pivot table
              </label>
            </fieldset>
          )}
          <label class="inline">
            <span>Metric</span>
            <select name="metric" value={metric} onChange={(e) => set('metric', (e.target as HTMLSelectElement).value === 'cost_usd' ? undefined : (e.target as HTMLSelectElement).value)}>
              {METRICS.map((m) => (
                <option key={m.id} value={m.id}>
                  {m.label}
                </option>
              ))}
            </select>
          </label>
        </div>
      </section>

      {by2 ? (
        <AsyncView a={table}>{(t) => <Pivot ws={ws.id} tz={ws.timezone} view={view} t={t} by={by} by2={by2} metric={metric} mode={mode} />}</AsyncView>
      ) : (
        <section class="card" aria-labelledby="ts-h">
          <h2 id="ts-h">
            {metricLabel(metric)} over time by {dimensionNoun(by)}
          </h2>
          <AsyncView a={series}>
            {(t) =>
              t && t.series.length > 0 ? (
                <>
                  <TimeChart buckets={t.buckets} series={seriesOf(t)} stacked={ADDITIVE.has(metric)} format={(n) => metricValue(metric, n)} tz={ws.timezone} title={`${metricLabel(metric)} per ${t.granularity} by ${dimensionLabel(by)}`} />
                  <ChartTable buckets={t.buckets} series={seriesOf(t)} format={(n) => metricValue(metric, n)} tz={ws.timezone} caption={`${metricLabel(metric)} per ${t.granularity} by ${dimensionLabel(by)}`} total={ADDITIVE.has(metric)} />
                </>
              ) : (
                <Empty title="No data in this range" />
              )
            }
          </AsyncView>
        </section>
      )}

      <section class="card" aria-labelledby="tbl-h">
        <div class="card-head">
          <h2 id="tbl-h">By {dimensionNoun(by)}</h2>
          <div class="btn-group">
            {table.data && table.data.rows.length > 0 && (
              <>
                <button type="button" class="btn" onClick={() => download(fileName(['llmtrack', ws.name, 'by', by, rangeLabel(view)], 'csv'), toCsv(exportColumns(by), sortRows(table.data!.rows, sort, desc)), 'text/csv')}>
                  Export CSV
                </button>
                <button type="button" class="btn" onClick={() => download(fileName(['llmtrack', ws.name, 'by', by, rangeLabel(view)], 'jsonl'), toJsonl(exportColumns(by), sortRows(table.data!.rows, sort, desc)), 'application/x-ndjson')}>
                  Export JSON Lines
                </button>
              </>
            )}
            <FocusExport ws={ws} view={view} />
          </div>
        </div>
        <AsyncView a={table}>
          {(t) =>
            t.rows.length === 0 ? (
              <Empty title="No events match">Widen the range or remove a filter.</Empty>
            ) : (
              <>
                <BreakdownTable
                  rows={t.rows}
                  by={by}
                  sort={sort}
                  desc={desc}
                  setSort={(k, d) => setView(withExtra(withExtra(view, 'sort', k === 'cost_usd' ? undefined : k), 'order', d ? undefined : 'asc'))}
                  onPick={byTag ? undefined : (v) => setView(withExtra(withFilter(view, by as never, v), 'by', DIMENSIONS.find((d) => d.id !== by && view.filters[d.id as never] === undefined)?.id))}
                />
                <p class="small muted">
                  {t.total_rows > t.rows.length ? `Showing ${t.rows.length} of ${t.total_rows} rows. ` : `${t.rows.length} rows. `}
                  {byTag ? '' : 'Select a value to filter by it. '}Answered from {t.covered.answered_from}.
                </p>
                {t.tag && <TagNotes tag={t.tag} from={t.covered.from} tz={ws.timezone} />}
                <CoveredNote covered={t.covered} ws={ws} />
              </>
            )
          }
        </AsyncView>
      </section>
    </div>
  );
}

export function sortRows(rows: BreakdownRow[], sort: string, desc: boolean): BreakdownRow[] {
  const f = (r: BreakdownRow) => (sort === 'value' ? r.value : metricOf(r, sort));
  return [...rows].sort((a, b) => {
    const x = f(a);
    const y = f(b);
    if (x === y) return 0;
    if (x === null) return 1;
    if (y === null) return -1;
    return (x < y ? -1 : 1) * (desc ? -1 : 1);
  });
}

/** The provider's cost against LLMtrack's for the same events: "+$0.12 (+3.4%)", or "—". */
export function providerDifference(p: Metrics['provider_reported']): string {
  if (p.events === 0) return '—';
  const sign = p.difference_usd > 0 ? '+' : '';
  const rate = p.difference_rate === null ? '' : ` (${p.difference_rate > 0 ? '+' : ''}${pct(p.difference_rate)})`;
  return `${sign}${usd(p.difference_usd)}${rate}`;
}

/** The built-in dimensions, then the workspace's tag keys in their own group. */
function DimensionOptions({ options }: { options: { id: string; label: string; tag?: boolean }[] }) {
  const opt = (d: { id: string; label: string }) => (
    <option key={d.id} value={d.id}>
      {d.label}
    </option>
  );
  const tags = options.filter((d) => d.tag);
  return (
    <>
      {options.filter((d) => !d.tag).map(opt)}
      {tags.length > 0 && <optgroup label="Cost allocation tags">{tags.map(opt)}</optgroup>}
    </>
  );
}

/** Under a table grouped by a tag: since when events carry it, and the "(other)" note when its values overflowed. */
function TagNotes({ tag, from, tz }: { tag: NonNullable<Tagged<Breakdown>['tag']>; from: string; tz: string }) {
  const note = overflowNote(tag);
  const late = tag.since && new Date(tag.since).getTime() > new Date(from).getTime();
  return (
    <>
      {late && (
        <p class="small muted" data-tag-since>
          Events are tagged with “{tag.key}” from {dateTime(tag.since, tz)}, when the key was declared; earlier events are not in this table.
        </p>
      )}
      {note && (
        <p class="small warn" data-tag-overflow>
          <span aria-hidden="true">⚠ </span>
          {note}
        </p>
      )}
    </>
  );
}

/** The FinOps FOCUS export of the range and filters on screen (every dimension, tags included). */
function FocusExport({ ws, view }: { ws: Workspace; view: ViewState }) {
  const [busy, setBusy] = useState(false);
  const run = async () => {
    setBusy(true);
    try {
      const body = exportBody('focus', 'csv', apiParams(ws.id, view, ws.timezone));
      await runExport(ws.id, body, fileName(['llmtrack', ws.name, 'focus', rangeLabel(view)], 'csv'), () => toast('A large export is being prepared; the download starts when it is ready.'));
    } catch (e) {
      toast(describe(e), 'error');
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" class="btn" disabled={busy} title={FOCUS_DESCRIPTION} aria-describedby="focus-hint" onClick={() => void run()}>
        {busy ? 'Exporting…' : 'FOCUS (CSV)'}
      </button>
      <span id="focus-hint" class="sr-only">
        {FOCUS_DESCRIPTION}, for this range and these filters.
      </span>
    </>
  );
}

function BreakdownTable({ rows, by, sort, desc, setSort, onPick }: { rows: BreakdownRow[]; by: string; sort: string; desc: boolean; setSort: (k: string, desc: boolean) => void; onPick?: (v: string) => void }) {
  const cols: Col<BreakdownRow>[] = [
    { key: 'value', label: dimensionLabel(by), render: (r) => dimValue(r.value), sort: (r) => r.value },
    { key: 'cost_usd', label: 'Cost', render: (r) => usd(r.metrics.cost_usd), sort: (r) => r.metrics.cost_usd, numeric: true },
    { key: 'requests', label: 'Requests', render: (r) => count(r.metrics.requests), sort: (r) => r.metrics.requests, numeric: true },
    { key: 'errors', label: 'Errors', render: (r) => count(r.metrics.errors), sort: (r) => r.metrics.errors, numeric: true },
    { key: 'error_rate', label: 'Error rate', render: (r) => pct(r.metrics.error_rate), sort: (r) => r.metrics.error_rate, numeric: true },
    { key: 'input_tokens', label: 'Input tokens', render: (r) => count(r.metrics.tokens.input), sort: (r) => r.metrics.tokens.input, numeric: true },
    { key: 'output_tokens', label: 'Output tokens', render: (r) => count(r.metrics.tokens.output), sort: (r) => r.metrics.tokens.output, numeric: true },
    { key: 'cached_input_tokens', label: 'Cached input', render: (r) => count(r.metrics.tokens.cached_input), sort: (r) => r.metrics.tokens.cached_input, numeric: true },
    { key: 'unpriced', label: 'Unpriced', render: (r) => count(r.metrics.unpriced), sort: (r) => r.metrics.unpriced, numeric: true },
    { key: 'latency_p50', label: 'p50', render: (r) => ms(r.metrics.latency_ms.p50), sort: (r) => r.metrics.latency_ms.p50, numeric: true },
    { key: 'latency_p95', label: 'p95', render: (r) => ms(r.metrics.latency_ms.p95), sort: (r) => r.metrics.latency_ms.p95, numeric: true },
  ];
  // Shown when some events carry the provider's own cost: how far it is from LLMtrack's.
  if (rows.some((r) => r.metrics.provider_reported.events > 0)) {
    cols.splice(2, 0, {
      key: 'provider_difference',
      label: 'Provider vs computed',
      render: (r) => providerDifference(r.metrics.provider_reported),
      sort: (r) => (r.metrics.provider_reported.events > 0 ? r.metrics.provider_reported.difference_usd : null),
      numeric: true,
    });
  }
  return (
    <Table
      columns={cols}
      rows={rows}
      caption={`Usage by ${dimensionNoun(by)}`}
      captionHidden
      rowKey={(r) => r.value}
      sortState={{ key: sort, desc, set: setSort }}
      onRowClick={onPick && ((r) => onPick(r.value))}
      rowLabel={(r) => `Filter by ${dimensionLabel(by)} ${dimValue(r.value)}`}
    />
  );
}

interface PivotData {
  rows: string[];
  cols: string[];
  cells: Map<string, Map<string, number | null>>;
  failed: { value: string; error: unknown }[];
}

function Pivot({ ws, tz, view, t, by, by2, metric, mode }: { ws: string; tz: string; view: ViewState; t: Breakdown; by: string; by2: string; metric: string; mode: string }) {
  const top = t.rows.slice(0, PIVOT_ROWS).map((r) => r.value);
  const key = `${ws}|${JSON.stringify(view)}|${by}|${by2}|${metric}|${top.join(',')}`;
  const data = useAsync(async (signal) => {
    const results = await Promise.allSettled(top.map((v) => get<Breakdown>(withQuery('/v1/stats/breakdown', apiParams(ws, withFilter(view, by as never, v), tz, { by: by2, sort: ADDITIVE.has(metric) ? metric : 'requests', limit: 50 })), { signal })));
    const cells = new Map<string, Map<string, number | null>>();
    const totals = new Map<string, number>();
    const failed: PivotData['failed'] = [];
    results.forEach((r, i) => {
      const m = new Map<string, number | null>();
      if (r.status === 'fulfilled') {
        for (const row of r.value.rows) {
          const v = metricOf(row, metric);
          m.set(row.value, v);
          totals.set(row.value, (totals.get(row.value) ?? 0) + (v ?? 0));
        }
      } else failed.push({ value: top[i], error: r.reason });
      cells.set(top[i], m);
    });
    const cols = [...totals.entries()].sort((a, b) => b[1] - a[1]).map((e) => e[0]).slice(0, 12);
    return { rows: top, cols, cells, failed } as PivotData;
  }, [key]);
  if (top.length === 0) return <Empty title="No events match">Widen the range or remove a filter.</Empty>;
  return (
    <section class="card" aria-labelledby="pv-h">
      <div class="card-head">
        <h2 id="pv-h">
          {metricLabel(metric)} by {dimensionNoun(by)} and {dimensionNoun(by2)}
        </h2>
        {data.data && (
          <div class="btn-group">
            <button type="button" class="btn" onClick={() => download(fileName(['llmtrack', 'pivot', by, by2, metric, rangeLabel(view)], 'csv'), toCsv(pivotColumns(data.data!, by, by2), data.data!.rows), 'text/csv')}>
              Export CSV
            </button>
            <button type="button" class="btn" onClick={() => download(fileName(['llmtrack', 'pivot', by, by2, metric, rangeLabel(view)], 'jsonl'), toJsonl(pivotColumns(data.data!, by, by2), data.data!.rows), 'application/x-ndjson')}>
              Export JSON Lines
            </button>
          </div>
        )}
      </div>
      {data.error ? (
        <ErrorBox error={data.error} retry={data.reload} />
      ) : !data.data ? (
        <Loading />
      ) : (
        <>
          {data.data.failed.length > 0 && (
            <p class="warn" role="alert">
              <span aria-hidden="true">⚠ </span>
              {data.data.failed.length} row(s) could not be split: {String((data.data.failed[0].error as Error)?.message ?? '')}
            </p>
          )}
          {mode === 'stack' && <StackedBars d={data.data} metric={metric} />}
          <PivotTable d={data.data} by={by} by2={by2} metric={metric} hidden={mode === 'stack'} />
          {t.rows.length > PIVOT_ROWS && <p class="small muted">The {PIVOT_ROWS} largest {dimensionNoun(by)} values of {t.rows.length}.</p>}
        </>
      )}
    </section>
  );
}

function pivotColumns(d: PivotData, by: string, by2: string): Column<string>[] {
  return [{ key: by, label: dimensionLabel(by), value: (r) => r }, ...d.cols.map((c) => ({ key: `${by2}:${c}`, label: `${dimensionLabel(by2)}: ${dimValue(c)}`, value: (r: string) => d.cells.get(r)?.get(c) ?? null }))];
}

function StackedBars({ d, metric }: { d: PivotData; metric: string }) {
  const totals = d.rows.map((r) => d.cols.reduce((a, c) => a + (d.cells.get(r)?.get(c) ?? 0), 0));
  const max = Math.max(...totals, 0) || 1;
  return (
    <div class="stacked" aria-hidden="true">
      <ul class="legend">
        {d.cols.map((c, i) => (
          <li key={c}>
            <span class="sw" ref={(el) => {
              if (el) el.style.background = PALETTE[i % PALETTE.length];
            }} />
            {dimValue(c)}
          </li>
        ))}
      </ul>
      {d.rows.map((r, ri) => (
        <div class="bar-row" key={r}>
          <span class="bar-label" title={dimValue(r)}>
            {dimValue(r)}
          </span>
          <span class="bar-track">
            {d.cols.map((c, i) => {
              const v = d.cells.get(r)?.get(c) ?? 0;
              if (!v) return null;
              return (
                <span
                  key={c}
                  class="bar-seg"
                  title={`${dimValue(r)} · ${dimValue(c)}: ${metricValue(metric, v)}`}
                  ref={(el) => {
                    if (el) {
                      el.style.width = `${(v / max) * 100}%`;
                      el.style.background = PALETTE[i % PALETTE.length];
                    }
                  }}
                />
              );
            })}
          </span>
          <span class="bar-total">{metricValue(metric, totals[ri])}</span>
        </div>
      ))}
    </div>
  );
}

function PivotTable({ d, by, by2, metric, hidden }: { d: PivotData; by: string; by2: string; metric: string; hidden: boolean }) {
  const body = (
    <div class="table-wrap">
      <table class="pivot">
        <caption>
          {metricLabel(metric)}: rows by {dimensionNoun(by)}, columns by {dimensionNoun(by2)}
        </caption>
        <thead>
          <tr>
            <th scope="col">{dimensionLabel(by)}</th>
            {d.cols.map((c) => (
              <th key={c} scope="col" class="num">
                {dimValue(c)}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {d.rows.map((r) => (
            <tr key={r}>
              <th scope="row">{dimValue(r)}</th>
              {d.cols.map((c) => {
                const v = d.cells.get(r)?.get(c);
                return (
                  <td key={c} class="num">
                    {v === undefined || v === null ? '—' : metricValue(metric, v)}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
  if (!hidden) return body;
  return (
    <details class="chart-table">
      <summary>Show the figures as a table</summary>
      {body}
    </details>
  );
}
