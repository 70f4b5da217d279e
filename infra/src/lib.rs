//! The local all-in-one LLMtrack: every function's router on one server over the SQLite store, and
//! the operator commands (`admin`). What runs here is what runs on Lambda: the same routers.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use llmtrack_account::AccountState;
use llmtrack_billing::BillingState;
use llmtrack_deletion::DeletionState;
use llmtrack_deletion::job as deletion_job;
use llmtrack_ingest::IngestState;
use llmtrack_keys::KeysState;
use llmtrack_query::QueryState;
use llmtrack_shared::ApiError;
use llmtrack_shared::adapters::folder::{self, FolderArchive};
use llmtrack_shared::adapters::keyfile::KeyFileVault;
use llmtrack_shared::adapters::outbox::Outbox;
use llmtrack_shared::adapters::providers::ProviderClient;
use llmtrack_shared::adapters::smtp::SmtpMailer;
use llmtrack_shared::adapters::sqlite::SqliteStore;
use llmtrack_shared::adapters::stripe::StripeApi;
use llmtrack_shared::auth::Gate;
use llmtrack_shared::config::StripeConfig;
use llmtrack_shared::config::WebConfig;
use llmtrack_shared::domain::pricing::PriceTable;
use llmtrack_shared::ports::Payments;
use llmtrack_shared::ports::{
    DynClock, DynMailer, DynProviderApi, DynStore, DynVault, SystemClock,
};
use llmtrack_shared::ratelimit::RequestLimits;
use llmtrack_shared::retention_job;

pub mod admin;
pub mod backup;
pub mod cli;
pub mod connections;
pub mod dashboard;
pub mod demo;
pub mod openapi;
pub mod server;

/// What the local app is made of: the adapters every router shares.
#[derive(Clone)]
pub struct Parts {
    pub store: DynStore,
    /// The same store when it is SQLite: upkeep deletes what has expired, as DynamoDB's TTL
    /// does on its own.
    pub sqlite: Option<SqliteStore>,
    pub clock: DynClock,
    pub mailer: DynMailer,
    pub web: WebConfig,
    /// Reports and large exports, served back through signed links at `/v1/archive/...`.
    pub archive: Arc<FolderArchive>,
    /// Stripe, when the `STRIPE_*` variables are set; otherwise billing answers "not configured".
    pub stripe: Option<Arc<dyn Payments>>,
    /// The key alert rules' webhook secrets are derived from (`DATA_DIR/.alert-signing-key`).
    pub alert_key: Vec<u8>,
    /// Whether alert webhooks may go to plain-http loopback receivers (development only: any
    /// workspace admin could otherwise reach the server's local ports).
    pub allow_local_webhooks: bool,
    /// The providers' billing APIs (`OPENAI_API_BASE`, `ANTHROPIC_API_BASE`).
    pub providers: DynProviderApi,
    /// Seals provider admin keys with `DATA_DIR/secrets.key`, which the store never holds.
    pub vault: DynVault,
}

impl Parts {
    pub fn billing(&self) -> BillingState {
        BillingState {
            gate: Gate::new(&self.store, &self.clock, &self.web),
            store: llmtrack_billing::BillingPorts::of(&self.store),
            retention: retention_job::RetentionPorts::of(&self.store),
            clock: self.clock.clone(),
            mailer: self.mailer.clone(),
            web: self.web.clone(),
            stripe: self.stripe.clone(),
            run_jobs_here: true,
        }
    }

    pub fn reports(&self) -> llmtrack_reports::Deps {
        llmtrack_reports::Deps {
            store: llmtrack_reports::ReportsPorts::of(&self.store),
            clock: self.clock.clone(),
            archive: self.archive.clone(),
            mailer: self.mailer.clone(),
            public_url: self.web.public_url.clone(),
        }
    }

    pub fn digests(&self) -> llmtrack_reports::digest::DigestDeps {
        llmtrack_reports::digest::DigestDeps {
            store: llmtrack_reports::digest::DigestPorts::of(&self.store),
            clock: self.clock.clone(),
            mailer: self.mailer.clone(),
            public_url: self.web.public_url.clone(),
        }
    }

