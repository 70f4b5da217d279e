//! The deletion function: owners delete a workspace's usage data (a range, one source, or all of
//! it), a whole workspace, or their account. Each request is checked (owner only, the
//! workspace's name or the account's email typed back), answered 202 with a job at once, and
//! carried out by a resumable job (`job`) that ends with a receipt the owner can read and is
//! emailed. From the moment a whole-workspace deletion is accepted, the workspace's keys stop
//! working and its data is no longer shown (`auth`), before anything is deleted.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use llmtrack_shared::auth::{self, Gate, Member, SignedIn};
use llmtrack_shared::config::WebConfig;
use llmtrack_shared::domain::access::{Action, Role};
use llmtrack_shared::domain::audit::AuditEntry;
use llmtrack_shared::domain::deletion::{self, DeletionRequest, JOB_KIND, Scope};
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::domain::time::rfc3339;
use llmtrack_shared::extract::Json;
use llmtrack_shared::ports::{Job, JobState, Mail, StoreError, Workspace, unfinished_jobs_of};
use llmtrack_shared::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod job;
pub mod repricing;

/// The Lambda functions' parts: DynamoDB, S3 and SES. Stripe is the worker's alone
/// (`with_stripe`), so the HTTP function does not link it.
#[cfg(feature = "lambda")]
pub async fn lambda_deps(
    store: &llmtrack_shared::adapters::dynamodb::DynamoStore,
) -> anyhow::Result<Deps> {
    use std::sync::Arc;

    use llmtrack_shared::adapters::s3::S3Archive;
    use llmtrack_shared::adapters::ses::Ses;
    use llmtrack_shared::config::{MailConfig, required};
    let mail = MailConfig::from_env()?;
    let in_flight_ms = store.in_flight_ms();
    let store: llmtrack_shared::ports::DynStore = Arc::new(store.clone());
    Ok(Deps {
        in_flight_ms,
        backups: llmtrack_shared::domain::deletion::Backups::PointInTimeRecovery,
        store: job::DeletionPorts::of(&store),
        clock: Arc::new(llmtrack_shared::ports::SystemClock),
        archive: Arc::new(S3Archive::from_env(&required("ARCHIVE_BUCKET")?).await),
        mailer: Arc::new(Ses::from_env(&mail.from).await),
        payments: None,
        public_url: WebConfig::from_env()?.public_url,
        page: job::PURGE_PAGE,
    })
}

/// Adds Stripe, when configured, to the worker's parts: it cancels deleted workspaces'
/// subscriptions.
#[cfg(feature = "lambda")]
pub fn with_stripe(mut deps: Deps) -> anyhow::Result<Deps> {
    use llmtrack_shared::config::StripeConfig;
    if let Some(c) = StripeConfig::from_env()? {
        deps.payments = Some(std::sync::Arc::new(
            llmtrack_shared::adapters::stripe::StripeApi::new(c)?,
        ));
    }
    Ok(deps)
}

use job::{Deps, Notify, Spec};

/// Runs a job of either kind this function carries out: a deletion or a repricing.
pub async fn run_job(
    deps: &Deps,
    job: Job,
    deadline: Option<std::time::Instant>,
) -> anyhow::Result<job::Ran> {
    match job.kind.as_str() {
        llmtrack_shared::domain::repricing::JOB_KIND => repricing::run(deps, job, deadline).await,
        _ => job::run(deps, job, deadline).await,
    }
}

/// Carries on the unfinished jobs of both kinds quiet for `idle_ms` (0: all of them).
pub async fn resume_jobs(
    deps: &Deps,
    idle_ms: i64,
    deadline: Option<std::time::Instant>,
) -> anyhow::Result<usize> {
    Ok(job::resume(deps, idle_ms, deadline).await?
        + repricing::resume(deps, idle_ms, deadline).await?)
}

#[derive(Clone)]
pub struct DeletionState {
    pub gate: Gate,
    pub deps: Deps,
    pub web: WebConfig,
    /// Run jobs in this process (`llmtrack serve`); on AWS the deletion worker runs them from
    /// the table's stream.
    pub run_jobs_here: bool,
}

