//! Alert rules: what they watch, how a rule is checked when it is written, and how a rule moves
//! between ok and firing as measurements come in. Pure: the alerts function measures (from
//! rollups), keeps each rule's state, and sends the notifications a transition calls for.
//!
//! A rule notifies once when it starts firing, once more for each higher budget threshold it
//! crosses, and once when it resolves where resolving means something (error rate and latency
//! over a sliding window). Period rules (cost of the day or month, budget, forecast) start over
//! silently when their period does: never a storm.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ids::WorkspaceId;
use super::rollup::Dimension;

/// The most a money threshold may be: past this it is a typo, not a budget.
pub const MAX_USD: f64 = 1e9;
/// Sliding windows, in minutes.
pub const WINDOWS_MINUTES: std::ops::RangeInclusive<u32> = 5..=1_440;
/// Budget thresholds per rule.
pub const MAX_THRESHOLDS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    Month,
}

/// What a rule watches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "metric", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// Cost of the current UTC day or month over an amount.
    Cost { period: Period, over_usd: f64 },
    /// A share of a monthly budget reached; fires at each threshold, in percent (50, 80, 100).
    Budget {
        budget_usd: f64,
        thresholds_pct: Vec<u32>,
    },
    /// The month-end forecast over a monthly budget.
    Forecast { budget_usd: f64 },
    /// Errors over a percentage of requests in the last `window_minutes`, once at least
    /// `min_requests` were made in it (so one failed request of two is not an incident).
    ErrorRate {
        over_pct: f64,
        window_minutes: u32,
        #[serde(default = "default_min_requests")]
        min_requests: u64,
    },
    /// p95 latency over a value in the last `window_minutes`.
    LatencyP95 { over_ms: f64, window_minutes: u32 },
    /// The share of the providers' billed tokens LLMtrack's events carry, over the last `days`
    /// whole UTC days, under a percentage: an app stopped sending events (needs a provider
    /// connection, `docs/RECONCILIATION.md`).
    Coverage { under_pct: f64, days: u32 },
    /// LLMtrack's computed cost off the billed cost by more than a percentage either way, over
    /// the last `days` whole UTC days.
    Drift { over_pct: f64, days: u32 },
}

/// Days a reconciliation rule may look back over.
pub const RECONCILIATION_DAYS: std::ops::RangeInclusive<u32> = 1..=31;

fn default_min_requests() -> u64 {
    20
}

/// The slice of traffic a rule watches: one model, feature, source or end-user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Filter {
    /// `model`, `feature`, `source` or `user`.
    pub dimension: Dimension,
    pub value: String,
}

/// A rejected rule: which field, and why (a 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> Result<(), Invalid> {
    Err(Invalid {
        field,
        message: message.into(),
    })
}

fn money(field: &'static str, v: f64) -> Result<(), Invalid> {
    if !v.is_finite() || v <= 0.0 {
        return invalid(field, format!("`{field}` must be more than 0"));
    }
    if v > MAX_USD {
        return invalid(field, format!("`{field}` must be at most {MAX_USD:.0}"));
    }
    Ok(())
}

fn reconciliation_days(v: u32) -> Result<(), Invalid> {
    if !RECONCILIATION_DAYS.contains(&v) {
        return invalid("days", "`days` must be from 1 to 31");
    }
    Ok(())
}

fn window(v: u32) -> Result<(), Invalid> {
    if !WINDOWS_MINUTES.contains(&v) || !v.is_multiple_of(5) {
        return invalid(
            "window_minutes",
            "`window_minutes` must be a multiple of 5 from 5 to 1440 (a day)",
        );
    }
    Ok(())
}

impl Condition {
    /// The metric names, for error messages.
    pub const METRICS: &'static str =
        "`cost`, `budget`, `forecast`, `error_rate`, `latency_p95`, `coverage` or `drift`";

    /// Reads a condition from the request's JSON, naming what is wrong.
    pub fn parse(v: &serde_json::Value) -> Result<Condition, Invalid> {
        let metric = v.get("metric").and_then(|m| m.as_str()).unwrap_or_default();
        let known = [
            "cost",
            "budget",
            "forecast",
            "error_rate",
            "latency_p95",
            "coverage",
            "drift",
        ];
        if !known.contains(&metric) {
            return Err(Invalid {
                field: "metric",
                message: format!("`metric` must be {}, got `{metric}`", Self::METRICS),
            });
        }
        let c: Condition = serde_json::from_value(v.clone()).map_err(|e| Invalid {
            field: "condition",
            message: format!("the `{metric}` condition is not valid: {e}"),
        })?;
        c.check()?;
        Ok(c)
    }

