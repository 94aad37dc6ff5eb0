//! Benchmark of decoding what the operator watches, whole and with the managed-fields trim
//! (`kgents_logos::wire`).
//!
//! The document is a watch event of an Agent's Deployment as the API server sends it: the
//! operator's planned Deployment with the metadata the server adds, a status as
//! kube-controller-manager writes it, and two managed-field entries (the operator's apply of
//! the whole spec, the controller-manager's status update) whose `fieldsV1` trees are derived
//! from the object the way the server derives them (`f:` per field, `k:` per keyed list item).
//!
//! - `wire/decode_deployment_event_whole`: `serde_json` into kube's `WatchEvent<Deployment>`,
//!   as kube's watcher does;
//! - `wire/trim_then_decode_deployment_event`: [`strip_managed_fields`] and then the same
//!   decode (what the trimmed client costs per event);
//! - `wire/trim_deployment_event`: the scan alone;
//! - `wire/trim_event_without_managed_fields`: the scan of a document with nothing to cut.
//!
//! Run: `cargo bench --bench wire -- --quick`.
//!
//! [`strip_managed_fields`]: kgents::kgents_logos::wire::strip_managed_fields

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::api::apps::v1::Deployment;
use kgents::kgents_crds::Agent;
use kgents::kgents_logos::wire::strip_managed_fields;
use kgents::kgents_operator::agent::plan::{self, AgentRef, PlanConfig};
use kube::core::WatchEvent;
use serde_json::{Map, Value, json};

/// The `fieldsV1` tree of a JSON value: every object member as `f:<name>`, every list item
/// with a `name` (containers, ports, env) as `k:{"name":…}`, a leaf as `{}`.
fn fields_v1(value: &Value) -> Value {
    match value {
        Value::Object(members) => {
            let mut tree = Map::new();
            for (key, member) in members {
                tree.insert(format!("f:{key}"), fields_v1(member));
            }
            Value::Object(tree)
        }
        Value::Array(items) => {
            let mut tree = Map::new();
            for item in items {
                if let Some(name) = item.get("name").and_then(Value::as_str) {
                    let mut entry = fields_v1(item);
                    if let Value::Object(e) = &mut entry {
                        e.insert(".".into(), json!({}));
                    }
                    tree.insert(format!("k:{{\"name\":\"{name}\"}}"), entry);
                }
            }
            Value::Object(tree)
        }
        _ => json!({}),
    }
}

/// The watch event of a Ready Agent's Deployment, as the API server sends it.
fn deployment_event() -> Vec<u8> {
    let agent = Agent::new(
        "agent-0042",
        serde_json::from_value(json!({"genus": "B", "replicas": 1})).expect("an Agent spec"),
    );
    let children = plan::plan(
        &AgentRef {
            name: "agent-0042",
            namespace: "scale",
            uid: "0b0b5f6e-3c1d-4d9a-9a58-5a2b2f4f8c11",
        },
        &agent.spec,
        &PlanConfig {
            placeholder_image: "registry.k8s.io/pause:3.10",
            api_server: &[],
            symbiont_image: kgents::kgents_operator::DEFAULT_SYMBIONT_IMAGE,
        },
    )
    .expect("the Agent plans");
    let mut object = serde_json::to_value(&children.deployment).expect("the Deployment as JSON");
    let applied = fields_v1(&json!({
        "metadata": {"labels": object["metadata"]["labels"], "annotations": object["metadata"]["annotations"],
            "ownerReferences": object["metadata"]["ownerReferences"]},
        "spec": object["spec"],
    }));
    let status = json!({
        "observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1,
        "availableReplicas": 1,
        "conditions": [
            {"type": "Available", "status": "True", "lastUpdateTime": "2026-12-03T10:00:05Z",
             "lastTransitionTime": "2026-12-03T10:00:05Z", "reason": "MinimumReplicasAvailable",
             "message": "Deployment has minimum availability."},
            {"type": "Progressing", "status": "True", "lastUpdateTime": "2026-12-03T10:00:05Z",
             "lastTransitionTime": "2026-12-03T10:00:01Z", "reason": "NewReplicaSetAvailable",
             "message": "ReplicaSet \"agent-0042-6d4f8b7c9\" has successfully progressed."}
        ]
    });
    let status_fields = fields_v1(&json!({
        "metadata": {"annotations": {"deployment.kubernetes.io/revision": "1"}},
        "status": status,
    }));
    let meta = object["metadata"].as_object_mut().expect("metadata");
    meta.insert("uid".into(), json!("6f1c2a8e-2b7d-4c55-8f0e-9d3b1a7c5e42"));
    meta.insert("resourceVersion".into(), json!("184467"));
    meta.insert("generation".into(), json!(1));
    meta.insert("creationTimestamp".into(), json!("2026-12-03T10:00:00Z"));
    meta.insert(
        "managedFields".into(),
        json!([
            {"manager": "kgents-operator", "operation": "Apply", "apiVersion": "apps/v1",
             "time": "2026-12-03T10:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": applied},
            {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1",
             "time": "2026-12-03T10:00:05Z", "fieldsType": "FieldsV1", "fieldsV1": status_fields,
             "subresource": "status"}
        ]),
    );
    object["status"] = status;
    serde_json::to_vec(&json!({"type": "MODIFIED", "object": object})).expect("the event")
}

fn decode(bytes: &[u8]) -> WatchEvent<Deployment> {
    serde_json::from_slice(bytes).expect("a watch event")
}

fn bench(c: &mut Criterion) {
    let event = deployment_event();
    let trimmed = strip_managed_fields(&event).expect("the event has managed fields");
    eprintln!(
        "wire: the Deployment event is {} bytes, {} without managed fields",
        event.len(),
        trimmed.len()
    );
    let mut group = c.benchmark_group("wire");
    group.bench_function("decode_deployment_event_whole", |b| {
        b.iter(|| decode(black_box(&event)))
    });
    group.bench_function("trim_then_decode_deployment_event", |b| {
        b.iter(|| {
            let cut = strip_managed_fields(black_box(&event));
            decode(cut.as_deref().unwrap_or(&event))
        })
    });
    group.bench_function("trim_deployment_event", |b| {
        b.iter(|| strip_managed_fields(black_box(&event)))
    });
    group.bench_function("trim_event_without_managed_fields", |b| {
        b.iter(|| strip_managed_fields(black_box(&trimmed)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
