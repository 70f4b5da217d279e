//! Passwordless sign-in: an emailed one-time code (rate limited per address and per email)
//! exchanged for a session cookie, and sign-out of one session or all of them.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use llmtrack_shared::auth;
use llmtrack_shared::domain::account::{
    self, CodeCheck, Email, LoginCode, Session, SessionToken, User,
};
use llmtrack_shared::domain::ids::UserId;
use llmtrack_shared::extract::{Json, Peer, Query};
use llmtrack_shared::ports::Mail;
use llmtrack_shared::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::me::UserView;
use crate::{AccountState, Result, my_workspaces};

#[derive(Deserialize, ToSchema)]
pub struct EmailRequest {
    email: String,
}

#[derive(Serialize, ToSchema)]
pub struct Message {
    message: String,
}

/// Email a one-time sign-in code (and a link carrying it). A new address signs up this way.
#[utoipa::path(post, path = "/v1/auth/email", tag = "account", request_body = EmailRequest,
    responses((status = 202, body = Message), (status = 400, description = "Malformed email"), (status = 429, description = "Rate limited")))]
pub(crate) async fn request_code(
    State(s): State<AccountState>,
    peer: Peer,
    headers: HeaderMap,
    Json(req): Json<EmailRequest>,
) -> Result<(StatusCode, axum::Json<Message>)> {
    let email =
        Email::parse(&req.email).map_err(|m| ApiError::bad_request(ErrorCode::InvalidEmail, m))?;
    if let Some(addr) = s.addr(&headers, &peer) {
        s.limit(&account::AUTH_REQUESTS_PER_ADDRESS, &addr, 1)
            .await?;
    }
    s.limit(&account::CODES_PER_EMAIL, email.as_str(), 1)
        .await?;
    let code = account::new_code();
    let expires_ms = s.clock.now_ms() + account::CODE_TTL_MS;
    s.store
        .accounts
        .put_login_code(&LoginCode {
            email: email.clone(),
            hash: account::code_hash(&email, &code),
            expires_ms,
            attempts: 0,
        })
        .await?;
    let link = format!(
        "{}/signin?email={}&code={code}",
        s.web.public_url,
        email.as_str().replace('+', "%2B").replace('@', "%40")
    );
    let mail = Mail {
        to: email.as_str().to_owned(),
        subject: format!("Your LLMtrack sign-in code: {code}"),
        text: format!(
            "Your LLMtrack sign-in code is {code}.\n\nOr open this link to sign in: {link}\n\nThe code works once and expires in 10 minutes. If you did not ask for it, ignore this email.{}",
            s.footer()
        ),
        html: Some(format!(
            "<p>Your LLMtrack sign-in code is <strong style=\"font-size:1.4em\">{code}</strong>.</p><p><a href=\"{link}\">Sign in to LLMtrack</a></p><p>The code works once and expires in 10 minutes. If you did not ask for it, ignore this email.</p>"
        )),
        about: None,
    };
    s.mailer.send(&mail).await.map_err(ApiError::Unexpected)?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(Message {
            message: format!(
                "a sign-in code was sent to {}; it expires in 10 minutes",
                email.as_str()
            ),
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct VerifyRequest {
    email: String,
    code: String,
}

/// Exchange the emailed code for a session cookie (HttpOnly, SameSite=Lax, Secure).
#[utoipa::path(post, path = "/v1/auth/verify", tag = "account", request_body = VerifyRequest,
    responses((status = 200, body = UserView, description = "Signed in; the session cookie is set"), (status = 400, description = "Wrong, used or expired code"), (status = 429, description = "Rate limited")))]
pub(crate) async fn verify_code(
    State(s): State<AccountState>,
    peer: Peer,
    headers: HeaderMap,
    Json(req): Json<VerifyRequest>,
) -> Result<Response> {
    let email =
        Email::parse(&req.email).map_err(|m| ApiError::bad_request(ErrorCode::InvalidEmail, m))?;
    let addr = s.addr(&headers, &peer);
    if let Some(addr) = &addr {
        s.limit(&account::VERIFY_REQUESTS_PER_ADDRESS, addr, 1)
            .await?;
    }
    // Wrong codes count per email across all its codes: requesting new codes does not buy
    // new guesses.
    for limit in &account::FAILED_SIGNINS {
        s.limit(limit, email.as_str(), 0).await?;
    }
    let now = s.clock.now_ms();
    let wrong = match s
        .store
        .accounts
        .check_login_code(&email, &account::code_hash(&email, &req.code), now)
        .await?
    {
        CodeCheck::Valid => None,
        CodeCheck::Wrong => Some("the code is wrong; check the latest email or request a new code"),
        CodeCheck::Missing => Some(
            "no valid code for this email: it expired, was used, or had too many wrong tries; request a new one",
        ),
    };
    if let Some(message) = wrong {
        for limit in &account::FAILED_SIGNINS {
            // Counted; the refusal comes with the next attempt.
            if let Err(e) = s.limit(limit, email.as_str(), 1).await
                && !matches!(e, ApiError::TooManyRequests { .. })
            {
                return Err(e);
            }
        }
        return Err(ApiError::bad_request(ErrorCode::InvalidCode, message));
    }
    let user = s
        .store
        .accounts
        .upsert_user(&User {
            id: UserId::generate(now),
            email,
            created_ms: now,
            reports_opt_out: false,
        })
        .await?;
    let token = SessionToken::generate();
    s.store
        .accounts
        .create_session(&Session {
            hash: token.hash(),
            user_id: user.id.clone(),
            created_ms: now,
            expires_ms: now + account::SESSION_TTL_MS,
        })
        .await?;
    for (ws, _) in my_workspaces(&s, &user.id).await? {
        s.audit(&ws.id, &user, "signin", None, addr.as_deref())
            .await;
    }
    tracing::info!(user = %user.id, "signed in");
    let mut response = axum::Json(UserView::from(&user)).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        auth::session_cookie(token.expose(), account::SESSION_TTL_MS / 1000, &s.web),
    );
    Ok(response)
}

#[derive(Deserialize, IntoParams)]
pub struct LogoutParams {
    /// `true` ends every session of the account, on every device.
    everywhere: Option<bool>,
}

/// Sign out this session, or every session of the account with `?everywhere=true`.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "account", params(LogoutParams),
    responses((status = 204, description = "Signed out"), (status = 401, description = "No session"), (status = 403, description = "Cross-site request")))]
pub(crate) async fn logout(
    State(s): State<AccountState>,
    headers: HeaderMap,
    Query(p): Query<LogoutParams>,
) -> Result<Response> {
    let who = s.gate.writer(&headers).await?;
    if p.everywhere == Some(true) {
        s.store.accounts.delete_user_sessions(&who.user.id).await?;
    } else {
        s.store.accounts.delete_session(&who.session_hash).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, auth::session_cookie("", 0, &s.web));
    Ok(response)
}
