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

use super::anomaly;
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
    /// Any one value of a dimension (each end-user, feature, model or source) over an amount, or
    /// a number of requests, in the last `window_hours`: one notification per value that goes
    /// over, at most [`FAN_OUT_PER_RUN`] an evaluation and one digest naming the rest ([`fan_out`]).
    AnyValue {
        dimension: Dimension,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        over_usd: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        over_requests: Option<u64>,
        window_hours: u32,
    },
    /// An hour unusual for its hour of the week, with no threshold to set
    /// ([`anomaly`]): the workspace's total cost, requests, tokens or error rate, judged each
    /// complete hour against the same hour of earlier weeks. `dimension` (model, feature, source
    /// or user; feature when left out) is where the notification looks for what explains it.
    Anomaly {
        on: anomaly::Metric,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dimension: Option<Dimension>,
    },
}

/// Notifications an `any_value` rule sends in one evaluation, one per value newly over; the rest
/// go in one digest. A retry loop in a thousand users' sessions is one page, not a thousand.
pub const FAN_OUT_PER_RUN: usize = 5;
/// Values an `any_value` rule remembers as over, the largest first: past this many, the smallest
/// may be told again in a later digest (never more than one digest an evaluation).
pub const FAN_OUT_TRACKED: usize = 1_000;
/// Values a digest names; it counts the others.
pub const DIGEST_NAMES: usize = 10;
/// The longest window of an `any_value` rule: 30 days.
pub const FAN_OUT_HOURS: std::ops::RangeInclusive<u32> = 1..=720;

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
    pub const METRICS: &'static str = "`cost`, `budget`, `forecast`, `error_rate`, `latency_p95`, `coverage`, `drift`, \
         `any_value` or `anomaly`";

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
            "any_value",
            "anomaly",
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
            Condition::AnyValue {
                dimension,
                over_usd,
                over_requests,
                window_hours,
            } => {
                if !matches!(
                    dimension,
                    Dimension::Model | Dimension::Feature | Dimension::Source | Dimension::User
                ) {
                    return invalid(
                        "dimension",
                        "`dimension` must be `model`, `feature`, `source` or `user`",
                    );
                }
                match (over_usd, over_requests) {
                    (Some(usd), None) => money("over_usd", *usd)?,
                    (None, Some(n)) if (1..=1_000_000_000).contains(n) => {}
                    (None, Some(_)) => {
                        return invalid(
                            "over_requests",
                            "`over_requests` must be from 1 to 1000000000",
                        );
                    }
                    _ => {
                        return invalid(
                            "over_usd",
                            "an `any_value` rule needs one of `over_usd` or `over_requests`",
                        );
                    }
                }
                if !FAN_OUT_HOURS.contains(window_hours) {
                    return invalid(
                        "window_hours",
                        "`window_hours` must be from 1 to 720 (30 days)",
                    );
                }
                Ok(())
            }
            Condition::Anomaly { dimension, .. } => match dimension {
                None
                | Some(
                    Dimension::Model | Dimension::Feature | Dimension::Source | Dimension::User,
                ) => Ok(()),
                Some(_) => invalid(
                    "dimension",
                    "`dimension` must be `model`, `feature`, `source` or `user`",
                ),
            },
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
                | Condition::AnyValue { .. }
                | Condition::Anomaly { .. }
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

/// The hosts Slack serves incoming webhooks from (commercial and GovSlack).
pub const SLACK_HOSTS: [&str; 2] = ["hooks.slack.com", "hooks.slack-gov.com"];

/// Checks a Slack incoming-webhook URL (`https://hooks.slack.com/services/T…/B…/…`): the whole
/// URL is the credential, so it is sealed before it is stored and only a hint of it is shown.
/// Plain http to 127.0.0.1 is allowed only where `allow_local_http` (a local stand-in for
/// Slack, in development and tests).
pub fn slack_webhook_url(s: &str, allow_local_http: bool) -> Result<url::Url, Invalid> {
    let bad = |m: &str| Invalid {
        field: "slack_webhook_url",
        message: format!("`slack_webhook_url` {m}"),
    };
    let u = url::Url::parse(s.trim()).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    let local = u.scheme() == "http"
        && allow_local_http
        && u.host() == Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST));
    let slack = u.scheme() == "https"
        && u.port().is_none()
        && u.host_str().is_some_and(|h| SLACK_HOSTS.contains(&h));
    if !local && !slack {
        return Err(bad(
            "must be a Slack incoming webhook, https://hooks.slack.com/services/…",
        ));
    }
    let parts: Vec<&str> = u.path_segments().map(Iterator::collect).unwrap_or_default();
    let token_like =
        |p: &&str| !p.is_empty() && p.len() <= 100 && p.bytes().all(|b| b.is_ascii_alphanumeric());
    if parts.len() != 4 || parts[0] != "services" || !parts[1..].iter().all(token_like) {
        return Err(bad(
            "must be https://hooks.slack.com/services/T…/B…/… as Slack shows it (Apps → \
             Incoming Webhooks)",
        ));
    }
    if u.query().is_some() || u.fragment().is_some() || !u.username().is_empty() {
        return Err(bad("must not carry a query, a fragment or credentials"));
    }
    Ok(u)
}