fn routes() -> OpenApiRouter<DeletionState> {
    OpenApiRouter::new()
        .routes(routes!(create_deletion))
        .routes(routes!(get_deletion))
        .routes(routes!(account_deletion_preview, delete_account))
        .routes(routes!(repricing::create_repricing))
        .routes(routes!(repricing::get_repricing))
}

pub fn router(state: DeletionState) -> OpenApiRouter {
    llmtrack_shared::openapi::strict_query(routes()).with_state(state)
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

type Result<T> = std::result::Result<T, ApiError>;

/// The scope of a deletion, as shown.
#[derive(Serialize, ToSchema)]
pub struct ScopeView {
    /// `usage` or `workspace`.
    scope: &'static str,
    from: Option<String>,
    to: Option<String>,
    source: Option<String>,
}

impl From<&Scope> for ScopeView {
    fn from(s: &Scope) -> Self {
        match s {
            Scope::Usage {
                from_ms,
                to_ms,
                source,
            } => ScopeView {
                scope: "usage",
                from: Some(rfc3339(*from_ms)),
                to: Some(rfc3339(*to_ms)),
                source: source.clone(),
            },
            Scope::Workspace => ScopeView {
                scope: "workspace",
                from: None,
                to: None,
                source: None,
            },
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ReceiptView {
    /// Items deleted, by kind (`events`, `rollups`, `keys`, `members`, `archive_objects`...).
    deleted: BTreeMap<String, u64>,
    started_at: String,
    finished_at: Option<String>,
    /// What backups may still hold, and for how long.
    backups: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct DeletionView {
    id: String,
    workspace: String,
    scope: ScopeView,
    state: JobState,
    /// Usage deletions: hours looked at so far, of how many.
    hours_done: Option<i64>,
    hours_total: Option<i64>,
    /// Items deleted so far, by kind.
    deleted: BTreeMap<String, u64>,
    created_at: String,
    /// Once the job is done.
    receipt: Option<ReceiptView>,
}

fn view(job: &Job, backups: deletion::Backups) -> Result<DeletionView> {
    let spec = job::spec_of(job)?;
    let progress = job::progress_of(job);
    let hours = job::hours_done(job, &progress);
    let receipt = progress.receipt;
    Ok(DeletionView {
        id: job.id.clone(),
        workspace: job.workspace.to_string(),
        scope: ScopeView::from(&spec.scope),
        state: job.state,
        hours_done: hours.map(|h| h.0),
        hours_total: hours.map(|h| h.1),
        // A whole workspace's receipt is its census, written at the end; until then, what the
        // purge has deleted so far.
        deleted: if progress.purged.is_empty() || job.state == JobState::Done {
            receipt.deleted.clone()
        } else {
            progress.purged.clone()
        },
        created_at: rfc3339(job.created_ms),
        receipt: (job.state == JobState::Done).then(|| ReceiptView {
            deleted: receipt.deleted,
            started_at: rfc3339(receipt.started_ms),
            finished_at: receipt.finished_ms.map(rfc3339),
            backups: backups.notice(),
        }),
    })
}

impl DeletionState {
    fn spawn(&self, job: Job) {
        if !self.run_jobs_here {
            return;
        }
        let deps = self.deps.clone();
        tokio::spawn(async move {
            let (id, kind) = (job.id.clone(), job.kind.clone());
            if let Err(e) = run_job(&deps, job, None).await {
                // Progress is saved: the next start (or upkeep) carries on.
                tracing::error!(job = %id, kind, error = format!("{e:#}"), "job failed; it will be resumed");
            }
        });
    }

    /// Starts a deletion job for `ws`; None when the workspace is already being deleted.
    async fn begin(&self, who: &SignedIn, ws: &Workspace, scope: Scope) -> Result<Option<Job>> {
        let now = self.deps.clock.now_ms();
        let whole = scope == Scope::Workspace;
        let spec = Spec {
            scope,
            requested_by: who.user.id.clone(),
            notify: Some(Notify {
                email: who.user.email.as_str().to_owned(),
                workspace_name: ws.name.clone(),
            }),
            purge_after_ms: now + self.deps.in_flight_ms,
        };
        let job = job::new_job(&ws.id, &spec, now)?;
        if !whole {
            // The workspace keeps its audit log; a whole deletion's record is the job itself.
            let entry = AuditEntry::new(
                &ws.id,
                now,
                who.user.id.as_str(),
                Some(who.user.email.as_str()),
                "data.delete",
                Some(job.id.clone()),
                None,
            );
            self.deps.store.audit_log.append_audit(&entry).await?;
        }
        if !self.deps.store.erasure.begin_deletion(&job, whole).await? {
            return Ok(None);
        }
        tracing::info!(workspace = %ws.id, job = %job.id, whole, "deletion accepted");
        Ok(Some(job))
    }
}

fn accepted(body: impl Serialize) -> Response {
    (StatusCode::ACCEPTED, axum::Json(body)).into_response()
}

/// Delete a workspace's usage data (`scope: usage`, optionally `from`, `to` and `source`) or
/// the whole workspace (`scope: workspace`). Owners only; `confirm` is the workspace's name.
#[utoipa::path(post, path = "/v1/workspaces/{id}/deletions", tag = "deletion",
    params(("id" = String, Path, description = "The workspace")), request_body = DeletionRequest,
    responses((status = 202, body = DeletionView, description = "Accepted: the job runs in the background"),
        (status = 400, description = "Bad scope, range or confirmation"),
        (status = 401, description = "No session"), (status = 403, description = "Not an owner"),
        (status = 404, description = "No such workspace among yours"),
        (status = 409, description = "A deletion covering the same data is already running")))]
async fn create_deletion(
    State(s): State<DeletionState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(req): Json<DeletionRequest>,
) -> Result<Response> {
    let Member {
        who, workspace: ws, ..
    } = s.gate.member(&headers, &id, Action::DeleteData).await?;
    let scope = req
        .check(&ws.name, s.deps.clock.now_ms())
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidDeletion, e.message))?;
    for running in unfinished_jobs_of(s.deps.store.jobs.as_ref(), JOB_KIND).await? {
        if running.workspace == ws.id && job::spec_of(&running)?.scope.overlaps(&scope) {
            return Err(ApiError::Conflict(format!(
                "deletion `{}` of this workspace covers the same data and is still running; wait for it to finish",
                running.id
            )));
        }
    }
    let job = s
        .begin(&who, &ws, scope)
        .await?
        .ok_or_else(|| ApiError::Conflict("the workspace is already being deleted".into()))?;
    let body = view(&job, s.deps.backups)?;
    s.spawn(job);
    Ok(accepted(body))
}

/// A deletion job: its state and progress, and its receipt once done. Readable by the
/// workspace's owners, and by whoever asked for it even after the workspace is gone.
#[utoipa::path(get, path = "/v1/workspaces/{id}/deletions/{job}", tag = "deletion",
    params(("id" = String, Path, description = "The workspace"), ("job" = String, Path, description = "The deletion job")),
    responses((status = 200, body = DeletionView),
        (status = 401, description = "No session"), (status = 403, description = "Not an owner"),
        (status = 404, description = "No such deletion among yours")))]
