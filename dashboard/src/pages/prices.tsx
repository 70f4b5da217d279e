// Workspace prices: the rules that come before the bundled price table (negotiated discounts,
// rates for models the table does not know), listed for every member, changed by admins.
import { useState } from 'preact/hooks';
import type { PageProps } from '../app';
import { del, describe, get, post, put, wsPath } from '../lib/api';
import { dateTime } from '../lib/format';
import { can } from '../lib/store';
import type { PriceRule, UsdRates, WorkspacePrices } from '../lib/types';
import { RepricePanel } from './reprice';
import { AsyncView, ConfirmButton, Empty, Field, Modal, PageHead, Table, toast, useAsync } from '../ui';

const usd = (n: number) => `$${n.toLocaleString('en-US', { maximumFractionDigits: 6 })}`;

/** What a rule charges, in words. */
export function priceText(r: PriceRule): string {
  if (r.kind === 'discount') return `${r.percent}% off the table`;
  const parts = [`${usd(r.rates.input)} input`, `${usd(r.rates.output)} output`];
  if (r.rates.cached_input !== undefined) parts.push(`${usd(r.rates.cached_input)} cached`);
  if (r.rates.cache_write !== undefined) parts.push(`${usd(r.rates.cache_write)} cache write`);
  if (r.rates.reasoning !== undefined) parts.push(`${usd(r.rates.reasoning)} reasoning`);
  const batch = r.batch_percent !== undefined && r.batch_percent !== 100 ? `; batch at ${r.batch_percent}%` : '';
  return `${parts.join(' · ')} per million tokens${batch}`;
}

/** When a rule applies, in words. */
export function whenText(r: Pick<PriceRule, 'effective_from' | 'effective_to'>): string {
  if (r.effective_from && r.effective_to) return `${r.effective_from} to ${r.effective_to} (exclusive)`;
  if (r.effective_from) return `from ${r.effective_from}`;
  if (r.effective_to) return `until ${r.effective_to} (exclusive)`;
  return 'always';
}

export default function Prices({ ws }: PageProps) {
  const a = useAsync((signal) => get<WorkspacePrices>(wsPath(ws.id, 'prices'), { signal }), [ws.id]);
  const [editing, setEditing] = useState<PriceRule | 'new' | null>(null);
  const manage = can(ws.role, 'manage_settings');
  const remove = async (r: PriceRule) => {
    await del(wsPath(ws.id, 'prices', r.id));
    toast(`Price for ${r.model} removed.`);
    a.reload();
  };
  return (
    <div>
      <PageHead
        title="Prices"
        sub="Your own prices come before the bundled price table: a negotiated discount, or rates for a model the table does not know. A cost sent with an event (yours or the provider's) still comes first. Rules price events as they arrive; admins can reprice stored events."
      >
        {manage && (
          <button type="button" class="btn primary" onClick={() => setEditing('new')}>
            Add a price
          </button>
        )}
      </PageHead>
      <AsyncView a={a}>
        {(prices) =>
          prices.rules.length === 0 ? (
            <Empty title="Every event is priced by the bundled table">
              {manage ? 'Add a discount your provider agreed to, or rates for an in-house model.' : 'An admin or owner can add prices.'}
            </Empty>
          ) : (
            <div class="card">
              <Table
                caption="Workspace prices"
                captionHidden
                rows={prices.rules}
                rowKey={(r) => r.id}
                defaultSort={{ key: 'model', desc: false }}
                columns={[
                  { key: 'provider', label: 'Provider', render: (r) => (r.provider === '*' ? 'any provider' : r.provider), sort: (r) => r.provider },
                  { key: 'model', label: 'Model', render: (r) => <code>{r.model}</code>, sort: (r) => r.model },
                  { key: 'price', label: 'Price', render: priceText },
                  { key: 'applies', label: 'Applies', render: whenText, sort: (r) => r.effective_from ?? '' },
                  { key: 'note', label: 'Note', render: (r) => r.note ?? '' },
                  { key: 'changed', label: 'Changed', render: (r) => dateTime(r.updated_at, ws.timezone), sort: (r) => r.updated_at },
                  ...(manage ? [{ key: 'actions', label: 'Actions', render: (r: PriceRule) => <RuleActions r={r} onEdit={() => setEditing(r)} onRemove={() => remove(r)} /> }] : []),
                ]}
              />
            </div>
          )
        }
      </AsyncView>
      <section class="card">
        <h2>Which price applies</h2>
        <p>
          Of the rules in force at an event's time that cover its provider and model, the most specific one prices it: a model name before a pattern (<code>claude-*</code>), a named provider before any provider, a longer pattern before a shorter, then the one that took effect last. A discount needs the table's price, so it never prices a model the table does not know. Each change is in the audit log.
        </p>
      </section>
      {manage && a.data && <RepricePanel ws={ws.id} tz={ws.timezone} rulesVersion={a.data.version} />}
      {editing && (
        <RuleForm
          ws={ws.id}
          rule={editing === 'new' ? null : editing}
          onClose={() => setEditing(null)}
          onSaved={(r) => {
            setEditing(null);
            toast(`Price for ${r.model} saved.`);
            a.reload();
          }}
        />
      )}
    </div>
  );
}

