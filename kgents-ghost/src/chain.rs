//! The fallback chain: ask each layer in order, each within its own budget, and keep the first
//! usable answer.
//!
//! The standard order is the Cortex daemon (live, 500 ms), the ghost cache (not live, 50 ms) and
//! the Kubernetes API (live, 5 s). Live answers are written through to the store; every live
//! attempt updates the stability score; cached answers are classified FRESH / STALE / REFUSED and
//! a REFUSED one falls through to the next layer. When every layer fails, the error lists each
//! attempt and the remedy.
//!
//! Budgets are enforced by racing each fetch against an injected [`Timer`]; the crate itself
//! needs no async runtime ([`ThreadTimer`] works anywhere; tests use tokio's paused clock). A
//! fetch that loses the race is dropped, which cancels it at its next `.await` point. The
//! cache layer reads small files synchronously, so its budget bounds what follows the read
//! rather than interrupting the read itself.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::{self, BoxFuture, Either};
use kgents_core::clock::Clock;
/// Monotonic time and sleeping, injected so budgets are testable (the one trait of `kgents-core`).
pub use kgents_core::timer::Timer;

use crate::error::{Error, Result};
use crate::freshness::{FreshnessPolicy, FreshnessReport, Verdict, format_age};
use crate::snapshot::{Query, Snapshot, SnapshotKey};
use crate::store::{GhostStore, Lookup, Miss};

/// Default budget of the Cortex daemon layer.
pub const DAEMON_BUDGET: Duration = Duration::from_millis(500);
/// Default budget of the ghost cache layer.
pub const CACHE_BUDGET: Duration = Duration::from_millis(50);
/// Default budget of the direct Kubernetes API layer.
pub const DIRECT_API_BUDGET: Duration = Duration::from_secs(5);

/// Why a layer did not answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// The source could not be reached (connection refused, no kubeconfig, daemon not running).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The cache has nothing usable.
    #[error("cache miss: {0}")]
    Miss(Miss),
    /// The source was reached but the request failed.
    #[error("failed: {0}")]
    Failed(String),
}

/// One source of answers.
#[async_trait]
pub trait Layer: Send + Sync {
    /// Short name shown in attempts and errors (`cortex`, `ghost-cache`, `kubernetes`).
    fn name(&self) -> &str;

    /// Whether answers come from the live system (daemon, API) rather than the cache. Live
    /// answers are written through and count toward the stability score; non-live answers are
    /// classified by freshness.
    fn is_live(&self) -> bool;

    /// Whether the chain writes this layer's live answers to the store (the default). A source
    /// that keeps the store warm itself (the Cortex daemon writes the snapshots it serves) says
    /// no, so a reader does not rewrite on every read what it was just sent.
    fn writes_through(&self) -> bool {
        true
    }

    /// Answers `query`.
    async fn fetch(&self, query: &Query) -> std::result::Result<Snapshot, LayerError>;
}

/// The ghost cache as a layer (not live).
pub struct CacheLayer {
    store: Arc<dyn GhostStore>,
}

impl CacheLayer {
    /// Name of the cache layer.
    pub const NAME: &'static str = "ghost-cache";

    /// A layer reading from `store`.
    #[must_use]
    pub fn new(store: Arc<dyn GhostStore>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl Layer for CacheLayer {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn is_live(&self) -> bool {
        false
    }

    async fn fetch(&self, query: &Query) -> std::result::Result<Snapshot, LayerError> {
        match self.store.read(&SnapshotKey::Query(query.clone())) {
            Lookup::Hit(snapshot) => Ok(snapshot),
            Lookup::Miss(miss) => Err(LayerError::Miss(miss)),
        }
    }
}

/// A runtime-independent [`Timer`]: each sleep is a short-lived thread that completes a oneshot
/// channel. Meant for a CLI making a handful of reads; under an async runtime prefer a timer
/// backed by the runtime.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadTimer;

impl Timer for ThreadTimer {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let (done, elapsed) = futures::channel::oneshot::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("kgents-ghost-timer".into())
            .spawn(move || {
                std::thread::sleep(duration);
                let _ = done.send(());
            });
        if let Err(err) = spawned {
            tracing::warn!(%err, "could not start a timer thread; this budget is not enforced");
        }
        Box::pin(async move {
            if elapsed.await.is_err() {
                // The timer thread never started: never expire rather than expire at once.
                future::pending::<()>().await;
            }
        })
    }
}

/// What happened when one layer was asked.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    /// The layer's answer was returned.
    Answered,
    /// A cached answer was too old (or dated too far ahead) to show.
    Refused(FreshnessReport),
    /// The layer did not answer within its budget.
    TimedOut,
    /// The layer reported an error.
    Failed(LayerError),
    /// The layer answered a different question (a bug in the layer).
    WrongAnswer {
        /// What the query called for.
        expected: SnapshotKey,
        /// What the layer returned.
        found: SnapshotKey,
    },
}

