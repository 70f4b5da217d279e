//! Evaluating rules: measure what each rule watches, move it along its state machine
//! (`domain::alert::step`), and notify on a transition. The new state is saved before the
//! notification goes, so a run that dies in between never notifies twice. Also the automatic
//! plan usage alerts at 80% and 100% of the monthly event limit, once each per month.

use chrono::{Duration as Days, NaiveDate};
use llmtrack_shared::domain::alert::{
    self, AlertEvent, AlertRule, Condition, Filter, Measured, Period, Transition,
};
use llmtrack_shared::domain::report::Month;
use llmtrack_shared::domain::rollup::{Dimension, Rollup, View};
use llmtrack_shared::domain::sketch::LatencySketch;
use llmtrack_shared::domain::time::{HOUR_MS, hour_of, month_of, to_datetime};
use llmtrack_shared::domain::{analytics, anomaly, forecast, ids};
use llmtrack_shared::ports::{Workspace, all_workspace_ids};

use crate::{Deps, notify};

const DAY_MS: i64 = 24 * HOUR_MS;
/// At most this many of a window's newest events are read for its error rate and latency.
const WINDOW_EVENTS: usize = 50_000;
/// Days of history behind a forecast rule.
const FORECAST_HISTORY_DAYS: i64 = 56;
/// Complete hours an `anomaly` rule judges at most in one run, catching up after a gap (an
/// evaluator that did not run, a deploy): two days is enough to tell what is still going on
/// without reading and judging weeks of old news.
const ANOMALY_CATCH_UP_HOURS: i64 = 48;
/// Dimension values whose own baseline is computed to name an anomaly's contributors: the
/// largest this hour. Past 20, a value is too small to explain much of the excess.
const CONTRIBUTOR_VALUES: usize = 20;
/// History an hour's baseline reads: the same hour of [`anomaly::MAX_WEEKS`] weeks, plus a week
/// for the level adjustment (its 24-hour windows of the last 7 days, in earlier weeks too).
const ANOMALY_HISTORY_HOURS: i64 = (anomaly::MAX_WEEKS + 1) * anomaly::HOURS_PER_WEEK;

/// What one evaluation run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Evaluated {
    pub rules: usize,
    pub notifications: usize,
}

/// Evaluates every workspace's rules and plan usage.
pub async fn all(deps: &Deps) -> anyhow::Result<Evaluated> {
    let mut total = Evaluated::default();
    for id in all_workspace_ids(deps.store.workspaces.as_ref()).await? {
        let Some(ws) = deps.store.workspaces.workspace(&id).await? else {
            continue;
        };
        // One workspace failing (a corrupt rule, a timeout) must not stop the others.
        match workspace(deps, &ws).await {
            Ok(e) => {
                total.rules += e.rules;
                total.notifications += e.notifications;
            }
            Err(e) => {
                tracing::error!(workspace = %ws.id, error = format!("{e:#}"), "alert evaluation failed")
            }
        }
    }
    Ok(total)
}

/// Evaluates one workspace.
pub async fn workspace(deps: &Deps, ws: &Workspace) -> anyhow::Result<Evaluated> {
    let mut out = Evaluated::default();
    if ws.deleting.is_some() {
        return Ok(out);
    }
    let now = deps.clock.now_ms();
    out.notifications += plan_usage(deps, ws, now).await?;
    for mut rule in deps.store.alert_rules.alert_rules(&ws.id).await? {
        out.rules += 1;
        if matches!(rule.condition, Condition::AnyValue { .. }) {
            out.notifications += each_value(deps, ws, rule, now).await?;
            continue;
        }
        if matches!(rule.condition, Condition::Anomaly { .. }) {
            out.notifications += anomalies(deps, ws, rule, now).await?;
            continue;
        }
        if let Some(id) = rule.condition.budget_id() {
            let id = id.to_owned();
            out.notifications += followed_budget(deps, ws, rule, &id, now).await?;
            continue;
        }
        let m = measure(deps, ws, &rule, now).await?;
        let (state, t) = alert::step(
            &rule.condition,
            &rule.state,
            &m,
            &period(&rule.condition, now),
            now,
        );
        if state == rule.state {
            continue;
        }
        rule.state = state;
        rule.updated_ms = now;
        // Someone edited the rule meanwhile: the next run measures it afresh.
        if !deps.store.alert_rules.update_alert_rule(&mut rule).await? {
            continue;
        }
        if let Some(t) = t {
            record(deps, ws, &rule, Some(t), now).await?;
            out.notifications += 1;
        }
    }
    Ok(out)
}

