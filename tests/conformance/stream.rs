//! The stream decoding against the items the DynamoDB adapter really writes: a job is saved
//! through the port, read back raw from the table, wrapped as Lambda delivers a stream record,
//! and must decode to the job the jobs Lambda and the deletion worker would run.

use aws_sdk_dynamodb::types::AttributeValue;
use llmtrack_shared::adapters::dynamodb::stream;
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::ports::{Job, JobState};
use serde_json::{Value, json};

use super::support::*;
use llmtrack_shared::ports::prelude::*;

/// DynamoDB JSON of a raw attribute (job items hold strings and numbers only).
fn dynamodb_json(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        other => panic!("a job item attribute of an unexpected type: {other:?}"),
    }
}

#[tokio::test]
async fn the_stream_record_of_a_saved_job_decodes_to_that_job() {
    let store = dynamo_store().await;
    let now = now_ms();
    let ws = WorkspaceId::generate(now);
    let mut job = Job::queued(
        "exp",
        &ws,
        "export",
        json!({"kind": "events"}),
        Value::Null,
        now,
    );
    store.create_job(&job).await.unwrap();
    job.state = JobState::Running;
    assert!(store.update_job(&mut job).await.unwrap());

    let records: Vec<Value> = scan_table(&store)
        .await
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let image: serde_json::Map<String, Value> = item
                .iter()
                .map(|(k, v)| (k.clone(), dynamodb_json(v)))
                .collect();
            json!({
                "eventID": format!("{i:032x}"),
                "eventName": "MODIFY",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "eu-west-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": now / 1000,
                    "Keys": { "pk": image["pk"], "sk": image["sk"] },
                    "NewImage": image,
                    "SequenceNumber": format!("{}", 1000 + i),
                    "SizeBytes": 300,
                    "StreamViewType": "NEW_AND_OLD_IMAGES"
                },
                "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/t/stream/2026-12-02T00:00:00.000"
            })
        })
        .collect();
    assert!(records.len() >= 2, "the job and its queue entry");
    let event: stream::Event = serde_json::from_value(json!({ "Records": records })).unwrap();
    let jobs = stream::jobs_in(&event).unwrap();
    assert_eq!(jobs.len(), 1, "only the job item is a job: {jobs:?}");
    assert_eq!(jobs[0].id, job.id);
    assert_eq!(jobs[0].state, JobState::Running);
    assert_eq!(jobs[0].version, job.version);
}
