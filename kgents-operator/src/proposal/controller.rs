//! The Proposal reconcile, in four steps: **gather** the [`Facts`] (the authoritative
//! assessment with the admission policy from a watched ConfigMap and the ledger from the
//! informer cache, the patch parsed once, review, approvals, expiry, supersession), **plan**
//! once with the pure phase machine, **perform** the one effect it asks for (request a review,
//! dry run, apply), and write the **status** (server-side apply of the fields the controller
//! owns; approvals and rejections belong to whoever wrote them), publish an Event and count the
//! transition. An effect's outcome is recorded in status and planned on at the next look, which
//! the status write's own watch event brings at once; otherwise the next look is at the TTL, exactly. Every API call goes through
//! the [`Context`] under its configured timeout.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::PolicyRule;
use kgents_crds::common::Time;
use kgents_crds::pheromone::PheromoneSpec;
use kgents_crds::proposal::{
    Execution, ProposalPhase, ProposalStatus, ProposerKind, ReviewResult, ReviewStatus,
    RiskAssessment, RiskDecision,
};
use kgents_crds::{Pheromone, PheromoneType, Proposal};
use kgents_policy::{AdmissionPolicy, Occasion, ParsedPatch, evaluate, ledger, patch};
use kgents_risk::Decision;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::execute;
use super::review::{ReviewRequest, Reviewer};
use crate::conditions::{DesiredCondition, merge};
use crate::shared::{Event, Shared};
use crate::{Context, Error, Result};
use kgents_policy::lifecycle::{
    Effect, Facts, approvals, execution_state, expires_at, is_terminal, plan, review_state,
    superseded_by, supersedes,
};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "proposal";
/// The field manager of the controller's status writes (approvals are written by others).
pub const STATUS_FIELD_MANAGER: &str = "kgents-proposal-controller";
/// The longest a proposal waits for its next look (a safety net against lost watch events).
const MAX_REQUEUE: Duration = Duration::from_secs(300);

/// The Proposal controller's settings ([`OperatorConfig::proposal`](crate::OperatorConfig)).
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct ProposalSettings {
    /// The reviewer (`None`: reviews are SKIPPED and humans decide).
    pub reviewer: Option<Arc<dyn Reviewer>>,
    /// Namespace and name of the policy ConfigMap the re-check of unvetted proposals uses,
    /// watched while the controller runs (`None`: the default policy).
    pub policy_config_map: Option<(String, String)>,
}

impl ProposalSettings {
    /// No reviewer, the default policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// These settings with `reviewer` judging MEDIUM proposals.
    pub fn with_reviewer(mut self, reviewer: Arc<dyn Reviewer>) -> Self {
        self.reviewer = Some(reviewer);
        self
    }

    /// These settings with the admission policy read from ConfigMap `namespace/name`.
    pub fn with_policy_config_map(
        mut self,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        self.policy_config_map = Some((namespace.into(), name.into()));
        self
    }
}

impl std::fmt::Debug for ProposalSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProposalSettings")
            .field("reviewer", &self.reviewer.as_ref().map(|r| r.name()))
            .field("policy_config_map", &self.policy_config_map)
            .finish()
    }
}

/// The Kubernetes permissions the Proposal controller uses (the webhook's are in the admission
/// module).
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
        // The policy ConfigMap is watched; ConfigMap targets are read and patched.
        rule("", &["configmaps"], &["get", "list", "watch", "patch"]),
        rule("apps", &["deployments"], &["get", "patch"]),
    ]
}

/// Runs the controller with the settings of the context's
/// [`OperatorConfig::proposal`](crate::OperatorConfig) until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let settings = ctx.config.proposal.clone();
    run_with(ctx, settings, shutdown).await;
}

/// The admission policy of the re-check: the policy ConfigMap as the watch last saw it,
/// compiled once per version of the ConfigMap.
struct WatchedPolicy {
    /// The policy ConfigMap's shared watch (`None`: no ConfigMap is configured, the default
    /// policy).
    watch: Option<Shared<ConfigMap>>,
    /// The policy compiled from the cached ConfigMap, by its resourceVersion (`None`: absent).
    compiled: Mutex<Option<(Option<String>, Arc<AdmissionPolicy>)>>,
}

