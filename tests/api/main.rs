//! Black-box HTTP tests: the real app on a random port over its own SQLite store.

#![recursion_limit = "256"]

#[path = "../support/mod.rs"]
mod support;

mod account;
mod alerts;
mod analytics;
mod anomalies;
mod auth;
mod billing;
mod budgets;
mod cli;
mod crash;
mod deletion;
mod digest;
mod docs;
mod fake_providers;
mod fake_stripe;
mod fan_out;
mod ingest;
mod litellm;
mod otlp;
mod permissions;
mod prices;
mod provider_apis;
mod queries;
mod quota;
mod reconciliation;
mod reports;
mod repricing;
mod secrets;
mod server;
mod slack;
mod summary;
mod tags;
