//! The fallback chain with mocked layers, tokio's paused clock as the timer and a manual clock.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::BoxFuture;
use kgents_core::clock::ManualClock;
use kgents_ghost::chain::{CACHE_BUDGET, DAEMON_BUDGET, DIRECT_API_BUDGET};
use kgents_ghost::{
    AttemptOutcome, CacheLayer, Error, FallbackChain, FsGhostStore, GhostStore, InMemoryGhostStore,
    Layer, LayerError, Lookup, Miss, MissReason, Provenance, Query, Snapshot, SnapshotKey,
    ThreadTimer, Timer, Verdict,
};
use mockall::mock;

use common::{answer_to, stability_snapshot, ts};

mock! {
    pub Source {}
    #[async_trait]
    impl Layer for Source {
        fn name(&self) -> &str;
        fn is_live(&self) -> bool;
        async fn fetch(&self, query: &Query) -> Result<Snapshot, LayerError>;
    }
}

/// A mocked layer that takes `delay` (on tokio's clock) before it is asked.
struct Slow {
    inner: MockSource,
    delay: Duration,
}

#[async_trait]
impl Layer for Slow {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn is_live(&self) -> bool {
        self.inner.is_live()
    }
    async fn fetch(&self, query: &Query) -> Result<Snapshot, LayerError> {
        tokio::time::sleep(self.delay).await;
        self.inner.fetch(query).await
    }
}

struct TokioTimer;

