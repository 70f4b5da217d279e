//! Retention on DynamoDB: re-applying a plan's rules (`domain::retention`) to what a workspace
//! stores. Items carry their expiry in the TTL attribute, so keeping is a matter of moving it and
//! DynamoDB deletes the rest on its own; what is already outside the window is deleted here, since
//! TTL may take days and a downgrade must not leave history showing.

use super::items::{self, DeltaItem, EventBody, RollupItem};
use super::*;
use crate::domain::ids::WorkspaceId;
use crate::domain::retention;
use crate::domain::retention::EventFate;
use crate::domain::rollup::VIEWS;
use crate::domain::rollup::View;
use crate::domain::rollup::{Dimension, WITHIN};
use crate::ports::Retained;
use crate::ports::StoreResult;
use futures_util::stream;
use std::collections::BTreeSet;
use std::collections::HashSet;

impl DynamoStore {
    pub(super) async fn retain_events(
        &self,
        ws: &WorkspaceId,
        from_hour: i64,
        to_hour: i64,
        history_ms: i64,
        now_ms: i64,
    ) -> anyhow::Result<Retained> {
        stream::iter(from_hour..to_hour)
            .map(|hour| self.query_all(schema::event_pk(ws, hour), None, None))
            .buffer_unordered(CONCURRENCY)
            .map_ok(|items| stream::iter(items.into_iter().map(Ok)))
            .try_flatten()
            .map_ok(|item| self.retain_event(ws, item, history_ms, now_ms))
            .try_buffer_unordered(CONCURRENCY)
            .try_fold(Retained::default(), |mut acc, r| async move {
                acc += r;
                Ok(acc)
            })
            .await
    }

    pub(super) async fn retain_event(
        &self,
        ws: &WorkspaceId,
        item: Item,
        history_ms: i64,
        now_ms: i64,
    ) -> anyhow::Result<Retained> {
        let key = items::key_of(&item)?;
        let mut e = items::read::<EventBody>(item)?.d;
        // Only ids sent without a timestamp have a guard item (see `write_event`).
        let guard = e
            .idempotent_without_timestamp()
            .then(|| schema::guard(ws, &e.id));
        match retention::event_fate(e.ts_ms, e.expires_ms, history_ms, now_ms) {
            EventFate::ExpireAt(at) => {
                if at != e.expires_ms {
                    e.expires_ms = at;
                    let body = serde_json::to_string(&e)?;
                    if !self.set_expiry(key, at, Some(body)).await? {
                        // Deleted meanwhile (by another pass, or TTL): nothing left to keep.
                        return Ok(Retained::default());
                    }
                    if let Some(guard) = guard {
                        // The guard must last as long as its event, or a retry of the id would
                        // be stored again.
                        self.set_expiry(guard, at, None).await?;
                    }
                }
                Ok(Retained {
                    events_kept: 1,
                    ..Retained::default()
                })
            }
            EventFate::Delete | EventFate::Leave => {
                // The guard first: a pass stopped in between leaves an event without a guard
                // (deleted by the next pass or TTL), never a guard that a retry of the id would
                // follow back to a deleted event's key.
                if let Some(guard) = guard {
                    self.delete(guard, None).await?;
                }
                self.delete(key, None).await?;
                Ok(Retained {
                    events_deleted: 1,
                    ..Retained::default()
                })
            }
        }
    }

