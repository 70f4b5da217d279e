//! The privacy guard: metadata values that look like secrets or payment card numbers are never
//! stored. The privacy policy asks users not to send them; this catches the ones sent by mistake.

use std::sync::OnceLock;

use regex::{Regex, RegexSet};
use unicode_normalization::UnicodeNormalization as _;

/// Why a value was redacted (the value itself is never echoed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    PrivateKey,
    CloudAccessKey,
    ProviderApiKey,
    LlmtrackKey,
    PaymentCard,
}

impl Finding {
    pub fn describe(self) -> &'static str {
        match self {
            Finding::PrivateKey => "a private key block",
            Finding::CloudAccessKey => "a cloud access key",
            Finding::ProviderApiKey => "an API key of an LLM or cloud provider",
            Finding::LlmtrackKey => "an LLMtrack API key",
            Finding::PaymentCard => "a payment card number",
        }
    }
}

// Each pattern is preceded by a start or a character that cannot continue the secret, instead of
// `\b`: `_` and digits are word characters, so `\b` misses `key_AKIA…` or `user_sk-…`.
const PATTERNS: &[(Finding, &str)] = &[
    (
        Finding::PrivateKey,
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----",
    ),
    // AWS access key ids (long-term AKIA, temporary ASIA, and the other principal prefixes).
    (
        Finding::CloudAccessKey,
        r"(?:^|[^A-Z0-9])(AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|ABIA|ACCA)[0-9A-Z]{16}(?:[^A-Z0-9]|$)",
    ),
    // Google API keys.
    (
        Finding::CloudAccessKey,
        r"(?:^|[^A-Za-z0-9])AIza[0-9A-Za-z_\-]{35}",
    ),
    // OpenAI (sk-, sk-proj-, sk-svcacct-, sk-admin-), Anthropic (sk-ant-), OpenRouter (sk-or-).
    (
        Finding::ProviderApiKey,
        r"(?:^|[^A-Za-z0-9])sk-(proj-|ant-|svcacct-|admin-|or-)?[A-Za-z0-9_\-]{20,}",
    ),
    // Groq, xAI, Hugging Face, GitHub, Stripe, Slack tokens.
    (
        Finding::ProviderApiKey,
        r"(?:^|[^A-Za-z0-9])(gsk_[A-Za-z0-9]{20,}|xai-[A-Za-z0-9]{20,}|hf_[A-Za-z0-9]{30,}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}|[rs]k_(live|test)_[A-Za-z0-9]{20,}|xox[abpr]-[A-Za-z0-9\-]{10,})",
    ),
    (Finding::LlmtrackKey, r"llmt_[A-Za-z0-9_\-]{32}"),
];

/// A literal that every secret pattern above contains. Most text holds none of them, and a search
/// for plain literals runs many times faster than the pattern set, so the set runs only on text
/// that holds one. A pattern added above must add its literal here (the tests check each one).
const NEEDLES: &[&str] = &[
    "-----BEGIN ",
    "AKIA",
    "ASIA",
    "AGPA",
    "AIDA",
    "AROA",
    "ANPA",
    "ANVA",
    "AIPA",
    "ABIA",
    "ACCA",
    "AIza",
    "sk-",
    "gsk_",
    "xai-",
    "hf_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "k_live_",
    "k_test_",
    "xoxa-",
    "xoxb-",
    "xoxp-",
    "xoxr-",
    "llmt_",
];

fn needles() -> &'static Regex {
    static NEEDLES_RE: OnceLock<Regex> = OnceLock::new();
    NEEDLES_RE.get_or_init(|| {
        let alternation: Vec<String> = NEEDLES.iter().map(|n| regex::escape(n)).collect();
        Regex::new(&alternation.join("|")).expect("privacy needles compile")
    })
}

fn patterns() -> &'static RegexSet {
    static SET: OnceLock<RegexSet> = OnceLock::new();
    SET.get_or_init(|| {
        RegexSet::new(PATTERNS.iter().map(|(_, p)| *p)).expect("privacy patterns compile")
    })
}

