//! Who may do what: the one permission matrix every endpoint checks (docs/PERMISSIONS.md).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Admin,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }
}

/// Everything a member can ask to do in a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Analytics, usage, the workspace's settings, the key list and the member list.
    Read,
    ManageKeys,
    ManageAlerts,
    /// Invite, change the role of, or remove members who are not owners (to roles below owner).
    ManageMembers,
    /// Grant or revoke the owner role, remove an owner.
    ManageOwners,
    /// Rename the workspace, change its timezone.
    ManageSettings,
    ReadAudit,
    ManageBilling,
    DeleteData,
}

impl Action {
    /// Whether doing it changes something (then a session's request must come from the
    /// dashboard's own origin).
    pub fn changes_state(self) -> bool {
        !matches!(self, Action::Read | Action::ReadAudit)
    }
}

/// The permission matrix.
pub fn permits(role: Role, action: Action) -> bool {
    match action {
        Action::Read => true,
        Action::ManageKeys
        | Action::ManageAlerts
        | Action::ManageMembers
        | Action::ManageSettings
        | Action::ReadAudit => role >= Role::Admin,
        Action::ManageOwners | Action::ManageBilling | Action::DeleteData => role == Role::Owner,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_grows_with_the_role() {
        assert!(permits(Role::Viewer, Action::Read));
        assert!(!permits(Role::Viewer, Action::ManageKeys));
        assert!(permits(Role::Admin, Action::ManageKeys));
        assert!(!permits(Role::Admin, Action::ManageOwners));
        assert!(!permits(Role::Admin, Action::ManageBilling));
        assert!(permits(Role::Owner, Action::DeleteData));
    }
}
