//! `llmtrack demo`: a workspace worth looking at within a minute of the first build. A month of
//! varied events (weekly and daily rhythm, growth, an incident, a runaway agent loop, one model
//! the price table does not know), members, keys, alert rules evaluated once, and last month's
//! report, all written through the same validation, use cases and store as real traffic.

use anyhow::{Context as _, anyhow};
use llmtrack_shared::domain::access::Role;
use llmtrack_shared::domain::alert::{AlertRule, Condition, Filter, Period, RuleState};
use llmtrack_shared::domain::apikey::{RawKey, Scope};
use llmtrack_shared::domain::event::{self, Context, Event};
use llmtrack_shared::domain::ids::{self, WorkspaceId};
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::pricing::PriceTable;
use llmtrack_shared::domain::report::Month;
use llmtrack_shared::domain::rollup::Dimension;
use llmtrack_shared::domain::time::month_of;
use llmtrack_shared::ports::{IngestOutcome, Quota, Store};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use serde_json::json;

use crate::{Parts, admin};

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
/// Events are written in batches of this size, as a client would send them.
const BATCH: usize = 500;

/// What the demo made, for the command to print.
pub struct Demo {
    pub workspace: WorkspaceId,
    pub events: usize,
    pub cost_usd: f64,
    pub ingest_key: RawKey,
    pub rules: usize,
    pub report_month: Option<String>,
}

/// One kind of call the demo's app makes: a feature, the models it uses, its token sizes.
struct Feature {
    name: &'static str,
    share: f64,
    /// (provider, model, share within the feature)
    models: &'static [(&'static str, &'static str, f64)],
    median_input: f64,
    median_output: f64,
}

/// `acme-finetune-7b` is the workspace's own model: no price table knows it, so its events are
/// counted as unpriced (never as $0), as a real self-hosted model's would be.
const FEATURES: [Feature; 5] = [
    Feature {
        name: "chat",
        share: 0.40,
        models: &[
            ("openai", "gpt-4o-mini", 0.55),
            ("openai", "gpt-5-mini", 0.25),
            ("anthropic", "claude-sonnet-4-5", 0.20),
        ],
        median_input: 1_200.0,
        median_output: 320.0,
    },
    Feature {
        name: "search",
        share: 0.20,
        models: &[
            ("google", "gemini-2.5-flash", 0.75),
            ("openai", "gpt-4o-mini", 0.25),
        ],
        median_input: 3_000.0,
        median_output: 220.0,
    },
    Feature {
        name: "summarize",
        share: 0.15,
        models: &[
            ("anthropic", "claude-haiku-4-5", 0.65),
            ("openai", "gpt-4.1-mini", 0.35),
        ],
        median_input: 6_000.0,
        median_output: 420.0,
    },
    Feature {
        name: "extract",
        share: 0.15,
        models: &[
            ("openai", "gpt-4.1", 0.45),
            ("google", "gemini-2.5-flash", 0.40),
            ("acme", "acme-finetune-7b", 0.15),
        ],
        median_input: 2_000.0,
        median_output: 160.0,
    },
    Feature {
        name: "agent",
        share: 0.10,
        models: &[
            ("anthropic", "claude-sonnet-4-5", 0.55),
            ("openai", "o4-mini", 0.45),
        ],
        median_input: 8_000.0,
        median_output: 900.0,
    },
];

const END_USERS: u32 = 300;
/// The end-user whose agent loops on the 20th day.
const RUNAWAY_USER: &str = "user-0042";

/// Adds the demo workspace to the store behind `parts`, owned by `owner`, with about `events`
/// events over the last 30 days.
pub async fn seed(parts: &Parts, owner: &str, events: usize, now_ms: i64) -> anyhow::Result<Demo> {
    let store: &dyn Store = parts.store.as_ref();
    // Created 45 days ago, so last month is complete for it and gets a report.
    let created = now_ms - 45 * DAY_MS;
    let ws =
        admin::create_owned_workspace(store, "Acme AI (demo)", Plan::Team, Some(owner), created)
            .await?;
    for (email, role) in [
        ("ana@example.com", Role::Admin),
        ("sam@example.com", Role::Viewer),
    ] {
        admin::add_member(store, ws.id.as_str(), email, role, created).await?;
    }
    let (_, ingest_key) = admin::create_key(
        store,
        ws.id.as_str(),
        "backend",
        "production",
        Scope::Ingest,
        created,
    )
    .await?;
    admin::create_key(
        store,
        ws.id.as_str(),
        "staging",
        "staging",
        Scope::Ingest,
        created,
    )
    .await?;
    admin::create_key(
        store,
        ws.id.as_str(),
        "scripts",
        "scripts",
        Scope::Read,
        created,
    )
    .await?;

    let (count, cost_usd) = write_events(store, &ws.id, events, now_ms).await?;
    let rules = add_rules(store, &ws.id, now_ms).await?;
    // The evaluator runs once now, as `serve` does every minute: rules start where the data
    // puts them (the daily spend rule may already be firing, with its notification sent).
    let alerts = parts.alerts().deps;
    let ws_now = store
        .workspace(&ws.id)
        .await?
        .ok_or_else(|| anyhow!("the demo workspace vanished"))?;
    llmtrack_alerts::evaluate::workspace(&alerts, &ws_now).await?;

    let last_month = Month::of(now_ms).previous();
    let ran = llmtrack_reports::run_month(&parts.reports(), last_month, Some(&ws.id)).await?;
    Ok(Demo {
        workspace: ws.id,
        events: count,
        cost_usd,
        ingest_key,
        rules,
        report_month: (ran.reports > 0).then(|| last_month.to_string()),
    })
}

