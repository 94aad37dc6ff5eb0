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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kgents_crds::common::Time;
use kgents_crds::memory::{MemoryPhase, MemoryStatus, MemoryType, RetentionPolicy};
use kgents_crds::{Agent, Memory};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;

use crate::conditions::{self, DesiredCondition};
use crate::support::{self, COMPONENT_LABEL, MANAGED_BY, MANAGED_BY_LABEL, key_of};
use crate::{Context, Error, Result};

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

/// Settings of the Memory controller beyond the shared [`crate::OperatorConfig`].
#[derive(Clone, Debug)]
pub struct MemoryOptions {
    /// How often the compost sweep runs at the latest (it also wakes at the earliest known
    /// deadline).
    pub sweep_interval: Duration,
}

impl Default for MemoryOptions {
    fn default() -> Self {
        Self {
            sweep_interval: DEFAULT_SWEEP_INTERVAL,
        }
    }
}

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

/// What the reconcile saw of the storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageState {
    /// EPHEMERAL: nothing persistent.
    None,
    /// The claim is in this phase (`Pending`, `Bound`, `Lost`), or has no phase yet.
    Claim(Option<String>),
    /// The API server refused the claim (e.g. a shrink, or a changed storage class).
    Rejected(String),
    /// This replica does not lead and the claim does not exist yet.
    NotCreated,
}

/// The phase and Ready condition for what was observed (pure).
pub fn assess(storage: &StorageState) -> (MemoryPhase, DesiredCondition) {
    match storage {
        StorageState::None => (
            MemoryPhase::Ready,
            DesiredCondition::new(
                READY,
                true,
                "Ephemeral",
                "EPHEMERAL: metadata only, no persistent storage",
            ),
        ),
        StorageState::Claim(Some(phase)) if phase == "Bound" => (
            MemoryPhase::Ready,
            DesiredCondition::new(READY, true, "ClaimBound", "the claim is bound to a volume"),
        ),
        StorageState::Claim(Some(phase)) if phase == "Lost" => (
            MemoryPhase::Degraded,
            DesiredCondition::new(
                READY,
                false,
                "ClaimLost",
                "the claim lost its volume; the data may be gone — check the PersistentVolume",
            ),
        ),
        StorageState::Claim(_) => (
            MemoryPhase::Provisioning,
            DesiredCondition::new(
                READY,
                false,
                "ClaimPending",
                "waiting for a volume to be bound (is there a provisioner for the storage class?)",
            ),
        ),
        StorageState::Rejected(message) => (
            MemoryPhase::Degraded,
            DesiredCondition::new(
                READY,
                false,
                "ClaimRejected",
                format!(
                    "the API server refused the claim: {message}; size can only grow (where the class allows) and the class cannot change"
                ),
            ),
        ),
        StorageState::NotCreated => (
            MemoryPhase::Pending,
            DesiredCondition::new(READY, false, "Pending", "storage not created yet"),
        ),
    }
}

/// The status a living Memory should have (pure).
pub fn desired_status(memory: &Memory, storage: &StorageState, now: Timestamp) -> MemoryStatus {
    let (phase, ready) = assess(storage);
    let previous = memory.status.clone().unwrap_or_default();
    let name = memory.name_any();
    MemoryStatus {
        phase: Some(phase),
        observed_generation: memory.metadata.generation,
        pvc_name: (memory.spec.kind != MemoryType::Ephemeral).then(|| pvc_name(&name)),
        config_map_name: Some(config_map_name(&name)),
        size_used: previous.size_used,
        last_access: previous.last_access,
        compost_at: None,
        conditions: conditions::merge(
            &previous.conditions,
            &[ready],
            memory.metadata.generation,
            now,
        ),
    }
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

/// Reconciles one Memory.
pub async fn reconcile(memory: Arc<Memory>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    ctx.metrics.reconcile_started(CONTROLLER);
    let result = reconcile_inner(&memory, &ctx).await;
    ctx.metrics
        .reconcile_finished(CONTROLLER, started.elapsed());
    result
}

fn has_finalizer(memory: &Memory) -> bool {
    memory.finalizers().iter().any(|f| f == FINALIZER)
}

/// Adds or removes the finalizer with a merge patch carrying the resourceVersion it was
/// computed from: a concurrent change makes the API server answer 409 instead of losing it.
async fn set_finalizer(ctx: &Context, memory: &Memory, present: bool) -> Result<()> {
    if !ctx.leader.is_leader() {
        return Ok(());
    }
    let namespace = memory
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let api: Api<Memory> = Api::namespaced(ctx.client.clone(), &namespace);
    let wanted: Vec<&str> = memory
        .finalizers()
        .iter()
        .map(String::as_str)
        .filter(|f| *f != FINALIZER)
        .chain(present.then_some(FINALIZER))
        .collect();
    let body = serde_json::json!({"metadata": {
        "resourceVersion": memory.resource_version(),
        "finalizers": wanted,
    }});
    ctx.api(
        "patch memory finalizers",
        api.patch(
            &memory.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&body),
        ),
    )
    .await?;
    Ok(())
}

