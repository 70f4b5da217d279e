// Repricing stored events with today's prices: a dry run shows what changes by model, before
// and after; one confirmation applies it. Both are jobs on the server: this panel polls them.
import { useEffect, useState } from 'preact/hooks';
import { describe, get, post, wsPath } from '../lib/api';
import { count, dateTime, usd } from '../lib/format';
import type { ModelChange, Repricing } from '../lib/types';
import { ConfirmButton, Table, toast } from '../ui';

const RANGES: { id: string; label: string; days: number | null }[] = [
  { id: '7', label: 'Last 7 days', days: 7 },
  { id: '30', label: 'Last 30 days', days: 30 },
  { id: '90', label: 'Last 90 days', days: 90 },
  { id: 'all', label: 'All the history your plan keeps', days: null },
];

/** Polls a repricing job until it ends. */
async function finished(ws: string, job: Repricing, onProgress: (j: Repricing) => void): Promise<Repricing> {
  let j = job;
  while (j.state === 'queued' || j.state === 'running') {
    onProgress(j);
    await new Promise((r) => setTimeout(r, 700));
    j = await get<Repricing>(wsPath(ws, 'repricing', j.id));
  }
  return j;
}

const signed = (n: number) => (n > 0 ? `+${usd(n)}` : usd(n));
/** A model's cost, or "unpriced" when none of its events had one (never a silent $0). */
const cost = (usd_: number, unpriced: number, events: number) => (events > 0 && unpriced === events ? 'unpriced' : usd(usd_));

export function RepricePanel({ ws, tz, rulesVersion }: { ws: string; tz: string; rulesVersion: number }) {
  const [range, setRange] = useState('30');
  const [busy, setBusy] = useState(false);
  const [job, setJob] = useState<Repricing | null>(null);
  const [error, setError] = useState<string | null>(null);
  // A preview counted with prices since changed no longer says what an apply would do.
  useEffect(() => setJob(null), [rulesVersion]);

  const run = async (dryRun: boolean, body: Record<string, unknown>) => {
    setError(null);
    const started = await post<Repricing>(wsPath(ws, 'repricing'), { ...body, dry_run: dryRun });
    const done = await finished(ws, started, setJob);
    setJob(done);
    if (done.state === 'failed') throw new Error('The repricing failed; nothing more was changed. Try again, or ask your operator to read the server log.');
    return done;
  };
  const preview = async () => {
    setBusy(true);
    try {
      const days = RANGES.find((r) => r.id === range)?.days ?? null;
      await run(true, days === null ? {} : { from: new Date(Date.now() - days * 86_400_000).toISOString() });
    } catch (e) {
      setError(describe(e));
    } finally {
      setBusy(false);
    }
  };
  const apply = async () => {
    if (!job) return;
    const done = await run(false, { from: job.from, to: job.to });
    toast(`Repriced ${count(done.rewritten)} events.`);
  };

  const working = job && (job.state === 'queued' || job.state === 'running');
  return (
    <section class="card" aria-labelledby="reprice-title">
      <h2 id="reprice-title">Reprice stored events</h2>
      <p>
        New prices apply to events as they arrive. To price stored events with today's prices (the bundled table and the rules above), preview the change first: nothing is written until you apply it. Costs sent by your app or the provider stay as they are.
      </p>
      <div class="row">
        <label class="field shrink">
          <span>Events from</span>
          <select name="reprice-range" value={range} onChange={(e) => setRange((e.target as HTMLSelectElement).value)} disabled={busy}>
            {RANGES.map((r) => (
              <option key={r.id} value={r.id}>
                {r.label}
              </option>
            ))}
          </select>
        </label>
        <div class="field shrink">
          <span>&nbsp;</span>
          <button type="button" class="btn" onClick={preview} disabled={busy}>
            {busy ? 'Counting…' : 'Preview the change'}
          </button>
        </div>
      </div>
      {error && (
        <p class="field-error" role="alert">
          {error}
        </p>
      )}
      {working && (
        <p role="status" aria-live="polite">
          {job.dry_run ? 'Counting' : 'Repricing'}… {count(job.hours_done)} of {count(job.hours_total)} hours looked at{' '}
          <progress max={job.hours_total} value={job.hours_done} aria-label="Hours looked at" />
        </p>
      )}
      {job && job.state === 'done' && <Outcome tz={tz} job={job} onApply={apply} />}
    </section>
  );
}

function Outcome({ tz, job, onApply }: { tz: string; job: Repricing; onApply: () => Promise<unknown> }) {
  const t = job.total;
  const span = `${dateTime(job.from, tz)} to ${dateTime(job.to, tz)}`;
  return (
    <div data-repricing={job.dry_run ? 'preview' : 'applied'} data-job={job.id}>
      <p role="status">
        {job.dry_run
          ? t.changed === 0
            ? `Nothing would change from ${span}: the ${count(t.events)} stored events already carry today's prices.`
            : `From ${span}, ${count(t.changed)} of ${count(t.events)} events would change: ${usd(t.cost_before_usd)} becomes ${usd(t.cost_after_usd)} (${signed(t.difference_usd)}).`
          : `Repriced ${count(job.rewritten)} events from ${span}: ${usd(t.cost_before_usd)} is now ${usd(t.cost_after_usd)} (${signed(t.difference_usd)}). Every total of their hours was rebuilt.`}
        {t.kept > 0 && ` ${count(t.kept)} events keep the cost your app or the provider sent.`}
        {t.unpriced_before !== t.unpriced_after && ` Unpriced events: ${count(t.unpriced_before)} before, ${count(t.unpriced_after)} after.`}
      </p>
      {job.models.length > 0 && (
        <Table<ModelChange>
          caption={job.dry_run ? 'What the repricing would change, by model' : 'What the repricing changed, by model'}
          captionHidden
          rows={job.models}
          rowKey={(m) => m.model}
          defaultSort={{ key: 'after', desc: true }}
          columns={[
            { key: 'model', label: 'Model', render: (m) => <code>{m.model}</code>, sort: (m) => m.model },
            { key: 'events', label: 'Events', numeric: true, render: (m) => count(m.events), sort: (m) => m.events },
            { key: 'changed', label: 'Changed', numeric: true, render: (m) => count(m.changed), sort: (m) => m.changed },
            { key: 'before', label: 'Cost before', numeric: true, render: (m) => cost(m.cost_before_usd, m.unpriced_before, m.events), sort: (m) => m.cost_before_usd },
            { key: 'after', label: 'Cost after', numeric: true, render: (m) => cost(m.cost_after_usd, m.unpriced_after, m.events), sort: (m) => m.cost_after_usd },
            { key: 'difference', label: 'Difference', numeric: true, render: (m) => (m.unpriced_before === m.events && m.unpriced_after === m.events ? '—' : signed(m.difference_usd)), sort: (m) => m.difference_usd },
          ]}
        />
      )}
      {job.dry_run && t.changed > 0 && (
        <div class="actions">
          <ConfirmButton
            label={`Apply to ${count(t.changed)} events`}
            title="Reprice these events?"
            message={`The cost of ${count(t.changed)} stored events from ${span} is rewritten with today's prices (${usd(t.cost_before_usd)} becomes ${usd(t.cost_after_usd)}), and every total of their hours is rebuilt. It is recorded in the audit log. To undo it, change the prices back and reprice again.`}
            confirmLabel="Reprice"
            class="btn primary"
            onConfirm={onApply}
          />
        </div>
      )}
    </div>
  );
}
