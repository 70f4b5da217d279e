//! The reports API Lambda: lists a workspace's monthly reports, with download links that expire.

use llmtrack_reports::{ReportsState, lambda_deps, router};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    llmtrack_shared::telemetry::init();
    let state = ReportsState {
        deps: lambda_deps().await?,
    };
    let (app, _) = router(state).split_for_parts();
    llmtrack_shared::lambda::run(app).await
}
