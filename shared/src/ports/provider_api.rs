//! The providers' billing APIs: OpenAI's organisation Costs and Completions Usage, Anthropic's
//! usage and cost reports (`adapters::providers`; base URLs `OPENAI_API_BASE`,
//! `ANTHROPIC_API_BASE`, so tests and staging point them at local servers).

use async_trait::async_trait;

use crate::domain::reconciliation::{BilledRow, Provider};

/// Why a provider call failed, in words an admin can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The key was refused (401, 403): the provider's own message says why (not an admin key,
    /// a missing scope, a revoked key).
    #[error("{provider} refused the admin key ({status}): {message}")]
    Refused {
        provider: &'static str,
        status: u16,
        message: String,
    },
    /// The provider refused the request itself (another 4xx).
    #[error("{provider} refused the request ({status}): {message}")]
    Invalid {
        provider: &'static str,
        status: u16,
        message: String,
    },
    /// Still rate limited, failing (5xx) or unreachable after the retries.
    #[error("{provider} is unavailable: {message}")]
    Unavailable {
        provider: &'static str,
        message: String,
    },
}

#[async_trait]
pub trait ProviderApi: Send + Sync + 'static {
    /// Whether the key may read the organisation's usage and cost (one small request to each).
    async fn check(
        &self,
        provider: Provider,
        key: &str,
        scope: &[String],
    ) -> Result<(), ProviderError>;

    /// Usage and cost for the UTC days `[from_day, to_day)` (`YYYY-MM-DD`), every page read,
    /// merged into one row per day, model and provider-side scope. Narrowed to `scope` (OpenAI
    /// project ids, Anthropic workspace ids) when it is not empty. Retries 429 and 5xx with
    /// back-off, honouring `retry-after`.
    async fn billed(
        &self,
        provider: Provider,
        key: &str,
        scope: &[String],
        from_day: &str,
        to_day: &str,
    ) -> Result<Vec<BilledRow>, ProviderError>;
}

pub type DynProviderApi = std::sync::Arc<dyn ProviderApi>;
