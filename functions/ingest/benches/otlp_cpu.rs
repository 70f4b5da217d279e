//! OTLP ingest CPU per LLM span: decode a protobuf export, find the LLM spans, map, validate and
//! price each, and do the batch's rollup work, against the same calls sent as JSON events (the
//! 2 µs per event budget). 100 LLM calls, each inside an HTTP server span as an instrumented app
//! exports them (200 spans). Run with `make bench`; with `OTLP_CPU_ITERATIONS=N` it does N
//! exports of fixed work and exits, for counting instructions (docs/PERFORMANCE.md: count N = 1
//! and N = 201, so the price table's one-time parse falls out), `OTLP_CPU_PATH=json` the JSON
//! events instead.

use criterion::{Criterion, Throughput, criterion_group};
use llmtrack_ingest::otlp::{Encoding, check_export, decode};
use llmtrack_shared::domain::event::{self, Context, Event};
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::pricing::PriceTable;
use llmtrack_shared::domain::pricing::custom::Rules;
use llmtrack_shared::domain::rollup::{Groups, Select};
use llmtrack_shared::domain::spans::SpanLabels;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::json;

const MODELS: [&str; 5] = [
    "gpt-4o",
    "gpt-4o-mini",
    "claude-sonnet-4-20250514",
    "gemini-2.5-flash",
    "in-house-7b",
];
const FEATURES: [&str; 3] = ["chat", "search", "summarize"];

/// An OpenAI completion id as they look (`chatcmpl-` and 29 letters and digits).
fn response_id(i: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let tail: String = (0..29)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % ALPHABET.len() as u64) as usize] as char
        })
        .collect();
    format!("chatcmpl-{tail}")
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

/// The export: 100 chat spans as the OpenAI instrumentations write them, each with its parent.
fn export(now: i64) -> bytes::Bytes {
    let mut spans = Vec::new();
    for i in 0..100u64 {
        let start = (now as u64 - i * 1000) * 1_000_000;
        let trace: Vec<u8> = (0..16).map(|b| (b as u64 * 7 + i) as u8).collect();
        spans.push(Span {
            trace_id: trace.clone(),
            span_id: (0..8).map(|b| (b as u64 + i) as u8).collect(),
            name: "POST /api/answer".into(),
            kind: 2,
            start_time_unix_nano: start - 5_000_000,
            end_time_unix_nano: start + 900_000_000,
            attributes: vec![
                kv("http.request.method", Value::StringValue("POST".into())),
                kv("http.route", Value::StringValue("/api/answer".into())),
                kv("http.response.status_code", Value::IntValue(200)),
            ],
            ..Span::default()
        });
        let model = MODELS[i as usize % MODELS.len()];
        spans.push(Span {
            trace_id: trace,
            span_id: (0..8).map(|b| (b as u64 * 3 + i + 100) as u8).collect(),
            name: format!("chat {model}"),
            kind: 3,
            start_time_unix_nano: start,
            end_time_unix_nano: start + (850 + i) * 1_000_000,
            attributes: vec![
                kv("gen_ai.operation.name", Value::StringValue("chat".into())),
                kv("gen_ai.provider.name", Value::StringValue("openai".into())),
                kv("gen_ai.request.model", Value::StringValue(model.into())),
                kv("gen_ai.response.model", Value::StringValue(model.into())),
                kv(
                    "gen_ai.response.id",
                    Value::StringValue(format!("chatcmpl-{i:020}")),
                ),
                kv(
                    "gen_ai.usage.input_tokens",
                    Value::IntValue(1200 + i as i64),
                ),
                kv("gen_ai.usage.output_tokens", Value::IntValue(300)),
                kv("gen_ai.usage.cache_read.input_tokens", Value::IntValue(400)),
                kv("gen_ai.usage.reasoning.output_tokens", Value::IntValue(50)),
                kv(
                    "gen_ai.response.finish_reasons",
                    Value::StringValue("stop".into()),
                ),
                kv(
                    "server.address",
                    Value::StringValue("api.openai.com".into()),
                ),
                kv(
                    "llmtrack.feature",
                    Value::StringValue(FEATURES[i as usize % 3].into()),
                ),
                kv("user.id", Value::StringValue(format!("user-{}", i % 7))),
            ],
            ..Span::default()
        });
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", Value::StringValue("answer-api".into())),
                    kv(
                        "telemetry.sdk.language",
                        Value::StringValue("python".into()),
                    ),
                ],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
    .encode_to_vec()
    .into()
}

