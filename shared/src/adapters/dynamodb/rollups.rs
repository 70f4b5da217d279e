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

use super::*;
use crate::domain::ids::WorkspaceId;
use crate::domain::plan::Plan;
use crate::domain::retention;
use crate::domain::rollup::Groups;
use crate::domain::rollup::Rollup;
use crate::domain::rollup::RollupKey;
use crate::domain::rollup::Select;
use crate::domain::rollup::View;
use anyhow::anyhow;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue as Av;
use futures_util::stream;
use std::collections::HashMap;
use std::collections::HashSet;
use std::time::Duration;

/// Largest delta item written (DynamoDB's limit is 400 KB).
pub(super) const MAX_DELTA_BYTES: usize = 300_000;
/// Batches one compaction run folds.
pub(super) const MAX_BATCHES_PER_RUN: usize = 500;
/// Sort keys of the compaction lock and of the watermark in the markers partition.
pub(super) const LOCK_SK: &str = "cmp";
pub(super) const WATERMARK_SK: &str = "wm";
/// A batch is folded only once its id is this old: longer than ingest's timeout plus any clock
/// skew between instances, so no batch with a smaller id can still be starting.
pub(super) const SETTLE_MS: i64 = 60_000;
/// Delta items outlive any compaction delay by far, then TTL deletes them for free.
pub(super) const DELTA_TTL_MS: i64 = 2 * 86_400_000;

pub(super) fn delta_pk(ws: &WorkspaceId) -> String {
    format!("W#{ws}#D")
}

pub(super) fn delta_sk(batch: &str, chunk: usize) -> String {
    format!("{batch}#{chunk:03}")
}

