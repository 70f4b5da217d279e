//! Sending a rule's notifications: an email to the workspace's owners and admins, a JSON POST
//! to its webhook, signed like Stripe signs its own (`LLMtrack-Signature:
//! t={unix},v1={hex HMAC-SHA256 of "{t}.{body}"}`), and a Slack message (Block Kit, through an
//! incoming webhook, whose URL is opened from the vault only to send).
//!
//! Each rule's signing secret is derived from the deployment's key and the rule's id, shown
//! once when the rule is created, and never stored.
//!
//! A webhook host is resolved before each delivery. Every address it resolves to must be public
//! (no private, loopback or link-local address: the cloud metadata endpoint lives there), and
//! the request goes to the address that was checked, with redirects not followed. Deliveries
//! are retried on network errors, 429 and 5xx.

use std::net::SocketAddr;
use std::time::Duration;

use hmac::{Hmac, Mac};
use llmtrack_shared::domain::access::Role;
use llmtrack_shared::domain::alert::{self, AlertRule, Condition, Delivery, Transition};
use llmtrack_shared::domain::anomaly;
use llmtrack_shared::domain::signature;
use llmtrack_shared::domain::time::rfc3339;
use llmtrack_shared::ports::{Mail, Workspace};
use serde_json::json;
use sha2::Sha256;

use crate::Deps;

/// Attempts per webhook delivery, and the waits between them.
const BACKOFF: [Duration; 2] = [Duration::from_millis(200), Duration::from_millis(800)];

/// The webhook signing secret of a rule: derived, never stored.
pub fn webhook_secret(key: &[u8], rule: &AlertRule) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(format!("alert-webhook:{}:{}", rule.workspace, rule.id).as_bytes());
    format!("whsec_{}", hex::encode(mac.finalize().into_bytes()))
}

/// The condition in words, for people: "error rate over 5% (last 15 min)".
pub fn describe(c: &Condition) -> String {
    match c {
        Condition::Cost { period, over_usd } => format!(
            "cost of the {} over ${over_usd:.2}",
            match period {
                alert::Period::Day => "day",
                alert::Period::Month => "month",
            }
        ),
        Condition::Budget {
            budget_usd,
            thresholds_pct,
            budget_id,
        } => format!(
            "{} of ${budget_usd:.2} ({} % thresholds)",
            budget_id.as_ref().map_or_else(
                || "monthly budget".to_owned(),
                |id| format!("budget `{id}`")
            ),
            thresholds_pct
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join("/")
        ),
        Condition::Forecast { budget_usd } => {
            format!("month-end forecast over ${budget_usd:.2}")
        }
        Condition::ErrorRate {
            over_pct,
            window_minutes,
            ..
        } => format!("error rate over {over_pct}% (last {window_minutes} min)"),
        Condition::LatencyP95 {
            over_ms,
            window_minutes,
        } => format!("p95 latency over {over_ms} ms (last {window_minutes} min)"),
        Condition::Coverage { under_pct, days } => format!(
            "events carry under {under_pct}% of the tokens the providers billed (last {days} \
             days)"
        ),
        Condition::Drift { over_pct, days } => {
            format!("computed cost off the providers' bill by over {over_pct}% (last {days} days)")
        }
        Condition::AnyValue {
            dimension,
            over_usd,
            over_requests,
            window_hours,
        } => format!(
            "any {} over {} (last {})",
            dimension.as_str(),
            match (over_usd, over_requests) {
                (Some(usd), _) => format!("${usd:.2}"),
                (None, n) => format!("{} requests", n.unwrap_or(0)),
            },
            if *window_hours >= 48 && window_hours % 24 == 0 {
                format!("{} days", window_hours / 24)
            } else {
                format!("{window_hours} h")
            }
        ),
        Condition::Anomaly {
            on,
            dimension,
            each,
        } => format!(
            "{} anomaly{} against the usual for the hour of the week{}",
            on.label(),
            each.map_or_else(String::new, |d| format!(" of any {}", d.as_str())),
            dimension.map_or_else(String::new, |d| format!(
                " (contributors by {})",
                d.as_str()
            ))
        ),
    }
}

