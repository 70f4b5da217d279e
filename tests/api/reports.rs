//! Monthly reports: a generated month's report checked number by number against the events,
//! its archived JSON, CSV and HTML read back, its emails (owners and admins who have not opted
//! out, once even when the month runs again), and the listing with expiring links.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use llmtrack_reports::{key, run_month};
use llmtrack_shared::domain::event::{self, Context, Event, Status};
use llmtrack_shared::domain::forecast::{self, Day};
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::pricing::PriceTable;
use llmtrack_shared::domain::report::{Figures, Line, Month, MonthlyReport};
use llmtrack_shared::domain::sketch::LatencySketch;
use llmtrack_shared::domain::time::{HOUR_MS, month_of};
use llmtrack_shared::ports::{Archive as _, Quota, Store};
use serde_json::json;

use crate::support::*;

const DAY_MS: i64 = 24 * HOUR_MS;

/// Events of every day of `month`, more as the month goes on, with a mix of models, users,
/// latencies and errors; some unpriced.
fn month_of_events(month: Month, per_day: usize, seed: usize) -> Vec<Event> {
    let prices = PriceTable::bundled();
    let models = [
        ("openai", "gpt-4o"),
        ("anthropic", "claude-sonnet-4-20250514"),
        ("acme", "in-house-7b"),
    ];
    let mut out = Vec::new();
    for d in 0..month.days() as i64 {
        let n = per_day + (d as usize % 5);
        for i in 0..n {
            let k = seed + d as usize * 97 + i;
            let (provider, model) = models[k % models.len()];
            let feature = ["chat", "search"][k % 2];
            let status = if k.is_multiple_of(9) {
                "error"
            } else {
                "success"
            };
            let ts = month.start_ms() + d * DAY_MS + (i as i64 * 3_517_000) % DAY_MS;
            let raw = json!({
                "id": format!("r-{seed}-{d}-{i}"), "timestamp": ts,
                "provider": provider, "model": model,
                "feature": feature,
                "user_id": format!("user-{}", k % 13),
                "input_tokens": 100 + (k * 37) % 900, "output_tokens": 10 + (k * 11) % 300,
                "latency_ms": 50 + (k * 7919) % 4000,
                "status": status,
            });
            let ctx = Context {
                now_ms: ts,
                source: ["production", "staging"][k % 2],
                plan: Plan::Team,
                prices,
                custom: llmtrack_shared::domain::pricing::custom::Rules::none(),
            };
            let raw = serde_json::value::to_raw_value(&raw).unwrap();
            out.push(event::validate(&raw, &ctx).unwrap().0);
        }
    }
    out
}

async fn store_events(store: &dyn Store, ws: &WorkspaceId, events: &[Event]) {
    for chunk in events.chunks(500) {
        let quota = Quota {
            month: month_of(chunk[0].ts_ms),
            limit: u64::MAX,
        };
        store.ingest(ws, chunk, &quota).await.unwrap();
    }
}

fn figures(events: &[&Event]) -> Figures {
    let requests = events.len() as u64;
    let errors = events.iter().filter(|e| e.status == Status::Error).count() as u64;
    Figures {
        requests,
        errors,
        error_rate: if requests == 0 {
            0.0
        } else {
            errors as f64 / requests as f64
        },
        input_tokens: events.iter().map(|e| e.tokens.input).sum(),
        output_tokens: events.iter().map(|e| e.tokens.output).sum(),
        cost_usd: events.iter().filter_map(|e| e.cost_pico).sum::<i64>() as f64 / 1e12,
        unpriced: events.iter().filter(|e| e.cost_pico.is_none()).count() as u64,
    }
}

