//! Configuration read once at start. A missing or invalid setting fails fast, naming the variable.

use anyhow::{Context as _, bail};

/// A required environment variable.
pub fn required(name: &str) -> anyhow::Result<String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        Ok(_) => bail!("configuration: {name} is set but empty"),
        Err(_) => bail!("configuration: {name} is not set"),
    }
}

/// What every Lambda function backed by DynamoDB needs.
#[derive(Debug, Clone)]
pub struct LambdaConfig {
    /// The single DynamoDB table (`TABLE_NAME`).
    pub table_name: String,
}

impl LambdaConfig {
    pub fn from_env() -> anyhow::Result<LambdaConfig> {
        let table_name = required("TABLE_NAME").context("the function cannot reach its table")?;
        Ok(LambdaConfig { table_name })
    }
}

/// What the web-facing functions need: where the dashboard lives (links in emails, the allowed
/// `Origin` of state-changing requests) and whether cookies must be `Secure`.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// `PUBLIC_URL`: the dashboard's origin, e.g. `https://app.llm-track.com`.
    pub public_url: String,
    /// Only plain-http loopback URLs (local development) may use non-Secure cookies.
    pub secure_cookies: bool,
    /// `TRUST_FORWARDED_FOR`: take the client address from `X-Forwarded-For` (set by API Gateway).
    /// Off locally, where any client could forge it.
    pub trust_forwarded_for: bool,
}

impl WebConfig {
    pub fn new(public_url: &str, trust_forwarded_for: bool) -> anyhow::Result<WebConfig> {
        let public_url = public_url.trim_end_matches('/').to_owned();
        let local = public_url.starts_with("http://127.0.0.1")
            || public_url.starts_with("http://localhost");
        if !public_url.starts_with("https://") && !local {
            bail!(
                "configuration: PUBLIC_URL must be https:// (or http://127.0.0.1 for local use), got {public_url}"
            );
        }
        Ok(WebConfig {
            public_url,
            secure_cookies: !local,
            trust_forwarded_for,
        })
    }

    pub fn from_env() -> anyhow::Result<WebConfig> {
        let trust = match std::env::var("TRUST_FORWARDED_FOR").as_deref() {
            Ok("true") | Ok("1") => true,
            Ok("false") | Ok("0") | Err(_) => false,
            Ok(other) => {
                bail!("configuration: TRUST_FORWARDED_FOR must be true or false, got {other}")
            }
        };
        WebConfig::new(&required("PUBLIC_URL")?, trust)
    }
}

/// Mail settings on AWS: `MAIL_FROM` (an SES-verified sender), and `SUPPORT_EMAIL`, which is
/// printed in emails only when set: the privacy policy forbids publishing an unverified address.
#[derive(Debug, Clone)]
pub struct MailConfig {
    pub from: String,
    pub support_email: Option<String>,
}

impl MailConfig {
    pub fn from_env() -> anyhow::Result<MailConfig> {
        let from = required("MAIL_FROM")?;
        let support_email = std::env::var("SUPPORT_EMAIL")
            .ok()
            .filter(|s| !s.trim().is_empty());
        Ok(MailConfig {
            from,
            support_email,
        })
    }
}
