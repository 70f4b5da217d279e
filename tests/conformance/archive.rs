//! The archive contract, run against the local folder adapter (a temp dir) and S3 (moto): every
//! `archive_suite!` test runs twice, `archive::folder::name` and `archive::s3::name`. Links differ
//! by nature (HMAC-signed URLs of `llmtrack serve` against presigned S3 URLs), so each adapter
//! also has its own link tests below.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use llmtrack_shared::adapters::archive_keys::content_disposition;
use llmtrack_shared::adapters::folder::{FolderArchive, download};
use llmtrack_shared::adapters::s3::S3Archive;
use llmtrack_shared::ports::{Archive, DynArchive};
use serde_json::Value;

use super::support::{s3_archive, s3_client};

const MIB: usize = 1024 * 1024;

/// Runs each listed test against both adapters.
macro_rules! archive_suite {
    ($($name:ident),* $(,)?) => {
        mod folder {
            $(
                #[tokio::test]
                async fn $name() {
                    let (archive, _dir) = super::folder_archive();
                    super::$name(std::sync::Arc::new(archive)).await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test]
                async fn $name() {
                    let archive = super::s3_archive().await;
                    super::$name(std::sync::Arc::new(archive)).await;
                }
            )*
        }
    };
}

archive_suite!(
    put_get_list_delete_round_trip,
    writer_over_two_parts_reads_back_byte_equal,
    small_and_empty_writers_make_whole_objects,
    abort_leaves_nothing,
    deleting_a_prefix_leaves_other_workspaces,
    bad_keys_are_refused,
);

fn folder_archive() -> (FolderArchive, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let archive =
        FolderArchive::open(&dir.path().join("archive"), "http://127.0.0.1:1").expect("open");
    (archive, dir)
}

/// Bytes that differ from one position to the next, so a misplaced part shows.
fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

async fn put_get_list_delete_round_trip(archive: DynArchive) {
    let objects = [
        (
            "ws_a/reports/2025-01.html",
            "text/html",
            b"<p>January</p>".to_vec(),
        ),
        (
            "ws_a/reports/2025-02.html",
            "text/html",
            b"<p>February</p>".to_vec(),
        ),
        (
            "ws_a/exports/events.csv",
            "text/csv",
            b"id,cost\n1,0.5\n".to_vec(),
        ),
    ];
    for (key, content_type, body) in &objects {
        archive.put(key, content_type, body.clone()).await.unwrap();
    }
    for (key, _, body) in &objects {
        assert_eq!(
            archive.get(key).await.unwrap().as_ref(),
            Some(body),
            "{key}"
        );
    }
    assert_eq!(
        archive.get("ws_a/reports/2025-03.html").await.unwrap(),
        None
    );
    // A folder is not an object.
    assert_eq!(archive.get("ws_a/reports").await.unwrap(), None);

    // Overwriting replaces the whole object.
    archive
        .put("ws_a/reports/2025-01.html", "text/html", b"v2".to_vec())
        .await
        .unwrap();
    assert_eq!(
        archive.get("ws_a/reports/2025-01.html").await.unwrap(),
        Some(b"v2".to_vec())
    );

    assert_eq!(
        archive.list("ws_a/").await.unwrap(),
        [
            "ws_a/exports/events.csv",
            "ws_a/reports/2025-01.html",
            "ws_a/reports/2025-02.html"
        ]
    );
    assert_eq!(
        archive.list("ws_a/reports/").await.unwrap(),
        ["ws_a/reports/2025-01.html", "ws_a/reports/2025-02.html"]
    );
    // A prefix may end inside a name, as on S3.
    assert_eq!(
        archive.list("ws_a/rep").await.unwrap(),
        ["ws_a/reports/2025-01.html", "ws_a/reports/2025-02.html"]
    );
    assert_eq!(
        archive.list("ws_a/reports/2025-0").await.unwrap(),
        ["ws_a/reports/2025-01.html", "ws_a/reports/2025-02.html"]
    );
    assert!(archive.list("ws_z/").await.unwrap().is_empty());

    assert_eq!(archive.delete_prefix("ws_a/reports/").await.unwrap(), 2);
    assert_eq!(
        archive.get("ws_a/reports/2025-02.html").await.unwrap(),
        None
    );
    assert_eq!(
        archive.list("ws_a/").await.unwrap(),
        ["ws_a/exports/events.csv"]
    );
    assert_eq!(archive.delete_prefix("ws_a/").await.unwrap(), 1);
    assert!(archive.list("ws_a/").await.unwrap().is_empty());
    // Deleting nothing is not an error.
    assert_eq!(archive.delete_prefix("ws_a/").await.unwrap(), 0);
}

