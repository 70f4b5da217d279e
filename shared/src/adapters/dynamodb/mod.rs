//! The DynamoDB store: one table (`pk`, `sk`), TTL on `expires_at`.
//!
//! Item layout (single-table design; the keys are built in `schema`, the attributes of each kind
//! are the structs of `items`):
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
//! | provider connection, billed day | see `connections` | |
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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::anyhow;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as Av, BillingMode, KeySchemaElement, KeyType,
    KeysAndAttributes, ReturnValuesOnConditionCheckFailure, ScalarAttributeType,
    TimeToLiveSpecification,
};
use futures_util::{StreamExt as _, TryStreamExt as _};

use crate::domain::apikey::{ApiKey, KeyHash};
use crate::domain::event::Dedup;
use crate::domain::ids::{self, WorkspaceId};
use crate::domain::rollup::Rollup;
use crate::ports::{
    Accounts, AlertRules, AuditLog, BillingRecords, Erasure, Events, Ingest, IngestOutcome, Jobs,
    Keys, Members, Quota, Retention, Stored, Workspaces,
};

mod accounts;
mod alerts;
mod audit;
mod billing;
mod connections;
mod deletion;
mod hooks;
mod ingest;
mod items;
mod jobs;
mod keys;
mod members;
mod purge;
mod reads;
mod repricing;
mod retention;
mod rollups;
mod schema;
#[cfg(feature = "streams")]
pub mod stream;
mod workspaces;

use accounts::*;
#[cfg(feature = "test-hooks")]
pub use hooks::Capacity;
pub use hooks::CrashPoint;
use rollups::*;
use schema::Key;

type Item = HashMap<String, Av>;

/// How many writes one batch keeps in flight.
const CONCURRENCY: usize = 32;
/// TTL attribute (epoch seconds), as configured on the table.
pub const TTL_ATTRIBUTE: &str = "expires_at";

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
    hooks: hooks::Hooks,
    /// Leases, settling and expiry are judged by this clock, so tests can drive them.
    clock: crate::ports::DynClock,
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

/// A rollup item as read for read-modify-write.
struct Current {
    version: Option<u64>,
    rollup: Rollup,
    pending: Vec<String>,
}

impl DynamoStore {
    /// A store on the table, with the SDK configured from the environment (Lambda's role).
    /// The store of a Lambda function: the table `TABLE_NAME` names, with the AWS config from
    /// the environment.
    pub async fn for_lambda() -> anyhow::Result<DynamoStore> {
        let config = crate::config::LambdaConfig::from_env()?;
        Ok(DynamoStore::from_env(&config.table_name).await)
    }

    pub async fn from_env(table: &str) -> DynamoStore {
        let config = crate::adapters::aws::sdk_config().await;
        DynamoStore::new(Client::new(config), table)
    }

    pub fn new(client: Client, table: &str) -> DynamoStore {
        DynamoStore {
            client,
            table: table.to_owned(),
            lease_ms: 120_000,
            last_recovery: Arc::default(),
            recovery_interval_ms: 60_000,
            settle_ms: rollups::SETTLE_MS,
            hooks: hooks::Hooks::default(),
            clock: Arc::new(crate::ports::SystemClock),
        }
    }

    /// Tests: judge leases, settling and expiry by this clock.
    pub fn with_clock(mut self, clock: crate::ports::DynClock) -> DynamoStore {
        self.clock = clock;
        self
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Tests: markers count as stale after `lease`, and recovery runs on every call.
    pub fn with_recovery_lease(mut self, lease: Duration) -> DynamoStore {
        self.lease_ms = lease.as_millis() as i64;
        self.recovery_interval_ms = 0;
        self
    }

    /// Lets compaction fold batches as soon as they finish. Only for a single writer (tests and
    /// benchmarks), where no slower writer can still start a batch with an older id.
    pub fn with_immediate_compaction(mut self) -> DynamoStore {
        self.settle_ms = 0;
        self
    }

    /// Tests: make the next writes stop at `point`, as a process killed there would.
    #[cfg(feature = "test-hooks")]
    pub fn with_crash_at(mut self, point: Option<CrashPoint>) -> DynamoStore {
        self.hooks.crash_at = point;
        self
    }

    /// Benchmarks: the write units this store's writes cost.
    #[cfg(feature = "test-hooks")]
    pub fn capacity(&self) -> &Capacity {
        &self.hooks.capacity
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
        let size = self.hooks.write_size(&item);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_values(values)
            .set_return_consumed_capacity(self.hooks.consumed())
            .send()
            .await;
        match result {
            Ok(out) => {
                self.hooks.record_capacity(out.consumed_capacity(), size);
                Ok(true)
            }
            Err(e) if is_condition_failed(&e) => {
                // A failed condition still costs a write unit.
                self.hooks.record_capacity(None, size);
                Ok(false)
            }
            Err(e) => Err(err(e)),
        }
    }

    async fn get(&self, (pk, sk): Key) -> anyhow::Result<Option<Item>> {
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

    async fn delete(&self, (pk, sk): Key, condition: Option<&str>) -> anyhow::Result<bool> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .set_condition_expression(condition.map(str::to_owned))
            .set_return_consumed_capacity(self.hooks.consumed())
            .send()
            .await;
        match result {
            Ok(out) => {
                self.hooks.record_capacity(out.consumed_capacity(), 0);
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
    async fn query_prefix(&self, pk: String, prefix: &str) -> anyhow::Result<Vec<Item>> {
        self.query_all(pk, Some(schema::prefix_range(prefix)), None)
            .await
    }

    /// Consistent batch read of many keys, following UnprocessedKeys.
    async fn batch_get(&self, keys: Vec<Key>) -> anyhow::Result<Vec<Item>> {
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

    fn key_item(k: &ApiKey) -> anyhow::Result<Item> {
        items::item(schema::api_key(&k.hash), &items::ApiKeyItem::new(k))
    }

    fn key_from_item(item: Item) -> anyhow::Result<ApiKey> {
        let (pk, _) = items::key_of(&item)?;
        let hash = schema::hash_of_api_key(&pk).ok_or_else(|| anyhow!("bad key item {pk}"))?;
        Ok(items::read::<items::ApiKeyItem>(item)?.into_key(hash))
    }
}
