// Overview: KPI cards with change, cost over time stacked by a dimension, month-end forecast,
// plan usage, where each budget stands.
import { Controls, CoveredNote, useView } from '../analytics';
import { useEffect } from 'preact/hooks';
import { ChartTable, loadUplot, TimeChart, type ChartSeries } from '../chart';
import type { PageProps } from '../app';
import { ApiError, get } from '../lib/api';
import { BudgetLegend, BudgetRow, legendOf } from '../budgetbar';
import { overviewPaths } from '../lib/overviewq';
import { DIMENSIONS, change, count, dimValue, dimensionLabel, monthName, ms, pct, usd, usdCompact } from '../lib/format';
import { can } from '../lib/store';
import type { BudgetsAnswer, Forecast, Rule, Summary, Timeseries, Usage, Workspace } from '../lib/types';
import { withExtra } from '../lib/urlstate';
import { AsyncView, Empty, ErrorBox, Loading, Meter, PageHead, useAsync } from '../ui';

export const KPIS: { key: string; label: string; value: (s: Summary['metrics']) => number | null; fmt: (n: number | null) => string; upIsBad?: boolean }[] = [
  { key: 'cost_usd', label: 'Cost', value: (m) => m.cost_usd, fmt: (n) => usd(n), upIsBad: true },
  { key: 'requests', label: 'Requests', value: (m) => m.requests, fmt: (n) => count(n) },
  { key: 'total_tokens', label: 'Tokens', value: (m) => m.tokens.total, fmt: (n) => count(n) },
  { key: 'error_rate', label: 'Error rate', value: (m) => m.error_rate, fmt: (n) => pct(n), upIsBad: true },
  { key: 'latency_p50', label: 'Latency p50', value: (m) => m.latency_ms.p50, fmt: (n) => ms(n), upIsBad: true },
  { key: 'latency_p95', label: 'Latency p95', value: (m) => m.latency_ms.p95, fmt: (n) => ms(n), upIsBad: true },
  { key: 'unpriced', label: 'Unpriced events', value: (m) => m.unpriced, fmt: (n) => count(n), upIsBad: true },
];

export default function Overview({ ws }: PageProps) {
  useEffect(() => void loadUplot().catch(() => {}), []);
  const [view, setView] = useView();
  const stackBy = view.extra.stack ?? 'model';
  const key = `${ws.id}|${ws.timezone}|${JSON.stringify(view.filters)}|${view.range}|${view.from}|${view.to}`;
  const paths = overviewPaths(ws.id, view, ws.timezone);
  const summary = useAsync((signal) => get<Summary>(paths.summary, { signal }), [key]);
  const series = useAsync((signal) => get<Timeseries>(paths.series, { signal }), [key, stackBy]);
  const usage = useAsync((signal) => get<Usage>(paths.usage, { signal }), [ws.id]);
  const forecast = useAsync((signal) => get<Forecast>(paths.forecast, { signal }), [ws.id]);
  const rules = useAsync((signal) => get<Rule[] | { rules: Rule[] }>(paths.alerts, { signal }), [ws.id]);
  const budgets = useAsync((signal) => get<BudgetsAnswer>(paths.budgets, { signal }), [ws.id]);

  const noEvents = usage.data && usage.data.events.used === 0 && summary.data && summary.data.metrics.requests === 0;
  return (
    <div>
      <PageHead title="Overview" sub={ws.name} />
      <Controls ws={ws} view={view} setView={setView} />
      {noEvents && (
        <div class="card callout" role="note">
          <h2>No events yet</h2>
          <p>Create an ingest key and send your first event: it takes a minute.</p>
          <a class="btn primary" href={`/workspaces/${ws.id}/quickstart`}>
            Open the quickstart
          </a>
        </div>
      )}
      <section aria-label="Key figures">
        <AsyncView a={summary} label="Loading key figures…">
          {(s) => (
            <>
              <div class="kpis">
                {KPIS.map((k) => {
                  const v = k.value(s.metrics);
                  const c = change(s.change[k.key]);
                  const tone = c.dir === 'none' || c.dir === 'flat' ? 'neutral' : (c.dir === 'up') === !!k.upIsBad ? 'bad' : 'good';
                  return (
                    <div class="kpi" key={k.key} data-kpi={k.key} data-value={v ?? ''}>
                      <div class="kpi-label">{k.label}</div>
                      <div class="kpi-value">{k.fmt(v)}</div>
                      <div class={`kpi-change ${tone}`} title="Against the previous period of the same length">
                        {c.text}
                        {c.dir !== 'none' && <span class="sr-only"> against the previous period</span>}
                      </div>
                    </div>
                  );
                })}
              </div>
              <CoveredNote covered={s.covered} ws={ws} />
            </>
          )}
        </AsyncView>
      </section>
      <div class="grid-2">
        <section class="card" aria-labelledby="fc-h">
          <h2 id="fc-h">Month-end forecast</h2>
          <ForecastView f={forecast} rules={rules.data} budgets={budgets.data} wsId={ws.id} />
        </section>
        <section class="card" aria-labelledby="plan-h">
          <h2 id="plan-h">Plan usage</h2>
          <AsyncView a={usage}>
            {(u) => (
              <>
                <Meter label={`Events this month (${u.plan} plan)`} used={u.events.used} limit={u.events.limit} />
                <p class="small muted">
                  The quota resets on {new Date(u.resets_at).toLocaleDateString('en-US', { timeZone: 'UTC', month: 'short', day: 'numeric', year: 'numeric' })} (UTC).{' '}
                  <a href={`/workspaces/${ws.id}/billing`}>Limits and billing</a>
                </p>
              </>
            )}
          </AsyncView>
        </section>
      </div>
      <BudgetsPanel a={budgets} ws={ws} />
      <section class="card" aria-labelledby="cost-h">
        <div class="card-head">
          <h2 id="cost-h">Cost over time</h2>
          <label class="inline">
            <span>Stacked by</span>
            <select value={stackBy} onChange={(e) => setView(withExtra(view, 'stack', (e.target as HTMLSelectElement).value === 'model' ? undefined : (e.target as HTMLSelectElement).value))}>
              {DIMENSIONS.filter((d) => d.id !== 'status').map((d) => (
                <option key={d.id} value={d.id}>
                  {d.label}
                </option>
              ))}
            </select>
          </label>
        </div>
        <AsyncView a={series} label="Loading the cost series…">
          {(t) => <CostChart t={t} tz={ws.timezone} by={stackBy} />}
        </AsyncView>
      </section>
    </div>
  );
}

