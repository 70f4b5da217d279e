//! The `llmtrack` command line, run as an operator runs it, on a data directory a server uses.

use std::process::Command;
use std::sync::Arc;

use llmtrack_shared::domain::access::Role;
use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::ports::SystemClock;
use serde_json::json;

use crate::support::*;

/// Runs `llmtrack <command> --data-dir DIR <args>` as an operator would; panics with its stderr
/// unless it succeeds, and returns its stdout.
pub fn llmtrack(command: &str, dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_llmtrack"))
        .arg(command)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn jobs(dir: &std::path::Path, args: &[&str]) -> String {
    llmtrack("jobs", dir, args)
}

#[tokio::test]
async fn jobs_run_alerts_evaluates_once_and_sends_what_is_due() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(llmtrack::open_store(dir.path()).unwrap());
    let app = spawn_app_on(store.clone(), Arc::new(SystemClock), None).await;
    let ws = llmtrack::admin::create_workspace(store.as_ref(), "Cli", Plan::Free, now_ms())
        .await
        .unwrap();
    llmtrack::admin::add_member(
        store.as_ref(),
        ws.id.as_str(),
        "owner@example.com",
        Role::Owner,
        now_ms(),
    )
    .await
    .unwrap();
    let id = WorkspaceId::parse(ws.id.as_str()).unwrap();
    let key = app.key(&id, Scope::Ingest, "production").await;
    // 8,000 of the free plan's 10,000 events this month: the 80% notice is due.
    let now = now_ms();
    for chunk in 0..8 {
        let events: Vec<_> = (0..1000)
            .map(|i| {
                json!({"provider": "openai", "model": "gpt-4o", "input_tokens": 10,
                "timestamp": now - (chunk * 1000 + i) as i64 * 10})
            })
            .collect();
        let (status, body) = app.post_events(&key, &json!({"events": events})).await;
        assert_eq!(status, 200, "{body}");
    }

    let out = jobs(dir.path(), &["run", "alerts"]);
    assert!(out.contains("1 notifications sent"), "{out}");
    let mails: Vec<String> = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
        .filter(|m| m.contains("owner@example.com") && m.contains("used 80%"))
        .collect();
    assert_eq!(mails.len(), 1);
    // Once per threshold: run again, nothing more is sent.
    let out = jobs(dir.path(), &["run", "alerts"]);
    assert!(out.contains("0 notifications sent"), "{out}");
}
