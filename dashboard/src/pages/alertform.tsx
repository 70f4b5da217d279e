// The alert rule form (create and edit), every kind, with the API's validation messages inline.
import { useState } from 'preact/hooks';
import { ApiError, describe, patch, post, wsPath } from '../lib/api';
import { usd } from '../lib/format';
import type { Rule } from '../lib/types';
import { CopyField, Field, Modal } from '../ui';

export const KINDS = [
  { id: 'cost', label: 'Cost over an amount (day or month)' },
  { id: 'budget', label: 'Share of a monthly budget reached' },
  { id: 'forecast', label: 'Month-end forecast over budget' },
  { id: 'error_rate', label: 'Error rate over a percentage' },
  { id: 'latency_p95', label: 'p95 latency over a value' },
  { id: 'coverage', label: "Coverage of the provider's bill under a percentage" },
  { id: 'drift', label: "Cost drifting from the provider's bill" },
  { id: 'any_value', label: 'Any user, feature, model or source over a limit' },
  { id: 'anomaly', label: 'An unusual hour for the hour of the week (no threshold)' },
] as const;

const DIMENSION_NAMES: Record<string, string> = { user: 'end-user', feature: 'feature', model: 'model', source: 'source' };
/** What an `anomaly` rule watches, as a sentence says it. */
const ANOMALY_ON: Record<string, string> = { cost: 'cost', requests: 'requests', tokens: 'tokens', error_rate: 'error rate' };

/** A window of hours in words: "24 h", "7 days". */
const hours = (h: number) => (h >= 48 && h % 24 === 0 ? `${h / 24} days` : `${h} h`);

/** Kinds compared with the provider's bill (Reconciliation): whole-workspace, no filter. */
const BILL_KINDS = ['coverage', 'drift'];
/** Kinds that take no filter: the bill's and `any_value` (it watches every value itself). An
 * `anomaly` rule takes one: it then watches that value's own series. */
const NO_FILTER = [...BILL_KINDS, 'any_value'];

/** A sentence for a rule's condition and filter. */
export function describeRule(r: Pick<Rule, 'condition' | 'filter'>): string {
  const c = r.condition;
  let s: string;
  switch (c.metric) {
    case 'cost':
      s = `cost of the ${c.period} (UTC) over ${usd(c.over_usd)}`;
      break;
    case 'budget':
      s = c.budget_id
        ? `${c.thresholds_pct?.length ? `${c.thresholds_pct.join('%, ')}%` : 'the warning threshold and 100%'} of the budget ${c.budget_id}`
        : `${c.thresholds_pct.join('%, ')}% of a ${usd(c.budget_usd)} monthly budget`;
      break;
    case 'forecast':
      s = `month-end forecast over ${usd(c.budget_usd)}`;
      break;
    case 'error_rate':
      s = `error rate over ${c.over_pct}% in ${c.window_minutes} min (at least ${c.min_requests ?? 20} requests)`;
      break;
    case 'latency_p95':
      s = `p95 latency over ${c.over_ms} ms in ${c.window_minutes} min`;
      break;
    case 'coverage':
      s = `LLMtrack saw under ${c.under_pct}% of the provider's billed tokens over the last ${plural(c.days, 'imported day')}`;
      break;
    case 'drift':
      s = `LLMtrack's cost ${c.over_pct}% or more away from the provider's bill over the last ${plural(c.days, 'imported day')}`;
      break;
    case 'any_value':
      s = `any ${DIMENSION_NAMES[c.dimension] ?? c.dimension} over ${c.over_usd !== undefined ? usd(c.over_usd) : `${c.over_requests} requests`} in the last ${hours(c.window_hours)}`;
      break;
    case 'anomaly':
      s = c.each
        ? `${ANOMALY_ON[c.on] ?? c.on} of any ${DIMENSION_NAMES[c.each] ?? c.each} unusual for the hour of the week`
        : `${ANOMALY_ON[c.on] ?? c.on} unusual for the hour of the week (contributors by ${DIMENSION_NAMES[c.dimension ?? 'feature'] ?? c.dimension})`;
      break;
    default:
      s = JSON.stringify(c);
  }
  return r.filter ? `${s}, for ${r.filter.dimension} ${r.filter.value}` : s;
}

const plural = (n: number, what: string) => (n === 1 ? what : `${n} ${what}s`);