/// Generates and stores the events; returns how many were stored and their cost in dollars.
async fn write_events(
    store: &dyn Store,
    ws: &WorkspaceId,
    target: usize,
    now_ms: i64,
) -> anyhow::Result<(usize, f64)> {
    // Seeded: every demo has the same shape (ids and times shift with the day it is made).
    let mut rng = SmallRng::seed_from_u64(0x11_7ac4);
    let prices = PriceTable::bundled();
    let quota = Quota {
        month: month_of(now_ms),
        limit: Plan::Team.limits().events_per_month,
    };
    let start = now_ms - 30 * DAY_MS;
    let mut made = Vec::with_capacity(target);
    let mut i = 0;
    while made.len() < target {
        // Rejection sampling against the traffic's shape gives each hour its share.
        let ts = rng.random_range(start..now_ms - 60_000);
        if rng.random::<f64>() * MAX_RATE > rate(ts, start) {
            continue;
        }
        made.push(draw(&mut rng, ts, start, i));
        i += 1;
        // The runaway loop: one end-user's agent retries the same call for three hours.
        if in_runaway(ts, start) && rng.random::<f64>() < 0.6 {
            for _ in 0..4 {
                let at = ts + rng.random_range(0..60_000);
                let (source, mut e) = draw(&mut rng, at, start, i);
                e["feature"] = "agent".into();
                e["provider"] = "anthropic".into();
                e["model"] = "claude-sonnet-4-5".into();
                e["user_id"] = RUNAWAY_USER.into();
                e["input_tokens"] = (24_000 + rng.random_range(0..4_000)).into();
                e["cached_input_tokens"] = 20_000.into();
                made.push((source, e));
                i += 1;
            }
        }
    }
    made.sort_by_key(|(_, e)| e["timestamp"].as_i64());

    let mut stored = 0;
    let mut cost_pico: i128 = 0;
    for chunk in made.chunks(BATCH) {
        let mut batch: Vec<Event> = Vec::with_capacity(chunk.len());
        for (source, e) in chunk {
            let raw = serde_json::value::to_raw_value(e)?;
            let ctx = Context {
                now_ms,
                source,
                plan: Plan::Team,
                prices,
                custom: llmtrack_shared::domain::pricing::custom::Rules::none(),
            };
            let (event, _) = event::validate(&raw, &ctx)
                .map_err(|r| anyhow!("demo event refused: {}: {}", r.field, r.message))?;
            batch.push(event);
        }
        match store
            .ingest(ws, &batch, &quota)
            .await
            .context("storing the demo events")?
        {
            IngestOutcome::Stored(s) => stored += s.len(),
            IngestOutcome::QuotaExceeded { .. } => {
                return Err(anyhow!("the workspace's monthly event quota is used up"));
            }
        }
        cost_pico += batch
            .iter()
            .filter_map(|e| e.cost_pico)
            .map(i128::from)
            .sum::<i128>();
    }
    Ok((stored, cost_pico as f64 / 1e12))
}

/// The highest value of `rate`, for rejection sampling.
const MAX_RATE: f64 = 1.6 * 1.5;

/// Relative traffic at `ts`: business hours (UTC, a European team) over nights, weekdays over
/// weekends, and growing 50% over the month.
fn rate(ts: i64, start: i64) -> f64 {
    let hour = (ts / HOUR_MS).rem_euclid(24) as f64;
    // Days since Thursday 1 January 1970: 0 is Thursday, so 2 and 3 are Saturday and Sunday.
    let weekday = (ts / DAY_MS).rem_euclid(7);
    let daily = 0.15 + 1.45 * (-((hour - 13.0) / 4.0).powi(2)).exp();
    let weekly = if weekday == 2 || weekday == 3 {
        0.4
    } else {
        1.0
    };
    let growth = 1.0 + 0.5 * (ts - start) as f64 / (30 * DAY_MS) as f64;
    daily * weekly * growth
}

/// Whether `ts` falls in the `hours` from `hour` UTC on day `day` of the demo's month.
fn within(ts: i64, start: i64, day: i64, hour: i64, hours: i64) -> bool {
    let from = start - start.rem_euclid(DAY_MS) + day * DAY_MS + hour * HOUR_MS;
    (from..from + hours * HOUR_MS).contains(&ts)
}

/// The incident: day 12, 14:00 to 16:00 UTC, Anthropic overloaded.
fn in_incident(ts: i64, start: i64) -> bool {
    within(ts, start, 12, 14, 2)
}

/// The runaway agent loop: day 20, 09:00 to 12:00 UTC.
fn in_runaway(ts: i64, start: i64) -> bool {
    within(ts, start, 20, 9, 3)
}

