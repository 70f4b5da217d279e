//! People and their sign-in: users, emails, one-time codes, sessions, memberships, invitations.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::{Rng as _, RngCore as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::access::Role;
use super::ids::{InvitationId, UserId, WorkspaceId};

/// A sign-in code is valid this long.
pub const CODE_TTL_MS: i64 = 10 * 60 * 1000;
/// Wrong guesses allowed against one code before it is void.
pub const CODE_MAX_ATTEMPTS: u32 = 5;
/// A session lasts this long after sign-in.
pub const SESSION_TTL_MS: i64 = 30 * 86_400_000;
/// An invitation can be accepted this long.
pub const INVITATION_TTL_MS: i64 = 7 * 86_400_000;
/// Sign-in rate limits, per 15-minute window: codes requested per email, and requests per client address.
pub const RATE_WINDOW_MS: i64 = 15 * 60 * 1000;
pub const CODES_PER_EMAIL: u64 = 5;
pub const AUTH_REQUESTS_PER_ADDRESS: u64 = 30;

/// An email address, trimmed and lowercased so one person is one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Email, String> {
        let lower = s.trim().to_lowercase();
        if lower.len() > 254 {
            return Err("email is longer than 254 characters".into());
        }
        match email_address::EmailAddress::parse_with_options(
            &lower,
            email_address::Options::default().with_required_tld(),
        ) {
            Ok(_) => Ok(Email(lower)),
            Err(e) => Err(format!("`{}` is not a valid email address ({e})", s.trim())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub created_ms: i64,
    /// The person turned monthly report emails off.
    pub reports_opt_out: bool,
}

/// A one-time sign-in code, stored only as a hash bound to the email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginCode {
    pub email: Email,
    pub hash: String,
    pub expires_ms: i64,
    pub attempts: u32,
}

/// 6 digits: short enough to type, and guessing is bounded by `CODE_MAX_ATTEMPTS` per code and the
/// per-address rate limit.
pub fn new_code() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

pub fn code_hash(email: &Email, code: &str) -> String {
    hex::encode(Sha256::digest(
        format!("llmtrack-code:{}:{}", email.as_str(), code.trim()).as_bytes(),
    ))
}

/// What checking a presented code found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    /// It matched, and is now used up.
    Valid,
    Wrong,
    /// No live code for that email (never sent, expired, used, or too many wrong guesses).
    Missing,
}

/// A session token: 256 random bits, sent only in the cookie, stored only as its SHA-256.
pub struct SessionToken(String);

impl SessionToken {
    pub fn generate() -> SessionToken {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        SessionToken(URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn from_cookie(value: &str) -> Option<SessionToken> {
        (value.len() == 43
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| SessionToken(value.to_owned()))
    }

    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub hash: String,
    pub user_id: UserId,
    pub created_ms: i64,
    pub expires_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub workspace_id: WorkspaceId,
    pub user_id: UserId,
    pub email: Email,
    pub role: Role,
    pub since_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub id: InvitationId,
    pub workspace_id: WorkspaceId,
    pub email: Email,
    pub role: Role,
    pub invited_by: UserId,
    pub created_ms: i64,
    pub expires_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn codes_and_tokens_hash_stably() {
        let email = Email::parse("ada@example.com").unwrap();
        let code = new_code();
        assert_eq!(code.len(), 6);
        assert_eq!(
            code_hash(&email, &code),
            code_hash(&email, &format!(" {code} "))
        );
        assert_ne!(
            code_hash(&email, &code),
            code_hash(&Email::parse("bob@example.com").unwrap(), &code)
        );
        let t = SessionToken::generate();
        assert!(SessionToken::from_cookie(t.expose()).is_some());
        assert_eq!(t.hash().len(), 64);
    }
}
