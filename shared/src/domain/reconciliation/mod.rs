//! Reconciliation with the provider's bill: what an OpenAI or Anthropic organisation says it used
//! and paid, day by day and model by model, set beside what LLMtrack's events say.
//!
//! Pure: the provider clients (`adapters::providers`) turn each API's pages into [`BilledRow`]s,
//! the store keeps them per connection and day, and [`compare`] reconciles them with rollups.

pub mod compare;
pub mod money;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A provider whose organisation usage and cost LLMtrack imports.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    #[serde(rename = "openai")]
    OpenAi,
    Anthropic,
}

impl Provider {
    pub const ALL: [Provider; 2] = [Provider::OpenAi, Provider::Anthropic];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
        }
    }

    pub fn parse(s: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// What its admin keys start with: a key that does not is named in the answer at once.
    pub fn admin_key_prefix(self) -> &'static str {
        match self {
            Provider::OpenAi => "sk-admin-",
            Provider::Anthropic => "sk-ant-admin",
        }
    }
}

/// A kind of token, as the providers bill them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Input neither read from nor written to a cache.
    Input,
    CachedInput,
    CacheWrite,
    Output,
}

impl TokenKind {
    pub const ALL: [TokenKind; 4] = [
        TokenKind::Input,
        TokenKind::CachedInput,
        TokenKind::CacheWrite,
        TokenKind::Output,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Input => "input",
            TokenKind::CachedInput => "cached_input",
            TokenKind::CacheWrite => "cache_write",
            TokenKind::Output => "output",
        }
    }
}

/// Tokens by kind, in [`TokenKind`] order: uncached input, cache reads, cache writes, output.
pub type KindCounts = [u64; 4];

/// What the provider billed for one model (or for no model: web search, code execution, costs
/// the API does not tie to one) in one provider-side scope on one UTC day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BilledRow {
    /// `YYYY-MM-DD`, UTC (both APIs bucket by UTC day).
    pub day: String,
    pub provider: Provider,
    /// The model as the provider names it; "" for costs not tied to one model.
    pub model: String,
    /// The provider-side project (OpenAI) or workspace (Anthropic); "" for none or the default.
    pub scope: String,
    /// Tokens by kind, as the usage API reports them.
    pub tokens: KindCounts,
    /// The part of the cache writes kept for an hour (Anthropic), billed above 5-minute ones.
    #[serde(default)]
    pub cache_write_1h: u64,
    /// Requests, where the API counts them (OpenAI does; Anthropic's usage report does not).
    pub requests: Option<u64>,
    /// Everything billed for this row, in picodollars (1e-12 USD), as LLMtrack's rollups count.
    pub cost_pico: i128,
    /// The part of `cost_pico` billed for each token kind, where the cost API itemises it.
    pub kind_cost_pico: [Option<i128>; 4],
}

impl BilledRow {
    pub fn new(day: &str, provider: Provider, model: &str, scope: &str) -> BilledRow {
        BilledRow {
            day: day.to_owned(),
            provider,
            model: model.to_owned(),
            scope: scope.to_owned(),
            tokens: [0; 4],
            cache_write_1h: 0,
            requests: None,
            cost_pico: 0,
            kind_cost_pico: [None; 4],
        }
    }

    /// The row's identity within a day's import.
    pub fn key(&self) -> (&str, &str, &str) {
        (&self.day, &self.model, &self.scope)
    }

    pub fn total_tokens(&self) -> u64 {
        self.tokens.iter().sum()
    }
}

/// A workspace's link to one provider organisation: the sealed admin key (never the key itself)
/// and how far its import has come.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub workspace: crate::domain::ids::WorkspaceId,
    /// `pc_…`
    pub id: String,
    pub provider: Provider,
    /// What `Vault::seal` made of the admin key, bound to [`Connection::seal_context`].
    #[serde(with = "sealed_hex")]
    pub sealed_key: Vec<u8>,
    /// The key's last four characters, shown so admins can tell keys apart.
    pub key_hint: String,
    /// Provider-side projects (OpenAI) or workspaces (Anthropic) to import; empty for all.
    pub scope: Vec<String>,
    pub created_at_ms: i64,
    /// The last UTC day (`YYYY-MM-DD`) imported whole; an interrupted import resumes after it.
    pub imported_through: Option<String>,
    pub last_import: Option<ImportStatus>,
}

impl Connection {
    /// What the admin key is sealed to: a sealed key copied to another record does not open.
    pub fn seal_context(ws: &crate::domain::ids::WorkspaceId, id: &str) -> String {
        format!("provider-connection/{ws}/{id}")
    }
}

/// How the last import of a connection went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ImportStatus {
    /// RFC 3339.
    pub at: String,
    pub ok: bool,
    /// Why it failed, in the provider's words where it gave some.
    pub message: Option<String>,
    /// Days imported by that run.
    pub days: u32,
}

mod sealed_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}
