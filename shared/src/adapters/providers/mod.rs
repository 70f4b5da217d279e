//! The providers' billing APIs over HTTP: OpenAI's organisation Completions Usage and Costs,
//! Anthropic's Admin usage and cost reports, read page by page into [`BilledRow`]s.
//!
//! The facts these clients rely on (parameters, units, paging, error shapes) and their sources
//! are in `tests/fixtures/provider-billing/README.md`'s original. The admin key is passed per
//! call and never kept, logged, or echoed in an error.

mod anthropic;
mod openai;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use crate::domain::reconciliation::{BilledRow, Provider, TokenKind};
use crate::ports::{ProviderApi, ProviderError};

pub const DEFAULT_OPENAI_BASE: &str = "https://api.openai.com/v1";
pub const DEFAULT_ANTHROPIC_BASE: &str = "https://api.anthropic.com";

/// How long one request may take, connecting included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Pages read per endpoint and call: a server that always answers `has_more` must not keep an
/// import going forever (a year of days is 12 pages of 31).
const MAX_PAGES: usize = 1_000;

/// When a failed request (429, 5xx, 408, no answer) is tried again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries after the first one.
    pub max_retries: u32,
    /// The wait before the first retry, doubled each time up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// The longest `retry-after` waited for; a server asking for longer is reported unavailable
    /// at once (as OpenAI's SDK does), so an import fails and resumes later rather than hang.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// Tiny waits, for tests against a local server.
    pub fn fast() -> Self {
        RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(10),
            max_retry_after: Duration::from_secs(120),
        }
    }

    /// The back-off wait before retry `attempt` (0-based), with up to a quarter taken off at
    /// random so clients failed together do not retry together.
    fn backoff(&self, attempt: u32) -> Duration {
        let full = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.min(30)))
            .min(self.max_delay);
        let cut = rand::random_range(0.0..0.25);
        full.mul_f64(1.0 - cut)
    }
}

/// The HTTP client of both billing APIs (`ports::ProviderApi`).
#[derive(Clone)]
pub struct ProviderClient {
    http: reqwest::Client,
    openai_base: String,
    anthropic_base: String,
    retry: RetryPolicy,
}

// By hand: the bases and the policy are what matter when reading a log, and no key is held.
impl fmt::Debug for ProviderClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderClient")
            .field("openai_base", &self.openai_base)
            .field("anthropic_base", &self.anthropic_base)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl ProviderClient {
    /// `openai_base` ends before `/organization` (`https://api.openai.com/v1`), `anthropic_base`
    /// before `/v1` (`https://api.anthropic.com`).
    pub fn new(openai_base: &str, anthropic_base: &str) -> ProviderClient {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            // A redirect could carry the key's header to another host; neither API redirects.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("llmtrack/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds (rustls needs no system state)");
        ProviderClient {
            http,
            openai_base: openai_base.trim_end_matches('/').to_owned(),
            anthropic_base: anthropic_base.trim_end_matches('/').to_owned(),
            retry: RetryPolicy::default(),
        }
    }

    /// The real APIs, unless `OPENAI_API_BASE` or `ANTHROPIC_API_BASE` point elsewhere.
    pub fn from_env() -> ProviderClient {
        let base = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        ProviderClient::new(
            &base("OPENAI_API_BASE", DEFAULT_OPENAI_BASE),
            &base("ANTHROPIC_API_BASE", DEFAULT_ANTHROPIC_BASE),
        )
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> ProviderClient {
        self.retry = retry;
        self
    }

    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// One GET, retried as the policy says; the body of a 2xx answer.
    async fn get(
        &self,
        provider: Provider,
        key: &str,
        url: &str,
        query: &[(String, String)],
    ) -> Result<String, ProviderError> {
        // Pasted keys often carry a line break; no key holds white space.
        let key = key.trim();
        let (name, value) = match provider {
            Provider::OpenAi => (AUTHORIZATION.as_str(), format!("Bearer {key}")),
            Provider::Anthropic => ("x-api-key", key.to_owned()),
        };
        let mut secret = HeaderValue::from_str(&value).map_err(|_| ProviderError::Refused {
            provider: label(provider),
            // Never sent.
            status: 0,
            message: "the key holds characters no API key has".to_owned(),
        })?;
        // Kept out of any Debug output of the request.
        secret.set_sensitive(true);
        let mut attempt = 0u32;
        loop {
            let mut request = self.http.get(url).query(query).header(name, secret.clone());
            if provider == Provider::Anthropic {
                request = request.header("anthropic-version", anthropic::VERSION);
            }
            let (wait, message) = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    match response.text().await {
                        Ok(body) if status.is_success() => return Ok(body),
                        Ok(body) => match classify(provider, key, status, &headers, &body) {
                            Failure::Final(error) => return Err(error),
                            Failure::Retry { wait, message } => (wait, message),
                        },
                        Err(e) => (None, format!("the answer broke off ({})", causes(&e))),
                    }
                }
                Err(e) if e.is_builder() => {
                    return Err(ProviderError::Unavailable {
                        provider: label(provider),
                        message: format!("the request could not be made ({})", causes(&e)),
                    });
                }
                Err(e) => (None, describe_send_error(&e)),
            };
            let unavailable = |message: String| ProviderError::Unavailable {
                provider: label(provider),
                message,
            };
            if let Some(wait) = wait
                && wait > self.retry.max_retry_after
            {
                return Err(unavailable(format!(
                    "{message}; it asks to wait {} s before trying again",
                    wait.as_secs()
                )));
            }
            if attempt >= self.retry.max_retries {
                let tries = attempt + 1;
                return Err(unavailable(format!(
                    "{message} (after {tries} tr{})",
                    if tries == 1 { "y" } else { "ies" }
                )));
            }
            tokio::time::sleep(wait.unwrap_or_else(|| self.retry.backoff(attempt))).await;
            attempt += 1;
        }
    }
}