/// A `budget` rule following one of the workspace's budgets (`budget_id`): the budget's spend as
/// the budget check measures it (its period, in the workspace's timezone; its scope), judged
/// against its amount at the rule's thresholds or the budget's `warn_pct` and 100
/// (`Condition::following`), each told once. A month budget starts over each month, quietly; a
/// rolling one goes back down quietly as spend leaves its window, so it can warn again. A budget
/// since deleted is never judged: the rule does not fire, and its view says why
/// (`RuleView.problem`). Returns the notifications sent.
async fn followed_budget(
    deps: &Deps,
    ws: &Workspace,
    mut rule: AlertRule,
    id: &str,
    now: i64,
) -> anyhow::Result<usize> {
    use llmtrack_shared::domain::budget::{BudgetPeriod, period_bounds};
    let Some(b) = ws.budgets.items.iter().find(|b| b.id == id) else {
        tracing::warn!(workspace = %ws.id, rule = %rule.id, budget = id, "alert rule follows a deleted budget: not evaluated");
        return Ok(0);
    };
    let bounds = period_bounds(&b.period, &ws.timezone, now);
    let spent =
        llmtrack_shared::usecases::budget_spent(deps.store.events.as_ref(), &ws.id, b, bounds)
            .await?;
    let condition = rule.condition.following(b);
    let m = Measured {
        cost_usd: spent,
        ..Measured::default()
    };
    let rolling = matches!(b.period, BudgetPeriod::Rolling { .. });
    // A month is keyed by its start (the workspace's local midnight of the 1st).
    let period = if rolling {
        String::new()
    } else {
        llmtrack_shared::domain::time::rfc3339(bounds.0)
    };
    let (mut state, t) = alert::step(&condition, &rule.state, &m, &period, now);
    if rolling {
        let (level, _, _) = alert::level(&condition, &m);
        if level < state.level {
            state.level = level;
            state.since_ms = now;
        }
    }
    if state == rule.state {
        return Ok(0);
    }
    rule.state = state;
    rule.updated_ms = now;
    // Someone edited the rule meanwhile: the next run measures it afresh.
    if !deps.store.alert_rules.update_alert_rule(&mut rule).await? {
        return Ok(0);
    }
    let Some(t) = t else { return Ok(0) };
    // Told with the budget's amount and the thresholds judged.
    let told = AlertRule { condition, ..rule };
    record(deps, ws, &told, Some(t), now).await?;
    Ok(1)
}

/// An `any_value` rule: every value of its dimension over the threshold in the window, told
/// once each as it goes over (`alert::fan_out`). Returns the notifications sent.
async fn each_value(
    deps: &Deps,
    ws: &Workspace,
    mut rule: AlertRule,
    now: i64,
) -> anyhow::Result<usize> {
    let Condition::AnyValue {
        dimension,
        over_usd,
        window_hours,
        ..
    } = rule.condition
    else {
        return Ok(0);
    };
    let to = hour_of(now) + 1;
    let rows = deps
        .store
        .events
        .rollups(
            &ws.id,
            &View::of(dimension),
            to - i64::from(window_hours),
            to,
        )
        .await?;
    let mut by_value: std::collections::HashMap<String, (i128, u64)> = Default::default();
    for (k, r) in rows {
        // Events without the dimension (no user id) are nobody's spend.
        if k.value.is_empty() {
            continue;
        }
        let v = by_value.entry(k.value).or_default();
        v.0 += r.cost_pico;
        v.1 += r.requests;
    }
    let threshold = rule.condition.fan_out_threshold();
    let over: Vec<(String, f64)> = by_value
        .into_iter()
        .map(|(value, (pico, requests))| {
            let amount = if over_usd.is_some() {
                pico as f64 / 1e12
            } else {
                requests as f64
            };
            (value, amount)
        })
        .filter(|(_, amount)| *amount > threshold)
        .collect();
    let (state, told) = alert::fan_out(&rule.state, over, threshold, dimension, now);
    if state == rule.state {
        return Ok(0);
    }
    rule.state = state;
    rule.updated_ms = now;
    if !deps.store.alert_rules.update_alert_rule(&mut rule).await? {
        return Ok(0);
    }
    for t in &told {
        record(deps, ws, &rule, Some(t.clone()), now).await?;
    }
    Ok(told.len())
}

