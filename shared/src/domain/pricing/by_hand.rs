//! Realistic calls priced through ingest validation with the bundled table, against costs worked
//! out by hand from each provider's published prices (the source is named with each group).
//! A disagreement means the table, a name's resolution or the cost formula is wrong.

use crate::domain::event::{Context, CostSource, validate};
use crate::domain::plan::Plan;
use crate::domain::pricing::PriceTable;
use crate::domain::pricing::custom::WorkspacePrices;

/// One call: provider, model, extra fields, timestamp (UTC day), expected cost in micro-USD.
struct Case {
    provider: &'static str,
    model: &'static str,
    fields: &'static str,
    day: &'static str,
    micro_usd: i64,
}

const fn case(
    provider: &'static str,
    model: &'static str,
    fields: &'static str,
    day: &'static str,
    micro_usd: i64,
) -> Case {
    Case {
        provider,
        model,
        fields,
        day,
        micro_usd,
    }
}

const NOW: &str = "2026-11-15";

// Hand arithmetic: tokens × USD per million tokens = micro-USD.
const CASES: &[Case] = &[
    // OpenAI, https://platform.openai.com/docs/pricing (standard, batch, flex, priority columns).
    // gpt-4o $2.50 in, $1.25 cached, $10 out; batch $1.25 / $5; priority $4.25 / $17.
    case(
        "openai",
        "gpt-4o",
        r#""input_tokens":1000,"output_tokens":200"#,
        NOW,
        1000 * 5 / 2 + 200 * 10,
    ),
    case(
        "openai",
        "gpt-4o-2024-08-06",
        r#""input_tokens":10000,"cached_input_tokens":6000,"output_tokens":500"#,
        NOW,
        4000 * 5 / 2 + 6000 * 5 / 4 + 500 * 10,
    ),
    case(
        "openai",
        "gpt-4o",
        r#""input_tokens":1000,"output_tokens":200,"service_tier":"batch""#,
        NOW,
        1000 * 5 / 4 + 200 * 5,
    ),
    case(
        "openai",
        "gpt-4o",
        r#""input_tokens":1000,"output_tokens":200,"service_tier":"priority""#,
        NOW,
        1000 * 17 / 4 + 200 * 17,
    ),
    // gpt-4o-mini $0.15 in, $0.075 cached, $0.60 out; batch $0.075 / $0.30.
    case(
        "openai",
        "gpt-4o-mini",
        r#""input_tokens":2000,"cached_input_tokens":1000,"output_tokens":300"#,
        NOW,
        150 + 75 + 180,
    ),
    case(
        "openai",
        "gpt-4o-mini",
        r#""input_tokens":2000,"output_tokens":300,"service_tier":"batch""#,
        NOW,
        150 + 90,
    ),
    // gpt-4.1 $2 in, $0.50 cached, $8 out; gpt-4.1-mini $0.40, $0.10, $1.60.
    case(
        "openai",
        "gpt-4.1",
        r#""input_tokens":5000,"cached_input_tokens":4000,"output_tokens":1000"#,
        NOW,
        2000 + 2000 + 8000,
    ),
    case(
        "openai",
        "gpt-4.1-mini",
        r#""input_tokens":3000,"output_tokens":500"#,
        NOW,
        1200 + 800,
    ),
    // o3: $2 in / $8 out since OpenAI's price cut of 2025-06-10, $10 / $40 before; flex $1 / $4.
    // Reasoning tokens are output tokens.
    case(
        "openai",
        "o3",
        r#""input_tokens":2000,"output_tokens":3000,"reasoning_tokens":2500"#,
        "2025-07-01",
        4000 + 24000,
    ),
    case(
        "openai",
        "o3",
        r#""input_tokens":2000,"output_tokens":3000,"reasoning_tokens":2500"#,
        "2025-05-01",
        20000 + 120000,
    ),
    case(
        "openai",
        "o3-2025-04-16",
        r#""input_tokens":2000,"output_tokens":3000,"service_tier":"flex""#,
        NOW,
        2000 + 12000,
    ),
    // o4-mini $1.10 in, $4.40 out.
    case(
        "openai",
        "o4-mini",
        r#""input_tokens":1500,"output_tokens":1000,"reasoning_tokens":800"#,
        NOW,
        1650 + 4400,
    ),
    // gpt-5 $1.25 in, $0.125 cached, $10 out; flex and batch half; priority $2.50 / $0.25 / $20.
    case(
        "openai",
        "gpt-5",
        r#""input_tokens":4000,"cached_input_tokens":2000,"output_tokens":2000"#,
        NOW,
        2500 + 250 + 20000,
    ),
    case(
        "openai",
        "gpt-5",
        r#""input_tokens":4000,"cached_input_tokens":2000,"output_tokens":2000,"service_tier":"flex""#,
        NOW,
        1250 + 125 + 10000,
    ),
    case(
        "openai",
        "gpt-5",
        r#""input_tokens":4000,"cached_input_tokens":2000,"output_tokens":2000,"service_tier":"priority""#,
        NOW,
        5000 + 500 + 40000,
    ),
    case(
        "openai",
        "gpt-5",
        r#""input_tokens":4000,"output_tokens":2000,"service_tier":"batch""#,
        NOW,
        2500 + 10000,
    ),
    // gpt-5-mini $0.25 in, $2 out; "default" is how OpenAI reports standard processing.
    case(
        "openai",
        "gpt-5-mini",
        r#""input_tokens":10000,"output_tokens":1000,"service_tier":"default""#,
        NOW,
        2500 + 2000,
    ),
    // gpt-image-1: text in $5, image in $10, image out $40.
    case(
        "openai",
        "gpt-image-1",
        r#""input_tokens":1500,"image_input_tokens":1000,"output_tokens":4160,"image_output_tokens":4160"#,
        NOW,
        2500 + 10000 + 166400,
    ),
    // Azure OpenAI and OpenRouter names of the same model, at OpenAI's list price.
    case(
        "azure",
        "gpt-4o-2024-11-20",
        r#""input_tokens":1000,"output_tokens":200"#,
        NOW,
        2500 + 2000,
    ),
    case(
        "openai",
        "openai/gpt-4o",
        r#""input_tokens":1000,"output_tokens":200"#,
        NOW,
        2500 + 2000,
    ),
    // Anthropic, https://www.anthropic.com/pricing#api and the prompt-caching docs:
    // Sonnet 4 $3 in, $3.75 5-minute write, $6 1-hour write, $0.30 read, $15 out; above 200k
    // input tokens $6 in, $0.60 read, $22.50 out.
    case(
        "anthropic",
        "claude-sonnet-4-20250514",
        r#""input_tokens":1000,"output_tokens":500"#,
        NOW,
        3000 + 7500,
    ),
    case(
        "anthropic",
        "claude-sonnet-4-0",
        r#""input_tokens":10000,"cached_input_tokens":8000,"output_tokens":500"#,
        NOW,
        6000 + 2400 + 7500,
    ),
    case(
        "anthropic",
        "claude-sonnet-4",
        r#""input_tokens":5000,"cache_write_tokens":4000,"output_tokens":200"#,
        NOW,
        3000 + 15000 + 3000,
    ),
    case(
        "anthropic",
        "claude-sonnet-4",
        r#""input_tokens":5000,"cache_write_tokens":4000,"cache_write_1h_tokens":4000,"output_tokens":200"#,
        NOW,
        3000 + 24000 + 3000,
    ),
    case(
        "anthropic",
        "claude-sonnet-4",
        r#""input_tokens":6000,"cache_write_tokens":4000,"cache_write_1h_tokens":1000,"output_tokens":100"#,
        NOW,
        6000 + 11250 + 6000 + 1500,
    ),
    case(
        "anthropic",
        "claude-sonnet-4",
        r#""input_tokens":250000,"output_tokens":1000"#,
        NOW,
        1_500_000 + 22_500,
    ),
    case(
        "anthropic",
        "claude-sonnet-4",
        r#""input_tokens":300000,"cached_input_tokens":200000,"output_tokens":2000"#,
        NOW,
        600_000 + 120_000 + 45_000,
    ),
    case(
        "anthropic",
        "claude-sonnet-4",
        r#""input_tokens":200000"#,
        NOW,
        600_000,
    ),
    // Opus 4.1 $15 / $75; Opus 4.5 $5 in, $10 1-hour write, $25 out.
    case(
        "anthropic",
        "claude-opus-4-1-20250805",
        r#""input_tokens":2000,"output_tokens":1000"#,
        NOW,
        30000 + 75000,
    ),
    case(
        "anthropic",
        "claude-opus-4-5",
        r#""input_tokens":10000,"cache_write_tokens":5000,"cache_write_1h_tokens":5000,"output_tokens":2000"#,
        NOW,
        25000 + 50000 + 50000,
    ),
    // Haiku 4.5 $1 in, $0.10 read, $5 out; the Batches API halves every rate, caching included.
    case(
        "anthropic",
        "claude-haiku-4-5",
        r#""input_tokens":3000,"cached_input_tokens":1000,"output_tokens":800"#,
        NOW,
        2000 + 100 + 4000,
    ),
    case(
        "anthropic",
        "claude-haiku-4-5-20251001",
        r#""input_tokens":3000,"cached_input_tokens":1000,"output_tokens":800,"service_tier":"batch""#,
        NOW,
        1000 + 50 + 2000,
    ),
    // Haiku 3.5 $0.80 / $4, by its dated id and its dotted spelling.
    case(
        "anthropic",
        "claude-3-5-haiku-20241022",
        r#""input_tokens":1000,"output_tokens":1000"#,
        NOW,
        800 + 4000,
    ),
    case(
        "anthropic",
        "claude-3.5-haiku",
        r#""input_tokens":1000,"output_tokens":1000"#,
        NOW,
        800 + 4000,
    ),
    // Google, https://ai.google.dev/gemini-api/docs/pricing: 2.5 Pro $1.25 in, $10 out up to
    // 200k input tokens, $2.50 / $15 above; batch half. Thinking tokens are output tokens.
    case(
        "google",
        "gemini-2.5-pro",
        r#""input_tokens":10000,"output_tokens":2000,"reasoning_tokens":1500"#,
        NOW,
        12500 + 20000,
    ),
    case(
        "vertex_ai",
        "gemini-2.5-pro",
        r#""input_tokens":250000,"output_tokens":2000"#,
        NOW,
        625_000 + 30_000,
    ),
    case(
        "google",
        "models/gemini-2.5-pro",
        r#""input_tokens":250000,"output_tokens":2000,"service_tier":"batch""#,
        NOW,
        312_500 + 15_000,
    ),
    // 2.5 Flash $0.30 text in, $1 audio in, $0.03 cached, $2.50 out; batch $0.15 / $1.25.
    case(
        "google",
        "gemini-2.5-flash",
        r#""input_tokens":10000,"audio_input_tokens":2000,"output_tokens":1000"#,
        NOW,
        2400 + 2000 + 2500,
    ),
    case(
        "google",
        "gemini-2.5-flash",
        r#""input_tokens":10000,"cached_input_tokens":6000,"output_tokens":500"#,
        NOW,
        1200 + 180 + 1250,
    ),
    case(
        "google",
        "gemini-2.5-flash",
        r#""input_tokens":10000,"output_tokens":1000,"service_tier":"batch""#,
        NOW,
        1500 + 1250,
    ),
    // 2.0 Flash $0.10 / $0.40.
    case(
        "google",
        "gemini-2.0-flash-001",
        r#""input_tokens":20000,"output_tokens":1000"#,
        NOW,
        2000 + 400,
    ),
    // DeepSeek, https://api-docs.deepseek.com/quick_start/pricing: V3.2 $0.28 cache miss, $0.028
    // cache hit, $0.42 out, for deepseek-chat and deepseek-reasoner alike.
    case(
        "deepseek",
        "deepseek-chat",
        r#""input_tokens":10000,"cached_input_tokens":4000,"output_tokens":2000"#,
        NOW,
        1680 + 112 + 840,
    ),
    case(
        "deepseek",
        "deepseek-reasoner",
        r#""input_tokens":5000,"output_tokens":3000,"reasoning_tokens":2000"#,
        NOW,
        1400 + 1260,
    ),
    // xAI, https://docs.x.ai/docs/models: grok-4 $3 in, $0.75 cached, $15 out; above 128k input
    // tokens $6 / $30.
    case(
        "xai",
        "grok-4",
        r#""input_tokens":10000,"cached_input_tokens":2000,"output_tokens":1000"#,
        NOW,
        24000 + 1500 + 15000,
    ),
    case(
        "xai",
        "grok-4-0709",
        r#""input_tokens":150000,"output_tokens":1000"#,
        NOW,
        900_000 + 30_000,
    ),
    // Amazon Bedrock, https://aws.amazon.com/bedrock/pricing/: Nova Pro $0.80 / $3.20.
    case(
        "bedrock",
        "us.amazon.nova-pro-v1:0",
        r#""input_tokens":10000,"output_tokens":1000"#,
        NOW,
        8000 + 3200,
    ),
];

