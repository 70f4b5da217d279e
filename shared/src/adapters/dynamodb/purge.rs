//! Deleting a whole workspace on DynamoDB (`Store::purge_workspace`), and a user's own records
//! (`Store::delete_user`).
//!
//! Nothing here keeps a cursor: every call works out what is left from what is still stored,
//! in an order that keeps the way to the rest until last. The total rollup lists the hours that
//! hold events, so an hour's events go before its total item; the feature and source views list
//! the values that have views of their own, so those go after them; the workspace item goes
//! last. A call stopped anywhere is finished by the next one.
//!
//! Deletes are plain batch writes: unlike a range deletion there is nothing to keep consistent
//! (usage, rollups) with what stays, because nothing stays.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
use futures_util::{StreamExt as _, TryStreamExt as _, stream};

use super::rollups::delta_pk;
use super::{
    CONCURRENCY, DynamoStore, Item, err, event_pk, get_n, get_s, guard_pk, marker_pk, rollup_pk, s,
};
use crate::domain::deletion;
use crate::domain::event::Event;
use crate::domain::ids::{UserId, WorkspaceId};
use crate::domain::rollup::{Dimension, Select, VIEWS, View};
use crate::ports::{Purged, StoreResult};

/// BatchWriteItem takes at most 25 requests.
const BATCH: usize = 25;

/// The dimensions whose single values have views of their own (`model@feature:search`).
const WITHIN: [Dimension; 2] = [Dimension::Feature, Dimension::Source];

type Key = (String, String);

fn key_of(item: &Item) -> anyhow::Result<Key> {
    Ok((get_s(item, "pk")?.to_owned(), get_s(item, "sk")?.to_owned()))
}

