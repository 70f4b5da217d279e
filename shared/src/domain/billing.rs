//! Billing: what we keep of a workspace's Stripe subscription, how Stripe's webhook events move
//! it, and which plan it entitles the workspace to at a given moment. Pure: the billing function
//! does the I/O (verifying deliveries, storing, emailing, calling Stripe).
//!
//! We store only the Stripe customer id, subscription id, plan, status and period dates: never
//! card data (the privacy policy, section 7).

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::ids::WorkspaceId;
use super::plan::Plan;

/// After a failed payment the paid plan stays this long; then, unless an invoice is paid, the
/// workspace is downgraded to free.
pub const GRACE_PERIOD_MS: i64 = 7 * 86_400_000;

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
        // `none` is ours, not Stripe's, so it is deliberately not accepted here.
        Some(match s {
            "incomplete" => SubscriptionStatus::Incomplete,
            "incomplete_expired" => SubscriptionStatus::IncompleteExpired,
            "trialing" => SubscriptionStatus::Trialing,
            "active" => SubscriptionStatus::Active,
            "past_due" => SubscriptionStatus::PastDue,
            "unpaid" => SubscriptionStatus::Unpaid,
            "canceled" => SubscriptionStatus::Canceled,
            "paused" => SubscriptionStatus::Paused,
            _ => return None,
        })
    }

    fn is_past_due(self) -> bool {
        matches!(
            self,
            SubscriptionStatus::PastDue | SubscriptionStatus::Unpaid
        )
    }

    fn is_in_good_standing(self) -> bool {
        matches!(
            self,
            SubscriptionStatus::Active | SubscriptionStatus::Trialing
        )
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
        Billing {
            workspace,
            customer_id: None,
            subscription_id: None,
            plan: Plan::Free,
            status: SubscriptionStatus::None,
            period_end_ms: None,
            cancel_at_period_end: false,
            past_due_since_ms: None,
            subscription_event_ms: 0,
            invoice_event_ms: 0,
            version: 0,
        }
    }

    /// The plan this record entitles the workspace to at `now_ms`:
    /// - active or trialing: `plan`, but free from `period_end_ms` on if `cancel_at_period_end`;
    /// - past due or unpaid: `plan` until `past_due_since_ms + GRACE_PERIOD_MS`, then free;
    /// - canceled: `plan` until `period_end_ms` (cancellation takes effect at the end of the
    ///   paid period), then free;
    /// - anything else: free.
    pub fn entitled_plan(&self, now_ms: i64) -> Plan {
        match self.paid_until_ms() {
            PaidUntil::Never => Plan::Free,
            PaidUntil::Open => self.plan,
            PaidUntil::Until(end) if now_ms < end => self.plan,
            PaidUntil::Until(_) => Plan::Free,
        }
    }

    /// The next moment after `now_ms` at which `entitled_plan` changes without any new event
    /// (the end of the grace period, or of a cancelled paid period), if there is one.
    pub fn next_change_ms(&self, now_ms: i64) -> Option<i64> {
        match self.paid_until_ms() {
            // Ending a free entitlement changes nothing.
            PaidUntil::Until(end) if end > now_ms && self.plan != Plan::Free => Some(end),
            _ => None,
        }
    }

    /// When the grace period of a failed payment ends, while past due or unpaid.
    pub fn grace_ends_ms(&self) -> Option<i64> {
        if !self.status.is_past_due() {
            return None;
        }
        self.past_due_since_ms
            .map(|since| since.saturating_add(GRACE_PERIOD_MS))
    }

    /// How long `plan` is paid for, given the status alone: the single place both
    /// `entitled_plan` and `next_change_ms` read, so they cannot disagree.
    fn paid_until_ms(&self) -> PaidUntil {
        match self.status {
            SubscriptionStatus::Active | SubscriptionStatus::Trialing => {
                match (self.cancel_at_period_end, self.period_end_ms) {
                    (true, Some(end)) => PaidUntil::Until(end),
                    // Renewals are not a change: Stripe tells us if one fails.
                    _ => PaidUntil::Open,
                }
            }
            // Without the failure's time the grace cannot be bounded, and an unbounded paid
            // plan for a subscription that is not being paid is the worse mistake.
            SubscriptionStatus::PastDue | SubscriptionStatus::Unpaid => self
                .grace_ends_ms()
                .map_or(PaidUntil::Never, PaidUntil::Until),
            SubscriptionStatus::Canceled => self
                .period_end_ms
                .map_or(PaidUntil::Never, PaidUntil::Until),
            SubscriptionStatus::None
            | SubscriptionStatus::Incomplete
            | SubscriptionStatus::IncompleteExpired
            | SubscriptionStatus::Paused => PaidUntil::Never,
        }
    }
}

/// Until when a record's `plan` is paid for.
enum PaidUntil {
    Never,
    /// Until a new event says otherwise.
    Open,
    /// Until this moment (ms), exclusive.
    Until(i64),
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

/// Why a delivery's body is not a Stripe event (a 400): what is wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the body is not valid JSON: {0}")]
    NotJson(String),
    /// The value at `at` is not of its type.
    #[error("{at}: {reason}")]
    Invalid { at: String, reason: String },
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("{0} is empty")]
    Empty(&'static str),
    #[error("{0} must be {1}")]
    Not(&'static str, &'static str),
}

/// Parses a delivery's body. `Err` says what is wrong (a 400).
pub fn parse_event(body: &[u8]) -> Result<StripeEvent, EventError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let raw: RawEvent = serde_path_to_error::deserialize(&mut de).map_err(|e| describe(e, ""))?;
    de.end().map_err(|e| EventError::NotJson(e.to_string()))?;

    let id = required_str(raw.id, "id")?;
    let kind = required_str(raw.kind, "type")?;
    let created = required(raw.created, "created")?;
    let object = required(required(raw.data, "data")?.object, "data.object")?;
    let Some(fields) = object.as_object() else {
        return Err(EventError::Not("data.object", "an object"));
    };
    let object_kind = match fields.get("object") {
        None | Some(serde_json::Value::Null) => {
            return Err(EventError::Missing("data.object.object"));
        }
        Some(serde_json::Value::String(kind)) => kind.as_str(),
        Some(_) => return Err(EventError::Not("data.object.object", "a string")),
    };

    let object = match object_kind {
        "checkout.session" => {
            let session: RawCheckoutSession = from_object(&object)?;
            EventObject::CheckoutSession {
                customer: session.customer.map(|c| c.0),
                subscription: session.subscription.map(|s| s.0),
                client_reference_id: session.client_reference_id,
                plan: session.metadata.and_then(|m| m.plan),
            }
        }
        "subscription" => {
            let sub: RawSubscription = from_object(&object)?;
            let items = sub.items.and_then(|i| i.data).unwrap_or_default();
            let items_period_end = items.iter().filter_map(|i| i.current_period_end).max();
            EventObject::Subscription {
                id: required_str(sub.id, "data.object.id")?,
                customer: required_str(sub.customer.map(|c| c.0), "data.object.customer")?,
                status: required(sub.status, "data.object.status")?,
                price_ids: items
                    .into_iter()
                    .filter_map(|i| i.price.map(|p| p.0))
                    .collect(),
                current_period_end: sub.current_period_end.or(items_period_end),
                cancel_at_period_end: sub.cancel_at_period_end.unwrap_or(false),
                workspace: sub.metadata.and_then(|m| m.workspace),
            }
        }
        "invoice" => {
            let invoice: RawInvoice = from_object(&object)?;
            let parent_subscription = invoice
                .parent
                .and_then(|p| p.subscription_details)
                .and_then(|d| d.subscription);
            EventObject::Invoice {
                customer: required_str(invoice.customer.map(|c| c.0), "data.object.customer")?,
                subscription: invoice.subscription.or(parent_subscription).map(|s| s.0),
            }
        }
        _ => EventObject::Other,
    };
    Ok(StripeEvent {
        id,
        kind,
        created,
        object,
    })
}