/// Marks (or, with `deadline = None`, unmarks) a claim for the compost sweep. A merge patch
/// under its own field manager: the claim's applied fields stay with the main manager.
async fn mark_claim(
    ctx: &Context,
    namespace: &str,
    name: &str,
    deadline: Option<Timestamp>,
) -> Result<()> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), namespace);
    let body = match deadline {
        Some(deadline) => serde_json::json!({"metadata": {
            "labels": {COMPOST_LABEL: "true"},
            "annotations": {COMPOST_AFTER_ANNOTATION: deadline.to_string()},
        }}),
        None => serde_json::json!({"metadata": {
            "labels": {COMPOST_LABEL: null},
            "annotations": {COMPOST_AFTER_ANNOTATION: null},
        }}),
    };
    let params = PatchParams {
        field_manager: Some(format!("{}-compost", ctx.config.field_manager)),
        ..PatchParams::default()
    };
    ctx.api(
        "mark claim for compost",
        api.patch(name, &params, &Patch::Merge(&body)),
    )
    .await?;
    Ok(())
}

/// The ServiceAccount `agent` runs as: its Umwelt's when it names one, else its own (named
/// after the Agent). An Agent that does not exist (yet) gets its own name.
async fn account_map(
    ctx: &Context,
    namespace: &str,
    memory: &Memory,
) -> Result<BTreeMap<String, String>> {
    let api: Api<Agent> = Api::namespaced(ctx.client.clone(), namespace);
    let spec = &memory.spec;
    let agents: BTreeSet<&String> = std::iter::once(&spec.owner)
        .chain(&spec.shared_with)
        .chain(&spec.write_access)
        .filter(|a| !a.is_empty())
        .collect();
    let mut accounts = BTreeMap::new();
    for agent in agents {
        let found = ctx.api("read agent", api.get_opt(agent)).await?;
        let account = match found.and_then(|a| a.spec.umwelt.clone()) {
            Some(umwelt) => crate::umwelt::service_account_name(&umwelt),
            None => agent.clone(),
        };
        accounts.insert(agent.clone(), account);
    }
    Ok(accounts)
}

async fn ensure_grant(
    ctx: &Context,
    namespace: &str,
    name: String,
    grant: Option<Grant>,
) -> Result<()> {
    match grant {
        Some(grant) => {
            support::ensure(ctx, namespace, grant.role).await?;
            support::ensure(ctx, namespace, grant.binding).await?;
        }
        None => {
            remove_if_present::<RoleBinding>(ctx, namespace, &name).await?;
            remove_if_present::<Role>(ctx, namespace, &name).await?;
        }
    }
    Ok(())
}

/// Deletes a child that exists; a steady state (already gone) costs one read.
async fn remove_if_present<K>(ctx: &Context, namespace: &str, name: &str) -> Result<()>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    if ctx
        .api("read child", api.get_metadata_opt(name))
        .await?
        .is_none()
        || !ctx.leader.is_leader()
    {
        return Ok(());
    }
    match ctx
        .api("delete child", api.delete(name, &DeleteParams::default()))
        .await
    {
        Ok(_) => Ok(()),
        Err(Error::Kube(kube::Error::Api(status))) if status.code == 404 => Ok(()),
        Err(other) => Err(other),
    }
}

