//! The OpenAPI document: every route documented, the document valid, examples that pass.

use serde_json::Value;

use crate::support::{TestApp, spawn_app};

/// Every route the app serves, by method and path. A route added without its OpenAPI annotation
/// (utoipa-axum registers both at once) would be missing from the document and fail here.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/events"),
    ("post", "/otlp/v1/traces"),
    ("post", "/v1/integrations/litellm"),
    ("get", "/v1/stats/summary"),
    ("get", "/v1/stats/timeseries"),
    ("get", "/v1/stats/breakdown"),
    ("get", "/v1/stats/users"),
    ("get", "/v1/stats/users/{user_id}"),
    ("get", "/v1/stats/forecast"),
    ("get", "/v1/stats/budgets"),
    ("get", "/v1/budgets/check"),
    ("get", "/v1/stats/reconciliation"),
    ("get", "/v1/events"),
    ("post", "/v1/exports"),
    ("get", "/v1/exports/{id}"),
    ("get", "/v1/openapi.json"),
    ("get", "/healthz"),
    ("get", "/v1/about"),
    ("post", "/v1/auth/email"),
    ("post", "/v1/auth/verify"),
    ("post", "/v1/auth/logout"),
    ("get", "/v1/me"),
    ("get", "/v1/workspaces"),
    ("post", "/v1/workspaces"),
    ("get", "/v1/workspaces/{id}"),
    ("patch", "/v1/workspaces/{id}"),
    ("get", "/v1/workspaces/{id}/usage"),
    ("get", "/v1/workspaces/{id}/members"),
    ("patch", "/v1/workspaces/{id}/members/{user_id}"),
    ("delete", "/v1/workspaces/{id}/members/{user_id}"),
    ("get", "/v1/workspaces/{id}/invitations"),
    ("post", "/v1/workspaces/{id}/invitations"),
    ("delete", "/v1/workspaces/{id}/invitations/{invitation_id}"),
    (
        "post",
        "/v1/workspaces/{id}/invitations/{invitation_id}/accept",
    ),
    ("get", "/v1/workspaces/{id}/audit"),
    ("get", "/v1/workspaces/{id}/keys"),
    ("post", "/v1/workspaces/{id}/keys"),
    ("delete", "/v1/workspaces/{id}/keys/{key_id}"),
    ("post", "/v1/workspaces/{id}/keys/{key_id}/deactivate"),
    ("post", "/v1/workspaces/{id}/keys/{key_id}/reactivate"),
    ("post", "/v1/workspaces/{id}/keys/{key_id}/rotate"),
    ("post", "/v1/workspaces/{id}/billing/checkout"),
    ("post", "/v1/workspaces/{id}/billing/portal"),
    ("post", "/v1/billing/webhook"),
    ("post", "/v1/workspaces/{id}/deletions"),
    ("get", "/v1/workspaces/{id}/deletions/{job}"),
    ("post", "/v1/workspaces/{id}/repricing"),
    ("get", "/v1/workspaces/{id}/repricing/{job}"),
    ("get", "/v1/account/deletion"),
    ("post", "/v1/account/deletion"),
    ("patch", "/v1/me"),
    ("get", "/v1/workspaces/{id}/reports"),
    ("get", "/v1/workspaces/{id}/reports/{month}"),
    ("get", "/v1/workspaces/{id}/reports/{month}/report.json"),
    ("get", "/v1/workspaces/{id}/alerts"),
    ("post", "/v1/workspaces/{id}/alerts"),
    ("get", "/v1/workspaces/{id}/alerts/{rule}"),
    ("patch", "/v1/workspaces/{id}/alerts/{rule}"),
    ("delete", "/v1/workspaces/{id}/alerts/{rule}"),
    ("get", "/v1/workspaces/{id}/alerts/{rule}/history"),
    ("post", "/v1/workspaces/{id}/alerts/{rule}/test"),
    ("get", "/v1/workspaces/{id}/connections"),
    ("post", "/v1/workspaces/{id}/connections"),
    ("delete", "/v1/workspaces/{id}/connections/{connection}"),
    ("post", "/v1/workspaces/{id}/connections/{connection}/test"),
    (
        "post",
        "/v1/workspaces/{id}/connections/{connection}/import",
    ),
    ("get", "/v1/workspaces/{id}/prices"),
    ("post", "/v1/workspaces/{id}/prices"),
    ("put", "/v1/workspaces/{id}/prices/{price}"),
    ("delete", "/v1/workspaces/{id}/prices/{price}"),
    ("get", "/v1/workspaces/{id}/budgets"),
    ("post", "/v1/workspaces/{id}/budgets"),
    ("put", "/v1/workspaces/{id}/budgets/{budget}"),
    ("delete", "/v1/workspaces/{id}/budgets/{budget}"),
    ("get", "/v1/workspaces/{id}/digest"),
    ("put", "/v1/workspaces/{id}/digest"),
    ("get", "/v1/workspaces/{id}/tags"),
    ("put", "/v1/workspaces/{id}/tags"),
    ("get", "/v1/archive/{key}"),
];

