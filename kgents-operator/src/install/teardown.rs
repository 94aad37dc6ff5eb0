//! `kgents infra teardown`: removes what `init` installed and what the operator created for
//! itself (its webhook registration, certificate Secret and leader Lease).
//!
//! The CRDs stay unless [`TeardownOptions::delete_data`]: deleting a CRD deletes every object
//! of its kind, so keeping them keeps every Agent, Memory, Pheromone, Umwelt and Proposal (and
//! the storage the Memories own). With `delete_data` the CRDs go, with them every custom
//! resource (the operator's children go with their owners), the Memories' claims that outlive
//! their Memory (RETAIN and COMPOST, labelled `kgents.io/memory`), and the operator's
//! namespace (which may hold the admission policy ConfigMap a person wrote). The compost
//! finalizer of a Memory is removed by teardown itself, because the operator that would run it
//! is gone by then and its claim is deleted anyway.

use std::fmt;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kgents_crds::Memory;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::plan::{self, InstallSettings, METRICS_SERVICE, display_name};
use super::{InstallError, call, call_opt};
use crate::rbac::{OPERATOR_NAME, WEBHOOK_ROLE_NAME};

/// How teardown behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeardownOptions {
    /// Also delete the CRDs (and so every custom resource), the Memories' claims and the
    /// operator's namespace.
    pub delete_data: bool,
    /// How long to wait for the CRDs to be gone with `delete_data`.
    pub wait: Duration,
}

impl Default for TeardownOptions {
    fn default() -> Self {
        Self {
            delete_data: false,
            wait: Duration::from_secs(120),
        }
    }
}

/// What teardown did with one object.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Removal {
    /// Deleted (the API server accepted the deletion).
    Deleted,
    /// It was not there.
    NotFound,
    /// Kept on purpose; why.
    Kept(String),
}

/// One object of a teardown.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Removed {
    /// Kind of the object.
    pub kind: &'static str,
    /// Name of the object.
    pub name: String,
    /// Namespace of the object (`None`: cluster-scoped).
    pub namespace: Option<String>,
    /// What happened.
    pub removal: Removal,
}

impl fmt::Display for Removed {
    /// `deployment.apps/kgents-operator deleted`, like `kubectl delete`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = display_name(self.kind, &self.name);
        let name = match (&self.namespace, self.kind) {
            (Some(ns), "PersistentVolumeClaim") => format!("{name} -n {ns}"),
            _ => name,
        };
        match &self.removal {
            Removal::Deleted => write!(f, "{name} deleted"),
            Removal::NotFound => write!(f, "{name} not found"),
            Removal::Kept(why) => write!(f, "{name} kept ({why})"),
        }
    }
}

/// The operator's own objects, in the order they are removed: first the webhook registration
/// (so no proposal write waits on a webhook that is going away), then the Deployment and
/// Services, then RBAC, then what the operator created in its namespace.
pub fn components(settings: &InstallSettings) -> Vec<(&'static str, String, Option<String>)> {
    let ns = Some(settings.namespace.clone());
    let webhook = settings.webhook_config();
    let mut out = vec![(
        "ValidatingWebhookConfiguration",
        webhook.configuration_name.clone(),
        None,
    )];
    out.push(("Deployment", OPERATOR_NAME.to_owned(), ns.clone()));
    if let Some(service) = plan::webhook_service(settings) {
        out.push((
            "Service",
            service.metadata.name.unwrap_or_default(),
            ns.clone(),
        ));
    }
    out.push(("Service", METRICS_SERVICE.to_owned(), ns.clone()));
    out.push(("RoleBinding", WEBHOOK_ROLE_NAME.to_owned(), ns.clone()));
    out.push(("Role", WEBHOOK_ROLE_NAME.to_owned(), ns.clone()));
    out.push(("ClusterRoleBinding", OPERATOR_NAME.to_owned(), None));
    out.push(("ClusterRole", OPERATOR_NAME.to_owned(), None));
    out.push(("ServiceAccount", OPERATOR_NAME.to_owned(), ns.clone()));
    out.push(("Secret", webhook.secret_name.clone(), ns.clone()));
    out.push((
        "Lease",
        crate::leader::LeaderElectionConfig::new(&settings.namespace).lease_name,
        ns,
    ));
    out
}

