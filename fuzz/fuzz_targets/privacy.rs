//! The privacy guard on arbitrary text and numbers: it must answer, never panic, whatever the
//! bytes (including what NFKC normalisation makes of them).
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmtrack_shared::domain::privacy;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = privacy::scan(&text);
    if let Ok(n) = serde_json::from_slice::<serde_json::Number>(data) {
        let _ = privacy::scan_number(&n);
    }
});