impl DynamoStore {
    pub(super) async fn purge_workspace_impl(
        &self,
        ws: &WorkspaceId,
        budget: usize,
    ) -> StoreResult<Purged> {
        let mut out = Purged::default();
        let mut left = budget.max(1);
        // A batch that died half-written gets its total rollup written, so its hours are found.
        self.recover_stale(ws, chrono::Utc::now().timestamp_millis())
            .await?;

        // Events, hour by hour, each hour's total item once its events are gone.
        while left > 0 {
            let hours = self
                .first_items(rollup_pk(ws, &View::of(Dimension::Total)), left)
                .await?;
            if hours.is_empty() {
                break;
            }
            for total in hours {
                let (pk, sk) = key_of(&total)?;
                let hour: i64 = sk
                    .split('#')
                    .next()
                    .and_then(|h| h.parse().ok())
                    .ok_or_else(|| anyhow!("bad total rollup key {sk}"))?;
                let (events, guards) = self.purge_hour(ws, hour).await?;
                out.count("events", events);
                out.count("event_id_guards", guards);
                self.delete_keys(vec![(pk, sk)]).await?;
                out.count("rollups", 1);
                left = left.saturating_sub(events as usize + 1);
                if left == 0 {
                    return Ok(out);
                }
            }
        }

        // Views of one feature or source value, found in the top-level views and in the
        // pending deltas (folded or not: folded ones wait for their TTL).
        let mut values: BTreeSet<(Dimension, String)> = BTreeSet::new();
        for d in WITHIN {
            for item in self
                .query_all(rollup_pk(ws, &View::of(d)), None, None)
                .await?
            {
                let sk = get_s(&item, "sk")?;
                if let Some((_, v)) = sk.split_once('#') {
                    values.insert((d, v.to_owned()));
                }
            }
        }
        for delta in self.deltas_after(ws, "", None).await? {
            for key in delta.groups.views(Select::Deferred).into_keys() {
                if let Some((d, v)) = key.view.within {
                    values.insert((d, v));
                }
            }
        }
        let mut partitions: Vec<String> = Vec::new();
        for (d, v) in &values {
            for (within, by) in VIEWS {
                if within == *d {
                    partitions.push(rollup_pk(ws, &View::within(by, *d, v.clone())));
                }
            }
        }
        // The top-level views, feature and source last: they name the partitions above.
        for (within, by) in VIEWS {
            if within == Dimension::Total && by != Dimension::Total && !WITHIN.contains(&by) {
                partitions.push(rollup_pk(ws, &View::of(by)));
            }
        }
        for d in WITHIN {
            partitions.push(rollup_pk(ws, &View::of(d)));
        }
        for (kind, pk) in partitions.into_iter().map(|pk| ("rollups", pk)).chain([
            ("rollup_deltas", delta_pk(ws)),
            ("batch_markers", marker_pk(ws)),
            ("audit_entries", format!("W#{ws}#AUDIT")),
            ("alert_events", format!("W#{ws}#ALERTLOG")),
        ]) {
            if !self.purge_partition(&pk, kind, &mut left, &mut out).await? {
                return Ok(out);
            }
        }

        // The workspace's own partition: keys, members, invitations, usage, billing, and the
        // items elsewhere that point back at them. The workspace item itself goes last.
        let wpk = format!("WS#{ws}");
        let items = self.first_items(wpk.clone(), left + 1).await?;
        let mut doomed: Vec<Key> = Vec::new();
        for item in &items {
            let sk = get_s(item, "sk")?;
            if sk == "WS" {
                continue;
            }
            let kind = match sk.split('#').next().unwrap_or(sk) {
                "KEY" => {
                    doomed.push((format!("KEY#{}", get_s(item, "hash")?), "KEY".into()));
                    "keys"
                }
                "MEMBER" => {
                    doomed.push((
                        format!("USER#{}", &sk["MEMBER#".len()..]),
                        format!("MEMBER#{ws}"),
                    ));
                    "members"
                }
                "BILLING" => {
                    if let Ok(customer) = get_s(item, "cus") {
                        doomed.push((format!("CUS#{customer}"), "CUS".into()));
                    }
                    if let Ok(due) = get_n::<i64>(item, "due") {
                        doomed.push((super::billing::DUE_PK.into(), format!("{due:013}#{ws}")));
                    }
                    "billing_records"
                }
                "INV" => "invitations",
                "ALERT" => "alert_rules",
                "USAGE" => "usage_counters",
                _ => "other",
            };
            doomed.push(key_of(item)?);
            out.count(kind, 1);
        }
        if !doomed.is_empty() {
            // The pointers first: a stop in between leaves the listing item to find them by.
            let (listed, pointers): (Vec<Key>, Vec<Key>) =
                doomed.into_iter().partition(|(pk, _)| *pk == wpk);
            self.delete_keys(pointers).await?;
            self.delete_keys(listed).await?;
            return Ok(out);
        }

        // Jobs, except the deletion jobs: they are the record that a deletion happened.
        let jpk = super::reads::job_pk(ws);
        let mut doomed: Vec<Key> = Vec::new();
        for item in self.query_all(jpk, None, None).await? {
            if get_s(&item, "kind").ok() == Some(deletion::JOB_KIND) {
                continue;
            }
            let job: crate::ports::Job =
                serde_json::from_str(get_s(&item, "d")?).context("decoding a job")?;
            doomed.push((super::reads::QUEUE_PK.into(), super::reads::queue_sk(&job)));
            doomed.push(key_of(&item)?);
            out.count("jobs", 1);
        }
        self.delete_keys(doomed).await?;

        self.delete_keys(vec![(super::WORKSPACE_INDEX_PK.into(), ws.to_string())])
            .await?;
        self.delete_keys(vec![(wpk, "WS".into())]).await?;
        out.count("workspace", 1);
        out.done = true;
        Ok(out)
    }

    /// Deletes the events of one hour and the id guards of those sent without a timestamp.
    async fn purge_hour(&self, ws: &WorkspaceId, hour: i64) -> anyhow::Result<(u64, u64)> {
        let items = self.query_all(event_pk(ws, hour), None, None).await?;
        let mut keys = Vec::with_capacity(items.len());
        let mut guards = 0;
        for item in &items {
            let e: Event =
                serde_json::from_str(get_s(item, "d")?).context("decoding a stored event")?;
            if e.idempotent_without_timestamp() {
                keys.push((guard_pk(ws, &e.id), "ID".to_owned()));
                guards += 1;
            }
        }
        // Guards before their events: a stop in between leaves the events to find them by.
        self.delete_keys(keys).await?;
        let events: Vec<Key> = items.iter().map(key_of).collect::<anyhow::Result<_>>()?;
        let n = events.len() as u64;
        self.delete_keys(events).await?;
        Ok((n, guards))
    }