    pub fn check(&self) -> Result<(), Invalid> {
        match self {
            Condition::Cost { over_usd, .. } => money("over_usd", *over_usd),
            Condition::Budget {
                budget_usd,
                thresholds_pct,
            } => {
                money("budget_usd", *budget_usd)?;
                if thresholds_pct.is_empty() || thresholds_pct.len() > MAX_THRESHOLDS {
                    return invalid(
                        "thresholds_pct",
                        format!("`thresholds_pct` needs 1 to {MAX_THRESHOLDS} thresholds"),
                    );
                }
                if thresholds_pct.iter().any(|t| *t == 0 || *t > 1_000) {
                    return invalid(
                        "thresholds_pct",
                        "each threshold is a percentage of the budget from 1 to 1000",
                    );
                }
                if thresholds_pct.windows(2).any(|w| w[0] >= w[1]) {
                    return invalid(
                        "thresholds_pct",
                        "`thresholds_pct` must be increasing, without repeats (50, 80, 100)",
                    );
                }
                Ok(())
            }
            Condition::Forecast { budget_usd } => money("budget_usd", *budget_usd),
            Condition::ErrorRate {
                over_pct,
                window_minutes,
                min_requests,
            } => {
                if !over_pct.is_finite() || *over_pct <= 0.0 || *over_pct > 100.0 {
                    return invalid("over_pct", "`over_pct` must be more than 0 and at most 100");
                }
                if *min_requests == 0 || *min_requests > 1_000_000 {
                    return invalid("min_requests", "`min_requests` must be from 1 to 1000000");
                }
                window(*window_minutes)
            }
            Condition::LatencyP95 {
                over_ms,
                window_minutes,
            } => {
                if !over_ms.is_finite() || *over_ms <= 0.0 || *over_ms > 3_600_000.0 {
                    return invalid(
                        "over_ms",
                        "`over_ms` must be more than 0 and at most an hour",
                    );
                }
                window(*window_minutes)
            }
            Condition::Coverage { under_pct, days } => {
                if !under_pct.is_finite() || *under_pct <= 0.0 || *under_pct > 100.0 {
                    return invalid(
                        "under_pct",
                        "`under_pct` must be more than 0 and at most 100",
                    );
                }
                reconciliation_days(*days)
            }
            Condition::Drift { over_pct, days } => {
                if !over_pct.is_finite() || *over_pct <= 0.0 || *over_pct > 1_000.0 {
                    return invalid(
                        "over_pct",
                        "`over_pct` must be more than 0 and at most 1000",
                    );
                }
                reconciliation_days(*days)
            }
        }
    }

    /// How many levels of firing the rule has: a budget one per threshold, the others one.
    pub fn levels(&self) -> usize {
        match self {
            Condition::Budget { thresholds_pct, .. } => thresholds_pct.len(),
            _ => 1,
        }
    }

    /// Whether the rule watches a period (day or month) that starts over, rather than a
    /// sliding window that can recover.
    pub fn periodic(&self) -> bool {
        !matches!(
            self,
            Condition::ErrorRate { .. }
                | Condition::LatencyP95 { .. }
                | Condition::Coverage { .. }
                | Condition::Drift { .. }
        )
    }
}

impl Filter {
    pub fn check(&self) -> Result<(), Invalid> {
        if !matches!(
            self.dimension,
            Dimension::Model | Dimension::Feature | Dimension::Source | Dimension::User
        ) {
            return invalid(
                "filter",
                "`filter.dimension` must be `model`, `feature`, `source` or `user`",
            );
        }
        let v = self.value.trim();
        if v.is_empty() || v.len() > 200 {
            return invalid("filter", "`filter.value` must be 1 to 200 characters");
        }
        Ok(())
    }
}

