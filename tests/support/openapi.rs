//! Every response the API tests receive is checked against the OpenAPI document: the operation
//! must document the status, and a JSON body must match the documented schema. So the document
//! cannot say one thing while the API answers another.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};

struct Document {
    doc: Value,
    /// Path templates, split into segments (`{…}` matches any one segment).
    paths: Vec<(String, Vec<String>)>,
    validators: Mutex<HashMap<String, std::sync::Arc<jsonschema::Validator>>>,
}

fn document() -> &'static Document {
    static DOC: OnceLock<Document> = OnceLock::new();
    DOC.get_or_init(|| {
        let doc = llmtrack::openapi::document();
        let paths = doc["paths"]
            .as_object()
            .expect("paths")
            .keys()
            .map(|p| (p.clone(), p.split('/').map(str::to_owned).collect()))
            .collect();
        Document {
            doc,
            paths,
            validators: Mutex::default(),
        }
    })
}

/// The documented template of a concrete path: the one with the most literal segments.
fn template(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.split('/').collect();
    document()
        .paths
        .iter()
        .filter(|(_, t)| {
            t.len() == segments.len()
                && t.iter()
                    .zip(&segments)
                    .all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()))
        })
        .max_by_key(|(_, t)| t.iter().filter(|s| !s.starts_with('{')).count())
        .map(|(p, _)| p.as_str())
}

/// Panics unless the response is what the document says `method path` answers with `status`.
pub fn check(method: &str, path: &str, status: u16, content_type: Option<&str>, body: &Value) {
    let path = path.split('?').next().unwrap_or(path);
    let Some(t) = template(path) else {
        // Not an API path (the dashboard, a 404 for an unknown route).
        return;
    };
    let d = document();
    let method = method.to_lowercase();
    let Some(op) = d.doc["paths"][t].get(&method) else {
        assert!(
            status == 405 || status == 404,
            "{method} {t} is not documented but answered {status}"
        );
        return;
    };
    let Some(response) = op["responses"].get(status.to_string()) else {
        panic!(
            "{} {t} answered {status}, which its OpenAPI operation does not document: {body}",
            method.to_uppercase()
        );
    };
    let json = content_type.is_some_and(|c| c.starts_with("application/json"));
    if !json {
        return;
    }
    let Some(schema) = response["content"]["application/json"].get("schema") else {
        return;
    };
    let key = format!("{method} {t} {status}");
    let validator = {
        let mut cache = d.validators.lock().unwrap();
        cache
            .entry(key.clone())
            .or_insert_with(|| {
                // The response's schema, with the document's components beside it, so its
                // `#/components/schemas/…` references resolve.
                let root = json!({
                    "allOf": [schema],
                    "components": d.doc["components"],
                });
                std::sync::Arc::new(
                    jsonschema::options()
                        .with_draft(jsonschema::Draft::Draft202012)
                        .build(&root)
                        .unwrap_or_else(|e| panic!("the schema of {key} does not compile: {e}")),
                )
            })
            .clone()
    };
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("at {}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{key}: the body does not match the OpenAPI document:\n  {}\nbody: {body}",
        errors.join("\n  ")
    );
}
