//! The record replays the world: random lives of an agent (spec edits, phase, condition and
//! verdict changes, proposals filed, decided and executed, pheromones, Events, deletion and
//! re-creation) are observed version by version into records; the state rebuilt at a random
//! time equals the world at that time. Plus the bad input of a replay and retention.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kgents_seance::observe::{self, agent_changes, agent_deleted};
use kgents_seance::{
    AgentRef, AgentState, Error, Plan, RecordKind, Retention, WitnessRecord, reconstruct, steps,
};
use proptest::prelude::*;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
enum Op {
    Replicas(u8),
    Model(u8),
    Phase(u8),
    Condition(u8, bool),
    DropCondition(u8),
    Verdict(u8),
    Ready(u8),
    File,
    Decide(u8, u8, u8),
    Execute(u8, bool),
    Emit(u8),
    Event(u8),
    Delete,
    Recreate,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..5).prop_map(Op::Replicas),
        (0u8..3).prop_map(Op::Model),
        (0u8..5).prop_map(Op::Phase),
        ((0u8..3), any::<bool>()).prop_map(|(c, s)| Op::Condition(c, s)),
        (0u8..3).prop_map(Op::DropCondition),
        (0u8..4).prop_map(Op::Verdict),
        (0u8..5).prop_map(Op::Ready),
        Just(Op::File),
        ((0u8..4), (0u8..5), (0u8..3)).prop_map(|(p, ph, a)| Op::Decide(p, ph, a)),
        ((0u8..4), any::<bool>()).prop_map(|(p, s)| Op::Execute(p, s)),
        (0u8..3).prop_map(Op::Emit),
        (0u8..3).prop_map(Op::Event),
        Just(Op::Delete),
        Just(Op::Recreate),
    ]
}

const PHASES: [&str; 5] = ["Pending", "Running", "Degraded", "Failed", "Terminating"];
const CONDITIONS: [&str; 3] = ["Ready", "CognitiveHealthy", "Progressing"];
const VERDICTS: [&str; 4] = ["HEALTHY", "DEGRADED", "UNRESPONSIVE", "UNKNOWN"];
const PROPOSAL_PHASES: [&str; 5] = ["Pending", "Reviewing", "Approved", "Rejected", "Merged"];

/// The cluster as it is: the Agent object and the objects about it.
#[derive(Debug, Clone, PartialEq)]
struct World {
    agent: Option<Value>,
    proposals: BTreeMap<String, Value>,
    pheromones: Vec<String>,
    events: BTreeMap<String, i64>,
}

fn fresh_agent(generation: i64) -> Value {
    json!({
        "metadata": {"namespace": "ns", "name": "b-gent", "generation": generation},
        "spec": {"genus": "B", "replicas": 1, "model": "m0"},
        "status": {}
    })
}

/// Applies `op` to the world; the objects that changed, as a watch would deliver them.
enum Change {
    Agent(Value),
    AgentDeleted,
    Proposal(Value),
    Pheromone(Value),
    Event(Value),
}

