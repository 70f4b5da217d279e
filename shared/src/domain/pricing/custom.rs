//! A workspace's own prices: rates that replace the table's for some models (a model the table
//! does not know, a private deployment) and negotiated discounts off the table's price, each with
//! the dates it applies between.
//!
//! Precedence for an event's cost (docs/PRICING.md): the client's cost, the provider's, then the
//! workspace's price (the most specific rule in force), then the bundled table.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wildmatch::WildMatch;

use super::{Pricing, ServiceTier, UsdPerMillion, host_spellings};
use crate::domain::event::Tokens;

/// Rules a workspace may hold: each event is checked against each of them.
pub const MAX_RULES: usize = 100;
/// The highest rate a rule may set (USD per million tokens), and so the largest cost it can give.
pub const MAX_RATE_USD_PER_MTOK: f64 = 100_000.0;

/// A workspace's rules, with the number of the change that made them: a change made from an
/// older number lost a race with another and is retried from the new one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkspacePrices {
    pub version: u64,
    pub rules: Vec<PriceRule>,
}

/// One rule: which events it prices, how, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PriceRule {
    /// `pr_…`
    pub id: String,
    /// The provider of the events it prices, in any spelling of it (`aws` also covers events
    /// sent as `bedrock`), or `*` for every provider.
    pub provider: String,
    /// The model: a name (case-insensitive; it also matches decorated forms that resolve to the
    /// same model, such as `openai/gpt-4o`), or a pattern with `*` (`claude-*`, `*`).
    pub model: String,
    /// The first day (UTC, `YYYY-MM-DD`) it applies; absent for all past events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_from: Option<String>,
    /// The day it stops applying (exclusive); absent while in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_to: Option<String>,
    #[serde(flatten)]
    pub price: RulePrice,
    /// Why: a contract reference, a deployment's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// RFC 3339: when the rule was made or last changed.
    pub updated_at: String,
}

/// What a rule charges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RulePrice {
    /// Rates that replace the table's, in USD per million tokens; a kind left out is charged at
    /// the kind it is part of (cached input at the input rate, reasoning at the output rate).
    Rates {
        rates: UsdPerMillion,
        /// Batch (and other tier) calls are charged this share of the rates, in percent
        /// (default 100: the same rates).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        batch_percent: Option<f64>,
    },
    /// A percentage off the table's price for every token kind and tier.
    Discount { percent: f64 },
}

impl WorkspacePrices {
    /// The rules made ready to price events with: dates, providers and patterns are worked out
    /// here once (per ingest request), not for every event.
    pub fn ready(&self) -> Rules<'_> {
        let mut rules: Vec<ReadyRule> = self
            .rules
            .iter()
            .map(|rule| ReadyRule {
                rule,
                id: Arc::from(rule.id.as_str()),
                from_ms: rule
                    .effective_from
                    .as_deref()
                    .and_then(day_start_ms)
                    .unwrap_or(i64::MIN),
                to_ms: rule
                    .effective_to
                    .as_deref()
                    .and_then(day_start_ms)
                    .unwrap_or(i64::MAX),
                any_provider: rule.provider == "*",
                spellings: host_spellings(&rule.provider).unwrap_or_default(),
                pattern: Pattern::of(&rule.model),
                charge: match &rule.price {
                    RulePrice::Rates {
                        rates,
                        batch_percent,
                    } => Charge::Rates(
                        Pricing {
                            rates: rates.rates(),
                            long_context: None,
                        },
                        *batch_percent,
                    ),
                    RulePrice::Discount { percent } => Charge::Discount(*percent),
                },
            })
            .collect();
        // Most specific first, so the first rule that matches an event is the one that prices it.
        rules.sort_by(|a, b| b.rank().cmp(&a.rank()));
        Rules { rules }
    }
}

/// A workspace's rules, ready to price events ([`WorkspacePrices::ready`]).
#[derive(Debug, Default)]
pub struct Rules<'a> {
    rules: Vec<ReadyRule<'a>>,
}

