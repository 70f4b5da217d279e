//! The write path on DynamoDB: events and their id guards written first, then the batch's
//! rollups; a batch whose writer died is finished by `recover`.

use super::items::{self, EventBody, EventItem, GuardItem, MarkerItem};
use super::*;
use crate::domain::event::Event;
use crate::domain::ids::WorkspaceId;
use crate::domain::rollup;
use crate::domain::time::hour_of;
use crate::ports::StoreResult;
use anyhow::anyhow;
use aws_sdk_dynamodb::types::ReturnValue;
use futures_util::stream;
use std::borrow::Cow;
use std::collections::HashSet;

impl DynamoStore {
    pub(super) fn event_item(ws: &WorkspaceId, e: &Event, batch: &str) -> anyhow::Result<Item> {
        items::item(schema::event(ws, e), &EventItem::new(e, batch))
    }

    /// The size DynamoDB stores (and charges storage for, before its 100-byte per-item
    /// overhead) for this event's item: the storage figure of the cost model (docs/COST.md).
    #[cfg(feature = "test-hooks")]
    pub fn event_item_bytes(ws: &WorkspaceId, e: &Event) -> usize {
        let batch = ids::batch_id(e.ts_ms);
        Self::event_item(ws, e, &batch).map_or(0, |item| super::hooks::item_size(&item))
    }

