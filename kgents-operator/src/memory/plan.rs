//! What a Memory needs (pure): its claim, its metadata ConfigMap and the grants to read and
//! write it; when a composting claim is due; which Memories an Agent event concerns.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kgents_crds::memory::{MemoryType, RetentionPolicy};
use kgents_crds::{Agent, Memory};
use kube::ResourceExt;
use serde::Serialize;

use super::{COMPOST_AFTER_ANNOTATION, MEMORY_LABEL, METADATA_KEY};
use crate::shared::AgentEvent;
use crate::support::{self, key_of};
use crate::{Error, Result};

/// Name of a Memory's PersistentVolumeClaim: the Memory's own name.
pub fn pvc_name(memory: &str) -> String {
    memory.to_owned()
}

/// Name of a Memory's metadata ConfigMap.
pub fn config_map_name(memory: &str) -> String {
    support::suffixed_name(memory, "-meta")
}

/// Name of the Role and RoleBinding that let `sharedWith` agents read the metadata.
pub fn reader_role_name(memory: &str) -> String {
    support::suffixed_name(memory, "-meta-read")
}

/// Name of the Role and RoleBinding that let the owner and `writeAccess` agents write it.
pub fn writer_role_name(memory: &str) -> String {
    support::suffixed_name(memory, "-meta-write")
}

/// Whether a Memory of this kind and retention needs the compost finalizer.
pub fn needs_finalizer(spec: &kgents_crds::MemorySpec) -> bool {
    spec.kind != MemoryType::Ephemeral && spec.retention_policy == RetentionPolicy::Compost
}

/// A Role granting `verbs` on one ConfigMap, bound to `subjects`.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// The Role.
    pub role: Role,
    /// The RoleBinding.
    pub binding: RoleBinding,
}

/// A Memory's desired children.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryChildren {
    /// The claim (`None` for EPHEMERAL).
    pub pvc: Option<PersistentVolumeClaim>,
    /// The metadata ConfigMap.
    pub config_map: ConfigMap,
    /// Read access for `sharedWith` (`None` when nobody is listed).
    pub readers: Option<Grant>,
    /// Write access for the owner and `writeAccess`.
    pub writers: Option<Grant>,
}

/// What the metadata ConfigMap tells agents about the memory.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MetadataView<'a> {
    owner: &'a str,
    #[serde(rename = "type")]
    kind: MemoryType,
    size: &'a str,
    retention_policy: RetentionPolicy,
    compost_after_hours: i32,
    pvc_name: Option<String>,
    shared_with: &'a [String],
    write_access: &'a [String],
}

fn grant(
    base: &ObjectMeta,
    name: String,
    config_map: &str,
    verbs: &[&str],
    accounts: &BTreeSet<String>,
) -> Option<Grant> {
    if accounts.is_empty() {
        return None;
    }
    let namespace = base.namespace.clone();
    let meta = ObjectMeta {
        name: Some(name.clone()),
        ..base.clone()
    };
    let rule = PolicyRule {
        resource_names: Some(vec![config_map.to_owned()]),
        ..support::rule("", &["configmaps"], verbs)
    };
    Some(Grant {
        role: Role {
            metadata: meta.clone(),
            rules: Some(vec![rule]),
        },
        binding: RoleBinding {
            metadata: meta,
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".to_owned()),
                kind: "Role".to_owned(),
                name,
            },
            subjects: Some(
                accounts
                    .iter()
                    .map(|account| Subject {
                        kind: "ServiceAccount".to_owned(),
                        name: account.clone(),
                        namespace: namespace.clone(),
                        ..Subject::default()
                    })
                    .collect(),
            ),
        },
    })
}

