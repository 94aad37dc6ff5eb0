//! What a handler returns: one serde-serialisable [`Outcome`] per path, built from the ghost
//! snapshot types where they overlap ([`AgentSummary`], [`AgentStatus`], [`PheromoneSummary`],
//! [`ProposalSummary`]), so a CLI prints it, a TUI draws it and an MCP server or a daemon sends
//! it without re-mapping.

use std::collections::BTreeMap;

use jiff::Timestamp;
use kgents_core::decay;
use kgents_core::field::PheromoneType;
use kgents_crds::proposal::RiskAssessment;
use kgents_ghost::digest::{AgentCounts, FieldHeat, TypeHeat};
use kgents_ghost::snapshot::{AgentStatus, AgentSummary, PheromoneSummary, ProposalSummary};
use serde::{Deserialize, Serialize};

use crate::view::Source;

/// The result of one invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Outcome {
    /// `world.cluster.agents.manifest`.
    Agents(AgentsManifest),
    /// `world.cluster.agents.<agent>.manifest`.
    Agent(AgentManifest),
    /// `void.pheromone.sense`.
    Sensed(FieldReport),
    /// `void.pheromone.emit`.
    Emitted(Emitted),
    /// `self.deployment.define`.
    Filed(Filed),
    /// `world.cluster.proposals.manifest`.
    Proposals(ProposalsManifest),
    /// `world.cluster.proposals.<proposal>.approve` / `.reject`.
    Decided(Decided),
    /// `world.cluster.memories.manifest`.
    Memories(MemoriesManifest),
    /// `world.cluster.umwelts.manifest`.
    Umwelts(UmweltsManifest),
    /// `world.cluster.agents.<agent>.tether`: where to attach.
    Tether(TetherTarget),
    /// `world.cluster.workflow.define`: a Workflow created or updated.
    Workflow(WorkflowDefined),
    /// `time.witness.<agent>.replay`: the agent rebuilt from its witness record.
    Replay(Box<Replay>),
    /// `concept.define`, `concept.blend.forge`, `concept.refine`: the model's checked answer
    /// and the tokens it used.
    Concept(crate::concept::ConceptAnswer),
}

/// A Workflow stored (or dry-run) by `world.cluster.workflow.define`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowDefined {
    /// Its name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Whether it was created (false: an existing one was updated).
    pub created: bool,
    /// Whether it was a server-side dry run (nothing stored).
    pub dry_run: bool,
    /// Its steps, in order.
    pub steps: Vec<String>,
    /// Its metadata.generation after the write.
    pub generation: Option<i64>,
}

/// An agent rebuilt from its witness record at one time, with the records that led there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replay {
    /// The agent.
    pub agent: kgents_seance::AgentRef,
    /// The time asked for (`None`: the latest record).
    pub at: Option<jiff::Timestamp>,
    /// When the recorded history starts.
    pub history_starts: jiff::Timestamp,
    /// How many records lead up to `at`.
    pub records: usize,
    /// The agent as it was.
    pub state: kgents_seance::AgentState,
    /// With `step`: each record in the window (`since`..`until`, capped at `at`), with the
    /// change it made; oldest first, or newest first with `reverse`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<kgents_seance::Step>,
    /// Where the record is kept.
    pub store: String,
}

/// Agents, counted by phase, readiness and cognitive health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentsManifest {
    /// The agents, by namespace and name.
    pub agents: Vec<AgentSummary>,
    /// How many are in each phase.
    pub by_phase: BTreeMap<String, usize>,
    /// How many have each cognitive health.
    pub by_health: BTreeMap<String, usize>,
    /// How many have every replica ready (and at least one replica).
    pub ready: usize,
    /// Where the data came from.
    pub source: Source,
}

/// Agents for the status screen: counted by phase, readiness and health, with those needing
/// attention named.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentsStatus {
    /// The counts and the agents needing attention.
    #[serde(flatten)]
    pub counts: AgentCounts,
    /// Where the data came from.
    pub source: Source,
}

