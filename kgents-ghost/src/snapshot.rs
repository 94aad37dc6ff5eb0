//! Snapshot kinds, the queries that name them, and the JSON envelope they are stored in.
//!
//! Every file of the ghost cache is one [`Envelope`]:
//! `{"schema_version": 1, "kind": "agents_index", "taken_at": "<RFC 3339>", "data": {...}}`.
//! The payload types are plain data (names, phases, intensities) so that this crate depends on
//! neither kube nor the CRD crate; adapters fill them from the API objects.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use kgents_core::field::PheromoneType;

use crate::digest::StatusDigest;
use crate::name::AgentName;

/// Version of the envelope and payload layout written by this crate. A file with any other
/// version is a cache miss (never migrated in place, never deleted).
pub const SCHEMA_VERSION: u32 = 1;

/// One row of the agents index (`agents/_index.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSummary {
    /// Agent name.
    pub name: AgentName,
    /// Namespace the Agent lives in.
    pub namespace: String,
    /// Genus letter or name (`L`, `PSI`, …).
    pub genus: String,
    /// Lifecycle phase (`Pending`, `Running`, `Degraded`, `Failed`, `Terminating`).
    pub phase: String,
    /// Cognitive health (`HEALTHY`, `DEGRADED`, `UNRESPONSIVE`, `UNKNOWN`).
    pub cognitive_health: String,
    /// Ready replicas.
    pub ready_replicas: u32,
    /// Desired replicas.
    pub replicas: u32,
}

/// The agents index: every agent the cluster knows, one row each.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AgentsIndex {
    /// The agents, in the order the source listed them.
    pub agents: Vec<AgentSummary>,
}

/// One condition of an agent's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionSummary {
    /// Condition type (`Ready`, `CognitivelyHealthy`, …).
    #[serde(rename = "type")]
    pub condition_type: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// When the condition last changed status.
    pub last_transition_time: Option<Timestamp>,
}

/// Status of one agent (`agents/<name>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// The agent's summary row (name, phase, health, replicas).
    pub summary: AgentSummary,
    /// The agent's status conditions.
    pub conditions: Vec<ConditionSummary>,
    /// When the agent was last probed cognitively, if ever.
    pub last_probe_time: Option<Timestamp>,
}

/// One pheromone with the intensity it had when the snapshot was taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PheromoneSummary {
    /// Pheromone resource name.
    pub name: String,
    /// Namespace of the pheromone.
    pub namespace: String,
    /// Pheromone type.
    pub pheromone_type: PheromoneType,
    /// Emitting agent.
    pub source: String,
    /// Target agent; `None` for a broadcast.
    pub target: Option<String>,
    /// Intensity in `[0, 1]` at the snapshot's `taken_at`.
    pub intensity: f64,
    /// When the pheromone was emitted.
    pub emitted_at: Timestamp,
    /// Half-life in seconds (positive).
    pub half_life_seconds: f64,
    /// The hard TTL deadline, when the pheromone has one (absent in snapshots written before
    /// it was kept: such a signal evaporates by decay only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

/// Active pheromones (`pheromones/active.json`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ActivePheromones {
    /// The pheromones, strongest first as the source ranked them.
    pub pheromones: Vec<PheromoneSummary>,
}

/// Active pheromones of one type (`pheromones/by_type/<TYPE>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PheromonesOfType {
    /// The type every listed pheromone has; it is also the file name.
    pub pheromone_type: PheromoneType,
    /// The pheromones of that type.
    pub pheromones: Vec<PheromoneSummary>,
}

/// One proposal as shown in the pending and rejected lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProposalSummary {
    /// Proposal resource name.
    pub name: String,
    /// Namespace of the proposal.
    pub namespace: String,
    /// Who filed it.
    pub proposer: String,
    /// Change type (`CODE_PATCH`, `AGENT_DELETE`, …).
    pub change_type: String,
    /// Target, as `Kind/name`.
    pub target: String,
    /// Risk score in `[0, 1]`.
    pub risk_score: f64,
    /// Risk level (`LOW`, `MEDIUM`, `HIGH`, `CRITICAL`).
    pub risk_level: String,
    /// Lifecycle phase.
    pub phase: String,
    /// When the proposal was created.
    pub created_at: Timestamp,
    /// Why it is in this state (for rejected proposals: the rejection reason).
    pub reason: Option<String>,
    /// The factors the risk score was computed from, in the order of the formula (empty when
    /// the proposal is not assessed yet, and in snapshots written before they were kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub risk_factors: Vec<RiskFactor>,
    /// The proposed patch as filed (`merge: {...}`), `None` when it carries none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
}

