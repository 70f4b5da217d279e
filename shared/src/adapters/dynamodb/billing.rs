//! Billing records and processed Stripe events on DynamoDB.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | billing record | `WS#{ws}` | `BILLING` |
//! | customer lookup | `CUS#{customer}` | `CUS` |
//! | due index | `BILLDUE` | `{due_ms:013}#{ws}` |
//! | processed Stripe event (TTL) | `STRIPE#{event}` | `EVT` |
//!
//! The due index is one partition: records with a pending change of entitlement are few (grace
//! periods and cancelled subscriptions), and the sweep reads them in due order.

use super::items::{self, BillingItem, Expiring, WorkspaceRef};
use super::*;
use crate::domain::billing::Billing;
use crate::domain::ids::WorkspaceId;
use crate::domain::plan::Plan;
use crate::ports::BillingSave;
use crate::ports::StoreResult;
use anyhow::anyhow;
use std::collections::HashMap;
use std::collections::HashSet;

/// Stripe retries a delivery for up to 3 days: a month of ids is plenty to recognise one.
pub(super) const STRIPE_EVENT_TTL_MS: i64 = 30 * 86_400_000;

pub(super) fn stripe_item(event: &str, now_ms: i64) -> anyhow::Result<Item> {
    items::item(
        schema::stripe_event(event),
        &Expiring {
            expires_at: items::ttl(now_ms + STRIPE_EVENT_TTL_MS),
        },
    )
}

/// A record and the due date it is listed under, as stored.
fn stored_billing(item: Item) -> anyhow::Result<BillingItem<'static>> {
    items::read(item)
}

#[async_trait]
impl BillingRecords for DynamoStore {
    async fn billing(&self, ws: &WorkspaceId) -> StoreResult<Option<Billing>> {
        Ok(self
            .get(schema::billing(ws))
            .await?
            .map(|i| Ok::<_, anyhow::Error>(stored_billing(i)?.into_billing()))
            .transpose()?)
    }

    async fn billing_by_customer(&self, customer_id: &str) -> StoreResult<Option<Billing>> {
        let Some(lookup) = self.get(schema::customer(customer_id)).await? else {
            return Ok(None);
        };
        let ws = items::read::<WorkspaceRef>(lookup)?.ws;
        // A record that moved to another customer leaves the old lookup item behind.
        Ok(self
            .billing(&ws)
            .await?
            .filter(|b| b.customer_id.as_deref() == Some(customer_id)))
    }

    async fn save_billing(
        &self,
        billing: &mut Billing,
        plan: Plan,
        due_ms: Option<i64>,
        event: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<BillingSave> {
        let ws = billing.workspace.clone();
        let expected = billing.version;
        // The old due date names the index item to remove; the version condition below makes
        // sure it is still the stored one when the transaction lands.
        let current = self
            .get(schema::billing(&ws))
            .await?
            .map(stored_billing)
            .transpose()?;
        let current_version = current.as_ref().map_or(0, |c| c.v);
        if current_version != expected {
            // An event already processed is a duplicate whatever the record became, as the
            // transaction would also answer.
            if let Some(event) = event
                && self.stripe_event_seen(event).await?
            {
                return Ok(BillingSave::Duplicate);
            }
            return Ok(BillingSave::Conflict);
        }
        let old_due = current.and_then(|c| c.due);

        let mut next = billing.clone();
        next.version = expected + 1;
        let record = items::item(schema::billing(&ws), &BillingItem::new(&next, due_ms))?;

        let mut steps = Vec::new();
        // First, so that when both conditions fail the event's answer is the one reported.
        let mut event_step = None;
        if let Some(event) = event {
            event_step = Some(steps.len());
            steps.push(Step::Put {
                item: stripe_item(event, now_ms)?,
                cond: Some("attribute_not_exists(pk)".into()),
                values: vec![],
            });
        }
        let record_step = steps.len();
        steps.push(if expected == 0 {
            Step::Put {
                item: record,
                cond: Some("attribute_not_exists(pk)".into()),
                values: vec![],
            }
        } else {
            Step::Put {
                item: record,
                cond: Some("v = :expected".into()),
                values: vec![(":expected", n(expected))],
            }
        });
        let workspace_step = steps.len();
        steps.push(Step::Update {
            key: schema::workspace(&ws),
            expr: "SET #plan = :plan".into(),
            cond: Some("attribute_exists(pk)".into()),
            values: vec![(":plan", s(plan.as_str()))],
        });
        if let Some(old) = old_due
            && Some(old) != due_ms
        {
            steps.push(Step::Delete {
                key: schema::due(old, &ws),
                cond: None,
                values: vec![],
            });
        }
        // The due index entry and the customer lookup point back at the workspace.
        let pointers = due_ms
            .map(|due| schema::due(due, &ws))
            .into_iter()
            .chain(next.customer_id.as_deref().map(schema::customer));
        for key in pointers {
            steps.push(Step::Put {
                item: items::item(key, &WorkspaceRef { ws: ws.clone() })?,
                cond: None,
                values: vec![],
            });
        }

        match self.transact(steps).await? {
            None => {
                *billing = next;
                Ok(BillingSave::Saved)
            }
            Some(i) if Some(i) == event_step => Ok(BillingSave::Duplicate),
            Some(i) if i == record_step => Ok(BillingSave::Conflict),
            Some(i) if i == workspace_step => Err(anyhow!(
                "workspace {ws} does not exist: its billing record was not saved"
            )
            .into()),
            Some(i) => {
                Err(anyhow!("step {i} of saving the billing record of {ws} was refused").into())
            }
        }
    }

    async fn record_stripe_event(&self, event: &str, now_ms: i64) -> StoreResult<bool> {
        Ok(self
            .put(
                stripe_item(event, now_ms)?,
                Some("attribute_not_exists(pk)"),
            )
            .await?)
    }

    async fn stripe_event_seen(&self, event: &str) -> StoreResult<bool> {
        Ok(self.get(schema::stripe_event(event)).await?.is_some())
    }

    async fn billing_due(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<Billing>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let (due_pk, hi) = schema::due_until(now_ms);
        let mut exclusive_start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND sk <= :hi")
                .expression_attribute_values(":pk", s(due_pk))
                .expression_attribute_values(":hi", s(hi.clone()))
                .limit((limit - out.len()).clamp(1, 1000) as i32)
                .set_exclusive_start_key(exclusive_start.take())
                .send()
                .await
                .map_err(err)?;
            let mut entries = Vec::with_capacity(page.items().len());
            for item in page.items() {
                let (_, sk) = items::key_of(item)?;
                entries.push((
                    schema::parse_due(&sk)?,
                    items::read_ref::<WorkspaceRef>(item)?.ws,
                ));
            }
            // BatchGetItem refuses a request that names a key twice.
            let keys: HashSet<Key> = entries.iter().map(|(_, ws)| schema::billing(ws)).collect();
            let mut records: HashMap<Key, BillingItem> = HashMap::new();
            for item in self.batch_get(keys.into_iter().collect()).await? {
                records.insert(items::key_of(&item)?, stored_billing(item)?);
            }
            for (due, ws) in entries {
                // An index item whose record now has another due date is stale: skip it.
                let key = schema::billing(&ws);
                if records.get(&key).is_none_or(|r| r.due != Some(due)) {
                    continue;
                }
                let Some(record) = records.remove(&key) else {
                    continue;
                };
                out.push(record.into_billing());
                if out.len() == limit {
                    return Ok(out);
                }
            }
            match page.last_evaluated_key {
                Some(k) => exclusive_start = Some(k),
                None => break,
            }
        }
        Ok(out)
    }
}
