//! Workloads on fake nodes: kube-controller-manager, kube-scheduler and kwok
//! turn a Deployment into Running pods, and garbage collection removes them.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kgents_testbed::{SHARED_NODES, shared_with_nodes};
use kube::api::{Api, DeleteParams, ListParams, PostParams};

fn ok<T>(result: kgents_testbed::Result<T>) -> T {
    result.unwrap_or_else(|error| panic!("{error}"))
}

/// Polls `check` every 250 ms until it returns `Some`, or panics after `seconds`.
async fn eventually<T, F, Fut>(what: &str, seconds: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {seconds} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn fake_nodes_are_ready() {
    let testbed = ok(shared_with_nodes().await);
    let nodes: Api<Node> = Api::all(ok(testbed.client().await));
    let list = nodes
        .list(&ListParams::default())
        .await
        .expect("list nodes");
    assert_eq!(list.items.len(), SHARED_NODES);
    for node in list.items {
        let ready = node
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        assert!(ready, "node {:?} is not Ready", node.metadata.name);
    }
}

#[tokio::test]
async fn a_deployment_gets_running_pods_and_is_garbage_collected() {
    let testbed = ok(shared_with_nodes().await);
    let namespace = ok(testbed.create_namespace("deploy").await);
    let client = ok(testbed.client().await);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &namespace);
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.invalid/web:1"}]},
            },
        },
    }))
    .expect("valid Deployment");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");

    eventually("availableReplicas == 3", 120, || async {
        let status = deployments.get("web").await.ok()?.status?;
        (status.available_replicas == Some(3)).then_some(())
    })
    .await;
    let selector = ListParams::default().labels("app=web");
    let running = pods.list(&selector).await.expect("list pods").items;
    assert_eq!(running.len(), 3);
    for pod in &running {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        assert_eq!(phase, Some("Running"), "pod {:?}", pod.metadata.name);
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or_default();
        assert!(node.starts_with("kwok-node-"), "pod bound to {node:?}");
        // The ServiceAccount admission plugin is on with a controller-manager.
        assert_eq!(
            pod.spec
                .as_ref()
                .and_then(|s| s.service_account_name.as_deref()),
            Some("default")
        );
    }
    assert_eq!(
        replica_sets
            .list(&ListParams::default())
            .await
            .expect("list rs")
            .items
            .len(),
        1
    );

    deployments
        .delete("web", &DeleteParams::background())
        .await
        .expect("delete deployment");
    eventually(
        "ReplicaSets and pods to be garbage-collected",
        120,
        || async {
            let sets = replica_sets
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .len();
            let left = pods.list(&selector).await.ok()?.items.len();
            (sets == 0 && left == 0).then_some(())
        },
    )
    .await;
}

/// The Ready condition and the condition of readiness gate `gate` of pod `name`.
async fn ready_and_gate(
    pods: &Api<Pod>,
    name: &str,
    gate: &str,
) -> Option<(String, Option<String>)> {
    let pod = pods.get(name).await.ok()?;
    let status = pod.status?;
    if status.phase.as_deref() != Some("Running") {
        return None;
    }
    let conditions = status.conditions.unwrap_or_default();
    let status_of = |type_: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| c.status.clone())
    };
    Some((status_of("Ready")?, status_of(gate)))
}

/// Sets readiness-gate condition `gate` of pod `name` to `status`, as the gate's controller does.
async fn set_gate(pods: &Api<Pod>, name: &str, gate: &str, status: &str) {
    let patch = serde_json::json!({"status": {"conditions": [{
        "type": gate,
        "status": status,
        "reason": "SetByTest",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }]}});
    pods.patch_status(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Strategic(&patch),
    )
    .await
    .expect("patch the gate condition");
}

/// kwok acts like a kubelet with readiness gates: it never writes a gate's condition (its
/// controller owns it), and the pod is Ready exactly while every gate condition is True.
#[tokio::test]
async fn readiness_gate_conditions_belong_to_their_controller() {
    const GATE: &str = "example.com/gate";
    let testbed = ok(shared_with_nodes().await);
    let namespace = ok(testbed.create_namespace("gates").await);
    let pods: Api<Pod> = Api::namespaced(ok(testbed.client().await), &namespace);
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "gated"},
        "spec": {
            "readinessGates": [{"conditionType": GATE}],
            "containers": [{"name": "main", "image": "registry.invalid/main:1"}],
        },
    }))
    .expect("valid Pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");

    // Running, containers ready, no gate condition yet: not Ready, and kwok wrote no gate.
    let (ready, gate) = eventually("the gated pod to run", 120, || async {
        ready_and_gate(&pods, "gated", GATE).await
    })
    .await;
    assert_eq!((ready.as_str(), gate), ("False", None));
    let reason = pods
        .get("gated")
        .await
        .expect("get pod")
        .status
        .and_then(|s| s.conditions)
        .and_then(|c| c.into_iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.reason);
    assert_eq!(reason.as_deref(), Some("ReadinessGatesNotReady"));

    // The controller opens the gate: Ready follows, the condition stays as set.
    set_gate(&pods, "gated", GATE, "True").await;
    eventually("Ready True with the gate True", 60, || async {
        let state = ready_and_gate(&pods, "gated", GATE).await?;
        (state == ("True".to_owned(), Some("True".to_owned()))).then_some(())
    })
    .await;

    // And closes it: Ready follows again, nobody reopens the gate.
    set_gate(&pods, "gated", GATE, "False").await;
    eventually("Ready False with the gate False", 60, || async {
        let state = ready_and_gate(&pods, "gated", GATE).await?;
        (state == ("False".to_owned(), Some("False".to_owned()))).then_some(())
    })
    .await;
    // A pod without readiness gates is untouched by this: it is Ready as before.
    let plain: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "plain"},
        "spec": {"containers": [{"name": "main", "image": "registry.invalid/main:1"}]},
    }))
    .expect("valid Pod");
    pods.create(&PostParams::default(), &plain)
        .await
        .expect("create pod");
    eventually("the plain pod to be Ready", 120, || async {
        let (ready, _) = ready_and_gate(&pods, "plain", GATE).await?;
        (ready == "True").then_some(())
    })
    .await;
    let (ready, gate) = ready_and_gate(&pods, "gated", GATE)
        .await
        .expect("the gated pod still runs");
    assert_eq!((ready.as_str(), gate.as_deref()), ("False", Some("False")));
}
