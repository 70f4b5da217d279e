//! Anthropic's Admin API usage report (messages) and cost report: daily buckets of usage grouped
//! by model and workspace, and of costs grouped by workspace and description; amounts in cents.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::{Days, Pager, ProviderClient, Rows, label, not_a_page};
use crate::domain::reconciliation::money::cents_to_pico;
use crate::domain::reconciliation::{Provider, TokenKind};
use crate::ports::ProviderError;

/// The API version every request names (`anthropic-version`).
pub(super) const VERSION: &str = "2023-06-01";

const USAGE: &str = "/v1/organizations/usage_report/messages";
const COSTS: &str = "/v1/organizations/cost_report";
/// Buckets per page: both reports' maximum for daily buckets.
const LIMIT: u32 = 31;

pub(super) async fn billed(
    client: &ProviderClient,
    key: &str,
    scope: &[String],
    rows: &mut Rows,
) -> Result<(), ProviderError> {
    let days = rows.days;
    read(
        client,
        key,
        USAGE,
        &usage_query(days, LIMIT, scope),
        |body| fold_usage(rows, body, scope),
    )
    .await?;
    read(client, key, COSTS, &costs_query(days, LIMIT), |body| {
        fold_costs(rows, body, scope)
    })
    .await
}

/// One bucket of each: enough to learn whether the key may read both.
pub(super) async fn check(
    client: &ProviderClient,
    key: &str,
    scope: &[String],
    days: Days,
) -> Result<(), ProviderError> {
    let mut rows = Rows::new(Provider::Anthropic, days);
    let url = |path: &str| format!("{}{path}", client.anthropic_base);
    let body = client
        .get(
            Provider::Anthropic,
            key,
            &url(USAGE),
            &usage_query(days, 1, scope),
        )
        .await?;
    fold_usage(&mut rows, &body, scope)?;
    let body = client
        .get(Provider::Anthropic, key, &url(COSTS), &costs_query(days, 1))
        .await?;
    fold_costs(&mut rows, &body, scope)?;
    Ok(())
}

async fn read(
    client: &ProviderClient,
    key: &str,
    path: &str,
    query: &[(String, String)],
    mut fold: impl FnMut(&str) -> Result<(bool, Option<String>), ProviderError>,
) -> Result<(), ProviderError> {
    let url = format!("{}{path}", client.anthropic_base);
    let mut pager = Pager::new(Provider::Anthropic);
    while let Some(query) = pager.query(query) {
        let body = client.get(Provider::Anthropic, key, &url, &query).await?;
        let (has_more, next_page) = fold(&body)?;
        pager.advance(has_more, next_page)?;
    }
    Ok(())
}

fn rfc3339(day: chrono::NaiveDate) -> String {
    format!("{}T00:00:00Z", day.format("%Y-%m-%d"))
}

/// Arrays with brackets (`group_by[]=model`), as Anthropic's docs and SDKs send them.
fn query(days: Days, group_by: &[&str], limit: u32) -> Vec<(String, String)> {
    let mut query = vec![
        ("starting_at".to_owned(), rfc3339(days.from)),
        ("ending_at".to_owned(), rfc3339(days.to)),
        ("bucket_width".to_owned(), "1d".to_owned()),
    ];
    for g in group_by {
        query.push(("group_by[]".to_owned(), (*g).to_owned()));
    }
    query.push(("limit".to_owned(), limit.to_string()));
    query
}

fn usage_query(days: Days, limit: u32, scope: &[String]) -> Vec<(String, String)> {
    let mut query = query(days, &["model", "workspace_id"], limit);
    for workspace in scope {
        query.push(("workspace_ids[]".to_owned(), workspace.clone()));
    }
    query
}

/// The cost report takes no workspace filter (README §2.3): the scope is applied to its items.
fn costs_query(days: Days, limit: u32) -> Vec<(String, String)> {
    query(days, &["workspace_id", "description"], limit)
}

