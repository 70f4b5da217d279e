//! The alerts Lambda: a workspace's alert rules, their history and test notifications, on
//! DynamoDB. Rules are evaluated by the alerts evaluator, on a schedule.

use llmtrack_alerts::{AlertsState, lambda_deps, router};
use llmtrack_shared::config::WebConfig;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    llmtrack_shared::telemetry::init();
    let state = AlertsState {
        deps: lambda_deps().await?,
        web: WebConfig::from_env()?,
    };
    let (app, _) = router(state).split_for_parts();
    llmtrack_shared::lambda::run(app).await
}
