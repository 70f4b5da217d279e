//! The webhook signature check (Stripe's scheme, also signing alert webhooks) on arbitrary
//! headers and bodies: no panic, and nothing verifies without the secret, unless it is the
//! signature made with the secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmtrack_shared::domain::signature::{sign, verify_signature};

const SECRET: &str = "whsec_fuzzing_secret";
const NOW: i64 = 1_800_000_000;

fuzz_target!(|input: (&str, &[u8])| {
    let (header, body) = input;
    if verify_signature(Some(header), body, &[SECRET.to_owned()], NOW).is_ok() {
        // Only by carrying the right v1 signature for this body can a header pass.
        let t = header
            .split(',')
            .find_map(|p| p.trim().strip_prefix("t="))
            .and_then(|t| t.parse::<i64>().ok())
            .expect("a verified header has a timestamp");
        let v1 = sign(body, SECRET, t);
        let expected = v1.split("v1=").nth(1).unwrap();
        assert!(header.contains(expected));
    }
    let signed = sign(body, SECRET, NOW);
    assert_eq!(verify_signature(Some(&signed), body, &[SECRET.to_owned()], NOW), Ok(NOW));
});