async fn writer_over_two_parts_reads_back_byte_equal(archive: DynArchive) {
    // 17 MiB: two full 8 MiB parts and a 1 MiB last one on S3.
    let body = data(17 * MIB);
    let key = "ws_a/exports/big.jsonl";
    let mut writer = archive.writer(key, "application/x-ndjson").await.unwrap();
    // Odd-sized chunks, so parts are cut across chunk boundaries.
    for chunk in body.chunks(3 * MIB + 7) {
        writer.write(chunk).await.unwrap();
    }
    // Nothing is visible before finish.
    assert_eq!(archive.get(key).await.unwrap(), None);
    assert_eq!(writer.finish().await.unwrap(), body.len() as u64);

    let read = archive
        .get(key)
        .await
        .unwrap()
        .expect("object after finish");
    assert_eq!(read.len(), body.len());
    assert!(
        read == body,
        "the object read back differs from what was written"
    );
    assert_eq!(archive.list("ws_a/").await.unwrap(), [key]);
}

async fn small_and_empty_writers_make_whole_objects(archive: DynArchive) {
    let mut writer = archive.writer("ws_a/small.csv", "text/csv").await.unwrap();
    writer.write(b"a,b\n").await.unwrap();
    writer.write(b"1,2\n").await.unwrap();
    assert_eq!(writer.finish().await.unwrap(), 8);
    assert_eq!(
        archive.get("ws_a/small.csv").await.unwrap(),
        Some(b"a,b\n1,2\n".to_vec())
    );

    let writer = archive.writer("ws_a/empty.csv", "text/csv").await.unwrap();
    assert_eq!(writer.finish().await.unwrap(), 0);
    assert_eq!(
        archive.get("ws_a/empty.csv").await.unwrap(),
        Some(Vec::new())
    );
}

async fn abort_leaves_nothing(archive: DynArchive) {
    // More than one part, so S3 has a multipart upload under way when it is aborted.
    let mut writer = archive
        .writer("ws_a/exports/x.csv", "text/csv")
        .await
        .unwrap();
    writer.write(&data(9 * MIB)).await.unwrap();
    writer.abort().await.unwrap();
    assert_eq!(archive.get("ws_a/exports/x.csv").await.unwrap(), None);
    assert!(archive.list("ws_a/").await.unwrap().is_empty());

    // An abort does not touch an object already there under the same key.
    archive
        .put("ws_a/exports/x.csv", "text/csv", b"kept".to_vec())
        .await
        .unwrap();
    let mut writer = archive
        .writer("ws_a/exports/x.csv", "text/csv")
        .await
        .unwrap();
    writer.write(b"replacement").await.unwrap();
    writer.abort().await.unwrap();
    assert_eq!(
        archive.get("ws_a/exports/x.csv").await.unwrap(),
        Some(b"kept".to_vec())
    );
}

