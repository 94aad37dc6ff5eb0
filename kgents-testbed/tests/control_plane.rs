//! The control plane on its own (etcd + kube-apiserver): API semantics, RBAC,
//! admission webhooks and restarts. One shared control plane serves every test
//! here except the restart test, which needs its own.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kgents_testbed::{Testbed, shared};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};

mod webhook;

/// Panics with the error's full message (it names scripts/testbed-build when
/// the binaries are missing, and quotes component logs when a start failed).
fn ok<T>(result: kgents_testbed::Result<T>) -> T {
    result.unwrap_or_else(|error| panic!("{error}"))
}

fn config_map(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"suite": "smoke"}},
        "data": {"value": value},
    }))
    .expect("valid ConfigMap")
}

#[tokio::test]
async fn server_reports_the_built_version() {
    let testbed = ok(shared().await);
    let client = ok(testbed.client().await);
    let info = client.apiserver_version().await.expect("GET /version");
    assert_eq!(info.git_version, testbed.kubernetes_version());
    assert_eq!(info.git_version, kgents_testbed::kubernetes_version());
    assert_eq!(format!("{}.{}", info.major, info.minor), {
        let v = kgents_testbed::kubernetes_version().trim_start_matches('v');
        v.rsplit_once('.').expect("x.y.z").0.to_string()
    });
}

#[tokio::test]
async fn config_map_create_get_list_watch_apply_delete() {
    let testbed = ok(shared().await);
    let namespace = ok(testbed.create_namespace("smoke").await);
    let api: Api<ConfigMap> = Api::namespaced(ok(testbed.client().await), &namespace);

    let created = api
        .create(&PostParams::default(), &config_map("alpha", "1"))
        .await
        .expect("create");
    let fetched = api.get("alpha").await.expect("get");
    assert_eq!(fetched.metadata.uid, created.metadata.uid);
    assert_eq!(
        fetched
            .data
            .as_ref()
            .and_then(|d| d.get("value"))
            .map(String::as_str),
        Some("1")
    );

    let listed = api
        .list(&ListParams::default().labels("suite=smoke"))
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 1);
    let version = listed
        .metadata
        .resource_version
        .expect("list resourceVersion");

    let mut events = api
        .watch(
            &WatchParams::default().labels("suite=smoke").timeout(60),
            &version,
        )
        .await
        .expect("watch")
        .boxed();

    let applied = api
        .patch(
            "alpha",
            &PatchParams::apply("kgents-testbed-smoke").force(),
            &Patch::Apply(config_map("alpha", "2")),
        )
        .await
        .expect("server-side apply");
    assert_eq!(
        applied
            .data
            .as_ref()
            .and_then(|d| d.get("value"))
            .map(String::as_str),
        Some("2")
    );
    let managers: Vec<_> = applied
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.operation.as_deref() == Some("Apply"))
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, ["kgents-testbed-smoke"]);

    api.delete("alpha", &DeleteParams::default())
        .await
        .expect("delete");

    let mut seen = Vec::new();
    while seen.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(30), events.try_next())
            .await
            .expect("watch event within 30 s")
            .expect("watch stream")
            .expect("watch still open");
        match event {
            WatchEvent::Modified(cm) => {
                seen.push(format!("modified:{}", cm.data.unwrap_or_default()["value"]));
            }
            WatchEvent::Deleted(cm) => {
                seen.push(format!("deleted:{}", cm.metadata.name.unwrap_or_default()))
            }
            WatchEvent::Bookmark(_) => {}
            other => panic!("unexpected watch event {other:?}"),
        }
    }
    assert_eq!(seen, ["modified:2", "deleted:alpha"]);
    assert!(
        api.get_opt("alpha")
            .await
            .expect("get after delete")
            .is_none()
    );
}

fn is_forbidden(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 403)
}

