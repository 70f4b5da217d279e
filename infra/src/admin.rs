//! Operator commands that work on the store directly (self-hosters, scripts, the README's example).
//! Each change is written to the workspace's audit log with the actor `cli`.

use anyhow::{Context as _, anyhow};
use llmtrack_deletion::repricing::{self, RepricingView};
use llmtrack_shared::domain::access::Role;
use llmtrack_shared::domain::account::{Email, Membership, User};
use llmtrack_shared::domain::apikey::{ApiKey, KeyState, RawKey, Scope};
use llmtrack_shared::domain::ids::{KeyId, UserId, WorkspaceId};
use llmtrack_shared::domain::names;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::pricing::custom::{PriceRule, WorkspacePrices};
use llmtrack_shared::domain::repricing::RepricingRequest;
use llmtrack_shared::ports::{
    DynClock, DynStore, Job, Refusal, Store, StoreError, SystemClock, Workspace, all_workspace_ids,
};
use llmtrack_shared::retention_job::{self, RetentionPorts};
use llmtrack_shared::usecases::{self, Actor, NewWorkspace, PriceChange, PriceChangeError};

async fn workspace(store: &dyn Store, id: &str) -> anyhow::Result<Workspace> {
    let ws = WorkspaceId::parse(id)
        .ok_or_else(|| anyhow!("`{id}` is not a workspace id (they look like ws_…)"))?;
    store
        .workspace(&ws)
        .await?
        .ok_or_else(|| anyhow!("workspace {ws} does not exist"))
}

/// Creates a workspace with no member yet.
pub async fn create_workspace(
    store: &dyn Store,
    name: &str,
    plan: Plan,
    now_ms: i64,
) -> anyhow::Result<Workspace> {
    create_owned_workspace(store, name, plan, None, now_ms).await
}

/// Creates a workspace; with `owner`, that person (their account made if needed) is its owner,
/// so they see it when they sign in.
pub async fn create_owned_workspace(
    store: &dyn Store,
    name: &str,
    plan: Plan,
    owner: Option<&str>,
    now_ms: i64,
) -> anyhow::Result<Workspace> {
    let name = names::display_name("name", name).map_err(|e| anyhow!(e))?;
    let owner = match owner {
        Some(email) => {
            let email = Email::parse(email).map_err(|e| anyhow!("--owner: {e}"))?;
            let user = User {
                id: UserId::generate(now_ms),
                email,
                created_ms: now_ms,
                reports_opt_out: false,
            };
            Some(store.upsert_user(&user).await?)
        }
        None => None,
    };
    let new = NewWorkspace {
        name,
        timezone: "UTC".into(),
        plan,
        owner,
    };
    usecases::create_workspace(store, store, store, new, Actor::CLI, now_ms)
        .await
        .context("creating the workspace")
}

/// Makes a key and returns it with its raw value, which exists only here.
pub async fn create_key(
    store: &dyn Store,
    workspace_id: &str,
    name: &str,
    source: &str,
    scope: Scope,
    now_ms: i64,
) -> anyhow::Result<(ApiKey, RawKey)> {
    let ws = workspace(store, workspace_id).await?;
    let name = names::display_name("name", name).map_err(|e| anyhow!(e))?;
    let source = names::source_label(source).map_err(|e| anyhow!(e))?;
    match usecases::create_key(store, store, &ws, name, source, scope, Actor::CLI, now_ms).await {
        Ok(made) => Ok(made),
        Err(StoreError::Refused(Refusal::KeyLimit)) => Err(anyhow!(
            "the {} plan allows {} active keys; deactivate one or change the plan",
            ws.plan.as_str(),
            ws.plan.limits().active_keys
        )),
        Err(e) => Err(e).context("creating the key"),
    }
}

/// Adds (or re-roles) a member by email, creating the user if needed. Within the plan's limit.
pub async fn add_member(
    store: &dyn Store,
    workspace_id: &str,
    email: &str,
    role: Role,
    now_ms: i64,
) -> anyhow::Result<Membership> {
    let ws = workspace(store, workspace_id).await?;
    let email = Email::parse(email).map_err(|e| anyhow!(e))?;
    match usecases::add_member(store, store, store, &ws, email, role, Actor::CLI, now_ms).await {
        Ok(m) => Ok(m),
        Err(StoreError::Refused(r)) => Err(anyhow!(
            "{r} (the {} plan allows {} members)",
            ws.plan.as_str(),
            ws.plan.limits().members
        )),
        Err(e) => Err(e.into()),
    }
}

/// Sets the plan and queues the retention pass that follows it (returned, for the caller to
/// run).
pub async fn set_plan(
    store: &dyn Store,
    workspace_id: &str,
    plan: Plan,
    now_ms: i64,
) -> anyhow::Result<Option<Job>> {
    let ws = workspace(store, workspace_id).await?;
    store.set_plan(&ws.id, plan).await?;
    // Stored history follows the new window now, not at the next `serve`.
    usecases::plan_changed(store, store, &ws.id, ws.plan, plan, Actor::CLI, now_ms).await
}

