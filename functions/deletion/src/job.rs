//! The deletion job: what it deletes, in what order, and how it survives being stopped.
//!
//! Every step is idempotent and its progress is saved after each page, so a run stopped at any
//! point (a Lambda out of time, a killed `llmtrack serve`) is carried on by the next run from
//! the last saved page, and repeating a page deletes nothing twice:
//!
//! - usage in a range: the hours that hold events (read from the total rollup, a week of hours
//!   per page), each deleted with `Store::delete_events_in_hour`, which takes the events off
//!   usage and rewrites the hour's rollups; then the workspace's export files, which may hold
//!   the deleted events;
//! - a whole workspace: wait until no write begun before the acceptance can still land
//!   (`Deps::in_flight_ms`), cancel the Stripe subscription, delete the archive's prefixes
//!   (exports, reports), then `Store::purge_workspace` page by page.
//!
//! The receipt counts what is about to go, saved before it goes (a census of the workspace, or
//! of each page of hours, from the rollups): a run killed in the middle of a delete would
//! otherwise lose the count of what that delete removed, and the next run cannot see it.
//!
//! A finished job is the security record: its scope, who asked, and the receipt (counts, start
//! and end), kept `RECORD_KEPT_MS`; the address the receipt was mailed to is then dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use llmtrack_shared::domain::billing::{Billing, SubscriptionStatus};
use llmtrack_shared::domain::deletion::{self, JOB_KIND, RECORD_KEPT_MS, Receipt, Scope};
use llmtrack_shared::domain::ids::{UserId, WorkspaceId};
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::rollup::{Dimension, VIEWS, View};
use llmtrack_shared::domain::time::{HOUR_MS, hour_of};
use llmtrack_shared::ports::{
    DynArchive, DynClock, DynMailer, Job, JobState, Mail, Payments, unfinished_jobs_of,
};
use serde::{Deserialize, Serialize};

/// Items `purge_workspace` deletes per call (a few seconds on DynamoDB).
pub const PURGE_PAGE: usize = 2_000;
/// Hours a usage deletion looks at per page.
const HOURS_PER_PAGE: i64 = 24 * 7;
/// No event is older than the longest history a plan keeps, and rollups are kept up to a month
/// and a week past it (`domain::retention`): a range deletion never needs to look further back.
const REACH_MS: i64 = 62 * 86_400_000;

/// What the job was asked to do; saved with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    #[serde(flatten)]
    pub scope: Scope,
    pub requested_by: UserId,
    /// Where the receipt goes, and what it calls the workspace; dropped once it is sent.
    #[serde(default)]
    pub notify: Option<Notify>,
    /// A whole-workspace deletion purges from this time on (`Deps::in_flight_ms`).
    pub purge_after_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Notify {
    pub email: String,
    pub workspace_name: String,
}

/// Where a run picks up, and what has been deleted so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Progress {
    /// Usage: the next hour to look at.
    #[serde(default)]
    pub next_hour: Option<i64>,
    /// Usage: the page of hours being deleted (its end) and how many events it holds.
    #[serde(default)]
    pub page: Option<(i64, u64)>,
    /// Workspace: what it held when the purge began.
    #[serde(default)]
    pub census: Option<BTreeMap<String, u64>>,
    #[serde(default)]
    pub subscription_cancelled: bool,
    #[serde(default)]
    pub archive_deleted: bool,
    /// Items the store reports deleted so far, by kind (progress only: a killed page's
    /// deletes go uncounted here, never in the receipt).
    #[serde(default)]
    pub purged: BTreeMap<String, u64>,
    pub receipt: Receipt,
}

llmtrack_shared::store_ports! {
    /// Deletion reaches everything a workspace has: to count it for the receipt, and to delete
    /// it. Repricing, which runs here too, rewrites events' costs and their hours' rollups.
    pub struct DeletionPorts {
        workspaces: Workspaces,
        events: Events,
        erasure: Erasure,
        repricing: Repricing,
        jobs: Jobs,
        keys: Keys,
        members: Members,
        alert_rules: AlertRules,
        billing_records: BillingRecords,
        audit_log: AuditLog,
        connections: Connections,
    }
}