/// The field for the status screen: live and evaporated signals and heat per type at `at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldStatus {
    /// When intensities were computed.
    pub at: Timestamp,
    /// Counts and heat per type.
    #[serde(flatten)]
    pub heat: FieldHeat,
    /// Where the data came from.
    pub source: Source,
}

/// Proposals still waiting (Pending, Reviewing, Approved), for the status screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingStatus {
    /// The proposals, by namespace and name.
    pub proposals: Vec<ProposalSummary>,
    /// Where the data came from.
    pub source: Source,
}

/// One agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentManifest {
    /// Its status.
    pub agent: AgentStatus,
    /// Where the data came from.
    pub source: Source,
}

/// A pheromone as stored, with the intensity it had when observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PheromoneRecord {
    /// The ghost snapshot's summary (`intensity` at the source's `taken_at`, `half_life_seconds`
    /// the base half-life, doubled for DREAM when decaying).
    #[serde(flatten)]
    pub summary: PheromoneSummary,
}

/// A pheromone as sensed now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensedPheromone {
    /// Resource name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Type.
    pub pheromone_type: PheromoneType,
    /// Emitting agent.
    pub source: String,
    /// Target agent; `None` is a broadcast.
    pub target: Option<String>,
    /// The current (decayed) intensity in `[0, 1]`.
    pub intensity: f64,
    /// When it was emitted.
    pub emitted_at: Timestamp,
    /// The effective half-life in seconds (DREAM doubled).
    pub half_life_seconds: f64,
    /// Seconds until it evaporates (below 0.01 or past its TTL).
    pub evaporates_in_seconds: f64,
    /// Its hard TTL deadline, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

impl SensedPheromone {
    /// The record it was sensed from, with `intensity` as of `sensed_at` (when it was sensed):
    /// decaying the record from then gives the same intensities as sensing again. The base
    /// half-life is the effective one undone for DREAM; at the cap, where undoing is not
    /// exact, any base that stretches to the same effective half-life decays identically.
    pub fn record(&self) -> PheromoneRecord {
        let half_life_seconds = match self.pheromone_type {
            PheromoneType::Dream => self.half_life_seconds / decay::DREAM_HALF_LIFE_MULTIPLIER,
            _ => self.half_life_seconds,
        };
        PheromoneRecord {
            summary: PheromoneSummary {
                name: self.name.clone(),
                namespace: self.namespace.clone(),
                pheromone_type: self.pheromone_type,
                source: self.source.clone(),
                target: self.target.clone(),
                intensity: self.intensity,
                emitted_at: self.emitted_at,
                half_life_seconds,
                expires_at: self.expires_at,
            },
        }
    }
}

/// Heat of one type: live signals, the sum and the strongest of their current intensities
/// (the same row the status digest computes).
pub type HeatRow = TypeHeat;

/// The sensed field: live signals ranked by current intensity, and heat per type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldReport {
    /// When intensities were computed.
    pub at: Timestamp,
    /// The signals the query admits, strongest first (the strongest `limit` when the query
    /// had one).
    pub pheromones: Vec<SensedPheromone>,
    /// How many live signals the query admits, listed or not.
    #[serde(default)]
    pub admitted: usize,
    /// Heat per type over the admitted signals.
    pub heat: Vec<HeatRow>,
    /// How many stored signals had already evaporated (not listed).
    pub evaporated: usize,
    /// Where the data came from.
    pub source: Source,
}

/// A created pheromone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Emitted {
    /// Resource name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Type.
    pub pheromone_type: PheromoneType,
    /// Emitting agent.
    pub source: String,
    /// Target, if any.
    pub target: Option<String>,
    /// Initial intensity.
    pub intensity: f64,
    /// Base half-life in minutes.
    pub half_life_minutes: f64,
    /// When it will have evaporated.
    pub evaporates_at: Option<Timestamp>,
}

