//! The price table: parsing, versions, tiers, the cost formula, and how names resolve (the
//! decorated ids providers use, and every real id litellm lists, against a reviewed record).

use super::*;

fn tokens(input: u64, cached: u64, write: u64, output: u64, reasoning: u64) -> Tokens {
    Tokens {
        input,
        output,
        cached_input: cached,
        cache_write: write,
        reasoning,
        ..Tokens::default()
    }
}

/// A table of the given model lines (schema 2, hosts in the usual order).
fn table(models: &str) -> PriceTable {
    PriceTable::parse(&format!(
        r#"{{"schema":2,"hosts":["openai","anthropic","google","aws","openrouter"],"models":[{models}]}}"#
    ))
    .unwrap()
}

const V: &str = r#""source":"https://example.com","checked":"2026-11-01","dataset":"test""#;

#[test]
fn bundled_table_is_large_dated_and_sourced() {
    let t = PriceTable::bundled();
    assert!(t.len() >= 1000, "only {} models", t.len());
    for m in t.models() {
        for v in &m.versions {
            assert!(
                v.source.starts_with("https://"),
                "{} has no source",
                m.model
            );
            assert!(!v.dataset.is_empty(), "{}", m.model);
            for r in [v.standard.rates]
                .into_iter()
                .chain(v.standard.long_context.map(|l| l.1))
            {
                assert!(
                    r.input >= 0 && r.output >= 0 && r.cached_input >= 0,
                    "{}",
                    m.model
                );
            }
        }
        // Versions follow each other: each one ends the day the next begins.
        for pair in m.versions.windows(2) {
            assert_eq!(pair[0].effective_to, pair[1].effective_from, "{}", m.model);
        }
        assert_eq!(m.latest().effective_to, None, "{}", m.model);
    }
}

#[test]
fn each_kind_of_token_is_priced_once_at_its_own_rate() {
    let t = table(&format!(
        r#"{{"provider":"anthropic","model":"claude-x","versions":[{{"input":3,"cached_input":0.3,
        "cache_write":3.75,"cache_write_1h":6,"output":15,"reasoning":20,"audio_input":10,
        "audio_output":40,"image_input":5,"image_output":30,{V}}}]}}"#
    ));
    let m = t.lookup("anthropic", "claude-x").unwrap();
    let tok = Tokens {
        input: 2000,
        cached_input: 600,
        cache_write: 300,
        cache_write_1h: 100,
        audio_input: 200,
        image_input: 100,
        output: 1000,
        reasoning: 400,
        audio_output: 100,
        image_output: 50,
    };
    // Plain input 2000-600-300-200-100 = 800; plain output 1000-400-100-50 = 450.
    let expected = 800 * 3_000_000
        + 600 * 300_000
        + 200 * 3_750_000
        + 100 * 6_000_000
        + 200 * 10_000_000
        + 100 * 5_000_000
        + 450 * 15_000_000
        + 400 * 20_000_000
        + 100 * 40_000_000
        + 50 * 30_000_000;
    assert_eq!(m.latest().standard.cost_pico(&tok), expected);
}

#[test]
fn a_missing_rate_is_the_rate_of_the_kind_it_is_part_of() {
    let t = table(&format!(
        r#"{{"provider":"openai","model":"m","versions":[{{"input":2,"cache_write":2.5,"output":8,{V}}}]}}"#
    ));
    let r = t.lookup("openai", "m").unwrap().latest().standard.rates;
    assert_eq!(
        (r.cached_input, r.audio_input, r.image_input),
        (2_000_000, 2_000_000, 2_000_000)
    );
    assert_eq!(r.cache_write_1h, 2_500_000);
    assert_eq!(
        (r.reasoning, r.audio_output, r.image_output),
        (8_000_000, 8_000_000, 8_000_000)
    );
}

#[test]
fn an_event_is_priced_with_the_version_in_force_at_its_time() {
    let t = table(&format!(
        r#"{{"provider":"openai","model":"gpt-x","versions":[
          {{"effective_from":null,"effective_to":"2025-03-01","input":10,"output":30,{V}}},
          {{"effective_from":"2025-03-01","effective_to":null,"input":5,"output":15,{V}}}]}}"#
    ));
    let ms = |day: &str| day_ms(day, "test").unwrap();
    let before = t
        .price("openai", "gpt-x", ms("2025-02-28") + 86_399_999)
        .unwrap();
    let after = t.price("openai", "gpt-x", ms("2025-03-01")).unwrap();
    assert_eq!(before.version.standard.rates.input, 10_000_000);
    assert_eq!(before.version.id(), "initial");
    assert_eq!(after.version.standard.rates.input, 5_000_000);
    assert_eq!(after.version.id(), "2025-03-01");
    assert_eq!(
        t.lookup("openai", "gpt-x").unwrap().version("2025-03-01"),
        Some(after.version)
    );
}

