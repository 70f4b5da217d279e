//! What each item kind carries besides its key: one struct per kind, whose field names are the
//! stored attribute names, turned into and read from items by `serde_dynamo`. Tables already
//! deployed hold these attributes with these types (strings S, numbers N, rollup and delta data B,
//! pending writers SS, a marker's hours NS, the opt-out BOOL), so a change here is a migration.
//! Bodies stored as JSON (`d` of events, jobs, rules, billing records) go through `json`.

use std::borrow::Cow;

use anyhow::Context as _;
use aws_sdk_dynamodb::types::AttributeValue as Av;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::Item;
use super::schema::Key;
use crate::domain::access::Role;
use crate::domain::account::{Email, Invitation, Membership, Session, User};
use crate::domain::alert::{AlertEvent, AlertRule};
use crate::domain::apikey::{ApiKey, KeyHash, KeyState, Scope};
use crate::domain::audit::AuditEntry;
use crate::domain::billing::Billing;
use crate::domain::event::Event;
use crate::domain::ids::{InvitationId, KeyId, UserId, WorkspaceId};
use crate::domain::plan::Plan;
use crate::ports::{Job, Workspace};

/// The item at `key` carrying `attrs`.
pub(super) fn item<T: Serialize>(key: Key, attrs: &T) -> anyhow::Result<Item> {
    let mut item: Item =
        serde_dynamo::to_item(attrs).with_context(|| format!("encoding a {} item", kind::<T>()))?;
    item.insert("pk".to_owned(), Av::S(key.0));
    item.insert("sk".to_owned(), Av::S(key.1));
    Ok(item)
}

/// An item's attributes as `T` (its key is left out: `T` has no `pk` or `sk`).
pub(super) fn read<T: DeserializeOwned>(item: Item) -> anyhow::Result<T> {
    serde_dynamo::from_item(item).with_context(|| format!("decoding a {} item", kind::<T>()))
}

/// `read` of a borrowed item.
pub(super) fn read_ref<T: DeserializeOwned>(item: &Item) -> anyhow::Result<T> {
    read(item.clone())
}

/// An item's key.
pub(super) fn key_of(item: &Item) -> anyhow::Result<Key> {
    Ok((key_attribute(item, "pk")?, sort_key_of(item)?))
}

/// An item's sort key (all a query projected to `sk` returns).
pub(super) fn sort_key_of(item: &Item) -> anyhow::Result<String> {
    key_attribute(item, "sk")
}

fn key_attribute(item: &Item, name: &str) -> anyhow::Result<String> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("item lacks its {name}"))
}

fn kind<T>() -> &'static str {
    let name = std::any::type_name::<T>();
    name.rsplit("::").next().unwrap_or(name)
}

/// TTL attribute values are epoch seconds.
pub(super) fn ttl(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

/// A field stored as its JSON text (an S attribute).
mod json {
    use serde::de::{DeserializeOwned, Error as _};
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&serde_json::to_string(value).map_err(S::Error::custom)?)
    }

    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        serde_json::from_str(&String::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// An item whose whole body is one JSON document (`d`): provider connections, billed days.
#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "T: Serialize",
    deserialize = "T: serde::de::DeserializeOwned"
))]
pub(super) struct JsonItem<T> {
    #[serde(with = "json")]
    pub d: T,
}

/// An item with nothing but its key (index and queue entries).
#[derive(Serialize)]
pub(super) struct Bare {}

/// An item that carries only its expiry (a session's listing under its user, a Stripe event).
#[derive(Serialize)]
pub(super) struct Expiring {
    pub expires_at: i64,
}

/// An item that points at a workspace (customer lookup, due index entry).
#[derive(Serialize, Deserialize)]
pub(super) struct WorkspaceRef {
    pub ws: WorkspaceId,
}

