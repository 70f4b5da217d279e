//! Operator commands that work on the store directly (self-hosters, scripts, the README's example).
//! Each change is written to the workspace's audit log with the actor `cli`.

use anyhow::{Context as _, anyhow};
use llmtrack_shared::domain::access::Role;
use llmtrack_shared::domain::account::{Email, Membership, User};
use llmtrack_shared::domain::apikey::{ApiKey, RawKey, Scope};
use llmtrack_shared::domain::audit::AuditEntry;
use llmtrack_shared::domain::ids::{UserId, WorkspaceId};
use llmtrack_shared::domain::names;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::ports::{
    DynClock, DynStore, Job, Refusal, Store, StoreError, SystemClock, Workspace,
};
use llmtrack_shared::retention_job;

async fn workspace(store: &dyn Store, id: &str) -> anyhow::Result<Workspace> {
    let ws = WorkspaceId::parse(id)
        .ok_or_else(|| anyhow!("`{id}` is not a workspace id (they look like ws_…)"))?;
    store
        .workspace(&ws)
        .await?
        .ok_or_else(|| anyhow!("workspace {ws} does not exist"))
}

async fn audit(
    store: &dyn Store,
    ws: &WorkspaceId,
    now_ms: i64,
    action: &str,
    target: String,
) -> anyhow::Result<()> {
    store
        .append_audit(&AuditEntry::new(
            ws,
            now_ms,
            "cli",
            None,
            action,
            Some(target),
            None,
        ))
        .await?;
    Ok(())
}

pub async fn create_workspace(
    store: &dyn Store,
    name: &str,
    plan: Plan,
    now_ms: i64,
) -> anyhow::Result<Workspace> {
    let name = names::display_name("name", name).map_err(|e| anyhow!(e))?;
    let ws = Workspace {
        id: WorkspaceId::generate(),
        name,
        plan,
        timezone: "UTC".into(),
        created_ms: now_ms,
        deleting: None,
    };
    store
        .create_workspace(&ws)
        .await
        .context("creating the workspace")?;
    audit(store, &ws.id, now_ms, "workspace.created", ws.name.clone()).await?;
    Ok(ws)
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
    let (key, raw) = ApiKey::issue(ws.id.clone(), name, source, scope, now_ms, None);
    match store.create_key(&key, ws.plan.limits().active_keys).await {
        Ok(()) => {}
        Err(StoreError::Refused(Refusal::KeyLimit)) => {
            return Err(anyhow!(
                "the {} plan allows {} active keys; deactivate one or change the plan",
                ws.plan.as_str(),
                ws.plan.limits().active_keys
            ));
        }
        Err(e) => return Err(e).context("creating the key"),
    }
    audit(
        store,
        &ws.id,
        now_ms,
        "key.created",
        format!("{} ({})", key.id, key.name),
    )
    .await?;
    Ok((key, raw))
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
    let user = store
        .upsert_user(&User {
            id: UserId::generate(),
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
    match store.add_member(&m, ws.plan.limits().members).await {
        Ok(()) => {}
        Err(StoreError::Refused(r)) => {
            return Err(anyhow!(
                "{r} (the {} plan allows {} members)",
                ws.plan.as_str(),
                ws.plan.limits().members
            ));
        }
        Err(e) => return Err(e.into()),
    }
    audit(
        store,
        &ws.id,
        now_ms,
        "member.added",
        format!("{} as {}", m.email.as_str(), role.as_str()),
    )
    .await?;
    Ok(m)
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
    audit(
        store,
        &ws.id,
        now_ms,
        "plan.changed",
        format!("{} -> {}", ws.plan.as_str(), plan.as_str()),
    )
    .await?;
    if ws.plan == plan {
        return Ok(None);
    }
    // Stored history follows the new window now, not at the next `serve`.
    let job = retention_job::start(store, &ws.id, ws.plan, plan, now_ms).await?;
    Ok(Some(job))
}

/// Runs a retention pass to its end; returns what it did (the job's result).
pub async fn run_retention(store: DynStore, job: Job) -> anyhow::Result<serde_json::Value> {
    let clock: DynClock = std::sync::Arc::new(SystemClock);
    let id = job.id.clone();
    let ws = job.workspace.clone();
    retention_job::run(&store, &clock, job).await?;
    let done = store
        .job(&ws, &id)
        .await?
        .context("the retention job vanished")?;
    Ok(done.result.unwrap_or_default())
}
