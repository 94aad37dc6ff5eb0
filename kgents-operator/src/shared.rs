//! One watch per kind for the whole operator process, shared by every controller that reads
//! that kind: Agents (the Agent, Memory and Umwelt controllers and the cognitive runner),
//! Memories (the Memory and Agent controllers), Proposals (the Proposal controller and the
//! admission webhook's ledger), Pheromones (the Pheromone controller and the witness recorder),
//! the Events the operator itself published (the witness recorder), and the ServiceAccounts, ConfigMaps, Roles, RoleBindings and
//! PersistentVolumeClaims the operator manages (the Agent, Memory and Umwelt controllers).
//! Controllers read their children from these caches instead of asking the API server.
//!
//! The admission policy ConfigMap is the one object of a kind watched apart from the kind's
//! shared watch: it is not the operator's (no managed-by label), and the alternative, a watch of
//! every ConfigMap, would cost far more than a second watch of one object by name. The webhook
//! and the Proposal controller share it ([`Watches::policy`]).
//!
//! A [`Shared`] holds one kube `reflector` store fed by one watch stream (with kube's default
//! backoff) and fans the watch's events out to subscribers. The watch starts on first use and
//! runs until the last handle is dropped, independent of the controllers: the operator keeps
//! its [`Watches`] across leadership terms, so controllers stopped on a lost Lease and started
//! again on the next one do not re-list.
//!
//! A subscriber ([`Shared::subscribe`]) first receives every object in the store (once it has
//! been listed) followed by [`Event::Relisted`], then every change as it arrives. A subscriber
//! that falls behind the fan-out buffer is not left with a gap: it receives the store's
//! content again, followed by [`Event::Relisted`], and continues from there. The snapshot and
//! the subscription are taken under the same lock the fan-out sends under, so no change falls
//! between them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, ServiceAccount};
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kgents_crds::{Agent, Memory, Pheromone, Proposal, Workflow};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

use crate::support::{MANAGED_BY, MANAGED_BY_LABEL};

/// What a shared watch can hold: a namespaced kind with a static type.
pub trait Watched:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl<K> Watched for K where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// The policy ConfigMaps' watches, by namespace and name.
type PolicyWatches = HashMap<(String, String), Shared<ConfigMap>>;

/// Every shared watch of an operator process. Cheap to clone; clones share the watches.
#[derive(Clone)]
pub struct Watches {
    /// Every Agent.
    pub agents: Shared<Agent>,
    /// Every Memory.
    pub memories: Shared<Memory>,
    /// The ServiceAccounts the operator manages (Agents' and Umwelts').
    pub service_accounts: Shared<ServiceAccount>,
    /// The ConfigMaps the operator manages (Memories' metadata, Umwelts' runtime views).
    pub config_maps: Shared<ConfigMap>,
    /// The Roles the operator manages (Memories' grants, Umwelts' access).
    pub roles: Shared<Role>,
    /// The RoleBindings the operator manages.
    pub role_bindings: Shared<RoleBinding>,
    /// The PersistentVolumeClaims the operator manages (Memories' storage).
    pub claims: Shared<PersistentVolumeClaim>,
    /// Every Proposal.
    pub proposals: Shared<Proposal>,
    /// Every Workflow.
    pub workflows: Shared<Workflow>,
    /// Every Pheromone.
    pub pheromones: Shared<Pheromone>,
    /// The `events.k8s.io/v1` Events this operator published (its reporting controller,
    /// selected by the API server): the kgents Events, about Agents and the objects they own.
    pub events: Shared<KubeEvent>,
    /// The policy ConfigMaps watched by name, by namespace and name (see [`Watches::policy`]).
    policies: Arc<Mutex<PolicyWatches>>,
    /// For the policy watches, made on first use.
    client: Client,
}

impl std::fmt::Debug for Watches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watches")
            .field("agents", &self.agents)
            .field("memories", &self.memories)
            .field("proposals", &self.proposals)
            .finish_non_exhaustive()
    }
}