export function seriesOf(t: Timeseries): ChartSeries[] {
  const out: ChartSeries[] = t.series.map((s) => ({ label: dimValue(s.value), values: s.points }));
  if (t.other) out.push({ label: 'other', values: t.other.points, color: '#8a8f98' });
  return out;
}

function CostChart({ t, tz, by }: { t: Timeseries; tz: string; by: string }) {
  const s = seriesOf(t);
  const total = s.reduce((a, x) => a + x.values.reduce<number>((b, v) => b + (v ?? 0), 0), 0);
  if (s.length === 0 || total === 0) return <Empty title="No cost in this range">Events sent in this range will show here, stacked by {dimensionLabel(by).toLowerCase()}.</Empty>;
  return (
    <>
      <TimeChart buckets={t.buckets} series={s} stacked format={usd} axisFormat={usdCompact} tz={tz} title={`Cost per ${t.granularity}, stacked by ${dimensionLabel(by)}`} />
      <ChartTable buckets={t.buckets} series={s} format={usd} tz={tz} caption={`Cost per ${t.granularity} by ${dimensionLabel(by)}`} total />
    </>
  );
}

/** The forecast's budget line: the smallest of the whole workspace's monthly budgets and budget alerts. */
function budgetOf(rules: Rule[] | { rules: Rule[] } | undefined, budgets: BudgetsAnswer | undefined): number | null {
  const list = Array.isArray(rules) ? rules : rules?.rules ?? [];
  const fromRules = list.filter((r) => !r.filter && (r.condition.metric === 'budget' || r.condition.metric === 'forecast')).map((r) => (r.condition as { budget_usd: number }).budget_usd);
  const fromBudgets = (budgets?.budgets ?? []).filter(({ budget: b }) => !b.scope && b.period.kind === 'month').map(({ budget: b }) => b.amount_usd);
  const all = [...fromRules, ...fromBudgets];
  return all.length ? Math.min(...all) : null;
}

