//! What a new version of an object adds to the record: each function compares the object (as
//! JSON, the way the API server serves it) with the agent's recorded [`AgentState`] and returns
//! the records that bring the state up to it. Comparing with the recorded state rather than the
//! last version seen is what makes a restarted recorder write nothing twice and every change
//! made while it was down once.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::record::{AgentRef, RecordKind};
use crate::state::{AgentState, CONDITIONS, PHASE, VERDICT, diff, status_rest};

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// The agent an Agent object is (`None`: no name or namespace).
pub fn agent_of(object: &Value) -> Option<AgentRef> {
    Some(AgentRef::new(
        str_at(object, "/metadata/namespace")?,
        str_at(object, "/metadata/name")?,
    ))
}

/// The agent a Proposal targets (`target.kind: Agent`), if any.
pub fn proposal_agent(proposal: &Value) -> Option<AgentRef> {
    if str_at(proposal, "/spec/target/kind") != Some("Agent") {
        return None;
    }
    let namespace = str_at(proposal, "/spec/target/namespace")
        .or_else(|| str_at(proposal, "/metadata/namespace"))?;
    Some(AgentRef::new(
        namespace,
        str_at(proposal, "/spec/target/name")?,
    ))
}

/// The agent that emitted a Pheromone (its `spec.source`, in the Pheromone's namespace).
pub fn pheromone_agent(pheromone: &Value) -> Option<AgentRef> {
    Some(AgentRef::new(
        str_at(pheromone, "/metadata/namespace")?,
        str_at(pheromone, "/spec/source")?,
    ))
}

/// The object an Event is about: `regarding` (`events.k8s.io/v1`, what the operator publishes)
/// or `involvedObject` (`core/v1`).
pub fn event_object(event: &Value) -> Option<&Value> {
    event
        .get("regarding")
        .or_else(|| event.get("involvedObject"))
}

/// The agent an Event is about (its `regarding`/`involvedObject` an Agent of `kgents.io`), if
/// any.
pub fn event_agent(event: &Value) -> Option<AgentRef> {
    let involved = event_object(event)?;
    if str_at(involved, "/kind") != Some("Agent")
        || !str_at(involved, "/apiVersion").is_some_and(|v| v.starts_with("kgents.io/"))
    {
        return None;
    }
    let namespace =
        str_at(involved, "/namespace").or_else(|| str_at(event, "/metadata/namespace"))?;
    Some(AgentRef::new(namespace, str_at(involved, "/name")?))
}

/// The Agent that owns `object` (a kgents object, e.g. a Memory), from its owner references.
pub fn owning_agent(object: &Value) -> Option<AgentRef> {
    let namespace = str_at(object, "/metadata/namespace")?;
    object
        .pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|owner| {
            str_at(owner, "/kind") == Some("Agent")
                && str_at(owner, "/apiVersion").is_some_and(|v| v.starts_with("kgents.io/"))
        })
        .and_then(|owner| Some(AgentRef::new(namespace, str_at(owner, "/name")?)))
}

/// The records a version of the Agent adds: its spec, phase, conditions, verdict and the rest of
/// its status, each compared with the recorded state.
pub fn agent_changes(state: &AgentState, agent: &Value) -> Vec<RecordKind> {
    let mut out = Vec::new();
    let spec = agent.get("spec").cloned().unwrap_or(Value::Null);
    if !state.exists || spec != state.spec {
        out.push(RecordKind::SpecChanged {
            generation: agent
                .pointer("/metadata/generation")
                .and_then(Value::as_i64),
            diff: diff(&state.spec, &spec),
        });
    }
    let status = agent
        .get("status")
        .cloned()
        .unwrap_or(Value::Object(Default::default()));
    let text = |v: &Value, field: &str| v.get(field).and_then(Value::as_str).map(str::to_owned);

    let (from, to) = (text(&state.status, PHASE), text(&status, PHASE));
    if from != to {
        out.push(RecordKind::PhaseChanged { from, to });
    }
    let by_type = |status: &Value| -> BTreeMap<String, Value> {
        status
            .get(CONDITIONS)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| Some((c.get("type")?.as_str()?.to_owned(), c.clone())))
            .collect()
    };
    let (before, after) = (by_type(&state.status), by_type(&status));
    for (condition, now) in &after {
        if before.get(condition) != Some(now) {
            out.push(RecordKind::ConditionChanged {
                condition: condition.clone(),
                from: before.get(condition).cloned(),
                to: Some(now.clone()),
            });
        }
    }
    for (condition, was) in &before {
        if !after.contains_key(condition) {
            out.push(RecordKind::ConditionChanged {
                condition: condition.clone(),
                from: Some(was.clone()),
                to: None,
            });
        }
    }
    let (from, to) = (text(&state.status, VERDICT), text(&status, VERDICT));
    if from != to {
        out.push(RecordKind::Verdict { from, to });
    }
    let (before, after) = (state.status_rest(), status_rest(&status));
    if before != after {
        out.push(RecordKind::StatusChanged {
            diff: diff(&before, &after),
        });
    }
    out
}

/// The record a deleted Agent adds (none if the record already has it deleted).
pub fn agent_deleted(state: &AgentState) -> Vec<RecordKind> {
    if state.exists {
        vec![RecordKind::Deleted]
    } else {
        Vec::new()
    }
}

