//! The reports API Lambda: lists a workspace's monthly reports, with download links that expire.

use llmtrack_reports::{ReportsState, lambda_deps, router};
use llmtrack_shared::auth::Gate;
use llmtrack_shared::config::WebConfig;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    llmtrack_shared::telemetry::init();
    let store: llmtrack_shared::ports::DynStore =
        std::sync::Arc::new(llmtrack_shared::adapters::dynamodb::DynamoStore::for_lambda().await?);
    let deps = lambda_deps(&store).await?;
    let state = ReportsState {
        gate: Gate::new(&store, &deps.clock, &WebConfig::from_env()?),
        deps,
    };
    let (app, _) = router(state).split_for_parts();
    llmtrack_shared::lambda::run(app).await
}
