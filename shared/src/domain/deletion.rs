//! Deletion requests and their receipts: what an owner may ask to delete, how they confirm it,
//! which requests overlap, and what the receipt says (counts per kind of item, never content).
//! Pure: the deletion function runs the jobs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::time::HOUR_MS;

/// The kind of the jobs that carry deletions (`ports::Job::kind`). A finished one is the
/// security record that a deletion took place, kept for `RECORD_KEPT_MS`.
pub const JOB_KIND: &str = "deletion";

/// How long the record of a finished deletion (its scope, who asked, the receipt's counts) is
/// kept: a year, to answer "was this deleted, and when?" (docs/DELETION.md).
pub const RECORD_KEPT_MS: i64 = 365 * 86_400_000;

/// What a deletion job deletes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum Scope {
    /// A workspace's usage data (events, and what is derived from them) with
    /// `from_ms <= time < to_ms`; of one source label only, when given.
    Usage {
        from_ms: i64,
        to_ms: i64,
        source: Option<String>,
    },
    /// Everything the workspace has.
    Workspace,
}

impl Scope {
    /// Whether two jobs of the same workspace would touch the same data: a second one is refused
    /// while the first runs. A whole-workspace deletion overlaps everything.
    pub fn overlaps(&self, other: &Scope) -> bool {
        match (self, other) {
            (
                Scope::Usage {
                    from_ms: a0,
                    to_ms: a1,
                    source: sa,
                },
                Scope::Usage {
                    from_ms: b0,
                    to_ms: b1,
                    source: sb,
                },
            ) => {
                let sources_meet = match (sa, sb) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                };
                a0 < b1 && b0 < a1 && sources_meet
            }
            _ => true,
        }
    }

    /// The hours a usage deletion walks, first and one past the last.
    pub fn hours(&self) -> Option<(i64, i64)> {
        match self {
            Scope::Usage { from_ms, to_ms, .. } => Some((
                from_ms.div_euclid(HOUR_MS),
                (to_ms - 1).div_euclid(HOUR_MS) + 1,
            )),
            Scope::Workspace => None,
        }
    }
}

/// Where deleted data may still be after a deletion, said in every receipt (docs/DELETION.md):
/// it depends on where LLMtrack runs, and a receipt must not promise backups that do not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backups {
    /// On AWS: the table's point-in-time recovery (`RecoveryPeriodInDays: 35` in template.yaml).
    PointInTimeRecovery,
    /// On one machine: the server keeps no backups; its operator's copies are theirs to age out.
    Operator,
}

impl Backups {
    pub fn notice(self) -> &'static str {
        match self {
            Backups::PointInTimeRecovery => {
                "Deleted data is gone from LLMtrack's active systems. The database's point-in-time \
recovery backups, kept for 35 days, may still hold it until they age out; they are used only to \
recover from an outage, never as product data. A minimal record that this deletion took place \
(its scope, who asked, and the counts above) is kept in the security log for one year."
            }
            Backups::Operator => {
                "Deleted data is gone from this LLMtrack server's store, and the space it used is \
overwritten. This server keeps no backups of its own; copies its operator makes (with `llmtrack \
admin backup` or disk snapshots) may still hold it until they are replaced. A minimal record that \
this deletion took place (its scope, who asked, and the counts above) is kept in the security log \
for one year."
            }
        }
    }
}

/// The scope in words, for receipts: "all of it", or the range and source.
pub fn describe(scope: &Scope) -> String {
    match scope {
        Scope::Workspace => "everything".to_owned(),
        Scope::Usage {
            from_ms,
            to_ms,
            source,
        } => {
            let mut s = format!(
                "events from {} to {}",
                super::time::rfc3339(*from_ms),
                super::time::rfc3339(*to_ms)
            );
            if let Some(src) = source {
                s.push_str(&format!(" sent with source `{src}`"));
            }
            s
        }
    }
}

