//! Fixtures shared by the integration tests: one snapshot of every kind.
#![allow(dead_code)]

use jiff::Timestamp;
use kgents_core::field::PheromoneType;
use kgents_ghost::snapshot::{
    ActivePheromones, AgentStatus, AgentSummary, AgentsIndex, ClusterStatus, ComponentStatus,
    ConditionSummary, PheromoneSummary, PheromonesOfType, ProposalList, ProposalSummary,
};
use kgents_ghost::{AgentName, Payload, Query, Snapshot, StabilityScore};

pub fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).expect("in range")
}

pub fn agent_name(name: &str) -> AgentName {
    AgentName::new(name).expect("valid agent name")
}

pub fn pheromone_type(name: &str) -> PheromoneType {
    name.parse().expect("a pheromone type")
}

pub fn summary(name: &str, seed: u32) -> AgentSummary {
    AgentSummary {
        name: agent_name(name),
        namespace: "kgents-agents".into(),
        genus: ["L", "B", "PSI"][seed as usize % 3].into(),
        phase: ["Running", "Pending", "Degraded"][seed as usize % 3].into(),
        cognitive_health: ["HEALTHY", "DEGRADED", "UNKNOWN"][seed as usize % 3].into(),
        ready_replicas: seed % 4,
        replicas: 3,
    }
}

pub fn agents_index(count: usize, seed: u32) -> AgentsIndex {
    AgentsIndex {
        agents: (0..count)
            .map(|i| summary(&format!("agent-{i}"), seed.wrapping_add(i as u32)))
            .collect(),
    }
}

pub fn pheromone(kind: &str, seed: u32) -> PheromoneSummary {
    PheromoneSummary {
        name: format!("ph-{seed}"),
        namespace: "kgents-agents".into(),
        pheromone_type: pheromone_type(kind),
        source: "l-gent".into(),
        target: seed.is_multiple_of(2).then(|| "b-gent".to_owned()),
        intensity: f64::from(seed % 1001) / 1000.0,
        emitted_at: ts(-i64::from(seed % 600)),
        half_life_seconds: 600.0,
        expires_at: None,
    }
}

pub fn proposal(seed: u32) -> ProposalSummary {
    ProposalSummary {
        name: format!("prop-{seed}"),
        namespace: "kgents-agents".into(),
        proposer: "l-gent".into(),
        change_type: "CODE_PATCH".into(),
        target: "Agent/b-gent".into(),
        risk_score: f64::from(seed % 101) / 100.0,
        risk_level: "LOW".into(),
        phase: "Pending".into(),
        created_at: ts(-60),
        reason: seed.is_multiple_of(3).then(|| "superseded".to_owned()),
        risk_factors: Vec::new(),
        patch: None,
    }
}

/// A snapshot answering `query`, taken at `taken_at`, whose content depends on `seed`.
pub fn answer_to(query: &Query, taken_at: Timestamp, seed: u32) -> Snapshot {
    let payload = match query {
        Query::AgentsIndex => Payload::AgentsIndex(agents_index((seed % 4) as usize, seed)),
        Query::Agent(name) => Payload::AgentStatus(AgentStatus {
            summary: summary(name.as_str(), seed),
            conditions: vec![ConditionSummary {
                condition_type: "Ready".into(),
                status: "True".into(),
                reason: "Probed".into(),
                message: format!("probe {seed} passed"),
                last_transition_time: Some(ts(-5)),
            }],
            last_probe_time: (seed % 2 == 1).then(|| ts(-1)),
        }),
        Query::ActivePheromones => Payload::ActivePheromones(ActivePheromones {
            pheromones: (0..seed % 3)
                .map(|i| pheromone("WARNING", seed + i))
                .collect(),
        }),
        Query::PheromonesByType(t) => Payload::PheromonesByType(PheromonesOfType {
            pheromone_type: *t,
            pheromones: (0..seed % 3)
                .map(|i| pheromone(t.as_str(), seed + i))
                .collect(),
        }),
        Query::PendingProposals => Payload::PendingProposals(ProposalList {
            proposals: (0..seed % 3).map(proposal).collect(),
        }),
        Query::RejectedProposals => Payload::RejectedProposals(ProposalList {
            proposals: (0..seed % 2).map(proposal).collect(),
        }),
        Query::StatusDigest => {
            let index = agents_index((seed % 4) as usize, seed);
            let field: Vec<_> = (0..seed % 3)
                .map(|i| pheromone("WARNING", seed + i))
                .collect();
            let pending: Vec<_> = (0..seed % 3).map(proposal).collect();
            Payload::StatusDigest(kgents_ghost::digest::StatusDigest::build(
                &index.agents,
                &field,
                &pending,
                taken_at,
            ))
        }
        Query::ClusterStatus => Payload::ClusterStatus(ClusterStatus {
            context: Some("kind-kgents".into()),
            server_version: Some("v1.37.0".into()),
            nodes_ready: seed % 3,
            nodes_total: 3,
            components: vec![ComponentStatus {
                name: "operator".into(),
                healthy: seed.is_multiple_of(2),
                message: format!("seed {seed}"),
            }],
        }),
    };
    Snapshot::new(taken_at, payload)
}

pub fn stability_snapshot(score: f64, observations: u64, taken_at: Timestamp) -> Snapshot {
    Snapshot::new(
        taken_at,
        Payload::StabilityScore(StabilityScore {
            score,
            observations,
        }),
    )
}

/// One query of every kind.
pub fn every_query() -> Vec<Query> {
    vec![
        Query::AgentsIndex,
        Query::Agent(agent_name("l-gent")),
        Query::ActivePheromones,
        Query::PheromonesByType(pheromone_type("DREAM")),
        Query::PendingProposals,
        Query::RejectedProposals,
        Query::ClusterStatus,
    ]
}