fn step(world: &mut World, op: &Op, n: usize) -> Vec<Change> {
    let mut out = Vec::new();
    if let Some(agent) = world.agent.as_mut() {
        let mut touched = true;
        let generation = agent["metadata"]["generation"].as_i64().unwrap();
        match op {
            // the API server bumps the generation only when the spec changes
            Op::Replicas(r) if agent["spec"]["replicas"] != json!(r) => {
                agent["spec"]["replicas"] = json!(r);
                agent["metadata"]["generation"] = json!(generation + 1);
            }
            Op::Model(m) if agent["spec"]["model"] != json!(format!("m{m}")) => {
                agent["spec"]["model"] = json!(format!("m{m}"));
                agent["metadata"]["generation"] = json!(generation + 1);
            }
            Op::Phase(p) => agent["status"]["phase"] = json!(PHASES[*p as usize]),
            Op::Condition(c, s) => {
                let kind = CONDITIONS[*c as usize];
                let status = agent["status"].as_object_mut().unwrap();
                let list = status
                    .entry("conditions")
                    .or_insert(json!([]))
                    .as_array_mut()
                    .unwrap();
                list.retain(|x| x["type"] != kind);
                list.push(json!({"type": kind, "status": if *s {"True"} else {"False"}, "reason": format!("R{n}")}));
            }
            Op::DropCondition(c) => {
                let kind = CONDITIONS[*c as usize];
                if let Some(list) = agent["status"]
                    .get_mut("conditions")
                    .and_then(Value::as_array_mut)
                {
                    list.retain(|x| x["type"] != kind);
                }
            }
            Op::Verdict(v) => {
                agent["status"]["cognitiveHealth"] = json!(VERDICTS[*v as usize]);
                // the last probe changes on every probe and is not recorded
                agent["status"]["lastProbe"] = json!({"at": n});
            }
            Op::Ready(r) => {
                agent["status"]["readyReplicas"] = json!(r);
                agent["status"]["deployment"] = json!("b-gent");
            }
            Op::Delete => touched = false,
            _ => touched = false,
        }
        if touched {
            out.push(Change::Agent(agent.clone()));
        }
    }
    match op {
        Op::Delete if world.agent.is_some() => {
            world.agent = None;
            out.push(Change::AgentDeleted);
        }
        Op::Recreate if world.agent.is_none() => {
            let agent = fresh_agent(1);
            world.agent = Some(agent.clone());
            out.push(Change::Agent(agent));
        }
        Op::File => {
            let name = format!("p{}", world.proposals.len());
            let proposal = json!({
                "metadata": {"namespace": "ns", "name": name},
                "spec": {"changeType": "SCALE", "target": {"kind": "Agent", "name": "b-gent"},
                         "patch": {"type": "merge", "content": format!("{{\"spec\":{{\"replicas\":{n}}}}}")}},
                "status": {"phase": "Pending"}
            });
            world.proposals.insert(name, proposal.clone());
            out.push(Change::Proposal(proposal));
        }
        Op::Decide(p, phase, approver) => {
            let name = format!("p{p}");
            if let Some(proposal) = world.proposals.get_mut(&name) {
                proposal["status"]["phase"] = json!(PROPOSAL_PHASES[*phase as usize]);
                let approvals = proposal["status"]
                    .as_object_mut()
                    .unwrap()
                    .entry("approvals")
                    .or_insert(json!([]));
                approvals.as_array_mut().unwrap().push(
                    json!({"approver": format!("alice{approver}"), "at": "2026-01-01T00:00:00Z"}),
                );
                out.push(Change::Proposal(proposal.clone()));
            }
        }
        Op::Execute(p, success) => {
            let name = format!("p{p}");
            if let Some(proposal) = world.proposals.get_mut(&name)
                && proposal["status"].get("execution").is_none()
            {
                proposal["status"]["execution"] = json!({
                    "success": success, "executedAt": "2026-01-01T00:00:00Z",
                    "previous": "{\"spec\":{\"replicas\":1}}"
                });
                proposal["status"]["phase"] = json!(if *success { "Merged" } else { "Failed" });
                out.push(Change::Proposal(proposal.clone()));
            }
        }
        Op::Emit(t) => {
            let name = format!("b-gent-warning-{n}");
            world.pheromones.push(name.clone());
            let kind = ["WARNING", "STATE", "DREAM"][*t as usize];
            out.push(Change::Pheromone(json!({
                "metadata": {"namespace": "ns", "name": name},
                "spec": {"type": kind, "source": "b-gent",
                         "initialIntensity": 0.5, "halfLifeMinutes": 5.0}
            })));
        }
        Op::Event(e) => {
            let name = format!("b-gent.e{e}");
            let count = world.events.entry(name.clone()).or_insert(0);
            *count += 1;
            out.push(Change::Event(json!({
                "metadata": {"namespace": "ns", "name": name},
                "involvedObject": {"apiVersion": "kgents.io/v1", "kind": "Agent", "namespace": "ns", "name": "b-gent"},
                "type": "Normal", "reason": format!("Reason{e}"), "message": "m", "count": *count
            })));
        }
        _ => {}
    }
    out
}

/// The records each change adds, judged against the recorder's state (updated as it goes).
fn record(
    state: &mut AgentState,
    changes: Vec<Change>,
    at: Timestamp,
    seq: &mut u64,
) -> Vec<WitnessRecord> {
    let mut out = Vec::new();
    for change in changes {
        let kinds = match &change {
            Change::Agent(a) => agent_changes(state, a),
            Change::AgentDeleted => agent_deleted(state),
            Change::Proposal(p) => {
                assert_eq!(observe::proposal_agent(p), Some(state.agent.clone()));
                observe::proposal_changes(state, p)
            }
            Change::Pheromone(p) => {
                assert_eq!(observe::pheromone_agent(p), Some(state.agent.clone()));
                observe::pheromone_changes(state, p)
            }
            Change::Event(e) => {
                assert_eq!(observe::event_agent(e), Some(state.agent.clone()));
                observe::event_changes(state, e)
            }
        };
        for kind in kinds {
            *seq += 1;
            let record = WitnessRecord {
                agent: state.agent.clone(),
                at,
                seq: *seq,
                kind,
            };
            state.apply(&record).unwrap();
            out.push(record);
        }
    }
    out
}

