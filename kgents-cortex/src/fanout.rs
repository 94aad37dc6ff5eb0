//! `Observe`'s fan-out: every [`Change`] the watches see goes to each subscriber that asked for
//! it, through a **bounded** buffer per subscriber.
//!
//! The policy: publishing never waits. A subscriber whose buffer is full (it stopped reading,
//! or reads slower than the cluster changes) is removed at once with the reason recorded; its
//! stream then yields what was already buffered and ends with `RESOURCE_EXHAUSTED` saying why.
//! Memory per subscriber is therefore at most [`Hub::capacity`] changes, and one slow client
//! never delays the watches or anyone else.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use futures::Stream;
use jiff::Timestamp;
use kgents_ghost::snapshot::AgentSummary;
use kgents_logos::outcome::{PheromoneRecord, ProposalRecord};
use kgents_logos::summary::{SenseFilter, sense};
use kgents_logos::{Scope, Source};
use tokio::sync::mpsc;
use tonic::Status;

use crate::pb;
use crate::request::Kinds;

/// The default per-subscriber buffer, in changes.
pub const DEFAULT_CAPACITY: usize = 1024;

pub use kgents_logos::summary::Thought;

/// What changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A pheromone as observed at `observed_at` (its intensity then; decayed when sent).
    Pheromone {
        /// The record.
        record: PheromoneRecord,
        /// When its intensity was computed.
        observed_at: Timestamp,
    },
    /// An agent.
    Agent(AgentSummary),
    /// A proposal (boxed: its risk assessment makes it several times larger than the others).
    Proposal(Box<ProposalRecord>),
    /// An Event of a kgents object.
    Event(Thought),
}

/// One change seen by the watches.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The wire event, made once for every subscriber (see [`Change::event`]).
    wire: OnceLock<pb::ObserveEvent>,
    /// Whether the object was deleted (else created or changed).
    pub deleted: bool,
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// When the daemon saw it.
    pub at: Timestamp,
    /// The object's summary.
    pub payload: Payload,
}

impl Change {
    /// A change.
    pub fn new(
        deleted: bool,
        namespace: String,
        name: String,
        at: Timestamp,
        payload: Payload,
    ) -> Change {
        Change {
            wire: OnceLock::new(),
            deleted,
            namespace,
            name,
            at,
            payload,
        }
    }

    /// The wire event, made at the first subscriber's send ([`Change::to_event`] at `now`) and
    /// shared by the others: at 100 subscribers this is one conversion instead of 100, and a
    /// pheromone's intensity differs only by the moments between their sends.
    pub fn event(&self, now: Timestamp) -> pb::ObserveEvent {
        self.wire.get_or_init(|| self.to_event(now)).clone()
    }

    /// Whether a subscriber asking for `kinds` in `scope` receives this change.
    pub fn wanted(&self, kinds: Kinds, scope: &Scope) -> bool {
        let kind = match self.payload {
            Payload::Pheromone { .. } => kinds.pheromones,
            Payload::Agent(_) => kinds.agents,
            Payload::Proposal(_) => kinds.proposals,
            Payload::Event(_) => kinds.events,
        };
        kind && scope.contains(&self.namespace)
    }

