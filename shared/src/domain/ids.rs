//! Identifiers: ULIDs (sortable, random) behind a short type prefix so a pasted id says what it is.
//! Each id's time part is the caller's clock reading, not the system's, so ids made under a test
//! clock sort by that clock like everything else the test drives.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! prefixed_id {
    ($name:ident, $prefix:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new id made at `at_ms` (the caller's clock).
            pub fn generate(at_ms: i64) -> Self {
                Self(format!(
                    "{}{}",
                    $prefix,
                    ulid_at(at_ms).to_string().to_ascii_lowercase()
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

/// `at_ms` as a system time (clamped to the epoch), for ULIDs made at a clock's reading.
pub fn system_time(at_ms: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(at_ms.max(0) as u64)
}

/// A ULID whose time part is `at_ms` and whose rest is random.
pub fn ulid_at(at_ms: i64) -> ulid::Ulid {
    ulid::Ulid::from_datetime(system_time(at_ms))
}

/// `{prefix}_{ulid}` in lower case, made at `at_ms`: the ids of jobs, alert rules and events.
pub fn prefixed(prefix: &str, at_ms: i64) -> String {
    format!(
        "{prefix}_{}",
        ulid_at(at_ms).to_string().to_ascii_lowercase()
    )
}

/// An id for an ingest batch made at `at_ms` (used by the DynamoDB adapter's crash recovery).
pub fn batch_id(at_ms: i64) -> String {
    ulid_at(at_ms).to_string()
}

/// An id, made at `at_ms`, for an event the client sent without one.
pub fn event_id(at_ms: i64) -> String {
    prefixed("ev", at_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_foreign_ones_do_not() {
        let id = WorkspaceId::generate(1_800_000_000_000);
        assert_eq!(WorkspaceId::parse(id.as_str()), Some(id.clone()));
        assert!(KeyId::parse(id.as_str()).is_none());
        assert!(WorkspaceId::parse("ws_../../etc").is_none());
    }

    #[test]
    fn ids_take_their_time_from_the_callers_clock() {
        let at = 1_800_000_000_123;
        let id = WorkspaceId::generate(at);
        let ulid = ulid::Ulid::from_string(&id.as_str()[3..].to_ascii_uppercase()).unwrap();
        assert_eq!(ulid.timestamp_ms(), at as u64);
        let earlier = event_id(at - 1);
        assert!(
            earlier < event_id(at),
            "ids sort by the clock they were made at"
        );
        assert_eq!(
            ulid::Ulid::from_string(&batch_id(at))
                .unwrap()
                .timestamp_ms(),
            at as u64
        );
    }
}
