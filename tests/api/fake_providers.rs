//! A local HTTP server that answers as OpenAI's organisation Usage and Costs APIs and Anthropic's
//! Admin usage and cost reports do (tests/fixtures/provider-billing/README.md's original, §4):
//! the same auth headers and error envelopes, the required start parameter, arrays as `k=v` and
//! `k[]=v`, one bucket per day in range (empty ones too), at most `limit` per page with opaque
//! `next_page` tokens, every dimension key present and null unless grouped, group-by and filters
//! honoured. It serves the fixtures' days (2026-08-01 and 08-02) and whatever days a test sets,
//! fails on request (429 with `retry-after`, 5xx), and keeps a log of every request.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};
use llmtrack_shared::adapters::providers::{ProviderClient, RetryPolicy};
use llmtrack_shared::domain::reconciliation::money::usd_to_pico;
use serde_json::{Map, Value, json};

/// The one OpenAI key the fake takes as an admin key.
pub const OPENAI_ADMIN_KEY: &str = "sk-admin-fakeLLMtrack0000000000000000wxyz";
/// A project key: authenticated, but without the `api.usage.read` scope.
pub const OPENAI_PROJECT_KEY: &str = "sk-proj-fakeLLMtrack00000000000000000000";
pub const ANTHROPIC_ADMIN_KEY: &str = "sk-ant-admin01-fakeLLMtrack000000000000000000";
/// A Messages API key: authenticated, but not allowed the Admin API.
pub const ANTHROPIC_API_KEY: &str = "sk-ant-api03-fakeLLMtrack0000000000000000000";

/// The fixtures' projects (README §3): each OpenAI model runs in one.
pub const OPENAI_PROJECT_GPT4O: &str = "proj_7Hq2LmN4pR8sT1vW3xY5zA6b";
pub const OPENAI_PROJECT_MINI: &str = "proj_C9dE2fG4hJ6kL8mN0pQ2rS4t";
/// The fixtures' named Anthropic workspace (Sonnet runs in the default one, `null`).
pub const ANTHROPIC_WORKSPACE: &str = "wrkspc_01Fx8kQ2mNv7Pt3LcR9sYwZa";

const OPENAI_USAGE: &str = "/v1/organization/usage/completions";
const OPENAI_COSTS: &str = "/v1/organization/costs";
const ANTHROPIC_USAGE: &str = "/v1/organizations/usage_report/messages";
const ANTHROPIC_COSTS: &str = "/v1/organizations/cost_report";

const FIXTURE_OPENAI_USAGE: &str =
    include_str!("../fixtures/provider-billing/openai-usage-completions.json");
const FIXTURE_OPENAI_COSTS: [&str; 2] = [
    include_str!("../fixtures/provider-billing/openai-costs-page1.json"),
    include_str!("../fixtures/provider-billing/openai-costs-page2.json"),
];
const FIXTURE_ANTHROPIC_USAGE: &str =
    include_str!("../fixtures/provider-billing/anthropic-usage-report.json");
const FIXTURE_ANTHROPIC_COSTS: &str =
    include_str!("../fixtures/provider-billing/anthropic-cost-report.json");

const OPENAI_USAGE_DIMS: [&str; 6] = [
    "project_id",
    "user_id",
    "api_key_id",
    "model",
    "batch",
    "service_tier",
];
const OPENAI_COSTS_DIMS: [&str; 3] = ["project_id", "line_item", "api_key_id"];
const ANTHROPIC_USAGE_DIMS: [&str; 8] = [
    "account_id",
    "api_key_id",
    "context_window",
    "inference_geo",
    "model",
    "service_account_id",
    "service_tier",
    "workspace_id",
];
/// Cost fields that are null unless the report is grouped by description (README §2.6).
const ANTHROPIC_DESCRIPTION_DIMS: [&str; 7] = [
    "description",
    "cost_type",
    "model",
    "token_type",
    "service_tier",
    "context_window",
    "inference_geo",
];

/// One request as the fake saw it: the query as sent (keys as written, `group_by[]` included),
/// what it answered, and the page token it handed out.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub path: String,
    pub query: Vec<(String, String)>,
    pub status: u16,
    pub next_page: Option<String>,
}

