// Shapes of the API's answers (see GET /v1/openapi.json).

export type Role = 'owner' | 'admin' | 'viewer';
export type Plan = 'free' | 'pro' | 'team';

export interface User {
  id: string;
  email: string;
  monthly_reports: boolean;
}

export interface Workspace {
  id: string;
  name: string;
  plan: Plan;
  timezone: string;
  created_at: string;
  role: Role;
  /** Which OpenTelemetry span (then resource) attributes name feature and end-user. */
  span_labels: SpanLabels;
}

export interface SpanLabels {
  feature: string[];
  user: string[];
}

export interface Me {
  user: User;
  workspaces: Workspace[];
}

export interface About {
  support_email: string | null;
  billing_configured: boolean;
  version: string;
}

export interface Covered {
  from: string;
  to: string;
  clamped: boolean;
  history_days: number;
  answered_from: string;
}

export interface Metrics {
  requests: number;
  errors: number;
  error_rate: number | null;
  tokens: { input: number; output: number; cached_input: number; cache_write: number; reasoning: number; total: number };
  cost_usd: number;
  unpriced: number;
  latency_ms: { p50: number | null; p90: number | null; p95: number | null; p99: number | null; count: number };
  /** Events whose cost the provider reported, beside LLMtrack's cost for them. */
  provider_reported: { events: number; cost_usd: number; computed_usd: number; difference_usd: number; difference_rate: number | null };
}

export interface Summary {
  covered: Covered;
  metrics: Metrics;
  previous: { from: string; to: string; clamped: boolean; metrics: Metrics } | null;
  change: Record<string, number | null>;
}

export interface Series {
  value: string | null;
  total: number | null;
  points: (number | null)[];
}

export interface Timeseries {
  covered: Covered;
  metric: string;
  granularity: 'hour' | 'day';
  by: string | null;
  buckets: string[];
  series: Series[];
  other: Series | null;
}

export interface BreakdownRow {
  value: string;
  metrics: Metrics;
}

export interface Breakdown {
  covered: Covered;
  by: string;
  sort: string;
  rows: BreakdownRow[];
  total_rows: number;
}

export interface UserUsage {
  user: string;
  covered: Covered;
  metrics: Metrics;
  days: string[];
  daily_cost_usd: (number | null)[];
}

export interface Projection {
  so_far: number;
  expected: number;
  low: number;
  high: number;
}

export interface Forecast {
  month: string;
  timezone: string;
  cost_usd: Projection;
  events: Projection;
  days_elapsed: number;
  days_in_month: number;
  history_days: number;
  clamped: boolean;
  method: string;
}

export interface LoggedEvent {
  id: string;
  timestamp: string;
  provider: string;
  model: string;
  feature: string | null;
  user_id: string | null;
  source: string;
  status: string;
  error_type: string | null;
  input_tokens: number;
  output_tokens: number;
  cached_input_tokens: number;
  cache_write_tokens: number;
  reasoning_tokens: number;
  cost_usd: number | null;
  latency_ms: number | null;
  metadata: Record<string, string | number | boolean>;
  // Present when the server records them (see docs/DASHBOARD.md).
  cost_source?: string | null;
  price?: unknown;
  redacted?: { field: string; reason: string }[];
  [k: string]: unknown;
}

export interface EventPage {
  events: LoggedEvent[];
  next_cursor: string | null;
  [k: string]: unknown;
}

export interface Key {
  id: string;
  name: string;
  source: string;
  scope: 'ingest' | 'read';
  state: 'active' | 'deactivated';
  prefix: string;
  created_at: string;
  created_by: string | null;
  last_used_at: string | null;
}

export interface NewKey extends Key {
  secret: string;
}

export interface Limit {
  limit: number;
  used: number;
}

