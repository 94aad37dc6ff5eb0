//! The controller skeleton shared by every controller: labels, RBAC rule builders, owner
//! references, desired-state hashing, "apply only when changed" (read from a watch cache or
//! from the API server), status writes, the reconcile wrapper (metrics and a tracing span per
//! reconcile), the transition Event, the shutdown adapter and the error policy.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::rbac::v1::PolicyRule;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::shared::Watched;
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
    let uid = owner
        .meta()
        .uid
        .as_deref()
        .ok_or(Error::MissingObjectKey("metadata.uid"))?;
    Ok(owner_reference_to::<K>(&owner.name_any(), uid))
}

/// A controller owner reference to the object of kind `K` named `name` with `uid`.
pub fn owner_reference_to<K>(name: &str, uid: &str) -> OwnerReference
where
    K: Resource<DynamicType = ()>,
{
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: name.to_owned(),
        uid: uid.to_owned(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
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

/// A hash of `value`'s JSON form, for telling within one process whether two values are the
/// same: the JSON is fed to the hasher as it is written, so no string or `serde_json::Value`
/// tree is built. Not stable across releases (it is `DefaultHasher`); never store it.
pub fn json_fingerprint<T: Serialize + ?Sized>(value: &T) -> u64 {
    use std::hash::Hasher;
    struct Feed(std::collections::hash_map::DefaultHasher);
    impl std::io::Write for Feed {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.write(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut feed = Feed(std::collections::hash_map::DefaultHasher::new());
    // Writing to the hasher cannot fail; a value serde cannot write (a map with non-string
    // keys) hashes what was written before the error, the same each time.
    let _ = serde_json::to_writer(&mut feed, value);
    feed.0.finish()
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

/// Whether the object `namespace/name` in `store` (a watch cache) was applied from the desired
/// state whose hash is `hash`.
pub fn cached_is_current<S>(store: &Store<S>, namespace: &str, name: &str, hash: &str) -> bool
where
    S: Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .get(&ObjectRef::new(name).within(namespace))
        .is_some_and(|live| is_current(live.as_ref(), hash))
}

/// A child the controllers apply from a watch cache: a namespaced kind with a static type that
/// serialises (to be hashed and applied).
pub trait Child: Watched + Serialize {}

impl<K: Watched + Serialize> Child for K {}

/// What [`ensure_from`] did.
#[derive(Debug)]
pub struct Ensured<K> {
    /// The object as the API server holds it now (`None` only when this replica is not the
    /// leader and the object does not exist).
    pub live: Option<K>,
    /// Whether an apply was sent.
    pub applied: bool,
}

/// Applies `desired` unless the child in `store` (a watch cache of the controller) was applied
/// from the same desired state, so a steady state costs no request at all; `desired` carries its
/// hash already ([`stamp`]; without one it is always applied). Returns the object the API
/// server returned when it was applied, `None` when nothing was sent (up to date, or this
/// replica does not lead). A cache that has not seen the child's latest version yet costs at
/// worst one apply that changes nothing.
///
/// The cache holds `S` and the answer is decoded as `L`: each the kind `K` itself, or a
/// narrower view of the same resource that decodes only what the caller reads (the Agent
/// controller's [`ObservedDeployment`](crate::agent::observed::ObservedDeployment) and
/// [`ObservedMeta`](crate::agent::observed::ObservedMeta)).
pub async fn ensure_cached<K, S, L>(
    ctx: &Context,
    store: &Store<S>,
    desired: &K,
) -> Result<Option<L>>
where
    K: Resource<DynamicType = ()> + Serialize + Debug + Sync,
    S: Watched,
    L: Watched,
{
    let name = desired.name_any();
    let namespace = desired
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let current = desired
        .annotations()
        .get(DESIRED_HASH_ANNOTATION)
        .is_some_and(|hash| cached_is_current(store, &namespace, &name, hash));
    if current || !ctx.leader.is_leader() {
        return Ok(None);
    }
    let api: Api<L> = Api::namespaced(ctx.client.clone(), &namespace);
    let params = PatchParams::apply(&ctx.config.field_manager).force();
    ctx.api(
        "apply child",
        api.patch(&name, &params, &Patch::Apply(desired)),
    )
    .await
    .map(Some)
}

/// [`stamp`]s `desired` and applies it unless the child in `store` (a watch cache) was applied
/// from the same desired state ([`ensure_cached`]); reports what it did and the child as the
/// API server or the cache holds it.
pub async fn ensure_from<K: Child>(
    ctx: &Context,
    store: &Store<K>,
    mut desired: K,
) -> Result<Ensured<K>> {
    stamp(&mut desired)?;
    match ensure_cached::<K, K, K>(ctx, store, &desired).await? {
        Some(applied) => Ok(Ensured {
            live: Some(applied),
            applied: true,
        }),
        None => Ok(Ensured {
            live: store
                .get(&ObjectRef::from_obj(&desired))
                .map(|live| (*live).clone()),
            applied: false,
        }),
    }
}

/// Deletes the child `name` of kind `K` when `store` (a watch cache) holds it and this
/// replica leads; a child already gone costs nothing, and a 404 is success.
pub async fn remove_cached<K>(
    ctx: &Context,
    store: &Store<K>,
    namespace: &str,
    name: &str,
) -> Result<()>
where
    K: Watched,
{
    let cached = store.get(&ObjectRef::new(name).within(namespace));
    if cached.is_none() || !ctx.leader.is_leader() {
        return Ok(());
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    match ctx
        .api(
            "delete child",
            api.delete(name, &kube::api::DeleteParams::default()),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(Error::Kube(kube::Error::Api(status))) if status.code == 404 => Ok(()),
        Err(other) => Err(other),
    }
}

/// The objects of `component` (their [`COMPONENT_LABEL`]) among those a shared watch of
/// everything the operator manages reports: a controller's own children.
pub fn of_component<K: Resource + Send + Sync + 'static>(
    touched: impl futures::Stream<Item = std::sync::Arc<K>> + Send + 'static,
    component: &'static str,
) -> impl futures::Stream<Item = std::sync::Arc<K>> + Send + 'static {
    use futures::StreamExt;
    touched.filter(move |object| {
        futures::future::ready(
            object.labels().get(COMPONENT_LABEL).map(String::as_str) == Some(component),
        )
    })
}

/// The body of a status apply: the object's type and its status, nothing else.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusApply<'a, S> {
    api_version: &'a str,
    kind: &'a str,
    status: &'a S,
}

/// Server-side applies `status` to `object` (kind `kind`) when this replica leads. The answer
/// (the whole object) is read for its metadata alone.
pub async fn apply_status<K, S>(ctx: &Context, object: &K, kind: &str, status: &S) -> Result<()>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + DeserializeOwned,
    S: Serialize + Debug,
{
    if !ctx.leader.is_leader() {
        return Ok(());
    }
    let namespace = object
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let api: Api<crate::agent::observed::ObservedMeta<K>> =
        Api::namespaced(ctx.client.clone(), &namespace);
    let api_version = K::api_version(&());
    let body = StatusApply {
        api_version: &api_version,
        kind,
        status,
    };
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

/// Runs one reconcile of `object` by `controller`: counted and timed in the reconcile metrics,
/// inside a tracing span `reconcile` carrying the controller, the kind, `namespace/name` and
/// the generation (so every log line of the reconcile says which object it is about).
pub async fn reconcile<K>(
    ctx: &Context,
    controller: &'static str,
    object: &K,
    reconcile: impl Future<Output = Result<Action>>,
) -> Result<Action>
where
    K: Resource<DynamicType = ()>,
{
    let span = tracing::info_span!(
        "reconcile",
        controller,
        kind = %K::kind(&()),
        object = %key_of(object),
        generation = object.meta().generation.unwrap_or_default(),
    );
    ctx.metrics.reconcile_started(controller);
    let started = std::time::Instant::now();
    let result = reconcile.instrument(span).await;
    ctx.metrics
        .reconcile_finished(controller, started.elapsed());
    result
}

/// What happens after a failed reconcile of `object` by `controller`: counted by reason,
/// logged, and retried ([`retry_after`]). A conflict (409: the object changed since it was
/// read) is a normal retry and logged at debug only; anything else is a warning naming the
/// object and, for an API error, the server's code, reason and message.
pub fn error_policy<K>(ctx: &Context, controller: &'static str, object: &K, error: &Error) -> Action
where
    K: Resource<DynamicType = ()>,
{
    let label = error.metric_label();
    ctx.metrics.reconcile_failed(controller, label);
    let key = key_of(object);
    let kind = K::kind(&());
    match error {
        _ if label == "conflict" => tracing::debug!(
            controller,
            %kind,
            object = %key,
            "the object changed while it was reconciled; reconciling it again"
        ),
        Error::Kube(kube::Error::Api(status)) => tracing::warn!(
            controller,
            %kind,
            object = %key,
            code = status.code,
            reason = %status.reason,
            message = %status.message,
            "reconcile failed: the API server refused a call"
        ),
        _ => tracing::warn!(controller, %kind, object = %key, %error, "reconcile failed"),
    }
    Action::requeue(retry_after(error))
}

/// Publishes the Event of a status transition of `object`: a Warning when the new state is a
/// failing one, Normal otherwise. Callers publish only on a change (of phase, or of a failing
/// reason), so a steady state publishes nothing.
pub async fn transition_event<K>(
    ctx: &Context,
    object: &K,
    failing: bool,
    reason: &str,
    action: &str,
    note: impl Into<String>,
) where
    K: Resource<DynamicType = ()>,
{
    let type_ = if failing {
        EventType::Warning
    } else {
        EventType::Normal
    };
    ctx.event(&object.object_ref(&()), type_, reason, action, note)
        .await;
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

/// Logs what a controller's result stream yields. A missing object is normal (it was deleted
/// between the event and the reconcile) and a failed reconcile was already counted and logged
/// by [`error_policy`]: neither is logged again.
pub fn log_outcome<K, E1, E2>(
    controller: &'static str,
    result: &std::result::Result<K, kube::runtime::controller::Error<E1, E2>>,
) where
    E1: std::error::Error + 'static,
    E2: std::error::Error + 'static,
{
    use kube::runtime::controller::Error as ControllerError;
    match result {
        Ok(_) | Err(ControllerError::ObjectNotFound(_) | ControllerError::ReconcilerFailed(..)) => {
        }
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