#[async_trait]
impl ProviderApi for ProviderClient {
    async fn check(
        &self,
        provider: Provider,
        key: &str,
        scope: &[String],
    ) -> Result<(), ProviderError> {
        let today = chrono::Utc::now().date_naive();
        let days = Days {
            from: today.pred_opt().unwrap_or(today),
            to: today,
        };
        let result = match provider {
            Provider::OpenAi => openai::check(self, key, scope, days).await,
            Provider::Anthropic => anthropic::check(self, key, scope, days).await,
        };
        result.map_err(|e| hint_admin_key(provider, key, e))
    }

    async fn billed(
        &self,
        provider: Provider,
        key: &str,
        scope: &[String],
        from_day: &str,
        to_day: &str,
    ) -> Result<Vec<BilledRow>, ProviderError> {
        let days = Days::parse(provider, from_day, to_day)?;
        if days.from >= days.to {
            return Ok(Vec::new());
        }
        let mut rows = Rows::new(provider, days);
        match provider {
            Provider::OpenAi => openai::billed(self, key, scope, &mut rows).await?,
            Provider::Anthropic => anthropic::billed(self, key, scope, &mut rows).await?,
        }
        Ok(rows.into_rows())
    }
}

/// The provider's name in errors, as an admin reads it.
fn label(provider: Provider) -> &'static str {
    match provider {
        Provider::OpenAi => "OpenAI",
        Provider::Anthropic => "Anthropic",
    }
}

/// A refused key that does not even look like an admin key: say so beside the provider's words,
/// which (for a project key) only name a missing scope.
fn hint_admin_key(provider: Provider, key: &str, error: ProviderError) -> ProviderError {
    match error {
        ProviderError::Refused {
            provider: p,
            status,
            message,
        } if !key.trim().starts_with(provider.admin_key_prefix()) => ProviderError::Refused {
            provider: p,
            status,
            message: format!(
                "{message} (this is not an admin key: an admin key starts with {})",
                provider.admin_key_prefix()
            ),
        },
        other => other,
    }
}

enum Failure {
    Final(ProviderError),
    Retry {
        wait: Option<Duration>,
        message: String,
    },
}