/** Where each budget stands, linking to the Budgets page; a call to action for admins without any. */
function BudgetsPanel({ a, ws }: { a: ReturnType<typeof useAsync<BudgetsAnswer>>; ws: Workspace }) {
  const manage = can(ws.role, 'manage_settings');
  const page = `/workspaces/${ws.id}/budgets`;
  // A server without budgets (404), or still loading: nothing, rather than a card that jumps.
  if (a.error) {
    if (a.error instanceof ApiError && a.error.status === 404) return null;
    return (
      <section class="card" aria-labelledby="bud-h" data-panel="budgets">
        <h2 id="bud-h">Budgets</h2>
        <ErrorBox error={a.error} retry={a.reload} />
      </section>
    );
  }
  if (!a.data) return null;
  const rows = a.data.budgets;
  if (rows.length === 0) {
    if (!manage) return null;
    return (
      <section class="card budget-cta" aria-labelledby="bud-h" data-panel="budgets">
        <div>
          <h2 id="bud-h">Budgets</h2>
          <p class="small muted">See spend against an amount for the month, and let your apps check it before a call.</p>
        </div>
        <a class="btn" href={`${page}?new=1`}>
          Set a monthly budget
        </a>
      </section>
    );
  }
  const shown = rows.slice(0, MAX_PANEL_BUDGETS);
  return (
    <section class="card" aria-labelledby="bud-h" data-panel="budgets">
      <div class="card-head">
        <h2 id="bud-h">Budgets</h2>
        <a href={page}>{manage ? 'Manage budgets' : 'All budgets'}</a>
      </div>
      <ul class="budgets">
        {shown.map(({ budget: b, status: s }) => (
          <BudgetRow key={b.id} b={b} s={s} tz={ws.timezone} />
        ))}
      </ul>
      {rows.length > shown.length && (
        <p class="small">
          <a href={page}>and {rows.length - shown.length} more</a>
        </p>
      )}
      <BudgetLegend {...legendOf(shown)} />
    </section>
  );
}

const MAX_PANEL_BUDGETS = 6;

function ForecastView({ f, rules, budgets, wsId }: { f: ReturnType<typeof useAsync<Forecast>>; rules: Rule[] | { rules: Rule[] } | undefined; budgets: BudgetsAnswer | undefined; wsId: string }) {
  if (f.error) return <ErrorBox error={f.error} retry={f.reload} />;
  if (!f.data) return <Loading />;
  const d = f.data;
  const c = d.cost_usd;
  const budget = budgetOf(rules, budgets);
  const max = Math.max(c.high, c.expected, budget ?? 0, c.so_far) * 1.1 || 1;
  const x = (v: number) => `${((v / max) * 100).toFixed(2)}%`;
  const over = budget !== null && c.expected > budget;
  return (
    <div class="forecast" data-expected={c.expected}>
      <p class="forecast-main">
        <span class="big">{usd(c.expected)}</span> expected for {monthName(d.month)}
      </p>
      <p class="small">
        80% interval {usd(c.low)} – {usd(c.high)} · so far {usd(c.so_far)} after {d.days_elapsed.toFixed(1)} of {d.days_in_month} days ({d.timezone})
      </p>
      <svg class="forecast-bar" viewBox="0 0 100 24" preserveAspectRatio="none" role="img" aria-label={`So far ${usd(c.so_far)}, expected ${usd(c.expected)}, interval ${usd(c.low)} to ${usd(c.high)}${budget !== null ? `, budget ${usd(budget)}` : ''}`}>
        <rect class="fc-track" x="0" y="8" width="100" height="8" />
        <rect class="fc-range" x={x(c.low)} y="4" width={`${(((c.high - c.low) / max) * 100).toFixed(2)}%`} height="16" />
        <rect class="fc-sofar" x="0" y="8" width={x(c.so_far)} height="8" />
        <rect class="fc-expected" x={x(c.expected)} y="2" width="0.8" height="20" />
        {budget !== null && <rect class="fc-budget" x={x(budget)} y="0" width="0.8" height="24" />}
      </svg>
      <ul class="legend">
        <li><span class="sw sofar" aria-hidden="true" />So far</li>
        <li><span class="sw range" aria-hidden="true" />80% interval</li>
        <li><span class="sw expected" aria-hidden="true" />Expected</li>
        {budget !== null && <li><span class="sw budget" aria-hidden="true" />Budget {usd(budget)}</li>}
      </ul>
      {budget !== null ? (
        <p class={over ? 'warn' : 'ok'}>
          <span aria-hidden="true">{over ? '⚠ ' : '✓ '}</span>
          {over ? `Expected to exceed the budget of ${usd(budget)}` : `Expected within the budget of ${usd(budget)}`}
        </p>
      ) : (
        <p class="small muted">
          No monthly budget for the whole workspace. Set one on the <a href={`/workspaces/${wsId}/budgets`}>Budgets</a> page (or a budget alert) to see it here.
        </p>
      )}
      {(d.history_days < 14 || d.clamped) && <p class="small muted">Based on {d.history_days} days of history{d.clamped ? ' (limited by the plan)' : ''}: the interval is wide until there is more.</p>}
    </div>
  );
}
