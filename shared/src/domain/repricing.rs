//! Repricing: what a request may cover, and the tally of what it changes (events and cost, by
//! model, before and after). Pure: the deletion worker runs the jobs (stored history is
//! rewritten there, hour by hour), and `Event::repriced` prices each event.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::deletion::{Invalid, instant};
use super::event::Event;
use super::time::{HOUR_MS, hour_of};

/// The kind of the jobs that carry repricings (`ports::Job::kind`).
pub const JOB_KIND: &str = "repricing";

/// How far inside its history window a repriced hour must be. Events leave the store when
/// their history window closes, and an hour's rollups are rebuilt from the events it holds: an
/// hour whose first events were already leaving would lose them from its rollups. A day is far
/// longer than any repricing runs.
const EXPIRY_MARGIN_MS: i64 = 86_400_000;

/// The body of `POST /v1/workspaces/{id}/repricing`, before it is checked.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepricingRequest {
    /// RFC 3339 or epoch milliseconds; default (and at the earliest): the oldest hour the
    /// plan's history still holds whole.
    pub from: Option<serde_json::Value>,
    /// RFC 3339 or epoch milliseconds, exclusive; default (and at the latest): the start of the
    /// current hour, which is still being written.
    pub to: Option<serde_json::Value>,
    /// Only count what would change (the default); `false` rewrites the events and rollups.
    #[serde(default = "yes")]
    pub dry_run: bool,
}

fn yes() -> bool {
    true
}

/// A checked request: whole hours, `[from_ms, to_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub from_ms: i64,
    pub to_ms: i64,
}

impl Range {
    /// The hours it covers: the first, and one past the last.
    pub fn hours(&self) -> (i64, i64) {
        (hour_of(self.from_ms), hour_of(self.to_ms - 1) + 1)
    }
}

impl RepricingRequest {
    /// Checks the request at `now_ms`, for a workspace whose plan keeps events `history_ms`.
    /// The range is widened to whole hours and kept to what can be repriced: hours whose
    /// events are all still held, and ended.
    pub fn check(&self, now_ms: i64, history_ms: i64) -> Result<Range, Invalid> {
        let earliest = (hour_of(now_ms - history_ms + EXPIRY_MARGIN_MS) + 1) * HOUR_MS;
        let latest = hour_of(now_ms) * HOUR_MS;
        let from = self.from.as_ref().map(|v| instant("from", v)).transpose()?;
        let to = self.to.as_ref().map(|v| instant("to", v)).transpose()?;
        if let Some(to) = to {
            if to > latest {
                return Err(Invalid {
                    field: "to",
                    message: format!(
                        "`to` is after {}: the current hour's events are still arriving; reprice it once it has ended",
                        super::time::rfc3339(latest)
                    ),
                });
            }
            if to <= earliest {
                return Err(Invalid {
                    field: "to",
                    message: format!(
                        "`to` is before {}: older events are leaving the plan's history window and cannot be repriced",
                        super::time::rfc3339(earliest)
                    ),
                });
            }
        }
        let from_ms = from
            .map_or(earliest, |f| hour_of(f) * HOUR_MS)
            .max(earliest);
        let to_ms = to.map_or(latest, |t| (hour_of(t - 1) + 1) * HOUR_MS);
        if from.is_some_and(|f| f >= to.unwrap_or(latest)) || from_ms >= to_ms {
            return Err(Invalid {
                field: "from",
                message: "`from` must be before `to`".into(),
            });
        }
        Ok(Range { from_ms, to_ms })
    }
}

/// Events and their cost, before and after a repricing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Tally {
    /// Events in the range.
    pub events: u64,
    /// Events whose cost changes.
    pub changed: u64,
    /// Events whose cost was sent by the client or the provider (or stored before its source
    /// was recorded): left as they are.
    pub kept: u64,
    /// Events without a cost, before and after.
    pub unpriced_before: u64,
    pub unpriced_after: u64,
    /// The events' cost before and after, in picodollars (unpriced events count 0).
    pub cost_before_pico: i64,
    pub cost_after_pico: i64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.events += o.events;
        self.changed += o.changed;
        self.kept += o.kept;
        self.unpriced_before += o.unpriced_before;
        self.unpriced_after += o.unpriced_after;
        self.cost_before_pico = self.cost_before_pico.saturating_add(o.cost_before_pico);
        self.cost_after_pico = self.cost_after_pico.saturating_add(o.cost_after_pico);
    }
}

/// What a repricing changes, by canonical model (as priced after it) and in all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub models: BTreeMap<String, Tally>,
    /// Events rewritten although their cost stays: the price that priced them is now named
    /// differently (a newer check date of the same prices, another rule with the same rates).
    #[serde(default)]
    pub relabelled: u64,
}

