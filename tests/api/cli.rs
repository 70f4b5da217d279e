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

/// Runs `llmtrack admin --json <args>` on `dir` and returns its JSON answer.
pub fn admin(dir: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let json = [&["--json"], args].concat();
    serde_json::from_str(&llmtrack("admin", dir, &json)).unwrap()
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

/// Runs `llmtrack ARGS` with a backtrace asked for, as a developer's shell often has it; returns
/// (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_llmtrack"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env_remove("LLMTRACK_DATA_DIR")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// A data directory with a store in it, as a server leaves it.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    llmtrack::open_store(dir.path()).unwrap();
    dir
}

fn path(dir: &std::path::Path) -> &str {
    dir.to_str().unwrap()
}

#[test]
fn commands_refuse_a_data_dir_that_is_not_a_servers() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo");
    for args in [
        vec!["admin", "workspaces", "--data-dir", path(&missing)],
        vec!["jobs", "run", "alerts", "--data-dir", path(&missing)],
    ] {
        let (code, _, err) = run(&args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(
            err.starts_with("error: the data directory") && err.contains("does not exist"),
            "{err}"
        );
        assert!(!err.contains("backtrace"), "{err}");
    }
    assert!(!missing.exists(), "nothing is created in a mistyped place");
    // A directory that exists but is no server's.
    let (code, _, err) = run(&["admin", "workspaces", "--data-dir", path(dir.path())]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("holds no LLMtrack store"), "{err}");
}