/// An `anomaly` rule: its detector steps over every complete hour since the last one it judged
/// (at most [`ANOMALY_CATCH_UP_HOURS`]), each against the same hour of earlier weeks, and each
/// anomaly is told once when it opens (with what explains it) and once when it resolves. It
/// watches the workspace's total, or the filter value's own series (from the filter dimension's
/// view); with `each`, every value on its own ([`each_value_anomalies`]).
///
/// The current hour is never judged: ten minutes into an hour it has a sixth of its traffic,
/// which reads as an outage (and its cost as anything but a spike). A new rule starts with the
/// last complete hour, so anomalies from before it existed are not news. Hours are UTC epoch
/// hours (only differences of a week matter to the baseline); the text names the hour in the
/// workspace's timezone. Returns the notifications sent.
async fn anomalies(
    deps: &Deps,
    ws: &Workspace,
    rule: AlertRule,
    now: i64,
) -> anyhow::Result<usize> {
    let Condition::Anomaly {
        on,
        dimension,
        each,
    } = rule.condition
    else {
        return Ok(0);
    };
    if let Some(each) = each {
        return each_value_anomalies(deps, ws, rule, on, dimension, each, now).await;
    }
    let current = hour_of(now);
    let last = current - 1;
    let mut detector = rule.state.anomaly.clone().unwrap_or_default();
    let first = if rule.state.anomaly.is_some() {
        last - (ANOMALY_CATCH_UP_HOURS - 1)
    } else {
        last
    };
    let from = first - ANOMALY_HISTORY_HOURS;
    // The workspace's total, or the filter value's own hours.
    let rows = slice(deps, ws, rule.filter.as_ref(), from, current).await?;
    let values = hourly(
        rows.iter().map(|(hour, r)| (*hour, amount(on, r))),
        on,
        from,
        current,
    );
    let series = anomaly::Hourly {
        start: from,
        values: &values,
    };
    let mut told = Vec::new();
    // The detector ignores hours it has judged already (it keeps the last one), so after the
    // first run only the new complete hours move it; judging a known hour again is a few
    // thousand lookups, cheaper than a read.
    for hour in first..=last {
        let value = series.at(hour).unwrap_or(f64::NAN);
        // A filter value's series is often small: back to its small usual is usual.
        let verdict = if rule.filter.is_some() {
            alert::value_verdict(&detector, on, series, hour, value)
        } else {
            anomaly::assess(on, series, hour, value)
        };
        let t = match detector.step(hour, verdict) {
            Some(anomaly::Transition::Opened { hour, finding }) => {
                let by = dimension.unwrap_or(Dimension::Feature);
                // Within a filter value, only where the rollups keep `by` within it.
                let shares = match alert::anomaly_view(by, rule.filter.as_ref()) {
                    Some(view) => contributors(deps, ws, &view, hour, &finding).await?,
                    None => Vec::new(),
                };
                let mut label = anomaly::hour_of_week_label(hour, utc_offset_minutes(ws, hour));
                if let Some(f) = &rule.filter {
                    label = format!("{label} on {}={}", f.dimension.as_str(), f.value);
                }
                Transition::Firing {
                    level: 1,
                    value: finding.value,
                    threshold: finding.usual,
                    about: Some(anomaly::describe(&finding, &label, &shares)),
                }
            }
            Some(anomaly::Transition::Resolved { hour, peak, .. }) => Transition::Resolved {
                value,
                threshold: anomaly::baseline(on, series, hour).map_or(peak.usual, |b| b.usual),
                about: None,
            },
            None => continue,
        };
        told.push(t);
    }
    let level = u32::from(detector.open().is_some());
    let state = alert::RuleState {
        level,
        period: String::new(),
        since_ms: if level == rule.state.level {
            rule.state.since_ms
        } else {
            now
        },
        values: Vec::new(),
        anomaly: Some(detector),
        each: Default::default(),
    };
    save_and_tell(deps, ws, rule, state, told, now).await
}

