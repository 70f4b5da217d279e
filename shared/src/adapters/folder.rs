//! The local archive adapter: objects are files under one folder (`DATA_DIR/archive` for
//! `llmtrack serve`), and download links are URLs of `llmtrack serve` itself, signed with an
//! HMAC so they cannot be forged or extended, and checked by [`download`].
//!
//! Every object is written to a temporary file beside its final place and renamed over it, so a
//! reader sees the old object or the new one, never half of one. Names starting with `.` are
//! never keys (see [`super::archive_keys`]): temporary files and the link secret use them.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};
use async_trait::async_trait;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::archive_keys::{content_disposition, percent_encode, validate_key, validate_prefix};
use crate::error::{ApiError, ErrorBody, ErrorCode, ErrorDetail};
use crate::ports::{Archive, ArchiveWriter};

type HmacSha256 = Hmac<Sha256>;

/// The link secret, in the archive folder but outside every key (keys never start with `.`).
const SECRET_FILE: &str = ".link-secret";
const SECRET_BYTES: usize = 32;
/// Downloads are streamed in pieces of this size, so a large export never sits in memory.
const READ_CHUNK: usize = 64 * 1024;

pub struct FolderArchive {
    dir: PathBuf,
    /// Where `llmtrack serve` is reached, without a trailing `/`.
    public_url: String,
    /// Keyed with the link secret; cloned for each signature.
    mac: HmacSha256,
}

impl std::fmt::Debug for FolderArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of logs.
        f.debug_struct("FolderArchive")
            .field("dir", &self.dir)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// Why a download link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this download link has expired; ask for a new one")]
    Expired,
    #[error("this download link is not valid")]
    BadSignature,
}

impl LinkError {
    pub fn code(self) -> ErrorCode {
        match self {
            LinkError::Expired => ErrorCode::LinkExpired,
            LinkError::BadSignature => ErrorCode::BadSignature,
        }
    }
}