/// One layer's try.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// The layer's name.
    pub layer: String,
    /// Whether the layer is live.
    pub live: bool,
    /// The budget it had.
    pub budget: Duration,
    /// How long it took (at most about the budget).
    pub elapsed: Duration,
    /// What happened.
    pub outcome: AttemptOutcome,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.layer)?;
        match &self.outcome {
            AttemptOutcome::Answered => write!(f, "answered")?,
            AttemptOutcome::Refused(report) => write!(f, "refused: {}", report.explain())?,
            AttemptOutcome::TimedOut => write!(f, "timed out after {:?}", self.budget)?,
            AttemptOutcome::Failed(err) => write!(f, "{err}")?,
            AttemptOutcome::WrongAnswer { expected, found } => {
                write!(f, "answered with {found} instead of {expected}")?;
            }
        }
        write!(f, " ({:?})", self.elapsed)
    }
}

/// Whether an answer is live or cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// From a live layer.
    Live,
    /// From a non-live layer, with its freshness (FRESH or STALE; REFUSED is never served).
    Cached(FreshnessReport),
}

/// A successful read.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The data.
    pub snapshot: Snapshot,
    /// Name of the layer that answered.
    pub layer: String,
    /// Live or cached, and how fresh.
    pub provenance: Provenance,
    /// Every attempt, in order, ending with the one that answered.
    pub attempts: Vec<Attempt>,
    /// Problems that did not prevent the answer (a failed write-through, an unsaved stability
    /// score).
    pub warnings: Vec<String>,
}

impl Answer {
    /// Whether the answer came from the cache.
    #[must_use]
    pub fn is_cached(&self) -> bool {
        matches!(self.provenance, Provenance::Cached(_))
    }

    /// Age of cached data; `None` for live data.
    #[must_use]
    pub fn cached_age(&self) -> Option<Duration> {
        match self.provenance {
            Provenance::Live => None,
            Provenance::Cached(report) => Some(report.age),
        }
    }

    /// Decorates rendered text: live text is unchanged, cached text gets its age, stale text
    /// also gets the `[GHOST]` prefix, e.g. `[GHOST] 12 agents (data from 4m ago)`.
    #[must_use]
    pub fn decorate(&self, text: &str) -> String {
        match self.provenance {
            Provenance::Live => text.to_owned(),
            Provenance::Cached(report) => report.decorate(text),
        }
    }
}

struct Slot {
    layer: Box<dyn Layer>,
    budget: Duration,
}

/// Layers tried in order, each within its budget, over one store, clock and timer.
pub struct FallbackChain {
    slots: Vec<Slot>,
    store: Arc<dyn GhostStore>,
    clock: Arc<dyn Clock>,
    timer: Arc<dyn Timer>,
    policy: FreshnessPolicy,
}

impl FallbackChain {
    /// A chain with no layers yet, the default freshness policy, writing through to `store`.
    #[must_use]
    pub fn new(store: Arc<dyn GhostStore>, clock: Arc<dyn Clock>, timer: Arc<dyn Timer>) -> Self {
        Self {
            slots: Vec::new(),
            store,
            clock,
            timer,
            policy: FreshnessPolicy::default(),
        }
    }

    /// The standard chain: `daemon` (500 ms), the cache over `store` (50 ms), `direct` (5 s).
    #[must_use]
    pub fn standard(
        daemon: impl Layer + 'static,
        direct: impl Layer + 'static,
        store: Arc<dyn GhostStore>,
        clock: Arc<dyn Clock>,
        timer: Arc<dyn Timer>,
    ) -> Self {
        let cache = CacheLayer::new(Arc::clone(&store));
        Self::new(store, clock, timer)
            .with_layer(daemon, DAEMON_BUDGET)
            .with_layer(cache, CACHE_BUDGET)
            .with_layer(direct, DIRECT_API_BUDGET)
    }