/// Checks a webhook URL: https, to a public host. Plain http is allowed only to 127.0.0.1 and
/// only where `allow_local_http` (a local server, for development). Host names are checked
/// again when a notification is sent, against the addresses they resolve to.
pub fn webhook_url(s: &str, allow_local_http: bool) -> Result<url::Url, Invalid> {
    let bad = |m: &str| Invalid {
        field: "webhook_url",
        message: format!("`webhook_url` {m}"),
    };
    let u = url::Url::parse(s.trim()).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad(
            "must not carry credentials; the request is signed instead",
        ));
    }
    let local = u.scheme() == "http"
        && allow_local_http
        && u.host() == Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST));
    if local {
        return Ok(u);
    }
    if u.scheme() != "https" {
        return Err(bad("must use https"));
    }
    match u.host() {
        None => Err(bad("has no host")),
        // `localhost.` is the same name, fully qualified.
        Some(url::Host::Domain(d))
            if {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                d == "localhost" || d.ends_with(".localhost")
            } =>
        {
            Err(bad("must point at a public address, not localhost"))
        }
        Some(url::Host::Domain(_)) => Ok(u),
        Some(url::Host::Ipv4(ip)) if !public_ip(ip.into()) => Err(bad(&format!(
            "must point at a public address, not {ip} (private, loopback or link-local)"
        ))),
        Some(url::Host::Ipv6(ip)) if !public_ip(ip.into()) => Err(bad(&format!(
            "must point at a public address, not {ip} (private, loopback or link-local)"
        ))),
        Some(_) => Ok(u),
    }
}

/// IPv4 ranges of the IANA IPv4 Special-Purpose Address Registry (every entry, globally reachable
/// or not: a webhook has no business there), plus multicast, as (network, prefix length).
const SPECIAL_V4: [([u8; 4], u8); 19] = [
    ([0, 0, 0, 0], 8),          // "this network"
    ([10, 0, 0, 0], 8),         // private
    ([100, 64, 0, 0], 10),      // shared address space (CGNAT)
    ([127, 0, 0, 0], 8),        // loopback
    ([169, 254, 0, 0], 16),     // link-local (cloud metadata endpoints)
    ([172, 16, 0, 0], 12),      // private
    ([192, 0, 0, 0], 24),       // IETF protocol assignments (DS-Lite, NAT64 discovery, ...)
    ([192, 0, 2, 0], 24),       // documentation (TEST-NET-1)
    ([192, 31, 196, 0], 24),    // AS112-v4
    ([192, 52, 193, 0], 24),    // AMT
    ([192, 88, 99, 0], 24),     // deprecated 6to4 relay anycast
    ([192, 168, 0, 0], 16),     // private
    ([192, 175, 48, 0], 24),    // direct delegation AS112
    ([198, 18, 0, 0], 15),      // benchmarking
    ([198, 51, 100, 0], 24),    // documentation (TEST-NET-2)
    ([203, 0, 113, 0], 24),     // documentation (TEST-NET-3)
    ([224, 0, 0, 0], 4),        // multicast
    ([240, 0, 0, 0], 4),        // reserved
    ([255, 255, 255, 255], 32), // limited broadcast
];

/// IPv6 ranges of the IANA IPv6 Special-Purpose Address Registry inside global unicast
/// (`2000::/3`); everything outside `2000::/3` (loopback, IPv4-mapped and -compatible, NAT64
/// `64:ff9b::/96`, discard-only, ULA, link-local, site-local `fec0::/10`, multicast, SRv6)
/// is refused before these are looked at.
const SPECIAL_V6: [([u16; 8], u8); 5] = [
    ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), // IETF protocol assignments (Teredo, ORCHID, ...)
    ([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32), // documentation
    ([0x2002, 0, 0, 0, 0, 0, 0, 0], 16), // 6to4 (embeds an IPv4 address)
    ([0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0], 48), // direct delegation AS112
    ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), // documentation
];

/// Whether an address is on the public internet: in none of IANA's special-purpose ranges.
/// IPv6 must be global unicast, so no IPv4 address can be reached through an IPv6 form of it.
pub fn public_ip(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let ip = u32::from(v4);
            !SPECIAL_V4.iter().any(|(net, len)| {
                let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
                ip & mask == u32::from_be_bytes(*net) & mask
            })
        }
        std::net::IpAddr::V6(v6) => {
            let ip = u128::from(v6);
            let within = |net: u128, len: u8| {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                ip & mask == net & mask
            };
            within(0x2000_u128 << 112, 3)
                && !SPECIAL_V6
                    .iter()
                    .any(|(net, len)| within(u128::from(std::net::Ipv6Addr::from(*net)), *len))
        }
    }
}

