//! A workspace's plan limits against what it uses this month, and the subscription behind the
//! plan (renewal, cancellation, grace after a failed payment).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use llmtrack_shared::domain::apikey::KeyState;
use llmtrack_shared::domain::billing::{Billing, SubscriptionStatus};
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::time::{month_of, next_month_start, rfc3339};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{AccountState, Result};

#[derive(Serialize, ToSchema)]
pub struct Limit {
    limit: u64,
    used: u64,
}

#[derive(Serialize, ToSchema)]
pub struct UsageView {
    plan: Plan,
    /// The quota month (UTC), `YYYY-MM`.
    month: String,
    /// When the monthly event quota resets.
    resets_at: String,
    events: Limit,
    active_keys: Limit,
    /// Members and pending invitations: both count against the plan's member limit.
    members: Limit,
    /// How many of `members.used` are invitations not yet accepted.
    pending_invitations: u64,
    alert_rules: Limit,
    history_days: u32,
    report_months: u32,
    /// The subscription behind the plan; absent when the workspace never subscribed.
    subscription: Option<SubscriptionView>,
}

#[derive(Serialize, ToSchema)]
pub struct SubscriptionView {
    status: SubscriptionStatus,
    /// The plan subscribed to (the workspace's `plan` once it lapses is free).
    plan: Plan,
    /// When the paid period renews, or ends if cancelled.
    period_ends_at: Option<String>,
    cancel_at_period_end: bool,
    /// After a failed payment: when the workspace moves to free unless a payment succeeds.
    grace_ends_at: Option<String>,
}

impl From<&Billing> for SubscriptionView {
    fn from(b: &Billing) -> Self {
        SubscriptionView {
            status: b.status,
            plan: b.plan,
            period_ends_at: b.period_end_ms.map(rfc3339),
            cancel_at_period_end: b.cancel_at_period_end,
            grace_ends_at: b.grace_ends_ms().map(rfc3339),
        }
    }
}

/// The plan's limits against current use (any member), and the renewal or grace date.
#[utoipa::path(get, path = "/v1/workspaces/{id}/usage", tag = "workspaces", params(("id" = String, Path)),
    responses((status = 200, body = UsageView), (status = 404, description = "No such workspace among yours")))]
pub(crate) async fn usage(
    State(s): State<AccountState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<UsageView>> {
    let who = s.gate.session(&headers).await?;
    let (ws, _) = s.gate.membership(&who, &id).await?;
    let now = s.clock.now_ms();
    let month = month_of(now);
    let limits = ws.plan.limits();
    let events = s.store.events.usage(&ws.id, &month).await?;
    let active = s
        .store
        .keys
        .keys(&ws.id)
        .await?
        .iter()
        .filter(|k| k.state == KeyState::Active)
        .count() as u64;
    let members = s.store.members.members(&ws.id).await?.len() as u64;
    let pending = s
        .store
        .members
        .invitations(&ws.id)
        .await?
        .iter()
        .filter(|i| i.expires_ms > now)
        .count() as u64;
    let rules = s.store.alert_rules.alert_rules(&ws.id).await?.len() as u64;
    Ok(axum::Json(UsageView {
        plan: ws.plan,
        resets_at: rfc3339(next_month_start(now).timestamp_millis()),
        month,
        events: Limit {
            limit: limits.events_per_month,
            used: events,
        },
        active_keys: Limit {
            limit: limits.active_keys.into(),
            used: active,
        },
        members: Limit {
            limit: limits.members.into(),
            used: members + pending,
        },
        pending_invitations: pending,
        alert_rules: Limit {
            limit: limits.alert_rules.into(),
            used: rules,
        },
        history_days: limits.history_days,
        report_months: limits.report_months,
        subscription: s
            .store
            .billing_records
            .billing(&ws.id)
            .await?
            .as_ref()
            .map(SubscriptionView::from),
    }))
}
