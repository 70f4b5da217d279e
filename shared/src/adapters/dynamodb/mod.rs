//! The DynamoDB store: one table (`pk`, `sk`), TTL on `expires_at`.
//!
//! Item layout (single-table design):
//!
//! | item | pk | sk |
//! |---|---|---|
//! | workspace | `WS#{ws}` | `WS` |
//! | workspace index (for the monthly reports) | `WSIDX` | `{ws}` |
//! | alert rules, their history, one-time notices | see `alerts` | |
//! | key (auth lookup) | `KEY#{sha256}` | `KEY` |
//! | key (listing) | `WS#{ws}` | `KEY#{key_id}` |
//! | monthly usage | `WS#{ws}` | `USAGE#{YYYY-MM}` |
//! | event | `W#{ws}#E#{hour}` | `{ts_ms:013}#{id}` |
//! | id guard (id without timestamp) | `W#{ws}#ID#{id}` | `ID` |
//! | batch marker | `W#{ws}#B` | `{batch}` |
//! | rollup | `W#{ws}#R#{view}` | `{hour:010}#{value}` |
//! | batch delta (groups; TTL) | `W#{ws}#D` | `{batch}#{chunk:03}` |
//! | compaction lock / watermark | `W#{ws}#B` | `cmp` / `wm` |
//! | job / unfinished job | `JOB#{ws}` / `JOBS` | `{job}` / `{created}#{ws}#{job}` |
//! | user | `USER#{user}` | `USER` |
//! | user by email | `EMAIL#{email}` | `EMAIL` |
//! | sign-in code | `CODE#{email}` | `CODE` |
//! | rate-limit window | `RL#{bucket}` | `{window_start}` |
//! | session | `SESS#{sha256}` | `SESS` |
//! | session (per user) | `USER#{user}` | `SESS#{sha256}` |
//! | member | `WS#{ws}` | `MEMBER#{user}` |
//! | membership (per user) | `USER#{user}` | `MEMBER#{ws}` |
//! | invitation | `WS#{ws}` | `INV#{invitation}` |
//! | audit entry | `W#{ws}#AUDIT` | `{ulid}` |
//! | billing record, customer lookup, due index, Stripe event | see `billing` | |
//!
//! Exactly once without transactions (they cost double and conflict on hot rollup items):
//!
//! 1. reserve quota (one conditional ADD);
//! 2. write a batch marker;
//! 3. write each event with a conditional put keyed by its idempotency key, tagged with the batch id;
//! 4. write the batch's groups as a delta item (folded into every view but the total later, by
//!    `compact`: see `rollups`), and merge the batch's total into each total rollup item by
//!    read-modify-write with a version check, recording the batch id in the item's pending set;
//! 5. delete the marker and refund unused quota.
//!
//! A writer that dies leaves its marker. `recover` (run by ingest, at most once a minute per
//! workspace and instance) finds markers older than the lease, rebuilds the batch's deltas from
//! the events tagged with it, and applies them to exactly the rollup items that do not yet list
//! the batch. A batch id leaves an item's pending set once its marker is gone, so items stay small.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as Av, BillingMode, ConsumedCapacity, KeySchemaElement,
    KeyType, KeysAndAttributes, ReturnConsumedCapacity, ReturnValue,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TimeToLiveSpecification,
};
use futures_util::{StreamExt as _, TryStreamExt as _, stream};

use crate::domain::access::Role;
use crate::domain::account::{CodeCheck, Email, Invitation, LoginCode, Membership, Session, User};
use crate::domain::alert::{AlertEvent, AlertRule};
use crate::domain::apikey::{ApiKey, KeyHash, KeyState, Scope};
use crate::domain::audit::AuditEntry;
use crate::domain::billing::Billing;
use crate::domain::event::{Dedup, Event};
use crate::domain::ids::{self, InvitationId, KeyId, UserId, WorkspaceId};
use crate::domain::plan::Plan;
use crate::domain::rollup::{self, Rollup, RollupKey, View};
use crate::domain::time::hour_of;
use crate::ports::{
    BillingSave, IngestOutcome, Job, Purged, Quota, Retained, Store, StoreError, StoreResult,
    Stored, Workspace,
};

mod accounts;
mod alerts;
mod billing;
mod deletion;
mod purge;
mod reads;
mod retention;
mod rollups;

pub use reads::job_from_image;

type Item = HashMap<String, Av>;

/// How many writes one batch keeps in flight.
const CONCURRENCY: usize = 32;
/// TTL attribute (epoch seconds), as configured on the table.
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// Where a simulated crash stops a batch (tests of crash recovery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// After the events are written, before any rollup is touched.
    AfterEvents,
    /// After the first rollup item is updated.
    AfterFirstRollup,
    /// After a compaction run wrote its rollup items, before it deleted the deltas.
    AfterCompactionRollups,
    /// After a deletion removed its events and the hour from the pending deltas, before it
    /// rewrote the hour's rollups (still holding the compaction lock).
    BeforeDeletionRollups,
}

