//! The deletion Lambda: deletion requests and their receipts, on DynamoDB. The jobs it accepts
//! are run by the deletion worker, triggered by the table's stream.

use llmtrack_deletion::{DeletionState, lambda_deps, router};
use llmtrack_shared::config::WebConfig;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    llmtrack_shared::telemetry::init();
    let state = DeletionState {
        deps: lambda_deps().await?,
        web: WebConfig::from_env()?,
        run_jobs_here: false,
    };
    let (app, _) = router(state).split_for_parts();
    llmtrack_shared::lambda::run(app).await
}
