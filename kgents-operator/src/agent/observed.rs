//! What of its children the Agent controller reads, as types of their own (pure).
//!
//! The controller watches the Agents' Deployments and reads three things of each: its
//! metadata (the desired-state hash annotation, the owner, the generation), its replica count
//! and its status. Everything else — above all the pod template, most of a Deployment's bytes
//! — is never read. Decoded as a `k8s_openapi` [`Deployment`], every watch event and every
//! apply answer would build the whole `PodSpec` (a string per key, a map per level) only to
//! drop it again, and each cached Deployment would keep the inline size of an empty one.
//! [`ObservedDeployment`] is the same API resource (`apps/v1` `deployments`) decoded into
//! just those fields: serde skips the rest of the document without allocating.
//!
//! Of the other children (Services, NetworkPolicies) and of the answers to its applies
//! (ServiceAccounts, Memories, the Agent's status) the controller reads the metadata alone —
//! the desired-state hash and the owner — so they are decoded as [`ObservedMeta`].

use std::borrow::Cow;
use std::marker::PhantomData;

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

/// An object of kind `K` as read for its metadata alone: any API document of that kind
/// decodes into it, the rest of the document skipped, and it is the same resource (an
/// `Api<ObservedMeta<Service>>` reads, watches and applies Services).
///
/// Unlike kube's `PartialObjectMeta`, it asks the API server for the whole object (no
/// server-side conversion, which a watch would pay per event and per watcher) and buffers
/// nothing it does not keep.
#[derive(Serialize, Deserialize)]
pub struct ObservedMeta<K> {
    /// The object's metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(skip)]
    kind: PhantomData<fn() -> K>,
}

impl<K> ObservedMeta<K> {
    /// The view of an object with this metadata.
    pub fn new(metadata: ObjectMeta) -> Self {
        Self {
            metadata,
            kind: PhantomData,
        }
    }
}

impl<K: kube::Resource<DynamicType = ()>> ObservedMeta<K> {
    /// The view of a whole object.
    pub fn of(object: &K) -> Self {
        Self::new(object.meta().clone())
    }
}

// Written out: derived, they would ask `K: Clone` / `K: Debug` of a kind never held.
impl<K> Clone for ObservedMeta<K> {
    fn clone(&self) -> Self {
        Self::new(self.metadata.clone())
    }
}

impl<K> std::fmt::Debug for ObservedMeta<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservedMeta")
            .field("metadata", &self.metadata)
            .finish()
    }
}

impl<K> PartialEq for ObservedMeta<K> {
    fn eq(&self, other: &Self) -> bool {
        self.metadata == other.metadata
    }
}

impl<K: kube::Resource<DynamicType = ()>> kube::Resource for ObservedMeta<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
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
    fn any_object_decodes_to_its_metadata_and_stays_its_kind() {
        use k8s_openapi::api::core::v1::Service;
        use kube::Resource as _;
        let document = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "scout", "namespace": "hive", "ownerReferences": [
                {"apiVersion": "kgents.io/v1", "kind": "Agent", "name": "scout", "uid": "u1", "controller": true}
            ]},
            "spec": {"ports": [{"port": 80}], "selector": {"app": "scout"}},
            "status": {"loadBalancer": {}},
        });
        let observed: ObservedMeta<Service> =
            serde_json::from_value(document.clone()).expect("decodes");
        assert_eq!(
            observed.metadata.owner_references.as_ref().map(Vec::len),
            Some(1)
        );
        let whole: Service = serde_json::from_value(document).expect("decodes");
        assert_eq!(ObservedMeta::of(&whole), observed);
        assert_eq!(ObservedMeta::<Service>::kind(&()), "Service");
        assert_eq!(
            ObservedMeta::<Service>::url_path(&(), Some("hive")),
            Service::url_path(&(), Some("hive"))
        );
        assert_eq!(
            ObservedMeta::<kgents_crds::Memory>::url_path(&(), Some("hive")),
            kgents_crds::Memory::url_path(&(), Some("hive"))
        );
    }

    #[test]
    fn it_is_the_deployments_resource() {
        use kube::Resource as _;
        assert_eq!(ObservedDeployment::kind(&()), "Deployment");
        assert_eq!(ObservedDeployment::api_version(&()), "apps/v1");
        assert_eq!(ObservedDeployment::plural(&()), "deployments");
    }
}
