// Monthly reports: the list, one month's report shown in the page, downloads, email opt-out.
import { useState } from 'preact/hooks';
import type { PageProps } from '../app';
import { describe, get, listOf, patch, wsPath } from '../lib/api';
import { change, count, dimValue, monthName, ms, pct, usd } from '../lib/format';
import { can, me } from '../lib/store';
import type { User } from '../lib/types';
import { AsyncView, Empty, ErrorBox, Loading, PageHead, toast, useAsync } from '../ui';

interface ReportLinks {
  month: string;
  links: Record<string, string>;
}
interface Figures {
  requests: number;
  errors: number;
  error_rate: number;
  input_tokens: number;
  output_tokens: number;
  cost_usd: number;
  unpriced: number;
}
/** A line's figures are flattened into it (older files nest them under `figures`). */
type Line = { value: string; cost_share: number; figures?: Figures } & Partial<Figures>;
const fig = (l: Line): Figures => l.figures ?? (l as unknown as Figures);
interface MonthlyReport {
  workspace_name: string;
  month: string;
  totals: Figures;
  latency: { p50_ms?: number | null; p95_ms?: number | null; p99_ms?: number | null };
  previous_month: Figures;
  change: { requests: number | null; cost_usd: number | null; errors: number | null };
  by_model: Line[];
  by_provider: Line[];
  by_feature: Line[];
  by_source: Line[];
  top_users: Line[];
  daily: { date: string; requests: number; errors: number; cost_usd: number }[];
  forecast: { made_on: string; expected_usd: number; low_usd: number; high_usd: number; actual_usd: number; error: number | null; within_interval: boolean } | null;
}

export default function Reports({ ws, params }: PageProps) {
  return params.month ? <OneReport ws={ws} month={params.month} /> : <ReportList ws={ws} />;
}

function Downloads({ r }: { r: ReportLinks }) {
  return (
    <span class="btn-group">
      {['html', 'json', 'csv'].filter((f) => r.links[f]).map((f) => (
        <a key={f} class="btn small" href={r.links[f]} download data-external>
          {f.toUpperCase()}
        </a>
      ))}
    </span>
  );
}

function OptOut() {
  const user = me.value!.user;
  const [busy, setBusy] = useState(false);
  return (
    <label class="check">
      <input
        type="checkbox"
        checked={user.monthly_reports}
        disabled={busy}
        onChange={async (e) => {
          const on = (e.target as HTMLInputElement).checked;
          setBusy(true);
          try {
            const u = await patch<User>('/v1/me', { monthly_reports: on });
            me.value = { ...me.value!, user: u };
            toast(on ? 'You will get the monthly report emails.' : 'You will no longer get the monthly report emails.');
          } catch (err) {
            toast(describe(err), 'error');
          } finally {
            setBusy(false);
          }
        }}
      />
      <span>Email me the monthly reports (all my workspaces)</span>
    </label>
  );
}