/// One rule, ready: what is looked at for each event, worked out.
#[derive(Debug)]
pub struct ReadyRule<'a> {
    pub rule: &'a PriceRule,
    /// Its id, shared with each event it prices.
    pub id: Arc<str>,
    from_ms: i64,
    to_ms: i64,
    any_provider: bool,
    /// Every spelling of the rule's provider (`bedrock` for `aws`...).
    spellings: &'static [&'static str],
    pattern: Option<Pattern>,
    charge: Charge,
}

/// What a ready rule charges: its rates in picodollars per token (with the batch share), or a
/// percentage off the table.
#[derive(Debug)]
enum Charge {
    Rates(Pricing, Option<f64>),
    Discount(f64),
}

/// A model pattern: the common shapes (`*`, `claude-*`) without the general matcher.
#[derive(Debug)]
enum Pattern {
    Any,
    /// Lowercase (rules are stored lowercase).
    Prefix(String),
    Wild(WildMatch),
}

impl Pattern {
    fn of(model: &str) -> Option<Pattern> {
        if !model.contains('*') {
            return None;
        }
        Some(match model.strip_suffix('*') {
            Some("") => Pattern::Any,
            Some(prefix) if !prefix.contains(['*', '?']) => {
                Pattern::Prefix(prefix.to_ascii_lowercase())
            }
            _ => Pattern::Wild(WildMatch::new_case_insensitive(model)),
        })
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Prefix(p) => name
                .get(..p.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(p)),
            Pattern::Wild(w) => w.matches(name),
        }
    }
}

impl<'a> Rules<'a> {
    /// No rules: what events are priced with outside a workspace (tests, benchmarks).
    pub fn none() -> &'static Rules<'static> {
        static NONE: Rules<'static> = Rules { rules: Vec::new() };
        &NONE
    }

    /// The rule in force for an event, if any: the most specific one (a model name over a
    /// pattern, a named provider over `*`, a longer pattern over a shorter), then the one that
    /// took effect last. `canonical` is the table's id for the model when the table prices it
    /// (`table_priced`); a discount needs the table's price, so it cannot price a model the table
    /// does not know.
    pub fn rule_for(
        &self,
        provider: &str,
        model: &str,
        canonical: Option<&str>,
        table_priced: bool,
        ts_ms: i64,
    ) -> Option<&ReadyRule<'a>> {
        if self.rules.is_empty() {
            return None;
        }
        let provider = provider.trim();
        let model = model.trim();
        self.rules.iter().find(|r| {
            ts_ms >= r.from_ms
                && ts_ms < r.to_ms
                && (table_priced || matches!(r.charge, Charge::Rates(..)))
                && (r.any_provider
                    || r.rule.provider.eq_ignore_ascii_case(provider)
                    || r.spellings.iter().any(|s| s.eq_ignore_ascii_case(provider)))
                && match &r.pattern {
                    Some(p) => p.matches(model) || canonical.is_some_and(|c| p.matches(c)),
                    None => {
                        r.rule.model.eq_ignore_ascii_case(model)
                            || canonical.is_some_and(|c| r.rule.model.eq_ignore_ascii_case(c))
                    }
                }
        })
    }
}

impl ReadyRule<'_> {
    /// A call's cost under this rule, in picodollars (unbounded: the caller bounds it); `table`
    /// is the table's pricing for the call's tier, which a discount applies to.
    pub fn cost_pico(
        &self,
        tier: ServiceTier,
        tokens: &Tokens,
        table: Option<&Pricing>,
    ) -> Option<i128> {
        match &self.charge {
            Charge::Rates(rates, batch_percent) => {
                let full = rates.cost_pico(tokens);
                Some(match (tier, batch_percent) {
                    (ServiceTier::Standard, _) | (_, None) => full,
                    (_, Some(p)) => share(full, *p),
                })
            }
            Charge::Discount(percent) => Some(share(table?.cost_pico(tokens), 100.0 - percent)),
        }
    }

    /// Ordered: exact names first, then named providers, then longer patterns, then the latest
    /// start, then the latest change.
    fn rank(&self) -> (bool, bool, usize, i64, &str) {
        (
            self.pattern.is_none(),
            !self.any_provider,
            self.rule.model.len(),
            self.from_ms,
            &self.rule.updated_at,
        )
    }
}

