//! The Agent controller: reconcile, error policy and the watch wiring.
//!
//! One reconcile plans the children ([`super::plan`]), applies with server-side apply only the
//! children whose desired hash differs from what the watch caches hold (a steady state costs no
//! writes), removes children that are no longer wanted, computes the status from the observed
//! Deployment ([`super::status`]) and writes it only when it changed. When the caches show
//! every child as the last plan of the same generation left it, the plan is not made again
//! ([`SettledPlan`]): the reconcile goes straight to the status.
//!
//! The child caches are fed by the same watch streams that trigger reconciles, and a cache is
//! updated before its event triggers, so a reconcile caused by a deleted Deployment never sees
//! that Deployment as still present: it is recreated at once. Agents, ServiceAccounts and
//! Memories come from the process's shared watches ([`crate::shared`]); Deployments, Services,
//! NetworkPolicies and the API server's EndpointSlices are watched here (only this controller
//! reads them). A child event that changes nothing the controller reads (a Deployment's
//! rollout messages, times and available counts, a Memory's status) wakes no reconcile.
//! Deployments are decoded as [`ObservedDeployment`] (no pod template), Services and
//! NetworkPolicies as [`ObservedMeta`] (metadata alone), since nothing else of them is read.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kgents_crds::Agent;
use kgents_crds::Memory;
use kgents_crds::agent::{AgentPhase, AgentStatus};
use kube::api::DeleteParams;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::observed::{ObservedDeployment, ObservedMeta};
use super::plan::{self, AgentRef, Children, PlanConfig};
use super::status::{self, Realisation, StatusInput};
use crate::shared::{Event, Shared, Watched};
use crate::support::{self, MANAGED_BY, MANAGED_BY_LABEL, key_of, sync_signal};
use crate::workload::{NAME, NAME_LABEL};
use crate::{Context, Error, Result};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "agent";

/// How soon a reconcile retries when the child caches are still loading.
const CACHE_WAIT: Duration = Duration::from_millis(500);
/// How soon an Agent waiting for its Umwelt's ServiceAccount is looked at again.
const SERVICE_ACCOUNT_WAIT: Duration = Duration::from_secs(10);
/// How soon an Agent whose child the API server refused is tried again (quota may be raised).
const REJECTED_RETRY: Duration = Duration::from_secs(60);

/// Read caches of the Agent's children, filled by the controller's watches.
#[derive(Clone)]
pub struct ChildStores {
    /// Deployments of agents, as the controller reads them.
    pub deployments: Store<ObservedDeployment>,
    /// Services of agents (their metadata: the desired-state hash and the owner).
    pub services: Store<ObservedMeta<Service>>,
    /// Every ServiceAccount the operator manages: the Agents' own and their Umwelts' (the
    /// shared cache).
    pub service_accounts: Store<ServiceAccount>,
    /// NetworkPolicies of agents (their metadata).
    pub network_policies: Store<ObservedMeta<NetworkPolicy>>,
    /// Every Memory (the shared cache the Memory controller reads too).
    pub memories: Store<Memory>,
    /// The EndpointSlices of `default/kubernetes` (where restricted agents reach the API
    /// server); `None` when the endpoints are configured instead.
    pub api_server_slices: Option<Store<EndpointSlice>>,
    /// Whether the shared caches among these (accounts, memories) hold their first list.
    pub shared_ready: Vec<tokio::sync::watch::Receiver<bool>>,
}

impl ChildStores {
    /// Whether every cache has completed its first list.
    fn ready(&self) -> bool {
        fn ready<K: Resource + Clone + 'static>(store: &Store<K>) -> bool
        where
            K::DynamicType: Eq + Hash + Clone,
        {
            matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
        }
        ready(&self.deployments)
            && ready(&self.services)
            && ready(&self.network_policies)
            && self.shared_ready.iter().all(|ready| *ready.borrow())
            && self.api_server_slices.as_ref().is_none_or(ready)
    }

    /// Where restricted agents reach the API server: configured, or as last observed.
    fn api_server(&self, config: &crate::OperatorConfig) -> Vec<plan::ApiServerEndpoint> {
        match (&config.api_server_endpoints, &self.api_server_slices) {
            (Some(fixed), _) => fixed.clone(),
            (None, Some(slices)) => plan::api_server_endpoints(slices.state().iter().map(|s| &**s)),
            (None, None) => Vec::new(),
        }
    }
}

/// What the reconciler shares: the operator context and the child caches.
pub struct State {
    /// The operator context.
    pub ctx: Arc<Context>,
    /// The child caches.
    pub stores: ChildStores,
    /// The statuses this controller wrote lately.
    pub written: Arc<WrittenStatuses>,
    /// The plans whose children were all put in place, by Agent.
    pub settled: Arc<SettledPlans>,
}

/// The last status this controller wrote for each Agent (by uid, as a hash) and the version of
/// the Agent it was computed from.
///
/// A reconcile triggered by a child's event can run before the Agent cache has received the
/// controller's own status write; it then sees the Agent without that status and would write
/// the same status again. Such a write is skipped when the Agent is still exactly the version
/// the earlier write was computed from and the status is the same. Any other version (the
/// write arrived, or someone changed the Agent) is compared as usual.
#[derive(Debug, Default)]
pub struct WrittenStatuses(std::sync::Mutex<std::collections::HashMap<String, (String, u64)>>);

impl WrittenStatuses {
    /// A hash of the status without its conditions' transition times: a reconcile from a stale
    /// cache computes the same transition again, one clock tick later, and that must not count
    /// as a different status.
    fn fingerprint(status: &AgentStatus) -> u64 {
        let mut status = status.clone();
        for condition in &mut status.conditions {
            condition.last_transition_time =
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH);
        }
        support::json_fingerprint(&status)
    }

    fn entries(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (String, u64)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `desired` was already written from this very version of `agent`.
    pub fn already_written(&self, agent: &Agent, desired: &AgentStatus) -> bool {
        let (Some(uid), Some(version)) = (&agent.metadata.uid, &agent.metadata.resource_version)
        else {
            return false;
        };
        self.entries().get(uid).is_some_and(|(seen, fingerprint)| {
            seen == version && *fingerprint == Self::fingerprint(desired)
        })
    }

    /// Records that `status` was written from this version of `agent`.
    pub fn record(&self, agent: &Agent, status: &AgentStatus) {
        if let (Some(uid), Some(version)) = (&agent.metadata.uid, &agent.metadata.resource_version)
        {
            self.entries()
                .insert(uid.clone(), (version.clone(), Self::fingerprint(status)));
        }
    }

    /// Forgets a deleted Agent.
    pub fn forget(&self, agent: &Agent) {
        if let Some(uid) = &agent.metadata.uid {
            self.entries().remove(uid);
        }
    }
}