fn assert_figures(what: &str, got: &Figures, want: &Figures) {
    assert_eq!(got.requests, want.requests, "{what} requests");
    assert_eq!(got.errors, want.errors, "{what} errors");
    assert_eq!(got.input_tokens, want.input_tokens, "{what} input tokens");
    assert_eq!(
        got.output_tokens, want.output_tokens,
        "{what} output tokens"
    );
    assert_eq!(got.unpriced, want.unpriced, "{what} unpriced");
    assert!(
        (got.cost_usd - want.cost_usd).abs() < 1e-9,
        "{what} cost {} vs {}",
        got.cost_usd,
        want.cost_usd
    );
    assert!(
        (got.error_rate - want.error_rate).abs() < 1e-12,
        "{what} error rate"
    );
}

/// Lines of one dimension, computed from the events, in the report's order.
fn expected_lines(events: &[&Event], value: impl Fn(&Event) -> String) -> Vec<(String, Figures)> {
    let mut by: BTreeMap<String, Vec<&Event>> = BTreeMap::new();
    for e in events {
        by.entry(value(e)).or_default().push(e);
    }
    let mut out: Vec<(String, Figures)> = by.into_iter().map(|(v, es)| (v, figures(&es))).collect();
    out.sort_by(|a, b| {
        b.1.cost_usd
            .total_cmp(&a.1.cost_usd)
            .then(b.1.requests.cmp(&a.1.requests))
            .then(a.0.cmp(&b.0))
    });
    out
}

fn assert_lines(what: &str, got: &[Line], want: &[(String, Figures)], total_cost: f64) {
    assert_eq!(
        got.iter().map(|l| l.value.as_str()).collect::<Vec<_>>(),
        want.iter().map(|(v, _)| v.as_str()).collect::<Vec<_>>(),
        "{what}"
    );
    for (l, (v, f)) in got.iter().zip(want) {
        assert_figures(&format!("{what} {v}"), &l.figures, f);
        assert!(
            (l.cost_share - f.cost_usd / total_cost).abs() < 1e-9,
            "{what} {v} share"
        );
    }
}

