//! The query Lambda: analytics endpoints, reading DynamoDB.

use std::sync::Arc;

use llmtrack_query::{QueryState, router};
use llmtrack_shared::adapters::dynamodb::DynamoStore;
use llmtrack_shared::config::LambdaConfig;
use llmtrack_shared::ports::SystemClock;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    llmtrack_shared::telemetry::init();
    let config = LambdaConfig::from_env()?;
    let store = DynamoStore::from_env(&config.table_name).await;
    let state = QueryState {
        store: Arc::new(store),
        clock: Arc::new(SystemClock),
    };
    let (app, _) = router(state).split_for_parts();
    lambda_http::run(app).await
}