async fn deleting_a_prefix_leaves_other_workspaces(archive: DynArchive) {
    for key in [
        "ws_a/reports/r.html",
        "ws_a/exports/e.csv",
        "ws_b/reports/r.html",
        // Shares the text `ws_a` but is another workspace: the trailing `/` keeps it apart.
        "ws_ab/reports/r.html",
    ] {
        archive.put(key, "text/plain", key.into()).await.unwrap();
    }
    assert_eq!(archive.delete_prefix("ws_a/").await.unwrap(), 2);
    assert!(archive.list("ws_a/").await.unwrap().is_empty());
    assert_eq!(
        archive.list("ws_").await.unwrap(),
        ["ws_ab/reports/r.html", "ws_b/reports/r.html"]
    );
    assert_eq!(
        archive.get("ws_b/reports/r.html").await.unwrap(),
        Some(b"ws_b/reports/r.html".to_vec())
    );
}

async fn bad_keys_are_refused(archive: DynArchive) {
    for key in [
        "",
        "/etc/passwd",
        "../outside",
        "ws_a/../../outside",
        "ws_a//x",
        "ws_a/",
        "ws_a\\x",
        ".link-secret",
        "ws_a/.hidden",
    ] {
        assert!(
            archive.put(key, "text/plain", b"x".to_vec()).await.is_err(),
            "put {key:?}"
        );
        assert!(
            archive.writer(key, "text/plain").await.is_err(),
            "writer {key:?}"
        );
        assert!(archive.get(key).await.is_err(), "get {key:?}");
        assert!(
            archive
                .link(key, "x.txt", Duration::from_secs(60))
                .await
                .is_err(),
            "link {key:?}"
        );
    }
    for prefix in ["../", "/", "ws_a//", "ws_a/.."] {
        assert!(archive.list(prefix).await.is_err(), "list {prefix:?}");
        assert!(
            archive.delete_prefix(prefix).await.is_err(),
            "delete {prefix:?}"
        );
    }
    // The empty prefix lists everything but never deletes everything.
    archive
        .put("ws_a/x", "text/plain", b"x".to_vec())
        .await
        .unwrap();
    assert_eq!(archive.list("").await.unwrap(), ["ws_a/x"]);
    assert!(archive.delete_prefix("").await.is_err());
    assert_eq!(archive.list("").await.unwrap(), ["ws_a/x"]);
}

// ---- the folder adapter's own links ----

struct LinkParts {
    path: String,
    expires: i64,
    filename: String,
    signature: String,
}

fn parse_link(link: &str) -> LinkParts {
    let url = reqwest::Url::parse(link).expect("link is a URL");
    let query = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("link {link} has no {name}"))
    };
    LinkParts {
        path: url.path().to_owned(),
        expires: query("expires").parse().expect("expires is a number"),
        filename: query("filename"),
        signature: query("signature"),
    }
}