export interface Usage {
  plan: Plan;
  month: string;
  resets_at: string;
  events: Limit;
  active_keys: Limit;
  members: Limit;
  alert_rules: Limit;
  /** Of members.used, how many are pending invitations (newer servers). */
  pending_invitations?: number;
  history_days: number;
  report_months: number;
  subscription: {
    status: string;
    plan: Plan;
    period_ends_at: string | null;
    cancel_at_period_end: boolean;
    grace_ends_at: string | null;
  } | null;
}

export interface Member {
  user_id: string;
  email: string;
  role: Role;
  since: string;
}

export interface Invitation {
  id: string;
  email: string;
  role: Role;
  invited_by: string;
  created_at: string;
  expires_at: string;
}

export interface AuditEntry {
  id: string;
  [k: string]: unknown;
}

export type Condition =
  | { metric: 'cost'; period: 'day' | 'month'; over_usd: number }
  /** With `budget_id`, it follows one of the workspace's budgets (amount, period, scope): `budget_usd` is 0 and `thresholds_pct` may be empty (the budget's warn_pct and 100). */
  | { metric: 'budget'; budget_usd: number; thresholds_pct: number[]; budget_id?: string }
  | { metric: 'forecast'; budget_usd: number }
  | { metric: 'error_rate'; over_pct: number; window_minutes: number; min_requests?: number }
  | { metric: 'latency_p95'; over_ms: number; window_minutes: number }
  /** Coverage of the provider's bill over the last `days` imported days below `under_pct`. */
  | { metric: 'coverage'; under_pct: number; days: number }
  /** Absolute drift from the provider's bill over the last `days` imported days above `over_pct`. */
  | { metric: 'drift'; over_pct: number; days: number }
  | { metric: 'any_value'; dimension: string; over_usd?: number; over_requests?: number; window_hours: number }
  /** An hour of the workspace's total unusual for its hour of the week; `dimension` names the contributors (feature when absent). */
  | { metric: 'anomaly'; on: 'cost' | 'requests' | 'tokens' | 'error_rate'; dimension?: string; each?: string };

export interface Rule {
  id: string;
  name: string;
  condition: Condition;
  filter: { dimension: string; value: string } | null;
  email: boolean;
  webhook_url: string | null;
  /** What is shown of the sealed Slack webhook URL: `hooks.slack.com/services/T…/B…/…abcd`. */
  slack: string | null;
  state: 'ok' | 'firing';
  /** An `any_value` rule's values over its limit now, the largest first. */
  values?: string[];
  level: number;
  since: string | null;
  created_at: string;
  webhook_secret?: string;
  /** Why it is not evaluated: the budget it follows was deleted. */
  problem?: string;
  [k: string]: unknown;
}

/** USD per million tokens; a kind left out is charged at the kind it is part of. */
export interface UsdRates {
  input: number;
  output: number;
  cached_input?: number;
  cache_write?: number;
  cache_write_1h?: number;
  reasoning?: number;
  audio_input?: number;
  audio_output?: number;
  image_input?: number;
  image_output?: number;
}

/** One of a workspace's own prices (GET /v1/workspaces/{id}/prices). */
export type PriceRule = {
  id: string;
  provider: string;
  model: string;
  effective_from?: string;
  effective_to?: string;
  note?: string;
  updated_at: string;
} & ({ kind: 'discount'; percent: number } | { kind: 'rates'; rates: UsdRates; batch_percent?: number });

export interface WorkspacePrices {
  version: number;
  rules: PriceRule[];
}

/** One model's line of a repricing (costs in USD). */
export interface ModelChange {
  model: string;
  events: number;
  changed: number;
  kept: number;
  unpriced_before: number;
  unpriced_after: number;
  cost_before_usd: number;
  cost_after_usd: number;
  difference_usd: number;
}

/** A repricing job (POST/GET /v1/workspaces/{id}/repricing). */
export interface Repricing {
  id: string;
  state: 'queued' | 'running' | 'done' | 'failed';
  dry_run: boolean;
  from: string;
  to: string;
  hours_done: number;
  hours_total: number;
  models: ModelChange[];
  total: ModelChange;
  relabelled: number;
  rewritten: number;
  price_rules: number;
  created_at: string;
  finished_at: string | null;
}

