//! API-key authentication, shared by every function that accepts keys.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

use crate::ApiError;
use crate::config::WebConfig;
use crate::domain::access::{Action, Role};
use crate::domain::account::Membership;
use crate::domain::apikey::{ApiKey, KeyState, RawKey, Scope};
use crate::ports::{Accounts, DynClock, DynStore, Keys, Members, Workspace, Workspaces};

crate::store_ports! {
    /// What resolving a caller reads: keys, sessions, memberships and their workspaces.
    pub struct GatePorts {
        keys: Keys,
        workspaces: Workspaces,
        accounts: Accounts,
        members: Members,
    }
}

/// Who is calling and what they may do: the one place every function checks access. An API
/// key resolves to its workspace; a session to a person, who reaches a workspace as a member
/// with a permission. Whatever changes state with a session also passes the same-origin check.
#[derive(Clone)]
pub struct Gate {
    pub store: GatePorts,
    pub clock: DynClock,
    pub web: WebConfig,
}

/// A member acting in a workspace, allowed to do what they asked.
#[derive(Debug, Clone)]
pub struct Member {
    pub who: SignedIn,
    pub workspace: Workspace,
    pub role: Role,
}

impl Gate {
    pub fn new(store: &DynStore, clock: &DynClock, web: &WebConfig) -> Gate {
        Gate {
            store: GatePorts::of(store),
            clock: clock.clone(),
            web: web.clone(),
        }
    }

    /// The bearer key's record and workspace, checked for state and scope.
    pub async fn api_key(
        &self,
        headers: &HeaderMap,
        scope: Scope,
    ) -> Result<(ApiKey, Workspace), ApiError> {
        api_key(
            self.store.keys.as_ref(),
            self.store.workspaces.as_ref(),
            &self.clock,
            headers,
            scope,
        )
        .await
    }

    /// The signed-in person (reads).
    pub async fn session(&self, headers: &HeaderMap) -> Result<SignedIn, ApiError> {
        session(self.store.accounts.as_ref(), &self.clock, headers).await
    }

    /// The signed-in person making a state-changing request: session, then same origin.
    pub async fn writer(&self, headers: &HeaderMap) -> Result<SignedIn, ApiError> {
        let who = self.session(headers).await?;
        same_origin(headers, &self.web)?;
        Ok(who)
    }

    /// A person's membership of a workspace named in a path (404 for anything they cannot see).
    pub async fn membership(
        &self,
        who: &SignedIn,
        workspace: &str,
    ) -> Result<(Workspace, Membership), ApiError> {
        membership(
            self.store.members.as_ref(),
            self.store.workspaces.as_ref(),
            workspace,
            &who.user.id,
        )
        .await
    }

    /// A member of `workspace` whose role permits `action`: session, same origin when the
    /// action changes state, membership, permission.
    pub async fn member(
        &self,
        headers: &HeaderMap,
        workspace: &str,
        action: Action,
    ) -> Result<Member, ApiError> {
        let who = if action.changes_state() {
            self.writer(headers).await?
        } else {
            self.session(headers).await?
        };
        let (workspace, m) = self.membership(&who, workspace).await?;
        require(m.role, action)?;
        Ok(Member {
            who,
            workspace,
            role: m.role,
        })
    }
}

/// last_used is written at most this often per key, so a busy key costs no extra write per request.
const TOUCH_EVERY_MS: i64 = 60_000;

