//! Rollup items on DynamoDB: the versioned read-modify-write every writer uses, and the deltas of
//! the deferred views (every view but the workspace total, see `View::is_core`).
//!
//! Those views have many values per batch: writing their rollup items at ingest would cost one
//! write per model, end-user and pair of values, several times the ingest budget of write units. So
//! ingest writes a batch's groups (`rollup::Groups`, from which every view is expanded) as one
//! delta item, or a few under DynamoDB's item size limit, and `compact` later folds many batches
//! into their rollup items at once, writing each item once per run however many batches
//! touched it. Readers of a deferred view merge the deltas not yet folded, so answers never wait for
//! compaction.
//!
//! Which deltas are folded is one *watermark* per workspace (`W#{ws}#B` / `wm`): a run folds, in
//! batch-id order, the batches after the watermark and before the oldest batch still in flight
//! (and before `SETTLE_MS` ago, so no slower writer can still add a batch below it), then moves
//! the watermark to its last batch. Deltas at or below the watermark are never read again and
//! expire by TTL, which costs no write units, unlike a delete.
//!
//! Exactly once: a run holds a per-workspace lock item (`W#{ws}#B` / `cmp`) naming its id, its
//! batches and where the watermark will go. Rollup items record the run's id in their pending
//! set, as ingest records batch ids, so a run resumed after a crash skips the items it already
//! wrote; the watermark moves only after every item is written, and the lock goes last.

use super::items::{self, DeltaItem, LockItem, RollupItem, WatermarkItem};
use super::*;
use crate::domain::ids::WorkspaceId;
use crate::domain::plan::Plan;
use crate::domain::retention;
use crate::domain::rollup::Rollup;
use crate::domain::rollup::RollupKey;
use crate::domain::rollup::Select;
use crate::domain::rollup::View;
use crate::domain::rollup::{self, Groups};
use anyhow::anyhow;
use futures_util::stream;
use std::collections::HashMap;
use std::collections::HashSet;
use std::time::Duration;

/// Largest delta item written (DynamoDB's limit is 400 KB).
pub(super) const MAX_DELTA_BYTES: usize = 300_000;
/// Batches one compaction run folds.
pub(super) const MAX_BATCHES_PER_RUN: usize = 500;
/// A batch is folded only once its id is this old: longer than ingest's timeout plus any clock
/// skew between instances, so no batch with a smaller id can still be starting.
pub(super) const SETTLE_MS: i64 = 60_000;
/// Delta items outlive any compaction delay by far, then TTL deletes them for free.
pub(super) const DELTA_TTL_MS: i64 = 2 * 86_400_000;

/// One stored delta item of a batch, decoded.
pub(super) struct Delta {
    pub(super) batch: String,
    pub(super) groups: Groups,
}

impl Delta {
    /// The delta item's key, its groups, and its expiry (TTL seconds).
    pub(super) fn read(item: Item) -> anyhow::Result<(Key, Groups, i64)> {
        let key = items::key_of(&item)?;
        let stored: DeltaItem = items::read(item)?;
        let groups = Groups::decode(&stored.d, stored.f)
            .map_err(|e| anyhow!("corrupt delta item {}: {e}", key.1))?;
        Ok((key, groups, stored.expires_at))
    }
}

/// A rollup item as stored: its key, version, value, and the writers it holds (sorted: a
/// string set has no order; runs fold and end in batch order).
pub(super) struct StoredRollup {
    pub(super) key: Key,
    pub(super) version: u64,
    pub(super) rollup: Rollup,
    pub(super) pending: Vec<String>,
}

impl StoredRollup {
    pub(super) fn read(item: Item) -> anyhow::Result<StoredRollup> {
        let key = items::key_of(&item)?;
        let RollupItem { v, d, mut p, .. } = items::read(item)?;
        let rollup = Rollup::decode(&d).ok_or_else(|| anyhow!("corrupt rollup {}", key.1))?;
        p.sort();
        Ok(StoredRollup {
            key,
            version: v,
            rollup,
            pending: p,
        })
    }
}

/// A rollup item to write: the version after `read` (None: there was no item), its value,
/// the writers it holds, and its expiry.
pub(super) fn rollup_item(
    key: Key,
    read: Option<u64>,
    rollup: Vec<u8>,
    pending: Vec<String>,
    expires_ms: i64,
) -> anyhow::Result<Item> {
    let attrs = RollupItem {
        v: read.map_or(1, |v| v + 1),
        d: rollup,
        p: pending,
        expires_at: Some(items::ttl(expires_ms)),
    };
    items::item(key, &attrs)
}

/// The write that lands only on the version read (optimistic concurrency): its condition and
/// values.
pub(super) fn on_version(read: Option<u64>) -> (&'static str, Option<HashMap<String, Av>>) {
    match read {
        Some(v) => ("v = :v", Some(HashMap::from([(":v".to_owned(), n(v))]))),
        None => ("attribute_not_exists(pk)", None),
    }
}