async fn get_deletion(
    State(s): State<DeletionState>,
    headers: HeaderMap,
    Path((id, job_id)): Path<(String, String)>,
) -> Result<axum::Json<DeletionView>> {
    let who = s.gate.session(&headers).await?;
    let not_found = || ApiError::NotFound(format!("deletion `{job_id}` not found"));
    let ws = WorkspaceId::parse(&id).ok_or_else(not_found)?;
    let job = s
        .deps
        .store
        .jobs
        .job(&ws, &job_id)
        .await?
        .filter(|j| j.kind == JOB_KIND)
        .ok_or_else(not_found)?;
    if job::spec_of(&job)?.requested_by != who.user.id {
        // Not theirs: an owner of the workspace may read it; a member learns it is not for them.
        let m = s
            .deps
            .store
            .members
            .member(&ws, &who.user.id)
            .await?
            .ok_or_else(not_found)?;
        auth::require(m.role, Action::DeleteData)?;
    }
    Ok(axum::Json(view(&job, s.deps.backups)?))
}

/// What deleting the signed-in account would delete.
#[derive(Serialize, ToSchema)]
pub struct AccountDeletionPreview {
    email: String,
    /// Workspaces where you are the only owner: deleted with the account, everything in them.
    /// Name them all in `workspaces` to confirm.
    workspaces_deleted: Vec<WorkspaceRef>,
    /// Workspaces you leave; they and their data stay with their other owners.
    workspaces_left: Vec<WorkspaceRef>,
}