#[tokio::test]
async fn healthz_answers_200() {
    let app = spawn_app().await;
    let resp = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn openapi_document_lists_every_route_and_nothing_else() {
    let app = spawn_app().await;
    let doc = served_document(&app).await;
    assert_eq!(doc["openapi"].as_str().unwrap().get(..3), Some("3.1"));
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    documented.sort();
    let mut expected: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    expected.sort();
    assert_eq!(documented, expected);
    // Every documented route is served (401 without a key is still "served"; 404/405 is not).
    for (method, path) in &documented {
        let resp = app
            .http
            .request(method.to_uppercase().parse().unwrap(), app.url(path))
            .send()
            .await
            .unwrap();
        assert!(
            resp.status() != 404 && resp.status() != 405,
            "{method} {path} is documented but not served"
        );
    }
}

#[tokio::test]
async fn unknown_paths_answer_json_404() {
    let app = spawn_app().await;
    let resp = app.http.get(app.url("/v1/nope")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

/// The served document is valid OpenAPI 3.1, by a validator of its own (openapi-spec-validator,
/// installed into `.venv` by `make`), not by the code that wrote it.
#[tokio::test]
async fn openapi_document_passes_a_real_validator() {
    let app = spawn_app().await;
    let doc = app
        .http
        .get(app.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &doc).unwrap();
    let validator = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../.venv/bin/openapi-spec-validator"
    );
    let out = std::process::Command::new(validator)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("{validator}: {e} (run `make test`, which installs it)"));
    assert!(
        out.status.success(),
        "the OpenAPI document is not valid:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every code of `ErrorCode` is in the served document, with its meaning: the codes of error
/// responses as the values of `ErrorCode` (which `ErrorDetail.code` is), the codes of rejected
/// events as the values of `EventErrorCode` (which `Rejection.code` is). No code string is two
/// codes.
#[tokio::test]
async fn openapi_document_lists_every_error_code() {
    use llmtrack_shared::ErrorCode;
    let app = spawn_app().await;
    let doc = served_document(&app).await;
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["ErrorDetail"]["properties"]["code"]["$ref"],
        "#/components/schemas/ErrorCode"
    );
    assert_eq!(
        schemas["Rejection"]["properties"]["code"]["$ref"],
        "#/components/schemas/EventErrorCode"
    );
    let values = |schema: &str| -> (Vec<String>, String) {
        let s = &schemas[schema];
        let values = s["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{schema} is not an enum: {s}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        (
            values,
            s["description"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let (responses, response_doc) = values("ErrorCode");
    let (events, event_doc) = values("EventErrorCode");
    let mut unique = std::collections::BTreeSet::new();
    for code in ErrorCode::ALL {
        let s = code.as_str();
        assert!(unique.insert(s), "`{s}` names two codes");
        let (listed, doc) = if code.scope().in_response() {
            (&responses, &response_doc)
        } else {
            (&events, &event_doc)
        };
        assert!(
            listed.iter().any(|v| v == s),
            "`{s}` is not in the document"
        );
        assert!(
            doc.contains(&format!("`{s}`")) && doc.contains(code.doc()),
            "`{s}` is not explained in the document"
        );
        if code.scope().in_event() {
            assert!(events.iter().any(|v| v == s), "`{s}` is not an event code");
        }
    }
    let count = |v: &[String]| v.iter().collect::<std::collections::BTreeSet<_>>().len();
    assert_eq!(count(&responses), responses.len(), "{responses:?}");
    assert_eq!(count(&events), events.len(), "{events:?}");
    assert_eq!(
        responses.len() + events.len(),
        ErrorCode::ALL.len()
            + ErrorCode::ALL
                .iter()
                .filter(|c| c.scope().in_response() && c.scope().in_event())
                .count(),
        "the document lists a code the enum does not have"
    );
}

/// The document as `GET /v1/openapi.json` serves it, labelled as JSON: the one the handlers
/// describe (the docs function serves a committed copy of it).
async fn served_document(app: &TestApp) -> Value {
    let resp = app
        .http
        .get(app.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let doc: Value = resp.json().await.unwrap();
    assert!(
        doc == llmtrack::openapi::document(),
        "the served document is not the one the handlers describe"
    );
    doc
}
