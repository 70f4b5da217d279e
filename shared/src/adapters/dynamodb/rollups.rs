//! Rollup items on DynamoDB: the versioned read-modify-write every writer uses, and the deltas of
//! the wide views (end-users, and dimensions within one feature or source).
//!
//! Wide views have many values per batch: writing their rollup items at ingest would cost one
//! write per end-user and pair of values, several times the ingest budget of 1.3 write units per
//! event. So ingest writes a batch's wide deltas as one item (or a few, under DynamoDB's item
//! size limit) and `compact` later folds many batches into the rollup items at once, writing each
//! item once per run however many batches touched it. Readers of a wide view merge the deltas
//! not yet folded, so answers never wait for compaction.
//!
//! Exactly once: compaction runs under a per-workspace lock item (`W#{ws}#B` / `cmp`) that names
//! the run and its batches. Rollup items record the run's id in their pending set, as ingest
//! records batch ids, so a run resumed after a crash skips the items it already wrote; delta
//! items are deleted only after every rollup item is written (chunk 0 last), and the lock last.
//! A batch is compacted only once its marker is gone, so recovery of a crashed writer (which
//! rewrites the same deltas) never races a compaction of that batch.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::anyhow;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue as Av, ReturnConsumedCapacity};
use futures_util::{StreamExt as _, TryStreamExt as _, stream};

use super::{
    CONCURRENCY, CrashPoint, Current, DynamoStore, get_n, get_s, marker_pk, n, rollup_pk,
    rollup_sk, s,
};
use crate::domain::ids::WorkspaceId;
use crate::domain::rollup::{Rollup, RollupKey, View};

/// Largest delta item written (DynamoDB's limit is 400 KB).
const MAX_DELTA_BYTES: usize = 300_000;
/// Batches one compaction run folds.
const MAX_BATCHES_PER_RUN: usize = 200;
/// The sort key of the compaction lock in the markers partition.
const LOCK_SK: &str = "cmp";

fn delta_pk(ws: &WorkspaceId) -> String {
    format!("W#{ws}#D")
}

fn delta_sk(batch: &str, chunk: usize) -> String {
    format!("{batch}#{chunk:03}")
}

/// One stored delta item of a batch.
struct DeltaItem {
    batch: String,
    sk: String,
    size: usize,
    entries: Vec<(RollupKey, Rollup)>,
}

/// A compaction run: its id (recorded in rollup items) and the batches it folds.
struct Run {
    id: String,
    batches: Vec<String>,
    created: i64,
}