/// One factor of a proposal's risk score (`base`, `size`, `tests`, `velocity`, `cumulative`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskFactor {
    /// The factor's name.
    pub name: String,
    /// Its value.
    pub value: f64,
    /// What it means, for a person (`×`, `+`, and what counted).
    pub detail: String,
}

/// A list of proposals (`proposals/pending.json` or `proposals/rejected.json`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProposalList {
    /// The proposals.
    pub proposals: Vec<ProposalSummary>,
}

/// Health of one control-plane or K8-gents component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentStatus {
    /// Component name (`operator`, `cortex`, `webhook`, …).
    pub name: String,
    /// Whether it is healthy.
    pub healthy: bool,
    /// Details for a person.
    pub message: String,
}

/// Cluster status (`cluster/status.json`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// Kubeconfig context the status was read through.
    pub context: Option<String>,
    /// API server version string.
    pub server_version: Option<String>,
    /// Nodes that are Ready.
    pub nodes_ready: u32,
    /// All nodes.
    pub nodes_total: u32,
    /// Components and their health.
    pub components: Vec<ComponentStatus>,
}

/// The stability score (`_meta/stability_score.json`); see [`crate::stability`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StabilityScore {
    /// Exponentially weighted ratio of successful live fetches, in `[0, 1]`.
    pub score: f64,
    /// Number of live fetches observed since the score was created.
    pub observations: u64,
}

/// The payload of a snapshot, one variant per kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// `agents/_index.json`.
    AgentsIndex(AgentsIndex),
    /// `agents/<name>.json`.
    AgentStatus(AgentStatus),
    /// `pheromones/active.json`.
    ActivePheromones(ActivePheromones),
    /// `pheromones/by_type/<TYPE>.json`.
    PheromonesByType(PheromonesOfType),
    /// `proposals/pending.json`.
    PendingProposals(ProposalList),
    /// `proposals/rejected.json`.
    RejectedProposals(ProposalList),
    /// `cluster/status.json`.
    ClusterStatus(ClusterStatus),
    /// `status/digest.json`.
    StatusDigest(StatusDigest),
    /// `_meta/stability_score.json`.
    StabilityScore(StabilityScore),
}

/// The kind of a snapshot, written as `kind` in every envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotKind {
    /// The agents index.
    AgentsIndex,
    /// One agent's status.
    AgentStatus,
    /// All active pheromones.
    ActivePheromones,
    /// Active pheromones of one type.
    PheromonesByType,
    /// Pending proposals.
    PendingProposals,
    /// Rejected proposals.
    RejectedProposals,
    /// Cluster status.
    ClusterStatus,
    /// The status digest.
    StatusDigest,
    /// The stability score.
    StabilityScore,
}

impl SnapshotKind {
    /// The `kind` string written in the envelope.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AgentsIndex => "agents_index",
            Self::AgentStatus => "agent_status",
            Self::ActivePheromones => "active_pheromones",
            Self::PheromonesByType => "pheromones_by_type",
            Self::PendingProposals => "pending_proposals",
            Self::RejectedProposals => "rejected_proposals",
            Self::ClusterStatus => "cluster_status",
            Self::StatusDigest => "status_digest",
            Self::StabilityScore => "stability_score",
        }
    }

    /// The freshness category whose threshold applies, `None` for metadata (the stability score
    /// is never served as an answer).
    #[must_use]
    pub fn category(self) -> Option<Category> {
        match self {
            // The digest ages like the agents it counts: its field keeps decaying exactly from
            // the digest, so an old digest misses new signals, not the fading of known ones.
            Self::AgentsIndex | Self::AgentStatus | Self::StatusDigest => Some(Category::Agents),
            Self::ActivePheromones | Self::PheromonesByType => Some(Category::Pheromones),
            Self::PendingProposals | Self::RejectedProposals => Some(Category::Proposals),
            Self::ClusterStatus => Some(Category::Cluster),
            Self::StabilityScore => None,
        }
    }
}

impl fmt::Display for SnapshotKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Freshness categories, each with its own base threshold (see [`crate::freshness`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// Agents index and agent status (base 60 s).
    Agents,
    /// Pheromones (base 30 s).
    Pheromones,
    /// Proposals (base 300 s).
    Proposals,
    /// Cluster status (base 120 s).
    Cluster,
}

/// What a CLI read asks for: one answerable snapshot of the cache layout.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Query {
    /// The agents index.
    AgentsIndex,
    /// One agent's status.
    Agent(AgentName),
    /// All active pheromones.
    ActivePheromones,
    /// Active pheromones of one type.
    PheromonesByType(PheromoneType),
    /// Pending proposals.
    PendingProposals,
    /// Rejected proposals.
    RejectedProposals,
    /// Cluster status.
    ClusterStatus,
    /// The status digest ([`crate::digest`]).
    StatusDigest,
}