async fn delete(
    client: &Client,
    kind: &'static str,
    name: &str,
    namespace: Option<&str>,
) -> Result<Removed, InstallError> {
    let resource = plan::api_resource(kind)
        .ok_or_else(|| InstallError::Invalid(format!("teardown does not know the kind {kind}")))?;
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let shown = display_name(kind, name);
    let outcome = call_opt(
        "deleting",
        &shown,
        api.delete(name, &DeleteParams::background()),
    )
    .await?;
    Ok(Removed {
        kind,
        name: name.to_owned(),
        namespace: namespace.map(str::to_owned),
        removal: if outcome.is_some() {
            Removal::Deleted
        } else {
            Removal::NotFound
        },
    })
}

/// How many objects a CRD holds (`None`: the CRD is not installed), up to 500 counted.
async fn count_objects(
    client: &Client,
    crd: &CustomResourceDefinition,
) -> Result<Option<(usize, bool)>, InstallError> {
    let Some(version) = crd.spec.versions.iter().find(|v| v.storage) else {
        return Ok(Some((0, false)));
    };
    let resource = kube::api::ApiResource {
        group: crd.spec.group.clone(),
        version: version.name.clone(),
        api_version: format!("{}/{}", crd.spec.group, version.name),
        kind: crd.spec.names.kind.clone(),
        plural: crd.spec.names.plural.clone(),
    };
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let shown = format!("{}.{}", crd.spec.names.plural, crd.spec.group);
    let list = call_opt(
        "listing",
        &shown,
        api.list_metadata(&ListParams::default().limit(500)),
    )
    .await?;
    Ok(list.map(|l| {
        let more = l
            .metadata
            .continue_
            .as_deref()
            .is_some_and(|c| !c.is_empty());
        (l.items.len(), more)
    }))
}