// The shapes below read only what we use. Every field is optional at this level so a missing
// one is reported by its path ("data.object.customer is missing") rather than serde's
// "missing field" at the parent; wrong types are reported by serde_path_to_error.

#[derive(Deserialize)]
#[serde(expecting = "a Stripe event object")]
struct RawEvent {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    created: Option<i64>,
    data: Option<RawData>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object with the event's object")]
struct RawData {
    object: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(expecting = "a Checkout Session")]
struct RawCheckoutSession {
    customer: Option<IdRef>,
    subscription: Option<IdRef>,
    client_reference_id: Option<String>,
    metadata: Option<RawMetadata>,
}

#[derive(Deserialize)]
#[serde(expecting = "a Subscription")]
struct RawSubscription {
    id: Option<String>,
    customer: Option<IdRef>,
    status: Option<String>,
    items: Option<RawList<RawSubscriptionItem>>,
    current_period_end: Option<i64>,
    cancel_at_period_end: Option<bool>,
    metadata: Option<RawMetadata>,
}

#[derive(Deserialize)]
#[serde(expecting = "a list object")]
struct RawList<T> {
    data: Option<Vec<T>>,
}

#[derive(Deserialize)]
#[serde(expecting = "a subscription item")]
struct RawSubscriptionItem {
    price: Option<IdRef>,
    current_period_end: Option<i64>,
}

#[derive(Deserialize)]
#[serde(expecting = "an Invoice")]
struct RawInvoice {
    customer: Option<IdRef>,
    subscription: Option<IdRef>,
    parent: Option<RawInvoiceParent>,
}

#[derive(Deserialize)]
#[serde(expecting = "an invoice parent")]
struct RawInvoiceParent {
    subscription_details: Option<RawSubscriptionDetails>,
}

#[derive(Deserialize)]
#[serde(expecting = "subscription details")]
struct RawSubscriptionDetails {
    subscription: Option<IdRef>,
}

#[derive(Deserialize)]
#[serde(expecting = "a metadata object")]
struct RawMetadata {
    plan: Option<String>,
    workspace: Option<String>,
}

/// A reference to another Stripe object: its id, or the object itself when expanded.
struct IdRef(String);

impl<'de> Deserialize<'de> for IdRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<IdRef, D::Error> {
        use serde::de::Error as _;
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(id) => Ok(IdRef(id)),
            serde_json::Value::Object(fields) => match fields.get("id") {
                Some(serde_json::Value::String(id)) => Ok(IdRef(id.clone())),
                _ => Err(D::Error::custom("an expanded object without a string `id`")),
            },
            _ => Err(D::Error::custom(
                "expected an id string or an expanded object with an `id`",
            )),
        }
    }
}

fn from_object<T: for<'de> Deserialize<'de>>(object: &serde_json::Value) -> Result<T, EventError> {
    serde_path_to_error::deserialize(object).map_err(|e| describe(e, "data.object."))
}

/// Names the path of a deserialization error: `prefix` is where the deserialized value sits.
fn describe(err: serde_path_to_error::Error<serde_json::Error>, prefix: &str) -> EventError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    if inner.is_syntax() || inner.is_eof() || inner.is_io() {
        return EventError::NotJson(inner.to_string());
    }
    let at = match (path.as_str(), prefix.strip_suffix('.')) {
        (".", None) => "the body".to_owned(),
        (".", Some(parent)) => parent.to_owned(),
        (path, _) => format!("{prefix}{path}"),
    };
    EventError::Invalid {
        at,
        reason: inner.to_string(),
    }
}

fn required<T>(value: Option<T>, path: &'static str) -> Result<T, EventError> {
    value.ok_or(EventError::Missing(path))
}

/// An identifier or name: empty is as good as missing, and would collide as a key.
fn required_str(value: Option<String>, path: &'static str) -> Result<String, EventError> {
    match required(value, path)? {
        s if s.is_empty() => Err(EventError::Empty(path)),
        s => Ok(s),
    }
}

/// Which plan a Stripe price id buys (from `STRIPE_PRICE_PRO` and `STRIPE_PRICE_TEAM`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prices {
    pub pro: String,
    pub team: String,
}

impl Prices {
    pub fn plan_of(&self, price_id: &str) -> Option<Plan> {
        // An unset (empty) price setting must not match an empty price id.
        if price_id.is_empty() {
            None
        } else if price_id == self.pro {
            Some(Plan::Pro)
        } else if price_id == self.team {
            Some(Plan::Team)
        } else {
            None
        }
    }

