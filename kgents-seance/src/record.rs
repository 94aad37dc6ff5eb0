//! The witness record: one [`WitnessRecord`] per thing that happened to an agent, stamped with
//! when it was seen and a store-wide sequence number.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::state::AgentState;

/// An agent, by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AgentRef {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl AgentRef {
    /// `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> AgentRef {
        AgentRef {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key stores file it under: `namespace/name` (neither part may hold a `/`).
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Parses a [`AgentRef::key`].
    pub fn from_key(key: &str) -> Option<AgentRef> {
        let (namespace, name) = key.split_once('/')?;
        Some(AgentRef::new(namespace, name))
    }
}

impl std::fmt::Display for AgentRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A record before a store gave it its sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewRecord {
    /// Whose history it is.
    pub agent: AgentRef,
    /// When it was seen.
    pub at: Timestamp,
    /// What happened.
    pub kind: RecordKind,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WitnessRecord {
    /// Whose history it is.
    pub agent: AgentRef,
    /// When it was seen.
    pub at: Timestamp,
    /// The store-wide sequence number: records of one agent are applied in this order.
    pub seq: u64,
    /// What happened.
    pub kind: RecordKind,
}

/// What happened. Patches are RFC 6902 JSON patches (arrays of operations) from the previous
/// value to the new one, so applying them in order rebuilds every version exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum RecordKind {
    /// The spec changed (or the agent was created: the patch is from `null`).
    SpecChanged {
        /// The agent's `metadata.generation` after the change.
        generation: Option<i64>,
        /// RFC 6902 patch from the previous spec.
        diff: Value,
    },
    /// `status.phase` changed.
    PhaseChanged {
        /// Before (`None`: unset).
        from: Option<String>,
        /// After.
        to: Option<String>,
    },
    /// One condition of `status.conditions` changed, appeared or went away.
    ConditionChanged {
        /// The condition type (`Ready`, `CognitiveHealthy`, ...).
        condition: String,
        /// The condition before (`None`: absent).
        from: Option<Value>,
        /// The condition after (`None`: removed).
        to: Option<Value>,
    },
    /// The cognitive probes' verdict (`status.cognitiveHealth`) changed.
    Verdict {
        /// Before.
        from: Option<String>,
        /// After.
        to: Option<String>,
    },
    /// Any other part of the status changed (replicas, children, observed generation, ...).
    StatusChanged {
        /// RFC 6902 patch of the status without phase, conditions, verdict and last probe.
        diff: Value,
    },
    /// A proposal targeting the agent was filed.
    ProposalFiled {
        /// The proposal's name.
        proposal: String,
        /// Its spec.
        spec: Value,
        /// Its phase when first seen.
        phase: Option<String>,
    },
    /// A proposal targeting the agent changed phase (reviewing, approved, rejected, merged, ...).
    ProposalDecided {
        /// The proposal's name.
        proposal: String,
        /// The phase before.
        from: Option<String>,
        /// The phase after.
        to: Option<String>,
        /// Who approved it so far.
        approved_by: Vec<String>,
        /// Who rejected it.
        rejected_by: Vec<String>,
    },
    /// A proposal targeting the agent was executed (not a dry run).
    ProposalExecuted {
        /// The proposal's name.
        proposal: String,
        /// Whether it worked.
        success: bool,
        /// The patch applied (the proposal's `spec.patch`).
        patch: Option<Value>,
        /// The target before the change, as the operator recorded it.
        before: Option<Value>,
        /// What happened, in words.
        message: Option<String>,
    },
    /// The agent emitted a pheromone.
    PheromoneEmitted {
        /// The Pheromone's name.
        pheromone: String,
        /// Its type (`WARNING`, ...).
        pheromone_type: String,
        /// Its target (`None`: a broadcast).
        target: Option<String>,
        /// Its initial intensity.
        intensity: f64,
        /// Its payload.
        payload: Option<String>,
    },
    /// A Kubernetes Event about the agent (kept here past the API server's one-hour expiry).
    Event {
        /// The Event's name.
        event: String,
        /// `Normal` or `Warning`.
        event_type: String,
        /// The reason.
        reason: String,
        /// The message.
        message: String,
        /// How many times it has occurred.
        count: i32,
    },
    /// The agent was deleted.
    Deleted,
    /// The state at this point, replacing the records before it that retention dropped.
    Checkpoint {
        /// The state reconstructed from the dropped records.
        state: Box<AgentState>,
    },
}

impl RecordKind {
    /// The kind's name as serialised (`specChanged`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            RecordKind::SpecChanged { .. } => "specChanged",
            RecordKind::PhaseChanged { .. } => "phaseChanged",
            RecordKind::ConditionChanged { .. } => "conditionChanged",
            RecordKind::Verdict { .. } => "verdict",
            RecordKind::StatusChanged { .. } => "statusChanged",
            RecordKind::ProposalFiled { .. } => "proposalFiled",
            RecordKind::ProposalDecided { .. } => "proposalDecided",
            RecordKind::ProposalExecuted { .. } => "proposalExecuted",
            RecordKind::PheromoneEmitted { .. } => "pheromoneEmitted",
            RecordKind::Event { .. } => "event",
            RecordKind::Deleted => "deleted",
            RecordKind::Checkpoint { .. } => "checkpoint",
        }
    }

    /// One line saying what happened (for step listings).
    pub fn summary(&self) -> String {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        match self {
            RecordKind::SpecChanged { generation, diff } => format!(
                "spec changed (generation {}, {} operation(s))",
                generation.map_or("-".into(), |g| g.to_string()),
                diff.as_array().map_or(0, Vec::len)
            ),
            RecordKind::PhaseChanged { from, to } => {
                format!("phase {} → {}", opt(from), opt(to))
            }
            RecordKind::ConditionChanged {
                condition,
                from,
                to,
            } => {
                let status = |c: &Option<Value>| {
                    c.as_ref()
                        .and_then(|c| c.get("status"))
                        .and_then(Value::as_str)
                        .unwrap_or("-")
                        .to_owned()
                };
                format!("condition {condition} {} → {}", status(from), status(to))
            }
            RecordKind::Verdict { from, to } => {
                format!("cognitive verdict {} → {}", opt(from), opt(to))
            }
            RecordKind::StatusChanged { diff } => format!(
                "status changed ({} operation(s))",
                diff.as_array().map_or(0, Vec::len)
            ),
            RecordKind::ProposalFiled { proposal, .. } => format!("proposal {proposal} filed"),
            RecordKind::ProposalDecided {
                proposal, from, to, ..
            } => format!("proposal {proposal} {} → {}", opt(from), opt(to)),
            RecordKind::ProposalExecuted {
                proposal, success, ..
            } => format!(
                "proposal {proposal} executed ({})",
                if *success { "succeeded" } else { "failed" }
            ),
            RecordKind::PheromoneEmitted {
                pheromone,
                pheromone_type,
                target,
                ..
            } => format!(
                "emitted {pheromone_type} pheromone {pheromone}{}",
                target
                    .as_ref()
                    .map(|t| format!(" to {t}"))
                    .unwrap_or_default()
            ),
            RecordKind::Event {
                event_type,
                reason,
                message,
                ..
            } => format!("event {event_type} {reason}: {message}"),
            RecordKind::Deleted => "deleted".into(),
            RecordKind::Checkpoint { .. } => "history before this point compacted".into(),
        }
    }
}
