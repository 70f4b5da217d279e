//! Payments: the subscriptions billing sells and deletion cancels (Stripe).

use async_trait::async_trait;

use crate::config::StripeConfig;
use crate::domain::plan::Plan;

/// A Checkout Session to create.
/// A subscription checkout for one workspace.
pub struct Checkout<'a> {
    pub workspace: &'a str,
    pub plan: Plan,
    /// The workspace's Stripe customer, once it has one: reused so one customer holds its
    /// whole billing history.
    pub customer: Option<&'a str>,
    /// Prefills the first checkout, which creates the customer.
    pub email: &'a str,
    pub success_url: String,
    pub cancel_url: String,
}

/// The payments port: Stripe (`adapters::stripe::StripeApi`), or nothing (billing not
/// configured).
#[async_trait]
pub trait Payments: Send + Sync + 'static {
    /// The webhook secrets and the price of each plan.
    fn config(&self) -> &StripeConfig;
    /// Creates a Checkout Session in subscription mode; returns the URL to send the owner to.
    async fn checkout(&self, c: &Checkout<'_>) -> anyhow::Result<String>;
    /// Creates a customer portal session (payment methods, invoices, plan changes,
    /// cancellation); returns its URL.
    async fn portal(&self, customer: &str, return_url: &str) -> anyhow::Result<String>;
    /// Cancels a subscription at once (a workspace being deleted). Cancelling one that is
    /// already cancelled or unknown to Stripe succeeds: there is nothing left to bill.
    async fn cancel_subscription(&self, subscription_id: &str) -> anyhow::Result<()>;
}

pub type DynPayments = std::sync::Arc<dyn Payments>;
