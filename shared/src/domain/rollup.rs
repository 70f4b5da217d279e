//! Rollups: pre-aggregated counters and a latency sketch per (workspace, UTC hour, view, value).
//! Ingest folds each batch into deltas and the store merges them; dashboards read only rollups.
//!
//! A *view* is what a rollup is grouped by: one dimension over the whole workspace (`model`), or
//! one dimension within one feature or one source (`model` for feature `search`). The views are
//! chosen so that every question the dashboard asks — by any dimension, alone or for one feature
//! or one source — reads one view; `domain::analytics` answers other combinations from raw events.

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::event::{CostSource, Event, Status};
use super::sketch::{LatencySketch, Slim};
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
    /// The canonical model (`gpt-4o` for `openai/gpt-4o` and `GPT-4o`): what it was priced as.
    Model,
    /// The model name as sent, one canonical model's spellings apart.
    #[serde(rename = "model_sent")]
    ModelSent,
    Feature,
    Source,
    Status,
    User,
    /// The workspace's cost-allocation tag keys, by slot (`domain::tags`): which key a slot
    /// holds, and from which hour, is on the workspace record. Only workspace-wide views.
    Tag1,
    Tag2,
    Tag3,
}

impl Dimension {
    /// The dimensions every event has, whatever its workspace declared.
    pub const BUILT_IN: [Dimension; 8] = [
        Dimension::Total,
        Dimension::Provider,
        Dimension::Model,
        Dimension::ModelSent,
        Dimension::Feature,
        Dimension::Source,
        Dimension::Status,
        Dimension::User,
    ];
    pub const TAGS: [Dimension; super::tags::MAX_TAG_KEYS] =
        [Dimension::Tag1, Dimension::Tag2, Dimension::Tag3];

    pub const ALL: [Dimension; 11] = {
        let mut all = [Dimension::Total; 11];
        let mut i = 0;
        while i < all.len() {
            all[i] = if i < Self::BUILT_IN.len() {
                Self::BUILT_IN[i]
            } else {
                Self::TAGS[i - Self::BUILT_IN.len()]
            };
            i += 1;
        }
        all
    };

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Total => "total",
            Dimension::Provider => "provider",
            Dimension::Model => "model",
            Dimension::ModelSent => "model_sent",
            Dimension::Feature => "feature",
            Dimension::Source => "source",
            Dimension::Status => "status",
            Dimension::User => "user",
            Dimension::Tag1 => "tag1",
            Dimension::Tag2 => "tag2",
            Dimension::Tag3 => "tag3",
        }
    }

    /// The tag slot (1 to 3) this dimension is, if a tag.
    pub fn tag_slot(self) -> Option<u8> {
        match self {
            Dimension::Tag1 => Some(1),
            Dimension::Tag2 => Some(2),
            Dimension::Tag3 => Some(3),
            _ => None,
        }
    }

    pub fn of_tag_slot(slot: u8) -> Option<Dimension> {
        Dimension::TAGS
            .get(usize::from(slot).checked_sub(1)?)
            .copied()
    }

    pub fn parse(s: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// The event's value for this dimension ("" when the event has none).
    pub fn value_of(self, e: &Event) -> &str {
        match self {
            Dimension::Total => "",
            Dimension::Provider => &e.provider,
            Dimension::Model => e.canonical_model(),
            Dimension::ModelSent => &e.model,
            Dimension::Feature => e.feature.as_deref().unwrap_or(""),
            Dimension::Source => &e.source,
            Dimension::Status => e.status.as_str(),
            Dimension::User => e.user_id.as_deref().unwrap_or(""),
            Dimension::Tag1 | Dimension::Tag2 | Dimension::Tag3 => {
                let slot = self.tag_slot();
                e.tags
                    .iter()
                    .find(|(s, _)| Some(*s) == slot)
                    .map_or("", |(_, v)| v.as_str())
            }
        }
    }
}

/// The views every event is folded into, as (within, by): `within` is `Total` for the
/// workspace-wide views, or the dimension (feature, source, or model for its names as sent)
/// whose one value the view is for.
pub const VIEWS: [(Dimension, Dimension); 22] = {
    use Dimension::*;
    [
        (Total, Total),
        (Total, Provider),
        (Total, Model),
        (Total, ModelSent),
        (Model, ModelSent),
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
        (Total, Tag1),
        (Total, Tag2),
        (Total, Tag3),
    ]
};