impl FolderArchive {
    /// Opens (creating it if needed) the archive folder `dir`; links point at `public_url`
    /// (for example `http://127.0.0.1:8080`).
    pub fn open(dir: &FsPath, public_url: &str) -> anyhow::Result<FolderArchive> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the archive folder {}", dir.display()))?;
        let secret = load_or_create_secret(&dir.join(SECRET_FILE))?;
        let mac = HmacSha256::new_from_slice(&secret)
            .map_err(|e| anyhow!("keying the link signature: {e}"))?;
        Ok(FolderArchive {
            dir: dir.to_owned(),
            public_url: public_url.trim_end_matches('/').to_owned(),
            mac,
        })
    }

    pub fn dir(&self) -> &FsPath {
        &self.dir
    }

    /// Whether a link's parameters are authentic and unexpired at `now_secs`.
    pub fn verify(
        &self,
        key: &str,
        expires: i64,
        filename: &str,
        signature: &str,
        now_secs: i64,
    ) -> bool {
        self.check(key, expires, filename, signature, now_secs)
            .is_ok()
    }

    /// [`FolderArchive::verify`], saying why a link is refused. The signature is checked first,
    /// so "expired" is only ever said of a link this archive really issued.
    pub fn check(
        &self,
        key: &str,
        expires: i64,
        filename: &str,
        signature: &str,
        now_secs: i64,
    ) -> Result<(), LinkError> {
        let signature = hex::decode(signature).map_err(|_| LinkError::BadSignature)?;
        // verify_slice compares in constant time: no timing hints towards a valid signature.
        self.mac_of(key, expires, filename)
            .verify_slice(&signature)
            .map_err(|_| LinkError::BadSignature)?;
        if now_secs >= expires {
            return Err(LinkError::Expired);
        }
        Ok(())
    }

    /// HMAC-SHA256 over `key\nexpires\nfilename`. Keys hold no control characters and `expires`
    /// is digits, so no two different triples give the same message.
    fn mac_of(&self, key: &str, expires: i64, filename: &str) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(format!("{key}\n{expires}\n{filename}").as_bytes());
        mac
    }

    fn path_of(&self, key: &str) -> PathBuf {
        key.split('/')
            .fold(self.dir.clone(), |path, s| path.join(s))
    }

    /// The file behind a key and its size, or `None` when there is no such object.
    async fn open_object(&self, key: &str) -> anyhow::Result<Option<(tokio::fs::File, u64)>> {
        if validate_key(key).is_err() {
            return Ok(None);
        }
        let path = self.path_of(key);
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        };
        let meta = file
            .metadata()
            .await
            .with_context(|| format!("reading the size of {}", path.display()))?;
        if !meta.is_file() {
            return Ok(None);
        }
        Ok(Some((file, meta.len())))
    }

    /// Every key under `prefix`, by walking the folder that holds the prefix's last segment.
    async fn keys_under(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        Ok(self.walk(prefix).await?.keys)
    }

    /// The keys under `prefix` (sorted), and the folders the walk went through: the one holding
    /// the prefix's last segment and every folder below it that can hold matching keys.
    async fn walk(&self, prefix: &str) -> anyhow::Result<Walk> {
        validate_prefix(prefix)?;
        let (base_key, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let base = if base_key.is_empty() {
            self.dir.clone()
        } else {
            self.path_of(base_key)
        };
        let mut keys = Vec::new();
        let mut dirs = vec![base_key.to_owned()];
        let mut pending = vec![(
            base,
            if base_key.is_empty() {
                String::new()
            } else {
                format!("{base_key}/")
            },
        )];
        while let Some((dir, dir_key)) = pending.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(entries) => entries,
                Err(e) if is_absent(&e) => continue,
                Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
            };
            while let Some(entry) = entries
                .next_entry()
                .await
                .with_context(|| format!("listing {}", dir.display()))?
            {
                // Names that cannot be keys: temporary files, the secret, non-UTF-8 names.
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if name.starts_with('.') {
                    continue;
                }
                let key = format!("{dir_key}{name}");
                let file_type = entry
                    .file_type()
                    .await
                    .with_context(|| format!("inspecting {}", entry.path().display()))?;
                if file_type.is_dir() {
                    // Worth entering only if its keys can match (prefix `ws_a/exp` enters
                    // `ws_a/exports/`, not `ws_a/old/`).
                    let below = format!("{key}/");
                    if below.starts_with(prefix) {
                        dirs.push(key);
                        pending.push((entry.path(), below));
                    }
                } else if file_type.is_file() && key.starts_with(prefix) {
                    keys.push(key);
                }
            }
        }
        keys.sort();
        Ok(Walk { keys, dirs })
    }

    /// Deletes the objects under `prefix` last written before `older_than`: what S3's lifecycle
    /// rules do on AWS (exports expire two days after they were written). Returns how many.
    pub async fn expire(
        &self,
        prefix: &str,
        older_than: std::time::SystemTime,
    ) -> anyhow::Result<usize> {
        let Walk { keys, dirs } = self.walk(prefix).await?;
        let mut deleted = 0;
        for key in &keys {
            let path = self.path_of(key);
            let modified = match tokio::fs::metadata(&path).await {
                Ok(m) => m.modified()?,
                Err(e) if is_absent(&e) => continue,
                Err(e) => return Err(e).with_context(|| format!("inspecting {}", path.display())),
            };
            if modified >= older_than {
                continue;
            }
            match tokio::fs::remove_file(&path).await {
                Ok(()) => deleted += 1,
                Err(e) if is_absent(&e) => {}
                Err(e) => return Err(e).with_context(|| format!("deleting {}", path.display())),
            }
        }
        self.prune_empty_dirs(&dirs).await;
        Ok(deleted)
    }

    /// Removes the folders of a deleted prefix that are now empty, and the empty folders above
    /// them, deepest first, so a deleted workspace leaves not even its folder name behind
    /// (aborted writes can leave empty folders too). `remove_dir` refuses a folder that is not
    /// empty, so nothing written meanwhile is lost.
    async fn prune_empty_dirs(&self, walked: &[String]) {
        let mut dirs = BTreeSet::new();
        for dir in walked {
            let mut segments: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
            while !segments.is_empty() {
                dirs.insert(segments.join("/"));
                segments.pop();
            }
        }
        let mut dirs: Vec<String> = dirs.into_iter().collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
        for dir in dirs {
            let _ = tokio::fs::remove_dir(self.path_of(&dir)).await;
        }
    }
}

#[async_trait]
impl Archive for FolderArchive {
    /// Tags choose S3 lifecycle rules; the folder has none (`llmtrack serve` lists only the
    /// reports a plan keeps).
    async fn put_tagged(
        &self,
        key: &str,
        content_type: &str,
        body: Vec<u8>,
        _tags: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let mut writer = self.writer(key, content_type).await?;
        writer.write(&body).await?;
        writer.finish().await?;
        Ok(())
    }

