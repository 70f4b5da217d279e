// Budgets: an amount per month (in the workspace's timezone) or per rolling window, for the whole
// workspace or one model, feature, source or end-user; where each stands, listed for every
// member, changed by admins; how an app checks one before a call.
import { useState } from 'preact/hooks';
import type { PageProps } from '../app';
import { BudgetLegend, BudgetRow, legendOf } from '../budgetbar';
import { ApiError, del, describe, get, post, put, withQuery, wsPath } from '../lib/api';
import { BUDGET_DIMENSIONS, budgetBody, formOf, placeError, type BudgetForm } from '../lib/budgets';
import { search, setSearch } from '../lib/router';
import { can } from '../lib/store';
import type { Breakdown, Budget, BudgetsAnswer } from '../lib/types';
import { AsyncView, ConfirmButton, Empty, Field, Modal, PageHead, toast, useAsync } from '../ui';

export default function Budgets({ ws }: PageProps) {
  const a = useAsync((signal) => get<BudgetsAnswer>(withQuery('/v1/stats/budgets', { workspace: ws.id }), { signal }), [ws.id]);
  const manage = can(ws.role, 'manage_settings');
  const alerts = can(ws.role, 'manage_alerts');
  // `?new=1` (the overview's call to action) opens the form.
  const [editing, setEditing] = useState<Budget | 'new' | null>(() => (manage && new URLSearchParams(search.value).has('new') ? 'new' : null));
  const close = () => {
    setEditing(null);
    if (new URLSearchParams(search.value).has('new')) setSearch('');
  };
  const remove = async (b: Budget) => {
    await del(wsPath(ws.id, 'budgets', b.id));
    toast(`Budget “${b.name}” deleted.`);
    a.reload();
  };
  // An alert rule that follows the budget: its amount, period and scope, told at its warning
  // threshold and at 100% on the rule's default channel (email).
  const notify = async (b: Budget) => {
    try {
      await post(wsPath(ws.id, 'alerts'), { name: `Budget: ${b.name}`.slice(0, 64), condition: { metric: 'budget', budget_id: b.id } });
      toast(`Alert rule added: you will be emailed at ${b.warn_pct < 100 ? `${b.warn_pct}% and ` : ''}100% of “${b.name}”.`);
    } catch (e) {
      toast(describe(e), 'error');
    }
  };
  return (
    <div>
      <PageHead
        title="Budgets"
        sub="An amount to spend per month or per rolling window of days, for the whole workspace or for one model, feature, source or end-user. Spend is measured from the events you send; apps can ask before a call whether a budget still allows it."
      >
        {manage && (
          <button type="button" class="btn primary" onClick={() => setEditing('new')}>
            New budget
          </button>
        )}
      </PageHead>
      <AsyncView a={a} label="Loading budgets…">
        {(d) =>
          d.budgets.length === 0 ? (
            <Empty title="No budgets yet">{manage ? 'Set a monthly budget for the workspace, or one for a feature, a model or an end-user.' : 'Admins and owners set budgets.'}</Empty>
          ) : (
            <section class="card" aria-labelledby="budgets-h">
              <h2 id="budgets-h">
                {d.budgets.length} {d.budgets.length === 1 ? 'budget' : 'budgets'}
              </h2>
              <ul class="budgets">
                {d.budgets.map(({ budget: b, status: s }) => (
                  <BudgetRow
                    key={b.id}
                    b={b}
                    s={s}
                    tz={ws.timezone}
                    actions={
                      (manage || alerts) && (
                        <>
                          {alerts && (
                            <button type="button" class="btn small" aria-label={`Notify me as the budget ${b.name} fills`} onClick={() => notify(b)}>
                              Notify me
                            </button>
                          )}
                          {manage && (
                            <>
                              <button type="button" class="btn small" aria-label={`Edit the budget ${b.name}`} onClick={() => setEditing(b)}>
                                Edit
                              </button>
                              <ConfirmButton
                                label="Delete"
                                ariaLabel={`Delete the budget ${b.name}`}
                                title={`Delete the budget “${b.name}”?`}
                                message="Checks stop counting it at once: an app refused by it is allowed again (unless another budget refuses), and alert rules following it stop. Events are not touched."
                                danger
                                class="btn small danger"
                                onConfirm={() => remove(b)}
                              />
                            </>
                          )}
                        </>
                      )
                    }
                  />
                ))}
              </ul>
              <BudgetLegend {...legendOf(d.budgets)} />
            </section>
          )
        }
      </AsyncView>
      <section class="card" aria-labelledby="check-h">
        <h2 id="check-h">Checking a budget before a call</h2>
        <p>
          LLMtrack is not in the path of your calls: an app asks, then decides. Before a call, ask with the app's <strong>ingest key</strong> (the key's source counts as the call's source):
        </p>
        <pre class="code">
          <code>{`GET /v1/budgets/check?feature=search&user=u-42&model=gpt-4o
Authorization: Bearer llmt_…

{"decision": "warn", "remaining_usd": 3.5, "budgets": [ … ]}`}</code>
        </pre>
        <p class="small">
          Every budget whose scope matches the call is counted; the most severe answer wins: <code>allow</code>, <code>warn</code> (from the budget's warning threshold) or <code>deny</code> (once spent, for budgets that refuse calls). The clients make the check for you and stop a call that would be refused: <code>tracker.guard(feature="search", user_id=…)</code> in Python raises <code>BudgetExceeded</code>, <code>await tracker.guard({'{'} feature: 'search', userId {'}'})</code> in TypeScript rejects with <code>BudgetExceededError</code>. Spend counts events as they arrive, so a check lags the calls still in flight.
        </p>
      </section>
      {editing && manage && (
        <BudgetFormModal
          ws={ws.id}
          tz={ws.timezone}
          budget={editing === 'new' ? null : editing}
          onClose={close}
          onSaved={(b) => {
            close();
            toast(`Budget “${b.name}” saved.`);
            a.reload();
          }}
        />
      )}
    </div>
  );
}

function BudgetFormModal({ ws, tz, budget, onClose, onSaved }: { ws: string; tz: string; budget: Budget | null; onClose: () => void; onSaved: (b: Budget) => void }) {
  const [f, setF] = useState<BudgetForm>(() => formOf(budget));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<{ field: string; text: string } | null>(null);
  const [options, setOptions] = useState<Record<string, string[]>>({});
  const set = (patch: Partial<BudgetForm>) => setF((x) => ({ ...x, ...patch }));
  const at = (field: string) => (error?.field === field ? error.text : null);
  // Values seen in the last 30 days, as suggestions.
  const loadOptions = async (dim: string) => {
    if (!dim || options[dim]) return;
    try {
      const b = await get<Breakdown>(withQuery('/v1/stats/breakdown', { workspace: ws, from: 'last_30d', by: dim, limit: 200 }));
      setOptions((o) => ({ ...o, [dim]: b.rows.map((r) => r.value).filter((v) => v !== '') }));
    } catch {
      /* suggestions are optional */
    }
  };
  const input = (k: keyof BudgetForm) => (e: Event) => set({ [k]: (e.target as HTMLInputElement).value } as Partial<BudgetForm>);
  const general = error && (error.field === '' || (error.field === 'period' && f.period === 'month') || (error.field === 'scope' && f.dimension === ''));
  return (
    <Modal title={budget ? `Edit the budget “${budget.name}”` : 'New budget'} onClose={onClose}>
      <form
        data-form="budget"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          const body = budgetBody(f);
          try {
            onSaved(budget ? await put<Budget>(wsPath(ws, 'budgets', budget.id), body) : await post<Budget>(wsPath(ws, 'budgets'), body));
          } catch (err) {
            setError(err instanceof ApiError && err.status === 400 ? placeError(err.message, (err.body as { error?: { field?: string } } | undefined)?.error?.field) : { field: '', text: describe(err) });
          } finally {
            setBusy(false);
          }
        }}
      >
        <div class="row">
          <Field label="Name" error={at('name')} hint="Shown here and in each check's answer.">
            <input name="name" required maxLength={100} value={f.name} onInput={input('name')} placeholder="LLM spend" />
          </Field>
          <Field label="Amount (USD)" error={at('amount_usd')} hint="For one period.">
            <input name="amount_usd" type="number" step="any" min="0" required value={f.amount} onInput={input('amount')} placeholder="500" />
          </Field>
        </div>
        <fieldset class="radios">
          <legend>Period</legend>
          <label>
            <input type="radio" name="period" value="month" checked={f.period === 'month'} onChange={() => set({ period: 'month' })} /> The calendar month ({tz}), with a month-end forecast
          </label>
          <label>
            <input type="radio" name="period" value="rolling" checked={f.period === 'rolling'} onChange={() => set({ period: 'rolling' })} /> A rolling window of days, up to now
          </label>
          {f.period === 'rolling' && (
            <Field label="Days" error={at('period')} hint="1 to 90.">
              <input name="days" type="number" step="1" min="1" max="90" required value={f.days} onInput={input('days')} class="short" />
            </Field>
          )}
        </fieldset>
        <div class="row">
          <Field label="Counts the spend of">
            <select
              name="dimension"
              value={f.dimension}
              onChange={(e) => {
                const v = (e.target as HTMLSelectElement).value as BudgetForm['dimension'];
                set({ dimension: v });
                void loadOptions(v);
              }}
            >
              <option value="">The whole workspace</option>
              {BUDGET_DIMENSIONS.map((d) => (
                <option key={d.id} value={d.id}>
                  One {d.label.toLowerCase()}
                </option>
              ))}
            </select>
          </Field>
          {f.dimension !== '' && (
            <Field label={BUDGET_DIMENSIONS.find((d) => d.id === f.dimension)!.label} error={at('scope')} hint={f.dimension === 'source' ? "An ingest key's source label." : 'As your events name it.'}>
              <input name="scope_value" required list={`budget-opts-${f.dimension}`} value={f.value} onFocus={() => void loadOptions(f.dimension)} onInput={input('value')} />
              <datalist id={`budget-opts-${f.dimension}`}>
                {(options[f.dimension] ?? []).map((o) => (
                  <option key={o} value={o} />
                ))}
              </datalist>
            </Field>
          )}
        </div>
        <Field label="Warn at (% of the amount)" error={at('warn_pct')} hint="From here checks answer warn (1 to 100).">
          <input name="warn_pct" type="number" step="1" min="1" max="100" required value={f.warn} onInput={input('warn')} class="short" />
        </Field>
        <label class="check">
          <input type="checkbox" name="deny" checked={f.deny} onChange={(e) => set({ deny: (e.target as HTMLInputElement).checked })} />
          Refuse calls at 100% (apps using the budget check get deny)
        </label>
        {general && (
          <p class="field-error" role="alert">
            {error!.text}
          </p>
        )}
        <div class="actions">
          <button type="button" class="btn" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class="btn primary" disabled={busy}>
            {busy ? 'Saving…' : 'Save budget'}
          </button>
        </div>
      </form>
    </Modal>
  );
}
