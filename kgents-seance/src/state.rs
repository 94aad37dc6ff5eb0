//! The fold: [`AgentState`] rebuilt from records ([`reconstruct`]), and [`steps`], each record
//! with the change it made to the state.
//!
//! Replay reads the record only: nothing is re-run and no model is called, so the same records
//! always give the same state.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::record::{AgentRef, RecordKind, WitnessRecord};

/// The children the operator made for the agent, as its status names them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Children {
    /// The Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// The Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The Memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// The Umwelt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umwelt: Option<String>,
}

/// A proposal targeting the agent, as recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProposalState {
    /// Its spec when filed.
    pub spec: Value,
    /// Its phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Who approved it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approved_by: Vec<String>,
    /// Who rejected it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected_by: Vec<String>,
    /// Whether it was executed, and whether that worked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executed: Option<bool>,
    /// The target before the execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
}

/// A pheromone the agent emitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmittedPheromone {
    /// Its name.
    pub name: String,
    /// Its type.
    pub pheromone_type: String,
    /// Its target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Its initial intensity.
    pub intensity: f64,
    /// Its payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// When it was seen.
    pub at: Timestamp,
}

/// An Event about the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventNote {
    /// `Normal` or `Warning`.
    pub event_type: String,
    /// The reason.
    pub reason: String,
    /// The message.
    pub message: String,
    /// How many times it had occurred.
    pub count: i32,
    /// When it was seen.
    pub at: Timestamp,
}

/// An agent as the record says it was at one point in time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentState {
    /// The agent.
    pub agent: AgentRef,
    /// Whether it existed (created and not deleted).
    pub exists: bool,
    /// Its `metadata.generation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Its spec (`null` before it was created).
    pub spec: Value,
    /// Its status: phase, conditions, verdict and the rest (the last probe is not recorded:
    /// it changes on every probe; verdict changes are).
    pub status: Value,
    /// The children its status names.
    pub children: Children,
    /// The pheromones it emitted, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pheromones: Vec<EmittedPheromone>,
    /// The proposals targeting it, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub proposals: BTreeMap<String, ProposalState>,
    /// The Events about it, by Event name (the latest occurrence of each).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub events: BTreeMap<String, EventNote>,
    /// When the history it comes from starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// The time of the last record applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
    /// The sequence number of the last record applied (0: none).
    #[serde(default)]
    pub seq: u64,
}

/// Status fields held apart from the generic status patch.
pub(crate) const PHASE: &str = "phase";
pub(crate) const CONDITIONS: &str = "conditions";
pub(crate) const VERDICT: &str = "cognitiveHealth";
pub(crate) const LAST_PROBE: &str = "lastProbe";

impl AgentState {
    /// The state before any record: not created yet.
    pub fn empty(agent: AgentRef) -> AgentState {
        AgentState {
            agent,
            exists: false,
            generation: None,
            spec: Value::Null,
            status: Value::Object(Map::new()),
            children: Children::default(),
            pheromones: Vec::new(),
            proposals: BTreeMap::new(),
            events: BTreeMap::new(),
            since: None,
            at: None,
            seq: 0,
        }
    }

    /// The status without the fields recorded apart (phase, conditions, verdict, last probe):
    /// what [`RecordKind::StatusChanged`] patches.
    pub fn status_rest(&self) -> Value {
        status_rest(&self.status)
    }

    /// The condition of type `condition`, if present.
    pub fn condition(&self, condition: &str) -> Option<&Value> {
        self.status
            .get(CONDITIONS)?
            .as_array()?
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(condition))
    }

    /// Applies one record. Records of other agents are refused, as are patches that do not
    /// apply (a record out of order or damaged).
    ///
    /// # Errors
    /// [`Error::Replay`] naming the record.
    pub fn apply(&mut self, record: &WitnessRecord) -> Result<()> {
        if record.agent != self.agent {
            return Err(replay_error(
                record,
                format!("the record is {}'s, not {}'s", record.agent, self.agent),
            ));
        }
        match &record.kind {
            RecordKind::Checkpoint { state } => {
                let mut state = (**state).clone();
                state.agent = self.agent.clone();
                *self = state;
            }
            RecordKind::SpecChanged { generation, diff } => {
                apply_patch(&mut self.spec, diff).map_err(|e| replay_error(record, e))?;
                self.generation = *generation;
                self.exists = true;
            }
            RecordKind::PhaseChanged { to, .. } => {
                set_field(&mut self.status, PHASE, to.clone().map(Value::String));
            }
            RecordKind::Verdict { to, .. } => {
                set_field(&mut self.status, VERDICT, to.clone().map(Value::String));
            }
            RecordKind::ConditionChanged { condition, to, .. } => {
                let status = object(&mut self.status);
                let mut conditions: Vec<Value> = status
                    .remove(CONDITIONS)
                    .and_then(|c| match c {
                        Value::Array(a) => Some(a),
                        _ => None,
                    })
                    .unwrap_or_default();
                let at = conditions
                    .iter()
                    .position(|c| c.get("type").and_then(Value::as_str) == Some(condition));
                match (at, to) {
                    (Some(i), Some(to)) => conditions[i] = to.clone(),
                    (Some(i), None) => {
                        conditions.remove(i);
                    }
                    (None, Some(to)) => conditions.push(to.clone()),
                    (None, None) => {}
                }
                if !conditions.is_empty() {
                    status.insert(CONDITIONS.into(), Value::Array(conditions));
                }
            }
            RecordKind::StatusChanged { diff } => {
                let mut rest = self.status_rest();
                apply_patch(&mut rest, diff).map_err(|e| replay_error(record, e))?;
                let mut status = match rest {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                for field in [PHASE, CONDITIONS, VERDICT] {
                    if let Some(v) = self.status.get(field) {
                        status.insert(field.into(), v.clone());
                    }
                }
                self.status = Value::Object(status);
                self.children = children_of(&self.status);
            }
            RecordKind::ProposalFiled {
                proposal,
                spec,
                phase,
            } => {
                let entry = self.proposals.entry(proposal.clone()).or_default();
                entry.spec = spec.clone();
                entry.phase = phase.clone();
            }
            RecordKind::ProposalDecided {
                proposal,
                to,
                approved_by,
                rejected_by,
                ..
            } => {
                let entry = self.proposals.entry(proposal.clone()).or_default();
                entry.phase = to.clone();
                entry.approved_by = approved_by.clone();
                entry.rejected_by = rejected_by.clone();
            }
            RecordKind::ProposalExecuted {
                proposal,
                success,
                before,
                ..
            } => {
                let entry = self.proposals.entry(proposal.clone()).or_default();
                entry.executed = Some(*success);
                entry.before = before.clone();
            }
            RecordKind::PheromoneEmitted {
                pheromone,
                pheromone_type,
                target,
                intensity,
                payload,
            } => self.pheromones.push(EmittedPheromone {
                name: pheromone.clone(),
                pheromone_type: pheromone_type.clone(),
                target: target.clone(),
                intensity: *intensity,
                payload: payload.clone(),
                at: record.at,
            }),
            RecordKind::Event {
                event,
                event_type,
                reason,
                message,
                count,
            } => {
                self.events.insert(
                    event.clone(),
                    EventNote {
                        event_type: event_type.clone(),
                        reason: reason.clone(),
                        message: message.clone(),
                        count: *count,
                        at: record.at,
                    },
                );
            }
            RecordKind::Deleted => self.exists = false,
        }
        if self.since.is_none() {
            self.since = Some(record.at);
        }
        self.at = Some(record.at);
        self.seq = record.seq;
        Ok(())
    }
}