/// The same calls as a JSON batch for `POST /v1/events`.
fn json_body(now: i64) -> Vec<u8> {
    let events: Vec<_> = (0..100i64)
        .map(|i| {
            json!({
                "id": format!("otel:{i:032x}:{i:016x}"),
                "timestamp": now - i * 1000,
                "provider": "openai",
                "model": MODELS[i as usize % MODELS.len()],
                "feature": FEATURES[i as usize % 3],
                "user_id": format!("user-{}", i % 7),
                "input_tokens": 1200 + i,
                "cached_input_tokens": 400,
                "output_tokens": 300,
                "reasoning_tokens": 50,
                "latency_ms": 850.0 + i as f64,
                "metadata": {"gen_ai.response.id": response_id(i as u64), "service.name": "answer-api"}
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "events": events })).unwrap()
}

fn rollup_work(events: &[Event]) -> (usize, Vec<u8>) {
    let groups = Groups::of(events);
    (
        groups.views(Select::Core).len(),
        postcard::to_stdvec(&groups).unwrap(),
    )
}

fn otlp_path(body: &bytes::Bytes, labels: &SpanLabels, ctx: &Context) {
    let Ok(request) = decode(body.clone(), Encoding::Protobuf) else {
        panic!("the export decodes")
    };
    let events: Vec<Event> = check_export(&request, labels, ctx)
        .into_iter()
        .map(|(_, checked)| checked.unwrap().0)
        .collect();
    assert_eq!(events.len(), 100);
    std::hint::black_box(rollup_work(&events));
}

fn json_path(body: &[u8], ctx: &Context) {
    let events: Vec<Event> = event::split_body(body)
        .unwrap()
        .iter()
        .map(|r| event::validate(r, ctx).unwrap().0)
        .collect();
    std::hint::black_box(rollup_work(&events));
}

fn context(now: i64) -> Context<'static> {
    Context {
        now_ms: now,
        source: "production",
        plan: Plan::Pro,
        prices: PriceTable::bundled(),
        custom: Rules::none(),
    }
}

fn otlp_cpu(c: &mut Criterion) {
    let now = chrono::Utc::now().timestamp_millis();
    let (otlp, json) = (export(now), json_body(now));
    let (ctx, labels) = (context(now), SpanLabels::default());
    let mut group = c.benchmark_group("otlp");
    group.throughput(Throughput::Elements(100));
    group.bench_function("OTLP protobuf: 100 LLM spans (200 spans)", |b| {
        b.iter(|| otlp_path(&otlp, &labels, &ctx))
    });
    group.bench_function("the same calls as JSON events", |b| {
        b.iter(|| json_path(&json, &ctx))
    });
    group.finish();
}

criterion_group!(benches, otlp_cpu);

fn main() {
    match std::env::var("OTLP_CPU_ITERATIONS") {
        Ok(n) => {
            let now = 1_764_547_200_000; // a fixed time: the same prices every run
            let (otlp, json) = (export(now), json_body(now));
            let (ctx, labels) = (context(now), SpanLabels::default());
            let json_too = std::env::var("OTLP_CPU_PATH").as_deref() == Ok("json");
            for _ in 0..n.parse::<usize>().expect("OTLP_CPU_ITERATIONS is a number") {
                if json_too {
                    json_path(&json, &ctx);
                } else {
                    otlp_path(&otlp, &labels, &ctx);
                }
            }
        }
        Err(_) => {
            benches();
            Criterion::default().configure_from_args().final_summary();
        }
    }
}