fn unit(c: &Condition, v: f64) -> String {
    match c {
        Condition::Cost { .. } | Condition::Forecast { .. } => format!("${v:.2}"),
        Condition::Budget { .. }
        | Condition::ErrorRate { .. }
        | Condition::Coverage { .. }
        | Condition::Drift { .. } => format!("{v:.1}%"),
        Condition::LatencyP95 { .. } => format!("{v:.0} ms"),
        Condition::AnyValue { over_usd, .. } => match over_usd {
            Some(_) => format!("${v:.2}"),
            None => format!("{v:.0} requests"),
        },
        Condition::Anomaly { on, .. } => match on {
            anomaly::Metric::Cost => format!("${v:.2}"),
            anomaly::Metric::Requests => format!("{v:.0} requests"),
            anomaly::Metric::Tokens => format!("{v:.0} tokens"),
            anomaly::Metric::ErrorRate => format!("{:.1}%", v * 100.0),
        },
    }
}

/// What a notification calls the number it compares with: an anomaly has no threshold, only
/// what is usual for the hour.
fn against(c: &Condition) -> &'static str {
    match c {
        Condition::Anomaly { .. } => "usually",
        _ => "threshold",
    }
}

/// What the values of a digest are: over a threshold, or unusual (an anomaly rule's).
fn digest_what(c: &Condition) -> &'static str {
    match c {
        Condition::Anomaly { .. } => "unusual",
        _ => "over the threshold",
    }
}

/// The values a digest names, and how many more there are.
fn digest_list(count: u32, values: &[String]) -> String {
    let named = values
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let more = count as usize - values.len().min(count as usize);
    if more > 0 {
        format!("{named} and {more} more")
    } else {
        named
    }
}

/// The one-line message of a notification (the email's subject, the webhook's `text`).
pub fn headline(ws: &Workspace, rule: &AlertRule, t: Option<&Transition>) -> String {
    let mut scope = rule
        .filter
        .as_ref()
        .map(|f| format!(" for {} `{}`", f.dimension.as_str(), f.value))
        .unwrap_or_default();
    let (said, value, threshold) = match t {
        Some(Transition::Firing {
            value,
            threshold,
            about,
            ..
        }) => {
            if let (Condition::Anomaly { .. }, Some(about)) = (&rule.condition, about) {
                // The finding says it all: "cost 8.0× usual for Tuesday 14:00 ($84.00,
                // usually $10.50); 80% from feature=summarize".
                return format!(
                    "LLMtrack alert \"{}\" is firing in {}: {about}",
                    rule.name, ws.name
                );
            }
            if let Some(about) = about {
                scope = format!(" for {about}");
            }
            (("is firing", "at"), value, threshold)
        }
        Some(Transition::Digest { count, values, .. }) => {
            return format!(
                "LLMtrack alert \"{}\" in {}: {count} more {} ({}): {}",
                rule.name,
                ws.name,
                digest_what(&rule.condition),
                describe(&rule.condition),
                digest_list(*count, values)
            );
        }
        Some(Transition::Resolved {
            value,
            threshold,
            about,
        }) => {
            if let Some(about) = about {
                scope = format!(" for {about}");
            }
            (("resolved", "back to"), value, threshold)
        }
        None => {
            return format!(
                "LLMtrack test notification for alert \"{}\" in {}",
                rule.name, ws.name
            );
        }
    };
    format!(
        "LLMtrack alert \"{}\" {} in {}: {} {} {} ({} {}){scope}",
        rule.name,
        said.0,
        ws.name,
        describe(&rule.condition),
        said.1,
        unit(&rule.condition, *value),
        against(&rule.condition),
        unit(&rule.condition, *threshold)
    )
}