impl SeenRequest {
    /// The first value of a parameter, written `k` or `k[]`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params(name).into_iter().next()
    }

    /// Every value of an array parameter, written `k` or `k[]`.
    pub fn params(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k.strip_suffix("[]").unwrap_or(k) == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn is_openai(&self) -> bool {
        self.path.starts_with("/v1/organization/")
    }
}

#[derive(Default)]
struct Data {
    openai_usage: BTreeMap<NaiveDate, Vec<Value>>,
    openai_costs: BTreeMap<NaiveDate, Vec<Value>>,
    anthropic_usage: BTreeMap<NaiveDate, Vec<Value>>,
    anthropic_costs: BTreeMap<NaiveDate, Vec<Value>>,
    openai_string_amounts: bool,
    /// Fewer buckets per page than `limit`, to make paging cheap to test.
    page_cap: Option<usize>,
    scripted: VecDeque<(u16, Option<u64>)>,
    /// Requests answered normally before every request fails with the status.
    fail_after: Option<(usize, u16)>,
    log: Vec<SeenRequest>,
    request_ids: u64,
}

#[derive(Clone)]
pub struct FakeProviders {
    /// `http://127.0.0.1:<port>`: Anthropic's base; OpenAI's is `{base}/v1`.
    pub base: String,
    data: Arc<Mutex<Data>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    OpenAiUsage,
    OpenAiCosts,
    AnthropicUsage,
    AnthropicCosts,
}

impl Endpoint {
    fn openai(self) -> bool {
        matches!(self, Endpoint::OpenAiUsage | Endpoint::OpenAiCosts)
    }
}

impl FakeProviders {
    pub async fn start() -> FakeProviders {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let fake = FakeProviders {
            base,
            data: Arc::new(Mutex::new(fixture_data())),
        };
        let route = |endpoint: Endpoint| {
            get(
                move |State(fake): State<FakeProviders>, uri: Uri, headers: HeaderMap| async move {
                    fake.answer(endpoint, &uri, &headers)
                },
            )
        };
        let app = Router::new()
            .route(OPENAI_USAGE, route(Endpoint::OpenAiUsage))
            .route(OPENAI_COSTS, route(Endpoint::OpenAiCosts))
            .route(ANTHROPIC_USAGE, route(Endpoint::AnthropicUsage))
            .route(ANTHROPIC_COSTS, route(Endpoint::AnthropicCosts))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    pub fn openai_base(&self) -> String {
        format!("{}/v1", self.base)
    }

    pub fn anthropic_base(&self) -> String {
        self.base.clone()
    }

    /// A client of both fake APIs that retries without waiting (a `retry-after` still waits).
    pub fn client(&self) -> ProviderClient {
        ProviderClient::new(&self.openai_base(), &self.anthropic_base())
            .with_retry(RetryPolicy::fast())
    }

    /// Replaces a day's OpenAI data. `usage` and `costs` are arrays of results as the APIs write
    /// them with every dimension filled in (`model` and `project_id` at least, see
    /// [`FakeProviders::openai_usage`] and [`FakeProviders::openai_cost`]): the fake nulls and
    /// sums them per request's `group_by`. Missing keys are completed as the API would.
    pub fn set_openai_day(&self, day: &str, usage: Value, costs: Value) {
        let day = parse_day(day);
        let mut data = self.data.lock().unwrap();
        data.openai_usage
            .insert(day, complete(usage, openai_usage_defaults()));
        data.openai_costs
            .insert(day, complete(costs, openai_cost_defaults()));
    }

    /// Replaces a day's Anthropic data (see [`FakeProviders::anthropic_usage`] and
    /// [`FakeProviders::anthropic_cost`]); `workspace_id` null is the default workspace.
    pub fn set_anthropic_day(&self, day: &str, usage: Value, costs: Value) {
        let day = parse_day(day);
        let mut data = self.data.lock().unwrap();
        data.anthropic_usage
            .insert(day, complete(usage, anthropic_usage_defaults()));
        data.anthropic_costs
            .insert(day, complete(costs, anthropic_cost_defaults()));
    }

    /// OpenAI cost amounts as JSON strings (`"value": "0.375"`), as seen live once (README S5).
    pub fn set_openai_string_amounts(&self, on: bool) {
        self.data.lock().unwrap().openai_string_amounts = on;
    }

    /// At most `buckets` per page whatever the request's `limit` (None: `limit` alone).
    pub fn set_page_cap(&self, buckets: Option<usize>) {
        self.data.lock().unwrap().page_cap = buckets;
    }

    /// The next `n` requests (to either API) answer `status` (429, 500, 529…) in the provider's
    /// error shape, with `retry-after: <seconds>` when given.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        let mut data = self.data.lock().unwrap();
        data.scripted
            .extend(std::iter::repeat_n((status, retry_after), n));
    }