#[test]
fn mistakes_print_one_error_line_and_exit_1() {
    let dir = data_dir();
    let d = path(dir.path());
    let (code, _, err) = run(&[
        "admin",
        "create-key",
        "--data-dir",
        d,
        "--workspace",
        "nope",
        "--name",
        "a",
        "--source",
        "b",
    ]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "error: `nope` is not a workspace id (they look like ws_…)"
    );
    let ws = WorkspaceId::generate(now_ms());
    let (code, _, err) = run(&["admin", "keys", "--data-dir", d, "--workspace", ws.as_str()]);
    assert_eq!(code, 1);
    assert_eq!(err.trim(), format!("error: workspace {ws} does not exist"));
    // Values the command line can check, it checks, naming the allowed ones.
    let (code, _, err) = run(&[
        "admin",
        "set-plan",
        "--data-dir",
        d,
        "--workspace",
        ws.as_str(),
        "--plan",
        "gold",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: invalid value 'gold' for '--plan <PLAN>'"),
        "{err}"
    );
    assert!(err.contains("[possible values: free, pro, team]"), "{err}");
    let (code, _, err) = run(&[
        "jobs",
        "run",
        "reports",
        "--data-dir",
        d,
        "--month",
        "2026-13",
    ]);
    assert_eq!(code, 1);
    assert!(err.starts_with("error: --month: "), "{err}");
    assert!(!err.contains("backtrace"), "{err}");
}

#[test]
fn every_option_says_what_it_takes() {
    let (code, out, _) = run(&["admin", "create-key", "--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("[default: ingest] [possible values: ingest, read]"),
        "{out}"
    );
    let (_, out, _) = run(&["admin", "add-member", "--help"]);
    assert!(
        out.contains("[possible values: owner, admin, viewer]"),
        "{out}"
    );
    // Every option of every command has a line of help.
    for command in [
        vec!["serve"],
        vec!["jobs", "run", "reports"],
        vec!["admin", "create-workspace"],
        vec!["admin", "create-key"],
        vec!["admin", "keys"],
        vec!["admin", "revoke-key"],
        vec!["admin", "add-member"],
        vec!["admin", "members"],
        vec!["admin", "set-plan"],
    ] {
        let mut args = command.clone();
        args.push("--help");
        let (code, out, err) = run(&args);
        assert_eq!(code, 0, "{err}");
        for line in out.lines().filter(|l| l.trim_start().starts_with("--")) {
            let option = line.split_whitespace().next().unwrap();
            // clap puts the help after the option and its value on the same line, or on the
            // next one, indented.
            let inline = line
                .split_whitespace()
                .skip(1)
                .any(|w| !w.starts_with('<') && !w.starts_with("[<"));
            let below = out
                .split(line)
                .nth(1)
                .and_then(|rest| rest.lines().nth(1))
                .is_some_and(|next| next.starts_with("          ") && !next.trim().is_empty());
            let described = inline || below;
            assert!(described, "{command:?}: {option} has no help:\n{out}");
        }
    }
}

#[tokio::test]
async fn a_workspace_made_with_an_owner_is_theirs_when_they_sign_in() {
    let dir = data_dir();
    let store = Arc::new(llmtrack::open_store(dir.path()).unwrap());
    let app = spawn_app_on(store, Arc::new(SystemClock), None).await;
    let out = llmtrack(
        "admin",
        dir.path(),
        &[
            "create-workspace",
            "--name",
            "Acme",
            "--owner",
            "ada@example.com",
            "--json",
        ],
    );
    let made: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ws = made["id"].as_str().unwrap();
    let ada = app.sign_in("ada@example.com").await;
    let (status, body) = ada.get(&format!("/v1/workspaces/{ws}/usage")).await;
    assert_eq!(status, 200, "{body}");
    let (_, me) = ada.get("/v1/me").await;
    assert_eq!(me["workspaces"][0]["role"], "owner", "{me}");
    let members: serde_json::Value = admin(dir.path(), &["members", "--workspace", ws]);
    assert_eq!(members[0]["email"], "ada@example.com");
    assert_eq!(members[0]["role"], "owner");
    let listed = llmtrack("admin", dir.path(), &["workspaces"]);
    assert!(
        listed.contains(ws) && listed.contains("Acme (free plan"),
        "{listed}"
    );
}

#[tokio::test]
async fn keys_are_listed_without_their_secret_and_a_revoked_key_is_refused() {
    let dir = data_dir();
    let store = Arc::new(llmtrack::open_store(dir.path()).unwrap());
    let app = spawn_app_on(store, Arc::new(SystemClock), None).await;
    let ws: serde_json::Value = admin(dir.path(), &["create-workspace", "--name", "Acme"]);
    let ws = ws["id"].as_str().unwrap();
    let made: serde_json::Value = admin(
        dir.path(),
        &[
            "create-key",
            "--workspace",
            ws,
            "--name",
            "backend",
            "--source",
            "production",
        ],
    );
    let raw = made["key"].as_str().unwrap();
    let event = json!({"provider": "openai", "model": "gpt-4o", "input_tokens": 10});
    let (status, body) = app.post_events(raw, &event).await;
    assert_eq!(status, 200, "{body}");

    let listed = llmtrack("admin", dir.path(), &["keys", "--workspace", ws, "--json"]);
    assert!(!listed.contains(raw), "a listing never shows a raw key");
    let keys: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(keys[0]["id"], made["id"]);
    assert_eq!(keys[0]["state"], "active");
    let id = made["id"].as_str().unwrap();
    let out = llmtrack(
        "admin",
        dir.path(),
        &["revoke-key", "--workspace", ws, "--key", id],
    );
    assert!(out.contains("is revoked"), "{out}");
    let (status, body) = app.post_events(raw, &event).await;
    assert_eq!(status, 401, "{body}");
    let keys: serde_json::Value = admin(dir.path(), &["keys", "--workspace", ws]);
    assert_eq!(keys[0]["state"], "deactivated");
    // Another workspace's key id is not found in this one.
    let other: serde_json::Value = admin(dir.path(), &["create-workspace", "--name", "Other"]);
    let (code, _, err) = run(&[
        "admin",
        "revoke-key",
        "--data-dir",
        path(dir.path()),
        "--workspace",
        other["id"].as_str().unwrap(),
        "--key",
        id,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("has no key"), "{err}");
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first_port = free_port();
    let mut first = Command::new(env!("CARGO_BIN_EXE_llmtrack"))
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{first_port}"),
            "--data-dir",
        ])
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_health(
        &format!("http://127.0.0.1:{first_port}"),
        "the first server",
    )
    .await;
    let second_port = free_port().to_string();
    let (code, _, err) = run(&[
        "serve",
        "--addr",
        &format!("127.0.0.1:{second_port}"),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "error: another llmtrack server (pid {}) is using the data directory",
            first.id()
        )),
        "{err}"
    );
    // Once the first is gone, the directory is free again.
    let lock = llmtrack::lock_data_dir(&data).expect("the lock is released with its process");
    drop(lock);
}

#[tokio::test]
async fn jobs_run_reports_says_which_workspaces_it_skipped_and_why() {
    let dir = data_dir();
    let store = llmtrack::open_store(dir.path()).unwrap();
    let ws = llmtrack::admin::create_workspace(&store, "New", Plan::Free, now_ms())
        .await
        .unwrap();
    let last_month = llmtrack_shared::domain::report::Month::of(now_ms()).previous();
    let out = jobs(
        dir.path(),
        &["run", "reports", "--month", &last_month.to_string()],
    );
    assert!(out.contains("0 reports archived, 0 emails sent"), "{out}");
    assert!(
        out.contains(&format!(
            "{}: skipped: created after the month, with no events in it",
            ws.id
        )),
        "{out}"
    );
}

