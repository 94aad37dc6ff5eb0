//! Deterministic data sets: `n` agents, `m` pheromones, proposals and thoughts computed from
//! their index and a fixed instant (no randomness, no wall clock). The snapshot tests, the
//! frame benchmark and the `fixture` measuring example draw from them.

use jiff::{SignedDuration, Timestamp};
use kgents_core::field::PheromoneType;
use kgents_ghost::AgentName;
use kgents_ghost::snapshot::{AgentSummary, PheromoneSummary, ProposalSummary, RiskFactor};
use kgents_logos::Source;
use kgents_logos::outcome::{PheromoneRecord, ProposalRecord};

use crate::state::{AgentRow, Dashboard, PheromoneRow, Thought};

/// The fixed instant fixtures are built around: 2027-01-15T12:00:00Z.
pub fn epoch() -> Timestamp {
    Timestamp::from_second(1_800_000_000).expect("a valid instant")
}

const GENERA: [&str; 6] = ["A", "B", "K", "L", "PSI", "T"];
const PHASES: [&str; 5] = ["Running", "Running", "Running", "Degraded", "Pending"];
const HEALTH: [&str; 4] = ["HEALTHY", "HEALTHY", "DEGRADED", "UNRESPONSIVE"];

/// The name of agent `i`.
pub fn agent_name(i: usize) -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    if i < LETTERS.len() {
        format!("{}-gent", LETTERS[i] as char)
    } else {
        format!(
            "{}-gent-{}",
            LETTERS[i % LETTERS.len()] as char,
            i / LETTERS.len()
        )
    }
}

fn namespace(i: usize) -> String {
    if i % 5 == 4 {
        "lab".into()
    } else {
        "team".into()
    }
}

/// Agent `i`.
pub fn agent(i: usize, at: Timestamp) -> AgentRow {
    let replicas = 1 + (i % 3) as u32;
    let phase = PHASES[i % PHASES.len()];
    AgentRow {
        summary: AgentSummary {
            name: AgentName::new(agent_name(i)).expect("fixture names are valid agent names"),
            namespace: namespace(i),
            genus: GENERA[i % GENERA.len()].into(),
            phase: phase.into(),
            cognitive_health: HEALTH[(i / 2) % HEALTH.len()].into(),
            ready_replicas: if phase == "Running" { replicas } else { 0 },
            replicas,
        },
        last_probe: (i % 4 != 3).then(|| at - SignedDuration::from_secs((i as i64 * 17) % 300)),
    }
}

/// Pheromone `i`, emitted by one of `agents` agents.
pub fn pheromone(i: usize, agents: usize, at: Timestamp) -> PheromoneRow {
    let source = agent_name((i * 7) % agents.max(1));
    let kind = PheromoneType::ALL[(i * 5 + i / 13) % PheromoneType::ALL.len()];
    let age = ((i * 37) % 1_200) as i64;
    let emitted_at = at - SignedDuration::from_secs(age);
    PheromoneRow {
        record: PheromoneRecord {
            summary: PheromoneSummary {
                name: format!(
                    "{source}-{}-{i}",
                    kind.as_str().to_lowercase().replace('_', "-")
                ),
                namespace: namespace((i * 7) % agents.max(1)),
                pheromone_type: kind,
                source,
                target: i
                    .is_multiple_of(3)
                    .then(|| agent_name((i * 11) % agents.max(1))),
                intensity: 0.2 + 0.8 * (((i * 31) % 100) as f64 / 100.0),
                emitted_at,
                half_life_seconds: 300.0 + ((i * 13) % 900) as f64,
                expires_at: None,
            },
        },
        observed_at: emitted_at,
    }
}