impl Watches {
    /// The watches of the objects `client` reaches in `namespace` (all namespaces: `None`);
    /// none is started until a controller first reads it. `reporter` is the reporting
    /// controller of the Events this operator publishes (its field manager): the Event watch
    /// asks the API server for those alone, not for every Event in the cluster.
    pub fn new(client: &Client, namespace: Option<&str>, reporter: &str) -> Self {
        fn api<K: Watched>(client: &Client, namespace: Option<&str>) -> Api<K> {
            match namespace {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            }
        }
        let managed = watcher::Config::default()
            .labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"))
            .any_semantic();
        let all = watcher::Config::default().any_semantic();
        Self {
            agents: Shared::new(api(client, namespace), all.clone()),
            memories: Shared::new(api(client, namespace), all),
            service_accounts: Shared::new(api(client, namespace), managed.clone()),
            config_maps: Shared::new(api(client, namespace), managed.clone()),
            roles: Shared::new(api(client, namespace), managed.clone()),
            role_bindings: Shared::new(api(client, namespace), managed.clone()),
            claims: Shared::new(api(client, namespace), managed),
            proposals: Shared::new(api(client, namespace), watcher::Config::default()),
            workflows: Shared::new(api(client, namespace), watcher::Config::default()),
            pheromones: Shared::new(
                api(client, namespace),
                watcher::Config::default().any_semantic(),
            ),
            events: Shared::new(
                api(client, namespace),
                watcher::Config::default().fields(&format!("reportingController={reporter}")),
            ),
            policies: Arc::default(),
            client: client.clone(),
        }
    }

    /// The watch of the admission policy ConfigMap `namespace/name`, by name: one per
    /// ConfigMap for the whole process, whoever asks (the webhook, the Proposal controller).
    pub fn policy(&self, namespace: &str, name: &str) -> Shared<ConfigMap> {
        self.policies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((namespace.to_owned(), name.to_owned()))
            .or_insert_with(|| {
                Shared::new(
                    Api::namespaced(self.client.clone(), namespace),
                    watcher::Config::default().fields(&format!("metadata.name={name}")),
                )
            })
            .clone()
    }

    /// The watch of every Proposal in `namespace` (all namespaces: `None`): the shared one when
    /// it covers the same namespaces, else a watch of its own.
    pub fn proposals_in(&self, namespace: Option<&str>) -> Shared<Proposal> {
        if self.proposals.api.namespace() == namespace {
            self.proposals.clone()
        } else {
            let api = match namespace {
                Some(ns) => Api::namespaced(self.client.clone(), ns),
                None => Api::all(self.client.clone()),
            };
            Shared::new(api, watcher::Config::default())
        }
    }
}

/// How many events the fan-out buffers for a slow subscriber before it must re-read the store.
///
/// Small on purpose: a broadcast channel keeps every slot's value until the slot is reused, so
/// each buffered event holds an old version of an object alive after every subscriber has read
/// it. With 4,096 slots, 1,000 Agents created at once kept about 4,000 stale Agent versions in
/// memory. Subscribers read promptly (each is a controller's trigger stream); one that does fall
/// 256 events behind re-reads the store, which costs it a pass over the cache, not correctness.
const FAN_OUT_BUFFER: usize = 256;

/// The writers behind [`Watches::offline`]'s caches: a unit test puts objects in them as a
/// watch would.
#[cfg(test)]
pub(crate) struct Feeds {
    pub agents: reflector::store::Writer<Agent>,
    pub service_accounts: reflector::store::Writer<ServiceAccount>,
    pub config_maps: reflector::store::Writer<ConfigMap>,
    pub roles: reflector::store::Writer<Role>,
    pub role_bindings: reflector::store::Writer<RoleBinding>,
    pub claims: reflector::store::Writer<PersistentVolumeClaim>,
}

#[cfg(test)]
impl Watches {
    /// Watches that are empty, loaded caches fed by hand (unit tests must not reach an API
    /// server).
    pub(crate) fn offline(client: &Client) -> (Self, Feeds) {
        fn one<K: Watched>(client: &Client) -> (Shared<K>, reflector::store::Writer<K>) {
            let (store, mut writer) = reflector::store::<K>();
            writer.apply_watcher_event(&watcher::Event::Init);
            writer.apply_watcher_event(&watcher::Event::InitDone);
            (
                Shared::offline(Api::all(client.clone()), store, true),
                writer,
            )
        }
        let (agents, agent_feed) = one(client);
        let (memories, _) = one::<Memory>(client);
        let (service_accounts, account_feed) = one(client);
        let (config_maps, map_feed) = one(client);
        let (roles, role_feed) = one(client);
        let (role_bindings, binding_feed) = one(client);
        let (claims, claim_feed) = one(client);
        let (proposals, _) = one::<Proposal>(client);
        let (workflows, _) = one::<Workflow>(client);
        let (pheromones, _) = one::<Pheromone>(client);
        let (events, _) = one::<KubeEvent>(client);
        let watches = Self {
            agents,
            memories,
            service_accounts,
            config_maps,
            roles,
            role_bindings,
            claims,
            proposals,
            workflows,
            pheromones,
            events,
            policies: Arc::default(),
            client: client.clone(),
        };
        let feeds = Feeds {
            agents: agent_feed,
            service_accounts: account_feed,
            config_maps: map_feed,
            roles: role_feed,
            role_bindings: binding_feed,
            claims: claim_feed,
        };
        (watches, feeds)
    }
}