/// What an Agent's last plan came to, once every child was put in place: the inputs it was
/// planned from and the desired-state hash of each child.
///
/// Most reconciles after an Agent's first are woken by a child's status (its Deployment's pods
/// becoming ready) and change no child. Planning again would build every child object, hash
/// it and find it current, only to drop it: a reconcile of the same generation, against the
/// same API server endpoints, whose children the caches show still carrying these hashes (and
/// no child left that the plan would delete) goes straight to the status. Anything else —
/// another generation, a child changed, missing or unwanted — plans as usual. The plan reads
/// nothing but the Agent's identity, its spec (whose every change bumps the generation) and
/// the operator's configuration (fixed for the process) and the endpoints, so equal inputs
/// mean an equal plan.
#[derive(Clone, Debug, PartialEq)]
pub struct SettledPlan {
    generation: Option<i64>,
    endpoints: u64,
    /// The Agent's own ServiceAccount's hash; `None` when it runs as its Umwelt's.
    service_account: Option<String>,
    account_name: String,
    uses_umwelt_account: bool,
    deployment: String,
    service: String,
    network_policy: Option<String>,
    /// The Memory's name and hash.
    memory: Option<(String, String)>,
}

impl SettledPlan {
    /// The memo of `children` (planned for `generation` against `endpoints`); `None` when a
    /// child carries no hash to check it by.
    fn of(children: &Children, generation: Option<i64>, endpoints: u64) -> Option<Self> {
        fn hash<K: Resource>(object: &K) -> Option<String> {
            object
                .annotations()
                .get(support::DESIRED_HASH_ANNOTATION)
                .cloned()
        }
        Some(Self {
            generation,
            endpoints,
            service_account: match &children.service_account {
                Some(account) => Some(hash(account)?),
                None => None,
            },
            account_name: children.service_account_name.clone(),
            uses_umwelt_account: children.uses_umwelt_account,
            deployment: hash(&children.deployment)?,
            service: hash(&children.service)?,
            network_policy: match &children.network_policy {
                Some(policy) => Some(hash(policy)?),
                None => None,
            },
            memory: match &children.memory {
                Some(m) => Some((m.memory.name_any(), hash(&m.memory)?)),
                None => None,
            },
        })
    }

    /// Whether the caches show every child as this plan left it: each wanted child current,
    /// no unwanted one of the Agent's left for the plan to delete.
    fn in_place(&self, stores: &ChildStores, agent: &AgentRef<'_>) -> bool {
        let (namespace, name, uid) = (agent.namespace, agent.name, agent.uid);
        let account = match &self.service_account {
            Some(hash) => {
                support::cached_is_current(&stores.service_accounts, namespace, name, hash)
            }
            None => !left_to_remove(&stores.service_accounts, namespace, name, uid),
        };
        let policy = match &self.network_policy {
            Some(hash) => {
                support::cached_is_current(&stores.network_policies, namespace, name, hash)
            }
            None => !left_to_remove(&stores.network_policies, namespace, name, uid),
        };
        let memory = self.memory.as_ref().is_none_or(|(memory, hash)| {
            support::cached_is_current(&stores.memories, namespace, memory, hash)
        });
        account
            && policy
            && memory
            && support::cached_is_current(&stores.deployments, namespace, name, &self.deployment)
            && support::cached_is_current(&stores.services, namespace, name, &self.service)
    }
}

/// The [`SettledPlan`] of each Agent (by uid) whose children were last put in place.
#[derive(Debug, Default)]
pub struct SettledPlans(std::sync::Mutex<std::collections::HashMap<String, SettledPlan>>);

impl SettledPlans {
    fn entries(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, SettledPlan>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The settled plan of `agent` for this generation and these endpoints, if its children
    /// are still in place.
    fn holding(
        &self,
        agent: &AgentRef<'_>,
        generation: Option<i64>,
        endpoints: u64,
        stores: &ChildStores,
    ) -> Option<SettledPlan> {
        let plan = self.entries().get(agent.uid).cloned()?;
        (plan.generation == generation
            && plan.endpoints == endpoints
            && plan.in_place(stores, agent))
        .then_some(plan)
    }

    fn record(&self, uid: &str, plan: Option<SettledPlan>) {
        match plan {
            Some(plan) => self.entries().insert(uid.to_owned(), plan),
            None => self.entries().remove(uid),
        };
    }

    /// Forgets a deleted Agent.
    pub fn forget(&self, agent: &Agent) {
        if let Some(uid) = &agent.metadata.uid {
            self.entries().remove(uid);
        }
    }
}

/// A hash of the API server endpoints a plan was made against.
fn endpoints_print(endpoints: &[plan::ApiServerEndpoint]) -> u64 {
    let mut hasher = DefaultHasher::new();
    endpoints.hash(&mut hasher);
    hasher.finish()
}

/// Whether a child would be deleted as no longer wanted: it exists, this Agent (uid) controls
/// it and it is not being deleted already.
fn removable<K: Resource>(child: &K, uid: &str) -> bool {
    child
        .owner_references()
        .iter()
        .any(|o| o.uid == uid && o.controller == Some(true))
        && child.meta().deletion_timestamp.is_none()
}

/// Whether the cache holds a child `namespace/name` the Agent (uid) would remove.
fn left_to_remove<K>(store: &Store<K>, namespace: &str, name: &str, uid: &str) -> bool
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .get(&ObjectRef::new(name).within(namespace))
        .is_some_and(|child| removable(child.as_ref(), uid))
}

/// The trigger key of an Agent: a reconcile runs when its generation, finalizers, deletion
/// mark or identity change, and not when only its status does (the controller's own status
/// writes must not trigger it again). Finalizers and the deletion mark are included because
/// neither bumps `generation` (kube#1768).
pub fn trigger_key(agent: &Agent) -> Option<u64> {
    let mut hasher = DefaultHasher::new();
    agent.metadata.generation.hash(&mut hasher);
    agent.metadata.uid.hash(&mut hasher);
    agent
        .metadata
        .deletion_timestamp
        .is_some()
        .hash(&mut hasher);
    agent.finalizers().hash(&mut hasher);
    Some(hasher.finish())
}

/// Reconciles one Agent.
pub async fn reconcile(agent: Arc<Agent>, state: Arc<State>) -> Result<Action> {
    support::reconcile(
        &state.ctx,
        CONTROLLER,
        agent.as_ref(),
        reconcile_inner(&agent, &state),
    )
    .await
}

/// Classification of a failed child write.
enum ChildFailure {
    /// The API server refused the object as such; retrying soon will not help.
    Rejected {
        reason: &'static str,
        message: String,
    },
    /// Anything else (transport, timeout, conflict, server error): retried with backoff.
    Transient(Error),
}

fn classify(kind: &str, name: &str, error: Error) -> ChildFailure {
    if let Error::Kube(kube::Error::Api(status)) = &error {
        let reason = match status.code {
            403 if status.message.contains("exceeded quota") => Some("QuotaExceeded"),
            403 => Some("Forbidden"),
            400 => Some("BadRequest"),
            422 => Some("Invalid"),
            _ => None,
        };
        if let Some(reason) = reason {
            return ChildFailure::Rejected {
                reason,
                message: format!("the API server refused {kind} {name}: {}", status.message),
            };
        }
    }
    ChildFailure::Transient(error)
}

