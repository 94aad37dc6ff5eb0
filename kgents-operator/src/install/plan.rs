//! The install plan (pure): every object the operator needs in a cluster, in the order they are
//! applied, and how a change between two versions of an object is described.
//!
//! The operator's Deployment and Services are built here and nowhere else: a test checks that
//! `deploy/operator/deployment.yaml` is exactly [`plan`] with [`InstallSettings::default`], and
//! `deploy/operator/rbac.yaml` is generated from [`crate::rbac`], which this plan uses too.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, Namespace,
    ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    SeccompProfile, SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ApiResource;
use serde_json::Value;

use crate::admission::server::{Endpoint, WebhookConfig};
use crate::rbac::{self, OPERATOR_NAME};

/// The operator image of this version (`ghcr.io/kgents/kgents-operator:<crate version>`), as
/// `deploy/operator/Dockerfile` tags it.
pub const DEFAULT_IMAGE: &str =
    concat!("ghcr.io/kgents/kgents-operator:", env!("CARGO_PKG_VERSION"));
/// Replicas of the operator Deployment by default (one leads, the other stands by).
pub const DEFAULT_REPLICAS: i32 = 2;
/// The field manager of `kgents infra init`'s server-side applies.
pub const FIELD_MANAGER: &str = "kgents-infra";
/// Name of the Service in front of the operator's `/metrics` (port 8080).
pub const METRICS_SERVICE: &str = "kgents-operator-metrics";
/// Port of the operator's `/metrics`, `/healthz` and `/readyz`.
pub const HTTP_PORT: i32 = 8080;

/// What to install, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallSettings {
    /// The operator's namespace: its ServiceAccount, Deployment, Lease, webhook Service,
    /// certificate Secret and policy ConfigMap live there.
    pub namespace: String,
    /// The operator image.
    pub image: String,
    /// Replicas of the operator Deployment (leader election picks the one that reconciles).
    pub replicas: i32,
    /// Whether the T-gent admission webhook is served (`--webhook`, its Service and Role).
    pub webhook: bool,
    /// The field manager of the applies (one per writer).
    pub field_manager: String,
}

impl Default for InstallSettings {
    fn default() -> Self {
        Self {
            namespace: rbac::OPERATOR_NAMESPACE.to_owned(),
            image: DEFAULT_IMAGE.to_owned(),
            replicas: DEFAULT_REPLICAS,
            webhook: true,
            field_manager: FIELD_MANAGER.to_owned(),
        }
    }
}

impl InstallSettings {
    /// Checks what the API server would reject only late (or never): an empty image, a
    /// negative replica count, a namespace that is not a DNS label.
    pub fn validate(&self) -> Result<(), String> {
        if self.image.trim().is_empty() || self.image.chars().any(char::is_whitespace) {
            return Err(format!(
                "the image {:?} is empty or contains whitespace; give a reference such as {DEFAULT_IMAGE}",
                self.image
            ));
        }
        if !(0..=100).contains(&self.replicas) {
            return Err(format!(
                "replicas must be between 0 and 100, not {}",
                self.replicas
            ));
        }
        let ns = &self.namespace;
        let label_ok = !ns.is_empty()
            && ns.len() <= 63
            && ns
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !ns.starts_with('-')
            && !ns.ends_with('-');
        if !label_ok {
            return Err(format!(
                "the namespace {ns:?} is not a valid name: a namespace must be an RFC 1123 label (at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit)"
            ));
        }
        if self.field_manager.is_empty() {
            return Err("the field manager must not be empty".to_owned());
        }
        Ok(())
    }

    /// The webhook settings the operator uses in this namespace ([`WebhookConfig::in_cluster`]).
    pub fn webhook_config(&self) -> WebhookConfig {
        WebhookConfig::in_cluster(&self.namespace)
    }
}

/// One object of the plan, typed.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Manifest {
    /// A kgents.io custom resource definition.
    CustomResourceDefinition(CustomResourceDefinition),
    /// The operator's namespace.
    Namespace(Namespace),
    /// The operator's ServiceAccount.
    ServiceAccount(ServiceAccount),
    /// The operator's ClusterRole.
    ClusterRole(ClusterRole),
    /// The operator's ClusterRoleBinding.
    ClusterRoleBinding(ClusterRoleBinding),
    /// The webhook's Role (its certificate Secret).
    Role(Role),
    /// The webhook's RoleBinding.
    RoleBinding(RoleBinding),
    /// The metrics or the webhook Service.
    Service(Service),
    /// The operator Deployment.
    Deployment(Deployment),
}