#[derive(Serialize, Deserialize)]
pub(super) struct WorkspaceItem<'a> {
    name: Cow<'a, str>,
    plan: Plan,
    #[serde(default = "utc")]
    tz: Cow<'a, str>,
    created: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deleting: Option<String>,
    // Counters behind the limits enforced atomically (active keys, members, owners).
    #[serde(default)]
    keys: i64,
    #[serde(default)]
    members: i64,
    #[serde(default)]
    owners: i64,
    /// The price rules as JSON (`WorkspacePrices`), read with the workspace by every ingest;
    /// `pv` is their version, which each change is conditioned on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prices: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pv: u64,
    /// The budgets as JSON (`WorkspaceBudgets`); `bv` is their version, as `pv` is the prices'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    budgets: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    bv: u64,
    /// The digest's subscribers as JSON (`DigestSubscribers`); `dv` is their version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    dv: u64,
    /// The tag keys as JSON (`TagKeys`), read with the workspace by every ingest; `tv` is
    /// their version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tags: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    tv: u64,
    /// Which span attributes name feature and user, as JSON (`SpanLabels`); absent: defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spans: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn utc() -> Cow<'static, str> {
    Cow::Borrowed("UTC")
}

impl<'a> WorkspaceItem<'a> {
    /// A new workspace, its counters at 0.
    pub fn new(ws: &'a Workspace) -> WorkspaceItem<'a> {
        WorkspaceItem {
            name: Cow::Borrowed(&ws.name),
            plan: ws.plan,
            tz: Cow::Borrowed(&ws.timezone),
            created: ws.created_ms,
            deleting: None,
            keys: 0,
            members: 0,
            owners: 0,
            prices: None,
            pv: 0,
            budgets: None,
            bv: 0,
            digest: None,
            dv: 0,
            tags: None,
            tv: 0,
            spans: None,
        }
    }

    pub fn into_workspace(self, id: &WorkspaceId) -> Workspace {
        Workspace {
            id: id.clone(),
            name: self.name.into_owned(),
            plan: self.plan,
            timezone: self.tz.into_owned(),
            created_ms: self.created,
            deleting: self.deleting,
            // Written only by `set_prices` from a valid value; an unreadable one prices nothing
            // rather than refusing every event of the workspace.
            prices: self
                .prices
                .and_then(|p| serde_json::from_str(&p).ok())
                .unwrap_or_default(),
            // Written only by `set_budgets` from a valid value; an unreadable one is read as no
            // budgets rather than making the workspace unreadable.
            budgets: self
                .budgets
                .and_then(|b| serde_json::from_str(&b).ok())
                .unwrap_or_default(),
            spans: self
                .spans
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_default(),
            // Written only by `set_digest`; an unreadable one is read as nobody subscribed.
            digest: self
                .digest
                .and_then(|d| serde_json::from_str(&d).ok())
                .unwrap_or_default(),
            // Written only by `set_tags`; an unreadable one is read as no tags rather than
            // refusing every event of the workspace.
            tags: self
                .tags
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default(),
        }
    }
}

/// The key item, found by hash (its `pk`).
#[derive(Serialize, Deserialize)]
pub(super) struct ApiKeyItem {
    id: KeyId,
    ws: WorkspaceId,
    name: String,
    src: String,
    scope: Scope,
    state: KeyState,
    prefix: String,
    created: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    used: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    by: Option<String>,
}

impl ApiKeyItem {
    pub fn new(k: &ApiKey) -> ApiKeyItem {
        ApiKeyItem {
            id: k.id.clone(),
            ws: k.workspace_id.clone(),
            name: k.name.clone(),
            src: k.source.clone(),
            scope: k.scope,
            state: k.state,
            prefix: k.prefix.clone(),
            created: k.created_ms,
            used: k.last_used_ms,
            by: k.created_by.clone(),
        }
    }

    pub fn into_key(self, hash: KeyHash) -> ApiKey {
        ApiKey {
            hash,
            id: self.id,
            workspace_id: self.ws,
            name: self.name,
            source: self.src,
            scope: self.scope,
            state: self.state,
            prefix: self.prefix,
            created_ms: self.created,
            created_by: self.by,
            last_used_ms: self.used,
        }
    }
}

/// A key's listing under its workspace: the hash that finds the key item.
#[derive(Serialize, Deserialize)]
pub(super) struct KeyListingItem {
    pub hash: String,
}

/// A month's usage counter (only ever changed by `ADD n`).
#[derive(Deserialize)]
pub(super) struct UsageItem {
    pub n: i64,
}

#[derive(Serialize, Deserialize)]
pub(super) struct EventItem<'a> {
    /// The batch that wrote it, for recovery.
    pub b: Cow<'a, str>,
    #[serde(with = "json")]
    pub d: Cow<'a, Event>,
    pub expires_at: i64,
}

impl<'a> EventItem<'a> {
    pub fn new(e: &'a Event, batch: &'a str) -> EventItem<'a> {
        EventItem {
            b: Cow::Borrowed(batch),
            d: Cow::Borrowed(e),
            expires_at: ttl(e.expires_ms),
        }
    }
}

