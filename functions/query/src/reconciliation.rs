//! `GET /v1/stats/reconciliation`: the providers' bills (imported through provider connections)
//! beside what the workspace's events say, per UTC day and model (`docs/RECONCILIATION.md`).

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use chrono::NaiveDate;
use llmtrack_shared::domain::reconciliation::Provider;
use llmtrack_shared::domain::reconciliation::compare::{
    DayFigures, Figures, ModelFigures, PriceGap,
};
use llmtrack_shared::domain::time::to_datetime;
use llmtrack_shared::{ApiError, ErrorCode, usecases};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{QueryState, ReadErrors, reader};

/// The longest range one answer covers.
pub const MAX_DAYS: i64 = 92;
/// The range when none is given.
pub const DEFAULT_DAYS: i64 = 30;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeParams {
    /// First UTC day (`YYYY-MM-DD`). Default: 30 days before `to`.
    pub from: Option<String>,
    /// The UTC day after the last (`YYYY-MM-DD`, exclusive). Default: tomorrow, so today is in.
    pub to: Option<String>,
    /// With a session: which of your workspaces. (A read key reads its own workspace.)
    pub workspace: Option<String>,
}

/// A connection as the answer lists it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionStatus {
    pub id: String,
    pub provider: Provider,
    /// The last UTC day imported whole; null before the first import.
    pub imported_through: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReconciliationAnswer {
    pub from: String,
    pub to: String,
    pub connections: Vec<ConnectionStatus>,
    pub total: Figures,
    pub days: Vec<DayFigures>,
    pub models: Vec<ModelFigures>,
    pub prices: Vec<PriceGap>,
}

fn day(field: &str, v: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
        ApiError::bad_request(
            ErrorCode::InvalidTime,
            format!("`{field}` must be a day as YYYY-MM-DD, got `{v}`"),
        )
    })
}

/// Billed usage and cost against LLMtrack's: coverage, drift and their causes.
///
/// Per UTC day and provider model: the tokens (uncached input, cached input, cache writes,
/// output), requests and cost the provider reported, LLMtrack's counts and computed cost for
/// the same model, the share of billed tokens LLMtrack saw (`coverage_pct`), computed minus
/// billed cost (`drift_usd`, `drift_pct`), the likely causes, and the token kinds whose billed
/// rate differs from the price table.
#[utoipa::path(get, path = "/v1/stats/reconciliation", tag = "analytics", params(RangeParams),
    responses((status = 200, body = ReconciliationAnswer), ReadErrors))]
pub async fn reconciliation(
    State(s): State<QueryState>,
    headers: HeaderMap,
    Query(p): Query<RangeParams>,
) -> Result<axum::Json<ReconciliationAnswer>, ApiError> {
    let ws = reader(&s, &headers, p.workspace.as_deref()).await?;
    let today = to_datetime(s.clock.now_ms()).date_naive();
    let to = match &p.to {
        Some(v) => day("to", v)?,
        None => today + chrono::Duration::days(1),
    };
    let from = match &p.from {
        Some(v) => day("from", v)?,
        None => to - chrono::Duration::days(DEFAULT_DAYS),
    };
    if from >= to {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidRange,
            "`from` must be before `to` (`to` is the day after the last)",
        ));
    }
    if (to - from).num_days() > MAX_DAYS {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidRange,
            format!("the range may cover at most {MAX_DAYS} days"),
        ));
    }
    let r = usecases::reconciliation(
        s.store.events.as_ref(),
        s.store.connections.as_ref(),
        &ws.id,
        from,
        to,
    )
    .await?;
    let connections = s
        .store
        .connections
        .connections(&ws.id)
        .await?
        .into_iter()
        .map(|c| ConnectionStatus {
            id: c.id,
            provider: c.provider,
            imported_through: c.imported_through,
        })
        .collect();
    Ok(axum::Json(ReconciliationAnswer {
        from: from.to_string(),
        to: to.to_string(),
        connections,
        total: r.total,
        days: r.days,
        models: r.models,
        prices: r.prices,
    }))
}