impl DynamoStore {
    /// Merges deltas into rollup items, each at most once per batch (see the module comment).
    pub(super) async fn apply_rollups(
        &self,
        ws: &WorkspaceId,
        batch: &str,
        deltas: impl IntoIterator<Item = (RollupKey, Rollup)>,
    ) -> anyhow::Result<()> {
        let mut todo: Vec<(RollupKey, Rollup)> = deltas.into_iter().collect();
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
                let rollup = match item.get("d") {
                    Some(Av::B(b)) => Rollup::decode(b.as_ref())
                        .ok_or_else(|| anyhow!("corrupt rollup {key:?}"))?,
                    _ => Rollup::default(),
                };
                let pending = item
                    .get("p")
                    .and_then(|p| p.as_ss().ok())
                    .cloned()
                    .unwrap_or_default();
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
    async fn live_writers(
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

    /// Writes a batch's wide deltas, sorted and cut the same way every time, so recovery of a
    /// crashed writer overwrites exactly the items the writer wrote.
    pub(super) async fn write_deltas(
        &self,
        ws: &WorkspaceId,
        batch: &str,
        deltas: impl IntoIterator<Item = (RollupKey, Rollup)>,
    ) -> anyhow::Result<()> {
        let mut deltas: Vec<(RollupKey, Rollup)> = deltas.into_iter().collect();
        if deltas.is_empty() {
            return Ok(());
        }
        deltas.sort_by(|a, b| a.0.cmp(&b.0));
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        let mut current: Vec<(RollupKey, Rollup)> = Vec::new();
        let mut size = 0;
        for (k, r) in deltas {
            let entry = postcard::to_stdvec(&(&k, &r))?.len();
            if size + entry > MAX_DELTA_BYTES && !current.is_empty() {
                chunks.push(postcard::to_stdvec(&current)?);
                current.clear();
                size = 0;
            }
            size += entry;
            current.push((k, r));
        }
        chunks.push(postcard::to_stdvec(&current)?);
        stream::iter(chunks.into_iter().enumerate())
            .map(|(i, bytes)| {
                let item = HashMap::from([
                    ("pk".to_owned(), s(delta_pk(ws))),
                    ("sk".to_owned(), s(delta_sk(batch, i))),
                    ("d".to_owned(), Av::B(Blob::new(bytes))),
                ]);
                self.put(item, None)
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<bool>>()
            .await?;
        Ok(())
    }

    /// Delta items not yet compacted. At most `limit` items.
    async fn pending_deltas(
        &self,
        ws: &WorkspaceId,
        prefix: Option<&str>,
        limit: Option<usize>,
    ) -> anyhow::Result<Vec<DeltaItem>> {
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .expression_attribute_values(":pk", s(delta_pk(ws)));
        q = match prefix {
            Some(p) => q
                .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                .expression_attribute_values(":p", s(p)),
            None => q.key_condition_expression("pk = :pk"),
        };
        let mut out = Vec::new();
        let mut pages = q.into_paginator().items().send();
        while let Some(item) = pages.try_next().await.map_err(super::err)? {
            let sk = get_s(&item, "sk")?.to_owned();
            let batch = sk
                .rsplit_once('#')
                .map_or(sk.as_str(), |(b, _)| b)
                .to_owned();
            let entries: Vec<(RollupKey, Rollup)> = match item.get("d") {
                Some(Av::B(b)) => postcard::from_bytes(b.as_ref())
                    .map_err(|e| anyhow!("corrupt delta item {sk}: {e}"))?,
                _ => return Err(anyhow!("delta item {sk} has no data")),
            };
            let size = super::item_size(&item);
            out.push(DeltaItem {
                batch,
                sk,
                size,
                entries,
            });
            if limit.is_some_and(|l| out.len() >= l) {
                break;
            }
        }
        Ok(out)
    }

    /// Rollups of a wide view: the rollup items, plus the deltas not yet folded into them.
    /// Read in this order (items, lock, deltas) so a compaction that runs meanwhile can at
    /// worst hide a batch for that one read, never count it twice.
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
        let mut merged: HashMap<RollupKey, (Rollup, Vec<String>)> = items
            .into_iter()
            .map(|(k, r, pending)| (k, (r, pending)))
            .collect();
        for DeltaItem { batch, entries, .. } in self.pending_deltas(ws, None, None).await? {
            for (k, delta) in entries {
                if &k.view != view || k.hour < from_hour || k.hour >= to_hour {
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
        self.compact(ws, chrono::Utc::now().timestamp_millis())
            .await
    }

    /// Folds finished batches' deltas into the rollup items, or resumes a run that a crashed
    /// compactor left. Returns how many batches it folded (0 when another run holds the lock).
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
                let chunks = self
                    .pending_deltas(ws, None, Some(MAX_BATCHES_PER_RUN * 2))
                    .await?;
                let batches: HashSet<String> = chunks.into_iter().map(|d| d.batch).collect();
                if batches.is_empty() {
                    return Ok(0);
                }
                let in_flight = self.live_writers(ws, batches.clone()).await?;
                let mut batches: Vec<String> = batches
                    .into_iter()
                    .filter(|b| !in_flight.contains(b))
                    .collect();
                batches.sort();
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
        let mut combined: HashMap<RollupKey, Rollup> = HashMap::new();
        let mut chunk_keys = Vec::new();
        for batch in &run.batches {
            for d in self
                .pending_deltas(ws, Some(&format!("{batch}#")), None)
                .await?
            {
                chunk_keys.push((d.sk, d.size));
                for (k, delta) in d.entries {
                    combined.entry(k).or_default().merge(&delta);
                }
            }
        }
        self.apply_rollups(ws, &run.id, combined).await?;
        if self.crash_at == Some(CrashPoint::AfterCompactionRollups) {
            anyhow::bail!("simulated crash after the compaction's rollup writes");
        }
        // Highest chunk first: while chunk 0 exists, the batch counts as in flight.
        chunk_keys.sort_unstable_by(|a, b| b.0.cmp(&a.0));
        for (sk, size) in chunk_keys {
            let out = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(delta_pk(ws)))
                .key("sk", s(sk))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(super::err)?;
            // A delete costs the deleted item's size, like a write.
            self.capacity.record(out.consumed_capacity(), size);
        }
        self.delete(marker_pk(ws), LOCK_SK.to_owned(), None).await?;
        Ok(run.batches.len())
    }
}

fn lock_item(ws: &WorkspaceId, run: &Run, now_ms: i64) -> super::Item {
    HashMap::from([
        ("pk".to_owned(), s(marker_pk(ws))),
        ("sk".to_owned(), s(LOCK_SK)),
        ("id".to_owned(), s(run.id.clone())),
        ("batches".to_owned(), Av::Ss(run.batches.clone())),
        ("created".to_owned(), n(now_ms)),
    ])
}

fn string_set(item: &super::Item, name: &str) -> Vec<String> {
    item.get(name)
        .and_then(|v| v.as_ss().ok())
        .cloned()
        .unwrap_or_default()
}