/// Removes the operator's components; with `delete_data` also the CRDs (every custom
/// resource), the Memories' claims and the namespace. Reports every object in order.
pub async fn teardown(
    client: &Client,
    settings: &InstallSettings,
    options: &TeardownOptions,
) -> Result<Vec<Removed>, InstallError> {
    settings.validate().map_err(InstallError::Invalid)?;
    let mut report = Vec::new();
    for (kind, name, namespace) in components(settings) {
        report.push(delete(client, kind, &name, namespace.as_deref()).await?);
    }
    let crds = plan::crds();
    if !options.delete_data {
        for crd in &crds {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let removal = match count_objects(client, crd).await? {
                None => Removal::NotFound,
                Some((count, more)) => Removal::Kept(format!(
                    "{}: {}{count} in the cluster; --delete-data deletes them with it",
                    crd.spec.names.plural,
                    if more { "at least " } else { "" },
                )),
            };
            report.push(Removed {
                kind: "CustomResourceDefinition",
                name,
                namespace: None,
                removal,
            });
        }
        report.push(Removed {
            kind: "Namespace",
            name: settings.namespace.clone(),
            namespace: None,
            removal: Removal::Kept(
                "it may hold your admission policy ConfigMap; --delete-data deletes it".to_owned(),
            ),
        });
        return Ok(report);
    }

    // The claims that outlive their Memory (RETAIN, COMPOST) carry the Memory label; owned
    // (DELETE) claims go with their Memory anyway.
    let claims: Api<PersistentVolumeClaim> = Api::all(client.clone());
    let selector = crate::memory::MEMORY_LABEL;
    let listed = call(
        "listing",
        &format!("persistentvolumeclaims -l {selector}"),
        claims.list_metadata(&ListParams::default().labels(selector)),
    )
    .await?;
    for claim in listed.items {
        let namespace = claim.namespace();
        report.push(
            delete(
                client,
                "PersistentVolumeClaim",
                &claim.name_any(),
                namespace.as_deref(),
            )
            .await?,
        );
    }
    let crd_api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        report.push(delete(client, "CustomResourceDefinition", &name, None).await?);
        names.push(name);
    }
    // The API server deletes every object of a deleted CRD, then the CRD; a Memory's compost
    // finalizer would hold it forever without the operator.
    let deadline = Instant::now() + options.wait;
    loop {
        release_compost_finalizers(client).await?;
        let mut remaining = Vec::new();
        for name in &names {
            let shown = display_name("CustomResourceDefinition", name);
            if call("reading", &shown, crd_api.get_opt(name))
                .await?
                .is_some()
            {
                remaining.push(name.clone());
            }
        }
        if remaining.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(InstallError::NotReached {
                what: format!(
                    "the CRDs {} to be deleted within {:?}",
                    remaining.join(", "),
                    options.wait
                ),
                message: "objects of theirs are still there, held by finalizers of another controller; list them with `kubectl get <kind> -A`, remove what holds them, and run the teardown again".to_owned(),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    report.push(delete(client, "Namespace", &settings.namespace, None).await?);
    Ok(report)
}

/// Removes the compost finalizer from Memories being deleted (none when the CRD is gone).
async fn release_compost_finalizers(client: &Client) -> Result<(), InstallError> {
    let memories: Api<Memory> = Api::all(client.clone());
    let Some(list) = call_opt(
        "listing",
        "memories.kgents.io",
        memories.list_metadata(&ListParams::default()),
    )
    .await?
    else {
        return Ok(());
    };
    for memory in list.items {
        if memory.metadata.deletion_timestamp.is_none()
            || !memory
                .finalizers()
                .iter()
                .any(|f| f == crate::memory::FINALIZER)
        {
            continue;
        }
        let rest: Vec<String> = memory
            .finalizers()
            .iter()
            .filter(|f| *f != crate::memory::FINALIZER)
            .cloned()
            .collect();
        let namespace = memory.namespace().unwrap_or_default();
        let name = memory.name_any();
        let api: Api<Memory> = Api::namespaced(client.clone(), &namespace);
        // The resourceVersion makes it a compare-and-swap; a conflict is retried on the next
        // round.
        let patch = json!({"metadata": {
            "finalizers": rest,
            "resourceVersion": memory.resource_version(),
        }});
        match call_opt(
            "patching",
            &format!("memory.kgents.io/{name} -n {namespace}"),
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .await
        {
            Ok(_) | Err(InstallError::Api { code: 409, .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhook_registration_goes_first_and_data_is_not_a_component() {
        let parts = components(&InstallSettings::default());
        assert_eq!(parts[0].0, "ValidatingWebhookConfiguration");
        assert_eq!(parts[1].0, "Deployment");
        assert!(
            !parts
                .iter()
                .any(|(kind, _, _)| matches!(*kind, "CustomResourceDefinition" | "Namespace")),
            "CRDs and the namespace are data, removed only on request"
        );
        for (kind, _, _) in &parts {
            assert!(plan::api_resource(kind).is_some(), "{kind}");
        }
        // Every object of the plan except CRDs and the namespace is removed.
        for object in plan::plan(&InstallSettings::default()) {
            if matches!(object.kind(), "CustomResourceDefinition" | "Namespace") {
                continue;
            }
            assert!(
                parts
                    .iter()
                    .any(|(kind, name, _)| *kind == object.kind() && name == object.name()),
                "{} is installed but not torn down",
                object.display_name()
            );
        }
    }

    #[test]
    fn lines_read_like_kubectl_delete() {
        let removed = Removed {
            kind: "CustomResourceDefinition",
            name: "agents.kgents.io".into(),
            namespace: None,
            removal: Removal::Kept("3 agents".into()),
        };
        assert_eq!(
            removed.to_string(),
            "customresourcedefinition.apiextensions.k8s.io/agents.kgents.io kept (3 agents)"
        );
        let claim = Removed {
            kind: "PersistentVolumeClaim",
            name: "m".into(),
            namespace: Some("hive".into()),
            removal: Removal::Deleted,
        };
        assert_eq!(claim.to_string(), "persistentvolumeclaim/m -n hive deleted");
    }
}