/// Plans a Memory's children (pure). `account_of` maps an agent name to the ServiceAccount it
/// runs as. Errors when the object was not read from the API server.
pub fn plan(memory: &Memory, account_of: impl Fn(&str) -> String) -> Result<MemoryChildren> {
    let namespace = memory
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let owner = support::owner_reference(memory)?;
    let name = memory.name_any();
    let spec = &memory.spec;
    let labels = support::child_labels("memory", MEMORY_LABEL, &name);
    let owned = ObjectMeta {
        namespace: Some(namespace.clone()),
        labels: Some(labels.clone()),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    };
    let pvc = (spec.kind != MemoryType::Ephemeral).then(|| PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(pvc_name(&name)),
            namespace: Some(namespace.clone()),
            labels: Some(labels.clone()),
            // Only DELETE lets the garbage collector take the storage with the Memory.
            owner_references: (spec.retention_policy == RetentionPolicy::Delete)
                .then(|| vec![owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_owned(), spec.size.clone())])),
                ..VolumeResourceRequirements::default()
            }),
            storage_class_name: spec.storage_class_name.clone(),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    });
    let cm_name = config_map_name(&name);
    let view = MetadataView {
        owner: &spec.owner,
        kind: spec.kind,
        size: &spec.size.0,
        retention_policy: spec.retention_policy,
        compost_after_hours: spec.compost_after_hours,
        pvc_name: pvc.as_ref().map(|_| pvc_name(&name)),
        shared_with: &spec.shared_with,
        write_access: &spec.write_access,
    };
    let config_map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(cm_name.clone()),
            ..owned.clone()
        },
        data: Some(BTreeMap::from([(
            METADATA_KEY.to_owned(),
            serde_json::to_string_pretty(&view)?,
        )])),
        ..ConfigMap::default()
    };
    let writers: BTreeSet<String> = std::iter::once(spec.owner.as_str())
        .chain(spec.write_access.iter().map(String::as_str))
        .filter(|agent| !agent.is_empty())
        .map(&account_of)
        .collect();
    // A writer can read already; listing it as a reader too would only duplicate the grant.
    let readers: BTreeSet<String> = spec
        .shared_with
        .iter()
        .filter(|agent| !agent.is_empty())
        .map(|agent| account_of(agent))
        .filter(|account| !writers.contains(account))
        .collect();
    Ok(MemoryChildren {
        pvc,
        readers: grant(
            &owned,
            reader_role_name(&name),
            &cm_name,
            &["get"],
            &readers,
        ),
        writers: grant(
            &owned,
            writer_role_name(&name),
            &cm_name,
            &["get", "update", "patch"],
            &writers,
        ),
        config_map,
    })
}

/// The compost deadline of a Memory deleted at `now`.
pub fn compost_deadline(memory: &Memory, now: Timestamp) -> Timestamp {
    let hours = i64::from(memory.spec.compost_after_hours.max(0));
    now.checked_add(jiff::SignedDuration::from_hours(hours))
        .unwrap_or(Timestamp::MAX)
}

/// What the sweep found among marked claims (pure).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SweepPlan {
    /// `(namespace, name, uid)` of claims past their deadline.
    pub due: Vec<(String, String, Option<String>)>,
    /// The earliest deadline still ahead.
    pub next: Option<Timestamp>,
    /// `namespace/name` of marked claims whose deadline cannot be read (left alone).
    pub unreadable: Vec<String>,
}

/// Sorts marked claims into due and not yet due at `now`.
pub fn plan_sweep(claims: &[PersistentVolumeClaim], now: Timestamp) -> SweepPlan {
    let mut plan = SweepPlan::default();
    for claim in claims {
        let deadline = claim
            .annotations()
            .get(COMPOST_AFTER_ANNOTATION)
            .and_then(|text| text.parse::<Timestamp>().ok());
        match deadline {
            Some(deadline) if deadline <= now => plan.due.push((
                claim.namespace().unwrap_or_default(),
                claim.name_any(),
                claim.uid(),
            )),
            Some(deadline) => {
                plan.next = Some(plan.next.map_or(deadline, |next| next.min(deadline)));
            }
            None => plan.unreadable.push(key_of(claim)),
        }
    }
    plan
}

/// How long the sweep sleeps: until the earliest deadline, at most `interval`.
pub fn sweep_delay(next: Option<Timestamp>, now: Timestamp, interval: Duration) -> Duration {
    next.and_then(|at| Duration::try_from(at.duration_since(now)).ok())
        .map_or(interval, |until| until.min(interval))
}

