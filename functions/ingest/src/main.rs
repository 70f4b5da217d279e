//! The ingest Lambda: `POST /v1/events` behind API Gateway, storing in DynamoDB.

use std::sync::Arc;

use llmtrack_ingest::{IngestPorts, IngestState, router};
use llmtrack_shared::adapters::dynamodb::DynamoStore;
use llmtrack_shared::domain::pricing::PriceTable;
use llmtrack_shared::ports::{DynStore, SystemClock};
use llmtrack_shared::ratelimit::RequestLimits;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    llmtrack_shared::telemetry::init();
    let store: DynStore = Arc::new(DynamoStore::for_lambda().await?);
    let state = IngestState {
        store: IngestPorts::of(&store),
        clock: Arc::new(SystemClock),
        prices: PriceTable::bundled(),
        // API Gateway's source address, never a header: no proxies to trust.
        limits: RequestLimits::ingest(Vec::new()),
    };
    let (app, _api) = router(state).split_for_parts();
    llmtrack_shared::lambda::run(app).await
}
