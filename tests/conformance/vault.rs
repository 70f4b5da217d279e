//! The vault contract, run against the key-file vault (a temp dir) and AWS KMS (moto): every
//! `vault_suite!` test runs twice, `vault::keyfile::name` and `vault::kms::name`. Each test gets
//! a vault and a second vault of the same kind under another key.

use aws_sdk_kms::primitives::Blob;
use base64::Engine as _;
use llmtrack_shared::adapters::keyfile::KeyFileVault;
use llmtrack_shared::adapters::kms::{CONTEXT_KEY, KmsVault};
use llmtrack_shared::ports::{DynVault, Vault};

use super::support::moto_endpoint;

/// Runs each listed test against both adapters.
macro_rules! vault_suite {
    ($($name:ident),* $(,)?) => {
        mod keyfile {
            $(
                #[tokio::test]
                async fn $name() {
                    let (vault, other, _dirs) = super::keyfile_vaults();
                    super::$name(vault, other).await;
                }
            )*
        }
        mod kms {
            $(
                #[tokio::test]
                async fn $name() {
                    let (vault, other) = super::kms_vaults().await;
                    super::$name(vault, other).await;
                }
            )*
        }
    };
}

vault_suite!(
    secrets_round_trip_and_never_show_in_what_is_stored,
    a_value_opens_only_under_its_own_context,
    altered_or_cut_short_values_do_not_open,
    another_key_does_not_open_it,
    empty_secrets_and_contexts_are_refused,
);

const OPENAI: &str = "sk-admin-Zq3vT8pLm2Xc9RkYw4HbN6sJd1FgA7uE0oKiQyVt5xCzBn";
const ANTHROPIC: &str = "sk-ant-admin01-Hk2Lp9Qz4Rt7Vw1Xy3Zb5Nc8Md6Fg0Js-AbCdEfGhIjKlMnOp";

fn keyfile_vaults() -> (DynVault, DynVault, [tempfile::TempDir; 2]) {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let open = |d: &tempfile::TempDir| -> DynVault {
        std::sync::Arc::new(KeyFileVault::open_or_create(d.path()).expect("open key file vault"))
    };
    (open(&dirs[0]), open(&dirs[1]), dirs)
}