/// Runs a retention pass to its end; returns what it did (the job's result).
pub async fn run_retention(store: DynStore, job: Job) -> anyhow::Result<serde_json::Value> {
    let clock: DynClock = std::sync::Arc::new(SystemClock);
    let id = job.id.clone();
    let ws = job.workspace.clone();
    retention_job::run(&RetentionPorts::of(&store), &clock, job).await?;
    let done = store
        .job(&ws, &id)
        .await?
        .context("the retention job vanished")?;
    Ok(done.result.unwrap_or_default())
}

/// Every workspace, oldest first.
pub async fn workspaces(store: &dyn Store) -> anyhow::Result<Vec<Workspace>> {
    let mut out = Vec::new();
    for id in all_workspace_ids(store).await? {
        // One deleted between the listing and the read is simply not listed.
        if let Some(ws) = store.workspace(&id).await? {
            out.push(ws);
        }
    }
    out.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
    Ok(out)
}

/// A workspace's keys (never their raw values, which are not stored), newest first.
pub async fn keys(store: &dyn Store, workspace_id: &str) -> anyhow::Result<Vec<ApiKey>> {
    let ws = workspace(store, workspace_id).await?;
    let mut keys = store.keys(&ws.id).await?;
    keys.sort_by_key(|k| std::cmp::Reverse(k.created_ms));
    Ok(keys)
}

/// A workspace's members, by email.
pub async fn members(store: &dyn Store, workspace_id: &str) -> anyhow::Result<Vec<Membership>> {
    let ws = workspace(store, workspace_id).await?;
    let mut members = store.members(&ws.id).await?;
    members.sort_by(|a, b| a.email.as_str().cmp(b.email.as_str()));
    Ok(members)
}

/// Deactivates a key: ingest with it is refused from the next request on (the dashboard can
/// reactivate it). Returns the key as it now is.
pub async fn revoke_key(
    store: &dyn Store,
    workspace_id: &str,
    key_id: &str,
    now_ms: i64,
) -> anyhow::Result<ApiKey> {
    let ws = workspace(store, workspace_id).await?;
    let not_found = || {
        anyhow!(
            "workspace {} has no key `{key_id}` (see `admin keys`)",
            ws.id
        )
    };
    let id = KeyId::parse(key_id).ok_or_else(not_found)?;
    let mut key = store
        .keys(&ws.id)
        .await?
        .into_iter()
        .find(|k| k.id == id)
        .ok_or_else(not_found)?;
    if !usecases::set_key_state(
        store,
        store,
        &ws,
        &key,
        KeyState::Deactivated,
        Actor::CLI,
        now_ms,
    )
    .await?
    {
        return Err(not_found());
    }
    key.state = KeyState::Deactivated;
    Ok(key)
}

/// A workspace's price rules.
pub async fn prices(store: &dyn Store, workspace_id: &str) -> anyhow::Result<WorkspacePrices> {
    Ok(workspace(store, workspace_id).await?.prices)
}

/// Adds a price rule, or removes one: audited like the dashboard's changes.
pub async fn change_price(
    store: &dyn Store,
    workspace_id: &str,
    change: PriceChange,
    now_ms: i64,
) -> anyhow::Result<PriceRule> {
    let ws = workspace(store, workspace_id).await?;
    usecases::change_prices(store, store, &ws.id, change, Actor::CLI, now_ms)
        .await
        .map_err(|e| match e {
            PriceChangeError::Invalid(r) => {
                // The option the field came from (`add-price`'s names).
                let option = match r.field {
                    "percent" => "discount",
                    "effective_from" => "from",
                    "effective_to" => "to",
                    field => field.trim_start_matches("rates."),
                };
                anyhow!("--{}: {}", option.replace('_', "-"), r.message)
            }
            PriceChangeError::NoRule(id) => {
                anyhow!(
                    "workspace {} has no price rule `{id}` (see `admin prices`)",
                    ws.id
                )
            }
            other => anyhow!(other),
        })
}

/// Reprices a range of a workspace's events with today's prices (a dry run unless `apply`),
/// running the job here to its end, as the deletion worker would. Audited when applied.
pub async fn reprice(
    parts: &crate::Parts,
    workspace_id: &str,
    request: RepricingRequest,
) -> anyhow::Result<RepricingView> {
    let ws = workspace(parts.store.as_ref(), workspace_id).await?;
    let deps = parts.deletion().deps;
    let by = repricing::Requester {
        id: Actor::CLI.id,
        email: None,
    };
    let job = repricing::start(&deps, &ws, &request, by)
        .await
        .map_err(|e| match e {
            // The options the fields come from.
            repricing::StartError::Invalid(m) => anyhow!("--{m}"),
            other => anyhow!(other),
        })?;
    llmtrack_deletion::run_job(&deps, job.clone(), None).await?;
    let done = deps
        .store
        .jobs
        .job(&ws.id, &job.id)
        .await?
        .context("the repricing job vanished")?;
    repricing::view(&done)
}
