//! The archive: reports and large exports, kept on S3 or in a local folder.

use async_trait::async_trait;
use std::sync::Arc;

/// The archive port: where monthly reports and large exports are kept. S3 on AWS, a folder
/// (`DATA_DIR/archive`) locally. Keys are `/`-separated paths `{area}/{workspace}/…`
/// (`exports/ws_…/exp_….csv`): an area has its own lifecycle rule on S3, and deleting a
/// workspace's prefix in each area removes everything it had.
#[async_trait]
pub trait Archive: Send + Sync + 'static {
    /// Stores a whole object (reports: small).
    async fn put(&self, key: &str, content_type: &str, body: Vec<u8>) -> anyhow::Result<()> {
        self.put_tagged(key, content_type, body, &[]).await
    }
    /// Stores a whole object with tags that choose its lifecycle rule on S3 (a report's
    /// `plan`, so it is kept as long as the plan keeps reports). The folder keeps no tags.
    async fn put_tagged(
        &self,
        key: &str,
        content_type: &str,
        body: Vec<u8>,
        tags: &[(&str, &str)],
    ) -> anyhow::Result<()>;
    /// Starts a large object written in pieces (exports); nothing is visible under `key` until
    /// `finish` succeeds, and `abort` leaves nothing behind.
    async fn writer(&self, key: &str, content_type: &str)
    -> anyhow::Result<Box<dyn ArchiveWriter>>;
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Keys under a prefix, sorted.
    async fn list(&self, prefix: &str) -> anyhow::Result<Vec<String>>;
    /// Deletes every object under a prefix; returns how many.
    async fn delete_prefix(&self, prefix: &str) -> anyhow::Result<usize>;
    /// A URL that downloads the object as `filename` until `expires_in` has passed, then stops
    /// working (a presigned GET on S3, an HMAC-signed local URL on `llmtrack serve`).
    async fn link(
        &self,
        key: &str,
        filename: &str,
        expires_in: std::time::Duration,
    ) -> anyhow::Result<String>;
}

#[async_trait]
pub trait ArchiveWriter: Send {
    async fn write(&mut self, chunk: &[u8]) -> anyhow::Result<()>;
    /// Makes the object visible; returns its size in bytes.
    async fn finish(self: Box<Self>) -> anyhow::Result<u64>;
    async fn abort(self: Box<Self>) -> anyhow::Result<()>;
}

pub type DynArchive = Arc<dyn Archive>;
