//! Billing records and processed Stripe events.

use super::*;

#[async_trait]
impl BillingRecords for SqliteStore {
    async fn billing(&self, ws: &WorkspaceId) -> StoreResult<Option<Billing>> {
        let ws = ws.clone();
        self.read(move |c| {
            billing_row(
                c,
                "SELECT version, body FROM billing WHERE workspace_id = ?1",
                ws.as_str(),
            )
        })
        .await
    }

    async fn billing_by_customer(&self, customer_id: &str) -> StoreResult<Option<Billing>> {
        let customer = customer_id.to_owned();
        self.read(move |c| {
            billing_row(
                c,
                "SELECT version, body FROM billing WHERE customer_id = ?1",
                &customer,
            )
        })
        .await
    }

    async fn save_billing(
        &self,
        billing: &mut Billing,
        plan: Plan,
        due_ms: Option<i64>,
        event: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<BillingSave> {
        let mut next = billing.clone();
        next.version += 1;
        let event = event.map(str::to_owned);
        let saved = next.clone();
        let outcome = self
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if let Some(id) = &event {
                    let fresh = tx.execute(
                        "INSERT INTO stripe_events (id, at_ms) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
                        params![id, now_ms],
                    )?;
                    if fresh == 0 {
                        return Ok(BillingSave::Duplicate);
                    }
                }
                let current: Option<i64> = tx
                    .query_row(
                        "SELECT version FROM billing WHERE workspace_id = ?1",
                        [saved.workspace.as_str()],
                        |r| r.get(0),
                    )
                    .optional()?;
                if current.unwrap_or(0) as u64 != saved.version - 1 {
                    return Ok(BillingSave::Conflict);
                }
                tx.execute(
                    "INSERT INTO billing (workspace_id, customer_id, due_ms, version, body) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (workspace_id) DO UPDATE SET customer_id = excluded.customer_id,
                        due_ms = excluded.due_ms, version = excluded.version, body = excluded.body",
                    params![
                        saved.workspace.as_str(),
                        saved.customer_id,
                        due_ms,
                        saved.version as i64,
                        serde_json::to_string(&saved)?
                    ],
                )?;
                tx.execute(
                    "UPDATE workspaces SET plan = ?1 WHERE id = ?2",
                    params![plan.as_str(), saved.workspace.as_str()],
                )?;
                tx.commit()?;
                Ok(BillingSave::Saved)
            })
            .await?;
        if outcome == BillingSave::Saved {
            *billing = next;
        }
        Ok(outcome)
    }

    async fn record_stripe_event(&self, event: &str, now_ms: i64) -> StoreResult<bool> {
        let id = event.to_owned();
        // Ids older than `STRIPE_EVENT_TTL_MS` go in `purge_expired`.
        self.write(move |c| {
            Ok(c.execute(
                "INSERT INTO stripe_events (id, at_ms) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
                params![id, now_ms],
            )? == 1)
        })
        .await
    }

    async fn stripe_event_seen(&self, event: &str) -> StoreResult<bool> {
        let id = event.to_owned();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT COUNT(*) > 0 FROM stripe_events WHERE id = ?1",
                [id],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn billing_due(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<Billing>> {
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT version, body FROM billing WHERE due_ms IS NOT NULL AND due_ms <= ?1 ORDER BY due_ms LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now_ms, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?;
            rows.map(|row| {
                let (version, body) = row?;
                billing_of(version, &body)
            })
            .collect()
        })
        .await
    }
}

/// How long a processed Stripe event id is remembered: Stripe retries a delivery for up to 3
/// days, so a month of ids is plenty to recognise one.
pub(super) const STRIPE_EVENT_TTL_MS: i64 = 30 * 86_400_000;

pub(super) fn billing_row(c: &Connection, sql: &str, key: &str) -> Fallible<Option<Billing>> {
    let row: Option<(i64, String)> = c
        .query_row(sql, [key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(version, body)| billing_of(version, &body))
        .transpose()
}

pub(super) fn billing_of(version: i64, body: &str) -> Fallible<Billing> {
    let mut b: Billing = serde_json::from_str(body)?;
    b.version = version as u64;
    Ok(b)
}