    /// Deletes up to `left` items of a partition, counted as `kind`. False when the budget ran
    /// out first (there may be more).
    async fn purge_partition(
        &self,
        pk: &str,
        kind: &str,
        left: &mut usize,
        out: &mut Purged,
    ) -> anyhow::Result<bool> {
        loop {
            let items = self.first_items(pk.to_owned(), *left).await?;
            if items.is_empty() {
                return Ok(true);
            }
            let n = items.len();
            self.delete_keys(items.iter().map(key_of).collect::<anyhow::Result<_>>()?)
                .await?;
            out.count(kind, n as u64);
            *left = left.saturating_sub(n);
            if *left == 0 {
                return Ok(false);
            }
        }
    }

    /// The first `limit` items of a partition (keys and attributes).
    async fn first_items(&self, pk: String, limit: usize) -> anyhow::Result<Vec<Item>> {
        let mut out = Vec::new();
        let mut start = None;
        while out.len() < limit {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk.clone()))
                .limit((limit - out.len()).min(1000) as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(err)?;
            out.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(out)
    }

    /// Deletes items by key, 25 to a batch write and several batches at once, retrying what
    /// DynamoDB leaves unprocessed.
    pub(super) async fn delete_keys(&self, keys: Vec<Key>) -> anyhow::Result<()> {
        let batches: Vec<Vec<WriteRequest>> = keys
            .chunks(BATCH)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|(pk, sk)| {
                        Ok(WriteRequest::builder()
                            .delete_request(
                                DeleteRequest::builder()
                                    .key("pk", s(pk.clone()))
                                    .key("sk", s(sk.clone()))
                                    .build()?,
                            )
                            .build())
                    })
                    .collect::<anyhow::Result<_>>()
            })
            .collect::<anyhow::Result<_>>()?;
        stream::iter(batches)
            .map(|batch| self.write_batch(batch))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn write_batch(&self, mut batch: Vec<WriteRequest>) -> anyhow::Result<()> {
        let mut attempt = 0u32;
        while !batch.is_empty() {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, batch)
                .send()
                .await
                .map_err(err)?;
            batch = out
                .unprocessed_items
                .and_then(|mut m| m.remove(&self.table))
                .unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            attempt += 1;
            if attempt > 10 {
                anyhow::bail!("DynamoDB kept {} deletes unprocessed", batch.len());
            }
            let ms = (50u64 << attempt.min(5)).min(2_000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        Ok(())
    }

    pub(super) async fn delete_user_impl(&self, user: &UserId) -> StoreResult<Purged> {
        let mut out = Purged::default();
        let upk = format!("USER#{user}");
        let mut doomed: Vec<Key> = Vec::new();
        let items = self.query_all(upk.clone(), None, None).await?;
        for item in &items {
            let sk = get_s(item, "sk")?;
            let kind = match sk.split('#').next().unwrap_or(sk) {
                "SESS" => {
                    doomed.push((format!("SESS#{}", &sk["SESS#".len()..]), "SESS".into()));
                    "sessions"
                }
                "MEMBER" => "memberships",
                "USER" => {
                    let email = get_s(item, "email")?;
                    doomed.push((format!("EMAIL#{email}"), "EMAIL".into()));
                    doomed.push((format!("CODE#{email}"), "CODE".into()));
                    "user"
                }
                _ => "other",
            };
            out.count(kind, 1);
        }
        // The user item last: it leads to the email and code items.
        let (user_item, rest): (Vec<Key>, Vec<Key>) = items
            .iter()
            .map(key_of)
            .collect::<anyhow::Result<Vec<Key>>>()?
            .into_iter()
            .partition(|(_, sk)| sk == "USER");
        doomed.extend(rest);
        self.delete_keys(doomed).await?;
        self.delete_keys(user_item).await?;
        out.done = true;
        Ok(out)
    }
}
