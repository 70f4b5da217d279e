//! Users, sign-in codes, rate-limit windows and sessions.

use super::*;

#[async_trait]
impl Accounts for SqliteStore {
    async fn upsert_user(&self, user: &User) -> StoreResult<User> {
        let user = user.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO users (id, email, created_ms) VALUES (?1, ?2, ?3) ON CONFLICT (email) DO NOTHING",
                params![user.id.as_str(), user.email.as_str(), user.created_ms],
            )?;
            Ok(c.query_row("SELECT * FROM users WHERE email = ?1", [user.email.as_str()], user_from_row)?)
        })
        .await
    }

    async fn user(&self, id: &UserId) -> StoreResult<Option<User>> {
        let id = id.clone();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT * FROM users WHERE id = ?1",
                [id.as_str()],
                user_from_row,
            )
            .optional()?)
        })
        .await
    }

    async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        let email = email.clone();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT * FROM users WHERE email = ?1",
                [email.as_str()],
                user_from_row,
            )
            .optional()?)
        })
        .await
    }

    async fn put_login_code(&self, code: &LoginCode) -> StoreResult<()> {
        let code = code.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO login_codes (email, hash, expires_ms, attempts) VALUES (?1, ?2, ?3, 0)
                 ON CONFLICT (email) DO UPDATE SET hash = excluded.hash, expires_ms = excluded.expires_ms, attempts = 0",
                params![code.email.as_str(), code.hash, code.expires_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn check_login_code(
        &self,
        email: &Email,
        hash: &str,
        now_ms: i64,
    ) -> StoreResult<CodeCheck> {
        let (email, hash) = (email.clone(), hash.to_owned());
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let row: Option<(String, i64, u32)> = tx
                .query_row(
                    "SELECT hash, expires_ms, attempts FROM login_codes WHERE email = ?1",
                    [email.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let result = match row {
                Some((_, expires, attempts))
                    if expires <= now_ms || attempts >= CODE_MAX_ATTEMPTS =>
                {
                    CodeCheck::Missing
                }
                Some((stored, _, _)) if stored == hash => {
                    tx.execute("DELETE FROM login_codes WHERE email = ?1", [email.as_str()])?;
                    CodeCheck::Valid
                }
                Some(_) => {
                    tx.execute(
                        "UPDATE login_codes SET attempts = attempts + 1 WHERE email = ?1",
                        [email.as_str()],
                    )?;
                    CodeCheck::Wrong
                }
                None => CodeCheck::Missing,
            };
            tx.commit()?;
            Ok(result)
        })
        .await
    }

    async fn hit_rate_limit(
        &self,
        bucket: &str,
        window_start_ms: i64,
        window_ms: i64,
        hits: u64,
    ) -> StoreResult<u64> {
        let bucket = bucket.to_owned();
        let add = i64::try_from(hits).unwrap_or(i64::MAX);
        self.write(move |c| {
            c.execute("DELETE FROM rate_limits WHERE expires_ms < ?1", [window_start_ms])?;
            let hits: i64 = c.query_row(
                "INSERT INTO rate_limits (bucket, window_start, hits, expires_ms) VALUES (?1, ?2, ?4, ?3)
                 ON CONFLICT (bucket, window_start) DO UPDATE SET hits = hits + ?4 RETURNING hits",
                params![bucket, window_start_ms, window_start_ms + window_ms, add],
                |r| r.get(0),
            )?;
            Ok(hits.max(0) as u64)
        })
        .await
    }

    async fn create_session(&self, session: &Session) -> StoreResult<()> {
        let s = session.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO sessions (hash, user_id, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4)",
                params![s.hash, s.user_id.as_str(), s.created_ms, s.expires_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn session(&self, hash: &str) -> StoreResult<Option<Session>> {
        let hash = hash.to_owned();
        self.read(move |c| {
            let row = c
                .query_row(
                    "SELECT user_id, created_ms, expires_ms FROM sessions WHERE hash = ?1",
                    [&hash],
                    |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            row.map(|(user, created_ms, expires_ms)| {
                let user_id =
                    UserId::parse(&user).ok_or_else(|| anyhow!("bad user id in session"))?;
                Ok(Session {
                    hash,
                    user_id,
                    created_ms,
                    expires_ms,
                })
            })
            .transpose()
        })
        .await
    }

    async fn delete_session(&self, hash: &str) -> StoreResult<()> {
        let hash = hash.to_owned();
        self.write(move |c| {
            c.execute("DELETE FROM sessions WHERE hash = ?1", [hash])?;
            Ok(())
        })
        .await
    }

    async fn delete_user_sessions(&self, user: &UserId) -> StoreResult<usize> {
        let user = user.clone();
        self.write(move |c| {
            Ok(c.execute("DELETE FROM sessions WHERE user_id = ?1", [user.as_str()])?)
        })
        .await
    }

    async fn set_reports_opt_out(&self, user: &UserId, opt_out: bool) -> StoreResult<bool> {
        let user = user.clone();
        self.write(move |c| {
            Ok(c.execute(
                "UPDATE users SET reports_opt_out = ?1 WHERE id = ?2",
                params![opt_out, user.as_str()],
            )? == 1)
        })
        .await
    }
}
