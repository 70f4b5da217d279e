//! Workspace price rules: which rule prices an event, what it charges, and what is refused.

use super::*;
use crate::domain::pricing::{PriceTable, Rates};

fn rule(id: &str, provider: &str, model: &str, price: RulePrice) -> PriceRule {
    PriceRule {
        id: id.into(),
        provider: provider.into(),
        model: model.into(),
        effective_from: None,
        effective_to: None,
        price,
        note: None,
        updated_at: "2026-01-01T00:00:00Z".into(),
    }
}

fn rates(input: f64, output: f64) -> RulePrice {
    RulePrice::Rates {
        rates: UsdPerMillion {
            input,
            output,
            cached_input: None,
            cache_write: None,
            cache_write_1h: None,
            reasoning: None,
            audio_input: None,
            audio_output: None,
            image_input: None,
            image_output: None,
        },
        batch_percent: None,
    }
}

fn off(percent: f64) -> RulePrice {
    RulePrice::Discount { percent }
}

fn ms(day: &str) -> i64 {
    day_start_ms(day).unwrap()
}

fn tokens(input: u64, output: u64) -> Tokens {
    Tokens {
        input,
        output,
        ..Tokens::default()
    }
}

/// A rule's cost for a call, as ingest computes it (the rule made ready alone).
fn cost(r: &PriceRule, tier: ServiceTier, t: &Tokens, table: Option<&Pricing>) -> Option<i128> {
    let one = WorkspacePrices {
        version: 1,
        rules: vec![r.clone()],
    };
    one.ready().rules[0].cost_pico(tier, t, table)
}

fn chosen<'a>(p: &'a WorkspacePrices, provider: &str, model: &str, at: &str) -> Option<&'a str> {
    p.ready()
        .rule_for(provider, model, None, true, ms(at))
        .map(|r| r.rule.id.as_str())
}

#[test]
fn the_most_specific_rule_in_force_prices_the_event() {
    let mut dated = rule("dated", "anthropic", "claude-*", off(30.0));
    dated.effective_from = Some("2026-03-01".into());
    let p = WorkspacePrices {
        version: 1,
        rules: vec![
            rule("all", "*", "*", off(5.0)),
            rule("provider", "anthropic", "*", off(10.0)),
            rule("family", "anthropic", "claude-*", off(20.0)),
            dated,
            rule("exact-any-provider", "*", "claude-opus-4-1", off(40.0)),
            rule("exact", "anthropic", "claude-opus-4-1", off(50.0)),
        ],
    };
    assert_eq!(
        chosen(&p, "anthropic", "claude-opus-4-1", "2026-02-01"),
        Some("exact")
    );
    assert_eq!(
        chosen(&p, "openai", "claude-opus-4-1", "2026-02-01"),
        Some("exact-any-provider")
    );
    // Of two patterns as long, the one that took effect last.
    assert_eq!(
        chosen(&p, "anthropic", "claude-sonnet-4", "2026-02-01"),
        Some("family")
    );
    assert_eq!(
        chosen(&p, "anthropic", "claude-sonnet-4", "2026-03-01"),
        Some("dated")
    );
    assert_eq!(
        chosen(&p, "anthropic", "other-model", "2026-03-01"),
        Some("provider")
    );
    assert_eq!(chosen(&p, "openai", "gpt-4o", "2026-03-01"), Some("all"));
}

#[test]
fn a_rule_applies_from_its_first_day_until_the_day_it_ends() {
    let mut r = rule("r", "openai", "gpt-4o", off(10.0));
    r.effective_from = Some("2026-02-01".into());
    r.effective_to = Some("2026-03-01".into());
    let p = WorkspacePrices {
        version: 1,
        rules: vec![r],
    };
    let ready = p.ready();
    let at = |t: i64| ready.rule_for("openai", "gpt-4o", None, true, t).is_some();
    assert!(!at(ms("2026-02-01") - 1));
    assert!(at(ms("2026-02-01")));
    assert!(at(ms("2026-03-01") - 1));
    assert!(!at(ms("2026-03-01")));
}

#[test]
fn providers_match_in_any_spelling_and_models_by_their_canonical_id() {
    let p = WorkspacePrices {
        version: 1,
        rules: vec![
            rule("bedrock", "aws", "claude-3-5-sonnet", off(10.0)),
            rule("gpt", "openai", "gpt-4o", off(10.0)),
        ],
    };
    let sent = "us.anthropic.claude-3-5-sonnet-20241022-v2:0";
    let p = p.ready();
    assert!(
        p.rule_for("Bedrock", sent, Some("claude-3-5-sonnet"), true, 0)
            .is_some()
    );
    assert!(
        p.rule_for("anthropic", sent, Some("claude-3-5-sonnet"), true, 0)
            .is_none()
    );
    assert!(
        p.rule_for("openai", "OpenAI/GPT-4o", Some("gpt-4o"), true, 0)
            .is_some()
    );
    // Without the canonical id, a decorated name is not the rule's model.
    assert!(
        p.rule_for("openai", "openai/gpt-4o", None, true, 0)
            .is_none()
    );
}

