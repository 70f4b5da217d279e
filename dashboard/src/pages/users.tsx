// End-users: who drives usage, by cost.
import { Controls, CoveredNote, useView } from '../analytics';
import type { PageProps } from '../app';
import { get, withQuery } from '../lib/api';
import { download, fileName, toCsv } from '../lib/csv';
import { count, ms, pct, usd } from '../lib/format';
import { navigate } from '../lib/router';
import type { Breakdown, BreakdownRow } from '../lib/types';
import { apiParams, rangeLabel, sharedQuery, withFilter } from '../lib/urlstate';
import { AsyncView, type Col, Empty, PageHead, Table, useAsync } from '../ui';
import { exportColumns } from './explore';

export default function Users({ ws }: PageProps) {
  const [view, setView] = useView();
  // The user filter makes no sense on a list of users.
  const v = withFilter(view, 'user', undefined);
  const key = `${ws.id}|${ws.timezone}|${JSON.stringify(v.filters)}|${v.range}|${v.from}|${v.to}`;
  const a = useAsync((signal) => get<Breakdown>(withQuery('/v1/stats/users', apiParams(ws.id, v, ws.timezone, { limit: 100 })), { signal }), [key]);
  const q = sharedQuery(v);
  const cols: Col<BreakdownRow>[] = [
    { key: 'value', label: 'End-user', render: (r) => (r.value === '' ? '(no user id)' : r.value), sort: (r) => r.value },
    { key: 'cost', label: 'Cost', render: (r) => usd(r.metrics.cost_usd), sort: (r) => r.metrics.cost_usd, numeric: true },
    { key: 'requests', label: 'Requests', render: (r) => count(r.metrics.requests), sort: (r) => r.metrics.requests, numeric: true },
    { key: 'tokens', label: 'Tokens', render: (r) => count(r.metrics.tokens.total), sort: (r) => r.metrics.tokens.total, numeric: true },
    { key: 'errors', label: 'Error rate', render: (r) => pct(r.metrics.error_rate), sort: (r) => r.metrics.error_rate, numeric: true },
    { key: 'p95', label: 'p95 latency', render: (r) => ms(r.metrics.latency_ms.p95), sort: (r) => r.metrics.latency_ms.p95, numeric: true },
  ];
  return (
    <div>
      <PageHead title="End-users" sub="Your own end-users (the user_id you send), by what they cost." />
      <Controls ws={ws} view={v} setView={setView} />
      <section class="card" aria-labelledby="u-h">
        <div class="card-head">
          <h2 id="u-h">Top end-users</h2>
          {a.data && a.data.rows.length > 0 && (
            <button type="button" class="btn" onClick={() => download(fileName(['llmtrack', ws.name, 'users', rangeLabel(v)], 'csv'), toCsv(exportColumns('user'), a.data!.rows), 'text/csv')}>
              Export CSV
            </button>
          )}
        </div>
        <AsyncView a={a}>
          {(b) =>
            b.rows.length === 0 ? (
              <Empty title="No end-users in this range">Send <code>user_id</code> with your events to see who drives usage.</Empty>
            ) : (
              <>
                <Table columns={cols} rows={b.rows} caption="End-users by cost" captionHidden rowKey={(r) => r.value} defaultSort={{ key: 'cost', desc: true }}
                  onRowClick={(r) => navigate(`/workspaces/${ws.id}/users/${encodeURIComponent(r.value)}${q ? `?${q}` : ''}`)} rowLabel={(r) => `Open end-user ${r.value || '(no user id)'}`} />
                <CoveredNote covered={b.covered} ws={ws} />
              </>
            )
          }
        </AsyncView>
      </section>
    </div>
  );
}
