//! The Workflow controller: plan, write the journal, act, record — in that order.
//!
//! A reconcile plans from the cached Workflow ([`next_actions`]), writes the journal when it
//! changed (a full status replace carrying the `resourceVersion` it was planned from, so a
//! concurrent writer makes it fail with 409 instead of being overwritten), and only then issues
//! the steps' effects. Effects are named from the attempt's idempotency key: a Proposal (or a
//! Pheromone emitted by a path step) of that name that exists already is the same effect,
//! found rather than repeated. Outcomes are recorded ([`record_outcome`]) and written, and the
//! reconcile plans again at once, so the next step starts without waiting for a watch event.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use kgents_core::agentese::{K8sOperation, Path, Registry};
use kgents_crds::proposal::ProposalPhase;
use kgents_crds::workflow::{WorkflowPhase, WorkflowStatus, WorkflowStep};
use kgents_crds::{Proposal, Umwelt, Workflow, validate_spec};
use kgents_logos::{Args, Caller, ErrorKind, KubeActor, LiveView, Logos, Scope};
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::controller::{Action as Requeue, Config as ControllerConfig, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};

use super::plan::{self, Action, Outcome, next_actions, record_outcome};
use super::{CONTROLLER, KEY_ANNOTATION, WORKFLOW_LABEL};
use crate::conditions::{self, DesiredCondition};
use crate::shared::Event;
use crate::support::{self, MANAGED_BY, MANAGED_BY_LABEL, key_of};
use crate::{Context, Error, Result};

/// Called after a step's Running entry is written and before its effect is issued, with the
/// step's name and key. A fault-injection point: a test that never lets it return kills the
/// controller exactly between the journal write and the side effect.
pub type JournalHook = Arc<dyn Fn(&str, &str) -> BoxFuture<'static, ()> + Send + Sync>;

/// Settings of the Workflow controller beyond the shared [`crate::OperatorConfig`].
#[derive(Clone, Default)]
pub struct WorkflowOptions {
    /// See [`JournalHook`]; `None` in production.
    pub journal_hook: Option<JournalHook>,
}

impl std::fmt::Debug for WorkflowOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowOptions")
            .field("journal_hook", &self.journal_hook.is_some())
            .finish()
    }
}

/// How many plan–act rounds one reconcile runs before it yields (each round that finishes a
/// step starts its dependents without waiting for an event).
const MAX_ROUNDS: usize = 32;

struct State {
    ctx: Arc<Context>,
    options: WorkflowOptions,
    logos: Logos,
    registry: Registry,
    /// Who the operator is: the proposer of the Proposals it files for workflows (admission
    /// binds spec.proposer to the requester).
    identity: tokio::sync::OnceCell<String>,
}

/// Runs the Workflow controller with default options until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + 'static) {
    run_with(ctx, shutdown, WorkflowOptions::default()).await;
}

/// Runs the Workflow controller until `shutdown` resolves; in-flight reconciles finish first.
pub async fn run_with(
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: WorkflowOptions,
) {
    let client = ctx.client.clone();
    let deadline = ctx.config.api_timeout;
    let state = Arc::new(State {
        ctx: ctx.clone(),
        options,
        logos: Logos::new(
            Arc::new(LiveView::new(client.clone(), deadline)),
            Some(Arc::new(KubeActor::new(client, deadline))),
        ),
        registry: Registry::seed(),
        identity: tokio::sync::OnceCell::new(),
    });
    let workflows = ctx.watches.workflows.clone();
    let applied = workflows.subscribe().filter_map(|event| {
        futures::future::ready(match event {
            Event::Applied(workflow) => Some(workflow),
            Event::Deleted(_) | Event::Relisted => None,
        })
    });
    // A step's Proposal changing phase wakes its workflow (the label names it).
    let proposals = ctx
        .watches
        .proposals
        .touched()
        .filter(|p| futures::future::ready(p.labels().contains_key(WORKFLOW_LABEL)));
    Controller::for_shared_stream(applied, workflows.store())
        .watches_shared_stream(proposals, |proposal| {
            let workflow = proposal.labels().get(WORKFLOW_LABEL)?.clone();
            Some(ObjectRef::<Workflow>::new(&workflow).within(&proposal.namespace()?))
        })
        .with_config(ControllerConfig::default().concurrency(ctx.config.concurrency))
        .graceful_shutdown_on(support::sync_signal(shutdown))
        .run(reconcile, error_policy, state)
        .for_each(|outcome| {
            support::log_outcome(CONTROLLER, &outcome);
            futures::future::ready(())
        })
        .await;
}

