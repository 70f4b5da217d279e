//! Use cases the HTTP handlers and the command line (`llmtrack admin`) share. Each makes one
//! change through the ports and writes it to the workspace's audit log, the same way whoever
//! asks; input is parsed at the edges (a handler's 400, the command line's `error:`), and a
//! store refusal comes back as such for each edge to word.

use crate::domain::access::Role;
use crate::domain::account::{Email, Membership, User};
use crate::domain::apikey::{ApiKey, KeyState, RawKey, Scope};
use crate::domain::audit::AuditEntry;
use crate::domain::ids::{UserId, WorkspaceId};
use crate::domain::plan::Plan;
use crate::domain::pricing::custom::{MAX_RULES, PriceRule, RuleError};
use crate::ports::{
    Accounts, AuditLog, Job, Jobs, Keys, Members, StoreError, StoreResult, Workspace, Workspaces,
};
use crate::retention_job;

/// Who made a change, as the audit log records them.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub id: &'a str,
    pub email: Option<&'a str>,
    pub ip: Option<&'a str>,
}

impl<'a> Actor<'a> {
    /// An operator at the command line.
    pub const CLI: Actor<'static> = Actor {
        id: "cli",
        email: None,
        ip: None,
    };

    /// A signed-in person, from an address.
    pub fn person(user: &'a User, ip: Option<&'a str>) -> Actor<'a> {
        Actor {
            id: user.id.as_str(),
            email: Some(user.email.as_str()),
            ip,
        }
    }

    /// A system acting on its own (`billing`: Stripe's events).
    pub fn system(id: &'a str) -> Actor<'a> {
        Actor {
            id,
            email: None,
            ip: None,
        }
    }

    pub async fn record(
        &self,
        log: &dyn AuditLog,
        ws: &WorkspaceId,
        now_ms: i64,
        action: &str,
        target: Option<String>,
    ) {
        let entry = AuditEntry::new(ws, now_ms, self.id, self.email, action, target, self.ip);
        // The change it records has already happened: a line that cannot be written is logged
        // as an error, not turned into the request's failure.
        if let Err(e) = log.append_audit(&entry).await {
            tracing::error!(workspace = %ws, action, error = %e, "could not write the audit log");
        }
    }
}

/// A workspace to create: name and timezone already checked.
pub struct NewWorkspace {
    pub name: String,
    pub timezone: String,
    pub plan: Plan,
    /// Its first owner, if any (the signed-in creator; `--owner` at the command line).
    pub owner: Option<User>,
}

/// Creates a workspace and, with an owner, their membership (outside the plan's member
/// limit: a workspace always has room for its creator).
pub async fn create_workspace(
    workspaces: &dyn Workspaces,
    members: &dyn Members,
    audit: &dyn AuditLog,
    new: NewWorkspace,
    by: Actor<'_>,
    now_ms: i64,
) -> StoreResult<Workspace> {
    let ws = Workspace {
        id: WorkspaceId::generate(now_ms),
        name: new.name,
        plan: new.plan,
        timezone: new.timezone,
        created_ms: now_ms,
        deleting: None,
        prices: Default::default(),
        budgets: Default::default(),
        digest: Default::default(),
        tags: Default::default(),
        spans: Default::default(),
    };
    workspaces.create_workspace(&ws).await?;
    if let Some(owner) = new.owner {
        let m = Membership {
            workspace_id: ws.id.clone(),
            user_id: owner.id,
            email: owner.email,
            role: Role::Owner,
            since_ms: now_ms,
        };
        members.add_member(&m, u32::MAX).await?;
    }
    by.record(
        audit,
        &ws.id,
        now_ms,
        "workspace.created",
        Some(ws.name.clone()),
    )
    .await;
    Ok(ws)
}

/// Issues a key within the plan's limit of active keys; returns it with its raw value, which
/// exists only here and in the one answer that shows it.
#[allow(clippy::too_many_arguments)]
pub async fn create_key(
    keys: &dyn Keys,
    audit: &dyn AuditLog,
    ws: &Workspace,
    name: String,
    source: String,
    scope: Scope,
    by: Actor<'_>,
    now_ms: i64,
) -> StoreResult<(ApiKey, RawKey)> {
    let (key, raw) = ApiKey::issue(
        ws.id.clone(),
        name,
        source,
        scope,
        now_ms,
        by.email.map(str::to_owned),
    );
    keys.create_key(&key, ws.plan.limits().active_keys).await?;
    by.record(audit, &ws.id, now_ms, "key.created", Some(key_target(&key)))
        .await;
    Ok((key, raw))
}

