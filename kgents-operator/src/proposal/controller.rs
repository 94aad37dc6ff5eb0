//! The Proposal reconcile: gather [`Facts`], [`plan`], perform the one effect, write the status
//! (server-side apply of the fields the controller owns; approvals and rejections belong to
//! whoever wrote them), publish an Event and count the transition, requeue at the next instant
//! that matters (the TTL, exactly).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::rbac::v1::PolicyRule;
use kgents_crds::common::Time;
use kgents_crds::pheromone::PheromoneSpec;
use kgents_crds::proposal::{
    Execution, ProposalPhase, ProposalStatus, ProposerKind, ReviewResult, ReviewStatus,
    RiskAssessment, RiskDecision,
};
use kgents_crds::{Pheromone, PheromoneType, Proposal};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::execute;
use super::metrics::metrics;
use super::phase::{Effect, ExecutionState, Facts, ReviewState, is_terminal, plan};
use super::review::{ReviewRequest, Reviewer};
use crate::admission::decision::{Occasion, evaluate};
use crate::admission::ledger::StoreLedger;
use crate::admission::patch;
use crate::admission::policy::AdmissionPolicy;
use crate::conditions::{DesiredCondition, merge};
use crate::{Context, Error, Result};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "proposal";
/// The field manager of the controller's status writes (approvals are written by others).
pub const STATUS_FIELD_MANAGER: &str = "kgents-proposal-controller";
/// The longest a proposal waits for its next look (a safety net against lost watch events).
const MAX_REQUEUE: Duration = Duration::from_secs(300);

/// What the controller needs besides the shared [`Context`].
#[derive(Clone, Default)]
pub struct ProposalSettings {
    /// The reviewer (`None`: reviews are SKIPPED and humans decide).
    pub reviewer: Option<Arc<dyn Reviewer>>,
    /// Namespace and name of the policy ConfigMap the re-check of unvetted proposals uses
    /// (`None`: the default policy).
    pub policy_config_map: Option<(String, String)>,
}

impl std::fmt::Debug for ProposalSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProposalSettings")
            .field("reviewer", &self.reviewer.as_ref().map(|r| r.name()))
            .field("policy_config_map", &self.policy_config_map)
            .finish()
    }
}

static SETTINGS: OnceLock<ProposalSettings> = OnceLock::new();

/// Sets the settings [`run`] uses (once, before the operator starts; later calls are ignored
/// and return `false`). The operator starts controllers through plain function pointers, so
/// this is how a binary hands the controller its reviewer.
pub fn configure(settings: ProposalSettings) -> bool {
    SETTINGS.set(settings).is_ok()
}

/// The Kubernetes permissions the Proposal controller uses (the webhook's are
/// [`crate::admission::server::required_rules`] and
/// [`crate::admission::server::namespaced_rules`]).
pub fn required_rules() -> Vec<PolicyRule> {
    use crate::support::rule;
    vec![
        rule("kgents.io", &["proposals"], &["get", "list", "watch"]),
        rule("kgents.io", &["proposals/status"], &["get", "patch"]),
        rule("kgents.io", &["pheromones"], &["get", "create"]),
        // Execution: the allow-listed target kinds (admission refuses everything else).
        rule(
            "kgents.io",
            &["agents", "memories", "umwelts", "pheromones"],
            &["get", "patch"],
        ),
        rule("", &["configmaps"], &["get", "patch"]),
        rule("apps", &["deployments"], &["get", "patch"]),
    ]
}

/// Runs the controller with the settings given to [`configure`] (default: no reviewer, the
/// default policy) until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let settings = SETTINGS.get().cloned().unwrap_or_default();
    run_with(ctx, settings, shutdown).await;
}

struct State {
    ctx: Arc<Context>,
    settings: ProposalSettings,
    store: Store<Proposal>,
    /// Asks for a reconcile of older pending proposals a newer filing supersedes (they would
    /// otherwise notice only at their next requeue).
    supersede: futures::channel::mpsc::UnboundedSender<ObjectRef<Proposal>>,
}

