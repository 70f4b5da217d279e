//! The FOCUS cost export: usage as rows of the FinOps Open Cost and Usage Specification (FOCUS
//! 1.2), so finance tools that read cloud bills read LLM spend the same way, tags included.
//!
//! One row per UTC day, provider, model, API key source, feature and tag values: the grain a
//! chargeback needs, far coarser than events. Columns FOCUS defines that have no meaning here
//! (regions, commitments, capacity reservations) are left out or empty, as the specification
//! allows for columns that do not apply; LLMtrack's own measures ride in `x_` columns, as its
//! extension rules ask.

use std::collections::BTreeMap;

use chrono::{Datelike, TimeZone, Utc};

use super::event::Event;
use super::tags::TagKeys;
use super::time::{DAY_MS, rfc3339};

/// The FOCUS version the columns follow.
pub const FOCUS_VERSION: &str = "1.2";

/// Columns in order: the FOCUS ones (alphabetical, as the specification lists them), then
/// LLMtrack's.
pub const HEADER: [&str; 41] = [
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
    "x_Feature",
    "x_Requests",
    "x_Errors",
    "x_InputTokens",
    "x_OutputTokens",
    "x_CachedInputTokens",
    "x_UnpricedRequests",
];

/// What one row adds up: every event with the same day, provider, model, source, feature and
/// tags.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RowKey {
    pub day: i64,
    pub provider: String,
    pub model: String,
    pub source: String,
    pub feature: String,
    /// (key, value) of the tags the events carry, by key.
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowSums {
    pub requests: u64,
    pub errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cost_pico: i128,
    pub unpriced: u64,
}

/// Rows being summed from events, at most `max_rows` of them.
#[derive(Debug, Default)]
pub struct Rows {
    pub rows: BTreeMap<RowKey, RowSums>,
}

impl Rows {
    /// Adds an event; false (adding nothing) when it would make more than `max_rows` rows.
    pub fn add(&mut self, e: &Event, tags: &TagKeys, max_rows: usize) -> bool {
        let key = RowKey {
            day: e.ts_ms.div_euclid(DAY_MS),
            provider: e.provider.clone(),
            model: e.canonical_model().to_owned(),
            source: e.source.clone(),
            feature: e.feature.clone().unwrap_or_default(),
            tags: e
                .tags
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .filter_map(|(slot, v)| {
                    let k = tags.keys.iter().find(|k| k.slot == *slot)?;
                    // A slot that held another key then: not this key's value.
                    (e.ts_ms >= k.since_ms()).then(|| (k.key.clone(), v.clone()))
                })
                .collect(),
        };
        if !self.rows.contains_key(&key) && self.rows.len() >= max_rows {
            return false;
        }
        let r = self.rows.entry(key).or_default();
        r.requests += 1;
        r.errors += u64::from(e.status == super::event::Status::Error);
        r.input_tokens = r.input_tokens.saturating_add(e.tokens.input);
        r.output_tokens = r.output_tokens.saturating_add(e.tokens.output);
        r.cached_input_tokens = r.cached_input_tokens.saturating_add(e.tokens.cached_input);
        match e.cost_pico {
            Some(c) => r.cost_pico += i128::from(c),
            None => r.unpriced += 1,
        }
        true
    }
}

/// The workspace a file is about: FOCUS's billing account.
pub struct Account<'a> {
    pub id: &'a str,
    pub name: &'a str,
}

/// USD with up to 10 decimals (cost is kept in picodollars), no trailing zeros.
pub fn usd(pico: i128) -> String {
    let sign = if pico < 0 { "-" } else { "" };
    let p = pico.unsigned_abs();
    let whole = p / 1_000_000_000_000;
    let frac = (p % 1_000_000_000_000) / 100;
    let frac = format!("{frac:010}");
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{frac}")
    }
}

/// How a provider id (`openai`, `aws.bedrock`) is named in a bill: (company, service).
fn names(provider: &str) -> (String, String) {
    let known = match provider {
        "openai" => Some(("OpenAI", "OpenAI API")),
        "anthropic" => Some(("Anthropic", "Claude API")),
        "google" | "gcp.gemini" | "gemini" => Some(("Google", "Gemini API")),
        "gcp.vertex_ai" | "vertex_ai" => Some(("Google", "Vertex AI")),
        "aws.bedrock" | "bedrock" => Some(("Amazon Web Services", "Amazon Bedrock")),
        "azure.ai.openai" | "azure" => Some(("Microsoft", "Azure OpenAI")),
        "azure.ai.inference" => Some(("Microsoft", "Azure AI Foundry")),
        "mistral_ai" | "mistral" => Some(("Mistral AI", "Mistral API")),
        "cohere" => Some(("Cohere", "Cohere API")),
        "deepseek" => Some(("DeepSeek", "DeepSeek API")),
        "groq" => Some(("Groq", "GroqCloud")),
        "x_ai" | "xai" => Some(("xAI", "xAI API")),
        "openrouter" => Some(("OpenRouter", "OpenRouter")),
        "perplexity" => Some(("Perplexity", "Perplexity API")),
        _ => None,
    };
    match known {
        Some((c, s)) => (c.to_owned(), s.to_owned()),
        None => (provider.to_owned(), format!("{provider} API")),
    }
}

