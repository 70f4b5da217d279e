//! OTLP/HTTP trace ingest (`POST /otlp/v1/traces`): GenAI, OpenInference and AI SDK spans
//! become events, in protobuf and JSON, gzip or not; a re-exported span is a duplicate; bad
//! input gets the OTLP error answer and stores nothing.

use std::io::Write;

use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::event::{Event, Status};
use llmtrack_shared::domain::plan::Plan;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status as SpanStatus,
};
use prost::Message;

use crate::support::*;

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn s(key: &str, v: &str) -> KeyValue {
    kv(key, Value::StringValue(v.into()))
}

fn i(key: &str, v: i64) -> KeyValue {
    kv(key, Value::IntValue(v))
}

/// A span of `ms` milliseconds starting at `start_ms`, with ids made from `n`.
fn span(n: u8, name: &str, start_ms: i64, ms: i64, attributes: Vec<KeyValue>) -> Span {
    let start = start_ms as u64 * 1_000_000;
    Span {
        trace_id: vec![7; 15].into_iter().chain([n]).collect(),
        span_id: vec![3; 7].into_iter().chain([n]).collect(),
        name: name.into(),
        start_time_unix_nano: start,
        end_time_unix_nano: start + ms as u64 * 1_000_000,
        attributes,
        ..Span::default()
    }
}