    /// After `n` more requests answered normally, every request answers `status`: an import
    /// cut off midway. [`FakeProviders::stop_failing`] ends it.
    pub fn fail_after(&self, n: usize, status: u16) {
        self.data.lock().unwrap().fail_after = Some((n, status));
    }

    pub fn stop_failing(&self) {
        let mut data = self.data.lock().unwrap();
        data.scripted.clear();
        data.fail_after = None;
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.data.lock().unwrap().log.clone()
    }

    /// The requests to one endpoint: `"usage/completions"`, `"costs"`, `"usage_report/messages"`,
    /// `"cost_report"`.
    pub fn requests_to(&self, path_end: &str) -> Vec<SeenRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with(path_end))
            .collect()
    }

    pub fn clear_requests(&self) {
        self.data.lock().unwrap().log.clear();
    }

    /// An OpenAI completions usage result, 2026 fields: `tokens` are uncached input, cached
    /// input, cache writes and output, all text.
    pub fn openai_usage(model: &str, project: &str, tokens: [u64; 4], requests: u64) -> Value {
        let [uncached, cached, write, output] = tokens;
        json!({
            "object": "organization.usage.completions.result",
            "input_tokens": uncached + cached + write,
            "input_cached_tokens": cached,
            "input_cache_write_tokens": write,
            "input_uncached_tokens": uncached,
            "output_tokens": output,
            "input_text_tokens": uncached,
            "output_text_tokens": output,
            "input_cached_text_tokens": cached,
            "input_audio_tokens": 0, "input_cached_audio_tokens": 0, "output_audio_tokens": 0,
            "input_image_tokens": 0, "input_cached_image_tokens": 0, "output_image_tokens": 0,
            "num_model_requests": requests,
            "project_id": project, "user_id": null, "api_key_id": null, "model": model,
            "batch": null, "service_tier": null,
        })
    }

    /// An OpenAI cost result of `usd` dollars (written as a JSON number), e.g. line item
    /// `"gpt-4o-2024-08-06, input"`, or a label of no model (`"Image models"`).
    pub fn openai_cost(line_item: &str, project: &str, usd: &str) -> Value {
        json!({
            "object": "organization.costs.result",
            "amount": {"value": number(usd), "currency": "usd"},
            "line_item": line_item, "project_id": project, "api_key_id": null,
            "quantity": null, "quantity_unit": null,
        })
    }

    /// An Anthropic usage result: `tokens` are uncached input, cache reads, 5-minute cache
    /// writes and output.
    pub fn anthropic_usage(model: &str, workspace: Option<&str>, tokens: [u64; 4]) -> Value {
        let [uncached, read, write, output] = tokens;
        json!({
            "account_id": null, "api_key_id": null,
            "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": write},
            "cache_read_input_tokens": read, "context_window": null, "inference_geo": null,
            "model": model, "output_tokens": output,
            "server_tool_use": {"web_search_requests": 0},
            "service_account_id": null, "service_tier": null,
            "uncached_input_tokens": uncached, "workspace_id": workspace,
        })
    }

    /// An Anthropic cost item of `cents` (a decimal string): a token cost when `model` and
    /// `token_type` (`uncached_input_tokens`, `output_tokens`, `cache_read_input_tokens`,
    /// `cache_creation.ephemeral_5m_input_tokens`…) are given, else web search.
    pub fn anthropic_cost(
        model: Option<&str>,
        token_type: Option<&str>,
        workspace: Option<&str>,
        cents: &str,
    ) -> Value {
        let tokens = model.is_some();
        json!({
            "amount": cents,
            "context_window": if tokens { json!("0-200k") } else { Value::Null },
            "cost_type": if tokens { "tokens" } else { "web_search" },
            "currency": "USD",
            "description": match model {
                Some(m) => format!("{m} Usage - {}", token_type.unwrap_or("tokens")),
                None => "Web Search Usage".to_owned(),
            },
            "inference_geo": if tokens { json!("global") } else { Value::Null },
            "model": model,
            "service_tier": if tokens { json!("standard") } else { Value::Null },
            "token_type": token_type,
            "workspace_id": workspace,
        })
    }

    fn answer(&self, endpoint: Endpoint, uri: &Uri, headers: &HeaderMap) -> Response {
        let raw: Vec<(String, String)> =
            form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let mut data = self.data.lock().unwrap();
        data.request_ids += 1;
        let request_id = format!("req_011Fake{:016}", data.request_ids);
        let (mut response, next_page) = respond(&mut data, endpoint, &raw, headers, &request_id);
        if !endpoint.openai() {
            // Every Anthropic answer carries one, errors included.
            response
                .headers_mut()
                .insert("request-id", HeaderValue::from_str(&request_id).unwrap());
        }
        data.log.push(SeenRequest {
            path: uri.path().to_owned(),
            query: raw,
            status: response.status().as_u16(),
            next_page,
        });
        response
    }
}

