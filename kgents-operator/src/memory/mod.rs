//! The Memory controller: a Memory becomes a PersistentVolumeClaim (none for EPHEMERAL) and a
//! metadata ConfigMap, and its retention policy decides what happens to the storage when the
//! Memory goes.
//!
//! - **DELETE**: the claim is owned by the Memory; the garbage collector removes it with it.
//! - **RETAIN**: the claim has no owner and survives the Memory (a Memory of the same name
//!   later picks it up again).
//! - **COMPOST**: the claim has no owner; a finalizer, on deletion, marks it with a deadline
//!   ([`COMPOST_AFTER_ANNOTATION`] = now + `compostAfterHours`, and the [`COMPOST_LABEL`] to
//!   find it by), reports COMPOSTING, and lets the Memory go. A sweep ([`run_with`]) deletes
//!   marked claims past their deadline — every [`MemoryOptions::sweep_interval`] and exactly at
//!   the earliest deadline it knows of, by the context's clock. A Memory re-created before the
//!   deadline takes its claim back and the mark is removed.
//!
//! `sharedWith` agents may read and `writeAccess` agents (and the owner) may write the metadata
//! ConfigMap, through a Role and RoleBinding each, restricted to that one ConfigMap by name.
//! Children are applied only when their desired state changed, and the status only when it
//! changed.
//!
//! | module | what it holds |
//! |---|---|
//! | `plan` | pure: a Memory → its claim, metadata ConfigMap and grants; the compost sweep's plan |
//! | `status` | pure: what was observed of the storage → phase and Ready condition |
//! | `controller` | reconcile, the compost finalizer and sweep, error policy, watches and [`run`] |

pub(crate) mod controller;
pub(crate) mod plan;
pub(crate) mod status;

use std::time::Duration;

use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::support;

pub use controller::{MemoryOptions, run, run_with};
pub use plan::{config_map_name, pvc_name, reader_role_name, writer_role_name};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "memory";
/// Label naming the Memory a child belongs to (also on retained claims, which have no owner).
pub const MEMORY_LABEL: &str = "kgents.io/memory";
/// Label on claims waiting to be composted; the sweep lists by it.
pub const COMPOST_LABEL: &str = "kgents.io/compost";
/// Annotation with the instant (RFC 3339) after which a composting claim is deleted.
pub const COMPOST_AFTER_ANNOTATION: &str = "kgents.io/compost-after";
/// The finalizer of a COMPOST memory: its cleanup marks the claim for the sweep.
pub const FINALIZER: &str = "kgents.io/memory-compost";
/// The key of the metadata ConfigMap's entry (JSON).
pub const METADATA_KEY: &str = "memory.json";
/// The Ready condition: storage usable.
pub const READY: &str = "Ready";

/// The default period of the compost sweep.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// The Kubernetes permissions the Memory controller uses, and nothing more.
///
/// It watches Memories and patches them (the compost finalizer) and their status; reads Agents
/// (which ServiceAccount an agent runs as); watches, reads, applies and — in the sweep —
/// deletes claims; watches, reads and applies the metadata ConfigMap (holding `update` too,
/// because the API server lets it grant writers only what it holds itself); watches, reads,
/// applies and deletes the reader and writer Roles and RoleBindings; publishes Events.
pub fn required_rules() -> Vec<PolicyRule> {
    vec![
        support::rule("kgents.io", &["memories"], &["list", "watch", "patch"]),
        support::rule("kgents.io", &["memories/status"], &["patch"]),
        support::rule("kgents.io", &["agents"], &["get", "list", "watch"]),
        support::rule(
            "",
            &["persistentvolumeclaims"],
            &["get", "list", "watch", "create", "patch", "delete"],
        ),
        support::rule(
            "",
            &["configmaps"],
            &["get", "list", "watch", "create", "patch", "update"],
        ),
        support::rule(
            "rbac.authorization.k8s.io",
            &["roles", "rolebindings"],
            &["get", "list", "watch", "create", "patch", "delete"],
        ),
        support::rule("events.k8s.io", &["events"], &["create", "patch"]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;
    use kgents_crds::{Memory, MemorySpec};
    use serde_json::json;

    pub(super) fn now() -> Timestamp {
        Timestamp::from_second(2_000_000).expect("ts")
    }

    pub(super) fn memory(spec: serde_json::Value) -> Memory {
        let mut spec = spec;
        spec["owner"] = json!("scout");
        let spec: MemorySpec = serde_json::from_value(spec).expect("valid spec");
        let mut m = Memory::new("scout-memory", spec);
        m.metadata.namespace = Some("hive".into());
        m.metadata.uid = Some("uid-mem".into());
        m.metadata.generation = Some(1);
        m.metadata.resource_version = Some("11".into());
        m
    }

    pub(super) fn own(agent: &str) -> String {
        agent.to_owned()
    }

    #[test]
    fn required_rules_cover_the_sweep_and_the_grants() {
        let rules = required_rules();
        let has = |group: &str, resource: &str, verb: &str| {
            rules.iter().any(|r| {
                r.api_groups.as_deref() == Some(&[group.to_owned()][..])
                    && r.resources
                        .as_ref()
                        .is_some_and(|rs| rs.iter().any(|x| x == resource))
                    && r.verbs.iter().any(|v| v == verb)
            })
        };
        assert!(has("", "persistentvolumeclaims", "delete"));
        assert!(
            has("", "configmaps", "update"),
            "writers are granted update, so the operator holds it"
        );
        assert!(!has("", "secrets", "get"));
    }
}