/// Applies `desired` unless the cached object (`S`) already carries its hash; the object the
/// API server returned when it was applied, decoded as `L`.
async fn ensure<K, S, L>(
    ctx: &Context,
    store: &Store<S>,
    desired: &K,
) -> Result<Option<L>, ChildFailure>
where
    K: Resource<DynamicType = ()> + Serialize + Debug + Sync,
    S: Watched,
    L: Watched,
{
    support::ensure_cached(ctx, store, desired)
        .await
        .map_err(|e| classify(&K::kind(&()), &desired.name_any(), e))
}

/// Deletes the cached child `name` if it exists and this Agent (uid) controls it.
async fn remove_owned<K>(
    ctx: &Context,
    store: &Store<K>,
    namespace: &str,
    name: &str,
    uid: &str,
) -> Result<bool, ChildFailure>
where
    K: crate::shared::Watched,
{
    let key = ObjectRef::<K>::new(name).within(namespace);
    let Some(current) = store.get(&key) else {
        return Ok(false);
    };
    if !removable(current.as_ref(), uid) {
        return Ok(false);
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    match ctx
        .api(
            "delete child",
            api.delete(name, &DeleteParams::background()),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(Error::Kube(kube::Error::Api(status))) if status.code == 404 => Ok(false),
        Err(e) => Err(classify(&K::kind(&()), name, e)),
    }
}

/// The outcome of bringing the children in line.
enum Applied {
    /// Every child is in place; the Deployment as the API server returned it when this
    /// reconcile applied it (`None` when it was already up to date).
    Done(Option<Box<ObservedDeployment>>),
    Rejected {
        reason: &'static str,
        message: String,
    },
}

async fn apply_children(
    state: &State,
    children: &Children,
    agent: &AgentRef<'_>,
) -> Result<Applied> {
    let ctx = &state.ctx;
    let stores = &state.stores;
    let mut failures = Vec::new();
    // The ServiceAccount first: pods cannot be created before the account they run as.
    if let Some(sa) = &children.service_account {
        if let Err(f) =
            ensure::<_, _, ObservedMeta<ServiceAccount>>(ctx, &stores.service_accounts, sa).await
        {
            failures.push(f);
        }
    } else if let Err(f) = remove_owned(
        ctx,
        &stores.service_accounts,
        agent.namespace,
        agent.name,
        agent.uid,
    )
    .await
    {
        failures.push(f);
    }
    let deployment = ensure(ctx, &stores.deployments, &children.deployment);
    let service = ensure::<_, _, ObservedMeta<Service>>(ctx, &stores.services, &children.service);
    let policy = async {
        match &children.network_policy {
            Some(np) => {
                ensure::<_, _, ObservedMeta<NetworkPolicy>>(ctx, &stores.network_policies, np)
                    .await
                    .map(|applied| applied.is_some())
            }
            None => {
                remove_owned(
                    ctx,
                    &stores.network_policies,
                    agent.namespace,
                    agent.name,
                    agent.uid,
                )
                .await
            }
        }
    };
    let memory = async {
        match &children.memory {
            Some(m) => ensure::<_, _, ObservedMeta<Memory>>(ctx, &stores.memories, &m.memory)
                .await
                .map(|applied| applied.is_some()),
            // A memory that is no longer enabled is left alone: it holds data.
            None => Ok(false),
        }
    };
    let (d, s, p, m) = tokio::join!(deployment, service, policy, memory);
    let applied_deployment = match d {
        Ok(applied) => applied.map(Box::new),
        Err(f) => {
            failures.push(f);
            None
        }
    };
    failures.extend(s.err());
    failures.extend(p.err());
    failures.extend(m.err());
    let mut rejected = None;
    for failure in failures {
        match failure {
            ChildFailure::Transient(e) => return Err(e),
            ChildFailure::Rejected { reason, message } => {
                rejected.get_or_insert(Applied::Rejected { reason, message });
            }
        }
    }
    Ok(rejected.unwrap_or(Applied::Done(applied_deployment)))
}

async fn remove_all_owned(state: &State, agent: &AgentRef<'_>) -> Result<()> {
    let (ctx, s) = (&state.ctx, &state.stores);
    let (ns, name, uid) = (agent.namespace, agent.name, agent.uid);
    let results = [
        remove_owned(ctx, &s.deployments, ns, name, uid).await,
        remove_owned(ctx, &s.services, ns, name, uid).await,
        remove_owned(ctx, &s.network_policies, ns, name, uid).await,
        remove_owned(ctx, &s.service_accounts, ns, name, uid).await,
    ];
    for result in results {
        if let Err(ChildFailure::Transient(e)) = result {
            return Err(e);
        }
    }
    Ok(())
}

async fn reconcile_inner(agent: &Agent, state: &State) -> Result<Action> {
    let ctx = &state.ctx;
    let name = agent
        .metadata
        .name
        .as_deref()
        .ok_or(Error::MissingObjectKey("metadata.name"))?;
    let namespace = agent
        .metadata
        .namespace
        .as_deref()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let uid = agent
        .metadata
        .uid
        .as_deref()
        .ok_or(Error::MissingObjectKey("metadata.uid"))?;
    if agent.metadata.deletion_timestamp.is_some() {
        // The garbage collector removes the owned children; a RETAIN/COMPOST Memory is not owned
        // and stays. Nothing to clean up here, so no finalizer either.
        ctx.metrics.forget_object("Agent", &key_of(agent));
        return Ok(Action::await_change());
    }
    if !ctx.leader.is_leader() {
        return Ok(Action::await_change());
    }
    if !state.stores.ready() {
        return Ok(Action::requeue(CACHE_WAIT));
    }
    let agent_ref = AgentRef {
        name,
        namespace,
        uid,
    };
    let api_server = state.stores.api_server(&ctx.config);
    let endpoints = endpoints_print(&api_server);
    let generation = agent.metadata.generation;
    let basis = match state
        .settled
        .holding(&agent_ref, generation, endpoints, &state.stores)
    {
        Some(settled) => Basis::Settled(settled),
        None => match plan::plan(
            &agent_ref,
            &agent.spec,
            &PlanConfig {
                placeholder_image: &ctx.config.placeholder_image,
                api_server: &api_server,
                symbiont_image: &ctx.config.symbiont_image,
            },
        ) {
            Ok(children) => Basis::Planned(Box::new(children)),
            Err(problem) => Basis::Invalid(problem),
        },
    };
    let would_create;
    let rejected;
    let deployment;
    let missing_account;
    let has_memory = match &basis {
        Basis::Settled(settled) => settled.memory.is_some(),
        Basis::Planned(children) => children.memory.is_some(),
        Basis::Invalid(_) => false,
    };
    let selector = plan::selector_string(name);
    let mut input = StatusInput {
        generation,
        desired_replicas: agent.spec.replicas,
        name,
        selector: &selector,
        memory: has_memory.then_some(name),
        umwelt: agent.spec.umwelt.as_deref(),
        realisation: Realisation::Applied { deployment: None },
    };
    let mut requeue = ctx.config.resync_interval;
    // The account the pods run as, when it is an Umwelt's (which must exist first).
    let mut umwelt_account = None;
    match &basis {
        Basis::Invalid(problem) => {
            input.realisation = Realisation::Invalid {
                reason: problem.reason,
                message: &problem.message,
            };
        }
        Basis::Planned(children) if children.dry_run => {
            state.settled.record(uid, None);
            remove_all_owned(state, &agent_ref).await?;
            would_create = children.describe();
            input.realisation = Realisation::DryRun {
                would_create: &would_create,
            };
        }
        Basis::Planned(children) => {
            let applied = apply_children(state, children, &agent_ref).await?;
            match applied {
                Applied::Rejected { reason, message } => {
                    rejected = (reason, message);
                    input.realisation = Realisation::Rejected {
                        reason: rejected.0,
                        message: &rejected.1,
                    };
                    requeue = requeue.min(REJECTED_RETRY);
                }
                Applied::Done(just_applied) => {
                    state
                        .settled
                        .record(uid, SettledPlan::of(children, generation, endpoints));
                    // The Deployment this reconcile just applied is newer than the cache (its
                    // watch event is still on the way): the status is computed from it, so it
                    // is written once now and not again when that event arrives.
                    deployment = just_applied.map(|d| Arc::new(*d)).or_else(|| {
                        state
                            .stores
                            .deployments
                            .get(&ObjectRef::new(name).within(namespace))
                    });
                    input.realisation = Realisation::Applied {
                        deployment: deployment.as_deref(),
                    };
                    umwelt_account = children
                        .uses_umwelt_account
                        .then_some(children.service_account_name.as_str());
                }
            }
        }
        Basis::Settled(settled) => {
            deployment = state
                .stores
                .deployments
                .get(&ObjectRef::new(name).within(namespace));
            input.realisation = Realisation::Applied {
                deployment: deployment.as_deref(),
            };
            umwelt_account = settled
                .uses_umwelt_account
                .then_some(settled.account_name.as_str());
        }
    }
    if let Some(account) = umwelt_account {
        // The Umwelt's account is in the account cache (every account the operator manages
        // is), and its appearance triggers this reconcile.
        let found = state
            .stores
            .service_accounts
            .get(&ObjectRef::new(account).within(namespace));
        if found.is_none() {
            missing_account = account.to_owned();
            input.realisation = Realisation::MissingServiceAccount {
                name: &missing_account,
            };
            requeue = requeue.min(SERVICE_ACCOUNT_WAIT);
        }
    }
    let desired = status::compute(&input, agent.status.as_ref(), ctx.clock.now());
    // A new Agent whose children were just created is Pending as a matter of course: its first
    // status says so, and an Event would only repeat it (one write per Agent saved). Every
    // later transition, and any first status that is not the plain "children created", is
    // announced.
    let announce_first = !matches!(input.realisation, Realisation::Applied { .. });
    write_status(ctx, &state.written, agent, &desired, announce_first).await?;
    Ok(Action::requeue(requeue))
}

/// What a reconcile realises the Agent from: its settled plan, or a plan made now.
enum Basis {
    Settled(SettledPlan),
    Planned(Box<Children>),
    Invalid(plan::SpecProblem),
}

/// Writes the status when it changed and reports the transition.
async fn write_status(
    ctx: &Context,
    written: &WrittenStatuses,
    agent: &Agent,
    desired: &AgentStatus,
    announce_first: bool,
) -> Result<()> {
    let key = key_of(agent);
    let phase = desired.phase.map_or("Unknown", AgentPhase::as_str);
    ctx.metrics.observe_phase("Agent", &key, phase);
    if !status::needs_write(agent.status.as_ref(), desired)
        || written.already_written(agent, desired)
    {
        return Ok(());
    }
    if !ctx.leader.is_leader() {
        return Ok(());
    }
    support::apply_status(ctx, agent, "Agent", desired).await?;
    written.record(agent, desired);

    let ready = crate::conditions::find(&desired.conditions, status::READY);
    let (reason, message) = ready
        .map(|c| (c.reason.clone(), c.message.clone()))
        .unwrap_or_default();
    let previous = agent.status.as_ref();
    let previous_phase = previous.and_then(|s| s.phase);
    let previous_reason = previous
        .and_then(|s| crate::conditions::find(&s.conditions, status::READY))
        .map(|c| c.reason.clone());
    let failing = matches!(
        desired.phase,
        Some(AgentPhase::Failed | AgentPhase::Degraded)
    );
    let transition = match previous_phase {
        None => announce_first || failing,
        Some(_) => previous_phase != desired.phase,
    };
    if transition || (failing && previous_reason.as_deref() != Some(reason.as_str())) {
        let event_reason = if failing { reason.as_str() } else { phase };
        support::transition_event(
            ctx,
            agent,
            failing,
            event_reason,
            "Reconcile",
            format!("{phase}: {message}"),
        )
        .await;
    }
    Ok(())
}

/// What happens after a failed reconcile: counted, logged, retried with a short delay for
/// conflicts and timeouts and a longer one otherwise ([`support::error_policy`]).
pub fn error_policy(agent: Arc<Agent>, error: &Error, state: Arc<State>) -> Action {
    support::error_policy(&state.ctx, CONTROLLER, agent.as_ref(), error)
}

fn child_watch_config(selector: &str) -> watcher::Config {
    watcher::Config::default().labels(selector).any_semantic()
}

/// The labels of the Agents' own children.
fn agent_children() -> String {
    format!("{NAME_LABEL}={NAME},{MANAGED_BY_LABEL}={MANAGED_BY}")
}

/// A fingerprint of what a child carries but its resourceVersion: an event that changes
/// nothing the controller keeps has the same fingerprint as the last one.
fn fingerprint<K: Resource + Serialize>(object: &mut K) -> u64 {
    let version = object.meta_mut().resource_version.take();
    let print = support::json_fingerprint(object);
    object.meta_mut().resource_version = version;
    print
}

/// A fingerprint of a child without its resourceVersion and its status (for the shared
/// caches, whose objects are not the controller's to change).
fn fingerprint_without_status<K: Serialize>(object: &K) -> u64 {
    let mut value = serde_json::to_value(object).unwrap_or_default();
    if let Some(meta) = value
        .get_mut("metadata")
        .and_then(serde_json::Value::as_object_mut)
    {
        meta.remove("resourceVersion");
    }
    if let Some(object) = value.as_object_mut() {
        object.remove("status");
    }
    support::json_fingerprint(&value)
}

/// The children of a shared watch (whole objects, read by other controllers too) that
/// changed in a way the Agent controller reads (anything but status and resourceVersion);
/// deletions always pass.
fn changed_children<K>(shared: &Shared<K>) -> impl futures::Stream<Item = Arc<K>> + Send + 'static
where
    K: Watched + Serialize,
{
    let mut seen: HashMap<ObjectRef<K>, u64> = HashMap::new();
    shared.subscribe().filter_map(move |event| {
        let changed = match event {
            Event::Applied(object) => {
                let print = fingerprint_without_status(object.as_ref());
                (seen.insert(ObjectRef::from_obj(object.as_ref()), print) != Some(print))
                    .then_some(object)
            }
            Event::Deleted(object) => {
                seen.remove(&ObjectRef::from_obj(object.as_ref()));
                Some(object)
            }
            Event::Relisted => None,
        };
        futures::future::ready(changed)
    })
}

/// A cached, triggering watch of one kind of child selected by `selector`: managed fields
/// and whatever `strip` removes are dropped (never read, and most of an object's size), the
/// cache is updated before the event is passed on, and an event that changes nothing left
/// after stripping (a status field the controller does not read, a resourceVersion bump)
/// triggers no reconcile. Deletions always trigger.
fn child_stream<K>(
    ctx: &Context,
    selector: &str,
    strip: fn(&mut K),
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let mut seen: HashMap<ObjectRef<K>, u64> = HashMap::new();
    let stream = watcher(ctx.scoped::<K>(), child_watch_config(selector))
        .default_backoff()
        .modify(move |obj: &mut K| {
            obj.meta_mut().managed_fields = None;
            strip(obj);
        })
        .reflect(writer)
        .filter_map(move |event| {
            let changed = match event {
                Ok(watcher::Event::Apply(mut obj) | watcher::Event::InitApply(mut obj)) => {
                    let print = fingerprint(&mut obj);
                    (seen.insert(ObjectRef::from_obj(&obj), print) != Some(print))
                        .then_some(Ok(obj))
                }
                Ok(watcher::Event::Delete(obj)) => {
                    seen.remove(&ObjectRef::from_obj(&obj));
                    Some(Ok(obj))
                }
                Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
                Err(e) => Some(Err(e)),
            };
            futures::future::ready(changed)
        });
    (reader, stream)
}

/// What of a Deployment the Agent controller keeps and reads: the replica count, the hash
/// annotation, the owner, and the status fields the Agent's status is computed from (the
/// replica counts, the observed generation, the Available and ReplicaFailure conditions and a
/// Progressing condition only when its deadline passed), without transition times. The pod
/// template is not even decoded ([`ObservedDeployment`]); the rest of the status changes
/// often (rollout progress messages, available counts, times) and would wake a reconcile that
/// changes nothing.
fn strip_deployment(d: &mut ObservedDeployment) {
    if let Some(annotations) = d.metadata.annotations.as_mut() {
        annotations.retain(|k, _| k == support::DESIRED_HASH_ANNOTATION);
    }
    if let Some(status) = d.status.as_mut() {
        status.available_replicas = None;
        status.unavailable_replicas = None;
        status.terminating_replicas = None;
        status.collision_count = None;
        if let Some(conditions) = status.conditions.as_mut() {
            conditions.retain(|c| match c.type_.as_deref() {
                Some("Available" | "ReplicaFailure") => true,
                Some("Progressing") => c.reason.as_deref() == Some("ProgressDeadlineExceeded"),
                _ => false,
            });
            for c in conditions.iter_mut() {
                c.last_transition_time = None;
                c.last_update_time = None;
            }
        }
    }
}

/// The Agents a ServiceAccount event concerns: the Agent that owns it, or, for an Umwelt's
/// account, every Agent (in the cache) that runs as it.
fn agents_of_account(agents: &Store<Agent>, account: &ServiceAccount) -> Vec<ObjectRef<Agent>> {
    let Some(namespace) = account.namespace() else {
        return Vec::new();
    };
    if let Some(owner) = account
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "Agent")
    {
        return vec![ObjectRef::new(&owner.name).within(&namespace)];
    }
    let Some(umwelt) = account.labels().get(crate::umwelt::UMWELT_LABEL) else {
        return Vec::new();
    };
    agents
        .state()
        .iter()
        .filter(|a| {
            a.namespace().as_deref() == Some(namespace.as_str())
                && a.spec.umwelt.as_deref() == Some(umwelt.as_str())
        })
        .map(|a| ObjectRef::from_obj(a.as_ref()))
        .collect()
}

