//! The daemon's watch caches: Agents, Pheromones and Proposals kept as summaries (one watch per
//! kind feeds them, see [`crate::watch`]), served as a [`ClusterView`] so the daemon's Logos
//! answers reads from memory in microseconds.
//!
//! - A kind that has not been listed yet answers *unavailable* (the CLI falls through to its
//!   next ghost layer) rather than an empty list.
//! - Pheromones keep the intensity observed with its time; reads re-base it to now with the
//!   kgents-core decay, so every answer is as of the moment it is served.
//! - What the caches do not hold (label selectors, memories, umwelts) goes to the
//!   `passthrough` live view; the cluster's health is refreshed periodically by the watch loop.
//! - [`Debounce`] decides when a changed kind's ghost snapshot is written (at most once per
//!   interval).

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jiff::Timestamp;
use kgents_core::clock::Clock;
use kgents_core::decay::{self, HalfLife, Intensity};
use kgents_crds::{Agent, Pheromone, Proposal};
use kgents_ghost::snapshot::{AgentStatus, AgentSummary, ClusterStatus};
use kgents_logos::outcome::{
    FieldReport, MemorySummary, PheromoneRecord, ProposalRecord, UmweltSummary,
};
use kgents_logos::summary::{self, SenseFilter};
use kgents_logos::watched::{Applied, Key, Kind};
use kgents_logos::{ClusterView, Error, Filter, Observed, Result, Source};
use kube::runtime::watcher;

use crate::fanout::{Change, Payload};

/// The layer name of answers from the daemon's caches.
pub const LAYER: &str = "cortex";

/// A pheromone record and when its intensity was computed.
#[derive(Clone)]
struct Observation {
    record: PheromoneRecord,
    at: Timestamp,
}

#[derive(Default)]
struct State {
    agents: Kind<AgentStatus>,
    pheromones: Kind<Observation>,
    proposals: Kind<ProposalRecord>,
    cluster: Option<Observed<ClusterStatus>>,
    cluster_generation: u64,
    /// Since when, and why, the API server does not answer the daemon.
    api_down: Option<(Timestamp, String)>,
}

impl State {
    /// Why a kind cannot be served now: not listed yet, or the API server lost (the caches
    /// would be served as live while nothing keeps them current).
    fn unservable(&self, what: &str, listed: bool) -> Option<Error> {
        if let Some((since, reason)) = &self.api_down {
            return Some(Error::Unavailable {
                what: format!("reading {what} from the Cortex"),
                reason: format!(
                    "the daemon has not reached the API server since {since} ({reason}); its \
                     last data is in the ghost cache"
                ),
            });
        }
        (!listed).then(|| WatchCache::not_listed(what))
    }
}

/// Which kind of snapshot a change touched (for the snapshot writer and the encoded
/// snapshots the service reuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Touched {
    /// The agents index.
    Agents,
    /// The active pheromones.
    Pheromones,
    /// The pending and rejected proposals.
    Proposals,
    /// The cluster's health.
    Cluster,
    /// The status digest, made of the agents, the pheromones and the proposals.
    Status,
}

impl Touched {
    /// The kind a ghost query reads.
    pub fn of(query: &kgents_ghost::Query) -> Touched {
        use kgents_ghost::Query;
        match query {
            Query::AgentsIndex | Query::Agent(_) => Touched::Agents,
            Query::ActivePheromones | Query::PheromonesByType(_) => Touched::Pheromones,
            Query::PendingProposals | Query::RejectedProposals => Touched::Proposals,
            Query::ClusterStatus => Touched::Cluster,
            Query::StatusDigest => Touched::Status,
        }
    }
}

/// The caches (see the [module docs](self)).
pub struct WatchCache {
    state: RwLock<State>,
    passthrough: Option<Arc<dyn ClusterView>>,
    clock: Arc<dyn Clock>,
}

