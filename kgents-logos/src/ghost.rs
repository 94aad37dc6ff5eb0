//! Reads through the ghost protocol: [`GhostView`] answers from a kgents-ghost
//! [`FallbackChain`] (for the CLI: the cache, then the API through [`LiveLayer`]), labelling
//! every answer with its layer and age; [`LiveLayer`] turns any live [`ClusterView`] into the
//! chain's API layer, so live answers are written through to the cache.
//!
//! Ghost snapshots are cluster-wide and keep no labels: a namespace scope is applied to the
//! snapshot, and a label selector (or a kind the cache does not hold: memories, umwelts) is
//! passed to the live view given as `passthrough`, or refused when there is none.

use std::sync::Arc;

use async_trait::async_trait;
use kgents_ghost::chain::AttemptOutcome;
use kgents_ghost::digest::StatusDigest;
use kgents_ghost::snapshot::{
    ActivePheromones, AgentStatus, AgentSummary, AgentsIndex, ClusterStatus, PheromonesOfType,
    ProposalList,
};
use kgents_ghost::{
    AgentName, Answer, CacheLayer, FallbackChain, Layer, LayerError, MissReason, Payload,
    Provenance, Query, Snapshot, Verdict,
};

use crate::error::{Error, ErrorKind, Result};
use crate::outcome::{MemorySummary, PheromoneRecord, ProposalRecord, UmweltSummary};
use crate::view::{ClusterView, Filter, Observed, Scope, Source};

/// A live [`ClusterView`] as the ghost chain's API layer (cluster-wide reads).
pub struct LiveLayer {
    view: Arc<dyn ClusterView>,
}

impl LiveLayer {
    /// The layer's name in attempts.
    pub const NAME: &'static str = "kubernetes";

    /// A layer over `view`.
    pub fn new(view: Arc<dyn ClusterView>) -> LiveLayer {
        LiveLayer { view }
    }
}

fn layer_error(error: Error) -> LayerError {
    match error.kind() {
        ErrorKind::Unavailable => LayerError::Unavailable(error.to_string()),
        _ => LayerError::Failed(error.to_string()),
    }
}

#[async_trait]
impl Layer for LiveLayer {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn is_live(&self) -> bool {
        true
    }

    async fn fetch(&self, query: &Query) -> std::result::Result<Snapshot, LayerError> {
        let all = Filter::scope(Scope::All);
        let (taken_at, payload) = match query {
            Query::AgentsIndex => {
                let observed = self.view.agents(&all).await.map_err(layer_error)?;
                (
                    observed.source.taken_at,
                    Payload::AgentsIndex(AgentsIndex {
                        agents: observed.data,
                    }),
                )
            }
            Query::Agent(name) => {
                let observed = self
                    .view
                    .agent(None, name.as_str())
                    .await
                    .map_err(layer_error)?;
                let status = observed
                    .data
                    .ok_or_else(|| LayerError::Failed(format!("agent {name} not found")))?;
                (observed.source.taken_at, Payload::AgentStatus(status))
            }
            Query::ActivePheromones | Query::PheromonesByType(_) => {
                let observed = self.view.pheromones(&all).await.map_err(layer_error)?;
                let now = observed.source.taken_at;
                let mut pheromones: Vec<_> = observed
                    .data
                    .into_iter()
                    .filter(|r| {
                        r.summary.intensity >= kgents_core::decay::EVAPORATION_THRESHOLD
                            && r.summary.expires_at.is_none_or(|at| at > now)
                    })
                    .map(|r| r.summary)
                    .collect();
                pheromones.sort_by(|a, b| b.intensity.total_cmp(&a.intensity));
                match query {
                    Query::PheromonesByType(t) => {
                        pheromones.retain(|p| p.pheromone_type == *t);
                        (
                            now,
                            Payload::PheromonesByType(PheromonesOfType {
                                pheromone_type: *t,
                                pheromones,
                            }),
                        )
                    }
                    _ => (
                        now,
                        Payload::ActivePheromones(ActivePheromones { pheromones }),
                    ),
                }
            }
            Query::PendingProposals | Query::RejectedProposals => {
                let observed = self.view.proposals(&all).await.map_err(layer_error)?;
                let pending = matches!(query, Query::PendingProposals);
                let proposals = observed
                    .data
                    .into_iter()
                    .filter(|p| {
                        if pending {
                            p.is_pending()
                        } else {
                            p.summary.phase == "Rejected"
                        }
                    })
                    .map(|p| p.summary)
                    .collect();
                let list = ProposalList { proposals };
                let payload = if pending {
                    Payload::PendingProposals(list)
                } else {
                    Payload::RejectedProposals(list)
                };
                (observed.source.taken_at, payload)
            }
            Query::StatusDigest => {
                let observed = self.view.status_digest().await.map_err(layer_error)?;
                (
                    observed.source.taken_at,
                    Payload::StatusDigest(observed.data),
                )
            }
            Query::ClusterStatus => {
                let observed = self.view.cluster().await.map_err(layer_error)?;
                (
                    observed.source.taken_at,
                    Payload::ClusterStatus(observed.data),
                )
            }
        };
        Ok(Snapshot::new(taken_at, payload))
    }
}