    /// Moves an item's expiry (and replaces its stored body `d`, when given: an event's JSON
    /// carries its expiry too), unless the item is gone: an update would bring it back as an
    /// item with nothing but its key. False when it was gone.
    pub(super) async fn set_expiry(
        &self,
        item: Key,
        at_ms: i64,
        body: Option<String>,
    ) -> anyhow::Result<bool> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(item)))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#t", TTL_ATTRIBUTE)
            .expression_attribute_values(":t", ttl(at_ms));
        update = match body {
            Some(d) => update
                .update_expression("SET #t = :t, #d = :d")
                .expression_attribute_names("#d", "d")
                .expression_attribute_values(":d", s(d)),
            None => update.update_expression("SET #t = :t"),
        };
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(err(e)),
        }
    }

    pub(super) async fn retain_rollups(
        &self,
        ws: &WorkspaceId,
        from_hour: i64,
        to_hour: i64,
        history_ms: i64,
        now_ms: i64,
    ) -> anyhow::Result<Retained> {
        let range = Some(schema::rollup_hours(from_hour, to_hour));
        // The partitions of the views within one model, feature or source are named by its
        // value, and the workspace-wide rollups of the dimension for the same hours list those
        // values. So the wide views go last: a pass stopped midway still finds the values again.
        let mut within_values = Vec::new();
        for within in WITHIN {
            let stored = self
                .query_all(
                    schema::rollup_pk(ws, &View::of(within)),
                    range.clone(),
                    None,
                )
                .await?;
            let values: BTreeSet<String> = stored
                .iter()
                .map(|i| {
                    let (_, sk) = items::key_of(i)?;
                    Ok(schema::parse_rollup_sk(&sk)?.1.to_owned())
                })
                .collect::<anyhow::Result<_>>()?;
            within_values.push((within, values));
        }
        let narrow: Vec<View> = VIEWS
            .iter()
            .filter(|(within, _)| *within != Dimension::Total)
            .flat_map(|(within, by)| {
                within_values
                    .iter()
                    .filter(move |(d, _)| d == within)
                    .flat_map(move |(_, values)| {
                        values.iter().map(move |v| View::within(*by, *within, v))
                    })
            })
            .collect();
        let wide: Vec<View> = VIEWS
            .iter()
            .filter(|(within, _)| *within == Dimension::Total)
            .map(|(_, by)| View::of(*by))
            .collect();
        let mut out = Retained::default();
        for views in [narrow, wide] {
            out += stream::iter(views)
                .map(|view| self.query_all(schema::rollup_pk(ws, &view), range.clone(), None))
                .buffer_unordered(CONCURRENCY)
                .map_ok(|items| stream::iter(items.into_iter().map(Ok)))
                .try_flatten()
                .map_ok(|item| self.retain_rollup(item, history_ms, now_ms))
                .try_buffer_unordered(CONCURRENCY)
                .try_fold(Retained::default(), |mut acc, r| async move {
                    acc += r;
                    Ok(acc)
                })
                .await?;
        }
        Ok(out)
    }

    pub(super) async fn retain_rollup(
        &self,
        item: Item,
        history_ms: i64,
        now_ms: i64,
    ) -> anyhow::Result<Retained> {
        let key = items::key_of(&item)?;
        let (hour, _) = schema::parse_rollup_sk(&key.1)?;
        let expires = retention::rollup_expiry_ms(hour, history_ms);
        if expires <= now_ms {
            self.delete(key, None).await?;
            return Ok(Retained {
                rollups_deleted: 1,
                ..Retained::default()
            });
        }
        // Only the expiry: the value and version belong to the writers' read-modify-write.
        let stored: RollupItem = items::read(item)?;
        if stored.expires_at != Some(items::ttl(expires))
            && !self.set_expiry(key, expires, None).await?
        {
            return Ok(Retained::default());
        }
        Ok(Retained {
            rollups_kept: 1,
            ..Retained::default()
        })
    }

    /// Removes the expired hours from the deltas not yet folded into the deferred views: readers
    /// merge them, so they would keep showing those hours, and compaction would write them back.
    pub(super) async fn drop_expired_deltas(
        &self,
        ws: &WorkspaceId,
        from_hour: i64,
        to_hour: i64,
        history_ms: i64,
        now_ms: i64,
    ) -> anyhow::Result<()> {
        let expired = |hour: i64| {
            (from_hour..to_hour).contains(&hour)
                && retention::rollup_expiry_ms(hour, history_ms) <= now_ms
        };
        // Expiry never decreases with the hour: if the first hour is kept, all are.
        if !expired(from_hour) {
            return Ok(());
        }
        self.drop_delta_hours(ws, &expired).await
    }

    /// Removes the hours `drop` picks from the deltas not yet folded, deleting deltas left
    /// empty. A batch still in flight is left alone: its writer, or the recovery that finishes
    /// it, rewrites its deltas from its events.
    pub(super) async fn drop_delta_hours(
        &self,
        ws: &WorkspaceId,
        drop: &(dyn Fn(i64) -> bool + Sync),
    ) -> anyhow::Result<()> {
        let watermark = self.watermark(ws).await?;
        let in_flight: HashSet<String> = self.batches_in_flight(ws).await?.into_iter().collect();
        let deltas = self
            .query_all(
                schema::delta_pk(ws),
                Some((
                    schema::after_deltas_of(&watermark),
                    schema::after_all_deltas(),
                )),
                None,
            )
            .await?;
        stream::iter(deltas)
            .map(|item| {
                let in_flight = &in_flight;
                async move {
                    let (_, sk) = items::key_of(&item)?;
                    if in_flight.contains(schema::delta_batch(&sk)) {
                        return Ok::<_, anyhow::Error>(());
                    }
                    let (key, mut groups, expires_at) = Delta::read(item)?;
                    let size = |g: &crate::domain::rollup::Groups| {
                        g.fine.len() + g.users.len() + g.tags.len()
                    };
                    let before = size(&groups);
                    groups.fine.retain(|(hour, _, _)| !drop(*hour));
                    groups.users.retain(|(hour, _, _)| !drop(*hour));
                    groups.tags.retain(|(hour, _, _, _)| !drop(*hour));
                    if size(&groups) == before {
                        return Ok(());
                    }
                    if groups.is_empty() {
                        self.delete(key, Some("attribute_exists(pk)")).await?;
                        return Ok(());
                    }
                    let rewritten = DeltaItem::new(postcard::to_stdvec(&groups)?, expires_at);
                    let rewritten = items::item(key, &rewritten)?;
                    // Not over a delta TTL already deleted.
                    self.put(rewritten, Some("attribute_exists(pk)")).await?;
                    Ok(())
                }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Retention for DynamoStore {
    async fn apply_retention(
        &self,
        ws: &WorkspaceId,
        from_hour: i64,
        to_hour: i64,
        history_ms: i64,
        now_ms: i64,
    ) -> StoreResult<Retained> {
        if from_hour >= to_hour {
            return Ok(Retained::default());
        }
        let mut out = self
            .retain_events(ws, from_hour, to_hour, history_ms, now_ms)
            .await?;
        out += self
            .retain_rollups(ws, from_hour, to_hour, history_ms, now_ms)
            .await?;
        self.drop_expired_deltas(ws, from_hour, to_hour, history_ms, now_ms)
            .await?;
        Ok(out)
    }
}
