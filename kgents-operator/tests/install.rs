//! `kgents infra init|status|teardown` on a real API server (the testbed with
//! kube-controller-manager, kube-scheduler and kwok's fake nodes).
//!
//! What the testbed can show: objects applied and their resourceVersions, the Deployment rolled
//! out by the real controller-manager onto fake nodes (kwok marks the pods Running and Ready
//! without running the image, so "available" here means scheduled and reported ready, not that
//! an operator serves), EndpointSlices for those pods, pods that cannot be scheduled (cordoned
//! nodes), and the webhook configuration as the operator would register it. What it cannot
//! show: an operator process inside a pod (no container runtime), so the webhook registration
//! never appears by itself here.
//!
//! Cluster-scoped names (CRDs, the ClusterRole, the webhook configuration) are fixed, so the
//! lifecycle is one test whose steps run in order.

use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolumeClaim};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kgents_crds::{Agent, Memory};
use kgents_operator::admission::server::webhook_configuration;
use kgents_operator::install::plan::{self, InstallSettings};
use kgents_operator::install::{
    self, Change, FailureKind, Health, InstallError, Removal, StatusReport, TeardownOptions,
};
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(90);

async fn testbed() -> &'static kgents_testbed::Testbed {
    let _ = rustls::crypto::ring::default_provider().install_default();
    kgents_testbed::shared_with_nodes()
        .await
        .expect("the testbed starts (run scripts/testbed-build first)")
}

/// Every object of the plan as the cluster has it: (kubectl name, resourceVersion or None).
async fn resource_versions(
    client: &Client,
    settings: &InstallSettings,
) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for object in plan::plan(settings) {
        let resource = object.api_resource();
        let api: Api<DynamicObject> = match object.namespace() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let live = api.get_opt(object.name()).await.expect("read");
        out.push((
            object.display_name(),
            live.and_then(|o| o.metadata.resource_version),
        ));
    }
    out
}

