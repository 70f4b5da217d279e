//! Reconciling what the providers billed with what LLMtrack's events say, per day, per model and
//! in total: coverage (the share of billed tokens LLMtrack saw), drift (computed cost minus billed
//! cost) and the likely cause of each gap. Sums stay in integers (tokens, picodollars) until the
//! answer is written.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use utoipa::ToSchema;

use super::money::pico_to_usd;
use super::{BilledRow, KindCounts, Provider, TokenKind};
use crate::domain::rollup::Rollup;

/// Below this share of billed tokens, events are taken to be missing.
pub const MISSING_BELOW_PCT: f64 = 95.0;
/// A billed rate this far from the table's (either way) is a price difference worth showing.
pub const PRICE_GAP_PCT: f64 = 2.0;

/// What LLMtrack's events say for one model and day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tracked {
    pub tokens: KindCounts,
    pub requests: u64,
    pub cost_pico: i128,
    /// Requests with no price: their cost is not in `cost_pico`.
    pub unpriced: u64,
}

impl Tracked {
    /// A rollup's counts by token kind. Events count cache reads and writes inside their input
    /// (`docs/INGEST.md`); providers bill them apart from the rest of the input.
    pub fn of(r: &Rollup) -> Tracked {
        let cached = r.cached_input_tokens.min(r.input_tokens);
        let written = r.cache_write_tokens.min(r.input_tokens - cached);
        Tracked {
            tokens: [
                r.input_tokens - cached - written,
                cached,
                written,
                r.output_tokens,
            ],
            requests: r.requests,
            cost_pico: r.cost_pico,
            unpriced: r.unpriced,
        }
    }

    pub fn add(&mut self, o: &Tracked) {
        add_counts(&mut self.tokens, o.tokens);
        self.requests = self.requests.saturating_add(o.requests);
        self.cost_pico += o.cost_pico;
        self.unpriced = self.unpriced.saturating_add(o.unpriced);
    }
}

fn add_counts(a: &mut KindCounts, b: KindCounts) {
    for (a, b) in a.iter_mut().zip(b) {
        *a = a.saturating_add(b);
    }
}

/// Tokens by kind, as answers name them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct KindTokens {
    pub input: u64,
    pub cached_input: u64,
    pub cache_write: u64,
    pub output: u64,
}

impl From<KindCounts> for KindTokens {
    fn from(t: KindCounts) -> KindTokens {
        KindTokens {
            input: t[0],
            cached_input: t[1],
            cache_write: t[2],
            output: t[3],
        }
    }
}

/// What the provider billed.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BilledFigures {
    pub tokens: KindTokens,
    pub total_tokens: u64,
    /// Requests, where the provider counts them (Anthropic's usage report does not).
    pub requests: Option<u64>,
    pub cost_usd: f64,
}

/// What LLMtrack's events say.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TrackedFigures {
    pub tokens: KindTokens,
    pub total_tokens: u64,
    pub requests: u64,
    /// LLMtrack's computed cost.
    pub cost_usd: f64,
    /// Requests LLMtrack could not price: their cost is missing from `cost_usd`.
    pub unpriced_requests: u64,
}

/// Why the figures differ, where it can be told.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Cause {
    /// `untracked_model`, `unpriced_model`, `missing_events`, `price_difference` or
    /// `not_tied_to_model`.
    pub kind: &'static str,
    pub message: String,
}

/// One comparison: billed against tracked, coverage, drift, causes.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Figures {
    pub billed: BilledFigures,
    pub tracked: TrackedFigures,
    /// The share of the provider's tokens LLMtrack saw, in percent; null when nothing was billed.
    pub coverage_pct: Option<f64>,
    /// LLMtrack's computed cost minus the billed cost.
    pub drift_usd: f64,
    /// `drift_usd` as a percentage of the billed cost; null when nothing was billed.
    pub drift_pct: Option<f64>,
    pub causes: Vec<Cause>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DayFigures {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ModelFigures {
    pub provider: Provider,
    /// As the provider names it; "" for costs not tied to a model (web search, code execution).
    pub model: String,
    /// The model as LLMtrack's breakdowns name it.
    pub tracked_model: String,
    #[serde(flatten)]
    pub figures: Figures,
}

/// A model whose billed rate for a kind of token differs from the price table in force.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PriceGap {
    pub provider: Provider,
    pub model: String,
    pub kind: TokenKind,
    /// The provider's cost for the kind divided by its tokens, in USD per million tokens.
    pub billed_usd_per_mtok: f64,
    /// The table's rate in force (standard tier); null for a model the table does not price.
    pub table_usd_per_mtok: Option<f64>,
    /// How far the billed rate is from the table's, in percent of the table's.
    pub difference_pct: Option<f64>,
    /// The billed tokens of that kind the rate was measured on.
    pub tokens: u64,
}

