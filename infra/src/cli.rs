//! The `llmtrack` command line: what each command and option means (clap), and what running it
//! does. Operator commands that change the store go through `admin`, which goes through the
//! use cases the HTTP handlers share; this module only parses and prints.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::anyhow;
use clap::{Parser, Subcommand, ValueEnum};
use llmtrack_deletion::repricing::RepricingView;
use llmtrack_shared::domain::access::Role;
use llmtrack_shared::domain::apikey::{ApiKey, Scope};
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::pricing::UsdPerMillion;
use llmtrack_shared::domain::pricing::custom::{PriceRule, RulePrice};
use llmtrack_shared::domain::repricing::RepricingRequest;
use llmtrack_shared::domain::time::rfc3339;
use llmtrack_shared::usecases::PriceChange;
use serde_json::json;

use crate::admin;

const DATA_DIR_HELP: &str = "The data directory a server uses (SQLite store, outbox, archive)";

#[derive(Parser)]
#[command(
    name = "llmtrack",
    version,
    about = "LLM usage and cost tracking, on one machine",
    long_about = "LLM usage and cost tracking, on one machine: `serve` runs the API and the \
                  dashboard over an embedded SQLite store; `admin` and `jobs` work on the data \
                  directory of a server."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and the dashboard over the SQLite store in the data directory (created if
    /// missing). One server per data directory.
    Serve {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080", env = "LLMTRACK_ADDR")]
        addr: SocketAddr,
        #[arg(long, default_value = ".llmtrack", env = "LLMTRACK_DATA_DIR", help = DATA_DIR_HELP)]
        data_dir: PathBuf,
        /// The dashboard's origin as users reach it, for links in emails and the cross-site
        /// check (default: http://ADDR).
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
        #[command(flatten)]
        mail: MailArgs,
    },
    /// Run a scheduled job now, as its schedule would.
    Jobs {
        #[arg(long, default_value = ".llmtrack", env = "LLMTRACK_DATA_DIR", global = true, help = DATA_DIR_HELP)]
        data_dir: PathBuf,
        /// The dashboard's origin, for links in emails (default: http://127.0.0.1:8080).
        #[arg(long, env = "LLMTRACK_PUBLIC_URL", global = true)]
        public_url: Option<String>,
        #[command(flatten)]
        mail: MailArgs,
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Add a demo workspace: a month of varied events, members, keys, alert rules and last
    /// month's report, owned by --owner, so the dashboard has something to show at once.
    Demo {
        #[arg(long, default_value = ".llmtrack", env = "LLMTRACK_DATA_DIR", help = DATA_DIR_HELP)]
        data_dir: PathBuf,
        /// Who owns the demo workspace: sign in with this address to see it.
        #[arg(long, value_name = "EMAIL")]
        owner: String,
        /// About how many events to make over the last 30 days.
        #[arg(long, default_value_t = 40_000, value_parser = clap::value_parser!(u32).range(100..=1_000_000))]
        events: u32,
        /// The dashboard's origin, for links in the report and alert emails (default:
        /// http://127.0.0.1:8080).
        #[arg(long, env = "LLMTRACK_PUBLIC_URL")]
        public_url: Option<String>,
        /// Print machine-readable JSON instead of sentences.
        #[arg(long)]
        json: bool,
    },
    /// Operator commands on a server's store: workspaces, keys, members, plans.
    Admin {
        #[arg(long, default_value = ".llmtrack", env = "LLMTRACK_DATA_DIR", global = true, help = DATA_DIR_HELP)]
        data_dir: PathBuf,
        /// Print machine-readable JSON instead of sentences.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

/// Where mail goes: an SMTP server, or (without one) the outbox folder in the data directory.
#[derive(clap::Args)]
struct MailArgs {
    /// Send mail through this SMTP server: smtps://USER:PASSWORD@HOST[:PORT],
    /// smtp://USER:PASSWORD@HOST:587?tls=required, or smtp://HOST:25 for a relay on this
    /// machine. Prefer the variable: a flag is visible to every user of the machine. Without
    /// it, mail is written to DATA_DIR/outbox/ and not sent.
    #[arg(
        long,
        env = "LLMTRACK_SMTP_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    smtp_url: Option<String>,
    /// The address mail comes from, e.g. "LLMtrack <llmtrack@example.com>" (needed with
    /// --smtp-url; the server must be allowed to send as it).
    #[arg(long, env = "LLMTRACK_MAIL_FROM", value_name = "ADDRESS")]
    mail_from: Option<String>,
}

impl MailArgs {
    fn smtp(self) -> anyhow::Result<Option<crate::Smtp>> {
        match (self.smtp_url, self.mail_from) {
            (None, _) => Ok(None),
            (Some(_), None) => Err(anyhow!(
                "--mail-from (LLMTRACK_MAIL_FROM) is needed with --smtp-url: the address mail \
                 comes from"
            )),
            (Some(url), Some(from)) => Ok(Some(crate::Smtp { url, from })),
        }
    }
}

#[derive(Subcommand)]
enum JobsCommand {
    /// Run a job once.
    Run {
        #[command(subcommand)]
        job: Job,
    },
}

#[derive(Subcommand)]
enum Job {
    /// Build, archive and email the monthly reports of a month that is over.
    Reports {
        /// The month, as YYYY-MM (UTC); it must be over.
        #[arg(long)]
        month: String,
        /// Only this workspace (ws_…).
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Email the weekly digests that are due and not sent yet (what `serve` does every minute).
    Digests,
    /// Evaluate every workspace's alert rules and plan usage once, and send what is due (what
    /// `serve` does every minute).
    Alerts,
    /// Import the providers' bills of every connection that is due (what `serve` does twice a
    /// day).
    Imports,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a workspace.
    CreateWorkspace {
        /// Its display name.
        #[arg(long)]
        name: String,
        /// Its plan, which sets every limit and how long history is kept.
        #[arg(long, value_enum, default_value_t = PlanArg::Free)]
        plan: PlanArg,
        /// Make this person its owner (their account is created if needed), so the workspace is
        /// theirs when they sign in with this address.
        #[arg(long, value_name = "EMAIL")]
        owner: Option<String>,
    },
    /// List every workspace.
    Workspaces,
    /// Create an API key; the raw key is printed this once and never again.
    CreateKey {
        /// The workspace (ws_…).
        #[arg(long)]
        workspace: String,
        /// A name to recognise it by.
        #[arg(long)]
        name: String,
        /// The source label attached to every event the key sends (production, staging, …).
        #[arg(long)]
        source: String,
        /// What the key may do: ingest sends events; read queries the analytics API.
        #[arg(long, value_enum, default_value_t = ScopeArg::Ingest)]
        scope: ScopeArg,
    },
    /// List a workspace's keys (their ids, names and first characters; raw keys are never stored).
    Keys {
        /// The workspace (ws_…).
        #[arg(long)]
        workspace: String,
    },
    /// Revoke a key: requests with it are refused from the next one on (the dashboard can
    /// reactivate it).
    RevokeKey {
        /// The workspace (ws_…).
        #[arg(long)]
        workspace: String,
        /// The key's id (key_…, see `admin keys`).
        #[arg(long)]
        key: String,
    },
    /// Add a member (creating their account) or change their role.
    AddMember {
        /// The workspace (ws_…).
        #[arg(long)]
        workspace: String,
        /// Their email address, which they sign in with.
        #[arg(long)]
        email: String,
        /// Owners may do everything; admins all but billing and deletion; viewers only read.
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// List a workspace's members.
    Members {
        /// The workspace (ws_…).
        #[arg(long)]
        workspace: String,
    },
    /// Back up the store (while the server runs), the monthly reports and the signing secrets
    /// into a new directory.
    Backup {
        /// The directory to write (new, or empty).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
    },
    /// Restore a backup into a data directory that has no store yet (no server may be running
    /// on it); the server upgrades an older release's store when it starts.
    Restore {
        /// The directory `admin backup` wrote.
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
    },
    /// List a workspace's own prices (rules that come before the bundled price table).
    Prices {
        /// The workspace (ws_…).
        #[arg(long)]
        workspace: String,
    },
    /// Add a price rule: a discount off the table's price (`--discount`), or rates of its own
    /// (`--input` and `--output`, USD per million tokens). It prices events as they arrive;
    /// stored events keep their cost until `admin reprice`.
    AddPrice {
        /// The workspace (ws_…).
        #[arg(long)]
        workspace: String,
        /// The provider of the events it prices (`openai`, `bedrock`...), or `*` for any.
        #[arg(long)]
        provider: String,
        /// A model name, or a pattern with `*` (`claude-*`; `*` for every model).
        #[arg(long)]
        model: String,
        /// Percent off the table's price (above 0, at most 100).
        #[arg(long, conflicts_with_all = ["input", "output"], required_unless_present = "input")]
        discount: Option<f64>,
        /// USD per million input tokens.
        #[arg(long, requires = "output")]
        input: Option<f64>,
        /// USD per million output tokens.
        #[arg(long, requires = "input")]
        output: Option<f64>,
        /// USD per million cached input tokens (default: the input rate).
        #[arg(long, requires = "input")]
        cached_input: Option<f64>,
        /// USD per million tokens written to the cache (default: the input rate).
        #[arg(long, requires = "input")]
        cache_write: Option<f64>,
        /// USD per million reasoning tokens (default: the output rate).
        #[arg(long, requires = "input")]
        reasoning: Option<f64>,
        /// Percent of the rates batch calls are charged (default 100).
        #[arg(long, requires = "input")]
        batch_percent: Option<f64>,
        /// First day it applies (YYYY-MM-DD, UTC; default: all past events).
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
        /// Day it stops applying (YYYY-MM-DD, exclusive; default: until removed).
        #[arg(long, value_name = "DATE")]
        to: Option<String>,
        /// Why: a contract reference, a deployment's name.
        #[arg(long)]
        note: Option<String>,
    },
    /// Remove a price rule.
    RemovePrice {
        /// The workspace (ws_…).
        #[arg(long)]
        workspace: String,
        /// The rule's id (pr_…, see `admin prices`).
        #[arg(long)]
        price: String,
    },
    /// Reprice stored events with today's prices (the bundled table and the workspace's own):
    /// by default a dry run that counts what would change, by model; `--apply` rewrites the
    /// events' costs and their hours' rollups. Costs the client or the provider sent stay.
    Reprice {
        /// The workspace (ws_…).
        #[arg(long)]
        workspace: String,
        /// First hour (RFC 3339; default: the oldest the plan's history holds whole).
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// End, exclusive (RFC 3339; default: the start of the current hour).
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        /// Rewrite the events and rollups (audited), instead of only counting.
        #[arg(long)]
        apply: bool,
    },
    /// A workspace's provider connections: the OpenAI and Anthropic organisations whose bills
    /// are imported and reconciled (docs/RECONCILIATION.md).
    Connections {
        #[command(subcommand)]
        command: crate::connections::ConnectionCommand,
    },
    /// Set a workspace's plan (self-hosters; on AWS, billing sets it). Stored history follows
    /// the new plan's window at once.
    SetPlan {
        /// The workspace (ws_…).
        #[arg(long)]
        workspace: String,
        /// The new plan.
        #[arg(long, value_enum)]
        plan: PlanArg,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum PlanArg {
    Free,
    Pro,
    Team,
}

impl From<PlanArg> for Plan {
    fn from(p: PlanArg) -> Plan {
        match p {
            PlanArg::Free => Plan::Free,
            PlanArg::Pro => Plan::Pro,
            PlanArg::Team => Plan::Team,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Owner,
    Admin,
    Viewer,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Owner => Role::Owner,
            RoleArg::Admin => Role::Admin,
            RoleArg::Viewer => Role::Viewer,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ScopeArg {
    Ingest,
    Read,
}

impl From<ScopeArg> for Scope {
    fn from(s: ScopeArg) -> Scope {
        match s {
            ScopeArg::Ingest => Scope::Ingest,
            ScopeArg::Read => Scope::Read,
        }
    }
}

/// Commands other than `serve` work on an existing installation: a mistyped path is an error,
/// not a new empty store that the server never reads.
fn existing(data_dir: &Path) -> anyhow::Result<()> {
    if data_dir.join(crate::STORE_FILE).is_file() {
        return Ok(());
    }
    let what = if data_dir.is_dir() {
        "holds no LLMtrack store"
    } else {
        "does not exist"
    };
    Err(anyhow!(
        "the data directory {} {what}: pass the --data-dir (or LLMTRACK_DATA_DIR) a server uses, \
         or start `llmtrack serve` there once to create it",
        data_dir.display()
    ))
}

/// Where `serve` is reached by default: links in mail point there.
const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

fn options(public_url: Option<String>, mail: MailArgs) -> anyhow::Result<crate::Options> {
    Ok(crate::Options {
        public_url: public_url.unwrap_or_else(|| DEFAULT_PUBLIC_URL.to_owned()),
        smtp: mail.smtp()?,
        ..Default::default()
    })
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve {
                addr,
                data_dir,
                public_url,
                trusted_proxies,
                allow_local_webhooks,
                mail,
            } => {
                let options = crate::Options {
                    public_url: public_url.unwrap_or_else(|| format!("http://{addr}")),
                    trusted_proxies: match trusted_proxies {
                        Some(list) => llmtrack_shared::config::parse_proxies(&list)
                            .map_err(|e| anyhow!("--trusted-proxies: {e}"))?,
                        None => Vec::new(),
                    },
                    allow_local_webhooks,
                    smtp: mail.smtp()?,
                };
                crate::serve(addr, &data_dir, options).await
            }
            Command::Jobs {
                data_dir,
                public_url,
                mail,
                command: JobsCommand::Run { job },
            } => {
                existing(&data_dir)?;
                let parts = crate::local_parts(&data_dir, &options(public_url, mail)?)?;
                match job {
                    Job::Reports { month, workspace } => {
                        let now = chrono::Utc::now().timestamp_millis();
                        let month = llmtrack_reports::past_month(&month, now)
                            .map_err(|e| anyhow!("--month: {e}"))?;
                        let only = match workspace {
                            Some(w) => Some(WorkspaceId::parse(&w).ok_or_else(|| {
                                anyhow!(
                                    "--workspace: `{w}` is not a workspace id (they look like ws_…)"
                                )
                            })?),
                            None => None,
                        };
                        let ran =
                            llmtrack_reports::run_month(&parts.reports(), month, only.as_ref())
                                .await?;
                        println!(
                            "{month}: {} reports archived, {} emails sent",
                            ran.reports, ran.emails
                        );
                        for (ws, note) in &ran.notes {
                            println!("{ws}: {note}");
                        }
                    }
                    Job::Digests => {
                        let deps = parts.digests();
                        let sent =
                            llmtrack_reports::digest::run(&deps, deps.clock.now_ms()).await?;
                        println!("{sent} weekly digest emails sent");
                    }
                    Job::Alerts => {
                        let ran = llmtrack_alerts::evaluate::all(&parts.alerts().deps).await?;
                        println!(
                            "{} alert rules evaluated, {} notifications sent",
                            ran.rules, ran.notifications
                        );
                    }
                    Job::Imports => {
                        let ran =
                            llmtrack_reconciliation::import::all(&parts.reconciliation().deps)
                                .await?;
                        println!(
                            "{} provider connections imported ({} days), {} failed",
                            ran.connections, ran.days, ran.failed
                        );
                    }
                }
                Ok(())
            }
            Command::Demo {
                data_dir,
                owner,
                events,
                public_url,
                json,
            } => {
                // Mail the demo causes (its report, alert notices) stays in the outbox: the
                // members are example.com addresses.
                let options = crate::Options {
                    public_url: public_url.unwrap_or_else(|| DEFAULT_PUBLIC_URL.to_owned()),
                    ..Default::default()
                };
                let parts = crate::local_parts(&data_dir, &options)?;
                let now = chrono::Utc::now().timestamp_millis();
                let demo = crate::demo::seed(&parts, &owner, events as usize, now).await?;
                print_demo(&demo, &owner, &data_dir, json);
                Ok(())
            }
            Command::Admin {
                data_dir,
                json,
                command,
            } => run_admin(&data_dir, command, json).await,
        }
    }
}

fn print_demo(demo: &crate::demo::Demo, owner: &str, data_dir: &Path, json: bool) {
    if json {
        println!(
            "{}",
            json!({"workspace": demo.workspace, "owner": owner, "events": demo.events,
                   "cost_usd": demo.cost_usd, "alert_rules": demo.rules,
                   "report_month": demo.report_month, "key": demo.ingest_key.expose()})
        );
        return;
    }
    println!(
        "created the demo workspace {} (Acme AI (demo), team plan): {} events over the last 30 \
         days, ${:.2} in all",
        demo.workspace, demo.events, demo.cost_usd
    );
    println!(
        "owner: {owner} (sign in with this address); members: ana@example.com (admin), \
         sam@example.com (viewer)"
    );
    match &demo.report_month {
        Some(month) => println!(
            "{} alert rules, evaluated once; the report for {month} is under Reports",
            demo.rules
        ),
        None => println!("{} alert rules, evaluated once", demo.rules),
    }
    println!(
        "ingest key (source production): {}",
        demo.ingest_key.expose()
    );
    println!("This is the only time the key is shown: store it now.");
    println!(
        "Next: `llmtrack serve --data-dir {dir}` (or `make dev`), open the dashboard and sign in \
         as {owner}; without SMTP, the sign-in code is mailed to {dir}/outbox/.",
        dir = data_dir.display()
    );
}

/// A repricing as a table, by model, with what it did or would do.
fn print_repricing(r: &RepricingView) {
    let verb = if r.dry_run { "would change" } else { "changed" };
    println!(
        "{} {} to {}: {} of {} events {verb}, {} kept (cost sent by the client or provider)",
        if r.dry_run { "Dry run," } else { "Repriced," },
        r.from,
        r.to,
        r.total.changed,
        r.total.events,
        r.total.kept
    );
    if r.models.is_empty() {
        println!("no events in the range");
        return;
    }
    println!(
        "{:<40} {:>9} {:>9} {:>14} {:>14} {:>14}",
        "model", "events", "changed", "before USD", "after USD", "difference"
    );
    for m in r.models.iter().chain(std::iter::once(&r.total)) {
        let model = if m.model == "*" {
            "all models"
        } else {
            &m.model
        };
        println!(
            "{model:<40} {:>9} {:>9} {:>14.6} {:>14.6} {:>+14.6}",
            m.events, m.changed, m.cost_before_usd, m.cost_after_usd, m.difference_usd
        );
    }
    if r.total.unpriced_before != r.total.unpriced_after {
        println!(
            "unpriced events: {} before, {} after",
            r.total.unpriced_before, r.total.unpriced_after
        );
    }
    if r.dry_run {
        println!("Nothing was changed. Run again with --apply to rewrite these costs.");
    } else {
        println!(
            "{} events rewritten; every rollup of their hours was rebuilt.",
            r.rewritten
        );
    }
}

async fn run_admin(data_dir: &Path, command: AdminCommand, json: bool) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    // Every command but `restore` works on the store of an existing installation.
    let store = || {
        existing(data_dir)?;
        crate::open_store(data_dir)
    };
    match command {
        AdminCommand::CreateWorkspace { name, plan, owner } => {
            let store = store()?;
            let ws =
                admin::create_owned_workspace(&store, &name, plan.into(), owner.as_deref(), now)
                    .await?;
            if json {
                println!(
                    "{}",
                    json!({"id": ws.id, "name": ws.name, "plan": ws.plan, "owner": owner,
                           "created_at": rfc3339(ws.created_ms)})
                );
            } else {
                println!(
                    "created workspace {} ({}, {} plan)",
                    ws.id,
                    ws.name,
                    ws.plan.as_str()
                );
                if let Some(owner) = owner {
                    println!("{owner} is its owner: sign in with that address to see it");
                }
            }
        }
        AdminCommand::Workspaces => {
            let store = store()?;
            let all = admin::workspaces(&store).await?;
            if json {
                let rows: Vec<_> = all
                    .iter()
                    .map(|w| json!({"id": w.id, "name": w.name, "plan": w.plan, "timezone": w.timezone,
                                    "created_at": rfc3339(w.created_ms), "deleting": w.deleting.is_some()}))
                    .collect();
                println!("{}", serde_json::Value::from(rows));
            } else if all.is_empty() {
                println!(
                    "no workspaces yet: `llmtrack admin create-workspace --name NAME --owner EMAIL`"
                );
            } else {
                for w in all {
                    let deleting = if w.deleting.is_some() {
                        ", being deleted"
                    } else {
                        ""
                    };
                    println!(
                        "{}  {} ({} plan, created {}{deleting})",
                        w.id,
                        w.name,
                        w.plan.as_str(),
                        rfc3339(w.created_ms)
                    );
                }
            }
        }
        AdminCommand::CreateKey {
            workspace,
            name,
            source,
            scope,
        } => {
            let store = store()?;
            let (key, raw) =
                admin::create_key(&store, &workspace, &name, &source, scope.into(), now).await?;
            if json {
                let mut row = key_json(&key);
                row["key"] = raw.expose().into();
                println!("{row}");
            } else {
                println!(
                    "created key {} ({}, source {}, scope {})",
                    key.id,
                    key.name,
                    key.source,
                    key.scope.as_str()
                );
                println!("key: {}", raw.expose());
                println!("This is the only time the key is shown: store it now.");
            }
        }
        AdminCommand::Keys { workspace } => {
            let store = store()?;
            let keys = admin::keys(&store, &workspace).await?;
            if json {
                println!(
                    "{}",
                    serde_json::Value::from(keys.iter().map(key_json).collect::<Vec<_>>())
                );
            } else if keys.is_empty() {
                println!("no keys in {workspace}");
            } else {
                for k in keys {
                    let used = k.last_used_ms.map_or("never used".to_owned(), |t| {
                        format!("last used {}", rfc3339(t))
                    });
                    println!(
                        "{}  {} ({}…, source {}, scope {}, {}, {used})",
                        k.id,
                        k.name,
                        k.prefix,
                        k.source,
                        k.scope.as_str(),
                        k.state.as_str()
                    );
                }
            }
        }
        AdminCommand::Prices { workspace } => {
            let store = store()?;
            let prices = admin::prices(&store, &workspace).await?;
            if json {
                println!("{}", serde_json::to_value(&prices)?);
            } else if prices.rules.is_empty() {
                println!(
                    "no price rules in {workspace}: every event is priced by the bundled table"
                );
            } else {
                for r in &prices.rules {
                    println!("{}", r.summary());
                }
            }
        }
        AdminCommand::AddPrice {
            workspace,
            provider,
            model,
            discount,
            input,
            output,
            cached_input,
            cache_write,
            reasoning,
            batch_percent,
            from,
            to,
            note,
        } => {
            let price = match (discount, input, output) {
                (Some(percent), _, _) => RulePrice::Discount { percent },
                (None, Some(input), Some(output)) => RulePrice::Rates {
                    rates: UsdPerMillion {
                        input,
                        output,
                        cached_input,
                        cache_write,
                        cache_write_1h: None,
                        reasoning,
                        audio_input: None,
                        audio_output: None,
                        image_input: None,
                        image_output: None,
                    },
                    batch_percent,
                },
                _ => anyhow::bail!("give --discount, or --input and --output"),
            };
            let rule = PriceRule {
                id: String::new(),
                provider,
                model,
                effective_from: from,
                effective_to: to,
                price,
                note,
                updated_at: String::new(),
            };
            let store = store()?;
            let rule = admin::change_price(&store, &workspace, PriceChange::Add(rule), now).await?;
            if json {
                println!("{}", serde_json::to_value(&rule)?);
            } else {
                println!("added {}", rule.summary());
                println!(
                    "It prices events as they arrive; stored events keep their cost until \
                     `llmtrack admin reprice --workspace {workspace}` rewrites them."
                );
            }
        }
        AdminCommand::RemovePrice { workspace, price } => {
            let store = store()?;
            let rule =
                admin::change_price(&store, &workspace, PriceChange::Remove(price), now).await?;
            if json {
                println!("{}", serde_json::to_value(&rule)?);
            } else {
                println!("removed {}", rule.summary());
            }
        }
        AdminCommand::Connections { command } => {
            existing(data_dir)?;
            // Imports mail nothing and link nowhere: the default origin will do.
            let options = crate::Options {
                public_url: DEFAULT_PUBLIC_URL.to_owned(),
                ..Default::default()
            };
            let parts = crate::local_parts(data_dir, &options)?;
            crate::connections::run(&parts.reconciliation().deps, command, json).await?;
        }
        AdminCommand::Reprice {
            workspace,
            from,
            to,
            apply,
        } => {
            existing(data_dir)?;
            // A repricing mails nothing and links nowhere: the default origin will do.
            let options = crate::Options {
                public_url: DEFAULT_PUBLIC_URL.to_owned(),
                ..Default::default()
            };
            let parts = crate::local_parts(data_dir, &options)?;
            let request = RepricingRequest {
                from: from.map(serde_json::Value::from),
                to: to.map(serde_json::Value::from),
                dry_run: !apply,
            };
            let done = admin::reprice(&parts, &workspace, request).await?;
            if json {
                println!("{}", serde_json::to_value(&done)?);
            } else {
                print_repricing(&done);
            }
        }
        AdminCommand::RevokeKey { workspace, key } => {
            let store = store()?;
            let k = admin::revoke_key(&store, &workspace, &key, now).await?;
            if json {
                println!("{}", key_json(&k));
            } else {
                println!(
                    "key {} ({}) is revoked: requests with it are refused",
                    k.id, k.name
                );
            }
        }
        AdminCommand::AddMember {
            workspace,
            email,
            role,
        } => {
            let store = store()?;
            let m = admin::add_member(&store, &workspace, &email, role.into(), now).await?;
            if json {
                println!(
                    "{}",
                    json!({"workspace": m.workspace_id, "user_id": m.user_id, "email": m.email.as_str(), "role": m.role})
                );
            } else {
                println!(
                    "{} is now {} of {}",
                    m.email.as_str(),
                    m.role.as_str(),
                    m.workspace_id
                );
            }
        }
        AdminCommand::Members { workspace } => {
            let store = store()?;
            let members = admin::members(&store, &workspace).await?;
            if json {
                let rows: Vec<_> = members
                    .iter()
                    .map(|m| json!({"user_id": m.user_id, "email": m.email.as_str(), "role": m.role, "since": rfc3339(m.since_ms)}))
                    .collect();
                println!("{}", serde_json::Value::from(rows));
            } else if members.is_empty() {
                println!(
                    "no members in {workspace}: `llmtrack admin add-member --workspace {workspace} --email EMAIL --role owner`"
                );
            } else {
                for m in members {
                    println!(
                        "{}  {} (since {})",
                        m.email.as_str(),
                        m.role.as_str(),
                        rfc3339(m.since_ms)
                    );
                }
            }
        }
        AdminCommand::Backup { to } => {
            let store = store()?;
            let copied = crate::backup::backup(&store, data_dir, &to).await?;
            if json {
                println!("{}", copied.to_json());
            } else {
                println!(
                    "backed up {} to {}: the store ({} bytes), {} report files, {} secrets",
                    data_dir.display(),
                    to.display(),
                    copied.store_bytes,
                    copied.files,
                    copied.secrets
                );
            }
        }
        AdminCommand::Restore { from } => {
            let copied = crate::backup::restore(&from, data_dir)?;
            if json {
                println!("{}", copied.to_json());
            } else {
                println!(
                    "restored {} into {}: the store ({} bytes), {} report files, {} secrets; \
                     start `llmtrack serve --data-dir {}`",
                    from.display(),
                    data_dir.display(),
                    copied.store_bytes,
                    copied.files,
                    copied.secrets,
                    data_dir.display()
                );
            }
        }
        AdminCommand::SetPlan { workspace, plan } => {
            let store = store()?;
            let plan = Plan::from(plan);
            let pass = admin::set_plan(&store, &workspace, plan, now).await?;
            let retained = match pass {
                Some(job) => Some(admin::run_retention(Arc::new(store), job).await?),
                None => None,
            };
            if json {
                println!(
                    "{}",
                    json!({"workspace": workspace, "plan": plan, "retention": retained})
                );
            } else {
                println!("workspace {workspace} is now on the {} plan", plan.as_str());
                if let Some(r) = retained {
                    println!(
                        "retention: {} events kept for the new window, {} deleted; {} rollups kept, {} deleted",
                        r["events_kept"],
                        r["events_deleted"],
                        r["rollups_kept"],
                        r["rollups_deleted"]
                    );
                }
            }
        }
    }
    Ok(())
}

fn key_json(k: &ApiKey) -> serde_json::Value {
    json!({"id": k.id, "workspace": k.workspace_id, "name": k.name, "source": k.source,
           "scope": k.scope, "state": k.state, "prefix": k.prefix,
           "created_at": rfc3339(k.created_ms), "last_used_at": k.last_used_ms.map(rfc3339)})
}

/// Parses the command line and runs it; returns the process's exit code. A mistake (bad input,
/// a missing workspace, a busy data directory) prints `error: …` and exits 1, with no backtrace
/// whatever `RUST_BACKTRACE` says: it is the operator's to fix, not a crash.
pub async fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and --version print to stdout and succeed; usage errors print clap's own
            // `error: …` with the usage line.
            let _ = e.print();
            return if e.use_stderr() {
                std::process::ExitCode::FAILURE
            } else {
                std::process::ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Serve { .. } => llmtrack_shared::telemetry::init(),
        _ => llmtrack_shared::telemetry::init_for_command(),
    }
    match cli.run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