/// Runs the Agent controller until `shutdown` resolves; in-flight reconciles finish first.
///
/// Agents come from the process's one shared watch of Agents; a reconcile runs when an Agent's
/// generation, finalizers, deletion mark or identity change, when a child changes in a way the
/// controller reads, and when an Umwelt's ServiceAccount an Agent runs as appears or goes.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + 'static) {
    let shared = ctx.watches.agents.clone();
    let agents = shared.store();
    let metrics = ctx.metrics.clone();
    let written = Arc::new(WrittenStatuses::default());
    let forget = written.clone();
    let settled = Arc::new(SettledPlans::default());
    let forget_plan = settled.clone();
    let mut triggers: HashMap<ObjectRef<Agent>, Option<u64>> = HashMap::new();
    let agent_stream = shared.subscribe().filter_map(move |event| {
        let trigger = match event {
            Event::Applied(agent) => {
                let key = trigger_key(&agent);
                (triggers.insert(ObjectRef::from_obj(agent.as_ref()), key) != Some(key))
                    .then_some(agent)
            }
            Event::Deleted(agent) => {
                metrics.forget_object("Agent", &key_of(agent.as_ref()));
                forget.forget(&agent);
                forget_plan.forget(&agent);
                triggers.remove(&ObjectRef::from_obj(agent.as_ref()));
                None
            }
            Event::Relisted => None,
        };
        futures::future::ready(trigger)
    });

    let owned = agent_children();
    let (deployments, deployment_stream) =
        child_stream::<ObservedDeployment>(&ctx, &owned, strip_deployment);
    let (services, service_stream) = child_stream::<ObservedMeta<Service>>(&ctx, &owned, |_| {});
    // Every account the operator manages, from the shared watch: the Agents' own and the
    // Umwelts' (an Agent that runs as its Umwelt's account is told when that account appears).
    let service_accounts = ctx.watches.service_accounts.store();
    let service_account_stream = changed_children(&ctx.watches.service_accounts);
    let (network_policies, network_policy_stream) =
        child_stream::<ObservedMeta<NetworkPolicy>>(&ctx, &owned, |_| {});
    // Memories, from the shared watch the Memory controller reads too.
    let memories = ctx.watches.memories.store();
    let memory_stream = changed_children(&ctx.watches.memories);

    // Where the API server is: followed from its EndpointSlices unless configured. When the
    // endpoint set changes, every Agent is reconciled (restricted ones re-apply their policy;
    // for the others the plan is unchanged and nothing is written).
    let (api_server_slices, api_server_moved) = if ctx.config.api_server_endpoints.is_some() {
        (None, futures::stream::pending().boxed())
    } else {
        let (reader, writer) = reflector::store::<EndpointSlice>();
        let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), "default");
        let slices = reader.clone();
        let mut last: Option<Vec<plan::ApiServerEndpoint>> = None;
        let moved = watcher(
            api,
            watcher::Config::default().labels("kubernetes.io/service-name=kubernetes"),
        )
        .default_backoff()
        .modify(|slice: &mut EndpointSlice| slice.metadata.managed_fields = None)
        .reflect(writer)
        .touched_objects()
        .filter_map(move |_| {
            let now = plan::api_server_endpoints(slices.state().iter().map(|s| &**s));
            let changed = last.as_ref() != Some(&now);
            last = Some(now);
            futures::future::ready(changed.then_some(()))
        })
        .boxed();
        (Some(reader), moved)
    };

    let state = Arc::new(State {
        ctx: ctx.clone(),
        stores: ChildStores {
            deployments,
            services,
            service_accounts,
            network_policies,
            memories,
            api_server_slices,
            shared_ready: vec![
                ctx.watches.service_accounts.readiness(),
                ctx.watches.memories.readiness(),
            ],
        },
        written,
        settled,
    });
    let account_agents = agents.clone();
    Controller::for_shared_stream(agent_stream, agents)
        .reconcile_all_on(api_server_moved)
        .owns_stream(deployment_stream)
        .owns_stream(service_stream)
        .watches_shared_stream(service_account_stream, move |account| {
            agents_of_account(&account_agents, &account)
        })
        .owns_stream(network_policy_stream)
        // A RETAIN or COMPOST Memory has no owner reference; its label names the Agent.
        .watches_shared_stream(memory_stream, |memory| {
            let agent = memory.labels().get(plan::AGENT_LABEL)?.clone();
            Some(ObjectRef::<Agent>::new(&agent).within(&memory.namespace()?))
        })
        .with_config(ControllerConfig::default().concurrency(ctx.config.concurrency))
        .graceful_shutdown_on(sync_signal(shutdown))
        .run(reconcile, error_policy, state)
        .for_each(|result| async move { support::log_outcome(CONTROLLER, &result) })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::fixtures::{cache, failure, test_agent, test_state};
    use k8s_openapi::api::apps::v1::DeploymentStatus;
    use serde_json::json;

    fn agent_with_status(agent: &Agent, status: &serde_json::Value) -> serde_json::Value {
        let mut value = serde_json::to_value(agent).expect("agent JSON");
        value["status"] = status.clone();
        value
    }

    /// The children the test Agent `hive/scout` (uid `uid-scout`) plans to, with no API
    /// server endpoints.
    fn plan_scout(state: &State, agent: &Agent) -> Children {
        plan::plan(
            &AgentRef {
                name: "scout",
                namespace: "hive",
                uid: "uid-scout",
            },
            &agent.spec,
            &PlanConfig {
                placeholder_image: &state.ctx.config.placeholder_image,
                api_server: &[],
                symbiont_image: &state.ctx.config.symbiont_image,
            },
        )
        .expect("plan")
    }

    async fn finish(server: tokio::task::JoinHandle<()>) {
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the scenario finished in time")
            .expect("the scenario's assertions held");
    }

    #[tokio::test]
    async fn a_new_agent_gets_its_children_then_a_pending_status() {
        let (state, _caches, mut api) = test_state();
        let agent = test_agent(json!({"replicas": 2}));
        let stored = agent.clone();
        let server = tokio::spawn(async move {
            let sa = api.echo().await;
            assert!(
                sa.is("PATCH", "/api/v1/namespaces/hive/serviceaccounts/scout?"),
                "{sa:?}"
            );
            assert!(
                sa.uri.contains("fieldManager=kgents-operator") && sa.uri.contains("force=true"),
                "{sa:?}"
            );
            let deployment = api.echo().await;
            assert!(
                deployment.is("PATCH", "/apis/apps/v1/namespaces/hive/deployments/scout?"),
                "{deployment:?}"
            );
            assert_eq!(
                deployment.body["metadata"]["ownerReferences"][0]["uid"],
                "uid-scout"
            );
            assert_eq!(
                deployment.body["metadata"]["ownerReferences"][0]["controller"],
                true
            );
            assert_eq!(deployment.body["spec"]["replicas"], 2);
            assert_eq!(deployment.body["spec"]["strategy"]["type"], "Recreate");
            let service = api.echo().await;
            assert!(
                service.is("PATCH", "/api/v1/namespaces/hive/services/scout?"),
                "{service:?}"
            );
            let status = api
                .answer(|seen| (200, agent_with_status(&stored, &seen.body["status"])))
                .await;
            assert!(
                status.is(
                    "PATCH",
                    "/apis/kgents.io/v1/namespaces/hive/agents/scout/status?"
                ),
                "{status:?}"
            );
            assert_eq!(status.body["apiVersion"], "kgents.io/v1");
            assert_eq!(status.body["kind"], "Agent");
            assert_eq!(status.body["status"]["phase"], "Pending");
            assert_eq!(status.body["status"]["observedGeneration"], 1);
            assert_eq!(
                status.body["status"]["selector"],
                "app.kubernetes.io/instance=scout,app.kubernetes.io/name=kgents-agent"
            );
            assert_eq!(status.body["status"]["conditions"][0]["type"], "Ready");
            assert_eq!(status.body["status"]["conditions"][0]["status"], "False");
            assert!(
                status.body["status"].get("cognitiveHealth").is_none(),
                "other writers' fields are not claimed"
            );
            // The Deployment the apply returned is what the status is computed from, so the
            // status is complete at once; a new Agent's first Pending is not an Event.
            assert_eq!(status.body["status"]["deployment"], "scout");
            assert_eq!(
                status.body["status"]["conditions"][0]["reason"],
                "PodsNotReady"
            );
            api.expect_silence().await;
        });
        let action = reconcile(Arc::new(agent), state.clone())
            .await
            .expect("reconcile");
        assert_eq!(action, Action::requeue(state.ctx.config.resync_interval));
        finish(server).await;
    }

    #[tokio::test]
    async fn nothing_changed_means_no_request_at_all() {
        let (state, mut caches, mut api) = test_state();
        let mut agent = test_agent(
            json!({"networkPolicy": {}, "symbiont": {"memory": {"retentionPolicy": "RETAIN"}}}),
        );
        let children = plan_scout(&state, &agent);
        let mut deployment = children.deployment.clone();
        deployment.metadata.generation = Some(1);
        deployment.status = Some(DeploymentStatus {
            observed_generation: Some(1),
            replicas: Some(1),
            ready_replicas: Some(1),
            updated_replicas: Some(1),
            ..DeploymentStatus::default()
        });
        let deployment = ObservedDeployment::from(&deployment);
        cache(&mut caches.deployments, deployment.clone());
        cache(&mut caches.services, ObservedMeta::of(&children.service));
        cache(
            &mut caches.service_accounts,
            children.service_account.clone().expect("sa"),
        );
        cache(
            &mut caches.network_policies,
            ObservedMeta::of(children.network_policy.as_ref().expect("np")),
        );
        cache(
            &mut caches.memories,
            children.memory.clone().expect("memory").memory,
        );
        let selector = plan::selector_string("scout");
        let input = StatusInput {
            generation: Some(1),
            desired_replicas: 1,
            name: "scout",
            selector: &selector,
            memory: Some("scout"),
            umwelt: None,
            realisation: Realisation::Applied {
                deployment: Some(&deployment),
            },
        };
        let earlier = jiff::Timestamp::from_second(1_000).expect("timestamp");
        let current = status::compute(&input, None, earlier);
        assert_eq!(current.phase, Some(AgentPhase::Running));
        agent.status = Some(current);

        let server = tokio::spawn(async move { api.expect_silence().await });
        let action = reconcile(Arc::new(agent), state.clone())
            .await
            .expect("reconcile");
        assert_eq!(action, Action::requeue(state.ctx.config.resync_interval));
        finish(server).await;
    }

    #[tokio::test]
    async fn a_quota_rejection_fails_the_agent_with_a_reason_and_an_event() {
        let (state, _caches, mut api) = test_state();
        let agent = test_agent(json!({}));
        let stored = agent.clone();
        let server = tokio::spawn(async move {
            api.echo().await; // ServiceAccount
            let deployment = api
                .answer(|_| (403, failure(403, "Forbidden", "deployments.apps \"scout\" is forbidden: exceeded quota: agents, requested: count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1")))
                .await;
            assert!(
                deployment.uri.contains("/deployments/scout"),
                "{deployment:?}"
            );
            api.echo().await; // Service
            let status = api
                .answer(|seen| (200, agent_with_status(&stored, &seen.body["status"])))
                .await;
            assert_eq!(status.body["status"]["phase"], "Failed");
            let ready = &status.body["status"]["conditions"][0];
            assert_eq!(ready["reason"], "QuotaExceeded");
            assert!(
                ready["message"]
                    .as_str()
                    .expect("message")
                    .contains("exceeded quota"),
                "{ready}"
            );
            let event = api.echo().await;
            assert_eq!(event.body["type"], "Warning");
            assert_eq!(event.body["reason"], "QuotaExceeded");
            api.expect_silence().await;
        });
        let action = reconcile(Arc::new(agent), state)
            .await
            .expect("a refusal is reported, not retried fast");
        assert_eq!(action, Action::requeue(REJECTED_RETRY));
        finish(server).await;
    }

    #[tokio::test]
    async fn a_server_error_is_returned_counted_and_retried() {
        let (state, _caches, mut api) = test_state();
        let agent = Arc::new(test_agent(json!({})));
        let server = tokio::spawn(async move {
            api.answer(|_| (500, failure(500, "InternalError", "etcd is unhappy")))
                .await;
            api.echo().await; // Deployment
            api.echo().await; // Service
            api.expect_silence().await;
        });
        let error = reconcile(agent.clone(), state.clone())
            .await
            .expect_err("a server error fails the reconcile");
        assert_eq!(error.metric_label(), "kube_api");
        let action = error_policy(agent, &error, state.clone());
        assert_eq!(action, Action::requeue(Duration::from_secs(15)));
        let metrics = state.ctx.metrics.encode();
        assert!(
            metrics.contains(
                r#"kgents_reconcile_errors_total{controller="agent",reason="kube_api"} 1"#
            ),
            "{metrics}"
        );
        finish(server).await;
    }

    #[tokio::test]
    async fn full_mode_without_an_image_creates_nothing_and_says_why() {
        let (state, _caches, mut api) = test_state();
        let agent = test_agent(json!({"deployMode": "FULL"}));
        let stored = agent.clone();
        let server = tokio::spawn(async move {
            let status = api
                .answer(|seen| (200, agent_with_status(&stored, &seen.body["status"])))
                .await;
            assert!(status.uri.contains("/agents/scout/status"), "{status:?}");
            assert_eq!(status.body["status"]["phase"], "Failed");
            assert_eq!(
                status.body["status"]["conditions"][0]["reason"],
                "MissingImage"
            );
            let event = api.echo().await;
            assert_eq!(event.body["type"], "Warning");
            assert_eq!(event.body["reason"], "MissingImage");
            api.expect_silence().await;
        });
        reconcile(Arc::new(agent), state).await.expect("reconcile");
        finish(server).await;
    }

    #[tokio::test]
    async fn dry_run_removes_running_children_and_reports_what_it_would_create() {
        let (state, mut caches, mut api) = test_state();
        let agent = test_agent(json!({"deployMode": "DRY_RUN"}));
        let children = plan::plan(
            &AgentRef {
                name: "scout",
                namespace: "hive",
                uid: "uid-scout",
            },
            &test_agent(json!({})).spec,
            &PlanConfig {
                placeholder_image: "pause",
                api_server: &[],
                symbiont_image: "symbiont",
            },
        )
        .expect("plan");
        cache(
            &mut caches.deployments,
            ObservedDeployment::from(&children.deployment),
        );
        let stored = agent.clone();
        let server = tokio::spawn(async move {
            let delete = api.answer(|_| (200, failure(200, "", "deleted"))).await;
            assert!(
                delete.is("DELETE", "/apis/apps/v1/namespaces/hive/deployments/scout"),
                "{delete:?}"
            );
            let status = api
                .answer(|seen| (200, agent_with_status(&stored, &seen.body["status"])))
                .await;
            assert_eq!(status.body["status"]["phase"], "Pending");
            let ready = &status.body["status"]["conditions"][0];
            assert_eq!(ready["reason"], "DryRun");
            assert!(
                ready["message"]
                    .as_str()
                    .expect("message")
                    .contains("would create ServiceAccount scout; Deployment scout"),
                "{ready}"
            );
            assert!(status.body["status"].get("deployment").is_none());
            api.echo().await; // the Pending Event
            api.expect_silence().await;
        });
        reconcile(Arc::new(agent), state).await.expect("reconcile");
        finish(server).await;
    }

    #[tokio::test]
    async fn a_missing_umwelt_account_is_reported_and_rechecked_soon() {
        let (state, _caches, mut api) = test_state();
        let agent = test_agent(json!({"umwelt": "explorer"}));
        let stored = agent.clone();
        let server = tokio::spawn(async move {
            let deployment = api.echo().await;
            assert!(
                deployment.uri.contains("/deployments/scout"),
                "no ServiceAccount of its own: {deployment:?}"
            );
            assert_eq!(
                deployment.body["spec"]["template"]["spec"]["serviceAccountName"],
                "explorer-umwelt"
            );
            api.echo().await; // Service
            // The Umwelt's account is looked for in the account cache, not asked for.
            let status = api
                .answer(|seen| (200, agent_with_status(&stored, &seen.body["status"])))
                .await;
            assert_eq!(status.body["status"]["phase"], "Failed");
            assert_eq!(
                status.body["status"]["conditions"][0]["reason"],
                "ServiceAccountNotFound"
            );
            assert_eq!(status.body["status"]["umwelt"], "explorer");
            let event = api.echo().await;
            assert_eq!(event.body["reason"], "ServiceAccountNotFound");
            api.expect_silence().await;
        });
        let action = reconcile(Arc::new(agent), state).await.expect("reconcile");
        assert_eq!(action, Action::requeue(SERVICE_ACCOUNT_WAIT));
        finish(server).await;
    }

    #[test]
    fn a_status_written_from_an_agent_version_is_not_written_again_from_it() {
        let written = WrittenStatuses::default();
        let mut agent = test_agent(json!({}));
        agent.metadata.resource_version = Some("10".to_owned());
        let status = AgentStatus {
            phase: Some(AgentPhase::Pending),
            ..AgentStatus::default()
        };
        assert!(!written.already_written(&agent, &status));
        written.record(&agent, &status);
        assert!(written.already_written(&agent, &status), "stale cache");
        let running = AgentStatus {
            phase: Some(AgentPhase::Running),
            ..AgentStatus::default()
        };
        assert!(!written.already_written(&agent, &running), "another status");
        let mut newer = agent.clone();
        newer.metadata.resource_version = Some("11".to_owned());
        assert!(
            !written.already_written(&newer, &status),
            "another version is compared as usual"
        );
        written.forget(&agent);
        assert!(!written.already_written(&agent, &status));
    }

    #[tokio::test]
    async fn a_settled_plan_holds_only_while_every_child_is_as_it_left_it() {
        let (state, mut caches, _api) = test_state();
        let agent = test_agent(json!({"symbiont": {"memory": {"retentionPolicy": "RETAIN"}}}));
        let agent_ref = AgentRef {
            name: "scout",
            namespace: "hive",
            uid: "uid-scout",
        };
        let children = plan_scout(&state, &agent);
        let endpoints = endpoints_print(&[]);
        let settled = SettledPlan::of(&children, Some(1), endpoints).expect("every child hashed");
        state.settled.record("uid-scout", Some(settled));
        let holding = |state: &State| {
            state
                .settled
                .holding(&agent_ref, Some(1), endpoints, &state.stores)
                .is_some()
        };
        assert!(!holding(&state), "nothing cached yet");

        cache(
            &mut caches.deployments,
            ObservedDeployment::from(&children.deployment),
        );
        cache(&mut caches.services, ObservedMeta::of(&children.service));
        cache(
            &mut caches.service_accounts,
            children.service_account.clone().expect("sa"),
        );
        cache(
            &mut caches.memories,
            children.memory.clone().expect("memory").memory,
        );
        assert!(holding(&state), "every child in place");
        assert!(
            state
                .settled
                .holding(&agent_ref, Some(2), endpoints, &state.stores)
                .is_none(),
            "another generation plans again"
        );
        let moved = endpoints_print(&[plan::ApiServerEndpoint {
            ip: "10.0.0.1".to_owned(),
            port: 6443,
        }]);
        assert!(
            state
                .settled
                .holding(&agent_ref, Some(1), moved, &state.stores)
                .is_none(),
            "moved API server endpoints plan again"
        );

        // A NetworkPolicy of the Agent's that the plan does not want is left to remove.
        let policy = ObservedMeta::<NetworkPolicy>::new(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("scout".to_owned()),
                namespace: Some("hive".to_owned()),
                owner_references: children.deployment.metadata.owner_references.clone(),
                ..Default::default()
            },
        );
        cache(&mut caches.network_policies, policy.clone());
        assert!(!holding(&state), "an unwanted child is left");
        caches
            .network_policies
            .apply_watcher_event(&watcher::Event::Delete(policy));
        assert!(holding(&state));

        // A Service changed by someone else no longer carries the plan's hash.
        let mut edited = ObservedMeta::of(&children.service);
        edited.metadata.annotations.get_or_insert_default().insert(
            support::DESIRED_HASH_ANNOTATION.to_owned(),
            "other".to_owned(),
        );
        cache(&mut caches.services, edited);
        assert!(!holding(&state), "a changed child");

        state.settled.forget(&agent);
        cache(&mut caches.services, ObservedMeta::of(&children.service));
        assert!(!holding(&state), "forgotten with its Agent");
    }

    #[test]
    fn a_child_whose_resource_version_alone_moved_has_the_same_fingerprint() {
        let mut first = ObservedDeployment::default();
        first.metadata.name = Some("scout".to_owned());
        first.metadata.resource_version = Some("1".to_owned());
        let mut bumped = first.clone();
        bumped.metadata.resource_version = Some("2".to_owned());
        let print = fingerprint(&mut first);
        assert_eq!(print, fingerprint(&mut bumped));
        assert_eq!(
            bumped.metadata.resource_version.as_deref(),
            Some("2"),
            "the version is put back"
        );
        let mut scaled = bumped.clone();
        scaled.spec.replicas = Some(3);
        assert_ne!(print, fingerprint(&mut scaled));
        let mut progressed = bumped.clone();
        progressed.status = Some(k8s_openapi::api::apps::v1::DeploymentStatus {
            ready_replicas: Some(1),
            ..Default::default()
        });
        assert_ne!(print, fingerprint(&mut progressed), "status counts");
    }

    #[test]
    fn a_shared_child_s_status_does_not_count() {
        let spec = serde_json::from_value(json!({"owner": "scout"})).expect("valid spec");
        let mut memory = kgents_crds::Memory::new("scout", spec);
        memory.metadata.resource_version = Some("1".to_owned());
        let print = fingerprint_without_status(&memory);
        let mut written = memory.clone();
        written.metadata.resource_version = Some("2".to_owned());
        written.status = Some(Default::default());
        assert_eq!(print, fingerprint_without_status(&written));
        let mut labelled = memory.clone();
        labelled.metadata.labels = Some([("a".to_owned(), "b".to_owned())].into());
        assert_ne!(print, fingerprint_without_status(&labelled));
    }

    #[test]
    fn status_only_changes_do_not_trigger() {
        let agent = test_agent(json!({}));
        let mut with_status = agent.clone();
        with_status.status = Some(AgentStatus {
            phase: Some(AgentPhase::Running),
            ..AgentStatus::default()
        });
        assert_eq!(trigger_key(&agent), trigger_key(&with_status));
        let mut scaled = agent.clone();
        scaled.metadata.generation = Some(2);
        assert_ne!(trigger_key(&agent), trigger_key(&scaled));
        let mut deleting = agent.clone();
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        assert_ne!(
            trigger_key(&agent),
            trigger_key(&deleting),
            "deletion triggers although generation is unchanged"
        );
        let mut finalized = agent.clone();
        finalized.metadata.finalizers = Some(vec!["example.com/x".to_owned()]);
        assert_ne!(trigger_key(&agent), trigger_key(&finalized));
    }
}
