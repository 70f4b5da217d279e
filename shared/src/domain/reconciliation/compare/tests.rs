//! Reconciliation against figures worked out by hand.

use super::*;

/// A price table of one model, so every expected figure below can be worked out by hand.
struct OneModel {
    output_rate: i64,
}

impl Prices for OneModel {
    fn canonical(&self, _: Provider, model: &str) -> String {
        model.trim_end_matches("-2024-08-06").to_owned()
    }
    fn billed_by(&self, p: Provider, canonical: &str) -> bool {
        p == Provider::OpenAi && canonical.starts_with("gpt-")
    }
    fn rate(&self, _: Provider, model: &str, kind: TokenKind) -> Option<i64> {
        (self.canonical(Provider::OpenAi, model) == "gpt-4o").then_some(match kind {
            TokenKind::Input => 2_500_000,
            TokenKind::CachedInput => 1_250_000,
            TokenKind::CacheWrite => 0,
            TokenKind::Output => self.output_rate,
        })
    }
    fn hour_write_rate(&self, _: Provider, _: &str) -> Option<i64> {
        None
    }
}

const TABLE: OneModel = OneModel {
    output_rate: 10_000_000,
};

fn day(d: &str) -> String {
    format!("2026-08-0{d}")
}

/// gpt-4o on one day: 1,000 uncached input, 200 cached, 500 output, 10 requests, billed at
/// $2.50 / $1.25 / $10 per million: 2.5e9 + 2.5e8 + 5e9 = 7.75e9 picodollars.
fn billed(d: &str) -> BilledRow {
    let mut r = BilledRow::new(&day(d), Provider::OpenAi, "gpt-4o-2024-08-06", "proj_a");
    r.tokens = [1_000, 200, 0, 500];
    r.requests = Some(10);
    r.kind_cost_pico = [
        Some(2_500_000_000),
        Some(250_000_000),
        None,
        Some(5_000_000_000),
    ];
    r.cost_pico = 7_750_000_000;
    r
}

/// Events count cached input inside input.
fn tracked(d: &str, share: u64) -> (String, String, Tracked) {
    let r = Rollup {
        requests: 10 * share / 100,
        input_tokens: 1_200 * share / 100,
        cached_input_tokens: 200 * share / 100,
        output_tokens: 500 * share / 100,
        cost_pico: 7_750_000_000 * i128::from(share) / 100,
        ..Rollup::default()
    };
    (day(d), "gpt-4o".into(), Tracked::of(&r))
}

#[test]
fn coverage_and_drift_by_day_model_and_total() {
    let days = [day("1"), day("2")];
    // Day 1 fully seen; day 2 half seen (an app stopped sending part of its calls).
    let out = reconcile(
        &[billed("1"), billed("2")],
        &[tracked("1", 100), tracked("2", 50)],
        &days,
        &TABLE,
    );
    let d1 = &out.days[0].figures;
    assert_eq!(d1.coverage_pct, Some(100.0));
    assert_eq!(d1.drift_usd, 0.0);
    assert!(d1.causes.is_empty(), "{:?}", d1.causes);
    let d2 = &out.days[1].figures;
    // 500 + 100 + 250 of 1,700 tokens.
    assert_eq!(d2.coverage_pct, Some(50.0));
    assert_eq!(d2.drift_usd, -0.003875);
    assert_eq!(d2.drift_pct, Some(-50.0));
    assert_eq!(d2.causes[0].kind, "missing_events");

    // 2,550 of 3,400 tokens; $0.011625 computed of $0.0155 billed.
    let t = &out.total;
    assert_eq!(t.billed.total_tokens, 3_400);
    assert_eq!(t.tracked.total_tokens, 2_550);
    assert_eq!(t.coverage_pct, Some(75.0));
    assert_eq!(t.billed.cost_usd, 0.0155);
    assert_eq!(t.tracked.cost_usd, 0.011625);
    assert_eq!(t.drift_pct, Some(-25.0));
    assert_eq!(t.billed.requests, Some(20));
    assert_eq!(t.tracked.requests, 15);
    assert_eq!(
        t.tracked.tokens,
        KindTokens {
            input: 1_500,
            cached_input: 300,
            cache_write: 0,
            output: 750
        }
    );
    assert!(t.causes[0].message.contains("2026-08-02"), "{:?}", t.causes);

    assert_eq!(out.models.len(), 1);
    assert_eq!(out.models[0].model, "gpt-4o-2024-08-06");
    assert_eq!(out.models[0].tracked_model, "gpt-4o");
    assert!(out.prices.is_empty(), "billed at the table's rates");
}