/// One change of the objects of a shared watch, as subscribers receive it.
#[derive(Debug)]
pub enum Event<K> {
    /// An object was created or changed (or is part of a (re-)list).
    Applied(Arc<K>),
    /// An object was deleted.
    Deleted(Arc<K>),
    /// The objects before this event are every object there is: anything a subscriber
    /// remembers that was not among them is gone.
    Relisted,
}

impl<K> Clone for Event<K> {
    fn clone(&self) -> Self {
        match self {
            Event::Applied(o) => Event::Applied(o.clone()),
            Event::Deleted(o) => Event::Deleted(o.clone()),
            Event::Relisted => Event::Relisted,
        }
    }
}

impl<K> Event<K> {
    /// The object an event is about (`None` for [`Event::Relisted`]).
    pub fn object(&self) -> Option<&Arc<K>> {
        match self {
            Event::Applied(o) | Event::Deleted(o) => Some(o),
            Event::Relisted => None,
        }
    }
}

/// One change of the Agents.
pub type AgentEvent = Event<Agent>;

struct Watch<K: Watched> {
    store: Store<K>,
    /// Whether the first list is in. kube's `Store::wait_until_ready` wakes only the last of
    /// several concurrent waiters (and a `now_or_never` check replaces a waiter's waker), so
    /// everything but a kube `Controller` waits on this instead.
    ready: tokio::sync::watch::Receiver<bool>,
    sender: broadcast::Sender<Event<K>>,
    /// Held while an event is sent and while a subscriber takes its snapshot.
    gate: Arc<Mutex<()>>,
    /// The watch task (`None` for a cache fed elsewhere, in tests).
    task: Option<tokio::task::JoinHandle<()>>,
}

impl<K: Watched> Drop for Watch<K> {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A shared watch and cache of kind `K`. Cheap to clone; every clone is the same watch.
pub struct Shared<K: Watched> {
    api: Api<K>,
    config: watcher::Config,
    watch: Arc<OnceLock<Watch<K>>>,
}

impl<K: Watched> Clone for Shared<K> {
    fn clone(&self) -> Self {
        Self {
            api: self.api.clone(),
            config: self.config.clone(),
            watch: self.watch.clone(),
        }
    }
}

impl<K: Watched> std::fmt::Debug for Shared<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("kind", &K::kind(&()))
            .field("started", &self.watch.get().is_some())
            .finish_non_exhaustive()
    }
}

impl<K: Watched> Shared<K> {
    /// A shared watch of the objects `api` reaches that `config` selects; not started yet.
    pub fn new(api: Api<K>, config: watcher::Config) -> Self {
        Self {
            api,
            config,
            watch: Arc::new(OnceLock::new()),
        }
    }

    fn watch(&self) -> &Watch<K> {
        self.watch.get_or_init(|| {
            let (store, writer) = reflector::store::<K>();
            let (sender, _) = broadcast::channel(FAN_OUT_BUFFER);
            let gate = Arc::new(Mutex::new(()));
            let (ready_tx, ready) = tokio::sync::watch::channel(false);
            let task = tokio::spawn(fan_out(
                self.api.clone(),
                self.config.clone(),
                ready_tx,
                writer,
                store.clone(),
                sender.clone(),
                gate.clone(),
            ));
            Watch {
                store,
                ready,
                sender,
                gate,
                task: Some(task),
            }
        })
    }

    /// Sends `event` to the subscribers, as the watch would after applying it to the cache
    /// (unit tests apply it to the cache by hand first).
    #[cfg(test)]
    pub(crate) fn send(&self, event: Event<K>) {
        let watch = self.watch();
        let _sending = watch.gate.lock().unwrap_or_else(|p| p.into_inner());
        let _ = watch.sender.send(event);
    }

