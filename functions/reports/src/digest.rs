//! The weekly digest: for the members of a workspace who opted in (`Workspace.digest`), an email
//! about the week just ended (Monday to Sunday in the workspace's timezone): its cost and the
//! change against the week before, the features and models whose cost moved most, the alerts and
//! anomalies that fired, and where each budget stands, with links to the dashboard. It goes from
//! Monday 08:00 local time, once per workspace and week (`digest:{ws}:{YYYY-Www}` is claimed
//! first), and only to people who are still members.

use std::collections::BTreeMap;

use chrono::{Datelike as _, NaiveDate, Timelike as _};
use llmtrack_shared::domain::alert::Transition;
use llmtrack_shared::domain::analytics::{local_midnight, timezone};
use llmtrack_shared::domain::budget::{self, Decision, canonical_model};
use llmtrack_shared::domain::rollup::{Dimension, View};
use llmtrack_shared::domain::time::{hour_of, to_datetime};
use llmtrack_shared::ports::{DynClock, DynMailer, Mail, Workspace, all_workspace_ids};
use llmtrack_shared::usecases;

/// How many movers a digest names.
pub const MOVERS: usize = 5;

/// The hour (local) on Monday from which the week just ended is mailed.
pub const SEND_HOUR: u32 = 8;

llmtrack_shared::store_ports! {
    /// What the digest reads (subscribers, members and their addresses, rollups, budgets, alert
    /// history) and the notice it claims.
    pub struct DigestPorts {
        workspaces: Workspaces,
        events: Events,
        members: Members,
        accounts: Accounts,
        alert_rules: AlertRules,
    }
}

#[derive(Clone)]
pub struct DigestDeps {
    pub store: DigestPorts,
    pub clock: DynClock,
    pub mailer: DynMailer,
    /// The dashboard's origin, for the links in the emails.
    pub public_url: String,
}

/// The Lambda function's parts: DynamoDB and SES.
#[cfg(feature = "lambda")]
pub async fn digest_lambda_deps(
    store: &llmtrack_shared::ports::DynStore,
) -> anyhow::Result<DigestDeps> {
    use std::sync::Arc;

    use llmtrack_shared::adapters::ses::Ses;
    use llmtrack_shared::config::{MailConfig, WebConfig};
    Ok(DigestDeps {
        store: DigestPorts::of(store),
        clock: Arc::new(llmtrack_shared::ports::SystemClock),
        mailer: Arc::new(Ses::from_env(&MailConfig::from_env()?.from).await),
        public_url: WebConfig::from_env()?.public_url,
    })
}

/// A week, Monday to Sunday in a timezone: `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Week {
    pub monday: NaiveDate,
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Week {
    fn starting(monday: NaiveDate, tz: chrono_tz::Tz) -> Week {
        Week {
            monday,
            start_ms: local_midnight(monday, tz),
            end_ms: local_midnight(monday + chrono::Days::new(7), tz),
        }
    }

    /// `2026-W48` (ISO 8601).
    pub fn label(&self) -> String {
        let w = self.monday.iso_week();
        format!("{}-W{:02}", w.year(), w.week())
    }

    fn previous(&self, tz: chrono_tz::Tz) -> Week {
        Week::starting(self.monday - chrono::Days::new(7), tz)
    }

    /// Its rollup hours, half-open.
    fn hours(&self) -> (i64, i64) {
        (hour_of(self.start_ms), hour_of(self.end_ms))
    }
}

/// The week whose digest is due at `now_ms` in `tz`: the one just ended, once it is Monday
/// 08:00 local; `None` on Monday before 08:00.
pub fn due_week(tz: chrono_tz::Tz, now_ms: i64) -> Option<Week> {
    let local = to_datetime(now_ms).with_timezone(&tz);
    let days = local.weekday().num_days_from_monday();
    if days == 0 && local.hour() < SEND_HOUR {
        return None;
    }
    let this_monday = local.date_naive() - chrono::Days::new(u64::from(days));
    Some(Week::starting(this_monday, tz).previous(tz))
}

/// A feature or model whose cost changed from one week to the next.
#[derive(Debug, Clone, PartialEq)]
pub struct Mover {
    /// `feature` or `model`.
    pub kind: &'static str,
    pub value: String,
    pub cost_usd: f64,
    pub previous_usd: f64,
}

impl Mover {
    pub fn delta_usd(&self) -> f64 {
        self.cost_usd - self.previous_usd
    }
}

/// An alert that fired in the week.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    pub rule: String,
    pub rule_id: String,
    pub at_ms: i64,
    pub what: String,
}

/// A budget and where it stands now.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetLine {
    pub name: String,
    pub amount_usd: f64,
    pub status: budget::BudgetStatus,
}

