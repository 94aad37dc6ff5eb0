//! The resolver: [`Logos::invoke`] parses a path, checks the caller's affordances (deny by
//! default), finds the registry entry (or names the closest ones) and runs its handler.
//!
//! Every registry entry is routed by its [`K8sOperation`] ([`handler_for`]);
//! `world.cluster.workflow.define` creates or updates a Workflow (checked as the admission
//! webhook checks it); `time.witness.<agent>.replay` reads the witness store given with
//! [`Logos::with_witness`] (without one it answers [`Error::NotServed`], saying so).

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use kgents_core::agentese::{K8sOperation, Path, Registry};
use kgents_core::clock::{Clock, SystemClock};
use kgents_core::decay::{HalfLife, Intensity};
use kgents_core::field::{PheromoneType, Signal, TypeSet};
use kgents_crds::{Pheromone, PheromoneSignal, PheromoneSpec, Proposal, ProposalSpec};
use kgents_policy::{Occasion, Requester};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::caller::Caller;
use crate::concept::{self, ConceptKind, ConceptModel};
use crate::error::{Error, Result};
use crate::outcome::{
    AgentManifest, AgentsManifest, AgentsStatus, Decided, Emitted, FieldReport, FieldStatus, Filed,
    MemoriesManifest, Outcome, PendingStatus, ProposalsManifest, Replay, RiskPreview,
    ServerVerdict, TetherTarget, UmweltsManifest, WorkflowDefined,
};
use crate::suggest;
use crate::summary::{self, SenseFilter, check_name};
use crate::view::{ClusterActor, ClusterView, Filter, Scope};

/// What a handler does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Handler {
    /// List agents.
    Agents,
    /// One agent.
    Agent,
    /// Sense the pheromone field.
    Sense,
    /// Emit a pheromone.
    Emit,
    /// File a proposal.
    Define,
    /// List proposals.
    Proposals,
    /// Approve a proposal.
    Approve,
    /// Reject a proposal.
    Reject,
    /// List memories.
    Memories,
    /// List umwelts.
    Umwelts,
    /// Find where to tether to an agent.
    Tether,
    /// Create or update a durable Workflow.
    Workflow,
    /// Rebuild an agent from its witness record.
    Replay,
    /// Ask the model (`concept.define`, `concept.blend.forge`, `concept.refine`).
    Concept(ConceptKind),
}

/// The handler of a registry operation; `None` for operations whose handlers live elsewhere.
pub fn handler_for(operation: K8sOperation) -> Option<Handler> {
    use K8sOperation as Op;
    Some(match operation {
        Op::ListAgents => Handler::Agents,
        Op::GetAgent => Handler::Agent,
        Op::WatchPheromones => Handler::Sense,
        Op::CreatePheromone => Handler::Emit,
        Op::CreateProposal => Handler::Define,
        Op::ListProposals => Handler::Proposals,
        Op::ApproveProposal => Handler::Approve,
        Op::RejectProposal => Handler::Reject,
        Op::ListMemories => Handler::Memories,
        Op::ListUmwelts => Handler::Umwelts,
        Op::PortForward => Handler::Tether,
        Op::DurableWorkflow => Handler::Workflow,
        Op::ReconstructHistory => Handler::Replay,
        Op::DefineConcept => Handler::Concept(ConceptKind::Define),
        Op::BlendConcepts => Handler::Concept(ConceptKind::Blend),
        Op::RefineText => Handler::Concept(ConceptKind::Refine),
        _ => return None,
    })
}

/// The arguments of an invocation: where, and the path's typed input as JSON (so every
/// front-end, including MCP and gRPC, passes the same shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Args {
    /// The namespaces (writes need one namespace).
    pub scope: Scope,
    /// A label selector for list reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The input: [`SenseInput`], [`EmitInput`], [`DefineInput`], [`DecisionInput`], or null.
    #[serde(default)]
    pub input: serde_json::Value,
}

impl Args {
    /// No input, in `scope`.
    pub fn new(scope: Scope) -> Args {
        Args {
            scope,
            selector: None,
            input: serde_json::Value::Null,
        }
    }

