//! Where each budget stands (`/v1/stats/budgets`, for the dashboard and read keys) and the check
//! an application makes before a call (`/v1/budgets/check`, with its ingest key). Both measure
//! spend from the hourly rollups of the budget's scope, so a check costs one small read per
//! budget that applies, however much traffic the workspace has. LLMtrack is not a proxy: the
//! check answers, the application decides.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use llmtrack_shared::ApiError;
use llmtrack_shared::domain::alert::Filter;
use llmtrack_shared::domain::analytics::Filters;
use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::budget::{
    self, Budget, BudgetPeriod, BudgetStatus, CallValues, Decision,
};
use llmtrack_shared::domain::rollup::Dimension;
use llmtrack_shared::domain::time::rfc3339;
use llmtrack_shared::extract::Query;
use llmtrack_shared::ports::Workspace;
use llmtrack_shared::usecases;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{QueryState, ReadErrors, WorkspaceParam, forecast, reader};

/// A budget and where it stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetView {
    pub budget: Budget,
    pub status: BudgetStatus,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetsAnswer {
    pub budgets: Vec<BudgetView>,
}

/// Every budget of the workspace with what it has spent this period, what remains, what a check
/// would answer, and (month budgets) the month-end forecast of its scope.
#[utoipa::path(
    get,
    path = "/v1/stats/budgets",
    tag = "budgets",
    params(WorkspaceParam),
    responses((status = 200, body = BudgetsAnswer), ReadErrors),
    security(("api_key" = []), ("session" = []))
)]
pub async fn budgets(
    State(s): State<QueryState>,
    headers: HeaderMap,
    Query(q): Query<WorkspaceParam>,
) -> Result<Json<BudgetsAnswer>, ApiError> {
    let ws = reader(&s, &headers, q.workspace.as_deref()).await?;
    let now = s.clock.now_ms();
    let mut out = Vec::new();
    for b in &ws.budgets.items {
        let bounds = budget::period_bounds(&b.period, &ws.timezone, now);
        let spent = usecases::budget_spent(s.store.events.as_ref(), &ws.id, b, bounds).await?;
        let forecast = match b.period {
            BudgetPeriod::Month => Some(
                forecast::project(&s, &ws, &filters_of(b.scope.as_ref()))
                    .await?
                    .cost_usd
                    .expected,
            ),
            BudgetPeriod::Rolling { .. } => None,
        };
        out.push(BudgetView {
            budget: b.clone(),
            status: budget::status(b, spent, bounds, forecast),
        });
    }
    Ok(Json(BudgetsAnswer { budgets: out }))
}

fn filters_of(scope: Option<&Filter>) -> Filters {
    Filters(
        scope
            .map(|f| {
                let value = match f.dimension {
                    Dimension::Model => budget::canonical_model(&f.value),
                    _ => f.value.clone(),
                };
                (f.dimension, value)
            })
            .into_iter()
            .collect(),
    )
}

/// The coming call, as the application knows it. The source is the ingest key's.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CheckParams {
    /// The model about to be called (any spelling: `openai/gpt-4o` is `gpt-4o`).
    pub model: Option<String>,
    /// The feature making the call.
    pub feature: Option<String>,
    /// The end-user it is made for.
    pub user: Option<String>,
}

/// One budget that applies to the call.
#[derive(Debug, Serialize, ToSchema)]
pub struct Applied {
    pub id: String,
    pub name: String,
    pub scope: Option<Filter>,
    pub amount_usd: f64,
    pub spent_usd: f64,
    pub remaining_usd: f64,
    pub used_pct: f64,
    pub decision: Decision,
    /// When the period ends (the month's end; for a rolling budget, now).
    pub period_end: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckAnswer {
    /// The most severe answer of the budgets that apply; `allow` when none does.
    pub decision: Decision,
    /// The least remaining among the budgets that apply; `null` when none does.
    pub remaining_usd: Option<f64>,
    pub budgets: Vec<Applied>,
}

/// Before a call: whether the budgets it falls under allow it (`allow`), are nearly spent
/// (`warn`, from each budget's `warn_pct`) or are spent (`deny`, for budgets that deny), with
/// what remains. Authenticated with the ingest key the application sends events with; its
/// source label is the call's source.
#[utoipa::path(
    get,
    path = "/v1/budgets/check",
    tag = "budgets",
    params(CheckParams),
    responses(
        (status = 200, body = CheckAnswer),
        (status = 400, description = "An unknown query parameter", body = llmtrack_shared::error::ErrorBody),
        (status = 401, description = "Missing, unknown or deactivated key", body = llmtrack_shared::error::ErrorBody),
        (status = 403, description = "The key's scope is not `ingest`", body = llmtrack_shared::error::ErrorBody),
        (status = 429, description = "Too many checks: cache answers for a few seconds", body = llmtrack_shared::error::ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn check(
    State(s): State<QueryState>,
    headers: HeaderMap,
    Query(q): Query<CheckParams>,
) -> Result<Json<CheckAnswer>, ApiError> {
    let (key, ws) = s.gate.api_key(&headers, Scope::Ingest).await?;
    s.check_limits.caller(&format!("key:{}", key.id))?;
    let call = CallValues {
        model: q.model,
        feature: q.feature,
        source: Some(key.source.clone()),
        user: q.user,
    };
    Ok(Json(answer(&s, &ws, &call).await?))
}

async fn answer(
    s: &QueryState,
    ws: &Workspace,
    call: &CallValues,
) -> Result<CheckAnswer, ApiError> {
    let now = s.clock.now_ms();
    let mut applied = Vec::new();
    for b in ws.budgets.items.iter().filter(|b| budget::applies(b, call)) {
        let bounds = budget::period_bounds(&b.period, &ws.timezone, now);
        let spent = usecases::budget_spent(s.store.events.as_ref(), &ws.id, b, bounds).await?;
        let st = budget::status(b, spent, bounds, None);
        applied.push(Applied {
            id: b.id.clone(),
            name: b.name.clone(),
            scope: b.scope.clone(),
            amount_usd: b.amount_usd,
            spent_usd: st.spent_usd,
            remaining_usd: st.remaining_usd,
            used_pct: st.used_pct,
            decision: st.decision,
            period_end: rfc3339(bounds.1),
        });
    }
    Ok(CheckAnswer {
        decision: applied
            .iter()
            .map(|a| a.decision)
            .max()
            .unwrap_or(Decision::Allow),
        remaining_usd: applied
            .iter()
            .map(|a| a.remaining_usd)
            .min_by(f64::total_cmp),
        budgets: applied,
    })
}
