// The request log: raw events newest first, filtered, paged by cursor, with a detail drawer.
import { useEffect, useState } from 'preact/hooks';
import { Controls, useView } from '../analytics';
import type { PageProps } from '../app';
import { ApiError, describe, get, withQuery } from '../lib/api';
import { FOCUS_DESCRIPTION, exportBody, runExport } from '../lib/exports';
import { type Column, download, fileName, toCsv, toJsonl } from '../lib/csv';
import { count, dateTime, dateTimeSeconds, dimValue, ms, usd } from '../lib/format';
import type { EventPage, LoggedEvent, Workspace } from '../lib/types';
import { type ViewState, apiParams, rangeLabel, withExtra } from '../lib/urlstate';
import { Badge, Empty, ErrorBox, Loading, Modal, PageHead, toast, useAsync } from '../ui';

const PAGE = 50;

export const EVENT_COLUMNS: Column<LoggedEvent>[] = [
  { key: 'id', label: 'id', value: (e) => e.id },
  { key: 'timestamp', label: 'timestamp', value: (e) => e.timestamp },
  { key: 'provider', label: 'provider', value: (e) => e.provider },
  { key: 'model', label: 'model', value: (e) => e.model },
  { key: 'feature', label: 'feature', value: (e) => e.feature },
  { key: 'user_id', label: 'user_id', value: (e) => e.user_id },
  { key: 'source', label: 'source', value: (e) => e.source },
  { key: 'status', label: 'status', value: (e) => e.status },
  { key: 'error_type', label: 'error_type', value: (e) => e.error_type },
  { key: 'input_tokens', label: 'input_tokens', value: (e) => e.input_tokens },
  { key: 'output_tokens', label: 'output_tokens', value: (e) => e.output_tokens },
  { key: 'cached_input_tokens', label: 'cached_input_tokens', value: (e) => e.cached_input_tokens },
  { key: 'cache_write_tokens', label: 'cache_write_tokens', value: (e) => e.cache_write_tokens },
  { key: 'reasoning_tokens', label: 'reasoning_tokens', value: (e) => e.reasoning_tokens },
  { key: 'cost_usd', label: 'cost_usd', value: (e) => e.cost_usd },
  { key: 'latency_ms', label: 'latency_ms', value: (e) => e.latency_ms },
  { key: 'metadata', label: 'metadata', value: (e) => JSON.stringify(e.metadata ?? {}) },
];

export default function Requests({ ws }: PageProps) {
  const [view, setView] = useView();
  return (
    <div>
      <PageHead title="Requests" sub="Every event, newest first, within your plan's history window." />
      <Controls ws={ws} view={view} setView={setView} />
      <MetaFilter view={view} setView={setView} />
      <RequestLog ws={ws} view={view} />
    </div>
  );
}

function MetaFilter({ view, setView }: { view: ViewState; setView: (v: ViewState) => void }) {
  const [v, setV] = useState(view.extra.meta ?? '');
  useEffect(() => setV(view.extra.meta ?? ''), [view.extra.meta]);
  return (
    <form
      class="controls control-row"
      onSubmit={(e) => {
        e.preventDefault();
        setView(withExtra(view, 'meta', v.trim() || undefined));
      }}
    >
      <label class="inline">
        <span>Metadata</span>
        <input value={v} placeholder="key:value" onInput={(e) => setV((e.target as HTMLInputElement).value)} aria-describedby="meta-hint" />
      </label>
      <button type="submit" class="btn">
        Apply
      </button>
      <small id="meta-hint" class="hint">
        Events whose metadata has this key with this value (compared as text).
      </small>
    </form>
  );
}

