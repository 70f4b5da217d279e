//! The billing function: Stripe Checkout and the customer portal for owners, Stripe's webhooks,
//! and the sweep that ends grace periods and cancelled paid periods. The plan a workspace is on
//! is always the one its billing record entitles it to (`Billing::entitled_plan`); it is saved
//! with the record in one write, and every limit reads it from the workspace at once.
//!
//! Without Stripe configuration every billing endpoint answers 503 `billing_not_configured`;
//! self-hosters set plans with `llmtrack admin set-plan`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use llmtrack_shared::auth::{Gate, Member};
use llmtrack_shared::config::WebConfig;
use llmtrack_shared::domain::access::{Action, Role};
use llmtrack_shared::domain::billing::{self, Applied, Billing, EventObject, Notice, StripeEvent};
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::signature;
use llmtrack_shared::domain::time::rfc3339;
use llmtrack_shared::extract::Json;
use llmtrack_shared::ports::{
    BillingSave, Checkout, DynClock, DynMailer, Mail, Payments, StoreResult, Workspace,
};
use llmtrack_shared::retention_job::{self, RetentionPorts};
use llmtrack_shared::usecases::{self, Actor};
use llmtrack_shared::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

llmtrack_shared::store_ports! {
    /// Billing records and the plans they entitle workspaces to; owners to tell; the audit log.
    pub struct BillingPorts {
        workspaces: Workspaces,
        billing_records: BillingRecords,
        members: Members,
        audit_log: AuditLog,
    }
}

#[derive(Clone)]
pub struct BillingState {
    pub gate: Gate,
    pub store: BillingPorts,
    /// A plan change re-applies retention to what the workspace already stores.
    pub retention: RetentionPorts,
    pub clock: DynClock,
    pub mailer: DynMailer,
    pub web: WebConfig,
    /// `None`: billing is not configured (no Stripe keys).
    pub stripe: Option<Arc<dyn Payments>>,
    /// Run retention passes in this process (`llmtrack serve`); on AWS the jobs Lambda runs
    /// them from the table's stream.
    pub run_jobs_here: bool,
}

/// The Lambda functions' parts: DynamoDB, SES, and Stripe if configured.
#[cfg(feature = "lambda")]
pub async fn lambda_state() -> anyhow::Result<BillingState> {
    use llmtrack_shared::adapters::dynamodb::DynamoStore;
    use llmtrack_shared::adapters::ses::Ses;
    use llmtrack_shared::adapters::stripe::StripeApi;
    use llmtrack_shared::config::MailConfig;
    use llmtrack_shared::config::StripeConfig;
    let mail = MailConfig::from_env()?;
    let stripe = match StripeConfig::from_env()? {
        Some(c) => Some(Arc::new(StripeApi::new(c)?) as Arc<dyn Payments>),
        None => None,
    };
    let store: llmtrack_shared::ports::DynStore = Arc::new(DynamoStore::for_lambda().await?);
    let clock: DynClock = Arc::new(llmtrack_shared::ports::SystemClock);
    let web = WebConfig::from_env()?;
    Ok(BillingState {
        gate: Gate::new(&store, &clock, &web),
        store: BillingPorts::of(&store),
        retention: RetentionPorts::of(&store),
        clock,
        mailer: Arc::new(Ses::from_env(&mail.from).await),
        web,
        stripe,
        run_jobs_here: false,
    })
}

fn routes() -> OpenApiRouter<BillingState> {
    OpenApiRouter::new()
        .routes(routes!(checkout))
        .routes(routes!(portal))
        .routes(routes!(webhook))
}

