//! The local server itself: deadlines for slow clients and a cap on connections (the server loop
//! of `llmtrack serve`), the security headers of every answer, the client address behind a
//! trusted proxy, webhooks to local ports, and a log that holds no sign-in code.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use llmtrack::server::{self, Limits};
use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::plan::Plan;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// The app behind the real server loop, with short deadlines.
async fn serve_with(limits: Limits) -> (SocketAddr, TestApp) {
    let app = spawn_app().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = llmtrack::app(app.parts.clone());
    tokio::spawn(server::run(
        listener,
        router,
        limits,
        Vec::new(),
        std::future::pending(),
    ));
    (addr, app)
}

/// Reads until the peer closes the connection or `within` passes; returns what came and whether
/// the connection was closed.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_do_not_hold_the_server() {
    let (addr, _app) = serve_with(Limits {
        header_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(1),
        max_connections: 64,
        max_per_address: 32,
    })
    .await;
    // Half the headers, then nothing: closed after the header deadline.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A whole head promising a body that never comes: 408 once the request deadline passes.
    let mut no_body = TcpStream::connect(addr).await.unwrap();
    no_body
        .write_all(b"POST /v1/auth/email HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{\"em")
        .await
        .unwrap();
    // Meanwhile others are served.
    let http = reqwest::Client::new();
    let r = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let (_, closed) = read_until_closed(&mut stalled, Duration::from_secs(3)).await;
    assert!(
        closed,
        "a connection that never finished its headers is closed"
    );
    let (answer, _) = read_until_closed(&mut no_body, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
}