#[tokio::test]
async fn a_months_report_matches_its_events_is_archived_and_mailed_once() {
    let this = Month::of(now_ms());
    let month = this.previous();
    let before = month.previous();
    // The schedule's moment: the first of the month, after midnight UTC.
    let clock = TestClock::at(this.start_ms() + 2 * HOUR_MS);
    let app = spawn_app_with_clock(clock.clone()).await;
    // Created long before the month: the report covers all of it.
    let created = before.start_ms() - 30 * DAY_MS;
    let ws = llmtrack::admin::create_workspace(
        app.store.as_ref(),
        "Acme <Labs> & Co",
        Plan::Team,
        created,
    )
    .await
    .unwrap()
    .id;
    let id = ws.to_string();
    for (email, role) in [
        (
            "owner@example.com",
            llmtrack_shared::domain::access::Role::Owner,
        ),
        (
            "admin@example.com",
            llmtrack_shared::domain::access::Role::Admin,
        ),
        (
            "quiet@example.com",
            llmtrack_shared::domain::access::Role::Admin,
        ),
        (
            "viewer@example.com",
            llmtrack_shared::domain::access::Role::Viewer,
        ),
    ] {
        llmtrack::admin::add_member(app.store.as_ref(), &id, email, role, clock_now(&clock))
            .await
            .unwrap();
    }
    let owner = app.sign_in("owner@example.com").await;
    let quiet = app.sign_in("quiet@example.com").await;
    let (status, me) = quiet
        .patch("/v1/me", json!({"monthly_reports": false}))
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["monthly_reports"], false);

    let earlier = month_of_events(before, 8, 1);
    let events = month_of_events(month, 20, 2);
    store_events(app.store.as_ref(), &ws, &earlier).await;
    store_events(app.store.as_ref(), &ws, &events).await;

    let ran = run_month(&app.parts.reports(), month, None).await.unwrap();
    assert_eq!(ran.reports, 1);
    assert_eq!(ran.emails, 2, "the owner and the admin who did not opt out");

    let json = app
        .parts
        .archive
        .get(&key(&ws, month, "json"))
        .await
        .unwrap()
        .unwrap();
    let r: MonthlyReport = serde_json::from_slice(&json).unwrap();
    assert_eq!(r.month, month.to_string());
    let all: Vec<&Event> = events.iter().collect();
    let total = figures(&all);
    assert_figures("month", &r.totals, &total);
    let prev: Vec<&Event> = earlier.iter().collect();
    let prev_total = figures(&prev);
    assert_figures("previous month", &r.previous_month, &prev_total);
    let change = |a: f64, b: f64| (a - b) / b;
    assert!(
        (r.change.cost_usd.unwrap() - change(total.cost_usd, prev_total.cost_usd)).abs() < 1e-9
    );
    assert!(
        (r.change.requests.unwrap() - change(total.requests as f64, prev_total.requests as f64))
            .abs()
            < 1e-12
    );
    assert_lines(
        "model",
        &r.by_model,
        &expected_lines(&all, |e| e.canonical_model().to_owned()),
        total.cost_usd,
    );
    assert_lines(
        "provider",
        &r.by_provider,
        &expected_lines(&all, |e| e.provider.clone()),
        total.cost_usd,
    );
    assert_lines(
        "feature",
        &r.by_feature,
        &expected_lines(&all, |e| e.feature.clone().unwrap_or_default()),
        total.cost_usd,
    );
    assert_lines(
        "source",
        &r.by_source,
        &expected_lines(&all, |e| e.source.clone()),
        total.cost_usd,
    );
    let mut users = expected_lines(&all, |e| e.user_id.clone().unwrap_or_default());
    users.retain(|(v, _)| !v.is_empty());
    users.truncate(10);
    assert_lines("end-user", &r.top_users, &users, total.cost_usd);

    // Day by day.
    assert_eq!(r.daily.len() as u32, month.days());
    for d in &r.daily {
        let date = NaiveDate::parse_from_str(&d.date, "%Y-%m-%d").unwrap();
        let day: Vec<&Event> = all
            .iter()
            .copied()
            .filter(|e| llmtrack_shared::domain::time::to_datetime(e.ts_ms).date_naive() == date)
            .collect();
        let f = figures(&day);
        assert_eq!((d.requests, d.errors), (f.requests, f.errors), "{}", d.date);
        assert!((d.cost_usd - f.cost_usd).abs() < 1e-9, "{}", d.date);
    }

    // Latency percentiles: the same sketch built straight from the events.
    let mut sketch = LatencySketch::default();
    for e in &events {
        sketch.add(e.latency_ms.unwrap());
    }
    assert_eq!(r.latency.p50_ms, sketch.quantile(0.5));
    assert_eq!(r.latency.p95_ms, sketch.quantile(0.95));
    assert_eq!(r.latency.p99_ms, sketch.quantile(0.99));

    // The forecast of day 15, made again from the events' daily costs.
    let weekday = |d: NaiveDate| d.weekday().num_days_from_monday() as u8;
    let daily_cost = |m: Month, es: &[Event]| -> Vec<(NaiveDate, f64)> {
        (0..m.days() as i64)
            .map(|d| {
                let date = llmtrack_shared::domain::time::to_datetime(m.start_ms() + d * DAY_MS)
                    .date_naive();
                let cost = es
                    .iter()
                    .filter(|e| {
                        llmtrack_shared::domain::time::to_datetime(e.ts_ms).date_naive() == date
                    })
                    .filter_map(|e| e.cost_pico)
                    .sum::<i64>() as f64
                    / 1e12;
                (date, cost)
            })
            .collect()
    };
    let history: Vec<Day> = daily_cost(before, &earlier)
        .into_iter()
        .map(|(d, v)| Day {
            weekday: weekday(d),
            value: v,
        })
        .collect();
    let days = daily_cost(month, &events);
    let made: Vec<Day> = days[..15]
        .iter()
        .map(|(d, v)| Day {
            weekday: weekday(*d),
            value: *v,
        })
        .collect();
    let rest: Vec<u8> = days[15..].iter().map(|(d, _)| weekday(*d)).collect();
    let p = forecast::project(&history, &made, 1.0, &rest);
    let f = r.forecast.as_ref().expect("a forecast check");
    assert_eq!(f.made_on, days[14].0.to_string());
    assert!(
        (f.expected_usd - p.expected).abs() < 1e-6,
        "{} vs {}",
        f.expected_usd,
        p.expected
    );
    assert!((f.low_usd - p.low).abs() < 1e-6 && (f.high_usd - p.high).abs() < 1e-6);
    assert!((f.actual_usd - total.cost_usd).abs() < 1e-9);
    assert_eq!(
        f.within_interval,
        p.low <= total.cost_usd && total.cost_usd <= p.high
    );

    // The CSV and the HTML page, read back.
    let csv = app
        .parts
        .archive
        .get(&key(&ws, month, "csv"))
        .await
        .unwrap()
        .unwrap();
    let mut rows = csv::Reader::from_reader(csv.as_slice());
    let first = rows.records().next().unwrap().unwrap();
    assert_eq!(&first[0], "month");
    assert_eq!(first[2].parse::<u64>().unwrap(), total.requests);
    let html = String::from_utf8(
        app.parts
            .archive
            .get(&key(&ws, month, "html"))
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert!(
        html.contains("Acme &lt;Labs&gt; &amp; Co"),
        "the name is escaped"
    );
    assert!(!html.contains("<Labs>"));
    assert!(html.contains(&r.by_model[0].value));

    // Mail: once each to the owner and the admin, never to the viewer or the one who opted out.
    for (to, n) in [
        ("owner@example.com", 1),
        ("admin@example.com", 1),
        ("quiet@example.com", 0),
        ("viewer@example.com", 0),
    ] {
        let reports: Vec<String> = app
            .mails_to(to)
            .into_iter()
            .filter(|m| m.contains("LLMtrack report for"))
            .collect();
        assert_eq!(reports.len(), n, "{to}");
    }
    let mail = app
        .mails_to("owner@example.com")
        .into_iter()
        .find(|m| m.contains("LLMtrack report for"))
        .unwrap();
    assert!(mail.contains("text/html"), "an HTML part");
    assert!(
        mail.contains(&format!("/workspaces/{id}/reports/{month}")),
        "a link to the dashboard"
    );

    // A re-run replaces the files and sends nothing.
    let again = run_month(&app.parts.reports(), month, None).await.unwrap();
    assert_eq!((again.reports, again.emails), (1, 0));
    assert_eq!(
        app.parts
            .archive
            .get(&key(&ws, month, "json"))
            .await
            .unwrap()
            .unwrap(),
        json
    );

    // The listing, and a link that downloads.
    let (status, list) = owner.get(&format!("/v1/workspaces/{id}/reports")).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["month"], month.to_string());
    let link = list[0]["links"]["html"].as_str().unwrap();
    let page = app.http.get(link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.text().await.unwrap(), html);
    let (status, one) = owner
        .get(&format!("/v1/workspaces/{id}/reports/{month}"))
        .await;
    assert_eq!(status, 200, "{one}");
    for (path, want) in [
        (this.to_string(), 400),
        ("2026-13".to_owned(), 400),
        ("soon".to_owned(), 400),
        (before.to_string(), 404),
    ] {
        let (status, body) = owner
            .get(&format!("/v1/workspaces/{id}/reports/{path}"))
            .await;
        assert_eq!(status, want, "{path}: {body}");
    }
    let stranger = app.sign_in("stranger@example.com").await;
    let (status, _) = stranger.get(&format!("/v1/workspaces/{id}/reports")).await;
    assert_eq!(status, 404);
}

