//! The alerts function: a workspace's alert rules (admins write them, within the plan's
//! limit), their history, a test notification, and the evaluation that moves each rule between
//! ok and firing (`evaluate`) and notifies by email and signed webhook (`notify`). On AWS the
//! evaluator runs every 5 minutes on a schedule; `llmtrack serve` runs it on its upkeep timer.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use llmtrack_shared::auth::Gate;
use llmtrack_shared::config::WebConfig;
use llmtrack_shared::domain::access::Action;
use llmtrack_shared::domain::alert::{
    self, AlertEvent, AlertRule, Condition, Filter, Invalid, RuleState, SlackChannel,
};
use llmtrack_shared::domain::time::rfc3339;
use llmtrack_shared::domain::{ids, names};
use llmtrack_shared::extract::Json;
use llmtrack_shared::ports::{DynClock, DynMailer, DynVault, Workspace};
use llmtrack_shared::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod evaluate;
pub mod notify;

llmtrack_shared::store_ports! {
    /// What alerting reads (workspaces, rollups, usage, members to tell) and its rules.
    pub struct AlertsPorts {
        workspaces: Workspaces,
        events: Events,
        members: Members,
        alert_rules: AlertRules,
        connections: Connections,
    }
}

/// What evaluation and notification need.
#[derive(Clone)]
pub struct Deps {
    pub store: AlertsPorts,
    pub clock: DynClock,
    pub mailer: DynMailer,
    /// The dashboard's origin, for links.
    pub public_url: String,
    /// The key each rule's webhook signing secret is derived from (`notify::webhook_secret`).
    pub signing_key: Vec<u8>,
    /// Webhooks to `http://127.0.0.1` are allowed (a local server, for development).
    pub allow_local_http: bool,
    /// Seals each rule's Slack webhook URL (the URL is the credential).
    pub vault: DynVault,
}

#[derive(Clone)]
pub struct AlertsState {
    pub gate: Gate,
    pub deps: Deps,
    pub web: WebConfig,
}

/// The Lambda functions' parts: DynamoDB and SES; the signing key from `ALERT_SIGNING_KEY`.
#[cfg(feature = "lambda")]
pub async fn lambda_deps(store: &llmtrack_shared::ports::DynStore) -> anyhow::Result<Deps> {
    use std::sync::Arc;

    use llmtrack_shared::adapters::kms::KmsVault;
    use llmtrack_shared::adapters::ses::Ses;
    use llmtrack_shared::config::{MailConfig, required};
    let key = required("ALERT_SIGNING_KEY")?;
    anyhow::ensure!(
        key.len() >= 32,
        "ALERT_SIGNING_KEY must be at least 32 characters"
    );
    Ok(Deps {
        store: AlertsPorts::of(store),
        clock: Arc::new(llmtrack_shared::ports::SystemClock),
        mailer: Arc::new(Ses::from_env(&MailConfig::from_env()?.from).await),
        public_url: WebConfig::from_env()?.public_url,
        signing_key: key.into_bytes(),
        allow_local_http: false,
        vault: Arc::new(KmsVault::from_env(
            llmtrack_shared::adapters::aws::sdk_config().await,
        )?),
    })
}

fn routes() -> OpenApiRouter<AlertsState> {
    OpenApiRouter::new()
        .routes(routes!(list_rules, create_rule))
        .routes(routes!(get_rule, update_rule, delete_rule))
        .routes(routes!(history))
        .routes(routes!(test_rule))
}

pub fn router(state: AlertsState) -> OpenApiRouter {
    llmtrack_shared::openapi::strict_query(routes()).with_state(state)
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

type Result<T> = std::result::Result<T, ApiError>;

fn bad(e: Invalid) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidRule, e.message)
}