impl PriceRule {
    /// One line for the audit log: `pr_… openai/gpt-4o: 20% off, from 2026-01-01`.
    pub fn summary(&self) -> String {
        let what = match &self.price {
            RulePrice::Discount { percent } => format!("{percent}% off the table"),
            RulePrice::Rates { rates, .. } => format!(
                "${} in, ${} out per million tokens",
                rates.input, rates.output
            ),
        };
        let mut s = format!("{} {}/{}: {what}", self.id, self.provider, self.model);
        if let Some(from) = &self.effective_from {
            s.push_str(&format!(", from {from}"));
        }
        if let Some(to) = &self.effective_to {
            s.push_str(&format!(", until {to}"));
        }
        s
    }
}

/// `percent` of a cost, to the picodollar. Percentages are kept to 1/10,000 of a percent.
fn share(cost: i128, percent: f64) -> i128 {
    let parts = (percent * 10_000.0).round() as i128; // of 1,000,000
    (cost * parts + 500_000) / 1_000_000
}

/// Midnight UTC of a `YYYY-MM-DD` day, in milliseconds.
pub fn day_start_ms(day: &str) -> Option<i64> {
    chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .ok()
        .map(|d| {
            d.and_time(chrono::NaiveTime::MIN)
                .and_utc()
                .timestamp_millis()
        })
}

/// Why a rule was refused, with the field it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub field: &'static str,
    pub message: String,
}

fn refuse(field: &'static str, message: impl Into<String>) -> RuleError {
    RuleError {
        field,
        message: message.into(),
    }
}

impl PriceRule {
    /// Checks what a person wrote, and puts it in the stored form (trimmed, lowercase model).
    pub fn checked(mut self) -> Result<PriceRule, RuleError> {
        self.provider = self.provider.trim().to_owned();
        self.model = self.model.trim().to_ascii_lowercase();
        let text = |field, v: &str, max: usize| {
            if v.is_empty() || v.len() > max || v.chars().any(char::is_control) {
                Err(refuse(
                    field,
                    format!("`{field}` must be 1 to {max} characters without control characters"),
                ))
            } else {
                Ok(())
            }
        };
        text("provider", &self.provider, 64)?;
        text("model", &self.model, 200)?;
        if self.provider.contains('*') && self.provider != "*" {
            return Err(refuse(
                "provider",
                "`provider` is a provider's name (`openai`, `bedrock`...) or `*` for every provider",
            ));
        }
        if let Some(note) = &self.note
            && (note.chars().count() > 200 || note.chars().any(char::is_control))
        {
            return Err(refuse(
                "note",
                "`note` must be at most 200 characters without control characters",
            ));
        }
        let day = |field: &'static str, d: &Option<String>| match d {
            Some(d) => day_start_ms(d).map(Some).ok_or_else(|| {
                refuse(
                    field,
                    format!("`{field}` must be a date YYYY-MM-DD, got `{d}`"),
                )
            }),
            None => Ok(None),
        };
        let from = day("effective_from", &self.effective_from)?;
        let to = day("effective_to", &self.effective_to)?;
        if let (Some(from), Some(to)) = (from, to)
            && to <= from
        {
            return Err(refuse(
                "effective_to",
                "`effective_to` must be after `effective_from`",
            ));
        }
        match &self.price {
            RulePrice::Rates {
                rates,
                batch_percent,
            } => {
                for (field, v) in rates.each() {
                    if let Some(v) = v
                        && (!v.is_finite() || !(0.0..=MAX_RATE_USD_PER_MTOK).contains(&v))
                    {
                        return Err(refuse(
                            field,
                            format!(
                                "`rates.{}` must be between 0 and {MAX_RATE_USD_PER_MTOK} (USD per million tokens), got {v}",
                                &field["rates.".len()..]
                            ),
                        ));
                    }
                }
                if let Some(p) = batch_percent
                    && (!p.is_finite() || !(0.0..=100.0).contains(p))
                {
                    return Err(refuse(
                        "batch_percent",
                        format!("`batch_percent` must be between 0 and 100, got {p}"),
                    ));
                }
            }
            RulePrice::Discount { percent } => {
                if !(percent.is_finite() && *percent > 0.0 && *percent <= 100.0) {
                    return Err(refuse(
                        "percent",
                        format!("`percent` must be above 0 and at most 100, got {percent}"),
                    ));
                }
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests;
