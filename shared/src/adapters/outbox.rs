//! The local mail adapter: every email is written to `outbox/` as one RFC 5322 `.eml` file, so a
//! developer (or a test) can read the sign-in code. Nothing leaves the machine.

use std::path::PathBuf;

use anyhow::Context as _;
use async_trait::async_trait;
use lettre::Message;
use lettre::message::{MultiPart, SinglePart, header::ContentType};

use crate::ports::{Mail, Mailer};

pub struct Outbox {
    dir: PathBuf,
    from: String,
    /// Monotonic ids, so file names sort in sending order even within one millisecond.
    ids: std::sync::Mutex<ulid::Generator>,
}

impl Outbox {
    pub fn new(dir: PathBuf) -> anyhow::Result<Outbox> {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Outbox {
            dir,
            from: "LLMtrack <no-reply@localhost>".into(),
            ids: std::sync::Mutex::new(ulid::Generator::new()),
        })
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

/// The RFC 5322 message of an email (written to the outbox, or sent by SMTP): a text part, plus
/// HTML when given.
pub(crate) fn mime(from: &str, mail: &Mail) -> anyhow::Result<Message> {
    let builder = Message::builder()
        .from(from.parse().context("sender address")?)
        .to(mail.to.parse().context("recipient address")?)
        .subject(&mail.subject);
    let message = match &mail.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            html.clone(),
        ))?,
        None => builder.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(mail.text.clone()),
        )?,
    };
    Ok(message)
}

#[async_trait]
impl Mailer for Outbox {
    async fn send(&self, mail: &Mail) -> anyhow::Result<()> {
        let bytes = mime(&self.from, mail)?.formatted();
        let id = self.ids.lock().ok().and_then(|mut g| g.generate().ok());
        let id = id.map_or_else(|| ulid::Ulid::new().to_string(), |id| id.to_string());
        // The workspace in the name, so its mail can be forgotten without reading every file.
        let name = match &mail.about {
            Some(ws) => format!("{id}.{ws}.eml"),
            None => format!("{id}.eml"),
        };
        let path = self.dir.join(name);
        tokio::fs::write(&path, bytes)
            .await
            .with_context(|| format!("writing {}", path.display()))?;
        // Local only: say where the mail went. Not the subject: it may hold a sign-in code.
        tracing::info!(path = %path.display(), "email written to the outbox");
        Ok(())
    }

    async fn forget(&self, ws: &crate::domain::ids::WorkspaceId) -> anyhow::Result<usize> {
        let suffix = format!(".{ws}.eml");
        let mut entries = tokio::fs::read_dir(&self.dir)
            .await
            .with_context(|| format!("listing {}", self.dir.display()))?;
        let mut deleted = 0;
        while let Some(entry) = entries.next_entry().await? {
            if entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.ends_with(&suffix))
            {
                tokio::fs::remove_file(entry.path()).await?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}
