//! Mail: SES on AWS, an outbox folder of `.eml` files locally.

use crate::domain::ids::WorkspaceId;
use async_trait::async_trait;
use std::sync::Arc;

/// An email to send: always a plain-text part, optionally HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    /// The workspace the mail tells about (its data may be in it), if any: a mailer that keeps
    /// copies forgets them when the workspace is deleted.
    pub about: Option<WorkspaceId>,
}

/// The mail port: SES on AWS, an outbox folder of `.eml` files locally.
#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    async fn send(&self, mail: &Mail) -> anyhow::Result<()>;
    /// Deletes the copies this mailer keeps of mail about a deleted workspace; returns how
    /// many. Sent mail is its recipients' and cannot be recalled: SES keeps none, so this does
    /// nothing there; the local outbox deletes its files.
    async fn forget(&self, _ws: &WorkspaceId) -> anyhow::Result<usize> {
        Ok(0)
    }
}

pub type DynMailer = Arc<dyn Mailer>;