fn names(list: Option<&Value>, field: &str) -> Vec<String> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.get(field).and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// The records a version of a Proposal targeting the agent adds: filed, each phase change
/// (with who approved and rejected), and its execution.
pub fn proposal_changes(state: &AgentState, proposal: &Value) -> Vec<RecordKind> {
    let Some(name) = str_at(proposal, "/metadata/name") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let known = state.proposals.get(name);
    let status = proposal.get("status");
    let phase = status
        .and_then(|s| s.get("phase"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let approved_by = names(status.and_then(|s| s.get("approvals")), "approver");
    let rejected_by = names(status.and_then(|s| s.get("rejections")), "rejector");
    let (known_phase, known_approved, known_rejected) = match known {
        Some(p) => (
            p.phase.clone(),
            p.approved_by.clone(),
            p.rejected_by.clone(),
        ),
        None => {
            out.push(RecordKind::ProposalFiled {
                proposal: name.to_owned(),
                spec: proposal.get("spec").cloned().unwrap_or(Value::Null),
                phase: phase.clone(),
            });
            (phase.clone(), Vec::new(), Vec::new())
        }
    };
    if phase != known_phase || approved_by != known_approved || rejected_by != known_rejected {
        out.push(RecordKind::ProposalDecided {
            proposal: name.to_owned(),
            from: known_phase,
            to: phase,
            approved_by,
            rejected_by,
        });
    }
    if let Some(execution) = status.and_then(|s| s.get("execution"))
        && execution.get("dryRun").and_then(Value::as_bool) != Some(true)
        && known.and_then(|p| p.executed).is_none()
    {
        let before = execution
            .get("previous")
            .and_then(Value::as_str)
            .map(|text| serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into())));
        out.push(RecordKind::ProposalExecuted {
            proposal: name.to_owned(),
            success: execution
                .get("success")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            patch: proposal.pointer("/spec/patch").cloned(),
            before,
            message: str_at(execution, "/message").map(str::to_owned),
        });
    }
    out
}

/// The record a Pheromone the agent emitted adds (none if recorded already).
pub fn pheromone_changes(state: &AgentState, pheromone: &Value) -> Vec<RecordKind> {
    let Some(name) = str_at(pheromone, "/metadata/name") else {
        return Vec::new();
    };
    if state.pheromones.iter().any(|p| p.name == name) {
        return Vec::new();
    }
    vec![RecordKind::PheromoneEmitted {
        pheromone: name.to_owned(),
        pheromone_type: str_at(pheromone, "/spec/type")
            .unwrap_or("UNKNOWN")
            .to_owned(),
        target: str_at(pheromone, "/spec/target").map(str::to_owned),
        intensity: pheromone
            .pointer("/spec/initialIntensity")
            .and_then(Value::as_f64)
            .unwrap_or(1.0),
        payload: str_at(pheromone, "/spec/payload").map(str::to_owned),
    }]
}

/// The record an Event about the agent adds: a new Event, or a new occurrence of one (its count
/// went up). Reads both shapes: `events.k8s.io/v1` (`note`, `series.count`, `deprecatedCount`)
/// and `core/v1` (`message`, `count`).
pub fn event_changes(state: &AgentState, event: &Value) -> Vec<RecordKind> {
    let Some(name) = str_at(event, "/metadata/name") else {
        return Vec::new();
    };
    let count = ["/series/count", "/count", "/deprecatedCount"]
        .iter()
        .filter_map(|pointer| event.pointer(pointer).and_then(Value::as_i64))
        .max()
        .and_then(|c| i32::try_from(c).ok())
        .unwrap_or(1)
        .max(1);
    if state.events.get(name).is_some_and(|e| e.count >= count) {
        return Vec::new();
    }
    let message = str_at(event, "/note")
        .or_else(|| str_at(event, "/message"))
        .unwrap_or_default();
    vec![RecordKind::Event {
        event: name.to_owned(),
        event_type: str_at(event, "/type").unwrap_or("Normal").to_owned(),
        reason: str_at(event, "/reason").unwrap_or_default().to_owned(),
        message: message.to_owned(),
        count,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_events_k8s_io_event_about_an_agent_is_read_with_its_series() {
        let event = json!({
            "metadata": {"name": "b-gent.1", "namespace": "ns"},
            "regarding": {"apiVersion": "kgents.io/v1", "kind": "Agent", "name": "b-gent", "namespace": "ns"},
            "reason": "Scaled", "note": "to 3", "type": "Normal",
            "series": {"count": 4, "lastObservedTime": "2026-12-03T10:00:00.000000Z"},
        });
        let who = event_agent(&event).expect("about an agent");
        assert_eq!(who, AgentRef::new("ns", "b-gent"));
        let kinds = event_changes(&AgentState::empty(who), &event);
        assert_eq!(
            kinds,
            [RecordKind::Event {
                event: "b-gent.1".into(),
                event_type: "Normal".into(),
                reason: "Scaled".into(),
                message: "to 3".into(),
                count: 4,
            }]
        );
    }

    #[test]
    fn an_event_about_a_pod_is_no_agents() {
        let event = json!({
            "metadata": {"name": "p.1", "namespace": "ns"},
            "regarding": {"apiVersion": "v1", "kind": "Pod", "name": "b-gent-0"},
        });
        assert_eq!(event_agent(&event), None);
    }

    #[test]
    fn a_memory_is_owned_by_its_agent() {
        let memory = json!({"metadata": {"name": "m", "namespace": "ns", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "1"},
            {"apiVersion": "kgents.io/v1", "kind": "Agent", "name": "b-gent", "uid": "2"},
        ]}});
        assert_eq!(owning_agent(&memory), Some(AgentRef::new("ns", "b-gent")));
        assert_eq!(
            owning_agent(&json!({"metadata": {"name": "m", "namespace": "ns"}})),
            None
        );
    }
}