/// The whole comparison for a range of days.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Reconciliation {
    pub total: Figures,
    /// Every day of the range, oldest first.
    pub days: Vec<DayFigures>,
    /// Each billed model over the range, by billed cost, largest first.
    pub models: Vec<ModelFigures>,
    pub prices: Vec<PriceGap>,
}

/// What the comparison needs from the price table: the canonical name of a model as billed
/// (LLMtrack's breakdowns group by it), whether a tracked model is one a provider bills, and the
/// table's rate (picodollars per token) for a kind of token.
pub trait Prices {
    fn canonical(&self, provider: Provider, model: &str) -> String;
    fn billed_by(&self, provider: Provider, canonical: &str) -> bool;
    fn rate(&self, provider: Provider, model: &str, kind: TokenKind) -> Option<i64>;
    /// The rate of cache writes kept for an hour (Anthropic's); the 5-minute rate where the
    /// table has none.
    fn hour_write_rate(&self, provider: Provider, model: &str) -> Option<i64>;
}

impl Prices for crate::domain::pricing::PriceTable {
    fn canonical(&self, provider: Provider, model: &str) -> String {
        match self.lookup(provider.as_str(), model) {
            Some(m) => m.canonical.to_string(),
            None => model.trim().to_ascii_lowercase(),
        }
    }

    fn billed_by(&self, provider: Provider, canonical: &str) -> bool {
        self.lookup(provider.as_str(), canonical)
            .is_some_and(|m| *m.provider == *provider.as_str() && *m.canonical == *canonical)
    }

    fn rate(&self, provider: Provider, model: &str, kind: TokenKind) -> Option<i64> {
        let m = self.lookup(provider.as_str(), model)?;
        let r = m.latest().standard.rates;
        Some(match kind {
            TokenKind::Input => r.input,
            TokenKind::CachedInput => r.cached_input,
            TokenKind::CacheWrite => r.cache_write,
            TokenKind::Output => r.output,
        })
    }

    fn hour_write_rate(&self, provider: Provider, model: &str) -> Option<i64> {
        let r = self
            .lookup(provider.as_str(), model)?
            .latest()
            .standard
            .rates;
        Some(if r.cache_write_1h > 0 {
            r.cache_write_1h
        } else {
            r.cache_write
        })
    }
}

/// What the provider billed for one kind of token of a model: tokens, cost, and (cache writes)
/// the tokens kept for an hour.
#[derive(Debug, Clone, Copy, Default)]
struct KindCost {
    tokens: u64,
    cost: i128,
    hour: u64,
    /// Whether the cost API itemised this kind at all (else there is no billed rate).
    itemised: bool,
}

/// Sums for one cell of the comparison.
#[derive(Debug, Clone, Default)]
struct Cell {
    billed: KindCounts,
    billed_requests: Option<u64>,
    billed_cost: i128,
    tracked: Tracked,
}

impl Cell {
    fn add_billed(&mut self, r: &BilledRow) {
        self.add_bill(r.tokens, r.requests, r.cost_pico);
    }

    fn add(&mut self, o: &Cell) {
        self.add_bill(o.billed, o.billed_requests, o.billed_cost);
        self.tracked.add(&o.tracked);
    }

    fn add_bill(&mut self, tokens: KindCounts, requests: Option<u64>, cost: i128) {
        add_counts(&mut self.billed, tokens);
        if let Some(n) = requests {
            self.billed_requests = Some(self.billed_requests.unwrap_or(0).saturating_add(n));
        }
        self.billed_cost += cost;
    }

    fn figures(&self, causes: Vec<Cause>) -> Figures {
        let billed_total: u64 = self.billed.iter().sum();
        let tracked_total: u64 = self.tracked.tokens.iter().sum();
        let drift = self.tracked.cost_pico - self.billed_cost;
        Figures {
            billed: BilledFigures {
                tokens: self.billed.into(),
                total_tokens: billed_total,
                requests: self.billed_requests,
                cost_usd: pico_to_usd(self.billed_cost),
            },
            tracked: TrackedFigures {
                tokens: self.tracked.tokens.into(),
                total_tokens: tracked_total,
                requests: self.tracked.requests,
                cost_usd: pico_to_usd(self.tracked.cost_pico),
                unpriced_requests: self.tracked.unpriced,
            },
            coverage_pct: self.coverage(),
            drift_usd: pico_to_usd(drift),
            drift_pct: (self.billed_cost != 0)
                .then(|| round2(drift as f64 / self.billed_cost as f64 * 100.0)),
            causes,
        }
    }

