//! Deleting events on DynamoDB (`Store::delete_events_in_hour`). The events go in transactions
//! that also take them off their month's usage, so quota never counts an event twice or not at
//! all; then the hour's rollups, every view, are rewritten from the events left.
//!
//! The rewrite holds the compaction lock: a compaction that read the hour's deltas before they
//! were stripped would otherwise add the deleted events back on top of the rewrite. A deletion
//! that dies holding it leaves a lock that names no batch, which the next compaction (or the
//! deletion run again) takes over once the lease is over.
//!
//! Assumed, not enforced: nothing is ingested into the hour while it runs. The deletion job
//! works on hours whose events were accepted before it started, and the caller stops ingest
//! before deleting a whole workspace. For a range that includes the current hour, a batch racing
//! the deletion can still be lost from the hour's rollups, or counted twice; the rewrite never
//! writes blindly (each item on the version it read, the whole hour again on a conflict), which
//! narrows that window without closing it.

use super::items::{self, EventBody, GuardItem, LockItem};
use super::jobs::{finished, job_item, queue_item};
use super::schema::{InUser, InWorkspace};
use super::*;
use crate::domain::deletion;
use crate::domain::event::Event;
use crate::domain::ids::UserId;
use crate::domain::ids::WorkspaceId;
use crate::domain::plan::Plan;
use crate::domain::retention;
use crate::domain::rollup;
use crate::domain::rollup::Dimension;
use crate::domain::rollup::Rollup;
use crate::domain::rollup::Select;
use crate::domain::rollup::VIEWS;
use crate::domain::rollup::View;
use crate::domain::rollup::WITHIN;
use crate::domain::time::HOUR_MS;
use crate::domain::time::month_of;
use crate::ports::Job;
use crate::ports::Purged;
use crate::ports::StoreResult;
use anyhow::anyhow;
use futures_util::stream;
use std::collections::BTreeSet;
use std::collections::HashMap;
use std::collections::HashSet;
use std::time::Duration;

/// Deletes per transaction: DynamoDB allows 100 items, and one is the usage counter.
pub(super) const DELETES_PER_TX: usize = 99;
/// Tries of each phase before giving up; the job runs the deletion again later.
pub(super) const ATTEMPTS: u32 = 10;
/// Tries at the compaction lock: a compaction run takes seconds, a stale lock the lease.
pub(super) const LOCK_ATTEMPTS: u32 = 30;
/// How many views are rewritten at once (each with `CONCURRENCY` writes in flight).
pub(super) const VIEWS_AT_ONCE: usize = 4;

async fn backoff(attempt: u32) {
    let ms = (20u64 << attempt.min(7)).min(2_000);
    tokio::time::sleep(Duration::from_millis(rand::random_range(ms / 2..=ms))).await;
}

/// One change `rewrite_view` makes to a rollup item, keyed by its value.
pub(super) enum Op {
    /// Delete the item if still at this version.
    Delete(String, u64),
    /// Write this encoded rollup over the item as read: its version and pending set (None:
    /// there was none).
    Put(String, Vec<u8>, Option<(u64, Vec<String>)>),
}

