//! Memberships (both sides: the workspace's and the user's) and invitations on DynamoDB.

use super::items::{self, InvitationItem, MemberItem};
use super::*;
use crate::domain::access::Role;
use crate::domain::account::Invitation;
use crate::domain::account::Membership;
use crate::domain::ids::InvitationId;
use crate::domain::ids::UserId;
use crate::domain::ids::WorkspaceId;
use crate::ports::Refusal;
use crate::ports::StoreError;
use crate::ports::StoreResult;

#[async_trait]
impl Members for DynamoStore {
    async fn add_member(&self, m: &Membership, max_members: u32) -> StoreResult<()> {
        if self.member(&m.workspace_id, &m.user_id).await?.is_some() {
            self.set_role(&m.workspace_id, &m.user_id, m.role).await?;
            return Ok(());
        }
        let owner = i64::from(m.role == Role::Owner);
        let (main, reverse) = Self::member_items(m)?;
        let steps = vec![
            Self::count_step(
                &m.workspace_id,
                "ADD #members :one, #owners :owner",
                Some("attribute_exists(pk) AND #members < :max"),
                vec![
                    (":one", n(1)),
                    (":owner", n(owner)),
                    (":max", n(max_members)),
                ],
            ),
            Step::Put {
                item: main,
                cond: Some("attribute_not_exists(pk)".into()),
                values: vec![],
            },
            Step::Put {
                item: reverse,
                cond: None,
                values: vec![],
            },
        ];
        match self.transact(steps).await? {
            None => Ok(()),
            Some(0) => Err(StoreError::Refused(Refusal::MemberLimit)),
            Some(_) => Err(StoreError::Conflict("that membership".into())),
        }
    }

    async fn member(&self, ws: &WorkspaceId, user: &UserId) -> StoreResult<Option<Membership>> {
        Ok(self
            .get(schema::member(ws, user))
            .await?
            .map(|i| Ok::<_, anyhow::Error>(items::read::<MemberItem>(i)?.into_membership()))
            .transpose()?)
    }

    async fn members(&self, ws: &WorkspaceId) -> StoreResult<Vec<Membership>> {
        self.memberships_under(schema::workspace_pk(ws)).await
    }

    async fn memberships(&self, user: &UserId) -> StoreResult<Vec<Membership>> {
        self.memberships_under(schema::user_pk(user)).await
    }

    async fn set_role(&self, ws: &WorkspaceId, user: &UserId, role: Role) -> StoreResult<bool> {
        let Some(current) = self.member(ws, user).await? else {
            return Ok(false);
        };
        if current.role == role {
            return Ok(true);
        }
        let delta = i64::from(role == Role::Owner) - i64::from(current.role == Role::Owner);
        let cond = (delta < 0).then_some("#owners > :one");
        let mut count_values = vec![(":delta", n(delta))];
        if delta < 0 {
            count_values.push((":one", n(1)));
        }
        let role_step = |key: Key| Step::Update {
            key,
            expr: "SET #role = :new".into(),
            cond: Some("attribute_exists(pk)".into()),
            values: vec![(":new", s(role.as_str()))],
        };
        let steps = vec![
            Self::count_step(ws, "ADD #owners :delta", cond, count_values),
            role_step(schema::member(ws, user)),
            role_step(schema::membership(user, ws)),
        ];
        match self.transact(steps).await? {
            None => Ok(true),
            Some(0) => Err(StoreError::Refused(Refusal::LastOwner)),
            Some(_) => Ok(false),
        }
    }

    async fn remove_member(&self, ws: &WorkspaceId, user: &UserId) -> StoreResult<bool> {
        let Some(current) = self.member(ws, user).await? else {
            return Ok(false);
        };
        let owner = current.role == Role::Owner;
        let mut values = vec![(":minus", n(-1)), (":owner", n(-i64::from(owner)))];
        if owner {
            values.push((":one", n(1)));
        }
        let steps = vec![
            Self::count_step(
                ws,
                "ADD #members :minus, #owners :owner",
                owner.then_some("#owners > :one"),
                values,
            ),
            Step::Delete {
                key: schema::member(ws, user),
                cond: Some("attribute_exists(pk)".into()),
                values: vec![],
            },
            Step::Delete {
                key: schema::membership(user, ws),
                cond: None,
                values: vec![],
            },
        ];
        match self.transact(steps).await? {
            None => Ok(true),
            Some(0) => Err(StoreError::Refused(Refusal::LastOwner)),
            Some(_) => Ok(false),
        }
    }

    async fn create_invitation(&self, inv: &Invitation) -> StoreResult<()> {
        let item = items::item(
            schema::invitation(&inv.workspace_id, &inv.id),
            &InvitationItem::new(inv),
        )?;
        if self.put(item, Some("attribute_not_exists(pk)")).await? {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!("invitation {}", inv.id)))
        }
    }

    async fn invitation(
        &self,
        ws: &WorkspaceId,
        id: &InvitationId,
    ) -> StoreResult<Option<Invitation>> {
        Ok(self
            .get(schema::invitation(ws, id))
            .await?
            .map(|i| Self::invitation_from(ws, i))
            .transpose()?)
    }

    async fn invitations(&self, ws: &WorkspaceId) -> StoreResult<Vec<Invitation>> {
        let mut out = self
            .query_prefix(schema::workspace_pk(ws), schema::INVITATION_PREFIX)
            .await?
            .into_iter()
            .map(|i| Self::invitation_from(ws, i))
            .collect::<anyhow::Result<Vec<_>>>()?;
        out.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(out)
    }

    async fn delete_invitation(&self, ws: &WorkspaceId, id: &InvitationId) -> StoreResult<bool> {
        Ok(self
            .delete(schema::invitation(ws, id), Some("attribute_exists(pk)"))
            .await?)
    }
}
