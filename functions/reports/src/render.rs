//! A monthly report in its three archived forms (JSON, CSV, a self-contained HTML page) and as
//! an email (plain text with the headline numbers, and the HTML page).

use llmtrack_shared::domain::report::{Change, Figures, Line, MonthlyReport};

pub fn json(r: &MonthlyReport) -> anyhow::Result<Vec<u8>> {
    Ok(serde_json::to_vec_pretty(r)?)
}

/// One table for spreadsheets: a row per figure line, the section in the first column.
pub fn csv(r: &MonthlyReport) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "section",
        "value",
        "requests",
        "errors",
        "error_rate",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "unpriced",
        "cost_share",
    ])?;
    let mut row = |section: &str, value: &str, f: &Figures, share: Option<f64>| {
        w.write_record([
            section.to_owned(),
            value.to_owned(),
            f.requests.to_string(),
            f.errors.to_string(),
            format!("{:.6}", f.error_rate),
            f.input_tokens.to_string(),
            f.output_tokens.to_string(),
            format!("{:.6}", f.cost_usd),
            f.unpriced.to_string(),
            share.map(|s| format!("{s:.6}")).unwrap_or_default(),
        ])
    };
    row("month", &r.month, &r.totals, Some(1.0))?;
    row("previous_month", "", &r.previous_month, None)?;
    for (section, lines) in [
        ("model", &r.by_model),
        ("provider", &r.by_provider),
        ("feature", &r.by_feature),
        ("source", &r.by_source),
        ("end_user", &r.top_users),
    ] {
        for l in lines {
            row(section, &l.value, &l.figures, Some(l.cost_share))?;
        }
    }
    for d in &r.daily {
        row("day", &d.date, &d.figures(), None)?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

fn usd(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("${v:.0}")
    } else {
        format!("${v:.2}")
    }
}

fn pct(v: Option<f64>) -> String {
    match v {
        Some(v) => format!("{:+.1}%", v * 100.0),
        None => "new".to_owned(),
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.0} ms"))
}

/// The headline numbers, one per line (the email's text and the page's summary).
pub fn headlines(r: &MonthlyReport) -> Vec<(String, String)> {
    let Change {
        requests,
        cost_usd,
        errors,
    } = &r.change;
    let mut out = vec![
        (
            "Cost".to_owned(),
            format!(
                "{} ({} on {})",
                usd(r.totals.cost_usd),
                pct(*cost_usd),
                "the month before"
            ),
        ),
        (
            "Requests".to_owned(),
            format!("{} ({})", r.totals.requests, pct(*requests)),
        ),
        (
            "Errors".to_owned(),
            format!(
                "{} ({:.2}% of requests, {})",
                r.totals.errors,
                r.totals.error_rate * 100.0,
                pct(*errors)
            ),
        ),
        (
            "Latency".to_owned(),
            format!(
                "p50 {}, p95 {}, p99 {}",
                ms(r.latency.p50_ms),
                ms(r.latency.p95_ms),
                ms(r.latency.p99_ms)
            ),
        ),
    ];
    if let Some(top) = r.by_model.first() {
        out.push((
            "Top model".to_owned(),
            format!("{} ({})", top.value, usd(top.figures.cost_usd)),
        ));
    }
    if let Some(f) = &r.forecast {
        out.push((
            "Forecast".to_owned(),
            format!(
                "on {} we expected {} ({} to {}); it came to {}",
                f.made_on,
                usd(f.expected_usd),
                usd(f.low_usd),
                usd(f.high_usd),
                usd(f.actual_usd)
            ),
        ));
    }
    out
}

/// The email's plain-text part.
pub fn text(r: &MonthlyReport, dashboard: &str) -> String {
    let mut out = format!(
        "LLMtrack monthly report: {} ({}), {}\n\n",
        r.workspace_name, r.workspace, r.month
    );
    for (k, v) in headlines(r) {
        out.push_str(&format!("{k}: {v}\n"));
    }
    out.push_str(&format!("\nThe full report: {dashboard}\n"));
    out.push_str(
        "\nYou receive this as an owner or admin of the workspace. To stop, turn off monthly reports in your account settings.\n",
    );
    out
}

fn esc(s: &str) -> String {
    html_escape::encode_text(s).into_owned()
}

fn table(title: &str, lines: &[Line]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "<h2>{}</h2><table><tr><th></th><th>Cost</th><th>Share</th><th>Requests</th><th>Errors</th></tr>",
        esc(title)
    );
    for l in lines {
        let name = if l.value.is_empty() {
            "(none)".to_owned()
        } else {
            esc(&l.value)
        };
        out.push_str(&format!(
            "<tr><td>{name}</td><td>{}</td><td><span class=bar style=\"width:{:.0}px\"></span>{:.1}%</td><td>{}</td><td>{}</td></tr>",
            usd(l.figures.cost_usd),
            (l.cost_share * 120.0).clamp(0.0, 120.0),
            l.cost_share * 100.0,
            l.figures.requests,
            l.figures.errors
        ));
    }
    out.push_str("</table>");
    out
}

/// The report as one HTML page with its styles inline: readable offline and in mail clients.
pub fn html(r: &MonthlyReport, dashboard: &str) -> String {
    let mut body = format!(
        "<h1>{} <small>{}</small></h1><dl>",
        esc(&r.workspace_name),
        esc(&r.month)
    );
    for (k, v) in headlines(r) {
        body.push_str(&format!("<dt>{}</dt><dd>{}</dd>", esc(&k), esc(&v)));
    }
    body.push_str("</dl>");
    body.push_str(&table("By model", &r.by_model));
    body.push_str(&table("By provider", &r.by_provider));
    body.push_str(&table("By feature", &r.by_feature));
    body.push_str(&table("By source", &r.by_source));
    body.push_str(&table("Top end-users", &r.top_users));
    let top = r.daily.iter().map(|d| d.cost_usd).fold(0.0_f64, f64::max);
    body.push_str("<h2>Day by day</h2><table><tr><th>Day</th><th>Cost</th><th>Requests</th><th>Errors</th></tr>");
    for d in &r.daily {
        let width = if top > 0.0 {
            d.cost_usd / top * 120.0
        } else {
            0.0
        };
        body.push_str(&format!(
            "<tr><td>{}</td><td><span class=bar style=\"width:{width:.0}px\"></span>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&d.date),
            usd(d.cost_usd),
            d.requests,
            d.errors
        ));
    }
    body.push_str("</table>");
    body.push_str(&format!(
        "<p><a href=\"{}\">Open the dashboard</a></p>",
        html_escape::encode_double_quoted_attribute(dashboard)
    ));
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>LLMtrack report {} {}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        esc(&r.workspace_name),
        esc(&r.month)
    )
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:760px;margin:2em auto;color:#1b1f24}\
h1 small{color:#6a737d;font-weight:normal}dt{font-weight:600;margin-top:.5em}dd{margin:0}\
table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em}th,td{text-align:left;padding:4px 8px;\
border-bottom:1px solid #e1e4e8}.bar{display:inline-block;height:.8em;background:#4c78a8;margin-right:6px}";
