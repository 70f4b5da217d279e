//! The audit log: who did what, when, from where, in a workspace. Never secrets.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ids::WorkspaceId;

/// How long audit entries are kept.
pub const AUDIT_RETENTION_MS: i64 = 400 * 86_400_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Sortable id (ULID): newest first is descending id order.
    pub id: String,
    #[schema(value_type = String)]
    pub workspace_id: WorkspaceId,
    pub at_ms: i64,
    /// Who: a user id, or `cli` for operator commands.
    pub actor_id: String,
    /// The actor's email when it is a person.
    pub actor_email: Option<String>,
    /// What: `signin`, `key.created`, `member.role_changed`, ...
    pub action: String,
    /// What it was done to: a key id, a user id, an email, a plan.
    pub target: Option<String>,
    /// From which client address.
    pub ip: Option<String>,
}

impl AuditEntry {
    pub fn new(
        workspace_id: &WorkspaceId,
        at_ms: i64,
        actor_id: &str,
        actor_email: Option<&str>,
        action: &str,
        target: Option<String>,
        ip: Option<&str>,
    ) -> AuditEntry {
        // Monotonic within this process, so entries made in the same millisecond keep their order.
        static IDS: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
        let next = IDS.lock().ok().and_then(|mut g| {
            g.get_or_insert_with(ulid::Generator::new)
                .generate_from_datetime(crate::domain::ids::system_time(at_ms))
                .ok()
        });
        // Not `unwrap_or_default`: the default ULID is nil, which would sort as the oldest entry.
        let id = match next {
            Some(id) => id,
            None => crate::domain::ids::ulid_at(at_ms),
        };
        AuditEntry {
            id: id.to_string(),
            workspace_id: workspace_id.clone(),
            at_ms,
            actor_id: actor_id.to_owned(),
            actor_email: actor_email.map(str::to_owned),
            action: action.to_owned(),
            target,
            ip: ip.map(str::to_owned),
        }
    }
}
