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

use super::*;
use crate::domain::alert::AlertEvent;
use crate::domain::alert::AlertRule;
use crate::domain::ids::WorkspaceId;
use crate::ports::Refusal;
use crate::ports::StoreError;
use crate::ports::StoreResult;
use anyhow::Context as _;
use aws_sdk_dynamodb::types::AttributeValue as Av;
use std::collections::HashMap;

/// A rule's history is kept a little over a year.
pub(super) const HISTORY_TTL_MS: i64 = 400 * 86_400_000;

pub(super) fn rule_item(rule: &AlertRule) -> anyhow::Result<Item> {
    Ok(HashMap::from([
        ("pk".to_owned(), s(format!("WS#{}", rule.workspace))),
        ("sk".to_owned(), s(format!("ALERT#{}", rule.id))),
        ("v".to_owned(), n(rule.version)),
        ("d".to_owned(), s(serde_json::to_string(rule)?)),
    ]))
}

pub(super) fn rule_from(item: &Item) -> anyhow::Result<AlertRule> {
    let mut rule: AlertRule =
        serde_json::from_str(get_s(item, "d")?).context("decoding an alert rule")?;
    rule.version = get_n(item, "v")?;
    Ok(rule)
}

#[async_trait]
impl AlertRules for DynamoStore {
    async fn create_alert_rule(&self, rule: &AlertRule, max_rules: u32) -> StoreResult<()> {
        let steps = vec![
            Step::Update {
                pk: format!("WS#{}", rule.workspace),
                sk: "WS".into(),
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
            .query_prefix(format!("WS#{ws}"), "ALERT#")
            .await?
            .iter()
            .map(rule_from)
            .collect::<anyhow::Result<_>>()?)
    }

    async fn alert_rule(&self, ws: &WorkspaceId, id: &str) -> StoreResult<Option<AlertRule>> {
        Ok(self
            .get(format!("WS#{ws}"), &format!("ALERT#{id}"))
            .await?
            .map(|i| rule_from(&i))
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
                pk: format!("WS#{ws}"),
                sk: format!("ALERT#{id}"),
                cond: Some("attribute_exists(pk)".into()),
                values: vec![],
            },
            Step::Update {
                pk: format!("WS#{ws}"),
                sk: "WS".into(),
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
            .query_prefix(format!("W#{ws}#ALERTLOG"), &format!("{id}#"))
            .await?;
        let keys = log
            .iter()
            .map(|i| Ok((get_s(i, "pk")?.to_owned(), get_s(i, "sk")?.to_owned())))
            .collect::<anyhow::Result<Vec<_>>>()?;
        self.delete_keys(keys).await?;
        Ok(true)
    }

    async fn append_alert_event(&self, e: &AlertEvent) -> StoreResult<()> {
        let item = HashMap::from([
            ("pk".to_owned(), s(format!("W#{}#ALERTLOG", e.workspace))),
            ("sk".to_owned(), s(format!("{}#{}", e.rule_id, e.id))),
            (
                "d".to_owned(),
                s(serde_json::to_string(e).map_err(anyhow::Error::from)?),
            ),
            (
                TTL_ATTRIBUTE.to_owned(),
                n((e.at_ms + HISTORY_TTL_MS).div_euclid(1000)),
            ),
        ]);
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
            .expression_attribute_values(":pk", s(format!("W#{ws}#ALERTLOG")))
            .expression_attribute_values(":p", Av::S(format!("{rule}#")))
            .scan_index_forward(false)
            .limit(limit.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(err)?;
        Ok(out
            .items()
            .iter()
            .map(|i| serde_json::from_str(get_s(i, "d")?).context("decoding an alert event"))
            .collect::<anyhow::Result<_>>()?)
    }
}
