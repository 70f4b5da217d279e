//! The account Lambda: sign-in, sessions, workspaces, members, invitations, audit. DynamoDB + SES.

use std::sync::Arc;

use llmtrack_account::{AccountState, router};
use llmtrack_shared::adapters::dynamodb::DynamoStore;
use llmtrack_shared::adapters::ses::Ses;
use llmtrack_shared::config::{LambdaConfig, MailConfig, WebConfig};
use llmtrack_shared::ports::SystemClock;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    llmtrack_shared::telemetry::init();
    let config = LambdaConfig::from_env()?;
    let web = WebConfig::from_env()?;
    let mail = MailConfig::from_env()?;
    let state = AccountState {
        store: Arc::new(DynamoStore::from_env(&config.table_name).await),
        clock: Arc::new(SystemClock),
        mailer: Arc::new(Ses::from_env(&mail.from).await),
        web,
        support_email: mail.support_email,
        billing_configured: llmtrack_shared::config::flag("BILLING_CONFIGURED")?,
    };
    let (app, _) = router(state).split_for_parts();
    llmtrack_shared::lambda::run(app).await
}
