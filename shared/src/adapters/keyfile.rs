//! The local vault: secrets sealed with XChaCha20-Poly1305 under a 32-byte key kept in
//! `secrets.key` in the data directory (mode 0600), never in the store. A copy of the store
//! without the key file holds no usable secret; the key file without the store holds no secret.
//!
//! A sealed value is `version (1 byte) ‖ nonce (24 bytes) ‖ ciphertext and tag (len + 16)`. The
//! nonce is drawn from the operating system for every seal (24 bytes: random nonces never repeat
//! in practice) and the context is the associated data, so a value opens only under the context
//! it was sealed for.

use std::fmt;
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use async_trait::async_trait;
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::ports::Vault;

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "secrets.key";
const KEY_BYTES: usize = 32;
/// The layout of sealed values this version writes (and the only one it reads).
const VERSION: u8 = 1;
const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;
/// The most a secret may hold, in bytes: KMS's limit, so what seals locally seals on AWS too.
pub const MAX_SECRET_BYTES: usize = 4096;

pub struct KeyFileVault {
    cipher: XChaCha20Poly1305,
    path: PathBuf,
}

impl fmt::Debug for KeyFileVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFileVault")
            .field("key_file", &self.path)
            .finish_non_exhaustive()
    }
}

impl KeyFileVault {
    /// Reads `dir/secrets.key`, or makes it (and `dir`) if it does not exist. An existing key file
    /// is never replaced: of two processes starting at once on a new directory, one key wins and
    /// both use it.
    pub fn open_or_create(dir: &Path) -> anyhow::Result<KeyFileVault> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(KEY_FILE);
        let key = load_or_create_key(&path)?;
        let cipher = XChaCha20Poly1305::new_from_slice(key.as_slice())
            .map_err(|_| anyhow!("{} does not hold a usable key", path.display()))?;
        Ok(KeyFileVault { cipher, path })
    }

    /// Where the key is kept (to back it up with the data: sealed secrets die with it).
    pub fn key_file(&self) -> &Path {
        &self.path
    }

    fn seal_now(&self, secret: &str, context: &str) -> anyhow::Result<Vec<u8>> {
        // KMS's limits: a secret that seals locally seals on AWS too.
        if secret.is_empty() {
            bail!("an empty secret cannot be sealed");
        }
        if secret.len() > MAX_SECRET_BYTES {
            bail!("a secret of more than {MAX_SECRET_BYTES} bytes cannot be sealed");
        }
        if context.is_empty() {
            bail!("a secret must be sealed for a context (the record it belongs to)");
        }
        let nonce = XNonce::try_generate()
            .map_err(|e| anyhow!("the operating system gave no random nonce: {e}"))?;
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: secret.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| anyhow!("sealing a secret failed"))?;
        let mut sealed = Vec::with_capacity(1 + NONCE_BYTES + ciphertext.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    fn open_now(&self, sealed: &[u8], context: &str) -> anyhow::Result<String> {
        let Some((&version, rest)) = sealed.split_first() else {
            bail!("the sealed secret is empty");
        };
        if version != VERSION {
            bail!("the sealed secret has an unknown format (version {version})");
        }
        if rest.len() < NONCE_BYTES + TAG_BYTES {
            bail!("the sealed secret is cut short");
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        let nonce =
            XNonce::try_from(nonce).map_err(|_| anyhow!("the sealed secret is cut short"))?;
        let plain = self
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| {
                anyhow!(
                    "the sealed secret does not open under this context with {} (sealed for \
                     another record, altered, or sealed with another key)",
                    self.path.display()
                )
            })?;
        // `seal` only ever encrypts a `&str`; the error leaves the bytes out.
        String::from_utf8(plain.to_vec()).map_err(|_| anyhow!("the opened secret is not UTF-8"))
    }
}

#[async_trait]
impl Vault for KeyFileVault {
    async fn seal(&self, secret: &str, context: &str) -> anyhow::Result<Vec<u8>> {
        self.seal_now(secret, context)
    }

    async fn open(&self, sealed: &[u8], context: &str) -> anyhow::Result<String> {
        self.open_now(sealed, context)
    }
}

