//! Cost-allocation tags: a few metadata keys a workspace declares (`team`, `project`,
//! `customer`) whose values become breakdown dimensions, for chargeback.
//!
//! Each key holds a slot (`tag1` to `tag3`: the rollup view its values are kept in) from the hour
//! it was declared. A key keeps at most [`MAX_TAG_VALUES`] values, the first ones seen; events
//! with a later new value count under [`OTHER`], so a key that turns out to carry request ids
//! costs a hundred rollup rows an hour, not one per event. A removed key's slot is taken again
//! only from the next hour, so one view never mixes two keys' values.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::event::{Event, MetaValue};
use super::rollup::Dimension;
use super::time::{HOUR_MS, hour_of};

/// Tag keys a workspace may declare: each is a rollup view every event of the workspace is
/// folded into.
pub const MAX_TAG_KEYS: usize = 3;
/// Values a key keeps before the rest count under [`OTHER`].
pub const MAX_TAG_VALUES: usize = 100;
/// What events with a value past the bound count under.
pub const OTHER: &str = "(other)";
pub const MAX_TAG_KEY_CHARS: usize = 40;

/// One declared key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagKey {
    /// The metadata key events carry the value under.
    pub key: String,
    /// 1 to [`MAX_TAG_KEYS`]: which `tag{slot}` view holds its values.
    pub slot: u8,
    /// The first hour (epoch hours, UTC) whose events carry it.
    pub since_hour: i64,
    /// The values kept, in the order they were first seen (at most [`MAX_TAG_VALUES`]).
    #[serde(default)]
    pub values: Vec<String>,
    /// Whether an event came with a value past the bound (counted under [`OTHER`]).
    #[serde(default)]
    pub overflowed: bool,
}

impl TagKey {
    pub fn dimension(&self) -> Dimension {
        Dimension::of_tag_slot(self.slot).unwrap_or(Dimension::Tag1)
    }

    /// The values kept, to look up (a batch checks each event's value against up to 100).
    fn kept(&self) -> rustc_hash::FxHashSet<&str> {
        self.values.iter().map(String::as_str).collect()
    }

    pub fn full(&self) -> bool {
        self.values.len() >= MAX_TAG_VALUES
    }

    /// Where the key's view starts: events of earlier hours were not tagged with it.
    pub fn since_ms(&self) -> i64 {
        self.since_hour * HOUR_MS
    }
}

/// A workspace's tag keys, on its record. `version` goes up by one with each change, which is
/// conditioned on the one before (`Workspaces::set_tags`): ingest admits new values this way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagKeys {
    #[serde(default)]
    pub version: u64,
    #[serde(default)]
    pub keys: Vec<TagKey>,
    /// Per slot (index `slot - 1`): the first hour a newly declared key may take it.
    #[serde(default)]
    pub free_from: [i64; MAX_TAG_KEYS],
}

/// Why a set of keys was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidTags {
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> InvalidTags {
    InvalidTags {
        field: field.into(),
        message: message.into(),
    }
}

/// A key's spelling: what a metadata key may be, less what would read ambiguously in a
/// breakdown or a CSV header.
fn check_key(i: usize, key: &str) -> Result<(), InvalidTags> {
    let field = format!("keys[{i}]");
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/');
    if key.is_empty() || key.chars().count() > MAX_TAG_KEY_CHARS || !key.chars().all(ok_char) {
        return Err(invalid(
            field,
            format!(
                "a tag key is 1 to {MAX_TAG_KEY_CHARS} letters, digits, `_`, `-`, `.` or `/` (the metadata key events carry it under); got `{key}`"
            ),
        ));
    }
    Ok(())
}

impl TagKeys {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&TagKey> {
        self.keys.iter().find(|k| k.key == key)
    }

    pub fn by_dimension(&self, d: Dimension) -> Option<&TagKey> {
        let slot = d.tag_slot()?;
        self.keys.iter().find(|k| k.slot == slot)
    }

