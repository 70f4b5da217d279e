//! Which OpenTelemetry attributes name an event's `feature` and `user_id` when spans arrive at
//! `POST /otlp/v1/traces`: a workspace setting, with defaults that need no setup.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most attribute names per label.
pub const MAX_KEYS: usize = 8;
/// Longest attribute name.
pub const MAX_KEY_CHARS: usize = 128;

/// The span (then resource) attributes read for each label, the first one present winning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SpanLabels {
    /// Attributes naming the product feature. Default: `llmtrack.feature`.
    #[schema(max_items = 8)]
    pub feature: Vec<String>,
    /// Attributes naming the end-user. Default: `llmtrack.user_id`, `enduser.id`, `user.id`
    /// (`gen_ai.conversation.id` names a conversation, not a person).
    #[schema(max_items = 8)]
    pub user: Vec<String>,
}

impl Default for SpanLabels {
    fn default() -> SpanLabels {
        SpanLabels {
            feature: vec!["llmtrack.feature".into()],
            user: vec![
                "llmtrack.user_id".into(),
                "enduser.id".into(),
                "user.id".into(),
            ],
        }
    }
}

impl SpanLabels {
    /// Checks a setting as sent; the error names the list and the entry at fault.
    pub fn parse(self) -> Result<SpanLabels, String> {
        for (field, keys) in [("feature", &self.feature), ("user", &self.user)] {
            if keys.len() > MAX_KEYS {
                return Err(format!(
                    "span_labels.{field} has {} attributes; at most {MAX_KEYS}",
                    keys.len()
                ));
            }
            for (i, key) in keys.iter().enumerate() {
                let chars = key.chars().count();
                if chars == 0
                    || chars > MAX_KEY_CHARS
                    || key.chars().any(|c| c.is_control() || c.is_whitespace())
                {
                    return Err(format!(
                        "span_labels.{field}[{i}] must be an attribute name of 1 to {MAX_KEY_CHARS} characters without spaces"
                    ));
                }
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_entry_by_entry() {
        assert_eq!(SpanLabels::default().parse(), Ok(SpanLabels::default()));
        let bad = SpanLabels {
            feature: vec!["app.feature".into()],
            user: vec!["enduser.id".into(), "has space".into()],
        };
        assert_eq!(
            bad.parse().unwrap_err(),
            "span_labels.user[1] must be an attribute name of 1 to 128 characters without spaces"
        );
        let many = SpanLabels {
            feature: vec!["a".into(); 9],
            user: vec![],
        };
        assert!(many.parse().unwrap_err().contains("at most 8"));
    }
}