/// Runs the controller with `settings` until `shutdown` resolves.
pub async fn run_with(
    ctx: Arc<Context>,
    settings: ProposalSettings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let api: Api<Proposal> = ctx.scoped();
    let (supersede, superseded) = futures::channel::mpsc::unbounded();
    let controller = Controller::new(api, watcher::Config::default())
        .with_config(ControllerConfig::default().concurrency(ctx.config.concurrency))
        .reconcile_on(superseded);
    let state = Arc::new(State {
        ctx: ctx.clone(),
        settings,
        store: controller.store(),
        supersede,
    });
    controller
        .graceful_shutdown_on(crate::support::sync_signal(shutdown))
        .run(reconcile, error_policy, state)
        .for_each(|outcome| {
            crate::support::log_outcome(CONTROLLER, &outcome);
            futures::future::ready(())
        })
        .await;
}

fn error_policy(_proposal: Arc<Proposal>, error: &Error, state: Arc<State>) -> Action {
    state
        .ctx
        .metrics
        .reconcile_failed(CONTROLLER, error.metric_label());
    Action::requeue(crate::support::retry_after(error))
}

async fn reconcile(proposal: Arc<Proposal>, state: Arc<State>) -> Result<Action> {
    let started = Instant::now();
    state.ctx.metrics.reconcile_started(CONTROLLER);
    let result = reconcile_inner(&proposal, &state).await;
    state
        .ctx
        .metrics
        .reconcile_finished(CONTROLLER, started.elapsed());
    result
}

/// Where the review stands, as recorded in status. Objects stored before the ESCALATED result
/// existed recorded an escalation as SKIPPED with a report starting with `ESCALATE`; they still
/// read as escalated.
pub fn review_state(review: Option<&ReviewStatus>) -> ReviewState {
    match review.and_then(|r| r.result) {
        None => ReviewState::NotRequested,
        Some(ReviewResult::Pending) => ReviewState::Pending,
        Some(ReviewResult::Passed) => ReviewState::Passed,
        Some(ReviewResult::Failed) => ReviewState::Failed,
        Some(ReviewResult::Escalated) => ReviewState::Escalated,
        Some(ReviewResult::Skipped)
            if review
                .and_then(|r| r.report.as_deref())
                .is_some_and(|r| r.starts_with("ESCALATE")) =>
        {
            ReviewState::Escalated
        }
        Some(ReviewResult::Skipped) => ReviewState::Skipped,
    }
}

/// Who filed the proposal: an agent when `spec.proposer` is a ServiceAccount username
/// (`system:serviceaccount:<namespace>:<name>`), else a person. Admission admits a proposal only
/// when `spec.proposer` equals the requester's authenticated username, so this is the kind the
/// webhook saw.
pub fn proposer_kind(proposal: &Proposal) -> ProposerKind {
    ProposerKind::from_username(&proposal.spec.proposer)
}

/// Where the execution stands, as recorded in status.
pub fn execution_state(execution: Option<&Execution>) -> ExecutionState {
    match execution {
        None => ExecutionState::NotStarted,
        Some(e) if e.dry_run && e.success => ExecutionState::DryRunPassed,
        Some(e) if e.dry_run => ExecutionState::DryRunFailed,
        Some(e) if e.success => ExecutionState::Applied,
        Some(_) => ExecutionState::ApplyFailed,
    }
}

/// Distinct approvers other than the proposer.
pub fn approvals(proposal: &Proposal) -> u32 {
    let mut approvers: Vec<&str> = proposal
        .status
        .iter()
        .flat_map(|s| s.approvals.iter())
        .map(|a| a.approver.as_str())
        .filter(|a| *a != proposal.spec.proposer && !a.is_empty())
        .collect();
    approvers.sort_unstable();
    approvers.dedup();
    approvers.len() as u32
}

/// When the proposal expires: creation + ttlSeconds.
pub fn expires_at(proposal: &Proposal) -> Option<Timestamp> {
    let created = proposal.metadata.creation_timestamp.as_ref()?.0;
    created
        .checked_add(jiff::SignedDuration::from_secs(
            proposal.spec.ttl_seconds.max(0),
        ))
        .ok()
}

