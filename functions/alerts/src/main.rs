//! The alerts Lambda: a workspace's alert rules, their history and test notifications, on
//! DynamoDB. Rules are evaluated by the alerts evaluator, on a schedule.

use llmtrack_alerts::{AlertsState, lambda_deps, router};
use llmtrack_shared::config::WebConfig;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    llmtrack_shared::telemetry::init();
    let store: llmtrack_shared::ports::DynStore =
        std::sync::Arc::new(llmtrack_shared::adapters::dynamodb::DynamoStore::for_lambda().await?);
    let deps = lambda_deps(&store).await?;
    let web = WebConfig::from_env()?;
    let state = AlertsState {
        gate: llmtrack_shared::auth::Gate::new(&store, &deps.clock, &web),
        deps,
        web,
    };
    let (app, _) = router(state).split_for_parts();
    llmtrack_shared::lambda::run(app).await
}
