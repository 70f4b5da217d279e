//! Signed HTTP deliveries, in Stripe's scheme: `t=TIMESTAMP,v1=HEX` where the signature is
//! HMAC-SHA256 of `"{t}.{body}"`. Stripe signs its webhooks this way (checked here), and
//! LLMtrack signs its alert webhooks the same way, so a receiver verifies both with one routine.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a `Stripe-Signature` timestamp may be from now, either way (Stripe's default).
pub const SIGNATURE_TOLERANCE_S: i64 = 300;

/// Why a webhook delivery's signature was not accepted. Every variant is answered 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    #[error("the Stripe-Signature header is malformed: {0}")]
    Malformed(String),
    #[error("no v1 signature matches any configured webhook secret")]
    NoMatch,
    #[error("the signature timestamp is {0} s old, past the 300 s tolerance")]
    Stale(i64),
    #[error("the signature timestamp is {0} s in the future, past the 300 s tolerance")]
    Future(i64),
}

/// Verifies a `Stripe-Signature` header (`t=TIMESTAMP,v1=SIG[,v1=SIG...][,v0=...]`) over the raw
/// body: HMAC-SHA256 of `"{t}.{body}"` with a webhook secret, hex-encoded, compared in constant
/// time. Any `v1` signature matching any of `secrets` is accepted (so secrets can be rotated);
/// other schemes (`v0`) are ignored. The timestamp must be within `SIGNATURE_TOLERANCE_S` of
/// `now_s`. Returns the signed timestamp.
pub fn verify_signature(
    header: Option<&str>,
    body: &[u8],
    secrets: &[String],
    now_s: i64,
) -> Result<i64, SignatureError> {
    let header = header.map(str::trim).unwrap_or_default();
    if header.is_empty() {
        return Err(SignatureError::Missing);
    }
    let malformed = |why: &str| SignatureError::Malformed(why.to_owned());

    let mut timestamps = Vec::new();
    let mut signatures = Vec::new();
    for item in header.split(',').map(str::trim) {
        // A trailing comma is harmless; anything else without `=` means we misread the header.
        if item.is_empty() {
            continue;
        }
        let Some((key, value)) = item.split_once('=') else {
            return Err(malformed("an item is not a key=value pair"));
        };
        match key.trim() {
            "t" => timestamps.push(value.trim()),
            "v1" => signatures.push(value.trim()),
            // v0 and any future scheme: Stripe adds them alongside v1, never instead of it.
            _ => {}
        }
    }
    let t = match timestamps.as_slice() {
        [] => return Err(malformed("there is no t= timestamp")),
        [t] => t
            .parse::<i64>()
            .map_err(|_| malformed("the t= timestamp is not an integer"))?,
        _ => return Err(malformed("there is more than one t= timestamp")),
    };
    if signatures.is_empty() {
        return Err(malformed("there is no v1= signature"));
    }
    // Hex that does not decode cannot match; it is not worth a different answer.
    let signatures: Vec<Vec<u8>> = signatures
        .iter()
        .filter_map(|sig| hex::decode(sig).ok())
        .collect();

    // Signatures before the clock, so unsigned junk learns nothing about our time window.
    let matched = secrets
        .iter()
        // An empty (unset) secret would accept anything signed with the empty key.
        .filter(|secret| !secret.is_empty())
        .any(|secret| {
            let mac = signed_payload_mac(body, secret, t);
            signatures
                .iter()
                .any(|sig| mac.clone().verify_slice(sig).is_ok())
        });
    if !matched {
        return Err(SignatureError::NoMatch);
    }

    let age = now_s.saturating_sub(t);
    if age > SIGNATURE_TOLERANCE_S {
        return Err(SignatureError::Stale(age));
    }
    let ahead = t.saturating_sub(now_s);
    if ahead > SIGNATURE_TOLERANCE_S {
        return Err(SignatureError::Future(ahead));
    }
    Ok(t)
}

type HmacSha256 = Hmac<Sha256>;

/// The MAC of Stripe's signed payload, `"{t}.{body}"`, ready to finalize or verify.
fn signed_payload_mac(body: &[u8], secret: &str, t: i64) -> HmacSha256 {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac
}

