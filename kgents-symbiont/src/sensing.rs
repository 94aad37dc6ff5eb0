//! The pheromones of the agent's namespace, kept by one watch ([`PheromoneWatch`]) and sensed
//! in place: `GET /pheromones` and every AGENTESE read of the field answer from memory,
//! decayed to the moment of the request.
//!
//! - One watch, as the pod's ServiceAccount (the Umwelt's RBAC grants `list` and `watch` on
//!   pheromones wherever it grants sensing), feeds a [`Kind`] (the kind-apply code shared with
//!   the Cortex daemon, `kgents_logos::watched`).
//! - When the watch fails (the API server away, the connection cut), the cache keeps what it
//!   had and is served as **stale**, its age counted from the moment the loss was seen; the
//!   watch is restarted with a full re-list (backing off), and only a completed re-list makes
//!   the cache live again, so a live answer is never older than the watch's last event.
//! - Before the first list completes a sense waits for it (up to [`FIRST_LIST_WAIT`]), then
//!   answers *unavailable* (503 with `Retry-After`).
//! - Everything the cache does not hold (other kinds, label selectors, other namespaces) is
//!   read through the live view it wraps.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use jiff::Timestamp;
use kgents_crds::Pheromone;
use kgents_ghost::snapshot::{AgentStatus, AgentSummary, ClusterStatus};
use kgents_logos::outcome::{
    FieldReport, MemorySummary, PheromoneRecord, ProposalRecord, UmweltSummary,
};
use kgents_logos::summary::{self, SenseFilter};
use kgents_logos::watched::Kind;
use kgents_logos::{ClusterView, Error, Filter, Observed, Result, Scope, Source};
use kube::runtime::watcher;

/// The layer name of answers from the watch cache.
pub const LAYER: &str = "symbiont-watch";
/// How long a sense waits for the watch's first list before answering unavailable.
pub const FIRST_LIST_WAIT: Duration = Duration::from_secs(5);
/// The longest pause between two attempts to restart a failed watch.
pub const MAX_RETRY: Duration = Duration::from_secs(5);

/// A pheromone summary and when its intensity was computed.
#[derive(Debug, Clone)]
struct Observation {
    record: PheromoneRecord,
    at: Timestamp,
}

#[derive(Default)]
struct State {
    pheromones: Kind<Observation>,
    /// Since when, and why, the watch has not been in contact with the API server (the cache
    /// is then served stale). Cleared by a completed (re-)list.
    lost: Option<(Timestamp, String)>,
    /// How many lists the watch has completed (1 after the first; one more per restart).
    lists: u64,
}

/// The watch cache of one namespace's pheromones, served as a [`ClusterView`] (see the
/// [module docs](self)).
pub struct PheromoneWatch {
    namespace: String,
    state: RwLock<State>,
    changed: tokio::sync::Notify,
    live: Arc<dyn ClusterView>,
}