    /// The wire event, with a pheromone's intensity decayed to `now` (0 once evaporated).
    pub fn to_event(&self, now: Timestamp) -> pb::ObserveEvent {
        let json = |value: &dyn erased::Json| value.json();
        let (kind, intensity, data_json) = match &self.payload {
            Payload::Pheromone {
                record,
                observed_at,
            } => {
                let source = Source::live(crate::cache::LAYER, *observed_at);
                let field = sense(vec![record.clone()], &SenseFilter::default(), now, source);
                match field.pheromones.first() {
                    // A deleted pheromone is gone from the field: intensity 0, last state shown.
                    Some(sensed) if !self.deleted => ("pheromone", sensed.intensity, json(sensed)),
                    Some(sensed) => ("pheromone", 0.0, json(sensed)),
                    None => ("pheromone", 0.0, json(&record.summary)),
                }
            }
            Payload::Agent(agent) => ("agent", 0.0, json(agent)),
            Payload::Proposal(proposal) => ("proposal", 0.0, json(proposal)),
            Payload::Event(thought) => ("event", 0.0, json(thought)),
        };
        pb::ObserveEvent {
            kind: kind.to_owned(),
            change: if self.deleted { "deleted" } else { "applied" }.to_owned(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            intensity,
            at: self.at.to_string(),
            data_json,
        }
    }
}

/// Serialising any of the payloads without naming each type twice.
mod erased {
    pub trait Json {
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> String {
            serde_json::to_string(self).unwrap_or_default()
        }
    }
}

struct Subscriber {
    id: u64,
    kinds: Kinds,
    scope: Scope,
    tx: mpsc::Sender<Arc<Change>>,
    dropped: Arc<OnceLock<String>>,
}

/// The subscribers and the policy (see the [module docs](self)).
pub struct Hub {
    capacity: usize,
    subscribers: Mutex<Vec<Subscriber>>,
    next_id: AtomicU64,
    dropped_total: AtomicU64,
}

/// One subscriber's end: the buffered changes and, once removed, why.
pub struct Subscription {
    /// Its id (for logs).
    pub id: u64,
    events: mpsc::Receiver<Arc<Change>>,
    dropped: Arc<OnceLock<String>>,
}

impl Hub {
    /// A hub whose subscribers each buffer at most `capacity` changes (at least 1).
    pub fn new(capacity: usize) -> Hub {
        Hub {
            capacity: capacity.max(1),
            subscribers: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            dropped_total: AtomicU64::new(0),
        }
    }

    /// The per-subscriber buffer.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Subscribers now.
    pub fn subscribers(&self) -> usize {
        self.lock().len()
    }

    /// Subscribers removed so far because they did not keep up.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A new subscriber for `kinds` in `scope`.
    pub fn subscribe(&self, kinds: Kinds, scope: Scope) -> Subscription {
        let (tx, events) = mpsc::channel(self.capacity);
        let dropped = Arc::new(OnceLock::new());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().push(Subscriber {
            id,
            kinds,
            scope,
            tx,
            dropped: Arc::clone(&dropped),
        });
        Subscription {
            id,
            events,
            dropped,
        }
    }

    /// Ends every subscription (shutdown): their streams finish after what is buffered.
    pub fn close_all(&self) {
        self.lock().clear();
    }

