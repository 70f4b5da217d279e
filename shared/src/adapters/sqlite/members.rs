//! Memberships and invitations.

use super::*;

#[async_trait]
impl Members for SqliteStore {
    async fn add_member(&self, m: &Membership, max_members: u32) -> StoreResult<()> {
        let m = m.clone();
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let existing: Option<String> = tx
                .query_row(
                    "SELECT role FROM members WHERE workspace_id = ?1 AND user_id = ?2",
                    params![m.workspace_id.as_str(), m.user_id.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            if existing.is_none() {
                let count: i64 = tx.query_row("SELECT count(*) FROM members WHERE workspace_id = ?1", [m.workspace_id.as_str()], |r| r.get(0))?;
                if count >= i64::from(max_members) {
                    return Err(Refusal::MemberLimit.into());
                }
            }
            if existing.as_deref() == Some("owner") && m.role != Role::Owner && owners(&tx, &m.workspace_id)? <= 1 {
                return Err(Refusal::LastOwner.into());
            }
            tx.execute(
                "INSERT INTO members (workspace_id, user_id, email, role, since_ms) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role",
                params![m.workspace_id.as_str(), m.user_id.as_str(), m.email.as_str(), m.role.as_str(), m.since_ms],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn member(&self, ws: &WorkspaceId, user: &UserId) -> StoreResult<Option<Membership>> {
        let (ws, user) = (ws.clone(), user.clone());
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT * FROM members WHERE workspace_id = ?1 AND user_id = ?2",
                params![ws.as_str(), user.as_str()],
                member_from_row,
            )
            .optional()?)
        })
        .await
    }

    async fn members(&self, ws: &WorkspaceId) -> StoreResult<Vec<Membership>> {
        let ws = ws.clone();
        self.read(move |c| {
            list(
                c,
                "SELECT * FROM members WHERE workspace_id = ?1 ORDER BY since_ms, user_id",
                [ws.as_str()],
                member_from_row,
            )
        })
        .await
    }

    async fn memberships(&self, user: &UserId) -> StoreResult<Vec<Membership>> {
        let user = user.clone();
        self.read(move |c| {
            list(
                c,
                "SELECT * FROM members WHERE user_id = ?1 ORDER BY since_ms, workspace_id",
                [user.as_str()],
                member_from_row,
            )
        })
        .await
    }

    async fn set_role(&self, ws: &WorkspaceId, user: &UserId, role: Role) -> StoreResult<bool> {
        let (ws, user) = (ws.clone(), user.clone());
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current: Option<String> = tx
                .query_row(
                    "SELECT role FROM members WHERE workspace_id = ?1 AND user_id = ?2",
                    params![ws.as_str(), user.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(current) = current else {
                return Ok(false);
            };
            if current == "owner" && role != Role::Owner && owners(&tx, &ws)? <= 1 {
                return Err(Refusal::LastOwner.into());
            }
            tx.execute(
                "UPDATE members SET role = ?1 WHERE workspace_id = ?2 AND user_id = ?3",
                params![role.as_str(), ws.as_str(), user.as_str()],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn remove_member(&self, ws: &WorkspaceId, user: &UserId) -> StoreResult<bool> {
        let (ws, user) = (ws.clone(), user.clone());
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current: Option<String> = tx
                .query_row(
                    "SELECT role FROM members WHERE workspace_id = ?1 AND user_id = ?2",
                    params![ws.as_str(), user.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(current) = current else {
                return Ok(false);
            };
            if current == "owner" && owners(&tx, &ws)? <= 1 {
                return Err(Refusal::LastOwner.into());
            }
            tx.execute(
                "DELETE FROM members WHERE workspace_id = ?1 AND user_id = ?2",
                params![ws.as_str(), user.as_str()],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn create_invitation(&self, inv: &Invitation) -> StoreResult<()> {
        let i = inv.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO invitations (id, workspace_id, email, role, invited_by, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![i.id.as_str(), i.workspace_id.as_str(), i.email.as_str(), i.role.as_str(), i.invited_by.as_str(), i.created_ms, i.expires_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn invitation(
        &self,
        ws: &WorkspaceId,
        id: &InvitationId,
    ) -> StoreResult<Option<Invitation>> {
        let (ws, id) = (ws.clone(), id.clone());
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT * FROM invitations WHERE workspace_id = ?1 AND id = ?2",
                params![ws.as_str(), id.as_str()],
                invitation_from_row,
            )
            .optional()?)
        })
        .await
    }

    async fn invitations(&self, ws: &WorkspaceId) -> StoreResult<Vec<Invitation>> {
        let ws = ws.clone();
        self.read(move |c| {
            list(
                c,
                "SELECT * FROM invitations WHERE workspace_id = ?1 ORDER BY created_ms, id",
                [ws.as_str()],
                invitation_from_row,
            )
        })
        .await
    }

    async fn delete_invitation(&self, ws: &WorkspaceId, id: &InvitationId) -> StoreResult<bool> {
        let (ws, id) = (ws.clone(), id.clone());
        self.write(move |c| {
            Ok(c.execute(
                "DELETE FROM invitations WHERE workspace_id = ?1 AND id = ?2",
                params![ws.as_str(), id.as_str()],
            )? == 1)
        })
        .await
    }
}
