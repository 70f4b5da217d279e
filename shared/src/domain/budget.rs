//! Budgets: an amount a workspace (or one model, feature, source or end-user of it) means to
//! spend per calendar month or per rolling window of days, how much of it is spent, and what a
//! check before a call answers (allow, warn, or deny once it is used up).
//!
//! Budgets are first-class objects rather than alert conditions because they are asked about
//! synchronously (a pre-call check, a dashboard gauge) as well as watched. They are stored on the
//! workspace record with a version, exactly as its price rules are (`domain::pricing::custom`),
//! so that two changes made at once are both kept (`usecases::change_budgets`). Pure: spend is
//! measured from rollups by the caller (`usecases::budget_spent`).

use std::ops::RangeInclusive;

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::alert::{Filter, Invalid, MAX_USD};
use super::rollup::Dimension;

/// Budgets a workspace may hold: each is measured for every check.
pub const MAX_BUDGETS: usize = 20;
/// Days a rolling budget may span.
pub const ROLLING_DAYS: RangeInclusive<u32> = 1..=90;
/// The share of the amount, in percent, at which a budget warns unless told otherwise.
pub const DEFAULT_WARN_PCT: u32 = 80;

const DAY_MS: i64 = 86_400_000;

/// The period a budget's amount is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BudgetPeriod {
    /// The calendar month, in the workspace's timezone.
    Month,
    /// The last `days` days (1 to 90) up to now.
    Rolling { days: u32 },
}

/// One budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Budget {
    /// `bdg_…`
    pub id: String,
    pub name: String,
    /// The amount for one period, in USD.
    pub amount_usd: f64,
    pub period: BudgetPeriod,
    /// The one model, feature, source or end-user whose spend counts; absent for the whole
    /// workspace.
    #[serde(default)]
    pub scope: Option<Filter>,
    /// The share of the amount, in percent (1 to 100), from which a check warns.
    #[serde(default = "default_warn_pct")]
    pub warn_pct: u32,
    /// Whether a check answers `deny` once the amount is spent (else only `warn`).
    #[serde(default = "default_deny")]
    pub deny: bool,
    /// RFC 3339: when the budget was made.
    pub created_at: String,
    /// RFC 3339: when it was made or last changed.
    pub updated_at: String,
}

fn default_warn_pct() -> u32 {
    DEFAULT_WARN_PCT
}

fn default_deny() -> bool {
    true
}

/// A workspace's budgets, with the number of the change that made them: a change made from an
/// older number lost a race with another and is retried from the new one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkspaceBudgets {
    pub version: u64,
    pub items: Vec<Budget>,
}

fn refuse(field: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        field,
        message: message.into(),
    }
}

impl Budget {
    /// The budget as it may be stored (name and scope value trimmed), or which field is wrong.
    pub fn checked(mut self) -> Result<Budget, Invalid> {
        self.name = super::names::display_name("name", &self.name)
            .map_err(|e| refuse("name", e.to_string()))?;
        if !self.amount_usd.is_finite() || self.amount_usd <= 0.0 {
            return Err(refuse("amount_usd", "`amount_usd` must be more than 0"));
        }
        if self.amount_usd > MAX_USD {
            return Err(refuse(
                "amount_usd",
                format!("`amount_usd` must be at most {MAX_USD:.0}"),
            ));
        }
        if let BudgetPeriod::Rolling { days } = self.period
            && !ROLLING_DAYS.contains(&days)
        {
            return Err(refuse(
                "period",
                format!(
                    "`period.days` must be from {} to {}",
                    ROLLING_DAYS.start(),
                    ROLLING_DAYS.end()
                ),
            ));
        }
        if !(1..=100).contains(&self.warn_pct) {
            return Err(refuse("warn_pct", "`warn_pct` must be from 1 to 100"));
        }
        if let Some(scope) = &mut self.scope {
            scope.check().map_err(|e| Invalid {
                field: "scope",
                message: e.message.replace("`filter", "`scope"),
            })?;
            scope.value = scope.value.trim().to_owned();
        }
        Ok(self)
    }

    /// One line for the audit log: id, name, amount, period and scope.
    pub fn summary(&self) -> String {
        let period = match self.period {
            BudgetPeriod::Month => "month".to_owned(),
            BudgetPeriod::Rolling { days: 1 } => "day".to_owned(),
            BudgetPeriod::Rolling { days } => format!("{days} days"),
        };
        let mut s = format!(
            "{} \"{}\": ${:.2} per {period}",
            self.id, self.name, self.amount_usd
        );
        if let Some(f) = &self.scope {
            s.push_str(&format!(" ({} {})", f.dimension.as_str(), f.value));
        }
        s.push_str(if self.deny {
            ", denies when spent"
        } else {
            ", warns only"
        });
        s
    }
}