async fn cleanup(memory: &Memory, ctx: &Context, namespace: &str) -> Result<Action> {
    if needs_finalizer(&memory.spec) {
        let now = ctx.clock.now();
        let deadline = compost_deadline(memory, now);
        let name = pvc_name(&memory.name_any());
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), namespace);
        let claim = ctx.api("read claim", claims.get_opt(&name)).await?;
        // A claim already marked keeps its first deadline (a repeated cleanup must not push
        // it back).
        let marked = claim.as_ref().and_then(|c| {
            c.annotations()
                .get(COMPOST_AFTER_ANNOTATION)
                .and_then(|t| t.parse::<Timestamp>().ok())
        });
        let deadline = marked.unwrap_or(deadline);
        if claim.is_some() && marked.is_none() && ctx.leader.is_leader() {
            mark_claim(ctx, namespace, &name, Some(deadline)).await?;
        }
        if claim.is_some() {
            let mut status = memory.status.clone().unwrap_or_default();
            status.phase = Some(MemoryPhase::Composting);
            status.compost_at = Some(Time(deadline));
            if memory.status.as_ref() != Some(&status) {
                support::apply_status(ctx, memory, "Memory", &status).await?;
            }
            ctx.event(
                &memory.object_ref(&()),
                EventType::Normal,
                "Composting",
                "Compost",
                format!("claim {name} is kept until {deadline}, then deleted"),
            )
            .await;
        }
    }
    if has_finalizer(memory) {
        set_finalizer(ctx, memory, false).await?;
    }
    ctx.metrics.forget_object("Memory", &key_of(memory));
    Ok(Action::await_change())
}

async fn reconcile_inner(memory: &Memory, ctx: &Context) -> Result<Action> {
    let namespace = memory
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    if memory.meta().deletion_timestamp.is_some() {
        return if has_finalizer(memory) {
            cleanup(memory, ctx, &namespace).await
        } else {
            Ok(Action::await_change())
        };
    }
    let wants_finalizer = needs_finalizer(&memory.spec);
    if wants_finalizer != has_finalizer(memory) {
        set_finalizer(ctx, memory, wants_finalizer).await?;
    }
    let accounts = account_map(ctx, &namespace, memory).await?;
    let children = plan(memory, |agent| {
        accounts
            .get(agent)
            .cloned()
            .unwrap_or_else(|| agent.to_owned())
    })?;
    let name = memory.name_any();
    support::ensure(ctx, &namespace, children.config_map).await?;
    let storage = match children.pvc {
        None => StorageState::None,
        Some(pvc) => {
            let claims: Api<PersistentVolumeClaim> =
                Api::namespaced(ctx.client.clone(), &namespace);
            let claim_name = pvc_name(&name);
            let existing = ctx
                .api("read claim", claims.get_metadata_opt(&claim_name))
                .await?;
            if existing.is_some_and(|c| c.labels().contains_key(COMPOST_LABEL))
                && ctx.leader.is_leader()
            {
                // Re-created before the sweep: the memory takes its storage back.
                mark_claim(ctx, &namespace, &claim_name, None).await?;
            }
            match support::ensure(ctx, &namespace, pvc).await {
                Ok(ensured) => match ensured.live {
                    Some(live) => StorageState::Claim(live.status.and_then(|s| s.phase)),
                    None => StorageState::NotCreated,
                },
                Err(Error::Kube(kube::Error::Api(status))) if status.code == 422 => {
                    StorageState::Rejected(status.message.clone())
                }
                Err(other) => return Err(other),
            }
        }
    };
    ensure_grant(ctx, &namespace, reader_role_name(&name), children.readers).await?;
    ensure_grant(ctx, &namespace, writer_role_name(&name), children.writers).await?;

    let desired = desired_status(memory, &storage, ctx.clock.now());
    let phase = desired.phase.map(phase_name).unwrap_or("UNKNOWN");
    ctx.metrics.observe_phase("Memory", &key_of(memory), phase);
    if memory.status.as_ref() != Some(&desired) {
        support::apply_status(ctx, memory, "Memory", &desired).await?;
        let before = memory.status.as_ref().and_then(|s| s.phase);
        if before != desired.phase {
            let ready = conditions::find(&desired.conditions, READY);
            let failing = desired.phase == Some(MemoryPhase::Degraded);
            ctx.event(
                &memory.object_ref(&()),
                if failing {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                ready.map(|c| c.reason.as_str()).unwrap_or(phase),
                "Provision",
                format!(
                    "{phase}: {}",
                    ready.map(|c| c.message.as_str()).unwrap_or_default()
                ),
            )
            .await;
        }
    }
    Ok(Action::requeue(ctx.config.resync_interval))
}

fn phase_name(phase: MemoryPhase) -> &'static str {
    match phase {
        MemoryPhase::Pending => "PENDING",
        MemoryPhase::Provisioning => "PROVISIONING",
        MemoryPhase::Ready => "READY",
        MemoryPhase::Degraded => "DEGRADED",
        MemoryPhase::Composting => "COMPOSTING",
        MemoryPhase::Terminated => "TERMINATED",
    }
}

