//! Operator commands that work on the store directly (self-hosters, scripts, the README's example).

use anyhow::{Context as _, anyhow};
use llmtrack_shared::domain::apikey::{ApiKey, KeyState, RawKey, Scope};
use llmtrack_shared::domain::ids::{KeyId, WorkspaceId};
use llmtrack_shared::domain::names;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::ports::{Store, Workspace};

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
        created_ms: now_ms,
    };
    store
        .create_workspace(&ws)
        .await
        .context("creating the workspace")?;
    Ok(ws)
}

/// Makes a key and returns it with its raw value, which exists only here.
pub async fn create_key(
    store: &dyn Store,
    workspace: &str,
    name: &str,
    source: &str,
    scope: Scope,
    now_ms: i64,
) -> anyhow::Result<(ApiKey, RawKey)> {
    let ws = WorkspaceId::parse(workspace)
        .ok_or_else(|| anyhow!("`{workspace}` is not a workspace id (they look like ws_…)"))?;
    store
        .workspace(&ws)
        .await?
        .ok_or_else(|| anyhow!("workspace {ws} does not exist"))?;
    let name = names::display_name("name", name).map_err(|e| anyhow!(e))?;
    let source = names::source_label(source).map_err(|e| anyhow!(e))?;
    let raw = RawKey::generate();
    let key = ApiKey {
        id: KeyId::generate(),
        workspace_id: ws,
        name,
        source,
        scope,
        state: KeyState::Active,
        hash: raw.hash(),
        prefix: raw.display_prefix(),
        created_ms: now_ms,
        last_used_ms: None,
    };
    store.create_key(&key).await.context("creating the key")?;
    Ok((key, raw))
}

pub async fn set_plan(store: &dyn Store, workspace: &str, plan: Plan) -> anyhow::Result<()> {
    let ws = WorkspaceId::parse(workspace)
        .ok_or_else(|| anyhow!("`{workspace}` is not a workspace id (they look like ws_…)"))?;
    if store.set_plan(&ws, plan).await? {
        Ok(())
    } else {
        Err(anyhow!("workspace {ws} does not exist"))
    }
}