impl WatchCache {
    /// Empty caches (every kind unlisted) on `clock`; `passthrough` serves what they do not hold.
    pub fn new(clock: Arc<dyn Clock>, passthrough: Option<Arc<dyn ClusterView>>) -> WatchCache {
        WatchCache {
            state: RwLock::new(State::default()),
            passthrough,
            clock,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many agents, pheromones and proposals are cached.
    pub fn counts(&self) -> (usize, usize, usize) {
        let state = self.read();
        (
            state.agents.items().len(),
            state.pheromones.items().len(),
            state.proposals.items().len(),
        )
    }

    /// Whether every kind has been listed once.
    pub fn listed(&self) -> bool {
        let state = self.read();
        state.agents.is_listed() && state.pheromones.is_listed() && state.proposals.is_listed()
    }

    fn change(&self, deleted: bool, key: Key, payload: Payload) -> Change {
        Change::new(deleted, key.0, key.1, self.clock.now(), payload)
    }

    /// Applies an Agent watch event; returns the change to publish, if one is visible.
    pub fn apply_agent(&self, event: watcher::Event<Agent>) -> (Option<Change>, bool) {
        let applied = self
            .write()
            .agents
            .apply(event, kgents_logos::summary::agent_status);
        match applied {
            Applied::Nothing => (None, false),
            Applied::Relisted => (None, true),
            Applied::Upserted(key, status) => (
                Some(self.change(false, key, Payload::Agent(status.summary))),
                true,
            ),
            Applied::Deleted(key, last) => {
                let mut summary = last.map_or_else(|| deleted_agent(&key), |a| a.summary);
                summary.phase = "Deleted".into();
                (Some(self.change(true, key, Payload::Agent(summary))), true)
            }
        }
    }

    /// Applies a Pheromone watch event (see [`WatchCache::apply_agent`]).
    pub fn apply_pheromone(&self, event: watcher::Event<Pheromone>) -> (Option<Change>, bool) {
        let now = self.clock.now();
        let applied = self.write().pheromones.apply(event, |p| {
            kgents_logos::summary::pheromone_record(p, now)
                .map(|record| Observation { record, at: now })
        });
        match applied {
            Applied::Nothing => (None, false),
            Applied::Relisted => (None, true),
            Applied::Upserted(key, observation) => {
                let payload = Payload::Pheromone {
                    record: observation.record,
                    observed_at: observation.at,
                };
                (Some(self.change(false, key, payload)), true)
            }
            Applied::Deleted(key, last) => {
                let payload = match last {
                    Some(observation) => Payload::Pheromone {
                        record: observation.record,
                        observed_at: observation.at,
                    },
                    None => Payload::Pheromone {
                        record: deleted_pheromone(&key, now),
                        observed_at: now,
                    },
                };
                (Some(self.change(true, key, payload)), true)
            }
        }
    }

    /// Applies a Proposal watch event (see [`WatchCache::apply_agent`]).
    pub fn apply_proposal(&self, event: watcher::Event<Proposal>) -> (Option<Change>, bool) {
        let applied = self
            .write()
            .proposals
            .apply(event, |p| Some(kgents_logos::summary::proposal_record(p)));
        match applied {
            Applied::Nothing => (None, false),
            Applied::Relisted => (None, true),
            Applied::Upserted(key, record) => (
                Some(self.change(false, key, Payload::Proposal(Box::new(record)))),
                true,
            ),
            Applied::Deleted(key, last) => {
                let mut record = last.unwrap_or_else(|| deleted_proposal(&key));
                record.summary.phase = "Deleted".into();
                (
                    Some(self.change(true, key, Payload::Proposal(Box::new(record)))),
                    true,
                )
            }
        }
    }

    /// Replaces the cached cluster health.
    pub fn set_cluster(&self, observed: Observed<ClusterStatus>) {
        let mut state = self.write();
        state.cluster = Some(observed);
        state.cluster_generation += 1;
    }

    /// Records that the API server does not answer (`reason`): reads answer unavailable, so
    /// readers fall back to the ghost cache, until [`WatchCache::api_up`].
    pub fn api_down(&self, reason: String) {
        let now = self.clock.now();
        let mut state = self.write();
        if state.api_down.is_none() {
            tracing::warn!(%reason, "the API server does not answer; reads answer unavailable");
            state.api_down = Some((now, reason));
        }
    }

    /// Whether the caches may be served as live: an unavailable error while the API server is
    /// lost (see [`WatchCache::api_down`]).
    ///
    /// # Errors
    /// [`Error::Unavailable`] saying since when and why.
    pub fn check_api(&self) -> Result<()> {
        match self.read().unservable("the caches", true) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Records that the API server answers again.
    pub fn api_up(&self) {
        let mut state = self.write();
        if state.api_down.take().is_some() {
            tracing::info!("the API server answers again");
        }
    }

    /// A counter of `touched`'s visible changes: what was built from the caches while it had
    /// one value is still current while it keeps it.
    pub fn generation(&self, touched: Touched) -> u64 {
        let state = self.read();
        match touched {
            Touched::Agents => state.agents.generation(),
            Touched::Pheromones => state.pheromones.generation(),
            Touched::Proposals => state.proposals.generation(),
            Touched::Cluster => state.cluster_generation,
            // Each counter only grows: their sum changes whenever one of them does.
            Touched::Status => {
                state.agents.generation()
                    + state.pheromones.generation()
                    + state.proposals.generation()
            }
        }
    }

    fn not_listed(what: &str) -> Error {
        Error::Unavailable {
            what: format!("reading {what} from the Cortex"),
            reason: format!("the daemon's watch has not listed {what} yet"),
        }
    }

    fn passthrough(&self, what: &str) -> Result<&dyn ClusterView> {
        self.passthrough.as_deref().ok_or_else(|| Error::BadInput {
            path: what.to_owned(),
            reason: "the Cortex caches keep no labels, memories or umwelts and has no API \
                     connection to ask"
                .into(),
        })
    }

    fn source(&self) -> Source {
        Source::live(LAYER, self.clock.now())
    }
}

/// The summaries of deleted objects whose last state was never readable.
fn deleted_agent(key: &Key) -> AgentSummary {
    AgentSummary {
        name: kgents_ghost::AgentName::new(key.1.clone())
            .unwrap_or_else(|_| kgents_ghost::AgentName::new("unnamed").expect("a valid name")),
        namespace: key.0.clone(),
        genus: String::new(),
        phase: "Deleted".into(),
        cognitive_health: String::new(),
        ready_replicas: 0,
        replicas: 0,
    }
}

fn deleted_pheromone(key: &Key, now: Timestamp) -> PheromoneRecord {
    PheromoneRecord {
        summary: kgents_ghost::snapshot::PheromoneSummary {
            name: key.1.clone(),
            namespace: key.0.clone(),
            pheromone_type: kgents_core::field::PheromoneType::State,
            source: String::new(),
            target: None,
            intensity: 0.0,
            emitted_at: now,
            half_life_seconds: 1.0,
            expires_at: Some(now),
        },
    }
}

fn deleted_proposal(key: &Key) -> ProposalRecord {
    ProposalRecord {
        summary: kgents_ghost::snapshot::ProposalSummary {
            name: key.1.clone(),
            namespace: key.0.clone(),
            proposer: String::new(),
            change_type: String::new(),
            target: String::new(),
            risk_score: 0.0,
            risk_level: String::new(),
            phase: String::new(),
            created_at: Timestamp::UNIX_EPOCH,
            reason: None,
            risk_factors: Vec::new(),
            patch: None,
        },
        risk: None,
        approvals: Vec::new(),
        rejections: Vec::new(),
    }
}

/// A record's intensity re-based from when it was observed to `now` (the effective half-life:
/// DREAM doubled), as the Logos' `sense` would compute it.
pub fn record_at(
    record: &PheromoneRecord,
    observed_at: Timestamp,
    now: Timestamp,
) -> PheromoneRecord {
    let p = &record.summary;
    let intensity = match HalfLife::from_seconds(p.half_life_seconds) {
        Ok(base) => {
            let half_life = decay::effective_half_life(p.pheromone_type, base);
            decay::intensity_at(Intensity::clamped(p.intensity), half_life, observed_at, now).get()
        }
        Err(_) => p.intensity,
    };
    let mut record = record.clone();
    record.summary.intensity = intensity;
    record
}

#[async_trait]
impl ClusterView for WatchCache {
    async fn agents(&self, filter: &Filter) -> Result<Observed<Vec<AgentSummary>>> {
        if filter.selector.is_some() {
            return self.passthrough("agents")?.agents(filter).await;
        }
        let data = {
            let state = self.read();
            if let Some(error) = state.unservable("agents", state.agents.is_listed()) {
                return Err(error);
            }
            state
                .agents
                .items()
                .iter()
                .filter(|((ns, _), _)| filter.scope.contains(ns))
                .map(|(_, a)| a.summary.clone())
                .collect()
        };
        Ok(Observed {
            data,
            source: self.source(),
        })
    }

    async fn agent(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Observed<Option<AgentStatus>>> {
        let data = {
            let state = self.read();
            if let Some(error) = state.unservable("agents", state.agents.is_listed()) {
                return Err(error);
            }
            state
                .agents
                .items()
                .iter()
                .find(|((ns, n), _)| n == name && namespace.is_none_or(|want| want == ns))
                .map(|(_, a)| a.clone())
        };
        Ok(Observed {
            data,
            source: self.source(),
        })
    }

    async fn pheromones(&self, filter: &Filter) -> Result<Observed<Vec<PheromoneRecord>>> {
        if filter.selector.is_some() {
            return self.passthrough("pheromones")?.pheromones(filter).await;
        }
        let source = self.source();
        let now = source.taken_at;
        let data = {
            let state = self.read();
            if let Some(error) = state.unservable("pheromones", state.pheromones.is_listed()) {
                return Err(error);
            }
            state
                .pheromones
                .items()
                .iter()
                .filter(|((ns, _), _)| filter.scope.contains(ns))
                .map(|(_, o)| record_at(&o.record, o.at, now))
                .collect()
        };
        Ok(Observed { data, source })
    }

    async fn sense(
        &self,
        filter: &Filter,
        sense: &SenseFilter,
        now: Timestamp,
        limit: Option<usize>,
    ) -> Result<FieldReport> {
        if filter.selector.is_some() {
            return self
                .passthrough("pheromones")?
                .sense(filter, sense, now, limit)
                .await;
        }
        let source = self.source();
        let state = self.read();
        if let Some(error) = state.unservable("pheromones", state.pheromones.is_listed()) {
            return Err(error);
        }
        // Sensed in place under the read lock: only the listed signals are copied.
        let observations = state
            .pheromones
            .items()
            .iter()
            .filter(|((ns, _), _)| filter.scope.contains(ns))
            .map(|(_, o)| summary::Observation {
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

    async fn proposals(&self, filter: &Filter) -> Result<Observed<Vec<ProposalRecord>>> {
        if filter.selector.is_some() {
            return self.passthrough("proposals")?.proposals(filter).await;
        }
        let data = {
            let state = self.read();
            if let Some(error) = state.unservable("proposals", state.proposals.is_listed()) {
                return Err(error);
            }
            state
                .proposals
                .items()
                .iter()
                .filter(|((ns, _), _)| filter.scope.contains(ns))
                .map(|(_, p)| p.clone())
                .collect()
        };
        Ok(Observed {
            data,
            source: self.source(),
        })
    }

    async fn memories(&self, filter: &Filter) -> Result<Observed<Vec<MemorySummary>>> {
        self.passthrough("memories")?.memories(filter).await
    }

    async fn umwelts(&self, filter: &Filter) -> Result<Observed<Vec<UmweltSummary>>> {
        self.passthrough("umwelts")?.umwelts(filter).await
    }

    async fn cluster(&self) -> Result<Observed<ClusterStatus>> {
        let cached = {
            let state = self.read();
            if let Some(error) = state.unservable("cluster status", true) {
                return Err(error);
            }
            state.cluster.clone()
        };
        match cached {
            Some(observed) => Ok(observed),
            None => self.passthrough("cluster status")?.cluster().await,
        }
    }
}

/// When to write a changed snapshot: at once after a quiet interval, then at most once per
/// `interval` while changes keep coming (the last change is always written eventually).
#[derive(Debug, Clone)]
pub struct Debounce {
    interval: Duration,
    last: Option<Instant>,
    dirty: bool,
}

impl Debounce {
    /// A debounce of `interval`.
    pub fn new(interval: Duration) -> Debounce {
        Debounce {
            interval,
            last: None,
            dirty: false,
        }
    }

    /// Records a change.
    pub fn mark(&mut self) {
        self.dirty = true;
    }

    /// Whether a write is due at `now`; if so, it is counted as done.
    pub fn take_due(&mut self, now: Instant) -> bool {
        let due = self.dirty
            && self
                .last
                .is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if due {
            self.dirty = false;
            self.last = Some(now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use kgents_core::clock::ManualClock;
    use kgents_logos::Scope;

    use super::*;

    fn agent(namespace: &str, name: &str) -> Agent {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kgents.io/v1", "kind": "Agent",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"genus": "B", "image": "x", "replicas": 1}
        }))
        .expect("an Agent")
    }

    fn pheromone(namespace: &str, name: &str, intensity: f64) -> Pheromone {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kgents.io/v1", "kind": "Pheromone",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"type": "WARNING", "source": "b-gent", "initialIntensity": intensity,
                     "halfLifeMinutes": 1.0, "emittedAt": "2027-01-15T12:00:00Z"}
        }))
        .expect("a Pheromone")
    }

    fn clock_now() -> Timestamp {
        "2027-01-15T12:00:00Z".parse().unwrap()
    }

    fn clock(at: &str) -> Arc<ManualClock> {
        Arc::new(ManualClock::new(at.parse().unwrap()))
    }

    #[tokio::test]
    async fn unlisted_kinds_are_unavailable_and_a_relist_replaces_everything() {
        let cache = WatchCache::new(clock("2027-01-15T12:00:00Z"), None);
        let all = Filter::scope(Scope::All);
        let error = cache.agents(&all).await.expect_err("not listed");
        assert_eq!(error.kind(), kgents_logos::ErrorKind::Unavailable);
        cache.apply_agent(watcher::Event::Init);
        cache.apply_agent(watcher::Event::InitApply(agent("team", "a")));
        cache.apply_agent(watcher::Event::InitApply(agent("other", "b")));
        assert!(cache.agents(&all).await.is_err(), "still listing");
        let before = cache.generation(Touched::Agents);
        let (change, touched) = cache.apply_agent(watcher::Event::InitDone);
        assert!(change.is_none() && touched);
        assert!(
            cache.generation(Touched::Agents) > before,
            "a re-list is a change"
        );
        let pheromones = cache.generation(Touched::Pheromones);
        let listed = cache.agents(&all).await.unwrap();
        assert_eq!(listed.data.len(), 2);
        assert_eq!(listed.source.layer, LAYER);
        let team = cache
            .agents(&Filter::scope(Scope::Namespace("team".into())))
            .await
            .unwrap();
        assert_eq!(team.data.len(), 1);
        assert_eq!(
            cache.generation(Touched::Pheromones),
            pheromones,
            "untouched"
        );
        let (change, _) = cache.apply_agent(watcher::Event::Delete(agent("team", "a")));
        let change = change.expect("a visible change");
        assert!(change.deleted);
        assert_eq!(change.name, "a");
        match &change.payload {
            Payload::Agent(last) => {
                assert_eq!(last.genus, "B", "the last known state");
                assert_eq!(last.phase, "Deleted");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(change.to_event(clock_now()).change, "deleted");
        // A re-list without "b" forgets it.
        cache.apply_agent(watcher::Event::Init);
        cache.apply_agent(watcher::Event::InitDone);
        assert!(cache.agents(&all).await.unwrap().data.is_empty());
    }

    #[tokio::test]
    async fn pheromones_are_served_decayed_to_the_time_of_the_read() {
        let clock = clock("2027-01-15T12:00:00Z");
        let cache = WatchCache::new(clock.clone(), None);
        cache.apply_pheromone(watcher::Event::Init);
        cache.apply_pheromone(watcher::Event::InitDone);
        let (change, _) = cache.apply_pheromone(watcher::Event::Apply(pheromone("team", "w", 0.8)));
        match change.expect("visible").payload {
            Payload::Pheromone { record, .. } => {
                assert!((record.summary.intensity - 0.8).abs() < 1e-9);
            }
            other => panic!("{other:?}"),
        }
        clock.set("2027-01-15T12:01:00Z".parse().unwrap());
        let read = cache.pheromones(&Filter::scope(Scope::All)).await.unwrap();
        assert!((read.data[0].summary.intensity - 0.4).abs() < 1e-9);
        assert_eq!(read.source.taken_at, clock.now());
        let (change, _) =
            cache.apply_pheromone(watcher::Event::Delete(pheromone("team", "w", 0.8)));
        let event = change.expect("visible").to_event(clock.now());
        assert_eq!((event.change.as_str(), event.intensity), ("deleted", 0.0));
        assert!(event.data_json.contains("WARNING"), "the last known state");
        assert!(
            cache
                .pheromones(&Filter::scope(Scope::All))
                .await
                .unwrap()
                .data
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_lost_api_server_makes_reads_unavailable_until_it_answers_again() {
        let cache = WatchCache::new(clock("2027-01-15T12:00:00Z"), None);
        cache.apply_agent(watcher::Event::Init);
        cache.apply_agent(watcher::Event::InitDone);
        let all = Filter::scope(Scope::All);
        assert!(cache.agents(&all).await.is_ok());
        cache.api_down("connection refused".into());
        let error = cache.agents(&all).await.expect_err("not served as live");
        assert_eq!(error.kind(), kgents_logos::ErrorKind::Unavailable);
        assert!(error.to_string().contains("connection refused"), "{error}");
        assert!(cache.cluster().await.is_err());
        cache.api_up();
        assert!(cache.agents(&all).await.is_ok());
    }

    #[test]
    fn debounce_writes_at_once_then_at_most_once_per_interval_and_never_loses_the_last() {
        let mut d = Debounce::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert!(!d.take_due(t0), "nothing changed");
        d.mark();
        assert!(d.take_due(t0), "first change: at once");
        d.mark();
        assert!(!d.take_due(t0 + Duration::from_millis(400)));
        d.mark();
        assert!(!d.take_due(t0 + Duration::from_millis(900)));
        assert!(
            d.take_due(t0 + Duration::from_millis(1000)),
            "the pending change"
        );
        assert!(!d.take_due(t0 + Duration::from_secs(5)), "nothing new");
    }
}
