//! The reconciliation Lambda: a workspace's provider connections (add, test, import, remove), on
//! DynamoDB, with admin keys sealed by KMS. The daily import is `reconciliation-import`.

use llmtrack_reconciliation::{ReconciliationState, lambda_deps, router};
use llmtrack_shared::config::WebConfig;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    llmtrack_shared::telemetry::init();
    let store: llmtrack_shared::ports::DynStore =
        std::sync::Arc::new(llmtrack_shared::adapters::dynamodb::DynamoStore::for_lambda().await?);
    let deps = lambda_deps(&store).await?;
    let state = ReconciliationState {
        gate: llmtrack_shared::auth::Gate::new(&store, &deps.clock, &WebConfig::from_env()?),
        deps,
    };
    let (app, _) = router(state).split_for_parts();
    llmtrack_shared::lambda::run(app).await
}