/// What, if anything, makes this text unfit to store. Used on every free-text field of an event:
/// its id, provider, model, feature, end-user, error type, and metadata keys and values.
pub fn scan(value: &str) -> Option<Finding> {
    // The shortest secret pattern is 20 characters and the shortest card number 13 digits: most
    // values are shorter and need no scan at all. (A full-width digit is 3 bytes, so a short
    // byte length rules out both.)
    if value.len() < 13 {
        return None;
    }
    // Full-width and other compatibility forms (`４１１１`, `ｓｋ－`) are read as what they look like.
    let normalised: std::borrow::Cow<str> = if value.is_ascii() {
        value.into()
    } else {
        value.nfkc().collect::<String>().into()
    };
    if normalised.len() >= 20
        && needles().is_match(&normalised)
        && let Some(i) = patterns().matches(&normalised).into_iter().next()
    {
        return Some(PATTERNS[i].0);
    }
    contains_card_number(&normalised).then_some(Finding::PaymentCard)
}

/// What, if anything, makes a metadata number unfit to store: a card number sent as a JSON number.
pub fn scan_number(n: &serde_json::Number) -> Option<Finding> {
    // Under 13 digits (most numbers: counts, amounts, ids) it cannot be one: no text to make.
    const SMALLEST: u64 = 1_000_000_000_000;
    let small = n
        .as_u64()
        .map(|u| u < SMALLEST)
        .or_else(|| n.as_i64().map(|i| i.unsigned_abs() < SMALLEST))
        .or_else(|| n.as_f64().map(|f| f.abs() < SMALLEST as f64));
    if small != Some(false) {
        return None;
    }
    let digits = if let Some(u) = n.as_u64() {
        u.to_string()
    } else if let Some(i) = n.as_i64() {
        i.unsigned_abs().to_string()
    } else {
        let f = n.as_f64()?.abs();
        // Only whole numbers can be card numbers, and only those f64 holds exactly.
        if f.fract() != 0.0 || f >= 9_007_199_254_740_992.0 {
            return None;
        }
        format!("{f:.0}")
    };
    contains_card_number(&digits).then_some(Finding::PaymentCard)
}

/// Characters people put between the digit groups of a card number.
fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '.' | '/' | '_' | '\u{a0}' | '\t')
}

/// At most this many separators in a row still join two digit groups (`4111  1111`, `4111 - 1111`).
const MAX_SEPARATORS: usize = 3;

/// A card number: 13 to 19 digits, whole digit groups (separated by spaces, dashes, dots, slashes
/// or underscores, a few in a row at most) not glued to letters, starting with 2-6 (Mastercard,
/// Amex, Diners, JCB, Visa, Discover, UnionPay: this spares epoch timestamps and most other ids)
/// and passing the Luhn check.
fn contains_card_number(value: &str) -> bool {
    // This runs on every free-text field of every event, and nearly all of them (names, UUIDs,
    // timestamps) have no 13 digits joined only by separators: a pass over the bytes rules them
    // out with nothing allocated. Digits are ASCII here (`scan` has normalised the others), and
    // non-ASCII bytes are taken as possible separators (a no-break space), so this never rules
    // out what the exact check below would find.
    if !has_long_digit_run(value) {
        return false;
    }
    let chars: Vec<char> = value.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        // One run: digit groups joined by short stretches of separators.
        let mut groups: Vec<Vec<u8>> = vec![Vec::new()];
        let mut j = i;
        while j < chars.len() {
            let c = chars[j];
            if c.is_ascii_digit() {
                if let Some(g) = groups.last_mut() {
                    g.push(c as u8 - b'0');
                }
                j += 1;
                continue;
            }
            let gap = chars[j..].iter().take_while(|c| is_separator(**c)).count();
            if gap == 0
                || gap > MAX_SEPARATORS
                || !chars.get(j + gap).is_some_and(char::is_ascii_digit)
            {
                break;
            }
            groups.push(Vec::new());
            j += gap;
        }
        // A run glued to a letter is part of a word or a hex id (`otel:9f3a…`, `chatcmpl-…`), not
        // a card number as people write one; its inner groups still count when separators set
        // them apart.
        let glued_before = i > 0 && chars[i - 1].is_alphabetic();
        let glued_after = chars.get(j).is_some_and(|c| c.is_alphabetic());
        if run_holds_card(&groups, glued_before, glued_after) {
            return true;
        }
        i = j.max(i + 1);
    }
    false
}

