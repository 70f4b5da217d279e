//! Jobs in the table's stream, as the stream-triggered Lambdas (jobs, deletion worker) receive
//! them: one decoding of a record's new image, beside the adapter that wrote the item, so the two
//! cannot drift apart.

pub use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use serde::Deserialize;

use super::items::JobItem;
use crate::ports::Job;

/// A record's partition key: whether the item is a job at all.
#[derive(Deserialize)]
struct PartitionKey {
    pk: String,
}

/// The job a record's new image holds, if the record is about a job that still exists.
/// `Err` means a job item whose content does not decode: a bug to surface, not a record to skip.
pub fn job_in(record: &EventRecord) -> anyhow::Result<Option<Job>> {
    let image = &record.change.new_image;
    if image.is_empty() {
        return Ok(None); // a removal (no new image) or a stream without new images
    }
    let Ok(PartitionKey { pk }) = serde_dynamo::from_item(image.clone()) else {
        return Ok(None);
    };
    if !super::schema::is_job_pk(&pk) {
        return Ok(None); // the stream carries every write to the table
    }
    let item: JobItem = serde_dynamo::from_item(image.clone())
        .map_err(|e| anyhow::anyhow!("the job in stream record {}: {e}", record.event_id))?;
    Ok(Some(item.d.into_owned()))
}

/// Every job the event's records hold, in stream order.
pub fn jobs_in(event: &Event) -> anyhow::Result<Vec<Job>> {
    event
        .records
        .iter()
        .filter_map(|r| job_in(r).transpose())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::JobState;

    fn event(json: &str) -> Event {
        serde_json::from_str(json).expect("a stream event as Lambda delivers it")
    }

    #[test]
    fn a_recorded_insert_of_an_export_job_decodes_to_the_job() {
        let jobs = jobs_in(&event(include_str!("fixtures/stream-export-inserted.json"))).unwrap();
        assert_eq!(jobs.len(), 1);
        let job = &jobs[0];
        assert_eq!(job.kind, "export");
        assert_eq!(job.id, "exp_01jdq5v3e0k8w7m2c4r6t9y1zb");
        assert_eq!(job.workspace.as_str(), "ws_01jdq5rj4x5v8m6n0p2q3r4s5t");
        assert_eq!(job.state, JobState::Queued);
    }

    #[test]
    fn a_recorded_batch_keeps_jobs_in_order_and_skips_other_items_and_removals() {
        let jobs = jobs_in(&event(include_str!("fixtures/stream-deletion-batch.json"))).unwrap();
        let seen: Vec<(&str, JobState)> = jobs.iter().map(|j| (j.kind.as_str(), j.state)).collect();
        assert_eq!(
            seen,
            [
                ("deletion", JobState::Queued),
                ("deletion", JobState::Running)
            ],
            "the queue item, the usage counter and the removal are not jobs"
        );
    }

    #[test]
    fn a_job_item_whose_content_does_not_decode_is_an_error_not_a_skip() {
        let json = include_str!("fixtures/stream-export-inserted.json")
            .replace(r#""state\":\"queued\""#, r#""state\":\"lost\""#);
        assert!(jobs_in(&event(&json)).is_err());
    }
}