    /// The next version with exactly `keys` declared (in that order), at `now_ms`: kept keys
    /// keep their slot and values; a removed key frees its slot from the next hour; a new key
    /// takes the lowest free slot from this hour (or from when the slot is free). `None` when
    /// that changes nothing.
    pub fn declare(&self, keys: &[String], now_ms: i64) -> Result<Option<TagKeys>, InvalidTags> {
        if keys.len() > MAX_TAG_KEYS {
            return Err(invalid(
                "keys",
                format!(
                    "at most {MAX_TAG_KEYS} tag keys (each is a breakdown kept for every event); got {}",
                    keys.len()
                ),
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, k) in keys.iter().enumerate() {
            check_key(i, k)?;
            if !seen.insert(k.as_str()) {
                return Err(invalid(
                    format!("keys[{i}]"),
                    format!("`{k}` is listed twice"),
                ));
            }
        }
        let now_hour = hour_of(now_ms);
        let mut free_from = self.free_from;
        for old in self.keys.iter().filter(|o| !seen.contains(o.key.as_str())) {
            free_from[usize::from(old.slot - 1)] = now_hour + 1;
        }
        let mut next: Vec<TagKey> = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(old) = self.get(k) {
                next.push(old.clone());
                continue;
            }
            let taken: BTreeSet<u8> = keys
                .iter()
                .filter_map(|k| self.get(k).map(|o| o.slot))
                .chain(next.iter().map(|n| n.slot))
                .collect();
            let slot = (1..=MAX_TAG_KEYS as u8)
                .find(|s| !taken.contains(s))
                .unwrap_or(1);
            next.push(TagKey {
                key: k.clone(),
                slot,
                since_hour: now_hour.max(free_from[usize::from(slot - 1)]),
                values: Vec::new(),
                overflowed: false,
            });
        }
        if next == self.keys {
            return Ok(None);
        }
        Ok(Some(TagKeys {
            version: self.version + 1,
            keys: next,
            free_from,
        }))
    }

    /// The values of `events` that their keys do not keep yet, per key, for keys that still
    /// have room, or are not marked as overflowed: what [`TagKeys::admit`] is asked to add.
    pub fn unseen(&self, events: &[Event]) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for k in &self.keys {
            if k.full() && k.overflowed {
                continue;
            }
            let kept = k.kept();
            for e in events.iter().filter(|e| hour_of(e.ts_ms) >= k.since_hour) {
                if let Some(v) = value_in(e, &k.key)
                    && !v.is_empty()
                    && !kept.contains(v.as_ref())
                {
                    out.entry(k.key.clone()).or_default().insert(v.into_owned());
                }
            }
        }
        out
    }

    /// The next version with `new` values added to their keys while they have room (in sorted
    /// order, so every writer admits the same ones), and keys marked as overflowed when a value
    /// did not fit; `None` when that changes nothing.
    pub fn admit(&self, new: &BTreeMap<String, BTreeSet<String>>) -> Option<TagKeys> {
        let mut next = self.clone();
        let mut changed = false;
        for k in &mut next.keys {
            let Some(values) = new.get(&k.key) else {
                continue;
            };
            for v in values {
                if k.values.contains(v) {
                    continue;
                }
                if k.full() {
                    changed |= !k.overflowed;
                    k.overflowed = true;
                    break;
                }
                k.values.push(v.clone());
                changed = true;
            }
        }
        changed.then(|| {
            next.version += 1;
            next
        })
    }

    /// Sets each event's tags: for each key declared by the event's hour, its value if kept,
    /// [`OTHER`] if not, "" when the event has none (so a key's view adds up to the total).
    pub fn assign(&self, events: &mut [Event]) {
        let kept: Vec<_> = self.keys.iter().map(|k| (k, k.kept())).collect();
        for e in events {
            e.tags = kept
                .iter()
                .filter(|(k, _)| hour_of(e.ts_ms) >= k.since_hour)
                .map(|(k, kept)| {
                    let value = match value_in(e, &k.key) {
                        None => String::new(),
                        Some(v) if v.is_empty() => String::new(),
                        Some(v) if kept.contains(v.as_ref()) => v.into_owned(),
                        Some(_) => OTHER.to_owned(),
                    };
                    (k.slot, value)
                })
                .collect();
            e.tags.sort();
        }
    }
}

/// The event's value for a tag key: its metadata value as text.
fn value_in<'e>(e: &'e Event, key: &str) -> Option<std::borrow::Cow<'e, str>> {
    use std::borrow::Cow;
    let (_, v) = e.metadata.iter().find(|(k, _)| k == key)?;
    Some(match v {
        MetaValue::String(s) => Cow::Borrowed(s.trim()),
        MetaValue::Bool(b) => Cow::Owned(b.to_string()),
        MetaValue::Number(n) => Cow::Owned(n.to_string()),
    })
}

/// A tag key as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TagKeyView {
    pub key: String,
    /// How to group by it: `tag:{key}` in `by` of the analytics endpoints.
    pub dimension: String,
    /// RFC 3339: the first hour whose events carry it (earlier events were not tagged).
    pub since: String,
    /// The values kept so far, at most `max_values`.
    pub values: Vec<String>,
    pub max_values: usize,
    /// Whether events came with more values than kept: those count under `(other)`.
    pub overflowed: bool,
}