/// The local risk preview of a proposal: the same policy the admission webhook applies, with the
/// ledger read from the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskPreview {
    /// Whether the policy admits it.
    pub allowed: bool,
    /// Why not (empty when allowed).
    pub reasons: Vec<String>,
    /// What to know although it is admitted.
    pub warnings: Vec<String>,
    /// Score, level, decision and every factor, when it could be assessed.
    pub risk: Option<RiskAssessment>,
    /// Who the preview judged as the requester.
    pub requester: String,
    /// Where the policy came from (the ConfigMap, or the defaults and why).
    pub policy: String,
    /// How many proposals of the namespace the ledger held.
    pub ledger_proposals: usize,
}

/// A filed (or dry-run) proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Filed {
    /// Its name (server-generated when none was given).
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Whether it was a server-side dry run (nothing stored).
    pub dry_run: bool,
    /// The local preview, computed before anything was sent.
    pub preview: RiskPreview,
    /// What the API server (with the admission webhook) said.
    pub server: ServerVerdict,
}

/// The API server's answer to a create (or a dry run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum ServerVerdict {
    /// Admitted (stored, unless a dry run).
    Admitted {
        /// The phase the stored object reports (usually none yet: the controller sets it).
        phase: Option<String>,
    },
    /// Refused (the webhook's or RBAC's message).
    Denied {
        /// HTTP code.
        code: u16,
        /// The message.
        message: String,
    },
    /// Not sent, because the local preview denied it (use `--force` to send anyway).
    NotSent,
}

/// Proposals with their risk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProposalsManifest {
    /// The proposals, by namespace and name.
    pub proposals: Vec<ProposalRecord>,
    /// Where the data came from.
    pub source: Source,
}

/// A proposal: the ghost summary, plus its risk factors and decisions when known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProposalRecord {
    /// Name, namespace, proposer, change type, target, risk score and level, phase.
    #[serde(flatten)]
    pub summary: ProposalSummary,
    /// The full assessment with its factors (live reads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskAssessment>,
    /// Who approved.
    #[serde(default)]
    pub approvals: Vec<String>,
    /// Who rejected.
    #[serde(default)]
    pub rejections: Vec<String>,
}

impl ProposalRecord {
    /// Whether the proposal still waits for something (Pending, Reviewing, Approved).
    pub fn is_pending(&self) -> bool {
        matches!(
            self.summary.phase.as_str(),
            "" | "Pending" | "Reviewing" | "Approved"
        )
    }
}

/// An approval or a rejection recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decided {
    /// The proposal.
    pub proposal: String,
    /// Namespace.
    pub namespace: String,
    /// `true` approved, `false` rejected.
    pub approved: bool,
    /// Who, as the API server authenticated them.
    pub by: String,
    /// The comment or reason.
    pub comment: Option<String>,
}

/// A Memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemorySummary {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Owning agent.
    pub owner: String,
    /// Memory type.
    pub memory_type: String,
    /// Requested size.
    pub size: String,
    /// Retention policy.
    pub retention: String,
    /// Phase.
    pub phase: String,
    /// Its PersistentVolumeClaim, if any.
    pub pvc: Option<String>,
}

/// Memories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoriesManifest {
    /// The memories.
    pub memories: Vec<MemorySummary>,
    /// Where the data came from.
    pub source: Source,
}

/// An Umwelt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UmweltSummary {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// The agent it describes.
    pub agent: String,
    /// Its affordance globs.
    pub affordances: Vec<String>,
    /// The compiled ServiceAccount, if any.
    pub service_account: Option<String>,
}

/// Umwelts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UmweltsManifest {
    /// The umwelts.
    pub umwelts: Vec<UmweltSummary>,
    /// Where the data came from.
    pub source: Source,
}

/// Where to tether: a ready pod of the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TetherTarget {
    /// Namespace.
    pub namespace: String,
    /// The agent.
    pub agent: String,
    /// The pod.
    pub pod: String,
    /// The first container port, when the pod declares one.
    pub port: Option<u16>,
}
