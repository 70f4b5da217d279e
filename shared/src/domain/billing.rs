//! Billing: what we keep of a workspace's Stripe subscription, how Stripe's webhook events move
//! it, and which plan it entitles the workspace to at a given moment. Pure: the billing function
//! does the I/O (verifying deliveries, storing, emailing, calling Stripe).
//!
//! We store only the Stripe customer id, subscription id, plan, status and period dates: never
//! card data (the privacy policy, section 7).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ids::WorkspaceId;
use super::plan::Plan;

/// How far a `Stripe-Signature` timestamp may be from now, either way (Stripe's default).
pub const SIGNATURE_TOLERANCE_S: i64 = 300;
/// After a failed payment the paid plan stays this long; then, unless an invoice is paid, the
/// workspace is downgraded to free.
pub const GRACE_PERIOD_MS: i64 = 7 * 86_400_000;

/// Why a webhook delivery's signature was not accepted. Every variant is answered 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    #[error("the Stripe-Signature header is malformed: {0}")]
    Malformed(String),
    #[error("no v1 signature matches any configured webhook secret")]
    NoMatch,
    #[error("the signature timestamp is {0} s old, past the 300 s tolerance")]
    Stale(i64),
    #[error("the signature timestamp is {0} s in the future, past the 300 s tolerance")]
    Future(i64),
}

/// Verifies a `Stripe-Signature` header (`t=TIMESTAMP,v1=SIG[,v1=SIG...][,v0=...]`) over the raw
/// body: HMAC-SHA256 of `"{t}.{body}"` with a webhook secret, hex-encoded, compared in constant
/// time. Any `v1` signature matching any of `secrets` is accepted (so secrets can be rotated);
/// other schemes (`v0`) are ignored. The timestamp must be within `SIGNATURE_TOLERANCE_S` of
/// `now_s`. Returns the signed timestamp.
pub fn verify_signature(
    header: Option<&str>,
    body: &[u8],
    secrets: &[String],
    now_s: i64,
) -> Result<i64, SignatureError> {
    todo!()
}

/// The header value Stripe would send for `body` signed with `secret` at `t`: for tests, and
/// for tools that replay deliveries.
pub fn sign(body: &[u8], secret: &str, t: i64) -> String {
    todo!()
}

/// A subscription's status, as Stripe names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// No subscription (never subscribed, or only a checkout started).
    None,
    Incomplete,
    IncompleteExpired,
    Trialing,
    Active,
    PastDue,
    Unpaid,
    Canceled,
    Paused,
}

impl SubscriptionStatus {
    /// Stripe's name; unknown names are `None`.
    pub fn parse(s: &str) -> Option<SubscriptionStatus> {
        todo!()
    }
}

/// What we keep of a workspace's subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Billing {
    pub workspace: WorkspaceId,
    /// `cus_...`: reused by every checkout of the workspace.
    pub customer_id: Option<String>,
    /// `sub_...`
    pub subscription_id: Option<String>,
    /// The paid plan subscribed to (meaningful while `status` entitles to it).
    pub plan: Plan,
    pub status: SubscriptionStatus,
    /// End of the current paid period (ms).
    pub period_end_ms: Option<i64>,
    pub cancel_at_period_end: bool,
    /// When the first unpaid invoice of the current episode failed (ms); cleared when paid.
    pub past_due_since_ms: Option<i64>,
    /// `created` (ms) of the newest subscription-state event applied: an older one is ignored.
    pub subscription_event_ms: i64,
    /// `created` (ms) of the newest invoice event applied: an older one is ignored.
    pub invoice_event_ms: i64,
    /// Optimistic concurrency: incremented by every save.
    pub version: u64,
}

impl Billing {
    /// A workspace's record before anything happened: no customer, free.
    pub fn new(workspace: WorkspaceId) -> Billing {
        todo!()
    }

    /// The plan this record entitles the workspace to at `now_ms`:
    /// - active or trialing: `plan`, but free from `period_end_ms` on if `cancel_at_period_end`;
    /// - past due or unpaid: `plan` until `past_due_since_ms + GRACE_PERIOD_MS`, then free;
    /// - canceled: `plan` until `period_end_ms` (cancellation takes effect at the end of the
    ///   paid period), then free;
    /// - anything else: free.
    pub fn entitled_plan(&self, now_ms: i64) -> Plan {
        todo!()
    }

