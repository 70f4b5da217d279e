//! The reconciliation function: a workspace's provider connections (an OpenAI or Anthropic
//! organisation, reached with its Admin API key) and the import of what each provider says the
//! organisation used and paid, per UTC day and model. The comparison with LLMtrack's own events
//! is read at `GET /v1/stats/reconciliation` (the query function); alerts on coverage and drift
//! are alert rules (the alerts function). See docs/RECONCILIATION.md.
//!
//! The admin key is sealed by the vault (KMS on AWS, a key file locally) before the store sees
//! it, opened only to call the provider, and never answered, logged or audited: admins see its
//! last four characters.

use llmtrack_shared::auth::Gate;
use llmtrack_shared::ports::{DynClock, DynProviderApi, DynVault};

pub mod connections;
pub mod import;
mod routes;

pub use routes::{ConnectionView, openapi, router};

llmtrack_shared::store_ports! {
    /// What connections and imports touch: the workspace, its connections and their figures,
    /// and the audit log.
    pub struct ReconciliationPorts {
        workspaces: Workspaces,
        connections: Connections,
        audit_log: AuditLog,
    }
}

/// What the use cases need: the store, the clock, the providers' APIs and the vault.
#[derive(Clone)]
pub struct Deps {
    pub store: ReconciliationPorts,
    pub clock: DynClock,
    pub providers: DynProviderApi,
    pub vault: DynVault,
}

#[derive(Clone)]
pub struct ReconciliationState {
    pub gate: Gate,
    pub deps: Deps,
}

/// The Lambda functions' parts: DynamoDB, KMS (`SECRETS_KMS_KEY_ID`) and the providers' APIs
/// (`OPENAI_API_BASE`, `ANTHROPIC_API_BASE`, defaulting to the real ones).
#[cfg(feature = "lambda")]
pub async fn lambda_deps(store: &llmtrack_shared::ports::DynStore) -> anyhow::Result<Deps> {
    use std::sync::Arc;

    use llmtrack_shared::adapters::kms::KmsVault;
    use llmtrack_shared::adapters::providers::ProviderClient;
    let sdk = llmtrack_shared::adapters::aws::sdk_config().await;
    Ok(Deps {
        store: ReconciliationPorts::of(store),
        clock: Arc::new(llmtrack_shared::ports::SystemClock),
        providers: Arc::new(ProviderClient::from_env()),
        vault: Arc::new(KmsVault::from_env(sdk)?),
    })
}
