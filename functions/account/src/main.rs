//! The account Lambda: sign-in, sessions, workspaces, members, invitations, audit. DynamoDB + SES.

use std::sync::Arc;

use llmtrack_account::{AccountPorts, AccountState, router};
use llmtrack_shared::adapters::dynamodb::DynamoStore;
use llmtrack_shared::adapters::ses::Ses;
use llmtrack_shared::auth::Gate;
use llmtrack_shared::config::{MailConfig, WebConfig};
use llmtrack_shared::ports::{DynClock, DynStore, SystemClock};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    llmtrack_shared::telemetry::init();
    let web = WebConfig::from_env()?;
    let mail = MailConfig::from_env()?;
    let store: DynStore = Arc::new(DynamoStore::for_lambda().await?);
    let clock: DynClock = Arc::new(SystemClock);
    let state = AccountState {
        gate: Gate::new(&store, &clock, &web),
        store: AccountPorts::of(&store),
        clock,
        mailer: Arc::new(Ses::from_env(&mail.from).await),
        web,
        support_email: mail.support_email,
        billing_configured: llmtrack_shared::config::flag("BILLING_CONFIGURED")?,
    };
    let (app, _) = router(state).split_for_parts();
    llmtrack_shared::lambda::run(app).await
}
