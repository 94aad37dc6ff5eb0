//! `kgents infra status`: each component of the install checked against the cluster, with
//! what is wrong and what to do. Reading is I/O ([`status`]); judging what was read is pure
//! (the `*_status` functions), so every verdict is unit-tested.

use std::fmt;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::ListParams;
use kube::{Api, Client};

use super::plan::{self, InstallSettings, METRICS_SERVICE, display_name};
use super::{InstallError, call};
use crate::admission::server::{Endpoint, WebhookConfig};
use crate::rbac::{self, OPERATOR_NAME, WEBHOOK_ROLE_NAME};

/// How a component is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Health {
    /// As it should be.
    Healthy,
    /// Present but not working (or not as this version installs it).
    Unhealthy,
    /// Not there.
    Missing,
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Healthy => "ok",
            Self::Unhealthy => "unhealthy",
            Self::Missing => "missing",
        })
    }
}

/// One checked component.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    /// The object, kubectl-style (`deployment.apps/kgents-operator`).
    pub component: String,
    /// Its health.
    pub health: Health,
    /// What was seen.
    pub detail: String,
    /// What to do, when something is wrong.
    pub fix: Option<String>,
}

impl ComponentStatus {
    fn healthy(component: String, detail: impl Into<String>) -> Self {
        Self {
            component,
            health: Health::Healthy,
            detail: detail.into(),
            fix: None,
        }
    }

    fn wrong(
        component: String,
        health: Health,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            component,
            health,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

impl fmt::Display for ComponentStatus {
    /// `deployment.apps/kgents-operator  unhealthy  0/2 available ...  → fix`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<9} {}: {}", self.health, self.component, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n          → {fix}")?;
        }
        Ok(())
    }
}

/// Every component's status.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// The operator's namespace.
    pub namespace: String,
    /// Whether the webhook is expected (the live Deployment runs with `--webhook`, or, without
    /// a Deployment, the settings ask for it).
    pub webhook: bool,
    /// The components, in plan order, then the webhook configuration.
    pub components: Vec<ComponentStatus>,
}

impl StatusReport {
    /// True when every component is healthy.
    pub fn healthy(&self) -> bool {
        self.components.iter().all(|c| c.health == Health::Healthy)
    }

    /// The component named `component` (kubectl-style), if checked.
    pub fn get(&self, component: &str) -> Option<&ComponentStatus> {
        self.components.iter().find(|c| c.component == component)
    }
}

const INIT: &str = "run `kgents infra init`";

/// Whether a CRD's Established condition is True.
pub fn is_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