impl Manifest {
    /// The object's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::CustomResourceDefinition(_) => "CustomResourceDefinition",
            Self::Namespace(_) => "Namespace",
            Self::ServiceAccount(_) => "ServiceAccount",
            Self::ClusterRole(_) => "ClusterRole",
            Self::ClusterRoleBinding(_) => "ClusterRoleBinding",
            Self::Role(_) => "Role",
            Self::RoleBinding(_) => "RoleBinding",
            Self::Service(_) => "Service",
            Self::Deployment(_) => "Deployment",
        }
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Self::CustomResourceDefinition(o) => &o.metadata,
            Self::Namespace(o) => &o.metadata,
            Self::ServiceAccount(o) => &o.metadata,
            Self::ClusterRole(o) => &o.metadata,
            Self::ClusterRoleBinding(o) => &o.metadata,
            Self::Role(o) => &o.metadata,
            Self::RoleBinding(o) => &o.metadata,
            Self::Service(o) => &o.metadata,
            Self::Deployment(o) => &o.metadata,
        }
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// The object's namespace (`None` for cluster-scoped objects).
    pub fn namespace(&self) -> Option<&str> {
        self.metadata().namespace.as_deref()
    }

    /// The API resource (group, version, plural) of the object's kind.
    pub fn api_resource(&self) -> ApiResource {
        api_resource(self.kind()).unwrap_or_else(|| ApiResource::erase::<Namespace>(&()))
    }

    /// The object as the JSON body of a server-side apply (with `apiVersion` and `kind`).
    pub fn to_value(&self) -> Value {
        let value = match self {
            Self::CustomResourceDefinition(o) => serde_json::to_value(o),
            Self::Namespace(o) => serde_json::to_value(o),
            Self::ServiceAccount(o) => serde_json::to_value(o),
            Self::ClusterRole(o) => serde_json::to_value(o),
            Self::ClusterRoleBinding(o) => serde_json::to_value(o),
            Self::Role(o) => serde_json::to_value(o),
            Self::RoleBinding(o) => serde_json::to_value(o),
            Self::Service(o) => serde_json::to_value(o),
            Self::Deployment(o) => serde_json::to_value(o),
        };
        // Serialising these k8s-openapi types cannot fail (no maps with non-string keys).
        value.unwrap_or(Value::Null)
    }

    /// How kubectl names the object in its output: `deployment.apps/kgents-operator`,
    /// `serviceaccount/kgents-operator`.
    pub fn display_name(&self) -> String {
        display_name(self.kind(), self.name())
    }
}

/// The API resource of a kind the plan (or teardown) touches.
pub fn api_resource(kind: &str) -> Option<ApiResource> {
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::Secret;
    Some(match kind {
        "CustomResourceDefinition" => ApiResource::erase::<CustomResourceDefinition>(&()),
        "Namespace" => ApiResource::erase::<Namespace>(&()),
        "ServiceAccount" => ApiResource::erase::<ServiceAccount>(&()),
        "ClusterRole" => ApiResource::erase::<ClusterRole>(&()),
        "ClusterRoleBinding" => ApiResource::erase::<ClusterRoleBinding>(&()),
        "Role" => ApiResource::erase::<Role>(&()),
        "RoleBinding" => ApiResource::erase::<RoleBinding>(&()),
        "Service" => ApiResource::erase::<Service>(&()),
        "Deployment" => ApiResource::erase::<Deployment>(&()),
        "Secret" => ApiResource::erase::<Secret>(&()),
        "PersistentVolumeClaim" => {
            ApiResource::erase::<k8s_openapi::api::core::v1::PersistentVolumeClaim>(&())
        }
        "Lease" => ApiResource::erase::<Lease>(&()),
        "ValidatingWebhookConfiguration" => {
            ApiResource::erase::<ValidatingWebhookConfiguration>(&())
        }
        _ => return None,
    })
}