/// A workspace's alert rule, with where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    pub id: String,
    pub workspace: WorkspaceId,
    pub name: String,
    pub condition: Condition,
    pub filter: Option<Filter>,
    /// Email the workspace's owners and admins.
    pub email: bool,
    /// POST a signed JSON notification here.
    pub webhook_url: Option<String>,
    pub state: RuleState,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Optimistic concurrency: incremented by every update.
    #[serde(default)]
    pub version: u64,
}

/// One notification of a rule's history: a transition (or a test) and how each channel took it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertEvent {
    /// Sortable (ULID): newest first is descending id order.
    pub id: String,
    pub rule_id: String,
    #[schema(value_type = String)]
    pub workspace: WorkspaceId,
    pub at_ms: i64,
    /// `None` for a test notification.
    pub transition: Option<Transition>,
    pub deliveries: Vec<Delivery>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    /// `email` or `webhook`.
    pub channel: String,
    pub ok: bool,
    pub attempts: u32,
    /// Why it failed, or where it went (recipients are counted, not named).
    pub detail: String,
}

/// What one evaluation measured, for the rule's condition and filter. `None` where there was
/// nothing to measure (no requests in the window, no latency reported).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Measured {
    pub cost_usd: f64,
    pub forecast_usd: Option<f64>,
    pub requests: u64,
    pub errors: u64,
    pub p95_ms: Option<f64>,
    /// Reconciliation over the rule's days; `None` when the providers billed nothing in them.
    pub coverage_pct: Option<f64>,
    pub drift_pct: Option<f64>,
}

/// Where a rule stands: 0 is ok; n > 0 is firing at level n (the nth budget threshold).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RuleState {
    pub level: u32,
    /// The period the level belongs to (`2026-11` or `2026-11-27`); empty for windows.
    #[serde(default)]
    pub period: String,
    /// Since when the rule has been at this level.
    pub since_ms: i64,
}

/// A change worth a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Transition {
    /// Started firing, or crossed a higher budget threshold.
    Firing {
        level: u32,
        /// What was measured, in the condition's unit (USD, percent, ms).
        value: f64,
        /// The threshold crossed, in the same unit.
        threshold: f64,
    },
    /// Back under the threshold (windows only).
    Resolved { value: f64, threshold: f64 },
}

/// The level a measurement puts a condition at, and the value and threshold behind it.
pub fn level(c: &Condition, m: &Measured) -> (u32, f64, f64) {
    match c {
        Condition::Cost { over_usd, .. } => {
            (u32::from(m.cost_usd > *over_usd), m.cost_usd, *over_usd)
        }
        Condition::Budget {
            budget_usd,
            thresholds_pct,
        } => {
            let pct = m.cost_usd / budget_usd * 100.0;
            let reached = thresholds_pct
                .iter()
                .filter(|t| pct >= f64::from(**t))
                .count() as u32;
            let threshold = thresholds_pct
                .get(reached.saturating_sub(1) as usize)
                .map_or(0.0, |t| f64::from(*t));
            (reached, pct, threshold)
        }
        Condition::Forecast { budget_usd } => {
            let f = m.forecast_usd.unwrap_or(0.0);
            (u32::from(f > *budget_usd), f, *budget_usd)
        }
        Condition::ErrorRate {
            over_pct,
            min_requests,
            ..
        } => {
            let pct = if m.requests == 0 {
                0.0
            } else {
                m.errors as f64 / m.requests as f64 * 100.0
            };
            (
                u32::from(m.requests >= *min_requests && pct > *over_pct),
                pct,
                *over_pct,
            )
        }
        Condition::LatencyP95 { over_ms, .. } => {
            let p = m.p95_ms.unwrap_or(0.0);
            (u32::from(p > *over_ms), p, *over_ms)
        }
        // Nothing billed is nothing to miss: not firing.
        Condition::Coverage { under_pct, .. } => match m.coverage_pct {
            Some(c) => (u32::from(c < *under_pct), c, *under_pct),
            None => (0, 100.0, *under_pct),
        },
        Condition::Drift { over_pct, .. } => match m.drift_pct {
            Some(d) => (u32::from(d.abs() > *over_pct), d, *over_pct),
            None => (0, 0.0, *over_pct),
        },
    }
}

