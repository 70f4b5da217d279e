//! The S3 archive adapter: one bucket; reports are single PutObjects, exports are multipart
//! uploads of 8 MiB parts, and download links are presigned GetObject URLs.
//!
//! Keys follow the same rules as the local folder adapter (see [`super::archive_keys`]), so what
//! works on `llmtrack serve` works on AWS.

use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CompletedMultipartUpload, CompletedPart, CreateBucketConfiguration,
    Delete, ObjectIdentifier,
};

use super::archive_keys::{content_disposition, validate_key, validate_prefix};
use crate::ports::{Archive, ArchiveWriter};

/// Size of every multipart part but the last. S3 wants at least 5 MiB; 8 MiB keeps a writer's
/// memory small and allows exports up to 80 GB (S3's 10,000-part limit).
const PART_SIZE: usize = 8 * 1024 * 1024;
const MAX_PARTS: usize = 10_000;
/// DeleteObjects takes at most this many keys per request.
const DELETE_BATCH: usize = 1000;

#[derive(Clone, Debug)]
pub struct S3Archive {
    client: Client,
    bucket: String,
}

fn err<E, R>(e: SdkError<E, R>) -> anyhow::Error
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    anyhow!("{}", DisplayErrorContext(e))
}

impl S3Archive {
    /// The standard AWS configuration (environment, profile, Lambda role). An endpoint override
    /// (`AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_S3`, as for moto or MinIO) switches to path-style
    /// addressing, since such servers have no per-bucket host names.
    pub async fn from_env(bucket: &str) -> S3Archive {
        let config = crate::adapters::aws::sdk_config().await;
        let overridden =
            config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let s3_config = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(overridden)
            .build();
        S3Archive::new(Client::from_conf(s3_config), bucket)
    }

    pub fn new(client: Client, bucket: &str) -> S3Archive {
        S3Archive {
            client,
            bucket: bucket.to_owned(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Tests and first-time local setup; on AWS the bucket comes from `template.yaml`.
    pub async fn create_bucket(&self) -> anyhow::Result<()> {
        let mut request = self.client.create_bucket().bucket(&self.bucket);
        // us-east-1 is the one region that must not be named as a location constraint.
        if let Some(region) = self.client.config().region().map(|r| r.as_ref().to_owned())
            && region != "us-east-1"
        {
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
        request
            .send()
            .await
            .map_err(err)
            .with_context(|| format!("creating bucket {}", self.bucket))?;
        Ok(())
    }
}

#[async_trait]
impl Archive for S3Archive {
    async fn put_tagged(
        &self,
        key: &str,
        content_type: &str,
        body: Vec<u8>,
        tags: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        validate_key(key)?;
        // S3 takes tags as a URL query string.
        let tagging = (!tags.is_empty()).then(|| {
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(tags)
                .finish()
        });
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .set_tagging(tagging)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(err)
            .with_context(|| format!("storing {key}"))?;
        Ok(())
    }

    async fn writer(
        &self,
        key: &str,
        content_type: &str,
    ) -> anyhow::Result<Box<dyn ArchiveWriter>> {
        validate_key(key)?;
        Ok(Box::new(S3Writer {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            content_type: content_type.to_owned(),
            buffer: Vec::new(),
            upload_id: None,
            parts: Vec::new(),
            written: 0,
            done: false,
        }))
    }

    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        validate_key(key)?;
        let object = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => object,
            Err(e)
                if e.as_service_error()
                    .is_some_and(GetObjectError::is_no_such_key) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(err(e)).with_context(|| format!("reading {key}")),
        };
        let body = object
            .body
            .collect()
            .await
            .with_context(|| format!("reading {key}"))?;
        Ok(Some(body.into_bytes().to_vec()))
    }

    async fn list(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        validate_prefix(prefix)?;
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages
            .try_next()
            .await
            .map_err(err)
            .with_context(|| format!("listing {prefix}"))?
        {
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|object| object.key().map(str::to_owned)),
            );
        }
        // S3 lists in byte order already; sorting keeps the port's promise whatever the server.
        keys.sort();
        Ok(keys)
    }

    async fn delete_prefix(&self, prefix: &str) -> anyhow::Result<usize> {
        if prefix.is_empty() {
            // Keys always start with a workspace prefix; an empty one is a bug, not a request.
            bail!("refusing to delete the whole archive (empty prefix)");
        }
        let keys = self.list(prefix).await?;
        for batch in keys.chunks(DELETE_BATCH) {
            let objects = batch
                .iter()
                .map(|key| ObjectIdentifier::builder().key(key).build())
                .collect::<Result<Vec<_>, _>>()
                .context("building the delete request")?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                // Quiet: the answer lists only the failures.
                .quiet(true)
                .build()
                .context("building the delete request")?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(err)
                .with_context(|| format!("deleting under {prefix}"))?;
            // DeleteObjects answers 200 even when some keys failed: those must not pass silently.
            if let Some(failed) = out.errors().first() {
                bail!(
                    "deleting under {prefix}: {} objects failed, first {:?}: {} {}",
                    out.errors().len(),
                    failed.key().unwrap_or_default(),
                    failed.code().unwrap_or_default(),
                    failed.message().unwrap_or_default()
                );
            }
        }
        Ok(keys.len())
    }