fn error_policy(workflow: Arc<Workflow>, error: &Error, state: Arc<State>) -> Requeue {
    support::error_policy(&state.ctx, CONTROLLER, workflow.as_ref(), error)
}

async fn reconcile(workflow: Arc<Workflow>, state: Arc<State>) -> Result<Requeue> {
    let ctx = state.ctx.clone();
    support::reconcile(
        &ctx,
        CONTROLLER,
        workflow.as_ref(),
        reconcile_inner(&workflow, &state),
    )
    .await
}

/// The name of the object attempt `attempt` of `step` creates: derived from the key's parts
/// (workflow name and uid, step, attempt), so every re-issue of the attempt names the same one.
pub fn object_name(workflow: &str, uid: &str, step: &str, attempt: i32) -> String {
    let uid: String = uid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    support::suffixed_name(&format!("{workflow}-{step}"), &format!("-{attempt}-{uid}"))
}

/// Replaces the status with `status`, with the `resourceVersion` `workflow` was read at: a
/// 409 means someone wrote in between, and the reconcile starts over from what they wrote.
async fn write_status(
    ctx: &Context,
    workflow: &Workflow,
    status: &WorkflowStatus,
) -> Result<Workflow> {
    let namespace = workflow
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let api: Api<Workflow> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut body = workflow.clone();
    body.metadata.managed_fields = None;
    body.status = Some(status.clone());
    ctx.api(
        "write workflow journal",
        api.replace_status(&workflow.name_any(), &PostParams::default(), &body),
    )
    .await
}

fn invalid_status(workflow: &Workflow, reason: &str, now: jiff::Timestamp) -> WorkflowStatus {
    let mut status = workflow.status.clone().unwrap_or_default();
    status.phase = Some(WorkflowPhase::Failed);
    status.observed_generation = workflow.meta().generation;
    let message = format!("the spec cannot run: {reason}");
    status.conditions = conditions::merge(
        &status.conditions,
        &[
            DesiredCondition::new(plan::READY, false, "InvalidSpec", message.clone()),
            DesiredCondition::new(plan::PROGRESSING, false, "InvalidSpec", message.clone()),
            DesiredCondition::new(plan::FAILED, true, "InvalidSpec", message),
        ],
        status.observed_generation,
        now,
    );
    status
}

async fn reconcile_inner(workflow: &Workflow, state: &State) -> Result<Requeue> {
    let ctx = &state.ctx;
    if workflow.meta().deletion_timestamp.is_some() {
        return Ok(Requeue::await_change());
    }
    if !ctx.leader.is_leader() {
        return Ok(Requeue::requeue(ctx.config.resync_interval));
    }
    let uid = workflow
        .meta()
        .uid
        .clone()
        .ok_or(Error::MissingObjectKey("metadata.uid"))?;
    // The webhook refuses such specs; one stored before it ran is reported, never run.
    if let Err(e) = validate_spec(&workflow.spec, &state.registry) {
        let status = invalid_status(workflow, &e.to_string(), ctx.clock.now());
        if workflow.status.as_ref() != Some(&status) {
            write_status(ctx, workflow, &status).await?;
        }
        return Ok(Requeue::await_change());
    }
    let mut current = workflow.clone();
    for _ in 0..MAX_ROUNDS {
        let now = ctx.clock.now();
        let planned = next_actions(
            &uid,
            current.meta().generation,
            &current.spec,
            current.status.as_ref(),
            now,
        );
        let before = current.status.as_ref().and_then(|s| s.phase);
        if current.status.as_ref() != Some(&planned.status) {
            current = write_status(ctx, &current, &planned.status).await?;
        }
        let later = planned
            .requeue_after
            .map_or(ctx.config.resync_interval, |d| {
                d.min(ctx.config.resync_interval)
            });
        if planned.actions.is_empty() {
            announce(ctx, &current, before).await;
            return Ok(Requeue::requeue(later));
        }
        let mut status = current.status.clone().unwrap_or_default();
        let mut finished_one = false;
        for action in &planned.actions {
            let Some(step) = current.spec.steps.iter().find(|s| s.name == action.step()) else {
                continue;
            };
            if let (Action::Start { step, key, .. }, Some(hook)) =
                (action, &state.options.journal_hook)
            {
                hook(step, key).await;
            }
            let outcome = drive(state, &current, &uid, step, action).await?;
            finished_one |= !matches!(outcome, Outcome::InProgress { .. });
            status = record_outcome(
                &current.spec,
                &status,
                action.step(),
                action.key(),
                &outcome,
                ctx.clock.now(),
            );
        }
        if current.status.as_ref() != Some(&status) {
            current = write_status(ctx, &current, &status).await?;
        }
        if !finished_one {
            announce(ctx, &current, before).await;
            return Ok(Requeue::requeue(later));
        }
    }
    Ok(Requeue::requeue(Duration::from_millis(100)))
}