fn respond(
    data: &mut Data,
    endpoint: Endpoint,
    raw: &[(String, String)],
    headers: &HeaderMap,
    request_id: &str,
) -> (Response, Option<String>) {
    let fail = |status: u16, retry_after: Option<u64>| {
        let mut response = failure(endpoint, status, request_id);
        if let Some(s) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(s));
        }
        (response, None)
    };
    if let Some((status, retry_after)) = data.scripted.pop_front() {
        return fail(status, retry_after);
    }
    if let Some((left, status)) = &mut data.fail_after {
        if *left == 0 {
            let status = *status;
            return fail(status, None);
        }
        *left -= 1;
    }
    if let Err(response) = authenticate(endpoint, headers, request_id) {
        return (*response, None);
    }
    let params = Params::new(raw);
    let page = if endpoint.openai() {
        openai_page(data, endpoint, &params)
    } else {
        anthropic_page(data, endpoint, &params)
    };
    match page {
        Ok((body, next)) => (axum::Json(body).into_response(), next),
        Err(bad) => {
            let response = if endpoint.openai() {
                openai_error(
                    StatusCode::BAD_REQUEST,
                    &bad.message,
                    "invalid_request_error",
                    bad.param,
                    None,
                )
            } else {
                anthropic_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    &bad.message,
                    request_id,
                )
            };
            (response, None)
        }
    }
}

/// A 400's message, and the parameter OpenAI names in it.
struct BadRequest {
    message: String,
    param: Option<&'static str>,
}

impl From<String> for BadRequest {
    fn from(message: String) -> Self {
        BadRequest {
            message,
            param: None,
        }
    }
}

impl From<&str> for BadRequest {
    fn from(message: &str) -> Self {
        message.to_owned().into()
    }
}

/// Query parameters with `k[]` read as `k`.
struct Params(BTreeMap<String, Vec<String>>);

impl Params {
    fn new(raw: &[(String, String)]) -> Params {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in raw {
            map.entry(k.strip_suffix("[]").unwrap_or(k).to_owned())
                .or_default()
                .push(v.clone());
        }
        Params(map)
    }

    fn one(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.first()).map(String::as_str)
    }

    fn all(&self, name: &str) -> &[String] {
        self.0.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    fn limit(&self, default: usize, max: usize) -> Result<usize, String> {
        match self.one("limit") {
            None => Ok(default),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(format!(
                    "limit must be an integer from 1 to {max}, got {text:?}"
                )),
            },
        }
    }

    fn group_by(&self, allowed: &[&str]) -> Result<Vec<String>, String> {
        let group_by = self.all("group_by").to_vec();
        match group_by.iter().find(|g| !allowed.contains(&g.as_str())) {
            Some(bad) => Err(format!(
                "Invalid value for 'group_by': {bad:?}; expected one of {}",
                allowed.join(", ")
            )),
            None => Ok(group_by),
        }
    }
}

type Page = Result<(Value, Option<String>), BadRequest>;