impl Summary {
    /// Counts one event as it was and, when repricing changes it, as it would be.
    pub fn count(&mut self, was: &Event, now: Option<&Event>) {
        let after = now.unwrap_or(was);
        let t = self
            .models
            .entry(after.canonical_model().to_owned())
            .or_default();
        t.events += 1;
        t.kept += u64::from(was.cost_was_sent());
        t.unpriced_before += u64::from(was.cost_pico.is_none());
        t.unpriced_after += u64::from(after.cost_pico.is_none());
        t.cost_before_pico = t
            .cost_before_pico
            .saturating_add(was.cost_pico.unwrap_or(0));
        t.cost_after_pico = t
            .cost_after_pico
            .saturating_add(after.cost_pico.unwrap_or(0));
        if now.is_some() {
            if was.cost_pico != after.cost_pico {
                t.changed += 1;
            } else {
                self.relabelled += 1;
            }
        }
    }

    pub fn merge(&mut self, o: &Summary) {
        for (model, t) in &o.models {
            self.models.entry(model.clone()).or_default().add(t);
        }
        self.relabelled += o.relabelled;
    }

    /// All models together.
    pub fn total(&self) -> Tally {
        let mut all = Tally::default();
        for t in self.models.values() {
            all.add(t);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_795_000_000_000 + 1_234; // 2026-11-19T10:13:20.000Z and a bit
    const DAY: i64 = 86_400_000;

    fn check(v: serde_json::Value) -> Result<Range, Invalid> {
        serde_json::from_value::<RepricingRequest>(v)
            .unwrap()
            .check(NOW, 30 * DAY)
    }

    #[test]
    fn a_request_is_a_dry_run_unless_it_says_otherwise() {
        let r: RepricingRequest = serde_json::from_value(json!({})).unwrap();
        assert!(r.dry_run);
        let r: RepricingRequest = serde_json::from_value(json!({"dry_run": false})).unwrap();
        assert!(!r.dry_run);
        assert!(serde_json::from_value::<RepricingRequest>(json!({"form": 1})).is_err());
    }

    #[test]
    fn ranges_are_whole_ended_hours_the_history_still_holds() {
        let this_hour = hour_of(NOW) * HOUR_MS;
        let earliest = (hour_of(NOW - 29 * DAY) + 1) * HOUR_MS;
        assert_eq!(
            check(json!({})),
            Ok(Range {
                from_ms: earliest,
                to_ms: this_hour
            })
        );
        // Widened to whole hours; a `from` older than the history is brought forward.
        assert_eq!(
            check(json!({"from": this_hour - 5 * HOUR_MS + 10, "to": this_hour - HOUR_MS - 10})),
            Ok(Range {
                from_ms: this_hour - 5 * HOUR_MS,
                to_ms: this_hour - HOUR_MS
            })
        );
        assert_eq!(
            check(json!({"from": "2020-01-01T00:00:00Z", "to": this_hour}))
                .unwrap()
                .from_ms,
            earliest
        );
        for (body, field) in [
            (json!({"to": NOW}), "to"),
            (json!({"to": earliest - HOUR_MS}), "to"),
            (
                json!({"from": this_hour - HOUR_MS, "to": this_hour - 2 * HOUR_MS}),
                "from",
            ),
            (json!({"from": this_hour}), "from"),
            (json!({"from": "yesterday"}), "from"),
            (json!({"to": true}), "to"),
        ] {
            assert_eq!(check(body.clone()).unwrap_err().field, field, "{body}");
        }
    }

    #[test]
    fn the_tally_counts_changes_by_the_model_priced_after() {
        let event = |model: &str, canonical: Option<&str>, cost: Option<i64>| Event {
            model: model.into(),
            model_canonical: canonical.map(Into::into),
            cost_pico: cost,
            ..crate::domain::event::tests::sample_event()
        };
        let sent = Event {
            cost_source: Some(crate::domain::event::CostSource::Client),
            ..event("gpt-4o", None, Some(10))
        };
        let mut s = Summary::default();
        let was = event("GPT-4o", None, None);
        let now = event("GPT-4o", Some("gpt-4o"), Some(30));
        s.count(&was, Some(&now));
        s.count(&sent, None);
        let same = event("gpt-4o", None, Some(10));
        s.count(&same, Some(&same));
        let t = &s.models["gpt-4o"];
        assert_eq!((t.events, t.changed, t.kept), (3, 1, 1));
        assert_eq!((t.unpriced_before, t.unpriced_after), (1, 0));
        assert_eq!((t.cost_before_pico, t.cost_after_pico), (20, 50));
        assert_eq!(s.relabelled, 1);
        let mut twice = s.clone();
        twice.merge(&s);
        assert_eq!(twice.total().events, 6);
        assert_eq!(twice.relabelled, 2);
    }
}