/// An event's body alone (reads that need nothing else of the item).
#[derive(Deserialize)]
pub(super) struct EventBody {
    #[serde(with = "json")]
    pub d: Event,
}

/// Where an id sent without a timestamp was stored.
#[derive(Serialize, Deserialize)]
pub(super) struct GuardItem {
    pub epk: String,
    pub esk: String,
    pub expires_at: i64,
}

/// A batch in flight.
#[derive(Serialize, Deserialize)]
pub(super) struct MarkerItem {
    pub created: i64,
    pub month: String,
    pub reserved: u64,
    #[serde(
        with = "serde_dynamo::number_set",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub hours: Vec<i64>,
}

/// A compaction run's lock: its id, when it was (re)taken, the batches it folds.
#[derive(Serialize, Deserialize)]
pub(super) struct LockItem {
    pub id: String,
    pub created: i64,
    // DynamoDB refuses an empty set: a lock that folds no batch has none.
    #[serde(
        with = "serde_dynamo::string_set",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub batches: Vec<String>,
}

/// The last batch folded into the deferred rollup items.
#[derive(Serialize, Deserialize)]
pub(super) struct WatermarkItem {
    pub upto: String,
}

/// A rollup: its version (for read-modify-write), encoded value, and the writers it holds.
#[derive(Serialize, Deserialize)]
pub(super) struct RollupItem {
    pub v: u64,
    #[serde(with = "serde_bytes")]
    pub d: Vec<u8>,
    #[serde(
        with = "serde_dynamo::string_set",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub p: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// A batch's groups, postcard-encoded.
#[derive(Serialize, Deserialize)]
pub(super) struct DeltaItem {
    #[serde(with = "serde_bytes")]
    pub d: Vec<u8>,
    /// How `d` is laid out (`rollup::GROUPS_FORMAT`); items written before it was recorded: 1.
    #[serde(default = "first_format")]
    pub f: u8,
    pub expires_at: i64,
}

fn first_format() -> u8 {
    1
}

impl DeltaItem {
    /// A delta item of groups encoded in this release's layout.
    pub fn new(d: Vec<u8>, expires_at: i64) -> DeltaItem {
        DeltaItem {
            d,
            f: crate::domain::rollup::GROUPS_FORMAT,
            expires_at,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct JobItem<'a> {
    pub kind: Cow<'a, str>,
    pub v: u64,
    #[serde(with = "json")]
    pub d: Cow<'a, Job>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

impl<'a> JobItem<'a> {
    pub fn new(job: &'a Job) -> JobItem<'a> {
        JobItem {
            kind: Cow::Borrowed(&job.kind),
            v: job.version,
            d: Cow::Borrowed(job),
            expires_at: job.expires_ms.map(ttl),
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct UserItem {
    email: Email,
    created: i64,
    /// Set by `set_reports_opt_out` alone.
    #[serde(default, skip_serializing)]
    nr: bool,
}

impl UserItem {
    pub fn new(user: &User) -> UserItem {
        UserItem {
            email: user.email.clone(),
            created: user.created_ms,
            nr: false,
        }
    }

    pub fn into_user(self, id: &UserId) -> User {
        User {
            id: id.clone(),
            email: self.email,
            created_ms: self.created,
            reports_opt_out: self.nr,
        }
    }
}

/// The user an email belongs to.
#[derive(Serialize, Deserialize)]
pub(super) struct EmailItem {
    pub user: UserId,
}

#[derive(Serialize, Deserialize)]
pub(super) struct LoginCodeItem {
    pub hash: String,
    pub exp: i64,
    pub attempts: u32,
    pub expires_at: i64,
}

/// A rate-limit window's count (only ever changed by `ADD hits`).
#[derive(Deserialize)]
pub(super) struct RateLimitItem {
    pub hits: u64,
}

#[derive(Serialize, Deserialize)]
pub(super) struct SessionItem {
    user: UserId,
    created: i64,
    exp: i64,
    expires_at: i64,
}

impl SessionItem {
    pub fn new(s: &Session) -> SessionItem {
        SessionItem {
            user: s.user_id.clone(),
            created: s.created_ms,
            exp: s.expires_ms,
            expires_at: ttl(s.expires_ms),
        }
    }

    pub fn into_session(self, hash: &str) -> Session {
        Session {
            hash: hash.to_owned(),
            user_id: self.user,
            created_ms: self.created,
            expires_ms: self.exp,
        }
    }
}

/// A membership, the same under the workspace and under the user.
#[derive(Serialize, Deserialize)]
pub(super) struct MemberItem {
    ws: WorkspaceId,
    user: UserId,
    email: Email,
    role: Role,
    since: i64,
}

impl MemberItem {
    pub fn new(m: &Membership) -> MemberItem {
        MemberItem {
            ws: m.workspace_id.clone(),
            user: m.user_id.clone(),
            email: m.email.clone(),
            role: m.role,
            since: m.since_ms,
        }
    }

    pub fn into_membership(self) -> Membership {
        Membership {
            workspace_id: self.ws,
            user_id: self.user,
            email: self.email,
            role: self.role,
            since_ms: self.since,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct InvitationItem {
    email: Email,
    role: Role,
    by: UserId,
    created: i64,
    exp: i64,
    expires_at: i64,
}

impl InvitationItem {
    pub fn new(inv: &Invitation) -> InvitationItem {
        InvitationItem {
            email: inv.email.clone(),
            role: inv.role,
            by: inv.invited_by.clone(),
            created: inv.created_ms,
            exp: inv.expires_ms,
            expires_at: ttl(inv.expires_ms),
        }
    }

    pub fn into_invitation(self, id: InvitationId, ws: &WorkspaceId) -> Invitation {
        Invitation {
            id,
            workspace_id: ws.clone(),
            email: self.email,
            role: self.role,
            invited_by: self.by,
            created_ms: self.created,
            expires_ms: self.exp,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct AuditItem {
    at: i64,
    actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    actor_email: Option<String>,
    action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
    expires_at: i64,
}

impl AuditItem {
    pub fn new(e: &AuditEntry, expires_ms: i64) -> AuditItem {
        AuditItem {
            at: e.at_ms,
            actor: e.actor_id.clone(),
            actor_email: e.actor_email.clone(),
            action: e.action.clone(),
            target: e.target.clone(),
            ip: e.ip.clone(),
            expires_at: ttl(expires_ms),
        }
    }

    pub fn into_entry(self, id: String, ws: &WorkspaceId) -> AuditEntry {
        AuditEntry {
            id,
            workspace_id: ws.clone(),
            at_ms: self.at,
            actor_id: self.actor,
            actor_email: self.actor_email,
            action: self.action,
            target: self.target,
            ip: self.ip,
        }
    }
}

/// A versioned JSON body: alert rules and billing records (`v` is the version the conditional
/// writes check; the body's own `version` is overwritten by it on read).
#[derive(Serialize, Deserialize)]
pub(super) struct AlertRuleItem<'a> {
    pub v: u64,
    #[serde(with = "json")]
    pub d: Cow<'a, AlertRule>,
}

impl<'a> AlertRuleItem<'a> {
    pub fn new(rule: &'a AlertRule) -> AlertRuleItem<'a> {
        AlertRuleItem {
            v: rule.version,
            d: Cow::Borrowed(rule),
        }
    }

    pub fn into_rule(self) -> AlertRule {
        let mut rule = self.d.into_owned();
        rule.version = self.v;
        rule
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct AlertEventItem<'a> {
    #[serde(with = "json")]
    pub d: Cow<'a, AlertEvent>,
    pub expires_at: i64,
}

/// A one-time notice, and when it was claimed.
#[derive(Serialize)]
pub(super) struct NoticeItem {
    pub at: i64,
}

#[derive(Serialize, Deserialize)]
pub(super) struct BillingItem<'a> {
    pub v: u64,
    #[serde(with = "json")]
    pub d: Cow<'a, Billing>,
    /// The customer, for the lookup item to remove with the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cus: Option<Cow<'a, str>>,
    /// When the record is next due in the due index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<i64>,
}

impl<'a> BillingItem<'a> {
    pub fn new(b: &'a Billing, due: Option<i64>) -> BillingItem<'a> {
        BillingItem {
            v: b.version,
            d: Cow::Borrowed(b),
            cus: b.customer_id.as_deref().map(Cow::Borrowed),
            due,
        }
    }

    pub fn into_billing(self) -> Billing {
        let mut b = self.d.into_owned();
        b.version = self.v;
        b
    }
}