function RuleActions({ r, onEdit, onRemove }: { r: PriceRule; onEdit: () => void; onRemove: () => Promise<void> }) {
  return (
    <span class="row-actions">
      <button type="button" class="btn small" aria-label={`Edit the price for ${r.provider}/${r.model}`} onClick={onEdit}>
        Edit
      </button>
      <ConfirmButton
        label="Remove"
        ariaLabel={`Remove the price for ${r.provider}/${r.model}`}
        title={`Remove the price for ${r.model}?`}
        message="Events arriving from now on are priced by the next rule that covers them, or the bundled table. Events already stored keep the cost they were priced with until you reprice them."
        danger
        class="btn small danger"
        onConfirm={onRemove}
      />
    </span>
  );
}

const RATE_FIELDS: [keyof UsdRates, string, string][] = [
  ['input', 'Input', 'Required'],
  ['output', 'Output', 'Required'],
  ['cached_input', 'Cached input', 'Default: the input rate'],
  ['cache_write', 'Cache write', 'Default: the input rate'],
  ['reasoning', 'Reasoning', 'Default: the output rate'],
];

function RuleForm({ ws, rule, onClose, onSaved }: { ws: string; rule: PriceRule | null; onClose: () => void; onSaved: (r: PriceRule) => void }) {
  const [provider, setProvider] = useState(rule?.provider ?? '');
  const [model, setModel] = useState(rule?.model ?? '');
  const [kind, setKind] = useState<'discount' | 'rates'>(rule?.kind ?? 'discount');
  const [percent, setPercent] = useState(rule?.kind === 'discount' ? String(rule.percent) : '');
  const [rates, setRates] = useState<Record<string, string>>(
    rule?.kind === 'rates' ? Object.fromEntries(Object.entries(rule.rates).map(([k, v]) => [k, String(v)])) : {},
  );
  const [batch, setBatch] = useState(rule?.kind === 'rates' && rule.batch_percent !== undefined ? String(rule.batch_percent) : '');
  const [from, setFrom] = useState(rule?.effective_from ?? '');
  const [to, setTo] = useState(rule?.effective_to ?? '');
  const [note, setNote] = useState(rule?.note ?? '');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  // The API names the field at fault first (`percent: …`, `rates.input: …`).
  const fieldOf = (m: string | null) => (m ? (/^([a-z_.]+):/.exec(m)?.[1] ?? '') : '');
  // Shown beside the field, without the field's name in front.
  const at = (f: string) => (error && fieldOf(error) === f ? error.slice(f.length + 1).trim() : null);
  const num = (s: string) => (s.trim() === '' ? undefined : Number(s));
  return (
    <Modal title={rule ? `Edit the price for ${rule.model}` : 'Add a price'} onClose={onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          const body: Record<string, unknown> = {
            provider: provider.trim(),
            model: model.trim(),
            kind,
            effective_from: from || undefined,
            effective_to: to || undefined,
            note: note.trim() || undefined,
          };
          if (kind === 'discount') body.percent = num(percent);
          else {
            body.rates = Object.fromEntries(
              RATE_FIELDS.map(([k]) => [k, num(rates[k] ?? '')]).filter(([, v]) => v !== undefined),
            );
            body.batch_percent = num(batch);
          }
          try {
            onSaved(rule ? await put<PriceRule>(wsPath(ws, 'prices', rule.id), body) : await post<PriceRule>(wsPath(ws, 'prices'), body));
          } catch (err) {
            setError(describe(err));
          } finally {
            setBusy(false);
          }
        }}
      >
        <div class="row">
          <Field label="Provider" error={at('provider')} hint="As your events name it (openai, bedrock…), or * for any provider.">
            <input name="provider" required value={provider} onInput={(e) => setProvider((e.target as HTMLInputElement).value)} />
          </Field>
          <Field label="Model" error={at('model')} hint="A model name, or a pattern such as claude-* (* for every model).">
            <input name="model" required value={model} onInput={(e) => setModel((e.target as HTMLInputElement).value)} />
          </Field>
        </div>
        <fieldset class="radios">
          <legend>Price</legend>
          <label>
            <input type="radio" name="kind" checked={kind === 'discount'} onChange={() => setKind('discount')} /> A discount off the table's price
          </label>
          <label>
            <input type="radio" name="kind" checked={kind === 'rates'} onChange={() => setKind('rates')} /> Rates of its own
          </label>
        </fieldset>
        {kind === 'discount' ? (
          <Field label="Discount (%)" error={at('percent')} hint="Taken off every token kind and tier.">
            <input name="percent" type="number" step="any" min="0" max="100" required value={percent} onInput={(e) => setPercent((e.target as HTMLInputElement).value)} />
          </Field>
        ) : (
          <div class="row">
            {RATE_FIELDS.map(([k, label, hint]) => (
              <Field key={k} label={`${label} (USD per million tokens)`} error={at(`rates.${k}`)} hint={hint}>
                <input
                  name={`rates.${k}`}
                  type="number"
                  step="any"
                  min="0"
                  required={k === 'input' || k === 'output'}
                  value={rates[k] ?? ''}
                  onInput={(e) => setRates({ ...rates, [k]: (e.target as HTMLInputElement).value })}
                />
              </Field>
            ))}
            <Field label="Batch calls (% of these rates)" error={at('batch_percent')} hint="Default 100.">
              <input name="batch_percent" type="number" step="any" min="0" max="100" value={batch} onInput={(e) => setBatch((e.target as HTMLInputElement).value)} />
            </Field>
          </div>
        )}
        <div class="row">
          <Field label="From (UTC)" error={at('effective_from')} hint="Empty: every past event.">
            <input name="effective_from" type="date" value={from} onInput={(e) => setFrom((e.target as HTMLInputElement).value)} />
          </Field>
          <Field label="Until (UTC, exclusive)" error={at('effective_to')} hint="Empty: until changed.">
            <input name="effective_to" type="date" value={to} onInput={(e) => setTo((e.target as HTMLInputElement).value)} />
          </Field>
        </div>
        <Field label="Note" error={at('note')} hint="A contract reference, a deployment's name.">
          <input name="note" maxLength={200} value={note} onInput={(e) => setNote((e.target as HTMLInputElement).value)} />
        </Field>
        {error && !['provider', 'model', 'percent', 'batch_percent', 'effective_from', 'effective_to', 'note'].includes(fieldOf(error)) && !fieldOf(error).startsWith('rates.') && (
          <p class="field-error" role="alert">
            {error}
          </p>
        )}
        <div class="actions">
          <button type="button" class="btn" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class="btn primary" disabled={busy}>
            {busy ? 'Saving…' : 'Save price'}
          </button>
        </div>
      </form>
    </Modal>
  );
}