/// Reads through a ghost [`FallbackChain`] (see the [module docs](self)).
pub struct GhostView {
    chain: FallbackChain,
    passthrough: Option<Arc<dyn ClusterView>>,
}

impl GhostView {
    /// A view over `chain`; `passthrough` serves what snapshots cannot (label selectors,
    /// memories, umwelts).
    pub fn new(chain: FallbackChain, passthrough: Option<Arc<dyn ClusterView>>) -> GhostView {
        GhostView { chain, passthrough }
    }

    fn passthrough(&self, what: &str) -> Result<&dyn ClusterView> {
        self.passthrough.as_deref().ok_or_else(|| Error::BadInput {
            path: what.to_owned(),
            reason:
                "the ghost cache keeps no labels and no memories or umwelts; ask the API (--live)"
                    .into(),
        })
    }

    async fn fetch(&self, query: Query) -> Result<(Payload, Source)> {
        let answer = self.chain.fetch(&query).await?;
        let source = source_of(&answer);
        Ok((answer.snapshot.payload, source))
    }

    /// The live view for a namespaced read the chain could not answer (see
    /// [`refused_by_api`]).
    fn fallback(&self, error: &Error, filter: &Filter) -> Option<&dyn ClusterView> {
        (matches!(filter.scope, Scope::Namespace(_)) && refused_by_api(error))
            .then_some(self.passthrough.as_deref())
            .flatten()
    }
}

/// Whether a failed chain reached the API server and was refused (e.g. a user who may list one
/// namespace but not the whole cluster, which the cluster-wide snapshots need), rather than
/// finding it away: then a namespaced read straight from the live view may still work.
pub(crate) fn refused_by_api(error: &Error) -> bool {
    matches!(
        error,
        Error::Ghost(kgents_ghost::Error::AllLayersFailed { attempts, .. })
            if attempts.iter().any(|a| a.live
                && matches!(a.outcome, AttemptOutcome::Failed(LayerError::Failed(_))))
    )
}

/// Whether a failed chain tried the API server and found it away (unreachable, or silent past
/// its budget): asking the same server again for another snapshot would only wait again.
pub(crate) fn api_found_away(error: &Error) -> bool {
    matches!(
        error,
        Error::Ghost(kgents_ghost::Error::AllLayersFailed { attempts, .. })
            if attempts.iter().any(|a| a.live
                && matches!(
                    a.outcome,
                    AttemptOutcome::TimedOut | AttemptOutcome::Failed(LayerError::Unavailable(_))
                ))
    )
}

/// The [`Source`] of a chain answer: its layer and age, and the warnings worth showing (the
/// chain's own, and every cache file that was present but unusable).
pub fn source_of(answer: &Answer) -> Source {
    let mut warnings = answer.warnings.clone();
    for attempt in &answer.attempts {
        if let AttemptOutcome::Failed(LayerError::Miss(miss)) = &attempt.outcome
            && miss.reason != MissReason::NotFound
        {
            warnings.push(format!(
                "ghost cache file {} unusable ({}); answered from {} instead",
                miss.key, miss.reason, answer.layer
            ));
        }
    }
    let (live, age, stale) = match answer.provenance {
        Provenance::Live => (true, 0.0, false),
        Provenance::Cached(report) => (
            false,
            report.age.as_secs_f64(),
            report.verdict == Verdict::Stale,
        ),
    };
    Source {
        layer: answer.layer.clone(),
        live,
        taken_at: answer.snapshot.taken_at,
        age_seconds: age,
        stale,
        warnings,
    }
}

fn unexpected(query: &str) -> Error {
    Error::Api {
        what: format!("reading the {query} snapshot"),
        code: 0,
        reason: "WrongKind".into(),
        message: "the chain answered another kind of snapshot".into(),
    }
}