/// The newest proposal, other than this one, from the same proposer for the same target filed
/// after it, if any.
pub fn superseded_by<'a>(
    proposal: &Proposal,
    others: impl IntoIterator<Item = &'a Proposal>,
) -> Option<String> {
    let key = |p: &Proposal| {
        (
            p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            p.metadata.name.clone().unwrap_or_default(),
        )
    };
    let namespace = proposal.metadata.namespace.as_deref();
    let target_namespace = |p: &Proposal| {
        p.spec
            .target
            .namespace
            .clone()
            .or_else(|| p.metadata.namespace.clone())
    };
    let mine = key(proposal);
    others
        .into_iter()
        .filter(|o| o.metadata.uid != proposal.metadata.uid)
        .filter(|o| o.metadata.namespace.as_deref() == namespace)
        .filter(|o| o.spec.proposer == proposal.spec.proposer)
        .filter(|o| {
            o.spec.target.kind == proposal.spec.target.kind
                && o.spec.target.name == proposal.spec.target.name
        })
        .filter(|o| target_namespace(o) == target_namespace(proposal))
        .filter(|o| key(o) > mine)
        .max_by_key(|o| key(o))
        .and_then(|o| o.metadata.name.clone())
}

/// The undecided proposals (Pending or Reviewing) that `proposal` supersedes: older filings of
/// the same proposer for the same target.
pub fn supersedes<'a>(
    proposal: &Proposal,
    others: impl IntoIterator<Item = &'a Proposal>,
) -> Vec<&'a Proposal> {
    others
        .into_iter()
        .filter(|o| {
            o.status
                .as_ref()
                .and_then(|s| s.phase)
                .is_none_or(|p| matches!(p, ProposalPhase::Pending | ProposalPhase::Reviewing))
        })
        .filter(|o| superseded_by(o, [proposal]).is_some())
        .collect()
}

async fn load_policy(ctx: &Context, settings: &ProposalSettings) -> Result<AdmissionPolicy> {
    let Some((namespace, name)) = &settings.policy_config_map else {
        return Ok(AdmissionPolicy::default());
    };
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(ctx.client.clone(), namespace);
    match ctx.api("read admission policy", api.get_opt(name)).await? {
        None => Ok(AdmissionPolicy::default()),
        Some(map) => AdmissionPolicy::from_config_map_data(&map.data.unwrap_or_default()),
    }
}