/// The dashboard's page of a rule, for links.
fn rule_link(deps: &Deps, ws: &Workspace, rule: &AlertRule) -> String {
    format!(
        "{}/workspaces/{}/alerts/{}",
        deps.public_url, ws.id, rule.id
    )
}

/// Sends a notification on every channel of the rule; returns how each went.
pub async fn send(
    deps: &Deps,
    ws: &Workspace,
    rule: &AlertRule,
    t: Option<&Transition>,
    at_ms: i64,
) -> Vec<Delivery> {
    let text = headline(ws, rule, t);
    let mut out = Vec::new();
    if rule.email {
        out.push(email(deps, ws, rule, &text).await);
    }
    if let Some(url) = &rule.webhook_url {
        out.push(webhook(deps, ws, rule, t, &text, url, at_ms).await);
    }
    if let Some(channel) = &rule.slack {
        out.push(slack(deps, ws, rule, t, &text, channel).await);
    }
    out
}

/// Emails the workspace's owners and admins.
pub async fn email_admins(deps: &Deps, ws: &Workspace, subject: &str, body: &str) -> Delivery {
    let mut sent = 0;
    let mut failed = Vec::new();
    match deps.store.members.members(&ws.id).await {
        Ok(members) => {
            for m in members.iter().filter(|m| m.role >= Role::Admin) {
                let mail = Mail {
                    to: m.email.as_str().to_owned(),
                    subject: subject.to_owned(),
                    text: body.to_owned(),
                    html: None,
                    about: Some(ws.id.clone()),
                };
                match deps.mailer.send(&mail).await {
                    Ok(()) => sent += 1,
                    Err(e) => failed.push(format!("{e:#}")),
                }
            }
        }
        Err(e) => failed.push(e.to_string()),
    }
    Delivery {
        channel: "email".into(),
        ok: failed.is_empty() && sent > 0,
        attempts: 1,
        detail: if failed.is_empty() {
            format!("sent to {sent} owners and admins")
        } else {
            format!(
                "{sent} sent, {} failed: {}",
                failed.len(),
                failed.join("; ")
            )
        },
    }
}

async fn email(deps: &Deps, ws: &Workspace, rule: &AlertRule, text: &str) -> Delivery {
    let body = format!(
        "{text}\n\nRule: {} ({})\nWorkspace: {} ({})\nDashboard: {}\n",
        rule.name,
        describe(&rule.condition),
        ws.name,
        ws.id,
        rule_link(deps, ws, rule),
    );
    email_admins(deps, ws, text, &body).await
}

async fn webhook(
    deps: &Deps,
    ws: &Workspace,
    rule: &AlertRule,
    t: Option<&Transition>,
    text: &str,
    url: &str,
    at_ms: i64,
) -> Delivery {
    let kind = match t {
        Some(Transition::Firing { .. }) => "alert.firing",
        Some(Transition::Digest { .. }) => "alert.digest",
        Some(Transition::Resolved { .. }) => "alert.resolved",
        None => "alert.test",
    };
    let body = json!({
        "type": kind,
        "text": text,
        "at": rfc3339(at_ms),
        "workspace": {"id": ws.id, "name": ws.name},
        "rule": {"id": rule.id, "name": rule.name, "condition": rule.condition, "filter": rule.filter},
        "transition": t,
    })
    .to_string();
    let secret = webhook_secret(&deps.signing_key, rule);
    deliver(deps, ws, rule, "webhook", url, &body, Some(&secret)).await
}

/// A Slack message: the headline as the notification's text, the measure and a button to the
/// rule's page as blocks. Slack answers `ok`, or a status with a short reason
/// (`no_service` when the webhook was removed, `channel_is_archived`), which the history shows.
async fn slack(
    deps: &Deps,
    ws: &Workspace,
    rule: &AlertRule,
    t: Option<&Transition>,
    text: &str,
    channel: &alert::SlackChannel,
) -> Delivery {
    let url = match open_slack(deps, rule, channel).await {
        Ok(url) => url,
        Err(e) => {
            tracing::error!(workspace = %ws.id, rule = %rule.id, error = format!("{e:#}"), "the Slack webhook could not be opened");
            return Delivery {
                channel: "slack".into(),
                ok: false,
                attempts: 0,
                detail: "the Slack webhook could not be read: set it again".into(),
            };
        }
    };
    let body = slack_message(
        &mrkdwn(text),
        &describe_for_slack(ws, rule, t),
        &rule_link(deps, ws, rule),
    );
    deliver(deps, ws, rule, "slack", &url, &body.to_string(), None).await
}