/// The period holding `now_ms`, as `[start, end)` in epoch ms. A month is the calendar month in
/// `timezone` (UTC when the name is not a known IANA zone), from local midnight on its 1st to
/// local midnight on the next month's 1st: 743 or 745 hours long in a month where clocks change.
/// A rolling period ends now.
pub fn period_bounds(period: &BudgetPeriod, timezone: &str, now_ms: i64) -> (i64, i64) {
    match *period {
        BudgetPeriod::Month => {
            let tz = super::analytics::timezone(timezone).unwrap_or(Tz::UTC);
            (
                super::analytics::month_start(now_ms, tz, 0),
                super::analytics::month_start(now_ms, tz, 1),
            )
        }
        BudgetPeriod::Rolling { days } => (now_ms - i64::from(days) * DAY_MS, now_ms),
    }
}

/// What a check answers; the most severe of several budgets wins (`Allow < Warn < Deny`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Warn,
    Deny,
}

/// Where a budget stands in its current period.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BudgetStatus {
    pub spent_usd: f64,
    /// What is left of the amount; 0 once it is spent.
    pub remaining_usd: f64,
    /// Spent as a percentage of the amount (past 100 when overspent).
    pub used_pct: f64,
    pub decision: Decision,
    /// RFC 3339: the period's first instant.
    pub period_start: String,
    /// RFC 3339: the instant after its last.
    pub period_end: String,
    /// The period's projected spend, where one was made.
    pub forecast_usd: Option<f64>,
}

/// Where `b` stands having spent `spent_usd` in the period `bounds`: deny once the amount is
/// spent (for a budget that denies), warn from `warn_pct` (and, for one that does not deny,
/// once spent), else allow.
pub fn status(
    b: &Budget,
    spent_usd: f64,
    bounds: (i64, i64),
    forecast_usd: Option<f64>,
) -> BudgetStatus {
    let used_pct = if b.amount_usd > 0.0 {
        spent_usd / b.amount_usd * 100.0
    } else {
        0.0
    };
    let spent = spent_usd >= b.amount_usd;
    let decision = if b.deny && spent {
        Decision::Deny
    } else if used_pct >= f64::from(b.warn_pct) || spent {
        Decision::Warn
    } else {
        Decision::Allow
    };
    BudgetStatus {
        spent_usd,
        remaining_usd: (b.amount_usd - spent_usd).max(0.0),
        used_pct,
        decision,
        period_start: super::time::rfc3339(bounds.0),
        period_end: super::time::rfc3339(bounds.1),
        forecast_usd,
    }
}

/// What a call about to be made is: the values a budget's scope is compared with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CallValues {
    /// The model as it will be sent (any spelling: `openai/gpt-4o`, `GPT-4o`).
    pub model: Option<String>,
    pub feature: Option<String>,
    pub source: Option<String>,
    pub user: Option<String>,
}

/// The model id rollups group by (`Dimension::Model`) for a name in any spelling: the bundled
/// table's canonical id when it prices the model, else the name trimmed and lowercased — what
/// an event's `canonical_model` holds when it is sent under that name.
pub fn canonical_model(model: &str) -> String {
    match super::pricing::PriceTable::bundled().lookup("", model) {
        Some(m) => m.canonical.to_string(),
        None => model.trim().to_ascii_lowercase(),
    }
}

