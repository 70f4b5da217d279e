//! Ports: the traits the functions depend on, one per role. Adapters live in `adapters/`.
//!
//! Storage is split by what a caller does with it (keys, ingest, reads, members, billing...):
//! each function's state holds only the ports it uses, so the ingest function cannot save a
//! billing record or purge a workspace. Both stores (SQLite, DynamoDB) implement every port,
//! and the conformance suite (`tests/conformance`) holds them to one contract per port.
//! [`Store`] is every storage port at once: what the composition roots (`llmtrack serve`, each
//! Lambda's `main`) open and hand out, narrowed, to the functions.

use std::sync::Arc;

mod accounts;
mod alerts;
mod archive;
mod audit;
mod billing;
mod clock;
mod connections;
mod deletion;
mod events;
mod ingest;
mod jobs;
mod keys;
mod mail;
mod members;
mod payments;
mod provider_api;
mod repricing;
mod retention;
mod vault;
mod workspaces;

pub use accounts::Accounts;
pub use alerts::AlertRules;
pub use archive::{Archive, ArchiveWriter, DynArchive};
pub use audit::AuditLog;
pub use billing::{BillingRecords, BillingSave};
pub use clock::{Clock, DynClock, SystemClock};
pub use connections::{Connections, MAX_CONNECTIONS};
pub use deletion::{Erasure, Purged};
pub use events::Events;
pub use ingest::{Ingest, IngestOutcome, Quota, Stored};
pub use jobs::{Job, JobState, Jobs, unfinished_jobs_of};
pub use keys::Keys;
pub use mail::{DynMailer, Mail, Mailer};
pub use members::Members;
pub use payments::{Checkout, DynPayments, Payments};
pub use provider_api::{DynProviderApi, ProviderApi, ProviderError};
pub use repricing::Repricing;
pub use retention::{Retained, Retention};
pub use vault::{DynVault, Vault};
pub use workspaces::{DigestSubscribers, Workspace, Workspaces, all_workspace_ids};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Conflict(String),
    /// A plan limit or an invariant would be broken; nothing was changed.
    #[error("{0}")]
    Refused(Refusal),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why the store refused a change that would break a rule it enforces atomically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the plan's limit of active keys is reached")]
    KeyLimit,
    #[error("the plan's limit of members is reached")]
    MemberLimit,
    #[error("a workspace must keep at least one owner")]
    LastOwner,
    #[error("the workspace is being deleted")]
    Deleting,
    #[error("the plan's limit of alert rules is reached")]
    AlertRuleLimit,
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Every storage port: what an adapter implements and a composition root hands out.
pub trait Store:
    Workspaces
    + Keys
    + Ingest
    + Events
    + Jobs
    + Accounts
    + Members
    + BillingRecords
    + Erasure
    + Repricing
    + Retention
    + AlertRules
    + AuditLog
    + Connections
{
}

impl<
    T: Workspaces
        + Keys
        + Ingest
        + Events
        + Jobs
        + Accounts
        + Members
        + BillingRecords
        + Erasure
        + Repricing
        + Retention
        + AlertRules
        + AuditLog
        + Connections,
> Store for T
{
}

pub type DynStore = Arc<dyn Store>;

/// Every storage port's methods in scope at once (`use llmtrack_shared::ports::prelude::*`),
/// for code that calls them on a whole [`Store`]: the composition roots and the tests.
pub mod prelude {
    pub use super::{
        Accounts as _, AlertRules as _, AuditLog as _, BillingRecords as _, Connections as _,
        Erasure as _, Events as _, Ingest as _, Jobs as _, Keys as _, Members as _, Repricing as _,
        Retention as _, Workspaces as _,
    };
}

/// Declares the storage ports a function uses, as one struct of narrowed handles built from a
/// whole store: `store_ports! { pub struct IngestPorts { keys: Keys, ingest: Ingest } }`. A
/// function's state holds that struct, so it can reach only what it declared.
#[macro_export]
macro_rules! store_ports {
    ($(#[$meta:meta])* $vis:vis struct $name:ident { $($field:ident: $port:ident),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone)]
        $vis struct $name {
            $(pub $field: ::std::sync::Arc<dyn $crate::ports::$port>,)*
        }

        impl $name {
            /// The ports of a whole store.
            pub fn of(store: &$crate::ports::DynStore) -> $name {
                $name { $($field: store.clone(),)* }
            }
        }
    };
}