impl Query {
    /// The snapshot kind that answers this query.
    #[must_use]
    pub fn kind(&self) -> SnapshotKind {
        match self {
            Self::AgentsIndex => SnapshotKind::AgentsIndex,
            Self::Agent(_) => SnapshotKind::AgentStatus,
            Self::ActivePheromones => SnapshotKind::ActivePheromones,
            Self::PheromonesByType(_) => SnapshotKind::PheromonesByType,
            Self::PendingProposals => SnapshotKind::PendingProposals,
            Self::RejectedProposals => SnapshotKind::RejectedProposals,
            Self::ClusterStatus => SnapshotKind::ClusterStatus,
            Self::StatusDigest => SnapshotKind::StatusDigest,
        }
    }

    /// The freshness category of the answer.
    #[must_use]
    pub fn category(&self) -> Category {
        match self {
            Self::AgentsIndex | Self::Agent(_) | Self::StatusDigest => Category::Agents,
            Self::ActivePheromones | Self::PheromonesByType(_) => Category::Pheromones,
            Self::PendingProposals | Self::RejectedProposals => Category::Proposals,
            Self::ClusterStatus => Category::Cluster,
        }
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AgentsIndex => f.write_str("agents index"),
            Self::Agent(name) => write!(f, "status of agent {name}"),
            Self::ActivePheromones => f.write_str("active pheromones"),
            Self::PheromonesByType(t) => write!(f, "active {t} pheromones"),
            Self::PendingProposals => f.write_str("pending proposals"),
            Self::RejectedProposals => f.write_str("rejected proposals"),
            Self::ClusterStatus => f.write_str("cluster status"),
            Self::StatusDigest => f.write_str("status digest"),
        }
    }
}

/// Where a snapshot lives in the cache: a query's answer or the stability score.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SnapshotKey {
    /// The answer to a query.
    Query(Query),
    /// `_meta/stability_score.json`.
    StabilityScore,
}

impl SnapshotKey {
    /// The kind of snapshot stored under this key.
    #[must_use]
    pub fn kind(&self) -> SnapshotKind {
        match self {
            Self::Query(q) => q.kind(),
            Self::StabilityScore => SnapshotKind::StabilityScore,
        }
    }

    /// The path of the file under the cache root, with `/` separators (the seed's layout).
    /// Names were validated at construction, so the path never leaves the root.
    #[must_use]
    pub fn relative_path(&self) -> String {
        match self {
            Self::Query(Query::AgentsIndex) => "agents/_index.json".to_owned(),
            Self::Query(Query::Agent(name)) => format!("agents/{name}.json"),
            Self::Query(Query::ActivePheromones) => "pheromones/active.json".to_owned(),
            Self::Query(Query::PheromonesByType(t)) => format!("pheromones/by_type/{t}.json"),
            Self::Query(Query::PendingProposals) => "proposals/pending.json".to_owned(),
            Self::Query(Query::RejectedProposals) => "proposals/rejected.json".to_owned(),
            Self::Query(Query::ClusterStatus) => "cluster/status.json".to_owned(),
            Self::Query(Query::StatusDigest) => "status/digest.json".to_owned(),
            Self::StabilityScore => "_meta/stability_score.json".to_owned(),
        }
    }
}

impl From<Query> for SnapshotKey {
    fn from(query: Query) -> Self {
        Self::Query(query)
    }
}

impl fmt::Display for SnapshotKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.relative_path())
    }
}

/// A snapshot: a payload and the time it was taken.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// When the source produced the data.
    pub taken_at: Timestamp,
    /// The data.
    pub payload: Payload,
}

impl Snapshot {
    /// Builds a snapshot.
    #[must_use]
    pub fn new(taken_at: Timestamp, payload: Payload) -> Self {
        Self { taken_at, payload }
    }

    /// The snapshot's kind.
    #[must_use]
    pub fn kind(&self) -> SnapshotKind {
        match &self.payload {
            Payload::AgentsIndex(_) => SnapshotKind::AgentsIndex,
            Payload::AgentStatus(_) => SnapshotKind::AgentStatus,
            Payload::ActivePheromones(_) => SnapshotKind::ActivePheromones,
            Payload::PheromonesByType(_) => SnapshotKind::PheromonesByType,
            Payload::PendingProposals(_) => SnapshotKind::PendingProposals,
            Payload::RejectedProposals(_) => SnapshotKind::RejectedProposals,
            Payload::ClusterStatus(_) => SnapshotKind::ClusterStatus,
            Payload::StatusDigest(_) => SnapshotKind::StatusDigest,
            Payload::StabilityScore(_) => SnapshotKind::StabilityScore,
        }
    }