/// What is shown of a Slack webhook URL once it is sealed: the Slack workspace and channel ids
/// and the secret's last four characters.
pub fn slack_hint(u: &url::Url) -> String {
    let parts: Vec<&str> = u.path_segments().map(Iterator::collect).unwrap_or_default();
    let host = u.host_str().unwrap_or_default();
    match parts.as_slice() {
        [_, team, channel, secret] => {
            let tail: String = secret
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            format!("{host}/services/{team}/{channel}/…{tail}")
        }
        _ => format!("{host}/…"),
    }
}

/// A rule's Slack channel: the incoming-webhook URL sealed by the vault (base64), bound to the
/// workspace and rule, and the hint shown in its place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackChannel {
    pub sealed: String,
    pub hint: String,
}

impl SlackChannel {
    /// What a sealed URL is bound to: opened under any other rule, it fails.
    pub fn context(workspace: &WorkspaceId, rule: &str) -> String {
        format!("alert-slack:{workspace}/{rule}")
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
    /// Post a readable message to a Slack channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackChannel>,
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
    /// `email`, `webhook` or `slack`.
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RuleState {
    pub level: u32,
    /// The period the level belongs to (`2026-11` or `2026-11-27`); empty for windows.
    #[serde(default)]
    pub period: String,
    /// Since when the rule has been at this level.
    pub since_ms: i64,
    /// An `any_value` rule's values over its threshold, the largest first (at most
    /// [`FAN_OUT_TRACKED`]): each was told once, when it went over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// An `anomaly` rule's detector: the open anomaly, the runs being confirmed, the last hour
    /// judged. One per rule, on the workspace's total: a detector per dimension value would
    /// need each value's eight weeks read every run and would tell one incident several times
    /// (a feature, its model, its users); the dimension only names the contributors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub anomaly: Option<anomaly::Detector>,
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
        /// What went over, for rules that watch each value: `user \`u_42\``.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        about: Option<String>,
    },
    /// More values went over at once than one evaluation tells one by one.
    Digest {
        /// How many, beyond those told one by one.
        count: u32,
        /// The largest of them, at most [`DIGEST_NAMES`].
        values: Vec<String>,
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
        // Judged value by value, by `fan_out`.
        Condition::AnyValue { .. } => (0, 0.0, c.fan_out_threshold()),
        // Judged hour by hour by its detector (the alerts function's `anomalies`).
        Condition::Anomaly { .. } => (0, 0.0, 0.0),
    }
}

impl Condition {
    /// An `any_value` rule's threshold, in its unit (USD or requests).
    pub fn fan_out_threshold(&self) -> f64 {
        match self {
            Condition::AnyValue {
                over_usd,
                over_requests,
                ..
            } => over_usd.unwrap_or_else(|| over_requests.unwrap_or(0) as f64),
            _ => 0.0,
        }
    }
}

/// One evaluation of an `any_value` rule, given every value over its threshold and by how much:
/// the new state, and a notification for each value newly over (the largest first, at most
/// [`FAN_OUT_PER_RUN`]) then one digest for the rest. A value that falls back under is dropped
/// quietly, and is told again if it goes over again.
pub fn fan_out(
    state: &RuleState,
    mut over: Vec<(String, f64)>,
    threshold: f64,
    dimension: Dimension,
    now_ms: i64,
) -> (RuleState, Vec<Transition>) {
    over.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let known: std::collections::HashSet<&str> = state.values.iter().map(String::as_str).collect();
    let new: Vec<&(String, f64)> = over
        .iter()
        .filter(|(v, _)| !known.contains(v.as_str()))
        .collect();
    let mut told: Vec<Transition> = new
        .iter()
        .take(FAN_OUT_PER_RUN)
        .map(|(v, amount)| Transition::Firing {
            level: 1,
            value: *amount,
            threshold,
            about: Some(format!("{} `{v}`", dimension.as_str())),
        })
        .collect();
    if new.len() > FAN_OUT_PER_RUN {
        let rest = &new[FAN_OUT_PER_RUN..];
        told.push(Transition::Digest {
            count: rest.len() as u32,
            values: rest
                .iter()
                .take(DIGEST_NAMES)
                .map(|(v, _)| v.clone())
                .collect(),
            threshold,
        });
    }
    let level = u32::from(!over.is_empty());
    let next = RuleState {
        level,
        period: String::new(),
        since_ms: if level == state.level {
            state.since_ms
        } else {
            now_ms
        },
        values: over
            .into_iter()
            .take(FAN_OUT_TRACKED)
            .map(|(v, _)| v)
            .collect(),
        anomaly: None,
    };
    (next, told)
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
        values: Vec::new(),
        anomaly: None,
    };
    if next > current {
        return (
            moved(next),
            Some(Transition::Firing {
                level: next,
                value,
                threshold,
                about: None,
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
                Transition::Resolved { .. } | Transition::Digest { .. } => 0,
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

    #[test]
    fn anomaly_rules_name_a_metric_and_maybe_a_dimension() {
        let c = Condition::parse(&json!({"metric": "anomaly", "on": "cost"})).unwrap();
        assert_eq!(
            c,
            Condition::Anomaly {
                on: anomaly::Metric::Cost,
                dimension: None
            }
        );
        assert!(!c.periodic());
        assert_eq!(
            level(&c, &Measured::default()).0,
            0,
            "judged by its detector"
        );
        let c = Condition::parse(
            &json!({"metric": "anomaly", "on": "error_rate", "dimension": "model"}),
        )
        .unwrap();
        assert!(matches!(
            c,
            Condition::Anomaly {
                on: anomaly::Metric::ErrorRate,
                dimension: Some(Dimension::Model)
            }
        ));
        for (bad, field) in [
            (json!({"metric": "anomaly"}), "condition"),
            (json!({"metric": "anomaly", "on": "latency"}), "condition"),
            (
                json!({"metric": "anomaly", "on": "cost", "over_usd": 5}),
                "condition",
            ),
            (
                json!({"metric": "anomaly", "on": "cost", "dimension": "status"}),
                "dimension",
            ),
            (
                json!({"metric": "anomaly", "on": "cost", "dimension": "total"}),
                "dimension",
            ),
        ] {
            let e = Condition::parse(&bad).map(|_| ()).unwrap_err();
            assert_eq!(e.field, field, "{bad}: {}", e.message);
        }
        // The detector is kept with the state, and a state without one reads as before.
        let s: RuleState = serde_json::from_value(json!({"level": 0, "since_ms": 0})).unwrap();
        assert_eq!(s.anomaly, None);
        let s = RuleState {
            anomaly: Some(anomaly::Detector::default()),
            ..RuleState::default()
        };
        let back: RuleState = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn any_value_tells_each_value_once_and_digests_the_rest() {
        let c = Condition::parse(
            &json!({"metric": "any_value", "dimension": "user", "over_usd": 5, "window_hours": 24}),
        )
        .unwrap();
        assert_eq!(c.fan_out_threshold(), 5.0);
        for (bad, field) in [
            (
                json!({"metric": "any_value", "dimension": "user", "window_hours": 24}),
                "over_usd",
            ),
            (
                json!({"metric": "any_value", "dimension": "user", "over_usd": 5, "over_requests": 9, "window_hours": 24}),
                "over_usd",
            ),
            (
                json!({"metric": "any_value", "dimension": "user", "over_requests": 0, "window_hours": 24}),
                "over_requests",
            ),
            (
                json!({"metric": "any_value", "dimension": "user", "over_usd": 5, "window_hours": 721}),
                "window_hours",
            ),
            (
                json!({"metric": "any_value", "dimension": "status", "over_usd": 5, "window_hours": 1}),
                "dimension",
            ),
        ] {
            let e = Condition::parse(&bad).map(|_| ()).unwrap_err();
            assert_eq!(e.field, field, "{bad}: {}", e.message);
        }
        let over = |n: usize| -> Vec<(String, f64)> {
            (0..n)
                .map(|i| (format!("u{i:02}"), 10.0 + i as f64))
                .collect()
        };
        let (s1, told) = fan_out(&RuleState::default(), over(8), 5.0, Dimension::User, 1);
        assert_eq!(told.len(), FAN_OUT_PER_RUN + 1);
        assert!(
            matches!(&told[0], Transition::Firing { about: Some(a), value, .. } if a == "user `u07`" && *value == 17.0),
            "largest first: {:?}",
            told[0]
        );
        assert!(
            matches!(&told[5], Transition::Digest { count: 3, values, .. } if values == &["u02", "u01", "u00"])
        );
        assert_eq!((s1.level, s1.since_ms, s1.values.len()), (1, 1, 8));
        // Nothing new: nothing told, the state kept.
        let (s2, told) = fan_out(&s1, over(8), 5.0, Dimension::User, 2);
        assert!(told.is_empty());
        assert_eq!(s2, s1);
        // One more goes over; one falls back (quietly) and, going over again later, is told again.
        let mut next = over(9);
        next.retain(|(v, _)| v != "u03");
        let (s3, told) = fan_out(&s2, next, 5.0, Dimension::User, 3);
        assert_eq!(told.len(), 1);
        assert!(!s3.values.contains(&"u03".to_owned()));
        let (_, told) = fan_out(&s3, over(9), 5.0, Dimension::User, 4);
        assert!(
            matches!(&told[..], [Transition::Firing { about: Some(a), .. }] if a == "user `u03`")
        );
        // All back under: ok again, without a notification.
        let (s5, told) = fan_out(&s3, Vec::new(), 5.0, Dimension::User, 5);
        assert!(told.is_empty());
        assert_eq!((s5.level, s5.since_ms, s5.values.len()), (0, 5, 0));
    }
}
