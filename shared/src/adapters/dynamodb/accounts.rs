//! People, sign-in, members, invitations, keys with limits, and the audit log on DynamoDB.
//! Limits and the last-owner rule are kept atomically with counters on the workspace item
//! (`keys`, `members`, `owners`) updated in the same transaction as the change they count.

use std::collections::HashMap;

use anyhow::anyhow;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue as Av, ConditionCheck, Delete, Put, ReturnValue, TransactWriteItem, Update,
};

use super::{DynamoStore, Item, TTL_ATTRIBUTE, err, get_n, get_s, is_condition_failed, n, s};
use crate::domain::access::Role;
use crate::domain::account::{
    CODE_MAX_ATTEMPTS, CodeCheck, Email, Invitation, LoginCode, Membership, Session, User,
};
use crate::domain::apikey::{ApiKey, KeyState};
use crate::domain::audit::{AUDIT_RETENTION_MS, AuditEntry};
use crate::domain::ids::{InvitationId, KeyId, UserId, WorkspaceId};
use crate::ports::{Refusal, StoreError, StoreResult, Workspace};

fn key(pk: String, sk: String) -> HashMap<String, Av> {
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

fn values(v: Vec<(&'static str, Av)>) -> Option<HashMap<String, Av>> {
    (!v.is_empty()).then(|| v.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// Every `#name` in the expressions, mapped to `name`: many attribute names here (keys, state,
/// role, hash, ...) are DynamoDB reserved words, and unused names are an error, so the map is
/// derived from the expressions themselves.
fn names<'a>(exprs: impl IntoIterator<Item = &'a str>) -> Option<HashMap<String, String>> {
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

    fn count_step(
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

    pub(super) async fn create_key_within(&self, k: &ApiKey, max_active: u32) -> StoreResult<()> {
        let listing = HashMap::from([
            ("pk".to_owned(), s(format!("WS#{}", k.workspace_id))),
            ("sk".to_owned(), s(format!("KEY#{}", k.id))),
            ("hash".to_owned(), s(&k.hash.0)),
        ]);
        let steps = vec![
            Self::count_step(
                &k.workspace_id,
                "ADD #keys :one",
                Some("attribute_exists(pk) AND #keys < :max"),
                vec![(":one", n(1)), (":max", n(max_active))],
            ),
            Step::Put {
                item: Self::key_item(k),
                cond: Some("attribute_not_exists(pk)".into()),
                values: vec![],
            },
            Step::Put {
                item: listing,
                cond: None,
                values: vec![],
            },
        ];
        match self.transact(steps).await? {
            None => Ok(()),
            Some(0) => Err(StoreError::Refused(Refusal::KeyLimit)),
            Some(_) => Err(StoreError::Conflict(format!("key {}", k.id))),
        }
    }

    async fn key_record(&self, ws: &WorkspaceId, key: &KeyId) -> anyhow::Result<Option<ApiKey>> {
        let Some(listing) = self.get(format!("WS#{ws}"), &format!("KEY#{key}")).await? else {
            return Ok(None);
        };
        let hash = get_s(&listing, "hash")?;
        match self.get(format!("KEY#{hash}"), "KEY").await? {
            Some(item) => Ok(Some(Self::key_from_item(&item)?)),
            None => Ok(None),
        }
    }

    pub(super) async fn set_key_state_within(
        &self,
        ws: &WorkspaceId,
        key: &KeyId,
        state: KeyState,
        max_active: u32,
    ) -> StoreResult<bool> {
        let Some(current) = self.key_record(ws, key).await? else {
            return Ok(false);
        };
        if current.state == state {
            return Ok(true);
        }
        let counter = match state {
            KeyState::Active => Self::count_step(
                ws,
                "ADD #keys :one",
                Some("#keys < :max"),
                vec![(":one", n(1)), (":max", n(max_active))],
            ),
            KeyState::Deactivated => {
                Self::count_step(ws, "ADD #keys :minus", None, vec![(":minus", n(-1))])
            }
        };
        let flip = Step::Update {
            pk: format!("KEY#{}", current.hash.0),
            sk: "KEY".into(),
            expr: "SET #state = :new".into(),
            cond: Some("#state = :old".into()),
            values: vec![
                (":new", s(state.as_str())),
                (":old", s(current.state.as_str())),
            ],
        };
        match self.transact(vec![counter, flip]).await? {
            None => Ok(true),
            Some(0) => Err(StoreError::Refused(Refusal::KeyLimit)),
            Some(_) => Err(anyhow!("key {key} changed state concurrently; try again").into()),
        }
    }

    pub(super) async fn delete_key_counted(
        &self,
        ws: &WorkspaceId,
        key: &KeyId,
    ) -> StoreResult<bool> {
        let Some(current) = self.key_record(ws, key).await? else {
            // The listing may outlive a half-deleted key: clean it up.
            self.delete(format!("WS#{ws}"), format!("KEY#{key}"), None)
                .await?;
            return Ok(false);
        };
        let mut steps = vec![
            // The auth item and the listing go together, so a deleted key is refused at once.
            Step::Delete {
                pk: format!("KEY#{}", current.hash.0),
                sk: "KEY".into(),
                cond: Some("#state = :s".into()),
                values: vec![(":s", s(current.state.as_str()))],
            },
            Step::Delete {
                pk: format!("WS#{ws}"),
                sk: format!("KEY#{key}"),
                cond: None,
                values: vec![],
            },
        ];
        if current.state == KeyState::Active {
            steps.push(Self::count_step(
                ws,
                "ADD #keys :minus",
                None,
                vec![(":minus", n(-1))],
            ));
        }
        match self.transact(steps).await? {
            None => Ok(true),
            Some(_) => Err(anyhow!("key {key} changed state concurrently; try again").into()),
        }
    }

    pub(super) async fn upsert_user_impl(&self, user: &User) -> StoreResult<User> {
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
                .user_by_email_impl(&user.email)
                .await?
                .ok_or_else(|| anyhow!("user {} vanished", user.email.as_str()).into()),
        }
    }

    pub(super) async fn user_impl(&self, id: &UserId) -> StoreResult<Option<User>> {
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

    pub(super) async fn user_by_email_impl(&self, email: &Email) -> StoreResult<Option<User>> {
        let Some(item) = self
            .get(format!("EMAIL#{}", email.as_str()), "EMAIL")
            .await?
        else {
            return Ok(None);
        };
        let id = UserId::parse(get_s(&item, "user")?).ok_or_else(|| anyhow!("bad user id"))?;
        self.user_impl(&id).await
    }

    pub(super) async fn put_login_code_impl(&self, code: &LoginCode) -> StoreResult<()> {
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

    pub(super) async fn check_login_code_impl(
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

    pub(super) async fn hit_rate_limit_impl(
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

    pub(super) async fn create_session_impl(&self, session: &Session) -> StoreResult<()> {
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

    pub(super) async fn session_impl(&self, hash: &str) -> StoreResult<Option<Session>> {
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

    pub(super) async fn delete_session_impl(&self, hash: &str) -> StoreResult<()> {
        if let Some(session) = self.session_impl(hash).await? {
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

    pub(super) async fn delete_user_sessions_impl(&self, user: &UserId) -> StoreResult<usize> {
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

    fn member_items(m: &Membership) -> (Item, Item) {
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

    fn member_from(item: &Item) -> anyhow::Result<Membership> {
        Ok(Membership {
            workspace_id: WorkspaceId::parse(get_s(item, "ws")?)
                .ok_or_else(|| anyhow!("bad workspace id"))?,
            user_id: UserId::parse(get_s(item, "user")?).ok_or_else(|| anyhow!("bad user id"))?,
            email: Email::parse(get_s(item, "email")?).map_err(|e| anyhow!(e))?,
            role: Role::parse(get_s(item, "role")?).ok_or_else(|| anyhow!("bad role"))?,
            since_ms: get_n(item, "since")?,
        })
    }

    pub(super) async fn add_member_impl(
        &self,
        m: &Membership,
        max_members: u32,
    ) -> StoreResult<()> {
        if self
            .member_impl(&m.workspace_id, &m.user_id)
            .await?
            .is_some()
        {
            self.set_role_impl(&m.workspace_id, &m.user_id, m.role)
                .await?;
            return Ok(());
        }
        let owner = i64::from(m.role == Role::Owner);
        let (main, reverse) = Self::member_items(m);
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

    pub(super) async fn member_impl(
        &self,
        ws: &WorkspaceId,
        user: &UserId,
    ) -> StoreResult<Option<Membership>> {
        Ok(self
            .get(format!("WS#{ws}"), &format!("MEMBER#{user}"))
            .await?
            .map(|i| Self::member_from(&i))
            .transpose()?)
    }

    /// The membership items under a partition (a workspace's members, or a user's memberships),
    /// oldest first.
    async fn memberships_under(&self, pk: String) -> StoreResult<Vec<Membership>> {
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

    pub(super) async fn members_impl(&self, ws: &WorkspaceId) -> StoreResult<Vec<Membership>> {
        self.memberships_under(format!("WS#{ws}")).await
    }

    pub(super) async fn memberships_impl(&self, user: &UserId) -> StoreResult<Vec<Membership>> {
        self.memberships_under(format!("USER#{user}")).await
    }

    pub(super) async fn set_role_impl(
        &self,
        ws: &WorkspaceId,
        user: &UserId,
        role: Role,
    ) -> StoreResult<bool> {
        let Some(current) = self.member_impl(ws, user).await? else {
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
        let role_step = |pk: String, sk: String| Step::Update {
            pk,
            sk,
            expr: "SET #role = :new".into(),
            cond: Some("attribute_exists(pk)".into()),
            values: vec![(":new", s(role.as_str()))],
        };
        let steps = vec![
            Self::count_step(ws, "ADD #owners :delta", cond, count_values),
            role_step(format!("WS#{ws}"), format!("MEMBER#{user}")),
            role_step(format!("USER#{user}"), format!("MEMBER#{ws}")),
        ];
        match self.transact(steps).await? {
            None => Ok(true),
            Some(0) => Err(StoreError::Refused(Refusal::LastOwner)),
            Some(_) => Ok(false),
        }
    }

    pub(super) async fn remove_member_impl(
        &self,
        ws: &WorkspaceId,
        user: &UserId,
    ) -> StoreResult<bool> {
        let Some(current) = self.member_impl(ws, user).await? else {
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
                pk: format!("WS#{ws}"),
                sk: format!("MEMBER#{user}"),
                cond: Some("attribute_exists(pk)".into()),
                values: vec![],
            },
            Step::Delete {
                pk: format!("USER#{user}"),
                sk: format!("MEMBER#{ws}"),
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

    pub(super) async fn create_invitation_impl(&self, inv: &Invitation) -> StoreResult<()> {
        let item = HashMap::from([
            ("pk".to_owned(), s(format!("WS#{}", inv.workspace_id))),
            ("sk".to_owned(), s(format!("INV#{}", inv.id))),
            ("email".to_owned(), s(inv.email.as_str())),
            ("role".to_owned(), s(inv.role.as_str())),
            ("by".to_owned(), s(inv.invited_by.as_str())),
            ("created".to_owned(), n(inv.created_ms)),
            ("exp".to_owned(), n(inv.expires_ms)),
            (TTL_ATTRIBUTE.to_owned(), ttl(inv.expires_ms)),
        ]);
        if self.put(item, Some("attribute_not_exists(pk)")).await? {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!("invitation {}", inv.id)))
        }
    }

    fn invitation_from(ws: &WorkspaceId, item: &Item) -> anyhow::Result<Invitation> {
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

    pub(super) async fn invitation_impl(
        &self,
        ws: &WorkspaceId,
        id: &InvitationId,
    ) -> StoreResult<Option<Invitation>> {
        Ok(self
            .get(format!("WS#{ws}"), &format!("INV#{id}"))
            .await?
            .map(|i| Self::invitation_from(ws, &i))
            .transpose()?)
    }

    pub(super) async fn invitations_impl(&self, ws: &WorkspaceId) -> StoreResult<Vec<Invitation>> {
        let items = self.query_prefix(format!("WS#{ws}"), "INV#").await?;
        let mut out = items
            .iter()
            .map(|i| Self::invitation_from(ws, i))
            .collect::<anyhow::Result<Vec<_>>>()?;
        out.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(out)
    }

    pub(super) async fn delete_invitation_impl(
        &self,
        ws: &WorkspaceId,
        id: &InvitationId,
    ) -> StoreResult<bool> {
        Ok(self
            .delete(
                format!("WS#{ws}"),
                format!("INV#{id}"),
                Some("attribute_exists(pk)"),
            )
            .await?)
    }

    pub(super) async fn append_audit_impl(&self, e: &AuditEntry) -> StoreResult<()> {
        let mut item = HashMap::from([
            ("pk".to_owned(), s(format!("W#{}#AUDIT", e.workspace_id))),
            ("sk".to_owned(), s(&e.id)),
            ("at".to_owned(), n(e.at_ms)),
            ("actor".to_owned(), s(&e.actor_id)),
            ("action".to_owned(), s(&e.action)),
            (TTL_ATTRIBUTE.to_owned(), ttl(e.at_ms + AUDIT_RETENTION_MS)),
        ]);
        for (name, value) in [
            ("actor_email", &e.actor_email),
            ("target", &e.target),
            ("ip", &e.ip),
        ] {
            if let Some(v) = value {
                item.insert(name.to_owned(), s(v));
            }
        }
        self.put(item, None).await?;
        Ok(())
    }

    pub(super) async fn audit_impl(
        &self,
        ws: &WorkspaceId,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<AuditEntry>> {
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .scan_index_forward(false)
            .expression_attribute_values(":pk", s(format!("W#{ws}#AUDIT")));
        q = match before {
            Some(b) => q
                .key_condition_expression("pk = :pk AND sk < :b")
                .expression_attribute_values(":b", s(b)),
            None => q.key_condition_expression("pk = :pk"),
        };
        // One page: a page of audit entries (at most 100 small items) fits in one response.
        let items: Vec<Item> = q
            .limit(limit.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(err)?
            .items
            .unwrap_or_default();
        let get_opt = |i: &Item, name: &str| get_s(i, name).ok().map(str::to_owned);
        items
            .iter()
            .map(|i| {
                Ok(AuditEntry {
                    id: get_s(i, "sk")?.to_owned(),
                    workspace_id: ws.clone(),
                    at_ms: get_n(i, "at")?,
                    actor_id: get_s(i, "actor")?.to_owned(),
                    actor_email: get_opt(i, "actor_email"),
                    action: get_s(i, "action")?.to_owned(),
                    target: get_opt(i, "target"),
                    ip: get_opt(i, "ip"),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(StoreError::from)
    }
}