fn replay_error(record: &WitnessRecord, reason: impl std::fmt::Display) -> Error {
    Error::Replay {
        agent: record.agent.to_string(),
        seq: record.seq,
        reason: reason.to_string(),
    }
}

/// The status without the fields recorded apart.
pub(crate) fn status_rest(status: &Value) -> Value {
    let mut rest = match status {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    for field in [PHASE, CONDITIONS, VERDICT, LAST_PROBE] {
        rest.remove(field);
    }
    Value::Object(rest)
}

/// The children a status names.
pub fn children_of(status: &Value) -> Children {
    let name = |field: &str| status.get(field).and_then(Value::as_str).map(str::to_owned);
    Children {
        deployment: name("deployment"),
        service: name("service"),
        memory: name("memory"),
        umwelt: name("umwelt"),
    }
}

fn object(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    match value {
        Value::Object(m) => m,
        _ => unreachable!("made an object above"),
    }
}

fn set_field(status: &mut Value, field: &str, to: Option<Value>) {
    let status = object(status);
    match to {
        Some(v) => status.insert(field.into(), v),
        None => status.remove(field),
    };
}

/// Applies an RFC 6902 patch held as JSON.
pub(crate) fn apply_patch(doc: &mut Value, diff: &Value) -> std::result::Result<(), String> {
    let patch: json_patch::Patch =
        serde_json::from_value(diff.clone()).map_err(|e| format!("not an RFC 6902 patch: {e}"))?;
    json_patch::patch(doc, &patch).map_err(|e| format!("the patch does not apply: {e}"))
}

/// The RFC 6902 patch from `from` to `to`, as JSON.
pub fn diff(from: &Value, to: &Value) -> Value {
    serde_json::to_value(json_patch::diff(from, to)).unwrap_or(Value::Array(Vec::new()))
}

/// The agent as of `at` (`None`: after every record), from its records in sequence order.
///
/// # Errors
/// [`Error::BeforeHistory`] when `at` is before the first record (saying when history starts),
/// [`Error::NoHistory`] when there are no records, [`Error::Replay`] for a record that does not
/// apply.
pub fn reconstruct(
    agent: &AgentRef,
    records: &[WitnessRecord],
    at: Option<Timestamp>,
) -> Result<AgentState> {
    let first = records.first().ok_or_else(|| Error::NoHistory {
        agent: agent.to_string(),
    })?;
    if let Some(at) = at
        && at < first.at
    {
        return Err(Error::BeforeHistory {
            agent: agent.to_string(),
            at,
            starts: first.at,
        });
    }
    let mut state = AgentState::empty(agent.clone());
    for record in records {
        if at.is_some_and(|at| record.at > at) {
            break;
        }
        state.apply(record)?;
    }
    Ok(state)
}

/// One record and the change it made to the agent's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// The record.
    pub record: WitnessRecord,
    /// What it says, in words.
    pub summary: String,
    /// RFC 6902 patch from the state before the record to the state after it (the `at` and
    /// `seq` bookkeeping left out).
    pub diff: Value,
}

/// Each record with the change it made, oldest first.
///
/// # Errors
/// [`Error::Replay`] for a record that does not apply.
pub fn steps(agent: &AgentRef, records: &[WitnessRecord]) -> Result<Vec<Step>> {
    let mut state = AgentState::empty(agent.clone());
    let mut before = comparable(&state);
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        state.apply(record)?;
        let after = comparable(&state);
        out.push(Step {
            record: record.clone(),
            summary: record.kind.summary(),
            diff: diff(&before, &after),
        });
        before = after;
    }
    Ok(out)
}

/// The state as JSON without the bookkeeping that changes on every record.
fn comparable(state: &AgentState) -> Value {
    let mut value = serde_json::to_value(state).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut value {
        for field in ["at", "seq", "since", "agent"] {
            m.remove(field);
        }
    }
    value
}