/// What a run needs.
#[derive(Clone)]
pub struct Deps {
    pub store: DeletionPorts,
    pub clock: DynClock,
    pub archive: DynArchive,
    pub mailer: DynMailer,
    /// Stripe, when configured: a deleted workspace's subscription is cancelled.
    pub payments: Option<Arc<dyn Payments>>,
    pub public_url: String,
    /// Items per `purge_workspace` call.
    pub page: usize,
    /// How long after a workspace is marked as being deleted a write that began before the mark
    /// may still land: a whole-workspace deletion waits this long before it purges. 0 on SQLite,
    /// which checks the mark inside each write; `DynamoStore::in_flight_ms` on DynamoDB.
    pub in_flight_ms: i64,
    /// What the receipts say backups may still hold.
    pub backups: deletion::Backups,
}

/// A new deletion job for `ws` (not yet saved: `Store::begin_deletion` saves it).
pub fn new_job(ws: &WorkspaceId, spec: &Spec, now_ms: i64) -> anyhow::Result<Job> {
    Ok(Job::queued(
        "del",
        ws,
        JOB_KIND,
        serde_json::to_value(spec)?,
        serde_json::to_value(Progress::default())?,
        now_ms,
    ))
}

pub fn spec_of(job: &Job) -> anyhow::Result<Spec> {
    serde_json::from_value(job.spec.clone()).context("deletion job spec")
}

pub fn progress_of(job: &Job) -> Progress {
    serde_json::from_value(job.progress.clone()).unwrap_or_default()
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    Finished,
    /// Out of time: progress is saved, the next run carries on.
    Paused,
    /// Another worker saved the job meanwhile: it carries on.
    Overtaken,
}