/// Pauses a key (ingest with it is refused from the next request on) or resumes it, within
/// the plan's limit of active keys. False, recording nothing, when the key is not in `ws`.
pub async fn set_key_state(
    keys: &dyn Keys,
    audit: &dyn AuditLog,
    ws: &Workspace,
    key: &ApiKey,
    state: KeyState,
    by: Actor<'_>,
    now_ms: i64,
) -> StoreResult<bool> {
    let changed = keys
        .set_key_state(&ws.id, &key.id, state, ws.plan.limits().active_keys)
        .await?;
    if changed {
        let action = match state {
            KeyState::Active => "key.reactivated",
            KeyState::Deactivated => "key.deactivated",
        };
        by.record(audit, &ws.id, now_ms, action, Some(key_target(key)))
            .await;
    }
    Ok(changed)
}

/// How the audit log names a key.
pub fn key_target(key: &ApiKey) -> String {
    format!("{} ({})", key.id, key.name)
}

/// Adds a person (creating their account if needed) to a workspace with a role, within the
/// plan's member limit; an existing member gets the new role.
#[allow(clippy::too_many_arguments)]
pub async fn add_member(
    accounts: &dyn Accounts,
    members: &dyn Members,
    audit: &dyn AuditLog,
    ws: &Workspace,
    email: Email,
    role: Role,
    by: Actor<'_>,
    now_ms: i64,
) -> StoreResult<Membership> {
    let user = accounts
        .upsert_user(&User {
            id: UserId::generate(now_ms),
            email,
            created_ms: now_ms,
            reports_opt_out: false,
        })
        .await?;
    let m = Membership {
        workspace_id: ws.id.clone(),
        user_id: user.id,
        email: user.email,
        role,
        since_ms: now_ms,
    };
    members.add_member(&m, ws.plan.limits().members).await?;
    by.record(
        audit,
        &ws.id,
        now_ms,
        "member.added",
        Some(format!("{} as {}", m.email.as_str(), role.as_str())),
    )
    .await;
    Ok(m)
}

/// What follows a change of plan, whoever made it (Stripe's webhook, the sweep, an operator):
/// the audit line, and the retention pass that makes stored history follow the new window,
/// queued and returned for the caller to run where it runs jobs. Nothing when the plan is
/// unchanged.
pub async fn plan_changed(
    jobs: &dyn Jobs,
    audit: &dyn AuditLog,
    ws: &WorkspaceId,
    from: Plan,
    to: Plan,
    by: Actor<'_>,
    now_ms: i64,
) -> anyhow::Result<Option<Job>> {
    if from == to {
        return Ok(None);
    }
    by.record(
        audit,
        ws,
        now_ms,
        "workspace.plan_changed",
        Some(format!("{} -> {}", from.as_str(), to.as_str())),
    )
    .await;
    Ok(Some(
        retention_job::start(jobs, ws, from, to, now_ms).await?,
    ))
}

/// One change to a workspace's price rules.
pub enum PriceChange {
    /// A new rule (its id is made here).
    Add(PriceRule),
    /// A rule replaced, keeping its id.
    Replace(PriceRule),
    Remove(String),
}