/// What a non-2xx answer means: refused key, refused request, or worth another try.
fn classify(
    provider: Provider,
    key: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
) -> Failure {
    let mut message = scrub(&error_message(body), key);
    if let Some(id) = headers.get("request-id").and_then(|v| v.to_str().ok()) {
        // Anthropic's support asks for it.
        message = format!("{message} (request-id {id})");
    }
    let code = status.as_u16();
    match code {
        401 | 403 => Failure::Final(ProviderError::Refused {
            provider: label(provider),
            status: code,
            message,
        }),
        408 | 429 | 500..=599 => Failure::Retry {
            wait: retry_after(provider, headers),
            message: format!("it answered {code}: {message}"),
        },
        _ => Failure::Final(ProviderError::Invalid {
            provider: label(provider),
            status: code,
            message,
        }),
    }
}

/// The wait the server asks for: `retry-after-ms` (OpenAI's own header) or `retry-after` in
/// seconds. An HTTP-date `retry-after` is not used by either API, so it falls back to back-off.
fn retry_after(provider: Provider, headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if provider == Provider::OpenAi
        && let Some(ms) = header("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms.min(1e9) / 1000.0));
    }
    let secs = header("retry-after")?.trim().parse::<f64>().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)))
}

/// The provider's own message: both wrap it as `{"error": {"message": …}}`.
fn error_message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let from_json = parsed.as_ref().and_then(|v| {
        let error = v.get("error")?;
        error
            .get("message")
            .and_then(|m| m.as_str())
            .or_else(|| error.as_str())
            .map(str::to_owned)
    });
    match from_json {
        Some(m) if !m.trim().is_empty() => m,
        _ if body.trim().is_empty() => "(no message)".to_owned(),
        _ => shorten(body.trim(), 300),
    }
}

/// The key out of anything quoted back to the caller, should a server echo it whole.
fn scrub(message: &str, key: &str) -> String {
    if key.len() >= 8 && message.contains(key) {
        message.replace(key, "[the key]")
    } else {
        message.to_owned()
    }
}

fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

fn describe_send_error(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "it did not answer in time"
    } else if e.is_connect() {
        "it could not be reached"
    } else {
        "the request failed"
    };
    format!("{what} ({})", causes(e))
}

/// An error's causes on one line: reqwest's own message ("error sending request for url …")
/// says little, the causes ("Connection refused", a TLS failure) are what an admin can act on.
fn causes(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

/// An answer that is not the page it should be (an HTML error page, a proxy's body).
fn not_a_page(provider: Provider, what: &str, e: &serde_json::Error) -> ProviderError {
    ProviderError::Unavailable {
        provider: label(provider),
        message: format!("answered with something that is not a {what} page: {e}"),
    }
}

/// Follows `next_page` while `has_more`, for at most [`MAX_PAGES`] pages.
struct Pager {
    provider: Provider,
    next: Option<String>,
    read: usize,
    done: bool,
}

impl Pager {
    fn new(provider: Provider) -> Pager {
        Pager {
            provider,
            next: None,
            read: 0,
            done: false,
        }
    }

    /// The query of the next page, or None when every page has been read.
    fn query(&self, base: &[(String, String)]) -> Option<Vec<(String, String)>> {
        if self.done {
            return None;
        }
        let mut query = base.to_vec();
        if let Some(token) = &self.next {
            query.push(("page".to_owned(), token.clone()));
        }
        Some(query)
    }

    fn advance(&mut self, has_more: bool, next_page: Option<String>) -> Result<(), ProviderError> {
        self.read += 1;
        let unavailable = |message: &str| ProviderError::Unavailable {
            provider: label(self.provider),
            message: message.to_owned(),
        };
        if !has_more {
            self.done = true;
            return Ok(());
        }
        let next = next_page
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unavailable("it said there are more pages but gave no next_page"))?;
        if self.next.as_deref() == Some(next.as_str()) {
            return Err(unavailable("it answered the same next_page twice"));
        }
        if self.read >= MAX_PAGES {
            return Err(unavailable(&format!(
                "it had more than {MAX_PAGES} pages for one request"
            )));
        }
        self.next = Some(next);
        Ok(())
    }
}

/// The UTC days `[from, to)` of an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Days {
    from: NaiveDate,
    to: NaiveDate,
}

