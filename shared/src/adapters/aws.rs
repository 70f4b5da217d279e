//! The AWS SDK's configuration (credentials, region, endpoint overrides such as moto's), loaded
//! once per process: a cold start that builds DynamoDB, S3 and SES clients reads the environment
//! and the credential chain once, not once per client.

use aws_config::{BehaviorVersion, SdkConfig};
use tokio::sync::OnceCell;

static CONFIG: OnceCell<SdkConfig> = OnceCell::const_new();

/// The process's SDK configuration, loaded on first use.
pub async fn sdk_config() -> &'static SdkConfig {
    CONFIG
        .get_or_init(|| aws_config::load_defaults(BehaviorVersion::latest()))
        .await
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_configuration_is_loaded_once_per_process() {
        let (a, b) = (super::sdk_config().await, super::sdk_config().await);
        assert!(std::ptr::eq(a, b));
    }
}