/// Write and read units DynamoDB reported, and write units computed from item sizes with
/// DynamoDB's rule (1 unit per started KiB). Servers that report a flat unit per request
/// (DynamoDB-compatible emulators) make the second the honest figure.
#[derive(Debug, Default)]
pub struct Capacity {
    reported_write_tenths: AtomicU64,
    sized_write_units: AtomicU64,
    write_requests: AtomicU64,
}

impl Capacity {
    pub fn reported_write_units(&self) -> f64 {
        self.reported_write_tenths.load(Ordering::Relaxed) as f64 / 10.0
    }
    pub fn sized_write_units(&self) -> u64 {
        self.sized_write_units.load(Ordering::Relaxed)
    }
    pub fn write_requests(&self) -> u64 {
        self.write_requests.load(Ordering::Relaxed)
    }
    pub fn reset(&self) {
        self.reported_write_tenths.store(0, Ordering::Relaxed);
        self.sized_write_units.store(0, Ordering::Relaxed);
        self.write_requests.store(0, Ordering::Relaxed);
    }
    fn record(&self, consumed: Option<&ConsumedCapacity>, item_bytes: usize) {
        if let Some(units) = consumed.and_then(|c| c.capacity_units()) {
            self.reported_write_tenths
                .fetch_add((units * 10.0).round() as u64, Ordering::Relaxed);
        }
        self.sized_write_units
            .fetch_add(item_bytes.div_ceil(1024).max(1) as u64, Ordering::Relaxed);
        self.write_requests.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// Markers older than this belong to dead writers (longer than any Lambda timeout we set).
    lease_ms: i64,
    /// Per workspace: when this instance last looked for stale markers.
    last_recovery: Arc<Mutex<HashMap<WorkspaceId, i64>>>,
    recovery_interval_ms: i64,
    /// How old a batch id must be before compaction folds it (see `rollups`).
    settle_ms: i64,
    crash_at: Option<CrashPoint>,
    capacity: Arc<Capacity>,
}

fn err<E, R>(e: SdkError<E, R>) -> anyhow::Error
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    anyhow!("{}", DisplayErrorContext(e))
}

fn is_condition_failed<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error().and_then(|s| s.code()) == Some("ConditionalCheckFailedException")
}

fn s(v: impl Into<String>) -> Av {
    Av::S(v.into())
}

fn n(v: impl ToString) -> Av {
    Av::N(v.to_string())
}

fn get_s<'a>(item: &'a Item, name: &str) -> anyhow::Result<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| anyhow!("item lacks string attribute {name}"))
}

fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> anyhow::Result<T> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("item lacks number attribute {name}"))
}

/// DynamoDB's item size: attribute names plus values (strings and binaries by length, numbers
/// roughly by digits, sets by members).
fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &Av) -> usize {
    match v {
        Av::S(x) => x.len(),
        Av::N(x) => x.len().div_ceil(2) + 1,
        Av::B(b) => b.as_ref().len(),
        Av::Ss(xs) => xs.iter().map(String::len).sum(),
        Av::Ns(xs) => xs.iter().map(|x| x.len().div_ceil(2) + 1).sum(),
        Av::Bool(_) | Av::Null(_) => 1,
        Av::L(xs) => 3 + xs.iter().map(|x| 1 + value_size(x)).sum::<usize>(),
        Av::M(m) => {
            3 + m
                .iter()
                .map(|(k, x)| 1 + k.len() + value_size(x))
                .sum::<usize>()
        }
        _ => 0,
    }
}

/// Every workspace's id, one item each, in one partition: the monthly reports walk it.
const WORKSPACE_INDEX_PK: &str = "WSIDX";

fn event_pk(ws: &WorkspaceId, hour: i64) -> String {
    format!("W#{ws}#E#{hour}")
}

fn event_sk(e: &Event) -> String {
    format!("{:013}#{}", e.ts_ms, e.id)
}

/// The guard that makes an id sent without a timestamp recognisable on retry.
fn guard_pk(ws: &WorkspaceId, id: &str) -> String {
    format!("W#{ws}#ID#{id}")
}

fn rollup_pk(ws: &WorkspaceId, view: &View) -> String {
    format!("W#{ws}#R#{}", view.encode())
}

fn rollup_sk(hour: i64, value: &str) -> String {
    format!("{hour:010}#{value}")
}

fn marker_pk(ws: &WorkspaceId) -> String {
    format!("W#{ws}#B")
}

/// A rollup item as read for read-modify-write.
struct Current {
    version: Option<u64>,
    rollup: Rollup,
    pending: Vec<String>,
}

impl DynamoStore {
    /// A store on the table, with the SDK configured from the environment (Lambda's role).
    pub async fn from_env(table: &str) -> DynamoStore {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        DynamoStore::new(Client::new(&config), table)
    }

    pub fn new(client: Client, table: &str) -> DynamoStore {
        DynamoStore {
            client,
            table: table.to_owned(),
            lease_ms: 120_000,
            last_recovery: Arc::default(),
            recovery_interval_ms: 60_000,
            settle_ms: rollups::SETTLE_MS,
            crash_at: None,
            capacity: Arc::default(),
        }
    }