/// kubectl's `<plural>.<group>/<name>` (no group for the core API).
pub fn display_name(kind: &str, name: &str) -> String {
    match api_resource(kind) {
        Some(resource) if resource.group.is_empty() => {
            format!("{}/{name}", kind.to_ascii_lowercase())
        }
        Some(resource) => format!("{}.{}/{name}", kind.to_ascii_lowercase(), resource.group),
        None => format!("{}/{name}", kind.to_ascii_lowercase()),
    }
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_owned(),
            OPERATOR_NAME.to_owned(),
        ),
        ("app.kubernetes.io/part-of".to_owned(), "kgents".to_owned()),
    ])
}

fn selector_labels() -> BTreeMap<String, String> {
    BTreeMap::from([(
        "app.kubernetes.io/name".to_owned(),
        OPERATOR_NAME.to_owned(),
    )])
}

/// The CRDs as they are applied: without the server-owned fields.
pub fn crds() -> Vec<CustomResourceDefinition> {
    kgents_crds::crds()
        .into_iter()
        .map(|mut crd| {
            crd.status = None;
            crd.metadata.managed_fields = None;
            crd.metadata.resource_version = None;
            crd.metadata.uid = None;
            crd.metadata.creation_timestamp = None;
            crd
        })
        .collect()
}