#[tokio::test]
async fn folder_links_verify_only_untampered_and_unexpired() {
    let (archive, dir) = folder_archive();
    let key = "ws_a/exports/events.csv";
    archive.put(key, "text/csv", b"x".to_vec()).await.unwrap();
    let before = chrono::Utc::now().timestamp();
    let link = archive
        .link(key, "events 2025.csv", Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(
        link.starts_with("http://127.0.0.1:1/v1/archive/ws_a/exports/events.csv?"),
        "{link}"
    );
    let p = parse_link(&link);
    assert_eq!(p.path, "/v1/archive/ws_a/exports/events.csv");
    assert_eq!(p.filename, "events 2025.csv");
    assert!(
        (before + 3600..=before + 3602).contains(&p.expires),
        "{}",
        p.expires
    );
    let now = chrono::Utc::now().timestamp();

    assert!(archive.verify(key, p.expires, &p.filename, &p.signature, now));
    assert!(
        !archive.verify(key, p.expires, &p.filename, &p.signature, p.expires),
        "expired"
    );
    assert!(!archive.verify(
        key,
        p.expires,
        &p.filename,
        &p.signature,
        p.expires + 86_400
    ));
    assert!(
        !archive.verify(
            "ws_b/exports/events.csv",
            p.expires,
            &p.filename,
            &p.signature,
            now
        ),
        "other key"
    );
    assert!(
        !archive.verify(key, p.expires, "other.csv", &p.signature, now),
        "other filename"
    );
    assert!(
        !archive.verify(key, p.expires + 86_400, &p.filename, &p.signature, now),
        "extended"
    );
    let mut flipped = p.signature.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    assert!(
        !archive.verify(key, p.expires, &p.filename, &flipped, now),
        "tampered signature"
    );
    assert!(!archive.verify(key, p.expires, &p.filename, "", now));
    assert!(!archive.verify(key, p.expires, &p.filename, "not hex", now));

    // The secret lives on disk: a restarted server accepts its earlier links ...
    let reopened = FolderArchive::open(&dir.path().join("archive"), "http://127.0.0.1:1").unwrap();
    assert!(reopened.verify(key, p.expires, &p.filename, &p.signature, now));
    // ... and another installation does not.
    let (other, _other_dir) = folder_archive();
    assert!(!other.verify(key, p.expires, &p.filename, &p.signature, now));

    // The secret is readable by its owner only, and never listed as an object.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("archive/.link-secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(archive.list("").await.unwrap(), [key]);
}

#[tokio::test]
async fn folder_download_serves_signed_links_only() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let archive = Arc::new(
        FolderArchive::open(&dir.path().join("archive"), &format!("http://{addr}/")).unwrap(),
    );
    let app = Router::new()
        .route("/v1/archive/{*key}", get(download))
        .with_state(archive.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    let http = reqwest::Client::new();

    // A space in the key and a non-ASCII file name survive the trip through the URL.
    let key = "ws_a/exports/usage 2025.csv";
    let body = b"id,cost\n1,0.5\n".to_vec();
    archive.put(key, "text/csv", body.clone()).await.unwrap();
    let filename = "usage \"é\".csv";
    let link = archive
        .link(key, filename, Duration::from_secs(600))
        .await
        .unwrap();
    assert!(
        link.starts_with(&format!("http://{addr}/v1/archive/")),
        "{link}"
    );

    let resp = http.get(&link).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(header("content-type").as_deref(), Some("text/csv"));
    assert_eq!(
        header("content-disposition"),
        Some(content_disposition(filename))
    );
    assert!(
        header("content-disposition")
            .unwrap()
            .starts_with("attachment; filename=\"usage _")
    );
    assert_eq!(resp.bytes().await.unwrap().to_vec(), body);

    // Larger than one read chunk, and typed by its extension.
    let big = data(MIB + 13);
    archive
        .put(
            "ws_a/exports/big.jsonl",
            "application/x-ndjson",
            big.clone(),
        )
        .await
        .unwrap();
    let link_big = archive
        .link(
            "ws_a/exports/big.jsonl",
            "big.jsonl",
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    let resp = http.get(&link_big).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    assert!(resp.bytes().await.unwrap().to_vec() == big);

    let refused = |url: String| {
        let http = http.clone();
        async move {
            let resp = http.get(url).send().await.unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            (
                status,
                body["error"]["code"].as_str().unwrap_or("").to_owned(),
            )
        }
    };
    let expired = archive.link(key, filename, Duration::ZERO).await.unwrap();
    assert_eq!(refused(expired).await, (403, "link_expired".to_owned()));
    assert_eq!(
        refused(link.replace("usage%202025", "usage%202026")).await,
        (403, "bad_signature".to_owned()),
        "another key"
    );
    assert_eq!(
        refused(link.replace("filename=usage", "filename=osage")).await,
        (403, "bad_signature".to_owned()),
        "another file name"
    );
    let p = parse_link(&link);
    assert_eq!(
        refused(link.replace(
            &format!("expires={}", p.expires),
            &format!("expires={}", p.expires + 1)
        ))
        .await,
        (403, "bad_signature".to_owned()),
        "a longer life"
    );
    assert_eq!(
        refused(format!(
            "http://{addr}/v1/archive/ws_a/exports/usage%202025.csv"
        ))
        .await,
        (403, "bad_signature".to_owned()),
        "no signature at all"
    );

    // Once deleted, a still-valid link finds nothing.
    archive.delete_prefix("ws_a/").await.unwrap();
    assert_eq!(refused(link).await, (404, "not_found".to_owned()));
}

#[tokio::test]
async fn folder_abort_and_drop_leave_no_temporary_files() {
    let (archive, dir) = folder_archive();
    let mut writer = archive
        .writer("ws_a/exports/a.csv", "text/csv")
        .await
        .unwrap();
    writer.write(b"partial").await.unwrap();
    writer.abort().await.unwrap();
    let mut writer = archive
        .writer("ws_a/exports/b.csv", "text/csv")
        .await
        .unwrap();
    writer.write(b"partial").await.unwrap();
    drop(writer);
    // A write that fails at the rename (the key is taken by a folder) cleans up too.
    archive
        .put("ws_a/c/d.csv", "text/csv", b"x".to_vec())
        .await
        .unwrap();
    assert!(
        archive
            .put("ws_a/c", "text/csv", b"x".to_vec())
            .await
            .is_err()
    );
    archive.delete_prefix("ws_a/").await.unwrap();

    // Only the link secret is left, not even the emptied workspace folder.
    let mut left = Vec::new();
    let mut pending = vec![dir.path().join("archive")];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(d).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            }
            left.push(entry.path().strip_prefix(dir.path()).unwrap().to_owned());
        }
    }
    assert_eq!(left, [std::path::PathBuf::from("archive/.link-secret")]);
}

