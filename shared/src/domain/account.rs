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
/// A limit over a fixed window, counted in the store (so it holds across Lambda instances):
/// at most `max` per `window_ms` for one value of `bucket` (an email, an address, a workspace).
#[derive(Debug, Clone, Copy)]
pub struct WindowLimit {
    pub bucket: &'static str,
    pub window_ms: i64,
    pub max: u64,
    /// What is being counted, for the 429's message ("sign-in codes for this email").
    pub what: &'static str,
}

const MINUTES_15: i64 = 15 * 60 * 1000;
const DAY: i64 = 86_400_000;

/// Sign-in codes emailed to one address.
pub const CODES_PER_EMAIL: WindowLimit = WindowLimit {
    bucket: "code",
    window_ms: MINUTES_15,
    max: 5,
    what: "sign-in codes requested for this email",
};
/// Sign-in requests (each of `/auth/email` and `/auth/verify`) from one client address.
pub const AUTH_REQUESTS_PER_ADDRESS: WindowLimit = WindowLimit {
    bucket: "auth",
    window_ms: MINUTES_15,
    max: 30,
    what: "sign-in requests from this address",
};
pub const VERIFY_REQUESTS_PER_ADDRESS: WindowLimit = WindowLimit {
    bucket: "verify",
    ..AUTH_REQUESTS_PER_ADDRESS
};
/// Wrong codes entered for one email, across all its codes: the back-off grows from a quarter
/// of an hour after 5 failures to a day after 20, so guessing stays hopeless (1 in a million
/// per guess) however many codes are requested.
pub const FAILED_SIGNINS: [WindowLimit; 2] = [
    WindowLimit {
        bucket: "signin-fail-15m",
        window_ms: MINUTES_15,
        max: 5,
        what: "wrong sign-in codes for this email",
    },
    WindowLimit {
        bucket: "signin-fail-1d",
        window_ms: DAY,
        max: 20,
        what: "wrong sign-in codes for this email",
    },
];
/// Invitations sent by one workspace, and received by one address from all workspaces: an
/// invitation emails someone who never asked for it.
pub const INVITATIONS_PER_WORKSPACE: WindowLimit = WindowLimit {
    bucket: "invite-ws",
    window_ms: DAY,
    max: 20,
    what: "invitations sent by this workspace",
};
pub const INVITATIONS_PER_ADDRESS: WindowLimit = WindowLimit {
    bucket: "invite-to",
    window_ms: DAY,
    max: 3,
    what: "invitations sent to this address",
};

impl WindowLimit {
    /// The start of the window `now_ms` falls in.
    pub fn window(&self, now_ms: i64) -> i64 {
        now_ms - now_ms.rem_euclid(self.window_ms)
    }
}

/// An email address, trimmed and lowercased so one person is one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

/// Why a string is not an email address.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EmailError {
    #[error("email is longer than 254 characters")]
    TooLong,
    /// `given` as sent (trimmed), and what is wrong with it.
    #[error("`{given}` is not a valid email address ({reason})")]
    Invalid {
        given: String,
        reason: email_address::Error,
    },
}

impl Email {
    pub fn parse(s: &str) -> Result<Email, EmailError> {
        let lower = s.trim().to_lowercase();
        if lower.len() > 254 {
            return Err(EmailError::TooLong);
        }
        match email_address::EmailAddress::parse_with_options(
            &lower,
            email_address::Options::default().with_required_tld(),
        ) {
            Ok(_) => Ok(Email(lower)),
            Err(reason) => Err(EmailError::Invalid {
                given: s.trim().to_owned(),
                reason,
            }),
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
        assert_eq!(
            Email::parse(&format!("{}@example.com", "a".repeat(250)))
                .unwrap_err()
                .to_string(),
            "email is longer than 254 characters"
        );
        let refused = Email::parse(" no-at-sign ").unwrap_err().to_string();
        assert!(
            refused.starts_with("`no-at-sign` is not a valid email address ("),
            "{refused}"
        );
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