#[derive(Serialize, ToSchema)]
pub struct RuleView {
    id: String,
    name: String,
    #[schema(value_type = Object)]
    condition: Condition,
    filter: Option<Filter>,
    email: bool,
    webhook_url: Option<String>,
    /// What is shown of the Slack webhook URL, which is sealed once saved:
    /// `hooks.slack.com/services/T…/B…/…abcd`.
    slack: Option<String>,
    /// `ok` or `firing`.
    state: &'static str,
    /// An `any_value` rule's values over its threshold now, the largest first; an `anomaly`
    /// rule's with `each`, the values with an anomaly open.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    values: Vec<String>,
    /// Firing at this budget threshold (1 is the first); 0 when ok.
    level: u32,
    since: Option<String>,
    created_at: String,
    /// The webhook's signing secret: in the response that creates the rule (or sets its
    /// webhook) and never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_secret: Option<String>,
    /// Why the rule is not evaluated: the budget it follows (`budget_id`) was deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

impl RuleView {
    /// `r` as shown, in workspace `ws` (whose budgets a rule may follow).
    fn of(ws: &Workspace, r: &AlertRule) -> RuleView {
        let problem = r.condition.budget_id().and_then(|id| {
            (!ws.budgets.items.iter().any(|b| b.id == id)).then(|| {
                format!(
                    "the budget `{id}` this rule follows was deleted: it is not evaluated; \
                     follow another budget or delete the rule"
                )
            })
        });
        RuleView {
            id: r.id.clone(),
            name: r.name.clone(),
            condition: r.condition.clone(),
            filter: r.filter.clone(),
            email: r.email,
            webhook_url: r.webhook_url.clone(),
            slack: r.slack.as_ref().map(|c| c.hint.clone()),
            state: if r.state.level > 0 { "firing" } else { "ok" },
            values: r.state.values.clone(),
            level: r.state.level,
            since: (r.state.since_ms > 0).then(|| rfc3339(r.state.since_ms)),
            created_at: rfc3339(r.created_ms),
            webhook_secret: None,
            problem,
        }
    }
}

/// The body of a new rule; a PATCH takes any of its fields.
#[derive(Deserialize, ToSchema)]
pub struct RuleRequest {
    name: Option<String>,
    /// `{"metric": "cost", "period": "day"|"month", "over_usd"}`,
    /// `{"metric": "budget", "budget_usd", "thresholds_pct": [50, 80, 100]}`, or following one
    /// of the workspace's budgets `{"metric": "budget", "budget_id", "thresholds_pct"?}`,
    /// `{"metric": "forecast", "budget_usd"}`,
    /// `{"metric": "error_rate", "over_pct", "window_minutes", "min_requests"?}`,
    /// `{"metric": "latency_p95", "over_ms", "window_minutes"}`,
    /// `{"metric": "coverage", "under_pct", "days"}`, `{"metric": "drift", "over_pct", "days"}`
    /// (against the providers' bills: `docs/RECONCILIATION.md`),
    /// `{"metric": "any_value", "dimension": "user"|"feature"|"model"|"source", "over_usd"|"over_requests", "window_hours"}`
    /// (each value over, told one by one: `docs/ALERTS.md`),
    /// `{"metric": "anomaly", "on": "cost"|"requests"|"tokens"|"error_rate", "dimension"?: "feature"|"model"|"source"|"user", "each"?: "feature"|"model"|"source"|"user"}`
    /// (an hour unusual for its hour of the week, no threshold to set; `dimension` names the
    /// contributors, feature by default; `each` judges every value of that dimension on its
    /// own, the 20 largest; with a `filter`, the filter value's own series).
    #[schema(value_type = Object)]
    condition: Option<serde_json::Value>,
    /// One model, feature, source or end-user: `{"dimension": "model", "value": "gpt-4o"}`;
    /// `null` to watch everything.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Object)]
    filter: Option<Option<serde_json::Value>>,
    /// Email the workspace's owners and admins (default true).
    email: Option<bool>,
    /// `https://…` to receive signed JSON notifications; `null` to remove.
    #[serde(default, deserialize_with = "present")]
    webhook_url: Option<Option<String>>,
    /// A Slack incoming webhook, `https://hooks.slack.com/services/…`, for a readable message
    /// with a link to the dashboard; `null` to remove. Sealed when saved, never shown again.
    #[serde(default, deserialize_with = "present")]
    slack_webhook_url: Option<Option<String>>,
}

/// Tells a field sent as `null` (Some(None)) from one left out (None).
fn present<'de, D, T>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl AlertsState {
    async fn rule(&self, ws: &Workspace, id: &str) -> Result<AlertRule> {
        self.deps
            .store
            .alert_rules
            .alert_rule(&ws.id, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("alert rule `{id}` not found")))
    }

    /// Applies a request to a rule (a new one, or a copy of the stored one), checking each field.
    async fn apply(&self, ws: &Workspace, rule: &mut AlertRule, req: RuleRequest) -> Result<()> {
        if let Some(name) = req.name {
            rule.name = names::display_name("name", &name)
                .map_err(|m| ApiError::bad_request(ErrorCode::InvalidRule, m))?;
        }
        let mut reset = false;
        if let Some(c) = req.condition {
            rule.condition = Condition::parse(&c).map_err(bad)?;
            reset = true;
        }
        if let Some(f) = req.filter {
            rule.filter = match f {
                None => None,
                Some(v) => {
                    let f: Filter = serde_json::from_value(v).map_err(|e| {
                        ApiError::bad_request(
                            ErrorCode::InvalidRule,
                            format!("`filter` must be {{\"dimension\": \"model\"|\"feature\"|\"source\"|\"user\", \"value\": \"…\"}} ({e})"),
                        )
                    })?;
                    f.check().map_err(bad)?;
                    Some(f)
                }
            };
            reset = true;
        }
        if let Some(e) = req.email {
            rule.email = e;
        }
        if let Some(w) = req.webhook_url {
            rule.webhook_url = match w {
                None => None,
                Some(url) => Some(
                    alert::webhook_url(&url, self.deps.allow_local_http)
                        .map_err(bad)?
                        .to_string(),
                ),
            };
        }
        if let Some(w) = req.slack_webhook_url {
            rule.slack = match w {
                None => None,
                Some(url) => Some(self.seal_slack(rule, &url).await?),
            };
        }
        if rule.filter.is_some()
            && matches!(
                rule.condition,
                Condition::Coverage { .. } | Condition::Drift { .. }
            )
        {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidRule,
                "`coverage` and `drift` rules watch the whole bill: leave `filter` out",
            ));
        }
        if rule.filter.is_some() && matches!(rule.condition, Condition::AnyValue { .. }) {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidRule,
                "an `any_value` rule watches every value of its `dimension`: leave `filter` out",
            ));
        }
        if let Some(id) = rule.condition.budget_id() {
            if !ws.budgets.items.iter().any(|b| b.id == id) {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidRule,
                    format!("`budget_id`: this workspace has no budget `{id}`"),
                ));
            }
            if rule.filter.is_some() {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidRule,
                    "a rule following a budget (`budget_id`) watches the budget's scope: leave \
                     `filter` out",
                ));
            }
        }
        // An `anomaly` rule with a filter watches that value's own series; with `each` too,
        // the values of `each` within it, where the rollups keep them.
        alert::anomaly_filter(&rule.condition, rule.filter.as_ref()).map_err(bad)?;
        if !rule.email && rule.webhook_url.is_none() && rule.slack.is_none() {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidRule,
                "a rule needs a channel: `email: true`, a `webhook_url`, a `slack_webhook_url`, \
                 or several",
            ));
        }
        if reset {
            // What the rule watches changed: it starts over, measured afresh.
            rule.state = RuleState::default();
        }
        Ok(())
    }

    /// Checks a Slack webhook URL and seals it to this rule.
    async fn seal_slack(&self, rule: &AlertRule, url: &str) -> Result<SlackChannel> {
        let u = alert::slack_webhook_url(url, self.deps.allow_local_http).map_err(bad)?;
        let context = SlackChannel::context(&rule.workspace, &rule.id);
        let sealed = self
            .deps
            .vault
            .seal(u.as_str(), &context)
            .await
            .map_err(ApiError::Unexpected)?;
        Ok(SlackChannel {
            sealed: BASE64.encode(sealed),
            hint: alert::slack_hint(&u),
        })
    }
}