/// Whether some 13 digits follow one another with nothing but separator-like bytes between them.
fn has_long_digit_run(value: &str) -> bool {
    let mut run = 0;
    for b in value.bytes() {
        if b.is_ascii_digit() {
            run += 1;
            if run >= 13 {
                return true;
            }
        } else if b.is_ascii() && !is_separator(char::from(b)) {
            run = 0;
        }
    }
    false
}

/// Whether consecutive whole groups of a run form a card number. A group glued to a letter (the
/// first, when `glued_before`; the last, when `glued_after`) cannot be part of one.
fn run_holds_card(groups: &[Vec<u8>], glued_before: bool, glued_after: bool) -> bool {
    if groups.iter().map(Vec::len).sum::<usize>() < 13 {
        return false;
    }
    let first = usize::from(glued_before);
    let end = groups.len() - usize::from(glued_after);
    for start in first..end {
        let mut digits: Vec<u8> = Vec::with_capacity(19);
        for g in &groups[start..end] {
            digits.extend_from_slice(g);
            if digits.len() > 19 {
                break;
            }
            if digits.len() >= 13 && (2..=6).contains(&digits[0]) && luhn_valid(&digits) {
                return true;
            }
        }
    }
    false
}

fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_cards_are_found() {
        let cases = [
            ("-----BEGIN RSA PRIVATE KEY-----\nMIIE", Finding::PrivateKey),
            ("key=AKIAIOSFODNN7EXAMPLE", Finding::CloudAccessKey),
            (
                "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
                Finding::ProviderApiKey,
            ),
            (
                "sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
                Finding::ProviderApiKey,
            ),
            (
                "llmt_abcdefghijklmnopqrstuvwxyzABCDEF",
                Finding::LlmtrackKey,
            ),
            ("card 4111 1111 1111 1111 exp", Finding::PaymentCard),
            ("4242-4242-4242-4242", Finding::PaymentCard),
            ("4111.1111.1111.1111", Finding::PaymentCard),
            ("4111/1111/1111/1111", Finding::PaymentCard),
            ("4111  1111  1111  1111", Finding::PaymentCard),
            ("４１１１ １１１１ １１１１ １１１１", Finding::PaymentCard),
            (
                "order 12345 paid with 4111 1111 1111 1111",
                Finding::PaymentCard,
            ),
            ("card:4111111111111111", Finding::PaymentCard),
            ("id-4111111111111111-x", Finding::PaymentCard),
            ("user_AKIAIOSFODNN7EXAMPLE", Finding::CloudAccessKey),
            ("AKIAIOSFODNN7EXAMPLE", Finding::CloudAccessKey),
            (
                "tenant_sk-proj-abcdefghijklmnopqrstuvwxyz012345",
                Finding::ProviderApiKey,
            ),
            (
                "ｓｋ－ｐｒｏｊ－abcdefghijklmnopqrstuvwxyz012345",
                Finding::ProviderApiKey,
            ),
        ];
        for (value, finding) in cases {
            assert_eq!(scan(value), Some(finding), "{value}");
        }
    }

    /// One secret of each form every pattern accepts: a literal missing from NEEDLES would let
    /// that form through unscanned.
    #[test]
    fn every_form_of_secret_passes_the_literal_filter() {
        let body = "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0u1V2w3X4";
        let mut cases: Vec<(String, Finding)> = vec![
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----".into(),
                Finding::PrivateKey,
            ),
            (format!("AIza{}", &body[..35]), Finding::CloudAccessKey),
            (format!("llmt_{}", &body[..32]), Finding::LlmtrackKey),
        ];
        for prefix in [
            "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA", "ABIA", "ACCA",
        ] {
            cases.push((format!("{prefix}IOSFODNN7EXAMPLE"), Finding::CloudAccessKey));
        }
        for prefix in [
            "sk-",
            "sk-proj-",
            "sk-ant-",
            "sk-svcacct-",
            "sk-admin-",
            "sk-or-",
            "gsk_",
            "xai-",
            "hf_",
            "ghp_",
            "gho_",
            "ghu_",
            "ghs_",
            "ghr_",
            "github_pat_",
            "rk_live_",
            "rk_test_",
            "sk_live_",
            "sk_test_",
            "xoxa-",
            "xoxb-",
            "xoxp-",
            "xoxr-",
        ] {
            cases.push((format!("{prefix}{body}"), Finding::ProviderApiKey));
        }
        for (secret, finding) in cases {
            for value in [secret.clone(), format!("label {secret} end")] {
                assert_eq!(scan(&value), Some(finding), "{value}");
            }
        }
    }

    #[test]
    fn ordinary_values_pass() {
        for value in [
            "checkout",
            "user-42",
            "1234567890123",
            "2026-11-27T10:00:00Z",
            "task-ask-sk-1",
            "order 4234567812345679",
            // Luhn-valid runs inside hex ids: part of the id.
            "otel:0af7651916cd43dd8448eb211c80319c:b7ad6b7a4111111111111111",
            "chatcmpl-a4111111111111111",
            "run 4111111111111111abc",
        ] {
            // 4234567812345679 fails Luhn; the others are not secrets.
            assert_eq!(scan(value), None, "{value}");
        }
    }

    /// OpenTelemetry event ids are `otel:<32 hex>:<16 hex>`; before runs glued to letters were
    /// spared, about one in a thousand random ids was refused as a card number.
    #[test]
    fn random_trace_ids_pass() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut hex = |n: usize| -> String {
            (0..n)
                .map(|_| {
                    // xorshift64: a fixed sequence, so this test is the same on every run.
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    char::from_digit((state >> 60) as u32, 16).unwrap()
                })
                .collect()
        };
        let mut refused = Vec::new();
        for _ in 0..100_000 {
            let id = format!("otel:{}:{}", hex(32), hex(16));
            // A span id of sixteen digits is a run nothing sets apart from a card: the rare id
            // (1 in 2,000) that is one is left out of the count.
            if id[38..].bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            if scan(&id).is_some() {
                refused.push(id);
            }
        }
        assert!(refused.is_empty(), "{refused:?}");
    }

    #[test]
    fn card_numbers_sent_as_json_numbers_are_found() {
        for (json, finding) in [
            ("4111111111111111", Some(Finding::PaymentCard)),
            ("4111111111111111.0", Some(Finding::PaymentCard)),
            ("-4111111111111111", Some(Finding::PaymentCard)),
            ("1764547200000", None),
            ("42", None),
            ("3.14", None),
            ("1e300", None),
        ] {
            let n: serde_json::Number = serde_json::from_str(json).unwrap();
            assert_eq!(scan_number(&n), finding, "{json}");
        }
    }
}