/// The Agent an Agent watch event concerns when the ServiceAccount it runs as may have changed:
/// first seen, its `spec.umwelt` changed, or deleted (`last` remembers each Agent's Umwelt
/// between events). Its namespace and name; `None` for anything else.
pub fn agent_account_changed(
    last: &mut HashMap<String, Option<String>>,
    event: &AgentEvent,
) -> Option<(String, String)> {
    let key = |a: &Agent| (a.namespace().unwrap_or_default(), a.name_any());
    match event {
        AgentEvent::Applied(agent) => {
            let (namespace, name) = key(agent);
            let before = last.insert(format!("{namespace}/{name}"), agent.spec.umwelt.clone());
            (before.as_ref() != Some(&agent.spec.umwelt)).then_some((namespace, name))
        }
        AgentEvent::Deleted(agent) => {
            let (namespace, name) = key(agent);
            last.remove(&format!("{namespace}/{name}"));
            Some((namespace, name))
        }
        AgentEvent::Relisted => None,
    }
}

/// Whether `memory` grants anything to `agent` (its owner, a reader or a writer).
pub fn names_agent(memory: &Memory, agent: &str) -> bool {
    let spec = &memory.spec;
    spec.owner == agent
        || spec.shared_with.iter().any(|a| a == agent)
        || spec.write_access.iter().any(|a| a == agent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::status::{StorageState, assess};
    use crate::memory::tests::{memory, now, own};
    use kgents_crds::memory::MemoryPhase;
    use serde_json::json;
    use std::sync::Arc;

    #[test]
    fn an_agent_concerns_its_memories_when_its_account_may_have_changed() {
        let agent = |umwelt: Option<&str>| {
            let mut a = Agent::new(
                "scout",
                serde_json::from_value(serde_json::json!({"genus": "B", "umwelt": umwelt}))
                    .expect("agent spec"),
            );
            a.metadata.namespace = Some("hive".to_owned());
            a
        };
        let mut last = HashMap::new();
        let concerned = Some(("hive".to_owned(), "scout".to_owned()));
        let apply = |a: Agent| AgentEvent::Applied(Arc::new(a));
        assert_eq!(
            agent_account_changed(&mut last, &apply(agent(None))),
            concerned,
            "new"
        );
        assert_eq!(
            agent_account_changed(&mut last, &apply(agent(None))),
            None,
            "same"
        );
        assert_eq!(
            agent_account_changed(&mut last, &apply(agent(Some("explorer")))),
            concerned,
            "now runs as the Umwelt's account"
        );
        assert_eq!(
            agent_account_changed(&mut last, &apply(agent(Some("explorer")))),
            None
        );
        assert_eq!(
            agent_account_changed(
                &mut last,
                &AgentEvent::Deleted(Arc::new(agent(Some("explorer"))))
            ),
            concerned
        );
        assert!(last.is_empty());
    }

    #[test]
    fn a_memory_names_its_owner_readers_and_writers() {
        let m = memory(serde_json::json!({
            "owner": "scout", "sharedWith": ["reader"], "writeAccess": ["writer"]
        }));
        for agent in ["scout", "reader", "writer"] {
            assert!(names_agent(&m, agent), "{agent}");
        }
        assert!(!names_agent(&m, "stranger"));
    }

    #[test]
    fn ephemeral_memory_has_metadata_only() {
        let children = plan(&memory(json!({"type": "EPHEMERAL"})), own).expect("plan");
        assert!(children.pvc.is_none());
        let data = children.config_map.data.expect("data");
        let view: serde_json::Value = serde_json::from_str(&data[METADATA_KEY]).expect("JSON");
        assert_eq!(view["pvcName"], serde_json::Value::Null);
        assert_eq!(view["type"], "EPHEMERAL");
        assert_eq!(assess(&StorageState::None).0, MemoryPhase::Ready);
    }

    #[test]
    fn only_delete_lets_the_claim_be_collected() {
        for (policy, owned) in [("DELETE", true), ("RETAIN", false), ("COMPOST", false)] {
            let m = memory(
                json!({"retentionPolicy": policy, "size": "1Gi", "storageClassName": "fast"}),
            );
            let pvc = plan(&m, own).expect("plan").pvc.expect("a claim");
            assert_eq!(pvc.metadata.owner_references.is_some(), owned, "{policy}");
            assert_eq!(
                pvc.metadata.labels.expect("labels")[MEMORY_LABEL],
                "scout-memory"
            );
            let spec = pvc.spec.expect("spec");
            assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
            assert_eq!(
                spec.resources.expect("r").requests.expect("q")["storage"].0,
                "1Gi"
            );
        }
        // The metadata ConfigMap always goes with the Memory.
        let cm = plan(&memory(json!({"retentionPolicy": "RETAIN"})), own)
            .expect("plan")
            .config_map;
        assert!(cm.metadata.owner_references.is_some());
    }

    #[test]
    fn only_compost_with_storage_needs_the_finalizer() {
        assert!(needs_finalizer(
            &memory(json!({"retentionPolicy": "COMPOST"})).spec
        ));
        assert!(!needs_finalizer(
            &memory(json!({"retentionPolicy": "RETAIN"})).spec
        ));
        assert!(!needs_finalizer(
            &memory(json!({"retentionPolicy": "COMPOST", "type": "EPHEMERAL"})).spec
        ));
    }

    #[test]
    fn readers_read_and_writers_write_only_the_metadata_config_map() {
        let m = memory(json!({"sharedWith": ["lens", "quill"], "writeAccess": ["quill"]}));
        let children = plan(&m, |agent| format!("{agent}-sa")).expect("plan");
        let readers = children.readers.expect("readers");
        let rule = &readers.role.rules.expect("rules")[0];
        assert_eq!(
            rule.resource_names,
            Some(vec!["scout-memory-meta".to_owned()])
        );
        assert_eq!(rule.verbs, vec!["get"]);
        let names: Vec<_> = readers
            .binding
            .subjects
            .expect("s")
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(
            names,
            vec!["lens-sa"],
            "a writer is not listed again as a reader"
        );
        let writers = children.writers.expect("writers");
        assert_eq!(
            writers.role.rules.expect("rules")[0].verbs,
            vec!["get", "update", "patch"]
        );
        let names: Vec<_> = writers
            .binding
            .subjects
            .expect("s")
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, vec!["quill-sa", "scout-sa"]);
    }

    fn marked(name: &str, deadline: Option<&str>) -> PersistentVolumeClaim {
        let mut claim = PersistentVolumeClaim::default();
        claim.metadata.name = Some(name.into());
        claim.metadata.namespace = Some("hive".into());
        claim.metadata.uid = Some(format!("uid-{name}"));
        if let Some(deadline) = deadline {
            claim.metadata.annotations = Some(BTreeMap::from([(
                COMPOST_AFTER_ANNOTATION.to_owned(),
                deadline.to_owned(),
            )]));
        }
        claim
    }

    #[test]
    fn the_sweep_takes_only_what_is_due_and_knows_the_next_deadline() {
        let claims = [
            marked("old", Some("1970-01-24T03:33:19Z")),
            marked("later", Some("1970-01-24T05:00:00Z")),
            marked("soon", Some("1970-01-24T04:00:00Z")),
            marked("garbled", Some("next tuesday")),
            marked("bare", None),
        ];
        let plan = plan_sweep(&claims, now());
        assert_eq!(
            plan.due,
            vec![("hive".into(), "old".into(), Some("uid-old".into()))]
        );
        assert_eq!(plan.next, Some("1970-01-24T04:00:00Z".parse().expect("ts")));
        assert_eq!(
            plan.unreadable,
            vec!["hive/garbled".to_owned(), "hive/bare".to_owned()]
        );
        let delay = sweep_delay(plan.next, now(), Duration::from_secs(60));
        assert_eq!(delay, Duration::from_secs(60));
        let delay = sweep_delay(
            plan.next,
            "1970-01-24T03:59:30Z".parse().expect("ts"),
            Duration::from_secs(60),
        );
        assert_eq!(delay, Duration::from_secs(30));
        assert_eq!(
            sweep_delay(None, now(), Duration::from_secs(7)),
            Duration::from_secs(7)
        );
    }

    #[test]
    fn the_compost_deadline_is_hours_after_deletion() {
        let m = memory(json!({"retentionPolicy": "COMPOST", "compostAfterHours": 2}));
        assert_eq!(
            compost_deadline(&m, now()),
            now() + jiff::SignedDuration::from_hours(2)
        );
    }
}
