//! Adding, testing, importing and removing provider connections: one use case each, shared by
//! the HTTP handlers and the command line (`llmtrack connections …`), each audited the same way.

use chrono::NaiveDate;
use llmtrack_shared::domain::ids::{self, WorkspaceId};
use llmtrack_shared::domain::reconciliation::{Connection, Provider};
use llmtrack_shared::domain::time::to_datetime;
use llmtrack_shared::ports::{MAX_CONNECTIONS, ProviderError, StoreError};
use llmtrack_shared::usecases::Actor;
use llmtrack_shared::{ApiError, ErrorCode};

use crate::{Deps, import};

/// The most provider-side projects or workspaces one connection may be narrowed to.
pub const MAX_SCOPE: usize = 50;

/// A connection to add, its fields checked.
#[derive(Clone)]
pub struct NewConnection {
    pub provider: Provider,
    admin_key: String,
    pub scope: Vec<String>,
}

impl std::fmt::Debug for NewConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewConnection")
            .field("provider", &self.provider)
            .field("admin_key", &"[sealed]")
            .field("scope", &self.scope)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// A field is not valid: which, and why.
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("a workspace may hold at most {MAX_CONNECTIONS} provider connections")]
    TooMany,
    #[error("provider connection `{0}` not found")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<ConnectionError> for ApiError {
    fn from(e: ConnectionError) -> ApiError {
        match e {
            ConnectionError::Invalid { message, .. } => {
                ApiError::bad_request(ErrorCode::InvalidConnection, message)
            }
            ConnectionError::Provider(p @ ProviderError::Unavailable { .. }) => {
                ApiError::Unavailable {
                    code: ErrorCode::ProviderUnavailable,
                    message: p.to_string(),
                }
            }
            ConnectionError::Provider(p) => ApiError::bad_request(ErrorCode::ProviderKeyRefused, p),
            ConnectionError::TooMany => ApiError::Conflict(e.to_string()),
            ConnectionError::NotFound(_) => ApiError::NotFound(e.to_string()),
            ConnectionError::Store(s) => s.into(),
            ConnectionError::Unexpected(u) => ApiError::Unexpected(u),
        }
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConnectionError {
    ConnectionError::Invalid {
        field,
        message: message.into(),
    }
}

impl NewConnection {
    /// Reads a connection from its fields as sent, naming what is wrong.
    pub fn parse(
        provider: &str,
        admin_key: &str,
        scope: Vec<String>,
    ) -> Result<NewConnection, ConnectionError> {
        let provider = Provider::parse(provider.trim()).ok_or_else(|| {
            invalid(
                "provider",
                format!("`provider` must be `openai` or `anthropic`, got `{provider}`"),
            )
        })?;
        let key = admin_key.trim();
        if key.len() < 20 || key.len() > 512 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "admin_key",
                format!(
                    "`admin_key` must be the organisation's Admin API key (it starts with `{}`): \
                     20 to 512 characters, no spaces",
                    provider.admin_key_prefix()
                ),
            ));
        }
        if scope.len() > MAX_SCOPE {
            return Err(invalid(
                "scope",
                format!("`scope` may list at most {MAX_SCOPE} ids"),
            ));
        }
        let mut ids: Vec<String> = Vec::with_capacity(scope.len());
        for s in scope {
            let s = s.trim().to_owned();
            let ok = !s.is_empty()
                && s.len() <= 100
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !ok {
                let what = match provider {
                    Provider::OpenAi => "an OpenAI project id (`proj_…`)",
                    Provider::Anthropic => "an Anthropic workspace id (`wrkspc_…`)",
                };
                return Err(invalid(
                    "scope",
                    format!("each `scope` entry must be {what}, got `{s}`"),
                ));
            }
            if !ids.contains(&s) {
                ids.push(s);
            }
        }
        Ok(NewConnection {
            provider,
            admin_key: key.to_owned(),
            scope: ids,
        })
    }
}