/// A CRD's conditions, for a message (`Established=False (NotAccepted: ...)`).
pub fn crd_conditions(crd: &CustomResourceDefinition) -> String {
    let conditions = crd
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    if conditions.is_empty() {
        return "no conditions yet".to_owned();
    }
    conditions
        .iter()
        .map(|c| {
            let mut text = format!("{}={}", c.type_, c.status);
            if let Some(reason) = c.reason.as_deref().filter(|r| !r.is_empty()) {
                text.push_str(&format!(" ({reason}"));
                if let Some(message) = c.message.as_deref().filter(|m| !m.is_empty()) {
                    text.push_str(&format!(": {message}"));
                }
                text.push(')');
            }
            text
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A CRD: installed, Established, and serving this version's API versions.
pub fn crd_status(
    expected: &CustomResourceDefinition,
    live: Option<&CustomResourceDefinition>,
) -> ComponentStatus {
    let name = expected.metadata.name.clone().unwrap_or_default();
    let component = display_name("CustomResourceDefinition", &name);
    let Some(live) = live else {
        return ComponentStatus::wrong(
            component,
            Health::Missing,
            "not installed: no Agent, Memory, Pheromone, Umwelt or Proposal can be stored",
            INIT,
        );
    };
    if live.metadata.deletion_timestamp.is_some() {
        return ComponentStatus::wrong(
            component,
            Health::Unhealthy,
            "being deleted (with every object of its kind)",
            "wait until it is gone, then run `kgents infra init`",
        );
    }
    if !is_established(live) {
        return ComponentStatus::wrong(
            component,
            Health::Unhealthy,
            format!("not Established: {}", crd_conditions(live)),
            format!("look at `kubectl describe crd {name}`, then {INIT}"),
        );
    }
    let served: Vec<&str> = live
        .spec
        .versions
        .iter()
        .filter(|v| v.served)
        .map(|v| v.name.as_str())
        .collect();
    let missing: Vec<&str> = expected
        .spec
        .versions
        .iter()
        .filter(|v| v.served && !served.contains(&v.name.as_str()))
        .map(|v| v.name.as_str())
        .collect();
    if !missing.is_empty() {
        return ComponentStatus::wrong(
            component,
            Health::Unhealthy,
            format!(
                "Established, but does not serve {} (serves {})",
                missing.join(", "),
                served.join(", ")
            ),
            format!("{INIT} to upgrade it"),
        );
    }
    ComponentStatus::healthy(
        component,
        format!("Established, serves {}", served.join(", ")),
    )
}

/// An object that only needs to exist (namespace, ServiceAccount, bindings).
pub fn presence_status(
    kind: &str,
    name: &str,
    present: bool,
    terminating: bool,
) -> ComponentStatus {
    let component = display_name(kind, name);
    if !present {
        ComponentStatus::wrong(component, Health::Missing, "not found", INIT)
    } else if terminating {
        ComponentStatus::wrong(
            component,
            Health::Unhealthy,
            "being deleted",
            format!("wait until it is gone, then {INIT}"),
        )
    } else {
        ComponentStatus::healthy(component, "present")
    }
}

/// A ClusterRole or Role: present with the rules this version grants.
pub fn rules_status(
    kind: &str,
    name: &str,
    expected: &[PolicyRule],
    live: Option<&[PolicyRule]>,
) -> ComponentStatus {
    let component = display_name(kind, name);
    match live {
        None => ComponentStatus::wrong(component, Health::Missing, "not found", INIT),
        Some(live) if live == expected => ComponentStatus::healthy(
            component,
            format!("{} rules, as this version grants", live.len()),
        ),
        Some(live) => ComponentStatus::wrong(
            component,
            Health::Unhealthy,
            format!(
                "its {} rules differ from the {} this version's controllers need (an older or edited install): the operator may be denied what it needs",
                live.len(),
                expected.len()
            ),
            format!("{INIT} to bring them in line"),
        ),
    }
}

/// Why pods of the Deployment are not available, one phrase per pod that says something.
fn pod_problems(pods: &[Pod]) -> Vec<String> {
    let mut out = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(status) = &pod.status else {
            out.push(format!("pod {name} has no status yet"));
            continue;
        };
        let conditions = status.conditions.clone().unwrap_or_default();
        let unscheduled = conditions
            .iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False");
        if let Some(c) = unscheduled {
            out.push(format!(
                "pod {name} cannot be scheduled ({}: {})",
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default()
            ));
            continue;
        }
        let waiting: Vec<String> = status
            .container_statuses
            .iter()
            .flatten()
            .filter_map(|c| {
                let waiting = c.state.as_ref()?.waiting.as_ref()?;
                let reason = waiting.reason.clone().unwrap_or_default();
                let message = waiting.message.clone().unwrap_or_default();
                Some(if message.is_empty() {
                    format!("{} waiting: {reason}", c.name)
                } else {
                    format!("{} waiting: {reason}: {message}", c.name)
                })
            })
            .collect();
        if !waiting.is_empty() {
            out.push(format!("pod {name}: {}", waiting.join("; ")));
            continue;
        }
        let phase = status.phase.clone().unwrap_or_default();
        let ready = conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if phase == "Pending" && conditions.is_empty() {
            out.push(format!(
                "pod {name} is Pending and not scheduled yet (is kube-scheduler running?)"
            ));
        } else if !ready {
            out.push(format!(
                "pod {name} is {phase} but not ready (its readiness probe fails: the operator has not started serving)"
            ));
        }
    }
    out
}

/// The operator Deployment: present, rolled out, and with its replicas available.
pub fn deployment_status(live: Option<&Deployment>, pods: &[Pod]) -> ComponentStatus {
    let component = display_name("Deployment", OPERATOR_NAME);
    let Some(deployment) = live else {
        return ComponentStatus::wrong(
            component,
            Health::Missing,
            "not found: nothing reconciles Agents, Memories, Pheromones, Umwelts or Proposals",
            INIT,
        );
    };
    let namespace = deployment.metadata.namespace.clone().unwrap_or_default();
    let look = format!(
        "look at `kubectl -n {namespace} describe deployment {OPERATOR_NAME}` and `kubectl -n {namespace} logs deployment/{OPERATOR_NAME}`"
    );
    let desired = deployment.spec.replicas.unwrap_or(1);
    let image = deployment
        .spec
        .template
        .spec
        .as_ref()
        .and_then(|p| p.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    if desired == 0 {
        return ComponentStatus::wrong(
            component,
            Health::Unhealthy,
            "scaled to 0 replicas: nothing reconciles",
            "run `kgents infra init --replicas 2`",
        );
    }
    let Some(status) = &deployment.status else {
        return ComponentStatus::wrong(
            component,
            Health::Unhealthy,
            format!("0/{desired} available: no controller has acted on it yet (no status)"),
            format!(
                "a cluster without kube-controller-manager never rolls it out; otherwise wait a moment and {look}"
            ),
        );
    };
    let available = status.available_replicas.unwrap_or(0);
    let rolled_out = status.observed_generation >= deployment.metadata.generation
        && status.updated_replicas.unwrap_or(0) >= desired;
    if available >= desired && rolled_out {
        return ComponentStatus::healthy(
            component,
            format!("{available}/{desired} available, image {image}"),
        );
    }
    let mut detail = format!("{available}/{desired} available, image {image}");
    if !rolled_out {
        detail.push_str(&format!(
            "; rollout in progress ({} of {desired} updated)",
            status.updated_replicas.unwrap_or(0)
        ));
    }
    for condition in status.conditions.iter().flatten() {
        let kind = condition.type_.as_deref().unwrap_or_default();
        let failing = condition.status.as_deref() != Some("True") || kind == "ReplicaFailure";
        if failing && let Some(message) = condition.message.as_deref().filter(|m| !m.is_empty()) {
            detail.push_str(&format!("; {kind}: {message}"));
        }
    }
    let problems = pod_problems(pods);
    if problems.is_empty() && pods.is_empty() {
        detail.push_str("; no pods exist");
    } else {
        for problem in problems {
            detail.push_str(&format!("; {problem}"));
        }
    }
    ComponentStatus::wrong(component, Health::Unhealthy, detail, look)
}

/// A Service and its ready endpoints.
pub fn service_status(
    name: &str,
    live: Option<&Service>,
    slices: &[EndpointSlice],
) -> ComponentStatus {
    let component = display_name("Service", name);
    if live.is_none() {
        return ComponentStatus::wrong(component, Health::Missing, "not found", INIT);
    }
    let endpoints: Vec<bool> = slices
        .iter()
        .flat_map(|s| s.endpoints.iter().flatten())
        .map(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .collect();
    let ready = endpoints.iter().filter(|r| **r).count();
    if ready > 0 {
        return ComponentStatus::healthy(component, format!("{ready} ready endpoint(s)"));
    }
    let detail = if slices.is_empty() {
        "no EndpointSlice: no ready operator pod, or no endpoint-slice controller (kube-controller-manager) in this cluster".to_owned()
    } else {
        format!(
            "no ready endpoint ({} not ready): no operator pod is ready",
            endpoints.len()
        )
    };
    ComponentStatus::wrong(
        component,
        Health::Unhealthy,
        detail,
        "see the Deployment's status above",
    )
}

/// The ValidatingWebhookConfiguration the operator registers: present when the webhook is
/// on (with a caBundle in every webhook, reaching the webhook Service), absent when it is off
/// (a stale one would make every proposal write fail closed).
pub fn webhook_status(
    config: &WebhookConfig,
    expected: bool,
    live: Option<&ValidatingWebhookConfiguration>,
) -> ComponentStatus {
    let component = display_name("ValidatingWebhookConfiguration", &config.configuration_name);
    let namespace = &config.namespace;
    let Some(live) = live else {
        return if expected {
            ComponentStatus::wrong(
                component,
                Health::Missing,
                "not registered: proposals are not checked at admission (the Proposal controller still re-checks them)",
                format!(
                    "the operator registers it once its webhook serves; see the Deployment's status above, and `kubectl -n {namespace} logs deployment/{OPERATOR_NAME}`"
                ),
            )
        } else {
            ComponentStatus::healthy(component, "absent, as the operator runs without --webhook")
        };
    };
    if !expected {
        return ComponentStatus::wrong(
            component,
            Health::Unhealthy,
            "registered although the operator runs without --webhook: every proposal write fails closed",
            format!(
                "run `kgents infra init --webhook`, or delete it: `kubectl delete validatingwebhookconfiguration {}`",
                config.configuration_name
            ),
        );
    }
    let webhooks = live.webhooks.clone().unwrap_or_default();
    if webhooks.is_empty() {
        return ComponentStatus::wrong(
            component,
            Health::Unhealthy,
            "holds no webhooks",
            format!(
                "restart the operator: `kubectl -n {namespace} rollout restart deployment/{OPERATOR_NAME}`"
            ),
        );
    }
    let (service_name, service_namespace) = match &config.endpoint {
        Endpoint::Service {
            name, namespace, ..
        } => (name.clone(), namespace.clone()),
        Endpoint::Url { host } => (host.clone(), String::new()),
    };
    for webhook in &webhooks {
        let client = &webhook.client_config;
        let target = match (&client.service, &client.url) {
            (Some(s), _) => format!("Service {}/{}", s.namespace, s.name),
            (None, Some(url)) => url.clone(),
            (None, None) => "nowhere".to_owned(),
        };
        let ours = client
            .service
            .as_ref()
            .is_some_and(|s| s.name == service_name && s.namespace == service_namespace);
        if !ours {
            return ComponentStatus::wrong(
                component,
                Health::Unhealthy,
                format!(
                    "webhook {} calls {target}, not Service {service_namespace}/{service_name}: an operator outside the cluster registered it (kgents dev up, or examples/operator --embedded --webhook)",
                    webhook.name
                ),
                "stop that operator (it removes its registration), or run `kgents infra teardown --yes` and `kgents infra init`",
            );
        }
        if client.ca_bundle.as_ref().is_none_or(|b| b.0.is_empty()) {
            return ComponentStatus::wrong(
                component,
                Health::Unhealthy,
                format!(
                    "webhook {} has no caBundle: the API server cannot trust the webhook's certificate, so every proposal write fails",
                    webhook.name
                ),
                format!(
                    "the operator writes it when its webhook starts; restart it: `kubectl -n {namespace} rollout restart deployment/{OPERATOR_NAME}`"
                ),
            );
        }
    }
    ComponentStatus::healthy(
        component,
        format!(
            "{} webhook(s) with a caBundle, through Service {service_namespace}/{service_name}",
            webhooks.len()
        ),
    )
}

/// Whether the live Deployment serves the webhook (runs with `--webhook`).
pub fn deployment_serves_webhook(deployment: &Deployment) -> bool {
    deployment.spec.template.spec.as_ref().is_some_and(|pod| {
        pod.containers
            .iter()
            .any(|c| c.args.iter().flatten().any(|a| a == "--webhook"))
    })
}

/// Reads every component from the cluster and judges it. `settings` gives the namespace and,
/// when no Deployment exists, whether the webhook is expected.
pub async fn status(
    client: &Client,
    settings: &InstallSettings,
) -> Result<StatusReport, InstallError> {
    settings.validate().map_err(InstallError::Invalid)?;
    let ns = settings.namespace.as_str();
    let mut components = Vec::new();

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for expected in plan::crds() {
        let name = expected.metadata.name.clone().unwrap_or_default();
        let shown = display_name("CustomResourceDefinition", &name);
        let live = call("reading", &shown, crds.get_opt(&name)).await?;
        components.push(crd_status(&expected, live.as_ref()));
    }

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let live_ns = call(
        "reading",
        &display_name("Namespace", ns),
        namespaces.get_opt(ns),
    )
    .await?;
    components.push(presence_status(
        "Namespace",
        ns,
        live_ns.is_some(),
        live_ns
            .as_ref()
            .is_some_and(|n| n.metadata.deletion_timestamp.is_some()),
    ));

    let (account, role, _) = rbac::manifests(ns);
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let name = account.metadata.name.clone().unwrap_or_default();
    let live = call(
        "reading",
        &display_name("ServiceAccount", &name),
        accounts.get_opt(&name),
    )
    .await?;
    components.push(presence_status(
        "ServiceAccount",
        &name,
        live.is_some(),
        false,
    ));

    let cluster_roles: Api<ClusterRole> = Api::all(client.clone());
    let live = call(
        "reading",
        &display_name("ClusterRole", OPERATOR_NAME),
        cluster_roles.get_opt(OPERATOR_NAME),
    )
    .await?;
    components.push(rules_status(
        "ClusterRole",
        OPERATOR_NAME,
        role.rules.as_deref().unwrap_or_default(),
        live.as_ref()
            .map(|r| r.rules.as_deref().unwrap_or_default()),
    ));
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let live = call(
        "reading",
        &display_name("ClusterRoleBinding", OPERATOR_NAME),
        bindings.get_opt(OPERATOR_NAME),
    )
    .await?;
    components.push(presence_status(
        "ClusterRoleBinding",
        OPERATOR_NAME,
        live.is_some(),
        false,
    ));

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let deployment = call(
        "reading",
        &display_name("Deployment", OPERATOR_NAME),
        deployments.get_opt(OPERATOR_NAME),
    )
    .await?;
    let webhook = deployment
        .as_ref()
        .map(deployment_serves_webhook)
        .unwrap_or(settings.webhook);

    if webhook {
        let (expected_role, _) = rbac::webhook_role_manifests(ns);
        let roles: Api<Role> = Api::namespaced(client.clone(), ns);
        let live = call(
            "reading",
            &display_name("Role", WEBHOOK_ROLE_NAME),
            roles.get_opt(WEBHOOK_ROLE_NAME),
        )
        .await?;
        components.push(rules_status(
            "Role",
            WEBHOOK_ROLE_NAME,
            expected_role.rules.as_deref().unwrap_or_default(),
            live.as_ref()
                .map(|r| r.rules.as_deref().unwrap_or_default()),
        ));
        let role_bindings: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
        let live = call(
            "reading",
            &display_name("RoleBinding", WEBHOOK_ROLE_NAME),
            role_bindings.get_opt(WEBHOOK_ROLE_NAME),
        )
        .await?;
        components.push(presence_status(
            "RoleBinding",
            WEBHOOK_ROLE_NAME,
            live.is_some(),
            false,
        ));
    }

    let pods = match &deployment {
        Some(_) => {
            let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
            let selector = format!("app.kubernetes.io/name={OPERATOR_NAME}");
            call(
                "listing",
                &format!("pods -l {selector}"),
                pods.list(&ListParams::default().labels(&selector)),
            )
            .await?
            .items
        }
        None => Vec::new(),
    };
    components.push(deployment_status(deployment.as_ref(), &pods));

    let webhook_settings = InstallSettings {
        webhook,
        ..settings.clone()
    };
    let mut services = vec![METRICS_SERVICE.to_owned()];
    if webhook && let Some(service) = plan::webhook_service(&webhook_settings) {
        services.push(service.metadata.name.unwrap_or_default());
    }
    let service_api: Api<Service> = Api::namespaced(client.clone(), ns);
    let slices_api: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    for name in services {
        let live = call(
            "reading",
            &display_name("Service", &name),
            service_api.get_opt(&name),
        )
        .await?;
        let slices = match &live {
            Some(_) => {
                let selector = format!("kubernetes.io/service-name={name}");
                call(
                    "listing",
                    &format!("endpointslices -l {selector}"),
                    slices_api.list(&ListParams::default().labels(&selector)),
                )
                .await?
                .items
            }
            None => Vec::new(),
        };
        components.push(service_status(&name, live.as_ref(), &slices));
    }

    let config = settings.webhook_config();
    let configurations: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let live = call(
        "reading",
        &display_name("ValidatingWebhookConfiguration", &config.configuration_name),
        configurations.get_opt(&config.configuration_name),
    )
    .await?;
    components.push(webhook_status(&config, webhook, live.as_ref()));

    Ok(StatusReport {
        namespace: ns.to_owned(),
        webhook,
        components,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd(conditions: serde_json::Value) -> CustomResourceDefinition {
        let mut crd = plan::crds().remove(0);
        crd.status = serde_json::from_value(json!({"conditions": conditions})).expect("status");
        crd
    }

    #[test]
    fn crds_are_judged_by_established_and_served_versions() {
        let expected = plan::crds().remove(0);
        assert_eq!(crd_status(&expected, None).health, Health::Missing);
        let pending = crd(
            json!([{"type": "NamesAccepted", "status": "False", "reason": "NameConflict", "message": "taken"}]),
        );
        let verdict = crd_status(&expected, Some(&pending));
        assert_eq!(verdict.health, Health::Unhealthy);
        assert!(
            verdict.detail.contains("NameConflict: taken"),
            "{}",
            verdict.detail
        );
        let ok = crd(json!([{"type": "Established", "status": "True"}]));
        assert_eq!(crd_status(&expected, Some(&ok)).health, Health::Healthy);
        let mut old = ok.clone();
        old.spec.versions[0].name = "v1alpha1".into();
        let verdict = crd_status(&expected, Some(&old));
        assert_eq!(verdict.health, Health::Unhealthy);
        assert!(
            verdict.detail.contains("does not serve v1"),
            "{}",
            verdict.detail
        );
    }

    fn deployment(replicas: i32, status: Option<serde_json::Value>) -> Deployment {
        let settings = InstallSettings {
            replicas,
            ..InstallSettings::default()
        };
        let mut d = plan::deployment(&settings);
        d.metadata.generation = Some(1);
        d.status = status.map(|s| serde_json::from_value(s).expect("status"));
        d
    }

    #[test]
    fn the_deployment_is_healthy_only_with_every_replica_available() {
        assert_eq!(deployment_status(None, &[]).health, Health::Missing);
        let fresh = deployment_status(Some(&deployment(2, None)), &[]);
        assert_eq!(fresh.health, Health::Unhealthy);
        assert!(
            fresh.detail.contains("no controller has acted"),
            "{}",
            fresh.detail
        );
        let pending: Pod = serde_json::from_value(json!({
            "metadata": {"name": "op-1"},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": "0/2 nodes are available"}]}
        }))
        .expect("pod");
        let pulling: Pod = serde_json::from_value(json!({
            "metadata": {"name": "op-2"},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [{"name": "operator", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}}]}
        }))
        .expect("pod");
        let stuck = deployment_status(
            Some(&deployment(
                2,
                Some(
                    json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 0}),
                ),
            )),
            &[pending, pulling],
        );
        assert_eq!(stuck.health, Health::Unhealthy);
        assert!(
            stuck.detail.starts_with("0/2 available"),
            "{}",
            stuck.detail
        );
        assert!(
            stuck
                .detail
                .contains("op-1 cannot be scheduled (Unschedulable: 0/2 nodes"),
            "{}",
            stuck.detail
        );
        assert!(
            stuck.detail.contains("ImagePullBackOff: not found"),
            "{}",
            stuck.detail
        );
        assert!(
            stuck
                .fix
                .as_deref()
                .is_some_and(|f| f.contains("kubectl -n kgents-system describe"))
        );
        let ok = deployment_status(
            Some(&deployment(
                2,
                Some(
                    json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
                ),
            )),
            &[],
        );
        assert_eq!(ok.health, Health::Healthy, "{ok}");
        let zero = deployment_status(
            Some(&deployment(0, Some(json!({"observedGeneration": 1})))),
            &[],
        );
        assert_eq!(zero.health, Health::Unhealthy);
    }

    #[test]
    fn services_need_ready_endpoints() {
        let service = plan::metrics_service(&InstallSettings::default());
        assert_eq!(service_status("m", None, &[]).health, Health::Missing);
        assert_eq!(
            service_status("m", Some(&service), &[]).health,
            Health::Unhealthy
        );
        let slice = |ready: bool| -> EndpointSlice {
            serde_json::from_value(json!({
                "metadata": {"name": "s"}, "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": ready}}]
            }))
            .expect("slice")
        };
        let not_ready = service_status("m", Some(&service), &[slice(false)]);
        assert_eq!(not_ready.health, Health::Unhealthy);
        assert!(
            not_ready.detail.contains("1 not ready"),
            "{}",
            not_ready.detail
        );
        assert_eq!(
            service_status("m", Some(&service), &[slice(true)]).health,
            Health::Healthy
        );
    }

    #[test]
    fn the_webhook_configuration_needs_a_ca_bundle_and_the_service() {
        let config = WebhookConfig::in_cluster("kgents-system");
        let bound = std::net::SocketAddr::from(([127, 0, 0, 1], 8443));
        assert_eq!(webhook_status(&config, true, None).health, Health::Missing);
        assert_eq!(webhook_status(&config, false, None).health, Health::Healthy);
        let without_ca =
            crate::admission::server::webhook_configuration(&config, bound, None, "op");
        let verdict = webhook_status(&config, true, Some(&without_ca));
        assert_eq!(verdict.health, Health::Unhealthy);
        assert!(verdict.detail.contains("no caBundle"), "{}", verdict.detail);
        let with_ca =
            crate::admission::server::webhook_configuration(&config, bound, Some("PEM"), "op");
        assert_eq!(
            webhook_status(&config, true, Some(&with_ca)).health,
            Health::Healthy
        );
        assert_eq!(
            webhook_status(&config, false, Some(&with_ca)).health,
            Health::Unhealthy
        );
        let mut local = super::super::local::embedded_webhook("kgents-system");
        local.bind = bound;
        let mut by_url =
            crate::admission::server::webhook_configuration(&local, bound, Some("PEM"), "op");
        by_url.metadata.name = Some(config.configuration_name.clone());
        let verdict = webhook_status(&config, true, Some(&by_url));
        assert_eq!(verdict.health, Health::Unhealthy);
        assert!(
            verdict.detail.contains("https://127.0.0.1:8443"),
            "{}",
            verdict.detail
        );
    }

    #[test]
    fn rules_must_match_this_version() {
        let (_, role, _) = rbac::manifests("ns");
        let rules = role.rules.clone().unwrap_or_default();
        assert_eq!(
            rules_status("ClusterRole", "r", &rules, Some(&rules)).health,
            Health::Healthy
        );
        assert_eq!(
            rules_status("ClusterRole", "r", &rules, None).health,
            Health::Missing
        );
        assert_eq!(
            rules_status("ClusterRole", "r", &rules, Some(&rules[1..])).health,
            Health::Unhealthy
        );
    }
}
