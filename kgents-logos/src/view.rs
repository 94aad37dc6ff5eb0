//! Reads and writes behind traits, so that every handler runs the same on the live cluster, on
//! ghost snapshots and on an in-memory cluster.
//!
//! - [`ClusterView`]: reads, each answer [`Observed`] with its [`Source`] (live, or a cached
//!   snapshot with its age).
//! - [`ClusterActor`]: writes, made with the caller's own identity (the kube client given).

use async_trait::async_trait;
use jiff::Timestamp;
use kgents_crds::{Pheromone, Proposal, Umwelt, Workflow};
use kgents_ghost::digest::StatusDigest;
use kgents_ghost::snapshot::{AgentStatus, AgentSummary, ClusterStatus};
use kgents_policy::AdmissionPolicy;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::outcome::{
    FieldReport, MemorySummary, PheromoneRecord, ProposalRecord, TetherTarget, UmweltSummary,
};
use crate::summary::{self, SenseFilter};

/// Which namespaces a read covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// One namespace.
    Namespace(String),
    /// Every namespace (`-A`).
    All,
}

impl Scope {
    /// The namespace, `None` for all.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Scope::Namespace(ns) => Some(ns),
            Scope::All => None,
        }
    }

    /// Whether an object in `namespace` is inside the scope.
    pub fn contains(&self, namespace: &str) -> bool {
        match self {
            Scope::Namespace(ns) => ns == namespace,
            Scope::All => true,
        }
    }
}

/// What a list read selects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// The namespaces.
    pub scope: Scope,
    /// A label selector (`-l`), applied by the API server; views without labels (ghost
    /// snapshots) refuse it rather than ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

impl Filter {
    /// Everything in `scope`.
    pub fn scope(scope: Scope) -> Filter {
        Filter {
            scope,
            selector: None,
        }
    }
}

/// Where data came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// The layer that answered (`kubernetes`, `ghost-cache`, `memory`).
    pub layer: String,
    /// Whether the data is live (false: a cached snapshot).
    pub live: bool,
    /// When the data was observed.
    pub taken_at: Timestamp,
    /// Age in seconds when served (0 for live data).
    pub age_seconds: f64,
    /// Whether a cached snapshot is past its freshness threshold (shown with `[GHOST]`).
    pub stale: bool,
    /// Problems that did not prevent the answer (a corrupt cache file, a failed write-through).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Source {
    /// One source for data read from several: `first`'s layer and time, the oldest age, stale
    /// or not live if any is, and every warning.
    pub fn combined(first: Source, others: impl IntoIterator<Item = Source>) -> Source {
        let mut combined = first;
        for other in others {
            combined.live &= other.live;
            combined.stale |= other.stale;
            combined.age_seconds = combined.age_seconds.max(other.age_seconds);
            combined.warnings.extend(other.warnings);
        }
        combined
    }

    /// Live data observed at `taken_at` by `layer`.
    pub fn live(layer: impl Into<String>, taken_at: Timestamp) -> Source {
        Source {
            layer: layer.into(),
            live: true,
            taken_at,
            age_seconds: 0.0,
            stale: false,
            warnings: Vec::new(),
        }
    }
}

/// Data and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observed<T> {
    /// The data.
    pub data: T,
    /// Its source.
    pub source: Source,
}