    /// Sends `change` to every subscriber that wants it, without waiting; removes those whose
    /// buffer is full (recording why) and those that went away. Returns how many received it.
    pub fn publish(&self, change: &Arc<Change>) -> usize {
        let mut delivered = 0;
        let capacity = self.capacity;
        let mut removed = 0;
        self.lock().retain(|s| {
            if !change.wanted(s.kinds, &s.scope) {
                return !s.tx.is_closed();
            }
            match s.tx.try_send(Arc::clone(change)) {
                Ok(()) => {
                    delivered += 1;
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let _ = s.dropped.set(format!(
                        "the subscriber did not keep up: {capacity} changes were waiting unread \
                         (the per-subscriber limit), so the stream was ended; read faster or \
                         subscribe to fewer kinds or one namespace, then subscribe again"
                    ));
                    tracing::warn!(subscriber = s.id, capacity, "Observe subscriber dropped");
                    removed += 1;
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        if removed > 0 {
            self.dropped_total.fetch_add(removed, Ordering::Relaxed);
        }
        delivered
    }
}

impl Subscription {
    /// The stream a gRPC client reads: each change as an [`pb::ObserveEvent`] (intensity
    /// decayed to `now()` when it is sent), then, if the hub removed the subscriber,
    /// `RESOURCE_EXHAUSTED` with the reason.
    pub fn into_stream(
        self,
        now: impl Fn() -> Timestamp + Send + 'static,
    ) -> impl Stream<Item = Result<pb::ObserveEvent, Status>> + Send + 'static {
        futures::stream::unfold(Some((self, now)), |state| async move {
            let (mut sub, now) = state?;
            match sub.events.recv().await {
                Some(change) => {
                    let event = change.event(now());
                    Some((Ok(event), Some((sub, now))))
                }
                None => sub
                    .dropped
                    .get()
                    .cloned()
                    .map(|reason| (Err(Status::resource_exhausted(reason)), None)),
            }
        })
    }

    /// The next change (tests and embedders that do not go through gRPC); `Err(reason)` once
    /// the hub removed this subscriber and the buffer is drained, `Ok(None)` when the hub is
    /// gone.
    pub async fn next(&mut self) -> Result<Option<Arc<Change>>, String> {
        match self.events.recv().await {
            Some(change) => Ok(Some(change)),
            None => match self.dropped.get() {
                Some(reason) => Err(reason.clone()),
                None => Ok(None),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use kgents_core::field::PheromoneType;
    use kgents_ghost::snapshot::PheromoneSummary;

    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn pheromone(namespace: &str, name: &str, intensity: f64) -> Change {
        Change::new(
            false,
            namespace.into(),
            name.into(),
            at("2027-01-15T12:00:00Z"),
            Payload::Pheromone {
                record: PheromoneRecord {
                    summary: PheromoneSummary {
                        name: name.into(),
                        namespace: namespace.into(),
                        pheromone_type: PheromoneType::Warning,
                        source: "b-gent".into(),
                        target: None,
                        intensity,
                        emitted_at: at("2027-01-15T12:00:00Z"),
                        half_life_seconds: 60.0,
                        expires_at: None,
                    },
                },
                observed_at: at("2027-01-15T12:00:00Z"),
            },
        )
    }

    #[test]
    fn a_pheromone_is_sent_with_its_intensity_decayed_to_the_send_time() {
        let change = pheromone("team", "w1", 0.8);
        let event = change.to_event(at("2027-01-15T12:01:00Z"));
        assert_eq!(event.kind, "pheromone");
        assert_eq!(event.change, "applied");
        assert!((event.intensity - 0.4).abs() < 1e-9, "{}", event.intensity);
        let data: serde_json::Value = serde_json::from_str(&event.data_json).unwrap();
        assert_eq!(data["name"], "w1");
        // Long evaporated: 0, still described.
        let gone = change.to_event(at("2027-01-15T14:00:00Z"));
        assert_eq!(gone.intensity, 0.0);
        assert!(gone.data_json.contains("w1"));
    }

    #[test]
    fn subscribers_get_only_the_kinds_and_namespace_they_asked_for() {
        let hub = Hub::new(8);
        let mut team = hub.subscribe(Kinds::ALL, Scope::Namespace("team".into()));
        let mut agents_only = hub.subscribe(
            Kinds {
                agents: true,
                ..Kinds::default()
            },
            Scope::All,
        );
        assert_eq!(hub.publish(&Arc::new(pheromone("team", "w1", 1.0))), 1);
        assert_eq!(hub.publish(&Arc::new(pheromone("other", "w2", 1.0))), 0);
        drop(hub);
        let got = futures::executor::block_on(team.next()).unwrap().unwrap();
        assert_eq!(got.name, "w1");
        assert_eq!(futures::executor::block_on(team.next()), Ok(None));
        assert_eq!(futures::executor::block_on(agents_only.next()), Ok(None));
    }

    #[test]
    fn a_subscriber_that_stops_reading_is_dropped_with_the_reason_after_its_buffer() {
        let hub = Hub::new(2);
        let slow = hub.subscribe(Kinds::ALL, Scope::All);
        let mut fast = hub.subscribe(Kinds::ALL, Scope::All);
        for i in 0..5 {
            let change = Arc::new(pheromone("team", &format!("w{i}"), 1.0));
            hub.publish(&change);
            // The fast one reads everything as it comes.
            let got = futures::executor::block_on(fast.next()).unwrap().unwrap();
            assert_eq!(got.name, format!("w{i}"));
        }
        assert_eq!(hub.subscribers(), 1, "only the fast subscriber is left");
        assert_eq!(hub.dropped_total(), 1);
        let now = at("2027-01-15T12:00:00Z");
        let items: Vec<_> =
            futures::executor::block_on(slow.into_stream(move || now).collect::<Vec<_>>());
        assert_eq!(items.len(), 3, "two buffered changes, then the status");
        assert_eq!(items[0].as_ref().unwrap().name, "w0");
        assert_eq!(items[1].as_ref().unwrap().name, "w1");
        let status = items[2].as_ref().expect_err("ended with a status");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(
            status.message().contains("did not keep up: 2 changes"),
            "{status:?}"
        );
    }

    #[test]
    fn a_subscriber_that_went_away_is_forgotten_without_counting_as_dropped() {
        let hub = Hub::new(2);
        let gone = hub.subscribe(Kinds::ALL, Scope::All);
        drop(gone);
        hub.publish(&Arc::new(pheromone("team", "w", 1.0)));
        assert_eq!(hub.subscribers(), 0);
        assert_eq!(hub.dropped_total(), 0);
    }
}