/// Runs a deletion job from its saved progress until it finishes or `deadline` passes.
pub async fn run(deps: &Deps, mut job: Job, deadline: Option<Instant>) -> anyhow::Result<Ran> {
    if matches!(job.state, JobState::Done | JobState::Failed) {
        return Ok(Ran::Finished);
    }
    let mut spec = spec_of(&job)?;
    let mut progress = progress_of(&job);
    if progress.receipt.started_ms == 0 {
        progress.receipt.started_ms = deps.clock.now_ms();
    }
    let out_of_time = || deadline.is_some_and(|d| Instant::now() >= d);
    let ws = job.workspace.clone();
    match spec.scope.clone() {
        Scope::Usage {
            from_ms,
            to_ms,
            source,
        } => {
            let (first, end) = usage_hours(&job, &spec.scope)?;
            if progress.next_hour.is_none() {
                // A crashed batch is finished first, so its hours are listed below.
                deps.store.erasure.finish_writes(&ws).await?;
            }
            let mut hour = progress.next_hour.unwrap_or(first);
            while hour < end {
                if out_of_time() {
                    return save(deps, &mut job, &progress).await.map(|_| Ran::Paused);
                }
                let page_end = (hour + HOURS_PER_PAGE).min(end);
                let busy = deps
                    .store
                    .events
                    .rollups(&ws, &View::of(Dimension::Total), hour, page_end)
                    .await?;
                if busy.is_empty() {
                    hour = page_end;
                    progress.next_hour = Some(hour);
                    continue;
                }
                if progress.page.is_none_or(|(e, _)| e != page_end) {
                    let n = events_in(deps, &ws, hour, page_end, &spec.scope).await?;
                    progress.page = Some((page_end, n));
                    if !save(deps, &mut job, &progress).await? {
                        return Ok(Ran::Overtaken);
                    }
                }
                for (key, _) in busy {
                    deps.store
                        .erasure
                        .delete_events_in_hour(&ws, key.hour, from_ms, to_ms, source.as_deref())
                        .await?;
                }
                if let Some((_, n)) = progress.page.take() {
                    progress.receipt.count("events", n);
                }
                hour = page_end;
                progress.next_hour = Some(hour);
                if !save(deps, &mut job, &progress).await? {
                    return Ok(Ran::Overtaken);
                }
            }
            if !progress.archive_deleted {
                // Exports are copies of raw events, and may hold some of the deleted ones.
                let prefix = format!("exports/{ws}/");
                let n = deps.archive.list(&prefix).await?.len();
                deps.archive.delete_prefix(&prefix).await?;
                progress.receipt.count("archive_objects", n as u64);
                progress.archive_deleted = true;
                if !save(deps, &mut job, &progress).await? {
                    return Ok(Ran::Overtaken);
                }
            }
            // Tag values seen only in the deleted events are derived data too. Idempotent, so
            // a job resumed after this point does it again harmlessly.
            llmtrack_shared::usecases::prune_tag_values(
                deps.store.workspaces.as_ref(),
                deps.store.events.as_ref(),
                &ws,
                deps.clock.now_ms(),
            )
            .await?;
        }
        Scope::Workspace => {
            // Writes begun before the acceptance may still land: wait them out.
            loop {
                let wait = spec.purge_after_ms - deps.clock.now_ms();
                if wait <= 0 {
                    break;
                }
                if out_of_time() {
                    return save(deps, &mut job, &progress).await.map(|_| Ran::Paused);
                }
                tokio::time::sleep(Duration::from_millis(wait.clamp(10, 1_000) as u64)).await;
            }
            if progress.census.is_none() {
                progress.census = Some(census(deps, &ws).await?);
                if !save(deps, &mut job, &progress).await? {
                    return Ok(Ran::Overtaken);
                }
            }
            if !progress.subscription_cancelled {
                if let Some(sub) = deps
                    .store
                    .billing_records
                    .billing(&ws)
                    .await?
                    .as_ref()
                    .and_then(live_subscription)
                {
                    let payments = deps.payments.as_ref().context(
                        "the workspace has a Stripe subscription and Stripe is not configured here",
                    )?;
                    payments.cancel_subscription(&sub).await?;
                }
                progress.subscription_cancelled = true;
                if !save(deps, &mut job, &progress).await? {
                    return Ok(Ran::Overtaken);
                }
            }
            if !progress.archive_deleted {
                for area in ARCHIVE_AREAS {
                    deps.archive.delete_prefix(&format!("{area}/{ws}/")).await?;
                }
                progress.archive_deleted = true;
                if !save(deps, &mut job, &progress).await? {
                    return Ok(Ran::Overtaken);
                }
            }
            loop {
                if out_of_time() {
                    return save(deps, &mut job, &progress).await.map(|_| Ran::Paused);
                }
                let page = deps.store.erasure.purge_workspace(&ws, deps.page).await?;
                for (kind, n) in page.deleted {
                    *progress.purged.entry(kind).or_default() += n;
                }
                if !save(deps, &mut job, &progress).await? {
                    return Ok(Ran::Overtaken);
                }
                if page.done {
                    break;
                }
            }
            // An export that was being written when the deletion began may have landed since
            // (exports check the mark before they publish, which closes all but an instant).
            for area in ARCHIVE_AREAS {
                deps.archive.delete_prefix(&format!("{area}/{ws}/")).await?;
            }
            // Copies of mail about the workspace (a local outbox's; SES keeps none).
            deps.mailer.forget(&ws).await?;
            progress.receipt.deleted = progress.census.clone().unwrap_or_default();
        }
    }

    let now = deps.clock.now_ms();
    progress.receipt.finished_ms = Some(now);
    if let Some(notify) = spec.notify.take() {
        send_receipt(deps, &job, &spec.scope, &notify, &progress.receipt).await;
    }
    // Nothing of what was deleted may linger in the store's files, the job's own earlier saves
    // (which named the workspace and whom to tell) included, from the moment the job reads as
    // done. So: a save that names neither (`notify` is taken; the receipt holds counts), then
    // the scrub, which copies that version over the earlier ones in the database file and
    // empties the log, and only then the save that reads as done. Scrubbing before the first
    // save left the named version in the database file until the next checkpoint.
    job.spec = serde_json::to_value(&spec)?;
    if !save(deps, &mut job, &progress).await? {
        return Ok(Ran::Overtaken);
    }
    deps.store.erasure.scrub().await?;
    job.state = JobState::Done;
    job.result = Some(serde_json::to_value(&progress.receipt)?);
    job.expires_ms = Some(now + RECORD_KEPT_MS);
    if !save(deps, &mut job, &progress).await? {
        return Ok(Ran::Overtaken);
    }
    tracing::info!(workspace = %ws, job = %job.id, "deletion finished");
    Ok(Ran::Finished)
}