async fn eventually_status(
    client: &Client,
    settings: &InstallSettings,
    what: &str,
    check: impl Fn(&StatusReport) -> bool,
) -> StatusReport {
    let deadline = Instant::now() + WAIT;
    loop {
        let report = install::status::status(client, settings)
            .await
            .expect("status");
        if check(&report) {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last status:\n{}",
            report
                .components
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn health_of(report: &StatusReport, component: &str) -> Health {
    report
        .get(component)
        .unwrap_or_else(|| panic!("{component} is not checked: {report:?}"))
        .health
}

async fn cordon(client: &Client, unschedulable: bool) {
    let nodes: Api<Node> = Api::all(client.clone());
    for node in nodes.list(&Default::default()).await.expect("nodes").items {
        nodes
            .patch(
                &node.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"unschedulable": unschedulable}})),
            )
            .await
            .expect("cordon");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_status_and_teardown_on_a_fresh_cluster() {
    let testbed = testbed().await;
    let client = testbed.client().await.expect("client");
    let settings = InstallSettings::default();
    let deployment_name = plan::display_name("Deployment", "kgents-operator");
    let webhook_name = plan::display_name("ValidatingWebhookConfiguration", "kgents-proposals");

    // 1. A dry run on the fresh cluster: everything would be created, nothing is.
    let dry = install::apply(&client, &settings, true)
        .await
        .expect("dry run");
    assert_eq!(dry.len(), plan::plan(&settings).len());
    assert!(
        dry.iter().all(|a| a.dry_run && a.change == Change::Created),
        "{dry:?}"
    );
    for line in &dry {
        println!("{line}");
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    assert!(
        crds.get_opt("agents.kgents.io")
            .await
            .expect("read")
            .is_none(),
        "a dry run created a CRD"
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(
        namespaces
            .get_opt("kgents-system")
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        resource_versions(&client, &settings)
            .await
            .iter()
            .all(|(_, rv)| rv.is_none()),
        "a dry run stored something"
    );

    // 2. init installs everything.
    let first = install::apply(&client, &settings, false)
        .await
        .expect("init");
    assert!(
        first
            .iter()
            .all(|a| a.change == Change::Created && !a.dry_run),
        "{first:?}"
    );
    let installed = resource_versions(&client, &settings).await;
    for (name, rv) in &installed {
        assert!(rv.is_some(), "{name} does not exist after init");
    }
    assert!(
        crds.get_opt("agents.kgents.io")
            .await
            .expect("read")
            .is_some_and(|c| install::status::is_established(&c))
    );

    // The Deployment rolls out onto the fake nodes (kwok reports its pods Ready).
    let report = eventually_status(&client, &settings, "the Deployment to be available", |r| {
        health_of(r, &deployment_name) == Health::Healthy
    })
    .await;
    for component in &report.components {
        println!("{component}");
    }
    // Nothing in the testbed runs the operator, so nothing registers the webhook: status says
    // so instead of calling the install healthy.
    assert!(report.webhook);
    assert_eq!(health_of(&report, &webhook_name), Health::Missing);
    assert!(!report.healthy());
    for crd in plan::crds() {
        let name = plan::display_name(
            "CustomResourceDefinition",
            crd.metadata.name.as_deref().unwrap_or_default(),
        );
        assert_eq!(health_of(&report, &name), Health::Healthy);
    }
    assert_eq!(
        health_of(
            &report,
            "clusterrole.rbac.authorization.k8s.io/kgents-operator"
        ),
        Health::Healthy
    );
    let report = eventually_status(&client, &settings, "the Services' endpoints", |r| {
        health_of(r, "service/kgents-operator-metrics") == Health::Healthy
            && health_of(r, "service/kgents-webhook") == Health::Healthy
    })
    .await;
    assert_eq!(health_of(&report, &deployment_name), Health::Healthy);

    // 3. A second init changes nothing: every object unchanged, no resourceVersion moved.
    let before = resource_versions(&client, &settings).await;
    let second = install::apply(&client, &settings, false)
        .await
        .expect("second init");
    let after = resource_versions(&client, &settings).await;
    let changed: Vec<String> = second
        .iter()
        .filter(|a| a.change != Change::Unchanged)
        .map(ToString::to_string)
        .collect();
    assert!(changed.is_empty(), "a second init changed: {changed:?}");
    assert_eq!(before, after, "a second init wrote to the cluster");

    // The webhook registration as the operator writes it: with a caBundle it is healthy,
    // without one status says the API server cannot trust the webhook.
    let config = settings.webhook_config();
    let operator = "system:serviceaccount:kgents-system:kgents-operator";
    let configurations: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let bound = std::net::SocketAddr::from(([127, 0, 0, 1], 8443));
    let ca = kgents_operator::admission::certs::generate(
        &config.certificate_names(),
        Duration::from_secs(86_400),
        jiff::Timestamp::now(),
    )
    .expect("certificate")
    .ca_pem;
    let apply_registration = |ca: Option<String>| {
        let configurations = configurations.clone();
        let desired = webhook_configuration(&config, bound, ca.as_deref(), operator);
        async move {
            configurations
                .patch(
                    "kgents-proposals",
                    &PatchParams::apply("kgents-webhook").force(),
                    &Patch::Apply(&desired),
                )
                .await
                .expect("register the webhook")
        }
    };
    apply_registration(Some(ca.clone())).await;
    let report = install::status::status(&client, &settings)
        .await
        .expect("status");
    assert_eq!(
        health_of(&report, &webhook_name),
        Health::Healthy,
        "{report:?}"
    );
    assert!(report.healthy(), "{report:#?}");
    apply_registration(None).await;
    let report = install::status::status(&client, &settings)
        .await
        .expect("status");
    let webhook = report.get(&webhook_name).expect("webhook");
    assert_eq!(webhook.health, Health::Unhealthy);
    assert!(webhook.detail.contains("no caBundle"), "{webhook}");

    // A dry run of a change reports it and stores nothing.
    let changed_image = InstallSettings {
        image: "registry.example/kgents-operator:next".to_owned(),
        ..settings.clone()
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "kgents-system");
    let before = deployments
        .get("kgents-operator")
        .await
        .expect("deployment");
    let dry = install::apply(&client, &changed_image, true)
        .await
        .expect("dry run");
    let line = dry
        .iter()
        .find(|a| a.kind == "Deployment")
        .expect("deployment line");
    assert_eq!(
        line.change,
        Change::Configured {
            fields: vec!["spec.template.spec.containers[0].image".to_owned()]
        },
        "{line}"
    );
    assert!(
        dry.iter()
            .filter(|a| a.kind != "Deployment")
            .all(|a| a.change == Change::Unchanged),
        "{dry:?}"
    );
    let after = deployments
        .get("kgents-operator")
        .await
        .expect("deployment");
    assert_eq!(
        before.resource_version(),
        after.resource_version(),
        "a dry run changed the Deployment"
    );

    // Switching the webhook off prunes its Service, Role, RoleBinding and registration (a
    // registration left behind would make every proposal write fail closed); on again, they
    // come back (all but the registration, which is the operator's).
    let without = InstallSettings {
        webhook: false,
        ..settings.clone()
    };
    let dry = install::apply(&client, &without, true)
        .await
        .expect("dry run");
    let pruned: Vec<String> = dry
        .iter()
        .filter(|a| a.change == Change::Pruned)
        .map(|a| format!("{}/{}", a.kind, a.name))
        .collect();
    assert_eq!(
        pruned,
        [
            "ValidatingWebhookConfiguration/kgents-proposals",
            "Service/kgents-webhook",
            "RoleBinding/kgents-webhook",
            "Role/kgents-webhook"
        ]
    );
    assert!(
        configurations
            .get_opt("kgents-proposals")
            .await
            .expect("read")
            .is_some(),
        "a dry run pruned"
    );
    let off = install::apply(&client, &without, false)
        .await
        .expect("webhook off");
    assert_eq!(
        off.iter().filter(|a| a.change == Change::Pruned).count(),
        4,
        "{off:?}"
    );
    let line = off
        .iter()
        .find(|a| a.kind == "Deployment")
        .expect("deployment line");
    assert!(
        matches!(&line.change, Change::Configured { fields } if fields.iter().any(|f| f.contains("args"))),
        "{line}"
    );
    assert!(
        configurations
            .get_opt("kgents-proposals")
            .await
            .expect("read")
            .is_none()
    );
    let report = eventually_status(&client, &without, "the operator without webhook", |r| {
        !r.webhook && health_of(r, &webhook_name) == Health::Healthy
    })
    .await;
    assert!(report.get("service/kgents-webhook").is_none());
    let on = install::apply(&client, &settings, false)
        .await
        .expect("webhook on");
    assert!(on.iter().all(|a| a.change != Change::Pruned));
    assert_eq!(
        on.iter().filter(|a| a.change == Change::Created).count(),
        3,
        "the webhook's Service, Role and RoleBinding: {on:?}"
    );
    // The operator registers its webhook again once it serves.
    apply_registration(Some(ca)).await;

    // Pods that cannot run: with every node cordoned, a third replica stays Pending, and
    // status says which pod and why.
    cordon(&client, true).await;
    let three = InstallSettings {
        replicas: 3,
        ..settings.clone()
    };
    let scaled = install::apply(&client, &three, false).await.expect("scale");
    let line = scaled
        .iter()
        .find(|a| a.kind == "Deployment")
        .expect("deployment line");
    assert_eq!(
        line.change,
        Change::Configured {
            fields: vec!["spec.replicas".to_owned()]
        }
    );
    let report = eventually_status(
        &client,
        &three,
        "the unschedulable pod to be reported",
        |r| {
            r.get(&deployment_name)
                .is_some_and(|c| c.detail.contains("cannot be scheduled"))
        },
    )
    .await;
    let deployment = report.get(&deployment_name).expect("deployment");
    assert_eq!(deployment.health, Health::Unhealthy);
    assert!(
        deployment.detail.starts_with("2/3 available"),
        "{deployment}"
    );
    assert!(deployment.fix.as_deref().is_some_and(|f| {
        f.contains("kubectl -n kgents-system describe deployment kgents-operator")
    }));
    cordon(&client, false).await;

    // 4. User data: an Agent, a COMPOST Memory (with the finalizer the operator would add) and
    // the claim that outlives it.
    let ns = testbed
        .create_namespace("infra-data")
        .await
        .expect("namespace");
    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    let agent: Agent = serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Agent",
        "metadata": {"name": "b-gent"},
        "spec": {"genus": "B"}
    }))
    .expect("agent");
    agents
        .create(&PostParams::default(), &agent)
        .await
        .expect("create agent");
    let memories: Api<Memory> = Api::namespaced(client.clone(), &ns);
    let memory: Memory = serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Memory",
        "metadata": {"name": "l-gent", "finalizers": [kgents_operator::memory::FINALIZER]},
        "spec": {"owner": "l-gent", "type": "VECTOR", "size": "1Gi", "retentionPolicy": "COMPOST", "compostAfterHours": 1}
    }))
    .expect("memory");
    memories
        .create(&PostParams::default(), &memory)
        .await
        .expect("create memory");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "memory-l-gent", "labels": {kgents_operator::memory::MEMORY_LABEL: "l-gent"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    }))
    .expect("claim");
    claims
        .create(&PostParams::default(), &claim)
        .await
        .expect("create claim");

    // 5. teardown keeps the CRDs and the data.
    let removed = install::teardown(&client, &settings, &TeardownOptions::default())
        .await
        .expect("teardown");
    for line in &removed {
        println!("{line}");
    }
    let removal_of = |kind: &str, name: &str| {
        removed
            .iter()
            .find(|r| r.kind == kind && r.name == name)
            .unwrap_or_else(|| panic!("{kind} {name} not in {removed:?}"))
            .removal
            .clone()
    };
    assert_eq!(
        removal_of("Deployment", "kgents-operator"),
        Removal::Deleted
    );
    assert_eq!(
        removal_of("ValidatingWebhookConfiguration", "kgents-proposals"),
        Removal::Deleted
    );
    assert_eq!(
        removal_of("ClusterRole", "kgents-operator"),
        Removal::Deleted
    );
    assert_eq!(removal_of("Lease", "kgents-operator"), Removal::NotFound);
    match removal_of("CustomResourceDefinition", "agents.kgents.io") {
        Removal::Kept(why) => assert!(why.contains("agents: 1 in the cluster"), "{why}"),
        other => panic!("the Agent CRD was not kept: {other:?}"),
    }
    assert!(matches!(
        removal_of("Namespace", "kgents-system"),
        Removal::Kept(_)
    ));
    assert!(
        agents.get_opt("b-gent").await.expect("read").is_some(),
        "teardown lost an Agent"
    );
    assert!(
        memories.get_opt("l-gent").await.expect("read").is_some(),
        "teardown lost a Memory"
    );
    assert!(
        claims
            .get_opt("memory-l-gent")
            .await
            .expect("read")
            .is_some_and(|c| c.metadata.deletion_timestamp.is_none())
    );
    assert!(
        configurations
            .get_opt("kgents-proposals")
            .await
            .expect("read")
            .is_none()
    );
    let report = install::status::status(&client, &settings)
        .await
        .expect("status");
    assert_eq!(health_of(&report, &deployment_name), Health::Missing);
    assert_eq!(
        health_of(
            &report,
            "customresourcedefinition.apiextensions.k8s.io/agents.kgents.io"
        ),
        Health::Healthy
    );
    // A second teardown finds nothing left to remove.
    let again = install::teardown(&client, &settings, &TeardownOptions::default())
        .await
        .expect("teardown again");
    assert!(
        again.iter().all(|r| r.removal != Removal::Deleted),
        "{again:?}"
    );

    // 6. With delete_data, the CRDs, every custom resource, the Memory's claim and the
    // namespace go; the compost finalizer does not hold anything up.
    let removed = install::teardown(
        &client,
        &settings,
        &TeardownOptions {
            delete_data: true,
            wait: WAIT,
        },
    )
    .await
    .expect("teardown with data");
    for line in &removed {
        println!("{line}");
    }
    assert!(removed.iter().any(|r| r.kind == "PersistentVolumeClaim"
        && r.name == "memory-l-gent"
        && r.removal == Removal::Deleted));
    assert!(
        removed
            .iter()
            .any(|r| r.kind == "Namespace" && r.removal == Removal::Deleted)
    );
    for crd in plan::crds() {
        let name = crd.metadata.name.unwrap_or_default();
        assert!(
            crds.get_opt(&name).await.expect("read").is_none(),
            "{name} still exists"
        );
    }
    match agents.get_opt("b-gent").await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 404),
        other => panic!("the Agent API still answers: {other:?}"),
    }
    let claim = claims.get_opt("memory-l-gent").await.expect("read");
    assert!(
        claim.is_none_or(|c| c.metadata.deletion_timestamp.is_some()),
        "the claim was kept"
    );

    // 7. An operator namespace that is being deleted is said to be so, instead of the API
    // server's 403 for objects in it, which reads like a missing permission.
    let held: Namespace = serde_json::from_value(json!({
        "metadata": {"name": "kgents-held"},
        "spec": {"finalizers": ["kgents.io/test-hold"]}
    }))
    .expect("namespace");
    namespaces
        .create(&PostParams::default(), &held)
        .await
        .expect("create");
    namespaces
        .delete("kgents-held", &Default::default())
        .await
        .expect("delete");
    let held_settings = InstallSettings {
        namespace: "kgents-held".to_owned(),
        ..settings.clone()
    };
    let error = install::apply(&client, &held_settings, false)
        .await
        .expect_err("nothing can be installed in a terminating namespace");
    assert!(matches!(error, InstallError::NotReached { .. }), "{error}");
    assert!(error.to_string().contains("being deleted"), "{error}");
    assert_eq!(error.kind(), FailureKind::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_without_rights_is_told_it_is_denied() {
    let testbed = testbed().await;
    let nobody = testbed
        .impersonating_client("nobody@example.com", &["system:authenticated"])
        .await
        .expect("client");
    let settings = InstallSettings::default();
    for dry_run in [true, false] {
        let error = install::apply(&nobody, &settings, dry_run)
            .await
            .expect_err("nobody may install the operator");
        assert_eq!(error.kind(), FailureKind::Denied, "{error}");
        let text = error.to_string();
        assert!(
            text.contains("403") && text.contains("kubectl auth can-i"),
            "{text}"
        );
    }
    let error = install::status::status(&nobody, &settings)
        .await
        .expect_err("nor read it");
    assert!(
        matches!(error, InstallError::Api { code: 403, .. }),
        "{error}"
    );
    let error = install::teardown(&nobody, &settings, &TeardownOptions::default())
        .await
        .expect_err("nor remove it");
    assert_eq!(error.kind(), FailureKind::Denied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_is_told_apart_within_the_deadline() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().expect("url"));
    let client = Client::try_from(config).expect("client");
    let started = Instant::now();
    let error = install::status::status(&client, &InstallSettings::default())
        .await
        .expect_err("nothing answers");
    assert_eq!(error.kind(), FailureKind::Unavailable, "{error}");
    assert!(error.to_string().contains("cannot be reached"), "{error}");
    assert!(started.elapsed() < install::CALL_TIMEOUT + Duration::from_secs(5));
}
