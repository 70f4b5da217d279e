// One alert rule (the page alert emails link to): state, history, test, edit, delete.
import { useState } from 'preact/hooks';
import type { PageProps } from '../app';
import { del, describe, get, post, wsPath } from '../lib/api';
import { dateTime } from '../lib/format';
import { navigate } from '../lib/router';
import { can } from '../lib/store';
import type { Rule } from '../lib/types';
import { AsyncView, Badge, ConfirmButton, Empty, ErrorBox, Loading, PageHead, toast, useAsync } from '../ui';
import { RuleForm, describeRule } from './alertform';

interface Delivery {
  channel: string;
  ok: boolean;
  attempts: number;
  detail: string;
}
interface AlertEvent {
  id: string;
  at_ms: number;
  transition: { kind?: string; level?: number; value?: number; threshold?: number; [k: string]: unknown } | null;
  deliveries: Delivery[];
}

export function RuleState({ r, tz }: { r: Rule; tz: string }) {
  return r.state === 'firing' ? (
    <Badge kind="bad">
      <span aria-hidden="true">● </span>firing{r.level > 1 ? ` (level ${r.level})` : ''}
      {r.since ? ` since ${dateTime(r.since, tz)}` : ''}
    </Badge>
  ) : (
    <Badge kind="good">
      <span aria-hidden="true">✓ </span>ok
    </Badge>
  );
}

/** The kind of a transition, whichever way the API tags it. */
export function transitionKind(t: AlertEvent['transition']): string {
  if (!t) return 'test';
  if (typeof t.kind === 'string') return t.kind;
  const k = Object.keys(t)[0];
  return k ? k.toLowerCase() : 'change';
}