/// The dimensions whose single values have views of their own (`model@feature:search`,
/// `model_sent@model:gpt-4o`): a store that keeps a partition per view finds those partitions
/// through the workspace-wide view of the dimension, which lists its values.
pub const WITHIN: [Dimension; 3] = [Dimension::Model, Dimension::Feature, Dimension::Source];

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

    /// The view every store writes synchronously with each batch: the workspace total, one item
    /// per hour (it also lists the hours that hold events). The DynamoDB store folds the others
    /// from per-batch deltas in the background: each has many values per batch (one per model,
    /// end-user, pair of values...), and writing them one item each at ingest would cost more
    /// than the write budget (see `adapters::dynamodb`).
    pub fn is_core(&self) -> bool {
        self.within.is_none() && self.by == Dimension::Total
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

/// Counters of one rollup. Cost is in picodollars (1e-12 USD) so sums are exact integers; it is an
/// i128 because a busy workspace's month passes i64's $9.2 million (postcard writes both as the
/// same zigzag varint, so rollups stored as i64 read back unchanged). Counters saturate rather
/// than wrap: with every per-event count bounded at ingest they cannot reach u64::MAX in practice.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Rollup {
    pub requests: u64,
    pub errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost_pico: i128,
    /// Events whose cost is unknown (no `cost_usd` and no price for the model): never counted as $0.
    pub unpriced: u64,
    pub latency: LatencySketch,
    /// What providers reported beside what LLMtrack computes (last: rollups stored before it
    /// end at `latency`, see [`Rollup::decode`]).
    pub reported: Reported,
}

/// Events whose cost the provider reported (`provider_cost_usd`, kept as their cost) and whose
/// tokens LLMtrack can price too: the two sums, so a breakdown shows how far they differ.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reported {
    pub events: u64,
    /// The providers' cost, in picodollars.
    pub cost_pico: i128,
    /// The cost computed from the same events' tokens, in picodollars.
    pub computed_pico: i128,
}

impl Reported {
    fn add(&mut self, events: u64, cost_pico: i128, computed_pico: i128) {
        self.events = self.events.saturating_add(events);
        self.cost_pico = self.cost_pico.saturating_add(cost_pico);
        self.computed_pico = self.computed_pico.saturating_add(computed_pico);
    }
}

/// A rollup as stored before [`Reported`]: decoded from older rows and delta items.
#[derive(Deserialize)]
struct EarlierRollup {
    requests: u64,
    errors: u64,
    input_tokens: u64,
    output_tokens: u64,
    cached_input_tokens: u64,
    cache_write_tokens: u64,
    reasoning_tokens: u64,
    cost_pico: i128,
    unpriced: u64,
    latency: LatencySketch,
}

impl From<EarlierRollup> for Rollup {
    fn from(r: EarlierRollup) -> Rollup {
        Rollup {
            requests: r.requests,
            errors: r.errors,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cached_input_tokens: r.cached_input_tokens,
            cache_write_tokens: r.cache_write_tokens,
            reasoning_tokens: r.reasoning_tokens,
            cost_pico: r.cost_pico,
            unpriced: r.unpriced,
            latency: r.latency,
            reported: Reported::default(),
        }
    }
}

impl Rollup {
    pub fn add_event(&mut self, e: &Event) {
        let add = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        add(&mut self.requests, 1);
        add(&mut self.errors, u64::from(e.status == Status::Error));
        add(&mut self.input_tokens, e.tokens.input);
        add(&mut self.output_tokens, e.tokens.output);
        add(&mut self.cached_input_tokens, e.tokens.cached_input);
        add(&mut self.cache_write_tokens, e.tokens.cache_write);
        add(&mut self.reasoning_tokens, e.tokens.reasoning);
        match e.cost_pico {
            Some(c) => self.cost_pico = self.cost_pico.saturating_add(i128::from(c)),
            None => add(&mut self.unpriced, 1),
        }
        if let Some(l) = e.latency_ms {
            self.latency.add(l);
        }
        if let (Some(CostSource::Provider), Some(cost), Some(computed)) =
            (e.cost_source, e.cost_pico, e.computed_cost_pico)
        {
            self.reported.add(1, cost.into(), computed.into());
        }
    }

