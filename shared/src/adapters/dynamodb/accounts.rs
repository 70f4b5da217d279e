//! People, sign-in, members, invitations, keys with limits, and the audit log on DynamoDB.
//! Limits and the last-owner rule are kept atomically with counters on the workspace item
//! (`keys`, `members`, `owners`) updated in the same transaction as the change they count.

use super::*;
use crate::domain::access::Role;
use crate::domain::account::CODE_MAX_ATTEMPTS;
use crate::domain::account::CodeCheck;
use crate::domain::account::Email;
use crate::domain::account::Invitation;
use crate::domain::account::LoginCode;
use crate::domain::account::Membership;
use crate::domain::account::Session;
use crate::domain::account::User;
use crate::domain::apikey::ApiKey;
use crate::domain::ids::InvitationId;
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

pub(super) fn key(pk: String, sk: String) -> HashMap<String, Av> {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

pub(super) fn ttl(ms: i64) -> Av {
    n(ms.div_euclid(1000))
}

/// One step of a transaction.
pub(super) enum Step {
    Update {
        pk: String,
        sk: String,
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
        pk: String,
        sk: String,
        cond: Option<String>,
        values: Vec<(&'static str, Av)>,
    },
    /// A condition on an item the transaction does not change.
    Check {
        pk: String,
        sk: String,
        cond: String,
    },
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
                    pk,
                    sk,
                    expr,
                    cond,
                    values: v,
                } => TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.table)
                            .set_key(Some(key(pk, sk)))
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
                    pk,
                    sk,
                    cond,
                    values: v,
                } => TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(&self.table)
                            .set_key(Some(key(pk, sk)))
                            .set_expression_attribute_names(names(cond.as_deref()))
                            .set_condition_expression(cond)
                            .set_expression_attribute_values(values(v))
                            .build()?,
                    )
                    .build(),
                Step::Check { pk, sk, cond } => TransactWriteItem::builder()
                    .condition_check(
                        ConditionCheck::builder()
                            .table_name(&self.table)
                            .set_key(Some(key(pk, sk)))
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
            .key("pk", s(format!("WS#{}", ws.id)))
            .key("sk", s("WS"))
            .update_expression("SET #n = :n, tz = :tz")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#n", "name")
            .expression_attribute_values(":n", s(&ws.name))
            .expression_attribute_values(":tz", s(&ws.timezone))
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
            pk: format!("WS#{ws}"),
            sk: "WS".into(),
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
        let Some(listing) = self.get(format!("WS#{ws}"), &format!("KEY#{key}")).await? else {
            return Ok(None);
        };
        let hash = get_s(&listing, "hash")?;
        match self.get(format!("KEY#{hash}"), "KEY").await? {
            Some(item) => Ok(Some(Self::key_from_item(&item)?)),
            None => Ok(None),
        }
    }

    pub(super) fn member_items(m: &Membership) -> (Item, Item) {
        let fields = |pk: String, sk: String| {
            HashMap::from([
                ("pk".to_owned(), s(pk)),
                ("sk".to_owned(), s(sk)),
                ("ws".to_owned(), s(m.workspace_id.as_str())),
                ("user".to_owned(), s(m.user_id.as_str())),
                ("email".to_owned(), s(m.email.as_str())),
                ("role".to_owned(), s(m.role.as_str())),
                ("since".to_owned(), n(m.since_ms)),
            ])
        };
        (
            fields(
                format!("WS#{}", m.workspace_id),
                format!("MEMBER#{}", m.user_id),
            ),
            fields(
                format!("USER#{}", m.user_id),
                format!("MEMBER#{}", m.workspace_id),
            ),
        )
    }

    pub(super) fn member_from(item: &Item) -> anyhow::Result<Membership> {
        Ok(Membership {
            workspace_id: WorkspaceId::parse(get_s(item, "ws")?)
                .ok_or_else(|| anyhow!("bad workspace id"))?,
            user_id: UserId::parse(get_s(item, "user")?).ok_or_else(|| anyhow!("bad user id"))?,
            email: Email::parse(get_s(item, "email")?).map_err(|e| anyhow!(e))?,
            role: Role::parse(get_s(item, "role")?).ok_or_else(|| anyhow!("bad role"))?,
            since_ms: get_n(item, "since")?,
        })
    }

    /// The membership items under a partition (a workspace's members, or a user's memberships),
    /// oldest first.
    pub(super) async fn memberships_under(&self, pk: String) -> StoreResult<Vec<Membership>> {
        let items = self.query_prefix(pk, "MEMBER#").await?;
        let mut out = items
            .iter()
            .map(Self::member_from)
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

    pub(super) fn invitation_from(ws: &WorkspaceId, item: &Item) -> anyhow::Result<Invitation> {
        let sk = get_s(item, "sk")?;
        Ok(Invitation {
            id: InvitationId::parse(sk.trim_start_matches("INV#"))
                .ok_or_else(|| anyhow!("bad invitation id"))?,
            workspace_id: ws.clone(),
            email: Email::parse(get_s(item, "email")?).map_err(|e| anyhow!(e))?,
            role: Role::parse(get_s(item, "role")?).ok_or_else(|| anyhow!("bad role"))?,
            invited_by: UserId::parse(get_s(item, "by")?).ok_or_else(|| anyhow!("bad user id"))?,
            created_ms: get_n(item, "created")?,
            expires_ms: get_n(item, "exp")?,
        })
    }
}