/// The key's last four characters: enough to tell keys apart, nothing to use.
pub fn key_hint(key: &str) -> String {
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

fn target(c: &Connection) -> String {
    format!("{} ({} {})", c.id, c.provider.as_str(), c.key_hint)
}

pub async fn get(deps: &Deps, ws: &WorkspaceId, id: &str) -> Result<Connection, ConnectionError> {
    deps.store
        .connections
        .connection(ws, id)
        .await?
        .ok_or_else(|| ConnectionError::NotFound(id.to_owned()))
}

/// Checks the key with the provider, seals and saves it, then imports the last 30 days. A
/// failed import does not undo the connection: its status says why, and the next run retries.
pub async fn add(
    deps: &Deps,
    ws: &WorkspaceId,
    new: NewConnection,
    by: Actor<'_>,
) -> Result<Connection, ConnectionError> {
    if deps.store.connections.connections(ws).await?.len() >= MAX_CONNECTIONS {
        return Err(ConnectionError::TooMany);
    }
    deps.providers
        .check(new.provider, &new.admin_key, &new.scope)
        .await?;
    let now = deps.clock.now_ms();
    let id = ids::prefixed("pc", now);
    let sealed_key = deps
        .vault
        .seal(&new.admin_key, &Connection::seal_context(ws, &id))
        .await?;
    let mut conn = Connection {
        workspace: ws.clone(),
        id,
        provider: new.provider,
        sealed_key,
        key_hint: key_hint(&new.admin_key),
        scope: new.scope,
        created_at_ms: now,
        imported_through: None,
        last_import: None,
    };
    deps.store.connections.save_connection(&conn).await?;
    by.record(
        deps.store.audit_log.as_ref(),
        ws,
        now,
        "connection.created",
        Some(target(&conn)),
    )
    .await;
    let (from, to) = import::due_range(&conn, today(deps));
    import::run(deps, &mut conn, from, to, Some(import::WAITED_FOR)).await?;
    Ok(conn)
}

/// Whether the saved key still reads the organisation's usage and cost.
pub async fn test(deps: &Deps, ws: &WorkspaceId, id: &str) -> Result<(), ConnectionError> {
    let conn = get(deps, ws, id).await?;
    let key = import::open_key(deps, &conn).await?;
    deps.providers
        .check(conn.provider, &key, &conn.scope)
        .await?;
    Ok(())
}

/// Imports the UTC days `[from, to)` now (default: what is due), replacing what was imported for
/// them. How it went is the connection's `last_import` (a provider's refusal in its words).
pub async fn import_now(
    deps: &Deps,
    ws: &WorkspaceId,
    id: &str,
    range: Option<(NaiveDate, NaiveDate)>,
) -> Result<Connection, ConnectionError> {
    let mut conn = get(deps, ws, id).await?;
    let today = today(deps);
    let (from, to) = match range {
        Some(r) => check_range(r, today)?,
        None => import::due_range(&conn, today),
    };
    import::run(deps, &mut conn, from, to, Some(import::WAITED_FOR)).await?;
    Ok(conn)
}

fn check_range(
    (from, to): (NaiveDate, NaiveDate),
    today: NaiveDate,
) -> Result<(NaiveDate, NaiveDate), ConnectionError> {
    if from >= to {
        return Err(invalid(
            "from",
            "`from` must be before `to` (`to` is the day after the last)",
        ));
    }
    let first = today - chrono::Duration::days(import::MAX_DAYS_BACK);
    if from < first {
        return Err(invalid(
            "from",
            format!("imports reach back at most {} days", import::MAX_DAYS_BACK),
        ));
    }
    if to > today + chrono::Duration::days(1) {
        return Err(invalid("to", "`to` may be at most tomorrow"));
    }
    Ok((from, to))
}

/// Removes a connection, its sealed key and every figure it imported.
pub async fn remove(
    deps: &Deps,
    ws: &WorkspaceId,
    id: &str,
    by: Actor<'_>,
) -> Result<(), ConnectionError> {
    let conn = get(deps, ws, id).await?;
    if !deps.store.connections.delete_connection(ws, id).await? {
        return Err(ConnectionError::NotFound(id.to_owned()));
    }
    by.record(
        deps.store.audit_log.as_ref(),
        ws,
        deps.clock.now_ms(),
        "connection.deleted",
        Some(target(&conn)),
    )
    .await;
    Ok(())
}

fn today(deps: &Deps) -> NaiveDate {
    to_datetime(deps.clock.now_ms()).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_checked() {
        let key = "sk-admin-0123456789abcdefghij";
        assert!(NewConnection::parse("openai", key, vec![]).is_ok());
        for (p, k, scope, field) in [
            ("gemini", key, vec![], "provider"),
            ("openai", "short", vec![], "admin_key"),
            (
                "openai",
                "sk-admin 0123456789 abcdefghij",
                vec![],
                "admin_key",
            ),
            ("anthropic", key, vec!["wrkspc 1".to_owned()], "scope"),
            ("anthropic", key, vec![String::new()], "scope"),
        ] {
            match NewConnection::parse(p, k, scope) {
                Err(ConnectionError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{p} {k}: {other:?}"),
            }
        }
        let n = NewConnection::parse("openai", key, vec!["proj_a".into(), "proj_a".into()]);
        assert_eq!(n.unwrap().scope, ["proj_a"]);
    }

    #[test]
    fn the_key_is_never_shown() {
        let key = "sk-admin-0123456789abcdefghij";
        assert_eq!(key_hint(key), "…ghij");
        let n = NewConnection::parse("openai", key, vec![]).unwrap();
        assert!(!format!("{n:?}").contains("0123456789"));
    }
}
