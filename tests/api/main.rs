//! Black-box HTTP tests: the real app on a random port over its own SQLite store.

#[path = "../support/mod.rs"]
mod support;

mod account;
mod analytics;
mod auth;
mod crash;
mod docs;
mod ingest;
mod permissions;
mod queries;
mod quota;
mod secrets;
mod summary;
