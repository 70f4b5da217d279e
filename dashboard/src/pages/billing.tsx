// Billing and plan usage: the plan, every limit against use, renewal or grace date, Checkout and
// the customer portal (or, plainly, that billing is not configured here).
import { useEffect, useState } from 'preact/hooks';
import type { PageProps } from '../app';
import { describe, get, post, wsPath } from '../lib/api';
import { date } from '../lib/format';
import { search } from '../lib/router';
import { about, can, loadAbout } from '../lib/store';
import type { Usage } from '../lib/types';
import { AsyncView, Meter, PageHead, useAsync } from '../ui';

const PLANS = [
  { id: 'free', label: 'Free', events: '10,000', history: '7 days', keys: 2, members: 1, rules: 2 },
  { id: 'pro', label: 'Pro', events: '1,000,000', history: '90 days', keys: 20, members: 10, rules: 20 },
  { id: 'team', label: 'Team', events: '10,000,000', history: '365 days', keys: 100, members: 50, rules: 100 },
];

export default function Billing({ ws }: PageProps) {
  const usage = useAsync((signal) => get<Usage>(wsPath(ws.id, 'usage'), { signal }), [ws.id]);
  useEffect(() => {
    void loadAbout();
  }, []);
  const q = new URLSearchParams(search.value);
  const checkout = q.get('checkout');
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const owner = can(ws.role, 'billing');
  const go = async (what: 'checkout' | 'portal', plan?: string) => {
    setBusy(plan ?? what);
    setError(null);
    try {
      const r = await post<{ url: string }>(wsPath(ws.id, 'billing', what), plan ? { plan } : {});
      location.assign(r.url);
    } catch (e) {
      setError(describe(e));
      setBusy(null);
    }
  };
  const configured = about.value?.billing_configured;
  return (
    <div>
      <PageHead title="Billing and usage" sub={`${ws.name} is on the ${ws.plan} plan.`} />
      {checkout === 'success' && (
        <p class="notice ok" role="status">
          <span aria-hidden="true">✓ </span>Thank you. Your subscription is being confirmed by Stripe; the plan changes as soon as it is (usually within a minute). Reload to see it.
        </p>
      )}
      {checkout === 'cancelled' && (
        <p class="notice" role="status">
          Checkout was cancelled; nothing changed.
        </p>
      )}
      <AsyncView a={usage}>
        {(u) => (
          <>
            <section class="card" aria-labelledby="lim-h">
              <h2 id="lim-h">
                {u.plan[0].toUpperCase() + u.plan.slice(1)} plan: limits and use
              </h2>
              <Meter label={`Events in ${u.month} (UTC)`} used={u.events.used} limit={u.events.limit} />
              <Meter label="Active API keys" used={u.active_keys.used} limit={u.active_keys.limit} />
              <Meter label={u.pending_invitations ? `Members (${u.pending_invitations} pending invitation${u.pending_invitations === 1 ? '' : 's'} included)` : 'Members'} used={u.members.used} limit={u.members.limit} />
              <Meter label="Alert rules" used={u.alert_rules.used} limit={u.alert_rules.limit} />
              <p>
                Request-level history: <strong>{u.history_days} days</strong>. Monthly reports kept: <strong>{u.report_months} months</strong>. The event quota resets on{' '}
                <strong>{date(u.resets_at, 'UTC')}</strong> (UTC).
              </p>
            </section>
            <section class="card" aria-labelledby="sub-h">
              <h2 id="sub-h">Subscription</h2>
              {u.subscription ? (
                <dl class="kv">
                  <dt>Status</dt>
                  <dd>{u.subscription.status.replace(/_/g, ' ')}</dd>
                  <dt>Plan paid for</dt>
                  <dd>{u.subscription.plan}</dd>
                  {u.subscription.period_ends_at && (
                    <>
                      <dt>{u.subscription.cancel_at_period_end ? 'Ends on' : 'Renews on'}</dt>
                      <dd>{date(u.subscription.period_ends_at, ws.timezone)}</dd>
                    </>
                  )}
                  {u.subscription.grace_ends_at && (
                    <>
                      <dt>Payment failed</dt>
                      <dd class="warn">
                        <span aria-hidden="true">⚠ </span>Update your payment method before {date(u.subscription.grace_ends_at, ws.timezone)}, or the workspace returns to the free plan.
                      </dd>
                    </>
                  )}
                </dl>
              ) : (
                <p>No subscription: {u.plan === 'free' ? 'the free plan.' : `the ${u.plan} plan was set by the operator.`}</p>
              )}
              {about.value === undefined ? null : !configured ? (
                <p class="notice" data-billing="not-configured">
                  <strong>Billing is not configured</strong> on this LLMtrack server, so plans cannot be bought here. The operator sets plans with{' '}
                  <code>llmtrack admin set-plan --workspace {ws.id} --plan pro|team</code>.
                </p>
              ) : !owner ? (
                <p class="muted">Only owners change the plan or the payment details.</p>
              ) : (
                <div class="actions start">
                  {u.subscription && (
                    <button type="button" class="btn" disabled={!!busy} onClick={() => void go('portal')}>
                      {busy === 'portal' ? 'Opening…' : 'Manage billing (Stripe portal)'}
                    </button>
                  )}
                  {!u.subscription || u.plan === 'free'
                    ? PLANS.filter((p) => p.id !== 'free').map((p) => (
                        <button key={p.id} type="button" class="btn primary" disabled={!!busy} onClick={() => void go('checkout', p.id)}>
                          {busy === p.id ? 'Opening Stripe…' : `Upgrade to ${p.label}`}
                        </button>
                      ))
                    : null}
                </div>
              )}
              {error && (
                <p class="field-error" role="alert">
                  {error}
                </p>
              )}
            </section>
            <section class="card" aria-labelledby="plans-h">
              <h2 id="plans-h">Plans</h2>
              <div class="table-wrap">
                <table>
                  <caption class="sr-only">What each plan includes</caption>
                  <thead>
                    <tr>
                      <th scope="col">Plan</th>
                      <th scope="col" class="num">Events / month</th>
                      <th scope="col">History</th>
                      <th scope="col" class="num">Keys</th>
                      <th scope="col" class="num">Members</th>
                      <th scope="col" class="num">Alert rules</th>
                    </tr>
                  </thead>
                  <tbody>
                    {PLANS.map((p) => (
                      <tr key={p.id} aria-current={p.id === u.plan ? 'true' : undefined}>
                        <th scope="row">
                          {p.label}
                          {p.id === u.plan ? ' (current)' : ''}
                        </th>
                        <td class="num">{p.events}</td>
                        <td>{p.history}</td>
                        <td class="num">{p.keys}</td>
                        <td class="num">{p.members}</td>
                        <td class="num">{p.rules}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </section>
          </>
        )}
      </AsyncView>
    </div>
  );
}