impl DynamoStore {
    /// Deletes the events of `[lo, hi)` in the hour (of `source` only, when given), with their
    /// guards, each transaction also taking its events off the month's usage. Every delete is
    /// conditional on the event being there, so an event deleted meanwhile (a repeat running
    /// alongside, or TTL) fails its transaction instead of being counted twice; the survivors
    /// are read again and retried.
    pub(super) async fn delete_events(
        &self,
        ws: &WorkspaceId,
        hour: i64,
        lo: i64,
        hi: i64,
        source: Option<&str>,
    ) -> anyhow::Result<u64> {
        // An hour never straddles two months (UTC).
        let month = month_of(hour * HOUR_MS);
        let epk = schema::event_pk(ws, hour);
        let mut deleted = 0;
        let mut attempt = 0;
        loop {
            // `{hi}` sorts before every `{hi}#id`: the range ends just before `hi`.
            let stored = self
                .query_all(
                    epk.clone(),
                    Some((schema::event_time(lo), schema::event_time(hi))),
                    None,
                )
                .await?;
            let mut doomed = Vec::new();
            for item in stored {
                let key = items::key_of(&item)?;
                let e = items::read::<EventBody>(item)?.d;
                if source.is_none_or(|src| e.source == src) {
                    doomed.push((key, e));
                }
            }
            if doomed.is_empty() {
                return Ok(deleted);
            }
            let guards = self.guards_of(ws, &doomed).await?;

            let mut chunks: Vec<(Vec<Step>, i64)> = vec![(Vec::new(), 0)];
            for (event_key, e) in doomed {
                let mut steps = Vec::with_capacity(2);
                let guard = schema::guard(ws, &e.id);
                // The guard only if it still points at this event: after an id's event was
                // lost to TTL and the id sent again, it belongs to the newer event.
                if e.idempotent_without_timestamp() && guards.get(&guard) == Some(&event_key) {
                    steps.push(Step::Delete {
                        key: guard,
                        cond: Some("epk = :epk AND esk = :esk".into()),
                        values: vec![
                            (":epk", s(event_key.0.clone())),
                            (":esk", s(event_key.1.clone())),
                        ],
                    });
                }
                steps.push(Step::Delete {
                    key: event_key,
                    cond: Some("attribute_exists(pk)".into()),
                    values: vec![],
                });
                if chunks
                    .last()
                    .is_some_and(|(c, _)| c.len() + steps.len() > DELETES_PER_TX)
                {
                    chunks.push((Vec::new(), 0));
                }
                if let Some((c, count)) = chunks.last_mut() {
                    c.extend(steps);
                    *count += 1;
                }
            }
            let mut again = false;
            // One transaction at a time: they all update the same usage item, and concurrent
            // transactions on one item cancel each other.
            for (mut steps, count) in chunks {
                steps.push(Step::Update {
                    key: schema::usage(ws, &month),
                    expr: "ADD n :minus".into(),
                    cond: None,
                    values: vec![(":minus", n(-count))],
                });
                match self.transact(steps).await {
                    Ok(None) => deleted += count as u64,
                    // An event or guard changed since it was read: read again.
                    Ok(Some(_)) => again = true,
                    // Cancelled by a transaction conflict (an ingest reserving quota on the
                    // same usage item), or throttled: every delete is conditional, so a retry
                    // is safe whatever the cause.
                    Err(e) if attempt + 1 < ATTEMPTS => {
                        tracing::warn!(workspace = %ws, hour, error = %e, "retrying a deletion transaction");
                        again = true;
                    }
                    Err(e) => return Err(e),
                }
            }
            if !again {
                return Ok(deleted);
            }
            attempt += 1;
            if attempt >= ATTEMPTS {
                anyhow::bail!("events of {ws} hour {hour} kept changing during their deletion");
            }
            backoff(attempt).await;
        }
    }

    /// Where the guards of the events sent without a timestamp point: guard -> event.
    pub(super) async fn guards_of(
        &self,
        ws: &WorkspaceId,
        events: &[(Key, Event)],
    ) -> anyhow::Result<HashMap<Key, Key>> {
        let keys: HashSet<Key> = events
            .iter()
            .filter(|(_, e)| e.idempotent_without_timestamp())
            .map(|(_, e)| schema::guard(ws, &e.id))
            .collect();
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        self.batch_get(keys.into_iter().collect())
            .await?
            .into_iter()
            .map(|g| {
                let key = items::key_of(&g)?;
                let GuardItem { epk, esk, .. } = items::read(g)?;
                Ok((key, (epk, esk)))
            })
            .collect()
    }

    /// Takes the workspace's compaction lock, waiting for a running compaction to finish and
    /// finishing one that a crashed compactor (or deletion) left. Returns the lock's id.
    pub(super) async fn take_compaction_lock(&self, ws: &WorkspaceId) -> anyhow::Result<String> {
        let id = schema::deletion_lock_id();
        for attempt in 0..LOCK_ATTEMPTS {
            let now = self.now_ms();
            // No `batches`: a compaction that takes a stale one over folds nothing.
            let lock = items::item(
                schema::compaction_lock(ws),
                &LockItem {
                    id: id.clone(),
                    created: now,
                    batches: Vec::new(),
                },
            )?;
            if self.put(lock, Some("attribute_not_exists(pk)")).await? {
                return Ok(id);
            }
            // Resumes the holder's run if its lease is over; returns at once if it is live.
            self.compact(ws, now).await?;
            backoff(attempt).await;
        }
        anyhow::bail!("the compaction lock of {ws} stayed taken; try the deletion again later")
    }