/// A workspace's alert rules and where each stands.
#[utoipa::path(get, path = "/v1/workspaces/{id}/alerts", tag = "alerts",
    params(("id" = String, Path, description = "The workspace")),
    responses((status = 200, body = Vec<RuleView>), (status = 401, description = "No session"),
        (status = 404, description = "No such workspace among yours")))]
async fn list_rules(
    State(s): State<AlertsState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<RuleView>>> {
    let ws = s.gate.member(&headers, &id, Action::Read).await?.workspace;
    let rules = s.deps.store.alert_rules.alert_rules(&ws.id).await?;
    Ok(axum::Json(
        rules.iter().map(|r| RuleView::of(&ws, r)).collect(),
    ))
}

/// Create a rule (admins), within the plan's limit of rules.
#[utoipa::path(post, path = "/v1/workspaces/{id}/alerts", tag = "alerts",
    params(("id" = String, Path, description = "The workspace")), request_body = RuleRequest,
    responses((status = 201, body = RuleView, description = "Created; `webhook_secret` is shown this once"),
        (status = 400, description = "A field is not valid: the message names it"),
        (status = 401, description = "No session"), (status = 403, description = "Not an admin"),
        (status = 404, description = "No such workspace among yours"),
        (status = 409, description = "The plan's limit of alert rules is reached")))]
