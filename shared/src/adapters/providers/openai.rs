//! OpenAI's organisation Completions Usage and Costs APIs: daily buckets of usage grouped by
//! model and project, and of costs grouped by line item and project; amounts in dollars.

use chrono::{DateTime, NaiveDate};
use serde::Deserialize;
use serde_json::Value;

use super::{Days, Pager, ProviderClient, Rows, label, not_a_page};
use crate::domain::reconciliation::money::json_usd_to_pico;
use crate::domain::reconciliation::{Provider, TokenKind};
use crate::ports::ProviderError;

const USAGE: &str = "/organization/usage/completions";
const COSTS: &str = "/organization/costs";
/// Buckets per page: each endpoint's maximum for daily buckets.
const USAGE_LIMIT: u32 = 31;
const COSTS_LIMIT: u32 = 180;

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
        &usage_query(days, USAGE_LIMIT, scope),
        |body| fold_usage(rows, body),
    )
    .await?;
    read(
        client,
        key,
        COSTS,
        &costs_query(days, COSTS_LIMIT, scope),
        |body| fold_costs(rows, body),
    )
    .await
}

/// One bucket of each: enough to learn whether the key may read both.
pub(super) async fn check(
    client: &ProviderClient,
    key: &str,
    scope: &[String],
    days: Days,
) -> Result<(), ProviderError> {
    let mut rows = Rows::new(Provider::OpenAi, days);
    let url = |path: &str| format!("{}{path}", client.openai_base);
    let body = client
        .get(
            Provider::OpenAi,
            key,
            &url(USAGE),
            &usage_query(days, 1, scope),
        )
        .await?;
    fold_usage(&mut rows, &body)?;
    let body = client
        .get(
            Provider::OpenAi,
            key,
            &url(COSTS),
            &costs_query(days, 1, scope),
        )
        .await?;
    fold_costs(&mut rows, &body)?;
    Ok(())
}

/// Every page of one endpoint, each folded as it comes.
async fn read(
    client: &ProviderClient,
    key: &str,
    path: &str,
    query: &[(String, String)],
    mut fold: impl FnMut(&str) -> Result<(bool, Option<String>), ProviderError>,
) -> Result<(), ProviderError> {
    let url = format!("{}{path}", client.openai_base);
    let mut pager = Pager::new(Provider::OpenAi);
    while let Some(query) = pager.query(query) {
        let body = client.get(Provider::OpenAi, key, &url, &query).await?;
        let (has_more, next_page) = fold(&body)?;
        pager.advance(has_more, next_page)?;
    }
    Ok(())
}

/// Arrays as repeated keys (`group_by=model&group_by=project_id`), the spec's own form.
fn query(days: Days, group_by: &[&str], limit: u32, scope: &[String]) -> Vec<(String, String)> {
    let mut query = vec![
        ("start_time".to_owned(), days.start_unix().to_string()),
        ("end_time".to_owned(), days.end_unix().to_string()),
        ("bucket_width".to_owned(), "1d".to_owned()),
    ];
    for g in group_by {
        query.push(("group_by".to_owned(), (*g).to_owned()));
    }
    query.push(("limit".to_owned(), limit.to_string()));
    for project in scope {
        query.push(("project_ids".to_owned(), project.clone()));
    }
    query
}

fn usage_query(days: Days, limit: u32, scope: &[String]) -> Vec<(String, String)> {
    query(days, &["model", "project_id"], limit, scope)
}

fn costs_query(days: Days, limit: u32, scope: &[String]) -> Vec<(String, String)> {
    query(days, &["line_item", "project_id"], limit, scope)
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
    start_time: i64,
    #[serde(default = "Vec::new")]
    results: Vec<T>,
}

