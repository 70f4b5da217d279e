//! The keys Lambda: a workspace's API keys, on DynamoDB.

use std::sync::Arc;

use llmtrack_keys::{KeysState, router};
use llmtrack_shared::adapters::dynamodb::DynamoStore;
use llmtrack_shared::config::WebConfig;
use llmtrack_shared::ports::{DynStore, SystemClock};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    llmtrack_shared::telemetry::init();
    let store: DynStore = Arc::new(DynamoStore::for_lambda().await?);
    let state = KeysState::new(&store, Arc::new(SystemClock), WebConfig::from_env()?);
    let (app, _) = router(state).split_for_parts();
    llmtrack_shared::lambda::run(app).await
}