fn pick<'a, T>(rng: &mut SmallRng, items: &'a [T], share: impl Fn(&T) -> f64) -> &'a T {
    let mut x = rng.random::<f64>() * items.iter().map(&share).sum::<f64>();
    for item in items {
        x -= share(item);
        if x <= 0.0 {
            return item;
        }
    }
    &items[items.len() - 1]
}

/// One event as a client would send it, and the source of the key it is sent with.
fn draw(rng: &mut SmallRng, ts: i64, start: i64, i: usize) -> (&'static str, serde_json::Value) {
    let feature = pick(rng, &FEATURES, |f| f.share);
    let &(provider, model, _) = pick(rng, feature.models, |m| m.2);
    let lognormal = |median: f64, sigma: f64| LogNormal::new(median.ln(), sigma).expect("valid");
    let input = lognormal(feature.median_input, 0.6).sample(rng).round() as u64 + 20;
    let output = lognormal(feature.median_output, 0.7).sample(rng).round() as u64 + 5;
    // Prompt caching where the app uses it (long system prompts on chat and agent).
    let cached = if matches!(feature.name, "chat" | "agent") && provider != "acme" {
        (input as f64 * rng.random_range(0.3..0.7)) as u64
    } else {
        0
    };
    let reasoning = if model == "o4-mini" || model == "gpt-5-mini" {
        (output as f64 * rng.random_range(0.4..0.75)) as u64
    } else {
        0
    };
    // Latency: a base per model plus time per output token, with a long tail.
    let base_ms = match provider {
        "google" => 350.0,
        "acme" => 120.0,
        _ => 500.0,
    };
    let per_token = if model.contains("mini") || model.contains("flash") || model.contains("haiku")
    {
        6.0
    } else {
        14.0
    };
    let latency = (base_ms + per_token * output as f64) * lognormal(1.0, 0.35).sample(rng);
    let error_rate = if provider == "anthropic" && in_incident(ts, start) {
        0.35
    } else {
        0.012
    };
    let error = rng.random::<f64>() < error_rate;
    // End-users: a few heavy ones, a long tail.
    let user = (f64::from(END_USERS) * rng.random::<f64>().powf(2.5)) as u32;
    let source = if rng.random::<f64>() < 0.85 {
        "production"
    } else {
        "staging"
    };
    let mut e = json!({
        "id": format!("demo-{i:07}"),
        "timestamp": ts,
        "provider": provider,
        "model": model,
        "feature": feature.name,
        "user_id": format!("user-{user:04}"),
        "input_tokens": input + cached,
        "cached_input_tokens": cached,
        "output_tokens": output + reasoning,
        "reasoning_tokens": reasoning,
        "latency_ms": (latency * 10.0).round() / 10.0,
        "status": if error { "error" } else { "success" },
        "metadata": {
            "region": if user.is_multiple_of(3) { "us-east-1" } else { "eu-west-1" },
            "prompt_version": if ts - start > 18 * DAY_MS { "v4" } else { "v3" },
        },
    });
    if error {
        let kind = if provider == "anthropic" && in_incident(ts, start) {
            "overloaded"
        } else {
            ["rate_limit", "timeout", "server_error"][rng.random_range(0..3)]
        };
        e["error_type"] = kind.into();
        // Failed calls still took time, and produced nothing.
        e["output_tokens"] = 0.into();
        e["reasoning_tokens"] = 0.into();
    }
    (source, e)
}

async fn add_rules(store: &dyn Store, ws: &WorkspaceId, now_ms: i64) -> anyhow::Result<usize> {
    let rules = [
        (
            "Daily spend over $5",
            Condition::Cost {
                period: Period::Day,
                over_usd: 5.0,
            },
            None,
        ),
        (
            "Monthly budget",
            Condition::Budget {
                budget_usd: 300.0,
                thresholds_pct: vec![50, 80, 100],
                budget_id: None,
            },
            None,
        ),
        (
            "Month-end forecast over budget",
            Condition::Forecast { budget_usd: 300.0 },
            None,
        ),
        (
            "Error rate over 5%",
            Condition::ErrorRate {
                over_pct: 5.0,
                window_minutes: 15,
                min_requests: 20,
            },
            None,
        ),
        (
            "Slow chat (p95 over 8 s)",
            Condition::LatencyP95 {
                over_ms: 8_000.0,
                window_minutes: 30,
            },
            Some(Filter {
                dimension: Dimension::Feature,
                value: "chat".into(),
            }),
        ),
    ];
    let max = Plan::Team.limits().alert_rules;
    for (name, condition, filter) in &rules {
        let rule = AlertRule {
            id: ids::prefixed("alr", now_ms),
            workspace: ws.clone(),
            name: (*name).to_owned(),
            condition: condition.clone(),
            filter: filter.clone(),
            email: true,
            webhook_url: None,
            slack: None,
            state: RuleState::default(),
            created_ms: now_ms,
            updated_ms: now_ms,
            version: 0,
        };
        store.create_alert_rule(&rule, max).await?;
    }
    Ok(rules.len())
}
