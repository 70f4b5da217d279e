//! The provider billing clients (`adapters::providers::ProviderClient`) against the local fake of
//! OpenAI's and Anthropic's billing APIs: imports equal the fixtures' sums to the picodollar,
//! paging, retries, refused keys. The last test holds the fake itself to the real APIs' answers.

use std::time::{Duration, Instant};

use llmtrack_shared::adapters::providers::RetryPolicy;
use llmtrack_shared::domain::reconciliation::money::PICO_PER_USD;
use llmtrack_shared::domain::reconciliation::{BilledRow, Provider, TokenKind};
use llmtrack_shared::ports::{ProviderApi, ProviderError};
use serde_json::{Value, json};

use super::fake_providers::*;

const GPT4O: &str = "gpt-4o-2024-08-06";
const MINI: &str = "gpt-4o-mini-2024-07-18";
const OPUS: &str = "claude-opus-4-6";
const SONNET: &str = "claude-sonnet-4-20250514";
const PICO_PER_CENT: i128 = PICO_PER_USD / 100;

fn day_cost(rows: &[BilledRow], day: &str) -> i128 {
    rows.iter()
        .filter(|r| r.day == day)
        .map(|r| r.cost_pico)
        .sum()
}

fn row<'a>(rows: &'a [BilledRow], day: &str, model: &str, scope: &str) -> &'a BilledRow {
    rows.iter()
        .find(|r| r.key() == (day, model, scope))
        .unwrap_or_else(|| panic!("no row {day} {model} {scope:?} in {rows:#?}"))
}

async fn openai_fixture_range(fake: &FakeProviders) -> Vec<BilledRow> {
    fake.client()
        .billed(
            Provider::OpenAi,
            OPENAI_ADMIN_KEY,
            &[],
            "2026-08-01",
            "2026-08-03",
        )
        .await
        .unwrap()
}

async fn anthropic_fixture_range(fake: &FakeProviders) -> Vec<BilledRow> {
    fake.client()
        .billed(
            Provider::Anthropic,
            ANTHROPIC_ADMIN_KEY,
            &[],
            "2026-08-01",
            "2026-08-03",
        )
        .await
        .unwrap()
}

fn assert_openai_fixture_sums(rows: &[BilledRow]) {
    // README §3: $7.03 and $4.9475.
    assert_eq!(day_cost(rows, "2026-08-01"), 703 * PICO_PER_CENT);
    assert_eq!(day_cost(rows, "2026-08-02"), 49_475 * PICO_PER_USD / 10_000);
    assert_eq!(rows.len(), 4, "{rows:#?}");
}

fn assert_anthropic_fixture_sums(rows: &[BilledRow]) {
    // README §3: 1705.6685 and 1203.085 cents.
    assert_eq!(
        day_cost(rows, "2026-08-01"),
        17_056_685 * PICO_PER_CENT / 10_000
    );
    assert_eq!(
        day_cost(rows, "2026-08-02"),
        1_203_085 * PICO_PER_CENT / 1_000
    );
    assert_eq!(rows.len(), 6, "{rows:#?}");
}

