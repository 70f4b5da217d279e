//! The self-hosted mail adapter: each email goes to an SMTP server (the operator's relay or mail
//! provider) through lettre, configured by one URL (`smtps://user:password@host`, `smtp://host:587
//! ?tls=required`, or `smtp://127.0.0.1:25` for a relay on the machine). The URL holds a password:
//! it is never logged, and errors name the host only.

use anyhow::Context as _;
use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};

use crate::ports::{Mail, Mailer};

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// For messages: the server's host, never the URL (it may hold credentials).
    host: String,
}

impl SmtpMailer {
    /// A mailer sending through the server `url` names, as `from` (`LLMtrack <no-reply@…>`).
    pub fn new(url: &str, from: &str) -> anyhow::Result<SmtpMailer> {
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .context("the SMTP URL is not a URL like smtps://user:password@host")?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| anyhow::anyhow!("the SMTP URL for {host}: {e}"))?
            .timeout(Some(std::time::Duration::from_secs(20)))
            .build();
        Ok(SmtpMailer {
            transport,
            from: from
                .parse()
                .with_context(|| format!("the sender address `{from}`"))?,
            host,
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Mail) -> anyhow::Result<()> {
        let message = super::outbox::mime(&self.from.to_string(), mail)?;
        self.transport
            .send(message)
            .await
            .with_context(|| format!("sending an email through {}", self.host))?;
        // Not the subject or recipient: a subject may hold a sign-in code.
        tracing::info!(server = %self.host, "email sent");
        Ok(())
    }
}
