//! The write path: group commit of ingest batches (one transaction for the batches queued
//! together, a savepoint each).

use super::*;

/// An ingest batch waiting for the committer, with everything that can be done without the
/// writer already done.
pub(super) struct Batch {
    ws: WorkspaceId,
    events: Vec<Event>,
    bodies: Vec<String>,
    prepared: BatchRollups,
    quota: Quota,
    reply: tokio::sync::oneshot::Sender<StoreResult<(IngestOutcome, i64)>>,
}

/// At most this many batches, or about this many events, share one transaction: a group
/// answers when its commit does, so a bound on a group is a bound on the latency it adds.
pub(super) const GROUP_BATCHES: usize = 64;
pub(super) const GROUP_EVENTS: usize = 10_000;

/// Group commit: one thread takes the ingest batches queued while the previous group committed
/// and writes them in one transaction, each in its own savepoint, so a refused batch (a
/// workspace being deleted, a quota used up) leaves the others in. A commit costs the same for
/// one batch as for sixty (the rollup, usage and index pages they share are written once), so
/// under load throughput grows with the queue instead of every request waiting its own turn.
/// A batch is answered only once its group is committed: nothing acknowledged is lost.
pub(super) fn start_committer(
    writer: Arc<Mutex<Connection>>,
) -> anyhow::Result<std::sync::mpsc::Sender<Batch>> {
    let (queue, batches) = std::sync::mpsc::channel::<Batch>();
    // Ends when every store clone (and so every sender) is gone.
    std::thread::Builder::new()
        .name("sqlite-committer".into())
        .spawn(move || {
            while let Ok(first) = batches.recv() {
                let mut events = first.events.len();
                let mut group = vec![first];
                while group.len() < GROUP_BATCHES && events < GROUP_EVENTS {
                    match batches.try_recv() {
                        Ok(b) => {
                            events += b.events.len();
                            group.push(b);
                        }
                        Err(_) => break,
                    }
                }
                commit_group(&writer, group);
            }
        })
        .context("starting the committer thread")?;
    Ok(queue)
}

pub(super) fn commit_group(writer: &Mutex<Connection>, group: Vec<Batch>) {
    match write_group(writer, &group) {
        Ok(results) => {
            for (batch, result) in group.into_iter().zip(results) {
                // A requester that went away (its connection closed) needs no answer.
                let _ = batch.reply.send(result);
            }
        }
        Err(e) => {
            // The group did not commit: no batch of it is stored, whatever its own outcome.
            let e = format!("{e:#}");
            for batch in group {
                let _ = batch.reply.send(Err(StoreError::Unexpected(anyhow!(
                    "committing ingest batches: {e}"
                ))));
            }
        }
    }
}

pub(super) fn write_group(
    writer: &Mutex<Connection>,
    group: &[Batch],
) -> anyhow::Result<Vec<StoreResult<(IngestOutcome, i64)>>> {
    let mut conn = writer
        .lock()
        .map_err(|_| anyhow!("sqlite writer lock poisoned"))?;
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(group.len());
    for batch in group {
        // Dropping an unreleased savepoint rolls back its batch, and only it.
        let sp = tx.savepoint()?;
        let result = ingest_one(&sp, batch);
        if result.is_ok() {
            sp.commit()?;
        }
        results.push(result.map_err(StoreError::from));
    }
    tx.commit()?;
    Ok(results)
}

/// Writes one batch inside the group's transaction: refused if the workspace is being deleted
/// (checked here, under the single writer, so once a deletion is accepted no batch lands behind
/// it; DynamoDB waits `in_flight_ms` instead) or its quota is used up (then each event is told
/// whether it was already stored, so a resent batch still learns its duplicates).
pub(super) fn ingest_one(c: &Connection, b: &Batch) -> Fallible<(IngestOutcome, i64)> {
    let ws = &b.ws;
    let open: bool = c
        .prepare_cached("SELECT deleting IS NULL FROM workspaces WHERE id = ?1")?
        .query_row([ws.as_str()], |r| r.get(0))
        .optional()?
        .unwrap_or(false);
    if !open {
        return Err(Refusal::Deleting.into());
    }
    let used: i64 = c
        .prepare_cached("SELECT events FROM usage WHERE workspace_id = ?1 AND month = ?2")?
        .query_row(params![ws.as_str(), b.quota.month], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let used = used.max(0) as u64;
    if used >= b.quota.limit {
        let mut find = c.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM events WHERE workspace_id = ?1 AND idempotency_key = ?2)",
        )?;
        let stored = b
            .events
            .iter()
            .map(|e| match e.idempotency_key() {
                Some(k) => find.query_row(params![ws.as_str(), k], |r| r.get(0)),
                None => Ok(false),
            })
            .collect::<rusqlite::Result<Vec<bool>>>()?;
        return Ok((IngestOutcome::QuotaExceeded { used, stored }, 0));
    }
    let mut outcomes = Vec::with_capacity(b.events.len());
    {
        let mut insert = c.prepare_cached(
            "INSERT INTO events (workspace_id, ts_ms, id, idempotency_key, expires_ms, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT DO NOTHING",
        )?;
        for (e, body) in b.events.iter().zip(&b.bodies) {
            let n = insert.execute(params![
                ws.as_str(),
                e.ts_ms,
                e.id,
                e.idempotency_key(),
                e.expires_ms,
                body
            ])?;
            outcomes.push(if n == 1 {
                Stored::Accepted
            } else {
                Stored::Duplicate
            });
        }
    }
    // Prepared for the whole batch outside the writer; redone here only for duplicates.
    let pending = if outcomes.iter().all(|o| *o == Stored::Accepted) {
        add_batch(c, ws, &b.prepared)?
    } else {
        let accepted = b
            .events
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| **o == Stored::Accepted)
            .map(|(e, _)| e);
        add_batch(c, ws, &BatchRollups::of(accepted)?)?
    };
    let accepted_count = outcomes.iter().filter(|o| **o == Stored::Accepted).count() as i64;
    c.prepare_cached(
        "INSERT INTO usage (workspace_id, month, events) VALUES (?1, ?2, ?3)
         ON CONFLICT (workspace_id, month) DO UPDATE SET events = events + excluded.events",
    )?
    .execute(params![ws.as_str(), b.quota.month, accepted_count])?;
    Ok((IngestOutcome::Stored(outcomes), pending))
}