#[tokio::test]
async fn fixture_days_import_to_the_providers_sums() {
    let fake = FakeProviders::start().await;

    let rows = openai_fixture_range(&fake).await;
    assert_openai_fixture_sums(&rows);
    let gpt4o = row(&rows, "2026-08-01", GPT4O, OPENAI_PROJECT_GPT4O);
    assert_eq!(gpt4o.tokens, [1_200_000, 300_000, 0, 250_000]);
    assert_eq!(gpt4o.requests, Some(640));
    assert_eq!(
        gpt4o.kind_cost_pico[TokenKind::Output.index()],
        Some(25 * PICO_PER_USD / 10)
    );
    let mini = row(&rows, "2026-08-02", MINI, OPENAI_PROJECT_MINI);
    assert_eq!(mini.tokens, [2_500_000, 500_000, 0, 600_000]);
    // What was asked: the spec's repeated keys, both groupings, whole days.
    let usage = &fake.requests_to("usage/completions")[0];
    assert_eq!(usage.params("group_by"), ["model", "project_id"]);
    assert!(usage.query.iter().all(|(k, _)| !k.ends_with("[]")));
    assert_eq!(usage.param("start_time"), Some("1785542400"));
    assert_eq!(usage.param("end_time"), Some("1785715200"));
    assert_eq!(usage.param("bucket_width"), Some("1d"));
    assert_eq!(usage.param("limit"), Some("31"));
    let costs = &fake.requests_to("/costs")[0];
    assert_eq!(costs.params("group_by"), ["line_item", "project_id"]);
    assert_eq!(costs.param("limit"), Some("180"));

    let rows = anthropic_fixture_range(&fake).await;
    assert_anthropic_fixture_sums(&rows);
    let opus = row(&rows, "2026-08-01", OPUS, ANTHROPIC_WORKSPACE);
    assert_eq!(opus.tokens, [851_337, 2_400_000, 120_000, 96_000]);
    assert_eq!(opus.requests, None);
    let sonnet = row(&rows, "2026-08-02", SONNET, "");
    assert_eq!(sonnet.tokens, [1_100_000, 0, 0, 150_000]);
    assert_eq!(sonnet.cost_pico, 555 * PICO_PER_CENT);
    // Web search and code execution: a row of no model.
    assert_eq!(
        row(&rows, "2026-08-01", "", ANTHROPIC_WORKSPACE).cost_pico,
        17 * PICO_PER_CENT
    );
    let usage = &fake.requests_to("usage_report/messages")[0];
    assert!(
        usage
            .query
            .contains(&("group_by[]".to_owned(), "model".to_owned()))
    );
    assert_eq!(usage.params("group_by"), ["model", "workspace_id"]);
    assert_eq!(usage.param("starting_at"), Some("2026-08-01T00:00:00Z"));
    assert_eq!(usage.param("ending_at"), Some("2026-08-03T00:00:00Z"));
    let costs = &fake.requests_to("cost_report")[0];
    assert_eq!(costs.params("group_by"), ["workspace_id", "description"]);
    assert!(fake.requests().iter().all(|r| r.status == 200));
}

#[tokio::test]
async fn pages_are_followed_to_the_end() {
    let fake = FakeProviders::start().await;
    fake.set_page_cap(Some(1));
    assert_openai_fixture_sums(&openai_fixture_range(&fake).await);
    assert_anthropic_fixture_sums(&anthropic_fixture_range(&fake).await);
    for path in [
        "usage/completions",
        "/costs",
        "usage_report/messages",
        "cost_report",
    ] {
        let seen = fake.requests_to(path);
        assert_eq!(seen.len(), 2, "{path}: {seen:#?}");
        assert_eq!(seen[0].param("page"), None);
        assert_eq!(
            seen[1].param("page"),
            seen[0].next_page.as_deref(),
            "{path}"
        );
        assert_eq!(seen[1].next_page, None);
        // Every other parameter repeated as it was.
        let without_page: Vec<_> = seen[1].query.iter().filter(|(k, _)| k != "page").collect();
        assert_eq!(without_page, seen[0].query.iter().collect::<Vec<_>>());
    }

    // Without a cap, the limit pages a long range: 40 days are two pages of 31 buckets.
    fake.set_page_cap(None);
    fake.clear_requests();
    let rows = fake
        .client()
        .billed(
            Provider::Anthropic,
            ANTHROPIC_ADMIN_KEY,
            &[],
            "2026-07-01",
            "2026-08-10",
        )
        .await
        .unwrap();
    assert_anthropic_fixture_sums(&rows);
    assert_eq!(fake.requests_to("usage_report/messages").len(), 2);
    let rows = fake
        .client()
        .billed(
            Provider::OpenAi,
            OPENAI_ADMIN_KEY,
            &[],
            "2026-07-01",
            "2026-08-10",
        )
        .await
        .unwrap();
    assert_openai_fixture_sums(&rows);
    assert_eq!(fake.requests_to("usage/completions").len(), 2);
    assert_eq!(
        fake.requests_to("/costs").len(),
        1,
        "costs take 180 buckets a page"
    );
}

#[tokio::test]
async fn rate_limits_are_waited_out_as_asked() {
    let fake = FakeProviders::start().await;
    fake.fail_next(1, 429, Some(1));
    let started = Instant::now();
    assert_openai_fixture_sums(&openai_fixture_range(&fake).await);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retry-after: 1 was honoured"
    );
    let seen = fake.requests();
    assert_eq!(seen[0].status, 429);
    assert_eq!((seen[1].status, &seen[1].query), (200, &seen[0].query));

    // A wait past the policy's limit is not waited: the import fails at once, to resume later.
    fake.fail_next(1, 429, Some(3600));
    let client = fake.client().with_retry(RetryPolicy {
        max_retry_after: Duration::from_secs(60),
        ..RetryPolicy::fast()
    });
    let error = client
        .billed(
            Provider::Anthropic,
            ANTHROPIC_ADMIN_KEY,
            &[],
            "2026-08-01",
            "2026-08-03",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::Unavailable { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("3600"), "{error}");
}

