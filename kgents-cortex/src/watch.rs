//! The I/O edge that keeps the caches warm: one watch per kgents kind (Agents, Pheromones,
//! Proposals, cluster-wide, with kube-runtime's watcher and its default backoff), plus the
//! `events.k8s.io` Events of kgents objects. Each change goes to the [`WatchCache`] and to the
//! [`Hub`]; each changed kind's ghost snapshots are written to the store, debounced to at most
//! one write per [`SNAPSHOT_INTERVAL`] per snapshot, so the CLI's cache stays warm even when
//! the CLI has not run. The cluster's health is re-read every [`CLUSTER_INTERVAL`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use k8s_openapi::api::events::v1::Event as KubeEvent;
use kgents_core::clock::Clock;
use kgents_crds::{Agent, Pheromone, Proposal};
use kgents_ghost::{GhostStore, Layer, Query};
use kgents_logos::{ClusterView, LiveLayer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};

use crate::cache::{Debounce, Touched, WatchCache};
use crate::fanout::{Change, Hub, Payload, Thought};

/// At most one write per snapshot in this interval.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(1);
/// How often the cluster's health (server version, nodes, operator, webhook) is re-read; it
/// is also how the daemon notices that it lost the API server, and that it is back.
pub const CLUSTER_INTERVAL: Duration = Duration::from_secs(5);
/// How often due snapshot writes are looked for.
const TICK: Duration = Duration::from_millis(200);

/// One watch event of one kind.
enum Seen {
    Agent(watcher::Event<Agent>),
    Pheromone(watcher::Event<Pheromone>),
    Proposal(watcher::Event<Proposal>),
    Event(watcher::Event<KubeEvent>),
}

/// A watch error: what it says, and whether the API server refused (RBAC) rather than failed.
struct WatchError {
    text: String,
    forbidden: bool,
}

/// Whether the API server refused a watch (403), as opposed to being unreachable.
fn forbidden(error: &watcher::Error) -> bool {
    let code = match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code,
        watcher::Error::WatchError(status) => status.code,
        _ => 0,
    };
    code == 403
}

type Seens = std::pin::Pin<Box<dyn Stream<Item = Result<Seen, WatchError>> + Send>>;

fn kind_stream<K>(client: &Client, wrap: fn(watcher::Event<K>) -> Seen) -> Seens
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let plural = K::plural(&()).into_owned();
    let api: Api<K> = Api::all(client.clone());
    Box::pin(
        watcher(api, watcher::Config::default())
            .default_backoff()
            .map(move |event| {
                event.map(wrap).map_err(|e| WatchError {
                    forbidden: forbidden(&e),
                    text: format!("watching {plural}: {e}"),
                })
            }),
    )
}

/// A thought from an `events.k8s.io` Event about a kgents object (others are not shown), with
/// the Event's name (the change's key).
pub fn thought_of(event: &KubeEvent) -> Option<(String, Thought)> {
    let thought = kgents_logos::summary::thought_of(event)?;
    Some((event.metadata.name.clone().unwrap_or_default(), thought))
}

