//! The witness record on the testbed: the in-process operator records an agent's life into the
//! embedded store (created, scaled by hand, its phase and conditions moving, scaled again by a
//! proposal filed against it that is approved and executed, its cognitive probes' verdict
//! turning HEALTHY and then DEGRADED on a fake model, a pheromone it emitted, the Events the
//! operator published about it, deleted); changes made while the operator is stopped are
//! recorded once when it starts again and nothing is recorded twice, across two restarts; the
//! record then replays step by step with the right diffs.

mod support;
mod support_cognitive;

use std::time::Duration;

use kgents_crds::agent::CognitiveHealth;
use kgents_crds::{Agent, Pheromone, Proposal};
use kgents_operator::witness::WitnessSetting;
use kgents_operator::{
    ProbeConfig, agent as agent_controller, pheromone as pheromone_controller,
    proposal as proposal_controller,
};
use kgents_seance::{AgentRef, RecordKind, RedbWitnessStore, TimeRange, WitnessStore, steps};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use support::{Operator, eventually, run_options, testbed_with_nodes};
use support_cognitive::fake_model::{Behaviour, FakeModel, Wire};
use support_cognitive::{API_KEY, probed_agent, wait_health};

/// How long the probes (every 5 s, three in a row to change the verdict) may take to judge.
const PROBED: Duration = Duration::from_secs(120);

fn kinds(records: &[kgents_seance::WitnessRecord]) -> Vec<String> {
    records.iter().map(|r| r.kind.summary()).collect()
}

async fn records_until(
    path: &std::path::Path,
    agent: &AgentRef,
    what: &str,
    done: impl Fn(&[kgents_seance::WitnessRecord]) -> bool,
) -> Vec<kgents_seance::WitnessRecord> {
    eventually(what, Duration::from_secs(30), || async {
        let store = RedbWitnessStore::open_read_only(path).ok()?;
        let records = store.read(agent, TimeRange::ALL).await.ok()?;
        done(&records).then_some(records)
    })
    .await
}

fn start(client: &Client, ns: &str, path: &std::path::Path) -> Operator {
    let mut options = run_options(
        ns,
        &[
            agent_controller::CONTROLLER,
            proposal_controller::CONTROLLER,
            pheromone_controller::CONTROLLER,
            kgents_operator::cognitive::CONTROLLER,
        ],
        ProbeConfig::default(),
    );
    options.config.witness = WitnessSetting::File(path.to_owned());
    Operator::start(client.clone(), options)
}

/// The verdict transitions recorded, as (from, to).
fn verdicts(records: &[kgents_seance::WitnessRecord]) -> Vec<(Option<String>, Option<String>)> {
    records
        .iter()
        .filter_map(|r| match &r.kind {
            RecordKind::Verdict { from, to } => Some((from.clone(), to.clone())),
            _ => None,
        })
        .collect()
}

