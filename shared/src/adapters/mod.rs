//! Storage adapters. Each is a cargo feature so a binary links only what it uses.

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "sqlite")]
pub mod sqlite;