    fn coverage(&self) -> Option<f64> {
        let billed: u64 = self.billed.iter().sum();
        let tracked: u64 = self.tracked.tokens.iter().sum();
        (billed > 0).then(|| round2(tracked as f64 / billed as f64 * 100.0))
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn usd(pico: i128) -> String {
    format!("${:.2}", pico_to_usd(pico))
}

/// Reconciles `billed` rows with `tracked` counts (per UTC day and model as LLMtrack names it)
/// over `days`. A tracked model counts when a provider bills it (a model sent to another host is
/// not the providers' to bill).
pub fn reconcile(
    billed: &[BilledRow],
    tracked: &[(String, String, Tracked)],
    days: &[String],
    prices: &dyn Prices,
) -> Reconciliation {
    // Each billed model, by provider and its name as billed; and which tracked name it has.
    let mut models: BTreeMap<(Provider, String), (String, Cell)> = BTreeMap::new();
    let mut by_day: BTreeMap<&str, Cell> =
        days.iter().map(|d| (d.as_str(), Cell::default())).collect();
    let mut kind_cost: BTreeMap<(Provider, String, TokenKind), KindCost> = BTreeMap::new();
    let providers: BTreeSet<Provider> = billed.iter().map(|r| r.provider).collect();
    for r in billed {
        let tracked_name = if r.model.is_empty() {
            String::new()
        } else {
            prices.canonical(r.provider, &r.model)
        };
        let entry = models
            .entry((r.provider, r.model.clone()))
            .or_insert_with(|| (tracked_name, Cell::default()));
        entry.1.add_billed(r);
        if let Some(day) = by_day.get_mut(r.day.as_str()) {
            day.add_billed(r);
        }
        // A model's tokens and its itemised costs may come in rows of different scopes (usage
        // of a project the cost API files elsewhere): the rate is over all of the model's rows.
        for kind in TokenKind::ALL {
            let e = kind_cost
                .entry((r.provider, r.model.clone(), kind))
                .or_default();
            e.tokens = e.tokens.saturating_add(r.tokens[kind.index()]);
            if kind == TokenKind::CacheWrite {
                e.hour = e.hour.saturating_add(r.cache_write_1h);
            }
            if let Some(cost) = r.kind_cost_pico[kind.index()] {
                e.cost += cost;
                e.itemised = true;
            }
        }
    }

    // Tracked counts go to the billed model of the same name; a tracked model a provider bills
    // but that the bill does not list gets a row of its own (billed nothing).
    let mut named: BTreeMap<String, (Provider, String)> = BTreeMap::new();
    for ((p, m), (t, _)) in &models {
        if !m.is_empty() {
            named.entry(t.clone()).or_insert((*p, m.clone()));
        }
    }
    for (day, model, t) in tracked {
        let key = match named.get(model) {
            Some(k) => k.clone(),
            None => match providers.iter().find(|p| prices.billed_by(**p, model)) {
                Some(p) => {
                    named.insert(model.clone(), (*p, model.clone()));
                    (*p, model.clone())
                }
                None => continue,
            },
        };
        models
            .entry(key)
            .or_insert_with(|| (model.clone(), Cell::default()))
            .1
            .tracked
            .add(t);
        if let Some(d) = by_day.get_mut(day.as_str()) {
            d.tracked.add(t);
        }
    }

    let mut total = Cell::default();
    let mut model_rows = Vec::with_capacity(models.len());
    for ((provider, model), (tracked_model, cell)) in &models {
        total.add(cell);
        model_rows.push(ModelFigures {
            provider: *provider,
            model: model.clone(),
            tracked_model: tracked_model.clone(),
            figures: cell.figures(model_causes(*provider, model, cell, &kind_cost, prices)),
        });
    }
    model_rows.sort_by(|a, b| {
        b.figures
            .billed
            .cost_usd
            .total_cmp(&a.figures.billed.cost_usd)
            .then_with(|| a.model.cmp(&b.model))
    });

    let day_rows: Vec<DayFigures> = by_day
        .iter()
        .map(|(day, cell)| DayFigures {
            day: (*day).to_owned(),
            figures: cell.figures(day_causes(cell)),
        })
        .collect();

    let prices_out = price_gaps(&kind_cost, prices);
    let mut causes = Vec::new();
    let short: Vec<&str> = day_rows
        .iter()
        .filter(|d| {
            d.figures
                .coverage_pct
                .is_some_and(|c| c < MISSING_BELOW_PCT)
        })
        .map(|d| d.day.as_str())
        .collect();
    if !short.is_empty() {
        causes.push(Cause {
            kind: "missing_events",
            message: format!(
                "{} of {} days have under {MISSING_BELOW_PCT}% of the billed tokens in events: {}",
                short.len(),
                day_rows.len(),
                list(&short)
            ),
        });
    }
    for m in &model_rows {
        for c in &m.figures.causes {
            if c.kind != "missing_events" {
                causes.push(c.clone());
            }
        }
    }
    Reconciliation {
        total: total.figures(causes),
        days: day_rows,
        models: model_rows,
        prices: prices_out,
    }
}

fn list(items: &[&str]) -> String {
    const SHOWN: usize = 5;
    let mut s = items
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        s.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    s
}

fn day_causes(cell: &Cell) -> Vec<Cause> {
    let billed: u64 = cell.billed.iter().sum();
    let tracked: u64 = cell.tracked.tokens.iter().sum();
    if billed == 0 {
        return Vec::new();
    }
    if tracked == 0 {
        return vec![Cause {
            kind: "missing_events",
            message: "no events reached LLMtrack for a day the provider billed".into(),
        }];
    }
    match cell.coverage() {
        Some(c) if c < MISSING_BELOW_PCT => vec![Cause {
            kind: "missing_events",
            message: format!("events carry {c}% of the tokens the provider billed"),
        }],
        _ => Vec::new(),
    }
}

fn model_causes(
    provider: Provider,
    model: &str,
    cell: &Cell,
    kind_cost: &BTreeMap<(Provider, String, TokenKind), KindCost>,
    prices: &dyn Prices,
) -> Vec<Cause> {
    let mut out = Vec::new();
    let billed: u64 = cell.billed.iter().sum();
    let tracked: u64 = cell.tracked.tokens.iter().sum();
    if model.is_empty() {
        out.push(Cause {
            kind: "not_tied_to_model",
            message: format!(
                "{} billed for usage not tied to a model (web search, code execution, other \
                 line items), which events do not carry",
                usd(cell.billed_cost)
            ),
        });
        return out;
    }
    if billed > 0 && tracked == 0 {
        out.push(Cause {
            kind: "untracked_model",
            message: format!("LLMtrack received no events for {model}, which the provider billed"),
        });
    } else if let Some(c) = cell.coverage().filter(|c| *c < MISSING_BELOW_PCT) {
        out.push(Cause {
            kind: "missing_events",
            message: format!("events carry {c}% of the {model} tokens the provider billed"),
        });
    }
    if cell.tracked.unpriced > 0 {
        out.push(Cause {
            kind: "unpriced_model",
            message: format!(
                "{} {model} requests had no price, so LLMtrack's cost leaves them out: add a \
                 workspace price",
                cell.tracked.unpriced
            ),
        });
    }
    for kind in TokenKind::ALL {
        if let Some(gap) = gap(provider, model, kind, kind_cost, prices)
            && gap.difference_pct.is_some_and(|d| d.abs() >= PRICE_GAP_PCT)
        {
            out.push(Cause {
                kind: "price_difference",
                message: format!(
                    "{model} {} billed at ${:.4}/MTok, the table says ${:.4}/MTok",
                    kind.as_str().replace('_', " "),
                    gap.billed_usd_per_mtok,
                    gap.table_usd_per_mtok.unwrap_or_default()
                ),
            });
        }
    }
    out
}

fn gap(
    provider: Provider,
    model: &str,
    kind: TokenKind,
    kind_cost: &BTreeMap<(Provider, String, TokenKind), KindCost>,
    prices: &dyn Prices,
) -> Option<PriceGap> {
    let &KindCost {
        tokens,
        cost,
        hour,
        itemised,
    } = kind_cost.get(&(provider, model.to_owned(), kind))?;
    if tokens == 0 || model.is_empty() || !itemised {
        return None;
    }
    // Picodollars per token are micro-dollars per million tokens.
    let billed = cost as f64 / tokens as f64 / 1e6;
    let table = prices.rate(provider, model, kind).map(|r| {
        // Cache writes: the 5-minute and hour-long rates, weighed by the tokens of each.
        let hour = hour.min(tokens);
        let hour_rate = match kind {
            TokenKind::CacheWrite => prices.hour_write_rate(provider, model).unwrap_or(r),
            _ => r,
        };
        ((tokens - hour) as f64 * r as f64 + hour as f64 * hour_rate as f64) / tokens as f64 / 1e6
    });
    Some(PriceGap {
        provider,
        model: model.to_owned(),
        kind,
        billed_usd_per_mtok: (billed * 1e6).round() / 1e6,
        table_usd_per_mtok: table,
        difference_pct: table
            .filter(|t| *t > 0.0)
            .map(|t| round2((billed - t) / t * 100.0)),
        tokens,
    })
}

fn price_gaps(
    kind_cost: &BTreeMap<(Provider, String, TokenKind), KindCost>,
    prices: &dyn Prices,
) -> Vec<PriceGap> {
    kind_cost
        .keys()
        .filter_map(|(p, m, k)| gap(*p, m, *k, kind_cost, prices))
        .filter(|g| g.difference_pct.is_none_or(|d| d.abs() >= PRICE_GAP_PCT))
        .collect()
}

#[cfg(test)]
mod tests;
