//! Who belongs to a workspace, with which role, and the invitations not yet accepted.

use super::StoreResult;
use crate::domain::access::Role;
use crate::domain::account::{Invitation, Membership};
use crate::domain::ids::{InvitationId, UserId, WorkspaceId};
use async_trait::async_trait;

#[async_trait]
pub trait Members: Send + Sync + 'static {
    /// Adds a member unless the workspace already has `max_members` (the creator's first
    /// membership passes `u32::MAX`). Replaces an existing membership's role.
    async fn add_member(&self, m: &Membership, max_members: u32) -> StoreResult<()>;

    async fn member(&self, ws: &WorkspaceId, user: &UserId) -> StoreResult<Option<Membership>>;

    async fn members(&self, ws: &WorkspaceId) -> StoreResult<Vec<Membership>>;

    async fn memberships(&self, user: &UserId) -> StoreResult<Vec<Membership>>;

    /// Changes a role, refusing to leave the workspace without an owner. False when not a member.
    async fn set_role(&self, ws: &WorkspaceId, user: &UserId, role: Role) -> StoreResult<bool>;

    /// Removes a member, refusing to remove the last owner. False when not a member.
    async fn remove_member(&self, ws: &WorkspaceId, user: &UserId) -> StoreResult<bool>;

    async fn create_invitation(&self, inv: &Invitation) -> StoreResult<()>;

    async fn invitation(
        &self,
        ws: &WorkspaceId,
        id: &InvitationId,
    ) -> StoreResult<Option<Invitation>>;

    async fn invitations(&self, ws: &WorkspaceId) -> StoreResult<Vec<Invitation>>;

    async fn delete_invitation(&self, ws: &WorkspaceId, id: &InvitationId) -> StoreResult<bool>;
}