    /// Renews the lock's lease, failing if another run took it over meanwhile (the lease ran
    /// out): the hour's rollups are then no longer ours to rewrite.
    pub(super) async fn hold_compaction_lock(
        &self,
        ws: &WorkspaceId,
        id: &str,
    ) -> anyhow::Result<()> {
        let renewed = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(schema::compaction_lock(ws))))
            .update_expression("SET created = :now")
            .condition_expression("#id = :id")
            .expression_attribute_names("#id", "id")
            .expression_attribute_values(":id", s(id))
            .expression_attribute_values(":now", n(self.now_ms()))
            .send()
            .await;
        match renewed {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => Err(anyhow!(
                "the deletion in {ws} lost the compaction lock; run it again"
            )),
            Err(e) => Err(err(e)),
        }
    }

    pub(super) async fn release_compaction_lock(
        &self,
        ws: &WorkspaceId,
        id: &str,
    ) -> anyhow::Result<()> {
        let released = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(schema::compaction_lock(ws))))
            .condition_expression("#id = :id")
            .expression_attribute_names("#id", "id")
            .expression_attribute_values(":id", s(id))
            .send()
            .await;
        match released {
            // Taken over: the run holding it now releases it.
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => Ok(()),
            Err(e) => Err(err(e)),
        }
    }

    /// Makes every view's rollups of the hour equal a fold of the hour's events, once the
    /// hour has nothing pending in the deltas.
    /// Rebuilds one hour's rollups, every view, from its events, after events of the hour were
    /// deleted or repriced: under the compaction lock, the hour's pending deltas stripped (they
    /// count the events as they were), then every view rewritten.
    pub(super) async fn rebuild_hour(&self, ws: &WorkspaceId, hour: i64) -> anyhow::Result<()> {
        let lock = self.take_compaction_lock(ws).await?;
        let stripped = self.drop_delta_hours(ws, &|h| h == hour).await;
        if stripped.is_ok() && self.hooks.crashes_at(CrashPoint::BeforeDeletionRollups) {
            // A crash leaves the lock held: the next compaction takes it over after the lease.
            return Err(anyhow!("simulated crash before the hour's rollup rewrite"));
        }
        let rewritten = match stripped {
            Ok(()) => self.rewrite_hour(ws, hour, &lock).await,
            Err(e) => Err(e),
        };
        self.release_compaction_lock(ws, &lock).await?;
        rewritten
    }

    pub(super) async fn rewrite_hour(
        &self,
        ws: &WorkspaceId,
        hour: i64,
        lock: &str,
    ) -> anyhow::Result<()> {
        // Deltas carry no plan; the workspace's current one says how long its rollups last.
        let history_ms = self
            .workspace(ws)
            .await?
            .map_or(Plan::Free, |w| w.plan)
            .history_ms();
        let range = Some(schema::rollup_hours(hour, hour + 1));
        for attempt in 0..ATTEMPTS {
            self.hold_compaction_lock(ws, lock).await?;
            let mut events = Vec::new();
            for item in self
                .query_all(schema::event_pk(ws, hour), None, None)
                .await?
            {
                events.push(items::read::<EventBody>(item)?.d);
            }
            let now = self.now_ms();
            let expiry = retention::rollup_expiry_ms(hour, history_ms);
            // An expired hour is only deleted, as `apply_rollups` would not write it.
            let mut wanted: HashMap<View, Vec<(String, Rollup)>> = HashMap::new();
            if expiry > now {
                for (k, r) in rollup::fold(&events) {
                    wanted.entry(k.view).or_default().push((k.value, r));
                }
            }

            // The views within one model, feature or source have a partition per value: those
            // the hour's workspace-wide rollups of the dimension list, and those of the events
            // left. The wide views are rewritten last, so a run stopped midway still finds the
            // values again.
            let mut narrow = BTreeSet::new();
            for within in WITHIN {
                let view = View::of(within);
                let mut values: BTreeSet<String> = wanted
                    .get(&view)
                    .into_iter()
                    .flatten()
                    .map(|(v, _)| v.clone())
                    .collect();
                for item in self
                    .query_all(schema::rollup_pk(ws, &view), range.clone(), None)
                    .await?
                {
                    let (_, sk) = items::key_of(&item)?;
                    values.insert(schema::parse_rollup_sk(&sk)?.1.to_owned());
                }
                for (w, by) in VIEWS.iter().filter(|(w, _)| *w == within) {
                    narrow.extend(values.iter().map(|v| View::within(*by, *w, v.clone())));
                }
            }
            let wide: Vec<View> = VIEWS
                .iter()
                .filter(|(within, _)| *within == Dimension::Total)
                .map(|(_, by)| View::of(*by))
                .collect();

            let mut conflicts = 0;
            for views in [narrow.into_iter().collect::<Vec<_>>(), wide] {
                conflicts += stream::iter(views)
                    .map(|view| {
                        let want = wanted.remove(&view).unwrap_or_default();
                        self.rewrite_view(ws, hour, view, want, expiry)
                    })
                    .buffer_unordered(VIEWS_AT_ONCE)
                    .try_fold(0, |acc, c| async move { Ok(acc + c) })
                    .await?;
            }
            if conflicts == 0 {
                return Ok(());
            }
            backoff(attempt).await;
        }
        anyhow::bail!("rollups of {ws} hour {hour} kept changing during their rewrite")
    }

    /// Makes one view's items of the hour exactly `want`: deletes the others, writes those that
    /// differ, each on the version read. Returns how many writes lost to another writer.
    pub(super) async fn rewrite_view(
        &self,
        ws: &WorkspaceId,
        hour: i64,
        view: View,
        want: Vec<(String, Rollup)>,
        expiry_ms: i64,
    ) -> anyhow::Result<usize> {
        let pk = schema::rollup_pk(ws, &view);
        let range = Some(schema::rollup_hours(hour, hour + 1));
        let mut stored: HashMap<String, StoredRollup> = HashMap::new();
        for item in self.query_all(pk.clone(), range, None).await? {
            let item = StoredRollup::read(item)?;
            let value = schema::parse_rollup_sk(&item.key.1)?.1.to_owned();
            stored.insert(value, item);
        }
        let wanted: HashSet<&str> = want.iter().map(|(v, _)| v.as_str()).collect();
        let mut ops: Vec<Op> = stored
            .iter()
            .filter(|(value, _)| !wanted.contains(value.as_str()))
            .map(|(value, st)| Op::Delete(value.clone(), st.version))
            .collect();
        for (value, rollup) in want {
            let current = stored.remove(&value);
            if current.as_ref().is_some_and(|c| c.rollup.same_as(&rollup)) {
                continue; // a repeat writes nothing
            }
            let read = current.map(|c| (c.version, c.pending));
            ops.push(Op::Put(value, rollup.encode(), read));
        }
        stream::iter(ops)
            .map(|op| self.rewrite_item(&pk, hour, op, expiry_ms))
            .buffer_unordered(CONCURRENCY)
            .try_fold(0, |acc, c| async move { Ok(acc + c) })
            .await
    }

    /// One write of `rewrite_view`, on the version read: 1 if another writer got there first.
    pub(super) async fn rewrite_item(
        &self,
        pk: &str,
        hour: i64,
        op: Op,
        expiry_ms: i64,
    ) -> anyhow::Result<usize> {
        match op {
            Op::Delete(value, version) => {
                let result = self
                    .client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(key((pk.to_owned(), schema::rollup_sk(hour, &value)))))
                    .condition_expression("v = :v")
                    .expression_attribute_values(":v", n(version))
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(0),
                    Err(e) if is_condition_failed(&e) => Ok(1),
                    Err(e) => Err(err(e)),
                }
            }
            Op::Put(value, data, read) => {
                // The pending set says which writers' deltas the item already holds; the
                // rewrite holds those too (it folds every stored event), so it keeps the set.
                let (version, pending) = read.unzip();
                let item = rollup_item(
                    (pk.to_owned(), schema::rollup_sk(hour, &value)),
                    version,
                    data,
                    pending.unwrap_or_default(),
                    expiry_ms,
                )?;
                let (condition, expected) = on_version(version);
                Ok(usize::from(
                    !self.put_with(item, Some(condition), expected).await?,
                ))
            }
        }
    }
}

