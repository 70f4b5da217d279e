//! API keys: `llmt_` + 32 random base62-ish characters (192 bits). Only the SHA-256 of the whole key
//! and a short display prefix are ever stored; the raw key exists in the one response that creates it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::ids::{KeyId, WorkspaceId};

/// The recognisable prefix secret scanners can match (`llmt_[A-Za-z0-9_-]{32}`).
pub const KEY_PREFIX: &str = "llmt_";
const RANDOM_BYTES: usize = 24;
const ENCODED_LEN: usize = 32;
/// How much of the key is kept for display: the prefix plus 6 characters, 36 bits of the secret at most.
const DISPLAY_LEN: usize = KEY_PREFIX.len() + 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// May send events.
    Ingest,
    /// May call the query endpoints of its own workspace.
    Read,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
        }
    }
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "ingest" => Some(Scope::Ingest),
            "read" => Some(Scope::Read),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Active,
    Deactivated,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Deactivated => "deactivated",
        }
    }
    pub fn parse(s: &str) -> Option<KeyState> {
        match s {
            "active" => Some(KeyState::Active),
            "deactivated" => Some(KeyState::Deactivated),
            _ => None,
        }
    }
}

/// The SHA-256 of a raw key, hex encoded: what the store indexes keys by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyHash(pub String);

/// A raw key, held only long enough to hash it or show it once. Its Debug never prints it.
pub struct RawKey(String);

impl std::fmt::Debug for RawKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawKey({}…)", self.display_prefix())
    }
}

impl RawKey {
    pub fn generate() -> RawKey {
        let mut bytes = [0u8; RANDOM_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        RawKey(format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Checks the shape of a presented key before any lookup, so garbage never reaches the store.
    pub fn parse(s: &str) -> Option<RawKey> {
        let body = s.strip_prefix(KEY_PREFIX)?;
        (body.len() == ENCODED_LEN
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| RawKey(s.to_owned()))
    }

    pub fn hash(&self) -> KeyHash {
        KeyHash(hex::encode(Sha256::digest(self.0.as_bytes())))
    }

    pub fn display_prefix(&self) -> String {
        self.0[..DISPLAY_LEN].to_owned()
    }

    /// The raw key, for the single response that reveals it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// What the store keeps about a key.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: KeyId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub source: String,
    pub scope: Scope,
    pub state: KeyState,
    pub hash: KeyHash,
    pub prefix: String,
    pub created_ms: i64,
    /// Who made it (an email), when a person did.
    pub created_by: Option<String>,
    pub last_used_ms: Option<i64>,
}

impl ApiKey {
    /// A new active key and its raw value (which the caller shows once, then drops).
    pub fn issue(
        workspace_id: WorkspaceId,
        name: String,
        source: String,
        scope: Scope,
        created_ms: i64,
        created_by: Option<String>,
    ) -> (ApiKey, RawKey) {
        let raw = RawKey::generate();
        let key = ApiKey {
            id: KeyId::generate(created_ms),
            workspace_id,
            name,
            source,
            scope,
            state: KeyState::Active,
            hash: raw.hash(),
            prefix: raw.display_prefix(),
            created_ms,
            created_by,
            last_used_ms: None,
        };
        (key, raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_recognisable_and_hash_stably() {
        let a = RawKey::generate();
        let b = RawKey::generate();
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with("llmt_"));
        assert_eq!(a.expose().len(), 37);
        let parsed = RawKey::parse(a.expose()).unwrap();
        assert_eq!(parsed.hash(), a.hash());
        assert_eq!(a.hash().0.len(), 64);
        assert!(!format!("{a:?}").contains(&a.expose()[12..]));
        assert!(RawKey::parse("llmt_short").is_none());
        assert!(RawKey::parse("sk-proj-abcdefabcdefabcdefabcdefabcdefab").is_none());
    }
}
