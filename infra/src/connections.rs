//! `llmtrack admin connections …`: a workspace's provider connections at the command line, through
//! the same use cases as the API. The admin key is read from standard input, never from an
//! argument (arguments show in process lists and shell history), and never printed.

use std::io::Read as _;

use anyhow::{Context as _, anyhow};
use chrono::NaiveDate;
use clap::Subcommand;
use llmtrack_reconciliation::connections::{self as uc, NewConnection};
use llmtrack_reconciliation::{ConnectionView, Deps};
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::usecases::Actor;

#[derive(Subcommand)]
pub enum ConnectionCommand {
    /// List the workspace's provider connections (keys are shown by their last four
    /// characters).
    List {
        /// The workspace (ws_…).
        #[arg(long)]
        workspace: String,
    },
    /// Connect an OpenAI or Anthropic organisation: reads its Admin API key from standard input
    /// (`printf %s "$KEY" | llmtrack admin connections add …`), checks it with the provider,
    /// seals it and imports the last 30 days.
    Add {
        /// The workspace (ws_…).
        #[arg(long)]
        workspace: String,
        /// `openai` or `anthropic`.
        #[arg(long)]
        provider: String,
        /// Only this OpenAI project id or Anthropic workspace id (repeat for several).
        #[arg(long, value_name = "ID")]
        scope: Vec<String>,
    },
    /// Check that a connection's key still reads the organisation's usage and cost.
    Test {
        /// The workspace (ws_…).
        #[arg(long)]
        workspace: String,
        /// The connection (pc_…).
        #[arg(long)]
        connection: String,
    },
    /// Import now: the days given, or the days due.
    Import {
        /// The workspace (ws_…).
        #[arg(long)]
        workspace: String,
        /// The connection (pc_…).
        #[arg(long)]
        connection: String,
        /// First UTC day (YYYY-MM-DD).
        #[arg(long, value_name = "DATE", requires = "to")]
        from: Option<String>,
        /// The UTC day after the last (YYYY-MM-DD, exclusive).
        #[arg(long, value_name = "DATE", requires = "from")]
        to: Option<String>,
    },
    /// Remove a connection, its sealed key and every figure it imported.
    Remove {
        /// The workspace (ws_…).
        #[arg(long)]
        workspace: String,
        /// The connection (pc_…).
        #[arg(long)]
        connection: String,
    },
}

fn workspace(id: &str) -> anyhow::Result<WorkspaceId> {
    WorkspaceId::parse(id).ok_or_else(|| anyhow!("`{id}` is not a workspace id (ws_…)"))
}

fn day(v: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| anyhow!("`{v}` is not a day (YYYY-MM-DD)"))
}

fn print(c: &ConnectionView, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_value(c)?);
        return Ok(());
    }
    let scope = if c.scope.is_empty() {
        "all projects".to_owned()
    } else {
        c.scope.join(", ")
    };
    let through = c.imported_through.as_deref().unwrap_or("nothing yet");
    let last = match &c.last_import {
        None => String::new(),
        Some(s) if s.ok => format!(", last import {} ({} days)", s.at, s.days),
        Some(s) => format!(
            ", last import FAILED {}: {}",
            s.at,
            s.message.as_deref().unwrap_or("no reason given")
        ),
    };
    println!(
        "{} {} key {} ({scope}): imported through {through}{last}",
        c.id,
        c.provider.as_str(),
        c.key_hint
    );
    Ok(())
}

/// The key from standard input: one line, surrounding whitespace dropped.
fn read_key() -> anyhow::Result<String> {
    let mut key = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut key)
        .context("reading the admin key from standard input")?;
    let key = key.trim().to_owned();
    if key.is_empty() {
        return Err(anyhow!(
            "give the admin key on standard input: printf %s \"$KEY\" | llmtrack admin connections add …"
        ));
    }
    Ok(key)
}

pub async fn run(deps: &Deps, command: ConnectionCommand, json: bool) -> anyhow::Result<()> {
    let by = Actor::CLI;
    match command {
        ConnectionCommand::List { workspace: w } => {
            let all = deps.store.connections.connections(&workspace(&w)?).await?;
            if json {
                let rows: Vec<_> = all.iter().map(ConnectionView::of).collect();
                println!("{}", serde_json::to_value(rows)?);
            } else if all.is_empty() {
                println!(
                    "no provider connections in {w}: `llmtrack admin connections add --workspace {w} --provider openai`"
                );
            }
            if !json {
                for c in &all {
                    print(&ConnectionView::of(c), false)?;
                }
            }
        }
        ConnectionCommand::Add {
            workspace: w,
            provider,
            scope,
        } => {
            let ws = workspace(&w)?;
            let new = NewConnection::parse(&provider, &read_key()?, scope)?;
            let c = uc::add(deps, &ws, new, by).await?;
            print(&ConnectionView::of(&c), json)?;
        }
        ConnectionCommand::Test {
            workspace: w,
            connection,
        } => {
            uc::test(deps, &workspace(&w)?, &connection).await?;
            if json {
                println!("{}", serde_json::json!({"ok": true}));
            } else {
                println!("{connection}: the key reads the organisation's usage and cost");
            }
        }
        ConnectionCommand::Import {
            workspace: w,
            connection,
            from,
            to,
        } => {
            let range = match (from, to) {
                (Some(f), Some(t)) => Some((day(&f)?, day(&t)?)),
                _ => None,
            };
            let c = uc::import_now(deps, &workspace(&w)?, &connection, range).await?;
            print(&ConnectionView::of(&c), json)?;
            if c.last_import.as_ref().is_some_and(|s| !s.ok) {
                return Err(anyhow!("the import did not finish: run it again later"));
            }
        }
        ConnectionCommand::Remove {
            workspace: w,
            connection,
        } => {
            uc::remove(deps, &workspace(&w)?, &connection, by).await?;
            if json {
                println!("{}", serde_json::json!({"removed": connection}));
            } else {
                println!("removed {connection}, its key and the figures it imported");
            }
        }
    }
    Ok(())
}
