//! The request log's cursor: where a page ended (time and id of its last event), naming its
//! workspace so a cursor cannot be replayed against another workspace's log. Opaque to clients
//! (base64url of a small JSON object) and checked when it comes back.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventCursor {
    /// The workspace whose log it pages.
    pub w: String,
    /// The last event's time (ms).
    pub t: i64,
    /// The last event's id.
    pub i: String,
}

/// Why a cursor was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("`cursor` is not a cursor this endpoint returned: pass `next_cursor` unchanged")]
    Malformed,
    #[error("`cursor` belongs to another workspace's request log")]
    OtherWorkspace,
}

impl EventCursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(s: &str, workspace: &str) -> Result<EventCursor, CursorError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| CursorError::Malformed)?;
        let c: EventCursor = serde_json::from_slice(&bytes).map_err(|_| CursorError::Malformed)?;
        if c.w != workspace {
            return Err(CursorError::OtherWorkspace);
        }
        Ok(c)
    }
}

/// Generated inputs: a cursor reads back as itself for its own workspace only, and no string
/// passed as a cursor panics or is taken for another workspace's.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn cursors_round_trip_and_stay_in_their_workspace(w in "ws_[0-9A-Z]{26}", other in "ws_[0-9A-Z]{26}", t in any::<i64>(), i in ".{0,140}") {
            let c = EventCursor { w: w.clone(), t, i };
            let s = c.encode();
            prop_assert_eq!(EventCursor::decode(&s, &w), Ok(c.clone()));
            if other != w {
                prop_assert_eq!(EventCursor::decode(&s, &other), Err(CursorError::OtherWorkspace));
            }
        }

        #[test]
        fn any_string_is_refused_or_decoded_without_panic(s in ".{0,300}", b in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = EventCursor::decode(&s, "ws_A");
            let _ = EventCursor::decode(&URL_SAFE_NO_PAD.encode(&b), "ws_A");
        }
    }
}
