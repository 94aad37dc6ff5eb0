//! Machinery shared by the Pheromone, Memory and Umwelt controllers: RBAC rule builders, owner
//! references, desired-state hashing, "apply only when changed", status writes, the shutdown
//! adapter and the error policy.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::rbac::v1::PolicyRule;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Context, Error, Result};

/// Label naming the program that manages an object.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`] on everything the operator creates.
pub const MANAGED_BY: &str = "kgents-operator";
/// Label naming which kind of kgents object a child belongs to (`memory`, `umwelt`).
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// Annotation holding the hash of the desired state a child was last applied with; a child whose
/// hash matches is not applied again (a steady state costs reads, never writes).
pub const DESIRED_HASH_ANNOTATION: &str = "kgents.io/desired-hash";

/// Who the API server says `client` is (a SelfSubjectReview): the username its writes carry.
/// The admission webhook leaves the operator's own status writes out by this name; approvals
/// are recorded under it.
pub async fn whoami(client: &kube::Client) -> Result<String> {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = api
        .create(
            &kube::api::PostParams::default(),
            &SelfSubjectReview::default(),
        )
        .await?;
    review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .filter(|u| !u.is_empty())
        .ok_or(Error::MissingObjectKey(
            "status.userInfo.username of a SelfSubjectReview",
        ))
}

/// How soon a reconcile that failed on a conflict or a timeout is retried.
const QUICK_RETRY: Duration = Duration::from_secs(2);
/// How soon any other failed reconcile is retried.
const SLOW_RETRY: Duration = Duration::from_secs(15);

/// One RBAC rule: `verbs` on `resources` of API group `group`.
pub fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..PolicyRule::default()
    }
}

/// A controller owner reference to `owner` (so the garbage collector removes the child with it).
pub fn owner_reference<K>(owner: &K) -> Result<OwnerReference>
where
    K: Resource<DynamicType = ()>,
{
    owner
        .controller_owner_ref(&())
        .ok_or(Error::MissingObjectKey("metadata.uid"))
}

/// The labels every child of a kgents object of `component` named `name` carries.
pub fn child_labels(component: &str, instance_label: &str, name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
        (COMPONENT_LABEL.to_owned(), component.to_owned()),
        (instance_label.to_owned(), name.to_owned()),
    ])
}

/// Longest Kubernetes object name (a DNS subdomain).
pub const MAX_NAME: usize = 253;

/// `<base><suffix>`, cut and made unique with a hash of `base` when it would exceed
/// [`MAX_NAME`] (so two long names never collide and no name is ever refused for length).
pub fn suffixed_name(base: &str, suffix: &str) -> String {
    if base.len() + suffix.len() <= MAX_NAME {
        return format!("{base}{suffix}");
    }
    let hash = format!("{:016x}", fnv1a(base.as_bytes()));
    let mut cut = MAX_NAME.saturating_sub(suffix.len() + hash.len() + 1);
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    let head = base[..cut].trim_end_matches(['-', '.']);
    format!("{head}-{hash}{suffix}")
}

/// 64-bit FNV-1a: stable across processes and releases (unlike `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The hash of a desired object, as stored in [`DESIRED_HASH_ANNOTATION`].
pub fn desired_hash<T: Serialize>(object: &T) -> Result<String> {
    let bytes = serde_json::to_vec(object)?;
    Ok(format!("{:016x}", fnv1a(&bytes)))
}

/// Stamps `object` with the hash of its own desired state.
pub fn stamp<K: Resource + Serialize>(object: &mut K) -> Result<String> {
    let meta = object.meta_mut();
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(DESIRED_HASH_ANNOTATION);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
    let hash = desired_hash(object)?;
    object
        .annotations_mut()
        .insert(DESIRED_HASH_ANNOTATION.to_owned(), hash.clone());
    Ok(hash)
}

/// Whether a live object was applied from the same desired state as `hash`.
pub fn is_current<K: Resource>(live: &K, hash: &str) -> bool {
    live.annotations()
        .get(DESIRED_HASH_ANNOTATION)
        .map(String::as_str)
        == Some(hash)
}

/// What [`ensure`] did.
#[derive(Debug)]
pub struct Ensured<K> {
    /// The object as the API server holds it now (`None` only when this replica is not the
    /// leader and the object does not exist).
    pub live: Option<K>,
    /// Whether an apply was sent.
    pub applied: bool,
}

