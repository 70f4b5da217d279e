//! Sealing secrets the store must keep but never hold in the clear (provider admin keys): AWS KMS
//! on AWS, a key file in the data directory locally. The store keeps only what `seal` returns.

use async_trait::async_trait;

#[async_trait]
pub trait Vault: Send + Sync + 'static {
    /// Encrypts `secret`, bound to `context` (say `workspace/connection`): opening it under
    /// another context fails, so a sealed value copied to another record is useless.
    async fn seal(&self, secret: &str, context: &str) -> anyhow::Result<Vec<u8>>;

    /// Decrypts what `seal` returned under the same context.
    async fn open(&self, sealed: &[u8], context: &str) -> anyhow::Result<String>;
}

pub type DynVault = std::sync::Arc<dyn Vault>;