fn openai_page(data: &Data, endpoint: Endpoint, params: &Params) -> Page {
    let Some(start) = params.one("start_time") else {
        return Err(BadRequest {
            message: "Missing required parameter: 'start_time'.".to_owned(),
            param: Some("start_time"),
        });
    };
    let start: i64 = start.parse().map_err(|_| {
        format!("Invalid type for 'start_time': expected an integer, got {start:?}.")
    })?;
    let end: i64 = match params.one("end_time") {
        Some(e) => e
            .parse()
            .map_err(|_| format!("Invalid type for 'end_time': expected an integer, got {e:?}."))?,
        None => Utc::now().timestamp(),
    };
    if params.one("bucket_width").is_some_and(|w| w != "1d") {
        return Err("The fake serves bucket_width=1d only.".into());
    }
    let usage = endpoint == Endpoint::OpenAiUsage;
    let limit = params.limit(7, if usage { 31 } else { 180 })?;
    let limit = data.page_cap.map_or(limit, |cap| limit.min(cap));
    let (dims, stored): (&[&str], _) = if usage {
        (&OPENAI_USAGE_DIMS, &data.openai_usage)
    } else {
        (&OPENAI_COSTS_DIMS, &data.openai_costs)
    };
    let group_by = params.group_by(dims)?;
    // The filters each endpoint takes, by the dimension they narrow.
    let filters: Vec<(&str, &[String])> = if usage {
        vec![
            ("project_id", params.all("project_ids")),
            ("user_id", params.all("user_ids")),
            ("api_key_id", params.all("api_key_ids")),
            ("model", params.all("models")),
        ]
    } else {
        vec![
            ("project_id", params.all("project_ids")),
            ("api_key_id", params.all("api_key_ids")),
        ]
    };
    let batch = params.one("batch").map(|b| b == "true");

    // Buckets run from the start (not snapped: README §1.5 (b)) to each next UTC midnight.
    let mut at = match params.one("page") {
        Some(token) => decode_token(token, "o")
            .ok_or_else(|| format!("Invalid value for 'page': {token:?}."))?,
        None => start,
    };
    let mut buckets = Vec::new();
    while at < end && buckets.len() < limit {
        let time = DateTime::from_timestamp(at, 0).ok_or("start_time out of range")?;
        let day = time.date_naive();
        let next = (day + TimeDelta::days(1))
            .and_time(NaiveTime::MIN)
            .and_utc()
            .timestamp();
        let results: Vec<Value> = stored
            .get(&day)
            .into_iter()
            .flatten()
            .filter(|r| {
                filters.iter().all(|(dim, values)| {
                    values.is_empty() || values.iter().any(|v| r[*dim].as_str() == Some(v))
                })
            })
            .filter(|r| batch.is_none_or(|b| r["batch"].as_bool().unwrap_or(false) == b))
            .cloned()
            .collect();
        let mut results = group(&results, dims, &group_by);
        if !usage {
            for r in &mut results {
                if !group_by.iter().any(|g| g == "line_item") {
                    r["quantity"] = Value::Null;
                    r["quantity_unit"] = Value::Null;
                }
                if data.openai_string_amounts
                    && let Some(n) = r["amount"]["value"].as_number()
                {
                    r["amount"]["value"] = Value::String(n.to_string());
                }
            }
        }
        buckets.push(
            json!({"object": "bucket", "start_time": at, "end_time": next, "results": results}),
        );
        at = next;
    }
    let next_page = (at < end).then(|| encode_token("o", at));
    Ok((
        json!({"object": "page", "data": buckets, "has_more": next_page.is_some(), "next_page": next_page}),
        next_page,
    ))
}

