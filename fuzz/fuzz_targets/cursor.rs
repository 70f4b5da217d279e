//! Request-log cursors from the client: refused or decoded, never a panic, and never taken for
//! another workspace's; a decoded cursor encodes back to one that decodes to itself.
//!
//! Each input is tried twice: as the cursor string itself (the base64url layer), and as the JSON
//! inside a cursor (base64url-encoded here first). Random strings are almost never base64url of a
//! JSON object, so without the second form the fuzzer never reaches a decoded cursor and the
//! checks below would not run.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use llmtrack_shared::domain::cursor::EventCursor;

fn check(s: &str) {
    if let Ok(c) = EventCursor::decode(s, "ws_fuzz") {
        assert_eq!(c.w, "ws_fuzz");
        assert_eq!(EventCursor::decode(&c.encode(), "ws_fuzz").unwrap(), c);
        assert!(EventCursor::decode(s, "ws_other").is_err());
    }
}

fuzz_target!(|s: &str| {
    check(s);
    check(&URL_SAFE_NO_PAD.encode(s));
});
