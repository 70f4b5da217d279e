// The audit log, newest first, paged by cursor (admins and owners).
import { useState } from 'preact/hooks';
import type { PageProps } from '../app';
import { get, withQuery, wsPath } from '../lib/api';
import { dateTime } from '../lib/format';
import { can } from '../lib/store';
import type { AuditEntry } from '../lib/types';
import { Empty, ErrorBox, Loading, PageHead, useAsync } from '../ui';

const SHOWN = new Set(['id', 'workspace', 'workspace_id', 'actor_id', 'at', 'at_ms', 'time', 'actor', 'actor_email', 'email', 'action', 'target', 'ip', 'user_id', 'expires_ms']);

function when(e: AuditEntry): string | number | undefined {
  return (e.at as string) ?? (e.at_ms as number) ?? (e.time as string);
}

export default function Audit({ ws }: PageProps) {
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const cursor = cursors[cursors.length - 1];
  const page = useAsync((signal) => get<{ entries: AuditEntry[]; next_cursor: string | null }>(withQuery(wsPath(ws.id, 'audit'), { cursor: cursor ?? undefined, limit: 50 }), { signal }), [ws.id, cursor]);
  if (!can(ws.role, 'read_audit')) return <div><PageHead title="Audit log" /><Empty title="Admins and owners read the audit log." /></div>;
  return (
    <div>
      <PageHead title="Audit log" sub="Sign-ins, changes to the workspace, keys, members and plans: who, what, when, from where. Kept 400 days." />
      <section class="card">
        {page.error ? (
          <ErrorBox error={page.error} retry={page.reload} />
        ) : !page.data ? (
          <Loading />
        ) : page.data.entries.length === 0 ? (
          <Empty title="Nothing recorded yet" />
        ) : (
          <>
            <div class="table-wrap">
              <table>
                <caption class="sr-only">Audit log, newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">When ({ws.timezone})</th>
                    <th scope="col">Who</th>
                    <th scope="col">Action</th>
                    <th scope="col">Target</th>
                    <th scope="col">Client address</th>
                  </tr>
                </thead>
                <tbody>
                  {page.data.entries.map((e) => {
                    const extra = Object.entries(e).filter(([k, v]) => !SHOWN.has(k) && v !== null && v !== undefined && v !== '');
                    return (
                      <tr key={e.id}>
                        <td>{dateTime(when(e), ws.timezone)}</td>
                        <td>{String(e.actor_email ?? e.email ?? e.actor ?? e.actor_id ?? '—')}</td>
                        <td>
                          <code>{String(e.action ?? '')}</code>
                        </td>
                        <td>
                          {e.target ? <code>{String(e.target)}</code> : '—'}
                          {extra.length > 0 && <div class="small muted">{extra.map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(' · ')}</div>}
                        </td>
                        <td>{e.ip ? String(e.ip) : '—'}</td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
            <nav class="pager" aria-label="Pages of the audit log">
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
      </section>
    </div>
  );
}
