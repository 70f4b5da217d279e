//! The jobs Lambda: runs export jobs and retention passes. Triggered by the DynamoDB stream when
//! a job item is inserted (the template filters the stream to `JOB#…` partitions); a failed run is
//! retried by the event source mapping: an export starts over, so nothing half-written is ever
//! published, and a retention pass continues from its saved progress.

use std::sync::Arc;

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use llmtrack_query::{QueryPorts, export};
use llmtrack_shared::adapters::dynamodb::{DynamoStore, stream};
use llmtrack_shared::adapters::s3::S3Archive;
use llmtrack_shared::config::required;
use llmtrack_shared::ports::{DynArchive, DynClock, DynStore, SystemClock};
use llmtrack_shared::retention_job::{self, RetentionPorts};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    llmtrack_shared::telemetry::init();
    let store: DynStore = Arc::new(DynamoStore::for_lambda().await?);
    let (store, retention) = (QueryPorts::of(&store), RetentionPorts::of(&store));
    let archive: DynArchive = Arc::new(S3Archive::from_env(&required("ARCHIVE_BUCKET")?).await);
    let clock: DynClock = Arc::new(SystemClock);
    lambda_runtime::run(service_fn(|event: LambdaEvent<stream::Event>| {
        let (store, retention, archive, clock) = (
            store.clone(),
            retention.clone(),
            archive.clone(),
            clock.clone(),
        );
        async move {
            for job in stream::jobs_in(&event.payload)? {
                match job.kind.as_str() {
                    export::JOB_KIND => export::run(&store, &archive, &clock, job).await?,
                    retention_job::JOB_KIND => retention_job::run(&retention, &clock, job).await?,
                    other => {
                        tracing::warn!(kind = other, "a job of a kind this function does not run")
                    }
                }
            }
            Ok::<(), lambda_runtime::Error>(())
        }
    }))
    .await
}
