//! `llmtrack`: the local and self-hosted server (`serve`) and operator commands (`admin`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::anyhow;
use clap::{Parser, Subcommand};
use llmtrack::admin;
use llmtrack_shared::domain::access::Role;
use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::time::rfc3339;
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "llmtrack",
    version,
    about = "LLM usage and cost tracking, on one machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (every function) over the embedded SQLite store.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080", env = "LLMTRACK_ADDR")]
        addr: SocketAddr,
        #[arg(long, default_value = ".llmtrack", env = "LLMTRACK_DATA_DIR")]
        data_dir: PathBuf,
        /// The dashboard's origin, for links in emails and the cross-site check (default: http://ADDR).
        #[arg(long, env = "LLMTRACK_PUBLIC_URL")]
        public_url: Option<String>,
        /// Reverse proxies in front of this server, as comma-separated addresses or CIDR blocks:
        /// their X-Forwarded-For gives the client's address (ignored from anyone else).
        #[arg(long, env = "LLMTRACK_TRUSTED_PROXIES")]
        trusted_proxies: Option<String>,
        /// Let alert webhooks go to plain-http receivers on 127.0.0.1 (development only: any
        /// workspace admin could then reach this machine's local ports).
        #[arg(long, env = "LLMTRACK_ALLOW_LOCAL_WEBHOOKS")]
        allow_local_webhooks: bool,
    },
    /// Run a job now, as its schedule would.
    Jobs {
        #[arg(
            long,
            default_value = ".llmtrack",
            env = "LLMTRACK_DATA_DIR",
            global = true
        )]
        data_dir: PathBuf,
        /// The dashboard's origin, for links in emails (default: http://127.0.0.1:8080).
        #[arg(long, env = "LLMTRACK_PUBLIC_URL", global = true)]
        public_url: Option<String>,
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Operator commands on the store.
    Admin {
        #[arg(
            long,
            default_value = ".llmtrack",
            env = "LLMTRACK_DATA_DIR",
            global = true
        )]
        data_dir: PathBuf,
        /// Print machine-readable JSON.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum JobsCommand {
    /// Run a job.
    Run {
        #[command(subcommand)]
        job: Job,
    },
}

#[derive(Subcommand)]
enum Job {
    /// Build, archive and email the monthly reports of a month that is over.
    Reports {
        /// `YYYY-MM` (UTC).
        #[arg(long)]
        month: String,
        /// Only this workspace.
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Evaluate every workspace's alert rules and plan usage once, and send what is due (what
    /// `serve` does every minute).
    Alerts,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a workspace.
    CreateWorkspace {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "free", value_parser = parse_plan)]
        plan: Plan,
    },
    /// Create an API key; the raw key is printed this once and never again.
    CreateKey {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        name: String,
        /// Source label attached to every event the key sends (production, staging, ...).
        #[arg(long)]
        source: String,
        #[arg(long, default_value = "ingest", value_parser = parse_scope)]
        scope: Scope,
    },
    /// Add a member (creating the user) or change their role.
    AddMember {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
    /// Set a workspace's plan (self-hosters; on AWS, billing sets it).
    SetPlan {
        #[arg(long)]
        workspace: String,
        #[arg(long, value_parser = parse_plan)]
        plan: Plan,
    },
}