impl PheromoneWatch {
    /// An empty cache of `namespace`'s pheromones (not listed yet); `live` answers what it does
    /// not hold.
    pub fn new(namespace: impl Into<String>, live: Arc<dyn ClusterView>) -> PheromoneWatch {
        PheromoneWatch {
            namespace: namespace.into(),
            state: RwLock::new(State::default()),
            changed: tokio::sync::Notify::new(),
            live,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies a watch event observed at `now`. A completed list puts the cache back in contact.
    pub fn apply(&self, event: watcher::Event<Pheromone>, now: Timestamp) {
        let done = matches!(event, watcher::Event::InitDone);
        {
            let mut state = self.write();
            state.pheromones.apply(event, |p| {
                summary::pheromone_record(p, now).map(|record| Observation { record, at: now })
            });
            if done {
                state.lists += 1;
                if state.lost.take().is_some() {
                    tracing::info!("the pheromone watch is in contact again");
                }
            }
        }
        if done {
            self.changed.notify_waiters();
        }
    }

    /// Records that the watch lost the API server at `now` (`reason`): the cache is served
    /// stale from then on, until a list completes.
    pub fn lost(&self, reason: String, now: Timestamp) {
        {
            let mut state = self.write();
            if state.lost.is_none() {
                tracing::warn!(%reason, "the pheromone watch lost the API server; sensing answers from the cache, stale");
                state.lost = Some((now, reason));
            }
        }
        self.changed.notify_waiters();
    }

    /// How many lists the watch has completed (each restart after a loss lists again).
    pub fn lists(&self) -> u64 {
        self.read().lists
    }

    /// How many pheromones are cached.
    pub fn len(&self) -> usize {
        self.read().pheromones.items().len()
    }

    /// Whether no pheromone is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Watches the namespace's pheromones through `client` until the task is aborted: every
    /// event applied, every failure recorded as a loss and followed by a fresh watch (a full
    /// re-list) after a pause doubling from 250 ms to [`MAX_RETRY`].
    pub fn spawn(self: &Arc<Self>, client: kube::Client) -> tokio::task::JoinHandle<()> {
        let cache = self.clone();
        let api: kube::Api<Pheromone> = kube::Api::namespaced(client, &self.namespace);
        tokio::spawn(async move {
            let mut pause = Duration::from_millis(250);
            loop {
                let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
                while let Some(event) = events.next().await {
                    match event {
                        Ok(event) => {
                            if matches!(event, watcher::Event::InitDone) {
                                pause = Duration::from_millis(250);
                            }
                            cache.apply(event, Timestamp::now());
                        }
                        Err(error) => {
                            cache.lost(error.to_string(), Timestamp::now());
                            break;
                        }
                    }
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_RETRY);
            }
        })
    }

    /// Waits (up to [`FIRST_LIST_WAIT`]) until the first list completed or the watch failed.
    async fn first_list(&self) {
        let notified = self.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let state = self.read();
            if state.pheromones.is_listed() || state.lost.is_some() {
                return;
            }
        }
        let _ = tokio::time::timeout(FIRST_LIST_WAIT, notified).await;
    }

    /// Whether `filter` reads exactly what the cache holds.
    fn holds(&self, filter: &Filter) -> bool {
        filter.selector.is_none() && filter.scope == Scope::Namespace(self.namespace.clone())
    }
}

/// Where an answer of the cache comes from at `now`: live while the watch is in contact, stale
/// with its age (since the loss was seen) when not.
fn source_of(lost: Option<&(Timestamp, String)>, now: Timestamp) -> Source {
    match lost {
        None => Source::live(LAYER, now),
        Some((since, reason)) => Source {
            layer: LAYER.to_owned(),
            live: false,
            taken_at: *since,
            age_seconds: now.duration_since(*since).as_secs_f64().max(0.0),
            stale: true,
            warnings: vec![format!(
                "the API server has not answered the pheromone watch since {since} ({reason}); this is the cache as it was then, decayed to now"
            )],
        },
    }
}

fn not_listed(lost: Option<&(Timestamp, String)>) -> Error {
    Error::Unavailable {
        what: "sensing pheromones".into(),
        reason: match lost {
            Some((since, reason)) => format!(
                "the symbiont's pheromone watch has not listed them yet: the API server has not answered since {since} ({reason})"
            ),
            None => format!(
                "the symbiont's pheromone watch has not listed them within {} s",
                FIRST_LIST_WAIT.as_secs()
            ),
        },
    }
}

#[async_trait]
impl ClusterView for PheromoneWatch {
    async fn agents(&self, filter: &Filter) -> Result<Observed<Vec<AgentSummary>>> {
        self.live.agents(filter).await
    }

    async fn agent(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Observed<Option<AgentStatus>>> {
        self.live.agent(namespace, name).await
    }

    async fn pheromones(&self, filter: &Filter) -> Result<Observed<Vec<PheromoneRecord>>> {
        // Lists (with their decayed intensities re-based) stay with the live view: only the
        // field is sensed from the cache.
        self.live.pheromones(filter).await
    }

    async fn proposals(&self, filter: &Filter) -> Result<Observed<Vec<ProposalRecord>>> {
        self.live.proposals(filter).await
    }

    async fn memories(&self, filter: &Filter) -> Result<Observed<Vec<MemorySummary>>> {
        self.live.memories(filter).await
    }

    async fn umwelts(&self, filter: &Filter) -> Result<Observed<Vec<UmweltSummary>>> {
        self.live.umwelts(filter).await
    }

    async fn cluster(&self) -> Result<Observed<ClusterStatus>> {
        self.live.cluster().await
    }

    async fn sense(
        &self,
        filter: &Filter,
        sense: &SenseFilter,
        now: Timestamp,
        limit: Option<usize>,
    ) -> Result<FieldReport> {
        if !self.holds(filter) {
            return self.live.sense(filter, sense, now, limit).await;
        }
        self.first_list().await;
        let state = self.read();
        if !state.pheromones.is_listed() {
            return Err(not_listed(state.lost.as_ref()));
        }
        let source = source_of(state.lost.as_ref(), now);
        // Sensed in place under the read lock: only the listed signals are copied.
        let observations = state
            .pheromones
            .items()
            .values()
            .map(|o| summary::Observation {
                summary: &o.record.summary,
                observed_at: o.at,
            });
        Ok(summary::sense_observed(
            observations,
            sense,
            now,
            source,
            limit,
        ))
    }
}

#[cfg(test)]
mod tests {
    use kgents_core::field::PheromoneType;
    use kgents_logos::MemoryCluster;

    use super::*;

    fn pheromone(name: &str, kind: &str, intensity: f64, emitted: &str) -> Pheromone {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kgents.io/v1", "kind": "Pheromone",
            "metadata": {"name": name, "namespace": "team"},
            "spec": {"type": kind, "source": "scout", "initialIntensity": intensity,
                     "halfLifeMinutes": 1.0, "emittedAt": emitted}
        }))
        .expect("a Pheromone")
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn team() -> Filter {
        Filter::scope(Scope::Namespace("team".into()))
    }

