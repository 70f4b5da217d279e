//! The Stripe adapter of the payments port: the two API calls we make (a Checkout Session and a
//! customer portal session), through async-stripe's split crates so only these two resources are
//! compiled. Webhook deliveries are verified and read in `domain::billing`.

use std::collections::HashMap;

use anyhow::Context as _;
use async_trait::async_trait;
use stripe::{Client, ClientBuilder, RequestStrategy, StripeError};
use stripe_billing::billing_portal_session::CreateBillingPortalSession;
use stripe_checkout::CheckoutSessionMode;
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionSubscriptionData,
};
use stripe_client_core::{RequestBuilder, StripeMethod};

use crate::config::StripeConfig;
use crate::ports::{Checkout, Payments};

/// Stripe's API, as billing uses it.
pub struct StripeApi {
    client: Client,
    config: StripeConfig,
}

impl StripeApi {
    pub fn new(config: StripeConfig) -> anyhow::Result<StripeApi> {
        // The Stripe client's TLS takes the process's default crypto provider, and there is
        // none when more than one is linked (in tests): name the one the AWS SDK uses too.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let client = ClientBuilder::new(config.secret_key.clone())
            .url(config.api_base.clone())
            // Retries reuse one idempotency key (a UUID: the `uuid` feature), so a retried
            // create never makes two sessions.
            .request_strategy(RequestStrategy::ExponentialBackoff(3))
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .context("building the Stripe client")?;
        Ok(StripeApi { client, config })
    }
}

#[async_trait]
impl Payments for StripeApi {
    fn config(&self) -> &StripeConfig {
        &self.config
    }

    async fn checkout(&self, c: &Checkout<'_>) -> anyhow::Result<String> {
        let price = self
            .config
            .prices
            .price_of(c.plan)
            .context("the free plan has no price")?;
        let metadata = HashMap::from([
            ("workspace".to_owned(), c.workspace.to_owned()),
            ("plan".to_owned(), c.plan.as_str().to_owned()),
        ]);
        let mut item = CreateCheckoutSessionLineItems::new();
        item.price = Some(price.to_owned());
        item.quantity = Some(1);
        let mut subscription = CreateCheckoutSessionSubscriptionData::new();
        // Subscription events carry the workspace, so they find it even before
        // `checkout.session.completed` has linked the customer.
        subscription.metadata = Some(metadata.clone());
        let mut request = CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Subscription)
            .line_items(vec![item])
            .client_reference_id(c.workspace)
            .metadata(metadata)
            .subscription_data(subscription)
            .success_url(c.success_url.clone())
            .cancel_url(c.cancel_url.clone());
        request = match c.customer {
            Some(customer) => request.customer(customer),
            None => request.customer_email(c.email),
        };
        let session = request
            .send(&self.client)
            .await
            .context("creating a Stripe Checkout Session")?;
        session
            .url
            .context("Stripe returned a Checkout Session without a URL")
    }

    async fn portal(&self, customer: &str, return_url: &str) -> anyhow::Result<String> {
        let session = CreateBillingPortalSession::new()
            .customer(customer)
            .return_url(return_url)
            .send(&self.client)
            .await
            .context("creating a Stripe customer portal session")?;
        Ok(session.url)
    }

    async fn cancel_subscription(&self, subscription_id: &str) -> anyhow::Result<()> {
        let path = format!("/subscriptions/{subscription_id}");
        let sent = RequestBuilder::new(StripeMethod::Delete, path)
            .customize::<miniserde::json::Value>()
            .send(&self.client)
            .await;
        match sent {
            Ok(_) => Ok(()),
            // Already gone (cancelled and removed, or never there): nothing left to bill.
            Err(StripeError::Stripe(_, 404)) => Ok(()),
            Err(e) => Err(e).context("cancelling a Stripe subscription"),
        }
    }
}