fn day_start(day: i64) -> i64 {
    day * DAY_MS
}

/// The UTC calendar month around a day: `[start, end)` in epoch ms.
fn month_bounds(day: i64) -> (i64, i64) {
    let d = super::time::to_datetime(day_start(day));
    let start = Utc
        .with_ymd_and_hms(d.year(), d.month(), 1, 0, 0, 0)
        .single()
        .map_or(day_start(day), |t| t.timestamp_millis());
    (
        start,
        super::time::next_month_start(day_start(day)).timestamp_millis(),
    )
}

/// FOCUS wants date-times in UTC, ISO 8601, to the second.
fn when(ts_ms: i64) -> String {
    let s = rfc3339(ts_ms);
    // `2026-11-01T00:00:00.000Z` → `2026-11-01T00:00:00Z`
    match s.split_once('.') {
        Some((head, _)) => format!("{head}Z"),
        None => s,
    }
}

/// One row's cells, in [`HEADER`]'s order.
pub fn cells(account: &Account, k: &RowKey, r: &RowSums) -> Vec<String> {
    let cost = usd(r.cost_pico);
    let (company, service) = names(&k.provider);
    let (period_start, period_end) = month_bounds(k.day);
    let tokens = r.input_tokens.saturating_add(r.output_tokens).to_string();
    let tags = serde_json::Value::Object(
        k.tags
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
    )
    .to_string();
    let description = format!(
        "{} via {}: {} requests{}",
        k.model,
        k.provider,
        r.requests,
        if k.feature.is_empty() {
            String::new()
        } else {
            format!(" for feature {}", k.feature)
        }
    );
    vec![
        cost.clone(),
        account.id.to_owned(),
        account.name.to_owned(),
        "USD".to_owned(),
        when(period_end),
        when(period_start),
        "Usage".to_owned(),
        String::new(),
        description,
        "Usage-Based".to_owned(),
        when(day_start(k.day + 1)),
        when(day_start(k.day)),
        tokens.clone(),
        "Tokens".to_owned(),
        cost.clone(),
        cost.clone(),
        company.clone(),
        cost,
        "Standard".to_owned(),
        tokens,
        "Tokens".to_owned(),
        company.clone(),
        company,
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        "AI and Machine Learning".to_owned(),
        service,
        "Generative AI".to_owned(),
        k.model.clone(),
        k.source.clone(),
        k.source.clone(),
        tags,
        k.feature.clone(),
        r.requests.to_string(),
        r.errors.to_string(),
        r.input_tokens.to_string(),
        r.output_tokens.to_string(),
        r.cached_input_tokens.to_string(),
        r.unpriced.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_exact_to_the_tenth_decimal() {
        assert_eq!(usd(0), "0");
        assert_eq!(usd(1_500_000_000_000), "1.5");
        assert_eq!(usd(123), "0.0000000001");
        assert_eq!(usd(-2_000_000_000_000), "-2");
        assert_eq!(usd(12_345_678_900_000), "12.3456789");
    }

    #[test]
    fn a_row_names_its_day_month_provider_and_tags() {
        let day = 20_423; // 2025-12-01
        let k = RowKey {
            day,
            provider: "openai".into(),
            model: "gpt-4o".into(),
            source: "production".into(),
            feature: "search".into(),
            tags: vec![("team".into(), "growth".into())],
        };
        let r = RowSums {
            requests: 3,
            input_tokens: 100,
            output_tokens: 20,
            cost_pico: 2_500_000_000,
            ..RowSums::default()
        };
        let row: BTreeMap<&str, String> = HEADER
            .into_iter()
            .zip(cells(
                &Account {
                    id: "ws_1",
                    name: "Acme",
                },
                &k,
                &r,
            ))
            .collect();
        assert_eq!(row.len(), HEADER.len());
        assert_eq!(row["BilledCost"], "0.0025");
        assert_eq!(row["ChargePeriodStart"], "2025-12-01T00:00:00Z");
        assert_eq!(row["ChargePeriodEnd"], "2025-12-02T00:00:00Z");
        assert_eq!(row["BillingPeriodStart"], "2025-12-01T00:00:00Z");
        assert_eq!(row["BillingPeriodEnd"], "2026-01-01T00:00:00Z");
        assert_eq!(row["ProviderName"], "OpenAI");
        assert_eq!(row["ServiceCategory"], "AI and Machine Learning");
        assert_eq!(row["PricingQuantity"], "120");
        assert_eq!(row["Tags"], r#"{"team":"growth"}"#);
        assert_eq!(row["SubAccountId"], "production");
    }
}