#[tokio::test]
async fn a_backup_taken_while_serving_restores_into_a_new_directory() {
    use llmtrack_shared::ports::{Events as _, Workspaces as _};
    let dir = data_dir();
    // The secrets and archive a server keeps beside its store.
    let options = llmtrack::Options {
        public_url: "http://127.0.0.1:8080".into(),
        ..Default::default()
    };
    llmtrack::local_parts(dir.path(), &options).unwrap();
    let report = dir.path().join("archive/reports/ws_x/2026-10.json");
    std::fs::create_dir_all(report.parent().unwrap()).unwrap();
    std::fs::write(&report, b"{\"month\": \"2026-10\"}").unwrap();
    let export = dir.path().join("archive/exports/ws_x/e.csv");
    std::fs::create_dir_all(export.parent().unwrap()).unwrap();
    std::fs::write(&export, b"a,b").unwrap();

    let store = Arc::new(llmtrack::open_store(dir.path()).unwrap());
    let app = spawn_app_on(store, Arc::new(SystemClock), None).await;
    let ws: serde_json::Value = admin(dir.path(), &["create-workspace", "--name", "Acme"]);
    let ws = WorkspaceId::parse(ws["id"].as_str().unwrap()).unwrap();
    let key = app.key(&ws, Scope::Ingest, "production").await;
    let events: Vec<_> = (0..50)
        .map(|i| json!({"provider": "openai", "model": "gpt-4o", "input_tokens": i + 1}))
        .collect();
    let (status, body) = app.post_events(&key, &json!({"events": events})).await;
    assert_eq!(status, 200, "{body}");

    let backups = tempfile::tempdir().unwrap();
    let to = backups.path().join("monday");
    let out = llmtrack("admin", dir.path(), &["backup", "--to", path(&to)]);
    assert!(out.contains("1 report files, 3 secrets"), "{out}");
    // A backup never lands on top of another.
    let (code, _, err) = run(&[
        "admin",
        "backup",
        "--data-dir",
        path(dir.path()),
        "--to",
        path(&to),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("is not empty"), "{err}");

    let restored = backups.path().join("restored");
    let out = llmtrack("admin", &restored, &["restore", "--from", path(&to)]);
    assert!(out.contains("1 report files, 3 secrets"), "{out}");
    let back = llmtrack::open_store(&restored).unwrap();
    assert_eq!(back.workspace(&ws).await.unwrap().unwrap().name, "Acme");
    assert_eq!(
        back.events(&ws, 0, i64::MAX / 2, None, 100)
            .await
            .unwrap()
            .len(),
        50
    );
    assert_eq!(
        std::fs::read(restored.join("archive/reports/ws_x/2026-10.json")).unwrap(),
        std::fs::read(&report).unwrap()
    );
    assert!(
        !restored.join("archive/exports").exists(),
        "exports expire: not backed up"
    );
    for secret in [".alert-signing-key", "archive/.link-secret", "secrets.key"] {
        assert_eq!(
            std::fs::read(restored.join(secret)).unwrap(),
            std::fs::read(dir.path().join(secret)).unwrap(),
            "{secret}"
        );
    }
    // A restore never replaces a store, and takes only what is an LLMtrack store.
    let (code, _, err) = run(&[
        "admin",
        "restore",
        "--data-dir",
        path(&restored),
        "--from",
        path(&to),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("already holds a store"), "{err}");
    let junk = backups.path().join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(
        junk.join("llmtrack.sqlite3"),
        b"not a database at all, not even close",
    )
    .unwrap();
    let fresh = backups.path().join("fresh");
    let (code, _, err) = run(&[
        "admin",
        "restore",
        "--data-dir",
        path(&fresh),
        "--from",
        path(&junk),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(!fresh.join("llmtrack.sqlite3").exists());
}

#[tokio::test]
async fn the_demo_is_a_month_of_varied_data_its_owner_sees_at_once() {
    // A fresh directory: the demo is a first-run command and creates the store.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = llmtrack(
        "demo",
        &data,
        &["--owner", "ada@example.com", "--events", "3000", "--json"],
    );
    let demo: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ws = demo["workspace"].as_str().unwrap().to_owned();
    let events = demo["events"].as_u64().unwrap();
    assert!(events >= 3000, "{demo}");
    assert!(demo["key"].as_str().unwrap().starts_with("llmt_"), "{demo}");

    let store = Arc::new(llmtrack::open_store(&data).unwrap());
    let app = spawn_app_on(store, Arc::new(SystemClock), None).await;
    let ada = app.sign_in("ada@example.com").await;
    let from = llmtrack_shared::domain::time::rfc3339(now_ms() - 31 * 86_400_000);
    let range = format!("workspace={ws}&from={}", from.replace(':', "%3A"));

    // Every event counted, priced except the workspace's own model, with errors and latency.
    let (status, summary) = ada.get(&format!("/v1/stats/summary?{range}")).await;
    assert_eq!(status, 200, "{summary}");
    let m = &summary["metrics"];
    assert_eq!(m["requests"], events, "{summary}");
    assert!(m["cost_usd"].as_f64().unwrap() > 1.0, "{summary}");
    assert!(
        (m["cost_usd"].as_f64().unwrap() - demo["cost_usd"].as_f64().unwrap()).abs() < 0.01,
        "{summary} {demo}"
    );
    assert!(m["unpriced"].as_u64().unwrap() > 0, "{summary}");
    assert!(m["errors"].as_u64().unwrap() > 0, "{summary}");
    assert!(m["latency_ms"]["p95"].as_f64().unwrap() > 0.0, "{summary}");

    // Varied along each dimension the dashboard breaks down by.
    for (by, at_least) in [("model", 8), ("feature", 5), ("source", 2), ("user", 50)] {
        let (status, b) = ada
            .get(&format!("/v1/stats/breakdown?{range}&by={by}"))
            .await;
        assert_eq!(status, 200, "{b}");
        assert!(b["total_rows"].as_u64().unwrap() >= at_least, "{by}: {b}");
    }

    // The rest of the workspace: members, keys, alert rules with a state, last month's report.
    let members = admin(&data, &["members", "--workspace", &ws]);
    assert_eq!(members.as_array().unwrap().len(), 3, "{members}");
    let keys = admin(&data, &["keys", "--workspace", &ws]);
    assert_eq!(keys.as_array().unwrap().len(), 3, "{keys}");
    let (status, rules) = ada.get(&format!("/v1/workspaces/{ws}/alerts")).await;
    assert_eq!(status, 200, "{rules}");
    assert_eq!(rules.as_array().unwrap().len(), 5, "{rules}");
    // Last month's report, in the data directory's archive `serve` lists reports from.
    let month = llmtrack_shared::domain::report::Month::of(now_ms()).previous();
    assert_eq!(demo["report_month"], month.to_string(), "{demo}");
    let report = data.join(format!("archive/reports/{ws}/{month}.json"));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert!(report.to_string().contains("gpt-4o-mini"), "{report}");

    // And the printed key takes a first real event.
    let key = demo["key"].as_str().unwrap();
    let (status, body) = app
        .post_events(
            key,
            &json!({"events": [{"provider": "openai", "model": "gpt-4o-mini", "input_tokens": 10, "output_tokens": 2}]}),
        )
        .await;
    assert!(status == 200 || status == 202, "{status} {body}");
    assert_eq!(body["accepted"], 1, "{body}");
}

#[test]
fn price_rules_are_added_listed_and_removed_at_the_command_line() {
    let dir = data_dir();
    let ws: serde_json::Value = admin(dir.path(), &["create-workspace", "--name", "Acme"]);
    let ws = ws["id"].as_str().unwrap();
    let discount = admin(
        dir.path(),
        &[
            "add-price",
            "--workspace",
            ws,
            "--provider",
            "anthropic",
            "--model",
            "claude-*",
            "--discount",
            "15",
            "--from",
            "2026-01-01",
            "--note",
            "MSA 2026",
        ],
    );
    assert_eq!(discount["kind"], "discount", "{discount}");
    assert_eq!(discount["percent"], 15.0, "{discount}");
    let own = admin(
        dir.path(),
        &[
            "add-price",
            "--workspace",
            ws,
            "--provider",
            "acme",
            "--model",
            "in-house-7b",
            "--input",
            "0.4",
            "--output",
            "1.6",
            "--batch-percent",
            "50",
        ],
    );
    assert_eq!(own["rates"]["input"], 0.4, "{own}");
    let listed = admin(dir.path(), &["prices", "--workspace", ws]);
    assert_eq!(listed["rules"].as_array().unwrap().len(), 2, "{listed}");
    let text = llmtrack("admin", dir.path(), &["prices", "--workspace", ws]);
    assert!(
        text.contains("anthropic/claude-*: 15% off the table, from 2026-01-01"),
        "{text}"
    );

    // A bad value is one error line naming the option; an unknown rule names the command to list them.
    let (code, _, err) = run(&[
        "admin",
        "add-price",
        "--data-dir",
        path(dir.path()),
        "--workspace",
        ws,
        "--provider",
        "openai",
        "--model",
        "gpt-4o",
        "--discount",
        "150",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("error: --discount: "), "{err}");
    let (code, _, err) = run(&[
        "admin",
        "remove-price",
        "--data-dir",
        path(dir.path()),
        "--workspace",
        ws,
        "--price",
        "pr_nope",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("admin prices"), "{err}");

    let removed = admin(
        dir.path(),
        &[
            "remove-price",
            "--workspace",
            ws,
            "--price",
            discount["id"].as_str().unwrap(),
        ],
    );
    assert_eq!(removed["id"], discount["id"]);
    let listed = admin(dir.path(), &["prices", "--workspace", ws]);
    assert_eq!(listed["rules"][0]["id"], own["id"], "{listed}");
}

#[tokio::test]
async fn a_repricing_at_the_command_line_counts_first_and_rewrites_when_applied() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = llmtrack(
        "demo",
        &data,
        &["--owner", "ada@example.com", "--events", "400", "--json"],
    );
    let demo: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ws = demo["workspace"].as_str().unwrap().to_owned();
    admin(
        &data,
        &[
            "add-price",
            "--workspace",
            &ws,
            "--provider",
            "openai",
            "--model",
            "*",
            "--discount",
            "50",
        ],
    );

    // A dry run counts the change and changes nothing.
    let dry = admin(&data, &["reprice", "--workspace", &ws]);
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(dry["state"], "done", "{dry}");
    let total = &dry["total"];
    assert!(total["changed"].as_u64().unwrap() > 0, "{dry}");
    let before = total["cost_before_usd"].as_f64().unwrap();
    let after = total["cost_after_usd"].as_f64().unwrap();
    assert!(after < before, "{dry}");
    let openai = dry["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "gpt-4o-mini")
        .unwrap_or_else(|| panic!("{dry}"));
    let (b, a) = (
        openai["cost_before_usd"].as_f64().unwrap(),
        openai["cost_after_usd"].as_f64().unwrap(),
    );
    assert!((a - b / 2.0).abs() < 1e-6, "half off gpt-4o-mini: {openai}");
    let text = llmtrack("admin", &data, &["reprice", "--workspace", &ws]);
    assert!(text.contains("Nothing was changed"), "{text}");
    assert!(text.contains("gpt-4o-mini"), "{text}");

    // Applied, the stored costs are the dry run's "after", and a repeat finds nothing to do.
    let applied = admin(&data, &["reprice", "--workspace", &ws, "--apply"]);
    assert_eq!(applied["rewritten"], dry["total"]["changed"], "{applied}");
    let store = Arc::new(llmtrack::open_store(&data).unwrap());
    let app = spawn_app_on(store, Arc::new(SystemClock), None).await;
    let ada = app.sign_in("ada@example.com").await;
    let range = format!(
        "workspace={ws}&from={}&to={}",
        urlencode(dry["from"].as_str().unwrap()),
        urlencode(dry["to"].as_str().unwrap())
    );
    let (status, summary) = ada.get(&format!("/v1/stats/summary?{range}")).await;
    assert_eq!(status, 200, "{summary}");
    let stored = summary["metrics"]["cost_usd"].as_f64().unwrap();
    assert!(
        (stored - after).abs() < 1e-6,
        "{stored} != {after}: {summary}"
    );
    let again = admin(&data, &["reprice", "--workspace", &ws]);
    assert_eq!(again["total"]["changed"], 0, "{again}");
    let (_, audit) = ada.get(&format!("/v1/workspaces/{ws}/audit")).await;
    assert!(audit.to_string().contains("data.reprice"), "{audit}");

    // A bad range is one error line naming the option.
    let (code, _, err) = run(&[
        "admin",
        "reprice",
        "--data-dir",
        path(&data),
        "--workspace",
        &ws,
        "--from",
        "last week",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("error: --from: "), "{err}");
}