    pub fn reconciliation(&self) -> llmtrack_reconciliation::ReconciliationState {
        llmtrack_reconciliation::ReconciliationState {
            gate: Gate::new(&self.store, &self.clock, &self.web),
            deps: llmtrack_reconciliation::Deps {
                store: llmtrack_reconciliation::ReconciliationPorts::of(&self.store),
                clock: self.clock.clone(),
                providers: self.providers.clone(),
                vault: self.vault.clone(),
            },
        }
    }

    pub fn alerts(&self) -> llmtrack_alerts::AlertsState {
        llmtrack_alerts::AlertsState {
            gate: Gate::new(&self.store, &self.clock, &self.web),
            deps: llmtrack_alerts::Deps {
                store: llmtrack_alerts::AlertsPorts::of(&self.store),
                clock: self.clock.clone(),
                mailer: self.mailer.clone(),
                public_url: self.web.public_url.clone(),
                signing_key: self.alert_key.clone(),
                allow_local_http: self.allow_local_webhooks,
                vault: self.vault.clone(),
            },
            web: self.web.clone(),
        }
    }

    pub fn deletion(&self) -> DeletionState {
        DeletionState {
            gate: Gate::new(&self.store, &self.clock, &self.web),
            deps: deletion_job::Deps {
                store: deletion_job::DeletionPorts::of(&self.store),
                clock: self.clock.clone(),
                archive: self.archive.clone(),
                mailer: self.mailer.clone(),
                payments: self.stripe.clone(),
                public_url: self.web.public_url.clone(),
                page: deletion_job::PURGE_PAGE,
                in_flight_ms: 0,
                backups: llmtrack_shared::domain::deletion::Backups::Operator,
            },
            web: self.web.clone(),
            run_jobs_here: true,
        }
    }
}

/// Every function's routes on one router.
pub fn app(p: Parts) -> axum::Router {
    let (ingest, _) = llmtrack_ingest::router(IngestState {
        store: llmtrack_ingest::IngestPorts::of(&p.store),
        clock: p.clock.clone(),
        prices: PriceTable::bundled(),
        limits: RequestLimits::ingest(p.web.trusted_proxies.clone()),
    })
    .split_for_parts();
    let (query, _) = llmtrack_query::router(QueryState {
        gate: Gate::new(&p.store, &p.clock, &p.web),
        store: llmtrack_query::QueryPorts::of(&p.store),
        clock: p.clock.clone(),
        archive: p.archive.clone(),
        run_jobs_here: true,
        web: p.web.clone(),
        limits: RequestLimits::query(p.web.trusted_proxies.clone()),
        check_limits: RequestLimits::ingest(p.web.trusted_proxies.clone()),
    })
    .split_for_parts();
    let archive = axum::Router::new()
        .route("/v1/archive/{*key}", axum::routing::get(folder::download))
        .with_state(p.archive.clone());
    let (keys, _) = llmtrack_keys::router(KeysState::new(&p.store, p.clock.clone(), p.web.clone()))
        .split_for_parts();
    let (billing, _) = llmtrack_billing::router(p.billing()).split_for_parts();
    let (deletion, _) = llmtrack_deletion::router(p.deletion()).split_for_parts();
    let (alerts, _) = llmtrack_alerts::router(p.alerts()).split_for_parts();
    let (reconciliation, _) = llmtrack_reconciliation::router(p.reconciliation()).split_for_parts();
    let (reports, _) = llmtrack_reports::router(llmtrack_reports::ReportsState {
        gate: Gate::new(&p.store, &p.clock, &p.web),
        deps: p.reports(),
    })
    .split_for_parts();
    let (account, _) = llmtrack_account::router(AccountState {
        gate: Gate::new(&p.store, &p.clock, &p.web),
        store: llmtrack_account::AccountPorts::of(&p.store),
        clock: p.clock,
        mailer: p.mailer,
        web: p.web,
        // Self-hosters set LLMTRACK_SUPPORT_EMAIL once the address really receives mail.
        support_email: std::env::var("LLMTRACK_SUPPORT_EMAIL")
            .ok()
            .filter(|s| !s.trim().is_empty()),
        billing_configured: p.stripe.is_some(),
    })
    .split_for_parts();
    let api = ingest
        .merge(query)
        .merge(keys)
        .merge(account)
        .merge(billing)
        .merge(deletion)
        .merge(reports)
        .merge(alerts)
        .merge(reconciliation)
        .merge(llmtrack_docs::router())
        .merge(archive)
        .fallback(not_found);
    llmtrack_shared::http::harden(api)
}