/// The header value Stripe would send for `body` signed with `secret` at `t`: for tests, and
/// for tools that replay deliveries.
pub fn sign(body: &[u8], secret: &str, t: i64) -> String {
    let sig = signed_payload_mac(body, secret, t).finalize().into_bytes();
    format!("t={t},v1={}", hex::encode(sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_current";
    const OLD_SECRET: &str = "whsec_test_previous";
    const T: i64 = 1_735_689_600;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid"}"#;

    fn secrets(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn v1_of(header: &str) -> &str {
        header.split_once(",v1=").unwrap().1
    }

    fn verify(header: &str, now_s: i64) -> Result<i64, SignatureError> {
        verify_signature(Some(header), BODY, &secrets(&[SECRET]), now_s)
    }

    fn malformed(header: &str) -> String {
        match verify(header, T) {
            Err(SignatureError::Malformed(why)) => why,
            other => panic!("{header:?} gave {other:?}"),
        }
    }

    #[test]
    fn sign_then_verify_round_trips() {
        let header = sign(BODY, SECRET, T);
        assert!(header.starts_with(&format!("t={T},v1=")));
        assert_eq!(v1_of(&header).len(), 64);
        assert_eq!(verify(&header, T), Ok(T));
    }

    #[test]
    fn sign_matches_a_known_hmac() {
        // From outside this code: printf '1735689600.{}' | openssl dgst -sha256 -hmac key
        let header = sign(b"{}", "key", 1_735_689_600);
        assert_eq!(
            header,
            "t=1735689600,v1=18a6a644b6c3e88a7eed8836c7b9b13bfa9306f949c7dde5fcaac263f0043420"
        );
    }

    #[test]
    fn verify_accepts_the_second_v1_when_only_it_matches() {
        let good = v1_of(&sign(BODY, SECRET, T)).to_owned();
        let stale = v1_of(&sign(BODY, OLD_SECRET, T)).to_owned();
        let header = format!("t={T},v1={stale},v1={good}");
        assert_eq!(verify(&header, T), Ok(T));
    }

    #[test]
    fn verify_accepts_the_second_secret_when_only_it_matches() {
        let header = sign(BODY, OLD_SECRET, T);
        let both = secrets(&[SECRET, OLD_SECRET]);
        assert_eq!(verify_signature(Some(&header), BODY, &both, T), Ok(T));
        assert_eq!(verify(&header, T), Err(SignatureError::NoMatch));
    }

    #[test]
    fn verify_rejects_a_missing_header() {
        let s = secrets(&[SECRET]);
        assert_eq!(
            verify_signature(None, BODY, &s, T),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_signature(Some(""), BODY, &s, T),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_signature(Some("  "), BODY, &s, T),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn verify_rejects_malformed_headers_saying_why() {
        let sig = v1_of(&sign(BODY, SECRET, T)).to_owned();
        assert!(malformed(&format!("v1={sig}")).contains("no t="));
        assert!(malformed(&format!("t={T},t={T},v1={sig}")).contains("more than one t="));
        assert!(malformed(&format!("t=soon,v1={sig}")).contains("not an integer"));
        assert!(malformed(&format!("t={T}.5,v1={sig}")).contains("not an integer"));
        assert!(malformed(&format!("t=,v1={sig}")).contains("not an integer"));
        assert!(malformed(&format!("t={T}")).contains("no v1="));
        assert!(malformed(&format!("t={T},v0={sig}")).contains("no v1="));
        assert!(malformed(&format!("t={T},{sig}")).contains("key=value"));
        // The message is part of the error's text.
        let err = verify(&format!("t={T}"), T).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the Stripe-Signature header is malformed: ")
        );
    }

    #[test]
    fn verify_tolerates_spaces_and_a_trailing_comma() {
        let sig = v1_of(&sign(BODY, SECRET, T)).to_owned();
        assert_eq!(verify(&format!(" t = {T} , v1 = {sig} ,"), T), Ok(T));
    }

    #[test]
    fn verify_rejects_signatures_that_do_not_match() {
        let header = sign(BODY, "whsec_someone_else", T);
        assert_eq!(verify(&header, T), Err(SignatureError::NoMatch));
        assert_eq!(
            verify(&format!("t={T},v1=not-hex"), T),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(&format!("t={T},v1="), T),
            Err(SignatureError::NoMatch)
        );
        // A truncated signature is not a prefix match.
        let good = sign(BODY, SECRET, T);
        assert_eq!(
            verify(&good[..good.len() - 2], T),
            Err(SignatureError::NoMatch)
        );
        // The signature covers the timestamp too.
        let moved = format!("t={},v1={}", T + 1, v1_of(&good));
        assert_eq!(verify(&moved, T), Err(SignatureError::NoMatch));
        // No secrets configured accepts nothing.
        assert_eq!(
            verify_signature(Some(&good), BODY, &[], T),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn verify_never_accepts_an_empty_secret() {
        let header = sign(BODY, "", T);
        assert_eq!(
            verify_signature(Some(&header), BODY, &secrets(&[""]), T),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn verify_rejects_a_tampered_body() {
        let header = sign(BODY, SECRET, T);
        let tampered = br#"{"id":"evt_2","type":"invoice.paid"}"#;
        assert_eq!(
            verify_signature(Some(&header), tampered, &secrets(&[SECRET]), T),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn verify_ignores_v0_signatures() {
        let good = sign(BODY, SECRET, T);
        let header = format!("t={T},v0=deadbeef,v1={},v0=junk", v1_of(&good));
        assert_eq!(verify(&header, T), Ok(T));
        // A v0 that would match does not stand in for a v1.
        let header = format!("t={T},v0={},v1=00", v1_of(&good));
        assert_eq!(verify(&header, T), Err(SignatureError::NoMatch));
    }

    #[test]
    fn verify_rejects_stale_and_future_timestamps_past_the_tolerance() {
        let header = sign(BODY, SECRET, T);
        assert_eq!(verify(&header, T + SIGNATURE_TOLERANCE_S), Ok(T));
        assert_eq!(
            verify(&header, T + SIGNATURE_TOLERANCE_S + 1),
            Err(SignatureError::Stale(301))
        );
        assert_eq!(verify(&header, T - SIGNATURE_TOLERANCE_S), Ok(T));
        assert_eq!(
            verify(&header, T - SIGNATURE_TOLERANCE_S - 1),
            Err(SignatureError::Future(301))
        );
    }

    #[test]
    fn verify_checks_the_signature_before_the_time() {
        let unsigned = format!("t={},v1={}", T - 10_000, "ab".repeat(32));
        assert_eq!(verify(&unsigned, T), Err(SignatureError::NoMatch));
        let unsigned = format!("t={},v1={}", T + 10_000, "ab".repeat(32));
        assert_eq!(verify(&unsigned, T), Err(SignatureError::NoMatch));
    }

    #[test]
    fn verify_survives_extreme_timestamps() {
        for (t, now) in [(i64::MIN, i64::MAX), (i64::MAX, i64::MIN), (0, i64::MAX)] {
            let header = sign(BODY, SECRET, t);
            assert!(matches!(
                verify(&header, now),
                Err(SignatureError::Stale(_) | SignatureError::Future(_))
            ));
        }
    }
}

/// Generated inputs for the signature check (Stripe's webhooks, and the same scheme signing
/// alert webhooks): a signature verifies exactly when body, secret and time match.
#[cfg(test)]
mod signature_props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_signature_verifies_only_its_own_body_secret_and_time(
            body in prop::collection::vec(any::<u8>(), 0..256),
            secret in "whsec_[a-zA-Z0-9]{8,40}",
            other in "whsec_[a-zA-Z0-9]{8,40}",
            t in 1_600_000_000i64..2_000_000_000,
            skew in -SIGNATURE_TOLERANCE_S..=SIGNATURE_TOLERANCE_S,
            flip in any::<prop::sample::Index>(),
        ) {
            let header = sign(&body, &secret, t);
            prop_assert_eq!(verify_signature(Some(&header), &body, std::slice::from_ref(&secret), t + skew), Ok(t));
            // Any one secret of several (a rotation) will do.
            prop_assert_eq!(verify_signature(Some(&header), &body, &[other.clone(), secret.clone()], t), Ok(t));
            if other != secret {
                prop_assert!(verify_signature(Some(&header), &body, &[other], t).is_err());
            }
            if !body.is_empty() {
                let mut changed = body.clone();
                let i = flip.index(changed.len());
                changed[i] ^= 1;
                prop_assert!(verify_signature(Some(&header), &changed, std::slice::from_ref(&secret), t).is_err());
            }
            prop_assert!(verify_signature(Some(&header), &body, std::slice::from_ref(&secret), t + SIGNATURE_TOLERANCE_S + 1).is_err());
        }

        #[test]
        fn any_header_is_refused_or_checked_without_panic(header in ".{0,200}", body in prop::collection::vec(any::<u8>(), 0..64), now in any::<i64>()) {
            let _ = verify_signature(Some(&header), &body, &["whsec_x".to_owned()], now);
            let _ = verify_signature(Some(&format!("t={now},v1={header}")), &body, &["whsec_x".to_owned()], now);
        }
    }
}