async fn open_slack(
    deps: &Deps,
    rule: &AlertRule,
    channel: &alert::SlackChannel,
) -> anyhow::Result<String> {
    use base64::Engine as _;
    let sealed = base64::engine::general_purpose::STANDARD.decode(&channel.sealed)?;
    deps.vault
        .open(
            &sealed,
            &alert::SlackChannel::context(&rule.workspace, &rule.id),
        )
        .await
}

/// Escapes what Slack's mrkdwn reads as markup in text people wrote (names, filter values).
fn mrkdwn(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The message's main line, in mrkdwn: what happened, to which rule, in which workspace.
fn describe_for_slack(ws: &Workspace, rule: &AlertRule, t: Option<&Transition>) -> String {
    let scope = rule
        .filter
        .as_ref()
        .map(|f| format!(" for {} `{}`", f.dimension.as_str(), mrkdwn(&f.value)))
        .unwrap_or_default();
    let what = mrkdwn(&describe(&rule.condition));
    let (icon, said, detail) = match t {
        Some(Transition::Digest { count, values, .. }) => (
            ":rotating_light:",
            "has more values over",
            format!(
                "{what}: {count} more, {}",
                mrkdwn(&digest_list(*count, values))
            ),
        ),
        Some(Transition::Firing {
            value,
            threshold,
            about,
            ..
        }) => (
            ":rotating_light:",
            "is firing",
            match (&rule.condition, about) {
                (Condition::Anomaly { .. }, Some(a)) => format!("{what}: *{}*", mrkdwn(a)),
                _ => format!(
                    "{what}{}: *{}* (threshold {})",
                    about
                        .as_ref()
                        .map_or_else(|| scope.clone(), |a| format!(" for {}", mrkdwn(a))),
                    unit(&rule.condition, *value),
                    unit(&rule.condition, *threshold)
                ),
            },
        ),
        Some(Transition::Resolved {
            value,
            threshold,
            about,
        }) => (
            ":white_check_mark:",
            "resolved",
            format!(
                "{what}{}: back to *{}* ({} {})",
                about
                    .as_ref()
                    .map_or_else(|| scope.clone(), |a| format!(" for {}", mrkdwn(a))),
                unit(&rule.condition, *value),
                against(&rule.condition),
                unit(&rule.condition, *threshold)
            ),
        ),
        None => (
            ":wave:",
            "test notification",
            format!("{what}{scope}: this channel works"),
        ),
    };
    format!(
        "{icon} *{}* {said} in {}\n{detail}",
        mrkdwn(&rule.name),
        mrkdwn(&ws.name)
    )
}

/// The JSON Slack's incoming webhooks take: `text` (the notification and the fallback) and
/// Block Kit blocks.
pub fn slack_message(text: &str, section: &str, link: &str) -> serde_json::Value {
    json!({
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": section}},
            {"type": "actions", "elements": [{
                "type": "button",
                "text": {"type": "plain_text", "text": "Open in LLMtrack"},
                "url": link,
            }]},
        ],
    })
}