async fn create_rule(
    State(s): State<AlertsState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(req): Json<RuleRequest>,
) -> Result<Response> {
    let ws = s
        .gate
        .member(&headers, &id, Action::ManageAlerts)
        .await?
        .workspace;
    if req.name.is_none() || req.condition.is_none() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidRule,
            "a rule needs a `name` and a `condition`",
        ));
    }
    let now = s.deps.clock.now_ms();
    let mut rule = AlertRule {
        id: ids::prefixed("alr", now),
        workspace: ws.id.clone(),
        name: String::new(),
        condition: Condition::Forecast { budget_usd: 1.0 },
        filter: None,
        email: true,
        webhook_url: None,
        slack: None,
        state: RuleState::default(),
        created_ms: now,
        updated_ms: now,
        version: 0,
    };
    s.apply(&ws, &mut rule, req).await?;
    s.deps
        .store
        .alert_rules
        .create_alert_rule(&rule, ws.plan.limits().alert_rules)
        .await?;
    let mut view = RuleView::of(&ws, &rule);
    view.webhook_secret = rule
        .webhook_url
        .as_ref()
        .map(|_| notify::webhook_secret(&s.deps.signing_key, &rule));
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

/// One rule and where it stands.
#[utoipa::path(get, path = "/v1/workspaces/{id}/alerts/{rule}", tag = "alerts",
    params(("id" = String, Path, description = "The workspace"), ("rule" = String, Path, description = "The rule")),
    responses((status = 200, body = RuleView), (status = 401, description = "No session"),
        (status = 404, description = "No such rule")))]
async fn get_rule(
    State(s): State<AlertsState>,
    headers: HeaderMap,
    Path((id, rule)): Path<(String, String)>,
) -> Result<axum::Json<RuleView>> {
    let ws = s.gate.member(&headers, &id, Action::Read).await?.workspace;
    Ok(axum::Json(RuleView::of(&ws, &s.rule(&ws, &rule).await?)))
}

/// Change a rule (admins). Changing what it watches starts it over at ok.
#[utoipa::path(patch, path = "/v1/workspaces/{id}/alerts/{rule}", tag = "alerts",
    params(("id" = String, Path, description = "The workspace"), ("rule" = String, Path, description = "The rule")),
    request_body = RuleRequest,
    responses((status = 200, body = RuleView), (status = 400, description = "A field is not valid"),
        (status = 401, description = "No session"), (status = 403, description = "Not an admin"),
        (status = 404, description = "No such rule"), (status = 409, description = "Changed meanwhile: read it again")))]
