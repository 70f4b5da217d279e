//! A workspace's subscription as we keep it (`Billing`), which plan it entitles the workspace to
//! at a given moment (grace after a failed payment, cancellation at the period's end), and how
//! one Stripe event moves it (`apply`, with the `Notice`s the billing function acts on).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::stripe_events::{EventObject, StripeEvent};
use crate::domain::ids::WorkspaceId;
use crate::domain::plan::Plan;

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

    const T: i64 = 1_735_689_600;
    const DAY_MS: i64 = 86_400_000;

    fn ws() -> WorkspaceId {
        WorkspaceId::parse("ws_01jgz5k8n3q4r5s6t7v8w9x0yz").unwrap()
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