fn export(resource: Vec<KeyValue>, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

/// The spans of one export: a GenAI chat call with cache reads and reasoning, an Anthropic
/// call in the older attribute names, an OpenInference LLM span, the AI SDK's outer
/// `generateText` (left out) and its `doGenerate` step, an agent span (left out), an HTTP
/// span (ignored) and a failed call without usage.
fn mixed(now: i64) -> ExportTraceServiceRequest {
    let t = now - 3_600_000;
    export(
        vec![
            s("service.name", "support-bot"),
            s("enduser.id", "u-resource"),
        ],
        vec![
            span(
                1,
                "chat gpt-4o",
                t,
                1200,
                vec![
                    s("gen_ai.operation.name", "chat"),
                    s("gen_ai.provider.name", "openai"),
                    s("gen_ai.request.model", "gpt-4o"),
                    s("gen_ai.response.model", "gpt-4o-2024-08-06"),
                    s("gen_ai.response.id", "chatcmpl-1"),
                    i("gen_ai.usage.input_tokens", 1000),
                    i("gen_ai.usage.output_tokens", 200),
                    i("gen_ai.usage.cache_read.input_tokens", 400),
                    s("llmtrack.feature", "summarize"),
                    s("user.id", "u-42"),
                ],
            ),
            span(
                2,
                "chat claude",
                t + 1,
                800,
                vec![
                    s("gen_ai.system", "anthropic"),
                    s("gen_ai.request.model", "claude-sonnet-4-5"),
                    i("gen_ai.usage.prompt_tokens", 50),
                    i("gen_ai.usage.completion_tokens", 30),
                    // Beside the input, as Anthropic reports it: counted inside.
                    i("gen_ai.usage.cache_read_input_tokens", 600),
                    i("gen_ai.usage.cache_creation_input_tokens", 100),
                ],
            ),
            span(
                3,
                "ChatCompletion",
                t + 2,
                500,
                vec![
                    s("openinference.span.kind", "LLM"),
                    s("llm.provider", "openai"),
                    s("llm.model_name", "o3"),
                    i("llm.token_count.prompt", 300),
                    i("llm.token_count.completion", 900),
                    i("llm.token_count.completion_details.reasoning", 700),
                ],
            ),
            span(
                4,
                "ai.generateText",
                t + 3,
                900,
                vec![
                    s("ai.operationId", "ai.generateText"),
                    s("ai.model.provider", "openai.chat"),
                    s("ai.model.id", "gpt-4o-mini"),
                    i("ai.usage.promptTokens", 20),
                    i("ai.usage.completionTokens", 10),
                ],
            ),
            span(
                5,
                "ai.generateText.doGenerate",
                t + 4,
                850,
                vec![
                    s("ai.operationId", "ai.generateText.doGenerate"),
                    s("ai.model.provider", "openai.chat"),
                    s("ai.model.id", "gpt-4o-mini"),
                    i("ai.usage.promptTokens", 20),
                    i("ai.usage.completionTokens", 10),
                ],
            ),
            span(
                6,
                "invoke_agent helper",
                t + 5,
                3000,
                vec![
                    s("gen_ai.operation.name", "invoke_agent"),
                    s("gen_ai.provider.name", "openai"),
                    s("gen_ai.request.model", "gpt-4o"),
                    i("gen_ai.usage.input_tokens", 1000),
                    i("gen_ai.usage.output_tokens", 200),
                ],
            ),
            span(
                7,
                "GET /health",
                t + 6,
                5,
                vec![s("http.request.method", "GET")],
            ),
            Span {
                status: Some(SpanStatus {
                    code: 2,
                    message: "rate limited".into(),
                }),
                ..span(
                    8,
                    "chat gpt-4o",
                    t + 7,
                    90,
                    vec![
                        s("gen_ai.operation.name", "chat"),
                        s("gen_ai.provider.name", "openai"),
                        s("gen_ai.request.model", "gpt-4o"),
                        s("error.type", "RateLimitError"),
                    ],
                )
            },
        ],
    )
}

async fn post(
    app: &TestApp,
    key: &str,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = app
        .http
        .post(app.url("/otlp/v1/traces"))
        .bearer_auth(key)
        .header("content-type", content_type)
        .body(body);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    req.send().await.expect("request")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(bytes).unwrap();
    z.finish().unwrap()
}

async fn app_and_key() -> (TestApp, String, llmtrack_shared::domain::ids::WorkspaceId) {
    let app = spawn_app().await;
    let ws = app.workspace(Plan::Pro).await;
    let key = app.key(&ws, Scope::Ingest, "otel").await;
    (app, key, ws)
}

fn by_id(events: &[Event], n: u8) -> &Event {
    let id = format!(
        "otel:{}{:02x}:{}{:02x}",
        "07".repeat(15),
        n,
        "03".repeat(7),
        n
    );
    events.iter().find(|e| e.id == id).unwrap_or_else(|| {
        panic!(
            "no event {id} in {:?}",
            events.iter().map(|e| &e.id).collect::<Vec<_>>()
        )
    })
}

#[tokio::test]
async fn llm_spans_become_events_and_the_rest_are_left_out() {
    let (app, key, ws) = app_and_key().await;
    let now = now_ms();
    let resp = post(
        &app,
        &key,
        "application/x-protobuf",
        None,
        mixed(now).encode_to_vec(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-protobuf");
    let answer = ExportTraceServiceResponse::decode(resp.bytes().await.unwrap()).unwrap();
    assert_eq!(answer.partial_success, None, "nothing rejected");

    let events = all_events(app.store.as_ref(), &ws).await;
    assert_eq!(
        events.len(),
        5,
        "the chat, anthropic, OpenInference, doGenerate and failed spans"
    );
    let t = now - 3_600_000;

    let chat = by_id(&events, 1);
    assert_eq!(
        (chat.provider.as_str(), chat.model.as_str()),
        ("openai", "gpt-4o-2024-08-06")
    );
    assert_eq!(chat.canonical_model(), "gpt-4o");
    assert_eq!(
        (
            chat.tokens.input,
            chat.tokens.output,
            chat.tokens.cached_input
        ),
        (1000, 200, 400)
    );
    assert_eq!(chat.ts_ms, t);
    assert_eq!(chat.latency_ms, Some(1200.0));
    assert_eq!(chat.feature.as_deref(), Some("summarize"));
    assert_eq!(
        chat.user_id.as_deref(),
        Some("u-42"),
        "the span's user before the resource's"
    );
    assert_eq!(chat.source, "otel");
    // gpt-4o: $2.50 a million input, $1.25 cached, $10 output.
    let expected = 600.0 * 2.5e-6 + 400.0 * 1.25e-6 + 200.0 * 10e-6;
    assert_eq!(chat.cost_pico, Some((expected * 1e12f64).round() as i64));
    let meta: std::collections::BTreeMap<_, _> = chat.metadata.iter().cloned().collect();
    assert_eq!(
        meta.keys().collect::<Vec<_>>(),
        ["gen_ai.response.id", "service.name"]
    );

    let claude = by_id(&events, 2);
    assert_eq!(
        (
            claude.tokens.input,
            claude.tokens.cached_input,
            claude.tokens.cache_write,
            claude.tokens.output
        ),
        (750, 600, 100, 30),
        "cache counts reported beside the input are counted inside it"
    );
    assert_eq!(claude.user_id.as_deref(), Some("u-resource"));
    assert_eq!(claude.feature, None);

    let o3 = by_id(&events, 3);
    assert_eq!(
        (o3.model.as_str(), o3.tokens.reasoning, o3.tokens.output),
        ("o3", 700, 900)
    );

    let step = by_id(&events, 5);
    assert_eq!(
        (step.provider.as_str(), step.model.as_str()),
        ("openai", "gpt-4o-mini")
    );
    assert_eq!((step.tokens.input, step.tokens.output), (20, 10));

    let failed = by_id(&events, 8);
    assert_eq!(failed.status, Status::Error);
    assert_eq!(failed.error_type.as_deref(), Some("RateLimitError"));
    assert_eq!((failed.tokens.input, failed.tokens.output), (0, 0));
    assert_rollups_match_events(app.store.as_ref(), &ws).await;

    // The totals the API answers are the events'.
    let (status, summary) = app
        .summary(&key_for_reading(&app, &ws).await, "?from=last_24h")
        .await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["metrics"]["requests"], 5);
    assert_eq!(summary["metrics"]["errors"], 1);
}

async fn key_for_reading(app: &TestApp, ws: &llmtrack_shared::domain::ids::WorkspaceId) -> String {
    app.key(ws, Scope::Read, "reader").await
}

#[tokio::test]
async fn json_and_gzip_say_the_same_and_a_reexport_is_a_duplicate() {
    let (app, key, ws) = app_and_key().await;
    let now = now_ms();
    let request = mixed(now);
    let json = serde_json::to_vec(&request).unwrap();
    // OTLP/JSON: hex ids, integers as strings, camelCase names.
    let text = String::from_utf8(json.clone()).unwrap();
    assert!(text.contains("\"traceId\":\"07070707"), "{}", &text[..200]);

    let resp = post(&app, &key, "application/json", Some("gzip"), gzip(&json)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let first = all_events(app.store.as_ref(), &ws).await;
    assert_eq!(first.len(), 5);

    // The same spans again, now as gzip protobuf: every one a duplicate.
    let resp = post(
        &app,
        &key,
        "application/x-protobuf",
        Some("gzip"),
        gzip(&request.encode_to_vec()),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let mut again = all_events(app.store.as_ref(), &ws).await;
    let mut first = first;
    first.sort_by(|a, b| a.id.cmp(&b.id));
    again.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(first, again);
    assert_rollups_match_events(app.store.as_ref(), &ws).await;
}

#[tokio::test]
async fn spans_that_cannot_be_counted_are_a_partial_success_naming_them() {
    let (app, key, ws) = app_and_key().await;
    let now = now_ms();
    let t = now - 60_000;
    let request = export(
        vec![],
        vec![
            span(
                1,
                "chat ok",
                t,
                10,
                vec![
                    s("gen_ai.provider.name", "openai"),
                    s("gen_ai.request.model", "gpt-4o"),
                    i("gen_ai.usage.input_tokens", 10),
                    i("gen_ai.usage.output_tokens", 5),
                ],
            ),
            span(
                2,
                "chat no usage",
                t,
                10,
                vec![
                    s("gen_ai.operation.name", "chat"),
                    s("gen_ai.provider.name", "openai"),
                    s("gen_ai.request.model", "gpt-4o"),
                ],
            ),
            span(
                3,
                "chat no provider",
                t,
                10,
                vec![
                    s("gen_ai.request.model", "gpt-4o"),
                    i("gen_ai.usage.input_tokens", 10),
                ],
            ),
            span(
                4,
                "chat negative",
                t,
                10,
                vec![
                    s("gen_ai.provider.name", "openai"),
                    s("gen_ai.request.model", "gpt-4o"),
                    i("gen_ai.usage.input_tokens", -10),
                ],
            ),
            span(
                5,
                "chat from the future",
                now + 3_600_000,
                10,
                vec![
                    s("gen_ai.provider.name", "openai"),
                    s("gen_ai.request.model", "gpt-4o"),
                    i("gen_ai.usage.input_tokens", 10),
                ],
            ),
        ],
    );
    let resp = post(
        &app,
        &key,
        "application/json",
        None,
        serde_json::to_vec(&request).unwrap(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    let partial = &answer["partialSuccess"];
    assert_eq!(partial["rejectedSpans"].as_i64(), Some(4), "{answer}");
    let message = partial["errorMessage"].as_str().unwrap();
    for why in [
        "4 LLM spans rejected",
        "`chat no usage`: gen_ai.usage.input_tokens: the span describes a model call but has no usage",
        "`chat no provider`: gen_ai.provider.name",
        "`chat negative`: gen_ai.usage.input_tokens: a token count must be a whole number",
        "`chat from the future`: timestamp",
    ] {
        assert!(message.contains(why), "`{why}` not in: {message}");
    }
    assert_eq!(all_events(app.store.as_ref(), &ws).await.len(), 1);
}

/// Each bad request: the status, a google.rpc.Status body in the request's encoding, and
/// nothing stored.
#[tokio::test]
async fn bad_requests_get_the_otlp_error_answer_and_store_nothing() {
    let (app, key, ws) = app_and_key().await;
    let now = now_ms();
    let good = mixed(now).encode_to_vec();
    let huge = vec![b' '; 10 * 1024 * 1024];
    let bomb = gzip(&vec![0u8; 6 * 1024 * 1024]);
    // What, Content-Type, Content-Encoding, body, status, what the message says.
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "truncated protobuf",
            "application/x-protobuf",
            None,
            good[..good.len() - 7].to_vec(),
            400,
            "not a protobuf ExportTraceServiceRequest",
        ),
        (
            "not JSON",
            "application/json",
            None,
            b"{\"resourceSpans\": [".to_vec(),
            400,
            "not an OTLP/JSON ExportTraceServiceRequest",
        ),
        (
            "wrong content type",
            "text/plain",
            None,
            good.clone(),
            415,
            "application/x-protobuf",
        ),
        (
            "10 MB body",
            "application/x-protobuf",
            None,
            huge,
            413,
            "larger than",
        ),
        (
            "gzip bomb",
            "application/x-protobuf",
            Some("gzip"),
            bomb,
            413,
            "once decompressed",
        ),
        (
            "not gzip",
            "application/x-protobuf",
            Some("gzip"),
            good.clone(),
            400,
            "not valid gzip",
        ),
        (
            "unknown encoding",
            "application/x-protobuf",
            Some("br"),
            good.clone(),
            415,
            "Content-Encoding `br`",
        ),
    ];
    for (what, content_type, encoding, body, status, says) in cases {
        let resp = post(&app, &key, content_type, encoding, body).await;
        assert_eq!(resp.status(), status, "{what}");
        let json = content_type == "application/json";
        assert_eq!(
            resp.headers()["content-type"],
            if json {
                "application/json"
            } else {
                "application/x-protobuf"
            },
            "{what}"
        );
        let bytes = resp.bytes().await.unwrap();
        let message = if json {
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(v["code"], 3, "{what}");
            v["message"].as_str().unwrap().to_owned()
        } else {
            rpc_status(&bytes)
        };
        assert!(
            message.contains(says),
            "{what}: `{says}` not in `{message}`"
        );
    }

    // Without a key, or with a key of another scope.
    let resp = post(
        &app,
        "lt_live_nope",
        "application/x-protobuf",
        None,
        good.clone(),
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert!(rpc_status(&resp.bytes().await.unwrap()).contains("key"));
    let read = app.key(&ws, Scope::Read, "reader").await;
    let resp = post(&app, &read, "application/x-protobuf", None, good).await;
    assert_eq!(resp.status(), 403);

    assert!(all_events(app.store.as_ref(), &ws).await.is_empty());
}

/// google.rpc.Status: `code` (1) and `message` (2), read with a message of our own.
fn rpc_status(bytes: &[u8]) -> String {
    #[derive(Clone, PartialEq, Message)]
    struct RpcStatus {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }
    RpcStatus::decode(bytes)
        .expect("a google.rpc.Status")
        .message
}

/// The workspace chooses which attributes name feature and user; a bad choice is refused with
/// what is wrong and where.
#[tokio::test]
async fn the_workspace_chooses_which_attributes_name_feature_and_user() {
    let app = spawn_app().await;
    let ada = app.sign_in("ada@example.com").await;
    let (_, ws) = ada
        .post("/v1/workspaces", serde_json::json!({"name": "Acme"}))
        .await;
    assert_eq!(
        ws["span_labels"],
        serde_json::json!({"feature": ["llmtrack.feature"], "user": ["llmtrack.user_id", "enduser.id", "user.id"]})
    );
    let id = ws["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/workspaces/{id}");
    let (status, resp) = ada
        .patch(
            &path,
            serde_json::json!({"span_labels": {"feature": ["app.feature"], "user": ["bad key"]}}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(resp["error"]["code"], "invalid_span_labels");
    assert!(
        resp["error"]["message"]
            .as_str()
            .unwrap()
            .contains("span_labels.user[0]"),
        "{resp}"
    );
    let labels =
        serde_json::json!({"feature": ["app.feature", "service.name"], "user": ["customer.id"]});
    let (status, resp) = ada
        .patch(&path, serde_json::json!({"span_labels": labels}))
        .await;
    assert_eq!((status, &resp["span_labels"]), (200, &labels), "{resp}");

    let ws = llmtrack_shared::domain::ids::WorkspaceId::parse(&id).unwrap();
    let key = app.key(&ws, Scope::Ingest, "otel").await;
    let t = now_ms() - 60_000;
    let call = |n: u8, extra: Vec<KeyValue>| {
        let mut attributes = vec![
            s("gen_ai.provider.name", "openai"),
            s("gen_ai.request.model", "gpt-4o"),
            i("gen_ai.usage.input_tokens", 10),
            i("gen_ai.usage.output_tokens", 5),
            // The defaults no longer apply.
            s("user.id", "not-this-one"),
        ];
        attributes.extend(extra);
        span(n, "chat", t, 10, attributes)
    };
    let request = export(
        vec![s("service.name", "billing-api"), s("customer.id", "c-9")],
        vec![
            call(1, vec![s("app.feature", "invoice-summary")]),
            call(2, vec![]),
        ],
    );
    let resp = post(
        &app,
        &key,
        "application/x-protobuf",
        None,
        request.encode_to_vec(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let events = all_events(app.store.as_ref(), &ws).await;
    let labels = |n| {
        let e = by_id(&events, n);
        (e.feature.clone(), e.user_id.clone())
    };
    assert_eq!(
        labels(1),
        (Some("invoice-summary".into()), Some("c-9".into()))
    );
    assert_eq!(
        labels(2),
        (Some("billing-api".into()), Some("c-9".into())),
        "the second attribute, from the resource"
    );
}