#[async_trait]
impl ClusterView for GhostView {
    async fn agents(&self, filter: &Filter) -> Result<Observed<Vec<AgentSummary>>> {
        if filter.selector.is_some() {
            return self.passthrough("agents")?.agents(filter).await;
        }
        let fetched = match self.fetch(Query::AgentsIndex).await {
            Ok(fetched) => fetched,
            Err(error) => match self.fallback(&error, filter) {
                Some(live) => return live.agents(filter).await,
                None => return Err(error),
            },
        };
        match fetched {
            (Payload::AgentsIndex(index), source) => Ok(Observed {
                data: index
                    .agents
                    .into_iter()
                    .filter(|a| filter.scope.contains(&a.namespace))
                    .collect(),
                source,
            }),
            _ => Err(unexpected("agents index")),
        }
    }

    async fn agent(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Observed<Option<AgentStatus>>> {
        let agent = AgentName::new(name).map_err(|e| Error::BadInput {
            path: format!("world.cluster.agents.{name}.manifest"),
            reason: e.to_string(),
        })?;
        match self.fetch(Query::Agent(agent)).await? {
            (Payload::AgentStatus(status), source) => Ok(Observed {
                data: Some(status).filter(|s| namespace.is_none_or(|ns| s.summary.namespace == ns)),
                source,
            }),
            _ => Err(unexpected("agent status")),
        }
    }

    async fn pheromones(&self, filter: &Filter) -> Result<Observed<Vec<PheromoneRecord>>> {
        if filter.selector.is_some() {
            return self.passthrough("pheromones")?.pheromones(filter).await;
        }
        let fetched = match self.fetch(Query::ActivePheromones).await {
            Ok(fetched) => fetched,
            Err(error) => match self.fallback(&error, filter) {
                Some(live) => return live.pheromones(filter).await,
                None => return Err(error),
            },
        };
        match fetched {
            (Payload::ActivePheromones(active), source) => Ok(Observed {
                data: active
                    .pheromones
                    .into_iter()
                    .filter(|p| filter.scope.contains(&p.namespace))
                    .map(|summary| PheromoneRecord { summary })
                    .collect(),
                source,
            }),
            _ => Err(unexpected("active pheromones")),
        }
    }

    async fn proposals(&self, filter: &Filter) -> Result<Observed<Vec<ProposalRecord>>> {
        if filter.selector.is_some() {
            return self.passthrough("proposals")?.proposals(filter).await;
        }
        // The cache keeps the pending list (what `status` shows); other phases need the API.
        let fetched = match self.fetch(Query::PendingProposals).await {
            Ok(fetched) => fetched,
            Err(error) => match self.fallback(&error, filter) {
                Some(live) => return live.proposals(filter).await,
                None => return Err(error),
            },
        };
        match fetched {
            (Payload::PendingProposals(list), source) => Ok(Observed {
                data: list
                    .proposals
                    .into_iter()
                    .filter(|p| filter.scope.contains(&p.namespace))
                    .map(|summary| ProposalRecord {
                        summary,
                        risk: None,
                        approvals: Vec::new(),
                        rejections: Vec::new(),
                    })
                    .collect(),
                source,
            }),
            _ => Err(unexpected("pending proposals")),
        }
    }

    async fn memories(&self, filter: &Filter) -> Result<Observed<Vec<MemorySummary>>> {
        self.passthrough("memories")?.memories(filter).await
    }

    async fn cluster(&self) -> Result<Observed<ClusterStatus>> {
        match self.fetch(Query::ClusterStatus).await? {
            (Payload::ClusterStatus(status), source) => Ok(Observed {
                data: status,
                source,
            }),
            _ => Err(unexpected("cluster status")),
        }
    }

    async fn status_digest(&self) -> Result<Observed<StatusDigest>> {
        match self.fetch(Query::StatusDigest).await? {
            (Payload::StatusDigest(digest), source) => Ok(Observed {
                data: digest,
                source,
            }),
            _ => Err(unexpected("status digest")),
        }
    }

    async fn umwelts(&self, filter: &Filter) -> Result<Observed<Vec<UmweltSummary>>> {
        self.passthrough("umwelts")?.umwelts(filter).await
    }
}

/// The ghost chain's budgets on tokio's clock: a sleep is a timer-wheel entry of the runtime
/// rather than a thread ([`kgents_ghost::ThreadTimer`]). Needs a runtime with time enabled.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioTimer;

impl kgents_ghost::Timer for TokioTimer {
    fn now(&self) -> std::time::Instant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep(&self, duration: std::time::Duration) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A chain that answers only from the cache under `store` (no live layer): a pure ghost view.
pub fn cache_only(
    store: Arc<dyn kgents_ghost::GhostStore>,
    clock: Arc<dyn kgents_core::clock::Clock>,
) -> FallbackChain {
    FallbackChain::new(
        Arc::clone(&store),
        clock,
        Arc::new(kgents_ghost::ThreadTimer),
    )
    .with_layer(CacheLayer::new(store), kgents_ghost::chain::CACHE_BUDGET)
}