    fn watch() -> PheromoneWatch {
        let clock = Arc::new(kgents_core::clock::ManualClock::new(at(
            "2027-01-15T12:00:00Z",
        )));
        PheromoneWatch::new("team", Arc::new(MemoryCluster::new("test", clock)))
    }

    #[tokio::test]
    async fn the_field_is_sensed_from_the_cache_decayed_to_the_request() {
        let cache = watch();
        let t0 = "2027-01-15T12:00:00Z";
        cache.apply(watcher::Event::Init, at(t0));
        cache.apply(
            watcher::Event::InitApply(pheromone("w", "WARNING", 0.8, t0)),
            at(t0),
        );
        cache.apply(watcher::Event::InitDone, at(t0));
        cache.apply(
            watcher::Event::Apply(pheromone("o", "OPPORTUNITY", 0.6, t0)),
            at(t0),
        );
        assert_eq!((cache.lists(), cache.len()), (1, 2));
        let all = SenseFilter::default();
        let report = cache
            .sense(&team(), &all, at("2027-01-15T12:01:00Z"), None)
            .await
            .unwrap();
        let intensities: Vec<f64> = report.pheromones.iter().map(|p| p.intensity).collect();
        assert!((intensities[0] - 0.4).abs() < 1e-9, "{intensities:?}");
        assert!((intensities[1] - 0.3).abs() < 1e-9, "{intensities:?}");
        assert!(report.source.live && !report.source.stale);
        assert_eq!(report.source.layer, LAYER);
        let warnings = SenseFilter {
            types: [PheromoneType::Warning].into_iter().collect(),
            ..SenseFilter::default()
        };
        let top = cache
            .sense(&team(), &warnings, at(t0), Some(1))
            .await
            .unwrap();
        assert_eq!(top.pheromones.len(), 1);
        assert_eq!(top.pheromones[0].name, "w");
        // Another namespace is not in the cache: read live (an empty in-memory cluster).
        let other = cache
            .sense(
                &Filter::scope(Scope::Namespace("elsewhere".into())),
                &all,
                at(t0),
                None,
            )
            .await
            .unwrap();
        assert_ne!(other.source.layer, LAYER);
    }

    #[tokio::test]
    async fn a_lost_watch_serves_the_cache_stale_with_its_age_until_a_relist() {
        let cache = watch();
        let t0 = "2027-01-15T12:00:00Z";
        cache.apply(watcher::Event::Init, at(t0));
        cache.apply(
            watcher::Event::InitApply(pheromone("w", "WARNING", 0.8, t0)),
            at(t0),
        );
        cache.apply(watcher::Event::InitDone, at(t0));
        cache.lost("connection refused".into(), at("2027-01-15T12:00:10Z"));
        let report = cache
            .sense(
                &team(),
                &SenseFilter::default(),
                at("2027-01-15T12:01:10Z"),
                None,
            )
            .await
            .unwrap();
        assert!(report.source.stale && !report.source.live);
        assert!((report.source.age_seconds - 60.0).abs() < 1e-9);
        assert!(report.source.warnings[0].contains("connection refused"));
        // decayed to the request all the same: 70 s at a 60 s half-life
        let expected = 0.8 * 0.5f64.powf(70.0 / 60.0);
        assert!((report.pheromones[0].intensity - expected).abs() < 1e-9);
        // A restart lists again (Init does not yet mean contact) and is live once done.
        cache.apply(watcher::Event::Init, at("2027-01-15T12:02:00Z"));
        let still = cache
            .sense(&team(), &SenseFilter::default(), at(t0), None)
            .await
            .unwrap();
        assert!(still.source.stale, "a list in progress is not contact");
        cache.apply(watcher::Event::InitDone, at("2027-01-15T12:02:00Z"));
        let back = cache
            .sense(&team(), &SenseFilter::default(), at(t0), None)
            .await
            .unwrap();
        assert!(
            back.source.live && back.pheromones.is_empty(),
            "the re-list replaced it"
        );
        assert_eq!(cache.lists(), 2);
    }

    #[tokio::test]
    async fn never_listed_and_lost_is_unavailable_at_once() {
        let cache = watch();
        cache.lost("no route to host".into(), at("2027-01-15T12:00:00Z"));
        let started = std::time::Instant::now();
        let error = cache
            .sense(
                &team(),
                &SenseFilter::default(),
                at("2027-01-15T12:00:00Z"),
                None,
            )
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < FIRST_LIST_WAIT,
            "no wait once the loss is known"
        );
        assert_eq!(error.kind(), kgents_logos::ErrorKind::Unavailable);
        assert!(error.to_string().contains("no route to host"), "{error}");
    }
}