/// The subscription Stripe would still bill, if any.
fn live_subscription(b: &Billing) -> Option<String> {
    let ended = matches!(
        b.status,
        SubscriptionStatus::None
            | SubscriptionStatus::Canceled
            | SubscriptionStatus::IncompleteExpired
    );
    b.subscription_id.clone().filter(|_| !ended)
}

/// The archive's areas that hold a workspace's files under `{area}/{workspace}/`.
const ARCHIVE_AREAS: [&str; 2] = ["exports", "reports"];

/// Events of the scope in hours `[from_hour, to_hour)`: from the rollups for whole hours (of
/// the source's view when the scope names one), from the raw events for the range's edges.
async fn events_in(
    deps: &Deps,
    ws: &WorkspaceId,
    from_hour: i64,
    to_hour: i64,
    scope: &Scope,
) -> anyhow::Result<u64> {
    let Scope::Usage {
        from_ms,
        to_ms,
        source,
    } = scope
    else {
        return Ok(0);
    };
    // One source's events of an hour are the source view's rollup of that value.
    let view = View::of(if source.is_some() {
        Dimension::Source
    } else {
        Dimension::Total
    });
    let mut n = 0;
    for (key, r) in deps
        .store
        .events
        .rollups(ws, &view, from_hour, to_hour)
        .await?
    {
        if source.as_ref().is_some_and(|s| *s != key.value) {
            continue;
        }
        let (lo, hi) = (key.hour * HOUR_MS, (key.hour + 1) * HOUR_MS);
        if *from_ms <= lo && hi <= *to_ms {
            n += r.requests;
            continue;
        }
        let mut after = None;
        loop {
            let page = deps
                .store
                .events
                .events(ws, lo.max(*from_ms), hi.min(*to_ms), after, 5_000)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some((last.ts_ms, last.id.clone()));
            n += page
                .iter()
                .filter(|e| source.as_ref().is_none_or(|s| e.source == *s))
                .count() as u64;
        }
    }
    Ok(n)
}

/// What a workspace holds, by kind, as its owner knows it: events (from the total rollup),
/// rollups of every view, keys, members, invitations, audit entries, the billing record, and
/// the archive's files.
async fn census(deps: &Deps, ws: &WorkspaceId) -> anyhow::Result<BTreeMap<String, u64>> {
    let store = &deps.store;
    let mut out = BTreeMap::new();
    let mut add = |kind: &str, n: u64| {
        if n > 0 {
            *out.entry(kind.to_owned()).or_insert(0) += n;
        }
    };
    // Batches a crashed writer left are finished first, so they are counted.
    store.erasure.finish_writes(ws).await?;
    let all = (i64::MIN / 2, i64::MAX / 2);
    let total = store
        .events
        .rollups(ws, &View::of(Dimension::Total), all.0, all.1)
        .await?;
    add("events", total.iter().map(|(_, r)| r.requests).sum());
    add("rollups", total.len() as u64);
    for (within, by) in VIEWS {
        if (within, by) == (Dimension::Total, Dimension::Total) {
            continue;
        }
        if within == Dimension::Total {
            let top = store
                .events
                .rollups(ws, &View::of(by), all.0, all.1)
                .await?;
            add("rollups", top.len() as u64);
            continue;
        }
        let values: BTreeSet<String> = store
            .events
            .rollups(ws, &View::of(within), all.0, all.1)
            .await?
            .into_iter()
            .map(|(k, _)| k.value)
            .collect();
        for v in values {
            let n = store
                .events
                .rollups(ws, &View::within(by, within, v), all.0, all.1)
                .await?
                .len();
            add("rollups", n as u64);
        }
    }
    add("keys", store.keys.keys(ws).await?.len() as u64);
    add("members", store.members.members(ws).await?.len() as u64);
    add(
        "invitations",
        store.members.invitations(ws).await?.len() as u64,
    );
    add(
        "alert_rules",
        store.alert_rules.alert_rules(ws).await?.len() as u64,
    );
    add(
        "provider_connections",
        store.connections.connections(ws).await?.len() as u64,
    );
    // Every day a provider's bill was imported for, as far as a date goes.
    add(
        "billed_rows",
        store
            .connections
            .billed_rows(ws, "0000-01-01", "9999-12-31")
            .await?
            .len() as u64,
    );
    let billing = store.billing_records.billing(ws).await?;
    add("billing_records", u64::from(billing.is_some()));
    add(
        "subscriptions_cancelled",
        u64::from(billing.as_ref().and_then(live_subscription).is_some()),
    );
    let mut before: Option<String> = None;
    loop {
        let page = store.audit_log.audit(ws, before.as_deref(), 1_000).await?;
        add("audit_entries", page.len() as u64);
        match page.last() {
            Some(last) if page.len() == 1_000 => before = Some(last.id.clone()),
            _ => break,
        }
    }
    for area in ARCHIVE_AREAS {
        add(
            "archive_objects",
            deps.archive.list(&format!("{area}/{ws}/")).await?.len() as u64,
        );
    }
    Ok(out)
}