fn conditions_by_type(status: &Value) -> BTreeMap<String, Value> {
    status
        .get("conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| (c["type"].as_str().unwrap().to_owned(), c.clone()))
        .collect()
}

/// The reconstructed state says what the world was.
fn assert_matches(state: &AgentState, world: &World) {
    match &world.agent {
        Some(agent) => {
            assert!(state.exists);
            assert_eq!(state.spec, agent["spec"]);
            assert_eq!(state.generation, agent["metadata"]["generation"].as_i64());
            let mut status = agent["status"].as_object().unwrap().clone();
            status.remove("lastProbe");
            let mut rebuilt = state.status.as_object().unwrap().clone();
            assert_eq!(
                conditions_by_type(&Value::Object(rebuilt.clone())),
                conditions_by_type(&Value::Object(status.clone()))
            );
            rebuilt.remove("conditions");
            status.remove("conditions");
            assert_eq!(rebuilt, status);
            assert_eq!(
                state.children.deployment.as_deref(),
                agent["status"]["deployment"].as_str()
            );
        }
        None => assert!(!state.exists),
    }
    let phases: BTreeMap<_, _> = world
        .proposals
        .iter()
        .map(|(n, p)| (n.clone(), p["status"]["phase"].as_str().map(str::to_owned)))
        .collect();
    let rebuilt: BTreeMap<_, _> = state
        .proposals
        .iter()
        .map(|(n, p)| (n.clone(), p.phase.clone()))
        .collect();
    assert_eq!(rebuilt, phases);
    for (name, proposal) in &world.proposals {
        assert_eq!(
            state.proposals[name].executed,
            proposal["status"]["execution"]["success"].as_bool()
        );
    }
    let emitted: Vec<_> = state.pheromones.iter().map(|p| p.name.clone()).collect();
    assert_eq!(emitted, world.pheromones);
    let events: BTreeMap<_, _> = state
        .events
        .iter()
        .map(|(n, e)| (n.clone(), i64::from(e.count)))
        .collect();
    assert_eq!(events, world.events);
}

fn t0() -> Timestamp {
    "2026-12-01T00:00:00Z".parse().unwrap()
}

/// A life: the records and the world after each operation, with its time.
fn live(ops: &[Op]) -> (Vec<WitnessRecord>, Vec<(Timestamp, World)>) {
    let agent = AgentRef::new("ns", "b-gent");
    let mut world = World {
        agent: Some(fresh_agent(1)),
        proposals: BTreeMap::new(),
        pheromones: Vec::new(),
        events: BTreeMap::new(),
    };
    let mut state = AgentState::empty(agent);
    let mut seq = 0;
    let mut records = record(
        &mut state,
        vec![Change::Agent(world.agent.clone().unwrap())],
        t0(),
        &mut seq,
    );
    let mut worlds = vec![(t0(), world.clone())];
    for (i, op) in ops.iter().enumerate() {
        let at = t0() + SignedDuration::from_secs(i as i64 + 1);
        let changes = step(&mut world, op, i);
        records.extend(record(&mut state, changes, at, &mut seq));
        worlds.push((at, world.clone()));
    }
    (records, worlds)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn the_state_rebuilt_at_any_time_is_the_world_then(
        ops in prop::collection::vec(op(), 0..60),
        pick in any::<prop::sample::Index>(),
        keep in 1usize..40,
    ) {
        let agent = AgentRef::new("ns", "b-gent");
        let (records, worlds) = live(&ops);
        let (at, world) = &worlds[pick.index(worlds.len())];
        let state = reconstruct(&agent, &records, Some(*at)).unwrap();
        assert_matches(&state, world);
        // the latest state, and the steps' diffs chain to it
        let last = reconstruct(&agent, &records, None).unwrap();
        assert_matches(&last, &worlds.last().unwrap().1);
        prop_assert_eq!(steps(&agent, &records).unwrap().len(), records.len());

        // retention by count folds the oldest records into a checkpoint: every time still
        // kept replays to the same state
        let retention = Retention { max_records: Some(keep), max_age: None };
        if let Plan::Compact { through_seq, checkpoint, .. } =
            retention.plan(&agent, &records, at.to_owned()).unwrap()
        {
            let mut kept = vec![*checkpoint];
            kept.extend(records.iter().filter(|r| r.seq > through_seq).cloned());
            prop_assert!(kept.len() <= keep.max(1));
            for (at, world) in worlds.iter().filter(|(t, _)| *t >= kept[0].at) {
                // every record of one operation shares its time, so the checkpoint (stamped
                // with the last dropped record's time) and the records kept after it rebuild
                // the world at each time from the checkpoint on
                let state = reconstruct(&agent, &kept, Some(*at)).unwrap();
                assert_matches(&state, world);
            }
        }
    }
}

#[test]
fn a_time_before_the_first_record_says_when_history_starts() {
    let agent = AgentRef::new("ns", "b-gent");
    let (records, _) = live(&[Op::Replicas(3)]);
    let early = t0() - SignedDuration::from_secs(60);
    let e = reconstruct(&agent, &records, Some(early)).unwrap_err();
    assert!(matches!(e, Error::BeforeHistory { .. }), "{e:?}");
    assert!(
        e.to_string().contains("starts at 2026-12-01T00:00:00Z"),
        "{e}"
    );
    let e = reconstruct(&agent, &[], None).unwrap_err();
    assert!(matches!(e, Error::NoHistory { .. }), "{e:?}");
    // another agent's record is refused, not folded in
    let other = AgentRef::new("ns", "c-gent");
    let e = reconstruct(&other, &records, None).unwrap_err();
    assert!(e.to_string().contains("not ns/c-gent's"), "{e}");
}

#[test]
fn a_life_steps_with_the_right_diffs() {
    let agent = AgentRef::new("ns", "b-gent");
    let ops = [
        Op::Phase(1),
        Op::File,
        Op::Decide(0, 2, 0),
        Op::Execute(0, true),
        Op::Replicas(3),
        Op::Verdict(1),
        Op::Delete,
    ];
    let (records, _) = live(&ops);
    let kinds: Vec<&str> = records.iter().map(|r| r.kind.name()).collect();
    assert_eq!(
        kinds,
        [
            "specChanged",
            "phaseChanged",
            "proposalFiled",
            "proposalDecided",
            "proposalDecided",
            "proposalExecuted",
            "specChanged",
            "verdict",
            "deleted"
        ]
    );
    let steps = steps(&agent, &records).unwrap();
    let scaled = &steps[6];
    assert_eq!(
        scaled.diff,
        json!([
            {"op": "replace", "path": "/generation", "value": 2},
            {"op": "replace", "path": "/spec/replicas", "value": 3}
        ])
    );
    assert_eq!(
        steps[1].diff,
        json!([{"op": "add", "path": "/status/phase", "value": "Running"}])
    );
    assert_eq!(
        steps[8].diff,
        json!([{"op": "replace", "path": "/exists", "value": false}])
    );
    match &records[5].kind {
        RecordKind::ProposalExecuted {
            success,
            before,
            patch,
            ..
        } => {
            assert!(success);
            assert_eq!(before.as_ref().unwrap(), &json!({"spec": {"replicas": 1}}));
            assert_eq!(patch.as_ref().unwrap()["type"], "merge");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn retention_by_age_forgets_a_deleted_agent_and_checkpoints_a_living_one() {
    let agent = AgentRef::new("ns", "b-gent");
    let day = Duration::from_secs(24 * 3600);
    let retention = Retention {
        max_records: None,
        max_age: Some(day),
    };
    let (records, _) = live(&[Op::Replicas(2), Op::Phase(1)]);
    let later = t0() + SignedDuration::from_hours(48);
    match retention.plan(&agent, &records, later).unwrap() {
        Plan::Compact {
            checkpoint,
            dropped,
            ..
        } => {
            assert_eq!(dropped, records.len());
            let state = reconstruct(&agent, &[*checkpoint], None).unwrap();
            assert_eq!(state.spec["replicas"], 2);
        }
        other => panic!("{other:?}"),
    }
    let (records, _) = live(&[Op::Replicas(2), Op::Delete]);
    assert_eq!(
        retention.plan(&agent, &records, later).unwrap(),
        Plan::Forget
    );
    assert_eq!(retention.plan(&agent, &records, t0()).unwrap(), Plan::Keep);
}
