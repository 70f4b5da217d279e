//! Pricing from the bundled model price table (`shared/data/prices.json`).
//!
//! Token conventions (brief, section 3): `input_tokens` includes cached reads and cache writes;
//! `output_tokens` includes reasoning. So plain input = input - cached - cache_write, each part is
//! priced at its own rate, and reasoning is already inside output. A model with no price leaves the
//! cost unknown (None), never $0.

use std::sync::OnceLock;

use rustc_hash::FxHashMap;
use serde::Deserialize;

use super::event::Tokens;

/// Prices in micro-USD per million tokens, which is also picodollars per token: exact integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    pub input: i64,
    pub cached_input: i64,
    pub cache_write: i64,
    pub output: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelPrice {
    pub provider: String,
    pub model: String,
    pub rates: Rates,
    /// Rates that apply to the whole request when its input exceeds the threshold (long-context tiers).
    pub long_context: Option<(u64, Rates)>,
    pub source: String,
    pub as_of: String,
}

impl ModelPrice {
    /// Cost in picodollars of one call.
    /// Exact, in i128: the caller bounds it (an event's cost is at most `event::MAX_COST_USD`).
    pub fn cost_pico(&self, t: &Tokens) -> i128 {
        let rates = match self.long_context {
            Some((threshold, r)) if t.input > threshold => r,
            _ => self.rates,
        };
        let plain_input = t
            .input
            .saturating_sub(t.cached_input.saturating_add(t.cache_write));
        i128::from(plain_input) * i128::from(rates.input)
            + i128::from(t.cached_input) * i128::from(rates.cached_input)
            + i128::from(t.cache_write) * i128::from(rates.cache_write)
            + i128::from(t.output) * i128::from(rates.output)
    }
}

pub struct PriceTable {
    models: Vec<ModelPrice>,
    /// Every lowercase name (model id or alias) to its index in `models`.
    // Looked up once per event; the keys are the table's own names, so a fast hash is safe.
    names: FxHashMap<String, usize>,
}

#[derive(Deserialize)]
struct FileRates {
    input: f64,
    cached_input: Option<f64>,
    cache_write: Option<f64>,
    output: f64,
}

#[derive(Deserialize)]
struct FileLongContext {
    threshold: u64,
    #[serde(flatten)]
    rates: FileRates,
}

#[derive(Deserialize)]
struct FileEntry {
    provider: String,
    model: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(flatten)]
    rates: FileRates,
    long_context: Option<FileLongContext>,
    source: String,
    as_of: String,
}

#[derive(Deserialize)]
struct File {
    models: Vec<FileEntry>,
}

fn micro(usd_per_million: f64) -> i64 {
    (usd_per_million * 1_000_000.0).round() as i64
}

impl FileRates {
    /// Missing cache rates fall back to the plain input rate: a cached token never costs more than
    /// the provider says, and is never free unless the table says so.
    fn rates(&self) -> Rates {
        Rates {
            input: micro(self.input),
            cached_input: micro(self.cached_input.unwrap_or(self.input)),
            cache_write: micro(self.cache_write.unwrap_or(self.input)),
            output: micro(self.output),
        }
    }
}

const BUNDLED: &str = include_str!("../../data/prices.json");

/// Why a price table file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PriceTableError {
    #[error("price table: {0}")]
    Malformed(#[from] serde_json::Error),
    /// A model name or alias (as written) listed twice.
    #[error("price table: `{0}` is listed twice")]
    Duplicate(String),
}

impl PriceTable {
    pub fn parse(json: &str) -> Result<PriceTable, PriceTableError> {
        let file: File = serde_json::from_str(json)?;
        let mut models = Vec::with_capacity(file.models.len());
        let mut names = FxHashMap::default();
        for entry in file.models {
            let idx = models.len();
            for name in std::iter::once(&entry.model).chain(&entry.aliases) {
                if names.insert(name.to_ascii_lowercase(), idx).is_some() {
                    return Err(PriceTableError::Duplicate(name.clone()));
                }
            }
            models.push(ModelPrice {
                provider: entry.provider,
                model: entry.model,
                rates: entry.rates.rates(),
                long_context: entry.long_context.map(|l| (l.threshold, l.rates.rates())),
                source: entry.source,
                as_of: entry.as_of,
            });
        }
        Ok(PriceTable { models, names })
    }

    /// The table compiled into the binary; parsed once per process.
    pub fn bundled() -> &'static PriceTable {
        static TABLE: OnceLock<PriceTable> = OnceLock::new();
        TABLE.get_or_init(|| {
            PriceTable::parse(BUNDLED).expect("bundled price table is valid (checked by tests)")
        })
    }

    pub fn len(&self) -> usize {
        self.models.len()
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    pub fn models(&self) -> &[ModelPrice] {
        &self.models
    }

    /// Finds a model's price by its id, an alias, or a provider-decorated form of either:
    /// `models/gemini-2.5-pro`, `openai/gpt-4o`, `us.anthropic.claude-…-v2:0`, `claude-…@20241022`,
    /// or a dated version (`-2024-08-06`, `-20241022`, `-001`) of a listed model.
    pub fn lookup(&self, model: &str) -> Option<&ModelPrice> {
        if let Some(&i) = self.names.get(model) {
            return Some(&self.models[i]);
        }
        let lower = model.trim().to_ascii_lowercase();
        let mut candidate = lower.as_str();
        loop {
            if let Some(&i) = self.names.get(candidate) {
                return Some(&self.models[i]);
            }
            match strip_decoration(candidate) {
                Some(next) if next != candidate && !next.is_empty() => candidate = next,
                _ => return None,
            }
        }
    }
}