#[test]
fn rates_replace_the_table_and_a_discount_takes_its_share_off() {
    let table = PriceTable::bundled();
    let gpt = table.price("openai", "gpt-4o", ms("2026-01-01")).unwrap();
    let pricing = gpt.version.pricing(ServiceTier::Standard);
    let t = tokens(1_000_000, 100_000);
    // gpt-4o: $2.50 per million input, $10 per million output: $3.50.
    assert_eq!(pricing.cost_pico(&t), 3_500_000_000_000);
    let discount = rule("d", "openai", "*", off(12.5));
    assert_eq!(
        cost(&discount, ServiceTier::Standard, &t, Some(pricing)),
        Some(3_062_500_000_000)
    );
    // A discount needs a price to take a share of.
    assert_eq!(cost(&discount, ServiceTier::Standard, &t, None), None);
    // $0.40 and $1.60 per million: $0.40 + $0.16.
    let own = rule("o", "openai", "in-house-7b", rates(0.4, 1.6));
    assert_eq!(
        cost(&own, ServiceTier::Standard, &t, None),
        Some(560_000_000_000)
    );
    let mut batch = rule("b", "openai", "in-house-7b", rates(0.4, 1.6));
    if let RulePrice::Rates { batch_percent, .. } = &mut batch.price {
        *batch_percent = Some(50.0);
    }
    assert_eq!(
        cost(&batch, ServiceTier::Batch, &t, None),
        Some(280_000_000_000)
    );
    assert_eq!(
        cost(&batch, ServiceTier::Standard, &t, None),
        Some(560_000_000_000)
    );
}

#[test]
fn a_discount_is_passed_over_for_a_model_the_table_cannot_price() {
    let p = WorkspacePrices {
        version: 1,
        rules: vec![
            rule("discount", "acme", "in-house-*", off(10.0)),
            rule("rates", "*", "*", rates(1.0, 2.0)),
        ],
    };
    let p = p.ready();
    assert_eq!(
        p.rule_for("acme", "in-house-7b", None, false, 0)
            .map(|r| r.rule.id.as_str()),
        Some("rates")
    );
    assert_eq!(
        p.rule_for("acme", "in-house-7b", None, true, 0)
            .map(|r| r.rule.id.as_str()),
        Some("discount")
    );
}

#[test]
fn left_out_rates_are_the_rates_of_the_kind_they_are_part_of() {
    let RulePrice::Rates { rates, .. } = rates(3.0, 15.0) else {
        unreachable!()
    };
    assert_eq!(
        rates.rates(),
        Rates {
            input: 3_000_000,
            cached_input: 3_000_000,
            cache_write: 3_000_000,
            cache_write_1h: 3_000_000,
            output: 15_000_000,
            reasoning: 15_000_000,
            audio_input: 3_000_000,
            audio_output: 15_000_000,
            image_input: 3_000_000,
            image_output: 15_000_000,
        }
    );
}

#[test]
fn rules_are_checked_field_by_field() {
    let refused = |r: PriceRule| r.checked().unwrap_err().field;
    assert_eq!(refused(rule("x", "", "gpt-4o", off(10.0))), "provider");
    assert_eq!(refused(rule("x", "open*", "gpt-4o", off(10.0))), "provider");
    assert_eq!(refused(rule("x", "openai", " ", off(10.0))), "model");
    assert_eq!(refused(rule("x", "openai", "gpt\n4o", off(10.0))), "model");
    assert_eq!(refused(rule("x", "openai", "gpt-4o", off(0.0))), "percent");
    assert_eq!(
        refused(rule("x", "openai", "gpt-4o", off(100.5))),
        "percent"
    );
    assert_eq!(
        refused(rule("x", "openai", "gpt-4o", rates(-1.0, 1.0))),
        "rates.input"
    );
    assert_eq!(
        refused(rule("x", "openai", "gpt-4o", rates(1.0, f64::NAN))),
        "rates.output"
    );
    let mut dates = rule("x", "openai", "gpt-4o", off(10.0));
    dates.effective_from = Some("2026-03-01".into());
    dates.effective_to = Some("2026-03-01".into());
    assert_eq!(refused(dates.clone()), "effective_to");
    dates.effective_from = Some("March 1st".into());
    assert_eq!(refused(dates), "effective_from");
    let ok = rule("x", " openai ", " GPT-4o ", off(100.0))
        .checked()
        .unwrap();
    assert_eq!(
        (ok.provider.as_str(), ok.model.as_str()),
        ("openai", "gpt-4o")
    );
}

#[test]
fn shares_are_exact_to_the_picodollar() {
    assert_eq!(share(1_000_000_000_000, 87.5), 875_000_000_000);
    assert_eq!(share(3, 50.0), 2); // 1.5 rounds half up
    assert_eq!(share(1_000_000, 33.3333), 333_333);
    assert_eq!(share(0, 90.0), 0);
}

#[test]
fn patterns_match_whole_names_case_insensitively() {
    let matches = |pattern: &str, name: &str| Pattern::of(pattern).unwrap().matches(name);
    assert!(matches("*", "anything-at-all"));
    assert!(matches("claude-*", "Claude-Sonnet-4"));
    assert!(!matches("claude-*", "old-claude-2"));
    assert!(matches("claude-*-4", "claude-sonnet-4"));
    assert!(!matches("claude-*-4", "claude-sonnet-4-5"));
    assert!(matches("*-mini", "gpt-4o-mini"));
    assert!(Pattern::of("gpt-4o").is_none());
    // Multi-byte text never splits a character.
    assert!(!matches("é*", "e"));
    assert!(matches("ü*", "ü-model"));
}