#[derive(Deserialize)]
struct Page<T> {
    data: Vec<Bucket<T>>,
    has_more: bool,
    #[serde(default)]
    next_page: Option<String>,
}

#[derive(Deserialize)]
struct Bucket<T> {
    starting_at: DateTime<Utc>,
    #[serde(default = "Vec::new")]
    results: Vec<T>,
}

#[derive(Deserialize)]
struct Usage {
    uncached_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation: Option<CacheCreation>,
    output_tokens: Option<u64>,
    model: Option<String>,
    workspace_id: Option<String>,
}

#[derive(Deserialize)]
struct CacheCreation {
    ephemeral_5m_input_tokens: Option<u64>,
    ephemeral_1h_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Cost {
    /// Cents as a decimal string; a number is read the same.
    amount: Option<Value>,
    currency: Option<String>,
    model: Option<String>,
    token_type: Option<String>,
    workspace_id: Option<String>,
}

fn parse<T: for<'de> Deserialize<'de>>(body: &str, what: &str) -> Result<Page<T>, ProviderError> {
    serde_json::from_str(body).map_err(|e| not_a_page(Provider::Anthropic, what, &e))
}

/// Whether an item's workspace (null is the default workspace, scope "") was asked for.
fn in_scope(scope: &[String], workspace: &str) -> bool {
    scope.is_empty() || scope.iter().any(|s| s == workspace)
}

fn fold_usage(
    rows: &mut Rows,
    body: &str,
    scope: &[String],
) -> Result<(bool, Option<String>), ProviderError> {
    let page: Page<Usage> = parse(body, "usage")?;
    for bucket in page.data {
        let day = bucket.starting_at.date_naive();
        for result in bucket.results {
            let workspace = result.workspace_id.as_deref().unwrap_or("");
            if !in_scope(scope, workspace) {
                continue;
            }
            let writes = result.cache_creation.as_ref().map_or(0, |c| {
                c.ephemeral_5m_input_tokens
                    .unwrap_or(0)
                    .saturating_add(c.ephemeral_1h_input_tokens.unwrap_or(0))
            });
            let tokens = [
                result.uncached_input_tokens.unwrap_or(0),
                result.cache_read_input_tokens.unwrap_or(0),
                writes,
                result.output_tokens.unwrap_or(0),
            ];
            let model = result.model.as_deref().unwrap_or("");
            // The report counts no requests.
            rows.add_usage(day, model, workspace, tokens, None);
            // Hour-long writes cost more than 5-minute ones: kept apart to compare rates.
            let hour = result
                .cache_creation
                .as_ref()
                .map_or(0, |c| c.ephemeral_1h_input_tokens.unwrap_or(0));
            if let Some(row) = rows.row(day, model, workspace) {
                row.cache_write_1h = row.cache_write_1h.saturating_add(hour);
            }
        }
    }
    Ok((page.has_more, page.next_page))
}

fn fold_costs(
    rows: &mut Rows,
    body: &str,
    scope: &[String],
) -> Result<(bool, Option<String>), ProviderError> {
    let page: Page<Cost> = parse(body, "cost report")?;
    for bucket in page.data {
        let day = bucket.starting_at.date_naive();
        for result in bucket.results {
            let workspace = result.workspace_id.as_deref().unwrap_or("");
            if !in_scope(scope, workspace) {
                continue;
            }
            let text = match &result.amount {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                None | Some(Value::Null) => continue,
                Some(other) => return Err(not_an_amount(other)),
            };
            if let Some(currency) = result.currency.as_deref()
                && !currency.eq_ignore_ascii_case("usd")
            {
                return Err(ProviderError::Invalid {
                    provider: label(Provider::Anthropic),
                    status: 200,
                    message: format!(
                        "it reports costs in {currency:?}; only USD can be compared with LLMtrack's prices"
                    ),
                });
            }
            let pico = cents_to_pico(&text)
                .ok_or_else(|| not_an_amount(result.amount.as_ref().unwrap_or(&Value::Null)))?;
            match result.model.as_deref().filter(|m| !m.is_empty()) {
                Some(model) => {
                    let kind = result.token_type.as_deref().and_then(token_kind);
                    rows.add_cost(day, model, workspace, kind, pico)
                }
                // Web search, code execution, sessions: billed, but not to a model.
                None => rows.add_cost(day, "", workspace, None, pico),
            }
        }
    }
    Ok((page.has_more, page.next_page))
}

fn not_an_amount(value: &Value) -> ProviderError {
    ProviderError::Unavailable {
        provider: label(Provider::Anthropic),
        message: format!("answered with a cost that is not an amount: {value}"),
    }
}

fn token_kind(token_type: &str) -> Option<TokenKind> {
    match token_type {
        "uncached_input_tokens" => Some(TokenKind::Input),
        "cache_read_input_tokens" => Some(TokenKind::CachedInput),
        "output_tokens" => Some(TokenKind::Output),
        t if t.starts_with("cache_creation.") => Some(TokenKind::CacheWrite),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::reconciliation::BilledRow;
    use crate::domain::reconciliation::money::PICO_PER_USD;

    const USAGE_JSON: &str =
        include_str!("../../../../tests/fixtures/provider-billing/anthropic-usage-report.json");
    const COSTS_JSON: &str =
        include_str!("../../../../tests/fixtures/provider-billing/anthropic-cost-report.json");

    const OPUS: &str = "claude-opus-4-6";
    const SONNET: &str = "claude-sonnet-4-20250514";
    const WORKSPACE: &str = "wrkspc_01Fx8kQ2mNv7Pt3LcR9sYwZa";

    fn import(scope: &[String], costs: &str) -> Vec<BilledRow> {
        let days = Days::parse(Provider::Anthropic, "2026-08-01", "2026-08-03").unwrap();
        let mut rows = Rows::new(Provider::Anthropic, days);
        assert_eq!(
            fold_usage(&mut rows, USAGE_JSON, scope).unwrap(),
            (true, Some("page_MjAyNi0wOC0wM1QwMDowMDowMFo=".to_owned()))
        );
        assert_eq!(fold_costs(&mut rows, costs, scope).unwrap(), (false, None));
        rows.into_rows()
    }

    fn day_cost(rows: &[BilledRow], day: &str) -> i128 {
        rows.iter()
            .filter(|r| r.day == day)
            .map(|r| r.cost_pico)
            .sum()
    }

    /// Cents to picodollars, for the README's totals.
    const PICO_PER_CENT: i128 = PICO_PER_USD / 100;

    #[test]
    fn fixtures_add_up_to_the_day_totals_exactly() {
        let rows = import(&[], COSTS_JSON);
        // 1705.6685 and 1203.085 cents (README §3).
        assert_eq!(
            day_cost(&rows, "2026-08-01"),
            17_056_685 * PICO_PER_CENT / 10_000
        );
        assert_eq!(
            day_cost(&rows, "2026-08-02"),
            1_203_085 * PICO_PER_CENT / 1_000
        );
        assert_eq!(rows.len(), 6, "{rows:#?}");

        let opus = rows
            .iter()
            .find(|r| r.key() == ("2026-08-01", OPUS, WORKSPACE))
            .unwrap();
        assert_eq!(opus.tokens, [851_337, 2_400_000, 120_000, 96_000]);
        assert_eq!(opus.requests, None);
        assert_eq!(opus.cost_pico, 8_606_685 * PICO_PER_CENT / 10_000);
        assert_eq!(
            opus.kind_cost_pico,
            [
                Some(4_256_685 * PICO_PER_CENT / 10_000),
                Some(120 * PICO_PER_CENT),
                Some(75 * PICO_PER_CENT),
                Some(240 * PICO_PER_CENT),
            ]
        );
        // The default workspace is scope "", and 1-hour writes are cache writes too.
        let sonnet = rows
            .iter()
            .find(|r| r.key() == ("2026-08-01", SONNET, ""))
            .unwrap();
        assert_eq!(sonnet.tokens, [1_600_000, 300_000, 40_000, 210_000]);
        assert_eq!(
            sonnet.kind_cost_pico[TokenKind::CacheWrite.index()],
            Some(24 * PICO_PER_CENT)
        );
        // Web search (12) and code execution (5) belong to no model.
        let tools = rows
            .iter()
            .find(|r| r.key() == ("2026-08-01", "", WORKSPACE))
            .unwrap();
        assert_eq!(tools.cost_pico, 17 * PICO_PER_CENT);
        assert_eq!(tools.tokens, [0; 4]);
    }

    #[test]
    fn scope_narrows_the_cost_report_too() {
        let rows = import(&[WORKSPACE.to_owned()], COSTS_JSON);
        assert!(rows.iter().all(|r| r.scope == WORKSPACE), "{rows:#?}");
        assert_eq!(
            day_cost(&rows, "2026-08-01"),
            (8_606_685 + 170_000) * PICO_PER_CENT / 10_000
        );
    }

    #[test]
    fn amounts_as_numbers_read_the_same() {
        let mut page: Value = serde_json::from_str(COSTS_JSON).unwrap();
        for bucket in page["data"].as_array_mut().unwrap() {
            for result in bucket["results"].as_array_mut().unwrap() {
                let text = result["amount"].as_str().unwrap().to_owned();
                result["amount"] = serde_json::from_str(&text).unwrap();
            }
        }
        assert_eq!(import(&[], &page.to_string()), import(&[], COSTS_JSON));
    }

    #[test]
    fn foreign_currency_and_junk_are_errors() {
        let days = Days::parse(Provider::Anthropic, "2026-08-01", "2026-08-03").unwrap();
        let mut rows = Rows::new(Provider::Anthropic, days);
        let eur = COSTS_JSON.replacen("\"USD\"", "\"EUR\"", 1);
        let error = fold_costs(&mut rows, &eur, &[]).unwrap_err();
        assert!(error.to_string().contains("\"EUR\""), "{error}");
        let bad = COSTS_JSON.replacen("\"425.6685\"", "\"4,25\"", 1);
        assert!(fold_costs(&mut rows, &bad, &[]).is_err());
        let error = fold_usage(&mut rows, "{\"data\": 3}", &[]).unwrap_err();
        assert!(error.to_string().contains("not a usage page"), "{error}");
    }

    #[test]
    fn queries_use_brackets() {
        let days = Days::parse(Provider::Anthropic, "2026-08-01", "2026-08-04").unwrap();
        let q = usage_query(days, LIMIT, &["w1".to_owned()]);
        let q: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            q.join("&"),
            "starting_at=2026-08-01T00:00:00Z&ending_at=2026-08-04T00:00:00Z&bucket_width=1d\
             &group_by[]=model&group_by[]=workspace_id&limit=31&workspace_ids[]=w1"
        );
        let q = costs_query(days, LIMIT);
        assert!(q.iter().all(|(k, _)| k != "workspace_ids[]"));
        assert!(q.contains(&("group_by[]".to_owned(), "description".to_owned())));
    }

    #[test]
    fn token_types() {
        assert_eq!(token_kind("uncached_input_tokens"), Some(TokenKind::Input));
        assert_eq!(
            token_kind("cache_read_input_tokens"),
            Some(TokenKind::CachedInput)
        );
        assert_eq!(
            token_kind("cache_creation.ephemeral_1h_input_tokens"),
            Some(TokenKind::CacheWrite)
        );
        assert_eq!(token_kind("output_tokens"), Some(TokenKind::Output));
        assert_eq!(token_kind("something_new"), None);
    }
}