/// One evaluation: the rule's new state, and the notification it calls for, if any. `period`
/// is the current day or month key for the condition (ignored by windows).
pub fn step(
    c: &Condition,
    state: &RuleState,
    m: &Measured,
    period: &str,
    now_ms: i64,
) -> (RuleState, Option<Transition>) {
    let (next, value, threshold) = level(c, m);
    let periodic = c.periodic();
    // A new period starts over at ok, without a notification.
    let current = if periodic && state.period != period {
        0
    } else {
        state.level
    };
    let moved = |level| RuleState {
        level,
        period: if periodic {
            period.to_owned()
        } else {
            String::new()
        },
        since_ms: now_ms,
    };
    if next > current {
        return (
            moved(next),
            Some(Transition::Firing {
                level: next,
                value,
                threshold,
            }),
        );
    }
    if next < current && !periodic {
        return (moved(next), Some(Transition::Resolved { value, threshold }));
    }
    if current != state.level || (periodic && state.period != period) {
        // The period rolled over: quietly at its level for the new one.
        return (moved(current.max(next)), None);
    }
    (state.clone(), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_are_checked_field_by_field() {
        let ok = [
            json!({"metric": "cost", "period": "day", "over_usd": 50}),
            json!({"metric": "budget", "budget_usd": 1000, "thresholds_pct": [50, 80, 100]}),
            json!({"metric": "forecast", "budget_usd": 1000}),
            json!({"metric": "error_rate", "over_pct": 5, "window_minutes": 15}),
            json!({"metric": "latency_p95", "over_ms": 2000, "window_minutes": 60}),
            json!({"metric": "coverage", "under_pct": 80, "days": 3}),
            json!({"metric": "drift", "over_pct": 10, "days": 7}),
        ];
        for c in ok {
            Condition::parse(&c).unwrap_or_else(|e| panic!("{c}: {e:?}"));
        }
        let bad = [
            (json!({"metric": "tokens", "over": 1}), "metric"),
            (json!({"over_usd": 1}), "metric"),
            (
                json!({"metric": "cost", "period": "week", "over_usd": 5}),
                "condition",
            ),
            (
                json!({"metric": "cost", "period": "day", "over_usd": -5}),
                "over_usd",
            ),
            (
                json!({"metric": "cost", "period": "day", "over_usd": 1e12}),
                "over_usd",
            ),
            (
                json!({"metric": "budget", "budget_usd": 0, "thresholds_pct": [50]}),
                "budget_usd",
            ),
            (
                json!({"metric": "budget", "budget_usd": 10, "thresholds_pct": []}),
                "thresholds_pct",
            ),
            (
                json!({"metric": "budget", "budget_usd": 10, "thresholds_pct": [80, 50]}),
                "thresholds_pct",
            ),
            (
                json!({"metric": "budget", "budget_usd": 10, "thresholds_pct": [0]}),
                "thresholds_pct",
            ),
            (json!({"metric": "forecast", "budget_usd": 0}), "budget_usd"),
            (
                json!({"metric": "error_rate", "over_pct": 150, "window_minutes": 15}),
                "over_pct",
            ),
            (
                json!({"metric": "error_rate", "over_pct": 5, "window_minutes": 7}),
                "window_minutes",
            ),
            (
                json!({"metric": "latency_p95", "over_ms": 0, "window_minutes": 5}),
                "over_ms",
            ),
            (
                json!({"metric": "coverage", "under_pct": 0, "days": 3}),
                "under_pct",
            ),
            (
                json!({"metric": "coverage", "under_pct": 90, "days": 0}),
                "days",
            ),
            (
                json!({"metric": "drift", "over_pct": 10, "days": 60}),
                "days",
            ),
            (
                json!({"metric": "drift", "over_pct": -1, "days": 3}),
                "over_pct",
            ),
            (
                json!({"metric": "latency_p95", "over_ms": 10, "window_minutes": 10, "extra": 1}),
                "condition",
            ),
        ];
        for (c, field) in bad {
            let e = Condition::parse(&c).unwrap_err();
            assert_eq!(e.field, field, "{c}: {}", e.message);
        }
        assert!(
            Filter {
                dimension: Dimension::Status,
                value: "error".into()
            }
            .check()
            .is_err()
        );
        assert!(
            Filter {
                dimension: Dimension::Model,
                value: " ".into()
            }
            .check()
            .is_err()
        );
        assert!(
            Filter {
                dimension: Dimension::User,
                value: "u-1".into()
            }
            .check()
            .is_ok()
        );
    }

    #[test]
    fn webhooks_go_to_public_https_only() {
        for ok in [
            "https://hooks.slack.com/services/T0/B0/x",
            "https://8.8.8.8/hook",
            "https://[2606:4700::1111]/h",
        ] {
            assert!(webhook_url(ok, false).is_ok(), "{ok}");
        }
        assert!(
            webhook_url("http://127.0.0.1:9000/hook", true).is_ok(),
            "local development"
        );
        for bad in [
            "http://example.com/hook",
            "http://127.0.0.1:9000/hook",
            "https://127.0.0.1/hook",
            "https://10.0.0.5/hook",
            "https://192.168.1.1/hook",
            "https://172.16.0.1/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/hook",
            "https://0.0.0.0/hook",
            "https://[::1]/hook",
            "https://[fe80::1]/hook",
            "https://[fd00::1]/hook",
            "https://[::ffff:10.0.0.1]/hook",
            "https://[::ffff:8.8.8.8]/hook",
            "https://[::10.0.0.1]/hook",
            "https://[64:ff9b::a00:1]/hook",
            "https://[64:ff9b::808:808]/hook",
            "https://[::ffff:0:a00:1]/hook",
            "https://[2002:a00:1::]/hook",
            "https://[2001::1]/hook",
            "https://[fec0::1]/hook",
            "https://[ff02::1]/hook",
            "https://[2001:db8::1]/hook",
            "https://[3fff::1]/hook",
            "https://192.0.0.1/hook",
            "https://192.0.0.170/hook",
            "https://198.18.0.1/hook",
            "https://240.0.0.1/hook",
            "https://255.255.255.255/hook",
            "https://224.0.0.1/hook",
            "https://localhost/hook",
            "https://localhost./hook",
            "https://api.LOCALHOST./hook",
            "https://user:pw@example.com/hook",
            "ftp://example.com/hook",
            "not a url",
        ] {
            let e = webhook_url(bad, false).unwrap_err();
            assert_eq!(e.field, "webhook_url", "{bad}");
        }
        assert!(webhook_url("http://127.0.0.1:9000/hook", false).is_err());
        assert!(webhook_url("http://10.0.0.1/hook", true).is_err());
    }

    fn cost(usd: f64) -> Measured {
        Measured {
            cost_usd: usd,
            ..Measured::default()
        }
    }

    #[test]
    fn a_budget_notifies_once_per_threshold_and_starts_over_each_month() {
        let c = Condition::Budget {
            budget_usd: 100.0,
            thresholds_pct: vec![50, 80, 100],
        };
        let mut s = RuleState::default();
        let mut sent = Vec::new();
        for (usd, month) in [
            (10.0, "2026-11"),
            (55.0, "2026-11"),
            (60.0, "2026-11"),
            (120.0, "2026-11"),
            (130.0, "2026-11"),
            (5.0, "2026-12"),
            (52.0, "2026-12"),
        ] {
            let (next, t) = step(&c, &s, &cost(usd), month, 0);
            s = next;
            sent.extend(t);
        }
        let levels: Vec<u32> = sent
            .iter()
            .map(|t| match t {
                Transition::Firing { level, .. } => *level,
                Transition::Resolved { .. } => 0,
            })
            .collect();
        // 50% once, then straight to 100% (80 and 100 crossed together), then 50% next month.
        assert_eq!(levels, vec![1, 3, 1]);
        assert_eq!(s.period, "2026-12");
    }

    #[test]
    fn a_window_rule_fires_and_resolves_once_each() {
        let c = Condition::ErrorRate {
            over_pct: 5.0,
            window_minutes: 15,
            min_requests: 20,
        };
        let m = |requests, errors| Measured {
            requests,
            errors,
            ..Measured::default()
        };
        let mut s = RuleState::default();
        let mut sent = Vec::new();
        for (r, e) in [(100, 1), (10, 5), (100, 10), (100, 20), (100, 2), (100, 1)] {
            let (next, t) = step(&c, &s, &m(r, e), "", 0);
            s = next;
            sent.extend(t);
        }
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert!(
            matches!(sent[0], Transition::Firing { level: 1, value, .. } if (value - 10.0).abs() < 1e-9)
        );
        assert!(matches!(sent[1], Transition::Resolved { .. }));
        assert_eq!(s.level, 0);
    }
}