impl Days {
    fn parse(provider: Provider, from: &str, to: &str) -> Result<Days, ProviderError> {
        let day = |s: &str| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| ProviderError::Invalid {
                provider: label(provider),
                // Never sent: nothing the provider said, the caller's range is wrong.
                status: 0,
                message: format!("{s:?} is not a day (YYYY-MM-DD)"),
            })
        };
        Ok(Days {
            from: day(from)?,
            to: day(to)?,
        })
    }

    fn contains(&self, day: NaiveDate) -> bool {
        self.from <= day && day < self.to
    }

    fn start_unix(&self) -> i64 {
        self.from
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp()
    }

    fn end_unix(&self) -> i64 {
        self.to
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp()
    }
}

/// Rows being built from usage and cost pages: one per day, model and scope.
struct Rows {
    provider: Provider,
    days: Days,
    rows: BTreeMap<(NaiveDate, String, String), BilledRow>,
}

impl Rows {
    fn new(provider: Provider, days: Days) -> Rows {
        Rows {
            provider,
            days,
            rows: BTreeMap::new(),
        }
    }

    /// The row of a bucket's day; None for a day outside the import's range, which a server
    /// should not send and which must not overwrite a day the caller did not ask for.
    fn row(&mut self, day: NaiveDate, model: &str, scope: &str) -> Option<&mut BilledRow> {
        if !self.days.contains(day) {
            return None;
        }
        let provider = self.provider;
        Some(
            self.rows
                .entry((day, model.to_owned(), scope.to_owned()))
                .or_insert_with(|| {
                    BilledRow::new(&day.format("%Y-%m-%d").to_string(), provider, model, scope)
                }),
        )
    }

    fn add_usage(
        &mut self,
        day: NaiveDate,
        model: &str,
        scope: &str,
        tokens: [u64; 4],
        requests: Option<u64>,
    ) {
        let Some(row) = self.row(day, model, scope) else {
            return;
        };
        for (sum, n) in row.tokens.iter_mut().zip(tokens) {
            *sum = sum.saturating_add(n);
        }
        if let Some(n) = requests {
            row.requests = Some(row.requests.unwrap_or(0).saturating_add(n));
        }
    }

    fn add_cost(
        &mut self,
        day: NaiveDate,
        model: &str,
        scope: &str,
        kind: Option<TokenKind>,
        pico: i128,
    ) {
        let Some(row) = self.row(day, model, scope) else {
            return;
        };
        row.cost_pico += pico;
        if let Some(kind) = kind {
            let part = &mut row.kind_cost_pico[kind.index()];
            *part = Some(part.unwrap_or(0) + pico);
        }
    }

    fn into_rows(self) -> Vec<BilledRow> {
        self.rows.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_the_providers_own() {
        let openai = r#"{"error":{"message":"Missing scopes: api.usage.read.","type":"invalid_request_error","param":null,"code":null}}"#;
        assert_eq!(error_message(openai), "Missing scopes: api.usage.read.");
        let anthropic = r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"},"request_id":"req_1"}"#;
        assert_eq!(error_message(anthropic), "invalid x-api-key");
        assert_eq!(error_message(""), "(no message)");
        assert_eq!(
            error_message("<html>Bad gateway</html>"),
            "<html>Bad gateway</html>"
        );
        assert_eq!(error_message(&"x".repeat(400)).chars().count(), 301);
    }

    #[test]
    fn keys_never_come_back() {
        let key = "sk-admin-abcdefghijklmnop";
        let body = format!(r#"{{"error":{{"message":"Incorrect API key provided: {key}."}}}}"#);
        let Failure::Final(error) = classify(
            Provider::OpenAi,
            key,
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            &body,
        ) else {
            panic!("a 401 is final");
        };
        assert!(!error.to_string().contains(key), "{error}");
        let hinted = hint_admin_key(Provider::OpenAi, "sk-proj-x", error.clone());
        assert!(
            hinted.to_string().contains("starts with sk-admin-"),
            "{hinted}"
        );
        assert_eq!(hint_admin_key(Provider::OpenAi, key, error.clone()), error);
        let client = ProviderClient::new("http://a/v1/", "http://b");
        let shown = format!("{client:?}");
        assert!(
            shown.contains("http://a/v1\"") && shown.contains("http://b"),
            "{shown}"
        );
    }

    #[test]
    fn statuses_are_sorted_into_refused_invalid_and_retried() {
        let h = HeaderMap::new();
        let final_status = |code: u16| match classify(
            Provider::Anthropic,
            "k",
            StatusCode::from_u16(code).unwrap(),
            &h,
            "{}",
        ) {
            Failure::Final(ProviderError::Refused { .. }) => "refused",
            Failure::Final(ProviderError::Invalid { .. }) => "invalid",
            Failure::Final(ProviderError::Unavailable { .. }) => "unavailable",
            Failure::Retry { .. } => "retry",
        };
        assert_eq!(final_status(401), "refused");
        assert_eq!(final_status(403), "refused");
        assert_eq!(final_status(400), "invalid");
        assert_eq!(final_status(404), "invalid");
        assert_eq!(final_status(429), "retry");
        assert_eq!(final_status(500), "retry");
        assert_eq!(final_status(529), "retry");
    }

    #[test]
    fn retry_after_headers() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "20".parse().unwrap());
        assert_eq!(
            retry_after(Provider::Anthropic, &h),
            Some(Duration::from_secs(20))
        );
        h.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(
            retry_after(Provider::OpenAi, &h),
            Some(Duration::from_millis(250))
        );
        // Anthropic does not send it; an OpenAI-only header is not read from it.
        assert_eq!(
            retry_after(Provider::Anthropic, &h),
            Some(Duration::from_secs(20))
        );
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(Provider::Anthropic, &h), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let first = policy.backoff(0);
        assert!(first <= Duration::from_millis(500) && first >= Duration::from_millis(375));
        let third = policy.backoff(2);
        assert!(third <= Duration::from_secs(2) && third >= Duration::from_millis(1500));
        assert!(policy.backoff(40) <= Duration::from_secs(30));
    }

