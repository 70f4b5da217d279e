// A deletion job: progress, then the receipt (the page receipt emails link to). Readable by the
// owner who asked even after the workspace is gone.
import { useEffect } from 'preact/hooks';
import { get, wsPath } from '../lib/api';
import { count, dateTime } from '../lib/format';
import { workspaceById } from '../lib/store';
import { AsyncView, PageHead, useAsync } from '../ui';

interface Job {
  id: string;
  workspace: string;
  scope: { scope: string; from: string | null; to: string | null; source: string | null };
  state: string;
  hours_done: number | null;
  hours_total: number | null;
  deleted: Record<string, number>;
  created_at: string;
  receipt: { deleted: Record<string, number>; started_at: string; finished_at: string | null; backups: string } | null;
}

const KIND: Record<string, string> = {
  events: 'Events',
  rollups: 'Rollup items',
  keys: 'API keys',
  members: 'Memberships',
  invitations: 'Invitations',
  alert_rules: 'Alert rules',
  audit_entries: 'Audit log entries',
  billing_records: 'Billing records',
  subscriptions_cancelled: 'Subscriptions cancelled',
  archive_objects: 'Archived files (reports, exports)',
};

export default function Deletion({ params }: { params: Record<string, string> }) {
  const ws = workspaceById(params.ws);
  const tz = ws?.timezone ?? 'UTC';
  const a = useAsync((signal) => get<Job>(wsPath(params.ws, 'deletions', params.job), { signal }), [params.ws, params.job]);
  const done = a.data?.state === 'done';
  useEffect(() => {
    if (!a.data || done) return;
    const t = setTimeout(a.reload, 1000);
    return () => clearTimeout(t);
  }, [a.data, done]);
  return (
    <div>
      <PageHead title={done ? 'Deletion receipt' : 'Deletion in progress'} sub={`${ws ? ws.name : `Workspace ${params.ws}`} · times in ${tz}`} />
      <AsyncView a={a}>
        {(j) => {
          const counts = j.receipt?.deleted ?? j.deleted;
          return (
            <section class="card" data-state={j.state}>
              <dl class="kv">
                <dt>What</dt>
                <dd>
                  {j.scope.scope === 'workspace'
                    ? 'The whole workspace'
                    : `Usage data${j.scope.from ? ` from ${dateTime(j.scope.from, tz)}` : ''}${j.scope.to ? ` to ${dateTime(j.scope.to, tz)}` : ''}${j.scope.source ? `, source ${j.scope.source}` : ''}`}
                </dd>
                <dt>State</dt>
                <dd>
                  <span role="status" aria-live="polite">
                    {done ? '✓ done' : `${j.state}…`}
                    {!done && j.hours_total ? ` (${count(j.hours_done ?? 0)} of ${count(j.hours_total)} hours looked at)` : ''}
                  </span>
                </dd>
                {!done && j.hours_total ? (
                  <>
                    <dt>Progress</dt>
                    <dd>
                      <progress max={j.hours_total} value={j.hours_done ?? 0} aria-label="Hours looked at" />
                    </dd>
                  </>
                ) : null}
                <dt>Requested</dt>
                <dd>{dateTime(j.created_at, tz)}</dd>
                {j.receipt && (
                  <>
                    <dt>Started</dt>
                    <dd>{dateTime(j.receipt.started_at, tz)}</dd>
                    <dt>Finished</dt>
                    <dd>{dateTime(j.receipt.finished_at, tz)}</dd>
                  </>
                )}
                <dt>Job</dt>
                <dd>
                  <code>{j.id}</code>
                </dd>
              </dl>
              <h2>{done ? 'Deleted' : 'Deleted so far'}</h2>
              {Object.keys(counts).length === 0 ? (
                <p>Nothing yet.</p>
              ) : (
                <table class="compact">
                  <caption class="sr-only">Items deleted by kind</caption>
                  <tbody>
                    {Object.entries(counts).map(([k, v]) => (
                      <tr key={k} data-kind={k}>
                        <th scope="row">{KIND[k] ?? k}</th>
                        <td class="num">{count(v)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
              {j.receipt && <p class="small">{j.receipt.backups}</p>}
              {done && !ws && (
                <p>
                  <a href="/">Back to your workspaces</a>
                </p>
              )}
            </section>
          );
        }}
      </AsyncView>
    </div>
  );
}