pub fn router(state: BillingState) -> OpenApiRouter {
    llmtrack_shared::openapi::strict_query(routes()).with_state(state)
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

type Result<T> = std::result::Result<T, ApiError>;

fn not_configured() -> ApiError {
    ApiError::Unavailable {
        code: ErrorCode::BillingNotConfigured,
        message: "billing is not configured on this deployment (no Stripe keys); an operator can \
                  set a plan with `llmtrack admin set-plan`"
            .into(),
    }
}

impl BillingState {
    fn stripe(&self) -> Result<&dyn Payments> {
        self.stripe.as_deref().ok_or_else(not_configured)
    }

    fn billing_page(&self, ws: &WorkspaceId) -> String {
        format!("{}/workspaces/{ws}/billing", self.web.public_url)
    }

    async fn audit(&self, ws: &WorkspaceId, by: Actor<'_>, action: &str, target: String) {
        by.record(
            self.store.audit_log.as_ref(),
            ws,
            self.clock.now_ms(),
            action,
            Some(target),
        )
        .await;
    }
}

#[derive(Deserialize, ToSchema)]
pub struct CheckoutRequest {
    /// The paid plan to subscribe to: `pro` or `team`.
    plan: String,
}

#[derive(Serialize, ToSchema)]
pub struct RedirectView {
    /// Where to send the owner's browser (Stripe's hosted page).
    url: String,
}

/// Start a subscription (owners): a Stripe Checkout Session for a paid plan, tied to the
/// workspace and reusing its Stripe customer. The plan changes when Stripe confirms the payment
/// (the webhook), not when this answers.
#[utoipa::path(post, path = "/v1/workspaces/{id}/billing/checkout", tag = "billing",
    params(("id" = String, Path)), request_body = CheckoutRequest,
    responses((status = 200, body = RedirectView),
        (status = 400, description = "Not a paid plan"),
        (status = 401, description = "No session"), (status = 403, description = "Not an owner"),
        (status = 404, description = "No such workspace among yours"),
        (status = 409, description = "Already subscribed (to this plan, or to another: change plans in the portal)"),
        (status = 503, description = "Billing is not configured, or Stripe did not answer")))]
async fn checkout(
    State(s): State<BillingState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(req): Json<CheckoutRequest>,
) -> Result<axum::Json<RedirectView>> {
    let Member {
        who, workspace: ws, ..
    } = s.gate.member(&headers, &id, Action::ManageBilling).await?;
    let stripe = s.stripe()?;
    let plan = match Plan::parse(req.plan.trim()) {
        Some(Plan::Free) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidPlan,
                "`plan`: free needs no checkout; to leave a paid plan, cancel in the billing portal",
            ));
        }
        Some(p) => p,
        None => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidPlan,
                format!("`plan` must be `pro` or `team`, got `{}`", req.plan),
            ));
        }
    };
    let record = s.store.billing_records.billing(&ws.id).await?;
    let now = s.clock.now_ms();
    if let Some(b) = record
        .as_ref()
        .filter(|b| b.entitled_plan(now) != Plan::Free)
    {
        return Err(ApiError::Conflict(if b.plan == plan {
            format!("the workspace is already on the {} plan", plan.as_str())
        } else {
            format!(
                "the workspace already has a {} subscription; change plans in the billing portal",
                b.plan.as_str()
            )
        }));
    }
    let page = s.billing_page(&ws.id);
    let url = stripe
        .checkout(&Checkout {
            workspace: ws.id.as_str(),
            plan,
            customer: record.as_ref().and_then(|b| b.customer_id.as_deref()),
            email: who.user.email.as_str(),
            success_url: format!("{page}?checkout=success&session_id={{CHECKOUT_SESSION_ID}}"),
            cancel_url: format!("{page}?checkout=cancelled"),
        })
        .await
        .map_err(stripe_down)?;
    s.audit(
        &ws.id,
        Actor::person(&who.user, None),
        "billing.checkout_started",
        plan.as_str().to_owned(),
    )
    .await;
    Ok(axum::Json(RedirectView { url }))
}

/// The Stripe customer portal (owners): payment methods, invoices, plan changes, cancellation.
#[utoipa::path(post, path = "/v1/workspaces/{id}/billing/portal", tag = "billing",
    params(("id" = String, Path)),
    responses((status = 200, body = RedirectView),
        (status = 401, description = "No session"), (status = 403, description = "Not an owner"),
        (status = 404, description = "No such workspace among yours"),
        (status = 409, description = "The workspace has no Stripe customer yet: subscribe first"),
        (status = 503, description = "Billing is not configured, or Stripe did not answer")))]