/// Resolves the bearer key of a request to its key record and workspace, checking state and scope.
pub async fn api_key(
    keys: &dyn Keys,
    workspaces: &dyn Workspaces,
    clock: &DynClock,
    headers: &HeaderMap,
    scope: Scope,
) -> Result<(ApiKey, Workspace), ApiError> {
    let header = headers.get(AUTHORIZATION).ok_or_else(|| {
        ApiError::Unauthorized(
            "missing Authorization header: send `Authorization: Bearer <api key>`".into(),
        )
    })?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the Authorization header is not valid text".into()))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be `Bearer <api key>`".into())
        })?
        .trim();
    let raw = RawKey::parse(token).ok_or_else(|| {
        ApiError::Unauthorized(
            "the API key is malformed: LLMtrack keys look like `llmt_` followed by 32 characters"
                .into(),
        )
    })?;
    let key = keys.key_by_hash(&raw.hash()).await?.ok_or_else(|| {
        ApiError::Unauthorized("the API key is not recognised (it may have been deleted)".into())
    })?;
    if key.state != KeyState::Active {
        return Err(ApiError::Unauthorized(format!(
            "the API key `{}…` is deactivated",
            key.prefix
        )));
    }
    if key.scope != scope {
        return Err(ApiError::Forbidden(format!(
            "this API key has scope `{}`; this endpoint needs a key with scope `{}`",
            key.scope.as_str(),
            scope.as_str()
        )));
    }
    let workspace = workspaces
        .workspace(&key.workspace_id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the API key's workspace no longer exists".into()))?;
    if workspace.deleting.is_some() {
        return Err(ApiError::Unauthorized(
            "the API key's workspace is being deleted".into(),
        ));
    }
    let now = clock.now_ms();
    if key.last_used_ms.is_none_or(|t| now - t >= TOUCH_EVERY_MS) {
        // Best effort: a failed touch must not fail the request it describes.
        if let Err(e) = keys.touch_key(&key, now).await {
            tracing::warn!(key = %key.id, error = %e, "could not record key use");
        }
    }
    Ok((key, workspace))
}

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "llmtrack_session";

/// A signed-in person: the user and the hash of the session they came with.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: crate::domain::account::User,
    pub session_hash: String,
}

fn session_token(headers: &HeaderMap) -> Option<crate::domain::account::SessionToken> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .and_then(|c| crate::domain::account::SessionToken::from_cookie(c.value()))
}

/// The `Set-Cookie` value of a session cookie (HttpOnly, SameSite=Lax, Secure except on plain
/// loopback); an empty value with `max_age_s` 0 clears it.
pub fn session_cookie(
    value: &str,
    max_age_s: i64,
    web: &crate::config::WebConfig,
) -> axum::http::HeaderValue {
    let cookie = cookie::Cookie::build((SESSION_COOKIE, value.to_owned()))
        .http_only(true)
        .secure(web.secure_cookies)
        .same_site(cookie::SameSite::Lax)
        .path("/")
        .max_age(cookie::time::Duration::seconds(max_age_s))
        .build();
    axum::http::HeaderValue::from_str(&cookie.to_string())
        .unwrap_or_else(|_| axum::http::HeaderValue::from_static(""))
}

/// Whether the request carries a session cookie at all (so a key-or-session endpoint can choose).
pub fn has_session_cookie(headers: &HeaderMap) -> bool {
    session_token(headers).is_some()
}

/// Resolves the session cookie to its user: 401 when missing, unknown or expired.
async fn session(
    accounts: &dyn Accounts,
    clock: &DynClock,
    headers: &HeaderMap,
) -> Result<SignedIn, ApiError> {
    let token = session_token(headers)
        .ok_or_else(|| ApiError::Unauthorized("sign in first: no session cookie".into()))?;
    let hash = token.hash();
    let session = accounts
        .session(&hash)
        .await?
        .filter(|s| s.expires_ms > clock.now_ms())
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "the session has expired or was signed out: sign in again".into(),
            )
        })?;
    let user = accounts
        .user(&session.user_id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the session's account no longer exists".into()))?;
    Ok(SignedIn {
        user,
        session_hash: hash,
    })
}