async fn reconcile_inner(proposal: &Proposal, state: &State) -> Result<Action> {
    let ctx = &state.ctx;
    if proposal.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if !ctx.leader.is_leader() {
        // Only the leader reviews, executes and writes; look again when leadership may have moved.
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    let namespace = proposal
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let key = format!("{namespace}/{}", proposal.name_any());
    let now = ctx.clock.now();
    let mut status = proposal.status.clone().unwrap_or_default();
    let before = status.clone();
    if let Some(phase) = status.phase {
        ctx.metrics
            .observe_phase("Proposal", &key, phase_name(phase));
        if is_terminal(phase) {
            return Ok(Action::await_change());
        }
    }

    // The authoritative assessment, made once, with the same checks as admission.
    let mut admissible = true;
    let mut denial = None;
    if status.risk_assessment.is_none() {
        let policy = load_policy(ctx, &state.settings).await?;
        // The authoritative assessment reads the live cache, never a cached snapshot.
        let ledger = StoreLedger::with_max_age(state.store.clone(), Duration::ZERO);
        let occasion = Occasion {
            operation: "REVIEW",
            requester: None,
            old_object: None,
            dry_run: false,
        };
        let verdict = evaluate(proposal, &occasion, &policy, &ledger, now);
        admissible = verdict.allowed;
        if !verdict.allowed {
            denial = Some(verdict.message());
        }
        status.risk_assessment = Some(match &verdict.assessment {
            Some(a) => RiskAssessment::from(a),
            None => unassessable(now),
        });
    }
    let assessment = status
        .risk_assessment
        .clone()
        .unwrap_or_else(|| unassessable(now));
    let decision = assessment.decision;
    // Admission bound spec.proposer to the requester's authenticated username, so its form is
    // the verified kind (a ServiceAccount is an agent); recorded for people and tools to read.
    status.proposer_kind = Some(proposer_kind(proposal));
    let expires = expires_at(proposal);
    status.expires_at = expires.map(Time);
    let others = state.store.state();
    let superseded = superseded_by(proposal, others.iter().map(|p| p.as_ref()));
    for older in supersedes(proposal, others.iter().map(|p| p.as_ref())) {
        let _ = state.supersede.unbounded_send(ObjectRef::from_obj(older));
    }
    let parsed = match &proposal.spec.patch {
        Some(p) => patch::parse(p, &proposal.spec.target).ok(),
        None => None,
    };
    let mut facts = Facts {
        phase: status.phase,
        decision,
        admissible,
        review: review_state(status.review.as_ref()),
        approvals: approvals(proposal),
        rejected: proposal
            .status
            .as_ref()
            .is_some_and(|s| !s.rejections.is_empty()),
        required_approvers: proposal.spec.review_requirements.required_approvers.max(0) as u32,
        expired: expires.is_some_and(|at| now >= at),
        superseded: superseded.is_some(),
        has_patch: proposal.spec.patch.is_some(),
        external: proposal.spec.target.is_external_file(),
        execution: execution_state(status.execution.as_ref()),
    };
    let mut step = plan(&facts);
    let mut message = denial.unwrap_or_else(|| assessment.explanation.clone().unwrap_or_default());

    match step.effect {
        Effect::None => {}
        Effect::RequestReview => {
            let pheromone = emit_review_request(ctx, proposal, &assessment).await?;
            let review = request_review(
                ctx,
                state,
                proposal,
                parsed.as_ref(),
                &assessment,
                pheromone,
            )
            .await;
            status.review = Some(review);
            facts.review = review_state(status.review.as_ref());
            step = plan(&facts);
        }
        Effect::DryRun | Effect::Apply => {
            let (execution, note) = execute_step(
                ctx,
                proposal,
                parsed.as_ref(),
                step.effect == Effect::DryRun,
                now,
            )
            .await;
            status.execution = Some(execution);
            facts.execution = execution_state(status.execution.as_ref());
            message = note;
            step = plan(&facts);
        }
    }
    if step.phase == ProposalPhase::Superseded {
        status.superseded_by = superseded;
        message = format!(
            "superseded by {}",
            status.superseded_by.clone().unwrap_or_default()
        );
    }
    if step.reason == "ReviewDenied" {
        message = status
            .review
            .as_ref()
            .and_then(|r| r.report.clone())
            .unwrap_or_default();
    }
    status.phase = Some(step.phase);
    status.observed_generation = proposal.metadata.generation;
    let ready = matches!(step.phase, ProposalPhase::Merged);
    status.conditions = merge(
        &status.conditions,
        &[DesiredCondition::new(
            "Ready",
            ready,
            step.reason,
            message.clone(),
        )],
        proposal.metadata.generation,
        now,
    );

    if status != before {
        write_status(ctx, proposal, &status).await?;
        if before.phase != status.phase {
            let phase = phase_name(step.phase);
            metrics().transition(phase, step.reason, decision.as_str());
            ctx.metrics.observe_phase("Proposal", &key, phase);
            let type_ = match step.phase {
                ProposalPhase::Rejected | ProposalPhase::Failed | ProposalPhase::Expired => {
                    EventType::Warning
                }
                _ => EventType::Normal,
            };
            ctx.event(
                &proposal.object_ref(&()),
                type_,
                step.reason,
                "Transition",
                format!("{phase}: {message}"),
            )
            .await;
        }
    }

    // Next look: now if an effect is pending, else at the TTL (exactly), else the safety net.
    let next = plan(&Facts {
        phase: Some(step.phase),
        ..facts
    });
    if next.effect != Effect::None || next.phase != step.phase {
        return Ok(Action::requeue(Duration::from_millis(10)));
    }
    if is_terminal(step.phase) {
        return Ok(Action::await_change());
    }
    let wait = match expires {
        Some(at) if step.phase != ProposalPhase::Approved => {
            Duration::try_from(at.duration_since(ctx.clock.now()))
                .unwrap_or(Duration::ZERO)
                .min(MAX_REQUEUE)
        }
        _ => MAX_REQUEUE,
    };
    Ok(Action::requeue(wait))
}

fn unassessable(now: Timestamp) -> RiskAssessment {
    RiskAssessment {
        base_risk: 1.0,
        size_factor: 1.0,
        test_factor: 1.0,
        velocity_penalty: 0.0,
        cumulative_penalty: 0.0,
        score: 1.0,
        level: kgents_crds::proposal::RiskLevel::Critical,
        decision: RiskDecision::Block,
        recent_proposals: 0,
        applied_changes: 0,
        explanation: Some(
            "the proposal could not be assessed; it is treated as CRITICAL".to_owned(),
        ),
        calculated_at: Time(now),
    }
}

/// The phase as written.
pub fn phase_name(phase: ProposalPhase) -> &'static str {
    match phase {
        ProposalPhase::Pending => "Pending",
        ProposalPhase::Reviewing => "Reviewing",
        ProposalPhase::Approved => "Approved",
        ProposalPhase::Rejected => "Rejected",
        ProposalPhase::Merged => "Merged",
        ProposalPhase::Failed => "Failed",
        ProposalPhase::Expired => "Expired",
        ProposalPhase::Superseded => "Superseded",
    }
}

