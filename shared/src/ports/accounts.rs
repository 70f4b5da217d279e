//! People and sign-in: users, sign-in codes, rate-limit windows, sessions, report preferences.

use super::StoreResult;
use crate::domain::account::{CodeCheck, Email, LoginCode, Session, User};
use crate::domain::ids::UserId;
use async_trait::async_trait;

#[async_trait]
pub trait Accounts: Send + Sync + 'static {
    /// Creates the user unless the email already has one; returns the user of that email.
    async fn upsert_user(&self, user: &User) -> StoreResult<User>;

    async fn user(&self, id: &UserId) -> StoreResult<Option<User>>;

    async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>>;

    /// Replaces any earlier code for the email.
    async fn put_login_code(&self, code: &LoginCode) -> StoreResult<()>;

    /// Checks a code hash at `now_ms`: a match uses the code up; a miss counts an attempt and voids
    /// the code after `CODE_MAX_ATTEMPTS`.
    async fn check_login_code(
        &self,
        email: &Email,
        hash: &str,
        now_ms: i64,
    ) -> StoreResult<CodeCheck>;

    /// Counts `hits` (0 to only look) in a fixed window and returns the window's count so far.
    async fn hit_rate_limit(
        &self,
        bucket: &str,
        window_start_ms: i64,
        window_ms: i64,
        hits: u64,
    ) -> StoreResult<u64>;

    async fn create_session(&self, session: &Session) -> StoreResult<()>;

    async fn session(&self, hash: &str) -> StoreResult<Option<Session>>;

    async fn delete_session(&self, hash: &str) -> StoreResult<()>;

    /// Sign-out everywhere; returns how many sessions ended.
    async fn delete_user_sessions(&self, user: &UserId) -> StoreResult<usize>;

    /// Turns a person's monthly report emails off or on. False when the user does not exist.
    async fn set_reports_opt_out(&self, user: &UserId, opt_out: bool) -> StoreResult<bool>;
}