/// An `anomaly` rule with `each`: a detector per value of the dimension (within the filter's
/// value, if any), for the [`alert::EACH_VALUES`] values carrying the most of the metric over
/// the last week and those with an anomaly open; each judged as [`anomalies`] judges the total,
/// on the value's own hours against its own usual. Openings beyond [`alert::FAN_OUT_PER_RUN`]
/// in a run go in one digest (`alert::each_tell`). A value seen for the first time starts with
/// the last complete hour, as a new rule does; one no longer watched is forgotten. Returns the
/// notifications sent.
async fn each_value_anomalies(
    deps: &Deps,
    ws: &Workspace,
    rule: AlertRule,
    on: anomaly::Metric,
    dimension: Option<Dimension>,
    each: Dimension,
    now: i64,
) -> anyhow::Result<usize> {
    // Refused when the rule is written: no view of `each` within the filter's dimension.
    let Some(view) = alert::anomaly_view(each, rule.filter.as_ref()) else {
        return Ok(0);
    };
    let current = hour_of(now);
    let last = current - 1;
    let from = last - (ANOMALY_CATCH_UP_HOURS - 1) - ANOMALY_HISTORY_HOURS;
    let rows = deps
        .store
        .events
        .rollups(&ws.id, &view, from, current)
        .await?;
    // What ranks the values: the metric over the last week (requests for an error rate, which
    // does not add up).
    let weight = |r: &Rollup| match on {
        anomaly::Metric::ErrorRate => r.requests as f64,
        m => amount(m, r),
    };
    let mut by_value: std::collections::HashMap<&str, Vec<(i64, f64)>> = Default::default();
    let mut volumes: std::collections::HashMap<&str, f64> = Default::default();
    for (k, r) in &rows {
        // Events without the dimension (no feature, no user id) are no value's.
        if k.value.is_empty() {
            continue;
        }
        by_value
            .entry(k.value.as_str())
            .or_default()
            .push((k.hour, amount(on, r)));
        if k.hour >= current - anomaly::HOURS_PER_WEEK {
            *volumes.entry(k.value.as_str()).or_default() += weight(r);
        }
    }
    let volumes: Vec<(String, f64)> = volumes
        .into_iter()
        .map(|(v, amount)| (v.to_owned(), amount))
        .collect();
    let watched = alert::each_watched(&rule.state.each, &volumes);
    let mut detectors = std::collections::BTreeMap::new();
    let mut moves = Vec::new();
    for value in &watched {
        // Open but gone from the whole history read: nothing left to judge it by.
        let Some(hours) = by_value.get(value.as_str()) else {
            continue;
        };
        let known = rule.state.each.get(value).cloned();
        let first = if known.is_some() {
            last - (ANOMALY_CATCH_UP_HOURS - 1)
        } else {
            last
        };
        let mut d = known.unwrap_or_default();
        let values = hourly(hours.iter().copied(), on, from, current);
        let series = anomaly::Hourly {
            start: from,
            values: &values,
        };
        for hour in first..=last {
            let amount = series.at(hour).unwrap_or(f64::NAN);
            let verdict = alert::value_verdict(&d.detector, on, series, hour, amount);
            match d.detector.step(hour, verdict) {
                Some(anomaly::Transition::Opened { hour, finding }) => {
                    moves.push((value.clone(), hour, alert::ValueMove::Opened(finding)));
                }
                Some(anomaly::Transition::Resolved { hour, peak, .. }) => moves.push((
                    value.clone(),
                    hour,
                    alert::ValueMove::Resolved {
                        value: amount,
                        usual: anomaly::baseline(on, series, hour).map_or(peak.usual, |b| b.usual),
                    },
                )),
                None => {}
            }
        }
        detectors.insert(value.clone(), d);
    }
    let mut told = Vec::new();
    for t in alert::each_tell(&mut detectors, moves, each) {
        told.push(match t {
            alert::EachTell::Opened {
                value,
                hour,
                finding,
            } => {
                // What explains it within the value, where the rollups keep `dimension` within
                // it (by model, source or user within one feature or source; not within a filter).
                let by = dimension.unwrap_or(Dimension::Feature);
                let within = Filter {
                    dimension: each,
                    value: value.clone(),
                };
                let shares = match alert::anomaly_view(by, Some(&within)) {
                    Some(view) if rule.filter.is_none() => {
                        contributors(deps, ws, &view, hour, &finding).await?
                    }
                    _ => Vec::new(),
                };
                let mut label = format!(
                    "{} on {}={value}",
                    anomaly::hour_of_week_label(hour, utc_offset_minutes(ws, hour)),
                    each.as_str()
                );
                if let Some(f) = &rule.filter {
                    label = format!("{label} in {}={}", f.dimension.as_str(), f.value);
                }
                Transition::Firing {
                    level: 1,
                    value: finding.value,
                    threshold: finding.usual,
                    about: Some(anomaly::describe(&finding, &label, &shares)),
                }
            }
            alert::EachTell::Other(t) => t,
        });
    }
    let open: Vec<String> = watched
        .into_iter()
        .filter(|v| {
            detectors
                .get(v)
                .is_some_and(|d| d.detector.open().is_some())
        })
        .collect();
    let level = u32::from(!open.is_empty());
    let state = alert::RuleState {
        level,
        period: String::new(),
        since_ms: if level == rule.state.level {
            rule.state.since_ms
        } else {
            now
        },
        values: open,
        anomaly: None,
        each: detectors,
    };
    save_and_tell(deps, ws, rule, state, told, now).await
}

