//! The reports Lambda, run by a schedule at 02:00 UTC on the first of each month: the month just
//! ended, for every workspace. A failed run is retried by the schedule and then left in its
//! dead-letter queue; running a month again replaces its files and sends no second email.

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use llmtrack_reports::{lambda_deps, past_month, run_month};
use llmtrack_shared::domain::report::Month;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    llmtrack_shared::telemetry::init();
    let store: llmtrack_shared::ports::DynStore =
        std::sync::Arc::new(llmtrack_shared::adapters::dynamodb::DynamoStore::for_lambda().await?);
    let deps = lambda_deps(&store).await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let deps = deps.clone();
        async move {
            let now = deps.clock.now_ms();
            // `{"month": "YYYY-MM"}` runs that month instead (an operator re-run).
            let month = match event.payload.get("month").and_then(Value::as_str) {
                Some(m) => past_month(m, now)?,
                None => Month::of(now).previous(),
            };
            let ran = run_month(&deps, month, None).await?;
            Ok::<Value, lambda_runtime::Error>(serde_json::to_value(ran)?)
        }
    }))
    .await
}