    /// Writes one event once. For an id sent without a timestamp, a guard item keyed by the id
    /// alone makes retries (which get a new receive time) recognisable.
    pub(super) async fn write_event(
        &self,
        ws: &WorkspaceId,
        e: &Event,
        batch: &str,
    ) -> anyhow::Result<Stored> {
        let item = Self::event_item(ws, e, batch)?;
        if e.dedup == Dedup::None {
            self.put(item, None).await?;
            return Ok(Stored::Accepted);
        }
        if !e.idempotent_without_timestamp() {
            let written = self.put(item, Some("attribute_not_exists(pk)")).await?;
            return Ok(if written {
                Stored::Accepted
            } else {
                Stored::Duplicate
            });
        }
        let (epk, esk) = schema::event(ws, e);
        let guard = items::item(
            schema::guard(ws, &e.id),
            &GuardItem {
                epk,
                esk,
                expires_at: items::ttl(e.expires_ms),
            },
        )?;
        let size = self.hooks.write_size(&guard);
        let claimed = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(guard))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .set_return_consumed_capacity(self.hooks.consumed())
            .send()
            .await;
        let (epk, esk) = match claimed {
            Ok(out) => {
                self.hooks.record_capacity(out.consumed_capacity(), size);
                items::key_of(&item)?
            }
            Err(SdkError::ServiceError(ctx))
                if ctx.err().is_conditional_check_failed_exception() =>
            {
                self.hooks.record_capacity(None, size);
                // The id was claimed before. If the claimant died before writing the event, write it
                // under the claimed key now; the conditional put lets only one retry do so.
                let old = match ctx.err() {
                    PutItemError::ConditionalCheckFailedException(c) => {
                        c.item().cloned().unwrap_or_default()
                    }
                    _ => Item::new(),
                };
                let old: GuardItem = items::read(old)?;
                (old.epk, old.esk)
            }
            Err(e) => return Err(err(e)),
        };
        let claimed_key = (epk, esk);
        if self.get(claimed_key.clone()).await?.is_some() {
            return Ok(Stored::Duplicate);
        }
        let ts = schema::event_ts(&claimed_key.1)
            .ok_or_else(|| anyhow!("bad guarded key {}", claimed_key.1))?;
        let mut claimed_event = e.clone();
        claimed_event.ts_ms = ts;
        let item = items::item(
            claimed_key,
            &EventItem {
                d: Cow::Owned(claimed_event),
                ..EventItem::new(e, batch)
            },
        )?;
        let written = self.put(item, Some("attribute_not_exists(pk)")).await?;
        Ok(if written {
            Stored::Accepted
        } else {
            Stored::Duplicate
        })
    }

    /// Whether an event with this identity is stored already (for answering a retry when nothing
    /// new may be written).
    pub(super) async fn already_stored(&self, ws: &WorkspaceId, e: &Event) -> anyhow::Result<bool> {
        match e.dedup {
            Dedup::None => Ok(false),
            Dedup::IdAndTimestamp => Ok(self.get(schema::event(ws, e)).await?.is_some()),
            Dedup::Id => {
                let Some(guard) = self.get(schema::guard(ws, &e.id)).await? else {
                    return Ok(false);
                };
                let guard: GuardItem = items::read(guard)?;
                Ok(self.get((guard.epk, guard.esk)).await?.is_some())
            }
        }
    }

    /// Step 4: the batch's groups as delta items, for the deferred views (see `rollups`), then the
    /// core rollups.
    pub(super) async fn apply_batch<'a>(
        &self,
        ws: &WorkspaceId,
        batch: &str,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> anyhow::Result<()> {
        let events: Vec<&Event> = events.into_iter().collect();
        // Events carry their plan's expiry; the batch's rollups last as long as that plan says.
        let history_ms = events
            .iter()
            .map(|e| e.expires_ms - e.ts_ms)
            .max()
            .unwrap_or(0);
        let groups = rollup::Groups::of(events);
        let core = groups.views(rollup::Select::Core);
        self.write_deltas(ws, batch, groups).await?;
        self.apply_rollups(ws, batch, core, history_ms).await
    }

    /// Deletes a finished batch's marker and refunds the quota it reserved but did not use.
    /// Only the caller whose delete succeeds refunds, so racing recoveries refund once.
    pub(super) async fn finish_batch(
        &self,
        ws: &WorkspaceId,
        batch: &str,
        month: &str,
        unused: u64,
    ) -> anyhow::Result<()> {
        let deleted = self
            .delete(
                schema::batch_marker(ws, batch),
                Some("attribute_exists(pk)"),
            )
            .await?;
        if deleted && unused > 0 {
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(schema::usage(ws, month))))
                .update_expression("ADD n :d")
                .expression_attribute_values(":d", n(-(unused as i64)))
                .set_return_consumed_capacity(self.hooks.consumed())
                .send()
                .await
                .map_err(err)?;
            self.hooks.record_capacity(out.consumed_capacity(), 64);
        }
        Ok(())
    }

    pub(super) async fn recover_stale(
        &self,
        ws: &WorkspaceId,
        now_ms: i64,
    ) -> anyhow::Result<usize> {
        let markers = self.query_all(schema::marker_pk(ws), None, None).await?;
        let mut finished = 0;
        for marker in markers {
            let (_, sk) = items::key_of(&marker)?;
            let Some(batch) = schema::marked_batch(&sk) else {
                continue; // compaction's lock and watermark, not batches
            };
            let MarkerItem {
                created,
                month,
                reserved,
                hours,
            } = items::read(marker)?;
            if now_ms - created < self.lease_ms {
                continue; // its writer may still be working
            }
            let batch = batch.to_owned();
            let mut events = Vec::new();
            for hour in hours {
                for item in self
                    .query_all(
                        schema::event_pk(ws, hour),
                        None,
                        Some(("b = :f", s(batch.clone()))),
                    )
                    .await?
                {
                    events.push(items::read::<EventBody>(item)?.d);
                }
            }
            tracing::warn!(workspace = %ws, batch, events = events.len(), "finishing a batch left by a crashed writer");
            self.apply_batch(ws, &batch, &events).await?;
            self.finish_batch(
                ws,
                &batch,
                &month,
                reserved.saturating_sub(events.len() as u64),
            )
            .await?;
            finished += 1;
        }
        Ok(finished)
    }

    /// Finishes batches a crashed writer left half-applied (once its lease is over) and folds
    /// pending deltas, at most once per `recovery_interval_ms` per workspace. `ingest` runs it
    /// before each batch; tests call it to drive recovery.
    pub async fn recover(&self, ws: &WorkspaceId) -> StoreResult<usize> {
        let now = self.now_ms();
        {
            let mut last = self
                .last_recovery
                .lock()
                .map_err(|_| anyhow!("recovery lock poisoned"))?;
            if last
                .get(ws)
                .is_some_and(|t| now - t < self.recovery_interval_ms)
            {
                return Ok(0);
            }
            last.insert(ws.clone(), now);
        }
        let finished = self.recover_stale(ws, now).await?;
        self.compact(ws, now).await?;
        Ok(finished)
    }

    /// An ingest request reads the workspace before it writes, for at most the ingest
    /// function's timeout (15 s); a batch whose writer died is finished by the next recovery
    /// once its lease is over.
    pub fn in_flight_ms(&self) -> i64 {
        self.lease_ms + 30_000
    }
}