export default function AlertPage({ ws, params }: PageProps) {
  const rule = useAsync((signal) => get<Rule>(wsPath(ws.id, 'alerts', params.rule), { signal }), [ws.id, params.rule]);
  const history = useAsync((signal) => get<AlertEvent[]>(wsPath(ws.id, 'alerts', params.rule, 'history'), { signal }), [ws.id, params.rule]);
  const [editing, setEditing] = useState(false);
  const [testing, setTesting] = useState(false);
  const manage = can(ws.role, 'manage_alerts');
  return (
    <div>
      <p class="crumbs">
        <a href={`/workspaces/${ws.id}/alerts`}>← Alerts</a>
      </p>
      <AsyncView a={rule}>
        {(r) => (
          <>
            <PageHead title={r.name} sub={describeRule(r)}>
              {manage && !editing && (
                <>
                  <button
                    type="button"
                    class="btn"
                    disabled={testing}
                    onClick={async () => {
                      setTesting(true);
                      try {
                        const ev = await post<AlertEvent>(wsPath(ws.id, 'alerts', r.id, 'test'));
                        const bad = ev.deliveries.filter((d) => !d.ok);
                        toast(bad.length ? `Test sent; ${bad.map((d) => `${d.channel} failed: ${d.detail}`).join('; ')}` : `Test notification sent (${ev.deliveries.map((d) => d.channel).join(', ')}).`, bad.length ? 'error' : 'ok');
                        history.reload();
                      } catch (e) {
                        toast(describe(e), 'error');
                      } finally {
                        setTesting(false);
                      }
                    }}
                  >
                    {testing ? 'Sending…' : 'Send a test notification'}
                  </button>
                  <button type="button" class="btn" onClick={() => setEditing(true)}>
                    Edit
                  </button>
                  <ConfirmButton
                    label="Delete"
                    title={`Delete “${r.name}”?`}
                    danger
                    message="The rule and its history are deleted."
                    onConfirm={async () => {
                      await del(wsPath(ws.id, 'alerts', r.id));
                      toast(`Alert “${r.name}” deleted.`);
                      navigate(`/workspaces/${ws.id}/alerts`);
                    }}
                  />
                </>
              )}
            </PageHead>
            {r.problem && (
              <p class="notice" role="status">
                {r.problem}
              </p>
            )}
            {editing ? (
              <section class="card">
                <h2>Edit</h2>
                <p class="small muted">Changing what the rule watches starts it over at ok.</p>
                <RuleForm
                  ws={ws.id}
                  rule={r}
                  onCancel={() => setEditing(false)}
                  onDone={(nr) => {
                    setEditing(false);
                    rule.set({ ...nr, webhook_secret: undefined });
                    toast('Alert saved.');
                  }}
                />
              </section>
            ) : (
              <section class="card">
                <dl class="kv">
                  <dt>State</dt>
                  <dd data-state={r.state}>
                    <RuleState r={r} tz={ws.timezone} />
                  </dd>
                  <dt>Watches</dt>
                  <dd>
                    {r.condition.metric === 'anomaly' && r.condition.each
                      ? `Each ${r.condition.each}${r.filter ? ` in ${r.filter.dimension} = ${r.filter.value}` : ''}`
                      : r.filter
                        ? `${r.filter.dimension} = ${r.filter.value}`
                        : r.condition.metric === 'any_value'
                          ? `Each ${r.condition.dimension}`
                          : 'All traffic'}
                  </dd>
                  {(r.condition.metric === 'any_value' || (r.condition.metric === 'anomaly' && r.condition.each)) && (
                    <>
                      <dt>{r.condition.metric === 'anomaly' ? 'Unusual now' : 'Over now'}</dt>
                      <dd data-testid="over-now">{r.values?.length ? r.values.slice(0, 20).join(', ') + (r.values.length > 20 ? ` and ${r.values.length - 20} more` : '') : 'None'}</dd>
                    </>
                  )}
                  <dt>Email</dt>
                  <dd>{r.email ? 'Owners and admins' : 'Off'}</dd>
                  <dt>Slack</dt>
                  <dd>{r.slack ? <code>{r.slack}</code> : 'None'}</dd>
                  <dt>Webhook</dt>
                  <dd>{r.webhook_url ? <code>{r.webhook_url}</code> : 'None'}</dd>
                  <dt>Created</dt>
                  <dd>{dateTime(r.created_at, ws.timezone)}</dd>
                </dl>
              </section>
            )}
          </>
        )}
      </AsyncView>
      <section class="card" aria-labelledby="hist-h">
        <h2 id="hist-h">History</h2>
        {history.error ? (
          <ErrorBox error={history.error} retry={history.reload} />
        ) : !history.data ? (
          <Loading />
        ) : history.data.length === 0 ? (
          <Empty title="No notifications yet">Each time the rule fires or resolves, or you send a test, it is listed here.</Empty>
        ) : (
          <div class="table-wrap">
            <table>
              <caption class="sr-only">Notifications, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">When ({ws.timezone})</th>
                  <th scope="col">What</th>
                  <th scope="col">Measured / threshold</th>
                  <th scope="col">Deliveries</th>
                </tr>
              </thead>
              <tbody>
                {history.data.map((h) => {
                  const kind = transitionKind(h.transition);
                  const t = h.transition ? ((h.transition.kind ? h.transition : Object.values(h.transition)[0]) as { value?: number; threshold?: number; about?: string; count?: number; values?: string[] }) : null;
                  return (
                    <tr key={h.id}>
                      <td>{dateTime(h.at_ms, ws.timezone)}</td>
                      <td>
                        <Badge kind={kind === 'firing' ? 'bad' : kind === 'resolved' ? 'good' : 'muted'}>{kind}</Badge>
                      </td>
                      <td>
                        {t?.about && <>{t.about}: </>}
                        {t && t.value !== undefined ? `${round(t.value)} / ${round(t.threshold)}` : t?.count !== undefined ? `${t.count} more: ${(t.values ?? []).join(', ')}` : '—'}
                      </td>
                      <td>
                        <ul class="plain">
                          {h.deliveries.map((d, i) => (
                            <li key={i}>
                              {d.ok ? '✓' : '✕'} {d.channel}: {d.ok ? 'delivered' : 'failed'} ({d.attempts} attempt{d.attempts === 1 ? '' : 's'}) — {d.detail}
                            </li>
                          ))}
                          {h.deliveries.length === 0 && <li>no channel</li>}
                        </ul>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </div>
  );
}

function round(v: number | undefined): string {
  if (v === undefined || v === null) return '—';
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}