async fn write_status(ctx: &Context, proposal: &Proposal, status: &ProposalStatus) -> Result<()> {
    if !ctx.leader.is_leader() {
        return Ok(());
    }
    let namespace = proposal
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let api: Api<Proposal> = Api::namespaced(ctx.client.clone(), &namespace);
    // Only the fields this controller owns: approvals and rejections belong to their authors.
    let mut owned = serde_json::to_value(status)?;
    if let Some(map) = owned.as_object_mut() {
        map.remove("approvals");
        map.remove("rejections");
    }
    let body = json!({"apiVersion": "kgents.io/v1", "kind": "Proposal", "status": owned});
    let params = PatchParams::apply(STATUS_FIELD_MANAGER).force();
    ctx.api(
        "apply proposal status",
        api.patch_status(&proposal.name_any(), &params, &Patch::Apply(&body)),
    )
    .await?;
    Ok(())
}

/// Emits the REVIEW_REQUEST pheromone, owned by the proposal (it goes when the proposal goes).
async fn emit_review_request(
    ctx: &Context,
    proposal: &Proposal,
    assessment: &RiskAssessment,
) -> Result<Option<String>> {
    if !ctx.leader.is_leader() {
        return Ok(None);
    }
    let namespace = proposal
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let name = crate::support::suffixed_name("review-", &proposal.name_any());
    let owner = proposal
        .controller_owner_ref(&())
        .ok_or(Error::MissingObjectKey("metadata.uid"))?;
    let target = &proposal.spec.target;
    // Built from JSON so that optional spec fields keep their schema defaults.
    let spec: PheromoneSpec = serde_json::from_value(json!({
        "type": PheromoneType::ReviewRequest,
        "source": "proposal-controller",
        "target": "t-gent",
        "initialIntensity": (assessment.score + 0.3).clamp(0.01, 1.0),
        "halfLifeMinutes": 30.0,
        "ttlSeconds": proposal.spec.ttl_seconds.max(60),
        "payload": json!({
            "proposal": proposal.name_any(),
            "changeType": proposal.spec.change_type,
            "target": format!("{}/{}", target.kind, target.name),
            "risk": assessment.score,
            "riskLevel": assessment.level,
        })
        .to_string(),
    }))?;
    let mut pheromone = Pheromone::new(&name, spec);
    pheromone.metadata.namespace = Some(namespace.clone());
    pheromone.metadata.owner_references = Some(vec![owner]);
    pheromone.metadata.labels =
        Some([("kgents.io/proposal".to_owned(), proposal.name_any())].into());
    let api: Api<Pheromone> = Api::namespaced(ctx.client.clone(), &namespace);
    match ctx
        .api(
            "create review pheromone",
            api.create(&PostParams::default(), &pheromone),
        )
        .await
    {
        Ok(_) => Ok(Some(name)),
        Err(Error::Kube(kube::Error::Api(status))) if status.code == 409 => Ok(Some(name)),
        Err(e) => Err(e),
    }
}