fn day_ms(day: &str) -> i64 {
    chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .unwrap()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

fn priced(provider: &str, model: &str, fields: &str, day: &str) -> crate::domain::event::Event {
    priced_with(&WorkspacePrices::default(), provider, model, fields, day)
}

fn priced_with(
    custom: &WorkspacePrices,
    provider: &str,
    model: &str,
    fields: &str,
    day: &str,
) -> crate::domain::event::Event {
    let ts = day_ms(day);
    let json =
        format!(r#"{{"provider":"{provider}","model":"{model}","timestamp":{ts},{fields}}}"#);
    let raw = serde_json::value::RawValue::from_string(json).unwrap();
    let ctx = Context {
        now_ms: ts + 60_000,
        source: "test",
        plan: Plan::Team,
        prices: PriceTable::bundled(),
        custom: &custom.ready(),
    };
    validate(&raw, &ctx).unwrap().0
}

#[test]
fn realistic_calls_cost_what_the_providers_publish() {
    assert!(CASES.len() >= 40);
    let mut wrong = Vec::new();
    for c in CASES {
        let e = priced(c.provider, c.model, c.fields, c.day);
        let expected = c.micro_usd * 1_000_000;
        if e.cost_pico != Some(expected) || e.cost_source != Some(CostSource::Table) {
            wrong.push(format!(
                "{} {} {{{}}} on {}: expected ${:.6}, got {:?} ({:?}, {:?})",
                c.provider,
                c.model,
                c.fields,
                c.day,
                expected as f64 / 1e12,
                e.cost_pico.map(|p| p as f64 / 1e12),
                e.cost_source,
                e.price,
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} wrong:\n{}",
        wrong.len(),
        CASES.len(),
        wrong.join("\n")
    );
}

#[test]
fn a_sent_cost_wins_and_the_table_cost_is_kept_beside_it() {
    // The client's own cost comes first, then the provider's (OpenRouter's `usage.cost`).
    let client = priced(
        "openai",
        "gpt-4o",
        r#""input_tokens":1000,"output_tokens":200,"cost_usd":0.5,"provider_cost_usd":0.25"#,
        NOW,
    );
    assert_eq!(client.cost_pico, Some(500_000_000_000));
    assert_eq!(client.cost_source, Some(CostSource::Client));
    assert_eq!(client.computed_cost_pico, Some(4500 * 1_000_000));
    let provider = priced(
        "openrouter",
        "openai/gpt-4o",
        r#""input_tokens":1000,"output_tokens":200,"provider_cost_usd":0.0047"#,
        NOW,
    );
    assert_eq!(provider.cost_pico, Some(4_700_000_000));
    assert_eq!(provider.cost_source, Some(CostSource::Provider));
    assert!(provider.computed_cost_pico.is_some());
    assert_eq!(provider.canonical_model(), "gpt-4o");
    // Unpriced: no cost, never $0, and still one row whatever its case.
    let unknown = priced("acme", "Acme-Tiny-1", r#""input_tokens":10"#, NOW);
    assert_eq!((unknown.cost_pico, unknown.cost_source), (None, None));
    assert_eq!(unknown.canonical_model(), "acme-tiny-1");
}

/// The workspace's price comes after a sent cost and before the table: a discount off the
/// table's price, or its own rates for a model the table does not know, each named in the
/// event's price reference.
#[test]
fn a_workspace_price_comes_between_a_sent_cost_and_the_table() {
    let json = r#"{"version":1,"rules":[
      {"id":"pr_discount","provider":"openai","model":"gpt-4o","kind":"discount","percent":20,
       "effective_from":"2025-01-01","updated_at":"2025-01-01T00:00:00Z"},
      {"id":"pr_own","provider":"acme","model":"acme-*","kind":"rates",
       "rates":{"input":0.5,"output":1.5},"updated_at":"2025-02-03T10:00:00Z"}]}"#;
    let custom: WorkspacePrices = serde_json::from_str(json).unwrap();
    let tokens = r#""input_tokens":1000,"output_tokens":200"#;
    // gpt-4o: 1,000 x $2.50/M + 200 x $10/M = $0.0045; 20% off: $0.0036.
    let discounted = priced_with(&custom, "openai", "gpt-4o", tokens, NOW);
    assert_eq!(discounted.cost_pico, Some(3_600_000_000));
    assert_eq!(discounted.cost_source, Some(CostSource::WorkspacePrice));
    let price = discounted.price.as_ref().unwrap();
    assert_eq!(price.rule.as_deref(), Some("pr_discount"));
    assert_eq!(&*price.model, "gpt-4o");
    // Before the rule took effect: the table.
    let before = priced_with(&custom, "openai", "gpt-4o", tokens, "2024-12-31");
    assert_eq!(before.cost_source, Some(CostSource::Table));
    assert_eq!(before.price.as_ref().unwrap().rule, None);
    // A sent cost still wins; what the workspace's price gives is kept beside it.
    let sent = priced_with(
        &custom,
        "openai",
        "gpt-4o",
        r#""input_tokens":1000,"output_tokens":200,"provider_cost_usd":0.004"#,
        NOW,
    );
    assert_eq!(sent.cost_source, Some(CostSource::Provider));
    assert_eq!(sent.computed_cost_pico, Some(3_600_000_000));
    // A model only the workspace prices: 1,000 x $0.50/M + 200 x $1.50/M = $0.0008.
    let own = priced_with(&custom, "acme", "Acme-Tiny-1", tokens, NOW);
    assert_eq!(own.cost_pico, Some(800_000_000));
    assert_eq!(own.cost_source, Some(CostSource::WorkspacePrice));
    let price = own.price.as_ref().unwrap();
    assert_eq!(
        (
            price.rule.as_deref(),
            &*price.model,
            price.provider.as_deref()
        ),
        (Some("pr_own"), "acme-tiny-1", None)
    );
    assert_eq!(&*price.as_of, "2025-02-03");
}
