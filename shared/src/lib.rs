//! LLMtrack's shared library: the pure domain (validation, pricing, rollups, plans), the ports
//! (traits for storage and the clock) and their adapters (SQLite locally, DynamoDB on AWS), plus
//! the HTTP pieces every function uses (errors, API-key auth, config).
//!
//! The domain does no I/O; adapters are behind cargo features so a Lambda links only what it needs.

pub mod adapters;
pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod extract;
pub mod http;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod openapi;
pub mod ports;
pub mod ratelimit;
pub mod retention_job;
pub mod telemetry;
pub mod usecases;

pub use error::{ApiError, ErrorCode};
