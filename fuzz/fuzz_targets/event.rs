//! The ingest body: split into events, each parsed, validated and priced. Nothing may panic, and
//! whatever is accepted keeps the event's invariants (bounded counts, subsets within totals,
//! cost within the per-event maximum) and reads back from its stored form unchanged.
//!
//! Each input is tried twice: as the whole body, and as the rest of an event that already has its
//! provider (`{"provider":"openai","model":` + input + `}`, so the input starts with the model).
//! From raw bytes alone, ten minutes of fuzzing never built an event with both required fields,
//! so nothing was accepted and the checks on accepted events never ran.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmtrack_shared::domain::event::{self, Context, Event, MAX_TOKENS};
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::pricing::PriceTable;

const FRAME: &[u8] = br#"{"provider":"openai","model":"#;

fn check(body: &[u8]) {
    let ctx = Context {
        now_ms: 1_800_000_000_000,
        source: "production",
        plan: Plan::Team,
        prices: PriceTable::bundled(),
    };
    let Ok(raw) = event::split_body(body) else { return };
    for r in raw {
        if let Ok((e, _)) = event::validate(r, &ctx) {
            let t = e.tokens;
            assert!([t.input, t.output, t.cached_input, t.cache_write, t.reasoning]
                .iter()
                .all(|n| *n <= MAX_TOKENS));
            assert!(t.cached_input + t.cache_write <= t.input);
            assert!(t.reasoning <= t.output);
            assert!(e.cost_pico.is_none_or(|c| (0..=100_000_000_000_000_000).contains(&c)));
            let back: Event = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
            assert_eq!(back, e);
        }
    }
}

fuzz_target!(|body: &[u8]| {
    check(body);
    let mut framed = Vec::with_capacity(FRAME.len() + body.len() + 1);
    framed.extend_from_slice(FRAME);
    framed.extend_from_slice(body);
    framed.push(b'}');
    check(&framed);
});
