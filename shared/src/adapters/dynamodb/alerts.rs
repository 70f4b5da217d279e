//! Alert rules, their history and one-time notices on DynamoDB.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | rule | `WS#{ws}` | `ALERT#{rule}` |
//! | rule history entry (TTL 400 days) | `W#{ws}#ALERTLOG` | `{rule}#{ulid}` |
//! | one-time notice (report mailed, usage alert) | `WS#{ws}` | `NOTICE#{key}` |
//!
//! The workspace item counts its rules (`alerts`), changed in the same transaction as the rule,
//! so the plan's limit holds under concurrent creates, as for keys.

use super::items::{self, AlertEventItem, AlertRuleItem};
use super::*;
use crate::domain::alert::AlertEvent;
use crate::domain::alert::AlertRule;
use crate::domain::ids::WorkspaceId;
use crate::ports::Refusal;
use crate::ports::StoreError;
use crate::ports::StoreResult;
use aws_sdk_dynamodb::types::AttributeValue as Av;
use std::borrow::Cow;
use std::collections::HashMap;

/// A rule's history is kept a little over a year.
pub(super) const HISTORY_TTL_MS: i64 = 400 * 86_400_000;

pub(super) fn rule_item(rule: &AlertRule) -> anyhow::Result<Item> {
    items::item(
        schema::alert_rule(&rule.workspace, &rule.id),
        &AlertRuleItem::new(rule),
    )
}

pub(super) fn rule_from(item: Item) -> anyhow::Result<AlertRule> {
    Ok(items::read::<AlertRuleItem>(item)?.into_rule())
}

#[async_trait]
impl AlertRules for DynamoStore {
    async fn create_alert_rule(&self, rule: &AlertRule, max_rules: u32) -> StoreResult<()> {
        let steps = vec![
            Step::Update {
                key: schema::workspace(&rule.workspace),
                expr: "ADD alerts :one".into(),
                cond: Some(
                    "attribute_exists(pk) AND (attribute_not_exists(alerts) OR alerts < :max)"
                        .into(),
                ),
                values: vec![(":one", n(1)), (":max", n(max_rules))],
            },
            Step::Put {
                item: rule_item(rule)?,
                cond: Some("attribute_not_exists(pk)".into()),
                values: vec![],
            },
        ];
        match self.transact(steps).await? {
            None => Ok(()),
            Some(_) => Err(StoreError::Refused(Refusal::AlertRuleLimit)),
        }
    }

    async fn alert_rules(&self, ws: &WorkspaceId) -> StoreResult<Vec<AlertRule>> {
        Ok(self
            .query_prefix(schema::workspace_pk(ws), schema::ALERT_PREFIX)
            .await?
            .into_iter()
            .map(rule_from)
            .collect::<anyhow::Result<_>>()?)
    }

    async fn alert_rule(&self, ws: &WorkspaceId, id: &str) -> StoreResult<Option<AlertRule>> {
        Ok(self
            .get(schema::alert_rule(ws, id))
            .await?
            .map(rule_from)
            .transpose()?)
    }

    async fn update_alert_rule(&self, rule: &mut AlertRule) -> StoreResult<bool> {
        let mut next = rule.clone();
        next.version += 1;
        let saved = self
            .put_with(
                rule_item(&next)?,
                Some("v = :v"),
                Some(HashMap::from([(":v".to_owned(), n(rule.version))])),
            )
            .await?;
        if saved {
            *rule = next;
        }
        Ok(saved)
    }

    async fn delete_alert_rule(&self, ws: &WorkspaceId, id: &str) -> StoreResult<bool> {
        let steps = vec![
            Step::Delete {
                key: schema::alert_rule(ws, id),
                cond: Some("attribute_exists(pk)".into()),
                values: vec![],
            },
            Step::Update {
                key: schema::workspace(ws),
                expr: "ADD alerts :minus".into(),
                cond: None,
                values: vec![(":minus", n(-1))],
            },
        ];
        if self.transact(steps).await?.is_some() {
            return Ok(false);
        }
        // Its history goes with it.
        let log = self
            .query_prefix(schema::alert_log_pk(ws), &schema::alert_events_of(id))
            .await?;
        let keys = log
            .iter()
            .map(items::key_of)
            .collect::<anyhow::Result<Vec<_>>>()?;
        self.delete_keys(keys).await?;
        Ok(true)
    }

    async fn append_alert_event(&self, e: &AlertEvent) -> StoreResult<()> {
        let attrs = AlertEventItem {
            d: Cow::Borrowed(e),
            expires_at: items::ttl(e.at_ms + HISTORY_TTL_MS),
        };
        let item = items::item(schema::alert_event(&e.workspace, &e.rule_id, &e.id), &attrs)?;
        self.put(item, None).await?;
        Ok(())
    }

    async fn alert_events(
        &self,
        ws: &WorkspaceId,
        rule: &str,
        limit: usize,
    ) -> StoreResult<Vec<AlertEvent>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
            .expression_attribute_values(":pk", s(schema::alert_log_pk(ws)))
            .expression_attribute_values(":p", Av::S(schema::alert_events_of(rule)))
            .scan_index_forward(false)
            .limit(limit.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(err)?;
        Ok(out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|i| Ok(items::read::<AlertEventItem>(i)?.d.into_owned()))
            .collect::<anyhow::Result<_>>()?)
    }
}
