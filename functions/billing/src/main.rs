//! The billing Lambda: checkout, customer portal and Stripe's webhook. DynamoDB + SES + Stripe.

use llmtrack_billing::{lambda_state, router};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    llmtrack_shared::telemetry::init();
    let (app, _) = router(lambda_state().await?).split_for_parts();
    llmtrack_shared::lambda::run(app).await
}