    /// The next moment after `now_ms` at which `entitled_plan` changes without any new event
    /// (the end of the grace period, or of a cancelled paid period), if there is one.
    pub fn next_change_ms(&self, now_ms: i64) -> Option<i64> {
        todo!()
    }

    /// When the grace period of a failed payment ends, while past due or unpaid.
    pub fn grace_ends_ms(&self) -> Option<i64> {
        todo!()
    }
}

/// A Stripe event, parsed to the fields we use. Unknown fields are ignored, so a newer Stripe API
/// version does not break the webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct StripeEvent {
    /// `evt_...`: processed once.
    pub id: String,
    /// e.g. `customer.subscription.updated`.
    pub kind: String,
    /// Seconds since the epoch.
    pub created: i64,
    pub object: EventObject,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventObject {
    /// `checkout.session.completed`: `data.object` is a Checkout Session.
    CheckoutSession {
        customer: Option<String>,
        subscription: Option<String>,
        /// We set it to the workspace id.
        client_reference_id: Option<String>,
        /// `metadata.plan`, set by us at checkout.
        plan: Option<String>,
    },
    /// `customer.subscription.*`: a Subscription.
    Subscription {
        id: String,
        customer: String,
        status: String,
        /// Every `items.data[].price.id`.
        price_ids: Vec<String>,
        /// Seconds: the subscription's `current_period_end`, or (API 2025-03-31 and later)
        /// the latest `items.data[].current_period_end`.
        current_period_end: Option<i64>,
        cancel_at_period_end: bool,
        /// `metadata.workspace`, set by us at checkout.
        workspace: Option<String>,
    },
    /// `invoice.*`: an Invoice.
    Invoice {
        customer: String,
        /// `subscription`, or (API 2025-03-31 and later) `parent.subscription_details.subscription`.
        subscription: Option<String>,
    },
    /// Any other object: the event is acknowledged and ignored.
    Other,
}

/// Parses a delivery's body. `Err` says what is wrong (a 400).
pub fn parse_event(body: &[u8]) -> Result<StripeEvent, String> {
    todo!()
}

/// Which plan a Stripe price id buys (from `STRIPE_PRICE_PRO` and `STRIPE_PRICE_TEAM`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prices {
    pub pro: String,
    pub team: String,
}

impl Prices {
    pub fn plan_of(&self, price_id: &str) -> Option<Plan> {
        todo!()
    }

    pub fn price_of(&self, plan: Plan) -> Option<&str> {
        todo!()
    }
}

/// Something the billing function must do after a transition is saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A payment failed and the workspace entered its grace period: email the owners.
    PaymentFailed { grace_ends_ms: i64 },
    /// A failed payment was settled: the grace period is over.
    PaymentRecovered,
}

/// The outcome of applying one event to a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The record changes to this (not yet saved: `version` is unchanged), with these notices.
    Changed(Billing, Vec<Notice>),
    /// Nothing to change: an older event than the state already held, a repeated one, or one
    /// about another subscription.
    Unchanged,
}

/// Applies one event to a workspace's record.
///
/// Rules:
/// - `checkout.session.completed`: records the customer and subscription ids; the plan comes from
///   `metadata.plan` (the subscription events that follow are authoritative); status `active`
///   unless a subscription event already set a newer state (`subscription_event_ms` ≥ the
///   event's `created`).
/// - `customer.subscription.created|updated|deleted`: ignored when `created` (ms) is older than
///   `subscription_event_ms`; otherwise sets subscription id, customer, status (`deleted` ⇒
///   canceled), plan (from the price ids via `prices`; unchanged if none is known), period end,
///   cancel-at-period-end, and `subscription_event_ms`. Entering past due or unpaid sets
///   `past_due_since_ms` (to the event's time) if not set, with a `PaymentFailed` notice;
///   becoming active or trialing clears it (with `PaymentRecovered` if it was set).
/// - `invoice.payment_failed`: ignored when older than `invoice_event_ms` or for another
///   subscription; sets status past due and `past_due_since_ms` (first failure only: retries
///   do not extend the grace period) with a `PaymentFailed` notice on the first failure.
/// - `invoice.paid`: ignored when older than `invoice_event_ms` or for another subscription;
///   clears `past_due_since_ms` and sets status active (if past due or unpaid), with
///   `PaymentRecovered` if it was set.
/// - anything else: `Unchanged`.
pub fn apply(billing: &Billing, event: &StripeEvent, prices: &Prices) -> Applied {
    todo!()
}
