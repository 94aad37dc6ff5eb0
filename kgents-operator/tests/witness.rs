//! The witness record on the testbed: the in-process operator records an agent's life into the
//! embedded store (created, scaled, its phase moving, a proposal filed against it, deleted);
//! changes made while the operator is stopped are recorded once when it starts again and
//! nothing is recorded twice; the record then replays step by step with the right diffs.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kgents_crds::{Agent, Proposal};
use kgents_operator::witness::WitnessSetting;
use kgents_operator::{ProbeConfig, agent as agent_controller};
use kgents_seance::{AgentRef, RecordKind, RedbWitnessStore, TimeRange, WitnessStore, steps};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use support::{Operator, eventually, run_options, testbed_with_nodes};

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
    let mut options = run_options(ns, &[agent_controller::CONTROLLER], ProbeConfig::default());
    options.config.witness = WitnessSetting::File(path.to_owned());
    Operator::start(client.clone(), options)
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
    let client = testbed.client().await.expect("client");
    let ns = "witness";
    let _ = Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("witness.redb");
    let agents: Api<Agent> = Api::namespaced(client.clone(), ns);
    let proposals: Api<Proposal> = Api::namespaced(client.clone(), ns);
    let who = AgentRef::new(ns, "b-gent");

    // 1. created, and its phase moves as the operator brings it up
    let operator = start(&client, ns, &path);
    support::create_agent(&agents, &support::agent("b-gent", json!({"replicas": 1}))).await;
    records_until(&path, &who, "the agent's creation and phase", |r| {
        r.iter()
            .any(|r| matches!(r.kind, RecordKind::PhaseChanged { .. }))
    })
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

    // 4. restarted: what changed while it was down is recorded once, nothing twice
    let operator = start(&client, ns, &path);
    let after = records_until(&path, &who, "the changes made while down", |r| {
        spec_replicas(r).last() == Some(&2)
            && r.iter()
                .any(|r| matches!(r.kind, RecordKind::ProposalFiled { .. }))
    })
    .await;
    assert_eq!(
        &after[..before_restart.len()],
        &before_restart[..],
        "the record before the restart is kept as it was"
    );
    assert_eq!(spec_replicas(&after), [1, 3, 2], "{:#?}", kinds(&after));
    // 5. deleted
    agents
        .delete("b-gent", &DeleteParams::default())
        .await
        .expect("delete");
    let all = records_until(&path, &who, "the deletion", |r| {
        r.iter().any(|r| matches!(r.kind, RecordKind::Deleted))
    })
    .await;
    operator.stop().await;
    assert_eq!(
        all.iter()
            .filter(|r| matches!(r.kind, RecordKind::ProposalFiled { .. }))
            .count(),
        1,
        "{:#?}",
        kinds(&all)
    );
    assert_eq!(
        all.iter()
            .filter(|r| matches!(r.kind, RecordKind::Deleted))
            .count(),
        1
    );
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));

    // 6. replayed step by step: the scale diffs, and the state before the deletion
    let steps = steps(&who, &all).unwrap();
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
    assert_eq!(scaled, [Some(json!(3)), Some(json!(2))]);
    let last = steps.last().unwrap();
    assert_eq!(
        last.diff,
        json!([{"op": "replace", "path": "/exists", "value": false}])
    );
    let before_delete = all[all.len() - 2].at;
    let state = kgents_seance::reconstruct(&who, &all, Some(before_delete)).unwrap();
    assert!(state.exists);
    assert_eq!(state.spec["replicas"], 2);
    assert!(state.proposals.contains_key("scale-b"));
    assert!(state.status.get("phase").is_some(), "{:?}", state.status);
    assert!(state.children.deployment.is_some(), "{:?}", state.children);
}