/// POSTs a body with retries (network errors, 429 and 5xx), and says how it went.
async fn deliver(
    deps: &Deps,
    ws: &Workspace,
    rule: &AlertRule,
    channel: &str,
    url: &str,
    body: &str,
    secret: Option<&str>,
) -> Delivery {
    let mut attempts = 0;
    let mut last = String::new();
    for wait in std::iter::once(Duration::ZERO).chain(BACKOFF) {
        tokio::time::sleep(wait).await;
        attempts += 1;
        match post(deps, url, body, secret).await {
            Ok((status, _)) if status.is_success() => {
                return Delivery {
                    channel: channel.into(),
                    ok: true,
                    attempts,
                    detail: format!("HTTP {}", status.as_u16()),
                };
            }
            Ok((status, reason)) => {
                last = format!("HTTP {}", status.as_u16());
                if let Some(reason) = reason {
                    last = format!("{last} {reason}");
                }
                // A 4xx other than 429 will not change on a retry.
                if status.is_client_error() && status.as_u16() != 429 {
                    break;
                }
            }
            Err(e) => {
                // The cause (refused, timed out, resolves to a private address) stays in the
                // log: told to the client, it would map the network behind the server.
                tracing::info!(workspace = %ws.id, rule = %rule.id, channel, attempts, error = format!("{e:#}"), "notification attempt failed");
                last = UNREACHABLE.to_owned();
            }
        }
    }
    tracing::warn!(workspace = %ws.id, rule = %rule.id, channel, attempts, error = %last, "notification delivery failed");
    Delivery {
        channel: channel.into(),
        ok: false,
        attempts,
        detail: last,
    }
}

/// What a client is told of a webhook that could not be reached, whatever the cause.
pub const UNREACHABLE: &str =
    "the webhook could not be reached (no public address, refused, timed out or not https)";

/// One POST, to an address checked to be public (or the local loopback where allowed), signed
/// when a secret is given. Returns the status and, for a refusal, the receiver's reason when it
/// is a short code (Slack's `no_service`, `invalid_payload`): anything longer is not shown.
async fn post(
    deps: &Deps,
    url: &str,
    body: &str,
    secret: Option<&str>,
) -> anyhow::Result<(reqwest::StatusCode, Option<String>)> {
    let u =
        alert::webhook_url(url, deps.allow_local_http).map_err(|e| anyhow::anyhow!(e.message))?;
    let port = u.port_or_known_default().unwrap_or(443);
    let (host, addrs): (String, Vec<SocketAddr>) = match u.host() {
        Some(url::Host::Domain(d)) => (
            d.to_owned(),
            tokio::net::lookup_host((d, port)).await?.collect(),
        ),
        // An address is connected to as it is (a bracketed IPv6 host would not resolve).
        Some(url::Host::Ipv4(ip)) => (ip.to_string(), vec![SocketAddr::from((ip, port))]),
        Some(url::Host::Ipv6(ip)) => (ip.to_string(), vec![SocketAddr::from((ip, port))]),
        None => anyhow::bail!("the webhook URL has no host"),
    };
    let local = deps.allow_local_http && u.scheme() == "http";
    let addr = addrs
        .iter()
        .copied()
        .find(|a| local || alert::public_ip(a.ip()))
        .ok_or_else(|| anyhow::anyhow!("{host} resolves to no public address"))?;
    if !local && addrs.iter().any(|a| !alert::public_ip(a.ip())) {
        anyhow::bail!("{host} resolves to a private address");
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .resolve(&host, addr)
        .build()?;
    // The receiver checks the signature's time against its own wall clock (as Stripe's
    // receivers do), so this is the real time of sending, not the app's clock.
    let mut request = client
        .post(u)
        .header("content-type", "application/json")
        .header("user-agent", "LLMtrack-Webhooks/1");
    if let Some(secret) = secret {
        let now_s = chrono::Utc::now().timestamp();
        request = request.header(
            "llmtrack-signature",
            signature::sign(body.as_bytes(), secret, now_s),
        );
    }
    let response = request.body(body.to_owned()).send().await?;
    let status = response.status();
    if status.is_success() {
        return Ok((status, None));
    }
    let text = response.text().await.unwrap_or_default();
    let reason = Some(text.trim())
        .filter(|r| !r.is_empty() && r.len() <= 40)
        .filter(|r| r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .map(str::to_owned);
    Ok((status, reason))
}