    /// With a label selector.
    #[must_use]
    pub fn with_selector(mut self, selector: Option<String>) -> Args {
        self.selector = selector;
        self
    }

    /// With a typed input.
    #[must_use]
    pub fn with_input(mut self, input: &impl Serialize) -> Args {
        self.input = serde_json::to_value(input).unwrap_or(serde_json::Value::Null);
        self
    }

    fn filter(&self) -> Filter {
        Filter {
            scope: self.scope.clone(),
            selector: self.selector.clone(),
        }
    }

    fn parse<T: DeserializeOwned + Default>(&self, path: &Path) -> Result<T> {
        if self.input.is_null() {
            return Ok(T::default());
        }
        serde_json::from_value(self.input.clone()).map_err(|e| Error::BadInput {
            path: path.to_string(),
            reason: format!("bad input: {e}"),
        })
    }

    fn namespace(&self, path: &Path) -> Result<String> {
        match &self.scope {
            Scope::Namespace(ns) => Ok(ns.clone()),
            Scope::All => Err(Error::BadInput {
                path: path.to_string(),
                reason: "this path writes to one namespace; name it (-n NAMESPACE), not all (-A)"
                    .into(),
            }),
        }
    }
}

/// Input of `void.pheromone.sense`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SenseInput {
    /// Only these types (empty: all).
    pub types: Vec<PheromoneType>,
    /// Only from this source.
    pub source: Option<String>,
    /// What this target senses (addressed to it, or broadcast).
    pub target: Option<String>,
    /// At most this many, strongest first.
    pub limit: Option<usize>,
}

/// Input of `void.pheromone.emit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmitInput {
    /// Type (required).
    pub pheromone_type: Option<PheromoneType>,
    /// Emitting agent (defaults to the caller's identity when that is a valid name).
    pub source: Option<String>,
    /// Target agent (none: a broadcast).
    pub target: Option<String>,
    /// Initial intensity, in (0, 1].
    pub intensity: f64,
    /// Base half-life in minutes (≥ 0.1).
    pub half_life_minutes: f64,
    /// Hard TTL in seconds (≥ 1).
    pub ttl_seconds: Option<i64>,
    /// Payload text.
    pub payload: Option<String>,
    /// Resource name (default: generated from the source and type).
    pub name: Option<String>,
}

impl Default for EmitInput {
    fn default() -> Self {
        EmitInput {
            pheromone_type: None,
            source: None,
            target: None,
            intensity: 1.0,
            half_life_minutes: kgents_core::decay::DEFAULT_HALF_LIFE_MINUTES,
            ttl_seconds: None,
            payload: None,
            name: None,
        }
    }
}

/// Input of `self.deployment.define`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DefineInput {
    /// Proposal name (default: generated by the API server from the target).
    pub name: Option<String>,
    /// The proposal's spec (camelCase, as in the resource). `proposer` defaults to the caller.
    pub spec: Option<ProposalSpec>,
    /// A server-side dry run: the webhook judges it, nothing is stored.
    pub dry_run: bool,
    /// Send it although the local preview denies it.
    pub force: bool,
}

/// Input of `world.cluster.workflow.define`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkflowInput {
    /// The Workflow's name (required).
    pub name: Option<String>,
    /// Its spec (camelCase, as in the resource): umwelt, steps, cancelled, retryGeneration.
    pub spec: Option<kgents_crds::WorkflowSpec>,
    /// A server-side dry run: checked and admitted, nothing stored.
    pub dry_run: bool,
}

/// Input of approve and reject.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecisionInput {
    /// The comment (approve) or reason (reject).
    pub comment: Option<String>,
}

/// Input of `time.witness.<agent>.replay`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplayInput {
    /// Rebuild the agent as it was at this time (default: after the latest record).
    pub at: Option<Timestamp>,
    /// Include each record with the change it made.
    pub step: bool,
    /// Steps from this time on.
    pub since: Option<Timestamp>,
    /// Steps up to this time.
    pub until: Option<Timestamp>,
    /// Steps newest first (stepping back).
    pub reverse: bool,
}

