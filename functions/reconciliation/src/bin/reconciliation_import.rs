//! The daily import Lambda, run by a schedule: every workspace's provider connections that are
//! due import the days since their last import (and the last three again).

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use llmtrack_reconciliation::{import, lambda_deps};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    llmtrack_shared::telemetry::init();
    let store: llmtrack_shared::ports::DynStore =
        std::sync::Arc::new(llmtrack_shared::adapters::dynamodb::DynamoStore::for_lambda().await?);
    let deps = lambda_deps(&store).await?;
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| {
        let deps = deps.clone();
        async move {
            let done = import::all(&deps).await?;
            Ok::<Value, lambda_runtime::Error>(serde_json::to_value(done)?)
        }
    }))
    .await
}