    pub fn price_of(&self, plan: Plan) -> Option<&str> {
        match plan {
            Plan::Free => None,
            Plan::Pro => Some(&self.pro),
            Plan::Team => Some(&self.team),
        }
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
    let created_ms = event.created.saturating_mul(1000);
    let mut next = billing.clone();
    let mut notices = Vec::new();

    match (event.kind.as_str(), &event.object) {
        (
            "checkout.session.completed",
            EventObject::CheckoutSession {
                customer,
                subscription,
                client_reference_id,
                plan,
            },
        ) => {
            if client_reference_id.as_deref() != Some(billing.workspace.as_str()) {
                return Applied::Unchanged;
            }
            let paid_plan = plan
                .as_deref()
                .and_then(Plan::parse)
                .filter(|p| *p != Plan::Free);
            let superseded = billing.subscription_event_ms >= created_ms;
            if superseded {
                // The subscription events are authoritative (a late checkout must not undo an
                // upgrade): only fill in what they left unset, e.g. a plan from unknown prices.
                next.customer_id = next.customer_id.or_else(|| customer.clone());
                next.subscription_id = next.subscription_id.or_else(|| subscription.clone());
                if next.plan == Plan::Free
                    && let Some(plan) = paid_plan
                {
                    next.plan = plan;
                }
            } else {
                if customer.is_some() {
                    next.customer_id.clone_from(customer);
                }
                if subscription.is_some() {
                    next.subscription_id.clone_from(subscription);
                }
                if let Some(plan) = paid_plan {
                    next.plan = plan;
                }
                next.status = SubscriptionStatus::Active;
                // A completed checkout is a paid first invoice: any earlier unpaid episode
                // belonged to a subscription this one replaces. Not a recovery to announce.
                next.past_due_since_ms = None;
            }
        }
        (
            "customer.subscription.created"
            | "customer.subscription.updated"
            | "customer.subscription.deleted",
            EventObject::Subscription {
                id,
                customer,
                status,
                price_ids,
                current_period_end,
                cancel_at_period_end,
                workspace: _,
            },
        ) => {
            if created_ms < billing.subscription_event_ms {
                return Applied::Unchanged;
            }
            let same_subscription = billing.subscription_id.as_deref() == Some(id.as_str());
            next.subscription_id = Some(id.clone());
            next.customer_id = Some(customer.clone());
            if event.kind == "customer.subscription.deleted" {
                next.status = SubscriptionStatus::Canceled;
            } else if let Some(status) = SubscriptionStatus::parse(status) {
                next.status = status;
            }
            if let Some(plan) = price_ids.iter().find_map(|p| prices.plan_of(p)) {
                next.plan = plan;
            }
            next.period_end_ms = match current_period_end {
                Some(end) => Some(end.saturating_mul(1000)),
                // Another subscription's period says nothing about this one.
                None if same_subscription => billing.period_end_ms,
                None => None,
            };
            next.cancel_at_period_end = *cancel_at_period_end;
            next.subscription_event_ms = created_ms;

            if next.status.is_past_due() {
                start_grace(&mut next, created_ms, &mut notices);
            } else if next.status.is_in_good_standing() {
                end_grace(&mut next, &mut notices);
            }
        }
        (
            kind @ ("invoice.payment_failed" | "invoice.paid"),
            EventObject::Invoice { subscription, .. },
        ) => {
            if created_ms < billing.invoice_event_ms {
                return Applied::Unchanged;
            }
            if let (Some(ours), Some(theirs)) = (&billing.subscription_id, subscription)
                && ours != theirs
            {
                return Applied::Unchanged;
            }
            next.invoice_event_ms = created_ms;
            if kind == "invoice.payment_failed" {
                next.status = SubscriptionStatus::PastDue;
                start_grace(&mut next, created_ms, &mut notices);
            } else {
                if next.status.is_past_due() {
                    next.status = SubscriptionStatus::Active;
                }
                end_grace(&mut next, &mut notices);
            }
        }
        _ => return Applied::Unchanged,
    }

    if next == *billing {
        Applied::Unchanged
    } else {
        Applied::Changed(next, notices)
    }
}

/// Starts the grace period at `at_ms` unless one is running: retries must not extend it.
fn start_grace(billing: &mut Billing, at_ms: i64, notices: &mut Vec<Notice>) {
    if billing.past_due_since_ms.is_none() {
        billing.past_due_since_ms = Some(at_ms);
        notices.push(Notice::PaymentFailed {
            grace_ends_ms: at_ms.saturating_add(GRACE_PERIOD_MS),
        });
    }
}

fn end_grace(billing: &mut Billing, notices: &mut Vec<Notice>) {
    if billing.past_due_since_ms.take().is_some() {
        notices.push(Notice::PaymentRecovered);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::signature::*;

    const SECRET: &str = "whsec_test_current";
    const OLD_SECRET: &str = "whsec_test_previous";
    const T: i64 = 1_735_689_600;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid"}"#;
    const DAY_MS: i64 = 86_400_000;

    fn secrets(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn v1_of(header: &str) -> &str {
        header.split_once(",v1=").unwrap().1
    }

    fn verify(header: &str, now_s: i64) -> Result<i64, SignatureError> {
        verify_signature(Some(header), BODY, &secrets(&[SECRET]), now_s)
    }

    fn malformed(header: &str) -> String {
        match verify(header, T) {
            Err(SignatureError::Malformed(why)) => why,
            other => panic!("{header:?} gave {other:?}"),
        }
    }

    // --- signatures ---

    #[test]
    fn sign_then_verify_round_trips() {
        let header = sign(BODY, SECRET, T);
        assert!(header.starts_with(&format!("t={T},v1=")));
        assert_eq!(v1_of(&header).len(), 64);
        assert_eq!(verify(&header, T), Ok(T));
    }

    #[test]
    fn sign_matches_a_known_hmac() {
        // From outside this code: printf '1735689600.{}' | openssl dgst -sha256 -hmac key
        let header = sign(b"{}", "key", 1_735_689_600);
        assert_eq!(
            header,
            "t=1735689600,v1=18a6a644b6c3e88a7eed8836c7b9b13bfa9306f949c7dde5fcaac263f0043420"
        );
    }

    #[test]
    fn verify_accepts_the_second_v1_when_only_it_matches() {
        let good = v1_of(&sign(BODY, SECRET, T)).to_owned();
        let stale = v1_of(&sign(BODY, OLD_SECRET, T)).to_owned();
        let header = format!("t={T},v1={stale},v1={good}");
        assert_eq!(verify(&header, T), Ok(T));
    }

    #[test]
    fn verify_accepts_the_second_secret_when_only_it_matches() {
        let header = sign(BODY, OLD_SECRET, T);
        let both = secrets(&[SECRET, OLD_SECRET]);
        assert_eq!(verify_signature(Some(&header), BODY, &both, T), Ok(T));
        assert_eq!(verify(&header, T), Err(SignatureError::NoMatch));
    }

    #[test]
    fn verify_rejects_a_missing_header() {
        let s = secrets(&[SECRET]);
        assert_eq!(
            verify_signature(None, BODY, &s, T),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_signature(Some(""), BODY, &s, T),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_signature(Some("  "), BODY, &s, T),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn verify_rejects_malformed_headers_saying_why() {
        let sig = v1_of(&sign(BODY, SECRET, T)).to_owned();
        assert!(malformed(&format!("v1={sig}")).contains("no t="));
        assert!(malformed(&format!("t={T},t={T},v1={sig}")).contains("more than one t="));
        assert!(malformed(&format!("t=soon,v1={sig}")).contains("not an integer"));
        assert!(malformed(&format!("t={T}.5,v1={sig}")).contains("not an integer"));
        assert!(malformed(&format!("t=,v1={sig}")).contains("not an integer"));
        assert!(malformed(&format!("t={T}")).contains("no v1="));
        assert!(malformed(&format!("t={T},v0={sig}")).contains("no v1="));
        assert!(malformed(&format!("t={T},{sig}")).contains("key=value"));
        // The message is part of the error's text.
        let err = verify(&format!("t={T}"), T).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the Stripe-Signature header is malformed: ")
        );
    }

    #[test]
    fn verify_tolerates_spaces_and_a_trailing_comma() {
        let sig = v1_of(&sign(BODY, SECRET, T)).to_owned();
        assert_eq!(verify(&format!(" t = {T} , v1 = {sig} ,"), T), Ok(T));
    }

    #[test]
    fn verify_rejects_signatures_that_do_not_match() {
        let header = sign(BODY, "whsec_someone_else", T);
        assert_eq!(verify(&header, T), Err(SignatureError::NoMatch));
        assert_eq!(
            verify(&format!("t={T},v1=not-hex"), T),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(&format!("t={T},v1="), T),
            Err(SignatureError::NoMatch)
        );
        // A truncated signature is not a prefix match.
        let good = sign(BODY, SECRET, T);
        assert_eq!(
            verify(&good[..good.len() - 2], T),
            Err(SignatureError::NoMatch)
        );
        // The signature covers the timestamp too.
        let moved = format!("t={},v1={}", T + 1, v1_of(&good));
        assert_eq!(verify(&moved, T), Err(SignatureError::NoMatch));
        // No secrets configured accepts nothing.
        assert_eq!(
            verify_signature(Some(&good), BODY, &[], T),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn verify_never_accepts_an_empty_secret() {
        let header = sign(BODY, "", T);
        assert_eq!(
            verify_signature(Some(&header), BODY, &secrets(&[""]), T),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn verify_rejects_a_tampered_body() {
        let header = sign(BODY, SECRET, T);
        let tampered = br#"{"id":"evt_2","type":"invoice.paid"}"#;
        assert_eq!(
            verify_signature(Some(&header), tampered, &secrets(&[SECRET]), T),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn verify_ignores_v0_signatures() {
        let good = sign(BODY, SECRET, T);
        let header = format!("t={T},v0=deadbeef,v1={},v0=junk", v1_of(&good));
        assert_eq!(verify(&header, T), Ok(T));
        // A v0 that would match does not stand in for a v1.
        let header = format!("t={T},v0={},v1=00", v1_of(&good));
        assert_eq!(verify(&header, T), Err(SignatureError::NoMatch));
    }

    #[test]
    fn verify_rejects_stale_and_future_timestamps_past_the_tolerance() {
        let header = sign(BODY, SECRET, T);
        assert_eq!(verify(&header, T + SIGNATURE_TOLERANCE_S), Ok(T));
        assert_eq!(
            verify(&header, T + SIGNATURE_TOLERANCE_S + 1),
            Err(SignatureError::Stale(301))
        );
        assert_eq!(verify(&header, T - SIGNATURE_TOLERANCE_S), Ok(T));
        assert_eq!(
            verify(&header, T - SIGNATURE_TOLERANCE_S - 1),
            Err(SignatureError::Future(301))
        );
    }

    #[test]
    fn verify_checks_the_signature_before_the_time() {
        let unsigned = format!("t={},v1={}", T - 10_000, "ab".repeat(32));
        assert_eq!(verify(&unsigned, T), Err(SignatureError::NoMatch));
        let unsigned = format!("t={},v1={}", T + 10_000, "ab".repeat(32));
        assert_eq!(verify(&unsigned, T), Err(SignatureError::NoMatch));
    }

    #[test]
    fn verify_survives_extreme_timestamps() {
        for (t, now) in [(i64::MIN, i64::MAX), (i64::MAX, i64::MIN), (0, i64::MAX)] {
            let header = sign(BODY, SECRET, t);
            assert!(matches!(
                verify(&header, now),
                Err(SignatureError::Stale(_) | SignatureError::Future(_))
            ));
        }
    }

    // --- parsing ---

    fn ws() -> WorkspaceId {
        WorkspaceId::parse("ws_01jgz5k8n3q4r5s6t7v8w9x0yz").unwrap()
    }

    fn checkout_completed_body() -> String {
        format!(
            r#"{{
  "id": "evt_1QcheckoutAAAA",
  "object": "event",
  "api_version": "2025-03-31.basil",
  "created": 1735689600,
  "data": {{
    "object": {{
      "id": "cs_test_a1b2c3",
      "object": "checkout.session",
      "amount_total": 2900,
      "client_reference_id": "{ws}",
      "currency": "usd",
      "customer": "cus_RAAA",
      "customer_details": {{"email": "owner@example.com", "name": null, "tax_exempt": "none"}},
      "metadata": {{"plan": "pro"}},
      "mode": "subscription",
      "payment_status": "paid",
      "status": "complete",
      "subscription": "sub_1AAA",
      "url": null
    }}
  }},
  "livemode": false,
  "pending_webhooks": 1,
  "request": {{"id": null, "idempotency_key": null}},
  "type": "checkout.session.completed"
}}"#,
            ws = ws()
        )
    }

    /// A `customer.subscription.updated` from before API 2025-03-31.
    const SUBSCRIPTION_UPDATED_OLD: &str = r#"{
  "id": "evt_1QsubOLD",
  "object": "event",
  "api_version": "2024-06-20",
  "created": 1735689700,
  "data": {
    "object": {
      "id": "sub_1AAA",
      "object": "subscription",
      "cancel_at": null,
      "cancel_at_period_end": true,
      "current_period_end": 1738368000,
      "current_period_start": 1735689600,
      "customer": "cus_RAAA",
      "items": {
        "object": "list",
        "data": [
          {
            "id": "si_AAA",
            "object": "subscription_item",
            "price": {"id": "price_team", "object": "price", "unit_amount": 9900, "recurring": {"interval": "month"}},
            "quantity": 1
          }
        ],
        "has_more": false,
        "url": "/v1/subscription_items?subscription=sub_1AAA"
      },
      "metadata": {"workspace": "ws_01jgz5k8n3q4r5s6t7v8w9x0yz"},
      "status": "active"
    },
    "previous_attributes": {"cancel_at_period_end": false}
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {"id": "req_AAA", "idempotency_key": "b3f1"},
  "type": "customer.subscription.updated"
}"#;

    /// The same event from API 2025-03-31 on: the period lives on the items.
    const SUBSCRIPTION_UPDATED_NEW: &str = r#"{
  "id": "evt_1QsubNEW",
  "object": "event",
  "api_version": "2025-03-31.basil",
  "created": 1735689700,
  "data": {
    "object": {
      "id": "sub_1AAA",
      "object": "subscription",
      "cancel_at_period_end": false,
      "customer": {"id": "cus_RAAA", "object": "customer", "email": "owner@example.com"},
      "items": {
        "object": "list",
        "data": [
          {
            "id": "si_AAA",
            "object": "subscription_item",
            "current_period_end": 1738368000,
            "current_period_start": 1735689600,
            "price": {"id": "price_addon", "object": "price"},
            "quantity": 1
          },
          {
            "id": "si_BBB",
            "object": "subscription_item",
            "current_period_end": 1738454400,
            "current_period_start": 1735776000,
            "price": {"id": "price_pro", "object": "price"},
            "quantity": 1
          }
        ],
        "has_more": false
      },
      "metadata": {},
      "status": "past_due"
    }
  },
  "livemode": true,
  "type": "customer.subscription.updated"
}"#;

    const INVOICE_FAILED_OLD: &str = r#"{
  "id": "evt_1QinvOLD",
  "object": "event",
  "api_version": "2024-06-20",
  "created": 1738368100,
  "data": {
    "object": {
      "id": "in_AAA",
      "object": "invoice",
      "amount_due": 2900,
      "attempt_count": 1,
      "billing_reason": "subscription_cycle",
      "customer": "cus_RAAA",
      "customer_email": "owner@example.com",
      "lines": {"object": "list", "data": [], "has_more": false},
      "paid": false,
      "status": "open",
      "subscription": "sub_1AAA"
    }
  },
  "type": "invoice.payment_failed"
}"#;

    const INVOICE_FAILED_NEW: &str = r#"{
  "id": "evt_1QinvNEW",
  "object": "event",
  "api_version": "2025-03-31.basil",
  "created": 1738368100,
  "data": {
    "object": {
      "id": "in_AAA",
      "object": "invoice",
      "amount_due": 2900,
      "attempt_count": 1,
      "customer": "cus_RAAA",
      "parent": {
        "type": "subscription_details",
        "quote_details": null,
        "subscription_details": {"metadata": {}, "subscription": "sub_1AAA"}
      },
      "status": "open"
    }
  },
  "type": "invoice.payment_failed"
}"#;

    fn parse(body: &str) -> StripeEvent {
        parse_event(body.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_err(body: &str) -> String {
        match parse_event(body.as_bytes()) {
            Err(e) => e.to_string(),
            Ok(event) => panic!("{body} parsed as {event:?}"),
        }
    }

    #[test]
    fn parses_checkout_session_completed() {
        let event = parse(&checkout_completed_body());
        assert_eq!(event.id, "evt_1QcheckoutAAAA");
        assert_eq!(event.kind, "checkout.session.completed");
        assert_eq!(event.created, 1_735_689_600);
        assert_eq!(
            event.object,
            EventObject::CheckoutSession {
                customer: Some("cus_RAAA".into()),
                subscription: Some("sub_1AAA".into()),
                client_reference_id: Some(ws().to_string()),
                plan: Some("pro".into()),
            }
        );
    }

    #[test]
    fn parses_a_checkout_session_without_customer_or_metadata() {
        let body = r#"{"id":"evt_1","type":"checkout.session.completed","created":1,
            "data":{"object":{"object":"checkout.session","customer":null,
            "subscription":{"id":"sub_X","object":"subscription"}}}}"#;
        assert_eq!(
            parse(body).object,
            EventObject::CheckoutSession {
                customer: None,
                subscription: Some("sub_X".into()),
                client_reference_id: None,
                plan: None,
            }
        );
    }

    #[test]
    fn parses_subscription_updated_in_the_old_shape() {
        let event = parse(SUBSCRIPTION_UPDATED_OLD);
        assert_eq!(event.kind, "customer.subscription.updated");
        assert_eq!(
            event.object,
            EventObject::Subscription {
                id: "sub_1AAA".into(),
                customer: "cus_RAAA".into(),
                status: "active".into(),
                price_ids: vec!["price_team".into()],
                current_period_end: Some(1_738_368_000),
                cancel_at_period_end: true,
                workspace: Some("ws_01jgz5k8n3q4r5s6t7v8w9x0yz".into()),
            }
        );
    }

    #[test]
    fn parses_subscription_updated_in_the_new_shape() {
        assert_eq!(
            parse(SUBSCRIPTION_UPDATED_NEW).object,
            EventObject::Subscription {
                id: "sub_1AAA".into(),
                customer: "cus_RAAA".into(),
                status: "past_due".into(),
                price_ids: vec!["price_addon".into(), "price_pro".into()],
                // The latest of the items'.
                current_period_end: Some(1_738_454_400),
                cancel_at_period_end: false,
                workspace: None,
            }
        );
    }

    #[test]
    fn parses_a_minimal_subscription_with_defaults() {
        let body = r#"{"id":"evt_1","type":"customer.subscription.created","created":1,
            "data":{"object":{"object":"subscription","id":"sub_1","customer":"cus_1",
            "status":"incomplete"}}}"#;
        assert_eq!(
            parse(body).object,
            EventObject::Subscription {
                id: "sub_1".into(),
                customer: "cus_1".into(),
                status: "incomplete".into(),
                price_ids: vec![],
                current_period_end: None,
                cancel_at_period_end: false,
                workspace: None,
            }
        );
    }

    #[test]
    fn parses_invoice_payment_failed_in_the_old_shape() {
        let event = parse(INVOICE_FAILED_OLD);
        assert_eq!(event.kind, "invoice.payment_failed");
        assert_eq!(
            event.object,
            EventObject::Invoice {
                customer: "cus_RAAA".into(),
                subscription: Some("sub_1AAA".into()),
            }
        );
    }

    #[test]
    fn parses_invoice_payment_failed_in_the_new_shape() {
        assert_eq!(
            parse(INVOICE_FAILED_NEW).object,
            EventObject::Invoice {
                customer: "cus_RAAA".into(),
                subscription: Some("sub_1AAA".into()),
            }
        );
    }

    #[test]
    fn parses_invoices_without_a_subscription_or_with_it_expanded() {
        let one_off = r#"{"id":"evt_1","type":"invoice.paid","created":1,
            "data":{"object":{"object":"invoice","customer":{"id":"cus_1"},
            "subscription":null,"parent":null}}}"#;
        assert_eq!(
            parse(one_off).object,
            EventObject::Invoice {
                customer: "cus_1".into(),
                subscription: None,
            }
        );
        let expanded = r#"{"id":"evt_1","type":"invoice.paid","created":1,
            "data":{"object":{"object":"invoice","customer":"cus_1",
            "subscription":{"id":"sub_9","object":"subscription","status":"active"}}}}"#;
        assert_eq!(
            parse(expanded).object,
            EventObject::Invoice {
                customer: "cus_1".into(),
                subscription: Some("sub_9".into()),
            }
        );
    }

    #[test]
    fn parses_an_unknown_object_as_other() {
        let body = r#"{"id":"evt_1","type":"charge.refunded","created":1,
            "data":{"object":{"object":"charge","id":"ch_1","amount":"whatever"}}}"#;
        let event = parse(body);
        assert_eq!(event.kind, "charge.refunded");
        assert_eq!(event.object, EventObject::Other);
    }

    #[test]
    fn rejects_malformed_bodies_naming_the_field() {
        let cases: &[(&str, &str)] = &[
            ("not json", "not valid JSON"),
            ("", "not valid JSON"),
            (r#"{"id":"evt_1""#, "not valid JSON"),
            (
                r#"{"id":"evt_1","type":"x","created":1,"data":{"object":{"object":"x"}}} x"#,
                "not valid JSON",
            ),
            ("[]", "the body"),
            ("42", "the body"),
            (
                r#"{"type":"x","created":1,"data":{"object":{"object":"x"}}}"#,
                "id is missing",
            ),
            (
                r#"{"id":"","type":"x","created":1,"data":{"object":{"object":"x"}}}"#,
                "id is empty",
            ),
            (
                r#"{"id":7,"type":"x","created":1,"data":{"object":{"object":"x"}}}"#,
                "id: invalid type",
            ),
            (
                r#"{"id":"e","created":1,"data":{"object":{"object":"x"}}}"#,
                "type is missing",
            ),
            (
                r#"{"id":"e","type":"x","data":{"object":{"object":"x"}}}"#,
                "created is missing",
            ),
            (
                r#"{"id":"e","type":"x","created":"1","data":{"object":{"object":"x"}}}"#,
                "created: invalid type",
            ),
            (
                r#"{"id":"e","type":"x","created":1.5,"data":{"object":{"object":"x"}}}"#,
                "created: invalid type",
            ),
            (r#"{"id":"e","type":"x","created":1}"#, "data is missing"),
            (
                r#"{"id":"e","type":"x","created":1,"data":{}}"#,
                "data.object is missing",
            ),
            (r#"{"id":"e","type":"x","created":1,"data":[]}"#, "data: "),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":"sub_1"}}"#,
                "data.object must be an object",
            ),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":{}}}"#,
                "data.object.object is missing",
            ),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":{"object":3}}}"#,
                "data.object.object must be a string",
            ),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":{"object":"subscription","customer":"c","status":"active"}}}"#,
                "data.object.id is missing",
            ),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":{"object":"subscription","id":"s","status":"active"}}}"#,
                "data.object.customer is missing",
            ),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":{"object":"subscription","id":"s","customer":"c"}}}"#,
                "data.object.status is missing",
            ),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":{"object":"subscription","id":"s","customer":5,"status":"active"}}}"#,
                "data.object.customer: ",
            ),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":{"object":"subscription","id":"s","customer":{"email":"a"},"status":"active"}}}"#,
                "data.object.customer: ",
            ),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":{"object":"subscription","id":"s","customer":"c","status":"active","cancel_at_period_end":"yes"}}}"#,
                "data.object.cancel_at_period_end: invalid type",
            ),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":{"object":"subscription","id":"s","customer":"c","status":"active","items":{"data":[{"current_period_end":"soon"}]}}}}"#,
                "data.object.items.data[0].current_period_end: invalid type",
            ),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":{"object":"invoice","subscription":"s"}}}"#,
                "data.object.customer is missing",
            ),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":{"object":"invoice","customer":"c","parent":{"subscription_details":{"subscription":1}}}}}"#,
                "data.object.parent.subscription_details.subscription: ",
            ),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":{"object":"checkout.session","metadata":{"plan":2}}}}"#,
                "data.object.metadata.plan: invalid type",
            ),
        ];
        for (body, expected) in cases {
            let err = parse_err(body);
            assert!(
                err.contains(expected),
                "{body}: {err:?} does not contain {expected:?}"
            );
        }
    }

    #[test]
    fn parse_never_panics_on_truncated_or_mangled_input() {
        let bodies = [
            checkout_completed_body(),
            SUBSCRIPTION_UPDATED_OLD.to_owned(),
            SUBSCRIPTION_UPDATED_NEW.to_owned(),
            INVOICE_FAILED_NEW.to_owned(),
        ];
        for body in &bodies {
            let bytes = body.as_bytes();
            for end in 0..bytes.len() {
                let _ = parse_event(&bytes[..end]);
                let mut mangled = bytes.to_vec();
                mangled[end] = b'"';
                let _ = parse_event(&mangled);
            }
        }
        let _ = parse_event(&[0xff, 0xfe, b'{']);
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let _ = parse_event(deep.as_bytes());
        let deep_object = format!(
            r#"{{"id":"e","type":"x","created":1,"data":{{"object":{{"object":"invoice","customer":{}1{}}}}}}}"#,
            r#"{"id":"#.repeat(1000),
            "}".repeat(1000)
        );
        let _ = parse_event(deep_object.as_bytes());
    }

    // --- statuses and prices ---

    #[test]
    fn parses_stripe_status_names() {
        for (name, status) in [
            ("incomplete", SubscriptionStatus::Incomplete),
            ("incomplete_expired", SubscriptionStatus::IncompleteExpired),
            ("trialing", SubscriptionStatus::Trialing),
            ("active", SubscriptionStatus::Active),
            ("past_due", SubscriptionStatus::PastDue),
            ("unpaid", SubscriptionStatus::Unpaid),
            ("canceled", SubscriptionStatus::Canceled),
            ("paused", SubscriptionStatus::Paused),
        ] {
            assert_eq!(SubscriptionStatus::parse(name), Some(status));
            // The same spelling as the stored form.
            assert_eq!(serde_json::to_value(status).unwrap(), name);
        }
        for unknown in ["none", "Active", "cancelled", "", "frozen"] {
            assert_eq!(SubscriptionStatus::parse(unknown), Option::None);
        }
    }

    fn prices() -> Prices {
        Prices {
            pro: "price_pro".into(),
            team: "price_team".into(),
        }
    }

    #[test]
    fn prices_map_both_ways() {
        let p = prices();
        assert_eq!(p.plan_of("price_pro"), Some(Plan::Pro));
        assert_eq!(p.plan_of("price_team"), Some(Plan::Team));
        assert_eq!(p.plan_of("price_other"), None);
        assert_eq!(p.price_of(Plan::Free), None);
        assert_eq!(p.price_of(Plan::Pro), Some("price_pro"));
        assert_eq!(p.price_of(Plan::Team), Some("price_team"));
        for plan in [Plan::Pro, Plan::Team] {
            assert_eq!(p.plan_of(p.price_of(plan).unwrap()), Some(plan));
        }
        let unset = Prices {
            pro: String::new(),
            team: String::new(),
        };
        assert_eq!(unset.plan_of(""), None);
    }

    // --- entitlement ---

    const NOW: i64 = 1_738_000_000_000;

    fn record(status: SubscriptionStatus) -> Billing {
        Billing {
            customer_id: Some("cus_1".into()),
            subscription_id: Some("sub_1".into()),
            plan: Plan::Pro,
            status,
            period_end_ms: Some(NOW + 10 * DAY_MS),
            ..Billing::new(ws())
        }
    }

    #[test]
    fn a_new_record_is_free_with_nothing_set() {
        let b = Billing::new(ws());
        assert_eq!(b.workspace, ws());
        assert_eq!(b.customer_id, None);
        assert_eq!(b.subscription_id, None);
        assert_eq!(b.plan, Plan::Free);
        assert_eq!(b.status, SubscriptionStatus::None);
        assert_eq!(b.period_end_ms, None);
        assert!(!b.cancel_at_period_end);
        assert_eq!(b.past_due_since_ms, None);
        assert_eq!(
            (b.subscription_event_ms, b.invoice_event_ms, b.version),
            (0, 0, 0)
        );
        assert_eq!(b.entitled_plan(NOW), Plan::Free);
        assert_eq!(b.next_change_ms(NOW), None);
        assert_eq!(b.grace_ends_ms(), None);
    }

    #[test]
    fn active_and_trialing_entitle_to_the_plan_past_the_period_end() {
        for status in [SubscriptionStatus::Active, SubscriptionStatus::Trialing] {
            let b = record(status);
            assert_eq!(b.entitled_plan(NOW), Plan::Pro);
            // A renewal is expected, not a change.
            assert_eq!(b.entitled_plan(NOW + 100 * DAY_MS), Plan::Pro);
            assert_eq!(b.next_change_ms(NOW), None);
            assert_eq!(b.grace_ends_ms(), None);
        }
    }

    #[test]
    fn cancel_at_period_end_keeps_the_plan_until_the_period_ends() {
        for status in [SubscriptionStatus::Active, SubscriptionStatus::Trialing] {
            let b = Billing {
                cancel_at_period_end: true,
                ..record(status)
            };
            let end = b.period_end_ms.unwrap();
            assert_eq!(b.entitled_plan(end - 1), Plan::Pro);
            assert_eq!(b.entitled_plan(end), Plan::Free);
            assert_eq!(b.next_change_ms(NOW), Some(end));
            assert_eq!(b.next_change_ms(end - 1), Some(end));
            assert_eq!(b.next_change_ms(end), None);
            let free = Billing {
                plan: Plan::Free,
                ..b
            };
            assert_eq!(free.next_change_ms(NOW), None);
        }
    }

    #[test]
    fn past_due_and_unpaid_keep_the_plan_for_the_grace_period() {
        for status in [SubscriptionStatus::PastDue, SubscriptionStatus::Unpaid] {
            let since = NOW - 3 * DAY_MS;
            let b = Billing {
                past_due_since_ms: Some(since),
                ..record(status)
            };
            let grace_end = since + GRACE_PERIOD_MS;
            assert_eq!(b.grace_ends_ms(), Some(grace_end));
            assert_eq!(b.entitled_plan(NOW), Plan::Pro);
            assert_eq!(b.entitled_plan(grace_end - 1), Plan::Pro);
            assert_eq!(b.entitled_plan(grace_end), Plan::Free);
            assert_eq!(b.next_change_ms(NOW), Some(grace_end));
            assert_eq!(b.next_change_ms(grace_end - 1), Some(grace_end));
            assert_eq!(b.next_change_ms(grace_end), None);
            // Without the failure's time there is no grace to give.
            let unknown = Billing {
                past_due_since_ms: None,
                ..b
            };
            assert_eq!(unknown.entitled_plan(NOW), Plan::Free);
            assert_eq!(unknown.next_change_ms(NOW), None);
            assert_eq!(unknown.grace_ends_ms(), None);
        }
    }

    #[test]
    fn grace_is_only_reported_while_past_due_or_unpaid() {
        let b = Billing {
            past_due_since_ms: Some(NOW),
            ..record(SubscriptionStatus::Active)
        };
        assert_eq!(b.grace_ends_ms(), None);
    }

    #[test]
    fn canceled_keeps_the_plan_until_the_period_ends() {
        let b = record(SubscriptionStatus::Canceled);
        let end = b.period_end_ms.unwrap();
        assert_eq!(b.entitled_plan(NOW), Plan::Pro);
        assert_eq!(b.entitled_plan(end - 1), Plan::Pro);
        assert_eq!(b.entitled_plan(end), Plan::Free);
        assert_eq!(b.next_change_ms(NOW), Some(end));
        assert_eq!(b.next_change_ms(end), None);
        let no_period = Billing {
            period_end_ms: None,
            ..b
        };
        assert_eq!(no_period.entitled_plan(NOW), Plan::Free);
    }

    #[test]
    fn every_other_status_is_free() {
        for status in [
            SubscriptionStatus::None,
            SubscriptionStatus::Incomplete,
            SubscriptionStatus::IncompleteExpired,
            SubscriptionStatus::Paused,
        ] {
            let b = Billing {
                cancel_at_period_end: true,
                past_due_since_ms: Some(NOW),
                ..record(status)
            };
            assert_eq!(b.entitled_plan(NOW), Plan::Free, "{status:?}");
            assert_eq!(b.next_change_ms(NOW), None, "{status:?}");
        }
    }

    // --- apply ---

    fn event(kind: &str, created: i64, object: EventObject) -> StripeEvent {
        StripeEvent {
            id: format!("evt_{kind}_{created}"),
            kind: kind.into(),
            created,
            object,
        }
    }

    fn subscription(kind: &str, created: i64, status: &str, period_end_s: i64) -> StripeEvent {
        event(
            kind,
            created,
            EventObject::Subscription {
                id: "sub_1".into(),
                customer: "cus_1".into(),
                status: status.into(),
                price_ids: vec!["price_pro".into()],
                current_period_end: Some(period_end_s),
                cancel_at_period_end: false,
                workspace: Some(ws().to_string()),
            },
        )
    }

    fn invoice(kind: &str, created: i64, subscription: Option<&str>) -> StripeEvent {
        event(
            kind,
            created,
            EventObject::Invoice {
                customer: "cus_1".into(),
                subscription: subscription.map(str::to_owned),
            },
        )
    }

    fn checkout(created: i64, plan: Option<&str>, reference: Option<String>) -> StripeEvent {
        event(
            "checkout.session.completed",
            created,
            EventObject::CheckoutSession {
                customer: Some("cus_1".into()),
                subscription: Some("sub_1".into()),
                client_reference_id: reference,
                plan: plan.map(str::to_owned),
            },
        )
    }

    #[track_caller]
    fn changed(billing: &Billing, event: &StripeEvent) -> (Billing, Vec<Notice>) {
        match apply(billing, event, &prices()) {
            Applied::Changed(next, notices) => (next, notices),
            Applied::Unchanged => panic!("{} left the record unchanged", event.kind),
        }
    }

    #[track_caller]
    fn unchanged(billing: &Billing, event: &StripeEvent) {
        assert_eq!(
            apply(billing, event, &prices()),
            Applied::Unchanged,
            "{}",
            event.kind
        );
    }

    /// An active Pro subscription, as left by its creation at `T`.
    fn subscribed() -> Billing {
        let (b, _) = changed(
            &Billing::new(ws()),
            &subscription(
                "customer.subscription.created",
                T,
                "active",
                T + 30 * 86_400,
            ),
        );
        b
    }

    #[test]
    fn subscription_created_sets_everything() {
        let (b, notices) = changed(
            &Billing::new(ws()),
            &subscription("customer.subscription.created", T, "active", T + 86_400),
        );
        assert_eq!(b.customer_id.as_deref(), Some("cus_1"));
        assert_eq!(b.subscription_id.as_deref(), Some("sub_1"));
        assert_eq!(b.plan, Plan::Pro);
        assert_eq!(b.status, SubscriptionStatus::Active);
        assert_eq!(b.period_end_ms, Some((T + 86_400) * 1000));
        assert_eq!(b.subscription_event_ms, T * 1000);
        assert_eq!(b.version, 0);
        assert!(notices.is_empty());
    }

    #[test]
    fn an_out_of_order_subscription_update_is_ignored() {
        let (b, _) = changed(
            &subscribed(),
            &subscription(
                "customer.subscription.updated",
                T + 20,
                "past_due",
                T + 86_400,
            ),
        );
        unchanged(
            &b,
            &subscription(
                "customer.subscription.updated",
                T + 10,
                "active",
                T + 86_400,
            ),
        );
        // An event from the same second is applied.
        let (same_second, _) = changed(
            &b,
            &subscription(
                "customer.subscription.updated",
                T + 20,
                "active",
                T + 86_400,
            ),
        );
        assert_eq!(same_second.status, SubscriptionStatus::Active);
    }

    #[test]
    fn the_same_event_twice_is_unchanged_the_second_time() {
        let events = [
            checkout(T, Some("pro"), Some(ws().to_string())),
            subscription(
                "customer.subscription.updated",
                T + 5,
                "past_due",
                T + 86_400,
            ),
            invoice("invoice.payment_failed", T + 6, Some("sub_1")),
            invoice("invoice.paid", T + 7, Some("sub_1")),
            subscription(
                "customer.subscription.deleted",
                T + 8,
                "canceled",
                T + 86_400,
            ),
        ];
        let mut b = Billing::new(ws());
        for e in &events {
            b = changed(&b, e).0;
            unchanged(&b, e);
        }
    }

    #[test]
    fn failed_retries_do_not_extend_the_grace_period() {
        let (b, notices) = changed(
            &subscribed(),
            &invoice("invoice.payment_failed", T + 100, Some("sub_1")),
        );
        let grace_end = (T + 100) * 1000 + GRACE_PERIOD_MS;
        assert_eq!(
            notices,
            vec![Notice::PaymentFailed {
                grace_ends_ms: grace_end
            }]
        );
        assert_eq!(b.status, SubscriptionStatus::PastDue);
        assert_eq!(b.past_due_since_ms, Some((T + 100) * 1000));
        assert_eq!(b.grace_ends_ms(), Some(grace_end));

        // Stripe's retries, and the subscription turning past due then unpaid.
        let retry = invoice("invoice.payment_failed", T + 3 * 86_400, Some("sub_1"));
        let (b, notices) = changed(&b, &retry);
        assert!(notices.is_empty());
        let (b, notices) = changed(
            &b,
            &subscription(
                "customer.subscription.updated",
                T + 3 * 86_400,
                "unpaid",
                T + 86_400,
            ),
        );
        assert!(notices.is_empty());
        assert_eq!(b.status, SubscriptionStatus::Unpaid);
        assert_eq!(b.grace_ends_ms(), Some(grace_end));
        assert_eq!(b.entitled_plan(grace_end - 1), Plan::Pro);
        assert_eq!(b.entitled_plan(grace_end), Plan::Free);
    }

    #[test]
    fn a_subscription_turning_past_due_starts_the_grace_once() {
        let (b, notices) = changed(
            &subscribed(),
            &subscription(
                "customer.subscription.updated",
                T + 100,
                "past_due",
                T + 86_400,
            ),
        );
        let grace_end = (T + 100) * 1000 + GRACE_PERIOD_MS;
        assert_eq!(
            notices,
            vec![Notice::PaymentFailed {
                grace_ends_ms: grace_end
            }]
        );
        // The invoice failure that goes with it does not email again.
        let (b, notices) = changed(
            &b,
            &invoice("invoice.payment_failed", T + 101, Some("sub_1")),
        );
        assert!(notices.is_empty());
        assert_eq!(b.grace_ends_ms(), Some(grace_end));
    }

    #[test]
    fn invoice_paid_recovers_a_failed_payment() {
        let (b, _) = changed(
            &subscribed(),
            &invoice("invoice.payment_failed", T + 100, Some("sub_1")),
        );
        let (b, notices) = changed(&b, &invoice("invoice.paid", T + 200, Some("sub_1")));
        assert_eq!(notices, vec![Notice::PaymentRecovered]);
        assert_eq!(b.status, SubscriptionStatus::Active);
        assert_eq!(b.past_due_since_ms, None);
        assert_eq!(b.invoice_event_ms, (T + 200) * 1000);
        assert_eq!(b.entitled_plan(NOW * 2), Plan::Pro);

        // The subscription's own recovery after it announces nothing more.
        let (_, notices) = changed(
            &b,
            &subscription(
                "customer.subscription.updated",
                T + 201,
                "active",
                T + 60 * 86_400,
            ),
        );
        assert!(notices.is_empty());
    }

    #[test]
    fn a_subscription_becoming_active_recovers_too() {
        let (b, _) = changed(
            &subscribed(),
            &subscription(
                "customer.subscription.updated",
                T + 100,
                "past_due",
                T + 86_400,
            ),
        );
        let (b, notices) = changed(
            &b,
            &subscription(
                "customer.subscription.updated",
                T + 200,
                "active",
                T + 86_400,
            ),
        );
        assert_eq!(notices, vec![Notice::PaymentRecovered]);
        assert_eq!(b.past_due_since_ms, None);
    }

    #[test]
    fn an_invoice_paid_without_a_failure_changes_no_status() {
        let b = Billing {
            status: SubscriptionStatus::Canceled,
            ..subscribed()
        };
        let (next, notices) = changed(&b, &invoice("invoice.paid", T + 200, Some("sub_1")));
        assert!(notices.is_empty());
        assert_eq!(next.status, SubscriptionStatus::Canceled);
        assert_eq!(next.invoice_event_ms, (T + 200) * 1000);
    }

    #[test]
    fn an_older_invoice_paid_after_a_newer_failure_is_ignored() {
        let (b, _) = changed(
            &subscribed(),
            &invoice("invoice.payment_failed", T + 200, Some("sub_1")),
        );
        unchanged(&b, &invoice("invoice.paid", T + 100, Some("sub_1")));
        // And the other way round.
        let (b, _) = changed(
            &subscribed(),
            &invoice("invoice.paid", T + 200, Some("sub_1")),
        );
        unchanged(
            &b,
            &invoice("invoice.payment_failed", T + 100, Some("sub_1")),
        );
    }

    #[test]
    fn invoices_of_another_subscription_are_ignored() {
        let b = subscribed();
        unchanged(
            &b,
            &invoice("invoice.payment_failed", T + 100, Some("sub_old")),
        );
        unchanged(&b, &invoice("invoice.paid", T + 100, Some("sub_old")));
        // Without a subscription on either side there is nothing to tell them apart.
        let (failed, _) = changed(&b, &invoice("invoice.payment_failed", T + 100, None));
        assert_eq!(failed.status, SubscriptionStatus::PastDue);
        let fresh = Billing::new(ws());
        let (fresh, _) = changed(&fresh, &invoice("invoice.payment_failed", T, Some("sub_1")));
        assert_eq!(fresh.entitled_plan(T * 1000), Plan::Free);
    }

    #[test]
    fn deleted_cancels_with_the_plan_until_the_period_ends() {
        let period_end = T + 30 * 86_400;
        // Stripe's object may still say active in some orderings: deleted means canceled.
        let (b, notices) = changed(
            &subscribed(),
            &subscription(
                "customer.subscription.deleted",
                T + 100,
                "active",
                period_end,
            ),
        );
        assert!(notices.is_empty());
        assert_eq!(b.status, SubscriptionStatus::Canceled);
        assert_eq!(b.plan, Plan::Pro);
        assert_eq!(b.entitled_plan(period_end * 1000 - 1), Plan::Pro);
        assert_eq!(b.entitled_plan(period_end * 1000), Plan::Free);
        assert_eq!(b.next_change_ms((T + 100) * 1000), Some(period_end * 1000));
    }

    #[test]
    fn checkout_then_subscription_created() {
        let fresh = Billing::new(ws());
        let (b, notices) = changed(&fresh, &checkout(T, Some("team"), Some(ws().to_string())));
        assert!(notices.is_empty());
        assert_eq!(b.customer_id.as_deref(), Some("cus_1"));
        assert_eq!(b.subscription_id.as_deref(), Some("sub_1"));
        assert_eq!(b.plan, Plan::Team);
        assert_eq!(b.status, SubscriptionStatus::Active);
        assert_eq!(b.subscription_event_ms, 0);
        assert_eq!(b.entitled_plan(T * 1000), Plan::Team);

        // The subscription's prices are authoritative over the checkout's metadata.
        let (b, notices) = changed(
            &b,
            &subscription(
                "customer.subscription.created",
                T,
                "active",
                T + 30 * 86_400,
            ),
        );
        assert!(notices.is_empty());
        assert_eq!(b.plan, Plan::Pro);
        assert_eq!(b.status, SubscriptionStatus::Active);
        assert_eq!(b.period_end_ms, Some((T + 30 * 86_400) * 1000));
        assert_eq!(b.subscription_event_ms, T * 1000);
    }

    #[test]
    fn a_checkout_after_its_subscription_event_does_not_override_it() {
        let (b, _) = changed(
            &Billing::new(ws()),
            &subscription("customer.subscription.created", T, "incomplete", T + 86_400),
        );
        // Same second: the subscription's state stands.
        unchanged(&b, &checkout(T, Some("team"), Some(ws().to_string())));
        // Nor does a late checkout undo an upgrade the subscription already reported.
        let upgraded = Billing {
            plan: Plan::Team,
            subscription_event_ms: (T + 5) * 1000,
            ..subscribed()
        };
        unchanged(&upgraded, &checkout(T, Some("pro"), Some(ws().to_string())));
        // But a newer checkout (a re-subscription) applies.
        let (b, _) = changed(&b, &checkout(T + 1, Some("team"), Some(ws().to_string())));
        assert_eq!(b.status, SubscriptionStatus::Active);
        assert_eq!(b.plan, Plan::Team);
    }

    #[test]
    fn a_late_checkout_fills_in_a_plan_the_prices_did_not_give() {
        let mut e = subscription("customer.subscription.created", T, "active", T + 86_400);
        if let EventObject::Subscription { price_ids, .. } = &mut e.object {
            *price_ids = vec!["price_unconfigured".into()];
        }
        let (b, _) = changed(&Billing::new(ws()), &e);
        assert_eq!(b.entitled_plan(T * 1000), Plan::Free);
        let (b, _) = changed(&b, &checkout(T, Some("team"), Some(ws().to_string())));
        assert_eq!(b.plan, Plan::Team);
        assert_eq!(b.subscription_event_ms, T * 1000);
        assert_eq!(b.entitled_plan(T * 1000), Plan::Team);
    }

    #[test]
    fn checkout_keeps_the_plan_unless_metadata_names_a_paid_one() {
        let b = subscribed();
        for plan in [None, Some("free"), Some("enterprise")] {
            let later = checkout(T + 10, plan, Some(ws().to_string()));
            let next = match apply(&b, &later, &prices()) {
                Applied::Changed(next, _) => next,
                Applied::Unchanged => b.clone(),
            };
            assert_eq!(next.plan, Plan::Pro, "{plan:?}");
        }
    }

    #[test]
    fn a_checkout_for_another_workspace_is_ignored() {
        let fresh = Billing::new(ws());
        let other = WorkspaceId::generate(1_800_000_000_000);
        unchanged(&fresh, &checkout(T, Some("pro"), Some(other.to_string())));
        unchanged(&fresh, &checkout(T, Some("pro"), None));
    }

    #[test]
    fn an_unknown_status_keeps_the_status_but_applies_the_rest() {
        let (b, _) = changed(
            &subscribed(),
            &subscription(
                "customer.subscription.updated",
                T + 100,
                "frozen",
                T + 99 * 86_400,
            ),
        );
        assert_eq!(b.status, SubscriptionStatus::Active);
        assert_eq!(b.period_end_ms, Some((T + 99 * 86_400) * 1000));
        assert_eq!(b.subscription_event_ms, (T + 100) * 1000);
    }

    #[test]
    fn unknown_prices_keep_the_plan_and_the_first_known_one_wins() {
        let mut e = subscription(
            "customer.subscription.updated",
            T + 100,
            "active",
            T + 86_400,
        );
        if let EventObject::Subscription { price_ids, .. } = &mut e.object {
            *price_ids = vec!["price_addon".into()];
        }
        let (b, _) = changed(
            &subscribed(),
            &subscription(
                "customer.subscription.updated",
                T + 50,
                "trialing",
                T + 86_400,
            ),
        );
        let (b, _) = changed(&b, &e);
        assert_eq!(b.plan, Plan::Pro);

        if let EventObject::Subscription { price_ids, .. } = &mut e.object {
            *price_ids = vec![
                "price_addon".into(),
                "price_team".into(),
                "price_pro".into(),
            ];
        }
        e.created += 1;
        assert_eq!(changed(&b, &e).0.plan, Plan::Team);
    }

    #[test]
    fn a_newer_subscription_replaces_the_old_one() {
        let (canceled, _) = changed(
            &subscribed(),
            &subscription(
                "customer.subscription.deleted",
                T + 100,
                "canceled",
                T + 86_400,
            ),
        );
        let mut resubscribed = subscription(
            "customer.subscription.created",
            T + 200,
            "active",
            T + 60 * 86_400,
        );
        if let EventObject::Subscription { id, .. } = &mut resubscribed.object {
            *id = "sub_2".into();
        }
        let (b, _) = changed(&canceled, &resubscribed);
        assert_eq!(b.subscription_id.as_deref(), Some("sub_2"));
        assert_eq!(b.status, SubscriptionStatus::Active);
        // Invoices of the old subscription no longer touch the record.
        unchanged(
            &b,
            &invoice("invoice.payment_failed", T + 300, Some("sub_1")),
        );
    }

    #[test]
    fn cancel_at_period_end_follows_the_subscription() {
        let mut e = subscription(
            "customer.subscription.updated",
            T + 100,
            "active",
            T + 86_400,
        );
        if let EventObject::Subscription {
            cancel_at_period_end,
            ..
        } = &mut e.object
        {
            *cancel_at_period_end = true;
        }
        let (b, _) = changed(&subscribed(), &e);
        assert!(b.cancel_at_period_end);
        assert_eq!(
            b.next_change_ms((T + 100) * 1000),
            Some((T + 86_400) * 1000)
        );
    }

    #[test]
    fn other_events_and_mismatched_objects_are_unchanged() {
        let b = subscribed();
        unchanged(&b, &event("charge.refunded", T + 100, EventObject::Other));
        unchanged(&b, &invoice("invoice.finalized", T + 100, Some("sub_1")));
        unchanged(
            &b,
            &invoice("customer.subscription.updated", T + 100, Some("sub_1")),
        );
        unchanged(
            &b,
            &subscription(
                "customer.subscription.trial_will_end",
                T + 100,
                "trialing",
                T,
            ),
        );
        unchanged(
            &b,
            &event("checkout.session.completed", T + 100, EventObject::Other),
        );
    }

    #[test]
    fn apply_survives_extreme_times() {
        let e = subscription(
            "customer.subscription.updated",
            i64::MAX,
            "past_due",
            i64::MAX,
        );
        let (b, _) = changed(&subscribed(), &e);
        assert_eq!(b.grace_ends_ms(), Some(i64::MAX));
        let _ = b.entitled_plan(i64::MIN);
        let _ = b.next_change_ms(i64::MAX);
    }
}