#[async_trait]
impl Accounts for DynamoStore {
    async fn upsert_user(&self, user: &User) -> StoreResult<User> {
        let steps = vec![
            Step::Put {
                item: HashMap::from([
                    ("pk".to_owned(), s(format!("EMAIL#{}", user.email.as_str()))),
                    ("sk".to_owned(), s("EMAIL")),
                    ("user".to_owned(), s(user.id.as_str())),
                ]),
                cond: Some("attribute_not_exists(pk)".into()),
                values: vec![],
            },
            Step::Put {
                item: HashMap::from([
                    ("pk".to_owned(), s(format!("USER#{}", user.id))),
                    ("sk".to_owned(), s("USER")),
                    ("email".to_owned(), s(user.email.as_str())),
                    ("created".to_owned(), n(user.created_ms)),
                ]),
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
        let Some(item) = self.get(format!("USER#{id}"), "USER").await? else {
            return Ok(None);
        };
        Ok(Some(User {
            id: id.clone(),
            email: Email::parse(get_s(&item, "email")?).map_err(|e| anyhow!(e))?,
            created_ms: get_n(&item, "created")?,
            reports_opt_out: matches!(item.get("nr"), Some(Av::Bool(true))),
        }))
    }

    async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        let Some(item) = self
            .get(format!("EMAIL#{}", email.as_str()), "EMAIL")
            .await?
        else {
            return Ok(None);
        };
        let id = UserId::parse(get_s(&item, "user")?).ok_or_else(|| anyhow!("bad user id"))?;
        self.user(&id).await
    }

    async fn put_login_code(&self, code: &LoginCode) -> StoreResult<()> {
        let item = HashMap::from([
            ("pk".to_owned(), s(format!("CODE#{}", code.email.as_str()))),
            ("sk".to_owned(), s("CODE")),
            ("hash".to_owned(), s(&code.hash)),
            ("exp".to_owned(), n(code.expires_ms)),
            ("attempts".to_owned(), n(0)),
            (TTL_ATTRIBUTE.to_owned(), ttl(code.expires_ms)),
        ]);
        self.put(item, None).await?;
        Ok(())
    }

    async fn check_login_code(
        &self,
        email: &Email,
        hash: &str,
        now_ms: i64,
    ) -> StoreResult<CodeCheck> {
        let pk = format!("CODE#{}", email.as_str());
        let Some(item) = self.get(pk.clone(), "CODE").await? else {
            return Ok(CodeCheck::Missing);
        };
        let expires: i64 = get_n(&item, "exp")?;
        let attempts: u32 = get_n(&item, "attempts")?;
        if expires <= now_ms || attempts >= CODE_MAX_ATTEMPTS {
            return Ok(CodeCheck::Missing);
        }
        if get_s(&item, "hash")? == hash {
            // Conditional on the same code being there unused: two racing sign-ins cannot both use it.
            let used = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(pk))
                .key("sk", s("CODE"))
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
            .key("pk", s(pk))
            .key("sk", s("CODE"))
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
            .key("pk", s(format!("RL#{bucket}")))
            .key("sk", s(window_start_ms.to_string()))
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
            .as_ref()
            .map(|a| get_n::<u64>(a, "hits"))
            .transpose()?
            .unwrap_or(hits))
    }

    async fn create_session(&self, session: &Session) -> StoreResult<()> {
        let main = HashMap::from([
            ("pk".to_owned(), s(format!("SESS#{}", session.hash))),
            ("sk".to_owned(), s("SESS")),
            ("user".to_owned(), s(session.user_id.as_str())),
            ("created".to_owned(), n(session.created_ms)),
            ("exp".to_owned(), n(session.expires_ms)),
            (TTL_ATTRIBUTE.to_owned(), ttl(session.expires_ms)),
        ]);
        let index = HashMap::from([
            ("pk".to_owned(), s(format!("USER#{}", session.user_id))),
            ("sk".to_owned(), s(format!("SESS#{}", session.hash))),
            (TTL_ATTRIBUTE.to_owned(), ttl(session.expires_ms)),
        ]);
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
        let Some(item) = self.get(format!("SESS#{hash}"), "SESS").await? else {
            return Ok(None);
        };
        Ok(Some(Session {
            hash: hash.to_owned(),
            user_id: UserId::parse(get_s(&item, "user")?).ok_or_else(|| anyhow!("bad user id"))?,
            created_ms: get_n(&item, "created")?,
            expires_ms: get_n(&item, "exp")?,
        }))
    }

    async fn delete_session(&self, hash: &str) -> StoreResult<()> {
        if let Some(session) = self.session(hash).await? {
            self.delete(
                format!("USER#{}", session.user_id),
                format!("SESS#{hash}"),
                None,
            )
            .await?;
        }
        self.delete(format!("SESS#{hash}"), "SESS".into(), None)
            .await?;
        Ok(())
    }

    async fn delete_user_sessions(&self, user: &UserId) -> StoreResult<usize> {
        let items = self.query_prefix(format!("USER#{user}"), "SESS#").await?;
        for item in &items {
            let sk = get_s(item, "sk")?;
            self.delete(format!("SESS#{}", &sk[5..]), "SESS".into(), None)
                .await?;
            self.delete(format!("USER#{user}"), sk.to_owned(), None)
                .await?;
        }
        Ok(items.len())
    }

    async fn set_reports_opt_out(&self, user: &UserId, opt_out: bool) -> StoreResult<bool> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("USER#{user}")))
            .key("sk", s("USER"))
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