/// Runs the reviewer (or records SKIPPED) and returns the review status.
async fn request_review(
    ctx: &Context,
    state: &State,
    proposal: &Proposal,
    parsed: Option<&patch::ParsedPatch>,
    assessment: &RiskAssessment,
    pheromone: Option<String>,
) -> ReviewStatus {
    let now = ctx.clock.now();
    let reviewer = state
        .settings
        .reviewer
        .as_ref()
        .filter(|_| proposal.spec.review_requirements.t_gent_validation);
    let Some(reviewer) = reviewer else {
        return ReviewStatus {
            requested: true,
            pheromone,
            result: Some(ReviewResult::Skipped),
            reviewer: None,
            report: Some(
                if proposal.spec.review_requirements.t_gent_validation {
                    "no reviewer is configured; a human approval decides"
                } else {
                    "tGentValidation is off; a human approval decides"
                }
                .to_owned(),
            ),
            reviewed_at: Some(Time(now)),
        };
    };
    let namespace = proposal.namespace().unwrap_or_default();
    let target_now = match execute::resolve(&ctx.client, &proposal.spec.target, &namespace).await {
        Ok(target) => target
            .api
            .get_opt(&target.name)
            .await
            .ok()
            .flatten()
            .map(|o| execute::clean(&o)),
        Err(_) => None,
    };
    let request = ReviewRequest {
        proposal: format!("{namespace}/{}", proposal.name_any()),
        spec: serde_json::to_value(&proposal.spec).unwrap_or_default(),
        patch: parsed.map(patch::ParsedPatch::document),
        target: target_now,
        risk: assessment.explanation.clone().unwrap_or_default(),
    };
    let report = reviewer.review(&request).await;
    ReviewStatus {
        requested: true,
        pheromone,
        result: Some(report.verdict.result()),
        reviewer: Some(reviewer.name()),
        report: Some(report.report),
        reviewed_at: Some(Time(ctx.clock.now())),
    }
}

/// Runs the dry run or the apply; returns the execution record and a note for the condition.
async fn execute_step(
    ctx: &Context,
    proposal: &Proposal,
    parsed: Option<&patch::ParsedPatch>,
    dry_run: bool,
    now: Timestamp,
) -> (Execution, String) {
    let record = |success: bool, message: String, previous: Option<String>| Execution {
        success,
        dry_run,
        executed_at: Time(now),
        message: Some(message),
        previous,
    };
    if proposal.spec.target.is_external_file() {
        // The phase machine never gets here for a File target; this keeps it so if that changes.
        let m =
            "the target is a file outside the cluster; the operator never executes it".to_owned();
        return (record(false, m.clone(), None), m);
    }
    let Some(parsed) = parsed else {
        let m = "the patch does not parse for its type; nothing was applied".to_owned();
        return (record(false, m.clone(), None), m);
    };
    let uid = proposal.metadata.uid.clone().unwrap_or_default();
    let namespace = proposal.namespace().unwrap_or_default();
    let target = match execute::resolve(&ctx.client, &proposal.spec.target, &namespace).await {
        Ok(target) => target,
        Err(m) => return (record(false, m.clone(), None), m),
    };
    let live = match target.api.get_opt(&target.name).await {
        Ok(live) => live,
        Err(e) => {
            let m = format!("the target could not be read: {e}");
            return (record(false, m.clone(), None), m);
        }
    };
    let Some(live) = live else {
        let m = format!("the target {} {} does not exist", target.kind, target.name);
        return (record(false, m.clone(), None), m);
    };
    if !dry_run && execute::already_applied(&live, &uid) {
        // Applied by an earlier reconcile that could not record it: never apply twice.
        let m =
            "the change was already applied (the target carries this proposal's stamp)".to_owned();
        return (record(true, m.clone(), None), m);
    }
    let previous = execute::previous_record(&live);
    match execute::send(&target, parsed, Some(&live), &uid, dry_run).await {
        Ok(_) if dry_run => {
            let m = format!(
                "server-side dry run of the {} patch passed",
                kind_name(proposal)
            );
            (record(true, m.clone(), None), m)
        }
        Ok(_) => {
            let m = format!(
                "applied the {} patch to {} {} as {}",
                kind_name(proposal),
                target.kind,
                target.name,
                execute::EXECUTOR_FIELD_MANAGER
            );
            (record(true, m.clone(), Some(previous)), m)
        }
        Err(m) => (
            record(
                false,
                m.clone(),
                if dry_run { None } else { Some(previous) },
            ),
            m,
        ),
    }
}