/// Saves an anomaly rule's new state, then sends what it tells (nothing when someone edited
/// the rule meanwhile: the next run judges it afresh). Returns the notifications sent.
async fn save_and_tell(
    deps: &Deps,
    ws: &Workspace,
    mut rule: AlertRule,
    state: alert::RuleState,
    told: Vec<Transition>,
    now: i64,
) -> anyhow::Result<usize> {
    if state == rule.state {
        return Ok(0);
    }
    rule.state = state;
    rule.updated_ms = now;
    if !deps.store.alert_rules.update_alert_rule(&mut rule).await? {
        return Ok(0);
    }
    for t in &told {
        record(deps, ws, &rule, Some(t.clone()), now).await?;
    }
    Ok(told.len())
}

/// An hour's amount of a metric, from its rollup.
fn amount(on: anomaly::Metric, r: &Rollup) -> f64 {
    match on {
        anomaly::Metric::Cost => r.cost_pico as f64 / 1e12,
        anomaly::Metric::Requests => r.requests as f64,
        anomaly::Metric::Tokens => r.input_tokens.saturating_add(r.output_tokens) as f64,
        anomaly::Metric::ErrorRate => anomaly::error_rate(r.errors as f64, r.requests as f64),
    }
}

/// The hourly series of hours `[from, to)` from (hour, amount) pairs: an hour without a rollup
/// had no events, so 0 requests, tokens and cost (and no error rate), except before the first
/// hour with any, where the workspace was not sending yet (missing, NaN: "no traffic yet" must
/// not become the usual).
fn hourly(
    amounts: impl Iterator<Item = (i64, f64)>,
    on: anomaly::Metric,
    from: i64,
    to: i64,
) -> Vec<f64> {
    let empty = amount(on, &Rollup::default());
    let mut values = vec![f64::NAN; usize::try_from(to - from).unwrap_or(0)];
    let mut first = None;
    for (hour, v) in amounts {
        let Some(i) = usize::try_from(hour - from)
            .ok()
            .filter(|i| *i < values.len())
        else {
            continue;
        };
        if first.is_none_or(|f| i < f) {
            first = Some(i);
        }
        values[i] = if values[i].is_nan() { v } else { values[i] + v };
    }
    if let Some(first) = first {
        for v in values[first..].iter_mut().filter(|v| v.is_nan()) {
            *v = empty;
        }
    }
    values
}