/// The counters read; `Option` everywhere because the spec requires only a few and fields have
/// come and gone (README §1.7).
#[derive(Deserialize)]
struct Usage {
    input_tokens: Option<u64>,
    input_cached_tokens: Option<u64>,
    input_cache_write_tokens: Option<u64>,
    input_uncached_tokens: Option<u64>,
    input_text_tokens: Option<u64>,
    input_audio_tokens: Option<u64>,
    output_tokens: Option<u64>,
    num_model_requests: Option<u64>,
    project_id: Option<String>,
    model: Option<String>,
}

impl Usage {
    /// Tokens by kind, each token counted once under either definition of the fields.
    fn tokens(&self) -> [u64; 4] {
        let cached = self.input_cached_tokens.unwrap_or(0);
        let write = self.input_cache_write_tokens.unwrap_or(0);
        let input = self.input_tokens.unwrap_or(0);
        let uncached = match self.input_uncached_tokens {
            Some(n) => n,
            // 2026 definitions (input_tokens counts text, audio and image, cached and written).
            None if self.input_text_tokens.is_some() => {
                input.saturating_sub(cached.saturating_add(write))
            }
            // Before 2026-07: input_tokens was text only, cached included, and audio input
            // (cached included, not split) a separate field.
            None => input
                .saturating_sub(cached.saturating_add(write))
                .saturating_add(self.input_audio_tokens.unwrap_or(0)),
        };
        [uncached, cached, write, self.output_tokens.unwrap_or(0)]
    }
}

#[derive(Deserialize)]
struct Cost {
    amount: Option<Amount>,
    line_item: Option<String>,
    project_id: Option<String>,
}

#[derive(Deserialize)]
struct Amount {
    /// A number per the spec, seen as a string (README §1.6).
    value: Option<Value>,
    currency: Option<String>,
}

fn parse<T: for<'de> Deserialize<'de>>(body: &str, what: &str) -> Result<Page<T>, ProviderError> {
    serde_json::from_str(body).map_err(|e| not_a_page(Provider::OpenAi, what, &e))
}

fn bucket_day(start_time: i64) -> Result<NaiveDate, ProviderError> {
    DateTime::from_timestamp(start_time, 0)
        .map(|t| t.date_naive())
        .ok_or_else(|| ProviderError::Unavailable {
            provider: label(Provider::OpenAi),
            message: format!("answered with a bucket starting at {start_time}, not a time"),
        })
}

fn fold_usage(rows: &mut Rows, body: &str) -> Result<(bool, Option<String>), ProviderError> {
    let page: Page<Usage> = parse(body, "usage")?;
    for bucket in page.data {
        let day = bucket_day(bucket.start_time)?;
        for result in bucket.results {
            rows.add_usage(
                day,
                result.model.as_deref().unwrap_or(""),
                result.project_id.as_deref().unwrap_or(""),
                result.tokens(),
                Some(result.num_model_requests.unwrap_or(0)),
            );
        }
    }
    Ok((page.has_more, page.next_page))
}

fn fold_costs(rows: &mut Rows, body: &str) -> Result<(bool, Option<String>), ProviderError> {
    let page: Page<Cost> = parse(body, "costs")?;
    for bucket in page.data {
        let day = bucket_day(bucket.start_time)?;
        for result in bucket.results {
            let Some(amount) = result.amount else {
                continue;
            };
            let Some(value) = amount.value.filter(|v| !v.is_null()) else {
                continue;
            };
            if let Some(currency) = amount.currency.as_deref()
                && !currency.eq_ignore_ascii_case("usd")
            {
                return Err(ProviderError::Invalid {
                    provider: label(Provider::OpenAi),
                    status: 200,
                    message: format!(
                        "it reports costs in {currency:?}; only usd can be compared with LLMtrack's prices"
                    ),
                });
            }
            let pico = json_usd_to_pico(&value).ok_or_else(|| ProviderError::Unavailable {
                provider: label(Provider::OpenAi),
                message: format!("answered with a cost that is not an amount: {value}"),
            })?;
            let scope = result.project_id.as_deref().unwrap_or("");
            match result.line_item.as_deref().and_then(split_line_item) {
                Some((model, kind)) => rows.add_cost(day, model, scope, Some(kind), pico),
                None => rows.add_cost(day, "", scope, None, pico),
            }
        }
    }
    Ok((page.has_more, page.next_page))
}

