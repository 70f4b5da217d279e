//! The billing sweep Lambda, run by a schedule every 15 minutes: ends grace periods of failed
//! payments and cancelled paid periods (downgrading to free, emailing the owners).

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use llmtrack_billing::{lambda_state, sweep};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    llmtrack_shared::telemetry::init();
    let state = lambda_state().await?;
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| {
        let state = state.clone();
        async move {
            let moved = sweep(&state).await?;
            tracing::info!(moved, "billing sweep done");
            Ok::<Value, lambda_runtime::Error>(serde_json::json!({ "moved": moved }))
        }
    }))
    .await
}