/// One stored delta item of a batch.
pub(super) struct DeltaItem {
    pub(super) batch: String,
    pub(super) groups: Groups,
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
                .map(|(k, _)| (rollup_pk(ws, &k.view), rollup_sk(k.hour, &k.value)))
                .collect::<Vec<_>>();
            let mut current: HashMap<(String, String), Current> = HashMap::new();
            for item in self.batch_get(keys).await? {
                let key = (
                    get_s(&item, "pk")?.to_owned(),
                    get_s(&item, "sk")?.to_owned(),
                );
                let (rollup, pending) = rollup_data(&item)?;
                current.insert(
                    key,
                    Current {
                        version: Some(get_n(&item, "v")?),
                        rollup,
                        pending,
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

            let crash_after_first = self.crash_at == Some(CrashPoint::AfterFirstRollup);
            let results: Vec<Option<(RollupKey, Rollup)>> =
                stream::iter(todo.drain(..).enumerate())
                    .map(|(i, (key, delta))| {
                        let pk = rollup_pk(ws, &key.view);
                        let sk = rollup_sk(key.hour, &key.value);
                        let cur = current.remove(&(pk.clone(), sk.clone()));
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
                            let item = HashMap::from([
                                ("pk".to_owned(), s(pk)),
                                ("sk".to_owned(), s(sk)),
                                ("v".to_owned(), n(cur.version.map_or(1, |v| v + 1))),
                                ("d".to_owned(), Av::B(Blob::new(merged.encode()))),
                                ("p".to_owned(), Av::Ss(pending)),
                                (
                                    TTL_ATTRIBUTE.to_owned(),
                                    n(retention::rollup_expiry_ms(key.hour, history_ms)
                                        .div_euclid(1000)),
                                ),
                            ]);
                            // Optimistic concurrency: the write lands only on the version we read.
                            let (condition, expected) = match cur.version {
                                Some(v) => {
                                    ("v = :v", Some(HashMap::from([(":v".to_owned(), n(v))])))
                                }
                                None => ("attribute_not_exists(pk)", None),
                            };
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
            .map(|b| {
                (
                    marker_pk(ws),
                    if b.starts_with("cmp_") {
                        LOCK_SK.to_owned()
                    } else {
                        b.clone()
                    },
                )
            })
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut live = HashSet::new();
        for item in self.batch_get(keys).await? {
            let sk = get_s(&item, "sk")?;
            if sk == LOCK_SK {
                live.insert(get_s(&item, "id")?.to_owned());
            } else {
                live.insert(sk.to_owned());
            }
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
            cut(&mut current, &mut size, postcard::to_stdvec(&g)?.len())?;
            current.fine.push(g);
        }
        for g in groups.users {
            cut(&mut current, &mut size, postcard::to_stdvec(&g)?.len())?;
            current.users.push(g);
        }
        chunks.push(postcard::to_stdvec(&current)?);
        let expires = (self.now_ms() + DELTA_TTL_MS) / 1000;
        stream::iter(chunks.into_iter().enumerate())
            .map(|(i, bytes)| {
                let item = HashMap::from([
                    ("pk".to_owned(), s(delta_pk(ws))),
                    ("sk".to_owned(), s(delta_sk(batch, i))),
                    ("d".to_owned(), Av::B(Blob::new(bytes))),
                    (TTL_ATTRIBUTE.to_owned(), n(expires)),
                ]);
                self.put(item, None)
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<bool>>()
            .await?;
        Ok(())
    }

    /// The last batch folded into the deferred rollup items ("" before the first compaction).
    pub(super) async fn watermark(&self, ws: &WorkspaceId) -> anyhow::Result<String> {
        Ok(match self.get(marker_pk(ws), WATERMARK_SK).await? {
            Some(item) => get_s(&item, "upto")?.to_owned(),
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
    ) -> anyhow::Result<Vec<DeltaItem>> {
        // `{batch}#~` sorts after every chunk of that batch.
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .expression_attribute_values(":pk", s(delta_pk(ws)));
        let q = match batch {
            Some(b) => q
                .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                .expression_attribute_values(":p", s(format!("{b}#"))),
            None => q
                .key_condition_expression("pk = :pk AND sk > :after")
                .expression_attribute_values(":after", s(format!("{after}#~"))),
        };
        let mut out = Vec::new();
        let mut pages = q.into_paginator().items().send();
        while let Some(item) = pages.try_next().await.map_err(super::err)? {
            let sk = get_s(&item, "sk")?.to_owned();
            let batch = sk
                .rsplit_once('#')
                .map_or(sk.as_str(), |(b, _)| b)
                .to_owned();
            let groups: Groups = match item.get("d") {
                Some(Av::B(b)) => postcard::from_bytes(b.as_ref())
                    .map_err(|e| anyhow!("corrupt delta item {sk}: {e}"))?,
                _ => return Err(anyhow!("delta item {sk} has no data")),
            };
            out.push(DeltaItem { batch, groups });
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
        let lock = self.get(marker_pk(ws), LOCK_SK).await?;
        let folding: HashMap<String, String> = match &lock {
            Some(l) => {
                let id = get_s(l, "id")?.to_owned();
                string_set(l, "batches")
                    .into_iter()
                    .map(|b| (b, id.clone()))
                    .collect()
            }
            None => HashMap::new(),
        };
        let watermark = self.watermark(ws).await?;
        let mut merged: HashMap<RollupKey, (Rollup, Vec<String>)> = items
            .into_iter()
            .map(|(k, r, pending)| (k, (r, pending)))
            .collect();
        for DeltaItem { batch, groups } in self.deltas_after(ws, &watermark, None).await? {
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
        let run = match self.get(marker_pk(ws), LOCK_SK).await? {
            Some(lock) => {
                let created: i64 = get_n(&lock, "created")?;
                if now_ms - created < self.lease_ms {
                    return Ok(0); // another compactor is on it
                }
                let run = Run {
                    id: get_s(&lock, "id")?.to_owned(),
                    batches: string_set(&lock, "batches"),
                    created,
                };
                // Take the stale run over; only one taker wins the condition.
                let taken = self
                    .put_with(
                        lock_item(ws, &run, now_ms),
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
                let in_flight = self
                    .query_all(marker_pk(ws), None, None)
                    .await?
                    .iter()
                    .filter_map(|m| get_s(m, "sk").ok().map(str::to_owned))
                    .filter(|sk| sk != LOCK_SK && sk != WATERMARK_SK)
                    .min();
                let settled =
                    ulid::Ulid::from_parts((now_ms - self.settle_ms).max(0) as u64, 0).to_string();
                let cutoff = in_flight.map_or(settled.clone(), |b| b.min(settled));
                batches.retain(|b| *b < cutoff);
                batches.truncate(MAX_BATCHES_PER_RUN);
                if batches.is_empty() {
                    return Ok(0);
                }
                let run = Run {
                    id: format!("cmp_{}", ulid::Ulid::new()),
                    batches,
                    created: now_ms,
                };
                if !self
                    .put(
                        lock_item(ws, &run, now_ms),
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
        if self.crash_at == Some(CrashPoint::AfterCompactionRollups) {
            anyhow::bail!("simulated crash after the compaction's rollup writes");
        }
        if let Some(last) = run.batches.last() {
            let wm = HashMap::from([
                ("pk".to_owned(), s(marker_pk(ws))),
                ("sk".to_owned(), s(WATERMARK_SK)),
                ("upto".to_owned(), s(last.clone())),
            ]);
            self.put(wm, None).await?;
        }
        self.delete(marker_pk(ws), LOCK_SK.to_owned(), None).await?;
        Ok(run.batches.len())
    }
}

pub(super) fn lock_item(ws: &WorkspaceId, run: &Run, now_ms: i64) -> super::Item {
    let mut item = HashMap::from([
        ("pk".to_owned(), s(marker_pk(ws))),
        ("sk".to_owned(), s(LOCK_SK)),
        ("id".to_owned(), s(run.id.clone())),
        ("created".to_owned(), n(now_ms)),
    ]);
    // A lock left by a crashed deletion (see `deletion`) folds no batch, and DynamoDB refuses
    // an empty set: taking it over must not fail.
    if !run.batches.is_empty() {
        item.insert("batches".to_owned(), Av::Ss(run.batches.clone()));
    }
    item
}

/// A rollup item's value and the writers it records as applied (its pending set).
pub(super) fn rollup_data(item: &super::Item) -> anyhow::Result<(Rollup, Vec<String>)> {
    let sk = get_s(item, "sk")?;
    let rollup = match item.get("d") {
        Some(Av::B(b)) => {
            Rollup::decode(b.as_ref()).ok_or_else(|| anyhow!("corrupt rollup {sk}"))?
        }
        _ => return Err(anyhow!("rollup {sk} has no data")),
    };
    Ok((rollup, string_set(item, "p")))
}

pub(super) fn string_set(item: &super::Item, name: &str) -> Vec<String> {
    let mut v = item
        .get(name)
        .and_then(|v| v.as_ss().ok())
        .cloned()
        .unwrap_or_default();
    // A string set has no order; runs fold and end in batch order.
    v.sort();
    v
}