    async fn writer(
        &self,
        key: &str,
        _content_type: &str,
    ) -> anyhow::Result<Box<dyn ArchiveWriter>> {
        validate_key(key)?;
        Ok(Box::new(FolderWriter::create(self.path_of(key)).await?))
    }

    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        validate_key(key)?;
        let path = self.path_of(key);
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    async fn list(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        self.keys_under(prefix).await
    }

    async fn delete_prefix(&self, prefix: &str) -> anyhow::Result<usize> {
        if prefix.is_empty() {
            // Keys always start with a workspace prefix; an empty one is a bug, not a request.
            bail!("refusing to delete the whole archive (empty prefix)");
        }
        let Walk { keys, dirs } = self.walk(prefix).await?;
        let mut deleted = 0;
        for key in &keys {
            let path = self.path_of(key);
            match tokio::fs::remove_file(&path).await {
                Ok(()) => deleted += 1,
                // Deleted meanwhile by someone else: gone either way.
                Err(e) if is_absent(&e) => {}
                Err(e) => return Err(e).with_context(|| format!("deleting {}", path.display())),
            }
        }
        self.prune_empty_dirs(&dirs).await;
        Ok(deleted)
    }

    async fn link(
        &self,
        key: &str,
        filename: &str,
        expires_in: Duration,
    ) -> anyhow::Result<String> {
        validate_key(key)?;
        // Round up, so a link never lives shorter than asked.
        let secs = expires_in.as_secs() + u64::from(expires_in.subsec_nanos() > 0);
        let expires = i64::try_from(secs)
            .ok()
            .and_then(|secs| now_secs().checked_add(secs))
            .context("link lifetime out of range")?;
        let signature = hex::encode(self.mac_of(key, expires, filename).finalize().into_bytes());
        let path = key
            .split('/')
            .map(percent_encode)
            .collect::<Vec<_>>()
            .join("/");
        Ok(format!(
            "{}/v1/archive/{path}?expires={expires}&filename={}&signature={signature}",
            self.public_url,
            percent_encode(filename)
        ))
    }
}

struct Walk {
    keys: Vec<String>,
    /// Folder paths relative to the archive (`""` is the archive itself).
    dirs: Vec<String>,
}

/// An object being written: a temporary file beside its final place, renamed on `finish`.
struct FolderWriter {
    file: Option<tokio::fs::File>,
    /// `Some` until the file is renamed or removed; `Drop` removes what is left.
    temp: Option<PathBuf>,
    target: PathBuf,
    written: u64,
}

impl FolderWriter {
    async fn create(target: PathBuf) -> anyhow::Result<FolderWriter> {
        let parent = target
            .parent()
            .context("an archive key always has a parent folder")?
            .to_owned();
        // Same folder as the target, so the final rename stays within one filesystem (atomic).
        let temp = parent.join(format!(".{}.tmp", ulid::Ulid::new()));
        let mut attempt = 0;
        let file = loop {
            tokio::fs::create_dir_all(&parent)
                .await
                .with_context(|| format!("creating {}", parent.display()))?;
            let opened = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)
                .await;
            match opened {
                Ok(file) => break file,
                // A concurrent delete_prefix may remove the folder just made (it was empty):
                // make it again, once.
                Err(e) if e.kind() == ErrorKind::NotFound && attempt == 0 => attempt += 1,
                Err(e) => return Err(e).with_context(|| format!("creating {}", temp.display())),
            }
        };
        Ok(FolderWriter {
            file: Some(file),
            temp: Some(temp),
            target,
            written: 0,
        })
    }

    fn file(&mut self) -> anyhow::Result<&mut tokio::fs::File> {
        self.file
            .as_mut()
            .context("archive writer used after it was finished")
    }
}

#[async_trait]
impl ArchiveWriter for FolderWriter {
    async fn write(&mut self, chunk: &[u8]) -> anyhow::Result<()> {
        let target = self.target.display().to_string();
        self.file()?
            .write_all(chunk)
            .await
            .with_context(|| format!("writing {target}"))?;
        self.written += chunk.len() as u64;
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> anyhow::Result<u64> {
        let target = self.target.clone();
        let mut file = self
            .file
            .take()
            .context("archive writer already finished")?;
        file.flush()
            .await
            .with_context(|| format!("writing {}", target.display()))?;
        // On disk before it becomes visible: a crash must not leave a truncated object in place.
        file.sync_all()
            .await
            .with_context(|| format!("syncing {}", target.display()))?;
        drop(file);
        let temp = self
            .temp
            .clone()
            .context("archive writer already finished")?;
        tokio::fs::rename(&temp, &target)
            .await
            .with_context(|| format!("moving {} into place", target.display()))?;
        // Renamed: nothing left for Drop to clean up.
        self.temp = None;
        Ok(self.written)
    }

    async fn abort(mut self: Box<Self>) -> anyhow::Result<()> {
        drop(self.file.take());
        if let Some(temp) = self.temp.take() {
            match tokio::fs::remove_file(&temp).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing {}", temp.display())),
            }
        }
        Ok(())
    }
}