impl WatchedPolicy {
    /// The policy in force. Waits (within the API budget) for the watch's first list, so an
    /// unvetted proposal is never judged by the default policy while the configured one loads;
    /// an invalid policy is an error (the reconcile retries; the webhook keeps its previous
    /// policy meanwhile).
    async fn current(&self, ctx: &Context) -> Result<Arc<AdmissionPolicy>> {
        let Some(watch) = &self.watch else {
            return Ok(Arc::new(AdmissionPolicy::default()));
        };
        tokio::time::timeout(ctx.config.api_timeout, watch.until_ready())
            .await
            .map_err(|_| Error::Timeout {
                call: "initial list of the admission policy ConfigMap",
                budget: ctx.config.api_timeout,
            })?;
        let map = watch.store().state().into_iter().next();
        let version = map
            .as_ref()
            .and_then(|m| m.metadata.resource_version.clone());
        if let Some((seen, policy)) = self
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            && *seen == version
        {
            return Ok(policy.clone());
        }
        let policy = Arc::new(match &map {
            None => AdmissionPolicy::default(),
            Some(map) => AdmissionPolicy::from_config_map_data(
                map.data.as_ref().unwrap_or(&Default::default()),
            )?,
        });
        *self.compiled.lock().unwrap_or_else(|p| p.into_inner()) = Some((version, policy.clone()));
        Ok(policy)
    }
}

struct State {
    ctx: Arc<Context>,
    settings: ProposalSettings,
    /// Every Proposal (the ledger and supersession read the whole cache).
    proposals: Shared<Proposal>,
    policy: WatchedPolicy,
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
    // Proposals and the policy ConfigMap come from the process's shared watches, which the
    // admission webhook reads too when it runs in the same process.
    let proposals = ctx.watches.proposals.clone();
    let applied = proposals.subscribe().filter_map(|event| {
        futures::future::ready(match event {
            Event::Applied(proposal) => Some(proposal),
            Event::Deleted(_) | Event::Relisted => None,
        })
    });
    let (supersede, superseded) = futures::channel::mpsc::unbounded();
    let policy = settings
        .policy_config_map
        .as_ref()
        .map(|(namespace, name)| ctx.watches.policy(namespace, name));
    let state = Arc::new(State {
        ctx: ctx.clone(),
        settings,
        proposals: proposals.clone(),
        policy: WatchedPolicy {
            watch: policy,
            compiled: Mutex::new(None),
        },
        supersede,
    });
    Controller::for_shared_stream(applied, proposals.store())
        .with_config(ControllerConfig::default().concurrency(ctx.config.concurrency))
        .reconcile_on(superseded)
        .graceful_shutdown_on(crate::support::sync_signal(shutdown))
        .run(reconcile, error_policy, state)
        .for_each(|outcome| {
            crate::support::log_outcome(CONTROLLER, &outcome);
            futures::future::ready(())
        })
        .await;
}

