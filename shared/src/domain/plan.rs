//! The plan table (brief, section 4): the one place every limit comes from.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    Free,
    Pro,
    Team,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct PlanLimits {
    pub events_per_month: u64,
    pub history_days: u32,
    pub active_keys: u32,
    pub members: u32,
    pub alert_rules: u32,
    pub report_months: u32,
}

impl Plan {
    pub const ALL: [Plan; 3] = [Plan::Free, Plan::Pro, Plan::Team];

    pub fn limits(self) -> PlanLimits {
        match self {
            Plan::Free => PlanLimits {
                events_per_month: 10_000,
                history_days: 7,
                active_keys: 2,
                members: 1,
                alert_rules: 2,
                report_months: 3,
            },
            Plan::Pro => PlanLimits {
                events_per_month: 1_000_000,
                history_days: 90,
                active_keys: 20,
                members: 10,
                alert_rules: 20,
                report_months: 24,
            },
            Plan::Team => PlanLimits {
                events_per_month: 10_000_000,
                history_days: 365,
                active_keys: 100,
                members: 50,
                alert_rules: 100,
                report_months: 36,
            },
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Pro => "pro",
            Plan::Team => "team",
        }
    }

    pub fn parse(s: &str) -> Option<Plan> {
        Plan::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// How long request-level history is kept and shown, in milliseconds.
    /// The longest history any plan keeps: nothing stored is older (rollups aside).
    pub fn longest_history_ms() -> i64 {
        Plan::ALL
            .into_iter()
            .map(Plan::history_ms)
            .max()
            .unwrap_or(0)
    }

    pub fn history_ms(self) -> i64 {
        i64::from(self.limits().history_days) * 86_400_000
    }
}