/// What happens after a failed reconcile: counted, logged and retried.
pub fn error_policy(memory: Arc<Memory>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_failed(CONTROLLER, error.metric_label());
    tracing::warn!(memory = %key_of(memory.as_ref()), %error, "memory reconcile failed");
    Action::requeue(support::retry_after(error))
}

/// Deletes the marked claims past their deadline; returns the earliest deadline still ahead.
pub async fn sweep_once(ctx: &Context) -> Result<Option<Timestamp>> {
    if !ctx.leader.is_leader() {
        return Ok(None);
    }
    let api: Api<PersistentVolumeClaim> = ctx.scoped();
    let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY},{COMPOST_LABEL}=true");
    let claims = ctx
        .api(
            "list composting claims",
            api.list(&ListParams::default().labels(&selector)),
        )
        .await?;
    let plan = plan_sweep(&claims.items, ctx.clock.now());
    for key in &plan.unreadable {
        tracing::warn!(claim = %key, "composting claim has no readable {COMPOST_AFTER_ANNOTATION}; left alone");
    }
    for (namespace, name, uid) in plan.due {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &namespace);
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid,
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match ctx
            .api("delete composted claim", api.delete(&name, &params))
            .await
        {
            Ok(_) => tracing::info!(claim = %format!("{namespace}/{name}"), "composted"),
            Err(Error::Kube(kube::Error::Api(status)))
                if status.code == 404 || status.code == 409 => {}
            Err(other) => return Err(other),
        }
    }
    Ok(plan.next)
}

/// How long the sweep sleeps: until the earliest deadline, at most `interval`.
pub fn sweep_delay(next: Option<Timestamp>, now: Timestamp, interval: Duration) -> Duration {
    next.and_then(|at| Duration::try_from(at.duration_since(now)).ok())
        .map_or(interval, |until| until.min(interval))
}

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

/// The Agent an Agent watch event concerns when the ServiceAccount it runs as may have changed:
/// first seen, its `spec.umwelt` changed, or deleted (`last` remembers each Agent's Umwelt
/// between events). Its namespace and name; `None` for anything else.
pub fn agent_account_changed(
    last: &mut HashMap<String, Option<String>>,
    event: &watcher::Event<Agent>,
) -> Option<(String, String)> {
    let key = |a: &Agent| (a.namespace().unwrap_or_default(), a.name_any());
    match event {
        watcher::Event::Apply(agent) | watcher::Event::InitApply(agent) => {
            let (namespace, name) = key(agent);
            let before = last.insert(format!("{namespace}/{name}"), agent.spec.umwelt.clone());
            (before.as_ref() != Some(&agent.spec.umwelt)).then_some((namespace, name))
        }
        watcher::Event::Delete(agent) => {
            let (namespace, name) = key(agent);
            last.remove(&format!("{namespace}/{name}"));
            Some((namespace, name))
        }
        watcher::Event::Init | watcher::Event::InitDone => None,
    }
}

