//! Identifiers: ULIDs (sortable, random) behind a short type prefix so a pasted id says what it is.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! prefixed_id {
    ($name:ident, $prefix:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate() -> Self {
                Self(format!(
                    "{}{}",
                    $prefix,
                    ulid::Ulid::new().to_string().to_ascii_lowercase()
                ))
            }

            /// Accepts only well-formed ids, so a malformed one is a 404 without touching the store.
            pub fn parse(s: &str) -> Option<Self> {
                let rest = s.strip_prefix($prefix)?;
                (rest.len() == 26 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
                    .then(|| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(WorkspaceId, "ws_");
prefixed_id!(KeyId, "key_");
prefixed_id!(UserId, "usr_");
prefixed_id!(InvitationId, "inv_");

/// An id for an ingest batch (used by the DynamoDB adapter's crash recovery).
pub fn batch_id() -> String {
    ulid::Ulid::new().to_string()
}

/// An id for an event the client sent without one.
pub fn event_id() -> String {
    format!("ev_{}", ulid::Ulid::new().to_string().to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_foreign_ones_do_not() {
        let id = WorkspaceId::generate();
        assert_eq!(WorkspaceId::parse(id.as_str()), Some(id.clone()));
        assert!(KeyId::parse(id.as_str()).is_none());
        assert!(WorkspaceId::parse("ws_../../etc").is_none());
    }
}