fn error_policy(proposal: Arc<Proposal>, error: &Error, state: Arc<State>) -> Action {
    crate::support::error_policy(&state.ctx, CONTROLLER, proposal.as_ref(), error)
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

fn decision_of(decision: RiskDecision) -> Decision {
    match decision {
        RiskDecision::AutoApprove => Decision::AutoApprove,
        RiskDecision::Review => Decision::Review,
        RiskDecision::RequireHuman => Decision::RequireHuman,
        RiskDecision::Block => Decision::Block,
    }
}

/// Every Proposal in the cache, once the first list is in (a ledger or a supersession judged
/// from a partial list would be wrong).
async fn proposals_listed(state: &State) -> Result<Vec<Arc<Proposal>>> {
    let budget = state.ctx.config.api_timeout;
    tokio::time::timeout(budget, state.proposals.until_ready())
        .await
        .map_err(|_| Error::Timeout {
            call: "initial list of Proposals",
            budget,
        })?;
    Ok(state.proposals.store().state())
}

/// Who filed the proposal: an agent when `spec.proposer` is a ServiceAccount username
/// (`system:serviceaccount:<namespace>:<name>`), else a person. Admission admits a proposal only
/// when `spec.proposer` equals the requester's authenticated username, so this is the kind the
/// webhook saw.
pub fn proposer_kind(proposal: &Proposal) -> ProposerKind {
    ProposerKind::from_username(&proposal.spec.proposer)
}

/// What the reconcile gathered about a proposal before planning.
struct Gathered {
    /// The status to write: as stored, with the assessment (made once), the verified proposer
    /// kind and the expiry filled in.
    status: ProposalStatus,
    /// What the phase machine plans from.
    facts: Facts,
    /// The risk decision, for the transition metric.
    decision: Decision,
    /// Why the re-check denies the proposal, when it does (this look only).
    denial: Option<String>,
    /// The patch, parsed once for every use (the reviewer, the dry run, the apply).
    parsed: Option<ParsedPatch>,
    /// The newer proposal that supersedes this one, if any.
    superseded_by: Option<String>,
    /// When the proposal expires.
    expires: Option<Timestamp>,
}

/// Gathers the facts: the authoritative assessment (made once, with the same checks as
/// admission, from the watched policy and the informer cache, never an API call), the patch,
/// the review, approvals, expiry and supersession.
async fn gather(proposal: &Proposal, state: &State, now: Timestamp) -> Result<Gathered> {
    let ctx = &state.ctx;
    let mut status = proposal.status.clone().unwrap_or_default();
    let mut admissible = true;
    let mut denial = None;
    if status.risk_assessment.is_none() {
        let policy = state.policy.current(ctx).await?;
        let cache = proposals_listed(state).await?;
        let ledger = ledger::snapshot(cache.iter().map(|p| p.as_ref()));
        let verdict = evaluate(proposal, &Occasion::review(), &policy, &ledger, now);
        admissible = verdict.allowed;
        if !verdict.allowed {
            denial = Some(verdict.message());
        }
        status.risk_assessment = Some(match &verdict.assessment {
            Some(a) => RiskAssessment::from(a),
            None => unassessable(now),
        });
    }
    let decision = status
        .risk_assessment
        .as_ref()
        .map_or(Decision::Block, |a| decision_of(a.decision));
    // Admission bound spec.proposer to the requester's authenticated username, so its form is
    // the verified kind (a ServiceAccount is an agent); recorded for people and tools to read.
    status.proposer_kind = Some(proposer_kind(proposal));
    let expires = expires_at(proposal);
    status.expires_at = expires.map(Time);
    let others = proposals_listed(state).await?;
    let superseded_by = superseded_by(proposal, others.iter().map(|p| p.as_ref()));
    for older in supersedes(proposal, others.iter().map(|p| p.as_ref())) {
        let _ = state.supersede.unbounded_send(ObjectRef::from_obj(older));
    }
    let parsed = proposal
        .spec
        .patch
        .as_ref()
        .and_then(|p| patch::parse(p, &proposal.spec.target).ok());
    let facts = Facts {
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
        superseded: superseded_by.is_some(),
        has_patch: proposal.spec.patch.is_some(),
        external: proposal.spec.target.is_external_file(),
        execution: execution_state(status.execution.as_ref()),
    };
    Ok(Gathered {
        status,
        facts,
        decision,
        denial,
        parsed,
        superseded_by,
        expires,
    })
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
    let before = proposal.status.clone().unwrap_or_default();
    if let Some(phase) = before.phase {
        ctx.metrics.observe_phase("Proposal", &key, phase.as_str());
        if is_terminal(phase) {
            return Ok(Action::await_change());
        }
    }

    // 1. Gather the facts.
    let gathered = gather(proposal, state, now).await?;
    let mut status = gathered.status;

    // 2. Plan, once.
    let step = plan(&gathered.facts);

    // 3. Perform the one effect; its outcome is recorded now and planned on at the next look.
    match step.effect {
        Effect::None => {}
        Effect::RequestReview => {
            let assessment = status
                .risk_assessment
                .clone()
                .unwrap_or_else(|| unassessable(now));
            let pheromone = emit_review_request(ctx, proposal, &assessment).await?;
            status.review = Some(
                request_review(
                    ctx,
                    state,
                    proposal,
                    gathered.parsed.as_ref(),
                    &assessment,
                    pheromone,
                )
                .await,
            );
        }
        Effect::DryRun | Effect::Apply => {
            status.execution = Some(
                execute_step(
                    ctx,
                    proposal,
                    gathered.parsed.as_ref(),
                    step.effect == Effect::DryRun,
                    now,
                )
                .await,
            );
        }
    }

    // 4. The status: phase, condition, and an Event and a count for a transition.
    let message = match step.reason {
        "Superseded" => format!(
            "superseded by {}",
            gathered.superseded_by.clone().unwrap_or_default()
        ),
        "ReviewDenied" => status
            .review
            .as_ref()
            .and_then(|r| r.report.clone())
            .unwrap_or_default(),
        "Executing" | "DryRunFailed" | "Applied" | "ApplyFailed" => status
            .execution
            .as_ref()
            .and_then(|e| e.message.clone())
            .unwrap_or_default(),
        _ => gathered.denial.clone().unwrap_or_else(|| {
            status
                .risk_assessment
                .as_ref()
                .and_then(|a| a.explanation.clone())
                .unwrap_or_default()
        }),
    };
    if step.phase == ProposalPhase::Superseded {
        status.superseded_by = gathered.superseded_by.clone();
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
            let phase = step.phase.as_str();
            ctx.metrics
                .proposals()
                .transition(phase, step.reason, gathered.decision.as_str());
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

    // Next look. After an effect or a transition the status was written, and that write's own
    // watch event brings the next look at once, with the cache already holding what was
    // written (a timed requeue could read a cache that lags and repeat the effect). Otherwise
    // at the TTL (exactly), else the safety net.
    if is_terminal(step.phase) {
        return Ok(Action::await_change());
    }
    let wait = match gathered.expires {
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

async fn write_status(ctx: &Context, proposal: &Proposal, status: &ProposalStatus) -> Result<()> {
    if !ctx.leader.is_leader() {
        return Ok(());
    }
    let namespace = proposal
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let api: Api<Proposal> = Api::namespaced(ctx.client.clone(), &namespace);
    let body = status_apply(proposal, status)?;
    let params = PatchParams::apply(STATUS_FIELD_MANAGER).force();
    ctx.api(
        "apply proposal status",
        api.patch_status(&proposal.name_any(), &params, &Patch::Apply(&body)),
    )
    .await?;
    Ok(())
}

/// The server-side apply body of the status this controller writes for `proposal`, read at
/// `proposal`'s resourceVersion.
///
/// The body carries only the fields this controller owns (approvals and rejections belong to
/// their authors) and `proposal`'s resourceVersion as a precondition: a reconcile that ran on a
/// cached copy older than the stored object (the cache lags the status this controller has just
/// written, e.g. after the API server restarted) is refused with 409 Conflict and retried on
/// the newer copy, instead of recording the same transition — and publishing its Event — again.
pub(crate) fn status_apply(
    proposal: &Proposal,
    status: &ProposalStatus,
) -> Result<serde_json::Value> {
    let mut owned = serde_json::to_value(status)?;
    if let Some(map) = owned.as_object_mut() {
        map.remove("approvals");
        map.remove("rejections");
    }
    let mut body = json!({"apiVersion": "kgents.io/v1", "kind": "Proposal", "status": owned});
    if let Some(version) = &proposal.metadata.resource_version {
        body["metadata"] = json!({ "resourceVersion": version });
    }
    Ok(body)
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
    parsed: Option<&ParsedPatch>,
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
    // The target as it is now, when it can be read (the reviewer judges without it otherwise).
    let target_now = match within(
        ctx,
        "discover the proposal's target",
        execute::resolve(&ctx.client, &proposal.spec.target, &namespace),
    )
    .await
    {
        Ok(target) => ctx
            .api(
                "read the proposal's target",
                target.api.get_opt(&target.name),
            )
            .await
            .ok()
            .flatten()
            .map(|o| execute::clean(&o)),
        Err(_) => None,
    };
    let request = ReviewRequest {
        proposal: format!("{namespace}/{}", proposal.name_any()),
        spec: serde_json::to_value(&proposal.spec).unwrap_or_default(),
        patch: parsed.map(ParsedPatch::document),
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

/// Runs one API call of the executor under the context's budget; running out of it is a
/// message like the call's own failures.
async fn within<T>(
    ctx: &Context,
    call: &'static str,
    fut: impl std::future::Future<Output = std::result::Result<T, String>>,
) -> std::result::Result<T, String> {
    match tokio::time::timeout(ctx.config.api_timeout, fut).await {
        Ok(result) => result,
        Err(_) => Err(Error::Timeout {
            call,
            budget: ctx.config.api_timeout,
        }
        .to_string()),
    }
}

/// Runs the dry run or the apply; returns the execution record (its message says what
/// happened, for the condition and the Event).
async fn execute_step(
    ctx: &Context,
    proposal: &Proposal,
    parsed: Option<&ParsedPatch>,
    dry_run: bool,
    now: Timestamp,
) -> Execution {
    let record = |success: bool, message: String, previous: Option<String>| Execution {
        success,
        dry_run,
        executed_at: Time(now),
        message: Some(message),
        previous,
    };
    if proposal.spec.target.is_external_file() {
        // The phase machine never gets here for a File target; this keeps it so if that changes.
        return record(
            false,
            "the target is a file outside the cluster; the operator never executes it".to_owned(),
            None,
        );
    }
    let Some(parsed) = parsed else {
        return record(
            false,
            "the patch does not parse for its type; nothing was applied".to_owned(),
            None,
        );
    };
    let uid = proposal.metadata.uid.clone().unwrap_or_default();
    let namespace = proposal.namespace().unwrap_or_default();
    let target = match within(
        ctx,
        "discover the proposal's target",
        execute::resolve(&ctx.client, &proposal.spec.target, &namespace),
    )
    .await
    {
        Ok(target) => target,
        Err(m) => return record(false, m, None),
    };
    let live = match ctx
        .api(
            "read the proposal's target",
            target.api.get_opt(&target.name),
        )
        .await
    {
        Ok(live) => live,
        Err(e) => return record(false, format!("the target could not be read: {e}"), None),
    };
    let Some(live) = live else {
        return record(
            false,
            format!("the target {} {} does not exist", target.kind, target.name),
            None,
        );
    };
    if !dry_run && execute::already_applied(&live, &uid) {
        // Applied by an earlier reconcile that could not record it: never apply twice.
        return record(
            true,
            "the change was already applied (the target carries this proposal's stamp)".to_owned(),
            None,
        );
    }
    let previous = execute::previous_record(&live);
    let call = if dry_run {
        "dry-run the proposal's patch"
    } else {
        "apply the proposal's patch"
    };
    match within(
        ctx,
        call,
        execute::send(&target, parsed, Some(&live), &uid, dry_run),
    )
    .await
    {
        Ok(_) if dry_run => record(
            true,
            format!(
                "server-side dry run of the {} patch passed",
                kind_name(proposal)
            ),
            None,
        ),
        Ok(_) => record(
            true,
            format!(
                "applied the {} patch to {} {} as {}",
                kind_name(proposal),
                target.kind,
                target.name,
                execute::EXECUTOR_FIELD_MANAGER
            ),
            Some(previous),
        ),
        Err(m) => record(false, m, if dry_run { None } else { Some(previous) }),
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
    use kube::runtime::{reflector, watcher};

    fn config_map(version: &str, policy: &str) -> ConfigMap {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "kgents-admission-policy", "namespace": "kgents",
                "resourceVersion": version},
            "data": {kgents_policy::POLICY_KEY: policy},
        }))
        .expect("valid config map")
    }

    fn context(api_timeout: Duration) -> Context {
        let (service, _server) = tower_test::mock::pair::<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        let config = crate::OperatorConfig {
            api_timeout,
            ..crate::OperatorConfig::default()
        };
        Context::new(kube::Client::new(service, "default"), config)
    }

    #[tokio::test]
    async fn the_policy_comes_from_the_watched_config_map_compiled_once_per_version() {
        let ctx = context(Duration::from_secs(1));
        let (store, mut writer) = reflector::store::<ConfigMap>();
        let watched = WatchedPolicy {
            watch: Some(Shared::offline(ctx.scoped(), store, true)),
            compiled: Mutex::new(None),
        };
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(config_map(
            "1",
            "allowedKinds: [ConfigMap]",
        )));
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let first = watched.current(&ctx).await.expect("valid policy");
        assert!(first.allows_kind("ConfigMap", None) && !first.allows_kind("Agent", None));
        let again = watched.current(&ctx).await.expect("valid policy");
        assert!(Arc::ptr_eq(&first, &again), "compiled once per version");

        writer.apply_watcher_event(&watcher::Event::Apply(config_map(
            "2",
            "allowedKinds: [Agent.kgents.io]",
        )));
        let changed = watched.current(&ctx).await.expect("valid policy");
        assert!(changed.allows_kind("Agent", None) && !changed.allows_kind("ConfigMap", None));

        writer.apply_watcher_event(&watcher::Event::Apply(config_map(
            "3",
            "allowedKinds: [Secret]",
        )));
        let error = watched.current(&ctx).await.expect_err("a forbidden kind");
        assert_eq!(error.metric_label(), "policy");
        assert!(error.to_string().contains("allowedKinds"), "{error}");
        assert!(
            error.to_string().contains("keeps the previous policy"),
            "the operator's own explanation: {error}"
        );

        writer.apply_watcher_event(&watcher::Event::Delete(config_map("3", "")));
        let default = watched.current(&ctx).await.expect("the default policy");
        assert!(default.allows_kind("Agent", None) && default.allows_kind("ConfigMap", None));
    }

    #[tokio::test]
    async fn no_policy_is_used_before_the_config_map_was_listed() {
        let ctx = context(Duration::from_millis(50));
        let (store, _writer) = reflector::store::<ConfigMap>();
        let watched = WatchedPolicy {
            watch: Some(Shared::offline(ctx.scoped(), store, false)),
            compiled: Mutex::new(None),
        };
        let error = watched.current(&ctx).await.expect_err("not listed yet");
        assert_eq!(error.metric_label(), "timeout", "{error}");
        let unconfigured = WatchedPolicy {
            watch: None,
            compiled: Mutex::new(None),
        };
        assert!(
            unconfigured
                .current(&ctx)
                .await
                .expect("the default policy")
                .allows_kind("Agent", None)
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

    #[test]
    fn the_status_is_applied_at_the_resource_version_it_was_planned_on() {
        let mut proposal: Proposal = serde_json::from_value(json!({
            "apiVersion": "kgents.io/v1", "kind": "Proposal",
            "metadata": {"name": "p", "namespace": "ns", "resourceVersion": "41"},
            "spec": {"proposer": "a", "target": {"kind": "Agent", "name": "b"},
                "changeType": "AGENT_SCALE", "description": "scale"},
        }))
        .expect("valid proposal");
        let status = ProposalStatus {
            phase: Some(ProposalPhase::Merged),
            approvals: vec![kgents_crds::proposal::Approval {
                approver: "alice".to_owned(),
                at: Time(Timestamp::UNIX_EPOCH),
                comment: None,
            }],
            ..ProposalStatus::default()
        };
        let body = status_apply(&proposal, &status).expect("serialisable");
        assert_eq!(body["metadata"]["resourceVersion"], "41");
        assert_eq!(body["status"]["phase"], "Merged");
        assert!(
            body["status"].get("approvals").is_none(),
            "approvals belong to their authors: {body}"
        );
        proposal.metadata.resource_version = None;
        let body = status_apply(&proposal, &status).expect("serialisable");
        assert!(body.get("metadata").is_none(), "{body}");
    }
}