/// Reads the key, or makes one: written to a temporary file (0600) first and hard-linked into
/// place, which refuses to replace an existing file, so a crash never leaves a half-written key
/// and a key is never overwritten.
fn load_or_create_key(path: &Path) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(key) => return checked_key(path, Zeroizing::new(key)),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let key = Zeroizing::new(
        <[u8; KEY_BYTES]>::try_generate()
            .map_err(|e| anyhow!("the operating system gave no random key: {e}"))?,
    );
    let temp = path.with_file_name(format!("{KEY_FILE}.{}.tmp", ulid::Ulid::new()));
    let placed = write_private(&temp, key.as_slice()).and_then(|()| {
        match std::fs::hard_link(&temp, path) {
            Err(e) if e.kind() != ErrorKind::AlreadyExists => {
                // Some filesystems have no hard links. A rename could replace a key another
                // process has just made, so write the file in place, exclusively, instead.
                write_private(path, key.as_slice())
            }
            other => other,
        }
    });
    let _ = std::fs::remove_file(&temp);
    match placed {
        Ok(()) => {
            sync_dir(path);
            Ok(Zeroizing::new(key.to_vec()))
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let key = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            checked_key(path, Zeroizing::new(key))
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

fn checked_key(path: &Path, key: Zeroizing<Vec<u8>>) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    if key.len() != KEY_BYTES {
        bail!(
            "{} holds {} bytes, not the {KEY_BYTES} of a secrets key. Restore it from a backup: the \
             provider keys sealed with it cannot be opened without it. Only if no provider key was \
             ever saved, delete it and a new one is made",
            path.display(),
            key.len()
        );
    }
    Ok(key)
}

/// Writes a file only its owner can read (mode 0600 on Unix), refusing to replace one.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes).and_then(|()| file.sync_all())
}