    /// Appends a layer with its budget.
    #[must_use]
    pub fn with_layer(mut self, layer: impl Layer + 'static, budget: Duration) -> Self {
        self.slots.push(Slot {
            layer: Box::new(layer),
            budget,
        });
        self
    }

    /// Replaces the freshness policy.
    #[must_use]
    pub fn with_policy(mut self, policy: FreshnessPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Names and budgets of the layers, in order.
    #[must_use]
    pub fn layers(&self) -> Vec<(&str, Duration)> {
        self.slots
            .iter()
            .map(|s| (s.layer.name(), s.budget))
            .collect()
    }

    /// Answers `query` from the first layer that can.
    ///
    /// # Errors
    /// [`Error::AllLayersFailed`] listing every attempt and the remedy, or [`Error::NoLayers`].
    pub async fn fetch(&self, query: &Query) -> Result<Answer> {
        if self.slots.is_empty() {
            return Err(Error::NoLayers);
        }
        let expected = SnapshotKey::Query(query.clone());
        let mut stability = self.store.stability();
        let mut live_outcomes = Vec::new();
        let mut attempts = Vec::with_capacity(self.slots.len());
        let mut answer = None;
        let mut write_through = false;

        for slot in &self.slots {
            let live = slot.layer.is_live();
            let started = self.timer.now();
            let raced =
                future::select(slot.layer.fetch(query), self.timer.sleep(slot.budget)).await;
            let elapsed = self.timer.now().saturating_duration_since(started);
            let (outcome, provenance, snapshot) = match raced {
                Either::Right(((), _)) => (AttemptOutcome::TimedOut, None, None),
                Either::Left((Err(err), _)) => (AttemptOutcome::Failed(err), None, None),
                Either::Left((Ok(snapshot), _)) => {
                    let found = snapshot.key();
                    if found != expected {
                        let outcome = AttemptOutcome::WrongAnswer {
                            expected: expected.clone(),
                            found,
                        };
                        (outcome, None, None)
                    } else if live {
                        (
                            AttemptOutcome::Answered,
                            Some(Provenance::Live),
                            Some(snapshot),
                        )
                    } else {
                        let report = self.policy.classify(
                            query.category(),
                            snapshot.taken_at,
                            self.clock.now(),
                            stability.score,
                        );
                        if report.verdict == Verdict::Refused {
                            (AttemptOutcome::Refused(report), None, None)
                        } else {
                            let provenance = Some(Provenance::Cached(report));
                            (AttemptOutcome::Answered, provenance, Some(snapshot))
                        }
                    }
                }
            };
            if live {
                let ok = outcome == AttemptOutcome::Answered;
                live_outcomes.push(ok);
                stability = stability.observe(ok);
            }
            tracing::debug!(
                layer = slot.layer.name(),
                ?elapsed,
                ?outcome,
                "ghost layer tried"
            );
            attempts.push(Attempt {
                layer: slot.layer.name().to_owned(),
                live,
                budget: slot.budget,
                elapsed,
                outcome,
            });
            if let (Some(provenance), Some(snapshot)) = (provenance, snapshot) {
                write_through = slot.layer.writes_through();
                answer = Some((slot.layer.name().to_owned(), provenance, snapshot));
                break;
            }
        }

        let mut warnings = Vec::new();
        if let Some((_, Provenance::Live, snapshot)) = &answer
            && write_through
            && let Err(err) = self.store.write(snapshot)
        {
            tracing::warn!(%err, "live answer not written to the ghost cache");
            warnings.push(format!("live answer not cached: {err}"));
        }
        if !live_outcomes.is_empty()
            && let Err(err) = self
                .store
                .update_stability(&live_outcomes, self.clock.now())
        {
            tracing::warn!(%err, "stability score not saved");
            warnings.push(format!("stability score not saved: {err}"));
        }

        match answer {
            Some((layer, provenance, snapshot)) => {
                if let Provenance::Cached(report) = provenance {
                    tracing::info!(
                        %layer,
                        verdict = %report.verdict,
                        age = %format_age(report.age),
                        "answered from the ghost cache"
                    );
                }
                Ok(Answer {
                    snapshot,
                    layer,
                    provenance,
                    attempts,
                    warnings,
                })
            }
            None => Err(Error::AllLayersFailed {
                query: query.clone(),
                attempts,
            }),
        }
    }
}