/// The body of `POST /v1/workspaces/{id}/deletions`, before it is checked.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct DeletionRequest {
    /// `usage` (events in a range, all of them when no range) or `workspace` (everything).
    pub scope: String,
    /// Usage only: RFC 3339 or epoch milliseconds; default: the beginning.
    pub from: Option<serde_json::Value>,
    /// Usage only: RFC 3339 or epoch milliseconds, exclusive; default: now.
    pub to: Option<serde_json::Value>,
    /// Usage only: delete only events sent with this source label.
    pub source: Option<String>,
    /// The workspace's name, typed back: nothing is deleted by a slip.
    pub confirm: String,
}

/// A rejected request: which field, and why (a 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        field,
        message: message.into(),
    }
}

pub(crate) fn instant(field: &'static str, v: &serde_json::Value) -> Result<i64, Invalid> {
    match v {
        serde_json::Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| invalid(field, format!("`{field}` must be whole epoch milliseconds"))),
        serde_json::Value::String(s) => chrono::DateTime::parse_from_rfc3339(s.trim())
            .map(|t| t.timestamp_millis())
            .map_err(|e| invalid(field, format!("`{field}` is not an RFC 3339 time ({e})"))),
        _ => Err(invalid(
            field,
            format!("`{field}` must be an RFC 3339 string or epoch milliseconds"),
        )),
    }
}

impl DeletionRequest {
    /// Checks the request against the workspace's name, at `now_ms`.
    pub fn check(&self, workspace_name: &str, now_ms: i64) -> Result<Scope, Invalid> {
        if self.confirm.trim() != workspace_name.trim() {
            return Err(invalid(
                "confirm",
                "`confirm` must be the workspace's name, exactly as it is shown",
            ));
        }
        match self.scope.trim() {
            "workspace" => {
                if self.from.is_some() || self.to.is_some() || self.source.is_some() {
                    return Err(invalid(
                        "scope",
                        "a whole-workspace deletion takes no `from`, `to` or `source`",
                    ));
                }
                Ok(Scope::Workspace)
            }
            "usage" => {
                let from_ms = self
                    .from
                    .as_ref()
                    .map(|v| instant("from", v))
                    .transpose()?
                    .unwrap_or(0)
                    .max(0);
                let to_ms = self
                    .to
                    .as_ref()
                    .map(|v| instant("to", v))
                    .transpose()?
                    // Events may be stamped up to 5 minutes ahead: "until now" covers them.
                    .unwrap_or(now_ms + 5 * 60_000);
                if from_ms >= to_ms {
                    return Err(invalid("from", "`from` must be before `to`"));
                }
                let source = match self.source.as_deref().map(str::trim) {
                    Some("") => return Err(invalid("source", "`source` is empty")),
                    Some(s) => Some(s.to_owned()),
                    None => None,
                };
                Ok(Scope::Usage {
                    from_ms,
                    to_ms,
                    source,
                })
            }
            other => Err(invalid(
                "scope",
                format!("`scope` must be `usage` or `workspace`, got `{other}`"),
            )),
        }
    }
}

/// What a finished deletion did: kinds of items and how many of each, when it started and
/// finished. It names no deleted content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Receipt {
    /// e.g. `events`, `rollups`, `keys`, `members`, `archive_objects`.
    pub deleted: BTreeMap<String, u64>,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
}

impl Receipt {
    pub fn count(&mut self, kind: &str, n: u64) {
        *self.deleted.entry(kind.to_owned()).or_default() += n;
    }