#[derive(Debug, thiserror::Error)]
pub enum PriceChangeError {
    #[error("no such workspace")]
    NoWorkspace,
    #[error("no price rule `{0}` in this workspace")]
    NoRule(String),
    #[error("a workspace has at most {MAX_RULES} price rules; remove one first")]
    TooMany,
    #[error("{}", .0.message)]
    Invalid(RuleError),
    #[error("the workspace's prices changed five times while this change was made; try again")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Applies a change to a workspace's price rules and audits it; the rule as stored (or as it
/// was, for a removal). Of two changes at once, the second is made again on the first's result, so neither
/// is lost.
pub async fn change_prices(
    workspaces: &dyn Workspaces,
    audit: &dyn AuditLog,
    ws: &WorkspaceId,
    change: PriceChange,
    by: Actor<'_>,
    now_ms: i64,
) -> Result<PriceRule, PriceChangeError> {
    let stamp = |mut r: PriceRule, id: String| -> Result<PriceRule, PriceChangeError> {
        r.id = id;
        r.updated_at = crate::domain::time::rfc3339(now_ms);
        r.checked().map_err(PriceChangeError::Invalid)
    };
    let change = match change {
        PriceChange::Add(r) => {
            PriceChange::Add(stamp(r, crate::domain::ids::prefixed("pr", now_ms))?)
        }
        PriceChange::Replace(r) => {
            let id = r.id.clone();
            PriceChange::Replace(stamp(r, id)?)
        }
        remove => remove,
    };
    for _ in 0..5 {
        let mut prices = workspaces
            .workspace(ws)
            .await?
            .ok_or(PriceChangeError::NoWorkspace)?
            .prices;
        let position = |id: &str| {
            prices
                .rules
                .iter()
                .position(|x| x.id == id)
                .ok_or_else(|| PriceChangeError::NoRule(id.to_owned()))
        };
        let (action, rule) = match &change {
            PriceChange::Add(r) => {
                if prices.rules.len() >= MAX_RULES {
                    return Err(PriceChangeError::TooMany);
                }
                prices.rules.push(r.clone());
                ("price.created", r.clone())
            }
            PriceChange::Replace(r) => {
                let i = position(&r.id)?;
                prices.rules[i] = r.clone();
                ("price.updated", r.clone())
            }
            PriceChange::Remove(id) => {
                let i = position(id)?;
                ("price.deleted", prices.rules.remove(i))
            }
        };
        prices.version += 1;
        if workspaces.set_prices(ws, &prices).await? {
            by.record(audit, ws, now_ms, action, Some(rule.summary()))
                .await;
            return Ok(rule);
        }
    }
    Err(PriceChangeError::Busy)
}

/// The reconciliation of a workspace's imported bills with its events over the UTC days
/// `[from, to)`: read by the stats route, the alert evaluator and the command line alike.
pub async fn reconciliation(
    events: &dyn crate::ports::Events,
    connections: &dyn crate::ports::Connections,
    ws: &WorkspaceId,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> StoreResult<crate::domain::reconciliation::compare::Reconciliation> {
    use crate::domain::reconciliation::compare::{Tracked, reconcile};
    use crate::domain::rollup::{Dimension, View};
    use crate::domain::time::HOUR_MS;

    let days: Vec<String> = from
        .iter_days()
        .take_while(|d| *d < to)
        .map(|d| d.to_string())
        .collect();
    let (first, end) = (from.to_string(), to.to_string());
    let billed = connections.billed_rows(ws, &first, &end).await?;
    let hour = |d: chrono::NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp_millis() / HOUR_MS)
    };
    let rollups = events
        .rollups(ws, &View::of(Dimension::Model), hour(from), hour(to))
        .await?;
    // Hourly rollups summed into UTC days, per model as LLMtrack names it.
    let mut by_day: std::collections::BTreeMap<(String, String), Tracked> = Default::default();
    for (key, r) in &rollups {
        let day = crate::domain::time::to_datetime(key.hour * HOUR_MS)
            .date_naive()
            .to_string();
        by_day
            .entry((day, key.value.clone()))
            .or_default()
            .add(&Tracked::of(r));
    }
    let tracked: Vec<(String, String, Tracked)> = by_day
        .into_iter()
        .map(|((day, model), t)| (day, model, t))
        .collect();
    Ok(reconcile(
        &billed,
        &tracked,
        &days,
        crate::domain::pricing::PriceTable::bundled(),
    ))
}

/// One change to a workspace's budgets.
pub enum BudgetChange {
    /// A new budget (its id and times are made here).
    Add(crate::domain::budget::Budget),
    /// A budget replaced, keeping its id and when it was made.
    Replace(crate::domain::budget::Budget),
    Remove(String),
}

#[derive(Debug, thiserror::Error)]
pub enum BudgetChangeError {
    #[error("{}", .0.message)]
    Invalid(crate::domain::alert::Invalid),
    #[error("no such workspace")]
    NoWorkspace,
    #[error("no budget `{0}` in this workspace")]
    NoBudget(String),
    #[error(
        "a workspace has at most {} budgets; remove one first",
        crate::domain::budget::MAX_BUDGETS
    )]
    TooMany,
    #[error("the workspace's budgets changed five times while this change was made; try again")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Applies a change to a workspace's budgets and audits it (`budget.created`, `budget.updated`,