    pub fn merge(&mut self, o: &Rollup) {
        let add = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        add(&mut self.requests, o.requests);
        add(&mut self.errors, o.errors);
        add(&mut self.input_tokens, o.input_tokens);
        add(&mut self.output_tokens, o.output_tokens);
        add(&mut self.cached_input_tokens, o.cached_input_tokens);
        add(&mut self.cache_write_tokens, o.cache_write_tokens);
        add(&mut self.reasoning_tokens, o.reasoning_tokens);
        self.cost_pico = self.cost_pico.saturating_add(o.cost_pico);
        add(&mut self.unpriced, o.unpriced);
        self.latency.merge(&o.latency);
        let o = &o.reported;
        self.reported.add(o.events, o.cost_pico, o.computed_pico);
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
            && self.reported == o.reported
    }

    /// Compact binary form for storage (postcard: varints, so small counters take a byte).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// Reads a stored rollup, in this layout or the one before [`Reported`]: the earlier one
    /// ends where this one still expects `reported`, so it never reads as this one.
    pub fn decode(bytes: &[u8]) -> Option<Rollup> {
        postcard::from_bytes(bytes).ok().or_else(|| {
            postcard::from_bytes::<EarlierRollup>(bytes)
                .ok()
                .map(Rollup::from)
        })
    }
}

/// Folds events into one delta per rollup key they touch: every view, every hour.
pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> HashMap<RollupKey, Rollup> {
    Groups::of(events).views(Select::All)
}

/// Which views to expand from groups.
#[derive(Debug, Clone, Copy)]
pub enum Select<'v> {
    All,
    /// The views written synchronously (`View::is_core`).
    Core,
    /// Every other view.
    Deferred,
    One(&'v View),
}

impl Select<'_> {
    /// Decided from the view's parts, so nothing is allocated for views left out.
    fn keeps(&self, within: Dimension, within_value: &str, by: Dimension) -> bool {
        let core = within == Dimension::Total && by == Dimension::Total;
        match self {
            Select::All => true,
            Select::Core => core,
            Select::Deferred => !core,
            Select::One(v) => {
                v.by == by
                    && match &v.within {
                        None => within == Dimension::Total,
                        Some((d, value)) => *d == within && value == within_value,
                    }
            }
        }
    }
}

/// Events grouped by what the views are made of: identical (hour, provider, model, model as
/// sent, feature, source, status), and identical (hour, feature, source, user).
///
/// Adding an event to 19 views one by one costs 19 sketch insertions; instead each event is
/// added to its two groups and the views are merged from the groups, which are far fewer than
/// events in a real batch. This keeps ingest within its CPU budget. The groups are also the
/// compact form of a batch's deltas (the stores keep them until they fold them): a view key
/// repeats its group's values in up to five views. `S` is `&str` while ingesting (borrowed from
/// the events: no allocation per group) and `String` once stored.
#[derive(Debug, Clone)]
pub struct Groups<S = String> {
    /// (hour, [provider, model, model as sent, feature, source, status])
    pub fine: Vec<(i64, [S; 6], Rollup)>,
    /// (hour, [feature, source, user])
    pub users: Vec<(i64, [S; 3], Rollup)>,
    /// (hour, tag slot, value): one group per tag an event carries (`Event::tags`).
    pub tags: Vec<(i64, u8, S, Rollup)>,
}

impl<S> Default for Groups<S> {
    fn default() -> Self {
        Groups {
            fine: Vec::new(),
            users: Vec::new(),
            tags: Vec::new(),
        }
    }
}