fn kind_name(proposal: &Proposal) -> &'static str {
    proposal
        .spec
        .patch
        .as_ref()
        .map(|p| execute::type_name(p.kind))
        .unwrap_or("(no)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kgents_crds::proposal::Approval;

    fn proposal(name: &str, proposer: &str, target: &str, created: i64) -> Proposal {
        serde_json::from_value(json!({
            "apiVersion": "kgents.io/v1", "kind": "Proposal",
            "metadata": {"name": name, "namespace": "team", "uid": format!("uid-{name}"),
                "creationTimestamp": Timestamp::from_second(created).expect("valid").to_string()},
            "spec": {"proposer": proposer, "changeType": "AGENT_SCALE", "ttlSeconds": 120,
                "target": {"apiVersion": "kgents.io/v1", "kind": "Agent", "name": target}},
        }))
        .expect("valid proposal")
    }

    #[test]
    fn a_newer_filing_by_the_same_proposer_for_the_same_target_supersedes() {
        let old = proposal("old", "alice", "b", 100);
        let newer = proposal("newer", "alice", "b", 200);
        let newest = proposal("newest", "alice", "b", 300);
        let other_target = proposal("other", "alice", "c", 400);
        let other_proposer = proposal("bob", "bob", "b", 500);
        let all = [&old, &newer, &newest, &other_target, &other_proposer];
        assert_eq!(superseded_by(&old, all).as_deref(), Some("newest"));
        assert_eq!(superseded_by(&newer, all).as_deref(), Some("newest"));
        assert_eq!(superseded_by(&newest, all), None);
        assert_eq!(superseded_by(&other_proposer, all), None);
        let names = |list: Vec<&Proposal>| -> Vec<String> {
            list.into_iter().map(|p| p.name_any()).collect()
        };
        assert_eq!(names(supersedes(&newest, all)), ["old", "newer"]);
        assert!(supersedes(&old, all).is_empty());
        let mut decided = old.clone();
        decided.status = Some(ProposalStatus {
            phase: Some(ProposalPhase::Merged),
            ..ProposalStatus::default()
        });
        assert!(
            supersedes(&newest, [&decided]).is_empty(),
            "only undecided proposals are superseded"
        );
    }

    #[test]
    fn the_proposers_own_approval_and_duplicates_do_not_count() {
        let mut p = proposal("p", "alice", "b", 100);
        let at = Time(Timestamp::from_second(150).expect("valid"));
        let approval = |who: &str| Approval {
            approver: who.into(),
            at: at.clone(),
            comment: None,
        };
        p.status = Some(ProposalStatus {
            approvals: vec![
                approval("alice"),
                approval("bob"),
                approval("bob"),
                approval("carol"),
            ],
            ..ProposalStatus::default()
        });
        assert_eq!(approvals(&p), 2);
    }

    #[test]
    fn expiry_is_creation_plus_ttl_to_the_second() {
        let p = proposal("p", "alice", "b", 100);
        assert_eq!(
            expires_at(&p),
            Some(Timestamp::from_second(220).expect("valid"))
        );
    }

    #[test]
    fn recorded_reviews_read_back_including_escalations_stored_before_escalated_existed() {
        let review = |result: ReviewResult, report: &str| ReviewStatus {
            result: Some(result),
            report: Some(report.into()),
            ..ReviewStatus::default()
        };
        let table = [
            (review(ReviewResult::Pending, ""), ReviewState::Pending),
            (review(ReviewResult::Passed, "fine"), ReviewState::Passed),
            (review(ReviewResult::Failed, "no"), ReviewState::Failed),
            (
                review(ReviewResult::Escalated, "unsure"),
                ReviewState::Escalated,
            ),
            // The form stored before ESCALATED existed.
            (
                review(ReviewResult::Skipped, "ESCALATE: unsure"),
                ReviewState::Escalated,
            ),
            (
                review(ReviewResult::Skipped, "no reviewer is configured"),
                ReviewState::Skipped,
            ),
        ];
        for (status, state) in table {
            assert_eq!(review_state(Some(&status)), state, "{status:?}");
        }
        assert_eq!(review_state(None), ReviewState::NotRequested);
        let old_object: ReviewStatus = serde_json::from_value(
            json!({"requested": true, "result": "SKIPPED", "report": "ESCALATE: the answer was unreadable"}),
        )
        .expect("an object stored before ESCALATED existed still reads");
        assert_eq!(review_state(Some(&old_object)), ReviewState::Escalated);
        let execution = Execution {
            success: true,
            dry_run: true,
            executed_at: Time(Timestamp::UNIX_EPOCH),
            message: None,
            previous: None,
        };
        assert_eq!(
            execution_state(Some(&execution)),
            ExecutionState::DryRunPassed
        );
    }

    #[test]
    fn required_rules_never_grant_rbac_or_crds() {
        for rule in required_rules() {
            for group in rule.api_groups.unwrap_or_default() {
                assert!(
                    group != "rbac.authorization.k8s.io" && group != "apiextensions.k8s.io",
                    "{group}"
                );
            }
        }
    }
}
