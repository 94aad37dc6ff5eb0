//! The symbiont sidecar in an Agent's pods (pure): when `spec.symbiont.enabled`, the pod
//! template carries a native sidecar — an init container with `restartPolicy: Always`, started
//! before the agent and stopped after it — serving the agent its memory, persona, safe mode and
//! pheromones on loopback. Rendered into the Deployment the Agent controller already applies,
//! so no mutating webhook is involved.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, ObjectFieldSelector,
    PersistentVolumeClaimVolumeSource, ResourceRequirements, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kgents_crds::agent::AgentSpec;
use kgents_crds::memory::MemoryType;

use super::plan::{AgentRef, PLACEHOLDER_UID, umwelt_service_account_name};

/// Name of the sidecar container.
pub const SIDECAR_NAME: &str = "symbiont";
/// Name of the volume holding the symbiont's store.
pub const MEMORY_VOLUME: &str = "kgents-memory";
/// Where the store's volume is mounted in the sidecar.
pub const MEMORY_DIR: &str = "/var/lib/kgents/memory";
/// Where the sidecar listens: loopback, so only the pod's own containers reach it.
pub const LISTEN: &str = "127.0.0.1:7777";
/// What the agent container is told to call (`KGENTS_SYMBIONT_URL`).
pub const URL: &str = "http://127.0.0.1:7777";
/// The store's size when the Agent has no Memory (the pod's own storage).
pub const SCRATCH_SIZE: &str = "64Mi";

/// The sidecar and the volume its store lives on.
#[derive(Clone, Debug, PartialEq)]
pub struct Sidecar {
    /// The init container (restartPolicy Always).
    pub container: Container,
    /// The store's volume: the Memory's claim, or an emptyDir for an EPHEMERAL memory or an
    /// Agent without one.
    pub memory_volume: Volume,
}

/// The sidecar an Agent's spec asks for, or `None`. `default_image` is the operator's
/// configured symbiont image.
pub fn sidecar(agent: &AgentRef<'_>, spec: &AgentSpec, default_image: &str) -> Option<Sidecar> {
    let symbiont = spec.symbiont.as_ref().filter(|s| s.enabled)?;
    let image = symbiont
        .image
        .as_deref()
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .unwrap_or(default_image)
        .to_owned();
    let memory = symbiont.memory.as_ref().filter(|m| m.enabled);
    let (memory_volume, size) = match memory {
        // The Memory is named after the Agent, and so is its claim.
        Some(m) if m.kind != MemoryType::Ephemeral => (
            Volume {
                name: MEMORY_VOLUME.to_owned(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: crate::memory::pvc_name(agent.name),
                    read_only: None,
                }),
                ..Volume::default()
            },
            m.size.0.clone(),
        ),
        // EPHEMERAL, or no Memory: the pod's own storage, bounded by the Memory's size.
        other => {
            let size = other.map_or_else(|| SCRATCH_SIZE.to_owned(), |m| m.size.0.clone());
            (
                Volume {
                    name: MEMORY_VOLUME.to_owned(),
                    empty_dir: Some(EmptyDirVolumeSource {
                        size_limit: Some(Quantity(size.clone())),
                        ..EmptyDirVolumeSource::default()
                    }),
                    ..Volume::default()
                },
                size,
            )
        }
    };
    let plain = |name: &str, value: &str| EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..EnvVar::default()
    };
    let mut env = vec![
        plain("KGENTS_SYMBIONT_LISTEN", LISTEN),
        plain("KGENTS_AGENT", agent.name),
        EnvVar {
            name: "KGENTS_NAMESPACE".to_owned(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.namespace".to_owned(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        },
        plain("KGENTS_MEMORY_DIR", MEMORY_DIR),
        plain("KGENTS_MEMORY_SIZE", &size),
        plain(
            "KGENTS_PODINFO_ANNOTATIONS",
            &format!(
                "{}/{}",
                crate::workload::PODINFO_DIR,
                crate::workload::ANNOTATIONS_FILE
            ),
        ),
    ];
    if memory.is_some() {
        // The Memory is named after the Agent; the symbiont reports its use to its status.
        env.push(plain("KGENTS_MEMORY", agent.name));
    }
    match &spec.umwelt {
        // The Umwelt's ConfigMap carries the ServiceAccount's name.
        Some(umwelt) => {
            env.push(plain("KGENTS_UMWELT", umwelt));
            env.push(plain(
                "KGENTS_UMWELT_CONFIG_MAP",
                &umwelt_service_account_name(umwelt),
            ));
        }
        // Without an Umwelt the agent has no affordances: memory, journal and safe mode only.
        None => env.push(plain("KGENTS_SYMBIONT_NO_CLUSTER", "true")),
    }
    let container = Container {
        name: SIDECAR_NAME.to_owned(),
        image: Some(image),
        restart_policy: Some("Always".to_owned()),
        env: Some(env),
        resources: Some(symbiont.resources.clone().unwrap_or_else(default_resources)),
        volume_mounts: Some(vec![
            VolumeMount {
                name: MEMORY_VOLUME.to_owned(),
                mount_path: MEMORY_DIR.to_owned(),
                ..VolumeMount::default()
            },
            crate::workload::podinfo_mount(),
        ]),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(PLACEHOLDER_UID),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    Some(Sidecar {
        container,
        memory_volume,
    })
}

/// The sidecar's default resources: requests 10m CPU and 16Mi memory, limit 64Mi memory (its
/// idle resident set is a few MiB; the store's page cache is capped at 4 MiB).
pub fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity("10m".to_owned())),
            ("memory".to_owned(), Quantity("16Mi".to_owned())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_owned(),
            Quantity("64Mi".to_owned()),
        )])),
        ..ResourceRequirements::default()
    }
}
