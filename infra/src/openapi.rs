//! The whole API's OpenAPI document, assembled from every function's handler annotations
//! (utoipa). It is assembled here, in the one crate that links every function, and committed as
//! `docs/openapi.json`, which the docs Lambda serves as is: so that Lambda needs no other
//! function's code, and the test below keeps the file from drifting from the handlers.

/// The document as served at `GET /v1/openapi.json`.
pub fn document() -> serde_json::Value {
    llmtrack_shared::openapi::served(llmtrack_shared::openapi::document([
        llmtrack_ingest::openapi(),
        llmtrack_query::openapi(),
        llmtrack_account::openapi(),
        llmtrack_keys::openapi(),
        llmtrack_billing::openapi(),
        llmtrack_deletion::openapi(),
        llmtrack_reports::openapi(),
        llmtrack_alerts::openapi(),
        llmtrack_reconciliation::openapi(),
        llmtrack_docs::openapi(),
    ]))
}

/// `docs/openapi.json` as it should be committed: the document, pretty-printed, with a final
/// newline.
pub fn document_file() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/openapi.json, which the docs Lambda serves, is the document the handlers' annotations
    /// give, so the served document cannot drift from the routes. `LLMTRACK_WRITE_DOCS=1`
    /// rewrites it.
    #[test]
    fn the_served_document_is_what_the_handlers_describe() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
        let written = std::fs::read_to_string(path).unwrap_or_default();
        let expected = document_file();
        if written != expected {
            if std::env::var_os("LLMTRACK_WRITE_DOCS").is_some() {
                std::fs::write(path, expected).expect("writing docs/openapi.json");
            } else {
                panic!(
                    "docs/openapi.json is not the document the handlers describe; rerun with LLMTRACK_WRITE_DOCS=1 to rewrite it: LLMTRACK_WRITE_DOCS=1 cargo test -p llmtrack --lib openapi"
                );
            }
        }
    }
}