#[async_trait]
impl Erasure for DynamoStore {
    async fn finish_writes(&self, ws: &WorkspaceId) -> StoreResult<()> {
        self.recover(ws).await.map(drop)
    }

    async fn delete_events_in_hour(
        &self,
        ws: &WorkspaceId,
        hour: i64,
        from_ms: i64,
        to_ms: i64,
        source: Option<&str>,
    ) -> StoreResult<u64> {
        let (lo, hi) = (from_ms.max(hour * HOUR_MS), to_ms.min((hour + 1) * HOUR_MS));
        if lo >= hi {
            return Ok(0);
        }
        // A crashed batch finished after the deletion would refund its quota from the events
        // left (refunding the deleted ones twice) and add its rollups on top of the rewrite.
        self.recover_stale(ws, self.now_ms()).await?;
        let deleted = self.delete_events(ws, hour, lo, hi, source).await?;
        // Runs even when nothing was deleted: a run stopped after its deletes is finished here.
        self.rebuild_hour(ws, hour).await?;
        Ok(deleted)
    }

    /// The job, its queue entry and (for a whole workspace) the workspace's mark, in one
    /// transaction conditional on the workspace being there and not already being deleted.
    async fn begin_deletion(&self, job: &Job, whole_workspace: bool) -> StoreResult<bool> {
        let key = schema::workspace(&job.workspace);
        let cond = "attribute_exists(pk) AND attribute_not_exists(deleting)".to_owned();
        let mut steps = vec![
            if whole_workspace {
                Step::Update {
                    key,
                    expr: "SET deleting = :job".into(),
                    cond: Some(cond),
                    values: vec![(":job", s(job.id.clone()))],
                }
            } else {
                Step::Check { key, cond }
            },
            Step::Put {
                item: job_item(job)?,
                cond: Some("attribute_not_exists(pk)".into()),
                values: vec![],
            },
        ];
        if !finished(job) {
            steps.push(Step::Put {
                item: queue_item(job)?,
                cond: None,
                values: vec![],
            });
        }
        Ok(self.transact(steps).await?.is_none())
    }

