//! What an Agent needs: a pure function from its spec to the children the operator applies.
//!
//! No I/O happens here. [`plan`] either returns the complete desired set of children
//! ([`Children`]) or says why the spec cannot be realised ([`SpecProblem`]); the controller
//! applies the former and reports the latter as phase `Failed`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, PodSecurityContext,
    PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile, SecurityContext, Service,
    ServiceAccount, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kgents_crds::agent::{AgentSpec, DeployMode};
use kgents_crds::memory::{MemorySpec, RetentionPolicy};
use kgents_crds::{Agent, Memory};
use serde::Serialize;

pub use crate::support::{DESIRED_HASH_ANNOTATION, MANAGED_BY, MANAGED_BY_LABEL};
pub use crate::workload::{
    AGENT_LABEL, ApiServerEndpoint, GENUS_LABEL, INSTANCE_LABEL, NAME, NAME_LABEL,
};

/// Port the agent container serves on, and the Service's port.
pub const AGENT_PORT: i32 = 8080;
/// Name of the agent container.
pub const CONTAINER_NAME: &str = "agent";
/// UID the placeholder container runs as (the conventional "nonroot" user).
pub const PLACEHOLDER_UID: i64 = 65532;

/// The identity of the Agent being planned, as read from the API server.
#[derive(Clone, Debug)]
pub struct AgentRef<'a> {
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.namespace`.
    pub namespace: &'a str,
    /// `metadata.uid` (owner references need it).
    pub uid: &'a str,
}

/// Settings the plan depends on.
#[derive(Clone, Debug)]
pub struct PlanConfig<'a> {
    /// Image of PLACEHOLDER agents.
    pub placeholder_image: &'a str,
    /// Where the API server is reached from pods (the endpoints of `default/kubernetes`): a
    /// restricted Agent's NetworkPolicy lets it connect there. Empty: no such egress.
    pub api_server: &'a [ApiServerEndpoint],
    /// Image of the symbiont sidecar, unless the Agent names its own.
    pub symbiont_image: &'a str,
}

/// The API server's endpoints read from the EndpointSlices of `default/kubernetes`: every
/// address of every endpoint not marked unready, with every TCP port of its slice; sorted,
/// without duplicates. Slices of other Services are ignored.
pub fn api_server_endpoints<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> Vec<ApiServerEndpoint> {
    let mut found = std::collections::BTreeSet::new();
    for slice in slices {
        let service = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"));
        if slice.metadata.namespace.as_deref() != Some("default")
            || service.map(String::as_str) != Some("kubernetes")
            || !matches!(slice.address_type.as_str(), "IPv4" | "IPv6")
        {
            continue;
        }
        let ports: Vec<i32> = slice
            .ports
            .iter()
            .flatten()
            .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
            .filter_map(|p| p.port)
            .filter(|p| (1..=65535).contains(p))
            .collect();
        for endpoint in slice.endpoints.iter().flatten() {
            let unready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .is_some_and(|ready| !ready);
            if unready {
                continue;
            }
            for address in &endpoint.addresses {
                // Only literal addresses make an ipBlock; anything else is not an IP.
                if address.parse::<std::net::IpAddr>().is_err() {
                    continue;
                }
                for port in &ports {
                    found.insert(ApiServerEndpoint {
                        ip: address.clone(),
                        port: *port,
                    });
                }
            }
        }
    }
    found.into_iter().collect()
}

/// Egress rules to the API server: for each port, the endpoint addresses on it as single-host
/// blocks (/32 for IPv4, /128 for IPv6). Nothing when no endpoint is known.
pub fn api_server_egress(endpoints: &[ApiServerEndpoint]) -> Vec<NetworkPolicyEgressRule> {
    let mut by_port: BTreeMap<i32, std::collections::BTreeSet<String>> = BTreeMap::new();
    for endpoint in endpoints {
        let Ok(ip) = endpoint.ip.parse::<std::net::IpAddr>() else {
            continue;
        };
        let cidr = match ip {
            std::net::IpAddr::V4(v4) => format!("{v4}/32"),
            std::net::IpAddr::V6(v6) => format!("{v6}/128"),
        };
        by_port.entry(endpoint.port).or_default().insert(cidr);
    }
    by_port
        .into_iter()
        .map(|(port, cidrs)| NetworkPolicyEgressRule {
            to: Some(
                cidrs
                    .into_iter()
                    .map(|cidr| NetworkPolicyPeer {
                        ip_block: Some(IPBlock { cidr, except: None }),
                        ..NetworkPolicyPeer::default()
                    })
                    .collect(),
            ),
            ports: Some(vec![NetworkPolicyPort {
                port: Some(IntOrString::Int(port)),
                protocol: Some("TCP".to_owned()),
                ..NetworkPolicyPort::default()
            }]),
        })
        .collect()
}

/// Why an Agent's spec cannot be realised. Shown as the `Ready` condition's reason and message
/// and in a Warning Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecProblem {
    /// PascalCase reason, e.g. `MissingImage`.
    pub reason: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

/// The Memory the Agent's symbiont asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredMemory {
    /// The Memory resource.
    pub memory: Memory,
    /// Whether it is owned by the Agent (only with retention DELETE) and so collected with it.
    pub owned: bool,
}

/// Everything the operator keeps in place for one Agent.
#[derive(Clone, Debug, PartialEq)]
pub struct Children {
    /// The ServiceAccount to create, or `None` when the Agent uses its Umwelt's account.
    pub service_account: Option<ServiceAccount>,
    /// The ServiceAccount the pods run as (the Agent's own or its Umwelt's).
    pub service_account_name: String,
    /// Whether [`Children::service_account_name`] belongs to an Umwelt (it must exist before
    /// pods can be created; the Umwelt controller creates it).
    pub uses_umwelt_account: bool,
    /// The Deployment.
    pub deployment: Deployment,
    /// The Service.
    pub service: Service,
    /// The NetworkPolicy, when the Agent's reach is restricted.
    pub network_policy: Option<NetworkPolicy>,
    /// The Memory, when the symbiont memory is enabled.
    pub memory: Option<DesiredMemory>,
    /// `status.selector`: the pods' label selector in string form (scale subresource).
    pub selector: String,
    /// Whether this is a DRY_RUN: compute everything, create nothing.
    pub dry_run: bool,
}

impl Children {
    /// One line per child, for the DRY_RUN report ("would create ...").
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(sa) = &self.service_account {
            out.push(format!("ServiceAccount {}", name_of(&sa.metadata)));
        }
        let image = self
            .deployment
            .spec
            .template
            .spec
            .as_ref()
            .and_then(|p| p.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let replicas = self.deployment.spec.replicas.unwrap_or(0);
        out.push(format!(
            "Deployment {} ({replicas} replica(s) of {image}, service account {})",
            name_of(&self.deployment.metadata),
            self.service_account_name
        ));
        out.push(format!("Service {}", name_of(&self.service.metadata)));
        if let Some(np) = &self.network_policy {
            out.push(format!("NetworkPolicy {}", name_of(&np.metadata)));
        }
        if let Some(memory) = &self.memory {
            out.push(format!(
                "Memory {} ({})",
                name_of(&memory.memory.metadata),
                if memory.owned {
                    "deleted with the Agent"
                } else {
                    "kept after the Agent is deleted"
                }
            ));
        }
        out
    }
}

fn name_of(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("")
}

/// The name of the ServiceAccount the Umwelt controller creates for `umwelt` (one function on
/// both sides, so the names cannot drift apart).
pub fn umwelt_service_account_name(umwelt: &str) -> String {
    crate::umwelt::service_account_name(umwelt)
}

/// Whether `name` is a DNS-1035 label (what a Service name must be): lowercase letters, digits
/// and `-`, starting with a letter, ending with a letter or digit, at most 63 characters.
pub fn is_dns1035_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

fn is_env_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The labels that select an Agent's pods.
pub fn selector_labels(agent: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_owned(), NAME.to_owned()),
        (INSTANCE_LABEL.to_owned(), agent.to_owned()),
    ])
}

/// `status.selector` in the string form the scale subresource expects.
pub fn selector_string(agent: &str) -> String {
    selector_labels(agent)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn labels(agent: &str, spec: &AgentSpec) -> BTreeMap<String, String> {
    let mut labels = selector_labels(agent);
    labels.insert(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned());
    labels.insert("app.kubernetes.io/part-of".to_owned(), "kgents".to_owned());
    labels.insert(AGENT_LABEL.to_owned(), agent.to_owned());
    labels.insert(GENUS_LABEL.to_owned(), spec.genus.as_str().to_owned());
    labels
}

/// The controller owner reference every owned child carries.
pub fn owner_reference(agent: &AgentRef<'_>) -> OwnerReference {
    crate::support::owner_reference_to::<Agent>(agent.name, agent.uid)
}

fn meta(agent: &AgentRef<'_>, spec: &AgentSpec, owned: bool) -> ObjectMeta {
    ObjectMeta {
        name: Some(agent.name.to_owned()),
        namespace: Some(agent.namespace.to_owned()),
        labels: Some(labels(agent.name, spec)),
        owner_references: owned.then(|| vec![owner_reference(agent)]),
        ..ObjectMeta::default()
    }
}

/// `object` with the hash of its own desired state in [`DESIRED_HASH_ANNOTATION`]. Serialising
/// plain data cannot fail; if it did, the object would carry no hash and simply be applied on
/// every reconcile.
fn stamped<K: kube::Resource + Serialize>(mut object: K) -> K {
    let _ = crate::support::stamp(&mut object);
    object
}

/// Plans the children of an Agent.
pub fn plan(
    agent: &AgentRef<'_>,
    spec: &AgentSpec,
    config: &PlanConfig<'_>,
) -> Result<Children, SpecProblem> {
    if !is_dns1035_label(agent.name) {
        return Err(SpecProblem {
            reason: "InvalidName",
            message: format!(
                "the Agent's children (a Service among them) are named after it, and '{}' is not a valid Service name: use at most 63 lowercase letters, digits and '-', starting with a letter; recreate the Agent under such a name",
                agent.name
            ),
        });
    }
    let env = environment(agent, spec)?;
    let (image, command, args, resources, run_as_user) = match spec.deploy_mode {
        DeployMode::Full => {
            let image = spec
                .image
                .as_deref()
                .map(str::trim)
                .filter(|i| !i.is_empty())
                .ok_or_else(|| SpecProblem {
                    reason: "MissingImage",
                    message: "deployMode FULL needs spec.image (the container image that runs the agent); set spec.image or use deployMode PLACEHOLDER".to_owned(),
                })?;
            (
                image.to_owned(),
                spec.command.clone(),
                spec.args.clone(),
                spec.resources.clone(),
                None,
            )
        }
        DeployMode::Placeholder | DeployMode::DryRun => (
            config.placeholder_image.to_owned(),
            Vec::new(),
            Vec::new(),
            Some(spec.resources.clone().unwrap_or_else(placeholder_resources)),
            Some(PLACEHOLDER_UID),
        ),
    };

    let (service_account, service_account_name, uses_umwelt_account) = match &spec.umwelt {
        Some(umwelt) => (None, umwelt_service_account_name(umwelt), true),
        None => (
            Some(stamped(ServiceAccount {
                metadata: meta(agent, spec, true),
                ..ServiceAccount::default()
            })),
            agent.name.to_owned(),
            false,
        ),
    };

    let container = Container {
        name: CONTAINER_NAME.to_owned(),
        image: Some(image),
        command: (!command.is_empty()).then_some(command),
        args: (!args.is_empty()).then_some(args),
        env: (!env.is_empty()).then_some(env),
        ports: Some(vec![ContainerPort {
            name: Some("http".to_owned()),
            container_port: AGENT_PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        resources,
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user,
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            seccomp_profile: Some(runtime_default()),
            ..SecurityContext::default()
        }),
        // The root filesystem is read-only; /tmp is the one scratch place.
        volume_mounts: Some(vec![VolumeMount {
            name: "tmp".to_owned(),
            mount_path: "/tmp".to_owned(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    let mut container = container;
    let mut volumes = vec![Volume {
        name: "tmp".to_owned(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }];
    // COGNITIVE_PROBE agents: pods are Ready only once the probes say the agent thinks (the
    // readiness gate the cognitive runner sets), and the runtime can read its safe-mode
    // annotation live from the downward-API file.
    let cognitive = crate::workload::is_cognitive(spec);
    if cognitive {
        container
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .push(crate::workload::podinfo_mount());
        volumes.push(crate::workload::podinfo_volume());
    }

    // The symbiont: a native sidecar with the store's volume and the pod's annotations; the
    // agent is told where it listens.
    let sidecar = super::sidecar::sidecar(agent, spec, config.symbiont_image);
    if let Some(sidecar) = &sidecar {
        if !cognitive {
            volumes.push(crate::workload::podinfo_volume());
        }
        volumes.push(sidecar.memory_volume.clone());
        let env = container.env.get_or_insert_with(Vec::new);
        if !env.iter().any(|e| e.name == "KGENTS_SYMBIONT_URL") {
            env.push(EnvVar {
                name: "KGENTS_SYMBIONT_URL".to_owned(),
                value: Some(super::sidecar::URL.to_owned()),
                ..EnvVar::default()
            });
        }
    }

    // The symbiont runs as a non-root user; a claim's volume is writable by it only through
    // the pod's fsGroup.
    let fs_group = sidecar.as_ref().map(|_| PLACEHOLDER_UID);
    let pod_labels = labels(agent.name, spec);
    let deployment = stamped(Deployment {
        metadata: meta(agent, spec, true),
        spec: DeploymentSpec {
            replicas: Some(spec.replicas),
            selector: LabelSelector {
                match_labels: Some(selector_labels(agent.name)),
                ..LabelSelector::default()
            },
            // Recreate: the old generation of an agent stops before the new one starts, so two
            // generations never act at once.
            strategy: Some(DeploymentStrategy {
                type_: Some(
                    if spec.reconciliation.sequential {
                        "Recreate"
                    } else {
                        "RollingUpdate"
                    }
                    .to_owned(),
                ),
                ..DeploymentStrategy::default()
            }),
            revision_history_limit: Some(3),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(service_account_name.clone()),
                    containers: vec![container],
                    init_containers: sidecar.map(|s| vec![s.container]),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        fs_group,
                        seccomp_profile: Some(runtime_default()),
                        ..PodSecurityContext::default()
                    }),
                    volumes: Some(volumes),
                    readiness_gates: cognitive.then(|| vec![crate::workload::readiness_gate()]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    });

    let service = stamped(Service {
        metadata: meta(agent, spec, true),
        spec: Some(ServiceSpec {
            selector: Some(selector_labels(agent.name)),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: AGENT_PORT,
                protocol: Some("TCP".to_owned()),
                target_port: Some(IntOrString::String("http".to_owned())),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    });

    let network_policy = network_policy(agent, spec, config.api_server).map(stamped);

    let memory = spec
        .symbiont
        .as_ref()
        .and_then(|s| s.memory.as_ref())
        .filter(|m| m.enabled)
        .map(|m| {
            // Only a DELETE memory is owned: an ownerReference would make the garbage collector
            // remove a RETAIN or COMPOST memory with the Agent.
            let owned = m.retention_policy == RetentionPolicy::Delete;
            let mut memory = Memory::new(
                agent.name,
                MemorySpec {
                    owner: agent.name.to_owned(),
                    kind: m.kind,
                    size: m.size.clone(),
                    storage_class_name: None,
                    shared_with: Vec::new(),
                    write_access: Vec::new(),
                    retention_policy: m.retention_policy,
                    compost_after_hours: 72,
                    backup_schedule: None,
                },
            );
            memory.metadata = meta(agent, spec, owned);
            DesiredMemory {
                memory: stamped(memory),
                owned,
            }
        });

    Ok(Children {
        service_account,
        service_account_name,
        uses_umwelt_account,
        deployment,
        service,
        network_policy,
        memory,
        selector: selector_string(agent.name),
        dry_run: spec.deploy_mode == DeployMode::DryRun,
    })
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        ..SeccompProfile::default()
    }
}

fn placeholder_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity("5m".to_owned())),
            ("memory".to_owned(), Quantity("8Mi".to_owned())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_owned(),
            Quantity("32Mi".to_owned()),
        )])),
        ..ResourceRequirements::default()
    }
}

/// The container's environment: identity, then `KGENTS_<KEY>` from `spec.config`, then the
/// user's `spec.env`. Names are unique (server-side apply merges env by name and rejects
/// duplicates); a user variable replaces a generated one of the same name.
fn environment(agent: &AgentRef<'_>, spec: &AgentSpec) -> Result<Vec<EnvVar>, SpecProblem> {
    let plain = |name: String, value: String| EnvVar {
        name,
        value: Some(value),
        ..EnvVar::default()
    };
    let mut env = vec![
        plain("KGENTS_AGENT".to_owned(), agent.name.to_owned()),
        plain("KGENTS_GENUS".to_owned(), spec.genus.as_str().to_owned()),
    ];
    let mut from_key: BTreeMap<String, &str> = BTreeMap::new();
    for (key, value) in &spec.config {
        if !is_env_key(key) {
            return Err(SpecProblem {
                reason: "InvalidConfig",
                message: format!(
                    "spec.config key '{key}' cannot become an environment variable: use letters, digits and underscores, not starting with a digit"
                ),
            });
        }
        let name = format!("KGENTS_{}", key.to_ascii_uppercase());
        if let Some(other) = from_key.insert(name.clone(), key) {
            return Err(SpecProblem {
                reason: "InvalidConfig",
                message: format!(
                    "spec.config keys '{other}' and '{key}' both become {name}; keep only one of them"
                ),
            });
        }
        if let Some(existing) = env.iter_mut().find(|e| e.name == name) {
            existing.value = Some(value.clone());
        } else {
            env.push(plain(name, value.clone()));
        }
    }
    for user in &spec.env {
        if let Some(existing) = env.iter_mut().find(|e| e.name == user.name) {
            *existing = user.clone();
        } else {
            env.push(user.clone());
        }
    }
    Ok(env)
}

/// The NetworkPolicy of a restricted Agent.
///
/// An Agent without `spec.networkPolicy`, or with `allowEgress: true`, is unrestricted and gets
/// none. Otherwise its pods may open connections only to the pods of its peer genera in its
/// namespace, to DNS (UDP and TCP 53 in any namespace, so the cluster DNS in kube-system
/// keeps working — a policy without it breaks every name lookup) and to the API server's
/// endpoints (an agent talks to Kubernetes: pheromones, its Umwelt's grants). Ingress is not
/// restricted: the cognitive probes and the Service must reach the agent.
fn network_policy(
    agent: &AgentRef<'_>,
    spec: &AgentSpec,
    api_server: &[ApiServerEndpoint],
) -> Option<NetworkPolicy> {
    let policy = spec.network_policy.as_ref()?;
    if policy.allow_egress {
        return None;
    }
    let port = |protocol: &str| NetworkPolicyPort {
        port: Some(IntOrString::Int(53)),
        protocol: Some(protocol.to_owned()),
        ..NetworkPolicyPort::default()
    };
    let mut egress = vec![NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector::default()),
            ..NetworkPolicyPeer::default()
        }]),
        ports: Some(vec![port("UDP"), port("TCP")]),
    }];
    let mut peers: Vec<_> = policy.allowed_peers.clone();
    peers.sort();
    peers.dedup();
    if !peers.is_empty() {
        egress.push(NetworkPolicyEgressRule {
            to: Some(
                peers
                    .iter()
                    .map(|genus| NetworkPolicyPeer {
                        pod_selector: Some(LabelSelector {
                            match_labels: Some(BTreeMap::from([
                                (NAME_LABEL.to_owned(), NAME.to_owned()),
                                (GENUS_LABEL.to_owned(), genus.as_str().to_owned()),
                            ])),
                            ..LabelSelector::default()
                        }),
                        ..NetworkPolicyPeer::default()
                    })
                    .collect(),
            ),
            ports: None,
        });
    }
    egress.extend(api_server_egress(api_server));
    Some(NetworkPolicy {
        metadata: meta(agent, spec, true),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector_labels(agent.name)),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Egress".to_owned()]),
            egress: Some(egress),
            ..NetworkPolicySpec::default()
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const AGENT: AgentRef<'static> = AgentRef {
        name: "scout",
        namespace: "hive",
        uid: "uid-1",
    };
    const CONFIG: PlanConfig<'static> = PlanConfig {
        placeholder_image: "registry.k8s.io/pause:3.10",
        api_server: &[],
        symbiont_image: "symbiont",
    };

    fn spec(json: serde_json::Value) -> AgentSpec {
        serde_json::from_value(json).expect("a valid AgentSpec")
    }

    fn container(children: &Children) -> &Container {
        &children
            .deployment
            .spec
            .template
            .spec
            .as_ref()
            .expect("pod spec")
            .containers[0]
    }

    fn env_value<'a>(c: &'a Container, name: &str) -> Option<&'a str> {
        c.env
            .as_ref()?
            .iter()
            .find(|e| e.name == name)?
            .value
            .as_deref()
    }

    #[test]
    fn children_are_named_after_the_agent_and_owned_by_it() {
        let children =
            plan(&AGENT, &spec(serde_json::json!({"genus": "B"})), &CONFIG).expect("plan");
        let sa = children
            .service_account
            .as_ref()
            .expect("own service account");
        for meta in [
            &children.deployment.metadata,
            &children.service.metadata,
            &sa.metadata,
        ] {
            assert_eq!(meta.name.as_deref(), Some("scout"));
            assert_eq!(meta.namespace.as_deref(), Some("hive"));
            let owners = meta.owner_references.as_ref().expect("owner references");
            assert_eq!(owners.len(), 1);
            assert_eq!(owners[0].uid, "uid-1");
            assert_eq!(owners[0].controller, Some(true));
            assert!(
                meta.annotations
                    .as_ref()
                    .expect("annotations")
                    .contains_key(DESIRED_HASH_ANNOTATION)
            );
        }
        assert_eq!(children.service_account_name, "scout");
        assert!(children.network_policy.is_none());
        assert!(children.memory.is_none());
        assert_eq!(
            children.selector,
            "app.kubernetes.io/instance=scout,app.kubernetes.io/name=kgents-agent"
        );
        assert!(!children.dry_run);
    }

    #[test]
    fn two_agents_of_one_genus_get_disjoint_children() {
        let s = spec(serde_json::json!({"genus": "B"}));
        let other = AgentRef {
            name: "scout-2",
            ..AGENT
        };
        let a = plan(&AGENT, &s, &CONFIG).expect("plan a");
        let b = plan(&other, &s, &CONFIG).expect("plan b");
        assert_ne!(a.deployment.metadata.name, b.deployment.metadata.name);
        assert_ne!(a.service.metadata.name, b.service.metadata.name);
        assert_ne!(
            Some(&a.deployment.spec).map(|s| &s.selector),
            Some(&b.deployment.spec).map(|s| &s.selector)
        );
        assert_ne!(a.selector, b.selector);
    }

    #[test]
    fn placeholder_runs_the_configured_image_hardened() {
        let children = plan(
            &AGENT,
            &spec(serde_json::json!({"genus": "C", "replicas": 2})),
            &CONFIG,
        )
        .expect("plan");
        let deployment = &children.deployment.spec;
        assert_eq!(deployment.replicas, Some(2));
        assert_eq!(
            deployment
                .strategy
                .as_ref()
                .and_then(|s| s.type_.as_deref()),
            Some("Recreate")
        );
        let c = container(&children);
        assert_eq!(c.image.as_deref(), Some("registry.k8s.io/pause:3.10"));
        assert!(c.command.is_none());
        let sc = c.security_context.as_ref().expect("security context");
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.run_as_user, Some(PLACEHOLDER_UID));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(
            sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_owned()])
        );
        assert_eq!(
            sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
            Some("RuntimeDefault")
        );
        assert!(
            c.resources.is_some(),
            "placeholder pods carry small requests and limits"
        );
        assert_eq!(env_value(c, "KGENTS_AGENT"), Some("scout"));
        assert_eq!(env_value(c, "KGENTS_GENUS"), Some("C"));
    }

    #[test]
    fn full_mode_uses_the_users_container_as_given() {
        let s = spec(serde_json::json!({
            "genus": "PSI",
            "deployMode": "FULL",
            "image": "ghcr.io/example/psi:1.2",
            "command": ["/bin/agent"],
            "args": ["--serve"],
            "env": [{"name": "LOG", "value": "debug"}, {"name": "KGENTS_MODEL", "value": "from-env"}],
            "config": {"model": "from-config", "temperature": "0.2"},
            "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m"}},
            "reconciliation": {"sequential": false}
        }));
        let children = plan(&AGENT, &s, &CONFIG).expect("plan");
        let c = container(&children);
        assert_eq!(c.image.as_deref(), Some("ghcr.io/example/psi:1.2"));
        assert_eq!(c.command, Some(vec!["/bin/agent".to_owned()]));
        assert_eq!(c.args, Some(vec!["--serve".to_owned()]));
        assert_eq!(env_value(c, "LOG"), Some("debug"));
        assert_eq!(env_value(c, "KGENTS_TEMPERATURE"), Some("0.2"));
        // The user's explicit variable wins over the generated one, and names stay unique.
        assert_eq!(env_value(c, "KGENTS_MODEL"), Some("from-env"));
        let names: Vec<_> = c
            .env
            .as_ref()
            .expect("env")
            .iter()
            .map(|e| e.name.clone())
            .collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(names.len(), unique.len(), "{names:?}");
        assert_eq!(c.resources, s.resources);
        let sc = c.security_context.as_ref().expect("security context");
        assert_eq!(
            sc.run_as_user, None,
            "a FULL image runs as its own non-root user"
        );
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(
            Some(&children.deployment.spec)
                .and_then(|d| d.strategy.as_ref())
                .and_then(|s| s.type_.as_deref()),
            Some("RollingUpdate")
        );
    }

    #[test]
    fn full_mode_without_image_is_a_spec_problem() {
        for image in [serde_json::Value::Null, serde_json::json!("  ")] {
            let mut json = serde_json::json!({"genus": "A", "deployMode": "FULL"});
            if !image.is_null() {
                json["image"] = image;
            }
            let problem = plan(&AGENT, &spec(json), &CONFIG).expect_err("no image");
            assert_eq!(problem.reason, "MissingImage");
            assert!(
                problem.message.contains("spec.image"),
                "{}",
                problem.message
            );
        }
    }

    #[test]
    fn bad_names_and_config_keys_are_spec_problems() {
        let bad = AgentRef {
            name: "9lives.example",
            ..AGENT
        };
        let problem =
            plan(&bad, &spec(serde_json::json!({"genus": "A"})), &CONFIG).expect_err("bad name");
        assert_eq!(problem.reason, "InvalidName");

        let s = spec(serde_json::json!({"genus": "A", "config": {"fooBar": "1", "FOOBAR": "2"}}));
        let problem = plan(&AGENT, &s, &CONFIG).expect_err("collision");
        assert_eq!(problem.reason, "InvalidConfig");
        assert!(
            problem.message.contains("KGENTS_FOOBAR"),
            "{}",
            problem.message
        );

        let s = spec(serde_json::json!({"genus": "A", "config": {"1st": "x"}}));
        assert_eq!(
            plan(&AGENT, &s, &CONFIG).expect_err("bad key").reason,
            "InvalidConfig"
        );
    }

    #[test]
    fn an_umwelt_supplies_the_service_account() {
        let s = spec(serde_json::json!({"genus": "K", "umwelt": "explorer"}));
        let children = plan(&AGENT, &s, &CONFIG).expect("plan");
        assert!(children.service_account.is_none());
        assert!(children.uses_umwelt_account);
        assert_eq!(
            children.service_account_name,
            umwelt_service_account_name("explorer")
        );
        let pod = Some(&children.deployment.spec)
            .and_then(|s| s.template.spec.as_ref())
            .expect("pod");
        assert_eq!(pod.service_account_name.as_deref(), Some("explorer-umwelt"));
    }

    #[test]
    fn restricted_agents_get_a_policy_that_allows_dns_and_peers() {
        let unrestricted =
            spec(serde_json::json!({"genus": "A", "networkPolicy": {"allowEgress": true}}));
        assert!(
            plan(&AGENT, &unrestricted, &CONFIG)
                .expect("plan")
                .network_policy
                .is_none()
        );

        let isolated = spec(serde_json::json!({"genus": "A", "networkPolicy": {}}));
        let np = plan(&AGENT, &isolated, &CONFIG)
            .expect("plan")
            .network_policy
            .expect("policy");
        let egress = np
            .spec
            .as_ref()
            .and_then(|s| s.egress.clone())
            .expect("egress");
        assert_eq!(egress.len(), 1, "DNS only");
        let ports = egress[0].ports.clone().expect("ports");
        let protocols: Vec<_> = ports.iter().filter_map(|p| p.protocol.clone()).collect();
        assert_eq!(protocols, ["UDP", "TCP"]);
        assert!(ports.iter().all(|p| p.port == Some(IntOrString::Int(53))));
        assert_eq!(
            egress[0]
                .to
                .as_ref()
                .and_then(|t| t[0].namespace_selector.clone()),
            Some(LabelSelector::default()),
            "DNS in any namespace (kube-system included)"
        );

        let peers = spec(
            serde_json::json!({"genus": "A", "networkPolicy": {"allowedPeers": ["B", "PSI", "B"]}}),
        );
        let np = plan(&AGENT, &peers, &CONFIG)
            .expect("plan")
            .network_policy
            .expect("policy");
        let egress = np
            .spec
            .as_ref()
            .and_then(|s| s.egress.clone())
            .expect("egress");
        assert_eq!(egress.len(), 2);
        let genera: Vec<_> = egress[1]
            .to
            .as_ref()
            .expect("peers")
            .iter()
            .filter_map(|p| {
                p.pod_selector
                    .as_ref()?
                    .match_labels
                    .as_ref()?
                    .get(GENUS_LABEL)
                    .cloned()
            })
            .collect();
        assert_eq!(genera, ["B", "PSI"]);
        assert_eq!(np.metadata.owner_references.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn only_a_delete_memory_is_owned() {
        for (retention, owned) in [("DELETE", true), ("RETAIN", false), ("COMPOST", false)] {
            let s = spec(
                serde_json::json!({"genus": "D", "symbiont": {"memory": {"retentionPolicy": retention, "size": "1Gi"}}}),
            );
            let memory = plan(&AGENT, &s, &CONFIG)
                .expect("plan")
                .memory
                .expect("memory");
            assert_eq!(memory.owned, owned, "{retention}");
            assert_eq!(
                memory.memory.metadata.owner_references.is_some(),
                owned,
                "{retention}"
            );
            assert_eq!(memory.memory.metadata.name.as_deref(), Some("scout"));
            assert_eq!(
                memory
                    .memory
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(AGENT_LABEL))
                    .map(String::as_str),
                Some("scout"),
                "an unowned memory is still traceable to its agent"
            );
            assert_eq!(memory.memory.spec.owner, "scout");
            assert_eq!(memory.memory.spec.size, Quantity("1Gi".to_owned()));
        }
        let disabled =
            spec(serde_json::json!({"genus": "D", "symbiont": {"memory": {"enabled": false}}}));
        assert!(
            plan(&AGENT, &disabled, &CONFIG)
                .expect("plan")
                .memory
                .is_none()
        );
    }

    #[test]
    fn dry_run_is_planned_and_described() {
        let s =
            spec(serde_json::json!({"genus": "E", "deployMode": "DRY_RUN", "networkPolicy": {}}));
        let children = plan(&AGENT, &s, &CONFIG).expect("plan");
        assert!(children.dry_run);
        let lines = children.describe();
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(
            lines[1].starts_with("Deployment scout (1 replica(s)"),
            "{lines:?}"
        );
    }

    #[test]
    fn the_hash_follows_the_spec() {
        let one = plan(&AGENT, &spec(serde_json::json!({"genus": "B"})), &CONFIG).expect("plan");
        let again = plan(&AGENT, &spec(serde_json::json!({"genus": "B"})), &CONFIG).expect("plan");
        let two = plan(
            &AGENT,
            &spec(serde_json::json!({"genus": "B", "replicas": 2})),
            &CONFIG,
        )
        .expect("plan");
        let hash = |c: &Children| {
            c.deployment
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DESIRED_HASH_ANNOTATION))
                .cloned()
        };
        assert_eq!(hash(&one), hash(&again));
        assert_ne!(hash(&one), hash(&two));
        assert_eq!(
            one.service.metadata.annotations, two.service.metadata.annotations,
            "the Service does not depend on replicas, so it is not re-applied"
        );
    }

    #[test]
    fn dns1035_labels() {
        assert!(is_dns1035_label("a"));
        assert!(is_dns1035_label("scout-2"));
        for bad in ["", "2scout", "Scout", "scout-", "a.b", &"a".repeat(64)] {
            assert!(!is_dns1035_label(bad), "{bad}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_valid_spec_plans_consistently(
            replicas in 0i32..=10,
            genus in 0usize..28,
            keys in proptest::collection::btree_map("[A-Za-z_][A-Za-z0-9_]{0,8}", "[ -~]{0,12}", 0..8),
            sequential in any::<bool>(),
            name in "[a-z][a-z0-9-]{0,20}[a-z0-9]",
        ) {
            let upper: std::collections::BTreeSet<_> = keys.keys().map(|k| k.to_ascii_uppercase()).collect();
            let s = spec(serde_json::json!({
                "genus": kgents_crds::Genus::ALL[genus].as_str(),
                "replicas": replicas,
                "config": keys,
                "reconciliation": {"sequential": sequential},
            }));
            let agent = AgentRef { name: &name, ..AGENT };
            let result = plan(&agent, &s, &CONFIG);
            if upper.len() < keys.len() {
                prop_assert_eq!(result.expect_err("colliding keys").reason, "InvalidConfig");
                return Ok(());
            }
            let children = result.expect("a valid spec plans");
            let d = &children.deployment.spec;
            prop_assert_eq!(d.replicas, Some(replicas));
            let selector = d.selector.match_labels.clone().expect("selector");
            let template = d.template.metadata.as_ref().and_then(|m| m.labels.clone()).expect("labels");
            for (k, v) in &selector {
                prop_assert_eq!(template.get(k), Some(v), "the selector matches the pods");
            }
            let env = container(&children).env.clone().unwrap_or_default();
            let mut names: Vec<_> = env.iter().map(|e| e.name.clone()).collect();
            let count = names.len();
            names.sort();
            names.dedup();
            prop_assert_eq!(count, names.len());
            let mut expected: std::collections::BTreeSet<String> = upper.iter().map(|k| format!("KGENTS_{k}")).collect();
            expected.insert("KGENTS_AGENT".to_owned());
            expected.insert("KGENTS_GENUS".to_owned());
            prop_assert_eq!(count, expected.len());
            for (key, value) in &keys {
                prop_assert_eq!(env_value(container(&children), &format!("KGENTS_{}", key.to_ascii_uppercase())), Some(value.as_str()));
            }
        }
    }

    fn slice(
        namespace: &str,
        service: &str,
        address_type: &str,
        endpoints: serde_json::Value,
        ports: serde_json::Value,
    ) -> EndpointSlice {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": service,
                "namespace": namespace,
                "labels": {"kubernetes.io/service-name": service}
            },
            "addressType": address_type,
            "endpoints": endpoints,
            "ports": ports,
        }))
        .expect("an EndpointSlice")
    }

    #[test]
    fn api_server_endpoints_come_from_the_kubernetes_service_only() {
        let slices = [
            slice(
                "default",
                "kubernetes",
                "IPv4",
                serde_json::json!([
                    {"addresses": ["10.0.0.2"], "conditions": {"ready": true}},
                    {"addresses": ["10.0.0.1"]},
                    {"addresses": ["10.0.0.9"], "conditions": {"ready": false}},
                    {"addresses": ["not-an-ip"]}
                ]),
                serde_json::json!([
                    {"name": "https", "port": 6443, "protocol": "TCP"},
                    {"name": "odd", "port": 53, "protocol": "UDP"}
                ]),
            ),
            slice(
                "default",
                "kubernetes",
                "IPv6",
                serde_json::json!([{"addresses": ["fd00::1"]}]),
                serde_json::json!([{"name": "https", "port": 6443}]),
            ),
            slice(
                "default",
                "other",
                "IPv4",
                serde_json::json!([{"addresses": ["10.9.9.9"]}]),
                serde_json::json!([{"port": 443}]),
            ),
            slice(
                "elsewhere",
                "kubernetes",
                "IPv4",
                serde_json::json!([{"addresses": ["10.8.8.8"]}]),
                serde_json::json!([{"port": 443}]),
            ),
        ];
        let endpoint = |ip: &str| ApiServerEndpoint {
            ip: ip.to_owned(),
            port: 6443,
        };
        assert_eq!(
            api_server_endpoints(&slices),
            vec![
                endpoint("10.0.0.1"),
                endpoint("10.0.0.2"),
                endpoint("fd00::1")
            ],
            "ready (or unmarked) TCP endpoints of default/kubernetes, sorted"
        );
        assert!(api_server_endpoints(&[]).is_empty());
    }

    #[test]
    fn restricted_agents_may_reach_the_api_server_and_nothing_more() {
        let endpoints = [
            ApiServerEndpoint {
                ip: "10.0.0.1".to_owned(),
                port: 6443,
            },
            ApiServerEndpoint {
                ip: "fd00::1".to_owned(),
                port: 6443,
            },
            ApiServerEndpoint {
                ip: "10.0.0.7".to_owned(),
                port: 443,
            },
        ];
        let config = PlanConfig {
            api_server: &endpoints,
            symbiont_image: "symbiont",
            ..CONFIG
        };
        let restricted = spec(serde_json::json!({"genus": "A", "networkPolicy": {}}));
        let np = plan(&AGENT, &restricted, &config)
            .expect("plan")
            .network_policy
            .expect("a policy");
        let egress = np.spec.expect("spec").egress.expect("egress");
        assert_eq!(egress.len(), 3, "DNS, then one rule per API server port");
        let rule = |port: i32| {
            egress
                .iter()
                .find(|r| {
                    r.ports.as_ref().is_some_and(|p| {
                        p[0].port == Some(IntOrString::Int(port))
                            && p[0].protocol.as_deref() == Some("TCP")
                    })
                })
                .unwrap_or_else(|| panic!("a rule for port {port}"))
        };
        let cidrs = |r: &NetworkPolicyEgressRule| -> Vec<String> {
            r.to.iter()
                .flatten()
                .map(|peer| peer.ip_block.clone().expect("an ipBlock").cidr)
                .collect()
        };
        assert_eq!(cidrs(rule(6443)), ["10.0.0.1/32", "fd00::1/128"]);
        assert_eq!(cidrs(rule(443)), ["10.0.0.7/32"]);

        // Another endpoint set is another policy (so a move of the API server re-applies it).
        let moved = [ApiServerEndpoint {
            ip: "10.0.0.5".to_owned(),
            port: 6443,
        }];
        let elsewhere = plan(
            &AGENT,
            &restricted,
            &PlanConfig {
                api_server: &moved,
                symbiont_image: "symbiont",
                ..CONFIG
            },
        )
        .expect("plan")
        .network_policy
        .expect("a policy");
        let first = plan(&AGENT, &restricted, &config)
            .expect("plan")
            .network_policy
            .expect("a policy");
        assert_ne!(
            first
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DESIRED_HASH_ANNOTATION)),
            elsewhere
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DESIRED_HASH_ANNOTATION))
        );

        // Unrestricted agents get no policy whatever the endpoints.
        let open = spec(serde_json::json!({"genus": "A"}));
        assert!(
            plan(&AGENT, &open, &config)
                .expect("plan")
                .network_policy
                .is_none()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn api_server_egress_allows_exactly_the_endpoints(
            hosts in proptest::collection::vec((any::<[u8; 4]>(), prop_oneof![Just(443), Just(6443), 1..=65535i32]), 0..8)
        ) {
            let endpoints: Vec<ApiServerEndpoint> = hosts
                .iter()
                .map(|(octets, port)| ApiServerEndpoint {
                    ip: std::net::Ipv4Addr::from(*octets).to_string(),
                    port: *port,
                })
                .collect();
            let rules = api_server_egress(&endpoints);
            let mut allowed = std::collections::BTreeSet::new();
            for rule in &rules {
                let ports = rule.ports.clone().unwrap_or_default();
                prop_assert_eq!(ports.len(), 1);
                let Some(IntOrString::Int(port)) = ports[0].port.clone() else {
                    return Err(TestCaseError::fail("a numeric port"));
                };
                for peer in rule.to.iter().flatten() {
                    let cidr = peer.ip_block.clone().map(|b| b.cidr).unwrap_or_default();
                    let ip = cidr.strip_suffix("/32").unwrap_or_default().to_owned();
                    prop_assert!(allowed.insert((ip, port)), "no duplicate grant");
                }
            }
            let expected: std::collections::BTreeSet<(String, i32)> =
                endpoints.iter().map(|e| (e.ip.clone(), e.port)).collect();
            prop_assert_eq!(allowed, expected);
        }
    }

    fn pod(children: &Children) -> &PodSpec {
        children
            .deployment
            .spec
            .template
            .spec
            .as_ref()
            .expect("pod spec")
    }

    #[test]
    fn no_sidecar_unless_the_symbiont_is_enabled() {
        for json in [
            serde_json::json!({"genus": "D"}),
            serde_json::json!({"genus": "D", "symbiont": {"memory": {"size": "1Gi"}}}),
            serde_json::json!({"genus": "D", "symbiont": {"enabled": false}}),
        ] {
            let children = plan(&AGENT, &spec(json), &CONFIG).unwrap();
            assert!(pod(&children).init_containers.is_none());
            assert_eq!(
                pod(&children).security_context.as_ref().unwrap().fs_group,
                None
            );
            assert_eq!(env_value(container(&children), "KGENTS_SYMBIONT_URL"), None);
        }
    }

    #[test]
    fn the_symbiont_is_a_native_sidecar_with_the_memory_and_podinfo_mounted() {
        let children = plan(
            &AGENT,
            &spec(serde_json::json!({
                "genus": "D",
                "umwelt": "scout",
                "symbiont": {"enabled": true, "memory": {"size": "1Gi", "type": "BICAMERAL"}}
            })),
            &CONFIG,
        )
        .unwrap();
        let pod = pod(&children);
        assert_eq!(
            pod.security_context.as_ref().unwrap().fs_group,
            Some(PLACEHOLDER_UID)
        );
        let init = pod.init_containers.as_ref().expect("init containers");
        assert_eq!(init.len(), 1);
        let sidecar = &init[0];
        assert_eq!(sidecar.name, "symbiont");
        assert_eq!(sidecar.restart_policy.as_deref(), Some("Always"));
        assert_eq!(sidecar.image.as_deref(), Some("symbiont"));
        // the pod runs as the Umwelt's ServiceAccount, so the sidecar does too
        assert_eq!(
            pod.service_account_name.as_deref(),
            Some(umwelt_service_account_name("scout").as_str())
        );
        assert_eq!(env_value(sidecar, "KGENTS_AGENT"), Some("scout"));
        assert_eq!(env_value(sidecar, "KGENTS_UMWELT"), Some("scout"));
        assert_eq!(
            env_value(sidecar, "KGENTS_UMWELT_CONFIG_MAP"),
            Some(umwelt_service_account_name("scout").as_str())
        );
        assert_eq!(env_value(sidecar, "KGENTS_MEMORY_SIZE"), Some("1Gi"));
        assert_eq!(env_value(sidecar, "KGENTS_MEMORY"), Some("scout"));
        assert_eq!(env_value(sidecar, "KGENTS_SYMBIONT_NO_CLUSTER"), None);
        let mounts: Vec<(&str, &str)> = sidecar
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| (m.name.as_str(), m.mount_path.as_str()))
            .collect();
        assert_eq!(
            mounts,
            [
                ("kgents-memory", "/var/lib/kgents/memory"),
                ("kgents-podinfo", "/etc/kgents/podinfo")
            ]
        );
        let volumes = pod.volumes.as_ref().unwrap();
        let memory = volumes.iter().find(|v| v.name == "kgents-memory").unwrap();
        assert_eq!(
            memory.persistent_volume_claim.as_ref().unwrap().claim_name,
            crate::memory::pvc_name(AGENT.name)
        );
        assert_eq!(
            volumes
                .iter()
                .filter(|v| v.name == "kgents-podinfo")
                .count(),
            1
        );
        let resources = sidecar.resources.as_ref().unwrap();
        assert_eq!(
            resources.limits.as_ref().unwrap()["memory"],
            Quantity("64Mi".into())
        );
        assert_eq!(
            env_value(container(&children), "KGENTS_SYMBIONT_URL"),
            Some("http://127.0.0.1:7777")
        );
    }

    #[test]
    fn an_ephemeral_memory_or_none_lives_in_the_pods_own_storage() {
        let ephemeral = plan(
            &AGENT,
            &spec(serde_json::json!({
                "genus": "D",
                "health": {"type": "COGNITIVE_PROBE"},
                "symbiont": {"enabled": true, "image": "my/symbiont:1", "memory": {"type": "EPHEMERAL", "size": "128Mi"}}
            })),
            &CONFIG,
        )
        .unwrap();
        let pod_spec = pod(&ephemeral);
        let memory = pod_spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "kgents-memory")
            .unwrap();
        assert_eq!(
            memory.empty_dir.as_ref().unwrap().size_limit,
            Some(Quantity("128Mi".into()))
        );
        // cognitive agents already mount podinfo: one volume, shared
        assert_eq!(
            pod_spec
                .volumes
                .iter()
                .flatten()
                .filter(|v| v.name == "kgents-podinfo")
                .count(),
            1
        );
        let sidecar = &pod_spec.init_containers.as_ref().unwrap()[0];
        assert_eq!(sidecar.image.as_deref(), Some("my/symbiont:1"));
        // no Umwelt: no affordances, so no cluster access from the sidecar
        assert_eq!(
            env_value(sidecar, "KGENTS_SYMBIONT_NO_CLUSTER"),
            Some("true")
        );

        let bare = plan(
            &AGENT,
            &spec(serde_json::json!({"genus": "D", "symbiont": {"enabled": true, "resources": {"limits": {"memory": "32Mi"}}}})),
            &CONFIG,
        )
        .unwrap();
        let pod = pod(&bare);
        let memory = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "kgents-memory")
            .unwrap();
        assert!(memory.empty_dir.is_some());
        let sidecar = &pod.init_containers.as_ref().unwrap()[0];
        assert_eq!(
            sidecar.resources.as_ref().unwrap().limits.as_ref().unwrap()["memory"],
            Quantity("32Mi".into())
        );
    }
}