/// Anything no API route took: a dashboard file or page, else the API's JSON 404.
async fn not_found(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if let Some(page) = dashboard::respond(&method, &uri, &headers) {
        return page;
    }
    ApiError::NotFound("no such endpoint; see /v1/openapi.json".into()).into_response()
}

/// The store's file in a data directory.
pub const STORE_FILE: &str = "llmtrack.sqlite3";

/// Opens (or creates) the store inside a data directory.
pub fn open_store(data_dir: &Path) -> anyhow::Result<SqliteStore> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    SqliteStore::open(&data_dir.join(STORE_FILE))
}

/// Holds the data directory for this process until the file is dropped: a second server on
/// the same directory would run every scheduled job twice and race the first for its files.
/// The lock is the kernel's, so a server that dies releases it.
pub fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Read as _, Seek as _, Write as _};
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let path = data_dir.join("serve.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            // The holder's pid, for the message a second server prints.
            file.set_len(0)?;
            file.rewind()?;
            write!(file, "{}", std::process::id())?;
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            let holder = if pid.is_empty() {
                String::new()
            } else {
                format!(" (pid {pid})")
            };
            Err(anyhow::anyhow!(
                "another llmtrack server{holder} is using the data directory {}: stop it, or                  pass another --data-dir",
                data_dir.display()
            ))
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// How the local server is set up besides its data directory.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The dashboard's origin, for links in emails and the cross-site check.
    pub public_url: String,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Let alert webhooks go to `http://127.0.0.1` (development).
    pub allow_local_webhooks: bool,
    /// Send mail through this SMTP server; without it, mail is written to the outbox folder.
    pub smtp: Option<Smtp>,
}

/// Where mail goes on a self-hosted server.
#[derive(Clone, Default)]
pub struct Smtp {
    /// `smtps://user:password@host` and the like (a secret: never printed).
    pub url: String,
    /// The sender, e.g. `LLMtrack <llmtrack@example.com>`.
    pub from: String,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp")
            .field("url", &"…")
            .field("from", &self.from)
            .finish()
    }
}

/// The local parts: SQLite and the outbox folder in the data directory.
pub fn local_parts(data_dir: &Path, options: &Options) -> anyhow::Result<Parts> {
    let public_url = options.public_url.as_str();
    let sqlite = open_store(data_dir)?;
    Ok(Parts {
        store: Arc::new(sqlite.clone()),
        sqlite: Some(sqlite),
        clock: Arc::new(SystemClock),
        mailer: match &options.smtp {
            Some(smtp) => Arc::new(SmtpMailer::new(&smtp.url, &smtp.from)?),
            None => Arc::new(Outbox::new(data_dir.join("outbox"))?),
        },
        web: WebConfig::new(public_url, options.trusted_proxies.clone())?,
        archive: Arc::new(FolderArchive::open(&data_dir.join("archive"), public_url)?),
        stripe: match StripeConfig::from_env()? {
            Some(c) => Some(Arc::new(StripeApi::new(c)?)),
            None => None,
        },
        alert_key: folder::load_or_create_secret(&data_dir.join(".alert-signing-key"))?,
        allow_local_webhooks: options.allow_local_webhooks,
        providers: Arc::new(ProviderClient::from_env()),
        vault: Arc::new(KeyFileVault::open_or_create(data_dir)?),
    })
}

