// One end-user: their figures, daily cost and their request log.
import { Controls, CoveredNote, useView } from '../analytics';
import { ChartTable, TimeChart } from '../chart';
import type { PageProps } from '../app';
import { get, withQuery } from '../lib/api';
import { count, ms, pct, usd, usdCompact } from '../lib/format';
import type { UserUsage } from '../lib/types';
import { apiParams, sharedQuery, withFilter } from '../lib/urlstate';
import { AsyncView, Empty, PageHead, useAsync } from '../ui';
import { RequestLog } from './requests';

export default function UserPage({ ws, params }: PageProps) {
  const [view, setView] = useView();
  const user = params.user;
  const v = withFilter(view, 'user', undefined);
  const key = `${ws.id}|${ws.timezone}|${user}|${JSON.stringify(v.filters)}|${v.range}|${v.from}|${v.to}`;
  const a = useAsync((signal) => get<UserUsage>(withQuery(`/v1/stats/users/${encodeURIComponent(user)}`, apiParams(ws.id, v, ws.timezone)), { signal }), [key]);
  const q = sharedQuery(v);
  return (
    <div>
      <p class="crumbs">
        <a href={`/workspaces/${ws.id}/users${q ? `?${q}` : ''}`}>← End-users</a>
      </p>
      <PageHead title={`End-user ${user}`} />
      <Controls ws={ws} view={v} setView={setView} />
      <AsyncView a={a}>
        {(u) => (
          <>
            <div class="kpis">
              <div class="kpi" data-kpi="cost_usd" data-value={u.metrics.cost_usd}><div class="kpi-label">Cost</div><div class="kpi-value">{usd(u.metrics.cost_usd)}</div></div>
              <div class="kpi" data-kpi="requests" data-value={u.metrics.requests}><div class="kpi-label">Requests</div><div class="kpi-value">{count(u.metrics.requests)}</div></div>
              <div class="kpi"><div class="kpi-label">Tokens</div><div class="kpi-value">{count(u.metrics.tokens.total)}</div></div>
              <div class="kpi"><div class="kpi-label">Error rate</div><div class="kpi-value">{pct(u.metrics.error_rate)}</div></div>
              <div class="kpi"><div class="kpi-label">Latency p95</div><div class="kpi-value">{ms(u.metrics.latency_ms.p95)}</div></div>
            </div>
            <CoveredNote covered={u.covered} ws={ws} />
            <section class="card" aria-labelledby="ud-h">
              <h2 id="ud-h">Daily cost</h2>
              {u.metrics.requests === 0 ? (
                <Empty title="No usage by this end-user in this range" />
              ) : (
                <>
                  <TimeChart buckets={u.days} series={[{ label: 'Cost', values: u.daily_cost_usd }]} format={usd} axisFormat={usdCompact} tz={ws.timezone} title={`Daily cost of ${user}`} height={220} />
                  <ChartTable buckets={u.days} series={[{ label: 'Cost', values: u.daily_cost_usd }]} format={usd} tz={ws.timezone} caption={`Daily cost of ${user}`} />
                </>
              )}
            </section>
          </>
        )}
      </AsyncView>
      <RequestLog ws={ws} view={withFilter(v, 'user', user)} title={`Requests of ${user}`} />
    </div>
  );
}