/// `budget.deleted`); the budget as stored (or as it was, for a removal). Of two changes at
/// once, the second is made again on the first's result, so neither is lost.
pub async fn change_budgets(
    workspaces: &dyn Workspaces,
    audit: &dyn AuditLog,
    ws: &WorkspaceId,
    change: BudgetChange,
    by: Actor<'_>,
    now_ms: i64,
) -> Result<crate::domain::budget::Budget, BudgetChangeError> {
    use crate::domain::budget::{Budget, MAX_BUDGETS};
    let stamp = |mut b: Budget, id: String| -> Result<Budget, BudgetChangeError> {
        b.id = id;
        b.created_at = crate::domain::time::rfc3339(now_ms);
        b.updated_at = b.created_at.clone();
        b.checked().map_err(BudgetChangeError::Invalid)
    };
    let change = match change {
        BudgetChange::Add(b) => {
            BudgetChange::Add(stamp(b, crate::domain::ids::prefixed("bdg", now_ms))?)
        }
        BudgetChange::Replace(b) => {
            let id = b.id.clone();
            BudgetChange::Replace(stamp(b, id)?)
        }
        remove => remove,
    };
    for _ in 0..5 {
        let mut budgets = workspaces
            .workspace(ws)
            .await?
            .ok_or(BudgetChangeError::NoWorkspace)?
            .budgets;
        let position = |id: &str| {
            budgets
                .items
                .iter()
                .position(|x| x.id == id)
                .ok_or_else(|| BudgetChangeError::NoBudget(id.to_owned()))
        };
        let (action, budget) = match &change {
            BudgetChange::Add(b) => {
                if budgets.items.len() >= MAX_BUDGETS {
                    return Err(BudgetChangeError::TooMany);
                }
                budgets.items.push(b.clone());
                ("budget.created", b.clone())
            }
            BudgetChange::Replace(b) => {
                let i = position(&b.id)?;
                let b = Budget {
                    created_at: budgets.items[i].created_at.clone(),
                    ..b.clone()
                };
                budgets.items[i] = b.clone();
                ("budget.updated", b)
            }
            BudgetChange::Remove(id) => {
                let i = position(id)?;
                ("budget.deleted", budgets.items.remove(i))
            }
        };
        budgets.version += 1;
        if workspaces.set_budgets(ws, &budgets).await? {
            by.record(audit, ws, now_ms, action, Some(budget.summary()))
                .await;
            return Ok(budget);
        }
    }
    Err(BudgetChangeError::Busy)
}

/// What a budget's scope (the whole workspace when it has none) cost in USD over `bounds`
/// (`[start, end)` epoch ms, as `domain::budget::period_bounds` gives), from the hourly rollups
/// of every hour the bounds touch: the rows of the scope's value in the view of its dimension
/// (`Events::value_rollups`: on SQLite one row an hour, not every end-user's), as the alert
/// evaluator measures a rule's slice. A model scope is matched by its canonical id,
/// which is what the `model` view groups by.
pub async fn budget_spent(
    events: &dyn crate::ports::Events,
    ws: &WorkspaceId,
    b: &crate::domain::budget::Budget,
    bounds: (i64, i64),
) -> StoreResult<f64> {
    use crate::domain::rollup::{Dimension, View};
    use crate::domain::time::hour_of;

    let (start, end) = bounds;
    if end <= start {
        return Ok(0.0);
    }
    let scope = b.scope.as_ref();
    let view = View::of(scope.map_or(Dimension::Total, |f| f.dimension));
    let value = scope.map(|f| match f.dimension {
        Dimension::Model => crate::domain::budget::canonical_model(&f.value),
        _ => f.value.clone(),
    });
    let (from_hour, to_hour) = (hour_of(start), hour_of(end - 1) + 1);
    let rows = match &value {
        None => events.rollups(ws, &view, from_hour, to_hour).await?,
        Some(v) => {
            events
                .value_rollups(ws, &view, v, from_hour, to_hour)
                .await?
        }
    };
    Ok(rows.iter().map(|(_, r)| r.cost_pico).sum::<i128>() as f64 / 1e12)
}

/// Turns `user`'s weekly digest of workspace `ws` on or off (`Workspace.digest`); retried when
/// another change came first. False when the workspace does not exist. What the digest route, a
/// member's removal and an account's deletion share.
pub async fn set_digest(
    workspaces: &dyn Workspaces,
    ws: &WorkspaceId,
    user: &UserId,
    on: bool,
) -> StoreResult<bool> {
    for _ in 0..5 {
        let Some(w) = workspaces.workspace(ws).await? else {
            return Ok(false);
        };
        let Some(next) = w.digest.with(user, on) else {
            return Ok(true);
        };
        if workspaces.set_digest(ws, &next).await? {
            return Ok(true);
        }
    }
    Err(StoreError::Unexpected(anyhow::anyhow!(
        "the weekly digest's subscribers of {ws} changed five times while this change was made; try again"
    )))
}