    /// A shared "watch" that is the given cache and sends no events (unit tests feed the cache
    /// by hand and must not reach an API server).
    #[cfg(test)]
    pub(crate) fn offline(api: Api<K>, store: Store<K>, ready: bool) -> Self {
        let watch = OnceLock::new();
        let _ = watch.set(Watch {
            store,
            ready: tokio::sync::watch::channel(ready).1,
            sender: broadcast::channel(FAN_OUT_BUFFER).0,
            gate: Arc::new(Mutex::new(())),
            task: None,
        });
        Self {
            api,
            config: watcher::Config::default(),
            watch: Arc::new(watch),
        }
    }

    /// Whether the cache holds the first list (starts the watch if needed).
    pub fn is_ready(&self) -> bool {
        *self.watch().ready.borrow()
    }

    /// Whether the cache holds the first list, as a channel to look at later (starts the
    /// watch if needed).
    pub fn readiness(&self) -> tokio::sync::watch::Receiver<bool> {
        self.watch().ready.clone()
    }

    /// Waits until the cache holds the first list (starts the watch if needed).
    pub async fn until_ready(&self) {
        let mut ready = self.watch().ready.clone();
        // An error means the watch task is gone: nothing will become ready; callers time out.
        if ready.wait_for(|ready| *ready).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// The cache (managed fields stripped). Starts the watch if needed.
    pub fn store(&self) -> Store<K> {
        self.watch().store.clone()
    }

    /// Every object created, changed or deleted, as [`Shared::subscribe`] reports them: what a
    /// controller's `owns_shared_stream` or `watches_shared_stream` wants.
    pub fn touched(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        self.subscribe()
            .filter_map(|event| futures::future::ready(event.object().cloned()))
    }

    /// Every object in the cache, then each change as it arrives (see the module
    /// documentation). Starts the watch if needed.
    pub fn subscribe(&self) -> impl Stream<Item = Event<K>> + Send + 'static {
        let watch = self.watch();
        let store = watch.store.clone();
        let sender = watch.sender.clone();
        let gate = watch.gate.clone();
        let state = Subscription {
            ready: watch.ready.clone(),
            store,
            sender,
            gate,
            receiver: None,
            pending: VecDeque::new(),
        };
        futures::stream::unfold(state, |mut state| async move {
            let event = state.next().await?;
            Some((event, state))
        })
    }
}

/// Runs the one watch: applies each event to the store, then sends it to the subscribers.
async fn fan_out<K: Watched>(
    api: Api<K>,
    config: watcher::Config,
    ready: tokio::sync::watch::Sender<bool>,
    writer: reflector::store::Writer<K>,
    store: Store<K>,
    sender: broadcast::Sender<Event<K>>,
    gate: Arc<Mutex<()>>,
) {
    let events = watcher(api, config)
        .default_backoff()
        .modify(|object: &mut K| object.meta_mut().managed_fields = None)
        .boxed();
    share(events, ready, writer, store, sender, gate).await;
}

/// The fan-out of one watch's events, whatever their source ([`fan_out`] feeds it the watch;
/// tests feed it by hand): each event applied to the store, then sent under the gate, and the
/// cache marked ready once its first list is in.
async fn share<K: Watched>(
    mut events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Unpin,
    ready: tokio::sync::watch::Sender<bool>,
    mut writer: reflector::store::Writer<K>,
    store: Store<K>,
    sender: broadcast::Sender<Event<K>>,
    gate: Arc<Mutex<()>>,
) {
    let kind = K::kind(&());
    let mut listing = Vec::new();
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(%kind, %error, "shared watch failed; retrying with backoff");
                continue;
            }
        };
        let listed = matches!(event, watcher::Event::InitDone);
        let shared = relay(event, &mut writer, &store, &mut listing);
        if !shared.is_empty() {
            let _sending = gate.lock().unwrap_or_else(|p| p.into_inner());
            for event in shared {
                // No subscriber is not an error: the store is still kept.
                let _ = sender.send(event);
            }
        }
        // Ready only once the store holds the list: a subscriber woken earlier would take the
        // store's snapshot while it was still empty and announce a relist that names nothing,
        // which reads as "every object is gone" (the witness recorded Agents as deleted).
        if listed {
            ready.send_replace(true);
        }
    }
}