/// Reads the child named like `desired` and server-side applies `desired` only when the live
/// object is missing or was applied from a different desired state.
pub async fn ensure<K>(ctx: &Context, namespace: &str, mut desired: K) -> Result<Ensured<K>>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let hash = stamp(&mut desired)?;
    let name = desired.name_any();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let live = ctx.api("read child", api.get_opt(&name)).await?;
    if let Some(live) = live.as_ref().filter(|live| is_current(*live, &hash)) {
        return Ok(Ensured {
            live: Some(live.clone()),
            applied: false,
        });
    }
    if !ctx.leader.is_leader() {
        return Ok(Ensured {
            live,
            applied: false,
        });
    }
    let params = PatchParams::apply(&ctx.config.field_manager).force();
    let applied = ctx
        .api(
            "apply child",
            api.patch(&name, &params, &Patch::Apply(&desired)),
        )
        .await?;
    Ok(Ensured {
        live: Some(applied),
        applied: true,
    })
}

/// Server-side applies `status` to `object` (kind `kind`) when this replica leads.
pub async fn apply_status<K, S>(ctx: &Context, object: &K, kind: &str, status: &S) -> Result<()>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + DeserializeOwned,
    S: Serialize,
{
    if !ctx.leader.is_leader() {
        return Ok(());
    }
    let namespace = object
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": kind,
        "status": status,
    });
    let params = PatchParams::apply(&ctx.config.field_manager).force();
    ctx.api(
        "apply status",
        api.patch_status(&object.name_any(), &params, &Patch::Apply(&body)),
    )
    .await?;
    Ok(())
}

/// `namespace/name` of an object, for logs and the phase gauge.
pub fn key_of<K: Resource>(object: &K) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

/// The retry after a failed reconcile: soon for conflicts and timeouts (they pass by
/// themselves), later for everything else (so a broken object does not hammer the API server).
pub fn retry_after(error: &Error) -> Duration {
    match error.metric_label() {
        "conflict" | "timeout" => QUICK_RETRY,
        _ => SLOW_RETRY,
    }
}

/// Turns any shutdown future into the `Sync` one the kube Controller wants, by waiting for it
/// on a task of its own.
pub fn sync_signal(
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + Sync + 'static {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(());
    });
    async move {
        // A dropped sender (the runtime is going away) also means "stop".
        let _ = rx.await;
    }
}

/// Logs what a controller's result stream yields; a missing object is normal (it was deleted
/// between the event and the reconcile) and not logged.
pub fn log_outcome<K, E1, E2>(
    controller: &'static str,
    result: &std::result::Result<K, kube::runtime::controller::Error<E1, E2>>,
) where
    E1: std::error::Error + 'static,
    E2: std::error::Error + 'static,
{
    match result {
        Ok(_) | Err(kube::runtime::controller::Error::ObjectNotFound(_)) => {}
        Err(e) => tracing::warn!(controller, error = %e, "controller"),
    }
}

/// Rounds an instant up to the next whole second: `metav1.Time` is written at second
/// precision, so a status carries the rounded value and comparing against it stays stable.
pub fn ceil_to_second(at: jiff::Timestamp) -> jiff::Timestamp {
    let seconds = at.as_second();
    let whole = jiff::Timestamp::from_second(seconds).unwrap_or(at);
    if whole == at || at.subsec_nanosecond() <= 0 {
        whole
    } else {
        jiff::Timestamp::from_second(seconds.saturating_add(1)).unwrap_or(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    #[test]
    fn hash_ignores_its_own_annotation_and_follows_content() {
        let mut a = ConfigMap::default();
        a.metadata.name = Some("x".into());
        let first = stamp(&mut a).expect("hash");
        let again = stamp(&mut a).expect("hash");
        assert_eq!(first, again, "re-stamping a stamped object keeps the hash");
        assert!(is_current(&a, &first));
        let mut b = a.clone();
        b.data = Some(BTreeMap::from([("k".into(), "v".into())]));
        assert_ne!(stamp(&mut b).expect("hash"), first);
    }

    #[test]
    fn ceil_to_second_rounds_up_fractions_only() {
        let whole = jiff::Timestamp::from_second(100).expect("ts");
        assert_eq!(ceil_to_second(whole), whole);
        let fraction = jiff::Timestamp::new(100, 1).expect("ts");
        assert_eq!(
            ceil_to_second(fraction),
            jiff::Timestamp::from_second(101).expect("ts")
        );
        // Before the epoch the seconds part is negative and the fraction too.
        let before = jiff::Timestamp::new(-5, -500_000_000).expect("ts");
        assert_eq!(
            ceil_to_second(before),
            jiff::Timestamp::from_second(-5).expect("ts")
        );
    }

    #[test]
    fn conflicts_retry_sooner_than_other_failures() {
        let timeout = Error::Timeout {
            call: "x",
            budget: Duration::from_secs(1),
        };
        let other = Error::MissingObjectKey("metadata.uid");
        assert!(retry_after(&timeout) < retry_after(&other));
    }
}
