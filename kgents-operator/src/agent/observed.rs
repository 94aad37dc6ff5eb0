//! What of a Deployment the Agent controller reads, as a type of its own (pure).
//!
//! The controller watches the Agents' Deployments and reads three things of each: its
//! metadata (the desired-state hash annotation, the owner, the generation), its replica count
//! and its status. Everything else — above all the pod template, most of a Deployment's bytes
//! — is never read. Decoded as a `k8s_openapi` [`Deployment`], every watch event and every
//! apply answer would build the whole `PodSpec` (a string per key, a map per level) only to
//! drop it again, and each cached Deployment would keep the inline size of an empty one.
//! [`ObservedDeployment`] is the same API resource (`apps/v1` `deployments`) decoded into
//! just those fields: serde skips the rest of the document without allocating.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// A Deployment as the Agent controller observes it: metadata, replica count and status,
/// without the pod template and the rest of the spec.
///
/// It is the `apps/v1` Deployment resource, so an `Api<ObservedDeployment>` reads and watches
/// Deployments, and applying a whole [`Deployment`] through it answers with this view.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedDeployment {
    /// The Deployment's metadata.
    pub metadata: ObjectMeta,
    /// The one field of the spec the status is computed from.
    #[serde(default)]
    pub spec: ObservedDeploymentSpec,
    /// The Deployment's status as its controller last wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DeploymentStatus>,
}

/// The part of a Deployment's spec the Agent controller reads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedDeploymentSpec {
    /// `spec.replicas`: the status counts mean "settled" only once they match it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
}

impl From<&Deployment> for ObservedDeployment {
    /// The view of a whole Deployment (e.g. one just planned or read by another client).
    fn from(deployment: &Deployment) -> Self {
        Self {
            metadata: deployment.metadata.clone(),
            spec: ObservedDeploymentSpec {
                replicas: deployment.spec.replicas,
            },
            status: deployment.status.clone(),
        }
    }
}

impl k8s_openapi::Resource for ObservedDeployment {
    const API_VERSION: &'static str = <Deployment as k8s_openapi::Resource>::API_VERSION;
    const GROUP: &'static str = <Deployment as k8s_openapi::Resource>::GROUP;
    const KIND: &'static str = <Deployment as k8s_openapi::Resource>::KIND;
    const VERSION: &'static str = <Deployment as k8s_openapi::Resource>::VERSION;
    const URL_PATH_SEGMENT: &'static str = <Deployment as k8s_openapi::Resource>::URL_PATH_SEGMENT;
    type Scope = <Deployment as k8s_openapi::Resource>::Scope;
}

impl k8s_openapi::Metadata for ObservedDeployment {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_deployment_document_decodes_to_what_the_controller_reads() {
        let document = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "scout",
                "namespace": "hive",
                "generation": 3,
                "annotations": {"kgents.io/desired-hash": "abc"},
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "scout"}},
                "template": {"spec": {"containers": [{"name": "agent", "image": "x"}]}},
            },
            "status": {"observedGeneration": 3, "readyReplicas": 1},
        });
        let observed: ObservedDeployment =
            serde_json::from_value(document.clone()).expect("decodes");
        assert_eq!(observed.metadata.generation, Some(3));
        assert_eq!(observed.spec.replicas, Some(2));
        let status = observed.status.as_ref().expect("status");
        assert_eq!(status.ready_replicas, Some(1));
        assert_eq!(status.observed_generation, Some(3));

        let whole: Deployment = serde_json::from_value(document).expect("decodes");
        assert_eq!(ObservedDeployment::from(&whole), observed);
    }

    #[test]
    fn a_deployment_without_spec_or_status_decodes() {
        let observed: ObservedDeployment =
            serde_json::from_value(json!({"metadata": {"name": "scout"}})).expect("decodes");
        assert_eq!(observed.spec.replicas, None);
        assert!(observed.status.is_none());
    }

    #[test]
    fn it_is_the_deployments_resource() {
        use kube::Resource as _;
        assert_eq!(ObservedDeployment::kind(&()), "Deployment");
        assert_eq!(ObservedDeployment::api_version(&()), "apps/v1");
        assert_eq!(ObservedDeployment::plural(&()), "deployments");
    }
}