/// What explains an anomaly: the values of a view's dimension (over the workspace, or within
/// the one value a rule watches) whose hour departs most from their own usual for that hour of
/// the week, as shares of the excess (`anomaly::contributors`). Only the
/// [`CONTRIBUTOR_VALUES`] largest values this hour are looked at. An error rate's excess is
/// shared out by failed calls (rates of different sizes do not add up).
async fn contributors(
    deps: &Deps,
    ws: &Workspace,
    view: &View,
    hour: i64,
    finding: &anomaly::Finding,
) -> anyhow::Result<Vec<(String, f64)>> {
    let by = view.by;
    let (metric, total_excess) = match finding.metric {
        anomaly::Metric::ErrorRate => (anomaly::Metric::Requests, 0.0),
        m => (m, (finding.value - finding.usual).abs()),
    };
    let of = |r: &Rollup| match finding.metric {
        anomaly::Metric::ErrorRate => r.errors as f64,
        m => amount(m, r),
    };
    let from = hour - ANOMALY_HISTORY_HOURS;
    let rows = deps
        .store
        .events
        .rollups(&ws.id, view, from, hour + 1)
        .await?;
    let first = rows.iter().map(|(k, _)| k.hour).min().unwrap_or(hour);
    let mut now: Vec<(&str, f64)> = rows
        .iter()
        .filter(|(k, _)| k.hour == hour)
        .map(|(k, r)| (k.value.as_str(), of(r)))
        .collect();
    // For a drop, the values that fell most: those with the most usual traffic are in the
    // baseline, not this hour, so the largest values this hour are not the ones to look at.
    let up = finding.direction == anomaly::Direction::Up;
    if !up {
        now = rows
            .iter()
            .filter(|(k, _)| k.hour == hour - anomaly::HOURS_PER_WEEK)
            .map(|(k, r)| (k.value.as_str(), of(r)))
            .collect();
    }
    now.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    now.truncate(CONTRIBUTOR_VALUES);
    let mut values = Vec::new();
    for (value, _) in now {
        let mut series = hourly(
            rows.iter()
                .filter(|(k, _)| k.value == value)
                .map(|(k, r)| (k.hour, of(r))),
            metric,
            from,
            hour + 1,
        );
        // Before the workspace's first event, missing; after it, an hour without this value
        // is 0 (a feature new this hour has a usual of 0).
        let start = usize::try_from(first - from).unwrap_or(0).min(series.len());
        series[start..]
            .iter_mut()
            .filter(|v| v.is_nan())
            .for_each(|v| *v = 0.0);
        let history = anomaly::Hourly {
            start: from,
            values: &series,
        };
        let (Some(current), Some(usual)) = (
            history.at(hour),
            anomaly::baseline(metric, history, hour).map(|b| b.usual),
        ) else {
            continue;
        };
        let label = if value.is_empty() {
            format!("no {}", by.as_str())
        } else {
            format!("{}={value}", by.as_str())
        };
        values.push(if up {
            (label, current, usual)
        } else {
            (label, usual, current)
        });
    }
    Ok(anomaly::contributors(total_excess, &values))
}