fn anthropic_page(data: &Data, endpoint: Endpoint, params: &Params) -> Page {
    let time = |name: &str, text: &str| {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| format!("{name}: Input should be a valid datetime, got {text:?}"))
    };
    let Some(start) = params.one("starting_at") else {
        return Err("starting_at: Field required".into());
    };
    let start = time("starting_at", start)?;
    let end = match params.one("ending_at") {
        Some(e) => time("ending_at", e)?,
        None => Utc::now(),
    };
    if params.one("bucket_width").is_some_and(|w| w != "1d") {
        return Err("The fake serves bucket_width=1d only".into());
    }
    let usage = endpoint == Endpoint::AnthropicUsage;
    let limit = params.limit(7, 31)?;
    let limit = data.page_cap.map_or(limit, |cap| limit.min(cap));
    let group_by = if usage {
        params.group_by(&[
            "account_id",
            "api_key_id",
            "context_window",
            "inference_geo",
            "model",
            "service_account_id",
            "service_tier",
            "speed",
            "workspace_id",
        ])?
    } else {
        params.group_by(&["workspace_id", "description"])?
    };
    // The usage report's filters; the cost report has none (README §2.3).
    let filters: Vec<(&str, &[String])> = if usage {
        vec![
            ("workspace_id", params.all("workspace_ids")),
            ("model", params.all("models")),
            ("api_key_id", params.all("api_key_ids")),
            ("account_id", params.all("account_ids")),
            ("service_account_id", params.all("service_account_ids")),
            ("service_tier", params.all("service_tiers")),
            ("context_window", params.all("context_window")),
            ("inference_geo", params.all("inference_geos")),
        ]
    } else {
        Vec::new()
    };
    let stored = if usage {
        &data.anthropic_usage
    } else {
        &data.anthropic_costs
    };

    // Buckets snap to UTC days; one is served while it starts before `ending_at`.
    let mut day = match params.one("page") {
        Some(token) => decode_token(token, "a")
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .map(|t| t.date_naive())
            .ok_or_else(|| format!("page: invalid page token {token:?}"))?,
        None => start.date_naive(),
    };
    let midnight = |d: NaiveDate| d.and_time(NaiveTime::MIN).and_utc();
    let mut buckets = Vec::new();
    while midnight(day) < end && buckets.len() < limit {
        let results: Vec<Value> = stored
            .get(&day)
            .into_iter()
            .flatten()
            .filter(|r| {
                filters.iter().all(|(dim, values)| {
                    values.is_empty() || values.iter().any(|v| r[*dim].as_str() == Some(v))
                })
            })
            .cloned()
            .collect();
        let results = if usage {
            group(&results, &ANTHROPIC_USAGE_DIMS, &group_by)
        } else {
            let by_description = group_by.iter().any(|g| g == "description");
            let mut dims = vec!["workspace_id"];
            dims.extend(ANTHROPIC_DESCRIPTION_DIMS);
            let mut grouped = group_by.clone();
            if by_description {
                grouped.extend(ANTHROPIC_DESCRIPTION_DIMS.iter().map(|d| (*d).to_owned()));
            }
            group(&results, &dims, &grouped)
        };
        let next = day + TimeDelta::days(1);
        buckets.push(json!({
            "starting_at": rfc3339(midnight(day)),
            "ending_at": rfc3339(midnight(next)),
            "results": results,
        }));
        day = next;
    }
    let next_page = (midnight(day) < end).then(|| encode_token("a", midnight(day).timestamp()));
    Ok((
        json!({"data": buckets, "has_more": next_page.is_some(), "next_page": next_page}),
        next_page,
    ))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Opaque to clients, like the real ones (`page_` and base64); here they hold where the next
/// page starts.
fn encode_token(provider: &str, at: i64) -> String {
    format!("page_{}", BASE64.encode(format!("{provider}:{at}")))
}

fn decode_token(token: &str, provider: &str) -> Option<i64> {
    let bytes = BASE64.decode(token.strip_prefix("page_")?).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix(provider)?.strip_prefix(':')?.parse().ok()
}