/// Saves the job's progress; false when another worker saved it first.
/// Saves a job's progress (a deletion's or a repricing's); false when another worker saved it
/// first.
pub(crate) async fn save(
    deps: &Deps,
    job: &mut Job,
    progress: &impl Serialize,
) -> anyhow::Result<bool> {
    if job.state == JobState::Queued {
        job.state = JobState::Running;
    }
    job.progress = serde_json::to_value(progress)?;
    job.updated_ms = deps.clock.now_ms();
    Ok(deps.store.jobs.update_job(job).await?)
}

async fn send_receipt(deps: &Deps, job: &Job, scope: &Scope, to: &Notify, receipt: &Receipt) {
    let what = match scope {
        Scope::Workspace => format!(
            "the workspace \"{}\" ({})",
            to.workspace_name, job.workspace
        ),
        Scope::Usage { .. } => format!(
            "usage data of the workspace \"{}\" ({}), {}",
            to.workspace_name,
            job.workspace,
            deletion::describe(scope)
        ),
    };
    let mut text = receipt.text(&what);
    text.push_str(&format!(
        "\nJob: {}\nThe receipt stays readable at {}/workspaces/{}/deletions/{} for a year.\n\n{}\n",
        job.id,
        deps.public_url,
        job.workspace,
        job.id,
        deps.backups.notice()
    ));
    let mail = Mail {
        to: to.email.clone(),
        subject: "LLMtrack: your deletion is complete".into(),
        text,
        html: None,
        // The receipt is kept, not forgotten with the workspace.
        about: None,
    };
    // The deletion stands without its email; the receipt stays readable.
    if let Err(e) = deps.mailer.send(&mail).await {
        tracing::error!(job = %job.id, error = format!("{e:#}"), "could not email a deletion receipt");
    }
}

/// Runs every unfinished deletion job that made no progress for `idle_ms` (0: all of them),
/// until `deadline`. Returns how many it ran.
pub async fn resume(deps: &Deps, idle_ms: i64, deadline: Option<Instant>) -> anyhow::Result<usize> {
    let jobs = stalled(deps, JOB_KIND, idle_ms).await?;
    let n = jobs.len();
    for job in jobs {
        run(deps, job, deadline).await?;
    }
    Ok(n)
}

/// Unfinished jobs of `kind` that made no progress for `idle_ms` (0: all of them), oldest first.
pub(crate) async fn stalled(deps: &Deps, kind: &str, idle_ms: i64) -> anyhow::Result<Vec<Job>> {
    let now = deps.clock.now_ms();
    Ok(unfinished_jobs_of(deps.store.jobs.as_ref(), kind)
        .await?
        .into_iter()
        .filter(|j| now - j.updated_ms >= idle_ms)
        .collect())
}

/// The hours a usage deletion walks, first and one past the last: the scope's, from no
/// earlier than anything the store can hold when the job was accepted.
fn usage_hours(job: &Job, scope: &Scope) -> anyhow::Result<(i64, i64)> {
    let (first, end) = scope.hours().context("a usage scope has hours")?;
    let oldest = hour_of(job.created_ms - Plan::longest_history_ms() - REACH_MS);
    Ok((first.max(oldest), end))
}

/// A usage deletion's hours looked at so far, and in all (progress shown to the owner).
pub fn hours_done(job: &Job, progress: &Progress) -> Option<(i64, i64)> {
    let (first, end) = usage_hours(job, &spec_of(job).ok()?.scope).ok()?;
    let next = progress.next_hour?.max(first);
    Some(((next - first).max(0), (end - first).max(0)))
}