#[test]
fn versions_out_of_order_are_refused() {
    let json = format!(
        r#"{{"schema":2,"hosts":["openai"],"models":[{{"provider":"openai","model":"m","versions":[
          {{"effective_from":"2025-03-01","input":5,"output":15,{V}}},
          {{"effective_from":"2025-01-01","input":10,"output":30,{V}}}]}}]}}"#
    );
    assert!(matches!(
        PriceTable::parse(&json),
        Err(PriceTableError::Invalid(_))
    ));
}

#[test]
fn service_tiers_and_long_context_pick_their_rates() {
    let t = table(&format!(
        r#"{{"provider":"anthropic","model":"claude-y","versions":[{{"input":3,"output":15,
          "long_context":{{"threshold":200000,"input":6,"output":22.5}},
          "tiers":{{"batch":{{"input":1.5,"output":7.5,"long_context":{{"threshold":200000,"input":3,"output":11.25}}}}}},{V}}}]}}"#
    ));
    let v = t.lookup("anthropic", "claude-y").unwrap().latest();
    let short = tokens(1000, 0, 0, 100, 0);
    let long = tokens(200_001, 0, 0, 100, 0);
    assert_eq!(
        v.pricing(ServiceTier::Standard).cost_pico(&short),
        1000 * 3_000_000 + 100 * 15_000_000
    );
    assert_eq!(
        v.pricing(ServiceTier::Batch).cost_pico(&short),
        1000 * 1_500_000 + 100 * 7_500_000
    );
    assert_eq!(
        v.pricing(ServiceTier::Batch).cost_pico(&long),
        200_001 * 3_000_000 + 100 * 11_250_000
    );
    // A tier the model does not offer is charged at standard rates.
    assert_eq!(v.pricing(ServiceTier::Flex), &v.standard);
}

#[test]
fn the_host_the_provider_names_is_preferred_and_resellers_group_under_the_maker() {
    let t = table(&format!(
        r#"{{"provider":"anthropic","model":"claude-3-5-sonnet","prefixes":["claude-3-5-sonnet"],"versions":[{{"input":3,"output":15,{V}}}]}},
           {{"provider":"aws","model":"us.anthropic.claude-3-5-sonnet-20241022-v2:0","versions":[{{"input":3.3,"output":16.5,{V}}}]}},
           {{"provider":"openrouter","model":"anthropic/claude-3.5-sonnet","versions":[{{"input":3.1,"output":15.1,{V}}}]}}"#
    ));
    let bedrock = t
        .lookup("bedrock", "us.anthropic.claude-3-5-sonnet-20241022-v2:0")
        .unwrap();
    assert_eq!(
        (bedrock.provider.as_ref(), bedrock.canonical.as_ref()),
        ("aws", "claude-3-5-sonnet")
    );
    // Sent through Anthropic, or by a provider we do not know: the maker's entry.
    let direct = t
        .lookup("anthropic", "us.anthropic.claude-3-5-sonnet-20241022-v2:0")
        .unwrap();
    assert_eq!(&*direct.provider, "anthropic");
    assert_eq!(
        &*t.lookup("my-gateway", "claude-3-5-sonnet-20241022")
            .unwrap()
            .provider,
        "anthropic"
    );
    // A Bedrock id with a region the table does not list still reaches the maker's price.
    assert_eq!(
        &*t.lookup("bedrock", "apac.anthropic.claude-3-5-sonnet-20241022-v2:0")
            .unwrap()
            .provider,
        "anthropic"
    );
    let routed = t
        .lookup("openrouter", "anthropic/claude-3.5-sonnet")
        .unwrap();
    assert_eq!(
        (routed.provider.as_ref(), routed.canonical.as_ref()),
        ("openrouter", "claude-3-5-sonnet")
    );
    assert!(t.lookup("openai", "gpt-5-ultra-imaginary").is_none());
    assert!(t.lookup("openai", "").is_none());
}

#[test]
fn a_name_listed_twice_for_one_host_is_refused() {
    let json = format!(
        r#"{{"schema":2,"hosts":["openai"],"models":[
          {{"provider":"openai","model":"a","names":["x"],"versions":[{{"input":1,"output":1,{V}}}]}},
          {{"provider":"openai","model":"b","names":["X"],"versions":[{{"input":1,"output":1,{V}}}]}}]}}"#
    );
    assert!(matches!(
        PriceTable::parse(&json),
        Err(PriceTableError::Duplicate(..))
    ));
}

/// Decorated names are resolved once and remembered, per provider, in a bounded map: the second
/// answer is the first, a provider's preference is not reused for another provider, and a client
/// sending endless distinct names cannot grow it past its bound.
#[test]
fn resolved_names_are_remembered_per_provider_within_a_bound() {
    let t = PriceTable::bundled();
    let name = "us.anthropic.claude-3-5-sonnet-20241022-v2:0";
    let first = t.lookup("bedrock", name).map(|m| m.provider.clone());
    assert_eq!(first.as_deref(), Some("aws"));
    assert_eq!(t.lookup("bedrock", name).map(|m| m.provider.clone()), first);
    assert_eq!(
        t.lookup("anthropic", name)
            .map(|m| m.provider.clone())
            .as_deref(),
        Some("anthropic")
    );
    for i in 0..RESOLVED_CAP + 10 {
        assert!(t.lookup("acme", &format!("in-house-{i}")).is_none());
    }
    let held: usize = t.resolved.lock().unwrap().values().map(|m| m.len()).sum();
    assert!(held <= RESOLVED_CAP, "{held} names held");
    assert_eq!(t.lookup("bedrock", name).map(|m| m.provider.clone()), first);
}