/// The workspace's UTC offset at an hour, in minutes (0 for an unknown timezone).
fn utc_offset_minutes(ws: &Workspace, hour: i64) -> i32 {
    use chrono::{Offset as _, TimeZone as _};
    analytics::timezone(&ws.timezone).map_or(0, |tz| {
        tz.offset_from_utc_datetime(&to_datetime(hour * HOUR_MS).naive_utc())
            .fix()
            .local_minus_utc()
            / 60
    })
}

/// Sends a rule's notification and adds it to the rule's history.
pub async fn record(
    deps: &Deps,
    ws: &Workspace,
    rule: &AlertRule,
    t: Option<Transition>,
    now: i64,
) -> anyhow::Result<AlertEvent> {
    let deliveries = notify::send(deps, ws, rule, t.as_ref(), now).await;
    let event = AlertEvent {
        id: ids::ulid_at(now).to_string(),
        rule_id: rule.id.clone(),
        workspace: ws.id.clone(),
        at_ms: now,
        transition: t,
        deliveries,
    };
    deps.store.alert_rules.append_alert_event(&event).await?;
    Ok(event)
}

/// The period a periodic rule's state belongs to: the UTC day or month.
fn period(c: &Condition, now: i64) -> String {
    match c {
        Condition::Cost {
            period: Period::Day,
            ..
        } => to_datetime(now).date_naive().to_string(),
        Condition::ErrorRate { .. }
        | Condition::LatencyP95 { .. }
        | Condition::Coverage { .. }
        | Condition::Drift { .. }
        | Condition::AnyValue { .. }
        | Condition::Anomaly { .. } => String::new(),
        _ => month_of(now),
    }
}

/// The rollups of the rule's slice of traffic in hours `[from, to)`, merged.
async fn slice(
    deps: &Deps,
    ws: &Workspace,
    filter: Option<&Filter>,
    from_hour: i64,
    to_hour: i64,
) -> anyhow::Result<Vec<(i64, Rollup)>> {
    let view = View::of(filter.map_or(Dimension::Total, |f| f.dimension));
    let events = &deps.store.events;
    // One value's rows only: an end-user's, not every end-user's (`Events::value_rollups`).
    let rows = match filter {
        None => events.rollups(&ws.id, &view, from_hour, to_hour).await?,
        Some(f) => {
            events
                .value_rollups(&ws.id, &view, &f.value, from_hour, to_hour)
                .await?
        }
    };
    Ok(rows.into_iter().map(|(k, r)| (k.hour, r)).collect())
}

fn cost(rows: &[(i64, Rollup)]) -> f64 {
    rows.iter().map(|(_, r)| r.cost_pico).sum::<i128>() as f64 / 1e12
}

