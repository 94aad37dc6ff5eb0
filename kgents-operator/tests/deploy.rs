//! The operator's deploy manifests (`deploy/operator/`) against the code and a real API server:
//! the names, ports, flag and probes the webhook needs match what the operator uses
//! ([`WebhookConfig::in_cluster`], [`rbac`]); every manifest passes a server-side dry-run create;
//! and the webhook's namespaced Role is exactly enough for what it does with its certificate
//! Secret (create, read, rotate) and no more.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kgents_operator::admission::WebhookConfig;
use kgents_operator::admission::certs::{self, CertificateSettings};
use kgents_operator::admission::server::Endpoint;
use kgents_operator::rbac::{self, OPERATOR_NAME, OPERATOR_NAMESPACE};
use kube::Api;
use kube::api::{ApiResource, DynamicObject, ObjectMeta, PostParams};
use serde_json::Value;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/operator");

/// Every document of `deploy/operator/<file>`, as JSON.
fn documents(file: &str) -> Vec<Value> {
    let path = format!("{DEPLOY}/{file}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.split("\n---")
        .map(str::trim)
        .filter(|d| !d.is_empty() && *d != "---")
        .map(|d| serde_saphyr::from_str::<Value>(d).unwrap_or_else(|e| panic!("{path}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn find<K: serde::de::DeserializeOwned>(docs: &[Value], kind: &str, name: &str) -> K {
    let doc = docs
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/operator"));
    serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{kind} {name}: {e}"))
}

#[test]
fn the_deployment_and_services_match_what_the_operator_serves() {
    let docs = documents("deployment.yaml");
    let webhook = WebhookConfig::in_cluster(OPERATOR_NAMESPACE);
    let Endpoint::Service {
        name: service_name,
        namespace: service_namespace,
        port: service_port,
    } = &webhook.endpoint
    else {
        panic!("the in-cluster webhook is reached through a Service");
    };

    let deployment: Deployment = find(&docs, "Deployment", OPERATOR_NAME);
    assert_eq!(
        deployment.metadata.namespace.as_deref(),
        Some(OPERATOR_NAMESPACE)
    );
    let pod = deployment.spec.template.spec.as_ref().expect("pod spec");
    let pod_labels = deployment
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    assert_eq!(pod.service_account_name.as_deref(), Some(OPERATOR_NAME));
    let container = &pod.containers[0];
    let args = container.args.clone().unwrap_or_default();
    assert!(
        args.iter().any(|a| a == "--webhook"),
        "the webhook is switched on: {args:?}"
    );
    let http_addr = args
        .iter()
        .position(|a| a == "--http-addr")
        .and_then(|i| args.get(i + 1))
        .expect("--http-addr");
    let port_named = |name: &str| {
        container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.container_port)
            .unwrap_or_else(|| panic!("container port {name}"))
    };
    assert_eq!(
        port_named("webhook"),
        i32::from(webhook.bind.port()),
        "the webhook listens where the container port says"
    );
    assert!(http_addr.ends_with(&format!(":{}", port_named("http"))));
    // POD_NAMESPACE names the Lease namespace, which is also the webhook's (Secret, Service).
    let env_names: Vec<&str> = container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    assert!(env_names.contains(&"POD_NAMESPACE"), "{env_names:?}");

    let readiness = container
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .expect("readiness probe");
    assert_eq!(readiness.port, IntOrString::String("webhook".to_owned()));
    assert_eq!(readiness.scheme.as_deref(), Some("HTTPS"));
    assert_eq!(readiness.path.as_deref(), Some("/healthz"));
    let liveness = container
        .liveness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .expect("liveness probe");
    assert_eq!(liveness.port, IntOrString::String("http".to_owned()));
    assert_eq!(liveness.path.as_deref(), Some("/healthz"));

    let service: Service = find(&docs, "Service", service_name);
    assert_eq!(
        service.metadata.namespace.as_deref(),
        Some(service_namespace.as_str())
    );
    let spec = service.spec.expect("service spec");
    let port = &spec.ports.expect("ports")[0];
    assert_eq!(port.port, *service_port);
    assert_eq!(
        port.target_port,
        Some(IntOrString::String("webhook".to_owned()))
    );
    for (key, value) in spec.selector.expect("selector") {
        assert_eq!(pod_labels.get(&key), Some(&value), "selector {key}");
    }
    // The certificate names the Service, as the API server addresses it.
    assert!(
        webhook
            .certificate_names()
            .contains(&format!("{service_name}.{service_namespace}.svc"))
    );
}

#[test]
fn rbac_yaml_carries_the_webhook_role_in_the_operator_namespace() {
    let docs = documents("rbac.yaml");
    let role: Role = find(&docs, "Role", rbac::WEBHOOK_ROLE_NAME);
    let (expected, expected_binding) = rbac::webhook_role_manifests(OPERATOR_NAMESPACE);
    assert_eq!(role, expected);
    let binding: RoleBinding = find(&docs, "RoleBinding", rbac::WEBHOOK_ROLE_NAME);
    assert_eq!(binding, expected_binding);
    let cluster_role: ClusterRole = find(&docs, "ClusterRole", OPERATOR_NAME);
    for rule in cluster_role.rules.unwrap_or_default() {
        if rule.resources.iter().flatten().any(|r| r == "secrets") {
            assert_eq!(
                rule.verbs,
                ["get"],
                "Secrets are never written cluster-wide"
            );
        }
    }
}

/// The API resource of a kind that may appear in `deploy/operator/`.
fn api_resource(kind: &str) -> ApiResource {
    match kind {
        "ServiceAccount" => ApiResource::erase::<k8s_openapi::api::core::v1::ServiceAccount>(&()),
        "Service" => ApiResource::erase::<Service>(&()),
        "Deployment" => ApiResource::erase::<Deployment>(&()),
        "ClusterRole" => ApiResource::erase::<ClusterRole>(&()),
        "ClusterRoleBinding" => ApiResource::erase::<ClusterRoleBinding>(&()),
        "Role" => ApiResource::erase::<Role>(&()),
        "RoleBinding" => ApiResource::erase::<RoleBinding>(&()),
        other => panic!("deploy/operator holds a {other}; teach this test its API resource"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_manifest_passes_a_server_side_dry_run_create() {
    let testbed = kgents_testbed::shared().await.expect("testbed");
    let admin = testbed.client().await.expect("admin");
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(OPERATOR_NAMESPACE.to_owned());
    match namespaces.create(&PostParams::default(), &namespace).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => panic!("creating {OPERATOR_NAMESPACE}: {e}"),
    }
    let dry_run = PostParams {
        dry_run: true,
        field_manager: Some("kgents-deploy-test".to_owned()),
    };
    let mut checked = BTreeMap::<String, usize>::new();
    for file in ["rbac.yaml", "deployment.yaml"] {
        for doc in documents(file) {
            let kind = doc["kind"].as_str().expect("kind").to_owned();
            let resource = api_resource(&kind);
            let object: DynamicObject = serde_json::from_value(doc).expect("object");
            let name = object.metadata.name.clone().unwrap_or_default();
            let api: Api<DynamicObject> = match &object.metadata.namespace {
                Some(ns) => Api::namespaced_with(admin.clone(), ns, &resource),
                None => Api::all_with(admin.clone(), &resource),
            };
            api.create(&dry_run, &object)
                .await
                .unwrap_or_else(|e| panic!("{file}: {kind} {name} is refused: {e}"));
            *checked.entry(kind).or_default() += 1;
        }
    }
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
    ] {
        assert!(checked.contains_key(kind), "no {kind} checked: {checked:?}");
    }
    assert_eq!(checked["Service"], 2, "the metrics and the webhook Service");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_role_is_exactly_enough_for_its_certificate_secret() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let testbed = kgents_testbed::shared().await.expect("testbed");
    let ns = testbed.create_namespace("webhook-role").await.expect("ns");
    let admin = testbed.client().await.expect("admin");
    // The generated Role and RoleBinding, placed in this test's namespace.
    let (mut role, mut binding) = rbac::webhook_role_manifests(&ns);
    role.metadata.namespace = Some(ns.clone());
    binding.metadata.namespace = Some(ns.clone());
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("role");
    Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding");
    // A Secret the webhook has no business with.
    Api::<Secret>::namespaced(admin.clone(), &ns)
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("someone-elses".into()),
                    ..ObjectMeta::default()
                },
                ..Secret::default()
            },
        )
        .await
        .expect("other secret");

    let operator = testbed
        .service_account_client(&ns, OPERATOR_NAME)
        .await
        .expect("operator client");
    let webhook = WebhookConfig::in_cluster(&ns);
    let settings = CertificateSettings {
        namespace: ns.clone(),
        secret_name: webhook.secret_name.clone(),
        names: webhook.certificate_names(),
        validity: Duration::from_secs(90 * 86_400),
        renew_before: Duration::from_secs(30 * 86_400),
    };
    let now = jiff::Timestamp::now();
    // Created (apply of a missing Secret), read back, then rotated (apply of an existing one).
    let created = certs::load_or_create(&operator, &settings, now)
        .await
        .expect("the Role lets the webhook create its Secret");
    let read = certs::load_or_create(&operator, &settings, now)
        .await
        .expect("and read it");
    assert_eq!(created, read, "an unexpired certificate is reused");
    let rotated = certs::rotate(&operator, &settings, Some(&created), now)
        .await
        .expect("and rotate it");
    assert_ne!(rotated.cert_pem, created.cert_pem);

    let secrets: Api<Secret> = Api::namespaced(operator.clone(), &ns);
    for outcome in [
        secrets.get("someone-elses").await.map(|_| ()),
        secrets.list(&Default::default()).await.map(|_| ()),
    ] {
        match outcome {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
            other => panic!("the webhook may touch no other Secret: {other:?}"),
        }
    }
    // And nothing outside its namespace.
    let elsewhere: Api<Secret> = Api::namespaced(operator, "default");
    match elsewhere.get(&webhook.secret_name).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("no Secret outside the operator namespace: {other:?}"),
    }
}