function ReportList({ ws }: { ws: PageProps['ws'] }) {
  const a = useAsync((signal) => get<unknown>(wsPath(ws.id, 'reports'), { signal }).then((x) => listOf<ReportLinks>(x, 'reports')), [ws.id]);
  return (
    <div>
      <PageHead title="Monthly reports" sub="Made on the 1st of each month (UTC) for the month just ended, and kept as long as your plan allows." />
      {can(ws.role, 'manage_alerts') && (
        <section class="card">
          <h2>Email</h2>
          <p class="small">Owners and admins get each report by email.</p>
          <OptOut />
        </section>
      )}
      <AsyncView a={a}>
        {(list) =>
          list.length === 0 ? (
            <Empty title="No reports yet">The first report appears after your first full month with events.</Empty>
          ) : (
            <div class="card table-wrap">
              <table>
                <caption class="sr-only">Monthly reports</caption>
                <thead>
                  <tr>
                    <th scope="col">Month</th>
                    <th scope="col">Download</th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((r) => (
                    <tr key={r.month}>
                      <td>
                        <a href={`/workspaces/${ws.id}/reports/${r.month}`}>{monthName(r.month)}</a>
                      </td>
                      <td>
                        <Downloads r={r} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </AsyncView>
    </div>
  );
}

function OneReport({ ws, month }: { ws: PageProps['ws']; month: string }) {
  const links = useAsync((signal) => get<ReportLinks>(wsPath(ws.id, 'reports', month), { signal }), [ws.id, month]);
  const report = useAsync(
    async (signal) => {
      if (!links.data) return undefined;
      // The report's JSON from the API's own origin (archive links may be on another origin).
      return get<MonthlyReport>(wsPath(ws.id, 'reports', month, 'report.json'), { signal });
    },
    [links.data],
  );
  return (
    <div>
      <p class="crumbs">
        <a href={`/workspaces/${ws.id}/reports`}>← Monthly reports</a>
      </p>
      <PageHead title={`Report for ${monthName(month)}`} sub={`${ws.name} · calendar month in UTC`}>
        {links.data && <Downloads r={links.data} />}
      </PageHead>
      {links.error ? (
        <ErrorBox error={links.error} retry={links.reload} title="This report is not available" />
      ) : !links.data ? (
        <Loading />
      ) : report.error ? (
        <ErrorBox error={report.error} retry={report.reload} title="The report could not be shown here; the downloads above still work" />
      ) : !report.data ? (
        <Loading label="Loading the report…" />
      ) : (
        <ReportView r={report.data} />
      )}
    </div>
  );
}

function ReportView({ r }: { r: MonthlyReport }) {
  const t = r.totals;
  const ch = (v: number | null) => change(v).text;
  return (
    <div class="report" data-report-cost={t.cost_usd}>
      <div class="kpis">
        <div class="kpi"><div class="kpi-label">Cost</div><div class="kpi-value">{usd(t.cost_usd)}</div><div class="kpi-change neutral">{r.change.cost_usd === null ? 'no previous month' : `${ch(r.change.cost_usd)} vs previous month`}</div></div>
        <div class="kpi"><div class="kpi-label">Requests</div><div class="kpi-value">{count(t.requests)}</div><div class="kpi-change neutral">{ch(r.change.requests)}</div></div>
        <div class="kpi"><div class="kpi-label">Errors</div><div class="kpi-value">{count(t.errors)} ({pct(t.error_rate)})</div><div class="kpi-change neutral">{ch(r.change.errors)}</div></div>
        <div class="kpi"><div class="kpi-label">Latency p50 / p95 / p99</div><div class="kpi-value small">{ms(r.latency.p50_ms)} / {ms(r.latency.p95_ms)} / {ms(r.latency.p99_ms)}</div></div>
        <div class="kpi"><div class="kpi-label">Unpriced requests</div><div class="kpi-value">{count(t.unpriced)}</div></div>
      </div>
      {r.forecast && (
        <section class="card">
          <h2>Forecast check</h2>
          <p>
            On {r.forecast.made_on} the forecast was {usd(r.forecast.expected_usd)} (80% interval {usd(r.forecast.low_usd)} – {usd(r.forecast.high_usd)}). The month ended at {usd(r.forecast.actual_usd)}:{' '}
            {r.forecast.within_interval ? '✓ within the interval' : '✕ outside the interval'}
            {r.forecast.error !== null ? ` (error ${pct(r.forecast.error)})` : ''}.
          </p>
        </section>
      )}
      {(
        [
          ['By model', r.by_model],
          ['By provider', r.by_provider],
          ['By feature', r.by_feature],
          ['By source', r.by_source],
          ['Top end-users', r.top_users],
        ] as [string, Line[]][]
      ).map(([title, lines]) =>
        lines.length === 0 ? null : (
          <section class="card" key={title}>
            <h2>{title}</h2>
            <div class="table-wrap">
              <table>
                <caption class="sr-only">{title}</caption>
                <thead>
                  <tr>
                    <th scope="col">Value</th>
                    <th scope="col" class="num">Cost</th>
                    <th scope="col" class="num">Share</th>
                    <th scope="col" class="num">Requests</th>
                    <th scope="col" class="num">Errors</th>
                    <th scope="col" class="num">Unpriced</th>
                  </tr>
                </thead>
                <tbody>
                  {lines.map((l) => (
                    <tr key={l.value}>
                      <td>{dimValue(l.value)}</td>
                      <td class="num">{usd(fig(l).cost_usd)}</td>
                      <td class="num">{pct(l.cost_share)}</td>
                      <td class="num">{count(fig(l).requests)}</td>
                      <td class="num">{count(fig(l).errors)}</td>
                      <td class="num">{count(fig(l).unpriced)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </section>
        ),
      )}
      <section class="card">
        <h2>Day by day</h2>
        <div class="table-wrap">
          <table>
            <caption class="sr-only">Daily figures</caption>
            <thead>
              <tr>
                <th scope="col">Day (UTC)</th>
                <th scope="col" class="num">Cost</th>
                <th scope="col" class="num">Requests</th>
                <th scope="col" class="num">Errors</th>
              </tr>
            </thead>
            <tbody>
              {r.daily.map((d) => (
                <tr key={d.date}>
                  <td>{d.date}</td>
                  <td class="num">{usd(d.cost_usd)}</td>
                  <td class="num">{count(d.requests)}</td>
                  <td class="num">{count(d.errors)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </section>
    </div>
  );
}
