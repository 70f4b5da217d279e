//! The digests Lambda, run by an hourly schedule: every workspace's weekly digest that is due
//! (Monday from 08:00 in the workspace's timezone) and not sent yet, to the members who opted in.
//! A run that finds a week already claimed sends nothing, so reruns and retries never mail twice.

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use llmtrack_reports::digest::{digest_lambda_deps, run};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    llmtrack_shared::telemetry::init();
    let store: llmtrack_shared::ports::DynStore =
        std::sync::Arc::new(llmtrack_shared::adapters::dynamodb::DynamoStore::for_lambda().await?);
    let deps = digest_lambda_deps(&store).await?;
    lambda_runtime::run(service_fn(|_event: LambdaEvent<Value>| {
        let deps = deps.clone();
        async move {
            let emails = run(&deps, deps.clock.now_ms()).await?;
            Ok::<Value, lambda_runtime::Error>(serde_json::json!({ "emails": emails }))
        }
    }))
    .await
}
