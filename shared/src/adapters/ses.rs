//! The AWS mail adapter: Amazon SES through the current API (SESv2 `SendEmail`).

use anyhow::anyhow;
use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::DisplayErrorContext;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

use crate::ports::{Mail, Mailer};

pub struct Ses {
    client: Client,
    from: String,
}

impl Ses {
    pub fn new(client: Client, from: &str) -> Ses {
        Ses {
            client,
            from: from.to_owned(),
        }
    }

    pub async fn from_env(from: &str) -> Ses {
        let config = crate::adapters::aws::sdk_config().await;
        Ses::new(Client::new(config), from)
    }
}

fn content(text: &str) -> anyhow::Result<Content> {
    Ok(Content::builder().data(text).charset("UTF-8").build()?)
}

#[async_trait]
impl Mailer for Ses {
    async fn send(&self, mail: &Mail) -> anyhow::Result<()> {
        let mut body = Body::builder().text(content(&mail.text)?);
        if let Some(html) = &mail.html {
            body = body.html(content(html)?);
        }
        let message = Message::builder()
            .subject(content(&mail.subject)?)
            .body(body.build())
            .build();
        self.client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&mail.to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map_err(|e| anyhow!("SES refused the email: {}", DisplayErrorContext(e)))?;
        Ok(())
    }
}