    /// Tests: markers count as stale after `lease`, and recovery runs on every call.
    pub fn with_recovery_lease(mut self, lease: Duration) -> DynamoStore {
        self.lease_ms = lease.as_millis() as i64;
        self.recovery_interval_ms = 0;
        self
    }

    /// Tests: make the next ingests stop at `point`, as a process killed there would.
    /// Lets compaction fold batches as soon as they finish. Only for a single writer (tests and
    /// benchmarks), where no slower writer can still start a batch with an older id.
    pub fn with_immediate_compaction(mut self) -> DynamoStore {
        self.settle_ms = 0;
        self
    }

    pub fn with_crash_at(mut self, point: Option<CrashPoint>) -> DynamoStore {
        self.crash_at = point;
        self
    }

    pub fn capacity(&self) -> &Capacity {
        &self.capacity
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table as `template.yaml` defines it (for local runs and tests).
    pub async fn create_table(&self) -> anyhow::Result<()> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let key = |name: &str, t| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(t)
                .build()
        };
        self.client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .send()
            .await
            .map_err(err)?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(TTL_ATTRIBUTE)
                    .build()?,
            )
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn put(&self, item: Item, condition: Option<&str>) -> anyhow::Result<bool> {
        self.put_with(item, condition, None).await
    }

    /// A put, counted in `capacity`; false when its condition failed.
    async fn put_with(
        &self,
        item: Item,
        condition: Option<&str>,
        values: Option<HashMap<String, Av>>,
    ) -> anyhow::Result<bool> {
        let size = item_size(&item);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_values(values)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(out) => {
                self.capacity.record(out.consumed_capacity(), size);
                Ok(true)
            }
            Err(e) if is_condition_failed(&e) => {
                // A failed condition still costs a write unit.
                self.capacity.record(None, size);
                Ok(false)
            }
            Err(e) => Err(err(e)),
        }
    }

    async fn get(&self, pk: String, sk: &str) -> anyhow::Result<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(err)?;
        Ok(out.item)
    }

    async fn delete(
        &self,
        pk: String,
        sk: String,
        condition: Option<&str>,
    ) -> anyhow::Result<bool> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .set_condition_expression(condition.map(str::to_owned))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(out) => {
                self.capacity.record(out.consumed_capacity(), 0);
                Ok(true)
            }
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(err(e)),
        }
    }

    /// Every item of a partition (optionally a sort-key range and a filter), all pages.
    async fn query_all(
        &self,
        pk: String,
        range: Option<(String, String)>,
        filter: Option<(&str, Av)>,
    ) -> anyhow::Result<Vec<Item>> {
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .expression_attribute_values(":pk", s(pk));
        q = match range {
            Some((lo, hi)) => q
                .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
                .expression_attribute_values(":lo", s(lo))
                .expression_attribute_values(":hi", s(hi)),
            None => q.key_condition_expression("pk = :pk"),
        };
        if let Some((expr, value)) = filter {
            q = q
                .filter_expression(expr)
                .expression_attribute_values(":f", value);
        }
        q.into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(err)
    }

    /// Every item of a partition whose sort key starts with `prefix` (`KEY#`, `MEMBER#`, ...).
    /// `~` sorts after every character ids use, so the range covers exactly that prefix.
    async fn query_prefix(&self, pk: String, prefix: &str) -> anyhow::Result<Vec<Item>> {
        self.query_all(pk, Some((prefix.to_owned(), format!("{prefix}~"))), None)
            .await
    }

    /// Consistent batch read of many keys, following UnprocessedKeys.
    async fn batch_get(&self, keys: Vec<(String, String)>) -> anyhow::Result<Vec<Item>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            let mut request = KeysAndAttributes::builder().consistent_read(true);
            for (pk, sk) in chunk {
                request = request.keys(HashMap::from([
                    ("pk".to_owned(), s(pk.clone())),
                    ("sk".to_owned(), s(sk.clone())),
                ]));
            }
            let mut pending = Some(request.build()?);
            let mut attempt = 0u32;
            while let Some(req) = pending.take() {
                let resp = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, req)
                    .send()
                    .await
                    .map_err(err)?;
                if let Some(items) = resp.responses.and_then(|mut r| r.remove(&self.table)) {
                    out.extend(items);
                }
                pending = resp
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys().is_empty());
                if pending.is_some() {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(10 << attempt.min(6))).await;
                }
            }
        }
        Ok(out)
    }

    fn key_item(k: &ApiKey) -> Item {
        let mut item = HashMap::from([
            ("pk".to_owned(), s(format!("KEY#{}", k.hash.0))),
            ("sk".to_owned(), s("KEY")),
            ("id".to_owned(), s(k.id.as_str())),
            ("ws".to_owned(), s(k.workspace_id.as_str())),
            ("name".to_owned(), s(&k.name)),
            ("src".to_owned(), s(&k.source)),
            ("scope".to_owned(), s(k.scope.as_str())),
            ("state".to_owned(), s(k.state.as_str())),
            ("prefix".to_owned(), s(&k.prefix)),
            ("created".to_owned(), n(k.created_ms)),
        ]);
        if let Some(t) = k.last_used_ms {
            item.insert("used".to_owned(), n(t));
        }
        if let Some(by) = &k.created_by {
            item.insert("by".to_owned(), s(by));
        }
        item
    }

    fn key_from_item(item: &Item) -> anyhow::Result<ApiKey> {
        let pk = get_s(item, "pk")?;
        Ok(ApiKey {
            hash: KeyHash(
                pk.strip_prefix("KEY#")
                    .ok_or_else(|| anyhow!("bad key item {pk}"))?
                    .to_owned(),
            ),
            id: KeyId::parse(get_s(item, "id")?).ok_or_else(|| anyhow!("bad key id"))?,
            workspace_id: WorkspaceId::parse(get_s(item, "ws")?)
                .ok_or_else(|| anyhow!("bad workspace id"))?,
            name: get_s(item, "name")?.to_owned(),
            source: get_s(item, "src")?.to_owned(),
            scope: Scope::parse(get_s(item, "scope")?).ok_or_else(|| anyhow!("bad scope"))?,
            state: KeyState::parse(get_s(item, "state")?).ok_or_else(|| anyhow!("bad state"))?,
            prefix: get_s(item, "prefix")?.to_owned(),
            created_ms: get_n(item, "created")?,
            created_by: get_s(item, "by").ok().map(str::to_owned),
            last_used_ms: get_n(item, "used").ok(),
        })
    }

    fn event_item(ws: &WorkspaceId, e: &Event, batch: &str) -> anyhow::Result<Item> {
        Ok(HashMap::from([
            ("pk".to_owned(), s(event_pk(ws, hour_of(e.ts_ms)))),
            ("sk".to_owned(), s(event_sk(e))),
            ("b".to_owned(), s(batch)),
            ("d".to_owned(), s(serde_json::to_string(e)?)),
            (TTL_ATTRIBUTE.to_owned(), n(e.expires_ms.div_euclid(1000))),
        ]))
    }

    /// Writes one event once. For an id sent without a timestamp, a guard item keyed by the id
    /// alone makes retries (which get a new receive time) recognisable.
    async fn write_event(
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
        let guard_pk = guard_pk(ws, &e.id);
        let guard = HashMap::from([
            ("pk".to_owned(), s(guard_pk.clone())),
            ("sk".to_owned(), s("ID")),
            ("epk".to_owned(), item["pk"].clone()),
            ("esk".to_owned(), item["sk"].clone()),
            (TTL_ATTRIBUTE.to_owned(), n(e.expires_ms.div_euclid(1000))),
        ]);
        let size = item_size(&guard);
        let claimed = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(guard))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        let (epk, esk) = match claimed {
            Ok(out) => {
                self.capacity.record(out.consumed_capacity(), size);
                (
                    get_s(&item, "pk")?.to_owned(),
                    get_s(&item, "sk")?.to_owned(),
                )
            }
            Err(SdkError::ServiceError(ctx))
                if ctx.err().is_conditional_check_failed_exception() =>
            {
                self.capacity.record(None, size);
                // The id was claimed before. If the claimant died before writing the event, write it
                // under the claimed key now; the conditional put lets only one retry do so.
                let old = match ctx.err() {
                    PutItemError::ConditionalCheckFailedException(c) => {
                        c.item().cloned().unwrap_or_default()
                    }
                    _ => Item::new(),
                };
                (
                    get_s(&old, "epk")?.to_owned(),
                    get_s(&old, "esk")?.to_owned(),
                )
            }
            Err(e) => return Err(err(e)),
        };
        if self.get(epk.clone(), &esk).await?.is_some() {
            return Ok(Stored::Duplicate);
        }
        let mut item = item;
        let ts: i64 = esk
            .split('#')
            .next()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| anyhow!("bad guarded key {esk}"))?;
        let mut claimed_event = e.clone();
        claimed_event.ts_ms = ts;
        item.insert("pk".to_owned(), s(epk));
        item.insert("sk".to_owned(), s(esk));
        item.insert("d".to_owned(), s(serde_json::to_string(&claimed_event)?));
        let written = self.put(item, Some("attribute_not_exists(pk)")).await?;
        Ok(if written {
            Stored::Accepted
        } else {
            Stored::Duplicate
        })
    }

    /// Whether an event with this identity is stored already (for answering a retry when nothing
    /// new may be written).
    async fn already_stored(&self, ws: &WorkspaceId, e: &Event) -> anyhow::Result<bool> {
        match e.dedup {
            Dedup::None => Ok(false),
            Dedup::IdAndTimestamp => Ok(self
                .get(event_pk(ws, hour_of(e.ts_ms)), &event_sk(e))
                .await?
                .is_some()),
            Dedup::Id => {
                let Some(guard) = self.get(guard_pk(ws, &e.id), "ID").await? else {
                    return Ok(false);
                };
                let (epk, esk) = (get_s(&guard, "epk")?, get_s(&guard, "esk")?);
                Ok(self.get(epk.to_owned(), esk).await?.is_some())
            }
        }
    }

    /// Step 4: the batch's groups as delta items, for the deferred views (see `rollups`), then the
    /// core rollups.
    async fn apply_batch<'a>(
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
    async fn finish_batch(
        &self,
        ws: &WorkspaceId,
        batch: &str,
        month: &str,
        unused: u64,
    ) -> anyhow::Result<()> {
        let deleted = self
            .delete(
                marker_pk(ws),
                batch.to_owned(),
                Some("attribute_exists(pk)"),
            )
            .await?;
        if deleted && unused > 0 {
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(format!("WS#{ws}")))
                .key("sk", s(format!("USAGE#{month}")))
                .update_expression("ADD n :d")
                .expression_attribute_values(":d", n(-(unused as i64)))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(err)?;
            self.capacity.record(out.consumed_capacity(), 64);
        }
        Ok(())
    }

    async fn recover_stale(&self, ws: &WorkspaceId, now_ms: i64) -> anyhow::Result<usize> {
        let markers = self.query_all(marker_pk(ws), None, None).await?;
        let mut finished = 0;
        for marker in markers {
            if matches!(
                get_s(&marker, "sk")?,
                rollups::LOCK_SK | rollups::WATERMARK_SK
            ) {
                continue; // compaction's lock and watermark, not batches
            }
            let created: i64 = get_n(&marker, "created")?;
            if now_ms - created < self.lease_ms {
                continue; // its writer may still be working
            }
            let batch = get_s(&marker, "sk")?.to_owned();
            let month = get_s(&marker, "month")?.to_owned();
            let reserved: u64 = get_n(&marker, "reserved")?;
            let hours: Vec<i64> = marker
                .get("hours")
                .and_then(|h| h.as_ns().ok())
                .map(|h| h.iter().filter_map(|x| x.parse().ok()).collect())
                .unwrap_or_default();
            let mut events = Vec::new();
            for hour in hours {
                for item in self
                    .query_all(event_pk(ws, hour), None, Some(("b = :f", s(batch.clone()))))
                    .await?
                {
                    events.push(serde_json::from_str::<Event>(get_s(&item, "d")?)?);
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
}

#[async_trait]
impl Store for DynamoStore {
    async fn create_workspace(&self, ws: &Workspace) -> StoreResult<()> {
        // The index first: an entry whose workspace never came is skipped by its readers.
        let listed = HashMap::from([
            ("pk".to_owned(), s(WORKSPACE_INDEX_PK)),
            ("sk".to_owned(), s(ws.id.as_str())),
        ]);
        self.put(listed, None).await?;
        let item = HashMap::from([
            ("pk".to_owned(), s(format!("WS#{}", ws.id))),
            ("sk".to_owned(), s("WS")),
            ("name".to_owned(), s(&ws.name)),
            ("plan".to_owned(), s(ws.plan.as_str())),
            ("tz".to_owned(), s(&ws.timezone)),
            ("created".to_owned(), n(ws.created_ms)),
            // Counters behind the limits enforced atomically (active keys, members, owners).
            ("keys".to_owned(), n(0)),
            ("members".to_owned(), n(0)),
            ("owners".to_owned(), n(0)),
        ]);
        if self.put(item, Some("attribute_not_exists(pk)")).await? {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!("workspace {}", ws.id)))
        }
    }

    async fn workspace(&self, id: &WorkspaceId) -> StoreResult<Option<Workspace>> {
        let Some(item) = self.get(format!("WS#{id}"), "WS").await? else {
            return Ok(None);
        };
        Ok(Some(Workspace {
            id: id.clone(),
            name: get_s(&item, "name")?.to_owned(),
            plan: Plan::parse(get_s(&item, "plan")?)
                .ok_or_else(|| anyhow!("workspace {id} has an unknown plan"))?,
            timezone: get_s(&item, "tz").unwrap_or("UTC").to_owned(),
            created_ms: get_n(&item, "created")?,
            deleting: get_s(&item, "deleting").ok().map(str::to_owned),
        }))
    }

    async fn update_workspace(&self, ws: &Workspace) -> StoreResult<bool> {
        Ok(self.update_workspace_settings(ws).await?)
    }

    async fn set_plan(&self, id: &WorkspaceId, plan: Plan) -> StoreResult<bool> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("WS#{id}")))
            .key("sk", s("WS"))
            .update_expression("SET #p = :p")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#p", "plan")
            .expression_attribute_values(":p", s(plan.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(err(e).into()),
        }
    }

    async fn create_key(&self, key: &ApiKey, max_active: u32) -> StoreResult<()> {
        self.create_key_within(key, max_active).await
    }

    async fn key_by_hash(&self, hash: &KeyHash) -> StoreResult<Option<ApiKey>> {
        Ok(self
            .get(format!("KEY#{}", hash.0), "KEY")
            .await?
            .map(|i| Self::key_from_item(&i))
            .transpose()?)
    }

    async fn keys(&self, ws: &WorkspaceId) -> StoreResult<Vec<ApiKey>> {
        let listing = self.query_prefix(format!("WS#{ws}"), "KEY#").await?;
        let hashes = listing
            .iter()
            .map(|i| get_s(i, "hash").map(|h| (format!("KEY#{h}"), "KEY".to_owned())))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut keys = self
            .batch_get(hashes)
            .await?
            .iter()
            .map(Self::key_from_item)
            .collect::<anyhow::Result<Vec<_>>>()?;
        keys.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(keys)
    }

    async fn set_key_state(
        &self,
        ws: &WorkspaceId,
        key: &KeyId,
        state: KeyState,
        max_active: u32,
    ) -> StoreResult<bool> {
        self.set_key_state_within(ws, key, state, max_active).await
    }

    async fn delete_key(&self, ws: &WorkspaceId, key: &KeyId) -> StoreResult<bool> {
        self.delete_key_counted(ws, key).await
    }

    async fn touch_key(&self, key: &ApiKey, at_ms: i64) -> StoreResult<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("KEY#{}", key.hash.0)))
            .key("sk", s("KEY"))
            .update_expression("SET used = :t")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(used) OR used < :t)",
            )
            .expression_attribute_values(":t", n(at_ms))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| {
                if is_condition_failed(&e) {
                    Ok(())
                } else {
                    Err(err(e))
                }
            })?;
        Ok(())
    }

    async fn ingest(
        &self,
        ws: &WorkspaceId,
        events: &[Event],
        quota: &Quota,
    ) -> StoreResult<IngestOutcome> {
        if events.is_empty() {
            return Ok(IngestOutcome::Stored(Vec::new()));
        }
        // Repeats inside one request are duplicates of their first occurrence: no second write.
        let mut seen = HashSet::new();
        let first: Vec<bool> = events
            .iter()
            .map(|e| e.idempotency_key().is_none_or(|k| seen.insert(k)))
            .collect();
        let reserve = first.iter().filter(|f| **f).count() as u64;

        // 1. Reserve quota atomically: concurrent batches can overshoot by at most one batch.
        let usage_key = (format!("WS#{ws}"), format!("USAGE#{}", quota.month));
        let reserved = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(usage_key.0.clone()))
            .key("sk", s(usage_key.1.clone()))
            .update_expression("ADD n :k")
            .condition_expression("attribute_not_exists(n) OR n < :limit")
            .expression_attribute_values(":k", n(reserve))
            .expression_attribute_values(":limit", n(quota.limit))
            .return_values(ReturnValue::None)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match reserved {
            Ok(out) => self.capacity.record(out.consumed_capacity(), 64),
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
        let batch = ids::batch_id();
        let hours: HashSet<i64> = events.iter().map(|e| hour_of(e.ts_ms)).collect();
        let marker = HashMap::from([
            ("pk".to_owned(), s(marker_pk(ws))),
            ("sk".to_owned(), s(batch.clone())),
            (
                "created".to_owned(),
                n(chrono::Utc::now().timestamp_millis()),
            ),
            ("month".to_owned(), s(quota.month.clone())),
            ("reserved".to_owned(), n(reserve)),
            (
                "hours".to_owned(),
                Av::Ns(hours.iter().map(i64::to_string).collect()),
            ),
        ]);
        self.put(marker, None).await?;

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
        if self.crash_at == Some(CrashPoint::AfterEvents) {
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

    async fn usage(&self, ws: &WorkspaceId, month: &str) -> StoreResult<u64> {
        let item = self
            .get(format!("WS#{ws}"), &format!("USAGE#{month}"))
            .await?;
        Ok(item
            .map(|i| get_n::<i64>(&i, "n"))
            .transpose()?
            .unwrap_or(0)
            .max(0) as u64)
    }

    async fn rollups(
        &self,
        ws: &WorkspaceId,
        view: &View,
        from_hour: i64,
        to_hour: i64,
    ) -> StoreResult<Vec<(RollupKey, Rollup)>> {
        // `{to:010}` sorts before every `{to:010}#value`, so hour `to` is excluded.
        let items = self
            .query_all(
                rollup_pk(ws, view),
                Some((format!("{from_hour:010}"), format!("{to_hour:010}"))),
                None,
            )
            .await?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let sk = get_s(&item, "sk")?;
            let (hour, value) = sk
                .split_once('#')
                .ok_or_else(|| anyhow!("bad rollup key {sk}"))?;
            let (rollup, pending) = rollups::rollup_data(&item)?;
            let key = RollupKey {
                hour: hour.parse().context("rollup hour")?,
                view: view.clone(),
                value: value.to_owned(),
            };
            out.push((key, rollup, pending));
        }
        if view.is_core() {
            return Ok(out.into_iter().map(|(k, r, _)| (k, r)).collect());
        }
        Ok(self
            .merge_pending(ws, view, from_hour, to_hour, out)
            .await?)
    }

    async fn events(
        &self,
        ws: &WorkspaceId,
        from_ms: i64,
        to_ms: i64,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> StoreResult<Vec<Event>> {
        let mut out = Vec::new();
        if from_ms >= to_ms {
            return Ok(out);
        }
        let start = after.as_ref().map_or(from_ms, |(ts, _)| (*ts).max(from_ms));
        // Each hour is one partition sorted by `{ts}#{id}`: read only the range asked for, a page
        // at a time, and stop as soon as the page of results is full.
        // `{to}` sorts before every `{to}#id`, so the range ends just before `to`.
        let (lo, hi) = (format!("{start:013}"), format!("{to_ms:013}"));
        for hour in hour_of(start)..=hour_of(to_ms - 1) {
            let mut exclusive_start = None;
            loop {
                let page = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
                    .expression_attribute_values(":pk", s(event_pk(ws, hour)))
                    .expression_attribute_values(":lo", s(lo.clone()))
                    .expression_attribute_values(":hi", s(hi.clone()))
                    .limit((limit - out.len()).clamp(1, 1000) as i32 + 1)
                    .set_exclusive_start_key(exclusive_start.take())
                    .send()
                    .await
                    .map_err(err)?;
                for item in page.items() {
                    let e: Event = serde_json::from_str(get_s(item, "d")?)
                        .context("decoding a stored event")?;
                    let past_cursor = after
                        .as_ref()
                        .is_none_or(|(ts, id)| (e.ts_ms, &e.id) > (*ts, id));
                    if past_cursor {
                        out.push(e);
                        if out.len() == limit {
                            return Ok(out);
                        }
                    }
                }
                match page.last_evaluated_key {
                    Some(k) => exclusive_start = Some(k),
                    None => break,
                }
            }
        }
        Ok(out)
    }

    async fn recent_events(
        &self,
        ws: &WorkspaceId,
        from_ms: i64,
        to_ms: i64,
        before: Option<(i64, String)>,
        limit: usize,
    ) -> StoreResult<Vec<Event>> {
        self.recent_events_impl(ws, from_ms, to_ms, before, limit)
            .await
    }

    async fn create_job(&self, job: &Job) -> StoreResult<()> {
        self.create_job_impl(job).await
    }

    async fn job(&self, ws: &WorkspaceId, id: &str) -> StoreResult<Option<Job>> {
        self.job_impl(ws, id).await
    }

    async fn update_job(&self, job: &mut Job) -> StoreResult<bool> {
        self.update_job_impl(job).await
    }

    async fn unfinished_jobs(&self) -> StoreResult<Vec<Job>> {
        self.unfinished_jobs_impl().await
    }

    async fn recover(&self, ws: &WorkspaceId) -> StoreResult<usize> {
        let now = chrono::Utc::now().timestamp_millis();
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

    async fn upsert_user(&self, user: &User) -> StoreResult<User> {
        self.upsert_user_impl(user).await
    }

    async fn user(&self, id: &UserId) -> StoreResult<Option<User>> {
        self.user_impl(id).await
    }

    async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        self.user_by_email_impl(email).await
    }

    async fn put_login_code(&self, code: &LoginCode) -> StoreResult<()> {
        self.put_login_code_impl(code).await
    }

    async fn check_login_code(
        &self,
        email: &Email,
        hash: &str,
        now_ms: i64,
    ) -> StoreResult<CodeCheck> {
        self.check_login_code_impl(email, hash, now_ms).await
    }

    async fn hit_rate_limit(
        &self,
        bucket: &str,
        window_start_ms: i64,
        window_ms: i64,
        hits: u64,
    ) -> StoreResult<u64> {
        self.hit_rate_limit_impl(bucket, window_start_ms, window_ms, hits)
            .await
    }

    async fn create_session(&self, session: &Session) -> StoreResult<()> {
        self.create_session_impl(session).await
    }

    async fn session(&self, hash: &str) -> StoreResult<Option<Session>> {
        self.session_impl(hash).await
    }

    async fn delete_session(&self, hash: &str) -> StoreResult<()> {
        self.delete_session_impl(hash).await
    }

    async fn delete_user_sessions(&self, user: &UserId) -> StoreResult<usize> {
        self.delete_user_sessions_impl(user).await
    }

    async fn add_member(&self, m: &Membership, max_members: u32) -> StoreResult<()> {
        self.add_member_impl(m, max_members).await
    }

    async fn member(&self, ws: &WorkspaceId, user: &UserId) -> StoreResult<Option<Membership>> {
        self.member_impl(ws, user).await
    }

    async fn members(&self, ws: &WorkspaceId) -> StoreResult<Vec<Membership>> {
        self.members_impl(ws).await
    }

    async fn memberships(&self, user: &UserId) -> StoreResult<Vec<Membership>> {
        self.memberships_impl(user).await
    }

    async fn set_role(&self, ws: &WorkspaceId, user: &UserId, role: Role) -> StoreResult<bool> {
        self.set_role_impl(ws, user, role).await
    }

    async fn remove_member(&self, ws: &WorkspaceId, user: &UserId) -> StoreResult<bool> {
        self.remove_member_impl(ws, user).await
    }

    async fn create_invitation(&self, inv: &Invitation) -> StoreResult<()> {
        self.create_invitation_impl(inv).await
    }

    async fn invitation(
        &self,
        ws: &WorkspaceId,
        id: &InvitationId,
    ) -> StoreResult<Option<Invitation>> {
        self.invitation_impl(ws, id).await
    }

    async fn invitations(&self, ws: &WorkspaceId) -> StoreResult<Vec<Invitation>> {
        self.invitations_impl(ws).await
    }

    async fn delete_invitation(&self, ws: &WorkspaceId, id: &InvitationId) -> StoreResult<bool> {
        self.delete_invitation_impl(ws, id).await
    }

    async fn billing(&self, ws: &WorkspaceId) -> StoreResult<Option<Billing>> {
        self.billing_impl(ws).await
    }

    async fn billing_by_customer(&self, customer_id: &str) -> StoreResult<Option<Billing>> {
        self.billing_by_customer_impl(customer_id).await
    }

    async fn save_billing(
        &self,
        billing: &mut Billing,
        plan: Plan,
        due_ms: Option<i64>,
        event: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<BillingSave> {
        self.save_billing_impl(billing, plan, due_ms, event, now_ms)
            .await
    }

    async fn record_stripe_event(&self, event: &str, now_ms: i64) -> StoreResult<bool> {
        self.record_stripe_event_impl(event, now_ms).await
    }

    async fn stripe_event_seen(&self, event: &str) -> StoreResult<bool> {
        self.stripe_event_seen_impl(event).await
    }

    async fn billing_due(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<Billing>> {
        self.billing_due_impl(now_ms, limit).await
    }

    async fn delete_events_in_hour(
        &self,
        ws: &WorkspaceId,
        hour: i64,
        from_ms: i64,
        to_ms: i64,
        source: Option<&str>,
    ) -> StoreResult<u64> {
        self.delete_events_in_hour_impl(ws, hour, from_ms, to_ms, source)
            .await
    }

    /// An ingest request reads the workspace before it writes, for at most the ingest
    /// function's timeout (15 s); a batch whose writer died is finished by the next recovery
    /// once its lease is over.
    fn in_flight_ms(&self) -> i64 {
        self.lease_ms + 30_000
    }

    async fn workspace_ids(
        &self,
        after: Option<&WorkspaceId>,
        limit: usize,
    ) -> StoreResult<Vec<WorkspaceId>> {
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", s(WORKSPACE_INDEX_PK))
            .limit(limit.clamp(1, 1000) as i32);
        q = match after {
            Some(a) => q
                .key_condition_expression("pk = :pk AND sk > :after")
                .expression_attribute_values(":after", s(a.as_str())),
            None => q.key_condition_expression("pk = :pk"),
        };
        let out = q.send().await.map_err(err)?;
        Ok(out
            .items()
            .iter()
            .filter_map(|i| get_s(i, "sk").ok().and_then(WorkspaceId::parse))
            .collect())
    }

    async fn claim_notice(&self, ws: &WorkspaceId, key: &str, now_ms: i64) -> StoreResult<bool> {
        self.claim_notice_impl(ws, key, now_ms).await
    }

    async fn create_alert_rule(&self, rule: &AlertRule, max_rules: u32) -> StoreResult<()> {
        self.create_alert_rule_impl(rule, max_rules).await
    }

    async fn alert_rules(&self, ws: &WorkspaceId) -> StoreResult<Vec<AlertRule>> {
        self.alert_rules_impl(ws).await
    }

    async fn alert_rule(&self, ws: &WorkspaceId, id: &str) -> StoreResult<Option<AlertRule>> {
        self.alert_rule_impl(ws, id).await
    }

    async fn update_alert_rule(&self, rule: &mut AlertRule) -> StoreResult<bool> {
        self.update_alert_rule_impl(rule).await
    }

    async fn delete_alert_rule(&self, ws: &WorkspaceId, id: &str) -> StoreResult<bool> {
        self.delete_alert_rule_impl(ws, id).await
    }

    async fn append_alert_event(&self, event: &AlertEvent) -> StoreResult<()> {
        self.append_alert_event_impl(event).await
    }

    async fn alert_events(
        &self,
        ws: &WorkspaceId,
        rule: &str,
        limit: usize,
    ) -> StoreResult<Vec<AlertEvent>> {
        self.alert_events_impl(ws, rule, limit).await
    }

    async fn set_reports_opt_out(&self, user: &UserId, opt_out: bool) -> StoreResult<bool> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("USER#{user}")))
            .key("sk", s("USER"))
            .update_expression("SET nr = :nr")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":nr", Av::Bool(opt_out))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(err(e).into()),
        }
    }

    async fn begin_deletion(&self, job: &Job, whole_workspace: bool) -> StoreResult<bool> {
        self.begin_deletion_impl(job, whole_workspace).await
    }

    async fn purge_workspace(&self, ws: &WorkspaceId, budget: usize) -> StoreResult<Purged> {
        self.purge_workspace_impl(ws, budget).await
    }

    async fn delete_user(&self, user: &UserId) -> StoreResult<Purged> {
        self.delete_user_impl(user).await
    }
    async fn scrub(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn apply_retention(
        &self,
        ws: &WorkspaceId,
        from_hour: i64,
        to_hour: i64,
        history_ms: i64,
        now_ms: i64,
    ) -> StoreResult<Retained> {
        self.apply_retention_impl(ws, from_hour, to_hour, history_ms, now_ms)
            .await
    }

    async fn purge_expired(&self, _now_ms: i64) -> StoreResult<u64> {
        // The table's TTL deletes expired items on its own, at no write cost.
        Ok(0)
    }

    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        self.append_audit_impl(entry).await
    }

    async fn audit(
        &self,
        ws: &WorkspaceId,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<AuditEntry>> {
        self.audit_impl(ws, before, limit).await
    }
}
