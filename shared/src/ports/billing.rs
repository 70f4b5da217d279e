//! Billing records kept in step with Stripe, and the Stripe events already processed.

use super::StoreResult;
use crate::domain::billing::Billing;
use crate::domain::ids::WorkspaceId;
use crate::domain::plan::Plan;
use async_trait::async_trait;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillingSave {
    Saved,
    /// Someone saved the record since it was read: read it again and re-apply.
    Conflict,
    /// The event was already processed: nothing was saved.
    Duplicate,
}

#[async_trait]
pub trait BillingRecords: Send + Sync + 'static {
    async fn billing(&self, ws: &WorkspaceId) -> StoreResult<Option<Billing>>;

    /// The record of the workspace whose Stripe customer this is.
    async fn billing_by_customer(&self, customer_id: &str) -> StoreResult<Option<Billing>>;

    /// Saves a billing record and the plan it entitles the workspace to, in one atomic write,
    /// if nobody saved the record since `billing.version` was read (version 0: never saved);
    /// bumps the version. `due_ms` is when the entitlement next changes on its own (the sweep
    /// finds it then). With `event`, also records that Stripe event id as processed, and saves
    /// nothing if it already was.
    async fn save_billing(
        &self,
        billing: &mut Billing,
        plan: Plan,
        due_ms: Option<i64>,
        event: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<BillingSave>;

    /// Records a Stripe event id that changed no record; false if it was already recorded.
    async fn record_stripe_event(&self, event: &str, now_ms: i64) -> StoreResult<bool>;

    async fn stripe_event_seen(&self, event: &str) -> StoreResult<bool>;

    /// Records whose entitlement changes at or before `now_ms` (end of a grace period, or of a
    /// cancelled paid period), oldest first.
    async fn billing_due(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<Billing>>;
}