async fn portal(
    State(s): State<BillingState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<RedirectView>> {
    let ws = s
        .gate
        .member(&headers, &id, Action::ManageBilling)
        .await?
        .workspace;
    let stripe = s.stripe()?;
    let customer = s
        .store
        .billing_records
        .billing(&ws.id)
        .await?
        .and_then(|b| b.customer_id)
        .ok_or_else(|| {
            ApiError::Conflict(
                "the workspace has no Stripe customer yet: subscribe to a plan first".into(),
            )
        })?;
    let url = stripe
        .portal(&customer, &s.billing_page(&ws.id))
        .await
        .map_err(stripe_down)?;
    Ok(axum::Json(RedirectView { url }))
}

fn stripe_down(e: anyhow::Error) -> ApiError {
    tracing::error!(error = format!("{e:#}"), "a Stripe API call failed");
    ApiError::Unavailable {
        code: ErrorCode::PaymentProviderUnavailable,
        message: "Stripe could not be reached or refused the request; try again in a minute".into(),
    }
}

#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    received: bool,
    /// `applied`, `unchanged` (older than the state held, or no change), `duplicate` (this event
    /// id was processed before), or `ignored` (a type we do not use, or no workspace of ours).
    outcome: &'static str,
}

/// Stripe's webhook. The `Stripe-Signature` header is checked over the raw body against every
/// configured secret, within 5 minutes either way; each event id is processed once.
#[utoipa::path(post, path = "/v1/billing/webhook", tag = "billing",
    request_body(content = String, content_type = "application/json", description = "A Stripe event, exactly as Stripe sent it"),
    responses((status = 200, body = WebhookView, description = "Accepted: applied, unchanged, duplicate or ignored"),
        (status = 400, description = "Unsigned, wrongly signed, stale or future-dated, or not a Stripe event"),
        (status = 503, description = "Billing is not configured")))]
async fn webhook(
    State(s): State<BillingState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<WebhookView>> {
    let stripe = s.stripe()?;
    let signature = headers
        .get("stripe-signature")
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    signature::verify_signature(
        signature,
        &body,
        &stripe.config().webhook_secrets,
        s.clock.now_ms().div_euclid(1000),
    )
    .map_err(|e| ApiError::bad_request(ErrorCode::InvalidSignature, e.to_string()))?;
    let event = billing::parse_event(&body).map_err(|e| {
        ApiError::bad_request(ErrorCode::InvalidEvent, format!("not a Stripe event: {e}"))
    })?;
    let outcome = process(&s, &event, &stripe.config().prices).await?;
    tracing::info!(event = %event.id, kind = %event.kind, outcome, "stripe webhook");
    Ok(axum::Json(WebhookView {
        received: true,
        outcome,
    }))
}

/// How many times a save that lost a race is re-applied before giving up (Stripe retries).
const SAVE_ATTEMPTS: usize = 8;

async fn process(
    s: &BillingState,
    event: &StripeEvent,
    prices: &billing::Prices,
) -> Result<&'static str> {
    if s.store.billing_records.stripe_event_seen(&event.id).await? {
        return Ok("duplicate");
    }
    let now = s.clock.now_ms();
    // A workspace being deleted takes no more billing changes: its deletion cancels the
    // subscription, and Stripe's notice of that must not bring a record back.
    let Some(ws) = workspace_of(s, event)
        .await?
        .filter(|w| w.deleting.is_none())
    else {
        return Ok(
            if s.store
                .billing_records
                .record_stripe_event(&event.id, now)
                .await?
            {
                "ignored"
            } else {
                "duplicate"
            },
        );
    };
    for _ in 0..SAVE_ATTEMPTS {
        let current = s
            .store
            .billing_records
            .billing(&ws.id)
            .await?
            .unwrap_or_else(|| Billing::new(ws.id.clone()));
        let (mut next, notices) = match billing::apply(&current, event, prices) {
            Applied::Unchanged => {
                return Ok(
                    if s.store
                        .billing_records
                        .record_stripe_event(&event.id, now)
                        .await?
                    {
                        "unchanged"
                    } else {
                        "duplicate"
                    },
                );
            }
            Applied::Changed(next, notices) => (next, notices),
        };
        let before = s
            .store
            .workspaces
            .workspace(&ws.id)
            .await?
            .map_or(ws.plan, |w| w.plan);
        let (plan, due) = (next.entitled_plan(now), next.next_change_ms(now));
        match s
            .store
            .billing_records
            .save_billing(&mut next, plan, due, Some(&event.id), now)
            .await?
        {
            BillingSave::Conflict => continue,
            BillingSave::Duplicate => return Ok("duplicate"),
            BillingSave::Saved => {}
        }
        let actor = format!("stripe:{}", event.id);
        s.audit(
            &ws.id,
            Actor::system(&actor),
            &format!("billing.{}", event.kind),
            format!("{} ({})", next.plan.as_str(), status_name(&next)),
        )
        .await;
        after_plan_change(s, &ws, before, plan).await;
        for notice in notices {
            notify(s, &ws, &next, &notice).await;
        }
        return Ok("applied");
    }
    Err(ApiError::Unexpected(anyhow::anyhow!(
        "the billing record of {} stayed contended",
        ws.id
    )))
}

