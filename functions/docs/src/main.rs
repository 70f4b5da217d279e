//! The docs Lambda: the OpenAPI document and the health check. No store, no configuration.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    llmtrack_shared::telemetry::init();
    llmtrack_shared::lambda::run(llmtrack_docs::router()).await
}