#[tokio::test]
async fn connections_are_capped_per_address_and_freed_when_closed() {
    let (addr, _app) = serve_with(Limits {
        header_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
        max_connections: 64,
        max_per_address: 4,
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(s);
    }
    // The fifth from the same address is closed at once, unanswered.
    let mut fifth = TcpStream::connect(addr).await.unwrap();
    let _ = fifth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let (answer, closed) = read_until_closed(&mut fifth, Duration::from_secs(2)).await;
    assert!(closed && answer.is_empty(), "{answer}");
    // Closing the held connections frees their places.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn every_answer_carries_security_headers() {
    let app = spawn_app().await;
    let ws = app.workspace(Plan::Free).await;
    let read = app.key(&ws, Scope::Read, "scripts").await;
    let owner = app.sign_in("owner@example.com").await;
    let (_, created) = owner.post("/v1/workspaces", json!({"name": "Acme"})).await;
    let id = created["id"].as_str().unwrap();
    let key = app
        .http
        .post(app.url(&format!("/v1/workspaces/{id}/keys")))
        .header("cookie", owner.cookie.clone().unwrap())
        .header("origin", app.url(""))
        .json(&json!({"name": "backend", "source": "production"}))
        .send()
        .await
        .unwrap();
    assert_eq!(key.status(), 201);
    let summary = app
        .http
        .get(app.url("/v1/stats/summary"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    let missing = app.http.get(app.url("/v1/nope")).send().await.unwrap();
    for r in [&key, &summary, &missing] {
        let h = r.headers();
        assert_eq!(h["cache-control"], "no-store", "{}", r.url());
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "same-origin");
    }
    // An app page: a strict policy and no framing, built or not.
    let page = app
        .http
        .get(app.url("/workspaces/ws_x/overview"))
        .send()
        .await
        .unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
}

/// Behind a trusted proxy the client is the address the proxy saw, not what the client wrote in
/// `X-Forwarded-For`; without one the header is ignored.
#[tokio::test]
async fn the_client_address_is_the_proxys_view_not_the_clients_claim() {
    for (trusted, expected) in [(true, "198.51.100.7"), (false, "127.0.0.1")] {
        let app = spawn_app().await;
        let mut parts = app.parts.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let proxies = if trusted {
            vec!["127.0.0.1/32".parse().unwrap()]
        } else {
            vec![]
        };
        parts.web =
            llmtrack_shared::config::WebConfig::new(&format!("http://{addr}"), proxies).unwrap();
        let router = llmtrack::app(parts.clone());
        tokio::spawn(server::run(
            listener,
            router,
            Limits::default(),
            parts.web.trusted_proxies.clone(),
            std::future::pending(),
        ));
        let base = format!("http://{addr}");
        let http = reqwest::Client::new();
        let email = "ada@example.com";
        http.post(format!("{base}/v1/auth/email"))
            .header("x-forwarded-for", "6.6.6.6, 198.51.100.7")
            .json(&json!({"email": email}))
            .send()
            .await
            .unwrap();
        let code = code_in(&app.last_mail_to(email));
        let r = http
            .post(format!("{base}/v1/auth/verify"))
            .header("x-forwarded-for", "6.6.6.6, 198.51.100.7")
            .json(&json!({"email": email, "code": code}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let cookie = r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let ws = http
            .post(format!("{base}/v1/workspaces"))
            .header("cookie", &cookie)
            .header("origin", &base)
            .header("x-forwarded-for", "6.6.6.6, 198.51.100.7")
            .json(&json!({"name": "Proxied"}))
            .send()
            .await
            .unwrap();
        let ws: serde_json::Value = ws.json().await.unwrap();
        let audit: serde_json::Value = http
            .get(format!(
                "{base}/v1/workspaces/{}/audit",
                ws["id"].as_str().unwrap()
            ))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ips: Vec<&str> = audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["ip"].as_str())
            .collect();
        assert!(!ips.is_empty(), "{audit}");
        assert!(
            ips.iter().all(|ip| *ip == expected),
            "trusted {trusted}: {ips:?}"
        );
    }
}

/// `serve` refuses webhooks to its own machine unless started for development, and a delivery
/// that fails tells the client no more than that it failed.
#[tokio::test]
async fn local_webhooks_are_opt_in_and_failures_say_nothing_of_the_network() {
    let app = spawn_app().await;
    let mut parts = app.parts.clone();
    parts.allow_local_webhooks = false;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    parts.web = llmtrack_shared::config::WebConfig::new(&format!("http://{addr}"), vec![]).unwrap();
    let router = llmtrack::app(parts);
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let base = format!("http://{addr}");
    let mut owner = app.sign_in("owner@example.com").await;
    owner.base = base.clone();
    owner.origin = Some(base.clone());
    let (_, ws) = owner.post("/v1/workspaces", json!({"name": "Hooks"})).await;
    let rules = format!("/v1/workspaces/{}/alerts", ws["id"].as_str().unwrap());
    let condition = json!({"metric": "cost", "period": "day", "over_usd": 1});
    let (status, body) = owner
        .post(&rules, json!({"name": "local", "condition": condition, "webhook_url": "http://127.0.0.1:9/hook"}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("https"),
        "{body}"
    );
    // A public-looking host that does not resolve: the client hears only that it failed.
    let (status, rule) = owner
        .post(&rules, json!({"name": "nowhere", "condition": condition, "email": false, "webhook_url": "https://nowhere.invalid/hook"}))
        .await;
    assert_eq!(status, 201, "{rule}");
    let (status, sent) = owner
        .post(
            &format!("{rules}/{}/test", rule["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    let detail = sent["deliveries"][0]["detail"].as_str().unwrap();
    assert_eq!(detail, llmtrack_alerts::notify::UNREACHABLE, "{sent}");
}

/// The server's own log, as an operator sees it, holds no sign-in code.
#[tokio::test]
async fn the_server_log_holds_no_sign_in_code() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("server.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmtrack"))
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "debug")
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(
            std::fs::File::create(dir.path().join("server.err")).unwrap(),
        ))
        .spawn()
        .unwrap();
    ask_for_a_sign_in_code(port, "ada@example.com").await;
    let outbox = dir.path().join("data/outbox");
    let mail = std::fs::read_dir(&outbox)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let code = code_in(&std::fs::read_to_string(&mail).unwrap());
    // Sign in (logged as such) before reading the log.
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/auth/verify"))
        .json(&json!({"email": "ada@example.com", "code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    child.kill().ok();
    child.wait().ok();
    let text = std::fs::read_to_string(&log).unwrap()
        + &std::fs::read_to_string(dir.path().join("server.err")).unwrap();
    assert!(
        text.contains("email written to the outbox"),
        "the log was captured: {text}"
    );
    assert!(!text.contains(&code), "the code is in the log:\n{text}");
}

/// Kills a child process when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// With an SMTP server configured, a self-hosted server sends its mail there (a real one:
/// aiosmtpd, delivering into a Maildir), from the configured sender, and writes no outbox copy.
#[tokio::test]
async fn serve_sends_mail_through_the_configured_smtp_server() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("maildir");
    let smtp_port = free_port();
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python");
    let _smtp = Killed(
        Command::new(python)
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{smtp_port}"),
            ])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd from the test virtualenv (make installs it)"),
    );
    let mut listening = false;
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", smtp_port)).await.is_ok() {
            listening = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(listening, "aiosmtpd did not start");

    let port = free_port();
    let data = dir.path().join("data");
    let _server = Killed(
        Command::new(env!("CARGO_BIN_EXE_llmtrack"))
            .args([
                "serve",
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(&data)
            .env("LLMTRACK_SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}"))
            .env("LLMTRACK_MAIL_FROM", "LLMtrack <llmtrack@example.com>")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    ask_for_a_sign_in_code(port, "ada@example.com").await;

    let delivered = maildir.join("new");
    let mut mail = None;
    for _ in 0..200 {
        if let Some(Ok(entry)) = std::fs::read_dir(&delivered)
            .ok()
            .and_then(|mut d| d.next())
        {
            mail = Some(std::fs::read_to_string(entry.path()).unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mail = mail.expect("no mail reached the SMTP server");
    assert!(mail.contains("To: ada@example.com"), "{mail}");
    assert!(
        mail.contains("From: LLMtrack <llmtrack@example.com>"),
        "{mail}"
    );
    let subject = mail
        .lines()
        .find(|l| l.starts_with("Subject: "))
        .unwrap_or_default();
    assert!(
        subject.starts_with("Subject: Your LLMtrack sign-in code: ")
            && subject.trim_end().ends_with(|c: char| c.is_ascii_digit()),
        "{subject}"
    );
    let outbox = std::fs::read_dir(data.join("outbox")).map_or(0, |d| d.count());
    assert_eq!(outbox, 0, "mail sent by SMTP leaves no copy in the outbox");
}

#[test]
fn smtp_without_a_sender_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_llmtrack"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("LLMTRACK_SMTP_URL", "smtps://user:hunter2@mail.example.com")
        .env_remove("LLMTRACK_MAIL_FROM")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--mail-from (LLMTRACK_MAIL_FROM) is needed"),
        "{err}"
    );
    assert!(
        !err.contains("hunter2"),
        "the SMTP password is never printed"
    );
    // Nor does the help show it when it is set in the environment.
    let help = Command::new(env!("CARGO_BIN_EXE_llmtrack"))
        .args(["serve", "--help"])
        .env("LLMTRACK_SMTP_URL", "smtps://user:hunter2@mail.example.com")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--smtp-url"), "{help}");
    assert!(!help.contains("hunter2"), "{help}");
}

/// Waits for the `serve` process on `port`, then asks it to mail a sign-in code to `email`.
async fn ask_for_a_sign_in_code(port: u16, email: &str) {
    let base = format!("http://127.0.0.1:{port}");
    wait_for_health(&base, "serve").await;
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/auth/email"))
        .json(&json!({ "email": email }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}
