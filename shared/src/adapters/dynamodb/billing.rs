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
pub(super) const BILLING_SK: &str = "BILLING";
pub(super) const DUE_PK: &str = "BILLDUE";

pub(super) fn billing_pk(ws: &WorkspaceId) -> String {
    format!("WS#{ws}")
}

pub(super) fn customer_pk(customer_id: &str) -> String {
    format!("CUS#{customer_id}")
}

pub(super) fn due_sk(due_ms: i64, ws: &WorkspaceId) -> String {
    format!("{due_ms:013}#{ws}")
}

pub(super) fn stripe_pk(event: &str) -> String {
    format!("STRIPE#{event}")
}

pub(super) fn stripe_item(event: &str, now_ms: i64) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(stripe_pk(event))),
        ("sk".to_owned(), s("EVT")),
        (TTL_ATTRIBUTE.to_owned(), ttl(now_ms + STRIPE_EVENT_TTL_MS)),
    ])
}

/// The record, with its version from `v`: the one the conditional save checks.
pub(super) fn billing_from(item: &Item) -> anyhow::Result<Billing> {
    let mut b: Billing =
        serde_json::from_str(get_s(item, "d")?).context("decoding a billing record")?;
    b.version = get_n(item, "v")?;
    Ok(b)
}

impl DynamoStore {}

#[async_trait]
impl BillingRecords for DynamoStore {
    async fn billing(&self, ws: &WorkspaceId) -> StoreResult<Option<Billing>> {
        Ok(self
            .get(billing_pk(ws), BILLING_SK)
            .await?
            .map(|i| billing_from(&i))
            .transpose()?)
    }

    async fn billing_by_customer(&self, customer_id: &str) -> StoreResult<Option<Billing>> {
        let Some(lookup) = self.get(customer_pk(customer_id), "CUS").await? else {
            return Ok(None);
        };
        let ws = WorkspaceId::parse(get_s(&lookup, "ws")?)
            .ok_or_else(|| anyhow!("bad workspace id in the lookup of {customer_id}"))?;
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
        let current = self.get(billing_pk(&ws), BILLING_SK).await?;
        let current_version: u64 = current
            .as_ref()
            .map(|i| get_n(i, "v"))
            .transpose()?
            .unwrap_or(0);
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
        let old_due: Option<i64> = current.as_ref().and_then(|i| get_n(i, "due").ok());

        let mut next = billing.clone();
        next.version = expected + 1;
        let mut record = HashMap::from([
            ("pk".to_owned(), s(billing_pk(&ws))),
            ("sk".to_owned(), s(BILLING_SK)),
            ("v".to_owned(), n(next.version)),
            (
                "d".to_owned(),
                s(serde_json::to_string(&next).map_err(anyhow::Error::from)?),
            ),
        ]);
        if let Some(customer) = &next.customer_id {
            record.insert("cus".to_owned(), s(customer));
        }
        if let Some(due) = due_ms {
            record.insert("due".to_owned(), n(due));
        }

        let mut steps = Vec::new();
        // First, so that when both conditions fail the event's answer is the one reported.
        let event_step = event.map(|event| {
            steps.push(Step::Put {
                item: stripe_item(event, now_ms),
                cond: Some("attribute_not_exists(pk)".into()),
                values: vec![],
            });
            steps.len() - 1
        });
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
            pk: format!("WS#{ws}"),
            sk: "WS".into(),
            expr: "SET #plan = :plan".into(),
            cond: Some("attribute_exists(pk)".into()),
            values: vec![(":plan", s(plan.as_str()))],
        });
        if let Some(old) = old_due
            && Some(old) != due_ms
        {
            steps.push(Step::Delete {
                pk: DUE_PK.into(),
                sk: due_sk(old, &ws),
                cond: None,
                values: vec![],
            });
        }
        if let Some(due) = due_ms {
            steps.push(Step::Put {
                item: HashMap::from([
                    ("pk".to_owned(), s(DUE_PK)),
                    ("sk".to_owned(), s(due_sk(due, &ws))),
                    ("ws".to_owned(), s(ws.as_str())),
                ]),
                cond: None,
                values: vec![],
            });
        }
        if let Some(customer) = &next.customer_id {
            steps.push(Step::Put {
                item: HashMap::from([
                    ("pk".to_owned(), s(customer_pk(customer))),
                    ("sk".to_owned(), s("CUS")),
                    ("ws".to_owned(), s(ws.as_str())),
                ]),
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
            .put(stripe_item(event, now_ms), Some("attribute_not_exists(pk)"))
            .await?)
    }

    async fn stripe_event_seen(&self, event: &str) -> StoreResult<bool> {
        Ok(self.get(stripe_pk(event), "EVT").await?.is_some())
    }

    async fn billing_due(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<Billing>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        // `~` sorts after every workspace id, so every entry due at `now_ms` is in range.
        let hi = format!("{now_ms:013}#~");
        let mut exclusive_start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND sk <= :hi")
                .expression_attribute_values(":pk", s(DUE_PK))
                .expression_attribute_values(":hi", s(hi.clone()))
                .limit((limit - out.len()).clamp(1, 1000) as i32)
                .set_exclusive_start_key(exclusive_start.take())
                .send()
                .await
                .map_err(err)?;
            let mut entries = Vec::with_capacity(page.items().len());
            for item in page.items() {
                let sk = get_s(item, "sk")?;
                let due: i64 = sk
                    .split_once('#')
                    .and_then(|(due, _)| due.parse().ok())
                    .ok_or_else(|| anyhow!("bad due index key {sk}"))?;
                entries.push((due, get_s(item, "ws")?.to_owned()));
            }
            // BatchGetItem refuses a request that names a key twice.
            let keys: HashSet<(String, String)> = entries
                .iter()
                .map(|(_, ws)| (format!("WS#{ws}"), BILLING_SK.to_owned()))
                .collect();
            let records: HashMap<String, Item> = self
                .batch_get(keys.into_iter().collect())
                .await?
                .into_iter()
                .map(|i| Ok((get_s(&i, "pk")?.to_owned(), i)))
                .collect::<anyhow::Result<_>>()?;
            for (due, ws) in entries {
                // An index item whose record now has another due date is stale: skip it.
                let Some(record) = records.get(&format!("WS#{ws}")) else {
                    continue;
                };
                if get_n::<i64>(record, "due").ok() != Some(due) {
                    continue;
                }
                out.push(billing_from(record)?);
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