/// What one workspace's digest of one week says.
#[derive(Debug, Clone, PartialEq)]
pub struct Digest {
    pub workspace: String,
    pub week: String,
    pub cost_usd: f64,
    pub requests: u64,
    pub previous_usd: f64,
    /// The change as a fraction of the week before; `None` when that week cost nothing.
    pub change: Option<f64>,
    pub movers: Vec<Mover>,
    pub fired: Vec<Fired>,
    pub budgets: Vec<BudgetLine>,
}

fn usd_of(pico: i128) -> f64 {
    pico as f64 / 1e12
}

/// Builds a workspace's digest of `week` from its rollups, alert history and budgets.
pub async fn build(
    deps: &DigestDeps,
    ws: &Workspace,
    week: Week,
    now_ms: i64,
) -> anyhow::Result<Digest> {
    let tz = timezone(&ws.timezone).unwrap_or(chrono_tz::UTC);
    let previous = week.previous(tz);
    let events = &deps.store.events;
    let mut costs: BTreeMap<(Dimension, bool), BTreeMap<String, i128>> = BTreeMap::new();
    let mut requests = 0;
    for d in [Dimension::Total, Dimension::Feature, Dimension::Model] {
        for (current, w) in [(true, week), (false, previous)] {
            let (from, to) = w.hours();
            let rows = events.rollups(&ws.id, &View::of(d), from, to).await?;
            let into = costs.entry((d, current)).or_default();
            for (k, r) in rows {
                if d == Dimension::Total && current {
                    requests += r.requests;
                }
                let value = match d {
                    Dimension::Model => canonical_model(&k.value),
                    _ => k.value,
                };
                *into.entry(value).or_default() += r.cost_pico;
            }
        }
    }
    let total = |current| -> f64 {
        usd_of(
            costs
                .get(&(Dimension::Total, current))
                .map_or(0, |m| m.values().sum()),
        )
    };
    let (cost_usd, previous_usd) = (total(true), total(false));
    let mut movers = Vec::new();
    for (d, kind) in [(Dimension::Feature, "feature"), (Dimension::Model, "model")] {
        let empty = BTreeMap::new();
        let now = costs.get(&(d, true)).unwrap_or(&empty);
        let before = costs.get(&(d, false)).unwrap_or(&empty);
        let mut values: Vec<&String> = now.keys().chain(before.keys()).collect();
        values.sort();
        values.dedup();
        for v in values {
            let (a, b) = (
                now.get(v).copied().unwrap_or(0),
                before.get(v).copied().unwrap_or(0),
            );
            if a != b {
                movers.push(Mover {
                    kind,
                    value: v.clone(),
                    cost_usd: usd_of(a),
                    previous_usd: usd_of(b),
                });
            }
        }
    }
    movers.sort_by(|x, y| {
        y.delta_usd()
            .abs()
            .total_cmp(&x.delta_usd().abs())
            .then_with(|| x.kind.cmp(y.kind))
            .then_with(|| x.value.cmp(&y.value))
    });
    movers.truncate(MOVERS);

    let mut fired = Vec::new();
    for rule in deps.store.alert_rules.alert_rules(&ws.id).await? {
        for e in deps
            .store
            .alert_rules
            .alert_events(&ws.id, &rule.id, 500)
            .await?
        {
            if e.at_ms < week.start_ms || e.at_ms >= week.end_ms {
                continue;
            }
            let what = match &e.transition {
                Some(Transition::Firing {
                    value,
                    threshold,
                    about,
                    ..
                }) => match about {
                    Some(a) => format!("{a}: {value:.2} over {threshold:.2}"),
                    None => format!("{value:.2} over {threshold:.2}"),
                },
                Some(Transition::Digest {
                    count, threshold, ..
                }) => format!("{count} more values over {threshold:.2}"),
                // Test notifications and recoveries are not news.
                _ => continue,
            };
            fired.push(Fired {
                rule: rule.name.clone(),
                rule_id: rule.id.clone(),
                at_ms: e.at_ms,
                what,
            });
        }
    }
    fired.sort_by_key(|f| f.at_ms);

    let mut budgets = Vec::new();
    for b in &ws.budgets.items {
        let bounds = budget::period_bounds(&b.period, &ws.timezone, now_ms);
        let spent = usecases::budget_spent(events.as_ref(), &ws.id, b, bounds).await?;
        budgets.push(BudgetLine {
            name: b.name.clone(),
            amount_usd: b.amount_usd,
            status: budget::status(b, spent, bounds, None),
        });
    }
    Ok(Digest {
        workspace: ws.name.clone(),
        week: week.label(),
        cost_usd,
        requests,
        previous_usd,
        change: (previous_usd > 0.0).then(|| (cost_usd - previous_usd) / previous_usd),
        movers,
        fired,
        budgets,
    })
}