/// Proposal `i`.
pub fn proposal(i: usize, agents: usize, at: Timestamp) -> ProposalRecord {
    const TYPES: [(&str, f64, &str); 5] = [
        ("AGENT_SCALE", 0.15, "LOW"),
        ("CONFIG_UPDATE", 0.35, "MEDIUM"),
        ("MEMORY_MIGRATE", 0.66, "HIGH"),
        ("CODE_PATCH", 0.45, "MEDIUM"),
        ("RISK_OVERRIDE", 0.92, "CRITICAL"),
    ];
    const PHASES: [&str; 5] = ["Reviewing", "Pending", "Merged", "Rejected", "Approved"];
    let (change_type, score, level) = TYPES[i % TYPES.len()];
    let target = agent_name((i * 3) % agents.max(1));
    ProposalRecord {
        summary: ProposalSummary {
            name: format!(
                "{}-{target}-{i}",
                change_type.to_lowercase().replace('_', "-")
            ),
            namespace: "team".into(),
            proposer: if i.is_multiple_of(2) {
                "alice".into()
            } else {
                agent_name(i % agents.max(1))
            },
            change_type: change_type.into(),
            target: format!("Agent/{target}"),
            risk_score: score,
            risk_level: level.into(),
            phase: PHASES[i % PHASES.len()].into(),
            created_at: at - SignedDuration::from_mins(i as i64 * 3),
            reason: (PHASES[i % PHASES.len()] == "Rejected")
                .then(|| "rejected by bob: not during the freeze".to_owned()),
            risk_factors: vec![
                RiskFactor {
                    name: "base".into(),
                    value: score,
                    detail: "the change type's base risk".into(),
                },
                RiskFactor {
                    name: "size".into(),
                    value: 1.0,
                    detail: "× 1 + 0.1·log2(1 + lines + 10·files)".into(),
                },
                RiskFactor {
                    name: "tests".into(),
                    value: 1.0,
                    detail: "× tests added lower it, removed raise it".into(),
                },
                RiskFactor {
                    name: "velocity".into(),
                    value: 0.0,
                    detail: "× (1 + it): 0 other proposals in the last hour".into(),
                },
                RiskFactor {
                    name: "cumulative".into(),
                    value: 0.0,
                    detail: "+ it: 0 changes applied in the last 24 h".into(),
                },
            ],
            patch: Some(format!(
                "merge: {{\"spec\":{{\"replicas\":{}}}}}",
                2 + i % 3
            )),
        },
        risk: None,
        approvals: if i % 5 == 4 {
            vec!["carol".into()]
        } else {
            Vec::new()
        },
        rejections: Vec::new(),
    }
}

/// Thought `i` (an Event of an agent or a proposal).
pub fn thought(i: usize, agents: usize, at: Timestamp) -> Thought {
    const REASONS: [(&str, &str, bool); 4] = [
        (
            "ProbeSucceeded",
            "cognitive probe answered in 840 ms",
            false,
        ),
        ("Scaled", "replicas 1 → 2", false),
        ("ProbeFailed", "no answer within 30 s", true),
        ("Emitted", "WARNING pheromone at 0.80", false),
    ];
    let agent = agent_name((i * 3) % agents.max(1));
    let (reason, text, warning) = REASONS[i % REASONS.len()];
    Thought {
        at: at - SignedDuration::from_secs(((40 - i as i64 % 40) * 3).max(0)),
        namespace: namespace((i * 3) % agents.max(1)),
        object: format!("Agent/{agent}"),
        agent: Some(agent),
        reason: reason.into(),
        text: text.into(),
        warning,
    }
}

/// A dashboard of `agents` agents, `pheromones` pheromones and `proposals` proposals at `at`,
/// from `source` (live or a ghost snapshot).
pub fn dashboard(
    agents: usize,
    pheromones: usize,
    proposals: usize,
    at: Timestamp,
    source: Source,
) -> Dashboard {
    Dashboard {
        agents: (0..agents).map(|i| agent(i, at)).collect(),
        pheromones: (0..pheromones)
            .map(|i| pheromone(i, agents.max(1), at))
            .collect(),
        proposals: (0..proposals)
            .map(|i| proposal(i, agents.max(1), at))
            .collect(),
        source,
    }
}

/// A ghost-cache source: `age` seconds old at `at`, from the `ghost-cache` layer.
pub fn ghost_source(at: Timestamp, age_seconds: i64) -> Source {
    Source {
        layer: "ghost-cache".into(),
        live: false,
        taken_at: at - SignedDuration::from_secs(age_seconds),
        age_seconds: age_seconds as f64,
        stale: age_seconds > 60,
        warnings: Vec::new(),
    }
}
