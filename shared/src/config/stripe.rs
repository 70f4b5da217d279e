//! Stripe's configuration: read once at start, with no Stripe client in it, so billing's
//! routes and OpenAPI build without async-stripe (the docs function links them).

use super::required;
use crate::domain::billing::Prices;
use anyhow::bail;

/// Everything billing needs from the environment. All of `STRIPE_SECRET_KEY`,
/// `STRIPE_WEBHOOK_SECRET`, `STRIPE_PRICE_PRO` and `STRIPE_PRICE_TEAM`, or none of them (billing
/// is then "not configured"); `STRIPE_API_BASE` points the client elsewhere (tests).
#[derive(Clone)]
pub struct StripeConfig {
    // Read by the Stripe adapter only (feature `stripe`).
    #[cfg_attr(not(feature = "stripe"), allow(dead_code))]
    pub(crate) secret_key: String,
    /// Every secret a delivery may be signed with: during a rotation, the old and the new one
    /// (comma-separated in `STRIPE_WEBHOOK_SECRET`).
    pub webhook_secrets: Vec<String>,
    pub prices: Prices,
    pub api_base: String,
}

// Secrets stay out of logs, even debug ones.
impl std::fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeConfig")
            .field("prices", &self.prices)
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

const VARIABLES: [&str; 4] = [
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_PRICE_PRO",
    "STRIPE_PRICE_TEAM",
];

impl StripeConfig {
    pub fn new(
        secret_key: &str,
        webhook_secrets: &str,
        price_pro: &str,
        price_team: &str,
        api_base: Option<&str>,
    ) -> anyhow::Result<StripeConfig> {
        let webhook_secrets: Vec<String> = webhook_secrets
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if webhook_secrets.is_empty() {
            bail!("configuration: STRIPE_WEBHOOK_SECRET holds no secret");
        }
        if price_pro == price_team {
            bail!("configuration: STRIPE_PRICE_PRO and STRIPE_PRICE_TEAM are the same price");
        }
        let base = api_base
            .unwrap_or("https://api.stripe.com/")
            .trim_end_matches('/');
        Ok(StripeConfig {
            secret_key: secret_key.to_owned(),
            webhook_secrets,
            prices: Prices {
                pro: price_pro.to_owned(),
                team: price_team.to_owned(),
            },
            api_base: format!("{base}/"),
        })
    }

    /// `None` when no Stripe variable is set; an error naming the missing ones when only some are.
    pub fn from_env() -> anyhow::Result<Option<StripeConfig>> {
        let set: Vec<&str> = VARIABLES
            .into_iter()
            .filter(|v| std::env::var(v).is_ok_and(|x| !x.trim().is_empty()))
            .collect();
        if set.is_empty() {
            return Ok(None);
        }
        if set.len() < VARIABLES.len() {
            let missing: Vec<&str> = VARIABLES.into_iter().filter(|v| !set.contains(v)).collect();
            bail!(
                "configuration: billing needs all of {}; missing {}",
                VARIABLES.join(", "),
                missing.join(", ")
            );
        }
        let base = std::env::var("STRIPE_API_BASE").ok();
        StripeConfig::new(
            &required("STRIPE_SECRET_KEY")?,
            &required("STRIPE_WEBHOOK_SECRET")?,
            &required("STRIPE_PRICE_PRO")?,
            &required("STRIPE_PRICE_TEAM")?,
            base.as_deref().filter(|b| !b.trim().is_empty()),
        )
        .map(Some)
    }
}
