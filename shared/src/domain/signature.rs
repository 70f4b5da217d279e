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