    /// The receipt as plain text, for the email to the owner.
    pub fn text(&self, what: &str) -> String {
        let mut out = format!("Deletion of {what}\n\n");
        for (kind, n) in &self.deleted {
            out.push_str(&format!("  {kind}: {n}\n"));
        }
        out.push_str(&format!(
            "\nStarted: {}\n",
            super::time::rfc3339(self.started_ms)
        ));
        if let Some(done) = self.finished_ms {
            out.push_str(&format!("Finished: {}\n", super::time::rfc3339(done)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(v: serde_json::Value) -> DeletionRequest {
        serde_json::from_value(v).unwrap()
    }

    const NOW: i64 = 1_795_000_000_000;

    #[test]
    fn each_receipt_names_the_backups_that_exist_where_it_runs() {
        // The AWS notice's period is the table's recovery period, as the template sets it.
        let template = include_str!("../../../template.yaml");
        assert!(template.contains("RecoveryPeriodInDays: 35"));
        assert!(
            Backups::PointInTimeRecovery
                .notice()
                .contains("kept for 35 days")
        );
        let local = Backups::Operator.notice();
        assert!(local.contains("keeps no backups of its own"), "{local}");
        assert!(!local.contains("point-in-time") && !local.contains("35 days"));
    }

    #[test]
    fn a_request_needs_the_workspace_name_typed_back() {
        let r = request(json!({"scope": "workspace", "confirm": "Acme "}));
        assert_eq!(r.check("Acme", NOW), Ok(Scope::Workspace));
        let r = request(json!({"scope": "workspace", "confirm": "acme"}));
        assert_eq!(r.check("Acme", NOW).unwrap_err().field, "confirm");
    }

    #[test]
    fn usage_ranges_default_to_everything_and_are_checked() {
        let r = request(json!({"scope": "usage", "confirm": "Acme"}));
        assert_eq!(
            r.check("Acme", NOW),
            Ok(Scope::Usage {
                from_ms: 0,
                to_ms: NOW + 300_000,
                source: None
            })
        );
        let r = request(json!({"scope": "usage", "confirm": "Acme",
            "from": "2026-11-02T00:00:00Z", "to": 1_795_000_000_000i64, "source": "staging"}));
        let Scope::Usage {
            from_ms, source, ..
        } = r.check("Acme", NOW).unwrap()
        else {
            panic!()
        };
        assert_eq!(from_ms, 1_793_577_600_000);
        assert_eq!(source.as_deref(), Some("staging"));
        for (body, field) in [
            (
                json!({"scope": "usage", "confirm": "Acme", "from": "2026-11-03T00:00:00Z", "to": "2026-11-02T00:00:00Z"}),
                "from",
            ),
            (
                json!({"scope": "usage", "confirm": "Acme", "from": "yesterday"}),
                "from",
            ),
            (
                json!({"scope": "usage", "confirm": "Acme", "to": true}),
                "to",
            ),
            (
                json!({"scope": "usage", "confirm": "Acme", "source": " "}),
                "source",
            ),
            (
                json!({"scope": "workspace", "confirm": "Acme", "source": "x"}),
                "scope",
            ),
            (json!({"scope": "all", "confirm": "Acme"}), "scope"),
        ] {
            let err = request(body.clone()).check("Acme", NOW).unwrap_err();
            assert_eq!(err.field, field, "{body}: {}", err.message);
        }
    }

    #[test]
    fn overlapping_jobs_are_recognised() {
        let usage = |a, b, s: Option<&str>| Scope::Usage {
            from_ms: a,
            to_ms: b,
            source: s.map(str::to_owned),
        };
        assert!(usage(0, 10, None).overlaps(&usage(5, 15, None)));
        assert!(!usage(0, 10, None).overlaps(&usage(10, 20, None)));
        assert!(!usage(0, 10, Some("a")).overlaps(&usage(0, 10, Some("b"))));
        assert!(usage(0, 10, Some("a")).overlaps(&usage(0, 10, None)));
        assert!(Scope::Workspace.overlaps(&usage(0, 1, Some("a"))));
        assert!(usage(0, 1, None).overlaps(&Scope::Workspace));
    }

    #[test]
    fn a_range_walks_the_hours_it_touches() {
        let s = Scope::Usage {
            from_ms: HOUR_MS + 1,
            to_ms: 3 * HOUR_MS,
            source: None,
        };
        assert_eq!(s.hours(), Some((1, 3)));
        let s = Scope::Usage {
            from_ms: 0,
            to_ms: 3 * HOUR_MS + 1,
            source: None,
        };
        assert_eq!(s.hours(), Some((0, 4)));
    }

    #[test]
    fn a_receipt_counts_kinds_and_names_no_content() {
        let mut r = Receipt {
            started_ms: NOW,
            ..Receipt::default()
        };
        r.count("events", 3);
        r.count("events", 2);
        r.count("keys", 1);
        r.finished_ms = Some(NOW + 1000);
        let text = r.text("workspace Acme");
        assert!(
            text.contains("events: 5") && text.contains("keys: 1"),
            "{text}"
        );
        assert!(text.contains("Finished: 2026-"), "{text}");
    }
}