/// Applies one watcher event to the store and returns what to tell the subscribers. The
/// objects of a (re)list are announced only at its end: the store takes the new list at
/// `InitDone`, so an object announced as it is listed — one created while the watch was down,
/// e.g. across an API server restart — is not yet in the store, and a controller that looks it
/// up there drops its reconcile; nothing would reconcile it again.
fn relay<K: Watched>(
    event: watcher::Event<K>,
    writer: &mut reflector::store::Writer<K>,
    store: &Store<K>,
    listing: &mut Vec<ObjectRef<K>>,
) -> Vec<Event<K>> {
    writer.apply_watcher_event(&event);
    match event {
        watcher::Event::Apply(object) => {
            // The store holds this very version now: share its copy.
            let cached = store.get(&ObjectRef::from_obj(&object));
            vec![Event::Applied(cached.unwrap_or_else(|| Arc::new(object)))]
        }
        watcher::Event::Delete(object) => vec![Event::Deleted(Arc::new(object))],
        watcher::Event::Init => {
            listing.clear();
            Vec::new()
        }
        watcher::Event::InitApply(object) => {
            listing.push(ObjectRef::from_obj(&object));
            Vec::new()
        }
        watcher::Event::InitDone => listing
            .drain(..)
            .filter_map(|listed| store.get(&listed))
            .map(Event::Applied)
            .chain(std::iter::once(Event::Relisted))
            .collect(),
    }
}

/// One subscriber's position: a snapshot still to hand out, then the live receiver.
struct Subscription<K: Watched> {
    ready: tokio::sync::watch::Receiver<bool>,
    store: Store<K>,
    sender: broadcast::Sender<Event<K>>,
    gate: Arc<Mutex<()>>,
    receiver: Option<broadcast::Receiver<Event<K>>>,
    pending: VecDeque<Event<K>>,
}

impl<K: Watched> Subscription<K> {
    /// Takes a snapshot of the store and a fresh receiver, atomically with respect to sends.
    async fn resubscribe(&mut self) -> Option<()> {
        // The snapshot is only complete once the first list is in.
        self.ready.wait_for(|ready| *ready).await.ok()?;
        let _sending = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        self.receiver = Some(self.sender.subscribe());
        self.pending = self
            .store
            .state()
            .into_iter()
            .map(Event::Applied)
            .chain(std::iter::once(Event::Relisted))
            .collect();
        Some(())
    }

    async fn next(&mut self) -> Option<Event<K>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            let Some(receiver) = self.receiver.as_mut() else {
                self.resubscribe().await?;
                continue;
            };
            match receiver.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(
                        missed,
                        kind = %K::kind(&()),
                        "a subscriber of a shared watch fell behind; re-reading the cache"
                    );
                    self.resubscribe().await?;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::fixtures::test_agent;
    use kube::ResourceExt;

    fn named(name: &str) -> Agent {
        let mut agent = test_agent(serde_json::json!({}));
        agent.metadata.name = Some(name.to_owned());
        agent
    }

    /// A shared watch over a store fed by hand instead of an API server.
    fn offline() -> (Watch<Agent>, reflector::store::Writer<Agent>) {
        let (store, writer) = reflector::store::<Agent>();
        let (sender, _) = broadcast::channel(4);
        let watch = Watch {
            store,
            ready: tokio::sync::watch::channel(true).1,
            sender,
            gate: Arc::new(Mutex::new(())),
            task: None,
        };
        (watch, writer)
    }

    fn subscription(watch: &Watch<Agent>) -> Subscription<Agent> {
        Subscription {
            ready: watch.ready.clone(),
            store: watch.store.clone(),
            sender: watch.sender.clone(),
            gate: watch.gate.clone(),
            receiver: None,
            pending: VecDeque::new(),
        }
    }

    fn name_of(event: &Event<Agent>) -> String {
        match event {
            Event::Applied(a) => format!("applied {}", a.name_any()),
            Event::Deleted(a) => format!("deleted {}", a.name_any()),
            Event::Relisted => "relisted".to_owned(),
        }
    }

