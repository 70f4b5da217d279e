//! The AWS vault: secrets sealed by AWS KMS (`Encrypt`/`Decrypt` under one symmetric key), so the
//! key never leaves KMS and the store holds only ciphertext. The context travels as the KMS
//! encryption context `{"llmtrack:context": context}`: KMS refuses to decrypt under any other, and
//! CloudTrail records it with every call. The role needs `kms:Encrypt` and `kms:Decrypt` on the key.
//! KMS encrypts at most 4,096 bytes of plaintext, far more than any provider key.

use anyhow::{Context as _, anyhow, bail};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_kms::Client;
use aws_sdk_kms::error::DisplayErrorContext;
use aws_sdk_kms::primitives::Blob;

use crate::ports::Vault;

/// The variable naming the key (id, ARN, alias name or alias ARN).
pub const KEY_ID_VAR: &str = "SECRETS_KMS_KEY_ID";
/// The encryption context's key; its value is the context given to `seal` and `open`.
pub const CONTEXT_KEY: &str = "llmtrack:context";

/// What KMS encrypts at most, in bytes.
pub const MAX_SECRET_BYTES: usize = 4096;

#[derive(Clone)]
pub struct KmsVault {
    client: Client,
    key_id: String,
}

impl std::fmt::Debug for KmsVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsVault")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl KmsVault {
    pub fn new(client: Client, key_id: String) -> KmsVault {
        KmsVault { client, key_id }
    }

    /// The key from `SECRETS_KMS_KEY_ID`, the client from `sdk_config` (credentials, region and
    /// endpoint overrides such as `AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_KMS` for moto). Fails
    /// when the variable is unset or empty.
    pub fn from_env(sdk_config: &SdkConfig) -> anyhow::Result<KmsVault> {
        let key_id = std::env::var(KEY_ID_VAR)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .with_context(|| {
                format!(
                    "{KEY_ID_VAR} is not set: it names the KMS key (id, ARN or alias) that seals \
                     provider admin keys"
                )
            })?;
        Ok(KmsVault::new(Client::new(sdk_config), key_id))
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

#[async_trait]
impl Vault for KmsVault {
    async fn seal(&self, secret: &str, context: &str) -> anyhow::Result<Vec<u8>> {
        // KMS's own limits, checked here for a clear answer (the key-file vault has the same).
        if secret.is_empty() {
            bail!("an empty secret cannot be sealed");
        }
        if secret.len() > MAX_SECRET_BYTES {
            bail!("a secret of more than {MAX_SECRET_BYTES} bytes cannot be sealed");
        }
        if context.is_empty() {
            bail!("a secret must be sealed for a context (the record it belongs to)");
        }
        let output = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(secret.as_bytes()))
            .encryption_context(CONTEXT_KEY, context)
            .send()
            .await
            // The error describes the call and KMS's answer, never the request's plaintext.
            .map_err(|e| {
                anyhow!(
                    "KMS could not seal the secret with key {}: {}",
                    self.key_id,
                    DisplayErrorContext(e)
                )
            })?;
        let sealed = output
            .ciphertext_blob
            .context("KMS answered Encrypt without a ciphertext")?;
        Ok(sealed.into_inner())
    }

    async fn open(&self, sealed: &[u8], context: &str) -> anyhow::Result<String> {
        let output = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(sealed))
            .encryption_context(CONTEXT_KEY, context)
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "KMS could not open the sealed secret with key {} (sealed for another record, \
                     altered, or sealed with another key?): {}",
                    self.key_id,
                    DisplayErrorContext(e)
                )
            })?;
        let plain = output
            .plaintext
            .context("KMS answered Decrypt without a plaintext")?
            .into_inner();
        // `seal` only ever encrypts a `&str`; the error leaves the bytes out.
        String::from_utf8(plain).map_err(|_| anyhow!("the opened secret is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_env_names_the_missing_variable() {
        // Not set in the test environment (or set by a developer: then only the success path is
        // checked, without touching the process's environment from a test).
        let config = SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        match std::env::var(KEY_ID_VAR) {
            Ok(v) if !v.trim().is_empty() => {
                assert_eq!(KmsVault::from_env(&config).unwrap().key_id(), v.trim());
            }
            _ => {
                let e = KmsVault::from_env(&config).unwrap_err();
                assert!(e.to_string().contains(KEY_ID_VAR), "{e}");
            }
        }
    }
}
