//! The signed-in person's own resource: who they are, their workspaces and their settings; and
//! the deployment's public settings the dashboard reads before anyone signs in.

use axum::extract::State;
use axum::http::HeaderMap;
use llmtrack_shared::auth;
use llmtrack_shared::domain::account::User;
use llmtrack_shared::extract::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::workspaces::{WorkspaceView, view};
use crate::{AccountState, Result, my_workspaces};

#[derive(Serialize, ToSchema)]
pub struct UserView {
    id: String,
    email: String,
    /// Whether the monthly report emails of your workspaces (as owner or admin) reach you.
    monthly_reports: bool,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id.to_string(),
            email: u.email.as_str().to_owned(),
            monthly_reports: !u.reports_opt_out,
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct MePatch {
    /// `false` stops the monthly report emails; `true` brings them back.
    monthly_reports: bool,
}

/// Change your settings: monthly report emails on or off.
#[utoipa::path(patch, path = "/v1/me", tag = "account", request_body = MePatch,
    responses((status = 200, body = UserView), (status = 401, description = "No session"), (status = 403, description = "Cross-site request")))]
pub(crate) async fn update_me(
    State(s): State<AccountState>,
    headers: HeaderMap,
    Json(req): Json<MePatch>,
) -> Result<axum::Json<UserView>> {
    let who = s.gate.session(&headers).await?;
    auth::same_origin(&headers, &s.web)?;
    s.store
        .accounts
        .set_reports_opt_out(&who.user.id, !req.monthly_reports)
        .await?;
    let mut user = who.user;
    user.reports_opt_out = !req.monthly_reports;
    Ok(axum::Json(UserView::from(&user)))
}

#[derive(Serialize, ToSchema)]
pub struct MeView {
    user: UserView,
    workspaces: Vec<WorkspaceView>,
}

#[derive(Serialize, ToSchema)]
pub struct AboutView {
    /// The address people may write to; absent until the operator configured (and verified) one.
    support_email: Option<String>,
    /// Whether subscriptions can be bought here (Stripe configured).
    billing_configured: bool,
    /// The server's version.
    version: &'static str,
}

/// What the dashboard shows before sign-in: the support address (privacy page) and whether
/// billing is set up. Public: nothing in it is secret.
#[utoipa::path(get, path = "/v1/about", tag = "account", responses((status = 200, description = "This deployment's public settings", body = AboutView)))]
pub(crate) async fn about(State(s): State<AccountState>) -> axum::Json<AboutView> {
    axum::Json(AboutView {
        support_email: s.support_email.clone(),
        billing_configured: s.billing_configured,
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// The signed-in user and their workspaces.
#[utoipa::path(get, path = "/v1/me", tag = "account", responses((status = 200, body = MeView), (status = 401, description = "No session")))]
pub(crate) async fn me(
    State(s): State<AccountState>,
    headers: HeaderMap,
) -> Result<axum::Json<MeView>> {
    let who = s.gate.session(&headers).await?;
    Ok(axum::Json(MeView {
        user: UserView::from(&who.user),
        workspaces: my_workspaces(&s, &who.user.id)
            .await?
            .iter()
            .map(|(ws, role)| view(ws, *role))
            .collect(),
    }))
}