/// The watches, the caches they feed, the hub they publish to and the store they keep warm.
pub struct Watches {
    /// The kube client (the daemon's identity).
    pub client: Client,
    /// The caches.
    pub cache: Arc<WatchCache>,
    /// `Observe`'s subscribers.
    pub hub: Arc<Hub>,
    /// Where the ghost snapshots go (none: not written).
    pub store: Option<Arc<dyn GhostStore>>,
    /// Reads the cluster's health.
    pub live: Arc<dyn ClusterView>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

impl Watches {
    /// Runs until `stop` turns true (or its sender is gone).
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut seen = futures::stream::select_all(vec![
            kind_stream::<Agent>(&self.client, Seen::Agent),
            kind_stream::<Pheromone>(&self.client, Seen::Pheromone),
            kind_stream::<Proposal>(&self.client, Seen::Proposal),
            kind_stream::<KubeEvent>(&self.client, Seen::Event),
        ]);
        let mut debounce: Vec<(Touched, Debounce)> = [
            Touched::Agents,
            Touched::Pheromones,
            Touched::Proposals,
            Touched::Cluster,
        ]
        .into_iter()
        .map(|t| (t, Debounce::new(SNAPSHOT_INTERVAL)))
        .collect();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cluster = tokio::time::interval(CLUSTER_INTERVAL);
        cluster.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut events_refused = false;
        loop {
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return;
                    }
                }
                item = seen.next() => match item {
                    Some(Ok(item)) => {
                        let (change, touched) = self.apply(item);
                        if let Some(touched) = touched
                            && let Some((_, d)) = debounce.iter_mut().find(|(t, _)| *t == touched)
                        {
                            d.mark();
                        }
                        if let Some(change) = change {
                            self.hub.publish(&Arc::new(change));
                        }
                    }
                    Some(Err(error)) => {
                        // A refused Events watch leaves the thought stream empty; the kinds
                        // keep working. Every watch retries with the watcher's backoff.
                        let events = error.text.starts_with("watching events");
                        if events && error.forbidden {
                            if !events_refused {
                                tracing::warn!(error = %error.text, "Events are not readable: no thoughts in Observe");
                            }
                            events_refused = true;
                        } else {
                            tracing::warn!(error = %error.text, "watch error (retrying with backoff)");
                        }
                    }
                    None => return,
                },
                _ = cluster.tick() => {
                    match tokio::time::timeout(Duration::from_secs(5), self.live.cluster()).await {
                        Ok(Ok(observed)) => {
                            self.cache.api_up();
                            self.cache.set_cluster(observed);
                            if let Some((_, d)) = debounce.iter_mut().find(|(t, _)| *t == Touched::Cluster) {
                                d.mark();
                            }
                        }
                        Ok(Err(error)) => {
                            if error.kind() == kgents_logos::ErrorKind::Unavailable {
                                self.cache.api_down(error.to_string());
                            } else {
                                tracing::warn!(%error, "reading the cluster's health");
                            }
                        }
                        Err(_) => self.cache.api_down("no answer within 5 s".into()),
                    }
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    let due: Vec<Touched> = debounce
                        .iter_mut()
                        .filter_map(|(t, d)| d.take_due(now).then_some(*t))
                        .collect();
                    if !due.is_empty() {
                        self.write_snapshots(&due).await;
                    }
                }
            }
        }
    }

    fn apply(&self, item: Seen) -> (Option<Change>, Option<Touched>) {
        let touched =
            |(change, touched): (Option<Change>, bool), kind| (change, touched.then_some(kind));
        match item {
            Seen::Agent(e) => touched(self.cache.apply_agent(e), Touched::Agents),
            Seen::Pheromone(e) => touched(self.cache.apply_pheromone(e), Touched::Pheromones),
            Seen::Proposal(e) => touched(self.cache.apply_proposal(e), Touched::Proposals),
            Seen::Event(watcher::Event::Apply(e)) => match thought_of(&e) {
                Some((name, thought)) => (
                    Some(Change::new(
                        false,
                        thought.namespace.clone(),
                        name,
                        self.clock.now(),
                        Payload::Event(thought),
                    )),
                    None,
                ),
                None => (None, None),
            },
            // The initial list of Events is history, not news.
            Seen::Event(_) => (None, None),
        }
    }

    /// Writes the snapshots of the `due` kinds, built from the caches exactly as the CLI's
    /// live layer builds them from the API.
    async fn write_snapshots(&self, due: &[Touched]) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let layer = LiveLayer::new(Arc::clone(&self.cache) as Arc<dyn ClusterView>);
        let mut snapshots = Vec::new();
        // The status digest is made of the three lists: rewritten once when any changed.
        let digest = due
            .iter()
            .any(|t| {
                matches!(
                    t,
                    Touched::Agents | Touched::Pheromones | Touched::Proposals
                )
            })
            .then_some(Touched::Status);
        for touched in due.iter().copied().chain(digest) {
            let queries: &[Query] = match touched {
                Touched::Agents => &[Query::AgentsIndex],
                Touched::Pheromones => &[Query::ActivePheromones],
                Touched::Proposals => &[Query::PendingProposals, Query::RejectedProposals],
                Touched::Cluster => &[Query::ClusterStatus],
                Touched::Status => &[Query::StatusDigest],
            };
            for query in queries {
                match layer.fetch(query).await {
                    Ok(snapshot) => snapshots.push(snapshot),
                    // Not listed yet: written once it is.
                    Err(error) => tracing::debug!(%error, %query, "snapshot not written"),
                }
            }
        }
        let written = tokio::task::spawn_blocking(move || {
            for snapshot in snapshots {
                if let Err(e) = store.write(&snapshot) {
                    tracing::warn!(error = %e, key = %snapshot.key(), "writing the ghost cache");
                }
            }
        })
        .await;
        if let Err(error) = written {
            tracing::warn!(%error, "the ghost cache writer failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_events_of_kgents_objects_are_thoughts() {
        let event = |api: &str| -> KubeEvent {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "e1", "namespace": "team", "creationTimestamp": "2027-01-15T12:00:00Z"},
                "eventTime": "2027-01-15T12:00:01.000000Z",
                "regarding": {"apiVersion": api, "kind": "Agent", "name": "b-gent", "namespace": "team"},
                "reason": "ProbeFailed", "note": "no answer\nwithin 30 s", "type": "Warning",
                "reportingController": "x", "reportingInstance": "y", "action": "Probe"
            }))
            .expect("an Event")
        };
        let (name, thought) = thought_of(&event("kgents.io/v1")).expect("a thought");
        assert_eq!(name, "e1");
        assert_eq!(thought.object, "Agent/b-gent");
        assert!(thought.warning);
        assert_eq!(thought.text, "no answer within 30 s");
        assert!(thought_of(&event("v1")).is_none());
    }
}
