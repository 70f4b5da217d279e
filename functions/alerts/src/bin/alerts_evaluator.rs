//! The alerts evaluator Lambda, run by a schedule every 5 minutes: every workspace's rules move
//! between ok and firing, and each transition is notified once; plan usage alerts at 80% and
//! 100% of the monthly event limit go out once a month each.

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use llmtrack_alerts::{evaluate, lambda_deps};
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
            let done = evaluate::all(&deps).await?;
            Ok::<Value, lambda_runtime::Error>(serde_json::to_value(done)?)
        }
    }))
    .await
}
