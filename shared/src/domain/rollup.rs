//! Rollups: pre-aggregated counters and a latency sketch per (workspace, UTC hour, view, value).
//! Ingest folds each batch into deltas and the store merges them; dashboards read only rollups.
//!
//! A *view* is what a rollup is grouped by: one dimension over the whole workspace (`model`), or
//! one dimension within one feature or one source (`model` for feature `search`). The views are
//! chosen so that every question the dashboard asks — by any dimension, alone or for one feature
//! or one source — reads one view; `domain::analytics` answers other combinations from raw events.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::event::{Event, Status};
use super::sketch::LatencySketch;
use super::time::hour_of;

/// A property of an event that usage can be grouped or filtered by. `Total` has one value (the
/// empty string): the whole workspace. An event without a feature or end-user has the value "".
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
    User,
}

impl Dimension {
    pub const ALL: [Dimension; 7] = [
        Dimension::Total,
        Dimension::Provider,
        Dimension::Model,
        Dimension::Feature,
        Dimension::Source,
        Dimension::Status,
        Dimension::User,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Total => "total",
            Dimension::Provider => "provider",
            Dimension::Model => "model",
            Dimension::Feature => "feature",
            Dimension::Source => "source",
            Dimension::Status => "status",
            Dimension::User => "user",
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
            Dimension::User => e.user_id.as_deref().unwrap_or(""),
        }
    }
}

/// The views every event is folded into, as (within, by): `within` is `Total` for the
/// workspace-wide views, or the dimension (feature or source) whose one value the view is for.
pub const VIEWS: [(Dimension, Dimension); 17] = {
    use Dimension::*;
    [
        (Total, Total),
        (Total, Provider),
        (Total, Model),
        (Total, Feature),
        (Total, Source),
        (Total, Status),
        (Total, User),
        (Feature, Provider),
        (Feature, Model),
        (Feature, Source),
        (Feature, Status),
        (Feature, User),
        (Source, Provider),
        (Source, Model),
        (Source, Feature),
        (Source, Status),
        (Source, User),
    ]
};

/// One view: rollups grouped `by` a dimension, optionally `within` one value of another.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct View {
    pub by: Dimension,
    pub within: Option<(Dimension, String)>,
}

impl View {
    pub fn of(by: Dimension) -> View {
        View { by, within: None }
    }

    pub fn within(by: Dimension, within: Dimension, value: impl Into<String>) -> View {
        View {
            by,
            within: Some((within, value.into())),
        }
    }

    /// Views written synchronously by every store. The others have many values per batch (one
    /// per end-user, or per pair of values), so the DynamoDB store folds them in the background
    /// to stay within its write budget (see `adapters::dynamodb`).
    pub fn is_core(&self) -> bool {
        self.within.is_none() && self.by != Dimension::User
    }

    /// Storage name: `model`, or `model@feature:search`. The free-form value comes last, so the
    /// encoding is unambiguous without escaping.
    pub fn encode(&self) -> String {
        match &self.within {
            None => self.by.as_str().to_owned(),
            Some((d, v)) => format!("{}@{}:{v}", self.by.as_str(), d.as_str()),
        }
    }

    pub fn decode(s: &str) -> Option<View> {
        match s.split_once('@') {
            None => Dimension::parse(s).map(View::of),
            Some((by, rest)) => {
                let (d, v) = rest.split_once(':')?;
                Some(View::within(Dimension::parse(by)?, Dimension::parse(d)?, v))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RollupKey {
    /// Epoch hours (UTC).
    pub hour: i64,
    pub view: View,
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

/// Folds events into one delta per rollup key they touch: every view, every hour.
pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> HashMap<RollupKey, Rollup> {
    Groups::of(events).views(|_| true)
}

/// Events grouped by what the views are made of: identical (hour, provider, model, feature,
/// source, status), and identical (hour, feature, source, user).
///
/// Adding an event to 17 views one by one costs 17 sketch insertions; instead each event is
/// added to its two groups and the views are merged from the groups, which are far fewer than
/// events in a real batch. This keeps ingest within its CPU budget. The groups are also the
/// compact form of a batch's deltas (the DynamoDB store keeps them until compaction): a view
/// key repeats its group's values in up to five views.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Groups {
    /// (hour, [provider, model, feature, source, status])
    pub fine: Vec<(i64, [String; 5], Rollup)>,
    /// (hour, [feature, source, user])
    pub users: Vec<(i64, [String; 3], Rollup)>,
}

impl Groups {
    pub fn of<'a>(events: impl IntoIterator<Item = &'a Event>) -> Groups {
        // Keyed by borrowed strings so the hot loop allocates only for a group's first event.
        let mut fine: HashMap<(i64, [&'a str; 5]), Rollup> = HashMap::new();
        let mut users: HashMap<(i64, [&'a str; 3]), Rollup> = HashMap::new();
        for e in events {
            let hour = hour_of(e.ts_ms);
            let f = Dimension::Feature.value_of(e);
            let s = e.source.as_str();
            fine.entry((hour, [&e.provider, &e.model, f, s, e.status.as_str()]))
                .or_default()
                .add_event(e);
            users
                .entry((hour, [f, s, Dimension::User.value_of(e)]))
                .or_default()
                .add_event(e);
        }
        Groups {
            fine: fine
                .into_iter()
                .map(|((h, k), r)| (h, k.map(str::to_owned), r))
                .collect(),
            users: users
                .into_iter()
                .map(|((h, k), r)| (h, k.map(str::to_owned), r))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fine.is_empty() && self.users.is_empty()
    }

    /// Adds another set of groups (deltas of several batches folded at once).
    pub fn extend(&mut self, other: Groups) {
        self.fine.extend(other.fine);
        self.users.extend(other.users);
    }

    /// The deltas of every view `keep` selects.
    pub fn views(&self, keep: impl Fn(&View) -> bool) -> HashMap<RollupKey, Rollup> {
        let mut out: HashMap<RollupKey, Rollup> = HashMap::new();
        let mut put = |hour: i64,
                       within: Dimension,
                       within_value: &str,
                       by: Dimension,
                       value: &str,
                       r: &Rollup| {
            let view = if within == Dimension::Total {
                View::of(by)
            } else {
                View::within(by, within, within_value)
            };
            if keep(&view) {
                let key = RollupKey {
                    hour,
                    view,
                    value: value.to_owned(),
                };
                out.entry(key).or_default().merge(r);
            }
        };
        for (hour, [provider, model, feature, source, status], r) in &self.fine {
            let value = |d: Dimension| match d {
                Dimension::Total => "",
                Dimension::Provider => provider,
                Dimension::Model => model,
                Dimension::Feature => feature,
                Dimension::Source => source,
                Dimension::Status => status,
                Dimension::User => "",
            };
            for (within, by) in VIEWS.iter().filter(|(_, by)| *by != Dimension::User) {
                put(*hour, *within, value(*within), *by, value(*by), r);
            }
        }
        for (hour, [feature, source, user], r) in &self.users {
            put(*hour, Dimension::Total, "", Dimension::User, user, r);
            put(*hour, Dimension::Feature, feature, Dimension::User, user, r);
            put(*hour, Dimension::Source, source, Dimension::User, user, r);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_names_round_trip_whatever_the_value() {
        for v in [
            View::of(Dimension::Model),
            View::within(Dimension::Model, Dimension::Feature, "a@b:c"),
            View::within(Dimension::User, Dimension::Source, ""),
        ] {
            assert_eq!(View::decode(&v.encode()), Some(v.clone()));
        }
        assert_eq!(View::decode("nope"), None);
        assert_eq!(View::decode("model@colour:red"), None);
    }
}
