//! Backups of a self-hosted installation (`llmtrack admin backup` and `restore`): the store, the
//! monthly reports in the archive, and the secrets that keep alert webhook signatures and archive
//! links valid. A backup is taken while the server runs; a restore goes into a data directory
//! no server holds and that has no store yet, so it can never overwrite live data.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use llmtrack_shared::adapters::sqlite::{SqliteStore, check_file};

use crate::STORE_FILE;

/// The archive's folder in a data directory.
const ARCHIVE: &str = "archive";
/// Exports expire two days after they are written: not worth a backup's space.
const SKIPPED: &[&str] = &["exports"];
/// The secrets beside the store, relative to the data directory.
const SECRETS: &[&str] = &[
    ".alert-signing-key",
    "archive/.link-secret",
    // Provider admin keys are sealed with it: without it, connections must be made again.
    "secrets.key",
];

/// What a backup or restore copied.
#[derive(Debug, Default)]
pub struct Copied {
    pub store_bytes: u64,
    /// Archive files (monthly reports).
    pub files: usize,
    pub secrets: usize,
}

impl Copied {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"store_bytes": self.store_bytes, "files": self.files, "secrets": self.secrets})
    }
}

/// Copies a running installation's data directory into `to`, which must not exist yet or be
/// empty.
pub async fn backup(store: &SqliteStore, data_dir: &Path, to: &Path) -> anyhow::Result<Copied> {
    if to.exists() && std::fs::read_dir(to)?.next().is_some() {
        bail!(
            "{} is not empty: back up into a new directory",
            to.display()
        );
    }
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let mut copied = Copied::default();
    let store_file = to.join(STORE_FILE);
    store
        .backup_to(&store_file)
        .await
        .context("copying the store")?;
    copied.store_bytes = std::fs::metadata(&store_file)?.len();
    copied.secrets = copy_secrets(data_dir, to)?;
    copied.files = copy_tree(&data_dir.join(ARCHIVE), &to.join(ARCHIVE), true)?;
    Ok(copied)
}

/// Puts the backup in `from` into `data_dir`, which no server may hold and which must hold no
/// store. The store is checked (an LLMtrack store, not from a newer release, sound) before
/// anything is copied; an older one is upgraded when the server next starts.
pub fn restore(from: &Path, data_dir: &Path) -> anyhow::Result<Copied> {
    let backup_store = from.join(STORE_FILE);
    if !backup_store.is_file() {
        bail!("{} holds no backup (no {STORE_FILE})", from.display());
    }
    check_file(&backup_store)?;
    // Held until the restore is over: a server started meanwhile is refused.
    let _lock = crate::lock_data_dir(data_dir)?;
    let target = data_dir.join(STORE_FILE);
    if target.exists() {
        bail!(
            "{} already holds a store: restore into a new data directory (or move this one \
             aside first)",
            data_dir.display()
        );
    }
    let mut copied = Copied::default();
    // Into place by rename, so a restore cut short leaves no half-copied store behind.
    let partial = data_dir.join(format!("{STORE_FILE}.restoring"));
    std::fs::copy(&backup_store, &partial)
        .with_context(|| format!("copying {}", backup_store.display()))?;
    copied.secrets = copy_secrets(from, data_dir)?;
    copied.files = copy_tree(&from.join(ARCHIVE), &data_dir.join(ARCHIVE), true)?;
    std::fs::rename(&partial, &target)?;
    copied.store_bytes = std::fs::metadata(&target)?.len();
    Ok(copied)
}

fn copy_secrets(from: &Path, to: &Path) -> anyhow::Result<usize> {
    let mut n = 0;
    for name in SECRETS {
        let src = from.join(name);
        if src.is_file() {
            let dst = to.join(name);
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
            restrict(&dst)?;
            n += 1;
        }
    }
    Ok(n)
}

/// The secrets stay readable by their owner only, as the server writes them.
fn restrict(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    let _ = path;
    Ok(())
}

/// Copies the regular files under `from` into `to` (secrets and skipped folders aside, at the
/// top); returns how many. A missing `from` copies nothing.
fn copy_tree(from: &Path, to: &Path, top: bool) -> anyhow::Result<usize> {
    if !from.is_dir() {
        return Ok(0);
    }
    let mut n = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(from)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anyhow!("{} has a name that is not UTF-8", path.display()))?;
        let kind = std::fs::symlink_metadata(&path)?.file_type();
        if kind.is_dir() {
            if top && SKIPPED.contains(&name) {
                continue;
            }
            n += copy_tree(&path, &to.join(name), false)?;
        } else if kind.is_file() && !name.starts_with('.') {
            std::fs::create_dir_all(to)?;
            std::fs::copy(&path, to.join(name))
                .with_context(|| format!("copying {}", path.display()))?;
            n += 1;
        }
    }
    Ok(n)
}