interface Form {
  name: string;
  metric: string;
  period: string;
  over_usd: string;
  budget_usd: string;
  /** The budget a `budget` rule follows ('' for a fixed amount): kept as it is when edited. */
  budget_id?: string;
  thresholds: string;
  over_pct: string;
  window_minutes: string;
  min_requests: string;
  over_ms: string;
  under_pct: string;
  drift_pct: string;
  days: string;
  each: string;
  each_unit: string;
  each_over: string;
  window_hours: string;
  /** An `anomaly` rule's metric, the dimension its contributors are named by, and the
   * dimension whose values it judges one by one ('' for the total, or the filter's value). */
  anomaly_on: string;
  anomaly_by: string;
  anomaly_each: string;
  dimension: string;
  value: string;
  email: boolean;
  webhook_url: string;
  /** A new Slack incoming webhook (the saved one is sealed: only its hint comes back). */
  slack_url: string;
  remove_slack: boolean;
}

function toForm(r?: Rule, kind?: string): Form {
  const c = (r?.condition ?? {}) as Record<string, unknown>;
  return {
    name: r?.name ?? '',
    metric: (c.metric as string) ?? kind ?? 'budget',
    period: (c.period as string) ?? 'day',
    over_usd: c.over_usd !== undefined ? String(c.over_usd) : '',
    budget_usd: c.budget_usd !== undefined ? String(c.budget_usd) : '',
    budget_id: (c.metric === 'budget' && (c.budget_id as string)) || '',
    thresholds: Array.isArray(c.thresholds_pct) ? (c.thresholds_pct as number[]).join(', ') : '50, 80, 100',
    over_pct: c.metric !== 'drift' && c.over_pct !== undefined ? String(c.over_pct) : '5',
    window_minutes: c.window_minutes !== undefined ? String(c.window_minutes) : '15',
    min_requests: c.min_requests !== undefined ? String(c.min_requests) : '20',
    over_ms: c.over_ms !== undefined ? String(c.over_ms) : '',
    under_pct: c.under_pct !== undefined ? String(c.under_pct) : '80',
    // Drift's over_pct has its own field: the error rate's default (5) is not a good drift.
    drift_pct: c.metric === 'drift' && c.over_pct !== undefined ? String(c.over_pct) : '10',
    days: c.days !== undefined ? String(c.days) : '3',
    each: (c.metric === 'any_value' && (c.dimension as string)) || 'user',
    each_unit: c.over_requests !== undefined ? 'requests' : 'usd',
    each_over: c.over_requests !== undefined ? String(c.over_requests) : c.metric === 'any_value' && c.over_usd !== undefined ? String(c.over_usd) : '',
    window_hours: c.window_hours !== undefined ? String(c.window_hours) : '24',
    anomaly_on: (c.metric === 'anomaly' && (c.on as string)) || 'cost',
    anomaly_by: (c.metric === 'anomaly' && (c.dimension as string)) || 'feature',
    anomaly_each: (c.metric === 'anomaly' && (c.each as string)) || '',
    dimension: r?.filter?.dimension ?? '',
    value: r?.filter?.value ?? '',
    email: r?.email ?? true,
    webhook_url: r?.webhook_url ?? '',
    slack_url: '',
    remove_slack: false,
  };
}

const num = (s: string): number | string => (s.trim() === '' || Number.isNaN(Number(s)) ? s.trim() : Number(s));

/** The request body for a form: values sent as typed so the API names what is wrong. */
export function conditionOf(
  f: Pick<Form, 'metric' | 'period' | 'over_usd' | 'budget_usd' | 'thresholds' | 'over_pct' | 'window_minutes' | 'min_requests' | 'over_ms'> &
    Partial<Pick<Form, 'budget_id' | 'under_pct' | 'drift_pct' | 'days' | 'each' | 'each_unit' | 'each_over' | 'window_hours' | 'anomaly_on' | 'anomaly_by' | 'anomaly_each'>>,
): Record<string, unknown> {
  switch (f.metric) {
    case 'cost':
      return { metric: 'cost', period: f.period, over_usd: num(f.over_usd) };
    case 'budget': {
      const thresholds_pct = f.thresholds.split(/[\s,;]+/).filter(Boolean).map(num);
      // A rule following a budget takes its amount from it; no thresholds: the budget's.
      if (f.budget_id) return { metric: 'budget', budget_id: f.budget_id, ...(thresholds_pct.length ? { thresholds_pct } : {}) };
      return { metric: 'budget', budget_usd: num(f.budget_usd), thresholds_pct };
    }
    case 'forecast':
      return { metric: 'forecast', budget_usd: num(f.budget_usd) };
    case 'error_rate':
      return { metric: 'error_rate', over_pct: num(f.over_pct), window_minutes: num(f.window_minutes), min_requests: num(f.min_requests) };
    case 'latency_p95':
      return { metric: 'latency_p95', over_ms: num(f.over_ms), window_minutes: num(f.window_minutes) };
    case 'coverage':
      return { metric: 'coverage', under_pct: num(f.under_pct ?? ''), days: num(f.days ?? '') };
    case 'drift':
      return { metric: 'drift', over_pct: num(f.drift_pct ?? ''), days: num(f.days ?? '') };
    case 'any_value':
      return {
        metric: 'any_value',
        dimension: f.each ?? 'user',
        [f.each_unit === 'requests' ? 'over_requests' : 'over_usd']: num(f.each_over ?? ''),
        window_hours: num(f.window_hours ?? ''),
      };
    case 'anomaly':
      return { metric: 'anomaly', on: f.anomaly_on ?? 'cost', dimension: f.anomaly_by || 'feature', ...(f.anomaly_each ? { each: f.anomaly_each } : {}) };
  }
  return { metric: f.metric };
}