    /// A presigned GetObject. It stops working at `expires_in` (S3 allows at most 7 days), or
    /// earlier if the credentials that signed it expire first (a Lambda role's session does).
    async fn link(
        &self,
        key: &str,
        filename: &str,
        expires_in: Duration,
    ) -> anyhow::Result<String> {
        validate_key(key)?;
        let presigning = PresigningConfig::expires_in(expires_in)
            .context("link lifetime (S3 allows up to 7 days)")?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_disposition(content_disposition(filename))
            .presigned(presigning)
            .await
            .map_err(err)
            .with_context(|| format!("signing a link to {key}"))?;
        Ok(request.uri().to_owned())
    }
}

/// A multipart upload, started lazily: an object smaller than one part is a single PutObject.
struct S3Writer {
    client: Client,
    bucket: String,
    key: String,
    content_type: String,
    /// Bytes not yet sent, always less than one part between calls.
    buffer: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    written: u64,
    /// Finished or aborted: nothing for `Drop` to clean up.
    done: bool,
}

impl S3Writer {
    async fn upload_part(&mut self, body: Vec<u8>) -> anyhow::Result<()> {
        if self.parts.len() >= MAX_PARTS {
            bail!(
                "{} is larger than S3 allows ({MAX_PARTS} parts of {} MiB)",
                self.key,
                PART_SIZE >> 20
            );
        }
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let created = self
                    .client
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .content_type(&self.content_type)
                    .send()
                    .await
                    .map_err(err)
                    .with_context(|| format!("starting the upload of {}", self.key))?;
                let id = created
                    .upload_id()
                    .context("S3 started an upload without an upload id")?
                    .to_owned();
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = i32::try_from(self.parts.len() + 1).context("part number out of range")?;
        let uploaded = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(err)
            .with_context(|| format!("uploading part {number} of {}", self.key))?;
        // The SDK's default per-part checksums are checked by S3 on each UploadPart; completing
        // needs only the part numbers and ETags.
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(uploaded.e_tag().map(str::to_owned))
                .build(),
        );
        Ok(())
    }

    async fn complete(&mut self) -> anyhow::Result<u64> {
        let Some(upload_id) = self.upload_id.clone() else {
            // Never reached one part: one request instead of three.
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .content_type(&self.content_type)
                .body(ByteStream::from(std::mem::take(&mut self.buffer)))
                .send()
                .await
                .map_err(err)
                .with_context(|| format!("storing {}", self.key))?;
            return Ok(self.written);
        };
        if !self.buffer.is_empty() {
            let last = std::mem::take(&mut self.buffer);
            self.upload_part(last).await?;
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(self.parts.clone()))
                    .build(),
            )
            .send()
            .await
            .map_err(err)
            .with_context(|| format!("completing the upload of {}", self.key))?;
        Ok(self.written)
    }

    async fn abort_upload(&mut self) -> anyhow::Result<()> {
        self.done = true;
        self.buffer = Vec::new();
        let Some(upload_id) = self.upload_id.take() else {
            return Ok(());
        };
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(err)
            .with_context(|| format!("aborting the upload of {}", self.key))?;
        Ok(())
    }
}

#[async_trait]
impl ArchiveWriter for S3Writer {
    async fn write(&mut self, chunk: &[u8]) -> anyhow::Result<()> {
        if self.done {
            bail!("archive writer used after it was finished");
        }
        self.buffer.extend_from_slice(chunk);
        self.written += chunk.len() as u64;
        while self.buffer.len() >= PART_SIZE {
            let rest = self.buffer.split_off(PART_SIZE);
            let part = std::mem::replace(&mut self.buffer, rest);
            self.upload_part(part).await?;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> anyhow::Result<u64> {
        if self.done {
            bail!("archive writer already finished");
        }
        match self.complete().await {
            Ok(size) => {
                self.done = true;
                Ok(size)
            }
            Err(e) => {
                // Parts already uploaded are billed storage until aborted.
                if let Err(abort) = self.abort_upload().await {
                    tracing::warn!(key = %self.key, error = format!("{abort:#}"), "could not abort a failed upload");
                }
                Err(e)
            }
        }
    }

    async fn abort(mut self: Box<Self>) -> anyhow::Result<()> {
        self.abort_upload().await
    }
}

impl Drop for S3Writer {
    /// A writer dropped half-way (an export that failed, a panic) would leave its parts stored
    /// and billed: abort the upload in the background. Best effort; a lifecycle rule on the
    /// bucket (AbortIncompleteMultipartUpload) catches what this misses.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Some(upload_id) = self.upload_id.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let request = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id);
        let key = self.key.clone();
        runtime.spawn(async move {
            if let Err(e) = request.send().await {
                tracing::warn!(%key, error = %DisplayErrorContext(e), "could not abort a dropped upload");
            }
        });
    }
}