/// Whether `memory` grants anything to `agent` (its owner, a reader or a writer).
pub fn names_agent(memory: &Memory, agent: &str) -> bool {
    let spec = &memory.spec;
    spec.owner == agent
        || spec.shared_with.iter().any(|a| a == agent)
        || spec.write_access.iter().any(|a| a == agent)
}

/// Runs the Memory controller with default [`MemoryOptions`] until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + 'static) {
    run_with(ctx, shutdown, MemoryOptions::default()).await;
}

/// Runs the Memory controller and its compost sweep until `shutdown` resolves; in-flight
/// reconciles finish first.
pub async fn run_with(
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: MemoryOptions,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        // A dropped sender (the runtime is going away) also means "stop".
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let sweep = {
        let ctx = ctx.clone();
        let stop = stopped(stop_rx.clone());
        async move {
            tokio::pin!(stop);
            let mut delay = Duration::ZERO;
            loop {
                tokio::select! {
                    () = &mut stop => break,
                    () = tokio::time::sleep(delay) => {}
                }
                let next = match sweep_once(&ctx).await {
                    Ok(next) => next,
                    Err(error) => {
                        ctx.metrics
                            .reconcile_failed("memory-sweep", error.metric_label());
                        tracing::warn!(%error, "compost sweep failed");
                        None
                    }
                };
                delay = sweep_delay(next, ctx.clock.now(), options.sweep_interval);
            }
        }
    };

    let memories = ctx.scoped::<Memory>();
    let claims = ctx.scoped::<PersistentVolumeClaim>();
    let config_maps = ctx.scoped::<ConfigMap>();
    let roles = ctx.scoped::<Role>();
    let bindings = ctx.scoped::<RoleBinding>();
    let children = watcher::Config::default()
        .labels(&format!(
            "{MANAGED_BY_LABEL}={MANAGED_BY},{COMPONENT_LABEL}=memory"
        ))
        .any_semantic();
    let agents: Api<Agent> = ctx.scoped();
    let controller = Controller::new(memories, watcher::Config::default().any_semantic());
    // An Agent that changes the account it runs as (its Umwelt) has the Memories that grant
    // it access re-granted at once, not at the next resync.
    let memory_store = controller.store();
    let mut last = HashMap::new();
    let regrant = watcher(agents, watcher::Config::default().any_semantic())
        .default_backoff()
        .filter_map(|event| futures::future::ready(event.ok()))
        .flat_map(move |event| {
            let touched: Vec<ObjectRef<Memory>> = agent_account_changed(&mut last, &event)
                .map(|(namespace, agent)| {
                    memory_store
                        .state()
                        .iter()
                        .filter(|m| {
                            m.namespace().as_deref() == Some(namespace.as_str())
                                && names_agent(m, &agent)
                        })
                        .map(|m| ObjectRef::from_obj(&**m))
                        .collect()
                })
                .unwrap_or_default();
            futures::stream::iter(touched)
        });
    let controller = controller
        .reconcile_on(regrant)
        // Retained and composting claims have no owner: the label names their Memory.
        .watches(claims, children.clone(), |claim: PersistentVolumeClaim| {
            let memory = claim.labels().get(MEMORY_LABEL)?.clone();
            Some(ObjectRef::<Memory>::new(&memory).within(&claim.namespace()?))
        })
        .owns(config_maps, children.clone())
        .owns(roles, children.clone())
        .owns(bindings, children)
        .with_config(ControllerConfig::default().concurrency(ctx.config.concurrency))
        .graceful_shutdown_on(stopped(stop_rx))
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move { support::log_outcome(CONTROLLER, &result) });
    futures::join!(controller, sweep);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures_controllers::{ApiServer, failure, mock_context, serve};
    use kgents_crds::MemorySpec;
    use serde_json::json;

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
        let apply = |a: Agent| watcher::Event::Apply(a);
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
            agent_account_changed(&mut last, &watcher::Event::Delete(agent(Some("explorer")))),
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

    fn now() -> Timestamp {
        Timestamp::from_second(2_000_000).expect("ts")
    }

    fn memory(spec: serde_json::Value) -> Memory {
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

    fn own(agent: &str) -> String {
        agent.to_owned()
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

    #[test]
    fn claim_phases_map_to_memory_phases() {
        assert_eq!(
            assess(&StorageState::Claim(Some("Bound".into()))).0,
            MemoryPhase::Ready
        );
        assert_eq!(
            assess(&StorageState::Claim(Some("Pending".into()))).0,
            MemoryPhase::Provisioning
        );
        assert_eq!(
            assess(&StorageState::Claim(None)).0,
            MemoryPhase::Provisioning
        );
        assert_eq!(
            assess(&StorageState::Claim(Some("Lost".into()))).0,
            MemoryPhase::Degraded
        );
        assert_eq!(
            assess(&StorageState::Rejected("x".into())).0,
            MemoryPhase::Degraded
        );
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

    fn stamped<K: Resource + Serialize>(mut k: K) -> serde_json::Value {
        support::stamp(&mut k).expect("hash");
        serde_json::to_value(k).expect("JSON")
    }

    /// The reads of the owner Agent and of the claim's mark, in order.
    async fn preamble(api: &mut ApiServer) {
        let seen = api.not_found().await;
        assert!(
            seen.is_exactly("GET", "/apis/kgents.io/v1/namespaces/hive/agents/scout"),
            "{seen:?}"
        );
    }

    #[tokio::test]
    async fn a_new_delete_memory_gets_config_map_claim_writer_grant_and_status() {
        let (ctx, api, _clock) = mock_context(now());
        let m = memory(json!({"retentionPolicy": "DELETE"}));
        let status_reply = serde_json::to_value(&m).expect("JSON");
        let server = serve(api, move |mut api| async move {
            preamble(&mut api).await;
            let seen = api.not_found().await;
            assert!(
                seen.is_exactly(
                    "GET",
                    "/api/v1/namespaces/hive/configmaps/scout-memory-meta"
                ),
                "{seen:?}"
            );
            let seen = api.echo().await;
            assert!(
                seen.is_exactly(
                    "PATCH",
                    "/api/v1/namespaces/hive/configmaps/scout-memory-meta"
                ),
                "{seen:?}"
            );
            let seen = api.not_found().await;
            assert!(
                seen.is_exactly(
                    "GET",
                    "/api/v1/namespaces/hive/persistentvolumeclaims/scout-memory"
                ),
                "{seen:?}"
            );
            api.not_found().await;
            let seen = api.echo().await;
            assert!(
                seen.is_exactly(
                    "PATCH",
                    "/api/v1/namespaces/hive/persistentvolumeclaims/scout-memory"
                ),
                "{seen:?}"
            );
            assert_eq!(
                seen.body["metadata"]["ownerReferences"][0]["uid"],
                "uid-mem"
            );
            // No readers: the reader grant is looked for, found absent.
            let seen = api.not_found().await;
            assert!(seen.is_exactly("GET", "/apis/rbac.authorization.k8s.io/v1/namespaces/hive/rolebindings/scout-memory-meta-read"), "{seen:?}");
            api.not_found().await;
            // The owner writes.
            for kind in ["roles", "rolebindings"] {
                api.not_found().await;
                let seen = api.echo().await;
                assert!(seen.is_exactly("PATCH", &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/hive/{kind}/scout-memory-meta-write")), "{seen:?}");
            }
            let seen = api.answer(|_| (200, status_reply)).await;
            assert!(
                seen.is_exactly(
                    "PATCH",
                    "/apis/kgents.io/v1/namespaces/hive/memories/scout-memory/status"
                ),
                "{seen:?}"
            );
            assert_eq!(seen.body["status"]["phase"], "PROVISIONING");
            assert_eq!(seen.body["status"]["pvcName"], "scout-memory");
            assert_eq!(seen.body["status"]["configMapName"], "scout-memory-meta");
            let seen = api.echo().await;
            assert_eq!(seen.body["reason"], "ClaimPending");
        });
        reconcile(Arc::new(m), ctx).await.expect("reconciled");
        server.finish().await;
    }

    #[tokio::test]
    async fn nothing_changed_means_reads_only() {
        let (ctx, api, _clock) = mock_context(now());
        let mut m = memory(json!({"retentionPolicy": "RETAIN"}));
        let children = plan(&m, own).expect("plan");
        let pvc = children.pvc.clone().expect("claim");
        let mut bound = stamped(pvc);
        bound["status"] = json!({"phase": "Bound"});
        m.status = Some(desired_status(
            &m,
            &StorageState::Claim(Some("Bound".into())),
            now(),
        ));
        let writers = children.writers.clone().expect("owner writes");
        let server = serve(api, move |mut api| async move {
            preamble(&mut api).await;
            let cm = stamped(children.config_map.clone());
            api.answer(move |_| (200, cm)).await;
            let meta = bound.clone();
            api.answer(move |_| (200, meta)).await;
            let live = bound;
            api.answer(move |_| (200, live)).await;
            api.not_found().await;
            api.not_found().await;
            let role = stamped(writers.role);
            api.answer(move |_| (200, role)).await;
            let binding = stamped(writers.binding);
            api.answer(move |_| (200, binding)).await;
            api.expect_silence().await;
        });
        reconcile(Arc::new(m), ctx).await.expect("reconciled");
        server.finish().await;
    }

    #[tokio::test]
    async fn a_compost_memory_gets_its_finalizer_first() {
        let (ctx, api, _clock) = mock_context(now());
        let m = memory(json!({"retentionPolicy": "COMPOST"}));
        let server = serve(api, move |mut api| async move {
            let seen = api
                .answer(|_| {
                    (
                        409,
                        failure(409, "Conflict", "the object has been modified"),
                    )
                })
                .await;
            assert!(
                seen.is_exactly(
                    "PATCH",
                    "/apis/kgents.io/v1/namespaces/hive/memories/scout-memory"
                ),
                "{seen:?}"
            );
            assert_eq!(seen.body["metadata"]["finalizers"], json!([FINALIZER]));
            assert_eq!(seen.body["metadata"]["resourceVersion"], "11");
        });
        let m = Arc::new(m);
        let error = reconcile(m.clone(), ctx.clone())
            .await
            .expect_err("conflict");
        server.finish().await;
        assert_eq!(error.metric_label(), "conflict");
        assert_eq!(
            error_policy(m, &error, ctx),
            Action::requeue(Duration::from_secs(2))
        );
    }

    #[tokio::test]
    async fn deleting_a_compost_memory_marks_its_claim_and_lets_go() {
        let (ctx, api, _clock) = mock_context(now());
        let mut m = memory(json!({"retentionPolicy": "COMPOST", "compostAfterHours": 3}));
        m.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
        m.metadata.deletion_timestamp = Some(Time(now()));
        let claim =
            serde_json::to_value(plan(&m, own).expect("plan").pvc.expect("claim")).expect("JSON");
        let reply = serde_json::to_value(&m).expect("JSON");
        let server = serve(api, move |mut api| async move {
            api.answer(move |_| (200, claim.clone())).await;
            let seen = api.echo().await;
            assert!(
                seen.is_exactly(
                    "PATCH",
                    "/api/v1/namespaces/hive/persistentvolumeclaims/scout-memory"
                ),
                "{seen:?}"
            );
            assert!(
                seen.uri.contains("fieldManager=kgents-operator-compost"),
                "{}",
                seen.uri
            );
            assert_eq!(seen.body["metadata"]["labels"][COMPOST_LABEL], "true");
            assert_eq!(
                seen.body["metadata"]["annotations"][COMPOST_AFTER_ANNOTATION],
                "1970-01-24T06:33:20Z"
            );
            let r = reply.clone();
            let seen = api.answer(move |_| (200, r)).await;
            assert_eq!(seen.body["status"]["phase"], "COMPOSTING");
            assert_eq!(seen.body["status"]["compostAt"], "1970-01-24T06:33:20Z");
            let seen = api.echo().await;
            assert_eq!(seen.body["reason"], "Composting");
            let seen = api.answer(move |_| (200, reply)).await;
            assert_eq!(seen.body["metadata"]["finalizers"], json!([]));
        });
        let action = reconcile(Arc::new(m), ctx).await.expect("reconciled");
        server.finish().await;
        assert_eq!(action, Action::await_change());
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
