// Reconciliation with the provider's bill: connections to OpenAI and Anthropic organisations
// (admin keys), then what the provider billed per UTC day and model beside LLMtrack's events.
import { useEffect, useState } from 'preact/hooks';
import type { PageProps } from '../app';
import { PALETTE, TimeChart, loadUplot } from '../chart';
import { ApiError, del, describe, get, listOf, post, put, withQuery, wsPath } from '../lib/api';
import { ago, compact, count, dateTime, usd, usdCompact } from '../lib/format';
import {
  KEY_HELP,
  KIND_LABELS,
  PROVIDERS,
  RANGES,
  addDays,
  causeKinds,
  causeLabel,
  coverageText,
  coverageTone,
  coverageWord,
  dailySeries,
  driftText,
  hasFigures,
  importStatus,
  importedThrough,
  keyProblem,
  modelName,
  offersPrice,
  parseRange,
  parseScope,
  missingRates,
  percent,
  planBody,
  pricePlan,
  type PricePlan,
  appliedRates,
  providerName,
  rangeFor,
  rate,
  signedPercent,
  signedUsd,
} from '../lib/reconcile';
import { search, setSearch } from '../lib/router';
import { can } from '../lib/store';
import type { BillingProvider, Connection, EventPage, Figures, PriceDifference, PriceRule, Reconciliation as Rec, TokenKind, WorkspacePrices } from '../lib/types';
import { AsyncView, Badge, ConfirmButton, Empty, Field, Loading, Modal, PageHead, Table, toast, useAsync } from '../ui';

export default function Reconciliation({ ws }: PageProps) {
  const manage = can(ws.role, 'manage_settings');
  const days = parseRange(search.value);
  const range = rangeFor(days);
  // Bumped after a change (a connection added, imported or removed) to read everything again.
  const [version, setVersion] = useState(0);
  const changed = () => setVersion((v) => v + 1);
  // Only admins and owners list connections (the API refuses the others): for them, null.
  const conns = useAsync<Connection[] | null>(
    (signal) =>
      !manage
        ? Promise.resolve(null)
        : get<unknown>(wsPath(ws.id, 'connections'), { signal }).then(
            (x) => listOf<Connection>(x, 'connections'),
            // A role that may not list connections still sees the figures.
            (e) => {
              if (e instanceof ApiError && e.status === 403) return null;
              throw e;
            },
          ),
    [ws.id, version, manage],
  );
  const known = conns.data;
  const none = Array.isArray(known) && known.length === 0;
  const stats = useAsync(
    (signal) => {
      if (known === undefined || none) return Promise.resolve(null);
      void loadUplot();
      return get<Rec>(withQuery('/v1/stats/reconciliation', { workspace: ws.id, from: range.from, to: range.to }), { signal });
    },
    [ws.id, range.from, range.to, version, known === undefined, none],
  );
  const [adding, setAdding] = useState(false);
  return (
    <div>
      <PageHead
        title="Reconciliation"
        sub="What OpenAI or Anthropic says your organisation used and was billed, per UTC day and model, beside LLMtrack's own events: how much of the bill LLMtrack sees, how far its cost is from the bill, and why."
      >
        {manage && !adding && known && known.length > 0 && (
          <button type="button" class="btn primary" onClick={() => setAdding(true)}>
            Add connection
          </button>
        )}
      </PageHead>
      <AsyncView a={conns} label="Loading connections…">
        {(list) =>
          list === null ? null : list.length === 0 ? (
            <>
              <EmptyState manage={manage} />
              {manage && <AddConnection ws={ws.id} onDone={changed} />}
            </>
          ) : (
            <>
              <Connections ws={ws.id} tz={ws.timezone} list={list} manage={manage} range={range} onChange={changed} />
              {adding && manage && (
                <AddConnection
                  ws={ws.id}
                  onCancel={() => setAdding(false)}
                  onDone={() => {
                    setAdding(false);
                    changed();
                  }}
                />
              )}
            </>
          )
        }
      </AsyncView>
      {!none && known !== undefined && (
        <>
          <section class="controls" aria-label="Days compared">
            <div class="control-row">
              <label class="inline">
                <span>Range</span>
                <select name="range" value={String(days)} onChange={(e) => setSearch(`days=${(e.target as HTMLSelectElement).value}`)}>
                  {RANGES.map((d) => (
                    <option key={d} value={d}>
                      Last {d} days
                    </option>
                  ))}
                </select>
              </label>
              <span class="tz-note">
                UTC days, {range.from} to {range.to} (exclusive): the providers bill by UTC day, and today is left out until it ends.
              </span>
            </div>
          </section>
          <AsyncView a={stats} label="Comparing with the bill…">
            {(r) => (r ? <Compared ws={ws.id} r={r} manage={manage} /> : null)}
          </AsyncView>
        </>
      )}
    </div>
  );
}

