//! Alert rules and their history.

use super::*;

#[async_trait]
impl AlertRules for SqliteStore {
    async fn create_alert_rule(&self, rule: &AlertRule, max_rules: u32) -> StoreResult<()> {
        let (rule, body) = (
            rule.clone(),
            serde_json::to_string(rule).map_err(|e| anyhow!(e))?,
        );
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n: i64 = tx.query_row(
                "SELECT count(*) FROM alert_rules WHERE workspace_id = ?1",
                [rule.workspace.as_str()],
                |r| r.get(0),
            )?;
            if n >= i64::from(max_rules) {
                return Err(Refusal::AlertRuleLimit.into());
            }
            tx.execute(
                "INSERT INTO alert_rules (workspace_id, id, version, body) VALUES (?1, ?2, ?3, ?4)",
                params![rule.workspace.as_str(), rule.id, rule.version as i64, body],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn alert_rules(&self, ws: &WorkspaceId) -> StoreResult<Vec<AlertRule>> {
        let ws = ws.clone();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT version, body FROM alert_rules WHERE workspace_id = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([ws.as_str()], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?;
            rows.map(|row| {
                let (version, body) = row?;
                let mut rule: AlertRule = serde_json::from_str(&body)?;
                rule.version = version as u64;
                Ok(rule)
            })
            .collect()
        })
        .await
    }

    async fn alert_rule(&self, ws: &WorkspaceId, id: &str) -> StoreResult<Option<AlertRule>> {
        let id = id.to_owned();
        Ok(self.alert_rules(ws).await?.into_iter().find(|r| r.id == id))
    }

    async fn update_alert_rule(&self, rule: &mut AlertRule) -> StoreResult<bool> {
        let mut next = rule.clone();
        next.version += 1;
        let body = serde_json::to_string(&next).map_err(|e| anyhow!(e))?;
        let (n, expected) = (next.clone(), rule.version);
        let saved = self
            .write(move |c| {
                Ok(c.execute(
                    "UPDATE alert_rules SET version = ?3, body = ?4 WHERE workspace_id = ?1 AND id = ?2 AND version = ?5",
                    params![n.workspace.as_str(), n.id, n.version as i64, body, expected as i64],
                )? == 1)
            })
            .await?;
        if saved {
            *rule = next;
        }
        Ok(saved)
    }

    async fn delete_alert_rule(&self, ws: &WorkspaceId, id: &str) -> StoreResult<bool> {
        let (ws, id) = (ws.clone(), id.to_owned());
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "DELETE FROM alert_rules WHERE workspace_id = ?1 AND id = ?2",
                params![ws.as_str(), id],
            )?;
            tx.execute(
                "DELETE FROM alert_events WHERE workspace_id = ?1 AND rule_id = ?2",
                params![ws.as_str(), id],
            )?;
            tx.commit()?;
            Ok(n == 1)
        })
        .await
    }

    async fn append_alert_event(&self, event: &AlertEvent) -> StoreResult<()> {
        let (e, body) = (
            event.clone(),
            serde_json::to_string(event).map_err(|e| anyhow!(e))?,
        );
        self.write(move |c| {
            c.execute(
                "INSERT INTO alert_events (workspace_id, rule_id, id, at_ms, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![e.workspace.as_str(), e.rule_id, e.id, e.at_ms, body],
            )?;
            Ok(())
        })
        .await
    }

    async fn alert_events(
        &self,
        ws: &WorkspaceId,
        rule: &str,
        limit: usize,
    ) -> StoreResult<Vec<AlertEvent>> {
        let (ws, rule) = (ws.clone(), rule.to_owned());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT body FROM alert_events WHERE workspace_id = ?1 AND rule_id = ?2 ORDER BY id DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![ws.as_str(), rule, limit as i64], |r| r.get::<_, String>(0))?;
            rows.map(|b| Ok(serde_json::from_str(&b?)?)).collect()
        })
        .await
    }
}