#[test]
fn causes_are_named() {
    let mut web = BilledRow::new(&day("1"), Provider::OpenAi, "", "proj_a");
    web.cost_pico = 10_000_000_000;
    let mut mini = BilledRow::new(&day("1"), Provider::OpenAi, "gpt-4o-mini", "");
    mini.tokens = [100, 0, 0, 10];
    mini.cost_pico = 21_000_000;
    let mut unpriced = tracked("1", 100);
    unpriced.2.unpriced = 3;
    // The table charges $8 for output where the bill shows $10: a 25% price difference.
    let table = OneModel {
        output_rate: 8_000_000,
    };
    let out = reconcile(&[billed("1"), web, mini], &[unpriced], &[day("1")], &table);
    let kinds = |m: &str| -> Vec<&str> {
        out.models
            .iter()
            .find(|f| f.model == m)
            .unwrap()
            .figures
            .causes
            .iter()
            .map(|c| c.kind)
            .collect()
    };
    assert_eq!(kinds(""), ["not_tied_to_model"]);
    assert_eq!(kinds("gpt-4o-mini"), ["untracked_model"]);
    assert_eq!(
        kinds("gpt-4o-2024-08-06"),
        ["unpriced_model", "price_difference"]
    );
    assert_eq!(out.prices.len(), 1);
    let gap = &out.prices[0];
    assert_eq!((gap.kind, gap.tokens), (TokenKind::Output, 500));
    assert_eq!(gap.billed_usd_per_mtok, 10.0);
    assert_eq!(gap.table_usd_per_mtok, Some(8.0));
    assert_eq!(gap.difference_pct, Some(25.0));
    // Largest billed cost first: the $0.01 of web search, then gpt-4o, then mini.
    let order: Vec<&str> = out.models.iter().map(|m| m.model.as_str()).collect();
    assert_eq!(order, ["", "gpt-4o-2024-08-06", "gpt-4o-mini"]);
    assert_eq!(out.total.billed.cost_usd, 0.017771);
}

#[test]
fn tracked_models_no_provider_bills_are_left_out() {
    let other = (day("1"), "gemini-2.5-pro".to_owned(), tracked("1", 100).2);
    let out = reconcile(
        &[billed("1")],
        &[tracked("1", 100), other],
        &[day("1")],
        &TABLE,
    );
    assert_eq!(out.total.coverage_pct, Some(100.0));
    assert_eq!(out.models.len(), 1);
}

#[test]
fn a_tracked_model_missing_from_the_bill_gets_its_row() {
    let gpt5 = (day("1"), "gpt-5".to_owned(), tracked("1", 100).2);
    let out = reconcile(
        &[billed("1")],
        &[tracked("1", 100), gpt5],
        &[day("1")],
        &TABLE,
    );
    let row = out.models.iter().find(|m| m.model == "gpt-5").unwrap();
    assert_eq!(row.figures.billed.total_tokens, 0);
    assert_eq!(row.figures.coverage_pct, None);
    assert_eq!(out.total.coverage_pct, Some(200.0));
}

#[test]
fn empty_range() {
    let out = reconcile(&[], &[], &[day("1")], &TABLE);
    assert_eq!(out.total.coverage_pct, None);
    assert_eq!(out.total.drift_pct, None);
    assert_eq!(out.days.len(), 1);
}

/// Cache writes kept for an hour cost more than 5-minute ones: a bill holding both is compared
/// with both rates, weighed by their tokens, and shows no price difference.
#[test]
fn hour_long_cache_writes_are_not_a_price_difference() {
    struct Claude;
    impl Prices for Claude {
        fn canonical(&self, _: Provider, model: &str) -> String {
            model.to_owned()
        }
        fn billed_by(&self, p: Provider, _: &str) -> bool {
            p == Provider::Anthropic
        }
        fn rate(&self, _: Provider, _: &str, kind: TokenKind) -> Option<i64> {
            Some(match kind {
                TokenKind::CacheWrite => 3_750_000,
                _ => 3_000_000,
            })
        }
        fn hour_write_rate(&self, _: Provider, _: &str) -> Option<i64> {
            Some(6_000_000)
        }
    }
    let mut r = BilledRow::new(&day("1"), Provider::Anthropic, "claude-sonnet-4", "");
    // 30,000 five-minute writes at $3.75 and 10,000 hour-long ones at $6: $0.1725.
    r.tokens = [0, 0, 40_000, 0];
    r.cache_write_1h = 10_000;
    r.kind_cost_pico[TokenKind::CacheWrite.index()] = Some(172_500_000_000);
    r.cost_pico = 172_500_000_000;
    let out = reconcile(&[r.clone()], &[], &[day("1")], &Claude);
    assert!(out.prices.is_empty(), "{:?}", out.prices);
    // Billed all at the 5-minute rate, it would be a difference.
    r.cache_write_1h = 0;
    let out = reconcile(&[r], &[], &[day("1")], &Claude);
    assert_eq!(out.prices[0].kind, TokenKind::CacheWrite);
}

/// OpenAI's usage and costs may file a model under different projects: the billed rate is
/// the model's itemised cost over all its tokens.
#[test]
fn a_rate_spans_the_rows_of_every_scope() {
    let mut usage = BilledRow::new(&day("1"), Provider::OpenAi, "gpt-4o-2024-08-06", "");
    usage.tokens = [1_000, 0, 0, 500];
    let mut cost = BilledRow::new(&day("1"), Provider::OpenAi, "gpt-4o-2024-08-06", "proj_a");
    // Output at $9 per million where the table says $10.
    cost.kind_cost_pico = [Some(2_500_000_000), None, None, Some(4_500_000_000)];
    cost.cost_pico = 7_000_000_000;
    let out = reconcile(&[usage, cost], &[], &[day("1")], &TABLE);
    assert_eq!(out.prices.len(), 1, "{:?}", out.prices);
    assert_eq!(
        (out.prices[0].kind, out.prices[0].billed_usd_per_mtok),
        (TokenKind::Output, 9.0)
    );
    assert_eq!(out.prices[0].difference_pct, Some(-10.0));
}