#[async_trait]
impl Ingest for DynamoStore {
    async fn ingest(
        &self,
        ws: &WorkspaceId,
        events: &[Event],
        quota: &Quota,
    ) -> StoreResult<IngestOutcome> {
        if events.is_empty() {
            return Ok(IngestOutcome::Stored(Vec::new()));
        }
        if let Err(e) = self.recover(ws).await {
            // Recovery is housekeeping for earlier batches; this batch does not depend on it.
            tracing::warn!(workspace = %ws, error = %e, "recovery of stale batches failed");
        }
        // Repeats inside one request are duplicates of their first occurrence: no second write.
        let mut seen = HashSet::new();
        let first: Vec<bool> = events
            .iter()
            .map(|e| e.idempotency_key().is_none_or(|k| seen.insert(k)))
            .collect();
        let reserve = first.iter().filter(|f| **f).count() as u64;

        // 1. Reserve quota atomically: concurrent batches can overshoot by at most one batch.
        let reserved = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(schema::usage(ws, &quota.month))))
            .update_expression("ADD n :k")
            .condition_expression("attribute_not_exists(n) OR n < :limit")
            .expression_attribute_values(":k", n(reserve))
            .expression_attribute_values(":limit", n(quota.limit))
            .return_values(ReturnValue::None)
            .set_return_consumed_capacity(self.hooks.consumed())
            .send()
            .await;
        match reserved {
            Ok(out) => self.hooks.record_capacity(out.consumed_capacity(), 64),
            Err(e) if is_condition_failed(&e) => {
                let mut stored = Vec::with_capacity(events.len());
                // Rare (a client retrying after the quota ran out): one look per event.
                for e in events {
                    stored.push(self.already_stored(ws, e).await?);
                }
                return Ok(IngestOutcome::QuotaExceeded {
                    used: self.usage(ws, &quota.month).await?,
                    stored,
                });
            }
            Err(e) => return Err(err(e).into()),
        }

        // 2. The marker: proof of a batch in flight until its rollups are applied.
        let batch = ids::batch_id(self.now_ms());
        let hours: HashSet<i64> = events.iter().map(|e| hour_of(e.ts_ms)).collect();
        let marker = MarkerItem {
            created: self.now_ms(),
            month: quota.month.clone(),
            reserved: reserve,
            hours: hours.into_iter().collect(),
        };
        self.put(
            items::item(schema::batch_marker(ws, &batch), &marker)?,
            None,
        )
        .await?;

        // 3. The events, each exactly once.
        let batch_ref = batch.as_str();
        let first_ref = &first;
        let outcomes: Vec<Stored> = stream::iter(0..events.len())
            .map(|i| async move {
                if first_ref[i] {
                    self.write_event(ws, &events[i], batch_ref).await
                } else {
                    Ok(Stored::Duplicate)
                }
            })
            .buffered(CONCURRENCY)
            .try_collect()
            .await?;
        if self.hooks.crashes_at(CrashPoint::AfterEvents) {
            return Err(anyhow!("simulated crash after the events were written").into());
        }

        // 4. Rollups, then 5. marker and refund.
        let accepted = events
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| **o == Stored::Accepted)
            .map(|(e, _)| e);
        let accepted_count = outcomes.iter().filter(|o| **o == Stored::Accepted).count() as u64;
        let accepted: Vec<&Event> = accepted.collect();
        self.apply_batch(ws, &batch, accepted.iter().copied())
            .await?;
        self.finish_batch(ws, &batch, &quota.month, reserve - accepted_count)
            .await?;
        Ok(IngestOutcome::Stored(outcomes))
    }
}
