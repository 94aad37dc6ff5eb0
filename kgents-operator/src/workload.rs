//! The shape of an agent's workload, shared by the Agent controller (which writes it) and the
//! cognitive runner (which reads it): the labels of an Agent's children and pods, the pods'
//! readiness gate and downward-API volume, and where pods reach the API server. Neither of
//! those two folders imports the other; both import this.

use k8s_openapi::api::core::v1::{
    DownwardAPIVolumeFile, DownwardAPIVolumeSource, ObjectFieldSelector, PodReadinessGate, Volume,
    VolumeMount,
};
use kgents_crds::agent::{AgentSpec, HealthCheckType};

use crate::support::{MANAGED_BY, MANAGED_BY_LABEL};

/// Label naming the Agent a child belongs to (also on unowned children such as a RETAIN Memory,
/// so they can be traced back and trigger the Agent's reconcile).
pub const AGENT_LABEL: &str = "kgents.io/agent";
/// Label carrying the agent's genus (NetworkPolicy peers select on it).
pub const GENUS_LABEL: &str = "kgents.io/genus";
/// Selector label: the kind of workload.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// Value of [`NAME_LABEL`] on agent pods.
pub const NAME: &str = "kgents-agent";
/// Selector label: which Agent the pods belong to.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// The pod condition type of the readiness gate.
pub const READINESS_GATE: &str = "kgents.io/cognitive-ready";
/// The pod annotation that puts an agent's runtime in safe mode (`"true"`).
pub const SAFE_MODE_ANNOTATION: &str = "kgents.io/safe-mode";
/// Name of the downward-API volume in the pod template.
pub const PODINFO_VOLUME: &str = "kgents-podinfo";
/// Where the downward-API volume is mounted in the agent container.
pub const PODINFO_DIR: &str = "/etc/kgents/podinfo";
/// The file (under [`PODINFO_DIR`]) that holds the pod's annotations.
pub const ANNOTATIONS_FILE: &str = "annotations";
/// One address and port the API server answers on, as pods reach it: an endpoint of the
/// `default/kubernetes` Service. NetworkPolicies are enforced after the Service's virtual IP
/// is translated to an endpoint, so these (not the Service's cluster IP) are what a policy
/// must allow.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiServerEndpoint {
    /// An IPv4 or IPv6 address.
    pub ip: String,
    /// The TCP port (6443 on most clusters).
    pub port: i32,
}

/// Whether an Agent is judged by cognitive probes.
pub fn is_cognitive(spec: &AgentSpec) -> bool {
    spec.health
        .as_ref()
        .is_some_and(|h| h.kind == HealthCheckType::CognitiveProbe)
}

/// The readiness gate of a COGNITIVE_PROBE agent's pods.
pub fn readiness_gate() -> PodReadinessGate {
    PodReadinessGate {
        condition_type: READINESS_GATE.to_owned(),
    }
}

/// The downward-API volume exposing the pod's annotations as [`ANNOTATIONS_FILE`].
pub fn podinfo_volume() -> Volume {
    Volume {
        name: PODINFO_VOLUME.to_owned(),
        downward_api: Some(DownwardAPIVolumeSource {
            items: Some(vec![DownwardAPIVolumeFile {
                path: ANNOTATIONS_FILE.to_owned(),
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.annotations".to_owned(),
                    ..ObjectFieldSelector::default()
                }),
                ..DownwardAPIVolumeFile::default()
            }]),
            ..DownwardAPIVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// The agent container's read-only mount of [`podinfo_volume`] at [`PODINFO_DIR`].
pub fn podinfo_mount() -> VolumeMount {
    VolumeMount {
        name: PODINFO_VOLUME.to_owned(),
        mount_path: PODINFO_DIR.to_owned(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}

/// The label selector of every agent pod the operator manages.
pub fn pod_selector() -> String {
    format!("{NAME_LABEL}={NAME},{MANAGED_BY_LABEL}={MANAGED_BY}")
}