impl<'a> Groups<&'a str> {
    pub fn of(events: impl IntoIterator<Item = &'a Event>) -> Groups<&'a str> {
        // A fast non-cryptographic hash: keys are the workspace's own values, and this map lives
        // for one batch.
        let mut fine: FxHashMap<(i64, [&'a str; 6]), Rollup> = FxHashMap::default();
        let mut users: FxHashMap<(i64, [&'a str; 3]), Rollup> = FxHashMap::default();
        let mut tags: FxHashMap<(i64, u8, &'a str), Rollup> = FxHashMap::default();
        for e in events {
            let hour = hour_of(e.ts_ms);
            let f = Dimension::Feature.value_of(e);
            let s = e.source.as_str();
            let model = e.canonical_model();
            fine.entry((
                hour,
                [&e.provider, model, &e.model, f, s, e.status.as_str()],
            ))
            .or_default()
            .add_event(e);
            users
                .entry((hour, [f, s, Dimension::User.value_of(e)]))
                .or_default()
                .add_event(e);
            for (slot, value) in &e.tags {
                tags.entry((hour, *slot, value.as_str()))
                    .or_default()
                    .add_event(e);
            }
        }
        Groups {
            fine: fine.into_iter().map(|((h, k), r)| (h, k, r)).collect(),
            users: users.into_iter().map(|((h, k), r)| (h, k, r)).collect(),
            tags: tags
                .into_iter()
                .map(|((h, s, v), r)| (h, s, v, r))
                .collect(),
        }
    }
}

/// How stored groups are laid out: 5 since a sketch of one value is stored as the value
/// ([`Slim`]); 4 when they first carried tags; 3 when their rollups carried [`Reported`]; 2 when
/// groups held the canonical model beside the name as sent; 1 (no format recorded) before, when
/// they held the name as sent alone.
pub const GROUPS_FORMAT: u8 = 5;

/// A group's rollup as groups store it: a [`Rollup`] whose sketch is slim (fields in
/// [`Rollup`]'s order: postcard is positional).
#[derive(Serialize)]
struct SlimRef<'a> {
    requests: u64,
    errors: u64,
    input_tokens: u64,
    output_tokens: u64,
    cached_input_tokens: u64,
    cache_write_tokens: u64,
    reasoning_tokens: u64,
    cost_pico: i128,
    unpriced: u64,
    latency: Slim<&'a LatencySketch>,
    reported: &'a Reported,
}

impl<'a> From<&'a Rollup> for SlimRef<'a> {
    fn from(r: &'a Rollup) -> SlimRef<'a> {
        SlimRef {
            requests: r.requests,
            errors: r.errors,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cached_input_tokens: r.cached_input_tokens,
            cache_write_tokens: r.cache_write_tokens,
            reasoning_tokens: r.reasoning_tokens,
            cost_pico: r.cost_pico,
            unpriced: r.unpriced,
            latency: r.latency.slim(),
            reported: &r.reported,
        }
    }
}

/// [`SlimRef`] read back.
#[derive(Deserialize)]
struct SlimRollup {
    requests: u64,
    errors: u64,
    input_tokens: u64,
    output_tokens: u64,
    cached_input_tokens: u64,
    cache_write_tokens: u64,
    reasoning_tokens: u64,
    cost_pico: i128,
    unpriced: u64,
    latency: Slim<LatencySketch>,
    reported: Reported,
}

impl From<SlimRollup> for Rollup {
    fn from(r: SlimRollup) -> Rollup {
        Rollup {
            requests: r.requests,
            errors: r.errors,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cached_input_tokens: r.cached_input_tokens,
            cache_write_tokens: r.cache_write_tokens,
            reasoning_tokens: r.reasoning_tokens,
            cost_pico: r.cost_pico,
            unpriced: r.unpriced,
            latency: r.latency.into(),
            reported: r.reported,
        }
    }
}

/// The bytes one group takes in its stored [`Groups`] (`key`: its names, or a tag's slot and
/// value), where a store cuts a batch's groups into items of bounded size.
pub fn stored_len<K: Serialize>(hour: i64, key: &K, r: &Rollup) -> postcard::Result<usize> {
    Ok(postcard::to_stdvec(&(hour, key, SlimRef::from(r)))?.len())
}

/// One kind of group (a field of [`Groups`]), written with slim rollups and no copy.
struct SlimGroups<'a, T>(&'a [T]);

impl<K: Serialize> Serialize for SlimGroups<'_, (i64, K, Rollup)> {
    fn serialize<Z: serde::Serializer>(&self, z: Z) -> Result<Z::Ok, Z::Error> {
        z.collect_seq(self.0.iter().map(|(h, k, r)| (h, k, SlimRef::from(r))))
    }
}

impl<S: Serialize> Serialize for SlimGroups<'_, (i64, u8, S, Rollup)> {
    fn serialize<Z: serde::Serializer>(&self, z: Z) -> Result<Z::Ok, Z::Error> {
        z.collect_seq(
            self.0
                .iter()
                .map(|(h, slot, v, r)| (h, slot, v, SlimRef::from(r))),
        )
    }
}

/// The stored form ([`GROUPS_FORMAT`]); read back by [`Groups::decode`].
impl<S: Serialize> Serialize for Groups<S> {
    fn serialize<Z: serde::Serializer>(&self, z: Z) -> Result<Z::Ok, Z::Error> {
        (
            SlimGroups(&self.fine),
            SlimGroups(&self.users),
            SlimGroups(&self.tags),
        )
            .serialize(z)
    }
}

/// Groups as format 5 stores them.
#[derive(Deserialize)]
struct SlimStored {
    fine: Vec<(i64, [String; 6], SlimRollup)>,
    users: Vec<(i64, [String; 3], SlimRollup)>,
    tags: Vec<(i64, u8, String, SlimRollup)>,
}

/// Groups as format 4 stored them: rollups with whole sketches.
#[derive(Deserialize)]
struct TaggedGroups {
    fine: Vec<(i64, [String; 6], Rollup)>,
    users: Vec<(i64, [String; 3], Rollup)>,
    tags: Vec<(i64, u8, String, Rollup)>,
}

/// Groups as format 3 stored them: no tags.
#[derive(Deserialize)]
struct UntaggedGroups {
    fine: Vec<(i64, [String; 6], Rollup)>,
    users: Vec<(i64, [String; 3], Rollup)>,
}

/// Groups as earlier releases stored them: format 2 (`K` six names, as today), and format 1
/// (five: `[provider, model, feature, source, status]`).
#[derive(Deserialize)]
struct EarlierGroups<K> {
    fine: Vec<(i64, K, EarlierRollup)>,
    users: Vec<(i64, [String; 3], EarlierRollup)>,
}

impl Groups<String> {
    /// Reads groups stored in `format` ([`GROUPS_FORMAT`], 4, 3, 2 or 1). Format 1 knew only the
    /// name as sent: it stands for the canonical model too, as it did when those groups were
    /// written.
    pub fn decode(bytes: &[u8], format: u8) -> anyhow::Result<Groups> {
        let later_users = |u: Vec<(i64, [String; 3], EarlierRollup)>| {
            u.into_iter().map(|(h, k, r)| (h, k, r.into())).collect()
        };
        match format {
            GROUPS_FORMAT => {
                let g: SlimStored = postcard::from_bytes(bytes)?;
                Ok(Groups {
                    fine: g
                        .fine
                        .into_iter()
                        .map(|(h, k, r)| (h, k, r.into()))
                        .collect(),
                    users: g
                        .users
                        .into_iter()
                        .map(|(h, k, r)| (h, k, r.into()))
                        .collect(),
                    tags: g
                        .tags
                        .into_iter()
                        .map(|(h, slot, v, r)| (h, slot, v, r.into()))
                        .collect(),
                })
            }
            4 => {
                let g: TaggedGroups = postcard::from_bytes(bytes)?;
                Ok(Groups {
                    fine: g.fine,
                    users: g.users,
                    tags: g.tags,
                })
            }
            3 => {
                let old: UntaggedGroups = postcard::from_bytes(bytes)?;
                Ok(Groups {
                    fine: old.fine,
                    users: old.users,
                    tags: Vec::new(),
                })
            }
            2 => {
                let old: EarlierGroups<[String; 6]> = postcard::from_bytes(bytes)?;
                Ok(Groups {
                    fine: old
                        .fine
                        .into_iter()
                        .map(|(h, k, r)| (h, k, r.into()))
                        .collect(),
                    users: later_users(old.users),
                    tags: Vec::new(),
                })
            }
            1 => {
                let old: EarlierGroups<[String; 5]> = postcard::from_bytes(bytes)?;
                Ok(Groups {
                    fine: old
                        .fine
                        .into_iter()
                        .map(|(h, [p, m, f, s, st], r)| (h, [p, m.clone(), m, f, s, st], r.into()))
                        .collect(),
                    users: later_users(old.users),
                    tags: Vec::new(),
                })
            }
            other => anyhow::bail!("groups stored in format {other}, unknown to this release"),
        }
    }

    /// Adds another set of groups (deltas of several batches folded at once).
    pub fn extend(&mut self, other: Groups<String>) {
        self.fine.extend(other.fine);
        self.users.extend(other.users);
        self.tags.extend(other.tags);
    }

    /// Keeps only the groups of these hours.
    pub fn retain_hours(&mut self, hours: std::ops::Range<i64>) {
        self.fine.retain(|(h, _, _)| hours.contains(h));
        self.users.retain(|(h, _, _)| hours.contains(h));
        self.tags.retain(|(h, _, _, _)| hours.contains(h));
    }
}

impl<S: AsRef<str>> Groups<S> {
    pub fn is_empty(&self) -> bool {
        self.fine.is_empty() && self.users.is_empty() && self.tags.is_empty()
    }

    /// Sorts the groups, so the same batch always encodes to the same bytes.
    pub fn sort(&mut self) {
        let key6 = |k: &[S; 6]| k.each_ref().map(|x| x.as_ref().to_owned());
        self.fine.sort_by_cached_key(|(h, k, _)| (*h, key6(k)));
        let key3 = |k: &[S; 3]| k.each_ref().map(|x| x.as_ref().to_owned());
        self.users.sort_by_cached_key(|(h, k, _)| (*h, key3(k)));
        self.tags
            .sort_by_cached_key(|(h, slot, v, _)| (*h, *slot, v.as_ref().to_owned()));
    }

    /// The deltas of the selected views.
    pub fn views(&self, select: Select) -> HashMap<RollupKey, Rollup> {
        let mut out: HashMap<RollupKey, Rollup> = HashMap::new();
        self.views_into(select, &mut out);
        out
    }

    /// Adds the deltas of the selected views to `out` (several batches' groups folded at once).
    pub fn views_into(&self, select: Select, out: &mut HashMap<RollupKey, Rollup>) {
        let mut put = |hour: i64,
                       within: Dimension,
                       within_value: &str,
                       by: Dimension,
                       value: &str,
                       r: &Rollup| {
            if !select.keeps(within, within_value, by) {
                return;
            }
            let view = if within == Dimension::Total {
                View::of(by)
            } else {
                View::within(by, within, within_value)
            };
            let key = RollupKey {
                hour,
                view,
                value: value.to_owned(),
            };
            out.entry(key).or_default().merge(r);
        };
        for (hour, k, r) in &self.fine {
            let [provider, model, model_sent, feature, source, status] =
                k.each_ref().map(AsRef::as_ref);
            let value = |d: Dimension| match d {
                Dimension::Total
                | Dimension::User
                | Dimension::Tag1
                | Dimension::Tag2
                | Dimension::Tag3 => "",
                Dimension::Provider => provider,
                Dimension::Model => model,
                Dimension::ModelSent => model_sent,
                Dimension::Feature => feature,
                Dimension::Source => source,
                Dimension::Status => status,
            };
            for (within, by) in VIEWS
                .iter()
                .filter(|(_, by)| *by != Dimension::User && by.tag_slot().is_none())
            {
                put(*hour, *within, value(*within), *by, value(*by), r);
            }
        }
        for (hour, k, r) in &self.users {
            let [feature, source, user] = k.each_ref().map(AsRef::as_ref);
            put(*hour, Dimension::Total, "", Dimension::User, user, r);
            put(*hour, Dimension::Feature, feature, Dimension::User, user, r);
            put(*hour, Dimension::Source, source, Dimension::User, user, r);
        }
        for (hour, slot, value, r) in &self.tags {
            if let Some(by) = Dimension::of_tag_slot(*slot) {
                put(*hour, Dimension::Total, "", by, value.as_ref(), r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The form rollups were stored in while cost was an i64 (and before `reported`).
    #[derive(Serialize, Clone)]
    struct RollupV1 {
        requests: u64,
        errors: u64,
        input_tokens: u64,
        output_tokens: u64,
        cached_input_tokens: u64,
        cache_write_tokens: u64,
        reasoning_tokens: u64,
        cost_pico: i64,
        unpriced: u64,
        latency: LatencySketch,
    }

    #[test]
    fn groups_an_earlier_release_stored_read_with_the_name_as_sent_for_the_model() {
        #[derive(Serialize)]
        struct GroupsV1 {
            fine: Vec<(i64, [&'static str; 5], RollupV1)>,
            users: Vec<(i64, [&'static str; 3], RollupV1)>,
        }
        let r = RollupV1 {
            requests: 3,
            errors: 0,
            input_tokens: 0,
            output_tokens: 0,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
            cost_pico: 5,
            unpriced: 0,
            latency: LatencySketch::default(),
        };
        let old = GroupsV1 {
            fine: vec![(
                7,
                ["openai", "GPT-4o", "chat", "production", "success"],
                r.clone(),
            )],
            users: vec![(7, ["chat", "production", "u1"], r.clone())],
        };
        let bytes = postcard::to_stdvec(&old).unwrap();
        let groups = Groups::decode(&bytes, 1).unwrap();
        let [_, model, sent, feature, ..] = &groups.fine[0].1;
        assert_eq!(
            (model.as_str(), sent.as_str(), feature.as_str()),
            ("GPT-4o", "GPT-4o", "chat")
        );
        let views = groups.views(Select::All);
        let get = |v: View, value: &str| {
            views[&RollupKey {
                hour: 7,
                view: v,
                value: value.into(),
            }]
                .requests
        };
        assert_eq!(get(View::of(Dimension::Model), "GPT-4o"), 3);
        assert_eq!(get(View::of(Dimension::ModelSent), "GPT-4o"), 3);
        assert_eq!(
            get(
                View::within(Dimension::ModelSent, Dimension::Model, "GPT-4o"),
                "GPT-4o"
            ),
            3
        );
        // A format this release does not know is refused, not misread.
        assert!(Groups::decode(&bytes, GROUPS_FORMAT + 1).is_err());
    }

    #[test]
    fn rollups_stored_with_an_i64_cost_read_back_unchanged() {
        for cost in [0, 1, -1, 2_500_000_000_000, i64::MAX, i64::MIN] {
            let mut latency = LatencySketch::default();
            latency.add(12.5);
            let old = RollupV1 {
                requests: 3,
                errors: 1,
                input_tokens: u64::MAX,
                output_tokens: 7,
                cached_input_tokens: 2,
                cache_write_tokens: 1,
                reasoning_tokens: 0,
                cost_pico: cost,
                unpriced: 4,
                latency,
            };
            let r = Rollup::decode(&postcard::to_stdvec(&old).unwrap()).expect("decodes");
            assert_eq!(r.cost_pico, i128::from(cost));
            assert_eq!((r.requests, r.input_tokens, r.unpriced), (3, u64::MAX, 4));
            assert_eq!(r.latency.count(), 1);
        }
    }

    #[test]
    fn sums_at_the_bounds_saturate_or_stay_exact() {
        let mut a = Rollup {
            input_tokens: u64::MAX - 1,
            cost_pico: i128::from(i64::MAX),
            ..Rollup::default()
        };
        let b = Rollup {
            input_tokens: 5,
            cost_pico: i128::from(i64::MAX),
            requests: u64::MAX,
            ..Rollup::default()
        };
        a.merge(&b);
        assert_eq!(a.input_tokens, u64::MAX);
        assert_eq!(a.requests, u64::MAX);
        // Past i64: exact, not wrapped to a negative number.
        assert_eq!(a.cost_pico, 2 * i128::from(i64::MAX));
        a.merge(&Rollup {
            cost_pico: i128::MAX,
            ..Rollup::default()
        });
        assert_eq!(a.cost_pico, i128::MAX);
    }

    #[test]
    fn tags_fold_into_their_slots_view_and_untagged_groups_still_read() {
        let mut e: Event = serde_json::from_value(serde_json::json!({
            "id": "e", "dedup": "none", "ts_ms": 7 * 3_600_000, "provider": "openai",
            "model": "gpt-4o", "feature": "chat", "user_id": null, "source": "production",
            "tokens": {"input": 1, "output": 1, "cached_input": 0, "cache_write": 0, "reasoning": 0},
            "cost_pico": 5, "latency_ms": null, "status": "success", "error_type": null,
            "metadata": [], "expires_ms": 0,
        }))
        .unwrap();
        e.tags = vec![(1, "growth".into()), (3, "".into())];
        let views = fold([&e, &e]);
        let get = |v: View, value: &str| {
            views
                .get(&RollupKey {
                    hour: 7,
                    view: v,
                    value: value.into(),
                })
                .map(|r| r.requests)
        };
        assert_eq!(get(View::of(Dimension::Tag1), "growth"), Some(2));
        assert_eq!(get(View::of(Dimension::Tag3), ""), Some(2));
        assert_eq!(get(View::of(Dimension::Tag2), ""), None);
        assert_eq!(get(View::of(Dimension::Feature), "chat"), Some(2));
        assert_eq!(Dimension::Tag1.value_of(&e), "growth");

        // Groups stored before tags (format 3) read back with none.
        let mut groups = Groups::of([&e]);
        groups.tags.clear();
        let old = postcard::to_stdvec(&(&groups.fine, &groups.users)).unwrap();
        let back = Groups::decode(&old, 3).unwrap();
        assert!(back.tags.is_empty());
        assert_eq!(back.fine.len(), 1);
    }

    #[test]
    fn stored_groups_read_back_as_the_same_views_in_this_format_and_the_one_before() {
        let events: Vec<Event> = (0..40)
            .map(|i| {
                let model = ["gpt-4o", "gpt-4o-mini"][i as usize % 2];
                let latency = if i % 7 == 0 {
                    None
                } else {
                    Some(12.5 * i as f64)
                };
                let mut e: Event = serde_json::from_value(serde_json::json!({
                    "id": format!("e{i}"), "dedup": "none", "ts_ms": (7 + i % 2) * 3_600_000,
                    "provider": "openai", "model": model,
                    "feature": "chat", "user_id": format!("u{}", i % 9), "source": "production",
                    "tokens": {"input": 10 + i, "output": 1, "cached_input": 0, "cache_write": 0,
                               "reasoning": 0},
                    "cost_pico": 5 * i,
                    // Some groups with no latency, most with one, a few with several.
                    "latency_ms": latency,
                    "status": "success", "error_type": null, "metadata": [], "expires_ms": 0,
                }))
                .unwrap();
                e.tags = vec![(2, format!("c{i}"))];
                e
            })
            .collect();
        let groups = Groups::of(&events);
        let expected = groups.views(Select::All);
        let same = |back: Groups| {
            let views = back.views(Select::All);
            assert_eq!(views.len(), expected.len());
            for (k, r) in &expected {
                assert!(views[k].same_as(r), "{k:?}");
            }
        };
        let slim = postcard::to_stdvec(&groups).unwrap();
        same(Groups::decode(&slim, GROUPS_FORMAT).unwrap());
        let whole = postcard::to_stdvec(&(&groups.fine, &groups.users, &groups.tags)).unwrap();
        same(Groups::decode(&whole, 4).unwrap());
        assert!(
            slim.len() < whole.len(),
            "{} vs {}",
            slim.len(),
            whole.len()
        );
        // A group of one event (each tag group here) is about 28 bytes smaller.
        for (h, s, v, r) in &groups.tags {
            let whole = postcard::to_stdvec(&(h, s, v, r)).unwrap().len();
            assert!(stored_len(*h, &(s, v), r).unwrap() + 25 < whole);
        }
        // One group's share, as a store cuts by it, adds up to the whole.
        let shares: usize = groups
            .fine
            .iter()
            .map(|(h, k, r)| stored_len(*h, k, r).unwrap())
            .chain(
                groups
                    .users
                    .iter()
                    .map(|(h, k, r)| stored_len(*h, k, r).unwrap()),
            )
            .chain(
                groups
                    .tags
                    .iter()
                    .map(|(h, s, v, r)| stored_len(*h, &(s, v), r).unwrap()),
            )
            .sum();
        assert_eq!(shares + 3, slim.len(), "three lengths besides the groups");
    }

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