/// Results as the API groups them: dimensions not grouped by become null, and results that
/// then look alike are summed (counts, and amounts as exact decimals).
fn group(results: &[Value], dims: &[&str], group_by: &[String]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for result in results {
        let mut result = result.clone();
        for dim in dims {
            if !group_by.iter().any(|g| g == dim) {
                result[*dim] = Value::Null;
            }
        }
        let key = dims
            .iter()
            .map(|d| result[*d].to_string())
            .collect::<Vec<_>>()
            .join("\u{1}");
        match index.get(&key) {
            Some(&i) => {
                let into = out[i].as_object_mut().unwrap();
                for (k, v) in result.as_object().unwrap() {
                    if dims.contains(&k.as_str()) {
                        continue;
                    }
                    match into.get_mut(k) {
                        Some(existing) => add(existing, v),
                        None => {
                            into.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            None => {
                index.insert(key, out.len());
                out.push(result);
            }
        }
    }
    out
}

fn add(into: &mut Value, other: &Value) {
    match (into, other) {
        (Value::Number(a), Value::Number(b)) => {
            *a = match (a.as_u64(), b.as_u64()) {
                (Some(x), Some(y)) => (x + y).into(),
                _ => number(&decimal_sum(&a.to_string(), &b.to_string()))
                    .as_number()
                    .unwrap()
                    .clone(),
            }
        }
        (Value::String(a), Value::String(b))
            if usd_to_pico(a).is_some() && usd_to_pico(b).is_some() =>
        {
            *a = decimal_sum(a, b);
        }
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(existing) => add(existing, v),
                    None => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        _ => {}
    }
}

/// The exact sum of two decimals (dollars or cents alike: twelve places are kept).
fn decimal_sum(a: &str, b: &str) -> String {
    let n = usd_to_pico(a).unwrap() + usd_to_pico(b).unwrap();
    let sign = if n < 0 { "-" } else { "" };
    let n = n.unsigned_abs();
    let (whole, frac) = (n / 1_000_000_000_000, n % 1_000_000_000_000);
    let frac = format!("{frac:012}");
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{frac}")
    }
}

fn number(text: &str) -> Value {
    let value: Value = serde_json::from_str(text).unwrap();
    assert!(value.is_number(), "{text} is not a number");
    value
}

fn parse_day(day: &str) -> NaiveDate {
    NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap()
}

fn openai_usage_defaults() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "object".into(),
        json!("organization.usage.completions.result"),
    );
    for counter in ["input_tokens", "output_tokens", "num_model_requests"] {
        m.insert(counter.into(), json!(0));
    }
    for dim in OPENAI_USAGE_DIMS {
        m.insert(dim.into(), Value::Null);
    }
    m
}

fn openai_cost_defaults() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("object".into(), json!("organization.costs.result"));
    for key in OPENAI_COSTS_DIMS
        .iter()
        .chain(&["quantity", "quantity_unit"])
    {
        m.insert((*key).into(), Value::Null);
    }
    m
}

fn anthropic_usage_defaults() -> Map<String, Value> {
    let mut m = Map::new();
    for counter in [
        "uncached_input_tokens",
        "cache_read_input_tokens",
        "output_tokens",
    ] {
        m.insert(counter.into(), json!(0));
    }
    m.insert(
        "cache_creation".into(),
        json!({"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0}),
    );
    m.insert("server_tool_use".into(), json!({"web_search_requests": 0}));
    for dim in ANTHROPIC_USAGE_DIMS {
        m.insert(dim.into(), Value::Null);
    }
    m
}

fn anthropic_cost_defaults() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("currency".into(), json!("USD"));
    for key in ANTHROPIC_DESCRIPTION_DIMS.iter().chain(&["workspace_id"]) {
        m.insert((*key).into(), Value::Null);
    }
    m
}

/// Each result with the keys the API always writes, where the test left them out.
fn complete(results: Value, defaults: Map<String, Value>) -> Vec<Value> {
    let Value::Array(results) = results else {
        panic!("a day's results are a JSON array");
    };
    results
        .into_iter()
        .map(|r| {
            let Value::Object(mut r) = r else {
                panic!("a result is a JSON object");
            };
            for (k, v) in &defaults {
                r.entry(k.clone()).or_insert_with(|| v.clone());
            }
            Value::Object(r)
        })
        .collect()
}

/// The fixtures by day, every dimension filled in: OpenAI usage has its project from README §3
/// (the fixture, grouped by model only, has it null).
fn fixture_data() -> Data {
    let mut data = Data::default();
    let buckets = |text: &str, start_key: &str| -> Vec<(NaiveDate, Vec<Value>)> {
        let page: Value = serde_json::from_str(text).unwrap();
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                let day = match &b[start_key] {
                    Value::Number(n) => DateTime::from_timestamp(n.as_i64().unwrap(), 0)
                        .unwrap()
                        .date_naive(),
                    Value::String(s) => DateTime::parse_from_rfc3339(s).unwrap().date_naive(),
                    other => panic!("bucket start {other}"),
                };
                (day, b["results"].as_array().unwrap().clone())
            })
            .collect()
    };
    for (day, mut results) in buckets(FIXTURE_OPENAI_USAGE, "start_time") {
        for r in &mut results {
            r["project_id"] = json!(if r["model"] == "gpt-4o-2024-08-06" {
                OPENAI_PROJECT_GPT4O
            } else {
                OPENAI_PROJECT_MINI
            });
        }
        data.openai_usage.insert(day, results);
    }
    for page in FIXTURE_OPENAI_COSTS {
        data.openai_costs.extend(buckets(page, "start_time"));
    }
    data.anthropic_usage
        .extend(buckets(FIXTURE_ANTHROPIC_USAGE, "starting_at"));
    data.anthropic_costs
        .extend(buckets(FIXTURE_ANTHROPIC_COSTS, "starting_at"));
    data
}