#[tokio::test]
async fn rbac_applies_to_an_impersonated_service_account() {
    let testbed = ok(shared().await);
    let namespace = ok(testbed.create_namespace("rbac").await);
    let admin = ok(testbed.client().await);
    Api::<ConfigMap>::namespaced(admin.clone(), &namespace)
        .create(&PostParams::default(), &config_map("visible", "x"))
        .await
        .expect("admin creates");

    let agent: Api<ConfigMap> = Api::namespaced(
        ok(testbed.service_account_client(&namespace, "agent").await),
        &namespace,
    );
    let denied = agent
        .list(&ListParams::default())
        .await
        .expect_err("no Role yet");
    assert!(is_forbidden(&denied), "expected 403, got {denied:?}");
    let message = denied.to_string();
    assert!(
        message.contains(&format!("system:serviceaccount:{namespace}:agent")),
        "{message}"
    );

    let role: Role = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "read-config"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
    }))
    .expect("role");
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "agent-reads-config"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-config"},
        "subjects": [{"kind": "ServiceAccount", "name": "agent", "namespace": namespace}],
    }))
    .expect("binding");
    Api::<Role>::namespaced(admin.clone(), &namespace)
        .create(&PostParams::default(), &role)
        .await
        .expect("create role");
    Api::<RoleBinding>::namespaced(admin, &namespace)
        .create(&PostParams::default(), &binding)
        .await
        .expect("create binding");

    // The authorizer reads RBAC objects from an informer: allow a moment.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let listed = loop {
        match agent.list(&ListParams::default()).await {
            Ok(list) => break list,
            Err(error) if is_forbidden(&error) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("list with a Role: {error}"),
        }
    };
    assert_eq!(listed.items.len(), 1);
    // The Role grants reads only.
    let write = agent
        .create(&PostParams::default(), &config_map("written", "y"))
        .await
        .expect_err("create is not granted");
    assert!(is_forbidden(&write), "expected 403, got {write:?}");
    // Another ServiceAccount in the same namespace is still denied.
    let other: Api<ConfigMap> = Api::namespaced(
        ok(testbed.service_account_client(&namespace, "other").await),
        &namespace,
    );
    assert!(
        other
            .list(&ListParams::default())
            .await
            .is_err_and(|e| is_forbidden(&e))
    );
}

#[tokio::test]
async fn a_validating_webhook_served_by_the_test_denies_requests() {
    let testbed = ok(shared().await);
    webhook::denies_config_maps(testbed).await;
}

#[tokio::test]
async fn data_survives_an_apiserver_restart() {
    let testbed = ok(Testbed::builder().start().await);
    let namespace = ok(testbed.create_namespace("restart").await);
    {
        let api: Api<ConfigMap> = Api::namespaced(ok(testbed.client().await), &namespace);
        api.create(
            &PostParams::default(),
            &config_map("kept", "before-restart"),
        )
        .await
        .expect("create");
    }
    testbed.stop_apiserver();
    let down: Api<ConfigMap> = Api::namespaced(ok(testbed.client().await), &namespace);
    assert!(down.get("kept").await.is_err(), "the apiserver is stopped");

    ok(testbed.start_apiserver().await);
    let api: Api<ConfigMap> = Api::namespaced(ok(testbed.client().await), &namespace);
    let kept = api.get("kept").await.expect("get after restart");
    assert_eq!(kept.data.unwrap_or_default()["value"], "before-restart");

    ok(testbed.restart_apiserver().await);
    let names: Vec<String> = api
        .list(&ListParams::default())
        .await
        .expect("list after second restart")
        .items
        .into_iter()
        .filter_map(|cm| cm.metadata.name)
        .collect();
    assert!(names.contains(&"kept".to_string()), "{names:?}");
    // `kube-root-ca.crt` is published only by a controller-manager; none runs here.
    assert_eq!(names, ["kept"]);
}

#[tokio::test]
async fn crds_install_idempotently_and_serve_custom_objects() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

    let testbed = ok(shared().await);
    let crd: CustomResourceDefinition = serde_json::from_value(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.testbed.kgents.dev"},
        "spec": {
            "group": "testbed.kgents.dev",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {
                        "type": "object",
                        "required": ["size"],
                        "properties": {"size": {"type": "integer", "minimum": 1}},
                    }},
                }},
            }],
        },
    }))
    .expect("valid CRD");
    ok(testbed.install_crds(std::slice::from_ref(&crd)).await);
    // A second apply of the same CRD is a no-op, not an error.
    ok(testbed.install_crds(&[crd]).await);

    let namespace = ok(testbed.create_namespace("crd").await);
    let resource =
        ApiResource::from_gvk(&GroupVersionKind::gvk("testbed.kgents.dev", "v1", "Widget"));
    let widgets: Api<DynamicObject> =
        Api::namespaced_with(ok(testbed.client().await), &namespace, &resource);
    let good: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "testbed.kgents.dev/v1", "kind": "Widget",
        "metadata": {"name": "w1"}, "spec": {"size": 3},
    }))
    .expect("widget");
    widgets
        .create(&PostParams::default(), &good)
        .await
        .expect("create widget");
    let bad: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "testbed.kgents.dev/v1", "kind": "Widget",
        "metadata": {"name": "w2"}, "spec": {"size": 0},
    }))
    .expect("widget");
    let rejected = widgets
        .create(&PostParams::default(), &bad)
        .await
        .expect_err("the schema requires size >= 1");
    assert!(
        matches!(&rejected, kube::Error::Api(s) if s.code == 422),
        "{rejected:?}"
    );
}
