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
use super::rollup::{Dimension, VIEWS, View};

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
    /// With `budget_id`, the rule follows one of the workspace's budgets (`Workspace.budgets`):
    /// its amount, period (the month in the workspace's timezone, or its rolling days) and scope
    /// are the budget's, measured as the budget check measures them, and `thresholds_pct`
    /// defaults to the budget's `warn_pct` and 100 ([`Condition::following`]).
    Budget {
        /// Absent (0) when following a budget.
        #[serde(default)]
        budget_usd: f64,
        /// May be left out when following a budget.
        #[serde(default)]
        thresholds_pct: Vec<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        budget_id: Option<String>,
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
    /// ([`anomaly`]): the workspace's total cost, requests, tokens or error rate (or the rule's
    /// `filter` value's own), judged each complete hour against the same hour of earlier weeks.
    /// `dimension` (model, feature, source or user; feature when left out) is where the
    /// notification looks for what explains it. With `each`, every value of that dimension
    /// (the [`EACH_VALUES`] carrying the most of the metric) is judged on its own series.
    Anomaly {
        on: anomaly::Metric,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dimension: Option<Dimension>,
        /// One detector per value of this dimension ("any feature whose cost is unusual").
        #[serde(default, skip_serializing_if = "Option::is_none")]
        each: Option<Dimension>,
    },
}

/// Values an `anomaly` rule with `each` watches, each with its own detector: those carrying the
/// most of the metric over the last week, plus those with an anomaly open (so it can resolve).
/// Every run judges each watched value's hours against its own eight weeks; past 20, a value
/// carries too little of the traffic for its hours to be told apart from noise, the run's work
/// stays bounded, and so does the rule's state (one small detector per value, a few kilobytes).
pub const EACH_VALUES: usize = 20;

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
                budget_id,
            } => {
                match budget_id {
                    None => money("budget_usd", *budget_usd)?,
                    Some(id) => {
                        if id.is_empty() || id.len() > 64 {
                            return invalid("budget_id", "`budget_id` must be a budget's id");
                        }
                        if *budget_usd != 0.0 {
                            return invalid(
                                "budget_usd",
                                "a rule following a budget (`budget_id`) takes its amount from \
                                 the budget: leave `budget_usd` out",
                            );
                        }
                        if thresholds_pct.is_empty() {
                            return Ok(());
                        }
                    }
                }
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
            Condition::Anomaly {
                dimension, each, ..
            } => {
                let named = |d: &Option<Dimension>| {
                    matches!(
                        d,
                        None | Some(
                            Dimension::Model
                                | Dimension::Feature
                                | Dimension::Source
                                | Dimension::User
                        )
                    )
                };
                if !named(dimension) {
                    return invalid(
                        "dimension",
                        "`dimension` must be `model`, `feature`, `source` or `user`",
                    );
                }
                // Not `user`: each run reads the dimension's view over eight weeks, which for
                // end-users grows with them (thousands of rows an hour on a busy workspace, every
                // five minutes). One end-user's series is a `filter`; any end-user over an amount
                // is an `any_value` rule.
                if !matches!(
                    each,
                    None | Some(Dimension::Model | Dimension::Feature | Dimension::Source)
                ) {
                    return invalid(
                        "each",
                        "`each` must be `model`, `feature` or `source` (for end-users, watch one with a `filter`, or any over an amount with an `any_value` rule)",
                    );
                }
                Ok(())
            }
        }
    }

    /// The budget a `budget` rule follows (`budget_id`), if any.
    pub fn budget_id(&self) -> Option<&str> {
        match self {
            Condition::Budget { budget_id, .. } => budget_id.as_deref(),
            _ => None,
        }
    }

    /// A rule following budget `b` as it is judged: `b`'s amount, and the rule's thresholds or,
    /// when it set none, `b`'s `warn_pct` and 100 (only 100 when it warns at 100).
    pub fn following(&self, b: &super::budget::Budget) -> Condition {
        let thresholds = match self {
            Condition::Budget { thresholds_pct, .. } if !thresholds_pct.is_empty() => {
                thresholds_pct.clone()
            }
            _ if b.warn_pct < 100 => vec![b.warn_pct, 100],
            _ => vec![100],
        };
        Condition::Budget {
            budget_usd: b.amount_usd,
            thresholds_pct: thresholds,
            budget_id: Some(b.id.clone()),
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

/// The view an `anomaly` rule reads values of `by` from: the workspace-wide one, or the one
/// within the rule's filter value where the rollups have it (`model` within feature `search`).
/// `None` where they do not (nothing is kept by model within an end-user), and for `by` the
/// filter's own dimension (it has one value there).
pub fn anomaly_view(by: Dimension, filter: Option<&Filter>) -> Option<View> {
    match filter {
        None => Some(View::of(by)),
        Some(f) => VIEWS
            .contains(&(f.dimension, by))
            .then(|| View::within(by, f.dimension, f.value.clone())),
    }
}

/// Checks an `anomaly` rule's `each` against its `filter`: the values of `each` are read within
/// the filter's value, which the rollups hold only within one feature or one source.
pub fn anomaly_filter(c: &Condition, filter: Option<&Filter>) -> Result<(), Invalid> {
    let (
        Condition::Anomaly {
            each: Some(each), ..
        },
        Some(f),
    ) = (c, filter)
    else {
        return Ok(());
    };
    if anomaly_view(*each, Some(f)).is_none() {
        return invalid(
            "each",
            format!(
                "`each` ({}) cannot be watched within a `{}` filter: per-value series exist \
                 within one `feature` or one `source`, by another dimension (leave `filter` or \
                 `each` out)",
                each.as_str(),
                f.dimension.as_str()
            ),
        );
    }
    Ok(())
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
    /// judged. One per rule, on the workspace's total (or the filter's value): the dimension
    /// only names the contributors. Per-value detectors are opt-in (`each`, below): they read
    /// each value's eight weeks every run and can tell one incident several times (a feature,
    /// its model, its users).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub anomaly: Option<anomaly::Detector>,
    /// An `anomaly` rule with `each`: a detector per value watched (at most [`EACH_VALUES`]).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schema(value_type = Option<Object>)]
    pub each: std::collections::BTreeMap<String, ValueDetector>,
}

/// One value's detector in an `anomaly` rule with `each`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValueDetector {
    pub detector: anomaly::Detector,
    /// Its open anomaly was told on its own (not in a digest), so its end is told too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub told: bool,
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
    Resolved {
        value: f64,
        threshold: f64,
        /// The value that is back, for rules that watch each value: `feature \`summarize\``.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        about: Option<String>,
    },
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
            ..
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
        each: Default::default(),
    };
    (next, told)
}