fn status_name(b: &Billing) -> String {
    serde_json::to_value(b.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The workspace an event is about: the one we put in the checkout's client reference or the
/// subscription's metadata, else the one whose Stripe customer it names.
async fn workspace_of(s: &BillingState, event: &StripeEvent) -> StoreResult<Option<Workspace>> {
    let (named, customer) = match &event.object {
        EventObject::CheckoutSession {
            client_reference_id,
            customer,
            ..
        } => (client_reference_id.as_deref(), customer.as_deref()),
        EventObject::Subscription {
            workspace,
            customer,
            ..
        } => (workspace.as_deref(), Some(customer.as_str())),
        EventObject::Invoice { customer, .. } => (None, Some(customer.as_str())),
        EventObject::Other => return Ok(None),
    };
    if let Some(id) = named.and_then(WorkspaceId::parse)
        && let Some(ws) = s.store.workspaces.workspace(&id).await?
    {
        return Ok(Some(ws));
    }
    if let Some(customer) = customer
        && let Some(b) = s
            .store
            .billing_records
            .billing_by_customer(customer)
            .await?
    {
        return s.store.workspaces.workspace(&b.workspace).await;
    }
    Ok(None)
}

/// What follows a change of plan: the audit line, and the retention pass that makes stored
/// history follow the new window.
async fn after_plan_change(s: &BillingState, ws: &Workspace, from: Plan, to: Plan) {
    if from == to {
        return;
    }
    match usecases::plan_changed(
        s.retention.jobs.as_ref(),
        s.store.audit_log.as_ref(),
        &ws.id,
        from,
        to,
        Actor::system("billing"),
        s.clock.now_ms(),
    )
    .await
    {
        Ok(Some(job)) if s.run_jobs_here => {
            let (store, clock) = (s.retention.clone(), s.clock.clone());
            tokio::spawn(async move {
                if let Err(e) = retention_job::run(&store, &clock, job).await {
                    tracing::error!(error = format!("{e:#}"), "retention pass failed");
                }
            });
        }
        Ok(_) => {}
        Err(e) => {
            tracing::error!(workspace = %ws.id, error = format!("{e:#}"), "could not queue the retention pass")
        }
    }
    if to == Plan::Free && from != Plan::Free {
        notify_owners(
            s,
            ws,
            format!("{} is now on the free plan", ws.name),
            format!(
                "Your LLMtrack workspace {} moved from the {} plan to the free plan.\n\n\
                 Request-level history beyond {} days is no longer shown and will be deleted, \
                 and the free plan's limits apply from now on.\n\n\
                 To subscribe again: {}\n",
                ws.name,
                from.as_str(),
                Plan::Free.limits().history_days,
                s.billing_page(&ws.id)
            ),
        )
        .await;
    }
}

async fn notify(s: &BillingState, ws: &Workspace, b: &Billing, notice: &Notice) {
    match notice {
        Notice::PaymentFailed { grace_ends_ms } => {
            notify_owners(
                s,
                ws,
                format!("Payment failed for {}", ws.name),
                format!(
                    "We could not collect the payment for your LLMtrack workspace {}.\n\n\
                     Your {} plan stays active until {}. If no payment succeeds by then, the \
                     workspace moves to the free plan: its limits apply and request-level \
                     history beyond {} days is deleted.\n\n\
                     Update your payment method: {}\n",
                    ws.name,
                    b.plan.as_str(),
                    rfc3339(*grace_ends_ms),
                    Plan::Free.limits().history_days,
                    s.billing_page(&ws.id)
                ),
            )
            .await;
        }
        Notice::PaymentRecovered => {
            notify_owners(
                s,
                ws,
                format!("Payment received for {}", ws.name),
                format!(
                    "Thank you: the payment for your LLMtrack workspace {} went through, and \
                     its {} plan continues.\n",
                    ws.name,
                    b.plan.as_str()
                ),
            )
            .await;
        }
    }
}

async fn notify_owners(s: &BillingState, ws: &Workspace, subject: String, text: String) {
    let owners = match s.store.members.members(&ws.id).await {
        Ok(m) => m.into_iter().filter(|m| m.role == Role::Owner),
        Err(e) => {
            tracing::error!(workspace = %ws.id, error = %e, "could not list owners to email");
            return;
        }
    };
    for owner in owners {
        let mail = Mail {
            to: owner.email.as_str().to_owned(),
            subject: subject.clone(),
            text: text.clone(),
            html: None,
            about: Some(ws.id.clone()),
        };
        if let Err(e) = s.mailer.send(&mail).await {
            tracing::error!(workspace = %ws.id, error = format!("{e:#}"), "could not send a billing email");
        }
    }
}

/// A retention pass with no progress for this long has stopped (its Lambda ran out of time and
/// retries): the sweep takes it over.
const STALLED_MS: i64 = 15 * 60_000;

/// Ends what ends on its own: grace periods of failed payments and cancelled paid periods; and
/// carries on retention passes that stalled. Run every few minutes (a schedule on AWS, a timer in
/// `llmtrack serve`). Returns how many workspaces it moved.
pub async fn sweep(s: &BillingState) -> anyhow::Result<usize> {
    let moved = end_lapsed_periods(s).await?;
    let resumed = retention_job::resume_stalled(&s.retention, &s.clock, STALLED_MS).await?;
    if resumed > 0 {
        tracing::info!(resumed, "carried on stalled retention passes");
    }
    Ok(moved)
}

async fn end_lapsed_periods(s: &BillingState) -> anyhow::Result<usize> {
    let now = s.clock.now_ms();
    let mut moved = 0;
    // Bounded: a record that keeps losing races is left for the next sweep.
    for _ in 0..100 {
        let due = s.store.billing_records.billing_due(now, 100).await?;
        if due.is_empty() {
            break;
        }
        for mut b in due {
            let Some(ws) = s.store.workspaces.workspace(&b.workspace).await? else {
                continue;
            };
            let (plan, due) = (b.entitled_plan(now), b.next_change_ms(now));
            match s
                .store
                .billing_records
                .save_billing(&mut b, plan, due, None, now)
                .await?
            {
                BillingSave::Saved => {
                    after_plan_change(s, &ws, ws.plan, plan).await;
                    moved += usize::from(ws.plan != plan);
                }
                // A webhook saved it meanwhile; it is picked up again if still due.
                BillingSave::Conflict | BillingSave::Duplicate => {}
            }
        }
    }
    Ok(moved)
}