#[derive(Serialize, ToSchema)]
pub struct WorkspaceRef {
    id: String,
    name: String,
}

/// The account's workspaces: those it alone owns (deleted with it), those it leaves, and
/// those already being deleted at its request (an earlier, interrupted request).
struct AccountPlan {
    sole: Vec<Workspace>,
    left: Vec<Workspace>,
    deleting: BTreeSet<WorkspaceId>,
}

async fn account_plan(s: &DeletionState, who: &SignedIn) -> Result<AccountPlan> {
    let store = &s.deps.store;
    let mut plan = AccountPlan {
        sole: Vec::new(),
        left: Vec::new(),
        deleting: BTreeSet::new(),
    };
    for m in store.members.memberships(&who.user.id).await? {
        let Some(ws) = store.workspaces.workspace(&m.workspace_id).await? else {
            continue;
        };
        if ws.deleting.is_some() {
            plan.deleting.insert(ws.id);
            continue;
        }
        let owners = store
            .members
            .members(&ws.id)
            .await?
            .iter()
            .filter(|o| o.role == Role::Owner)
            .count();
        if m.role == Role::Owner && owners == 1 {
            plan.sole.push(ws);
        } else {
            plan.left.push(ws);
        }
    }
    Ok(plan)
}

fn refs(list: &[Workspace]) -> Vec<WorkspaceRef> {
    list.iter()
        .map(|w| WorkspaceRef {
            id: w.id.to_string(),
            name: w.name.clone(),
        })
        .collect()
}

/// What deleting your account would delete: the workspaces you alone own, and those you would
/// leave.
#[utoipa::path(get, path = "/v1/account/deletion", tag = "deletion",
    responses((status = 200, body = AccountDeletionPreview), (status = 401, description = "No session")))]
