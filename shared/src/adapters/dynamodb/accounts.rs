//! People, sign-in, members, invitations, keys with limits, and the audit log on DynamoDB.
//! Limits and the last-owner rule are kept atomically with counters on the workspace item
//! (`keys`, `members`, `owners`) updated in the same transaction as the change they count.

use super::items::{self, EmailItem, Expiring, LoginCodeItem, MemberItem, SessionItem, UserItem};
use super::*;
use crate::domain::account::CODE_MAX_ATTEMPTS;
use crate::domain::account::CodeCheck;
use crate::domain::account::Email;
use crate::domain::account::Invitation;
use crate::domain::account::LoginCode;
use crate::domain::account::Membership;
use crate::domain::account::Session;
use crate::domain::account::User;
use crate::domain::apikey::ApiKey;
use crate::domain::ids::KeyId;
use crate::domain::ids::UserId;
use crate::domain::ids::WorkspaceId;
use crate::ports::StoreResult;
use crate::ports::Workspace;
use anyhow::anyhow;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::AttributeValue as Av;
use aws_sdk_dynamodb::types::ConditionCheck;
use aws_sdk_dynamodb::types::Delete;
use aws_sdk_dynamodb::types::Put;
use aws_sdk_dynamodb::types::ReturnValue;
use aws_sdk_dynamodb::types::TransactWriteItem;
use aws_sdk_dynamodb::types::Update;
use std::collections::HashMap;

