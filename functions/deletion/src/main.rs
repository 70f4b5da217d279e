//! The deletion Lambda: deletion requests and their receipts, on DynamoDB. The jobs it accepts
//! are run by the deletion worker, triggered by the table's stream.

use llmtrack_deletion::{DeletionState, lambda_deps, router};
use llmtrack_shared::adapters::dynamodb::DynamoStore;
use llmtrack_shared::auth::Gate;
use llmtrack_shared::config::WebConfig;
use llmtrack_shared::ports::DynStore;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    llmtrack_shared::telemetry::init();
    let store = DynamoStore::for_lambda().await?;
    let deps = lambda_deps(&store).await?;
    let web = WebConfig::from_env()?;
    let store: DynStore = std::sync::Arc::new(store);
    let state = DeletionState {
        gate: Gate::new(&store, &deps.clock, &web),
        deps,
        web,
        run_jobs_here: false,
    };
    let (app, _) = router(state).split_for_parts();
    llmtrack_shared::lambda::run(app).await
}