/// The resolver.
pub struct Logos {
    registry: Registry,
    view: Arc<dyn ClusterView>,
    actor: Option<Arc<dyn ClusterActor>>,
    clock: Arc<dyn Clock>,
    witness: Option<Arc<dyn kgents_seance::WitnessStore>>,
    model: Option<Arc<ConceptModel>>,
}

/// The one-screen status: agents counted, pheromone heat, pending proposals. A part the caller
/// may not read, or that failed, is reported in `problems` without hiding the others.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    /// Server version, nodes, and the operator's and webhook's health (unrestricted callers
    /// only: no AGENTESE path grants it to an Umwelt).
    pub cluster: Option<kgents_ghost::snapshot::ClusterStatus>,
    /// Where the cluster health came from.
    pub cluster_source: Option<crate::view::Source>,
    /// Agents by phase, readiness and health, those needing attention named.
    pub agents: Option<AgentsStatus>,
    /// The field: live and evaporated signals, heat per type.
    pub field: Option<FieldStatus>,
    /// Proposals still waiting (Pending, Reviewing, Approved).
    pub pending: Option<PendingStatus>,
    /// What could not be shown, and why.
    pub problems: Vec<String>,
    /// The most severe failure kind among the problems, if any.
    #[serde(skip)]
    pub worst: Option<crate::ErrorKind>,
}

impl Logos {
    /// A Logos over the seed registry, reading through `view`, writing through `actor` (none:
    /// read-only; writes answer an error saying so), on the system clock.
    pub fn new(view: Arc<dyn ClusterView>, actor: Option<Arc<dyn ClusterActor>>) -> Logos {
        Logos {
            registry: Registry::seed(),
            view,
            actor,
            clock: Arc::new(SystemClock),
            witness: None,
            model: None,
        }
    }

    /// Serves the model paths (`concept.*`) with `model`; without one they answer
    /// [`Error::NoModel`], saying how to configure one.
    #[must_use]
    pub fn with_model(mut self, model: Arc<ConceptModel>) -> Logos {
        self.model = Some(model);
        self
    }

    /// The model behind the `concept.*` paths, if one was given.
    pub fn model(&self) -> Option<&Arc<ConceptModel>> {
        self.model.as_ref()
    }

    /// Serves `time.witness.<agent>.replay` from `store`.
    #[must_use]
    pub fn with_witness(mut self, store: Arc<dyn kgents_seance::WitnessStore>) -> Logos {
        self.witness = Some(store);
        self
    }