/// How often `serve` does its background upkeep.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Background upkeep of the local server, what schedules do on AWS: ends grace periods and
/// cancelled paid periods, runs pending retention passes, carries on deletions that stalled,
/// and deletes what has expired (the local stand-in for DynamoDB's TTL).
pub async fn upkeep(parts: &Parts) -> anyhow::Result<()> {
    // Each task on its own: one failing (a Stripe outage, a corrupt rule) must not hold up the
    // others; all failures are reported together.
    let mut failed = Vec::new();
    let mut note = |task: &str, r: anyhow::Result<()>| {
        if let Err(e) = r {
            failed.push(format!("{task}: {e:#}"));
        }
    };
    note(
        "billing sweep",
        llmtrack_billing::sweep(&parts.billing()).await.map(drop),
    );
    note(
        "retention passes",
        retention_job::resume(
            &retention_job::RetentionPorts::of(&parts.store),
            &parts.clock,
        )
        .await
        .map(drop),
    );
    // A deletion or a repricing saves progress every page: one quiet for a minute is not running.
    note(
        "deletions",
        llmtrack_deletion::resume_jobs(&parts.deletion().deps, 60_000, None)
            .await
            .map(drop),
    );
    // The first of the month's reports (the schedule's work on AWS).
    note(
        "monthly reports",
        llmtrack_reports::run_due(&parts.reports()).await.map(drop),
    );
    // The weekly digests due (Monday from 08:00 in each workspace's timezone; hourly on AWS).
    note(
        "weekly digests",
        llmtrack_reports::digest::run(&parts.digests(), parts.clock.now_ms())
            .await
            .map(drop),
    );
    // Alert rules, every minute (every 5 on AWS).
    note(
        "alerts",
        llmtrack_alerts::evaluate::all(&parts.alerts().deps)
            .await
            .map(drop),
    );
    // Provider bills: each connection every 12 hours (daily on AWS), sooner after a failure.
    note(
        "provider imports",
        llmtrack_reconciliation::import::all(&parts.reconciliation().deps)
            .await
            .map(drop),
    );
    // Export files expire two days after they were written, as the bucket's lifecycle rule
    // does on AWS (their links last an hour).
    note(
        "export files",
        parts
            .archive
            .expire(
                "exports/",
                std::time::SystemTime::now() - llmtrack_query::export::FILES_KEPT,
            )
            .await
            .map(drop),
    );
    if let Some(sqlite) = &parts.sqlite {
        note(
            "expiry",
            sqlite
                .purge_expired(parts.clock.now_ms())
                .await
                .map(drop)
                .map_err(Into::into),
        );
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(failed.join("; ")))
    }
}

/// `llmtrack serve`: runs until Ctrl-C or SIGTERM.
pub async fn serve(addr: SocketAddr, data_dir: &Path, options: Options) -> anyhow::Result<()> {
    let _lock = lock_data_dir(data_dir)?;
    let parts = local_parts(data_dir, &options)?;
    // Jobs a previous run left unfinished (exports) start over in the background.
    {
        let store = llmtrack_query::QueryPorts::of(&parts.store);
        let clock = parts.clock.clone();
        let archive: llmtrack_shared::ports::DynArchive = parts.archive.clone();
        tokio::spawn(async move {
            match llmtrack_query::export::resume(&store, &archive, &clock).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(jobs = n, "resumed unfinished export jobs"),
                Err(e) => tracing::error!(error = format!("{e:#}"), "resuming export jobs failed"),
            }
        });
    }
    {
        // Deletions and repricings a previous run left unfinished carry on from their saved
        // progress.
        let deps = parts.deletion().deps;
        tokio::spawn(async move {
            match llmtrack_deletion::resume_jobs(&deps, 0, None).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(jobs = n, "resumed unfinished deletions and repricings"),
                Err(e) => tracing::error!(
                    error = format!("{e:#}"),
                    "resuming deletions and repricings failed"
                ),
            }
        });
    }
    {
        let parts = parts.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(UPKEEP_EVERY);
            loop {
                tick.tick().await;
                if let Err(e) = upkeep(&parts).await {
                    tracing::error!(error = format!("{e:#}"), "upkeep failed");
                }
            }
        });
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let mail = match &options.smtp {
        Some(_) => "sent by SMTP".to_owned(),
        None => format!("written to {}", data_dir.join("outbox").display()),
    };
    tracing::info!(%addr, data_dir = %data_dir.display(), mail, "llmtrack serving on http://{addr}");
    server::run(
        listener,
        app(parts),
        server::Limits::default(),
        options.trusted_proxies,
        shutdown_signal(),
    )
    .await
    .context("server failed")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