#[tokio::test]
async fn server_errors_are_retried() {
    let fake = FakeProviders::start().await;
    fake.fail_next(1, 500, None);
    fake.fail_next(1, 529, None);
    assert_anthropic_fixture_sums(&anthropic_fixture_range(&fake).await);
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 529, 200, 200]);
}

#[tokio::test]
async fn a_provider_failing_for_good_is_unavailable_after_the_retries() {
    let fake = FakeProviders::start().await;
    // An import cut off midway: the first page answered, then only 503s.
    fake.fail_after(1, 503);
    let error = fake
        .client()
        .billed(
            Provider::OpenAi,
            OPENAI_ADMIN_KEY,
            &[],
            "2026-08-01",
            "2026-08-03",
        )
        .await
        .unwrap_err();
    let ProviderError::Unavailable { provider, message } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(*provider, "OpenAI");
    assert!(
        message.contains("503") && message.contains("5 tries"),
        "{message}"
    );
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 503, 503, 503, 503, 503]);

    // Once it recovers, the same import goes through.
    fake.stop_failing();
    assert_openai_fixture_sums(&openai_fixture_range(&fake).await);
}

#[tokio::test]
async fn wrong_keys_are_refused_in_the_providers_words() {
    let fake = FakeProviders::start().await;
    let client = fake.client();

    let wrong = "sk-admin-notTheRightKeyAtAll000000001234";
    let error = client
        .check(Provider::OpenAi, wrong, &[])
        .await
        .unwrap_err();
    let ProviderError::Refused {
        status, message, ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(*status, 401);
    assert!(message.contains("Incorrect API key provided"), "{message}");
    assert!(
        !message.contains("starts with"),
        "it looks like an admin key: {message}"
    );
    assert!(!error.to_string().contains(wrong), "{error}");

    let error = client
        .billed(
            Provider::Anthropic,
            "sk-ant-admin01-revoked",
            &[],
            "2026-08-01",
            "2026-08-03",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::Refused { status: 401, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("invalid x-api-key"), "{error}");
    assert!(error.to_string().contains("request-id req_"), "{error}");
    // Refused at once: a refused key is not retried.
    assert_eq!(fake.requests_to("usage_report/messages").len(), 1);

    // Keys that are not admin keys: the provider's reason, and what an admin key looks like.
    let error = client
        .check(Provider::OpenAi, OPENAI_PROJECT_KEY, &[])
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::Refused { status: 401, .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains("Missing scopes: api.usage.read"), "{text}");
    assert!(
        text.contains("an admin key starts with sk-admin-"),
        "{text}"
    );
    let error = client
        .check(Provider::Anthropic, ANTHROPIC_API_KEY, &[])
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::Refused { status: 403, .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("an admin key starts with sk-ant-admin"),
        "{error}"
    );

    // The right keys pass, one small request to each API.
    fake.clear_requests();
    client
        .check(Provider::OpenAi, OPENAI_ADMIN_KEY, &[])
        .await
        .unwrap();
    client
        .check(Provider::Anthropic, ANTHROPIC_ADMIN_KEY, &[])
        .await
        .unwrap();
    let seen = fake.requests();
    assert_eq!(seen.len(), 4, "{seen:#?}");
    assert!(
        seen.iter()
            .all(|r| r.status == 200 && r.param("limit") == Some("1"))
    );
}

#[tokio::test]
async fn string_amounts_import_the_same() {
    let fake = FakeProviders::start().await;
    let numbers = openai_fixture_range(&fake).await;
    fake.set_openai_string_amounts(true);
    assert_eq!(openai_fixture_range(&fake).await, numbers);
}

#[tokio::test]
async fn scope_narrows_to_projects_and_workspaces() {
    let fake = FakeProviders::start().await;
    let client = fake.client();
    let rows = client
        .billed(
            Provider::OpenAi,
            OPENAI_ADMIN_KEY,
            &[OPENAI_PROJECT_MINI.to_owned()],
            "2026-08-01",
            "2026-08-03",
        )
        .await
        .unwrap();
    assert!(
        rows.iter()
            .all(|r| r.model == MINI && r.scope == OPENAI_PROJECT_MINI),
        "{rows:#?}"
    );
    assert_eq!(day_cost(&rows, "2026-08-01"), 1_155 * PICO_PER_USD / 1000);
    assert_eq!(
        fake.requests_to("/costs")[0].params("project_ids"),
        [OPENAI_PROJECT_MINI]
    );

    let rows = client
        .billed(
            Provider::Anthropic,
            ANTHROPIC_ADMIN_KEY,
            &[ANTHROPIC_WORKSPACE.to_owned()],
            "2026-08-01",
            "2026-08-03",
        )
        .await
        .unwrap();
    assert!(
        rows.iter().all(|r| r.scope == ANTHROPIC_WORKSPACE),
        "{rows:#?}"
    );
    assert_eq!(
        day_cost(&rows, "2026-08-01"),
        8_776_685 * PICO_PER_CENT / 10_000
    );
    let usage = &fake.requests_to("usage_report/messages")[0];
    assert_eq!(usage.params("workspace_ids"), [ANTHROPIC_WORKSPACE]);
    // The cost report takes no workspace filter: it is applied to the items.
    assert!(
        fake.requests_to("cost_report")[0]
            .params("workspace_ids")
            .is_empty()
    );
}

#[tokio::test]
async fn days_set_by_a_test_are_served() {
    let fake = FakeProviders::start().await;
    let today = chrono::Utc::now().date_naive();
    let day = (today - chrono::TimeDelta::days(3))
        .format("%Y-%m-%d")
        .to_string();
    fake.set_openai_day(
        &day,
        json!([FakeProviders::openai_usage(
            "gpt-4.1",
            "proj_a",
            [100, 20, 5, 30],
            7
        )]),
        json!([
            FakeProviders::openai_cost("gpt-4.1, input", "proj_a", "0.0002"),
            FakeProviders::openai_cost("gpt-4.1, output", "proj_a", "0.00024"),
            FakeProviders::openai_cost("Web search", "proj_a", "0.01"),
        ]),
    );
    fake.set_anthropic_day(
        &day,
        json!([FakeProviders::anthropic_usage(OPUS, None, [10, 0, 0, 5])]),
        json!([
            FakeProviders::anthropic_cost(Some(OPUS), Some("uncached_input_tokens"), None, "0.005"),
            FakeProviders::anthropic_cost(None, None, None, "1"),
        ]),
    );
    let from = (today - chrono::TimeDelta::days(30))
        .format("%Y-%m-%d")
        .to_string();
    let to = (today + chrono::TimeDelta::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let client = fake.client();
    let rows = client
        .billed(Provider::OpenAi, OPENAI_ADMIN_KEY, &[], &from, &to)
        .await
        .unwrap();
    let gpt = row(&rows, &day, "gpt-4.1", "proj_a");
    assert_eq!(gpt.tokens, [100, 20, 5, 30]);
    assert_eq!(gpt.requests, Some(7));
    assert_eq!(gpt.cost_pico, 440_000_000);
    assert_eq!(row(&rows, &day, "", "proj_a").cost_pico, PICO_PER_CENT);
    assert_eq!(rows.iter().filter(|r| r.day == day).count(), 2);
    let rows = client
        .billed(Provider::Anthropic, ANTHROPIC_ADMIN_KEY, &[], &from, &to)
        .await
        .unwrap();
    assert_eq!(row(&rows, &day, OPUS, "").cost_pico, 50_000_000);
    assert_eq!(row(&rows, &day, "", "").cost_pico, PICO_PER_CENT);
}

/// The fake answers as the real APIs do (README §4), so what passes here is what they accept.
#[tokio::test]
async fn the_fake_answers_like_the_real_apis() {
    let fake = FakeProviders::start().await;
    let http = reqwest::Client::new();
    let openai = |path: &str| {
        http.get(format!("{}{path}", fake.openai_base()))
            .bearer_auth(OPENAI_ADMIN_KEY)
    };
    let anthropic = |path: &str| {
        http.get(format!("{}{path}", fake.anthropic_base()))
            .header("x-api-key", ANTHROPIC_ADMIN_KEY)
            .header("anthropic-version", "2023-06-01")
    };
    let read = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let request_id = r
            .headers()
            .get("request-id")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, request_id, r.json::<Value>().await.unwrap())
    };

    // The start is required, in each provider's error shape.
    let (status, _, body) = read(
        openai("/organization/costs?bucket_width=1d")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "start_time");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("start_time")
    );
    for key in ["type", "code"] {
        assert!(body["error"].get(key).is_some(), "{body}");
    }
    let (status, request_id, body) = read(
        anthropic("/v1/organizations/cost_report")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(
        Some(body["request_id"].as_str().unwrap().to_owned()),
        request_id
    );

    // Anthropic wants its version header.
    let response = http
        .get(format!(
            "{}/v1/organizations/cost_report?starting_at=2026-08-01T00:00:00Z",
            fake.base
        ))
        .header("x-api-key", ANTHROPIC_ADMIN_KEY)
        .send()
        .await
        .unwrap();
    let (status, request_id, body) = read(response).await;
    assert_eq!(status, 400);
    assert!(request_id.is_some());
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("anthropic-version")
    );

    // Usage grouped by model only: project null, buckets for every day including empty ones,
    // `object` everywhere, bracketed and plain arrays alike.
    for group in ["group_by=model", "group_by[]=model"] {
        let (status, _, body) = read(
            openai(&format!(
                "/organization/usage/completions?start_time=1785542400&end_time=1785801600&{group}&limit=31"
            ))
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["object"], "page");
        assert_eq!(
            (body["has_more"].clone(), body["next_page"].clone()),
            (json!(false), Value::Null)
        );
        let buckets = body["data"].as_array().unwrap();
        assert_eq!(buckets.len(), 3);
        assert_eq!(buckets[2]["results"], json!([]));
        assert_eq!(buckets[0]["object"], "bucket");
        let first = &buckets[0]["results"][0];
        assert_eq!(first["model"], GPT4O);
        assert_eq!(first["project_id"], Value::Null);
        assert_eq!(first["object"], "organization.usage.completions.result");
        assert_eq!(first["num_model_requests"], 640);
    }
    // Not grouped at all: one result per bucket, sums of both models.
    let (_, _, body) = read(
        openai("/organization/usage/completions?start_time=1785542400&end_time=1785628800")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let results = body["data"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["input_tokens"], 6_500_000);
    assert_eq!(results[0]["model"], Value::Null);
    // Costs grouped by project: the line items summed exactly, quantity null.
    let (_, _, body) = read(
        openai(&format!(
            "/organization/costs?start_time=1785542400&end_time=1785628800&group_by=project_id&project_ids={OPENAI_PROJECT_GPT4O}"
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    let results = body["data"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{body}");
    assert_eq!(results[0]["amount"]["value"], json!(5.875));
    assert_eq!(results[0]["line_item"], Value::Null);
    assert_eq!(results[0]["quantity"], Value::Null);

    // Anthropic: every key present, ungrouped dimensions null, paging by limit.
    let (status, _, body) = read(
        anthropic(
            "/v1/organizations/usage_report/messages?starting_at=2026-08-01T00:00:00Z\
             &ending_at=2026-08-04T00:00:00Z&group_by[]=workspace_id&limit=2",
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("object").is_none());
    assert_eq!(body["has_more"], true);
    let token = body["next_page"].as_str().unwrap().to_owned();
    assert!(token.starts_with("page_"));
    let first = &body["data"][0];
    assert_eq!(first["starting_at"], "2026-08-01T00:00:00Z");
    assert_eq!(first["ending_at"], "2026-08-02T00:00:00Z");
    let result = &first["results"][0];
    assert_eq!(result["model"], Value::Null);
    assert_eq!(result["workspace_id"], ANTHROPIC_WORKSPACE);
    assert_eq!(
        result["cache_creation"]["ephemeral_5m_input_tokens"],
        120_000
    );
    for key in [
        "api_key_id",
        "service_tier",
        "context_window",
        "inference_geo",
        "account_id",
    ] {
        assert_eq!(result[key], Value::Null, "{key}");
    }
    let (_, _, body) = read(
        anthropic(&format!(
            "/v1/organizations/usage_report/messages?starting_at=2026-08-01T00:00:00Z\
             &ending_at=2026-08-04T00:00:00Z&group_by=workspace_id&limit=2&page={token}"
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    assert_eq!(body["data"][0]["results"], json!([]));
    assert_eq!(
        (body["has_more"].clone(), body["next_page"].clone()),
        (json!(false), Value::Null)
    );
    // The cost report grouped by workspace only: description fields null, cents summed exactly.
    let (_, _, body) = read(
        anthropic(
            "/v1/organizations/cost_report?starting_at=2026-08-01T00:00:00Z\
             &ending_at=2026-08-02T00:00:00Z&group_by[]=workspace_id",
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let results = body["data"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{body}");
    assert_eq!(results[0]["amount"], "877.6685");
    assert_eq!(results[0]["model"], Value::Null);
    assert_eq!(results[0]["description"], Value::Null);
    assert_eq!(results[1]["amount"], "828");
    // A limit past the maximum is refused.
    let (status, _, _) = read(
        anthropic("/v1/organizations/cost_report?starting_at=2026-08-01T00:00:00Z&limit=32")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
}
