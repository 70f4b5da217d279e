//! Configuration read once at start. A missing or invalid setting fails fast, naming the variable.

mod stripe;

pub use stripe::StripeConfig;

use anyhow::{Context as _, bail};

/// A required environment variable.
pub fn required(name: &str) -> anyhow::Result<String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        Ok(_) => bail!("configuration: {name} is set but empty"),
        Err(_) => bail!("configuration: {name} is not set"),
    }
}

/// A boolean environment variable: `true`/`1` or `false`/`0`; unset is false.
pub fn flag(name: &str) -> anyhow::Result<bool> {
    match std::env::var(name).as_deref() {
        Ok("true") | Ok("1") => Ok(true),
        Ok("false") | Ok("0") | Ok("") | Err(_) => Ok(false),
        Ok(other) => bail!("configuration: {name} must be true or false, got {other}"),
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
/// `Origin` of state-changing requests), whether cookies must be `Secure`, and which proxies'
/// `X-Forwarded-For` to believe.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// `PUBLIC_URL`: the dashboard's origin, e.g. `https://app.llm-track.com`.
    pub public_url: String,
    /// Only plain-http loopback URLs (local development) may use non-Secure cookies.
    pub secure_cookies: bool,
    /// `TRUSTED_PROXIES`: reverse proxies in front of `llmtrack serve` (CIDRs). The client
    /// address is then the last `X-Forwarded-For` entry not added by one of them; without it,
    /// the header is ignored (any client could write it). On Lambda the address comes from API
    /// Gateway's request context, never from the header.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl WebConfig {
    pub fn new(public_url: &str, trusted_proxies: Vec<ipnet::IpNet>) -> anyhow::Result<WebConfig> {
        let public_url = public_url.trim().trim_end_matches('/').to_owned();
        let parsed = url::Url::parse(&public_url).map_err(|e| {
            anyhow::anyhow!("configuration: PUBLIC_URL `{public_url}` is not a URL ({e})")
        })?;
        if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
            bail!(
                "configuration: PUBLIC_URL must be an origin (scheme, host and port only), got {public_url}"
            );
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            bail!("configuration: PUBLIC_URL must not carry credentials");
        }
        // Judged by the parsed host, not by a prefix: `http://localhost.example.com` is not local.
        let loopback = match parsed.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        let local = parsed.scheme() == "http" && loopback;
        if parsed.scheme() != "https" && !local {
            bail!(
                "configuration: PUBLIC_URL must be https:// (or http:// on a loopback address for local use), got {public_url}"
            );
        }
        Ok(WebConfig {
            public_url,
            secure_cookies: !local,
            trusted_proxies,
        })
    }

    pub fn from_env() -> anyhow::Result<WebConfig> {
        let proxies = match std::env::var("TRUSTED_PROXIES") {
            Ok(v) => parse_proxies(&v).context("configuration: TRUSTED_PROXIES")?,
            Err(_) => Vec::new(),
        };
        WebConfig::new(&required("PUBLIC_URL")?, proxies)
    }
}

/// A comma-separated list of addresses or CIDR blocks (`10.0.0.0/8, 127.0.0.1`).
pub fn parse_proxies(list: &str) -> anyhow::Result<Vec<ipnet::IpNet>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| anyhow::anyhow!("`{s}` is not an IP address or CIDR block"))
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url_is_judged_by_its_parsed_host() {
        for local in [
            "http://127.0.0.1:8080",
            "http://localhost:8080/",
            "http://[::1]:8080",
        ] {
            assert!(
                !WebConfig::new(local, vec![]).unwrap().secure_cookies,
                "{local}"
            );
        }
        assert!(
            WebConfig::new("https://app.example.com", vec![])
                .unwrap()
                .secure_cookies
        );
        for bad in [
            "http://localhost.attacker.example",
            "http://127.0.0.1.attacker.example",
            "http://localhost@attacker.example",
            "http://app.example.com",
            "https://app.example.com/path",
            "not a url",
        ] {
            assert!(WebConfig::new(bad, vec![]).is_err(), "{bad}");
        }
    }

    #[test]
    fn proxies_are_addresses_or_blocks() {
        let p = parse_proxies("10.0.0.0/8, 127.0.0.1,::1").unwrap();
        assert_eq!(p.len(), 3);
        assert!(parse_proxies("10.0.0.0/8,nope").is_err());
    }
}