/// The values an `anomaly` rule with `each` watches in an evaluation, given each value's amount
/// of the metric over the last week (requests for an error rate): those with an anomaly open
/// first, so that it can resolve even once the value has gone quiet, then the largest; at most
/// [`EACH_VALUES`]. A value with nothing in the week and nothing open is not watched.
pub fn each_watched(
    each: &std::collections::BTreeMap<String, ValueDetector>,
    volumes: &[(String, f64)],
) -> Vec<String> {
    let open = |v: &str| each.get(v).is_some_and(|d| d.detector.open().is_some());
    let mut all: std::collections::HashMap<&str, f64> = volumes
        .iter()
        .filter(|(_, amount)| *amount > 0.0)
        .map(|(v, amount)| (v.as_str(), *amount))
        .collect();
    for v in each.keys().filter(|v| open(v)) {
        all.entry(v.as_str()).or_insert(0.0);
    }
    let mut ranked: Vec<(bool, f64, &str)> = all
        .into_iter()
        .map(|(v, amount)| (open(v), amount, v))
        .collect();
    ranked.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| b.1.total_cmp(&a.1))
            .then_with(|| a.2.cmp(b.2))
    });
    ranked
        .into_iter()
        .take(EACH_VALUES)
        .map(|(_, _, v)| v.to_owned())
        .collect()
}