    #[test]
    fn a_relisted_object_is_announced_once_the_store_holds_it() {
        let (store, mut writer) = reflector::store::<Agent>();
        let mut listing = Vec::new();
        let mut relay = |event| relay(event, &mut writer, &store, &mut listing);
        assert!(relay(watcher::Event::Init).is_empty());
        assert!(relay(watcher::Event::InitApply(named("a"))).is_empty());
        assert_eq!(relay(watcher::Event::InitDone).len(), 2);
        // The watch broke; "b" was created meanwhile and comes with the re-list.
        assert!(relay(watcher::Event::Init).is_empty());
        assert!(relay(watcher::Event::InitApply(named("a"))).is_empty());
        assert!(relay(watcher::Event::InitApply(named("b"))).is_empty());
        // Until the list ends the store still holds the old list, without "b".
        assert!(store.get(&ObjectRef::from_obj(&named("b"))).is_none());
        let announced = relay(watcher::Event::InitDone);
        let names: Vec<String> = announced.iter().map(name_of).collect();
        assert_eq!(names, ["applied a", "applied b", "relisted"]);
        // What a controller does with an announcement: look the object up in the store.
        assert!(
            store
                .get(&ObjectRef::from_obj(&named("b")))
                .is_some_and(|b| b.name_any() == "b"),
            "b is in the store when it is announced"
        );
        let changed = relay(watcher::Event::Apply(named("c")));
        assert_eq!(
            changed.iter().map(name_of).collect::<Vec<_>>(),
            ["applied c"]
        );
        let gone = relay(watcher::Event::Delete(named("a")));
        assert_eq!(gone.iter().map(name_of).collect::<Vec<_>>(), ["deleted a"]);
    }

    #[tokio::test]
    async fn a_subscriber_waiting_for_the_first_list_gets_it_whole_and_once() {
        use futures::FutureExt;
        let (store, writer) = reflector::store::<Agent>();
        let (ready, readiness) = tokio::sync::watch::channel(false);
        let (sender, _) = broadcast::channel(16);
        let gate = Arc::new(Mutex::new(()));
        let (events, source) = futures::channel::mpsc::unbounded();
        let mut fan = Box::pin(share(
            source,
            ready,
            writer,
            store.clone(),
            sender.clone(),
            gate.clone(),
        ));
        let mut early = Subscription {
            ready: readiness.clone(),
            store,
            sender,
            gate,
            receiver: None,
            pending: VecDeque::new(),
        };
        let feed = |event| events.unbounded_send(Ok(event)).expect("fan-out alive");
        feed(watcher::Event::Init);
        feed(watcher::Event::InitApply(named("a")));
        feed(watcher::Event::InitApply(named("b")));
        // One poll of the fan-out takes every event queued so far, then waits for more.
        assert!((&mut fan).now_or_never().is_none());
        assert!(
            !*readiness.borrow(),
            "not ready while the list is under way"
        );
        assert!(
            early.next().now_or_never().is_none(),
            "a subscriber hears nothing before the list is in"
        );
        feed(watcher::Event::InitDone);
        assert!((&mut fan).now_or_never().is_none());
        assert!(*readiness.borrow(), "ready once the list is in");
        let mut heard = Vec::new();
        while let Some(event) = early.next().now_or_never() {
            heard.push(name_of(&event.expect("an event")));
        }
        heard[..2].sort();
        assert_eq!(heard, ["applied a", "applied b", "relisted"]);
        feed(watcher::Event::Apply(named("c")));
        assert!((&mut fan).now_or_never().is_none());
        assert_eq!(
            early.next().now_or_never().flatten().as_ref().map(name_of),
            Some("applied c".to_owned())
        );
    }

    #[tokio::test]
    async fn a_late_subscriber_gets_the_cache_then_the_changes() {
        let (watch, mut writer) = offline();
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(named("a")));
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let mut late = subscription(&watch);
        assert_eq!(name_of(&late.next().await.expect("event")), "applied a");
        assert_eq!(name_of(&late.next().await.expect("event")), "relisted");
        watch
            .sender
            .send(Event::Deleted(Arc::new(named("a"))))
            .expect("a subscriber");
        assert_eq!(name_of(&late.next().await.expect("event")), "deleted a");
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_reads_the_cache_again() {
        let (watch, mut writer) = offline();
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let mut slow = subscription(&watch);
        assert_eq!(name_of(&slow.next().await.expect("event")), "relisted");
        for name in ["a", "b", "c", "d", "e", "f"] {
            writer.apply_watcher_event(&watcher::Event::Apply(named(name)));
            watch
                .sender
                .send(Event::Applied(Arc::new(named(name))))
                .expect("a subscriber");
        }
        // Six events into a buffer of four: the subscriber is told everything again.
        let mut seen = Vec::new();
        for _ in 0..7 {
            seen.push(name_of(&slow.next().await.expect("event")));
        }
        seen[..6].sort();
        assert_eq!(
            seen,
            [
                "applied a",
                "applied b",
                "applied c",
                "applied d",
                "applied e",
                "applied f",
                "relisted"
            ]
        );
    }
}