#[async_trait]
impl Ingest for SqliteStore {
    async fn ingest(
        &self,
        ws: &WorkspaceId,
        events: &[Event],
        quota: &Quota,
    ) -> StoreResult<IngestOutcome> {
        // Serialised and folded here, outside the writer: the writer is the bottleneck.
        let bodies = events
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow!(e))?;
        let prepared = BatchRollups::of(events)?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let batch = Batch {
            ws: ws.clone(),
            events: events.to_vec(),
            bodies,
            prepared,
            quota: quota.clone(),
            reply,
        };
        self.committer
            .send(batch)
            .map_err(|_| anyhow!("the sqlite committer has stopped"))?;
        let (outcome, pending) = answer
            .await
            .map_err(|_| anyhow!("the sqlite committer dropped a batch unanswered"))??;
        if pending >= COMPACT_EVERY {
            self.compactor.request(ws);
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::sqlite::test_events as events;

    fn batch(
        ws: &WorkspaceId,
        events: Vec<Event>,
    ) -> (
        Batch,
        tokio::sync::oneshot::Receiver<StoreResult<(IngestOutcome, i64)>>,
    ) {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let batch = Batch {
            ws: ws.clone(),
            bodies: events
                .iter()
                .map(|e| serde_json::to_string(e).unwrap())
                .collect(),
            prepared: BatchRollups::of(&events).unwrap(),
            events,
            quota: Quota {
                month: "2027-01".into(),
                limit: 1_000,
            },
            reply,
        };
        (batch, answer)
    }

    /// Batches committed together stay independent: a refused batch (its workspace being
    /// deleted) is rolled back alone, a later batch sees an earlier one's events as duplicates,
    /// and each is answered with its own outcome.
    #[test]
    fn a_group_commits_each_batch_on_its_own_terms() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c).unwrap();
        let (open, closing) = (
            WorkspaceId::generate(1_800_000_000_000),
            WorkspaceId::generate(1_800_000_000_000),
        );
        for (ws, deleting) in [(&open, None), (&closing, Some("del_1"))] {
            c.execute(
                "INSERT INTO workspaces (id, name, plan, created_ms, deleting) VALUES (?1, 'w', 'pro', 0, ?2)",
                params![ws.as_str(), deleting],
            )
            .unwrap();
        }
        let writer = Mutex::new(c);
        let (first, mut a1) = batch(&open, events(&["a", "b"]));
        let (refused, mut a2) = batch(&closing, events(&["c"]));
        let (again, mut a3) = batch(&open, events(&["b", "d"]));
        commit_group(&writer, vec![first, refused, again]);

        let (outcome, _) = a1.try_recv().unwrap().unwrap();
        assert_eq!(
            outcome,
            IngestOutcome::Stored(vec![Stored::Accepted, Stored::Accepted])
        );
        assert!(matches!(
            a2.try_recv().unwrap(),
            Err(StoreError::Refused(Refusal::Deleting))
        ));
        let (outcome, _) = a3.try_recv().unwrap().unwrap();
        assert_eq!(
            outcome,
            IngestOutcome::Stored(vec![Stored::Duplicate, Stored::Accepted])
        );

        let c = writer.lock().unwrap();
        let count = |sql: &str, ws: &WorkspaceId| -> i64 {
            c.query_row(sql, [ws.as_str()], |r| r.get(0)).unwrap()
        };
        let stored = "SELECT COUNT(*) FROM events WHERE workspace_id = ?1";
        let used = "SELECT COALESCE(SUM(events), 0) FROM usage WHERE workspace_id = ?1";
        assert_eq!(count(stored, &open), 3);
        assert_eq!(count(used, &open), 3);
        assert_eq!(count(stored, &closing), 0);
        assert_eq!(count(used, &closing), 0);
    }
}