#[derive(Debug, thiserror::Error)]
pub enum TagChangeError {
    #[error("no such workspace")]
    NoWorkspace,
    #[error(transparent)]
    Invalid(#[from] crate::domain::tags::InvalidTags),
    #[error("the tag keys changed five times while this change was being made; try again")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Declares exactly `keys` as the workspace's cost-allocation tag keys (`domain::tags`) and
/// audits the change (`tags.changed`); the keys as stored. Retried on the latest keys when ingest
/// admitted a value meanwhile, so neither change is lost.
pub async fn declare_tags(
    workspaces: &dyn Workspaces,
    audit: &dyn AuditLog,
    ws: &WorkspaceId,
    keys: &[String],
    by: Actor<'_>,
    now_ms: i64,
) -> Result<crate::domain::tags::TagKeys, TagChangeError> {
    for _ in 0..5 {
        let current = workspaces
            .workspace(ws)
            .await?
            .ok_or(TagChangeError::NoWorkspace)?
            .tags;
        let Some(next) = current.declare(keys, now_ms)? else {
            return Ok(current);
        };
        if workspaces.set_tags(ws, &next).await? {
            by.record(audit, ws, now_ms, "tags.changed", Some(keys.join(", ")))
                .await;
            return Ok(next);
        }
    }
    Err(TagChangeError::Busy)
}

/// Sets the tags of events about to be stored: keys' values already kept as they are, new ones
/// first admitted on the workspace record (a conditional write, retried on the latest keys, so
/// concurrent ingests keep the same first [`MAX_TAG_VALUES`] values), the rest as
/// `tags::OTHER`. Costs a write only for a request that brings a value never seen.
///
/// [`MAX_TAG_VALUES`]: crate::domain::tags::MAX_TAG_VALUES
pub async fn tag_events(
    workspaces: &dyn Workspaces,
    ws: &WorkspaceId,
    keys: &crate::domain::tags::TagKeys,
    events: &mut [crate::domain::event::Event],
) -> StoreResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut keys = std::borrow::Cow::Borrowed(keys);
    let unseen = keys.unseen(events);
    if !unseen.is_empty() {
        for _ in 0..5 {
            let Some(next) = keys.admit(&unseen) else {
                break;
            };
            if workspaces.set_tags(ws, &next).await? {
                keys = std::borrow::Cow::Owned(next);
                break;
            }
            match workspaces.workspace(ws).await? {
                Some(w) => keys = std::borrow::Cow::Owned(w.tags),
                None => break,
            }
        }
    }
    keys.assign(events);
    Ok(())
}

/// Drops from the workspace's tag keys the values no event left in its history carries, after a
/// deletion of usage data: the kept values are derived from the events, and go with them (and
/// free room for new ones). A key's `overflowed` mark goes when nothing counts under `(other)`.
pub async fn prune_tag_values(
    workspaces: &dyn Workspaces,
    events: &dyn crate::ports::Events,
    ws: &WorkspaceId,
    now_ms: i64,
) -> StoreResult<()> {
    use crate::domain::rollup::View;
    use crate::domain::tags::OTHER;
    use crate::domain::time::hour_of;
    for _ in 0..5 {
        let Some(w) = workspaces.workspace(ws).await? else {
            return Ok(());
        };
        if w.tags.is_empty() {
            return Ok(());
        }
        // What the plan shows: older rollups are not shown, and the events are gone.
        let first = hour_of(now_ms - w.plan.history_ms());
        let mut next = w.tags.clone();
        for k in &mut next.keys {
            let rows = events
                .rollups(
                    ws,
                    &View::of(k.dimension()),
                    first.max(k.since_hour),
                    hour_of(now_ms) + 1,
                )
                .await?;
            let present: std::collections::HashSet<String> = rows
                .into_iter()
                .filter(|(_, r)| r.requests > 0)
                .map(|(key, _)| key.value)
                .collect();
            k.values.retain(|v| present.contains(v));
            k.overflowed &= present.contains(OTHER);
        }
        if next.keys == w.tags.keys {
            return Ok(());
        }
        next.version += 1;
        if workspaces.set_tags(ws, &next).await? {
            return Ok(());
        }
    }
    Err(StoreError::Unexpected(anyhow::anyhow!(
        "the tag keys of {ws} changed five times while their values were pruned"
    )))
}