function EmptyState({ manage }: { manage: boolean }) {
  return (
    <div class="card callout" data-state="no-connection">
      <h2>Compare LLMtrack with your provider's bill</h2>
      <p>
        Connect your OpenAI or Anthropic organisation with an admin key. LLMtrack imports what the provider says was used and billed, per UTC day and model (the last 30 days when you connect; <em>Import now</em> fetches newer days), and sets it beside the events you send.
      </p>
      <ul>
        <li>
          <strong>Coverage</strong>: the share of the provider's tokens LLMtrack saw. Below 100%, some calls are not sent to LLMtrack.
        </li>
        <li>
          <strong>Drift</strong>: LLMtrack's cost minus the billed cost, with its causes: missing events, models without a price, prices that differ from the bill (which you can take as a custom price in one step).
        </li>
        <li>
          <strong>Alerts</strong>: once connected, an alert can tell you when coverage falls or drift grows.
        </li>
      </ul>
      <p>{manage ? 'Start with a connection below: it only reads usage and costs.' : 'An admin or owner of the workspace can add a connection.'}</p>
    </div>
  );
}

// ---------- connections ----------

function Connections({ ws, tz, list, manage, range, onChange }: { ws: string; tz: string; list: Connection[]; manage: boolean; range: { from: string; to: string }; onChange: () => void }) {
  return (
    <section class="card" aria-labelledby="conn-h">
      <h2 id="conn-h">Connections</h2>
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Provider connections</caption>
          <thead>
            <tr>
              <th scope="col">Provider</th>
              <th scope="col">Admin key</th>
              <th scope="col">Scope</th>
              <th scope="col">Connected</th>
              <th scope="col">Last import</th>
              {manage && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {list.map((c) => {
              const st = importStatus(c);
              return (
                <tr key={c.id} data-connection={c.id}>
                  <td>{providerName(c.provider)}</td>
                  <td>
                    <code>{c.key_hint.startsWith('…') ? c.key_hint : `…${c.key_hint}`}</code>
                  </td>
                  <td>
                    {c.scope.length === 0
                      ? 'whole organisation'
                      : c.scope.map((s, i) => (
                          <span key={s}>
                            {i > 0 && ', '}
                            <code>{s}</code>
                          </span>
                        ))}
                  </td>
                  <td>{dateTime(c.created_at, tz)}</td>
                  <td data-import={c.last_import ? (c.last_import.ok ? 'ok' : 'failed') : 'none'}>
                    <span class={st.tone === 'bad' ? 'warn' : undefined}>{st.text}</span>
                    {c.last_import && (
                      <>
                        <br />
                        <small class="muted" title={dateTime(c.last_import.at, tz)}>
                          {ago(c.last_import.at)}
                        </small>
                      </>
                    )}
                  </td>
                  {manage && (
                    <td>
                      <ConnectionActions ws={ws} c={c} range={range} onChange={onChange} />
                    </td>
                  )}
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function ConnectionActions({ ws, c, range, onChange }: { ws: string; c: Connection; range: { from: string; to: string }; onChange: () => void }) {
  const [busy, setBusy] = useState<'' | 'test' | 'import'>('');
  const [reimport, setReimport] = useState(false);
  const name = `${providerName(c.provider)} connection …${c.key_hint.replace(/^…/, '')}`;
  const test = async () => {
    setBusy('test');
    try {
      await post(wsPath(ws, 'connections', c.id, 'test'), {});
      toast(`${providerName(c.provider)} accepted the admin key.`);
    } catch (e) {
      toast(`${providerName(c.provider)}: ${describe(e)}`, 'error');
    } finally {
      setBusy('');
    }
  };
  const importNow = async () => {
    setBusy('import');
    try {
      const r = await post<Connection>(wsPath(ws, 'connections', c.id, 'import'), {});
      reportImport(r);
      onChange();
    } catch (e) {
      toast(`Import failed: ${describe(e)}`, 'error');
      onChange();
    } finally {
      setBusy('');
    }
  };
  return (
    <span class="row-actions">
      <button type="button" class="btn small" disabled={busy !== ''} aria-label={`Test the ${name}`} onClick={test}>
        {busy === 'test' ? 'Testing…' : 'Test'}
      </button>
      <button type="button" class="btn small" disabled={busy !== ''} aria-label={`Import now from the ${name}`} onClick={importNow}>
        {busy === 'import' ? 'Importing…' : 'Import now'}
      </button>
      <button type="button" class="btn small" disabled={busy !== ''} aria-label={`Import days again from the ${name}`} onClick={() => setReimport(true)}>
        Import days again…
      </button>
      <ConfirmButton
        label="Remove"
        ariaLabel={`Remove the ${name}`}
        title={`Remove the ${providerName(c.provider)} connection?`}
        message={
          <>
            <p>LLMtrack forgets the admin key ending in {c.key_hint.replace(/^…/, '')} and deletes every figure imported through it. Your events are not touched.</p>
            <p>The key still works at {providerName(c.provider)}: revoke it there if nothing else uses it.</p>
          </>
        }
        danger
        class="btn small danger"
        onConfirm={async () => {
          await del(wsPath(ws, 'connections', c.id));
          toast(`${providerName(c.provider)} connection removed.`);
          onChange();
        }}
      />
      {reimport && (
        <ReimportDialog
          ws={ws}
          c={c}
          range={range}
          onClose={() => setReimport(false)}
          onDone={() => {
            setReimport(false);
            onChange();
          }}
        />
      )}
    </span>
  );
}

function reportImport(r: Connection | undefined): void {
  const l = r?.last_import;
  if (l && !l.ok) toast(`Import failed: ${l.message ?? 'the provider gave no reason'}`, 'error');
  else toast(`Imported ${l ? `${count(l.days)} day${l.days === 1 ? '' : 's'}` : 'the new days'}${r?.imported_through ? `, through ${r.imported_through}` : ''}.`);
}

function ReimportDialog({ ws, c, range, onClose, onDone }: { ws: string; c: Connection; range: { from: string; to: string }; onClose: () => void; onDone: () => void }) {
  const [from, setFrom] = useState(range.from);
  const [to, setTo] = useState(range.to);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const at = (f: string) => (error instanceof ApiError && error.field === f ? describe(error) : null);
  return (
    <Modal title={`Import days again from ${providerName(c.provider)}`} onClose={onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            reportImport(await post<Connection>(wsPath(ws, 'connections', c.id, 'import'), { from, to }));
            onDone();
          } catch (err) {
            setError(err);
          } finally {
            setBusy(false);
          }
        }}
      >
        <p>The provider's figures for these days replace the ones imported before (providers revise a day's figures for a while after it ends).</p>
        <div class="row">
          <Field label="From (UTC day)" error={at('from')}>
            <input name="from" type="date" required value={from} max={to} onInput={(e) => setFrom((e.target as HTMLInputElement).value)} />
          </Field>
          <Field label="To (UTC day, exclusive)" error={at('to')}>
            <input name="to" type="date" required value={to} min={from} onInput={(e) => setTo((e.target as HTMLInputElement).value)} />
          </Field>
        </div>
        {error !== null && !(error instanceof ApiError && (error.field === 'from' || error.field === 'to')) && (
          <p class="field-error" role="alert">
            {describe(error)}
          </p>
        )}
        {busy && <Loading label="Importing… this can take several seconds." />}
        <div class="actions">
          <button type="button" class="btn" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class="btn primary" disabled={busy}>
            {busy ? 'Importing…' : 'Import'}
          </button>
        </div>
      </form>
    </Modal>
  );
}

function AddConnection({ ws, onDone, onCancel }: { ws: string; onDone: () => void; onCancel?: () => void }) {
  const [provider, setProvider] = useState<BillingProvider>('openai');
  const [key, setKey] = useState('');
  const [scope, setScope] = useState('');
  const [busy, setBusy] = useState(false);
  const [elapsed, setElapsed] = useState(0);
  const [error, setError] = useState<{ field: string; message: string } | null>(null);
  useEffect(() => {
    if (!busy) return;
    setElapsed(0);
    const t0 = Date.now();
    const id = setInterval(() => setElapsed(Math.floor((Date.now() - t0) / 1000)), 1000);
    return () => clearInterval(id);
  }, [busy]);
  const help = KEY_HELP[provider];
  const at = (f: string) => (error?.field === f ? error.message : null);
  const submit = async (e: Event) => {
    e.preventDefault();
    const problem = keyProblem(provider, key);
    if (problem) {
      setError({ field: 'admin_key', message: problem });
      return;
    }
    setBusy(true);
    setError(null);
    const ids = parseScope(scope);
    try {
      const c = await post<Connection>(wsPath(ws, 'connections'), { provider, admin_key: key.trim(), ...(ids.length ? { scope: ids } : {}) });
      setKey('');
      toast(`${providerName(provider)} connected${c?.imported_through ? `: imported through ${c.imported_through}` : ''}.`);
      if (c?.last_import && !c.last_import.ok) toast(`The first import failed: ${c.last_import.message ?? 'no reason given'}`, 'error');
      onDone();
    } catch (x) {
      const field = x instanceof ApiError ? (x.code === 'provider_key_refused' ? 'admin_key' : x.field?.split('.')[0] ?? '') : '';
      setError({ field: ['provider', 'admin_key', 'scope'].includes(field) ? field : '', message: describe(x) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="card" aria-labelledby="add-h">
      <h2 id="add-h">Add a connection</h2>
      <form onSubmit={submit} noValidate data-form="connection">
        <div class="row">
          <Field label="Provider" error={at('provider')}>
            <select
              name="provider"
              value={provider}
              disabled={busy}
              onChange={(e) => {
                setProvider((e.target as HTMLSelectElement).value as BillingProvider);
                setError(null);
              }}
            >
              {(Object.keys(PROVIDERS) as BillingProvider[]).map((p) => (
                <option key={p} value={p}>
                  {PROVIDERS[p]}
                </option>
              ))}
            </select>
          </Field>
          <Field label="Admin key" error={at('admin_key')} hint={<KeyHelp provider={provider} />}>
            <input
              name="admin_key"
              type="password"
              required
              autoComplete="off"
              spellcheck={false}
              aria-invalid={!!at('admin_key')}
              placeholder={help.placeholder}
              value={key}
              disabled={busy}
              onInput={(e) => setKey((e.target as HTMLInputElement).value)}
            />
          </Field>
        </div>
        <Field label={help.scopeLabel} error={at('scope')} hint={help.scopeHint}>
          <input name="scope" aria-invalid={!!at('scope')} placeholder={help.scopePlaceholder} value={scope} disabled={busy} spellcheck={false} onInput={(e) => setScope((e.target as HTMLInputElement).value)} />
        </Field>
        <p class="small muted">
          LLMtrack checks the key with {providerName(provider)} first, stores it encrypted and never shows it again (only its last four characters). It only reads usage and costs.
        </p>
        {error && !error.field && (
          <p class="field-error" role="alert">
            <span aria-hidden="true">⚠ </span>
            {error.message}
          </p>
        )}
        {busy && (
          <div class="connect-progress" role="status" aria-live="polite">
            <progress aria-label="Connecting" />
            <span>
              {elapsed < 2 ? `Checking the key with ${providerName(provider)}…` : `Importing the last 30 days of usage and costs… ${elapsed} s`}
            </span>
          </div>
        )}
        <div class="actions start">
          <button type="submit" class="btn primary" disabled={busy}>
            {busy ? 'Connecting…' : `Connect ${providerName(provider)}`}
          </button>
          {onCancel && (
            <button type="button" class="btn ghost" disabled={busy} onClick={onCancel}>
              Cancel
            </button>
          )}
        </div>
      </form>
    </section>
  );
}

function KeyHelp({ provider }: { provider: BillingProvider }) {
  if (provider === 'openai') {
    return (
      <>
        An <strong>Admin key</strong> (<code>sk-admin-…</code>) from the <em>Admin keys</em> page of your organization's settings on platform.openai.com; organization owners can make one. A project key cannot read the organization's usage.
      </>
    );
  }
  return (
    <>
      An <strong>Admin key</strong> (<code>sk-ant-admin…</code>) from Console → Settings → <em>Admin keys</em>; only organisation admins can make one, and individual accounts have none. An API key (<code>sk-ant-api…</code>) does not work.
    </>
  );
}

// ---------- the figures ----------

function Compared({ ws, r, manage }: { ws: string; r: Rec; manage: boolean }) {
  const through = importedThrough(r.connections);
  // Only admins list connections; for the others the answer says whether there are any.
  if (r.connections.length === 0) return <EmptyState manage={manage} />;
  if (!hasFigures(r)) {
    return (
      <Empty title="Nothing billed or tracked in these days">
        {through ? `The provider's figures are imported through ${through}. ` : 'Nothing has been imported yet. '}
        Pick a longer range, or import again once the provider has figures for these days.
      </Empty>
    );
  }
  return (
    <>
      <Tiles t={r.total} />
      {through && through < addDays(r.to, -1) && (
        <p class="notice" role="note">
          The provider's figures are imported through {through}: later days show no billed cost yet.
        </p>
      )}
      <section class="card" aria-labelledby="chart-h">
        <h2 id="chart-h">Cost per day</h2>
        <DailyChart r={r} />
        <DaysTable r={r} through={through} />
      </section>
      {r.total.causes.length > 0 && (
        <section class="card" aria-labelledby="why-h">
          <h2 id="why-h">Why they differ</h2>
          <Causes f={r.total} />
        </section>
      )}
      <section class="card" aria-labelledby="models-h">
        <h2 id="models-h">By model</h2>
        {r.models.length === 0 ? (
          <Empty title="No model in these days" />
        ) : (
          <div class="rec-table" data-table="models">
            <ModelsTable r={r} />
          </div>
        )}
      </section>
      <section class="card" aria-labelledby="prices-h">
        <h2 id="prices-h">Prices: billed against LLMtrack's</h2>
        <PricesTable ws={ws} r={r} manage={manage} />
      </section>
    </>
  );
}

function Tiles({ t }: { t: Figures }) {
  const d = driftText(t.drift_usd, t.drift_pct);
  const cov = coverageTone(t.coverage_pct);
  return (
    <div class="kpis">
      <div class="kpi" data-kpi="billed" data-value={t.billed.cost_usd}>
        <div class="kpi-label">Billed by the provider</div>
        <div class="kpi-value">{usd(t.billed.cost_usd)}</div>
        <div class="kpi-change neutral">{compact(t.billed.total_tokens)} tokens{t.billed.requests !== null ? `, ${compact(t.billed.requests)} requests` : ''}</div>
      </div>
      <div class="kpi" data-kpi="tracked" data-value={t.tracked.cost_usd}>
        <div class="kpi-label">LLMtrack's cost</div>
        <div class="kpi-value">{usd(t.tracked.cost_usd)}</div>
        <div class="kpi-change neutral">
          {compact(t.tracked.total_tokens)} tokens, {compact(t.tracked.requests)} requests
          {t.tracked.unpriced_requests > 0 && `, ${count(t.tracked.unpriced_requests)} unpriced`}
        </div>
      </div>
      <div class="kpi" data-kpi="drift" data-value={t.drift_usd}>
        <div class="kpi-label">Drift</div>
        <div class="kpi-value">{signedUsd(t.drift_usd)}</div>
        <div class={`kpi-change ${d.tone === 'good' ? 'neutral' : 'bad'}`}>
          {d.dir === 'even' ? 'matches the bill' : `${signedPercent(t.drift_pct)}: LLMtrack ${d.dir} the bill`}
        </div>
      </div>
      <div class="kpi" data-kpi="coverage" data-value={t.coverage_pct ?? ''}>
        <div class="kpi-label">Coverage</div>
        <div class="kpi-value">{percent(t.coverage_pct)}</div>
        <div class={`kpi-change ${cov === 'bad' || cov === 'warn' ? 'bad' : 'neutral'}`}>
          {cov === 'none' ? 'nothing billed' : `of the billed tokens seen by LLMtrack (${coverageWord(t.coverage_pct)})`}
        </div>
      </div>
    </div>
  );
}

function DailyChart({ r }: { r: Rec }) {
  const s = dailySeries(r);
  return (
    <TimeChart
      buckets={s.buckets}
      series={[
        { label: 'Billed by the provider', values: s.billed, color: PALETTE[0] },
        { label: "LLMtrack's cost", values: s.tracked, color: PALETTE[1] },
      ]}
      format={usd}
      axisFormat={usdCompact}
      tz="UTC"
      title="Cost per UTC day: billed by the provider, and computed by LLMtrack"
    />
  );
}

/** A figure's causes: in words (`full`), as badges whose sentence is a tooltip and read out to
 * screen readers (a table cell: the sentences of the total are listed above it), or as text. */
function Causes({ f, short, badges }: { f: Pick<Figures, 'causes'>; short?: boolean; badges?: boolean }) {
  if (f.causes.length === 0) return <span class="muted">—</span>;
  if (short) return <>{causeKinds(f).join(', ')}</>;
  return (
    <ul class={`plain causes${badges ? ' badges' : ''}`}>
      {f.causes.map((c, i) => (
        <li key={i} data-cause={c.kind} title={badges ? c.message : undefined}>
          <Badge kind={c.kind === 'not_tied_to_model' ? '' : 'warn'}>{causeLabel(c.kind)}</Badge>{' '}
          {badges ? <span class="sr-only">{c.message}</span> : c.message}
        </li>
      ))}
    </ul>
  );
}

function DriftCell({ f }: { f: Figures }) {
  const d = driftText(f.drift_usd, f.drift_pct);
  return (
    <span class={d.tone === 'bad' ? 'warn nowrap' : 'nowrap'} title={d.text}>
      {d.short}
      {d.dir !== 'even' && <span class="sr-only"> {d.dir} the bill</span>}
    </span>
  );
}

function DaysTable({ r, through }: { r: Rec; through: string | null }) {
  const imported = (day: string) => through !== null && day <= through;
  return (
    <details class="chart-table" data-table="days">
      <summary>Day by day (the chart's figures as a table)</summary>
      <Table
        caption="Billed and tracked cost per UTC day"
        rows={r.days}
        rowKey={(d) => d.day}
        defaultSort={{ key: 'day', desc: true }}
        columns={[
          { key: 'day', label: 'Day (UTC)', render: (d) => d.day, sort: (d) => d.day },
          { key: 'billed', label: 'Billed', numeric: true, render: (d) => (imported(d.day) ? usd(d.billed.cost_usd) : 'not imported yet'), sort: (d) => d.billed.cost_usd },
          { key: 'tracked', label: 'LLMtrack', numeric: true, render: (d) => usd(d.tracked.cost_usd), sort: (d) => d.tracked.cost_usd },
          { key: 'drift', label: 'Drift', render: (d) => (imported(d.day) ? <DriftCell f={d} /> : '—'), sort: (d) => d.drift_usd },
          { key: 'coverage', label: 'Coverage', render: (d) => coverageText(d.coverage_pct), sort: (d) => d.coverage_pct },
          { key: 'btok', label: 'Billed tokens', numeric: true, render: (d) => count(d.billed.total_tokens), sort: (d) => d.billed.total_tokens },
          { key: 'ttok', label: 'Tracked tokens', numeric: true, render: (d) => count(d.tracked.total_tokens), sort: (d) => d.tracked.total_tokens },
          { key: 'why', label: 'Why', render: (d) => <Causes f={d} short /> },
        ]}
      />
    </details>
  );
}

function ModelsTable({ r }: { r: Rec }) {
  return (
    <Table
      caption="Billed and tracked figures by model"
      captionHidden
      rows={r.models}
      rowKey={(m) => `${m.provider}/${m.model}`}
      defaultSort={{ key: 'billed', desc: true }}
      columns={[
        {
          key: 'model',
          label: 'Model',
          render: (m) => (
            <>
              {m.model === '' ? <em>{modelName('')}</em> : <code>{m.model}</code>}
              <br />
              <small class="muted">
                {providerName(m.provider)}
                {m.tracked_model && m.model !== '' && m.tracked_model !== m.model && <> · events name it {m.tracked_model}</>}
              </small>
              {/* Why it differs, under its name: a column of its own would not fit beside eight figures. */}
              {m.causes.length > 0 && <Causes f={m} badges />}
            </>
          ),
          sort: (m) => m.model,
        },
        { key: 'btok', label: 'Billed tokens', numeric: true, render: (m) => count(m.billed.total_tokens), sort: (m) => m.billed.total_tokens },
        { key: 'ttok', label: 'Tracked tokens', numeric: true, render: (m) => count(m.tracked.total_tokens), sort: (m) => m.tracked.total_tokens },
        { key: 'coverage', label: 'Coverage', render: (m) => coverageText(m.coverage_pct), sort: (m) => m.coverage_pct },
        { key: 'billed', label: 'Billed', numeric: true, render: (m) => usd(m.billed.cost_usd), sort: (m) => m.billed.cost_usd },
        {
          key: 'tracked',
          label: 'LLMtrack',
          numeric: true,
          render: (m) => (
            <>
              {usd(m.tracked.cost_usd)}
              {m.tracked.unpriced_requests > 0 && (
                <>
                  <br />
                  <small class="warn">{count(m.tracked.unpriced_requests)} unpriced</small>
                </>
              )}
            </>
          ),
          sort: (m) => m.tracked.cost_usd,
        },
        { key: 'drift', label: 'Drift', render: (m) => <DriftCell f={m} />, sort: (m) => m.drift_usd },
      ]}
    />
  );
}

function PricesTable({ ws, r, manage }: { ws: string; r: Rec; manage: boolean }) {
  const [offer, setOffer] = useState<PriceDifference | null>(null);
  if (r.prices.length === 0) {
    return <p class="muted">The bill itemises no per-token prices in these days (only costs), so there is nothing to compare rate by rate.</p>;
  }
  return (
    <>
      <p class="small muted">
        The rate the provider billed per million tokens (its cost divided by its tokens), beside the rate LLMtrack's table charges. A rate that differs (a negotiated price, a price change the table does not know) can become a workspace price.
      </p>
      <Table
        caption="Billed rates against LLMtrack's price table"
        captionHidden
        rows={r.prices}
        rowKey={(p) => `${p.provider}/${p.model}/${p.kind}`}
        defaultSort={{ key: 'diff', desc: true }}
        columns={[
          { key: 'model', label: 'Model', render: (p) => <code>{p.model}</code>, sort: (p) => p.model },
          { key: 'provider', label: 'Provider', render: (p) => providerName(p.provider), sort: (p) => p.provider },
          { key: 'kind', label: 'Tokens', render: (p) => KIND_LABELS[p.kind] ?? p.kind, sort: (p) => p.kind },
          { key: 'tokens', label: 'Billed tokens', numeric: true, render: (p) => count(p.tokens), sort: (p) => p.tokens },
          { key: 'billed', label: 'Billed rate', numeric: true, render: (p) => rate(p.billed_usd_per_mtok), sort: (p) => p.billed_usd_per_mtok },
          { key: 'table', label: "LLMtrack's rate", numeric: true, render: (p) => (p.table_usd_per_mtok === null ? 'not in the table' : rate(p.table_usd_per_mtok)), sort: (p) => p.table_usd_per_mtok },
          { key: 'diff', label: 'Difference', numeric: true, render: (p) => (p.difference_pct === null ? '—' : offersPrice(p) ? signedPercent(p.difference_pct) : 'same ✓'), sort: (p) => (p.difference_pct === null ? null : Math.abs(p.difference_pct)) },
          ...(manage
            ? [
                {
                  key: 'act',
                  label: 'Action',
                  render: (p: PriceDifference) =>
                    offersPrice(p) ? (
                      <button type="button" class="btn small" aria-label={`Use as custom price: the billed ${KIND_LABELS[p.kind]?.toLowerCase() ?? p.kind} rate of ${p.model}`} onClick={() => setOffer(p)}>
                        Use as custom price
                      </button>
                    ) : (
                      ''
                    ),
                },
              ]
            : []),
        ]}
      />
      {offer && <PriceDialog ws={ws} p={offer} r={r} onClose={() => setOffer(null)} />}
    </>
  );
}

interface DialogData {
  rules: PriceRule[];
  applied?: { rates: Partial<Record<TokenKind, number>>; label: string };
}

function PriceDialog({ ws, p, r, onClose }: { ws: string; p: PriceDifference; r: Rec; onClose: () => void }) {
  const tracked = r.models.find((m) => m.provider === p.provider && m.model === p.model)?.tracked_model || p.model;
  const data = useAsync<DialogData>(
    async (signal) => {
      // The newest event of the model tells the rates LLMtrack charges now, for kinds the
      // reconciliation does not list (they match the bill).
      const latest = get<EventPage>(withQuery('/v1/events', { workspace: ws, from: `${r.from}T00:00:00Z`, to: `${r.to}T00:00:00Z`, provider: p.provider, model: tracked, limit: 1 }), { signal }).then(
        (page) => {
          const rates = appliedRates(page.events[0]?.price);
          return rates ? { rates, label: `as LLMtrack priced your latest ${tracked} event` } : undefined;
        },
        () => undefined,
      );
      const prices = await get<WorkspacePrices>(wsPath(ws, 'prices'), { signal });
      return { rules: prices.rules, applied: await latest };
    },
    [ws, p.provider, p.model, p.kind],
  );
  return (
    <Modal title="Use the billed rate as a custom price" onClose={onClose} wide>
      <AsyncView a={data} label="Reading your workspace prices…">
        {(d) => <PriceForm ws={ws} plan={pricePlan(p, r.prices, d.rules, r, d.applied)} p={p} onClose={onClose} />}
      </AsyncView>
    </Modal>
  );
}

function PriceForm({ ws, plan, p, onClose }: { ws: string; plan: PricePlan; p: PriceDifference; onClose: () => void }) {
  const [typed, setTyped] = useState<Partial<Record<TokenKind, string>>>(() => Object.fromEntries(plan.lines.map((l) => [l.kind, l.rate === null ? '' : String(l.rate)])));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const missing = missingRates(plan, typed);
  const kept = Object.entries(plan.kept);
  return (
    <form
      data-plan={plan.method}
      onSubmit={async (e) => {
        e.preventDefault();
        if (missing.length) return;
        setBusy(true);
        setError(null);
        const body = planBody(plan, typed);
        try {
          if (plan.method === 'put') await put(wsPath(ws, 'prices', plan.ruleId!), body);
          else await post(wsPath(ws, 'prices'), body);
          toast(`Price for ${plan.model} saved: events from now on are priced with it.`);
          onClose();
        } catch (err) {
          setError(err);
        } finally {
          setBusy(false);
        }
      }}
    >
      <p>
        {plan.method === 'post' ? 'This creates a workspace price' : plan.replaces?.kind === 'discount' ? `This replaces your ${plan.replaces.percent}% discount with rates` : 'This changes your workspace price'} for{' '}
        <strong>{providerName(plan.provider)}</strong> <code>{plan.model}</code>, for every day (no start or end date), in USD per million tokens:
      </p>
      <table class="compact" data-table="plan">
        <caption class="sr-only">The rates of the price</caption>
        <thead>
          <tr>
            <th scope="col">Tokens</th>
            <th scope="col">Rate (USD per million)</th>
            <th scope="col">From</th>
          </tr>
        </thead>
        <tbody>
          {plan.lines.map((l) => (
            <tr key={l.kind} data-kind={l.kind} class={l.changed ? 'changed' : undefined}>
              <th scope="row">{KIND_LABELS[l.kind]}</th>
              <td>
                <input
                  name={`rate-${l.kind}`}
                  class="rate"
                  type="number"
                  step="any"
                  min="0"
                  aria-label={`${KIND_LABELS[l.kind]} rate, USD per million tokens`}
                  aria-invalid={missing.includes(l.kind)}
                  required={l.kind === 'input' || l.kind === 'output'}
                  value={typed[l.kind] ?? ''}
                  onInput={(e) => setTyped({ ...typed, [l.kind]: (e.target as HTMLInputElement).value })}
                />
              </td>
              <td>
                {l.changed ? <strong>{l.source}</strong> : l.source}
                {l.changed && p.table_usd_per_mtok !== null && ` (LLMtrack charges ${rate(p.table_usd_per_mtok)}, ${signedPercent(p.difference_pct)})`}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {kept.length > 0 && <p class="small">Kept from your current price: {kept.map(([k, v]) => `${k.replace(/_/g, ' ')} ${rate(v as number)}`).join(', ')}.</p>}
      {missing.length > 0 && (
        <p class="warn" role="note">
          A price needs the input and output rates: type the {missing.map((k) => KIND_LABELS[k].toLowerCase()).join(' and ')} rate you pay for {plan.model} (the provider's pricing page has it).
        </p>
      )}
      <p class="small">
        Note saved with it: “{plan.note}”. Events arriving from now on are priced with it; stored events keep their cost until you reprice them on the <a href={`/workspaces/${ws}/prices`}>Prices</a> page.
      </p>
      {error !== null && (
        <p class="field-error" role="alert">
          {describe(error)}
        </p>
      )}
      <div class="actions">
        <button type="button" class="btn" onClick={onClose}>
          Cancel
        </button>
        <button type="submit" class="btn primary" disabled={busy || missing.length > 0}>
          {busy ? 'Saving…' : plan.method === 'post' ? 'Create the price' : 'Change the price'}
        </button>
      </div>
    </form>
  );
}