/// The decorated forms the issue named as unpriced before, each with the canonical id it must
/// reach in the bundled table.
#[test]
fn decorated_ids_resolve_in_the_bundled_table() {
    let t = PriceTable::bundled();
    let cases = [
        (
            "bedrock",
            "jp.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "claude-sonnet-4-5",
        ),
        (
            "bedrock",
            "au.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "claude-sonnet-4-5",
        ),
        (
            "bedrock",
            "apac.anthropic.claude-3-5-sonnet-20241022-v2:0",
            "claude-3-5-sonnet",
        ),
        (
            "vertex_ai",
            "claude-sonnet-4-V1@20250514",
            "claude-sonnet-4",
        ),
        (
            "vertex_ai",
            "claude-3-5-sonnet-v2@20241022",
            "claude-3-5-sonnet",
        ),
        (
            "bedrock",
            "meta.llama3-3-70b-instruct-v1:0",
            "meta.llama3-3-70b-instruct-v1:0",
        ),
        (
            "bedrock",
            "us.meta.llama4-scout-17b-instruct-v1:0",
            "meta.llama4-scout-17b-instruct-v1:0",
        ),
        (
            "google",
            "gemini-2.5-flash-preview-05-20",
            "gemini-2.5-flash-preview",
        ),
        ("anthropic", "claude-sonnet-4.5", "claude-sonnet-4-5"),
        ("openai", "GPT-4o", "gpt-4o"),
        ("openai", "openai/gpt-4o", "gpt-4o"),
        ("openrouter", "openai/gpt-4o", "gpt-4o"),
        ("azure", "gpt-4o-2024-08-06", "gpt-4o"),
        ("google", "models/gemini-2.5-pro", "gemini-2.5-pro"),
    ];
    let mut wrong = Vec::new();
    for (provider, model, canonical) in cases {
        match t.lookup(provider, model) {
            Some(m) if *m.canonical == *canonical => {}
            other => wrong.push(format!(
                "{provider} {model}: {:?}",
                other.map(|m| (&m.provider, &m.model, &m.canonical))
            )),
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[derive(serde::Deserialize)]
struct LitellmRows {
    litellm: String,
    rows: Vec<LitellmRow>,
}

#[derive(serde::Deserialize)]
struct LitellmRow {
    provider: String,
    model: String,
    input: f64,
    output: f64,
}

/// Every real model id litellm's dataset lists for the hosts we cover (`make prices` writes them
/// to `shared/data/prices-litellm.json`) resolves as recorded in `prices-coverage.json`: the entry,
/// its canonical id and its rates, and whether litellm agrees within 1%. At least 500 must resolve.
/// `LLMTRACK_UPDATE_COVERAGE=1` rewrites the record (`make prices` does), for review in the diff.
#[test]
fn litellm_model_ids_resolve_as_recorded() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/data");
    let rows: LitellmRows = serde_json::from_str(
        &std::fs::read_to_string(format!("{dir}/prices-litellm.json")).unwrap(),
    )
    .unwrap();
    let t = PriceTable::bundled();
    let usd = |v: i64| v as f64 / 1e6;
    let mut resolved = Vec::new();
    let mut unresolved = Vec::new();
    for r in &rows.rows {
        match t.lookup(&r.provider, &r.model) {
            Some(m) => {
                let rates = m.latest().standard.rates;
                let agree = |a: f64, b: f64| (a - b).abs() <= 0.01 * a.abs().max(b.abs());
                resolved.push(serde_json::json!({
                    "provider": r.provider, "model": r.model,
                    "entry": format!("{}/{}", m.provider, m.model), "canonical": m.canonical,
                    "input": usd(rates.input), "output": usd(rates.output),
                    "litellm_agrees": agree(usd(rates.input), r.input) && agree(usd(rates.output), r.output),
                }));
            }
            None => unresolved.push(format!("{} {}", r.provider, r.model)),
        }
    }
    let record = serde_json::json!({
        "litellm": rows.litellm,
        "resolved": resolved.len(),
        "agree": resolved.iter().filter(|r| r["litellm_agrees"] == true).count(),
        "unresolved": unresolved,
        "rows": resolved,
    });
    let path = format!("{dir}/prices-coverage.json");
    let text = serde_json::to_string_pretty(&record).unwrap() + "\n";
    if std::env::var_os("LLMTRACK_UPDATE_COVERAGE").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    assert!(
        resolved.len() >= 500,
        "only {} litellm ids resolve",
        resolved.len()
    );
    let recorded = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        recorded == text,
        "model resolution differs from {path}; run `make prices` and review its diff"
    );
}