/// A compaction run: its id (recorded in rollup items), the batches it folds, and the
/// watermark it moves to (its last batch).
pub(super) struct Run {
    id: String,
    batches: Vec<String>,
    created: i64,
}

impl DynamoStore {
    /// Merges deltas into rollup items, each at most once per batch (see the module comment).
    /// Each item written expires as the plan keeping `history_ms` says (`domain::retention`).
    pub(super) async fn apply_rollups(
        &self,
        ws: &WorkspaceId,
        batch: &str,
        deltas: impl IntoIterator<Item = (RollupKey, Rollup)>,
        history_ms: i64,
    ) -> anyhow::Result<()> {
        let now_ms = self.now_ms();
        let mut todo: Vec<(RollupKey, Rollup)> = deltas
            .into_iter()
            // An hour already expired was deleted by a retention pass (or soon will be by TTL):
            // a late delta must not bring back part of it.
            .filter(|(k, _)| retention::rollup_expiry_ms(k.hour, history_ms) > now_ms)
            .collect();
        let mut attempt = 0u32;
        while !todo.is_empty() {
            let keys = todo
                .iter()
                .map(|(k, _)| schema::rollup(ws, &k.view, k.hour, &k.value))
                .collect::<Vec<_>>();
            let mut current: HashMap<Key, Current> = HashMap::new();
            for item in self.batch_get(keys).await? {
                let stored = StoredRollup::read(item)?;
                current.insert(
                    stored.key,
                    Current {
                        version: Some(stored.version),
                        rollup: stored.rollup,
                        pending: stored.pending,
                    },
                );
            }
            // Which batch ids in the items' pending sets still have a live marker.
            let others: HashSet<String> = current
                .values()
                .flat_map(|c| c.pending.iter())
                .filter(|b| *b != batch)
                .cloned()
                .collect();
            let live = self.live_writers(ws, others).await?;

            let crash_after_first = self.hooks.crashes_at(CrashPoint::AfterFirstRollup);
            let results: Vec<Option<(RollupKey, Rollup)>> =
                stream::iter(todo.drain(..).enumerate())
                    .map(|(i, (key, delta))| {
                        let item_key = schema::rollup(ws, &key.view, key.hour, &key.value);
                        let cur = current.remove(&item_key);
                        let live = &live;
                        async move {
                            if crash_after_first && i > 0 {
                                return Ok::<_, anyhow::Error>(None);
                            }
                            let cur = cur.unwrap_or(Current {
                                version: None,
                                rollup: Rollup::default(),
                                pending: Vec::new(),
                            });
                            if cur.pending.iter().any(|b| b == batch) {
                                return Ok(None); // applied already (by the writer that crashed, or a racing recovery)
                            }
                            let mut merged = cur.rollup;
                            merged.merge(&delta);
                            let mut pending: Vec<String> = cur
                                .pending
                                .into_iter()
                                .filter(|b| live.contains(b))
                                .collect();
                            pending.push(batch.to_owned());
                            let item = rollup_item(
                                item_key,
                                cur.version,
                                merged.encode(),
                                pending,
                                retention::rollup_expiry_ms(key.hour, history_ms),
                            )?;
                            let (condition, expected) = on_version(cur.version);
                            if self.put_with(item, Some(condition), expected).await? {
                                Ok(None)
                            } else {
                                Ok(Some((key, delta))) // someone else wrote it first: read again
                            }
                        }
                    })
                    .buffer_unordered(CONCURRENCY)
                    .try_collect()
                    .await?;
            if crash_after_first {
                anyhow::bail!("simulated crash after the first rollup write");
            }
            todo = results.into_iter().flatten().collect();
            if !todo.is_empty() {
                attempt += 1;
                if attempt > 50 {
                    anyhow::bail!("rollup items stayed contended after {attempt} attempts");
                }
                tokio::time::sleep(Duration::from_millis(rand::random_range(
                    1..(5u64 << attempt.min(5)),
                )))
                .await;
            }
        }
        Ok(())
    }

    /// Which writer ids (batch ids and compaction run ids) still have work in flight.
    pub(super) async fn live_writers(
        &self,
        ws: &WorkspaceId,
        ids: HashSet<String>,
    ) -> anyhow::Result<HashSet<String>> {
        let keys = ids
            .iter()
            .map(|writer| schema::writer_marker(ws, writer))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut live = HashSet::new();
        for item in self.batch_get(keys).await? {
            let (_, sk) = items::key_of(&item)?;
            match schema::marked_batch(&sk) {
                Some(batch) => live.insert(batch.to_owned()),
                None => live.insert(items::read::<LockItem>(item)?.id),
            };
        }
        Ok(live)
    }