/// An hour's verdict on one value's own series (a `filter`'s, or each value's of `each`):
/// [`anomaly::assess`], except that an hour too small to tell (value and usual both under the
/// metric's minimum size: $1, 20 requests, 20,000 tokens) counts as usual for an anomaly that
/// opened on a usual that small. Most features, models and end-users are small: without this,
/// one whose hours all stay under the minimum would keep its first anomaly open for good (the
/// rule stuck firing, its next spike never told). An anomaly that opened on busy hours still
/// waits through quiet ones, as on the total.
pub fn value_verdict(
    detector: &anomaly::Detector,
    metric: anomaly::Metric,
    history: anomaly::Hourly<'_>,
    hour: i64,
    value: f64,
) -> anomaly::Verdict {
    let Some(baseline) = anomaly::baseline(metric, history, hour) else {
        return anomaly::Verdict::Unknown;
    };
    let verdict = anomaly::verdict(metric, &baseline, value);
    let small = |x: f64| x < metric.min_size();
    let back_to_small = verdict == anomaly::Verdict::Unknown
        && metric != anomaly::Metric::ErrorRate
        && detector.open().is_some_and(|o| small(o.first.usual))
        && value.is_finite()
        && small(value)
        && small(baseline.usual);
    if back_to_small {
        anomaly::Verdict::Normal
    } else {
        verdict
    }
}

/// What one value's detector did at an hour, in an `anomaly` rule with `each`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueMove {
    /// An anomaly opened on the value.
    Opened(anomaly::Finding),
    /// Its anomaly is over: the hour's amount and what is usual for it.
    Resolved { value: f64, usual: f64 },
}

/// What an `anomaly` rule with `each` tells of an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum EachTell {
    /// An anomaly opened on a value, told on its own: the caller writes its text (the finding,
    /// the value, what explains it).
    Opened {
        value: String,
        hour: i64,
        finding: anomaly::Finding,
    },
    /// A value's anomaly resolved, or the digest of the values beyond those told one by one.
    Other(Transition),
}

