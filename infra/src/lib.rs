//! The local all-in-one LLMtrack: every function's router on one server over the SQLite store, and
//! the operator commands (`admin`). What runs here is what runs on Lambda: the same routers.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Json;
use axum::http::StatusCode;
use llmtrack_ingest::IngestState;
use llmtrack_query::QueryState;
use llmtrack_shared::adapters::sqlite::SqliteStore;
use llmtrack_shared::domain::pricing::PriceTable;
use llmtrack_shared::ports::{DynClock, DynStore, SystemClock};

pub mod admin;

/// Every function's routes on one router.
pub fn app(store: DynStore, clock: DynClock) -> axum::Router {
    let (ingest, _) = llmtrack_ingest::router(IngestState {
        store: store.clone(),
        clock: clock.clone(),
        prices: PriceTable::bundled(),
    })
    .split_for_parts();
    let (query, _) = llmtrack_query::router(QueryState { store, clock }).split_for_parts();
    ingest
        .merge(query)
        .merge(llmtrack_query::openapi_route())
        .fallback(not_found)
}

async fn not_found() -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::NOT_FOUND,
        Json(
            serde_json::json!({"error": {"code": "not_found", "message": "no such endpoint; see /v1/openapi.json"}}),
        ),
    )
}

/// Opens (or creates) the store inside a data directory.
pub fn open_store(data_dir: &Path) -> anyhow::Result<SqliteStore> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    SqliteStore::open(&data_dir.join("llmtrack.sqlite3"))
}

/// `llmtrack serve`: runs until Ctrl-C or SIGTERM.
pub async fn serve(addr: SocketAddr, data_dir: &Path) -> anyhow::Result<()> {
    let store = open_store(data_dir)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(%addr, data_dir = %data_dir.display(), "llmtrack serving on http://{addr}");
    axum::serve(listener, app(Arc::new(store), Arc::new(SystemClock)))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("server failed")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