/// Reads of the cluster. Implemented by [`LiveView`](crate::LiveView) (list calls),
/// [`GhostView`](crate::GhostView) (the ghost chain) and [`MemoryCluster`](crate::MemoryCluster).
#[async_trait]
pub trait ClusterView: Send + Sync {
    /// Agents in the filter.
    async fn agents(&self, filter: &Filter) -> Result<Observed<Vec<AgentSummary>>>;
    /// One agent by name (`namespace` `None`: the first of that name in any namespace).
    async fn agent(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Observed<Option<AgentStatus>>>;
    /// Pheromones in the filter, with the intensity at the time observed.
    async fn pheromones(&self, filter: &Filter) -> Result<Observed<Vec<PheromoneRecord>>>;
    /// Proposals in the filter.
    async fn proposals(&self, filter: &Filter) -> Result<Observed<Vec<ProposalRecord>>>;
    /// Memories in the filter.
    async fn memories(&self, filter: &Filter) -> Result<Observed<Vec<MemorySummary>>>;
    /// Umwelts in the filter.
    async fn umwelts(&self, filter: &Filter) -> Result<Observed<Vec<UmweltSummary>>>;
    /// The cluster's health: server version, nodes, and K8-gents' own components (the
    /// operator Deployment, the proposal webhook's registration).
    async fn cluster(&self) -> Result<Observed<ClusterStatus>>;

    /// The pheromone field at `now`: the signals in `filter` that `sense` admits, decayed and
    /// ranked, the strongest `limit` listed ([`summary::sense_observed`]). By default it is
    /// sensed from [`pheromones`](Self::pheromones); a view that keeps summaries in memory
    /// senses them in place, copying only what it lists.
    async fn sense(
        &self,
        filter: &Filter,
        sense: &SenseFilter,
        now: Timestamp,
        limit: Option<usize>,
    ) -> Result<FieldReport> {
        let observed = self.pheromones(filter).await?;
        let observed_at = observed.source.taken_at;
        Ok(summary::sense_observed(
            observed.data.iter().map(|record| summary::Observation {
                summary: &record.summary,
                observed_at,
            }),
            sense,
            now,
            observed.source,
            limit,
        ))
    }

    /// The status digest of the whole cluster ([`kgents_ghost::digest`]). By default it is
    /// built from the agent, pheromone and proposal lists (read at once); views that keep it
    /// (the ghost chain) answer it directly.
    async fn status_digest(&self) -> Result<Observed<StatusDigest>> {
        let all = Filter::scope(Scope::All);
        let (agents, pheromones, proposals) = futures::join!(
            self.agents(&all),
            self.pheromones(&all),
            self.proposals(&all)
        );
        let (agents, pheromones, proposals) = (agents?, pheromones?, proposals?);
        let summaries: Vec<_> = pheromones.data.into_iter().map(|r| r.summary).collect();
        let pending: Vec<_> = proposals
            .data
            .into_iter()
            .filter(ProposalRecord::is_pending)
            .map(|p| p.summary)
            .collect();
        // Intensities are those at the pheromones' observation: the digest is taken then.
        let taken_at = pheromones.source.taken_at;
        let digest = StatusDigest::build(&agents.data, &summaries, &pending, taken_at);
        Ok(Observed {
            data: digest,
            source: Source::combined(pheromones.source, [agents.source, proposals.source]),
        })
    }
}

/// Writes (and the reads a write needs), made with the caller's identity.
#[async_trait]
pub trait ClusterActor: Send + Sync {
    /// The identity the API server authenticates for this actor.
    async fn whoami(&self) -> Result<String>;
    /// Creates a Pheromone; returns it as stored.
    async fn create_pheromone(&self, pheromone: &Pheromone) -> Result<Pheromone>;
    /// The stored proposals of `namespace` (the risk ledger is built from them).
    async fn namespace_proposals(&self, namespace: &str) -> Result<Vec<Proposal>>;
    /// The admission policy in force and where it was read from; the default policy (and why)
    /// when it cannot be read.
    async fn admission_policy(&self) -> (AdmissionPolicy, String);
    /// Creates a Proposal (`dry_run`: a server-side dry run, nothing is stored, the admission
    /// webhook still judges it); returns it as the API server answered.
    async fn create_proposal(&self, proposal: &Proposal, dry_run: bool) -> Result<Proposal>;
    /// Records an approval; returns who approved.
    async fn approve(&self, namespace: &str, name: &str, comment: Option<&str>) -> Result<String>;
    /// Records a rejection; returns who rejected.
    async fn reject(&self, namespace: &str, name: &str, reason: Option<&str>) -> Result<String>;
    /// The ready pod of an agent to tether to.
    async fn tether_target(&self, namespace: &str, agent: &str) -> Result<TetherTarget>;
    /// An Umwelt by name (for `--umwelt`).
    async fn umwelt(&self, namespace: &str, name: &str) -> Result<Umwelt>;
    /// The Umwelt an agent runs under (for `--as-agent`).
    async fn agent_umwelt(&self, namespace: &str, agent: &str) -> Result<Umwelt>;
    /// Creates the Workflow, or updates the spec of the one of that name (`dry_run`: a
    /// server-side dry run); returns it as stored and whether it was created. Writers that
    /// cannot store Workflows answer an error saying so.
    async fn apply_workflow(&self, workflow: &Workflow, dry_run: bool) -> Result<(Workflow, bool)> {
        let _ = dry_run;
        Err(Error::BadInput {
            path: "world.cluster.workflow.define".into(),
            reason: format!(
                "this front-end cannot store Workflows (Workflow {} was not stored)",
                workflow.metadata.name.as_deref().unwrap_or_default()
            ),
        })
    }
}