impl TagKeyView {
    pub fn of(k: &TagKey) -> TagKeyView {
        TagKeyView {
            key: k.key.clone(),
            dimension: format!("tag:{}", k.key),
            since: super::time::rfc3339(k.since_ms()),
            values: k.values.clone(),
            max_values: MAX_TAG_VALUES,
            overflowed: k.overflowed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = HOUR_MS;

    fn event(ts: i64, meta: &[(&str, &str)]) -> Event {
        let json = serde_json::json!({
            "id": "e", "dedup": "none", "ts_ms": ts, "provider": "openai", "model": "gpt-4o",
            "feature": null, "user_id": null, "source": "production",
            "tokens": {"input": 1, "output": 1, "cached_input": 0, "cache_write": 0, "reasoning": 0},
            "cost_pico": 1, "latency_ms": null, "status": "success", "error_type": null,
            "metadata": meta.iter().map(|(k, v)| (k.to_string(), MetaValue::String(v.to_string()))).collect::<Vec<_>>(),
            "expires_ms": 0,
        });
        serde_json::from_value(json).expect("an event")
    }

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn keys_keep_their_slot_and_a_freed_slot_waits_for_the_next_hour() {
        let t0 = TagKeys::default();
        let t1 = t0
            .declare(&keys(&["team", "project"]), 10 * H)
            .unwrap()
            .unwrap();
        assert_eq!(t1.version, 1);
        assert_eq!(t1.get("team").unwrap().slot, 1);
        assert_eq!(t1.get("project").unwrap().slot, 2);
        assert_eq!(t1.get("team").unwrap().since_hour, 10);
        assert!(
            t1.declare(&keys(&["team", "project"]), 11 * H)
                .unwrap()
                .is_none()
        );

        // `team` goes at 10:30; `customer` takes its slot, from 11:00 only.
        let t2 = t1
            .declare(&keys(&["project", "customer"]), 10 * H + H / 2)
            .unwrap()
            .unwrap();
        let c = t2.get("customer").unwrap();
        assert_eq!((c.slot, c.since_hour), (1, 11));
        assert_eq!(t2.get("project").unwrap().since_hour, 10);

        assert!(t0.declare(&keys(&["a", "b", "c", "d"]), 0).is_err());
        assert_eq!(
            t0.declare(&keys(&["a", "a"]), 0).unwrap_err().field,
            "keys[1]"
        );
        assert_eq!(
            t0.declare(&keys(&["ok", "no spaces"]), 0)
                .unwrap_err()
                .field,
            "keys[1]"
        );
    }

    #[test]
    fn values_past_the_bound_count_under_other() {
        let mut t = TagKeys::default()
            .declare(&keys(&["team"]), 0)
            .unwrap()
            .unwrap();
        let mut events: Vec<Event> = (0..MAX_TAG_VALUES + 5)
            .map(|i| event(H, &[("team", &format!("t{i:03}"))]))
            .collect();
        events.push(event(H, &[]));
        let unseen = t.unseen(&events);
        assert_eq!(unseen["team"].len(), MAX_TAG_VALUES + 5);
        t = t.admit(&unseen).unwrap();
        assert_eq!(t.keys[0].values.len(), MAX_TAG_VALUES);
        assert!(t.keys[0].overflowed);
        // Admitting again changes nothing: every writer converges.
        assert!(t.admit(&t.unseen(&events)).is_none());
        t.assign(&mut events);
        let other = events
            .iter()
            .filter(|e| e.tags == vec![(1, OTHER.to_owned())])
            .count();
        assert_eq!(other, 5);
        assert_eq!(events[0].tags, vec![(1, "t000".to_owned())]);
        assert_eq!(events.last().unwrap().tags, vec![(1, String::new())]);
    }

    #[test]
    fn events_from_before_a_key_was_declared_are_not_tagged() {
        let t = TagKeys::default()
            .declare(&keys(&["team"]), 5 * H)
            .unwrap()
            .unwrap();
        let t = t
            .admit(&BTreeMap::from([(
                "team".to_owned(),
                BTreeSet::from(["a".to_owned()]),
            )]))
            .unwrap();
        let mut events = vec![
            event(4 * H, &[("team", "a")]),
            event(5 * H, &[("team", "a")]),
        ];
        assert!(t.unseen(&events).is_empty());
        t.assign(&mut events);
        assert!(events[0].tags.is_empty());
        assert_eq!(events[1].tags, vec![(1, "a".to_owned())]);
    }
}