/// Which of an evaluation's per-value moves an `anomaly` rule with `each` tells, as `fan_out`
/// does for `any_value`: in hour order, the largest change first within an hour, at most
/// [`FAN_OUT_PER_RUN`] openings one by one and one digest naming the rest (an outage touches
/// every feature at once: one page, not twenty). A resolution is told only when its opening was
/// told on its own; one from a digest resolves quietly. Marks in `each` which open anomalies
/// were told (their values must be in it).
pub fn each_tell(
    each: &mut std::collections::BTreeMap<String, ValueDetector>,
    mut moves: Vec<(String, i64, ValueMove)>,
    dimension: Dimension,
) -> Vec<EachTell> {
    let size = |m: &ValueMove| match m {
        ValueMove::Opened(f) => (f.value - f.usual).abs(),
        ValueMove::Resolved { .. } => f64::INFINITY,
    };
    moves.sort_by(|a, b| {
        a.1.cmp(&b.1)
            .then_with(|| size(&b.2).total_cmp(&size(&a.2)))
            .then_with(|| a.0.cmp(&b.0))
    });
    let mut out = Vec::new();
    let mut opened = 0;
    let mut digest = Vec::new();
    for (value, hour, m) in moves {
        let told = each.get(&value).is_some_and(|d| d.told);
        let now_told = match m {
            ValueMove::Opened(finding) if opened < FAN_OUT_PER_RUN => {
                opened += 1;
                out.push(EachTell::Opened {
                    value: value.clone(),
                    hour,
                    finding,
                });
                true
            }
            ValueMove::Opened(_) => {
                digest.push(value.clone());
                false
            }
            ValueMove::Resolved {
                value: amount,
                usual,
            } => {
                if told {
                    out.push(EachTell::Other(Transition::Resolved {
                        value: amount,
                        threshold: usual,
                        about: Some(format!("{} `{value}`", dimension.as_str())),
                    }));
                }
                false
            }
        };
        if let Some(d) = each.get_mut(&value) {
            d.told = now_told;
        }
    }
    if !digest.is_empty() {
        out.push(EachTell::Other(Transition::Digest {
            count: digest.len() as u32,
            values: digest.into_iter().take(DIGEST_NAMES).collect(),
            threshold: 0.0,
        }));
    }
    out
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
        each: Default::default(),
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
        return (
            moved(next),
            Some(Transition::Resolved {
                value,
                threshold,
                about: None,
            }),
        );
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
    fn a_rule_following_a_budget_takes_its_amount_and_warns_at_its_warn_pct() {
        let parse = |v: serde_json::Value| Condition::parse(&v).map_err(|e| e.field);
        let follow = parse(serde_json::json!({"metric": "budget", "budget_id": "bdg_a"})).unwrap();
        assert_eq!(follow.budget_id(), Some("bdg_a"));
        for (v, field) in [
            (
                serde_json::json!({"metric": "budget", "budget_id": "bdg_a", "budget_usd": 5}),
                "budget_usd",
            ),
            (
                serde_json::json!({"metric": "budget", "budget_id": ""}),
                "budget_id",
            ),
            (
                serde_json::json!({"metric": "budget", "budget_id": "bdg_a", "thresholds_pct": [80, 50]}),
                "thresholds_pct",
            ),
            // Without a budget to follow, an amount is needed as before.
            (
                serde_json::json!({"metric": "budget", "thresholds_pct": [50]}),
                "budget_usd",
            ),
        ] {
            assert_eq!(parse(v.clone()), Err(field), "{v}");
        }
        let mut b = crate::domain::budget::Budget {
            id: "bdg_a".into(),
            name: "Search".into(),
            amount_usd: 200.0,
            period: crate::domain::budget::BudgetPeriod::Month,
            scope: None,
            warn_pct: 80,
            deny: true,
            created_at: String::new(),
            updated_at: String::new(),
        };
        let judged = follow.following(&b);
        assert_eq!(
            judged,
            Condition::Budget {
                budget_usd: 200.0,
                thresholds_pct: vec![80, 100],
                budget_id: Some("bdg_a".into()),
            }
        );
        let m = |usd| Measured {
            cost_usd: usd,
            ..Measured::default()
        };
        assert_eq!(level(&judged, &m(150.0)).0, 0);
        assert_eq!(level(&judged, &m(160.0)).0, 1);
        assert_eq!(level(&judged, &m(200.0)).0, 2);
        b.warn_pct = 100;
        assert_eq!(follow.levels(), 0);
        assert_eq!(follow.following(&b).levels(), 1);
        let own = parse(
            serde_json::json!({"metric": "budget", "budget_id": "bdg_a", "thresholds_pct": [50]}),
        )
        .unwrap();
        assert_eq!(own.following(&b).levels(), 1);
    }

    #[test]
    fn a_budget_notifies_once_per_threshold_and_starts_over_each_month() {
        let c = Condition::Budget {
            budget_usd: 100.0,
            thresholds_pct: vec![50, 80, 100],
            budget_id: None,
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
                dimension: None,
                each: None,
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
                dimension: Some(Dimension::Model),
                each: None,
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

    #[test]
    fn anomaly_rules_watch_a_value_or_each_value() {
        // Stored rules and states without the new fields read back as before.
        let c: Condition =
            serde_json::from_value(json!({"metric": "anomaly", "on": "cost"})).unwrap();
        assert!(matches!(c, Condition::Anomaly { each: None, .. }));
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"metric": "anomaly", "on": "cost"})
        );
        let s: RuleState = serde_json::from_value(json!({"level": 1, "since_ms": 3})).unwrap();
        assert!(s.each.is_empty());
        assert!(!serde_json::to_string(&s).unwrap().contains("each"));
        let t: Transition =
            serde_json::from_value(json!({"kind": "resolved", "value": 1.0, "threshold": 2.0}))
                .unwrap();
        assert!(matches!(t, Transition::Resolved { about: None, .. }));

        let each = Condition::parse(&json!({"metric": "anomaly", "on": "cost", "each": "feature"}))
            .unwrap();
        assert!(matches!(
            each,
            Condition::Anomaly {
                each: Some(Dimension::Feature),
                ..
            }
        ));
        let e = Condition::parse(&json!({"metric": "anomaly", "on": "cost", "each": "status"}))
            .unwrap_err();
        assert_eq!(e.field, "each", "{}", e.message);

        // A filter: the value's own series; `each` within it where the rollups have the view.
        let f = |d: Dimension, v: &str| Filter {
            dimension: d,
            value: v.into(),
        };
        let feature = f(Dimension::Feature, "summarize");
        assert_eq!(
            anomaly_view(Dimension::Total, None),
            Some(View::of(Dimension::Total))
        );
        assert_eq!(
            anomaly_view(Dimension::Model, Some(&feature)),
            Some(View::within(
                Dimension::Model,
                Dimension::Feature,
                "summarize"
            ))
        );
        assert_eq!(anomaly_view(Dimension::Feature, Some(&feature)), None);
        assert_eq!(
            anomaly_view(Dimension::Feature, Some(&f(Dimension::Model, "gpt-4o"))),
            None
        );
        assert_eq!(
            anomaly_view(Dimension::Model, Some(&f(Dimension::User, "u1"))),
            None
        );
        let plain = Condition::parse(&json!({"metric": "anomaly", "on": "cost"})).unwrap();
        assert!(anomaly_filter(&plain, Some(&f(Dimension::User, "u1"))).is_ok());
        let by_model =
            Condition::parse(&json!({"metric": "anomaly", "on": "cost", "each": "model"})).unwrap();
        assert!(anomaly_filter(&by_model, Some(&feature)).is_ok());
        assert!(anomaly_filter(&by_model, None).is_ok());
        for bad in [f(Dimension::Model, "gpt-4o"), f(Dimension::User, "u1")] {
            let e = anomaly_filter(&by_model, Some(&bad)).unwrap_err();
            assert_eq!(e.field, "each", "{}", e.message);
        }
        assert_eq!(
            anomaly_filter(&each, Some(&feature)).unwrap_err().field,
            "each"
        );
    }

    fn finding(value: f64, usual: f64) -> anomaly::Finding {
        anomaly::Finding {
            metric: anomaly::Metric::Cost,
            direction: if value >= usual {
                anomaly::Direction::Up
            } else {
                anomaly::Direction::Down
            },
            value,
            usual,
            ratio: value / usual,
            score: (value - usual) / 0.25,
        }
    }

    fn opened(usual: f64) -> ValueDetector {
        let mut detector = anomaly::Detector::default();
        let t = detector.step(1, Some(finding(usual * 8.0, usual)));
        assert!(matches!(t, Some(anomaly::Transition::Opened { .. })));
        ValueDetector {
            detector,
            told: true,
        }
    }

    #[test]
    fn each_value_watches_the_largest_and_keeps_the_open_ones() {
        let volumes: Vec<(String, f64)> = (0..30)
            .map(|i| (format!("f{i:02}"), f64::from(i)))
            .collect();
        let mut each = std::collections::BTreeMap::new();
        // f01 is small but has an anomaly open; "gone" sent nothing this week but is open too;
        // f05 is remembered but quiet, so it only counts by its size.
        each.insert("f01".to_owned(), opened(1.0));
        each.insert("gone".to_owned(), opened(1.0));
        each.insert("f05".to_owned(), ValueDetector::default());
        let watched = each_watched(&each, &volumes);
        assert_eq!(watched.len(), EACH_VALUES);
        assert_eq!(&watched[..3], ["f01", "gone", "f29"]);
        assert!(!watched.contains(&"f05".to_owned()));
        assert!(!watched.contains(&"f00".to_owned()), "nothing in the week");
        assert_eq!(watched.last().unwrap(), "f12");
        assert!(each_watched(&Default::default(), &[("x".into(), 0.0)]).is_empty());
    }

    #[test]
    fn each_value_tells_openings_up_to_the_cap_and_resolves_only_those_told() {
        let mut each: std::collections::BTreeMap<String, ValueDetector> = (0..8)
            .map(|i| (format!("f{i}"), ValueDetector::default()))
            .collect();
        // Eight features open in the same hour (an incident touching them all), f7 the largest.
        let moves = (0..8)
            .map(|i| {
                (
                    format!("f{i}"),
                    10,
                    ValueMove::Opened(finding(10.0 + f64::from(i), 1.0)),
                )
            })
            .collect();
        let told = each_tell(&mut each, moves, Dimension::Feature);
        assert_eq!(told.len(), FAN_OUT_PER_RUN + 1);
        assert!(
            matches!(&told[0], EachTell::Opened { value, hour: 10, .. } if value == "f7"),
            "largest first: {told:?}"
        );
        assert!(matches!(
            &told[5],
            EachTell::Other(Transition::Digest { count: 3, values, .. }) if values == &["f2", "f1", "f0"]
        ));
        assert!(each["f7"].told && each["f3"].told && !each["f2"].told);
        // Later, f7 (told) and f0 (in the digest) resolve, and f7 opens again.
        let moves = vec![
            (
                "f0".to_owned(),
                12,
                ValueMove::Resolved {
                    value: 1.0,
                    usual: 1.0,
                },
            ),
            (
                "f7".to_owned(),
                12,
                ValueMove::Resolved {
                    value: 1.1,
                    usual: 1.0,
                },
            ),
            ("f7".to_owned(), 14, ValueMove::Opened(finding(9.0, 1.0))),
        ];
        let told = each_tell(&mut each, moves, Dimension::Feature);
        assert_eq!(told.len(), 2, "{told:?}");
        assert!(matches!(
            &told[0],
            EachTell::Other(Transition::Resolved { about: Some(a), value, threshold })
                if a == "feature `f7`" && *value == 1.1 && *threshold == 1.0
        ));
        assert!(matches!(&told[1], EachTell::Opened { value, hour: 14, .. } if value == "f7"));
        assert!(each["f7"].told && !each["f0"].told);
    }

    #[test]
    fn a_small_value_back_to_usual_resolves_its_anomaly() {
        // Three weeks at $0.50 an hour (under the $1 minimum size), then $3.00: opened at once.
        let weeks = 3 * anomaly::HOURS_PER_WEEK;
        let mut values = vec![0.5; usize::try_from(weeks).unwrap() + 4];
        values[usize::try_from(weeks).unwrap()] = 3.0;
        let history = anomaly::Hourly {
            start: 0,
            values: &values,
        };
        let metric = anomaly::Metric::Cost;
        let mut d = anomaly::Detector::default();
        let v = value_verdict(&d, metric, history, weeks, 3.0);
        assert!(matches!(
            d.step(weeks, v),
            Some(anomaly::Transition::Opened { .. })
        ));
        // Back at $0.50: too small to tell for the detector alone, usual here.
        assert_eq!(
            anomaly::assess(metric, history, weeks + 1, 0.5),
            anomaly::Verdict::Unknown
        );
        let v = value_verdict(&d, metric, history, weeks + 1, 0.5);
        assert_eq!(v, anomaly::Verdict::Normal);
        assert_eq!(d.step(weeks + 1, v), None);
        let v = value_verdict(&d, metric, history, weeks + 2, 0.5);
        assert!(matches!(
            d.step(weeks + 2, v),
            Some(anomaly::Transition::Resolved { .. })
        ));

        // Busy even hours ($5), quiet odd ones ($0.50): an anomaly of a busy hour waits through
        // a quiet one, as on the total.
        let mut values: Vec<f64> = (0..weeks + 4)
            .map(|h| if h % 2 == 0 { 5.0 } else { 0.5 })
            .collect();
        values[usize::try_from(weeks).unwrap()] = 30.0;
        let history = anomaly::Hourly {
            start: 0,
            values: &values,
        };
        let mut d = anomaly::Detector::default();
        let v = value_verdict(&d, metric, history, weeks, 30.0);
        assert!(matches!(
            d.step(weeks, v),
            Some(anomaly::Transition::Opened { .. })
        ));
        assert_eq!(
            value_verdict(&d, metric, history, weeks + 1, 0.5),
            anomaly::Verdict::Unknown
        );
    }
}
