//! The query Lambda: analytics endpoints, reading DynamoDB; large exports become job items that
//! the jobs Lambda runs.

use std::sync::Arc;

use llmtrack_query::{QueryPorts, QueryState, router};
use llmtrack_shared::adapters::dynamodb::DynamoStore;
use llmtrack_shared::adapters::s3::S3Archive;
use llmtrack_shared::auth::Gate;
use llmtrack_shared::config::{WebConfig, required};
use llmtrack_shared::ports::{DynClock, DynStore, SystemClock};
use llmtrack_shared::ratelimit::RequestLimits;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    llmtrack_shared::telemetry::init();
    let store: DynStore = Arc::new(DynamoStore::for_lambda().await?);
    let clock: DynClock = Arc::new(SystemClock);
    let web = WebConfig::from_env()?;
    let state = QueryState {
        gate: Gate::new(&store, &clock, &web),
        store: QueryPorts::of(&store),
        clock,
        archive: Arc::new(S3Archive::from_env(&required("ARCHIVE_BUCKET")?).await),
        run_jobs_here: false,
        web,
        limits: RequestLimits::query(Vec::new()),
        check_limits: RequestLimits::ingest(Vec::new()),
    };
    let (app, _) = router(state).split_for_parts();
    llmtrack_shared::lambda::run(app).await
}