/// Generated inputs: card numbers and keys in every disguise are found; nothing panics.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    /// A Luhn-valid number of `len` digits starting with `first`.
    fn card(first: u8, body: Vec<u8>) -> Vec<u8> {
        let mut digits = vec![first];
        digits.extend(body);
        // Choose the check digit that makes the whole number pass.
        for check in 0..10 {
            let mut d = digits.clone();
            d.push(check);
            if luhn_valid(&d) {
                return d;
            }
        }
        unreachable!("one check digit always works")
    }

    fn cards() -> impl Strategy<Value = Vec<u8>> {
        (2u8..=6, 11usize..=17).prop_flat_map(|(first, n)| {
            prop::collection::vec(0u8..10, n).prop_map(move |body| card(first, body))
        })
    }

    /// The digits written with separators between groups, some full-width.
    fn disguised(digits: &[u8], seps: &[&str], group: usize, wide: bool) -> String {
        let mut out = String::new();
        for (i, d) in digits.iter().enumerate() {
            if i > 0 && i % group == 0 {
                out.push_str(seps[(i / group) % seps.len()]);
            }
            let c = if wide {
                char::from_u32(0xFF10 + u32::from(*d)).unwrap()
            } else {
                char::from(b'0' + d)
            };
            out.push(c);
        }
        out
    }

    proptest! {
        #[test]
        fn card_numbers_are_found_however_written(
            digits in cards(),
            seps in prop::collection::vec(prop::sample::select(vec!["", " ", "-", ".", "/", "  ", " - ", "_"]), 1..4),
            group in 3usize..6,
            wide in any::<bool>(),
            before in "([a-z]{0,8}[ :=]{1,3})?",
            after in "([ :=,.][a-z ]{0,8})?",
        ) {
            let text = format!("{before}{}{after}", disguised(&digits, &seps, group, wide));
            prop_assert_eq!(scan(&text), Some(Finding::PaymentCard), "{}", text);
        }

        /// Hex and base62 ids (trace and span ids, provider response ids) hold long digit runs
        /// now and then; glued to a letter, a run is part of the id, whatever its digits.
        #[test]
        fn digit_runs_glued_to_letters_are_ids(
            digits in cards(),
            before in "[a-f]{1,8}",
            after in "[a-f]{0,8}",
            prefix in prop::sample::select(vec!["", "otel:", "chatcmpl-", "msg_"]),
            glue_after in any::<bool>(),
        ) {
            let run: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
            // Glued on one side at least: before the run, or after it.
            let text = if glue_after {
                format!("{prefix}{run}x{after}")
            } else {
                format!("{prefix}{before}{run}{after}")
            };
            prop_assert_eq!(scan(&text), None, "{}", text);
        }

        #[test]
        fn card_numbers_sent_as_numbers_are_found(digits in cards()) {
            let s: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
            let n: serde_json::Number = serde_json::from_str(&s).unwrap();
            prop_assert_eq!(scan_number(&n), Some(Finding::PaymentCard));
        }

        #[test]
        fn provider_keys_are_found_inside_any_label(
            prefix in prop::sample::select(vec!["sk-", "sk-proj-", "sk-ant-api03-", "sk-or-v1-", "gsk_", "xai-", "AKIA", "llmt_"]),
            body in "[A-Z0-9]{40}",
            // A key glued to a word (`ask-…`) is a word; after a separator it is a key.
            before in "([a-z]{0,8}[_ :=-])?",
            after in "( [a-z]{0,8})?",
        ) {
            let body = if prefix == "AKIA" { body[..16].to_owned() } else if prefix == "llmt_" { body[..32].to_owned() } else { body };
            let text = format!("{before}{prefix}{body}{after}");
            prop_assert!(scan(&text).is_some(), "{}", text);
        }

        #[test]
        fn no_input_panics(text in any::<String>(), n in any::<f64>(), i in any::<i64>()) {
            let _ = scan(&text);
            if let Some(n) = serde_json::Number::from_f64(n) {
                let _ = scan_number(&n);
            }
            let _ = scan_number(&serde_json::Number::from(i));
        }

        #[test]
        fn short_and_digitless_values_pass(text in "[a-zA-Z ,.:/-]{0,64}") {
            // No digits, no key prefix long enough: nothing to find.
            prop_assume!(!text.contains("sk-") && !text.contains("AKIA"));
            prop_assert_eq!(scan(&text), None);
        }
    }
}
