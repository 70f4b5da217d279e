// Alert rules: where each stands, create one.
import { useState } from 'preact/hooks';
import type { PageProps } from '../app';
import { get, listOf, wsPath } from '../lib/api';
import { dateTime } from '../lib/format';
import { navigate, search } from '../lib/router';
import { can } from '../lib/store';
import type { Rule } from '../lib/types';
import { AsyncView, Empty, PageHead, toast, useAsync } from '../ui';
import { RuleForm, describeRule } from './alertform';
import { RuleState } from './alert';

export default function Alerts({ ws }: PageProps) {
  const a = useAsync((signal) => get<unknown>(wsPath(ws.id, 'alerts'), { signal }).then((x) => listOf<Rule>(x, 'rules')), [ws.id]);
  const kind = new URLSearchParams(search.value).get('new');
  const [creating, setCreating] = useState(!!kind);
  const manage = can(ws.role, 'manage_alerts');
  return (
    <div>
      <PageHead title="Alerts" sub="Be told before a budget is blown, when errors or latency climb, or when LLMtrack drifts from the provider's bill. Checked every minute here, every 5 minutes on AWS.">
        {manage && !creating && (
          <button type="button" class="btn primary" onClick={() => setCreating(true)}>
            New alert
          </button>
        )}
      </PageHead>
      {creating && manage && (
        <section class="card" aria-labelledby="new-h">
          <h2 id="new-h">New alert</h2>
          <RuleForm
            ws={ws.id}
            kind={kind ?? undefined}
            onCancel={() => setCreating(false)}
            onDone={(r) => {
              setCreating(false);
              toast(`Alert “${r.name}” created.`);
              navigate(`/workspaces/${ws.id}/alerts/${r.id}`);
            }}
          />
        </section>
      )}
      <AsyncView a={a}>
        {(rules) =>
          rules.length === 0 ? (
            <Empty title="No alerts yet">{manage ? 'Create one: a monthly budget is a good start.' : 'Admins and owners create alerts.'}</Empty>
          ) : (
            <div class="table-wrap card">
              <table>
                <caption class="sr-only">Alert rules</caption>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Condition</th>
                    <th scope="col">Channels</th>
                    <th scope="col">State</th>
                    <th scope="col">Created</th>
                  </tr>
                </thead>
                <tbody>
                  {rules.map((r) => (
                    <tr key={r.id} data-rule={r.id}>
                      <td>
                        <a href={`/workspaces/${ws.id}/alerts/${r.id}`}>{r.name}</a>
                      </td>
                      <td>{describeRule(r)}</td>
                      <td>{[r.email && 'email', r.slack && 'Slack', r.webhook_url && 'webhook'].filter(Boolean).join(', ')}</td>
                      <td>
                        <RuleState r={r} tz={ws.timezone} />
                      </td>
                      <td>{dateTime(r.created_at, ws.timezone)}</td>
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
