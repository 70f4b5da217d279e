//! A real `llmtrack serve` process killed (SIGKILL) in the middle of a load, restarted, and sent
//! every batch again: each event is stored once and every rollup equals a recomputation.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use llmtrack_shared::adapters::sqlite::SqliteStore;
use llmtrack_shared::domain::ids::WorkspaceId;
use serde_json::{Value, json};

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_llmtrack");

async fn start(dir: &std::path::Path, port: u16) -> Child {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start llmtrack serve");
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    child.kill().ok();
    child.wait().ok();
    panic!("llmtrack serve did not become ready");
}

#[tokio::test]
async fn a_killed_server_and_client_retries_converge_to_exact_rollups() {
    let dir = tempfile::tempdir().unwrap();
    // The store a server makes on its first start (`admin` needs one).
    llmtrack::open_store(dir.path()).unwrap();
    let ws = crate::cli::admin(
        dir.path(),
        &["create-workspace", "--name", "Crashy", "--plan", "pro"],
    );
    let ws_id = ws["id"].as_str().unwrap().to_owned();
    let key = crate::cli::admin(
        dir.path(),
        &[
            "create-key",
            "--workspace",
            &ws_id,
            "--name",
            "app",
            "--source",
            "production",
        ],
    );
    let key = key["key"].as_str().unwrap().to_owned();

    let now = now_ms();
    let batches: Vec<Value> =
        (0..80).map(|b| json!({"events": (b * 100..(b + 1) * 100).map(|i| event(i, now - (i as i64) * 20_000)).collect::<Vec<_>>()})).collect();

    let port = free_port();
    let mut server = start(dir.path(), port).await;
    let url = format!("http://127.0.0.1:{port}/v1/events");
    let http = reqwest::Client::new();
    // Several clients send at once; the server is killed once some batches are acknowledged and
    // while others are in flight.
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = batches
        .chunks(batches.len() / 4)
        .map(|chunk| {
            let (http, url, key, chunk, acknowledged) = (
                http.clone(),
                url.clone(),
                key.clone(),
                chunk.to_vec(),
                acknowledged.clone(),
            );
            tokio::spawn(async move {
                for b in chunk {
                    match http.post(&url).bearer_auth(&key).json(&b).send().await {
                        Ok(r) if r.status() == 200 => acknowledged.fetch_add(1, Ordering::SeqCst),
                        _ => return false, // the server died under this request
                    };
                }
                true
            })
        })
        .collect();
    while acknowledged.load(Ordering::SeqCst) < 4 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.kill().unwrap(); // SIGKILL: no graceful shutdown
    server.wait().unwrap();
    let mut cut_short = 0;
    for s in senders {
        cut_short += usize::from(!s.await.unwrap());
    }
    assert!(
        cut_short > 0,
        "the kill came after every batch was acknowledged: the test proved nothing"
    );
    assert!(acknowledged.load(Ordering::SeqCst) < batches.len());

    // Restart and retry every batch, as a client that saw errors would.
    let mut server = start(dir.path(), port).await;
    for b in &batches {
        let resp = http
            .post(&url)
            .bearer_auth(&key)
            .json(b)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    server.kill().unwrap();
    server.wait().unwrap();

    let store = SqliteStore::open(&dir.path().join("llmtrack.sqlite3")).unwrap();
    let ws = WorkspaceId::parse(&ws_id).unwrap();
    let events = all_events(&store, &ws).await;
    assert_eq!(events.len(), 8000);
    let mut ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8000, "an event was stored twice");
    assert_rollups_match_events(&store, &ws).await;
}