/// Cross-site request protection for state-changing requests made with a session: the browser's
/// `Origin` must be the dashboard's own. (SameSite=Lax already keeps the cookie off most
/// cross-site requests; this closes the rest.)
pub fn same_origin(headers: &HeaderMap, web: &crate::config::WebConfig) -> Result<(), ApiError> {
    match headers
        .get(axum::http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    {
        Some(origin) if origin.trim_end_matches('/') == web.public_url => Ok(()),
        Some(origin) => Err(ApiError::Forbidden(format!(
            "cross-site request refused: Origin `{origin}` is not {}",
            web.public_url
        ))),
        None => Err(ApiError::Forbidden(
            "cross-site request refused: the request has no Origin header".into(),
        )),
    }
}

/// The client's address. `peer` is the connection's peer (locally) or API Gateway's source IP
/// (on Lambda, see `extract::Peer`). Behind trusted proxies, it is the last `X-Forwarded-For`
/// entry no trusted proxy added: each proxy appends the address it saw, so entries to the left
/// of the first untrusted one are whatever the client chose to send.
pub fn client_addr(
    headers: &HeaderMap,
    peer: Option<std::net::IpAddr>,
    web: &crate::config::WebConfig,
) -> Option<String> {
    client_ip(headers, peer, &web.trusted_proxies).map(|ip| ip.to_string())
}

/// [`client_addr`] as an address, given the trusted proxies.
pub fn client_ip(
    headers: &HeaderMap,
    peer: Option<std::net::IpAddr>,
    trusted_proxies: &[ipnet::IpNet],
) -> Option<std::net::IpAddr> {
    let trusted = |ip: &std::net::IpAddr| trusted_proxies.iter().any(|n| n.contains(ip));
    let mut addr = peer?;
    if trusted(&addr) {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for entry in forwarded.iter().rev() {
            match entry.parse::<std::net::IpAddr>() {
                Ok(ip) if trusted(&ip) => addr = ip,
                Ok(ip) => {
                    addr = ip;
                    break;
                }
                // Garbage where an address should be: stop at the last address we could trust.
                Err(_) => break,
            }
        }
    }
    Some(addr)
}

/// The caller's membership of a workspace named in a path. Anything the caller cannot see,
/// malformed ids included, is 404, never 403, so ids cannot be probed.
async fn membership(
    members: &dyn Members,
    workspaces: &dyn Workspaces,
    workspace: &str,
    user: &crate::domain::ids::UserId,
) -> Result<(Workspace, crate::domain::account::Membership), ApiError> {
    let not_found = || ApiError::NotFound(format!("workspace `{workspace}` not found"));
    let id = crate::domain::ids::WorkspaceId::parse(workspace).ok_or_else(not_found)?;
    let member = members.member(&id, user).await?.ok_or_else(not_found)?;
    // A workspace being deleted is gone for every purpose but following its deletion.
    let ws = workspaces
        .workspace(&id)
        .await?
        .filter(|w| w.deleting.is_none())
        .ok_or_else(not_found)?;
    Ok((ws, member))
}

/// 403 unless the role may do the action (the caller is a member: they may know it exists).
pub fn require(
    role: crate::domain::access::Role,
    action: crate::domain::access::Action,
) -> Result<(), ApiError> {
    if crate::domain::access::permits(role, action) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "your role ({}) does not allow this; see the permissions in docs/PERMISSIONS.md",
            role.as_str()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{WebConfig, parse_proxies};

    fn addr(xff: &[&str], peer: &str, proxies: &str) -> Option<String> {
        let web = WebConfig::new("http://127.0.0.1:8080", parse_proxies(proxies).unwrap()).unwrap();
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        client_addr(&h, Some(peer.parse().unwrap()), &web)
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies_and_from_the_right() {
        // No trusted proxy: the header is the client's own writing.
        assert_eq!(
            addr(&["6.6.6.6"], "203.0.113.9", "").as_deref(),
            Some("203.0.113.9")
        );
        // From a peer that is not a trusted proxy: ignored too.
        assert_eq!(
            addr(&["6.6.6.6"], "203.0.113.9", "10.0.0.0/8").as_deref(),
            Some("203.0.113.9")
        );
        // Behind one proxy: the entry it appended, not the forged one the client sent first.
        assert_eq!(
            addr(&["6.6.6.6, 198.51.100.7"], "10.0.0.2", "10.0.0.0/8").as_deref(),
            Some("198.51.100.7")
        );
        // Two proxies, the header split over two lines.
        assert_eq!(
            addr(
                &["6.6.6.6", "198.51.100.7, 10.0.0.3"],
                "10.0.0.2",
                "10.0.0.0/8"
            )
            .as_deref(),
            Some("198.51.100.7")
        );
        // Garbage: the last trusted hop's view.
        assert_eq!(
            addr(&["nonsense"], "10.0.0.2", "10.0.0.0/8").as_deref(),
            Some("10.0.0.2")
        );
    }
}
