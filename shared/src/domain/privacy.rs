//! The privacy guard: metadata values that look like secrets or payment card numbers are never
//! stored. The privacy policy asks users not to send them; this catches the ones sent by mistake.

use std::sync::OnceLock;

use regex::RegexSet;

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

const PATTERNS: &[(Finding, &str)] = &[
    (
        Finding::PrivateKey,
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----",
    ),
    // AWS access key ids (long-term AKIA, temporary ASIA) and secret-looking pairs.
    (
        Finding::CloudAccessKey,
        r"\b(AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b",
    ),
    // Google API keys.
    (Finding::CloudAccessKey, r"\bAIza[0-9A-Za-z_\-]{35}\b"),
    // OpenAI (sk-, sk-proj-, sk-svcacct-), Anthropic (sk-ant-), and similar `sk-` keys.
    (
        Finding::ProviderApiKey,
        r"\bsk-(proj-|ant-|svcacct-|or-)?[A-Za-z0-9_\-]{20,}",
    ),
    // Groq, xAI, Hugging Face, GitHub, Stripe, Slack tokens.
    (
        Finding::ProviderApiKey,
        r"\b(gsk_[A-Za-z0-9]{20,}|xai-[A-Za-z0-9]{20,}|hf_[A-Za-z0-9]{30,}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}|[rs]k_(live|test)_[A-Za-z0-9]{20,}|xox[abpr]-[A-Za-z0-9\-]{10,})",
    ),
    (Finding::LlmtrackKey, r"llmt_[A-Za-z0-9_\-]{32}"),
];

fn patterns() -> &'static RegexSet {
    static SET: OnceLock<RegexSet> = OnceLock::new();
    SET.get_or_init(|| {
        RegexSet::new(PATTERNS.iter().map(|(_, p)| *p)).expect("privacy patterns compile")
    })
}

/// What, if anything, makes this value unfit to store.
pub fn scan(value: &str) -> Option<Finding> {
    // The shortest secret pattern is 20 characters and the shortest card number 13 digits: most
    // metadata values are shorter and need no scan at all.
    if value.len() < 13 {
        return None;
    }
    if value.len() >= 20
        && let Some(i) = patterns().matches(value).into_iter().next()
    {
        return Some(PATTERNS[i].0);
    }
    contains_card_number(value).then_some(Finding::PaymentCard)
}

/// A run of 13 to 19 digits (single spaces or dashes allowed between them) that passes the Luhn check.
fn contains_card_number(value: &str) -> bool {
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        // Collect one run of digits and separators.
        let mut digits: Vec<u8> = Vec::with_capacity(19);
        let mut j = i;
        while j < bytes.len()
            && (bytes[j].is_ascii_digit()
                || ((bytes[j] == b' ' || bytes[j] == b'-')
                    && j + 1 < bytes.len()
                    && bytes[j + 1].is_ascii_digit()))
        {
            if bytes[j].is_ascii_digit() {
                digits.push(bytes[j] - b'0');
            }
            j += 1;
        }
        // The whole run is the candidate; card numbers start with 2-6 (Mastercard, Amex, Diners,
        // JCB, Visa, Discover, UnionPay), which spares epoch timestamps and most other ids.
        if (13..=19).contains(&digits.len()) && (2..=6).contains(&digits[0]) && luhn_valid(&digits)
        {
            return true;
        }
        i = j.max(i + 1);
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
        ];
        for (value, finding) in cases {
            assert_eq!(scan(value), Some(finding), "{value}");
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
        ] {
            // 4234567812345679 fails Luhn; the others are not secrets.
            assert_eq!(scan(value), None, "{value}");
        }
    }
}