/// Whether a call counts against `b`: always for a workspace-wide budget; for a scoped one,
/// when the call's value for the scope's dimension is the scope's (models compared by their
/// canonical ids, so `openai/gpt-4o` is `gpt-4o`).
pub fn applies(b: &Budget, call: &CallValues) -> bool {
    let Some(scope) = &b.scope else {
        return true;
    };
    let value = match scope.dimension {
        Dimension::Model => {
            return call
                .model
                .as_deref()
                .is_some_and(|m| canonical_model(m) == canonical_model(&scope.value));
        }
        Dimension::Feature => call.feature.as_deref(),
        Dimension::Source => call.source.as_deref(),
        Dimension::User => call.user.as_deref(),
        _ => None,
    };
    value.is_some_and(|v| v == scope.value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    fn budget() -> Budget {
        Budget {
            id: "bdg_1".into(),
            name: "LLM spend".into(),
            amount_usd: 100.0,
            period: BudgetPeriod::Month,
            scope: None,
            warn_pct: 80,
            deny: true,
            created_at: "2026-03-01T00:00:00.000Z".into(),
            updated_at: "2026-03-01T00:00:00.000Z".into(),
        }
    }

    fn scoped(dimension: Dimension, value: &str) -> Budget {
        Budget {
            scope: Some(Filter {
                dimension,
                value: value.into(),
            }),
            ..budget()
        }
    }

    #[test]
    fn serde_shapes_and_defaults() {
        assert_eq!(
            serde_json::to_value(BudgetPeriod::Month).unwrap(),
            serde_json::json!({"kind": "month"})
        );
        assert_eq!(
            serde_json::to_value(BudgetPeriod::Rolling { days: 7 }).unwrap(),
            serde_json::json!({"kind": "rolling", "days": 7})
        );
        let b: Budget = serde_json::from_value(serde_json::json!({
            "id": "bdg_1", "name": "n", "amount_usd": 5, "period": {"kind": "rolling", "days": 3},
            "created_at": "x", "updated_at": "x"
        }))
        .unwrap();
        assert_eq!((b.warn_pct, b.deny, b.scope), (80, true, None));
        assert_eq!(
            serde_json::to_value(Decision::Deny).unwrap(),
            serde_json::json!("deny")
        );
        let w: WorkspaceBudgets = serde_json::from_str(r#"{"version":0,"items":[]}"#).unwrap();
        assert_eq!(w, WorkspaceBudgets::default());
    }

    #[test]
    fn month_bounds_in_utc() {
        let (start, end) = period_bounds(&BudgetPeriod::Month, "UTC", ms("2026-02-14T12:00:00Z"));
        assert_eq!(
            (start, end),
            (ms("2026-02-01T00:00:00Z"), ms("2026-03-01T00:00:00Z"))
        );
        // The first and last instants of a month are in it; December rolls into January.
        let dec = ms("2026-12-01T00:00:00Z");
        assert_eq!(
            period_bounds(&BudgetPeriod::Month, "UTC", dec),
            (dec, ms("2027-01-01T00:00:00Z"))
        );
        assert_eq!(
            period_bounds(&BudgetPeriod::Month, "UTC", dec - 1),
            (ms("2026-11-01T00:00:00Z"), dec)
        );
        // An unknown zone is read as UTC.
        assert_eq!(
            period_bounds(&BudgetPeriod::Month, "Mars/Olympus", dec),
            (dec, ms("2027-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn month_bounds_follow_the_zone_across_a_clock_change() {
        // New York: EST (-05:00) on March 1st, EDT (-04:00) from March 8th 2026 on.
        let (start, end) = period_bounds(
            &BudgetPeriod::Month,
            "America/New_York",
            ms("2026-03-20T12:00:00Z"),
        );
        assert_eq!(start, ms("2026-03-01T00:00:00-05:00"));
        assert_eq!(end, ms("2026-04-01T00:00:00-04:00"));
        assert_eq!(end - start, (31 * 24 - 1) * 3_600_000);
        // Just past midnight UTC on April 1st it is still March 31st in New York.
        assert_eq!(
            period_bounds(
                &BudgetPeriod::Month,
                "America/New_York",
                ms("2026-04-01T02:00:00Z")
            ),
            (start, end)
        );
        // A second before New York's March begins it is February there, which ends as March starts.
        assert_eq!(
            period_bounds(
                &BudgetPeriod::Month,
                "America/New_York",
                ms("2026-03-01T04:59:59Z")
            )
            .1,
            start
        );
    }

    #[test]
    fn month_bounds_in_a_zone_ahead_of_utc() {
        // Kolkata is +05:30: its March starts at 18:30 UTC on February 28th.
        let (start, end) = period_bounds(
            &BudgetPeriod::Month,
            "Asia/Kolkata",
            ms("2026-02-28T19:00:00Z"),
        );
        assert_eq!(start, ms("2026-02-28T18:30:00Z"));
        assert_eq!(end, ms("2026-03-31T18:30:00Z"));
    }

    #[test]
    fn rolling_bounds_end_now() {
        let now = ms("2026-03-20T12:34:56Z");
        assert_eq!(
            period_bounds(&BudgetPeriod::Rolling { days: 7 }, "Asia/Kolkata", now),
            (ms("2026-03-13T12:34:56Z"), now)
        );
    }

    #[test]
    fn decisions_by_spend() {
        let bounds = (ms("2026-03-01T00:00:00Z"), ms("2026-04-01T00:00:00Z"));
        let b = budget();
        let s = status(&b, 50.0, bounds, Some(90.0));
        assert_eq!(s.decision, Decision::Allow);
        assert_eq!((s.remaining_usd, s.used_pct), (50.0, 50.0));
        assert_eq!(s.period_start, "2026-03-01T00:00:00.000Z");
        assert_eq!(s.period_end, "2026-04-01T00:00:00.000Z");
        assert_eq!(s.forecast_usd, Some(90.0));
        assert_eq!(status(&b, 79.99, bounds, None).decision, Decision::Allow);
        assert_eq!(status(&b, 80.0, bounds, None).decision, Decision::Warn);
        let over = status(&b, 100.0, bounds, None);
        assert_eq!((over.decision, over.remaining_usd), (Decision::Deny, 0.0));
        let over = status(&b, 150.0, bounds, None);
        assert_eq!((over.remaining_usd, over.used_pct), (0.0, 150.0));
        // A budget that does not deny only warns, even spent; one warning at 100% warns then.
        let soft = Budget {
            deny: false,
            ..budget()
        };
        assert_eq!(status(&soft, 150.0, bounds, None).decision, Decision::Warn);
        let late = Budget {
            warn_pct: 100,
            ..budget()
        };
        assert_eq!(status(&late, 99.0, bounds, None).decision, Decision::Allow);
        assert_eq!(status(&late, 100.0, bounds, None).decision, Decision::Deny);
        // The most severe of several wins.
        assert_eq!(
            [Decision::Warn, Decision::Deny, Decision::Allow]
                .into_iter()
                .max(),
            Some(Decision::Deny)
        );
    }

    #[test]
    fn scopes_apply_to_their_calls() {
        let call = CallValues {
            model: Some("openai/GPT-4o".into()),
            feature: Some("search".into()),
            source: Some("production".into()),
            user: Some("u1".into()),
        };
        assert!(applies(&budget(), &call));
        assert!(applies(&budget(), &CallValues::default()));
        assert!(applies(&scoped(Dimension::Model, "gpt-4o"), &call));
        assert!(applies(&scoped(Dimension::Model, "GPT-4o"), &call));
        assert!(!applies(&scoped(Dimension::Model, "gpt-4o-mini"), &call));
        assert!(applies(&scoped(Dimension::Feature, "search"), &call));
        assert!(!applies(&scoped(Dimension::Feature, "chat"), &call));
        assert!(applies(&scoped(Dimension::Source, "production"), &call));
        assert!(applies(&scoped(Dimension::User, "u1"), &call));
        assert!(!applies(&scoped(Dimension::User, "u2"), &call));
        // A call that does not say is not in a scoped budget.
        assert!(!applies(
            &scoped(Dimension::Feature, "search"),
            &CallValues::default()
        ));
        // A model the table does not know matches whatever its case.
        let unknown = CallValues {
            model: Some("In-House-7B".into()),
            ..CallValues::default()
        };
        assert!(applies(&scoped(Dimension::Model, "in-house-7b"), &unknown));
        assert_eq!(canonical_model(" In-House-7B "), "in-house-7b");
    }

    #[test]
    fn validation_names_the_field() {
        let ok = Budget {
            name: "  Search  ".into(),
            scope: Some(Filter {
                dimension: Dimension::Feature,
                value: " search ".into(),
            }),
            ..budget()
        }
        .checked()
        .unwrap();
        assert_eq!(ok.name, "Search");
        assert_eq!(ok.scope.unwrap().value, "search");
        let refused = |b: Budget| b.checked().unwrap_err();

        let e = refused(Budget {
            name: " ".into(),
            ..budget()
        });
        assert_eq!(e.field, "name");
        assert!(e.message.contains("name"), "{}", e.message);
        for amount in [0.0, -1.0, f64::NAN, f64::INFINITY, 2e9] {
            let e = refused(Budget {
                amount_usd: amount,
                ..budget()
            });
            assert_eq!(e.field, "amount_usd");
            assert!(e.message.contains("`amount_usd`"), "{}", e.message);
        }
        for days in [0, 91] {
            let e = refused(Budget {
                period: BudgetPeriod::Rolling { days },
                ..budget()
            });
            assert_eq!(e.field, "period");
            assert_eq!(e.message, "`period.days` must be from 1 to 90");
        }
        assert!(
            Budget {
                period: BudgetPeriod::Rolling { days: 90 },
                ..budget()
            }
            .checked()
            .is_ok()
        );
        for warn_pct in [0, 101] {
            let e = refused(Budget {
                warn_pct,
                ..budget()
            });
            assert_eq!(
                (e.field, e.message.as_str()),
                ("warn_pct", "`warn_pct` must be from 1 to 100")
            );
        }
        let e = refused(scoped(Dimension::Status, "error"));
        assert_eq!(e.field, "scope");
        assert!(e.message.contains("`scope.dimension`"), "{}", e.message);
        let e = refused(scoped(Dimension::User, "  "));
        assert_eq!(e.field, "scope");
        assert!(e.message.contains("`scope.value`"), "{}", e.message);
    }

    #[test]
    fn summaries_say_what_and_how_much() {
        let b = Budget {
            period: BudgetPeriod::Rolling { days: 7 },
            deny: false,
            ..scoped(Dimension::Feature, "search")
        };
        assert_eq!(
            b.summary(),
            "bdg_1 \"LLM spend\": $100.00 per 7 days (feature search), warns only"
        );
    }
}