export function RequestLog({ ws, view, title = 'Request log' }: { ws: Workspace; view: ViewState; title?: string }) {
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [open, setOpen] = useState<LoggedEvent | null>(null);
  const [exporting, setExporting] = useState<'events' | 'focus' | null>(null);
  const cursor = cursors[cursors.length - 1];
  const key = `${ws.id}|${ws.timezone}|${JSON.stringify(view.filters)}|${view.range}|${view.from}|${view.to}|${view.extra.meta ?? ''}`;
  useEffect(() => setCursors([null]), [key]);
  const page = useAsync(
    (signal) => get<EventPage>(withQuery('/v1/events', apiParams(ws.id, view, ws.timezone, { limit: PAGE, cursor: cursor ?? undefined, meta: view.extra.meta })), { signal }),
    [key, cursor],
  );
  const params = apiParams(ws.id, view, ws.timezone);
  const exportAll = async (kind: 'events' | 'focus', format: 'csv' | 'jsonl') => {
    setExporting(kind);
    try {
      const body = exportBody(kind, format, params, kind === 'events' ? { meta: view.extra.meta } : {});
      const name = fileName(['llmtrack', ws.name, kind, rangeLabel(view)], format);
      await runExport(ws.id, body, name, () => toast('A large export is being prepared; the download starts when it is ready.'));
    } catch (e) {
      toast(describe(e), 'error');
    } finally {
      setExporting(null);
    }
  };
  const events = page.data?.events ?? [];
  return (
    <section class="card" aria-labelledby="log-h">
      <div class="card-head">
        <h2 id="log-h">{title}</h2>
        <div class="btn-group">
          {events.length > 0 && (
            <>
              <button type="button" class="btn" onClick={() => download(fileName(['llmtrack', ws.name, 'requests-page', String(cursors.length)], 'csv'), toCsv(EVENT_COLUMNS, events), 'text/csv')}>
                Export this page (CSV)
              </button>
              <button type="button" class="btn" onClick={() => download(fileName(['llmtrack', ws.name, 'requests-page', String(cursors.length)], 'jsonl'), toJsonl(EVENT_COLUMNS, events), 'application/x-ndjson')}>
                This page (JSON Lines)
              </button>
            </>
          )}
          <button type="button" class="btn" disabled={exporting !== null} onClick={() => void exportAll('events', 'csv')}>
            {exporting === 'events' ? 'Exporting…' : 'Export all matching (CSV)'}
          </button>
          <button type="button" class="btn" disabled={exporting !== null} title={FOCUS_DESCRIPTION} aria-describedby="focus-hint-log" onClick={() => void exportAll('focus', 'csv')}>
            {exporting === 'focus' ? 'Exporting…' : 'FOCUS (CSV)'}
          </button>
          <span id="focus-hint-log" class="sr-only">
            {FOCUS_DESCRIPTION}, for this range and these filters.
          </span>
        </div>
      </div>
      {page.error ? (
        <ErrorBox error={page.error} retry={page.reload} title={page.error instanceof ApiError && page.error.code === 'invalid_cursor' ? 'This page expired' : undefined} />
      ) : !page.data ? (
        <Loading label="Loading requests…" />
      ) : events.length === 0 && !page.data.next_cursor ? (
        <Empty title={cursors.length > 1 ? 'No more requests' : 'No requests match'}>Widen the range or remove a filter. Requests older than your plan's history window are not kept.</Empty>
      ) : (
        <>
          <div class="table-wrap">
            <table class="log">
              <caption class="sr-only">Requests, newest first. Select a time to see the details.</caption>
              <thead>
                <tr>
                  <th scope="col">Time ({ws.timezone})</th>
                  <th scope="col">Model</th>
                  <th scope="col">Feature</th>
                  <th scope="col">End-user</th>
                  <th scope="col">Source</th>
                  <th scope="col">Status</th>
                  <th scope="col" class="num">Tokens in / out</th>
                  <th scope="col" class="num">Cost</th>
                  <th scope="col" class="num">Latency</th>
                </tr>
              </thead>
              <tbody>
                {events.map((e) => (
                  <tr key={e.id + e.timestamp} data-event={e.id}>
                    <td>
                      <button type="button" class="linkish" onClick={() => setOpen(e)} aria-label={`Details of the request at ${dateTimeSeconds(e.timestamp, ws.timezone)}`}>
                        {dateTimeSeconds(e.timestamp, ws.timezone)}
                      </button>
                    </td>
                    <td>
                      <span class="muted small">{e.provider}/</span>
                      {e.model}
                    </td>
                    <td>{dimValue(e.feature)}</td>
                    <td>{dimValue(e.user_id)}</td>
                    <td>{e.source}</td>
                    <td>
                      <Status e={e} />
                    </td>
                    <td class="num">
                      {count(e.input_tokens)} / {count(e.output_tokens)}
                    </td>
                    <td class="num" data-cost={e.cost_usd ?? ''}>
                      {e.cost_usd === null ? <Badge kind="warn">unpriced</Badge> : usd(e.cost_usd)}
                    </td>
                    <td class="num">{ms(e.latency_ms)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {events.length < PAGE && page.data.next_cursor && <p class="small muted">Few events matched among those examined; continue to look further back.</p>}
          <nav class="pager" aria-label="Pages of requests">
            <button type="button" class="btn" disabled={cursors.length === 1} onClick={() => setCursors(cursors.slice(0, -1))}>
              ← Newer
            </button>
            <span>Page {cursors.length}</span>
            <button type="button" class="btn" disabled={!page.data.next_cursor} onClick={() => setCursors([...cursors, page.data!.next_cursor])}>
              Older →
            </button>
          </nav>
        </>
      )}
      {open && <Drawer e={open} tz={ws.timezone} onClose={() => setOpen(null)} />}
    </section>
  );
}

function Status({ e }: { e: LoggedEvent }) {
  return e.status === 'error' ? (
    <Badge kind="bad">
      <span aria-hidden="true">✕ </span>error{e.error_type ? `: ${e.error_type}` : ''}
    </Badge>
  ) : (
    <Badge kind="good">
      <span aria-hidden="true">✓ </span>success
    </Badge>
  );
}

function Drawer({ e, tz, onClose }: { e: LoggedEvent; tz: string; onClose: () => void }) {
  const meta = Object.entries(e.metadata ?? {});
  const known = new Set(['id', 'timestamp', 'provider', 'model', 'feature', 'user_id', 'source', 'status', 'error_type', 'input_tokens', 'output_tokens', 'cached_input_tokens', 'cache_write_tokens', 'reasoning_tokens', 'cost_usd', 'latency_ms', 'metadata', 'redacted', 'cost_source', 'price']);
  const other = Object.entries(e).filter(([k]) => !known.has(k));
  const uncachedInput = Math.max(0, e.input_tokens - e.cached_input_tokens - e.cache_write_tokens);
  return (
    <Modal title="Request details" onClose={onClose} wide>
      <div class="drawer">
        <dl class="kv">
          <dt>Time</dt>
          <dd>
            {dateTime(e.timestamp, tz)} ({tz}) · <code>{e.timestamp}</code>
          </dd>
          <dt>Event id</dt>
          <dd>
            <code>{e.id}</code>
          </dd>
          <dt>Provider / model</dt>
          <dd>
            {e.provider} / {e.model}
          </dd>
          <dt>Feature</dt>
          <dd>{dimValue(e.feature)}</dd>
          <dt>End-user</dt>
          <dd>{dimValue(e.user_id)}</dd>
          <dt>Source (key label)</dt>
          <dd>{e.source}</dd>
          <dt>Status</dt>
          <dd>
            <Status e={e} />
          </dd>
          <dt>Latency</dt>
          <dd>{ms(e.latency_ms)}</dd>
          <dt>Cost</dt>
          <dd>{e.cost_usd === null ? 'Unpriced: the model has no known price and no cost was sent (never counted as $0).' : `${usd(e.cost_usd)} (${e.cost_usd} USD)`}</dd>
          <dt>Price applied</dt>
          <dd>
            {e.cost_source || e.price ? (
              <PriceApplied e={e} />
            ) : e.cost_usd === null ? (
              <span class="muted">None: no price is known for this model.</span>
            ) : (
              <span class="muted">Not recorded for this event (stored before prices were kept per event).</span>
            )}
          </dd>
        </dl>
        <h3>Tokens by kind</h3>
        <table class="compact">
          <caption class="sr-only">Tokens by kind</caption>
          <tbody>
            <tr><th scope="row">Input (all)</th><td class="num">{count(e.input_tokens)}</td></tr>
            <tr><th scope="row">· uncached</th><td class="num">{count(uncachedInput)}</td></tr>
            <tr><th scope="row">· cached read</th><td class="num">{count(e.cached_input_tokens)}</td></tr>
            <tr><th scope="row">· cache write</th><td class="num">{count(e.cache_write_tokens)}</td></tr>
            <tr><th scope="row">Output (all)</th><td class="num">{count(e.output_tokens)}</td></tr>
            <tr><th scope="row">· reasoning</th><td class="num">{count(e.reasoning_tokens)}</td></tr>
          </tbody>
        </table>
        <h3>Metadata as stored</h3>
        {meta.length === 0 ? <p class="muted">No metadata.</p> : <pre class="code">{JSON.stringify(e.metadata, null, 2)}</pre>}
        <h3>Redactions</h3>
        {Array.isArray(e.redacted) ? (
          e.redacted.length === 0 ? (
            <p>Nothing was redacted.</p>
          ) : (
            <ul>
              {e.redacted.map((r) => (
                <li key={r.field}>
                  <code>{r.field}</code> was not stored: {r.reason}
                </li>
              ))}
            </ul>
          )
        ) : (
          <p class="muted">Not recorded for this event. Values that look like secrets or card numbers are dropped at ingest and listed here.</p>
        )}
        {other.length > 0 && (
          <>
            <h3>Other fields</h3>
            <pre class="code">{JSON.stringify(Object.fromEntries(other), null, 2)}</pre>
          </>
        )}
      </div>
    </Modal>
  );
}

interface Rates {
  input?: number | null;
  cached_input?: number | null;
  cache_write?: number | null;
  output?: number | null;
  long_context?: ({ threshold?: number } & Rates) | null;
  source?: string | null;
}
interface Price {
  model?: string;
  as_of?: string;
  rates?: Rates;
}

const perM = (v: number | null | undefined) => (v === null || v === undefined ? '—' : `$${Number(v.toPrecision(6))} / M tokens`);

function PriceApplied({ e }: { e: LoggedEvent }) {
  const p = (e.price ?? null) as Price | null;
  const src = e.cost_source === 'client' ? 'Sent by the client (cost_usd)' : e.cost_source === 'table' ? 'Priced from the model price table' : e.cost_source ? String(e.cost_source).replace(/_/g, ' ') : null;
  const r = p?.rates;
  return (
    <div>
      {src && <strong>{src}</strong>}
      {p && (
        <div class="small">
          {p.model && (
            <>
              Model <code>{p.model}</code>
            </>
          )}
          {p.as_of && <> · prices as of {p.as_of}</>}
          {r && (
            <table class="compact">
              <caption class="sr-only">Rates applied</caption>
              <tbody>
                <tr><th scope="row">Input</th><td class="num">{perM(r.input)}</td></tr>
                <tr><th scope="row">Cached input</th><td class="num">{perM(r.cached_input)}</td></tr>
                <tr><th scope="row">Cache write</th><td class="num">{perM(r.cache_write)}</td></tr>
                <tr><th scope="row">Output</th><td class="num">{perM(r.output)}</td></tr>
                {r.long_context && (
                  <tr>
                    <th scope="row">Above {count(r.long_context.threshold ?? 0)} prompt tokens</th>
                    <td class="num">
                      in {perM(r.long_context.input)}, out {perM(r.long_context.output)}
                    </td>
                  </tr>
                )}
              </tbody>
            </table>
          )}
          {r?.source && (
            <a href={r.source} target="_blank" rel="noopener noreferrer">
              Price source
            </a>
          )}
        </div>
      )}
    </div>
  );
}
