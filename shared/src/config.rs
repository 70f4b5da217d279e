//! Configuration read once at start. A missing or invalid setting fails fast, naming the variable.

use anyhow::{Context as _, bail};

/// A required environment variable.
pub fn required(name: &str) -> anyhow::Result<String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        Ok(_) => bail!("configuration: {name} is set but empty"),
        Err(_) => bail!("configuration: {name} is not set"),
    }
}

/// What every Lambda function backed by DynamoDB needs.
#[derive(Debug, Clone)]
pub struct LambdaConfig {
    /// The single DynamoDB table (`TABLE_NAME`).
    pub table_name: String,
}

impl LambdaConfig {
    pub fn from_env() -> anyhow::Result<LambdaConfig> {
        let table_name = required("TABLE_NAME").context("the function cannot reach its table")?;
        Ok(LambdaConfig { table_name })
    }
}