    /// The key the snapshot is stored under (derived from its payload).
    #[must_use]
    pub fn key(&self) -> SnapshotKey {
        match &self.payload {
            Payload::AgentsIndex(_) => Query::AgentsIndex.into(),
            Payload::AgentStatus(s) => Query::Agent(s.summary.name.clone()).into(),
            Payload::ActivePheromones(_) => Query::ActivePheromones.into(),
            Payload::PheromonesByType(p) => Query::PheromonesByType(p.pheromone_type).into(),
            Payload::PendingProposals(_) => Query::PendingProposals.into(),
            Payload::RejectedProposals(_) => Query::RejectedProposals.into(),
            Payload::ClusterStatus(_) => Query::ClusterStatus.into(),
            Payload::StatusDigest(_) => Query::StatusDigest.into(),
            Payload::StabilityScore(_) => SnapshotKey::StabilityScore,
        }
    }

    /// Checks the invariants serde cannot express: finite intensities and scores in `[0, 1]`,
    /// positive half-lives, by-type lists that hold only their type. Returns what is wrong.
    #[must_use]
    pub fn problem(&self) -> Option<String> {
        fn unit(value: f64) -> bool {
            value.is_finite() && (0.0..=1.0).contains(&value)
        }
        fn pheromones(list: &[PheromoneSummary]) -> Option<String> {
            list.iter().find_map(|p| {
                if !unit(p.intensity) {
                    Some(format!(
                        "pheromone {} has intensity {} (must be a number in [0, 1])",
                        p.name, p.intensity
                    ))
                } else if !(p.half_life_seconds.is_finite() && p.half_life_seconds > 0.0) {
                    Some(format!(
                        "pheromone {} has half-life {} s (must be a positive number)",
                        p.name, p.half_life_seconds
                    ))
                } else {
                    None
                }
            })
        }
        fn proposals(list: &[ProposalSummary]) -> Option<String> {
            list.iter().find(|p| !unit(p.risk_score)).map(|p| {
                format!(
                    "proposal {} has risk score {} (must be a number in [0, 1])",
                    p.name, p.risk_score
                )
            })
        }
        match &self.payload {
            Payload::AgentsIndex(_) | Payload::AgentStatus(_) | Payload::ClusterStatus(_) => None,
            Payload::ActivePheromones(a) => pheromones(&a.pheromones),
            Payload::PheromonesByType(p) => pheromones(&p.pheromones).or_else(|| {
                p.pheromones
                    .iter()
                    .find(|x| x.pheromone_type != p.pheromone_type)
                    .map(|x| {
                        format!(
                            "pheromone {} of type {} is listed under type {}",
                            x.name, x.pheromone_type, p.pheromone_type
                        )
                    })
            }),
            Payload::PendingProposals(l) | Payload::RejectedProposals(l) => proposals(&l.proposals),
            Payload::StatusDigest(d) => d.problem(),
            Payload::StabilityScore(s) => (!unit(s.score))
                .then(|| format!("stability score {} is not a number in [0, 1]", s.score)),
        }
    }
}

/// The JSON envelope of every cache file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// Layout version; [`SCHEMA_VERSION`] for files this crate writes.
    pub schema_version: u32,
    /// Which snapshot kind `data` holds.
    pub kind: SnapshotKind,
    /// When the data was taken.
    pub taken_at: Timestamp,
    /// The payload.
    pub data: T,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposal_summaries_written_before_risk_factors_were_kept_still_read() {
        let old = r#"{"name": "scale-b", "namespace": "team", "proposer": "bob",
            "change_type": "AGENT_SCALE", "target": "Agent/b-gent", "risk_score": 0.3,
            "risk_level": "MEDIUM", "phase": "Reviewing", "created_at": "2027-01-15T12:00:00Z",
            "reason": null}"#;
        let summary: ProposalSummary = serde_json::from_str(old).expect("an old summary reads");
        assert!(summary.risk_factors.is_empty() && summary.patch.is_none());
        let with = ProposalSummary {
            risk_factors: vec![RiskFactor {
                name: "base".into(),
                value: 0.3,
                detail: "the change type's base risk".into(),
            }],
            patch: Some("merge: {}".into()),
            ..summary
        };
        let text = serde_json::to_string(&with).expect("serialises");
        let back: ProposalSummary = serde_json::from_str(&text).expect("reads back");
        assert_eq!(back, with);
    }
}