/// Publishes an Event when the workflow's phase changed.
async fn announce(ctx: &Context, workflow: &Workflow, before: Option<WorkflowPhase>) {
    let after = workflow.status.as_ref().and_then(|s| s.phase);
    let Some(phase) = after.filter(|p| Some(*p) != before) else {
        return;
    };
    ctx.metrics
        .observe_phase("Workflow", &key_of(workflow), phase.as_str());
    if phase.is_finished() {
        let failing = phase == WorkflowPhase::Failed;
        let message = workflow
            .status
            .as_ref()
            .and_then(|s| conditions::find(&s.conditions, plan::READY))
            .map(|c| c.message.clone())
            .unwrap_or_default();
        support::transition_event(ctx, workflow, failing, phase.as_str(), "Run", message).await;
    }
}

/// Issues (or re-issues) the effect of one attempt and reports what came of it. An API error
/// that may pass is returned (the reconcile is retried and the step, still Running, resumed
/// with the same key); an error that will not pass is the step's failure.
async fn drive(
    state: &State,
    workflow: &Workflow,
    uid: &str,
    step: &WorkflowStep,
    action: &Action,
) -> Result<Outcome> {
    let name = object_name(&workflow.name_any(), uid, &step.name, action.attempt());
    if step.proposal.is_some() {
        drive_proposal(state, workflow, step, action, name).await
    } else {
        drive_path(state, workflow, step, action, name).await
    }
}

fn proposal_outcome(proposal: &Proposal, name: &str) -> Outcome {
    let object = Some(name.to_owned());
    let phase = proposal.status.as_ref().and_then(|s| s.phase);
    let failed = |message: String, retryable: bool| Outcome::Failed {
        object: object.clone(),
        message,
        retryable,
    };
    match phase {
        Some(ProposalPhase::Merged) => Outcome::Succeeded {
            digest: proposal
                .meta()
                .resource_version
                .as_ref()
                .map(|v| format!("proposal {name} merged at resourceVersion {v}")),
            object,
            message: format!("proposal {name} merged"),
        },
        Some(ProposalPhase::Rejected) => failed(format!("proposal {name} was rejected"), false),
        Some(ProposalPhase::Superseded) => failed(
            format!("proposal {name} was superseded by a newer one"),
            false,
        ),
        Some(ProposalPhase::Failed) => failed(format!("proposal {name} failed to apply"), true),
        Some(ProposalPhase::Expired) => failed(format!("proposal {name} expired undecided"), true),
        other => Outcome::InProgress {
            object,
            message: format!(
                "waiting for proposal {name} ({})",
                other.map_or("filed", ProposalPhase::as_str)
            ),
        },
    }
}

