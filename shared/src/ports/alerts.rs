//! Alert rules and each rule's history.

use super::StoreResult;
use crate::domain::alert::{AlertEvent, AlertRule};
use crate::domain::ids::WorkspaceId;
use async_trait::async_trait;

#[async_trait]
pub trait AlertRules: Send + Sync + 'static {
    /// Saves a new rule unless the workspace already has `max_rules`.
    async fn create_alert_rule(&self, rule: &AlertRule, max_rules: u32) -> StoreResult<()>;

    async fn alert_rules(&self, ws: &WorkspaceId) -> StoreResult<Vec<AlertRule>>;

    async fn alert_rule(&self, ws: &WorkspaceId, id: &str) -> StoreResult<Option<AlertRule>>;

    /// Saves a rule's new settings or state if nobody saved it since `rule.version` was read;
    /// bumps the version. False when someone did (or the rule is gone).
    async fn update_alert_rule(&self, rule: &mut AlertRule) -> StoreResult<bool>;

    async fn delete_alert_rule(&self, ws: &WorkspaceId, id: &str) -> StoreResult<bool>;

    async fn append_alert_event(&self, event: &AlertEvent) -> StoreResult<()>;

    /// A rule's history, newest first.
    async fn alert_events(
        &self,
        ws: &WorkspaceId,
        rule: &str,
        limit: usize,
    ) -> StoreResult<Vec<AlertEvent>>;
}