fn kms_client() -> aws_sdk_kms::Client {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .endpoint_url(moto_endpoint())
        .region(aws_sdk_kms::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_kms::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

/// A new symmetric key on moto (moto's reset is global, so every test makes its own): its id.
async fn create_key(client: &aws_sdk_kms::Client) -> String {
    client
        .create_key()
        .description("llmtrack vault test")
        .send()
        .await
        .expect("create a KMS key on moto")
        .key_metadata
        .expect("key metadata")
        .key_id
}

/// A vault on a new key by its id, and one on another new key by an alias (deployments may name
/// the key either way).
async fn kms_vaults() -> (DynVault, DynVault) {
    let client = kms_client();
    let key = create_key(&client).await;
    let other_key = create_key(&client).await;
    let alias = format!(
        "alias/llmtrack-test-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    client
        .create_alias()
        .alias_name(&alias)
        .target_key_id(&other_key)
        .send()
        .await
        .expect("create an alias on moto");
    (
        std::sync::Arc::new(KmsVault::new(client.clone(), key)),
        std::sync::Arc::new(KmsVault::new(client, alias)),
    )
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// An error as a log line would show it, its whole chain included.
fn shown(e: &anyhow::Error) -> String {
    format!("{e:#} / {e:?}")
}

async fn secrets_round_trip_and_never_show_in_what_is_stored(vault: DynVault, _other: DynVault) {
    let longest = "k".repeat(4096);
    for (secret, context) in [
        (OPENAI, "ws_01jabc/conn_openai"),
        (ANTHROPIC, "ws_01jabc/conn_anthropic"),
        ("clé 🔑", "ws_é/conn"),
        (longest.as_str(), "ws_01jabc/conn_long"),
    ] {
        let sealed = vault.seal(secret, context).await.unwrap();
        for form in [
            secret.as_bytes().to_vec(),
            base64::engine::general_purpose::STANDARD
                .encode(secret)
                .into_bytes(),
            hex::encode(secret).into_bytes(),
        ] {
            assert!(!contains(&sealed, &form[..form.len().min(24)]));
        }
        assert_eq!(vault.open(&sealed, context).await.unwrap(), secret);
        // Sealing again gives other bytes (a fresh nonce), which open to the same secret.
        let again = vault.seal(secret, context).await.unwrap();
        assert_ne!(sealed, again);
        assert_eq!(vault.open(&again, context).await.unwrap(), secret);
    }
    // A secret over KMS's limit is refused by both, without echoing it.
    let over = format!("{longest}k");
    let e = vault.seal(&over, "ws_01jabc/conn").await.unwrap_err();
    assert!(!shown(&e).contains(&longest[..64]), "{e:#}");
}

async fn a_value_opens_only_under_its_own_context(vault: DynVault, _other: DynVault) {
    let sealed = vault.seal(OPENAI, "ws_a/conn_1").await.unwrap();
    for other in [
        "ws_b/conn_1",
        "ws_a/conn_2",
        "ws_a/conn_1/",
        "WS_A/conn_1",
        "ws_a",
        "",
    ] {
        let e = vault
            .open(&sealed, other)
            .await
            .expect_err("opened under another context");
        assert!(!shown(&e).contains(OPENAI), "{other}: {e:#}");
    }
    // Two records sealing the same secret do not get interchangeable values.
    let b = vault.seal(OPENAI, "ws_b/conn_1").await.unwrap();
    assert!(vault.open(&b, "ws_a/conn_1").await.is_err());
    assert_eq!(vault.open(&b, "ws_b/conn_1").await.unwrap(), OPENAI);
    assert_eq!(vault.open(&sealed, "ws_a/conn_1").await.unwrap(), OPENAI);
}

async fn altered_or_cut_short_values_do_not_open(vault: DynVault, _other: DynVault) {
    let context = "ws_a/conn_1";
    let sealed = vault.seal(ANTHROPIC, context).await.unwrap();
    for i in 0..sealed.len() {
        for flip in [0x01, 0x80] {
            let mut altered = sealed.clone();
            altered[i] ^= flip;
            let e = vault
                .open(&altered, context)
                .await
                .expect_err("an altered value opened");
            assert!(!shown(&e).contains(ANTHROPIC), "byte {i}: {e:#}");
        }
    }
    for len in [0, 1, sealed.len() / 2, sealed.len() - 16, sealed.len() - 1] {
        let e = vault
            .open(&sealed[..len], context)
            .await
            .expect_err("a cut value opened");
        assert!(!shown(&e).contains(ANTHROPIC), "length {len}: {e:#}");
    }
    let mut longer = sealed.clone();
    longer.push(0);
    assert!(vault.open(&longer, context).await.is_err());
    assert_eq!(vault.open(&sealed, context).await.unwrap(), ANTHROPIC);
}

async fn another_key_does_not_open_it(vault: DynVault, other: DynVault) {
    let context = "ws_a/conn_1";
    let sealed = vault.seal(OPENAI, context).await.unwrap();
    let e = other.open(&sealed, context).await.unwrap_err();
    assert!(!shown(&e).contains(OPENAI), "{e:#}");
    let theirs = other.seal(OPENAI, context).await.unwrap();
    assert!(vault.open(&theirs, context).await.is_err());
    assert_eq!(other.open(&theirs, context).await.unwrap(), OPENAI);
}

async fn empty_secrets_and_contexts_are_refused(vault: DynVault, _other: DynVault) {
    assert!(vault.seal("", "ws_a/conn_1").await.is_err());
    let e = vault.seal(OPENAI, "").await.unwrap_err();
    assert!(!shown(&e).contains(OPENAI), "{e:#}");
}

/// What KMS sees: one encryption context entry, `llmtrack:context`, so a value sealed by the vault
/// opens with a plain `Decrypt` given that context (a migration or an operator's tool can), and
/// with no other.
#[tokio::test]
async fn kms_binds_the_context_as_its_encryption_context() {
    let client = kms_client();
    let key = create_key(&client).await;
    let vault = KmsVault::new(client.clone(), key.clone());
    assert_eq!(vault.key_id(), key);
    let sealed = vault.seal(OPENAI, "ws_a/conn_1").await.unwrap();

    let decrypt = |context: Option<(&str, &str)>| {
        let mut request = client
            .decrypt()
            .key_id(&key)
            .ciphertext_blob(Blob::new(sealed.clone()));
        if let Some((k, v)) = context {
            request = request.encryption_context(k, v);
        }
        request.send()
    };
    let plain = decrypt(Some((CONTEXT_KEY, "ws_a/conn_1")))
        .await
        .expect("Decrypt with the vault's encryption context")
        .plaintext
        .unwrap()
        .into_inner();
    assert_eq!(plain, OPENAI.as_bytes());
    assert!(decrypt(None).await.is_err());
    assert!(decrypt(Some(("context", "ws_a/conn_1"))).await.is_err());

    // And the reverse: a plain `Encrypt` with that context opens through the vault.
    let outside = client
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(ANTHROPIC))
        .encryption_context(CONTEXT_KEY, "ws_b/conn_2")
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap()
        .into_inner();
    assert_eq!(
        vault.open(&outside, "ws_b/conn_2").await.unwrap(),
        ANTHROPIC
    );

    // A key that does not exist is an error naming it, not a panic.
    let missing = KmsVault::new(client, "alias/llmtrack-no-such-key".into());
    let e = missing.seal(OPENAI, "ws_a/conn_1").await.unwrap_err();
    assert!(
        format!("{e:#}").contains("alias/llmtrack-no-such-key"),
        "{e:#}"
    );
    assert!(!shown(&e).contains(OPENAI), "{e:#}");
}
