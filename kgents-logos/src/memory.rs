//! [`MemoryCluster`]: a cluster held in memory, implementing [`ClusterView`] and
//! [`ClusterActor`] with the API server's observable behaviour that handlers rely on: names
//! generated from `generateName`, creation timestamps, 404 for missing objects, and the T-gent
//! admission policy judging proposal creates (as the webhook would), dry runs included.

use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use jiff::Timestamp;
use kgents_core::clock::Clock;
use kgents_core::field::Signal;
use kgents_crds::common::Time;
use kgents_crds::proposal::{Approval, Rejection};
use kgents_crds::{Agent, Memory, Pheromone, PheromoneSignal, Proposal, ProposalStatus, Umwelt};
use kgents_ghost::snapshot::{
    AgentStatus, AgentSummary, ClusterStatus, ComponentStatus, PheromoneSummary,
};
use kgents_policy::{AdmissionPolicy, Occasion, Requester};

use crate::error::{Error, Result};
use crate::outcome::{
    FieldReport, MemorySummary, PheromoneRecord, ProposalRecord, TetherTarget, UmweltSummary,
};
use crate::summary::{self, Observation, SenseFilter};
use crate::view::{ClusterActor, ClusterView, Filter, Observed, Source};

/// A pod of an agent, for tethering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryPod {
    /// Namespace.
    pub namespace: String,
    /// The agent it belongs to.
    pub agent: String,
    /// Pod name.
    pub name: String,
    /// Whether it is Ready.
    pub ready: bool,
    /// Its first container port.
    pub port: Option<u16>,
}

#[derive(Default)]
struct State {
    agents: Vec<Agent>,
    pheromones: Vec<Pheromone>,
    /// Each pheromone's summary as emitted (intensity at `emitted_at`), in the order of
    /// `pheromones` (`None` for one that is not a valid signal): sensed without converting.
    pheromone_summaries: Vec<Option<PheromoneSummary>>,
    proposals: Vec<Proposal>,
    memories: Vec<Memory>,
    umwelts: Vec<Umwelt>,
    pods: Vec<MemoryPod>,
    generated: u64,
}

impl State {
    fn keep_pheromone(&mut self, pheromone: Pheromone) {
        let summary = PheromoneSignal::try_from(&pheromone)
            .ok()
            .and_then(|signal| summary::pheromone_record(&pheromone, signal.emitted_at()))
            .map(|record| record.summary);
        self.pheromone_summaries.push(summary);
        self.pheromones.push(pheromone);
    }
}

/// An in-memory cluster (see the [module docs](self)).
pub struct MemoryCluster {
    state: Mutex<State>,
    identity: String,
    clock: Arc<dyn Clock>,
}

fn in_filter(filter: &Filter, namespace: Option<&str>) -> Result<bool> {
    if filter.selector.is_some() {
        return Err(Error::BadInput {
            path: "list".into(),
            reason: "the in-memory cluster keeps no labels; drop the label selector".into(),
        });
    }
    Ok(filter.scope.contains(namespace.unwrap_or_default()))
}

fn not_found(kind: &'static str, namespace: &str, name: &str) -> Error {
    Error::NotFound {
        kind,
        name: name.to_owned(),
        namespace: Some(namespace.to_owned()),
    }
}