/// The operator's namespace.
pub fn namespace(settings: &InstallSettings) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(settings.namespace.clone()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/part-of".to_owned(),
                "kgents".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// The operator Deployment: `deploy/operator/deployment.yaml` with the settings' namespace,
/// image, replicas and webhook switch.
pub fn deployment(settings: &InstallSettings) -> Deployment {
    let mut args = vec!["--http-addr".to_owned(), format!("0.0.0.0:{HTTP_PORT}")];
    let mut ports = vec![ContainerPort {
        name: Some("http".to_owned()),
        container_port: HTTP_PORT,
        ..ContainerPort::default()
    }];
    let readiness = if settings.webhook {
        let webhook = settings.webhook_config();
        args.push("--webhook".to_owned());
        ports.push(ContainerPort {
            name: Some("webhook".to_owned()),
            container_port: i32::from(webhook.bind.port()),
            ..ContainerPort::default()
        });
        // Ready = the webhook answers over TLS (the API server's calls go where the Service
        // sends them); the operator's own /readyz turns ready only after that, too.
        HTTPGetAction {
            path: Some("/healthz".to_owned()),
            port: IntOrString::String("webhook".to_owned()),
            scheme: Some("HTTPS".to_owned()),
            ..HTTPGetAction::default()
        }
    } else {
        HTTPGetAction {
            path: Some("/readyz".to_owned()),
            port: IntOrString::String("http".to_owned()),
            ..HTTPGetAction::default()
        }
    };
    let field_env = |name: &str, path: &str| EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };
    let container = Container {
        name: "operator".to_owned(),
        image: Some(settings.image.clone()),
        args: Some(args),
        env: Some(vec![
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
            EnvVar {
                name: "RUST_LOG".to_owned(),
                value: Some("info,kube_runtime=warn".to_owned()),
                ..EnvVar::default()
            },
        ]),
        ports: Some(ports),
        readiness_probe: Some(Probe {
            http_get: Some(readiness),
            period_seconds: Some(5),
            ..Probe::default()
        }),
        liveness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/healthz".to_owned()),
                port: IntOrString::String("http".to_owned()),
                ..HTTPGetAction::default()
            }),
            initial_delay_seconds: Some(10),
            period_seconds: Some(10),
            ..Probe::default()
        }),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), Quantity("50m".to_owned())),
                ("memory".to_owned(), Quantity("64Mi".to_owned())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_owned(),
                Quantity("256Mi".to_owned()),
            )])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    Deployment {
        metadata: ObjectMeta {
            name: Some(OPERATOR_NAME.to_owned()),
            namespace: Some(settings.namespace.clone()),
            labels: Some(labels()),
            ..ObjectMeta::default()
        },
        spec: DeploymentSpec {
            replicas: Some(settings.replicas),
            selector: LabelSelector {
                match_labels: Some(selector_labels()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels()),
                    annotations: Some(BTreeMap::from([
                        ("prometheus.io/scrape".to_owned(), "true".to_owned()),
                        ("prometheus.io/port".to_owned(), HTTP_PORT.to_string()),
                    ])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(OPERATOR_NAME.to_owned()),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65532),
                        run_as_group: Some(65532),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_owned(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    termination_grace_period_seconds: Some(40),
                    containers: vec![container],
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
}

fn service(name: &str, namespace: &str, port: ServicePort) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(selector_labels()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(selector_labels()),
            ports: Some(vec![port]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The Service in front of `/metrics`.
pub fn metrics_service(settings: &InstallSettings) -> Service {
    service(
        METRICS_SERVICE,
        &settings.namespace,
        ServicePort {
            name: Some("http".to_owned()),
            port: HTTP_PORT,
            target_port: Some(IntOrString::String("http".to_owned())),
            ..ServicePort::default()
        },
    )
}

/// The Service the API server calls the T-gent webhook through (the one
/// [`WebhookConfig::in_cluster`] names), or `None` when that configuration reaches the webhook
/// by URL.
pub fn webhook_service(settings: &InstallSettings) -> Option<Service> {
    let webhook = settings.webhook_config();
    let Endpoint::Service {
        name,
        namespace,
        port,
    } = &webhook.endpoint
    else {
        return None;
    };
    Some(service(
        name,
        namespace,
        ServicePort {
            name: Some("https".to_owned()),
            port: *port,
            target_port: Some(IntOrString::String("webhook".to_owned())),
            ..ServicePort::default()
        },
    ))
}

/// Everything `kgents infra init` applies, in order: CRDs, the namespace, the operator's
/// ServiceAccount, ClusterRole and ClusterRoleBinding, the webhook's Role and RoleBinding (with
/// the webhook), the metrics Service, the webhook Service (with the webhook), the Deployment.
///
/// The ValidatingWebhookConfiguration is not in it: the operator registers it itself, with the
/// CA of the certificate it generates, once its webhook answers (so the API server never calls
/// a webhook that is not serving). [`super::status::status`] checks it and [`super::teardown::teardown`] removes
/// it.
pub fn plan(settings: &InstallSettings) -> Vec<Manifest> {
    let mut objects: Vec<Manifest> = crds()
        .into_iter()
        .map(Manifest::CustomResourceDefinition)
        .collect();
    objects.push(Manifest::Namespace(namespace(settings)));
    let (account, role, binding) = rbac::manifests(&settings.namespace);
    objects.push(Manifest::ServiceAccount(account));
    objects.push(Manifest::ClusterRole(role));
    objects.push(Manifest::ClusterRoleBinding(binding));
    if settings.webhook {
        let (role, binding) = rbac::webhook_role_manifests(&settings.namespace);
        objects.push(Manifest::Role(role));
        objects.push(Manifest::RoleBinding(binding));
    }
    objects.push(Manifest::Service(metrics_service(settings)));
    if settings.webhook
        && let Some(service) = webhook_service(settings)
    {
        objects.push(Manifest::Service(service));
    }
    objects.push(Manifest::Deployment(deployment(settings)));
    objects
}

/// Metadata the API server writes: never part of a change a person cares about.
const SERVER_METADATA: [&str; 6] = [
    "managedFields",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "uid",
    "selfLink",
];

/// The fields that differ between two versions of an object, as dotted paths
/// (`spec.replicas`, `spec.template.spec.containers[0].image`), ignoring `status` and the
/// metadata the API server writes. An added or removed field counts as a difference. Sorted,
/// and complete (callers shorten it for display).
pub fn changed_fields(before: &Value, after: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let (Value::Object(old), Value::Object(new)) = (before, after) else {
        if before != after {
            out.push("(the whole object)".to_owned());
        }
        return out;
    };
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        if key == "status" {
            continue;
        }
        let (a, b) = (old.get(key), new.get(key));
        if key == "metadata" {
            let strip = |v: Option<&Value>| {
                let mut v = v.cloned().unwrap_or(Value::Null);
                if let Value::Object(map) = &mut v {
                    for field in SERVER_METADATA {
                        map.remove(field);
                    }
                }
                v
            };
            diff_into(&strip(a), &strip(b), "metadata", &mut out);
        } else {
            diff_into(
                a.unwrap_or(&Value::Null),
                b.unwrap_or(&Value::Null),
                key,
                &mut out,
            );
        }
    }
    out.sort();
    out
}

fn diff_into(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    if a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for key in keys {
                let null = Value::Null;
                diff_into(
                    x.get(key).unwrap_or(&null),
                    y.get(key).unwrap_or(&null),
                    &format!("{path}.{key}"),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff_into(p, q, &format!("{path}[{i}]"), out);
            }
        }
        _ => out.push(path.to_owned()),
    }
}

/// At most `limit` paths, then `… and N more`.
pub fn summarise_fields(fields: &[String], limit: usize) -> String {
    if fields.len() <= limit {
        return fields.join(", ");
    }
    format!(
        "{} and {} more",
        fields[..limit].join(", "),
        fields.len() - limit
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DEPLOYMENT_YAML: &str = include_str!("../../../deploy/operator/deployment.yaml");

    fn documents(text: &str) -> Vec<Value> {
        text.split("\n---")
            .map(str::trim)
            .filter(|d| !d.is_empty() && *d != "---")
            .map(|d| serde_saphyr::from_str::<Value>(d).expect("yaml"))
            .filter(|v| !v.is_null())
            .collect()
    }

    #[test]
    fn the_plan_has_a_stable_order_and_every_component() {
        let settings = InstallSettings::default();
        let plan = plan(&settings);
        let kinds: Vec<&str> = plan.iter().map(Manifest::kind).collect();
        assert_eq!(
            kinds,
            [
                "CustomResourceDefinition",
                "CustomResourceDefinition",
                "CustomResourceDefinition",
                "CustomResourceDefinition",
                "CustomResourceDefinition",
                "CustomResourceDefinition",
                "Namespace",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
                "Service",
                "Service",
                "Deployment",
            ]
        );
        assert_eq!(plan, super::plan(&settings), "the plan is deterministic");
        for object in &plan {
            assert!(!object.name().is_empty(), "{object:?}");
            let value = object.to_value();
            assert_eq!(
                value["kind"],
                object.kind(),
                "apply bodies carry their kind"
            );
            assert!(value["apiVersion"].is_string());
            let cluster_scoped = matches!(
                object.kind(),
                "CustomResourceDefinition" | "Namespace" | "ClusterRole" | "ClusterRoleBinding"
            );
            assert_eq!(
                object.namespace(),
                (!cluster_scoped).then_some(settings.namespace.as_str()),
                "{}",
                object.display_name()
            );
        }
        // Everything the namespace holds comes after it.
        let ns_at = kinds.iter().position(|k| *k == "Namespace").expect("ns");
        assert!(plan[..ns_at].iter().all(|o| o.namespace().is_none()));
    }

    #[test]
    fn the_committed_deployment_yaml_is_the_default_plan() {
        let plan = plan(&InstallSettings::default());
        let docs = documents(DEPLOYMENT_YAML);
        assert_eq!(docs.len(), 3, "the Deployment and two Services");
        for doc in docs {
            let kind = doc["kind"].as_str().expect("kind");
            let name = doc["metadata"]["name"].as_str().expect("name");
            let planned = plan
                .iter()
                .find(|o| o.kind() == kind && o.name() == name)
                .unwrap_or_else(|| panic!("deploy/operator/deployment.yaml has {kind} {name}, which the install plan lacks"));
            // Through the typed object, so that YAML spellings (quotes, key order) do not count.
            let committed = match kind {
                "Deployment" => serde_json::to_value(
                    serde_json::from_value::<Deployment>(doc.clone()).expect("deployment"),
                ),
                "Service" => serde_json::to_value(
                    serde_json::from_value::<Service>(doc.clone()).expect("service"),
                ),
                other => panic!("unexpected {other}"),
            }
            .expect("json");
            assert_eq!(
                changed_fields(&committed, &planned.to_value()),
                Vec::<String>::new(),
                "{kind} {name}: deploy/operator/deployment.yaml and the install plan disagree; change both"
            );
        }
    }

    #[test]
    fn settings_shape_the_deployment() {
        let settings = InstallSettings {
            namespace: "ops".into(),
            image: "registry.local/op:dev".into(),
            replicas: 1,
            webhook: false,
            ..InstallSettings::default()
        };
        let plan = plan(&settings);
        assert!(
            !plan
                .iter()
                .any(|o| matches!(o, Manifest::Role(_) | Manifest::RoleBinding(_)))
        );
        let services: Vec<&str> = plan
            .iter()
            .filter(|o| o.kind() == "Service")
            .map(Manifest::name)
            .collect();
        assert_eq!(services, [METRICS_SERVICE]);
        let Some(Manifest::Deployment(deployment)) = plan.last() else {
            panic!("the Deployment comes last");
        };
        let spec = &deployment.spec;
        assert_eq!(spec.replicas, Some(1));
        let pod = spec.template.spec.as_ref().expect("pod");
        let container = &pod.containers[0];
        assert_eq!(container.image.as_deref(), Some("registry.local/op:dev"));
        assert!(!container.args.iter().flatten().any(|a| a == "--webhook"));
        let readiness = container
            .readiness_probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .expect("readiness");
        assert_eq!(readiness.path.as_deref(), Some("/readyz"));
        assert_eq!(readiness.port, IntOrString::String("http".into()));
        assert!(
            plan.iter()
                .all(|o| o.namespace().is_none_or(|ns| ns == "ops"))
        );
        let binding = plan
            .iter()
            .find_map(|o| match o {
                Manifest::ClusterRoleBinding(b) => Some(b),
                _ => None,
            })
            .expect("binding");
        assert_eq!(
            binding.subjects.as_ref().expect("subjects")[0]
                .namespace
                .as_deref(),
            Some("ops")
        );
    }

    #[test]
    fn bad_settings_are_refused_with_the_rule() {
        let ok = InstallSettings::default();
        assert!(ok.validate().is_ok());
        for (settings, needle) in [
            (
                InstallSettings {
                    image: " ".into(),
                    ..ok.clone()
                },
                "image",
            ),
            (
                InstallSettings {
                    replicas: -1,
                    ..ok.clone()
                },
                "replicas",
            ),
            (
                InstallSettings {
                    namespace: "Kgents_System".into(),
                    ..ok.clone()
                },
                "RFC 1123",
            ),
            (
                InstallSettings {
                    namespace: "-x".into(),
                    ..ok.clone()
                },
                "RFC 1123",
            ),
            (
                InstallSettings {
                    namespace: "x".repeat(64),
                    ..ok.clone()
                },
                "RFC 1123",
            ),
        ] {
            let message = settings.validate().expect_err("invalid");
            assert!(message.contains(needle), "{message}");
        }
    }

    #[test]
    fn kubectl_style_names() {
        assert_eq!(display_name("Deployment", "op"), "deployment.apps/op");
        assert_eq!(display_name("ServiceAccount", "op"), "serviceaccount/op");
        assert_eq!(
            display_name("CustomResourceDefinition", "agents.kgents.io"),
            "customresourcedefinition.apiextensions.k8s.io/agents.kgents.io"
        );
        assert_eq!(
            display_name("ClusterRole", "op"),
            "clusterrole.rbac.authorization.k8s.io/op"
        );
    }

    #[test]
    fn changed_fields_names_what_moved_and_ignores_server_noise() {
        let before = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "op", "resourceVersion": "1", "generation": 1, "managedFields": [1],
                         "labels": {"a": "1"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"image": "a"}, {"image": "b"}]}}},
            "status": {"availableReplicas": 2}
        });
        let mut after = before.clone();
        after["metadata"]["resourceVersion"] = json!("2");
        after["metadata"]["generation"] = json!(2);
        after["status"]["availableReplicas"] = json!(0);
        assert!(changed_fields(&before, &after).is_empty());
        after["spec"]["replicas"] = json!(3);
        after["spec"]["template"]["spec"]["containers"][1]["image"] = json!("c");
        after["metadata"]["labels"]["b"] = json!("2");
        assert_eq!(
            changed_fields(&before, &after),
            [
                "metadata.labels.b",
                "spec.replicas",
                "spec.template.spec.containers[1].image"
            ]
        );
        // A list that grew is reported as a whole.
        after["spec"]["template"]["spec"]["containers"] = json!([{"image": "a"}]);
        assert!(
            changed_fields(&before, &after).contains(&"spec.template.spec.containers".to_owned())
        );
        assert_eq!(
            summarise_fields(&["a".into(), "b".into(), "c".into()], 2),
            "a, b and 1 more"
        );
    }
}