    async fn purge_workspace(&self, ws: &WorkspaceId, budget: usize) -> StoreResult<Purged> {
        let mut out = Purged::default();
        let mut left = budget.max(1);
        // A batch that died half-written gets its total rollup written, so its hours are found.
        self.recover_stale(ws, self.now_ms()).await?;

        // Events, hour by hour, each hour's total item once its events are gone.
        while left > 0 {
            let hours = self
                .first_items(schema::rollup_pk(ws, &View::of(Dimension::Total)), left)
                .await?;
            if hours.is_empty() {
                break;
            }
            for total in hours {
                let total = items::key_of(&total)?;
                let (hour, _) = schema::parse_rollup_sk(&total.1)?;
                let (events, guards) = self.purge_hour(ws, hour).await?;
                out.count("events", events);
                out.count("event_id_guards", guards);
                self.delete_keys(vec![total]).await?;
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
                .query_all(schema::rollup_pk(ws, &View::of(d)), None, None)
                .await?
            {
                let (_, sk) = items::key_of(&item)?;
                if let Ok((_, v)) = schema::parse_rollup_sk(&sk) {
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
                    partitions.push(schema::rollup_pk(ws, &View::within(by, *d, v.clone())));
                }
            }
        }
        // The top-level views, feature and source last: they name the partitions above.
        for (within, by) in VIEWS {
            if within == Dimension::Total && by != Dimension::Total && !WITHIN.contains(&by) {
                partitions.push(schema::rollup_pk(ws, &View::of(by)));
            }
        }
        for d in WITHIN {
            partitions.push(schema::rollup_pk(ws, &View::of(d)));
        }
        for (kind, pk) in partitions.into_iter().map(|pk| ("rollups", pk)).chain([
            ("rollup_deltas", schema::delta_pk(ws)),
            ("batch_markers", schema::marker_pk(ws)),
            ("audit_entries", schema::audit_pk(ws)),
            ("alert_events", schema::alert_log_pk(ws)),
            ("billed_days", schema::billed_pk(ws)),
        ]) {
            if !self.purge_partition(&pk, kind, &mut left, &mut out).await? {
                return Ok(out);
            }
        }

        // The workspace's own partition: keys, members, invitations, usage, billing, and the
        // items elsewhere that point back at them. The workspace item itself goes last.
        let (wpk, wsk) = schema::workspace(ws);
        let mut doomed: Vec<Key> = Vec::new();
        for item in self.first_items(wpk.clone(), left + 1).await? {
            let key = items::key_of(&item)?;
            let kind = match schema::in_workspace(&key.1) {
                InWorkspace::Workspace => continue,
                InWorkspace::KeyListing => {
                    let listing: items::KeyListingItem = items::read(item)?;
                    doomed.push(schema::api_key_by_hash(&listing.hash));
                    "keys"
                }
                InWorkspace::Member(user) => {
                    let user =
                        UserId::parse(user).ok_or_else(|| anyhow!("bad member key {}", key.1))?;
                    doomed.push(schema::membership(&user, ws));
                    "members"
                }
                InWorkspace::Billing => {
                    let record: items::BillingItem = items::read(item)?;
                    if let Some(customer) = &record.cus {
                        doomed.push(schema::customer(customer));
                    }
                    if let Some(due) = record.due {
                        doomed.push(schema::due(due, ws));
                    }
                    "billing_records"
                }
                InWorkspace::Invitation => "invitations",
                InWorkspace::AlertRule => "alert_rules",
                InWorkspace::Connection => "provider_connections",
                InWorkspace::Usage => "usage_counters",
                InWorkspace::Other => "other",
            };
            doomed.push(key);
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
        let mut doomed: Vec<Key> = Vec::new();
        for item in self.query_all(schema::job_pk(ws), None, None).await? {
            let key = items::key_of(&item)?;
            let job: items::JobItem = items::read(item)?;
            if job.kind == deletion::JOB_KIND {
                continue;
            }
            doomed.push(schema::queued_job(&job.d));
            doomed.push(key);
            out.count("jobs", 1);
        }
        self.delete_keys(doomed).await?;

        self.delete_keys(vec![schema::workspace_index(ws)]).await?;
        self.delete_keys(vec![(wpk, wsk)]).await?;
        out.count("workspace", 1);
        out.done = true;
        Ok(out)
    }

    async fn delete_user(&self, user: &UserId) -> StoreResult<Purged> {
        let mut out = Purged::default();
        let mut doomed: Vec<Key> = Vec::new();
        // The user item last: it leads to the email and code items.
        let mut user_item: Vec<Key> = Vec::new();
        for item in self.query_all(schema::user_pk(user), None, None).await? {
            let key = items::key_of(&item)?;
            let kind = match schema::in_user(&key.1) {
                InUser::Session(hash) => {
                    doomed.push(schema::session(hash));
                    "sessions"
                }
                InUser::Membership => "memberships",
                InUser::User => {
                    let email = items::read::<items::UserItem>(item)?.into_user(user).email;
                    doomed.push(schema::user_by_email(&email));
                    doomed.push(schema::login_code(&email));
                    user_item.push(key);
                    out.count("user", 1);
                    continue;
                }
                InUser::Other => "other",
            };
            doomed.push(key);
            out.count(kind, 1);
        }
        self.delete_keys(doomed).await?;
        self.delete_keys(user_item).await?;
        out.done = true;
        Ok(out)
    }

    async fn scrub(&self) -> StoreResult<()> {
        Ok(())
    }
}
