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