// ---------- reconciliation with the provider's bill ----------

export type BillingProvider = 'openai' | 'anthropic';
export type TokenKind = 'input' | 'cached_input' | 'cache_write' | 'output';

/** A workspace's link to an OpenAI or Anthropic organisation (the admin key is never returned). */
export interface Connection {
  id: string;
  provider: BillingProvider;
  /** The admin key's last four characters. */
  key_hint: string;
  /** OpenAI project ids or Anthropic workspace ids imported; empty for all. */
  scope: string[];
  created_at: string;
  /** The last UTC day imported whole. */
  imported_through: string | null;
  last_import: { at: string; ok: boolean; message: string | null; days: number } | null;
}

export type TokenCounts = Record<TokenKind, number>;

export type CauseKind = 'unpriced_model' | 'missing_events' | 'price_difference' | 'untracked_model' | 'not_tied_to_model';

/** What the provider billed beside what LLMtrack tracked, for a day, a model or the range. */
export interface Figures {
  billed: { tokens: TokenCounts; total_tokens: number; requests: number | null; cost_usd: number };
  tracked: { tokens: TokenCounts; total_tokens: number; requests: number; cost_usd: number; unpriced_requests: number };
  /** Share of the provider's tokens LLMtrack saw, in percent. */
  coverage_pct: number | null;
  /** LLMtrack's computed cost minus the billed cost. */
  drift_usd: number;
  drift_pct: number | null;
  causes: { kind: CauseKind | string; message: string }[];
}

export interface PriceDifference {
  provider: BillingProvider | string;
  model: string;
  kind: TokenKind;
  billed_usd_per_mtok: number;
  table_usd_per_mtok: number | null;
  difference_pct: number | null;
  tokens: number;
}

/** GET /v1/stats/reconciliation */
export interface Reconciliation {
  from: string;
  /** Exclusive. */
  to: string;
  connections: { id: string; provider: BillingProvider; imported_through: string | null }[];
  total: Figures;
  days: (Figures & { day: string })[];
  /** `tracked_model`: the model as LLMtrack's breakdowns name it. */
  models: (Figures & { provider: BillingProvider | string; model: string; tracked_model?: string })[];
  prices: PriceDifference[];
}

// ---------- budgets ----------

export type BudgetPeriod = { kind: 'month' } | { kind: 'rolling'; days: number };
export type BudgetDimension = 'model' | 'feature' | 'source' | 'user';
export type Decision = 'allow' | 'warn' | 'deny';

/** One of a workspace's budgets (GET /v1/workspaces/{id}/budgets). */
export interface Budget {
  id: string;
  name: string;
  /** The amount for one period. */
  amount_usd: number;
  /** A month is the calendar month in the workspace's timezone; rolling ends now. */
  period: BudgetPeriod;
  /** The one model, feature, source or end-user whose spend counts; null for the whole workspace. */
  scope: { dimension: BudgetDimension; value: string } | null;
  /** From this share of the amount (1 to 100) a check answers `warn`. */
  warn_pct: number;
  /** Whether a check answers `deny` once the amount is spent (else only `warn`). */
  deny: boolean;
  created_at: string;
  updated_at: string;
}

/** What POST and PUT take. */
export type BudgetInput = Omit<Budget, 'id' | 'created_at' | 'updated_at'>;

export interface WorkspaceBudgets {
  version: number;
  items: Budget[];
}

/** Where a budget stands in its current period. */
export interface BudgetStatus {
  spent_usd: number;
  /** 0 once spent. */
  remaining_usd: number;
  /** Past 100 when overspent. */
  used_pct: number;
  decision: Decision;
  period_start: string;
  period_end: string;
  /** The month-end forecast of the budget's scope (month budgets only). */
  forecast_usd: number | null;
}

/** GET /v1/stats/budgets */
export interface BudgetsAnswer {
  budgets: { budget: Budget; status: BudgetStatus }[];
}