async fn update_rule(
    State(s): State<AlertsState>,
    headers: HeaderMap,
    Path((id, rule_id)): Path<(String, String)>,
    Json(req): Json<RuleRequest>,
) -> Result<axum::Json<RuleView>> {
    let ws = s
        .gate
        .member(&headers, &id, Action::ManageAlerts)
        .await?
        .workspace;
    let mut rule = s.rule(&ws, &rule_id).await?;
    let new_webhook = matches!(req.webhook_url, Some(Some(_)));
    s.apply(&ws, &mut rule, req).await?;
    rule.updated_ms = s.deps.clock.now_ms();
    if !s
        .deps
        .store
        .alert_rules
        .update_alert_rule(&mut rule)
        .await?
    {
        return Err(ApiError::Conflict(
            "the rule changed meanwhile (it may have just fired): read it again and retry".into(),
        ));
    }
    let mut view = RuleView::of(&ws, &rule);
    if new_webhook {
        view.webhook_secret = Some(notify::webhook_secret(&s.deps.signing_key, &rule));
    }
    Ok(axum::Json(view))
}

/// Delete a rule and its history (admins).
#[utoipa::path(delete, path = "/v1/workspaces/{id}/alerts/{rule}", tag = "alerts",
    params(("id" = String, Path, description = "The workspace"), ("rule" = String, Path, description = "The rule")),
    responses((status = 204, description = "Deleted"), (status = 401, description = "No session"),
        (status = 403, description = "Not an admin"), (status = 404, description = "No such rule")))]
async fn delete_rule(
    State(s): State<AlertsState>,
    headers: HeaderMap,
    Path((id, rule)): Path<(String, String)>,
) -> Result<StatusCode> {
    let ws = s
        .gate
        .member(&headers, &id, Action::ManageAlerts)
        .await?
        .workspace;
    if !s
        .deps
        .store
        .alert_rules
        .delete_alert_rule(&ws.id, &rule)
        .await?
    {
        return Err(ApiError::NotFound(format!("alert rule `{rule}` not found")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A rule's notifications, newest first: each transition (and test) and how every channel took it.
#[utoipa::path(get, path = "/v1/workspaces/{id}/alerts/{rule}/history", tag = "alerts",
    params(("id" = String, Path, description = "The workspace"), ("rule" = String, Path, description = "The rule")),
    responses((status = 200, body = Vec<AlertEvent>), (status = 401, description = "No session"),
        (status = 404, description = "No such rule")))]
async fn history(
    State(s): State<AlertsState>,
    headers: HeaderMap,
    Path((id, rule)): Path<(String, String)>,
) -> Result<axum::Json<Vec<AlertEvent>>> {
    let ws = s.gate.member(&headers, &id, Action::Read).await?.workspace;
    let rule = s.rule(&ws, &rule).await?;
    Ok(axum::Json(
        s.deps
            .store
            .alert_rules
            .alert_events(&ws.id, &rule.id, 100)
            .await?,
    ))
}

/// Send a test notification on every channel of the rule (admins); it goes into its history.
#[utoipa::path(post, path = "/v1/workspaces/{id}/alerts/{rule}/test", tag = "alerts",
    params(("id" = String, Path, description = "The workspace"), ("rule" = String, Path, description = "The rule")),
    responses((status = 200, body = AlertEvent, description = "Sent; each channel's outcome is in `deliveries`"),
        (status = 401, description = "No session"), (status = 403, description = "Not an admin"),
        (status = 404, description = "No such rule")))]
async fn test_rule(
    State(s): State<AlertsState>,
    headers: HeaderMap,
    Path((id, rule)): Path<(String, String)>,
) -> Result<axum::Json<AlertEvent>> {
    let ws = s
        .gate
        .member(&headers, &id, Action::ManageAlerts)
        .await?
        .workspace;
    let rule = s.rule(&ws, &rule).await?;
    let now = s.deps.clock.now_ms();
    Ok(axum::Json(
        evaluate::record(&s.deps, &ws, &rule, None, now).await?,
    ))
}