/** Which form field an API error is about (`metric`: the rule's kind, for the fields it shares). */
export function formFieldOf(e: unknown, metric?: string): string {
  if (!(e instanceof ApiError)) return '';
  const f = (e.field ?? '').split('.').pop() ?? '';
  if (metric === 'drift' && f === 'over_pct') return 'drift_pct';
  if (f === 'under_pct' || f === 'days' || f === 'window_hours') return f;
  if (metric === 'any_value' && (f === 'over_usd' || f === 'over_requests')) return 'each_over';
  if (metric === 'any_value' && f === 'dimension') return 'each';
  if (metric === 'anomaly' && f === 'dimension') return 'anomaly_by';
  if (metric === 'anomaly' && f === 'each') return 'anomaly_each';
  if (metric === 'anomaly' && f === 'condition') return 'anomaly_on';
  if (f === 'thresholds_pct') return 'thresholds';
  if (f === 'filter' || f === 'dimension') return e.message.includes('value') && f !== 'dimension' ? 'value' : 'dimension';
  if (['name', 'period', 'over_usd', 'budget_usd', 'over_pct', 'window_minutes', 'min_requests', 'over_ms', 'value', 'webhook_url', 'email', 'metric'].includes(f)) return f;
  if (f === 'slack_webhook_url') return 'slack_url';
  if (/channel|email/.test(e.message)) return 'email';
  return '';
}