fn parse_plan(s: &str) -> Result<Plan, String> {
    Plan::parse(s).ok_or_else(|| format!("unknown plan `{s}`: use free, pro or team"))
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("unknown role `{s}`: use owner, admin or viewer"))
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    Scope::parse(s).ok_or_else(|| format!("unknown scope `{s}`: use ingest or read"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    llmtrack_shared::telemetry::init();
    match Cli::parse().command {
        Command::Serve { addr, data_dir, public_url, trusted_proxies, allow_local_webhooks } => {
            let options = llmtrack::Options {
                public_url: public_url.unwrap_or_else(|| format!("http://{addr}")),
                trusted_proxies: match trusted_proxies {
                    Some(list) => llmtrack_shared::config::parse_proxies(&list)
                        .map_err(|e| anyhow!("--trusted-proxies: {e}"))?,
                    None => Vec::new(),
                },
                allow_local_webhooks,
            };
            llmtrack::serve(addr, &data_dir, options).await
        }
        Command::Jobs { data_dir, public_url, command: JobsCommand::Run { job: Job::Reports { month, workspace } } } => {
            let url = public_url.unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
            let parts = llmtrack::local_parts(&data_dir, &llmtrack::Options { public_url: url, ..Default::default() })?;
            let now = chrono::Utc::now().timestamp_millis();
            let month = llmtrack_reports::past_month(&month, now)?;
            let only = match workspace {
                Some(w) => Some(
                    llmtrack_shared::domain::ids::WorkspaceId::parse(&w)
                        .ok_or_else(|| anyhow!("`{w}` is not a workspace id"))?,
                ),
                None => None,
            };
            let ran = llmtrack_reports::run_month(&parts.reports(), month, only.as_ref()).await?;
            println!("{month}: {} reports archived, {} emails sent", ran.reports, ran.emails);
            Ok(())
        }
        Command::Jobs { data_dir, public_url, command: JobsCommand::Run { job: Job::Alerts } } => {
            let url = public_url.unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
            let parts = llmtrack::local_parts(&data_dir, &llmtrack::Options { public_url: url, ..Default::default() })?;
            let ran = llmtrack_alerts::evaluate::all(&parts.alerts().deps).await?;
            println!("{} alert rules evaluated, {} notifications sent", ran.rules, ran.notifications);
            Ok(())
        }
        Command::Admin { data_dir, json, command } => {
            let store = llmtrack::open_store(&data_dir)?;
            let now = chrono::Utc::now().timestamp_millis();
            match command {
                AdminCommand::CreateWorkspace { name, plan } => {
                    let ws = admin::create_workspace(&store, &name, plan, now).await?;
                    if json {
                        println!("{}", json!({"id": ws.id, "name": ws.name, "plan": ws.plan, "created_at": rfc3339(ws.created_ms)}));
                    } else {
                        println!("created workspace {} ({}, {} plan)", ws.id, ws.name, ws.plan.as_str());
                    }
                }
                AdminCommand::CreateKey { workspace, name, source, scope } => {
                    let (key, raw) = admin::create_key(&store, &workspace, &name, &source, scope, now).await?;
                    if json {
                        println!(
                            "{}",
                            json!({"id": key.id, "workspace": key.workspace_id, "name": key.name, "source": key.source,
                                   "scope": key.scope, "prefix": key.prefix, "key": raw.expose()})
                        );
                    } else {
                        println!("created key {} ({}, source {}, scope {})", key.id, key.name, key.source, key.scope.as_str());
                        println!("key: {}", raw.expose());
                        println!("This is the only time the key is shown: store it now.");
                    }
                }
                AdminCommand::AddMember { workspace, email, role } => {
                    let m = admin::add_member(&store, &workspace, &email, role, now).await?;
                    if json {
                        println!("{}", json!({"workspace": m.workspace_id, "user_id": m.user_id, "email": m.email.as_str(), "role": m.role}));
                    } else {
                        println!("{} is now {} of {}", m.email.as_str(), m.role.as_str(), m.workspace_id);
                    }
                }
                AdminCommand::SetPlan { workspace, plan } => {
                    let pass = admin::set_plan(&store, &workspace, plan, now).await?;
                    let retained = match pass {
                        Some(job) => Some(admin::run_retention(Arc::new(store), job).await?),
                        None => None,
                    };
                    if json {
                        println!("{}", json!({"workspace": workspace, "plan": plan, "retention": retained}));
                    } else {
                        println!("workspace {workspace} is now on the {} plan", plan.as_str());
                        if let Some(r) = retained {
                            println!("retention: {} events kept for the new window, {} deleted; {} rollups kept, {} deleted",
                                r["events_kept"], r["events_deleted"], r["rollups_kept"], r["rollups_deleted"]);
                        }
                    }
                }
            }
            Ok(())
        }
    }
    .map_err(|e| anyhow!("{e:#}"))
}