// ---- S3's own links and uploads ----

#[tokio::test]
async fn s3_presigned_link_downloads_with_the_file_name() {
    let archive = s3_archive().await;
    let key = "ws_a/reports/2025-01.html";
    let body = b"<h1>January</h1>".to_vec();
    archive
        .put(key, "text/html; charset=utf-8", body.clone())
        .await
        .unwrap();
    let filename = "LLMtrack report 2025-01.html";
    let link = archive
        .link(key, filename, Duration::from_secs(600))
        .await
        .unwrap();
    assert!(link.contains("X-Amz-Signature="), "{link}");

    let resp = reqwest::get(&link).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-disposition"].to_str().unwrap(),
        content_disposition(filename)
    );
    assert_eq!(resp.bytes().await.unwrap().to_vec(), body);

    // S3 caps presigned links at 7 days: a longer one is refused, not silently shortened.
    assert!(
        archive
            .link(key, filename, Duration::from_secs(8 * 86_400))
            .await
            .is_err()
    );
}

async fn pending_uploads(archive: &S3Archive) -> usize {
    s3_client()
        .list_multipart_uploads()
        .bucket(archive.bucket())
        .send()
        .await
        .unwrap()
        .uploads()
        .len()
}

#[tokio::test]
async fn s3_abort_and_drop_leave_no_upload_behind() {
    let archive = s3_archive().await;
    let mut writer = archive
        .writer("ws_a/exports/a.csv", "text/csv")
        .await
        .unwrap();
    writer.write(&data(9 * MIB)).await.unwrap();
    assert_eq!(pending_uploads(&archive).await, 1, "one part was uploaded");
    writer.abort().await.unwrap();
    assert_eq!(pending_uploads(&archive).await, 0);

    // A writer dropped half-way aborts its upload in the background.
    let mut writer = archive
        .writer("ws_a/exports/b.csv", "text/csv")
        .await
        .unwrap();
    writer.write(&data(9 * MIB)).await.unwrap();
    drop(writer);
    let mut left = usize::MAX;
    for _ in 0..50 {
        left = pending_uploads(&archive).await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "the dropped writer's upload is still pending");
    assert!(archive.list("ws_a/").await.unwrap().is_empty());
}