/// Makes the new directory entry durable (best effort: not every platform can open a directory).
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "sk-admin-0123456789abcdefABCDEF";
    const CONTEXT: &str = "ws_01hx/openai";

    fn vault() -> (KeyFileVault, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let vault = KeyFileVault::open_or_create(dir.path()).expect("open vault");
        (vault, dir)
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    /// The error and its whole chain, as a log line would show it.
    fn message(e: &anyhow::Error) -> String {
        format!("{e:#} / {e:?}")
    }

    #[tokio::test]
    async fn round_trip_and_layout() {
        let (vault, _dir) = vault();
        let sealed = vault.seal(SECRET, CONTEXT).await.unwrap();
        assert_eq!(sealed[0], VERSION);
        assert_eq!(sealed.len(), 1 + NONCE_BYTES + SECRET.len() + TAG_BYTES);
        assert!(!contains(&sealed, SECRET.as_bytes()));
        assert!(!contains(&sealed, CONTEXT.as_bytes()));
        assert_eq!(vault.open(&sealed, CONTEXT).await.unwrap(), SECRET);
        // A fresh nonce every time: the same secret never seals to the same bytes.
        let again = vault.seal(SECRET, CONTEXT).await.unwrap();
        assert_ne!(sealed, again);
        assert_ne!(sealed[1..1 + NONCE_BYTES], again[1..1 + NONCE_BYTES]);
        assert_eq!(vault.open(&again, CONTEXT).await.unwrap(), SECRET);
        // As on KMS, the empty secret is refused, and so is a secret over KMS's limit; a secret
        // is always bound to a context.
        assert!(vault.seal("", CONTEXT).await.is_err());
        assert!(vault.seal(SECRET, "").await.is_err());
        assert!(vault.open(&sealed, "").await.is_err());
        let longest = "k".repeat(MAX_SECRET_BYTES);
        let sealed_longest = vault.seal(&longest, CONTEXT).await.unwrap();
        assert_eq!(vault.open(&sealed_longest, CONTEXT).await.unwrap(), longest);
        let e = vault
            .seal(&format!("{longest}k"), CONTEXT)
            .await
            .unwrap_err();
        assert!(!message(&e).contains(&longest));
        let unicode = vault.seal("clé🔑", "ws/é").await.unwrap();
        assert_eq!(vault.open(&unicode, "ws/é").await.unwrap(), "clé🔑");
    }

    #[tokio::test]
    async fn another_context_does_not_open_it() {
        let (vault, _dir) = vault();
        let sealed = vault.seal(SECRET, CONTEXT).await.unwrap();
        for other in [
            "ws_01hx/anthropic",
            "ws_01hy/openai",
            "ws_01hx/openai ",
            "WS_01HX/openai",
        ] {
            let e = vault.open(&sealed, other).await.unwrap_err();
            assert!(!message(&e).contains(SECRET), "{e:?}");
        }
    }

    #[tokio::test]
    async fn altered_cut_short_or_unknown_values_do_not_open() {
        let (vault, _dir) = vault();
        let sealed = vault.seal(SECRET, CONTEXT).await.unwrap();
        for i in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[i] ^= 0x01;
            let e = vault.open(&altered, CONTEXT).await.unwrap_err();
            assert!(!message(&e).contains(SECRET), "byte {i}: {e:?}");
        }
        for len in 0..sealed.len() {
            let e = vault.open(&sealed[..len], CONTEXT).await.unwrap_err();
            assert!(!message(&e).contains(SECRET), "length {len}: {e:?}");
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(vault.open(&longer, CONTEXT).await.is_err());
        for version in [0, 2, 0xff] {
            let mut unknown = sealed.clone();
            unknown[0] = version;
            let e = vault.open(&unknown, CONTEXT).await.unwrap_err();
            assert!(e.to_string().contains("unknown format"), "{e}");
        }
        assert!(
            vault
                .open(b"", CONTEXT)
                .await
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
    }

    #[tokio::test]
    async fn another_key_does_not_open_it() {
        let (vault, _dir) = vault();
        let (other, _other_dir) = super::tests::vault();
        let sealed = vault.seal(SECRET, CONTEXT).await.unwrap();
        assert!(other.open(&sealed, CONTEXT).await.is_err());
    }

    #[tokio::test]
    async fn the_key_file_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = KeyFileVault::open_or_create(&data).unwrap();
        let path = data.join(KEY_FILE);
        assert_eq!(first.key_file(), path);
        let key = std::fs::read(&path).unwrap();
        assert_eq!(key.len(), KEY_BYTES);
        assert_ne!(key, [0; KEY_BYTES]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        let sealed = first.seal(SECRET, CONTEXT).await.unwrap();
        drop(first);
        // Opened again (a restart): the same key, the file untouched, no temporary file left.
        let second = KeyFileVault::open_or_create(&data).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), key);
        assert_eq!(second.open(&sealed, CONTEXT).await.unwrap(), SECRET);
        let names: Vec<_> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [KEY_FILE]);
    }

    #[test]
    fn processes_starting_at_once_share_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let vaults: Vec<KeyFileVault> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| KeyFileVault::open_or_create(dir.path()).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let sealed = vaults[0].seal_now(SECRET, CONTEXT).unwrap();
        for vault in &vaults {
            assert_eq!(vault.open_now(&sealed, CONTEXT).unwrap(), SECRET);
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_key_file_of_the_wrong_size_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        for bytes in [vec![], vec![7; 16], vec![7; KEY_BYTES + 1]] {
            std::fs::write(&path, &bytes).unwrap();
            let e = KeyFileVault::open_or_create(dir.path()).unwrap_err();
            let text = format!("{e:#}");
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(
                text.contains(&format!("holds {} bytes", bytes.len())),
                "{text}"
            );
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "the file was changed");
        }
    }

    #[test]
    fn debug_shows_no_key_material() {
        let (vault, dir) = vault();
        let key = std::fs::read(dir.path().join(KEY_FILE)).unwrap();
        let shown = format!("{vault:?} {vault:#?}");
        assert!(shown.contains(KEY_FILE), "{shown}");
        assert!(!shown.contains(&hex::encode(key.as_slice())), "{shown}");
        assert!(!shown.contains(&format!("{:?}", key.as_slice())), "{shown}");
        assert!(!shown.to_lowercase().contains("cipher"), "{shown}");
    }
}