/// `"<model>, <kind>"`, the one form of the (unspecified, opaque) `line_item` label that ties a
/// cost to a model and token kind; any other label is a cost of no one model.
fn split_line_item(label: &str) -> Option<(&str, TokenKind)> {
    let (model, kind) = label.rsplit_once(',')?;
    let model = model.trim();
    if model.is_empty() {
        return None;
    }
    let kind = match kind.trim().to_ascii_lowercase().as_str() {
        "input" => TokenKind::Input,
        "cached input" => TokenKind::CachedInput,
        "cache write" | "cached write" => TokenKind::CacheWrite,
        "output" => TokenKind::Output,
        _ => return None,
    };
    Some((model, kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::reconciliation::BilledRow;
    use crate::domain::reconciliation::money::PICO_PER_USD;

    const USAGE_JSON: &str =
        include_str!("../../../../tests/fixtures/provider-billing/openai-usage-completions.json");
    const COSTS_1: &str =
        include_str!("../../../../tests/fixtures/provider-billing/openai-costs-page1.json");
    const COSTS_2: &str =
        include_str!("../../../../tests/fixtures/provider-billing/openai-costs-page2.json");

    const GPT4O: &str = "gpt-4o-2024-08-06";
    const MINI: &str = "gpt-4o-mini-2024-07-18";
    const PROJ_4O: &str = "proj_7Hq2LmN4pR8sT1vW3xY5zA6b";
    const PROJ_MINI: &str = "proj_C9dE2fG4hJ6kL8mN0pQ2rS4t";

    fn days() -> Days {
        Days::parse(Provider::OpenAi, "2026-08-01", "2026-08-03").unwrap()
    }

    /// The usage fixture as the API answers when also grouped by project (README §3's mapping).
    fn usage_by_project(edit: impl Fn(&mut serde_json::Map<String, Value>)) -> String {
        let mut page: Value = serde_json::from_str(USAGE_JSON).unwrap();
        for bucket in page["data"].as_array_mut().unwrap() {
            for result in bucket["results"].as_array_mut().unwrap() {
                let project = if result["model"] == GPT4O {
                    PROJ_4O
                } else {
                    PROJ_MINI
                };
                result["project_id"] = Value::from(project);
                edit(result.as_object_mut().unwrap());
            }
        }
        page.to_string()
    }

    fn import(usage: &str, costs: &[&str]) -> Vec<BilledRow> {
        let mut rows = Rows::new(Provider::OpenAi, days());
        assert_eq!(fold_usage(&mut rows, usage).unwrap(), (false, None));
        for page in costs {
            fold_costs(&mut rows, page).unwrap();
        }
        rows.into_rows()
    }

    fn day_cost(rows: &[BilledRow], day: &str) -> i128 {
        rows.iter()
            .filter(|r| r.day == day)
            .map(|r| r.cost_pico)
            .sum()
    }

    #[test]
    fn fixtures_add_up_to_the_day_totals_exactly() {
        let rows = import(&usage_by_project(|_| {}), &[COSTS_1, COSTS_2]);
        assert_eq!(rows.len(), 4, "{rows:#?}");
        // $7.03 and $4.9475 (README §3).
        assert_eq!(day_cost(&rows, "2026-08-01"), 703 * PICO_PER_USD / 100);
        assert_eq!(
            day_cost(&rows, "2026-08-02"),
            49_475 * PICO_PER_USD / 10_000
        );

        let row = rows
            .iter()
            .find(|r| r.key() == ("2026-08-01", GPT4O, PROJ_4O))
            .unwrap();
        assert_eq!(row.tokens, [1_200_000, 300_000, 0, 250_000]);
        assert_eq!(row.requests, Some(640));
        assert_eq!(row.cost_pico, 5_875 * PICO_PER_USD / 1000);
        assert_eq!(
            row.kind_cost_pico,
            [
                Some(3 * PICO_PER_USD),
                Some(375 * PICO_PER_USD / 1000),
                None,
                Some(25 * PICO_PER_USD / 10),
            ]
        );
        let mini = rows
            .iter()
            .find(|r| r.key() == ("2026-08-02", MINI, PROJ_MINI))
            .unwrap();
        assert_eq!(mini.tokens, [2_500_000, 500_000, 0, 600_000]);
        assert_eq!(mini.requests, Some(1950));
        assert_eq!(mini.cost_pico, 7725 * PICO_PER_USD / 10_000);
        // Every input token once: the sum of kinds is input_tokens + output_tokens.
        let tokens: u64 = rows.iter().map(BilledRow::total_tokens).sum();
        assert_eq!(
            tokens,
            1_500_000 + 250_000 + 5_000_000 + 800_000 + 1_000_000 + 180_000 + 3_000_000 + 600_000
        );
    }

    #[test]
    fn pages_say_whether_more_follow() {
        let mut rows = Rows::new(Provider::OpenAi, days());
        assert_eq!(
            fold_costs(&mut rows, COSTS_1).unwrap(),
            (true, Some("page_AAAAAGpuiIBaF8PpAAAAAGptNwA=".to_owned()))
        );
        assert_eq!(fold_costs(&mut rows, COSTS_2).unwrap(), (false, None));
    }

    #[test]
    fn usage_without_the_uncached_field_reads_the_same() {
        let new = import(&usage_by_project(|_| {}), &[]);
        // The fields of the 2025 recorded output only.
        let old = import(
            &usage_by_project(|r| {
                r.retain(|k, _| {
                    [
                        "object",
                        "input_tokens",
                        "output_tokens",
                        "num_model_requests",
                        "project_id",
                        "user_id",
                        "api_key_id",
                        "model",
                        "batch",
                        "input_cached_tokens",
                        "input_audio_tokens",
                        "output_audio_tokens",
                    ]
                    .contains(&k.as_str())
                })
            }),
            &[],
        );
        assert_eq!(old, new);
        assert_eq!(new[0].tokens, [1_200_000, 300_000, 0, 250_000]);
        // 2026 fields without input_uncached_tokens: input_tokens already holds the audio.
        let between = import(
            &usage_by_project(|r| {
                r.remove("input_uncached_tokens");
                r.insert("input_audio_tokens".into(), 1000.into());
                r.insert(
                    "input_tokens".into(),
                    (r["input_tokens"].as_u64().unwrap() + 1000).into(),
                );
            }),
            &[],
        );
        assert_eq!(between[0].tokens, [1_201_000, 300_000, 0, 250_000]);
        // And before: audio input was apart from input_tokens.
        let old_audio = import(
            &usage_by_project(|r| {
                r.remove("input_uncached_tokens");
                r.remove("input_text_tokens");
                r.insert("input_audio_tokens".into(), 1000.into());
            }),
            &[],
        );
        assert_eq!(old_audio[0].tokens, [1_201_000, 300_000, 0, 250_000]);
    }

    #[test]
    fn string_amounts_read_the_same() {
        let stringify = |page: &str| {
            let mut page: Value = serde_json::from_str(page).unwrap();
            for bucket in page["data"].as_array_mut().unwrap() {
                for result in bucket["results"].as_array_mut().unwrap() {
                    let value = result["amount"]["value"].to_string();
                    result["amount"]["value"] = Value::from(value);
                }
            }
            page.to_string()
        };
        let (s1, s2) = (stringify(COSTS_1), stringify(COSTS_2));
        assert!(s1.contains(r#""value":"0.375""#), "{s1}");
        let usage = usage_by_project(|_| {});
        assert_eq!(
            import(&usage, &[&s1, &s2]),
            import(&usage, &[COSTS_1, COSTS_2])
        );
    }

    #[test]
    fn other_line_items_are_costs_of_no_model() {
        let page = r#"{"object":"page","has_more":false,"next_page":null,"data":[
            {"object":"bucket","start_time":1785542400,"end_time":1785628800,"results":[
              {"object":"organization.costs.result","amount":{"value":0.06,"currency":"usd"},
               "line_item":"Image models","project_id":null,"api_key_id":null},
              {"object":"organization.costs.result","amount":{"value":"1.5","currency":"usd"},
               "line_item":"gpt-4.1, Cached Write","project_id":"proj_a"},
              {"object":"organization.costs.result","amount":{"value":null,"currency":"usd"},
               "line_item":"gpt-4.1, output","project_id":"proj_a"}]},
            {"object":"bucket","start_time":1785715200,"end_time":1785801600,"results":[
              {"object":"organization.costs.result","amount":{"value":9,"currency":"usd"},
               "line_item":null,"project_id":null}]}]}"#;
        let mut rows = Rows::new(Provider::OpenAi, days());
        fold_costs(&mut rows, page).unwrap();
        let rows = rows.into_rows();
        // The 08-03 bucket is past the range asked for.
        assert_eq!(rows.len(), 2, "{rows:#?}");
        assert_eq!(rows[0].key(), ("2026-08-01", "", ""));
        assert_eq!(rows[0].cost_pico, 6 * PICO_PER_USD / 100);
        assert_eq!(rows[0].kind_cost_pico, [None; 4]);
        assert_eq!(rows[1].key(), ("2026-08-01", "gpt-4.1", "proj_a"));
        assert_eq!(
            rows[1].kind_cost_pico[TokenKind::CacheWrite.index()],
            Some(15 * PICO_PER_USD / 10)
        );
        assert_eq!(rows[1].requests, None);
    }

    #[test]
    fn foreign_currency_and_junk_are_errors() {
        let eur = COSTS_1.replacen("\"usd\"", "\"eur\"", 1);
        let mut rows = Rows::new(Provider::OpenAi, days());
        let error = fold_costs(&mut rows, &eur).unwrap_err();
        assert!(matches!(error, ProviderError::Invalid { .. }), "{error}");
        assert!(error.to_string().contains("\"eur\""), "{error}");
        let error = fold_usage(&mut rows, "<html>502 Bad Gateway</html>").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("answered with something that is not a usage page"),
            "{error}"
        );
        let bad_amount = COSTS_1.replacen("3.0", "\"three\"", 1);
        assert!(fold_costs(&mut rows, &bad_amount).is_err());
    }

    #[test]
    fn queries_repeat_array_keys() {
        let q = costs_query(days(), COSTS_LIMIT, &["proj_a".into(), "proj_b".into()]);
        let text = serde_urlencoded::to_string(&q).unwrap();
        assert_eq!(
            text,
            "start_time=1785542400&end_time=1785715200&bucket_width=1d&group_by=line_item\
             &group_by=project_id&limit=180&project_ids=proj_a&project_ids=proj_b"
        );
    }

    #[test]
    fn line_items() {
        assert_eq!(
            split_line_item("gpt-4o, input"),
            Some(("gpt-4o", TokenKind::Input))
        );
        assert_eq!(
            split_line_item("gpt-4o, Cached Input"),
            Some(("gpt-4o", TokenKind::CachedInput))
        );
        assert_eq!(
            split_line_item("gpt-4o, cache write"),
            Some(("gpt-4o", TokenKind::CacheWrite))
        );
        assert_eq!(
            split_line_item("gpt-4o,output"),
            Some(("gpt-4o", TokenKind::Output))
        );
        assert_eq!(split_line_item("Image models"), None);
        assert_eq!(split_line_item(", input"), None);
        assert_eq!(split_line_item("gpt-4o, audio"), None);
    }
}