impl Drop for FolderWriter {
    /// A writer dropped without `finish` or `abort` (an export that failed half-way, a panic)
    /// leaves nothing behind either.
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let _ = std::fs::remove_file(temp);
        }
    }
}

/// The query of a download link. Missing fields read as empty, so a mangled link gets the same
/// clear `bad_signature` answer as a tampered one.
#[derive(Debug, Default, Deserialize)]
pub struct LinkQuery {
    #[serde(default)]
    pub expires: i64,
    #[serde(default)]
    pub filename: String,
    #[serde(default)]
    pub signature: String,
}

/// `GET /v1/archive/{*key}`: the object behind a signed link, as a download.
pub async fn download(
    State(archive): State<Arc<FolderArchive>>,
    Path(key): Path<String>,
    Query(q): Query<LinkQuery>,
) -> Response {
    if let Err(refused) = archive.check(&key, q.expires, &q.filename, &q.signature, now_secs()) {
        let body = ErrorBody {
            error: ErrorDetail {
                code: refused.code(),
                message: refused.to_string(),
            },
        };
        return (refused.code().status(), Json(body)).into_response();
    }
    let (file, len) = match archive.open_object(&key).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            return ApiError::NotFound("this file no longer exists".into()).into_response();
        }
        Err(e) => return ApiError::Unexpected(e).into_response(),
    };
    let disposition = match HeaderValue::from_str(&content_disposition(&q.filename)) {
        Ok(value) => value,
        Err(e) => return ApiError::Unexpected(anyhow!("content disposition: {e}")).into_response(),
    };
    let chunks = futures_util::stream::try_unfold(file, |mut file| async move {
        let mut buf = vec![0; READ_CHUNK];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok::<_, std::io::Error>(None);
        }
        buf.truncate(n);
        Ok(Some((Bytes::from(buf), file)))
    });
    let mut response = Body::from_stream(chunks).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type_of(&key)),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(header::CONTENT_DISPOSITION, disposition);
    // Archived HTML reports come from the dashboard's own origin: never sniffed, never cached.
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    response
}

/// The folder keeps no metadata beside the bytes, so the type comes from the key's extension.
fn content_type_of(key: &str) -> &'static str {
    let extension = key
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase());
    match extension.as_deref() {
        Some("csv") => "text/csv",
        Some("jsonl") => "application/x-ndjson",
        Some("json") => "application/json",
        Some("html") => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Errors that mean "no such object": missing, or a path through/onto a folder.
fn is_absent(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::IsADirectory
    )
}

/// Reads the link secret, or makes one. It is written to a temporary file first and linked into
/// place, which refuses to replace an existing file: of two servers starting at once on a new
/// folder, one secret wins and both use it, and a crash never leaves a half-written secret.
pub fn load_or_create_secret(path: &FsPath) -> anyhow::Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(secret) => return checked_secret(path, secret),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let secret: [u8; SECRET_BYTES] = rand::random();
    let temp = path.with_file_name(format!("{SECRET_FILE}.{}.tmp", ulid::Ulid::new()));
    write_private(&temp, &secret)?;
    let placed = match std::fs::hard_link(&temp, path) {
        Err(e) if e.kind() != ErrorKind::AlreadyExists => {
            // Some filesystems have no hard links; a rename is atomic too, only not exclusive.
            std::fs::rename(&temp, path)
        }
        other => other,
    };
    let _ = std::fs::remove_file(&temp);
    match placed {
        Ok(()) => Ok(secret.to_vec()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let secret =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            checked_secret(path, secret)
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

fn checked_secret(path: &FsPath, secret: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    if secret.len() < SECRET_BYTES {
        bail!(
            "{} holds {} bytes, fewer than the {SECRET_BYTES} a link secret needs; delete it to \
             make a new one (download links already given out stop working)",
            path.display(),
            secret.len()
        );
    }
    Ok(secret)
}

/// Writes a file only its owner can read (mode 0600 on Unix).
fn write_private(path: &FsPath, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}