fn clock_now(clock: &std::sync::Arc<TestClock>) -> i64 {
    use llmtrack_shared::ports::Clock as _;
    clock.now_ms()
}

/// An SES client on the moto server, with the sender verified as SES requires.
async fn moto_ses(from: &str) -> llmtrack_shared::adapters::ses::Ses {
    use aws_sdk_sesv2::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_sesv2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(moto_endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .build();
    let client = aws_sdk_sesv2::Client::from_conf(config);
    client
        .create_email_identity()
        .email_identity(from)
        .send()
        .await
        .expect("verify the sender on moto");
    llmtrack_shared::adapters::ses::Ses::new(client, from)
}

/// The messages moto's SES has sent to `to`, as moto records them.
async fn sent_to(to: &str) -> Vec<serde_json::Value> {
    let data: serde_json::Value = reqwest::get(format!("{}/moto-api/data.json", moto_endpoint()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut out = Vec::new();
    let mut stack = vec![&data["ses"]];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Array(a) => stack.extend(a),
            serde_json::Value::Object(o) => {
                if o.values().any(|x| x.to_string().contains(to))
                    && o.keys()
                        .any(|k| k.to_lowercase().contains("subject") || k == "body")
                {
                    out.push(v.clone());
                } else {
                    stack.extend(o.values());
                }
            }
            _ => {}
        }
    }
    out
}

#[tokio::test]
async fn on_dynamodb_s3_and_ses_the_report_is_archived_tagged_and_mailed_once() {
    let this = Month::of(now_ms());
    let month = this.previous();
    let store: llmtrack_shared::ports::DynStore = std::sync::Arc::new(dynamo_store().await);
    let s3 = s3_archive().await;
    let bucket = s3.bucket().to_owned();
    let archive: llmtrack_shared::ports::DynArchive = std::sync::Arc::new(s3);
    let owner = format!(
        "owner-{}@example.com",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let deps = llmtrack_reports::Deps {
        store: llmtrack_reports::ReportsPorts::of(&store),
        clock: std::sync::Arc::new(llmtrack_shared::ports::SystemClock),
        archive: archive.clone(),
        mailer: std::sync::Arc::new(moto_ses("reports@llm-track.test").await),
        public_url: "https://app.llm-track.test".into(),
    };
    let ws = llmtrack::admin::create_workspace(
        store.as_ref(),
        "Acme",
        Plan::Pro,
        month.start_ms() - DAY_MS,
    )
    .await
    .unwrap()
    .id;
    llmtrack::admin::add_member(
        store.as_ref(),
        ws.as_str(),
        &owner,
        llmtrack_shared::domain::access::Role::Owner,
        now_ms(),
    )
    .await
    .unwrap();
    let events = month_of_events(month, 1, 3);
    store_events(store.as_ref(), &ws, &events).await;

    let ran = run_month(&deps, month, Some(&ws)).await.unwrap();
    assert_eq!((ran.reports, ran.emails), (1, 1));
    let r: MonthlyReport = serde_json::from_slice(
        &archive
            .get(&key(&ws, month, "json"))
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    let all: Vec<&Event> = events.iter().collect();
    assert_figures("month", &r.totals, &figures(&all));
    for ext in ["csv", "html"] {
        assert!(
            archive.get(&key(&ws, month, ext)).await.unwrap().is_some(),
            "{ext}"
        );
    }
    let tags = s3_client()
        .get_object_tagging()
        .bucket(&bucket)
        .key(key(&ws, month, "html"))
        .send()
        .await
        .unwrap();
    let tags: Vec<(&str, &str)> = tags
        .tag_set()
        .iter()
        .map(|t| (t.key(), t.value()))
        .collect();
    assert_eq!(
        tags,
        vec![("plan", "pro")],
        "the lifecycle rule of the plan applies"
    );

    let sent = sent_to(&owner).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0]
            .to_string()
            .contains(&format!("LLMtrack report for Acme: {month}")),
        "{}",
        sent[0]
    );
    // Again: the same files, no second email.
    let again = run_month(&deps, month, Some(&ws)).await.unwrap();
    assert_eq!((again.reports, again.emails), (1, 0));
    assert_eq!(sent_to(&owner).await.len(), 1);
}