fn usd(v: f64) -> String {
    let sign = if v < 0.0 { "-" } else { "" };
    format!("{sign}${:.2}", v.abs())
}

fn signed_usd(v: f64) -> String {
    if v >= 0.0 {
        format!("+{}", usd(v))
    } else {
        usd(v)
    }
}

fn change(c: Option<f64>) -> String {
    c.map_or_else(
        || "no cost the week before".to_owned(),
        |c| format!("{:+.1}%", c * 100.0),
    )
}

fn decision(d: Decision) -> &'static str {
    match d {
        Decision::Allow => "on track",
        Decision::Warn => "warning",
        Decision::Deny => "spent",
    }
}

/// The links a digest points at.
pub struct Links {
    pub overview: String,
    pub alerts: String,
    pub budgets: String,
    pub settings: String,
}

impl Links {
    fn of(deps: &DigestDeps, ws: &Workspace) -> Links {
        let base = format!("{}/workspaces/{}", deps.public_url, ws.id);
        Links {
            overview: base.clone(),
            alerts: format!("{base}/alerts"),
            budgets: format!("{base}/budgets"),
            settings: format!("{base}/settings"),
        }
    }
}

/// The plain-text email.
pub fn text(d: &Digest, links: &Links) -> String {
    let mut out = format!(
        "LLMtrack weekly digest: {}, {}\n\nCost: {} ({} requests)\nThe week before: {}\nChange: {}\n",
        d.workspace,
        d.week,
        usd(d.cost_usd),
        d.requests,
        usd(d.previous_usd),
        change(d.change)
    );
    if !d.movers.is_empty() {
        out.push_str("\nTop movers:\n");
        for m in &d.movers {
            out.push_str(&format!(
                "- {} {}: {} ({} -> {})\n",
                m.kind,
                m.value,
                signed_usd(m.delta_usd()),
                usd(m.previous_usd),
                usd(m.cost_usd)
            ));
        }
    }
    out.push_str("\nAlerts and anomalies that fired:\n");
    if d.fired.is_empty() {
        out.push_str("- none\n");
    }
    for f in &d.fired {
        out.push_str(&format!(
            "- {} ({}): {}\n",
            f.rule,
            llmtrack_shared::domain::time::rfc3339(f.at_ms),
            f.what
        ));
    }
    if !d.budgets.is_empty() {
        out.push_str("\nBudgets:\n");
        for b in &d.budgets {
            out.push_str(&format!(
                "- {}: {} of {} ({:.0}%, {})\n",
                b.name,
                usd(b.status.spent_usd),
                usd(b.amount_usd),
                b.status.used_pct,
                decision(b.status.decision)
            ));
        }
    }
    out.push_str(&format!(
        "\nDashboard: {}\nAlerts: {}\nBudgets: {}\n\nYou receive this because you asked for a weekly digest of this workspace. To stop, turn it off in the workspace's settings: {}\n",
        links.overview, links.alerts, links.budgets, links.settings
    ));
    out
}

fn esc(s: &str) -> String {
    html_escape::encode_text(s).into_owned()
}

fn href(s: &str) -> String {
    html_escape::encode_double_quoted_attribute(s).into_owned()
}

/// The HTML email: simple, styles inline, every name escaped.
pub fn html(d: &Digest, links: &Links) -> String {
    let mut body = format!(
        "<h1>{} <small>{}</small></h1><p><b>{}</b> ({} requests), {} against {} the week before.</p>",
        esc(&d.workspace),
        esc(&d.week),
        usd(d.cost_usd),
        d.requests,
        esc(&change(d.change)),
        usd(d.previous_usd)
    );
    if !d.movers.is_empty() {
        body.push_str("<h2>Top movers</h2><table><tr><th></th><th>Change</th><th>Week before</th><th>This week</th></tr>");
        for m in &d.movers {
            body.push_str(&format!(
                "<tr><td>{} <code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                m.kind,
                esc(&m.value),
                signed_usd(m.delta_usd()),
                usd(m.previous_usd),
                usd(m.cost_usd)
            ));
        }
        body.push_str("</table>");
    }
    body.push_str(&format!(
        "<h2><a href=\"{}\">Alerts and anomalies</a></h2>",
        href(&links.alerts)
    ));
    if d.fired.is_empty() {
        body.push_str("<p>None fired.</p>");
    } else {
        body.push_str("<ul>");
        for f in &d.fired {
            body.push_str(&format!(
                "<li><a href=\"{}/{}\">{}</a> ({}): {}</li>",
                href(&links.alerts),
                href(&f.rule_id),
                esc(&f.rule),
                llmtrack_shared::domain::time::rfc3339(f.at_ms),
                esc(&f.what)
            ));
        }
        body.push_str("</ul>");
    }
    if !d.budgets.is_empty() {
        body.push_str(&format!(
            "<h2><a href=\"{}\">Budgets</a></h2><table><tr><th></th><th>Spent</th><th>Amount</th><th>Used</th></tr>",
            href(&links.budgets)
        ));
        for b in &d.budgets {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.0}% ({})</td></tr>",
                esc(&b.name),
                usd(b.status.spent_usd),
                usd(b.amount_usd),
                b.status.used_pct,
                decision(b.status.decision)
            ));
        }
        body.push_str("</table>");
    }
    body.push_str(&format!(
        "<p><a href=\"{}\">Open the dashboard</a> | <a href=\"{}\">Stop these emails</a></p>",
        href(&links.overview),
        href(&links.settings)
    ));
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>LLMtrack weekly digest</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:640px;margin:2em auto;color:#1b1f24}\
h1 small{color:#6a737d;font-weight:normal}table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em}\
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e1e4e8}";

