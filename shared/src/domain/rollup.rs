//! Rollups: pre-aggregated counters and a latency sketch per (workspace, UTC hour, dimension value).
//! Ingest folds each batch into deltas and the store merges them; dashboards read only rollups.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::event::{Event, Status};
use super::sketch::LatencySketch;
use super::time::hour_of;

/// What a rollup is grouped by. `Total` has one value (the empty string): the whole workspace.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Dimension {
    Total,
    Provider,
    Model,
    Feature,
    Source,
    Status,
}

impl Dimension {
    pub const ALL: [Dimension; 6] = [
        Dimension::Total,
        Dimension::Provider,
        Dimension::Model,
        Dimension::Feature,
        Dimension::Source,
        Dimension::Status,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Total => "total",
            Dimension::Provider => "provider",
            Dimension::Model => "model",
            Dimension::Feature => "feature",
            Dimension::Source => "source",
            Dimension::Status => "status",
        }
    }

    pub fn parse(s: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// The event's value for this dimension ("" when the event has none).
    pub fn value_of(self, e: &Event) -> &str {
        match self {
            Dimension::Total => "",
            Dimension::Provider => &e.provider,
            Dimension::Model => &e.model,
            Dimension::Feature => e.feature.as_deref().unwrap_or(""),
            Dimension::Source => &e.source,
            Dimension::Status => e.status.as_str(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RollupKey {
    /// Epoch hours (UTC).
    pub hour: i64,
    pub dimension: Dimension,
    pub value: String,
}

/// Counters of one rollup. Cost is in picodollars (1e-12 USD) so sums are exact integers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Rollup {
    pub requests: u64,
    pub errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost_pico: i64,
    /// Events whose cost is unknown (no `cost_usd` and no price for the model): never counted as $0.
    pub unpriced: u64,
    pub latency: LatencySketch,
}

impl Rollup {
    pub fn add_event(&mut self, e: &Event) {
        self.requests += 1;
        self.errors += u64::from(e.status == Status::Error);
        self.input_tokens += e.tokens.input;
        self.output_tokens += e.tokens.output;
        self.cached_input_tokens += e.tokens.cached_input;
        self.cache_write_tokens += e.tokens.cache_write;
        self.reasoning_tokens += e.tokens.reasoning;
        match e.cost_pico {
            Some(c) => self.cost_pico += c,
            None => self.unpriced += 1,
        }
        if let Some(l) = e.latency_ms {
            self.latency.add(l);
        }
    }

    pub fn merge(&mut self, o: &Rollup) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cached_input_tokens += o.cached_input_tokens;
        self.cache_write_tokens += o.cache_write_tokens;
        self.reasoning_tokens += o.reasoning_tokens;
        self.cost_pico += o.cost_pico;
        self.unpriced += o.unpriced;
        self.latency.merge(&o.latency);
    }

    /// Exact equality of counters, distribution equality of the sketch.
    pub fn same_as(&self, o: &Rollup) -> bool {
        self.requests == o.requests
            && self.errors == o.errors
            && self.input_tokens == o.input_tokens
            && self.output_tokens == o.output_tokens
            && self.cached_input_tokens == o.cached_input_tokens
            && self.cache_write_tokens == o.cache_write_tokens
            && self.reasoning_tokens == o.reasoning_tokens
            && self.cost_pico == o.cost_pico
            && self.unpriced == o.unpriced
            && self.latency.same_distribution(&o.latency)
    }

    /// Compact binary form for storage (postcard: varints, so small counters take a byte).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Rollup> {
        postcard::from_bytes(bytes).ok()
    }
}

/// Folds events into one delta per rollup key they touch: every dimension, every hour.
pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> BTreeMap<RollupKey, Rollup> {
    // Grouped by (hour, dimension) first so the value lookup borrows a &str: no allocation per event.
    let mut groups: BTreeMap<(i64, Dimension), BTreeMap<String, Rollup>> = BTreeMap::new();
    for e in events {
        let hour = hour_of(e.ts_ms);
        for dimension in Dimension::ALL {
            let values = groups.entry((hour, dimension)).or_default();
            let value = dimension.value_of(e);
            match values.get_mut(value) {
                Some(r) => r.add_event(e),
                None => values.entry(value.to_owned()).or_default().add_event(e),
            }
        }
    }
    groups
        .into_iter()
        .flat_map(|((hour, dimension), values)| {
            values.into_iter().map(move |(value, r)| {
                (
                    RollupKey {
                        hour,
                        dimension,
                        value,
                    },
                    r,
                )
            })
        })
        .collect()
}