async fn drive_proposal(
    state: &State,
    workflow: &Workflow,
    step: &WorkflowStep,
    action: &Action,
    name: String,
) -> Result<Outcome> {
    let ctx = &state.ctx;
    let namespace = workflow
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let mine = |p: &Proposal| {
        p.annotations().get(KEY_ANNOTATION).map(String::as_str) == Some(action.key())
    };
    let foreign = |name: &str| Outcome::Failed {
        object: Some(name.to_owned()),
        message: format!(
            "a Proposal named {name} exists but was not filed for this step (its {KEY_ANNOTATION} differs); delete it or rename the workflow"
        ),
        retryable: false,
    };
    // The cache first: a Proposal seen there needs no request at all.
    if let Some(cached) = ctx
        .watches
        .proposals
        .store()
        .get(&ObjectRef::new(&name).within(&namespace))
    {
        return Ok(if mine(&cached) {
            proposal_outcome(&cached, &name)
        } else {
            foreign(&name)
        });
    }
    let spec = match step.proposal_spec() {
        Some(Ok(spec)) => spec,
        Some(Err(e)) => {
            return Ok(Outcome::Failed {
                object: None,
                message: format!("the proposal template is not a Proposal spec: {e}"),
                retryable: false,
            });
        }
        None => return Err(Error::MissingObjectKey("spec.steps[].proposal")),
    };
    let mut spec = spec;
    if let Ok(identity) = state
        .identity
        .get_or_try_init(|| support::whoami(&ctx.client))
        .await
    {
        spec.proposer = identity.clone();
    }
    let proposal = Proposal {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            labels: Some(
                [
                    (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
                    (WORKFLOW_LABEL.to_owned(), workflow.name_any()),
                ]
                .into(),
            ),
            annotations: Some([(KEY_ANNOTATION.to_owned(), action.key().to_owned())].into()),
            owner_references: Some(vec![support::owner_reference(workflow)?]),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    };
    let api: Api<Proposal> = Api::namespaced(ctx.client.clone(), &namespace);
    match ctx
        .api(
            "file workflow proposal",
            api.create(&PostParams::default(), &proposal),
        )
        .await
    {
        Ok(created) => Ok(proposal_outcome(&created, &name)),
        Err(Error::Kube(kube::Error::Api(status))) if status.code == 409 => {
            // Filed by an earlier issue of this attempt: the same effect, found.
            let existing = ctx.api("read workflow proposal", api.get(&name)).await?;
            Ok(if mine(&existing) {
                proposal_outcome(&existing, &name)
            } else {
                foreign(&name)
            })
        }
        Err(Error::Kube(kube::Error::Api(status))) if matches!(status.code, 400 | 403 | 422) => {
            Ok(Outcome::Failed {
                object: Some(name),
                message: format!("the API server refused the proposal: {}", status.message),
                retryable: false,
            })
        }
        Err(other) => Err(other),
    }
}

async fn drive_path(
    state: &State,
    workflow: &Workflow,
    step: &WorkflowStep,
    action: &Action,
    name: String,
) -> Result<Outcome> {
    let ctx = &state.ctx;
    let namespace = workflow.namespace().unwrap_or_default();
    let path = step.path.clone().unwrap_or_default();
    let failed = |message: String, retryable: bool| {
        Ok(Outcome::Failed {
            object: None,
            message,
            retryable,
        })
    };
    let Some(umwelt) = workflow.spec.umwelt.as_deref() else {
        return failed("a path step needs spec.umwelt".into(), false);
    };
    let umwelts: Api<Umwelt> = Api::namespaced(ctx.client.clone(), &namespace);
    let caller = match ctx
        .api("read workflow umwelt", umwelts.get_opt(umwelt))
        .await
    {
        Ok(Some(found)) => match Caller::from_umwelt(&found) {
            Ok(caller) => caller,
            Err(e) => return failed(format!("Umwelt {umwelt}: {e}"), false),
        },
        Ok(None) => {
            return failed(
                format!("Umwelt {umwelt} does not exist in {namespace}; create it"),
                true,
            );
        }
        Err(e) => return failed(format!("cannot read Umwelt {umwelt}: {e}"), true),
    };
    // Writes that create an object are named from the key, so a re-issue is AlreadyExists.
    let creates = Path::parse(&path)
        .ok()
        .and_then(|p| state.registry.by_path(&p).map(|m| m.entry.operation()))
        .filter(|op| {
            matches!(
                op,
                K8sOperation::CreatePheromone | K8sOperation::CreateProposal
            )
        });
    let mut input = step.args.clone().unwrap_or_default();
    if creates.is_some() {
        input.insert("name".into(), serde_json::Value::String(name.clone()));
    }
    let args = Args::new(Scope::Namespace(namespace)).with_input(&input);
    let object = creates.map(|_| name.clone());
    Ok(match state.logos.invoke(&caller, &path, args).await {
        Ok(result) => Outcome::Succeeded {
            digest: support::desired_hash(&result)
                .ok()
                .map(|h| format!("fnv1a64:{h}")),
            object,
            message: format!("{path} done"),
        },
        Err(kgents_logos::Error::Api { code: 409, .. }) if creates.is_some() => {
            Outcome::Succeeded {
                digest: None,
                object,
                message: format!("{path} done (found {name}, issued earlier for this attempt)"),
            }
        }
        // A create that timed out may have been taken: failing the attempt would make the
        // next one create a second object under a new key. The step stays Running with this
        // key and the retried reconcile issues the same create (AlreadyExists: done).
        Err(e) if creates.is_some() && e.kind() == ErrorKind::Unavailable => {
            return Err(Error::OutcomeUnknown {
                what: format!("{path} creating {name}"),
                message: e.to_string(),
            });
        }
        Err(e) => {
            let retryable = matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Failed);
            tracing::debug!(step = %step.name, key = action.key(), error = %e, "workflow path step failed");
            Outcome::Failed {
                object: None,
                message: e.to_string(),
                retryable,
            }
        }
    })
}