/// The notice claimed before a workspace's digest of a week goes out.
pub fn notice(ws: &Workspace, week: &Week) -> String {
    format!("digest:{}:{}", ws.id, week.label())
}

/// Mails one workspace's digest of the week due at `now_ms`, if it has subscribers who are
/// still members and it was not mailed before. Returns the emails sent.
pub async fn run_workspace(
    deps: &DigestDeps,
    ws: &Workspace,
    now_ms: i64,
) -> anyhow::Result<usize> {
    if ws.deleting.is_some() || ws.digest.users.is_empty() {
        return Ok(0);
    }
    let tz = timezone(&ws.timezone).unwrap_or(chrono_tz::UTC);
    let Some(week) = due_week(tz, now_ms) else {
        return Ok(0);
    };
    // A subscriber who is no longer a member gets nothing.
    let members = deps.store.members.members(&ws.id).await?;
    let mut to = Vec::new();
    for m in members {
        if !ws.digest.contains(&m.user_id) {
            continue;
        }
        if let Some(user) = deps.store.accounts.user(&m.user_id).await? {
            to.push(user.email.as_str().to_owned());
        }
    }
    if to.is_empty() {
        return Ok(0);
    }
    let digest = build(deps, ws, week, now_ms).await?;
    if !deps
        .store
        .workspaces
        .claim_notice(&ws.id, &notice(ws, &week), now_ms)
        .await?
    {
        return Ok(0);
    }
    let links = Links::of(deps, ws);
    let (text, html) = (text(&digest, &links), html(&digest, &links));
    let subject = format!(
        "LLMtrack weekly digest for {}: {} ({})",
        ws.name,
        usd(digest.cost_usd),
        digest.week
    );
    let mut sent = 0;
    for address in to {
        let mail = Mail {
            to: address,
            subject: subject.clone(),
            text: text.clone(),
            html: Some(html.clone()),
            about: Some(ws.id.clone()),
        };
        match deps.mailer.send(&mail).await {
            Ok(()) => sent += 1,
            Err(e) => {
                tracing::error!(workspace = %ws.id, error = format!("{e:#}"), "could not email a weekly digest")
            }
        }
    }
    Ok(sent)
}

/// Every workspace's digest that is due at `now_ms` and not sent yet: what the hourly schedule
/// (and `llmtrack serve`'s upkeep) runs. Returns the emails sent.
pub async fn run(deps: &DigestDeps, now_ms: i64) -> anyhow::Result<usize> {
    let mut sent = 0;
    for id in all_workspace_ids(deps.store.workspaces.as_ref()).await? {
        let Some(ws) = deps.store.workspaces.workspace(&id).await? else {
            continue;
        };
        sent += run_workspace(deps, &ws, now_ms).await?;
    }
    if sent > 0 {
        tracing::info!(emails = sent, "weekly digests done");
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_week_due_is_the_one_just_ended_from_monday_eight() {
        let tz: chrono_tz::Tz = "Europe/Paris".parse().unwrap();
        // Monday 2026-11-30 07:30 in Paris (06:30 UTC): not yet.
        let at = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_millis()
        };
        assert_eq!(due_week(tz, at("2026-11-30T06:30:00Z")), None);
        let w = due_week(tz, at("2026-11-30T07:00:00Z")).unwrap();
        assert_eq!(w.label(), "2026-W48");
        assert_eq!(w.start_ms, at("2026-11-22T23:00:00Z"));
        assert_eq!(w.end_ms, at("2026-11-29T23:00:00Z"));
        // Still that week on Sunday evening; the next on the Monday after.
        assert_eq!(due_week(tz, at("2026-12-06T20:00:00Z")).unwrap(), w);
        assert_eq!(
            due_week(tz, at("2026-12-07T08:00:00Z")).unwrap().label(),
            "2026-W49"
        );
    }
}