impl MemoryCluster {
    /// An empty cluster where writes are made as `identity`, with the default admission policy.
    pub fn new(identity: impl Into<String>, clock: Arc<dyn Clock>) -> MemoryCluster {
        MemoryCluster {
            state: Mutex::new(State::default()),
            identity: identity.into(),
            clock,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn source(&self) -> Source {
        Source::live("memory", self.clock.now())
    }

    fn stamp(&self, metadata: &mut kube::api::ObjectMeta, state: &mut State) {
        if metadata.name.is_none() {
            state.generated += 1;
            let prefix = metadata.generate_name.clone().unwrap_or_default();
            metadata.name = Some(format!("{prefix}{:05}", state.generated));
        }
        metadata.creation_timestamp = Some(Time(self.clock.now()));
        metadata.uid = Some(format!("uid-{}", state.generated));
    }

    /// Adds an agent (stored as given, with a creation time).
    pub fn add_agent(&self, mut agent: Agent) {
        let mut state = self.state();
        self.stamp(&mut agent.metadata, &mut state);
        state.agents.push(agent);
    }

    /// Adds a pheromone as given (keep its `creationTimestamp` when set: decay counts from it).
    pub fn add_pheromone(&self, mut pheromone: Pheromone) {
        let mut state = self.state();
        let created = pheromone.metadata.creation_timestamp.clone();
        self.stamp(&mut pheromone.metadata, &mut state);
        if created.is_some() {
            pheromone.metadata.creation_timestamp = created;
        }
        state.keep_pheromone(pheromone);
    }

    /// Adds a proposal as given (status included).
    pub fn add_proposal(&self, mut proposal: Proposal) {
        let mut state = self.state();
        self.stamp(&mut proposal.metadata, &mut state);
        state.proposals.push(proposal);
    }

    /// Adds a memory.
    pub fn add_memory(&self, mut memory: Memory) {
        let mut state = self.state();
        self.stamp(&mut memory.metadata, &mut state);
        state.memories.push(memory);
    }

    /// Adds an umwelt.
    pub fn add_umwelt(&self, mut umwelt: Umwelt) {
        let mut state = self.state();
        self.stamp(&mut umwelt.metadata, &mut state);
        state.umwelts.push(umwelt);
    }

    /// Adds a pod of an agent.
    pub fn add_pod(&self, pod: MemoryPod) {
        self.state().pods.push(pod);
    }

    /// The stored pheromones.
    pub fn pheromones(&self) -> Vec<Pheromone> {
        self.state().pheromones.clone()
    }

    /// The stored proposals.
    pub fn proposals(&self) -> Vec<Proposal> {
        self.state().proposals.clone()
    }

    fn decide(
        &self,
        namespace: &str,
        name: &str,
        approval: bool,
        text: Option<&str>,
    ) -> Result<String> {
        let mut state = self.state();
        let proposal = state
            .proposals
            .iter_mut()
            .find(|p| {
                p.metadata.namespace.as_deref() == Some(namespace)
                    && p.metadata.name.as_deref() == Some(name)
            })
            .ok_or_else(|| not_found("Proposal", namespace, name))?;
        let status = proposal.status.get_or_insert_with(ProposalStatus::default);
        let at = Time(self.clock.now());
        if approval {
            status.approvals.retain(|a| a.approver != self.identity);
            status.approvals.push(Approval {
                approver: self.identity.clone(),
                at,
                comment: text.map(str::to_owned),
            });
        } else {
            status.rejections.retain(|r| r.rejector != self.identity);
            status.rejections.push(Rejection {
                rejector: self.identity.clone(),
                at,
                reason: text.map(str::to_owned),
            });
        }
        Ok(self.identity.clone())
    }
}

#[async_trait]
impl ClusterView for MemoryCluster {
    async fn agents(&self, filter: &Filter) -> Result<Observed<Vec<AgentSummary>>> {
        let state = self.state();
        let mut data = Vec::new();
        for agent in &state.agents {
            if in_filter(filter, agent.metadata.namespace.as_deref())? {
                data.extend(summary::agent_summary(agent));
            }
        }
        Ok(Observed {
            data,
            source: self.source(),
        })
    }

    async fn agent(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Observed<Option<AgentStatus>>> {
        let state = self.state();
        let data = state
            .agents
            .iter()
            .find(|a| {
                a.metadata.name.as_deref() == Some(name)
                    && namespace.is_none_or(|ns| a.metadata.namespace.as_deref() == Some(ns))
            })
            .and_then(summary::agent_status);
        Ok(Observed {
            data,
            source: self.source(),
        })
    }

    async fn pheromones(&self, filter: &Filter) -> Result<Observed<Vec<PheromoneRecord>>> {
        let now = self.clock.now();
        let state = self.state();
        let mut data = Vec::new();
        for p in &state.pheromones {
            if in_filter(filter, p.metadata.namespace.as_deref())? {
                data.extend(summary::pheromone_record(p, now));
            }
        }
        Ok(Observed {
            data,
            source: self.source(),
        })
    }

    async fn sense(
        &self,
        filter: &Filter,
        sense: &SenseFilter,
        now: Timestamp,
        limit: Option<usize>,
    ) -> Result<FieldReport> {
        let state = self.state();
        let mut observations = Vec::with_capacity(state.pheromones.len());
        for (p, summary) in state.pheromones.iter().zip(&state.pheromone_summaries) {
            if let Some(summary) = summary
                && in_filter(filter, p.metadata.namespace.as_deref())?
            {
                observations.push(Observation {
                    summary,
                    observed_at: summary.emitted_at,
                });
            }
        }
        Ok(summary::sense_observed(
            observations,
            sense,
            now,
            self.source(),
            limit,
        ))
    }

    async fn proposals(&self, filter: &Filter) -> Result<Observed<Vec<ProposalRecord>>> {
        let state = self.state();
        let mut data = Vec::new();
        for p in &state.proposals {
            if in_filter(filter, p.metadata.namespace.as_deref())? {
                data.push(summary::proposal_record(p));
            }
        }
        Ok(Observed {
            data,
            source: self.source(),
        })
    }

    async fn memories(&self, filter: &Filter) -> Result<Observed<Vec<MemorySummary>>> {
        let state = self.state();
        let mut data = Vec::new();
        for m in &state.memories {
            if in_filter(filter, m.metadata.namespace.as_deref())? {
                data.push(summary::memory_summary(m));
            }
        }
        Ok(Observed {
            data,
            source: self.source(),
        })
    }

    async fn cluster(&self) -> Result<Observed<ClusterStatus>> {
        Ok(Observed {
            data: ClusterStatus {
                context: Some("memory".into()),
                server_version: None,
                nodes_ready: 0,
                nodes_total: 0,
                components: vec![ComponentStatus {
                    name: "memory".into(),
                    healthy: true,
                    message: "in-memory cluster".into(),
                }],
            },
            source: self.source(),
        })
    }

    async fn umwelts(&self, filter: &Filter) -> Result<Observed<Vec<UmweltSummary>>> {
        let state = self.state();
        let mut data = Vec::new();
        for u in &state.umwelts {
            if in_filter(filter, u.metadata.namespace.as_deref())? {
                data.push(summary::umwelt_summary(u));
            }
        }
        Ok(Observed {
            data,
            source: self.source(),
        })
    }
}

#[async_trait]
impl ClusterActor for MemoryCluster {
    async fn whoami(&self) -> Result<String> {
        Ok(self.identity.clone())
    }

    async fn create_pheromone(&self, pheromone: &Pheromone) -> Result<Pheromone> {
        let mut stored = pheromone.clone();
        let mut state = self.state();
        self.stamp(&mut stored.metadata, &mut state);
        state.keep_pheromone(stored.clone());
        Ok(stored)
    }

    async fn namespace_proposals(&self, namespace: &str) -> Result<Vec<Proposal>> {
        Ok(self
            .state()
            .proposals
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(namespace))
            .cloned()
            .collect())
    }

    async fn admission_policy(&self) -> (AdmissionPolicy, String) {
        (
            AdmissionPolicy::default(),
            "the default policy (in-memory cluster)".into(),
        )
    }

    async fn create_proposal(&self, proposal: &Proposal, dry_run: bool) -> Result<Proposal> {
        let mut stored = proposal.clone();
        let namespace = proposal.metadata.namespace.clone().unwrap_or_default();
        let ledger = kgents_policy::ledger::snapshot(&self.namespace_proposals(&namespace).await?);
        let requester = Requester {
            username: self.identity.clone(),
            groups: Vec::new(),
        };
        let verdict = kgents_policy::evaluate(
            proposal,
            &Occasion {
                operation: "CREATE",
                requester: Some(&requester),
                old_object: None,
                dry_run,
            },
            &AdmissionPolicy::default(),
            &ledger,
            self.clock.now(),
        );
        if !verdict.allowed || proposal.spec.proposer != self.identity {
            let mut message = verdict.message();
            if proposal.spec.proposer != self.identity {
                message = format!("{message}; spec.proposer is not the requester");
            }
            return Err(Error::Forbidden {
                what: "creating a Proposal".into(),
                code: 403,
                message,
            });
        }
        let mut state = self.state();
        self.stamp(&mut stored.metadata, &mut state);
        if !dry_run {
            state.proposals.push(stored.clone());
        }
        Ok(stored)
    }

    async fn approve(&self, namespace: &str, name: &str, comment: Option<&str>) -> Result<String> {
        self.decide(namespace, name, true, comment)
    }

    async fn reject(&self, namespace: &str, name: &str, reason: Option<&str>) -> Result<String> {
        self.decide(namespace, name, false, reason)
    }

    async fn tether_target(&self, namespace: &str, agent: &str) -> Result<TetherTarget> {
        let state = self.state();
        if !state.agents.iter().any(|a| {
            a.metadata.namespace.as_deref() == Some(namespace)
                && a.metadata.name.as_deref() == Some(agent)
        }) {
            return Err(not_found("Agent", namespace, agent));
        }
        state
            .pods
            .iter()
            .find(|p| p.namespace == namespace && p.agent == agent && p.ready)
            .map(|p| TetherTarget {
                namespace: namespace.to_owned(),
                agent: agent.to_owned(),
                pod: p.name.clone(),
                port: p.port,
            })
            .ok_or_else(|| Error::Unavailable {
                what: format!("tethering to agent {namespace}/{agent}"),
                reason: "it has no ready pod".into(),
            })
    }

    async fn umwelt(&self, namespace: &str, name: &str) -> Result<Umwelt> {
        self.state()
            .umwelts
            .iter()
            .find(|u| {
                u.metadata.namespace.as_deref() == Some(namespace)
                    && u.metadata.name.as_deref() == Some(name)
            })
            .cloned()
            .ok_or_else(|| not_found("Umwelt", namespace, name))
    }

    async fn agent_umwelt(&self, namespace: &str, agent: &str) -> Result<Umwelt> {
        let state = self.state();
        let found = state
            .agents
            .iter()
            .find(|a| {
                a.metadata.namespace.as_deref() == Some(namespace)
                    && a.metadata.name.as_deref() == Some(agent)
            })
            .ok_or_else(|| not_found("Agent", namespace, agent))?;
        let by_name = found.spec.umwelt.clone();
        state
            .umwelts
            .iter()
            .find(|u| {
                u.metadata.namespace.as_deref() == Some(namespace)
                    && match &by_name {
                        Some(name) => u.metadata.name.as_deref() == Some(name.as_str()),
                        None => u.spec.agent == agent,
                    }
            })
            .cloned()
            .ok_or_else(|| Error::NotFound {
                kind: "Umwelt",
                name: by_name.unwrap_or_else(|| format!("(of agent {agent})")),
                namespace: Some(namespace.to_owned()),
            })
    }
}
