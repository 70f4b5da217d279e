// One budget's progress (spent of the amount, coloured by what a check answers, the warning
// threshold and the month-end forecast marked), shared by the Budgets page and the overview.
import type { ComponentChildren } from 'preact';
import { barGeometry, barLabel, decisionText, decisionTone, forecastText, periodText, scopeText, usedText } from './lib/budgets';
import { usd } from './lib/format';
import type { Budget, BudgetStatus } from './lib/types';
import { Badge } from './ui';

// Sizes that depend on data go through the CSSOM (the page's CSP forbids style attributes).
const width = (p: number) => (el: HTMLElement | null) => {
  if (el) el.style.width = `${p}%`;
};
const left = (p: number) => (el: HTMLElement | null) => {
  if (el) el.style.left = `${p}%`;
};

export function BudgetRow({ b, s, tz, actions }: { b: Budget; s: BudgetStatus; tz: string; actions?: ComponentChildren }) {
  const g = barGeometry(b.amount_usd, b.warn_pct, s);
  const tone = decisionTone(s.decision);
  const f = forecastText(s.forecast_usd, b.amount_usd);
  return (
    <li
      class="budget"
      data-budget={b.id}
      data-amount={b.amount_usd}
      data-spent={s.spent_usd}
      data-remaining={s.remaining_usd}
      data-used-pct={s.used_pct}
      data-decision={s.decision}
      data-forecast={s.forecast_usd ?? ''}
    >
      <div class="budget-head">
        <div class="budget-title">
          <strong class="budget-name">{b.name}</strong>
          <span class="budget-meta">
            <span data-figure="scope">{scopeText(b.scope)}</span>
            <span aria-hidden="true"> · </span>
            <span data-figure="period">{periodText(b.period, tz)}</span>
            {!b.deny && (
              <>
                <span aria-hidden="true"> · </span>
                warns only
              </>
            )}
          </span>
        </div>
        <Badge kind={tone}>
          <span data-figure="decision">{decisionText(b, s)}</span>
        </Badge>
        {actions && <div class="budget-actions">{actions}</div>}
      </div>
      <div class={`budget-bar ${tone}`} role="img" aria-label={barLabel(b, s)}>
        <span class="bb-fill" ref={width(g.fill)} />
        <span class="bb-mark bb-warn" ref={left(g.warn)} />
        {g.amount < 100 && <span class="bb-mark bb-amount" ref={left(g.amount)} />}
        {g.forecast !== null && <span class="bb-mark bb-forecast" ref={left(g.forecast)} />}
      </div>
      <div class="budget-figures">
        <span>
          <strong data-figure="spent">{usd(s.spent_usd)}</strong> of <span data-figure="amount">{usd(b.amount_usd)}</span> spent (<span data-figure="used">{usedText(s.used_pct)}</span>)
        </span>
        <span>
          <strong data-figure="remaining">{usd(s.remaining_usd)}</strong> left
        </span>
        {f && (
          <span class={f.over ? 'warn' : 'muted'}>
            {f.over && <span aria-hidden="true">⚠ </span>}
            <span data-figure="forecast">{f.text}</span>
          </span>
        )}
      </div>
    </li>
  );
}

/** What the bar's marks mean, once under a list of budgets. */
export function BudgetLegend({ forecast, amount }: { forecast: boolean; amount: boolean }) {
  return (
    <ul class="legend budget-legend">
      <li>
        <span class="sw spent" aria-hidden="true" />
        Spent this period
      </li>
      <li>
        <span class="sw warnmark" aria-hidden="true" />
        Warning threshold
      </li>
      {forecast && (
        <li>
          <span class="sw forecastmark" aria-hidden="true" />
          Month-end forecast
        </li>
      )}
      {amount && (
        <li>
          <span class="sw amountmark" aria-hidden="true" />
          The budget's amount
        </li>
      )}
    </ul>
  );
}

/** Which marks a list of budgets shows, for its legend. */
export function legendOf(rows: { budget: Budget; status: BudgetStatus }[]): { forecast: boolean; amount: boolean } {
  const gs = rows.map((r) => barGeometry(r.budget.amount_usd, r.budget.warn_pct, r.status));
  return { forecast: gs.some((g) => g.forecast !== null), amount: gs.some((g) => g.amount < 100) };
}