    /// Writes a batch's groups (the deferred views are expanded from them when read or compacted),
    /// sorted and cut the same way every time, so recovery of a crashed writer overwrites
    /// exactly the items the writer wrote.
    pub(super) async fn write_deltas(
        &self,
        ws: &WorkspaceId,
        batch: &str,
        mut groups: Groups<&str>,
    ) -> anyhow::Result<()> {
        if groups.is_empty() {
            return Ok(());
        }
        groups.sort();
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        let mut current: Groups<&str> = Groups::default();
        let mut size = 0;
        let mut cut =
            |current: &mut Groups<&str>, size: &mut usize, entry: usize| -> anyhow::Result<()> {
                if *size + entry > MAX_DELTA_BYTES && !current.is_empty() {
                    chunks.push(postcard::to_stdvec(&*current)?);
                    *current = Groups::default();
                    *size = 0;
                }
                *size += entry;
                Ok(())
            };
        for g in groups.fine {
            cut(
                &mut current,
                &mut size,
                rollup::stored_len(g.0, &g.1, &g.2)?,
            )?;
            current.fine.push(g);
        }
        for g in groups.users {
            cut(
                &mut current,
                &mut size,
                rollup::stored_len(g.0, &g.1, &g.2)?,
            )?;
            current.users.push(g);
        }
        for g in groups.tags {
            cut(
                &mut current,
                &mut size,
                rollup::stored_len(g.0, &(g.1, g.2), &g.3)?,
            )?;
            current.tags.push(g);
        }
        chunks.push(postcard::to_stdvec(&current)?);
        let expires_at = items::ttl(self.now_ms() + DELTA_TTL_MS);
        stream::iter(chunks.into_iter().enumerate())
            .map(|(i, d)| async move {
                let item =
                    items::item(schema::delta(ws, batch, i), &DeltaItem::new(d, expires_at))?;
                self.put(item, None).await
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<bool>>()
            .await?;
        Ok(())
    }

    /// The last batch folded into the deferred rollup items ("" before the first compaction).
    pub(super) async fn watermark(&self, ws: &WorkspaceId) -> anyhow::Result<String> {
        Ok(match self.get(schema::watermark(ws)).await? {
            Some(item) => items::read::<WatermarkItem>(item)?.upto,
            None => String::new(),
        })
    }

    /// Delta items of batches after `after` (the watermark), in batch order; only those of
    /// `batch` when given.
    pub(super) async fn deltas_after(
        &self,
        ws: &WorkspaceId,
        after: &str,
        batch: Option<&str>,
    ) -> anyhow::Result<Vec<Delta>> {
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .expression_attribute_values(":pk", s(schema::delta_pk(ws)));
        let q = match batch {
            Some(b) => q
                .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                .expression_attribute_values(":p", s(schema::deltas_of(b))),
            None => q
                .key_condition_expression("pk = :pk AND sk > :after")
                .expression_attribute_values(":after", s(schema::after_deltas_of(after))),
        };
        let mut out = Vec::new();
        let mut pages = q.into_paginator().items().send();
        while let Some(item) = pages.try_next().await.map_err(super::err)? {
            let ((_, sk), groups, _) = Delta::read(item)?;
            out.push(Delta {
                batch: schema::delta_batch(&sk).to_owned(),
                groups,
            });
        }
        Ok(out)
    }

    /// Rollups of a deferred view: the rollup items, plus the deltas not yet folded into them.
    /// Read in this order (items, lock, watermark, deltas) so a compaction that runs meanwhile
    /// can at worst hide a batch for that one read, never count it twice.
    pub(super) async fn merge_pending(
        &self,
        ws: &WorkspaceId,
        view: &View,
        from_hour: i64,
        to_hour: i64,
        items: Vec<(RollupKey, Rollup, Vec<String>)>,
    ) -> anyhow::Result<Vec<(RollupKey, Rollup)>> {
        let lock = self.get(schema::compaction_lock(ws)).await?;
        let folding: HashMap<String, String> = match lock {
            Some(l) => {
                let LockItem { id, batches, .. } = items::read(l)?;
                batches.into_iter().map(|b| (b, id.clone())).collect()
            }
            None => HashMap::new(),
        };
        let watermark = self.watermark(ws).await?;
        let mut merged: HashMap<RollupKey, (Rollup, Vec<String>)> = items
            .into_iter()
            .map(|(k, r, pending)| (k, (r, pending)))
            .collect();
        for Delta { batch, groups } in self.deltas_after(ws, &watermark, None).await? {
            for (k, delta) in groups.views(Select::One(view)) {
                if k.hour < from_hour || k.hour >= to_hour {
                    continue;
                }
                let slot = merged
                    .entry(k)
                    .or_insert_with(|| (Rollup::default(), Vec::new()));
                let folded = folding.get(&batch).is_some_and(|run| slot.1.contains(run));
                if !folded {
                    slot.0.merge(&delta);
                }
            }
        }
        let mut out: Vec<(RollupKey, Rollup)> =
            merged.into_iter().map(|(k, (r, _))| (k, r)).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Runs a compaction now, whatever the recovery interval (tests, benchmarks, operators).
    pub async fn compact_now(&self, ws: &WorkspaceId) -> anyhow::Result<usize> {
        self.compact(ws, self.now_ms()).await
    }

    /// Folds settled batches' deltas into the deferred rollup items, or resumes a run that a
    /// crashed compactor left. Returns how many batches it folded (0 when another run holds
    /// the lock).
    pub(super) async fn compact(&self, ws: &WorkspaceId, now_ms: i64) -> anyhow::Result<usize> {
        let run = match self.get(schema::compaction_lock(ws)).await? {
            Some(lock) => {
                let LockItem {
                    id,
                    created,
                    mut batches,
                } = items::read(lock)?;
                if now_ms - created < self.lease_ms {
                    return Ok(0); // another compactor is on it
                }
                // A string set has no order; runs fold and end in batch order.
                batches.sort();
                let run = Run {
                    id,
                    batches,
                    created,
                };
                // Take the stale run over; only one taker wins the condition.
                let taken = self
                    .put_with(
                        lock_item(ws, &run, now_ms)?,
                        Some("created = :c"),
                        Some(HashMap::from([(":c".to_owned(), n(run.created))])),
                    )
                    .await?;
                if !taken {
                    return Ok(0);
                }
                tracing::warn!(workspace = %ws, run = run.id, "resuming a compaction left by a crashed compactor");
                run
            }
            None => {
                let watermark = self.watermark(ws).await?;
                let mut batches: Vec<String> = self
                    .deltas_after(ws, &watermark, None)
                    .await?
                    .into_iter()
                    .map(|d| d.batch)
                    .collect();
                batches.dedup();
                // Stop before the oldest batch still in flight and before recent ids.
                let in_flight = self.batches_in_flight(ws).await?.into_iter().min();
                let settled =
                    ulid::Ulid::from_parts((now_ms - self.settle_ms).max(0) as u64, 0).to_string();
                let cutoff = in_flight.map_or(settled.clone(), |b| b.min(settled));
                batches.retain(|b| *b < cutoff);
                batches.truncate(MAX_BATCHES_PER_RUN);
                if batches.is_empty() {
                    return Ok(0);
                }
                let run = Run {
                    id: schema::compaction_run_id(),
                    batches,
                    created: now_ms,
                };
                if !self
                    .put(
                        lock_item(ws, &run, now_ms)?,
                        Some("attribute_not_exists(pk)"),
                    )
                    .await?
                {
                    return Ok(0);
                }
                run
            }
        };
        let mut combined = Groups::default();
        for batch in &run.batches {
            for d in self.deltas_after(ws, "", Some(batch)).await? {
                combined.extend(d.groups);
            }
        }
        // Deltas carry no plan; the workspace's current one says how long its rollups last.
        let history_ms = self
            .workspace(ws)
            .await?
            .map_or(Plan::Free, |w| w.plan)
            .history_ms();
        self.apply_rollups(ws, &run.id, combined.views(Select::Deferred), history_ms)
            .await?;
        if self.hooks.crashes_at(CrashPoint::AfterCompactionRollups) {
            anyhow::bail!("simulated crash after the compaction's rollup writes");
        }
        if let Some(last) = run.batches.last() {
            let wm = WatermarkItem { upto: last.clone() };
            self.put(items::item(schema::watermark(ws), &wm)?, None)
                .await?;
        }
        self.delete(schema::compaction_lock(ws), None).await?;
        Ok(run.batches.len())
    }

    /// The batches whose markers are still there (their writers are at work, or died).
    pub(super) async fn batches_in_flight(&self, ws: &WorkspaceId) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        for marker in self.query_all(schema::marker_pk(ws), None, None).await? {
            let (_, sk) = items::key_of(&marker)?;
            if let Some(batch) = schema::marked_batch(&sk) {
                out.push(batch.to_owned());
            }
        }
        Ok(out)
    }
}

/// The compaction lock of `run`, (re)taken at `now_ms`. A lock left by a crashed deletion (see
/// `deletion`) folds no batch, and has no `batches` (DynamoDB refuses an empty set).
pub(super) fn lock_item(ws: &WorkspaceId, run: &Run, now_ms: i64) -> anyhow::Result<Item> {
    let lock = LockItem {
        id: run.id.clone(),
        created: now_ms,
        batches: run.batches.clone(),
    };
    items::item(schema::compaction_lock(ws), &lock)
}