/// Checks the credentials as each API does; `Err` is its answer.
fn authenticate(
    endpoint: Endpoint,
    headers: &HeaderMap,
    request_id: &str,
) -> Result<(), Box<Response>> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let bearer = header("authorization").and_then(|v| v.strip_prefix("Bearer "));
    if endpoint.openai() {
        return match bearer {
            Some(OPENAI_ADMIN_KEY) => Ok(()),
            None => Err(Box::new(openai_error(
                StatusCode::UNAUTHORIZED,
                "You didn't provide an API key. You need to provide your API key in an \
                 Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), \
                 or as the password field (with blank username) if you're accessing the API \
                 from your browser and are prompted for a username and password. You can \
                 obtain an API key from https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                None,
                None,
            ))),
            Some(OPENAI_PROJECT_KEY) => Err(Box::new(openai_error(
                StatusCode::UNAUTHORIZED,
                "You have insufficient permissions for this operation. Missing scopes: \
                 api.usage.read. Check that you have the correct role in your organization, \
                 and if you're using a restricted API key, that it has the necessary scopes.",
                "invalid_request_error",
                None,
                None,
            ))),
            Some(other) => Err(Box::new(openai_error(
                StatusCode::UNAUTHORIZED,
                &format!(
                    "Incorrect API key provided: {}. You can find your API key at \
                     https://platform.openai.com/account/api-keys.",
                    redact(other)
                ),
                "invalid_request_error",
                None,
                Some("invalid_api_key"),
            ))),
        };
    }
    let key = header("x-api-key").or(bearer);
    let refused = |status: StatusCode, kind: &str, message: &str| {
        Err(Box::new(anthropic_error(status, kind, message, request_id)))
    };
    match key {
        None => refused(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "x-api-key header is required",
        ),
        Some(ANTHROPIC_ADMIN_KEY) if header("anthropic-version").is_none() => refused(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "anthropic-version: header is required",
        ),
        Some(ANTHROPIC_ADMIN_KEY) => Ok(()),
        Some(ANTHROPIC_API_KEY) => refused(
            StatusCode::FORBIDDEN,
            "permission_error",
            "Permission denied",
        ),
        Some(_) => refused(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key",
        ),
    }
}

/// As OpenAI quotes a wrong key: its start and last four characters.
fn redact(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 12 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..8].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 12))
}

fn openai_error(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    (
        status,
        axum::Json(
            json!({"error": {"message": message, "type": kind, "param": param, "code": code}}),
        ),
    )
        .into_response()
}

fn anthropic_error(status: StatusCode, kind: &str, message: &str, request_id: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": request_id,
        })),
    )
        .into_response()
}

/// A scripted failure in the provider's shape.
fn failure(endpoint: Endpoint, status: u16, request_id: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap();
    if endpoint.openai() {
        let (message, kind, error_code) = match status {
            429 => (
                "Rate limit reached for requests. Please try again later.",
                "requests",
                Some("rate_limit_exceeded"),
            ),
            503 => (
                "The engine is currently overloaded, please try again later.",
                "server_error",
                None,
            ),
            _ => (
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
            ),
        };
        openai_error(code, message, kind, None, error_code)
    } else {
        let (kind, message) = match status {
            429 => ("rate_limit_error", "Rate limited"),
            504 => ("timeout_error", "Request timeout"),
            529 => ("overloaded_error", "Overloaded"),
            _ => ("api_error", "Internal server error"),
        };
        anthropic_error(code, kind, message, request_id)
    }
}