async fn account_deletion_preview(
    State(s): State<DeletionState>,
    headers: HeaderMap,
) -> Result<axum::Json<AccountDeletionPreview>> {
    let who = s.gate.session(&headers).await?;
    let plan = account_plan(&s, &who).await?;
    Ok(axum::Json(AccountDeletionPreview {
        email: who.user.email.as_str().to_owned(),
        workspaces_deleted: refs(&plan.sole),
        workspaces_left: refs(&plan.left),
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct AccountDeletionRequest {
    /// The account's email address, typed back.
    confirm: String,
    /// Every workspace you are the only owner of (see `GET /v1/account/deletion`): they are
    /// deleted with the account. Nothing is deleted unless the list is exactly right.
    #[serde(default)]
    workspaces: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AccountDeletionView {
    /// The deletions of the workspaces you alone owned; each emails its own receipt.
    jobs: Vec<DeletionView>,
    /// The account's own records deleted: sessions, memberships, the user.
    deleted: BTreeMap<String, u64>,
}

/// Delete your account: you leave the workspaces others also own, the workspaces you alone own
/// are deleted (as jobs), and your sessions and user record are deleted at once. The receipt is
/// emailed, as are the receipts of the workspace deletions.
#[utoipa::path(post, path = "/v1/account/deletion", tag = "deletion",
    request_body = AccountDeletionRequest,
    responses((status = 202, body = AccountDeletionView, description = "Account deleted; workspace deletions running"),
        (status = 400, description = "Wrong confirmation, or `workspaces` does not name exactly the workspaces you alone own"),
        (status = 401, description = "No session"), (status = 403, description = "Cross-site request")))]
async fn delete_account(
    State(s): State<DeletionState>,
    headers: HeaderMap,
    Json(req): Json<AccountDeletionRequest>,
) -> Result<Response> {
    let who = s.gate.writer(&headers).await?;
    let email = who.user.email.as_str().to_owned();
    if !req.confirm.trim().eq_ignore_ascii_case(&email) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidDeletion,
            "`confirm` must be your account's email address",
        ));
    }
    let plan = account_plan(&s, &who).await?;
    let listed: BTreeSet<String> = req.workspaces.iter().map(|w| w.trim().to_owned()).collect();
    let sole: BTreeSet<String> = plan.sole.iter().map(|w| w.id.to_string()).collect();
    let missing: Vec<String> = plan
        .sole
        .iter()
        .filter(|w| !listed.contains(w.id.as_str()))
        .map(|w| format!("{} ({})", w.id, w.name))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidDeletion,
            format!(
                "`workspaces` must name every workspace you are the only owner of, which are deleted with the account; missing: {}",
                missing.join(", ")
            ),
        ));
    }
    let extra: Vec<&String> = listed
        .iter()
        .filter(|w| {
            !sole.contains(*w)
                && !WorkspaceId::parse(w).is_some_and(|id| plan.deleting.contains(&id))
        })
        .collect();
    if !extra.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidDeletion,
            format!(
                "`workspaces` names workspaces that would not be deleted (you are not their only owner): {}",
                extra
                    .iter()
                    .map(|w| w.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }

    let mut jobs = Vec::new();
    for ws in &plan.sole {
        if let Some(job) = s.begin(&who, ws, Scope::Workspace).await? {
            jobs.push((job, ws));
        }
    }
    for ws in &plan.left {
        match s
            .deps
            .store
            .members
            .remove_member(&ws.id, &who.user.id)
            .await
        {
            // Someone who is no longer a member gets no digest.
            Ok(_) => {
                llmtrack_shared::usecases::set_digest(
                    s.deps.store.workspaces.as_ref(),
                    &ws.id,
                    &who.user.id,
                    false,
                )
                .await?;
            }
            // Another owner left meanwhile: the workspace is now theirs alone to delete.
            Err(StoreError::Refused(r)) => {
                return Err(ApiError::Conflict(format!(
                    "{r} in `{}`: ask again to delete it with the account",
                    ws.id
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    // The user last: until then a retry finds the account and finishes the request.
    let mut deleted = s
        .deps
        .store
        .erasure
        .delete_user(&who.user.id)
        .await?
        .deleted;
    s.deps.store.erasure.scrub().await?;
    *deleted.entry("memberships".into()).or_default() += plan.left.len() as u64;
    let now = s.deps.clock.now_ms();
    let mut text = format!(
        "Your LLMtrack account ({email}) was deleted on {}.\n\n",
        rfc3339(now)
    );
    for (kind, n) in &deleted {
        text.push_str(&format!("  {kind}: {n}\n"));
    }
    if !jobs.is_empty() {
        text.push_str(
            "\nThe workspaces you alone owned are being deleted; a receipt for each follows:\n",
        );
        for (job, ws) in &jobs {
            text.push_str(&format!("  {} ({}): job {}\n", ws.name, ws.id, job.id));
        }
    }
    text.push_str(&format!("\n{}\n", s.deps.backups.notice()));
    let mail = Mail {
        to: email,
        subject: "LLMtrack: your account is deleted".into(),
        text,
        html: None,
        // The receipt is kept, not forgotten with the workspace.
        about: None,
    };
    if let Err(e) = s.deps.mailer.send(&mail).await {
        tracing::error!(
            error = format!("{e:#}"),
            "could not email an account deletion receipt"
        );
    }
    tracing::info!(workspaces = jobs.len(), "account deleted");
    let body = AccountDeletionView {
        jobs: jobs
            .iter()
            .map(|(j, _)| view(j, s.deps.backups))
            .collect::<Result<_>>()?,
        deleted,
    };
    for (job, _) in jobs {
        s.spawn(job);
    }
    let mut response = accepted(body);
    response
        .headers_mut()
        .insert(header::SET_COOKIE, auth::session_cookie("", 0, &s.web));
    Ok(response)
}