export function RuleForm({ ws, rule, kind, onDone, onCancel }: { ws: string; rule?: Rule; kind?: string; onDone: (r: Rule) => void; onCancel: () => void }) {
  const [f, setF] = useState<Form>(toForm(rule, kind));
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<{ field: string; message: string } | null>(null);
  const [secret, setSecret] = useState<Rule | null>(null);
  const set = (k: keyof Form) => (e: Event) => {
    const t = e.target as HTMLInputElement;
    setF({ ...f, [k]: t.type === 'checkbox' ? t.checked : t.value });
  };
  const fe = (k: string) => (err?.field === k ? err.message : null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setErr(null);
    const body: Record<string, unknown> = {
      name: f.name.trim(),
      condition: conditionOf(f),
      filter: f.dimension && !NO_FILTER.includes(f.metric) ? { dimension: f.dimension, value: f.value } : null,
      email: f.email,
      webhook_url: f.webhook_url.trim() || null,
    };
    // Sent only when changed: the saved URL never comes back to be sent again.
    if (f.slack_url.trim()) body.slack_webhook_url = f.slack_url.trim();
    else if (f.remove_slack) body.slack_webhook_url = null;
    try {
      const r = rule ? await patch<Rule>(wsPath(ws, 'alerts', rule.id), body) : await post<Rule>(wsPath(ws, 'alerts'), body);
      if (r.webhook_secret) setSecret(r);
      else onDone(r);
    } catch (x) {
      setErr({ field: formFieldOf(x, f.metric), message: describe(x) });
    } finally {
      setBusy(false);
    }
  };
  if (secret) {
    return (
      <Modal title="Webhook signing secret" onClose={() => onDone(secret)}>
        <p class="warn">
          <span aria-hidden="true">⚠ </span>
          <strong>Shown once.</strong> Your endpoint verifies the <code>LLMtrack-Signature</code> header with it (HMAC-SHA256 of <code>t.body</code>, as Stripe does).
        </p>
        <CopyField label="Signing secret" value={secret.webhook_secret!} />
        <div class="actions">
          <button type="button" class="btn primary" onClick={() => onDone(secret)}>
            I have copied it
          </button>
        </div>
      </Modal>
    );
  }
  const m = f.metric;
  return (
    <form class="rule-form" onSubmit={submit} noValidate>
      {err && !err.field && (
        <p class="field-error" role="alert">
          <span aria-hidden="true">⚠ </span>
          {err.message}
        </p>
      )}
      <Field label="Name" error={fe('name')}>
        <input name="name" aria-invalid={!!fe('name')} required value={f.name} onInput={set('name')} />
      </Field>
      <Field label="Alert when" error={fe('metric')}>
        <select name="metric" aria-invalid={!!fe('metric')} value={m} onChange={set('metric')}>
          {KINDS.map((k) => (
            <option key={k.id} value={k.id}>
              {k.label}
            </option>
          ))}
        </select>
      </Field>
      <div class="row">
        {m === 'cost' && (
          <>
            <Field label="Period (UTC)" error={fe('period')}>
              <select name="period" aria-invalid={!!fe('period')} value={f.period} onChange={set('period')}>
                <option value="day">Day</option>
                <option value="month">Month</option>
              </select>
            </Field>
            <Field label="Over (USD)" error={fe('over_usd')}>
              <input name="over_usd" aria-invalid={!!fe('over_usd')} inputMode="decimal" value={f.over_usd} onInput={set('over_usd')} />
            </Field>
          </>
        )}
        {m === 'budget' && f.budget_id && (
          <p class="muted">
            Follows the budget <code>{f.budget_id}</code>: its amount, period and scope are the budget's (edit them on the Budgets page).
          </p>
        )}
        {(m === 'forecast' || (m === 'budget' && !f.budget_id)) && (
          <Field label="Monthly budget (USD)" error={fe('budget_usd')}>
            <input name="budget_usd" aria-invalid={!!fe('budget_usd')} inputMode="decimal" value={f.budget_usd} onInput={set('budget_usd')} />
          </Field>
        )}
        {m === 'budget' && (
          <Field label="Thresholds (%)" error={fe('thresholds')} hint="1 to 10 increasing percentages, e.g. 50, 80, 100.">
            <input name="thresholds" aria-invalid={!!fe('thresholds')} value={f.thresholds} onInput={set('thresholds')} />
          </Field>
        )}
        {m === 'error_rate' && (
          <>
            <Field label="Over (%)" error={fe('over_pct')}>
              <input name="over_pct" aria-invalid={!!fe('over_pct')} inputMode="decimal" value={f.over_pct} onInput={set('over_pct')} />
            </Field>
            <Field label="At least (requests)" error={fe('min_requests')}>
              <input name="min_requests" aria-invalid={!!fe('min_requests')} inputMode="numeric" value={f.min_requests} onInput={set('min_requests')} />
            </Field>
          </>
        )}
        {m === 'latency_p95' && (
          <Field label="Over (ms)" error={fe('over_ms')}>
            <input name="over_ms" aria-invalid={!!fe('over_ms')} inputMode="decimal" value={f.over_ms} onInput={set('over_ms')} />
          </Field>
        )}
        {m === 'coverage' && (
          <Field label="Coverage under (%)" error={fe('under_pct')} hint="The share of the tokens the provider billed that LLMtrack's events account for. Under 100%: calls not sent to LLMtrack.">
            <input name="under_pct" aria-invalid={!!fe('under_pct')} inputMode="decimal" value={f.under_pct} onInput={set('under_pct')} />
          </Field>
        )}
        {m === 'drift' && (
          <Field label="Drift over (%, either way)" error={fe('drift_pct')} hint="How far LLMtrack's cost may be from the billed cost, above or below, as a share of the bill.">
            <input name="drift_pct" aria-invalid={!!fe('drift_pct')} inputMode="decimal" value={f.drift_pct} onInput={set('drift_pct')} />
          </Field>
        )}
        {BILL_KINDS.includes(m) && (
          <Field label="Over the last (imported days)" error={fe('days')} hint="UTC days imported from the provider, the latest first. Needs a connection on the Reconciliation page.">
            <input name="days" aria-invalid={!!fe('days')} inputMode="numeric" value={f.days} onInput={set('days')} />
          </Field>
        )}
        {m === 'any_value' && (
          <>
            <Field label="Each" error={fe('each')}>
              <select name="each" aria-invalid={!!fe('each')} value={f.each} onChange={set('each')}>
                <option value="user">End-user</option>
                <option value="feature">Feature</option>
                <option value="model">Model</option>
                <option value="source">Source</option>
              </select>
            </Field>
            <Field label="Over" error={fe('each_over')}>
              <input name="each_over" aria-invalid={!!fe('each_over')} inputMode="decimal" value={f.each_over} onInput={set('each_over')} />
            </Field>
            <Field label="Unit">
              <select name="each_unit" value={f.each_unit} onChange={set('each_unit')}>
                <option value="usd">USD</option>
                <option value="requests">Requests</option>
              </select>
            </Field>
            <Field label="In the last (hours)" error={fe('window_hours')} hint="1 to 720. Each value over is told once; past five at once, one digest names the rest.">
              <input name="window_hours" aria-invalid={!!fe('window_hours')} inputMode="numeric" value={f.window_hours} onInput={set('window_hours')} />
            </Field>
          </>
        )}
        {m === 'anomaly' && (
          <>
            <Field label="Watch" error={fe('anomaly_on')} hint="Each complete hour against the same hour of the week in earlier weeks. Needs two weeks of history.">
              <select name="anomaly_on" aria-invalid={!!fe('anomaly_on')} value={f.anomaly_on} onChange={set('anomaly_on')}>
                <option value="cost">Cost</option>
                <option value="requests">Requests</option>
                <option value="tokens">Tokens</option>
                <option value="error_rate">Error rate</option>
              </select>
            </Field>
            <Field label="Contributors by" error={fe('anomaly_by')} hint="Which values the notification names as explaining the change.">
              <select name="anomaly_by" aria-invalid={!!fe('anomaly_by')} value={f.anomaly_by} onChange={set('anomaly_by')}>
                <option value="feature">Feature</option>
                <option value="model">Model</option>
                <option value="source">Source</option>
                <option value="user">End-user</option>
              </select>
            </Field>
            <Field label="Judge" error={fe('anomaly_each')} hint="The total (or the one value below), or each value on its own: the 20 carrying the most; past five at once, one digest names the rest.">
              <select name="anomaly_each" aria-invalid={!!fe('anomaly_each')} value={f.anomaly_each} onChange={set('anomaly_each')}>
                <option value="">The total</option>
                <option value="feature">Each feature</option>
                <option value="model">Each model</option>
                <option value="source">Each source</option>
              </select>
            </Field>
          </>
        )}
        {(m === 'error_rate' || m === 'latency_p95') && (
          <Field label="Window (minutes)" error={fe('window_minutes')} hint="5 to 1,440, a multiple of 5.">
            <input name="window_minutes" aria-invalid={!!fe('window_minutes')} inputMode="numeric" value={f.window_minutes} onInput={set('window_minutes')} />
          </Field>
        )}
      </div>
      {!NO_FILTER.includes(m) && (
        <div class="row">
          <Field label="Only for" error={fe('dimension')}>
            <select name="dimension" aria-invalid={!!fe('dimension')} value={f.dimension} onChange={set('dimension')}>
              <option value="">All traffic</option>
              <option value="model">One model</option>
              <option value="feature">One feature</option>
              <option value="source">One source</option>
              <option value="user">One end-user</option>
            </select>
          </Field>
          {f.dimension && (
            <Field label="Value" error={fe('value')}>
              <input name="value" aria-invalid={!!fe('value')} value={f.value} onInput={set('value')} />
            </Field>
          )}
        </div>
      )}
      <fieldset>
        <legend>Notify</legend>
        <label class="check">
          <input type="checkbox" name="email" checked={f.email} onChange={set('email')} />
          <span>Email the workspace's owners and admins</span>
        </label>
        {fe('email') && <p class="field-error" role="alert">{fe('email')}</p>}
        <Field
          label="Slack incoming webhook (optional)"
          error={fe('slack_url')}
          hint={
            rule?.slack
              ? `Posting to ${rule.slack}. Paste a new URL to replace it.`
              : 'In Slack: Apps → Incoming Webhooks → Add to a channel. Stored encrypted; only its last characters are shown.'
          }
        >
          <input name="slack_url" aria-invalid={!!fe('slack_url')} type="url" value={f.slack_url} onInput={set('slack_url')} placeholder="https://hooks.slack.com/services/T…/B…/…" autocomplete="off" />
        </Field>
        {rule?.slack && (
          <label class="check">
            <input type="checkbox" name="remove_slack" checked={f.remove_slack} onChange={set('remove_slack')} />
            <span>Stop posting to Slack</span>
          </label>
        )}
        <Field label="Webhook URL (optional)" error={fe('webhook_url')} hint="https only; signed JSON for your own endpoint. The signing secret is shown once when you set it.">
          <input name="webhook_url" aria-invalid={!!fe('webhook_url')} type="url" value={f.webhook_url} onInput={set('webhook_url')} placeholder="https://example.com/llmtrack-alerts" />
        </Field>
      </fieldset>
      <div class="actions start">
        <button type="submit" class="btn primary" disabled={busy}>
          {busy ? 'Saving…' : rule ? 'Save changes' : 'Create alert'}
        </button>
        <button type="button" class="btn ghost" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