pub(super) fn key((pk, sk): Key) -> HashMap<String, Av> {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// A TTL attribute's value for an expiry at `ms`.
pub(super) fn ttl(ms: i64) -> Av {
    n(items::ttl(ms))
}

/// One step of a transaction.
pub(super) enum Step {
    Update {
        key: Key,
        expr: String,
        cond: Option<String>,
        values: Vec<(&'static str, Av)>,
    },
    Put {
        item: Item,
        cond: Option<String>,
        values: Vec<(&'static str, Av)>,
    },
    Delete {
        key: Key,
        cond: Option<String>,
        values: Vec<(&'static str, Av)>,
    },
    /// A condition on an item the transaction does not change.
    Check { key: Key, cond: String },
}

pub(super) fn values(v: Vec<(&'static str, Av)>) -> Option<HashMap<String, Av>> {
    (!v.is_empty()).then(|| v.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// Every `#name` in the expressions, mapped to `name`: many attribute names here (keys, state,
/// role, hash, ...) are DynamoDB reserved words, and unused names are an error, so the map is
/// derived from the expressions themselves.
pub(super) fn names<'a>(
    exprs: impl IntoIterator<Item = &'a str>,
) -> Option<HashMap<String, String>> {
    let mut out = HashMap::new();
    for expr in exprs {
        for (i, _) in expr.match_indices('#') {
            let name: String = expr[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.insert(format!("#{name}"), name);
        }
    }
    (!out.is_empty()).then_some(out)
}

impl DynamoStore {
    /// Runs the steps as one transaction. `Ok(None)`: done. `Ok(Some(i))`: step `i`'s condition
    /// failed and nothing was written.
    pub(super) async fn transact(&self, steps: Vec<Step>) -> anyhow::Result<Option<usize>> {
        let mut items = Vec::with_capacity(steps.len());
        for step in steps {
            items.push(match step {
                Step::Update {
                    key: k,
                    expr,
                    cond,
                    values: v,
                } => TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.table)
                            .set_key(Some(key(k)))
                            .set_expression_attribute_names(names(
                                [expr.as_str()].into_iter().chain(cond.as_deref()),
                            ))
                            .update_expression(expr)
                            .set_condition_expression(cond)
                            .set_expression_attribute_values(values(v))
                            .build()?,
                    )
                    .build(),
                Step::Put {
                    item,
                    cond,
                    values: v,
                } => TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(item))
                            .set_expression_attribute_names(names(cond.as_deref()))
                            .set_condition_expression(cond)
                            .set_expression_attribute_values(values(v))
                            .build()?,
                    )
                    .build(),
                Step::Delete {
                    key: k,
                    cond,
                    values: v,
                } => TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(&self.table)
                            .set_key(Some(key(k)))
                            .set_expression_attribute_names(names(cond.as_deref()))
                            .set_condition_expression(cond)
                            .set_expression_attribute_values(values(v))
                            .build()?,
                    )
                    .build(),
                Step::Check { key: k, cond } => TransactWriteItem::builder()
                    .condition_check(
                        ConditionCheck::builder()
                            .table_name(&self.table)
                            .set_key(Some(key(k)))
                            .set_expression_attribute_names(names([cond.as_str()]))
                            .condition_expression(cond)
                            .build()?,
                    )
                    .build(),
            });
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(None),
            Err(e) => {
                if let Some(TransactWriteItemsError::TransactionCanceledException(c)) =
                    e.as_service_error()
                {
                    let failed = c
                        .cancellation_reasons()
                        .iter()
                        .position(|r| r.code() == Some("ConditionalCheckFailed"));
                    if let Some(i) = failed {
                        return Ok(Some(i));
                    }
                }
                Err(err(e))
            }
        }
    }

    pub(super) async fn update_workspace_settings(&self, ws: &Workspace) -> anyhow::Result<bool> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(schema::workspace(&ws.id))))
            .update_expression("SET #n = :n, tz = :tz, spans = :sp")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#n", "name")
            .expression_attribute_values(":n", s(&ws.name))
            .expression_attribute_values(":tz", s(&ws.timezone))
            .expression_attribute_values(
                ":sp",
                s(&serde_json::to_string(&ws.spans).map_err(|e| anyhow::anyhow!(e))?),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(err(e)),
        }
    }

    pub(super) fn count_step(
        ws: &WorkspaceId,
        expr: &str,
        cond: Option<&str>,
        values: Vec<(&'static str, Av)>,
    ) -> Step {
        Step::Update {
            key: schema::workspace(ws),
            expr: expr.into(),
            cond: cond.map(str::to_owned),
            values,
        }
    }

    pub(super) async fn key_record(
        &self,
        ws: &WorkspaceId,
        key: &KeyId,
    ) -> anyhow::Result<Option<ApiKey>> {
        let Some(listing) = self.get(schema::key_listing(ws, key)).await? else {
            return Ok(None);
        };
        let listing: items::KeyListingItem = items::read(listing)?;
        match self.get(schema::api_key_by_hash(&listing.hash)).await? {
            Some(item) => Ok(Some(Self::key_from_item(item)?)),
            None => Ok(None),
        }
    }

    /// A membership's two items: under the workspace, and under the user.
    pub(super) fn member_items(m: &Membership) -> anyhow::Result<(Item, Item)> {
        let attrs = MemberItem::new(m);
        Ok((
            items::item(schema::member(&m.workspace_id, &m.user_id), &attrs)?,
            items::item(schema::membership(&m.user_id, &m.workspace_id), &attrs)?,
        ))
    }

    /// The membership items under a partition (a workspace's members, or a user's memberships),
    /// oldest first.
    pub(super) async fn memberships_under(&self, pk: String) -> StoreResult<Vec<Membership>> {
        let mut out = self
            .query_prefix(pk, schema::MEMBER_PREFIX)
            .await?
            .into_iter()
            .map(|i| Ok(items::read::<MemberItem>(i)?.into_membership()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        out.sort_by(|a, b| {
            (a.since_ms, &a.workspace_id, &a.user_id).cmp(&(
                b.since_ms,
                &b.workspace_id,
                &b.user_id,
            ))
        });
        Ok(out)
    }

    pub(super) fn invitation_from(ws: &WorkspaceId, item: Item) -> anyhow::Result<Invitation> {
        let (_, sk) = items::key_of(&item)?;
        let id = schema::invitation_id(&sk).ok_or_else(|| anyhow!("bad invitation id"))?;
        Ok(items::read::<items::InvitationItem>(item)?.into_invitation(id, ws))
    }
}

#[async_trait]
impl Accounts for DynamoStore {
    async fn upsert_user(&self, user: &User) -> StoreResult<User> {
        let steps = vec![
            Step::Put {
                item: items::item(
                    schema::user_by_email(&user.email),
                    &EmailItem {
                        user: user.id.clone(),
                    },
                )?,
                cond: Some("attribute_not_exists(pk)".into()),
                values: vec![],
            },
            Step::Put {
                item: items::item(schema::user(&user.id), &UserItem::new(user))?,
                cond: Some("attribute_not_exists(pk)".into()),
                values: vec![],
            },
        ];
        match self.transact(steps).await? {
            None => Ok(user.clone()),
            Some(_) => self
                .user_by_email(&user.email)
                .await?
                .ok_or_else(|| anyhow!("user {} vanished", user.email.as_str()).into()),
        }
    }

    async fn user(&self, id: &UserId) -> StoreResult<Option<User>> {
        let Some(item) = self.get(schema::user(id)).await? else {
            return Ok(None);
        };
        Ok(Some(items::read::<UserItem>(item)?.into_user(id)))
    }

    async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        let Some(item) = self.get(schema::user_by_email(email)).await? else {
            return Ok(None);
        };
        self.user(&items::read::<EmailItem>(item)?.user).await
    }

    async fn put_login_code(&self, code: &LoginCode) -> StoreResult<()> {
        let attrs = LoginCodeItem {
            hash: code.hash.clone(),
            exp: code.expires_ms,
            attempts: 0,
            expires_at: items::ttl(code.expires_ms),
        };
        self.put(items::item(schema::login_code(&code.email), &attrs)?, None)
            .await?;
        Ok(())
    }

    async fn check_login_code(
        &self,
        email: &Email,
        hash: &str,
        now_ms: i64,
    ) -> StoreResult<CodeCheck> {
        let code_key = schema::login_code(email);
        let Some(item) = self.get(code_key.clone()).await? else {
            return Ok(CodeCheck::Missing);
        };
        let code: LoginCodeItem = items::read(item)?;
        if code.exp <= now_ms || code.attempts >= CODE_MAX_ATTEMPTS {
            return Ok(CodeCheck::Missing);
        }
        if code.hash == hash {
            // Conditional on the same code being there unused: two racing sign-ins cannot both use it.
            let used = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key(code_key)))
                .condition_expression("#h = :h AND attempts < :max")
                .expression_attribute_names("#h", "hash")
                .expression_attribute_values(":h", s(hash))
                .expression_attribute_values(":max", n(CODE_MAX_ATTEMPTS))
                .send()
                .await;
            return match used {
                Ok(_) => Ok(CodeCheck::Valid),
                Err(e) if is_condition_failed(&e) => Ok(CodeCheck::Missing),
                Err(e) => Err(err(e).into()),
            };
        }
        let counted = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(code_key)))
            .update_expression("ADD attempts :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        match counted {
            Ok(_) => Ok(CodeCheck::Wrong),
            Err(e) if is_condition_failed(&e) => Ok(CodeCheck::Missing),
            Err(e) => Err(err(e).into()),
        }
    }

    async fn hit_rate_limit(
        &self,
        bucket: &str,
        window_start_ms: i64,
        window_ms: i64,
        hits: u64,
    ) -> StoreResult<u64> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(schema::rate_limit(bucket, window_start_ms))))
            .update_expression("ADD hits :n SET #ttl = :ttl")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":n", n(hits))
            .expression_attribute_values(":ttl", ttl(window_start_ms + window_ms))
            // All of the (small) item: adding 0 to look updates nothing UpdatedNew would return.
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(err)?;
        Ok(out
            .attributes
            .map(items::read::<items::RateLimitItem>)
            .transpose()?
            .map_or(hits, |window| window.hits))
    }

    async fn create_session(&self, session: &Session) -> StoreResult<()> {
        let main = items::item(schema::session(&session.hash), &SessionItem::new(session))?;
        let index = items::item(
            schema::user_session(&session.user_id, &session.hash),
            &Expiring {
                expires_at: items::ttl(session.expires_ms),
            },
        )?;
        match self
            .transact(vec![
                Step::Put {
                    item: main,
                    cond: None,
                    values: vec![],
                },
                Step::Put {
                    item: index,
                    cond: None,
                    values: vec![],
                },
            ])
            .await?
        {
            None => Ok(()),
            Some(_) => Err(anyhow!("session write refused").into()),
        }
    }

    async fn session(&self, hash: &str) -> StoreResult<Option<Session>> {
        let Some(item) = self.get(schema::session(hash)).await? else {
            return Ok(None);
        };
        Ok(Some(items::read::<SessionItem>(item)?.into_session(hash)))
    }

    async fn delete_session(&self, hash: &str) -> StoreResult<()> {
        if let Some(session) = self.session(hash).await? {
            self.delete(schema::user_session(&session.user_id, hash), None)
                .await?;
        }
        self.delete(schema::session(hash), None).await?;
        Ok(())
    }

    async fn delete_user_sessions(&self, user: &UserId) -> StoreResult<usize> {
        let (pk, prefix) = schema::user_sessions(user);
        let listed = self.query_prefix(pk, prefix).await?;
        for item in &listed {
            let (_, sk) = items::key_of(item)?;
            if let schema::InUser::Session(hash) = schema::in_user(&sk) {
                self.delete(schema::session(hash), None).await?;
                self.delete(schema::user_session(user, hash), None).await?;
            }
        }
        Ok(listed.len())
    }

    async fn set_reports_opt_out(&self, user: &UserId, opt_out: bool) -> StoreResult<bool> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(schema::user(user))))
            .update_expression("SET nr = :nr")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":nr", Av::Bool(opt_out))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(err(e).into()),
        }
    }
}
