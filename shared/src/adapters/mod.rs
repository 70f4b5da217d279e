//! Storage adapters. Each is a cargo feature so a binary links only what it uses.

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "outbox")]
pub mod outbox;
#[cfg(feature = "ses")]
pub mod ses;
#[cfg(feature = "sqlite")]
pub mod sqlite;