/// Removes one layer of decoration from a model name, or None when nothing is left to remove.
fn strip_decoration(name: &str) -> Option<&str> {
    // Routing prefixes: `models/…`, `openai/…`, Bedrock's `anthropic.…` and cross-region `us.…`.
    if let Some((_, rest)) = name.split_once('/') {
        return Some(rest);
    }
    for region in ["us.", "eu.", "apac.", "global."] {
        if let Some(rest) = name.strip_prefix(region) {
            return Some(rest);
        }
    }
    for vendor in [
        "anthropic.",
        "amazon.",
        "meta.",
        "mistral.",
        "cohere.",
        "ai21.",
        "deepseek.",
        "openai.",
    ] {
        if let Some(rest) = name.strip_prefix(vendor) {
            return Some(rest);
        }
    }
    // Bedrock version suffix `-v1:0`, and Vertex's `@20241022` / `@001`.
    if let Some((base, _)) = name.rsplit_once(':') {
        return Some(base.rsplit_once("-v").map_or(base, |(b, _)| b));
    }
    if let Some((base, _)) = name.rsplit_once('@') {
        return Some(base);
    }
    // Dated or numbered versions: `-2024-08-06`, `-20241022`, `-0125`, `-001`, `-latest`, `-preview`.
    if let Some(stripped) = strip_iso_date(name) {
        return Some(stripped);
    }
    let (base, last) = name.rsplit_once('-')?;
    let numeric = !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit());
    if (numeric && (last.len() == 8 || last.len() == 4 || last.len() == 3))
        || last == "latest"
        || last == "preview"
        || last == "exp"
    {
        return Some(base);
    }
    None
}

fn strip_iso_date(name: &str) -> Option<&str> {
    // `-YYYY-MM-DD` at the end.
    let n = name.len();
    if n < 11 {
        return None;
    }
    let tail = &name.as_bytes()[n - 11..];
    let shape = tail[0] == b'-'
        && tail[1..5].iter().all(u8::is_ascii_digit)
        && tail[5] == b'-'
        && tail[6..8].iter().all(u8::is_ascii_digit)
        && tail[8] == b'-'
        && tail[9..11].iter().all(u8::is_ascii_digit);
    shape.then(|| &name[..n - 11])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(input: u64, cached: u64, write: u64, output: u64, reasoning: u64) -> Tokens {
        Tokens {
            input,
            output,
            cached_input: cached,
            cache_write: write,
            reasoning,
        }
    }

    #[test]
    fn bundled_table_is_large_and_dated() {
        let t = PriceTable::bundled();
        assert!(t.len() >= 100, "only {} models", t.len());
        for m in t.models() {
            assert!(
                m.source.starts_with("https://"),
                "{} has no source",
                m.model
            );
            assert!(
                chrono::NaiveDate::parse_from_str(&m.as_of, "%Y-%m-%d").is_ok(),
                "{}",
                m.model
            );
            assert!(m.rates.input >= 0 && m.rates.output >= 0);
        }
    }

    #[test]
    fn cached_and_cache_write_tokens_are_priced_at_their_own_rates_only() {
        let table = PriceTable::parse(
            r#"{"models":[{"provider":"anthropic","model":"claude-x","aliases":[],"input":3.0,
            "cached_input":0.3,"cache_write":3.75,"output":15.0,"long_context":null,
            "source":"https://example.com","as_of":"2026-11-01"}]}"#,
        )
        .unwrap();
        let m = table.lookup("claude-x").unwrap();
        // 1000 input of which 600 cached and 100 written: 300 plain.
        let cost = m.cost_pico(&tokens(1000, 600, 100, 200, 50));
        let expected = 300 * 3_000_000 + 600 * 300_000 + 100 * 3_750_000 + 200 * 15_000_000;
        assert_eq!(cost, expected);
    }

    #[test]
    fn dated_versions_and_provider_decorations_resolve() {
        let table = PriceTable::parse(
            r#"{"models":[
              {"provider":"openai","model":"gpt-4o","aliases":[],"input":2.5,"cached_input":1.25,"cache_write":null,"output":10,"long_context":null,"source":"https://x","as_of":"2026-11-01"},
              {"provider":"anthropic","model":"claude-3-5-sonnet","aliases":["claude-3-5-sonnet-latest"],"input":3,"cached_input":0.3,"cache_write":3.75,"output":15,"long_context":null,"source":"https://x","as_of":"2026-11-01"},
              {"provider":"google","model":"gemini-1.5-pro","aliases":[],"input":1.25,"cached_input":null,"cache_write":null,"output":5,"long_context":{"threshold":128000,"input":2.5,"cached_input":null,"cache_write":null,"output":10},"source":"https://x","as_of":"2026-11-01"}
            ]}"#,
        )
        .unwrap();
        for name in [
            "gpt-4o-2024-08-06",
            "GPT-4o",
            "openai/gpt-4o",
            "anthropic.claude-3-5-sonnet-20241022-v2:0",
            "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
            "claude-3-5-sonnet@20241022",
            "models/gemini-1.5-pro-002",
        ] {
            assert!(table.lookup(name).is_some(), "{name} did not resolve");
        }
        assert!(table.lookup("gpt-5-ultra-imaginary").is_none());
        assert!(table.lookup("").is_none());
        let g = table.lookup("gemini-1.5-pro").unwrap();
        assert_eq!(
            g.cost_pico(&tokens(200_000, 0, 0, 0, 0)),
            200_000 * 2_500_000
        );
        assert_eq!(
            g.cost_pico(&tokens(100_000, 0, 0, 0, 0)),
            100_000 * 1_250_000
        );
    }
}