    #[tokio::test]
    async fn unreachable_and_unusable() {
        // Nothing listens on port 1: refused at once, retried, then reported.
        let client = ProviderClient::new("http://127.0.0.1:1/v1", "http://127.0.0.1:1")
            .with_retry(RetryPolicy::fast());
        let error = client
            .billed(
                Provider::Anthropic,
                "sk-ant-admin01-x",
                &[],
                "2026-08-01",
                "2026-08-02",
            )
            .await
            .unwrap_err();
        let ProviderError::Unavailable { message, .. } = &error else {
            panic!("{error:?}");
        };
        assert!(message.starts_with("it could not be reached"), "{message}");
        assert!(message.ends_with("(after 5 tries)"), "{message}");
        // A key no header can carry is refused before anything is sent.
        let error = client
            .check(Provider::OpenAi, "sk-admin-a\nb", &[])
            .await
            .unwrap_err();
        assert!(
            matches!(error, ProviderError::Refused { status: 0, .. }),
            "{error:?}"
        );
        assert!(!error.to_string().contains("sk-admin-a"), "{error}");
        // Days are checked before anything is sent too; an empty range asks nothing.
        let error = client
            .billed(Provider::OpenAi, "k", &[], "08/01/2026", "2026-08-02")
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("\"08/01/2026\" is not a day"),
            "{error}"
        );
        let none = client
            .billed(Provider::OpenAi, "k", &[], "2026-08-02", "2026-08-02")
            .await
            .unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn pager_stops() {
        let mut pager = Pager::new(Provider::OpenAi);
        let base = vec![("limit".to_owned(), "1".to_owned())];
        assert_eq!(pager.query(&base).unwrap().len(), 1);
        pager.advance(true, Some("p1".into())).unwrap();
        assert_eq!(pager.query(&base).unwrap()[1].1, "p1");
        assert!(pager.advance(true, Some("p1".into())).is_err());
        let mut pager = Pager::new(Provider::OpenAi);
        assert!(pager.advance(true, None).is_err());
        let mut pager = Pager::new(Provider::OpenAi);
        pager.advance(false, Some("ignored".into())).unwrap();
        assert!(pager.query(&base).is_none());
        let mut pager = Pager::new(Provider::OpenAi);
        let mut result = Ok(());
        for i in 0..=MAX_PAGES {
            result = pager.advance(true, Some(format!("p{i}")));
            if result.is_err() {
                break;
            }
        }
        assert!(result.is_err(), "a server that never stops is cut off");
    }
}