    /// Replaces the clock (tests, replays).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Logos {
        self.clock = clock;
        self
    }

    /// Replaces the registry.
    #[must_use]
    pub fn with_registry(mut self, registry: Registry) -> Logos {
        self.registry = registry;
        self
    }

    /// The registry served.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    fn actor(&self, path: &Path) -> Result<&dyn ClusterActor> {
        self.actor.as_deref().ok_or_else(|| Error::BadInput {
            path: path.to_string(),
            reason: "this Logos is read-only (no writer was given); this path writes".into(),
        })
    }

    /// Resolves `path` for `caller` with `args`.
    ///
    /// # Errors
    /// [`Error::BadPath`], [`Error::Denied`] (checked before anything else is looked at),
    /// [`Error::UnknownPath`] with the closest registered paths, [`Error::NotServed`], and the
    /// handler's errors.
    pub async fn invoke(&self, caller: &Caller, path: &str, args: Args) -> Result<Outcome> {
        let parsed = Path::parse(path).map_err(|e| Error::BadPath {
            input: path.chars().take(120).collect(),
            reason: e.to_string(),
        })?;
        caller.check(&parsed)?;
        let found = self
            .registry
            .by_path(&parsed)
            .ok_or_else(|| Error::UnknownPath {
                path: parsed.to_string(),
                suggestions: suggest::closest(&self.registry, &parsed.to_string(), 3),
            })?;
        let operation = found.entry.operation();
        let handler = handler_for(operation).ok_or_else(|| Error::NotServed {
            path: parsed.to_string(),
            operation: operation.to_string(),
        })?;
        let bound = |name: &str| {
            found
                .binding(name)
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default()
        };
        tracing::debug!(path = %parsed, caller = caller.identity(), ?handler, "logos invoke");
        match handler {
            Handler::Agents => self.agents(&args).await.map(Outcome::Agents),
            Handler::Agent => self.agent(&args, &bound("agent")).await.map(Outcome::Agent),
            Handler::Sense => {
                let input: SenseInput = args.parse(&parsed)?;
                self.sense(&args, &input).await.map(Outcome::Sensed)
            }
            Handler::Emit => {
                let input: EmitInput = args.parse(&parsed)?;
                self.emit(&parsed, &args, caller, input)
                    .await
                    .map(Outcome::Emitted)
            }
            Handler::Define => {
                let input: DefineInput = args.parse(&parsed)?;
                self.define(&parsed, &args, input).await.map(Outcome::Filed)
            }
            Handler::Proposals => {
                let observed = self.view.proposals(&args.filter()).await?;
                let mut proposals = observed.data;
                proposals.sort_by(|a, b| {
                    (&a.summary.namespace, &a.summary.name)
                        .cmp(&(&b.summary.namespace, &b.summary.name))
                });
                Ok(Outcome::Proposals(ProposalsManifest {
                    proposals,
                    source: observed.source,
                }))
            }
            Handler::Approve | Handler::Reject => {
                let input: DecisionInput = args.parse(&parsed)?;
                let namespace = args.namespace(&parsed)?;
                let name = bound("proposal");
                check_name("Proposal", &name).map_err(|reason| Error::BadInput {
                    path: parsed.to_string(),
                    reason,
                })?;
                let actor = self.actor(&parsed)?;
                let approved = handler == Handler::Approve;
                let comment = input.comment.as_deref();
                let by = if approved {
                    actor.approve(&namespace, &name, comment).await?
                } else {
                    actor.reject(&namespace, &name, comment).await?
                };
                Ok(Outcome::Decided(Decided {
                    proposal: name,
                    namespace,
                    approved,
                    by,
                    comment: input.comment,
                }))
            }
            Handler::Memories => {
                let observed = self.view.memories(&args.filter()).await?;
                let mut memories = observed.data;
                memories.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
                Ok(Outcome::Memories(MemoriesManifest {
                    memories,
                    source: observed.source,
                }))
            }
            Handler::Umwelts => {
                let observed = self.view.umwelts(&args.filter()).await?;
                let mut umwelts = observed.data;
                umwelts.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
                Ok(Outcome::Umwelts(UmweltsManifest {
                    umwelts,
                    source: observed.source,
                }))
            }
            Handler::Workflow => {
                let input: WorkflowInput = args.parse(&parsed)?;
                self.define_workflow(&parsed, &args, input)
                    .await
                    .map(Outcome::Workflow)
            }
            Handler::Tether => {
                let namespace = args.namespace(&parsed)?;
                let agent = bound("agent");
                let actor = self.actor(&parsed)?;
                let target: TetherTarget = actor.tether_target(&namespace, &agent).await?;
                Ok(Outcome::Tether(target))
            }
            Handler::Replay => {
                let input: ReplayInput = args.parse(&parsed)?;
                let namespace = args.namespace(&parsed)?;
                self.replay(&parsed, namespace, bound("agent"), input)
                    .await
                    .map(|r| Outcome::Replay(Box::new(r)))
            }
            Handler::Concept(kind) => {
                let model = self.model.as_deref().ok_or_else(|| Error::NoModel {
                    path: parsed.to_string(),
                })?;
                concept::run(model, self.clock.as_ref(), caller, &parsed, kind, &args)
                    .await
                    .map(Outcome::Concept)
            }
        }
    }

    async fn replay(
        &self,
        path: &Path,
        namespace: String,
        name: String,
        input: ReplayInput,
    ) -> Result<Replay> {
        use kgents_seance::{AgentRef, TimeRange};
        let store = self.witness.as_deref().ok_or_else(|| Error::NotServed {
            path: path.to_string(),
            operation: "no witness store configured (give the operator a witness setting and this front-end the same store)".into(),
        })?;
        let failed = |e: kgents_seance::Error| Error::BadInput {
            path: path.to_string(),
            reason: e.to_string(),
        };
        let agent = AgentRef::new(namespace, name);
        let records = store
            .read(
                &agent,
                TimeRange {
                    since: None,
                    until: input.at,
                },
            )
            .await
            .map_err(failed)?;
        if records.is_empty() {
            // Either no history at all (names suggested), or none before `at`.
            let known = store.agents().await.map_err(failed)?;
            if let Some(first) = store
                .read(&agent, TimeRange::ALL)
                .await
                .map_err(failed)?
                .first()
            {
                return Err(Error::BadInput {
                    path: path.to_string(),
                    reason: format!(
                        "agent {agent}'s history starts at {}; {} is before it",
                        first.at,
                        input
                            .at
                            .map_or("the time asked for".into(), |t| t.to_string())
                    ),
                });
            }
            let mut scored: Vec<(usize, String)> = known
                .iter()
                .map(|r| {
                    let name = r.agent.to_string();
                    (suggest::edit_distance(&agent.to_string(), &name), name)
                })
                .collect();
            scored.sort();
            return Err(Error::NoHistory {
                agent: agent.to_string(),
                store: store.location(),
                suggestions: scored.into_iter().take(3).map(|(_, n)| n).collect(),
            });
        }
        let state = kgents_seance::reconstruct(&agent, &records, input.at).map_err(failed)?;
        let mut steps = Vec::new();
        if input.step {
            let window = TimeRange {
                since: input.since,
                until: input.until,
            };
            steps = kgents_seance::steps(&agent, &records)
                .map_err(failed)?
                .into_iter()
                .filter(|s| window.contains(s.record.at))
                .collect();
            if input.reverse {
                steps.reverse();
            }
        }
        Ok(Replay {
            history_starts: records[0].at,
            records: records.len(),
            agent,
            at: input.at,
            state,
            steps,
            store: store.location(),
        })
    }

    async fn agents(&self, args: &Args) -> Result<AgentsManifest> {
        let observed = self.view.agents(&args.filter()).await?;
        let mut agents = observed.data;
        agents.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let mut by_phase = BTreeMap::new();
        let mut by_health = BTreeMap::new();
        let mut ready = 0;
        for agent in &agents {
            *by_phase.entry(agent.phase.clone()).or_insert(0) += 1;
            *by_health.entry(agent.cognitive_health.clone()).or_insert(0) += 1;
            if agent.replicas > 0 && agent.ready_replicas >= agent.replicas {
                ready += 1;
            }
        }
        Ok(AgentsManifest {
            agents,
            by_phase,
            by_health,
            ready,
            source: observed.source,
        })
    }

    async fn agent(&self, args: &Args, name: &str) -> Result<AgentManifest> {
        let observed = self.view.agent(args.scope.namespace(), name).await?;
        match observed.data {
            Some(agent) => Ok(AgentManifest {
                agent,
                source: observed.source,
            }),
            None => Err(Error::NotFound {
                kind: "Agent",
                name: name.to_owned(),
                namespace: args.scope.namespace().map(str::to_owned),
            }),
        }
    }

    async fn sense(&self, args: &Args, input: &SenseInput) -> Result<FieldReport> {
        let filter = SenseFilter {
            types: input.types.iter().copied().collect::<TypeSet>(),
            source: input.source.clone(),
            target: input.target.clone(),
        };
        self.view
            .sense(&args.filter(), &filter, self.clock.now(), input.limit)
            .await
    }

    async fn emit(
        &self,
        path: &Path,
        args: &Args,
        caller: &Caller,
        input: EmitInput,
    ) -> Result<Emitted> {
        let bad = |reason: String| Error::BadInput {
            path: path.to_string(),
            reason,
        };
        let namespace = args.namespace(path)?;
        let actor = self.actor(path)?;
        let pheromone_type = input
            .pheromone_type
            .ok_or_else(|| bad("the pheromone type is required (e.g. WARNING)".into()))?;
        let source = match input.source {
            Some(source) => source,
            None => caller
                .identity()
                .strip_prefix("agent ")
                .map(str::to_owned)
                .ok_or_else(|| bad("name the emitting agent (--source)".into()))?,
        };
        check_name("source agent", &source).map_err(bad)?;
        if let Some(target) = &input.target {
            check_name("target agent", target).map_err(bad)?;
        }
        Intensity::new(input.intensity)
            .ok()
            .filter(|i| i.get() > 0.0)
            .ok_or_else(|| {
                bad(format!(
                    "intensity {} must be greater than 0 and at most 1",
                    input.intensity
                ))
            })?;
        if !(input.half_life_minutes >= 0.1
            && HalfLife::from_minutes(input.half_life_minutes).is_ok())
        {
            return Err(bad(format!(
                "half-life {} minutes must be at least 0.1 minutes",
                input.half_life_minutes
            )));
        }
        if input.ttl_seconds.is_some_and(|t| t < 1) {
            return Err(bad(
                "the TTL must be at least 1 second (leave it out for none)".into(),
            ));
        }
        let type_name = summary::enum_name(&pheromone_type)
            .to_ascii_lowercase()
            .replace('_', "-");
        let mut metadata = kube::api::ObjectMeta {
            namespace: Some(namespace.clone()),
            ..Default::default()
        };
        match input.name {
            Some(name) => {
                check_name("Pheromone", &name).map_err(bad)?;
                metadata.name = Some(name);
            }
            None => {
                let mut prefix = format!("{source}-{type_name}");
                prefix.truncate(200);
                metadata.generate_name = Some(format!("{}-", prefix.trim_end_matches(['-', '.'])));
            }
        }
        let pheromone = Pheromone {
            metadata,
            spec: PheromoneSpec {
                kind: pheromone_type,
                source: source.clone(),
                target: input.target.clone(),
                initial_intensity: input.intensity,
                half_life_minutes: input.half_life_minutes,
                emitted_at: None,
                ttl_seconds: input.ttl_seconds,
                payload: input.payload,
                position: None,
            },
            status: None,
        };
        let stored = actor.create_pheromone(&pheromone).await?;
        let evaporates_at = PheromoneSignal::try_from(&stored)
            .ok()
            .map(|s| s.evaporates_at())
            .filter(|t| *t != Timestamp::MAX);
        Ok(Emitted {
            name: stored.metadata.name.clone().unwrap_or_default(),
            namespace,
            pheromone_type,
            source,
            target: input.target,
            intensity: input.intensity,
            half_life_minutes: input.half_life_minutes,
            evaporates_at,
        })
    }

    async fn define_workflow(
        &self,
        path: &Path,
        args: &Args,
        input: WorkflowInput,
    ) -> Result<WorkflowDefined> {
        let bad = |reason: String| Error::BadInput {
            path: path.to_string(),
            reason,
        };
        let namespace = args.namespace(path)?;
        let actor = self.actor(path)?;
        let name = input
            .name
            .ok_or_else(|| bad("the workflow's name is required".into()))?;
        check_name("Workflow", &name).map_err(bad)?;
        let spec = input
            .spec
            .ok_or_else(|| bad("the workflow's spec is required (steps, ...)".into()))?;
        // What the admission webhook refuses is refused here first, naming the step.
        kgents_crds::validate_spec(&spec, &self.registry).map_err(|e| bad(e.to_string()))?;
        let workflow = kgents_crds::Workflow {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            spec,
            status: None,
        };
        let (stored, created) = actor.apply_workflow(&workflow, input.dry_run).await?;
        Ok(WorkflowDefined {
            name,
            namespace,
            created,
            dry_run: input.dry_run,
            steps: stored.spec.steps.iter().map(|s| s.name.clone()).collect(),
            generation: stored.metadata.generation,
        })
    }

    async fn define(&self, path: &Path, args: &Args, input: DefineInput) -> Result<Filed> {
        let bad = |reason: String| Error::BadInput {
            path: path.to_string(),
            reason,
        };
        let namespace = args.namespace(path)?;
        let actor = self.actor(path)?;
        let mut spec = input
            .spec
            .ok_or_else(|| bad("the proposal spec is required (changeType, target, ...)".into()))?;
        check_name("target", &spec.target.name).map_err(bad)?;
        let requester = actor.whoami().await?;
        if spec.proposer.is_empty() {
            spec.proposer = requester.clone();
        }
        let mut metadata = kube::api::ObjectMeta {
            namespace: Some(namespace.clone()),
            ..Default::default()
        };
        match &input.name {
            Some(name) => {
                check_name("Proposal", name).map_err(bad)?;
                metadata.name = Some(name.clone());
            }
            None => {
                let mut prefix = format!(
                    "{}-{}",
                    summary::enum_name(&spec.change_type)
                        .to_ascii_lowercase()
                        .replace('_', "-"),
                    spec.target.name
                );
                prefix.truncate(200);
                metadata.generate_name = Some(format!("{}-", prefix.trim_end_matches(['-', '.'])));
            }
        }
        let proposal = Proposal {
            metadata,
            spec,
            status: None,
        };

        // The local preview: the webhook's own policy and ledger, judged now.
        let stored = actor.namespace_proposals(&namespace).await?;
        let ledger = kgents_policy::ledger::snapshot(&stored);
        let (policy, policy_source) = actor.admission_policy().await;
        let who = Requester {
            username: requester.clone(),
            groups: Vec::new(),
        };
        let verdict = kgents_policy::evaluate(
            &proposal,
            &Occasion {
                operation: "CREATE",
                requester: Some(&who),
                old_object: None,
                dry_run: input.dry_run,
            },
            &policy,
            &ledger,
            self.clock.now(),
        );
        let mut reasons = verdict.reasons;
        if proposal.spec.proposer != requester {
            reasons.insert(
                0,
                format!(
                    "spec.proposer is '{}' but you are '{requester}'; a proposal is filed in its requester's own name",
                    proposal.spec.proposer
                ),
            );
        }
        let preview = RiskPreview {
            allowed: reasons.is_empty(),
            reasons,
            warnings: verdict.warnings,
            risk: verdict.assessment.as_ref().map(Into::into),
            requester,
            policy: policy_source,
            ledger_proposals: stored.len(),
        };

        let send = preview.allowed || input.dry_run || input.force;
        let (name, server) = if !send {
            (
                proposal.metadata.name.clone().unwrap_or_default(),
                ServerVerdict::NotSent,
            )
        } else {
            match actor.create_proposal(&proposal, input.dry_run).await {
                Ok(created) => (
                    created
                        .metadata
                        .name
                        .clone()
                        .or_else(|| proposal.metadata.name.clone())
                        .unwrap_or_default(),
                    ServerVerdict::Admitted {
                        phase: created
                            .status
                            .and_then(|s| s.phase)
                            .map(|p| p.as_str().to_owned()),
                    },
                ),
                Err(Error::Forbidden { code, message, .. }) => (
                    proposal.metadata.name.clone().unwrap_or_default(),
                    ServerVerdict::Denied { code, message },
                ),
                Err(other) => return Err(other),
            }
        };
        Ok(Filed {
            name,
            namespace,
            dry_run: input.dry_run,
            preview,
            server,
        })
    }

    /// The status screen.
    ///
    /// An unrestricted caller reads the cluster's status digest (one small snapshot, see
    /// [`kgents_ghost::digest`]: answered from the ghost cache in milliseconds whatever the size
    /// of the field) and the cluster health. A restricted caller, one the API server refuses the
    /// cluster-wide digest, or a cache without a digest and no API server to ask, gets `world.cluster.agents.manifest`, `void.pheromone.sense` and
    /// the pending part of `world.cluster.proposals.manifest`, each through [`Logos::invoke`] (so
    /// each is checked against the caller's affordances on its own) and counted the same way.
    pub async fn status(&self, caller: &Caller, scope: Scope) -> StatusReport {
        let mut report = StatusReport {
            cluster: None,
            cluster_source: None,
            agents: None,
            field: None,
            pending: None,
            problems: Vec::new(),
            worst: None,
        };
        let unrestricted = matches!(caller.grant(), crate::caller::Grant::Unrestricted);
        if unrestricted {
            // Independent reads: asked at once, the answer takes as long as the slower one.
            let (cluster, digest) = futures::join!(self.view.cluster(), self.view.status_digest());
            match cluster {
                Ok(observed) => {
                    report.cluster = Some(observed.data);
                    report.cluster_source = Some(observed.source);
                }
                Err(e) => report.problems.push(format!("cluster health: {e}")),
            }
            match digest {
                Ok(observed) => {
                    let now = self.clock.now();
                    let view = observed
                        .data
                        .view(scope.namespace(), observed.source.taken_at, now);
                    report.agents = Some(AgentsStatus {
                        counts: view.agents,
                        source: observed.source.clone(),
                    });
                    report.field = Some(FieldStatus {
                        at: now,
                        heat: view.field,
                        source: observed.source.clone(),
                    });
                    report.pending = Some(PendingStatus {
                        proposals: view.pending,
                        source: observed.source,
                    });
                    return report;
                }
                // The API server away: the per-part reads would only wait for it again.
                Err(e) if crate::ghost::api_found_away(&e) => {
                    note_problem(&mut report, "agents, pheromones and proposals", &e);
                    return report;
                }
                // Refused cluster-wide, or no digest cached (snapshots written by an older
                // version): each part on its own, in the caller's scope.
                Err(_) => {}
            }
        }
        let agents = self.invoke(
            caller,
            "world.cluster.agents.manifest",
            Args::new(scope.clone()),
        );
        let field = self.invoke(caller, "void.pheromone.sense", Args::new(scope.clone()));
        let proposals = self.invoke(caller, "world.cluster.proposals.manifest", Args::new(scope));
        let (agents, field, proposals) = futures::join!(agents, field, proposals);
        match agents {
            Ok(Outcome::Agents(agents)) => {
                report.agents = Some(AgentsStatus {
                    counts: kgents_ghost::digest::AgentCounts::of(&agents.agents),
                    source: agents.source,
                });
            }
            Ok(_) => {}
            Err(e) => note_problem(&mut report, "agents", &e),
        }
        match field {
            Ok(Outcome::Sensed(field)) => report.field = Some(field_status(field)),
            Ok(_) => {}
            Err(e) => note_problem(&mut report, "pheromones", &e),
        }
        match proposals {
            Ok(Outcome::Proposals(proposals)) => {
                report.pending = Some(PendingStatus {
                    proposals: proposals
                        .proposals
                        .into_iter()
                        .filter(crate::outcome::ProposalRecord::is_pending)
                        .map(|p| p.summary)
                        .collect(),
                    source: proposals.source,
                });
            }
            Ok(_) => {}
            Err(e) => note_problem(&mut report, "proposals", &e),
        }
        report
    }
}

/// Records a part of the status that could not be read, keeping the most severe kind.
fn note_problem(report: &mut StatusReport, what: &str, error: &Error) {
    use crate::ErrorKind::{Denied, Unavailable};
    report.problems.push(format!("{what}: {error}"));
    report.worst = Some(match (report.worst, error.kind()) {
        (Some(Denied), _) | (_, Denied) => Denied,
        (Some(Unavailable), _) | (_, Unavailable) => Unavailable,
        (_, kind) => kind,
    });
}

/// The status screen's part of a sensed field.
fn field_status(field: FieldReport) -> FieldStatus {
    FieldStatus {
        at: field.at,
        heat: kgents_ghost::digest::FieldHeat {
            live: field.pheromones.len(),
            evaporated: field.evaporated,
            heat: field.heat,
        },
        source: field.source,
    }
}