impl Timer for TokioTimer {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

fn source(name: &str, live: bool) -> MockSource {
    let mut mock = MockSource::new();
    mock.expect_name().return_const(name.to_owned());
    mock.expect_is_live().return_const(live);
    mock
}

fn answering(name: &str, live: bool, snapshot: Snapshot) -> MockSource {
    let mut mock = source(name, live);
    mock.expect_fetch()
        .times(1)
        .returning(move |_| Ok(snapshot.clone()));
    mock
}

fn failing(name: &str, live: bool, err: LayerError) -> MockSource {
    let mut mock = source(name, live);
    mock.expect_fetch()
        .times(1)
        .returning(move |_| Err(err.clone()));
    mock
}

fn never_asked(name: &str, live: bool) -> MockSource {
    let mut mock = source(name, live);
    mock.expect_fetch().never();
    mock
}

const NOW: i64 = 10_000;

/// tokio's paused clock jumps to timer deadlines, which it rounds to whole milliseconds.
fn within_a_tick(elapsed: Duration, budget: Duration) -> bool {
    elapsed >= budget && elapsed <= budget + Duration::from_millis(1)
}

fn chain(
    daemon: impl Layer + 'static,
    cache: impl Layer + 'static,
    direct: impl Layer + 'static,
    store: Arc<dyn GhostStore>,
) -> FallbackChain {
    FallbackChain::new(
        store,
        Arc::new(ManualClock::new(ts(NOW))),
        Arc::new(TokioTimer),
    )
    .with_layer(daemon, DAEMON_BUDGET)
    .with_layer(cache, CACHE_BUDGET)
    .with_layer(direct, DIRECT_API_BUDGET)
}

#[tokio::test(start_paused = true)]
async fn first_layer_answers_and_is_written_through() {
    let store = Arc::new(InMemoryGhostStore::new());
    let live = answer_to(&Query::AgentsIndex, ts(NOW), 3);
    let chain = chain(
        answering("cortex", true, live.clone()),
        never_asked("ghost-cache", false),
        never_asked("kubernetes", true),
        store.clone(),
    );

    let answer = chain.fetch(&Query::AgentsIndex).await.unwrap();

    assert_eq!(answer.layer, "cortex");
    assert_eq!(answer.provenance, Provenance::Live);
    assert_eq!(answer.snapshot, live);
    assert_eq!(answer.decorate("3 agents"), "3 agents");
    assert!(answer.warnings.is_empty(), "{:?}", answer.warnings);
    assert_eq!(answer.attempts.len(), 1);
    assert_eq!(answer.attempts[0].outcome, AttemptOutcome::Answered);
    assert_eq!(answer.attempts[0].elapsed, Duration::ZERO);
    assert_eq!(
        store.read(&Query::AgentsIndex.into()),
        Lookup::Hit(live),
        "a live answer is written through"
    );
    let stability = store.stability();
    assert_eq!(stability.observations, 1);
    assert!((stability.score - 0.2).abs() < 1e-12);
}

/// A live layer that keeps the store itself (as the Cortex daemon does).
struct KeepsItsOwnStore(Snapshot);

#[async_trait]
impl Layer for KeepsItsOwnStore {
    fn name(&self) -> &str {
        "cortex"
    }
    fn is_live(&self) -> bool {
        true
    }
    fn writes_through(&self) -> bool {
        false
    }
    async fn fetch(&self, _: &Query) -> Result<Snapshot, LayerError> {
        Ok(self.0.clone())
    }
}

#[tokio::test(start_paused = true)]
async fn a_layer_that_keeps_the_store_itself_is_not_written_through_but_counts_as_live() {
    let store = Arc::new(InMemoryGhostStore::new());
    let live = answer_to(&Query::AgentsIndex, ts(NOW), 3);
    let chain = chain(
        KeepsItsOwnStore(live.clone()),
        never_asked("ghost-cache", false),
        never_asked("kubernetes", true),
        store.clone(),
    );
    let answer = chain.fetch(&Query::AgentsIndex).await.unwrap();
    assert_eq!(answer.layer, "cortex");
    assert_eq!(answer.provenance, Provenance::Live);
    assert!(
        matches!(store.read(&Query::AgentsIndex.into()), Lookup::Miss(_)),
        "not written by the reader"
    );
    assert_eq!(store.stability().observations, 1, "still a live attempt");
}

#[tokio::test(start_paused = true)]
async fn first_times_out_and_the_cache_answers_with_its_age() {
    let store = Arc::new(InMemoryGhostStore::new());
    let cached = answer_to(&Query::AgentsIndex, ts(NOW - 90), 1);
    let daemon = Slow {
        // The slow daemon's fetch is dropped when its budget runs out, so it is never asked.
        inner: never_asked("cortex", true),
        delay: Duration::from_secs(2),
    };
    let chain = chain(
        daemon,
        answering("ghost-cache", false, cached.clone()),
        never_asked("kubernetes", true),
        store.clone(),
    );

    let answer = chain.fetch(&Query::AgentsIndex).await.unwrap();

    assert_eq!(answer.layer, "ghost-cache");
    assert!(answer.is_cached());
    assert_eq!(answer.cached_age(), Some(Duration::from_secs(90)));
    let Provenance::Cached(report) = answer.provenance else {
        panic!("expected a cached answer");
    };
    // Stability 0 (one failed live fetch, nothing before): threshold 60 s, 90 s is STALE.
    assert_eq!(report.verdict, Verdict::Stale);
    assert_eq!(report.threshold, Duration::from_secs(60));
    assert_eq!(
        answer.decorate("12 agents"),
        "[GHOST] 12 agents (data from 1m ago)"
    );
    assert_eq!(answer.attempts.len(), 2);
    assert_eq!(answer.attempts[0].outcome, AttemptOutcome::TimedOut);
    assert_eq!(answer.attempts[0].budget, DAEMON_BUDGET);
    assert!(
        within_a_tick(answer.attempts[0].elapsed, DAEMON_BUDGET),
        "{:?}",
        answer.attempts[0].elapsed
    );
    assert!(
        answer.attempts[1]
            .to_string()
            .starts_with("ghost-cache: answered")
    );
    assert_eq!(
        store.read(&Query::AgentsIndex.into()),
        Lookup::Miss(Miss {
            key: Query::AgentsIndex.into(),
            reason: MissReason::NotFound
        }),
        "cached answers are not written back"
    );
    let stability = store.stability();
    assert_eq!((stability.observations, stability.score), (1, 0.0));
}

#[tokio::test(start_paused = true)]
async fn all_layers_fail_with_one_error_listing_each_and_the_remedy() {
    let store = Arc::new(InMemoryGhostStore::new());
    let miss = Miss {
        key: Query::ClusterStatus.into(),
        reason: MissReason::NotFound,
    };
    let chain = chain(
        failing(
            "cortex",
            true,
            LayerError::Unavailable("connection refused at localhost:50052".into()),
        ),
        failing("ghost-cache", false, LayerError::Miss(miss)),
        Slow {
            inner: never_asked("kubernetes", true),
            delay: Duration::from_secs(60),
        },
        store.clone(),
    );

    let err = chain.fetch(&Query::ClusterStatus).await.unwrap_err();

    let Error::AllLayersFailed { query, attempts } = &err else {
        panic!("expected AllLayersFailed, got {err}");
    };
    assert_eq!(query, &Query::ClusterStatus);
    assert_eq!(attempts.len(), 3);
    assert!(matches!(attempts[2].outcome, AttemptOutcome::TimedOut));
    assert!(
        within_a_tick(attempts[2].elapsed, DIRECT_API_BUDGET),
        "{:?}",
        attempts[2].elapsed
    );
    let text = err.to_string();
    for needle in [
        "no layer could answer the cluster status",
        "cortex: unavailable: connection refused at localhost:50052",
        "ghost-cache: cache miss: cluster/status.json: nothing cached yet",
        "kubernetes: timed out after 5s",
        "kgents infra init",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let stability = store.stability();
    assert_eq!((stability.observations, stability.score), (2, 0.0));
}

#[tokio::test(start_paused = true)]
async fn a_refused_cache_falls_through_to_the_direct_layer() {
    let store = Arc::new(InMemoryGhostStore::new());
    // Ten minutes old: over twice the 60 s agents threshold even at stability 1 (2 × 120 s).
    store.write(&stability_snapshot(1.0, 100, ts(NOW))).unwrap();
    let old = answer_to(&Query::AgentsIndex, ts(NOW - 600), 1);
    store.write(&old).unwrap();
    let fresh = answer_to(&Query::AgentsIndex, ts(NOW), 2);
    let chain = chain(
        failing("cortex", true, LayerError::Unavailable("no daemon".into())),
        CacheLayer::new(store.clone()),
        answering("kubernetes", true, fresh.clone()),
        store.clone(),
    );

    let answer = chain.fetch(&Query::AgentsIndex).await.unwrap();

    assert_eq!(answer.layer, "kubernetes");
    assert_eq!(answer.provenance, Provenance::Live);
    let AttemptOutcome::Refused(report) = answer.attempts[1].outcome else {
        panic!("expected a refusal, got {:?}", answer.attempts[1]);
    };
    assert_eq!(report.verdict, Verdict::Refused);
    assert_eq!(report.age, Duration::from_secs(600));
    // The daemon failure lowered stability from 1.0 to 0.8 before the cache was judged.
    assert_eq!(report.threshold, Duration::from_secs(108));
    assert_eq!(store.read(&Query::AgentsIndex.into()), Lookup::Hit(fresh));
    let stability = store.stability();
    assert_eq!(stability.observations, 102);
    assert!(
        (stability.score - 0.84).abs() < 1e-12,
        "{}",
        stability.score
    );
}

#[tokio::test(start_paused = true)]
async fn stability_stretches_the_threshold() {
    let cached = answer_to(&Query::PendingProposals, ts(NOW - 400), 2);
    for (score, verdict) in [(0.0, Verdict::Stale), (1.0, Verdict::Fresh)] {
        let store = Arc::new(InMemoryGhostStore::new());
        store.write(&stability_snapshot(score, 10, ts(0))).unwrap();
        store.write(&cached).unwrap();
        let chain = FallbackChain::new(
            store.clone(),
            Arc::new(ManualClock::new(ts(NOW))),
            Arc::new(TokioTimer),
        )
        .with_layer(CacheLayer::new(store.clone()), CACHE_BUDGET);
        let answer = chain.fetch(&Query::PendingProposals).await.unwrap();
        let Provenance::Cached(report) = answer.provenance else {
            panic!("expected cached");
        };
        assert_eq!(report.verdict, verdict, "stability {score}");
        // No live layer was asked, so the score is unchanged.
        assert_eq!(store.stability().observations, 10);
    }
}

#[tokio::test(start_paused = true)]
async fn a_cache_entry_from_the_future_is_refused_and_explained() {
    let store = Arc::new(InMemoryGhostStore::new());
    store
        .write(&answer_to(&Query::ClusterStatus, ts(NOW + 3_600), 1))
        .unwrap();
    let chain = FallbackChain::new(
        store.clone(),
        Arc::new(ManualClock::new(ts(NOW))),
        Arc::new(TokioTimer),
    )
    .with_layer(CacheLayer::new(store.clone()), CACHE_BUDGET);
    let err = chain.fetch(&Query::ClusterStatus).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("dated 1h in the future"), "{text}");
    assert!(text.contains("clock moved backwards"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn a_layer_answering_another_question_counts_as_a_failure() {
    let store = Arc::new(InMemoryGhostStore::new());
    let wrong = answer_to(&Query::ClusterStatus, ts(NOW), 1);
    let right = answer_to(&Query::PendingProposals, ts(NOW), 1);
    let chain = chain(
        answering("cortex", true, wrong),
        failing(
            "ghost-cache",
            false,
            LayerError::Miss(Miss {
                key: Query::PendingProposals.into(),
                reason: MissReason::NotFound,
            }),
        ),
        answering("kubernetes", true, right.clone()),
        store.clone(),
    );
    let answer = chain.fetch(&Query::PendingProposals).await.unwrap();
    assert_eq!(answer.snapshot, right);
    assert!(matches!(
        answer.attempts[0].outcome,
        AttemptOutcome::WrongAnswer { .. }
    ));
    assert_eq!(
        store.read(&Query::ClusterStatus.into()).hit(),
        None,
        "the wrong answer is not cached"
    );
}

#[tokio::test(start_paused = true)]
async fn live_answers_are_written_through_to_files() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn GhostStore> = Arc::new(FsGhostStore::new(dir.path()));
    let query = Query::Agent(common::agent_name("l-gent"));
    let live = answer_to(&query, ts(NOW), 5);
    let chain = FallbackChain::standard(
        answering("cortex", true, live.clone()),
        never_asked("kubernetes", true),
        store.clone(),
        Arc::new(ManualClock::new(ts(NOW))),
        Arc::new(TokioTimer),
    );
    assert_eq!(
        chain.layers(),
        vec![
            ("cortex", DAEMON_BUDGET),
            ("ghost-cache", CACHE_BUDGET),
            ("kubernetes", DIRECT_API_BUDGET)
        ]
    );
    let answer = chain.fetch(&query).await.unwrap();
    assert_eq!(answer.provenance, Provenance::Live);
    let text = std::fs::read_to_string(dir.path().join("agents/l-gent.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["kind"], "agent_status");
    assert_eq!(value["schema_version"], 1);
    assert_eq!(value["data"]["summary"]["name"], "l-gent");
    let meta = std::fs::read_to_string(dir.path().join("_meta/stability_score.json")).unwrap();
    let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["data"]["observations"], 1);
    assert_eq!(store.read(&SnapshotKey::Query(query)), Lookup::Hit(live));
}

#[tokio::test(start_paused = true)]
async fn a_failed_write_through_is_a_warning_not_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    // The root is a file, so nothing can be created under it.
    let root = dir.path().join("not-a-dir");
    std::fs::write(&root, b"x").unwrap();
    let store: Arc<dyn GhostStore> = Arc::new(FsGhostStore::new(&root));
    let live = answer_to(&Query::AgentsIndex, ts(NOW), 1);
    let chain = FallbackChain::new(
        store,
        Arc::new(ManualClock::new(ts(NOW))),
        Arc::new(TokioTimer),
    )
    .with_layer(answering("cortex", true, live.clone()), DAEMON_BUDGET);
    let answer = chain.fetch(&Query::AgentsIndex).await.unwrap();
    assert_eq!(answer.snapshot, live);
    assert_eq!(answer.warnings.len(), 2, "{:?}", answer.warnings);
    assert!(answer.warnings[0].starts_with("live answer not cached"));
    assert!(answer.warnings[1].starts_with("stability score not saved"));
}

#[test]
fn an_empty_chain_says_so() {
    let store = Arc::new(InMemoryGhostStore::new());
    let chain = FallbackChain::new(
        store,
        Arc::new(ManualClock::new(ts(0))),
        Arc::new(ThreadTimer),
    );
    let err = futures::executor::block_on(chain.fetch(&Query::AgentsIndex)).unwrap_err();
    assert!(matches!(err, Error::NoLayers), "{err}");
}

/// Without any async runtime: the thread timer enforces a budget on a layer that never answers.
#[test]
fn the_thread_timer_enforces_budgets_without_a_runtime() {
    struct Hangs;
    #[async_trait]
    impl Layer for Hangs {
        fn name(&self) -> &str {
            "hangs"
        }
        fn is_live(&self) -> bool {
            true
        }
        async fn fetch(&self, _: &Query) -> Result<Snapshot, LayerError> {
            futures::future::pending().await
        }
    }
    let store = Arc::new(InMemoryGhostStore::new());
    let chain = FallbackChain::new(
        store,
        Arc::new(ManualClock::new(ts(0))),
        Arc::new(ThreadTimer),
    )
    .with_layer(Hangs, Duration::from_millis(30));
    let started = Instant::now();
    let err = futures::executor::block_on(chain.fetch(&Query::AgentsIndex)).unwrap_err();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(30), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert!(
        err.to_string().contains("hangs: timed out after 30ms"),
        "{err}"
    );
}