async fn measure(
    deps: &Deps,
    ws: &Workspace,
    rule: &AlertRule,
    now: i64,
) -> anyhow::Result<Measured> {
    let filter = rule.filter.as_ref();
    let month_start = Month::of(now).start_ms();
    let end = hour_of(now) + 1;
    Ok(match &rule.condition {
        Condition::Cost { period, .. } => {
            let from = match period {
                Period::Day => now.div_euclid(DAY_MS) * DAY_MS,
                Period::Month => month_start,
            };
            Measured {
                cost_usd: cost(&slice(deps, ws, filter, hour_of(from), end).await?),
                ..Measured::default()
            }
        }
        Condition::Budget { .. } => Measured {
            cost_usd: cost(&slice(deps, ws, filter, hour_of(month_start), end).await?),
            ..Measured::default()
        },
        Condition::Forecast { .. } => {
            let history_start = month_start - FORECAST_HISTORY_DAYS * DAY_MS;
            let rows = slice(deps, ws, filter, hour_of(history_start), end).await?;
            Measured {
                forecast_usd: Some(month_end_forecast(&rows, now)),
                cost_usd: cost(
                    &rows
                        .iter()
                        .filter(|(h, _)| *h * HOUR_MS >= month_start)
                        .cloned()
                        .collect::<Vec<_>>(),
                ),
                ..Measured::default()
            }
        }
        Condition::ErrorRate { window_minutes, .. }
        | Condition::LatencyP95 { window_minutes, .. } => {
            let from = now - i64::from(*window_minutes) * 60_000;
            let events = deps
                .store
                .events
                .recent_events(&ws.id, from, now + 1, None, WINDOW_EVENTS)
                .await?;
            let mut m = Measured::default();
            let mut sketch = LatencySketch::default();
            for e in events
                .iter()
                .filter(|e| filter.is_none_or(|f| f.dimension.value_of(e) == f.value))
            {
                m.requests += 1;
                m.errors += u64::from(e.status == llmtrack_shared::domain::event::Status::Error);
                if let Some(l) = e.latency_ms {
                    sketch.add(l);
                }
            }
            m.p95_ms = sketch.quantile(0.95);
            m
        }
        // The last whole UTC days: today's import is partial until the day is over.
        Condition::Coverage { days, .. } | Condition::Drift { days, .. } => {
            let today = to_datetime(now).date_naive();
            let r = llmtrack_shared::usecases::reconciliation(
                deps.store.events.as_ref(),
                deps.store.connections.as_ref(),
                &ws.id,
                today - Days::days(i64::from(*days)),
                today,
            )
            .await?;
            Measured {
                coverage_pct: r.total.coverage_pct,
                drift_pct: r.total.drift_pct,
                ..Measured::default()
            }
        }
        // Measured value by value (`each_value`), or hour by hour (`anomalies`).
        Condition::AnyValue { .. } | Condition::Anomaly { .. } => Measured::default(),
    })
}

/// The month-end cost forecast at `now` from hourly rollups (UTC days), history starting on the
/// first day with any cost.
fn month_end_forecast(rows: &[(i64, Rollup)], now: i64) -> f64 {
    let month = Month::of(now);
    let date = |ms: i64| to_datetime(ms).date_naive();
    let start = date(month.start_ms());
    let mut by_day: std::collections::BTreeMap<NaiveDate, f64> = Default::default();
    for (h, r) in rows {
        *by_day.entry(date(h * HOUR_MS)).or_default() += r.cost_pico as f64 / 1e12;
    }
    let value = |d: NaiveDate| by_day.get(&d).copied().unwrap_or(0.0);
    let history_first =
        forecast::first_active(value, start - Days::days(FORECAST_HISTORY_DAYS), start);
    let fraction = (now - now.div_euclid(DAY_MS) * DAY_MS) as f64 / DAY_MS as f64;
    forecast::month_end(
        value,
        history_first,
        start,
        date(now),
        fraction,
        date(month.end_ms()),
    )
    .expected
}

/// The plan usage alerts: owners and admins hear once a month when the workspace has used 80%,
/// and again at 100%, of its monthly event limit.
async fn plan_usage(deps: &Deps, ws: &Workspace, now: i64) -> anyhow::Result<usize> {
    let month = month_of(now);
    let used = deps.store.events.usage(&ws.id, &month).await?;
    let limit = ws.plan.limits().events_per_month;
    let mut sent = 0;
    for pct in [80u64, 100] {
        if used * 100 < limit * pct {
            continue;
        }
        if !deps
            .store
            .workspaces
            .claim_notice(&ws.id, &format!("usage:{month}:{pct}"), now)
            .await?
        {
            continue;
        }
        let subject = format!(
            "LLMtrack: {} has used {pct}% of its {} events for {month}",
            ws.name, limit
        );
        let body = format!(
            "{subject}.\n\n{used} of {limit} events on the {} plan. {}\n\nUsage: {}/workspaces/{}/usage\n",
            ws.plan.as_str(),
            if pct >= 100 {
                "New events are refused until the month ends or the plan grows."
            } else {
                "At 100%, new events are refused until the month ends or the plan grows."
            },
            deps.public_url,
            ws.id
        );
        notify::email_admins(deps, ws, &subject, &body).await;
        sent += 1;
    }
    Ok(sent)
}