fn spec_replicas(records: &[kgents_seance::WitnessRecord]) -> Vec<i64> {
    let agent = &records[0].agent;
    let mut out = Vec::new();
    for (i, record) in records.iter().enumerate() {
        if matches!(record.kind, RecordKind::SpecChanged { .. }) {
            let state = kgents_seance::reconstruct(agent, &records[..=i], None).unwrap();
            out.push(state.spec["replicas"].as_i64().unwrap_or(-1));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_life_is_recorded_across_a_restart_and_replays_step_by_step() {
    let testbed = testbed_with_nodes().await;
    // A fresh namespace holding the Secret that keys the agent's model.
    let (ns, client) = support_cognitive::namespace(testbed, "witness").await;
    let ns = ns.as_str();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("witness.redb");
    let agents: Api<Agent> = Api::namespaced(client.clone(), ns);
    let proposals: Api<Proposal> = Api::namespaced(client.clone(), ns);
    let who = AgentRef::new(ns, "b-gent");
    // Its model: a fake that answers the cognitive probes.
    let model = FakeModel::start(Wire::OpenAi, API_KEY).await;

    // 1. created, its phase moves as the operator brings it up, and its probes pass
    let operator = start(&client, ns, &path);
    support::create_agent(
        &agents,
        &probed_agent("b-gent", "openai", &model.endpoint(), 1, json!({})),
    )
    .await;
    wait_health(&agents, "b-gent", CognitiveHealth::Healthy, PROBED).await;
    records_until(
        &path,
        &who,
        "the agent's creation, phase and verdict",
        |r| {
            r.iter()
                .any(|r| matches!(r.kind, RecordKind::PhaseChanged { .. }))
                && verdicts(r)
                    .iter()
                    .any(|(_, to)| to.as_deref() == Some("HEALTHY"))
        },
    )
    .await;
    // 2. scaled
    agents
        .patch(
            "b-gent",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("scale to 3");
    records_until(&path, &who, "the scale to 3", |r| {
        spec_replicas(r).last() == Some(&3)
    })
    .await;
    // 2b. its model starts answering wrong: the verdict turns DEGRADED; then right again
    model.set(Behaviour::Unhealthy);
    wait_health(&agents, "b-gent", CognitiveHealth::Degraded, PROBED).await;
    records_until(&path, &who, "the verdict turning DEGRADED", |r| {
        verdicts(r).contains(&(Some("HEALTHY".to_owned()), Some("DEGRADED".to_owned())))
    })
    .await;
    model.set(Behaviour::Correct);
    operator.stop().await;
    let before_restart = {
        let store = RedbWitnessStore::open_read_only(&path).unwrap();
        store.read(&who, TimeRange::ALL).await.unwrap()
    };

    // 3. while the operator is down: scaled again, and a proposal filed against it
    agents
        .patch(
            "b-gent",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .expect("scale to 2");
    let proposal: Proposal = serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Proposal",
        "metadata": {"name": "scale-b"},
        "spec": {"proposer": "alice", "changeType": "AGENT_SCALE",
                 "target": {"apiVersion": "kgents.io/v1", "kind": "Agent", "name": "b-gent"},
                 "patch": {"type": "merge", "content": "{\"spec\":{\"replicas\":4}}"}},
    }))
    .unwrap();
    proposals
        .create(&PostParams::default(), &proposal)
        .await
        .expect("proposal filed");

    // 4. restarted: what changed while it was down is recorded once, nothing twice; the
    //    proposal (LOW risk: auto-approved) is decided and executed: replicas 2 → 4
    let operator = start(&client, ns, &path);
    let after = records_until(
        &path,
        &who,
        "the changes made while down and the proposal executed",
        |r| {
            spec_replicas(r).last() == Some(&4)
                && r.iter()
                    .any(|r| matches!(r.kind, RecordKind::ProposalExecuted { .. }))
        },
    )
    .await;
    assert_eq!(
        &after[..before_restart.len()],
        &before_restart[..],
        "the record before the restart is kept as it was"
    );
    assert_eq!(spec_replicas(&after), [1, 3, 2, 4], "{:#?}", kinds(&after));
    // 5. it emits a pheromone; the operator's Events about it are recorded as they come
    let pheromone: Pheromone = serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Pheromone",
        "metadata": {"name": "b-gent-warning"},
        "spec": {"type": "WARNING", "source": "b-gent", "target": "c-gent",
                 "initialIntensity": 0.8, "halfLifeMinutes": 30.0, "payload": "queue depth rising"},
    }))
    .unwrap();
    Api::<Pheromone>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pheromone)
        .await
        .expect("pheromone emitted");
    records_until(&path, &who, "the pheromone and an Event", |r| {
        r.iter()
            .any(|r| matches!(r.kind, RecordKind::PheromoneEmitted { .. }))
            && r.iter().any(|r| matches!(r.kind, RecordKind::Event { .. }))
    })
    .await;
    // 6. deleted, then the operator restarted once more: nothing is recorded twice
    agents
        .delete("b-gent", &DeleteParams::default())
        .await
        .expect("delete");
    records_until(&path, &who, "the deletion", |r| {
        r.iter().any(|r| matches!(r.kind, RecordKind::Deleted))
    })
    .await;
    operator.stop().await;
    let before_second_restart = {
        let store = RedbWitnessStore::open_read_only(&path).unwrap();
        store.read(&who, TimeRange::ALL).await.unwrap()
    };
    let operator = start(&client, ns, &path);
    // Nothing to wait for but time: the restarted recorder lists every Agent, Proposal,
    // Pheromone and Event within a second or two and must find nothing new to write.
    tokio::time::sleep(Duration::from_secs(5)).await;
    operator.stop().await;
    let all = {
        let store = RedbWitnessStore::open_read_only(&path).unwrap();
        store.read(&who, TimeRange::ALL).await.unwrap()
    };
    assert_eq!(
        kinds(&all),
        kinds(&before_second_restart),
        "nothing recorded twice across the second restart"
    );
    let count = |f: fn(&RecordKind) -> bool| all.iter().filter(|r| f(&r.kind)).count();
    assert_eq!(
        count(|k| matches!(k, RecordKind::ProposalFiled { .. })),
        1,
        "{:#?}",
        kinds(&all)
    );
    assert_eq!(
        count(|k| matches!(k, RecordKind::ProposalExecuted { .. })),
        1
    );
    assert_eq!(
        count(|k| matches!(k, RecordKind::PheromoneEmitted { .. })),
        1
    );
    assert_eq!(count(|k| matches!(k, RecordKind::Deleted)), 1);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));

    // 7. replayed step by step
    let steps = steps(&who, &all).unwrap();
    // the verdicts: HEALTHY, then DEGRADED, each a step whose diff sets it
    let verdict_steps: Vec<_> = steps
        .iter()
        .filter(|s| matches!(s.record.kind, RecordKind::Verdict { .. }))
        .map(|s| s.diff.clone())
        .collect();
    let sets = |verdict: &str| {
        let verdict = json!(verdict);
        move |diff: &serde_json::Value| {
            diff.as_array().is_some_and(|ops| {
                ops.len() == 1
                    && ops[0]["path"] == "/status/cognitiveHealth"
                    && ops[0]["value"] == verdict
            })
        }
    };
    let first_healthy = verdict_steps.iter().position(sets("HEALTHY"));
    let then_degraded = verdict_steps.iter().position(sets("DEGRADED"));
    assert!(
        matches!((first_healthy, then_degraded), (Some(h), Some(d)) if h < d),
        "{verdict_steps:#?}"
    );
    // the spec diffs: created, then 3 and 2 by hand, then 4 by the proposal
    let scaled: Vec<_> = steps
        .iter()
        .filter(|s| matches!(s.record.kind, RecordKind::SpecChanged { .. }))
        .skip(1)
        .map(|s| {
            s.diff
                .as_array()
                .unwrap()
                .iter()
                .find(|op| op["path"] == "/spec/replicas")
                .map(|op| op["value"].clone())
        })
        .collect();
    assert_eq!(scaled, [Some(json!(3)), Some(json!(2)), Some(json!(4))]);
    // phase transitions: the first one sets the phase
    let phases: Vec<_> = steps
        .iter()
        .filter(|s| matches!(s.record.kind, RecordKind::PhaseChanged { .. }))
        .collect();
    assert!(!phases.is_empty(), "{:#?}", kinds(&all));
    assert!(
        phases[0]
            .diff
            .as_array()
            .unwrap()
            .iter()
            .any(|op| op["path"] == "/status/phase"),
        "{:?}",
        phases[0].diff
    );
    // condition changes the operator wrote (Ready and the others), each a diff of the conditions
    let conditions: Vec<_> = steps
        .iter()
        .filter(|s| matches!(s.record.kind, RecordKind::ConditionChanged { .. }))
        .collect();
    assert!(!conditions.is_empty(), "{:#?}", kinds(&all));
    assert!(conditions.iter().all(|s| {
        s.diff.as_array().unwrap().iter().all(|op| {
            op["path"]
                .as_str()
                .unwrap()
                .starts_with("/status/conditions")
        })
    }));
    // the proposal: filed, decided (approved, then merged), executed with its patch and the
    // state before it
    let position = |f: &dyn Fn(&RecordKind) -> bool| {
        all.iter()
            .position(|r| f(&r.kind))
            .unwrap_or_else(|| panic!("{:#?}", kinds(&all)))
    };
    let filed = position(&|k| matches!(k, RecordKind::ProposalFiled { .. }));
    let approved = position(
        &|k| matches!(k, RecordKind::ProposalDecided { to: Some(to), .. } if to == "Approved"),
    );
    let executed = position(&|k| matches!(k, RecordKind::ProposalExecuted { .. }));
    let merged = position(
        &|k| matches!(k, RecordKind::ProposalDecided { to: Some(to), .. } if to == "Merged"),
    );
    assert!(filed < approved && approved < executed && approved < merged);
    let RecordKind::ProposalExecuted {
        proposal,
        success,
        patch,
        before,
        ..
    } = &all[executed].kind
    else {
        unreachable!()
    };
    assert_eq!(proposal, "scale-b");
    assert!(success);
    assert_eq!(
        patch.as_ref().unwrap()["content"],
        json!("{\"spec\":{\"replicas\":4}}")
    );
    assert_eq!(
        before.as_ref().unwrap()["spec"]["replicas"],
        2,
        "{before:?}"
    );
    let proposal_steps = steps[filed].diff.as_array().unwrap();
    assert!(
        proposal_steps
            .iter()
            .any(|op| op["path"].as_str().unwrap().starts_with("/proposals")),
        "{proposal_steps:?}"
    );
    // the pheromone: in the rebuilt state from its step on
    let emitted = position(&|k| matches!(k, RecordKind::PheromoneEmitted { .. }));
    let state = kgents_seance::reconstruct(&who, &all[..=emitted], None).unwrap();
    let rebuilt = state
        .pheromones
        .iter()
        .find(|p| p.name == "b-gent-warning")
        .expect("the pheromone is in the state");
    assert_eq!(rebuilt.target.as_deref(), Some("c-gent"));
    let before_emitted = kgents_seance::reconstruct(&who, &all[..emitted], None).unwrap();
    assert!(before_emitted.pheromones.is_empty());
    // an Event the operator published about it
    let event = position(&|k| matches!(k, RecordKind::Event { .. }));
    assert!(
        !steps[event].diff.as_array().unwrap().is_empty(),
        "an Event changes the state"
    );
    // deleted: the last step, and the state before it
    let last = steps.last().unwrap();
    assert_eq!(
        last.diff,
        json!([{"op": "replace", "path": "/exists", "value": false}])
    );
    let before_delete = all[all.len() - 2].at;
    let state = kgents_seance::reconstruct(&who, &all, Some(before_delete)).unwrap();
    assert!(state.exists);
    assert_eq!(state.spec["replicas"], 4);
    assert!(state.proposals.contains_key("scale-b"));
    assert!(state.status.get("phase").is_some(), "{:?}", state.status);
    assert!(state.children.deployment.is_some(), "{:?}", state.children);
}
